//! Drops `(status, available_at)` from `outbox_event`: the relay finds rows in backoff through
//! `(status, lease_until, lease_owner)` now (the previous migration), and every outbox insert
//! and every mark PUBLISHED maintained it (docs/design.md §5).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "DROP INDEX ix_outbox_status_available ON outbox_event",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_status_available ON outbox_event (status, available_at)",
        )
        .await
    }
}
