//! `campaign_stats` records the live controls (docs/design.md §11, §15): units added and
//! withdrawn, whether the latest pause or resume left the campaign paused, when it was closed,
//! and how many controls were applied.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign_stats \
             ADD COLUMN stock_added BIGINT NOT NULL DEFAULT 0, \
             ADD COLUMN stock_withdrawn BIGINT NOT NULL DEFAULT 0, \
             ADD COLUMN paused TINYINT(1) NOT NULL DEFAULT 0, \
             ADD COLUMN closed_at DATETIME(6) NULL, \
             ADD COLUMN controls_applied BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign_stats DROP COLUMN stock_added, DROP COLUMN stock_withdrawn, \
             DROP COLUMN paused, DROP COLUMN closed_at, DROP COLUMN controls_applied",
        )
        .await
    }
}
