//! `bucket_budget`: one row that bucketed creations lock (docs/design.md §21 "At rest"): the
//! check of `CAMPAIGN_BUCKETS_MAX_TOTAL` (the buckets open campaigns hold together) and the
//! insert it allows run in one transaction under that row's lock, so concurrent creations are
//! judged one after another and never fit more buckets together than the cap.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(
            manager,
            &[
                "CREATE TABLE bucket_budget (id TINYINT NOT NULL PRIMARY KEY) ENGINE=InnoDB \
                 DEFAULT CHARSET=utf8mb4",
                "INSERT INTO bucket_budget (id) VALUES (1)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(manager, &["DROP TABLE bucket_budget"]).await
    }
}
