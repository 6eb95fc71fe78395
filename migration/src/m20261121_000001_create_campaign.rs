//! `campaign`: the stock of one flash sale. `remaining_stock` is the source of truth that the
//! guarded decrement (`remaining_stock >= q`) protects; the CHECK makes a bug that would oversell
//! fail loudly instead.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            r#"CREATE TABLE campaign (
                id              BIGINT       NOT NULL AUTO_INCREMENT,
                name            VARCHAR(200) NOT NULL,
                total_stock     BIGINT       NOT NULL,
                remaining_stock BIGINT       NOT NULL,
                per_user_limit  INT          NOT NULL,
                starts_at       DATETIME(6)  NOT NULL,
                ends_at         DATETIME(6)  NULL,
                created_at      DATETIME(6)  NOT NULL,
                updated_at      DATETIME(6)  NOT NULL,
                PRIMARY KEY (id),
                CONSTRAINT chk_campaign_stock CHECK (remaining_stock >= 0 AND remaining_stock <= total_stock),
                CONSTRAINT chk_campaign_limit CHECK (per_user_limit >= 1)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE campaign").await
    }
}
