//! The HTTP API end to end: sending, idempotency, validation, the inbox, delivery status,
//! auth, docs and health — each test against SQLite and MariaDB.

use serde_json::{Value, json};

use crate::both;
use crate::helpers::{Db, json, spawn_app, spawn_app_clocked, spawn_app_with};

fn app_notification(user: &str, title: &str) -> Value {
    json!({"notificationType": "APP_NOTIFICATION", "userId": user, "title": title})
}

both!(
    send_then_read_inbox,
    idempotency_key_dedupes,
    concurrent_same_key_creates_one,
    validation_errors_name_the_field,
    batch_reports_each_item,
    pagination_and_unread_filter,
    mark_read_and_read_all,
    future_deliver_at_is_stored_pending,
    other_types_are_stored_pending,
    delivery_lookup,
);

async fn send_then_read_inbox(db: Db) {
    let app = spawn_app(db).await;
    let res = app
        .post(
            "/v1/notifications",
            &json!({"notificationType": "APP_NOTIFICATION", "userId": "42", "category": "order",
                    "title": "Shipped", "body": "Your order is on its way", "link": "app://orders/1042",
                    "data": {"orderId": 1042}}),
        )
        .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["duplicate"], false);
    let delivery_id = body["id"].clone();

    let page = app.get_ok("/v1/users/42/notifications").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["title"], "Shipped");
    assert_eq!(items[0]["deliveryId"], delivery_id);
    assert_eq!(items[0]["category"], "order");
    assert_eq!(items[0]["body"], "Your order is on its way");
    assert_eq!(items[0]["link"], "app://orders/1042");
    assert_eq!(items[0]["data"], json!({"orderId": 1042}));
    assert!(items[0].get("readAt").is_none());
    assert!(page.get("nextCursor").is_none());
    assert_eq!(app.get_ok("/v1/users/42/notifications/unread-count").await["unread"], 1);
    // Another user's inbox stays empty.
    assert_eq!(app.get_ok("/v1/users/43/notifications").await["items"], json!([]));
    app.stop().await;
}

async fn idempotency_key_dedupes(db: Db) {
    let app = spawn_app(db).await;
    let mut n = app_notification("7", "Hello");
    n["idempotencyKey"] = json!("order-1042-shipped");
    let (s1, b1) = json(app.post("/v1/notifications", &n).await).await;
    let (s2, b2) = json(app.post("/v1/notifications", &n).await).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(b2["duplicate"], true);
    let page = app.get_ok("/v1/users/7/notifications").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "one inbox row for one key");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("allim_messages_received_total{source=\"http\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("allim_messages_accepted_total{source=\"http\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("allim_messages_duplicate_total{source=\"http\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

async fn concurrent_same_key_creates_one(db: Db) {
    let app = spawn_app(db).await;
    let mut n = app_notification("8", "Once");
    n["idempotencyKey"] = json!("race-1");
    let sends = (0..8).map(|_| app.post("/v1/notifications", &n));
    let results = futures::future::join_all(sends).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for res in results {
        let (status, body) = json(res).await;
        assert!(status == 202 || status == 200, "{status} {body}");
        if status == 202 {
            created += 1;
        }
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the same delivery");
    assert_eq!(created, 1, "exactly one request created it");
    let page = app.get_ok("/v1/users/8/notifications").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn validation_errors_name_the_field(db: Db) {
    let app = spawn_app(db).await;
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (app_notification("42", ""), 422, "validation", Some("title")),
        (
            json!({"notificationType": "APP_NOTIFICATION", "title": "x"}),
            422,
            "validation",
            Some("userId"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "4 2", "title": "x"}),
            422,
            "validation",
            Some("userId"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "1", "title": "x", "tilte": "y"}),
            422,
            "validation",
            Some("tilte"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "1", "title": "x", "data": [1]}),
            422,
            "validation",
            Some("data"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "1", "title": "x".repeat(201)}),
            422,
            "validation",
            Some("title"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "1", "title": "x", "deliverAt": "tomorrow"}),
            422,
            "validation",
            Some("deliverAt"),
        ),
        (
            json!({"notificationType": "APP_NOTIFICATION", "userId": "1", "title": "x", "idempotencyKey": ""}),
            422,
            "validation",
            Some("idempotencyKey"),
        ),
        (
            json!({"notificationType": "FAX", "to": "a@b.c"}),
            422,
            "unknown_notification_type",
            Some("notificationType"),
        ),
        (
            json!({"userId": "1", "title": "x"}),
            422,
            "validation",
            Some("notificationType"),
        ),
        (
            json!({"notificationType": "SMS", "to": ["01012345678"], "content": "배송 시작 🚚"}),
            422,
            "validation",
            Some("content"),
        ),
        (
            json!({"notificationType": "SMS", "to": ["555-0100"], "content": "x"}),
            422,
            "validation",
            Some("to[0]"),
        ),
        (
            json!({"notificationType": "SMS", "to": [], "content": "x"}),
            422,
            "validation",
            Some("to"),
        ),
        (
            json!({"notificationType": "PUSH", "title": "x"}),
            422,
            "validation",
            Some("userId"),
        ),
        (
            json!({"notificationType": "PUSH", "userId": "1", "data": {"n": 1}}),
            422,
            "validation",
            Some("data.n"),
        ),
        (
            json!({"notificationType": "SLACK", "text": ""}),
            422,
            "validation",
            Some("text"),
        ),
        (
            json!({"notificationType": "SLACK", "text": "x", "channel": "Not Valid"}),
            422,
            "validation",
            Some("channel"),
        ),
        (json!([1, 2]), 400, "malformed_json", None),
    ];
    for (body, status, code, field) in cases {
        let (s, b) = json(app.post("/v1/notifications", &body).await).await;
        assert_eq!(s, status, "{body} → {b}");
        assert_eq!(b["error"], code, "{body} → {b}");
        assert_eq!(b["field"].as_str(), field, "{body} → {b}");
        assert!(!b["message"].as_str().unwrap().is_empty());
    }
    let (s, b) = json(app.post_raw("/v1/notifications", "{\"notificationType\": ").await).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("malformed_json")), "{b}");
    let big = format!("{{\"pad\": \"{}\"}}", "a".repeat(300 * 1024));
    let (s, b) = json(app.post_raw("/v1/notifications", big).await).await;
    assert_eq!((s, b["error"].as_str()), (413, Some("payload_too_large")), "{b}");
    // Nothing invalid was stored.
    let n: i64 = app.store.scalar("SELECT COUNT(*) FROM deliveries").await.unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

