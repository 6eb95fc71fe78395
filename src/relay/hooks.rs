//! [`RelayHooks`]: the points where a test may step into a running relay (a worker meeting a
//! row, the claim loop between a claim and handing its rows out, leadership before a lease
//! renewal). The relay holds one injected trait object; a production relay holds [`NoHooks`],
//! whose calls do nothing. The failure injectors themselves live with the tests.

use std::sync::Arc;

use async_trait::async_trait;

#[async_trait]
pub trait RelayHooks: Send + Sync {
    /// A worker is about to send the row with this message key.
    fn before_send(&self, _key: &str) {}

    /// The claim loop has claimed rows and is about to hand them to the workers.
    async fn after_claim(&self) {}

    /// Leadership is about to renew this instance's leases.
    async fn before_renewal(&self) {}
}

/// The production relay's hooks: none.
pub struct NoHooks;

impl RelayHooks for NoHooks {}

/// The hooks of a relay nobody injected any into.
pub fn none() -> Arc<dyn RelayHooks> {
    Arc::new(NoHooks)
}
