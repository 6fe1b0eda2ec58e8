//! The SQS ingress against moto with the real aws-sdk-sqs client, and MariaDB (or SQLite).

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::helpers::{Db, TestApp, TestDb, json, spawn_on};
use crate::support::{FlakyProxy, create_queue, eventually, queue_depth, send_all, sqs_client};

fn app_body(user: &str, title: &str) -> String {
    json!({"notificationType": "APP_NOTIFICATION", "userId": user, "title": title}).to_string()
}

async fn consumer(db_url: &str, queue_url: &str) -> TestApp {
    consumer_with(db_url, queue_url, |_| {}).await
}

/// The consumer verifies SNS envelopes on the queue against [`crate::sns::TOPIC`] and the
/// local certificate server.
fn verify_with(c: &mut allim::config::Config, certs: &crate::sns::CertServer) {
    c.sns.sns_topic_arns = vec![crate::sns::TOPIC.into()];
    c.sns.sns_insecure_cert_url_prefix = Some(certs.base.clone());
}

async fn consumer_with(db_url: &str, queue_url: &str, configure: impl FnOnce(&mut allim::config::Config)) -> TestApp {
    let queue_url = queue_url.to_string();
    spawn_on(
        db_url,
        |c| {
            c.sqs.sqs_queue_url = Some(queue_url);
            configure(c);
        },
        |b| b.sqs_client(sqs_client()),
    )
    .await
}

async fn inbox_count(app: &TestApp, user: &str) -> i64 {
    app.get_ok(&format!("/v1/users/{user}/notifications/unread-count"))
        .await["unread"]
        .as_i64()
        .unwrap()
}

both!(
    happy_path_in_batches,
    duplicates_and_poison_messages,
    sns_envelope_is_unwrapped
);

async fn happy_path_in_batches(db: Db) {
    let test_db = TestDb::new(db).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let bodies: Vec<String> = (0..35).map(|i| app_body("u1", &format!("n{i}"))).collect();
    send_all(&client, &queue, &bodies, None).await;
    let app = consumer(&test_db.url, &queue).await;
    eventually(Duration::from_secs(30), "35 inbox rows", || async {
        inbox_count(&app, "u1").await == 35
    })
    .await;
    eventually(Duration::from_secs(10), "queue drained", || async {
        queue_depth(&client, &queue).await == 0
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_messages_accepted_total{source=\"sqs\"} 35"),
        "{metrics}"
    );
    // SQS delivers at least once (moto, with two pollers, sometimes hands a message to both):
    // whatever came twice was recognised as a duplicate.
    let value = |name: &str| -> i64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        value("allim_messages_received_total{source=\"sqs\"}"),
        35 + value("allim_messages_duplicate_total{source=\"sqs\"}"),
        "{metrics}"
    );
    let sources: i64 = app
        .count("SELECT COUNT(*) FROM deliveries WHERE source = 'sqs' AND status = 'delivered'")
        .await;
    assert_eq!(sources, 35);
    app.stop().await;
}

