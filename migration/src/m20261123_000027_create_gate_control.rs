//! `gate_control`: a committed control the Redis gate may not have yet (docs/design.md §15), as
//! `gate_return` is for returned units. Written in the control's transaction, deleted once the
//! gate has applied it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE gate_control (campaign_id BIGINT NOT NULL, seq BIGINT NOT NULL, \
             kind VARCHAR(16) NOT NULL, delta BIGINT NOT NULL DEFAULT 0, created_at DATETIME(6) NOT NULL, \
             PRIMARY KEY (campaign_id, seq), KEY ix_gate_control_created (created_at)) ENGINE=InnoDB",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE gate_control").await
    }
}
