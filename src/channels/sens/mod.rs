//! SMS through Naver Cloud SENS v2.
//!
//! Each request is signed as PROTOCOLS.md §3.2 says: Base64(HMAC-SHA256(secret,
//! "{METHOD} {path}\n{timestamp-ms}\n{access-key}")) — the body is not signed. SMS or LMS is
//! chosen by the EUC-KR length of the content (over 90 bytes, or with a subject: LMS).
//! Recipients go 100 per request (SENS's cap); a chunk that was accepted is recorded, so a
//! retry sends only the chunks still missing. 429, 5xx and timeouts retry; any other 4xx is
//! permanent and keeps SENS's error text. Without keys the channel is a dry run.
//!
//! SENS accepting a request is not yet a message on a phone: each recipient is recorded as
//! `sent` and its final result looked up later ([`results`]).

pub mod korean;
pub mod results;

use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::http::{Limiter, check_rate, check_url, limiter, outcome_of_status, read_answer, truncate};
use super::{Channel, Deps, Job, Kind, SendOutcome, progress, record_part};
use crate::clock::{Clock, duration_ms};
use crate::contract::{ContractError, check_text};
use crate::store::{SentRecipient, Store};
use crate::telemetry::mask;
use korean::{LMS_BYTES_MAX, LMS_SUBJECT_BYTES_MAX, SMS_BYTES_MAX, check_euc_kr, euc_kr_len, normalize_numbers};

/// SENS accepts at most this many recipients per request.
pub const RECIPIENTS_PER_REQUEST: usize = 100;
/// Recipients of one SMS notification, at most.
pub const RECIPIENTS_MAX: usize = 1000;

/// `SMS`: a text message through Naver Cloud SENS. Content over 90 EUC-KR bytes, or with a
/// subject, goes as LMS (≤ 2000 bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// Korean phone numbers, domestic (`01012345678`, `010-1234-5678`) or `+82 10-…`; stored
    /// digits only in domestic form. 1 to 1000, duplicates removed.
    #[schema(example = json!(["01012345678"]))]
    pub to: Vec<String>,
    /// Required; must be encodable in EUC-KR (no emoji); ≤ 2000 EUC-KR bytes.
    #[schema(example = "[allim] 주문하신 상품이 발송되었습니다.")]
    pub content: String,
    /// LMS subject, ≤ 40 EUC-KR bytes. Makes the message an LMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Kind for Sms {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        normalize_numbers(&mut self.to, RECIPIENTS_MAX)?;
        check_text("content", &self.content, 1, LMS_BYTES_MAX, true)?;
        check_euc_kr("content", &self.content, LMS_BYTES_MAX, " (LMS)")?;
        if let Some(subject) = &self.subject {
            check_text("subject", subject, 1, LMS_SUBJECT_BYTES_MAX, false)?;
            check_euc_kr("subject", subject, LMS_SUBJECT_BYTES_MAX, "")?;
        }
        Ok(())
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        Ok(Arc::new(Sens {
            http: deps.http.clone(),
            config: SensConfig::from_settings(settings),
            limiter: limiter(settings.sens_rate_per_sec),
            store: deps.store.clone(),
            clock: deps.clock.clone(),
        }))
    }
}

/// SENS's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Naver Cloud access key for SENS. Without the SENS keys, SMS is dry-run (logged only).
    #[arg(long, env = "ALLIM_SENS_ACCESS_KEY", hide_env_values = true, global = true)]
    pub sens_access_key: Option<SecretString>,

    /// Naver Cloud secret key for SENS (signs each request).
    #[arg(long, env = "ALLIM_SENS_SECRET_KEY", hide_env_values = true, global = true)]
    pub sens_secret_key: Option<SecretString>,

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

    /// How long after SENS accepted a message its final result (delivered / failed, per
    /// recipient) is first looked up; later looks back off up to 30 minutes, for up to 72 hours.
    /// Shared by SMS and AlimTalk.
    #[arg(long, env = "ALLIM_SENS_RESULTS_AFTER", default_value = "30s", value_parser = crate::settings::parse_duration, global = true)]
    pub sens_results_after: std::time::Duration,
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        let set = [
            self.sens_access_key.is_some(),
            self.sens_secret_key.is_some(),
            self.sens_service_id.is_some(),
            self.sens_from.is_some(),
        ];
        if set.iter().any(|x| *x) && !set.iter().all(|x| *x) {
            anyhow::bail!(
                "SENS needs all of ALLIM_SENS_ACCESS_KEY, ALLIM_SENS_SECRET_KEY, ALLIM_SENS_SERVICE_ID and ALLIM_SENS_FROM (or none, for dry-run)"
            );
        }
        if let Some(from) = &self.sens_from
            && (from.is_empty() || !from.chars().all(|c| c.is_ascii_digit()))
        {
            anyhow::bail!("ALLIM_SENS_FROM must be the registered calling number, digits only");
        }
        check_url("ALLIM_SENS_BASE_URL", &self.sens_base_url)?;
        if self.sens_results_after < std::time::Duration::from_secs(1)
            || self.sens_results_after > std::time::Duration::from_secs(3600)
        {
            anyhow::bail!("ALLIM_SENS_RESULTS_AFTER must be between 1s and 1h");
        }
        check_rate("ALLIM_SENS_RATE_PER_SEC", self.sens_rate_per_sec)
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.sens_rate_per_sec)
    }

    fn mode(&self) -> &'static str {
        if self.sens_access_key.is_some() {
            "sens"
        } else {
            "dry-run"
        }
    }
}

