//! The three channels of the channel issue together, through both doors, on MariaDB: a producer
//! sends ALIMTALK (one recipient with KakaoTalk, one without), EMAIL and WEBHOOK notifications
//! over HTTP and through an SQS queue (moto, the real AWS SDK client). Each stand-in records
//! and verifies independently: the SENS stand-in checks every signature, moto's SES records the
//! mail, and the webhook receiver verifies with the `standardwebhooks` package.

use std::time::Duration;

use serde_json::{Value, json};

use crate::alimtalk::{final_results, kakao_then_failover};
use crate::email::{sent as ses_sent, verify_identity};
use crate::helpers::{Db, TestDb, json, settled, spawn_on, test_clock};
use crate::providers::{SensServer, TEMPLATE_SHIPPED, with_alimtalk};
use crate::support::{create_queue, eventually, moto_aws_config, send_all, sqs_client};
use crate::webhooks::{SECRET, receiver};

const WITH_KAKAO: &str = "01011112222";
const WITHOUT_KAKAO: &str = "01022223333";

fn alimtalk(order: &str) -> Value {
    json!({"notificationType": "ALIMTALK", "templateCode": TEMPLATE_SHIPPED, "to": [WITH_KAKAO, WITHOUT_KAKAO],
           "variables": {"name": "홍길동", "orderNo": order}})
}

fn text(order: &str) -> String {
    format!("홍길동님, 주문 {order}이(가) 발송되었습니다.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alimtalk_email_and_webhook_through_sqs_and_http() {
    let sens = SensServer::start().await;
    sens.state.no_kakao.lock().unwrap().insert(WITHOUT_KAKAO.into());
    let rx = receiver();
    let sender = format!("noreply-{}@example.com", uuid::Uuid::new_v4().simple());
    verify_identity(&sender).await;
    let client = sqs_client();
    let queue = create_queue(&client, false).await;
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let (sens_url, sens_state) = (sens.base_url.clone(), sens.state.clone());
    let hook = format!("default={}/hooks", rx.base);
    let app = spawn_on(
        &db.url,
        {
            let queue = queue.clone();
            let sender = sender.clone();
            move |c| {
                with_alimtalk(
                    c,
                    &SensServer {
                        base_url: sens_url,
                        state: sens_state,
                    },
                );
                c.channels.sens.sens_results_after = Duration::from_secs(1);
                c.channels.email.email_from = Some(sender);
                c.channels.webhook.webhook_endpoints = vec![allim::channels::webhook::parse_endpoint(&hook).unwrap()];
                c.channels.webhook.webhook_secrets =
                    vec![allim::channels::webhook::parse_secret(&format!("default={SECRET}")).unwrap()];
                c.sqs.sqs_queue_url = Some(queue);
            }
        },
        {
            let clock = clock.clone();
            move |b| b.sqs_client(sqs_client()).aws_config(moto_aws_config()).clock(clock)
        },
    )
    .await;

    let run = uuid::Uuid::new_v4().simple().to_string();
    let (http_subject, sqs_subject) = (format!("http {run}"), format!("sqs {run}"));
    let email = |subject: &str| json!({"notificationType": "EMAIL", "to": ["kim@example.com"], "subject": subject, "text": "On its way."});
    let webhook =
        |via: &str| json!({"notificationType": "WEBHOOK", "eventType": "order.shipped", "data": {"via": via}});

    // Over HTTP.
    let mut ids = Vec::new();
    for body in [alimtalk("1042"), email(&http_subject), webhook("http")] {
        let (s, b) = json(app.post("/v1/notifications", &body).await).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    // A template variable typo is a 422 at accept time.
    let mut typo = alimtalk("1042");
    typo["variables"] = json!({"name": "홍길동", "orderNum": "1042"});
    let (s, b) = json(app.post("/v1/notifications", &typo).await).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("variables.orderNum")), "{b}");

    // Through the queue, each with its own key; the typo too (kept as rejected, with the reason).
    let keyed = |mut v: Value, key: &str| {
        v["idempotencyKey"] = json!(format!("{key}-{run}"));
        v.to_string()
    };
    let bodies = [
        keyed(alimtalk("2042"), "alimtalk"),
        keyed(email(&sqs_subject), "email"),
        keyed(webhook("sqs"), "webhook"),
        keyed(typo, "typo"),
    ];
    send_all(&client, &queue, &bodies, None).await;
    let keys: Vec<String> = ["alimtalk", "email", "webhook"]
        .iter()
        .map(|k| format!("{k}-{run}"))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let rejected = || async {
        let page = app.get_ok("/v1/dead-letters?status=rejected").await;
        page["items"].as_array().cloned().unwrap_or_default()
    };
    eventually(Duration::from_secs(20), "the queue's messages are accepted", || async {
        app.store.find_by_keys(&key_refs).await.unwrap().len() == 3 && rejected().await.len() == 1
    })
    .await;
    let found = app.store.find_by_keys(&key_refs).await.unwrap();
    for key in &keys {
        ids.push(found[key].0.clone());
    }
    let typo = rejected().await.remove(0);
    assert_eq!(typo["source"], "sqs", "{typo}");
    assert!(
        typo["reason"].as_str().unwrap().contains("variables.orderNum"),
        "{typo}"
    );

    for id in &ids {
        let d = settled(&app, &clock, id).await;
        assert_eq!(
            (d["status"].as_str(), d["dryRun"].as_bool()),
            (Some("delivered"), Some(false)),
            "{d}"
        );
    }

    // SENS: exactly one valid AlimTalk per recipient and notification, every call signed right;
    // the recipient without KakaoTalk got each as the failover SMS, the other got none.
    let mut got: Vec<(String, String)> = sens.alimtalk().into_iter().map(|m| (m.to, m.content)).collect();
    got.sort();
    let mut want = vec![
        (WITH_KAKAO.to_string(), text("1042")),
        (WITH_KAKAO.to_string(), text("2042")),
        (WITHOUT_KAKAO.to_string(), text("1042")),
        (WITHOUT_KAKAO.to_string(), text("2042")),
    ];
    want.sort();
    assert_eq!(got, want);
    let mut failover = sens.failover_sms();
    failover.sort();
    assert_eq!(
        failover,
        [
            (WITHOUT_KAKAO.to_string(), "SMS".to_string(), text("1042")),
            (WITHOUT_KAKAO.to_string(), "SMS".to_string(), text("2042")),
        ]
    );
    assert_eq!(*sens.state.rejected_auth.lock().unwrap(), 0);

    // SES (moto): one mail per notification.
    assert_eq!(ses_sent(&http_subject).await.len(), 1);
    assert_eq!(ses_sent(&sqs_subject).await.len(), 1);

    // The webhook receiver: one verified request per notification, webhook-id = delivery id.
    let hooks: Value = reqwest::get(format!("{}/received", rx.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hooks["refused"], json!([]), "{hooks}");
    let received = hooks["received"].as_array().unwrap();
    assert_eq!(received.len(), 2, "{hooks}");
    for (via, id) in [("http", &ids[2]), ("sqs", &ids[5])] {
        let r: Vec<&Value> = received.iter().filter(|r| r["payload"]["data"]["via"] == via).collect();
        assert_eq!(r.len(), 1, "{hooks}");
        assert_eq!(r[0]["id"], id.as_str());
    }

    // Each AlimTalk recipient's final result.
    for id in [&ids[0], &ids[3]] {
        kakao_then_failover(&final_results(&app, &clock, id, 2).await);
    }
    app.stop().await;
}
