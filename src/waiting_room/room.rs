//! [`WaitingRoom`]: queue a user, read a ticket (docs/design.md §16). Each call runs the room's
//! one Redis step (`lua/queue.lua`), which also admits whoever is due, so the room moves while
//! anyone polls it, on any instance; an admitted ticket is answered with its signed token.
//!
//! A poll comes in two halves so that its checks run in between: [`WaitingRoom::find`] reads
//! whose ticket it is (nothing moves), the caller checks that user's token and rate limit, and
//! only then [`WaitingRoom::poll`] runs the step, for that ticket of that user. A refused poll
//! never refreshes a ticket or admits anyone.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    campaign::{Admission, Campaign, CampaignCache, Window},
    config::WaitingRoomSettings,
    db::Db,
    gate::{
        queue::{OfferCounts, RoomAnswer, RoomCaps, RoomOp, RoomPace, Ticket, TicketState},
        AdmissionPass, Gate, GateError,
    },
    telemetry::metrics::{registry::ReasonLabels, CampaignLabels, Metrics},
    upkeep::loader::{GateLoader, LoadError},
    waiting_room::{
        buckets::BucketedRooms,
        token::{new_ticket, AdmissionSigner},
    },
};

/// Rounds of "call the room, find the keys missing, load them" before giving up (as the join).
const LOAD_ROUNDS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("campaign {0} does not exist")]
    CampaignNotFound(i64),
    #[error("campaign {0} has no waiting room: join it directly")]
    NoWaitingRoom(i64),
    #[error("the campaign has ended")]
    Ended,
    #[error("no such ticket in this campaign's waiting room")]
    TicketNotFound,
    /// `QUEUE_TICKETS_PER_CLIENT`: this client holds that many live tickets in the room.
    #[error("this client holds {0} live tickets in this waiting room already, the most it may")]
    ClientTicketLimit(u32),
    /// `QUEUE_MAX_WAITING`: the room keeps that many tickets waiting.
    #[error("this waiting room holds {0} waiting tickets, the most it keeps; try again later")]
    Full(u32),
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: anyhow::Error,
    },
}

impl From<GateError> for RoomError {
    fn from(e: GateError) -> Self {
        Self::Unavailable {
            what: "Redis",
            source: e.into(),
        }
    }
}

impl From<LoadError> for RoomError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::CampaignGone(id) => Self::CampaignNotFound(id),
            other => Self::Unavailable {
                what: "the gate rebuild",
                source: other.into(),
            },
        }
    }
}

impl From<sea_orm::DbErr> for RoomError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unavailable {
            what: "MySQL",
            source: e.into(),
        }
    }
}

/// A ticket as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    pub ticket: String,
    pub user_id: i64,
    pub state: TicketState,
    /// Seconds until admission at the room's rate, while waiting.
    pub estimated_wait_seconds: Option<i64>,
    /// While admitted: the token a join carries, and its expiry.
    pub admission: Option<(String, DateTime<Utc>)>,
}

/// A ticket of a campaign's room and the user it was issued to, found without changing
/// anything ([`WaitingRoom::find`]): whom a poll's checks are made for before
/// [`WaitingRoom::poll`] moves the room.
#[derive(Debug, Clone)]
pub struct HeldTicket {
    campaign: Arc<Campaign>,
    ticket: String,
    /// The user the ticket was issued to.
    pub user_id: i64,
}

/// Cheap to clone; shared by the queue endpoints.
#[derive(Clone)]
pub struct WaitingRoom {
    db: Db,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    loader: GateLoader,
    signer: Arc<AdmissionSigner>,
    token_lifetime: Duration,
    idle_timeout: Duration,
    /// `QUEUE_TICKETS_PER_CLIENT`, `QUEUE_MAX_WAITING`.
    caps: RoomCaps,
    metrics: Arc<Metrics>,
    /// Bucketed campaigns' rooms (docs/design.md §21).
    bucketed: Arc<BucketedRooms>,
}

