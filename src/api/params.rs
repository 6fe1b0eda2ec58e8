//! The query parameters several listings share, checked one way: a page size, a cursor, an
//! RFC 3339 time, a `notificationType`.

use crate::channels::NotificationType;
use crate::web::{ApiError, ApiResult};

/// A page size: 1–100, `default` when absent.
pub fn page_limit(limit: Option<u32>, default: u32) -> ApiResult<u32> {
    let limit = limit.unwrap_or(default);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(Some("limit"), "must be between 1 and 100"))
    }
}

/// A `cursor`: the id (a UUID) the previous page ended with.
pub fn page_cursor(cursor: Option<&str>) -> ApiResult<()> {
    match cursor {
        Some(c) if uuid::Uuid::try_parse(c).is_err() => {
            Err(ApiError::bad_request(Some("cursor"), "is not a valid cursor"))
        }
        _ => Ok(()),
    }
}

/// An RFC 3339 time, as epoch milliseconds.
pub fn time(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|_| ApiError::bad_request(Some(field), "must be an RFC 3339 time"))
        })
        .transpose()
}

/// A `notificationType` filter: a known type, or `UNKNOWN` (rejected bodies).
pub fn notification_type(kind: Option<&str>) -> ApiResult<()> {
    match kind {
        Some(k) if k != "UNKNOWN" && NotificationType::parse(k).is_none() => Err(ApiError::bad_request(
            Some("notificationType"),
            format!("must be {} or UNKNOWN", NotificationType::names()),
        )),
        _ => Ok(()),
    }
}
