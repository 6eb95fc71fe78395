//! The lifecycle per day (docs/design.md §20): wins confirmed, cancelled (by their user or an
//! admin) and expired on each UTC day, kept by the stats consumer beside the day's wins. Days
//! before this migration keep 0 in them (the consumer counts from its next event on); the raw
//! read (`/api/v1/admin/stats/raw`) counts every day from `participation`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign_daily_stats \
             ADD COLUMN confirmed_count BIGINT NOT NULL DEFAULT 0, \
             ADD COLUMN cancelled_count BIGINT NOT NULL DEFAULT 0, \
             ADD COLUMN expired_count BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign_daily_stats \
             DROP COLUMN confirmed_count, DROP COLUMN cancelled_count, DROP COLUMN expired_count",
        )
        .await
    }
}