async fn duplicates_and_poison_messages(db: Db) {
    let test_db = TestDb::new(db).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let keyed =
        json!({"notificationType": "APP_NOTIFICATION", "userId": "u2", "title": "once", "idempotencyKey": "k-1"})
            .to_string();
    let bodies = vec![
        keyed.clone(),
        keyed.clone(),
        "this is not json".to_string(),
        json!({"notificationType": "FAX", "to": "x@y.z"}).to_string(),
        json!({"notificationType": "APP_NOTIFICATION", "userId": "u2", "title": ""}).to_string(),
    ];
    send_all(&client, &queue, &bodies, None).await;
    let app = consumer(&test_db.url, &queue).await;
    eventually(Duration::from_secs(30), "5 messages handled and deleted", || async {
        queue_depth(&client, &queue).await == 0
            && app
                .count("SELECT COUNT(*) FROM deliveries WHERE status = 'rejected'")
                .await
                == 3
    })
    .await;
    // The same key twice, even in one batch: one delivery, one inbox row.
    assert_eq!(inbox_count(&app, "u2").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE idempotency_key = 'k-1'")
            .await,
        1
    );
    // Sent again later: still one.
    send_all(&client, &queue, &[keyed], None).await;
    eventually(Duration::from_secs(20), "redelivered message deleted", || async {
        queue_depth(&client, &queue).await == 0
    })
    .await;
    assert_eq!(inbox_count(&app, "u2").await, 1);

    // Poison messages are kept with their raw body and the reason.
    let page = app.get_ok("/v1/dead-letters?status=rejected").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    let raw: Vec<&str> = items.iter().map(|i| i["rawBody"].as_str().unwrap()).collect();
    assert!(raw.contains(&"this is not json"));
    let reasons: Vec<&str> = items.iter().map(|i| i["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("FAX")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("title:")), "{reasons:?}");
    let email = items
        .iter()
        .find(|i| i["reason"].as_str().unwrap().contains("FAX"))
        .unwrap();
    assert_eq!(email["notificationType"], "UNKNOWN");
    assert!(email["idempotencyKey"].as_str().unwrap().starts_with("sqs:"));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_messages_rejected_total{source=\"sqs\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("allim_messages_duplicate_total{source=\"sqs\"} 2"),
        "{metrics}"
    );

    // A rejected message that is still invalid cannot be redriven as it is.
    let id = items.iter().find(|i| i["rawBody"] == "this is not json").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = json(app.post(&format!("/v1/dead-letters/{id}/redrive"), &json!({})).await).await;
    assert_eq!((s, b["error"].as_str()), (422, Some("malformed_json")), "{b}");
    app.stop().await;
}

async fn sns_envelope_is_unwrapped(db: Db) {
    let test_db = TestDb::new(db).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let certs = crate::sns::cert_server().await;
    let envelope = |id: &str, message: &str| {
        let mut m = crate::sns::notification(&certs, message, "1");
        m["MessageId"] = json!(id);
        crate::sns::sign(&mut m);
        m.to_string()
    };
    let inner = app_body("u3", "from sns");
    // SNS retried into the queue: the same SNS MessageId twice.
    let bodies = vec![
        envelope("6e1c-1", &inner),
        envelope("6e1c-1", &inner),
        envelope("6e1c-2", "not json"),
    ];
    send_all(&client, &queue, &bodies, None).await;
    let app = consumer_with(&test_db.url, &queue, |c| verify_with(c, &certs)).await;
    eventually(Duration::from_secs(30), "envelopes handled", || async {
        queue_depth(&client, &queue).await == 0 && app.count("SELECT COUNT(*) FROM deliveries").await == 2
    })
    .await;
    let page = app.get_ok("/v1/users/u3/notifications").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["title"], "from sns");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE idempotency_key = 'sns:6e1c-1'")
            .await,
        1
    );
    let rejected = app.get_ok("/v1/dead-letters?status=rejected").await;
    assert!(
        rejected["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("SNS Message is not valid JSON")
    );
    app.stop().await;
}

/// The low-cost path: CloudWatch → SNS → SQS → allim. An alarm in an SNS envelope on the queue
/// is routed by the alarm rules (here to SMS, a dry run) and recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_through_the_queue_is_routed() {
    let test_db = TestDb::new(Db::Sqlite).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nname = \"all\"\nalarm = \"*\"\nsms = [\"010-1111-2222\"]\n",
    )
    .unwrap();
    let alarm = json!({"AlarmName": "queue-age", "AWSAccountId": "123456789012", "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [700.0 (22/11/26 01:00:00)] was greater than the threshold (600.0).",
        "StateChangeTime": "2026-11-22T01:00:00.000+0000", "Region": "Asia Pacific (Seoul)",
        "AlarmArn": "arn:aws:cloudwatch:ap-northeast-2:123456789012:alarm:queue-age", "OldStateValue": "OK",
        "Trigger": {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 600.0, "Unit": null}});
    let certs = crate::sns::cert_server().await;
    let mut signed = crate::sns::notification(&certs, &alarm.to_string(), "1");
    signed["MessageId"] = json!("alarm-msg-1");
    crate::sns::sign(&mut signed);
    let envelope = signed.to_string();
    // The same alarm forged by a producer on the queue: signed by nobody, a date far ahead
    // (which would make every later real change look stale).
    let mut forged = signed.clone();
    forged["MessageId"] = json!("forged-1");
    forged["Message"] = json!(
        alarm
            .to_string()
            .replace("2026-11-22T01:00:00.000+0000", "2099-01-01T00:00:00.000+0000")
    );
    send_all(&client, &queue, &[envelope.clone(), envelope, forged.to_string()], None).await;
    let app = consumer_with(&test_db.url, &queue, |c| {
        verify_with(c, &certs);
        c.alarms.alarm_rules = Some(rules);
    })
    .await;
    eventually(Duration::from_secs(30), "the alarm SMS delivered", || async {
        queue_depth(&client, &queue).await == 0
            && app
                .count("SELECT COUNT(*) FROM deliveries WHERE notification_type = 'SMS' AND status = 'delivered'")
                .await
                == 1
    })
    .await;
    let alarms = app.get_ok("/v1/alarms").await;
    let outcomes: Vec<&str> = alarms["items"][0]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["sent"],
        "the copy was recognised by its SNS MessageId; the forgery never routed"
    );
    let rejected = app.get_ok("/v1/dead-letters?status=rejected").await;
    assert_eq!(rejected["items"].as_array().unwrap().len(), 1, "{rejected}");
    assert!(
        rejected["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("SNS envelope refused: the signature does not verify"),
        "{rejected}"
    );
    let payload: String = app
        .store
        .scalar("SELECT payload FROM deliveries WHERE notification_type = 'SMS'")
        .await
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        payload["content"],
        "[ALARM] queue-age (ap-northeast-2) 10:00 KST 700.0 > 600.0"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_group_order_is_kept() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let client = sqs_client();
    let queue = create_queue(&client, true).await;
    let bodies: Vec<String> = (0..30).map(|i| app_body("u4", &format!("{i:02}"))).collect();
    send_all(&client, &queue, &bodies, Some("user-u4")).await;
    let app = consumer(&test_db.url, &queue).await;
    eventually(Duration::from_secs(30), "30 rows", || async {
        inbox_count(&app, "u4").await == 30
    })
    .await;
    let page = app.get_ok("/v1/users/u4/notifications?limit=100").await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..30).rev().map(|i| format!("{i:02}")).collect();
    assert_eq!(titles, expected, "newest first = the reverse of the send order");
    app.stop().await;
}

