//! Alarm routing's tables: per-alarm state and flap window, the event history, silences.
//! Functions taking `&mut Tx` run inside the routing transaction.

use sqlx::AssertSqlSafe;

use super::{Backend, Store, StoreResult, Tx, with_pool, with_tx};

/// An alarm's stored state.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct AlarmStateRow {
    pub alarm_key: String,
    pub name: String,
    pub account: String,
    pub region: String,
    pub state: Option<String>,
    pub changed_at: Option<i64>,
    pub window_start: Option<i64>,
    pub window_sent: i64,
    pub window_suppressed: i64,
    pub last_alarm: Option<String>,
    pub updated_at: i64,
}

const STATE_COLUMNS: &str = "alarm_key, name, account, region, state, changed_at, window_start, window_sent, \
     window_suppressed, last_alarm, updated_at";

/// One history row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlarmEventRow {
    pub id: String,
    pub alarm_key: String,
    pub sns_message_id: String,
    pub state: String,
    pub old_state: Option<String>,
    pub changed_at: i64,
    pub received_at: i64,
    pub outcome: String,
    pub detail: Option<String>,
    pub deliveries: Option<String>,
}

/// A silence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: String,
    pub alarm: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub reason: String,
    pub created_at: i64,
}

const SILENCE_COLUMNS: &str = "id, alarm, account, region, starts_at, ends_at, reason, created_at";

