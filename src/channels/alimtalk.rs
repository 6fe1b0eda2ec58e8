//! KakaoTalk AlimTalk through Naver Cloud SENS Biz Message (PROTOCOLS.md §8), with SMS failover.
//!
//! An AlimTalk is an approved template with its `#{placeholders}` filled in. allim fetches the
//! template from SENS's template API (signed like every SENS call, the query string included,
//! §8.3), caches it, and at accept time refuses a message whose `variables` do not fill the
//! placeholders exactly, whose pre-rendered `content` does not match the template, or whose
//! text is over Kakao's 1,000 characters. When the template cannot be fetched at accept time
//! (SENS unreachable) the message is accepted and the send checks again.
//!
//! Sending: `POST /alimtalk/v2/services/{serviceId}/messages`, 100 recipients per request; a
//! request SENS accepted is recorded, so a retry sends only the rest. Each message carries
//! `useSmsFailover` and a `failoverConfig` (SMS or LMS by the EUC-KR length, from SENS's
//! calling number), so a recipient without KakaoTalk gets the text by SMS. SENS answers 202
//! with a `requestStatusCode` per message: `A000` is accepted, anything else refuses that
//! recipient only (final, recorded with its reason). 429 / 5xx / timeouts retry; 401 / 403
//! pause the lane. Final results (delivered, failed, what the failover did) are looked up later
//! ([`super::sens::results`]). The SENS keys and base URL are SMS's; this channel has its own
//! Biz Message service id and KakaoTalk channel id.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::http::{Limiter, check_rate, limiter, outcome_of_status, read_answer, truncate};
use super::sens::korean::{LMS_BYTES_MAX, LMS_SUBJECT_BYTES_MAX, check_euc_kr, euc_kr_len, normalize_numbers};
use super::sens::results::{self, Looked, pct, sens_time, text};
use super::sens::{SensConfig, error_text, message_type};
use super::{Channel, Deps, Job, Kind, Notification, SendOutcome, progress, record_part};
use crate::clock::{Clock, duration_ms};
use crate::contract::{ContractError, check_text};
use crate::settings::parse_duration;
use crate::store::{FinalResult, SentRecipient, Store};
use crate::telemetry::mask;

/// SENS takes at most this many messages per request.
pub const RECIPIENTS_PER_REQUEST: usize = 100;
/// Recipients of one notification, at most.
pub const RECIPIENTS_MAX: usize = 1000;
/// Kakao's limit on an AlimTalk's text, in characters.
pub const CONTENT_CHARS_MAX: usize = 1000;
/// Buttons per message (Kakao's rule).
pub const BUTTONS_MAX: usize = 5;
/// Variables per message, at most.
pub const VARIABLES_MAX: usize = 50;
/// Templates kept in the cache, at most.
const CACHE_MAX: usize = 1000;
/// How long "no such template" is remembered (a template may be approved meanwhile).
const MISSING_TTL: Duration = Duration::from_secs(60);

/// `ALIMTALK`: a KakaoTalk AlimTalk from an approved template, with SMS failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlimTalk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// The approved template's code.
    #[schema(example = "ORDER_SHIPPED")]
    pub template_code: String,
    /// Korean mobile numbers, as for `SMS`; 1 to 1000, duplicates removed.
    #[schema(example = json!(["01012345678"]))]
    pub to: Vec<String>,
    /// Values for the template's `#{name}` placeholders: exactly one per placeholder. Give
    /// either `variables` or `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"name": "홍길동", "orderNo": "1042"}))]
    pub variables: Option<BTreeMap<String, String>>,
    /// The template's text already filled in (must match the template); ≤ 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Buttons, as registered with the template (≤ 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// The SMS / LMS sent to a recipient who cannot get the AlimTalk (no KakaoTalk, blocked).
    /// Default: the AlimTalk's text, as SMS up to 90 EUC-KR bytes, else LMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Failover>,
}

/// An AlimTalk button (`DS` delivery tracking, `WL` web link, `AL` app link, `BK` bot keyword,
/// `MD` message delivery, `AC` add channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Button {
    #[serde(rename = "type")]
    #[schema(example = "WL")]
    pub kind: String,
    #[schema(example = "배송 조회")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_pc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_ios: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_android: Option<String>,
}

