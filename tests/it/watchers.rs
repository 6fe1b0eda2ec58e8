//! Watchers against a local JSON server whose items change between polls, on MariaDB, with
//! the Slack stand-in: the first poll is silent, each new item is notified once — across a
//! restart and with two processes polling — identity by hash when items have no id, a digest
//! over a window on a controlled clock, and a broken answer named in the error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, spawn_on, test_clock};
use crate::providers::{SlackServer, serve};
use crate::support::eventually;

/// What the sales API answers (status, body), and the Authorization headers it was sent.
type Shared = (Arc<Mutex<(u16, String)>>, Arc<Mutex<Vec<String>>>);

/// The sales API: `GET /api/sales` answers whatever `answer` holds (status, body).
struct SalesApi {
    base: String,
    answer: Arc<Mutex<(u16, String)>>,
    auth: Arc<Mutex<Vec<String>>>,
}

impl SalesApi {
    async fn start() -> SalesApi {
        let answer = Arc::new(Mutex::new((200, json!({"data": {"sales": []}}).to_string())));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route(
                "/api/sales",
                axum::routing::get(
                    |State((answer, auth)): State<Shared>, headers: axum::http::HeaderMap| async move {
                        auth.lock().unwrap().push(
                            headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string(),
                        );
                        let (status, body) = answer.lock().unwrap().clone();
                        (
                            StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/json")],
                            body,
                        )
                            .into_response()
                    },
                ),
            )
            .with_state((answer.clone(), auth.clone()));
        let addr = serve(router).await;
        SalesApi {
            base: format!("http://{addr}"),
            answer,
            auth,
        }
    }

    /// Lists these sales (no id: an amount and a time each).
    fn sales(&self, sales: &[(i64, &str)]) {
        let list: Vec<Value> = sales.iter().map(|(a, at)| json!({"amount": a, "at": at})).collect();
        *self.answer.lock().unwrap() = (200, json!({"data": {"sales": list}}).to_string());
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }
}

fn sales_watcher(api: &SalesApi, digest: bool) -> String {
    let notify = if digest {
        r#"[[watchers.notify]]
notificationType = "APP_NOTIFICATION"
userId = "owner"
title = "매출 {count}건, 합계 {sum:#,###}원"
body = "{first}"
[watchers.digest]
every = "1d"
sum = "amount"
first = 2
item = "{amount:#,###}원 {at:%H:%M}""#
    } else {
        r#"[[watchers.notify]]
notificationType = "SLACK"
channel = "sales"
text = "새 주문 {amount:#,###}원 ({at:%H:%M KST})""#
    };
    format!(
        r#"timezone = "Asia/Seoul"
[[watchers]]
name = "sales"
url = "{}/api/sales"
headers = {{ Authorization = "Bearer ${{CARGO_PKG_NAME}}" }}
interval = "10s"
items = "/data/sales"
identity = ["amount", "at"]
{notify}
"#,
        api.base
    )
}

async fn app(db: &TestDb, toml: &str, slack: &SlackServer, clock: &allim::clock::Clock) -> TestApp {
    let (toml, hook) = (toml.to_string(), format!("{}/services/T0SALES", slack.base_url));
    spawn_on(
        &db.url,
        move |c| {
            c.watchers.watchers_toml = Some(toml);
            c.channels.slack.slack_webhooks = vec![allim::channels::slack::SlackWebhook {
                name: "sales".into(),
                url: secrecy::SecretString::from(hook),
            }];
        },
        |b| b.clock(clock.clone()),
    )
    .await
}

