//! Recipients' final results (SENS SMS and AlimTalk): what the channel handed over, and what
//! the provider later said became of it. See migrations/mysql/0007_recipient_results.sql.

use sqlx::{AssertSqlSafe, QueryBuilder};

use super::{Backend, Store, StoreResult, with_pool};

/// A recipient a provider accepted, to look up later.
#[derive(Debug, Clone)]
pub struct SentRecipient {
    pub delivery_id: String,
    /// The normalised number (shown masked).
    pub recipient: String,
    pub request_id: String,
    /// Known at send time for AlimTalk; looked up from the request for SMS.
    pub message_id: Option<String>,
    /// When to look first (ms).
    pub next_check_at: i64,
}

/// One recipient's result row.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ResultRow {
    pub delivery_id: String,
    pub recipient: String,
    pub channel: String,
    pub request_id: String,
    pub message_id: Option<String>,
    /// `sent` (accepted, result not yet known), `delivered`, `failed` or `unknown`.
    pub status: String,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub failover: Option<String>,
    pub checks: i32,
    pub next_check_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A final (or refused-at-send) result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalResult {
    /// `delivered`, `failed` or `unknown`.
    pub status: &'static str,
    pub code: Option<String>,
    pub reason: Option<String>,
    /// What the SMS failover did (AlimTalk), e.g. `SMS delivered`.
    pub failover: Option<String>,
    pub completed_at: Option<i64>,
}

const COLUMNS: &str = "delivery_id, recipient, channel, request_id, message_id, status, code, reason, failover, \
     checks, next_check_at, completed_at, created_at, updated_at";

/// At most `max` characters (the column's size), so a long provider text never fails the write.
fn cut(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| s.chars().take(max).collect())
}

impl Store {
    /// Records recipients the provider accepted (`sent`), to look up from `next_check_at`. A
    /// recipient already recorded for the delivery is left as it is.
    pub async fn record_sent(&self, channel: &str, rows: &[SentRecipient], now: i64) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let verb = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO",
            Backend::Sqlite => "INSERT OR IGNORE INTO",
        };
        for chunk in rows.chunks(super::deliveries::CHUNK) {
            with_pool!(self, p => {
                let mut q = QueryBuilder::new(format!(
                    "{verb} recipient_results (delivery_id, recipient, channel, request_id, message_id, status, \
                     next_check_at, created_at, updated_at) "
                ));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.delivery_id.as_str())
                        .push_bind(r.recipient.as_str())
                        .push_bind(channel)
                        .push_bind(r.request_id.as_str())
                        .push_bind(r.message_id.as_deref())
                        .push_bind("sent")
                        .push_bind(r.next_check_at)
                        .push_bind(now)
                        .push_bind(now);
                });
                q.build().execute(p).await?;
            });
        }
        Ok(())
    }

    /// Records a recipient the provider refused at send time (final at once).
    pub async fn record_refused(
        &self,
        channel: &str,
        delivery_id: &str,
        recipient: &str,
        request_id: &str,
        result: &FinalResult,
        now: i64,
    ) -> StoreResult<()> {
        let verb = match self.backend() {
            Backend::MySql => "INSERT IGNORE INTO",
            Backend::Sqlite => "INSERT OR IGNORE INTO",
        };
        with_pool!(self, p => sqlx::query(AssertSqlSafe(format!(
            "{verb} recipient_results (delivery_id, recipient, channel, request_id, status, code, reason, \
             completed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(delivery_id)
        .bind(recipient)
        .bind(channel)
        .bind(request_id)
        .bind(result.status)
        .bind(cut(result.code.as_deref(), 32))
        .bind(cut(result.reason.as_deref(), 500))
        .bind(result.completed_at.unwrap_or(now))
        .bind(now)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Recipients of `channel` whose result is due for a look-up, oldest first.
    pub async fn due_results(&self, channel: &str, now: i64, limit: u32) -> StoreResult<Vec<ResultRow>> {
        let rows = with_pool!(self, p => sqlx::query_as::<_, ResultRow>(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM recipient_results WHERE channel = ? AND next_check_at <= ? \
             ORDER BY next_check_at LIMIT ?"
        )))
        .bind(channel)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// Takes a due row for one look-up: moves its next check to `until` if it is still
    /// `expected`. Whether this caller took it (another task may have, at the same moment).
    pub async fn take_result_check(&self, row: &ResultRow, until: i64, now: i64) -> StoreResult<bool> {
        let Some(expected) = row.next_check_at else {
            return Ok(false);
        };
        let n = with_pool!(self, p => sqlx::query(
            "UPDATE recipient_results SET next_check_at = ?, checks = checks + 1, updated_at = ? \
             WHERE delivery_id = ? AND recipient = ? AND next_check_at = ?",
        )
        .bind(until)
        .bind(now)
        .bind(&row.delivery_id)
        .bind(&row.recipient)
        .bind(expected)
        .execute(p)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Remembers the provider's message id of a recipient.
    pub async fn set_result_message_id(&self, row: &ResultRow, message_id: &str, now: i64) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE recipient_results SET message_id = ?, updated_at = ? WHERE delivery_id = ? AND recipient = ?",
        )
        .bind(cut(Some(message_id), 100))
        .bind(now)
        .bind(&row.delivery_id)
        .bind(&row.recipient)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records a recipient's final result; no more look-ups.
    pub async fn finish_result(&self, row: &ResultRow, result: &FinalResult, now: i64) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE recipient_results SET status = ?, code = ?, reason = ?, failover = ?, completed_at = ?, \
             next_check_at = NULL, updated_at = ? WHERE delivery_id = ? AND recipient = ?",
        )
        .bind(result.status)
        .bind(cut(result.code.as_deref(), 32))
        .bind(cut(result.reason.as_deref(), 500))
        .bind(cut(result.failover.as_deref(), 500))
        .bind(result.completed_at.unwrap_or(now))
        .bind(now)
        .bind(&row.delivery_id)
        .bind(&row.recipient)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Every recipient result of a delivery, by recipient.
    pub async fn results_of(&self, delivery_id: &str) -> StoreResult<Vec<ResultRow>> {
        let rows = with_pool!(self, p => sqlx::query_as::<_, ResultRow>(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM recipient_results WHERE delivery_id = ? ORDER BY recipient"
        )))
        .bind(delivery_id)
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }
}
