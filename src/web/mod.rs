//! HTTP plumbing shared by the doors (`ingress`) and the API (`api`): the one error type and
//! its JSON shape, extractors whose rejections are that error, and the server loop.

pub mod error;
pub mod extract;
pub mod serve;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use extract::{ApiQuery, BodyLimit, RawBody};
