//! The checker stays near-linear: a clean synthetic history of about a million operations, with
//! eight clients overlapping at every step, checks clean. No timing assertion (timings are for
//! benchmarks); in release it takes a few seconds:
//! `cargo test --release -p firstcome-proof-spec --test scale -- --nocapture`.

mod support;

use firstcome_proof_spec::history::{Func, Value};
use support::{assert_clean, Sale, CAMPAIGN};

const CLIENTS: u64 = 8;

/// `rounds` rounds of eight overlapping operations: joins while stock lasts (a quarter of the
/// winners confirm, a tenth of those cancel… through a refund), SOLD_OUT refusals after.
fn synthetic(stock: i64, rounds: i64) -> Sale {
    let mut s = Sale::new(stock).with_holds(3600);
    let mut next_user = 1;
    for _ in 0..rounds {
        let users: Vec<i64> = (0..CLIENTS as i64).map(|i| next_user + i).collect();
        next_user += CLIENTS as i64;
        for (p, &u) in users.iter().enumerate() {
            s.invoke_join(p as u64, u);
        }
        let mut won = Vec::new();
        for &u in &users {
            if s.free() > 0 {
                let pid = s.commit_win(u, 1);
                won.push((u, pid));
            }
        }
        for (p, &u) in users.iter().enumerate() {
            match won.iter().find(|w| w.0 == u) {
                Some(&(_, pid)) => s.ok(
                    p as u64,
                    Func::Join,
                    Value {
                        participation_id: Some(pid),
                        status: Some("HELD".into()),
                        ..Value::default()
                    },
                ),
                None => s.fail(p as u64, Func::Join, "SOLD_OUT"),
            }
        }
        for &(u, _) in &won {
            if u % 4 == 0 {
                s.confirm(CLIENTS, u);
                if u % 40 == 0 {
                    s.cancel(CLIENTS, u, Func::Refund);
                }
            } else if u % 7 == 0 {
                s.cancel(CLIENTS, u, Func::Cancel);
            }
        }
    }
    let _ = CAMPAIGN;
    s
}

#[test]
fn a_hundred_thousand_operations() {
    let s = synthetic(20_000, 12_000);
    let history = s.history();
    assert!(history.ops.len() > 100_000);
    assert_clean(&support::check(&history, &s.final_state()));
}

#[test]
#[ignore = "a million operations: run in release (see the module doc)"]
fn a_million_operations() {
    let started = std::time::Instant::now();
    let s = synthetic(150_000, 117_000);
    let (history, state) = (s.history(), s.final_state());
    let built = started.elapsed();
    let report = support::check(&history, &state);
    eprintln!(
        "{} operations, {} events: built in {built:?}, checked in {:?}",
        history.ops.len(),
        report.events,
        started.elapsed() - built
    );
    assert!(history.ops.len() >= 1_000_000);
    assert_clean(&report);
}
