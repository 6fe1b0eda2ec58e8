//! The SNS webhook and alarm routing: signatures made with a self-made key by `openssl`
//! (independently of allim's verifier), the certificate and SubscribeURL served locally, SMS
//! checked at the SENS test server, and moto's SNS delivering over HTTP end to end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, spawn_on};
use crate::providers::{self, SensServer};
use crate::support::{eventually, moto_endpoint};

pub(crate) const TOPIC: &str = "arn:aws:sns:ap-northeast-2:123456789012:alarms";
const OTHER_TOPIC: &str = "arn:aws:sns:ap-northeast-2:123456789012:other";
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns-test-key.pem");
const CERT: &str = include_str!("../fixtures/sns-test-cert.pem");

/// Serves the signing certificate and a SubscribeURL that records its hits.
pub(crate) struct CertServer {
    pub(crate) base: String,
    confirmations: Arc<Mutex<Vec<String>>>,
    /// How often the certificate was fetched.
    fetches: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests for anything else (404s).
    misses: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) async fn cert_server() -> CertServer {
    let confirmations = Arc::new(Mutex::new(Vec::new()));
    let hits = confirmations.clone();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let misses = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let missed = misses.clone();
    let router = Router::new()
        .route(
            "/SimpleNotificationService-test.pem",
            axum::routing::get(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async { CERT }
            }),
        )
        .route(
            "/confirm/{token}",
            axum::routing::get(move |Path(token): Path<String>| {
                let hits = hits.clone();
                async move {
                    hits.lock().unwrap().push(token);
                    "<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:ap-northeast-2:123456789012:alarms:1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
                }
            }),
        )
        .fallback(move || {
            missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { (axum::http::StatusCode::NOT_FOUND, "NoSuchKey") }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    CertServer {
        base: format!("http://{addr}/"),
        confirmations,
        fetches,
        misses,
    }
}

/// The string to sign, written here from the AWS docs (not shared with allim's code).
fn to_sign(m: &Value) -> String {
    let keys: &[&str] = if m["Type"] == "Notification" {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    keys.iter()
        .filter_map(|k| m.get(*k).and_then(Value::as_str).map(|v| format!("{k}\n{v}\n")))
        .collect()
}

/// Signs with `openssl dgst -sha1|-sha256 -sign`.
pub(crate) fn sign(m: &mut Value) {
    let digest = if m["SignatureVersion"] == "1" {
        "-sha1"
    } else {
        "-sha256"
    };
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", digest, "-sign", KEY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(to_sign(m).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    m["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(out.stdout));
}

/// An SNS timestamp `offset_s` seconds from now (SNS's own format).
pub(crate) fn sns_time(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A signed Notification of `message` on [`TOPIC`], certificate served by `certs`.
pub(crate) fn notification(certs: &CertServer, message: &str, version: &str) -> Value {
    let mut m = json!({
        "Type": "Notification", "MessageId": uuid::Uuid::new_v4().to_string(), "TopicArn": TOPIC,
        "Subject": "ALARM: \"x\" in Asia Pacific (Seoul)", "Message": message,
        "Timestamp": sns_time(-60), "SignatureVersion": version,
        "SigningCertURL": format!("{}SimpleNotificationService-test.pem", certs.base),
        "UnsubscribeURL": "https://sns.ap-northeast-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
    });
    sign(&mut m);
    m
}

pub(crate) async fn post_sns(app: &TestApp, m: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/webhooks/sns"))
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", m["Type"].as_str().unwrap_or(""))
        .body(m.to_string())
        .send()
        .await
        .unwrap();
    json(res).await
}

pub(crate) const RULES: &str = r#"
timezone = "Asia/Seoul"
flap_limit = 3
flap_window = "3s"

[[rules]]
name = "oncall"
alarm = "*"
sms = ["010-1111-2222"]

[[rules]]
name = "night-quiet"
alarm = "batch-*"
sms = ["010-3333-4444"]
quiet_hours = { from = "00:00", to = "23:59" }
"#;

async fn start(db: &TestDb, certs: &CertServer, sens: &SensServer) -> (TestApp, tempfile::TempDir) {
    start_clocked(db, certs, sens, allim::clock::Clock::system()).await
}

/// As [`start`], on a clock the test moves (SENS checks request times, so it starts at now).
async fn start_clocked(
    db: &TestDb,
    certs: &CertServer,
    sens: &SensServer,
    clock: allim::clock::Clock,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let prefix = certs.base.clone();
    let base = sens.base_url.clone();
    let app = spawn_on(
        &db.url,
        move |c| {
            c.sns.sns_topic_arns = vec![TOPIC.into(), OTHER_TOPIC.into()];
            c.sns.sns_insecure_cert_url_prefix = Some(prefix);
            c.alarms.alarm_rules = Some(rules);
            c.channels.sens.sens_access_key = Some(providers::SENS_ACCESS_KEY.into());
            c.channels.sens.sens_secret_key = Some(secrecy::SecretString::from(providers::SENS_SECRET_KEY));
            c.channels.sens.sens_service_id = Some(providers::SENS_SERVICE_ID.into());
            c.channels.sens.sens_from = Some(providers::SENS_FROM.into());
            c.channels.sens.sens_base_url = base;
        },
        |b| b.clock(clock),
    )
    .await;
    (app, dir)
}

pub(crate) fn sample_alarm(name: &str, state: &str, old: &str, at: &str) -> String {
    json!({"AlarmName": name, "AlarmDescription": "EXAMPLE", "AWSAccountId": "123456789012", "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
        "StateChangeTime": at, "Region": "EXAMPLE", "AlarmArn": format!("arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:{name}"),
        "OldStateValue": old, "Trigger": {"MetricName": "NetworkOut", "Namespace": "AWS/EC2", "StatisticType": "Statistic",
        "Statistic": "AVERAGE", "Unit": null, "Dimensions": [{"value": "TestInstance", "name": "InstanceId"}], "Period": 60,
        "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.0,
        "TreatMissingData": "- TreatMissingData: missing", "EvaluateLowSampleCountPercentile": ""}})
    .to_string()
}

fn sms_texts(sens: &SensServer) -> Vec<String> {
    sens.accepted().into_iter().map(|r| r.content).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_verified() {
    let db = TestDb::new(Db::Sqlite).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let (app, _dir) = start(&db, &certs, &sens).await;
    let body = json!({"notificationType": "APP_NOTIFICATION", "userId": "ops", "title": "via sns"}).to_string();

    // Valid v1 (SHA1) and v2 (SHA256) messages pass.
    for version in ["1", "2"] {
        let m = notification(&certs, &body, version);
        let (s, b) = post_sns(&app, &m).await;
        assert_eq!((s, b["status"].as_str()), (200, Some("accepted")), "v{version}: {b}");
    }
    assert_eq!(
        app.get_ok("/v1/users/ops/notifications/unread-count").await["unread"],
        2
    );

    // Changing any single signed field fails, and nothing is acted on.
    let good = notification(&certs, &body, "2");
    for (field, value) in [
        ("Message", json!(body.replace("via sns", "via snS"))),
        ("MessageId", json!("another-id")),
        ("Subject", json!("OK: changed")),
        ("Timestamp", json!(sns_time(-59))),
        ("TopicArn", json!(OTHER_TOPIC)),
    ] {
        let mut m = good.clone();
        m[field] = value;
        let (s, b) = post_sns(&app, &m).await;
        assert_eq!(s, 400, "{field} changed: {b}");
        assert!(
            b["message"].as_str().unwrap().contains("does not verify"),
            "{field}: {b}"
        );
    }
    // A certificate URL that fails is not fetched again for a while (strangers choose the URL).
    for round in 0..3 {
        let mut m = good.clone();
        m["SigningCertURL"] = json!(format!("{}missing.pem", certs.base));
        let (s, b) = post_sns(&app, &m).await;
        assert_eq!(s, 400, "{b}");
        let expected = if round == 0 { "answered 404" } else { "failed lately" };
        assert!(b["message"].as_str().unwrap().contains(expected), "{b}");
    }
    assert_eq!(
        certs.misses.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "fetched once"
    );
    // Correctly signed, but a replay from long ago, or from the future: refused.
    for (offset, word) in [(-20 * 24 * 3600, "too old"), (3600, "in the future")] {
        let mut m = good.clone();
        m["Timestamp"] = json!(sns_time(offset));
        sign(&mut m);
        let (s, b) = post_sns(&app, &m).await;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap().contains(word), "{b}");
    }
    let mut m = good.clone();
    m.as_object_mut().unwrap().remove("Subject");
    assert_eq!(post_sns(&app, &m).await.0, 400, "Subject removed");

    // Wrong host, plain http, wrong path, unknown topic, bad version, garbage.
    for (url, why) in [
        (
            "https://evil.example.com/SimpleNotificationService-test.pem",
            "not an SNS endpoint",
        ),
        (
            "http://sns.ap-northeast-2.amazonaws.com/SimpleNotificationService-test.pem",
            "not https",
        ),
        (
            "https://sns.ap-northeast-2.amazonaws.com/cert.txt",
            "does not end in .pem",
        ),
    ] {
        let mut m = good.clone();
        m["SigningCertURL"] = json!(url);
        sign(&mut m);
        let (s, b) = post_sns(&app, &m).await;
        assert_eq!(s, 400, "{url}: {b}");
        assert!(b["message"].as_str().unwrap().contains(why), "{url}: {b}");
    }
    let mut m = good.clone();
    m["TopicArn"] = json!("arn:aws:sns:ap-northeast-2:123456789012:unknown");
    sign(&mut m);
    assert_eq!(post_sns(&app, &m).await.0, 403);
    let mut m = good.clone();
    m["SignatureVersion"] = json!("3");
    assert_eq!(post_sns(&app, &m).await.0, 400);
    let res = app
        .client
        .post(app.url("/webhooks/sns"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(app.url("/webhooks/sns"))
        .header("x-amz-sns-rawdelivery", "true")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        app.get_ok("/v1/users/ops/notifications/unread-count").await["unread"],
        2,
        "nothing forged was accepted"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries").await, 2);

    // A re-sent (SNS retry) message is a duplicate.
    let (s, b) = post_sns(&app, &good).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("accepted")));
    let (_, b) = post_sns(&app, &good).await;
    assert_eq!(b["status"], "duplicate");

    // A message that is neither an alarm nor a notification is kept as rejected.
    let m = notification(&certs, "plain text, not JSON", "2");
    let (s, b) = post_sns(&app, &m).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("rejected")));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_sns_rejected_total{reason=\"signature\"}"),
        "{metrics}"
    );
    assert_eq!(
        certs.fetches.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the signing certificate is fetched once and cached"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_confirmation_gets_the_subscribe_url() {
    let db = TestDb::new(Db::Sqlite).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let (app, _dir) = start(&db, &certs, &sens).await;
    let confirmation = |subscribe: String| {
        let mut m = json!({"Type": "SubscriptionConfirmation", "MessageId": uuid::Uuid::new_v4().to_string(),
            "Token": "2336412f37fb", "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe, "Timestamp": sns_time(-60), "SignatureVersion": "1",
            "SigningCertURL": format!("{}SimpleNotificationService-test.pem", certs.base)});
        sign(&mut m);
        m
    };
    let (s, b) = post_sns(&app, &confirmation(format!("{}confirm/tok-1", certs.base))).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("confirmed")), "{b}");
    assert_eq!(*certs.confirmations.lock().unwrap(), vec!["tok-1".to_string()]);
    // A SubscribeURL on another host is not fetched.
    let (s, _) = post_sns(&app, &confirmation("https://evil.example.com/confirm/tok-2".into())).await;
    assert_eq!(s, 400);
    assert_eq!(certs.confirmations.lock().unwrap().len(), 1);
    // Unsubscribe confirmations are logged only.
    let mut m = confirmation(format!("{}confirm/tok-3", certs.base));
    m["Type"] = json!("UnsubscribeConfirmation");
    sign(&mut m);
    let (_, b) = post_sns(&app, &m).await;
    assert_eq!(b["status"], "unsubscribed");
    assert_eq!(certs.confirmations.lock().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_becomes_one_sms_and_flapping_is_limited() {
    let db = TestDb::new(Db::MariaDb).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let clock = allim::clock::Clock::manual(allim::clock::Clock::system().now_ms());
    let (app, _dir) = start_clocked(&db, &certs, &sens, clock.clone()).await;

    // The sample alarm of PROTOCOLS.md §2.1 → one SMS with the short template.
    let alarm = notification(
        &certs,
        &sample_alarm("EXAMPLE", "ALARM", "INSUFFICIENT_DATA", "2015-06-03T17:43:27.123+0000"),
        "1",
    );
    let (s, b) = post_sns(&app, &alarm).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("sent")), "{b}");
    eventually(Duration::from_secs(10), "the SMS reaches SENS", || async {
        sens.accepted().len() == 1
    })
    .await;
    assert_eq!(
        sms_texts(&sens),
        vec!["[ALARM] EXAMPLE (REGION) 02:43 KST 1234.0 > 0.0"]
    );
    assert_eq!(sens.accepted()[0].to, vec!["01011112222"]);
    assert_eq!(sens.accepted()[0].kind, "SMS");
    // The same notification again: nothing new. One changed character: 4xx, nothing.
    let (_, b) = post_sns(&app, &alarm).await;
    assert_eq!(b["status"], "duplicate");
    let mut tampered = alarm.clone();
    tampered["Message"] = json!(alarm["Message"].as_str().unwrap().replace("1234.0", "1235.0"));
    assert_eq!(post_sns(&app, &tampered).await.0, 400);

    // Ten ALARM/OK flips within the window: at most 3 SMS, then one summary.
    let before = sens.accepted().len();
    for i in 0..10 {
        let (state, old) = if i % 2 == 0 { ("ALARM", "OK") } else { ("OK", "ALARM") };
        let at = format!("2026-11-22T01:{:02}:00.000+0000", 10 + i);
        let m = notification(&certs, &sample_alarm("api-5xx-high", state, old, &at), "2");
        let (s, _) = post_sns(&app, &m).await;
        assert_eq!(s, 200);
    }
    eventually(Duration::from_secs(15), "three SMS", || async {
        sens.accepted().len() == before + 3
    })
    .await;
    // The flap window (3 s) ends on the app's clock, not by waiting: the next tick summarises.
    clock.advance(Duration::from_secs(3));
    eventually(Duration::from_secs(15), "the summary", || async {
        sens.accepted().len() == before + 4
    })
    .await;
    // The first three flips (each its own delivery, sent concurrently: in any order), then
    // the summary.
    let mut texts = sms_texts(&sens)[before..].to_vec();
    assert_eq!(
        texts[3],
        "[FLAP] api-5xx-high (REGION): 7 more suppressed in 3s, now OK"
    );
    texts.truncate(3);
    texts.sort();
    assert_eq!(
        texts,
        vec![
            "[ALARM] api-5xx-high (REGION) 10:10 KST 1234.0 > 0.0",
            "[ALARM] api-5xx-high (REGION) 10:12 KST 1234.0 > 0.0",
            "[OK] api-5xx-high (REGION) 10:11 KST 1234.0 <= 0.0",
        ]
    );
    // No more than that: every SMS delivery row is accounted for and none is left to send.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE notification_type = 'SMS'")
            .await,
        (before + 4) as i64
    );
    // (SENS has the last SMS a moment before its row records it.)
    eventually(Duration::from_secs(10), "nothing left to send", || async {
        app.count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'failed')")
            .await
            == 0
    })
    .await;

    // The history says what happened and why.
    let alarms = app.get_ok("/v1/alarms?events=50").await;
    let api = alarms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "api-5xx-high")
        .unwrap()
        .clone();
    assert_eq!(api["state"], "OK");
    let outcomes: Vec<&str> = api["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "sent").count(), 3, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "suppressed").count(),
        7,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "summary").count(), 1, "{outcomes:?}");

    // An identical state is not re-sent; an older one is stale.
    let m = notification(
        &certs,
        &sample_alarm("EXAMPLE", "ALARM", "ALARM", "2015-06-03T17:50:00.000+0000"),
        "2",
    );
    assert_eq!(post_sns(&app, &m).await.1["status"], "unchanged");
    let m = notification(
        &certs,
        &sample_alarm("EXAMPLE", "OK", "ALARM", "2015-06-03T17:00:00.000+0000"),
        "2",
    );
    assert_eq!(post_sns(&app, &m).await.1["status"], "stale");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_quiet_hours_hold_messages_back() {
    let db = TestDb::new(Db::Sqlite).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let (app, _dir) = start(&db, &certs, &sens).await;
    let (s, silence) = json(
        app.post(
            "/v1/silences",
            &json!({"alarm": "db-*", "duration": "1h", "reason": "DB maintenance"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{silence}");
    let (s, b) = json(app.post("/v1/silences", &json!({"alarm": "db-*", "reason": "x"})).await).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("until")));
    let (s, b) = json(
        app.post(
            "/v1/silences",
            &json!({"alarm": "db-*", "until": "2020-01-01T00:00:00Z", "reason": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("until")));

    let m = notification(
        &certs,
        &sample_alarm("db-cpu", "ALARM", "OK", "2026-11-22T01:00:00.000+0000"),
        "2",
    );
    let (_, b) = post_sns(&app, &m).await;
    assert_eq!(b["status"], "silenced");
    assert!(b["detail"].as_str().unwrap().contains("DB maintenance"));
    let listed = app.get_ok("/v1/silences").await;
    assert_eq!(listed["items"][0]["active"], true);
    // Ending the silence lets the next change through.
    let id = silence["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/v1/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_ok("/v1/silences").await["items"], json!([]));
    assert_eq!(app.get_ok("/v1/silences?all=true").await["items"][0]["active"], false);
    let m = notification(
        &certs,
        &sample_alarm("db-cpu", "OK", "ALARM", "2026-11-22T01:05:00.000+0000"),
        "2",
    );
    assert_eq!(post_sns(&app, &m).await.1["status"], "sent");

    // Quiet hours (the batch rule is quiet all day): recovery SMS held back, ALARM always goes.
    let m = notification(
        &certs,
        &sample_alarm("batch-nightly", "ALARM", "OK", "2026-11-22T01:10:00.000+0000"),
        "2",
    );
    assert_eq!(post_sns(&app, &m).await.1["status"], "sent");
    let m = notification(
        &certs,
        &sample_alarm("batch-nightly", "OK", "ALARM", "2026-11-22T01:20:00.000+0000"),
        "2",
    );
    let (_, b) = post_sns(&app, &m).await;
    assert_eq!(b["status"], "sent", "the catch-all rule still sends: {b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("night-quiet: SMS held back by quiet hours"),
        "{b}"
    );
    eventually(Duration::from_secs(10), "3 SMS requests", || async {
        sens.accepted().len() == 4
    })
    .await;
    let to_quiet: Vec<_> = sens
        .accepted()
        .into_iter()
        .filter(|r| r.to.contains(&"01033334444".to_string()))
        .collect();
    assert_eq!(to_quiet.len(), 1, "only the ALARM reached the quiet rule's phone");
    assert!(
        sms_texts(&sens)
            .iter()
            .all(|t| !t.contains("db-cpu") || t.starts_with("[OK]")),
        "the silenced ALARM never went out"
    );
    app.stop().await;
}

/// moto's SNS publishes to the webhook over HTTP; allim verifies moto's SHA256 signature with
/// the certificate moto serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_sns_delivers_to_the_webhook() {
    let db = TestDb::new(Db::Sqlite).await;
    let moto = moto_endpoint();
    let http = reqwest::Client::new();
    // moto routes an unsigned GET to S3; this small proxy names the SNS service for it.
    let proxy_base = {
        let moto = moto.clone();
        let router = Router::new().route(
            "/{pem}",
            axum::routing::get(|State(moto): State<String>, Path(pem): Path<String>| async move {
                reqwest::Client::new()
                    .get(format!("{moto}/{pem}"))
                    .header("authorization", SNS_AUTH)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }),
        );
        let router = router.with_state(moto);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    };
    let name = format!("alarms-{}", uuid::Uuid::new_v4().simple());
    let created = sns_call(&http, &moto, &[("Action", "CreateTopic"), ("Name", &name)]).await;
    let topic = between(&created, "<TopicArn>", "</TopicArn>");
    let topic_for_config = topic.clone();
    let app = spawn_on(
        &db.url,
        move |c| {
            c.sns.sns_topic_arns = vec![topic_for_config];
            c.sns.sns_insecure_cert_fetch_base = Some(proxy_base);
        },
        |b| b,
    )
    .await;
    let endpoint = app.url("/webhooks/sns");
    sns_call(
        &http,
        &moto,
        &[
            ("Action", "Subscribe"),
            ("TopicArn", &topic),
            ("Protocol", "http"),
            ("Endpoint", &endpoint),
        ],
    )
    .await;
    let message = json!({"notificationType": "APP_NOTIFICATION", "userId": "moto", "title": "from moto"}).to_string();
    sns_call(
        &http,
        &moto,
        &[("Action", "Publish"), ("TopicArn", &topic), ("Message", &message)],
    )
    .await;
    eventually(Duration::from_secs(10), "moto's message in the inbox", || async {
        app.get_ok("/v1/users/moto/notifications/unread-count").await["unread"] == 1
    })
    .await;
    let key: String = app
        .store
        .scalar("SELECT idempotency_key FROM deliveries")
        .await
        .unwrap();
    assert!(key.starts_with("sns:"), "{key}");
    app.stop().await;
}

const SNS_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0";

/// One call to moto's SNS query API.
async fn sns_call(http: &reqwest::Client, moto: &str, params: &[(&str, &str)]) -> String {
    let res = http
        .post(format!("{moto}/"))
        .header("authorization", SNS_AUTH)
        .form(params)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "{params:?}: {text}");
    text
}

fn between(s: &str, a: &str, b: &str) -> String {
    let start = s.find(a).unwrap() + a.len();
    let end = s[start..].find(b).unwrap() + start;
    s[start..end].to_string()
}

/// `POST /v1/alarms/test` predicts exactly what the router then does with the same alarm —
/// sent, quiet hours, the flap limit, unchanged, silenced, unrouted — and sends nothing itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trying_the_rules_predicts_what_happens() {
    let db = TestDb::new(Db::MariaDb).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let clock = allim::clock::Clock::manual(allim::clock::Clock::system().now_ms());
    let (app, _dir) = start_clocked(&db, &certs, &sens, clock.clone()).await;
    let steps = [
        ("ALARM", "OK", "sent"),
        ("OK", "ALARM", "sent"),
        ("ALARM", "OK", "sent"),
        ("OK", "ALARM", "suppressed"),
        ("OK", "ALARM", "unchanged"),
        ("INSUFFICIENT_DATA", "OK", "unrouted"),
    ];
    for (i, (state, old, expected)) in steps.into_iter().enumerate() {
        let at = format!("2026-11-22T01:{:02}:00.000+0000", 10 + i);
        let n = notification(&certs, &sample_alarm("batch-nightly", state, old, &at), "1");
        let before = app.count("SELECT COUNT(*) FROM deliveries").await;
        let (s, tried) = json(app.post("/v1/alarms/test", &n).await).await;
        assert_eq!(s, 200, "{tried}");
        assert_eq!(
            app.count("SELECT COUNT(*) FROM deliveries").await,
            before,
            "trying sends nothing"
        );
        let (_, handled) = post_sns(&app, &n).await;
        assert_eq!(
            tried["outcome"], handled["status"],
            "step {i} ({state}): {tried} vs {handled}"
        );
        assert_eq!(tried["outcome"], expected, "step {i}: {tried}");
        if state == "OK" && expected == "sent" {
            let quiet = tried["routes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule"] == "night-quiet")
                .unwrap();
            assert_eq!(quiet["smsHeldByQuietHours"], true, "{tried}");
            assert_eq!(quiet["sms"][0], "*******4444", "numbers are masked: {tried}");
        }
    }
    let (s, _) = json(
        app.post(
            "/v1/silences",
            &json!({"alarm": "batch-*", "duration": "1h", "reason": "maintenance"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201);
    let n = notification(
        &certs,
        &sample_alarm(
            "batch-nightly",
            "ALARM",
            "INSUFFICIENT_DATA",
            "2026-11-22T01:30:00.000+0000",
        ),
        "1",
    );
    let (_, tried) = json(app.post("/v1/alarms/test", &n).await).await;
    let (_, handled) = post_sns(&app, &n).await;
    assert_eq!(
        (tried["outcome"].as_str(), handled["status"].as_str()),
        (Some("silenced"), Some("silenced"))
    );
    let (s, bad) = json(app.post("/v1/alarms/test", &json!({"hello": "world"})).await).await;
    assert_eq!(s, 422, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("AlarmName"), "{bad}");
    app.stop().await;
}

/// A burst of notifications signed with a certificate not cached yet (a cold start): every one
/// is verified and the certificate is fetched once, not once per request (which tripped the
/// fetch limit and answered 503 to the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_fetches_the_certificate_once() {
    let db = TestDb::new(Db::Sqlite).await;
    let certs = cert_server().await;
    let sens = SensServer::start().await;
    let (app, _dir) = start(&db, &certs, &sens).await;
    let bodies: Vec<Value> = (0..24)
        .map(|i| {
            notification(
                &certs,
                &json!({"notificationType": "APP_NOTIFICATION", "userId": format!("burst{i}"), "title": "hi"})
                    .to_string(),
                "2",
            )
        })
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| post_sns(&app, b))).await;
    for (s, b) in &answers {
        assert_eq!(*s, 200, "{b}");
    }
    assert_eq!(certs.fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
    app.stop().await;
}
