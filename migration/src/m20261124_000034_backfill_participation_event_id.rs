//! Fills `participation.event_id` for the wins written before it existed, from their
//! `ParticipationAccepted` outbox row where cleanup has not removed it yet (through the index the
//! next migration drops). A win whose row is gone keeps NULL, as its answer had no event id
//! before either.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::ddl(
            manager,
            "UPDATE participation p JOIN outbox_event o ON o.aggregate_type = 'participation' \
             AND o.aggregate_id = CAST(p.id AS CHAR) AND o.event_type = 'ParticipationAccepted' \
             SET p.event_id = o.event_id WHERE p.event_id IS NULL",
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The column goes with the previous migration's down.
        Ok(())
    }
}
