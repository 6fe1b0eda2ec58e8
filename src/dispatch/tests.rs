//! `Dispatcher::step` and `decide` with a controlled clock: no real waiting.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::*;
use crate::channels::{Channel, Job, NotificationType};
use crate::store::Wake;
use crate::store::{DeliveryStatus, NewDelivery};
use crate::telemetry::Metrics;

const T0: i64 = 1_795_305_600_000;

fn args() -> DispatchArgs {
    DispatchArgs {
        dispatch: true,
        dispatch_interval: Duration::from_secs(1),
        dispatch_batch: 10,
        dispatch_concurrency: 4,
        dispatch_lease: Duration::from_secs(60),
        retry_max_attempts: 3,
        retry_base: Duration::from_secs(10),
        retry_cap: Duration::from_secs(300),
    }
}

/// A Slack channel whose answers are scripted per delivery id (default: delivered).
#[derive(Default)]
struct Scripted {
    answers: Mutex<HashMap<String, Vec<SendOutcome>>>,
    calls: Mutex<Vec<String>>,
}

impl Channel for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        async move {
            self.calls.lock().unwrap().push(job.delivery_id.clone());
            let mut answers = self.answers.lock().unwrap();
            match answers.get_mut(&job.delivery_id) {
                Some(list) if !list.is_empty() => list.remove(0),
                _ => SendOutcome::Delivered { dry_run: false },
            }
        }
        .boxed()
    }
}

