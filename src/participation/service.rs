//! The outbox participation path: campaign lookup → Redis gate → MySQL transaction → wake the
//! relay, with compensation in Redis on every failure after the gate (DESIGN.md §2.6, §6).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    gate::{Decision, Gate, GateError, Release, Seed},
    sold_out::SoldOutMemo,
    store::{self, NewParticipation, WriteError},
};
use crate::{
    campaign::{db_precision, repo, Campaign, CampaignCache, Window},
    db_error::{self, DbErrorKind},
};

/// One request to join a campaign, already validated for shape by the API layer.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub traceparent: Option<String>,
}

/// A committed win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub participation_id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
    pub event_id: Uuid,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("campaign {0} does not exist")]
    CampaignNotFound(i64),
    #[error("the campaign opens at {0}")]
    NotOpen(DateTime<Utc>),
    #[error("the campaign has ended")]
    Ended,
    #[error("quantity {quantity} is above the campaign's per-user limit of {limit}")]
    OverLimit { quantity: i32, limit: i32 },
    /// `participation_id` is `None` while the first request of this user is still in flight.
    #[error("the user already participated in this campaign")]
    AlreadyParticipated { participation_id: Option<i64> },
    #[error("the campaign is sold out")]
    SoldOut,
    #[error("all database connections are busy")]
    Busy,
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        source: anyhow::Error,
    },
}

impl From<DbErr> for JoinError {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout) => JoinError::Busy,
            other => JoinError::Unavailable {
                what: "MySQL",
                source: other.into(),
            },
        }
    }
}

impl From<GateError> for JoinError {
    fn from(e: GateError) -> Self {
        JoinError::Unavailable {
            what: "Redis",
            source: e.into(),
        }
    }
}

/// The checks both participation paths make before anything is reserved or written: the
/// campaign exists (cached), its window is open now, the quantity is within its limit.
pub(crate) async fn admit(
    campaigns: &CampaignCache,
    db: &DatabaseConnection,
    req: &JoinRequest,
) -> Result<(Arc<Campaign>, DateTime<Utc>), JoinError> {
    let campaign = campaigns
        .get(db, req.campaign_id)
        .await?
        .ok_or(JoinError::CampaignNotFound(req.campaign_id))?;
    let now = db_precision(Utc::now());
    match campaign.window(now) {
        Window::NotOpen => return Err(JoinError::NotOpen(campaign.starts_at)),
        Window::Ended => return Err(JoinError::Ended),
        Window::Open => {}
    }
    if req.quantity > campaign.per_user_limit {
        return Err(JoinError::OverLimit {
            quantity: req.quantity,
            limit: campaign.per_user_limit,
        });
    }
    Ok((campaign, now))
}

impl Accepted {
    pub(crate) fn new(
        req: &JoinRequest,
        participation_id: i64,
        sequence: i64,
        event_id: Uuid,
        accepted_at: DateTime<Utc>,
    ) -> Self {
        Self {
            participation_id,
            campaign_id: req.campaign_id,
            user_id: req.user_id,
            quantity: req.quantity,
            sequence,
            event_id,
            accepted_at,
        }
    }
}

/// Runs the part of a participation that must not stop halfway in its own task, so that a
/// client hanging up (which drops the request's future) cannot cut it.
pub(crate) async fn detached<F>(work: F) -> Result<Accepted, JoinError>
where
    F: std::future::Future<Output = Result<Accepted, JoinError>> + Send + 'static,
{
    // It keeps the request's span, so its logs stay with the request.
    tokio::spawn(tracing::Instrument::in_current_span(work))
        .await
        .unwrap_or_else(|e| {
            Err(JoinError::Unavailable {
                what: "the participation task",
                source: e.into(),
            })
        })
}

/// Cheap to clone; shared by all requests.
#[derive(Clone)]
pub struct ParticipationService {
    db: DatabaseConnection,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    topic: Arc<str>,
    /// Wakes the relay after each commit; owned by the application, which hands the other end to
    /// the relay. Notifying with no relay listening is a no-op.
    relay_wakeup: Arc<Notify>,
    sold_out: Arc<SoldOutMemo>,
}

/// Rounds of "reserve, find the keys missing, load them" before giving up.
const LOAD_ROUNDS: u32 = 3;

/// Attempts at compensating before the reservation is given up as leaked (and logged as such).
const RELEASE_ATTEMPTS: u32 = 3;

