//! The push device registry and the per-delivery record of parts already sent.

use std::collections::HashSet;

use super::{Backend, Store, StoreResult, with_pool};

/// A registered device.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub token: String,
    pub user_id: String,
    pub platform: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Registers `token` for `user_id` (moving it from another user if needed). Returns true
    /// when the token was new.
    pub async fn upsert_device(&self, user_id: &str, token: &str, platform: &str, now: i64) -> StoreResult<bool> {
        let existed = with_pool!(self, p => sqlx::query("SELECT 1 AS one FROM devices WHERE token = ?")
            .bind(token)
            .fetch_optional(p)
            .await?
            .is_some());
        let sql = match self.backend() {
            Backend::MySql => {
                "INSERT INTO devices (token, user_id, platform, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), platform = VALUES(platform), updated_at = VALUES(updated_at)"
            }
            Backend::Sqlite => {
                "INSERT INTO devices (token, user_id, platform, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform, \
                 updated_at = excluded.updated_at"
            }
        };
        with_pool!(self, p => sqlx::query(sql)
            .bind(token)
            .bind(user_id)
            .bind(platform)
            .bind(now)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(!existed)
    }

    pub async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<DeviceRow>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT token, user_id, platform, created_at, updated_at FROM devices WHERE user_id = ? \
             ORDER BY created_at, token LIMIT 1000",
        )
        .bind(user_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn delete_device(&self, user_id: &str, token: &str) -> StoreResult<bool> {
        let done = with_pool!(self, p => sqlx::query("DELETE FROM devices WHERE user_id = ? AND token = ?")
            .bind(user_id)
            .bind(token)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// Forgets a token FCM says is no longer valid, whoever it belonged to.
    pub async fn forget_token(&self, token: &str) -> StoreResult<bool> {
        let done = with_pool!(self, p => sqlx::query("DELETE FROM devices WHERE token = ?")
            .bind(token)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done > 0)
    }

    /// The parts of a delivery already sent.
    pub async fn parts_done(&self, delivery_id: &str) -> StoreResult<HashSet<String>> {
        let parts: Vec<String> = with_pool!(self, p => sqlx::query_scalar("SELECT part FROM delivery_parts WHERE delivery_id = ?")
            .bind(delivery_id)
            .fetch_all(p)
            .await)?;
        Ok(parts.into_iter().collect())
    }

    /// Records that a part of a delivery was sent.
    pub async fn mark_part_done(&self, delivery_id: &str, part: &str, now: i64) -> StoreResult<()> {
        let sql = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO delivery_parts (delivery_id, part, created_at) VALUES (?, ?, ?)",
            Backend::Sqlite => "INSERT OR IGNORE INTO delivery_parts (delivery_id, part, created_at) VALUES (?, ?, ?)",
        };
        with_pool!(self, p => sqlx::query(sql)
            .bind(delivery_id)
            .bind(part)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
