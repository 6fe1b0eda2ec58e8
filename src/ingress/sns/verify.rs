//! Verifying SNS messages. Nothing in a message is acted on before it is proven to come from
//! SNS for an allowed topic:
//! - the body is read raw, whatever the Content-Type (SNS sends `text/plain`);
//! - `TopicArn` must be in `ALLIM_SNS_TOPIC_ARNS` (empty: the webhook accepts nothing);
//! - `SigningCertURL` must be https, on `sns.<region>.amazonaws.com[.cn]`, ending in `.pem`;
//!   the certificate is fetched with a timeout and cached;
//! - the signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) is checked over the
//!   string to sign of PROTOCOLS.md §1.4: `Name\nValue\n` for Message, MessageId, Subject
//!   (only if present), SubscribeURL, Timestamp, Token, TopicArn, Type — those the type has.
//!

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::clock::{Clock, duration_ms};

/// An SNS message envelope as delivered over HTTP.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    #[serde(rename = "Signature")]
    pub signature: String,
    // Lambda spells it SigningCertUrl; over HTTP it is SigningCertURL. Accept both.
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl", default)]
    pub subscribe_url: Option<String>,
}

/// The string SNS signed (PROTOCOLS.md §1.4).
pub fn string_to_sign(e: &Envelope) -> String {
    let mut s = String::with_capacity(e.message.len() + 512);
    let mut add = |name: &str, value: &str| {
        s.push_str(name);
        s.push('\n');
        s.push_str(value);
        s.push('\n');
    };
    add("Message", &e.message);
    add("MessageId", &e.message_id);
    if e.kind == "Notification" {
        if let Some(subject) = &e.subject {
            add("Subject", subject);
        }
        add("Timestamp", &e.timestamp);
        add("TopicArn", &e.topic_arn);
        add("Type", &e.kind);
    } else {
        add("SubscribeURL", e.subscribe_url.as_deref().unwrap_or(""));
        add("Timestamp", &e.timestamp);
        add("Token", e.token.as_deref().unwrap_or(""));
        add("TopicArn", &e.topic_arn);
        add("Type", &e.kind);
    }
    s
}

