//! Alarms: CloudWatch alarm notifications (from the SNS webhook, or from SQS when the alarm
//! topic delivers to the queue) become SMS and Slack deliveries for the receivers the routing
//! rules pick — without the noise.
//!
//! For each notification, in one transaction: a repeated SNS MessageId does nothing; a state
//! older than the one stored is stale; the same state again is not re-sent; an alarm no rule
//! routes, or one a silence covers, is recorded but not sent; a flapping alarm sends at most
//! `flap_limit` notifications per `flap_window`, and the ones held back are summarised in one
//! message when the window ends; quiet hours hold back recovery SMS. Every decision is written
//! to the alarm's history (`GET /v1/alarms`) with the reason, together with the deliveries it
//! created, so nothing is sent twice and nothing is decided without a record.

mod args;
pub mod explain;
pub mod payload;
pub mod rules;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use args::AlarmArgs;
pub use payload::{Alarm, AlarmState};
pub use rules::Rules;

use crate::accept::{Acceptor, Source, Validated};
use crate::channels::Notification;
use crate::channels::sens::Sms;
use crate::channels::slack::Slack;
use crate::clock::{Clock, duration_ms, format_ms, human};
use crate::contract::short_hash;
use crate::store::alarms::{self as q, AlarmEventRow, AlarmStateRow, SilenceRow};
use crate::store::{self, NewDelivery, Store, StoreResult, Tx};
use crate::telemetry::SharedMetrics;

/// What became of one alarm notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// `sent`, `suppressed`, `silenced`, `unchanged`, `stale`, `unrouted` or `duplicate`.
    pub outcome: String,
    pub detail: String,
    pub deliveries: Vec<String>,
}

#[derive(Clone)]
pub struct AlarmRouter {
    store: Store,
    acceptor: Acceptor,
    rules: Arc<Rules>,
    metrics: SharedMetrics,
    clock: Clock,
}

/// The parts of an alarm kept to write the flap summary later.
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    name: String,
    account: String,
    region: String,
    arn: Option<String>,
    state: AlarmState,
    changed_at: String,
}