/// Pending Slack rows, due at `at`.
async fn insert_slack(store: &Store, ids: &[&str], at: i64) {
    let rows: Vec<NewDelivery> = ids
        .iter()
        .map(|id| NewDelivery {
            id: id.to_string(),
            idempotency_key: None,
            notification_type: "SLACK".into(),
            source: "http",
            payload: r#"{"notificationType":"SLACK","text":"hi"}"#.into(),
            status: DeliveryStatus::Pending,
            next_attempt_at: Some(at),
            last_error: None,
            now: at,
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    store::insert_deliveries(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
}

/// A dispatcher (its own owner name) whose Slack lane answers as scripted.
fn dispatcher(store: &Store, clock: &Clock) -> (Arc<Scripted>, Dispatcher) {
    let channel = Arc::new(Scripted::default());
    let mut channels = Channels::default();
    channels.register(NotificationType::Slack, channel.clone());
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(channels),
        args(),
        &crate::settings::defaults::<crate::channels::ChannelArgs>(),
        Arc::new(Metrics::new()),
        Wake::default(),
        clock.clone(),
    );
    (channel, dispatcher)
}

async fn setup(clock: &Clock, ids: &[&str]) -> (Store, Arc<Scripted>, Dispatcher) {
    let store = Store::memory().await;
    insert_slack(&store, ids, clock.now_ms()).await;
    let (channel, dispatcher) = dispatcher(&store, clock);
    (store, channel, dispatcher)
}

fn retry(error: &str) -> SendOutcome {
    SendOutcome::Retry {
        error: error.into(),
        after: None,
    }
}

#[tokio::test]
async fn step_maps_outcomes_and_backs_off_on_the_clock() {
    let clock = Clock::manual(T0);
    let (store, channel, dispatcher) = setup(&clock, &["ok", "flaky", "bad"]).await;
    channel.answers.lock().unwrap().extend([
        ("flaky".to_string(), vec![retry("503")]),
        (
            "bad".to_string(),
            vec![SendOutcome::Permanent {
                error: "404 no_service".into(),
            }],
        ),
    ]);

    assert_eq!(dispatcher.step().await.unwrap(), 3);
    let get = |id: &'static str| {
        let store = store.clone();
        async move { store.get_delivery(id).await.unwrap().unwrap() }
    };
    assert_eq!(get("ok").await.status, DeliveryStatus::Delivered);
    assert_eq!(get("bad").await.status, DeliveryStatus::Dead);
    assert_eq!(get("bad").await.last_error.as_deref(), Some("404 no_service"));
    let flaky = get("flaky").await;
    assert_eq!(flaky.status, DeliveryStatus::Failed);
    assert_eq!(flaky.attempts, 1);
    // Attempt 1: base 10 s with equal jitter, so the retry is 5 to 10 s after now.
    let at = flaky.next_attempt_at.unwrap();
    assert!((T0 + 5_000..=T0 + 10_000).contains(&at), "{}", at - T0);

    // Not due yet: nothing is claimed until the clock reaches the retry time.
    clock.set(at - 1);
    assert_eq!(dispatcher.step().await.unwrap(), 0);
    clock.set(at);
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    assert_eq!(get("flaky").await.status, DeliveryStatus::Delivered);
    assert_eq!(get("flaky").await.attempts, 2);
    assert_eq!(channel.calls.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn step_gives_up_after_the_last_attempt() {
    let clock = Clock::manual(T0);
    let (store, channel, dispatcher) = setup(&clock, &["doomed"]).await;
    channel
        .answers
        .lock()
        .unwrap()
        .insert("doomed".into(), vec![retry("a"), retry("b"), retry("c"), retry("d")]);
    for _ in 0..3 {
        assert_eq!(dispatcher.step().await.unwrap(), 1);
        clock.advance(Duration::from_secs(3600));
    }
    let row = store.get_delivery("doomed").await.unwrap().unwrap();
    assert_eq!(row.status, DeliveryStatus::Dead);
    assert_eq!(row.last_error.as_deref(), Some("gave up after 3 attempts: c"));
    assert_eq!(dispatcher.step().await.unwrap(), 0, "a dead row is not claimed again");
}

#[test]
fn decide_honours_retry_after_within_the_cap() {
    let a = args();
    let after = |secs| SendOutcome::Retry {
        error: "429".into(),
        after: Some(Duration::from_secs(secs)),
    };
    let d = |attempt, outcome, jitter| decide(&a, attempt, outcome, T0, jitter, 0);
    assert!(matches!(d(1, after(30), 0.5), Some(Finish::Retry { at, .. }) if at == T0 + 30_000));
    assert!(matches!(d(1, after(10_000), 0.5), Some(Finish::Retry { at, .. }) if at == T0 + 300_000));
    assert!(matches!(d(2, retry("x"), 0.0), Some(Finish::Retry { at, .. }) if at == T0 + 10_000));
    assert!(matches!(d(2, retry("x"), 1.0), Some(Finish::Retry { at, .. }) if at == T0 + 20_000));
    assert!(matches!(d(3, retry("x"), 0.0), Some(Finish::Dead { .. })));
    assert!(matches!(
        d(1, SendOutcome::Delivered { dry_run: true }, 0.0),
        Some(Finish::Delivered { dry_run: true })
    ));
    // Credentials refused: back in the queue at the end of the lane's pause, attempt kept,
    // even at the last attempt; a lost lease records nothing.
    let refused = || SendOutcome::Credentials { error: "401".into() };
    assert!(
        matches!(decide(&a, 3, refused(), T0, 0.0, T0 + 30_000), Some(Finish::Requeue { at, .. }) if at == T0 + 30_000)
    );
    assert!(d(1, SendOutcome::LeaseLost, 0.0).is_none());
}

#[tokio::test]
async fn a_lease_is_taken_over_a_third_of_a_lease_after_its_end() {
    let clock = Clock::manual(T0);
    let (store, _, _) = setup(&clock, &["leased"]).await;
    assert_eq!(store.claim_due("a", T0, 60_000, 10, "SLACK").await.unwrap().len(), 1);
    assert!(
        store
            .claim_due("b", T0 + 59_999, 60_000, 10, "SLACK")
            .await
            .unwrap()
            .is_empty()
    );
    // Past the lease's end the owner no longer sends it (its check before a provider call
    // fails), but another task takes it over only a third of a lease later: the time the owner
    // has to renew it when the database comes back while its send was under way.
    assert!(!store.holds_lease("leased", "a", T0 + 60_001).await.unwrap());
    assert!(
        store
            .claim_due("b", T0 + 80_000, 60_000, 10, "SLACK")
            .await
            .unwrap()
            .is_empty()
    );
    let taken = store.claim_due("b", T0 + 80_001, 60_000, 10, "SLACK").await.unwrap();
    assert_eq!((taken.len(), taken[0].attempts), (1, 2));
    // The first owner's late answer cannot overwrite the new owner's.
    let late = Finish::Dead { error: "late".into() };
    assert!(!store.finish("leased", "a", T0 + 81_000, &late).await.unwrap());
}

#[test]
fn lanes_claim_what_they_can_send_within_half_a_lease() {
    let mut a = args();
    a.dispatch_batch = 100;
    a.dispatch_lease = Duration::from_secs(60);
    assert_eq!(lane::claim_limit(&a, Some(1.0)), 30);
    assert_eq!(lane::claim_limit(&a, Some(20.0)), 100);
    assert_eq!(lane::claim_limit(&a, None), 100);
    a.dispatch_lease = Duration::from_secs(1);
    assert_eq!(lane::claim_limit(&a, Some(50.0)), 25);
    assert_eq!(lane::claim_limit(&a, Some(0.1)), 1, "always at least one");
}

#[tokio::test]
async fn refused_credentials_pause_the_lane_without_using_attempts() {
    let clock = Clock::manual(T0);
    let (store, channel, dispatcher) = setup(&clock, &["otp"]).await;
    let refused = || SendOutcome::Credentials {
        error: "SENS 401: Authentication Failed".into(),
    };
    channel
        .answers
        .lock()
        .unwrap()
        .insert("otp".into(), vec![refused(), refused()]);
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    let row = store.get_delivery("otp").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempts),
        (DeliveryStatus::Failed, 0),
        "the attempt is given back"
    );
    assert_eq!(row.next_attempt_at, Some(T0 + 30_000), "due when the 30 s pause ends");
    // Paused: nothing is claimed, whatever is due, until the pause is over.
    clock.advance(Duration::from_secs(29));
    assert_eq!(dispatcher.step().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    // Refused again: the pause doubles.
    let row = store.get_delivery("otp").await.unwrap().unwrap();
    assert_eq!(row.next_attempt_at, Some(T0 + 30_000 + 60_000));
    clock.advance(Duration::from_secs(60));
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    let row = store.get_delivery("otp").await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Delivered, 1));
}

