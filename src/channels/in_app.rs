//! `APP_NOTIFICATION`: a row in a user's in-app inbox.
//!
//! A notification due at accept time gets its inbox row in the accept transaction itself
//! ([`inbox_row`]) and never reaches the sender. The sender writes the row of one that was
//! scheduled (`deliverAt`) or redriven; writing is idempotent: the inbox's unique `delivery_id`
//! turns a second attempt into "already delivered".

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Channel, Deps, Job, Kind, SendOutcome};
use crate::clock::Clock;
use crate::contract::{ContractError, check_object, check_opt, check_text, check_user_id, limits};
use crate::store::{self, InboxRow, Store};

pub const CATEGORY_MAX: usize = 64;
pub const LINK_MAX: usize = 2048;
pub const DATA_MAX_BYTES: usize = 16 * 1024;

/// `APP_NOTIFICATION`: an inbox row for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "order-1042-shipped")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-22T09:00:00+09:00")]
    pub deliver_at: Option<String>,
    /// The user whose inbox receives it (≤ 128 characters, no spaces).
    #[schema(example = "42")]
    pub user_id: String,
    /// Free-form grouping for the app (≤ 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "order")]
    pub category: Option<String>,
    /// Required, ≤ 200 characters.
    #[schema(example = "Shipped")]
    pub title: String,
    /// ≤ 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Your order is on its way")]
    pub body: Option<String>,
    /// Where the app goes when the row is tapped (≤ 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "app://orders/1042")]
    pub link: Option<String>,
    /// Any JSON object (≤ 16 KiB serialized), handed back to the app as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"orderId": 1042}))]
    pub data: Option<Value>,
}

/// The in-app channel has no settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Settings {}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn mode(&self) -> &'static str {
        "inbox"
    }
}

impl Kind for AppNotification {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        check_user_id("userId", &self.user_id)?;
        check_opt("category", &self.category, CATEGORY_MAX, false)?;
        check_text("title", &self.title, 1, limits::TITLE_MAX, false)?;
        check_opt("body", &self.body, limits::BODY_MAX, true)?;
        check_opt("link", &self.link, LINK_MAX, false)?;
        if let Some(data) = &self.data {
            check_object("data", data, DATA_MAX_BYTES)?;
        }
        Ok(())
    }

    fn build(_: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        Ok(Arc::new(InApp {
            store: deps.store.clone(),
            clock: deps.clock.clone(),
        }))
    }
}

/// The inbox row for an in-app notification (at accept time, or when a scheduled one is due).
pub fn inbox_row(delivery_id: &str, n: &AppNotification, now: i64) -> InboxRow {
    InboxRow {
        id: store::new_id(),
        delivery_id: delivery_id.to_string(),
        user_id: n.user_id.clone(),
        category: n.category.clone(),
        title: n.title.clone(),
        body: n.body.clone(),
        link: n.link.clone(),
        data: n
            .data
            .as_ref()
            .map(|d| serde_json::to_string(d).expect("a JSON value serializes")),
        created_at: now,
        read_at: None,
    }
}

pub struct InApp {
    store: Store,
    clock: Clock,
}

impl InApp {
    async fn write(&self, job: &Job) -> SendOutcome {
        let super::Notification::AppNotification(n) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let row = inbox_row(&job.delivery_id, n, self.clock.now_ms());
        let result = async {
            let mut tx = self.store.begin().await?;
            store::insert_inbox(&mut tx, std::slice::from_ref(&row)).await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => SendOutcome::Delivered { dry_run: false },
            Err(e) if e.is_unique_violation() => SendOutcome::Delivered { dry_run: false },
            Err(e) => SendOutcome::Retry {
                error: format!("inbox write failed: {e}"),
                after: None,
            },
        }
    }
}

super::sender!(InApp, "in_app", write);
