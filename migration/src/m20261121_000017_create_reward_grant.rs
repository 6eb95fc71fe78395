//! `reward_grant`: one row per granted event (the event id is the key, so a grant cannot be
//! written twice even outside the inbox), read per user newest first.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE reward_grant (\
             event_id CHAR(36) NOT NULL PRIMARY KEY, \
             user_id BIGINT NOT NULL, \
             campaign_id BIGINT NOT NULL, \
             points BIGINT NOT NULL, \
             granted_at DATETIME(6) NOT NULL, \
             KEY ix_reward_grant_user (user_id, granted_at)\
             ) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE reward_grant").await
    }
}
