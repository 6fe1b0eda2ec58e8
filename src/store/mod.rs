//! The store: the database is allim's source of truth. Two backends sit behind this one
//! interface — SQLite (the embedded default) and MySQL / MariaDB (production, behind RDS
//! Proxy) — through sqlx's `Any` driver, so each query is written once. The schema is kept
//! portable for that: times are epoch milliseconds, ids are UUIDv7 strings made here.
//!
//! Each query is one small function. Functions that must run inside the accept transaction
//! take `&mut AnyConnection`; the rest take the pool.

pub mod alarms;
mod devices;
mod dispatch;
mod inbox;
pub mod rds;

pub use devices::DeviceRow;
pub use dispatch::{DeadLetterFilter, Finish};
pub use inbox::{InboxRow, ListInbox};

use std::borrow::Borrow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Executor, Row};

use crate::config::{Backend, Config};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

/// Errors from the store. Callers mostly need to know "the database is unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// A unique-key violation (the idempotency key or the inbox's delivery id).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Status of a delivery row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Dead,
            DeliveryStatus::Rejected,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
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

/// An inbox row to insert.
#[derive(Debug, Clone)]
pub struct NewInbox {
    pub id: String,
    pub delivery_id: String,
    pub user_id: String,
    pub category: Option<String>,
    pub title: String,
    pub body: Option<String>,
    pub link: Option<String>,
    pub data: Option<String>,
    pub created_at: i64,
}

/// A delivery as stored.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub notification_type: String,
    pub source: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub dry_run: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, idempotency_key, notification_type, source, payload, status, attempts, \
     next_attempt_at, last_error, dry_run, created_at, updated_at, delivered_at";

impl DeliveryRow {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(DeliveryRow {
            id: row.try_get("id")?,
            idempotency_key: row.try_get("idempotency_key")?,
            notification_type: row.try_get("notification_type")?,
            source: row.try_get("source")?,
            payload: row.try_get("payload")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_error: row.try_get("last_error")?,
            dry_run: row.try_get::<i64, _>("dry_run")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            delivered_at: row.try_get("delivered_at")?,
        })
    }
}

/// The database handle shared by every part of allim.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// With IAM auth: what the token refresher needs.
    iam: Option<(rds::MySqlTarget, std::sync::Arc<dyn rds::TokenSource>)>,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Store {
    /// Opens the pool. SQLite files are created on first use.
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        Self::connect_with(config, None).await
    }

    /// As [`Store::connect`]; `tokens` replaces the IAM token source (tests).
    pub async fn connect_with(
        config: &Config,
        tokens: Option<std::sync::Arc<dyn rds::TokenSource>>,
    ) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = config.backend()?;
        let mut url = config.database_url.expose().to_string();
        if backend == Backend::Sqlite && !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
        }
        let mut iam = None;
        let options = if backend == Backend::MySql && (config.db_tls || config.db_iam_auth) {
            let target = rds::MySqlTarget {
                url: reqwest::Url::parse(&url).context("DATABASE_URL is not a valid database URL")?,
                tls_ca: config.db_tls.then(|| config.db_ca.clone()),
                cleartext: config.db_iam_auth,
            };
            if config.db_iam_auth {
                let tokens: std::sync::Arc<dyn rds::TokenSource> = match tokens {
                    Some(t) => t,
                    None => std::sync::Arc::new(rds::IamTokens::new(&target).await?),
                };
                let options = rds::fresh_options(&target, tokens.as_ref()).await?;
                iam = Some((target, tokens));
                options
            } else {
                AnyConnectOptions::from_str(&target.url_with_password(None))
                    .context("DATABASE_URL is not a valid database URL")?
            }
        } else {
            AnyConnectOptions::from_str(&url).context("DATABASE_URL is not a valid database URL")?
        };
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let pool = match backend {
            // One connection: SQLite has one writer anyway, and a single connection avoids
            // SQLITE_BUSY upgrades between concurrent transactions.
            Backend::Sqlite => pool_options.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::MySql => pool_options
                .max_connections(config.db_max_connections)
                .min_connections(0)
                .idle_timeout(Duration::from_secs(300)),
        }
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to {}", config.database_url_redacted()))?;
        Ok(Store { pool, backend, iam })
    }

    /// With IAM auth, refreshes the token for new connections every `every` until shutdown.
    pub async fn refresh_iam_tokens(&self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        if let Some((target, tokens)) = &self.iam {
            rds::run_token_refresh(self.pool.clone(), target.clone(), tokens.clone(), every, shutdown).await;
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::MySql => &MYSQL_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("applying migrations")?;
        Ok(())
    }

    /// Cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Existing deliveries for these idempotency keys: key → (id, status).
    pub async fn find_by_keys(&self, keys: &[&str]) -> StoreResult<HashMap<String, (String, String)>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT idempotency_key, id, status FROM deliveries WHERE idempotency_key IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(*k);
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert(
                    row.try_get("idempotency_key")?,
                    (row.try_get("id")?, row.try_get("status")?),
                );
            }
        }
        Ok(found)
    }

    pub async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(DeliveryRow::from_row).transpose()?)
    }
}

/// `?, ?, …` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// `INSERT … VALUES (?, …), (?, …)` for `rows` rows of `cols` columns.
fn multi_row_insert(head: &str, cols: usize, rows: usize) -> String {
    let group = format!("({})", placeholders(cols));
    let mut sql = String::with_capacity(head.len() + 8 + rows * (group.len() + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
    sql
}

/// Inserts delivery rows in one multi-row statement.
pub async fn insert_deliveries<R: Borrow<NewDelivery>>(conn: &mut AnyConnection, rows: &[R]) -> StoreResult<()> {
    const COLS: usize = 10;
    for chunk in rows.chunks(500) {
        let sql = multi_row_insert(
            "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, \
             next_attempt_at, last_error, created_at, updated_at)",
            COLS,
            chunk.len(),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in chunk.iter().map(Borrow::borrow) {
            q = q
                .bind(r.id.as_str())
                .bind(r.idempotency_key.as_deref())
                .bind(r.notification_type.as_str())
                .bind(r.source)
                .bind(r.payload.as_str())
                .bind(r.status.as_str())
                .bind(r.next_attempt_at)
                .bind(r.last_error.as_deref())
                .bind(r.now)
                .bind(r.now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts inbox rows in one multi-row statement.
pub async fn insert_inbox<R: Borrow<NewInbox>>(conn: &mut AnyConnection, rows: &[R]) -> StoreResult<()> {
    const COLS: usize = 9;
    for chunk in rows.chunks(500) {
        let sql = multi_row_insert(
            "INSERT INTO inbox (id, delivery_id, user_id, category, title, body, link, data, created_at)",
            COLS,
            chunk.len(),
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in chunk.iter().map(Borrow::borrow) {
            q = q
                .bind(r.id.as_str())
                .bind(r.delivery_id.as_str())
                .bind(r.user_id.as_str())
                .bind(r.category.as_deref())
                .bind(r.title.as_str())
                .bind(r.body.as_deref())
                .bind(r.link.as_deref())
                .bind(r.data.as_deref())
                .bind(r.created_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
