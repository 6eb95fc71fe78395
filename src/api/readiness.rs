//! The work behind `/health/ready`, done at most once a second per instance, whoever asks
//! (docs/design.md §17): each readiness call of `serve` pings MySQL and Redis, and a flood of
//! them (nobody needs a token to ask) would be a flood of round trips to both. The first call
//! after the interval runs the pings; calls that arrive meanwhile wait for that one run and share
//! its answer; later calls within the interval are answered from it. Each run is counted
//! (`firstcome_readiness_checks_total`).
//!
//! And what a readiness answer shows to whom: anyone sees the status and each dependency's
//! up or down; an admin token (checked at the admin door) also shows the details: the
//! dependencies' errors, Kafka's bootstrap servers, the relay's owner and shards, each
//! consumer's lag and dead letters.

use std::{future::Future, time::Duration};

use poem::Request;
use prometheus_client::metrics::counter::Counter;
use tokio::{sync::Mutex, time::Instant};

use crate::http::{
    admin_auth::{AdminTokens, Presented},
    error::ApiError,
};

/// How long one run's answer stands.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(1);

/// The last run's answer and when it ran. Owned by its health resource.
pub struct Throttled<T> {
    last: Mutex<Option<(Instant, T)>>,
    /// `firstcome_readiness_checks_total`.
    runs: Counter,
}

impl<T: Clone> Throttled<T> {
    pub fn new(runs: Counter) -> Self {
        Self {
            last: Mutex::new(None),
            runs,
        }
    }

    /// The answer of a run no older than [`READINESS_INTERVAL`], running `work` if there is
    /// none. The lock is held across the run: whoever arrives meanwhile waits for it rather than
    /// starting another.
    pub async fn get<F: Future<Output = T>>(&self, work: impl FnOnce() -> F) -> T {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < READINESS_INTERVAL {
                return answer.clone();
            }
        }
        let answer = work().await;
        self.runs.inc();
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// Whether a readiness call may see the details: with an admin token, yes; without any
/// `Authorization`, no; with anything else, 401 (a failed admin attempt unless it is shaped like
/// a user's JWT) and 429 once the client has none left.
pub fn sees_details(admin: &AdminTokens, req: &Request) -> Result<bool, ApiError> {
    match admin.presented(req)? {
        Presented::Nothing => Ok(false),
        Presented::Admin(_) => Ok(true),
        Presented::UserJwt | Presented::Failed => Err(ApiError::unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_run_per_interval() {
        let throttled = Arc::new(Throttled::new(Counter::default()));
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (throttled, runs, mut released) =
                    (throttled.clone(), runs.clone(), released.clone());
                tokio::spawn(async move {
                    throttled
                        .get(|| async move {
                            // Held until every caller is waiting on the lock or has the answer.
                            let _ = released.wait_for(|r| *r).await;
                            runs.fetch_add(1, Ordering::SeqCst) + 1
                        })
                        .await
                })
            })
            .collect();
        release.send(true).expect("callers wait");
        for caller in callers {
            assert_eq!(caller.await.expect("a caller"), 1, "every caller has run 1");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(throttled.runs.get(), 1);
    }
}
