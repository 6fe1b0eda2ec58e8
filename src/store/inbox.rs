//! Inbox queries: what the mobile / web app reads and marks.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreResult};

/// One inbox row as stored.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: String,
    pub delivery_id: String,
    pub user_id: String,
    pub category: Option<String>,
    pub title: String,
    pub body: Option<String>,
    pub link: Option<String>,
    pub data: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// A page request: newest first, strictly older than `before` (the cursor).
#[derive(Debug, Clone)]
pub struct ListInbox<'a> {
    pub user_id: &'a str,
    pub unread_only: bool,
    pub before: Option<&'a str>,
    pub limit: u32,
}

impl Store {
    pub async fn list_inbox(&self, q: &ListInbox<'_>) -> StoreResult<Vec<InboxRow>> {
        let mut sql = String::from(
            "SELECT id, delivery_id, user_id, category, title, body, link, data, created_at, read_at \
             FROM inbox WHERE user_id = ?",
        );
        if q.unread_only {
            sql.push_str(" AND read_at IS NULL");
        }
        if q.before.is_some() {
            sql.push_str(" AND id < ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(q.user_id);
        if let Some(before) = q.before {
            query = query.bind(before);
        }
        let rows = query.bind(i64::from(q.limit)).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxRow {
                    id: r.try_get("id")?,
                    delivery_id: r.try_get("delivery_id")?,
                    user_id: r.try_get("user_id")?,
                    category: r.try_get("category")?,
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                    link: r.try_get("link")?,
                    data: r.try_get("data")?,
                    created_at: r.try_get("created_at")?,
                    read_at: r.try_get("read_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn unread_count(&self, user_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE user_id = ? AND read_at IS NULL")
            .bind(user_id)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Marks one row read (keeping the first read time). `None` if the user has no such row.
    pub async fn mark_read(&self, user_id: &str, id: &str, now: i64) -> StoreResult<Option<i64>> {
        sqlx::query("UPDATE inbox SET read_at = ? WHERE user_id = ? AND id = ? AND read_at IS NULL")
            .bind(now)
            .bind(user_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        let row = sqlx::query("SELECT read_at FROM inbox WHERE user_id = ? AND id = ?")
            .bind(user_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("read_at")?,
            None => None,
        })
    }

    /// Marks every unread row of the user read; returns how many changed.
    pub async fn mark_all_read(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE inbox SET read_at = ? WHERE user_id = ? AND read_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
