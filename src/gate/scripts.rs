//! Typed wrapper around the Lua gate in `lua/` (docs/design.md §6 step 2).
//!
//! Each script is loaded once (`include_str!` + `redis::Script`) and called with EVALSHA
//! (`invoke_async` falls back to EVAL after a Redis restart drops the script cache). All keys of a
//! campaign share the hash tag `{c:<id>}`, so the scripts are Redis Cluster safe.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

pub use crate::gate::rebuild::{GateState, Loaded, Prepared, RebuildToken, Seed};
use crate::{
    config::RedisSettings,
    gate::{
        connection::{RedisConn, RedisSetupError},
        entry::{AdmissionPass, Entry},
        group::GroupCheck,
        slot::Slot,
    },
};

static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("../../lua/entry.lua"),
        include_str!("../../lua/reserve.lua")
    ))
});
/// The campaign's keys a reservation and its release take, by suffix: meta, users, pending,
/// then the waiting room's tickets and admissions.
const RESERVATION_KEYS: [&str; 5] = ["meta", "users", "pending", "qt", "qadm"];
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/release.lua")));
static RETURN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/return.lua")));

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("redis call failed")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis script answered {0:?}, which this version does not understand")]
    Protocol(String),
    /// The call of a batch of reservations failed (`gate::batch`): each join gets its text.
    #[error("redis call failed (a batch of reservations): {0}")]
    Batch(String),
}

/// What the gate decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Reserved: stock decremented, user recorded, FCFS `sequence` handed out. `returns_seen`:
    /// the campaign's count of returns applied then, for [`Release::SoldOut`]; `gate_gen`: the
    /// generation of the gate that made it (`lua/load.lua`), which the win's row must still
    /// have when it commits.
    Reserved {
        sequence: i64,
        returns_seen: i64,
        gate_gen: i64,
    },
    /// The campaign's keys are not in Redis: load them and ask again.
    Missing,
    /// The keys of the group's sibling number `n` (from 0, in the order given) are not in
    /// Redis: load them and ask again (docs/design.md §22).
    SiblingMissing(usize),
    /// The user holds `held` units across the group's other campaigns, and the quantity asked
    /// would pass the group's limit.
    GroupLimit {
        held: i64,
    },
    NotOpen,
    Ended,
    /// Paused by an admin (docs/design.md §15).
    Paused,
    OverLimit,
    AlreadyParticipated,
    /// The admission token's ticket is not this user's, or not the admission it was signed for.
    TokenInvalid,
    /// The admission was used by a win already.
    TokenUsed,
    /// The admission expired, or the waiting room forgot it.
    TokenExpired,
    /// Fewer than the quantity left; `remaining` is what is left, `winners` the size of the
    /// winners set (reservations included), `in_flight` the open reservations (their
    /// transactions have not settled: they may commit, or give their units back), and
    /// `latest_reserved_ms_ago` how long ago the campaign's latest reservation was made.
    SoldOut {
        remaining: i64,
        winners: i64,
        in_flight: i64,
        latest_reserved_ms_ago: i64,
    },
}

/// A reservation whose transaction has not settled (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReservation {
    pub user_id: i64,
    pub reserved_at_ms: i64,
    pub quantity: i32,
    /// The stored value, which [`Gate::release`] must name.
    pub raw: String,
}

/// How to undo a reservation whose transaction did not commit (see `lua/release.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Nothing was written: give the stock back and forget the user.
    Undo,
    /// MySQL already holds this user's win: give the stock back, keep the user recorded.
    KeepUser,
    /// MySQL's guard refused: forget the user and take MySQL's remaining stock, read with the
    /// campaign's `control_seq` (the controls that stock includes; see `lua/release.lua`),
    /// unless a return reached the gate since the reservation (`returns_seen`, from
    /// [`Decision::Reserved`]): then only the units go back.
    SoldOut {
        remaining_stock: i64,
        control_seq: i64,
        returns_seen: i64,
    },
    /// A reservation left open by a crashed instance (MySQL has no win), or one a failed call
    /// may have made: undone like [`Release::Undo`], its admission not made live again.
    Expire,
    /// MySQL refused the win because its row's gate generation is no longer the reservation's
    /// (the gate that made it was lost and rebuilt, docs/design.md §2.1): undone like
    /// [`Release::Undo`] if the gate still has it, and the live gate's generation raised to
    /// `row_gen` (a rebuild that raised the row's and died before loading would otherwise leave
    /// every win of the live gate refused).
    GateLost { row_gen: i64 },
}

