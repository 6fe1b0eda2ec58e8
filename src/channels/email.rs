//! `EMAIL`: Amazon SES v2 `SendEmail` (aws-sdk-sesv2), with region, credentials and endpoint
//! from the standard AWS chain, as SQS.
//!
//! Addresses are checked at accept time (the `email_address` crate; SES wants a 7-bit local
//! part); one message goes to up to 50 recipients (SES's cap). Errors: throttling, 5xx and
//! timeouts retry; `MessageRejected`, `BadRequest`, `NotFound`, `LimitExceeded` are permanent;
//! `AccountSuspended`, `SendingPaused` and `MailFromDomainNotVerified` are the account's problem,
//! not the message's: the lane pauses. Without `ALLIM_EMAIL_FROM`: a dry run.

use std::sync::Arc;

use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::http::{Limiter, check_rate, limiter, truncate};
use super::{AwsConfig, Channel, Deps, Job, Kind, SendOutcome};
use crate::contract::{ContractError, check_opt, check_text, limits};
use crate::telemetry::mask;

pub const RECIPIENTS_MAX: usize = 50;
pub const BODY_MAX_BYTES: usize = 256 * 1024;

/// `EMAIL`: an email through Amazon SES.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Email {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    /// 1 to 50 addresses, duplicates removed.
    #[schema(example = json!(["kim@example.com"]))]
    pub to: Vec<String>,
    /// Required, ≤ 200 characters.
    #[schema(example = "Your order has shipped")]
    pub subject: String,
    /// Plain text body; `text` or `html` is required (≤ 256 KiB together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

fn check_address(field: &str, a: &str) -> Result<(), ContractError> {
    let ok = email_address::EmailAddress::is_valid(a) && a.split('@').next().is_some_and(|local| local.is_ascii());
    if ok {
        Ok(())
    } else {
        Err(ContractError::field(
            field,
            "is not an email address SES can send to (local part in ASCII)",
        ))
    }
}

impl Kind for Email {
    type Settings = Settings;

    fn validate(&mut self) -> Result<(), ContractError> {
        if self.to.is_empty() {
            return Err(ContractError::field("to", "must list at least one address"));
        }
        let mut unique: Vec<String> = Vec::with_capacity(self.to.len());
        for (i, a) in self.to.iter().enumerate() {
            let a = a.trim();
            check_address(&format!("to[{i}]"), a)?;
            if !unique.iter().any(|u| u.eq_ignore_ascii_case(a)) {
                unique.push(a.to_string());
            }
        }
        if unique.len() > RECIPIENTS_MAX {
            return Err(ContractError::field(
                "to",
                format!("must list at most {RECIPIENTS_MAX} addresses (SES's limit)"),
            ));
        }
        self.to = unique;
        check_text("subject", &self.subject, 1, limits::TITLE_MAX, false)?;
        check_opt("text", &self.text, BODY_MAX_BYTES, true)?;
        check_opt("html", &self.html, BODY_MAX_BYTES, true)?;
        if self.text.is_none() && self.html.is_none() {
            return Err(ContractError::field("text", "text or html is required"));
        }
        let size = self.text.as_deref().map_or(0, str::len) + self.html.as_deref().map_or(0, str::len);
        if size > BODY_MAX_BYTES {
            return Err(ContractError::field(
                "text",
                format!("text and html together must be at most {BODY_MAX_BYTES} bytes"),
            ));
        }
        if let Some(r) = &self.reply_to {
            check_address("replyTo", r)?;
        }
        Ok(())
    }

    fn build(settings: &Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>> {
        Ok(Arc::new(EmailChannel {
            from: settings.email_from.clone(),
            configuration_set: settings.ses_configuration_set.clone(),
            aws: deps.aws.clone(),
            timeout: deps.http_timeout,
            client: tokio::sync::OnceCell::new(),
            limiter: limiter(settings.email_rate_per_sec),
        }))
    }
}

/// The email settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// The verified SES identity emails are sent from (`allim@example.com` or
    /// `Shop <noreply@example.com>`). Without it, email is dry-run (logged only).
    #[arg(long, env = "ALLIM_EMAIL_FROM", global = true)]
    pub email_from: Option<String>,

    /// SES configuration set for sending events (optional).
    #[arg(long, env = "ALLIM_SES_CONFIGURATION_SET", global = true)]
    pub ses_configuration_set: Option<String>,

    /// Most emails per second (SES's default sending rate is 14).
    #[arg(long, env = "ALLIM_EMAIL_RATE_PER_SEC", default_value_t = 14.0, global = true)]
    pub email_rate_per_sec: f64,
}

impl super::Settings for Settings {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(from) = &self.email_from {
            let address = from
                .rsplit_once('<')
                .map_or(from.as_str(), |(_, a)| a.trim_end_matches('>'));
            if !email_address::EmailAddress::is_valid(address.trim()) {
                anyhow::bail!("ALLIM_EMAIL_FROM: {from:?} is not an email address");
            }
        }
        check_rate("ALLIM_EMAIL_RATE_PER_SEC", self.email_rate_per_sec)
    }

    fn mode(&self) -> &'static str {
        if self.email_from.is_some() { "ses" } else { "dry-run" }
    }

    fn rate_per_sec(&self) -> Option<f64> {
        Some(self.email_rate_per_sec)
    }
}

