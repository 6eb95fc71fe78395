//! Per-key order across instances: the claim looks up rows leased by another relay (which may
//! still be publishing them); (status, lease_until) makes that a short index range.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE INDEX ix_outbox_status_lease ON outbox_event (status, lease_until)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP INDEX ix_outbox_status_lease ON outbox_event").await
    }
}
