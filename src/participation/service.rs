//! The outbox participation path in order (docs/design.md §2.6, §6): admission (campaign checks, the
//! sold-out memo, the Redis gate: `admission.rs`), then, in a task a hang-up cannot cut,
//! settlement (the MySQL transaction through the campaign's group commit, then settle or
//! compensate: `settlement.rs`, `batcher.rs`, `transaction.rs`).

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use super::{
    admission::admit,
    batcher::GroupCommit,
    join::{detached, Accepted, JoinError, JoinRequest},
    reconcile::Reconciler,
};
use crate::{
    campaign::{Campaign, CampaignCache},
    config::Settings,
    db::Db,
    gate::{loader::GateLoader, sold_out::SoldOutMemo, Decision, Gate},
    metrics::Metrics,
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
    /// Gate and transaction latencies.
    pub(super) metrics: Arc<Metrics>,
}

/// Rounds of "reserve, find the keys missing, load them" before giving up.
pub(super) const LOAD_ROUNDS: u32 = 3;

/// Attempts at compensating before the reservation is given up as leaked (and logged as such).
pub(super) const RELEASE_ATTEMPTS: u32 = 3;

impl ParticipationService {
    /// Reads the topic, `SOLD_OUT_MEMO_MS` and the group commit settings from `settings`.
    pub fn new(
        db: Db,
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        relay_wakeup: Arc<Notify>,
        metrics: Arc<Metrics>,
        settings: &Settings,
    ) -> Self {
        Self {
            group_commit: GroupCommit::new(
                db.clone(),
                gate.clone(),
                settings.database.group_commit,
                settings.database.acquire_timeout,
                metrics.clone(),
            ),
            metrics,
            campaigns,
            topic: settings.kafka.topic.as_str().into(),
            relay_wakeup,
            sold_out: Arc::new(SoldOutMemo::new(settings.redis.sold_out_memo)),
            loader: GateLoader::new(db.clone(), gate.clone()),
            db,
            gate,
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, quantity = req.entry.quantity))]
    pub async fn join(&self, req: JoinRequest) -> Result<Accepted, JoinError> {
        let (campaign, now) = admit(&self.campaigns, &self.db, &req).await?;
        if self.sold_out.refuses(campaign.id, req.entry.user_id) {
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

        // Past the gate, the work runs in its own task: a client that hangs up drops this future,
        // and the reservation must still be either committed or released.
        let this = self.clone();
        detached(async move {
            this.commit_or_compensate(req, sequence, campaign.reward_points)
                .await
        })
        .await
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

    /// One reconciler pass (see [`Reconciler::run_once`]); returns how many were given back.
    pub async fn reconcile(&self, older_than: Duration) -> Result<u64, JoinError> {
        self.reconciler().run_once(older_than).await
    }

    /// Wins of the campaign queued for its next group-commit transaction.
    pub fn group_commit_queued(&self, campaign_id: i64) -> usize {
        self.group_commit.queued(campaign_id)
    }

    /// Gate rebuilds this instance has run that read MySQL.
    pub fn gate_loads(&self) -> u64 {
        self.loader.loads()
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

    /// The campaign cache this service reads (shared with the sync path).
    pub fn campaigns(&self) -> Arc<CampaignCache> {
        self.campaigns.clone()
    }
}