#[tokio::test]
async fn one_task_at_a_time_holds_a_lane() {
    let clock = Clock::manual(T0);
    let (store, first_channel, first) = setup(&clock, &["a"]).await;
    let (second_channel, second) = dispatcher(&store, &clock);
    assert_eq!(first.step().await.unwrap(), 1, "the first takes the lane");
    insert_slack(&store, &["b", "c"], T0).await;
    assert_eq!(
        second.step().await.unwrap(),
        0,
        "the lane is held: the second sends nothing"
    );
    // The first stops without giving the lane back (a crash); its lane lease runs out.
    clock.advance(Duration::from_secs(61));
    assert_eq!(second.step().await.unwrap(), 2);
    assert_eq!(first_channel.calls.lock().unwrap().len(), 1);
    assert_eq!(second_channel.calls.lock().unwrap().len(), 2);
    // A clean stop gives the lane back at once.
    second.release().await;
    assert_eq!(
        first.step().await.unwrap(),
        0,
        "nothing due, but the lane is free to take"
    );
}

#[tokio::test]
async fn a_deploy_uses_up_no_attempt() {
    let clock = Clock::manual(T0);
    let (store, _, dispatcher) = setup(&clock, &["r"]).await;
    let claimed = store
        .claim_due(dispatcher.owner(), T0, 60_000, 10, "SLACK")
        .await
        .unwrap();
    assert_eq!(claimed[0].attempts, 1);
    // The task stops before the send: the lease goes back with its attempt.
    dispatcher.release().await;
    let row = store.get_delivery("r").await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Pending, 0));
}

