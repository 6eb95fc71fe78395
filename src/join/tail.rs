//! A bucketed campaign's search for units when a join's home bucket ran dry (docs/design.md
//! §21): stock moves, users do not. The bucket's policy (`bucket::policy`) decides; this carries
//! it out: a refill from the undealt pool; once the pool is empty, a steal from the fullest
//! sibling (whose gate sets the units aside first, so that none of them can be reserved there
//! while MySQL moves them); and only when no sibling has a unit, MySQL's count of the whole
//! campaign: pool plus every bucket's row, in one snapshot. None left then is a SOLD_OUT that the
//! committed order justifies at that instant; units left are held by reservations whose commits
//! are in flight (or by a transfer on its way to a gate), and the join waits for them instead of
//! refusing (`Reserve::reserve_in_bucket`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use sea_orm::DbErr;
use uuid::Uuid;

use crate::{
    bucket::{
        policy::{self, Found},
        store::{self, Moved, Steal, StealFailed},
        Deal,
    },
    campaign::{gate_epoch, Campaign},
    db::Db,
    gate::{sold_out::SoldOutMemo, transfer::Untake, Gate, GateError, Returned, Slot},
    hooks::Hooks,
    join::steal_in_doubt::StealInDoubt,
    telemetry::metrics::{
        registry::{ControlLabels, ReasonLabels},
        Metrics,
    },
    upkeep::loader::{GateLoader, LoadError},
};

/// `firstcome_bucket_transfers_total{kind}`'s kinds and `firstcome_bucket_searches_total`'s
/// outcomes.
const TRANSFER_KINDS: [&str; 2] = ["REFILL", "STEAL"];
const SEARCH_OUTCOMES: [&str; 3] = ["MOVED", "IN_FLIGHT", "SOLD_OUT"];

