//! A bucketed campaign's join whose home bucket ran dry (docs/design.md §21): stock moves, users
//! do not. The bucket takes a chunk from the undealt pool; once the pool is empty, it takes from
//! the fullest sibling (whose gate sets the units aside first, so that none of them can be
//! reserved there while MySQL moves them); and only when no sibling has a unit does it ask MySQL
//! whether the whole campaign has any: pool plus every bucket's row, in one snapshot. None left
//! then is a SOLD_OUT that the committed order justifies at that instant; units left are held by
//! reservations whose commits are in flight (or by a transfer on its way to a gate), and the join
//! waits for them instead of refusing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::DbErr;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::{
    request::{JoinError, JoinRequest},
    reserve::{in_flight_wait, Reserve, IN_FLIGHT_FIRST_WAIT, IN_FLIGHT_LONGEST_WAIT},
};
use crate::{
    bucket::{
        store::{self, Moved, Steal},
        Deal,
    },
    campaign::{gate_epoch, Campaign},
    db::Db,
    gate::{transfer::Untake, AdmissionPass, Decision, Gate, GateError, Returned, Slot},
    telemetry::metrics::{
        registry::{ControlLabels, ReasonLabels},
        Metrics,
    },
    upkeep::loader::{self, GateLoader, LoadError},
};

/// Searches that moved units to the home bucket and still found it dry (its other joins took
/// them) before the join answers SERVICE_BUSY: units exist, so SOLD_OUT would be false.
const MOVED_ROUNDS: u32 = 64;

impl Reserve {
    /// [`Reserve::reserve`] in a bucketed campaign's home bucket: a SOLD_OUT there sends the join
    /// looking for units in the pool and the siblings ([`Tail::find`]), one search per bucket at
    /// a time on an instance (the bucket's other dry joins wait for it, then ask their gate
    /// again), and stands only when MySQL had too few units in the whole campaign at one
    /// instant, or when the units MySQL has stay held by reservations in flight past the wait
    /// for them (as an unbucketed SOLD_OUT does). A CAMPAIGN_PAUSED first gives the bucket's gate
    /// what MySQL owes it, as there. Says whether a SOLD_OUT was confirmed by MySQL.
    pub(super) async fn reserve_in_bucket(
        &self,
        campaign: &Arc<Campaign>,
        req: &JoinRequest,
        pass: Option<&AdmissionPass>,
        now: DateTime<Utc>,
    ) -> Result<(Decision, bool), JoinError> {
        let slot = req.entry.slot();
        let started = Instant::now();
        let bound = in_flight_wait(self.commit_within);
        let (mut wait, mut owed_asked, mut moved) = (IN_FLIGHT_FIRST_WAIT, false, 0);
        loop {
            let decision = self.reserve_once(campaign, req, pass, now).await?;
            match decision {
                Decision::SoldOut { .. } if self.tail.sold_out_lately(campaign.id) => {
                    return Ok((decision, false))
                }
                Decision::SoldOut { .. } => {}
                Decision::Paused if !owed_asked => {
                    owed_asked = true;
                    if self.gave_owed(campaign, slot, Instant::now()).await == loader::Owed::Skipped
                    {
                        return Ok((decision, false));
                    }
                    continue;
                }
                _ => return Ok((decision, false)),
            }
            let searching = self.tail.searching(slot).await;
            // The search this one waited for may have brought units: the gate first; or it
            // found the campaign sold out: the memo answers.
            let again = self.reserve_once(campaign, req, pass, now).await?;
            let sold_out = matches!(again, Decision::SoldOut { .. });
            if !sold_out || self.tail.sold_out_lately(campaign.id) {
                return Ok((again, false));
            }
            let quantity = i64::from(req.entry.quantity);
            let commit_by = Instant::now() + self.commit_within;
            let found = self.tail.find(campaign, slot, quantity, commit_by).await;
            drop(searching);
            let found = found.map_err(|e| {
                tracing::warn!(error = %e, campaign_id = campaign.id, %slot,
                    "Could not look for units for a dry bucket; the join answers unavailable.");
                JoinError::Unavailable {
                    what: "the campaign's buckets",
                    source: e.into(),
                }
            })?;
            match found {
                Found::Moved if moved < MOVED_ROUNDS => moved += 1,
                Found::Moved => return Err(JoinError::Busy),
                Found::InFlight if started.elapsed() < bound => {
                    if !owed_asked {
                        owed_asked = true;
                        self.gave_owed(campaign, slot, Instant::now()).await;
                    }
                    tokio::time::sleep(wait.min(bound.saturating_sub(started.elapsed()))).await;
                    wait = (wait * 2).min(IN_FLIGHT_LONGEST_WAIT);
                }
                Found::SoldOut => return Ok((again, true)),
                Found::InFlight => return Ok((again, false)),
            }
        }
    }
}

