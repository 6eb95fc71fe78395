//! The shutdown deadline, held from outside the async runtime.
//!
//! Shutdown normally ends by itself within `SHUTDOWN_TIMEOUT_MS` (the order is in `startup.rs`).
//! That rests on the async runtime: its timers end every wait. A call that blocks the runtime's
//! workers (a synchronous client call that waits for a dependency that never answers) would stop
//! those timers too, and the process would never exit. So a thread of its own, outside the
//! runtime, receives the stop signals and holds the deadline:
//! - the first SIGTERM or SIGINT cancels the application's root token (the shutdown begins);
//! - when the process is still there [`GRACE`] after the deadline, it logs what was still
//!   running ([`running`](crate::shutdown::running)) and exits with status 1;
//! - a second signal during the shutdown exits at once, the same way (Ctrl-C twice).
//!
//! Ending the process this way loses nothing: rows Kafka did not acknowledge are still PENDING in
//! the outbox (their leases expire), offsets not committed are delivered again and skipped by the
//! consumers' inbox.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::shutdown::running;

/// How long past the shutdown deadline the watchdog waits before it ends the process: time for a
/// shutdown that gave up at its deadline to return, log and exit by itself.
pub const GRACE: Duration = Duration::from_secs(2);

/// What the watchdog thread hears about.
enum Event {
    /// A stop signal arrived (its name).
    Signal(&'static str),
    /// The root token was cancelled (by a signal, or by the application itself).
    Stopped,
}

/// Starts the watchdog for a process whose root token is `stop` and whose shutdown must end
/// within `timeout` of its start. Call it from inside the runtime, once per process.
pub fn start(stop: CancellationToken, timeout: Duration) -> std::io::Result<()> {
    let (events, heard) = mpsc::channel();
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let signalled = events.clone();
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                if signalled.send(Event::Signal(name)).is_err() {
                    return;
                }
            }
        })?;
    // A shutdown the application starts itself (its HTTP server failed, say) is held to the same
    // deadline. This watch runs on the runtime; the signals above do not need it.
    tokio::spawn(
        {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                let _ = events.send(Event::Stopped);
            }
        }
        .instrument(tracing::info_span!("shutdown_watch")),
    );
    std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || watch(&heard, &stop, timeout))?;
    Ok(())
}

fn watch(heard: &mpsc::Receiver<Event>, stop: &CancellationToken, timeout: Duration) {
    let Ok(first) = heard.recv() else { return };
    let mut signalled = false;
    if let Event::Signal(signal) = first {
        tracing::info!(signal, timeout = ?timeout, "Stop signal received; shutting down.");
        signalled = true;
        stop.cancel();
    }
    let deadline = Instant::now() + timeout + GRACE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match heard.recv_timeout(left) {
            Ok(Event::Signal(signal)) if signalled => {
                tracing::error!(signal, still_running = %running::describe(),
                    "A second stop signal during the shutdown: exiting now, with status 1.");
                std::process::exit(1);
            }
            Ok(Event::Signal(signal)) => {
                tracing::info!(
                    signal,
                    "Stop signal received; the shutdown is already under way."
                );
                signalled = true;
            }
            Ok(Event::Stopped) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            tracing::error!(timeout = ?timeout, grace = ?GRACE, still_running = %running::describe(),
                "The shutdown did not end within SHUTDOWN_TIMEOUT_MS; exiting with status 1. \
                 Rows Kafka did not acknowledge stay in the outbox; offsets not committed are delivered again.");
            std::process::exit(1);
        }
    }
}
