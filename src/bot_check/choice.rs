//! Which campaigns ask for the bot check (docs/design.md §16 "Bots at the door"): each campaign's
//! own choice (`campaign.bot_check`, set at its creation and changed live by an admin), or the
//! service's default for its kind when it has none: `BOT_CHECK` other than `off` for a room's
//! queue, and with `BOT_CHECK_ON_JOIN` for an `OPEN` campaign's joins.
//!
//! The choice is read from MySQL and kept a [`FRESH_FOR`] on each instance, so a change made on
//! one instance is every door's within about a second, and a door under a burst reads it once a
//! second, not once a request.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DbErr};

use crate::{
    campaign::Admission,
    db::{sql::stmt, Db},
};

/// How long an instance keeps a campaign's choice before it reads it again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Bound on the choices kept; past it the map starts over (campaigns are few).
const MAX_ENTRIES: usize = 10_000;

/// The service's default: which doors ask when a campaign has no choice of its own.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// A room's queue (`BOT_CHECK` is not `off`).
    pub room: bool,
    /// An `OPEN` campaign's joins (and carts: `BOT_CHECK_ON_JOIN` as well).
    pub join: bool,
}

impl Defaults {
    /// Whether a campaign of `admission` with `own` choice asks at its door.
    pub fn asks(self, admission: Admission, own: Option<bool>) -> bool {
        own.unwrap_or(if admission.queued() {
            self.room
        } else {
            self.join
        })
    }
}

/// A campaign's choice as read, and when.
#[derive(Clone, Copy)]
struct Read {
    asks: bool,
    at: Instant,
}

/// The campaigns' choices, read from MySQL at most once a [`FRESH_FOR`] each.
pub struct Choices {
    db: Db,
    defaults: Defaults,
    read: RwLock<HashMap<i64, Read>>,
}

impl Choices {
    pub fn new(db: Db, defaults: Defaults) -> Self {
        Self {
            db,
            defaults,
            read: RwLock::default(),
        }
    }

    /// Whether `campaign_id`'s door asks for the check now; `false` for a campaign that does
    /// not exist (the door's other checks answer for it).
    pub async fn asks(&self, campaign_id: i64) -> Result<bool, DbErr> {
        let kept = self.kept().get(&campaign_id).copied();
        if let Some(read) = kept.filter(|r| r.at.elapsed() < FRESH_FOR) {
            return Ok(read.asks);
        }
        // Boxed: a read is once a second, and its future would otherwise be part of every
        // door's future.
        Box::pin(self.refresh(campaign_id)).await
    }

    async fn refresh(&self, campaign_id: i64) -> Result<bool, DbErr> {
        let row = (self.db)
            .query_one_raw(stmt(
                "SELECT admission, bot_check FROM campaign WHERE id = ?",
                vec![campaign_id.into()],
            ))
            .await?;
        // A campaign that does not exist asks for nothing, and is remembered so too: a door
        // asked about unknown ids (a cart of them, a scan) reads MySQL once a second for each.
        let asks = match row {
            Some(row) => {
                let admission = Admission::parse(&row.try_get_by_index::<String>(0)?);
                let own = row.try_get_by_index::<Option<bool>>(1)?;
                self.defaults.asks(admission, own)
            }
            None => false,
        };
        let mut read = self.kept_mut();
        if read.len() >= MAX_ENTRIES {
            read.clear();
        }
        let at = Instant::now();
        read.insert(campaign_id, Read { asks, at });
        Ok(asks)
    }

    /// The choices read (never held across an await; a panic while writing leaves a map that is
    /// still whole, so a poisoned lock is taken as it is).
    fn kept(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i64, Read>> {
        self.read.read().unwrap_or_else(|e| e.into_inner())
    }

    fn kept_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i64, Read>> {
        self.read.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `campaign_id`'s own choice (`None`: the service's default) and forgets what this
    /// instance had read; whether the campaign exists.
    pub async fn set(&self, campaign_id: i64, own: Option<bool>) -> Result<bool, DbErr> {
        let done = (self.db)
            .execute_raw(stmt(
                "UPDATE campaign SET bot_check = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                vec![own.into(), campaign_id.into()],
            ))
            .await?;
        self.kept_mut().remove(&campaign_id);
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaigns_own_choice_wins_over_the_default_for_its_kind() {
        let defaults = Defaults {
            room: true,
            join: false,
        };
        assert!(defaults.asks(Admission::Queue, None));
        assert!(!defaults.asks(Admission::Open, None));
        assert!(!defaults.asks(Admission::Raffle, Some(false)));
        assert!(defaults.asks(Admission::Open, Some(true)));
    }
}
