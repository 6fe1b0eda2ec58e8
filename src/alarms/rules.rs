//! Alarm routing rules, read from `ALLIM_ALARM_RULES` (a TOML file) and checked at start: an
//! error names the rule and the field. YAML rule files are not read: the YAML crate allim used
//! (serde_yaml) is unmaintained, and TOML says the same as plainly.
//!
//! ```toml
//! timezone = "Asia/Seoul"   # times in messages (default Asia/Seoul)
//! flap_limit = 3            # notifications per alarm per window; the rest are summarised
//! flap_window = "30m"
//!
//! [[rules]]
//! name = "api-oncall"
//! alarm = "api-*"                    # glob on the alarm name (* and ?)
//! accounts = ["123456789012"]        # optional
//! regions = ["ap-northeast-2"]       # optional
//! states = ["ALARM", "OK"]           # default; add "INSUFFICIENT_DATA" to get those too
//! sms = ["010-1234-5678"]
//! slack = ["ops"]                    # names from ALLIM_SLACK_WEBHOOKS
//! quiet_hours = { from = "00:00", to = "07:00" }  # no recovery SMS then; ALARM always goes
//! template = "[{state}] {name} ({region}) {time} {value} {op} {threshold}"
//! ```

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{NaiveTime, Timelike};
use chrono_tz::Tz;
use serde::Deserialize;

use super::payload::{Alarm, AlarmState, number, operator};
use crate::channels::sens::RECIPIENTS_MAX;
use crate::channels::sens::korean::{SMS_BYTES_MAX, euc_kr_len, normalize_korean_number};
use crate::settings::parse_duration;

/// The default message: fits one SMS, e.g. `[ALARM] api-5xx-high (ap-northeast-2) 10:31 KST 12.0 > 5.0`.
pub const DEFAULT_TEMPLATE: &str = "[{state}] {name} ({region}) {time} {value} {op} {threshold}";

const PLACEHOLDERS: [&str; 9] = [
    "state",
    "name",
    "region",
    "account",
    "time",
    "value",
    "op",
    "threshold",
    "reason",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    flap_limit: Option<u32>,
    #[serde(default)]
    flap_window: Option<String>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    alarm: String,
    #[serde(default)]
    accounts: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    states: Option<Vec<String>>,
    #[serde(default)]
    sms: Vec<String>,
    #[serde(default)]
    slack: Vec<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    quiet_hours: Option<QuietFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietFile {
    from: String,
    to: String,
}

/// Hours in which recovery (OK) and INSUFFICIENT_DATA messages are not sent by SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl QuietHours {
    /// Whether `t` falls inside (the range may wrap midnight).
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.from <= self.to {
            t >= self.from && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub alarm: String,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub states: Vec<AlarmState>,
    /// Domestic digits.
    pub sms: Vec<String>,
    pub slack: Vec<String>,
    pub template: String,
    pub quiet_hours: Option<QuietHours>,
}

impl Rule {
    pub fn matches(&self, alarm: &Alarm) -> bool {
        glob(&self.alarm, &alarm.name)
            && (self.accounts.is_empty() || self.accounts.contains(&alarm.account))
            && (self.regions.is_empty() || self.regions.contains(&alarm.region))
            && self.states.contains(&alarm.state)
    }

    /// Whether the rule routes this alarm in any state (for silences and summaries).
    pub fn matches_any_state(&self, alarm: &Alarm) -> bool {
        glob(&self.alarm, &alarm.name)
            && (self.accounts.is_empty() || self.accounts.contains(&alarm.account))
            && (self.regions.is_empty() || self.regions.contains(&alarm.region))
    }
}

/// All the rules plus the shared settings.
#[derive(Debug, Clone)]
pub struct Rules {
    pub timezone: Tz,
    pub flap_limit: u32,
    pub flap_window: Duration,
    pub rules: Vec<Rule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            timezone: chrono_tz::Asia::Seoul,
            flap_limit: 3,
            flap_window: Duration::from_secs(30 * 60),
            rules: Vec::new(),
        }
    }
}

