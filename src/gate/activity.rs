//! Whether a bucketed campaign is at rest (docs/design.md §21 "costs nothing per bucket while
//! idle"). The reconciler and the drift audit read each bucket's gate, a call per bucket per
//! pass: a 1,024-bucket campaign nobody joins would cost thousands of Redis calls and hundreds of
//! MySQL reads a second for good. So every call that may open something in a bucket (a join's
//! reservation, a cart's, a transfer's take) first marks its campaign busy, a key with a time to
//! live, `<prefix>{c:<id>}:busy`; the passes read that one key and skip a campaign's buckets
//! while it is absent.
//!
//! Why no reservation is missed: an instance marks a campaign at most every [`MARK_EVERY`], so a
//! reservation opened at `t` has a mark made at `t - MARK_EVERY` or later (the call that finds the
//! mark stale sends it before its own script; calls beside it in that instant go on, and their
//! mark lands with theirs). The mark lasts twice `RESERVATION_TIMEOUT_MS` and [`MARGIN`], longer
//! than the reservation needs to come of age and a pass (every tenth of the timeout) to find it,
//! and than two audits need to prove a drift. A campaign whose mark is gone had no reservation,
//! take or refused join for that long: its gates can change only by MySQL's markers, which the
//! marker loop applies whatever the mark says. The mark is a hint, never a guard: a mark that
//! fails to be written (its key's primary unreachable) is logged and tried again by the next
//! call; a crash in that instant leaves its reservation to the next pass after the campaign's
//! next call (any join marks it again). An unbucketed campaign has one gate and is not marked.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use super::scripts::{Gate, GateError};

/// An instance marks a campaign busy at most this often.
pub const MARK_EVERY: Duration = Duration::from_secs(1);

/// What a mark lasts beyond twice the reservation timeout: two drift audits (5 s apart) and a
/// mark's own interval, with room to spare.
pub const MARGIN: Duration = Duration::from_secs(12);

/// Campaigns remembered before the stale ones are forgotten.
const REMEMBERED: usize = 1_024;

/// This instance's marks: when it last marked each campaign.
#[derive(Debug)]
pub struct Activity {
    /// Read by every join of a bucketed campaign, written once a second per campaign: a read
    /// lock on the common path, so joins on many cores do not queue on one lock.
    marked: RwLock<HashMap<i64, Instant>>,
    lasts: Duration,
}

impl Activity {
    /// Marks that last `2 × reservation_timeout + MARGIN`.
    pub fn new(reservation_timeout: Duration) -> Self {
        Self {
            marked: RwLock::default(),
            lasts: reservation_timeout.saturating_mul(2).saturating_add(MARGIN),
        }
    }

    /// Whether this call should send the campaign's mark: the last one is older than
    /// [`MARK_EVERY`]. Claims it at once, so the calls beside it in that instant send none.
    fn claim(&self, campaign_id: i64, now: Instant) -> bool {
        let fresh = |marked: &HashMap<i64, Instant>| {
            marked
                .get(&campaign_id)
                .is_some_and(|&at| now.saturating_duration_since(at) < MARK_EVERY)
        };
        if fresh(&self.marked.read().unwrap_or_else(|p| p.into_inner())) {
            return false;
        }
        let mut marked = self.marked.write().unwrap_or_else(|p| p.into_inner());
        // Another call may have claimed it between the two locks.
        if fresh(&marked) {
            return false;
        }
        if marked.len() >= REMEMBERED {
            marked.retain(|_, at| now.saturating_duration_since(*at) < MARK_EVERY);
        }
        marked.insert(campaign_id, now);
        true
    }

    /// A mark that could not be written: the next call tries again.
    fn unclaim(&self, campaign_id: i64) {
        self.marked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&campaign_id);
    }
}

impl Gate {
    /// `<prefix>{c:<id>}:busy`.
    fn busy_key(&self, campaign_id: i64) -> String {
        format!("{}{{c:{campaign_id}}}:busy", self.prefix)
    }

    /// Marks a bucketed campaign busy before a call that may open a reservation or a take in one
    /// of its buckets (see the module's text); nothing for an unbucketed one, or when this
    /// instance marked it less than [`MARK_EVERY`] ago.
    pub(super) async fn mark_busy(&self, campaign_id: i64, bucketed: bool) {
        if !bucketed || !self.activity.claim(campaign_id, Instant::now()) {
            return;
        }
        let millis = u64::try_from(self.activity.lasts.as_millis()).unwrap_or(u64::MAX);
        let set = redis::cmd("SET")
            .arg(self.busy_key(campaign_id))
            .arg(1)
            .arg("PX")
            .arg(millis)
            .to_owned();
        if let Err(e) = self.query::<()>(set).await {
            self.activity.unclaim(campaign_id);
            tracing::debug!(campaign_id, error = %e, "Could not mark a campaign busy; the next call tries again.");
        }
    }

    /// Whether a campaign is marked busy: a reservation, take or refused join in one of its
    /// buckets within the mark's life. The passes over its buckets skip it when it is not.
    pub async fn busy(&self, campaign_id: i64) -> Result<bool, GateError> {
        let n: i64 = self
            .query(
                redis::cmd("EXISTS")
                    .arg(self.busy_key(campaign_id))
                    .to_owned(),
            )
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mark_a_second_per_campaign() {
        let activity = Activity::new(Duration::from_secs(15));
        let t0 = Instant::now();
        assert!(activity.claim(7, t0));
        assert!(!activity.claim(7, t0 + Duration::from_millis(999)));
        assert!(activity.claim(8, t0));
        assert!(activity.claim(7, t0 + MARK_EVERY));
    }

    #[test]
    fn a_failed_mark_is_sent_again_by_the_next_call() {
        let activity = Activity::new(Duration::from_secs(15));
        let t0 = Instant::now();
        assert!(activity.claim(7, t0));
        activity.unclaim(7);
        assert!(activity.claim(7, t0));
    }

    #[test]
    fn a_mark_outlives_two_reservation_timeouts() {
        let activity = Activity::new(Duration::from_secs(15));
        assert_eq!(activity.lasts, Duration::from_secs(42));
    }
}
