//! The watchers file (`ALLIM_WATCHERS`, TOML): checked at start; an error names the watcher and
//! the field.

use std::collections::HashMap;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;

use super::template::Template;
use crate::channels::NotificationType;
use crate::settings::parse_duration;

/// The shortest interval between two polls of one watcher.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    timezone: Option<String>,
    #[serde(default)]
    watchers: Vec<WatcherFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatcherFile {
    name: String,
    url: String,
    method: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    interval: String,
    timeout: Option<String>,
    #[serde(default)]
    items: String,
    #[serde(default)]
    identity: Vec<String>,
    #[serde(default)]
    notify_existing: bool,
    max_items: Option<usize>,
    max_body_bytes: Option<usize>,
    #[serde(default)]
    notify: Vec<toml::Table>,
    digest: Option<DigestFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestFile {
    every: String,
    sum: Option<String>,
    first: Option<usize>,
    item: Option<String>,
}

/// One checked watcher.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub name: String,
    pub url: String,
    pub method: reqwest::Method,
    /// Header values with `${VAR}` already taken from the environment (secrets: never logged).
    pub headers: Vec<(String, secrecy::SecretString)>,
    pub interval: Duration,
    pub timeout: Duration,
    /// A JSON pointer to the items array (`""`: the body is the array).
    pub items: String,
    /// Fields whose values make an item's identity (empty: the whole item).
    pub identity: Vec<Vec<String>>,
    pub notify_existing: bool,
    pub max_items: usize,
    pub max_body_bytes: usize,
    /// The notifications to send: per new item, or per digest window when `digest` is set.
    pub notify: Vec<NotifyTemplate>,
    pub digest: Option<Digest>,
}

/// A digest: one message per window instead of one per item.
#[derive(Debug, Clone)]
pub struct Digest {
    pub every: Duration,
    /// The numeric field summed into `{sum}`.
    pub sum: Option<Vec<String>>,
    /// How many items `{first}` lists.
    pub first: usize,
    /// How each of them is written in `{first}` (default: the item's JSON).
    pub item: Option<Template>,
}

/// A notification as templates: each string (also inside arrays and tables) is a template.
#[derive(Debug, Clone)]
pub enum NotifyTemplate {
    Text(Template),
    List(Vec<NotifyTemplate>),
    Table(Vec<(String, NotifyTemplate)>),
    Fixed(Value),
}

impl NotifyTemplate {
    fn from_toml(v: toml::Value) -> Result<NotifyTemplate, String> {
        Ok(match v {
            toml::Value::String(s) => NotifyTemplate::Text(Template::parse(&s)?),
            toml::Value::Array(a) => {
                NotifyTemplate::List(a.into_iter().map(NotifyTemplate::from_toml).collect::<Result<_, _>>()?)
            }
            toml::Value::Table(t) => NotifyTemplate::Table(
                t.into_iter()
                    .map(|(k, v)| NotifyTemplate::from_toml(v).map(|t| (k, t)))
                    .collect::<Result<_, _>>()?,
            ),
            other => NotifyTemplate::Fixed(serde_json::to_value(other).map_err(|e| e.to_string())?),
        })
    }

    /// The notification's JSON, every template rendered over `item`.
    pub fn render(&self, item: &Value, tz: Tz) -> Value {
        match self {
            NotifyTemplate::Text(t) => Value::String(t.render(item, tz)),
            NotifyTemplate::List(l) => Value::Array(l.iter().map(|t| t.render(item, tz)).collect()),
            NotifyTemplate::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), v.render(item, tz))).collect()),
            NotifyTemplate::Fixed(v) => v.clone(),
        }
    }
}

/// Every watcher, and the time zone their templates and digest windows use.
#[derive(Debug, Clone)]
pub struct Watchers {
    pub timezone: Tz,
    pub watchers: Vec<Watcher>,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            timezone: chrono_tz::Asia::Seoul,
            watchers: Vec::new(),
        }
    }
}

