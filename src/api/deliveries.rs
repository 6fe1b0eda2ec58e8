//! Delivery status: what happened to an accepted notification.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::inbox::InboxItem;
use super::params;
use crate::AppState;
use crate::channels::sens::korean::normalize_korean_number;
use crate::clock::format_ms;
use crate::store::{DeliveryRow, DeliverySearch, DeliveryStatus, ResultRow};
use crate::telemetry::mask;
use crate::web::{ApiError, ApiQuery, ApiResult, ErrorBody};

/// A delivery: one accepted (or rejected) notification and its state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    /// The `notificationType` (or `UNKNOWN` for a rejected message).
    pub notification_type: String,
    /// `pending`, `delivered`, `failed` (retry scheduled), `dead` or `rejected`.
    pub status: DeliveryStatus,
    /// `http`, `sqs`, `sns` or `sqs-api` (the SQS-compatible door).
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// True when the channel had no provider credentials and only logged the send.
    pub dry_run: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// Per recipient, what the provider finally reported (SMS and ALIMTALK through SENS): a
    /// delivery is `delivered` once SENS accepted it; this says whether each phone got it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientResult>,
    /// The stored notification (`GET /v1/deliveries/{id}` only), phone numbers, email
    /// addresses and tokens masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Every send attempt, oldest first (`GET /v1/deliveries/{id}` only; at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Attempt>,
    /// The inbox row it made (in-app notifications; `GET /v1/deliveries/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_item: Option<InboxItem>,
}

/// One send attempt and what came of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first attempt (a redrive starts again at 1).
    pub attempt: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `delivered`, `retry` (another attempt scheduled), `dead`, or `requeued` (the provider
    /// refused allim's credentials; the lane paused and no attempt was used).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One recipient's final result from the provider.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientResult {
    /// The number, masked (`*******5678`).
    pub to: String,
    /// `sms` or `alimtalk`.
    pub channel: String,
    /// `sent` (accepted by the provider, result not known yet), `delivered`, `failed`, or
    /// `unknown` (no final result within 72 hours).
    pub status: String,
    /// The provider's or carrier's code (e.g. AlimTalk `3019`: not a KakaoTalk user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the SMS failover did (AlimTalk), e.g. `SMS failover delivered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Look-ups made so far.
    pub checks: i32,
}

impl From<ResultRow> for RecipientResult {
    fn from(r: ResultRow) -> Self {
        RecipientResult {
            to: mask(&r.recipient),
            channel: r.channel,
            status: r.status,
            code: r.code,
            reason: r.reason,
            failover: r.failover,
            message_id: r.message_id,
            completed_at: r.completed_at.map(format_ms),
            checks: r.checks,
        }
    }
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            id: r.id,
            notification_type: r.notification_type,
            status: r.status,
            source: r.source,
            idempotency_key: r.idempotency_key,
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at.map(format_ms),
            dry_run: r.dry_run != 0,
            created_at: format_ms(r.created_at),
            updated_at: format_ms(r.updated_at),
            delivered_at: r.delivered_at.map(format_ms),
            recipients: Vec::new(),
            payload: None,
            history: Vec::new(),
            inbox_item: None,
        }
    }
}

