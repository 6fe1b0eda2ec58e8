//! The `allim` binary: parse the configuration, start logging, run the subcommand.

use clap::Parser;

use allim::config::{Cli, Command};
use allim::store::Store;
use allim::{Application, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.config.log);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "allim failed");
            eprintln!("allim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// GET /healthz on the local listener, 3 s at most.
async fn healthcheck(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let ip = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    let url = format!("http://{}/healthz", std::net::SocketAddr::new(ip, listen.port()));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let res = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    if res.status().is_success() {
        Ok(())
    } else {
        anyhow::bail!("{url} answered {}", res.status())
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        // Only needs the address; the rest of the configuration may be absent in a health probe.
        Command::Healthcheck => healthcheck(cli.config.api.listen).await,
        Command::Migrate => {
            // Only the database settings matter to a migration.
            cli.config.db.validate()?;
            let store = Store::connect(&cli.config.db).await?;
            store.migrate().await?;
            tracing::info!(database = %cli.config.db.database_url_redacted(), "migrations applied");
            Ok(())
        }
        Command::Serve => {
            // Application::build validates the configuration.
            let app = Application::build(cli.config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                token.cancel();
            });
            app.run_until_stopped().await
        }
    }
}
