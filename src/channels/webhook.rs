//! `WEBHOOK`: a signed POST to a named HTTP endpoint, by the Standard Webhooks specification, so
//! the receiver can verify it with the library it already has (`standardwebhooks` and others).
//!
//! Endpoints are configured like Slack's webhooks (`ALLIM_WEBHOOK_ENDPOINTS=name=url,…`), each
//! with its secret (`ALLIM_WEBHOOK_SECRETS=name=whsec_…,…`). The body is
//! `{"type", "timestamp", "data"}`; the headers `webhook-id` (the delivery id: the same on every
//! retry, so the receiver can de-duplicate), `webhook-timestamp` (Unix seconds of this
//! attempt) and `webhook-signature` (`v1,` + Base64 HMAC-SHA256 over `id.timestamp.body`, keyed
//! with the secret's Base64 bytes). 2xx is delivered; 429, 5xx and timeouts retry (after
//! `Retry-After`); 410 and every other status are permanent. Endpoint URLs and secrets never
//! reach a log line. Without any endpoint configured: a dry run.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa::ToSchema;

use super::http::{KeyedLimiter, check_rate, is_target_name, keyed_limiter, named_setting, read_answer, truncate};
use super::{Channel, Deps, Job, Kind, SendOutcome};
use crate::clock::{Clock, format_ms};
use crate::contract::{ContractError, check_object, check_text};

pub const DEFAULT_ENDPOINT: &str = "default";
pub const EVENT_TYPE_MAX: usize = 128;
pub const DATA_MAX_BYTES: usize = 64 * 1024;

/// `WEBHOOK`: a signed POST to an endpoint named in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// The configured endpoint name (`[a-z0-9_-]`, ≤ 64); absent: the `default` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "billing")]
    pub endpoint: Option<String>,
    /// The event's type, sent as `type` (≤ 128 characters, e.g. `order.shipped`).
    #[schema(example = "order.shipped")]
    pub event_type: String,
    /// Any JSON object (≤ 64 KiB), sent as `data`.
    #[schema(value_type = Object, example = json!({"orderId": 1042}))]
    pub data: Value,
}

/// A named endpoint and its signing key.
#[derive(Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: SecretString,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.name)
    }
}

pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (name, url) = named_setting(s, "endpoint")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("endpoint {name:?}: the URL must start with https://"));
    }
    Ok(Endpoint {
        name,
        url: SecretString::from(url),
    })
}

/// A named `whsec_…` secret (kept as given; decoded when checked and used).
#[derive(Clone)]
pub struct EndpointSecret {
    pub name: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.name)
    }
}

pub fn parse_secret(s: &str) -> Result<EndpointSecret, String> {
    let (name, secret) = named_setting(s, "secret")?;
    signing_key(&secret).map_err(|e| format!("secret of {name:?}: {e}"))?;
    Ok(EndpointSecret {
        name,
        secret: SecretString::from(secret),
    })
}

/// The HMAC key of a `whsec_` secret: its Base64, 24 to 64 bytes.
fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_ (Standard Webhooks)")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "is not Base64 after whsec_")?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("must hold 24 to 64 random bytes (got {})", key.len()));
    }
    Ok(key)
}

/// The `webhook-signature` value for one attempt.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The webhook settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Named webhook endpoints: `default=https://example.com/hooks,billing=https://…`. A
    /// message's `endpoint` picks one (absent: `default`). Without any, webhooks are dry-run.
    #[arg(long, env = "ALLIM_WEBHOOK_ENDPOINTS", value_delimiter = ',', value_parser = crate::settings::Secret(parse_endpoint), hide_env_values = true, global = true)]
    pub webhook_endpoints: Vec<Endpoint>,

    /// The signing secret of each endpoint: `default=whsec_…,billing=whsec_…` (Standard
    /// Webhooks: Base64 of 24 to 64 random bytes).
    #[arg(long, env = "ALLIM_WEBHOOK_SECRETS", value_delimiter = ',', value_parser = crate::settings::Secret(parse_secret), hide_env_values = true, global = true)]
    pub webhook_secrets: Vec<EndpointSecret>,

    /// Most posts per second, per endpoint.
    #[arg(long, env = "ALLIM_WEBHOOK_RATE_PER_SEC", default_value_t = 10.0, global = true)]
    pub webhook_rate_per_sec: f64,
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        check_rate("ALLIM_WEBHOOK_RATE_PER_SEC", self.webhook_rate_per_sec)?;
        let mut names: Vec<&str> = self.webhook_endpoints.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            anyhow::bail!("ALLIM_WEBHOOK_ENDPOINTS names an endpoint twice");
        }
        for e in &self.webhook_endpoints {
            if !self.webhook_secrets.iter().any(|s| s.name == e.name) {
                anyhow::bail!("ALLIM_WEBHOOK_SECRETS has no secret for the endpoint {:?}", e.name);
            }
        }
        for s in &self.webhook_secrets {
            if !self.webhook_endpoints.iter().any(|e| e.name == s.name) {
                anyhow::bail!(
                    "ALLIM_WEBHOOK_SECRETS: {:?} is not an endpoint of ALLIM_WEBHOOK_ENDPOINTS",
                    s.name
                );
            }
        }
        Ok(())
    }

    fn mode(&self) -> &'static str {
        if self.webhook_endpoints.is_empty() {
            "dry-run"
        } else {
            "endpoints"
        }
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.webhook_rate_per_sec)
    }
}

