//! SNS ingress: `POST /webhooks/sns`, where an SNS topic (typically the one CloudWatch alarms
//! publish to) delivers over HTTPS. [`verify`] proves a message came from SNS for an allowed
//! topic; refusals are 4xx (SNS does not retry a 4xx) with one warning line. A confirmation is
//! answered by GETting its SubscribeURL (after the same host check); a Notification is
//! de-duplicated on its MessageId and becomes alarm routing, an accepted notification, or a
//! `rejected` delivery that says why ([`super::classify`]).

pub mod verify;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use verify::{Envelope, SnsVerifier, check_sns_url};

use super::classify::{Classified, classify};
use crate::AppState;
use crate::accept::{Entry, Source};
use crate::web::{ApiError, ApiResult, ErrorBody, RawBody};

/// The largest body the webhook reads (SNS messages are at most 256 KiB, plus the envelope).
pub const MAX_BODY: usize = 300 * 1024;

/// The SNS webhook's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SnsArgs {
    /// SNS topics whose messages `/webhooks/sns` accepts (comma-separated ARNs). Empty: none.
    #[arg(long, env = "ALLIM_SNS_TOPIC_ARNS", value_delimiter = ',', global = true)]
    pub sns_topic_arns: Vec<String>,

    /// TESTS ONLY, never in production: also accept SNS certificate / subscribe URLs that
    /// start with this prefix (e.g. `http://127.0.0.1:9999/`).
    #[arg(long, env = "ALLIM_SNS_INSECURE_CERT_URL_PREFIX", global = true)]
    pub sns_insecure_cert_url_prefix: Option<String>,

    /// TESTS ONLY, never in production: fetch SNS signing certificates from this base URL
    /// (a local SNS stand-in such as moto) instead of the host in SigningCertURL.
    #[arg(long, env = "ALLIM_SNS_INSECURE_CERT_FETCH_BASE", global = true)]
    pub sns_insecure_cert_fetch_base: Option<String>,
}

impl SnsArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        for arn in &self.sns_topic_arns {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" {
                anyhow::bail!(
                    "ALLIM_SNS_TOPIC_ARNS: {arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
                );
            }
        }
        Ok(())
    }

    /// The verifier, when a topic is allowed (warning loudly about the test-only settings).
    pub fn verifier(&self, http: reqwest::Client, clock: crate::clock::Clock) -> Option<SnsVerifier> {
        if let Some(prefix) = &self.sns_insecure_cert_url_prefix {
            tracing::warn!(prefix = %prefix, "ALLIM_SNS_INSECURE_CERT_URL_PREFIX is set: SNS certificates are also accepted from this prefix. FOR TESTS ONLY; never set it in production");
        }
        if let Some(base) = &self.sns_insecure_cert_fetch_base {
            tracing::warn!(base = %base, "ALLIM_SNS_INSECURE_CERT_FETCH_BASE is set: SNS certificates are fetched from this host. FOR TESTS ONLY; never set it in production");
        }
        (!self.sns_topic_arns.is_empty()).then(|| {
            SnsVerifier::new(
                http,
                self.sns_topic_arns.clone(),
                self.sns_insecure_cert_url_prefix.clone(),
                self.sns_insecure_cert_fetch_base.clone(),
                clock,
            )
        })
    }
}

/// What the webhook did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookResult {
    /// `confirmed`, `unsubscribed`, `accepted`, `duplicate`, `rejected`, or an alarm outcome
    /// (`sent`, `suppressed`, `silenced`, `unchanged`, `stale`, `unrouted`).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Deliveries created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<String>,
}

fn done(status: &str, detail: Option<String>, deliveries: Vec<String>) -> Json<WebhookResult> {
    Json(WebhookResult {
        status: status.into(),
        detail,
        deliveries,
    })
}