/// The failover SMS's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failover {
    /// ≤ 2000 EUC-KR bytes (no emoji); over 90 bytes goes as LMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// LMS subject, ≤ 40 EUC-KR bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

const BUTTON_TYPES: [&str; 6] = ["DS", "WL", "AL", "BK", "MD", "AC"];

impl Kind for AlimTalk {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        check_text("templateCode", &self.template_code, 1, 64, false)?;
        if self.template_code.chars().any(char::is_whitespace) {
            return Err(ContractError::field("templateCode", "must not contain spaces"));
        }
        normalize_numbers(&mut self.to, RECIPIENTS_MAX)?;
        match (&self.variables, &self.content) {
            (Some(_), Some(_)) => {
                return Err(ContractError::field(
                    "content",
                    "give either variables or content, not both",
                ));
            }
            (None, None) => {
                return Err(ContractError::field(
                    "variables",
                    "is required (the template's placeholders), unless content is given",
                ));
            }
            (Some(vars), None) => {
                if vars.len() > VARIABLES_MAX {
                    return Err(ContractError::field(
                        "variables",
                        format!("must have at most {VARIABLES_MAX} entries"),
                    ));
                }
                for (name, value) in vars {
                    check_text(&format!("variables.{name}"), name, 1, 50, false)?;
                    check_text(&format!("variables.{name}"), value, 0, CONTENT_CHARS_MAX, true)?;
                }
            }
            (None, Some(content)) => check_text("content", content, 1, CONTENT_CHARS_MAX, true)?,
        }
        if self.buttons.len() > BUTTONS_MAX {
            return Err(ContractError::field(
                "buttons",
                format!("must have at most {BUTTONS_MAX} buttons"),
            ));
        }
        for (i, b) in self.buttons.iter().enumerate() {
            let field = |f: &str| format!("buttons[{i}].{f}");
            if !BUTTON_TYPES.contains(&b.kind.as_str()) {
                return Err(ContractError::field(
                    field("type"),
                    format!("must be one of {}", BUTTON_TYPES.join(", ")),
                ));
            }
            check_text(&field("name"), &b.name, 1, 28, false)?;
            for (f, v) in [
                ("linkMobile", &b.link_mobile),
                ("linkPc", &b.link_pc),
                ("schemeIos", &b.scheme_ios),
                ("schemeAndroid", &b.scheme_android),
            ] {
                if let Some(v) = v {
                    check_text(&field(f), v, 1, 500, false)?;
                }
            }
            if b.kind == "WL" && b.link_mobile.is_none() {
                return Err(ContractError::field(
                    field("linkMobile"),
                    "is required for a WL (web link) button",
                ));
            }
            if b.kind == "AL" && b.scheme_ios.is_none() && b.scheme_android.is_none() && b.link_mobile.is_none() {
                return Err(ContractError::field(
                    field("schemeAndroid"),
                    "an AL (app link) button needs schemeIos, schemeAndroid or linkMobile",
                ));
            }
        }
        if let Some(f) = &self.failover {
            if let Some(content) = &f.content {
                check_text("failover.content", content, 1, LMS_BYTES_MAX, true)?;
                check_euc_kr("failover.content", content, LMS_BYTES_MAX, " (LMS)")?;
            }
            if let Some(subject) = &f.subject {
                check_text("failover.subject", subject, 1, LMS_SUBJECT_BYTES_MAX, false)?;
                check_euc_kr("failover.subject", subject, LMS_SUBJECT_BYTES_MAX, "")?;
            }
        }
        Ok(())
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        let sens = SensConfig::from_settings(&deps.settings.sens);
        let account = match (&settings.alimtalk_service_id, &settings.alimtalk_channel_id) {
            (Some(service_id), Some(channel_id)) => {
                let Some(sens) = sens else {
                    anyhow::bail!(
                        "ALLIM_ALIMTALK_SERVICE_ID needs the SENS keys (ALLIM_SENS_ACCESS_KEY, ALLIM_SENS_SECRET_KEY, \
                         ALLIM_SENS_SERVICE_ID, ALLIM_SENS_FROM): AlimTalk signs with them and fails over to SMS"
                    );
                };
                Some(Account {
                    sens,
                    service_id: service_id.clone(),
                    channel_id: channel_id.clone(),
                })
            }
            _ => None,
        };
        Ok(Arc::new(AlimTalkSender {
            http: deps.http.clone(),
            account,
            failover: settings.alimtalk_sms_failover,
            template_ttl: settings.alimtalk_template_ttl,
            templates: Mutex::new(HashMap::new()),
            limiter: limiter(settings.alimtalk_rate_per_sec),
            store: deps.store.clone(),
            clock: deps.clock.clone(),
        }))
    }
}

