//! The store: the database is allim's source of truth. Two backends sit behind this one
//! interface — SQLite (the embedded default) and MySQL / MariaDB (production, behind RDS
//! Proxy).
//!
//! How the store talks to the two: one concrete sqlx pool per backend ([`Pool`]), and each
//! query written once as SQL both understand (epoch-millisecond times, UUIDv7 string ids, `?`
//! placeholders) and run on whichever pool is open through [`with_pool!`] / [`with_tx!`], which
//! expand the same code once per backend. Why not sqlx's `Any` driver: it takes its options as
//! a URL only, so it could not enable the cleartext plugin that RDS Proxy IAM tokens need
//! without a patched fork of sqlx-mysql; and the concrete drivers let rows derive `FromRow` and
//! multi-row inserts use `QueryBuilder`. The few statements that differ (`FOR UPDATE SKIP
//! LOCKED`, `INSERT IGNORE`, upserts) pick their text by [`Backend`].
//!
//! Each query is one small function. Functions that must run inside a caller's transaction
//! (the accept commit, alarm routing) take `&mut Tx`; the rest take the store.

pub mod alarms;
mod args;
mod checkpoint;
mod deliveries;
mod devices;
mod dispatch;
mod inbox;
mod lanes;
pub mod rds;
mod results;
mod retention;
mod wake;
pub mod watchers;

pub use args::{DbArgs, redact_url};
pub use checkpoint::CheckpointStats;
pub use deliveries::{DeliveryRow, DeliverySearch, DeliveryStatus, NewDelivery, insert_deliveries, insert_inbox};
pub use devices::DeviceRow;
pub use dispatch::{AttemptRow, DeadLetterFilter, Finish};
pub use inbox::{InboxRow, ListInbox};
pub use results::{FinalResult, ResultRow, SentRecipient};
pub use retention::Purged;
pub use wake::Wake;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{MySql, MySqlPool, Sqlite, SqlitePool};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");

/// A pooled connection that sat idle at least this long is pinged before it is handed out.
/// sqlx's default pings every idle connection before every use (`test_before_acquire`): a round
/// trip per pool checkout on MariaDB, two thread hand-offs on SQLite, the most common query under
/// load (bench/README.md). A connection used within the last second is handed out as it is; if it
/// died within that second, its query fails as an outage, which every caller already handles as
/// it handles the database failing mid-query (an SQS batch is held and retried, HTTP and SNS get
/// 503 and their senders retry).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool's check before it hands out a connection (see [`PING_AFTER_IDLE`]).
fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(true)
    })
}

/// Runs `$body` with `$pool` bound to the open pool: the same code, compiled once per backend.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::MySql($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection, once per backend.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::MySql(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use {with_pool, with_tx};

/// Errors from the store. Callers mostly need to know "the database is unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value the code does not know (a status written by a newer version, say).
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// A write got no answer within `ALLIM_DB_WRITE_TIMEOUT`: it was abandoned, and whether
    /// the database committed it is not known.
    #[error("the database did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

impl StoreError {
    /// Whether the database could not be reached or was too busy (retry later), as opposed to
    /// refusing this statement's data (a row that will never fit as it is).
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                // MySQL: too many connections, lock wait timeout, deadlock, server gone / lost
                // (also as SQLSTATE 08xxx, 40001); SQLite: busy, locked.
                let code = e.code().unwrap_or_default();
                matches!(
                    code.as_ref(),
                    "1040" | "1205" | "1213" | "2006" | "2013" | "40001" | "5" | "6"
                ) || code.starts_with("08")
            }
            StoreError::Db(_) | StoreError::Timeout(_) => true,
            StoreError::Corrupt(_) => false,
        }
    }

    /// MySQL chose this transaction as a deadlock's victim and rolled it back (1213, SQLSTATE
    /// 40001): trying the same transaction again is the remedy MySQL documents.
    pub fn is_deadlock(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().unwrap_or_default().as_ref(), "1213" | "40001")
            }
            _ => false,
        }
    }

    /// A unique-key violation (the idempotency key or the inbox's delivery id).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database `DATABASE_URL` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    /// Which backend a database URL selects.
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        match url.split(':').next().unwrap_or_default() {
            "sqlite" => Ok(Backend::Sqlite),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            other => anyhow::bail!(
                "DATABASE_URL: unsupported scheme {other:?}; use sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB"
            ),
        }
    }
}

