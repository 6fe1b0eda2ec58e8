//! Lane leases and the leases of rows in flight: what keeps one delivery from being sent by two
//! tasks at once.

use sqlx::QueryBuilder;

use super::{Backend, Store, StoreResult, with_pool};

impl Store {
    /// Takes or renews the lease of `channel`'s lane for `owner` until `until`. Returns whether
    /// `owner` holds the lane now (another live owner keeps it).
    pub async fn hold_lane(&self, channel: &str, owner: &str, now: i64, until: i64) -> StoreResult<bool> {
        let insert = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO lanes (channel, updated_at) VALUES (?, ?)",
            Backend::Sqlite => "INSERT OR IGNORE INTO lanes (channel, updated_at) VALUES (?, ?)",
        };
        let holder: Option<String> = with_pool!(self, p => {
            sqlx::query(insert).bind(channel).bind(now).execute(p).await?;
            sqlx::query(
                "UPDATE lanes SET owner = ?, lease_until = ?, updated_at = ? \
                 WHERE channel = ? AND (owner = ? OR owner IS NULL OR lease_until < ?)",
            )
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(channel)
            .bind(owner)
            .bind(now)
            .execute(p)
            .await?;
            // Read back rather than trust rows_affected: MySQL counts only changed rows.
            sqlx::query_scalar("SELECT owner FROM lanes WHERE channel = ?")
                .bind(channel)
                .fetch_one(p)
                .await?
        });
        Ok(holder.as_deref() == Some(owner))
    }

    /// Gives a lane back (at shutdown), so another task takes it at once.
    pub async fn release_lane(&self, channel: &str, owner: &str, now: i64) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE lanes SET owner = NULL, lease_until = NULL, updated_at = ? WHERE channel = ? AND owner = ?",
        )
        .bind(now)
        .bind(channel)
        .bind(owner)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Extends the leases `owner` holds on these rows (still in flight) until `until`.
    pub async fn renew_leases(&self, owner: &str, ids: &[String], until: i64) -> StoreResult<u64> {
        let mut renewed = 0;
        for chunk in ids.chunks(super::deliveries::CHUNK) {
            renewed += with_pool!(self, p => {
                let mut q = QueryBuilder::new("UPDATE deliveries SET lease_until = ");
                q.push_bind(until).push(" WHERE lease_owner = ").push_bind(owner).push(" AND id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                q.push(")");
                q.build().execute(p).await?.rows_affected()
            });
        }
        Ok(renewed)
    }

    /// Whether `owner` still holds a live lease on the row: checked right before a provider call.
    pub async fn holds_lease(&self, id: &str, owner: &str, now: i64) -> StoreResult<bool> {
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE id = ? AND lease_owner = ? AND lease_until >= ?",
        )
        .bind(id)
        .bind(owner)
        .bind(now)
        .fetch_one(p)
        .await)?;
        Ok(n == 1)
    }
}
