//! Parsing and validating one notification: the contract's common fields here, each type's
//! own fields and rules in its channel module. Strict and self-explaining: either a
//! [`Validated`] notification or a [`ContractError`] that names the field and the problem.
//! Unknown fields are refused (a typo such as `tilte` would otherwise silently drop the title).

use serde_json::Value;

use crate::channels::{Notification, NotificationType};
use crate::contract::{ContractError, check_text, limits, parse_deliver_at};

/// A validated notification plus what the accept path needs to store it.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub notification: Notification,
    /// `deliverAt` as epoch milliseconds, if given.
    pub deliver_at_ms: Option<i64>,
}

impl Validated {
    /// Sets the idempotency key when the producer gave none (e.g. `sqs:<MessageId>`).
    pub fn set_default_idempotency_key(&mut self, key: String) {
        let (slot, _) = self.notification.common_fields();
        if slot.is_none() {
            *slot = Some(key);
        }
    }
}

/// The JSON stored as the delivery's payload (includes `notificationType`).
pub fn to_json(n: &Notification) -> String {
    serde_json::to_string(n).expect("a notification always serializes")
}

/// Parses and validates one notification from raw bytes.
///
/// One pass over the bytes when the body is a well-formed notification of a known type: the
/// type is read from `notificationType`, and its payload struct straight from the bytes. Any
/// serde error on that path (malformed JSON, a wrong type, an unknown or missing field) goes
/// the slower way, through a `serde_json::Value`, which names the field; so both ways give the
/// same answer for every body, and the slow one is only taken by bodies that are refused (or
/// have a duplicate member, which the `Value` path resolves as serde_json does: the last wins).
pub fn parse_notification(body: &[u8]) -> Result<Validated, ContractError> {
    if let Ok(json) = std::str::from_utf8(body)
        && let Some(parsed) = parse_one_pass(json)
    {
        return parsed;
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ContractError::MalformedJson(e.to_string()))?;
    parse_value(value)
}

/// The one-pass path of [`parse_notification`]: `None` when serde refused the body, so the
/// caller should find out why the slow way.
fn parse_one_pass(json: &str) -> Option<Result<Validated, ContractError>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let tag = crate::contract::tagged::tag_of(&mut de).ok()??;
    let kind = NotificationType::parse(&tag)?;
    match Notification::from_json(kind, json).ok()? {
        Ok(notification) => Some(finish(notification)),
        Err(e) => Some(Err(e)),
    }
}

/// Parses and validates one notification from a JSON value (a batch item, an SNS `Message`).
pub fn parse_value(value: Value) -> Result<Validated, ContractError> {
    let Value::Object(mut map) = value else {
        return Err(ContractError::NotAnObject);
    };
    let kind = match map.remove("notificationType") {
        None => return Err(ContractError::field("notificationType", "is required")),
        Some(Value::String(s)) => NotificationType::parse(&s).ok_or_else(|| ContractError::UnknownType {
            given: s,
            known: NotificationType::names(),
        })?,
        Some(_) => return Err(ContractError::field("notificationType", "must be a string")),
    };
    finish(Notification::from_fields(kind, Value::Object(map))?)
}

/// The common fields' checks, after the type's own.
fn finish(mut notification: Notification) -> Result<Validated, ContractError> {
    let (key, deliver_at) = notification.common_fields();
    if let Some(key) = key {
        check_text("idempotencyKey", key, 1, limits::IDEMPOTENCY_KEY_MAX, false)?;
    }
    let deliver_at_ms = deliver_at.as_deref().map(parse_deliver_at).transpose()?;
    Ok(Validated {
        notification,
        deliver_at_ms,
    })
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
        let json: Value = serde_json::from_str(&to_json(&v.notification)).unwrap();
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
        let e = err(json!({"notificationType":"FAX"}));
        assert!(matches!(e, ContractError::UnknownType { ref given, .. } if given == "FAX"));
        // Every type is named, from the channel list (so a new channel changes nothing here).
        assert_eq!(
            e.to_string(),
            format!(
                "\"FAX\" is not a notificationType; use one of {}",
                crate::channels::NotificationType::names()
            )
        );
        assert!(e.to_string().contains("APP_NOTIFICATION, PUSH, SMS"), "{e}");
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

    /// The one-pass path and the `Value` path give the same answer for every body: the same
    /// notification, or the same error naming the same field.
    #[test]
    fn one_pass_and_value_paths_agree() {
        let bodies: &[&[u8]] = &[
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42","title":"Hi","data":{"notificationType":1,"a":[1,2.5,null]}}"#,
            br#"{"userId":"42","title":"Hi","notificationType":"APP_NOTIFICATION","idempotencyKey":"k-1","deliverAt":"2026-11-22T09:00:00+09:00"}"#,
            br#"{"notification\u0054ype":"APP_NOTIFICATION","userId":"4\"2","title":"\ud55c\uae00"}"#,
            r#"{"notificationType":"SMS","to":["010-1234-5678"],"content":"안녕"}"#.as_bytes(),
            br#"{"notificationType":"PUSH","userId":"1","title":"x","data":{"k":"v"}}"#,
            br#"{"notificationType":"SLACK","text":"hi","channel":"sales"}"#,
            // Refused, each for its own reason.
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42","title":"Hi","tilte":"x"}"#,
            br#"{"notificationType":"APP_NOTIFICATION","userId":42,"title":"Hi"}"#,
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42"}"#,
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42","title":"  "}"#,
            br#"{"notificationType":"FAX","userId":"42"}"#,
            br#"{"notificationType":7}"#,
            br#"{"userId":"42","title":"Hi"}"#,
            br#"["APP_NOTIFICATION","42","Hi"]"#,
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42","title":"Hi"} x"#,
            br#"{"notificationType":"APP_NOTIFICATION","userId":"42","title":"Hi""#,
            b"{\"notificationType\":\"APP_NOTIFICATION\",\"userId\":\"42\",\"title\":\"\xff\"}",
            br#"{"notificationType":"PUSH","userId":"1","data":{"n":1}}"#,
            br#"{"notificationType":"SMS","to":["01012345678","nope"],"content":"x"}"#,
            // Duplicate members: the one-pass read refuses them, the Value path keeps the last.
            br#"{"notificationType":"APP_NOTIFICATION","userId":"1","userId":"2","title":"Hi"}"#,
            br#"{"notificationType":"SMS","notificationType":"APP_NOTIFICATION","userId":"2","title":"Hi"}"#,
        ];
        for body in bodies {
            let slow = serde_json::from_slice::<Value>(body)
                .map_err(|e| ContractError::MalformedJson(e.to_string()))
                .and_then(parse_value);
            assert_eq!(parse_notification(body), slow, "{}", String::from_utf8_lossy(body));
        }
        // The first ones parse the one-pass way (no fallback needed).
        for body in &bodies[..6] {
            let json = std::str::from_utf8(body).unwrap();
            assert!(matches!(parse_one_pass(json), Some(Ok(_))), "{json}");
        }
        let dup = parse_notification(bodies[bodies.len() - 2]).unwrap();
        let Notification::AppNotification(n) = dup.notification else {
            panic!()
        };
        assert_eq!(n.user_id, "2");
    }

    #[test]
    fn sms_checks_euc_kr() {
        let e = err(json!({"notificationType":"SMS","to":["01012345678"],"content":"배송 🚚"}));
        assert_eq!(e.field_name(), Some("content"));
        assert!(e.to_string().contains("U+1F69A"), "{e}");
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
