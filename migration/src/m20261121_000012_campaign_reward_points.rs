//! `campaign.reward_points`: points per unit won, granted by the rewards consumer; carried in
//! the event value as `rewardPoints`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN reward_points BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE campaign DROP COLUMN reward_points").await
    }
}
