//! The operator's overview: per channel what happened in the last hour and day, what waits,
//! the lanes, the SQS consumer. One read for the console's first page.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::clock::format_ms;
use crate::telemetry::LaneStats;
use crate::web::{ApiResult, ErrorBody};

/// Deliveries created in a window, by status.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    pub dead: i64,
    pub rejected: i64,
}

impl Counts {
    fn add(&mut self, status: &str, n: i64) {
        match status {
            "pending" => self.pending += n,
            "delivered" => self.delivered += n,
            "failed" => self.failed += n,
            "dead" => self.dead += n,
            _ => self.rejected += n,
        }
    }
}

/// One notification type.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeOverview {
    /// Created in the last hour, by status now.
    pub last_hour: Counts,
    /// Created in the last 24 hours, by status now.
    pub last_day: Counts,
    /// Waiting now (pending, or failed with a retry scheduled), whenever created.
    pub waiting: i64,
}

/// The SQS consumer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerState {
    /// True when `ALLIM_SQS_QUEUE_URL` is set.
    pub enabled: bool,
    /// True while it holds off because the database is unavailable.
    pub database_unavailable: bool,
    /// Pollers receiving now (1 at idle).
    pub pollers: i64,
}

/// The overview.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// RFC 3339, UTC: when this was read.
    pub at: String,
    /// By `notificationType` (`UNKNOWN` for rejected bodies).
    pub types: BTreeMap<String, TypeOverview>,
    /// By channel, since this task started.
    pub lanes: Vec<LaneStats>,
    pub consumer: ConsumerState,
    /// True when `/v1` is served without tokens (loopback only).
    pub open: bool,
}

/// What happened and what waits, per channel.
#[utoipa::path(
    get,
    path = "/v1/overview",
    tag = "deliveries",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody)),
    security(("bearer" = ["admin"]))
)]
pub async fn overview(State(state): State<AppState>) -> ApiResult<Json<Overview>> {
    let now = state.clock.now_ms();
    let mut types: BTreeMap<String, TypeOverview> = BTreeMap::new();
    for (kind, status, day, hour) in state.store.status_counts(now - 86_400_000, now - 3_600_000).await? {
        let t = types.entry(kind).or_default();
        t.last_day.add(&status, day);
        t.last_hour.add(&status, hour);
    }
    for (kind, n) in state.store.waiting_counts().await? {
        types.entry(kind).or_default().waiting = n;
    }
    Ok(Json(Overview {
        at: format_ms(now),
        types,
        lanes: state.metrics.lane_stats(),
        consumer: ConsumerState {
            enabled: state.sqs_enabled,
            database_unavailable: state.consumer.db_unavailable.load(Ordering::Relaxed),
            pollers: state.metrics.sqs_pollers.get(),
        },
        open: state.api.is_open(),
    }))
}
