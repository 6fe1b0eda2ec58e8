//! Queries of the dispatcher and the dead-letter view.
//!
//! Claiming: due rows (`pending` or `failed`, `next_attempt_at <= now`, no live lease) are
//! leased to one process by writing `lease_owner` / `lease_until`; on MySQL the SELECT uses
//! `FOR UPDATE SKIP LOCKED`, so processes sharing the database never claim the same row.
//! SQLite runs one process and one connection, so the transaction alone is enough. A lease
//! that expires (its process died) makes the row claimable again. Every finishing UPDATE is
//! guarded by `lease_owner`, so a process that lost its lease cannot overwrite the new owner.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::deliveries::{CHUNK, DELIVERY_COLUMNS};
use super::{Backend, DeliveryRow, DeliveryStatus, Store, StoreResult, with_pool, with_tx};

/// How a claimed delivery ended this attempt.
#[derive(Debug, Clone)]
pub enum Finish {
    Delivered {
        dry_run: bool,
    },
    Retry {
        error: String,
        at: i64,
    },
    Dead {
        error: String,
    },
    /// Back in the queue at `at` without using up an attempt (the provider refused allim's
    /// credentials: nothing was wrong with the delivery).
    Requeue {
        error: String,
        at: i64,
    },
}

/// One recorded send attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: i64,
    /// `delivered`, `retry`, `dead` or `requeued` (credentials refused; no attempt used).
    pub outcome: String,
    pub error: Option<String>,
}

/// Filter of the dead-letter listing and bulk redrive.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// `dead`, `rejected`, or both when `None`.
    pub status: Option<DeliveryStatus>,
    pub notification_type: Option<String>,
    /// created_at ≥ since (ms)
    pub since: Option<i64>,
    /// created_at < until (ms)
    pub until: Option<i64>,
}

impl DeadLetterFilter {
    /// Appends ` AND …` conditions (the query already has a WHERE).
    fn push<DB: Database>(&self, q: &mut QueryBuilder<DB>)
    where
        for<'t> &'t str: Encode<'t, DB> + Type<DB>,
        for<'t> i64: Encode<'t, DB> + Type<DB>,
    {
        match self.status {
            Some(s) => {
                q.push(" AND status = ").push_bind(s.as_str());
            }
            None => {
                q.push(" AND status IN ('dead', 'rejected')");
            }
        }
        if let Some(t) = &self.notification_type {
            q.push(" AND notification_type = ").push_bind(t.as_str());
        }
        if let Some(t) = self.since {
            q.push(" AND created_at >= ").push_bind(t);
        }
        if let Some(t) = self.until {
            q.push(" AND created_at < ").push_bind(t);
        }
    }
}

/// How long past the end of another owner's lease a row waits before it is taken over: a third
/// of the lease, the period at which owners renew (`Store::claim_due`).
fn takeover_after(lease_ms: i64) -> i64 {
    lease_ms / 3
}

/// `(?, ?, …)` binding each id, for `IN`.
fn push_ids<DB: Database>(q: &mut QueryBuilder<DB>, ids: &[String])
where
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
{
    q.push(" (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    q.push(")");
}

