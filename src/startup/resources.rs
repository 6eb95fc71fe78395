//! The API's resources, each given the services it calls: what start-up hands the HTTP layer.

use std::sync::Arc;

use crate::{
    api::{
        admin::AdminApi, campaigns::CampaignsApi, components::Components, controls::ControlsApi,
        groups::GroupsApi, health::HealthApi, lifecycle::LifecycleApi, live::LiveApi,
        participations::ParticipationsApi, purchases::PurchasesApi, queue::QueueApi,
        read_cache::ReadCache, rewards::RewardsApi, stats::StatsApi, Apis,
    },
    campaign::{control::CampaignControls, CampaignService},
    consumer::{rewards::RewardsView, stats::StatsView, ConsumerHandle},
    db::Db,
    gate::Gate,
    http::{admin_auth::AdminTokens, rate_limit::RateLimits, user_auth::UserAuthority},
    join::{baseline::SyncParticipationService, ParticipationService},
    live::LiveHub,
    refusal::{RefusalCounter, RefusalView},
    relay::admin::OutboxAdmin,
    telemetry::metrics::Metrics,
    waiting_room::WaitingRoom,
    win::lifecycle::LifecycleService,
};

/// What the resources are built from: the API's pool and gate, the services, the live state of
/// Kafka, the relay and the consumers, the admin tokens and the check of `USER_AUTH`.
pub(super) struct Resources {
    pub db: Db,
    pub gate: Gate,
    pub participations: ParticipationService,
    pub lifecycle: LifecycleService,
    pub controls: CampaignControls,
    pub sync: SyncParticipationService,
    pub waiting_room: WaitingRoom,
    /// The bot check at the room's door (`BOT_CHECK`).
    pub bot: crate::bot_check::BotCheck,
    pub components: Components,
    pub consumers: Vec<ConsumerHandle>,
    pub metrics: Arc<Metrics>,
    pub admin: AdminTokens,
    pub users: UserAuthority,
    /// Per-user and per-IP limits (docs/design.md §16).
    pub rate_limits: RateLimits,
    /// Refused joins counted per campaign (docs/design.md §20).
    pub refusals: Arc<RefusalCounter>,
    /// The live view's feeds (docs/design.md §20).
    pub live: LiveHub,
    /// `USER_AUTH` and whether `HTTP_ADDR` is exposed, as `/health/ready` reports them.
    pub identity: crate::api::health::IdentityHealth,
    /// `CAMPAIGN_BUCKETS_MAX_TOTAL`.
    pub buckets_max_total: u32,
    /// `PUBLIC_READ_CACHE_MS`.
    pub public_read_cache: std::time::Duration,
    /// `SYNC_PATH_ENABLED`, resolved.
    pub sync_path: bool,
}

impl Resources {
    pub fn into_apis(self) -> Apis {
        let campaigns = CampaignService::new(self.db.clone(), self.buckets_max_total);
        let refusals = RefusalView::new(self.db.clone());
        // The resources that only take copies of what they share, built before the ones below
        // take the rest.
        let campaigns_api = self.campaigns_api(&campaigns, &refusals);
        let groups = self.groups_api();
        let purchases = self.purchases_api();
        let stats = self.stats_api(&campaigns, &refusals);
        let rewards = self.rewards_api();
        (
            HealthApi {
                db: self.db.clone(),
                gate: self.gate,
                components: self.components.clone(),
                consumers: self.consumers,
                identity: self.identity,
                admin: self.admin.clone(),
                pings: crate::api::readiness::Throttled::new(self.metrics.readiness_checks.clone()),
            },
            campaigns_api,
            groups,
            purchases,
            ParticipationsApi {
                participations: self.participations,
                sync: self.sync,
                sync_enabled: self.sync_path,
                campaigns: campaigns.clone(),
                metrics: self.metrics.clone(),
                users: self.users.clone(),
                admin: self.admin.clone(),
                limits: self.rate_limits.clone(),
                refusals: self.refusals.clone(),
            },
            stats,
            rewards,
            LifecycleApi {
                lifecycle: self.lifecycle,
                admin: self.admin.clone(),
                users: self.users.clone(),
                limits: self.rate_limits.clone(),
            },
            AdminApi {
                outbox: OutboxAdmin::new(self.db.clone()),
                components: self.components,
                metrics: self.metrics,
            },
            ControlsApi {
                controls: self.controls,
                refusals,
                bot: (self.bot.clone(), self.db.clone()),
            },
            QueueApi {
                room: self.waiting_room,
                users: self.users,
                limits: self.rate_limits,
                bot: self.bot,
                refusals: self.refusals.clone(),
            },
            LiveApi {
                hub: self.live,
                campaigns,
                admin: self.admin,
            },
        )
    }

    fn campaigns_api(&self, campaigns: &CampaignService, refusals: &RefusalView) -> CampaignsApi {
        CampaignsApi {
            campaigns: campaigns.clone(),
            groups: crate::group::GroupService::new(self.db.clone()),
            participations: self.participations.clone(),
            refusals: refusals.clone(),
            reads: ReadCache::new(self.public_read_cache),
        }
    }

    fn groups_api(&self) -> GroupsApi {
        GroupsApi {
            groups: crate::group::GroupService::new(self.db.clone()),
            reads: ReadCache::new(self.public_read_cache),
        }
    }

    fn purchases_api(&self) -> PurchasesApi {
        PurchasesApi {
            carts: self.participations.carts(),
            lifecycle: self.lifecycle.clone(),
            admin: self.admin.clone(),
            users: self.users.clone(),
            limits: self.rate_limits.clone(),
            refusals: self.refusals.clone(),
            bot: self.bot.clone(),
        }
    }

    fn stats_api(&self, campaigns: &CampaignService, refusals: &RefusalView) -> StatsApi {
        StatsApi {
            stats: StatsView::new(self.db.clone()),
            campaigns: campaigns.clone(),
            refusals: refusals.clone(),
            reads: ReadCache::new(self.public_read_cache),
        }
    }

    fn rewards_api(&self) -> RewardsApi {
        RewardsApi {
            rewards: RewardsView::new(self.db.clone()),
            users: self.users.clone(),
            limits: self.rate_limits.clone(),
        }
    }
}
