//! The in-app inbox, as the mobile / web app reads it: list (newest first, cursor pages),
//! unread count, mark one read, mark all read.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::clock::format_ms;
use crate::contract::{ContractError, check_user_id};
use crate::store::{InboxRow, ListInbox};
use crate::web::ApiQuery;
use crate::web::{ApiError, ApiResult, ErrorBody};

/// One inbox notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    /// The inbox item's id: use it to mark the item read.
    pub id: String,
    /// The delivery that produced it (the id `POST /v1/notifications` returned).
    pub delivery_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC; absent while unread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

impl From<InboxRow> for InboxItem {
    fn from(r: InboxRow) -> Self {
        InboxItem {
            id: r.id,
            delivery_id: r.delivery_id,
            category: r.category,
            title: r.title,
            body: r.body,
            link: r.link,
            data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: format_ms(r.created_at),
            read_at: r.read_at.map(format_ms),
        }
    }
}

/// A page of the inbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query parameters of the inbox listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only unread notifications.
    pub unread: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadResult {
    pub id: String,
    /// When it was first marked read (RFC 3339, UTC).
    pub read_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadAllResult {
    /// How many notifications were unread and are now read.
    pub updated: u64,
}

/// The contract's one `userId` rule, for the path segment.
pub(crate) fn check_user(user_id: &str) -> ApiResult<()> {
    check_user_id("userId", user_id).map_err(|e| match e {
        ContractError::Invalid(f) => ApiError::bad_request(Some("userId"), f.message),
        other => ApiError::bad_request(Some("userId"), other.to_string()),
    })
}

fn check_id(field: &str, id: &str) -> ApiResult<()> {
    uuid::Uuid::try_parse(id)
        .map(|_| ())
        .map_err(|_| ApiError::bad_request(Some(field), "is not a valid id"))
}

/// List a user's inbox, newest first.
#[utoipa::path(
    get,
    path = "/v1/users/{userId}/notifications",
    tag = "inbox",
    params(("userId" = String, Path, description = "The user"), InboxQuery),
    responses(
        (status = 200, body = InboxPage),
        (status = 400, description = "Bad parameter; `field` names it", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
    security(("bearer" = ["app"]))
)]
pub async fn list(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> ApiResult<Json<InboxPage>> {
    check_user(&user_id)?;
    let limit = super::params::page_limit(q.limit, 20)?;
    if let Some(cursor) = &q.cursor {
        check_id("cursor", cursor)?;
    }
    let rows = state
        .store
        .list_inbox(&ListInbox {
            user_id: &user_id,
            unread_only: q.unread.unwrap_or(false),
            before: q.cursor.as_deref(),
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() > limit as usize;
    let items: Vec<InboxItem> = rows.into_iter().take(limit as usize).map(Into::into).collect();
    let next_cursor = if more { items.last().map(|i| i.id.clone()) } else { None };
    Ok(Json(InboxPage { items, next_cursor }))
}

/// How many of a user's notifications are unread.
#[utoipa::path(
    get,
    path = "/v1/users/{userId}/notifications/unread-count",
    tag = "inbox",
    params(("userId" = String, Path, description = "The user")),
    responses((status = 200, body = UnreadCount), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["app"]))
)]
pub async fn unread_count(State(state): State<AppState>, Path(user_id): Path<String>) -> ApiResult<Json<UnreadCount>> {
    check_user(&user_id)?;
    let unread = state.store.unread_count(&user_id).await?;
    Ok(Json(UnreadCount { unread }))
}

/// Mark one notification read. Marking it again keeps the first read time.
#[utoipa::path(
    post,
    path = "/v1/users/{userId}/notifications/{id}/read",
    tag = "inbox",
    params(("userId" = String, Path, description = "The user"), ("id" = String, Path, description = "Inbox notification id")),
    responses(
        (status = 200, body = ReadResult),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "The user has no such notification", body = ErrorBody),
    ),
    security(("bearer" = ["app"]))
)]
pub async fn mark_read(
    State(state): State<AppState>,
    Path((user_id, id)): Path<(String, String)>,
) -> ApiResult<Json<ReadResult>> {
    check_user(&user_id)?;
    check_id("id", &id)?;
    match state.store.mark_read(&user_id, &id, state.clock.now_ms()).await? {
        Some(read_at) => Ok(Json(ReadResult {
            id,
            read_at: format_ms(read_at),
        })),
        None => Err(ApiError::not_found(format!(
            "user {user_id:?} has no notification {id}"
        ))),
    }
}

/// Mark all of a user's notifications read.
#[utoipa::path(
    post,
    path = "/v1/users/{userId}/notifications/read-all",
    tag = "inbox",
    params(("userId" = String, Path, description = "The user")),
    responses((status = 200, body = ReadAllResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = ["app"]))
)]
pub async fn mark_all_read(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<ReadAllResult>> {
    check_user(&user_id)?;
    let updated = state.store.mark_all_read(&user_id, state.clock.now_ms()).await?;
    Ok(Json(ReadAllResult { updated }))
}
