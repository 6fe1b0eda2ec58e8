//! The message contract: the JSON a producer sends on SQS, in `POST /v1/notifications`, or as
//! an SNS `Message`. These types are the single definition: serde reads them, utoipa turns them
//! into the OpenAPI schema, so the docs cannot drift from the parser.
//!
//! Parsing is strict and explains itself. [`parse_notification`] returns either a validated
//! [`Notification`] or a [`ContractError`] that names the field and the problem. Unknown
//! fields are refused (a typo such as `tilte` would otherwise silently drop the title).

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Limits of the contract, in one place so the README and the errors agree.
pub mod limits {
    pub const IDEMPOTENCY_KEY_MAX: usize = 255;
    pub const USER_ID_MAX: usize = 128;
    pub const CATEGORY_MAX: usize = 64;
    pub const TITLE_MAX: usize = 200;
    pub const BODY_MAX: usize = 4000;
    pub const LINK_MAX: usize = 2048;
    pub const DATA_MAX_BYTES: usize = 16 * 1024;
    pub const PUSH_TOKENS_MAX: usize = 500;
    pub const PUSH_TOKEN_MAX: usize = 1024;
    /// FCM's payload limit is 4096 bytes; leave room for the envelope.
    pub const PUSH_PAYLOAD_MAX_BYTES: usize = 3800;
    pub const SMS_RECIPIENTS_MAX: usize = 1000;
    /// SENS: SMS content ≤ 90 EUC-KR bytes, LMS ≤ 2000, subject ≤ 40.
    pub const SMS_BYTES_MAX: usize = 90;
    pub const LMS_BYTES_MAX: usize = 2000;
    pub const LMS_SUBJECT_BYTES_MAX: usize = 40;
    pub const SLACK_TEXT_MAX: usize = 40_000;
    pub const SLACK_CHANNEL_MAX: usize = 64;
}

/// The kind of notification, from the `notificationType` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    AppNotification,
    Push,
    Sms,
    Slack,
}

impl NotificationType {
    pub const ALL: [NotificationType; 4] = [
        NotificationType::AppNotification,
        NotificationType::Push,
        NotificationType::Sms,
        NotificationType::Slack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::AppNotification => "APP_NOTIFICATION",
            NotificationType::Push => "PUSH",
            NotificationType::Sms => "SMS",
            NotificationType::Slack => "SLACK",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A notification, discriminated by `notificationType`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "notificationType")]
pub enum Notification {
    /// A row in the user's in-app inbox.
    #[serde(rename = "APP_NOTIFICATION")]
    AppNotification(AppNotification),
    /// A mobile push notification (FCM) to a user's registered devices or explicit tokens.
    #[serde(rename = "PUSH")]
    Push(Push),
    /// An SMS / LMS through Naver Cloud SENS.
    #[serde(rename = "SMS")]
    Sms(Sms),
    /// A message to a configured Slack incoming webhook.
    #[serde(rename = "SLACK")]
    Slack(Slack),
}

/// `APP_NOTIFICATION`: an inbox row for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "order-1042-shipped")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-22T09:00:00+09:00")]
    pub deliver_at: Option<String>,
    /// The user whose inbox receives it (≤ 128 characters, no spaces).
    #[schema(example = "42")]
    pub user_id: String,
    /// Free-form grouping for the app (≤ 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "order")]
    pub category: Option<String>,
    /// Required, ≤ 200 characters.
    #[schema(example = "Shipped")]
    pub title: String,
    /// ≤ 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Your order is on its way")]
    pub body: Option<String>,
    /// Where the app goes when the row is tapped (≤ 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "app://orders/1042")]
    pub link: Option<String>,
    /// Any JSON object (≤ 16 KiB serialized), handed back to the app as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, example = json!({"orderId": 1042}))]
    pub data: Option<Value>,
}

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

/// `SLACK`: a message to a Slack incoming webhook named in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// Required, ≤ 40000 characters (Slack's mrkdwn).
    #[schema(example = "New order #1042")]
    pub text: String,
    /// The configured webhook name (`[a-z0-9_-]`, ≤ 64); absent: the `default` webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "sales")]
    pub channel: Option<String>,
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's JSON path, e.g. `title`, `to[2]`, `data.orderId`.
    pub field: String,
    pub message: String,
}

/// Why a body is not a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error("{0:?} is not a notificationType; use one of APP_NOTIFICATION, PUSH, SMS, SLACK")]
    UnknownType(String),
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
}

