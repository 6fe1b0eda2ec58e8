//! The in-app channel: writes the inbox row of an `APP_NOTIFICATION` that was scheduled
//! (`deliverAt`) or redriven. Rows due at accept time are written by the accept transaction
//! itself and never reach this channel. Writing is idempotent: the inbox's unique
//! `delivery_id` turns a second attempt into "already delivered".

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Channel, Job, SendOutcome};
use crate::accept::{Notification, inbox_row};
use crate::store::{self, Store};

pub struct InApp {
    store: Store,
}

impl InApp {
    pub fn new(store: Store) -> Self {
        InApp { store }
    }
}

impl Channel for InApp {
    fn name(&self) -> &'static str {
        "in_app"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        async move {
            let Notification::AppNotification(n) = &job.notification else {
                return SendOutcome::Permanent {
                    error: "in_app channel got a notification that is not APP_NOTIFICATION".into(),
                };
            };
            let row = inbox_row(&job.delivery_id, n, store::now_ms());
            let result = async {
                let mut conn = self.store.pool().acquire().await?;
                store::insert_inbox(&mut conn, std::slice::from_ref(&row)).await
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
        .boxed()
    }
}
