//! The instances' timeouts, and the bounds the checker is told of them.
//!
//! By default a run uses the **production defaults**: the instances get no timeout variable at
//! all, so every deadline is the service's own (`HTTP_REQUEST_TIMEOUT_MS`, `REDIS_TIMEOUT_MS`,
//! `DB_STATEMENT_TIMEOUT_MS`, `SOLD_OUT_MEMO_MS`, `RESERVATION_TIMEOUT_MS`,
//! `KAFKA_MESSAGE_TIMEOUT_MS`, `SHUTDOWN_TIMEOUT_MS`, …). The contract's bounds (design §18.1)
//! are promised under those defaults, so that is what the proof runs; the values the checker
//! needs are read from the binary's own `serve --help`, so a default changed in the service is
//! followed without touching the harness. `--fast-timeouts` gives the instances the short
//! timeouts runs used before (2 s requests, 3 s reservations): quicker to settle, but it proves
//! the contract only for that configuration.
//!
//! Two settings stay the harness's in both modes, because they set the pace of a fault rather
//! than a bound the checker relies on: the relay's lease (`RELAY_LEASE_MS`, 3 s, so a stopped
//! instance loses its shards within the 5 s the `stop` fault lasts; the default 30 s would need a
//! half-minute stop per fault) and its poll interval.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context;

/// The instances' timeouts as they run, in ms.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// `--fast-timeouts`: the variables below are set on every instance; otherwise none is.
    pub fast: bool,
    /// `HTTP_REQUEST_TIMEOUT_MS`: a request is answered within this.
    pub request_ms: u64,
    /// `RESERVATION_TIMEOUT_MS`: a dead instance's reservation is given back after this.
    pub reservation_ms: u64,
    /// `SOLD_OUT_MEMO_MS`.
    pub sold_out_memo_ms: u64,
    /// `SHUTDOWN_TIMEOUT_MS`: how long a SIGTERM may take.
    pub shutdown_ms: u64,
}

/// The variables the production defaults are read for.
const READ: [&str; 4] = [
    "HTTP_REQUEST_TIMEOUT_MS",
    "RESERVATION_TIMEOUT_MS",
    "SOLD_OUT_MEMO_MS",
    "SHUTDOWN_TIMEOUT_MS",
];

impl Timeouts {
    /// The short timeouts of `--fast-timeouts`, with the given sold-out memo.
    pub fn fast(sold_out_memo_ms: u64) -> Self {
        Self {
            fast: true,
            request_ms: 2_000,
            reservation_ms: 3_000,
            sold_out_memo_ms,
            shutdown_ms: 5_000,
        }
    }

    /// The service's own defaults, read from `<binary> serve --help`.
    pub fn production(binary: &Path) -> anyhow::Result<Self> {
        let out = Command::new(binary)
            .args(["serve", "--help"])
            .env_clear()
            .output()
            .with_context(|| format!("running {} serve --help", binary.display()))?;
        let help = String::from_utf8_lossy(&out.stdout);
        let read = |var: &str| {
            help_default(&help, var).with_context(|| {
                format!(
                    "{} serve --help names no default for {var}",
                    binary.display()
                )
            })
        };
        let [request, reservation, memo, shutdown] = READ;
        Ok(Self {
            fast: false,
            request_ms: read(request)?,
            reservation_ms: read(reservation)?,
            sold_out_memo_ms: read(memo)?,
            shutdown_ms: read(shutdown)?,
        })
    }

    /// How long the harness waits for a SIGTERMed instance before it kills it.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_ms) + Duration::from_secs(5)
    }

    /// The variables every instance gets: none at production defaults.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        if !self.fast {
            return Vec::new();
        }
        vec![
            ("HTTP_REQUEST_TIMEOUT_MS", self.request_ms.to_string()),
            ("RESERVATION_TIMEOUT_MS", self.reservation_ms.to_string()),
            ("SOLD_OUT_MEMO_MS", self.sold_out_memo_ms.to_string()),
            ("KAFKA_MESSAGE_TIMEOUT_MS", "2000".to_owned()),
            ("SHUTDOWN_TIMEOUT_MS", self.shutdown_ms.to_string()),
        ]
    }

    pub fn describe(&self) -> String {
        format!(
            "{}: HTTP_REQUEST_TIMEOUT_MS {}, RESERVATION_TIMEOUT_MS {}, SOLD_OUT_MEMO_MS {}",
            if self.fast {
                "fast timeouts"
            } else {
                "production defaults (no timeout variable set)"
            },
            self.request_ms,
            self.reservation_ms,
            self.sold_out_memo_ms
        )
    }
}

/// The `[default: N]` clap prints after `[env: VAR=]` in a help text.
fn help_default(help: &str, var: &str) -> Option<u64> {
    let at = help.find(&format!("[env: {var}="))?;
    // Its own option's text only: up to the next option's line (`  --name …`).
    let own: String = help[at..]
        .lines()
        .enumerate()
        .take_while(|(i, line)| *i == 0 || !line.trim_start().starts_with('-'))
        .map(|(_, line)| line)
        .collect::<Vec<_>>()
        .join(" ");
    let from = own.find("[default: ")? + "[default: ".len();
    let value = &own[from..];
    value[..value.find(']')?].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_is_read_after_its_variable() {
        let help =
            "      --http-request-timeout-ms <HTTP_REQUEST_TIMEOUT_MS>\n          A request \
                    still running after this gets 503 (100–600000) [env: HTTP_REQUEST_TIMEOUT_MS=] \
                    [default: 10000]\n      --sold-out-memo-ms <SOLD_OUT_MEMO_MS>\n          … \
                    [env: SOLD_OUT_MEMO_MS=]\n          [default: 100]\n";
        assert_eq!(help_default(help, "HTTP_REQUEST_TIMEOUT_MS"), Some(10_000));
        assert_eq!(help_default(help, "SOLD_OUT_MEMO_MS"), Some(100));
        assert_eq!(help_default(help, "RESERVATION_TIMEOUT_MS"), None);
        let without = "[env: ADMISSION_SECRET=]\n      --next <N>\n          [default: 5]\n";
        assert_eq!(help_default(without, "ADMISSION_SECRET"), None);
    }

    #[test]
    fn production_defaults_set_no_variable() {
        let t = Timeouts {
            fast: false,
            ..Timeouts::fast(100)
        };
        assert!(t.env().is_empty());
        assert!(Timeouts::fast(100)
            .env()
            .iter()
            .any(|(k, v)| *k == "HTTP_REQUEST_TIMEOUT_MS" && v == "2000"));
    }
}
