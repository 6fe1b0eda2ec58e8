//! Watchers' state: who polls a watcher now (a lease), when it polls next, what happened last,
//! the items seen (by hash) and the open digest window's totals.

use sqlx::QueryBuilder;

use super::{Backend, Store, StoreResult, with_pool, with_tx};

/// One watcher's stored state.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct WatcherRow {
    pub name: String,
    pub owner: Option<String>,
    pub lease_until: Option<i64>,
    pub next_poll_at: i64,
    pub initialized: i64,
    pub last_poll_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub failures: i64,
    pub items_seen: i64,
    pub digest_start: Option<i64>,
    pub digest_count: i64,
    pub digest_sum: f64,
    /// JSON array of the window's first items.
    pub digest_first: Option<String>,
    pub updated_at: i64,
}

const COLUMNS: &str = "name, owner, lease_until, next_poll_at, initialized, last_poll_at, last_success_at, \
     last_error, failures, items_seen, digest_start, digest_count, digest_sum, digest_first, updated_at";

/// What one successful poll changes, written in one transaction.
#[derive(Debug, Clone)]
pub struct PollRecord<'a> {
    pub name: &'a str,
    pub now: i64,
    pub next_poll_at: i64,
    /// Hashes of every item in the answer (new and seen).
    pub all: &'a [String],
    /// Hashes of the new ones.
    pub new: &'a [String],
    /// The digest window's totals after this poll, when the watcher has a digest.
    pub digest: Option<(i64, i64, f64, String)>,
}

impl Store {
    /// Creates a watcher's row if it has none (first poll due at `first_poll_at`).
    pub async fn ensure_watcher(&self, name: &str, now: i64, first_poll_at: i64) -> StoreResult<()> {
        let insert = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO watcher_state (name, next_poll_at, updated_at) VALUES (?, ?, ?)",
            Backend::Sqlite => "INSERT OR IGNORE INTO watcher_state (name, next_poll_at, updated_at) VALUES (?, ?, ?)",
        };
        with_pool!(self, p => sqlx::query(insert).bind(name).bind(first_poll_at).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn watcher(&self, name: &str) -> StoreResult<Option<WatcherRow>> {
        let sql = format!("SELECT {COLUMNS} FROM watcher_state WHERE name = ?");
        Ok(with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(p).await)?)
    }

