//! `campaign_daily_stats`: wins per campaign and UTC day, kept by the stats consumer: the
//! pre-aggregated table campaign teams query instead of `participation`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE campaign_daily_stats (\
             campaign_id BIGINT NOT NULL, \
             day DATE NOT NULL, \
             accepted_count BIGINT NOT NULL, \
             accepted_quantity BIGINT NOT NULL, \
             PRIMARY KEY (campaign_id, day), \
             KEY ix_campaign_daily_stats_day (day)\
             ) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE campaign_daily_stats").await
    }
}