impl ParticipationService {
    pub fn new(
        db: DatabaseConnection,
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        topic: &str,
        relay_wakeup: Arc<Notify>,
        sold_out_memo: Duration,
    ) -> Self {
        Self {
            db,
            gate,
            campaigns,
            topic: topic.into(),
            relay_wakeup,
            sold_out: Arc::new(SoldOutMemo::new(sold_out_memo)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.campaign_id, user_id = req.user_id, quantity = req.quantity))]
    pub async fn join(&self, req: JoinRequest) -> Result<Accepted, JoinError> {
        let (campaign, now) = admit(&self.campaigns, &self.db, &req).await?;
        if self.sold_out.refuses(campaign.id, req.user_id) {
            return Err(JoinError::SoldOut);
        }
        let sequence = match self.reserve(&campaign, &req, now).await? {
            Decision::Reserved { sequence } => sequence,
            Decision::AlreadyParticipated => return Err(self.already(&req).await),
            Decision::SoldOut { remaining, winners } => {
                if remaining <= 0 {
                    self.remember_sold_out(campaign.id, winners).await;
                }
                return Err(JoinError::SoldOut);
            }
            Decision::NotOpen => return Err(JoinError::NotOpen(campaign.starts_at)),
            Decision::Ended => return Err(JoinError::Ended),
            Decision::OverLimit => {
                return Err(JoinError::OverLimit {
                    quantity: req.quantity,
                    limit: campaign.per_user_limit,
                })
            }
            Decision::Missing => {
                return Err(JoinError::Unavailable {
                    what: "Redis",
                    source: anyhow::anyhow!(
                        "the campaign's keys vanished right after each of {LOAD_ROUNDS} loads"
                    ),
                })
            }
        };

        // Past the gate, the work runs in its own task: a client that hangs up drops this future,
        // and the reservation must still be either committed or released.
        let this = self.clone();
        detached(async move { this.commit_or_compensate(req, sequence).await }).await
    }

    /// One EVALSHA; when the campaign's keys are missing (first request, eviction, Redis restart),
    /// rebuild them from MySQL (set-if-absent) and ask again. The keys can vanish again between
    /// the load and the retry (another eviction), so a few rounds are allowed.
    async fn reserve(
        &self,
        campaign: &Campaign,
        req: &JoinRequest,
        now: DateTime<Utc>,
    ) -> Result<Decision, JoinError> {
        let now_ms = now.timestamp_millis();
        for _ in 0..LOAD_ROUNDS {
            let decision = self
                .gate
                .reserve(campaign.id, req.user_id, req.quantity, now_ms)
                .await?;
            if decision != Decision::Missing {
                return Ok(decision);
            }
            let seed = repo::gate_seed(&self.db, campaign.id)
                .await?
                .ok_or(JoinError::CampaignNotFound(campaign.id))?;
            let winners = repo::winners(&self.db, campaign.id).await?;
            self.load_gate(
                campaign,
                seed.remaining_stock,
                seed.max_sequence,
                &winners,
                false,
            )
            .await?;
        }
        Ok(Decision::Missing)
    }

    /// Gives back reservations that instances which crashed between the gate and the commit
    /// left open: any older than `older_than` whose user has no participation in MySQL. Ones
    /// that did commit are only closed. Covers the campaigns this instance has served.
    /// Returns how many were given back.
    pub async fn reconcile(&self, older_than: Duration) -> Result<u64, JoinError> {
        let cutoff = Utc::now().timestamp_millis()
            - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let mut given_back = 0;
        for campaign_id in self.campaigns.ids().await {
            for open in self.gate.open_reservations(campaign_id).await? {
                if open.reserved_at_ms > cutoff {
                    continue;
                }
                if store::find(&self.db, campaign_id, open.user_id)
                    .await?
                    .is_some()
                {
                    self.gate.settle(campaign_id, open.user_id).await?;
                    continue;
                }
                let how = Release::Expire {
                    reservation: open.raw.clone(),
                };
                if self
                    .gate
                    .release(campaign_id, open.user_id, open.quantity, how)
                    .await?
                {
                    given_back += 1;
                    tracing::warn!(
                        campaign_id,
                        user_id = open.user_id,
                        quantity = open.quantity,
                        "Gave back a reservation a crashed instance left open."
                    );
                }
            }
        }
        Ok(given_back)
    }

    /// Notes a sold-out campaign in the memo, copying the winners set when it changed. Best
    /// effort: without the copy the memo simply does not answer for the campaign.
    async fn remember_sold_out(&self, campaign_id: i64, winners: i64) {
        if self.sold_out.refresh(campaign_id, winners) {
            return;
        }
        match self.gate.winners(campaign_id).await {
            Ok(set) => self.sold_out.record(campaign_id, set),
            Err(e) => {
                tracing::debug!(error = %e, "Could not copy the winners set; no sold-out memo.")
            }
        }
    }

