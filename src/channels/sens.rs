//! SMS through Naver Cloud SENS v2.
//!
//! Each request is signed as PROTOCOLS.md §3.2 says: Base64(HMAC-SHA256(secret,
//! "{METHOD} {path}\n{timestamp-ms}\n{access-key}")) — the body is not signed. SMS or LMS is
//! chosen by the EUC-KR length of the content (over 90 bytes, or with a subject: LMS).
//! Recipients go 100 per request (SENS's cap); a chunk that was accepted is recorded, so a
//! retry sends only the chunks still missing. 429, 5xx and timeouts retry; any other 4xx is
//! permanent and keeps SENS's error text. Without keys the channel is a dry run.

use std::sync::Arc;

use base64::Engine;
use futures::FutureExt;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::http::{RateLimiter, retry_after, transport_error, truncate};
use super::{Channel, Job, SendOutcome};
use crate::accept::Notification;
use crate::accept::message::{euc_kr_len, limits};
use crate::config::Secret;
use crate::store::{self, Store};
use crate::telemetry::mask;

/// SENS accepts at most this many recipients per request.
pub const RECIPIENTS_PER_REQUEST: usize = 100;

/// SENS credentials and sender.
#[derive(Debug, Clone)]
pub struct SensConfig {
    pub access_key: String,
    pub secret_key: Secret,
    pub service_id: String,
    pub from: String,
    pub base_url: String,
}

/// The `x-ncp-apigw-signature-v2` value.
pub fn signature(secret_key: &str, method: &str, path: &str, timestamp_ms: i64, access_key: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{method} {path}\n{timestamp_ms}\n{access_key}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `SMS` or `LMS` for this content and subject.
pub fn message_type(content: &str, subject: Option<&str>) -> &'static str {
    let bytes = euc_kr_len("content", content).unwrap_or(usize::MAX);
    if subject.is_some() || bytes > limits::SMS_BYTES_MAX {
        "LMS"
    } else {
        "SMS"
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendRequest<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    content_type: &'a str,
    country_code: &'a str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    content: &'a str,
    messages: Vec<To<'a>>,
}

#[derive(Serialize)]
struct To<'a> {
    to: &'a str,
}

pub struct Sens {
    http: reqwest::Client,
    config: Option<SensConfig>,
    limiter: RateLimiter,
    store: Store,
}

impl Sens {
    pub fn new(http: reqwest::Client, config: Option<SensConfig>, rate_per_sec: f64, store: Store) -> Arc<Self> {
        Arc::new(Sens {
            http,
            config,
            limiter: RateLimiter::per_second(rate_per_sec),
            store,
        })
    }