/// MariaDB goes away while messages arrive: nothing is deleted, readiness says so, and once
/// the database is back every message lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_then_back_loses_nothing() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let (proxy, via_proxy) = FlakyProxy::in_front_of(&test_db.url).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let app = consumer_with(&via_proxy, &queue, |c| {
        c.db.db_acquire_timeout = Duration::from_millis(200)
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.set_up(false);
    let bodies: Vec<String> = (0..12).map(|i| app_body("u5", &format!("n{i}"))).collect();
    send_all(&client, &queue, &bodies, None).await;
    eventually(Duration::from_secs(30), "readiness reports the database", || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    assert_eq!(
        queue_depth(&client, &queue).await,
        12,
        "nothing deleted while the database is down"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("allim_sqs_consumer_backoff 1"), "{metrics}");

    proxy.set_up(true);
    eventually(
        Duration::from_secs(60),
        "all 12 stored after the database returns",
        || async { app.get("/readyz").await.status() == 200 && inbox_count(&app, "u5").await == 12 },
    )
    .await;
    eventually(Duration::from_secs(20), "queue drained", || async {
        queue_depth(&client, &queue).await == 0
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_messages_received_total{source=\"sqs\"} 12"),
        "each message received once: held through the outage, not received again: {metrics}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries").await,
        12,
        "no double insert"
    );
    app.stop().await;
}

