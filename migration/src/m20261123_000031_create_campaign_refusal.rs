//! Refused joins per campaign, UTC day and reason (docs/design.md §20): statistics flushed by every
//! instance twice a second (`refusal::flush`), read by `GET /api/v1/campaigns/{id}`, the
//! live stream and the period statistics. A count lost with an instance's last second is a lost
//! statistic, never a lost win.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "CREATE TABLE campaign_refusal ( \
               campaign_id BIGINT NOT NULL, \
               day DATE NOT NULL, \
               reason VARCHAR(32) NOT NULL, \
               refused_count BIGINT NOT NULL, \
               PRIMARY KEY (campaign_id, day, reason) \
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "DROP TABLE campaign_refusal").await
    }
}