/// Whether `host` is an SNS endpoint: `sns.<region>.amazonaws.com` or `….amazonaws.com.cn`
/// (the AWS SDKs' rule: `^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$`).
pub fn is_sns_host(host: &str) -> bool {
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    let Some(region) = rest.and_then(|r| r.strip_prefix("sns.")) else {
        return false;
    };
    region.len() >= 3 && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Checks a SigningCertURL or SubscribeURL: https on an SNS host (and for certificates, a
/// path ending in `.pem`), or — for tests only — the configured insecure prefix.
pub fn check_sns_url(url: &str, want_pem: bool, insecure_prefix: Option<&str>) -> Result<(), String> {
    if let Some(prefix) = insecure_prefix
        && url.starts_with(prefix)
    {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    if parsed.scheme() != "https" {
        return Err(format!("{url:?} is not https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.port().is_some() {
        return Err(format!("{url:?} carries credentials or a port"));
    }
    let host = parsed.host_str().unwrap_or_default();
    if !is_sns_host(host) {
        return Err(format!("host {host:?} is not an SNS endpoint"));
    }
    if want_pem && !parsed.path().ends_with(".pem") {
        return Err(format!("{url:?} does not end in .pem"));
    }
    Ok(())
}

/// Why a message was refused.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Refused {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Refused {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// A certificate's RSA public key (PKCS#1 DER) and when it was fetched.
type CachedKey = (Arc<Vec<u8>>, Instant);

/// Verifies SNS signatures, with a cache of signing certificates' public keys.
pub struct SnsVerifier {
    http: reqwest::Client,
    topics: Vec<String>,
    insecure_prefix: Option<String>,
    insecure_fetch_base: Option<String>,
    /// Certificate URL → (RSA public key, fetched at).
    keys: RwLock<HashMap<String, CachedKey>>,
    /// Certificate URL → when fetching it last failed (a negative cache).
    failed: RwLock<HashMap<String, Instant>>,
    /// At most a few fetches of new certificate URLs a minute.
    fetches: governor::DefaultDirectRateLimiter,
    /// One fetch at a time: requests that miss the cache together wait for the first one's
    /// fetch and then find the key cached, instead of each fetching (and tripping the limit).
    fetching: tokio::sync::Mutex<()>,
    clock: Clock,
}

/// How long a failed certificate URL is not fetched again.
const FAILED_TTL: Duration = Duration::from_secs(300);

/// How old a message may be: SNS retries an HTTP delivery for up to an hour by default (a
/// custom policy can stretch that), and a queue keeps a message for at most 14 days; older, it
/// is a replay. A clock more than 5 minutes ahead is refused too.
const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
const MAX_SKEW: Duration = Duration::from_secs(300);

const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
const KEYS_MAX: usize = 64;

impl SnsVerifier {
    pub fn new(
        http: reqwest::Client,
        topics: Vec<String>,
        insecure_prefix: Option<String>,
        insecure_fetch_base: Option<String>,
        clock: Clock,
    ) -> Self {
        SnsVerifier {
            http,
            topics,
            insecure_prefix,
            insecure_fetch_base,
            keys: RwLock::new(HashMap::new()),
            failed: RwLock::new(HashMap::new()),
            // SNS signs with one certificate per region, rotated rarely: 10 new URLs a minute
            // (5 at once) is far above need and bounds what strangers can make allim fetch.
            fetches: governor::RateLimiter::direct(
                governor::Quota::per_minute(std::num::NonZeroU32::new(10).expect("non-zero"))
                    .allow_burst(std::num::NonZeroU32::new(5).expect("non-zero")),
            ),
            fetching: tokio::sync::Mutex::new(()),
            clock,
        }
    }

    pub fn insecure_prefix(&self) -> Option<&str> {
        self.insecure_prefix.as_deref()
    }

    /// Parses and verifies a body. Returns the envelope only if every check passed.
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Envelope, Refused> {
        if headers.get("x-amz-sns-rawdelivery").and_then(|v| v.to_str().ok()) == Some("true") {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "raw_delivery",
                "raw message delivery carries no signature; turn RawMessageDelivery off for this subscription",
            ));
        }
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, "malformed", format!("not an SNS message: {e}")))?;
        if let Some(header) = headers.get("x-amz-sns-message-type").and_then(|v| v.to_str().ok())
            && header != envelope.kind
        {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!(
                    "x-amz-sns-message-type {header:?} does not match Type {:?}",
                    envelope.kind
                ),
            ));
        }
        if !matches!(
            envelope.kind.as_str(),
            "Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation"
        ) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("unknown Type {:?}", envelope.kind),
            ));
        }
        if !self.topics.iter().any(|t| t == &envelope.topic_arn) {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                "topic",
                format!("topic {} is not in ALLIM_SNS_TOPIC_ARNS", envelope.topic_arn),
            ));
        }
        let algorithm: &'static dyn signature::VerificationAlgorithm = match envelope.signature_version.as_str() {
            "1" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &signature::RSA_PKCS1_2048_8192_SHA256,
            other => {
                return Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    "signature",
                    format!("SignatureVersion {other:?} is not 1 or 2"),
                ));
            }
        };
        check_sns_url(&envelope.signing_cert_url, true, self.insecure_prefix.as_deref())
            .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, "cert_url", format!("SigningCertURL: {e}")))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| Refused::new(StatusCode::BAD_REQUEST, "signature", "Signature is not Base64"))?;
        self.check_fresh(&envelope.timestamp)?;
        let key = self.public_key(&envelope.signing_cert_url).await?;
        UnparsedPublicKey::new(algorithm, key.as_slice())
            .verify(string_to_sign(&envelope).as_bytes(), &signature)
            .map_err(|_| Refused::new(StatusCode::BAD_REQUEST, "signature", "the signature does not verify"))?;
        Ok(envelope)
    }

    /// Refuses a Timestamp older than [`MAX_AGE`] or more than [`MAX_SKEW`] ahead: a replayed
    /// message keeps a valid signature forever, and a forged far-future alarm would make every
    /// later real change look stale.
    fn check_fresh(&self, timestamp: &str) -> Result<(), Refused> {
        let at = chrono::DateTime::parse_from_rfc3339(timestamp)
            .map_err(|_| {
                Refused::new(
                    StatusCode::BAD_REQUEST,
                    "timestamp",
                    "Timestamp is not an RFC 3339 time",
                )
            })?
            .timestamp_millis();
        let now = self.clock.now_ms();
        if at > now + duration_ms(MAX_SKEW) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "timestamp",
                format!("Timestamp {timestamp} is in the future"),
            ));
        }
        if at < now - duration_ms(MAX_AGE) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "timestamp",
                format!("Timestamp {timestamp} is too old (a replay)"),
            ));
        }
        Ok(())
    }

    /// The RSA public key of a signing certificate, cached per URL.
    async fn public_key(&self, url: &str) -> Result<Arc<Vec<u8>>, Refused> {
        if let Some(key) = self.cached(url).await {
            return Ok(key);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Fetched meanwhile by the request that held the lock.
        if let Some(key) = self.cached(url).await {
            return Ok(key);
        }
        // A URL that failed lately is not fetched again (each costs an outbound request that a
        // stranger can cause), and fetches of new URLs are rate limited.
        if let Some(at) = self.failed.read().await.get(url)
            && at.elapsed() < FAILED_TTL
        {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "cert_fetch",
                "this signing certificate URL failed lately; not fetched again yet",
            ));
        }
        if self.fetches.check().is_err() {
            return Err(Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cert_fetch",
                "too many signing-certificate fetches; try again shortly",
            ));
        }
        let result = self.fetch_key(url).await;
        if let Err(r) = &result
            && r.status == StatusCode::BAD_REQUEST
        {
            let mut failed = self.failed.write().await;
            if failed.len() >= KEYS_MAX {
                failed.clear();
            }
            failed.insert(url.to_string(), Instant::now());
        }
        result
    }

    async fn cached(&self, url: &str) -> Option<Arc<Vec<u8>>> {
        match self.keys.read().await.get(url) {
            Some((key, at)) if at.elapsed() < KEY_TTL => Some(key.clone()),
            _ => None,
        }
    }

    /// Fetches and parses a signing certificate; caches its key.
    async fn fetch_key(&self, url: &str) -> Result<Arc<Vec<u8>>, Refused> {
        let fetch_url = match &self.insecure_fetch_base {
            // Test only: fetch the certificate of an SNS URL from a local stand-in (moto).
            Some(base) => match reqwest::Url::parse(url) {
                Ok(u) => format!("{}{}", base.trim_end_matches('/'), u.path()),
                Err(_) => url.to_string(),
            },
            None => url.to_string(),
        };
        let unavailable = |m: String| Refused::new(StatusCode::SERVICE_UNAVAILABLE, "cert_fetch", m);
        let res = self
            .http
            .get(&fetch_url)
            .send()
            .await
            .map_err(|e| unavailable(format!("fetching the signing certificate failed: {}", e.without_url())))?;
        if !res.status().is_success() {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "cert_fetch",
                format!("the signing certificate URL answered {}", res.status().as_u16()),
            ));
        }
        let pem = res
            .bytes()
            .await
            .map_err(|e| unavailable(format!("reading the signing certificate failed: {}", e.without_url())))?;
        let key = rsa_key_from_pem(&pem)
            .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, "cert", format!("signing certificate: {e}")))?;
        let key = Arc::new(key);
        let mut keys = self.keys.write().await;
        if keys.len() >= KEYS_MAX {
            keys.clear();
        }
        keys.insert(url.to_string(), (key.clone(), Instant::now()));
        Ok(key)
    }
}

