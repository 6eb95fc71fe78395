//! `participation`: one win. UNIQUE(campaign_id, user_id) is the last line of defence of "a user
//! wins at most once", whatever Redis says. No foreign key to `campaign`: every insert already
//! follows the guarded UPDATE of its campaign row in the same transaction, and the check would
//! only add work on the hottest row of a flash sale.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            r#"CREATE TABLE participation (
                id          BIGINT      NOT NULL AUTO_INCREMENT,
                campaign_id BIGINT      NOT NULL,
                user_id     BIGINT      NOT NULL,
                quantity    INT         NOT NULL,
                sequence    BIGINT      NOT NULL,
                created_at  DATETIME(6) NOT NULL,
                PRIMARY KEY (id),
                UNIQUE KEY uq_participation_campaign_user (campaign_id, user_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE participation").await
    }
}
