//! What the tests read of the join path (`startup::testing`): the group commit's queue, the gate
//! loader's counts, what a refused join learns from the markers. Reads only: where a test holds
//! the join, it does so through the one seam, `crate::hooks`.

use crate::join::service::ParticipationService;

impl ParticipationService {
    /// Wins of the campaign queued for its next group-commit transaction (tests synchronize on
    /// it, through `startup::testing`).
    pub fn group_commit_queued(&self, campaign_id: i64) -> usize {
        self.settle.queued(campaign_id)
    }

    /// Gate rebuilds this instance has run that read MySQL (for the tests, as above).
    pub fn gate_loads(&self) -> u64 {
        self.reserve.loader.loads()
    }

    /// What a join the gate refused at `refused_at` learns from the campaign's markers, as the
    /// join path asks it (`join::reserve`), for a test.
    pub async fn give_owed(
        &self,
        campaign_id: i64,
        refused_at: std::time::Instant,
    ) -> Result<crate::upkeep::loader::Owed, String> {
        let campaign = self
            .admit
            .campaigns
            .get(&self.admit.db, campaign_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("campaign {campaign_id} not found"))?;
        self.reserve
            .loader
            .give_owed(&campaign, campaign.slot(0), refused_at)
            .await
            .map_err(|e| e.to_string())
    }
}
