//! Rows in backoff carry their due time in `lease_until` too (with no owner), so the relay reads
//! them through `(status, lease_until, lease_owner)` and the next migration can drop
//! `(status, available_at)` (docs/design.md §5, §7). Rows already in backoff get it here; run it
//! with every relay stopped, as an older relay writes backoff without it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "UPDATE outbox_event SET lease_until = available_at WHERE status = 'PENDING' \
             AND lease_owner IS NULL AND lease_until IS NULL AND available_at > UTC_TIMESTAMP(6)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "UPDATE outbox_event SET lease_until = NULL WHERE status = 'PENDING' AND lease_owner IS NULL",
        )
        .await
    }
}