/// Two allim processes on one queue and one database: every message lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_queue_and_database() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let push = crate::support::ScriptedChannel::default();
    // Both processes share one clock the test moves (as tasks share the wall clock).
    let clock = crate::helpers::test_clock();
    let start = |push: crate::support::ScriptedChannel| {
        let queue = queue.clone();
        let url = test_db.url.clone();
        let clock = clock.clone();
        async move {
            spawn_on(
                &url,
                |c| c.sqs.sqs_queue_url = Some(queue),
                |b| {
                    b.sqs_client(sqs_client())
                        .channel(allim::channels::NotificationType::Push, std::sync::Arc::new(push))
                        .clock(clock)
                },
            )
            .await
        }
    };
    let a = start(push.clone()).await;
    let b = start(push.clone()).await;
    let due = clock.now_ms() + 3_600_000;
    let soon = chrono::DateTime::from_timestamp_millis(due).unwrap().to_rfc3339();
    let mut bodies: Vec<String> = Vec::new();
    for i in 0..40 {
        bodies.push(app_body("u6", &format!("now{i}")));
        // Scheduled ones are released by whichever dispatcher claims them first.
        bodies.push(json!({"notificationType": "APP_NOTIFICATION", "userId": "u6", "title": format!("later{i}"), "deliverAt": soon}).to_string());
        bodies.push(json!({"notificationType": "PUSH", "tokens": [format!("tok{i}")], "title": "t"}).to_string());
    }
    send_all(&client, &queue, &bodies, None).await;
    eventually(Duration::from_secs(60), "80 delivered and 40 scheduled", || async {
        a.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .await
            == 80
            && a.count("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
                .await
                == 40
    })
    .await;
    // The scheduled time comes, on both processes' clock.
    clock.set(due);
    eventually(Duration::from_secs(60), "120 deliveries delivered", || async {
        a.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .await
            == 120
    })
    .await;
    eventually(Duration::from_secs(20), "queue drained", || async {
        queue_depth(&client, &queue).await == 0
    })
    .await;
    assert_eq!(inbox_count(&a, "u6").await, 80);
    assert_eq!(a.count("SELECT COUNT(*) FROM deliveries").await, 120);
    let calls = push.calls();
    let mut unique = calls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (calls.len(), unique.len()),
        (40, 40),
        "each push sent exactly once across both processes"
    );
    let handled = |m: &str| -> i64 {
        m.lines()
            .find(|l| l.starts_with("allim_messages_received_total{source=\"sqs\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let ma = a.get("/metrics").await.text().await.unwrap();
    let mb = b.get("/metrics").await.text().await.unwrap();
    assert!(handled(&ma) + handled(&mb) >= 120);
    a.stop().await;
    b.stop().await;
}

/// The real binary gets SIGTERM while it consumes: it exits 0, and a second run finishes the
/// queue — the rest of the first batch, if any, and a second batch sent only after the first
/// run stopped — with no message lost and none stored twice. Independent of timing: whether
/// the first run drained its batch before the signal or not, the assertions hold or fail alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_loses_nothing() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let total = 300;
    let first_batch = 150;
    let bodies: Vec<String> = (0..total).map(|i| app_body("u7", &format!("n{i}"))).collect();
    send_all(&client, &queue, &bodies[..first_batch], None).await;
    let store = {
        let mut c = allim::config::Config::for_tests(test_db.url.clone());
        c.db.auto_migrate = false;
        allim::store::Store::connect(&c.db).await.unwrap()
    };
    let stored = || async { store.scalar::<i64>("SELECT COUNT(*) FROM inbox").await.unwrap_or(0) };
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_allim"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &test_db.url)
            .env("ALLIM_LISTEN", "127.0.0.1:0")
            .env("ALLIM_SQS_QUEUE_URL", &queue)
            .env("ALLIM_SQS_WAIT_TIME", "1s")
            .env("ALLIM_SQS_POLLERS", "1")
            .env("AWS_ENDPOINT_URL_SQS", crate::support::moto_endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("ALLIM_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start allim")
    };
    let mut first = run();
    eventually(Duration::from_secs(60), "the first run consumed some", || async {
        stored().await > 0
    })
    .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "allim exits 0 on SIGTERM: {exit:?}");
    let after_first = stored().await;
    assert!((1..=first_batch as i64).contains(&after_first), "{after_first}");
    send_all(&client, &queue, &bodies[first_batch..], None).await;

    let mut second = run();
    eventually(
        Duration::from_secs(120),
        "the second run finished the queue",
        || async { stored().await == total as i64 },
    )
    .await;
    std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || second.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success());
    let distinct: i64 = store.scalar("SELECT COUNT(DISTINCT title) FROM inbox").await.unwrap();
    assert_eq!(
        (stored().await, distinct),
        (total as i64, total as i64),
        "every message once"
    );
    assert_eq!(queue_depth(&client, &queue).await, 0);
    store.close().await;
}

