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

impl Reconciler {
    /// One pass: gives back the reservations older than `older_than` whose user has no
    /// participation in MySQL. Returns how many were given back.
    pub async fn run_once(&self, older_than: Duration) -> Result<u64, ReconcileError> {
        let cutoff = Utc::now().timestamp_millis()
            - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut given_back = 0;
        for campaign_id in self.campaigns.ids().await {
            let Some(campaign) = self.campaigns.get(&self.db, campaign_id).await? else {
                continue;
            };
            // A bucketed campaign at rest opened nothing in its buckets for longer than any
            // reservation needs to come of age here (gate::activity): none of its buckets is read.
            if campaign.buckets > 1 && !self.gate.busy(campaign_id).await? {
                continue;
            }
            for slot in campaign.slots() {
                for open in self.gate.open_reservations(slot).await? {
                    if open.reserved_at_ms > cutoff {
                        continue;
                    }
                    if self.give_back(slot, &open).await? {
                        given_back += 1;
                        tracing::warn!(
                            campaign_id,
                            bucket = slot.bucket,
                            user_id = open.user_id,
                            quantity = open.quantity,
                            "Gave back a reservation a crashed instance left open."
                        );
                    }
                }
                if slot.bucket.is_some() {
                    given_back += self.settle_takes(&campaign, slot, cutoff).await?;
                }
            }
        }
        Ok(given_back)
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
            if let Err(e) = self.run_once(timeout).await {
                tracing::warn!(error = %e, "Reconciling open reservations failed; will try again.");
            }
        }
    }
}