/// Why the search could not decide: the join answers that the service is unavailable rather
/// than a SOLD_OUT nobody checked.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("MySQL: {0}")]
    Db(#[from] DbErr),
    #[error("Redis: {0}")]
    Gate(#[from] GateError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// The search for units of a dry bucket.
pub struct Tail {
    db: Db,
    gate: Gate,
    loader: GateLoader,
    /// The test seam: a point before a steal's COMMIT.
    hooks: Arc<dyn Hooks>,
    /// Transfers and searches counted.
    metrics: Arc<Metrics>,
    /// After MySQL found a campaign without units, a dry bucket's SOLD_OUT is repeated for
    /// `SOLD_OUT_MEMO_MS` without a search (the flood after a sell-out costs MySQL nothing),
    /// unless units came back here since ([`SoldOutMemo::searched`]).
    sold_out: Arc<SoldOutMemo>,
    /// One search per bucket at a time on this instance: every dry join searching at once
    /// took units from the same fullest sibling, queueing takes on its primary while the units
    /// they moved waited behind them (the simulation in docs/buckets-sim.md showed tails of
    /// seconds; one search per bucket, under a second).
    searches: Mutex<HashMap<Slot, Arc<tokio::sync::Mutex<()>>>>,
}

impl Tail {
    pub fn new(
        (db, gate, loader): (Db, Gate, GateLoader),
        hooks: Arc<dyn Hooks>,
        metrics: Arc<Metrics>,
        sold_out: Arc<SoldOutMemo>,
    ) -> Self {
        // Every series from the start, at 0 (a rate over it is defined at once).
        for kind in TRANSFER_KINDS {
            metrics
                .bucket_transfers
                .get_or_create(&ControlLabels { kind })
                .inc_by(0);
        }
        for reason in SEARCH_OUTCOMES {
            metrics
                .bucket_searches
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        Self {
            db,
            gate,
            loader,
            hooks,
            metrics,
            sold_out,
            searches: Mutex::default(),
        }
    }

    /// Waits for the search of `slot` under way on this instance, if any, and holds the right
    /// to search until the guard drops.
    pub async fn searching(&self, slot: Slot) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut searches = self.searches.lock().unwrap_or_else(|p| p.into_inner());
            searches.entry(slot).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Whether a search found the campaign sold out less than `SOLD_OUT_MEMO_MS` ago, with no
    /// return here since: a return on another instance is refused at most that long after it
    /// reached its gate (docs/design.md §18.1, the sold-out memo's bound).
    pub fn sold_out_lately(&self, campaign_id: i64) -> bool {
        self.sold_out.searched(campaign_id)
    }

    /// Finds `quantity` units for `home`, a bucket of `campaign` whose gate has fewer; a transfer
    /// from a sibling must commit before `commit_by` (the reconciler may give a take back after
    /// `RESERVATION_TIMEOUT_MS`, like a reservation).
    pub async fn find(
        &self,
        campaign: &Arc<Campaign>,
        home: Slot,
        quantity: i64,
        commit_by: Instant,
    ) -> Result<Found, TailError> {
        let found = self.search(campaign, home, quantity, commit_by).await?;
        let outcome = match found {
            Found::Moved => "MOVED",
            Found::InFlight { .. } => "IN_FLIGHT",
            Found::SoldOut => "SOLD_OUT",
        };
        self.metrics
            .bucket_searches
            .get_or_create(&ReasonLabels { reason: outcome })
            .inc();
        Ok(found)
    }

    async fn search(
        &self,
        campaign: &Arc<Campaign>,
        home: Slot,
        quantity: i64,
        commit_by: Instant,
    ) -> Result<Found, TailError> {
        let bucket = home.bucket_or_zero();
        let units =
            policy::refill_units(Deal::of(campaign.total_stock, campaign.buckets), quantity);
        if let Some(moved) = store::refill(&self.db, campaign.id, bucket, units).await? {
            self.counted("REFILL");
            self.give(campaign, moved).await?;
            return Ok(Found::Moved);
        }
        if self.steal(campaign, home, quantity, commit_by).await? {
            return Ok(Found::Moved);
        }
        let read_at = Instant::now();
        let remaining = store::campaign_remaining(&self.db, campaign.id).await?;
        if remaining == 0 {
            self.sold_out.note_searched(campaign.id, read_at);
        }
        Ok(policy::counted(remaining, quantity))
    }

    fn counted(&self, kind: &'static str) {
        self.metrics
            .bucket_transfers
            .get_or_create(&ControlLabels { kind })
            .inc();
    }

    /// Gives a committed transfer's units to the receiving gate and forgets its marker; a gate
    /// not loaded keeps the marker (its rebuild reads the row, which has the units).
    async fn give(&self, campaign: &Campaign, moved: Moved) -> Result<(), TailError> {
        let slot = campaign.slot(moved.bucket);
        let given = self
            .gate
            .give_transfer(slot, moved.transfer_id, moved.units, gate_epoch(campaign))
            .await?;
        if given != Returned::NotLoaded {
            crate::bucket::markers::forget_gate_transfer(&self.db, moved.transfer_id).await?;
        }
        Ok(())
    }

    /// Takes units from the sibling with the most free ones: `true` when some reached `home`, or
    /// when the sibling's units were reserved there meanwhile (the caller looks again); `false`
    /// when no sibling has a unit, or MySQL moved none.
    async fn steal(
        &self,
        campaign: &Arc<Campaign>,
        home: Slot,
        quantity: i64,
        commit_by: Instant,
    ) -> Result<bool, TailError> {
        let Some(from) = self.fullest_sibling(campaign, home).await? else {
            return Ok(false);
        };
        let epoch = gate_epoch(campaign);
        let take_id = Uuid::now_v7();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let units = self
            .gate
            .take(from, epoch, take_id, quantity, now_ms)
            .await?;
        if units <= 0 {
            return Ok(true);
        }
        let buckets = (from.bucket_or_zero(), home.bucket_or_zero());
        let moved = store::steal(
            &self.db,
            campaign.id,
            buckets,
            (units, take_id),
            commit_by,
            self.hooks.as_ref(),
        )
        .await;
        match moved {
            Ok(Steal::Moved(moved)) => {
                self.counted("STEAL");
                self.gate
                    .untake(from, epoch, take_id, Untake::Moved)
                    .await?;
                self.give(campaign, moved).await?;
                Ok(true)
            }
            Ok(Steal::Stale | Steal::Short) => {
                self.gate.untake(from, epoch, take_id, Untake::Back).await?;
                Ok(false)
            }
            // Nothing was written: the units go back at once.
            Err(StealFailed {
                session: None,
                error,
            }) => {
                self.gate.untake(from, epoch, take_id, Untake::Back).await?;
                Err(error.into())
            }
            // The transfer may have committed: settled once MySQL answers again.
            Err(StealFailed {
                session: Some(session),
                error,
            }) => {
                let doubt = StealInDoubt {
                    campaign_id: campaign.id,
                    from,
                    epoch,
                    take_id,
                    session,
                };
                doubt.settle(self.db.clone(), self.gate.clone(), &error);
                Err(error.into())
            }
        }
    }

    /// The sibling whose gate has the most free units (none when no sibling has one). Siblings
    /// whose gate is not loaded are loaded first: their rows may hold units.
    async fn fullest_sibling(
        &self,
        campaign: &Arc<Campaign>,
        home: Slot,
    ) -> Result<Option<Slot>, TailError> {
        let siblings: Vec<Slot> = campaign.slots().filter(|s| *s != home).collect();
        let mut read = self.gate.free_units(&siblings).await;
        let missing: Vec<Slot> = read
            .iter()
            .filter(|(_, free)| free.is_none())
            .map(|(slot, _)| *slot)
            .collect();
        if !missing.is_empty() {
            for slot in &missing {
                self.loader.ensure(campaign, *slot).await?;
            }
            read.extend(self.gate.free_units(&missing).await);
        }
        Ok(policy::fullest(read))
    }
}
