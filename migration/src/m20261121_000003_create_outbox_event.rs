//! `outbox_event`: the events committed with their participation, waiting for the relay.
//! `payload` and `headers` are stored as text, byte for byte what goes to Kafka, so a re-publish
//! (a documented duplicate) carries exactly the same bytes.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            r#"CREATE TABLE outbox_event (
                id             BIGINT       NOT NULL AUTO_INCREMENT,
                event_id       CHAR(36)     CHARACTER SET ascii NOT NULL,
                aggregate_type VARCHAR(64)  NOT NULL,
                aggregate_id   VARCHAR(64)  NOT NULL,
                event_type     VARCHAR(128) NOT NULL,
                topic          VARCHAR(249) NOT NULL,
                msg_key        VARCHAR(255) NOT NULL,
                payload        MEDIUMTEXT   NOT NULL,
                headers        TEXT         NOT NULL,
                status         VARCHAR(16)  NOT NULL DEFAULT 'PENDING',
                attempts       INT          NOT NULL DEFAULT 0,
                available_at   DATETIME(6)  NOT NULL,
                last_error     TEXT         NULL,
                lease_owner    VARCHAR(64)  NULL,
                lease_until    DATETIME(6)  NULL,
                created_at     DATETIME(6)  NOT NULL,
                published_at   DATETIME(6)  NULL,
                PRIMARY KEY (id),
                UNIQUE KEY uq_outbox_event_id (event_id),
                CONSTRAINT chk_outbox_status CHECK (status IN ('PENDING', 'PUBLISHED', 'DEAD'))
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE outbox_event").await
    }
}