    async fn send_sms(&self, job: &Job) -> SendOutcome {
        let Notification::Sms(sms) = &job.notification else {
            return SendOutcome::Permanent {
                error: "sms channel got a notification that is not SMS".into(),
            };
        };
        let kind = message_type(&sms.content, sms.subject.as_deref());
        let Some(cfg) = &self.config else {
            let to: Vec<String> = sms.to.iter().map(|n| mask(n)).collect();
            tracing::info!(delivery = %job.delivery_id, kind, ?to, bytes = euc_kr_len("content", &sms.content).unwrap_or(0),
                "sms dry run (no SENS keys configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        };
        let done = match self.store.parts_done(&job.delivery_id).await {
            Ok(d) => d,
            Err(e) => {
                return SendOutcome::Retry {
                    error: format!("reading progress: {e}"),
                    after: None,
                };
            }
        };
        let path = format!("/sms/v2/services/{}/messages", cfg.service_id);
        let url = format!("{}{path}", cfg.base_url.trim_end_matches('/'));
        for (i, chunk) in sms.to.chunks(RECIPIENTS_PER_REQUEST).enumerate() {
            let part = format!("sms:{i}");
            if done.contains(&part) {
                continue;
            }
            let body = SendRequest {
                kind,
                content_type: "COMM",
                country_code: "82",
                from: &cfg.from,
                subject: if kind == "LMS" { sms.subject.as_deref() } else { None },
                content: &sms.content,
                messages: chunk.iter().map(|to| To { to }).collect(),
            };
            self.limiter.acquire().await;
            let ts = store::now_ms();
            let sig = signature(cfg.secret_key.expose(), "POST", &path, ts, &cfg.access_key);
            let res = self
                .http
                .post(&url)
                .header("content-type", "application/json; charset=utf-8")
                .header("x-ncp-apigw-timestamp", ts.to_string())
                .header("x-ncp-iam-access-key", &cfg.access_key)
                .header("x-ncp-apigw-signature-v2", sig)
                .json(&body)
                .send()
                .await;
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    return SendOutcome::Retry {
                        error: transport_error("SENS", e),
                        after: None,
                    };
                }
            };
            let status = res.status();
            let after = retry_after(res.headers());
            let text = res.text().await.unwrap_or_default();
            if status.is_success() {
                let request_id = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("requestId")?.as_str().map(str::to_string))
                    .unwrap_or_default();
                tracing::info!(delivery = %job.delivery_id, kind, chunk = i, recipients = chunk.len(), request_id, "sms accepted by SENS");
                if let Err(e) = self
                    .store
                    .mark_part_done(&job.delivery_id, &part, store::now_ms())
                    .await
                {
                    // Without the record a retry would send this chunk again; say so loudly.
                    tracing::error!(delivery = %job.delivery_id, chunk = i, error = %e, "sms sent but progress not recorded");
                }
                continue;
            }
            let error = format!("SENS {}: {}", status.as_u16(), error_text(&text));
            return if status.as_u16() == 429 || status.is_server_error() {
                SendOutcome::Retry { error, after }
            } else {
                SendOutcome::Permanent { error }
            };
        }
        SendOutcome::Delivered { dry_run: false }
    }
}

/// SENS's error bodies: `{"errors":[…],"errorMessage":…}` from validation, or the API
/// gateway's `{"error":{"errorCode","message","details"}}`.
pub fn error_text(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return truncate(body.trim(), 300);
    };
    if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
        let list: Vec<&str> = errors.iter().filter_map(|e| e.as_str()).collect();
        let head = v.get("errorMessage").and_then(|m| m.as_str()).unwrap_or("error");
        return truncate(&format!("{head}: {}", list.join("; ")), 300);
    }
    if let Some(e) = v.get("error") {
        let code = e.get("errorCode").and_then(|c| c.as_str()).unwrap_or("");
        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
        let details = e.get("details").and_then(|c| c.as_str()).unwrap_or("");
        return truncate(format!("{code} {msg} {details}").trim(), 300);
    }
    truncate(body.trim(), 300)
}

impl Channel for Sens {
    fn name(&self) -> &'static str {
        "sms"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        self.send_sms(job).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector was computed outside Rust, with both
    /// `python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(KEY, MSG, hashlib.sha256).digest()))"`
    /// and `printf 'MSG' | openssl dgst -sha256 -hmac KEY -binary | base64`, which agree.
    #[test]
    fn signature_matches_independent_vector() {
        let sig = signature(
            "TestSecretKey0123456789abcdefABCDEF",
            "POST",
            "/sms/v2/services/ncp:sms:kr:260000000001:allim/messages",
            1_795_305_600_000,
            "AKIDTESTACCESSKEY0001",
        );
        assert_eq!(sig, "3n/M+Dgap3wkeQvAKW1eYRtD9ioguH5dOU+SsRj73B4=");
    }

    #[test]
    fn type_follows_euc_kr_length() {
        assert_eq!(message_type(&"가".repeat(45), None), "SMS");
        assert_eq!(message_type(&"가".repeat(46), None), "LMS");
        assert_eq!(message_type("short", Some("subject")), "LMS");
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            error_text(
                r#"{"errors":["The receiver(to) must be numeric."],"errorMessage":"Validation failed. 1 error(s)","status":400}"#
            ),
            "Validation failed. 1 error(s): The receiver(to) must be numeric."
        );
        assert_eq!(
            error_text(
                r#"{"error":{"errorCode":"200","message":"Authentication Failed","details":"Invalid authentication information."}}"#
            ),
            "200 Authentication Failed Invalid authentication information."
        );
    }
}