/// `firstcome_bucket_transfers_total{kind}`'s kinds and `firstcome_bucket_searches_total`'s
/// outcomes.
const TRANSFER_KINDS: [&str; 2] = ["REFILL", "STEAL"];
const SEARCH_OUTCOMES: [&str; 3] = ["MOVED", "IN_FLIGHT", "SOLD_OUT"];

/// What the dry bucket's search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Units reached the home bucket's gate: the join asks it again.
    Moved,
    /// MySQL had fewer than the join's quantity in the whole campaign at one instant: SOLD_OUT.
    SoldOut,
    /// No gate has a free unit, but MySQL has units: reservations in flight hold them (they
    /// commit, or come back), or a transfer is on its way to a gate. Ask again shortly.
    InFlight,
}

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
    /// Transfers and searches counted.
    metrics: Arc<Metrics>,
    /// `SOLD_OUT_MEMO_MS`: after MySQL found a campaign without units, a dry bucket's SOLD_OUT
    /// is repeated this long without a search (the flood after a sell-out costs MySQL nothing).
    memo: Duration,
    /// When each campaign's latest search that found it sold out began.
    sold_out_at: Mutex<HashMap<i64, Instant>>,
    /// One search per bucket at a time on this instance: every dry join searching at once
    /// took units from the same fullest sibling, queueing takes on its primary while the units
    /// they moved waited behind them (the simulation in docs/buckets-sim.md showed tails of
    /// seconds; one search per bucket, under a second).
    searches: Mutex<HashMap<Slot, Arc<tokio::sync::Mutex<()>>>>,
}

impl Tail {
    pub fn new(
        (db, gate, loader): (Db, Gate, GateLoader),
        metrics: Arc<Metrics>,
        memo: Duration,
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
            metrics,
            memo,
            sold_out_at: Mutex::default(),
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

    /// Whether a search found the campaign sold out less than `SOLD_OUT_MEMO_MS` ago: a return
    /// or an addition committed since then is refused at most that long after its commit
    /// (docs/design.md §18.1, the sold-out memo's bound).
    pub fn sold_out_lately(&self, campaign_id: i64) -> bool {
        let memo = self.sold_out_at.lock().unwrap_or_else(|p| p.into_inner());
        memo.get(&campaign_id)
            .is_some_and(|at| at.elapsed() < self.memo)
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
            Found::InFlight => "IN_FLIGHT",
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
        let chunk = Deal::of(campaign.total_stock, campaign.buckets).chunk;
        if let Some(moved) =
            store::refill(&self.db, campaign.id, bucket, chunk.max(quantity)).await?
        {
            self.counted("REFILL");
            self.give(campaign, moved).await?;
            return Ok(Found::Moved);
        }
        if self.steal(campaign, home, quantity, commit_by).await? {
            return Ok(Found::Moved);
        }
        let read_at = Instant::now();
        let remaining = store::campaign_remaining(&self.db, campaign.id).await?;
        if remaining > 0 {
            return Ok(if remaining < quantity {
                Found::SoldOut
            } else {
                Found::InFlight
            });
        }
        let mut memo = self.sold_out_at.lock().unwrap_or_else(|p| p.into_inner());
        memo.retain(|_, at| at.elapsed() < self.memo);
        memo.insert(campaign.id, read_at);
        Ok(Found::SoldOut)
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
        let moved = store::steal(&self.db, campaign.id, buckets, units, take_id, commit_by).await;
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
            // The transfer may have committed: the take stays until the reconciler reads MySQL
            // under the sibling's row lock (`upkeep::reconcile`).
            Err(e) => Err(e.into()),
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
        Ok(read
            .into_iter()
            .filter_map(|(slot, free)| Some((slot, free?)))
            .filter(|&(_, free)| free > 0)
            .max_by_key(|&(slot, free)| (free, std::cmp::Reverse(slot)))
            .map(|(slot, _)| slot))
    }
}