impl Watchers {
    /// Parses and checks a watchers file. `env` reads an environment variable (for `${VAR}`).
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Watchers> {
        let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let timezone = match &file.timezone {
            Some(tz) => tz
                .parse::<Tz>()
                .map_err(|_| anyhow::anyhow!("timezone: {tz:?} is not an IANA time zone (e.g. Asia/Seoul)"))?,
            None => chrono_tz::Asia::Seoul,
        };
        let mut names = std::collections::HashSet::new();
        let mut watchers = Vec::new();
        for (i, w) in file.watchers.into_iter().enumerate() {
            let label = if w.name.is_empty() {
                format!("watcher #{}", i + 1)
            } else {
                format!("watcher {:?}", w.name)
            };
            let checked = check(w, &env).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            if !names.insert(checked.name.clone()) {
                anyhow::bail!("{label}: the name is used twice");
            }
            watchers.push(checked);
        }
        Ok(Watchers { timezone, watchers })
    }
}

fn check(w: WatcherFile, env: &impl Fn(&str) -> Option<String>) -> Result<Watcher, String> {
    if !(1..=64).contains(&w.name.len())
        || !w
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("name: use 1 to 64 letters, digits, - and _".into());
    }
    let url = reqwest::Url::parse(&w.url).map_err(|e| format!("url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url: must be http:// or https://".into());
    }
    let method = match w.method.as_deref().unwrap_or("GET").to_ascii_uppercase().as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        other => return Err(format!("method: {other} is not GET or POST")),
    };
    let mut headers = Vec::new();
    for (name, value) in w.headers {
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers: {name:?} is not a header name"))?;
        let value = expand(&value, env).map_err(|e| format!("headers.{name}: {e}"))?;
        reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| format!("headers.{name}: the value is not a valid header value"))?;
        headers.push((name, secrecy::SecretString::from(value)));
    }
    let interval = parse_duration(&w.interval).map_err(|e| format!("interval: {e}"))?;
    if interval < MIN_INTERVAL {
        return Err(format!("interval: must be at least {}s", MIN_INTERVAL.as_secs()));
    }
    let timeout = match &w.timeout {
        Some(t) => parse_duration(t).map_err(|e| format!("timeout: {e}"))?,
        None => Duration::from_secs(10),
    };
    if timeout.is_zero() || timeout > interval {
        return Err("timeout: must be more than 0 and at most the interval".into());
    }
    if !(w.items.is_empty() || w.items.starts_with('/')) {
        return Err(format!(
            "items: {:?} is not a JSON pointer (it starts with /, e.g. /data/sales; \"\" for the whole body)",
            w.items
        ));
    }
    let identity = w
        .identity
        .iter()
        .map(|f| {
            if f.is_empty() || f.split('.').any(str::is_empty) {
                Err(format!("identity: {f:?} is not a field name"))
            } else {
                Ok(f.split('.').map(str::to_string).collect())
            }
        })
        .collect::<Result<Vec<Vec<String>>, String>>()?;
    if w.notify.is_empty() {
        return Err("notify: at least one [[watchers.notify]] table (the notification to send) is required".into());
    }
    let mut notify = Vec::new();
    for (i, table) in w.notify.into_iter().enumerate() {
        let kind = table
            .get("notificationType")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("notify #{}: notificationType is required", i + 1))?;
        if NotificationType::parse(kind).is_none() {
            return Err(format!(
                "notify #{}: notificationType {kind:?} is not one of {}",
                i + 1,
                NotificationType::names()
            ));
        }
        notify
            .push(NotifyTemplate::from_toml(toml::Value::Table(table)).map_err(|e| format!("notify #{}: {e}", i + 1))?);
    }
    let digest = match w.digest {
        None => None,
        Some(d) => {
            let every = parse_duration(&d.every).map_err(|e| format!("digest.every: {e}"))?;
            if every < Duration::from_secs(60) || every > Duration::from_secs(31 * 86_400) {
                return Err("digest.every: must be between 1m and 31d".into());
            }
            let first = d.first.unwrap_or(3);
            if first > 50 {
                return Err("digest.first: at most 50".into());
            }
            Some(Digest {
                every,
                sum: d.sum.map(|s| s.split('.').map(str::to_string).collect()),
                first,
                item: d
                    .item
                    .as_deref()
                    .map(Template::parse)
                    .transpose()
                    .map_err(|e| format!("digest.item: {e}"))?,
            })
        }
    };
    let max_items = w.max_items.unwrap_or(1000);
    if !(1..=10_000).contains(&max_items) {
        return Err("max_items: between 1 and 10000".into());
    }
    let max_body_bytes = w.max_body_bytes.unwrap_or(1024 * 1024);
    if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        return Err("max_body_bytes: between 1024 and 16777216".into());
    }
    Ok(Watcher {
        name: w.name,
        url: w.url,
        method,
        headers,
        interval,
        timeout,
        items: w.items,
        identity,
        notify_existing: w.notify_existing,
        max_items,
        max_body_bytes,
        notify,
        digest,
    })
}

