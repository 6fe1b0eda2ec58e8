//! The SQS-compatible door: producers point their AWS SDK's SQS endpoint at allim and call
//! `SendMessage` / `SendMessageBatch` as they did against SQS; each body goes through the one
//! accept path, so no queue (and no idle poller) is needed.
//!
//! It has a listener of its own (`ALLIM_SQS_DOOR_LISTEN`) rather than a path on the API's
//! port: query-protocol SDKs POST to the queue URL's path (`/{account}/{queue}`) and JSON ones
//! to the endpoint's `/`, SDKs treat an endpoint path prefix differently, and a separate port
//! keeps the door off the public load balancer (it is for producers inside the VPC).
//!
//! - [`wire`]: the JSON and query protocols, answers and SQS-shaped errors.
//! - [`sigv4`]: requests must be signed with a configured access key, as AWS signs them.
//! - [`md5`]: the digests SDKs check.
//!
//! What a body must be is the message contract, exactly as for a message read from a queue;
//! but this door can answer the sender, so a body that is not a notification is refused with
//! `InvalidParameterValue` naming the problem (nothing is stored), as `POST /v1/notifications`
//! refuses it. Only after the delivery row is committed does the answer carry its `MessageId`
//! (the delivery id).

pub mod md5;
pub mod sigv4;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

use crate::accept::{Acceptor, Entry, Source, Validated};
use crate::clock::Clock;
use crate::contract::{ContractError, message_key};
use crate::telemetry::{SharedMetrics, mask};
use wire::{Answer, Failed, Fault, Protocol, Request, SendEntry, Sent};

/// The SQS door's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SqsDoorArgs {
    /// Address of the SQS-compatible door (e.g. `0.0.0.0:9324`); unset: no door. Producers set
    /// their SDK's SQS endpoint to it (`AWS_ENDPOINT_URL_SQS=http://allim.internal:9324`).
    #[arg(long, env = "ALLIM_SQS_DOOR_LISTEN", global = true)]
    pub sqs_door_listen: Option<SocketAddr>,

    /// Comma-separated queue names the door answers for (each a door into accept).
    #[arg(
        long,
        env = "ALLIM_SQS_DOOR_QUEUES",
        value_delimiter = ',',
        default_value = "notifications",
        global = true
    )]
    pub sqs_door_queues: Vec<String>,

    /// Comma-separated `ACCESS_KEY_ID:SECRET` pairs producers sign with (SigV4, as for AWS).
    /// Required with `ALLIM_SQS_DOOR_LISTEN`.
    #[arg(
        long,
        env = "ALLIM_SQS_DOOR_KEYS",
        value_delimiter = ',',
        value_parser = crate::settings::Secret(AccessKey::parse),
        hide_env_values = true,
        global = true
    )]
    pub sqs_door_keys: Vec<AccessKey>,

    /// The account id in the queue URLs and ARNs the door answers with.
    #[arg(long, env = "ALLIM_SQS_DOOR_ACCOUNT", default_value = "000000000000", global = true)]
    pub sqs_door_account: String,

    /// Base of the queue URLs `GetQueueUrl` answers (e.g. `http://allim.internal:9324`);
    /// default: `http://` + the request's `Host`.
    #[arg(long, env = "ALLIM_SQS_DOOR_URL", global = true)]
    pub sqs_door_url: Option<String>,
}

/// One access key producers sign with.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKey({}, secret hidden)", self.id)
    }
}

impl AccessKey {
    pub fn parse(s: &str) -> Result<AccessKey, String> {
        let (id, secret) = s
            .trim()
            .split_once(':')
            .ok_or("each key must be ACCESS_KEY_ID:SECRET")?;
        if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("an access key id must be 16 to 128 letters and digits".into());
        }
        if secret.len() < 16 || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the secret of {id} must be at least 16 characters without white space"
            ));
        }
        Ok(AccessKey {
            id: id.to_string(),
            secret: SecretString::from(secret.to_string()),
        })
    }
}

