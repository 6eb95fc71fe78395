//! Schema of firstcome, one DDL change per migration (docs/design.md §5).
//!
//! The SQL is written for MySQL 8.0+ and MariaDB 10.6+. Timestamps are `DATETIME(6)` in UTC: the
//! service always writes UTC and compares with UTC values it passes in, never with the server's
//! clock, so the server's time zone does not matter.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_campaign;
mod m20261121_000002_create_participation;
mod m20261121_000003_create_outbox_event;
mod m20261121_000004_index_outbox_claim;
mod m20261121_000005_index_outbox_aggregate;
mod m20261121_000006_create_relay_shard;
mod m20261121_000007_index_outbox_backoff;
mod m20261121_000008_index_outbox_lease;
mod m20261121_000009_index_outbox_lease_owner;
mod m20261121_000010_index_participation_campaign_id;
mod m20261121_000011_campaign_accepted_count;
mod m20261121_000012_campaign_reward_points;
mod m20261121_000013_create_consumer_inbox;
mod m20261121_000014_create_campaign_stats;
mod m20261121_000015_create_campaign_daily_stats;
mod m20261121_000016_create_reward_account;
mod m20261121_000017_create_reward_grant;
mod m20261122_000018_participation_idempotency_key;
mod m20261122_000019_campaign_confirm_window;
mod m20261122_000020_participation_lifecycle;
mod m20261122_000021_index_participation_hold;
mod m20261122_000022_create_gate_return;
mod m20261122_000023_campaign_stats_lifecycle;
mod m20261122_000024_campaign_stats_backfill;
mod m20261123_000025_campaign_controls;
mod m20261123_000026_create_campaign_control;
mod m20261123_000027_create_gate_control;
mod m20261123_000028_campaign_stats_controls;
mod m20261123_000029_drop_outbox_status_id;
mod m20261123_000030_campaign_admission;
mod m20261123_000031_create_campaign_refusal;
mod m20261123_000032_daily_stats_lifecycle;
mod m20261124_000033_participation_event_id;
mod m20261124_000034_backfill_participation_event_id;
mod m20261124_000035_drop_outbox_aggregate;
mod m20261125_000036_outbox_backoff_in_lease;
mod m20261125_000037_drop_outbox_status_available;
mod m20261125_000038_drop_inbox_processed_at;
mod m20261125_000039_inbox_event_id_ascii;
mod m20261125_000040_reward_grant_event_id_ascii;
mod m20261125_000041_outbox_status_fixed_width;
mod m20261125_000042_outbox_redundant_rows;
mod m20261126_000043_campaign_buckets;
mod m20261126_000044_campaign_groups;
mod m20261126_000045_purchases;
mod m20261126_000046_campaign_offer_seconds;
mod m20261127_000047_tables_utf8mb4;
mod m20261127_000048_campaign_create_key;
mod m20261127_000049_gate_generation;
mod m20261127_000050_campaign_series;
mod m20261129_000051_bucket_budget;
mod m20261129_000052_campaign_bot_check;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_campaign::Migration),
            Box::new(m20261121_000002_create_participation::Migration),
            Box::new(m20261121_000003_create_outbox_event::Migration),
            Box::new(m20261121_000004_index_outbox_claim::Migration),
            Box::new(m20261121_000005_index_outbox_aggregate::Migration),
            Box::new(m20261121_000006_create_relay_shard::Migration),
            Box::new(m20261121_000007_index_outbox_backoff::Migration),
            Box::new(m20261121_000008_index_outbox_lease::Migration),
            Box::new(m20261121_000009_index_outbox_lease_owner::Migration),
            Box::new(m20261121_000010_index_participation_campaign_id::Migration),
            Box::new(m20261121_000011_campaign_accepted_count::Migration),
            Box::new(m20261121_000012_campaign_reward_points::Migration),
            Box::new(m20261121_000013_create_consumer_inbox::Migration),
            Box::new(m20261121_000014_create_campaign_stats::Migration),
            Box::new(m20261121_000015_create_campaign_daily_stats::Migration),
            Box::new(m20261121_000016_create_reward_account::Migration),
            Box::new(m20261121_000017_create_reward_grant::Migration),
            Box::new(m20261122_000018_participation_idempotency_key::Migration),
            Box::new(m20261122_000019_campaign_confirm_window::Migration),
            Box::new(m20261122_000020_participation_lifecycle::Migration),
            Box::new(m20261122_000021_index_participation_hold::Migration),
            Box::new(m20261122_000022_create_gate_return::Migration),
            Box::new(m20261122_000023_campaign_stats_lifecycle::Migration),
            Box::new(m20261122_000024_campaign_stats_backfill::Migration),
            Box::new(m20261123_000025_campaign_controls::Migration),
            Box::new(m20261123_000026_create_campaign_control::Migration),
            Box::new(m20261123_000027_create_gate_control::Migration),
            Box::new(m20261123_000028_campaign_stats_controls::Migration),
            Box::new(m20261123_000029_drop_outbox_status_id::Migration),
            Box::new(m20261123_000030_campaign_admission::Migration),
            Box::new(m20261123_000031_create_campaign_refusal::Migration),
            Box::new(m20261123_000032_daily_stats_lifecycle::Migration),
            Box::new(m20261124_000033_participation_event_id::Migration),
            Box::new(m20261124_000034_backfill_participation_event_id::Migration),
            Box::new(m20261124_000035_drop_outbox_aggregate::Migration),
            Box::new(m20261125_000036_outbox_backoff_in_lease::Migration),
            Box::new(m20261125_000037_drop_outbox_status_available::Migration),
            Box::new(m20261125_000038_drop_inbox_processed_at::Migration),
            Box::new(m20261125_000039_inbox_event_id_ascii::Migration),
            Box::new(m20261125_000040_reward_grant_event_id_ascii::Migration),
            Box::new(m20261125_000041_outbox_status_fixed_width::Migration),
            Box::new(m20261125_000042_outbox_redundant_rows::Migration),
            Box::new(m20261126_000043_campaign_buckets::Migration),
            Box::new(m20261126_000044_campaign_groups::Migration),
            Box::new(m20261126_000045_purchases::Migration),
            Box::new(m20261126_000046_campaign_offer_seconds::Migration),
            Box::new(m20261127_000047_tables_utf8mb4::Migration),
            Box::new(m20261127_000048_campaign_create_key::Migration),
            Box::new(m20261127_000049_gate_generation::Migration),
            Box::new(m20261127_000050_campaign_series::Migration),
            Box::new(m20261129_000051_bucket_budget::Migration),
            Box::new(m20261129_000052_campaign_bot_check::Migration),
        ]
    }
}

/// Runs `statements` in order (a migration's up or down), stopping at the first failure.
pub(crate) async fn ddl_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for sql in statements {
        ddl(manager, sql).await?;
    }
    Ok(())
}

/// Runs one statement of raw DDL; the migrations below are plain SQL so that what runs is exactly
/// what a reader sees.
pub(crate) async fn ddl(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(|_| ())
}
