//! The SQS wire formats (PROTOCOLS.md §12): requests in the JSON protocol (`X-Amz-Target:
//! AmazonSQS.<Action>`, what current SDKs send) and the query protocol (form-encoded
//! `Action=…`, what older SDKs and the AWS CLI v1 send), turned into one [`Request`]; and
//! answers and errors written back in the protocol the request came in.
//!
//! The XML is written by hand: five answer shapes of a few elements each, and escaping five
//! characters; an XML writer crate would add more than it saves.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The two wire protocols SQS speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Query,
}

impl Protocol {
    /// JSON when the request says so (`X-Amz-Target` or the awsJson content type), else query.
    pub fn detect(target: Option<&str>, content_type: Option<&str>) -> Protocol {
        let json_type = content_type.is_some_and(|t| t.trim_start().starts_with("application/x-amz-json"));
        if target.is_some() || json_type {
            Protocol::Json
        } else {
            Protocol::Query
        }
    }
}

/// A message attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Text(String),
    Binary(Vec<u8>),
}

/// One message attribute (or system attribute): its data type and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub data_type: String,
    pub value: AttrValue,
}

/// One message to send: `SendMessage`'s parameters, or one batch entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendEntry {
    /// The batch entry's `Id` (empty for `SendMessage`).
    pub id: String,
    pub body: Option<String>,
    pub delay_seconds: Option<i64>,
    pub attributes: Vec<(String, Attribute)>,
    pub system_attributes: Vec<(String, Attribute)>,
    pub dedup_id: Option<String>,
    pub group_id: Option<String>,
}

/// A request the door answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    SendMessage {
        queue_url: Option<String>,
        entry: SendEntry,
    },
    SendMessageBatch {
        queue_url: Option<String>,
        entries: Vec<SendEntry>,
    },
    GetQueueUrl {
        queue_name: Option<String>,
    },
    GetQueueAttributes {
        queue_url: Option<String>,
        names: Vec<String>,
    },
}

impl Request {
    pub fn action(&self) -> &'static str {
        match self {
            Request::SendMessage { .. } => "SendMessage",
            Request::SendMessageBatch { .. } => "SendMessageBatch",
            Request::GetQueueUrl { .. } => "GetQueueUrl",
            Request::GetQueueAttributes { .. } => "GetQueueAttributes",
        }
    }
}

/// An SQS error: the query-protocol code, the JSON protocol's shape name, the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The code SDKs report (`AWS.SimpleQueueService.NonExistentQueue`, `InvalidParameterValue`, …).
    pub code: &'static str,
    /// The JSON protocol's `__type` shape (`QueueDoesNotExist`, …), for modeled errors.
    pub shape: Option<&'static str>,
    pub status: u16,
    pub message: String,
    /// True when the caller is at fault (`Sender`), false when allim is (`Receiver`).
    pub sender: bool,
}

impl Fault {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> Fault {
        Fault {
            code,
            shape: None,
            status,
            message: message.into(),
            sender: status < 500,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Fault {
        Fault::new("InvalidParameterValue", 400, message)
    }

    pub fn missing(parameter: &str) -> Fault {
        Fault::new(
            "MissingParameter",
            400,
            format!("The request must contain the parameter {parameter}."),
        )
    }

    pub fn invalid_action(action: &str) -> Fault {
        Fault::new(
            "InvalidAction",
            400,
            format!(
                "The action {action} is not valid for this endpoint. allim's SQS door answers SendMessage, \
                 SendMessageBatch, GetQueueUrl and GetQueueAttributes."
            ),
        )
    }

    pub fn no_queue() -> Fault {
        Fault {
            shape: Some("QueueDoesNotExist"),
            ..Fault::new(
                "AWS.SimpleQueueService.NonExistentQueue",
                400,
                "The specified queue does not exist.",
            )
        }
    }

    /// A batch-level error whose code is `AWS.SimpleQueueService.<shape>`.
    pub fn batch(shape: &'static str, code: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            shape: Some(shape),
            ..Fault::new(code, 400, message)
        }
    }

