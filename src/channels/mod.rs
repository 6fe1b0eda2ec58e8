//! Channels: where a due delivery goes.
//!
//! **A channel is one module plus one line in [`channel_list!`] below.** The module owns
//! everything about its notification type:
//! - its payload struct (the fields after `notificationType`, with `idempotencyKey` and
//!   `deliverAt`), serde + utoipa derives, and its validation, provider text rules included,
//!   through the [`Kind`] trait;
//! - its settings: a clap `Args` struct flattened into the configuration, with its own
//!   `validate()` ([`Settings`]);
//! - its constructor ([`Kind::build`]) and its sender (the [`Channel`] trait), which maps the
//!   provider's answers to delivered, retry later or permanent failure, so the dispatcher
//!   knows nothing about providers.
//!
//! From the list come the contract's `notificationType` enum and its `ALL`, the tagged
//! [`Notification`] enum (and so the OpenAPI `oneOf`), the type names in error messages, the
//! settings group of every channel ([`ChannelArgs`]) and the dispatcher's registry
//! ([`build_all`]). Adding a channel therefore touches its new module, one line of the list,
//! the README and, if it needs tables, a migration — nothing else. A channel that needs the
//! provider at accept time implements [`Channel::admit`]; one whose provider reports final
//! results later implements [`Channel::check_results`].

pub mod alimtalk;
pub mod email;
pub mod fcm;
pub mod http;
pub mod in_app;
pub mod sens;
pub mod slack;
pub mod webhook;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Clock;
use crate::contract::{ContractError, typed};
use crate::store::Store;

/// What a channel's payload type provides.
pub trait Kind: Sized + Debug + Clone + PartialEq + Serialize + DeserializeOwned {
    /// The channel's settings group.
    type Settings: Settings;
    /// The contract's checks of this type; may normalise (sort tokens, normalise numbers).
    fn validate(&mut self) -> Result<(), ContractError>;
    /// Checks against the configuration, at accept time (e.g. that a Slack webhook exists).
    fn check(&self, _settings: &Self::Settings) -> Result<(), ContractError> {
        Ok(())
    }
    /// Makes the channel's sender from its settings.
    fn build(settings: &Self::Settings, deps: &Deps) -> anyhow::Result<Arc<dyn Channel>>;
}

/// A channel's settings: a clap group flattened into the configuration.
pub trait Settings: clap::Args + clap::FromArgMatches + Debug + Clone {
    /// Checks what clap's types cannot; the error names the setting.
    fn validate(&self) -> anyhow::Result<()>;
    /// How the channel runs with these settings, for the start-up line (`sens`, `dry-run`, …).
    fn mode(&self) -> &'static str;
    /// The most provider calls per second (per key where the channel limits per key); `None`
    /// when the channel calls no provider. The dispatcher claims only what it can send within
    /// the lease at this rate.
    fn rate_per_sec(&self) -> Option<f64> {
        None
    }
}

/// What channels are built from.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    /// The one outbound HTTP client (timeouts set).
    pub http: reqwest::Client,
    /// `ALLIM_HTTP_TIMEOUT`, for the clients that are not `http` (the AWS SDK's).
    pub http_timeout: Duration,
    pub clock: Clock,
    /// Region, credentials and endpoints for channels that call AWS (SES).
    pub aws: AwsConfig,
    /// Every channel's settings, for a channel that shares another's provider account
    /// (ALIMTALK signs with SENS's keys and fails over from SMS's calling number).
    pub settings: Arc<ChannelArgs>,
}

/// The AWS configuration from the standard chain (the ECS task role; `AWS_ENDPOINT_URL_*` for
/// a local stand-in), loaded on first use; tests hand theirs in.
#[derive(Clone, Default)]
pub struct AwsConfig(Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>);

impl AwsConfig {
    pub fn given(config: aws_config::SdkConfig) -> Self {
        AwsConfig(Arc::new(tokio::sync::OnceCell::new_with(Some(config))))
    }

    pub async fn get(&self) -> &aws_config::SdkConfig {
        self.0
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }
}

