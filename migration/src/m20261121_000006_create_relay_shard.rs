//! `relay_shard`: one row per relay shard; the instance whose lease is current publishes the
//! shard's keys, so at most one instance publishes a given key at a time (docs/design.md §7).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            r#"CREATE TABLE relay_shard (
                shard       INT         NOT NULL,
                owner       VARCHAR(64) NULL,
                lease_until DATETIME(6) NULL,
                PRIMARY KEY (shard)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE relay_shard").await
    }
}
