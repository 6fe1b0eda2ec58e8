//! Local servers that behave as the providers do: they check each request the way SENS, FCM
//! and Slack would — signature, headers, limits — and answer with the providers' real
//! response shapes, errors included. A fake that accepts anything would prove nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn json_response(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------
// SENS

pub const SENS_ACCESS_KEY: &str = "AKIDTESTACCESSKEY0001";
pub const SENS_SECRET_KEY: &str = "TestSecretKey0123456789abcdefABCDEF";
pub const SENS_SERVICE_ID: &str = "ncp:sms:kr:260000000001:allim";
pub const SENS_FROM: &str = "0212345678";

/// A request SENS accepted.
#[derive(Debug, Clone)]
pub struct SensRequest {
    pub kind: String,
    pub subject: Option<String>,
    pub content: String,
    pub to: Vec<String>,
}

#[derive(Default)]
pub struct SensState {
    pub accepted: Mutex<Vec<SensRequest>>,
    /// For the next requests (after authentication): `Some(status)` answers that status
    /// instead of processing, `None` processes normally.
    pub fail_next: Mutex<VecDeque<Option<u16>>>,
    pub rejected_auth: Mutex<u32>,
    /// Chaos: this share of requests (in %) fails with a 500, and this share is answered only
    /// after 2 s (both decided per request, after authentication).
    pub fail_percent: std::sync::atomic::AtomicU32,
    pub slow_percent: std::sync::atomic::AtomicU32,
}

/// Points a configuration's SENS settings at this stand-in, with the right keys.
pub fn with_sens(c: &mut allim::config::Config, sens: &SensServer) {
    c.channels.sens.sens_access_key = Some(SENS_ACCESS_KEY.into());
    c.channels.sens.sens_secret_key = Some(secrecy::SecretString::from(SENS_SECRET_KEY));
    c.channels.sens.sens_service_id = Some(SENS_SERVICE_ID.into());
    c.channels.sens.sens_from = Some(SENS_FROM.into());
    c.channels.sens.sens_base_url = sens.base_url.clone();
}

pub struct SensServer {
    pub base_url: String,
    pub state: Arc<SensState>,
}