pub async fn event_exists(tx: &mut Tx, sns_message_id: &str) -> StoreResult<bool> {
    Ok(
        with_tx!(tx, conn => sqlx::query("SELECT 1 AS one FROM alarm_events WHERE sns_message_id = ?")
        .bind(sns_message_id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some()),
    )
}

/// The alarm's row, created if missing, locked for this transaction (MySQL: `FOR UPDATE`).
pub async fn lock_alarm_state(tx: &mut Tx, fresh: &AlarmStateRow) -> StoreResult<AlarmStateRow> {
    let backend = match tx {
        Tx::Sqlite(_) => Backend::Sqlite,
        Tx::MySql(_) => Backend::MySql,
    };
    // MySQL: `ON DUPLICATE KEY UPDATE` takes the existing row's exclusive lock at once.
    // (`INSERT IGNORE` took a shared lock that the `FOR UPDATE` then had to upgrade: two
    // transactions on the same alarm deadlocked, error 1213.)
    let (insert, conflict, lock) = match backend {
        Backend::MySql => (
            "INSERT",
            " ON DUPLICATE KEY UPDATE alarm_key = alarm_key",
            " FOR UPDATE",
        ),
        Backend::Sqlite => ("INSERT OR IGNORE", "", ""),
    };
    let insert = format!(
        "{insert} INTO alarm_state (alarm_key, name, account, region, updated_at) VALUES (?, ?, ?, ?, ?){conflict}"
    );
    let select = format!("SELECT {STATE_COLUMNS} FROM alarm_state WHERE alarm_key = ?{lock}");
    Ok(with_tx!(tx, conn => {
        sqlx::query(AssertSqlSafe(insert))
            .bind(fresh.alarm_key.as_str())
            .bind(fresh.name.as_str())
            .bind(fresh.account.as_str())
            .bind(fresh.region.as_str())
            .bind(fresh.updated_at)
            .execute(&mut *conn)
            .await?;
        sqlx::query_as(AssertSqlSafe(select))
            .bind(fresh.alarm_key.as_str())
            .fetch_one(&mut *conn)
            .await?
    }))
}

pub async fn save_alarm_state(tx: &mut Tx, s: &AlarmStateRow) -> StoreResult<()> {
    with_tx!(tx, conn => sqlx::query(
        "UPDATE alarm_state SET name = ?, account = ?, region = ?, state = ?, changed_at = ?, window_start = ?, \
         window_sent = ?, window_suppressed = ?, last_alarm = ?, updated_at = ? WHERE alarm_key = ?",
    )
    .bind(s.name.as_str())
    .bind(s.account.as_str())
    .bind(s.region.as_str())
    .bind(s.state.as_deref())
    .bind(s.changed_at)
    .bind(s.window_start)
    .bind(s.window_sent)
    .bind(s.window_suppressed)
    .bind(s.last_alarm.as_deref())
    .bind(s.updated_at)
    .bind(s.alarm_key.as_str())
    .execute(&mut *conn)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn insert_event(tx: &mut Tx, e: &AlarmEventRow) -> StoreResult<()> {
    with_tx!(tx, conn => sqlx::query(
        "INSERT INTO alarm_events (id, alarm_key, sns_message_id, state, old_state, changed_at, received_at, outcome, \
         detail, deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.as_str())
    .bind(e.alarm_key.as_str())
    .bind(e.sns_message_id.as_str())
    .bind(e.state.as_str())
    .bind(e.old_state.as_deref())
    .bind(e.changed_at)
    .bind(e.received_at)
    .bind(e.outcome.as_str())
    .bind(e.detail.as_deref())
    .bind(e.deliveries.as_deref())
    .execute(&mut *conn)
    .await
    .map(|_| ()))?;
    Ok(())
}

impl Store {
    /// Silences in force at `now`.
    pub async fn active_silences(&self, now: i64) -> StoreResult<Vec<SilenceRow>> {
        let sql = format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE starts_at <= ? AND ends_at > ? ORDER BY ends_at DESC LIMIT 1000"
        );
        Ok(with_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql)).bind(now).bind(now).fetch_all(p).await)?)
    }

    /// Silences, newest first: those not yet ended, or all when `all`.
    pub async fn list_silences(&self, now: i64, all: bool) -> StoreResult<Vec<SilenceRow>> {
        let cutoff = if all { i64::MIN } else { now };
        let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > ? ORDER BY id DESC LIMIT 500");
        Ok(with_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql)).bind(cutoff).fetch_all(p).await)?)
    }

    pub async fn insert_silence(&self, s: &SilenceRow) -> StoreResult<()> {
        with_pool!(self, p => sqlx::query(
            "INSERT INTO silences (id, alarm, account, region, starts_at, ends_at, reason, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(s.alarm.as_str())
        .bind(s.account.as_deref())
        .bind(s.region.as_deref())
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(s.reason.as_str())
        .bind(s.created_at)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Ends a silence now. `None` if there is no such silence.
    pub async fn end_silence(&self, id: &str, now: i64) -> StoreResult<Option<SilenceRow>> {
        let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?");
        Ok(with_pool!(self, p => {
            sqlx::query("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?")
                .bind(now)
                .bind(id)
                .bind(now)
                .execute(p)
                .await?;
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?
        }))
    }

    /// Alarms whose flap window has ended with notifications held back.
    pub async fn alarms_due_for_summary(&self, window_ends_before: i64) -> StoreResult<Vec<String>> {
        Ok(with_pool!(self, p => sqlx::query_scalar(
            "SELECT alarm_key FROM alarm_state WHERE window_suppressed > 0 AND window_start <= ? LIMIT 100",
        )
        .bind(window_ends_before)
        .fetch_all(p)
        .await)?)
    }

    /// One alarm's stored state.
    pub async fn alarm_state(&self, alarm_key: &str) -> StoreResult<Option<AlarmStateRow>> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM alarm_state WHERE alarm_key = ?");
        Ok(with_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql)).bind(alarm_key).fetch_optional(p).await)?)
    }

    /// Alarms, most recently changed first.
    pub async fn list_alarms(&self, limit: u32) -> StoreResult<Vec<AlarmStateRow>> {
        let sql = format!("SELECT {STATE_COLUMNS} FROM alarm_state ORDER BY updated_at DESC LIMIT ?");
        Ok(with_pool!(self, p => sqlx::query_as(AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(p).await)?)
    }

    /// An alarm's most recent events, newest first.
    pub async fn alarm_events(&self, alarm_key: &str, limit: u32) -> StoreResult<Vec<AlarmEventRow>> {
        Ok(with_pool!(self, p => sqlx::query_as(
            "SELECT id, alarm_key, sns_message_id, state, old_state, changed_at, received_at, outcome, detail, deliveries \
             FROM alarm_events WHERE alarm_key = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(alarm_key)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }
}
