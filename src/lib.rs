//! allim (알림): a notification service. See `shared/DESIGN.md` and the README.
//!
//! # Map
//!
//! Data flows one way: ingress → accept → store → dispatch → channels. Each folder is one box
//! of the design; a box uses only the boxes listed after "uses" (checked by
//! `modgraph.py --check` in CI: no circles). This file wires them together ([`Application`],
//! [`AppState`]) so that tests run the same code path as production.
//!
//! | folder | owns | uses |
//! | --- | --- | --- |
//! | [`config`] | the command line: one flattened settings group per box, cross-group checks | every box's `Args` |
//! | [`api`] | routes + OpenAPI, `/docs`, inbox, devices, deliveries, dead letters, alarms API, health, `/metrics` | ingress, accept, alarms, channels, store, web, clock, telemetry |
//! | [`ingress`] | the doors: HTTP `POST /v1/notifications`, the SQS consumer, the SQS-compatible door, the SNS webhook, message classification | accept, alarms, channels, store, web, clock, telemetry |
//! | [`web`] | the one HTTP error type (status + code per variant) and extractors | accept, contract, store |
//! | [`alarms`] | CloudWatch alarm routing: rules, flap limit, quiet hours, silences, history | accept, channels, store, clock, telemetry |
//! | [`accept`] | the only way into the store: parse, validate, de-duplicate, commit (group commit) | channels, contract, store, clock |
//! | [`dispatch`] | lanes: claim due rows with a lease, send, record outcome / retry / dead | accept (stored-payload parse), channels, store, clock, telemetry |
//! | [`channels`] | one module per channel (payload + rules + settings + sender) and the list that derives the contract enum, settings and registry | contract, store, clock, telemetry |
//! | [`contract`] | the message contract's shared rules and field errors | — |
//! | [`store`] | SQLite / MySQL pools, migrations, one small function per query | settings |
//! | [`telemetry`] | logging, masking, Prometheus metrics | — |
//! | [`clock`] | the injectable clock, time formatting, the one back-off formula | — |
//! | [`settings`] | what every settings group shares: duration values, clap defaults | — |

pub mod accept;
pub mod alarms;
pub mod api;
pub mod channels;
pub mod clock;
pub mod config;
pub mod contract;
pub mod dispatch;
pub mod ingress;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
use crate::api::ApiArgs;
use crate::channels::{Channel, Deps, NotificationType};
use crate::clock::Clock;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::ingress::sns::SnsVerifier;
use crate::ingress::sqs::{ConsumerHealth, SqsConsumer};
use crate::store::{Backend, Store, Wake};
use crate::telemetry::{Metrics, SharedMetrics};

