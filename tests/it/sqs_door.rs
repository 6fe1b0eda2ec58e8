//! The SQS-compatible door with the real Rust AWS SDK (`aws-sdk-sqs`, JSON protocol), on
//! MariaDB: single messages, batches with a bad entry, delays, de-duplication, signatures, and
//! the MD5 fields checked against moto's own computation of them. boto3, the AWS CLI and a
//! query-protocol botocore are driven by `scripts/sqs_door_clients.sh`.

use std::net::SocketAddr;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use serde_json::json;

use std::time::Duration;

use crate::helpers::{Db, TestApp, TestDb, settled, spawn_on, test_clock};
use crate::support::{create_queue, sqs_client};

pub const KEY_ID: &str = "AKIAALLIMDOORTEST001";
pub const SECRET: &str = "doorSecret/K7MDENG+bPxRfiCYEXAMPLEKEY0001";

/// An app with the door on, on MariaDB, on a manual clock.
async fn app(db: &TestDb, clock: &allim::clock::Clock) -> TestApp {
    spawn_on(
        &db.url,
        |c| {
            c.sqs_door.sqs_door_listen = Some("127.0.0.1:0".parse().unwrap());
            c.sqs_door.sqs_door_queues = vec!["notifications".into(), "orders.fifo".into()];
            c.sqs_door.sqs_door_keys =
                vec![allim::ingress::sqs_door::AccessKey::parse(&format!("{KEY_ID}:{SECRET}")).unwrap()];
        },
        |b| b.clock(clock.clone()),
    )
    .await
}

/// The real SDK client, as a producer configures it: an endpoint URL and an access key.
fn producer(door: SocketAddr, key: &str, secret: &str) -> Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ap-northeast-2"))
        .endpoint_url(format!("http://{door}"))
        .credentials_provider(Credentials::new(key, secret, None, None, "static"))
        .build();
    Client::from_conf(conf)
}