/// A provider that asks allim to wait shows as rate-limited until it delivers again; every
/// attempt is on record with its outcome.
#[tokio::test]
async fn a_provider_asking_to_wait_shows_as_throttled_and_attempts_are_recorded() {
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    insert_slack(&store, &["slow"], T0).await;
    let channel = Arc::new(Scripted::default());
    let mut channels = Channels::default();
    channels.register(NotificationType::Slack, channel.clone());
    let metrics = Arc::new(Metrics::new());
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(channels),
        args(),
        &crate::settings::defaults::<crate::channels::ChannelArgs>(),
        metrics.clone(),
        Wake::default(),
        clock.clone(),
    );
    channel.answers.lock().unwrap().insert(
        "slow".into(),
        vec![SendOutcome::Retry {
            error: "Slack 429: rate_limited".into(),
            after: Some(Duration::from_secs(20)),
        }],
    );
    let lane = |m: &Metrics| m.lane_stats().into_iter().find(|l| l.channel == "scripted").unwrap();
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    assert!(lane(&metrics).throttled, "the provider asked to wait");
    assert_eq!(lane(&metrics).retries, 1);
    clock.advance(Duration::from_secs(20));
    assert_eq!(dispatcher.step().await.unwrap(), 1);
    assert!(!lane(&metrics).throttled, "delivered again");
    let history: Vec<(i64, String, Option<String>)> = store
        .attempts_of("slow", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.attempt, a.outcome, a.error))
        .collect();
    assert_eq!(
        history,
        [
            (1, "retry".to_string(), Some("Slack 429: rate_limited".to_string())),
            (2, "delivered".to_string(), None)
        ]
    );
}

#[test]
fn a_busy_lane_claims_again_when_a_quarter_of_its_slots_are_free() {
    // The production default (32 in flight): claims of at least 8 rows under load.
    assert_eq!(lane::refill(32), 8);
    assert_eq!(lane::refill(100), 25);
    // A small lane still claims as soon as one slot is free.
    assert_eq!(lane::refill(3), 1);
    assert_eq!(lane::refill(1), 1);
}

/// Polls `done` every few milliseconds until it holds (10 s at most): waits for a condition,
/// not for a time.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A running dispatcher and what a test drives it with.
struct Running {
    metrics: Arc<Metrics>,
    wake: Wake,
    owner: String,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
}

/// The tests' settings with an interval of an hour: no claim comes from the timer while a test
/// runs, every claim is the start's or a wake's.
fn quiet() -> DispatchArgs {
    DispatchArgs {
        dispatch_interval: Duration::from_secs(3600),
        ..args()
    }
}

/// Runs a dispatcher whose one lane is Slack's, sent by `channel` at a rate at which the lane
/// claims as many rows as `config` allows.
fn run_slack(store: &Store, channel: Arc<dyn Channel>, clock: &Clock, config: DispatchArgs) -> Running {
    run_slack_with(store, channel, clock, config, Arc::new(Metrics::new()))
}

/// As [`run_slack`], recording into `metrics`.
fn run_slack_with(
    store: &Store,
    channel: Arc<dyn Channel>,
    clock: &Clock,
    config: DispatchArgs,
    metrics: Arc<Metrics>,
) -> Running {
    let mut channels = Channels::default();
    channels.register(NotificationType::Slack, channel);
    let wake = Wake::default();
    let mut rates = crate::settings::defaults::<crate::channels::ChannelArgs>();
    rates.slack.slack_rate_per_sec = 1000.0;
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(channels),
        config,
        &rates,
        metrics.clone(),
        wake.clone(),
        clock.clone(),
    );
    let owner = dispatcher.owner().to_string();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(shutdown.clone()));
    Running {
        metrics,
        wake,
        owner,
        shutdown,
        running,
    }
}

