//! The dispatcher: moves due deliveries to their channels, one lane per channel.
//!
//! A lane ([`lane::Lane`]) claims its channel's due rows with a lease and sends them at the
//! channel's own rate and concurrency, so a slow or failing provider never delays another
//! channel. Across tasks, one task at a time holds a channel's lane (a lease in the `lanes`
//! table), so the channel's rate limit holds for the whole service. A lane claims only what it
//! can send within half a row lease at its rate, renews the leases of rows in flight, and the
//! channel checks the lease right before each provider call; each outcome is recorded as
//! `delivered`; `failed` with a retry time (exponential backoff with jitter, or the provider's
//! `Retry-After`); `dead` after the last attempt or on a permanent error; or — when the
//! provider refuses allim's credentials — back in the queue without using an attempt while the
//! lane pauses.

mod lane;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channels::{ChannelArgs, Channels, SendOutcome};
use crate::clock::{Clock, backoff, duration_ms};
use crate::settings::parse_duration;
use crate::store::{self, Finish, Store, StoreError, Wake};
use crate::telemetry::SharedMetrics;
use lane::Lane;

/// The dispatcher's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DispatchArgs {
    /// Run the dispatcher (sends due deliveries). Turn off for an ingest-only process.
    #[arg(long, env = "ALLIM_DISPATCH", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub dispatch: bool,

    /// How often the dispatcher looks for due deliveries when nothing wakes it, and how often a
    /// task without a channel's lane tries for it.
    #[arg(long, env = "ALLIM_DISPATCH_INTERVAL", default_value = "1s", value_parser = parse_duration, global = true)]
    pub dispatch_interval: Duration,

    /// Most deliveries a channel's lane claims at once (fewer when its rate cannot send them
    /// within half a lease).
    #[arg(long, env = "ALLIM_DISPATCH_BATCH", default_value_t = 100, global = true)]
    pub dispatch_batch: u32,

    /// Sends in flight at once, per channel.
    #[arg(long, env = "ALLIM_DISPATCH_CONCURRENCY", default_value_t = 32, global = true)]
    pub dispatch_concurrency: usize,

    /// How long a claim holds a delivery and a task holds a channel's lane; renewed every
    /// third of it.
    #[arg(long, env = "ALLIM_DISPATCH_LEASE", default_value = "60s", value_parser = parse_duration, global = true)]
    pub dispatch_lease: Duration,

    /// Attempts before a delivery goes dead.
    #[arg(long, env = "ALLIM_RETRY_MAX_ATTEMPTS", default_value_t = 8, global = true)]
    pub retry_max_attempts: i64,

    /// First retry delay (doubles per attempt, with jitter).
    #[arg(long, env = "ALLIM_RETRY_BASE", default_value = "10s", value_parser = parse_duration, global = true)]
    pub retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "ALLIM_RETRY_CAP", default_value = "1h", value_parser = parse_duration, global = true)]
    pub retry_cap: Duration,
}

impl DispatchArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=1000).contains(&self.dispatch_batch) {
            anyhow::bail!("ALLIM_DISPATCH_BATCH must be between 1 and 1000");
        }
        if !(1..=1000).contains(&self.dispatch_concurrency) {
            anyhow::bail!("ALLIM_DISPATCH_CONCURRENCY must be between 1 and 1000");
        }
        if self.dispatch_interval < Duration::from_millis(10) {
            anyhow::bail!("ALLIM_DISPATCH_INTERVAL must be at least 10ms");
        }
        if self.dispatch_lease < Duration::from_secs(1) {
            anyhow::bail!("ALLIM_DISPATCH_LEASE must be at least 1s");
        }
        if !(1..=100).contains(&self.retry_max_attempts) {
            anyhow::bail!("ALLIM_RETRY_MAX_ATTEMPTS must be between 1 and 100");
        }
        if self.retry_base > self.retry_cap {
            anyhow::bail!("ALLIM_RETRY_BASE must not exceed ALLIM_RETRY_CAP");
        }
        Ok(())
    }
}

