//! Building and running the application: connect, migrate, bind, serve, shut down.
//!
//! `Application::build` binds the listener first, so tests can ask for port 0 and read the port
//! back. Shutdown order, in one place (`run_until_stopped`), all within one deadline,
//! `SHUTDOWN_TIMEOUT_MS` from the stop signal:
//! 1. the stop signal (SIGTERM / Ctrl-C, or the token in tests) cancels the root token;
//! 2. the HTTP server stops accepting and waits for in-flight requests;
//! 3. background tasks see the same token: the relay stops claiming, waits for its deliveries
//!    (at most half the timeout, then purges), writes its marks and releases its leases; the
//!    reconciler, the expiry sweeper, the drift audit and the outbox gauges' refresher stop;
//!    each consumer finishes (or abandons, if it is retrying) its batch, commits the offsets of
//!    what it applied and leaves its group;
//! 4. whatever is left when the deadline passes is abandoned (leases expire on their own) and
//!    named in the log; connections close when the state is dropped; Kafka clients close on
//!    threads of their own (`shutdown::off_runtime`).
//!
//! No step may block an async worker (a blocking client call would stop the timers that end
//! every wait); and should one ever do, the watchdog of `shutdown::watchdog`, a thread outside the
//! runtime, ends the process shortly after the deadline.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

mod assemble;
mod consumers;
mod kafka;
mod metrics_listener;
mod resources;
#[cfg(feature = "test-hooks")]
mod seam;
mod services;
pub mod testing;

use assemble::Started;
pub use consumers::consume;
use consumers::start_consumers;
use kafka::KafkaClients;
use metrics_listener::MetricsListener;
use services::Services;

use crate::{
    api::{self, Apis},
    config::{DatabaseSettings, Settings},
    db,
    gate::Gate,
    hooks::Hooks,
    http::Front,
    kafka::{EmbeddedBroker, Producers},
    relay::{RelayBuilder, RelayDeps, RelayHandle},
    shutdown::{off_runtime, running},
    telemetry::metrics::Metrics,
};

pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    /// The API's resources, each holding its services.
    apis: Apis,
    metrics: Arc<Metrics>,
    /// What the door in front of the resources is given: limits, client address, CORS, who may
    /// read `/metrics`.
    front: Front,
    /// `METRICS_ADDR`, bound.
    metrics_listener: Option<MetricsListener>,
    /// Root of every background task's lifetime; cancelled once, on shutdown.
    shutdown: CancellationToken,
    /// Background tasks, awaited (bounded) after the HTTP server has drained.
    tasks: TaskTracker,
    shutdown_timeout: Duration,
    /// The client deadlines and connection caps of the HTTP server (`HTTP_HEADER_TIMEOUT_MS`,
    /// `HTTP_IDLE_TIMEOUT_MS`, `HTTP_MAX_CONNECTIONS`, `HTTP_MAX_CONNECTIONS_PER_CLIENT`).
    server: crate::http::server::ServerSettings,
    /// The in-process Kafka broker when `KAFKA_BOOTSTRAP_SERVERS` is unset; it must outlive the
    /// producers, so it is dropped last (after `run_until_stopped` returns).
    embedded: Option<Arc<EmbeddedBroker>>,
    producers: Producers,
    /// Told when the service stops, so that the brokers going away is not logged as an outage.
    kafka_reachability: Arc<crate::kafka::health::KafkaReachability>,
    relay: Option<RelayHandle>,
    /// The services by name, for what the tests read inside (`startup::testing`).
    inside: Inside,
}

/// What `startup::testing` reads of a built application, by name.
#[derive(Clone)]
struct Inside {
    participations: crate::join::ParticipationService,
    drift: crate::upkeep::drift::DriftAudit,
    db: crate::db::Db,
    consumers: Vec<crate::consumer::ConsumerHandle>,
}

/// Applies pending migrations on a connection of their own (no statement deadline: DDL may run
/// long), closed afterwards.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let db = db::pool::connect_for_migrations(settings).await?;
    Migrator::up(&db, None)
        .await
        .context("could not apply migrations")?;
    db.close().await.ok();
    Ok(())
}

/// Binds `HTTP_ADDR` first (tests ask for port 0 and read the port back; a taken port fails
/// before anything else starts), then applies migrations when `MIGRATE_ON_START`.
async fn bind_and_migrate(
    settings: &Settings,
) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(settings.http.addr)
        .await
        .with_context(|| format!("could not bind HTTP_ADDR={}", settings.http.addr))?;
    let addr = listener.local_addr()?;
    if settings.migrate_on_start {
        migrate(&settings.database).await?;
    }
    Ok((listener, addr))
}

