//! The shutdown tests' child processes seen from the test: their stdout lines (collected by
//! `binary::collect_lines`) searched, signals sent to them, and the broker process started and its address read.

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use crate::binary::collect_lines;
use crate::{consumer_helpers::ChildProcess, wait::wait_until};

use super::child_test;

pub fn count_lines(lines: &Mutex<Vec<String>>, pattern: &str) -> usize {
    lines
        .lock()
        .expect("lines")
        .iter()
        .filter(|l| l.contains(pattern))
        .count()
}

pub async fn wait_for_line(lines: &Arc<Mutex<Vec<String>>>, what: &str, pattern: &str) -> String {
    let mut found = None;
    wait_until(what, Duration::from_secs(60), || {
        found = lines
            .lock()
            .expect("lines")
            .iter()
            .find(|l| l.contains(pattern))
            .cloned();
        std::future::ready(found.is_some())
    })
    .await;
    found.expect("found")
}

/// A Kafka broker in a process of its own (the embedded broker), and its address.
pub async fn broker_process() -> (ChildProcess, String) {
    let mut child = child_test("host_a_broker", &[]);
    let lines = collect_lines(&mut child.child);
    let line = wait_for_line(&lines, "the broker process to start", "BOOTSTRAP=").await;
    // The harness prints the test's name on the same line first.
    let bootstrap = line
        .split("BOOTSTRAP=")
        .nth(1)
        .expect("an address")
        .trim()
        .to_string();
    (child, bootstrap)
}

pub fn signal(child: &ChildProcess, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal}");
}
