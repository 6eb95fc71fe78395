//! Giving back gate reservations that crashed instances left open (docs/design.md §2.1).
//!
//! A reservation is open from the gate until its transaction settles (commit or compensation).
//! An instance that dies in between leaves it open: the stock stays taken in Redis although
//! MySQL has no win. The reconciler looks at reservations older than `RESERVATION_TIMEOUT_MS` in
//! the campaigns this instance has served: one whose user has a participation in MySQL committed
//! and is only closed; any other is released (`lua/release.lua` "expire", which acts only if the
//! reservation is still exactly the one read, so a retry that reserved again is left alone).
//! Each decision is taken under the campaign row's lock, which a join's transaction holds from
//! its guarded decrement to its commit (see [`Reconciler::give_back`]).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures::{stream, StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use crate::{
    bucket::store as bucket_store,
    campaign::{Campaign, CampaignCache},
    db::{sql::stmt, Db},
    gate::{
        scripts::OpenReservation, transfer::Untake, Committed, Entry, Gate, GateError, Release,
        Slot,
    },
    win::store,
};
use sea_orm::ConnectionTrait;

/// Why a reconciler pass stopped (the next pass tries again).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("MySQL: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("Redis: {0}")]
    Gate(#[from] GateError),
}

#[derive(Clone)]
pub struct Reconciler {
    pub db: Db,
    pub gate: Gate,
    pub campaigns: Arc<CampaignCache>,
}

/// How many campaigns a pass reads at once, and how many of a campaign's gates.
const CAMPAIGNS_AT_ONCE: usize = 16;
const GATES_AT_ONCE: usize = 64;
/// How many old reservations a pass settles at once (each under its row's lock).
const GIVE_BACKS_AT_ONCE: usize = 8;

/// A gate's open reservations, as one read found them.
struct Opened {
    slot: Slot,
    reservations: Vec<OpenReservation>,
}

impl Reconciler {
    /// One pass: gives back the reservations older than `older_than` whose user has no
    /// participation in MySQL. Returns how many were given back.
    ///
    /// The units of an instance that died come back `RESERVATION_TIMEOUT_MS` after their
    /// reservation plus at most one period and one pass (docs/design.md §18.1): a pass reads its
    /// campaigns and their gates concurrently (one read a gate would take seconds over the
    /// buckets of a few big campaigns on a Redis busy with a burst), and a reservation's age is
    /// judged once its gate's read has answered, not at the pass's start. A failure ends the
    /// campaign's part of the pass; the others go on and the first error is returned.
    pub async fn run_once(&self, older_than: Duration) -> Result<u64, ReconcileError> {
        let outcomes: Vec<Result<u64, ReconcileError>> = stream::iter(self.campaigns.ids().await)
            .map(|id| self.reconcile_campaign(id, older_than))
            .buffer_unordered(CAMPAIGNS_AT_ONCE)
            .collect()
            .await;
        let mut given_back = 0;
        for outcome in outcomes {
            given_back += outcome?;
        }
        Ok(given_back)
    }

    /// One campaign's part of a pass: its gates read at once, then its old reservations and
    /// takes settled.
    async fn reconcile_campaign(
        &self,
        campaign_id: i64,
        older_than: Duration,
    ) -> Result<u64, ReconcileError> {
        let Some(campaign) = self.campaigns.get(&self.db, campaign_id).await? else {
            return Ok(0);
        };
        // A bucketed campaign at rest opened nothing in its buckets for longer than any
        // reservation needs to come of age here (gate::activity): none of its buckets is read.
        if campaign.buckets > 1 && !self.gate.busy(campaign_id).await? {
            return Ok(0);
        }
        let opened: Vec<Opened> = stream::iter(campaign.slots())
            .map(|slot| async move {
                let reservations = self.gate.open_reservations(slot).await?;
                Ok::<_, ReconcileError>(Opened { slot, reservations })
            })
            .buffered(GATES_AT_ONCE)
            .try_collect()
            .await?;
        // Judged now that every gate answered: what came of age during the reads counts.
        let cutoff = Utc::now().timestamp_millis()
            - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut old: Vec<(Slot, OpenReservation)> = Vec::new();
        let mut with_takes: Vec<Slot> = Vec::new();
        for o in opened {
            let slot = o.slot;
            old.extend(
                (o.reservations.into_iter())
                    .filter(|r| r.reserved_at_ms <= cutoff)
                    .map(|r| (slot, r)),
            );
            // A bucket's gate also records the units it set aside for transfers.
            if slot.bucket.is_some() {
                with_takes.push(slot);
            }
        }
        let settled: Vec<bool> = stream::iter(old)
            .map(|(slot, open)| async move { self.give_back_logged(slot, &open).await })
            .buffer_unordered(GIVE_BACKS_AT_ONCE)
            .try_collect()
            .await?;
        let mut given_back = settled.iter().filter(|&&back| back).count() as u64;
        let untaken: Vec<u64> = stream::iter(with_takes)
            .map(|slot| self.settle_takes(&campaign, slot, cutoff))
            .buffer_unordered(GATES_AT_ONCE)
            .try_collect()
            .await?;
        given_back += untaken.iter().sum::<u64>();
        Ok(given_back)
    }

