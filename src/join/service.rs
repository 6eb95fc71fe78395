//! The outbox participation path, top to bottom (docs/design.md §2.6, §6):
//! 1. admission: the campaign checks (`admission.rs`), the sold-out memo, then, in a task
//!    neither a hang-up nor the request deadline can cut, the Redis gate's reservation
//!    (rebuilding the campaign's keys when they are missing), or the answer for a user who
//!    already won;
//! 2. then, in that same task, settlement (`service/settle.rs`): the win is written through its
//!    campaign's group commit (`batcher.rs`, `transaction.rs`); a commit wakes the relay, any
//!    failure gives the reservation back in Redis (compensation), and a commit whose answer was
//!    lost is resolved by asking MySQL whether the win is there.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use tokio::sync::Notify;

use crate::join::reserve::{Reserved, LOAD_ROUNDS};

use crate::hooks::Hooks;
use crate::{
    campaign::{Campaign, CampaignCache},
    config::Settings,
    db::Db,
    gate::{sold_out::SoldOutMemo, AdmissionPass, Decision, Gate},
    join::{
        admit::check_campaign,
        group_commit::GroupCommit,
        request::{detached, existing, Accepted, AdmissionRefusal, JoinError, JoinRequest},
    },
    telemetry::metrics::{registry::ReasonLabels, Metrics},
    upkeep::{loader::GateLoader, reconcile::Reconciler},
    waiting_room::{AdmissionSigner, TokenRefusal},
    win::store::{
        StoredParticipation, {self},
    },
};

/// Cheap to clone; shared by all requests.
#[derive(Clone)]
pub struct ParticipationService {
    pub(super) db: Db,
    pub(super) gate: Gate,
    pub(super) campaigns: Arc<CampaignCache>,
    pub(super) topic: Arc<str>,
    /// Writes the wins, several of a campaign per transaction under load.
    pub(super) group_commit: Arc<GroupCommit>,
    /// Wakes the relay after each commit; owned by the application, which hands the other end to
    /// the relay. Notifying with no relay listening is a no-op.
    pub(super) relay_wakeup: Arc<Notify>,
    pub(super) sold_out: Arc<SoldOutMemo>,
    pub(super) loader: GateLoader,
    /// Checks the signature of a waiting room's admission token (docs/design.md §16).
    pub(super) signer: Arc<AdmissionSigner>,
    /// Gate and transaction latencies.
    pub(super) metrics: Arc<Metrics>,
    /// How long after the gate a win may still commit: `RESERVATION_TIMEOUT_MS` less a quarter
    /// for clocks (the reconciler may give the reservation back after the whole timeout).
    pub(super) commit_within: Duration,
}

/// Lookups of a win still being written, for a retry with an `Idempotency-Key` (25 ms doubling:
/// about 1.5 s in all, past a group commit's transaction under load).
const IN_FLIGHT_LOOKUPS: u32 = 6;

/// A win's commit deadline after its gate call: `RESERVATION_TIMEOUT_MS` less a quarter, the
/// allowance for the instances' clocks (the reconciler measures the reservation's age with its
/// own).
fn commit_within(reservation_timeout: Duration) -> Duration {
    reservation_timeout - reservation_timeout / 4
}

/// What the join's steps are built over (`startup` hands them in).
pub struct JoinDeps {
    pub db: Db,
    pub gate: Gate,
    /// The campaign cache every participation-side service shares.
    pub campaigns: Arc<CampaignCache>,
    /// Notified after each commit that wrote an outbox row (the relay listens).
    pub relay_wakeup: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Checks the waiting room's admission tokens.
    pub signer: Arc<AdmissionSigner>,
    /// The test seam (`crate::hooks`).
    pub hooks: Arc<dyn Hooks>,
}

