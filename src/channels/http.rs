//! What the provider channels share: one HTTP client (connection pooling, timeouts), a rate
//! limiter, Retry-After parsing, and turning a provider's error body into a short text.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The one outbound HTTP client: every call has a timeout.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("allim/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds")
}

/// Spaces calls evenly so that a burst does not get the provider account throttled.
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> Self {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next free slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these providers).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
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