/// Look up a delivery by id.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    params(("id" = String, Path, description = "The id returned when the notification was accepted")),
    responses(
        (status = 200, body = Delivery),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Delivery>> {
    if id.len() > 64 {
        return Err(ApiError::bad_request(Some("id"), "is not a valid id"));
    }
    match state.store.get_delivery(&id).await? {
        Some(row) => {
            let payload = serde_json::from_str::<Value>(&row.payload).ok().map(masked);
            let mut d = Delivery::from(row);
            d.recipients = state.store.results_of(&id).await?.into_iter().map(Into::into).collect();
            d.payload = payload;
            d.inbox_item = state.store.inbox_of(&id).await?.map(Into::into);
            d.history = state
                .store
                .attempts_of(&id, 100)
                .await?
                .into_iter()
                .map(|a| Attempt {
                    attempt: a.attempt,
                    at: format_ms(a.at),
                    outcome: a.outcome,
                    error: a.error,
                })
                .collect();
            Ok(Json(d))
        }
        None => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}

/// The fields whose values are masked wherever a payload is shown: recipients and secrets.
const MASKED_FIELDS: &[&str] = &["to", "cc", "bcc", "token", "tokens", "phone", "email", "secret", "url"];

/// A payload with recipients' numbers and addresses and any token masked (`*******5678`).
pub fn masked(v: Value) -> Value {
    fn mask_all(v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(mask(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(mask_all).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, mask_all(v))).collect()),
            other => other,
        }
    }
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = if MASKED_FIELDS.contains(&k.as_str()) {
                        mask_all(v)
                    } else {
                        masked(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(masked).collect()),
        other => other,
    }
}

/// Search filters; every one given must match.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// A delivery id.
    pub id: Option<String>,
    /// The idempotency key (exact).
    pub key: Option<String>,
    /// The user the notification is for (`userId` of in-app and push notifications).
    pub user_id: Option<String>,
    /// A recipient: a phone number (any form: `010-1234-5678`, `+82 10 …`) or an email address.
    pub to: Option<String>,
    /// `notificationType`.
    pub notification_type: Option<String>,
    /// `pending`, `delivered`, `failed`, `dead` or `rejected`.
    pub status: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// Page size 1–100 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Search deliveries, newest first: by id, idempotency key, user, recipient, type, status and
/// time. A recipient is matched by its normalised form (a Korean phone number in any
/// notation, an email address in any case).
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn search(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let text = |field: &str, v: Option<String>, max: usize| -> ApiResult<Option<String>> {
        match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            Some(s) if s.chars().count() > max => Err(ApiError::bad_request(
                Some(field),
                format!("must be at most {max} characters"),
            )),
            other => Ok(other),
        }
    };
    let status = text("status", q.status, 16)?;
    if let Some(st) = &status
        && DeliveryStatus::try_from(st.clone()).is_err()
    {
        return Err(ApiError::bad_request(
            Some("status"),
            "must be pending, delivered, failed, dead or rejected",
        ));
    }
    let kind = text("notificationType", q.notification_type, 32)?;
    params::notification_type(kind.as_deref())?;
    let mut payload_contains = Vec::new();
    if let Some(user) = text("userId", q.user_id, 128)? {
        payload_contains.push(format!("\"userId\":{}", Value::String(user)));
    }
    if let Some(to) = text("to", q.to, 254)? {
        let normal = if to.contains('@') {
            to.to_lowercase()
        } else {
            normalize_korean_number(&to)
                .ok_or_else(|| ApiError::bad_request(Some("to"), "is neither a phone number nor an email address"))?
        };
        payload_contains.push(Value::String(normal).to_string());
    }
    let search = DeliverySearch {
        id: text("id", q.id, 64)?,
        key: text("key", q.key, 255)?,
        status,
        notification_type: kind,
        since: params::time("since", q.since.as_deref().filter(|s| !s.is_empty()))?,
        until: params::time("until", q.until.as_deref().filter(|s| !s.is_empty()))?,
        payload_contains,
    };
    let limit = params::page_limit(q.limit, 50)?;
    params::page_cursor(q.cursor.as_deref())?;
    let rows = state
        .store
        .search_deliveries(&search, q.cursor.as_deref(), limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    let items: Vec<Delivery> = rows.into_iter().take(limit as usize).map(Into::into).collect();
    let next_cursor = if more { items.last().map(|i| i.id.clone()) } else { None };
    Ok(Json(DeliveryPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn payloads_are_shown_masked() {
        let v = super::masked(
            json!({"notificationType": "SMS", "to": ["01012345678"], "content": "hi",
            "nested": {"email": "someone@example.com"}}),
        );
        assert_eq!(v["to"][0], "*******5678");
        assert_eq!(v["content"], "hi");
        assert!(!v.to_string().contains("someone"), "{v}");
    }
}
