//! What runs beside the clients: the run's database (created, and dropped at the end unless
//! kept), its own Redis, the broker, the topic's reader, the proxy in front of MySQL, and the
//! two instances; [`start`] brings them up in that order and hands them over as the
//! [`System`] the harness reads and the [`Targets`] the nemesis hits.

use std::time::Duration;

use anyhow::Context;
use sqlx::{mysql::MySqlPoolOptions, AssertSqlSafe, MySqlPool};

use super::{
    broker,
    nemesis::Targets,
    options::{split_mysql_url, RunOptions},
    proxy, redis_server,
    service::{Instance, ServiceEnv},
    topic_tail, Prepared,
};

/// What runs beside the instances, and how to reach it.
/// How many instances of the service a run starts.
const INSTANCES: usize = 2;

/// Instance `n`'s name (from 1): its log files', and the target its faults name.
pub(super) fn instance_name(n: usize) -> String {
    format!("instance-{n}")
}

pub(super) struct System {
    pub(super) db_guard: DropDatabase,
    /// The harness's own connection to the run's database (not through the proxy).
    pub(super) pool: MySqlPool,
    pub(super) redis_url: String,
    pub(super) prefix: String,
    /// Read from the start: the mock broker evicts a partition's oldest records past ~5 MiB.
    /// Taken by [`settle_and_capture`].
    pub(super) topic_tail: Option<topic_tail::TopicTail>,
    pub(super) bases: Vec<String>,
    pub(super) admin_token: String,
    pub(super) http: reqwest::Client,
}

/// Creates the run's database; starts Redis, the broker, the proxy and the instances.
pub(super) async fn start(opts: &RunOptions, p: &Prepared) -> anyhow::Result<(System, Targets)> {
    let (server_url, mysql_addr) = split_mysql_url(&opts.database_url)?;
    // `test_` because the suite's MySQL user may create only those (scripts/test-services.sh).
    let db = format!("test_proof_{}", uuid::Uuid::now_v7().simple());
    let admin = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&server_url)
        .await
        .context("connecting to MySQL (TEST_DATABASE_URL)")?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{db}`")))
        .execute(&admin)
        .await
        .context("creating the run's database")?;
    println!("database {db}");
    let db_guard = DropDatabase {
        admin: admin.clone(),
        name: db.clone(),
        keep: opts.keep_db,
    };
    let pool = MySqlPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&format!("{server_url}/{db}"))
        .await
        .context("connecting to the run's database")?;
    let redis = redis_server::RedisServer::start(&opts.redis_server, &p.out).await?;
    let broker = broker::Broker::start(opts.partitions, &opts.topic)?;
    let topic_tail = topic_tail::TopicTail::start(&broker.bootstrap, &opts.topic)?;
    let proxy = proxy::Proxy::start(mysql_addr.clone()).await?;
    let proxied = server_url.replacen(&mysql_addr, &format!("127.0.0.1:{}", proxy.port), 1);
    let secret = || format!("{:032x}", rand::random::<u128>());
    let env = ServiceEnv {
        binary: p.binary.clone(),
        database_url: format!("{proxied}/{db}"),
        redis_url: redis.url(),
        redis_prefix: "proof:".to_owned(),
        bootstrap: broker.bootstrap.clone(),
        // 32 random bytes in hex, as the admin-token rule asks (16 could fall short of 12
        // distinct characters).
        admin_token: format!("{}{}", secret(), secret()),
        admission_secret: format!("{}{}", secret(), secret()),
        timeouts: p.timeouts.clone(),
        group_protocol: opts.group_protocol.clone(),
        bucket_lanes: opts.bucket_lanes,
        planted_bug: opts.planted_bug.clone(),
        log_dir: p.out.clone(),
    };
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let mut instances = Vec::new();
    for i in 0..INSTANCES {
        let name = instance_name(i + 1);
        let mut instance = Instance::new(&name, env.clone())?;
        instance.start(i == 0, &http).await?;
        println!("{name} ready at {}", instance.base());
        instances.push(instance);
    }
    let system = System {
        db_guard,
        pool,
        redis_url: env.redis_url.clone(),
        prefix: env.redis_prefix.clone(),
        topic_tail: Some(topic_tail),
        bases: instances.iter().map(Instance::base).collect(),
        admin_token: env.admin_token.clone(),
        http: http.clone(),
    };
    let targets = Targets {
        instances: instances.into_iter().map(tokio::sync::Mutex::new).collect(),
        redis: tokio::sync::Mutex::new(redis),
        broker: tokio::sync::Mutex::new(broker),
        proxy,
        http,
        timeouts: p.timeouts.clone(),
    };
    Ok((system, targets))
}

/// Drops the run's database once the final state is taken, unless kept. A run that fails
/// before that leaves it (its name is printed at the start).
pub(super) struct DropDatabase {
    admin: MySqlPool,
    name: String,
    keep: bool,
}

impl DropDatabase {
    pub(super) async fn drop_now(self) {
        if self.keep {
            println!("database {} kept", self.name);
            return;
        }
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{}`",
            self.name
        )))
        .execute(&self.admin)
        .await;
    }
}
