//! The gate's Redis connection (docs/design.md §8, §13): one node through a `ConnectionManager`, or a
//! Redis Cluster through redis-rs's cluster connection (`REDIS_CLUSTER=true`), plain (`redis://`)
//! or TLS (`rediss://`, rustls; `REDIS_TLS_CA_FILE` for a private CA, `REDIS_TLS_CERT_FILE` and
//! `REDIS_TLS_KEY_FILE` for a client certificate).
//!
//! Both connect lazily: the service starts (and says it is not ready) while Redis is down, and
//! both reconnect on their own. In a cluster, every key of a campaign shares the hash tag
//! `{c:<id>}` and so one slot: a script's keys live on one master, and the cluster connection
//! follows `MOVED`/`ASK` when slots move. Scripts are loaded per node: EVALSHA on a node that
//! lacks the script answers NOSCRIPT, and redis-rs then loads it (`SCRIPT LOAD` goes to every
//! master) and retries.
//!
//! Every socket has TCP keepalive and a `TCP_USER_TIMEOUT` of [`dead_peer_after`], so that a
//! Redis host that stopped answering (black-holed, failed over to another address) breaks the
//! connection within seconds, not the kernel's ~15 minutes.

use std::{fs, time::Duration};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
    io::tcp::{socket2::TcpKeepalive, TcpSettings},
    Client, ClientTlsConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture,
    TlsCertificates, Value,
};

use crate::config::RedisSettings;

/// How long unacknowledged data or silent keepalive probes may last before the kernel drops a
/// Redis connection: a few call deadlines, at least 2 s.
fn dead_peer_after(timeout: Duration) -> Duration {
    (timeout * 4).max(Duration::from_secs(2))
}

fn tcp_settings(timeout: Duration) -> TcpSettings {
    let dead = dead_peer_after(timeout);
    // The kernel counts keepalive in whole seconds (0 is refused): idle half the time, then a
    // probe a second for the other half.
    let half_s = (dead.as_secs() / 2).max(1);
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(half_s))
        .with_interval(Duration::from_secs(1))
        .with_retries(u32::try_from(half_s).unwrap_or(u32::MAX));
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(dead)
}

/// Why a Redis connection could not be set up (at startup: a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("REDIS_URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("{var}: could not read {path}: {source}")]
    File {
        var: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the Redis client could not be built: {0}")]
    Client(#[source] redis::RedisError),
}

/// A connection to Redis, one node or a cluster. Cheap to clone: both kinds multiplex and share
/// their sockets among clones.
#[derive(Clone)]
pub enum RedisConn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Builds the connection from the settings; nothing is dialled until the first command.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisSetupError> {
        let certificates = certificates(settings)?;
        let timeout = settings.timeout;
        if settings.cluster {
            let nodes = settings
                .url
                .expose()
                .split(',')
                .map(|url| url.trim().into_connection_info())
                .collect::<Result<Vec<ConnectionInfo>, _>>()
                .map_err(RedisSetupError::Url)?;
            let mut builder = ClusterClientBuilder::new(nodes)
                .tcp_settings(tcp_settings(timeout))
                .retries(2)
                .max_retry_wait(500);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(RedisSetupError::Client)?;
            let config = ClusterConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout);
            Ok(Self::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        } else {
            let info = settings
                .url
                .expose()
                .into_connection_info()
                .map_err(RedisSetupError::Url)?
                .set_tcp_settings(tcp_settings(timeout));
            let client = match certificates {
                Some(certificates) => Client::build_with_tls(info, certificates),
                None => Client::open(info),
            }
            .map_err(RedisSetupError::Client)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let conn = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(RedisSetupError::Client)?;
            Ok(Self::Node(conn))
        }
    }
}

/// The PEM files of `REDIS_TLS_*`, read once at startup; `None` without any (a `rediss://` URL
/// then trusts the system's roots).
fn certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, RedisSetupError> {
    let read = |var: &'static str, path: &std::path::Path| {
        fs::read(path).map_err(|source| RedisSetupError::File {
            var,
            path: path.display().to_string(),
            source,
        })
    };
    let tls = &settings.tls;
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|p| read("REDIS_TLS_CA_FILE", p))
        .transpose()?;
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read("REDIS_TLS_CERT_FILE", cert)?,
            client_key: read("REDIS_TLS_KEY_FILE", key)?,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
