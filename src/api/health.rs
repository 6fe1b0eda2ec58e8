//! Health for the load balancer and the orchestrator: `/healthz` says the process is alive;
//! `/readyz` says it can do its job (the database answers).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// What is wrong, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Watchers whose last poll failed, with the error (`/readyz`; they do not make the task
    /// unready: the polled API is someone else's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_watchers: Vec<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        reason: None,
        failing_watchers: Vec::new(),
    })
}

/// Readiness: the database answers within 2 s.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "Not ready; `reason` says why", body = Health))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.consumer.db_unavailable.load(std::sync::atomic::Ordering::Relaxed) {
        return unavailable("sqs consumer is backing off: the database was unavailable");
    }
    let ping = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => {
            let mut failing = Vec::new();
            if let Some(w) = &state.watchers
                && let Ok(mut rows) = state.store.watchers().await
            {
                for watcher in w.watchers() {
                    if let Some(row) = rows.remove(&watcher.name)
                        && row.failures > 0
                    {
                        failing.push(format!("{}: {}", watcher.name, row.last_error.unwrap_or_default()));
                    }
                }
            }
            (
                StatusCode::OK,
                Json(Health {
                    status: "ready".into(),
                    reason: None,
                    failing_watchers: failing,
                }),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            unavailable("database unreachable")
        }
        Err(_) => unavailable("database did not answer within 2s"),
    }
}

fn unavailable(reason: &str) -> (StatusCode, Json<Health>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Health {
            status: "unavailable".into(),
            reason: Some(reason.into()),
            failing_watchers: Vec::new(),
        }),
    )
}
