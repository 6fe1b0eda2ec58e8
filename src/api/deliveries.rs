//! Delivery status: what happened to an accepted notification.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::format_ms;
use crate::store::{DeliveryRow, DeliveryStatus, ResultRow};
use crate::telemetry::mask;
use crate::web::{ApiError, ApiResult, ErrorBody};

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
            let mut d = Delivery::from(row);
            d.recipients = state.store.results_of(&id).await?.into_iter().map(Into::into).collect();
            Ok(Json(d))
        }
        None => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}
