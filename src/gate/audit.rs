//! The gate's side of the drift audit (docs/design.md §14): one atomic read of a campaign's stock
//! and open reservations (`lua/audit.lua`), and the one write the audit may make, setting the
//! stock to MySQL's only if nothing moved since it was read (`lua/repair.lua`).

use std::sync::LazyLock;

use redis::Script;

use crate::gate::{
    scripts::{Gate, GateError},
    Slot,
};

static AUDIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/audit.lua")));
static REPAIR: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/repair.lua")));

/// What the gate holds for one campaign, read in one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateHolding {
    pub stock: i64,
    /// Open reservations (the `pending` hash's entries).
    pub open_reservations: i64,
    /// Their units: taken from the stock, not yet in MySQL (or in MySQL, not yet settled).
    pub reserved_units: i64,
}

/// What [`Gate::repair_stock`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The stock is now the one asked for.
    Set,
    /// The stock changed or a reservation opened since it was observed: nothing written.
    Moved,
    /// The campaign's state is not loaded (or is another campaign's).
    NotLoaded,
}

impl Gate {
    /// The campaign's stock and open reservations, or `None` when its state is not loaded.
    #[tracing::instrument(level = "debug", skip(self), err(level = "warn"))]
    pub async fn holding(&self, slot: Slot, epoch: i64) -> Result<Option<GateHolding>, GateError> {
        let [meta, _, pending] = self.keys(slot);
        let mut inv = AUDIT.key(meta);
        inv.key(pending).key(self.takes_key(slot)).arg(epoch);
        let reply: Vec<i64> = self.run(inv).await?;
        match reply[..] {
            [] => Ok(None),
            [stock, open_reservations, reserved_units] => Ok(Some(GateHolding {
                stock,
                open_reservations,
                reserved_units,
            })),
            _ => Err(GateError::Protocol(format!("{reply:?}"))),
        }
    }

    /// Sets the campaign's stock to `to` if it is still `observed` and no reservation is open.
    #[tracing::instrument(level = "debug", skip(self), err(level = "warn"))]
    pub async fn repair_stock(
        &self,
        slot: Slot,
        epoch: i64,
        observed: i64,
        to: i64,
    ) -> Result<Repair, GateError> {
        let [meta, _, pending] = self.keys(slot);
        let mut inv = REPAIR.key(meta);
        inv.key(pending)
            .key(self.takes_key(slot))
            .arg(epoch)
            .arg(observed)
            .arg(to);
        let answer: i64 = self.run(inv).await?;
        Ok(match answer {
            1 => Repair::Set,
            0 => Repair::Moved,
            _ => Repair::NotLoaded,
        })
    }
}