impl Kind for Webhook {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        check_text("eventType", &self.event_type, 1, EVENT_TYPE_MAX, false)?;
        check_object("data", &self.data, DATA_MAX_BYTES)?;
        if let Some(endpoint) = &self.endpoint
            && !is_target_name(endpoint)
        {
            return Err(ContractError::field(
                "endpoint",
                "must be an endpoint name: lowercase letters, digits, '-' and '_'",
            ));
        }
        Ok(())
    }

    /// With endpoints configured, the named one must exist (a dry run takes any name).
    fn check(&self, settings: &Settings) -> Result<(), ContractError> {
        let endpoints = &settings.webhook_endpoints;
        let name = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        if endpoints.is_empty() || endpoints.iter().any(|e| e.name == name) {
            return Ok(());
        }
        let configured: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
        Err(ContractError::field(
            "endpoint",
            format!(
                "no webhook endpoint named {name:?} is configured (configured: {})",
                configured.join(", ")
            ),
        ))
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        let mut endpoints = HashMap::new();
        for e in &settings.webhook_endpoints {
            let secret = settings
                .webhook_secrets
                .iter()
                .find(|s| s.name == e.name)
                .ok_or_else(|| anyhow::anyhow!("ALLIM_WEBHOOK_SECRETS has no secret for {:?}", e.name))?;
            let key = signing_key(secret.secret.expose_secret())
                .map_err(|m| anyhow::anyhow!("ALLIM_WEBHOOK_SECRETS: {m}"))?;
            endpoints.insert(e.name.clone(), (e.url.clone(), SecretBox::new(Box::new(key))));
        }
        Ok(Arc::new(WebhookChannel {
            http: deps.http.clone(),
            endpoints,
            limiter: keyed_limiter(settings.webhook_rate_per_sec),
            clock: deps.clock.clone(),
        }))
    }
}

pub struct WebhookChannel {
    http: reqwest::Client,
    /// Name → (URL, HMAC key).
    endpoints: HashMap<String, (SecretString, SecretBox<Vec<u8>>)>,
    limiter: KeyedLimiter,
    clock: Clock,
}

impl WebhookChannel {
    async fn post(&self, job: &Job) -> SendOutcome {
        let super::Notification::Webhook(hook) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let name = hook.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        if self.endpoints.is_empty() {
            tracing::info!(delivery = %job.delivery_id, endpoint = name, event_type = %hook.event_type,
                "webhook dry run (no endpoints configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        }
        let Some((url, key)) = self.endpoints.get(name) else {
            return SendOutcome::Permanent {
                error: format!("no webhook endpoint named {name:?} is configured"),
            };
        };
        self.limiter.until_key_ready(&name.to_string()).await;
        if !job.still_ours().await {
            return SendOutcome::LeaseLost;
        }
        let now = self.clock.now_ms();
        let body = json!({"type": hook.event_type, "timestamp": format_ms(now), "data": hook.data}).to_string();
        let timestamp = now / 1000;
        let res = self
            .http
            .post(url.expose_secret())
            .header("content-type", "application/json")
            .header("webhook-id", &job.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(key.expose_secret(), &job.delivery_id, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        let (status, after, text) = match read_answer("webhook", res).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let error = format!("webhook {name} {}: {}", status.as_u16(), truncate(text.trim(), 300));
        if status.is_success() {
            SendOutcome::Delivered { dry_run: false }
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            SendOutcome::Retry { error, after }
        } else {
            // 410 Gone included: the receiver says the endpoint is no more.
            SendOutcome::Permanent { error }
        }
    }
}

super::sender!(WebhookChannel, "webhook", post);

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (spec/standard-webhooks.md):
    /// secret `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, id `msg_p5jXN8AQM9LWM0D4loKWxJek`,
    /// timestamp 1614265330, body `{"test": 2432232314}`.
    #[test]
    fn signature_matches_the_specification_example() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(signing_key("whsec_c2hvcnQ=").is_err(), "5 bytes is too short");
        assert_eq!(
            format!(
                "{:?}",
                parse_secret("ops=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            ),
            "ops=***"
        );
    }
}
