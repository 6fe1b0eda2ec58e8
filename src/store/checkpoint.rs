//! SQLite only: copies the write-ahead log back into the database file on a connection of its
//! own, so that commits do not wait for it.
//!
//! In WAL mode a commit appends pages to the log; a checkpoint later copies them into the
//! database file and syncs both. By default SQLite runs that checkpoint inside the commit that
//! takes the log past 1,000 pages, on the committing connection — allim's only one — so every
//! request waiting for a group commit waits for the checkpoint too. During the SNS benchmark the
//! disk took 200–240 MB of writes a second, so the log passed 1,000 pages (4 MB) dozens of times
//! a second. Here a task checkpoints (`PASSIVE`: it never blocks the writer or readers) shortly
//! after transactions begin, and the writer's own checkpoint is only a backstop past
//! [`WRITER_CHECKPOINT_PAGES`], which keeps the log bounded (~40 MB) even if this task falls
//! behind or cannot open its connection. Measured (bench/README.md, 2026-12-06): SNS on SQLite
//! +18–24 % req/s and p99 −20 % at the same CPU per request, binaries interleaved.
//!
//! Hand-written rather than a crate's: sqlx has no background checkpointer, and this is one
//! statement run after a kick.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::{mpsc, watch};

/// The log size (pages of 4 KB) at which a commit checkpoints by itself (SQLite's
/// `wal_autocheckpoint`; its default is 1,000).
pub(crate) const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// How long the task gathers kicks before it checkpoints: at most 50 checkpoints a second,
/// each with two syncs, under a steady stream of commits.
const GATHER: Duration = Duration::from_millis(20);

/// What the last checkpoint did (`PRAGMA wal_checkpoint`'s answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Pages in the log when it last ran.
    pub log_pages: i64,
    /// Of those, pages copied into the database file (all of them unless a writer appended
    /// meanwhile).
    pub checkpointed_pages: i64,
}

/// The handle the store keeps: kicking it asks for a checkpoint soon. The task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Checkpointer {
    kick: mpsc::Sender<()>,
    stats: watch::Receiver<CheckpointStats>,
}

impl Checkpointer {
    /// Starts the task; it opens its connection with `options` at the first kick.
    pub(crate) fn spawn(options: SqliteConnectOptions) -> Checkpointer {
        let (kick, mut kicks) = mpsc::channel::<()>(1);
        let (report, stats) = watch::channel(CheckpointStats::default());
        tokio::spawn(async move {
            let mut conn: Option<sqlx::SqliteConnection> = None;
            // One warning per run of failures, not one per kick (up to 50 a second under load).
            let mut failing = false;
            while kicks.recv().await.is_some() {
                tokio::time::sleep(GATHER).await;
                while kicks.try_recv().is_ok() {}
                let checkpoint = async {
                    let c = match &mut conn {
                        Some(c) => c,
                        None => conn.insert(options.connect().await?),
                    };
                    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                        .fetch_one(c)
                        .await
                };
                match checkpoint.await {
                    Ok((_busy, log_pages, checkpointed_pages)) => {
                        failing = false;
                        report.send_replace(CheckpointStats {
                            log_pages,
                            checkpointed_pages,
                        });
                    }
                    Err(e) => {
                        // Not fatal: commits then checkpoint by themselves past the backstop.
                        conn = None;
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %e, "SQLite checkpointer: cannot open its connection or checkpoint");
                        }
                    }
                }
            }
        });
        Checkpointer { kick, stats }
    }

    /// Asks for a checkpoint within [`GATHER`]; never waits.
    pub(crate) fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    /// What the task has done so far.
    pub(crate) fn stats(&self) -> watch::Receiver<CheckpointStats> {
        self.stats.clone()
    }
}
