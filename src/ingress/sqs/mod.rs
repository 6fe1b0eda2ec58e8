//! SQS ingress: allim's main door in production.
//!
//! Up to `ALLIM_SQS_POLLERS` pollers long-poll the queue (up to 10 messages, `WaitTimeSeconds`
//! 20): one while receives come back empty, more while they come back full ([`Scale`]).
//! Each received batch is handed to a processing task, so polling goes on while earlier
//! batches are committed; `ALLIM_SQS_MAX_IN_FLIGHT` bounds the messages in progress.
//!
//! A batch is accepted in one transaction, and only then deleted with DeleteMessageBatch:
//! no message is deleted before its delivery row is committed. A message without an
//! `idempotencyKey` gets `sqs:<MessageId>` (or `sns:<MessageId>` inside an SNS envelope), so a
//! message that comes back — because a delete failed or allim stopped between commit and
//! delete — is recognised and not stored twice. A body that is not a notification is stored
//! as `rejected` with the reason, then deleted.
//!
//! While the database is unavailable nothing is deleted and nothing is received ([`gate`]):
//! batches already received are held — their visibility extended every 10 s — and committed as
//! soon as a probe finds the database back, so an outage adds no receive to any message's
//! `ApproximateReceiveCount` and cannot push messages to the queue's DLQ. `/readyz` says so
//! meanwhile.

mod gate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::classify::{Classified, classify_message_parsed, rejected_message, unwrap_sns};
use super::sns::SnsVerifier;
use crate::accept::{Acceptor, Entry, Source};
use crate::alarms::AlarmRouter;
use crate::clock::backoff;
use crate::settings::parse_duration;
use crate::telemetry::SharedMetrics;
use gate::DbGate;

/// The SQS consumer's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SqsArgs {
    /// SQS queue to consume (enables the SQS ingress). Endpoint, region and credentials come
    /// from the standard AWS chain (`AWS_ENDPOINT_URL_SQS` for a local stand-in).
    #[arg(long, env = "ALLIM_SQS_QUEUE_URL", global = true)]
    pub sqs_queue_url: Option<String>,

    /// Concurrent long-polling receivers.
    #[arg(long, env = "ALLIM_SQS_POLLERS", default_value_t = 2, global = true)]
    pub sqs_pollers: usize,

    /// Long-poll wait per receive (0s to 20s).
    #[arg(long, env = "ALLIM_SQS_WAIT_TIME", default_value = "20s", value_parser = parse_duration, global = true)]
    pub sqs_wait_time: Duration,

    /// Messages being accepted at once, across pollers.
    #[arg(long, env = "ALLIM_SQS_MAX_IN_FLIGHT", default_value_t = 200, global = true)]
    pub sqs_max_in_flight: usize,

    /// Visibility timeout to ask for on receive (default: the queue's own).
    #[arg(long, env = "ALLIM_SQS_VISIBILITY_TIMEOUT", value_parser = parse_duration, global = true)]
    pub sqs_visibility_timeout: Option<Duration>,
}

impl SqsArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.sqs_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("ALLIM_SQS_QUEUE_URL must be a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)");
        }
        if !(1..=64).contains(&self.sqs_pollers) {
            anyhow::bail!("ALLIM_SQS_POLLERS must be between 1 and 64");
        }
        if self.sqs_wait_time > Duration::from_secs(20) {
            anyhow::bail!("ALLIM_SQS_WAIT_TIME must be at most 20s (SQS's limit)");
        }
        if !(10..=100_000).contains(&self.sqs_max_in_flight) {
            anyhow::bail!("ALLIM_SQS_MAX_IN_FLIGHT must be between 10 and 100000");
        }
        if let Some(v) = self.sqs_visibility_timeout
            && v > Duration::from_secs(43_200)
        {
            anyhow::bail!("ALLIM_SQS_VISIBILITY_TIMEOUT must be at most 12h (SQS's limit)");
        }
        Ok(())
    }
}

/// Shared state the health check reads.
#[derive(Debug, Default)]
pub struct ConsumerHealth {
    /// True while the consumer backs off because the database is unavailable.
    pub db_unavailable: AtomicBool,
}

pub struct SqsConsumer {
    client: Client,
    config: SqsArgs,
    acceptor: Acceptor,
    alarms: AlarmRouter,
    /// SNS envelopes on the queue are verified as the webhook verifies them; `None` (no topic
    /// allowed): they are rejected.
    sns: Option<Arc<SnsVerifier>>,
    metrics: SharedMetrics,
    gate: Arc<DbGate>,
}