/// A running lane claims when woken for its own type, and a row finishing after a claim that
/// took everything due does not start another, empty claim (that was one wasted claiming
/// transaction per delivery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_lane_claims_once_per_wake_not_after_each_send() {
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    let channel = Arc::new(Scripted::default());
    let lane = run_slack(&store, channel.clone(), &clock, quiet());
    let claims = |found: &str| lane.metrics.claims.with_label_values(&["scripted", found]).get();
    until("the first claim", async || claims("none") >= 1).await;

    for i in 0..5 {
        let id = format!("w{i}");
        insert_slack(&store, &[&id], T0).await;
        // A wake for another lane's type does not make this one claim.
        lane.wake.raise_for(["SMS"]);
        lane.wake.raise_for(["SLACK"]);
        until("the delivery", async || {
            let row = store.get_delivery(&id).await.unwrap().unwrap();
            row.status == DeliveryStatus::Delivered
        })
        .await;
    }
    lane.shutdown.cancel();
    lane.running.await.unwrap();
    assert_eq!(channel.calls.lock().unwrap().len(), 5);
    assert_eq!(
        (claims("rows"), claims("none")),
        (5, 1),
        "one claim per wake, plus the first"
    );
}

/// A task that stops gives its lanes back, and a task waiting for one takes it within its
/// interval, not at its next renewal a third of a lease later (20 s at the default lease):
/// every deploy has the new tasks waiting so for the old ones' lanes. (Real time, as the other
/// running-lane tests: tokio's paused clock would run sqlx's pool timeouts out while SQLite's
/// worker thread works. The interval is 100 ms against a 20 s renewal, so the two schedules
/// are 200× apart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_lane_takes_a_lane_given_back_within_its_interval() {
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    // The old task holds the Slack lane, with the default lease (renewed every 20 s).
    assert!(store.hold_lane("SLACK", "old-task", T0, T0 + 60_000).await.unwrap());
    insert_slack(&store, &["after-deploy"], T0).await;
    let config = DispatchArgs {
        dispatch_interval: Duration::from_millis(100),
        ..args()
    };
    assert_eq!(config.dispatch_lease, Duration::from_secs(60));
    // The new task: its gauge starts at -1, so that 0 means "tried and found the lane held".
    let metrics = Arc::new(Metrics::new());
    let held = metrics.lane_held.with_label_values(&["scripted"]);
    held.set(-1);
    let channel = Arc::new(Scripted::default());
    let lane = run_slack_with(&store, channel.clone(), &clock, config, metrics);
    until("the new task finds the lane held", async || held.get() == 0).await;
    assert!(channel.calls.lock().unwrap().is_empty());

    // The old task stops and gives the lane back.
    store.release_lane("SLACK", "old-task", T0).await.unwrap();
    let given_back = std::time::Instant::now();
    until("the delivery", async || {
        let row = store.get_delivery("after-deploy").await.unwrap().unwrap();
        row.status == DeliveryStatus::Delivered
    })
    .await;
    let waited = given_back.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the lane was taken {waited:?} after it was given back (interval 100 ms, renewal 20 s)"
    );
    assert_eq!(held.get(), 1);
    lane.shutdown.cancel();
    lane.running.await.unwrap();
    assert_eq!(held.get(), 0, "a stopped task holds no lane");
}

/// `allim_lane_held` says whether this task sends the channel's deliveries: 0 once the
/// database cannot be reached, though the lane's lease may still be live there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_cannot_reach_the_database_shows_as_not_held() {
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    // A 300 ms lease: the lane renews it every 100 ms.
    let config = DispatchArgs {
        dispatch_lease: Duration::from_millis(300),
        ..quiet()
    };
    let metrics = Arc::new(Metrics::new());
    let held = metrics.lane_held.with_label_values(&["scripted"]);
    let lane = run_slack_with(&store, Arc::new(Scripted::default()), &clock, config, metrics.clone());
    until("the lane held", async || held.get() == 1).await;
    store.close().await;
    until("the lane shown as not held", async || held.get() == 0).await;
    lane.shutdown.cancel();
    lane.running.await.unwrap();
}