async fn batch_reports_each_item(db: Db) {
    let app = spawn_app(db).await;
    let mut dup = app_notification("9", "Dup");
    dup["idempotencyKey"] = json!("b-1");
    let body = json!({"notifications": [
        app_notification("9", "One"),
        app_notification("9", ""),
        dup.clone(),
        dup,
        {"notificationType": "SMS", "to": ["010-1234-5678"], "content": "안녕하세요"},
        "not a notification",
    ]});
    let (s, b) = json(app.post("/v1/notifications/batch", &body).await).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicates"].as_u64(), b["invalid"].as_u64()),
        (Some(3), Some(1), Some(2)),
        "{b}"
    );
    let r = b["results"].as_array().unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(r[1]["error"]["field"], "title");
    // An item that is not an object is named by its place in the batch, not called the body.
    assert_eq!(
        (
            r[5]["error"]["error"].as_str(),
            r[5]["error"]["field"].as_str(),
            r[5]["error"]["message"].as_str()
        ),
        (
            Some("validation"),
            Some("notifications[5]"),
            Some("must be a JSON object (one notification)")
        ),
        "{b}"
    );
    assert!(r[1].get("id").is_none());
    assert_eq!(r[2]["id"], r[3]["id"]);
    assert_eq!(r[3]["duplicate"], true);
    assert_eq!(r[4]["status"], "pending");
    let page = app.get_ok("/v1/users/9/notifications").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Sending the batch again: everything with a key is a duplicate.
    let again = json!({"notifications": [body["notifications"][2].clone()]});
    let (_, b) = json(app.post("/v1/notifications/batch", &again).await).await;
    assert_eq!(b["duplicates"], 1);
    assert_eq!(b["results"][0]["id"], r[2]["id"]);
    // Counted per item, though a batch updates each counter once.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "allim_messages_received_total{source=\"http\"} 7",
        "allim_messages_accepted_total{source=\"http\"} 3",
        "allim_messages_duplicate_total{source=\"http\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    for (bad, message) in [
        (json!({"notifications": []}), "must not be empty"),
        (json!({}), "is required"),
        (json!({"notifications": 5}), "must be an array"),
    ] {
        let (s, b) = json(app.post("/v1/notifications/batch", &bad).await).await;
        assert_eq!(
            (s, b["field"].as_str(), b["message"].as_str()),
            (422, Some("notifications"), Some(message))
        );
    }
    // Bodies the one-pass read refuses are read again as a whole, which says what is wrong (or,
    // for a duplicate member, takes the last one as serde_json does).
    let (s, b) = json(app.post_raw("/v1/notifications/batch", r#"{"notifications": [}"#).await).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("malformed_json")), "{b}");
    let (s, b) = json(app.post_raw("/v1/notifications/batch", "[1]").await).await;
    assert_eq!(
        (s, b["error"].as_str(), b["message"].as_str()),
        (400, Some("malformed_json"), Some("body must be a JSON object")),
        "{b}"
    );
    let twice = r#"{"notifications": 1, "notifications": [{"notificationType": "APP_NOTIFICATION", "userId": "11", "title": "last"}]}"#;
    let (s, b) = json(app.post_raw("/v1/notifications/batch", twice).await).await;
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(1)), "{b}");
    let many: Vec<Value> = (0..501).map(|i| app_notification("10", &format!("n{i}"))).collect();
    let (s, b) = json(
        app.post("/v1/notifications/batch", &json!({"notifications": many}))
            .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("notifications")), "{b}");
    let full: Vec<Value> = (0..500).map(|i| app_notification("10", &format!("n{i}"))).collect();
    let (s, b) = json(
        app.post("/v1/notifications/batch", &json!({"notifications": full}))
            .await,
    )
    .await;
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(500)));
    assert_eq!(
        app.get_ok("/v1/users/10/notifications/unread-count").await["unread"],
        500
    );
    app.stop().await;
}

