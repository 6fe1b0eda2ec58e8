//! Dead letters: deliveries that were given up (`dead`) and messages that were not valid
//! notifications (`rejected`, with their raw body). Operators list them and redrive them.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params;
use crate::AppState;
use crate::accept::parse::to_json;
use crate::clock::format_ms;
use crate::ingress::classify::unwrap_sns;
use crate::store::{DeadLetterFilter, DeliveryRow, DeliveryStatus};
use crate::web::{ApiError, ApiResult, ErrorBody};
use crate::web::{ApiQuery, RawBody};

/// A dead or rejected delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    /// `dead` or `rejected`.
    pub status: DeliveryStatus,
    pub notification_type: String,
    pub source: String,
    pub attempts: i64,
    /// Why it was given up or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `rejected`: the body exactly as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// For `dead`: the stored notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<DeliveryRow> for DeadLetter {
    fn from(r: DeliveryRow) -> Self {
        let rejected = r.status == DeliveryStatus::Rejected;
        DeadLetter {
            id: r.id,
            status: r.status,
            notification_type: r.notification_type,
            source: r.source,
            attempts: r.attempts,
            reason: r.last_error,
            raw_body: rejected.then(|| r.payload.clone()),
            payload: if rejected {
                None
            } else {
                serde_json::from_str(&r.payload).ok()
            },
            idempotency_key: r.idempotency_key,
            created_at: format_ms(r.created_at),
            updated_at: format_ms(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of the listing.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// `dead` or `rejected` (default: both).
    pub status: Option<String>,
    /// `APP_NOTIFICATION`, `PUSH`, `SMS`, `SLACK` or `UNKNOWN`.
    pub notification_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// Page size 1–100 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

fn filter_of(
    status: Option<&str>,
    kind: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> ApiResult<DeadLetterFilter> {
    let status = match status {
        None => None,
        Some("dead") => Some(DeliveryStatus::Dead),
        Some("rejected") => Some(DeliveryStatus::Rejected),
        Some(_) => return Err(ApiError::bad_request(Some("status"), "must be dead or rejected")),
    };
    params::notification_type(kind)?;
    Ok(DeadLetterFilter {
        status,
        notification_type: kind.map(str::to_string),
        since: params::time("since", since)?,
        until: params::time("until", until)?,
    })
}

/// List dead and rejected deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    params(DeadLetterQuery),
    responses((status = 200, body = DeadLetterPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> ApiResult<Json<DeadLetterPage>> {
    let filter = filter_of(
        q.status.as_deref(),
        q.notification_type.as_deref(),
        q.since.as_deref(),
        q.until.as_deref(),
    )?;
    let limit = params::page_limit(q.limit, 50)?;
    params::page_cursor(q.cursor.as_deref())?;
    let rows = state
        .store
        .list_dead_letters(&filter, q.cursor.as_deref(), limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    let items: Vec<DeadLetter> = rows.into_iter().take(limit as usize).map(Into::into).collect();
    let next_cursor = if more { items.last().map(|i| i.id.clone()) } else { None };
    Ok(Json(DeadLetterPage { items, next_cursor }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redriven {
    pub id: String,
    /// Now `pending`: the dispatcher picks it up.
    pub status: DeliveryStatus,
}

/// Redrive one dead letter: it becomes `pending` with fresh attempts.
///
/// A `rejected` message is parsed again; if it is still not a valid notification the answer
/// is 422 with the reason, and it stays rejected.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/redrive",
    tag = "dead letters",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, body = Redriven),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "Not dead or rejected (any more)", body = ErrorBody),
        (status = 422, description = "A rejected message that is still invalid", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn redrive(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Redriven>> {
    let Some(row) = state.store.get_delivery(&id).await? else {
        return Err(ApiError::not_found(format!("no delivery {id}")));
    };
    let now = state.clock.now_ms();
    let done = match row.status {
        DeliveryStatus::Dead => state.store.redrive(&id, now, None).await?,
        DeliveryStatus::Rejected => {
            let raw = row.payload.as_bytes();
            // An SNS envelope from the queue: the notification is its Message.
            let inner = serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| unwrap_sns(&v).map(|(_, m)| m.to_string()));
            let parsed = state.acceptor.parse(inner.as_deref().map_or(raw, str::as_bytes)).await;
            let mut v = parsed.map_err(ApiError::StillInvalid)?;
            if let Some(key) = &row.idempotency_key {
                v.set_default_idempotency_key(key.clone());
            }
            let payload = to_json(&v.notification);
            state
                .store
                .redrive(&id, now, Some((v.notification.kind().as_str(), &payload)))
                .await?
        }
        other => {
            return Err(ApiError::Conflict(format!(
                "delivery {id} is {}, not dead or rejected",
                other.as_str()
            )));
        }
    };
    if !done {
        return Err(ApiError::Conflict(format!(
            "delivery {id} changed while redriving; look again"
        )));
    }
    state.wake.raise();
    Ok(Json(Redriven {
        id,
        status: DeliveryStatus::Pending,
    }))
}

/// Which dead deliveries to redrive in bulk.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRedrive {
    /// Only this type.
    pub notification_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// At most this many (1–10000, default 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkRedriven {
    /// How many dead deliveries became pending.
    pub redriven: u64,
}

/// Redrive every `dead` delivery that matches the filter (rejected ones are redriven one by one).
#[utoipa::path(
    post,
    path = "/v1/dead-letters/redrive",
    tag = "dead letters",
    request_body(content = BulkRedrive, example = json!({"notificationType": "SMS", "since": "2026-11-22T00:00:00+09:00"})),
    responses((status = 200, body = BulkRedriven), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn redrive_bulk(State(state): State<AppState>, RawBody(body): RawBody) -> ApiResult<Json<BulkRedriven>> {
    let req: BulkRedrive = if body.iter().all(u8::is_ascii_whitespace) {
        BulkRedrive::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(None, format!("invalid filter: {e}")))?
    };
    let filter = filter_of(
        None,
        req.notification_type.as_deref(),
        req.since.as_deref(),
        req.until.as_deref(),
    )?;
    let limit = req.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(Some("limit"), "must be between 1 and 10000"));
    }
    let redriven = state
        .store
        .redrive_matching(&filter, state.clock.now_ms(), limit)
        .await?;
    if redriven > 0 {
        state.wake.raise();
    }
    Ok(Json(BulkRedriven { redriven }))
}