/// The PKCS#1 RSA public key inside a PEM certificate.
pub fn rsa_key_from_pem(pem: &[u8]) -> Result<Vec<u8>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err("the key is not RSA".into());
    }
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_hosts() {
        assert!(is_sns_host("sns.us-east-1.amazonaws.com"));
        assert!(is_sns_host("sns.us-gov-west-1.amazonaws.com"));
        assert!(is_sns_host("sns.cn-north-1.amazonaws.com.cn"));
        assert!(!is_sns_host("sns.amazonaws.com"));
        assert!(!is_sns_host("evil.com"));
        assert!(!is_sns_host("sns.us-east-1.amazonaws.com.evil.com"));
        assert!(!is_sns_host("sqs.us-east-1.amazonaws.com"));
        assert!(!is_sns_host("sns.us_east.amazonaws.com"));
    }

    #[test]
    fn cert_urls() {
        let ok = "https://sns.ap-northeast-2.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(check_sns_url(ok, true, None).is_ok());
        assert!(check_sns_url("http://sns.ap-northeast-2.amazonaws.com/x.pem", true, None).is_err());
        assert!(check_sns_url("https://sns.ap-northeast-2.amazonaws.com/x.txt", true, None).is_err());
        assert!(check_sns_url("https://sns.ap-northeast-2.amazonaws.com:8443/x.pem", true, None).is_err());
        assert!(check_sns_url("https://user@sns.ap-northeast-2.amazonaws.com/x.pem", true, None).is_err());
        assert!(check_sns_url("http://127.0.0.1:9/x.pem", true, Some("http://127.0.0.1:9/")).is_ok());
        assert!(check_sns_url("http://127.0.0.1:10/x.pem", true, Some("http://127.0.0.1:9/")).is_err());
    }

    #[test]
    fn string_to_sign_follows_the_docs() {
        let mut e = Envelope {
            kind: "Notification".into(),
            message_id: "m-1".into(),
            token: None,
            topic_arn: "arn:aws:sns:ap-northeast-2:1:t".into(),
            subject: None,
            message: "line1\nline2".into(),
            timestamp: "2026-11-22T00:00:00.000Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
        };
        assert_eq!(
            string_to_sign(&e),
            "Message\nline1\nline2\nMessageId\nm-1\nTimestamp\n2026-11-22T00:00:00.000Z\nTopicArn\narn:aws:sns:ap-northeast-2:1:t\nType\nNotification\n"
        );
        e.subject = Some("S".into());
        assert!(string_to_sign(&e).contains("MessageId\nm-1\nSubject\nS\nTimestamp\n"));
        e.kind = "SubscriptionConfirmation".into();
        e.token = Some("tok".into());
        e.subscribe_url = Some("https://sns/x".into());
        assert_eq!(
            string_to_sign(&e),
            "Message\nline1\nline2\nMessageId\nm-1\nSubscribeURL\nhttps://sns/x\nTimestamp\n2026-11-22T00:00:00.000Z\nToken\ntok\nTopicArn\narn:aws:sns:ap-northeast-2:1:t\nType\nSubscriptionConfirmation\n"
        );
    }
}