/// The lanes of every registered channel.
#[derive(Clone)]
pub struct Dispatcher {
    lanes: Vec<Arc<Lane>>,
    store: Store,
    wake: Wake,
    clock: Clock,
    /// Lease owner name: unique per process.
    owner: String,
}

impl Dispatcher {
    /// One lane per registered channel; `rates` gives each channel's provider rate.
    pub fn new(
        store: Store,
        channels: Arc<Channels>,
        config: DispatchArgs,
        rates: &ChannelArgs,
        metrics: SharedMetrics,
        wake: Wake,
        clock: Clock,
    ) -> Self {
        let owner = format!("{}-{}", hostname(), &store::new_id()[24..]);
        let lanes = channels
            .kinds()
            .into_iter()
            .filter_map(|kind| {
                let channel = channels.get(kind)?.clone();
                Some(Arc::new(Lane::new(
                    kind,
                    channel,
                    store.clone(),
                    config.clone(),
                    rates.rate_per_sec(kind),
                    metrics.clone(),
                    owner.clone(),
                    clock.clone(),
                )))
            })
            .collect();
        Dispatcher {
            lanes,
            store,
            wake,
            clock,
            owner,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs every lane until `shutdown`; then the rows in flight finish (the caller bounds
    /// that by the grace period) and the leases still held are given back.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut lanes = tokio::task::JoinSet::new();
        for lane in &self.lanes {
            lanes.spawn(lane.clone().run(self.wake.subscribe(lane.name()), shutdown.clone()));
        }
        while lanes.join_next().await.is_some() {}
        self.release().await;
    }

    /// One claim-and-send round of every lane; how many rows were claimed (tests drive this).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for lane in &self.lanes {
            n += lane.step().await?;
        }
        Ok(n)
    }

    /// Gives back the row leases (with their attempts) and the lanes this process holds.
    pub async fn release(&self) {
        let now = self.clock.now_ms();
        match self.store.release_leases(&self.owner, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "dispatcher: gave back leases at shutdown"),
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher: could not give back leases; they expire by themselves")
            }
        }
        // All at once: with the database down each waits out the pool's connection wait.
        futures::future::join_all(self.lanes.iter().map(|lane| lane.release(now))).await;
    }
}

/// What an attempt's outcome means for the row: delivered; dead (a permanent error, or the
/// last attempt failed); a retry at `now` + the provider's `Retry-After` (capped) or the
/// back-off of this attempt (`jitter` in 0..1); back in the queue at `paused_until` without
/// using the attempt (credentials refused); or nothing at all (the lease was lost).
pub fn decide(
    config: &DispatchArgs,
    attempt: i64,
    outcome: SendOutcome,
    now: i64,
    jitter: f64,
    paused_until: i64,
) -> Option<Finish> {
    Some(match outcome {
        SendOutcome::LeaseLost => return None,
        SendOutcome::Credentials { error } => Finish::Requeue {
            error,
            at: paused_until.max(now),
        },
        SendOutcome::Delivered { dry_run } => Finish::Delivered { dry_run },
        SendOutcome::Permanent { error } => Finish::Dead { error },
        SendOutcome::Retry { error, .. } if attempt >= config.retry_max_attempts => Finish::Dead {
            error: format!("gave up after {attempt} attempts: {error}"),
        },
        SendOutcome::Retry { error, after } => {
            let delay = match after {
                Some(after) => after.min(config.retry_cap),
                None => backoff(
                    u32::try_from(attempt).unwrap_or(u32::MAX),
                    config.retry_base,
                    config.retry_cap,
                    jitter,
                ),
            };
            Finish::Retry {
                error,
                at: now + duration_ms(delay),
            }
        }
    })
}

/// How long a lane pauses after its `n`-th credential refusal in a row: 30 s, doubling, at
/// most 10 minutes.
pub fn pause_after(n: u32) -> Duration {
    backoff(n, Duration::from_secs(30), Duration::from_secs(600), 1.0)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "allim".into())
        .chars()
        .take(40)
        .collect()
}
