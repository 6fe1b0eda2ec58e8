//! Helpers of the settings groups every box owns (`*Args`, flattened into `config::Config`):
//! duration values, and a group's clap defaults without reading the environment.

use std::time::Duration;

use clap::{Args, FromArgMatches};

/// Parses a duration setting: humantime's `25s`, `500ms`, `2m`, `1h30m`, or a bare number of
/// seconds (`7`), as allim has always taken.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        // try_from: a number too large for a Duration is an error, not a panic.
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a valid duration"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration ({e}); use e.g. 25s, 500ms, 2m"))
}

/// The value parser of a setting that holds a secret (tokens, keys, signing secrets, webhook
/// URLs): `Secret(parse)` runs `parse`, and on an error names the setting and the problem but
/// not the value. clap's own error quotes the value ("invalid value '…' for …"), which would put
/// the secret in the task's log; `hide_env_values` hides it from `--help` only. `parse`'s own
/// messages must not quote the value either.
#[derive(Clone)]
pub struct Secret<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Secret<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let problem = match value.to_str() {
            Some(value) => match (self.0)(value) {
                Ok(parsed) => return Ok(parsed),
                Err(problem) => problem,
            },
            None => "is not UTF-8".to_string(),
        };
        let setting = match (arg.and_then(|a| a.get_env()), arg) {
            (Some(env), Some(arg)) => format!("{} / '{arg}'", env.to_string_lossy()),
            (None, Some(arg)) => format!("'{arg}'"),
            _ => "a setting".to_string(),
        };
        Err(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("invalid value for {setting} (not shown: it holds a secret): {problem}\n"),
        )
        .with_cmd(cmd))
    }
}

/// A settings group as clap's defaults make it, reading no environment variable (tests, and
/// `Config::for_tests`, which must not drift from what `allim` runs with).
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("allim")).mut_args(|a| a.env(None));
    let matches = command.try_get_matches_from(["allim"]).expect("the defaults parse");
    T::from_arg_matches(&matches).expect("the defaults make the group")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("25s").unwrap(), Duration::from_secs(25));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("100000000000000000000").is_err(), "no panic on overflow");
        assert!(parse_duration("NaN").is_err());
    }
}