impl Rules {
    /// Reads and checks the rules file. `slack_webhooks`: the configured webhook names.
    pub fn load(path: &std::path::Path, slack_webhooks: &[String]) -> anyhow::Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("ALLIM_ALARM_RULES: cannot read {}", path.display()))?;
        if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            bail!(
                "ALLIM_ALARM_RULES: {} is YAML; allim reads rules as TOML only (same fields, see the README)",
                path.display()
            );
        }
        Self::parse(&text, slack_webhooks).with_context(|| format!("ALLIM_ALARM_RULES ({})", path.display()))
    }

    pub fn parse(text: &str, slack_webhooks: &[String]) -> anyhow::Result<Rules> {
        let file: RulesFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("not valid TOML rules: {e}"))?;
        let timezone = match &file.timezone {
            Some(z) => {
                Tz::from_str(z).map_err(|_| anyhow::anyhow!("timezone {z:?} is not an IANA zone such as Asia/Seoul"))?
            }
            None => chrono_tz::Asia::Seoul,
        };
        let flap_limit = file.flap_limit.unwrap_or(3);
        if flap_limit == 0 || flap_limit > 1000 {
            bail!("flap_limit must be between 1 and 1000");
        }
        let flap_window = match &file.flap_window {
            Some(w) => parse_duration(w).map_err(|e| anyhow::anyhow!("flap_window: {e}"))?,
            None => Duration::from_secs(30 * 60),
        };
        if flap_window < Duration::from_secs(1) || flap_window > Duration::from_secs(24 * 3600) {
            bail!("flap_window must be between 1s and 24h");
        }
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            let label = format!("rule #{} ({:?})", i + 1, r.name);
            let rule = check_rule(r, slack_webhooks).with_context(|| label.clone())?;
            if rules.iter().any(|x: &Rule| x.name == rule.name) {
                bail!("{label}: the name is used by an earlier rule");
            }
            rules.push(rule);
        }
        Ok(Rules {
            timezone,
            flap_limit,
            flap_window,
            rules,
        })
    }

    /// The rules that route this alarm state.
    pub fn matching<'a>(&'a self, alarm: &'a Alarm) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.matches(alarm))
    }

    /// The text of a rule's message for an alarm.
    pub fn render(&self, template: &str, alarm: &Alarm) -> String {
        let local = alarm.changed_at.with_timezone(&self.timezone);
        let mut out = template.to_string();
        let values = [
            ("state", alarm.state.as_str().to_string()),
            ("name", alarm.name.clone()),
            ("region", alarm.region.clone()),
            ("account", alarm.account.clone()),
            ("time", local.format("%H:%M %Z").to_string()),
            ("value", alarm.value.map(number).unwrap_or_else(|| "-".into())),
            ("op", operator(alarm.comparison.as_deref(), alarm.state).to_string()),
            ("threshold", alarm.threshold.map(number).unwrap_or_else(|| "-".into())),
            ("reason", alarm.reason.clone()),
        ];
        for (k, v) in values {
            out = out.replace(&format!("{{{k}}}"), &v);
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Whether the alarm's time of change falls in a rule's quiet hours.
    pub fn in_quiet_hours(&self, rule: &Rule, at: chrono::DateTime<chrono::FixedOffset>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or_default();
        rule.quiet_hours.as_ref().is_some_and(|q| q.contains(t))
    }
}

fn check_rule(r: RuleFile, slack_webhooks: &[String]) -> anyhow::Result<Rule> {
    if r.name.trim().is_empty() {
        bail!("name must not be empty");
    }
    if r.alarm.trim().is_empty() {
        bail!("alarm (a glob on the alarm name) must not be empty");
    }
    let states = match r.states {
        None => vec![AlarmState::Alarm, AlarmState::Ok],
        Some(list) => list
            .iter()
            .map(|s| {
                AlarmState::parse(s)
                    .ok_or_else(|| anyhow::anyhow!("states: {s:?} is not ALARM, OK or INSUFFICIENT_DATA"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if states.is_empty() {
        bail!("states must not be empty");
    }
    let mut sms = Vec::new();
    for (i, n) in r.sms.iter().enumerate() {
        let number =
            normalize_korean_number(n).ok_or_else(|| anyhow::anyhow!("sms[{i}] {n:?} is not a Korean phone number"))?;
        if !sms.contains(&number) {
            sms.push(number);
        }
    }
    if sms.len() > RECIPIENTS_MAX {
        bail!("sms lists more than {} numbers", RECIPIENTS_MAX);
    }
    for (i, s) in r.slack.iter().enumerate() {
        if !slack_webhooks.is_empty() && !slack_webhooks.contains(s) {
            bail!(
                "slack[{i}] {s:?} is not a webhook in ALLIM_SLACK_WEBHOOKS ({})",
                slack_webhooks.join(", ")
            );
        }
    }
    if sms.is_empty() && r.slack.is_empty() {
        bail!("needs at least one receiver (sms or slack)");
    }
    let template = r.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
    check_template(&template)?;
    let quiet_hours = r
        .quiet_hours
        .map(|q| -> anyhow::Result<QuietHours> {
            let t = |field: &str, s: &str| {
                NaiveTime::parse_from_str(s, "%H:%M")
                    .map_err(|_| anyhow::anyhow!("quiet_hours.{field} {s:?} is not HH:MM"))
            };
            Ok(QuietHours {
                from: t("from", &q.from)?,
                to: t("to", &q.to)?,
            })
        })
        .transpose()?;
    Ok(Rule {
        name: r.name,
        alarm: r.alarm,
        accounts: r.accounts,
        regions: r.regions,
        states,
        sms,
        slack: r.slack,
        template,
        quiet_hours,
    })
}

fn check_template(t: &str) -> anyhow::Result<()> {
    if t.trim().is_empty() {
        bail!("template must not be empty");
    }
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("template has an unclosed '{{'"))?;
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            bail!("template: {{{name}}} is not one of {{{}}}", PLACEHOLDERS.join("}, {"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Makes text fit one SMS: characters EUC-KR cannot carry become `?`, and it is cut to 90 bytes.
pub fn fit_sms(text: &str) -> String {
    let mut out = String::new();
    let mut bytes = 0;
    for c in text.chars() {
        let c = if euc_kr_len("", c.encode_utf8(&mut [0; 4])).is_ok() && !c.is_control() {
            c
        } else {
            '?'
        };
        let n = if c.is_ascii() { 1 } else { 2 };
        if bytes + n > SMS_BYTES_MAX {
            break;
        }
        bytes += n;
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const RULES: &str = r#"
timezone = "Asia/Seoul"
flap_limit = 2
flap_window = "10m"

[[rules]]
name = "api"
alarm = "api-*"
regions = ["ap-northeast-2"]
sms = ["010-1234-5678"]
quiet_hours = { from = "00:00", to = "07:00" }
"#;

    /// An alarm of `name` changing to `state` at 10:31 KST.
    pub(crate) fn alarm(name: &str, state: AlarmState) -> Alarm {
        Alarm {
            name: name.into(),
            account: "123456789012".into(),
            region: "ap-northeast-2".into(),
            arn: None,
            state,
            old_state: None,
            reason: String::new(),
            changed_at: chrono::DateTime::parse_from_rfc3339("2026-11-22T01:31:00Z").unwrap(),
            value: Some(12.0),
            threshold: Some(5.0),
            comparison: Some("GreaterThanThreshold".into()),
        }
    }

    #[test]
    fn default_template_fits_one_sms() {
        let rules = Rules::parse(RULES, &[]).unwrap();
        let a = alarm("api-5xx-high", AlarmState::Alarm);
        let text = rules.render(DEFAULT_TEMPLATE, &a);
        assert_eq!(text, "[ALARM] api-5xx-high (ap-northeast-2) 10:31 KST 12.0 > 5.0");
        assert_eq!(fit_sms(&text), text);
        assert_eq!(
            rules.render(DEFAULT_TEMPLATE, &alarm("api-5xx-high", AlarmState::Ok)),
            "[OK] api-5xx-high (ap-northeast-2) 10:31 KST 12.0 <= 5.0"
        );
        assert_eq!(fit_sms(&"x".repeat(200)).len(), 90);
        assert_eq!(fit_sms("ok 🚨"), "ok ?");
    }

    #[test]
    fn matching_and_quiet_hours() {
        let rules = Rules::parse(RULES, &[]).unwrap();
        let r = &rules.rules[0];
        assert!(r.matches(&alarm("api-5xx-high", AlarmState::Alarm)));
        assert!(!r.matches(&alarm("db-cpu", AlarmState::Alarm)));
        assert!(
            !r.matches(&alarm("api-x", AlarmState::InsufficientData)),
            "INSUFFICIENT_DATA is off by default"
        );
        let night = chrono::DateTime::parse_from_rfc3339("2026-11-22T17:30:00Z").unwrap(); // 02:30 KST
        assert!(rules.in_quiet_hours(r, night));
        assert!(!rules.in_quiet_hours(r, alarm("x", AlarmState::Ok).changed_at));
        assert_eq!(r.sms, vec!["01012345678"]);
        assert!(glob("a*b?c", "axxbyc") && !glob("a*b?c", "axxbc") && glob("*", "") && glob("api-*", "api-"));
    }

    #[test]
    fn errors_name_the_rule_and_field() {
        let bad = |text: &str| format!("{:#}", Rules::parse(text, &["ops".into()]).unwrap_err());
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\nsms = [\"123\"]\n");
        assert!(e.contains("rule #1 (\"r1\")") && e.contains("sms[0]"), "{e}");
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\nslack = [\"sales\"]\n");
        assert!(e.contains("slack[0] \"sales\""), "{e}");
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\nslack = [\"ops\"]\ntemplate = \"{nope}\"\n");
        assert!(e.contains("{nope}"), "{e}");
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\nslack = [\"ops\"]\nstates = [\"ALARM\", \"BAD\"]\n");
        assert!(e.contains("states"), "{e}");
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\n");
        assert!(e.contains("at least one receiver"), "{e}");
        let e = bad("timezone = \"Mars/Base\"\n");
        assert!(e.contains("timezone"), "{e}");
        let e = bad("[[rules]]\nname = \"r1\"\nalarm = \"*\"\nslak = [\"ops\"]\n");
        assert!(e.contains("slak"), "{e}");
        let dir = std::env::temp_dir().join(format!("allim-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("rules.yaml");
        std::fs::write(&yaml, "rules: []\n").unwrap();
        let e = format!("{:#}", Rules::load(&yaml, &[]).unwrap_err());
        assert!(e.contains("TOML only"), "{e}");
    }
}
