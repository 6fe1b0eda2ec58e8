//! Final results from SENS (SMS and AlimTalk), PROTOCOLS.md §8.5 and §9.
//!
//! SENS answering 202 means it took the request; whether each phone got the message is known
//! later. The channel records every accepted recipient as `sent`; on the task holding the
//! channel's lane, the dispatcher calls [`Lookup::run`] every interval, which looks up the rows
//! that are due:
//! 1. without a message id (SMS): `GET {service}/messages?requestId=…` lists the request's
//!    messages with their ids and numbers;
//! 2. `GET {service}/messages/{messageId}` gives the message's state; the channel's parser says
//!    whether it is final (`delivered`, or `failed` with the carrier's code and reason, and for
//!    AlimTalk what the SMS failover did) or still in progress.
//!
//! A row not final yet is looked at again after `ALLIM_SENS_RESULTS_AFTER`, doubling up to 30
//! minutes; after 72 hours (carriers hold LMS up to 72 h, §9) it is closed as `unknown`. Each
//! look is taken with a conditional update first, so two tasks never both look one row up.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::SensConfig;
use crate::channels::http::{read_answer, truncate};
use crate::clock::{Clock, backoff, duration_ms};
use crate::store::{FinalResult, SentRecipient, Store};
use crate::telemetry::mask;

/// How long results are looked for.
pub const WINDOW: Duration = Duration::from_secs(72 * 3600);
/// The longest wait between two looks at one row.
const LOOK_CAP: Duration = Duration::from_secs(30 * 60);
/// Rows looked up per round.
const ROUND: u32 = 50;

/// What a message's state says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Looked {
    Final(FinalResult),
    /// Still in progress at SENS.
    Pending,
}

/// Records recipients SENS accepted, to be looked up. A failed write only costs their results
/// (the send itself is recorded elsewhere), so it is logged, not retried.
pub async fn record(store: &Store, channel: &str, rows: &[SentRecipient], now: i64) {
    if let Err(e) = store.record_sent(channel, rows, now).await {
        tracing::warn!(channel, recipients = rows.len(), error = %e,
            "could not record the recipients SENS accepted; their final results will not be looked up");
    }
}

/// One look-up round of one channel.
pub struct Lookup<'a> {
    pub http: &'a reqwest::Client,
    pub config: &'a SensConfig,
    pub store: &'a Store,
    pub clock: &'a Clock,
    /// `sms` or `alimtalk`: the rows' channel.
    pub channel: &'static str,
    /// `/sms/v2/services/{id}` or `/alimtalk/v2/services/{id}`.
    pub service_path: String,
    /// Reads one message's answer.
    pub parse: fn(&Value) -> Looked,
}

impl Lookup<'_> {
    /// Looks up the due rows; one label per recipient that became final (`delivered`,
    /// `failed`, `failover` — delivered by the SMS failover — or `unknown`), for the metrics.
    /// An error (SENS refusing the keys, the database) ends the round.
    pub async fn run(&self) -> anyhow::Result<Vec<&'static str>> {
        let now = self.clock.now_ms();
        let rows = self.store.due_results(self.channel, now, ROUND).await?;
        let mut finals = Vec::new();
        let mut lists: HashMap<String, HashMap<String, String>> = HashMap::new();
        for row in rows {
            let later = backoff(
                u32::try_from(row.checks).unwrap_or(0).saturating_add(1),
                self.config.results_after,
                LOOK_CAP,
                1.0,
            );
            if !self
                .store
                .take_result_check(&row, now + duration_ms(later), now)
                .await?
            {
                continue;
            }
            if now - row.created_at > duration_ms(WINDOW) {
                let result = FinalResult {
                    status: "unknown",
                    reason: Some("SENS gave no final result within 72 hours".into()),
                    ..FinalResult::default()
                };
                self.store.finish_result(&row, &result, now).await?;
                finals.push("unknown");
                continue;
            }
            let message_id = match &row.message_id {
                Some(id) => id.clone(),
                None => {
                    if !lists.contains_key(&row.request_id) {
                        let list = self.list(&row.request_id).await?;
                        lists.insert(row.request_id.clone(), list);
                    }
                    match lists[&row.request_id].get(&row.recipient) {
                        Some(id) => {
                            self.store.set_result_message_id(&row, id, now).await?;
                            id.clone()
                        }
                        // Not listed yet: look again later.
                        None => continue,
                    }
                }
            };
            let Some(answer) = self
                .get(&format!("{}/messages/{}", self.service_path, pct(&message_id)))
                .await?
            else {
                continue;
            };
            if let Looked::Final(result) = (self.parse)(&answer) {
                tracing::info!(channel = self.channel, delivery = %row.delivery_id, to = %mask(&row.recipient),
                    status = result.status, code = ?result.code, failover = ?result.failover, "final result from SENS");
                self.store.finish_result(&row, &result, now).await?;
                finals.push(label(&result));
            }
        }
        Ok(finals)
    }

    /// number → message id, for one request.
    async fn list(&self, request_id: &str) -> anyhow::Result<HashMap<String, String>> {
        let path = format!("{}/messages?requestId={}", self.service_path, pct(request_id));
        let mut out = HashMap::new();
        if let Some(v) = self.get(&path).await? {
            for m in v.get("messages").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(to), Some(id)) = (text(m, "to"), text(m, "messageId")) {
                    out.insert(to, id);
                }
            }
        }
        Ok(out)
    }

    /// A signed GET: the JSON answer; `None` when there is none yet (404, 5xx, a timeout — the
    /// row is looked at again later); an error when SENS refuses the keys.
    async fn get(&self, path_and_query: &str) -> anyhow::Result<Option<Value>> {
        let res = self
            .config
            .signed(self.http, reqwest::Method::GET, path_and_query, self.clock.now_ms())
            .send()
            .await;
        let (status, _, body) = match read_answer("SENS", res).await {
            Ok(answer) => answer,
            Err(outcome) => {
                tracing::debug!(
                    channel = self.channel,
                    ?outcome,
                    "SENS result look-up failed; will look again"
                );
                return Ok(None);
            }
        };
        if status.as_u16() == 401 || status.as_u16() == 403 {
            anyhow::bail!(
                "SENS refused allim's keys on a result look-up ({}): {}",
                status.as_u16(),
                super::error_text(&body)
            );
        }
        if !status.is_success() {
            return Ok(None);
        }
        Ok(serde_json::from_str(&body).ok())
    }
}

