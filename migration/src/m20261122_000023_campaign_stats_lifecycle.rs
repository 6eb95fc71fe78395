//! `campaign_stats` follows a win's lifecycle (docs/design.md §14): how many wins were confirmed,
//! cancelled (by the user or an admin) and expired, the units held or confirmed now, and the
//! events applied of every type. `first_accepted_at` / `last_accepted_at` become nullable: a
//! campaign's first applied event is not always a win (its win may have been dead-lettered).
//! The next migration fills the new columns of rows written before it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign_stats \
             ADD COLUMN confirmed_count BIGINT NOT NULL DEFAULT 0 AFTER accepted_quantity, \
             ADD COLUMN cancelled_count BIGINT NOT NULL DEFAULT 0 AFTER confirmed_count, \
             ADD COLUMN expired_count BIGINT NOT NULL DEFAULT 0 AFTER cancelled_count, \
             ADD COLUMN active_quantity BIGINT NOT NULL DEFAULT 0 AFTER expired_count, \
             ADD COLUMN events_applied BIGINT NOT NULL DEFAULT 0 AFTER active_quantity, \
             MODIFY first_accepted_at DATETIME(6) NULL, \
             MODIFY last_accepted_at DATETIME(6) NULL",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A row whose first event was not a win has no time to go back to; the latest event's
        // is the nearest truth.
        crate::ddl(
            manager,
            "UPDATE campaign_stats SET first_accepted_at = COALESCE(first_accepted_at, last_event_at), \
             last_accepted_at = COALESCE(last_accepted_at, last_event_at)",
        )
        .await?;
        crate::ddl(
            manager,
            "ALTER TABLE campaign_stats DROP COLUMN confirmed_count, DROP COLUMN cancelled_count, \
             DROP COLUMN expired_count, DROP COLUMN active_quantity, DROP COLUMN events_applied, \
             MODIFY first_accepted_at DATETIME(6) NOT NULL, MODIFY last_accepted_at DATETIME(6) NOT NULL",
        )
        .await
    }
}
