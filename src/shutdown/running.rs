//! What is running right now, by name. Background tasks and blocking client calls register here
//! for as long as they run, so a shutdown that misses its deadline can say what it was waiting
//! for (the watchdog's last log line, and the "did not finish" warning of `startup.rs`).
//!
//! One registry per process: the watchdog it serves is per process too.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

static RUNNING: Mutex<BTreeMap<u64, (String, Instant)>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Registered while it is alive; dropping it unregisters.
#[must_use = "the registration ends when this is dropped"]
pub struct Running {
    id: u64,
}

/// Registers `name` until the returned guard is dropped.
pub fn enter(name: impl Into<String>) -> Running {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, (name.into(), Instant::now()));
    Running { id }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// `future`, registered as `name` from now until it completes or is dropped.
pub fn track<F: Future>(name: impl Into<String>, future: F) -> impl Future<Output = F::Output> {
    let running = enter(name);
    async move {
        let _running = running;
        future.await
    }
}

/// Everything registered, oldest first, with how long it has been running.
pub fn snapshot() -> Vec<(String, Duration)> {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|(name, since)| (name.clone(), since.elapsed()))
        .collect()
}

/// The snapshot as one line for a log field: `relay claims (12.0s), consumer stats (3.1s)`.
pub fn describe() -> String {
    let running = snapshot();
    if running.is_empty() {
        return "nothing registered".into();
    }
    running
        .iter()
        .map(|(name, age)| format!("{name} ({:.1}s)", age.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_listed_while_its_guard_lives() {
        let name = format!("test entry {}", uuid::Uuid::now_v7());
        let listed = || snapshot().iter().any(|(n, _)| *n == name);
        let guard = enter(name.clone());
        assert!(listed());
        assert!(describe().contains(&name));
        drop(guard);
        assert!(!listed());
    }

    #[tokio::test]
    async fn a_tracked_future_is_listed_until_it_completes() {
        let name = format!("test future {}", uuid::Uuid::now_v7());
        let listed = || snapshot().iter().any(|(n, _)| *n == name);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(track(name.clone(), async move { rx.await.ok() }));
        assert!(listed(), "registered as soon as it is created");
        tx.send(()).expect("send");
        task.await.expect("join");
        assert!(!listed());
    }
}
