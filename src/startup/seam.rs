//! The hooks a `test-hooks` binary arms from its environment (docs/design.md §18, §19): what a
//! test of the real process, or the proof run, cannot inject through the builder. Compiled only
//! with the `test-hooks` feature (never in a release build); read once, at start.
//!
//! - `FIRSTCOME_TEST_CRASH_AT=before-gate-return | before-gate-control`: the process kills itself
//!   with SIGKILL at that point, between two steps a crash can separate (a state change that
//!   closed a win committed and its units not yet in the gate; a live control committed and not
//!   yet in the gate), so a test of the binary can stop it exactly there.
//! - `FIRSTCOME_PLANTED_BUG=return-twice`: a bug planted for the proof's checker to catch (a
//!   checker is only believed once it has failed a service known to be wrong): a cancelled or
//!   expired win gives its units back to MySQL's `remaining_stock` twice. The gate gets them
//!   once, the drift audit then trusts MySQL and lifts the gate to match, and the campaign sells
//!   more units than it has.

use std::sync::Arc;

use crate::hooks::Hooks;

/// Where `FIRSTCOME_TEST_CRASH_AT` may stop the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPoint {
    BeforeGateReturn,
    BeforeGateControl,
}

/// The hooks the environment armed; every other point does nothing.
struct EnvHooks {
    crash_at: Option<CrashPoint>,
    return_twice: bool,
}

/// Reads `FIRSTCOME_TEST_CRASH_AT` and `FIRSTCOME_PLANTED_BUG`; an unknown value arms nothing.
pub fn from_env() -> Arc<dyn Hooks> {
    let crash_at = match std::env::var("FIRSTCOME_TEST_CRASH_AT").as_deref() {
        Ok("before-gate-return") => Some(CrashPoint::BeforeGateReturn),
        Ok("before-gate-control") => Some(CrashPoint::BeforeGateControl),
        _ => None,
    };
    let return_twice = std::env::var("FIRSTCOME_PLANTED_BUG").as_deref() == Ok("return-twice");
    if return_twice {
        tracing::warn!("FIRSTCOME_PLANTED_BUG=return-twice: returns are applied twice to MySQL (a planted bug for the proof run).");
    }
    Arc::new(EnvHooks {
        crash_at,
        return_twice,
    })
}

impl EnvHooks {
    /// SIGKILL now if the environment asked for `point`.
    fn crash_if(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            tracing::warn!(?point, "Crash point reached: SIGKILL (test hook).");
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        }
    }
}

#[async_trait::async_trait]
impl Hooks for EnvHooks {
    fn before_gate_return(&self) {
        self.crash_if(CrashPoint::BeforeGateReturn);
    }

    async fn before_gate_control(&self) {
        self.crash_if(CrashPoint::BeforeGateControl);
    }

    fn units_back_to_mysql(&self, quantity: i32) -> i32 {
        if self.return_twice {
            quantity * 2
        } else {
            quantity
        }
    }
}
