//! A campaign's participations are read in id order: the participation list (cursor pages) and
//! the gate rebuild (winners in pages). Without this index each page sorted the campaign's rows;
//! with it a page is a range scan.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation ADD INDEX ix_participation_campaign_id (campaign_id, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation DROP INDEX ix_participation_campaign_id",
        )
        .await
    }
}
