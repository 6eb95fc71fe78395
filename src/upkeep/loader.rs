//! Rebuilding a campaign's gate state in Redis from MySQL: at creation (prime), and whenever a
//! request finds the keys missing (eviction, a Redis restart or failover, a flush).
//!
//! One rebuild per campaign per instance at a time (single flight): the first request that finds
//! the keys missing starts it in a task of its own, and every request arriving meanwhile waits
//! for that same rebuild instead of starting another. A request that gives up waiting (its
//! `HTTP_REQUEST_TIMEOUT_MS` passes: 503 with Retry-After) does not stop the rebuild. The rebuild
//! reads the winners a page at a time ([`LOAD_CHUNK`]) and adds each page to the winners set
//! before the campaign hash is written, so past winners stay refused from the first reservation
//! on, and memory stays bounded however many winners a campaign has. A rebuild that finds the
//! state already there (another instance, or a rebuild that just finished) reads nothing from
//! MySQL; [`GateLoader::loads`] counts the ones that did. A flush or a Redis restart during a
//! rebuild empties the winners set it was filling; the rebuild's token (registered by
//! `lua/prepare.lua`) goes with it, `lua/load.lua` then writes nothing, and the rebuild starts
//! again (up to `REBUILD_ATTEMPTS` times).
//!
//! A return or a control that commits after the rebuild's snapshot, while the keys are missing,
//! finds no state to apply to, and its marker waits for the marker loops (about a second). The
//! rebuild that loaded the state gives it those markers at once ([`GateLoader::settle_owed`]),
//! before any request waiting for it goes on: otherwise the gate would refuse units MySQL has
//! free meanwhile (the proof run found such SOLD_OUTs after Redis restarts).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::{
    future::{BoxFuture, Shared},
    FutureExt, StreamExt, TryStreamExt,
};
use sea_orm::DbErr;
use tracing::Instrument;

use crate::hooks::Hooks;
use crate::{
    campaign::{repo, Campaign},
    db::Db,
    events::control::ControlKind,
    gate::{
        control::GateControl,
        scripts::{Gate, GateError, GateState, Loaded, Prepared, RebuildToken, Seed},
        Slot,
    },
};

/// A campaign's markers are read for refused joins at most this often per instance.
pub const OWED_READ_EVERY: Duration = Duration::from_millis(50);

/// Slots rebuilt at once by [`GateLoader::ensure_all`]: enough to hide the round trips, few
/// enough to leave most of the pool (`DB_MAX_CONNECTIONS`) to the joins.
const PRIME_IN_FLIGHT: usize = 8;

/// Rebuilds tried in a row when the keys are flushed during each.
const REBUILD_ATTEMPTS: u32 = 3;

/// How long a rebuild waits for another one under way (another instance's, most often the
/// creation's priming racing the first joins) to load the state before it goes on itself: its own
/// would raise the row's gate generation and refuse the wins of the gate the other one loads
/// (docs/design.md §2.1). A rebuild that died leaves its token behind; this bounds the wait then.
const OTHER_REBUILD_WAIT: Duration = Duration::from_secs(5);

/// How often a waiting rebuild asks whether the other one has loaded the state.
const OTHER_REBUILD_POLL: Duration = Duration::from_millis(5);

/// Winners read from MySQL and added to Redis per step of a rebuild.
pub const LOAD_CHUNK: u32 = 5_000;

/// How long a campaign's keys outlive its end.
const KEEP_AFTER_END: Duration = Duration::from_secs(24 * 3600);

/// Why a rebuild failed. Cloned to every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("MySQL failed during the gate rebuild")]
    Db(#[source] Arc<DbErr>),
    #[error("Redis failed during the gate rebuild")]
    Gate(#[source] Arc<GateError>),
    #[error("campaign {0} is gone from MySQL")]
    CampaignGone(i64),
    #[error("the gate rebuild task failed: {0}")]
    Task(String),
    #[error("the campaign's keys were flushed during each of {0} gate rebuilds")]
    Interrupted(u32),
}

impl From<DbErr> for LoadError {
    fn from(e: DbErr) -> Self {
        Self::Db(Arc::new(e))
    }
}

impl From<GateError> for LoadError {
    fn from(e: GateError) -> Self {
        Self::Gate(Arc::new(e))
    }
}

type Rebuild = Shared<BoxFuture<'static, Result<(), LoadError>>>;

/// A marker read: resolves with the instant it began (before its SELECT).
type OwedReadTask = Shared<BoxFuture<'static, Result<std::time::Instant, LoadError>>>;

/// A campaign's latest read of its markers for refused joins ([`GateLoader::give_owed`]).
#[derive(Clone)]
enum OwedRead {
    /// Under way: a join refused meanwhile waits for it and takes its answer.
    Running(OwedReadTask),
    /// Done at this instant.
    Done(std::time::Instant),
}

/// What a join the gate refused learned from the campaign's markers ([`GateLoader::give_owed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owed {
    /// No read ran for it (one ran just before, or it failed): it answers as the gate did, and
    /// that answer confirms nothing.
    Skipped,
    /// A read ran to its end: the join asks the gate again. `fresh` when the read's SELECT began
    /// after the gate's refusal: every return MySQL committed before that refusal is then in the
    /// gate, so a second SOLD_OUT is one the sold-out memo may repeat.
    Read { fresh: bool },
}

