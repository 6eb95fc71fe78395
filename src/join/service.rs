//! The outbox participation path, composed of its three steps (docs/design.md §2.6, §6):
//! 1. **admit** (`admit.rs`): the campaign checks, the admission token, the sold-out memo;
//! 2. then, in a task neither a hang-up nor the request deadline can cut, **reserve**
//!    (`reserve.rs`): the Redis gate's reservation, rebuilding the campaign's keys when they are
//!    missing;
//! 3. and in that same task **settle** (`settle.rs`): the win is written through its campaign's
//!    group commit (`group_commit.rs`, `transaction.rs`); a commit wakes the relay, any failure
//!    gives the reservation back in Redis (compensation), and a commit whose answer was lost is
//!    settled once MySQL answers (`in_doubt.rs`). A user the gate already knows is answered from
//!    MySQL.

use std::{sync::Arc, time::Duration};

use sea_orm::DbErr;

use crate::outbox::Sink;
use crate::{
    campaign::{Campaign, CampaignCache},
    config::Settings,
    db::Db,
    gate::{sold_out::SoldOutMemo, Gate},
    group::GroupDirectory,
    hooks::Hooks,
    join::{
        admit::Admit,
        cart::service::Carts,
        request::{detached, Accepted, AdmissionRefusal, Gated, JoinError, JoinRequest},
        reserve::Reserve,
        settle::{Settle, Settled},
        tail::Tail,
    },
    telemetry::metrics::{registry::ReasonLabels, Metrics},
    upkeep::{loader::GateLoader, reconcile::Reconciler},
    waiting_room::AdmissionSigner,
    win::store::{self, StoredParticipation},
    write::{
        group_commit::GroupCommit,
        writer::{LocalWrite, Writers},
    },
};

/// Reservations of one join that a bucket's row refused (its gate ran ahead of it) before the
/// join answers SERVICE_BUSY: each refusal sets the gate from the row, so the next round finds
/// the bucket as MySQL has it, and looks in the pool and the siblings when it is dry.
const BUCKET_SHORT_ROUNDS: u32 = 8;

/// Cheap to clone; shared by all requests.
#[derive(Clone)]
pub struct ParticipationService {
    pub(super) admit: Arc<Admit>,
    pub(super) reserve: Arc<Reserve>,
    pub(super) settle: Arc<Settle>,
}

/// A win's commit deadline after its gate call: `RESERVATION_TIMEOUT_MS` less a quarter, the
/// allowance for the instances' clocks (the reconciler measures the reservation's age with its
/// own).
fn commit_within(reservation_timeout: Duration) -> Duration {
    reservation_timeout - reservation_timeout / 4
}

/// Where the wins are written: the instance's group commit, and the campaigns' writers over it
/// (`WRITER_PER_CAMPAIGN`, docs/design.md §23).
fn writers(
    db: &Db,
    gate: &Gate,
    sink: &Sink,
    (settings, metrics, hooks): (&Settings, Arc<Metrics>, Arc<dyn Hooks>),
) -> Arc<Writers> {
    let local = LocalWrite {
        group_commit: GroupCommit::new(
            db.clone(),
            gate.clone(),
            settings.database.group_commit,
            settings.database.acquire_timeout,
            metrics.clone(),
            hooks.clone(),
        ),
        wakeup: sink.wakeup.clone(),
        db: db.clone(),
        hooks,
    };
    let routing = (
        settings.database.group_commit.writer_per_campaign,
        settings.redis.reservation_timeout,
    );
    Arc::new(Writers::new(local, gate.clone(), routing, metrics))
}

