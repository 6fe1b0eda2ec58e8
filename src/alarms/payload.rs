//! CloudWatch alarm payloads, in the two shapes that reach allim through SNS: the classic
//! "alarm → SNS" JSON (PROTOCOLS.md §2.1) and EventBridge's "CloudWatch Alarm State Change"
//! event (§2.2). Both become one [`Alarm`]. Parsing is tolerant: unknown fields are ignored
//! (newer payloads add fields), `Unit` may be null, and times may carry a `+0000` offset.

use crate::contract::{bounded, limits};
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::Value;

/// The alarm states CloudWatch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One state change of one alarm, whatever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub account: String,
    /// Region code (`ap-northeast-2`) when known, else the display name SNS gives.
    pub region: String,
    pub arn: Option<String>,
    pub state: AlarmState,
    pub old_state: Option<AlarmState>,
    pub reason: String,
    /// When the state changed.
    pub changed_at: DateTime<FixedOffset>,
    /// The datapoint that crossed the threshold, when it can be read.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// `GreaterThanThreshold`, …
    pub comparison: Option<String>,
}

impl Alarm {
    /// A stable key for the alarm: its ARN, or account/region/name.
    pub fn key(&self) -> String {
        match &self.arn {
            Some(arn) => arn.clone(),
            None => format!("{}:{}:{}", self.account, self.region, self.name),
        }
    }
}

/// Why a payload is not an alarm we can route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable CloudWatch alarm: {}", bounded(.0, limits::REASON_MAX))]
pub struct AlarmError(pub String);

/// Whether a JSON message looks like a CloudWatch alarm (of either shape).
pub fn is_alarm(v: &Value) -> bool {
    (v.get("AlarmName").is_some() && v.get("NewStateValue").is_some())
        || (v.get("source").and_then(Value::as_str) == Some("aws.cloudwatch")
            && v.get("detail-type").and_then(Value::as_str) == Some("CloudWatch Alarm State Change"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarm {
    alarm_name: String,
    #[serde(rename = "AWSAccountId", default)]
    aws_account_id: Option<String>,
    new_state_value: String,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default)]
    state_change_time: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default)]
    old_state_value: Option<String>,
    #[serde(default)]
    trigger: Option<Trigger>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger {
    #[serde(default)]
    comparison_operator: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
}

/// Parses either alarm shape.
pub fn parse(v: &Value) -> Result<Alarm, AlarmError> {
    let mut alarm = if v.get("detail-type").is_some() {
        parse_eventbridge(v)?
    } else {
        parse_sns(v)?
    };
    check_lengths(&mut alarm)?;
    Ok(alarm)
}

/// CloudWatch's own limits (names ≤ 255 characters, 12-digit accounts, region codes), which
/// are also the columns' sizes: a payload over them is not an alarm CloudWatch sent.
fn check_lengths(a: &mut Alarm) -> Result<(), AlarmError> {
    let too_long = |field: &str, value: &str, max: usize| {
        (value.chars().count() > max).then(|| {
            AlarmError(format!(
                "{field} is longer than {max} characters: {:?}",
                bounded(value, limits::QUOTED_MAX)
            ))
        })
    };
    let checks = [
        too_long("AlarmName", &a.name, 255),
        too_long("AWSAccountId", &a.account, 32),
        too_long("Region", &a.region, 64),
        too_long("AlarmArn", a.arn.as_deref().unwrap_or_default(), 512),
    ];
    if let Some(e) = checks.into_iter().flatten().next() {
        return Err(e);
    }
    a.reason = bounded(&a.reason, limits::REASON_MAX);
    Ok(())
}

fn parse_time(s: Option<&str>) -> Result<DateTime<FixedOffset>, AlarmError> {
    let s = s.ok_or_else(|| AlarmError("no state change time".into()))?;
    // CloudWatch writes "+0000" (no colon), which RFC 3339 parsers refuse.
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map_err(|_| AlarmError(format!("state change time {s:?} is not a time")))
}

