//! "Try the rules": what allim would do with a CloudWatch alarm, sending nothing — which rules
//! match, who would get what text, and what the stored state, silences, the flap limit and
//! quiet hours would do (like Alertmanager's `amtool config routes test`). Used by
//! `POST /v1/alarms/test` (with the database's state and silences) and `allim rules test`
//! (rules alone). The decisions are the router's: [`super::AlarmRouter::handle`] applies them
//! in this order, and a test checks that both agree.

use serde::Serialize;
use utoipa::ToSchema;

use super::payload::{Alarm, AlarmState};
use super::rules::Rules;
use crate::clock::{duration_ms, format_ms, human};
use crate::store::alarms::{AlarmStateRow, SilenceRow};
use crate::telemetry::mask;

/// One rule that matches, and what it would send.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub rule: String,
    /// SMS recipients, masked.
    pub sms: Vec<String>,
    /// Slack webhook names.
    pub slack: Vec<String>,
    /// The text each receiver would get.
    pub text: String,
    /// True when quiet hours would hold this rule's SMS back (recoveries only).
    pub sms_held_by_quiet_hours: bool,
}

/// What allim would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `sent`, `unrouted`, `silenced`, `suppressed` or `unchanged`, as the alarm history says it.
    pub outcome: String,
    pub detail: String,
    pub routes: Vec<Route>,
}

/// Explains `alarm` against `rules`, the alarm's stored `state` (if any) and the active
/// `silences`, at `now`.
pub fn explain(
    rules: &Rules,
    alarm: &Alarm,
    state: Option<&AlarmStateRow>,
    silences: &[SilenceRow],
    now: i64,
) -> Explanation {
    let routes: Vec<Route> = rules
        .matching(alarm)
        .map(|rule| Route {
            rule: rule.name.clone(),
            sms: rule.sms.iter().map(|n| mask(n)).collect(),
            slack: rule.slack.clone(),
            text: rules.render(&rule.template, alarm),
            sms_held_by_quiet_hours: !rule.sms.is_empty()
                && alarm.state != AlarmState::Alarm
                && rules.in_quiet_hours(rule, alarm.changed_at),
        })
        .collect();
    let (outcome, detail) = decide(rules, alarm, state, silences, now, &routes);
    Explanation {
        outcome: outcome.to_string(),
        detail,
        routes,
    }
}

fn decide(
    rules: &Rules,
    alarm: &Alarm,
    state: Option<&AlarmStateRow>,
    silences: &[SilenceRow],
    now: i64,
    routes: &[Route],
) -> (&'static str, String) {
    if let Some(st) = state {
        if st.changed_at.is_some_and(|c| c > alarm.changed_at.timestamp_millis()) {
            return ("stale", "an older state change than the one already recorded".into());
        }
        if st.state.as_deref() == Some(alarm.state.as_str()) {
            return ("unchanged", format!("already {}; not sent again", alarm.state.as_str()));
        }
    }
    if routes.is_empty() {
        return (
            "unrouted",
            format!("no rule routes {} in state {}", alarm.name, alarm.state.as_str()),
        );
    }
    if let Some(s) = silences.iter().find(|s| super::silence_covers(s, alarm)) {
        return (
            "silenced",
            format!("silence {} until {}: {}", s.id, format_ms(s.ends_at), s.reason),
        );
    }
    let window = duration_ms(rules.flap_window);
    if let Some(st) = state
        && st.window_start.is_some_and(|w| now < w + window)
        && st.window_sent >= i64::from(rules.flap_limit)
    {
        return (
            "suppressed",
            format!(
                "flap limit: {} notifications per {} already sent; a summary follows when the window ends",
                rules.flap_limit,
                human(rules.flap_window)
            ),
        );
    }
    let sending: usize = routes
        .iter()
        .map(|r| usize::from(!r.sms.is_empty() && !r.sms_held_by_quiet_hours) + r.slack.len())
        .sum();
    let held: Vec<String> = routes
        .iter()
        .filter(|r| r.sms_held_by_quiet_hours)
        .map(|r| format!("rule {}: SMS held back by quiet hours", r.rule))
        .collect();
    if sending == 0 {
        return ("suppressed", held.join("; "));
    }
    let mut detail = format!("{sending} deliveries");
    if !held.is_empty() {
        detail.push_str("; ");
        detail.push_str(&held.join("; "));
    }
    ("sent", detail)
}
