//! Rebuilding a campaign's gate state in Redis (docs/design.md §2.1): `lua/prepare.lua` clears
//! what an earlier campaign with the same id left and registers the rebuild's token, the past
//! winners go into the winners set a page at a time, and `lua/load.lua` writes the campaign hash
//! last, only if it is absent and the token is still there (a flush during the rebuild takes it).
//! The steps' order and the MySQL side are `upkeep::loader`'s.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::gate::{
    scripts::{Committed, Gate, GateError},
    Slot,
};

static PREPARE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/prepare.lua")));
static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/load.lua")));
static REJOIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/rejoin.lua")));

/// How long a rebuild's token stays registered: a rebuild that died (its instance killed) leaves
/// it behind; one that takes longer than this starts again.
const REBUILD_TOKEN_TTL: Duration = Duration::from_secs(300);

/// One rebuild of a campaign's gate state: registered by [`Gate::prepare`], checked by
/// [`Gate::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildToken(String);

impl RebuildToken {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }
}

impl Default for RebuildToken {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Gate::prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The campaign's state is loaded: nothing to do.
    Loaded,
    /// The state must be loaded; this rebuild's token is registered.
    Load,
    /// The state must be loaded, and another rebuild (another token) is under way: better wait
    /// for it than raise the row's gate generation under the gate it is about to load.
    Underway,
}

/// What [`Gate::load`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// This call wrote the campaign's state.
    Written,
    /// The state was there already (another rebuild, another instance).
    AlreadyThere,
    /// The rebuild's token was gone: the keys were flushed (or Redis restarted) during the
    /// rebuild, so the winners set lacks the past winners added before. Nothing was written.
    Interrupted,
}

/// The gate state of one campaign, rebuilt from MySQL (its winners go in first, by
/// [`Gate::add_winners`]).
#[derive(Debug, Clone)]
pub struct Seed {
    /// The campaign's one state, or one bucket's (docs/design.md §21).
    pub slot: Slot,
    /// The campaign's creation time in microseconds: tells its keys from those of an earlier
    /// campaign with the same id (see `lua/reserve.lua`).
    pub epoch: i64,
    pub remaining_stock: i64,
    pub starts_at_ms: i64,
    /// 0 when the campaign has no end.
    pub ends_at_ms: i64,
    /// When the keys expire (a day after the end), 0 for never.
    pub expire_at_ms: i64,
    pub per_user_limit: i32,
    pub max_sequence: i64,
    /// The campaign's cancelled and expired wins, read in the same snapshot as the stock.
    pub returned: Vec<i64>,
    /// Open, paused or closed (docs/design.md §15), in the same snapshot.
    pub state: GateState,
    /// The campaign's `control_seq` in the same snapshot: the controls the stock includes.
    pub control_seq: i64,
    /// The row's gate generation in the same snapshot, after this rebuild raised it: the
    /// loaded gate's reservations carry it (docs/design.md §2.1).
    pub gate_gen: i64,
}

/// Whether the gate lets joins through (docs/design.md §15). A window that has not opened or has
/// ended is checked apart, against the request's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Open,
    Paused,
    Closed,
}

impl GateState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }
}

impl Gate {
    /// `<prefix>{c:<id>}:building`: the tokens of rebuilds under way (`lua/prepare.lua`; same
    /// hash tag).
    pub(super) fn building_key(&self, slot: Slot) -> String {
        self.campaign_key_base(slot) + "building"
    }

    /// First step of a rebuild: [`Prepared::Loaded`] when the campaign's state is already there;
    /// otherwise whatever an earlier campaign with this id left is gone, `token` is registered as
    /// a rebuild under way, and the caller loads (or first waits for another rebuild under way).
    pub async fn prepare(
        &self,
        slot: Slot,
        epoch: i64,
        token: &RebuildToken,
    ) -> Result<Prepared, GateError> {
        let [meta, users, pending] = self.keys(slot);
        let mut inv = PREPARE.key(meta);
        inv.key(users)
            .key(pending)
            .key(self.returned_key(slot))
            .key(self.controls_key(slot))
            .key(self.building_key(slot));
        for key in self
            .room_keys(slot)
            .into_iter()
            .chain(self.waitlist_keys(slot))
        {
            inv.key(key);
        }
        if let Some(held) = self.held_key(slot) {
            inv.key(held);
        }
        inv.arg(epoch)
            .arg(&token.0)
            .arg(REBUILD_TOKEN_TTL.as_millis() as u64);
        let found: i64 = self.run(inv).await?;
        Ok(match found {
            1 => Prepared::Loaded,
            2 => Prepared::Underway,
            _ => Prepared::Load,
        })
    }

