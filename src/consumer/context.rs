//! The Kafka client context of a consumer: follows the assignment, commits applied offsets
//! before partitions are taken away, and turns librdkafka's statistics into lag per partition.
//!
//! librdkafka calls these from inside `recv()`, which the runner only awaits between batches:
//! a rebalance never runs while a batch is being applied.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    statistics::Statistics,
    ClientContext, TopicPartitionList,
};

use crate::consumer::report::ConsumerReport;

pub struct GroupContext {
    pub topic: String,
    pub report: Arc<ConsumerReport>,
    /// Partitions of `topic` this member holds, each with the number of the assignment that
    /// gave it (counted from 1); a batch drops messages of any other (revoked while the batch was
    /// being collected: their new owner applies them).
    assigned: Mutex<Assigned>,
}

#[derive(Default)]
struct Assigned {
    partitions: HashMap<i32, u64>,
    assignments: u64,
}

impl GroupContext {
    pub fn new(topic: &str, report: Arc<ConsumerReport>) -> Self {
        Self {
            topic: topic.into(),
            report,
            assigned: Mutex::new(Assigned::default()),
        }
    }

    pub fn holds(&self, partition: i32) -> bool {
        self.assignment(partition).is_some()
    }

    /// The number of the assignment that gave this member `partition`, while it holds it.
    pub fn assignment(&self, partition: i32) -> Option<u64> {
        self.assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .partitions
            .get(&partition)
            .copied()
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

/// Commits the offsets stored so far. Nothing stored since the last commit counts as done.
/// `CommitMode::Sync` waits for the group coordinator without a deadline: never on an async
/// worker (the runner's last commit runs on a thread of its own, `shutdown::off_runtime`).
pub(super) fn commit_stored<C: Consumer<GroupContext>>(
    consumer: &C,
    mode: CommitMode,
) -> rdkafka::error::KafkaResult<()> {
    match consumer.commit_consumer_state(mode) {
        Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => Ok(()),
        other => other,
    }
}

/// Messages after the applied position: from the stored offset when there is one, else the
/// committed one, else (nothing consumed or committed yet) the whole partition.
fn lag(p: &rdkafka::statistics::Partition) -> i64 {
    if p.consumer_lag_stored >= 0 {
        p.consumer_lag_stored
    } else if p.consumer_lag >= 0 {
        p.consumer_lag
    } else {
        (p.hi_offset - p.lo_offset.max(0)).max(0)
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let lag: BTreeMap<i32, i64> = topic
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && self.holds(p.partition))
            .map(|p| (p.partition, lag(p)))
            .collect();
        self.report.set_lag(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = self.partitions(tpl);
            {
                let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
                for p in &revoked {
                    assigned.partitions.remove(p);
                }
            }
            // What was applied is committed before another member starts from the committed
            // offset, asynchronously: this runs on an async worker (inside `recv()`), and a
            // synchronous commit would hold the worker for as long as the coordinator does not
            // answer (a partition is also revoked when the coordinator is lost). A commit that
            // does not land first only means redelivery, which the inbox makes harmless.
            if let Err(e) = commit_stored(consumer, CommitMode::Async) {
                tracing::warn!(consumer = %self.report.name, error = %e, ?revoked,
                    "Could not commit offsets before giving partitions up; the new owner gets what was applied again and skips it.")
            }
            tracing::info!(consumer = %self.report.name, ?revoked, "Partitions revoked.");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let added = self.partitions(tpl);
                {
                    let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
                    assigned.assignments += 1;
                    let number = assigned.assignments;
                    (assigned.partitions).extend(added.iter().map(|&p| (p, number)));
                }
                tracing::info!(consumer = %self.report.name, ?added, "Partitions assigned.");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(consumer = %self.report.name, error = %e, "Rebalance failed.");
            }
        }
    }
}