fn parse_sns(v: &Value) -> Result<Alarm, AlarmError> {
    let a: SnsAlarm = serde_json::from_value(v.clone()).map_err(|e| AlarmError(e.to_string()))?;
    let state = AlarmState::parse(&a.new_state_value)
        .ok_or_else(|| AlarmError(format!("NewStateValue {:?} is not a state", a.new_state_value)))?;
    let arn_parts: Vec<&str> = a.alarm_arn.as_deref().unwrap_or("").split(':').collect();
    let region = match arn_parts.get(3) {
        Some(code) if !code.is_empty() => code.to_string(),
        _ => a.region.clone().unwrap_or_default(),
    };
    let account = a
        .aws_account_id
        .clone()
        .or_else(|| arn_parts.get(4).map(|s| s.to_string()))
        .unwrap_or_default();
    let reason = a.new_state_reason.unwrap_or_default();
    let trigger = a.trigger;
    Ok(Alarm {
        name: a.alarm_name,
        account,
        region,
        arn: a.alarm_arn.filter(|s| !s.is_empty()),
        state,
        old_state: a.old_state_value.as_deref().and_then(AlarmState::parse),
        value: datapoint_from_reason(&reason),
        reason,
        changed_at: parse_time(a.state_change_time.as_deref())?,
        threshold: trigger.as_ref().and_then(|t| t.threshold),
        comparison: trigger.and_then(|t| t.comparison_operator),
    })
}

fn parse_eventbridge(v: &Value) -> Result<Alarm, AlarmError> {
    let detail = v.get("detail").ok_or_else(|| AlarmError("no detail".into()))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let name = text(detail, "alarmName").ok_or_else(|| AlarmError("no detail.alarmName".into()))?;
    let state_obj = detail
        .get("state")
        .ok_or_else(|| AlarmError("no detail.state".into()))?;
    let state_value = text(state_obj, "value").unwrap_or_default();
    let state = AlarmState::parse(&state_value)
        .ok_or_else(|| AlarmError(format!("detail.state.value {state_value:?} is not a state")))?;
    let reason = text(state_obj, "reason").unwrap_or_default();
    // reasonData is itself a JSON string with the threshold and the recent datapoints.
    let reason_data: Value = text(state_obj, "reasonData")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let value = reason_data
        .get("recentDatapoints")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_f64)
        .or_else(|| datapoint_from_reason(&reason));
    let arn = v
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Alarm {
        name,
        account: text(v, "account").unwrap_or_default(),
        region: text(v, "region").unwrap_or_default(),
        arn,
        state,
        old_state: detail
            .get("previousState")
            .and_then(|p| p.get("value"))
            .and_then(Value::as_str)
            .and_then(AlarmState::parse),
        reason,
        changed_at: parse_time(
            state_obj
                .get("timestamp")
                .and_then(Value::as_str)
                .or(v.get("time").and_then(Value::as_str)),
        )?,
        value,
        threshold: reason_data.get("threshold").and_then(Value::as_f64),
        comparison: None,
    })
}

/// The first datapoint in a reason such as
/// `Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was …`.
pub fn datapoint_from_reason(reason: &str) -> Option<f64> {
    let start = reason.find('[')? + 1;
    let rest = &reason[start..];
    let end = rest.find([' ', ']', ',', '('])?;
    rest[..end].parse().ok()
}

/// The comparison as a symbol; negated for the OK state (`12.0 > 5.0` becomes `2.0 <= 5.0`).
pub fn operator(comparison: Option<&str>, state: AlarmState) -> &'static str {
    let (op, negated) = match comparison.unwrap_or("") {
        "GreaterThanThreshold" => (">", "<="),
        "GreaterThanOrEqualToThreshold" => (">=", "<"),
        "LessThanThreshold" => ("<", ">="),
        "LessThanOrEqualToThreshold" => ("<=", ">"),
        "LessThanLowerOrGreaterThanUpperThreshold" => ("outside", "inside"),
        "GreaterThanUpperThreshold" => (">", "<="),
        "LessThanLowerThreshold" => ("<", ">="),
        _ => ("vs", "vs"),
    };
    if state == AlarmState::Ok { negated } else { op }
}

