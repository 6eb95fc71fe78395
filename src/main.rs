//! The `firstcome` binary: `serve` (default), `migrate`, `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use firstcome::{config::Settings, startup::Application, telemetry};

#[derive(Parser)]
#[command(
    name = "firstcome",
    version,
    about = "First-come-first-served campaigns on a transactional outbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the outbox relay (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI spec (YAML) to stdout.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", firstcome::api::openapi_yaml());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("firstcome: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let result = match cli.command {
        Some(Command::Migrate) => migrate(&settings).await,
        _ => serve(settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "firstcome stopped with an error.");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    firstcome::startup::migrate(&settings.database).await?;
    tracing::info!("Migrations applied.");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let token = app.shutdown_token();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            wait_for_signal().await;
            tracing::info!("Stop signal received; shutting down.");
            token.cancel();
        },
        tracing::info_span!("signals"),
    ));
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
