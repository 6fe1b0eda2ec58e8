//! Real stand-ins the tests drive: moto as the SQS server (started once per test binary,
//! ended when the binary exits), a TCP proxy that can take MariaDB "down", and a channel
//! whose answers a test scripts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use allim::channels::{Channel, Job, SendOutcome};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

static MOTO: OnceLock<String> = OnceLock::new();
static MOTO_WATCHDOG: OnceLock<Mutex<std::process::Child>> = OnceLock::new();

/// The endpoint of a moto server for this test binary. It is started from `ALLIM_TEST_MOTO`
/// (set by scripts/test.sh), else `.venv/bin/moto_server`, else `moto_server` on PATH; a
/// watchdog ends it when this process exits. Missing moto fails the test.
pub fn moto_endpoint() -> String {
    MOTO.get_or_init(|| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/moto_server");
        let bin = std::env::var("ALLIM_TEST_MOTO").unwrap_or_else(|_| {
            if std::path::Path::new(local).exists() {
                local.to_string()
            } else {
                "moto_server".to_string()
            }
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = format!(
            "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
            parent = std::process::id()
        );
        let watchdog = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto ({bin}): {e}; run scripts/test.sh to install it"));
        // Kept for the life of the process; the watchdog ends moto when we exit.
        let _ = MOTO_WATCHDOG.set(Mutex::new(watchdog));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return format!("http://{addr}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto ({bin}) did not start on {addr}; run scripts/test.sh to install it");
    })
    .clone()
}

/// The real aws-sdk-sqs client, pointed at moto.
pub fn sqs_client() -> Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto_endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    Client::from_conf(conf)
}

/// An AWS configuration pointed at moto (for the channels that call AWS: SES).
pub fn moto_aws_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto_endpoint())
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "static",
        )))
        .build()
}

/// Creates a fresh queue; FIFO when `fifo`.
pub async fn create_queue(client: &Client, fifo: bool) -> String {
    let mut name = format!("t-{}", uuid::Uuid::new_v4().simple());
    let mut req = client.create_queue();
    if fifo {
        name.push_str(".fifo");
        req = req
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
    }
    req.queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap()
}

/// Messages still in the queue: visible + in flight.
pub async fn queue_depth(client: &Client, url: &str) -> i64 {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let attrs = out.attributes.unwrap_or_default();
    let get = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    get(QueueAttributeName::ApproximateNumberOfMessages)
        + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// Sends bodies in batches of 10.
pub async fn send_all(client: &Client, url: &str, bodies: &[String], group: Option<&str>) {
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut e = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(b);
                if let Some(g) = group {
                    e = e.message_group_id(g);
                }
                e.build().unwrap()
            })
            .collect();
        let out = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send batch");
        assert!(out.failed.is_empty(), "send failed: {:?}", out.failed);
    }
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes (then panics with `what`).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy in front of a server that a test can take down (closing every connection
/// and refusing new ones) and bring back, or make silent: connections, old and new, stay open
/// but nothing passes either way (a network black hole) until it speaks again, when the
/// connections held silent are closed.
pub struct FlakyProxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    silent: watch::Sender<bool>,
    closed: watch::Sender<bool>,
}

impl FlakyProxy {
    pub async fn start(upstream: SocketAddr) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rx) = watch::channel(true);
        let (silent, quiet) = watch::channel(false);
        let (closed, mut gone) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // Closed for good: the listener goes, and a connection attempt is refused.
                    _ = gone.wait_for(|closed| *closed) => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    return;
                };
                if !*rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut rx = rx.clone();
                let mut quiet = quiet.clone();
                tokio::spawn(async move {
                    let silent_now = *quiet.borrow();
                    if silent_now {
                        let _ = quiet.wait_for(|silent| !*silent).await;
                        drop(inbound);
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let silenced = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        _ = rx.wait_for(|up| !*up) => false,
                        r = quiet.wait_for(|silent| *silent) => r.is_ok(),
                    };
                    if silenced {
                        // Both sockets stay open, untouched, until the proxy speaks again.
                        let _ = quiet.wait_for(|silent| !*silent).await;
                    }
                });
            }
        });
        FlakyProxy {
            addr,
            up,
            silent,
            closed,
        }
    }

    /// A proxy in front of the MariaDB server the tests use, and the URL of `test_db_url`'s
    /// database through it.
    pub async fn in_front_of(test_db_url: &str) -> (FlakyProxy, String) {
        let server = url_lite::parse(&crate::helpers::mysql_server_url());
        let upstream = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = FlakyProxy::start(upstream).await;
        let db_name = test_db_url.rsplit('/').next().unwrap();
        let via_proxy = format!("mysql://{}@{}/{db_name}", server.userinfo, proxy.addr);
        (proxy, via_proxy)
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// Gone for good: every connection closed and the port no longer listening, so a new
    /// connection is refused (as when a database host goes away).
    pub fn close(&self) {
        self.up.send_replace(false);
        self.closed.send_replace(true);
    }

    pub fn set_silent(&self, silent: bool) {
        self.silent.send_replace(silent);
    }
}

/// Minimal parsing of `mysql://user[:pass]@host:port`.
mod url_lite {
    pub struct Server {
        pub userinfo: String,
        pub host: String,
        pub port: u16,
    }

    pub fn parse(url: &str) -> Server {
        let rest = url.split_once("://").unwrap().1.trim_end_matches('/');
        let (userinfo, hostport) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
        Server {
            userinfo: userinfo.to_string(),
            host: host.to_string(),
            port: port.parse().unwrap(),
        }
    }
}

/// A channel whose answers the test scripts: each call takes the next scripted outcome
/// (when the script is empty: delivered) and records the delivery id.
#[derive(Clone, Default)]
pub struct ScriptedChannel {
    script: Arc<Mutex<VecDeque<SendOutcome>>>,
    always: Arc<Mutex<Option<SendOutcome>>>,
    pub calls: Arc<Mutex<Vec<String>>>,
}

impl ScriptedChannel {
    pub fn then(&self, outcome: SendOutcome) -> &Self {
        self.script.lock().unwrap().push_back(outcome);
        self
    }

    /// Answer this to every call (until cleared with `None`).
    pub fn always(&self, outcome: Option<SendOutcome>) {
        *self.always.lock().unwrap() = outcome;
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Channel for ScriptedChannel {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        async move {
            self.calls.lock().unwrap().push(job.delivery_id.clone());
            if let Some(o) = self.always.lock().unwrap().clone() {
                return o;
            }
            self.script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(SendOutcome::Delivered { dry_run: false })
        }
        .boxed()
    }
}

pub fn retry(error: &str) -> SendOutcome {
    SendOutcome::Retry {
        error: error.into(),
        after: None,
    }
}
