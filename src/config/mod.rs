//! Configuration: every setting comes from a command-line flag or its environment variable
//! (clap), is read once at start, and is checked by [`Config::validate`], whose errors name
//! the setting that is wrong. `allim --help` lists every option with its variable.
//!
//! Each box owns its settings as a clap `Args` group with its own `validate()` (the database in
//! `store`, the SQS consumer and SNS webhook in `ingress`, the dispatcher, the alarms, every
//! channel in its module); [`Config`] only flattens them and checks what spans two groups.
//! [`Config::for_tests`] starts from the same clap defaults, so it cannot drift from them.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::alarms::AlarmArgs;
use crate::api::ApiArgs;
use crate::channels::ChannelArgs;
use crate::channels::http::HttpArgs;
use crate::dispatch::DispatchArgs;
use crate::ingress::sns::SnsArgs;
use crate::ingress::sqs::SqsArgs;
use crate::ingress::sqs_door::SqsDoorArgs;
use crate::ingress::watchers::WatcherArgs;
use crate::settings::parse_duration;
use crate::store::DbArgs;
use crate::telemetry::{LogArgs, LogFormat};

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

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the service (the default when no subcommand is given).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Ask the running service's `/healthz` (on ALLIM_LISTEN) and exit 0 if it is healthy:
    /// the container health check, with no curl in the image.
    Healthcheck,
    /// Alarm routing rules.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum RulesCommand {
    /// Check a rules file and show what an alarm would do under it: the rules that match, who
    /// gets what text, quiet hours. Nothing is sent. Exits 2 if the rules or the alarm are
    /// invalid, so a rules change can be checked in CI before it is deployed.
    Test {
        /// The rules file (TOML, as ALLIM_ALARM_RULES).
        rules: std::path::PathBuf,
        /// One or more CloudWatch alarm messages (JSON files, as SNS's `Message` or the whole
        /// SNS notification).
        #[arg(required = true)]
        alarms: Vec<std::path::PathBuf>,
    },
}

/// Every setting of the service, in one group per box. Each field is one flag and one
/// environment variable.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub db: DbArgs,

    /// How long to finish in-flight work after SIGTERM / SIGINT (e.g. `25s`, `500ms`).
    #[arg(long, env = "ALLIM_SHUTDOWN_GRACE", default_value = "25s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub sqs: SqsArgs,
    #[command(flatten)]
    pub sqs_door: SqsDoorArgs,
    #[command(flatten)]
    pub watchers: WatcherArgs,
    #[command(flatten)]
    pub dispatch: DispatchArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub channels: ChannelArgs,
    #[command(flatten)]
    pub sns: SnsArgs,
    #[command(flatten)]
    pub alarms: AlarmArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Config {
    /// Checks every group, then what spans two; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.db.validate()?;
        self.api.validate()?;
        if self.shutdown_grace > Duration::from_secs(3600) {
            anyhow::bail!("ALLIM_SHUTDOWN_GRACE must be at most 1h");
        }
        self.sqs.validate()?;
        self.sqs_door.validate()?;
        self.watchers.validate()?;
        self.dispatch.validate()?;
        self.http.validate()?;
        if self.http.http_timeout >= self.dispatch.dispatch_lease {
            anyhow::bail!("ALLIM_HTTP_TIMEOUT must be shorter than ALLIM_DISPATCH_LEASE");
        }
        self.channels.validate()?;
        self.sns.validate()?;
        self.alarms.validate()?;
        self.log.validate()
    }

    /// The clap defaults, with no environment variable read.
    pub fn defaults() -> Self {
        crate::settings::defaults()
    }

    /// A configuration for tests: the clap defaults, the given database, and what makes tests
    /// quick (port 0, short waits and retries, fast provider rates, quiet logs).
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        let mut c = Self::defaults();
        c.api.listen = "127.0.0.1:0".parse().expect("static address");
        c.db.database_url = database_url.into().into();
        c.db.db_max_connections = 5;
        c.shutdown_grace = Duration::from_secs(5);
        c.sqs.sqs_wait_time = Duration::from_secs(1);
        c.dispatch.dispatch_interval = Duration::from_millis(100);
        c.dispatch.dispatch_concurrency = 16;
        c.dispatch.dispatch_lease = Duration::from_secs(30);
        c.dispatch.retry_max_attempts = 5;
        c.dispatch.retry_base = Duration::from_millis(50);
        c.dispatch.retry_cap = Duration::from_secs(1);
        c.http.http_timeout = Duration::from_secs(5);
        c.channels.sens.sens_rate_per_sec = 1000.0;
        c.channels.fcm.fcm_rate_per_sec = 1000.0;
        c.channels.slack.slack_rate_per_sec = 1000.0;
        c.alarms.alarm_tick = Duration::from_millis(100);
        c.log.log_format = Some(LogFormat::Json);
        c.log.log_filter = "warn".into();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::ApiToken;

    #[test]
    fn validation_names_the_setting() {
        let mut c = Config::for_tests("postgres://x");
        assert!(c.validate().unwrap_err().to_string().contains("DATABASE_URL"));
        c.db.database_url = "sqlite://x.db".into();
        c.api.api_tokens = vec![ApiToken::parse("send:short").unwrap()];
        assert!(c.validate().unwrap_err().to_string().contains("ALLIM_API_TOKENS"));
        c.api.api_tokens = vec![ApiToken::parse("0123456789abcdef0").unwrap()];
        c.validate().unwrap();
        assert!(!format!("{:?}", c.api.api_tokens).contains("0123456789abcdef0"));
        let mut secretive = c.clone();
        secretive.db.database_url = "mysql://app:hunter2@db:3306/allim".into();
        assert!(
            !format!("{secretive:?}").contains("hunter2"),
            "Debug never shows the database password"
        );
        c.channels.sens.sens_access_key = Some("AK".into());
        assert!(c.validate().unwrap_err().to_string().contains("ALLIM_SENS_SECRET_KEY"));
        let mut c = Config::for_tests("sqlite://x.db");
        c.http.http_timeout = Duration::from_secs(40);
        assert!(c.validate().unwrap_err().to_string().contains("ALLIM_HTTP_TIMEOUT"));
        // Secure by default: open /v1 only on loopback, or when explicitly allowed.
        let mut c = Config::for_tests("sqlite://x.db");
        c.api.listen = "0.0.0.0:8080".parse().unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("ALLIM_API_TOKENS") && e.contains("ALLIM_ALLOW_ANONYMOUS"),
            "{e}"
        );
        c.api.allow_anonymous = true;
        c.validate().unwrap();
        c.api.allow_anonymous = false;
        c.api.api_tokens = vec![ApiToken::parse("send:0123456789abcdef0").unwrap()];
        c.validate().unwrap();
    }

    #[test]
    fn test_configuration_starts_from_the_clap_defaults() {
        let d = Config::defaults();
        assert_eq!(d.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(d.dispatch.dispatch_lease, Duration::from_secs(60));
        assert_eq!(d.channels.slack.slack_rate_per_sec, 1.0);
        let t = Config::for_tests("sqlite://t.db");
        assert_eq!(t.db.db_iam_refresh, d.db.db_iam_refresh);
        assert_eq!(t.sqs.sqs_pollers, d.sqs.sqs_pollers);
        t.validate().unwrap();
    }
}
