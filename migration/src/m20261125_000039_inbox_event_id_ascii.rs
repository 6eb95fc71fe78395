//! `consumer_inbox.event_id` in ASCII, as `outbox_event.event_id` and `participation.event_id`
//! are: a UUID's text has no other characters, and a key of 36 bytes compared byte-wise costs
//! every insert less than one of utf8mb4 (docs/design.md §5). The table is rebuilt.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE consumer_inbox MODIFY event_id CHAR(36) CHARACTER SET ascii \
             COLLATE ascii_general_ci NOT NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE consumer_inbox MODIFY event_id CHAR(36) CHARACTER SET utf8mb4 NOT NULL",
        )
        .await
    }
}
