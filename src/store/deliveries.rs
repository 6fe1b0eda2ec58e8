//! The `deliveries` and `inbox` rows the accept path writes, and the look-ups by key and id.

use std::borrow::Borrow;
use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{InboxRow, Store, StoreError, StoreResult, Tx, with_pool, with_tx};

/// Status of a delivery row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (or for `deliverAt`).
    Pending,
    /// Handed to the channel successfully.
    Delivered,
    /// The last attempt failed; another is scheduled at `nextAttemptAt`.
    Failed,
    /// Given up: attempts exhausted or a permanent error. Can be redriven.
    Dead,
    /// The message was not a valid notification; kept with its raw body and the reason.
    Rejected,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
        DeliveryStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl TryFrom<String> for DeliveryStatus {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        Self::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("delivery status {s:?}")))
    }
}

/// A delivery row to insert.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub notification_type: String,
    pub source: &'static str,
    pub payload: String,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub now: i64,
}

/// A delivery as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub notification_type: String,
    pub source: String,
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    /// 1 when the channel had no credentials and only logged the send.
    pub dry_run: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

pub(super) const DELIVERY_COLUMNS: &str = "id, idempotency_key, notification_type, source, payload, status, attempts, \
     next_attempt_at, last_error, dry_run, created_at, updated_at, delivered_at";

/// Rows per multi-row statement (well under both backends' placeholder limits).
pub(super) const CHUNK: usize = 500;

/// Inserts delivery rows, 500 per multi-row statement, inside the caller's transaction.
pub async fn insert_deliveries<R: Borrow<NewDelivery>>(tx: &mut Tx, rows: &[R]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        with_tx!(tx, conn => {
            let mut q = QueryBuilder::new(
                "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, \
                 next_attempt_at, last_error, created_at, updated_at) ",
            );
            q.push_values(chunk.iter().map(Borrow::borrow), |mut b, r: &NewDelivery| {
                b.push_bind(r.id.as_str())
                    .push_bind(r.idempotency_key.as_deref())
                    .push_bind(r.notification_type.as_str())
                    .push_bind(r.source)
                    .push_bind(r.payload.as_str())
                    .push_bind(r.status.as_str())
                    .push_bind(r.next_attempt_at)
                    .push_bind(r.last_error.as_deref())
                    .push_bind(r.now)
                    .push_bind(r.now);
            });
            q.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Inserts inbox rows, 500 per multi-row statement, inside the caller's transaction.
pub async fn insert_inbox<R: Borrow<InboxRow>>(tx: &mut Tx, rows: &[R]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        with_tx!(tx, conn => {
            let mut q = QueryBuilder::new(
                "INSERT INTO inbox (id, delivery_id, user_id, category, title, body, link, data, created_at) ",
            );
            q.push_values(chunk.iter().map(Borrow::borrow), |mut b, r: &InboxRow| {
                b.push_bind(r.id.as_str())
                    .push_bind(r.delivery_id.as_str())
                    .push_bind(r.user_id.as_str())
                    .push_bind(r.category.as_deref())
                    .push_bind(r.title.as_str())
                    .push_bind(r.body.as_deref())
                    .push_bind(r.link.as_deref())
                    .push_bind(r.data.as_deref())
                    .push_bind(r.created_at);
            });
            q.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

impl Store {
    /// Existing deliveries for these idempotency keys: key → (id, status).
    pub async fn find_by_keys(&self, keys: &[&str]) -> StoreResult<HashMap<String, (String, DeliveryStatus)>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNK) {
            let rows: Vec<(String, String, String)> = with_pool!(self, p => {
                let mut q = QueryBuilder::new("SELECT idempotency_key, id, status FROM deliveries WHERE idempotency_key IN (");
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(*k);
                }
                q.push(")");
                q.build_query_as().fetch_all(p).await
            })?;
            for (key, id, status) in rows {
                found.insert(key, (id, DeliveryStatus::try_from(status)?));
            }
        }
        Ok(found)
    }

    pub async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?");
        Ok(with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)?)
    }
}
