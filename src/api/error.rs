//! The error policy of the HTTP API.
//!
//! Every error answer has one JSON shape, [`ErrorBody`]: a stable machine `error` code, the
//! `field` it is about when there is one, and a `message` a person can act on. Client mistakes
//! are 4xx and name the problem; database trouble is 503 (retry later) and is logged; nothing
//! internal (SQL, stack, secrets) is ever put in an answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::accept::ContractError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": "validation", "field": "title", "message": "must not be empty"}))]
pub struct ErrorBody {
    /// Stable code: `validation`, `unknown_notification_type`, `malformed_json`,
    /// `payload_too_large`, `bad_request`, `not_found`, `unauthorized`, `unavailable`.
    pub error: String,
    /// The field the error is about (a JSON path such as `to[2]`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// An error answer: status plus body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_string(),
                field: field.map(str::to_string),
                message: message.into(),
            },
        }
    }

    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", field, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", None, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
            "missing or invalid bearer token (Authorization: Bearer <token>)",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
            format!("request body is larger than {limit} bytes"),
        )
    }
}

impl From<ContractError> for ApiError {
    fn from(e: ContractError) -> Self {
        let body = contract_error_body(&e);
        let status = match e {
            ContractError::MalformedJson(_) | ContractError::NotAnObject => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError { status, body }
    }
}

/// The error body for a contract error (also used per item in batch answers).
pub fn contract_error_body(e: &ContractError) -> ErrorBody {
    let (code, field, message) = match e {
        ContractError::MalformedJson(m) => ("malformed_json", None, format!("body is not valid JSON: {m}")),
        ContractError::NotAnObject => ("malformed_json", None, "body must be a JSON object".to_string()),
        ContractError::UnknownType(_) => (
            "unknown_notification_type",
            Some("notificationType".to_string()),
            e.to_string(),
        ),
        ContractError::Invalid(f) => ("validation", Some(f.field.clone()), f.message.clone()),
    };
    ErrorBody {
        error: code.to_string(),
        field,
        message,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "database call failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            None,
            "the database is unavailable; nothing was stored, try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