pub struct EmailChannel {
    from: Option<String>,
    configuration_set: Option<String>,
    aws: AwsConfig,
    /// Every SES call has a deadline: `ALLIM_HTTP_TIMEOUT` per attempt, three of them in all.
    timeout: std::time::Duration,
    client: tokio::sync::OnceCell<aws_sdk_sesv2::Client>,
    limiter: Limiter,
}

impl EmailChannel {
    async fn send_email(&self, job: &Job) -> SendOutcome {
        let super::Notification::Email(email) = &job.notification else {
            return SendOutcome::wrong_type(self.name(), job);
        };
        let Some(from) = &self.from else {
            let to: Vec<String> = email.to.iter().map(|a| mask(a)).collect();
            tracing::info!(delivery = %job.delivery_id, ?to, "email dry run (no ALLIM_EMAIL_FROM): not sent");
            return SendOutcome::Delivered { dry_run: true };
        };
        let client = self
            .client
            .get_or_init(|| async {
                let timeouts = aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(self.timeout.min(std::time::Duration::from_secs(5)))
                    .operation_attempt_timeout(self.timeout)
                    .operation_timeout(self.timeout * 3)
                    .build();
                let config = aws_sdk_sesv2::config::Builder::from(self.aws.get().await)
                    .timeout_config(timeouts)
                    .build();
                aws_sdk_sesv2::Client::from_conf(config)
            })
            .await;
        self.limiter.until_ready().await;
        if !job.still_ours().await {
            return SendOutcome::LeaseLost;
        }
        let content = |data: &str| Content::builder().data(data).charset("UTF-8").build();
        let (Ok(subject), text, html) = (
            content(&email.subject),
            email.text.as_deref().map(content).transpose(),
            email.html.as_deref().map(content).transpose(),
        ) else {
            return SendOutcome::Permanent {
                error: "email content could not be built".into(),
            };
        };
        let (Ok(text), Ok(html)) = (text, html) else {
            return SendOutcome::Permanent {
                error: "email content could not be built".into(),
            };
        };
        let body = Body::builder().set_text(text).set_html(html).build();
        let message = Message::builder().subject(subject).body(body).build();
        let result = client
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().set_to_addresses(Some(email.to.clone())).build())
            .set_reply_to_addresses(email.reply_to.clone().map(|r| vec![r]))
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match result {
            Ok(out) => {
                tracing::info!(delivery = %job.delivery_id, message_id = out.message_id().unwrap_or_default(), recipients = email.to.len(), "email accepted by SES");
                SendOutcome::Delivered { dry_run: false }
            }
            Err(e) => outcome_of_error(&e),
        }
    }
}

/// What an SES error means for the delivery.
fn outcome_of_error(e: &SdkError<SendEmailError>) -> SendOutcome {
    let error = truncate(&format!("SES: {}", aws_sdk_sesv2::error::DisplayErrorContext(e)), 500);
    let Some(service) = e.as_service_error() else {
        // Timeouts, connection failures, 5xx without a modelled error: try again.
        return SendOutcome::Retry { error, after: None };
    };
    match service {
        SendEmailError::TooManyRequestsException(_) => SendOutcome::Retry { error, after: None },
        SendEmailError::AccountSuspendedException(_)
        | SendEmailError::SendingPausedException(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_) => SendOutcome::Credentials { error },
        SendEmailError::MessageRejected(_)
        | SendEmailError::BadRequestException(_)
        | SendEmailError::NotFoundException(_)
        | SendEmailError::LimitExceededException(_) => SendOutcome::Permanent { error },
        _ if e.raw_response().is_some_and(|r| r.status().is_server_error()) => {
            SendOutcome::Retry { error, after: None }
        }
        _ => SendOutcome::Permanent { error },
    }
}

super::sender!(EmailChannel, "email", send_email);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Kind;

    fn email(to: &[&str]) -> Email {
        Email {
            idempotency_key: None,
            deliver_at: None,
            to: to.iter().map(|s| s.to_string()).collect(),
            subject: "s".into(),
            text: Some("t".into()),
            html: None,
            reply_to: None,
        }
    }

    #[test]
    fn addresses_are_checked_at_accept_time() {
        let mut ok = email(&["kim@example.com", "KIM@example.com", "lee@example.co.kr"]);
        ok.validate().unwrap();
        assert_eq!(ok.to.len(), 2, "duplicates removed");
        let e = email(&["kim@example.com", "not an address"]).validate().unwrap_err();
        assert_eq!(e.field_name(), Some("to[1]"));
        let e = email(&["김@example.com"]).validate().unwrap_err();
        assert_eq!(e.field_name(), Some("to[0]"), "SES wants an ASCII local part");
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@example.com")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(email(&many).validate().unwrap_err().field_name(), Some("to"));
        let mut none = email(&["kim@example.com"]);
        none.text = None;
        assert_eq!(none.validate().unwrap_err().field_name(), Some("text"));
    }
}
