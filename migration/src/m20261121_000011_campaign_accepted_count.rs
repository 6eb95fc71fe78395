//! `acceptedCount` was a `COUNT(*)` over the campaign's participations on every campaign read:
//! per row of a list page, and on the hot path's cache misses. The participation transaction
//! already updates the campaign row (the guarded stock decrement), so it now counts there too,
//! in the same statement, and reads are one row. Existing campaigns are counted once here.
//!
//! During a rolling upgrade, instances still on the old code do not count; run the backfill
//! statement again once they are gone.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN accepted_count BIGINT NOT NULL DEFAULT 0",
        )
        .await?;
        crate::ddl(
            manager,
            "UPDATE campaign c SET accepted_count = \
             (SELECT COUNT(*) FROM participation p WHERE p.campaign_id = c.id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE campaign DROP COLUMN accepted_count").await
    }
}
