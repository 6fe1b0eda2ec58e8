//! One channel's lane: claim that channel's due rows, send them at its own rate and
//! concurrency, record each outcome.
//!
//! What keeps a delivery from being sent by two tasks:
//! - one task at a time holds the lane (`Store::hold_lane`, renewed every third of a lease);
//! - a lane claims at most what it can send within half a row lease at the channel's rate;
//! - the leases of rows in flight are renewed every third of a lease;
//! - the channel checks the row's lease right before each provider call (`Job::still_ours`).
//!
//! Rows are sent as they are claimed (a pipeline, not batch by batch): a slow row holds one
//! slot of its own lane and nothing else.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{DispatchArgs, decide, pause_after};
use crate::accept::parse_notification;
use crate::channels::{Channel, Job, LeaseProbe, NotificationType, SendOutcome};
use crate::clock::{Clock, backoff, duration_ms};
use crate::store::{DeliveryRow, Finish, Store, StoreError};
use crate::telemetry::SharedMetrics;

pub(super) struct Lane {
    kind: NotificationType,
    channel: Arc<dyn Channel>,
    store: Store,
    config: DispatchArgs,
    metrics: SharedMetrics,
    owner: String,
    clock: Clock,
    /// The most rows claimed (in flight) at once: what the lane can send within half a lease
    /// at its rate, at most the batch size and the concurrency.
    limit: u32,
    /// No claims before this time (ms): the provider refused allim's credentials.
    paused_until: AtomicI64,
    /// Credential refusals in a row (the pause doubles with each).
    refusals: AtomicU32,
}

