//! EMAIL through the real aws-sdk-sesv2 client against moto's SES v2, which records what it
//! sent (`/moto-api/data.json`) and refuses an unverified sender as SES does.

use serde_json::{Value, json};

use crate::helpers::{Db, TestApp, TestDb, json, settled, spawn_on, test_clock};
use crate::support::{moto_aws_config, moto_endpoint};

/// SES v1 `VerifyEmailIdentity` on moto (moto's SES v2 sends only from verified identities).
pub async fn verify_identity(address: &str) {
    let res = reqwest::Client::new()
        .post(moto_endpoint())
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&[
            ("Action", "VerifyEmailIdentity"),
            ("Version", "2010-12-01"),
            ("EmailAddress", address),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// What moto's SES recorded with this subject.
pub async fn sent(subject: &str) -> Vec<Value> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["subject"] == subject)
        .collect()
}

async fn app(db: &TestDb, from: &str, clock: &allim::clock::Clock) -> TestApp {
    let from = from.to_string();
    let clock = clock.clone();
    spawn_on(
        &db.url,
        move |c| c.channels.email.email_from = Some(from),
        move |b| b.aws_config(moto_aws_config()).clock(clock),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_out_through_ses() {
    let sender = format!("noreply-{}@example.com", uuid::Uuid::new_v4().simple());
    verify_identity(&sender).await;
    let db = TestDb::new(Db::Sqlite).await;
    let clock = test_clock();
    let app = app(&db, &sender, &clock).await;
    let subject = format!("Your order has shipped {}", uuid::Uuid::new_v4().simple());
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "EMAIL", "to": ["kim@example.com", "lee@example.co.kr", "KIM@example.com"],
                    "subject": subject, "text": "On its way.", "html": "<p>On its way.</p>"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let d = settled(&app, &clock, b["id"].as_str().unwrap()).await;
    assert_eq!(
        (d["status"].as_str(), d["dryRun"].as_bool()),
        (Some("delivered"), Some(false)),
        "{d}"
    );
    let mails = sent(&subject).await;
    assert_eq!(mails.len(), 1, "one message for all recipients");
    assert_eq!(mails[0]["source"], sender.as_str());
    assert_eq!(
        mails[0]["destinations"]["ToAddresses"],
        json!(["kim@example.com", "lee@example.co.kr"]),
        "duplicates removed at accept time"
    );

    // A bad address is refused at accept time, naming it.
    let (s, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "EMAIL", "to": ["kim@"], "subject": "x", "text": "y"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("to[0]")), "{b}");
    app.stop().await;

    // SES refuses an unverified sender (MessageRejected): permanent, the delivery is dead.
    let app = self::app(&db, "nobody@unverified.example", &clock).await;
    let (_, b) = json(
        app.post(
            "/v1/notifications",
            &json!({"notificationType": "EMAIL", "to": ["kim@example.com"], "subject": "x", "text": "y"}),
        )
        .await,
    )
    .await;
    let d = settled(&app, &clock, b["id"].as_str().unwrap()).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("dead"), Some(1)),
        "{d}"
    );
    assert!(d["lastError"].as_str().unwrap().contains("MessageRejected"), "{d}");
    app.stop().await;
}
