//! The waiting room (docs/design.md §16): how a campaign admits joins (`admission`: `OPEN`, the
//! default and the behaviour before this migration; `QUEUE`; `RAFFLE`) and how many users its
//! queue admits per second (0 for an `OPEN` campaign).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign \
             ADD COLUMN admission VARCHAR(8) NOT NULL DEFAULT 'OPEN', \
             ADD COLUMN admission_rate_per_second INT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign DROP COLUMN admission, DROP COLUMN admission_rate_per_second",
        )
        .await
    }
}
