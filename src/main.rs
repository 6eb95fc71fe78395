//! The `firstcome` binary: `serve` (default), `consume`, `migrate`, `openapi`, `asyncapi`, `token`,
//! `solve-bot-check`.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{error::ErrorKind, CommandFactory, FromArgMatches, Parser, Subcommand};
use firstcome::{
    config::{args::ServeArgs, cli, token_args::TokenArgs, ConfigError, Settings},
    shutdown::watchdog,
    startup::Application,
    telemetry,
};

/// How long the runtime waits, once the application has stopped, for what is still on it (idle
/// per-campaign loops are dropped; a worker stuck in a call is not waited for).
const RUNTIME_EXIT: Duration = Duration::from_millis(500);

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
    /// Print an HS256 token for a user, signed with JWT_SECRET (for trying USER_AUTH=jwt, for k6).
    Token(TokenArgs),
    /// Solve a bot-check challenge read from stdin (the JSON of `GET …/campaigns/{id}/bot-check`)
    /// and print the `botCheck` value to send, as the ALTCHA widget would (for trying the check).
    SolveBotCheck,
    /// Print docs/configuration.md's table of settings (markdown), generated from the settings.
    #[command(hide = true)]
    ConfigTable,
}

enum Run {
    Serve,
    Consume,
    Migrate,
}

fn main() -> ExitCode {
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
        Some(Command::Openapi) => return print_document(&firstcome::api::openapi_yaml()),
        Some(Command::Asyncapi) => {
            let topic = firstcome::config::DEFAULT_TOPIC;
            return print_document(&firstcome::events::asyncapi::asyncapi_yaml(topic));
        }
        Some(Command::Token(args)) => return token(&args),
        Some(Command::SolveBotCheck) => return solve_bot_check(),
        Some(Command::ConfigTable) => {
            return print_document(&firstcome::config::reference::markdown())
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
    // Protected mode: only `serve` listens, so only `serve` can be exposed.
    if let (Run::Serve, Err(e)) = (&run, settings.check_protected_mode()) {
        return config_failure(&e);
    }
    telemetry::init(settings.log_format, settings.rust_log.as_deref());
    // Built by hand rather than with #[tokio::main], whose runtime waits without a bound for
    // every task and blocking call still on it when `main` returns.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("firstcome: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run_command(run, settings));
    runtime.shutdown_timeout(RUNTIME_EXIT);
    code
}

async fn run_command(run: Run, settings: Settings) -> ExitCode {
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

/// Writes a generated document to stdout. A reader that stops early (`| head`) closes the pipe:
/// that ends the output quietly, where `print!` would panic.
fn print_document(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write the document: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `firstcome token`: the token alone on stdout (`TOKEN=$(firstcome token --user 42)`), or one
/// per line for `--count` users.
fn token(args: &TokenArgs) -> ExitCode {
    let (secret, users) = match args.secret().and_then(|s| Ok((s, args.users()?))) {
        Ok(both) => both,
        Err(e) => return config_failure(&e),
    };
    let mut out = String::new();
    for user in users {
        let minted = firstcome::identity::token::mint(
            secret,
            user,
            args.ttl,
            args.issuer.as_deref(),
            args.audience.as_deref(),
            &args.user_claim,
        );
        match minted {
            Ok(token) => {
                out.push_str(&token);
                out.push('\n');
            }
            Err(e) => {
                eprintln!("firstcome token: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_document(&out)
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
    watchdog::start(token.clone(), settings.shutdown_timeout)
        .context("could not start the shutdown watchdog")?;
    firstcome::startup::consume(settings, token).await
}

/// SIGTERM or Ctrl-C stops the application; the watchdog holds the shutdown to its deadline.
async fn serve(settings: Settings) -> anyhow::Result<()> {
    let timeout = settings.shutdown_timeout;
    let app = Application::builder(settings)
        .hooks(firstcome::startup::process_hooks())
        .build()
        .await?;
    watchdog::start(app.shutdown_token(), timeout)
        .context("could not start the shutdown watchdog")?;
    app.run_until_stopped().await
}

/// `solve-bot-check`: the challenge on stdin, the payload on stdout (base64 of ALTCHA's
/// `{challenge, solution}`, what the widget sends), solved on one core.
fn solve_bot_check() -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
        eprintln!("firstcome solve-bot-check: could not read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let challenge: altcha::Challenge = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "firstcome solve-bot-check: stdin is not a challenge (the JSON of GET \
                 /api/v1/campaigns/{{id}}/bot-check): {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match firstcome::bot_check::pow::solve(&challenge) {
        Some(payload) => {
            println!("{payload}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("firstcome solve-bot-check: no solution found (a malformed or too costly challenge)");
            ExitCode::FAILURE
        }
    }
}
