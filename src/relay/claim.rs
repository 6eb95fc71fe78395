//! The claim loop: wakes on a commit (the participation path's notify), on a key unblocked, on a
//! leadership change or on the poll interval; claims due rows of the shards it leads (checked
//! inside the claim transaction) and hands each to its key's worker through a bounded queue.
//!
//! It claims again at once after a full batch, so a burst drains without waiting for the next
//! wake-up; otherwise a claim starts at least `RELAY_CLAIM_INTERVAL_MS` after the one before, so
//! a steady flow of commits is claimed in fewer, larger claims. While a queue is full it keeps
//! watching shutdown and its leadership: rows it can no longer hand out are let go (a claim
//! writes nothing, so nothing in MySQL is given back), and their keys are blocked until nothing
//! of them is left in the pipeline.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::hooks::Hooks;
use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        Db,
    },
    relay::{
        leadership::Leadership,
        order::KeyOrder,
        store::{self, ClaimedRow},
    },
};

pub struct ClaimLoop {
    pub db: Db,
    pub owner: String,
    pub batch: u32,
    pub poll: Duration,
    /// `RELAY_CLAIM_INTERVAL_MS`: the shortest time from the start of one claim to the start of
    /// the next one a wake-up asks for (a full batch is followed at once, whatever it says).
    pub interval: Duration,
    pub shards: u32,
    pub order: Arc<KeyOrder>,
    /// Notified after each participation commit and when a key is unblocked.
    pub wakeup: Arc<Notify>,
    pub leadership: watch::Receiver<Leadership>,
    /// Test hooks (none in production).
    pub hooks: Arc<dyn Hooks>,
}

/// The worker a key always goes to: its campaign's, by the partitioner's hash
/// (`kafka::partition::ByCampaign::of_key`), so a bucketed campaign's keys share one worker, as
/// they share one partition. Spread over the workers, a campaign's rows were marked PUBLISHED
/// out of id order, and purging their index entries reorganised InnoDB pages 19× as often a win
/// (docs/benchmarks.md "The relay's workers and the bucketed redo").
pub fn worker_for(key: &str, workers: usize) -> usize {
    let workers = i32::try_from(workers).unwrap_or(i32::MAX);
    crate::kafka::partition::ByCampaign::of_key(key.as_bytes(), workers) as usize
}

impl ClaimLoop {
    /// Runs until `stop`; dropping `senders` on the way out closes the workers' queues.
    pub async fn run(mut self, senders: Vec<mpsc::Sender<ClaimedRow>>, stop: CancellationToken) {
        let mut last_claim: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = self.leadership.changed() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
            if !self.leadership.borrow().leads_any() {
                continue;
            }
            // Commits keep waking the loop during a sale: their rows wait for the interval to
            // pass, and one claim takes them together.
            if let Some(started) = last_claim {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(started + self.interval) => {}
                }
            }
            last_claim = Some(tokio::time::Instant::now());
            // Claim until a short batch: a burst drains without waiting for the next wake-up.
            loop {
                let (rows, bounded) = match self.claim().await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "Claiming outbox rows failed; will retry at the next poll.");
                        break;
                    }
                };
                // A claim cut short by the bound on held ids (`held.rs`) may have left rows
                // behind: claim again while it finds any.
                let short = rows.is_empty() || (rows.len() < self.batch as usize && !bounded);
                // A test's paused instance stops here, holding what it claimed (only a claim
                // that took rows stops: one that found nothing would hold nothing).
                if !rows.is_empty() {
                    self.hooks.after_claim().await;
                }
                if !self.dispatch(rows, &senders, &stop).await || short || stop.is_cancelled() {
                    break;
                }
            }
        }
        tracing::debug!("Claim loop stopped.");
    }

    /// One claim, run again once if InnoDB picked it as a deadlock victim (it did nothing). The
    /// rows it returns are counted in the pipeline, and held, before anything else can happen to
    /// their keys. Also says whether the held ids were too scattered to name them all (the claim
    /// then left out everything past a bound).
    async fn claim(&self) -> Result<(Vec<ClaimedRow>, bool), sea_orm::DbErr> {
        let view = self.order.begin_claim();
        let bounded = view.held.below.is_some();
        let claim = || store::claim(&self.db, &self.owner, self.shards, self.batch, &view);
        let result = match claim().await {
            Err(e) if db_error::kind(&e) == DbErrorKind::Deadlock => claim().await,
            other => other,
        };
        let rows = result.as_deref().unwrap_or(&[]);
        self.order
            .end_claim(rows.iter().map(|r| (r.msg_key.as_str(), r.id)));
        result.map(|rows| (rows, bounded))
    }

    /// Hands rows to their workers in claim order. Returns `false` when it had to stop (shutdown,
    /// a closed queue, or leadership lost while waiting): the rows not handed out are given back.
    async fn dispatch(
        &mut self,
        rows: Vec<ClaimedRow>,
        senders: &[mpsc::Sender<ClaimedRow>],
        stop: &CancellationToken,
    ) -> bool {
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            let tx = &senders[worker_for(&row.msg_key, senders.len())];
            let permit = loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break None,
                    permit = tx.reserve() => break permit.ok(),
                    changed = self.leadership.changed() => {
                        if changed.is_err() || !self.leadership.borrow().leads(row.shard) {
                            break None;
                        }
                    }
                }
            };
            match permit {
                Some(permit) => permit.send(row),
                None => {
                    let rest: Vec<ClaimedRow> = std::iter::once(row).chain(rows).collect();
                    self.give_back(rest);
                    return false;
                }
            }
        }
        true
    }

    /// Lets go of rows that were claimed but not handed out. Their keys are blocked first: a
    /// key with older rows still in a worker's pipeline is claimed again only once those are
    /// settled, and then from its oldest row.
    fn give_back(&self, rows: Vec<ClaimedRow>) {
        for row in &rows {
            self.order.block(&row.msg_key, row.id);
        }
        self.order
            .settled(rows.iter().map(|r| (r.msg_key.as_str(), r.id)));
    }
}

#[cfg(test)]
mod tests {
    use super::worker_for;

    #[test]
    fn a_campaigns_keys_share_a_worker_and_campaigns_spread_over_the_workers() {
        for workers in [1, 4, 16] {
            for campaign in [1, 42, 1_000_003] {
                let own = worker_for(&campaign.to_string(), workers);
                for bucket in [0, 7, 1023] {
                    assert_eq!(worker_for(&format!("{campaign}:{bucket}"), workers), own);
                }
            }
        }
        let used: std::collections::BTreeSet<usize> = (1..=100)
            .map(|c| worker_for(&format!("{c}:3"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }
}
