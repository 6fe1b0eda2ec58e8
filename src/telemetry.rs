//! Logging: JSON lines in production (CloudWatch Logs), readable lines on a terminal.
//! Secrets never reach a log line: configuration is logged redacted, tokens not at all, and
//! phone numbers / push tokens go through [`mask`].

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber (once; later calls are ignored, which suits tests).
pub fn init(config: &Config) {
    let format = config.log_format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Masks all but the last 4 characters: `01012345678` → `*******5678`.
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    let keep = if n > 8 { 4 } else { n.min(2) };
    let mut out: String = "*".repeat(n - keep);
    out.extend(s.chars().skip(n - keep));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks() {
        assert_eq!(super::mask("01012345678"), "*******5678");
        assert_eq!(super::mask("abc"), "*bc");
    }
}