impl SensServer {
    pub async fn start() -> SensServer {
        let state = Arc::new(SensState::default());
        let router = Router::new()
            .route("/sms/v2/services/{service}/messages", axum::routing::post(sens_send))
            .with_state(state.clone());
        let addr = serve(router).await;
        SensServer {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    pub fn accepted(&self) -> Vec<SensRequest> {
        self.state.accepted.lock().unwrap().clone()
    }
}

fn euc_kr_bytes(s: &str) -> Option<usize> {
    let (bytes, _, errors) = encoding_rs::EUC_KR.encode(s);
    (!errors).then_some(bytes.len())
}

fn sens_auth_failed() -> Response {
    // The API gateway's shape (UNVERIFIED beyond errorCode / message).
    json_response(
        401,
        json!({"error": {"errorCode": "200", "message": "Authentication Failed", "details": "Invalid authentication information."}}),
    )
}

fn sens_validation(errors: Vec<String>) -> Response {
    json_response(
        400,
        json!({"errors": errors, "errorMessage": format!("Validation failed. {} error(s)", errors.len()), "status": 400}),
    )
}

async fn sens_send(
    State(state): State<Arc<SensState>>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // Authentication first, exactly as the gateway does.
    let (Some(ts), Some(access), Some(sig)) = (
        header("x-ncp-apigw-timestamp"),
        header("x-ncp-iam-access-key"),
        header("x-ncp-apigw-signature-v2"),
    ) else {
        *state.rejected_auth.lock().unwrap() += 1;
        return sens_auth_failed();
    };
    let now = chrono::Utc::now().timestamp_millis();
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() < 5 * 60 * 1000);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SENS_SECRET_KEY.as_bytes()).unwrap();
    mac.update(format!("POST {}\n{ts}\n{access}", uri.path()).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if !fresh || access != SENS_ACCESS_KEY || sig != expected {
        *state.rejected_auth.lock().unwrap() += 1;
        return sens_auth_failed();
    }
    if service != SENS_SERVICE_ID {
        return json_response(
            404,
            json!({"error": {"errorCode": "300", "message": "Not Found Exception"}}),
        );
    }
    if header("content-type").as_deref() != Some("application/json; charset=utf-8") {
        return sens_validation(vec!["Content-Type must be application/json; charset=utf-8".into()]);
    }
    let roll = (uuid::Uuid::new_v4().as_u128() % 100) as u32;
    let fail = state.fail_percent.load(std::sync::atomic::Ordering::Relaxed);
    let slow = state.slow_percent.load(std::sync::atomic::Ordering::Relaxed);
    if roll < fail {
        return json_response(500, json!({"status": 500, "errorMessage": "chaos: internal error"}));
    }
    if roll < fail + slow {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let injected = state.fail_next.lock().unwrap().pop_front().flatten();
    if let Some(status) = injected {
        if status == 401 {
            return sens_auth_failed();
        }
        return json_response(status, json!({"status": status, "errorMessage": "injected failure"}));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return sens_validation(vec!["Request body is not JSON".into()]);
    };
    let mut errors = Vec::new();
    let kind = v["type"].as_str().unwrap_or_default().to_string();
    if !matches!(kind.as_str(), "SMS" | "LMS" | "MMS") {
        errors.push("type must be SMS, LMS or MMS".to_string());
    }
    if v["from"].as_str() != Some(SENS_FROM) {
        errors.push("from is not a registered calling number".into());
    }
    let content = v["content"].as_str().unwrap_or_default().to_string();
    match euc_kr_bytes(&content) {
        None => errors.push("content cannot be encoded in EUC-KR".into()),
        Some(n) if kind == "SMS" && n > 90 => errors.push(format!("SMS content is {n} bytes; the limit is 90")),
        Some(n) if n > 2000 => errors.push(format!("content is {n} bytes; the limit is 2000")),
        Some(0) => errors.push("content is required".into()),
        _ => {}
    }
    let subject = v["subject"].as_str().map(str::to_string);
    if let Some(s) = &subject {
        if kind == "SMS" {
            errors.push("subject is for LMS/MMS only".into());
        }
        if euc_kr_bytes(s).is_none_or(|n| n > 40) {
            errors.push("subject must be at most 40 bytes".into());
        }
    }
    let to: Vec<String> = v["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["to"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if to.is_empty() || to.len() > 100 {
        errors.push(format!("messages must have 1 to 100 entries (got {})", to.len()));
    }
    for t in &to {
        if t.is_empty() || t.len() > 25 || !t.chars().all(|c| c.is_ascii_digit()) {
            errors.push("The receiver(to) must be numeric and cannot exceed 25 characters.".into());
        }
    }
    if !errors.is_empty() {
        return sens_validation(errors);
    }
    state.accepted.lock().unwrap().push(SensRequest {
        kind,
        subject,
        content,
        to,
    });
    json_response(
        202,
        json!({"requestId": format!("VORSSA-{}", uuid::Uuid::new_v4().simple()), "requestTime": "2026-11-22T10:00:00.000",
               "statusCode": "202", "statusName": "success"}),
    )
}

// ---------------------------------------------------------------------------------------
// FCM

pub const FCM_PROJECT: &str = "allim-test";
pub const FCM_CLIENT_EMAIL: &str = "allim-test@allim-test.iam.gserviceaccount.com";

#[derive(Default)]
pub struct FcmState {
    pub issued: Mutex<HashSet<String>>,
    pub token_requests: Mutex<u32>,
    /// Device tokens sent to, in order.
    pub sent: Mutex<Vec<String>>,
    /// Per device token: statuses to answer before succeeding.
    pub fail: Mutex<HashMap<String, VecDeque<u16>>>,
    pub unauthorized: Mutex<u32>,
}

pub struct FcmServer {
    pub base_url: String,
    pub token_url: String,
    pub state: Arc<FcmState>,
}

impl FcmServer {
    pub async fn start() -> FcmServer {
        let state = Arc::new(FcmState::default());
        let router = Router::new()
            .route("/token", axum::routing::post(fcm_token))
            .fallback(fcm_send)
            .with_state(state.clone());
        let addr = serve(router).await;
        FcmServer {
            base_url: format!("http://{addr}"),
            token_url: format!("http://{addr}/token"),
            state,
        }
    }

    pub fn fail(&self, token: &str, statuses: &[u16]) {
        self.state
            .fail
            .lock()
            .unwrap()
            .insert(token.to_string(), statuses.iter().copied().collect());
    }

    pub fn sent(&self) -> Vec<String> {
        self.state.sent.lock().unwrap().clone()
    }
}

#[derive(serde::Deserialize)]
struct JwtClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Google's token endpoint: verifies the RS256 JWT with the service account's public key.
async fn fcm_token(State(state): State<Arc<FcmState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    *state.token_requests.lock().unwrap() += 1;
    let invalid = |d: &str| json_response(400, json!({"error": "invalid_grant", "error_description": d}));
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        return invalid("Content-Type must be application/x-www-form-urlencoded");
    }
    let form: HashMap<String, String> = url_decode_form(&String::from_utf8_lossy(&body));
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return json_response(
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return invalid("Missing assertion");
    };
    let public = include_bytes!("../fixtures/fcm-test-public.pem");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("http://{}{}", headers["host"].to_str().unwrap(), uri.path())]);
    validation.set_issuer(&[FCM_CLIENT_EMAIL]);
    let Ok(data) = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation) else {
        return invalid("Invalid JWT Signature.");
    };
    let c = data.claims;
    if c.exp - c.iat > 3600 || c.iss != FCM_CLIENT_EMAIL || c.aud.is_empty() {
        return invalid("Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    if !c
        .scope
        .split(' ')
        .any(|s| s == "https://www.googleapis.com/auth/firebase.messaging")
    {
        return invalid("Invalid OAuth scope");
    }
    let token = format!("ya29.test-{}", uuid::Uuid::new_v4().simple());
    state.issued.lock().unwrap().insert(token.clone());
    json_response(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn url_decode_form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (pct(k), pct(v)))
        .collect()
}

fn pct(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn fcm_error(status: u16, canonical: &str, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": status, "message": message, "status": canonical, "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}}),
    )
}

