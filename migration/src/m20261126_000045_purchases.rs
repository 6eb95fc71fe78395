//! Carts (docs/design.md §22): a purchase of several campaigns' units, all won or none.
//! - `purchase`: one row per purchase (a user's cart in a group), written in the transaction of
//!   its items' wins; `idempotency_key` answers a retried request with the stored purchase.
//! - `participation.purchase_id`: the purchase a win belongs to, NULL for a single join. A
//!   purchase's wins are confirmed, cancelled and expired together.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: [&str; 2] = [
    "CREATE TABLE purchase (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     group_id BIGINT NOT NULL, user_id BIGINT NOT NULL, idempotency_key VARCHAR(255) NULL, \
     created_at DATETIME(6) NOT NULL, \
     UNIQUE KEY ux_purchase_idempotency (user_id, idempotency_key)) ENGINE=InnoDB",
    "ALTER TABLE participation ADD COLUMN purchase_id BIGINT NULL, \
     ADD KEY ix_participation_purchase (purchase_id)",
];

const DOWN: [&str; 2] = [
    "ALTER TABLE participation DROP KEY ix_participation_purchase, DROP COLUMN purchase_id",
    "DROP TABLE purchase",
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
