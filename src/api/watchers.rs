//! Watchers, for operators: the state of each, and a poll on demand.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::format_ms;
use crate::ingress::watchers::shown_url;
use crate::web::{ApiError, ApiResult, ErrorBody};

/// One watcher and what it did last.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatcherView {
    pub name: String,
    /// The URL polled (without its query string, which may hold a key).
    pub url: String,
    /// Seconds between polls.
    pub interval_seconds: u64,
    /// False until the first poll recorded what was there.
    pub initialized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// The last poll's error (cleared by a successful one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed polls in a row.
    pub failures: i64,
    /// New items found so far.
    pub items_seen: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_poll_at: Option<String>,
    /// The open digest window, when the watcher has a digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DigestView {
    pub window_start: String,
    pub window_end: String,
    pub count: i64,
    pub sum: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatcherList {
    pub items: Vec<WatcherView>,
}

/// The watchers and what each did last.
#[utoipa::path(
    get,
    path = "/v1/watchers",
    tag = "watchers",
    responses((status = 200, body = WatcherList), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<WatcherList>> {
    let Some(runner) = &state.watchers else {
        return Ok(Json(WatcherList { items: Vec::new() }));
    };
    let mut rows = state.store.watchers().await?;
    let mut items = Vec::new();
    for w in runner.watchers() {
        let row = rows.remove(&w.name).unwrap_or_default();
        let digest = w.digest.as_ref().and_then(|d| {
            row.digest_start.map(|s| DigestView {
                window_start: format_ms(s),
                window_end: format_ms(s + crate::clock::duration_ms(d.every)),
                count: row.digest_count,
                sum: row.digest_sum,
            })
        });
        items.push(WatcherView {
            name: w.name.clone(),
            url: shown_url(&w.url),
            interval_seconds: w.interval.as_secs(),
            initialized: row.initialized != 0,
            last_poll_at: row.last_poll_at.map(format_ms),
            last_success_at: row.last_success_at.map(format_ms),
            last_error: row.last_error,
            failures: row.failures,
            items_seen: row.items_seen,
            next_poll_at: (row.next_poll_at > 0).then(|| format_ms(row.next_poll_at)),
            digest,
        });
    }
    Ok(Json(WatcherList { items }))
}

/// What a poll on demand did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollResult {
    /// Items in the answer.
    pub items: usize,
    /// Items not seen before.
    pub new: usize,
    /// Notifications accepted for them (none on a first poll, or when they go to a digest).
    pub notified: usize,
}

/// Poll a watcher now, whatever its schedule.
#[utoipa::path(
    post,
    path = "/v1/watchers/{name}/poll",
    tag = "watchers",
    params(("name" = String, Path, description = "The watcher's name")),
    responses(
        (status = 200, body = PollResult),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "The polled API failed; the message says how (also in `lastError`)", body = ErrorBody),
    ),
    security(("bearer" = ["admin"]))
)]
pub async fn poll(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<PollResult>> {
    let runner = state
        .watchers
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("no watcher {name}")))?;
    match runner.poll_now(&name).await {
        None => Err(ApiError::not_found(format!("no watcher {name}"))),
        Some(Ok(p)) => Ok(Json(PollResult {
            items: p.items,
            new: p.new,
            notified: p.notified,
        })),
        Some(Err(e)) => Err(ApiError::Upstream(e)),
    }
}
