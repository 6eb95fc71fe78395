//! Events a consumer never read (docs/design.md §11 "Events the broker dropped"): a partition's
//! offsets run without a hole (the relay's producer is idempotent, no transactions, no
//! compaction), so a message whose offset is past the one expected means the broker removed the
//! ones between before this consumer read them: its retention passed over a consumer that lagged
//! (the embedded broker keeps ~5 MiB a partition) and librdkafka, finding its position gone,
//! went on from the earliest it has (`auto.offset.reset`). Nothing can apply those events any
//! more; the consumer says so loudly (an ERROR naming the partition and the offsets, and
//! `firstcome_consumer_events_total{result="skipped"}`) and goes on.
//!
//! The offset expected is, within one assignment of a partition, the one after the last message
//! read; at the assignment's first message, the group's committed offset (where librdkafka
//! started fetching from, unless it was gone).

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    Offset, TopicPartitionList,
};

use crate::{consumer::context::GroupContext, shutdown::off_runtime};

/// How long the committed offset of a partition just assigned may take to read.
const COMMITTED_WITHIN: Duration = Duration::from_secs(5);

/// A run of offsets `[from, to)` of `partition` this consumer never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Skipped {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

impl Skipped {
    pub fn count(&self) -> i64 {
        self.to - self.from
    }
}

/// Per partition, the assignment it was last read in and the next offset expected.
#[derive(Default)]
pub(super) struct Continuity {
    next: HashMap<i32, (u64, i64)>,
}

impl Continuity {
    /// Whether `partition`'s next offset is known for `assignment` (else the caller reads the
    /// group's committed offset and [`Self::start`]s it).
    pub fn knows(&self, partition: i32, assignment: u64) -> bool {
        self.next
            .get(&partition)
            .is_some_and(|&(a, _)| a == assignment)
    }

    /// `partition` assigned anew (`assignment`), read from `committed` (`None`: unknown, nothing
    /// committed or not readable; its first message sets the expectation).
    pub fn start(&mut self, partition: i32, assignment: u64, committed: Option<i64>) {
        match committed {
            Some(offset) => {
                self.next.insert(partition, (assignment, offset));
            }
            None => {
                self.next.remove(&partition);
            }
        }
    }

    /// A message of `partition` at `offset`, read in `assignment`: the offsets skipped before it,
    /// if any.
    pub fn read(&mut self, partition: i32, assignment: u64, offset: i64) -> Option<Skipped> {
        let expected = self
            .next
            .get(&partition)
            .filter(|&&(a, _)| a == assignment)
            .map(|&(_, next)| next);
        let next = expected.map_or(offset + 1, |e| e.max(offset + 1));
        self.next.insert(partition, (assignment, next));
        expected.filter(|&e| offset > e).map(|from| Skipped {
            partition,
            from,
            to: offset,
        })
    }
}

/// The group's committed offset of `partition`, read off the async workers (librdkafka's call
/// blocks until the coordinator answers); `None` when nothing is committed or it could not be
/// read in time.
pub(super) async fn committed(
    consumer: &Arc<StreamConsumer<GroupContext>>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let consumer = consumer.clone();
    let read = off_runtime::run(
        format!("committed offset of partition {partition}"),
        COMMITTED_WITHIN,
        move || consumer.committed_offsets(wanted, COMMITTED_WITHIN),
    )
    .await;
    match read {
        Ok(Ok(list)) => list.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }),
        Ok(Err(e)) => {
            tracing::debug!(partition, error = %e, "Could not read a committed offset.");
            None
        }
        Err(unfinished) => {
            tracing::debug!(partition, error = %unfinished, "Could not read a committed offset in time.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_in_a_row_skip_nothing() {
        let mut c = Continuity::default();
        c.start(0, 1, Some(10));
        assert_eq!(c.read(0, 1, 10), None);
        assert_eq!(c.read(0, 1, 11), None);
        assert_eq!(c.read(0, 1, 12), None);
    }

    #[test]
    fn a_first_message_past_the_committed_offset_names_the_offsets_between() {
        let mut c = Continuity::default();
        c.start(3, 1, Some(3));
        let skipped = c.read(3, 1, 5_000).expect("skipped");
        assert_eq!(
            skipped,
            Skipped {
                partition: 3,
                from: 3,
                to: 5_000
            }
        );
        assert_eq!(skipped.count(), 4_997);
        assert_eq!(c.read(3, 1, 5_001), None);
    }

    #[test]
    fn a_hole_inside_an_assignment_is_named_once() {
        let mut c = Continuity::default();
        c.start(0, 1, None);
        assert_eq!(
            c.read(0, 1, 7),
            None,
            "nothing known before the first message"
        );
        assert_eq!(
            c.read(0, 1, 20),
            Some(Skipped {
                partition: 0,
                from: 8,
                to: 20
            })
        );
        assert_eq!(c.read(0, 1, 21), None);
    }

    #[test]
    fn a_new_assignment_starts_afresh_and_partitions_are_apart() {
        let mut c = Continuity::default();
        c.start(0, 1, Some(0));
        c.start(1, 1, Some(100));
        assert_eq!(c.read(0, 1, 0), None);
        assert_eq!(c.read(1, 1, 100), None);
        assert!(c.knows(0, 1) && !c.knows(0, 2));
        // Assigned again: the group's offset, not what this member read before, is expected.
        c.start(0, 2, Some(50));
        assert_eq!(c.read(0, 2, 50), None);
        // A message from an assignment that is not the partition's known one expects nothing.
        assert_eq!(c.read(1, 2, 500), None);
    }

    #[test]
    fn a_message_read_again_moves_nothing_back() {
        let mut c = Continuity::default();
        c.start(0, 1, Some(10));
        assert_eq!(c.read(0, 1, 10), None);
        assert_eq!(c.read(0, 1, 11), None);
        assert_eq!(c.read(0, 1, 11), None);
        assert_eq!(c.read(0, 1, 12), None);
    }
}
