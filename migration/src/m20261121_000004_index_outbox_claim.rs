//! The relay's claim reads PENDING rows in id order; (status, id) lets it walk only the pending
//! part of the table, however many PUBLISHED rows wait for cleanup.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_status_id ON outbox_event (status, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_outbox_status_id ON outbox_event").await
    }
}