impl ParticipationService {
    /// Reads the topic, `SOLD_OUT_MEMO_MS` and the group commit settings from `settings`.
    pub fn new(deps: JoinDeps, settings: &Settings) -> Self {
        let JoinDeps {
            db,
            gate,
            campaigns,
            relay_wakeup,
            metrics,
            signer,
            hooks,
        } = deps;
        // Every reason's series from the start, at 0 (a rate over it is defined at once).
        for why in AdmissionRefusal::ALL {
            metrics
                .admission_refused
                .get_or_create(&ReasonLabels {
                    reason: why.as_str(),
                })
                .inc_by(0);
        }
        Self {
            group_commit: GroupCommit::new(
                db.clone(),
                gate.clone(),
                settings.database.group_commit,
                settings.database.acquire_timeout,
                metrics.clone(),
                hooks.clone(),
            ),
            metrics,
            campaigns,
            topic: settings.kafka.topic.as_str().into(),
            relay_wakeup,
            sold_out: Arc::new(SoldOutMemo::new(settings.redis.sold_out_memo)),
            loader: GateLoader::new(db.clone(), gate.clone(), hooks),
            signer,
            db,
            gate,
            commit_within: commit_within(settings.redis.reservation_timeout),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, quantity = req.entry.quantity))]
    pub async fn join(&self, req: JoinRequest) -> Result<Accepted, JoinError> {
        // Before `now`, which stamps the reservation: the win's commit deadline counts from here.
        let commit_by = std::time::Instant::now() + self.commit_within;
        let (campaign, now) = check_campaign(&self.campaigns, &self.db, &req).await?;
        let pass = self.admission(&campaign, &req)?;
        if self.sold_out.refuses(campaign.id, req.entry.user_id) {
            tracing::debug!("SOLD_OUT from the sold-out memo");
            return Err(JoinError::SoldOut);
        }
        // From the gate on, the work runs in its own task. A request cut off (its client hangs
        // up, or its deadline passes) drops this future, and a reservation Redis makes must still
        // be committed or given back: dropped while the gate's answer was on its way, the
        // reservation would keep its units out of the sale until the reconciler gives them back
        // (`RESERVATION_TIMEOUT_MS`), and joins would be refused SOLD_OUT meanwhile although
        // MySQL has the units (an instance resumed after a SIGSTOP, serving the requests its
        // clients gave up on, did exactly that).
        let this = self.clone();
        detached(async move {
            this.gate_and_settle(req, pass, campaign, now, commit_by)
                .await
        })
        .await
    }

    /// The gate's decision, then, past it, the win's settlement: committed, or the reservation
    /// given back. Runs in a task of its own ([`detached`]).
    async fn gate_and_settle(
        &self,
        req: JoinRequest,
        pass: Option<AdmissionPass>,
        campaign: Arc<Campaign>,
        now: DateTime<Utc>,
        commit_by: std::time::Instant,
    ) -> Result<Accepted, JoinError> {
        // When the gate was first asked: a sold-out it answers is remembered from here.
        let asked_at = std::time::Instant::now();
        let (decision, confirmed) = self.reserve(&campaign, &req, pass.as_ref(), now).await?;
        let reserved = match decision {
            Decision::Reserved {
                sequence,
                returns_seen,
            } => Reserved {
                sequence,
                returns_seen,
                reserved_at_ms: now.timestamp_millis(),
                commit_by,
            },
            Decision::TokenInvalid => return Err(self.refused(AdmissionRefusal::Invalid)),
            Decision::TokenUsed => return Err(self.refused(AdmissionRefusal::Used)),
            Decision::TokenExpired => return Err(self.refused(AdmissionRefusal::Expired)),
            Decision::AlreadyParticipated => return self.already(&req).await,
            Decision::SoldOut {
                remaining,
                winners,
                in_flight,
                latest_reserved_ms_ago,
            } => {
                tracing::debug!(
                    remaining,
                    winners,
                    in_flight,
                    latest_reserved_ms_ago,
                    "SOLD_OUT from the gate"
                );
                // Only a sell-out with nothing in flight is remembered: reservations still open
                // past the wait (an instance died holding them, MySQL hangs) may give units
                // back any moment, and the memo would refuse them for its whole window. Nor one
                // that a fresh read of the markers did not confirm: units an expiry or a cancel
                // committed may be on their way to the gate (`gate_step::reserve`).
                if remaining <= 0 && in_flight == 0 && confirmed {
                    self.remember_sold_out(campaign.id, winners, asked_at).await;
                }
                return Err(JoinError::SoldOut);
            }
            Decision::NotOpen => return Err(JoinError::NotOpen(campaign.starts_at)),
            Decision::Ended => return Err(JoinError::Ended),
            Decision::Paused => return Err(JoinError::Paused),
            Decision::OverLimit => {
                return Err(JoinError::OverLimit {
                    quantity: req.entry.quantity,
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
        self.commit_or_compensate(req, pass, reserved, &campaign)
            .await
    }

    /// The admission a join of a campaign with a waiting room carries, its signature checked
    /// (whether it is live and unused is the gate's to say); `None` for an `OPEN` campaign.
    fn admission(
        &self,
        campaign: &Campaign,
        req: &JoinRequest,
    ) -> Result<Option<AdmissionPass>, JoinError> {
        if !campaign.admission.queued() {
            return Ok(None);
        }
        let token = req
            .admission_token
            .as_deref()
            .ok_or_else(|| self.refused(AdmissionRefusal::Required))?;
        match self.signer.verify(token, campaign.id, req.entry.user_id) {
            Ok(pass) => Ok(Some(pass)),
            Err(TokenRefusal::Invalid | TokenRefusal::NotYours) => {
                Err(self.refused(AdmissionRefusal::Invalid))
            }
        }
    }

    /// Counts a refused admission and gives the error.
    fn refused(&self, why: AdmissionRefusal) -> JoinError {
        JoinError::Admission(why.counted(&self.metrics))
    }

    /// The gate knows the user: their win (a retry with its `Idempotency-Key`), or
    /// ALREADY_PARTICIPATED with the existing participation id when it is committed. A retry
    /// with a key that finds nothing yet may have overtaken its first request (whose answer the
    /// client gave up on): the lookup is repeated for a moment, until that write has settled.
    pub(super) async fn already(&self, req: &JoinRequest) -> Result<Accepted, JoinError> {
        let mut delay = Duration::from_millis(25);
        for round in 0..=IN_FLIGHT_LOOKUPS {
            match store::find(&self.db, req.entry.campaign_id, req.entry.user_id).await {
                Ok(None) if req.idempotency_key.is_some() && round < IN_FLIGHT_LOOKUPS => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(found) => return existing(req, found),
                Err(e) => {
                    tracing::warn!(error = %e, "Could not look up the existing participation.");
                    break;
                }
            }
        }
        Err(JoinError::AlreadyParticipated {
            participation_id: None,
        })
    }

    /// The reconciler of reservations left open by crashed instances, over the campaigns this
    /// instance serves.
    pub fn reconciler(&self) -> Reconciler {
        Reconciler {
            db: self.db.clone(),
            gate: self.gate.clone(),
            campaigns: self.campaigns.clone(),
        }
    }

    /// Readies a new campaign: cached here, gate state in Redis before the first request, so a
    /// burst at opening does not all miss the keys at once. Best effort: if Redis is down now,
    /// the first request finds the keys missing (or left over from an earlier campaign with the
    /// same id, which count as missing) and rebuilds them.
    pub async fn prime(&self, campaign: &Campaign) {
        let campaign = self.campaigns.insert(campaign.clone()).await;
        if let Err(e) = self.loader.ensure(&campaign).await {
            tracing::warn!(campaign_id = campaign.id, error = %e, "Could not prime the gate; the first request will.");
        }
    }

    /// Up to `limit` of a campaign's participations after `after_id`, in commit order.
    pub async fn page(
        &self,
        campaign_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredParticipation>, DbErr> {
        store::list(&self.db, campaign_id, after_id, limit).await
    }

    /// A user's participation in a campaign, as stored.
    pub async fn find(
        &self,
        campaign_id: i64,
        user_id: i64,
    ) -> Result<Option<StoredParticipation>, DbErr> {
        store::find(&self.db, campaign_id, user_id).await
    }

    /// The sold-out memo (a live control that brings stock back clears its campaign's entry).
    pub fn sold_out_memo(&self) -> Arc<SoldOutMemo> {
        self.sold_out.clone()
    }

    /// The instance's gate rebuilds (shared with the waiting room).
    pub fn loader(&self) -> GateLoader {
        self.loader.clone()
    }

    /// The campaign cache this service reads (shared with the sync path).
    pub fn campaigns(&self) -> Arc<CampaignCache> {
        self.campaigns.clone()
    }
}