/// Cheap to clone; one per instance.
#[derive(Clone)]
pub struct GateLoader {
    db: Db,
    gate: Gate,
    /// The rebuild running for each slot (a campaign, or one of its buckets); an entry is
    /// removed by its own task when done.
    running: Arc<Mutex<HashMap<Slot, Rebuild>>>,
    loads: Arc<AtomicU64>,
    /// Each campaign's latest marker read for refused joins ([`Self::give_owed`]).
    owed_read: Arc<Mutex<HashMap<Slot, OwedRead>>>,
    /// The test seam (`crate::hooks`): where a test holds a rebuild or an owed read.
    hooks: Arc<dyn Hooks>,
}

impl GateLoader {
    pub fn new(db: Db, gate: Gate, hooks: Arc<dyn Hooks>) -> Self {
        Self {
            db,
            gate,
            running: Arc::default(),
            loads: Arc::default(),
            owed_read: Arc::default(),
            hooks,
        }
    }

    /// Rebuilds that read MySQL (not the ones that found the state already loaded).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Makes sure a slot's gate state (the campaign's, or one bucket's) is in Redis: joins the
    /// rebuild under way or starts one, and waits for it.
    pub async fn ensure(&self, campaign: &Arc<Campaign>, slot: Slot) -> Result<(), LoadError> {
        let rebuild = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running
                .entry(slot)
                .or_insert_with(|| self.start(campaign.clone(), slot))
                .clone()
        };
        rebuild.await
    }

    /// [`Self::ensure`] for every slot of the campaign, [`PRIME_IN_FLIGHT`] at a time: each
    /// bucket's rebuild is a few round trips to MySQL and Redis, which a 1,024-bucket campaign's
    /// creation would otherwise wait for one after another (seconds, docs/design.md §21).
    pub async fn ensure_all(&self, campaign: &Arc<Campaign>) -> Result<(), LoadError> {
        futures::stream::iter(campaign.slots())
            .map(|slot| self.ensure(campaign, slot))
            .buffer_unordered(PRIME_IN_FLIGHT)
            .try_collect()
            .await
    }

    fn start(&self, campaign: Arc<Campaign>, slot: Slot) -> Rebuild {
        let this = self.clone();
        let span = tracing::info_span!("gate_rebuild", campaign_id = campaign.id, %slot);
        let task = tokio::spawn(
            async move {
                let result = this.rebuild(&campaign, slot).await;
                this.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&slot);
                result
            }
            .instrument(span),
        );
        async move {
            task.await
                .unwrap_or_else(|e| Err(LoadError::Task(e.to_string())))
        }
        .boxed()
        .shared()
    }

    /// Rebuilds until the state is loaded: a rebuild during which the keys were flushed (or
    /// Redis restarted) filled a winners set that is gone, and starts again.
    async fn rebuild(&self, campaign: &Campaign, slot: Slot) -> Result<(), LoadError> {
        for attempt in 1..=REBUILD_ATTEMPTS {
            match self.rebuild_once(campaign, slot).await? {
                Loaded::Written | Loaded::AlreadyThere => return Ok(()),
                Loaded::Interrupted => tracing::warn!(
                    campaign_id = campaign.id,
                    attempt,
                    "The campaign's keys were flushed during its gate rebuild; rebuilding again."
                ),
            }
        }
        Err(LoadError::Interrupted(REBUILD_ATTEMPTS))
    }

    async fn rebuild_once(&self, campaign: &Campaign, slot: Slot) -> Result<Loaded, LoadError> {
        let epoch = crate::campaign::gate_epoch(campaign);
        let token = RebuildToken::new();
        if self.prepared_elsewhere(slot, epoch, &token).await? {
            return Ok(Loaded::AlreadyThere);
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        // The gate Redis lost may have reservations in flight: from here on none of them
        // commits (their generation is no longer the row's), and those that committed before
        // are in the reads below; the loaded gate's sequences start above all of them.
        repo::raise_gate_gen(&self.db, slot).await?;
        // The winners first, then the snapshot, right before the load: a return or a control
        // that commits while the winners are added (a second for 40,000 of them) is then in the
        // snapshot, instead of reaching the loaded state only when `settle_owed` runs (joins
        // meanwhile were refused CAMPAIGN_PAUSED after a resume: seed 107). A win committed
        // between the winners' read and the snapshot is in the stock and not yet in the set: its
        // user's next join passes the gate and is stopped by MySQL's UNIQUE (see lua/load.lua).
        let winners = self.add_winners(slot).await?;
        // The stock and the wins whose units it holds back already, in one snapshot: a unit
        // returned in between is in both or in neither (see lua/load.lua, lua/return.lua). Two
        // statements of a READ COMMITTED transaction read two snapshots: a return committed
        // between them was in the returned set and not in the stock, and `lua/return.lua` then
        // never gave its units to the gate (the proof run's drift repairs).
        let txn = self.db.begin_snapshot().await?;
        let seed = repo::gate_seed(&txn, slot)
            .await?
            .ok_or(LoadError::CampaignGone(campaign.id))?;
        self.hooks.in_rebuild_snapshot().await;
        let returned = repo::returned_ids(&txn, slot).await?;
        txn.commit().await?;
        self.hooks.before_rebuild_load().await;
        let loaded = self
            .gate
            .load(&seed_of(campaign, slot, &seed, returned), &token)
            .await?;
        if loaded == Loaded::Written {
            tracing::info!(
                campaign_id = campaign.id,
                %slot,
                remaining_stock = seed.remaining_stock,
                winners,
                "Loaded the campaign's gate state into Redis."
            );
            self.settle_owed(campaign, slot).await;
        }
        Ok(loaded)
    }

    /// Registers this rebuild (`lua/prepare.lua`); `true` when the state is loaded, by now or
    /// by another rebuild under way within [`OTHER_REBUILD_WAIT`].
    async fn prepared_elsewhere(
        &self,
        slot: Slot,
        epoch: i64,
        token: &RebuildToken,
    ) -> Result<bool, LoadError> {
        let waiting_until = tokio::time::Instant::now() + OTHER_REBUILD_WAIT;
        loop {
            match self.gate.prepare(slot, epoch, token).await? {
                Prepared::Loaded => return Ok(true),
                Prepared::Load => return Ok(false),
                Prepared::Underway if tokio::time::Instant::now() >= waiting_until => {
                    tracing::warn!(%slot, waited = ?OTHER_REBUILD_WAIT,
                        "Another rebuild of this gate did not load it in time; rebuilding it here.");
                    return Ok(false);
                }
                Prepared::Underway => tokio::time::sleep(OTHER_REBUILD_POLL).await,
            }
        }
    }

    /// Adds every participation's user to the winners set, a page at a time; how many.
    async fn add_winners(&self, slot: Slot) -> Result<usize, LoadError> {
        let mut after_id = 0;
        let mut winners = 0_usize;
        loop {
            let page = repo::winners_page(&self.db, slot, after_id, LOAD_CHUNK).await?;
            let Some(&(last_id, _)) = page.last() else {
                return Ok(winners);
            };
            let wins: Vec<_> = page.iter().map(|&(_, win)| win).collect();
            self.gate.add_winners(slot, &wins).await?;
            winners += wins.len();
            after_id = last_id;
            if page.len() < LOAD_CHUNK as usize {
                return Ok(winners);
            }
        }
    }

    /// Gives the state just loaded the returns and controls MySQL has markers for: those that
    /// committed after the snapshot found no state to apply to. `lua/return.lua` and
    /// `lua/control.lua` apply each once, so the ones the snapshot or their own call already
    /// counted change nothing; the markers stay for the marker loops to delete. Best effort: on
    /// a failure the loops apply them within about a second, as they would have anyway.
    async fn settle_owed(&self, campaign: &Campaign, slot: Slot) {
        if let Err(e) = self.apply_owed(campaign, slot).await {
            tracing::warn!(error = %e, campaign_id = campaign.id,
                "Could not give the rebuilt gate what MySQL owes it; the marker loops will.");
        }
    }

    /// For a join the gate refused (SOLD_OUT with nothing in flight, or paused): gives the gate
    /// every return and control MySQL has a marker for, and says whether the join should ask
    /// the gate again: `true` once such a read ran to its end for it, whatever it applied (the
    /// marker loops, or a control's own call, may have applied and deleted the markers while the
    /// join waited), `false` when none ran (one did just before). Units an expiry, a cancel or a
    /// stock addition gave back, and a resume, reach the gate by a call after their commit (and,
    /// when Redis failed, by the marker loops a quarter second after it answers again); MySQL's
    /// committed order has them meanwhile. One read per campaign at a time on an instance: a
    /// join refused while one is under way waits for it (before, it answered as the gate did,
    /// and a resume that read was applying was refused CAMPAIGN_PAUSED: seed 107). After a read,
    /// none for [`OWED_READ_EVERY`], so a flood of refusals (a paused campaign, a sold-out one
    /// without the memo) costs MySQL little; a join refused then answers as the gate did.
    ///
    /// `refused_at` is when the gate's refusal came back; the answer says whether the read that
    /// ran began after it ([`Owed`]). Only such a read lets a SOLD_OUT feed the sold-out memo: a
    /// join refused between an expiry's commit and its gate call, answered by the read of 50 ms
    /// before, was remembered, and the memo refused the units the expiry brought back for its
    /// whole window (a 30-minute proof run, seed 113: two joins refused with 2–7 units free).
    pub async fn give_owed(
        &self,
        campaign: &Campaign,
        slot: Slot,
        refused_at: std::time::Instant,
    ) -> Result<Owed, LoadError> {
        let read = {
            let mut reads = self.owed_read.lock().unwrap_or_else(|p| p.into_inner());
            match reads.get(&slot) {
                Some(OwedRead::Running(read)) => read.clone(),
                Some(OwedRead::Done(at)) if at.elapsed() < OWED_READ_EVERY => {
                    return Ok(Owed::Skipped)
                }
                _ => {
                    let read = self.start_owed_read(campaign.clone(), slot);
                    reads.insert(slot, OwedRead::Running(read.clone()));
                    read
                }
            }
        };
        let began = read.await?;
        Ok(Owed::Read {
            fresh: began >= refused_at,
        })
    }

    /// Reads and applies the campaign's markers in a task of its own (a join that gives up
    /// waiting does not stop it), then notes when it finished.
    fn start_owed_read(&self, campaign: Campaign, slot: Slot) -> OwedReadTask {
        let this = self.clone();
        let task = tokio::spawn(async move {
            // Taken before anything else: a refusal after it is never counted as covered.
            let began = std::time::Instant::now();
            this.hooks.before_owed_read().await;
            let applied = this.apply_owed(&campaign, slot).await;
            this.owed_read
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(slot, OwedRead::Done(std::time::Instant::now()));
            applied.map(|()| began)
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(LoadError::Task(e.to_string())))
        }
        .boxed()
        .shared()
    }

    /// Applies every marker of the campaign (each script applies its marker once, so one that
    /// another caller applied already changes nothing).
    async fn apply_owed(&self, campaign: &Campaign, slot: Slot) -> Result<(), LoadError> {
        let epoch = crate::campaign::gate_epoch(campaign);
        let owed = repo::owed_to_gate(&self.db, slot).await?;
        for (given_id, units) in owed.returns {
            self.gate.return_units(slot, given_id, units, epoch).await?;
        }
        for (seq, kind, delta) in owed.controls {
            if let Some(kind) = ControlKind::parse(&kind) {
                let control = GateControl::for_slot(slot, kind, delta);
                self.gate.apply_control(slot, seq, control, epoch).await?;
            }
        }
        Ok(())
    }
}

