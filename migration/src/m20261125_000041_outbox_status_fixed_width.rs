//! `outbox_event.status` as a fixed-width `CHAR(9)` in ASCII (`PENDING`, `PUBLISHED` and `DEAD`
//! all fit): marking a row PUBLISHED then keeps its record the same size, so InnoDB updates it in
//! place (docs/design.md §7, "Marking in place"). As a `VARCHAR` the record grew by two bytes,
//! and every such update wrote the row again at the end of its page, which reorganized the page
//! every few marks. Readers see the same text: MariaDB and MySQL drop a `CHAR`'s padding.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE outbox_event MODIFY status CHAR(9) CHARACTER SET ascii \
             COLLATE ascii_general_ci NOT NULL DEFAULT 'PENDING'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE outbox_event MODIFY status VARCHAR(16) CHARACTER SET utf8mb4 \
             NOT NULL DEFAULT 'PENDING'",
        )
        .await
    }
}
