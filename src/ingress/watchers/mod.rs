//! Watchers: allim polls an HTTP JSON API on a schedule and notifies about new items — the door
//! for event sources that cannot push. One block of configuration per source (`ALLIM_WATCHERS`,
//! [`config`]); notifications are templates over the item ([`template`]).
//!
//! - **New vs seen** is kept in the database: each item's identity (the chosen fields, or the
//!   whole item) is hashed with SHA-256 — the item may have no id, the hash is fixed-size and
//!   collision-free in practice, and `sha2` is already in the build — and stored per watcher,
//!   so a restart or a second task does not notify again. Items the API stops listing are
//!   forgotten after `ALLIM_WATCHER_RETENTION`.
//! - **One task at a time** polls a watcher: a lease in its row, taken only when the poll is due.
//! - **The first poll** of a new watcher records what is there without notifying, unless
//!   `notify_existing = true`.
//! - **Exactly once**: each notification's idempotency key is `watch:<name>:<hash>:<n>`, and the
//!   items are marked seen only after the notifications are accepted, so a crash in between
//!   re-accepts the same keys (duplicates, nothing sent twice).
//! - **Digest**: with `[watchers.digest]`, new items only add to the window's count, sum and first
//!   few; when the window (aligned to the time zone) ends, one notification goes out.
//! - **Failures** (timeouts, non-2xx, not JSON, the items pointer missing or not an array, too
//!   many items, too large) back off, are recorded with the watcher (`GET /v1/watchers`,
//!   `/readyz` detail, the console) and counted in `/metrics`; never taken for "no new items".

pub mod config;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

pub use config::{Watcher, Watchers};

use crate::accept::{Acceptor, Entry, Source};
use crate::clock::{Clock, backoff, duration_ms, format_ms};
use crate::settings::parse_duration;
use crate::store::watchers::{PollRecord, WatcherRow};
use crate::store::{Store, StoreError};
use crate::telemetry::SharedMetrics;

/// The watchers' settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WatcherArgs {
    /// Watchers file (TOML): HTTP JSON APIs to poll and what to send about new items.
    #[arg(long, env = "ALLIM_WATCHERS", global = true)]
    pub watchers: Option<std::path::PathBuf>,

    /// The watchers themselves (TOML), instead of a file.
    #[arg(long, env = "ALLIM_WATCHERS_TOML", global = true)]
    pub watchers_toml: Option<String>,

    /// How long an item no answer lists any more is remembered (then it would count as new).
    #[arg(long, env = "ALLIM_WATCHER_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub watcher_retention: Duration,
}

impl WatcherArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.watchers.is_some() && self.watchers_toml.is_some() {
            anyhow::bail!("set ALLIM_WATCHERS or ALLIM_WATCHERS_TOML, not both");
        }
        if self.watcher_retention < Duration::from_secs(3600) {
            anyhow::bail!("ALLIM_WATCHER_RETENTION must be at least 1h");
        }
        Ok(())
    }

    /// The watchers, read and checked (`${VAR}` in headers from the environment).
    pub fn load(&self) -> anyhow::Result<Watchers> {
        use anyhow::Context;
        let env = |v: &str| std::env::var(v).ok();
        match (&self.watchers, &self.watchers_toml) {
            (Some(path), _) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("ALLIM_WATCHERS: {}", path.display()))?;
                Watchers::parse(&text, env).with_context(|| format!("ALLIM_WATCHERS: {}", path.display()))
            }
            (None, Some(text)) => Watchers::parse(text, env).context("ALLIM_WATCHERS_TOML"),
            (None, None) => Ok(Watchers::default()),
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Items in the answer.
    pub items: usize,
    /// Items not seen before.
    pub new: usize,
    /// Notifications accepted for them (0 on a first, silent poll, or when they go to a digest).
    pub notified: usize,
}

/// Polls the configured watchers.
pub struct WatcherRunner {
    store: Store,
    acceptor: Acceptor,
    http: reqwest::Client,
    config: Arc<Watchers>,
    retention: Duration,
    metrics: SharedMetrics,
    clock: Clock,
    owner: String,
    /// Set once every watcher has its row (made on the first round, not on every one).
    rows_made: tokio::sync::OnceCell<()>,
}