/// AlimTalk's settings (the SENS keys, base URL and calling number are SMS's).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// SENS Biz Message service id, e.g. `ncp:kkobizmsg:kr:123456789012:myproject`. With the
    /// channel id and the SENS keys, AlimTalk is sent; without, it is a dry run (logged only).
    #[arg(long, env = "ALLIM_ALIMTALK_SERVICE_ID", global = true)]
    pub alimtalk_service_id: Option<String>,

    /// The KakaoTalk channel id (`plusFriendId`), e.g. `@mystore`.
    #[arg(long, env = "ALLIM_ALIMTALK_CHANNEL_ID", global = true)]
    pub alimtalk_channel_id: Option<String>,

    /// Send the text by SMS / LMS to a recipient who cannot get the AlimTalk.
    #[arg(long, env = "ALLIM_ALIMTALK_SMS_FAILOVER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub alimtalk_sms_failover: bool,

    /// How long a fetched template is trusted before it is fetched again.
    #[arg(long, env = "ALLIM_ALIMTALK_TEMPLATE_TTL", default_value = "10m", value_parser = parse_duration, global = true)]
    pub alimtalk_template_ttl: Duration,

    /// Most AlimTalk requests per second.
    #[arg(long, env = "ALLIM_ALIMTALK_RATE_PER_SEC", default_value_t = 20.0, global = true)]
    pub alimtalk_rate_per_sec: f64,
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        if self.alimtalk_service_id.is_some() != self.alimtalk_channel_id.is_some() {
            anyhow::bail!(
                "AlimTalk needs both ALLIM_ALIMTALK_SERVICE_ID and ALLIM_ALIMTALK_CHANNEL_ID (or neither, for dry-run)"
            );
        }
        if let Some(channel) = &self.alimtalk_channel_id
            && (channel.is_empty() || channel.len() > 64 || channel.chars().any(char::is_whitespace))
        {
            anyhow::bail!("ALLIM_ALIMTALK_CHANNEL_ID must be the KakaoTalk channel id, e.g. @mystore");
        }
        if self.alimtalk_template_ttl > Duration::from_secs(24 * 3600) {
            anyhow::bail!("ALLIM_ALIMTALK_TEMPLATE_TTL must be at most 24h");
        }
        check_rate("ALLIM_ALIMTALK_RATE_PER_SEC", self.alimtalk_rate_per_sec)
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.alimtalk_rate_per_sec)
    }

    fn mode(&self) -> &'static str {
        if self.alimtalk_service_id.is_some() {
            "sens"
        } else {
            "dry-run"
        }
    }
}

/// Where AlimTalk is sent.
#[derive(Debug, Clone)]
struct Account {
    sens: SensConfig,
    service_id: String,
    channel_id: String,
}

impl Account {
    fn service_path(&self) -> String {
        format!("/alimtalk/v2/services/{}", self.service_id)
    }
}

/// An approved template, as SENS lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub code: String,
    pub content: String,
    /// `templateInspectionStatus` (`APR` approved, `REG`, `REQ`, `REJ`), when SENS gives it.
    pub inspection: Option<String>,
}

