//! A committed control on its way to the gate (docs/design.md §15). One function gives a control
//! to every gate of its campaign and forgets its `gate_control` marker once they all have it; the
//! control's own call after its commit, the marker loop, and a control that changed nothing all
//! use it. The last of these is why this module exists: a control that finds the campaign already
//! as asked (a resume of a resumed campaign) answers only once the gate has every control its
//! answer reports, so that no answer runs ahead of the joins that follow it (the proof's seed
//! 144: two resumes at once, the second answered "running" while the first's gate call was still
//! on its way, and a join sent after that answer was refused CAMPAIGN_PAUSED).

use chrono::Utc;
use sea_orm::DbErr;

use super::store::{self, PendingControl};
use crate::{
    campaign::{Campaign, CampaignCache, Window},
    db::Db,
    events::control::ControlKind,
    gate::{Applied, Gate, GateControl, GateError, Reached},
};

/// What giving one control to its campaign's gates came to.
#[derive(Debug)]
pub enum Given {
    /// Every gate has it (or the campaign is over and nothing loads it again): marker deleted.
    Settled,
    /// A gate holds no state: its next load reads MySQL, which has the control; the marker stays
    /// (a rebuild that read MySQL before the control needs it).
    NotLoaded,
    /// Redis failed: the marker stays for the marker loop.
    Failed(GateError),
}

/// Gives control number `seq` (`kind`, `delta`) to every gate of `campaign` — each bucket's of a
/// bucketed one (docs/design.md §21) — and deletes its marker once all have it. The gate applies
/// a control once whoever gives it and in whatever order (`lua/control.lua`).
pub async fn give(
    db: &Db,
    gate: &Gate,
    campaign: &Campaign,
    (seq, kind, delta): (i64, ControlKind, i64),
) -> Result<Given, DbErr> {
    let epoch = crate::campaign::gate_epoch(campaign);
    let mut loaded = true;
    for slot in campaign.slots() {
        let control = GateControl::for_slot(slot, kind, delta);
        match gate.apply_control(slot, seq, control, epoch).await {
            Ok(Applied::Applied | Applied::AlreadyApplied) => {}
            Ok(Applied::NotLoaded) => loaded = false,
            Err(e) => return Ok(Given::Failed(e)),
        }
    }
    if loaded || campaign.window(Utc::now()) == Window::Ended {
        store::forget(db, campaign.id, seq).await?;
        return Ok(Given::Settled);
    }
    Ok(Given::NotLoaded)
}

/// Before a control that changed nothing answers: gives the gate every control of the campaign
/// up to number `upto` (the one its answer reports) whose marker says the gate may lack it —
/// another control's, committed and not yet at the gate. `None` when the gate has them all (or
/// holds no state, and its next load reads MySQL); `Some(Reached::Later)` when Redis could not be
/// reached (the marker loop gives them within about a second after it answers again).
pub async fn catch_up(
    db: &Db,
    gate: &Gate,
    campaigns: &CampaignCache,
    (campaign_id, upto): (i64, i64),
) -> Result<Option<Reached>, DbErr> {
    let markers = store::pending_of(db, campaign_id, upto).await?;
    if markers.is_empty() {
        return Ok(None);
    }
    let Some(campaign) = campaigns.get(db, campaign_id).await? else {
        return Ok(None);
    };
    for PendingControl {
        seq, kind, delta, ..
    } in markers
    {
        // An unknown kind is the marker loop's to log and drop.
        let Some(kind) = ControlKind::parse(&kind) else {
            continue;
        };
        if let Given::Failed(e) = give(db, gate, &campaign, (seq, kind, delta)).await? {
            tracing::warn!(error = %e, campaign_id, seq,
                "Could not give the gate a control committed before this one's answer; the gate_control loop will.");
            return Ok(Some(Reached::Later));
        }
    }
    Ok(None)
}
