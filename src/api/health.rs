//! Liveness and readiness. Ready means MySQL and Redis answer; Kafka and the relay are reported
//! in the body (the service keeps accepting participations while Kafka is down: that is the
//! point of the outbox).

use std::{sync::Arc, time::Duration};

use poem::web::Data;
use poem_openapi::{payload::Json, ApiResponse, Enum, Object, OpenApi};
use sea_orm::ConnectionTrait;

use super::Tag;
use crate::{
    consumer::{ConsumerHandle, ConsumerReport, ConsumerStatus},
    state::AppState,
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Live {
    pub status: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Check {
    pub ok: bool,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    pub mysql: Check,
    pub redis: Check,
    /// Kafka producer state, e.g. `connected`, `embedded (127.0.0.1:port)`, `disabled`.
    pub kafka: String,
    /// Relay state, e.g. `running`, `disabled`.
    pub relay: String,
    /// The consumers running in this process (`CONSUMERS`; empty when none).
    pub consumers: Vec<ConsumerHealth>,
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

/// How long a readiness probe waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HealthApi;

#[OpenApi(prefix_path = "/health", tag = "Tag::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/live", method = "get")]
    async fn live(&self) -> Json<Live> {
        Json(Live {
            status: "ok".into(),
        })
    }

    /// MySQL and Redis are reachable (Kafka and relay state reported, not required).
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self, state: Data<&Arc<AppState>>) -> ReadyResponse {
        let mysql = check(state.db.execute_unprepared("SELECT 1")).await;
        let redis = check(state.gate.ping()).await;
        let components = state.components.snapshot();
        let ok = mysql.ok && redis.ok;
        let body = Ready {
            status: if ok { "ready" } else { "not_ready" }.into(),
            mysql,
            redis,
            kafka: components.kafka,
            relay: components.relay,
            consumers: state.consumers.iter().map(Into::into).collect(),
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}

async fn check<T, E: std::fmt::Display>(
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
