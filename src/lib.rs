//! allim (알림): a notification service. See `shared/DESIGN.md` and the README.
//!
//! The folders follow the boxes of the design: [`ingress`] (HTTP, SQS, later SNS) hands
//! notifications to [`accept`], which validates, de-duplicates and commits them to [`store`];
//! [`dispatch`] sends due deliveries through [`channels`]; [`api`] serves the inbox, delivery
//! status, dead letters, docs, health and metrics; [`config`] reads the settings.
//! [`Application`] wires them together so that tests run the same code path as production.

pub mod accept;
pub mod alarms;
pub mod api;
pub mod channels;
pub mod config;
pub mod dispatch;
pub mod ingress;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accept::{Acceptor, NotificationType};
use crate::api::AppState;
use crate::api::metrics::Metrics;
use crate::channels::{Channel, Channels};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::ingress::sqs::{ConsumerHealth, SqsConsumer};
use crate::store::Store;

/// A built, not yet running, allim: the database is open and migrated, the port is bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    dispatcher: Option<Dispatcher>,
    consumer: Option<Arc<SqsConsumer>>,
}

/// Builds an [`Application`]; tests use it to inject an SQS client or a channel.
pub struct ApplicationBuilder {
    config: Config,
    sqs_client: Option<aws_sdk_sqs::Client>,
    channels: Vec<(NotificationType, Arc<dyn Channel>)>,
}

impl ApplicationBuilder {
    /// Uses this SQS client instead of one from the AWS environment.
    pub fn sqs_client(mut self, client: aws_sdk_sqs::Client) -> Self {
        self.sqs_client = Some(client);
        self
    }

    /// Registers (or replaces) the channel of a notification type.
    pub fn channel(mut self, kind: NotificationType, channel: Arc<dyn Channel>) -> Self {
        self.channels.push((kind, channel));
        self
    }

    /// Connects to the database, applies migrations (unless disabled) and binds the listener.
    pub async fn build(self) -> anyhow::Result<Application> {
        let config = self.config;
        config.validate()?;
        let webhook_names: Vec<String> = config.slack_webhooks.iter().map(|w| w.name.clone()).collect();
        let alarm_rules = match (&config.alarm_rules, &config.alarm_rules_toml) {
            (Some(path), _) => alarms::Rules::load(path, &webhook_names)?,
            (None, Some(text)) => {
                alarms::Rules::parse(text, false, &webhook_names).context("ALLIM_ALARM_RULES_TOML")?
            }
            (None, None) => alarms::Rules::default(),
        };
        let store = Store::connect(&config).await?;
        if config.auto_migrate {
            store.migrate().await?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("ALLIM_LISTEN: cannot listen on {}", config.listen))?;
        let metrics = Arc::new(Metrics::new());
        let wake = Arc::new(Notify::new());
        let rules = accept::Rules {
            slack_webhooks: webhook_names,
        };
        // Group commit: one writer for SQLite (one connection anyway), a few for MySQL.
        let writers = match config.backend()? {
            config::Backend::Sqlite => 1,
            config::Backend::MySql => (config.db_max_connections as usize / 2).clamp(1, 4),
        };
        let acceptor = Acceptor::new(store.clone(), wake.clone(), rules).with_group_commit(writers);
        let http = channels::http::client(config.http_timeout);
        let consumer_health = Arc::new(ConsumerHealth::default());
        let alarm_router = alarms::AlarmRouter::new(store.clone(), acceptor.clone(), alarm_rules, metrics.clone());
        let sns = (!config.sns_topic_arns.is_empty()).then(|| {
            Arc::new(ingress::sns::SnsVerifier::new(
                http.clone(),
                config.sns_topic_arns.clone(),
                config.sns_insecure_cert_url_prefix.clone(),
                config.sns_insecure_cert_fetch_base.clone(),
            ))
        });
        if let Some(prefix) = &config.sns_insecure_cert_url_prefix {
            tracing::warn!(prefix = %prefix, "ALLIM_SNS_INSECURE_CERT_URL_PREFIX is set: SNS certificates are also accepted from this prefix. FOR TESTS ONLY; never set it in production");
        }
        if let Some(base) = &config.sns_insecure_cert_fetch_base {
            tracing::warn!(base = %base, "ALLIM_SNS_INSECURE_CERT_FETCH_BASE is set: SNS certificates are fetched from this host. FOR TESTS ONLY; never set it in production");
        }

        let mut channels = Channels::default();
        channels.register(
            NotificationType::AppNotification,
            Arc::new(channels::in_app::InApp::new(store.clone())),
        );
        let sens = match (
            &config.sens_access_key,
            &config.sens_secret_key,
            &config.sens_service_id,
            &config.sens_from,
        ) {
            (Some(access_key), Some(secret_key), Some(service_id), Some(from)) => Some(channels::sens::SensConfig {
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                service_id: service_id.clone(),
                from: from.clone(),
                base_url: config.sens_base_url.clone(),
            }),
            _ => None,
        };
        channels.register(
            NotificationType::Sms,
            channels::sens::Sens::new(http.clone(), sens, config.sens_rate_per_sec, store.clone()),
        );
        let account = match (&config.fcm_credentials, &config.fcm_credentials_json) {
            (Some(path), _) => Some(channels::fcm::ServiceAccount::from_file(path)?),
            (None, Some(json)) => {
                Some(channels::fcm::ServiceAccount::from_json(json.expose()).context("ALLIM_FCM_CREDENTIALS_JSON")?)
            }
            (None, None) => None,
        };
        channels.register(
            NotificationType::Push,
            channels::fcm::Fcm::new(
                http.clone(),
                account,
                config.fcm_base_url.clone(),
                config.fcm_token_url.clone(),
                config.fcm_rate_per_sec,
                store.clone(),
            )?,
        );
        channels.register(
            NotificationType::Slack,
            channels::slack::Slack::new(http.clone(), &config.slack_webhooks, config.slack_rate_per_sec),
        );
        for (kind, channel) in self.channels {
            channels.register(kind, channel);
        }
        let dispatcher = config.dispatch.then(|| {
            Dispatcher::new(
                store.clone(),
                Arc::new(channels),
                config.dispatch_config(),
                metrics.clone(),
                wake.clone(),
            )
        });
        let consumer = match config.sqs_config() {
            Some(sqs) => {
                let client = match self.sqs_client {
                    Some(c) => c,
                    None => ingress::sqs::client_from_env().await,
                };
                Some(Arc::new(SqsConsumer::new(
                    client,
                    sqs,
                    acceptor.clone(),
                    alarm_router.clone(),
                    metrics.clone(),
                    consumer_health.clone(),
                )))
            }
            None => None,
        };
        let state = AppState {
            acceptor,
            store,
            config: Arc::new(config),
            metrics,
            wake,
            consumer: consumer_health,
            sns,
            alarms: alarm_router,
            http,
        };
        Ok(Application {
            listener,
            state,
            shutdown: CancellationToken::new(),
            dispatcher,
            consumer,
        })
    }
}