impl SqsDoorArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.sqs_door_listen.is_none() {
            return Ok(());
        }
        if self.sqs_door_keys.is_empty() {
            anyhow::bail!(
                "ALLIM_SQS_DOOR_LISTEN is set but ALLIM_SQS_DOOR_KEYS is empty: the door would have no key to check \
                 signatures with. Set ALLIM_SQS_DOOR_KEYS=ACCESS_KEY_ID:SECRET"
            );
        }
        if self.sqs_door_queues.is_empty() {
            anyhow::bail!("ALLIM_SQS_DOOR_QUEUES must name at least one queue");
        }
        for q in &self.sqs_door_queues {
            if !valid_queue_name(q) {
                anyhow::bail!(
                    "ALLIM_SQS_DOOR_QUEUES: {q:?} is not a queue name (1 to 80 letters, digits, - and _, \
                     optionally ending in .fifo)"
                );
            }
        }
        if self.sqs_door_account.len() != 12 || !self.sqs_door_account.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!("ALLIM_SQS_DOOR_ACCOUNT must be 12 digits");
        }
        if let Some(url) = &self.sqs_door_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!("ALLIM_SQS_DOOR_URL must start with http:// or https://");
        }
        let mut ids = HashSet::new();
        for k in &self.sqs_door_keys {
            if !ids.insert(&k.id) {
                anyhow::bail!("ALLIM_SQS_DOOR_KEYS: {} is listed twice", k.id);
            }
        }
        Ok(())
    }
}

fn valid_queue_name(q: &str) -> bool {
    let base = q.strip_suffix(".fifo").unwrap_or(q);
    (1..=80).contains(&q.len())
        && !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// At most this many entries in one `SendMessageBatch` (SQS's limit).
pub const BATCH_MAX: usize = 10;
/// At most this many message attributes per message (SQS's limit).
const ATTRIBUTES_MAX: usize = 10;
/// The longest message SQS takes (1 MiB since August 2025); `ALLIM_MAX_BODY_BYTES` may lower it.
const SQS_MESSAGE_MAX: usize = 1024 * 1024;

/// The door: its settings, and the accept path it feeds.
pub struct Door {
    acceptor: Acceptor,
    queues: HashSet<String>,
    keys: HashMap<String, SecretString>,
    account: String,
    base_url: Option<String>,
    /// The longest message body, and the longest batch (all bodies together).
    message_max: usize,
    metrics: SharedMetrics,
    clock: Clock,
}

impl Door {
    pub fn new(
        args: &SqsDoorArgs,
        max_body_bytes: usize,
        acceptor: Acceptor,
        metrics: SharedMetrics,
        clock: Clock,
    ) -> Door {
        Door {
            acceptor,
            queues: args.sqs_door_queues.iter().cloned().collect(),
            keys: args
                .sqs_door_keys
                .iter()
                .map(|k| (k.id.clone(), k.secret.clone()))
                .collect(),
            account: args.sqs_door_account.clone(),
            base_url: args.sqs_door_url.as_ref().map(|u| u.trim_end_matches('/').to_string()),
            message_max: max_body_bytes.min(SQS_MESSAGE_MAX),
            metrics,
            clock,
        }
    }

    /// The largest HTTP body read: a full batch, with room for JSON escapes, base64 attributes
    /// and URL encoding.
    fn request_max(&self) -> usize {
        self.message_max * 4 + 64 * 1024
    }
}

/// The door's router: every path, every method, one handler (SQS routes by action, not path).
/// As on the API's port, a request (a slow body included) gets 30 s, then a 503 that SDKs retry.
pub fn router(door: Arc<Door>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(door)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            std::time::Duration::from_secs(30),
        ))
}

async fn handle(State(door): State<Arc<Door>>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::now_v7().to_string();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let protocol = Protocol::detect(header("x-amz-target"), header("content-type"));
    let limit = door.request_max();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return fault_response(protocol, &Fault::too_large(limit), &request_id),
    };
    match door.answer(protocol, &method, &uri, &headers, &body).await {
        Ok((action, answer)) => {
            let (text, content_type) = wire::render(protocol, action, &answer, &request_id);
            let mut response = (StatusCode::OK, text).into_response();
            set_headers(&mut response, content_type, &request_id);
            response
        }
        Err(fault) => fault_response(protocol, &fault, &request_id),
    }
}