    /// [`Self::give_back`], logged when units went back.
    async fn give_back_logged(
        &self,
        slot: Slot,
        open: &OpenReservation,
    ) -> Result<bool, ReconcileError> {
        let back = self.give_back(slot, open).await?;
        if back {
            tracing::warn!(
                campaign_id = slot.campaign_id,
                bucket = slot.bucket,
                user_id = open.user_id,
                quantity = open.quantity,
                "Gave back a reservation a crashed instance left open."
            );
        }
        Ok(back)
    }

    /// Settles the takes a bucket's gate still records past the cutoff (an instance died, or
    /// MySQL failed, between a take and its transfer's settlement; docs/design.md §21): judged
    /// under the bucket row's lock, which a transfer holds to its commit and after which its
    /// deadline has passed, they are forgotten if MySQL moved the units and given back if not.
    /// Returns how many were given back.
    async fn settle_takes(
        &self,
        campaign: &Campaign,
        slot: Slot,
        cutoff: i64,
    ) -> Result<u64, ReconcileError> {
        let epoch = crate::campaign::gate_epoch(campaign);
        let mut given_back = 0;
        for take in self.gate.open_takes(slot).await? {
            if take.taken_at_ms > cutoff {
                continue;
            }
            let bucket = slot.bucket_or_zero();
            let moved =
                bucket_store::take_committed(&self.db, campaign.id, bucket, take.take_id).await?;
            let how = if moved { Untake::Moved } else { Untake::Back };
            if self.gate.untake(slot, epoch, take.take_id, how).await? && !moved {
                given_back += 1;
                tracing::warn!(
                    campaign_id = campaign.id,
                    bucket,
                    units = take.units,
                    "Gave back units set aside for a transfer that never committed."
                );
            }
        }
        Ok(given_back)
    }

    /// Settles or gives back one old reservation, deciding under the campaign row's lock: a
    /// join's transaction holds that lock from its guarded decrement to its commit, and checks
    /// its commit deadline once it has it (`transaction::write_all`). So the user's win is
    /// either committed when this reads it, or will not be: a join that was stopped or stalled
    /// past its deadline (an instance resumed after a SIGSTOP) no longer commits a win whose
    /// reservation was given back, which counted its units twice and took its user out of the
    /// winners set (found by the proof run). Returns whether units went back.
    async fn give_back(&self, slot: Slot, open: &OpenReservation) -> Result<bool, ReconcileError> {
        let campaign_id = slot.campaign_id;
        let txn = self.db.begin().await?;
        // The row a join's guarded decrement locks: the campaign's, or its bucket's.
        let lock = match slot.bucket {
            None => stmt(
                "SELECT id FROM campaign WHERE id = ? FOR UPDATE",
                vec![campaign_id.into()],
            ),
            Some(bucket) => stmt(
                "SELECT bucket FROM campaign_bucket WHERE campaign_id = ? AND bucket = ? FOR UPDATE",
                vec![campaign_id.into(), bucket.into()],
            ),
        };
        txn.execute_raw(lock).await?;
        if store::find(&txn, campaign_id, open.user_id)
            .await?
            .is_some()
        {
            txn.commit().await?;
            self.gate
                .settle(
                    slot,
                    &[Committed {
                        user_id: open.user_id,
                        quantity: open.quantity,
                    }],
                )
                .await?;
            return Ok(false);
        }
        let entry = Entry::in_slot(slot, open.user_id, open.quantity);
        // The lock is held until Redis has answered: a join that takes it next finds its
        // deadline passed.
        let released = self
            .gate
            .release(&entry, None, Release::Expire, &open.raw)
            .await;
        txn.commit().await?;
        Ok(released?)
    }

    /// Runs a pass every tenth of `timeout` until `stop`. A failed pass (Redis or MySQL down)
    /// is logged and the next one tries again: every call in it has a deadline, so a dependency
    /// that hangs delays the loop, never stops it.
    #[tracing::instrument(name = "reconciler", skip_all)]
    pub async fn run(self, timeout: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(timeout / 10) => {}
            }
            let began = std::time::Instant::now();
            if let Err(e) = self.run_once(timeout).await {
                tracing::warn!(error = %e, "Reconciling open reservations failed; will try again.");
            }
            // A pass longer than the period delays the units of a crashed instance past
            // their bound (docs/design.md §18.1).
            let took = began.elapsed();
            if took > timeout / 10 {
                tracing::warn!(took_ms = took.as_millis() as u64,
                    "A reconciler pass took longer than its period; units a crashed instance left come back late by as much.");
            }
        }
    }
}