/// One oversized value in a batch on MariaDB (strict SQL mode): the message is stored as
/// rejected with a bounded reason, and the nine others of its batch are delivered — not the
/// whole batch failing over and over until the queue's DLQ takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_value_is_rejected_alone() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let app = consumer(&test_db.url, &queue).await;
    let mut bodies: Vec<String> = (0..8).map(|i| app_body("u9", &format!("n{i}"))).collect();
    bodies.push(json!({"notificationType": "X".repeat(70_000), "userId": "u9", "title": "t"}).to_string());
    bodies.push(
        json!({"AlarmName": "a".repeat(1000), "AWSAccountId": "123456789012", "NewStateValue": "ALARM",
            "StateChangeTime": "2026-11-22T01:00:00.000+0000", "Region": "Asia Pacific (Seoul)"})
        .to_string(),
    );
    send_all(&client, &queue, &bodies, None).await;
    eventually(
        Duration::from_secs(20),
        "8 stored, 2 rejected, queue drained",
        || async {
            inbox_count(&app, "u9").await == 8
                && app
                    .count("SELECT COUNT(*) FROM deliveries WHERE status = 'rejected'")
                    .await
                    == 2
                && queue_depth(&client, &queue).await == 0
        },
    )
    .await;
    let longest: i64 = app
        .count("SELECT MAX(LENGTH(last_error)) FROM deliveries WHERE status = 'rejected'")
        .await;
    assert!(longest <= 4 * 1000, "reasons are bounded ({longest} bytes)");
    let raw: i64 = app
        .count("SELECT MAX(LENGTH(payload)) FROM deliveries WHERE status = 'rejected'")
        .await;
    assert!(raw > 70_000, "the raw body is kept whole");
    app.stop().await;
}

/// Counts ReceiveMessage calls in flight at once, at the SDK's own interceptor hooks.
#[derive(Debug, Default)]
struct Receives {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    total: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Clone)]
struct IsReceive;

impl aws_smithy_types::config_bag::Storable for IsReceive {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct CountReceives(std::sync::Arc<Receives>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for CountReceives {
    fn name(&self) -> &'static str {
        "CountReceives"
    }

    fn read_before_execution(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use std::sync::atomic::Ordering::SeqCst;
        if ctx
            .input()
            .downcast_ref::<aws_sdk_sqs::operation::receive_message::ReceiveMessageInput>()
            .is_some()
        {
            cfg.interceptor_state().store_put(IsReceive);
            let now = self.0.now.fetch_add(1, SeqCst) + 1;
            self.0.max.fetch_max(now, SeqCst);
            self.0.total.fetch_add(1, SeqCst);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _ctx: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if cfg.load::<IsReceive>().is_some() {
            self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Idle, one poller long-polls alone (the idle cost in the README); full batches call the
/// others, up to ALLIM_SQS_POLLERS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pollers_scale_with_traffic() {
    use std::sync::atomic::Ordering::SeqCst;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let receives = std::sync::Arc::new(Receives::default());
    let counted = aws_sdk_sqs::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(CountReceives(receives.clone()))
            .build(),
    );
    let db = TestDb::new(Db::MariaDb).await;
    let app = spawn_on(
        &db.url,
        {
            let queue = queue.clone();
            move |c| {
                c.sqs.sqs_queue_url = Some(queue);
                c.sqs.sqs_pollers = 4;
                c.sqs.sqs_wait_time = Duration::from_millis(200);
            }
        },
        |b| b.sqs_client(counted),
    )
    .await;
    // An idle queue: several receives come back empty, never two at once.
    eventually(Duration::from_secs(20), "five idle receives", || async {
        receives.total.load(SeqCst) >= 5
    })
    .await;
    assert_eq!(receives.max.load(SeqCst), 1, "idle: one poller");

    // A backlog: full batches call more pollers.
    let bodies: Vec<String> = (0..400).map(|i| app_body("scale", &format!("n{i}"))).collect();
    send_all(&client, &queue, &bodies, None).await;
    eventually(Duration::from_secs(60), "the backlog is accepted", || async {
        inbox_count(&app, "scale").await == 400
    })
    .await;
    let busy = receives.max.load(SeqCst);
    assert!(busy > 1, "a backlog calls more than one poller (saw at most {busy})");
    assert!(busy <= 4, "never more than ALLIM_SQS_POLLERS (saw {busy})");
    app.stop().await;
}