impl AlarmRouter {
    pub fn new(store: Store, acceptor: Acceptor, rules: Rules, metrics: SharedMetrics, clock: Clock) -> Self {
        AlarmRouter {
            store,
            acceptor,
            rules: Arc::new(rules),
            metrics,
            clock,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// What [`AlarmRouter::handle`] would do with `alarm` now, sending and recording nothing.
    pub async fn explain(&self, alarm: &Alarm) -> StoreResult<explain::Explanation> {
        let now = self.clock.now_ms();
        let silences = self.store.active_silences(now).await?;
        let state = self.store.alarm_state(&alarm.key()).await?;
        Ok(explain::explain(&self.rules, alarm, state.as_ref(), &silences, now))
    }

    /// Routes one alarm notification, identified by its SNS MessageId.
    pub async fn handle(&self, message_id: &str, alarm: &Alarm) -> StoreResult<Handled> {
        let now = self.clock.now_ms();
        let silences = self.store.active_silences(now).await?;
        let mut tx = self.store.begin().await?;
        if q::event_exists(&mut tx, message_id).await? {
            tx.rollback().await?;
            return Ok(self.count(Handled {
                outcome: "duplicate".into(),
                detail: format!("SNS message {message_id} was handled before"),
                deliveries: Vec::new(),
            }));
        }
        let fresh = AlarmStateRow {
            alarm_key: alarm.key(),
            name: alarm.name.clone(),
            account: alarm.account.clone(),
            region: alarm.region.clone(),
            updated_at: now,
            ..Default::default()
        };
        let mut st = q::lock_alarm_state(&mut tx, &fresh).await?;
        let changed_at = alarm.changed_at.timestamp_millis();
        let mut rows: Vec<NewDelivery> = Vec::new();
        let (outcome, detail) = if st.changed_at.is_some_and(|c| c > changed_at) {
            (
                "stale",
                "an older state change than the one already recorded".to_string(),
            )
        } else if st.state.as_deref() == Some(alarm.state.as_str()) {
            ("unchanged", format!("already {}; not sent again", alarm.state.as_str()))
        } else {
            st.state = Some(alarm.state.as_str().to_string());
            st.changed_at = Some(changed_at);
            st.last_alarm = serde_json::to_string(&Remembered {
                name: alarm.name.clone(),
                account: alarm.account.clone(),
                region: alarm.region.clone(),
                arn: alarm.arn.clone(),
                state: alarm.state,
                changed_at: alarm.changed_at.to_rfc3339(),
            })
            .ok();
            self.decide(&mut st, alarm, message_id, now, &silences, &mut rows)
        };
        let event = AlarmEventRow {
            id: store::new_id(),
            alarm_key: st.alarm_key.clone(),
            sns_message_id: message_id.to_string(),
            state: alarm.state.as_str().to_string(),
            old_state: alarm.old_state.map(|s| s.as_str().to_string()),
            changed_at,
            received_at: now,
            outcome: outcome.to_string(),
            detail: Some(detail.clone()),
            deliveries: None,
        };
        let ids = record(&mut tx, event, &rows, &mut st, now).await?;
        tx.commit().await?;
        if !rows.is_empty() {
            self.acceptor.wake_dispatcher();
        }
        tracing::info!(alarm = %alarm.name, state = alarm.state.as_str(), outcome, detail = %detail, deliveries = ids.len(), "alarm handled");
        Ok(self.count(Handled {
            outcome: outcome.to_string(),
            detail,
            deliveries: ids,
        }))
    }

    fn count(&self, h: Handled) -> Handled {
        self.metrics.alarms.with_label_values(&[&h.outcome]).inc();
        h
    }

    /// Applies rules, silences, the flap limit and quiet hours to a state change.
    fn decide(
        &self,
        st: &mut AlarmStateRow,
        alarm: &Alarm,
        message_id: &str,
        now: i64,
        silences: &[SilenceRow],
        rows: &mut Vec<NewDelivery>,
    ) -> (&'static str, String) {
        let rules: Vec<_> = self.rules.matching(alarm).collect();
        if rules.is_empty() {
            return (
                "unrouted",
                format!("no rule routes {} in state {}", alarm.name, alarm.state.as_str()),
            );
        }
        if let Some(s) = silences.iter().find(|s| silence_covers(s, alarm)) {
            return (
                "silenced",
                format!("silence {} until {}: {}", s.id, format_ms(s.ends_at), s.reason),
            );
        }
        let window_ms = duration_ms(self.rules.flap_window);
        if st.window_start.is_some_and(|w| now >= w + window_ms) {
            self.summarise(st, message_id, now, rows);
        }
        if st.window_start.is_none() {
            st.window_start = Some(now);
            st.window_sent = 0;
            st.window_suppressed = 0;
        }
        if st.window_sent >= i64::from(self.rules.flap_limit) {
            st.window_suppressed += 1;
            return (
                "suppressed",
                format!(
                    "flap limit: {} notifications per {} already sent; a summary follows when the window ends",
                    self.rules.flap_limit,
                    human(self.rules.flap_window)
                ),
            );
        }
        let mut held = Vec::new();
        for rule in rules {
            let text = self.rules.render(&rule.template, alarm);
            if !rule.sms.is_empty() {
                if alarm.state != AlarmState::Alarm && self.rules.in_quiet_hours(rule, alarm.changed_at) {
                    held.push(format!("rule {}: SMS held back by quiet hours", rule.name));
                } else {
                    rows.push(sms_row(
                        &format!("alarm:{message_id}:{}:sms", rule.name),
                        &rule.sms,
                        &text,
                        now,
                    ));
                }
            }
            for hook in &rule.slack {
                rows.push(slack_row(
                    &format!("alarm:{message_id}:{}:slack:{hook}", rule.name),
                    hook,
                    &text,
                    now,
                ));
            }
        }
        if rows.is_empty() {
            return ("suppressed", held.join("; "));
        }
        st.window_sent += 1;
        let mut detail = format!("{} deliveries", rows.len());
        if !held.is_empty() {
            detail.push_str("; ");
            detail.push_str(&held.join("; "));
        }
        ("sent", detail)
    }

    /// Adds the "suppressed K more" message for the window that ended, and closes it.
    fn summarise(&self, st: &mut AlarmStateRow, tag: &str, now: i64, rows: &mut Vec<NewDelivery>) {
        if st.window_suppressed > 0
            && let Some(alarm) = st
                .last_alarm
                .as_deref()
                .and_then(|s| serde_json::from_str::<Remembered>(s).ok())
        {
            let text = format!(
                "[FLAP] {} ({}): {} more suppressed in {}, now {}",
                alarm.name,
                alarm.region,
                st.window_suppressed,
                human(self.rules.flap_window),
                alarm.state.as_str()
            );
            let probe = Alarm {
                name: alarm.name.clone(),
                account: alarm.account.clone(),
                region: alarm.region.clone(),
                arn: alarm.arn.clone(),
                state: alarm.state,
                old_state: None,
                reason: String::new(),
                changed_at: chrono::DateTime::parse_from_rfc3339(&alarm.changed_at).unwrap_or_default(),
                value: None,
                threshold: None,
                comparison: None,
            };
            let window = st.window_start.unwrap_or_default();
            for rule in self.rules.rules.iter().filter(|r| r.matches_any_state(&probe)) {
                if !rule.sms.is_empty() {
                    rows.push(sms_row(
                        &format!("alarm-summary:{}:{window}:{}:sms:{tag}", st.alarm_key, rule.name),
                        &rule.sms,
                        &text,
                        now,
                    ));
                }
                for hook in &rule.slack {
                    rows.push(slack_row(
                        &format!(
                            "alarm-summary:{}:{window}:{}:slack:{hook}:{tag}",
                            st.alarm_key, rule.name
                        ),
                        hook,
                        &text,
                        now,
                    ));
                }
            }
        }
        st.window_start = None;
        st.window_sent = 0;
        st.window_suppressed = 0;
    }

    /// Sends the summaries of windows that have ended; returns how many alarms it summarised.
    pub async fn summarise_due(&self) -> StoreResult<usize> {
        let now = self.clock.now_ms();
        let window_ms = duration_ms(self.rules.flap_window);
        let keys = self.store.alarms_due_for_summary(now - window_ms).await?;
        let mut done = 0;
        for key in keys {
            let mut tx = self.store.begin().await?;
            let probe = AlarmStateRow {
                alarm_key: key.clone(),
                updated_at: now,
                ..Default::default()
            };
            let mut st = q::lock_alarm_state(&mut tx, &probe).await?;
            // Another process may have summarised it meanwhile.
            if st.window_suppressed == 0 || st.window_start.is_none_or(|w| now < w + window_ms) {
                tx.rollback().await?;
                continue;
            }
            let tag = format!("summary-{}", st.window_start.unwrap_or_default());
            let suppressed = st.window_suppressed;
            let mut rows = Vec::new();
            self.summarise(&mut st, &tag, now, &mut rows);
            let event = AlarmEventRow {
                id: store::new_id(),
                alarm_key: key.clone(),
                // A column of 128: the alarm key (an ARN) can be longer, so it is hashed.
                sns_message_id: format!("{tag}:{}", short_hash(&key)),
                state: st.state.clone().unwrap_or_default(),
                old_state: None,
                changed_at: st.changed_at.unwrap_or(now),
                received_at: now,
                outcome: "summary".into(),
                detail: Some(format!("{suppressed} notifications were held back by the flap limit")),
                deliveries: None,
            };
            record(&mut tx, event, &rows, &mut st, now).await?;
            tx.commit().await?;
            self.metrics.alarms.with_label_values(&["summary"]).inc();
            done += 1;
        }
        if done > 0 {
            self.acceptor.wake_dispatcher();
        }
        Ok(done)
    }

    /// Runs [`AlarmRouter::summarise_due`] every `tick` until shutdown.
    pub async fn run(self, tick: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            if let Err(e) = self.summarise_due().await {
                tracing::warn!(error = %e, "alarms: could not send flap summaries; will try again");
            }
        }
    }
}

/// Writes, inside the routing transaction, the decision (with the ids of the deliveries it
/// created), the deliveries themselves, and the alarm's new state. Returns the delivery ids.
async fn record(
    tx: &mut Tx,
    mut event: AlarmEventRow,
    rows: &[NewDelivery],
    st: &mut AlarmStateRow,
    now: i64,
) -> StoreResult<Vec<String>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    event.deliveries = (!ids.is_empty()).then(|| ids.join(","));
    q::insert_event(tx, &event).await?;
    if !rows.is_empty() {
        store::insert_deliveries(tx, rows).await?;
    }
    st.updated_at = now;
    q::save_alarm_state(tx, st).await?;
    Ok(ids)
}

