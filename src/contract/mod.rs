//! The message contract's shared rules: the errors that name a field, the text checks every
//! type uses, the one user-id rule, and turning serde's complaints into field errors. The
//! per-type payloads and their own rules live with their channels (`channels::*`); `accept`
//! puts the two together.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub mod tagged;

/// Limits every type shares, in one place so the README and the errors agree.
pub mod limits {
    pub const IDEMPOTENCY_KEY_MAX: usize = 255;
    /// A rejection reason or a provider's error text, as stored (`last_error`).
    pub const REASON_MAX: usize = 1000;
    /// A value quoted back in an error message.
    pub const QUOTED_MAX: usize = 80;
    pub const USER_ID_MAX: usize = 128;
    pub const TITLE_MAX: usize = 200;
    pub const BODY_MAX: usize = 4000;
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
    #[error(
        "{:?} is not a notificationType; use one of {known}",
        bounded(given, limits::QUOTED_MAX)
    )]
    UnknownType { given: String, known: String },
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
}

impl ContractError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ContractError::Invalid(FieldError {
            field: field.into(),
            message: message.into(),
        })
    }

    /// The field the error is about, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            ContractError::Invalid(f) => Some(&f.field),
            ContractError::UnknownType { .. } => Some("notificationType"),
            _ => None,
        }
    }
}

/// The length of a value serialized as compact JSON, counted without building the string.
pub fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("counting cannot fail");
    count.0
}

/// Deserializes a type's fields, turning serde's message into a field error.
pub fn typed<T: serde::de::DeserializeOwned>(object: Value, type_name: &str) -> Result<T, ContractError> {
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
            return ContractError::field(join_path(&path, &name), format!("is not a field of {type_name}"));
        }
        let field = if path == "." { "body".to_string() } else { path };
        // serde quotes the offending value; a huge one is cut.
        ContractError::field(field, bounded(&inner, limits::REASON_MAX / 2))
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

/// At most `max` characters of `s` (an ellipsis marks a cut): what is stored or quoted back
/// is always bounded, whatever a sender put in.
pub fn bounded(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The key of a message from a door (`sqs:<MessageId>`, `sns:<MessageId>`): the id as is when
/// it fits the narrowest column the key goes to (an alarm event's, 128), else its hash (an SNS
/// MessageId comes from an envelope that may not be verified yet).
pub fn message_key(prefix: &str, id: &str) -> String {
    if prefix.len() + 1 + id.len() <= 128 && !id.chars().any(char::is_control) {
        format!("{prefix}:{id}")
    } else {
        format!("{prefix}:#{}", short_hash(id))
    }
}

/// The first 16 bytes of the SHA-256 of `s`, in hex: a short, stable name for a long value or
/// a secret of a kind (a push token).
pub fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// `deliverAt` as epoch milliseconds.
pub fn parse_deliver_at(s: &str) -> Result<i64, ContractError> {
    DateTime::<FixedOffset>::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ContractError::field(
                "deliverAt",
                "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-22T09:00:00+09:00",
            )
        })
}

/// Length and character checks shared by all text fields. `multiline` allows `\n`, `\r`, `\t`.
pub fn check_text(field: &str, s: &str, min: usize, max: usize, multiline: bool) -> Result<(), ContractError> {
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

/// [`check_text`] for an optional field (present means at least one character).
pub fn check_opt(field: &str, s: &Option<String>, max: usize, multiline: bool) -> Result<(), ContractError> {
    match s {
        Some(s) => check_text(field, s, 1, max, multiline),
        None => Ok(()),
    }
}

/// The one rule for user ids, in messages and in API paths alike: 1 to 128 characters, no
/// white space, no `/`, no control characters.
pub fn check_user_id(field: &str, s: &str) -> Result<(), ContractError> {
    check_text(field, s, 1, limits::USER_ID_MAX, false)?;
    if s.chars().any(char::is_whitespace) || s.contains('/') {
        return Err(ContractError::field(field, "must not contain white space or '/'"));
    }
    Ok(())
}

/// A JSON object no larger than `max` bytes serialized.
pub fn check_object(field: &str, data: &Value, max: usize) -> Result<(), ContractError> {
    if !data.is_object() {
        return Err(ContractError::field(field, "must be a JSON object"));
    }
    let size = json_len(data);
    if size > max {
        return Err(ContractError::field(
            field,
            format!("must be at most {max} bytes as JSON (got {size})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_stored_is_bounded() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "ab…");
        let huge = "X".repeat(70_000);
        let e = ContractError::UnknownType {
            given: huge.clone(),
            known: "SMS".into(),
        };
        assert!(e.to_string().len() < 200, "{}", e.to_string().len());
        assert_eq!(message_key("sqs", "4f3c-1"), "sqs:4f3c-1");
        let long = message_key("sns", &huge);
        assert_eq!(long.len(), 4 + 1 + 32);
        assert_eq!(long, message_key("sns", &huge), "stable");
        assert_eq!(short_hash("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
