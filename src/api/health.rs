//! Liveness and readiness. Ready means MySQL and Redis answer (pinged at most once a second,
//! `api::readiness`); Kafka (from the producers' live view), the relay's shard leadership and the
//! consumers are reported in the body as typed values, to an admin token only (the service keeps
//! accepting participations while Kafka is down: that is the point of the outbox). So is whether
//! user identity is checked (`USER_AUTH`) and whether the address is reachable from other hosts,
//! to anyone: protected mode lets `USER_AUTH=none` through there when said out loud, and this is
//! where an operator (and the console, which holds no token) sees it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::{IntoResponse, Request};
use poem_openapi::{payload::Json, ApiResponse, Enum, Object, OpenApi, SecurityScheme};

use crate::{
    api::{
        components::Components,
        readiness::{sees_details, Throttled},
        Tag,
    },
    config::Settings,
    consumer::{ConsumerHandle, ConsumerReport, ConsumerStatus},
    db::Db,
    gate::Gate,
    http::admin_auth::{AdminAuth, AdminTokens},
    kafka::{health::Reachability, KafkaMode},
    relay::leadership::LeadershipPhase,
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Live {
    pub status: String,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Check {
    pub ok: bool,
    /// Why not, with an admin token only.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

impl Check {
    /// What anyone may see of it: up or down.
    pub fn public(&self) -> Self {
        Self {
            ok: self.ok,
            error: None,
        }
    }
}

/// A readiness answer. `status`, `mysql.ok`, `redis.ok` and `identity` are anyone's; the rest
/// (the dependencies' errors, Kafka, the relay, the consumers) only an admin token's.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    pub mysql: Check,
    pub redis: Check,
    /// Whether user calls are checked, and whether other hosts can call them (not part of
    /// `status`).
    pub identity: IdentityHealth,
    /// Kafka as this instance's producers see it (not part of `status`; admin token).
    #[oai(skip_serializing_if_is_none)]
    pub kafka: Option<KafkaHealth>,
    /// This instance's relay and the shards it leads (not part of `status`; admin token).
    #[oai(skip_serializing_if_is_none)]
    pub relay: Option<RelayHealth>,
    /// The consumers running in this process (`CONSUMERS`; empty when none; admin token).
    #[oai(skip_serializing_if_is_none)]
    pub consumers: Option<Vec<ConsumerHealth>>,
}

/// `USER_AUTH` in force: `none` (the `userId` of a request is trusted: a gateway in front
/// authenticates users, or nobody does) or `jwt` (user calls carry a verified JWT). Unset counts
/// as `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum UserAuth {
    /// The `userId` of a request is trusted: any caller can act for any user.
    None,
    /// User calls carry a JWT, verified here.
    Jwt,
}

/// Who user calls act for, and who can make them: `userAuth` `none` with `exposed` is identity
/// off on an address other hosts reach (allowed when `USER_AUTH=none` is said out loud; safe only
/// behind a gateway that authenticates users).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct IdentityHealth {
    pub user_auth: UserAuth,
    /// `HTTP_ADDR` is not a loopback address: other hosts can call this service.
    pub exposed: bool,
}

impl IdentityHealth {
    /// As `settings` run the service.
    pub fn of(settings: &Settings) -> Self {
        Self {
            user_auth: if settings.user_auth.mode.verifies() {
                UserAuth::Jwt
            } else {
                UserAuth::None
            },
            exposed: settings.listens_beyond_loopback(),
        }
    }
}

/// Kafka as the producers see it: `CONNECTING` (no broker has answered since start, none was
/// reported down), `REACHABLE` (a broker connection is up), `UNREACHABLE` (every broker down,
/// participations still accepted, their events wait in the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KafkaState {
    /// Since start, no broker has answered yet and none has been reported down.
    Connecting,
    /// A producer has a broker connection up.
    Reachable,
    /// librdkafka reported every broker down, and no connection is up again yet. Participations
    /// are still accepted; their events wait in the outbox.
    Unreachable,
}

