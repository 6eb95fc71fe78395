//! `campaign_stats`: one row per campaign, kept by the stats consumer.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE campaign_stats (\
             campaign_id BIGINT NOT NULL PRIMARY KEY, \
             accepted_count BIGINT NOT NULL, \
             accepted_quantity BIGINT NOT NULL, \
             first_accepted_at DATETIME(6) NOT NULL, \
             last_accepted_at DATETIME(6) NOT NULL, \
             sold_out_at DATETIME(6) NULL, \
             last_event_at DATETIME(6) NOT NULL, \
             updated_at DATETIME(6) NOT NULL\
             ) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE campaign_stats").await
    }
}