/// `12.0`, `0.5`, `1234.0`: a number as CloudWatch shows it.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// PROTOCOLS.md §2.1's sample (aws/aws-lambda-go testdata).
    pub fn sample() -> Value {
        json!({"AlarmName":"EXAMPLE","AlarmDescription":"EXAMPLE","AWSAccountId":"123456789012","NewStateValue":"ALARM",
         "NewStateReason":"Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
         "StateChangeTime":"2015-06-03T17:43:27.123+0000","Region":"EXAMPLE","AlarmArn":"arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE",
         "OldStateValue":"INSUFFICIENT_DATA","Trigger":{"MetricName":"NetworkOut","Namespace":"AWS/EC2","StatisticType":"Statistic",
         "Statistic":"AVERAGE","Unit":null,"Dimensions":[{"value":"TestInstance","name":"InstanceId"}],"Period":60,
         "EvaluationPeriods":1,"ComparisonOperator":"GreaterThanThreshold","Threshold":0.0,
         "TreatMissingData":"- TreatMissingData: missing","EvaluateLowSampleCountPercentile":"", "SomethingNew": 1}})
    }

    #[test]
    fn sns_sample_parses() {
        let v = sample();
        assert!(is_alarm(&v));
        let a = parse(&v).unwrap();
        assert_eq!(a.name, "EXAMPLE");
        assert_eq!(a.state, AlarmState::Alarm);
        assert_eq!(a.old_state, Some(AlarmState::InsufficientData));
        assert_eq!(a.account, "123456789012");
        assert_eq!(a.region, "REGION", "the code from the ARN");
        assert_eq!(a.value, Some(1234.0));
        assert_eq!(a.threshold, Some(0.0));
        assert_eq!(a.changed_at.timestamp_millis(), 1_433_353_407_123);
        assert_eq!(operator(a.comparison.as_deref(), a.state), ">");
        assert_eq!(operator(a.comparison.as_deref(), AlarmState::Ok), "<=");
    }

    #[test]
    fn eventbridge_parses() {
        let v = json!({"version":"0","id":"c4c1c1c9","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch",
            "account":"123456789012","time":"2019-10-02T17:04:40Z","region":"ap-northeast-2",
            "resources":["arn:aws:cloudwatch:ap-northeast-2:123456789012:alarm:api-5xx-high"],
            "detail":{"alarmName":"api-5xx-high","state":{"value":"ALARM","reason":"Threshold Crossed","reasonData":"{\"version\":\"1.0\",\"recentDatapoints\":[12.0],\"threshold\":5.0}","timestamp":"2019-10-02T17:04:40.985+0000"},
            "previousState":{"value":"OK"},"configuration":{"metrics":[{"id":"m1","metricStat":{"metric":{"dimensions":{"LoadBalancer":"app/x"},"name":"HTTPCode_Target_5XX_Count","namespace":"AWS/ApplicationELB"},"period":60,"stat":"Sum"},"returnData":true}]}}});
        assert!(is_alarm(&v));
        let a = parse(&v).unwrap();
        assert_eq!(
            (a.name.as_str(), a.region.as_str(), a.state),
            ("api-5xx-high", "ap-northeast-2", AlarmState::Alarm)
        );
        assert_eq!((a.value, a.threshold), (Some(12.0), Some(5.0)));
        assert_eq!(a.old_state, Some(AlarmState::Ok));
    }

    #[test]
    fn numbers_and_reasons() {
        assert_eq!(number(12.0), "12.0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(datapoint_from_reason("x [2.5 (1/1/20 00:00:00)] y"), Some(2.5));
        assert_eq!(datapoint_from_reason("no datapoints"), None);
        assert!(
            parse(&json!({"AlarmName":"x","NewStateValue":"WEIRD","StateChangeTime":"2015-06-03T17:43:27.123+0000"}))
                .is_err()
        );
    }
}