/// The metrics label of a final result.
fn label(r: &FinalResult) -> &'static str {
    match r.status {
        "delivered" if r.failover.as_deref().is_some_and(|f| f.ends_with("delivered")) => "failover",
        other => other,
    }
}

/// A string (or number) field as text.
pub fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Percent-encodes a query or path value (everything but unreserved characters), so the
/// signed request target is exactly the one sent.
pub fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}

const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `yyyy-MM-dd HH:mm:ss` (or with `T` and milliseconds) in Korea time, as SENS writes times,
/// to epoch ms.
pub fn sens_time(s: &str) -> Option<i64> {
    let s = s.replace('T', " ");
    let naive = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S"))
        .ok()?;
    Some(naive.and_utc().timestamp_millis() - 9 * 3600 * 1000)
}

/// An SMS message's state (§9): `messages[0]` with `status` `READY|PROCESSING|COMPLETED`;
/// once completed, `statusCode` `"0"` (or `statusName` `success`) is delivered, anything else
/// the carrier's failure with `statusMessage`.
pub fn sms_result(v: &Value) -> Looked {
    let m = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .unwrap_or(v);
    let status = text(m, "status").unwrap_or_default();
    let name = text(m, "statusName").unwrap_or_default();
    let code = text(m, "statusCode");
    let completed = status.eq_ignore_ascii_case("COMPLETED") || (status.is_empty() && name == "fail");
    if !completed {
        return Looked::Pending;
    }
    let delivered = code.as_deref() == Some("0") || (code.is_none() && name == "success");
    let completed_at = text(m, "completeTime").and_then(|t| sens_time(&t));
    Looked::Final(if delivered {
        FinalResult {
            status: "delivered",
            code,
            completed_at,
            ..FinalResult::default()
        }
    } else {
        FinalResult {
            status: "failed",
            reason: Some(truncate(
                &text(m, "statusMessage").unwrap_or_else(|| "the carrier did not deliver it".into()),
                300,
            )),
            code,
            completed_at,
            ..FinalResult::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sms_states() {
        let pending = json!({"statusCode": "200", "messages": [{"status": "PROCESSING", "statusName": "processing"}]});
        assert_eq!(sms_result(&pending), Looked::Pending);
        let ok = json!({"statusCode": "200", "messages": [{"status": "COMPLETED", "statusCode": "0",
            "statusName": "success", "completeTime": "2026-11-23 10:00:05"}]});
        let Looked::Final(r) = sms_result(&ok) else {
            panic!("final")
        };
        assert_eq!((r.status, r.code.as_deref()), ("delivered", Some("0")));
        let kst = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:05+09:00").unwrap();
        assert_eq!(r.completed_at, Some(kst.timestamp_millis()));
        let failed = json!({"messages": [{"status": "COMPLETED", "statusCode": "3018", "statusName": "fail",
            "statusMessage": "결번"}]});
        let Looked::Final(r) = sms_result(&failed) else {
            panic!("final")
        };
        assert_eq!(
            (r.status, r.code.as_deref(), r.reason.as_deref()),
            ("failed", Some("3018"), Some("결번"))
        );
    }

    #[test]
    fn encodes_the_signed_target() {
        assert_eq!(pct("@allim"), "%40allim");
        assert_eq!(pct("ORDER_SHIPPED-1"), "ORDER_SHIPPED-1");
        assert_eq!(pct("a b/c"), "a%20b%2Fc");
    }
}
