//! Per-key order: the claim checks for an older unpublished row of the same key (in backoff or
//! in flight) before taking a row; (msg_key, status, id) answers that with an index range.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_key_status_id ON outbox_event (msg_key, status, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "DROP INDEX ix_outbox_key_status_id ON outbox_event",
        )
        .await
    }
}
