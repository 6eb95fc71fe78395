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
    let state = serde_json::to_value(sale.final_state()).expect("the state serializes");
    write_with(sale, name, &state)
}

/// Writes the sale's history and `state` as its final state into a fresh directory.
fn write_with(sale: &Sale, name: &str, state: &serde_json::Value) -> (PathBuf, PathBuf) {
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
        serde_json::to_string_pretty(state).expect("the state serializes"),
    )
    .expect("the final state written");
    (h, f)
}

/// A bucketed sale's final state as `run` writes it: one document, the bucket fields of each
/// campaign and participation in it, the gates one entry per bucket, and `bucketRows`.
fn bucketed_document(sale: &Sale) -> serde_json::Value {
    let mut doc = serde_json::to_value(sale.final_state()).expect("the state serializes");
    let extra = serde_json::to_value(sale.bucket_state()).expect("the buckets serialize");
    for part in ["campaigns", "participations"] {
        for from in extra[part].as_array().into_iter().flatten() {
            let into = doc[part]
                .as_array_mut()
                .and_then(|all| all.iter_mut().find(|o| o["id"] == from["id"]))
                .and_then(serde_json::Value::as_object_mut)
                .expect("the row the bucket fields belong to");
            for (k, v) in from.as_object().into_iter().flatten() {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    doc["gates"] = extra["gates"].clone();
    doc["bucketRows"] = extra["bucketRows"].clone();
    doc
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

#[test]
fn check_reads_the_bucket_fields_of_the_final_state_and_judges_them() {
    let mut s = Sale::new(6).with_holds(60).with_buckets(4);
    for (process, user) in (1..).zip(10..=15) {
        s.join(process, user);
    }
    s.cancel(2, 11, Func::Cancel);
    let mut doc = bucketed_document(&s);
    let (h, f) = write_with(&s, "buckets", &doc);
    let clean = Command::new(BIN)
        .arg("check")
        .arg(&h)
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    // A participation outside its user's home bucket: only the bucket fields can tell.
    let first = &mut doc["participations"][0];
    first["bucket"] = serde_json::json!((first["bucket"].as_i64().unwrap() + 1) % 4);
    let (h, f) = write_with(&s, "buckets-wrong", &doc);
    let wrong = Command::new(BIN)
        .arg("check")
        .arg(&h)
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let table = String::from_utf8_lossy(&wrong.stdout);
    assert!(table.contains("wrong bucket"), "{table}");
}
