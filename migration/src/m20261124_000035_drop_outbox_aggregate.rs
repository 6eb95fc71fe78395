//! Drops `(aggregate_type, aggregate_id)` from `outbox_event`: its one reader, a win's event id,
//! reads `participation.event_id` now, and every outbox insert and delete maintained it (two
//! index writes per win; docs/design.md §5).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_outbox_aggregate ON outbox_event").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_aggregate ON outbox_event (aggregate_type, aggregate_id)",
        )
        .await
    }
}