/// SENS credentials and sender.
#[derive(Debug, Clone)]
pub struct SensConfig {
    pub access_key: String,
    pub secret_key: SecretString,
    pub service_id: String,
    pub from: String,
    pub base_url: String,
    /// First result look-up after a send (`ALLIM_SENS_RESULTS_AFTER`).
    pub results_after: std::time::Duration,
}

impl SensConfig {
    /// The configuration when every SENS key is set (else SMS is a dry run).
    pub fn from_settings(settings: &Settings) -> Option<SensConfig> {
        match (
            &settings.sens_access_key,
            &settings.sens_secret_key,
            &settings.sens_service_id,
            &settings.sens_from,
        ) {
            (Some(access_key), Some(secret_key), Some(service_id), Some(from)) => Some(SensConfig {
                access_key: access_key.expose_secret().to_string(),
                secret_key: secret_key.clone(),
                service_id: service_id.clone(),
                from: from.clone(),
                base_url: settings.sens_base_url.clone(),
                results_after: settings.sens_results_after,
            }),
            _ => None,
        }
    }

    /// A request to SENS, signed (§3.2, §8.3): `path_and_query` is signed exactly as sent, so
    /// any query string must already be percent-encoded.
    pub fn signed(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path_and_query: &str,
        timestamp_ms: i64,
    ) -> reqwest::RequestBuilder {
        let sig = signature(
            self.secret_key.expose_secret(),
            method.as_str(),
            path_and_query,
            timestamp_ms,
            &self.access_key,
        );
        let url = format!("{}{path_and_query}", self.base_url.trim_end_matches('/'));
        http.request(method, url)
            .header("x-ncp-apigw-timestamp", timestamp_ms.to_string())
            .header("x-ncp-iam-access-key", &self.access_key)
            .header("x-ncp-apigw-signature-v2", sig)
    }

    /// A signed `POST` of a JSON body, with the content type SENS requires.
    pub fn post_json<T: Serialize>(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &T,
        timestamp_ms: i64,
    ) -> reqwest::RequestBuilder {
        self.signed(http, reqwest::Method::POST, path, timestamp_ms)
            .header("content-type", "application/json; charset=utf-8")
            .json(body)
    }
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
    if subject.is_some() || bytes > SMS_BYTES_MAX {
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
    limiter: Limiter,
    store: Store,
    clock: Clock,
}

impl Sens {
    async fn send_sms(&self, job: &Job) -> SendOutcome {
        let super::Notification::Sms(sms) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let kind = message_type(&sms.content, sms.subject.as_deref());
        let Some(cfg) = &self.config else {
            let to: Vec<String> = sms.to.iter().map(|n| mask(n)).collect();
            tracing::info!(delivery = %job.delivery_id, kind, ?to, bytes = euc_kr_len("content", &sms.content).unwrap_or(0),
                "sms dry run (no SENS keys configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        };
        let done = match progress(&self.store, &job.delivery_id).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        let path = format!("/sms/v2/services/{}/messages", cfg.service_id);
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
            self.limiter.until_ready().await;
            if !job.still_ours().await {
                return SendOutcome::LeaseLost;
            }
            let res = cfg
                .post_json(&self.http, &path, &body, self.clock.now_ms())
                .send()
                .await;
            let (status, after, text) = match read_answer("SENS", res).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            if status.is_success() {
                let request_id = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("requestId")?.as_str().map(str::to_string))
                    .unwrap_or_default();
                tracing::info!(delivery = %job.delivery_id, kind, chunk = i, recipients = chunk.len(), request_id, "sms accepted by SENS");
                record_part(&self.store, &self.clock, &job.delivery_id, &part).await;
                let now = self.clock.now_ms();
                let sent: Vec<SentRecipient> = chunk
                    .iter()
                    .map(|to| SentRecipient {
                        delivery_id: job.delivery_id.clone(),
                        recipient: to.clone(),
                        request_id: request_id.clone(),
                        message_id: None,
                        next_check_at: now + duration_ms(cfg.results_after),
                    })
                    .collect();
                results::record(&self.store, self.name(), &sent, now).await;
                continue;
            }
            return outcome_of_status("SENS", status, &error_text(&text), after);
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

    fn send<'a>(&'a self, job: &'a Job) -> futures::future::BoxFuture<'a, SendOutcome> {
        futures::FutureExt::boxed(self.send_sms(job))
    }

    fn check_results(&self) -> futures::future::BoxFuture<'_, anyhow::Result<Vec<&'static str>>> {
        futures::FutureExt::boxed(async move {
            let Some(cfg) = &self.config else {
                return Ok(Vec::new());
            };
            let lookup = results::Lookup {
                http: &self.http,
                config: cfg,
                store: &self.store,
                clock: &self.clock,
                channel: self.name(),
                service_path: format!("/sms/v2/services/{}", cfg.service_id),
                parse: results::sms_result,
            };
            lookup.run().await
        })
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
