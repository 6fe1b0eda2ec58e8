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
//! - `latency`: notifications at a fixed rate (100/s, then 1,000/s) to the SMS, push (FCM),
//!   Slack and webhook channels, with one stand-in answering every provider at once; p50 / p99 / max from
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
    let temp = tempfile::tempdir()?;
    // ALLIM_BENCH_DIR keeps the databases and the server processes' logs after the run.
    let kept = std::env::var("ALLIM_BENCH_DIR").ok().map(std::path::PathBuf::from);
    let dir: &std::path::Path = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir)?;
    // `all`: every scenario on SQLite and, when ALLIM_BENCH_MARIADB names a database (bench/run.sh
    // sets it), on MariaDB too; then the SQS drain and the footprint; then one table.
    let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
    let databases: Vec<String> = if scenario == "all" {
        let mut v = vec![sqlite.clone()];
        v.extend(std::env::var("ALLIM_BENCH_MARIADB").ok());
        v
    } else {
        vec![std::env::var("DATABASE_URL").unwrap_or(sqlite)]
    };
    let wants = |name: &str| scenario == name || scenario == "all";
    for db_url in &databases {
        println!("database: {}", allim::store::redact_url(db_url));
        if wants("ingest") {
            ingest(db_url, dir).await?;
        }
        // No target: not part of `all`.
        if scenario == "single" {
            single(db_url).await?;
        }
        if wants("sns") {
            sns(db_url, dir).await?;
        }
        if wants("door") {
            door(db_url).await?;
        }
        if wants("latency") {
            latency(db_url).await?;
            raw_commit_latency(db_url, dir).await?;
        }
    }
    // Needs an SQS stand-in that stays fast at depth (ministack; bench/run.sh starts it) and,
    // for the Node peer, MariaDB: on the last database of the run.
    if wants("sqs") {
        sqs(databases.last().expect("a database"), dir).await?;
    }
    if wants("footprint") {
        footprint(dir).await?;
    }
    print_report();
    Ok(())
}

/// distroless/static-debian12, "around 2 MiB" (the distroless project's README).
const DISTROLESS_STATIC_MB: f64 = 2.0 * 1.048_576;

/// The binary's size, the image's (computed: no Docker engine here), start-up and idle memory.
async fn footprint(dir: &std::path::Path) -> anyhow::Result<()> {
    let mb = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len() as f64 / 1e6);
    // The glibc build beside this benchmark (ALLIM_BENCH_BIN may name the musl one).
    let bin = built_allim()?;
    let glibc = mb(&bin)?;
    println!("footprint: {} is {glibc:.1} MB", bin.display());
    // The image's binary is the static musl build (bench/run.sh builds it when the target is
    // installed: `rustup target add x86_64-unknown-linux-musl`).
    let musl = std::env::var("ALLIM_BENCH_MUSL_BIN").ok().map(std::path::PathBuf::from);
    let cert = mb(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/AmazonRootCA1.pem"))?;
    match musl.as_deref().map(|p| (p, mb(p))) {
        Some((path, Ok(size))) => {
            let image = size + DISTROLESS_STATIC_MB + cert;
            println!(
                "footprint: {} is {size:.1} MB; image = it + distroless/static ({DISTROLESS_STATIC_MB:.1} MB) + the RDS CA = {image:.1} MB",
                path.display()
            );
            report(
                "image (x86_64 musl binary + distroless/static, computed)",
                format!("{image:.1} MB (binary {size:.1} MB; glibc build {glibc:.1} MB)"),
                "≤ 30 MB",
                Some(image <= 30.0),
            );
        }
        _ => {
            println!("footprint: no musl binary (ALLIM_BENCH_MUSL_BIN), so the image size is not computed");
            report(
                "image (x86_64 musl binary + distroless/static, computed)",
                format!("not computed (no musl build); glibc binary {glibc:.1} MB"),
                "≤ 30 MB",
                None,
            );
        }
    }
    // Start → ready and idle RSS, of the binary the image ships when there is one.
    let started = Instant::now();
    let proc = Proc::allim(
        "allim-idle",
        &[("DATABASE_URL", format!("sqlite://{}", dir.join("idle.db").display()))],
        dir,
    )
    .await?;
    let ready = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, _) = proc.rss();
    drop(proc);
    println!("footprint: start → ready {ready:.0} ms (fresh SQLite, migrations included); idle RSS {rss:.1} MB");
    report(
        "start → /readyz 200 (fresh SQLite, migrations included)",
        format!("{ready:.0} ms"),
        "≤ 100 ms",
        Some(ready <= 100.0),
    );
    report("idle RSS", format!("{rss:.1} MB"), "—", None);
    Ok(())
}

/// The allim binary server processes run: ALLIM_BENCH_BIN, else the one built beside this
/// benchmark (bench/run.sh builds both).
fn allim_binary() -> anyhow::Result<std::path::PathBuf> {
    match std::env::var("ALLIM_BENCH_BIN") {
        Ok(bin) => Ok(bin.into()),
        Err(_) => built_allim(),
    }
}

/// The allim binary built beside this benchmark (`target/<profile>/allim`).
fn built_allim() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("allim"))
        .ok_or_else(|| anyhow::anyhow!("no target directory"))
}

/// Drops and creates the MariaDB database a `mysql://…/DB` URL names.
async fn recreate_mysql(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let (server, db) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("{url} names no database"))?;
    let mut admin = sqlx::MySqlConnection::connect(&format!("{server}/")).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}

