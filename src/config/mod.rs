//! Configuration: every setting comes from a command-line flag or its environment variable
//! (clap), is read once at start, and is checked by [`Config::validate`], whose errors name
//! the setting that is wrong. `allim --help` lists every option with its variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// allim (알림): a notification service. Accepts notifications over HTTP (and, in production,
/// SQS and SNS), keeps every one in its database and delivers it to the in-app inbox, push,
/// SMS or Slack.
#[derive(Debug, Parser)]
#[command(name = "allim", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the service (the default when no subcommand is given).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Ask the running service's `/healthz` (on ALLIM_LISTEN) and exit 0 if it is healthy:
    /// the container health check, with no curl in the image.
    Healthcheck,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    Pretty,
    /// One JSON object per line (the default otherwise, e.g. on ECS / CloudWatch Logs).
    Json,
}

/// Every setting of the service. Each field is one flag and one environment variable.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "ALLIM_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Database: `sqlite://PATH` (created on first run) or `mysql://USER:PASS@HOST:PORT/DB`
    /// for MySQL / MariaDB (production, through RDS Proxy).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://allim.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Secret,

    /// Maximum open database connections (MySQL; SQLite always uses one writer connection).
    #[arg(long, env = "ALLIM_DB_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub db_max_connections: u32,

    /// TLS to MySQL that verifies the server's certificate and host name against
    /// `ALLIM_DB_CA` (RDS Proxy: set `RequireTLS` on the proxy too).
    #[arg(long, env = "ALLIM_DB_TLS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub db_tls: bool,

    /// CA bundle for `ALLIM_DB_TLS` (RDS Proxy: Amazon Root CA 1, bundled in the image).
    #[arg(
        long,
        env = "ALLIM_DB_CA",
        default_value = "/etc/allim/AmazonRootCA1.pem",
        global = true
    )]
    pub db_ca: std::path::PathBuf,

    /// Authenticate to MySQL / RDS Proxy with IAM auth tokens instead of a password (needs
    /// `ALLIM_DB_TLS`; `DATABASE_URL` then has a user but no password).
    #[arg(long, env = "ALLIM_DB_IAM_AUTH", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub db_iam_auth: bool,

    /// How often a fresh IAM token is made for new connections (tokens last 15 minutes).
    #[arg(long, env = "ALLIM_DB_IAM_REFRESH", default_value = "10m", value_parser = parse_duration, global = true)]
    pub db_iam_refresh: Duration,

    /// Apply migrations at start. `allim migrate` applies them explicitly.
    #[arg(long, env = "ALLIM_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub auto_migrate: bool,

    /// Comma-separated bearer tokens. When set, every `/v1` request needs
    /// `Authorization: Bearer <one of them>`; when empty, `/v1` is open (local use only).
    #[arg(
        long,
        env = "ALLIM_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub api_tokens: Vec<Secret>,

    /// Largest accepted request body in bytes for one notification (batches get 16×, at most 8 MiB).
    #[arg(long, env = "ALLIM_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// How long to finish in-flight work after SIGTERM / SIGINT (e.g. `25s`, `500ms`).
    #[arg(long, env = "ALLIM_SHUTDOWN_GRACE", default_value = "25s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// SQS queue to consume (enables the SQS ingress). Endpoint, region and credentials come
    /// from the standard AWS chain (`AWS_ENDPOINT_URL_SQS` for a local stand-in).
    #[arg(long, env = "ALLIM_SQS_QUEUE_URL", global = true)]
    pub sqs_queue_url: Option<String>,

    /// Concurrent long-polling receivers.
    #[arg(long, env = "ALLIM_SQS_POLLERS", default_value_t = 2, global = true)]
    pub sqs_pollers: usize,

    /// Long-poll wait per receive (0s to 20s).
    #[arg(long, env = "ALLIM_SQS_WAIT_TIME", default_value = "20s", value_parser = parse_duration, global = true)]
    pub sqs_wait_time: Duration,

    /// Messages being accepted at once, across pollers.
    #[arg(long, env = "ALLIM_SQS_MAX_IN_FLIGHT", default_value_t = 200, global = true)]
    pub sqs_max_in_flight: usize,

    /// Visibility timeout to ask for on receive (default: the queue's own).
    #[arg(long, env = "ALLIM_SQS_VISIBILITY_TIMEOUT", value_parser = parse_duration, global = true)]
    pub sqs_visibility_timeout: Option<Duration>,

    /// Run the dispatcher (sends due deliveries). Turn off for an ingest-only process.
    #[arg(long, env = "ALLIM_DISPATCH", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub dispatch: bool,

    /// How often the dispatcher looks for due deliveries when nothing wakes it.
    #[arg(long, env = "ALLIM_DISPATCH_INTERVAL", default_value = "1s", value_parser = parse_duration, global = true)]
    pub dispatch_interval: Duration,

    /// Deliveries claimed per dispatcher step.
    #[arg(long, env = "ALLIM_DISPATCH_BATCH", default_value_t = 100, global = true)]
    pub dispatch_batch: u32,

    /// Sends in flight at once.
    #[arg(long, env = "ALLIM_DISPATCH_CONCURRENCY", default_value_t = 32, global = true)]
    pub dispatch_concurrency: usize,

    /// How long a claimed delivery is leased to this process (must exceed the slowest send).
    #[arg(long, env = "ALLIM_DISPATCH_LEASE", default_value = "60s", value_parser = parse_duration, global = true)]
    pub dispatch_lease: Duration,

    /// Attempts before a delivery goes dead.
    #[arg(long, env = "ALLIM_RETRY_MAX_ATTEMPTS", default_value_t = 8, global = true)]
    pub retry_max_attempts: i64,

    /// First retry delay (doubles per attempt, with jitter).
    #[arg(long, env = "ALLIM_RETRY_BASE", default_value = "10s", value_parser = parse_duration, global = true)]
    pub retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "ALLIM_RETRY_CAP", default_value = "1h", value_parser = parse_duration, global = true)]
    pub retry_cap: Duration,

    /// Timeout of every outbound HTTP call (SENS, FCM, Slack, certificate fetches).
    #[arg(long, env = "ALLIM_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub http_timeout: Duration,

    /// Naver Cloud access key for SENS. Without the SENS keys, SMS is dry-run (logged only).
    #[arg(long, env = "ALLIM_SENS_ACCESS_KEY", hide_env_values = true, global = true)]
    pub sens_access_key: Option<String>,

    /// Naver Cloud secret key for SENS (signs each request).
    #[arg(long, env = "ALLIM_SENS_SECRET_KEY", hide_env_values = true, global = true)]
    pub sens_secret_key: Option<Secret>,

    /// SENS SMS service id, e.g. `ncp:sms:kr:123456789012:myproject`.
    #[arg(long, env = "ALLIM_SENS_SERVICE_ID", global = true)]
    pub sens_service_id: Option<String>,

    /// Pre-registered calling number SMS are sent from (digits).
    #[arg(long, env = "ALLIM_SENS_FROM", global = true)]
    pub sens_from: Option<String>,

    /// SENS API base URL.
    #[arg(
        long,
        env = "ALLIM_SENS_BASE_URL",
        default_value = "https://sens.apigw.ntruss.com",
        global = true
    )]
    pub sens_base_url: String,

    /// Most SENS requests per second.
    #[arg(long, env = "ALLIM_SENS_RATE_PER_SEC", default_value_t = 20.0, global = true)]
    pub sens_rate_per_sec: f64,

    /// Path of the Firebase service-account JSON. Without it, push is dry-run (logged only).
    #[arg(long, env = "ALLIM_FCM_CREDENTIALS", global = true)]
    pub fcm_credentials: Option<std::path::PathBuf>,

    /// The service-account JSON itself, instead of a file (e.g. injected from Secrets Manager).
    #[arg(long, env = "ALLIM_FCM_CREDENTIALS_JSON", hide_env_values = true, global = true)]
    pub fcm_credentials_json: Option<Secret>,

    /// FCM API base URL.
    #[arg(
        long,
        env = "ALLIM_FCM_BASE_URL",
        default_value = "https://fcm.googleapis.com",
        global = true
    )]
    pub fcm_base_url: String,

    /// OAuth2 token endpoint (default: the credentials' `token_uri`).
    #[arg(long, env = "ALLIM_FCM_TOKEN_URL", global = true)]
    pub fcm_token_url: Option<String>,

    /// Most FCM sends per second.
    #[arg(long, env = "ALLIM_FCM_RATE_PER_SEC", default_value_t = 200.0, global = true)]
    pub fcm_rate_per_sec: f64,

    /// Named Slack incoming webhooks: `default=https://hooks.slack.com/…,ops=https://…`. A
    /// message's `channel` picks one (absent: `default`). Without any, Slack is dry-run.
    #[arg(long, env = "ALLIM_SLACK_WEBHOOKS", value_delimiter = ',', value_parser = parse_webhook, hide_env_values = true, global = true)]
    pub slack_webhooks: Vec<SlackWebhook>,

    /// Most Slack posts per second (Slack allows about one per second per webhook).
    #[arg(long, env = "ALLIM_SLACK_RATE_PER_SEC", default_value_t = 1.0, global = true)]
    pub slack_rate_per_sec: f64,

    /// SNS topics whose messages `/webhooks/sns` accepts (comma-separated ARNs). Empty: none.
    #[arg(long, env = "ALLIM_SNS_TOPIC_ARNS", value_delimiter = ',', global = true)]
    pub sns_topic_arns: Vec<String>,

    /// TESTS ONLY, never in production: also accept SNS certificate / subscribe URLs that
    /// start with this prefix (e.g. `http://127.0.0.1:9999/`).
    #[arg(long, env = "ALLIM_SNS_INSECURE_CERT_URL_PREFIX", global = true)]
    pub sns_insecure_cert_url_prefix: Option<String>,

    /// TESTS ONLY, never in production: fetch SNS signing certificates from this base URL
    /// (a local SNS stand-in such as moto) instead of the host in SigningCertURL.
    #[arg(long, env = "ALLIM_SNS_INSECURE_CERT_FETCH_BASE", global = true)]
    pub sns_insecure_cert_fetch_base: Option<String>,

    /// Alarm routing rules file (TOML, or YAML when it ends in .yaml / .yml).
    #[arg(long, env = "ALLIM_ALARM_RULES", global = true)]
    pub alarm_rules: Option<std::path::PathBuf>,

    /// The rules themselves (TOML), instead of a file (e.g. injected from SSM Parameter Store).
    #[arg(long, env = "ALLIM_ALARM_RULES_TOML", global = true)]
    pub alarm_rules_toml: Option<String>,

    /// How often to send the flap summaries of windows that have ended.
    #[arg(long, env = "ALLIM_ALARM_TICK", default_value = "10s", value_parser = parse_duration, global = true)]
    pub alarm_tick: Duration,

    /// Log format: `pretty` or `json` (default: pretty on a terminal, json otherwise).
    #[arg(long, env = "ALLIM_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,

    /// Log filter in `tracing` syntax, e.g. `info` or `allim=debug,sqlx=warn`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

