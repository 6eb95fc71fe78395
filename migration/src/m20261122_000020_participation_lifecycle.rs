//! `participation`'s lifecycle (docs/design.md §14): its state (`HELD`, `CONFIRMED`, `CANCELLED`, `EXPIRED`; existing rows are `CONFIRMED`), the hold's deadline, and when and why it was confirmed or cancelled.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'CONFIRMED', ADD COLUMN hold_expires_at DATETIME(6) NULL, ADD COLUMN confirmed_at DATETIME(6) NULL, ADD COLUMN cancelled_at DATETIME(6) NULL, ADD COLUMN cancel_reason VARCHAR(16) NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE participation DROP COLUMN status, DROP COLUMN hold_expires_at, DROP COLUMN confirmed_at, DROP COLUMN cancelled_at, DROP COLUMN cancel_reason").await
    }
}
