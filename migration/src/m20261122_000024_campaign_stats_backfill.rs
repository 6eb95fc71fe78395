//! Rows of `campaign_stats` written before the lifecycle hold wins only, each final (`CONFIRMED`):
//! every win confirmed, every unit active, one event per win. A migration of its own, after the
//! columns exist, so that a crash between the DDL and this UPDATE leaves a state the migrator
//! can go on from.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "UPDATE campaign_stats SET confirmed_count = accepted_count, \
             active_quantity = accepted_quantity, events_applied = accepted_count \
             WHERE events_applied = 0",
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The columns it filled go with the previous migration's down.
        Ok(())
    }
}