/// What the join's steps are built over (`startup` hands them in).
pub struct JoinDeps {
    pub db: Db,
    pub gate: Gate,
    /// The campaign cache every participation-side service shares.
    pub campaigns: Arc<CampaignCache>,
    /// Where the wins' events go: the topic, and the relay's wakeup after each commit.
    pub sink: Sink,
    pub metrics: Arc<Metrics>,
    /// Checks the waiting room's admission tokens.
    pub signer: Arc<AdmissionSigner>,
    /// The bot check (`BOT_CHECK`).
    pub bot: crate::bot_check::BotCheck,
    /// The test seam (`crate::hooks`).
    pub hooks: Arc<dyn Hooks>,
    /// The instance's sold-out memo (`SOLD_OUT_MEMO_MS`), which returns and controls forget.
    pub sold_out: Arc<SoldOutMemo>,
}

impl ParticipationService {
    /// Reads the topic, `RESERVATION_TIMEOUT_MS` and the group commit settings from `settings`.
    pub fn new(deps: JoinDeps, settings: &Settings) -> Self {
        let JoinDeps {
            db,
            gate,
            campaigns,
            sink,
            metrics,
            signer,
            bot,
            hooks,
            sold_out,
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
        for reason in ["GATE", "MYSQL"] {
            metrics
                .group_limit_refused
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        let loader = GateLoader::new(db.clone(), gate.clone(), hooks.clone());
        Self {
            admit: Arc::new(Admit {
                db: db.clone(),
                campaigns: campaigns.clone(),
                signer,
                sold_out: sold_out.clone(),
                metrics: metrics.clone(),
                bot,
            }),
            reserve: Arc::new(Reserve::new(
                (gate.clone(), loader.clone(), sold_out.clone()),
                (metrics.clone(), hooks.clone()),
                commit_within(settings.redis.reservation_timeout),
                Tail::new(
                    (db.clone(), gate.clone(), loader),
                    hooks.clone(),
                    metrics.clone(),
                    sold_out,
                ),
                Arc::new(GroupDirectory::new(db.clone(), campaigns.clone())),
            )),
            settle: Arc::new(Settle::new(
                db.clone(),
                gate.clone(),
                writers(&db, &gate, &sink, (settings, metrics.clone(), hooks)),
                sink,
                metrics,
            )),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, quantity = req.entry.quantity))]
    pub async fn join(&self, req: JoinRequest) -> Result<Accepted, JoinError> {
        // Before the admission's `now`, which stamps the reservation: the win's commit deadline
        // counts from here.
        let commit_by = std::time::Instant::now() + self.reserve.commit_within();
        let admitted = self.admit.run(&req).await?;
        let mut req = req;
        // A bucketed campaign's join lives in its user's home bucket (docs/design.md §21).
        let buckets = admitted.campaign.buckets;
        let home = crate::bucket::home(req.entry.user_id, buckets);
        let slot = admitted.campaign.slot(home);
        req.entry.bucket = slot.bucket;
        req.entry.group = slot.group;
        // From the gate on, the work runs in its own task. A request cut off (its client hangs
        // up, or its deadline passes) drops this future, and a reservation Redis makes must still
        // be committed or given back: dropped while the gate's answer was on its way, the
        // reservation would keep its units out of the sale until the reconciler gives them back
        // (`RESERVATION_TIMEOUT_MS`), and joins would be refused SOLD_OUT meanwhile although
        // MySQL has the units (an instance resumed after a SIGSTOP, serving the requests its
        // clients gave up on, did exactly that).
        let (reserve, settle) = (self.reserve.clone(), self.settle.clone());
        detached(async move {
            let mut req = req;
            for _ in 0..BUCKET_SHORT_ROUNDS {
                let reserved = match reserve.run(&admitted, &req, commit_by).await? {
                    Gated::Already => return settle.already(&req).await,
                    Gated::Reserved(reserved) => reserved,
                };
                let pass = admitted.pass.as_ref();
                match settle
                    .commit_or_compensate(req, pass, reserved, &admitted.campaign)
                    .await
                {
                    Settled::Answer(answer) => return answer,
                    Settled::BucketShort(back) => req = back,
                }
            }
            // Units exist elsewhere in the campaign as far as anyone knows: not a SOLD_OUT.
            Err(JoinError::Busy)
        })
        .await
    }

    /// The reconciler of reservations left open by crashed instances, over the campaigns this
    /// instance serves.
    pub fn reconciler(&self) -> Reconciler {
        Reconciler {
            db: self.settle.db().clone(),
            gate: self.settle.gate().clone(),
            campaigns: self.admit.campaigns.clone(),
        }
    }

    /// Readies a new campaign: cached here, gate state in Redis before the first request, so a
    /// burst at opening does not all miss the keys at once. Best effort: if Redis is down now,
    /// the first request finds the keys missing (or left over from an earlier campaign with the
    /// same id, which count as missing) and rebuilds them.
    pub async fn prime(&self, campaign: &Campaign) {
        let campaign = self.admit.campaigns.insert(campaign.clone()).await;
        if let Err(e) = self.reserve.loader().ensure_all(&campaign).await {
            tracing::warn!(campaign_id = campaign.id, error = %e, "Could not prime the gate; the first request will.");
        }
    }

    /// Up to `limit` of a campaign's participations after `after_id`, in id order (the order
    /// their writes began; docs/design.md §23).
    pub async fn page(
        &self,
        campaign_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredParticipation>, DbErr> {
        store::list(self.settle.db(), campaign_id, after_id, limit).await
    }

    /// Purchases of several campaigns of a group, over the same steps (docs/design.md §22).
    pub fn carts(&self) -> Carts {
        Carts::new(self.reserve.clone(), self.settle.clone())
    }

    /// A user's participation in a campaign, as stored.
    pub async fn find(
        &self,
        campaign_id: i64,
        user_id: i64,
    ) -> Result<Option<StoredParticipation>, DbErr> {
        store::find(self.settle.db(), campaign_id, user_id).await
    }

    /// The sold-out memo (a live control that brings stock back clears its campaign's entry).
    pub fn sold_out_memo(&self) -> Arc<SoldOutMemo> {
        self.reserve.sold_out().clone()
    }

    /// The instance's gate rebuilds (shared with the waiting room).
    pub fn loader(&self) -> GateLoader {
        self.reserve.loader().clone()
    }

    /// The campaign cache this service reads (shared with the sync path).
    pub fn campaigns(&self) -> Arc<CampaignCache> {
        self.admit.campaigns.clone()
    }

    /// The bot check this path passes its joins through (the sync path passes the same).
    pub fn bot_check(&self) -> crate::bot_check::BotCheck {
        self.admit.bot.clone()
    }

    /// Where the wins are written (its heartbeat and mailbox start with the background loops).
    pub fn writers(&self) -> &Writers {
        self.settle.writers()
    }

    // ---- what the tests read (`startup::testing`): reads only; where a test holds the join, it
    // does so through the one seam, `crate::hooks`.

    /// Wins of the campaign queued for its next group-commit transaction (tests synchronize on
    /// it, through `startup::testing`).
    pub fn group_commit_queued(&self, campaign_id: i64) -> usize {
        self.settle.queued(campaign_id)
    }

    /// Gate rebuilds this instance has run that read MySQL (for the tests, as above).
    pub fn gate_loads(&self) -> u64 {
        self.reserve.loader().loads()
    }

    /// What a join the gate refused at `refused_at` learns from the campaign's markers, as the
    /// join path asks it (`join::reserve`), for a test.
    pub async fn give_owed(
        &self,
        campaign_id: i64,
        refused_at: std::time::Instant,
    ) -> Result<crate::upkeep::loader::Owed, String> {
        let campaign = self
            .admit
            .campaigns
            .get(&self.admit.db, campaign_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("campaign {campaign_id} not found"))?;
        self.reserve
            .loader()
            .give_owed(&campaign, campaign.slot(0), refused_at)
            .await
            .map_err(|e| e.to_string())
    }
}