/// How long a held batch is kept invisible, renewed every [`HOLD_EVERY`].
const HOLD_FOR: Duration = Duration::from_secs(30);
const HOLD_EVERY: Duration = Duration::from_secs(10);
/// A batch that keeps failing while the database answers probes is let go after this many
/// tries (SQS redelivers it, and its redrive policy applies): it is not an outage.
const TRIES_WITH_DATABASE_UP: u32 = 5;

/// After an empty receive, while one poller is left, it waits this long before the next: a
/// 20 s long poll plus this gap is ≤ 2.96 receives a minute, 129,500 in an average month
/// (30.44 days), where back-to-back polls would make ~131,500. A message arriving meanwhile
/// waits at most this long.
const IDLE_GAP: Duration = Duration::from_millis(300);

/// How many pollers traffic calls for: one while receives come back empty, one more for each
/// full batch (10 messages) up to `ALLIM_SQS_POLLERS`, one less for each empty receive. A
/// partly full batch changes nothing. Idle, one task long-polls alone.
pub struct Scale {
    max: usize,
    active: std::sync::atomic::AtomicUsize,
    more: tokio::sync::Notify,
}

impl Scale {
    pub fn new(max: usize) -> Scale {
        Scale {
            max: max.max(1),
            active: std::sync::atomic::AtomicUsize::new(1),
            more: tokio::sync::Notify::new(),
        }
    }

    /// Pollers wanted now.
    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a receive of `messages`; returns the pollers wanted now.
    pub fn after_receive(&self, messages: usize) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        let step = |n: usize| match messages {
            0 => Some(n.saturating_sub(1).max(1)),
            10.. => Some((n + 1).min(self.max)),
            _ => None,
        };
        let before = self.active.fetch_update(Relaxed, Relaxed, step).unwrap_or_else(|n| n);
        let now = step(before).unwrap_or(before);
        if now > before {
            self.more.notify_waiters();
        }
        now
    }

    /// Waits until poller `index` is wanted; false on shutdown.
    async fn wait_turn(&self, index: usize, shutdown: &CancellationToken) -> bool {
        loop {
            let notified = self.more.notified();
            if index < self.active() {
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = notified => {}
            }
        }
    }
}