pub(crate) fn silence_covers(s: &SilenceRow, alarm: &Alarm) -> bool {
    rules::glob(&s.alarm, &alarm.name)
        && s.account.as_deref().is_none_or(|a| a == alarm.account)
        && s.region.as_deref().is_none_or(|r| r == alarm.region)
}

fn sms_row(key: &str, to: &[String], text: &str, now: i64) -> NewDelivery {
    pending(
        Notification::Sms(Sms {
            idempotency_key: Some(truncate_key(key)),
            deliver_at: None,
            to: to.to_vec(),
            content: rules::fit_sms(text),
            subject: None,
        }),
        now,
    )
}

fn slack_row(key: &str, hook: &str, text: &str, now: i64) -> NewDelivery {
    pending(
        Notification::Slack(Slack {
            idempotency_key: Some(truncate_key(key)),
            deliver_at: None,
            text: text.to_string(),
            channel: Some(hook.to_string()),
        }),
        now,
    )
}

/// The pending delivery row of an alarm message (source `sns`: alarms arrive through SNS).
fn pending(notification: Notification, now: i64) -> NewDelivery {
    let validated = Validated {
        notification,
        deliver_at_ms: None,
    };
    crate::accept::pending_row(Source::Sns, &validated, now)
}

/// Idempotency keys are at most 255 characters; long alarm ARNs are hashed into the tail.
fn truncate_key(key: &str) -> String {
    if key.chars().count() <= 255 {
        return key.to_string();
    }
    let digest = short_hash(key);
    let head: String = key.chars().take(200).collect();
    format!("{head}#{digest}")
}