/// Why a template could not be had.
#[derive(Debug)]
enum Fetch {
    /// SENS has no such template on this channel.
    Missing,
    /// SENS refused the keys.
    Credentials(String),
    /// Unreachable, 5xx, unreadable: try later.
    Transient(String),
}

pub struct AlimTalkSender {
    http: reqwest::Client,
    account: Option<Account>,
    failover: bool,
    template_ttl: Duration,
    /// template code → (fetched at (ms), the template or `None` for "no such template").
    templates: Mutex<HashMap<String, (i64, Option<Template>)>>,
    limiter: Limiter,
    store: Store,
    clock: Clock,
}

/// The `#{name}` placeholders of a template's text, each once, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !out.contains(&name) {
            out.push(name);
        }
        rest = &after[end + 1..];
    }
    out
}

/// The template's text with its placeholders filled in; an error names a placeholder without a
/// value or a variable the template does not have.
pub fn render(template: &Template, vars: &BTreeMap<String, String>) -> Result<String, ContractError> {
    let names = placeholders(&template.content);
    let listed = || {
        if names.is_empty() {
            "it has none".to_string()
        } else {
            format!(
                "its placeholders: {}",
                names.iter().map(|n| format!("#{{{n}}}")).collect::<Vec<_>>().join(", ")
            )
        }
    };
    if let Some(unknown) = vars.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(ContractError::field(
            format!("variables.{unknown}"),
            format!("is not a placeholder of template {} ({})", template.code, listed()),
        ));
    }
    if let Some(missing) = names.iter().find(|n| !vars.contains_key(**n)) {
        return Err(ContractError::field(
            "variables",
            format!(
                "has no value for #{{{missing}}} of template {} ({})",
                template.code,
                listed()
            ),
        ));
    }
    let mut out = template.content.clone();
    for (name, value) in vars {
        out = out.replace(&format!("#{{{name}}}"), value);
    }
    Ok(out)
}

