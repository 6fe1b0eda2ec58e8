//! Logging: JSON lines in production (CloudWatch Logs), readable lines on a terminal.
//! Secrets never reach a log line: configuration is logged redacted, tokens not at all, and
//! phone numbers / push tokens go through [`mask`]. Metrics live in [`metrics`].

pub mod metrics;

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

pub use metrics::{LaneStats, Metrics, SharedMetrics};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    Pretty,
    /// One JSON object per line (the default otherwise, e.g. on ECS / CloudWatch Logs).
    Json,
}

/// The logging settings.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: `pretty` or `json` (default: pretty on a terminal, json otherwise).
    #[arg(long, env = "ALLIM_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,

    /// Log filter in `tracing` syntax, e.g. `info` or `allim=debug,sqlx=warn`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

impl LogArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        EnvFilter::try_new(&self.log_filter).map_err(|e| anyhow::anyhow!("RUST_LOG is not a valid filter: {e}"))?;
        Ok(())
    }
}

/// Installs the global subscriber (once; later calls are ignored, which suits tests).
pub fn init(config: &LogArgs) {
    let format = config.log_format.unwrap_or(if std::io::stdout().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // A line that cannot be written (stdout closed) is dropped. tracing-subscriber would report
    // it with eprintln!, which panics when stderr is closed too: in whatever task logged, the
    // SIGTERM handler's among them, which left allim deaf to SIGTERM.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false);
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
