//! The waiting room of a bucketed campaign (docs/design.md §21). The queue stays one per
//! campaign, in the campaign's own slot (`{c:<id>}`), first come first admitted across every
//! bucket; but no key of that slot holds the campaign's stock (it is in the buckets' slots and
//! MySQL's pool) or its pause, so the room is told them: MySQL's reading of the pool plus every
//! bucket row, with the campaign's pause and close, read at most every [`READING_EVERY`] per
//! campaign on an instance. The join checks an admission in its user's home bucket, with that
//! bucket's stock, in one step: an admission is copied there (`lua/admit.lua`) before its holder
//! is given a token, and a win that used it is reported to the room once committed (`used`): the
//! room counts it among its live admissions until a reading begun after that shows the unit
//! sold, so it never admits more users than units are left (`lua/queue.lua`).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    bucket::view::{self, Standing},
    campaign::Campaign,
    db::Db,
    gate::{queue::BucketedRoom, Gate, GateState, Slot},
    upkeep::loader::keys_expire_ms,
    waiting_room::room::RoomError,
};

/// How stale the room's reading of a bucketed campaign may be: a unit sold or returned reaches
/// the room's admissions (and its SOLD_OUT) this much later at most. The room only paces who may
/// try; the stock is still decided at the gate.
pub const READING_EVERY: Duration = Duration::from_millis(200);

/// The bucketed campaigns' side of the room on this instance.
pub(super) struct BucketedRooms {
    db: Db,
    gate: Gate,
    /// The latest reading of each campaign: when (for its age, and in ms for the room).
    readings: Mutex<HashMap<i64, (Instant, Standing, i64)>>,
}

impl BucketedRooms {
    pub(super) fn new(db: Db, gate: Gate) -> Self {
        Self {
            db,
            gate,
            readings: Mutex::default(),
        }
    }

    /// What the room of `campaign` is told (`None` for an unbucketed campaign, whose gate keys
    /// have it); `enqueuing` is the user an enqueue is for, whose home bucket says whether they
    /// hold a reservation or a win.
    pub(super) async fn side(
        &self,
        campaign: &Campaign,
        enqueuing: Option<i64>,
    ) -> Result<Option<BucketedRoom>, RoomError> {
        if campaign.buckets <= 1 {
            return Ok(None);
        }
        let (standing, read_ms) = self.standing(campaign.id).await?;
        let won = match enqueuing {
            Some(user_id) => {
                self.gate
                    .holds(home_slot(campaign, user_id), user_id)
                    .await?
            }
            None => false,
        };
        let state = if standing.closed {
            GateState::Closed
        } else if standing.paused {
            GateState::Paused
        } else {
            GateState::Open
        };
        Ok(Some(BucketedRoom {
            free: standing.free,
            state,
            starts_ms: campaign.starts_at.timestamp_millis(),
            expire_ms: keys_expire_ms(campaign),
            won,
            read_ms,
        }))
    }

    /// Before `user_id` is given a token for the admission `ticket`, valid until `expires_ms`:
    /// the home bucket has it, where the join checks it.
    pub(super) async fn admitted(
        &self,
        campaign: &Campaign,
        ticket: &str,
        user_id: i64,
        expires_ms: i64,
    ) -> Result<(), RoomError> {
        let slot = home_slot(campaign, user_id);
        let expiries = (expires_ms, keys_expire_ms(campaign));
        if self
            .gate
            .admit_in_bucket(slot, ticket, user_id, expiries)
            .await?
        {
            tracing::debug!(campaign_id = campaign.id, user_id, %slot,
                "Copied an admission into its holder's home bucket.");
        }
        Ok(())
    }

    /// The campaign's standing and when its reading began (ms, this instance's clock).
    async fn standing(&self, campaign_id: i64) -> Result<(Standing, i64), RoomError> {
        {
            let readings = self.readings.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(&(at, standing, read_ms)) = readings.get(&campaign_id) {
                if at.elapsed() < READING_EVERY {
                    return Ok((standing, read_ms));
                }
            }
        }
        let (read_at, read_ms) = (Instant::now(), chrono::Utc::now().timestamp_millis());
        let standing = view::standing(&self.db, campaign_id)
            .await?
            .ok_or(RoomError::CampaignNotFound(campaign_id))?;
        let mut readings = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        readings.retain(|_, (at, _, _)| at.elapsed() < READING_EVERY);
        readings.insert(campaign_id, (read_at, standing, read_ms));
        Ok((standing, read_ms))
    }
}

/// `user_id`'s home bucket in `campaign` (docs/design.md §21).
fn home_slot(campaign: &Campaign, user_id: i64) -> Slot {
    let home = crate::bucket::home(user_id, campaign.buckets);
    campaign.slot(home)
}

/// What a bucketed campaign's join tells its room about an admission it used (docs/design.md
/// §21): its win committed (`Used`: counted as sold from then on), or the group's limit refused
/// it after the home bucket spent its copy (`Spent`: its unit goes to the next admission now).
#[derive(Debug, Clone, Copy)]
pub enum AdmissionReport {
    Used,
    Spent,
}

/// Tells the room, off the answer's path. Best effort: a report lost only keeps the admission
/// counted until its token's expiry (the room admits the next user later).
pub fn report_admission(
    gate: &Gate,
    campaign: &Campaign,
    (ticket, user_id): (&str, i64),
    report: AdmissionReport,
) {
    let gate = gate.clone();
    let ticket = ticket.to_owned();
    let campaign_id = campaign.id;
    let keys = (
        campaign.room_slot(),
        crate::campaign::gate_epoch(campaign),
        keys_expire_ms(campaign),
    );
    tokio::spawn(async move {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let told = match report {
            AdmissionReport::Used => gate.room_used(keys, &ticket, user_id, now_ms).await,
            AdmissionReport::Spent => gate.room_spent(keys, &ticket, user_id, now_ms).await,
        };
        if let Err(e) = told {
            tracing::debug!(error = %e, campaign_id, user_id, ?report,
                "Could not tell the room about an admission; it counts until its token expires.");
        }
    });
}
