//! Deciding what a message is, for the doors that cannot answer the sender (SQS, SNS): a
//! CloudWatch alarm (to alarm routing), a notification (to accept), or something to keep as
//! `rejected` with the reason. Every message gets the key that de-duplicates it.

use aws_sdk_sqs::types::Message;
use serde_json::Value;

use crate::accept::{Acceptor, Entry};
use crate::alarms::payload;
use crate::contract::message_key;

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
pub async fn classify(acceptor: &Acceptor, key: &str, message: &str) -> Classified {
    classify_parsed(acceptor, key.to_string(), message, serde_json::from_str(message)).await
}

/// As [`classify`], with `message` already parsed (each body is parsed once).
async fn classify_parsed(
    acceptor: &Acceptor,
    key: String,
    message: &str,
    parsed: serde_json::Result<Value>,
) -> Classified {
    let value = match parsed {
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
    match acceptor.parse_value(value).await {
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
pub async fn classify_message(acceptor: &Acceptor, m: &Message) -> Classified {
    let parsed = serde_json::from_str(m.body().unwrap_or_default());
    classify_message_parsed(acceptor, m, parsed).await
}

/// As [`classify_message`], with the body already parsed (each body is parsed once).
pub async fn classify_message_parsed(
    acceptor: &Acceptor,
    m: &Message,
    parsed: serde_json::Result<Value>,
) -> Classified {
    let message_id = m.message_id().unwrap_or_default();
    let body = m.body().unwrap_or_default();
    let sqs_key = message_key("sqs", message_id);
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
    let value = match parsed {
        Ok(v) => v,
        Err(e) => return rejected(format!("body is not valid JSON: {e}"), sqs_key),
    };
    let classified = match unwrap_sns(&value) {
        Some((sns_id, inner)) => classify(acceptor, &message_key("sns", sns_id), inner).await,
        None => classify_parsed(acceptor, sqs_key.clone(), body, Ok(value)).await,
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

/// A message kept as `rejected` with `reason` (its whole body as the raw body).
pub fn rejected_message(m: &Message, reason: String) -> Classified {
    Classified::Entry(Entry::Rejected {
        raw: m.body().unwrap_or_default().to_string(),
        reason,
        idempotency_key: Some(message_key("sqs", m.message_id().unwrap_or_default())),
    })
}

/// If `v` is an SNS Notification envelope (a queue subscribed to a topic without raw
/// delivery), its MessageId and Message.
pub fn unwrap_sns(v: &Value) -> Option<(&str, &str)> {
    if v.get("Type")?.as_str()? != "Notification" || v.get("TopicArn").is_none() {
        return None;
    }
    Some((v.get("MessageId")?.as_str()?, v.get("Message")?.as_str()?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::channels::{ChannelArgs, Notification};
    use crate::clock::Clock;
    use crate::store::Store;

    async fn acceptor() -> Acceptor {
        Acceptor::new(
            Store::memory().await,
            crate::store::Wake::default(),
            Arc::new(crate::settings::defaults::<ChannelArgs>()),
            Clock::manual(0),
        )
    }

    fn alarm_json() -> String {
        json!({"AlarmName": "api-5xx", "AWSAccountId": "123456789012", "NewStateValue": "ALARM",
            "NewStateReason": "Threshold Crossed", "StateChangeTime": "2026-11-22T01:00:00.000+0000",
            "Region": "Asia Pacific (Seoul)", "OldStateValue": "OK",
            "AlarmArn": "arn:aws:cloudwatch:ap-northeast-2:123456789012:alarm:api-5xx",
            "Trigger": {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0}})
        .to_string()
    }

    fn sqs(id: &str, body: &str) -> Message {
        Message::builder().message_id(id).body(body).build()
    }

    #[tokio::test]
    async fn messages_are_told_apart() {
        let a = acceptor().await;
        match classify(&a, "sns:1", &alarm_json()).await {
            Classified::Alarm { key, alarm } => assert_eq!((key.as_str(), alarm.name.as_str()), ("sns:1", "api-5xx")),
            Classified::Entry(_) => panic!("an alarm"),
        }
        let n = json!({"notificationType": "SLACK", "text": "hi"}).to_string();
        match classify(&a, "sns:2", &n).await {
            Classified::Entry(Entry::Valid(v)) => {
                assert_eq!(
                    v.notification.idempotency_key(),
                    Some("sns:2"),
                    "the message key is the default"
                );
                assert!(matches!(v.notification, Notification::Slack(_)));
            }
            _ => panic!("a notification"),
        }
        let keyed = json!({"notificationType": "SLACK", "text": "hi", "idempotencyKey": "mine"}).to_string();
        match classify(&a, "sns:3", &keyed).await {
            Classified::Entry(Entry::Valid(v)) => assert_eq!(v.notification.idempotency_key(), Some("mine")),
            _ => panic!("a notification"),
        }
        for (body, reason) in [
            ("{nope", "not valid JSON"),
            (r#"{"notificationType":"FAX"}"#, "not a notificationType"),
            (r#"{"notificationType":"SLACK"}"#, "text: is required"),
        ] {
            match classify(&a, "sns:4", body).await {
                Classified::Entry(Entry::Rejected {
                    raw,
                    reason: r,
                    idempotency_key,
                }) => {
                    assert_eq!(raw, body);
                    assert!(r.contains(reason), "{r}");
                    assert_eq!(idempotency_key.as_deref(), Some("sns:4"));
                }
                _ => panic!("{body} is rejected"),
            }
        }
    }

    #[tokio::test]
    async fn sqs_bodies_unwrap_sns_envelopes() {
        let a = acceptor().await;
        let envelope =
            json!({"Type": "Notification", "MessageId": "sns-9", "TopicArn": "arn:aws:sns:ap-northeast-2:1:t",
            "Message": alarm_json()})
            .to_string();
        match classify_message(&a, &sqs("q-1", &envelope)).await {
            Classified::Alarm { key, .. } => assert_eq!(key, "sns:sns-9"),
            Classified::Entry(_) => panic!("an alarm inside the envelope"),
        }
        let bad_inside =
            json!({"Type": "Notification", "MessageId": "sns-10", "TopicArn": "arn:aws:sns:ap-northeast-2:1:t",
            "Message": "not json"})
            .to_string();
        match classify_message(&a, &sqs("q-2", &bad_inside)).await {
            Classified::Entry(Entry::Rejected {
                raw, idempotency_key, ..
            }) => {
                assert_eq!(raw, bad_inside, "the whole SQS body is kept");
                assert_eq!(idempotency_key.as_deref(), Some("sns:sns-10"));
            }
            _ => panic!("rejected"),
        }
        match classify_message(&a, &sqs("q-3", "  ")).await {
            Classified::Entry(Entry::Rejected {
                reason,
                idempotency_key,
                ..
            }) => {
                assert_eq!(reason, "empty message body");
                assert_eq!(idempotency_key.as_deref(), Some("sqs:q-3"));
            }
            _ => panic!("rejected"),
        }
        let plain = json!({"notificationType": "SLACK", "text": "hi"}).to_string();
        match classify_message(&a, &sqs("q-4", &plain)).await {
            Classified::Entry(Entry::Valid(v)) => assert_eq!(v.notification.idempotency_key(), Some("sqs:q-4")),
            _ => panic!("a notification"),
        }
    }
}
