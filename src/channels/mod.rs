//! Channels: where a due delivery goes. Each channel is one module behind the [`Channel`]
//! trait and maps its provider's answer to one of three outcomes — delivered, retry later,
//! or permanent failure — so the dispatcher needs to know nothing about providers. Adding a
//! channel means one module and one [`Channels::register`] line.

pub mod fcm;
pub mod http;
pub mod in_app;
pub mod sens;
pub mod slack;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::accept::{Notification, NotificationType};

/// One delivery handed to a channel.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: String,
    /// 1 on the first attempt.
    pub attempt: i64,
    pub notification: Notification,
}

/// What a channel made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took it. `dry_run`: no credentials were configured; it was only logged.
    Delivered { dry_run: bool },
    /// A passing failure (timeout, 429, 5xx): try again, after `after` if the provider said so.
    Retry { error: String, after: Option<Duration> },
    /// It can never succeed as it is (bad number, unregistered token, 4xx): do not retry.
    Permanent { error: String },
}

/// A delivery channel.
pub trait Channel: Send + Sync {
    /// Short name for logs and metrics (`in_app`, `sms`, …).
    fn name(&self) -> &'static str;
    /// Sends one delivery. Must not panic; every error becomes an outcome.
    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome>;
}

/// The channel registered for each notification type.
#[derive(Clone, Default)]
pub struct Channels {
    map: HashMap<NotificationType, Arc<dyn Channel>>,
}

impl Channels {
    pub fn register(&mut self, kind: NotificationType, channel: Arc<dyn Channel>) {
        self.map.insert(kind, channel);
    }

    pub fn get(&self, kind: NotificationType) -> Option<&Arc<dyn Channel>> {
        self.map.get(&kind)
    }

    /// The notification types that have a channel (only those are claimed by the dispatcher;
    /// the others stay pending until a channel is configured).
    pub fn kinds(&self) -> Vec<NotificationType> {
        let mut kinds: Vec<_> = self.map.keys().copied().collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds
    }
}
