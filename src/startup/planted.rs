//! Bugs planted on purpose, for the proof run to catch (issue 38, docs/design.md §18): a checker
//! is only believed once it has failed a service known to be wrong. Compiled only with the
//! `test-hooks` feature (never in a release build) and armed only by `FIRSTCOME_PLANTED_BUG`:
//!
//! - `return-twice`: a cancelled or expired win gives its units back to MySQL's
//!   `remaining_stock` twice. The gate gets them once, the drift audit then trusts MySQL and lifts
//!   the gate to match, and the campaign sells more units than it has.

use std::sync::OnceLock;

/// The bugs `FIRSTCOME_PLANTED_BUG` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    ReturnTwice,
}

/// The bug this process was started with, if any (read once).
pub fn planted() -> Option<PlantedBug> {
    static BUG: OnceLock<Option<PlantedBug>> = OnceLock::new();
    *BUG.get_or_init(|| match std::env::var("FIRSTCOME_PLANTED_BUG").as_deref() {
        Ok("return-twice") => {
            tracing::warn!("FIRSTCOME_PLANTED_BUG=return-twice: returns are applied twice to MySQL (a planted bug for the proof run).");
            Some(PlantedBug::ReturnTwice)
        }
        _ => None,
    })
}
