//! Property tests (proptest, a bounded number of cases each, so CI runs them every time): the
//! parsers that read what strangers send never panic — the message contract, the SNS envelope
//! and its checks, the CloudWatch alarm payload, and the classification of SQS bodies.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, a few levels deep, with the strings and numbers that break parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        "[0-9+\\- ()]{0,20}".prop_map(Value::String),
        Just(Value::String("\u{1F69A}똠\u{0}\r\n".into())),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys, mostly the ones the parsers look for.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "notificationType",
            "idempotencyKey",
            "deliverAt",
            "userId",
            "title",
            "body",
            "data",
            "to",
            "content",
            "subject",
            "text",
            "channel",
            "tokens",
            "category",
            "link",
            "AlarmName",
            "NewStateValue",
            "OldStateValue",
            "StateChangeTime",
            "Region",
            "AlarmArn",
            "AWSAccountId",
            "NewStateReason",
            "Trigger",
            "detail",
            "detail-type",
            "source",
            "state",
            "Type",
            "MessageId",
            "TopicArn",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
            "SubscribeURL",
            "Subject",
            "Token",
        ])
        .prop_map(str::to_string),
        ".{0,12}",
    ]
}

/// A known-good message with one field replaced by anything.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    (key(), any_json()).prop_map(move |(k, v)| {
        let mut m = base.clone();
        m[k] = v;
        m
    })
}

fn samples() -> Vec<Value> {
    vec![
        json!({"notificationType": "APP_NOTIFICATION", "userId": "42", "title": "t", "deliverAt": "2026-11-22T09:00:00+09:00"}),
        json!({"notificationType": "SMS", "to": ["010-1234-5678"], "content": "안녕"}),
        json!({"notificationType": "PUSH", "userId": "1", "data": {"k": "v"}}),
        json!({"notificationType": "SLACK", "text": "hi", "channel": "ops"}),
        json!({"AlarmName": "a", "AWSAccountId": "1", "NewStateValue": "ALARM", "StateChangeTime": "2026-11-22T01:00:00.000+0000",
               "Region": "Asia Pacific (Seoul)", "Trigger": {"Threshold": 1.0}}),
        json!({"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
               "detail": {"alarmName": "a", "state": {"value": "OK", "timestamp": "2026-11-22T01:00:00.000+0000"}}}),
        json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:ap-northeast-2:1:t", "Message": "{}",
               "Timestamp": "2026-11-22T01:00:00.000Z", "SignatureVersion": "1", "Signature": "x",
               "SigningCertURL": "https://sns.ap-northeast-2.amazonaws.com/a.pem"}),
    ]
}

fn check_everything(bytes: &[u8]) {
    let _ = allim::accept::parse_notification(bytes);
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        let _ = allim::accept::parse_value(v.clone());
        if allim::alarms::payload::is_alarm(&v) {
            let _ = allim::alarms::payload::parse(&v);
        }
        let _ = allim::alarms::payload::parse(&v);
        let _ = allim::ingress::classify::unwrap_sns(&v);
    }
    if let Ok(e) = serde_json::from_slice::<allim::ingress::sns::Envelope>(bytes) {
        let _ = allim::ingress::sns::verify::string_to_sign(&e);
        let _ = allim::ingress::sns::check_sns_url(&e.signing_cert_url, true, None);
        let _ = allim::ingress::sns::check_sns_url(e.subscribe_url.as_deref().unwrap_or(""), false, None);
    }
    let _ = allim::ingress::sns::verify::rsa_key_from_pem(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_everything(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        check_everything(v.to_string().as_bytes());
    }

    #[test]
    fn mutated_messages_never_panic(v in prop::sample::select(samples()).prop_flat_map(mutated)) {
        check_everything(v.to_string().as_bytes());
    }
}
