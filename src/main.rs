//! The `allim` binary: parse the configuration, start logging, run the subcommand.

use clap::Parser;

use allim::config::{Cli, Command, RulesCommand};
use allim::store::Store;
use allim::{Application, shutdown_signal, telemetry};

/// musl's allocator is slow under threads (bench/README.md), so the static build uses mimalloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.config.log);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Invalid>().is_some() => {
            eprintln!("allim: {e:#}");
            std::process::ExitCode::from(2)
        }
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
        Command::Rules(RulesCommand::Test { rules, alarms }) => rules_test(&cli.config, &rules, &alarms),
        Command::Serve => {
            // The signal handlers are in place before start-up begins (`biased`: polled first).
            // A SIGTERM while starting (connecting to a database that does not answer, say)
            // then stops allim with exit 0 instead of killing it by the signal's default action.
            let mut signal = Box::pin(shutdown_signal());
            // Application::build validates the configuration.
            let app = tokio::select! {
                biased;
                () = &mut signal => {
                    tracing::info!("stopped while starting");
                    return Ok(());
                }
                app = Application::build(cli.config) => app?,
            };
            let token = app.shutdown_token();
            tokio::spawn(async move {
                signal.await;
                token.cancel();
            });
            app.run_until_stopped().await
        }
    }
}

/// `allim rules test RULES ALARM…`: prints what each alarm would do; an invalid rules file or
/// alarm is an error (exit 2).
fn rules_test(
    config: &allim::config::Config,
    rules: &std::path::Path,
    alarms: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    let parsed = allim::alarms::Rules::load(rules, &config.channels.slack.names())
        .map_err(|e| Invalid(format!("{}: {e:#}", rules.display())))?;
    println!(
        "{}: {} rule(s), flap limit {} per {}, quiet hours in {}",
        rules.display(),
        parsed.rules.len(),
        parsed.flap_limit,
        allim::clock::human(parsed.flap_window),
        parsed.timezone
    );
    for path in alarms {
        let body = std::fs::read(path).map_err(|e| Invalid(format!("{}: {e}", path.display())))?;
        let alarm = allim::api::alarms::parse_alarm(&body)
            .map_err(|(field, message)| Invalid(format!("{}: {field} {message}", path.display())))?;
        let now = alarm.changed_at.timestamp_millis();
        let x = allim::alarms::explain::explain(&parsed, &alarm, None, &[], now);
        println!("\n{} — {} {}:", path.display(), alarm.name, alarm.state.as_str());
        for r in &x.routes {
            let mut to: Vec<String> = r.sms.iter().map(|n| format!("SMS {n}")).collect();
            to.extend(r.slack.iter().map(|s| format!("Slack {s}")));
            let held = if r.sms_held_by_quiet_hours {
                " (SMS held back by quiet hours)"
            } else {
                ""
            };
            println!("  rule {}: {}{held}\n    {}", r.rule, to.join(", "), r.text);
        }
        println!("  → {}: {}", x.outcome, x.detail);
    }
    println!(
        "\n(Silences and the flap limit depend on what the running service has seen; POST /v1/alarms/test asks it.)"
    );
    Ok(())
}

/// A command-line input that is wrong (exit 2, not 1).
#[derive(Debug)]
struct Invalid(String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}