    pub fn auth(code: &'static str, status: u16, message: String) -> Fault {
        Fault::new(code, status, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Fault {
        Fault::new("ServiceUnavailable", 503, message)
    }

    pub fn too_large(limit: usize) -> Fault {
        Fault::new(
            "RequestEntityTooLarge",
            413,
            format!("The request body is larger than {limit} bytes."),
        )
    }
}

/// Parses a request in the given protocol. `url_query` is the URL's query string (the query
/// protocol allows parameters there), `path_queue` the queue named by the request path
/// (`/{account}/{queue}`), used when a query request carries no `QueueUrl`.
pub fn parse(
    protocol: Protocol,
    target: Option<&str>,
    url_query: Option<&str>,
    body: &[u8],
    path_queue: Option<&str>,
) -> Result<Request, Fault> {
    match protocol {
        Protocol::Json => parse_json(target, body),
        Protocol::Query => parse_query(url_query, body, path_queue),
    }
}

// ---- JSON protocol ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonAttribute {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct JsonEntry {
    id: Option<String>,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    message_attributes: Option<BTreeMap<String, JsonAttribute>>,
    message_system_attributes: Option<BTreeMap<String, JsonAttribute>>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct JsonRequest {
    queue_url: Option<String>,
    queue_name: Option<String>,
    attribute_names: Option<Vec<String>>,
    entries: Option<Vec<JsonEntry>>,
    #[serde(flatten)]
    entry: JsonEntry,
}

fn parse_json(target: Option<&str>, body: &[u8]) -> Result<Request, Fault> {
    let Some(target) = target else {
        return Err(Fault::new(
            "MissingAction",
            400,
            "The request must carry X-Amz-Target: AmazonSQS.<Action>.",
        ));
    };
    let action = target.strip_prefix("AmazonSQS.").unwrap_or(target);
    if !matches!(
        action,
        "SendMessage" | "SendMessageBatch" | "GetQueueUrl" | "GetQueueAttributes"
    ) {
        return Err(Fault::invalid_action(action));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    let req: JsonRequest = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Fault::invalid(format!("The request body does not match {action}: {e}."))
        } else {
            Fault::invalid(format!("The request body is not valid JSON: {e}."))
        }
    })?;
    Ok(match action {
        "SendMessage" => Request::SendMessage {
            queue_url: req.queue_url,
            entry: json_entry(req.entry)?,
        },
        "SendMessageBatch" => Request::SendMessageBatch {
            queue_url: req.queue_url,
            entries: req
                .entries
                .unwrap_or_default()
                .into_iter()
                .map(json_entry)
                .collect::<Result<_, _>>()?,
        },
        "GetQueueUrl" => Request::GetQueueUrl {
            queue_name: req.queue_name,
        },
        _ => Request::GetQueueAttributes {
            queue_url: req.queue_url,
            names: req.attribute_names.unwrap_or_default(),
        },
    })
}

fn json_entry(e: JsonEntry) -> Result<SendEntry, Fault> {
    let attrs = |m: Option<BTreeMap<String, JsonAttribute>>| -> Result<Vec<(String, Attribute)>, Fault> {
        m.unwrap_or_default()
            .into_iter()
            .map(|(name, a)| {
                let attr = attribute(&name, a.data_type, a.string_value, a.binary_value)?;
                Ok((name, attr))
            })
            .collect()
    };
    Ok(SendEntry {
        id: e.id.unwrap_or_default(),
        body: e.message_body,
        delay_seconds: e.delay_seconds,
        attributes: attrs(e.message_attributes)?,
        system_attributes: attrs(e.message_system_attributes)?,
        dedup_id: e.message_deduplication_id,
        group_id: e.message_group_id,
    })
}

/// An attribute from its parts, with SQS's checks on them.
fn attribute(
    name: &str,
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
) -> Result<Attribute, Fault> {
    let data_type = data_type.filter(|t| !t.is_empty()).ok_or_else(|| {
        Fault::invalid(format!(
            "The message attribute '{name}' must contain a non-empty DataType."
        ))
    })?;
    let binary = data_type.starts_with("Binary");
    if !(binary || data_type.starts_with("String") || data_type.starts_with("Number")) {
        return Err(Fault::invalid(format!(
            "The type of message attribute '{name}' is invalid: {data_type} is not String, Number or Binary \
             (with an optional .suffix)."
        )));
    }
    let value = if binary {
        let encoded = binary_value.ok_or_else(|| {
            Fault::invalid(format!(
                "The message attribute '{name}' with type 'Binary' must use field 'Binary'."
            ))
        })?;
        AttrValue::Binary(B64.decode(encoded.as_bytes()).map_err(|_| {
            Fault::invalid(format!(
                "The message attribute '{name}' has a BinaryValue that is not base64."
            ))
        })?)
    } else {
        AttrValue::Text(string_value.ok_or_else(|| {
            Fault::invalid(format!(
                "The message attribute '{name}' with type '{data_type}' must use field 'String'."
            ))
        })?)
    };
    Ok(Attribute { data_type, value })
}

// ---- query protocol ----

/// The parameters of a query request: the URL's and the form body's, body last.
struct Params(BTreeMap<String, String>);

impl Params {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    /// The indexes `N` of `prefix.N.…` (or `prefix.N`), ascending.
    fn indexes(&self, prefix: &str) -> Vec<u32> {
        let mut found: Vec<u32> = self
            .0
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?.strip_prefix('.')?;
                rest.split('.').next()?.parse().ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    fn attributes(&self, prefix: &str) -> Result<Vec<(String, Attribute)>, Fault> {
        let mut out = Vec::new();
        for n in self.indexes(prefix) {
            let p = format!("{prefix}.{n}");
            let name = self
                .get(&format!("{p}.Name"))
                .ok_or_else(|| Fault::invalid(format!("{p}.Name is required.")))?;
            let attr = attribute(
                &name,
                self.get(&format!("{p}.Value.DataType")),
                self.get(&format!("{p}.Value.StringValue")),
                self.get(&format!("{p}.Value.BinaryValue")),
            )?;
            out.push((name, attr));
        }
        Ok(out)
    }

    fn entry(&self, prefix: &str) -> Result<SendEntry, Fault> {
        let key = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let delay_seconds = match self.get(&key("DelaySeconds")) {
            None => None,
            Some(s) => Some(s.trim().parse::<i64>().map_err(|_| {
                Fault::invalid(format!(
                    "Value {s} for parameter DelaySeconds is invalid. Reason: must be a whole number of seconds."
                ))
            })?),
        };
        Ok(SendEntry {
            id: self.get(&key("Id")).unwrap_or_default(),
            body: self.get(&key("MessageBody")),
            delay_seconds,
            attributes: self.attributes(&key("MessageAttribute"))?,
            system_attributes: self.attributes(&key("MessageSystemAttribute"))?,
            dedup_id: self.get(&key("MessageDeduplicationId")),
            group_id: self.get(&key("MessageGroupId")),
        })
    }
}

fn parse_query(url_query: Option<&str>, body: &[u8], path_queue: Option<&str>) -> Result<Request, Fault> {
    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(url_query.unwrap_or("").as_bytes()).chain(form_urlencoded::parse(body)) {
        params.insert(k.into_owned(), v.into_owned());
    }
    let params = Params(params);
    let Some(action) = params.get("Action") else {
        return Err(Fault::new(
            "MissingAction",
            400,
            "The request must contain the parameter Action.",
        ));
    };
    let queue_url = params.get("QueueUrl").or_else(|| path_queue.map(str::to_string));
    Ok(match action.as_str() {
        "SendMessage" => Request::SendMessage {
            queue_url,
            entry: params.entry("")?,
        },
        "SendMessageBatch" => Request::SendMessageBatch {
            queue_url,
            entries: params
                .indexes("SendMessageBatchRequestEntry")
                .into_iter()
                .map(|n| params.entry(&format!("SendMessageBatchRequestEntry.{n}")))
                .collect::<Result<_, _>>()?,
        },
        "GetQueueUrl" => Request::GetQueueUrl {
            queue_name: params.get("QueueName"),
        },
        "GetQueueAttributes" => Request::GetQueueAttributes {
            queue_url,
            names: params
                .indexes("AttributeName")
                .into_iter()
                .filter_map(|n| params.get(&format!("AttributeName.{n}")))
                .collect(),
        },
        other => return Err(Fault::invalid_action(other)),
    })
}

// ---- answers ----

/// One message stored: what `SendMessage` answers, or one `Successful` batch entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    pub message_id: String,
    pub md5_body: String,
    pub md5_attributes: Option<String>,
    pub md5_system_attributes: Option<String>,
}

/// One `Failed` batch entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub id: String,
    pub fault: Fault,
}