impl Store {
    /// Leases up to `limit` due deliveries of one type (a lane's) to `owner` until
    /// `now + lease_ms`, counting the attempt, and returns them, oldest due first. Reads the
    /// `(notification_type, next_attempt_at, id)` index in order, so LIMIT stops early.
    ///
    /// A row another owner leased is taken over only a third of a lease past its lease's end
    /// (`takeover_after`): the owner checks its lease right up to that end before a provider
    /// call, and after the database was unreachable it gets that long to renew the leases of
    /// rows whose provider call was already under way (their outcome not yet recorded) before
    /// anyone sends them again. The margin also absorbs clocks that differ between tasks.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
        kind: &str,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let lock = match self.backend() {
            Backend::MySql => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut q = QueryBuilder::new("SELECT id FROM deliveries WHERE notification_type = ");
            q.push_bind(kind)
                .push(" AND next_attempt_at <= ")
                .push_bind(now)
                .push(" AND status IN ('pending', 'failed') AND (lease_until IS NULL OR lease_until < ")
                .push_bind(now - takeover_after(lease_ms))
                .push(") ORDER BY next_attempt_at, id LIMIT ")
                .push_bind(i64::from(limit))
                .push(lock);
            let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let mut q = QueryBuilder::new("UPDATE deliveries SET lease_owner = ");
            q.push_bind(owner)
                .push(", lease_until = ")
                .push_bind(now + lease_ms)
                .push(", attempts = attempts + 1, updated_at = ")
                .push_bind(now)
                .push(" WHERE id IN");
            push_ids(&mut q, &ids);
            q.build().execute(&mut *tx).await?;
            let mut q = QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id IN"));
            push_ids(&mut q, &ids);
            q.push(" ORDER BY next_attempt_at, id");
            let rows: Vec<DeliveryRow> = q.build_query_as().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        });
        Ok(rows)
    }

    /// Records the end of an attempt. Returns false if `owner` no longer held the lease.
    pub async fn finish(&self, id: &str, owner: &str, now: i64, finish: &Finish) -> StoreResult<bool> {
        // (status, delivered_at, dry_run, next_attempt_at, last_error); `None` in the first
        // three keeps what the row has.
        let (status, delivered_at, dry_run, next_attempt_at, last_error) = match finish {
            Finish::Delivered { dry_run } => (
                DeliveryStatus::Delivered,
                Some(now),
                Some(i64::from(*dry_run)),
                None,
                None,
            ),
            Finish::Retry { error, at } | Finish::Requeue { error, at } => {
                (DeliveryStatus::Failed, None, None, Some(*at), Some(error.as_str()))
            }
            Finish::Dead { error } => (DeliveryStatus::Dead, None, None, None, Some(error.as_str())),
        };
        // A requeue gives back the attempt the claim counted.
        let give_back = i64::from(matches!(finish, Finish::Requeue { .. }));
        let outcome = match finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => "retry",
            Finish::Dead { .. } => "dead",
            Finish::Requeue { .. } => "requeued",
        };
        // The column holds 1000 characters; errors are already shortened by the channels.
        let error: Option<String> = last_error.map(|e| e.chars().take(1000).collect());
        // A deadlock's victim is tried again (MySQL rolled it back whole): under load this
        // UPDATE, which moves the row in the claim index, can deadlock with a concurrent claim's
        // locks, and an outcome not recorded means the row is sent again after its lease
        // (tests/it/deadlock.rs).
        let mut tries = 0;
        loop {
            tries += 1;
            let once: StoreResult<u64> = async {
                let mut tx = self.begin().await?;
                let done = with_tx!(&mut tx, c => {
                    let done = sqlx::query(
                        "UPDATE deliveries SET status = ?, delivered_at = COALESCE(?, delivered_at), \
                         dry_run = COALESCE(?, dry_run), next_attempt_at = ?, last_error = ?, attempts = attempts - ?, \
                         lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?",
                    )
                    .bind(status.as_str())
                    .bind(delivered_at)
                    .bind(dry_run)
                    .bind(next_attempt_at)
                    .bind(last_error)
                    .bind(give_back)
                    .bind(now)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if done == 1 {
                        // The history: which attempt this was (a requeue's number is the next one's).
                        sqlx::query(
                            "INSERT INTO delivery_attempts (id, delivery_id, attempt, at, outcome, error) \
                             SELECT ?, id, attempts + ?, ?, ?, ? FROM deliveries WHERE id = ?",
                        )
                        .bind(super::new_id())
                        .bind(give_back)
                        .bind(now)
                        .bind(outcome)
                        .bind(error.as_deref())
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok::<u64, sqlx::Error>(done)
                })?;
                tx.commit().await?;
                Ok(done)
            }
            .await;
            match once {
                Err(e) if e.is_deadlock() && tries < 3 => {
                    tracing::warn!(delivery = %id, tries, "recording the outcome was a deadlock's victim; trying again");
                }
                done => return done.map(|n| n == 1),
            }
        }
    }

    /// A delivery's attempts, oldest first (at most `limit`).
    pub async fn attempts_of(&self, delivery_id: &str, limit: u32) -> StoreResult<Vec<AttemptRow>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT attempt, at, outcome, error FROM delivery_attempts WHERE delivery_id = ? ORDER BY id LIMIT ?",
        )
        .bind(delivery_id)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }

    /// Gives back every lease `owner` holds (at shutdown), with the attempt the claim counted,
    /// so another process can take the rows at once instead of waiting for the leases to
    /// expire, and a deploy burns no attempt.
    pub async fn release_leases(&self, owner: &str, now: i64) -> StoreResult<u64> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, updated_at = ?, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE lease_owner = ? AND status IN ('pending', 'failed')",
        )
        .bind(now)
        .bind(owner)
        .execute(p)
        .await?
        .rows_affected());
        Ok(done)
    }

    /// Dead and rejected deliveries, newest first, older than `before` (an id).
    pub async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        before: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let rows = with_pool!(self, p => {
            let mut q = QueryBuilder::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1"));
            filter.push(&mut q);
            if let Some(b) = before {
                q.push(" AND id < ").push_bind(b);
            }
            q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            q.build_query_as().fetch_all(p).await?
        });
        Ok(rows)
    }

    /// Puts a dead delivery back to `pending` with fresh attempts. For a rejected one, the
    /// caller passes the corrected type and payload. Returns false if it was not dead/rejected.
    pub async fn redrive(&self, id: &str, now: i64, replace: Option<(&str, &str)>) -> StoreResult<bool> {
        let done = with_pool!(self, p => match replace {
            None => sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'dead'",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected(),
            Some((kind, payload)) => sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, \
                 notification_type = ?, payload = ?, last_error = NULL, lease_owner = NULL, lease_until = NULL, \
                 updated_at = ? WHERE id = ? AND status = 'rejected'",
            )
            .bind(now)
            .bind(kind)
            .bind(payload)
            .bind(now)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected(),
        });
        Ok(done == 1)
    }

    /// Redrives up to `limit` dead deliveries matching the filter; returns how many.
    pub async fn redrive_matching(&self, filter: &DeadLetterFilter, now: i64, limit: u32) -> StoreResult<u64> {
        let filter = DeadLetterFilter {
            status: Some(DeliveryStatus::Dead),
            ..filter.clone()
        };
        let total = with_pool!(self, p => {
            let mut q = QueryBuilder::new("SELECT id FROM deliveries WHERE 1 = 1");
            filter.push(&mut q);
            q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            let ids: Vec<String> = q.build_query_scalar().fetch_all(p).await?;
            let mut total = 0;
            for chunk in ids.chunks(CHUNK) {
                let mut q = QueryBuilder::new("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ");
                q.push_bind(now)
                    .push(", lease_owner = NULL, lease_until = NULL, updated_at = ")
                    .push_bind(now)
                    .push(" WHERE status = 'dead' AND id IN");
                push_ids(&mut q, chunk);
                total += q.build().execute(p).await?.rows_affected();
            }
            total
        });
        Ok(total)
    }
}