impl WatcherRunner {
    pub fn new(
        store: Store,
        acceptor: Acceptor,
        http: reqwest::Client,
        config: Watchers,
        retention: Duration,
        metrics: SharedMetrics,
        clock: Clock,
    ) -> WatcherRunner {
        WatcherRunner {
            store,
            acceptor,
            http,
            config: Arc::new(config),
            retention,
            metrics,
            clock,
            owner: format!("watch-{}", uuid::Uuid::now_v7().simple()),
            rows_made: tokio::sync::OnceCell::new(),
        }
    }

    pub fn watchers(&self) -> &[Watcher] {
        &self.config.watchers
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.config.timezone
    }

    /// Polls due watchers every second (forgets old items hourly) until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_forget = 0i64;
        loop {
            self.tick().await;
            let now = self.clock.now_ms();
            if now - last_forget > 3_600_000 {
                last_forget = now;
                match self.store.forget_watcher_items(now - duration_ms(self.retention)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        items = n,
                        "watchers: forgot items no answer has listed for the retention"
                    ),
                    Err(e) => tracing::warn!(error = %e, "watchers: could not forget old items"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// One round: each watcher that is due and not polled by another task is polled, and a
    /// digest window that has ended is sent. Errors are recorded with the watcher.
    pub async fn tick(&self) {
        if let Err(e) = self.make_rows().await {
            tracing::warn!(error = %e, "watchers: could not reach the database");
            return;
        }
        for w in self.config.watchers.iter() {
            if let Err(e) = self.poll_if_due(w, false).await {
                tracing::warn!(watcher = %w.name, error = %e, "watcher: could not reach the database");
            }
        }
    }

    /// Polls `name` now, whatever its schedule (`POST /v1/watchers/{name}/poll`). `None`: no
    /// such watcher; `Some(Err)`: the poll failed (recorded) or another task is polling it.
    ///
    /// When another task is polling it at that moment, waits for that poll to end (at most the
    /// watcher's timeout and 5 s) and polls after it.
    pub async fn poll_now(&self, name: &str) -> Option<Result<Polled, String>> {
        let w = self.config.watchers.iter().find(|w| w.name == name)?;
        if let Err(e) = self.make_rows().await {
            return Some(Err(format!("the database: {e}")));
        }
        let give_up = tokio::time::Instant::now() + w.timeout + Duration::from_secs(5);
        loop {
            match self.poll_if_due(w, true).await {
                Ok(Some(r)) => return Some(r),
                Ok(None) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => return Some(Err("another task kept polling this watcher; try again".into())),
                Err(e) => return Some(Err(format!("the database: {e}"))),
            }
        }
    }

    /// Gives each watcher its row (first poll due now), once per runner.
    async fn make_rows(&self) -> Result<(), StoreError> {
        self.rows_made
            .get_or_try_init(|| async {
                let now = self.clock.now_ms();
                for w in &self.config.watchers {
                    self.store.ensure_watcher(&w.name, now, now).await?;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn poll_if_due(&self, w: &Watcher, force: bool) -> Result<Option<Result<Polled, String>>, StoreError> {
        let now = self.clock.now_ms();
        let lease = now + duration_ms(w.timeout) + 30_000;
        if !self
            .store
            .lease_watcher(&w.name, &self.owner, now, lease, force)
            .await?
        {
            return Ok(None);
        }
        let Some(row) = self.store.watcher(&w.name).await? else {
            return Ok(None);
        };
        let row = self.send_digest_if_due(w, row, now).await?;
        let result = self.poll(w, &row, now).await;
        match &result {
            Ok(p) => {
                self.metrics.watcher_polls.with_label_values(&[&w.name, "ok"]).inc();
                self.metrics
                    .watcher_new_items
                    .with_label_values(&[&w.name])
                    .inc_by(p.new as u64);
            }
            Err(e) => {
                self.metrics.watcher_polls.with_label_values(&[&w.name, "error"]).inc();
                let failures = u32::try_from(row.failures + 1).unwrap_or(u32::MAX);
                let wait = backoff(failures, Duration::from_secs(10), w.interval, fastrand::f64());
                tracing::warn!(watcher = %w.name, error = %e, failures, retry_in = ?wait, "watcher: poll failed");
                self.store
                    .record_poll_failure(&w.name, now, now + duration_ms(wait), e)
                    .await?;
            }
        }
        Ok(Some(result))
    }

    /// Fetches, finds the new items, notifies (or adds them to the digest) and records it all.
    async fn poll(&self, w: &Watcher, row: &WatcherRow, now: i64) -> Result<Polled, String> {
        let body = self.fetch(w).await?;
        let items = items_of(w, body)?;
        let hashes: Vec<String> = items.iter().map(|i| identity_hash(w, i)).collect();
        let unseen = self
            .store
            .unseen_items(&w.name, &hashes)
            .await
            .map_err(|e| e.to_string())?;
        let unseen_set: std::collections::HashSet<&String> = unseen.iter().collect();
        let mut taken = std::collections::HashSet::new();
        let new: Vec<(&Value, &String)> = items
            .iter()
            .zip(&hashes)
            .filter(|(_, h)| unseen_set.contains(h) && taken.insert(*h))
            .collect();
        let first_poll = row.initialized == 0 && !w.notify_existing;
        if first_poll {
            tracing::info!(watcher = %w.name, items = items.len(),
                "watcher: first poll; recording what is there as seen without notifying (notify_existing = false)");
        }
        // New items go to the open digest window (a first poll adds nothing to it), or out one
        // notification each.
        let counted: &[(&Value, &String)] = if first_poll { &[] } else { &new };
        let digest = w.digest.as_ref().map(|d| self.digest_totals(d, row, counted, now));
        let mut notified = 0;
        if w.digest.is_none() && !counted.is_empty() {
            let mut entries = Vec::new();
            for (item, hash) in counted {
                for (n, t) in w.notify.iter().enumerate() {
                    let key = format!("watch:{}:{}:{n}", w.name, &hash[..32]);
                    entries.push(self.entry(t.render(item, self.config.timezone), key).await);
                }
            }
            notified = entries.len();
            self.acceptor
                .accept(Source::Watcher, entries)
                .await
                .map_err(|e| format!("could not store the notifications: {e}"))?;
        }
        let new_hashes: Vec<String> = new.iter().map(|(_, h)| (*h).clone()).collect();
        self.store
            .record_poll(&PollRecord {
                name: &w.name,
                now,
                next_poll_at: now + duration_ms(w.interval),
                all: &hashes,
                new: &new_hashes,
                digest,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Polled {
            items: items.len(),
            new: new.len(),
            notified,
        })
    }

    /// The open digest window's totals with `new` items added: (start, count, sum, first items).
    fn digest_totals(
        &self,
        d: &config::Digest,
        row: &WatcherRow,
        new: &[(&Value, &String)],
        now: i64,
    ) -> (i64, i64, f64, String) {
        let start = row
            .digest_start
            .unwrap_or_else(|| window_start(now, d.every, self.config.timezone));
        let mut first: Vec<Value> = row
            .digest_first
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok())
            .unwrap_or_default();
        let mut sum = row.digest_sum;
        for (item, _) in new {
            if let Some(path) = &d.sum {
                sum += template::lookup(item, path).and_then(template::number).unwrap_or(0.0);
            }
            if first.len() < d.first {
                first.push((*item).clone());
            }
        }
        (
            start,
            row.digest_count + new.len() as i64,
            sum,
            Value::Array(first).to_string(),
        )
    }

    /// A rendered notification as an entry: valid, or kept as rejected with the reason (so a
    /// template that makes an invalid notification shows in the dead letters, not nowhere).
    async fn entry(&self, rendered: Value, key: String) -> Entry {
        let raw = rendered.to_string();
        match self.acceptor.parse_value(rendered).await {
            Ok(mut v) => {
                v.set_default_idempotency_key(key);
                Entry::Valid(v)
            }
            Err(e) => Entry::Rejected {
                raw,
                reason: format!("the watcher's notify template made an invalid notification: {e}"),
                idempotency_key: Some(key),
            },
        }
    }

    /// Sends the digest of a window that has ended (if anything arrived in it) and opens the next.
    async fn send_digest_if_due(&self, w: &Watcher, row: WatcherRow, now: i64) -> Result<WatcherRow, StoreError> {
        let (Some(d), Some(start)) = (&w.digest, row.digest_start) else {
            return Ok(row);
        };
        let end = start + duration_ms(d.every);
        if now < end {
            return Ok(row);
        }
        if row.digest_count > 0 {
            let first: Vec<Value> = row
                .digest_first
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_default();
            let lines: Vec<String> = first
                .iter()
                .map(|i| match &d.item {
                    Some(t) => t.render(i, self.config.timezone),
                    None => i.to_string(),
                })
                .collect();
            let context = json!({"count": row.digest_count, "sum": row.digest_sum, "first": lines.join("\n"),
                "items": first, "from": format_ms(start), "to": format_ms(end)});
            let mut entries = Vec::new();
            for (n, t) in w.notify.iter().enumerate() {
                let key = format!("watch:{}:digest:{start}:{n}", w.name);
                entries.push(self.entry(t.render(&context, self.config.timezone), key).await);
            }
            if let Err(e) = self.acceptor.accept(Source::Watcher, entries).await {
                tracing::warn!(watcher = %w.name, error = %e, "watcher: could not store the digest; will try again");
                return Ok(row);
            }
            tracing::info!(watcher = %w.name, count = row.digest_count, "watcher: digest sent");
        }
        let next = window_start(now, d.every, self.config.timezone);
        self.store.reset_digest(&w.name, next, now).await?;
        Ok(WatcherRow {
            digest_start: Some(next),
            digest_count: 0,
            digest_sum: 0.0,
            digest_first: None,
            ..row
        })
    }

    /// GETs (or POSTs) the watcher's URL: a 2xx JSON answer within the size limit.
    async fn fetch(&self, w: &Watcher) -> Result<Value, String> {
        let mut req = self.http.request(w.method.clone(), &w.url).timeout(w.timeout);
        for (name, value) in &w.headers {
            req = req.header(name, secrecy::ExposeSecret::expose_secret(value));
        }
        let shown = shown_url(&w.url);
        let mut res = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            format!("{shown}: the request {what}")
        })?;
        let status = res.status();
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|_| format!("{shown}: the answer broke off"))?
        {
            if body.len() + chunk.len() > w.max_body_bytes {
                return Err(format!(
                    "{shown}: the answer is larger than {} bytes (max_body_bytes)",
                    w.max_body_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(format!("{shown} answered {}", status.as_u16()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{shown}: the answer is not JSON ({e})"))
    }
}

/// The items array of an answer, or an error naming the pointer.
fn items_of(w: &Watcher, body: Value) -> Result<Vec<Value>, String> {
    let found = if w.items.is_empty() {
        Some(body)
    } else {
        body.pointer(&w.items).cloned()
    };
    let items = match found {
        Some(Value::Array(a)) => a,
        Some(other) => {
            let kind = match other {
                Value::Object(_) => "an object",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            let at = if w.items.is_empty() {
                "the answer"
            } else {
                w.items.as_str()
            };
            return Err(format!("watcher {}: {at} is {kind}, not an array of items", w.name));
        }
        None => {
            return Err(format!(
                "watcher {}: {} is not in the answer (the response no longer has the shape `items` names)",
                w.name, w.items
            ));
        }
    };
    if items.len() > w.max_items {
        return Err(format!(
            "watcher {}: the answer lists {} items, more than max_items ({})",
            w.name,
            items.len(),
            w.max_items
        ));
    }
    Ok(items)
}

/// The SHA-256 (hex) of an item's identity: the JSON of the identity fields' values, in the
/// configured order (keys of objects sorted), or of the whole item.
pub fn identity_hash(w: &Watcher, item: &Value) -> String {
    let text = if w.identity.is_empty() {
        item.to_string()
    } else {
        let values: Vec<&Value> = w
            .identity
            .iter()
            .map(|p| template::lookup(item, p).unwrap_or(&Value::Null))
            .collect();
        serde_json::to_string(&values).expect("JSON values serialize")
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The start of the window of length `every` that holds `now`, aligned in `tz` (a day starts at
/// local midnight, an hour on the hour).
pub fn window_start(now: i64, every: Duration, tz: chrono_tz::Tz) -> i64 {
    use chrono::Offset;
    let len = duration_ms(every).max(1);
    let utc = chrono::DateTime::from_timestamp_millis(now).expect("a valid time");
    let offset = i64::from(utc.with_timezone(&tz).offset().fix().local_minus_utc()) * 1000;
    let local = now + offset;
    local - local.rem_euclid(len) - offset
}

/// The URL as shown in errors and the API: no query string (it may hold a key).
pub fn shown_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_time_zone() {
        let seoul = chrono_tz::Asia::Seoul;
        // 2026-11-23 13:45 KST = 04:45 UTC.
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T13:45:00+09:00")
            .unwrap()
            .timestamp_millis();
        let day = window_start(now, Duration::from_secs(86_400), seoul);
        assert_eq!(format_ms(day), "2026-11-22T15:00:00.000Z", "local midnight");
        let hour = window_start(now, Duration::from_secs(3600), seoul);
        assert_eq!(format_ms(hour), "2026-11-23T04:00:00.000Z");
    }

    #[test]
    fn urls_are_shown_without_their_query() {
        assert_eq!(shown_url("https://x.test/api?key=secret"), "https://x.test/api?…");
    }
}
