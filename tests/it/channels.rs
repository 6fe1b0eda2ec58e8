//! The provider channels end to end: allim → SENS / FCM / Slack test servers that verify
//! requests as the providers do.

use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, settled, spawn_on, test_clock};
use crate::providers::{self, FcmServer, SensServer, SlackServer, with_sens};

async fn send(app: &TestApp, body: Value) -> String {
    let (s, b) = json(app.post("/v1/notifications", &body).await).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("010{:08}", 10_000_000 + i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_goes_out_signed_as_sms_or_lms_in_chunks_of_100() {
    let clock = test_clock();
    let db = TestDb::new(Db::MariaDb).await;
    let sens = SensServer::start().await;
    let app = spawn_on(&db.url, |c| with_sens(c, &sens), |b| b.clock(clock.clone())).await;

    // 100 EUC-KR bytes of Korean: one LMS request, accepted by the signature-checking server.
    let content = "가".repeat(50);
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["010-1234-5678"], "content": content}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["dryRun"].as_bool()),
        (Some("delivered"), Some(false)),
        "{d}"
    );
    let sent = sens.accepted();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].kind.as_str(), sent[0].to.as_slice()),
        ("LMS", &["01012345678".to_string()][..])
    );
    assert_eq!(sent[0].content, content);

    // A short one is an SMS.
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["+82 10 9999 0000"], "content": "인증번호 123456"}),
    )
    .await;
    assert_eq!(settled(&app, &clock, &id).await["status"], "delivered");
    assert_eq!(sens.accepted()[1].kind, "SMS");

    // 250 recipients: three requests of 100, 100 and 50.
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": numbers(250), "content": "공지", "subject": "알림"}),
    )
    .await;
    assert_eq!(settled(&app, &clock, &id).await["status"], "delivered");
    let sent = sens.accepted();
    let sizes: Vec<usize> = sent[2..].iter().map(|r| r.to.len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    assert!(
        sent[2..]
            .iter()
            .all(|r| r.kind == "LMS" && r.subject.as_deref() == Some("알림"))
    );

    // A 500 in the middle: the retry sends only the chunk that is missing.
    let before = sens.accepted().len();
    sens.state.fail_next.lock().unwrap().extend([None, Some(500)]);
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": numbers(150), "content": "재시도"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{d}"
    );
    let after: Vec<usize> = sens.accepted()[before..].iter().map(|r| r.to.len()).collect();
    assert_eq!(after, vec![100, 50], "chunk 0 went once; only chunk 1 was retried");

    // An emoji SENS cannot encode is refused at accept time.
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "SMS", "to": ["01012345678"], "content": "배송 🚚"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("content")), "{b}");
    assert_eq!(*sens.state.rejected_auth.lock().unwrap(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sens_errors_keep_the_text_and_a_refused_key_pauses_the_lane() {
    let clock = test_clock();
    let db = TestDb::new(Db::Sqlite).await;
    let sens = SensServer::start().await;
    let app = spawn_on(
        &db.url,
        |c| {
            with_sens(c, &sens);
            c.channels.sens.sens_secret_key = Some(secrecy::SecretString::from("not-the-secret"));
        },
        |b| b.clock(clock.clone()),
    )
    .await;
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "x"}),
    )
    .await;
    // A refused key is no reason to give the message up: it waits, keeping its attempts.
    let path = format!("/v1/deliveries/{id}");
    crate::support::eventually(
        std::time::Duration::from_secs(10),
        "the refusal is recorded",
        || async { app.get_ok(&path).await["status"] == "failed" },
    )
    .await;
    let d = app.get_ok(&path).await;
    assert_eq!(d["attempts"], 0, "a 401 uses no attempt: {d}");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("SENS 401: 200 Authentication Failed"),
        "{d}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("allim_lane_paused{channel=\"sms\"} 1"), "{metrics}");
    app.stop().await;

    let app = spawn_on(
        &db.url,
        |c| {
            with_sens(c, &sens);
            c.channels.sens.sens_from = Some("0299999999".into());
        },
        |b| b.clock(clock.clone()),
    )
    .await;
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "x"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(d["status"], "dead");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("SENS 400: Validation failed. 1 error(s): from is not a registered calling number"),
        "{d}"
    );

    // 429 retries.
    sens.state.fail_next.lock().unwrap().push_back(Some(429));
    app.stop().await;
    let app = spawn_on(&db.url, |c| with_sens(c, &sens), |b| b.clock(clock.clone())).await;
    let id = send(
        &app,
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "x"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "{d}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_uses_the_registry_and_fcm_errors() {
    let clock = test_clock();
    let db = TestDb::new(Db::MariaDb).await;
    let fcm = FcmServer::start().await;
    let app = spawn_on(
        &db.url,
        |c| {
            c.channels.fcm.fcm_credentials = Some(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fcm-test-service-account.json"
                )
                .into(),
            );
            c.channels.fcm.fcm_base_url = fcm.base_url.clone();
            c.channels.fcm.fcm_token_url = Some(fcm.token_url.clone());
        },
        |b| b.clock(clock.clone()),
    )
    .await;

    // The registry API.
    for (token, expected) in [
        ("good-a", 201),
        ("unregistered-b", 201),
        ("flaky-c", 201),
        ("good-a", 200),
    ] {
        let res = app
            .client
            .put(app.url("/v1/users/42/devices"))
            .json(&json!({"token": token, "platform": "android"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected, "{token}");
    }
    let res = app
        .client
        .put(app.url("/v1/users/42/devices"))
        .json(&json!({"token": "x", "platform": "symbian"}))
        .send()
        .await
        .unwrap();
    let (s, b) = json(res).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("platform")));
    let list = app.get_ok("/v1/users/42/devices").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);

    // One 503 for flaky-c; unregistered-b is dead.
    fcm.fail("flaky-c", &[503]);
    let id = send(&app, json!({"notificationType": "PUSH", "userId": "42", "title": "주문", "body": "배송이 시작되었습니다", "data": {"orderId": "1042"}})).await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["dryRun"].as_bool()),
        (Some("delivered"), Some(2), Some(false)),
        "{d}"
    );
    let mut sent = fcm.sent();
    sent.sort();
    assert_eq!(
        sent,
        vec!["flaky-c", "good-a"],
        "each live token exactly once; the retry resent only flaky-c"
    );
    let tokens: Vec<String> = app.get_ok("/v1/users/42/devices").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["token"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(
        !tokens.contains(&"unregistered-b".to_string()),
        "UNREGISTERED removed it from the registry"
    );
    assert_eq!(
        *fcm.state.token_requests.lock().unwrap(),
        1,
        "the access token is cached"
    );

    // Explicit tokens; an invalid-token INVALID_ARGUMENT alone makes the push dead.
    let id = send(
        &app,
        json!({"notificationType": "PUSH", "tokens": ["malformed-x"], "title": "t"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(d["status"], "dead");
    assert!(d["lastError"].as_str().unwrap().contains("INVALID_ARGUMENT"), "{d}");
    // A user without devices.
    let id = send(
        &app,
        json!({"notificationType": "PUSH", "userId": "nobody", "title": "t"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert!(
        d["lastError"].as_str().unwrap().contains("no registered devices"),
        "{d}"
    );

    // Unregister.
    let res = app
        .client
        .delete(app.url("/v1/users/42/devices/good-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .delete(app.url("/v1/users/42/devices/good-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(*fcm.state.unauthorized.lock().unwrap(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_webhooks_by_name_with_429_retry() {
    let clock = test_clock();
    let db = TestDb::new(Db::Sqlite).await;
    let slack = SlackServer::start().await;
    let hook = |name: &str, path: &str| allim::channels::slack::SlackWebhook {
        name: name.into(),
        url: secrecy::SecretString::from(format!("{}/services/{path}", slack.base_url)),
    };
    let hooks = vec![
        hook("default", "T0DEFAULT"),
        hook("ops", "T0OPS"),
        hook("gone", "XXREVOKED"),
    ];
    let app = spawn_on(
        &db.url,
        |c| c.channels.slack.slack_webhooks = hooks,
        |b| b.clock(clock.clone()),
    )
    .await;
    let id = send(
        &app,
        json!({"notificationType": "SLACK", "text": "deploy done", "channel": "ops"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "429 then ok: {d}"
    );
    let id = send(&app, json!({"notificationType": "SLACK", "text": "to default"})).await;
    settled(&app, &clock, &id).await;
    let posted = slack.posted();
    assert_eq!(
        posted,
        vec![
            ("T0OPS".into(), "deploy done".into()),
            ("T0DEFAULT".into(), "to default".into())
        ]
    );
    let id = send(
        &app,
        json!({"notificationType": "SLACK", "text": "x", "channel": "gone"}),
    )
    .await;
    let d = settled(&app, &clock, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["lastError"].as_str()),
        (Some("dead"), Some("Slack 404: no_service"))
    );
    // An unknown name is refused at accept time.
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "SLACK", "text": "x", "channel": "sales"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("channel")), "{b}");
    app.stop().await;
}

#[tokio::test]
async fn without_credentials_channels_are_dry_runs() {
    let clock = test_clock();
    let db = TestDb::new(Db::Sqlite).await;
    let app = spawn_on(&db.url, |_| {}, |b| b.clock(clock.clone())).await;
    for body in [
        json!({"notificationType": "SMS", "to": ["01012345678"], "content": "x"}),
        json!({"notificationType": "PUSH", "tokens": ["t1"], "title": "x"}),
        json!({"notificationType": "SLACK", "text": "x", "channel": "anything"}),
    ] {
        let id = send(&app, body).await;
        let d = settled(&app, &clock, &id).await;
        assert_eq!(
            (d["status"].as_str(), d["dryRun"].as_bool()),
            (Some("delivered"), Some(true)),
            "{d}"
        );
    }
    app.stop().await;
}

/// The SENS stand-in is as strict as SENS: a stale timestamp, a wrong signature, over 100
/// recipients and an over-long SMS are all refused with SENS's answers.
#[tokio::test]
async fn the_sens_server_refuses_what_sens_refuses() {
    let sens = SensServer::start().await;
    let path = format!("/sms/v2/services/{}/messages", providers::SENS_SERVICE_ID);
    let http = reqwest::Client::new();
    let send = |ts: i64, secret: &'static str, body: Value| {
        let sig = allim::channels::sens::signature(secret, "POST", &path, ts, providers::SENS_ACCESS_KEY);
        http.post(format!("{}{path}", sens.base_url))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-ncp-apigw-timestamp", ts.to_string())
            .header("x-ncp-iam-access-key", providers::SENS_ACCESS_KEY)
            .header("x-ncp-apigw-signature-v2", sig)
            .json(&body)
            .send()
    };
    let now = chrono::Utc::now().timestamp_millis();
    let body = |kind: &str, content: &str, n: usize| {
        json!({"type": kind, "contentType": "COMM", "countryCode": "82", "from": providers::SENS_FROM,
               "content": content, "messages": numbers(n).iter().map(|to| json!({"to": to})).collect::<Vec<_>>()})
    };
    let ok = send(now, providers::SENS_SECRET_KEY, body("SMS", "안녕", 1))
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(
        (ok["statusCode"].as_str(), ok["statusName"].as_str()),
        (Some("202"), Some("success"))
    );
    let stale = send(now - 5 * 60 * 1000, providers::SENS_SECRET_KEY, body("SMS", "안녕", 1))
        .await
        .unwrap();
    assert_eq!(stale.status(), 401, "a timestamp 5 minutes off");
    let forged = send(now, "another-secret", body("SMS", "안녕", 1)).await.unwrap();
    assert_eq!(forged.status(), 401);
    let (_, b) = json(forged).await;
    assert_eq!(b["error"]["errorCode"], "200");
    let (s, b) = json(
        send(now, providers::SENS_SECRET_KEY, body("SMS", "안녕", 101))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "101 recipients: {b}");
    assert!(b["errorMessage"].as_str().unwrap().starts_with("Validation failed"));
    let (s, _) = json(
        send(now, providers::SENS_SECRET_KEY, body("SMS", &"가".repeat(46), 1))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400, "92 bytes is too long for an SMS");
    let (s, _) = json(
        send(now, providers::SENS_SECRET_KEY, body("LMS", &"가".repeat(46), 1))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 202, "but fine as an LMS");
    assert_eq!(sens.accepted().len(), 2);
}
