//! `reward_grant.event_id` (its primary key) in ASCII, as the other tables' event ids are
//! (docs/design.md §5). The table is rebuilt.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE reward_grant MODIFY event_id CHAR(36) CHARACTER SET ascii \
             COLLATE ascii_general_ci NOT NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE reward_grant MODIFY event_id CHAR(36) CHARACTER SET utf8mb4 NOT NULL",
        )
        .await
    }
}
