//! The consumers this service ships; the names `CONSUMERS` accepts.

use std::{fmt, str::FromStr, sync::Arc};

use super::{rewards::RewardsHandler, stats::StatsHandler, Handler};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerName {
    /// Campaign statistics: `campaign_stats`, `campaign_daily_stats`.
    Stats,
    /// Points for winners: `reward_account`, `reward_grant`.
    Rewards,
}

impl ConsumerName {
    pub const ALL: [Self; 2] = [Self::Stats, Self::Rewards];

    /// Used in the group id (`firstcome-<name>`), the dead-letter topic (`<topic>.<name>.dlq`)
    /// and `consumer_inbox.consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stats => "stats",
            Self::Rewards => "rewards",
        }
    }

    pub fn group_id(self) -> String {
        format!("firstcome-{}", self.as_str())
    }

    pub fn handler(self) -> Arc<dyn Handler> {
        match self {
            Self::Stats => Arc::new(StatsHandler),
            Self::Rewards => Arc::new(RewardsHandler),
        }
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConsumerName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown consumer {s:?}; known: stats, rewards"))
    }
}