/// What an action answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Sent(Sent),
    Batch { successful: Vec<Sent>, failed: Vec<Failed> },
    QueueUrl(String),
    Attributes(Vec<(String, String)>),
}

const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// The body and content type of a successful answer.
pub fn render(protocol: Protocol, action: &str, answer: &Answer, request_id: &str) -> (String, &'static str) {
    match protocol {
        Protocol::Json => (render_json(answer), "application/x-amz-json-1.0"),
        Protocol::Query => (render_xml(action, answer, request_id), "text/xml"),
    }
}

/// A sent message in the JSON protocol, serialized straight from its fields: no `Value` tree
/// per answer (building one was ~3 % of the door benchmark's CPU, bench/README.md).
#[derive(Serialize)]
struct SentJson<'a> {
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "MessageId")]
    message_id: &'a str,
    #[serde(rename = "MD5OfMessageBody")]
    md5_body: &'a str,
    #[serde(rename = "MD5OfMessageAttributes", skip_serializing_if = "Option::is_none")]
    md5_attributes: Option<&'a str>,
    #[serde(rename = "MD5OfMessageSystemAttributes", skip_serializing_if = "Option::is_none")]
    md5_system_attributes: Option<&'a str>,
}

impl<'a> SentJson<'a> {
    fn of(s: &'a Sent, with_id: bool) -> Self {
        SentJson {
            id: with_id.then_some(s.id.as_str()),
            message_id: &s.message_id,
            md5_body: &s.md5_body,
            md5_attributes: s.md5_attributes.as_deref(),
            md5_system_attributes: s.md5_system_attributes.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct FailedJson<'a> {
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "SenderFault")]
    sender_fault: bool,
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: &'a str,
}

