//! The relay's failure points for tests: the one place where a test reaches into a running relay
//! (a worker panic at a key, a frozen claim loop, stopped lease renewals). Inert unless a test
//! sets them; the relay's handle carries them (`RelayHandle::faults`).

use std::sync::Mutex;

/// Deliberate failure points for tests (inert unless set).
#[derive(Default)]
pub struct Faults {
    /// A worker panics once when it meets a row with this message key.
    pub panic_on_key: Mutex<Option<String>>,
    /// Held for writing by a test, it freezes the claim loop after its next claim that takes
    /// rows, before it hands them out. With `pause_renewals` too: a paused instance.
    pub pause_claims: tokio::sync::RwLock<()>,
    /// Held for writing by a test, it stops the lease renewals (the leases run out).
    pub pause_renewals: tokio::sync::RwLock<()>,
}

impl Faults {
    pub(super) fn trip(&self, key: &str) {
        let mut slot = self.panic_on_key.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() == Some(key) {
            *slot = None;
            drop(slot);
            panic!("injected relay worker panic at key {key}");
        }
    }
}