/// Generates everything that lists the channels from one list.
macro_rules! channel_list {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:tt => $module:ident :: $payload:ident ),+ $(,)?) => {
        /// The kind of notification, from the `notificationType` field.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum NotificationType {
            $( #[serde(rename = $name)] $variant, )+
        }

        impl NotificationType {
            pub const ALL: &'static [NotificationType] = &[$( NotificationType::$variant ),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( NotificationType::$variant => $name, )+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|t| t.as_str() == s)
            }

            /// `APP_NOTIFICATION, PUSH, …`, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        /// A notification, discriminated by `notificationType`.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
        #[serde(tag = "notificationType")]
        pub enum Notification {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant($module::$payload), )+
        }

        impl Notification {
            pub fn kind(&self) -> NotificationType {
                match self {
                    $( Notification::$variant(_) => NotificationType::$variant, )+
                }
            }

            /// The type's own fields (everything but `notificationType`), checked.
            pub fn from_fields(kind: NotificationType, fields: serde_json::Value) -> Result<Self, ContractError> {
                let mut n = match kind {
                    $( NotificationType::$variant => Notification::$variant(typed(fields, $name)?), )+
                };
                match &mut n {
                    $( Notification::$variant(p) => p.validate()?, )+
                }
                Ok(n)
            }

            /// The type's payload read straight from a notification's JSON object (its
            /// `notificationType` member skipped), then checked: the one-pass path. A serde
            /// error here says nothing about which field; callers fall back to
            /// [`Notification::from_fields`] for that.
            pub fn from_json(kind: NotificationType, json: &str) -> Result<Result<Self, ContractError>, serde_json::Error> {
                let mut de = serde_json::Deserializer::from_str(json);
                let tagless = crate::contract::tagged::WithoutTag(&mut de);
                let mut n = match kind {
                    $( NotificationType::$variant => Notification::$variant(serde::Deserialize::deserialize(tagless)?), )+
                };
                de.end()?;
                let checked = match &mut n {
                    $( Notification::$variant(p) => p.validate(), )+
                };
                Ok(checked.map(|()| n))
            }

            /// The fields every type carries: (`idempotencyKey`, `deliverAt`).
            pub fn common_fields(&mut self) -> (&mut Option<String>, &mut Option<String>) {
                match self {
                    $( Notification::$variant(p) => (&mut p.idempotency_key, &mut p.deliver_at), )+
                }
            }

            pub fn idempotency_key(&self) -> Option<&str> {
                match self {
                    $( Notification::$variant(p) => p.idempotency_key.as_deref(), )+
                }
            }

            /// Checks against the configuration (accept time).
            pub fn check(&self, settings: &ChannelArgs) -> Result<(), ContractError> {
                match self {
                    $( Notification::$variant(p) => p.check(&settings.$module), )+
                }
            }
        }

        /// Every channel's settings, flattened into the configuration.
        #[derive(Debug, Clone, clap::Args)]
        pub struct ChannelArgs {
            $( #[command(flatten)] pub $module: <$module::$payload as Kind>::Settings, )+
        }

        impl ChannelArgs {
            pub fn validate(&self) -> anyhow::Result<()> {
                $( Settings::validate(&self.$module)?; )+
                Ok(())
            }

            /// The lane rate of a notification type's channel (see [`Settings::rate_per_sec`]).
            pub fn rate_per_sec(&self, kind: NotificationType) -> Option<f64> {
                match kind {
                    $( NotificationType::$variant => Settings::rate_per_sec(&self.$module), )+
                }
            }

            /// (channel, mode) for the start-up line.
            pub fn modes(&self) -> Vec<(&'static str, &'static str)> {
                vec![$( (stringify!($module), Settings::mode(&self.$module)) ),+]
            }
        }

        /// The registry: one sender per notification type, built from the settings.
        pub fn build_all(settings: &ChannelArgs, deps: &Deps) -> anyhow::Result<Channels> {
            let mut channels = Channels::default();
            $( channels.register(
                NotificationType::$variant,
                <$module::$payload as Kind>::build(&settings.$module, deps)?,
            ); )+
            Ok(channels)
        }
    };
}

// The list. One line per channel: `Variant = "notificationType" => module::Payload`.
channel_list! {
    /// A row in the user's in-app inbox.
    AppNotification = "APP_NOTIFICATION" => in_app::AppNotification,
    /// A mobile push notification (FCM) to a user's registered devices or explicit tokens.
    Push = "PUSH" => fcm::Push,
    /// An SMS / LMS through Naver Cloud SENS.
    Sms = "SMS" => sens::Sms,
    /// A message to a configured Slack incoming webhook.
    Slack = "SLACK" => slack::Slack,
    /// A signed POST (Standard Webhooks) to a configured HTTP endpoint.
    Webhook = "WEBHOOK" => webhook::Webhook,
    /// An email through Amazon SES.
    Email = "EMAIL" => email::Email,
    /// A KakaoTalk AlimTalk (approved template) through SENS, with SMS failover.
    AlimTalk = "ALIMTALK" => alimtalk::AlimTalk,
}

/// One delivery handed to a channel.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: String,
    /// 1 on the first attempt.
    pub attempt: i64,
    pub notification: Notification,
    /// The dispatcher's lease on the row; `None` when nothing else could send it (tests).
    pub lease: Option<LeaseProbe>,
}

impl Job {
    /// Whether this task still holds the row: a channel asks right before each provider call
    /// and answers [`SendOutcome::LeaseLost`] when it does not, so a row another task has
    /// taken over is never sent twice from here. A database error counts as "not held".
    pub async fn still_ours(&self) -> bool {
        match &self.lease {
            None => true,
            Some(l) => l
                .store
                .holds_lease(&self.delivery_id, &l.owner, l.clock.now_ms())
                .await
                .unwrap_or(false),
        }
    }
}