async fn pagination_and_unread_filter(db: Db) {
    let app = spawn_app(db).await;
    let items: Vec<Value> = (0..25).map(|i| app_notification("p", &format!("n{i}"))).collect();
    let (s, _) = json(
        app.post("/v1/notifications/batch", &json!({"notifications": items}))
            .await,
    )
    .await;
    assert_eq!(s, 200);
    // Newest first across pages, no gaps, no repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/p/notifications?limit=10&cursor={c}"),
            None => "/v1/users/p/notifications?limit=10".to_string(),
        };
        let page = app.get_ok(&path).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest (largest id) first");
    sorted.dedup();
    assert_eq!(sorted.len(), 25);

    // Read the newest three; unread=true leaves 22.
    for id in &seen[..3] {
        let res = app
            .post(&format!("/v1/users/p/notifications/{id}/read"), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
    }
    let page = app.get_ok("/v1/users/p/notifications?unread=true&limit=100").await;
    let unread: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(unread.len(), 22);
    assert!(!unread.contains(&seen[0].as_str()));

    for (q, field) in [("limit=0", "limit"), ("limit=101", "limit"), ("cursor=zzz", "cursor")] {
        let (s, b) = json(app.get(&format!("/v1/users/p/notifications?{q}")).await).await;
        assert_eq!((s, b["field"].as_str()), (400, Some(field)), "{q}: {b}");
    }
    let (s, b) = json(app.get("/v1/users/p/notifications?limit=ten").await).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("limit"), "{b}");
    app.stop().await;
}