/// `Bearer ${TOKEN}` with TOKEN from the environment; a missing variable is an error.
fn expand(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("a '${' is not closed")?;
        let var = &after[..end];
        out.push_str(&env(var).ok_or_else(|| format!("the environment variable {var} is not set"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALES: &str = r#"
timezone = "Asia/Seoul"
[[watchers]]
name = "sales"
url = "http://127.0.0.1:9/api/sales"
headers = { Authorization = "Bearer ${SALES_TOKEN}" }
interval = "10m"
identity = ["amount", "at"]
[[watchers.notify]]
notificationType = "SLACK"
text = "새 주문 {amount:#,###}원 ({at:%H:%M})"
"#;

    #[test]
    fn a_sales_watcher_parses() {
        let w = Watchers::parse(SALES, |v| (v == "SALES_TOKEN").then(|| "s3cret".to_string())).unwrap();
        let s = &w.watchers[0];
        assert_eq!(s.interval, Duration::from_secs(600));
        assert_eq!(s.identity, vec![vec!["amount".to_string()], vec!["at".to_string()]]);
        assert_eq!(secrecy::ExposeSecret::expose_secret(&s.headers[0].1), "Bearer s3cret");
        assert!(!format!("{s:?}").contains("s3cret"), "the secret is never printed");
    }

    /// The README's sales example is a valid watchers file.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("# watchers.toml").expect("the example is in the README");
        let block = &readme[start..];
        let block = &block[..block.find("```").expect("the block ends")];
        let w = Watchers::parse(block, |v| (v == "SHOP_API_TOKEN").then(|| "t".to_string())).unwrap();
        assert_eq!(w.watchers.len(), 2);
        assert_eq!(w.watchers[0].notify.len(), 2, "Slack and SMS");
        let d = w.watchers[1].digest.as_ref().expect("the daily digest");
        assert_eq!(d.every, Duration::from_secs(86_400));
    }

    #[test]
    fn errors_name_the_watcher_and_the_field() {
        let e = Watchers::parse(SALES, |_| None).unwrap_err().to_string();
        assert!(e.contains("watcher \"sales\"") && e.contains("SALES_TOKEN"), "{e}");
        for (from, to, says) in [
            (
                "interval = \"10m\"",
                "interval = \"5s\"",
                "interval: must be at least 10s",
            ),
            (
                "identity = [",
                "items = \"data\"\nidentity = [",
                "items: \"data\" is not a JSON pointer",
            ),
            (
                "notificationType = \"SLACK\"",
                "notificationType = \"FAX\"",
                "notify #1: notificationType \"FAX\"",
            ),
            ("{amount:#,###}", "{amount:??}", "notify #1: {amount:??}"),
        ] {
            let text = SALES.replace(from, to);
            let e = Watchers::parse(&text, |_| Some("x".into())).unwrap_err().to_string();
            assert!(e.contains("watcher \"sales\"") && e.contains(says), "{e}");
        }
    }
}
