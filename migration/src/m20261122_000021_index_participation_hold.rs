//! The expiry sweeper's index: held wins by deadline, so a sweep reads only the holds that are due.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_participation_hold ON participation (status, hold_expires_at)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_participation_hold ON participation").await
    }
}
