//! The gate's side of a live control (docs/design.md §15): applying a committed control to a
//! campaign's Redis state, once however often it is called and in whatever order controls arrive
//! (`lua/control.lua`).

use std::sync::LazyLock;

use redis::Script;

use crate::{
    events::control::ControlKind,
    gate::{
        scripts::{Gate, GateError},
        Slot,
    },
};

static CONTROL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/control.lua")));

/// What a control changes at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateControl {
    /// Units added (positive) or withdrawn (negative).
    Stock(i64),
    Pause,
    Resume,
    Close,
}

impl GateControl {
    /// The gate's side of a committed control of `kind` (`delta` for a stock change).
    pub fn of(kind: ControlKind, delta: i64) -> Self {
        match kind {
            ControlKind::StockChanged => Self::Stock(delta),
            ControlKind::Paused => Self::Pause,
            ControlKind::Resumed => Self::Resume,
            ControlKind::Closed => Self::Close,
        }
    }

    /// [`Self::of`] as one slot's gate sees it: a bucket's gate never takes a stock change's
    /// delta, which goes to (or comes from) the campaign's pool in MySQL; units a withdrawal
    /// takes from a bucket reach its gate as a transfer (docs/design.md §21). It still records
    /// the control's number, so the control counts as applied there.
    pub fn for_slot(slot: Slot, kind: ControlKind, delta: i64) -> Self {
        match (slot.bucket, Self::of(kind, delta)) {
            (Some(_), Self::Stock(_)) => Self::Stock(0),
            (_, control) => control,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Stock(_) => "stock",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Close => "close",
        }
    }

    fn delta(self) -> i64 {
        match self {
            Self::Stock(delta) => delta,
            _ => 0,
        }
    }
}

/// What [`Gate::apply_control`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The gate has the control now.
    Applied,
    /// It had it already (an earlier run, a rebuild that read it from MySQL, or a later state
    /// control that supersedes it).
    AlreadyApplied,
    /// The campaign's state is not loaded: the next rebuild reads MySQL, where the control is.
    NotLoaded,
}

impl Gate {
    /// Applies control number `seq` of the campaign to its gate state.
    #[tracing::instrument(level = "debug", skip(self), err(level = "warn"))]
    pub async fn apply_control(
        &self,
        slot: Slot,
        seq: i64,
        control: GateControl,
        epoch: i64,
    ) -> Result<Applied, GateError> {
        let [meta, _, _] = self.keys(slot);
        let mut inv = CONTROL.key(meta);
        inv.key(self.controls_key(slot))
            .arg(seq)
            .arg(control.kind())
            .arg(control.delta())
            .arg(epoch);
        let answer: i64 = self.run(inv).await?;
        tracing::debug!(
            %slot,
            seq,
            ?control,
            answer,
            "Gave a control to the gate (1 applied, 0 had it, -1 not loaded)."
        );
        Ok(match answer {
            1 => Applied::Applied,
            0 => Applied::AlreadyApplied,
            _ => Applied::NotLoaded,
        })
    }
}
