//! What a running consumer reports: its state, counters and lag per partition. Written by the
//! runner and its Kafka context, read by `/health/ready`, the tests and (later) `/metrics`.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use super::ConsumerName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    /// Joining the group, no batch applied yet.
    Starting,
    /// Applying (or idle with nothing to apply).
    Running,
    /// The last transaction failed; the batch is being retried.
    Retrying,
    Stopped,
}

#[derive(Debug)]
pub struct ConsumerReport {
    pub name: ConsumerName,
    status: Mutex<ConsumerStatus>,
    /// Events whose effect this process applied.
    pub applied: AtomicU64,
    /// Events skipped because their inbox row existed (redeliveries).
    pub duplicates: AtomicU64,
    /// Messages sent to the consumer's dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Failed transactions (each retried).
    pub retries: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Messages behind the stored (applied) offset, per assigned partition, from librdkafka's
    /// statistics (once a second).
    lag: Mutex<BTreeMap<i32, i64>>,
}

impl ConsumerReport {
    pub fn new(name: ConsumerName) -> Self {
        Self {
            name,
            status: Mutex::new(ConsumerStatus::Starting),
            applied: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            lag: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn status(&self) -> ConsumerStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_status(&self, status: ConsumerStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = lag;
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
