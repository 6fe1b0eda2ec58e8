//! The dispatcher: moves due deliveries to their channels.
//!
//! One step ([`Dispatcher::step`]) claims a batch of due rows with a lease, sends each through
//! its channel (several at once), and records the outcome: `delivered`; `failed` with a retry
//! time (exponential backoff with jitter, or the provider's `Retry-After`); or `dead` after
//! the last attempt or on a permanent error. [`Dispatcher::run`] is the thin loop around it,
//! woken early when the accept path stores something due now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accept::parse_notification;
use crate::channels::{Channels, Job, SendOutcome};
use crate::clock::{Clock, backoff, duration_ms};
use crate::settings::parse_duration;
use crate::store::{self, DeliveryRow, Finish, Store};
use crate::telemetry::SharedMetrics;

#[cfg(test)]
mod tests;

/// The dispatcher's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DispatchArgs {
    /// Run the dispatcher (sends due deliveries). Turn off for an ingest-only process.
    #[arg(long, env = "ALLIM_DISPATCH", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub dispatch: bool,

    /// How often the dispatcher looks for due deliveries when nothing wakes it.
    #[arg(long, env = "ALLIM_DISPATCH_INTERVAL", default_value = "1s", value_parser = parse_duration, global = true)]
    pub dispatch_interval: Duration,

    /// Deliveries claimed per dispatcher step.
    #[arg(long, env = "ALLIM_DISPATCH_BATCH", default_value_t = 100, global = true)]
    pub dispatch_batch: u32,

    /// Sends in flight at once.
    #[arg(long, env = "ALLIM_DISPATCH_CONCURRENCY", default_value_t = 32, global = true)]
    pub dispatch_concurrency: usize,

    /// How long a claimed delivery is leased to this process (must exceed the slowest send).
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

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    channels: Arc<Channels>,
    config: DispatchArgs,
    metrics: SharedMetrics,
    /// Lease owner name: unique per process.
    owner: String,
    wake: Arc<Notify>,
    clock: Clock,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        channels: Arc<Channels>,
        config: DispatchArgs,
        metrics: SharedMetrics,
        wake: Arc<Notify>,
        clock: Clock,
    ) -> Self {
        let owner = format!("{}-{}", hostname(), &store::new_id()[24..]);
        Dispatcher {
            store,
            channels,
            config,
            metrics,
            owner,
            wake,
            clock,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `shutdown`: steps while there is work, otherwise waits for a wake-up or
    /// the interval. On shutdown the current step finishes (the caller bounds it by the
    /// grace period) and the leases still held are given back.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let wait = match self.step().await {
                Ok(n) if n >= self.config.dispatch_batch as usize => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.config.dispatch_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures, Duration::from_secs(1), Duration::from_secs(30), 1.0);
                    tracing::warn!(error = %e, retry_in = ?wait, "dispatcher: claiming failed");
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.release().await;
    }

    /// Gives back the leases this process holds.
    pub async fn release(&self) {
        match self.store.release_leases(&self.owner, self.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "dispatcher: gave back leases at shutdown"),
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher: could not give back leases; they expire by themselves")
            }
        }
    }

    /// Claims one batch of due deliveries and processes it; returns how many were claimed.
    pub async fn step(&self) -> Result<usize, store::StoreError> {
        let kinds = self.channels.kinds();
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let lease_ms = duration_ms(self.config.dispatch_lease);
        let rows = self
            .store
            .claim_due(
                &self.owner,
                self.clock.now_ms(),
                lease_ms,
                self.config.dispatch_batch,
                &kinds,
            )
            .await?;
        let n = rows.len();
        futures::stream::iter(rows)
            .for_each_concurrent(self.config.dispatch_concurrency, |row| self.process(row))
            .await;
        Ok(n)
    }

    async fn process(&self, row: DeliveryRow) {
        let gauge = self.metrics.in_flight.with_label_values(&["dispatch"]);
        gauge.inc();
        let (channel_name, finish) = self.attempt(&row).await;
        gauge.dec();
        let now = self.clock.now_ms();
        let outcome = match &finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => {
                self.metrics.retries.with_label_values(&[channel_name]).inc();
                "retry"
            }
            Finish::Dead { .. } => {
                self.metrics.dead_letters.with_label_values(&[channel_name]).inc();
                "dead"
            }
        };
        self.metrics
            .deliveries
            .with_label_values(&[channel_name, outcome])
            .inc();
        match &finish {
            Finish::Delivered { .. } => {
                tracing::info!(delivery = %row.id, channel = channel_name, attempt = row.attempts, "delivered")
            }
            Finish::Retry { error, at } => {
                tracing::warn!(delivery = %row.id, channel = channel_name, attempt = row.attempts, %error, retry_in_ms = at - now, "delivery failed; will retry")
            }
            Finish::Dead { error } => {
                tracing::warn!(delivery = %row.id, channel = channel_name, attempt = row.attempts, %error, "delivery dead")
            }
        }
        match self.store.finish(&row.id, &self.owner, now, &finish).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %row.id, "lease lost before the outcome was recorded; another process owns it now")
            }
            // The lease expires and the row is attempted again (at least once, never lost).
            Err(e) => {
                tracing::error!(delivery = %row.id, error = %e, "could not record the outcome; the row will be retried after its lease")
            }
        }
    }

    /// One attempt: parse the stored payload, call the channel, decide the finish.
    async fn attempt(&self, row: &DeliveryRow) -> (&'static str, Finish) {
        let notification = match parse_notification(row.payload.as_bytes()) {
            Ok(v) => v.notification,
            Err(e) => {
                return (
                    "none",
                    Finish::Dead {
                        error: format!("stored payload is no longer valid: {e}"),
                    },
                );
            }
        };
        let Some(channel) = self.channels.get(notification.kind()) else {
            return (
                "none",
                Finish::Dead {
                    error: format!("no channel for {}", notification.kind().as_str()),
                },
            );
        };
        let job = Job {
            delivery_id: row.id.clone(),
            attempt: row.attempts,
            notification,
        };
        let started = Instant::now();
        let outcome = channel.send(&job).await;
        self.metrics
            .dispatch_latency
            .with_label_values(&[channel.name()])
            .observe(started.elapsed().as_secs_f64());
        let finish = decide(
            &self.config,
            row.attempts,
            outcome,
            self.clock.now_ms(),
            fastrand::f64(),
        );
        (channel.name(), finish)
    }
}

/// What an attempt's outcome means for the row: delivered; dead (a permanent error, or the
/// last attempt failed); or a retry at `now` + the provider's `Retry-After` (capped) or the
/// back-off of this attempt (`jitter` in 0..1).
pub fn decide(config: &DispatchArgs, attempt: i64, outcome: SendOutcome, now: i64, jitter: f64) -> Finish {
    match outcome {
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
    }
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
