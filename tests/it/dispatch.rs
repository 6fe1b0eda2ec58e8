//! The dispatcher: retries with backoff, dead letters, redrive, scheduled sends and lease
//! take-over, with a channel the test scripts.

use std::sync::Arc;
use std::time::Duration;

use allim::channels::NotificationType;
use allim::channels::SendOutcome;
use serde_json::{Value, json};

use crate::both;
use crate::helpers::{Db, TestApp, TestDb, json, spawn_on, test_clock};
use crate::support::{ScriptedChannel, eventually, retry};

async fn with_push(
    db_url: &str,
    push: &ScriptedChannel,
    configure: impl FnOnce(&mut allim::config::Config),
) -> TestApp {
    let push = push.clone();
    spawn_on(db_url, configure, |b| b.channel(NotificationType::Push, Arc::new(push))).await
}

fn push_body() -> Value {
    json!({"notificationType": "PUSH", "tokens": ["tok-1"], "title": "hello"})
}

async fn send(app: &TestApp, body: &Value) -> String {
    let (s, b) = json(app.post("/v1/notifications", body).await).await;
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    let path = format!("/v1/deliveries/{id}");
    eventually(Duration::from_secs(20), &format!("{id} becomes {status}"), || async {
        app.get_ok(&path).await["status"] == status
    })
    .await;
    app.get_ok(&path).await
}

both!(
    retry_then_success,
    exhaustion_goes_dead_then_redrive,
    scheduled_in_app_is_released
);

async fn retry_then_success(db: Db) {
    let test_db = TestDb::new(db).await;
    let push = ScriptedChannel::default();
    push.then(retry("503 from provider")).then(retry("timeout"));
    let app = with_push(&test_db.url, &push, |_| {}).await;
    let id = send(&app, &push_body()).await;
    let d = wait_status(&app, &id, "delivered").await;
    assert_eq!(d["attempts"], 3);
    assert!(d.get("lastError").is_none(), "cleared on success: {d}");
    assert_eq!(push.calls(), vec![id.clone(), id.clone(), id]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_retries_total{channel=\"scripted\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("allim_deliveries_total{channel=\"scripted\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("allim_dispatch_latency_seconds_count{channel=\"scripted\"} 3"),
        "{metrics}"
    );
    app.stop().await;
}

async fn exhaustion_goes_dead_then_redrive(db: Db) {
    let test_db = TestDb::new(db).await;
    let push = ScriptedChannel::default();
    push.always(Some(retry("provider down")));
    let app = with_push(&test_db.url, &push, |c| c.dispatch.retry_max_attempts = 3).await;
    let id = send(&app, &push_body()).await;
    let d = wait_status(&app, &id, "dead").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["lastError"], "gave up after 3 attempts: provider down");
    assert_eq!(push.calls().len(), 3);

    // A permanent error goes dead at once.
    push.always(Some(SendOutcome::Permanent {
        error: "unregistered token".into(),
    }));
    let id2 = send(&app, &push_body()).await;
    let d2 = wait_status(&app, &id2, "dead").await;
    assert_eq!(
        (d2["attempts"].as_i64(), d2["lastError"].as_str()),
        (Some(1), Some("unregistered token"))
    );

    let page = app.get_ok("/v1/dead-letters?status=dead").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], id2.as_str(), "newest first");
    assert_eq!(items[1]["payload"]["tokens"], json!(["tok-1"]));
    assert_eq!(items[1]["reason"], "gave up after 3 attempts: provider down");
    let filtered = app.get_ok("/v1/dead-letters?notificationType=SMS").await;
    assert_eq!(filtered["items"], json!([]));
    let (s, b) = json(app.get("/v1/dead-letters?status=alive").await).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("status")));

    // Redrive one: fresh attempts, delivered now that the provider answers.
    push.always(None);
    let (s, b) = json(app.post(&format!("/v1/dead-letters/{id}/redrive"), &json!({})).await).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("pending")), "{b}");
    let d = wait_status(&app, &id, "delivered").await;
    assert_eq!(d["attempts"], 1);
    let (s, _) = json(app.post(&format!("/v1/dead-letters/{id}/redrive"), &json!({})).await).await;
    assert_eq!(s, 409, "a delivered one cannot be redriven");
    let (s, _) = json(
        app.post(
            "/v1/dead-letters/01a200bb-0000-7000-8000-000000000000/redrive",
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);

    // Bulk redrive by filter.
    let (s, b) = json(
        app.post("/v1/dead-letters/redrive", &json!({"notificationType": "SLACK"}))
            .await,
    )
    .await;
    assert_eq!((s, b["redriven"].as_u64()), (200, Some(0)));
    let (s, b) = json(
        app.post("/v1/dead-letters/redrive", &json!({"notificationType": "PUSH"}))
            .await,
    )
    .await;
    assert_eq!((s, b["redriven"].as_u64()), (200, Some(1)));
    wait_status(&app, &id2, "delivered").await;
    let (s, b) = json(app.post("/v1/dead-letters/redrive", &json!({"bogus": 1})).await).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(app.get_ok("/v1/dead-letters").await["items"], json!([]));
    app.stop().await;
}

