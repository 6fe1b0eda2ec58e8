//! HTTP plumbing shared by the doors (`ingress`) and the API (`api`): the one error type and
//! its JSON shape, and extractors whose rejections are that error.

pub mod error;
pub mod extract;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use extract::{ApiQuery, BodyLimit, RawBody};
