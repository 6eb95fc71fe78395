//! Each solution of the bot check accepted once (docs/design.md §16 "Bots at the door"): a
//! solved challenge's signature is spent with `SET NX` on a key of its own (any Redis Cluster
//! slot) that lives as long as the challenge could still be used.

use std::time::Duration;

use crate::gate::{Gate, GateError};

impl Gate {
    /// Spends the pass named `id` (a challenge's signature): `true` the first time, `false` once
    /// it was spent. The key is forgotten after `lives`.
    pub async fn spend_bot_pass(&self, id: &str, lives: Duration) -> Result<bool, GateError> {
        let millis = u64::try_from(lives.as_millis()).unwrap_or(u64::MAX).max(1);
        let set = redis::cmd("SET")
            .arg(format!("{}bot:{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .to_owned();
        let spent: Option<String> = self.query(set).await?;
        Ok(spent.is_some())
    }
}