    /// Loads a campaign's gate state: set-if-absent, or replacing whatever is there for a
    /// campaign just created.
    async fn load_gate(
        &self,
        campaign: &Campaign,
        remaining_stock: i64,
        max_sequence: i64,
        winners: &[i64],
        new_campaign: bool,
    ) -> Result<(), GateError> {
        let loaded = self
            .gate
            .load(
                &Seed {
                    campaign_id: campaign.id,
                    remaining_stock,
                    starts_at_ms: campaign.starts_at.timestamp_millis(),
                    ends_at_ms: campaign.ends_at.map_or(0, |t| t.timestamp_millis()),
                    per_user_limit: campaign.per_user_limit,
                    max_sequence,
                    new_campaign,
                },
                winners,
            )
            .await?;
        if loaded {
            tracing::info!(
                campaign_id = campaign.id,
                remaining_stock,
                "Loaded the campaign's gate state into Redis."
            );
        }
        Ok(())
    }

    /// Readies a new campaign: cached here, gate state in Redis before the first request, so a
    /// burst at opening does not all miss the keys at once. Best effort: the first request loads
    /// whatever this could not.
    pub async fn prime(&self, campaign: &Campaign) {
        self.campaigns.insert(campaign.clone()).await;
        if let Err(e) = self
            .load_gate(campaign, campaign.remaining_stock, 0, &[], true)
            .await
        {
            tracing::warn!(campaign_id = campaign.id, error = %e, "Could not prime the gate; the first request will.");
        }
    }

    async fn commit_or_compensate(
        &self,
        req: JoinRequest,
        sequence: i64,
    ) -> Result<Accepted, JoinError> {
        let event_id = Uuid::now_v7();
        let participation = NewParticipation {
            campaign_id: req.campaign_id,
            user_id: req.user_id,
            quantity: req.quantity,
            sequence,
            event_id,
            topic: &self.topic,
            traceparent: req.traceparent.as_deref(),
        };
        let mut written = store::write(&self.db, &participation).await;
        if matches!(&written, Err(WriteError::Db(e)) if db_error::kind(e) == DbErrorKind::Deadlock)
        {
            // InnoDB chose this transaction as a deadlock victim: it did nothing, try it once more.
            written = store::write(&self.db, &participation).await;
        }
        match written {
            Ok((participation_id, accepted_at)) => {
                self.relay_wakeup.notify_one();
                // Best effort: a reservation left open after a commit is found settled by the
                // reconciler (MySQL has the win) and only closed.
                if let Err(e) = self.gate.settle(req.campaign_id, req.user_id).await {
                    tracing::debug!(error = %e, "Could not close the reservation; the reconciler will.");
                }
                Ok(Accepted::new(
                    &req,
                    participation_id,
                    sequence,
                    event_id,
                    accepted_at,
                ))
            }
            Err(WriteError::Duplicate) => {
                self.compensate(&req, Release::KeepUser).await;
                Err(self.already(&req).await)
            }
            Err(WriteError::SoldOut { remaining_stock }) => {
                self.compensate(&req, Release::SoldOut { remaining_stock })
                    .await;
                Err(JoinError::SoldOut)
            }
            Err(WriteError::Db(e)) => {
                tracing::warn!(error = %e, campaign_id = req.campaign_id, user_id = req.user_id,
                    "The participation transaction failed; releasing the reservation.");
                self.compensate(&req, Release::Undo).await;
                Err(e.into())
            }
        }
    }

    /// Gives a reservation back. Retried a few times; if Redis stays unreachable the reservation
    /// is leaked (Redis then undercounts the stock until its keys are rebuilt) and logged.
    async fn compensate(&self, req: &JoinRequest, how: Release) {
        let mut delay = Duration::from_millis(20);
        for attempt in 1..=RELEASE_ATTEMPTS {
            match self
                .gate
                .release(req.campaign_id, req.user_id, req.quantity, how.clone())
                .await
            {
                Ok(_) => return,
                Err(e) if attempt == RELEASE_ATTEMPTS => {
                    tracing::error!(error = %e, campaign_id = req.campaign_id, user_id = req.user_id, ?how,
                        "Compensation failed; the reconciler gives the reservation back later.");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }

    /// ALREADY_PARTICIPATED carries the existing participation id when it is committed.
    async fn already(&self, req: &JoinRequest) -> JoinError {
        let participation_id = match store::find(&self.db, req.campaign_id, req.user_id).await {
            Ok(found) => found.map(|p| p.id),
            Err(e) => {
                tracing::warn!(error = %e, "Could not look up the existing participation.");
                None
            }
        };
        JoinError::AlreadyParticipated { participation_id }
    }

    /// The campaign cache this service reads (shared with the sync path).
    pub fn campaigns(&self) -> Arc<CampaignCache> {
        self.campaigns.clone()
    }
}