fn in_app(user: &str, title: &str) -> String {
    json!({"notificationType": "APP_NOTIFICATION", "userId": user, "title": title}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_sends_through_the_door() {
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let app = app(&db, &clock).await;
    let sqs = producer(app.door.unwrap(), KEY_ID, SECRET);

    // A producer looks its queue up, then sends.
    let url = sqs
        .get_queue_url()
        .queue_name("notifications")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(url, format!("http://{}/000000000000/notifications", app.door.unwrap()));
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attrs[&QueueAttributeName::QueueArn],
        "arn:aws:sqs:ap-northeast-2:000000000000:notifications"
    );
    assert_eq!(attrs[&QueueAttributeName::DelaySeconds], "0");

    let body = in_app("door-1", "배송이 시작되었습니다");
    let sent = sqs
        .send_message()
        .queue_url(&url)
        .message_body(&body)
        .message_attributes(
            "trace",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("abc")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "blob",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0u8, 1, 2, 255]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // The MessageId is the delivery id, and the row is committed when the answer comes.
    let id = sent.message_id.clone().unwrap();
    let d = app.get_ok(&format!("/v1/deliveries/{id}")).await;
    assert_eq!(d["source"], "sqs-api");
    assert_eq!(d["status"], "delivered", "in-app rows are written at accept time");

    // The digests are computed exactly as SQS computes them: moto, given the same message,
    // answers the same ones.
    let moto = sqs_client();
    let moto_queue = create_queue(&moto, false).await;
    let oracle = moto
        .send_message()
        .queue_url(&moto_queue)
        .message_body(&body)
        .message_attributes(
            "trace",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("abc")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "blob",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0u8, 1, 2, 255]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.md5_of_message_body, oracle.md5_of_message_body);
    assert_eq!(sent.md5_of_message_attributes, oracle.md5_of_message_attributes);
    assert!(sent.md5_of_message_attributes.is_some());

    // A batch with one bad entry: the others are stored, the bad one is reported by its Id.
    let entry = |id: &str, body: String| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };
    let out = sqs
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("a", in_app("door-2", "one")))
        .entries(entry(
            "bad",
            json!({"notificationType": "APP_NOTIFICATION", "userId": "door-2"}).to_string(),
        ))
        .entries(entry("c", in_app("door-2", "three")))
        .send()
        .await
        .unwrap();
    let ok: Vec<&str> = out.successful.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ok, ["a", "c"]);
    assert_eq!(out.failed.len(), 1);
    let f = &out.failed[0];
    assert_eq!(
        (f.id.as_str(), f.code.as_str(), f.sender_fault),
        ("bad", "InvalidParameterValue", true)
    );
    assert!(f.message.as_deref().unwrap().contains("title"), "{f:?}");
    for s in &out.successful {
        let d = app.get_ok(&format!("/v1/deliveries/{}", s.message_id)).await;
        assert_eq!(d["status"], "delivered");
    }
    let inbox = app.get_ok("/v1/users/door-2/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 2, "{inbox}");

    // The same MessageDeduplicationId twice: one delivery, the same MessageId.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = sqs
            .send_message()
            .queue_url(&url)
            .message_body(in_app("door-3", "once"))
            .message_deduplication_id("order-7-shipped")
            .send()
            .await
            .unwrap();
        ids.push(out.message_id.unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    let inbox = app.get_ok("/v1/users/door-3/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);

    // DelaySeconds becomes deliverAt: nothing in the inbox until the clock reaches it.
    let delayed = sqs
        .send_message()
        .queue_url(&url)
        .message_body(in_app("door-4", "later"))
        .delay_seconds(120)
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    let d = app.get_ok(&format!("/v1/deliveries/{delayed}")).await;
    assert_eq!(d["status"], "pending");
    let due = chrono::DateTime::parse_from_rfc3339(d["nextAttemptAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(due, clock.now_ms() + 120_000);
    clock.set(due);
    let d = settled(&app, &clock, &delayed).await;
    assert_eq!(d["status"], "delivered");
    let inbox = app.get_ok("/v1/users/door-4/notifications").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_refuses_as_sqs_does() {
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let app = app(&db, &clock).await;
    let door = app.door.unwrap();
    let url = format!("http://{door}/000000000000/notifications");
    let good = producer(door, KEY_ID, SECRET);

    let code = |e: &dyn ProvideErrorMetadata| e.code().unwrap_or_default().to_string();

    // A wrong secret, and an unknown key: SQS's own codes, nothing stored.
    let wrong = producer(door, KEY_ID, "not-the-secret-at-all-0000000000");
    let e = wrong
        .send_message()
        .queue_url(&url)
        .message_body(in_app("door-x", "no"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    let stranger = producer(door, "AKIAUNKNOWNKEY000001", SECRET);
    let e = stranger
        .get_queue_url()
        .queue_name("notifications")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "InvalidClientTokenId");
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries").await, 0);

    // A queue that is not configured.
    let e = good
        .get_queue_url()
        .queue_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_queue_does_not_exist(), "{e:?}");
    assert_eq!(code(&e), "AWS.SimpleQueueService.NonExistentQueue");

    // A body that is not a notification: refused, naming the field.
    let e = good
        .send_message()
        .queue_url(&url)
        .message_body(json!({"notificationType": "SMS", "to": ["01012345678"]}).to_string())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert!(e.message().unwrap().contains("content"), "{e:?}");

    // A body that is not JSON at all is named as such.
    let e = good
        .send_message()
        .queue_url(&url)
        .message_body("{\"notificationType\": \"SMS\", ")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert!(
        e.message()
            .unwrap()
            .starts_with("MessageBody is not an allim notification: not valid JSON: "),
        "{e:?}"
    );

    // DelaySeconds out of range.
    let e = good
        .send_message()
        .queue_url(&url)
        .message_body(in_app("door-x", "late"))
        .delay_seconds(901)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert!(e.message().unwrap().contains("DelaySeconds"));

    // Batches: too many entries, repeated ids.
    let entry = |id: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(in_app("door-x", "b"))
            .build()
            .unwrap()
    };
    let e = good
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some((0..11).map(|i| entry(&format!("e{i}"))).collect()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_too_many_entries_in_batch_request(), "{e:?}");
    let e = good
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("same"))
        .entries(entry("same"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_batch_entry_ids_not_distinct(), "{e:?}");

    // A FIFO queue name needs a group and a de-duplication id, as SQS's does.
    let fifo = format!("http://{door}/000000000000/orders.fifo");
    let e = good
        .send_message()
        .queue_url(&fifo)
        .message_body(in_app("door-x", "f"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "MissingParameter");

    // What the door does not do.
    let e = good
        .receive_message()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "InvalidAction");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "nothing refused was stored"
    );
    app.stop().await;
}

/// Where the venvs with the unmodified clients live (scripts/test.sh makes them): a current
/// boto3 and AWS CLI (JSON protocol), and botocore 1.34.89 with AWS CLI 1.32.89 (query).
fn client_venv(kind: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".venv-sqs-{kind}"));
    assert!(
        dir.join("bin/aws").exists(),
        "{} has no AWS CLI: run scripts/test.sh, which installs the SQS door's test clients",
        dir.display()
    );
    dir
}

/// Runs a client with only an endpoint and a key given to it.
fn run(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SQS")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "ap-northeast-2")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

async fn clients_send_through_the_door(kind: &str) {
    let venv = client_venv(kind);
    let sens = crate::providers::SensServer::start().await;
    let db = TestDb::new(Db::MariaDb).await;
    let clock = test_clock();
    let (sens_url, sens_state) = (sens.base_url.clone(), sens.state.clone());
    let app = spawn_on(
        &db.url,
        move |c| {
            c.sqs_door.sqs_door_listen = Some("127.0.0.1:0".parse().unwrap());
            c.sqs_door.sqs_door_keys =
                vec![allim::ingress::sqs_door::AccessKey::parse(&format!("{KEY_ID}:{SECRET}")).unwrap()];
            crate::providers::with_sens(
                c,
                &crate::providers::SensServer {
                    base_url: sens_url,
                    state: sens_state,
                },
            );
        },
        |b| b.clock(clock.clone()),
    )
    .await;
    let endpoint = format!("http://{}", app.door.unwrap());
    let tag = format!("{kind}{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sms_to = "01055556666";

    // boto3. The clock stands still unless a test moves it: every message is accepted at `now`.
    let now = clock.now_ms();
    let out = run(
        &venv.join("bin/python"),
        &[concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sqs_door_producer.py")],
        &[("ALLIM_DOOR_ENDPOINT", &endpoint), ("TAG", &tag), ("SMS_TO", sms_to)],
    );
    assert!(
        out.status.success(),
        "boto3 producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["protocol"], kind, "{r}");
    assert_eq!(r["wrong_secret"], "SignatureDoesNotMatch", "{r}");
    let id = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    for user in ["single", "batch"] {
        let inbox = app.get_ok(&format!("/v1/users/{tag}-{user}/notifications")).await;
        let expected = if user == "batch" { 2 } else { 1 };
        assert_eq!(inbox["items"].as_array().unwrap().len(), expected, "{user}: {inbox}");
    }
    assert_eq!(r["batch_successful"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["batch_failed"][0]["Id"], "bad");
    assert_eq!(r["batch_failed"][0]["Code"], "InvalidParameterValue");
    assert_eq!(r["batch_failed"][0]["SenderFault"], true);
    assert!(
        r["batch_failed"][0]["Message"].as_str().unwrap().contains("title"),
        "{r}"
    );
    assert_eq!(
        r["duplicates"][0], r["duplicates"][1],
        "one MessageDeduplicationId, one delivery"
    );
    for key in ["sms", "single"] {
        assert_eq!(settled(&app, &clock, &id(&r[key])).await["status"], "delivered");
    }
    assert_eq!(
        settled(&app, &clock, &id(&r["duplicates"][0])).await["status"],
        "delivered"
    );

    // The AWS CLI, with the same endpoint and key.
    let aws = venv.join("bin/aws");
    let version = run(&aws, &["--version"], &[]);
    let version = format!(
        "{}{}",
        String::from_utf8_lossy(&version.stdout),
        String::from_utf8_lossy(&version.stderr)
    );
    let cli = |args: &[&str]| {
        let mut all = vec!["sqs", "--endpoint-url", &endpoint, "--output", "json"];
        all.extend_from_slice(args);
        run(&aws, &all, &[])
    };
    let url = r["queue_url"].as_str().unwrap().to_string();
    let body = json!({"notificationType": "SMS", "to": [sms_to], "content": format!("[allim] {tag} cli")}).to_string();
    let mut cli_ids = Vec::new();
    for _ in 0..2 {
        let out = cli(&[
            "send-message",
            "--queue-url",
            &url,
            "--message-body",
            &body,
            "--message-deduplication-id",
            &format!("{tag}-cli"),
        ]);
        assert!(
            out.status.success(),
            "aws ({version}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        cli_ids.push(id(&v["MessageId"]));
    }
    assert_eq!(cli_ids[0], cli_ids[1]);
    let entries = json!([
        {"Id": "ok", "MessageBody": in_app(&format!("{tag}-cli"), "cli batch")},
        {"Id": "broken", "MessageBody": "not json"},
    ])
    .to_string();
    let out = cli(&["send-message-batch", "--queue-url", &url, "--entries", &entries]);
    assert!(
        out.status.success(),
        "aws ({version}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Successful"][0]["Id"], "ok", "{v}");
    assert_eq!(v["Failed"][0]["Id"], "broken", "{v}");
    assert_eq!(v["Failed"][0]["Code"], "InvalidParameterValue", "{v}");
    let out = cli(&[
        "send-message",
        "--queue-url",
        &url,
        "--delay-seconds",
        "30",
        "--message-body",
        &in_app(&format!("{tag}-cli-delayed"), "cli later"),
    ]);
    assert!(
        out.status.success(),
        "aws ({version}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_delayed = id(&serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["MessageId"]);
    let out = run(
        &aws,
        &[
            "sqs",
            "--endpoint-url",
            &endpoint,
            "send-message",
            "--queue-url",
            &url,
            "--message-body",
            &body,
        ],
        &[("AWS_SECRET_ACCESS_KEY", "a-wrong-secret-0000000000000000000000")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(settled(&app, &clock, &cli_ids[0]).await["status"], "delivered");

    // Delayed ones: due exactly when asked, and delivered once the clock gets there.
    for (key, delay) in [(id(&r["delayed"]), 60_000), (cli_delayed.clone(), 30_000)] {
        let d = app.get_ok(&format!("/v1/deliveries/{key}")).await;
        assert_eq!(d["status"], "pending");
        let due = chrono::DateTime::parse_from_rfc3339(d["nextAttemptAt"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert_eq!(due, now + delay);
    }
    clock.set(now + 60_000);
    assert_eq!(settled(&app, &clock, &id(&r["delayed"])).await["status"], "delivered");
    assert_eq!(settled(&app, &clock, &cli_delayed).await["status"], "delivered");
    for user in ["delayed", "cli-delayed"] {
        let inbox = app.get_ok(&format!("/v1/users/{tag}-{user}/notifications")).await;
        assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{user}");
    }

    // Exactly once at the SMS stand-in: each text once, duplicates included.
    let texts: Vec<String> = sens
        .state
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.content.clone())
        .collect();
    for text in [
        format!("[allim] {tag} 문자"),
        format!("[allim] {tag} 한 번만"),
        format!("[allim] {tag} cli"),
    ] {
        assert_eq!(texts.iter().filter(|t| **t == text).count(), 1, "{text} in {texts:?}");
    }
    if kind == "query" {
        assert!(version.contains("botocore/1.34.89"), "{version}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_send_through_the_door_json_protocol() {
    clients_send_through_the_door("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_send_through_the_door_query_protocol() {
    clients_send_through_the_door("query").await;
}

/// The binary, logging everything at `debug`, is sent good and badly signed requests: its
/// output never holds a secret, a signature, or the whole key id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_signatures_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (api, door) = (free(), free());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_allim"))
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("l.db").display()),
        )
        .env("ALLIM_LISTEN", api.to_string())
        .env("ALLIM_SQS_DOOR_LISTEN", door.to_string())
        .env("ALLIM_SQS_DOOR_KEYS", format!("{KEY_ID}:{SECRET}"))
        .env("ALLIM_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::eventually(Duration::from_secs(20), "the door listens", || async {
        tokio::net::TcpStream::connect(door).await.is_ok()
    })
    .await;
    let url = format!("http://{door}/000000000000/notifications");
    let good = producer(door, KEY_ID, SECRET);
    good.send_message()
        .queue_url(&url)
        .message_body(in_app("logged", "hi"))
        .send()
        .await
        .unwrap();
    let wrong_secret = "wrongSecretWrongSecretWrongSecret0000000";
    let e = producer(door, KEY_ID, wrong_secret)
        .send_message()
        .queue_url(&url)
        .message_body(in_app("logged", "no"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    // SIGTERM, then read everything it wrote.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    // wait_with_output reads the pipes while it waits: a chatty child never blocks on them.
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("sqs door: request refused"),
        "the refusal is logged: {log}"
    );
    assert!(log.contains("SignatureDoesNotMatch"));
    for secret in [SECRET, wrong_secret, KEY_ID, "Signature="] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
