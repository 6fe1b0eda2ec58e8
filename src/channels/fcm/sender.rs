//! The FCM HTTP v1 sender: OAuth2 access tokens from the service account, one request per
//! device token, and FCM's error codes mapped to outcomes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Push;
use crate::channels::http::{Limiter, limiter, retry_after, transport_error, truncate};
use crate::channels::{Channel, Job, Notification, SendOutcome, progress, record_part};
use crate::clock::Clock;
use crate::contract::short_hash;
use crate::store::Store;
use crate::telemetry::mask;

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The fields of a Google service-account JSON file that allim uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .finish()
    }
}

impl ServiceAccount {
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("ALLIM_FCM_CREDENTIALS: cannot read {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("ALLIM_FCM_CREDENTIALS ({})", path.display()))
    }

    /// From the JSON text (ALLIM_FCM_CREDENTIALS_JSON).
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let sa: ServiceAccount = serde_json::from_str(text).context("not a service-account JSON")?;
        jsonwebtoken::EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
            .context("private_key is not an RSA PEM key")?;
        Ok(sa)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Credentials {
    account: ServiceAccount,
    key: jsonwebtoken::EncodingKey,
    token_url: String,
}

pub struct Fcm {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    base_url: String,
    token: Mutex<Option<(String, Instant)>>,
    limiter: Limiter,
    store: Store,
    clock: Clock,
}

/// What one token's send came to.
enum TokenResult {
    Sent,
    /// The token is dead: removed from the registry.
    Gone(String),
    Retry(String, Option<Duration>),
    Permanent(String),
    /// The access token was refused.
    Unauthorized(String),
    /// No access token could be had (the token endpoint is unreachable).
    NoAccessToken(String),
}

impl Fcm {
    pub fn new(
        http: reqwest::Client,
        account: Option<ServiceAccount>,
        base_url: String,
        token_url: Option<String>,
        rate_per_sec: f64,
        store: Store,
        clock: Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let credentials = match account {
            Some(account) => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
                    .context("ALLIM_FCM_CREDENTIALS: private_key is not an RSA PEM key")?;
                let token_url = token_url
                    .or_else(|| account.token_uri.clone())
                    .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string());
                Some(Credentials {
                    account,
                    key,
                    token_url,
                })
            }
            None => None,
        };
        Ok(Arc::new(Fcm {
            http,
            credentials,
            base_url,
            token: Mutex::new(None),
            limiter: limiter(rate_per_sec),
            store,
            clock,
        }))
    }

    /// A valid access token, from the cache or freshly fetched. A refused service account is
    /// [`TokenResult::Unauthorized`]; an endpoint that cannot be reached, [`TokenResult::Retry`].
    async fn access_token(&self, creds: &Credentials) -> Result<String, TokenResult> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let now = self.clock.now_ms() / 1000;
        let claims = Claims {
            iss: &creds.account.client_email,
            scope: SCOPE,
            aud: &creds.token_url,
            iat: now,
            exp: now + 3600,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = creds.account.private_key_id.clone();
        let jwt = jsonwebtoken::encode(&header, &claims, &creds.key)
            .map_err(|e| TokenResult::Unauthorized(format!("signing the JWT: {e}")))?;
        let res = self
            .http
            .post(&creds.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ])
            .send()
            .await
            .map_err(|e| TokenResult::Retry(transport_error("FCM token endpoint", e), None))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            let error = format!("FCM token endpoint {}: {}", status.as_u16(), truncate(&text, 200));
            // 400 invalid_grant / 401 invalid_client: the service account is refused.
            return Err(if status.is_client_error() && status.as_u16() != 429 {
                TokenResult::Unauthorized(error)
            } else {
                TokenResult::Retry(error, None)
            });
        }
        let token: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| TokenResult::Retry(format!("FCM token endpoint answered {e}"), None))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(300));
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    async fn forget_access_token(&self) {
        *self.token.lock().await = None;
    }

    async fn send_push(&self, job: &Job) -> SendOutcome {
        let Notification::Push(push) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let mut tokens = push.tokens.clone();
        if let Some(user) = &push.user_id {
            match self.store.list_devices(user).await {
                Ok(devices) => tokens.extend(devices.into_iter().map(|d| d.token)),
                Err(e) => {
                    return SendOutcome::Retry {
                        error: format!("reading devices: {e}"),
                        after: None,
                    };
                }
            }
        }
        tokens.sort();
        tokens.dedup();
        let Some(creds) = &self.credentials else {
            let masked: Vec<String> = tokens.iter().map(|t| mask(t)).collect();
            tracing::info!(delivery = %job.delivery_id, tokens = ?masked, "push dry run (no FCM credentials configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        };
        if tokens.is_empty() {
            return SendOutcome::Permanent {
                error: format!(
                    "no device to send to: user {:?} has no registered devices and no tokens were given",
                    push.user_id.as_deref().unwrap_or("")
                ),
            };
        }
        let done = match progress(&self.store, &job.delivery_id).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        let mut sent = 0usize;
        let mut gone = Vec::new();
        let mut retry: Option<(String, Option<Duration>)> = None;
        let mut permanent = Vec::new();
        for token in &tokens {
            let part = format!("fcm:{}", short_hash(token));
            if done.contains(&part) {
                sent += 1;
                continue;
            }
            if !job.still_ours().await {
                return SendOutcome::LeaseLost;
            }
            let mut result = self.send_one(creds, push, token).await;
            if let TokenResult::Unauthorized(_) = result {
                self.forget_access_token().await;
                result = self.send_one(creds, push, token).await;
            }
            match result {
                // Credentials refused twice (a fresh access token too): the lane pauses.
                TokenResult::Unauthorized(error) => return SendOutcome::Credentials { error },
                // The token endpoint is unreachable: asking again for every device only waits.
                TokenResult::NoAccessToken(error) => return SendOutcome::Retry { error, after: None },
                TokenResult::Sent => {
                    sent += 1;
                    record_part(&self.store, &self.clock, &job.delivery_id, &part).await;
                }
                TokenResult::Gone(reason) => {
                    tracing::info!(delivery = %job.delivery_id, token = %mask(token), reason, "FCM token is dead; removed from the registry");
                    if let Err(e) = self.store.forget_token(token).await {
                        tracing::warn!(error = %e, "could not remove a dead token");
                    }
                    // Record it so a retry does not try it again.
                    let _ = self
                        .store
                        .mark_part_done(&job.delivery_id, &part, self.clock.now_ms())
                        .await;
                    gone.push(reason);
                }
                TokenResult::Retry(e, after) => {
                    let later = match (&retry, after) {
                        (Some((_, Some(a))), Some(b)) => Some((*a).max(b)),
                        (_, b) => b,
                    };
                    retry = Some((e, later));
                }
                TokenResult::Permanent(e) => permanent.push(e),
            }
        }
        if let Some((error, after)) = retry {
            return SendOutcome::Retry { error, after };
        }
        if sent > 0 {
            return SendOutcome::Delivered { dry_run: false };
        }
        let mut reasons = permanent;
        reasons.extend(gone);
        SendOutcome::Permanent {
            error: truncate(&format!("no device took the push: {}", reasons.join("; ")), 500),
        }
    }

    async fn send_one(&self, creds: &Credentials, push: &Push, token: &str) -> TokenResult {
        let access = match self.access_token(creds).await {
            Ok(t) => t,
            Err(TokenResult::Retry(e, _)) => return TokenResult::NoAccessToken(e),
            Err(other) => return other,
        };
        let mut message = json!({ "token": token });
        if push.title.is_some() || push.body.is_some() {
            let mut n = serde_json::Map::new();
            if let Some(t) = &push.title {
                n.insert("title".into(), Value::String(t.clone()));
            }
            if let Some(b) = &push.body {
                n.insert("body".into(), Value::String(b.clone()));
            }
            message["notification"] = Value::Object(n);
        }
        if let Some(data) = &push.data {
            message["data"] = data.clone();
        }
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.base_url.trim_end_matches('/'),
            creds.account.project_id
        );
        self.limiter.until_ready().await;
        let res = match self
            .http
            .post(&url)
            .bearer_auth(&access)
            .json(&json!({ "message": message }))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return TokenResult::Retry(transport_error("FCM", e), None),
        };
        let status = res.status();
        let after = retry_after(res.headers());
        let text = res.text().await.unwrap_or_default();
        if status.is_success() {
            return TokenResult::Sent;
        }
        classify(status.as_u16(), &text, after)
    }
}

