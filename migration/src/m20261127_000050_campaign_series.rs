//! What the live view needs of the stats consumer (docs/design.md §20):
//! - `campaign_series` counts the wins the stats consumer applied and the refused joins the
//!   instances flushed, per campaign and 5-second slot, so the live view draws a sale's last five
//!   minutes whenever its page was opened. Rows older than an hour are deleted by the refusal
//!   flush.
//! - `campaign_stats.refunded_count`: confirmed wins cancelled since (refunds), apart from the
//!   cancelled holds; filled for the wins already applied from `participation` (a cancelled win
//!   that was confirmed: at acceptance, without a window, or later).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(
            manager,
            &[
                "CREATE TABLE campaign_series (campaign_id BIGINT NOT NULL, slot DATETIME NOT NULL, \
                 wins BIGINT NOT NULL DEFAULT 0, refused BIGINT NOT NULL DEFAULT 0, \
                 PRIMARY KEY (campaign_id, slot), KEY ix_campaign_series_slot (slot)) ENGINE=InnoDB \
                 DEFAULT CHARSET=utf8mb4",
                "ALTER TABLE campaign_stats ADD COLUMN refunded_count BIGINT NOT NULL DEFAULT 0",
                "UPDATE campaign_stats s SET refunded_count = (SELECT COUNT(*) FROM participation p \
                 WHERE p.campaign_id = s.campaign_id AND p.status = 'CANCELLED' \
                 AND (p.hold_expires_at IS NULL OR p.confirmed_at IS NOT NULL))",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(
            manager,
            &[
                "DROP TABLE campaign_series",
                "ALTER TABLE campaign_stats DROP COLUMN refunded_count",
            ],
        )
        .await
    }
}
