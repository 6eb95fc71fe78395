//! The participation side's services, over the API's pool and the gate: the outbox path, the
//! sync baseline, the lifecycle of a win, the campaigns' live controls and the drift audit,
//! sharing one campaign cache; and the background loops they run.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::outbox::Sink;
use crate::{
    bot_check::BotCheck,
    campaign::{control::CampaignControls, CampaignCache},
    config::Settings,
    db::Db,
    gate::{sold_out::SoldOutMemo, Gate},
    hooks::Hooks,
    join::{baseline::SyncParticipationService, service::JoinDeps, ParticipationService},
    kafka::Producers,
    refusal::{self, RefusalCounter},
    shutdown::running,
    telemetry::metrics::Metrics,
    upkeep::{
        drift::DriftAudit,
        markers::{self, Markers},
    },
    waiting_room::{AdmissionSigner, WaitingRoom},
    win::{expiry, lifecycle::LifecycleService},
};

pub(super) struct Services {
    pub participations: ParticipationService,
    pub sync: SyncParticipationService,
    pub lifecycle: LifecycleService,
    pub controls: CampaignControls,
    pub drift: DriftAudit,
    /// What a crash or a Redis failure kept from the gate, given to it by a loop of its own.
    pub markers: Markers,
    pub waiting_room: WaitingRoom,
    /// Refused joins counted in memory, flushed to MySQL by a background loop.
    pub refusals: Arc<RefusalCounter>,
    /// The bot check at the room's door (`BOT_CHECK`).
    pub bot: BotCheck,
}

impl Services {
    /// `wakeup` is notified after each commit that wrote an outbox row (the relay listens).
    pub fn new(
        settings: &Settings,
        db: &Db,
        gate: &Gate,
        producers: &Producers,
        wakeup: Arc<Notify>,
        metrics: &Arc<Metrics>,
        hooks: &Arc<dyn Hooks>,
    ) -> Self {
        let cache = Arc::new(CampaignCache::default());
        let sink = Sink {
            topic: settings.kafka.topic.as_str().into(),
            wakeup,
        };
        // One per instance: the joins fill it, returns and controls forget it.
        let sold_out = Arc::new(SoldOutMemo::new(settings.redis.sold_out_memo));
        let lifecycle = LifecycleService::new(
            db.clone(),
            gate.clone(),
            cache.clone(),
            (sink.clone(), sold_out.clone()),
            hooks.clone(),
        );
        let markers = Markers::new(db.clone(), gate.clone(), cache.clone());
        let drift = DriftAudit::new(db.clone(), gate.clone(), cache.clone(), metrics.clone());
        let signer = Arc::new(admission_signer(settings));
        let bot = BotCheck::new(
            &settings.bot_check,
            &signer.bot_check_key(),
            (gate.clone(), db.clone()),
            metrics.clone(),
        );
        let participations = ParticipationService::new(
            JoinDeps {
                db: db.clone(),
                gate: gate.clone(),
                campaigns: cache.clone(),
                sink: sink.clone(),
                metrics: metrics.clone(),
                signer: signer.clone(),
                bot: bot.clone(),
                hooks: hooks.clone(),
                sold_out,
            },
            settings,
        );
        let waiting_room = WaitingRoom::new(
            db.clone(),
            gate.clone(),
            cache.clone(),
            participations.loader(),
            signer,
            &settings.waiting_room,
            metrics.clone(),
        );
        let controls = CampaignControls::new(
            db.clone(),
            gate.clone(),
            cache,
            participations.sold_out_memo(),
            sink,
            metrics.clone(),
            hooks.clone(),
        );
        let sync = SyncParticipationService::new(db, &participations, producers, metrics, settings);
        Self {
            participations,
            sync,
            lifecycle,
            controls,
            drift,
            markers,
            waiting_room,
            refusals: Arc::new(RefusalCounter::new(metrics.clone())),
            bot,
        }
    }

    /// The application's own background loops: the campaigns' writers' heartbeat and mailbox,
    /// the reconciler of reservations crashed instances left open, the expiry sweeper, the marker loop (the returns and controls the gate may
    /// lack), the drift audit, the outbox gauges' refresher and the refusal counts' flush. All stop with
    /// `shutdown` (the flush writes once more first).
    pub fn spawn_background(
        &self,
        tasks: &TaskTracker,
        settings: &Settings,
        db: &Db,
        metrics: &Arc<Metrics>,
        shutdown: &CancellationToken,
    ) {
        (self.participations.writers()).spawn(tasks, &settings.redis, shutdown);
        let reconciler = self.participations.reconciler();
        tasks.spawn(running::track(
            "reservation reconciler",
            reconciler.run(settings.redis.reservation_timeout, shutdown.clone()),
        ));
        tasks.spawn(running::track(
            "expiry sweeper",
            expiry::run(self.lifecycle.clone(), db.clone(), shutdown.clone())
                .instrument(tracing::info_span!("expiry_sweeper")),
        ));
        tasks.spawn(running::track(
            "marker loop",
            markers::run(self.markers.clone(), shutdown.clone())
                .instrument(tracing::info_span!("marker_loop")),
        ));
        tasks.spawn(running::track(
            "drift audit",
            self.drift
                .clone()
                .run(shutdown.clone())
                .instrument(tracing::info_span!("drift_audit")),
        ));
        tasks.spawn(running::track(
            "outbox gauges",
            crate::relay::backlog_metrics::run(
                db.clone(),
                metrics.clone(),
                settings.metrics.outbox_refresh,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!("outbox_gauges")),
        ));
        tasks.spawn(running::track(
            "refusal counts",
            refusal::flush::run(db.clone(), self.refusals.clone(), shutdown.clone())
                .instrument(tracing::info_span!("refusal_flush")),
        ));
    }
}

/// The signer of the waiting room's admission tokens: `ADMISSION_SECRET`, or a key of this
/// process's own (said once in the log: its tokens work only here).
fn admission_signer(settings: &Settings) -> AdmissionSigner {
    match &settings.waiting_room.secret {
        Some(secret) => AdmissionSigner::new(secret.expose().as_bytes()),
        None => {
            tracing::info!(
                "ADMISSION_SECRET is unset: admission tokens are signed with a key of this process \
                 and work only on this instance; set it, the same on every instance, to run several."
            );
            AdmissionSigner::random()
        }
    }
}
