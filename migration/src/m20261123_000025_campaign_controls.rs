//! Live controls of a running campaign (docs/design.md §15): `paused`, `closed_at` (an early end)
//! and `control_seq`, the number of controls applied so far. Every control takes the next
//! number under the campaign row's lock; the gate orders what it applies by it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign \
             ADD COLUMN paused TINYINT(1) NOT NULL DEFAULT 0, \
             ADD COLUMN closed_at DATETIME(6) NULL, \
             ADD COLUMN control_seq BIGINT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign DROP COLUMN paused, DROP COLUMN closed_at, DROP COLUMN control_seq",
        )
        .await
    }
}
