//! WEBHOOK notifications, verified by the `standardwebhooks` package (the specification
//! authors' Python library) in a receiver of its own, not by allim's code.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, settled, spawn_on, test_clock};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct Receiver {
    child: Child,
    pub base: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn receiver() -> Receiver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let mut child = Command::new(python)
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhook_receiver.py"),
            &port.to_string(),
            SECRET,
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("the test venv's python (scripts/test.sh installs standardwebhooks there)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Receiver {
                child,
                base: format!("http://{addr}"),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the webhook receiver did not start (is standardwebhooks installed in .venv?)");
}

async fn send(app: &TestApp, body: Value) -> String {
    let (s, b) = json(app.post("/v1/notifications", &body).await).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_as_the_standard_says() {
    let rx = receiver();
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let endpoints = [format!("default={}/hooks", rx.base), format!("flaky={}/flaky", rx.base)];
    let app = spawn_on(
        &db.url,
        move |c| {
            c.channels.webhook.webhook_endpoints = endpoints
                .iter()
                .map(|e| allim::channels::webhook::parse_endpoint(e).unwrap())
                .collect();
            c.channels.webhook.webhook_secrets = ["default", "flaky"]
                .iter()
                .map(|n| allim::channels::webhook::parse_secret(&format!("{n}={SECRET}")).unwrap())
                .collect();
        },
        |b| b.clock(clock.clone()),
    )
    .await;
    let shipped = send(
        &app,
        json!({"notificationType": "WEBHOOK", "eventType": "order.shipped", "data": {"orderId": 1042}}),
    )
    .await;
    let flaky = send(
        &app,
        json!({"notificationType": "WEBHOOK", "endpoint": "flaky", "eventType": "order.paid", "data": {"orderId": 7}}),
    )
    .await;
    let d = settled(&app, &clock, &shipped).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(1)),
        "{d}"
    );
    let d = settled(&app, &clock, &flaky).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("delivered"), Some(2)),
        "503 then 204: {d}"
    );

    let got: Value = reqwest::get(format!("{}/received", rx.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["refused"], json!([]), "every request verified: {got}");
    let received = got["received"].as_array().unwrap();
    let at = |path: &str| received.iter().filter(|r| r["path"] == path).collect::<Vec<_>>();
    let hooks = at("/hooks");
    assert_eq!(hooks.len(), 1, "{got}");
    assert_eq!(hooks[0]["id"], shipped.as_str(), "webhook-id is the delivery id");
    assert_eq!(hooks[0]["payload"]["type"], "order.shipped");
    assert_eq!(hooks[0]["payload"]["data"], json!({"orderId": 1042}));
    assert!(hooks[0]["payload"]["timestamp"].is_string());
    let flaky_hits = at("/flaky");
    assert_eq!(flaky_hits.len(), 2, "{got}");
    assert!(
        flaky_hits.iter().all(|r| r["id"] == flaky.as_str()),
        "the same webhook-id on the retry"
    );

    // A name that is not configured is refused at accept time.
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "WEBHOOK", "endpoint": "nope", "eventType": "x", "data": {}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("endpoint")), "{b}");
    app.stop().await;
}