/// SNS delivers here.
///
/// Verifies the message (allowed topic, SNS certificate host, SHA1/SHA256 RSA signature), then
/// confirms a subscription, or routes a Notification: a CloudWatch alarm to the alarm rules, a
/// notification JSON to the accept path, anything else to a `rejected` delivery. No bearer
/// token: the signature is the authentication.
#[utoipa::path(
    post,
    path = "/webhooks/sns",
    tag = "sns",
    request_body(content = String, content_type = "text/plain", description = "The SNS message JSON, as SNS sends it"),
    responses(
        (status = 200, description = "Handled", body = WebhookResult),
        (status = 400, description = "Malformed, forged or tampered; not acted on", body = ErrorBody),
        (status = 403, description = "Topic not allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Database or certificate host unavailable; SNS retries", body = ErrorBody),
    )
)]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<WebhookResult>> {
    let Some(verifier) = state.sns.as_ref() else {
        return Err(ApiError::Forbidden(
            "ALLIM_SNS_TOPIC_ARNS is empty: this webhook accepts nothing".into(),
        ));
    };
    let envelope = match verifier.verify(&headers, &body).await {
        Ok(e) => e,
        Err(r) => {
            state.metrics.sns_rejected.with_label_values(&[r.reason]).inc();
            tracing::warn!(reason = r.reason, error = %r.message, "sns: message refused");
            return Err(if r.status == StatusCode::SERVICE_UNAVAILABLE {
                ApiError::Unavailable(r.message)
            } else {
                ApiError::SnsRefused {
                    forbidden: r.status == StatusCode::FORBIDDEN,
                    message: r.message,
                }
            });
        }
    };
    match envelope.kind.as_str() {
        "SubscriptionConfirmation" => confirm(&state, verifier, &envelope).await,
        "UnsubscribeConfirmation" => {
            tracing::info!(topic = %envelope.topic_arn, "sns: the subscription was removed (UnsubscribeConfirmation)");
            Ok(done("unsubscribed", None, Vec::new()))
        }
        _ => notification(&state, envelope).await,
    }
}

async fn confirm(state: &AppState, verifier: &SnsVerifier, e: &Envelope) -> ApiResult<Json<WebhookResult>> {
    let url = e.subscribe_url.as_deref().unwrap_or_default();
    if let Err(m) = check_sns_url(url, false, verifier.insecure_prefix()) {
        tracing::warn!(error = %m, "sns: SubscribeURL refused");
        return Err(ApiError::SnsRefused {
            forbidden: false,
            message: format!("SubscribeURL: {m}"),
        });
    }
    let res = state.http.get(url).send().await;
    match res {
        Ok(r) if r.status().is_success() => {
            tracing::info!(topic = %e.topic_arn, "sns: subscription confirmed");
            Ok(done("confirmed", None, Vec::new()))
        }
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "sns: confirming the subscription failed; SNS will retry"
            );
            Err(ApiError::Upstream(format!(
                "SubscribeURL answered {}",
                r.status().as_u16()
            )))
        }
        Err(err) => {
            tracing::warn!(error = %err.without_url(), "sns: confirming the subscription failed; SNS will retry");
            Err(ApiError::Upstream("SubscribeURL could not be reached".into()))
        }
    }
}

async fn notification(state: &AppState, e: Envelope) -> ApiResult<Json<WebhookResult>> {
    state.metrics.received.with_label_values(&["sns"]).inc();
    let key = crate::contract::message_key("sns", &e.message_id);
    match classify(&state.acceptor, &key, &e.message).await {
        Classified::Alarm { key, alarm } => {
            let handled = state.alarms.handle(&key, &alarm).await?;
            Ok(done(&handled.outcome, Some(handled.detail), handled.deliveries))
        }
        Classified::Entry(entry) => {
            let rejected = matches!(entry, Entry::Rejected { .. });
            let outcome = state.acceptor.accept_one(Source::Sns, entry).await?;
            let status = state.metrics.count_outcome("sns", outcome.duplicate, rejected);
            Ok(done(status, None, vec![outcome.id]))
        }
    }
}
