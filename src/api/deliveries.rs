//! Delivery status: what happened to an accepted notification.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::format_ms;
use crate::store::{DeliveryRow, DeliveryStatus};
use crate::web::{ApiError, ApiResult, ErrorBody};

/// A delivery: one accepted (or rejected) notification and its state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    /// `APP_NOTIFICATION`, `PUSH`, `SMS`, `SLACK` (or `UNKNOWN` for a rejected message).
    pub notification_type: String,
    /// `pending`, `delivered`, `failed` (retry scheduled), `dead` or `rejected`.
    pub status: DeliveryStatus,
    /// `http`, `sqs` or `sns`.
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
        Some(row) => Ok(Json(row.into())),
        None => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}
