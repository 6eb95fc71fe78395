//! What a worker has sent and not yet settled: the pending delivery reports, when each row was
//! sent (the oldest says when to purge) and on which producer generation.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt};
use rdkafka::error::KafkaError;
use tokio::time::Instant;

use crate::{
    kafka::{producer::Delivery, KafkaProducer},
    relay::store::ClaimedRow,
    telemetry::trace::export::ExportSpan,
};

/// A row in flight: resolves with the row, when and on which producer generation it was sent,
/// and its delivery report.
pub type PendingDelivery = BoxFuture<'static, (ClaimedRow, SendStamp, Result<(), KafkaError>)>;

#[derive(Debug, Clone, Copy)]
pub struct SendStamp {
    pub at: Instant,
    pub generation: u64,
}

/// What a worker has sent and not settled.
#[derive(Default)]
pub struct InFlight {
    pub flights: FuturesUnordered<PendingDelivery>,
    /// (sent at, id) of every flight: the oldest says when to purge.
    sent: BTreeSet<(Instant, i64)>,
    /// Flights per producer generation, with that producer (to purge it).
    generations: BTreeMap<u64, (Arc<KafkaProducer>, usize)>,
    /// No purge before this (one purge per `stuck_after` at most).
    quiet_until: Option<Instant>,
    /// Rows in flight when the last purge ran and not yet reported. librdkafka reports a purge's
    /// failures asynchronously; until each is in, a younger row of their key must not be sent.
    purged: BTreeSet<i64>,
}

impl InFlight {
    /// Tracks a row just handed to `producer` (of `generation`) until its delivery report.
    pub fn add(
        &mut self,
        row: ClaimedRow,
        producer: &Arc<KafkaProducer>,
        generation: u64,
        delivery: Delivery,
        mut span: ExportSpan,
    ) {
        let sent = SendStamp {
            at: Instant::now(),
            generation,
        };
        self.sent.insert((sent.at, row.id));
        self.generations
            .entry(generation)
            .or_insert_with(|| (producer.clone(), 0))
            .1 += 1;
        // The producer lives until this row is reported, even if it is replaced.
        let producer = producer.clone();
        self.flights.push(
            async move {
                let result = delivery.await;
                drop(producer);
                if let Err(e) = &result {
                    span.set_error(e.to_string());
                }
                span.end();
                (row, sent, result)
            }
            .boxed(),
        );
    }

    pub fn len(&self) -> usize {
        self.flights.len()
    }

    /// Whether rows may be sent on producer generation `current`: not while rows sent on an
    /// older producer (replaced after a fatal error) are unreported. Their failures may still
    /// be on the way, and a younger row of their key must not go out before they block it.
    ///
    /// Nor while rows a purge failed are unreported: their failures block their keys only when
    /// they are settled, and a younger row sent before that could be delivered ahead of them
    /// (a 30-minute proof run, seed 104: a purge as the broker came back failed 1,800 rows, and
    /// rows of the same keys sent 90 ms later were delivered before those went back).
    pub fn may_send_on(&self, current: u64) -> bool {
        self.purged.is_empty()
            && self
                .generations
                .first_key_value()
                .is_none_or(|(oldest, _)| *oldest >= current)
    }

    pub fn landed(&mut self, sent_at: Instant, id: i64, generation: u64) {
        self.sent.remove(&(sent_at, id));
        self.purged.remove(&id);
        if let Some((_, n)) = self.generations.get_mut(&generation) {
            *n -= 1;
            if *n == 0 {
                self.generations.remove(&generation);
            }
        }
    }

    /// Fails every unacknowledged message of every producer this worker has rows on: the
    /// current one and any replaced one whose reports are still awaited. (Other workers' rows
    /// on the same producer fail too and go back to the outbox: a suffix, never a gap.)
    pub async fn purge(&mut self, stuck_after: Duration) {
        self.purged.extend(self.sent.iter().map(|&(_, id)| id));
        for (producer, _) in self.generations.values() {
            crate::kafka::producer::purge(producer.clone()).await;
        }
        self.quiet_until = Some(Instant::now() + stuck_after);
    }

    /// When the oldest row will have waited too long.
    pub fn stuck_at(&self, stuck_after: Duration) -> Option<Instant> {
        let oldest = self.sent.first()?.0 + stuck_after;
        Some(self.quiet_until.map_or(oldest, |q| q.max(oldest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_sent_after_a_purge_until_every_purged_row_is_reported() {
        let mut flying = InFlight::default();
        let t0 = Instant::now();
        flying.sent.insert((t0, 1));
        flying.sent.insert((t0, 2));
        assert!(flying.may_send_on(0));
        flying.purge(Duration::from_secs(2)).await;
        assert!(
            !flying.may_send_on(0),
            "the purged rows' failures are not in yet"
        );
        flying.landed(t0, 1, 0);
        assert!(!flying.may_send_on(0), "row 2 is still unreported");
        flying.landed(t0, 2, 0);
        assert!(flying.may_send_on(0));
    }
}
