//! Token buckets in Redis (`lua/rate_limit.lua`, docs/design.md §16): one per user and one per
//! client IP, shared by every instance, each on its own key (any Redis Cluster slot).

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::{
    config::rate_limit::Limit,
    gate::{Gate, GateError},
};

static RATE_LIMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/rate_limit.lua")));

/// Whose bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBucket<'a> {
    User(i64),
    Ip(&'a str),
}

impl Gate {
    /// Takes one token from `bucket`: `None` when one was there, else how long until one is.
    pub async fn take_token(
        &self,
        bucket: TokenBucket<'_>,
        limit: Limit,
    ) -> Result<Option<Duration>, GateError> {
        let key = match bucket {
            TokenBucket::User(user) => format!("{}rl:u:{user}", self.prefix),
            TokenBucket::Ip(ip) => format!("{}rl:ip:{ip}", self.prefix),
        };
        let mut inv = RATE_LIMIT.key(key);
        inv.arg(limit.per_second.max(1)).arg(limit.burst.max(1));
        let (taken, wait_ms): (i64, i64) = self.run(inv).await?;
        Ok((taken != 1).then(|| Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))))
    }
}
