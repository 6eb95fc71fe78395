//! What the tests reach of the join path (`startup::testing`, feature `test-hooks`): the group
//! commit's queue, the gate loader's counts and hold points.

use std::sync::Arc;

use crate::join::service::ParticipationService;

impl ParticipationService {
    /// Wins of the campaign queued for its next group-commit transaction (tests synchronize on
    /// it, through `startup::testing`).
    pub(crate) fn group_commit_queued(&self, campaign_id: i64) -> usize {
        self.group_commit.queued(campaign_id)
    }

    /// Gate rebuilds this instance has run that read MySQL (for the tests, as above).
    pub(crate) fn gate_loads(&self) -> u64 {
        self.loader.loads()
    }

    /// Where a test holds a win's write whose guarded decrement matched no row.
    pub(crate) fn refusal_hold(&self) -> Arc<crate::startup::testing::HoldPoint> {
        self.group_commit.refusal_hold()
    }

    /// Where a test holds a win's batch right before its COMMIT.
    pub(crate) fn commit_hold(&self) -> Arc<crate::startup::testing::HoldPoint> {
        self.group_commit.commit_hold()
    }

    /// Where a test holds a refused join's marker read before it reads.
    pub(crate) fn owed_read_hold(&self) -> Arc<crate::startup::testing::HoldPoint> {
        self.loader.owed_read_hold()
    }

    /// What a join the gate refused at `refused_at` learns from the campaign's markers, as the
    /// join path asks it (`gate_step::reserve`), for a test.
    pub(crate) async fn give_owed(
        &self,
        campaign_id: i64,
        refused_at: std::time::Instant,
    ) -> Result<crate::upkeep::loader::Owed, String> {
        let campaign = self
            .campaigns
            .get(&self.db, campaign_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("campaign {campaign_id} not found"))?;
        self.loader
            .give_owed(&campaign, refused_at)
            .await
            .map_err(|e| e.to_string())
    }

    /// Where a test holds a gate rebuild after it filled the winners set, before its load.
    pub(crate) fn rebuild_load_hold(&self) -> Arc<crate::startup::testing::HoldPoint> {
        self.loader.before_load_hold()
    }

    /// Where a test holds a gate rebuild inside its MySQL snapshot, between its two reads.
    pub(crate) fn rebuild_hold(&self) -> Arc<crate::startup::testing::HoldPoint> {
        self.loader.in_snapshot_hold()
    }
}
