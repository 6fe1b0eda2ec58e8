//! allim (알림): a notification service. See `shared/DESIGN.md` and the README.
//!
//! The folders follow the boxes of the design: [`ingress`] (HTTP, later SQS and SNS) hands
//! notifications to [`accept`], which validates, de-duplicates and commits them to [`store`];
//! [`api`] serves the inbox, delivery status, docs and health; [`config`] reads the settings.
//! [`Application`] wires them together so that tests run the same code path as production.

pub mod accept;
pub mod api;
pub mod config;
pub mod ingress;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
use crate::api::AppState;
use crate::config::Config;
use crate::store::Store;

/// A built, not yet running, allim: the database is open and migrated, the port is bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects to the database, applies migrations (unless disabled) and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        let store = Store::connect(&config).await?;
        if config.auto_migrate {
            store.migrate().await?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("ALLIM_LISTEN: cannot listen on {}", config.listen))?;
        let state = AppState {
            acceptor: Acceptor::new(store.clone()),
            store,
            config: Arc::new(config),
        };
        Ok(Application {
            listener,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until the shutdown token is cancelled, then stops taking new connections,
    /// lets in-flight requests finish within the grace period, and closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            shutdown,
        } = self;
        let grace = state.config.shutdown_grace;
        let store = state.store.clone();
        tracing::info!(
            listen = %listener.local_addr()?,
            database = %state.config.database_url_redacted(),
            auth = if state.config.api_tokens.is_empty() { "off" } else { "bearer" },
            "allim ready"
        );
        let app = api::router(state);
        let server =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut server = tokio::spawn(server.into_future());
        let result = tokio::select! {
            r = &mut server => r,
            _ = shutdown.cancelled() => match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(?grace, "in-flight requests did not finish within the shutdown grace");
                    server.abort();
                    Ok(Ok(()))
                }
            },
        };
        store.close().await;
        tracing::info!("allim stopped");
        result
            .context("server task failed")?
            .context("server failed")
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
