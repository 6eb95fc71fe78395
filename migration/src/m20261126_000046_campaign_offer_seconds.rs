//! Waitlist offers (docs/design.md §22): `campaign.offer_seconds`, how long an offer of a unit
//! that came back stays valid for the waitlisted user it reaches; 0: the campaign keeps no
//! waitlist (a ticket waiting while the stock is 0 is answered SOLD_OUT, as before).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "ALTER TABLE campaign ADD COLUMN offer_seconds INT NOT NULL DEFAULT 0",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(manager, "ALTER TABLE campaign DROP COLUMN offer_seconds").await
    }
}
