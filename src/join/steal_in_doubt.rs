//! A steal cut off by a MySQL outage (docs/design.md §18.1, §21): a dry bucket's join set a
//! sibling's units aside at its gate (`lua/take.lua`) and its transfer's transaction failed
//! after it had locked the rows, so the transfer may have written, and even committed, or not.
//! Until someone knows which, the units sit in a row no gate can sell.
//!
//! Before, nobody knew until the reconciler read MySQL, `RESERVATION_TIMEOUT_MS` (15 s) later,
//! and a bucket whose units hid there answered SOLD_OUT with units unsold (the proof found it).
//! Now the steal is settled as a batch in doubt is (`write::in_doubt`): once MySQL answers again,
//! its session is ended and gone (`db::session`), so the transfer has committed or never will;
//! then the take is forgotten if `bucket_transfer` has it (the receiving gate gets the units from
//! the transfer's marker, `upkeep::markers`) and given back to the sibling's gate if not. The
//! reconciler stays the path of an instance that died in between.

use std::time::Instant;

use sea_orm::DbErr;
use uuid::Uuid;

use crate::{
    bucket::store as bucket_store,
    db::{
        session::{end_session, RetryPause},
        Db,
    },
    gate::{transfer::Untake, Gate, Slot},
    write::in_doubt::SettleError,
};

/// A steal whose transaction's outcome is unknown.
pub struct StealInDoubt {
    pub campaign_id: i64,
    /// The sibling whose gate set the units aside, under `take_id`, in gate epoch `epoch`.
    pub from: Slot,
    pub epoch: i64,
    pub take_id: Uuid,
    /// The server's id of the session that ran the transfer.
    pub session: u64,
}

impl StealInDoubt {
    /// Settles the steal in a task of its own, trying until MySQL answers.
    pub fn settle(self, db: Db, gate: Gate, error: &DbErr) {
        tracing::warn!(campaign_id = self.campaign_id, bucket = self.from.bucket_or_zero(),
            session = self.session, %error,
            "A transfer between buckets was cut off; settling it as soon as MySQL answers.");
        tokio::spawn(async move {
            let started = Instant::now();
            let mut pause = RetryPause::new();
            loop {
                match self.settle_once(&db, &gate).await {
                    Ok(how) => {
                        tracing::warn!(
                            campaign_id = self.campaign_id,
                            bucket = self.from.bucket_or_zero(),
                            session = self.session,
                            committed = how == Untake::Moved,
                            after_ms = started.elapsed().as_millis() as u64,
                            "Settled a transfer between buckets that was in doubt."
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, campaign_id = self.campaign_id,
                            "Could not settle a transfer in doubt yet; trying again.");
                        pause.wait().await;
                    }
                }
            }
        });
    }

    /// One attempt: end the session, read whether the transfer committed, settle the take.
    async fn settle_once(&self, db: &Db, gate: &Gate) -> Result<Untake, SettleError> {
        end_session(db, self.session).await?;
        let bucket = self.from.bucket_or_zero();
        let moved =
            bucket_store::take_committed(db, self.campaign_id, bucket, self.take_id).await?;
        let how = if moved { Untake::Moved } else { Untake::Back };
        gate.untake(self.from, self.epoch, self.take_id, how)
            .await?;
        Ok(how)
    }
}
