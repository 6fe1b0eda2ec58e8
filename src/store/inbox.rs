//! Inbox queries: what the mobile / web app reads and marks.

use sqlx::QueryBuilder;

use super::{Store, StoreResult, with_pool};

/// One inbox row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
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
        Ok(with_pool!(self, p => {
            let mut sql = QueryBuilder::new(
                "SELECT id, delivery_id, user_id, category, title, body, link, data, created_at, read_at \
                 FROM inbox WHERE user_id = ",
            );
            sql.push_bind(q.user_id);
            if q.unread_only {
                sql.push(" AND read_at IS NULL");
            }
            if let Some(before) = q.before {
                sql.push(" AND id < ").push_bind(before);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(q.limit));
            sql.build_query_as().fetch_all(p).await
        })?)
    }

    pub async fn unread_count(&self, user_id: &str) -> StoreResult<i64> {
        Ok(
            with_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE user_id = ? AND read_at IS NULL")
            .bind(user_id)
            .fetch_one(p)
            .await)?,
        )
    }

    /// Marks one row read (keeping the first read time). `None` if the user has no such row.
    pub async fn mark_read(&self, user_id: &str, id: &str, now: i64) -> StoreResult<Option<i64>> {
        let read_at: Option<Option<i64>> = with_pool!(self, p => {
            sqlx::query("UPDATE inbox SET read_at = ? WHERE user_id = ? AND id = ? AND read_at IS NULL")
                .bind(now)
                .bind(user_id)
                .bind(id)
                .execute(p)
                .await?;
            sqlx::query_scalar("SELECT read_at FROM inbox WHERE user_id = ? AND id = ?")
                .bind(user_id)
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        Ok(read_at.flatten())
    }

    /// Marks every unread row of the user read; returns how many changed.
    pub async fn mark_all_read(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        Ok(
            with_pool!(self, p => sqlx::query("UPDATE inbox SET read_at = ? WHERE user_id = ? AND read_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(p)
            .await?
            .rows_affected()),
        )
    }
}