/// `POST /v1/projects/{project}/messages:send`.
async fn fcm_send(State(state): State<Arc<FcmState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() != format!("/v1/projects/{FCM_PROJECT}/messages:send") {
        return fcm_error(404, "NOT_FOUND", "UNSPECIFIED_ERROR", "Requested entity was not found.");
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| state.issued.lock().unwrap().contains(b)) {
        *state.unauthorized.lock().unwrap() += 1;
        return json_response(
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.", "status": "UNAUTHENTICATED"}}),
        );
    }
    if body.len() > 4096 + 512 {
        return fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        );
    };
    let m = &v["message"];
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|k| m.get(**k).is_some())
        .count();
    if targets != 1 {
        return fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Exactly one of token, topic or condition must be set",
        );
    }
    if let Some(data) = m.get("data").and_then(|d| d.as_object())
        && data.values().any(|x| !x.is_string())
    {
        return fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data': not a string",
        );
    }
    let token = m["token"].as_str().unwrap_or_default().to_string();
    if token.starts_with("unregistered") {
        return fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.");
    }
    if token.starts_with("malformed") {
        return fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        );
    }
    let injected = state.fail.lock().unwrap().get_mut(&token).and_then(VecDeque::pop_front);
    if let Some(status) = injected {
        let (canonical, code) = match status {
            503 => ("UNAVAILABLE", "UNAVAILABLE"),
            429 => ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
            _ => ("INTERNAL", "INTERNAL"),
        };
        let mut res = fcm_error(status, canonical, code, "The service is currently unavailable.");
        res.headers_mut().insert("retry-after", "1".parse().unwrap());
        return res;
    }
    state.sent.lock().unwrap().push(token);
    json_response(
        200,
        json!({"name": format!("projects/{FCM_PROJECT}/messages/0:{}", uuid::Uuid::new_v4().simple())}),
    )
}

// ---------------------------------------------------------------------------------------
// Slack

#[derive(Default)]
pub struct SlackState {
    pub posted: Mutex<Vec<(String, String)>>,
    pub seen: Mutex<HashMap<String, u32>>,
    /// When set, each post waits for a `gate.notify_one()` before it is answered (a hanging Slack).
    pub hold: std::sync::atomic::AtomicBool,
    pub gate: tokio::sync::Notify,
    /// Posts waiting at the gate.
    pub waiting: std::sync::atomic::AtomicUsize,
    /// When set, no 429 on a hook's first post.
    pub no_throttle: std::sync::atomic::AtomicBool,
}

pub struct SlackServer {
    pub base_url: String,
    pub state: Arc<SlackState>,
}

impl SlackServer {
    pub async fn start() -> SlackServer {
        let state = Arc::new(SlackState::default());
        let router = Router::new()
            .route("/services/{hook}", axum::routing::post(slack_post))
            .with_state(state.clone());
        let addr = serve(router).await;
        SlackServer {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    pub fn posted(&self) -> Vec<(String, String)> {
        self.state.posted.lock().unwrap().clone()
    }
}

/// An incoming webhook: 404 `no_service` for an unknown hook, 400 `invalid_payload` without
/// `text`, and — as Slack does under load — a 429 with Retry-After on the first post of each hook.
async fn slack_post(State(state): State<Arc<SlackState>>, Path(hook): Path<String>, body: Bytes) -> Response {
    use std::sync::atomic::Ordering;
    if !hook.starts_with("T0") {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    if state.hold.load(Ordering::SeqCst) {
        state.waiting.fetch_add(1, Ordering::SeqCst);
        state.gate.notified().await;
        state.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    let n = {
        let mut seen = state.seen.lock().unwrap();
        let n = seen.entry(hook.clone()).or_default();
        *n += 1;
        *n
    };
    if n == 1 && !state.no_throttle.load(Ordering::SeqCst) {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate_limited").into_response();
    }
    let Some(text) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
    else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    state.posted.lock().unwrap().push((hook, text));
    (StatusCode::OK, "ok").into_response()
}
