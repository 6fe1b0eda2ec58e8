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
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accept::message;
use crate::api::metrics::SharedMetrics;
use crate::channels::{Channels, Job, SendOutcome};
use crate::store::{self, DeliveryRow, Finish, Store};

/// Dispatcher settings (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// How often to look for due rows when nothing wakes the loop.
    pub interval: Duration,
    /// Rows claimed per step.
    pub batch: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds a row; must exceed the slowest channel call.
    pub lease: Duration,
    /// Attempts before a delivery goes dead.
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
}

/// Retry delay after `attempt` (1-based): base·2^(attempt-1), capped, with "equal jitter"
/// (between half and all of it) so that retries of a burst spread out.
pub fn backoff(attempt: i64, base: Duration, cap: Duration, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    half + Duration::from_secs_f64(half.as_secs_f64() * rng.random::<f64>())
}

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    channels: Arc<Channels>,
    config: DispatchConfig,
    metrics: SharedMetrics,
    /// Lease owner name: unique per process.
    owner: String,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        channels: Arc<Channels>,
        config: DispatchConfig,
        metrics: SharedMetrics,
        wake: Arc<Notify>,
    ) -> Self {
        let owner = format!("{}-{}", hostname(), &store::new_id()[24..]);
        Dispatcher {
            store,
            channels,
            config,
            metrics,
            owner,
            wake,
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
                Ok(n) if n >= self.config.batch as usize => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.config.interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_millis(500 * 2u64.pow(failures.min(6))).min(Duration::from_secs(30));
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
        match self.store.release_leases(&self.owner, store::now_ms()).await {
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
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let rows = self
            .store
            .claim_due(&self.owner, store::now_ms(), lease_ms, self.config.batch, &kinds)
            .await?;
        let n = rows.len();
        futures::stream::iter(rows)
            .for_each_concurrent(self.config.concurrency, |row| self.process(row))
            .await;
        Ok(n)
    }

    async fn process(&self, row: DeliveryRow) {
        let gauge = self.metrics.in_flight.with_label_values(&["dispatch"]);
        gauge.inc();
        let (channel_name, finish) = self.attempt(&row).await;
        gauge.dec();
        let now = store::now_ms();
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
        let notification = match message::parse_notification(row.payload.as_bytes()) {
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
        let finish = match outcome {
            SendOutcome::Delivered { dry_run } => Finish::Delivered { dry_run },
            SendOutcome::Permanent { error } => Finish::Dead { error },
            SendOutcome::Retry { error, .. } if row.attempts >= self.config.max_attempts => Finish::Dead {
                error: format!("gave up after {} attempts: {error}", row.attempts),
            },
            SendOutcome::Retry { error, after } => {
                let delay = match after {
                    Some(after) => after.min(self.config.retry_cap),
                    None => backoff(
                        row.attempts,
                        self.config.retry_base,
                        self.config.retry_cap,
                        &mut rand::rng(),
                    ),
                };
                let at = store::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                Finish::Retry { error, at }
            }
        };
        (channel.name(), finish)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let mut rng = rand::rng();
        let base = Duration::from_secs(10);
        let cap = Duration::from_secs(300);
        for _ in 0..100 {
            let d1 = backoff(1, base, cap, &mut rng);
            assert!(d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(10), "{d1:?}");
            let d3 = backoff(3, base, cap, &mut rng);
            assert!(d3 >= Duration::from_secs(20) && d3 <= Duration::from_secs(40), "{d3:?}");
            let d20 = backoff(20, base, cap, &mut rng);
            assert!(d20 >= Duration::from_secs(150) && d20 <= cap, "{d20:?}");
        }
    }
}
