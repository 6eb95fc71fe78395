//! `consumer_inbox`: the dedupe record of every consumer (docs/design.md §2.8). A consumer inserts
//! `(consumer, event_id)` in the transaction that applies the event; a redelivered event finds
//! its row and is skipped. `processed_at` lets old rows be cleaned after a retention.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE consumer_inbox (\
             consumer VARCHAR(64) NOT NULL, \
             event_id CHAR(36) NOT NULL, \
             processed_at DATETIME(6) NOT NULL, \
             PRIMARY KEY (consumer, event_id), \
             KEY ix_consumer_inbox_processed_at (consumer, processed_at)\
             ) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE consumer_inbox").await
    }
}