/// Builds the production client from the standard AWS chain (region, credentials, and
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SQS` for a local stand-in).
pub async fn client_from_env() -> Client {
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&conf)
}

impl SqsConsumer {
    pub fn new(
        client: Client,
        config: SqsArgs,
        acceptor: Acceptor,
        alarms: AlarmRouter,
        sns: Option<Arc<SnsVerifier>>,
        metrics: SharedMetrics,
        health: Arc<ConsumerHealth>,
    ) -> Self {
        // Every SQS call has a deadline: a long poll may take the wait time, anything else a few
        // seconds; a stuck connection fails and is retried instead of hanging a poller.
        let attempt = config.sqs_wait_time + Duration::from_secs(10);
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 3)
            .build();
        // Stalled-stream protection off: it watches every request and response body's
        // throughput with a timer of its own (~5 % of the drain's CPU in perf, bench/README.md),
        // and the attempt deadline above already ends a stuck call.
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .timeout_config(timeouts)
                .stalled_stream_protection(aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled())
                .build(),
        );
        let gate = DbGate::new(acceptor.store().clone(), health, metrics.clone());
        SqsConsumer {
            client,
            config,
            acceptor,
            alarms,
            sns,
            metrics,
            gate,
        }
    }

    /// Runs the pollers until `shutdown`, then waits for batches in progress to be committed
    /// and deleted. The caller bounds the wait by the shutdown grace.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.sqs_max_in_flight.max(10)));
        let tracker = TaskTracker::new();
        let scale = Arc::new(Scale::new(self.config.sqs_pollers.max(1)));
        let mut pollers = tokio::task::JoinSet::new();
        for index in 0..self.config.sqs_pollers.max(1) {
            pollers.spawn(self.clone().poll_loop(
                index,
                scale.clone(),
                permits.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        while pollers.join_next().await.is_some() {}
        tracker.close();
        tracker.wait().await;
        tracing::info!("sqs consumer stopped");
    }

    async fn poll_loop(
        self: Arc<Self>,
        index: usize,
        scale: Arc<Scale>,
        permits: Arc<Semaphore>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) {
        let mut receive_failures = 0u32;
        loop {
            // Pollers beyond the ones traffic calls for wait until full batches call them.
            if !scale.wait_turn(index, &shutdown).await {
                return;
            }
            // While the database is down, receive nothing (every receive counts against the
            // queue's maxReceiveCount); the gate's probe says when it is back.
            if !self.gate.is_up() && !self.gate.wait_up(&shutdown).await {
                return;
            }
            let batch_permits = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = permits.clone().acquire_many_owned(10) => p.expect("semaphore is never closed"),
            };
            let mut request = self
                .client
                .receive_message()
                .queue_url(self.queue_url())
                .max_number_of_messages(10)
                .wait_time_seconds(i32::try_from(self.config.sqs_wait_time.as_secs()).unwrap_or(20))
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId);
            if let Some(v) = self.config.sqs_visibility_timeout {
                request = request.visibility_timeout(i32::try_from(v.as_secs()).unwrap_or(30));
            }
            // On shutdown the long poll is abandoned; anything it had received stays invisible
            // for the visibility timeout and then comes back (never lost).
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = request.send() => r,
            };
            let messages = match received {
                Ok(out) => {
                    receive_failures = 0;
                    out.messages.unwrap_or_default()
                }
                Err(e) => {
                    receive_failures = receive_failures.saturating_add(1);
                    self.metrics.poll_errors.inc();
                    let wait = backoff(
                        receive_failures,
                        Duration::from_millis(500),
                        Duration::from_secs(30),
                        1.0,
                    );
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), retry_in = ?wait, "sqs: receive failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            self.metrics.sqs_pollers.set(scale.after_receive(messages.len()) as i64);
            if messages.is_empty() {
                // The last poller left: a short gap after each empty long poll keeps an idle
                // task under 130,000 receives a month (see [`IDLE_GAP`]).
                if scale.active() == 1 {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(IDLE_GAP) => {}
                    }
                }
                continue;
            }
            let this = self.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                this.process_batch(messages, &shutdown).await;
                drop(batch_permits);
            });
        }
    }

    /// Accepts one received batch, then deletes what was committed. While the database is
    /// down the batch is held (visibility extended) and committed when it is back; on shutdown
    /// meanwhile it is left to come back by itself.
    async fn process_batch(&self, messages: Vec<Message>, shutdown: &CancellationToken) {
        let gauge = self.metrics.in_flight.with_label_values(&["sqs"]);
        let received = messages.len() as i64;
        gauge.add(received);
        self.metrics
            .received
            .with_label_values(&["sqs"])
            .inc_by(messages.len() as u64);
        let mut entries = Vec::with_capacity(messages.len());
        let mut alarms = Vec::new();
        let mut messages = messages;
        let mut later = Vec::new();
        let mut handled = Vec::with_capacity(messages.len());
        for m in messages.drain(..) {
            match self.classify(&m).await {
                Some(Classified::Entry(e)) => entries.push(e),
                Some(Classified::Alarm { key, alarm }) => alarms.push((key, alarm)),
                None => {
                    later.push(m);
                    continue;
                }
            }
            handled.push(m);
        }
        let messages = handled;
        if !later.is_empty() {
            tracing::warn!(
                messages = later.len(),
                "sqs: SNS signing certificate unavailable; leaving the envelopes for a later receive"
            );
        }
        let rejected: Vec<bool> = entries.iter().map(|e| matches!(e, Entry::Rejected { .. })).collect();
        let mut tries_with_database_up = 0;
        loop {
            match self.store_batch(&entries, &alarms).await {
                Ok(outcomes) => {
                    for (outcome, rejected) in outcomes.iter().zip(&rejected) {
                        self.metrics.count_outcome("sqs", outcome.duplicate, *rejected);
                    }
                    self.delete(&messages).await;
                    break;
                }
                Err(e) => {
                    if self.gate.is_up() {
                        tries_with_database_up += 1;
                    }
                    if tries_with_database_up > TRIES_WITH_DATABASE_UP {
                        tracing::error!(error = %e, messages = messages.len(),
                            "sqs: the batch keeps failing while the database answers; letting SQS redeliver it");
                        break;
                    }
                    tracing::warn!(error = %e, messages = messages.len(), "sqs: could not store the batch; holding it until the database is back");
                    self.gate.down(shutdown);
                    if !self.hold(&messages, shutdown).await {
                        tracing::info!(
                            messages = messages.len(),
                            "sqs: stopping with a batch held; it comes back after its visibility timeout"
                        );
                        break;
                    }
                }
            }
        }
        gauge.sub(received);
    }

    /// What a message is; an SNS envelope only once its signature and topic verify (a forged
    /// alarm on the queue would otherwise be routed). `None`: the signing certificate could
    /// not be fetched now; the message is left on the queue to come back.
    async fn classify(&self, m: &Message) -> Option<Classified> {
        let body = m.body().unwrap_or_default();
        let parsed = serde_json::from_str::<serde_json::Value>(body);
        let is_envelope = parsed.as_ref().is_ok_and(|v| unwrap_sns(v).is_some());
        if is_envelope {
            let Some(verifier) = &self.sns else {
                return Some(rejected_message(
                    m,
                    "an SNS envelope, but ALLIM_SNS_TOPIC_ARNS allows no topic: not verified, not routed".into(),
                ));
            };
            if let Err(refused) = verifier.verify(&axum::http::HeaderMap::new(), body.as_bytes()).await {
                if refused.status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
                    return None;
                }
                self.metrics.sns_rejected.with_label_values(&[refused.reason]).inc();
                return Some(rejected_message(
                    m,
                    format!("SNS envelope refused: {}", refused.message),
                ));
            }
        }
        Some(classify_message_parsed(&self.acceptor, m, parsed).await)
    }

    /// Alarms, then notifications, in one go. Alarms are idempotent on their key: if the batch
    /// fails after some were handled, handling them again does nothing new.
    async fn store_batch(
        &self,
        entries: &[Entry],
        alarms: &[(String, crate::alarms::Alarm)],
    ) -> Result<Vec<crate::accept::Outcome>, crate::accept::AcceptError> {
        for (key, alarm) in alarms {
            self.alarms.handle(key, alarm).await?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.acceptor.accept(Source::Sqs, entries.to_vec()).await
    }

    /// Keeps the batch invisible until the database is back (true) or the consumer stops (false).
    async fn hold(&self, messages: &[Message], shutdown: &CancellationToken) -> bool {
        loop {
            self.set_visibility(messages, HOLD_FOR).await;
            tokio::select! {
                up = self.gate.wait_up(shutdown) => return up,
                _ = tokio::time::sleep(HOLD_EVERY) => {}
            }
        }
    }

    fn queue_url(&self) -> &str {
        self.config.sqs_queue_url.as_deref().unwrap_or_default()
    }

    async fn delete(&self, messages: &[Message]) {
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = handles(chunk)
                .filter_map(|(id, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .delete_message_batch()
                .queue_url(self.queue_url())
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => {
                    self.metrics.delete_errors.inc_by(out.failed().len() as u64);
                    for f in out.failed() {
                        tracing::warn!(
                            entry = f.id(),
                            code = f.code(),
                            "sqs: delete failed; the message will come back and be recognised as a duplicate"
                        );
                    }
                }
                Err(e) => {
                    self.metrics.delete_errors.inc_by(chunk.len() as u64);
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                        "sqs: delete failed; the messages will come back and be recognised as duplicates");
                }
            }
        }
    }

    /// Sets the batch's visibility timeout (from now).
    async fn set_visibility(&self, messages: &[Message], wait: Duration) {
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = handles(chunk)
                .filter_map(|(id, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(id)
                        .receipt_handle(handle)
                        .visibility_timeout(i32::try_from(wait.as_secs()).unwrap_or(30))
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .client
                .change_message_visibility_batch()
                .queue_url(self.queue_url())
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::debug!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "sqs: could not change visibility; the queue's timeout applies");
            }
        }
    }
}

/// (`m<i>`, receipt handle) for each message of a chunk: the entries of the batch calls.
fn handles(chunk: &[Message]) -> impl Iterator<Item = (String, &str)> {
    chunk
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((format!("m{i}"), m.receipt_handle()?)))
}

#[cfg(test)]
mod tests {
    use super::Scale;

    #[test]
    fn pollers_follow_traffic() {
        let s = Scale::new(4);
        assert_eq!(s.active(), 1, "one poller to start with");
        assert_eq!(s.after_receive(0), 1, "never fewer than one");
        assert_eq!(s.after_receive(10), 2, "a full batch calls one more");
        assert_eq!(s.after_receive(10), 3);
        assert_eq!(s.after_receive(4), 3, "a partly full batch changes nothing");
        assert_eq!(s.after_receive(10), 4);
        assert_eq!(s.after_receive(10), 4, "at most ALLIM_SQS_POLLERS");
        for left in [3, 2, 1, 1] {
            assert_eq!(s.after_receive(0), left, "each empty receive sends one away");
        }
        let one = Scale::new(1);
        assert_eq!(one.after_receive(10), 1);
    }
}
