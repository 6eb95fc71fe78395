//! The relay's claim reads rows leased by *another* relay on every claim. With the owner in the
//! lease index the rows this relay has in flight (thousands under load) are passed over inside
//! the index instead of each being read from the table: measured, that lookup took 12-27 ms of
//! an ~80 ms claim of 2,000 rows. One statement, so the index is never missing in between.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE outbox_event DROP INDEX ix_outbox_status_lease, \
             ADD INDEX ix_outbox_status_lease (status, lease_until, lease_owner)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE outbox_event DROP INDEX ix_outbox_status_lease, \
             ADD INDEX ix_outbox_status_lease (status, lease_until)",
        )
        .await
    }
}
