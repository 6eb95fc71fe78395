//! The consumers' side of start-up: starting the consumers `CONSUMERS` names (inside `serve`,
//! or alone as `firstcome consume`, with a small HTTP listener of their own on `serve`'s server).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    api,
    config::{DatabaseSettings, GroupProtocol, Settings},
    consumer::{self, ConsumerDeps, ConsumerHandle},
    db,
    http::{
        admin_auth::AdminTokens,
        client_ip::TrustedProxies,
        cors::Cors,
        server::{Server, ServerSettings},
        Limits,
    },
    kafka::{KafkaMode, KafkaReachability, Producers},
    shutdown::running,
    startup::{bind_and_migrate, MetricsListener},
    telemetry::metrics::Metrics,
};

/// Starts the consumers `CONSUMERS` names, on a pool of their own (a slow consumer must not take
/// the API's connections), and returns them with that pool (`None` when none runs). KIP-848
/// groups on the embedded broker unless configured.
pub(super) async fn start_consumers(
    settings: &Settings,
    bootstrap: &str,
    embedded: bool,
    producers: &Producers,
    metrics: &Arc<Metrics>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Vec<ConsumerHandle>, Option<db::Db>)> {
    let names = &settings.consumers.enabled;
    if names.is_empty() {
        return Ok((Vec::new(), None));
    }
    let db = db::pool::connect(&DatabaseSettings {
        max_connections: settings.consumers.db_max_connections,
        ..settings.database.clone()
    })
    .await?;
    metrics.watch_pool("consumers", &db);
    let deps = ConsumerDeps {
        db: db.clone(),
        metrics: metrics.clone(),
        dlq: producers.dlq.clone(),
        dlq_timeout: settings.kafka.message_timeout,
        bootstrap: bootstrap.to_string(),
        properties: settings.kafka.properties.clone(),
        topic: settings.kafka.topic.clone(),
        settings: settings.consumers.clone(),
        group_protocol: settings.consumers.group_protocol.unwrap_or(if embedded {
            GroupProtocol::Consumer
        } else {
            GroupProtocol::Classic
        }),
        fetch_wait: settings
            .consumers
            .fetch_wait
            .unwrap_or(Duration::from_millis(if embedded { 10 } else { 100 })),
        close_timeout: settings.shutdown_timeout / 2,
    };
    let consumers = names
        .iter()
        .map(|name| {
            consumer::runner::start(*name, &deps, tasks, shutdown.clone())
                .with_context(|| format!("could not start the {name} consumer (CONSUMERS)"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((consumers, Some(db)))
}

/// `firstcome consume`: only the consumers, against `KAFKA_BOOTSTRAP_SERVERS`, and a small HTTP
/// listener on `HTTP_ADDR` (`/metrics`, `/health/live`, `/health/ready`: `serve`'s server and
/// door, `api::consume`), until `shutdown` is
/// cancelled; then the listener drains and the consumers commit what they applied and leave their
/// groups, within `SHUTDOWN_TIMEOUT_MS`.
pub async fn consume(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(bootstrap) = settings.kafka.bootstrap_servers.clone() else {
        anyhow::bail!(
            "KAFKA_BOOTSTRAP_SERVERS must be set for `firstcome consume` (it reads the topic the service publishes to)"
        );
    };
    if settings.consumers.enabled.is_empty() {
        anyhow::bail!("CONSUMERS is empty: `firstcome consume` has nothing to run");
    }
    let (listener, addr) = bind_and_migrate(&settings).await?;
    let metrics_listener = MetricsListener::bind(settings.http.metrics_addr).await?;
    let reachability = KafkaReachability::new(KafkaMode::External, &bootstrap);
    let producers = Producers::new(&bootstrap, &settings.kafka, &reachability)
        .context("could not create the Kafka producers")?;
    let tasks = TaskTracker::new();
    let metrics = Arc::new(Metrics::new());
    let (consumers, db) = start_consumers(
        &settings, &bootstrap, false, &producers, &metrics, &tasks, &shutdown,
    )
    .await?;
    let db = db.context("CONSUMERS is empty")?;
    let proxies = TrustedProxies::new(&settings.rate_limits, metrics.clone());
    let app = api::consume::routes(api::consume::ConsumeSurface {
        db,
        consumers: consumers.clone(),
        metrics: metrics.clone(),
        admin: AdminTokens::from_settings(&settings, metrics.clone()),
        exposed: settings.listens_beyond_loopback(),
        limits: Limits::of(&settings.http),
        proxies: proxies.clone(),
        cors: Cors::new(&settings.cors),
    });
    // The same server as `serve`'s: the client deadlines and the connection caps.
    crate::http::server::raise_open_files_limit(settings.http.max_connections);
    let server_settings = ServerSettings::of(&settings.http);
    if let Some(m) = metrics_listener {
        let (proxies, metrics, timeout) =
            (proxies.clone(), metrics.clone(), settings.shutdown_timeout);
        m.serve(
            server_settings,
            proxies,
            metrics,
            &tasks,
            shutdown.clone(),
            timeout,
        );
    }
    let server = Server::new(listener, server_settings, proxies, metrics);
    tasks.spawn(running::track(
        "HTTP listener (consume)",
        server
            .run(app, shutdown.clone(), settings.shutdown_timeout)
            .instrument(tracing::info_span!("consume_http")),
    ));
    tracing::info!(consumers = ?settings.consumers.enabled, %bootstrap, %addr, "Consuming.");
    shutdown.cancelled().await;
    tasks.close();
    if tokio::time::timeout(settings.shutdown_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?settings.shutdown_timeout, still_running = %running::describe(),
            "Consumers did not stop before the shutdown deadline.");
    }
    drop(consumers);
    drop(producers);
    tracing::info!("Stopped.");
    Ok(())
}
