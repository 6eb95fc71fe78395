//! `firstcome-proof`: `run` records a sale under faults and checks it; `check HISTORY FINAL`
//! judges recorded files; `broker` (hidden) is the Kafka broker process `run` starts. Exit
//! status: 0 clean, 1 anomalies, 2 the run or the input failed.

use std::{fs::File, io::BufReader, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

use firstcome_proof::{
    self as harness,
    check::{self, Options},
    final_state, history,
    model::ModelParams,
    RunOptions,
};

#[derive(Parser)]
#[command(
    name = "firstcome-proof",
    about = "Record a sale's history under faults and check it against a model of the contract"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a recorded history against a final state.
    Check {
        /// The history, JSON Lines.
        history: PathBuf,
        /// The final state, one JSON document.
        final_state: PathBuf,
        /// The run's SOLD_OUT_MEMO_MS: SOLD_OUT answers justified only that far back are
        /// counted as the memo's, apart.
        #[arg(long, default_value_t = 0)]
        sold_out_memo_ms: u64,
        /// How far back an unjustified refusal's explanation looks, and how long a timed-out
        /// operation is taken to stay in flight.
        #[arg(long, default_value_t = 2000)]
        lookback_ms: u64,
        /// The run's RESERVATION_TIMEOUT_MS: how long a reservation a crashed or stopped
        /// instance left open may hold units before the reconciler gives them back.
        #[arg(long, default_value_t = 15_000)]
        reservation_timeout_ms: u64,
        /// The run's HTTP_REQUEST_TIMEOUT_MS: how long a join that timed out at the client, with
        /// no fault overlapping it, may hold its units after its invoke.
        #[arg(long, default_value_t = 10_000)]
        request_timeout_ms: u64,
        /// The run's WRITER_PER_CAMPAIGN: an instance's kill, term or stop bears on the joins
        /// of every instance (their wins may have been handed to it).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        writer_per_campaign: bool,
        /// How long after MySQL answers again a join whose commit was in doubt may hold units.
        #[arg(long, default_value_t = 2_000)]
        in_doubt_settle_ms: u64,
        /// How long after Redis answers again a join that ended indeterminate during a Redis
        /// fault may hold units.
        #[arg(long, default_value_t = 1_000)]
        redis_settle_ms: u64,
        /// The run's QUEUE_TICKET_IDLE_MS: a waitlisted ticket not polled for this long gets no
        /// offer.
        #[arg(long, default_value_t = 30_000)]
        queue_idle_ms: u64,
        /// How far an expiry may precede, or a confirmation follow, a hold's deadline.
        #[arg(long, default_value_t = 100)]
        deadline_tolerance_ms: i64,
        /// How long after a pause or close a win may still commit (§15 documents 1 s).
        #[arg(long, default_value_t = 1000)]
        control_grace_ms: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Anomalies spelled out per kind in the table.
        #[arg(long, default_value_t = 20)]
        details: usize,
    },
    /// Run a workload with faults against two instances of the service, then check it.
    Run(Box<RunOptions>),
    /// The Kafka broker of a run (librdkafka's mock cluster): prints its bootstrap address,
    /// takes `down` / `up` on stdin, exits when stdin closes.
    #[command(hide = true)]
    Broker {
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("firstcome-proof: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(opts) => harness::run(*opts),
        Command::Broker { partitions, topics } => {
            harness::broker::serve(partitions, &topics)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            history,
            final_state,
            sold_out_memo_ms,
            lookback_ms,
            reservation_timeout_ms,
            request_timeout_ms,
            writer_per_campaign,
            in_doubt_settle_ms,
            redis_settle_ms,
            queue_idle_ms,
            deadline_tolerance_ms,
            control_grace_ms,
            json,
            details,
        } => {
            let h = history::read(BufReader::new(open(&history)?))
                .with_context(|| format!("reading {}", history.display()))?;
            let (s, buckets, groups) =
                final_state::read_all(BufReader::new(open(&final_state)?))
                    .with_context(|| format!("reading {}", final_state.display()))?;
            let ms = |v: u64| i64::try_from(v.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
            let opts = Options {
                sold_out_memo: ms(sold_out_memo_ms),
                lookback: ms(lookback_ms),
                reservation_timeout: ms(reservation_timeout_ms),
                request_timeout: ms(request_timeout_ms),
                in_doubt_settle: ms(in_doubt_settle_ms),
                redis_settle: ms(redis_settle_ms),
                queue_idle: ms(queue_idle_ms),
                writers_anywhere: writer_per_campaign,
                model: ModelParams {
                    deadline_tolerance: chrono::Duration::milliseconds(deadline_tolerance_ms),
                    control_grace: chrono::Duration::milliseconds(control_grace_ms),
                },
            };
            let report = check::check_all(&h, &s, &buckets, &groups, &opts);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render(details));
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn open(path: &PathBuf) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}
