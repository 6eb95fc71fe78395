//! The second half of start-up: over what is connected and started ([`Started`]), the door in
//! front of the resources ([`Front`]), the API's resources and the [`Application`].

use std::{net::SocketAddr, sync::Arc};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    api::components::Components,
    config::Settings,
    gate::Gate,
    http::{admin_auth::AdminTokens, Front, Limits},
    live::{LiveHub, LiveSource},
    relay::RelayHandle,
    startup::{
        kafka::KafkaClients, metrics_listener::MetricsListener, resources::Resources,
        services::Services, Application, Inside,
    },
    telemetry::metrics::Metrics,
};

/// What start-up has connected and started, before the resources are assembled over it.
pub(super) struct Started {
    pub(super) listener: tokio::net::TcpListener,
    pub(super) addr: SocketAddr,
    pub(super) metrics_listener: Option<MetricsListener>,
    pub(super) db: crate::db::Db,
    pub(super) gate: Gate,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
    pub(super) metrics: Arc<Metrics>,
    pub(super) kafka: KafkaClients,
    pub(super) relay: Option<RelayHandle>,
    pub(super) consumers: Vec<crate::consumer::ConsumerHandle>,
    /// `None` with `USER_AUTH=none`.
    pub(super) verifier: Option<crate::identity::UserVerifier>,
}

impl Started {
    /// The API's resources over the services, the door in front of them, the application.
    pub(super) fn assemble(self, settings: &Settings, services: Services) -> Application {
        let inside = Inside {
            participations: services.participations.clone(),
            drift: services.drift.clone(),
            db: self.db.clone(),
            consumers: self.consumers.clone(),
        };
        let admin =
            crate::http::admin_auth::AdminTokens::from_settings(settings, self.metrics.clone());
        let front = front(settings, &self.gate, &services, &self.metrics, &admin);
        let live = LiveHub::new(
            LiveSource::new(self.db.clone(), self.gate.clone(), self.metrics.clone()),
            &settings.live,
            self.metrics.clone(),
            self.tasks.clone(),
            self.shutdown.clone(),
        );
        let apis = Resources {
            rate_limits: front.rate_limits.clone(),
            refusals: services.refusals,
            live,
            db: self.db,
            gate: self.gate,
            participations: services.participations,
            lifecycle: services.lifecycle,
            controls: services.controls,
            sync: services.sync,
            waiting_room: services.waiting_room,
            bot: services.bot,
            components: Components {
                kafka: self.kafka.reachability.clone(),
                relay: self.relay.as_ref().map(|r| r.leadership.clone()),
                relay_shards: settings.relay.shards,
            },
            consumers: self.consumers,
            metrics: self.metrics.clone(),
            admin: admin.clone(),
            users: crate::http::user_auth::UserAuthority::new(self.verifier, admin),
            identity: crate::api::health::IdentityHealth::of(settings),
            buckets_max_total: settings.database.buckets_max_total,
            public_read_cache: settings.http.public_read_cache,
            sync_path: settings.sync_path_enabled(),
        }
        .into_apis();
        Application {
            listener: self.listener,
            addr: self.addr,
            apis,
            metrics: self.metrics,
            front,
            metrics_listener: self.metrics_listener,
            shutdown: self.shutdown,
            tasks: self.tasks,
            shutdown_timeout: settings.shutdown_timeout,
            server: crate::http::server::ServerSettings::of(&settings.http),
            embedded: self.kafka.embedded,
            producers: self.kafka.producers,
            kafka_reachability: self.kafka.reachability.clone(),
            relay: self.relay,
            inside,
        }
    }
}

/// The door's settings and state: limits, who the client is, CORS, who may read `/metrics`.
fn front(
    settings: &Settings,
    gate: &Gate,
    services: &Services,
    metrics: &Arc<Metrics>,
    admin: &AdminTokens,
) -> Front {
    Front {
        limits: Limits::of(&settings.http),
        rate_limits: crate::http::rate_limit::RateLimits::new(
            gate.clone(),
            services.participations.campaigns(),
            &settings.rate_limits,
            services.refusals.clone(),
            metrics.clone(),
        ),
        proxies: crate::http::client_ip::TrustedProxies::new(
            &settings.rate_limits,
            metrics.clone(),
        ),
        cors: crate::http::cors::Cors::new(&settings.cors),
        metrics_admin: settings.listens_beyond_loopback().then(|| admin.clone()),
        admin: admin.clone(),
    }
}
