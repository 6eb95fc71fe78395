//! The binary: `check` reads the two files and exits 0 or 1; `run` refuses bad options before
//! starting anything.

#[path = "../../spec/tests/support/mod.rs"]
mod support;

use std::{path::PathBuf, process::Command};

use firstcome_proof::history::Func;
use support::Sale;

const BIN: &str = env!("CARGO_BIN_EXE_firstcome-proof");

/// Writes the sale's history (JSON Lines) and final state into a fresh directory.
fn write(sale: &Sale, name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("firstcome-proof-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let history: String = sale
        .entries
        .iter()
        .map(|(_, e)| serde_json::to_string(e).expect("an entry serializes") + "\n")
        .collect();
    let (h, f) = (dir.join("history.jsonl"), dir.join("final.json"));
    std::fs::write(&h, history).expect("the history written");
    std::fs::write(
        &f,
        serde_json::to_string_pretty(&sale.final_state()).expect("the state serializes"),
    )
    .expect("the final state written");
    (h, f)
}

#[test]
fn check_exits_0_on_a_clean_history_and_1_on_an_anomaly() {
    let mut s = Sale::new(1);
    s.join(1, 10);
    s.cancel(9, 10, Func::Refund);
    s.join_refused(2, 11, "SOLD_OUT");
    let (h, f) = write(&s, "memo");
    let strict = Command::new(BIN)
        .arg("check")
        .arg(&h)
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    let table = String::from_utf8_lossy(&strict.stdout);
    assert!(
        table.contains("unjustified refusal                 1"),
        "{table}"
    );
    let relaxed = Command::new(BIN)
        .args(["check", "--sold-out-memo-ms", "100", "--json"])
        .arg(&h)
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        relaxed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&relaxed.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&relaxed.stdout).unwrap();
    assert_eq!(report["relaxations"][firstcome_proof::check::MEMO], 1);
}

#[test]
fn run_without_a_service_binary_exits_2_before_starting_anything() {
    let out = Command::new(BIN)
        .args(["run", "--service-bin", "/nonexistent/firstcome"])
        .args(["--database-url", "mysql://u:p@127.0.0.1:1"])
        .args(["--out"])
        .arg(std::env::temp_dir().join(format!("firstcome-proof-nobin-{}", std::process::id())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no service binary"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_refuses_an_unknown_fault_kind() {
    let out = Command::new(BIN)
        .args(["run", "--faults", "kill,meteor"])
        .args(["--database-url", "mysql://u:p@127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("meteor"));
}

#[test]
fn an_unreadable_history_exits_2() {
    let dir = std::env::temp_dir().join(format!("firstcome-proof-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("h.jsonl"), "{\"type\":\"invoke\"}\n").unwrap();
    std::fs::write(dir.join("f.json"), "{}").unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(dir.join("h.jsonl"))
        .arg(dir.join("f.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}
