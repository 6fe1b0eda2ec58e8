//! HTTP ingress: producers that cannot use SQS POST notifications here. Invalid bodies are
//! answered with an error naming the problem and are not stored (the sender is told).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::accept::{Entry, Outcome, Source};
use crate::channels::Notification;
use crate::contract::ContractError;
use crate::store::DeliveryStatus;
use crate::web::error::contract_error_body;
use crate::web::{ApiError, ApiResult, ErrorBody, RawBody};

/// The most notifications one batch request may carry.
pub const BATCH_MAX: usize = 500;

/// The answer to an accepted notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedResponse {
    /// The delivery id: look it up at `GET /v1/deliveries/{id}`.
    #[schema(example = "019a9c1e-5a4f-7b7e-9f3a-2d6c1f0e8a11")]
    pub id: String,
    /// `pending` (a channel will send it), `delivered` (in-app rows are written at once).
    #[schema(example = "delivered")]
    pub status: DeliveryStatus,
    /// True when the idempotency key was seen before: this is the original delivery.
    pub duplicate: bool,
}

impl From<Outcome> for AcceptedResponse {
    fn from(o: Outcome) -> Self {
        AcceptedResponse {
            id: o.id,
            status: o.status,
            duplicate: o.duplicate,
        }
    }
}

/// Send one notification.
///
/// Validates the body against the message contract, de-duplicates on `idempotencyKey`, and
/// stores it. An `APP_NOTIFICATION` due now is in the user's inbox when this returns.
#[utoipa::path(
    post,
    path = "/v1/notifications",
    tag = "notifications",
    request_body(
        content = Notification,
        description = "One notification; `notificationType` selects the shape.",
        examples(
            ("APP_NOTIFICATION" = (value = json!({"notificationType": "APP_NOTIFICATION", "idempotencyKey": "order-1042-shipped",
                "userId": "42", "category": "order", "title": "Shipped", "body": "Your order is on its way",
                "link": "app://orders/1042", "data": {"orderId": 1042}}))),
            ("PUSH" = (value = json!({"notificationType": "PUSH", "userId": "42", "title": "Shipped", "body": "Your order is on its way", "data": {"orderId": "1042"}}))),
            ("SMS" = (value = json!({"notificationType": "SMS", "to": ["01012345678"], "content": "[allim] 주문하신 상품이 발송되었습니다."}))),
            ("SLACK" = (value = json!({"notificationType": "SLACK", "text": "New order #1042", "channel": "sales"}))),
            ("ALIMTALK" = (value = json!({"notificationType": "ALIMTALK", "templateCode": "ORDER_SHIPPED", "to": ["01012345678"],
                "variables": {"name": "홍길동", "orderNo": "1042"}})))
        )
    ),
    responses(
        (status = 202, description = "Accepted and stored", body = AcceptedResponse),
        (status = 200, description = "Duplicate idempotency key: the original delivery", body = AcceptedResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Not a valid notification; `field` names the problem", body = ErrorBody),
        (status = 503, description = "Database unavailable; nothing stored", body = ErrorBody),
    ),
    security(("bearer" = ["send"]))
)]
pub async fn send_notification(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<AcceptedResponse>)> {
    state.metrics.received.with_label_values(&["http"]).inc();
    let validated = state.acceptor.parse(&body).await?;
    let outcome = state.acceptor.accept_one(Source::Http, Entry::Valid(validated)).await?;
    state.metrics.count_outcome("http", outcome.duplicate, false);
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome.into())))
}

/// A batch of notifications.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// 1 to 500 notifications, each in the shape of `POST /v1/notifications`.
    #[schema(value_type = Vec<Notification>)]
    pub notifications: Vec<Value>,
}

/// What became of one item of a batch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    /// Position in the request.
    pub index: usize,
    /// Set when the item was stored (or was a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatus>,
    pub duplicate: bool,
    /// Set when the item was invalid; nothing was stored for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorBody>)]
    pub error: Option<Value>,
}

/// The answer to a batch: one result per item, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub invalid: usize,
    pub results: Vec<BatchItemResult>,
}