/// Applies allim's migrations to a database (creating an SQLite file), as `allim serve` does.
async fn migrated(url: &str) -> anyhow::Result<()> {
    let store = allim::store::Store::connect(&Config::for_tests(url).db).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// The summary table: every figure reported, with its target and whether it holds.
fn print_report() {
    let rows = REPORT.lock().unwrap();
    if rows.is_empty() {
        return;
    }
    println!();
    println!("| figure | measured | target | holds |");
    println!("| --- | --- | --- | --- |");
    for r in rows.iter() {
        let met = match r.met {
            Some(true) => "✔",
            Some(false) => "✘",
            None => "",
        };
        println!("| {} | {} | {} | {met} |", r.figure, r.value, r.target);
    }
}

async fn start(
    db_url: &str,
    configure: impl FnOnce(&mut Config),
) -> anyhow::Result<(String, InProcess, allim::store::Store)> {
    let mut config = Config::for_tests(db_url);
    config.db.db_max_connections = 16;
    config.api.max_body_bytes = 1024 * 1024;
    configure(&mut config);
    let app = Application::build(config).await?;
    let url = format!("http://{}", app.local_addr());
    let store = app.store().clone();
    Ok((url, InProcess::run(app), store))
}

/// allim running in the benchmark process.
struct InProcess {
    token: tokio_util::sync::CancellationToken,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    fn run(app: Application) -> InProcess {
        let token = app.shutdown_token();
        InProcess {
            token,
            running: tokio::spawn(app.run_until_stopped()),
        }
    }

    /// Stops it as SIGTERM does and waits until it has: the next scenario on the same database
    /// must not start while this one still holds the dispatcher's lanes (a new dispatcher finds
    /// them held and tries again only at its interval; 2026-12-07, the tenth machine).
    async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        self.running.await?
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn ingest(db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let requests = 200;
    // Five rounds: single rounds on this shared machine spread over ±5 points around the line,
    // and a median of three moved with them.
    let rounds: usize = env_or("ALLIM_BENCH_INGEST_ROUNDS", 5);
    // Request bodies are built before the clock starts, so the client spends its time sending.
    let item = |r: usize, i: usize| {
        json!({"notificationType": "APP_NOTIFICATION", "userId": format!("u{}", (r * 7 + i) % 5000),
        "title": "Shipped", "body": "Your order is on its way", "data": {"orderId": i}})
    };
    let bodies: Vec<bytes::Bytes> = (0..requests)
        .map(|r| {
            let items: Vec<Value> = (0..BATCH).map(|i| item(r, i)).collect();
            bytes::Bytes::from(json!({"notifications": items}).to_string())
        })
        .collect();
    let bodies = Arc::new(bodies);
    let backend = backend_of(db_url);

    // allim's own binary in a process of its own with production defaults (a send token, the
    // default pool, INFO logs as JSON lines), as the SNS scenario runs it.
    let token = "bench-send-token-0123456789";
    let allim = Proc::allim(
        "allim-ingest",
        &[
            ("DATABASE_URL", server_db_url(db_url, dir, "ingest")),
            ("ALLIM_API_TOKENS", format!("send:{token}")),
        ],
        dir,
    )
    .await?;
    // The baseline: the same rows (a delivery row and an inbox row per notification, the same
    // values) into the same schema, in a database of their own, as raw prepared 500-row
    // INSERTs, one transaction per 500 notifications.
    let raw = RawInserts::new(db_url, dir, requests, &item).await?;

    // Rounds alternate (HTTP, then raw) so that both see the same drift of a shared machine;
    // the figure is the median round's ratio.
    let notifications = (requests * BATCH) as f64;
    let client = http_client();
    let mut ratios = Vec::new();
    let allim_db = server_db_url(db_url, dir, "ingest");
    for round in 1..=rounds {
        // Every round starts from empty tables on both sides, as the first does.
        empty_tables(&allim_db, ALLIM_TABLES).await?;
        empty_tables(&raw.url, ALLIM_TABLES).await?;
        let perf = allim.perf(&format!("ingest-{backend}-{round}"))?;
        let (cpu, started) = (allim.cpu(), Instant::now());
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let (client, url, bodies) = (client.clone(), allim.url.clone(), bodies.clone());
            tasks.push(tokio::spawn(async move {
                for r in (worker..requests).step_by(4) {
                    let res = client
                        .post(format!("{url}/v1/notifications/batch"))
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(bodies[r].clone())
                        .send()
                        .await?;
                    anyhow::ensure!(res.status() == 200, "batch answered {}", res.status());
                    let body: Value = res.json().await?;
                    anyhow::ensure!(body["accepted"] == BATCH, "batch accepted {}", body["accepted"]);
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let server_us = (allim.cpu() - cpu) * 1e6 / notifications;
        if let Some(perf) = perf {
            stop_perf(perf)?;
        }
        let via_http = notifications / elapsed;
        let raw_rate = notifications / raw.round().await?;
        let ratio = 100.0 * via_http / raw_rate;
        println!(
            "ingest ({backend}) round {round}: HTTP {via_http:.0} notifications/s ({:.0} rows/s, allim {server_us:.1} µs CPU per notification), raw INSERTs {raw_rate:.0}/s: {ratio:.0}%",
            2.0 * via_http
        );
        ratios.push((ratio, via_http, raw_rate));
    }
    drop(allim);
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, via_http, raw_rate) = ratios[ratios.len() / 2];
    println!(
        "ingest ({backend}): HTTP batch ingest runs at {ratio:.0}% of the raw INSERT rate (median of {rounds} rounds; raw: {})",
        if backend == "SQLite" {
            "one connection"
        } else {
            "four connections"
        }
    );
    let target = if backend == "SQLite" { 50.0 } else { 80.0 };
    report(
        &format!("HTTP batch ingest vs raw 500-row INSERTs of the same rows, {backend}"),
        format!(
            "{ratio:.1} % ({via_http:.0} vs {raw_rate:.0} notifications/s; median of {rounds} rounds, each {:.0}–{:.0} %)",
            ratios[0].0,
            ratios[ratios.len() - 1].0
        ),
        &format!("≥ {target:.0} %"),
        Some(ratio >= target),
    );
    Ok(())
}

/// The only tables allim writes for in-app notifications (the ingest and SQS scenarios).
const ALLIM_TABLES: &[&str] = &["inbox", "deliveries"];

/// Deletes every row of these tables.
async fn empty_tables(url: &str, tables: &[&str]) -> anyhow::Result<()> {
    use sqlx::Connection;
    let verb = if url.starts_with("sqlite") {
        "DELETE FROM"
    } else {
        "TRUNCATE TABLE"
    };
    let sql = sqlx::AssertSqlSafe(
        tables
            .iter()
            .map(|t| format!("{verb} {t}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
    } else {
        let mut conn = sqlx::MySqlConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
    }
    Ok(())
}

/// Raw 500-row INSERTs: each round `requests` transactions, each with a delivery-row INSERT
/// and an inbox-row INSERT of 500 rows (the rows allim writes for 500 in-app notifications),
/// into a fresh copy of allim's schema.
struct RawInserts {
    url: String,
    /// Each notification's payload and user id.
    made: Vec<Vec<(String, String)>>,
    deliveries: Arc<String>,
    inbox: Arc<String>,
}

impl RawInserts {
    async fn new(
        db_url: &str,
        dir: &std::path::Path,
        requests: usize,
        item: &dyn Fn(usize, usize) -> Value,
    ) -> anyhow::Result<Self> {
        // A database of its own, migrated by allim (the same tables and indexes).
        let url = if db_url.starts_with("sqlite") {
            format!("sqlite://{}", dir.join("raw.db").display())
        } else {
            let raw_url = format!("{db_url}_raw");
            recreate_mysql(&raw_url).await?;
            raw_url
        };
        migrated(&url).await?;
        let rows = |prefix: &str, columns: usize| {
            let one = format!("({})", vec!["?"; columns].join(", "));
            format!("{prefix} VALUES {}", vec![one; BATCH].join(", "))
        };
        let deliveries = rows(
            "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, next_attempt_at, last_error, created_at, updated_at)",
            10,
        );
        let inbox = rows(
            "INSERT INTO inbox (id, delivery_id, user_id, category, title, body, link, data, created_at)",
            9,
        );
        let made = (0..requests)
            .map(|r| {
                (0..BATCH)
                    .map(|i| {
                        let v = item(r, i);
                        (v.to_string(), v["userId"].as_str().unwrap_or_default().to_string())
                    })
                    .collect()
            })
            .collect();
        Ok(RawInserts {
            url,
            made,
            deliveries: Arc::new(deliveries),
            inbox: Arc::new(inbox),
        })
    }

    /// Seconds one round takes.
    async fn round(&self) -> anyhow::Result<f64> {
        use sqlx::Connection;
        let now = 1_790_000_000_000_i64;
        // The values, made before the clock starts; ids are fresh each round.
        let made: Vec<Vec<(String, String, String, String)>> = self
            .made
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(payload, user)| {
                        (
                            uuid::Uuid::now_v7().to_string(),
                            uuid::Uuid::now_v7().to_string(),
                            payload.clone(),
                            user.clone(),
                        )
                    })
                    .collect()
            })
            .collect();
        let made = Arc::new(made);
        // The same loop on either backend's own connection type: one writer on SQLite (as allim
        // has), four connections on MariaDB (as the HTTP side has four clients).
        macro_rules! run {
            ($conn:expr, $workers:expr) => {{
                let mut tasks = Vec::new();
                let mut conns = Vec::new();
                for _ in 0..$workers {
                    conns.push($conn);
                }
                let started = Instant::now();
                for (w, mut conn) in conns.into_iter().enumerate() {
                    let (made, deliveries, inbox) = (made.clone(), self.deliveries.clone(), self.inbox.clone());
                    tasks.push(tokio::spawn(async move {
                        for round in made.iter().skip(w).step_by($workers) {
                            let mut tx = conn.begin().await?;
                            let mut q = sqlx::query(sqlx::AssertSqlSafe(deliveries.as_str()));
                            for (id, _, payload, _) in round {
                                q = q
                                    .bind(id.as_str())
                                    .bind(None::<&str>)
                                    .bind("APP_NOTIFICATION")
                                    .bind("http")
                                    .bind(payload.as_str())
                                    .bind("delivered")
                                    .bind(None::<i64>)
                                    .bind(None::<&str>)
                                    .bind(now)
                                    .bind(now);
                            }
                            q.execute(&mut *tx).await?;
                            let mut q = sqlx::query(sqlx::AssertSqlSafe(inbox.as_str()));
                            for (id, inbox_id, _, user) in round {
                                q = q
                                    .bind(inbox_id.as_str())
                                    .bind(id.as_str())
                                    .bind(user.as_str())
                                    .bind(None::<&str>)
                                    .bind("Shipped")
                                    .bind("Your order is on its way")
                                    .bind(None::<&str>)
                                    .bind(r#"{"orderId":1}"#)
                                    .bind(now);
                            }
                            q.execute(&mut *tx).await?;
                            tx.commit().await?;
                        }
                        anyhow::Ok(())
                    }));
                }
                for t in tasks {
                    t.await??;
                }
                started.elapsed().as_secs_f64()
            }};
        }
        Ok(if self.url.starts_with("sqlite") {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                // As allim's writer: statement journals in memory (src/store/mod.rs).
                .pragma("temp_store", "memory");
            run!(sqlx::SqliteConnection::connect_with(&options).await?, 1)
        } else {
            run!(sqlx::MySqlConnection::connect(&self.url).await?, 4)
        })
    }
}

async fn single(db_url: &str) -> anyhow::Result<()> {
    // With ALLIM_BENCH_SINGLE_MIX=1, every other request is for a year ahead (a pending
    // delivery and no inbox row) instead of due now (a delivered row and an inbox row), so a
    // group commit's two row counts vary: mixed traffic for the statement cache.
    let mix = env_or("ALLIM_BENCH_SINGLE_MIX", 0u8) == 1;
    let (url, stop, _) = start(db_url, |_| {}).await?;
    let client = http_client();
    let cpu = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut body = json!({"notificationType": "APP_NOTIFICATION", "userId": format!("s{w}"), "title": format!("n{n}")});
                if mix && (n + w) % 2 == 1 {
                    body["deliverAt"] = json!("2099-01-01T00:00:00Z");
                }
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
    let cpu = cpu_seconds() - cpu;
    all.sort();
    println!(
        "single{}: {} requests in 10s = {:.0} req/s, {:.0} µs CPU a request (server and load), p50 {:.2} ms, p99 {:.2} ms",
        if mix { " (mixed)" } else { "" },
        all.len(),
        all.len() as f64 / 10.0,
        cpu / all.len() as f64 * 1e6,
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
    stop.stop().await
}

async fn sns(db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cert = std::fs::read_to_string(root.join("tests/fixtures/sns-test-cert.pem"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cert_base = format!("http://{}/", listener.local_addr()?);
    let router = axum::Router::new().route("/cert.pem", axum::routing::get(move || async move { cert.clone() }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let topic = "arn:aws:sns:ap-northeast-2:123456789012:bench";
    let count: usize = env_or("ALLIM_BENCH_SNS_MESSAGES", 20_000);
    // 32 (the target's figure), or more to see whether more requests in flight fill the cores
    // this closed loop leaves idle.
    let connections: usize = env_or("ALLIM_BENCH_SNS_CONNECTIONS", 32usize).max(1);
    let warm = 1_000.min(count / 10);
    let bodies = Arc::new(signed_sns_bodies(root, topic, &cert_base, count + warm)?);

    // allim's own binary in a process of its own, with production defaults (INFO logs as JSON
    // lines to a file, the default pool size), so its CPU is its own and perf sees only it.
    let db = server_db_url(db_url, dir, "sns");
    let allim = Proc::allim(
        "allim",
        &[
            ("DATABASE_URL", db),
            ("ALLIM_SNS_TOPIC_ARNS", topic.into()),
            ("ALLIM_SNS_INSECURE_CERT_URL_PREFIX", cert_base.clone()),
        ],
        dir,
    )
    .await?;
    let ours = allim
        .measure(
            "sns",
            &format!("{}/webhooks/sns", allim.url),
            &bodies,
            warm,
            connections,
        )
        .await?;
    drop(allim);
    ours.print("sns: allim (verify, de-duplicate, commit)");
    report(
        &format!(
            "SNS webhook (verify + accept), {connections} connections, {}",
            backend_of(db_url)
        ),
        format!(
            "{:.0} req/s, p99 {:.1} ms, {:.0} µs server CPU per request",
            ours.rate, ours.p99_ms, ours.server_us
        ),
        "—",
        None,
    );

    // The peer (what a user runs instead: FastAPI + cryptography, verify only), in the same run
    // with the same messages, when ALLIM_BENCH_PYTHON_SNS names a python with its requirements.
    let Ok(python) = std::env::var("ALLIM_BENCH_PYTHON_SNS") else {
        println!("sns: ALLIM_BENCH_PYTHON_SNS is not set, so the python peer was not run");
        return Ok(());
    };
    let peer_dir = root.join("../shared/peers/python-sns");
    let port = free_port()?;
    let mut cmd = std::process::Command::new(&python);
    cmd.args(["-m", "uvicorn", "app:app", "--app-dir"])
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
        .env("ALLIM_SNS_INSECURE_CERT_URL_PREFIX", &cert_base);
    let peer = Proc::start("python-sns", cmd, port, None).await?;
    let theirs = peer
        .measure(
            "sns-python",
            &format!("{}/webhooks/sns", peer.url),
            &bodies,
            warm,
            connections,
        )
        .await?;
    drop(peer);
    theirs.print("sns: python peer (verify only, stores nothing)");
    let ratio = ours.rate / theirs.rate;
    let p99 = ours.p99_ms / theirs.p99_ms;
    println!(
        "sns: allim = {ratio:.2}x the peer's req/s (target >= 3x), p99 {p99:.3}x the peer's (target <= 0.5x), {:.2}x its server CPU per request",
        ours.server_us / theirs.server_us
    );
    report(
        &format!("SNS webhook vs the Python verifier, req/s, {}", backend_of(db_url)),
        format!("{ratio:.2}× ({:.0} vs {:.0} req/s)", ours.rate, theirs.rate),
        "≥ 3× (goal 5×)",
        Some(ratio >= 3.0),
    );
    report(
        &format!("SNS webhook vs the Python verifier, p99, {}", backend_of(db_url)),
        format!("{p99:.3}× ({:.2} vs {:.2} ms)", ours.p99_ms, theirs.p99_ms),
        "≤ 0.5× (goal ⅓)",
        Some(p99 <= 0.5),
    );
    report(
        &format!(
            "SNS webhook vs the Python verifier, server CPU per request, {}",
            backend_of(db_url)
        ),
        format!(
            "{:.2}× ({:.0} vs {:.0} µs)",
            ours.server_us / theirs.server_us,
            ours.server_us,
            theirs.server_us
        ),
        "—",
        None,
    );
    Ok(())
}

/// `count` distinct SNS Notification bodies, each signed (SignatureVersion 2, SHA256withRSA)
/// with the test key, as SNS sends them. Signed here with aws-lc-rs on every core.
fn signed_sns_bodies(
    root: &std::path::Path,
    topic: &str,
    cert_base: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    use base64::Engine;
    let pem = std::fs::read_to_string(root.join("tests/fixtures/sns-test-key.pem"))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>())?;
    let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("test key: {e}"))?;
    let started = Instant::now();
    // Signed now, as SNS signs each message when it sends it: allim refuses a Timestamp over
    // 14 days old as a replay (a fixed date here stopped the benchmark once it aged).
    let ts = &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = count.div_ceil(threads);
    let bodies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key = &key;
                s.spawn(move || {
                    let rng = aws_lc_rs::rand::SystemRandom::new();
                    let mut sig = vec![0; key.public_modulus_len()];
                    (t * per..((t + 1) * per).min(count))
                        .map(|i| {
                            let message = json!({"notificationType": "APP_NOTIFICATION",
                                "userId": format!("sns{}", i % 100), "title": "from sns"})
                            .to_string();
                            let id = uuid::Uuid::new_v4().to_string();
                            let to_sign = format!(
                                "Message\n{message}\nMessageId\n{id}\nTimestamp\n{ts}\nTopicArn\n{topic}\nType\nNotification\n"
                            );
                            key.sign(&RSA_PKCS1_SHA256, &rng, to_sign.as_bytes(), &mut sig).expect("signs");
                            json!({"Type": "Notification", "MessageId": id, "TopicArn": topic, "Message": message,
                                   "Timestamp": ts, "SignatureVersion": "2",
                                   "Signature": base64::engine::general_purpose::STANDARD.encode(&sig),
                                   "SigningCertURL": format!("{cert_base}cert.pem")})
                            .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signer"))
            .collect::<Vec<_>>()
    });
    println!(
        "sns: signed {count} messages in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(bodies)
}

/// The load generator's HTTP client: a server that stops answering fails the run within a
/// minute instead of hanging it (allim answers any request within its own 30 s).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("the benchmark's HTTP client")
}

/// A variable's value, or `default` when it is unset or not a number.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The database a server process uses: the run's MariaDB database, or an SQLite file of its own.
fn server_db_url(db_url: &str, dir: &std::path::Path, name: &str) -> String {
    if db_url.starts_with("sqlite") {
        format!("sqlite://{}", dir.join(format!("{name}.db")).display())
    } else {
        db_url.to_string()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One measured run against a server process.
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server process's CPU (user + system) per request, µs.
    server_us: f64,
    /// The load generator's (this process's) CPU per request, µs.
    client_us: f64,
}

impl Measured {
    fn print(&self, what: &str) {
        println!(
            "{what}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; CPU per request: server {:.0} µs, load generator {:.0} µs",
            self.rate, self.p50_ms, self.p99_ms, self.server_us, self.client_us
        );
    }
}

/// A server the benchmark started as a process of its own (allim's binary or a peer), so that
/// its CPU and memory are its own and `perf` can be attached to it alone. Killed when dropped.
struct Proc {
    name: &'static str,
    child: std::process::Child,
    url: String,
}

impl Proc {
    /// allim's release binary (built beside this benchmark by bench/run.sh), `allim serve`
    /// with these settings on a port of its own; its log lines go to `<dir>/<name>.log`.
    async fn allim(name: &'static str, env: &[(&str, String)], dir: &std::path::Path) -> anyhow::Result<Proc> {
        let bin = allim_binary()?;
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: bench/run.sh builds it with the benchmark",
            bin.display()
        );
        let port = free_port()?;
        let mut cmd = std::process::Command::new(bin);
        // The image's environment (Dockerfile): JSON logs, mimalloc's arenas committed lazily
        // and freed pages returned at once.
        cmd.arg("serve")
            .env("ALLIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("ALLIM_LOG_FORMAT", "json")
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .env("MIMALLOC_PURGE_DELAY", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        cmd.stdout(log.try_clone()?).stderr(log);
        Proc::start(name, cmd, port, Some("/readyz")).await
    }

    /// Starts `cmd` and waits (at most 30 s) until it answers on `port` (200 from `ready`).
    async fn start(
        name: &'static str,
        mut cmd: std::process::Command,
        port: u16,
        ready: Option<&str>,
    ) -> anyhow::Result<Proc> {
        let child = cmd.spawn().map_err(|e| anyhow::anyhow!("starting {name}: {e}"))?;
        let mut proc = Proc {
            name,
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = http_client();
        let up = Instant::now();
        loop {
            if let Some(status) = proc.child.try_wait()? {
                anyhow::bail!("{name} exited at start: {status}");
            }
            let answered = match ready {
                Some(path) => client
                    .get(format!("{}{path}", proc.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200),
                None => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            };
            if answered {
                return Ok(proc);
            }
            anyhow::ensure!(up.elapsed() < Duration::from_secs(30), "{name} did not start in 30 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> f64 {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// Resident memory now and at its peak, MB.
    fn rss(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Warms up with the first `warm` bodies, then posts the rest with `clients` connections and
    /// measures; with `ALLIM_BENCH_PERF=<dir>`, `perf record` is attached to this process for
    /// the measured part (`<dir>/<label>.perf.data`).
    async fn measure(
        &self,
        label: &str,
        url: &str,
        bodies: &Arc<Vec<String>>,
        warm: usize,
        clients: usize,
    ) -> anyhow::Result<Measured> {
        post_all(url, Arc::new(bodies[..warm].to_vec()), clients).await?;
        let measured = Arc::new(bodies[warm..].to_vec());
        let perf = self.perf(label)?;
        let (server, client) = (self.cpu(), cpu_seconds());
        let (secs, lat) = post_all(url, measured.clone(), clients).await?;
        let (server, client) = (self.cpu() - server, cpu_seconds() - client);
        if let Some(perf) = perf {
            stop_perf(perf)?;
        }
        let n = measured.len() as f64;
        Ok(Measured {
            rate: n / secs,
            p50_ms: percentile(&lat, 0.5).as_secs_f64() * 1000.0,
            p99_ms: percentile(&lat, 0.99).as_secs_f64() * 1000.0,
            server_us: server * 1e6 / n,
            client_us: client * 1e6 / n,
        })
    }

    /// `perf record` attached to this process, when ALLIM_BENCH_PERF names a directory.
    fn perf(&self, label: &str) -> anyhow::Result<Option<std::process::Child>> {
        let Ok(dir) = std::env::var("ALLIM_BENCH_PERF") else {
            return Ok(None);
        };
        let out = std::path::Path::new(&dir).join(format!("{label}.perf.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-p"])
            .arg(self.pid().to_string())
            .arg("-o")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        // perf needs a moment to attach before the load starts.
        std::thread::sleep(Duration::from_millis(500));
        println!(
            "{}: perf recording pid {} into {}",
            self.name,
            self.pid(),
            out.display()
        );
        Ok(Some(child))
    }
}

fn stop_perf(mut perf: std::process::Child) -> anyhow::Result<()> {
    std::process::Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()?;
    perf.wait()?;
    Ok(())
}

impl Drop for Proc {
    /// SIGTERM, as ECS stops a task, so allim gives back its lanes and leases (a killed process
    /// would hold its lanes for a lease, 60 s, and stall the next scenario on the same database);
    /// SIGKILL if it has not exited within 10 s.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name a figure carries for the database it ran on.
fn backend_of(db_url: &str) -> &'static str {
    if db_url.starts_with("sqlite") {
        "SQLite"
    } else {
        "MariaDB"
    }
}

/// One row of the summary table `bench/run.sh all` ends with.
struct Row {
    figure: String,
    value: String,
    target: String,
    met: Option<bool>,
}

static REPORT: std::sync::Mutex<Vec<Row>> = std::sync::Mutex::new(Vec::new());

/// Adds a figure to the summary table (`met`: whether it meets its target, if it has one).
fn report(figure: &str, value: String, target: &str, met: Option<bool>) {
    REPORT.lock().unwrap().push(Row {
        figure: figure.into(),
        value,
        target: target.into(),
        met,
    });
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    cpu_of("/proc/self/stat")
}

/// CPU seconds (user + system) from a /proc/<pid>/stat file.
fn cpu_of(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

async fn fill(client: &aws_sdk_sqs::Client, queue: &str, n: usize) -> anyhow::Result<()> {
    // 8 senders take turns at the batches of 10 (the last one may be short): exactly n in all.
    // Keys carry the queue's name, so a queue of another round is not a pile of duplicates.
    let batches = n.div_ceil(10);
    let tag: Arc<str> = queue.rsplit('/').next().unwrap_or(queue).into();
    let mut tasks = Vec::new();
    for s in 0..8 {
        let client = client.clone();
        let queue = queue.to_string();
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            for chunk in (s..batches).step_by(8) {
                let entries = (0..10.min(n - chunk * 10))
                    .map(|i| {
                        let body = json!({"notificationType": "APP_NOTIFICATION", "userId": format!("q{}", (s * 31 + i) % 1000),
                            "title": "Shipped", "body": "Your order is on its way", "idempotencyKey": format!("{tag}-{s}-{chunk}-{i}")});
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

async fn sqs(db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let endpoint = std::env::var("ALLIM_BENCH_SQS").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let n: usize = env_or("ALLIM_BENCH_MESSAGES", 10_000);
    let rounds: usize = env_or("ALLIM_BENCH_SQS_ROUNDS", 3);
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    let client = aws_sdk_sqs::Client::from_conf(conf);
    let peer_dir = std::env::var("ALLIM_BENCH_NODE_PEER").ok();
    let node_db =
        std::env::var("ALLIM_BENCH_NODE_DB").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/allim_bench_node".into());
    if let Some(peer_dir) = &peer_dir {
        recreate_mysql(&node_db).await?;
        use sqlx::Connection;
        let mut conn = sqlx::MySqlConnection::connect(&node_db).await?;
        let schema = std::fs::read_to_string(std::path::Path::new(peer_dir).join("schema.sql"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema)).execute(&mut conn).await?;
    } else {
        println!("sqs: ALLIM_BENCH_NODE_PEER is not set, so the Node peer is not run");
    }
    // allim drains into a database of its own (as the raw INSERTs of `ingest` do), and both
    // consumers' tables are emptied before each drain. The drain is timed by counting rows
    // every 20 ms; in the run's MariaDB database, which holds the earlier scenarios' ~400,000
    // inbox rows, each COUNT(*) took ~60 ms, so MariaDB spent most of a core counting while
    // allim drained (and the Node peer's table was small).
    let sqs_db = if db_url.starts_with("sqlite") {
        server_db_url(db_url, dir, "sqs")
    } else {
        let url = format!("{db_url}_sqs");
        recreate_mysql(&url).await?;
        url
    };
    migrated(&sqs_db).await?;

    // Rounds alternate the three consumers on the same server, each draining a queue of its
    // own filled with n notifications; figures are each consumer's median round (peak RSS: the
    // highest), since one drain on a shared 2-core machine moves by a third between runs.
    let (mut noop, mut ours, mut node) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let r = noop_drain(&client, n).await?;
        println!(
            "sqs round {round}: no-op consumer (receive + delete, 2 pollers, in this process) drained {n} at {:.0} msgs/s, {:.2} CPU-s per 10,000",
            r.rate, r.cpu10k
        );
        noop.push(r);

        empty_tables(&sqs_db, ALLIM_TABLES).await?;
        let r = allim_drain(&client, &endpoint, &sqs_db, n, dir).await?;
        println!(
            "sqs round {round}: allim (its own process) drained {n} into inbox rows at {:.0} msgs/s, {:.2} CPU-s per 10,000, peak RSS {:.1} MB",
            r.rate, r.cpu10k, r.rss
        );
        ours.push(r);

        if let Some(peer_dir) = &peer_dir {
            empty_tables(&node_db, &["notifications"]).await?;
            let r = node_drain(&client, &endpoint, peer_dir, &node_db, n, dir).await?;
            println!(
                "sqs round {round}: Node peer (sqs-consumer + mysql2, its own process) drained {n} at {:.0} msgs/s, {:.2} CPU-s per 10,000, peak RSS {:.1} MB",
                r.rate, r.cpu10k, r.rss
            );
            node.push(r);
        }
    }
    let median = |runs: &[Drain], f: fn(&Drain) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let spread = |runs: &[Drain], f: fn(&Drain) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        )
    };
    let noop_rate = median(&noop, |d| d.rate);
    let allim_rate = median(&ours, |d| d.rate);
    let allim_cpu10k = median(&ours, |d| d.cpu10k);
    let allim_rss = spread(&ours, |d| d.rss).1;
    let (cpu_lo, cpu_hi) = spread(&ours, |d| d.cpu10k);
    println!(
        "sqs: allim drained at {allim_rate:.0} msgs/s = {:.0}% of the no-op rate (target >= 85%), {allim_cpu10k:.2} CPU-s per 10,000 ({cpu_lo:.2}–{cpu_hi:.2}), peak RSS {allim_rss:.1} MB (target <= 20 MB); medians of {rounds} rounds",
        100.0 * allim_rate / noop_rate
    );
    report(
        "SQS → inbox drain vs a no-op consumer (receive + delete)",
        format!(
            "{:.0} % ({allim_rate:.0} vs {noop_rate:.0} msgs/s; medians of {rounds} rounds)",
            100.0 * allim_rate / noop_rate
        ),
        "≥ 85 %",
        Some(allim_rate >= 0.85 * noop_rate),
    );
    report(
        "SQS drain: allim's peak RSS",
        format!("{allim_rss:.1} MB (the highest of {rounds} rounds)"),
        "≤ 20 MB",
        Some(allim_rss <= 20.0),
    );
    if node.is_empty() {
        report(
            "SQS drain: CPU per 10,000 vs the Node consumer",
            format!("{allim_cpu10k:.2} CPU-s (peer not run)"),
            "≤ ⅒ of the peer's",
            None,
        );
        return Ok(());
    }
    let node_rate = median(&node, |d| d.rate);
    let node_cpu10k = median(&node, |d| d.cpu10k);
    let node_rss = spread(&node, |d| d.rss).1;
    let (node_lo, node_hi) = spread(&node, |d| d.cpu10k);
    let share = allim_cpu10k / node_cpu10k;
    // Four digits: a share just over its line (1.21 / 12.09 = 0.1001) must not read 0.100 beside ✘.
    println!(
        "sqs: allim uses {share:.4} of the Node peer's CPU per message (target <= 0.1) at {:.1}x its rate; Node {node_cpu10k:.2} CPU-s per 10,000 ({node_lo:.2}–{node_hi:.2})",
        allim_rate / node_rate
    );
    report(
        "SQS drain: CPU per 10,000 vs the Node consumer",
        format!(
            "{share:.4} ({allim_cpu10k:.2} vs {node_cpu10k:.2} CPU-s, medians of {rounds} rounds: allim {cpu_lo:.2}–{cpu_hi:.2}, Node {node_lo:.2}–{node_hi:.2}; {allim_rss:.0} vs {node_rss:.0} MB peak RSS)"
        ),
        "≤ 0.1",
        Some(share <= 0.1),
    );
    // What bounds the row above: the SDK calls allim cannot do without (ReceiveMessage of 10,
    // DeleteMessageBatch of 10) cost this much on their own, in the no-op consumer.
    let noop_cpu10k = median(&noop, |d| d.cpu10k);
    let (noop_lo, noop_hi) = spread(&noop, |d| d.cpu10k);
    report(
        "SQS drain: the no-op consumer's CPU per 10,000 (the AWS SDK's receive + delete alone, in the bench process) vs the Node consumer",
        format!(
            "{:.3} ({noop_cpu10k:.2} vs {node_cpu10k:.2} CPU-s, medians of {rounds} rounds: no-op {noop_lo:.2}–{noop_hi:.2}); allim's own work on top: {:.2} CPU-s",
            noop_cpu10k / node_cpu10k,
            allim_cpu10k - noop_cpu10k
        ),
        "—",
        None,
    );
    Ok(())
}

/// One consumer's drain of a full queue.
struct Drain {
    rate: f64,
    /// CPU seconds per 10,000 messages.
    cpu10k: f64,
    /// Peak RSS, MB (0 for the in-process no-op consumer).
    rss: f64,
}

/// A new queue of `n` notifications (its name starts with `prefix`).
async fn filled_queue(client: &aws_sdk_sqs::Client, prefix: &str, n: usize) -> anyhow::Result<String> {
    let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    let queue = client.create_queue().queue_name(name).send().await?.queue_url.unwrap();
    fill(client, &queue, n).await?;
    Ok(queue)
}

/// The no-op consumer: two pollers in this process that receive and delete, nothing else.
async fn noop_drain(client: &aws_sdk_sqs::Client, n: usize) -> anyhow::Result<Drain> {
    let queue = filled_queue(client, "noop", n).await?;
    // The SDK client as allim's consumer configures it: stalled-stream protection off.
    let client = &aws_sdk_sqs::Client::from_conf(
        client
            .config()
            .to_builder()
            .stalled_stream_protection(aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled())
            .build(),
    );
    let cpu = cpu_seconds();
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (client, q, done) = (client.clone(), queue.clone(), done.clone());
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
    Ok(Drain {
        rate: n as f64 / started.elapsed().as_secs_f64(),
        cpu10k: (cpu_seconds() - cpu) * 10_000.0 / n as f64,
        rss: 0.0,
    })
}

/// What a consumer process needs to reach the SQS server and its queue.
fn aws_env(endpoint: &str, queue: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_SQS", endpoint.to_string()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("QUEUE_URL", queue.to_string()),
        ("ALLIM_SQS_QUEUE_URL", queue.to_string()),
    ]
}

/// allim's own binary, production defaults, started with its queue full.
async fn allim_drain(
    client: &aws_sdk_sqs::Client,
    endpoint: &str,
    db: &str,
    n: usize,
    dir: &std::path::Path,
) -> anyhow::Result<Drain> {
    let queue = filled_queue(client, "allim", n).await?;
    let mut env = aws_env(endpoint, &queue);
    env.push(("DATABASE_URL", db.to_string()));
    let counter = Counter::open(db, "inbox").await?;
    let started = Instant::now();
    let allim = Proc::allim("allim-sqs", &env, dir).await?;
    // With ALLIM_BENCH_PERF, the drain minus its first half second (perf attaching) is profiled,
    // one file per round, named after the round's queue.
    let perf = allim.perf(&format!("sqs-{}", queue.rsplit('/').next().unwrap_or("allim")))?;
    let (rate, cpu, rss) = drained(&allim, &counter, n, started).await?;
    if let Some(perf) = perf {
        stop_perf(perf)?;
    }
    Ok(Drain {
        rate,
        cpu10k: cpu * 10_000.0 / n as f64,
        rss,
    })
}

/// The Node peer (sqs-consumer + mysql2) in `peer_dir` (node_modules installed), writing to a
/// MariaDB database of its own.
async fn node_drain(
    client: &aws_sdk_sqs::Client,
    endpoint: &str,
    peer_dir: &str,
    node_db: &str,
    n: usize,
    dir: &std::path::Path,
) -> anyhow::Result<Drain> {
    let queue = filled_queue(client, "node", n).await?;
    let counter = Counter::open(node_db, "notifications").await?;
    let mut cmd = std::process::Command::new("node");
    cmd.arg("consumer.js").current_dir(peer_dir).env("DB_URL", node_db);
    for (k, v) in aws_env(endpoint, &queue) {
        cmd.env(k, v);
    }
    let log = std::fs::File::create(dir.join("node-peer.log"))?;
    cmd.stdout(log.try_clone()?).stderr(log);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting the Node peer: {e}"))?;
    let node = Proc {
        name: "node-consumer",
        child,
        url: String::new(),
    };
    let (rate, cpu, rss) = drained(&node, &counter, n, started).await?;
    Ok(Drain {
        rate,
        cpu10k: cpu * 10_000.0 / n as f64,
        rss,
    })
}

/// Counts the rows added to one table of a database another process writes (the database
/// may hold rows of earlier scenarios).
struct Counter {
    pool: CounterPool,
    table: &'static str,
    before: i64,
}

enum CounterPool {
    Sqlite(sqlx::SqlitePool),
    MySql(sqlx::MySqlPool),
}

impl Counter {
    /// Opens the database; the rows the table holds now are not counted.
    async fn open(url: &str, table: &'static str) -> anyhow::Result<Counter> {
        let pool = if url.starts_with("sqlite") {
            CounterPool::Sqlite(sqlx::SqlitePool::connect(url).await?)
        } else {
            CounterPool::MySql(sqlx::MySqlPool::connect(url).await?)
        };
        let mut counter = Counter { pool, table, before: 0 };
        counter.before = counter.total().await?;
        Ok(counter)
    }

    /// Rows of the table now.
    async fn total(&self) -> anyhow::Result<i64> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", self.table));
        Ok(match &self.pool {
            CounterPool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            CounterPool::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        })
    }

    /// Rows added since it was opened.
    async fn count(&self) -> anyhow::Result<i64> {
        Ok(self.total().await? - self.before)
    }
}

/// Waits (at most 10 minutes) until `n` rows are counted; msgs/s since `started`, the process's
/// CPU seconds and its peak RSS (MB).
async fn drained(proc: &Proc, counter: &Counter, n: usize, started: Instant) -> anyhow::Result<(f64, f64, f64)> {
    loop {
        let stored = counter.count().await?;
        if stored as usize >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "{} drained only {stored} of {n}",
            proc.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    Ok((rate, proc.cpu(), proc.rss().1))
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
    let client = http_client();
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
    let stop = InProcess::run(app);

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
    // Issue 12's target, in the table: the median round, since one round can catch the other
    // processes on these two cores busy (the CPU is this process's: allim and the load generator).
    let mut extra: Vec<f64> = results.iter().map(|r| 100.0 * (r.3 / r.1 - 1.0)).collect();
    extra.sort_by(f64::total_cmp);
    let median = extra[extra.len() / 2];
    report(
        &format!(
            "SQS door SendMessageBatch vs HTTP batch, CPU (in-process, load generator included), {}",
            backend_of(db_url)
        ),
        format!(
            "{median:+.0} % (median of {} rounds, {:+.0} to {:+.0} %)",
            extra.len(),
            extra[0],
            extra[extra.len() - 1]
        ),
        "≤ +20 %",
        Some(median <= 20.0),
    );
    stop.stop().await
}

/// One stand-in for SENS, FCM (token and send), Slack and webhooks: answers at once with each provider's success
/// shape and records when each numbered notification (`#n` in its text or `data.n`) arrived.
async fn stand_in(arrived: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>>) -> anyhow::Result<String> {
    use axum::response::IntoResponse;
    let handler = move |uri: axum::http::Uri, body: bytes::Bytes| {
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
            if uri.path().ends_with("/messages:send") {
                return axum::Json(json!({"name": "projects/allim-bench/messages/0:1"})).into_response();
            }
            (
                axum::http::StatusCode::ACCEPTED,
                axum::Json(json!({"requestId": "bench", "requestTime": "2026-11-23T00:00:00.000",
                    "statusCode": "202", "statusName": "success"})),
            )
                .into_response()
        }
    };
    // FCM's OAuth2 token endpoint: any signed assertion gets a token (the tests' FCM stand-in
    // checks the assertion; here only the time to the send counts).
    let token =
        || async { axum::Json(json!({"access_token": "ya29.bench", "expires_in": 3600, "token_type": "Bearer"})) };
    let router = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .fallback(axum::routing::post(handler));
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
        c.channels.fcm.fcm_credentials =
            Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fcm-test-service-account.json"));
        c.channels.fcm.fcm_base_url = provider.clone();
        c.channels.fcm.fcm_token_url = Some(format!("{provider}/token"));
        c.channels.fcm.fcm_rate_per_sec = 5000.0;
        // Production's defaults, not the tests' fast polling and small pool: the dispatcher's
        // settings (1 s interval, a new delivery wakes its lane; 32 at once), the database pool
        // and the alarm tick. The provider rates stay high: the stand-in answers at once, and
        // the figure is allim's own path, not a provider's rate limit.
        let defaults = Config::defaults();
        c.dispatch = defaults.dispatch;
        c.db.db_max_connections = defaults.db.db_max_connections;
        c.alarms.alarm_tick = defaults.alarms.alarm_tick;
        c.dispatch.dispatch_interval = std::env::var("ALLIM_BENCH_DISPATCH_INTERVAL")
            .ok()
            .and_then(|v| allim::settings::parse_duration(&v).ok())
            .unwrap_or(Duration::from_secs(1));
    })
    .await?;
    let client = http_client();
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
            let (kind, body) = match i % 4 {
                0 => (
                    "SMS",
                    json!({"notificationType": "SMS", "to": ["01012345678"], "content": format!("bench #{n}")}),
                ),
                1 => (
                    "PUSH",
                    json!({"notificationType": "PUSH", "tokens": ["bench-device-token"], "title": format!("bench #{n}")}),
                ),
                2 => (
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
                let t = Instant::now();
                let res = client
                    .post(format!("{url}/v1/notifications"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(res.status() == 202, "answered {}", res.status());
                Ok::<_, anyhow::Error>(t.elapsed())
            });
        }
        // How long the POST itself took (accepted = committed), apart from the dispatch.
        let mut accepted = Vec::with_capacity(total as usize);
        while let Some(r) = tasks.join_next().await {
            accepted.push(r??);
        }
        accepted.sort();
        println!(
            "latency at {rate}/s: the POST (accept and commit) took p50 {:.1} ms, p99 {:.1} ms",
            percentile(&accepted, 0.5).as_secs_f64() * 1000.0,
            percentile(&accepted, 0.99).as_secs_f64() * 1000.0
        );
        // Wait (bounded) for the last ones to reach the stand-in.
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrived.lock().unwrap().len() < n as usize && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = arrived.lock().unwrap().clone();
        for kind in ["SMS", "PUSH", "SLACK", "WEBHOOK", "all"] {
            let mut lat: Vec<Duration> = sent
                .iter()
                .filter(|(_, k, _)| kind == "all" || *k == kind)
                .filter_map(|(id, _, at)| got.get(id).map(|t| t.duration_since(*at)))
                .collect();
            let expected = sent.iter().filter(|(_, k, _)| kind == "all" || *k == kind).count();
            lat.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let (p50, p99, max) = (
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default()),
            );
            println!(
                "latency at {rate}/s, {kind}: {}/{expected} arrived; p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (target at 100/s: p99 <= 20 ms)",
                lat.len(),
            );
            if kind == "all" {
                let backend = backend_of(db_url);
                report(
                    &format!("accept → provider at {rate}/s (SMS, push, Slack, webhook), {backend}"),
                    format!(
                        "p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; {}/{expected} arrived",
                        lat.len()
                    ),
                    if rate == 100 { "p99 ≤ 20 ms" } else { "—" },
                    (rate == 100).then_some(p99 <= 20.0 && lat.len() == expected),
                );
            }
        }
    }
    stop.stop().await
}

/// The database's own commit latency at the latency scenario's 100/s: single-row INSERTs of a
/// pending SMS delivery row (allim's accept writes that row and commits), each committed on its
/// own, 500 at a fixed rate, into a database of its own migrated by allim (SQLite: WAL,
/// synchronous=NORMAL, one connection, as allim; MariaDB: a pool of 10). No target: it is what
/// the accept → provider figure cannot go below, since each delivery waits for at least two
/// commits (its accept, and the claim that leases it) before its provider call.
async fn raw_commit_latency(db_url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    const INSERT: &str = "INSERT INTO deliveries (id, idempotency_key, notification_type, source, payload, status, \
                          next_attempt_at, last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let rate = 100u64;
    let total = rate * 5;
    let payload = json!({"notificationType": "SMS", "to": ["01012345678"], "content": "bench"}).to_string();
    let backend = backend_of(db_url);
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..total {
                tick.tick().await;
                let (pool, payload) = (pool.clone(), payload.clone());
                tasks.spawn(async move {
                    let now = 1_790_000_000_000_i64;
                    let t = Instant::now();
                    sqlx::query(INSERT)
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(None::<&str>)
                        .bind("SMS")
                        .bind("http")
                        .bind(payload)
                        .bind("pending")
                        .bind(now)
                        .bind(None::<&str>)
                        .bind(now)
                        .bind(now)
                        .execute(&pool)
                        .await?;
                    anyhow::Ok(t.elapsed())
                });
            }
            let mut lat = Vec::with_capacity(total as usize);
            while let Some(r) = tasks.join_next().await {
                lat.push(r??);
            }
            pool.close().await;
            lat
        }};
    }
    let mut lat = if db_url.starts_with("sqlite") {
        let url = format!("sqlite://{}", dir.join("raw-commit.db").display());
        migrated(&url).await?;
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        run!(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?
        )
    } else {
        let url = format!("{db_url}_raw");
        recreate_mysql(&url).await?;
        migrated(&url).await?;
        run!(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(10)
                .connect(&url)
                .await?
        )
    };
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat[lat.len() - 1]),
    );
    println!(
        "latency baseline: a raw single-row commit at {rate}/s: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    report(
        &format!("the database's own commit at {rate}/s (raw single-row INSERTs, no allim), {backend}"),
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"),
        "—",
        None,
    );
    Ok(())
}

/// Posts every body once with `clients` connections; seconds taken and each request's latency.
async fn post_all(url: &str, bodies: Arc<Vec<String>>, clients: usize) -> anyhow::Result<(f64, Vec<Duration>)> {
    let client = http_client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
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
