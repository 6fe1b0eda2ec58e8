//! Accept: the only door. Every ingress (HTTP, SQS, SNS) hands its notifications to
//! [`Acceptor::accept`], which validates (already done by [`message`]), de-duplicates on the
//! idempotency key, and commits the delivery rows — and for in-app notifications due now, the
//! inbox rows — in one transaction. Only after that commit may an ingress acknowledge (e.g.
//! delete an SQS message). A message that is not a notification is stored as `rejected` with
//! its raw body and the reason when its ingress cannot answer the sender (SQS, SNS).

pub mod parse;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use parse::{Validated, parse_notification, parse_value};

use crate::channels::in_app::inbox_row;
use crate::channels::{ChannelArgs, Channels, Notification, NotificationType};
use crate::clock::Clock;
use crate::contract::{ContractError, bounded, limits};
use crate::store::{self, DeliveryStatus, InboxRow, NewDelivery, Store, StoreError, Wake};

/// Why the accept path could not store a batch. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group-commit writers are gone (the application is stopping).
    #[error("the group-commit writer stopped")]
    WriterStopped,
    /// Another writer kept winning the race for the same idempotency key.
    #[error("idempotency key kept conflicting; try again")]
    KeyConflict,
    /// The group commit this entry was part of failed.
    #[error("{0}")]
    Group(Arc<AcceptError>),
}

impl AcceptError {
    /// The write deadline this failure passed, if that is what it was: the outcome is then
    /// unknown (the rows may have been committed), unlike every other failure here.
    pub fn timed_out(&self) -> Option<std::time::Duration> {
        match self {
            AcceptError::Store(StoreError::Timeout(after)) => Some(*after),
            AcceptError::Group(e) => e.timed_out(),
            _ => None,
        }
    }
}

pub type AcceptResult<T> = Result<T, AcceptError>;

/// Which ingress a message came through (stored in `deliveries.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Http,
    Sqs,
    Sns,
    /// The SQS-compatible door (`SendMessage` straight into allim).
    SqsApi,
    /// A watcher (allim polled an HTTP JSON API and found new items).
    Watcher,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::Sqs => "sqs",
            Source::Sns => "sns",
            Source::SqsApi => "sqs-api",
            Source::Watcher => "watcher",
        }
    }
}

/// One message handed to the accept path.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A valid notification.
    Valid(Validated),
    /// A message that is not a valid notification, kept for the dead-letter view.
    Rejected {
        raw: String,
        reason: String,
        /// Deduplicates redeliveries of the same bad message (e.g. `sqs:<MessageId>`).
        idempotency_key: Option<String>,
    },
}

impl Entry {
    fn key(&self) -> Option<&str> {
        match self {
            Entry::Valid(v) => v.notification.idempotency_key(),
            Entry::Rejected { idempotency_key, .. } => idempotency_key.as_deref(),
        }
    }
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub status: DeliveryStatus,
    /// True when the idempotency key was seen before: nothing new was created.
    pub duplicate: bool,
}

/// The accept path, bound to a store.
#[derive(Clone)]
pub struct Acceptor {
    store: Store,
    /// Woken when something due now was stored, so the dispatcher need not wait its interval.
    wake: Wake,
    /// The channels' settings, for the checks that depend on them (e.g. Slack webhook names).
    settings: Arc<ChannelArgs>,
    /// The channels, for the checks that need the provider ([`Channel::admit`]).
    channels: Option<Arc<Channels>>,
    clock: Clock,
    /// Group commit: single entries queue here and writers commit whatever has gathered in
    /// one transaction (see [`Acceptor::with_group_commit`]). `None`: each commits on its own.
    queue: Option<mpsc::Sender<Queued>>,
}

/// One entry waiting for a group commit, and where its outcome goes.
struct Queued {
    source: Source,
    entry: Entry,
    reply: oneshot::Sender<AcceptResult<Outcome>>,
}

/// The most single entries one group commit takes.
const GROUP_MAX: usize = 500;

/// The rows one entry turns into.
struct Planned {
    delivery: NewDelivery,
    inbox: Option<InboxRow>,
}

impl Acceptor {
    pub fn new(store: Store, wake: Wake, settings: Arc<ChannelArgs>, clock: Clock) -> Self {
        Acceptor {
            store,
            wake,
            settings,
            channels: None,
            clock,
            queue: None,
        }
    }

