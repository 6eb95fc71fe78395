//! Shard leadership: keys are split into `RELAY_SHARDS` shards (CRC32 of the key), and each shard
//! is published by the one instance holding its lease row in `relay_shard`. An instance renews
//! its leases every third of `RELAY_LEASE_MS`, takes any shard whose lease expired (so a standby
//! takes over from a dead or paused relay within one lease). Rows are not leased one by one: the
//! shard lease fences every write a relay makes of a row's outcome (`store::back_off`).
//!
//! Fencing (docs/design.md §7) has four parts: the claim reads the led shards inside its own
//! transaction (`store::claim`), and so does every backoff or DEAD mark (`store::back_off`); a
//! worker checks [`Leadership::leads`] before each send and drops rows of a shard it no longer
//! leads; and [`Leadership::valid_until`] ends a little before the lease in MySQL does, so a paused instance that wakes up after its lease finds its
//! leadership already over, before it can send anything.
//!
//! [`LeadershipStatus`] reports that same leadership to `/health/ready` and the admin summary,
//! read from the watch channel the claim loop and the workers obey.

use crate::db::sql::stmt;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbErr, Value};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{db::Db, relay::store::LedShards};

/// What this instance may publish, and until when (after a failed renewal it stops sending
/// before its leases can have passed to another instance).
#[derive(Debug, Clone)]
pub struct Leadership {
    pub led: LedShards,
    pub valid_until: Instant,
}

impl Leadership {
    pub fn none() -> Self {
        Self {
            led: LedShards {
                total: 1,
                shards: vec![],
            },
            valid_until: Instant::now(),
        }
    }

    /// Whether rows of `shard` may be sent now.
    pub fn leads(&self, shard: u32) -> bool {
        Instant::now() < self.valid_until && self.led.shards.contains(&shard)
    }

    /// Whether any shard is led now.
    pub fn leads_any(&self) -> bool {
        Instant::now() < self.valid_until && !self.led.shards.is_empty()
    }
}

/// Where the leadership loop is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipPhase {
    /// Before the first renewal.
    Starting,
    /// Renewing (whether it leads shards or none).
    Running,
    /// The relay stopped and gave its shards back.
    Stopped,
}

/// One reading of [`LeadershipStatus`].
#[derive(Debug, Clone)]
pub struct LeadershipSnapshot {
    pub owner: String,
    pub total: u32,
    pub phase: LeadershipPhase,
    /// The shards this instance may publish now (none once its leadership ran out).
    pub shards: Vec<u32>,
    /// Why the last renewal failed, until one succeeds.
    pub renew_error: Option<String>,
}

/// This instance's shard leadership, live: the shards come from the same channel the claim
/// loop and the workers read, checked against its validity, so a lease that ran out without
/// renewal shows as no shard led at once.
pub struct LeadershipStatus {
    owner: String,
    total: u32,
    leadership: watch::Receiver<Leadership>,
    /// Written by the leadership loop.
    report: Mutex<(LeadershipPhase, Option<String>)>,
}

impl LeadershipStatus {
    pub fn new(owner: &str, total: u32, leadership: watch::Receiver<Leadership>) -> Self {
        Self {
            owner: owner.into(),
            total,
            leadership,
            report: Mutex::new((LeadershipPhase::Starting, None)),
        }
    }

    pub fn snapshot(&self) -> LeadershipSnapshot {
        let (phase, renew_error) = self
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let shards = {
            let now = self.leadership.borrow();
            if Instant::now() < now.valid_until {
                now.led.shards.clone()
            } else {
                Vec::new()
            }
        };
        LeadershipSnapshot {
            owner: self.owner.clone(),
            total: self.total,
            phase,
            shards,
            renew_error,
        }
    }

    fn set(&self, phase: LeadershipPhase, renew_error: Option<String>) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = (phase, renew_error);
    }
}

