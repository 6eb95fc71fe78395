//! The gate's side of moving units between a campaign's buckets (docs/design.md §21): a sibling's
//! free units set aside for a transfer (`lua/take.lua`) and settled once MySQL decided
//! (`lua/untake.lua`), the units a transfer brought given to the receiving bucket's gate once
//! (`lua/return.lua`, under the transfer's id negated, beside the closed wins' ids), and the
//! buckets' free units read for the choice of a sibling.

use std::sync::LazyLock;

use futures::{stream, StreamExt};
use redis::Script;
use uuid::Uuid;

use crate::gate::{
    scripts::{Gate, GateError, Returned},
    Slot,
};

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/take.lua")));
static UNTAKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/untake.lua")));

/// Buckets whose free units are read at once when a dry bucket looks for a sibling.
const READS_AT_ONCE: usize = 32;

/// How a take ends ([`Gate::untake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untake {
    /// MySQL moved the units: the record goes, the units stay out of this gate.
    Moved,
    /// No transfer moved them: they return to this gate's stock.
    Back,
}

/// A take still recorded in a bucket's gate: its id, when it was made, how many units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTake {
    pub take_id: Uuid,
    pub taken_at_ms: i64,
    pub units: i64,
}

impl Gate {
    /// `…:takes` of a slot: a bucket's units set aside for transfers (an unbucketed campaign's
    /// is always empty).
    pub(super) fn takes_key(&self, slot: Slot) -> String {
        self.campaign_key_base(slot) + "takes"
    }

    /// Sets aside free units of `slot`'s gate for a sibling short of `short` units: how many
    /// (0: none free, or the gate is not loaded).
    pub async fn take(
        &self,
        slot: Slot,
        epoch: i64,
        take_id: Uuid,
        short: i64,
        now_ms: i64,
    ) -> Result<i64, GateError> {
        self.mark_busy(slot.campaign_id, slot.bucket.is_some())
            .await;
        let [meta, _, _] = self.keys(slot);
        let mut inv = TAKE.key(meta);
        inv.key(self.takes_key(slot))
            .arg(epoch)
            .arg(take_id.simple().to_string())
            .arg(short.max(1))
            .arg(now_ms);
        self.run(inv).await
    }

    /// Settles a take once MySQL decided its transfer; `false` when it was settled already.
    pub async fn untake(
        &self,
        slot: Slot,
        epoch: i64,
        take_id: Uuid,
        how: Untake,
    ) -> Result<bool, GateError> {
        let [meta, _, _] = self.keys(slot);
        let mut inv = UNTAKE.key(meta);
        inv.key(self.takes_key(slot))
            .arg(epoch)
            .arg(take_id.simple().to_string())
            .arg(match how {
                Untake::Moved => "moved",
                Untake::Back => "back",
            });
        let settled: i64 = self.run(inv).await?;
        Ok(settled == 1)
    }

    /// The takes recorded in `slot`'s gate (a crash between a take and its settlement leaves
    /// one behind; the reconciler settles it from MySQL).
    pub async fn open_takes(&self, slot: Slot) -> Result<Vec<OpenTake>, GateError> {
        let all: Vec<(String, String)> = self
            .query(redis::cmd("HGETALL").arg(self.takes_key(slot)).to_owned())
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(id, raw)| {
                let (at, units) = raw.split_once(':')?;
                Some(OpenTake {
                    take_id: Uuid::parse_str(&id).ok()?,
                    taken_at_ms: at.parse().ok()?,
                    units: units.parse().ok()?,
                })
            })
            .collect())
    }

    /// Gives the units of committed transfer `transfer_id` to the receiving bucket's gate, once
    /// however often it is called (the transfer's id, negated, joins the closed wins' ids in the
    /// gate's returned set).
    pub async fn give_transfer(
        &self,
        slot: Slot,
        transfer_id: i64,
        units: i64,
        epoch: i64,
    ) -> Result<Returned, GateError> {
        self.return_units(slot, -transfer_id, units, epoch).await
    }

    /// Undoes [`Self::give_transfer`] of a transfer that did not commit (a withdrawal applied
    /// to the gate before its transaction, which then failed): the units go back, once (under
    /// `u<transfer id>` in the returned set).
    pub async fn undo_transfer(
        &self,
        slot: Slot,
        transfer_id: i64,
        units: i64,
        epoch: i64,
    ) -> Result<Returned, GateError> {
        self.return_units(slot, format!("u{transfer_id}"), -units, epoch)
            .await
    }

    /// Each slot's free units as its gate has them (`None`: not loaded, or unreadable), read a
    /// few dozen at a time.
    pub async fn free_units(&self, slots: &[Slot]) -> Vec<(Slot, Option<i64>)> {
        stream::iter(slots.iter().copied())
            .map(|slot| async move {
                let [meta, _, _] = self.keys(slot);
                let stock: Result<Option<i64>, GateError> = self
                    .query(redis::cmd("HGET").arg(meta).arg("stock").to_owned())
                    .await;
                (slot, stock.ok().flatten())
            })
            .buffer_unordered(READS_AT_ONCE)
            .collect()
            .await
    }
}
