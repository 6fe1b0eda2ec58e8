//! The push device registry and the per-delivery record of parts already sent.

use std::collections::HashSet;

use sqlx::Row;

use super::{Store, StoreResult};
use crate::config::Backend;

/// A registered device.
#[derive(Debug, Clone)]
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
        let existed = sqlx::query("SELECT 1 AS one FROM devices WHERE token = ?")
            .bind(token)
            .fetch_optional(self.pool())
            .await?
            .is_some();
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
        sqlx::query(sql)
            .bind(token)
            .bind(user_id)
            .bind(platform)
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(!existed)
    }

    pub async fn list_devices(&self, user_id: &str) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(
            "SELECT token, user_id, platform, created_at, updated_at FROM devices WHERE user_id = ? \
             ORDER BY created_at, token LIMIT 1000",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeviceRow {
                    token: r.try_get("token")?,
                    user_id: r.try_get("user_id")?,
                    platform: r.try_get("platform")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn delete_device(&self, user_id: &str, token: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE user_id = ? AND token = ?")
            .bind(user_id)
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a token FCM says is no longer valid, whoever it belonged to.
    pub async fn forget_token(&self, token: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE token = ?")
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The parts of a delivery already sent.
    pub async fn parts_done(&self, delivery_id: &str) -> StoreResult<HashSet<String>> {
        let rows = sqlx::query("SELECT part FROM delivery_parts WHERE delivery_id = ?")
            .bind(delivery_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("part"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Records that a part of a delivery was sent.
    pub async fn mark_part_done(&self, delivery_id: &str, part: &str, now: i64) -> StoreResult<()> {
        let sql = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO delivery_parts (delivery_id, part, created_at) VALUES (?, ?, ?)",
            Backend::Sqlite => "INSERT OR IGNORE INTO delivery_parts (delivery_id, part, created_at) VALUES (?, ?, ?)",
        };
        sqlx::query(sql)
            .bind(delivery_id)
            .bind(part)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
