//! Slack incoming webhooks, named in `ALLIM_SLACK_WEBHOOKS`; a message's `channel` picks one
//! (absent: `default`). 429 retries after `Retry-After`, 5xx and timeouts retry, other 4xx
//! (`invalid_payload`, `no_service`, `channel_not_found`, …) are permanent. Webhook URLs are
//! secrets: they are never logged. Without any webhook configured: a dry run.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use super::http::{RateLimiter, retry_after, transport_error, truncate};
use super::{Channel, Job, SendOutcome};
use crate::accept::Notification;
use crate::config::{Secret, SlackWebhook};

pub const DEFAULT_WEBHOOK: &str = "default";

pub struct Slack {
    http: reqwest::Client,
    hooks: HashMap<String, Secret>,
    limiter: RateLimiter,
}

impl Slack {
    pub fn new(http: reqwest::Client, hooks: &[SlackWebhook], rate_per_sec: f64) -> Arc<Self> {
        Arc::new(Slack {
            http,
            hooks: hooks.iter().map(|h| (h.name.clone(), h.url.clone())).collect(),
            limiter: RateLimiter::per_second(rate_per_sec),
        })
    }

    async fn post(&self, job: &Job) -> SendOutcome {
        let Notification::Slack(msg) = &job.notification else {
            return SendOutcome::Permanent {
                error: "slack channel got a notification that is not SLACK".into(),
            };
        };
        let name = msg.channel.as_deref().unwrap_or(DEFAULT_WEBHOOK);
        if self.hooks.is_empty() {
            tracing::info!(delivery = %job.delivery_id, webhook = name, chars = msg.text.chars().count(),
                "slack dry run (no webhooks configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        }
        let Some(url) = self.hooks.get(name) else {
            return SendOutcome::Permanent {
                error: format!("no Slack webhook named {name:?} is configured"),
            };
        };
        self.limiter.acquire().await;
        let res = match self
            .http
            .post(url.expose())
            .json(&json!({ "text": msg.text }))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return SendOutcome::Retry {
                    error: transport_error("Slack", e),
                    after: None,
                };
            }
        };
        let status = res.status();
        let after = retry_after(res.headers());
        let text = res.text().await.unwrap_or_default();
        let error = format!("Slack {}: {}", status.as_u16(), truncate(text.trim(), 200));
        if status.is_success() {
            SendOutcome::Delivered { dry_run: false }
        } else if status.as_u16() == 429 || status.is_server_error() {
            SendOutcome::Retry { error, after }
        } else {
            SendOutcome::Permanent { error }
        }
    }
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        self.post(job).boxed()
    }
}