    /// Adds past winners to the winners set (one bounded chunk per call); in a campaign of a
    /// group, their units to the units held too.
    pub async fn add_winners(&self, slot: Slot, wins: &[Committed]) -> Result<(), GateError> {
        if wins.is_empty() {
            return Ok(());
        }
        let [_, key, _] = self.keys(slot);
        let mut sadd = redis::cmd("SADD");
        sadd.arg(key);
        for win in wins {
            sadd.arg(win.user_id);
        }
        let _: i64 = self.query(sadd).await?;
        if let Some(held) = self.held_key(slot) {
            let mut hset = redis::cmd("HSET");
            hset.arg(held);
            for win in wins {
                hset.arg(win.user_id).arg(win.quantity);
            }
            let _: i64 = self.query(hset).await?;
        }
        Ok(())
    }

    /// Committed winners whose reservation the gate no longer had back in its winners set,
    /// when it is loaded or being rebuilt (`lua/rejoin.lua`).
    pub(super) async fn rejoin(&self, slot: Slot, wins: &[Committed]) -> Result<(), GateError> {
        let [meta, winners, _] = self.keys(slot);
        let mut inv = REJOIN.key(meta);
        inv.key(winners).key(self.building_key(slot));
        match self.held_key(slot) {
            Some(held) => {
                inv.key(held);
                for win in wins {
                    inv.arg(win.user_id).arg(win.quantity);
                }
            }
            None => {
                for win in wins {
                    inv.arg(win.user_id);
                }
            }
        }
        let added: i64 = self.run(inv).await?;
        if added > 0 {
            tracing::info!(%slot, added,
                "Winners whose wins committed after the gate's rebuild read MySQL are refused again.");
        }
        Ok(())
    }

    /// Last step of a rebuild: writes the campaign hash if it is absent and the rebuild's
    /// `token` is still registered (no flush or restart emptied the winners set meanwhile).
    #[tracing::instrument(level = "debug", skip(self, token), fields(slot = %seed.slot), err(level = "warn"))]
    pub async fn load(&self, seed: &Seed, token: &RebuildToken) -> Result<Loaded, GateError> {
        let [meta, users, _] = self.keys(seed.slot);
        let mut inv = LOAD.key(meta);
        inv.key(users)
            .key(self.returned_key(seed.slot))
            .key(self.controls_key(seed.slot))
            .key(self.building_key(seed.slot));
        if let Some(held) = self.held_key(seed.slot) {
            inv.key(held);
        }
        inv.arg(seed.remaining_stock)
            .arg(seed.starts_at_ms)
            .arg(seed.ends_at_ms)
            .arg(seed.per_user_limit)
            .arg(seed.max_sequence)
            .arg(seed.expire_at_ms)
            .arg(seed.epoch)
            .arg(seed.state.as_str())
            .arg(seed.control_seq)
            .arg(returns_count_start())
            .arg(&token.0)
            .arg(seed.gate_gen)
            .arg(&seed.returned);
        let loaded: i64 = self.run(inv).await?;
        Ok(match loaded {
            1 => Loaded::Written,
            0 => Loaded::AlreadyThere,
            _ => Loaded::Interrupted,
        })
    }
}

/// Where a freshly loaded state's count of applied returns (`rets`) starts: 31 random bits
/// above 2^21, so two loads' counts meet only if one of them passed two million returns and the
/// draws fell that close (a reservation compares the count it saw with the count at its
/// release, `lua/release.lua` "sold_out"; before, every load started at 0, and a reservation
/// made on keys a Redis flush then replaced could find its count again and set the new stock
/// from a MySQL reading older than the new load: units lost to the sale, seen in a proof run
/// with Redis faults).
fn returns_count_start() -> i64 {
    // The low bits of a v7 UUID are random.
    let random = uuid::Uuid::now_v7().as_u128() as u64 & 0x7fff_ffff;
    (random as i64) << 21
}
