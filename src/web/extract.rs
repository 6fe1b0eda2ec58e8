//! Extractors whose rejections are our own [`ApiError`], so a bad body or query string gets
//! the same JSON error shape as everything else.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The raw request body, with "too large" turned into a 413 that states the limit.
pub struct RawBody(pub Bytes);

/// The body limit in force for a route, put in the request extensions by its layer.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(2 * 1024 * 1024, |l| l.0);
        Bytes::from_request(req, state).await.map(RawBody).map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::bad_request(None, r.body_text())
            }
        })
    }
}

/// A query string parsed into `T`; errors name the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|r| ApiError::bad_request(None, r.body_text()))
    }
}
