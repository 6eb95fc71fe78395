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
    reserve::{in_flight_wait, Reserve, IN_FLIGHT_FIRST_WAIT},
};
use crate::{
    bucket::{
        store::{self, Moved, Steal},
        Deal,
    },
    campaign::{gate_epoch, Campaign},
    db::Db,
    gate::{
        sold_out::SoldOutMemo, transfer::Untake, AdmissionPass, Decision, Gate, GateError,
        Returned, Slot,
    },
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
        let mut waiting = TailWait::new(self.commit_within, Instant::now());
        let mut owed_asked = false;
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
            match waiting.after(found, Instant::now()) {
                Next::Search => {}
                Next::Sleep(pause) => {
                    if !owed_asked {
                        owed_asked = true;
                        self.gave_owed(campaign, slot, Instant::now()).await;
                    }
                    tokio::time::sleep(pause).await;
                }
                Next::SoldOut => return Ok((again, found == Found::SoldOut)),
                Next::Busy => return Err(JoinError::Busy),
            }
        }
    }
}

/// A dry bucket's join waiting while MySQL has units that no gate can give (reservations in
/// flight hold them, or a transfer on its way to a gate). It waits as long as they keep
/// settling: a SOLD_OUT answered while the campaign's units were still changing hands is one a
/// later arrival could prove false, by winning a unit that came back to a sibling's gate (issue
/// 68: 1,000 units over 64 buckets on two instances answered SOLD_OUT with units left, and later
/// joins won them). Only when MySQL's count stood still for [`in_flight_wait`] (units held by a
/// stalled MySQL or a dead instance's reservations: §18.1's bounds) does the SOLD_OUT stand; and
/// a join still waiting after half its commit window answers SERVICE_BUSY (units exist).
pub(super) struct TailWait {
    started: Instant,
    /// How long MySQL's count may stand still: [`in_flight_wait`].
    stall: Duration,
    /// Half the commit window: past it, SERVICE_BUSY.
    longest: Duration,
    /// MySQL's count at the last search, and since when it has been that.
    remaining: Option<i64>,
    changed_at: Instant,
    pause: Duration,
    moved: u32,
}

/// What a dry bucket's join does after a search.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Ask the gate and search again at once (units reached the home bucket).
    Search,
    /// Units are settling: ask again after this pause.
    Sleep(Duration),
    SoldOut,
    Busy,
}

/// The pause between searches while units settle: 5 ms doubling to this, back to 5 ms each time
/// MySQL's count moves (the tail is short only if its last units are found at once).
const TAIL_LONGEST_PAUSE: Duration = Duration::from_millis(40);

impl TailWait {
    pub(super) fn new(commit_within: Duration, now: Instant) -> Self {
        Self {
            started: now,
            stall: in_flight_wait(commit_within),
            longest: commit_within / 2,
            remaining: None,
            changed_at: now,
            pause: IN_FLIGHT_FIRST_WAIT,
            moved: 0,
        }
    }

    /// The next step after a search that `found` this, at `now`.
    pub(super) fn after(&mut self, found: Found, now: Instant) -> Next {
        let remaining = match found {
            Found::SoldOut => return Next::SoldOut,
            Found::Moved if self.moved >= MOVED_ROUNDS => return Next::Busy,
            Found::Moved => {
                self.moved += 1;
                self.changed_at = now;
                return Next::Search;
            }
            Found::InFlight { remaining } => remaining,
        };
        if self.remaining != Some(remaining) {
            self.remaining = Some(remaining);
            self.changed_at = now;
            self.pause = IN_FLIGHT_FIRST_WAIT;
        }
        let still = now.saturating_duration_since(self.changed_at);
        if still >= self.stall {
            return Next::SoldOut;
        }
        if now.saturating_duration_since(self.started) >= self.longest {
            return Next::Busy;
        }
        let pause = self.pause.min(self.stall - still);
        self.pause = (self.pause * 2).min(TAIL_LONGEST_PAUSE);
        Next::Sleep(pause)
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
    /// No gate has a free unit, but MySQL has `remaining` units (pool and rows): reservations
    /// in flight hold them (they commit, or come back), or a transfer is on its way to a gate.
    /// Ask again shortly.
    InFlight { remaining: i64 },
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
                Found::InFlight { remaining }
            });
        }
        self.sold_out.note_searched(campaign.id, read_at);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_dry_join_waits_while_the_count_moves_and_refuses_once_it_stands_still() {
        // Production defaults: a 15 s reservation, so an 11.25 s commit window.
        let commit_within = Duration::from_millis(11_250);
        let t0 = Instant::now();
        let mut waiting = TailWait::new(commit_within, t0);
        let in_flight = |remaining| Found::InFlight { remaining };
        assert_eq!(waiting.after(in_flight(5), t0), Next::Sleep(5 * MS));
        assert_eq!(
            waiting.after(in_flight(5), t0 + 5 * MS),
            Next::Sleep(10 * MS)
        );
        // The count moves for three seconds: the join waits on, 5 ms after each move.
        let mut now = t0;
        for (i, remaining) in (1..=4).rev().enumerate() {
            now = t0 + Duration::from_millis(900) * (i as u32 + 1);
            assert_eq!(
                waiting.after(in_flight(remaining), now),
                Next::Sleep(5 * MS)
            );
        }
        // Then it stands still: SOLD_OUT a second after it last moved, not before.
        assert_eq!(waiting.after(in_flight(1), now + 999 * MS), Next::Sleep(MS));
        assert_eq!(waiting.after(in_flight(1), now + 1_000 * MS), Next::SoldOut);
    }

    #[test]
    fn pauses_double_up_to_their_longest_and_a_long_wait_answers_busy() {
        let t0 = Instant::now();
        let mut waiting = TailWait::new(Duration::from_millis(11_250), t0);
        let pauses: Vec<Next> = (0..6)
            .map(|_| waiting.after(Found::InFlight { remaining: 3 }, t0))
            .collect();
        let ms = |n| Next::Sleep(n * MS);
        assert_eq!(pauses, vec![ms(5), ms(10), ms(20), ms(40), ms(40), ms(40)]);
        // Moving for half the commit window (5.625 s): units exist, so not SOLD_OUT.
        for step in 1..=11u32 {
            let now = t0 + Duration::from_millis(500) * step;
            assert!(matches!(
                waiting.after(
                    Found::InFlight {
                        remaining: i64::from(step) + 3
                    },
                    now
                ),
                Next::Sleep(_)
            ));
        }
        let late = t0 + Duration::from_millis(5_625);
        assert_eq!(
            waiting.after(Found::InFlight { remaining: 20 }, late),
            Next::Busy
        );
        assert_eq!(waiting.after(Found::SoldOut, late), Next::SoldOut);
    }

    #[test]
    fn units_taken_by_the_buckets_other_joins_64_times_answer_busy() {
        let t0 = Instant::now();
        let mut waiting = TailWait::new(Duration::from_millis(11_250), t0);
        for _ in 0..MOVED_ROUNDS {
            assert_eq!(waiting.after(Found::Moved, t0), Next::Search);
        }
        assert_eq!(waiting.after(Found::Moved, t0), Next::Busy);
    }
}