/// The open pool.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
}

/// An open transaction; commit it, or it rolls back when dropped.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    MySql(sqlx::Transaction<'static, MySql>),
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::MySql(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::MySql(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// The database handle shared by every part of allim.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// With IAM auth: what the token refresher needs.
    iam: Option<(rds::MySqlTarget, std::sync::Arc<dyn rds::TokenSource>)>,
    /// SQLite on a file: the background checkpointer, kicked as transactions begin.
    checkpointer: Option<checkpoint::Checkpointer>,
    /// `ALLIM_DB_WRITE_TIMEOUT`: the deadline of [`Store::commit_accepted`].
    write_timeout: Duration,
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Store {
    /// Opens the pool. SQLite files are created on first use.
    pub async fn connect(db: &DbArgs) -> anyhow::Result<Store> {
        Self::connect_with(db, None).await
    }

    /// As [`Store::connect`]; `tokens` replaces the IAM token source (tests).
    pub async fn connect_with(
        db: &DbArgs,
        tokens: Option<std::sync::Arc<dyn rds::TokenSource>>,
    ) -> anyhow::Result<Store> {
        let url = secrecy::ExposeSecret::expose_secret(&db.database_url);
        let cannot = || format!("cannot connect to {}", db.database_url_redacted());
        match db.backend()? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .context("DATABASE_URL is not a valid database URL")?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                // Checkpoints on a connection of their own, off the commit path (see
                // [`checkpoint`]); a commit checkpoints by itself only past the backstop.
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let checkpointer = (!in_memory).then(|| checkpoint::Checkpointer::spawn(options.clone()));
                let options = options
                    .pragma("wal_autocheckpoint", checkpoint::WRITER_CHECKPOINT_PAGES.to_string())
                    // A multi-row INSERT inside a transaction keeps a statement journal (the
                    // pages it changes, to undo just that statement if it fails). SQLite keeps
                    // it in memory up to 64 KB and then writes it to a temporary file; a group
                    // commit's INSERTs passed that, and those writes were 11 % of allim's CPU
                    // in the SNS profile (bench/README.md, 2026-12-06 night). With temp_store
                    // in memory the journal stays in memory: at most the pages one statement
                    // changes (a 500-row batch; +3 MB peak RSS under the batch benchmark),
                    // freed when the statement ends. Sorts are held in memory too; every
                    // ORDER BY allim runs is under a LIMIT or over one claimed batch. The
                    // journal's chunks are allocated and freed by every commit: the musl build
                    // gives SQLite mimalloc for that (native/sqlite_alloc.c).
                    .pragma("temp_store", "memory");
                // One connection: SQLite has one writer anyway, and a single connection avoids
                // SQLITE_BUSY upgrades between concurrent transactions.
                let pool = SqlitePoolOptions::new()
                    .acquire_timeout(db.db_acquire_timeout)
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .with_context(cannot)?;
                Ok(Store {
                    pool: Pool::Sqlite(pool),
                    iam: None,
                    checkpointer,
                    write_timeout: db.db_write_timeout,
                })
            }
            Backend::MySql => {
                let mut options =
                    MySqlConnectOptions::from_str(url).context("DATABASE_URL is not a valid database URL")?;
                if db.db_tls {
                    options = options.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca(&db.db_ca);
                }
                let mut iam = None;
                if db.db_iam_auth {
                    let target = rds::MySqlTarget { options };
                    let tokens: std::sync::Arc<dyn rds::TokenSource> = match tokens {
                        Some(t) => t,
                        None => std::sync::Arc::new(rds::IamTokens::new(&target).await?),
                    };
                    options = rds::fresh_options(&target, tokens.as_ref()).await?;
                    iam = Some((target, tokens));
                }
                let pool = MySqlPoolOptions::new()
                    .acquire_timeout(db.db_acquire_timeout)
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .max_connections(db.db_max_connections)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(300))
                    .connect_with(options)
                    .await
                    .with_context(cannot)?;
                Ok(Store {
                    pool: Pool::MySql(pool),
                    iam,
                    checkpointer: None,
                    write_timeout: db.db_write_timeout,
                })
            }
        }
    }

    /// With IAM auth, refreshes the token for new connections every `every` until shutdown.
    pub async fn refresh_iam_tokens(&self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        if let (Some((target, tokens)), Pool::MySql(pool)) = (&self.iam, &self.pool) {
            rds::run_token_refresh(pool.clone(), target.clone(), tokens.clone(), every, shutdown).await;
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// The MySQL pool, when that is the backend (tests look at its connect options).
    pub fn mysql_pool(&self) -> Option<&MySqlPool> {
        match &self.pool {
            Pool::MySql(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// SQLite on a file: tells the background checkpointer a transaction is starting.
    fn kick_checkpointer(&self) {
        if let Some(c) = &self.checkpointer {
            c.kick();
        }
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        self.kick_checkpointer();
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::MySql(p) => Tx::MySql(p.begin().await?),
        })
    }

    /// Applies the migrations of this backend. Several tasks may start at once: on MySQL they
    /// take turns under a named lock. (sqlx's own lock asks `GET_LOCK(name, -1)` and ignores the
    /// answer; MariaDB may answer 0 at once rather than wait, and two tasks then both apply
    /// migration 1 — seen in tests/it/chaos.rs.)
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await.context("applying migrations"),
            Pool::MySql(p) => {
                let mut conn = p.acquire().await.context("applying migrations")?;
                let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('allim_migrations', 300)")
                    .fetch_one(&mut *conn)
                    .await
                    .context("applying migrations: taking the migration lock")?;
                anyhow::ensure!(
                    locked == Some(1),
                    "applying migrations: another task held the migration lock for 5 minutes"
                );
                let applied = MYSQL_MIGRATIONS.run(&mut *conn).await.context("applying migrations");
                let _ = sqlx::query("SELECT RELEASE_LOCK('allim_migrations')")
                    .execute(&mut *conn)
                    .await;
                applied
            }
        }
    }

    /// Cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// One value from a query with no parameters (tests and checks: `SELECT COUNT(*) …`).
    pub async fn scalar<T>(&self, sql: &'static str) -> StoreResult<T>
    where
        T: Send + Unpin + sqlx::Type<Sqlite> + sqlx::Type<MySql>,
        T: for<'r> sqlx::Decode<'r, Sqlite> + for<'r> sqlx::Decode<'r, MySql>,
    {
        Ok(with_pool!(self, p => sqlx::query_scalar(sql).fetch_one(p).await)?)
    }

    /// SQLite on a file: what the background checkpointer has done (see [`checkpoint`]).
    pub fn checkpoints(&self) -> Option<tokio::sync::watch::Receiver<CheckpointStats>> {
        self.checkpointer.as_ref().map(checkpoint::Checkpointer::stats)
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

impl Store {
    /// A fresh, migrated in-memory SQLite store, for unit tests.
    #[cfg(test)]
    pub(crate) async fn memory() -> Store {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").expect("static URL");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .expect("in-memory SQLite opens");
        let store = Store {
            pool: Pool::Sqlite(pool),
            iam: None,
            checkpointer: None,
            write_timeout: Duration::from_secs(10),
        };
        store.migrate().await.expect("migrations apply");
        store
    }
}