async fn mark_read_and_read_all(db: Db) {
    let clock = allim::clock::Clock::manual(allim::clock::Clock::system().now_ms());
    let app = spawn_app_clocked(db, clock.clone()).await;
    for i in 0..3 {
        app.post("/v1/notifications", &app_notification("r", &format!("n{i}")))
            .await;
    }
    assert_eq!(app.get_ok("/v1/users/r/notifications/unread-count").await["unread"], 3);
    let page = app.get_ok("/v1/users/r/notifications").await;
    let id = page["items"][0]["id"].as_str().unwrap().to_string();
    let (s, first) = json(
        app.post(&format!("/v1/users/r/notifications/{id}/read"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(first["id"], id.as_str());
    clock.advance(std::time::Duration::from_secs(60));
    let (_, second) = json(
        app.post(&format!("/v1/users/r/notifications/{id}/read"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(
        first["readAt"], second["readAt"],
        "marking again keeps the first read time"
    );
    assert_eq!(app.get_ok("/v1/users/r/notifications/unread-count").await["unread"], 2);
    // Another user cannot mark it; an unknown id is 404.
    let (s, b) = json(
        app.post(&format!("/v1/users/other/notifications/{id}/read"), &json!({}))
            .await,
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")));
    let unknown = uuid::Uuid::now_v7();
    let (s, _) = json(
        app.post(&format!("/v1/users/r/notifications/{unknown}/read"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 404);
    let (s, b) = json(app.post("/v1/users/r/notifications/read-all", &json!({})).await).await;
    assert_eq!((s, b["updated"].as_u64()), (200, Some(2)));
    assert_eq!(app.get_ok("/v1/users/r/notifications/unread-count").await["unread"], 0);
    let page = app.get_ok("/v1/users/r/notifications").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["readAt"].is_string())
    );
    app.stop().await;
}

async fn future_deliver_at_is_stored_pending(db: Db) {
    let app = spawn_app(db).await;
    let at = (chrono::Utc::now() + chrono::Duration::days(3))
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    let mut n = app_notification("f", "Later");
    n["deliverAt"] = json!(at.to_rfc3339());
    let (s, b) = json(app.post("/v1/notifications", &n).await).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("pending")), "{b}");
    let d = app
        .get_ok(&format!("/v1/deliveries/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(d["status"], "pending");
    let next = chrono::DateTime::parse_from_rfc3339(d["nextAttemptAt"].as_str().unwrap()).unwrap();
    assert_eq!(next.timestamp_millis(), at.timestamp_millis());
    assert_eq!(
        app.get_ok("/v1/users/f/notifications").await["items"],
        json!([]),
        "no inbox row before it is due"
    );
    // A deliverAt in the past is delivered now.
    n["deliverAt"] = json!("2020-01-01T00:00:00Z");
    let (_, b) = json(app.post("/v1/notifications", &n).await).await;
    assert_eq!(b["status"], "delivered");
    app.stop().await;
}

async fn other_types_are_stored_pending(db: Db) {
    let app = spawn_app(db).await;
    for n in [
        json!({"notificationType": "PUSH", "userId": "42", "title": "t", "data": {"k": "v"}}),
        json!({"notificationType": "SMS", "to": ["+82 10-1234-5678", "01012345678"], "content": "안녕하세요", "subject": "제목"}),
        json!({"notificationType": "SLACK", "text": "deploy done", "channel": "ops"}),
    ] {
        let (s, b) = json(app.post("/v1/notifications", &n).await).await;
        assert_eq!((s, b["status"].as_str()), (202, Some("pending")), "{b}");
        let d = app
            .get_ok(&format!("/v1/deliveries/{}", b["id"].as_str().unwrap()))
            .await;
        assert_eq!(d["notificationType"], n["notificationType"]);
    }
    // The SMS is stored normalized: one domestic number.
    let payload: String = app
        .store
        .scalar("SELECT payload FROM deliveries WHERE notification_type = 'SMS'")
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["to"], json!(["01012345678"]));
    app.stop().await;
}

async fn delivery_lookup(db: Db) {
    let app = spawn_app(db).await;
    let mut n = app_notification("d", "x");
    n["idempotencyKey"] = json!("lookup-1");
    let (_, b) = json(app.post("/v1/notifications", &n).await).await;
    let d = app
        .get_ok(&format!("/v1/deliveries/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["source"], "http");
    assert_eq!(d["idempotencyKey"], "lookup-1");
    assert_eq!(d["attempts"], 0);
    assert_eq!(d["dryRun"], false);
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));
    let (s, b) = json(app.get("/v1/deliveries/0000").await).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")));
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_guard_v1_only() {
    let token = "test-token-0123456789abcdef";
    let mut app = spawn_app_with(Db::Sqlite, |c| {
        c.api.api_tokens = vec![allim::api::auth::ApiToken::parse(token).unwrap()]
    })
    .await;
    let n = app_notification("a", "x");
    let (s, _) = json(app.post("/v1/notifications", &n).await).await;
    assert_eq!(s, 202, "with the configured token");
    app.token = None;
    let res = app.post("/v1/notifications", &n).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let (s, b) = json(res).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("unauthorized")));
    app.token = Some("wrong-token-0123456789abcdef".into());
    assert_eq!(app.get("/v1/users/a/notifications").await.status(), 401);
    // Health and docs stay open.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    app.stop().await;
}

/// Scoped tokens: a producer's `send` token sends and nothing else; a user token the backend
/// minted opens that user's inbox and devices only; `admin` opens everything.
#[tokio::test]
async fn scoped_tokens_open_only_their_routes() {
    let secret = "app-token-secret-0123456789abcdefgh";
    let mut app = spawn_app_with(Db::Sqlite, |c| {
        c.api.api_tokens = ["send:send-token-0123456789abcdef", "admin:admin-token-0123456789abcdef"]
            .iter()
            .map(|t| allim::api::auth::ApiToken::parse(t).unwrap())
            .collect();
        c.api.app_token_secret = Some(secrecy::SecretString::from(secret));
    })
    .await;
    let as_ = |token: &str| Some(token.to_string());
    app.token = as_("send-token-0123456789abcdef");
    assert_eq!(
        app.post("/v1/notifications", &app_notification("42", "hi"))
            .await
            .status(),
        202
    );
    let (s, b) = json(app.get("/v1/users/42/notifications").await).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("forbidden")), "{b}");
    assert_eq!(app.get("/v1/dead-letters").await.status(), 403);

    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: i64,
    }
    let user_token = |sub: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &Claims {
                sub,
                exp: chrono::Utc::now().timestamp() + 300,
            },
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    app.token = Some(user_token("42"));
    assert_eq!(app.get_ok("/v1/users/42/notifications/unread-count").await["unread"], 1);
    assert_eq!(
        app.get("/v1/users/43/notifications").await.status(),
        403,
        "another user's inbox"
    );
    let steal = json!({"token": "fMEP0vJqS0Kx:APA91bH", "platform": "android"});
    let res = app
        .client
        .put(app.url("/v1/users/43/devices"))
        .bearer_auth(user_token("42"))
        .json(&steal)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a user cannot move a token to another user");
    assert_eq!(
        app.post("/v1/notifications", &app_notification("42", "x"))
            .await
            .status(),
        403
    );

    app.token = as_("admin-token-0123456789abcdef");
    assert_eq!(app.get("/v1/users/43/notifications").await.status(), 200);
    assert_eq!(app.get("/v1/dead-letters").await.status(), 200);
    let doc = app.get_ok("/openapi.json").await;
    assert_eq!(
        doc["paths"]["/v1/notifications"]["post"]["security"][0]["bearer"][0],
        "send"
    );
    assert_eq!(
        doc["paths"]["/v1/dead-letters"]["get"]["security"][0]["bearer"][0],
        "admin"
    );
    app.stop().await;
}

#[tokio::test]
async fn docs_health_and_request_ids() {
    let app = spawn_app(Db::Sqlite).await;
    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI page");
    let init = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(
        init.contains("/openapi.json"),
        "Swagger UI points at the document: {init}"
    );
    // The bundle is stored gzip-compressed: sent as it is to a client that accepts gzip, inflated
    // for one that does not (reqwest here sends no Accept-Encoding of its own).
    let plain = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(plain.status(), 200);
    assert!(
        plain.headers().get("content-encoding").is_none(),
        "{:?}",
        plain.headers()
    );
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 1_000_000, "the whole bundle: {} bytes", plain.len());
    assert!(std::str::from_utf8(&plain).unwrap().contains("SwaggerUIBundle"));
    let gz = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .header("accept-encoding", "br, gzip;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    let gz = gz.bytes().await.unwrap();
    assert!(
        gz.len() * 3 < plain.len(),
        "compressed: {} of {} bytes",
        gz.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut inflated).unwrap();
    assert!(inflated == plain, "the same file either way");
    let refused = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
    assert!(refused.text().await.unwrap().contains(".swagger-ui"));
    let doc = app.get_ok("/openapi.json").await;
    assert!(doc["paths"]["/v1/notifications"]["post"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(app.get_ok("/healthz").await["status"], "ok");
    assert_eq!(app.get_ok("/readyz").await["status"], "ready");
    let res = app.get("/nope").await;
    assert!(res.headers().contains_key("x-request-id"));
    let (s, b) = json(res).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")));
    // With the database gone, readiness says so.
    app.store.close().await;
    let (s, b) = json(app.get("/readyz").await).await;
    assert_eq!((s, b["status"].as_str()), (503, Some("unavailable")), "{b}");
    app.stop().await;
}

/// The OpenAPI document is generated from the types; this snapshot makes every change to the
/// public contract visible in review. Regenerate with `UPDATE_SNAPSHOTS=1 cargo test`.
#[test]
fn openapi_snapshot() {
    let config = allim::config::Config::for_tests("sqlite://unused.db");
    let doc = serde_json::to_string_pretty(&allim::api::openapi(&config.api)).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("snapshot exists; run with UPDATE_SNAPSHOTS=1 to create it");
    assert!(
        expected == doc,
        "OpenAPI document changed; review and run with UPDATE_SNAPSHOTS=1"
    );
}

/// Every background part (dispatcher, alarm ticker, token refresher, …) may have nothing to do;
/// none of that may stop the application.
#[tokio::test]
async fn app_keeps_running_until_stopped() {
    let app = spawn_app(Db::Sqlite).await;
    // The parts with nothing to do (no IAM token to refresh, no queue) end at their first
    // poll; a push (a dry run) that the dispatcher delivers proves the loops ran on after that.
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "PUSH", "userId": "42", "title": "hi"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    crate::support::eventually(std::time::Duration::from_secs(10), "the push is delivered", || async {
        app.get_ok(&format!("/v1/deliveries/{id}")).await["status"] == "delivered"
    })
    .await;
    assert!(
        !app.handle.as_ref().unwrap().is_finished(),
        "the application stopped by itself"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

/// MariaDB stops answering without closing its connections (a network black hole): a send is
/// answered 503 within `ALLIM_DB_WRITE_TIMEOUT`, saying it may have been stored — not held until
/// the request timeout with nothing said, nor, behind it, the writer held until TCP gives up.
/// Once the database answers again the same send (same key) is accepted, and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_is_a_503_within_the_write_timeout() {
    use crate::helpers::{TestDb, spawn_on};
    use crate::support::{FlakyProxy, eventually};
    use std::time::Duration;

    let test_db = TestDb::new(Db::MariaDb).await;
    let (proxy, via_proxy) = FlakyProxy::in_front_of(&test_db.url).await;
    // The send meets the silence in the pool's check of an idle connection (a ping), in a new
    // connection's handshake, or in its statements, depending on what the background tasks
    // hold at that moment; the write deadline (1 s) is below the connection wait (5 s, the
    // default), so it ends whichever it is. A connection wait that ended first would be a 503
    // "nothing was stored", which is what it would mean.
    let app = spawn_on(&via_proxy, |c| c.db.db_write_timeout = Duration::from_secs(1), |b| b).await;
    let send = |key: &'static str| json!({"notificationType": "APP_NOTIFICATION", "userId": "u1", "title": key, "idempotencyKey": key});
    let (s, b) = json(app.post("/v1/notifications", &send("before")).await).await;
    assert_eq!(s, 202, "{b}");

    proxy.set_silent(true);
    let (s, b) = json(app.post("/v1/notifications", &send("during")).await).await;
    assert_eq!(s, 503, "{b}");
    let message = b["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not answer within 1s") && message.contains("may have been stored"),
        "{b}"
    );

    proxy.set_silent(false);
    eventually(
        Duration::from_secs(30),
        "the same send is accepted once the database answers",
        || async { app.post("/v1/notifications", &send("during")).await.status() == 202 },
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE idempotency_key = 'during'")
            .await,
        1,
        "stored once"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries").await, 2);
    app.stop().await;
}

/// The database goes away (connections closed, new ones refused), then allim is stopped: it
/// exits within its grace plus the few seconds it allows itself after it, not after one
/// connection wait per channel lane on top (seven of 5 s) and a pool that waits for
/// connections that will not come back. ECS kills a task 120 s after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_the_database_gone_ends_soon_after_the_grace() {
    use crate::helpers::{TestDb, spawn_on};
    use crate::support::FlakyProxy;
    use std::time::Duration;

    let test_db = TestDb::new(Db::MariaDb).await;
    let (proxy, via_proxy) = FlakyProxy::in_front_of(&test_db.url).await;
    let app = spawn_on(&via_proxy, |c| c.shutdown_grace = Duration::from_secs(1), |b| b).await;
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "APP_NOTIFICATION", "userId": "u1", "title": "t"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202, "{b}");
    proxy.close();
    // Grace 1 s, then at most 4 s to give back leases and 4 s to close; 20 s is ample for that,
    // and short of 1 s + seven sequential 5 s connection waits.
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("allim stopped within 20 s with its database gone");
}
