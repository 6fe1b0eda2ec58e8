//! The database settings: a clap group flattened into the configuration.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::Backend;
use crate::settings::parse_duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// Database: `sqlite://PATH` (created on first run) or `mysql://USER:PASS@HOST:PORT/DB`
    /// for MySQL / MariaDB (production, through RDS Proxy).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://allim.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: SecretString,

    /// Maximum open database connections (MySQL; SQLite always uses one writer connection).
    #[arg(long, env = "ALLIM_DB_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub db_max_connections: u32,

    /// How long a database call waits for a connection before the database counts as
    /// unavailable (an answer is then 503; the SQS consumer holds its batch and probes).
    #[arg(long, env = "ALLIM_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// Longest a commit of accepted notifications may take, from taking a connection to the
    /// database's answer. Past it the commit is abandoned and its callers are answered 503
    /// "may have been stored" (retry with the same idempotency key; the SQS consumer leaves
    /// the batch on the queue). A database that stops answering without closing the
    /// connection would otherwise hold a writer until TCP gives up (about 15 minutes on
    /// Linux). At most 25 s, below the 30 s request timeout, so the answer says which.
    #[arg(long, env = "ALLIM_DB_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub db_write_timeout: Duration,

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

    /// Delete what is finished and older than this (e.g. `90d`): delivered, dead and rejected
    /// deliveries, read inbox rows, alarm history, sent-part records. Unset: keep everything.
    #[arg(long, env = "ALLIM_RETENTION", value_parser = parse_duration, global = true)]
    pub retention: Option<Duration>,

    /// Apply migrations at start. `allim migrate` applies them explicitly.
    #[arg(long, env = "ALLIM_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub auto_migrate: bool,
}

impl DbArgs {
    /// Which backend `DATABASE_URL` selects.
    pub fn backend(&self) -> anyhow::Result<Backend> {
        Backend::of_url(self.database_url.expose_secret())
    }

    /// The database URL with any password replaced, for log lines.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }

    /// Checks what clap's types cannot; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let backend = self.backend()?;
        if (self.db_tls || self.db_iam_auth) && backend != Backend::MySql {
            anyhow::bail!("ALLIM_DB_TLS and ALLIM_DB_IAM_AUTH apply to MySQL only (DATABASE_URL is not mysql://)");
        }
        if self.db_tls && !self.db_ca.is_file() {
            anyhow::bail!("ALLIM_DB_CA: {} is not a readable file", self.db_ca.display());
        }
        if self.db_iam_auth {
            if !self.db_tls {
                anyhow::bail!("ALLIM_DB_IAM_AUTH needs ALLIM_DB_TLS=true: the token is sent in cleartext inside TLS");
            }
            let url = reqwest::Url::parse(self.database_url.expose_secret())
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
        if self.db_acquire_timeout < Duration::from_millis(100) || self.db_acquire_timeout > Duration::from_secs(60) {
            anyhow::bail!("ALLIM_DB_ACQUIRE_TIMEOUT must be between 100ms and 60s");
        }
        if self.db_write_timeout < Duration::from_millis(100) || self.db_write_timeout > Duration::from_secs(25) {
            anyhow::bail!(
                "ALLIM_DB_WRITE_TIMEOUT must be between 100ms and 25s (below the 30s request timeout, so a caller is told what happened)"
            );
        }
        if let Some(r) = self.retention
            && r < Duration::from_secs(24 * 3600)
        {
            anyhow::bail!("ALLIM_RETENTION must be at least 1d");
        }
        if self.db_max_connections == 0 || self.db_max_connections > 1000 {
            anyhow::bail!("ALLIM_DB_MAX_CONNECTIONS must be between 1 and 1000");
        }
        Ok(())
    }
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The host follows the last '@': a password may contain '@' itself.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("mysql://app:s3cret@db:3306/allim"),
            "mysql://app:***@db:3306/allim"
        );
        assert_eq!(redact_url("sqlite://allim.db"), "sqlite://allim.db");
        assert_eq!(
            redact_url("mysql://app:p@ss@w0rd@db:3306/allim"),
            "mysql://app:***@db:3306/allim",
            "no tail of a password with '@'"
        );
    }
}
