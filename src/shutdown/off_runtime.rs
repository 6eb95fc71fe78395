//! Blocking client calls, kept off the async workers and bounded.
//!
//! librdkafka's synchronous calls wait for a broker with no deadline of their own: a synchronous
//! offset commit waits for a group coordinator that may never answer, a consumer's close for the
//! group to be left, a client's destructor for its threads. Run on an async worker, such a call
//! takes the worker with it; with every worker taken nothing else runs, not even the timer that
//! would end the shutdown. So each such call runs here: on a thread of its own (not tokio's
//! blocking pool, which the runtime waits for when it shuts down), registered by name in
//! [`running`](crate::shutdown::running) while it lasts, and awaited for at most a limit. A call that
//! outlives its limit is left to finish (or to end with the process).

use std::time::Duration;

use crate::shutdown::running;

/// Why a bounded call gave no result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unfinished {
    #[error("still running after {0:?}")]
    TimedOut(Duration),
    #[error("it panicked")]
    Panicked,
    #[error("no thread could be started for it: {0}")]
    NoThread(String),
}

/// Runs `call` on a thread of its own named `what`, and waits for it at most `limit`.
pub async fn run<T, F>(what: impl Into<String>, limit: Duration, call: F) -> Result<T, Unfinished>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let what = what.into();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let registered = running::enter(what.clone());
    std::thread::Builder::new()
        .name(thread_name(&what))
        .spawn(move || {
            let _registered = registered;
            // The receiver is gone when the caller stopped waiting: the result is not wanted.
            let _ = tx.send(call());
        })
        .map_err(|e| Unfinished::NoThread(e.to_string()))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(Unfinished::Panicked),
        Err(_) => Err(Unfinished::TimedOut(limit)),
    }
}

/// Drops `value` on a thread of its own named `what`, without waiting for it: for the Kafka
/// clients, whose destructors purge, flush and join librdkafka's threads.
pub fn drop_detached<T: Send + 'static>(what: impl Into<String>, value: T) {
    let what = what.into();
    let registered = running::enter(what.clone());
    let spawned = std::thread::Builder::new()
        .name(thread_name(&what))
        .spawn(move || {
            let _registered = registered;
            drop(value);
        });
    if let Err(e) = spawned {
        // The value went with the closure; it was dropped here, on the caller's thread.
        tracing::warn!(what, error = %e, "Could not start a thread to close a Kafka client; closed it in place.");
    }
}

/// Thread names are shown by debuggers and `top -H`; Linux keeps their first 15 bytes.
fn thread_name(what: &str) -> String {
    what.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(15)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_blocks_is_given_up_at_its_limit_without_blocking_the_runtime() {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let what = format!("test call {}", uuid::Uuid::now_v7());
        // On a current-thread runtime a call blocking the runtime's only thread would never let
        // the timeout fire: this returning at all shows the call ran elsewhere.
        let result = run(what.clone(), Duration::from_millis(50), move || {
            held.recv().ok();
        })
        .await;
        assert_eq!(result, Err(Unfinished::TimedOut(Duration::from_millis(50))));
        assert!(
            running::snapshot().iter().any(|(n, _)| *n == what),
            "the call is listed while it still runs"
        );
        release.send(()).expect("release");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_that_returns_gives_its_value_and_a_panic_is_reported() {
        assert_eq!(run("adds", Duration::from_secs(5), || 2 + 2).await, Ok(4));
        let panicked: Result<(), _> =
            run("panics", Duration::from_secs(5), || panic!("boom")).await;
        assert_eq!(panicked, Err(Unfinished::Panicked));
    }

    #[test]
    fn thread_names_fit_linux() {
        assert_eq!(thread_name("consumer stats: close"), "consumer-stats-");
    }
}