/// What a channel needs to check the row's lease.
#[derive(Clone)]
pub struct LeaseProbe {
    pub store: Store,
    pub owner: String,
    pub clock: Clock,
}

impl Debug for LeaseProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseProbe({})", self.owner)
    }
}

/// What a channel made of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took it. `dry_run`: no credentials were configured; it was only logged.
    Delivered { dry_run: bool },
    /// A passing failure (timeout, 429, 5xx): try again, after `after` if the provider said so.
    Retry { error: String, after: Option<Duration> },
    /// It can never succeed as it is (bad number, unregistered token, 4xx): do not retry.
    Permanent { error: String },
    /// The provider refused allim's credentials (401/403): nothing is wrong with the message.
    /// The lane pauses with back-off and the delivery keeps its attempt.
    Credentials { error: String },
    /// This task no longer holds the row's lease; another task owns it. Nothing is recorded.
    LeaseLost,
}

impl SendOutcome {
    /// The answer of a channel handed a notification of another type (a wiring bug).
    pub fn wrong_type(channel: &str, job: &Job) -> Self {
        SendOutcome::Permanent {
            error: format!(
                "{channel} channel got a notification of type {}",
                job.notification.kind().as_str()
            ),
        }
    }
}

/// The parts of a delivery already sent (SMS chunks, push tokens), so a retry sends only the
/// rest; or the outcome to return when they cannot be read.
pub(crate) async fn progress(
    store: &Store,
    delivery_id: &str,
) -> Result<std::collections::HashSet<String>, SendOutcome> {
    store.parts_done(delivery_id).await.map_err(|e| SendOutcome::Retry {
        error: format!("reading progress: {e}"),
        after: None,
    })
}

/// Records that a part of a delivery reached the provider, so that no retry sends it again.
/// The part was sent: losing this record means a duplicate later, so a failing write is tried
/// again (with back-off, for up to about 30 s) before it is given up with an error line.
pub(crate) async fn record_part(store: &Store, clock: &Clock, delivery_id: &str, part: &str) {
    let mut tries = 0u32;
    loop {
        tries += 1;
        match store.mark_part_done(delivery_id, part, clock.now_ms()).await {
            Ok(()) => return,
            Err(e) if tries >= 6 => {
                tracing::error!(delivery = %delivery_id, part, error = %e,
                    "sent, but the progress could not be recorded; a retry may send this part again");
                return;
            }
            Err(e) => {
                let wait = crate::clock::backoff(tries, Duration::from_millis(500), Duration::from_secs(10), 1.0);
                tracing::warn!(delivery = %delivery_id, part, error = %e, retry_in = ?wait, "recording progress failed; trying again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Implements [`Channel`] for a sender whose `async fn $method(&self, &Job) -> SendOutcome`
/// does the work.
macro_rules! sender {
    ($ty:ty, $name:literal, $method:ident) => {
        impl $crate::channels::Channel for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn send<'a>(
                &'a self,
                job: &'a $crate::channels::Job,
            ) -> futures::future::BoxFuture<'a, $crate::channels::SendOutcome> {
                futures::FutureExt::boxed(self.$method(job))
            }
        }
    };
}
pub(crate) use sender;

/// A delivery channel.
pub trait Channel: Send + Sync {
    /// Short name for logs and metrics (`in_app`, `sms`, …).
    fn name(&self) -> &'static str;
    /// Sends one delivery. Must not panic; every error becomes an outcome.
    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, SendOutcome>;

    /// The accept-time checks that need the provider (AlimTalk: the template's placeholders),
    /// after the contract's. A check that cannot be made now (the provider unreachable) passes,
    /// and the send checks again.
    fn admit<'a>(&'a self, _notification: &'a Notification) -> BoxFuture<'a, Result<(), ContractError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Looks up final results the provider reports after accepting (SENS): called every
    /// dispatch interval on the task holding the channel's lane. One label per recipient whose
    /// result became final (`delivered`, `failed`, `failover`, `unknown`), for the metrics.
    fn check_results(&self) -> BoxFuture<'_, anyhow::Result<Vec<&'static str>>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

/// The channel registered for each notification type.
#[derive(Clone, Default)]
pub struct Channels {
    map: HashMap<NotificationType, Arc<dyn Channel>>,
}

impl Channels {
    pub fn register(&mut self, kind: NotificationType, channel: Arc<dyn Channel>) {
        self.map.insert(kind, channel);
    }

    pub fn get(&self, kind: NotificationType) -> Option<&Arc<dyn Channel>> {
        self.map.get(&kind)
    }

    /// The notification types that have a channel (only those are claimed by the dispatcher;
    /// the others stay pending until a channel is configured).
    pub fn kinds(&self) -> Vec<NotificationType> {
        let mut kinds: Vec<_> = self.map.keys().copied().collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds
    }
}
