//! The operator console in a real browser: headless Chromium from Debian's packages, driven by
//! Selenium with Debian's chromedriver (`scripts/console_e2e.py`), against allim on MariaDB with
//! the SENS stand-in and a signed CloudWatch alarm. It signs in, finds a delivery by its key,
//! redrives a dead letter and sees it delivered, silences an alarm, reads a user's inbox, at
//! 1280 px and at phone width; and an allim without tokens opens directly and says so.
//! Screenshots land in `target/console-screenshots/` (git-ignored; CI keeps them).

use serde_json::{Value, json};

use crate::helpers::{Db, TestDb, spawn_app, spawn_on};
use crate::providers::{SensServer, with_sens};
use crate::sns::{RULES, TOPIC, cert_server, notification, post_sns, sample_alarm, sns_time};
use crate::support::eventually;

const ADMIN: &str = "consoleAdminToken0123456789";

fn venv_python() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-console/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, which installs Selenium, Chromium and chromedriver",
        p.display()
    );
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/test.sh"
        );
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let python = venv_python();
    let sens = SensServer::start().await;
    let certs = cert_server().await;
    let db = TestDb::new(Db::MariaDb).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    // A tiny API for a watcher: a list of orders.
    let orders = crate::providers::serve(axum::Router::new().route(
        "/orders",
        axum::routing::get(|| async { axum::Json(json!([{"id": 1, "total": 15000}, {"id": 2, "total": 27000}])) }),
    ))
    .await;
    let watchers = format!(
        "[[watchers]]\nname = \"orders\"\nurl = \"http://{orders}/orders\"\ninterval = \"1h\"\nidentity = [\"id\"]\n\
         [[watchers.notify]]\nnotificationType = \"APP_NOTIFICATION\"\nuserId = \"console-user\"\ntitle = \"주문 {{total:#,###}}원\"\n"
    );
    let (sens_url, sens_state, prefix) = (sens.base_url.clone(), sens.state.clone(), certs.base.clone());
    let app = spawn_on(
        &db.url,
        move |c| {
            c.api.api_tokens = vec![allim::api::auth::ApiToken::parse(&format!("admin:{ADMIN}")).unwrap()];
            c.sns.sns_topic_arns = vec![TOPIC.into()];
            c.sns.sns_insecure_cert_url_prefix = Some(prefix);
            c.alarms.alarm_rules = Some(rules);
            c.watchers.watchers_toml = Some(watchers);
            with_sens(
                c,
                &SensServer {
                    base_url: sens_url,
                    state: sens_state,
                },
            );
        },
        |b| b,
    )
    .await;

    // Something to find, a dead letter (SENS refuses the first send for good) and an alarm.
    let res = app
        .post(
            "/v1/notifications",
            &json!({"notificationType": "APP_NOTIFICATION", "idempotencyKey": "console-key-1",
                    "userId": "console-user", "title": "배송이 시작되었습니다"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let keyed: Value = res.json().await.unwrap();
    let keyed_id = keyed["id"].as_str().unwrap().to_string();
    sens.state.fail_next.lock().unwrap().push_back(Some(400));
    let res = app
        .post(
            "/v1/notifications",
            &json!({"notificationType": "SMS", "to": ["010-1234-5678"], "content": "[allim] 콘솔 테스트"}),
        )
        .await;
    let dead: Value = res.json().await.unwrap();
    let dead_id = dead["id"].as_str().unwrap().to_string();
    eventually(std::time::Duration::from_secs(20), "the SMS is dead", || async {
        app.get_ok(&format!("/v1/deliveries/{dead_id}")).await["status"] == "dead"
    })
    .await;
    let alarm = "console-api-5xx";
    let (status, _) = post_sns(
        &app,
        &notification(&certs, &sample_alarm(alarm, "ALARM", "OK", &sns_time(-30)), "2"),
    )
    .await;
    assert_eq!(status, 200);

    // The same search the console makes, by recipient in another notation.
    let found = app.get_ok("/v1/deliveries?to=%2B82%2010%201234%205678").await;
    assert_eq!(found["items"][0]["id"], dead_id.as_str());
    let detail = app.get_ok(&format!("/v1/deliveries/{dead_id}")).await;
    assert_eq!(
        detail["payload"]["to"][0], "*******5678",
        "numbers are masked: {detail}"
    );

    let redriven = dead_id.clone();
    let open = spawn_app(Db::Sqlite).await;
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/console-screenshots");
    let base = app.url("");
    let open_base = open.url("");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/console_e2e.py"))
            .env("BASE", base.trim_end_matches('/'))
            .env("OPEN_BASE", open_base.trim_end_matches('/'))
            .env("TOKEN", ADMIN)
            .env("KEY", "console-key-1")
            .env("KEY_ID", &keyed_id)
            .env("DEAD_ID", &dead_id)
            .env("ALARM", alarm)
            .env("SHOTS", shots)
            .env("SE_OFFLINE", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["token_in_url"], false);
    assert_eq!(r["token_in_local_storage"], false);
    assert_eq!(r["token_in_session_storage"], true, "kept for this tab only");
    assert_eq!(r["after_sign_out"], false, "gone after sign-out");
    assert!(r["detail"].as_str().unwrap().contains("console-key-1"), "{r}");
    assert_eq!(r["found_rows"], 1, "the search by key finds one delivery: {r}");
    assert_eq!(r["confirm"], "Redrive 1 dead letter?");
    assert_eq!(r["after_redrive"], "delivered");
    assert!(r["silences"].as_str().unwrap().contains(alarm), "{r}");
    assert!(
        r["tried"].as_str().unwrap().contains("oncall"),
        "the matching rule is shown: {r}"
    );
    assert!(r["inbox"].as_str().unwrap().contains("배송이 시작되었습니다"), "{r}");
    assert!(
        r["watchers"]
            .as_str()
            .unwrap()
            .contains("orders: 2 item(s) in the answer"),
        "{r}"
    );
    let tabbed: Vec<&str> = r["tab_order"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for page in [
        "Overview",
        "Deliveries",
        "Dead letters",
        "Alarms",
        "Watchers",
        "A user",
        "Sign out",
    ] {
        assert!(
            tabbed.contains(&page),
            "{page} is reachable with the keyboard: {tabbed:?}"
        );
    }
    assert!(
        r["phone_scroll_width"].as_i64().unwrap() <= 400,
        "no sideways scroll at 390 px: {r}"
    );
    assert!(r["open_banner"].as_str().unwrap().contains("no tokens"));
    // And the API agrees with what the browser showed.
    let after = app
        .get_ok(&format!("/v1/deliveries/{}", r["found"].as_str().unwrap()))
        .await;
    assert_eq!(after["idempotencyKey"], "console-key-1");
    // Every attempt is on record: the refused first send, then the one after the redrive.
    let d = app.get_ok(&format!("/v1/deliveries/{redriven}")).await;
    let history: Vec<(i64, &str)> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_i64().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(history, [(1, "dead"), (1, "delivered")], "{d}");
    assert!(d["history"][0]["error"].as_str().unwrap().contains("400"), "{d}");
    assert!(r["redriven_page"].as_str().unwrap().contains("dead"), "{r}");
    let silences = app.get_ok("/v1/silences").await;
    assert_eq!(silences["items"][0]["alarm"], alarm);
    for name in [
        "overview",
        "delivery",
        "dead-letters",
        "alarms",
        "overview-phone",
        "open",
    ] {
        assert!(
            std::path::Path::new(shots).join(format!("{name}.png")).exists(),
            "screenshot {name}"
        );
    }
    // A wrong key at SENS: the overview shows the lane paused, and the delivery waits (no
    // attempt used) instead of going dead.
    sens.state.fail_next.lock().unwrap().push_back(Some(401));
    let res = app
        .post(
            "/v1/notifications",
            &json!({"notificationType": "SMS", "to": ["01012345678"], "content": "[allim] 키 오류"}),
        )
        .await;
    let waiting: Value = res.json().await.unwrap();
    eventually(std::time::Duration::from_secs(20), "the SMS lane pauses", || async {
        let o = app.get_ok("/v1/overview").await;
        o["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["channel"] == "sms" && l["paused"] == true)
    })
    .await;
    // (The lane pauses as the answer comes; the row is updated right after.)
    let path = format!("/v1/deliveries/{}", waiting["id"].as_str().unwrap());
    eventually(
        std::time::Duration::from_secs(10),
        "the delivery is requeued",
        || async { app.get_ok(&path).await["status"] == "failed" },
    )
    .await;
    let d = app.get_ok(&path).await;
    assert_eq!(d["history"][0]["outcome"], "requeued", "{d}");
    assert_eq!(d["attempts"], 0, "no attempt used: {d}");
    open.stop().await;
    app.stop().await;
}
