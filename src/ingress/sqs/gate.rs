//! The consumer's view of the database during an outage: once a batch fails to commit, the
//! database is "down" until a probe (`SELECT 1`, with back-off) answers. While it is down no
//! poller receives — every receive would count against the queue's `maxReceiveCount` and, in a
//! long outage, move messages to a DLQ allim never reads — and batches already received are
//! held (their visibility extended) and committed as soon as the database is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ConsumerHealth;
use crate::clock::backoff;
use crate::store::Store;
use crate::telemetry::SharedMetrics;

pub(super) struct DbGate {
    store: Store,
    up: watch::Sender<bool>,
    probing: AtomicBool,
    health: Arc<ConsumerHealth>,
    metrics: SharedMetrics,
}

impl DbGate {
    pub(super) fn new(store: Store, health: Arc<ConsumerHealth>, metrics: SharedMetrics) -> Arc<Self> {
        Arc::new(DbGate {
            store,
            up: watch::channel(true).0,
            probing: AtomicBool::new(false),
            health,
            metrics,
        })
    }

    pub(super) fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// A batch could not be committed: the database is down until a probe answers.
    pub(super) fn down(self: &Arc<Self>, shutdown: &CancellationToken) {
        if self.up.send_replace(false) {
            tracing::error!("sqs: the database is unavailable; not receiving, holding what was received, probing");
            self.health.db_unavailable.store(true, Ordering::Relaxed);
            self.metrics.consumer_backoff.set(1);
        }
        if !self.probing.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().probe(shutdown.clone()));
        }
    }

    /// Waits until the database is up; false if the consumer is stopping first.
    pub(super) async fn wait_up(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.up.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            r = rx.wait_for(|up| *up) => r.is_ok(),
        }
    }

    /// Pings with back-off (250 ms doubling to 5 s) until the database answers.
    async fn probe(self: Arc<Self>, shutdown: CancellationToken) {
        let mut n = 0u32;
        loop {
            n = n.saturating_add(1);
            let wait = backoff(n, Duration::from_millis(250), Duration::from_secs(5), 1.0);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.store.ping().await.is_ok() {
                tracing::info!(probes = n, "sqs: the database answers again; resuming");
                // Stop probing before saying "up": a batch that fails right after starts a new
                // probe instead of finding this one about to end.
                self.probing.store(false, Ordering::SeqCst);
                self.health.db_unavailable.store(false, Ordering::Relaxed);
                self.metrics.consumer_backoff.set(0);
                self.up.send_replace(true);
                return;
            }
        }
        self.probing.store(false, Ordering::SeqCst);
    }
}
