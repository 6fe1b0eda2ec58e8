//! Deciding what a message is, for the doors that cannot answer the sender (SQS, SNS): a
//! CloudWatch alarm (to alarm routing), a notification (to accept), or something to keep as
//! `rejected` with the reason. Every message gets the key that de-duplicates it.

use aws_sdk_sqs::types::Message;
use serde_json::Value;

use crate::accept::{Acceptor, Entry};
use crate::alarms::payload;

/// What an SNS `Message` is.
pub enum Classified {
    /// A CloudWatch alarm, with the key that de-duplicates it (`sns:<MessageId>` or `sqs:<MessageId>`).
    Alarm {
        key: String,
        alarm: payload::Alarm,
    },
    Entry(Entry),
}

/// Decides what an SNS `Message` (or an SQS body) is: a CloudWatch alarm, a notification, or
/// something to keep as `rejected`. `key` (`sns:<MessageId>` or `sqs:<MessageId>`) names the
/// message for de-duplication.
pub fn classify(acceptor: &Acceptor, key: &str, message: &str) -> Classified {
    let key = key.to_string();
    let value: Value = match serde_json::from_str(message) {
        Ok(v) => v,
        Err(e) => {
            return Classified::Entry(Entry::Rejected {
                raw: message.to_string(),
                reason: format!("SNS Message is not valid JSON: {e}"),
                idempotency_key: Some(key),
            });
        }
    };
    if payload::is_alarm(&value) {
        return match payload::parse(&value) {
            Ok(alarm) => Classified::Alarm { key, alarm },
            Err(err) => Classified::Entry(Entry::Rejected {
                raw: message.to_string(),
                reason: err.to_string(),
                idempotency_key: Some(key),
            }),
        };
    }
    match acceptor.parse_value(value) {
        Ok(mut v) => {
            v.set_default_idempotency_key(key);
            Classified::Entry(Entry::Valid(v))
        }
        Err(err) => Classified::Entry(Entry::Rejected {
            raw: message.to_string(),
            reason: err.to_string(),
            idempotency_key: Some(key),
        }),
    }
}

/// Decides what an SQS message is, unwrapping an SNS envelope: an alarm, a notification, or a
/// `rejected` entry. A rejected entry keeps the whole SQS body as its raw body.
pub fn classify_message(acceptor: &Acceptor, m: &Message) -> Classified {
    let message_id = m.message_id().unwrap_or_default();
    let body = m.body().unwrap_or_default();
    let sqs_key = format!("sqs:{message_id}");
    let rejected = |reason: String, key: String| {
        Classified::Entry(Entry::Rejected {
            raw: body.to_string(),
            reason,
            idempotency_key: Some(key),
        })
    };
    if body.trim().is_empty() {
        return rejected("empty message body".into(), sqs_key);
    }
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return rejected(format!("body is not valid JSON: {e}"), sqs_key),
    };
    let classified = match unwrap_sns(&value) {
        Some((sns_id, inner)) => classify(acceptor, &format!("sns:{sns_id}"), inner),
        None => classify(acceptor, &sqs_key, body),
    };
    match classified {
        Classified::Entry(Entry::Rejected {
            reason,
            idempotency_key,
            ..
        }) => rejected(reason, idempotency_key.unwrap_or(sqs_key)),
        other => other,
    }
}

/// If `v` is an SNS Notification envelope (a queue subscribed to a topic without raw
/// delivery), its MessageId and Message.
pub fn unwrap_sns(v: &Value) -> Option<(&str, &str)> {
    if v.get("Type")?.as_str()? != "Notification" || v.get("TopicArn").is_none() {
        return None;
    }
    Some((v.get("MessageId")?.as_str()?, v.get("Message")?.as_str()?))
}
