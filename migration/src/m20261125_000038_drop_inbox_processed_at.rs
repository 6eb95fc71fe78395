//! Drops `(consumer, processed_at)` from `consumer_inbox`: every applied event wrote an entry in
//! it, for the retention's cleanup alone, which now walks the primary key by the event id's time
//! instead (a UUIDv7 starts with its millisecond, docs/design.md §11).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "DROP INDEX ix_consumer_inbox_processed_at ON consumer_inbox",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_consumer_inbox_processed_at ON consumer_inbox (consumer, processed_at)",
        )
        .await
    }
}
