//! Test harness: starts the real application on port 0 against a fresh database — a new
//! SQLite file, or a new MariaDB database on the server at `ALLIM_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306`). A missing MariaDB fails the tests; it never skips them.

use std::net::SocketAddr;

use allim::config::Config;
use allim::store::Store;
use allim::{Application, ApplicationBuilder};
use reqwest::{Client, Response};
use serde_json::Value;
use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    MariaDb,
}

/// Runs one test body against both backends: `both!(name);` makes `name::sqlite` and `name::mariadb`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$name($crate::helpers::Db::MariaDb).await
            }
        }
    )*};
}

pub fn mysql_server_url() -> String {
    std::env::var("ALLIM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A fresh, empty database; dropped (MariaDB) or deleted (SQLite) with the value.
pub struct TestDb {
    pub url: String,
    mysql_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A store on this database with the tests' settings, its schema migrated.
    pub async fn store(&self) -> Store {
        let config = Config::for_tests(self.url.clone());
        let store = Store::connect(&config.db).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    pub async fn new(db: Db) -> TestDb {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("allim.db").display());
                TestDb {
                    url,
                    mysql_name: None,
                    _dir: Some(dir),
                }
            }
            Db::MariaDb => {
                let server = mysql_server_url();
                let name = format!("allim_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::MySqlConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("MariaDB at {server} is required for these tests: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                TestDb {
                    url: format!("{server}/{name}"),
                    mysql_name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.mysql_name.take() {
            let server = mysql_server_url();
            // Drop from a plain thread: Drop cannot await, and the test's runtime may be gone.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::MySqlConnection::connect(&server).await.ok()?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// A running application and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The SQS door's address, when the configuration turned it on.
    pub door: Option<SocketAddr>,
    pub client: Client,
    pub store: Store,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<anyhow::Result<()>>>,
    pub token: Option<String>,
    /// Held so the database lives as long as the app (`None` when another app owns it).
    pub db: Option<TestDb>,
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
    let test_db = TestDb::new(db).await;
    let url = test_db.url.clone();
    let mut app = spawn_on(&url, configure, |b| b).await;
    app.db = Some(test_db);
    app
}

/// A manual clock for an app under test, starting at the real now (providers such as the SENS
/// stand-in check request times).
pub fn test_clock() -> allim::clock::Clock {
    allim::clock::Clock::manual(allim::clock::Clock::system().now_ms())
}

/// Waits until a delivery is delivered or dead. `clock` is the app's manual clock: when the
/// delivery failed and waits for a retry, the clock is moved to the retry time instead of the
/// test waiting for it.
pub async fn settled(app: &TestApp, clock: &allim::clock::Clock, id: &str) -> Value {
    let path = format!("/v1/deliveries/{id}");
    crate::support::eventually(std::time::Duration::from_secs(20), &format!("{id} settles"), || async {
        let d = app.get_ok(&path).await;
        if d["status"] == "failed"
            && let Some(next) = d["nextAttemptAt"].as_str()
        {
            let at = chrono::DateTime::parse_from_rfc3339(next).unwrap().timestamp_millis();
            if at > clock.now_ms() {
                clock.set(at);
            }
        }
        matches!(d["status"].as_str(), Some("delivered" | "dead"))
    })
    .await;
    app.get_ok(&path).await
}

/// As [`spawn_app`], on a clock the test moves.
pub async fn spawn_app_clocked(db: Db, clock: allim::clock::Clock) -> TestApp {
    let test_db = TestDb::new(db).await;
    let url = test_db.url.clone();
    let mut app = spawn_on(&url, |_| {}, |b| b.clock(clock)).await;
    app.db = Some(test_db);
    app
}

/// Starts an app on an existing database, with a say over the builder (SQS client, channels).
pub async fn spawn_on(
    url: &str,
    configure: impl FnOnce(&mut Config),
    build: impl FnOnce(ApplicationBuilder) -> ApplicationBuilder,
) -> TestApp {
    let mut config = Config::for_tests(url);
    configure(&mut config);
    let token = config
        .api
        .api_tokens
        .first()
        .map(|t| secrecy::ExposeSecret::expose_secret(&t.secret).to_string());
    let app = build(Application::builder(config))
        .build()
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let door = app.sqs_door_addr();
    let store = app.store().clone();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        door,
        client: Client::new(),
        store,
        shutdown,
        handle: Some(handle),
        token,
        db: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.auth(self.client.post(self.url(path)).json(body))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.auth(self.client.post(self.url(path)).body(body))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.auth(self.client.get(self.url(path)))
            .send()
            .await
            .expect("request sent")
    }

    /// GET that must answer 200; returns the JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        let res = self.get(path).await;
        let status = res.status();
        let body: Value = res.json().await.expect("JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Counts rows with a query returning one integer.
    pub async fn count(&self, sql: &'static str) -> i64 {
        self.store.scalar(sql).await.expect("count query")
    }

    /// Stops the app and waits for it to exit.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.expect("app task").expect("app exits cleanly");
        }
    }
}

/// Reads status and JSON body.
pub async fn json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}