pub struct ShardLeases {
    pub db: Db,
    pub owner: String,
    pub total: u32,
    pub lease: Duration,
    /// A test pauses renewals through it, as it pauses the claim loop.
    /// Test hooks (none in production).
    pub hooks: std::sync::Arc<dyn crate::hooks::Hooks>,
    /// `firstcome_relay_shards_led`: the shards held at the last renewal; 0 after a failed one
    /// (the leases may be passing to another instance) and once released.
    pub shards_led: prometheus_client::metrics::gauge::Gauge,
}

impl ShardLeases {
    /// Creates the shard rows that do not exist yet.
    pub async fn ensure_rows(&self) -> Result<(), DbErr> {
        let values: Vec<Value> = (0..self.total).map(Value::from).collect();
        let rows = vec!["(?)"; self.total as usize].join(", ");
        self.db
            .execute_raw(stmt(
                &format!("INSERT IGNORE INTO relay_shard (shard) VALUES {rows}"),
                values,
            ))
            .await?;
        Ok(())
    }

    /// Renews held leases, takes expired ones, and returns the shards held now.
    pub async fn renew(&self) -> Result<Vec<u32>, DbErr> {
        let lease = i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX);
        self.db
            .execute_raw(stmt(
                "UPDATE relay_shard SET owner = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE shard < ? AND (owner = ? OR owner IS NULL OR lease_until IS NULL \
                 OR lease_until < UTC_TIMESTAMP(6))",
                vec![self.owner.clone().into(), lease.into(), self.total.into(), self.owner.clone().into()],
            ))
            .await?;
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT shard FROM relay_shard WHERE owner = ? AND shard < ? AND lease_until > UTC_TIMESTAMP(6) \
                 ORDER BY shard",
                vec![self.owner.clone().into(), self.total.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| r.try_get_by_index::<i32>(0).map(|s| s as u32))
            .collect()
    }

    pub async fn release(&self) -> Result<(), DbErr> {
        self.db
            .execute_raw(stmt(
                "UPDATE relay_shard SET owner = NULL, lease_until = NULL WHERE owner = ?",
                vec![self.owner.clone().into()],
            ))
            .await?;
        Ok(())
    }

    /// Renews until cancelled, publishing what this instance leads; releases on the way out.
    pub async fn run(
        self,
        tx: watch::Sender<Leadership>,
        status: Arc<LeadershipStatus>,
        stop: CancellationToken,
    ) {
        let period = self.lease / 3;
        // Stop claiming a little before the lease ends, so the next leader never overlaps us.
        let safety = self.lease / 6;
        let mut last: Option<Vec<u32>> = None;
        loop {
            self.hooks.before_renewal().await;
            let started = Instant::now();
            match self.renew().await {
                Ok(owned) => {
                    self.shards_led
                        .set(i64::try_from(owned.len()).unwrap_or(i64::MAX));
                    if last.as_ref() != Some(&owned) {
                        if owned.is_empty() {
                            tracing::info!(owner = %self.owner, "Relay is standby: another instance leads every shard.");
                        } else {
                            tracing::info!(owner = %self.owner, shards = ?owned, "Relay leads shards.");
                        }
                        last = Some(owned.clone());
                    }
                    let led = LedShards {
                        total: self.total,
                        shards: owned,
                    };
                    let _ = tx.send(Leadership {
                        led,
                        valid_until: started + self.lease - safety,
                    });
                    status.set(LeadershipPhase::Running, None);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not renew relay shard leases; will stop claiming when they run out.");
                    status.set(LeadershipPhase::Running, Some(e.to_string()));
                    self.shards_led.set(0);
                    last = None;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
        }
        // Stop sending at once: the shards are about to be released.
        let _ = tx.send(Leadership::none());
        status.set(LeadershipPhase::Stopped, None);
        self.shards_led.set(0);
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "Could not release relay shard leases; they expire on their own.");
        }
    }
}