impl Lane {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        kind: NotificationType,
        channel: Arc<dyn Channel>,
        store: Store,
        config: DispatchArgs,
        rate_per_sec: Option<f64>,
        metrics: SharedMetrics,
        owner: String,
        clock: Clock,
    ) -> Self {
        if let Some(rate) = rate_per_sec {
            metrics.lane_rate.with_label_values(&[channel.name()]).set(rate);
        }
        let concurrency = u32::try_from(config.dispatch_concurrency).unwrap_or(u32::MAX);
        let limit = claim_limit(&config, rate_per_sec).min(concurrency.max(1));
        Lane {
            kind,
            channel,
            store,
            config,
            metrics,
            owner,
            clock,
            limit,
            paused_until: AtomicI64::new(0),
            refusals: AtomicU32::new(0),
        }
    }

    fn lease_ms(&self) -> i64 {
        duration_ms(self.config.dispatch_lease)
    }

    pub(super) fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Claims up to `room` due rows of this lane's type.
    async fn claim(&self, room: u32) -> Result<Vec<DeliveryRow>, StoreError> {
        let now = self.clock.now_ms();
        if now < self.paused_until.load(Ordering::SeqCst) || room == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .store
            .claim_due(&self.owner, now, self.lease_ms(), room, self.kind.as_str())
            .await?;
        let found = if rows.is_empty() { "none" } else { "rows" };
        self.metrics
            .claims
            .with_label_values(&[self.channel.name(), found])
            .inc();
        Ok(rows)
    }

    /// One round: take the lane, claim up to the limit, send everything claimed, record the
    /// outcomes. How many rows were claimed. (The running lane pipelines instead; tests step.)
    pub(super) async fn step(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        if !self
            .store
            .hold_lane(self.name(), &self.owner, now, now + self.lease_ms())
            .await?
        {
            return Ok(0);
        }
        let rows = self.claim(self.limit).await?;
        let n = rows.len();
        futures::stream::iter(rows)
            .for_each_concurrent(self.config.dispatch_concurrency, |row| self.process(row))
            .await;
        self.check_results().await;
        Ok(n)
    }

    /// Looks up the provider's final results that are due (see [`Channel::check_results`]) and
    /// counts them.
    pub(super) async fn check_results(&self) {
        match self.channel.check_results().await {
            Ok(finals) => {
                for result in finals {
                    self.metrics
                        .recipient_results
                        .with_label_values(&[self.channel.name(), result])
                        .inc();
                }
            }
            Err(e) => {
                tracing::warn!(channel = self.name(), error = %e, "looking up final results failed; will try again")
            }
        }
    }

    /// Runs until `shutdown`: holds the lane, claims as slots free up, renews leases, and lets
    /// the rows in flight finish before it gives the lane back.
    pub(super) async fn run(self: Arc<Self>, mut wake: watch::Receiver<u64>, shutdown: CancellationToken) {
        let renew_every = Duration::from_millis(u64::try_from(self.lease_ms() / 3).unwrap_or(1000).max(10));
        let mut in_flight: JoinSet<String> = JoinSet::new();
        let mut ids: HashSet<String> = HashSet::new();
        let mut holds = false;
        let mut next_renewal = Instant::now();
        let mut failures = 0u32;
        // One result look-up round at a time, beside the sends, every interval.
        let mut results: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_results = Instant::now();
        // When to claim. A lane claims when slots are free and it has reason to look: at start,
        // when woken, when its interval has passed since the last claim, and when the last claim
        // filled its room (more may be due). Not merely because a row in flight finished after
        // a claim that took everything due: that claim would find nothing, and it was one empty
        // claiming transaction per delivery (bench/README.md, 2026-12-07).
        let mut look = true;
        let mut next_look = Instant::now();
        // When to renew next: a third of a lease on, or at the interval when
        // - leases of rows in flight could not be renewed (the database unreachable): when the
        //   database is back they are renewed before another task may take those rows over
        //   (`Store::claim_due` waits a third of a lease past a lease's end);
        // - the lane is not held here: a task that stops gives its lanes back at once, and this
        //   one then takes them within an interval, not up to a third of a lease (20 s at the
        //   default) later. Every deploy has the new tasks waiting so for the old ones' lanes.
        let renew_after = |soon: bool| {
            Instant::now()
                + if soon {
                    renew_every.min(self.config.dispatch_interval)
                } else {
                    renew_every
                }
        };
        while !shutdown.is_cancelled() {
            if holds && Instant::now() >= next_results {
                // One result look-up round at a time: a round still running skips this one.
                if results.as_ref().is_none_or(|r| r.is_finished()) {
                    let lane = self.clone();
                    results = Some(tokio::spawn(async move { lane.check_results().await }));
                }
                next_results = Instant::now() + self.config.dispatch_interval;
            }
            if Instant::now() >= next_renewal {
                let renewed;
                (holds, renewed) = self.renew(&ids, holds).await;
                next_renewal = renew_after(!renewed || !holds);
            }
            if Instant::now() >= next_look {
                look = true;
            }
            let room = self
                .limit
                .saturating_sub(u32::try_from(in_flight.len()).unwrap_or(u32::MAX));
            // Under load a claim waits for a quarter of the slots to be free: claiming each
            // freed slot alone cost a claiming transaction per row, and at 1,000/s those
            // saturated SQLite's one connection (bench/README.md). With nothing in flight, or
            // under light load, a due row is claimed at once.
            if look && holds && room > 0 && (in_flight.is_empty() || room >= refill(self.limit)) {
                match self.claim(room).await {
                    Ok(rows) => {
                        failures = 0;
                        // A full claim: more may be due, so claim again as soon as slots free up.
                        look = rows.len() == room as usize;
                        next_look = Instant::now() + self.config.dispatch_interval;
                        for row in rows {
                            if !ids.insert(row.id.clone()) {
                                // Its lease lapsed while its send was under way here (the
                                // database was unreachable past the takeover margin): this
                                // claim leased it to us again, and the send under way goes on.
                                // A second task would send it twice.
                                tracing::warn!(delivery = %row.id, channel = self.name(),
                                    "claimed a row this lane is still sending; not sent again");
                                continue;
                            }
                            let lane = self.clone();
                            in_flight.spawn(async move {
                                let id = row.id.clone();
                                lane.process(row).await;
                                id
                            });
                        }
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures, Duration::from_secs(1), Duration::from_secs(30), 1.0);
                        look = false;
                        next_look = Instant::now() + wait;
                        tracing::warn!(channel = self.name(), error = %e, retry_in = ?wait, "lane: claiming failed");
                    }
                }
            }
            // Sleep until the next thing with a time: the renewal, the result look-ups, and the
            // next look (unless the lane already means to look and waits for slots or the lane).
            let mut until = next_renewal;
            if holds {
                until = until.min(next_results);
            }
            if !look {
                until = until.min(next_look);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(id) = done {
                        ids.remove(&id);
                    }
                }
                changed = wake.changed() => {
                    look = true;
                    if changed.is_err() {
                        // The application is going away; the shutdown token follows.
                        tokio::time::sleep(self.config.dispatch_interval.min(renew_every)).await;
                    }
                }
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
        // Let the rows in flight finish (the application bounds this by its grace), renewing
        // their leases meanwhile: on the same deadline, so rows finishing often do not put the
        // renewal off.
        while !in_flight.is_empty() {
            tokio::select! {
                done = in_flight.join_next() => {
                    if let Some(Ok(id)) = done {
                        ids.remove(&id);
                    }
                }
                _ = tokio::time::sleep_until(next_renewal.into()) => {
                    let renewed;
                    (holds, renewed) = self.renew(&ids, holds).await;
                    next_renewal = renew_after(!renewed);
                }
            }
        }
        if let Some(r) = results {
            let _ = r.await;
        }
        self.release(self.clock.now_ms()).await;
    }

    /// Renews the leases of rows in flight and the lane's lease: whether the lane is held, and
    /// whether the rows in flight were renewed. A lane whose rows cannot be renewed does not
    /// claim (nor try the lane: the database is most likely unreachable).
    async fn renew(&self, in_flight: &HashSet<String>, held: bool) -> (bool, bool) {
        let now = self.clock.now_ms();
        let until = now + self.lease_ms();
        if !in_flight.is_empty() {
            let ids: Vec<String> = in_flight.iter().cloned().collect();
            if let Err(e) = self.store.renew_leases(&self.owner, &ids, until).await {
                tracing::warn!(channel = self.name(), error = %e, rows = ids.len(),
                    "lane: could not renew leases; trying again at the interval, and each row is checked again before its provider call");
                self.show_held(false);
                return (false, false);
            }
        }
        let holds = match self.store.hold_lane(self.name(), &self.owner, now, until).await {
            Ok(holds) => {
                if holds != held {
                    tracing::info!(
                        channel = self.name(),
                        holds,
                        "lane: {}",
                        if holds { "taken" } else { "held by another task" }
                    );
                }
                holds
            }
            Err(e) => {
                tracing::warn!(channel = self.name(), error = %e, "lane: could not renew the lane; not claiming");
                false
            }
        };
        self.show_held(holds);
        (holds, true)
    }

    /// `allim_lane_held`: 1 while this task holds the lane and claims, else 0.
    fn show_held(&self, holds: bool) {
        self.metrics
            .lane_held
            .with_label_values(&[self.channel.name()])
            .set(i64::from(holds));
    }

    /// Gives the lane back.
    pub(super) async fn release(&self, now: i64) {
        if let Err(e) = self.store.release_lane(self.name(), &self.owner, now).await {
            tracing::warn!(channel = self.name(), error = %e, "lane: could not give the lane back; it expires by itself");
        }
        self.show_held(false);
    }

    /// Sends one claimed row and records the outcome.
    async fn process(&self, row: DeliveryRow) {
        let gauge = self.metrics.in_flight.with_label_values(&["dispatch"]);
        gauge.inc();
        let outcome = self.attempt(&row).await;
        gauge.dec();
        let now = self.clock.now_ms();
        let channel = self.channel.name();
        match &outcome {
            SendOutcome::Credentials { error } => {
                let n = self.refusals.fetch_add(1, Ordering::SeqCst) + 1;
                let until = now + duration_ms(pause_after(n));
                self.paused_until.fetch_max(until, Ordering::SeqCst);
                self.metrics.lane_paused.with_label_values(&[channel]).set(1);
                tracing::error!(channel, %error, refusals = n, paused_for = ?pause_after(n),
                    "the provider refused allim's credentials: lane paused; deliveries wait without using attempts");
            }
            SendOutcome::Delivered { .. } if self.refusals.swap(0, Ordering::SeqCst) > 0 => {
                self.metrics.lane_paused.with_label_values(&[channel]).set(0);
                tracing::info!(channel, "credentials accepted again: lane resumed");
            }
            SendOutcome::Retry { after: Some(_), .. } => {
                self.metrics.lane_throttled.with_label_values(&[channel]).set(1);
            }
            SendOutcome::LeaseLost => {
                self.metrics.leases_lost.with_label_values(&[channel]).inc();
                tracing::warn!(delivery = %row.id, channel, "lease lost before the provider call; another task owns the row, not sent");
            }
            _ => {}
        }
        if matches!(outcome, SendOutcome::Delivered { .. }) {
            self.metrics.lane_throttled.with_label_values(&[channel]).set(0);
        }
        let paused_until = self.paused_until.load(Ordering::SeqCst);
        let Some(finish) = decide(&self.config, row.attempts, outcome, now, fastrand::f64(), paused_until) else {
            return;
        };
        self.count(&row, channel, &finish, now);
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

    fn count(&self, row: &DeliveryRow, channel: &'static str, finish: &Finish, now: i64) {
        let outcome = match finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => {
                self.metrics.retries.with_label_values(&[channel]).inc();
                "retry"
            }
            Finish::Requeue { .. } => "paused",
            Finish::Dead { .. } => {
                self.metrics.dead_letters.with_label_values(&[channel]).inc();
                "dead"
            }
        };
        self.metrics.deliveries.with_label_values(&[channel, outcome]).inc();
        match finish {
            Finish::Delivered { .. } => {
                tracing::info!(delivery = %row.id, channel, attempt = row.attempts, "delivered")
            }
            Finish::Retry { error, at } | Finish::Requeue { error, at } => {
                tracing::warn!(delivery = %row.id, channel, attempt = row.attempts, %error, retry_in_ms = at - now, "delivery failed; will retry")
            }
            Finish::Dead { error } => {
                tracing::warn!(delivery = %row.id, channel, attempt = row.attempts, %error, "delivery dead")
            }
        }
    }

    /// One attempt: parse the stored payload, call the channel.
    async fn attempt(&self, row: &DeliveryRow) -> SendOutcome {
        let notification = match parse_notification(row.payload.as_bytes()) {
            Ok(v) => v.notification,
            Err(e) => {
                return SendOutcome::Permanent {
                    error: format!("stored payload is no longer valid: {e}"),
                };
            }
        };
        let job = Job {
            delivery_id: row.id.clone(),
            attempt: row.attempts,
            notification,
            lease: Some(LeaseProbe {
                store: self.store.clone(),
                owner: self.owner.clone(),
                clock: self.clock.clone(),
            }),
        };
        let started = Instant::now();
        let outcome = self.channel.send(&job).await;
        self.metrics
            .dispatch_latency
            .with_label_values(&[self.channel.name()])
            .observe(started.elapsed().as_secs_f64());
        outcome
    }
}

/// Free slots a busy lane waits for before it claims again: a quarter of its limit.
pub(super) fn refill(limit: u32) -> u32 {
    (limit / 4).max(1)
}

/// Rows a lane claims at once: what it can send within half a lease at the channel's rate
/// (the lease is renewed while they are in flight, but a lane never takes on more than it can
/// finish in time), at most the batch size; all of the batch for a channel with no provider.
pub(super) fn claim_limit(config: &DispatchArgs, rate_per_sec: Option<f64>) -> u32 {
    let batch = config.dispatch_batch.max(1);
    match rate_per_sec {
        None => batch,
        Some(rate) => {
            let fits = (rate * config.dispatch_lease.as_secs_f64() / 2.0).floor();
            if fits >= f64::from(batch) {
                batch
            } else {
                (fits as u32).max(1)
            }
        }
    }
}