    /// Adds the channels' accept-time checks that need their provider ([`Channel::admit`]).
    pub fn with_channels(mut self, channels: Arc<Channels>) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Turns on group commit for [`Acceptor::accept_one`]: concurrent single notifications (HTTP,
    /// SNS) are committed together, up to 500 per transaction, by `writers` tasks. A request waits
    /// for the commit that carries its row — nothing is acknowledged before it is durable — but
    /// a burst of requests costs a few transactions instead of one each. Must be called inside
    /// the Tokio runtime; the writers end when the last clone of the acceptor is dropped.
    pub fn with_group_commit(mut self, writers: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Queued>(GROUP_MAX * 4);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let direct = Acceptor {
            queue: None,
            ..self.clone()
        };
        for _ in 0..writers.max(1) {
            let rx = rx.clone();
            let direct = direct.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(first) => batch.push(first),
                            None => return,
                        }
                        while batch.len() < GROUP_MAX {
                            match rx.try_recv() {
                                Ok(q) => batch.push(q),
                                Err(_) => break,
                            }
                        }
                    }
                    direct.commit_group(batch).await;
                }
            });
        }
        self.queue = Some(tx);
        self
    }

    /// Commits one gathered group — one transaction per source — and answers every waiter.
    async fn commit_group(&self, batch: Vec<Queued>) {
        type Replies = Vec<oneshot::Sender<AcceptResult<Outcome>>>;
        let mut groups: Vec<(Source, Vec<Entry>, Replies)> = Vec::new();
        for q in batch {
            match groups.iter_mut().find(|(s, _, _)| *s == q.source) {
                Some((_, entries, replies)) => {
                    entries.push(q.entry);
                    replies.push(q.reply);
                }
                None => groups.push((q.source, vec![q.entry], vec![q.reply])),
            }
        }
        for (source, entries, replies) in groups {
            match self.accept(source, entries).await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(AcceptError::Group(e.clone())));
                    }
                }
            }
        }
    }

    /// The store it commits to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Wakes the dispatcher (after rows were written outside [`Acceptor::accept`]).
    pub fn wake_dispatcher(&self) {
        self.wake.raise();
    }

    /// Parses and validates a body: the message contract, the configuration's rules and the
    /// channel's checks against its provider. Every ingress parses through here.
    pub async fn parse(&self, body: &[u8]) -> Result<Validated, ContractError> {
        let v = parse_notification(body)?;
        self.admit(v).await
    }

    /// As [`Acceptor::parse`], from a JSON value.
    pub async fn parse_value(&self, value: serde_json::Value) -> Result<Validated, ContractError> {
        let v = parse_value(value)?;
        self.admit(v).await
    }

    async fn admit(&self, v: Validated) -> Result<Validated, ContractError> {
        v.notification.check(&self.settings)?;
        if let Some(channel) = self.channels.as_ref().and_then(|c| c.get(v.notification.kind())) {
            channel.admit(&v.notification).await?;
        }
        Ok(v)
    }

    /// Accepts one entry.
    pub async fn accept_one(&self, source: Source, entry: Entry) -> AcceptResult<Outcome> {
        if let Some(queue) = &self.queue {
            let (reply, answer) = oneshot::channel();
            queue
                .send(Queued { source, entry, reply })
                .await
                .map_err(|_| AcceptError::WriterStopped)?;
            return answer.await.unwrap_or(Err(AcceptError::WriterStopped));
        }
        let mut out = self.accept(source, vec![entry]).await?;
        Ok(out.pop().expect("one outcome per entry"))
    }

    /// Accepts a batch: one outcome per entry, in order. The new rows are committed in one
    /// transaction with multi-row inserts; an entry whose key exists (before, or earlier in
    /// this batch) is a duplicate.
    ///
    /// Keys are looked up only when the insert says one exists: the first try assumes none of
    /// the batch's keys is stored yet (a redelivery or a retry is the exception), which saves a
    /// database round trip per batch. If the insert hits a stored key, the keys are looked up
    /// and the batch planned again with those as duplicates. If another writer races us on a
    /// key after that, the batch falls back to one transaction per entry, so the winner's row
    /// is reported as the duplicate's id.
    pub async fn accept(&self, source: Source, entries: Vec<Entry>) -> AcceptResult<Vec<Outcome>> {
        let now = self.clock.now_ms();
        let first = self.plan_and_commit(source, &entries, now, HashMap::new()).await;
        match first {
            Ok(done) => Ok(done),
            Err(e) if e.is_unique_violation() => {
                let keys: Vec<&str> = entries.iter().filter_map(Entry::key).collect();
                let known = self.store.find_by_keys(&keys).await?;
                match self.plan_and_commit(source, &entries, now, known).await {
                    Ok(done) => Ok(done),
                    Err(e) if e.is_unique_violation() || !e.is_outage() => {
                        self.accept_each(source, &entries, now).await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            // A row the database refuses: one by one, so that the refused row is stored as
            // rejected alone and the others as they are.
            Err(e) if !e.is_outage() => self.accept_each(source, &entries, now).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Plans the rows of every entry whose key is not in `known` (nor earlier in the batch) and
    /// commits them in one transaction: the outcomes.
    async fn plan_and_commit(
        &self,
        source: Source,
        entries: &[Entry],
        now: i64,
        mut known: HashMap<String, (String, DeliveryStatus)>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut planned = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(key) = entry.key()
                && let Some((id, status)) = known.get(key)
            {
                outcomes.push(Outcome {
                    id: id.clone(),
                    status: *status,
                    duplicate: true,
                });
                continue;
            }
            let plan = plan(source, entry, now);
            if let Some(key) = entry.key() {
                known.insert(key.to_string(), (plan.delivery.id.clone(), plan.delivery.status));
            }
            outcomes.push(Outcome {
                id: plan.delivery.id.clone(),
                status: plan.delivery.status,
                duplicate: false,
            });
            planned.push(plan);
        }
        if !planned.is_empty() {
            self.commit(&planned).await?;
        }
        Ok(outcomes)
    }

    /// Writes the planned rows in one transaction, then wakes the lanes of the deliveries it
    /// made due now (only those: an idle lane woken for nothing runs an empty claim).
    ///
    /// A transaction MySQL picks as a deadlock's victim is rolled back whole and tried again,
    /// up to three times in all, as `Store::finish` does: otherwise every request of its group
    /// commit would be answered 503 and an SQS batch held as if the database were down
    /// (tests/it/deadlock.rs).
    async fn commit(&self, planned: &[Planned]) -> Result<(), StoreError> {
        let deliveries: Vec<&NewDelivery> = planned.iter().map(|p| &p.delivery).collect();
        let inbox: Vec<&InboxRow> = planned.iter().filter_map(|p| p.inbox.as_ref()).collect();
        let mut tries = 0;
        loop {
            tries += 1;
            match self.store.commit_accepted(&deliveries, &inbox).await {
                Err(e) if e.is_deadlock() && tries < 3 => {
                    tracing::warn!(
                        rows = deliveries.len(),
                        tries,
                        "accepting was a deadlock's victim; trying again"
                    );
                }
                other => break other?,
            }
        }
        let mut due: Vec<&str> = deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at <= Some(d.now))
            .map(|d| d.notification_type.as_str())
            .collect();
        if !due.is_empty() {
            due.sort_unstable();
            due.dedup();
            self.wake.raise_for(due);
        }
        Ok(())
    }

    /// The slow path after a key race: each entry in its own transaction.
    async fn accept_each(&self, source: Source, entries: &[Entry], now: i64) -> AcceptResult<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            outcomes.push(self.accept_single(source, entry, now).await?);
        }
        Ok(outcomes)
    }

    async fn accept_single(&self, source: Source, entry: &Entry, now: i64) -> AcceptResult<Outcome> {
        // Two rounds: if the key's holder rolled back between our insert and our lookup,
        // the second insert succeeds.
        for _ in 0..2 {
            if let Some(key) = entry.key()
                && let Some((id, status)) = self.store.find_by_keys(&[key]).await?.remove(key)
            {
                return Ok(Outcome {
                    id,
                    status,
                    duplicate: true,
                });
            }
            let plan = plan(source, entry, now);
            match self.commit(std::slice::from_ref(&plan)).await {
                Ok(()) => {
                    return Ok(Outcome {
                        id: plan.delivery.id,
                        status: plan.delivery.status,
                        duplicate: false,
                    });
                }
                Err(e) if e.is_unique_violation() => continue,
                Err(e) if !e.is_outage() => return self.store_refused(source, entry, &e, now).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AcceptError::KeyConflict)
    }

    /// A row the database refused (e.g. a value over a column's size under strict SQL mode):
    /// kept as `rejected` with the reason, so it neither blocks its batch nor is lost.
    async fn store_refused(&self, source: Source, entry: &Entry, e: &StoreError, now: i64) -> AcceptResult<Outcome> {
        let raw = match entry {
            Entry::Valid(v) => parse::to_json(&v.notification),
            Entry::Rejected { raw, .. } => raw.clone(),
        };
        tracing::error!(error = %e, "the database refused a row; storing it as rejected");
        let rejected = Entry::Rejected {
            raw,
            reason: format!("the database refused to store it: {e}"),
            idempotency_key: entry.key().map(str::to_string),
        };
        let plan = plan(source, &rejected, now);
        self.commit(std::slice::from_ref(&plan)).await?;
        Ok(Outcome {
            id: plan.delivery.id,
            status: plan.delivery.status,
            duplicate: false,
        })
    }
}

/// Decides the rows for one entry.
fn plan(source: Source, entry: &Entry, now: i64) -> Planned {
    let id = store::new_id();
    match entry {
        Entry::Rejected {
            raw,
            reason,
            idempotency_key,
        } => Planned {
            delivery: NewDelivery {
                id,
                idempotency_key: idempotency_key.clone(),
                notification_type: sniff_type(raw),
                source: source.as_str(),
                payload: raw.clone(),
                status: DeliveryStatus::Rejected,
                next_attempt_at: None,
                last_error: Some(bounded(reason, limits::REASON_MAX)),
                now,
            },
            inbox: None,
        },
        Entry::Valid(v) => {
            let due = v.deliver_at_ms.is_none_or(|t| t <= now);
            let mut inbox = None;
            let status = match &v.notification {
                Notification::AppNotification(n) if due => {
                    inbox = Some(inbox_row(&id, n, now));
                    DeliveryStatus::Delivered
                }
                _ => DeliveryStatus::Pending,
            };
            let next_attempt_at = match status {
                DeliveryStatus::Pending => Some(v.deliver_at_ms.unwrap_or(now).max(now)),
                _ => None,
            };
            Planned {
                delivery: NewDelivery {
                    id,
                    idempotency_key: v.notification.idempotency_key().map(str::to_string),
                    notification_type: v.notification.kind().as_str().to_string(),
                    source: source.as_str(),
                    payload: parse::to_json(&v.notification),
                    status,
                    next_attempt_at,
                    last_error: None,
                    now,
                },
                inbox,
            }
        }
    }
}

/// The pending delivery row for a notification that goes through a channel (not in-app),
/// for callers that write it inside a transaction of their own (alarm routing).
pub fn pending_row(source: Source, v: &Validated, now: i64) -> NewDelivery {
    plan(source, &Entry::Valid(v.clone()), now).delivery
}

/// The `notificationType` of a rejected body when it names a known one, else `UNKNOWN`.
fn sniff_type(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("notificationType")?.as_str().and_then(NotificationType::parse))
        .map_or("UNKNOWN", NotificationType::as_str)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(json: &str) -> Entry {
        Entry::Valid(parse_notification(json.as_bytes()).expect("a valid notification"))
    }

    /// A commit wakes the lanes of the deliveries it made due now, and no other: an idle lane
    /// woken for nothing runs an empty claiming transaction.
    #[tokio::test]
    async fn a_commit_wakes_only_the_lanes_with_something_due() {
        let clock = Clock::manual(1_800_000_000_000);
        let wake = Wake::default();
        let mut lanes: Vec<_> = ["SMS", "SLACK", "PUSH", "APP_NOTIFICATION"]
            .into_iter()
            .map(|k| (k, wake.subscribe(k)))
            .collect();
        let acceptor = Acceptor::new(
            Store::memory().await,
            wake,
            Arc::new(crate::settings::defaults::<ChannelArgs>()),
            clock,
        );
        fn woken(lanes: &mut [(&'static str, tokio::sync::watch::Receiver<u64>)]) -> Vec<&'static str> {
            lanes
                .iter_mut()
                .filter_map(|(k, rx)| {
                    let changed = rx.has_changed().unwrap();
                    rx.mark_unchanged();
                    changed.then_some(*k)
                })
                .collect()
        }

        // Slack due now, SMS scheduled for later (its lane finds it by its interval), in-app
        // due now (written to the inbox at once, no lane).
        let entries = vec![
            valid(r#"{"notificationType":"SLACK","text":"now"}"#),
            valid(
                r#"{"notificationType":"SMS","to":["01012345678"],"content":"later","deliverAt":"2030-01-01T00:00:00Z"}"#,
            ),
            valid(r#"{"notificationType":"APP_NOTIFICATION","userId":"1","title":"now"}"#),
            valid(r#"{"notificationType":"SLACK","text":"now, again"}"#),
        ];
        let outcomes = acceptor.accept(Source::Http, entries).await.unwrap();
        assert_eq!(outcomes.len(), 4);
        assert_eq!(woken(&mut lanes), ["SLACK"]);

        // A batch with nothing due wakes nothing; an SMS due now wakes the SMS lane.
        let later =
            valid(r#"{"notificationType":"PUSH","tokens":["t"],"title":"x","deliverAt":"2030-01-01T00:00:00Z"}"#);
        acceptor.accept(Source::Http, vec![later]).await.unwrap();
        assert!(woken(&mut lanes).is_empty());
        let sms = valid(r#"{"notificationType":"SMS","to":["01012345678"],"content":"now"}"#);
        acceptor.accept(Source::Sqs, vec![sms]).await.unwrap();
        assert_eq!(woken(&mut lanes), ["SMS"]);
    }
}
