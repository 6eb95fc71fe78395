//! `reward_account`: each winner's point balance, kept by the rewards consumer.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE reward_account (\
             user_id BIGINT NOT NULL PRIMARY KEY, \
             points BIGINT NOT NULL, \
             updated_at DATETIME(6) NOT NULL\
             ) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE reward_account").await
    }
}
