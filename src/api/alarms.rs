//! Alarm history and silences, for operators.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::clock::format_ms;
use crate::settings::parse_duration;
use crate::store::alarms::SilenceRow;
use crate::store::{self};
use crate::web::{ApiError, ApiResult, ErrorBody};
use crate::web::{ApiQuery, RawBody};

/// A silence: matching alarms are recorded but not sent until it ends.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    /// Glob on the alarm name (`*`, `?`).
    pub alarm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub starts_at: String,
    pub ends_at: String,
    pub reason: String,
    /// Whether it is in force now.
    pub active: bool,
}

impl Silence {
    fn from_row(s: SilenceRow, now: i64) -> Self {
        Silence {
            active: s.starts_at <= now && now < s.ends_at,
            id: s.id,
            alarm: s.alarm,
            account: s.account,
            region: s.region,
            starts_at: format_ms(s.starts_at),
            ends_at: format_ms(s.ends_at),
            reason: s.reason,
        }
    }
}

/// A new silence. Give `until` (a time) or `duration` (e.g. `2h`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSilence {
    /// Glob on the alarm name, e.g. `api-*`.
    #[schema(example = "api-*")]
    pub alarm: String,
    pub account: Option<String>,
    #[schema(example = "ap-northeast-2")]
    pub region: Option<String>,
    /// RFC 3339 end time.
    #[schema(example = "2026-11-22T18:00:00+09:00")]
    pub until: Option<String>,
    /// Length, e.g. `30m`, `2h` (instead of `until`).
    pub duration: Option<String>,
    /// Why (shown in the alarm history).
    #[schema(example = "planned DB maintenance")]
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    pub items: Vec<Silence>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SilenceQuery {
    /// Include ended silences.
    pub all: Option<bool>,
}

const MAX_SILENCE_MS: i64 = 90 * 24 * 3600 * 1000;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(field, message)
}

