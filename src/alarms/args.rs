//! The alarm settings group.

use std::time::Duration;

use super::Rules;
use crate::settings::parse_duration;

/// The alarm settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AlarmArgs {
    /// Alarm routing rules file (TOML).
    #[arg(long, env = "ALLIM_ALARM_RULES", global = true)]
    pub alarm_rules: Option<std::path::PathBuf>,

    /// The rules themselves (TOML), instead of a file (e.g. injected from SSM Parameter Store).
    #[arg(long, env = "ALLIM_ALARM_RULES_TOML", global = true)]
    pub alarm_rules_toml: Option<String>,

    /// How often to send the flap summaries of windows that have ended.
    #[arg(long, env = "ALLIM_ALARM_TICK", default_value = "10s", value_parser = parse_duration, global = true)]
    pub alarm_tick: Duration,
}

impl AlarmArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.alarm_rules.is_some() && self.alarm_rules_toml.is_some() {
            anyhow::bail!("set ALLIM_ALARM_RULES or ALLIM_ALARM_RULES_TOML, not both");
        }
        if self.alarm_tick < Duration::from_millis(10) {
            anyhow::bail!("ALLIM_ALARM_TICK must be at least 10ms");
        }
        Ok(())
    }

    /// The rules, read and checked. `slack_webhooks`: the configured webhook names.
    pub fn rules(&self, slack_webhooks: &[String]) -> anyhow::Result<Rules> {
        use anyhow::Context;
        match (&self.alarm_rules, &self.alarm_rules_toml) {
            (Some(path), _) => Rules::load(path, slack_webhooks),
            (None, Some(text)) => Rules::parse(text, slack_webhooks).context("ALLIM_ALARM_RULES_TOML"),
            (None, None) => Ok(Rules::default()),
        }
    }
}
