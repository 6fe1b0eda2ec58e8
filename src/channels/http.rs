//! What the provider channels share: one HTTP client (connection pooling, timeouts), rate
//! limiters (governor), Retry-After parsing, and turning a provider's answer into an outcome.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use reqwest::StatusCode;

use super::SendOutcome;
use crate::settings::parse_duration;

/// The outbound HTTP settings.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Timeout of every outbound HTTP call (SENS, FCM, Slack, certificate fetches).
    #[arg(long, env = "ALLIM_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub http_timeout: Duration,
}

impl HttpArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.http_timeout < Duration::from_millis(100) || self.http_timeout > Duration::from_secs(60) {
            anyhow::bail!("ALLIM_HTTP_TIMEOUT must be between 100ms and 60s");
        }
        Ok(())
    }

    /// The one outbound HTTP client: every call has a timeout.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(self.http_timeout)
            .connect_timeout(self.http_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("allim/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client builds")
    }
}

/// Whether `name` can name a configured target (a Slack webhook, a webhook endpoint):
/// `[a-z0-9_-]`, 1 to 64 characters.
pub fn is_target_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A `name=value` setting item whose name is a target name (see [`is_target_name`]).
pub fn named_setting(s: &str, what: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("each {what} must be NAME=VALUE"))?;
    let name = name.trim();
    if !is_target_name(name) {
        return Err(format!(
            "a {what} name (before the first =) must be [a-z0-9_-], at most 64 characters"
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// A rate setting must be above 0 and at most 100000 per second.
pub fn check_rate(name: &str, rate: f64) -> anyhow::Result<()> {
    if !(rate > 0.0 && rate <= 100_000.0) {
        anyhow::bail!("{name} must be above 0 and at most 100000");
    }
    Ok(())
}

/// A base-URL setting must be http(s).
pub fn check_url(name: &str, url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        anyhow::bail!("{name} must be an http(s) URL");
    }
    Ok(())
}

/// Spaces calls evenly (no bursts) so that the provider account is not throttled.
pub type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;
/// As [`Limiter`], one budget per key (e.g. per Slack webhook).
pub type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

fn quota(rate_per_sec: f64) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate_per_sec.clamp(0.001, 1e9));
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::MIN)
}

pub fn limiter(rate_per_sec: f64) -> Limiter {
    RateLimiter::direct(quota(rate_per_sec))
}

pub fn keyed_limiter(rate_per_sec: f64) -> KeyedLimiter {
    RateLimiter::keyed(quota(rate_per_sec))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these providers).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A provider's answer — (status, `Retry-After`, body text) — or, when the request did not get
/// one (timeout, connection), the retry outcome that says so.
pub async fn read_answer(
    provider: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(StatusCode, Option<Duration>, String), SendOutcome> {
    let res = sent.map_err(|e| SendOutcome::Retry {
        error: transport_error(provider, e),
        after: None,
    })?;
    let status = res.status();
    let after = retry_after(res.headers());
    Ok((status, after, res.text().await.unwrap_or_default()))
}

/// The outcome of a provider's HTTP answer: 2xx delivered; 429 and 5xx retry (after
/// `Retry-After` when given); 401 and 403 are allim's credentials refused (the lane pauses);
/// any other status is permanent. `detail` is the provider's error text, kept (shortened) in
/// `last_error`.
pub fn outcome_of_status(provider: &str, status: StatusCode, detail: &str, after: Option<Duration>) -> SendOutcome {
    if status.is_success() {
        return SendOutcome::Delivered { dry_run: false };
    }
    let error = format!("{provider} {}: {}", status.as_u16(), truncate(detail, 300));
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendOutcome::Retry { error, after }
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        SendOutcome::Credentials { error }
    } else {
        SendOutcome::Permanent { error }
    }
}

/// At most `max` characters of a provider's answer, for `last_error`.
pub fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Describes a transport error without echoing the URL (it may carry a secret, as Slack's does).
pub fn transport_error(provider: &str, e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{provider}: {kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(
            outcome_of_status("X", StatusCode::OK, "", None),
            SendOutcome::Delivered { dry_run: false }
        );
        assert!(matches!(
            outcome_of_status("X", StatusCode::TOO_MANY_REQUESTS, "slow down", Some(Duration::from_secs(3))),
            SendOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            outcome_of_status("X", StatusCode::BAD_GATEWAY, "", None),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            outcome_of_status("SENS", StatusCode::UNAUTHORIZED, "Authentication Failed", None),
            SendOutcome::Credentials { .. }
        ));
        assert_eq!(
            outcome_of_status("Slack", StatusCode::NOT_FOUND, "no_service", None),
            SendOutcome::Permanent {
                error: "Slack 404: no_service".into()
            }
        );
    }
}
