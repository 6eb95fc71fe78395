//! A participation finds its event (for `eventId` in the lookup response) by aggregate.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_aggregate ON outbox_event (aggregate_type, aggregate_id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_outbox_aggregate ON outbox_event").await
    }
}
