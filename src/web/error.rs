//! The error policy of the HTTP API.
//!
//! Every error answer has one JSON shape, [`ErrorBody`]: a stable machine `error` code, the
//! `field` it is about when there is one, and a `message` a person can act on. Each variant of
//! [`ApiError`] fixes its status and code; the list of codes in the OpenAPI document is made
//! from [`ApiError::CODES`]. Client mistakes are 4xx and name the problem; database trouble is
//! 503 (retry later) and is logged; nothing internal (SQL, stack, secrets) is ever put in an
//! answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::accept::AcceptError;
use crate::contract::ContractError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "validation", "field": "title", "message": "must not be empty"}))]
pub struct ErrorBody {
    /// Stable code (see the list in the API description).
    pub error: String,
    /// The field the error is about (a JSON path such as `to[2]`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: a query parameter, path or body that is not what the route takes.
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    /// 400 `malformed_json`: the body is not JSON, or not a JSON object.
    #[error("{0}")]
    MalformedJson(String),
    /// 422 `validation`: a field (when known) breaks the contract.
    #[error("{message}")]
    Validation { field: Option<String>, message: String },
    /// 422 `unknown_notification_type`.
    #[error("{0}")]
    UnknownType(String),
    /// 422 with the contract error's own code: a stored message (a rejected one being
    /// redriven) that is still not a valid notification. The request was fine; the message is not.
    #[error("{0}")]
    StillInvalid(ContractError),
    /// 413 `payload_too_large`, with the limit in bytes.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 401 `unauthorized`.
    #[error("missing or invalid bearer token (Authorization: Bearer <token>)")]
    Unauthorized,
    /// 403 `forbidden`.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict`: the resource is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// 400 or 403 `sns_refused`: an SNS message that does not verify, or a topic not allowed.
    #[error("{message}")]
    SnsRefused { forbidden: bool, message: String },
    /// 502 `unavailable`: a service allim depends on answered badly (SNS SubscribeURL).
    #[error("{0}")]
    Upstream(String),
    /// 503 `unavailable`: the database (or a certificate host) is unavailable; nothing stored.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// Every code an answer can carry, with what it means (for the API description).
    pub const CODES: &'static [(&'static str, &'static str)] = &[
        ("bad_request", "400: a parameter, path or body the route does not take"),
        ("malformed_json", "400: the body is not a JSON object"),
        ("validation", "422: a field breaks the contract; `field` names it"),
        (
            "unknown_notification_type",
            "422: `notificationType` is not one allim knows",
        ),
        ("payload_too_large", "413: the body is over the limit"),
        ("unauthorized", "401: missing or wrong bearer token"),
        (
            "forbidden",
            "403: not allowed here (e.g. the SNS webhook with no topic configured)",
        ),
        ("not_found", "404: no such resource or route"),
        ("conflict", "409: the resource is not in a state that allows this"),
        (
            "sns_refused",
            "400/403: an SNS message that does not verify, or a topic not allowed",
        ),
        (
            "unavailable",
            "502/503: the database or a service allim depends on is unavailable; retry",
        ),
    ];

    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::UnknownType(_) | ApiError::StillInvalid(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::SnsRefused { forbidden: true, .. } => StatusCode::FORBIDDEN,
            ApiError::SnsRefused { forbidden: false, .. } => StatusCode::BAD_REQUEST,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Validation { .. } => "validation",
            ApiError::UnknownType(_) => "unknown_notification_type",
            ApiError::StillInvalid(e) => ApiError::from(e.clone()).code(),
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::SnsRefused { .. } => "sns_refused",
            ApiError::Upstream(_) | ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        let (field, message) = match self {
            ApiError::BadRequest { field, message } | ApiError::Validation { field, message } => {
                (field.clone(), message.clone())
            }
            ApiError::UnknownType(m) => (Some("notificationType".into()), m.clone()),
            ApiError::StillInvalid(e) => return ApiError::from(e.clone()).body(),
            other => (None, other.to_string()),
        };
        ErrorBody {
            error: self.code().to_string(),
            field,
            message,
        }
    }
}

impl From<ContractError> for ApiError {
    fn from(e: ContractError) -> Self {
        match e {
            ContractError::MalformedJson(m) => ApiError::MalformedJson(format!("body is not valid JSON: {m}")),
            ContractError::NotAnObject => ApiError::MalformedJson("body must be a JSON object".into()),
            ContractError::UnknownType { .. } => ApiError::UnknownType(e.to_string()),
            ContractError::Invalid(f) => ApiError::Validation {
                field: Some(f.field),
                message: f.message,
            },
        }
    }
}

/// The error body for a contract error (also used per item in batch answers).
pub fn contract_error_body(e: &ContractError) -> ErrorBody {
    ApiError::from(e.clone()).body()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "database call failed");
        match e {
            StoreError::Timeout(after) => timed_out(after),
            _ => database_unavailable(),
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        tracing::error!(error = %e, "accepting failed");
        match e.timed_out() {
            Some(after) => timed_out(after),
            None => database_unavailable(),
        }
    }
}

/// The database could not be reached or was too busy: nothing was stored.
fn database_unavailable() -> ApiError {
    ApiError::Unavailable("the database is unavailable; nothing was stored, try again".into())
}

/// A write abandoned at `ALLIM_DB_WRITE_TIMEOUT`: whether it was committed is not known, so the
/// answer does not say "nothing was stored".
fn timed_out(after: std::time::Duration) -> ApiError {
    ApiError::Unavailable(format!(
        "the database did not answer within {}; what was sent may have been stored: try again with the same idempotencyKey (without one, a retry may store it twice)",
        humantime::format_duration(after)
    ))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed() {
        let samples = [
            ApiError::bad_request(None, "x"),
            ApiError::MalformedJson("x".into()),
            ApiError::validation("f", "x"),
            ApiError::UnknownType("x".into()),
            ApiError::StillInvalid(ContractError::NotAnObject),
            ApiError::PayloadTooLarge(1),
            ApiError::Unauthorized,
            ApiError::Forbidden("x".into()),
            ApiError::NotFound("x".into()),
            ApiError::Conflict("x".into()),
            ApiError::SnsRefused {
                forbidden: true,
                message: "x".into(),
            },
            ApiError::Upstream("x".into()),
            ApiError::Unavailable("x".into()),
        ];
        for e in &samples {
            assert!(
                ApiError::CODES.iter().any(|(c, _)| *c == e.code()),
                "{} is not in CODES",
                e.code()
            );
        }
        assert_eq!(
            ApiError::validation("title", "must not be empty")
                .body()
                .field
                .as_deref(),
            Some("title")
        );
    }
}
