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
    let mut sql = String::with_capacity(head.len() + values_len(rows, columns));
    sql.push_str(head);
    let mut args = DB::Arguments::default();
    args.reserve(rows * columns, bytes);
    QueryBuilder::with_arguments(sql, args)
}

/// The length of `VALUES (?, ?, …), (…)` for `rows` rows of `columns` placeholders (about: both
/// backends write `?` placeholders), for a statement text's capacity.
fn values_len(rows: usize, columns: usize) -> usize {
    8 + rows * (4 + columns * 3)
}

/// A row's bound bytes beyond its texts: the integers, the short fixed strings (source,
/// status) and each value's length prefix.
const ROW_OVERHEAD: usize = 64;

/// The length of an optional text value (0 when absent).
fn text_len(v: &Option<String>) -> usize {
    v.as_deref().map_or(0, str::len)
}

const DELIVERY_INSERT: &str = "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, \
     status, next_attempt_at, last_error, created_at, updated_at) ";
const DELIVERY_INSERT_COLUMNS: usize = 10;
const INBOX_INSERT: &str =
    "INSERT INTO inbox (id, delivery_id, user_id, category, title, body, link, data, created_at) ";
const INBOX_INSERT_COLUMNS: usize = 9;

/// The bound bytes of delivery rows, for [`rows_builder`].
fn delivery_bytes<R: Borrow<NewDelivery>>(rows: &[R]) -> usize {
    rows.iter()
        .map(Borrow::borrow)
        .map(|r: &NewDelivery| {
            r.id.len()
                + text_len(&r.idempotency_key)
                + r.notification_type.len()
                + r.payload.len()
                + text_len(&r.last_error)
                + ROW_OVERHEAD
        })
        .sum()
}

/// The bound bytes of inbox rows, for [`rows_builder`].
fn inbox_bytes<R: Borrow<InboxRow>>(rows: &[R]) -> usize {
    rows.iter()
        .map(Borrow::borrow)
        .map(|r: &InboxRow| {
            r.id.len()
                + r.delivery_id.len()
                + r.user_id.len()
                + text_len(&r.category)
                + r.title.len()
                + text_len(&r.body)
                + text_len(&r.link)
                + text_len(&r.data)
                + ROW_OVERHEAD
        })
        .sum()
}

/// Pushes `VALUES (…), (…)` of delivery rows onto a builder of either backend (a macro, as
/// `with_tx!` is: the same code for each backend's argument types).
macro_rules! push_delivery_values {
    ($q:expr, $rows:expr) => {
        $q.push_values($rows.iter().map(Borrow::borrow), |mut b, r: &NewDelivery| {
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
        })
    };
}

/// Pushes `VALUES (…), (…)` of inbox rows onto a builder of either backend.
macro_rules! push_inbox_values {
    ($q:expr, $rows:expr) => {
        $q.push_values($rows.iter().map(Borrow::borrow), |mut b, r: &InboxRow| {
            b.push_bind(r.id.as_str())
                .push_bind(r.delivery_id.as_str())
                .push_bind(r.user_id.as_str())
                .push_bind(r.category.as_deref())
                .push_bind(r.title.as_str())
                .push_bind(r.body.as_deref())
                .push_bind(r.link.as_deref())
                .push_bind(r.data.as_deref())
                .push_bind(r.created_at);
        })
    };
}

