//! Queries of the dispatcher and the dead-letter view.
//!
//! Claiming: due rows (`pending` or `failed`, `next_attempt_at <= now`, no live lease) are
//! leased to one process by writing `lease_owner` / `lease_until`; on MySQL the SELECT uses
//! `FOR UPDATE SKIP LOCKED`, so processes sharing the database never claim the same row.
//! SQLite runs one process and one connection, so the transaction alone is enough. A lease
//! that expires (its process died) makes the row claimable again. Every finishing UPDATE is
//! guarded by `lease_owner`, so a process that lost its lease cannot overwrite the new owner.

use sqlx::{Acquire, AssertSqlSafe, Row};

use super::{DELIVERY_COLUMNS, DeliveryRow, Store, StoreResult, placeholders};
use crate::config::Backend;

/// How a claimed delivery ended this attempt.
#[derive(Debug, Clone)]
pub enum Finish {
    Delivered { dry_run: bool },
    Retry { error: String, at: i64 },
    Dead { error: String },
}

/// Filter of the dead-letter listing and bulk redrive.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// `dead`, `rejected`, or both when `None`.
    pub status: Option<String>,
    pub notification_type: Option<String>,
    /// created_at ≥ since (ms)
    pub since: Option<i64>,
    /// created_at < until (ms)
    pub until: Option<i64>,
}

impl DeadLetterFilter {
    fn sql(&self, sql: &mut String, binds: &mut Vec<Bind>) {
        match &self.status {
            Some(s) => {
                sql.push_str(" AND status = ?");
                binds.push(Bind::Text(s.clone()));
            }
            None => sql.push_str(" AND status IN ('dead', 'rejected')"),
        }
        if let Some(t) = &self.notification_type {
            sql.push_str(" AND notification_type = ?");
            binds.push(Bind::Text(t.clone()));
        }
        if let Some(t) = self.since {
            sql.push_str(" AND created_at >= ?");
            binds.push(Bind::Int(t));
        }
        if let Some(t) = self.until {
            sql.push_str(" AND created_at < ?");
            binds.push(Bind::Int(t));
        }
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

impl Store {
    /// Leases up to `limit` due deliveries of the given types to `owner` until
    /// `now + lease_ms`, counting the attempt, and returns them.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
        types: &[&str],
    ) -> StoreResult<Vec<DeliveryRow>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let lock = match self.backend() {
            Backend::MySql => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let select = format!(
            "SELECT id FROM deliveries WHERE status IN ('pending', 'failed') AND next_attempt_at <= ? \
             AND notification_type IN ({}) AND (lease_until IS NULL OR lease_until < ?) \
             ORDER BY next_attempt_at, id LIMIT ?{lock}",
            placeholders(types.len())
        );
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let mut q = sqlx::query(AssertSqlSafe(select)).bind(now);
        for t in types {
            q = q.bind(*t);
        }
        let ids: Vec<String> = q
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let update = format!(
            "UPDATE deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ? \
             WHERE id IN ({})",
            placeholders(ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(update))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now);
        for id in &ids {
            q = q.bind(id.as_str());
        }
        q.execute(&mut *tx).await?;
        let fetch = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id IN ({}) ORDER BY next_attempt_at, id",
            placeholders(ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(fetch));
        for id in &ids {
            q = q.bind(id.as_str());
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.iter().map(DeliveryRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Records the end of an attempt. Returns false if `owner` no longer held the lease.
    pub async fn finish(&self, id: &str, owner: &str, now: i64, finish: &Finish) -> StoreResult<bool> {
        let done = match finish {
            Finish::Delivered { dry_run } => sqlx::query(
                "UPDATE deliveries SET status = 'delivered', delivered_at = ?, dry_run = ?, last_error = NULL, \
                 next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = ? \
                 WHERE id = ? AND lease_owner = ?",
            )
            .bind(now)
            .bind(i64::from(*dry_run))
            .bind(now)
            .bind(id)
            .bind(owner),
            Finish::Retry { error, at } => sqlx::query(
                "UPDATE deliveries SET status = 'failed', next_attempt_at = ?, last_error = ?, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?",
            )
            .bind(*at)
            .bind(error.as_str())
            .bind(now)
            .bind(id)
            .bind(owner),
            Finish::Dead { error } => sqlx::query(
                "UPDATE deliveries SET status = 'dead', next_attempt_at = NULL, last_error = ?, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?",
            )
            .bind(error.as_str())
            .bind(now)
            .bind(id)
            .bind(owner),
        }
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back every lease `owner` holds (at shutdown), so another process can take the
    /// rows at once instead of waiting for the leases to expire.
    pub async fn release_leases(&self, owner: &str, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, updated_at = ? \
             WHERE lease_owner = ? AND status IN ('pending', 'failed')",
        )
        .bind(now)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Dead and rejected deliveries, newest first, older than `before` (an id).
    pub async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1");
        let mut binds = Vec::new();
        filter.sql(&mut sql, &mut binds);
        if let Some(b) = before {
            sql.push_str(" AND id < ?");
            binds.push(Bind::Text(b.to_string()));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        binds.push(Bind::Int(i64::from(limit)));
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(DeliveryRow::from_row).collect::<Result<_, _>>()?)
    }

    /// Puts a dead delivery back to `pending` with fresh attempts. For a rejected one, the
    /// caller passes the corrected type and payload. Returns false if it was not dead/rejected.
    pub async fn redrive(&self, id: &str, now: i64, replace: Option<(&str, &str)>) -> StoreResult<bool> {
        let done = match replace {
            None => sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'dead'",
            )
            .bind(now)
            .bind(now)
            .bind(id),
            Some((kind, payload)) => sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, \
                 notification_type = ?, payload = ?, last_error = NULL, lease_owner = NULL, lease_until = NULL, \
                 updated_at = ? WHERE id = ? AND status = 'rejected'",
            )
            .bind(now)
            .bind(kind)
            .bind(payload)
            .bind(now)
            .bind(id),
        }
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redrives up to `limit` dead deliveries matching the filter; returns how many.
    pub async fn redrive_matching(&self, filter: &DeadLetterFilter, now: i64, limit: u32) -> StoreResult<u64> {
        let filter = DeadLetterFilter {
            status: Some("dead".into()),
            ..filter.clone()
        };
        let mut sql = String::from("SELECT id FROM deliveries WHERE 1 = 1");
        let mut binds = Vec::new();
        filter.sql(&mut sql, &mut binds);
        sql.push_str(" ORDER BY id LIMIT ?");
        binds.push(Bind::Int(i64::from(limit)));
        let ids: Vec<String> = bind_all(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut total = 0;
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_owner = NULL, \
                 lease_until = NULL, updated_at = ? WHERE status = 'dead' AND id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(now);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            total += q.execute(self.pool()).await?.rows_affected();
        }
        Ok(total)
    }
}