fn set_headers(response: &mut Response, content_type: &'static str, request_id: &str) {
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
}

fn fault_response(protocol: Protocol, fault: &Fault, request_id: &str) -> Response {
    let (text, content_type) = wire::render_fault(protocol, fault, request_id);
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, text).into_response();
    set_headers(&mut response, content_type, request_id);
    if protocol == Protocol::Json
        && let Ok(v) = HeaderValue::from_str(&wire::query_error_header(fault))
    {
        response.headers_mut().insert("x-amzn-query-error", v);
    }
    response
}

/// The queue a `QueueUrl` (or a bare name) names: its last path segment.
fn queue_of(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

impl Door {
    async fn answer(
        &self,
        protocol: Protocol,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(&'static str, Answer), Fault> {
        let received = sigv4::Received {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
                .collect(),
            body,
        };
        let signer = sigv4::verify(&received, self.clock.now_ms(), |key| {
            self.keys.get(key).map(|s| s.expose_secret().to_string())
        })
        .map_err(|e| {
            // The key id is masked and neither the secret nor the signature is logged.
            tracing::warn!(code = e.code(), access_key = %access_key_of(headers), "sqs door: request refused");
            Fault::auth(e.code(), e.status(), e.to_string())
        })?;
        let path_queue = Some(queue_of(uri.path())).filter(|q| !q.is_empty());
        let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
        let request = wire::parse(protocol, target, uri.query(), body, path_queue)?;
        let action = request.action();
        let answer = match request {
            Request::GetQueueUrl { queue_name } => {
                let name = queue_name.ok_or_else(|| Fault::missing("QueueName"))?;
                if !self.queues.contains(&name) {
                    return Err(Fault::no_queue());
                }
                Answer::QueueUrl(self.queue_url(headers, &name))
            }
            Request::GetQueueAttributes { queue_url, names } => {
                let queue = self.queue(queue_url.as_deref())?;
                Answer::Attributes(self.attributes(&queue, &signer.region, &names)?)
            }
            Request::SendMessage { queue_url, entry } => {
                let queue = self.queue(queue_url.as_deref())?;
                let validated = self.check(&queue, &entry).await?;
                self.metrics
                    .received
                    .with_label_values(&[Source::SqsApi.as_str()])
                    .inc();
                let outcome = self
                    .acceptor
                    .accept_one(Source::SqsApi, Entry::Valid(validated))
                    .await
                    .map_err(|e| not_stored(&e))?;
                self.metrics
                    .count_outcome(Source::SqsApi.as_str(), outcome.duplicate, false);
                Answer::Sent(sent(&entry, outcome.id))
            }
            Request::SendMessageBatch { queue_url, entries } => {
                let queue = self.queue(queue_url.as_deref())?;
                self.send_batch(&queue, entries).await?
            }
        };
        Ok((action, answer))
    }

    fn queue(&self, queue_url: Option<&str>) -> Result<String, Fault> {
        let url = queue_url.ok_or_else(|| Fault::missing("QueueUrl"))?;
        let name = queue_of(url);
        if self.queues.contains(name) {
            Ok(name.to_string())
        } else {
            Err(Fault::no_queue())
        }
    }

    fn queue_url(&self, headers: &HeaderMap, name: &str) -> String {
        let base = match &self.base_url {
            Some(b) => b.clone(),
            None => {
                let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        format!("{base}/{}/{name}", self.account)
    }

    /// `GetQueueAttributes`: only values that are true of allim's door.
    fn attributes(&self, queue: &str, region: &str, names: &[String]) -> Result<Vec<(String, String)>, Fault> {
        let fifo = queue.ends_with(".fifo");
        let mut all = vec![
            ("QueueArn", format!("arn:aws:sqs:{region}:{}:{queue}", self.account)),
            ("DelaySeconds", "0".to_string()),
            ("MaximumMessageSize", self.message_max.to_string()),
            ("ReceiveMessageWaitTimeSeconds", "0".to_string()),
        ];
        if fifo {
            all.push(("FifoQueue", "true".to_string()));
            all.push(("ContentBasedDeduplication", "false".to_string()));
        }
        const KNOWN: &[&str] = &[
            "All",
            "Policy",
            "VisibilityTimeout",
            "MaximumMessageSize",
            "MessageRetentionPeriod",
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "CreatedTimestamp",
            "LastModifiedTimestamp",
            "QueueArn",
            "ApproximateNumberOfMessagesDelayed",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "RedrivePolicy",
            "FifoQueue",
            "ContentBasedDeduplication",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "DeduplicationScope",
            "FifoThroughputLimit",
            "RedriveAllowPolicy",
            "SqsManagedSseEnabled",
        ];
        if let Some(unknown) = names.iter().find(|n| !KNOWN.contains(&n.as_str())) {
            return Err(Fault {
                code: "InvalidAttributeName",
                ..Fault::invalid(format!("Unknown Attribute {unknown}."))
            });
        }
        let wanted = |n: &str| names.iter().any(|w| w == "All" || w == n);
        Ok(all
            .into_iter()
            .filter(|(n, _)| wanted(n))
            .map(|(n, v)| (n.to_string(), v))
            .collect())
    }

    /// SQS's checks on one message, then the message contract: a notification ready to accept.
    async fn check(&self, queue: &str, e: &SendEntry) -> Result<Validated, Fault> {
        let body = e
            .body
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Fault::missing("MessageBody"))?;
        if body.len() > self.message_max {
            return Err(Fault::invalid(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                self.message_max + 1
            )));
        }
        let delay = e.delay_seconds.unwrap_or(0);
        if !(0..=900).contains(&delay) {
            return Err(Fault::invalid(format!(
                "Value {delay} for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided."
            )));
        }
        for attrs in [&e.attributes, &e.system_attributes] {
            if attrs.len() > ATTRIBUTES_MAX {
                return Err(Fault::invalid(format!(
                    "Number of message attributes [{}] exceeds the allowed maximum [{ATTRIBUTES_MAX}].",
                    attrs.len()
                )));
            }
            for (name, _) in attrs.iter() {
                let ok = (1..=256).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                    && !name.starts_with('.')
                    && !name.ends_with('.')
                    && !name.contains("..");
                if !ok {
                    return Err(Fault::invalid(format!(
                        "The message attribute name '{name}' is invalid: use 1 to 256 letters, digits, _, - and ., \
                         with no leading, trailing or doubled period."
                    )));
                }
            }
        }
        if let Some(d) = &e.dedup_id
            && !((1..=128).contains(&d.len()) && d.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        {
            return Err(Fault::invalid(
                "Value for parameter MessageDeduplicationId is invalid. Reason: use 1 to 128 printable ASCII \
                 characters.",
            ));
        }
        if queue.ends_with(".fifo") {
            if e.group_id.is_none() {
                return Err(Fault::missing("MessageGroupId"));
            }
            if e.dedup_id.is_none() {
                return Err(Fault::invalid(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId \
                     provided explicitly",
                ));
            }
        }
        // One pass, as the HTTP batch reads its items (a body serde refuses is read again the slow
        // way inside, so the error still names the field).
        let mut v = self.acceptor.parse(body.as_bytes()).await.map_err(|err| match err {
            ContractError::MalformedJson(err) => Fault::invalid(format!(
                "MessageBody is not an allim notification: not valid JSON: {err}"
            )),
            err => Fault::invalid(format!("MessageBody is not an allim notification: {err}")),
        })?;
        if delay > 0 {
            let at = self.clock.now_ms() + delay * 1000;
            v.deliver_at_ms = Some(v.deliver_at_ms.map_or(at, |given| given.max(at)));
        }
        if let Some(d) = &e.dedup_id {
            v.set_default_idempotency_key(message_key("sqs-dedup", &format!("{queue}:{d}")));
        }
        Ok(v)
    }

    async fn send_batch(&self, queue: &str, entries: Vec<SendEntry>) -> Result<Answer, Fault> {
        if entries.is_empty() {
            return Err(Fault::batch(
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                "There should be at least one SendMessageBatchRequestEntry in the request.",
            ));
        }
        if entries.len() > BATCH_MAX {
            return Err(Fault::batch(
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                format!(
                    "Maximum number of entries per request are {BATCH_MAX}. You have sent {}.",
                    entries.len()
                ),
            ));
        }
        let mut ids = HashSet::new();
        for e in &entries {
            if !((1..=80).contains(&e.id.len())
                && e.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err(Fault::batch(
                    "InvalidBatchEntryId",
                    "AWS.SimpleQueueService.InvalidBatchEntryId",
                    format!(
                        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be \
                         at most 80 letters long; {:?} is not one.",
                        e.id
                    ),
                ));
            }
            if !ids.insert(e.id.as_str()) {
                return Err(Fault::batch(
                    "BatchEntryIdsNotDistinct",
                    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                    format!("Id {} repeated.", e.id),
                ));
            }
        }
        let total: usize = entries.iter().map(|e| e.body.as_deref().map_or(0, str::len)).sum();
        if total > self.message_max {
            return Err(Fault::batch(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                format!("Batch requests cannot be longer than {} bytes.", self.message_max),
            ));
        }
        let mut failed = Vec::new();
        let mut valid = Vec::new();
        for e in entries {
            match self.check(queue, &e).await {
                Ok(v) => valid.push((e, v)),
                Err(fault) => failed.push(Failed {
                    id: e.id.clone(),
                    fault,
                }),
            }
        }
        self.metrics
            .received
            .with_label_values(&[Source::SqsApi.as_str()])
            .inc_by((valid.len() + failed.len()) as u64);
        let (sent_entries, batch): (Vec<SendEntry>, Vec<Entry>) =
            valid.into_iter().map(|(e, v)| (e, Entry::Valid(v))).unzip();
        let outcomes = if batch.is_empty() {
            Vec::new()
        } else {
            self.acceptor
                .accept(Source::SqsApi, batch)
                .await
                .map_err(|e| not_stored(&e))?
        };
        let successful = sent_entries
            .iter()
            .zip(outcomes)
            .map(|(e, outcome)| {
                self.metrics
                    .count_outcome(Source::SqsApi.as_str(), outcome.duplicate, false);
                sent(e, outcome.id)
            })
            .collect();
        Ok(Answer::Batch { successful, failed })
    }
}

fn sent(e: &SendEntry, message_id: String) -> Sent {
    Sent {
        id: e.id.clone(),
        message_id,
        md5_body: md5::of_body(e.body.as_deref().unwrap_or_default()),
        md5_attributes: md5::of_attributes(&e.attributes),
        md5_system_attributes: md5::of_attributes(&e.system_attributes),
    }
}

fn not_stored(e: &crate::accept::AcceptError) -> Fault {
    tracing::warn!(error = %e, "sqs door: could not store; the producer is told to retry");
    let stored = if e.timed_out().is_some() {
        "it may have been stored (as SQS, delivery is at least once)"
    } else {
        "nothing was stored"
    };
    Fault::unavailable(format!("allim could not store the message ({e}); {stored}, retry."))
}

/// The access key id a request claims, masked, for the log.
fn access_key_of(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .map(mask)
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_come_from_urls_or_paths() {
        assert_eq!(queue_of("http://h:9324/000000000000/orders"), "orders");
        assert_eq!(queue_of("https://sqs.ap-northeast-2.amazonaws.com/1/orders/"), "orders");
        assert_eq!(queue_of("orders"), "orders");
        assert_eq!(queue_of("/"), "");
        assert!(valid_queue_name("orders.fifo"));
        assert!(!valid_queue_name(".fifo"));
        assert!(!valid_queue_name("a b"));
    }

    #[test]
    fn access_keys_parse_and_never_print_their_secret() {
        let k = AccessKey::parse("AKIAALLIMTEST0000001:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY").unwrap();
        assert_eq!(k.id, "AKIAALLIMTEST0000001");
        assert!(!format!("{k:?}").contains("wJalr"));
        assert!(AccessKey::parse("no-colon").is_err());
        assert!(AccessKey::parse("AKIAALLIMTEST0000001:short").is_err());
    }
}