/// Whether `content` is the template with some text in place of each placeholder.
pub fn matches_template(template: &str, content: &str) -> bool {
    // The template's literal pieces between placeholders, matched in order (a glob match:
    // leftmost for the middle pieces, anchored for the first and the last).
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("#{") {
        let Some(end) = rest[start..].find('}') else { break };
        pieces.push(&rest[..start]);
        rest = &rest[start + end + 1..];
    }
    pieces.push(rest);
    if pieces.len() == 1 {
        return template == content;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    let Some(mut body) = content.strip_prefix(first) else {
        return false;
    };
    for piece in &pieces[1..pieces.len() - 1] {
        match body.find(piece) {
            Some(i) => body = &body[i + piece.len()..],
            None => return false,
        }
    }
    body.ends_with(last)
}

/// A template from SENS's list: a bare array or `{"templates": [...]}` (both seen, §8.4).
pub fn find_template(body: &Value, code: &str) -> Option<Template> {
    let list = body
        .as_array()
        .or_else(|| body.get("templates").and_then(Value::as_array))?;
    list.iter()
        .find(|t| t.get("templateCode").and_then(Value::as_str) == Some(code))
        .and_then(|t| {
            Some(Template {
                code: code.to_string(),
                content: t.get("content")?.as_str()?.to_string(),
                inspection: text(t, "templateInspectionStatus"),
            })
        })
}

impl AlimTalkSender {
    /// The template, from the cache or SENS.
    async fn template(&self, account: &Account, code: &str) -> Result<Template, Fetch> {
        let now = self.clock.now_ms();
        if let Some((at, cached)) = self.templates.lock().expect("template cache").get(code).cloned() {
            let ttl = if cached.is_some() {
                self.template_ttl
            } else {
                MISSING_TTL
            };
            if now - at < duration_ms(ttl) {
                return cached.ok_or(Fetch::Missing);
            }
        }
        let path = format!(
            "{}/templates?channelId={}&templateCode={}",
            account.service_path(),
            pct(&account.channel_id),
            pct(code)
        );
        let res = account
            .sens
            .signed(&self.http, reqwest::Method::GET, &path, now)
            .send()
            .await;
        let (status, _, body) = match read_answer("SENS", res).await {
            Ok(answer) => answer,
            Err(outcome) => return Err(Fetch::Transient(format!("{outcome:?}"))),
        };
        let found = match status.as_u16() {
            200..=299 => match serde_json::from_str::<Value>(&body) {
                Ok(v) => find_template(&v, code),
                Err(e) => return Err(Fetch::Transient(format!("SENS template list is not JSON: {e}"))),
            },
            404 => None,
            401 | 403 => {
                return Err(Fetch::Credentials(format!(
                    "SENS {} on the template look-up: {}",
                    status.as_u16(),
                    error_text(&body)
                )));
            }
            other => {
                return Err(Fetch::Transient(format!(
                    "SENS {other} on the template look-up: {}",
                    error_text(&body)
                )));
            }
        };
        let mut cache = self.templates.lock().expect("template cache");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(code.to_string(), (now, found.clone()));
        found.ok_or(Fetch::Missing)
    }

    /// The text to send, checked against the template.
    fn checked_text(&self, account: &Account, t: &Template, n: &AlimTalk) -> Result<String, ContractError> {
        if let Some(status) = &t.inspection
            && status != "APR"
        {
            return Err(ContractError::field(
                "templateCode",
                format!(
                    "template {} is not approved for sending (inspection status {status})",
                    t.code
                ),
            ));
        }
        let text = match (&n.variables, &n.content) {
            (Some(vars), _) => render(t, vars)?,
            (None, Some(content)) => {
                if !matches_template(&t.content, content) {
                    return Err(ContractError::field(
                        "content",
                        format!("does not match template {} on channel {}", t.code, account.channel_id),
                    ));
                }
                content.clone()
            }
            (None, None) => return Err(ContractError::field("variables", "is required")),
        };
        let chars = text.chars().count();
        if chars > CONTENT_CHARS_MAX {
            return Err(ContractError::field(
                if n.variables.is_some() { "variables" } else { "content" },
                format!("the rendered text is {chars} characters; KakaoTalk allows {CONTENT_CHARS_MAX}"),
            ));
        }
        if self.failover && n.failover.as_ref().and_then(|f| f.content.as_ref()).is_none() {
            match euc_kr_len("failover.content", &text) {
                Ok(bytes) if bytes <= LMS_BYTES_MAX => {}
                Ok(bytes) => {
                    return Err(ContractError::field(
                        "failover.content",
                        format!(
                            "is required: the text is {bytes} EUC-KR bytes, over the failover LMS's {LMS_BYTES_MAX}"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(ContractError::field(
                        "failover.content",
                        format!("is required: the text cannot be the failover SMS ({e})"),
                    ));
                }
            }
        }
        Ok(text)
    }

    async fn check(&self, n: &AlimTalk) -> Result<(), ContractError> {
        let Some(account) = &self.account else {
            return Ok(());
        };
        match self.template(account, &n.template_code).await {
            Ok(t) => self.checked_text(account, &t, n).map(|_| ()),
            Err(Fetch::Missing) => Err(ContractError::field(
                "templateCode",
                format!(
                    "SENS has no template {} on channel {}",
                    n.template_code, account.channel_id
                ),
            )),
            Err(Fetch::Credentials(e) | Fetch::Transient(e)) => {
                tracing::warn!(template = %n.template_code, error = %e,
                    "could not fetch the AlimTalk template at accept time; accepted, the send checks it");
                Ok(())
            }
        }
    }

    async fn send_alimtalk(&self, job: &Job) -> SendOutcome {
        let Notification::AlimTalk(n) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let Some(account) = &self.account else {
            let to: Vec<String> = n.to.iter().map(|x| mask(x)).collect();
            tracing::info!(delivery = %job.delivery_id, template = %n.template_code, ?to,
                "alimtalk dry run (no AlimTalk service configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        };
        let template = match self.template(account, &n.template_code).await {
            Ok(t) => t,
            Err(Fetch::Missing) => {
                return SendOutcome::Permanent {
                    error: format!(
                        "SENS has no template {} on channel {}",
                        n.template_code, account.channel_id
                    ),
                };
            }
            Err(Fetch::Credentials(error)) => return SendOutcome::Credentials { error },
            Err(Fetch::Transient(error)) => return SendOutcome::Retry { error, after: None },
        };
        let text = match self.checked_text(account, &template, n) {
            Ok(text) => text,
            Err(e) => return SendOutcome::Permanent { error: e.to_string() },
        };
        let failover = self.failover.then(|| {
            let content = n
                .failover
                .as_ref()
                .and_then(|f| f.content.clone())
                .unwrap_or_else(|| text.clone());
            let subject = n.failover.as_ref().and_then(|f| f.subject.clone());
            FailoverConfig {
                kind: message_type(&content, subject.as_deref()),
                from: account.sens.from.clone(),
                subject,
                content,
            }
        });
        let done = match progress(&self.store, &job.delivery_id).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        let path = format!("{}/messages", account.service_path());
        let mut accepted = done.len();
        let mut refused: Vec<String> = Vec::new();
        for (i, chunk) in n.to.chunks(RECIPIENTS_PER_REQUEST).enumerate() {
            let part = format!("alimtalk:{i}");
            if done.contains(&part) {
                continue;
            }
            let body = SendRequest {
                plus_friend_id: &account.channel_id,
                template_code: &n.template_code,
                messages: chunk
                    .iter()
                    .map(|to| Message {
                        country_code: "82",
                        to,
                        content: &text,
                        buttons: &n.buttons,
                        use_sms_failover: failover.is_some(),
                        failover_config: failover.as_ref(),
                    })
                    .collect(),
            };
            self.limiter.until_ready().await;
            if !job.still_ours().await {
                return SendOutcome::LeaseLost;
            }
            let res = account
                .sens
                .post_json(&self.http, &path, &body, self.clock.now_ms())
                .send()
                .await;
            let (status, after, answer) = match read_answer("SENS", res).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            if !status.is_success() {
                return outcome_of_status("SENS", status, &error_text(&answer), after);
            }
            // Recorded before anything else, so that no retry sends this chunk again.
            record_part(&self.store, &self.clock, &job.delivery_id, &part).await;
            let (ok, failed) = self.record_answer(account, job, chunk, &answer).await;
            tracing::info!(delivery = %job.delivery_id, template = %n.template_code, chunk = i,
                accepted = ok, refused = failed.len(), "alimtalk request accepted by SENS");
            accepted += ok;
            refused.extend(failed);
        }
        if accepted == 0 && !refused.is_empty() {
            return SendOutcome::Permanent {
                error: format!("SENS refused every recipient: {}", refused.join("; ")),
            };
        }
        SendOutcome::Delivered { dry_run: false }
    }

    /// Reads SENS's per-message answer: recipients accepted (`A000`) are recorded for the
    /// result look-ups, the others as failed with SENS's reason. (accepted, refusal texts).
    async fn record_answer(
        &self,
        account: &Account,
        job: &Job,
        chunk: &[String],
        answer: &str,
    ) -> (usize, Vec<String>) {
        let v: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
        let request_id = text(&v, "requestId").unwrap_or_default();
        let now = self.clock.now_ms();
        let first_look = now + duration_ms(account.sens.results_after);
        let listed: Vec<&Value> = v
            .get("messages")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let mut sent = Vec::new();
        let mut refused = Vec::new();
        for to in chunk {
            let m = listed.iter().find(|m| text(m, "to").as_deref() == Some(to.as_str()));
            let code = m.and_then(|m| text(m, "requestStatusCode"));
            match code.as_deref() {
                // Listed and accepted, or not listed (SENS took the request; the look-up tells).
                Some("A000") | None => sent.push(SentRecipient {
                    delivery_id: job.delivery_id.clone(),
                    recipient: to.clone(),
                    request_id: request_id.clone(),
                    message_id: m.and_then(|m| text(m, "messageId")),
                    next_check_at: first_look,
                }),
                Some(code) => {
                    let m = m.expect("a code comes from a listed message");
                    let reason = text(m, "requestStatusDesc")
                        .or_else(|| text(m, "requestStatusName"))
                        .unwrap_or_else(|| "refused".into());
                    refused.push(format!("{} {code} {reason}", mask(to)));
                    let result = FinalResult {
                        status: "failed",
                        code: Some(code.to_string()),
                        reason: Some(truncate(&reason, 300)),
                        ..FinalResult::default()
                    };
                    if let Err(e) = self
                        .store
                        .record_refused(self.name(), &job.delivery_id, to, &request_id, &result, now)
                        .await
                    {
                        tracing::warn!(delivery = %job.delivery_id, error = %e, "could not record a refused recipient");
                    }
                }
            }
        }
        results::record(&self.store, self.name(), &sent, now).await;
        (sent.len(), refused)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendRequest<'a> {
    plus_friend_id: &'a str,
    template_code: &'a str,
    messages: Vec<Message<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    country_code: &'a str,
    to: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "<[Button]>::is_empty")]
    buttons: &'a [Button],
    use_sms_failover: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    failover_config: Option<&'a FailoverConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailoverConfig {
    #[serde(rename = "type")]
    kind: &'static str,
    from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    content: String,
}

/// An AlimTalk message's state (§8.5): `messageStatusName` `success|processing|fail` (code
/// `0000` delivered); a failed one may carry what the SMS failover did, under a key starting
/// with `failover` (its name is UNVERIFIED, so any such object is read).
pub fn alimtalk_result(v: &Value) -> Looked {
    let m = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .unwrap_or(v);
    let name = text(m, "messageStatusName").unwrap_or_default().to_ascii_lowercase();
    let code = text(m, "messageStatusCode");
    let delivered = code.as_deref() == Some("0000") || name == "success";
    if !delivered && name != "fail" {
        return Looked::Pending;
    }
    let completed_at = text(m, "completeTime").and_then(|t| sens_time(&t));
    if delivered {
        return Looked::Final(FinalResult {
            status: "delivered",
            code,
            completed_at,
            ..FinalResult::default()
        });
    }
    let reason = text(m, "messageStatusDesc").unwrap_or_else(|| "KakaoTalk did not deliver it".into());
    let failover = m
        .as_object()
        .into_iter()
        .flatten()
        .find(|(k, v)| k.starts_with("failover") && v.is_object())
        .map(|(_, v)| v);
    let used = m.get("useSmsFailover").and_then(Value::as_bool).unwrap_or(false);
    let (status, failover) = match failover {
        Some(f) => {
            let fname = text(f, "messageStatusName")
                .or_else(|| text(f, "messageStatus"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let fcode = text(f, "messageStatusCode");
            match fname.as_str() {
                "success" | "completed" if fcode.as_deref().is_none_or(|c| c == "0" || c == "0000") => {
                    ("delivered", "SMS failover delivered".to_string())
                }
                "fail" | "failed" | "completed" => {
                    let why = text(f, "messageStatusDesc").unwrap_or_default();
                    (
                        "failed",
                        truncate(
                            format!("SMS failover failed: {} {why}", fcode.unwrap_or_default()).trim(),
                            300,
                        ),
                    )
                }
                _ => return Looked::Pending,
            }
        }
        None if used => (
            "failed",
            "SMS failover requested; SENS reported no result for it".to_string(),
        ),
        None => ("failed", "no SMS failover".to_string()),
    };
    Looked::Final(FinalResult {
        status,
        code,
        reason: Some(truncate(&reason, 300)),
        failover: Some(failover),
        completed_at,
    })
}

impl Channel for AlimTalkSender {
    fn name(&self) -> &'static str {
        "alimtalk"
    }

    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome> {
        Box::pin(self.send_alimtalk(job))
    }

    fn admit<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, Result<(), ContractError>> {
        Box::pin(async move {
            match notification {
                Notification::AlimTalk(n) => self.check(n).await,
                _ => Ok(()),
            }
        })
    }

    fn check_results(&self) -> BoxFuture<'_, anyhow::Result<Vec<&'static str>>> {
        Box::pin(async move {
            let Some(account) = &self.account else {
                return Ok(Vec::new());
            };
            results::Lookup {
                http: &self.http,
                config: &account.sens,
                store: &self.store,
                clock: &self.clock,
                channel: self.name(),
                service_path: account.service_path(),
                parse: alimtalk_result,
            }
            .run()
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(content: &str) -> Template {
        Template {
            code: "ORDER_SHIPPED".into(),
            content: content.into(),
            inspection: Some("APR".into()),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn placeholders_are_found_once_each() {
        assert_eq!(
            placeholders("#{고객명}님, 주문 #{orderNo} 발송. #{고객명}님 감사합니다"),
            ["고객명", "orderNo"]
        );
        assert!(placeholders("no placeholders").is_empty());
    }

    #[test]
    fn rendering_names_the_typo() {
        let t = template("#{name}님, 주문 #{orderNo}이(가) 발송되었습니다.");
        assert_eq!(
            render(&t, &vars(&[("name", "홍길동"), ("orderNo", "1042")])).unwrap(),
            "홍길동님, 주문 1042이(가) 발송되었습니다."
        );
        let e = render(&t, &vars(&[("name", "홍길동"), ("orderNum", "1042")])).unwrap_err();
        assert_eq!(e.field_name(), Some("variables.orderNum"));
        assert!(e.to_string().contains("#{orderNo}"), "{e}");
        let e = render(&t, &vars(&[("name", "홍길동")])).unwrap_err();
        assert!(e.to_string().contains("no value for #{orderNo}"), "{e}");
    }

    #[test]
    fn content_must_match_the_template() {
        let t = "#{name}님, 주문 #{orderNo}이(가) 발송되었습니다.";
        assert!(matches_template(t, "홍길동님, 주문 1042이(가) 발송되었습니다."));
        assert!(!matches_template(t, "홍길동님, 주문 1042이(가) 취소되었습니다."));
        assert!(!matches_template(
            t,
            "광고: 홍길동님, 주문 1042이(가) 발송되었습니다. 더 보기"
        ));
        assert!(matches_template("고정 문구", "고정 문구"));
        assert!(!matches_template("고정 문구", "고정 문구!"));
    }

    #[test]
    fn template_lists_in_both_shapes() {
        let one = json!({"templateCode": "T1", "content": "안녕 #{a}", "templateInspectionStatus": "APR"});
        let bare = json!([one.clone()]);
        let wrapped = json!({"templates": [one]});
        for body in [bare, wrapped] {
            let t = find_template(&body, "T1").unwrap();
            assert_eq!(
                (t.content.as_str(), t.inspection.as_deref()),
                ("안녕 #{a}", Some("APR"))
            );
            assert!(find_template(&body, "T2").is_none());
        }
    }

    #[test]
    fn alimtalk_states() {
        assert_eq!(
            alimtalk_result(&json!({"messageStatusName": "processing"})),
            Looked::Pending
        );
        let Looked::Final(r) = alimtalk_result(&json!({"messageStatusCode": "0000", "messageStatusName": "success"}))
        else {
            panic!("final")
        };
        assert_eq!(r.status, "delivered");
        let no_kakao = json!({"messageStatusCode": "3019", "messageStatusName": "fail",
            "messageStatusDesc": "카카오톡 미사용자", "useSmsFailover": true,
            "failover": {"messageStatusName": "success", "messageStatusCode": "0"}});
        let Looked::Final(r) = alimtalk_result(&no_kakao) else {
            panic!("final")
        };
        assert_eq!(
            (r.status, r.code.as_deref(), r.failover.as_deref()),
            ("delivered", Some("3019"), Some("SMS failover delivered"))
        );
        let pending_failover = json!({"messageStatusCode": "3019", "messageStatusName": "fail",
            "failover": {"messageStatusName": "processing"}});
        assert_eq!(alimtalk_result(&pending_failover), Looked::Pending);
        let blocked = json!({"messageStatusCode": "3020", "messageStatusName": "fail", "useSmsFailover": false});
        let Looked::Final(r) = alimtalk_result(&blocked) else {
            panic!("final")
        };
        assert_eq!((r.status, r.failover.as_deref()), ("failed", Some("no SMS failover")));
    }
}