impl ContractError {
    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ContractError::Invalid(FieldError {
            field: field.into(),
            message: message.into(),
        })
    }

    /// The field the error is about, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            ContractError::Invalid(f) => Some(&f.field),
            ContractError::UnknownType(_) => Some("notificationType"),
            _ => None,
        }
    }
}

/// A validated notification plus what the accept path needs to store it.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub notification: Notification,
    /// `deliverAt` as epoch milliseconds, if given.
    pub deliver_at_ms: Option<i64>,
}

impl Notification {
    pub fn kind(&self) -> NotificationType {
        match self {
            Notification::AppNotification(_) => NotificationType::AppNotification,
            Notification::Push(_) => NotificationType::Push,
            Notification::Sms(_) => NotificationType::Sms,
            Notification::Slack(_) => NotificationType::Slack,
        }
    }

    /// The fields every type carries: (`idempotencyKey`, `deliverAt`).
    fn common_fields(&mut self) -> (&mut Option<String>, &mut Option<String>) {
        match self {
            Notification::AppNotification(n) => (&mut n.idempotency_key, &mut n.deliver_at),
            Notification::Push(n) => (&mut n.idempotency_key, &mut n.deliver_at),
            Notification::Sms(n) => (&mut n.idempotency_key, &mut n.deliver_at),
            Notification::Slack(n) => (&mut n.idempotency_key, &mut n.deliver_at),
        }
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        match self {
            Notification::AppNotification(n) => n.idempotency_key.as_deref(),
            Notification::Push(n) => n.idempotency_key.as_deref(),
            Notification::Sms(n) => n.idempotency_key.as_deref(),
            Notification::Slack(n) => n.idempotency_key.as_deref(),
        }
    }

    /// Sets the idempotency key when the producer gave none (e.g. `sqs:<MessageId>`).
    pub fn set_default_idempotency_key(&mut self, key: String) {
        let (slot, _) = self.common_fields();
        if slot.is_none() {
            *slot = Some(key);
        }
    }

    /// The JSON stored as the delivery's payload (includes `notificationType`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a notification always serializes")
    }
}

/// Parses and validates one notification from raw bytes.
pub fn parse_notification(body: &[u8]) -> Result<Validated, ContractError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ContractError::MalformedJson(e.to_string()))?;
    parse_value(value)
}

/// Parses and validates one notification from a JSON value (a batch item, an SNS `Message`).
pub fn parse_value(value: Value) -> Result<Validated, ContractError> {
    let Value::Object(mut map) = value else {
        return Err(ContractError::NotAnObject);
    };
    let kind = match map.remove("notificationType") {
        None => return Err(ContractError::field("notificationType", "is required")),
        Some(Value::String(s)) => NotificationType::parse(&s).ok_or(ContractError::UnknownType(s))?,
        Some(_) => return Err(ContractError::field("notificationType", "must be a string")),
    };
    let object = Value::Object(map);
    let mut notification = match kind {
        NotificationType::AppNotification => Notification::AppNotification(typed(object, kind)?),
        NotificationType::Push => Notification::Push(typed(object, kind)?),
        NotificationType::Sms => Notification::Sms(typed(object, kind)?),
        NotificationType::Slack => Notification::Slack(typed(object, kind)?),
    };
    let (key, deliver_at) = notification.common_fields();
    if let Some(key) = key {
        check_text("idempotencyKey", key, 1, limits::IDEMPOTENCY_KEY_MAX, false)?;
    }
    let deliver_at_ms = deliver_at.as_deref().map(parse_deliver_at).transpose()?;
    match &mut notification {
        Notification::AppNotification(n) => validate_app(n)?,
        Notification::Push(n) => validate_push(n)?,
        Notification::Sms(n) => validate_sms(n)?,
        Notification::Slack(n) => validate_slack(n)?,
    }
    Ok(Validated {
        notification,
        deliver_at_ms,
    })
}

/// Deserializes the type-specific struct, turning serde's message into a field error.
fn typed<T: serde::de::DeserializeOwned>(object: Value, kind: NotificationType) -> Result<T, ContractError> {
    serde_path_to_error::deserialize(object).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // serde reports missing / unknown fields at the parent path with the name in backticks.
        let named = |prefix: &str| {
            inner
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string)
        };
        if let Some(name) = named("missing field `") {
            return ContractError::field(join_path(&path, &name), "is required");
        }
        if let Some(name) = named("unknown field `") {
            return ContractError::field(join_path(&path, &name), format!("is not a field of {}", kind.as_str()));
        }
        let field = if path == "." { "body".to_string() } else { path };
        ContractError::field(field, inner)
    })
}

