//! A gate's generation (docs/design.md §2.1): `campaign.gate_gen` and `campaign_bucket.gate_gen`
//! count the rebuilds of the row's Redis gate. A rebuild raises it before it reads MySQL, the gate
//! it loads hands it out with every reservation, and a win commits only while its row's count
//! is still the one its reservation carried: a reservation made by a gate that Redis lost (a
//! flush, a restart) can no longer commit after the rebuild read the stock and the highest
//! sequence, so the rebuilt gate never hands out a sequence a late win also carries.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(
            manager,
            &[
                "ALTER TABLE campaign ADD COLUMN gate_gen BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE campaign_bucket ADD COLUMN gate_gen BIGINT NOT NULL DEFAULT 0",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl_all(
            manager,
            &[
                "ALTER TABLE campaign DROP COLUMN gate_gen",
                "ALTER TABLE campaign_bucket DROP COLUMN gate_gen",
            ],
        )
        .await
    }
}
