//! Groups (docs/design.md §22): campaigns sold under one per-user limit (the sizes of one
//! sneaker, the days of one festival).
//! - `campaign_group`: the group, its per-user limit in units, and its buckets (every campaign of
//!   a group has that many, so a user's home bucket is the same in each: §21's home-bucket rule
//!   applied to the group).
//! - `campaign.group_id`: the group a campaign joined at its creation, or NULL.
//! - `group_holding`: the MySQL guard of the limit. One row per group and user, the units of every
//!   win the user made in the group's campaigns; a win's transaction raises it only while it stays
//!   within the limit, under the row's lock, so two instances' wins for one user serialize here.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 3] = [
    "CREATE TABLE campaign_group (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     name VARCHAR(200) NOT NULL, per_user_limit INT NOT NULL, \
     buckets SMALLINT NOT NULL DEFAULT 1, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    "ALTER TABLE campaign ADD COLUMN group_id BIGINT NULL, \
     ADD KEY ix_campaign_group (group_id)",
    "CREATE TABLE group_holding (group_id BIGINT NOT NULL, user_id BIGINT NOT NULL, \
     units BIGINT NOT NULL, PRIMARY KEY (group_id, user_id)) ENGINE=InnoDB",
];

const DOWN: [&str; 3] = [
    "DROP TABLE group_holding",
    "ALTER TABLE campaign DROP KEY ix_campaign_group, DROP COLUMN group_id",
    "DROP TABLE campaign_group",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(manager, &UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(manager, &DOWN).await
    }
}
