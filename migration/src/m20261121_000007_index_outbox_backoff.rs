//! Per-key order: the claim looks up rows in backoff (`available_at` in the future) to hold back
//! the younger rows of their keys; (status, available_at) makes that a short index range.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_status_available ON outbox_event (status, available_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "DROP INDEX ix_outbox_status_available ON outbox_event",
        )
        .await
    }
}
