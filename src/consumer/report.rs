//! What a running consumer reports: its state, counters and lag per partition. Written by the
//! runner and its Kafka context, read by `/health/ready` and the tests. The counters, the lag and
//! the apply latency are the application's metrics (`firstcome_consumer_*`), labelled with this
//! consumer's name: `/metrics` and this report read the same values.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};

use crate::{
    config::consumers::ConsumerName,
    telemetry::metrics::{
        registry::{ConsumerEventLabels, ConsumerLabels, ConsumerPartitionLabels},
        Metrics,
    },
};

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
    pub applied: Counter,
    /// Events skipped because their inbox row existed (redeliveries).
    pub duplicates: Counter,
    /// Messages sent to the consumer's dead-letter topic.
    pub dead_lettered: Counter,
    /// Events the broker dropped before this consumer read them (`consumer::continuity`).
    pub skipped: Counter,
    /// Failed transactions (each retried).
    pub retries: Counter,
    /// Event `occurredAt` → this consumer's commit, per applied event.
    pub apply_latency: Histogram,
    /// Messages behind the stored (applied) offset, per assigned partition, from librdkafka's
    /// statistics (once a second).
    lag: Mutex<BTreeMap<i32, i64>>,
    /// The same lag as gauges (`firstcome_consumer_lag`); a partition given up loses its gauge.
    lag_gauges: Family<ConsumerPartitionLabels, Gauge>,
}

impl ConsumerReport {
    pub fn new(name: ConsumerName, metrics: &Metrics) -> Self {
        let consumer = name.as_str();
        let events = |result| {
            metrics
                .consumer_events
                .get_or_create_owned(&ConsumerEventLabels { consumer, result })
        };
        Self {
            name,
            status: Mutex::new(ConsumerStatus::Starting),
            applied: events("applied"),
            duplicates: events("duplicate"),
            dead_lettered: events("dead_lettered"),
            skipped: events("skipped"),
            retries: metrics
                .consumer_retries
                .get_or_create_owned(&ConsumerLabels { consumer }),
            apply_latency: metrics
                .consumer_apply_latency
                .get_or_create_owned(&ConsumerLabels { consumer }),
            lag: Mutex::new(BTreeMap::new()),
            lag_gauges: metrics.consumer_lag.clone(),
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
        let mut current = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        let consumer = self.name.as_str();
        for partition in current.keys().filter(|p| !lag.contains_key(p)) {
            self.lag_gauges.remove(&ConsumerPartitionLabels {
                consumer,
                partition: *partition,
            });
        }
        for (partition, messages) in &lag {
            self.lag_gauges
                .get_or_create(&ConsumerPartitionLabels {
                    consumer,
                    partition: *partition,
                })
                .set(*messages);
        }
        *current = lag;
    }

    /// Records the commit → applied latency of an event that occurred `age` ago.
    pub(crate) fn applied_after(&self, age: Duration) {
        self.apply_latency.observe(age.as_secs_f64());
    }

    pub fn get(counter: &Counter) -> u64 {
        counter.get()
    }

    pub(crate) fn add(counter: &Counter, n: usize) {
        counter.inc_by(n as u64);
    }
}