fn join_path(parent: &str, name: &str) -> String {
    // serde_path_to_error already includes an unknown field's own name in the path.
    if parent == name || parent.ends_with(&format!(".{name}")) {
        parent.to_string()
    } else if parent == "." || parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn parse_deliver_at(s: &str) -> Result<i64, ContractError> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ContractError::field(
                "deliverAt",
                "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-22T09:00:00+09:00",
            )
        })
}

/// Formats epoch milliseconds as RFC 3339 UTC, for API answers.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Length and character checks shared by all text fields. `multiline` allows `\n`, `\r`, `\t`.
fn check_text(field: &str, s: &str, min: usize, max: usize, multiline: bool) -> Result<(), ContractError> {
    if min > 0 && s.trim().is_empty() {
        return Err(ContractError::field(field, "must not be empty"));
    }
    let len = s.chars().count();
    if len > max {
        return Err(ContractError::field(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    let bad = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
    if s.chars().any(bad) {
        return Err(ContractError::field(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_opt(field: &str, s: &Option<String>, max: usize, multiline: bool) -> Result<(), ContractError> {
    match s {
        Some(s) => check_text(field, s, 1, max, multiline),
        None => Ok(()),
    }
}

fn check_user_id(field: &str, s: &str) -> Result<(), ContractError> {
    check_text(field, s, 1, limits::USER_ID_MAX, false)?;
    if s.chars().any(char::is_whitespace) || s.contains('/') {
        return Err(ContractError::field(field, "must not contain white space or '/'"));
    }
    Ok(())
}

fn validate_app(n: &mut AppNotification) -> Result<(), ContractError> {
    check_user_id("userId", &n.user_id)?;
    check_opt("category", &n.category, limits::CATEGORY_MAX, false)?;
    check_text("title", &n.title, 1, limits::TITLE_MAX, false)?;
    check_opt("body", &n.body, limits::BODY_MAX, true)?;
    check_opt("link", &n.link, limits::LINK_MAX, false)?;
    if let Some(data) = &n.data {
        if !data.is_object() {
            return Err(ContractError::field("data", "must be a JSON object"));
        }
        let size = data.to_string().len();
        if size > limits::DATA_MAX_BYTES {
            return Err(ContractError::field(
                "data",
                format!("must be at most {} bytes as JSON (got {size})", limits::DATA_MAX_BYTES),
            ));
        }
    }
    Ok(())
}

fn validate_push(n: &mut Push) -> Result<(), ContractError> {
    if let Some(user) = &n.user_id {
        check_user_id("userId", user)?;
    }
    if n.user_id.is_none() && n.tokens.is_empty() {
        return Err(ContractError::field("userId", "userId or tokens is required"));
    }
    if n.tokens.len() > limits::PUSH_TOKENS_MAX {
        return Err(ContractError::field(
            "tokens",
            format!("must have at most {} entries", limits::PUSH_TOKENS_MAX),
        ));
    }
    for (i, t) in n.tokens.iter().enumerate() {
        check_text(&format!("tokens[{i}]"), t, 1, limits::PUSH_TOKEN_MAX, false)?;
        if t.chars().any(char::is_whitespace) {
            return Err(ContractError::field(
                format!("tokens[{i}]"),
                "must not contain white space",
            ));
        }
    }
    n.tokens.sort();
    n.tokens.dedup();
    check_opt("title", &n.title, limits::TITLE_MAX, false)?;
    check_opt("body", &n.body, limits::BODY_MAX, true)?;
    if let Some(data) = &n.data {
        let Value::Object(map) = data else {
            return Err(ContractError::field("data", "must be a JSON object of strings"));
        };
        check_push_data(map)?;
    }
    if n.title.is_none() && n.body.is_none() && n.data.is_none() {
        return Err(ContractError::field("title", "a push needs a title, a body or data"));
    }
    let size = n.title.as_deref().map_or(0, str::len)
        + n.body.as_deref().map_or(0, str::len)
        + n.data.as_ref().map_or(0, |d| d.to_string().len());
    if size > limits::PUSH_PAYLOAD_MAX_BYTES {
        return Err(ContractError::field(
            "body",
            format!(
                "title, body and data together must be at most {} bytes (FCM's 4 KB limit); got {size}",
                limits::PUSH_PAYLOAD_MAX_BYTES
            ),
        ));
    }
    Ok(())
}

fn check_push_data(map: &Map<String, Value>) -> Result<(), ContractError> {
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

fn validate_sms(n: &mut Sms) -> Result<(), ContractError> {
    if n.to.is_empty() {
        return Err(ContractError::field("to", "must list at least one phone number"));
    }
    if n.to.len() > limits::SMS_RECIPIENTS_MAX {
        return Err(ContractError::field(
            "to",
            format!("must list at most {} numbers", limits::SMS_RECIPIENTS_MAX),
        ));
    }
    let mut normalized = Vec::with_capacity(n.to.len());
    for (i, raw) in n.to.iter().enumerate() {
        let number = normalize_korean_number(raw).ok_or_else(|| {
            ContractError::field(
                format!("to[{i}]"),
                "is not a Korean phone number (use 01012345678, 010-1234-5678 or +82 10-1234-5678)",
            )
        })?;
        if !normalized.contains(&number) {
            normalized.push(number);
        }
    }
    n.to = normalized;
    check_text("content", &n.content, 1, limits::LMS_BYTES_MAX, true)?;
    let bytes = euc_kr_len("content", &n.content)?;
    if bytes > limits::LMS_BYTES_MAX {
        return Err(ContractError::field(
            "content",
            format!(
                "must be at most {} EUC-KR bytes (LMS); got {bytes}",
                limits::LMS_BYTES_MAX
            ),
        ));
    }
    if let Some(subject) = &n.subject {
        check_text("subject", subject, 1, limits::LMS_SUBJECT_BYTES_MAX, false)?;
        let bytes = euc_kr_len("subject", subject)?;
        if bytes > limits::LMS_SUBJECT_BYTES_MAX {
            return Err(ContractError::field(
                "subject",
                format!(
                    "must be at most {} EUC-KR bytes; got {bytes}",
                    limits::LMS_SUBJECT_BYTES_MAX
                ),
            ));
        }
    }
    Ok(())
}

fn validate_slack(n: &mut Slack) -> Result<(), ContractError> {
    check_text("text", &n.text, 1, limits::SLACK_TEXT_MAX, true)?;
    if let Some(channel) = &n.channel {
        check_text("channel", channel, 1, limits::SLACK_CHANNEL_MAX, false)?;
        if !channel
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(ContractError::field(
                "channel",
                "must be a configured webhook name: lowercase letters, digits, '-' and '_'",
            ));
        }
    }
    Ok(())
}

/// Turns `010-1234-5678`, `(010) 1234 5678`, `+82 10-1234-5678` or `+82 010…` into the
/// domestic digits-only form SENS takes (`01012345678`). `None` if it is not a Korean number.
pub fn normalize_korean_number(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let (international, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let domestic = if international {
        let national = digits.strip_prefix("82")?;
        let national = national.strip_prefix('0').unwrap_or(national);
        format!("0{national}")
    } else {
        digits
    };
    // Korean numbers: a leading 0, then 8 to 10 digits (02-123-4567 … 010-1234-5678).
    let ok = domestic.starts_with('0') && (9..=11).contains(&domestic.len()) && !domestic.starts_with("00");
    ok.then_some(domestic)
}

/// The length of `s` in EUC-KR bytes, or an error naming the first character SENS cannot send.
///
/// SENS documents EUC-KR. encoding_rs's `EUC_KR` is the WHATWG superset (windows-949), which also
/// encodes 8,822 extra Hangul syllables outside KS X 1001; whether SENS accepts those is
/// UNVERIFIED, so we accept only what strict EUC-KR (both bytes 0xA1..=0xFE) can carry.
pub fn euc_kr_len(field: &str, s: &str) -> Result<usize, ContractError> {
    let mut total = 0;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if c.is_ascii() {
            total += 1;
            continue;
        }
        let (bytes, _, had_errors) = encoding_rs::EUC_KR.encode(c.encode_utf8(&mut buf));
        let strict = bytes.len() == 2 && bytes.iter().all(|b| (0xA1..=0xFE).contains(b));
        if had_errors || !strict {
            return Err(ContractError::field(
                field,
                format!(
                    "contains {c:?} (U+{:04X}), which SMS cannot carry: SENS sends EUC-KR, without emoji",
                    c as u32
                ),
            ));
        }
        total += 2;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> ContractError {
        parse_value(v).unwrap_err()
    }

    #[test]
    fn app_notification_parses() {
        let v = parse_value(json!({"notificationType":"APP_NOTIFICATION","userId":"42","title":"Hi",
            "deliverAt":"2026-11-22T09:00:00+09:00","data":{"a":1}}))
        .unwrap();
        assert_eq!(v.deliver_at_ms, Some(1_795_305_600_000));
        assert_eq!(v.notification.kind(), NotificationType::AppNotification);
        let json: Value = serde_json::from_str(&v.notification.to_json()).unwrap();
        assert_eq!(json["notificationType"], "APP_NOTIFICATION");
        assert_eq!(json["userId"], "42");
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(json!({"notificationType":"APP_NOTIFICATION","userId":"42","title":"  "}));
        assert_eq!(e.field_name(), Some("title"));
        assert_eq!(e.to_string(), "title: must not be empty");
        let e = err(json!({"notificationType":"APP_NOTIFICATION","userId":"42"}));
        assert_eq!(e.to_string(), "title: is required");
        let e = err(json!({"notificationType":"APP_NOTIFICATION","userId":"42","title":"x","tilte":"y"}));
        assert_eq!(e.field_name(), Some("tilte"));
        let e = err(json!({"notificationType":"APP_NOTIFICATION","userId":42,"title":"x"}));
        assert_eq!(e.field_name(), Some("userId"));
        let e = err(json!({"notificationType":"EMAIL"}));
        assert!(matches!(e, ContractError::UnknownType(ref t) if t == "EMAIL"));
        let e = err(json!({"userId":"1"}));
        assert_eq!(e.field_name(), Some("notificationType"));
        let e = err(json!({"notificationType":"APP_NOTIFICATION","userId":"42","title":"x","deliverAt":"tomorrow"}));
        assert_eq!(e.field_name(), Some("deliverAt"));
        assert_eq!(err(json!([1])), ContractError::NotAnObject);
        assert!(matches!(
            parse_notification(b"{nope"),
            Err(ContractError::MalformedJson(_))
        ));
    }

    #[test]
    fn korean_numbers_normalize() {
        assert_eq!(normalize_korean_number("010-1234-5678").as_deref(), Some("01012345678"));
        assert_eq!(
            normalize_korean_number("+82 10-1234-5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(
            normalize_korean_number("+82 010 1234 5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(normalize_korean_number("02-123-4567").as_deref(), Some("021234567"));
        assert_eq!(normalize_korean_number("+1 555 123 4567"), None);
        assert_eq!(normalize_korean_number("010-1234-567a"), None);
        assert_eq!(normalize_korean_number("12345"), None);
    }

    #[test]
    fn sms_checks_euc_kr() {
        assert_eq!(euc_kr_len("c", "abc 가나다").unwrap(), 10);
        let e = euc_kr_len("content", "배송 🚚").unwrap_err();
        assert_eq!(e.field_name(), Some("content"));
        assert!(e.to_string().contains("U+1F69A"), "{e}");
        // 똠 is in windows-949 but not in KS X 1001.
        assert!(euc_kr_len("content", "똠").is_err());
        let v =
            parse_value(json!({"notificationType":"SMS","to":["010-1234-5678","+82 10 1234 5678"],"content":"안녕"}))
                .unwrap();
        let Notification::Sms(sms) = v.notification else {
            panic!()
        };
        assert_eq!(sms.to, vec!["01012345678"]);
        let e = err(json!({"notificationType":"SMS","to":["01012345678"],"content":"가".repeat(1001)}));
        assert_eq!(e.field_name(), Some("content"));
        let e = err(json!({"notificationType":"SMS","to":["01012345678","nope"],"content":"x"}));
        assert_eq!(e.field_name(), Some("to[1]"));
    }

    #[test]
    fn push_and_slack_rules() {
        let e = err(json!({"notificationType":"PUSH","title":"x"}));
        assert_eq!(e.field_name(), Some("userId"));
        let e = err(json!({"notificationType":"PUSH","userId":"1","data":{"n":1}}));
        assert_eq!(e.field_name(), Some("data.n"));
        let e = err(json!({"notificationType":"PUSH","userId":"1","data":{"google.x":"1"}}));
        assert_eq!(e.field_name(), Some("data.google.x"));
        let e = err(json!({"notificationType":"SLACK","text":"hi","channel":"Sales Team"}));
        assert_eq!(e.field_name(), Some("channel"));
        parse_value(json!({"notificationType":"SLACK","text":"hi","channel":"sales"})).unwrap();
    }
}
