//! The `allim` binary: parse the configuration, start logging, run the subcommand.

use clap::Parser;

use allim::config::{Cli, Command};
use allim::store::Store;
use allim::{Application, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.config);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "allim failed");
            eprintln!("allim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    cli.config.validate()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let store = Store::connect(&cli.config).await?;
            store.migrate().await?;
            tracing::info!(database = %cli.config.database_url_redacted(), "migrations applied");
            Ok(())
        }
        Command::Serve => {
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
