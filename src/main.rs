//! The `firstcome` binary: `serve` (default), `consume`, `migrate`, `openapi`, `asyncapi`.

use std::process::ExitCode;

use clap::{error::ErrorKind, CommandFactory, FromArgMatches, Parser, Subcommand};
use firstcome::{
    config::{args::ServeArgs, cli, ConfigError, Settings},
    startup::Application,
    telemetry,
};

/// glibc's malloc was a quarter of the service's CPU under a big campaign (perf: `_int_malloc`,
/// `_int_free`, `malloc_consolidate`, `unlink_chunk`); mimalloc costs a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "firstcome",
    version,
    about = "First-come-first-served campaigns on a transactional outbox",
    after_help = "Every setting is an environment variable (also a flag of serve, consume and \
                  migrate); `firstcome serve --help` lists them with their defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API, the outbox relay and the consumers in `CONSUMERS` (the default).
    Serve(ServeArgs),
    /// Run only the consumers in `CONSUMERS` against `KAFKA_BOOTSTRAP_SERVERS`.
    Consume(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(ServeArgs),
    /// Print the OpenAPI spec (YAML) to stdout.
    Openapi,
    /// Print the AsyncAPI document (YAML) of the default topic and its dead-letter topics.
    Asyncapi,
    /// Print the README's configuration table (markdown), generated from the settings.
    #[command(hide = true)]
    ConfigTable,
}

enum Run {
    Serve,
    Consume,
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Variables set to "" count as unset (see config::cli).
    let cmd = cli::without_empty_env(Cli::command());
    let parsed = cmd
        .clone()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelp || e.kind() == ErrorKind::DisplayVersion => {
            e.exit()
        }
        Err(e) => return config_failure(&cli::config_error(&cmd, &e)),
    };
    let (run, settings) = match cli.command {
        Some(Command::Openapi) => {
            print!("{}", firstcome::api::openapi_yaml());
            return ExitCode::SUCCESS;
        }
        Some(Command::Asyncapi) => {
            let topic = firstcome::config::DEFAULT_TOPIC;
            print!("{}", firstcome::outbox::asyncapi::asyncapi_yaml(topic));
            return ExitCode::SUCCESS;
        }
        Some(Command::ConfigTable) => {
            print!("{}", firstcome::config::reference::markdown());
            return ExitCode::SUCCESS;
        }
        Some(Command::Serve(args)) => (Run::Serve, args.into_settings()),
        Some(Command::Consume(args)) => (Run::Consume, args.into_settings()),
        Some(Command::Migrate(args)) => (Run::Migrate, args.into_settings()),
        None => (Run::Serve, Settings::from_env()),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    telemetry::init(settings.log_format);
    if let Err(e) = telemetry::init_traces(settings.otlp_endpoint.as_ref()) {
        eprintln!("firstcome: OTEL_EXPORTER_OTLP_ENDPOINT: {e}");
        return ExitCode::from(2);
    }
    let result = match run {
        Run::Migrate => migrate(&settings).await,
        Run::Consume => consume(settings).await,
        Run::Serve => serve(settings).await,
    };
    // After everything else stopped: the spans of the last requests and events go out too.
    telemetry::shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "firstcome stopped with an error.");
            ExitCode::FAILURE
        }
    }
}

/// Invalid configuration: one line naming the variable, exit status 2 (as clap's usage errors).
fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("firstcome: configuration error: {e}");
    ExitCode::from(2)
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    firstcome::startup::migrate(&settings.database).await?;
    tracing::info!("Migrations applied.");
    Ok(())
}

async fn consume(settings: Settings) -> anyhow::Result<()> {
    let token = tokio_util::sync::CancellationToken::new();
    spawn_signal_handler(token.clone());
    firstcome::startup::consume(settings, token).await
}

/// Cancels `token` on SIGTERM or Ctrl-C.
fn spawn_signal_handler(token: tokio_util::sync::CancellationToken) {
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            wait_for_signal().await;
            tracing::info!("Stop signal received; shutting down.");
            token.cancel();
        },
        tracing::info_span!("signals"),
    ));
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    spawn_signal_handler(app.shutdown_token());
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
