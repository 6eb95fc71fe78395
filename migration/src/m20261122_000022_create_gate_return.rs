//! `gate_return`: units MySQL has taken back (a cancelled or expired win) that the Redis gate may not have yet. Written in the state change's transaction, deleted once the gate has them (docs/design.md §14).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE gate_return (participation_id BIGINT NOT NULL PRIMARY KEY, campaign_id BIGINT NOT NULL, quantity INT NOT NULL, created_at DATETIME(6) NOT NULL, KEY ix_gate_return_created (created_at)) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE gate_return").await
    }
}