/// The relay on a pool of its own (API load on a hot campaign must not starve its claims), or
/// `None` with `RELAY_ENABLED=false`.
async fn start_relay(
    settings: &Settings,
    hooks: Arc<dyn Hooks>,
    kafka: &KafkaClients,
    wakeup: &Arc<Notify>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<RelayHandle>> {
    if !settings.relay.enabled {
        return Ok(None);
    }
    let relay_db = db::pool::connect(&DatabaseSettings {
        max_connections: settings.relay.db_max_connections,
        ..settings.database.clone()
    })
    .await?;
    metrics.watch_pool("relay", &relay_db);
    let deps = RelayDeps {
        db: relay_db,
        producers: kafka.producers.clone(),
        wakeup: wakeup.clone(),
        metrics: metrics.clone(),
        drain_timeout: settings.shutdown_timeout / 2,
        stuck_after: settings.kafka.message_timeout,
    };
    let handle = RelayBuilder::new(&settings.relay, deps)
        .hooks(hooks)
        .start(shutdown)
        .await
        .context("could not start the outbox relay")?;
    Ok(Some(handle))
}

/// Builds an [`Application`]: `Application::builder(settings).build()`, with
/// [`ApplicationBuilder::hooks`] for a test that steps into it.
pub struct ApplicationBuilder {
    settings: Settings,
    hooks: Arc<dyn Hooks>,
}

impl ApplicationBuilder {
    /// The one test seam (`crate::hooks`): the points where a test steps into the application,
    /// handed to every service that has one (none by default).
    pub fn hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Start-up in order: bind and migrate, connect MySQL and Redis, Kafka (the embedded broker
    /// when none is configured) and its producers, the relay, the consumers, the participation
    /// services and their background tasks, the API's resources. Nothing is served until
    /// [`Application::run_until_stopped`].
    pub async fn build(self) -> anyhow::Result<Application> {
        let settings = self.settings;
        settings.warn_if_identity_is_off();
        let (listener, addr) = bind_and_migrate(&settings).await?;
        let metrics_listener = MetricsListener::bind(settings.http.metrics_addr).await?;
        let db = db::pool::connect(&settings.database).await?;
        let gate = Gate::new(&settings.redis).context("could not set up the Redis connection")?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        metrics.watch_pool("api", &db);
        gate.export_batches(
            metrics.gate_reserve_calls.clone(),
            metrics.gate_reserve_batched.clone(),
        );

        let kafka = KafkaClients::connect(&settings)?;
        let wakeup = Arc::new(Notify::new());
        let hooks = self.hooks;
        let relay = start_relay(
            &settings,
            hooks.clone(),
            &kafka,
            &wakeup,
            &metrics,
            &shutdown,
        )
        .await?;
        let embedded = kafka.embedded.is_some();
        let (consumers, _) = start_consumers(
            &settings,
            &kafka.bootstrap,
            embedded,
            &kafka.producers,
            &metrics,
            &tasks,
            &shutdown,
        )
        .await?;

        let verifier =
            crate::identity::UserVerifier::start(&settings.user_auth, shutdown.clone(), &tasks)
                .await
                .context("could not set up USER_AUTH")?;
        let services = Services::new(
            &settings,
            &db,
            &gate,
            &kafka.producers,
            wakeup,
            &metrics,
            &hooks,
        );
        services.spawn_background(&tasks, &settings, &db, &metrics, &shutdown);
        let started = Started {
            listener,
            addr,
            metrics_listener,
            db,
            gate,
            shutdown,
            tasks,
            metrics,
            kafka,
            relay,
            consumers,
            verifier,
        };
        Ok(started.assemble(&settings, services))
    }
}

/// The hooks `firstcome serve` runs with: none; in a `test-hooks` build (what the suite and the
/// proof run), those its environment arms (`startup::seam`: crash points, the planted bug).
pub fn process_hooks() -> Arc<dyn Hooks> {
    #[cfg(feature = "test-hooks")]
    return seam::from_env();
    #[cfg(not(feature = "test-hooks"))]
    crate::hooks::none()
}

impl Application {
    pub fn builder(settings: Settings) -> ApplicationBuilder {
        ApplicationBuilder {
            settings,
            hooks: crate::hooks::none(),
        }
    }

    /// [`Application::builder`] with nothing injected.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::builder(settings).build().await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The port of `METRICS_ADDR`, when one is configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener.as_ref().map(|m| m.addr().port())
    }

    /// Cancelling this token stops the application as SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            addr,
            apis,
            metrics,
            front,
            metrics_listener,
            shutdown,
            tasks,
            shutdown_timeout,
            server,
            embedded,
            producers,
            kafka_reachability,
            relay,
            ..
        } = self;
        crate::http::server::raise_open_files_limit(server.max_connections);
        tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "Listening.");

        // One deadline for the whole shutdown, counted from the stop signal.
        let signalled = {
            let shutdown = shutdown.clone();
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    shutdown.cancelled().await;
                    tokio::time::Instant::now()
                },
                tracing::info_span!("shutdown_clock"),
            ))
        };
        if let Some(listener) = metrics_listener {
            let (proxies, metrics) = (front.proxies.clone(), metrics.clone());
            let shutdown = shutdown.clone();
            listener.serve(server, proxies, metrics, &tasks, shutdown, shutdown_timeout);
        }
        let http = crate::http::server::Server::new(
            listener,
            server,
            front.proxies.clone(),
            metrics.clone(),
        );
        let app = api::routes(apis, metrics, front);
        running::track(
            "HTTP server (in-flight requests)",
            http.run(app, shutdown.clone(), shutdown_timeout),
        )
        .await;
        shutdown.cancel();
        let deadline = signalled
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now())
            + shutdown_timeout;
        tracing::info!("HTTP server stopped; waiting for background tasks.");

        tasks.close();
        let background = async {
            if let Some(relay) = &relay {
                relay.wait().await;
            }
            tasks.wait().await;
        };
        if tokio::time::timeout_at(deadline, background).await.is_err() {
            tracing::warn!(timeout = ?shutdown_timeout, still_running = %running::describe(),
                "Background tasks did not finish before the shutdown deadline; exiting without them. \
                 Rows Kafka did not acknowledge stay in the outbox (their leases expire).");
        }
        // Closing Kafka clients blocks (purge, flush, joining librdkafka's threads): the
        // producers close on threads of their own when their last handle goes, the broker too.
        // Whatever they report from here on is the stop, not an outage.
        kafka_reachability.closing();
        drop(producers);
        if let Some(embedded) = embedded {
            off_runtime::drop_detached("embedded Kafka broker: close", embedded);
        }
        tracing::info!("Stopped.");
        Ok(())
    }
}
