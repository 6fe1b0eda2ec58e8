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

/// A multi-row INSERT's builder with room, before the first push, for `rows` rows of `columns`
/// placeholders each and about `bytes` of bound values: without it the statement text and the
/// argument buffer (a few hundred KB for 500 rows) grow by doubling, and each growth copies
/// them (in the HTTP batch's profile, bench/README.md).
fn rows_builder<DB>(head: &str, rows: usize, columns: usize, bytes: usize) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    use sqlx::Arguments;
    // "VALUES " and "(?, ?, …), " per row: both backends write `?` placeholders.
    let mut sql = String::with_capacity(head.len() + 8 + rows * (4 + columns * 3));
    sql.push_str(head);
    let mut args = DB::Arguments::default();
    args.reserve(rows * columns, bytes);
    QueryBuilder::with_arguments(sql, args)
}

/// A row's bound bytes beyond its texts: the integers, the short fixed strings (source,
/// status) and each value's length prefix.
const ROW_OVERHEAD: usize = 64;

/// The length of an optional text value (0 when absent).
fn text_len(v: &Option<String>) -> usize {
    v.as_deref().map_or(0, str::len)
}

/// Inserts delivery rows, 500 per multi-row statement, inside the caller's transaction.
pub async fn insert_deliveries<R: Borrow<NewDelivery>>(tx: &mut Tx, rows: &[R]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        with_tx!(tx, conn => {
            let bytes = chunk.iter().map(Borrow::borrow).map(|r: &NewDelivery| {
                r.id.len() + text_len(&r.idempotency_key) + r.notification_type.len() + r.payload.len()
                    + text_len(&r.last_error) + ROW_OVERHEAD
            });
            let mut q = rows_builder(
                "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, \
                 next_attempt_at, last_error, created_at, updated_at) ",
                chunk.len(),
                10,
                bytes.sum(),
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
            let bytes = chunk.iter().map(Borrow::borrow).map(|r: &InboxRow| {
                r.id.len() + r.delivery_id.len() + r.user_id.len() + text_len(&r.category) + r.title.len()
                    + text_len(&r.body) + text_len(&r.link) + text_len(&r.data) + ROW_OVERHEAD
            });
            let mut q = rows_builder(
                "INSERT INTO inbox (id, delivery_id, user_id, category, title, body, link, data, created_at) ",
                chunk.len(),
                9,
                bytes.sum(),
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

    /// Deliveries matching a search, newest first, older than `before` (an id).
    pub async fn search_deliveries(
        &self,
        s: &DeliverySearch,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let rows = with_pool!(self, p => {
            let mut q = QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1"));
            if let Some(id) = &s.id {
                q.push(" AND id = ").push_bind(id.as_str());
            }
            if let Some(k) = &s.key {
                q.push(" AND idempotency_key = ").push_bind(k.as_str());
            }
            if let Some(st) = &s.status {
                q.push(" AND status = ").push_bind(st.as_str());
            }
            if let Some(t) = &s.notification_type {
                q.push(" AND notification_type = ").push_bind(t.as_str());
            }
            if let Some(t) = s.since {
                q.push(" AND created_at >= ").push_bind(t);
            }
            if let Some(t) = s.until {
                q.push(" AND created_at < ").push_bind(t);
            }
            for fragment in &s.payload_contains {
                q.push(" AND payload LIKE ").push_bind(like_pattern(fragment)).push(" ESCAPE '!'");
            }
            if let Some(b) = before {
                q.push(" AND id < ").push_bind(b);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            q.build_query_as().fetch_all(p).await?
        });
        Ok(rows)
    }

    /// Deliveries created at or after `day`, counted by type and status: (type, status, count
    /// since `day`, count since `hour`). One scan for both windows.
    pub async fn status_counts(&self, day: i64, hour: i64) -> StoreResult<Vec<(String, String, i64, i64)>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT notification_type, status, COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END), 0) AS SIGNED) \
             FROM deliveries WHERE created_at >= ? GROUP BY notification_type, status",
        )
        .bind(hour)
        .bind(day)
        .fetch_all(p)
        .await)?)
    }

    /// Deliveries waiting (pending or failed with a retry due), by type, whenever created.
    pub async fn waiting_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT notification_type, COUNT(*) FROM deliveries WHERE status IN ('pending', 'failed') \
             GROUP BY notification_type",
        )
        .fetch_all(p)
        .await)?)
    }

    /// The inbox row a delivery made, if any.
    pub async fn inbox_of(&self, delivery_id: &str) -> StoreResult<Option<InboxRow>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT id, delivery_id, user_id, category, title, body, link, data, created_at, read_at \
             FROM inbox WHERE delivery_id = ?",
        )
        .bind(delivery_id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?");
        Ok(with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)?)
    }
}

/// What a delivery search matches; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct DeliverySearch {
    pub id: Option<String>,
    pub key: Option<String>,
    pub status: Option<String>,
    pub notification_type: Option<String>,
    /// created_at ≥ since (ms)
    pub since: Option<i64>,
    /// created_at < until (ms)
    pub until: Option<i64>,
    /// Fragments the stored payload JSON must contain (e.g. `"userId":"42"`).
    pub payload_contains: Vec<String>,
}

/// `%fragment%` with LIKE's wildcards escaped by `!`.
fn like_pattern(fragment: &str) -> String {
    let mut out = String::with_capacity(fragment.len() + 2);
    out.push('%');
    for c in fragment.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}