impl WaitingRoom {
    /// `loader` and `campaigns` are the participation path's, so one rebuild serves both.
    pub fn new(
        db: Db,
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        loader: GateLoader,
        signer: Arc<AdmissionSigner>,
        settings: &WaitingRoomSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Every outcome's series from the start, at 0 (a rate over it is defined at once).
        for reason in ["OFFERED", "TAKEN", "PASSED"] {
            metrics
                .waitlist_offers
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        Self {
            bucketed: Arc::new(BucketedRooms::new(db.clone(), gate.clone())),
            db,
            gate,
            campaigns,
            loader,
            signer,
            token_lifetime: settings.token_lifetime,
            idle_timeout: settings.idle_timeout,
            caps: RoomCaps {
                tickets_per_client: settings.tickets_per_client,
                max_waiting: settings.max_waiting,
            },
            metrics,
        }
    }

    /// Queues `user_id`, or answers the ticket they hold (one per user and campaign, until it
    /// expires). A client that `passed` the bot check gets a ticket id that carries the pass
    /// (`AdmissionSigner::passed_ticket`), and so does the admission token that names it.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn enqueue(
        &self,
        campaign_id: i64,
        user_id: i64,
        passed: bool,
        client: String,
    ) -> Result<QueueView, RoomError> {
        let campaign = self.campaign(campaign_id).await?;
        let now = Utc::now();
        let before_start = now < campaign.starts_at;
        let raffle_place = (campaign.admission == Admission::Raffle && before_start)
            .then(|| self.signer.raffle_place(campaign_id, user_id));
        let op = RoomOp::Enqueue {
            user_id,
            ticket: if passed {
                self.signer.passed_ticket(campaign_id, user_id)
            } else {
                new_ticket()
            },
            raffle_place,
            client,
        };
        self.step(&campaign, now, &op).await
    }