async fn scheduled_in_app_is_released(db: Db) {
    let test_db = TestDb::new(db).await;
    let clock = test_clock();
    let app = spawn_on(&test_db.url, |_| {}, |b| b.clock(clock.clone())).await;
    let due = clock.now_ms() + 3_600_000;
    let at = chrono::DateTime::from_timestamp_millis(due).unwrap().to_rfc3339();
    let id = send(
        &app,
        &json!({"notificationType": "APP_NOTIFICATION", "userId": "s1", "title": "later", "deliverAt": at}),
    )
    .await;
    assert_eq!(app.get_ok("/v1/users/s1/notifications").await["items"], json!([]));
    assert_eq!(app.get_ok(&format!("/v1/deliveries/{id}")).await["status"], "pending");
    // An hour later, on the app's clock: released.
    clock.set(due);
    let d = wait_status(&app, &id, "delivered").await;
    assert_eq!(d["attempts"], 1);
    let page = app.get_ok("/v1/users/s1/notifications").await;
    assert_eq!(page["items"][0]["title"], "later");
    app.stop().await;
}

/// A process died holding a lease: once the lease expires another process takes the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_taken_over() {
    let test_db = TestDb::new(Db::MariaDb).await;
    let push = ScriptedChannel::default();
    // First process: no dispatcher; a "ghost" leases the row and never finishes.
    let ingest = spawn_on(&test_db.url, |c| c.dispatch.dispatch = false, |b| b).await;
    let id = send(&ingest, &push_body()).await;
    let clock = test_clock();
    let claimed = ingest
        .store
        .claim_due("ghost", clock.now_ms(), 60_000, 10, "PUSH")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // The worker's clock passes the ghost's lease and the takeover margin, a third of a lease
    // (a live lease is never taken: a unit test).
    clock.advance(Duration::from_secs(81));
    let push_channel = push.clone();
    let worker = spawn_on(
        &test_db.url,
        |_| {},
        |b| {
            b.channel(NotificationType::Push, Arc::new(push_channel))
                .clock(clock.clone())
        },
    )
    .await;
    let d = wait_status(&worker, &id, "delivered").await;
    assert_eq!(d["attempts"], 2, "the ghost's attempt counts");
    assert_eq!(push.calls(), vec![id]);
    // The ghost's late answer cannot overwrite the new owner's result.
    let stale = ingest
        .store
        .finish(
            d["id"].as_str().unwrap(),
            "ghost",
            clock.now_ms(),
            &allim::store::Finish::Dead { error: "late".into() },
        )
        .await
        .unwrap();
    assert!(!stale);
    worker.stop().await;
    ingest.stop().await;
}
