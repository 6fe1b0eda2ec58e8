//! Templates over a JSON item: `{amount}`, nested `{customer.name}` / `{lines.0.sku}`, numbers
//! formatted `{amount:#,###}` (thousands separators; `#,##0.00` for two decimals) and times
//! `{at:%H:%M KST}` (chrono's `strftime` in the configured time zone; the value is an RFC 3339
//! time or Unix seconds). `{{` and `}}` are literal braces. A missing field renders empty.
//!
//! Written here rather than taken from a template crate: the language is one placeholder with
//! two formats, and the crates that do formatting (tera, minijinja) bring a whole language and
//! their own syntax (`{{ }}`) to learn for it.

use chrono_tz::Tz;
use serde_json::Value;

/// One parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field { path: Vec<String>, format: Format },
}

#[derive(Debug, Clone, PartialEq)]
enum Format {
    Plain,
    /// Thousands separators?, decimals.
    Number {
        group: bool,
        decimals: usize,
    },
    /// A chrono format string.
    Time(String),
}

impl Template {
    /// Parses `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(format!("a lone '}}' at {i} (write '}}}}' for a brace)")),
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(format!("'{{' at {i} is not closed"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(field(&inner).map_err(|e| format!("{{{inner}}}: {e}"))?);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// Renders over `item`, times in `tz`.
    pub fn render(&self, item: &Value, tz: Tz) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { path, format } => {
                    if let Some(v) = lookup(item, path) {
                        out.push_str(&format_value(v, format, tz));
                    }
                }
            }
        }
        out
    }
}

fn field(inner: &str) -> Result<Part, String> {
    let (path, format) = match inner.split_once(':') {
        Some((p, f)) => (p.trim(), Some(f)),
        None => (inner.trim(), None),
    };
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err("needs a field name (e.g. {amount} or {customer.name})".into());
    }
    let format = match format {
        None => Format::Plain,
        Some(f) if f.contains('%') => {
            // Check the format once: chrono reports a bad specifier only when formatting.
            let probe = chrono::DateTime::from_timestamp(0, 0).expect("the epoch");
            let mut s = String::new();
            if std::fmt::Write::write_fmt(&mut s, format_args!("{}", probe.format(f))).is_err() {
                return Err(format!(
                    "{f:?} is not a time format (use strftime, e.g. %Y-%m-%d %H:%M)"
                ));
            }
            Format::Time(f.to_string())
        }
        Some(f) if !f.is_empty() && f.chars().all(|c| matches!(c, '#' | '0' | ',' | '.')) => {
            let decimals = f.split_once('.').map_or(0, |(_, d)| d.len());
            Format::Number {
                group: f.contains(','),
                decimals,
            }
        }
        Some(f) => {
            return Err(format!(
                "{f:?} is neither a number format (#,###  #,##0.00) nor a time format (%H:%M)"
            ));
        }
    };
    Ok(Part::Field {
        path: path.split('.').map(str::to_string).collect(),
        format,
    })
}

/// The value at a dotted path: object keys, array indexes.
pub fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A number, from a JSON number or a numeric string.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', "").parse().ok(),
        _ => None,
    }
}

fn format_value(v: &Value, format: &Format, tz: Tz) -> String {
    match format {
        Format::Plain => match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        },
        Format::Number { group, decimals } => match number(v) {
            Some(n) => format_number(n, *group, *decimals),
            None => format_value(v, &Format::Plain, tz),
        },
        Format::Time(f) => {
            let at = match v {
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| t.with_timezone(&tz)),
                Value::Number(n) => n
                    .as_i64()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(|t| t.with_timezone(&tz)),
                _ => None,
            };
            match at {
                Some(t) => t.format(f).to_string(),
                None => format_value(v, &Format::Plain, tz),
            }
        }
    }
}

/// `1234567.891` → `1,234,567.89` (grouped, 2 decimals).
pub fn format_number(n: f64, group: bool, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, n.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if group && i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if n < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_numbers_and_times_render() {
        let item = json!({"amount": 1234567, "at": "2023-08-11T02:30:00Z", "customer": {"name": "홍길동"},
            "lines": [{"sku": "A-1"}], "price": "19900.5"});
        let seoul = chrono_tz::Asia::Seoul;
        let t = |s: &str| Template::parse(s).unwrap().render(&item, seoul);
        assert_eq!(t("{amount:#,###}원 at {at:%H:%M KST}"), "1,234,567원 at 11:30 KST");
        assert_eq!(t("{customer.name} bought {lines.0.sku}"), "홍길동 bought A-1");
        assert_eq!(t("{price:#,##0.00} {{literal}} {missing}."), "19,900.50 {literal} .");
        assert_eq!(t("{amount}"), "1234567");
        assert_eq!(format_number(-1234.5, true, 0), "-1,234");
        assert_eq!(format_number(999.0, true, 0), "999");
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("{amount", "not closed"),
            ("{}", "needs a field name"),
            ("{a:xyz}", "neither a number format"),
            ("a } b", "lone"),
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
