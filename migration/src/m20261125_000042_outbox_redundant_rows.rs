//! `outbox_event` in InnoDB's `REDUNDANT` row format, in which a fixed-width column keeps its
//! bytes in the record while it is NULL: `published_at` (and `lease_until`) then go from NULL to
//! a time without growing the record, and with `status` of fixed width (the migration before)
//! the mark PUBLISHED is an update in place (docs/design.md §7, "Marking in place"). In the
//! default `DYNAMIC` format a NULL takes no bytes, so each mark grew its record by eight and
//! InnoDB reorganized the page every few marks: 0.43 reorganizations a win, 10-15 us of
//! MariaDB's CPU per win (docs/benchmarks.md, "CPU per win"). The payload stays in the record as
//! before while the row fits in half a page (an event is well under 1 KB). The table is rebuilt.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE outbox_event ROW_FORMAT=REDUNDANT").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE outbox_event ROW_FORMAT=DEFAULT").await
    }
}
