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

pub(crate) async fn serve(router: Router) -> SocketAddr {
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
pub const ALIMTALK_SERVICE_ID: &str = "ncp:kkobizmsg:kr:260000000001:allim";
pub const ALIMTALK_CHANNEL_ID: &str = "@allim";
/// An approved template the stand-in knows.
pub const TEMPLATE_SHIPPED: &str = "ORDER_SHIPPED";
pub const TEMPLATE_SHIPPED_TEXT: &str = "#{name}님, 주문 #{orderNo}이(가) 발송되었습니다.";
/// A template still in review (`REQ`).
pub const TEMPLATE_IN_REVIEW: &str = "COUPON_NEW";

/// An AlimTalk message SENS accepted (`requestStatusCode` A000).
#[derive(Debug, Clone)]
pub struct AlimTalkMessage {
    pub template_code: String,
    pub to: String,
    pub content: String,
    pub buttons: Value,
    pub use_sms_failover: bool,
    pub failover_config: Value,
}

/// A message whose result can be looked up.
#[derive(Debug, Clone)]
struct Sent {
    request_id: String,
    to: String,
    /// `sms` or `alimtalk`.
    kind: &'static str,
    /// The final answer (AlimTalk: the message object; SMS: `messages[0]`).
    result: Value,
    /// Look-ups so far: the first answers "processing", as a message just sent would.
    looks: u32,
}

/// A request SENS accepted.
#[derive(Debug, Clone)]
pub struct SensRequest {
    pub kind: String,
    pub subject: Option<String>,
    pub content: String,
    pub to: Vec<String>,
    /// When the request arrived and when it was answered (a request is processed to the end
    /// even if its client has gone meanwhile, as a real gateway would).
    pub received: std::time::Instant,
    pub answered: std::time::Instant,
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
    /// AlimTalk messages accepted.
    pub alimtalk: Mutex<Vec<AlimTalkMessage>>,
    /// SMS / LMS SENS sent by failover, as (to, type, content).
    pub failover_sms: Mutex<Vec<(String, String, String)>>,
    /// Numbers without KakaoTalk: their AlimTalk fails with 3019 and the failover is used.
    pub no_kakao: Mutex<HashSet<String>>,
    /// Numbers SENS refuses in its 202 answer (a `requestStatusCode` other than A000).
    pub refuse: Mutex<HashSet<String>>,
    /// Numbers out of service: an SMS to them fails at the carrier.
    pub unreachable: Mutex<HashSet<String>>,
    /// template code → (text, inspection status).
    pub templates: Mutex<HashMap<String, (String, String)>>,
    pub template_fetches: std::sync::atomic::AtomicU32,
    /// messageId → what became of it.
    sent: Mutex<HashMap<String, Sent>>,
}

/// Points a configuration's SENS settings at this stand-in, with the right keys.
pub fn with_sens(c: &mut allim::config::Config, sens: &SensServer) {
    c.channels.sens.sens_access_key = Some(SENS_ACCESS_KEY.into());
    c.channels.sens.sens_secret_key = Some(secrecy::SecretString::from(SENS_SECRET_KEY));
    c.channels.sens.sens_service_id = Some(SENS_SERVICE_ID.into());
    c.channels.sens.sens_from = Some(SENS_FROM.into());
    c.channels.sens.sens_base_url = sens.base_url.clone();
}

/// As [`with_sens`], with AlimTalk's service and channel too.
pub fn with_alimtalk(c: &mut allim::config::Config, sens: &SensServer) {
    with_sens(c, sens);
    c.channels.alimtalk.alimtalk_service_id = Some(ALIMTALK_SERVICE_ID.into());
    c.channels.alimtalk.alimtalk_channel_id = Some(ALIMTALK_CHANNEL_ID.into());
}

pub struct SensServer {
    pub base_url: String,
    pub state: Arc<SensState>,
}

impl SensServer {
    pub async fn start() -> SensServer {
        let state = Arc::new(SensState::default());
        state.templates.lock().unwrap().extend([
            (
                TEMPLATE_SHIPPED.to_string(),
                (TEMPLATE_SHIPPED_TEXT.to_string(), "APR".to_string()),
            ),
            (
                TEMPLATE_IN_REVIEW.to_string(),
                ("#{name}님께 쿠폰이 발급되었습니다.".to_string(), "REQ".to_string()),
            ),
        ]);
        let router = Router::new()
            .route(
                "/sms/v2/services/{service}/messages",
                axum::routing::post(sens_send).get(sens_list),
            )
            .route(
                "/sms/v2/services/{service}/messages/{id}",
                axum::routing::get(sens_result),
            )
            .route(
                "/alimtalk/v2/services/{service}/messages",
                axum::routing::post(alimtalk_send).get(sens_list),
            )
            .route(
                "/alimtalk/v2/services/{service}/messages/{id}",
                axum::routing::get(sens_result),
            )
            .route(
                "/alimtalk/v2/services/{service}/templates",
                axum::routing::get(alimtalk_templates),
            )
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

    pub fn alimtalk(&self) -> Vec<AlimTalkMessage> {
        self.state.alimtalk.lock().unwrap().clone()
    }

    pub fn failover_sms(&self) -> Vec<(String, String, String)> {
        self.state.failover_sms.lock().unwrap().clone()
    }
}

/// Checks the SENS signature over the method and the raw request target (path and query, as
/// received), the timestamp window and the access key; `Some` is the gateway's 401.
fn sens_auth(state: &SensState, method: &str, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (Some(ts), Some(access), Some(sig)) = (
        header("x-ncp-apigw-timestamp"),
        header("x-ncp-iam-access-key"),
        header("x-ncp-apigw-signature-v2"),
    ) else {
        *state.rejected_auth.lock().unwrap() += 1;
        return Some(sens_auth_failed());
    };
    let now = chrono::Utc::now().timestamp_millis();
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() < 5 * 60 * 1000);
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SENS_SECRET_KEY.as_bytes()).unwrap();
    mac.update(format!("{method} {target}\n{ts}\n{access}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if !fresh || access != SENS_ACCESS_KEY || sig != expected {
        *state.rejected_auth.lock().unwrap() += 1;
        return Some(sens_auth_failed());
    }
    None
}

fn not_found() -> Response {
    json_response(
        404,
        json!({"error": {"errorCode": "300", "message": "Not Found Exception"}}),
    )
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url_decode_form(uri.query().unwrap_or_default())
}

/// Whether `content` is `template` with text in place of each `#{…}` (what Kakao checks):
/// the literal pieces between placeholders, matched in order with backtracking.
fn fills_template(template: &str, content: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("#{") {
        let Some(end) = rest[start..].find('}') else { break };
        pieces.push(rest[..start].to_string());
        rest = &rest[start + end + 1..];
    }
    pieces.push(rest.to_string());
    glob(&pieces, content, true)
}

fn glob(pieces: &[String], s: &str, anchored: bool) -> bool {
    match pieces {
        [] => s.is_empty(),
        [only] if !anchored => s.ends_with(only.as_str()),
        [only] => s == only,
        [first, rest @ ..] if anchored => s.strip_prefix(first.as_str()).is_some_and(|r| glob(rest, r, false)),
        [first, rest @ ..] => s
            .match_indices(first.as_str())
            .any(|(i, _)| glob(rest, &s[i + first.len()..], false)),
    }
}

async fn alimtalk_templates(
    State(state): State<Arc<SensState>>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = sens_auth(&state, "GET", &uri, &headers) {
        return r;
    }
    if service != ALIMTALK_SERVICE_ID {
        return not_found();
    }
    state.template_fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let q = query(&uri);
    if q.get("channelId").map(String::as_str) != Some(ALIMTALK_CHANNEL_ID) {
        return sens_validation(vec!["channelId is not a channel of this service".into()]);
    }
    let templates = state.templates.lock().unwrap().clone();
    let list: Vec<Value> = templates
        .iter()
        .filter(|(code, _)| q.get("templateCode").is_none_or(|c| c == *code))
        .map(|(code, (content, status))| {
            json!({"createTime": "2026-11-01T10:00:00.000", "updateTime": "2026-11-02T10:00:00.000",
                   "channelId": ALIMTALK_CHANNEL_ID, "templateCode": code, "templateName": code,
                   "categoryCode": "004001", "messageType": "BA", "emphasizeType": "NONE",
                   "content": content, "templateInspectionStatus": status, "templateStatus": "ACT",
                   "comments": [], "buttons": []})
        })
        .collect();
    json_response(200, Value::Array(list))
}

async fn alimtalk_send(
    State(state): State<Arc<SensState>>,
    Path(service): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = sens_auth(&state, "POST", &uri, &headers) {
        return r;
    }
    if service != ALIMTALK_SERVICE_ID {
        return not_found();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json; charset=utf-8") {
        return sens_validation(vec!["Content-Type must be application/json; charset=utf-8".into()]);
    }
    if let Some(status) = state.fail_next.lock().unwrap().pop_front().flatten() {
        if status == 401 {
            return sens_auth_failed();
        }
        return json_response(status, json!({"status": status, "errorMessage": "injected failure"}));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return sens_validation(vec!["Request body is not JSON".into()]);
    };
    let mut errors = Vec::new();
    if v["plusFriendId"].as_str() != Some(ALIMTALK_CHANNEL_ID) {
        errors.push("plusFriendId is not a channel of this service".to_string());
    }
    let code = v["templateCode"].as_str().unwrap_or_default().to_string();
    let template = state.templates.lock().unwrap().get(&code).cloned();
    match &template {
        None => errors.push(format!("templateCode {code} does not exist")),
        Some((_, status)) if status != "APR" => errors.push(format!("template {code} is not approved")),
        _ => {}
    }
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() || messages.len() > 100 {
        errors.push(format!("messages must have 1 to 100 entries (got {})", messages.len()));
    }
    for (i, m) in messages.iter().enumerate() {
        let to = m["to"].as_str().unwrap_or_default();
        if to.is_empty() || to.len() > 25 || !to.chars().all(|c| c.is_ascii_digit()) {
            errors.push("The receiver(to) must be numeric and cannot exceed 25 characters.".into());
        }
        let content = m["content"].as_str().unwrap_or_default();
        if content.chars().count() > 1000 {
            errors.push(format!("messages[{i}].content is over 1000 characters"));
        }
        if let Some((text, _)) = &template
            && !fills_template(text, content)
        {
            errors.push(format!("messages[{i}].content does not match template {code}"));
        }
        if m["buttons"].as_array().is_some_and(|b| b.len() > 5) {
            errors.push(format!("messages[{i}].buttons: at most 5"));
        }
        if m["useSmsFailover"].as_bool() == Some(true) {
            let f = &m["failoverConfig"];
            let kind = f["type"].as_str().unwrap_or("SMS");
            if f["from"].as_str() != Some(SENS_FROM) {
                errors.push(format!(
                    "messages[{i}].failoverConfig.from is not a registered calling number"
                ));
            }
            match euc_kr_bytes(f["content"].as_str().unwrap_or_default()) {
                None => errors.push(format!(
                    "messages[{i}].failoverConfig.content cannot be encoded in EUC-KR"
                )),
                Some(0) => errors.push(format!("messages[{i}].failoverConfig.content is required")),
                Some(n) if kind == "SMS" && n > 90 => {
                    errors.push(format!("failover SMS content is {n} bytes; the limit is 90"))
                }
                Some(n) if n > 2000 => errors.push(format!("failover content is {n} bytes; the limit is 2000")),
                _ => {}
            }
            if f.get("subject").is_some() && kind != "LMS" {
                errors.push("failoverConfig.subject is for LMS only".into());
            }
        }
    }
    if !errors.is_empty() {
        return sens_validation(errors);
    }
    let request_id = format!("VORSSA-{}", uuid::Uuid::new_v4().simple());
    let mut answers = Vec::new();
    for m in &messages {
        let to = m["to"].as_str().unwrap().to_string();
        let content = m["content"].as_str().unwrap().to_string();
        if state.refuse.lock().unwrap().contains(&to) {
            // An example code: SENS's list of requestStatusCode values is not published in the
            // pages PROTOCOLS.md cites; allim keeps whatever code and text come.
            answers.push(json!({"to": to, "countryCode": "82", "content": content,
                "requestStatusCode": "E105", "requestStatusName": "fail",
                "requestStatusDesc": "수신 번호가 유효하지 않습니다", "useSmsFailover": false}));
            continue;
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let use_failover = m["useSmsFailover"].as_bool() == Some(true);
        let no_kakao = state.no_kakao.lock().unwrap().contains(&to);
        let mut result = json!({"requestId": request_id, "messageId": message_id,
            "requestTime": "2026-11-23 10:00:00", "completeTime": "2026-11-23 10:00:03",
            "plusFriendId": ALIMTALK_CHANNEL_ID, "templateCode": code, "countryCode": "82", "to": to,
            "content": content, "requestStatusCode": "A000", "requestStatusName": "success",
            "requestStatusDesc": "성공", "useSmsFailover": use_failover});
        if no_kakao {
            result["messageStatusCode"] = json!("3019");
            result["messageStatusName"] = json!("fail");
            result["messageStatusDesc"] = json!("카카오톡 미사용자");
            if use_failover {
                let f = &m["failoverConfig"];
                let kind = f["type"].as_str().unwrap_or("SMS").to_string();
                let text = f["content"].as_str().unwrap_or_default().to_string();
                state.failover_sms.lock().unwrap().push((to.clone(), kind, text));
                result["failover"] = json!({"smsServiceId": SENS_SERVICE_ID, "requestId": format!("VORSSA-{}", uuid::Uuid::new_v4().simple()),
                    "requestStatusCode": "202", "requestStatusName": "success", "messageId": uuid::Uuid::new_v4().to_string(),
                    "messageStatus": "COMPLETED", "messageStatusCode": "0", "messageStatusName": "success", "messageStatusDesc": "성공"});
            }
        } else {
            result["messageStatusCode"] = json!("0000");
            result["messageStatusName"] = json!("success");
            result["messageStatusDesc"] = json!("수신 완료");
        }
        state.sent.lock().unwrap().insert(
            message_id.clone(),
            Sent {
                request_id: request_id.clone(),
                to: to.clone(),
                kind: "alimtalk",
                result,
                looks: 0,
            },
        );
        state.alimtalk.lock().unwrap().push(AlimTalkMessage {
            template_code: code.clone(),
            to: to.clone(),
            content: content.clone(),
            buttons: m["buttons"].clone(),
            use_sms_failover: use_failover,
            failover_config: m["failoverConfig"].clone(),
        });
        answers.push(
            json!({"messageId": message_id, "to": to, "countryCode": "82", "content": content,
            "requestStatusCode": "A000", "requestStatusName": "success", "requestStatusDesc": "성공",
            "useSmsFailover": use_failover}),
        );
    }
    json_response(
        202,
        json!({"requestId": request_id, "requestTime": "2026-11-23T10:00:00.000", "statusCode": "202",
               "statusName": "success", "messages": answers}),
    )
}

/// `GET …/messages?requestId=…`: the request's messages (SMS and AlimTalk lists, §8.5 / §9).
async fn sens_list(State(state): State<Arc<SensState>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(r) = sens_auth(&state, "GET", &uri, &headers) {
        return r;
    }
    let Some(request_id) = query(&uri).remove("requestId") else {
        return sens_validation(vec!["requestId is required".into()]);
    };
    let kind = if uri.path().starts_with("/sms/") {
        "sms"
    } else {
        "alimtalk"
    };
    let sent = state.sent.lock().unwrap();
    let messages: Vec<Value> = sent
        .iter()
        .filter(|(_, s)| s.request_id == request_id && s.kind == kind)
        .map(|(id, s)| {
            json!({"messageId": id, "requestTime": "2026-11-23 10:00:00", "contentType": "COMM",
                              "countryCode": "82", "from": SENS_FROM, "to": s.to})
        })
        .collect();
    if messages.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    json_response(
        200,
        json!({"requestId": request_id, "statusCode": "202", "statusName": "success", "messages": messages}),
    )
}

/// `GET …/messages/{messageId}`: the first look says "processing", later ones the final state.
async fn sens_result(
    State(state): State<Arc<SensState>>,
    Path((_, id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = sens_auth(&state, "GET", &uri, &headers) {
        return r;
    }
    let kind = if uri.path().starts_with("/sms/") {
        "sms"
    } else {
        "alimtalk"
    };
    let mut sent = state.sent.lock().unwrap();
    let Some(s) = sent.get_mut(&id).filter(|s| s.kind == kind) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    s.looks += 1;
    let first = s.looks == 1;
    match kind {
        "sms" => {
            let mut m = s.result.clone();
            if first {
                m = json!({"to": s.to, "status": "PROCESSING", "statusName": "processing"});
            }
            json_response(
                200,
                json!({"statusCode": "200", "statusName": "success", "messages": [m]}),
            )
        }
        _ => {
            let mut m = s.result.clone();
            if first && let Some(o) = m.as_object_mut() {
                for k in ["messageStatusCode", "messageStatusDesc", "completeTime", "failover"] {
                    o.remove(k);
                }
                o.insert("messageStatusName".into(), json!("processing"));
            }
            json_response(200, m)
        }
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
    let received = std::time::Instant::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // Authentication first, exactly as the gateway does.
    if let Some(r) = sens_auth(&state, "POST", &uri, &headers) {
        return r;
    }
    if service != SENS_SERVICE_ID {
        return not_found();
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
    let request_id = format!("VORSSA-{}", uuid::Uuid::new_v4().simple());
    {
        let unreachable = state.unreachable.lock().unwrap();
        let mut sent = state.sent.lock().unwrap();
        for t in &to {
            let result = if unreachable.contains(t) {
                json!({"to": t, "status": "COMPLETED", "statusCode": "3018", "statusName": "fail",
                       "statusMessage": "결번", "completeTime": "2026-11-23 10:00:04", "telcoCode": "SKT"})
            } else {
                json!({"to": t, "status": "COMPLETED", "statusCode": "0", "statusName": "success",
                       "statusMessage": "성공", "completeTime": "2026-11-23 10:00:04", "telcoCode": "SKT"})
            };
            sent.insert(
                uuid::Uuid::new_v4().to_string(),
                Sent {
                    request_id: request_id.clone(),
                    to: t.clone(),
                    kind: "sms",
                    result,
                    looks: 0,
                },
            );
        }
    }
    state.accepted.lock().unwrap().push(SensRequest {
        kind,
        subject,
        content,
        to,
        received,
        answered: std::time::Instant::now(),
    });
    json_response(
        202,
        json!({"requestId": request_id, "requestTime": "2026-11-22T10:00:00.000",
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