/// Maps an FCM error answer to what to do with the token.
fn classify(status: u16, body: &str, after: Option<Duration>) -> TokenResult {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let message = err["message"].as_str().unwrap_or("").to_string();
    let code = err["details"]
        .as_array()
        .and_then(|d| d.iter().find_map(|x| x.get("errorCode")?.as_str()))
        .or_else(|| err["status"].as_str())
        .unwrap_or("")
        .to_string();
    let text = truncate(&format!("FCM {status} {code}: {message}"), 300);
    match code.as_str() {
        "UNREGISTERED" | "SENDER_ID_MISMATCH" => TokenResult::Gone(text),
        "INVALID_ARGUMENT" if message.to_lowercase().contains("registration token") => TokenResult::Gone(text),
        "QUOTA_EXCEEDED" => TokenResult::Retry(text, after.or(Some(Duration::from_secs(60)))),
        "UNAVAILABLE" | "INTERNAL" => TokenResult::Retry(text, after),
        _ if status == 401 => TokenResult::Unauthorized(text),
        _ if status == 429 || status >= 500 => TokenResult::Retry(text, after),
        _ => TokenResult::Permanent(text),
    }
}

crate::channels::sender!(Fcm, "push", send_push);

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: TokenResult) -> &'static str {
        match r {
            TokenResult::Sent => "sent",
            TokenResult::Gone(_) => "gone",
            TokenResult::Retry(..) => "retry",
            TokenResult::Permanent(_) => "permanent",
            TokenResult::Unauthorized(_) => "unauthorized",
            TokenResult::NoAccessToken(_) => "no access token",
        }
    }

    fn body(status: &str, code: &str, message: &str) -> String {
        json!({"error": {"code": 400, "message": message, "status": status, "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}})
        .to_string()
    }

    #[test]
    fn error_codes_come_from_details() {
        // The top-level status is canonical (NOT_FOUND); the FCM code is in details.
        assert_eq!(
            kind(classify(
                404,
                &body("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
                None
            )),
            "gone"
        );
        assert_eq!(
            kind(classify(
                400,
                &body(
                    "INVALID_ARGUMENT",
                    "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token"
                ),
                None
            )),
            "gone"
        );
        assert_eq!(
            kind(classify(
                400,
                &body("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload"),
                None
            )),
            "permanent"
        );
        assert_eq!(
            kind(classify(503, &body("UNAVAILABLE", "UNAVAILABLE", "overloaded"), None)),
            "retry"
        );
        assert_eq!(
            kind(classify(
                429,
                &body("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota"),
                None
            )),
            "retry"
        );
        assert_eq!(
            kind(classify(
                401,
                r#"{"error":{"code":401,"status":"UNAUTHENTICATED","message":"bad"}}"#,
                None
            )),
            "unauthorized"
        );
        assert_eq!(kind(classify(502, "<html>bad gateway</html>", None)), "retry");
    }
}
