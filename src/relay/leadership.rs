//! Shard leadership: keys are split into `RELAY_SHARDS` shards (CRC32 of the key), and each shard
//! is published by the one instance holding its lease row in `relay_shard`. An instance renews
//! its leases every third of `RELAY_LEASE_MS` and takes any shard whose lease expired, so a
//! standby takes over from a dead relay within one lease.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::store::Shards;
use crate::state::Components;

/// What this instance may publish, and until when (after a failed renewal it stops claiming
/// before its leases can have passed to another instance).
#[derive(Debug, Clone)]
pub struct Leadership {
    pub shards: Shards,
    pub valid_until: Instant,
}

impl Leadership {
    pub fn none() -> Self {
        Self {
            shards: Shards::Only {
                total: 1,
                owned: vec![],
            },
            valid_until: Instant::now(),
        }
    }

    /// The shards to claim from now, if any.
    pub fn current(&self) -> Option<&Shards> {
        let owns_any = !matches!(&self.shards, Shards::Only { owned, .. } if owned.is_empty());
        (owns_any && Instant::now() < self.valid_until).then_some(&self.shards)
    }
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::MySql, sql, values)
}

pub struct ShardLeases {
    pub db: DatabaseConnection,
    pub owner: String,
    pub total: u32,
    pub lease: Duration,
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
        components: std::sync::Arc<Components>,
        stop: CancellationToken,
    ) {
        let period = self.lease / 3;
        // Stop claiming a little before the lease ends, so the next leader never overlaps us.
        let safety = self.lease / 6;
        let mut last: Option<Vec<u32>> = None;
        loop {
            let started = Instant::now();
            match self.renew().await {
                Ok(owned) => {
                    if last.as_ref() != Some(&owned) {
                        if owned.is_empty() {
                            tracing::info!(owner = %self.owner, "Relay is standby: another instance leads every shard.");
                            components.set_relay("standby".to_string());
                        } else {
                            tracing::info!(owner = %self.owner, shards = ?owned, "Relay leads shards.");
                            components.set_relay(format!(
                                "active ({} of {} shards)",
                                owned.len(),
                                self.total
                            ));
                        }
                        last = Some(owned.clone());
                    }
                    let shards = if owned.len() as u32 == self.total {
                        Shards::All
                    } else {
                        Shards::Only {
                            total: self.total,
                            owned,
                        }
                    };
                    let _ = tx.send(Leadership {
                        shards,
                        valid_until: started + self.lease - safety,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not renew relay shard leases; will stop claiming when they run out.");
                    components.set_relay("degraded (cannot renew leases)".to_string());
                    last = None;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
        }
        let _ = tx.send(Leadership::none());
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "Could not release relay shard leases; they expire on their own.");
        }
    }
}
