//! Benchmarks that print figures (run through `bench/run.sh`, release build). They start the
//! real application in this process on port 0 and drive it over loopback, so client and server
//! share the machine: compare figures within one run, not across machines.
//!
//! Scenarios:
//! - `ingest`: HTTP batch ingest (500 APP_NOTIFICATIONs per request → delivery + inbox rows),
//!   against raw 500-row INSERTs of the same row shape on one connection.
//! - `single`: single `POST /v1/notifications`, 32 clients; requests/s and p50/p99 latency.
//! - `sns`: signed SNS notifications to `/webhooks/sns` (signature verified, then accepted); with
//!   `ALLIM_BENCH_PYTHON_SNS` (a python with the peer's requirements), the Python peer in the same run.
//! - `door`: `SendMessageBatch` (10 per request) through the SQS-compatible door, signed with
//!   SigV4 before the clock starts, against `POST /v1/notifications/batch` with the same 10
//!   notifications per request: notifications/s and CPU seconds each (target: ≤ 20 % more).
//! - `latency`: notifications at a fixed rate (100/s, then 1,000/s) to the SMS, Slack and
//!   webhook channels, with one stand-in answering every provider at once; p50 / p99 / max from
//!   sending the POST to the provider receiving the request.
//! - `sqs`: drain a preloaded queue into inbox rows, against a no-op consumer (receive + delete)
//!   on the same queue server (`ALLIM_BENCH_SQS`, default ministack at http://127.0.0.1:4566).
//!
//! `DATABASE_URL` picks the database (default: a fresh SQLite file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use allim::Application;
use allim::config::Config;
use serde_json::{Value, json};

const BATCH: usize = 500;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let dir = tempfile::tempdir()?;
    let db_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    println!("database: {}", allim::store::redact_url(&db_url));
    if scenario == "ingest" || scenario == "all" {
        ingest(&db_url).await?;
    }
    if scenario == "single" || scenario == "all" {
        single(&db_url).await?;
    }
    if scenario == "sns" || scenario == "all" {
        sns(&db_url, dir.path()).await?;
    }
    if scenario == "door" || scenario == "all" {
        door(&db_url).await?;
    }
    if scenario == "latency" || scenario == "all" {
        latency(&db_url).await?;
    }
    // Needs an SQS stand-in that stays fast at depth (ministack), so not part of "all".
    if scenario == "sqs" {
        sqs(&db_url).await?;
    }
    Ok(())
}

