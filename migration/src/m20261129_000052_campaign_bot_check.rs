//! A campaign's own bot check (docs/design.md §16 "Bots at the door"): `campaign.bot_check` says
//! whether the campaign's door asks for it (its room's queue, or an `OPEN` campaign's joins): 1
//! yes, 0 no, NULL the service's default (`BOT_CHECK`, `BOT_CHECK_ON_JOIN`). Set at creation and
//! changed live by an admin.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN bot_check TINYINT(1) NULL DEFAULT NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE campaign DROP COLUMN bot_check").await
    }
}
