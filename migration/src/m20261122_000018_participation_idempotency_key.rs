//! `participation.idempotency_key`: the `Idempotency-Key` of the join that wrote the win, so a
//! retry with the same key answers the original win (docs/design.md §3). Looked up through the
//! `(campaign_id, user_id)` key only: no index of its own.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation ADD COLUMN idempotency_key VARCHAR(128) NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation DROP COLUMN idempotency_key",
        )
        .await
    }
}