async fn start(
    db_url: &str,
    configure: impl FnOnce(&mut Config),
) -> anyhow::Result<(String, tokio_util::sync::CancellationToken, allim::store::Store)> {
    let mut config = Config::for_tests(db_url);
    config.db.db_max_connections = 16;
    config.api.max_body_bytes = 1024 * 1024;
    configure(&mut config);
    let app = Application::build(config).await?;
    let url = format!("http://{}", app.local_addr());
    let token = app.shutdown_token();
    let store = app.store().clone();
    tokio::spawn(app.run_until_stopped());
    Ok((url, token, store))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn ingest(db_url: &str) -> anyhow::Result<()> {
    let (url, stop, _store) = start(db_url, |_| {}).await?;
    let client = reqwest::Client::new();
    let requests = 200;
    // Request bodies are built before the clock starts, so the client spends its time sending.
    let bodies: Vec<bytes::Bytes> = (0..requests)
        .map(|r| {
            let items: Vec<Value> = (0..BATCH)
                .map(|i| {
                    json!({"notificationType": "APP_NOTIFICATION", "userId": format!("u{}", (r * 7 + i) % 5000),
                    "title": "Shipped", "body": "Your order is on its way", "data": {"orderId": i}})
                })
                .collect();
            bytes::Bytes::from(json!({"notifications": items}).to_string())
        })
        .collect();
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let client = client.clone();
        let url = url.clone();
        let bodies = bodies.clone();
        tasks.push(tokio::spawn(async move {
            for r in (worker..requests).step_by(4) {
                let res = client
                    .post(format!("{url}/v1/notifications/batch"))
                    .header("content-type", "application/json")
                    .body(bodies[r].clone())
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 200, "batch answered {}", res.status());
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let rows = (requests * BATCH) as f64;
    let via_http = rows / elapsed.as_secs_f64();

    // Baseline: the same delivery-row shape as raw 500-row INSERTs on one connection.
    let raw = rows / raw_inserts(db_url, requests).await?;
    println!(
        "ingest: {rows} notifications over HTTP in {:.2}s = {via_http:.0} notifications/s = {:.0} rows/s (a delivery row and an inbox row each)",
        elapsed.as_secs_f64(),
        2.0 * via_http
    );
    println!("ingest: raw 500-row INSERTs of delivery rows alone, one connection = {raw:.0} rows/s");
    println!(
        "ingest: HTTP ingest writes rows at {:.0}% of the raw INSERT rate (target: >= 80%)",
        200.0 * via_http / raw
    );
    stop.cancel();
    Ok(())
}

/// Seconds that `requests` raw 500-row INSERTs of delivery-shaped rows take on one connection
/// of its own (a second pool on the same database).
async fn raw_inserts(db_url: &str, requests: usize) -> anyhow::Result<f64> {
    use sqlx::Connection;
    let payload = json!({"notificationType": "APP_NOTIFICATION", "userId": "u1", "title": "Shipped", "body": "Your order is on its way"}).to_string();
    let create = "CREATE TABLE bench_raw (id VARCHAR(36) PRIMARY KEY, idempotency_key VARCHAR(255) NULL, notification_type VARCHAR(32), source VARCHAR(16), payload TEXT, status VARCHAR(16), next_attempt_at BIGINT NULL, last_error TEXT NULL, created_at BIGINT, updated_at BIGINT)";
    let mut sql = String::from("INSERT INTO bench_raw VALUES ");
    for i in 0..BATCH {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, NULL, 'APP_NOTIFICATION', 'http', ?, 'delivered', NULL, NULL, 0, 0)");
    }
    // The same loop on either backend's own connection type.
    macro_rules! run {
        ($conn:expr) => {{
            let mut conn = $conn;
            sqlx::query(create).execute(&mut conn).await?;
            let started = Instant::now();
            for _ in 0..requests {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for _ in 0..BATCH {
                    q = q.bind(uuid::Uuid::now_v7().to_string()).bind(payload.as_str());
                }
                q.execute(&mut conn).await?;
            }
            started.elapsed().as_secs_f64()
        }};
    }
    Ok(if db_url.starts_with("sqlite") {
        run!(sqlx::SqliteConnection::connect(db_url).await?)
    } else {
        run!(sqlx::MySqlConnection::connect(db_url).await?)
    })
}

async fn single(db_url: &str) -> anyhow::Result<()> {
    let (url, stop, _) = start(db_url, |_| {}).await?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let body = json!({"notificationType": "APP_NOTIFICATION", "userId": format!("s{w}"), "title": format!("n{n}")});
                let t = Instant::now();
                let res = client.post(format!("{url}/v1/notifications")).json(&body).send().await?;
                anyhow::ensure!(res.status() == 202, "answered {}", res.status());
                lat.push(t.elapsed());
                n += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    println!(
        "single: {} requests in 10s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len(),
        all.len() as f64 / 10.0,
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
    stop.cancel();
    Ok(())
}

async fn sns(db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let key = root.join("tests/fixtures/sns-test-key.pem");
    let cert = std::fs::read_to_string(root.join("tests/fixtures/sns-test-cert.pem"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cert_base = format!("http://{}/", listener.local_addr()?);
    let router = axum::Router::new().route("/cert.pem", axum::routing::get(move || async move { cert.clone() }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let topic = "arn:aws:sns:ap-northeast-2:123456789012:bench";
    let prefix = cert_base.clone();
    let (url, stop, _) = start(db_url, move |c| {
        c.sns.sns_topic_arns = vec![topic.into()];
        c.sns.sns_insecure_cert_url_prefix = Some(prefix);
    })
    .await?;
    // Sign the messages up front (openssl, one process for all of them).
    let count = 3000;
    let mut bodies = Vec::with_capacity(count);
    let mut script = String::new();
    let mut messages = Vec::new();
    for i in 0..count {
        let message =
            json!({"notificationType": "APP_NOTIFICATION", "userId": format!("sns{}", i % 100), "title": "from sns"})
                .to_string();
        let id = uuid::Uuid::new_v4().to_string();
        let ts = "2026-11-22T00:00:00.000Z";
        let to_sign =
            format!("Message\n{message}\nMessageId\n{id}\nTimestamp\n{ts}\nTopicArn\n{topic}\nType\nNotification\n");
        let file = dir.join(format!("m{i}"));
        std::fs::write(&file, &to_sign)?;
        script.push_str(&format!(
            "openssl dgst -sha256 -sign {} {} | base64 -w0; echo\n",
            key.display(),
            file.display()
        ));
        messages.push((id, message, ts));
    }
    let script_file = dir.join("sign.sh");
    std::fs::write(&script_file, &script)?;
    let out = std::process::Command::new("sh").arg(&script_file).output()?;
    let sigs: Vec<String> = String::from_utf8(out.stdout)?.lines().map(str::to_string).collect();
    anyhow::ensure!(sigs.len() == count, "signed {} of {count}", sigs.len());
    for ((id, message, ts), sig) in messages.into_iter().zip(sigs) {
        bodies.push(
            json!({"Type": "Notification", "MessageId": id, "TopicArn": topic, "Message": message, "Timestamp": ts,
                   "SignatureVersion": "2", "Signature": sig, "SigningCertURL": format!("{cert_base}cert.pem")})
            .to_string(),
        );
    }
    let bodies = Arc::new(bodies);
    let (secs, all) = post_all(&format!("{url}/webhooks/sns"), bodies.clone()).await?;
    println!(
        "sns: {count} signed notifications verified and accepted in {secs:.2}s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        count as f64 / secs,
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
    // The peer (what a user runs instead: FastAPI + cryptography, verify only), in the same run
    // with the same messages, when ALLIM_BENCH_PYTHON_SNS names a python with its requirements.
    if let Ok(python) = std::env::var("ALLIM_BENCH_PYTHON_SNS") {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let peer_dir = root.join("../shared/peers/python-sns");
        let mut peer = std::process::Command::new(&python)
            .args(["-m", "uvicorn", "app:app", "--app-dir"])
            .arg(&peer_dir)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--no-access-log",
                "--log-level",
                "warning",
            ])
            .env("SNS_TOPIC_ARNS", topic)
            .env("ALLIM_SNS_INSECURE_CERT_URL_PREFIX", &cert_base)
            .spawn()?;
        let peer_url = format!("http://127.0.0.1:{port}");
        let up = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(up.elapsed() < Duration::from_secs(20), "the python peer did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = post_all(&format!("{peer_url}/webhooks/sns"), bodies.clone()).await;
        let _ = peer.kill();
        let (peer_secs, peer_all) = result?;
        println!(
            "sns: python peer (verify only, stores nothing): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            count as f64 / peer_secs,
            percentile(&peer_all, 0.5).as_secs_f64() * 1000.0,
            percentile(&peer_all, 0.99).as_secs_f64() * 1000.0
        );
        println!(
            "sns: allim = {:.1}x the peer's req/s (target >= 3x), p99 {:.2}x the peer's (target <= 0.5x)",
            peer_secs / secs,
            percentile(&all, 0.99).as_secs_f64() / percentile(&peer_all, 0.99).as_secs_f64()
        );
    }
    stop.cancel();
    Ok(())
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

async fn fill(client: &aws_sdk_sqs::Client, queue: &str, n: usize) -> anyhow::Result<()> {
    let per_sender = n / 8;
    let mut tasks = Vec::new();
    for s in 0..8 {
        let client = client.clone();
        let queue = queue.to_string();
        tasks.push(tokio::spawn(async move {
            for chunk in 0..per_sender / 10 {
                let entries = (0..10)
                    .map(|i| {
                        let body = json!({"notificationType": "APP_NOTIFICATION", "userId": format!("q{}", (s * 31 + i) % 1000),
                            "title": "Shipped", "body": "Your order is on its way", "idempotencyKey": format!("b-{s}-{chunk}-{i}")});
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(format!("e{i}"))
                            .message_body(body.to_string())
                            .build()
                            .unwrap()
                    })
                    .collect();
                client.send_message_batch().queue_url(&queue).set_entries(Some(entries)).send().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn sqs(db_url: &str) -> anyhow::Result<()> {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let endpoint = std::env::var("ALLIM_BENCH_SQS").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let n: usize = std::env::var("ALLIM_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    let client = aws_sdk_sqs::Client::from_conf(conf);
    let queue = |name: String| {
        let client = client.clone();
        async move { anyhow::Ok(client.create_queue().queue_name(name).send().await?.queue_url.unwrap()) }
    };

    // The no-op consumer: two pollers that receive and delete, nothing else.
    let noop_queue = queue(format!("noop-{}", uuid::Uuid::new_v4().simple())).await?;
    fill(&client, &noop_queue, n).await?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, q, done) = (client.clone(), noop_queue.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                let out = client
                    .receive_message()
                    .queue_url(&q)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await?;
                let msgs = out.messages.unwrap_or_default();
                if msgs.is_empty() {
                    continue;
                }
                let entries = msgs
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(format!("d{i}"))
                            .receipt_handle(m.receipt_handle().unwrap())
                            .build()
                            .unwrap()
                    })
                    .collect();
                client
                    .delete_message_batch()
                    .queue_url(&q)
                    .set_entries(Some(entries))
                    .send()
                    .await?;
                done.fetch_add(msgs.len(), std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let noop_rate = n as f64 / started.elapsed().as_secs_f64();
    let noop_cpu = cpu_seconds() - cpu;

    // allim on the same server.
    let allim_queue = queue(format!("allim-{}", uuid::Uuid::new_v4().simple())).await?;
    fill(&client, &allim_queue, n).await?;
    let mut config = Config::for_tests(db_url);
    config.db.db_max_connections = 16;
    config.sqs.sqs_queue_url = Some(allim_queue);
    let rss_before = rss_mb();
    let app = Application::builder(config).sqs_client(client.clone()).build().await?;
    let store = app.store().clone();
    let stop = app.shutdown_token();
    let cpu = cpu_seconds();
    let started = Instant::now();
    tokio::spawn(app.run_until_stopped());
    loop {
        let stored: i64 = store.scalar("SELECT COUNT(*) FROM inbox").await?;
        if stored as usize >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "allim drained only {stored} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let allim_rate = n as f64 / started.elapsed().as_secs_f64();
    let allim_cpu = cpu_seconds() - cpu;
    println!(
        "sqs: no-op consumer (receive + delete, 2 pollers) drained {n} at {noop_rate:.0} msgs/s, {:.2} CPU-s per 10,000",
        noop_cpu * 10_000.0 / n as f64
    );
    println!(
        "sqs: allim drained {n} into inbox rows at {allim_rate:.0} msgs/s = {:.0}% of the no-op rate (target >= 85%), {:.2} CPU-s per 10,000 (target <= 1.5; includes the SDK client both share), RSS grew {:.1} MB",
        100.0 * allim_rate / noop_rate,
        allim_cpu * 10_000.0 / n as f64,
        rss_mb() - rss_before
    );
    stop.cancel();
    Ok(())
}

const DOOR_KEY: &str = "AKIAALLIMBENCH000001";
const DOOR_SECRET: &str = "benchSecretbenchSecretbenchSecret0000001";

/// One request made ahead: where it goes, its headers, its body.
struct Prepared {
    url: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
}

/// Signs a door request as the AWS SDKs do (the `aws-sigv4` crate they use).
fn sign(door: std::net::SocketAddr, body: &[u8]) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(DOOR_KEY, DOOR_SECRET, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("ap-northeast-2")
        .name("sqs")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut headers = vec![
        ("host".to_string(), door.to_string()),
        ("content-type".to_string(), "application/x-amz-json-1.0".to_string()),
        ("x-amz-target".to_string(), "AmazonSQS.SendMessageBatch".to_string()),
    ];
    let url = format!("http://{door}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_string(), v.to_string()));
    }
    headers.retain(|(k, _)| k != "host");
    headers
}

/// Sends every prepared request with 8 clients; notifications/s and CPU seconds used.
async fn drive(requests: Arc<Vec<Prepared>>, per_request: usize) -> anyhow::Result<(f64, f64)> {
    let client = reqwest::Client::new();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            for r in (worker..requests.len()).step_by(8) {
                let p = &requests[r];
                let mut req = client.post(&p.url).body(p.body.clone());
                for (k, v) in &p.headers {
                    req = req.header(k, v);
                }
                let res = req.send().await?;
                let status = res.status();
                let text = res.text().await?;
                anyhow::ensure!(status == 200, "answered {status}: {text}");
                anyhow::ensure!(!text.contains("\"Failed\":[{"), "an entry failed: {text}");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(((requests.len() * per_request) as f64 / secs, cpu_seconds() - cpu))
}

async fn door(db_url: &str) -> anyhow::Result<()> {
    let mut config = Config::for_tests(db_url);
    config.db.db_max_connections = 16;
    config.sqs_door.sqs_door_listen = Some("127.0.0.1:0".parse()?);
    config.sqs_door.sqs_door_keys = vec![
        allim::ingress::sqs_door::AccessKey::parse(&format!("{DOOR_KEY}:{DOOR_SECRET}")).map_err(anyhow::Error::msg)?,
    ];
    let app = Application::build(config).await?;
    let api = format!("http://{}", app.local_addr());
    let door = app.sqs_door_addr().expect("the door is on");
    let stop = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());

    let requests = 4000;
    let per = 10;
    let notification = |round: &str, r: usize, i: usize| {
        json!({"notificationType": "APP_NOTIFICATION", "userId": format!("u{}", (r * 7 + i) % 5000),
               "title": "Shipped", "body": "Your order is on its way", "data": {"orderId": i, "round": round}})
    };
    // Both sides built and signed before any clock starts, alternating so neither gets a warm
    // cache the other did not.
    let mut results = Vec::new();
    for round in ["a", "b", "c"] {
        let http: Vec<Prepared> = (0..requests)
            .map(|r| Prepared {
                url: format!("{api}/v1/notifications/batch"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: bytes::Bytes::from(
                    json!({"notifications": (0..per).map(|i| notification(&format!("h{round}"), r, i)).collect::<Vec<_>>()})
                        .to_string(),
                ),
            })
            .collect();
        let queue_url = format!("http://{door}/000000000000/notifications");
        let sqs: Vec<Prepared> = (0..requests)
            .map(|r| {
                let entries: Vec<Value> = (0..per)
                    .map(|i| json!({"Id": format!("e{i}"), "MessageBody": notification(&format!("d{round}"), r, i).to_string()}))
                    .collect();
                let body = json!({"QueueUrl": queue_url, "Entries": entries}).to_string();
                Prepared {
                    url: format!("http://{door}/"),
                    headers: sign(door, body.as_bytes()),
                    body: bytes::Bytes::from(body),
                }
            })
            .collect();
        let (http_rate, http_cpu) = drive(Arc::new(http), per).await?;
        let (door_rate, door_cpu) = drive(Arc::new(sqs), per).await?;
        results.push((http_rate, http_cpu, door_rate, door_cpu));
    }
    let n = requests * per;
    for (round, (http_rate, http_cpu, door_rate, door_cpu)) in results.iter().enumerate() {
        println!(
            "door (round {}): POST /v1/notifications/batch {http_rate:.0} notifications/s, {http_cpu:.2} CPU-s per {n}; \
             SQS door SendMessageBatch {door_rate:.0} notifications/s, {door_cpu:.2} CPU-s per {n}",
            round + 1
        );
        println!(
            "door (round {}): the door costs {:+.0}% CPU and runs at {:.0}% of the HTTP batch's rate (target: <= +20% CPU)",
            round + 1,
            100.0 * (door_cpu / http_cpu - 1.0),
            100.0 * door_rate / http_rate
        );
    }
    let (http_cpu, door_cpu) = results.iter().fold((0.0, 0.0), |(h, d), r| (h + r.1, d + r.3));
    println!(
        "door (all rounds): {:+.0}% CPU over the HTTP batch (target: <= +20%)",
        100.0 * (door_cpu / http_cpu - 1.0)
    );
    stop.cancel();
    Ok(())
}

/// One stand-in for SENS, Slack and webhooks: answers at once with each provider's success
/// shape and records when each numbered notification (`#n` in its text or `data.n`) arrived.
async fn stand_in(arrived: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>) -> anyhow::Result<String> {
    use axum::response::IntoResponse;
    let handler = move |body: bytes::Bytes| {
        let arrived = arrived.clone();
        async move {
            let now = Instant::now();
            let text = String::from_utf8_lossy(&body);
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let n = v["data"]["n"].as_u64().or_else(|| {
                text.split('#')
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            });
            if let Some(n) = n {
                arrived.lock().unwrap().entry(n).or_insert(now);
            }
            (
                axum::http::StatusCode::ACCEPTED,
                axum::Json(json!({"requestId": "bench", "requestTime": "2026-11-23T00:00:00.000",
                    "statusCode": "202", "statusName": "success"})),
            )
                .into_response()
        }
    };
    let router = axum::Router::new().fallback(axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(base)
}

async fn latency(db_url: &str) -> anyhow::Result<()> {
    let arrived = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let base = stand_in(arrived.clone()).await?;
    let provider = base.clone();
    let (url, stop, _) = start(db_url, move |c| {
        c.channels.sens.sens_access_key = Some("bench-access-key".into());
        c.channels.sens.sens_secret_key = Some(secrecy::SecretString::from("bench-secret-key"));
        c.channels.sens.sens_service_id = Some("ncp:sms:kr:0000:bench".into());
        c.channels.sens.sens_from = Some("0212345678".into());
        c.channels.sens.sens_base_url = provider.clone();
        c.channels.sens.sens_results_after = Duration::from_secs(3600);
        c.channels.sens.sens_rate_per_sec = 5000.0;
        c.channels.slack.slack_rate_per_sec = 5000.0;
        c.channels.slack.slack_webhooks = vec![allim::channels::slack::SlackWebhook {
            name: "default".into(),
            url: secrecy::SecretString::from(format!("{provider}/services/T0BENCH")),
        }];
        c.channels.webhook.webhook_endpoints =
            vec![allim::channels::webhook::parse_endpoint(&format!("default={provider}/hooks")).unwrap()];
        c.channels.webhook.webhook_secrets =
            vec![allim::channels::webhook::parse_secret("default=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()];
        c.channels.webhook.webhook_rate_per_sec = 5000.0;
        // Production's defaults, not the tests' fast polling: a new delivery wakes the dispatcher.
        c.dispatch.dispatch_interval = std::env::var("ALLIM_BENCH_DISPATCH_INTERVAL")
            .ok()
            .and_then(|v| allim::settings::parse_duration(&v).ok())
            .unwrap_or(Duration::from_secs(1));
    })
    .await?;
    let client = reqwest::Client::new();
    let mut n: u64 = 0;
    for rate in [100u64, 1000] {
        let seconds = 5;
        let total = rate * seconds;
        let mut sent: Vec<(u64, &'static str, Instant)> = Vec::with_capacity(total as usize);
        let mut tasks = tokio::task::JoinSet::new();
        let period = Duration::from_secs_f64(1.0 / rate as f64);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..total {
            tick.tick().await;
            n += 1;
            let (kind, body) = match i % 3 {
                0 => (
                    "SMS",
                    json!({"notificationType": "SMS", "to": ["01012345678"], "content": format!("bench #{n}")}),
                ),
                1 => (
                    "SLACK",
                    json!({"notificationType": "SLACK", "text": format!("bench #{n}")}),
                ),
                _ => (
                    "WEBHOOK",
                    json!({"notificationType": "WEBHOOK", "eventType": "bench.sent", "data": {"n": n}}),
                ),
            };
            sent.push((n, kind, Instant::now()));
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move {
                let res = client
                    .post(format!("{url}/v1/notifications"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 202, "answered {}", res.status());
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        // Wait (bounded) for the last ones to reach the stand-in.
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrived.lock().unwrap().len() < n as usize && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = arrived.lock().unwrap().clone();
        for kind in ["SMS", "SLACK", "WEBHOOK", "all"] {
            let mut lat: Vec<Duration> = sent
                .iter()
                .filter(|(_, k, _)| kind == "all" || *k == kind)
                .filter_map(|(id, _, at)| got.get(id).map(|t| t.duration_since(*at)))
                .collect();
            let expected = sent.iter().filter(|(_, k, _)| kind == "all" || *k == kind).count();
            lat.sort();
            println!(
                "latency at {rate}/s, {kind}: {}/{expected} arrived; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target at 100/s: p99 <= 20 ms)",
                lat.len(),
                percentile(&lat, 0.5).as_secs_f64() * 1000.0,
                percentile(&lat, 0.99).as_secs_f64() * 1000.0,
                lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
            );
        }
    }
    stop.cancel();
    Ok(())
}

/// Posts every body once with 32 clients; seconds taken and each request's latency.
async fn post_all(url: &str, bodies: Arc<Vec<String>>) -> anyhow::Result<(f64, Vec<Duration>)> {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, bodies, next) = (client.clone(), url.to_string(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() {
                    break;
                }
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "text/plain")
                    .header("x-amz-sns-message-type", "Notification")
                    .body(bodies[i].clone())
                    .send()
                    .await?;
                let status = res.status();
                anyhow::ensure!(
                    status == 200,
                    "{url} answered {status}: {}",
                    res.text().await.unwrap_or_default()
                );
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    Ok((secs, all))
}
