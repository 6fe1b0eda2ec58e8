//! `SLACK`: Slack incoming webhooks, named in `ALLIM_SLACK_WEBHOOKS`; a message's `channel`
//! picks one (absent: `default`). Each webhook has its own rate limit (Slack allows about one
//! message per second per webhook). 429 retries after `Retry-After`, 5xx and timeouts retry,
//! other 4xx (`invalid_payload`, `no_service`, `channel_not_found`, …) are permanent. Webhook
//! URLs are secrets: they are never logged. Without any webhook configured: a dry run.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::http::{
    KeyedLimiter, check_rate, is_target_name, keyed_limiter, named_setting, outcome_of_status, read_answer,
};
use super::{Channel, Deps, Job, Kind, SendOutcome};
use crate::contract::{ContractError, check_text};

pub const DEFAULT_WEBHOOK: &str = "default";
pub const TEXT_MAX: usize = 40_000;
pub const CHANNEL_MAX: usize = 64;

/// `SLACK`: a message to a Slack incoming webhook named in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// Required, ≤ 40000 characters (Slack's mrkdwn).
    #[schema(example = "New order #1042")]
    pub text: String,
    /// The configured webhook name (`[a-z0-9_-]`, ≤ 64); absent: the `default` webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "sales")]
    pub channel: Option<String>,
}

/// A named Slack incoming webhook (`name=https://hooks.slack.com/services/…`).
#[derive(Clone)]
pub struct SlackWebhook {
    pub name: String,
    pub url: SecretString,
}

impl std::fmt::Debug for SlackWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.name)
    }
}

pub fn parse_webhook(s: &str) -> Result<SlackWebhook, String> {
    let (name, url) = named_setting(s, "webhook")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("webhook {name:?}: the URL must start with https://"));
    }
    Ok(SlackWebhook {
        name,
        url: SecretString::from(url),
    })
}

/// Slack's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// Named Slack incoming webhooks: `default=https://hooks.slack.com/…,ops=https://…`. A
    /// message's `channel` picks one (absent: `default`). Without any, Slack is dry-run.
    #[arg(long, env = "ALLIM_SLACK_WEBHOOKS", value_delimiter = ',', value_parser = crate::settings::Secret(parse_webhook), hide_env_values = true, global = true)]
    pub slack_webhooks: Vec<SlackWebhook>,

    /// Most Slack posts per second, per webhook (Slack allows about one per second per webhook).
    #[arg(long, env = "ALLIM_SLACK_RATE_PER_SEC", default_value_t = 1.0, global = true)]
    pub slack_rate_per_sec: f64,
}

impl Settings {
    /// The configured webhook names.
    pub fn names(&self) -> Vec<String> {
        self.slack_webhooks.iter().map(|w| w.name.clone()).collect()
    }
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        check_rate("ALLIM_SLACK_RATE_PER_SEC", self.slack_rate_per_sec)?;
        let mut names: Vec<&str> = self.slack_webhooks.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            anyhow::bail!("ALLIM_SLACK_WEBHOOKS names a webhook twice");
        }
        Ok(())
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.slack_rate_per_sec)
    }

    fn mode(&self) -> &'static str {
        if self.slack_webhooks.is_empty() {
            "dry-run"
        } else {
            "webhooks"
        }
    }
}

impl Kind for Slack {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        check_text("text", &self.text, 1, TEXT_MAX, true)?;
        if let Some(channel) = &self.channel {
            check_text("channel", channel, 1, CHANNEL_MAX, false)?;
            if !is_target_name(channel) {
                return Err(ContractError::field(
                    "channel",
                    "must be a configured webhook name: lowercase letters, digits, '-' and '_'",
                ));
            }
        }
        Ok(())
    }

    /// With webhooks configured, the named one must exist (a dry run takes any name).
    fn check(&self, settings: &Settings) -> Result<(), ContractError> {
        let hooks = &settings.slack_webhooks;
        let name = self.channel.as_deref().unwrap_or(DEFAULT_WEBHOOK);
        if hooks.is_empty() || hooks.iter().any(|w| w.name == name) {
            return Ok(());
        }
        let configured: Vec<&str> = hooks.iter().map(|w| w.name.as_str()).collect();
        Err(ContractError::field(
            "channel",
            format!(
                "no Slack webhook named {name:?} is configured (configured: {})",
                configured.join(", ")
            ),
        ))
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        Ok(Arc::new(SlackChannel {
            http: deps.http.clone(),
            hooks: settings
                .slack_webhooks
                .iter()
                .map(|h| (h.name.clone(), h.url.clone()))
                .collect(),
            limiter: keyed_limiter(settings.slack_rate_per_sec),
        }))
    }
}

pub struct SlackChannel {
    http: reqwest::Client,
    hooks: HashMap<String, SecretString>,
    limiter: KeyedLimiter,
}

impl SlackChannel {
    async fn post(&self, job: &Job) -> SendOutcome {
        let super::Notification::Slack(msg) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let name = msg.channel.as_deref().unwrap_or(DEFAULT_WEBHOOK);
        if self.hooks.is_empty() {
            tracing::info!(delivery = %job.delivery_id, webhook = name, chars = msg.text.chars().count(),
                "slack dry run (no webhooks configured): not sent");
            return SendOutcome::Delivered { dry_run: true };
        }
        let Some(url) = self.hooks.get(name) else {
            return SendOutcome::Permanent {
                error: format!("no Slack webhook named {name:?} is configured"),
            };
        };
        self.limiter.until_key_ready(&name.to_string()).await;
        if !job.still_ours().await {
            return SendOutcome::LeaseLost;
        }
        let sent = self
            .http
            .post(url.expose_secret())
            .json(&json!({ "text": msg.text }))
            .send()
            .await;
        match read_answer("Slack", sent).await {
            Ok((status, after, text)) => outcome_of_status("Slack", status, text.trim(), after),
            Err(outcome) => outcome,
        }
    }
}

super::sender!(SlackChannel, "slack", post);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_parse() {
        let w = parse_webhook("ops=https://hooks.slack.com/services/T/B/x").unwrap();
        assert_eq!(
            (w.name.as_str(), w.url.expose_secret()),
            ("ops", "https://hooks.slack.com/services/T/B/x")
        );
        assert_eq!(format!("{w:?}"), "ops=***");
        assert!(parse_webhook("Ops=https://x").is_err());
        assert!(parse_webhook("ops").is_err());
        assert!(parse_webhook("ops=ftp://x").is_err());
    }
}