/// Both arrays always, even empty: some SDKs fail on a missing one (aws/aws-sdk-js#4523).
#[derive(Serialize)]
struct BatchJson<'a> {
    #[serde(rename = "Successful")]
    successful: Vec<SentJson<'a>>,
    #[serde(rename = "Failed")]
    failed: Vec<FailedJson<'a>>,
}

fn render_json(answer: &Answer) -> String {
    let text = match answer {
        Answer::Sent(s) => serde_json::to_string(&SentJson::of(s, false)),
        Answer::Batch { successful, failed } => serde_json::to_string(&BatchJson {
            successful: successful.iter().map(|s| SentJson::of(s, true)).collect(),
            failed: failed
                .iter()
                .map(|f| FailedJson {
                    id: &f.id,
                    sender_fault: f.fault.sender,
                    code: f.fault.code,
                    message: &f.fault.message,
                })
                .collect(),
        }),
        Answer::QueueUrl(url) => serde_json::to_string(&json!({"QueueUrl": url})),
        Answer::Attributes(attrs) => serde_json::to_string(
            &json!({"Attributes": attrs.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>()}),
        ),
    };
    text.expect("answers serialize to JSON")
}

fn el(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn sent_xml(out: &mut String, s: &Sent, with_id: bool) {
    if with_id {
        el(out, "Id", &s.id);
    }
    el(out, "MessageId", &s.message_id);
    el(out, "MD5OfMessageBody", &s.md5_body);
    if let Some(m) = &s.md5_attributes {
        el(out, "MD5OfMessageAttributes", m);
    }
    if let Some(m) = &s.md5_system_attributes {
        el(out, "MD5OfMessageSystemAttributes", m);
    }
}

fn render_xml(action: &str, answer: &Answer, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><{action}Response xmlns=\"{XMLNS}\"><{action}Result>");
    match answer {
        Answer::Sent(s) => sent_xml(&mut out, s, false),
        Answer::Batch { successful, failed } => {
            for s in successful {
                out.push_str("<SendMessageBatchResultEntry>");
                sent_xml(&mut out, s, true);
                out.push_str("</SendMessageBatchResultEntry>");
            }
            for f in failed {
                out.push_str("<BatchResultErrorEntry>");
                el(&mut out, "Id", &f.id);
                el(&mut out, "SenderFault", if f.fault.sender { "true" } else { "false" });
                el(&mut out, "Code", f.fault.code);
                el(&mut out, "Message", &f.fault.message);
                out.push_str("</BatchResultErrorEntry>");
            }
        }
        Answer::QueueUrl(url) => el(&mut out, "QueueUrl", url),
        Answer::Attributes(attrs) => {
            for (name, value) in attrs {
                out.push_str("<Attribute>");
                el(&mut out, "Name", name);
                el(&mut out, "Value", value);
                out.push_str("</Attribute>");
            }
        }
    }
    out.push_str(&format!(
        "</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    ));
    out
}

/// An error's body, content type and extra header (`x-amzn-query-error`, JSON protocol).
pub fn render_fault(protocol: Protocol, fault: &Fault, request_id: &str) -> (String, &'static str) {
    let kind = if fault.sender { "Sender" } else { "Receiver" };
    match protocol {
        Protocol::Json => {
            let shape = match fault.shape {
                Some(shape) => format!("com.amazonaws.sqs#{shape}"),
                None => format!("com.amazonaws.sqs#{}", fault.code),
            };
            (
                json!({"__type": shape, "message": fault.message}).to_string(),
                "application/x-amz-json-1.0",
            )
        }
        Protocol::Query => (
            format!(
                "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code>\
                 <Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
                escape(fault.code),
                escape(&fault.message),
                escape(request_id)
            ),
            "text/xml",
        ),
    }
}

/// The `x-amzn-query-error` header's value: how query-compatible SDKs learn the error code
/// from a JSON answer.
pub fn query_error_header(fault: &Fault) -> String {
    format!("{};{}", fault.code, if fault.sender { "Sender" } else { "Receiver" })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_batches_and_attributes_parse() {
        let body = "Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq\
            &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two\
            &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one\
            &SendMessageBatchRequestEntry.1.DelaySeconds=5\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v%26w";
        let Request::SendMessageBatch { queue_url, entries } =
            parse(Protocol::Query, None, None, body.as_bytes(), None).unwrap()
        else {
            panic!("a batch")
        };
        assert_eq!(queue_url.as_deref(), Some("http://h/000000000000/q"));
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].id.as_str(), entries[0].body.as_deref()), ("a", Some("one")));
        assert_eq!(entries[0].delay_seconds, Some(5));
        assert_eq!(
            entries[0].attributes,
            vec![(
                "k".to_string(),
                Attribute {
                    data_type: "String".into(),
                    value: AttrValue::Text("v&w".into())
                }
            )]
        );
        assert_eq!(entries[1].id, "b");
    }

    #[test]
    fn json_requests_parse_and_unknown_actions_are_named() {
        let body = br#"{"QueueUrl":"http://h/0/q","MessageBody":"hi","DelaySeconds":3,
            "MessageAttributes":{"bin":{"DataType":"Binary","BinaryValue":"AAE="}},"MessageDeduplicationId":"d1"}"#;
        let Request::SendMessage { queue_url, entry } =
            parse(Protocol::Json, Some("AmazonSQS.SendMessage"), None, body, None).unwrap()
        else {
            panic!("a send")
        };
        assert_eq!(queue_url.as_deref(), Some("http://h/0/q"));
        assert_eq!(entry.delay_seconds, Some(3));
        assert_eq!(entry.dedup_id.as_deref(), Some("d1"));
        assert_eq!(entry.attributes[0].1.value, AttrValue::Binary(vec![0, 1]));

        let err = parse(Protocol::Json, Some("AmazonSQS.ReceiveMessage"), None, b"{}", None).unwrap_err();
        assert_eq!(err.code, "InvalidAction");
        assert!(err.message.contains("ReceiveMessage"), "{}", err.message);
        let err = parse(Protocol::Query, None, None, b"Action=DeleteQueue", None).unwrap_err();
        assert_eq!(err.code, "InvalidAction");
        let err = parse(Protocol::Json, Some("AmazonSQS.SendMessage"), None, b"{nope", None).unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue");
        let bad_type = br#"{"MessageBody":"x","MessageAttributes":{"a":{"DataType":"Date","StringValue":"1"}}}"#;
        let err = parse(Protocol::Json, Some("AmazonSQS.SendMessage"), None, bad_type, None).unwrap_err();
        assert!(err.message.contains("'a'"), "{}", err.message);
    }

    #[test]
    fn a_query_request_without_queue_url_uses_the_path() {
        let r = parse(
            Protocol::Query,
            None,
            None,
            b"Action=SendMessage&MessageBody=x",
            Some("q"),
        )
        .unwrap();
        assert!(matches!(r, Request::SendMessage { queue_url: Some(q), .. } if q == "q"));
    }

    #[test]
    fn batch_answers_always_carry_both_arrays_and_xml_is_escaped() {
        let answer = Answer::Batch {
            successful: vec![],
            failed: vec![Failed {
                id: "a".into(),
                fault: Fault::invalid("<bad> & \"worse\""),
            }],
        };
        let (json, _) = render(Protocol::Json, "SendMessageBatch", &answer, "r");
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Successful"], json!([]));
        assert_eq!(v["Failed"][0]["Code"], "InvalidParameterValue");
        assert_eq!(v["Failed"][0]["SenderFault"], true);
        let (xml, kind) = render(Protocol::Query, "SendMessageBatch", &answer, "r");
        assert_eq!(kind, "text/xml");
        assert!(
            xml.contains("<Message>&lt;bad&gt; &amp; &quot;worse&quot;</Message>"),
            "{xml}"
        );
        assert!(xml.contains("<SendMessageBatchResult><BatchResultErrorEntry>"), "{xml}");
    }
}
