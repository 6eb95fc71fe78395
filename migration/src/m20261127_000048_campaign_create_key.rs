//! A campaign's creation made idempotent (docs/design.md §17): `campaign.create_admin` and
//! `create_key` are the admin token's name and the `Idempotency-Key` of the request that created
//! it, unique together, so a retried creation (its answer lost, or past the request's deadline)
//! finds the campaign it made instead of making a second; `create_request` is that request's
//! body, so the same key with another body is refused. NULL for a creation without a key.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN create_admin VARCHAR(64) NULL, \
             ADD COLUMN create_key VARCHAR(128) NULL, ADD COLUMN create_request TEXT NULL, \
             ADD UNIQUE KEY uq_campaign_create_key (create_admin, create_key)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign DROP INDEX uq_campaign_create_key, DROP COLUMN create_admin, \
             DROP COLUMN create_key, DROP COLUMN create_request",
        )
        .await
    }
}
