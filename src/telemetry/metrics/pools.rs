//! `firstcome_db_pool_connections{pool, state}`: connections in use and idle in each MySQL pool of
//! the process, and the pool's size limit (`state="max"`, for saturation alerts) (`api`, `relay`, `consumers`), read from the pools when `/metrics` is scraped, so
//! the value is never older than the scrape.

use std::sync::Mutex;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{gauge::ConstGauge, MetricType},
};
use sea_orm::sqlx::MySqlPool;

/// The family's name (in [`crate::telemetry::metrics::NAMES`] too).
pub(super) const NAME: &str = "firstcome_db_pool_connections";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

/// The pools to report; each is added once, by whoever opened it ([`crate::telemetry::metrics::Metrics::watch_pool`]).
#[derive(Debug, Default)]
pub(super) struct PoolGauges {
    pools: Mutex<Vec<(&'static str, MySqlPool)>>,
}

impl PoolGauges {
    pub(super) fn watch(&self, name: &'static str, pool: MySqlPool) {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, pool));
    }
}

impl Collector for PoolGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Cloning a pool is an Arc clone; the lock is not held while encoding.
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut family = encoder.encode_descriptor(
            NAME,
            "MySQL pool connections by pool (api, relay, consumers) and state (in_use, idle, max: the pool's limit).",
            None,
            MetricType::Gauge,
        )?;
        for (pool, conn) in pools {
            // Two reads of a moving pool: clamp so that in_use never shows negative.
            let idle = i64::try_from(conn.num_idle()).unwrap_or(i64::MAX);
            let in_use = (i64::from(conn.size()) - idle).max(0);
            let max = i64::from(conn.options().get_max_connections());
            for (state, value) in [("in_use", in_use), ("idle", idle), ("max", max)] {
                ConstGauge::new(value)
                    .encode(family.encode_family(&PoolLabels { pool, state })?)?;
            }
        }
        Ok(())
    }
}