/// Send up to 500 notifications at once.
///
/// Each item is validated on its own: an invalid item is reported in its result and does not
/// sink the others. The valid ones are stored in one transaction.
#[utoipa::path(
    post,
    path = "/v1/notifications/batch",
    tag = "notifications",
    request_body(content = BatchRequest, example = json!({"notifications": [
        {"notificationType": "APP_NOTIFICATION", "userId": "42", "title": "Shipped"},
        {"notificationType": "APP_NOTIFICATION", "userId": "43", "title": ""}
    ]})),
    responses(
        (status = 200, description = "One result per item", body = BatchResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "`notifications` missing, empty or over 500", body = ErrorBody),
        (status = 503, description = "Database unavailable; nothing stored", body = ErrorBody),
    ),
    security(("bearer" = ["send"]))
)]
pub async fn send_batch(State(state): State<AppState>, RawBody(body): RawBody) -> ApiResult<Json<BatchResponse>> {
    let items = batch_items(&body)?;
    if items.is_empty() {
        return Err(invalid_batch("must not be empty"));
    }
    if items.len() > BATCH_MAX {
        return Err(invalid_batch(&format!(
            "must have at most {BATCH_MAX} items (got {})",
            items.len()
        )));
    }

    let mut results: Vec<BatchItemResult> = Vec::with_capacity(items.len());
    let mut entries = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let parsed = match item {
            Item::Raw(raw) => state.acceptor.parse(raw.get().as_bytes()).await,
            Item::Value(value) => state.acceptor.parse_value(value).await,
        }
        .map_err(|e| match e {
            // The item, not the request body, is what must be an object here.
            ContractError::NotAnObject => ContractError::field(
                format!("notifications[{index}]"),
                "must be a JSON object (one notification)",
            ),
            e => e,
        });
        match parsed {
            Ok(v) => {
                positions.push(index);
                entries.push(Entry::Valid(v));
                results.push(BatchItemResult {
                    index,
                    id: None,
                    status: None,
                    duplicate: false,
                    error: None,
                });
            }
            Err(e) => results.push(BatchItemResult {
                index,
                id: None,
                status: None,
                duplicate: false,
                error: Some(serde_json::to_value(contract_error_body(&e)).expect("error body serializes")),
            }),
        }
    }
    let invalid = results.len() - entries.len();
    let outcomes = if entries.is_empty() {
        Vec::new()
    } else {
        state.acceptor.accept(Source::Http, entries).await?
    };
    let mut accepted = 0;
    let mut duplicates = 0;
    state
        .metrics
        .received
        .with_label_values(&["http"])
        .inc_by(results.len() as u64);
    for (pos, outcome) in positions.into_iter().zip(outcomes) {
        if outcome.duplicate {
            duplicates += 1;
        } else {
            accepted += 1;
        }
        let r = &mut results[pos];
        r.id = Some(outcome.id);
        r.status = Some(outcome.status);
        r.duplicate = outcome.duplicate;
    }
    state.metrics.count_outcomes("http", accepted as u64, duplicates as u64);
    Ok(Json(BatchResponse {
        accepted,
        duplicates,
        invalid,
        results,
    }))
}

/// One item of a batch: its JSON text, or (when the body took the slow path) its value.
enum Item<'a> {
    Raw(&'a serde_json::value::RawValue),
    Value(Value),
}

/// The batch body as read in one pass: each item's JSON text, parsed later on its own.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    notifications: Vec<&'a serde_json::value::RawValue>,
}

/// The batch's items. A body the one-pass read refuses (or one with a duplicate member) is read
/// again as a `serde_json::Value`, which says what is wrong, or takes the last duplicate as
/// serde_json does.
fn batch_items(body: &[u8]) -> Result<Vec<Item<'_>>, ApiError> {
    if let Ok(batch) = serde_json::from_slice::<BatchBody>(body) {
        return Ok(batch.notifications.into_iter().map(Item::Raw).collect());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::from(ContractError::MalformedJson(e.to_string())))?;
    match value {
        Value::Object(mut map) => match map.remove("notifications") {
            Some(Value::Array(items)) => Ok(items.into_iter().map(Item::Value).collect()),
            Some(_) => Err(invalid_batch("must be an array")),
            None => Err(invalid_batch("is required")),
        },
        _ => Err(ApiError::from(ContractError::NotAnObject)),
    }
}

fn invalid_batch(message: &str) -> ApiError {
    ApiError::validation("notifications", message)
}
