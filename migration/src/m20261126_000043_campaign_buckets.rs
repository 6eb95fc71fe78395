//! Buckets (docs/design.md §21): a campaign's stock split over several MySQL rows so that its
//! wins do not all queue for one row's lock.
//! - `campaign.buckets`: how many (1 = today's campaign, which keeps its stock in
//!   `campaign.remaining_stock` and has no `campaign_bucket` rows). For a bucketed campaign
//!   `campaign.remaining_stock` is the undealt pool.
//! - `campaign_bucket`: one row per bucket, the guard a win decrements. It carries the
//!   campaign's pause and close too (a control writes them in its transaction), so a win reads
//!   and locks no campaign-wide row, and the bucket's highest FCFS sequence (its gate hands out
//!   its own), which a rebuild of the bucket's gate starts from.
//! - `participation.bucket`: the win's bucket (its user's home bucket); 0 when unbucketed. So is
//!   `gate_return.bucket`: a closed win's units go back to its bucket's gate.
//! - `bucket_transfer`: every move of units into a bucket (from the pool, or from a sibling);
//!   `take_id` names the units a sibling's gate set aside first, so a take whose transfer never
//!   committed can be told apart and given back.
//! - `gate_transfer`: units MySQL moved into a bucket that its gate may not have yet; written with
//!   the transfer, deleted once the gate has them (the same durable path as `gate_return`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 6] = [
    "ALTER TABLE campaign ADD COLUMN buckets SMALLINT NOT NULL DEFAULT 1",
    "ALTER TABLE participation ADD COLUMN bucket SMALLINT NOT NULL DEFAULT 0",
    "ALTER TABLE gate_return ADD COLUMN bucket SMALLINT NOT NULL DEFAULT 0",
    "CREATE TABLE campaign_bucket (campaign_id BIGINT NOT NULL, bucket SMALLINT NOT NULL, \
     remaining_stock BIGINT NOT NULL, accepted_count BIGINT NOT NULL DEFAULT 0, \
     units_in BIGINT NOT NULL DEFAULT 0, units_out BIGINT NOT NULL DEFAULT 0, \
     max_sequence BIGINT NOT NULL DEFAULT 0, \
     paused BOOLEAN NOT NULL DEFAULT FALSE, closed BOOLEAN NOT NULL DEFAULT FALSE, \
     PRIMARY KEY (campaign_id, bucket)) ENGINE=InnoDB",
    "CREATE TABLE bucket_transfer (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     campaign_id BIGINT NOT NULL, from_bucket SMALLINT NULL, to_bucket SMALLINT NULL, \
     units BIGINT NOT NULL, take_id BINARY(16) NULL, created_at DATETIME(6) NOT NULL, \
     UNIQUE KEY ux_bucket_transfer_take (take_id), \
     KEY ix_bucket_transfer_campaign (campaign_id, id)) ENGINE=InnoDB",
    "CREATE TABLE gate_transfer (transfer_id BIGINT NOT NULL PRIMARY KEY, \
     campaign_id BIGINT NOT NULL, bucket SMALLINT NOT NULL, units BIGINT NOT NULL, \
     created_at DATETIME(6) NOT NULL, KEY ix_gate_transfer_created (created_at)) ENGINE=InnoDB",
];

const DOWN: [&str; 6] = [
    "DROP TABLE gate_transfer",
    "DROP TABLE bucket_transfer",
    "DROP TABLE campaign_bucket",
    "ALTER TABLE gate_return DROP COLUMN bucket",
    "ALTER TABLE participation DROP COLUMN bucket",
    "ALTER TABLE campaign DROP COLUMN buckets",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(manager, &UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(manager, &DOWN).await
    }
}
