//! `participation.event_id`: the id of the event that announced the win, kept with the win. The
//! join's answer (a replay, a lookup) read it from the win's outbox row through an index on
//! `(aggregate_type, aggregate_id)` that every outbox insert and delete maintained for that read
//! alone, and lost it once cleanup deleted the row (docs/design.md §5). Appended at the end, so
//! the ALTER is instant on MariaDB 10.6+ and MySQL 8.0.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE participation ADD COLUMN event_id CHAR(36) CHARACTER SET ascii NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE participation DROP COLUMN event_id").await
    }
}
