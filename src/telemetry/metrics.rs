//! Prometheus metrics (served at `/metrics` by the api). One registry per application (not a
//! global), so tests that run several applications in one process see their own counts.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric allim exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages received, by ingress (`http`, `sqs`, `sns`).
    pub received: IntCounterVec,
    /// Messages stored as new deliveries, by ingress.
    pub accepted: IntCounterVec,
    /// Messages stored as `rejected` (not a valid notification), by ingress.
    pub rejected: IntCounterVec,
    /// Messages whose idempotency key was already known, by ingress.
    pub duplicates: IntCounterVec,
    /// Delivery attempts by channel and outcome (`delivered`, `retry`, `dead`).
    pub deliveries: IntCounterVec,
    /// Retries scheduled, by channel.
    pub retries: IntCounterVec,
    /// Deliveries that went dead, by channel.
    pub dead_letters: IntCounterVec,
    /// Time a channel took to answer, by channel.
    pub dispatch_latency: HistogramVec,
    /// Failed SQS receives.
    pub poll_errors: IntCounter,
    /// Failed SQS deletes (the message comes back and is de-duplicated).
    pub delete_errors: IntCounter,
    /// SQS pollers traffic calls for now (1 at idle, up to `ALLIM_SQS_POLLERS`).
    pub sqs_pollers: IntGauge,
    /// Work in progress: `sqs` messages being accepted, `dispatch` deliveries being sent.
    pub in_flight: IntGaugeVec,
    /// 1 while the SQS consumer is backing off because the database is unavailable.
    pub consumer_backoff: IntGauge,
    /// Alarm notifications by outcome (`sent`, `suppressed`, `silenced`, …).
    pub alarms: IntCounterVec,
    /// SNS webhook requests refused, by reason.
    pub sns_rejected: IntCounterVec,
    /// 1 while a channel's lane is paused because its provider refused allim's credentials.
    pub lane_paused: IntGaugeVec,
    /// 1 while this task holds a channel's lane (it sends that channel's deliveries), 0 while
    /// another task does or this one cannot reach the database.
    pub lane_held: IntGaugeVec,
    /// Watcher polls by watcher and outcome (`ok`, `error`).
    pub watcher_polls: IntCounterVec,
    /// New items watchers found, by watcher.
    pub watcher_new_items: IntCounterVec,
    /// 1 while a provider's last answer asked allim to wait (a 429 or 503 with Retry-After).
    pub lane_throttled: IntGaugeVec,
    /// Each lane's own rate limit (sends per second; absent when the channel has none).
    pub lane_rate: prometheus::GaugeVec,
    /// Leases found lost right before a provider call (another task owns the row now).
    pub leases_lost: IntCounterVec,
    /// Claiming transactions per lane, `found` = `rows` or `none` (an empty claim).
    pub claims: IntCounterVec,
    /// Recipients' final results from the provider (SENS): `delivered`, `failed`, `failover`
    /// (delivered by the SMS failover), `unknown` (no final answer within 72 h).
    pub recipient_results: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("allim".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let received = counter("messages_received_total", "Messages received, by ingress", &["source"]);
        let accepted = counter(
            "messages_accepted_total",
            "Messages stored as new deliveries",
            &["source"],
        );
        let rejected = counter("messages_rejected_total", "Messages stored as rejected", &["source"]);
        let duplicates = counter(
            "messages_duplicate_total",
            "Messages whose idempotency key was known",
            &["source"],
        );
        let deliveries = counter(
            "deliveries_total",
            "Delivery attempts by channel and outcome",
            &["channel", "outcome"],
        );
        let retries = counter("retries_total", "Retries scheduled, by channel", &["channel"]);
        let dead_letters = counter(
            "dead_letters_total",
            "Deliveries that went dead, by channel",
            &["channel"],
        );
        let dispatch_latency = HistogramVec::new(
            HistogramOpts::new("dispatch_latency_seconds", "Time a channel took to answer").buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["channel"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(dispatch_latency.clone()))
            .expect("unique metric");
        let poll_errors = IntCounter::new("sqs_poll_errors_total", "Failed SQS receives").expect("valid metric");
        registry.register(Box::new(poll_errors.clone())).expect("unique metric");
        let delete_errors = IntCounter::new("sqs_delete_errors_total", "Failed SQS deletes").expect("valid metric");
        registry
            .register(Box::new(delete_errors.clone()))
            .expect("unique metric");
        let sqs_pollers = IntGauge::new("sqs_pollers", "SQS pollers receiving now (1 at idle)").expect("valid metric");
        registry.register(Box::new(sqs_pollers.clone())).expect("unique metric");
        let in_flight =
            IntGaugeVec::new(Opts::new("in_flight", "Work in progress, by kind"), &["kind"]).expect("valid metric");
        registry.register(Box::new(in_flight.clone())).expect("unique metric");
        let consumer_backoff = IntGauge::new(
            "sqs_consumer_backoff",
            "1 while the SQS consumer backs off because the database is unavailable",
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_backoff.clone()))
            .expect("unique metric");
        let alarms = counter("alarms_total", "Alarm notifications by outcome", &["outcome"]);
        let sns_rejected = counter(
            "sns_rejected_total",
            "SNS webhook requests refused, by reason",
            &["reason"],
        );
        let lane_paused = IntGaugeVec::new(
            Opts::new(
                "lane_paused",
                "1 while a channel's lane is paused: its provider refused allim's credentials",
            ),
            &["channel"],
        )
        .expect("valid metric");
        registry.register(Box::new(lane_paused.clone())).expect("unique metric");
        let lane_held = IntGaugeVec::new(
            Opts::new(
                "lane_held",
                "1 while this task holds a channel's lane and sends its deliveries, 0 while another task does",
            ),
            &["channel"],
        )
        .expect("valid metric");
        registry.register(Box::new(lane_held.clone())).expect("unique metric");
        let watcher_polls = counter(
            "watcher_polls_total",
            "Watcher polls by watcher and outcome",
            &["watcher", "outcome"],
        );
        let watcher_new_items = counter("watcher_new_items_total", "New items watchers found", &["watcher"]);
        let lane_throttled = IntGaugeVec::new(
            Opts::new(
                "lane_throttled",
                "1 while a channel's provider last asked allim to wait (429 or 503 with Retry-After)",
            ),
            &["channel"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lane_throttled.clone()))
            .expect("unique metric");
        let lane_rate = prometheus::GaugeVec::new(
            Opts::new("lane_rate_limit_per_second", "Each lane's own send rate limit"),
            &["channel"],
        )
        .expect("valid metric");
        registry.register(Box::new(lane_rate.clone())).expect("unique metric");
        let leases_lost = counter(
            "leases_lost_total",
            "Deliveries not sent because another task took their lease",
            &["channel"],
        );
        let claims = counter(
            "dispatch_claims_total",
            "Claiming transactions a lane ran: found=rows when it took due deliveries, none when it found nothing",
            &["channel", "found"],
        );
        let recipient_results = counter(
            "recipient_results_total",
            "Recipients' final results reported by the provider, by channel and result",
            &["channel", "result"],
        );
        Metrics {
            recipient_results,
            lane_paused,
            lane_held,
            lane_throttled,
            lane_rate,
            watcher_polls,
            watcher_new_items,
            leases_lost,
            claims,
            alarms,
            sns_rejected,
            registry,
            received,
            accepted,
            rejected,
            duplicates,
            deliveries,
            retries,
            dead_letters,
            dispatch_latency,
            poll_errors,
            delete_errors,
            sqs_pollers,
            in_flight,
            consumer_backoff,
        }
    }

    /// Counts what the accept path made of one message from `source`; returns `duplicate`,
    /// `rejected` or `accepted`.
    pub fn count_outcome(&self, source: &str, duplicate: bool, rejected: bool) -> &'static str {
        let (name, counter) = match (duplicate, rejected) {
            (true, _) => ("duplicate", &self.duplicates),
            (false, true) => ("rejected", &self.rejected),
            (false, false) => ("accepted", &self.accepted),
        };
        counter.with_label_values(&[source]).inc();
        name
    }

    /// Counts what the accept path made of a batch from `source`: one counter update per outcome
    /// kind, not one label lookup per message (500 a batch).
    pub fn count_outcomes(&self, source: &str, accepted: u64, duplicates: u64) {
        for (count, counter) in [(accepted, &self.accepted), (duplicates, &self.duplicates)] {
            if count > 0 {
                counter.with_label_values(&[source]).inc_by(count);
            }
        }
    }

    /// Per channel, what its lane reports since this process started: paused or not, sends
    /// answered and their mean latency (for the operator console's overview).
    pub fn lane_stats(&self) -> Vec<LaneStats> {
        let mut lanes: std::collections::BTreeMap<String, LaneStats> = std::collections::BTreeMap::new();
        // Each metric's series, by its `channel` label, into that lane's stats.
        let mut each = |metric: &dyn Collector, set: &dyn Fn(&mut LaneStats, &prometheus::proto::Metric)| {
            for family in metric.collect() {
                for m in family.get_metric() {
                    if let Some(c) = m.get_label().iter().find(|l| l.name() == "channel") {
                        let channel = c.value().to_string();
                        set(
                            lanes.entry(channel.clone()).or_insert_with(|| LaneStats::new(channel)),
                            m,
                        );
                    }
                }
            }
        };
        each(&self.lane_paused, &|l, m| l.paused = m.get_gauge().get_value() > 0.0);
        each(&self.lane_throttled, &|l, m| {
            l.throttled = m.get_gauge().get_value() > 0.0
        });
        each(&self.lane_rate, &|l, m| {
            l.rate_limit_per_sec = Some(m.get_gauge().get_value())
        });
        each(&self.retries, &|l, m| l.retries = m.get_counter().get_value() as u64);
        each(&self.dispatch_latency, &|l, m| {
            let h = m.get_histogram();
            l.answers = h.get_sample_count();
            if h.get_sample_count() > 0 {
                l.mean_ms = 1000.0 * h.get_sample_sum() / h.get_sample_count() as f64;
            }
        });
        lanes.into_values().collect()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text format is UTF-8")
    }
}

pub type SharedMetrics = Arc<Metrics>;

/// One channel's lane, as the metrics see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaneStats {
    pub channel: String,
    /// True while the lane is paused because the provider refused allim's credentials.
    pub paused: bool,
    /// True while the provider's last answer asked allim to wait (429 or 503 with Retry-After).
    pub throttled: bool,
    /// The lane's own rate limit in sends per second, when the channel has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<f64>,
    /// Sends the provider answered since this task started.
    pub answers: u64,
    /// Their mean time to answer, in milliseconds.
    pub mean_ms: f64,
    /// Retries scheduled since this task started.
    pub retries: u64,
}

impl LaneStats {
    fn new(channel: String) -> LaneStats {
        LaneStats {
            channel,
            paused: false,
            throttled: false,
            rate_limit_per_sec: None,
            answers: 0,
            mean_ms: 0.0,
            retries: 0,
        }
    }
}
