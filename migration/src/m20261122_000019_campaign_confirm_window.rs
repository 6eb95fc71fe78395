//! `campaign.confirm_within_seconds`: how long a win stays held for its confirmation (docs/design.md §14); 0, the default, makes a win final at once, as before.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN confirm_within_seconds INT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign DROP COLUMN confirm_within_seconds",
        )
        .await
    }
}