/// Inserts delivery rows, 500 per multi-row statement, inside the caller's transaction.
pub async fn insert_deliveries<R: Borrow<NewDelivery>>(tx: &mut Tx, rows: &[R]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        with_tx!(tx, conn => {
            let mut q = rows_builder(DELIVERY_INSERT, chunk.len(), DELIVERY_INSERT_COLUMNS, delivery_bytes(chunk));
            push_delivery_values!(q, chunk);
            q.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Inserts inbox rows, 500 per multi-row statement, inside the caller's transaction.
pub async fn insert_inbox<R: Borrow<InboxRow>>(tx: &mut Tx, rows: &[R]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        with_tx!(tx, conn => {
            let mut q = rows_builder(INBOX_INSERT, chunk.len(), INBOX_INSERT_COLUMNS, inbox_bytes(chunk));
            push_inbox_values!(q, chunk);
            q.build().execute(&mut *conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

impl Store {
    /// Commits what the accept path planned: delivery rows and their inbox rows, in one
    /// transaction of their own.
    ///
    /// On MySQL that is BEGIN, the multi-row INSERTs and COMMIT, one round trip each. On SQLite
    /// it is one command to the connection's thread: sqlx runs each statement of a query string
    /// in turn, binding the arguments across them, so `BEGIN IMMEDIATE; INSERT …; INSERT …;
    /// COMMIT` is one hand-off to that thread and one back, where sqlx's `Transaction` takes
    /// four round trips (its BEGIN and COMMIT each wait for the caller to take the answer).
    /// Under the SNS benchmark the cores sat a third idle waiting on those hand-offs; with one
    /// trip allim answered 6–32 % more requests a second on SQLite, binaries interleaved
    /// (bench/README.md, 2026-12-07 evening).
    ///
    /// All of it, from taking a connection to the answer to COMMIT, within
    /// `ALLIM_DB_WRITE_TIMEOUT`; past it the commit is abandoned with [`StoreError::Timeout`],
    /// its outcome unknown. On MySQL the transaction is dropped where it stands: sqlx rolls it
    /// back, or finds the connection dead, before the pool hands it out again (on a database
    /// that stopped answering that check waits out TCP, holding one pool slot, not a writer).
    /// On SQLite the statement's task runs on to its commit or rollback.
    pub async fn commit_accepted(&self, deliveries: &[&NewDelivery], inbox: &[&InboxRow]) -> StoreResult<()> {
        let commit = async {
            match &self.pool {
                super::Pool::Sqlite(pool) => {
                    self.kick_checkpointer();
                    sqlite_one_trip(pool, deliveries, inbox).await
                }
                super::Pool::MySql(_) => {
                    let mut tx = self.begin().await?;
                    insert_deliveries(&mut tx, deliveries).await?;
                    if !inbox.is_empty() {
                        insert_inbox(&mut tx, inbox).await?;
                    }
                    tx.commit().await
                }
            }
        };
        tokio::time::timeout(self.write_timeout, commit)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.write_timeout)))
    }
}

/// SQLite: the transaction of [`Store::commit_accepted`] as one query string, run by a task of
/// its own. A caller dropped while the query runs (an HTTP client went away) does not stop it:
/// sqlx's thread stops running a query's statements once nobody takes their results, which
/// would leave the transaction BEGIN opened on a connection going back to the pool. The task
/// commits, or rolls back on an error, whatever became of its caller.
async fn sqlite_one_trip(pool: &sqlx::SqlitePool, deliveries: &[&NewDelivery], inbox: &[&InboxRow]) -> StoreResult<()> {
    use sqlx::Arguments;
    use tracing::Instrument;
    // One INSERT per CHUNK rows, as pushed below: its head, its values and "; ".
    let inserts = |head: &str, rows: usize, columns: usize| -> usize {
        (0..rows)
            .step_by(CHUNK)
            .map(|first| head.len() + values_len(CHUNK.min(rows - first), columns) + 2)
            .sum()
    };
    let mut sql = String::with_capacity(
        "BEGIN IMMEDIATE; COMMIT".len()
            + inserts(DELIVERY_INSERT, deliveries.len(), DELIVERY_INSERT_COLUMNS)
            + inserts(INBOX_INSERT, inbox.len(), INBOX_INSERT_COLUMNS),
    );
    sql.push_str("BEGIN IMMEDIATE; ");
    let placeholders = deliveries.len() * DELIVERY_INSERT_COLUMNS + inbox.len() * INBOX_INSERT_COLUMNS;
    let mut args = sqlx::sqlite::SqliteArguments::default();
    args.reserve(placeholders, delivery_bytes(deliveries) + inbox_bytes(inbox));
    let mut q = QueryBuilder::<sqlx::Sqlite>::with_arguments(sql, args);
    for chunk in deliveries.chunks(CHUNK) {
        q.push(DELIVERY_INSERT);
        push_delivery_values!(q, chunk);
        q.push("; ");
    }
    for chunk in inbox.chunks(CHUNK) {
        q.push(INBOX_INSERT);
        push_inbox_values!(q, chunk);
        q.push("; ");
    }
    q.push("COMMIT");
    let pool = pool.clone();
    let task = tokio::spawn(
        async move {
            let mut conn = pool.acquire().await?;
            match q.build().execute(&mut *conn).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // The statements stopped at the one that failed: roll back what BEGIN opened.
                    // If that fails too (BEGIN itself failed, say), the connection is closed
                    // rather than returned to the pool in an unknown state.
                    if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                        conn.close_on_drop();
                    }
                    Err(e.into())
                }
            }
        }
        .in_current_span(),
    );
    match task.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down, and its callers with it. Whether the query
        // ran is not known; it is reported as the database being unavailable.
        Err(_) => Err(StoreError::Db(sqlx::Error::PoolClosed)),
    }
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Context;

    use sqlx::Connection;

    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn delivery(key: &str) -> NewDelivery {
        NewDelivery {
            id: crate::store::new_id(),
            idempotency_key: Some(key.to_string()),
            notification_type: "APP_NOTIFICATION".into(),
            source: "sns",
            payload: format!(r#"{{"notificationType":"APP_NOTIFICATION","userId":"u","title":"{key}"}}"#),
            status: DeliveryStatus::Delivered,
            next_attempt_at: None,
            last_error: None,
            now: NOW,
        }
    }

    fn inbox(d: &NewDelivery) -> InboxRow {
        InboxRow {
            id: crate::store::new_id(),
            delivery_id: d.id.clone(),
            user_id: "u".into(),
            category: None,
            title: d.idempotency_key.clone().unwrap_or_default(),
            body: None,
            link: None,
            data: None,
            created_at: NOW,
            read_at: None,
        }
    }

    async fn counts(store: &Store) -> (i64, i64) {
        (
            store.scalar("SELECT COUNT(*) FROM deliveries").await.unwrap(),
            store.scalar("SELECT COUNT(*) FROM inbox").await.unwrap(),
        )
    }

    /// A file-backed SQLite store as allim opens it (one connection, WAL, the checkpointer).
    async fn file_store(dir: &tempfile::TempDir) -> (Store, String) {
        let url = format!("sqlite://{}", dir.path().join("allim.db").display());
        let mut args = crate::settings::defaults::<crate::store::DbArgs>();
        args.database_url = url.clone().into();
        let store = Store::connect(&args).await.unwrap();
        store.migrate().await.unwrap();
        (store, url)
    }

    /// A commit whose second row repeats a stored key fails whole: the first row is not kept,
    /// the error is the unique violation the accept path looks for, and the connection is left
    /// out of any transaction (the next commit and an ordinary transaction both work).
    #[tokio::test]
    async fn a_failed_commit_keeps_nothing_and_leaves_the_connection_usable() {
        let store = Store::memory().await;
        let first = delivery("k1");
        store.commit_accepted(&[&first], &[&inbox(&first)]).await.unwrap();

        let fresh = delivery("k2");
        let again = delivery("k1");
        let err = store
            .commit_accepted(&[&fresh, &again], &[&inbox(&fresh), &inbox(&again)])
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(counts(&store).await, (1, 1), "nothing of the failed commit is kept");

        let third = delivery("k3");
        store.commit_accepted(&[&third], &[&inbox(&third)]).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        insert_deliveries(&mut tx, &[delivery("k4")]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(counts(&store).await, (3, 2));
    }

    /// More rows than one statement takes: several INSERTs in the one query, all committed.
    #[tokio::test]
    async fn a_commit_of_more_than_one_chunk_keeps_every_row() {
        let store = Store::memory().await;
        let rows: Vec<NewDelivery> = (0..CHUNK + 7).map(|i| delivery(&format!("c{i}"))).collect();
        let boxes: Vec<InboxRow> = rows.iter().map(inbox).collect();
        store
            .commit_accepted(&rows.iter().collect::<Vec<_>>(), &boxes.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(counts(&store).await, (CHUNK as i64 + 7, CHUNK as i64 + 7));
    }

    /// A commit whose caller is dropped while its query waits (an HTTP client went away)
    /// still commits, and leaves no transaction open on the pool's connection. Here another
    /// connection holds the write lock, so the query's `BEGIN IMMEDIATE` waits; the caller is
    /// dropped meanwhile. Run by the caller, the query would be stopped after a statement or
    /// two, so that either nothing is kept or the connection goes back to the pool inside the
    /// transaction BEGIN opened and the next commit fails ("cannot start a transaction within a
    /// transaction"); which of the two depends on how far sqlx's thread got (both were seen).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_whose_caller_is_dropped_completes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url) = file_store(&dir).await;
        let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();

        let row = delivery("dropped");
        let boxed = inbox(&row);
        {
            let (deliveries, boxes) = ([&row], [&boxed]);
            let mut commit = std::pin::pin!(store.commit_accepted(&deliveries, &boxes));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(
                commit.as_mut().poll(&mut cx).is_pending(),
                "the write lock is held elsewhere"
            );
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut blocker).await.unwrap();

        let next = delivery("next");
        store.commit_accepted(&[&next], &[&inbox(&next)]).await.unwrap();
        let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM deliveries ORDER BY id")
            .fetch_all(&mut blocker)
            .await
            .unwrap();
        assert_eq!(keys, ["dropped", "next"]);
        assert_eq!(counts(&store).await, (2, 2));
    }
}
