//! Push through Firebase Cloud Messaging HTTP v1.
//!
//! Auth: the service account signs an RS256 JWT (`iss` = its email, `scope` = firebase.messaging,
//! `aud` = the token endpoint, one hour), trades it for an OAuth2 access token (JWT-bearer
//! grant), and the token is cached until five minutes before it expires. A 401 from FCM drops
//! the cached token and tries once more with a fresh one.
//!
//! A PUSH goes to every device registered for `userId` plus any explicit `tokens`, one FCM
//! request per token (v1 has no multicast). A token that was sent is recorded, so a retry sends
//! only to the ones still missing. FCM's error code is read from `details[].errorCode`:
//! `UNREGISTERED`, `SENDER_ID_MISMATCH` and an invalid-token `INVALID_ARGUMENT` remove the
//! token from the registry; `QUOTA_EXCEEDED`, `UNAVAILABLE`, `INTERNAL` (and other 5xx) retry,
//! honouring `Retry-After`; anything else is permanent. Without credentials: a dry run.

mod sender;

use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use sender::{Fcm, SCOPE, ServiceAccount};

use super::http::{check_rate, check_url};
use super::{Channel, Deps, Kind};
use crate::contract::{ContractError, check_opt, check_text, check_user_id, limits};

pub const TOKENS_MAX: usize = 500;
pub const TOKEN_MAX: usize = 1024;
/// FCM's payload limit is 4096 bytes; leave room for the envelope.
pub const PAYLOAD_MAX_BYTES: usize = 3800;

/// `PUSH`: a mobile push to all of a user's devices and/or explicit FCM tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Push {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// Send to every device registered for this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "42")]
    pub user_id: Option<String>,
    /// Explicit FCM registration tokens (≤ 500). `userId` or `tokens` is required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Shipped")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Your order is on its way")]
    pub body: Option<String>,
    /// String values only (FCM's rule); keys `from`, `message_type`, `google.*`, `gcm.*` are reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"orderId": "1042"}))]
    pub data: Option<Value>,
}

impl Kind for Push {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        if let Some(user) = &self.user_id {
            check_user_id("userId", user)?;
        }
        if self.user_id.is_none() && self.tokens.is_empty() {
            return Err(ContractError::field("userId", "userId or tokens is required"));
        }
        if self.tokens.len() > TOKENS_MAX {
            return Err(ContractError::field(
                "tokens",
                format!("must have at most {TOKENS_MAX} entries"),
            ));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            check_text(&format!("tokens[{i}]"), t, 1, TOKEN_MAX, false)?;
            if t.chars().any(char::is_whitespace) {
                return Err(ContractError::field(
                    format!("tokens[{i}]"),
                    "must not contain white space",
                ));
            }
        }
        self.tokens.sort();
        self.tokens.dedup();
        check_opt("title", &self.title, limits::TITLE_MAX, false)?;
        check_opt("body", &self.body, limits::BODY_MAX, true)?;
        if let Some(data) = &self.data {
            let Value::Object(map) = data else {
                return Err(ContractError::field("data", "must be a JSON object of strings"));
            };
            check_data(map)?;
        }
        if self.title.is_none() && self.body.is_none() && self.data.is_none() {
            return Err(ContractError::field("title", "a push needs a title, a body or data"));
        }
        let size = self.title.as_deref().map_or(0, str::len)
            + self.body.as_deref().map_or(0, str::len)
            + self.data.as_ref().map_or(0, |d| d.to_string().len());
        if size > PAYLOAD_MAX_BYTES {
            return Err(ContractError::field(
                "body",
                format!(
                    "title, body and data together must be at most {PAYLOAD_MAX_BYTES} bytes (FCM's 4 KB limit); got {size}"
                ),
            ));
        }
        Ok(())
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        let account = match (&settings.fcm_credentials, &settings.fcm_credentials_json) {
            (Some(path), _) => Some(ServiceAccount::from_file(path)?),
            (None, Some(json)) => {
                Some(ServiceAccount::from_json(json.expose_secret()).context("ALLIM_FCM_CREDENTIALS_JSON")?)
            }
            (None, None) => None,
        };
        Ok(Fcm::new(
            deps.http.clone(),
            account,
            settings.fcm_base_url.clone(),
            settings.fcm_token_url.clone(),
            settings.fcm_rate_per_sec,
            deps.store.clone(),
            deps.clock.clone(),
        )?)
    }
}

/// FCM data: string values, no reserved keys.
fn check_data(map: &Map<String, Value>) -> Result<(), ContractError> {
    for (k, v) in map {
        let field = format!("data.{k}");
        if k.is_empty() {
            return Err(ContractError::field("data", "keys must not be empty"));
        }
        if k == "from" || k == "message_type" || k.starts_with("google.") || k.starts_with("gcm.") {
            return Err(ContractError::field(field, "is a key FCM reserves"));
        }
        if !v.is_string() {
            return Err(ContractError::field(
                field,
                "must be a string (FCM data values are strings)",
            ));
        }
    }
    Ok(())
}

/// FCM's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Path of the Firebase service-account JSON. Without it, push is dry-run (logged only).
    #[arg(long, env = "ALLIM_FCM_CREDENTIALS", global = true)]
    pub fcm_credentials: Option<std::path::PathBuf>,

    /// The service-account JSON itself, instead of a file (e.g. injected from Secrets Manager).
    #[arg(long, env = "ALLIM_FCM_CREDENTIALS_JSON", hide_env_values = true, global = true)]
    pub fcm_credentials_json: Option<SecretString>,

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
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        if self.fcm_credentials.is_some() && self.fcm_credentials_json.is_some() {
            anyhow::bail!("set ALLIM_FCM_CREDENTIALS or ALLIM_FCM_CREDENTIALS_JSON, not both");
        }
        check_url("ALLIM_FCM_BASE_URL", &self.fcm_base_url)?;
        check_rate("ALLIM_FCM_RATE_PER_SEC", self.fcm_rate_per_sec)
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.fcm_rate_per_sec)
    }

    fn mode(&self) -> &'static str {
        if self.fcm_credentials.is_some() || self.fcm_credentials_json.is_some() {
            "fcm"
        } else {
            "dry-run"
        }
    }
}
