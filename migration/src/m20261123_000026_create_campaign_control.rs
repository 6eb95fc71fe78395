//! `campaign_control`: the audit trail of live controls (docs/design.md §15), one row per control
//! that changed something: what, by which admin, when, and the campaign's stock after it. Kept
//! for good (outbox rows are deleted after their retention). `idempotency_key` is the admin's
//! `Idempotency-Key`: a retried control finds its row and is not applied twice.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            r#"CREATE TABLE campaign_control (
                campaign_id     BIGINT      NOT NULL,
                seq             BIGINT      NOT NULL,
                kind            VARCHAR(16) NOT NULL,
                delta           BIGINT      NULL,
                total_stock     BIGINT      NOT NULL,
                remaining_stock BIGINT      NOT NULL,
                admin           VARCHAR(64) NOT NULL,
                event_id        CHAR(36)    NOT NULL,
                idempotency_key VARCHAR(128) NULL,
                created_at      DATETIME(6) NOT NULL,
                PRIMARY KEY (campaign_id, seq),
                UNIQUE KEY uq_campaign_control_key (campaign_id, idempotency_key)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE campaign_control").await
    }
}