impl Application {
    pub fn builder(config: Config) -> ApplicationBuilder {
        ApplicationBuilder {
            config,
            sqs_client: None,
            channels: Vec::new(),
        }
    }

    /// Builds with everything from the configuration.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::builder(config).build().await
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Serves HTTP, consumes SQS and dispatches until the shutdown token is cancelled. Then
    /// it stops taking new work (new connections, new receives, new claims), lets the work in
    /// progress finish within the grace period — SQS batches are committed and deleted,
    /// sends are recorded, leases still held are given back — closes the database, and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            shutdown,
            dispatcher,
            consumer,
        } = self;
        let grace = state.config.shutdown_grace;
        let store = state.store.clone();
        tracing::info!(
            listen = %listener.local_addr()?,
            database = %state.config.database_url_redacted(),
            auth = if state.config.api_tokens.is_empty() { "off" } else { "bearer" },
            sqs = state.config.sqs_queue_url.as_deref().unwrap_or("off"),
            dispatch = state.config.dispatch,
            sms = if state.config.sens_access_key.is_some() { "sens" } else { "dry-run" },
            push = if state.config.fcm_credentials.is_some() || state.config.fcm_credentials_json.is_some() {
                "fcm"
            } else {
                "dry-run"
            },
            slack = if state.config.slack_webhooks.is_empty() { "dry-run" } else { "webhooks" },
            "allim ready"
        );
        let state_alarms = state.alarms.clone();
        let state_iam_refresh = state.config.db_iam_refresh;
        let alarm_tick = state.config.alarm_tick;
        let app = api::router(state);
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move { server.await.context("HTTP server failed") });
        if let Some(d) = dispatcher.clone() {
            let token = shutdown.clone();
            tasks.spawn(async move {
                d.run(token).await;
                Ok(())
            });
        }
        {
            let router = state_alarms;
            let token = shutdown.clone();
            tasks.spawn(async move {
                router.run(alarm_tick, token).await;
                Ok(())
            });
        }
        {
            let store = store.clone();
            let every = state_iam_refresh;
            let token = shutdown.clone();
            tasks.spawn(async move {
                store.refresh_iam_tokens(every, token).await;
                Ok(())
            });
        }
        if let Some(c) = consumer {
            let token = shutdown.clone();
            tasks.spawn(async move {
                c.run(token).await;
                Ok(())
            });
        }

        // Run until asked to stop, or until a part fails on its own. A part that simply has
        // nothing to do (e.g. no IAM tokens to refresh) ends quietly and the rest go on.
        let mut result = Ok(());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(r) => {
                        if let Err(e) = r.context("task panicked").and_then(|r| r) {
                            result = Err(e);
                            shutdown.cancel();
                            break;
                        }
                    }
                },
            }
        }
        let drained = tokio::time::timeout(grace, async {
            while let Some(r) = tasks.join_next().await {
                if let Err(e) = r.context("task panicked").and_then(|r| r) {
                    tracing::error!(error = format!("{e:#}"), "a task failed while stopping");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "work in progress did not finish within the shutdown grace; stopping it"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            if let Some(d) = &dispatcher {
                d.release().await;
            }
        }
        store.close().await;
        tracing::info!("allim stopped");
        result
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