fn seed_of(campaign: &Campaign, slot: Slot, read: &repo::GateSeed, returned: Vec<i64>) -> Seed {
    let state = match (read.closed_at.is_some(), read.paused) {
        (true, _) => GateState::Closed,
        (false, true) => GateState::Paused,
        (false, false) => GateState::Open,
    };
    Seed {
        slot,
        epoch: crate::campaign::gate_epoch(campaign),
        remaining_stock: read.remaining_stock,
        starts_at_ms: campaign.starts_at.timestamp_millis(),
        ends_at_ms: campaign.ends_at.map_or(0, |t| t.timestamp_millis()),
        expire_at_ms: keys_expire_ms(campaign),
        per_user_limit: campaign.per_user_limit,
        max_sequence: read.max_sequence,
        returned,
        state,
        control_seq: read.control_seq,
        gate_gen: read.gate_gen,
    }
}

/// When a campaign's gate keys expire, ms since the Unix epoch: [`KEEP_AFTER_END`] after its
/// end (0: kept, a campaign without an end).
pub fn keys_expire_ms(campaign: &Campaign) -> i64 {
    // A campaign of a group is read by its siblings' joins for as long as any of them sells
    // (docs/design.md §22): keys expired a day after its own end would be loaded again, already
    // past their expiry, by every sibling's join. They are kept.
    if campaign.group_id.is_some() {
        return 0;
    }
    campaign.ends_at.map_or(0, |t| {
        t.timestamp_millis()
            .saturating_add(KEEP_AFTER_END.as_millis() as i64)
    })
}