/// A Slack channel for the running-lane tests: every send is recorded; a row `t<i>` takes
/// (i + 1) × 100 ms; the first send of any other row waits until the test lets it go.
#[derive(Default)]
struct Holding {
    calls: Mutex<Vec<String>>,
    finished: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
}

impl Channel for Holding {
    fn name(&self) -> &'static str {
        "holding"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        async move {
            let first = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(job.delivery_id.clone());
                calls.iter().filter(|c| **c == job.delivery_id).count() == 1
            };
            match job.delivery_id.strip_prefix('t') {
                // Work that takes a while (the test's subject is what the lane does meanwhile).
                Some(i) => tokio::time::sleep(Duration::from_millis(100 * (1 + i.parse::<u64>().unwrap()))).await,
                None if first => self.release.notified().await,
                None => {}
            }
            self.finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SendOutcome::Delivered { dry_run: false }
        }
        .boxed()
    }
}

/// A row whose lease lapsed while its send was under way in this lane (the database was
/// unreachable longer than a lease and the takeover margin) can be claimed again by the same
/// lane; the lane does not start a second send of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_never_sends_a_row_it_is_still_sending() {
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    let channel = Arc::new(Holding::default());
    let lane = run_slack(&store, channel.clone(), &clock, quiet());
    let claims = || lane.metrics.claims.with_label_values(&["holding", "rows"]).get();
    insert_slack(&store, &["slow"], T0).await;
    lane.wake.raise_for(["SLACK"]);
    until("the send under way", async || channel.calls.lock().unwrap().len() == 1).await;
    // The lease and the takeover margin pass while the send is under way; a wake makes the
    // lane claim, and the claim finds the row (its lease lapsed, the owner is this lane).
    clock.advance(Duration::from_secs(81));
    lane.wake.raise_for(["SLACK"]);
    until("the second claim", async || claims() == 2).await;
    channel.release.notify_one();
    until("the delivery", async || {
        let row = store.get_delivery("slow").await.unwrap().unwrap();
        row.status == DeliveryStatus::Delivered
    })
    .await;
    lane.shutdown.cancel();
    lane.running.await.unwrap();
    assert_eq!(*channel.calls.lock().unwrap(), ["slow"], "sent once");
}

/// At shutdown a lane lets its rows in flight finish and keeps renewing their leases every
/// third of a lease, even while other rows finish more often than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_lane_renews_its_rows_while_others_finish() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = Clock::manual(T0);
    let store = Store::memory().await;
    let channel = Arc::new(Holding::default());
    // A 1 s lease: renewed every 333 ms; the 20 other rows finish one every 100 ms for 2 s.
    let config = DispatchArgs {
        dispatch_lease: Duration::from_secs(1),
        dispatch_batch: 32,
        dispatch_concurrency: 32,
        ..quiet()
    };
    let lane = run_slack(&store, channel.clone(), &clock, config);
    let mut ids: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    ids.push("stuck".into());
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    insert_slack(&store, &refs, T0).await;
    lane.wake.raise_for(["SLACK"]);
    until("all 21 sends under way", async || {
        channel.calls.lock().unwrap().len() == 21
    })
    .await;
    lane.shutdown.cancel();
    // From now on a renewal writes a lease that is live at the clock's new time.
    clock.advance(Duration::from_secs(10));
    until("the stuck row's lease renewed", async || {
        store.holds_lease("stuck", &lane.owner, clock.now_ms()).await.unwrap()
    })
    .await;
    let finished = channel.finished.load(SeqCst);
    channel.release.notify_one();
    lane.running.await.unwrap();
    assert!(
        finished < 20,
        "renewed while the other rows were still finishing (only after all 20 had: {finished})"
    );
}
