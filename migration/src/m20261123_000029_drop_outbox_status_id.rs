//! Drops `(status, id)` from `outbox_event`: the claim walks `(status, lease_until, lease_owner)`
//! and the status counts can walk it too, while every insert wrote the index and every mark
//! rewrote it (a row's status moves it to the PUBLISHED range). One index fewer per win and
//! per published row (docs/design.md §5).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_outbox_status_id ON outbox_event").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_status_id ON outbox_event (status, id)",
        )
        .await
    }
}