    /// Every watcher's row, by name.
    pub async fn watchers(&self) -> StoreResult<std::collections::HashMap<String, WatcherRow>> {
        let sql = format!("SELECT {COLUMNS} FROM watcher_state");
        let rows: Vec<WatcherRow> = with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)?;
        Ok(rows.into_iter().map(|r| (r.name.clone(), r)).collect())
    }

    /// Takes the watcher's lease for `owner` until `until` when it is free, expired or already
    /// `owner`'s, and (unless `force`) only when the watcher is due. Whether `owner` holds it.
    pub async fn lease_watcher(&self, name: &str, owner: &str, now: i64, until: i64, force: bool) -> StoreResult<bool> {
        let due = if force { "" } else { " AND next_poll_at <= ?" };
        let sql = format!(
            "UPDATE watcher_state SET owner = ?, lease_until = ?, updated_at = ? \
             WHERE name = ? AND (owner IS NULL OR owner = ? OR lease_until < ?){due}"
        );
        let holder: Option<String> = with_pool!(self, p => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(owner)
                .bind(until)
                .bind(now)
                .bind(name)
                .bind(owner)
                .bind(now);
            if !force {
                q = q.bind(now);
            }
            q.execute(p).await?;
            // Read back rather than trust rows_affected: MySQL counts only changed rows.
            sqlx::query_scalar("SELECT owner FROM watcher_state WHERE name = ? AND lease_until >= ?")
                .bind(name)
                .bind(now)
                .fetch_optional(p)
                .await?
                .flatten()
        });
        Ok(holder.as_deref() == Some(owner))
    }

    /// Which of `hashes` the watcher has not seen.
    pub async fn unseen_items(&self, name: &str, hashes: &[String]) -> StoreResult<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        for chunk in hashes.chunks(super::deliveries::CHUNK) {
            let found: Vec<String> = with_pool!(self, p => {
                let mut q = QueryBuilder::new("SELECT item_hash FROM watcher_items WHERE watcher = ");
                q.push_bind(name).push(" AND item_hash IN (");
                let mut list = q.separated(", ");
                for h in chunk {
                    list.push_bind(h.as_str());
                }
                q.push(")");
                q.build_query_scalar().fetch_all(p).await?
            });
            seen.extend(found);
        }
        let mut out: Vec<String> = hashes.iter().filter(|h| !seen.contains(*h)).cloned().collect();
        out.dedup();
        Ok(out)
    }

    /// Records a successful poll: new items seen, every listed item's last sighting, the digest
    /// totals, the next poll; and gives the lease back. One transaction.
    pub async fn record_poll(&self, r: &PollRecord<'_>) -> StoreResult<()> {
        let insert = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO watcher_items (watcher, item_hash, first_seen_at, last_seen_at) ",
            Backend::Sqlite => "INSERT OR IGNORE INTO watcher_items (watcher, item_hash, first_seen_at, last_seen_at) ",
        };
        let mut tx = self.begin().await?;
        with_tx!(&mut tx, c => {
            for chunk in r.new.chunks(super::deliveries::CHUNK) {
                let mut q = QueryBuilder::new(insert);
                q.push_values(chunk, |mut b, h| {
                    b.push_bind(r.name).push_bind(h.as_str()).push_bind(r.now).push_bind(r.now);
                });
                q.build().execute(&mut *c).await?;
            }
            for chunk in r.all.chunks(super::deliveries::CHUNK) {
                let mut q = QueryBuilder::new("UPDATE watcher_items SET last_seen_at = ");
                q.push_bind(r.now).push(" WHERE watcher = ").push_bind(r.name).push(" AND item_hash IN (");
                let mut list = q.separated(", ");
                for h in chunk {
                    list.push_bind(h.as_str());
                }
                q.push(")");
                q.build().execute(&mut *c).await?;
            }
            let (start, count, sum, first) = match &r.digest {
                Some((s, c, v, f)) => (Some(*s), *c, *v, Some(f.as_str())),
                None => (None, 0, 0.0, None),
            };
            sqlx::query(
                "UPDATE watcher_state SET initialized = 1, last_poll_at = ?, last_success_at = ?, last_error = NULL, \
                 failures = 0, items_seen = items_seen + ?, next_poll_at = ?, digest_start = ?, digest_count = ?, \
                 digest_sum = ?, digest_first = ?, owner = NULL, lease_until = NULL, updated_at = ? WHERE name = ?",
            )
            .bind(r.now)
            .bind(r.now)
            .bind(r.new.len() as i64)
            .bind(r.next_poll_at)
            .bind(start)
            .bind(count)
            .bind(sum)
            .bind(first)
            .bind(r.now)
            .bind(r.name)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed poll (the next one backs off) and gives the lease back.
    pub async fn record_poll_failure(&self, name: &str, now: i64, next_poll_at: i64, error: &str) -> StoreResult<()> {
        let error: String = error.chars().take(1000).collect();
        with_pool!(self, p => sqlx::query(
            "UPDATE watcher_state SET last_poll_at = ?, last_error = ?, failures = failures + 1, next_poll_at = ?, \
             owner = NULL, lease_until = NULL, updated_at = ? WHERE name = ?",
        )
        .bind(now)
        .bind(error)
        .bind(next_poll_at)
        .bind(now)
        .bind(name)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Closes a digest window: its totals start again at `next_start`.
    pub async fn reset_digest(&self, name: &str, next_start: i64, now: i64) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE watcher_state SET digest_start = ?, digest_count = 0, digest_sum = 0, digest_first = NULL, \
             updated_at = ? WHERE name = ?",
        )
        .bind(next_start)
        .bind(now)
        .bind(name)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Forgets items no answer has listed since `before` (ms).
    pub async fn forget_watcher_items(&self, before: i64) -> StoreResult<u64> {
        Ok(
            with_pool!(self, p => sqlx::query("DELETE FROM watcher_items WHERE last_seen_at < ?")
            .bind(before)
            .execute(p)
            .await?
            .rows_affected()),
        )
    }
}
