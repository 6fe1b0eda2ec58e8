//! Alarm routing's tables: per-alarm state and flap window, the event history, silences.
//! Functions taking `&mut AnyConnection` run inside the routing transaction.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Store, StoreResult};
use crate::config::Backend;

/// An alarm's stored state.
#[derive(Debug, Clone, Default)]
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

fn state_row(r: &sqlx::any::AnyRow) -> Result<AlarmStateRow, sqlx::Error> {
    Ok(AlarmStateRow {
        alarm_key: r.try_get("alarm_key")?,
        name: r.try_get("name")?,
        account: r.try_get("account")?,
        region: r.try_get("region")?,
        state: r.try_get("state")?,
        changed_at: r.try_get("changed_at")?,
        window_start: r.try_get("window_start")?,
        window_sent: r.try_get("window_sent")?,
        window_suppressed: r.try_get("window_suppressed")?,
        last_alarm: r.try_get("last_alarm")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// One history row.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

fn silence_row(r: &sqlx::any::AnyRow) -> Result<SilenceRow, sqlx::Error> {
    Ok(SilenceRow {
        id: r.try_get("id")?,
        alarm: r.try_get("alarm")?,
        account: r.try_get("account")?,
        region: r.try_get("region")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        reason: r.try_get("reason")?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn event_exists(conn: &mut AnyConnection, sns_message_id: &str) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM alarm_events WHERE sns_message_id = ?")
            .bind(sns_message_id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// The alarm's row, created if missing, locked for this transaction (MySQL: `FOR UPDATE`).
pub async fn lock_alarm_state(
    conn: &mut AnyConnection,
    backend: Backend,
    fresh: &AlarmStateRow,
) -> StoreResult<AlarmStateRow> {
    let (insert, lock) = match backend {
        Backend::MySql => ("INSERT IGNORE", " FOR UPDATE"),
        Backend::Sqlite => ("INSERT OR IGNORE", ""),
    };
    sqlx::query(AssertSqlSafe(format!(
        "{insert} INTO alarm_state (alarm_key, name, account, region, updated_at) VALUES (?, ?, ?, ?, ?)"
    )))
    .bind(fresh.alarm_key.as_str())
    .bind(fresh.name.as_str())
    .bind(fresh.account.as_str())
    .bind(fresh.region.as_str())
    .bind(fresh.updated_at)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {STATE_COLUMNS} FROM alarm_state WHERE alarm_key = ?{lock}"
    )))
    .bind(fresh.alarm_key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(state_row(&row)?)
}

pub async fn save_alarm_state(conn: &mut AnyConnection, s: &AlarmStateRow) -> StoreResult<()> {
    sqlx::query(
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
    .await?;
    Ok(())
}

pub async fn insert_event(conn: &mut AnyConnection, e: &AlarmEventRow) -> StoreResult<()> {
    sqlx::query(
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
    .await?;
    Ok(())
}

impl Store {
    /// Silences in force at `now`.
    pub async fn active_silences(&self, now: i64) -> StoreResult<Vec<SilenceRow>> {
        let rows = sqlx::query(
            "SELECT id, alarm, account, region, starts_at, ends_at, reason, created_at FROM silences \
             WHERE starts_at <= ? AND ends_at > ? ORDER BY ends_at DESC LIMIT 1000",
        )
        .bind(now)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(silence_row).collect::<Result<_, _>>()?)
    }

    /// Silences, newest first: those not yet ended, or all when `all`.
    pub async fn list_silences(&self, now: i64, all: bool) -> StoreResult<Vec<SilenceRow>> {
        let cutoff = if all { i64::MIN } else { now };
        let rows = sqlx::query(
            "SELECT id, alarm, account, region, starts_at, ends_at, reason, created_at FROM silences \
             WHERE ends_at > ? ORDER BY id DESC LIMIT 500",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(silence_row).collect::<Result<_, _>>()?)
    }

    pub async fn insert_silence(&self, s: &SilenceRow) -> StoreResult<()> {
        sqlx::query(
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
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a silence now. `None` if there is no such silence.
    pub async fn end_silence(&self, id: &str, now: i64) -> StoreResult<Option<SilenceRow>> {
        sqlx::query("UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?")
            .bind(now)
            .bind(id)
            .bind(now)
            .execute(self.pool())
            .await?;
        let row = sqlx::query(
            "SELECT id, alarm, account, region, starts_at, ends_at, reason, created_at FROM silences WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(silence_row).transpose()?)
    }

    /// Alarms whose flap window has ended with notifications held back.
    pub async fn alarms_due_for_summary(&self, window_ends_before: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT alarm_key FROM alarm_state WHERE window_suppressed > 0 AND window_start <= ? LIMIT 100",
        )
        .bind(window_ends_before)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| r.try_get("alarm_key")).collect::<Result<_, _>>()?)
    }

    /// Alarms, most recently changed first.
    pub async fn list_alarms(&self, limit: u32) -> StoreResult<Vec<AlarmStateRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM alarm_state ORDER BY updated_at DESC LIMIT ?"
        )))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(state_row).collect::<Result<_, _>>()?)
    }

    /// An alarm's most recent events, newest first.
    pub async fn alarm_events(&self, alarm_key: &str, limit: u32) -> StoreResult<Vec<AlarmEventRow>> {
        let rows = sqlx::query(
            "SELECT id, alarm_key, sns_message_id, state, old_state, changed_at, received_at, outcome, detail, deliveries \
             FROM alarm_events WHERE alarm_key = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(alarm_key)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlarmEventRow {
                    id: r.try_get("id")?,
                    alarm_key: r.try_get("alarm_key")?,
                    sns_message_id: r.try_get("sns_message_id")?,
                    state: r.try_get("state")?,
                    old_state: r.try_get("old_state")?,
                    changed_at: r.try_get("changed_at")?,
                    received_at: r.try_get("received_at")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    deliveries: r.try_get("deliveries")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