/// `EMBEDDED`: librdkafka's mock cluster in process (`KAFKA_BOOTSTRAP_SERVERS` unset);
/// `EXTERNAL`: `KAFKA_BOOTSTRAP_SERVERS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KafkaKind {
    /// librdkafka's mock cluster in process (`KAFKA_BOOTSTRAP_SERVERS` unset).
    Embedded,
    /// `KAFKA_BOOTSTRAP_SERVERS`.
    External,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct KafkaHealth {
    pub state: KafkaState,
    /// When `state` last changed (the start, while `CONNECTING`).
    pub since: DateTime<Utc>,
    pub kind: KafkaKind,
    pub bootstrap_servers: String,
    /// librdkafka's last error, while not reachable.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
}

impl From<&Components> for KafkaHealth {
    fn from(c: &Components) -> Self {
        let k = c.kafka.snapshot();
        Self {
            state: match k.state {
                Reachability::Connecting => KafkaState::Connecting,
                Reachability::Reachable => KafkaState::Reachable,
                Reachability::Unreachable => KafkaState::Unreachable,
            },
            since: k.since,
            kind: match k.mode {
                KafkaMode::Embedded => KafkaKind::Embedded,
                KafkaMode::External => KafkaKind::External,
            },
            bootstrap_servers: k.bootstrap_servers,
            last_error: k.last_error,
        }
    }
}

/// This instance's relay: `DISABLED` (`RELAY_ENABLED=false`), `STARTING` (before its first lease
/// renewal), `LEADING` (publishes the shards in `shardsLed`), `STANDBY` (leads no shard: others
/// lead them all, or its leases could not be renewed; takes over a shard whose lease expires),
/// `STOPPED` (shut down, shards given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RelayState {
    /// `RELAY_ENABLED=false`: this instance publishes nothing.
    Disabled,
    /// Before its first lease renewal.
    Starting,
    /// Leads at least one shard and publishes its rows.
    Leading,
    /// Leads no shard: other instances lead them all, or its leases could not be renewed
    /// (`renewError`). Takes over a shard whose lease expires.
    Standby,
    /// Stopped (shutting down); its shards were given back.
    Stopped,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RelayHealth {
    pub enabled: bool,
    pub state: RelayState,
    /// The shards this instance publishes now.
    pub shards_led: Vec<u32>,
    pub shards_led_count: u32,
    /// `RELAY_SHARDS`.
    pub total_shards: u32,
    /// This instance's name in the lease rows.
    #[oai(skip_serializing_if_is_none)]
    pub owner: Option<String>,
    /// Why the last lease renewal failed, until one succeeds.
    #[oai(skip_serializing_if_is_none)]
    pub renew_error: Option<String>,
}

