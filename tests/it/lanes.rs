//! Lanes: a slow provider delays no other channel; two tasks never send one delivery twice;
//! refused credentials pause a lane without burning attempts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use allim::config::Config;
use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, settled, spawn_on, test_clock};
use crate::providers::{SensServer, SlackServer, with_sens};
use crate::support::eventually;

fn with_slack(c: &mut Config, slack: &SlackServer) {
    c.channels.slack.slack_webhooks = vec![allim::channels::slack::SlackWebhook {
        name: "default".into(),
        url: secrecy::SecretString::from(format!("{}/services/T0OPS", slack.base_url)),
    }];
}

async fn send(app: &TestApp, body: Value) -> String {
    let (s, b) = json(app.post("/v1/notifications", &body).await).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// A Slack webhook that hangs holds one slot of the Slack lane and nothing else: an SMS sent
/// meanwhile goes out at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_does_not_delay_another_channel() {
    let db = TestDb::new(Db::Sqlite).await;
    let sens = SensServer::start().await;
    let slack = SlackServer::start().await;
    slack.state.no_throttle.store(true, Ordering::SeqCst);
    slack.state.hold.store(true, Ordering::SeqCst);
    let app = spawn_on(
        &db.url,
        |c| {
            with_sens(c, &sens);
            with_slack(c, &slack);
            c.http.http_timeout = Duration::from_secs(20);
        },
        |b| b,
    )
    .await;
    let slow = send(&app, json!({"notificationType": "SLACK", "text": "deploy done"})).await;
    eventually(Duration::from_secs(10), "Slack is hanging on the post", || async {
        slack.state.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    let otp = send(
        &app,
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "[allim] 123456"}),
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the SMS is delivered while Slack hangs",
        || async { app.get_ok(&format!("/v1/deliveries/{otp}")).await["status"] == "delivered" },
    )
    .await;
    assert_eq!(slack.state.waiting.load(Ordering::SeqCst), 1, "Slack still hangs");
    assert_eq!(app.get_ok(&format!("/v1/deliveries/{slow}")).await["status"], "pending");
    slack.state.gate.notify_one();
    eventually(Duration::from_secs(10), "then Slack too", || async {
        app.get_ok(&format!("/v1/deliveries/{slow}")).await["status"] == "delivered"
    })
    .await;
    app.stop().await;
}

/// Two tasks on one database, a lease (1 s) shorter than it takes to send the backlog at the
/// channel's rate (60 posts at 40 a second): every message is posted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tasks_never_post_one_delivery_twice() {
    let db = TestDb::new(Db::MariaDb).await;
    let slack = SlackServer::start().await;
    slack.state.no_throttle.store(true, Ordering::SeqCst);
    let configure = |c: &mut Config| {
        with_slack(c, &slack);
        c.channels.slack.slack_rate_per_sec = 40.0;
        c.dispatch.dispatch_lease = Duration::from_secs(1);
        c.http.http_timeout = Duration::from_millis(500);
    };
    let a = spawn_on(&db.url, configure, |b| b).await;
    let b = spawn_on(&db.url, configure, |b| b).await;
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"notificationType": "SLACK", "text": format!("m{i}")}))
        .collect();
    let (s, body) = json(
        a.post("/v1/notifications/batch", &json!({"notifications": items}))
            .await,
    )
    .await;
    assert_eq!((s, body["accepted"].as_i64()), (200, Some(60)), "{body}");
    eventually(Duration::from_secs(30), "all 60 delivered", || async {
        a.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .await
            == 60
    })
    .await;
    let mut texts: Vec<String> = slack.posted().into_iter().map(|(_, t)| t).collect();
    let posts = texts.len();
    texts.sort();
    texts.dedup();
    assert_eq!((posts, texts.len()), (60, 60), "each message posted once");
    a.stop().await;
    b.stop().await;
}

/// SENS refuses the credentials three times (a key rotation half done), then takes them: the
/// lane pauses and resumes, and the SMS ends delivered on its first counted attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_pause_then_deliver() {
    let db = TestDb::new(Db::Sqlite).await;
    let sens = SensServer::start().await;
    for _ in 0..3 {
        sens.state.fail_next.lock().unwrap().push_back(Some(401));
    }
    let clock = test_clock();
    let app = spawn_on(&db.url, |c| with_sens(c, &sens), |b| b.clock(clock.clone())).await;
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "x"}),
    )
    .await;
    eventually(Duration::from_secs(10), "the lane pauses", || async {
        app.get("/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains("allim_lane_paused{channel=\"sms\"} 1")
    })
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(1)),
        "{d}"
    );
    assert_eq!(sens.accepted().len(), 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("allim_lane_paused{channel=\"sms\"} 0"), "{metrics}");
    app.stop().await;
}