/// The value `lua/reserve.lua` stores for a reservation (`<reserved at ms>:<quantity>`). Every
/// [`Gate::release`] names the reservation it gives back by it: it acts only while that very
/// reservation is open, so whoever gives it back second (the reconciler and a late request, a
/// request after a rebuild that never had it) gives back nothing.
pub fn reservation_value(reserved_at_ms: i64, quantity: i32) -> String {
    format!("{reserved_at_ms}:{quantity}")
}

/// A committed win whose reservation [`Gate::settle`] closes: its user and units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub user_id: i64,
    pub quantity: i32,
}

impl From<&Entry> for Committed {
    fn from(entry: &Entry) -> Self {
        Self {
            user_id: entry.user_id,
            quantity: entry.quantity,
        }
    }
}

/// A script's answer's first value, its status (`OK`, `SOLD_OUT`, …).
pub(super) fn reply_status(reply: &[redis::Value]) -> Result<String, GateError> {
    match reply.first() {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(GateError::Protocol(format!("{other:?}"))),
    }
}

/// A script's answer's value at `i` as a number, 0 when absent.
pub(super) fn reply_int(reply: &[redis::Value], i: usize) -> i64 {
    match reply.get(i) {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

/// A join's decision from `lua/reserve.lua`'s answer (or its answer in a batch's).
pub(super) fn decision(reply: &[redis::Value]) -> Result<Decision, GateError> {
    let int = |i: usize| reply_int(reply, i);
    let status = reply_status(reply)?;
    let value = int(1);
    Ok(match status.as_str() {
        "OK" => Decision::Reserved {
            sequence: value,
            returns_seen: int(2),
            gate_gen: int(3),
        },
        "MISSING" if value > 0 => Decision::SiblingMissing((value - 1) as usize),
        "MISSING" => Decision::Missing,
        "GROUP_LIMIT" => Decision::GroupLimit { held: value },
        "NOT_OPEN" => Decision::NotOpen,
        "ENDED" => Decision::Ended,
        "PAUSED" => Decision::Paused,
        "OVER_LIMIT" => Decision::OverLimit,
        "ALREADY" => Decision::AlreadyParticipated,
        "TOKEN_INVALID" => Decision::TokenInvalid,
        "TOKEN_USED" => Decision::TokenUsed,
        "TOKEN_EXPIRED" => Decision::TokenExpired,
        "SOLD_OUT" => Decision::SoldOut {
            remaining: value,
            winners: int(2),
            in_flight: int(3),
            latest_reserved_ms_ago: int(4),
        },
        other => return Err(GateError::Protocol(other.to_string())),
    })
}

/// What [`Gate::return_units`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The units are back in the gate's stock.
    Added,
    /// They were back already (an earlier run, or the rebuild that read them from MySQL).
    AlreadyBack,
    /// The campaign's state is not loaded: nothing to add to; the next rebuild reads MySQL.
    NotLoaded,
}

/// The Redis side of the participation path. Cheap to clone: the connection (one node or a
/// cluster, see `redis_conn`) multiplexes and reconnects on its own.
#[derive(Clone)]
pub struct Gate {
    pub(super) conn: RedisConn,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    /// This instance's busy marks of bucketed campaigns ([`super::activity`]).
    pub(super) activity: std::sync::Arc<super::activity::Activity>,
    /// The joins waiting for their slot's next call ([`super::batch`]), at most `batch_max` a call.
    pub(super) batches: std::sync::Arc<super::batch::Batches>,
    pub(super) batch_max: usize,
}

impl Gate {
    /// Connects lazily: the service starts (and says it is not ready) while Redis is down.
    /// Every call is bounded by `REDIS_TIMEOUT_MS`.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisSetupError> {
        Ok(Self {
            conn: RedisConn::new(settings)?,
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            activity: std::sync::Arc::new(super::activity::Activity::new(
                settings.reservation_timeout,
            )),
            batches: std::sync::Arc::default(),
            batch_max: settings.reserve_batch_max,
        })
    }

    /// `<prefix>{c:<id>}:meta`, `…:users` (winners) and `…:pending` (open reservations).
    pub fn keys(&self, slot: Slot) -> [String; 3] {
        self.campaign_keys(slot, ["meta", "users", "pending"])
    }

    /// The waiting room's keys (see `lua/queue.lua`; same hash tag): `…:q` (waiting), `…:qt`
    /// (tickets), `…:qu` (users), `…:qseen` (last polls), `…:qadm` (admissions), `…:qroom`.
    pub fn room_keys(&self, slot: Slot) -> [String; 6] {
        self.campaign_keys(slot, ["q", "qt", "qu", "qseen", "qadm", "qroom"])
    }

    /// The waitlist's keys (see `lua/queue.lua`; same hash tag): `…:qwl` (waitlisted tickets),
    /// `…:qoff` (open offers).
    pub fn waitlist_keys(&self, slot: Slot) -> [String; 2] {
        self.campaign_keys(slot, ["qwl", "qoff"])
    }

    /// The keys `lua/release.lua` takes, [`RESERVATION_KEYS`] (`lua/reserve.lua`'s, which the
    /// reservation writes into its command itself), with the campaign's part formatted once.
    fn reservation_keys(&self, slot: Slot) -> [String; 5] {
        self.campaign_keys(slot, RESERVATION_KEYS)
    }

    /// `<prefix>{c:<id>}:` (or `<prefix>{c:<id>:<bucket>}:`, `<prefix>{g:<group>}:<id>:`): every
    /// key of a slot starts so (one hash tag, one cluster slot; see [`Slot::key_base`]).
    pub(super) fn campaign_key_base(&self, slot: Slot) -> String {
        let mut base = self.prefix.clone();
        base.push_str(&slot.key_base());
        base
    }

    /// `<prefix>{c:<id>}:<suffix>` for each suffix.
    fn campaign_keys<const N: usize>(&self, slot: Slot, suffixes: [&str; N]) -> [String; N] {
        let base = self.campaign_key_base(slot);
        suffixes.map(|suffix| {
            let mut key = String::with_capacity(base.len() + suffix.len());
            key.push_str(&base);
            key.push_str(suffix);
            key
        })
    }

    /// `<prefix>{c:<id>}:returned`: the wins whose units are back in the gate (same hash tag).
    pub(super) fn returned_key(&self, slot: Slot) -> String {
        self.campaign_key_base(slot) + "returned"
    }

    /// `<prefix>{c:<id>}:controls`: stock changes applied above the hash's `ctl` (see
    /// `lua/control.lua`; same hash tag).
    pub(super) fn controls_key(&self, slot: Slot) -> String {
        self.campaign_key_base(slot) + "controls"
    }

    /// A plain command, bounded by the Redis timeout.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: redis::Cmd,
    ) -> Result<T, GateError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(GateError::Timeout(self.timeout)),
        }
    }

    /// A script invocation, bounded by the Redis timeout.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, GateError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(GateError::Timeout(self.timeout)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, pass, group), err(level = "warn"))]
    pub async fn reserve(
        &self,
        entry: &Entry,
        pass: Option<&AdmissionPass>,
        (epoch, group): (i64, Option<GroupCheck<'_>>),
        now_ms: i64,
    ) -> Result<Decision, GateError> {
        self.mark_busy(entry.campaign_id, entry.bucket.is_some())
            .await;
        if pass.is_none() && group.is_none() && self.batch_max > 1 {
            return self.reserve_batched(entry, epoch, now_ms).await;
        }
        let mut cmd = match group {
            None => self.evalsha(&RESERVE, entry.slot(), RESERVATION_KEYS),
            Some(g) => self.grouped_evalsha(&RESERVE, entry.slot(), RESERVATION_KEYS, g),
        };
        cmd.arg(entry.user_id)
            .arg(entry.quantity)
            .arg(now_ms)
            .arg(epoch)
            .arg(pass.map_or("", |p| p.ticket.as_str()))
            .arg(pass.map_or(0, |p| p.expires_ms))
            .arg(group.map_or(0, |g| g.limit));
        for sibling in group.map_or(&[][..], |g| g.siblings) {
            cmd.arg(sibling.epoch);
        }
        let reply: Vec<redis::Value> = self.run_evalsha(&RESERVE, &cmd).await?;
        decision(&reply)
    }

    /// Calls and joins of the batched reservations so far ([`super::batch`]).
    pub fn reserve_batches(&self) -> (u64, u64) {
        self.batches.counts()
    }

    /// Gives units to a slot's stock once however often it is called (`lua/return.lua`): a
    /// closed win's (`given` its participation id), a transfer's (its id negated), an undone
    /// withdrawal's (`u<transfer id>`); each distinct `given` is applied once.
    #[tracing::instrument(level = "debug", skip(self), err(level = "warn"))]
    pub async fn return_units(
        &self,
        slot: Slot,
        given: impl redis::ToRedisArgs + std::fmt::Debug,
        quantity: i64,
        epoch: i64,
    ) -> Result<Returned, GateError> {
        let [meta, _, _] = self.keys(slot);
        let mut inv = RETURN.key(meta);
        inv.key(self.returned_key(slot))
            .arg(&given)
            .arg(quantity)
            .arg(epoch);
        let answer: i64 = self.run(inv).await?;
        tracing::debug!(
            %slot,
            ?given,
            quantity,
            answer,
            "Gave a closed win's units to the gate (1 added, 0 back already, -1 not loaded)."
        );
        Ok(match answer {
            1 => Returned::Added,
            0 => Returned::AlreadyBack,
            _ => Returned::NotLoaded,
        })
    }

    #[tracing::instrument(level = "debug", skip(self, pass), err)]
    /// `pass`: the admission the reservation used, live again when nothing was written.
    pub async fn release(
        &self,
        entry: &Entry,
        pass: Option<&AdmissionPass>,
        how: Release,
        reservation: &str,
    ) -> Result<bool, GateError> {
        let [meta, users, pending, tickets, admissions] = self.reservation_keys(entry.slot());
        let (mode, extra, seen, returns_seen) = match &how {
            Release::Undo | Release::GateLost { .. } => ("undo", String::new(), 0, 0),
            Release::KeepUser => ("keep_user", String::new(), 0, 0),
            Release::SoldOut {
                remaining_stock,
                control_seq,
                returns_seen,
            } => (
                "sold_out",
                remaining_stock.to_string(),
                *control_seq,
                *returns_seen,
            ),
            Release::Expire => ("expire", String::new(), 0, 0),
        };
        let mut inv = RELEASE.key(meta);
        inv.key(users)
            .key(pending)
            .key(self.controls_key(entry.slot()))
            .key(tickets)
            .key(admissions);
        if let Some(held) = self.held_key(entry.slot()) {
            inv.key(held);
        }
        inv.arg(entry.user_id)
            .arg(entry.quantity)
            .arg(mode)
            .arg(extra)
            .arg(seen)
            .arg(pass.map_or("", |p| p.ticket.as_str()))
            .arg(pass.map_or(0, |p| p.expires_ms))
            .arg(returns_seen)
            .arg(reservation);
        if let Release::GateLost { row_gen } = how {
            inv.arg(row_gen);
        }
        let adjusted: i64 = self.run(inv).await?;
        tracing::debug!(
            campaign_id = entry.campaign_id,
            user_id = entry.user_id,
            quantity = entry.quantity,
            ?how,
            adjusted,
            "Released a reservation at the gate."
        );
        Ok(adjusted == 1)
    }

    /// The transactions of these wins' reservations settled (committed): they are no longer
    /// open. One HDEL for all of them (a group commit's members settle together); when it finds
    /// fewer open than wins, the winners go back into the winners set (`lua/rejoin.lua`).
    pub async fn settle(&self, slot: Slot, wins: &[Committed]) -> Result<(), GateError> {
        if wins.is_empty() {
            return Ok(());
        }
        let [_, _, pending] = self.keys(slot);
        let mut hdel = redis::cmd("HDEL");
        hdel.arg(pending);
        for win in wins {
            hdel.arg(win.user_id);
        }
        let closed: i64 = self.query(hdel).await?;
        if usize::try_from(closed).unwrap_or(0) < wins.len() {
            // Some reservation was gone: the gate may have been rebuilt while these wins were
            // in flight, from a MySQL that did not have them yet.
            self.rejoin(slot, wins).await?;
        }
        Ok(())
    }

    /// A campaign's open reservations: (user id, the raw value, reserved at ms, quantity).
    pub async fn open_reservations(&self, slot: Slot) -> Result<Vec<OpenReservation>, GateError> {
        let [_, _, pending] = self.keys(slot);
        let all: Vec<(i64, String)> = self
            .query(redis::cmd("HGETALL").arg(pending).to_owned())
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(user_id, raw)| {
                let (at, quantity) = raw.split_once(':')?;
                Some(OpenReservation {
                    user_id,
                    reserved_at_ms: at.parse().ok()?,
                    quantity: quantity.parse().ok()?,
                    raw,
                })
            })
            .collect())
    }

    /// The winners set: users holding a win or a reservation.
    pub async fn winners(&self, slot: Slot) -> Result<Vec<i64>, GateError> {
        let [_, users, _] = self.keys(slot);
        self.query(redis::cmd("SMEMBERS").arg(users).to_owned())
            .await
    }

    pub async fn ping(&self) -> Result<(), GateError> {
        self.query::<String>(redis::cmd("PING")).await.map(|_| ())
    }
}