/// Silence alarms.
#[utoipa::path(
    post,
    path = "/v1/silences",
    tag = "alarms",
    request_body(content = NewSilence, example = json!({"alarm": "api-*", "duration": "2h", "reason": "planned DB maintenance"})),
    responses((status = 201, body = Silence), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn create_silence(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Silence>)> {
    let req: NewSilence = serde_json::from_slice(&body).map_err(|e| invalid("body", format!("not a silence: {e}")))?;
    let now = state.clock.now_ms();
    if req.alarm.trim().is_empty() || req.alarm.len() > 255 {
        return Err(invalid("alarm", "must be a glob of 1 to 255 characters"));
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > 500 {
        return Err(invalid("reason", "must be 1 to 500 characters"));
    }
    let ends_at = match (&req.until, &req.duration) {
        (Some(until), None) => chrono::DateTime::parse_from_rfc3339(until)
            .map(|t| t.timestamp_millis())
            .map_err(|_| invalid("until", "must be an RFC 3339 time"))?,
        (None, Some(d)) => {
            let d = parse_duration(d).map_err(|e| invalid("duration", e))?;
            now.saturating_add(crate::clock::duration_ms(d))
        }
        _ => return Err(invalid("until", "give exactly one of until or duration")),
    };
    if ends_at <= now {
        return Err(invalid("until", "must be in the future"));
    }
    if ends_at - now > MAX_SILENCE_MS {
        return Err(invalid("until", "a silence lasts at most 90 days"));
    }
    let row = SilenceRow {
        id: store::new_id(),
        alarm: req.alarm.trim().to_string(),
        account: req.account.filter(|s| !s.is_empty()),
        region: req.region.filter(|s| !s.is_empty()),
        starts_at: now,
        ends_at,
        reason: req.reason.trim().to_string(),
        created_at: now,
    };
    state.store.insert_silence(&row).await?;
    tracing::info!(silence = %row.id, alarm = %row.alarm, until = %format_ms(ends_at), reason = %row.reason, "silence created");
    Ok((StatusCode::CREATED, Json(Silence::from_row(row, now))))
}

/// List silences (those not ended; `?all=true` for all).
#[utoipa::path(
    get,
    path = "/v1/silences",
    tag = "alarms",
    params(SilenceQuery),
    responses((status = 200, body = SilenceList), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn list_silences(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SilenceQuery>,
) -> ApiResult<Json<SilenceList>> {
    let now = state.clock.now_ms();
    let rows = state.store.list_silences(now, q.all.unwrap_or(false)).await?;
    Ok(Json(SilenceList {
        items: rows.into_iter().map(|r| Silence::from_row(r, now)).collect(),
    }))
}

/// End a silence now.
#[utoipa::path(
    delete,
    path = "/v1/silences/{id}",
    tag = "alarms",
    params(("id" = String, Path, description = "Silence id")),
    responses((status = 200, body = Silence), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn delete_silence(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Silence>> {
    let now = state.clock.now_ms();
    match state.store.end_silence(&id, now).await? {
        Some(row) => Ok(Json(Silence::from_row(row, now))),
        None => Err(ApiError::not_found(format!("no silence {id}"))),
    }
}

/// One decision about an alarm notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmEvent {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_state: Option<String>,
    pub changed_at: String,
    pub received_at: String,
    /// `sent`, `suppressed`, `silenced`, `unchanged`, `stale`, `unrouted` or `summary`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Deliveries it created (see `GET /v1/deliveries/{id}`).
    pub deliveries: Vec<String>,
}

/// An alarm and what was done with its recent notifications.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmSummary {
    pub key: String,
    pub name: String,
    pub account: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// Notifications held back by the flap limit in the current window.
    pub suppressed_in_window: i64,
    /// Newest first.
    pub recent: Vec<AlarmEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlarmList {
    pub items: Vec<AlarmSummary>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlarmQuery {
    /// Alarms to list, 1–200 (default 50), most recently changed first.
    pub limit: Option<u32>,
    /// Events per alarm, 1–50 (default 10).
    pub events: Option<u32>,
}

/// Each alarm's current state, last change, and what was sent or suppressed and why.
#[utoipa::path(
    get,
    path = "/v1/alarms",
    tag = "alarms",
    params(AlarmQuery),
    responses((status = 200, body = AlarmList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn list_alarms(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlarmQuery>,
) -> ApiResult<Json<AlarmList>> {
    let limit = q.limit.unwrap_or(50);
    let events = q.events.unwrap_or(10);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(Some("limit"), "must be between 1 and 200"));
    }
    if !(1..=50).contains(&events) {
        return Err(ApiError::bad_request(Some("events"), "must be between 1 and 50"));
    }
    let mut items = Vec::new();
    for a in state.store.list_alarms(limit).await? {
        let recent = state
            .store
            .alarm_events(&a.alarm_key, events)
            .await?
            .into_iter()
            .map(|e| AlarmEvent {
                state: e.state,
                old_state: e.old_state,
                changed_at: format_ms(e.changed_at),
                received_at: format_ms(e.received_at),
                outcome: e.outcome,
                detail: e.detail,
                deliveries: e
                    .deliveries
                    .map(|d| d.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
            .collect();
        items.push(AlarmSummary {
            key: a.alarm_key,
            name: a.name,
            account: a.account,
            region: a.region,
            state: a.state,
            last_change: a.changed_at.map(format_ms),
            suppressed_in_window: a.window_suppressed,
            recent,
        });
    }
    Ok(Json(AlarmList { items }))
}

/// Try the rules: what allim would do with this CloudWatch alarm now — which rules match, who
/// would get what text, and what the alarm's state, silences, the flap limit and quiet hours
/// would do. Nothing is sent or recorded.
///
/// The body is the alarm as CloudWatch puts it in the SNS `Message` (or the whole SNS
/// notification, whose `Message` is then used).
#[utoipa::path(
    post,
    path = "/v1/alarms/test",
    tag = "alarms",
    request_body(content = Object, description = "A CloudWatch alarm state-change message"),
    responses(
        (status = 200, body = crate::alarms::explain::Explanation),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Not a CloudWatch alarm; `field` names the problem", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn test_rules(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> ApiResult<Json<crate::alarms::explain::Explanation>> {
    let alarm = parse_alarm(&body).map_err(|(field, message)| ApiError::validation(field, message))?;
    Ok(Json(state.alarms.explain(&alarm).await?))
}

/// A CloudWatch alarm from a body: the alarm JSON itself, or an SNS notification carrying it.
pub fn parse_alarm(body: &[u8]) -> Result<crate::alarms::Alarm, (&'static str, String)> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ("body", format!("is not JSON: {e}")))?;
    if let Some(inner) = value.get("Message").and_then(|m| m.as_str()) {
        value = serde_json::from_str(inner).map_err(|e| ("Message", format!("is not JSON: {e}")))?;
    }
    if !crate::alarms::payload::is_alarm(&value) {
        return Err((
            "body",
            "is not a CloudWatch alarm: it needs AlarmName and NewStateValue (SNS), or detail-type \"CloudWatch Alarm State Change\" (EventBridge)".into(),
        ));
    }
    crate::alarms::payload::parse(&value).map_err(|e| ("body", e.to_string()))
}