/// A secret setting: printed as `***` by `Debug`, so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself; call only where it is used (a header, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// A named Slack incoming webhook (`name=https://hooks.slack.com/services/…`).
#[derive(Clone, PartialEq, Eq)]
pub struct SlackWebhook {
    pub name: String,
    pub url: Secret,
}

impl std::fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.name)
    }
}

fn parse_webhook(s: &str) -> Result<SlackWebhook, String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{:?} is not NAME=URL", s.split('=').next().unwrap_or_default()))?;
    let name = name.trim();
    let url = url.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "webhook name {name:?} must be [a-z0-9_-], at most 64 characters"
        ));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("webhook {name:?}: the URL must start with https://"));
    }
    Ok(SlackWebhook {
        name: name.to_string(),
        url: Secret::new(url),
    })
}

/// The database the URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Config {
    /// Checks the settings that clap's types cannot; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.backend()?;
        if self.db_tls || self.db_iam_auth {
            if self.backend()? != Backend::MySql {
                anyhow::bail!("ALLIM_DB_TLS and ALLIM_DB_IAM_AUTH apply to MySQL only (DATABASE_URL is not mysql://)");
            }
            if self.db_tls && !self.db_ca.is_file() {
                anyhow::bail!("ALLIM_DB_CA: {} is not a readable file", self.db_ca.display());
            }
        }
        if self.db_iam_auth {
            if !self.db_tls {
                anyhow::bail!("ALLIM_DB_IAM_AUTH needs ALLIM_DB_TLS=true: the token is sent in cleartext inside TLS");
            }
            let url = reqwest::Url::parse(self.database_url.expose())
                .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a URL"))?;
            if url.password().is_some() {
                anyhow::bail!(
                    "DATABASE_URL must not carry a password with ALLIM_DB_IAM_AUTH (the IAM token is the password)"
                );
            }
            if url.username().is_empty() {
                anyhow::bail!("DATABASE_URL needs the database user with ALLIM_DB_IAM_AUTH");
            }
            if self.db_iam_refresh < Duration::from_secs(1) || self.db_iam_refresh > Duration::from_secs(14 * 60) {
                anyhow::bail!("ALLIM_DB_IAM_REFRESH must be between 1s and 14m (tokens last 15 minutes)");
            }
        }
        if self.db_max_connections == 0 || self.db_max_connections > 1000 {
            anyhow::bail!("ALLIM_DB_MAX_CONNECTIONS must be between 1 and 1000");
        }
        for (i, token) in self.api_tokens.iter().map(Secret::expose).enumerate() {
            if token.trim().len() < 16 {
                anyhow::bail!(
                    "ALLIM_API_TOKENS: token #{} is shorter than 16 characters (tokens are secrets; use random ones)",
                    i + 1
                );
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                anyhow::bail!("ALLIM_API_TOKENS: token #{} contains white space", i + 1);
            }
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            anyhow::bail!("ALLIM_MAX_BODY_BYTES must be between 1024 and 16777216");
        }
        if self.shutdown_grace > Duration::from_secs(3600) {
            anyhow::bail!("ALLIM_SHUTDOWN_GRACE must be at most 1h");
        }
        if let Some(url) = &self.sqs_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("ALLIM_SQS_QUEUE_URL must be a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)");
        }
        if !(1..=64).contains(&self.sqs_pollers) {
            anyhow::bail!("ALLIM_SQS_POLLERS must be between 1 and 64");
        }
        if self.sqs_wait_time > Duration::from_secs(20) {
            anyhow::bail!("ALLIM_SQS_WAIT_TIME must be at most 20s (SQS's limit)");
        }
        if !(10..=100_000).contains(&self.sqs_max_in_flight) {
            anyhow::bail!("ALLIM_SQS_MAX_IN_FLIGHT must be between 10 and 100000");
        }
        if let Some(v) = self.sqs_visibility_timeout
            && v > Duration::from_secs(43_200)
        {
            anyhow::bail!("ALLIM_SQS_VISIBILITY_TIMEOUT must be at most 12h (SQS's limit)");
        }
        if !(1..=1000).contains(&self.dispatch_batch) {
            anyhow::bail!("ALLIM_DISPATCH_BATCH must be between 1 and 1000");
        }
        if !(1..=1000).contains(&self.dispatch_concurrency) {
            anyhow::bail!("ALLIM_DISPATCH_CONCURRENCY must be between 1 and 1000");
        }
        if self.dispatch_interval < Duration::from_millis(10) {
            anyhow::bail!("ALLIM_DISPATCH_INTERVAL must be at least 10ms");
        }
        if self.dispatch_lease < Duration::from_secs(1) {
            anyhow::bail!("ALLIM_DISPATCH_LEASE must be at least 1s");
        }
        if !(1..=100).contains(&self.retry_max_attempts) {
            anyhow::bail!("ALLIM_RETRY_MAX_ATTEMPTS must be between 1 and 100");
        }
        if self.retry_base > self.retry_cap {
            anyhow::bail!("ALLIM_RETRY_BASE must not exceed ALLIM_RETRY_CAP");
        }
        if self.http_timeout < Duration::from_millis(100) || self.http_timeout > Duration::from_secs(60) {
            anyhow::bail!("ALLIM_HTTP_TIMEOUT must be between 100ms and 60s");
        }
        if self.http_timeout >= self.dispatch_lease {
            anyhow::bail!("ALLIM_HTTP_TIMEOUT must be shorter than ALLIM_DISPATCH_LEASE");
        }
        let sens = [
            self.sens_access_key.is_some(),
            self.sens_secret_key.is_some(),
            self.sens_service_id.is_some(),
            self.sens_from.is_some(),
        ];
        if sens.iter().any(|x| *x) && !sens.iter().all(|x| *x) {
            anyhow::bail!(
                "SENS needs all of ALLIM_SENS_ACCESS_KEY, ALLIM_SENS_SECRET_KEY, ALLIM_SENS_SERVICE_ID and ALLIM_SENS_FROM (or none, for dry-run)"
            );
        }
        if let Some(from) = &self.sens_from
            && (from.is_empty() || !from.chars().all(|c| c.is_ascii_digit()))
        {
            anyhow::bail!("ALLIM_SENS_FROM must be the registered calling number, digits only");
        }
        for (name, url) in [
            ("ALLIM_SENS_BASE_URL", &self.sens_base_url),
            ("ALLIM_FCM_BASE_URL", &self.fcm_base_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("{name} must be an http(s) URL");
            }
        }
        for (name, rate) in [
            ("ALLIM_SENS_RATE_PER_SEC", self.sens_rate_per_sec),
            ("ALLIM_FCM_RATE_PER_SEC", self.fcm_rate_per_sec),
            ("ALLIM_SLACK_RATE_PER_SEC", self.slack_rate_per_sec),
        ] {
            if !(rate > 0.0 && rate <= 100_000.0) {
                anyhow::bail!("{name} must be above 0 and at most 100000");
            }
        }
        for arn in &self.sns_topic_arns {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" {
                anyhow::bail!(
                    "ALLIM_SNS_TOPIC_ARNS: {arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
                );
            }
        }
        if self.fcm_credentials.is_some() && self.fcm_credentials_json.is_some() {
            anyhow::bail!("set ALLIM_FCM_CREDENTIALS or ALLIM_FCM_CREDENTIALS_JSON, not both");
        }
        if self.alarm_rules.is_some() && self.alarm_rules_toml.is_some() {
            anyhow::bail!("set ALLIM_ALARM_RULES or ALLIM_ALARM_RULES_TOML, not both");
        }
        if self.alarm_tick < Duration::from_millis(10) {
            anyhow::bail!("ALLIM_ALARM_TICK must be at least 10ms");
        }
        let mut names: Vec<&str> = self.slack_webhooks.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            anyhow::bail!("ALLIM_SLACK_WEBHOOKS names a webhook twice");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .map_err(|e| anyhow::anyhow!("RUST_LOG is not a valid filter: {e}"))?;
        Ok(())
    }

    /// Which backend `DATABASE_URL` selects.
    pub fn backend(&self) -> anyhow::Result<Backend> {
        let scheme = self.database_url.expose().split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            other => anyhow::bail!(
                "DATABASE_URL: unsupported scheme {other:?}; use sqlite://PATH or mysql://USER:PASS@HOST:PORT/DB"
            ),
        }
    }

    /// The database URL with any password replaced, for log lines.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose())
    }

    /// The dispatcher's settings.
    pub fn dispatch_config(&self) -> crate::dispatch::DispatchConfig {
        crate::dispatch::DispatchConfig {
            interval: self.dispatch_interval,
            batch: self.dispatch_batch,
            concurrency: self.dispatch_concurrency,
            lease: self.dispatch_lease,
            max_attempts: self.retry_max_attempts,
            retry_base: self.retry_base,
            retry_cap: self.retry_cap,
        }
    }

    /// The SQS consumer's settings, when a queue is configured.
    pub fn sqs_config(&self) -> Option<crate::ingress::sqs::SqsConfig> {
        self.sqs_queue_url.as_ref().map(|url| crate::ingress::sqs::SqsConfig {
            queue_url: url.clone(),
            pollers: self.sqs_pollers,
            wait_time: self.sqs_wait_time,
            max_in_flight: self.sqs_max_in_flight,
            visibility_timeout: self.sqs_visibility_timeout,
        })
    }

    /// Largest body for a batch request.
    pub fn max_batch_body_bytes(&self) -> usize {
        (self.max_body_bytes * 16).min(8 * 1024 * 1024)
    }

    /// A configuration for tests: in-memory defaults, the given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Config {
            listen: "127.0.0.1:0".parse().expect("static address"),
            database_url: Secret::new(database_url),
            db_max_connections: 5,
            db_tls: false,
            db_ca: "/etc/allim/AmazonRootCA1.pem".into(),
            db_iam_auth: false,
            db_iam_refresh: Duration::from_secs(600),
            auto_migrate: true,
            api_tokens: Vec::new(),
            max_body_bytes: 256 * 1024,
            shutdown_grace: Duration::from_secs(5),
            sqs_queue_url: None,
            sqs_pollers: 2,
            sqs_wait_time: Duration::from_secs(1),
            sqs_max_in_flight: 200,
            sqs_visibility_timeout: None,
            dispatch: true,
            dispatch_interval: Duration::from_millis(100),
            dispatch_batch: 100,
            dispatch_concurrency: 16,
            dispatch_lease: Duration::from_secs(30),
            retry_max_attempts: 5,
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(1),
            http_timeout: Duration::from_secs(5),
            sens_access_key: None,
            sens_secret_key: None,
            sens_service_id: None,
            sens_from: None,
            sens_base_url: "https://sens.apigw.ntruss.com".into(),
            sens_rate_per_sec: 1000.0,
            fcm_credentials: None,
            fcm_credentials_json: None,
            fcm_base_url: "https://fcm.googleapis.com".into(),
            fcm_token_url: None,
            fcm_rate_per_sec: 1000.0,
            slack_webhooks: Vec::new(),
            slack_rate_per_sec: 1000.0,
            sns_topic_arns: Vec::new(),
            sns_insecure_cert_url_prefix: None,
            sns_insecure_cert_fetch_base: None,
            alarm_rules: None,
            alarm_rules_toml: None,
            alarm_tick: Duration::from_millis(100),
            log_format: Some(LogFormat::Json),
            log_filter: "warn".into(),
        }
    }
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// Parses `25s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 25s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("25s").unwrap(), Duration::from_secs(25));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("mysql://app:s3cret@db:3306/allim"),
            "mysql://app:***@db:3306/allim"
        );
        assert_eq!(redact_url("sqlite://allim.db"), "sqlite://allim.db");
    }

    #[test]
    fn validation_names_the_setting() {
        let mut c = Config::for_tests("postgres://x");
        assert!(c.validate().unwrap_err().to_string().contains("DATABASE_URL"));
        c.database_url = Secret::new("sqlite://x.db");
        c.api_tokens = vec![Secret::new("short")];
        assert!(c.validate().unwrap_err().to_string().contains("ALLIM_API_TOKENS"));
        c.api_tokens = vec![Secret::new("0123456789abcdef0")];
        c.validate().unwrap();
        assert_eq!(format!("{:?}", c.api_tokens), "[***]");
        let mut secretive = c.clone();
        secretive.database_url = Secret::new("mysql://app:hunter2@db:3306/allim");
        assert!(
            !format!("{secretive:?}").contains("hunter2"),
            "Debug never shows the database password"
        );
        c.sens_access_key = Some("AK".into());
        assert!(c.validate().unwrap_err().to_string().contains("ALLIM_SENS_SECRET_KEY"));
    }

    #[test]
    fn webhooks_parse() {
        let w = parse_webhook("ops=https://hooks.slack.com/services/T/B/x").unwrap();
        assert_eq!(
            (w.name.as_str(), w.url.expose()),
            ("ops", "https://hooks.slack.com/services/T/B/x")
        );
        assert_eq!(format!("{w:?}"), "ops=***");
        assert!(parse_webhook("Ops=https://x").is_err());
        assert!(parse_webhook("ops").is_err());
        assert!(parse_webhook("ops=ftp://x").is_err());
    }
}