async fn poll(app: &TestApp) -> (u16, Value) {
    json(app.post("/v1/watchers/sales/poll", &json!({})).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sales_arrive_once_across_restarts_and_two_processes() {
    let api = SalesApi::start().await;
    let slack = SlackServer::start().await;
    slack.state.no_throttle.store(true, std::sync::atomic::Ordering::SeqCst);
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let toml = sales_watcher(&api, false);
    api.sales(&[(10000, "2023-08-11T02:30:00Z"), (25000, "2023-08-11T02:35:00Z")]);
    let a = app(&db, &toml, &slack, &clock).await;
    let b = app(&db, &toml, &slack, &clock).await;

    // The first poll records what is there and says nothing (both processes run their loops;
    // whichever takes the lease polls).
    eventually(Duration::from_secs(10), "the first poll", || async {
        a.get_ok("/v1/watchers").await["items"][0]["initialized"] == true
    })
    .await;
    assert_eq!(
        a.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "first poll is silent"
    );
    assert_eq!(
        api.auth.lock().unwrap()[0],
        "Bearer allim",
        "header values from the environment (cargo sets CARGO_PKG_NAME)"
    );

    // A new sale: within one interval (the clock moves 10 s), one Slack message.
    api.sales(&[
        (10000, "2023-08-11T02:30:00Z"),
        (25000, "2023-08-11T02:35:00Z"),
        (1234000, "2023-08-11T03:00:00Z"),
    ]);
    clock.advance(Duration::from_secs(10));
    eventually(Duration::from_secs(15), "the new sale reaches Slack", || async {
        !slack.posted().is_empty()
    })
    .await;
    // Both processes poll again, by schedule and on demand: nothing new.
    clock.advance(Duration::from_secs(10));
    for app in [&a, &b] {
        let (s, r) = poll(app).await;
        assert_eq!((s, r["new"].as_i64()), (200, Some(0)), "{r}");
    }
    // A restart: still nothing new.
    a.stop().await;
    let a = app(&db, &toml, &slack, &clock).await;
    let (_, r) = poll(&a).await;
    assert_eq!(r["new"], 0, "{r}");
    // Same amount, other time: a different sale (identity is amount + time, hashed).
    api.sales(&[(10000, "2023-08-11T02:30:00Z"), (10000, "2023-08-11T04:00:00Z")]);
    let (_, r) = poll(&b).await;
    assert_eq!((r["new"].as_i64(), r["notified"].as_i64()), (Some(1), Some(1)), "{r}");
    eventually(Duration::from_secs(15), "two messages in all", || async {
        slack.posted().len() == 2
    })
    .await;
    let texts: Vec<String> = slack.posted().into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        texts,
        ["새 주문 1,234,000원 (12:00 KST)", "새 주문 10,000원 (13:00 KST)"]
    );
    assert_eq!(a.count("SELECT COUNT(*) FROM deliveries").await, 2, "each sale once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_digest_reports_count_and_sum() {
    let api = SalesApi::start().await;
    let slack = SlackServer::start().await;
    let db = TestDb::new(Db::MariaDb).await;
    // 2026-11-23 09:00 KST.
    let clock = allim::clock::Clock::manual(
        chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+09:00")
            .unwrap()
            .timestamp_millis(),
    );
    let app = app(&db, &sales_watcher(&api, true), &slack, &clock).await;
    assert_eq!(poll(&app).await.0, 200, "first poll (empty)");
    api.sales(&[(10000, "2026-11-23T01:00:00Z"), (20000, "2026-11-23T02:00:00Z")]);
    let (_, r) = poll(&app).await;
    assert_eq!(
        (r["new"].as_i64(), r["notified"].as_i64()),
        (Some(2), Some(0)),
        "into the digest: {r}"
    );
    api.sales(&[
        (10000, "2026-11-23T01:00:00Z"),
        (20000, "2026-11-23T02:00:00Z"),
        (5500, "2026-11-23T05:00:00Z"),
    ]);
    poll(&app).await;
    let w = app.get_ok("/v1/watchers").await;
    assert_eq!(w["items"][0]["digest"]["count"], 3, "{w}");
    assert_eq!(
        w["items"][0]["digest"]["windowStart"], "2026-11-22T15:00:00.000Z",
        "{w}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "nothing before the day ends"
    );
    // The day ends (midnight in Seoul): one message with the count and the sum.
    clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-24T00:00:01+09:00")
            .unwrap()
            .timestamp_millis(),
    );
    // (The background loop may take this poll first: then it sends the digest.)
    poll(&app).await;
    eventually(Duration::from_secs(10), "the digest", || async {
        app.count("SELECT COUNT(*) FROM deliveries").await == 1
    })
    .await;
    let inbox = app.get_ok("/v1/users/owner/notifications").await;
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["title"], "매출 3건, 합계 35,500원");
    assert_eq!(items[0]["body"], "10,000원 10:00\n20,000원 11:00");
    // Again: nothing more (the window is closed and the next one is empty).
    clock.advance(Duration::from_secs(86_400));
    poll(&app).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_answer_is_named_never_zero_new_items() {
    let api = SalesApi::start().await;
    let slack = SlackServer::start().await;
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let app = app(&db, &sales_watcher(&api, false), &slack, &clock).await;
    for (status, body, says) in [
        (200, r#"{"data": {"orders": []}}"#, "/data/sales is not in the answer"),
        (
            200,
            r#"{"data": {"sales": {"a": 1}}}"#,
            "/data/sales is an object, not an array",
        ),
        (200, "<html>maintenance</html>", "is not JSON"),
        (503, "{}", "answered 503"),
    ] {
        api.answer(status, body);
        let (s, r) = poll(&app).await;
        assert_eq!(s, 502, "{r}");
        assert!(r["message"].as_str().unwrap().contains(says), "{says}: {r}");
        let w = app.get_ok("/v1/watchers").await;
        assert!(w["items"][0]["lastError"].as_str().unwrap().contains(says), "{w}");
    }
    let ready = app.get_ok("/readyz").await;
    assert!(
        ready["failing_watchers"][0].as_str().unwrap().starts_with("sales: "),
        "{ready}"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Each failed poll counted (the background loop may have polled once more on its own).
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"allim_watcher_polls_total{outcome="error",watcher="sales"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no error count: {metrics}"));
    assert!(errors >= 4.0, "{metrics}");
    // Fixed: the next poll succeeds and clears the error.
    api.sales(&[(1, "2026-01-01T00:00:00Z")]);
    let (s, _) = poll(&app).await;
    assert_eq!(s, 200);
    assert!(app.get_ok("/v1/watchers").await["items"][0].get("lastError").is_none());
    app.stop().await;
}