    /// `ticket` of `campaign_id`'s room and its holder, read without moving the room (or loading
    /// the campaign's gate keys): `TicketNotFound` when the room never issued it.
    #[tracing::instrument(level = "debug", skip(self, ticket), err(level = "debug"))]
    pub async fn find(&self, campaign_id: i64, ticket: &str) -> Result<HeldTicket, RoomError> {
        // Tickets are base64url of 16 bytes; anything else was never issued.
        if ticket.len() != 22
            || !ticket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RoomError::TicketNotFound);
        }
        let campaign = self.campaign(campaign_id).await?;
        let user_id = self
            .gate
            .ticket_holder(
                campaign.room_slot(),
                crate::campaign::gate_epoch(&campaign),
                ticket,
            )
            .await?
            .ok_or(RoomError::TicketNotFound)?;
        Ok(HeldTicket {
            campaign,
            ticket: ticket.to_string(),
            user_id,
        })
    }

    /// Where `held` stands (polling also keeps it in the queue, and admits whoever is due). Call
    /// it once the poll's checks passed for `held.user_id`.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(campaign_id = held.campaign.id, user_id = held.user_id),
        err(level = "debug")
    )]
    pub async fn poll(&self, held: &HeldTicket) -> Result<QueueView, RoomError> {
        let op = RoomOp::Poll {
            ticket: held.ticket.clone(),
            user_id: held.user_id,
        };
        self.step(&held.campaign, Utc::now(), &op).await
    }

    /// Whether `campaign_id` is a campaign whose bot check may be asked for: it exists, is not
    /// over, and has a waiting room (or `on_join`: its joins need the check). The cheap refusal
    /// made before any check's work (docs/design.md §16).
    pub async fn wants_bot_check(&self, campaign_id: i64, on_join: bool) -> Result<(), RoomError> {
        match self.campaign(campaign_id).await {
            Err(RoomError::NoWaitingRoom(_)) if on_join => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn campaign(&self, campaign_id: i64) -> Result<Arc<Campaign>, RoomError> {
        let campaign = self
            .campaigns
            .get(&self.db, campaign_id)
            .await?
            .ok_or(RoomError::CampaignNotFound(campaign_id))?;
        if !campaign.admission.queued() {
            return Err(RoomError::NoWaitingRoom(campaign_id));
        }
        // A queue that will never admit anyone again is not touched.
        if campaign.window(Utc::now()) == Window::Ended {
            return Err(RoomError::Ended);
        }
        Ok(campaign)
    }

    /// The room's step, loading the campaign's gate keys when they are missing.
    async fn step(
        &self,
        campaign: &Arc<Campaign>,
        now: DateTime<Utc>,
        op: &RoomOp,
    ) -> Result<QueueView, RoomError> {
        let enqueuing = match op {
            RoomOp::Enqueue { user_id, .. } => Some(*user_id),
            RoomOp::Poll { .. } => None,
        };
        let pace = RoomPace {
            epoch: crate::campaign::gate_epoch(campaign),
            rate_per_second: campaign.admission_rate_per_second,
            token_lifetime: self.token_lifetime,
            idle_timeout: self.idle_timeout,
            offer_lifetime: Duration::from_secs(u64::try_from(campaign.offer_seconds).unwrap_or(0)),
            bucketed: self.bucketed.side(campaign, enqueuing).await?,
            caps: self.caps,
        };
        for _ in 0..LOAD_ROUNDS {
            match self
                .gate
                .room(campaign.room_slot(), pace, now.timestamp_millis(), op)
                .await?
            {
                RoomAnswer::Missing => self.loader.ensure(campaign, campaign.room_slot()).await?,
                RoomAnswer::Unknown => return Err(RoomError::TicketNotFound),
                RoomAnswer::ClientLimit => {
                    return Err(RoomError::ClientTicketLimit(self.caps.tickets_per_client))
                }
                RoomAnswer::Full => return Err(RoomError::Full(self.caps.max_waiting)),
                RoomAnswer::Found {
                    ticket,
                    admitted,
                    waited,
                    waiting,
                    offers,
                    pace_ms,
                } => {
                    self.record(campaign.id, admitted, waited, waiting);
                    self.record_offers(campaign.id, offers);
                    if let TicketState::Admitted { expires_ms } = ticket.state {
                        if pace.bucketed.is_some() {
                            let (id, user) = (ticket.ticket.as_str(), ticket.user_id);
                            self.bucketed
                                .admitted(campaign, id, user, expires_ms)
                                .await?;
                        }
                    }
                    return Ok(self.view(campaign, now, ticket, pace_ms));
                }
            }
        }
        Err(RoomError::Unavailable {
            what: "Redis",
            source: anyhow::anyhow!(
                "the campaign's keys vanished right after each of {LOAD_ROUNDS} loads"
            ),
        })
    }

    /// The waitlist's length, and the offers this call made, found taken or passed on.
    fn record_offers(&self, campaign: i64, offers: OfferCounts) {
        self.metrics
            .waitlist_length
            .get_or_create(&CampaignLabels { campaign })
            .set(offers.waitlisted);
        for (outcome, n) in [
            ("OFFERED", offers.offered),
            ("TAKEN", offers.taken),
            ("PASSED", offers.passed),
        ] {
            if n > 0 {
                self.metrics
                    .waitlist_offers
                    .get_or_create(&ReasonLabels { reason: outcome })
                    .inc_by(n as u64);
            }
        }
    }

    fn record(&self, campaign: i64, admitted: i64, waited: Duration, waiting: i64) {
        let labels = CampaignLabels { campaign };
        self.metrics
            .queue_length
            .get_or_create(&labels)
            .set(waiting);
        if admitted > 0 {
            self.metrics
                .queue_admitted
                .get_or_create(&labels)
                .inc_by(admitted as u64);
            self.metrics
                .queue_wait
                .get_or_create(&labels)
                .inc_by(waited.as_secs_f64());
        }
    }

    /// What the caller sees of `ticket`; `pace_ms` is the room's real time per admission (0:
    /// not measured yet).
    fn view(
        &self,
        campaign: &Campaign,
        now: DateTime<Utc>,
        ticket: Ticket,
        pace_ms: i64,
    ) -> QueueView {
        let rate = campaign.admission_rate_per_second;
        let mut view = QueueView {
            ticket: ticket.ticket.clone(),
            user_id: ticket.user_id,
            state: ticket.state,
            estimated_wait_seconds: None,
            admission: None,
        };
        match ticket.state {
            TicketState::Waiting { position } => {
                let until_start = (campaign.starts_at - now).num_seconds().max(0);
                view.estimated_wait_seconds =
                    Some(until_start + wait_seconds(position, rate, pace_ms));
            }
            TicketState::Admitted { expires_ms } => {
                let pass = AdmissionPass {
                    ticket: ticket.ticket,
                    expires_ms,
                };
                let token = self.signer.sign(campaign.id, ticket.user_id, &pass);
                let expires = DateTime::from_timestamp_millis(expires_ms).unwrap_or(now);
                view.admission = Some((token, expires));
            }
            TicketState::SoldOut { .. }
            | TicketState::Waitlisted { .. }
            | TicketState::Used
            | TicketState::Expired => {}
        }
        view
    }
}

/// Seconds until the ticket at `position` is admitted, once the room is open (docs/design.md
/// §16): `rate` admissions a second at most (the campaign's ceiling), or the room's real pace
/// when it is slower (`pace_ms` a place; 0: not measured yet).
fn wait_seconds(position: i64, rate: i32, pace_ms: i64) -> i64 {
    let ceiling_ms = 1_000.0 / f64::from(rate.max(1));
    let per_ms = ceiling_ms.max(pace_ms as f64);
    (position as f64 * per_ms / 1_000.0).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::wait_seconds;

    #[test]
    fn the_estimate_follows_the_slower_of_the_rate_and_the_rooms_pace() {
        // Not measured yet: the rate alone, as before (position ÷ rate, rounded up).
        assert_eq!(wait_seconds(1, 100, 0), 1);
        assert_eq!(wait_seconds(250, 100, 0), 3);
        // Faster than the rate: the rate is a ceiling.
        assert_eq!(wait_seconds(250, 100, 2), 3);
        // Slower: slots held by tokens not used yet, 2 s a place.
        assert_eq!(wait_seconds(5, 100, 2_000), 10);
    }
}