/// Everything a handler may need, behind one reference count: axum clones the state for every
/// extractor and layer that asks for it, and cloning and dropping the parts one by one (some
/// twenty atomic counts) was ~4 % of an SNS webhook request's CPU (bench/README.md).
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl std::ops::Deref for AppState {
    type Target = AppStateParts;
    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppStateParts {
    pub store: Store,
    pub acceptor: Acceptor,
    /// The HTTP listener's settings (tokens, body limits).
    pub api: Arc<ApiArgs>,
    pub metrics: SharedMetrics,
    /// Wakes the dispatcher (after a redrive).
    pub wake: Wake,
    /// The SQS consumer's view of the database, for `/readyz`.
    pub consumer: Arc<ConsumerHealth>,
    /// The SNS webhook's verifier; `None` when no topic is allowed.
    pub sns: Option<Arc<SnsVerifier>>,
    pub alarms: alarms::AlarmRouter,
    /// The watchers, when any is configured.
    pub watchers: Option<Arc<ingress::watchers::WatcherRunner>>,
    /// True when the SQS consumer runs (`ALLIM_SQS_QUEUE_URL`).
    pub sqs_enabled: bool,
    /// The shared outbound client.
    pub http: reqwest::Client,
    pub clock: Clock,
}

/// A built, not yet running, allim: the database is open and migrated, the port is bound.
pub struct Application {
    listener: TcpListener,
    /// The SQS-compatible door's listener, when `ALLIM_SQS_DOOR_LISTEN` is set.
    door: Option<(TcpListener, Arc<ingress::sqs_door::Door>)>,
    state: AppState,
    config: Config,
    shutdown: CancellationToken,
    dispatcher: Option<Dispatcher>,
    consumer: Option<Arc<SqsConsumer>>,
}

/// Builds an [`Application`]; tests use it to inject an SQS client, a channel or a clock.
pub struct ApplicationBuilder {
    config: Config,
    sqs_client: Option<aws_sdk_sqs::Client>,
    channels: Vec<(NotificationType, Arc<dyn Channel>)>,
    clock: Clock,
    aws: channels::AwsConfig,
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

    /// Uses this AWS configuration for the channels that call AWS (tests: moto's endpoint).
    pub fn aws_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.aws = channels::AwsConfig::given(config);
        self
    }

    /// Uses this clock instead of the system's.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Connects to the database, applies migrations (unless disabled) and binds the listener.
    pub async fn build(self) -> anyhow::Result<Application> {
        let config = self.config;
        let clock = self.clock;
        config.validate()?;
        let alarm_rules = config.alarms.rules(&config.channels.slack.names())?;
        let watchers = config.watchers.load()?;
        let store = Store::connect(&config.db).await?;
        if config.db.auto_migrate {
            store.migrate().await?;
        }
        let listener = TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("ALLIM_LISTEN: cannot listen on {}", config.api.listen))?;
        let door_listener = match config.sqs_door.sqs_door_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("ALLIM_SQS_DOOR_LISTEN: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let wake = Wake::default();
        // Group commit: one writer for SQLite (one connection anyway), two for MySQL: one
        // gathers while the other commits. More writers split the same requests into smaller
        // groups: on the SNS benchmark (bench/README.md, 2026-12-06) four writers cost MariaDB
        // 62-69 µs of CPU a request against 49-50 with two and 39-42 with one, and allim 68-76
        // µs against 60-62 and 55-58; two kept the latency benchmark's p99 at 100/s as low as
        // four (3.2-4.1 ms against 5.0-7.1 with one or four, MariaDB).
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::MySql => (config.db.db_max_connections as usize / 2).clamp(1, 2),
        };
        let http = config.http.client();
        let channel_settings = Arc::new(config.channels.clone());
        let deps = Deps {
            store: store.clone(),
            http: http.clone(),
            http_timeout: config.http.http_timeout,
            clock: clock.clone(),
            aws: self.aws.clone(),
            settings: channel_settings.clone(),
        };
        let mut channels = channels::build_all(&config.channels, &deps)?;
        for (kind, channel) in self.channels {
            channels.register(kind, channel);
        }
        let channels = Arc::new(channels);
        let acceptor = Acceptor::new(store.clone(), wake.clone(), channel_settings, clock.clone())
            .with_channels(channels.clone())
            .with_group_commit(writers);
        let alarm_router = alarms::AlarmRouter::new(
            store.clone(),
            acceptor.clone(),
            alarm_rules,
            metrics.clone(),
            clock.clone(),
        );
        let sns = config.sns.verifier(http.clone(), clock.clone()).map(Arc::new);
        let dispatcher = config.dispatch.dispatch.then(|| {
            Dispatcher::new(
                store.clone(),
                channels,
                config.dispatch.clone(),
                &config.channels,
                metrics.clone(),
                wake.clone(),
                clock.clone(),
            )
        });
        let consumer_health = Arc::new(ConsumerHealth::default());
        let consumer = match &config.sqs.sqs_queue_url {
            Some(_) => {
                let client = match self.sqs_client {
                    Some(c) => c,
                    None => ingress::sqs::client_from_env().await,
                };
                Some(Arc::new(SqsConsumer::new(
                    client,
                    config.sqs.clone(),
                    acceptor.clone(),
                    alarm_router.clone(),
                    sns.clone(),
                    metrics.clone(),
                    consumer_health.clone(),
                )))
            }
            None => None,
        };
        let door = door_listener.map(|l| {
            let door = ingress::sqs_door::Door::new(
                &config.sqs_door,
                config.api.max_body_bytes,
                acceptor.clone(),
                metrics.clone(),
                clock.clone(),
            );
            (l, Arc::new(door))
        });
        let watchers = (!watchers.watchers.is_empty()).then(|| {
            Arc::new(ingress::watchers::WatcherRunner::new(
                store.clone(),
                acceptor.clone(),
                http.clone(),
                watchers,
                config.watchers.watcher_retention,
                metrics.clone(),
                clock.clone(),
            ))
        });
        let state = AppState(Arc::new(AppStateParts {
            watchers,
            acceptor,
            store,
            api: Arc::new(config.api.clone()),
            metrics,
            wake,
            consumer: consumer_health,
            sns,
            alarms: alarm_router,
            sqs_enabled: config.sqs.sqs_queue_url.is_some(),
            http,
            clock,
        }));
        Ok(Application {
            listener,
            door,
            state,
            config,
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
            clock: Clock::system(),
            aws: channels::AwsConfig::default(),
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

    /// The SQS door's bound address, when it is on.
    pub fn sqs_door_addr(&self) -> Option<SocketAddr> {
        self.door
            .as_ref()
            .map(|(l, _)| l.local_addr().expect("a bound listener has an address"))
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
            door,
            state,
            config,
            shutdown,
            dispatcher,
            consumer,
        } = self;
        let grace = config.shutdown_grace;
        let store = state.store.clone();
        let channels: Vec<String> = config
            .channels
            .modes()
            .iter()
            .map(|(name, mode)| format!("{name}={mode}"))
            .collect();
        tracing::info!(
            listen = %listener.local_addr()?,
            database = %config.db.database_url_redacted(),
            auth = match (config.api.is_open(), config.api.allow_anonymous) {
                (false, _) => "tokens",
                (true, true) => "OPEN (ALLIM_ALLOW_ANONYMOUS)",
                (true, false) => "open on loopback",
            },
            sqs = config.sqs.sqs_queue_url.as_deref().unwrap_or("off"),
            sqs_door = %door.as_ref().and_then(|(l, _)| l.local_addr().ok()).map_or("off".to_string(), |a| a.to_string()),
            dispatch = config.dispatch.dispatch,
            channels = %channels.join(" "),
            "allim ready"
        );
        let state_alarms = state.alarms.clone();
        let watchers = state.watchers.clone();
        let state_iam_refresh = config.db.db_iam_refresh;
        let alarm_tick = config.alarms.alarm_tick;
        let state_clock = state.clock.clone();
        let app = api::router(state);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(futures::FutureExt::map(
            web::serve::serve(listener, app, shutdown.clone()),
            Ok,
        ));
        if let Some((listener, door)) = door {
            let router = ingress::sqs_door::router(door);
            tasks.spawn(futures::FutureExt::map(
                web::serve::serve(listener, router, shutdown.clone()),
                Ok,
            ));
        }
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
        if let Some(retention) = config.db.retention {
            let store = store.clone();
            let clock = state_clock.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                store
                    .run_retention(retention, std::time::Duration::from_secs(3600), clock, token)
                    .await;
                Ok(())
            });
        }
        if let Some(w) = watchers {
            let token = shutdown.clone();
            tasks.spawn(async move {
                w.run(token).await;
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
                // Bounded: with the database down each give-back waits out the pool's
                // connection wait, and the grace is already spent.
                let _ = tokio::time::timeout(AFTER_GRACE, d.release()).await;
            }
        }
        // Closing waits for every connection to come back to the pool; one stuck on a database
        // that stopped answering would hold the exit until TCP gives up.
        if tokio::time::timeout(AFTER_GRACE, store.close()).await.is_err() {
            tracing::warn!("the database connections did not close in time; exiting without them");
        }
        tracing::info!("allim stopped");
        result
    }
}

/// The most each of the two last steps of a stop may take past the grace: giving back leases
/// of the work the grace cut short, and closing the database connections. With the largest
/// grace the deploy template allows (110 s), both fit inside ECS's 120 s stop timeout.
const AFTER_GRACE: std::time::Duration = std::time::Duration::from_secs(4);

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