impl From<&Components> for RelayHealth {
    fn from(c: &Components) -> Self {
        let Some(relay) = &c.relay else {
            return Self {
                enabled: false,
                state: RelayState::Disabled,
                shards_led: Vec::new(),
                shards_led_count: 0,
                total_shards: c.relay_shards,
                owner: None,
                renew_error: None,
            };
        };
        let r = relay.snapshot();
        let state = match r.phase {
            LeadershipPhase::Starting => RelayState::Starting,
            LeadershipPhase::Stopped => RelayState::Stopped,
            LeadershipPhase::Running if r.shards.is_empty() => RelayState::Standby,
            LeadershipPhase::Running => RelayState::Leading,
        };
        Self {
            enabled: true,
            state,
            shards_led_count: r.shards.len() as u32,
            shards_led: r.shards,
            total_shards: r.total,
            owner: Some(r.owner),
            renew_error: r.renew_error,
        }
    }
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumerState {
    /// Joining its group.
    Starting,
    /// Applying events, or idle with none to apply.
    Running,
    /// Its last transaction failed (e.g. MySQL down); the same batch is being retried.
    Retrying,
    Stopped,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PartitionLag {
    pub partition: i32,
    /// Messages not yet applied.
    pub lag: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConsumerHealth {
    pub name: String,
    pub state: ConsumerState,
    /// Counters of this process since it started.
    pub applied: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub retries: u64,
    /// Per assigned partition, refreshed every second.
    pub lag: Vec<PartitionLag>,
}

impl From<&ConsumerHandle> for ConsumerHealth {
    fn from(c: &ConsumerHandle) -> Self {
        let r = &c.report;
        Self {
            name: r.name.as_str().into(),
            state: match r.status() {
                ConsumerStatus::Starting => ConsumerState::Starting,
                ConsumerStatus::Running => ConsumerState::Running,
                ConsumerStatus::Retrying => ConsumerState::Retrying,
                ConsumerStatus::Stopped => ConsumerState::Stopped,
            },
            applied: ConsumerReport::get(&r.applied),
            duplicates: ConsumerReport::get(&r.duplicates),
            dead_lettered: ConsumerReport::get(&r.dead_lettered),
            retries: ConsumerReport::get(&r.retries),
            lag: r
                .lag()
                .into_iter()
                .map(|(partition, lag)| PartitionLag { partition, lag })
                .collect(),
        }
    }
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    #[oai(status = 200)]
    Ready(Json<Ready>),
    #[oai(status = 503)]
    NotReady(Json<Ready>),
}

/// An admin token shows the details of `/health/ready`; nothing shows the status alone.
#[derive(SecurityScheme)]
pub enum HealthViewer {
    AdminAuth(AdminAuth),
    #[oai(fallback)]
    NoToken,
}

/// How long a readiness probe waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The health resource: what readiness probes, and what it reports.
pub struct HealthApi {
    pub db: Db,
    pub gate: Gate,
    pub components: Components,
    /// The consumers running in this process (`CONSUMERS`).
    pub consumers: Vec<ConsumerHandle>,
    /// `USER_AUTH` and `HTTP_ADDR`, as reported.
    pub identity: IdentityHealth,
    /// Who sees the details.
    pub admin: AdminTokens,
    /// The last pings of MySQL and Redis, at most one pair a second.
    pub pings: Throttled<(Check, Check)>,
}

#[OpenApi(prefix_path = "/health", tag = "Tag::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/live", method = "get")]
    async fn live(&self) -> Json<Live> {
        Json(Live {
            status: "ok".into(),
        })
    }

    /// MySQL and Redis are reachable (503 otherwise), as pinged at most once a second. Anyone
    /// sees the status, each dependency's `ok` and `identity` (`userAuth` `none` means any caller
    /// can act for any user; `exposed`: from other hosts too). An admin token also shows the
    /// dependencies' errors, Kafka's live state, the relay's shard leadership and the consumers,
    /// which are reported, not required: wins are accepted while Kafka is down. Any other
    /// `Authorization` is 401.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self, _viewer: HealthViewer, http: &Request) -> poem::Result<ReadyResponse> {
        // Answered as every refusal is (401, or 429 from the admin door), but left out of this
        // operation's document: its 503 is the probe's "not ready", which the error's 503
        // (SERVICE_BUSY) would declare a second time, and a YAML mapping holds one key once.
        let details = sees_details(&self.admin, http)
            .map_err(|refused| poem::Error::from_response(refused.into_response()))?;
        let (mysql, redis) = self
            .pings
            .get(|| async { tokio::join!(check(self.db.ping()), check(self.gate.ping())) })
            .await;
        let ok = mysql.ok && redis.ok;
        let body = if details {
            Ready {
                status: status(ok),
                mysql,
                redis,
                identity: self.identity.clone(),
                kafka: Some((&self.components).into()),
                relay: Some((&self.components).into()),
                consumers: Some(self.consumers.iter().map(Into::into).collect()),
            }
        } else {
            Ready {
                status: status(ok),
                mysql: mysql.public(),
                redis: redis.public(),
                identity: self.identity.clone(),
                kafka: None,
                relay: None,
                consumers: None,
            }
        };
        Ok(if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        })
    }
}

/// `ready` or `not_ready`.
pub(crate) fn status(ok: bool) -> String {
    if ok { "ready" } else { "not_ready" }.into()
}

/// Runs one dependency probe with the readiness deadline.
pub(crate) async fn check<T, E: std::fmt::Display>(
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(_)) => Check {
            ok: true,
            error: None,
        },
        Ok(Err(e)) => Check {
            ok: false,
            error: Some(e.to_string()),
        },
        Err(_) => Check {
            ok: false,
            error: Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        },
    }
}
