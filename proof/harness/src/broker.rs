//! The Kafka broker of a run: librdkafka's mock cluster in a process of its own (the hidden
//! `firstcome-proof broker` subcommand), so the nemesis can SIGSTOP it without stopping the
//! harness, and the service instances outlive each other against one broker.
//!
//! The cluster is `!Send`: it lives on the subcommand's main thread, owned by a holder client
//! (KAFKA-NOTES.md). The process prints its bootstrap address on stdout, then reads commands on
//! stdin: `down` and `up` take the broker down and up (`broker_down`: connections are closed
//! and refused while the data stays), which stands in for "killed then restarted": a mock
//! cluster that is really killed comes back empty and on another port, which no real broker
//! does. It exits when stdin closes, so a harness that dies takes its broker with it.

use std::{
    io::{BufRead, Write},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    config::ClientConfig,
    producer::{BaseProducer, Producer},
};

use super::procs::{Proc, Signal};

/// The service's topics (docs/design.md §4, §8): the events, the relay's dead letters, and one
/// dead-letter topic per consumer.
pub fn service_topics(topic: &str) -> Vec<String> {
    vec![
        topic.to_owned(),
        format!("{topic}.dlq"),
        format!("{topic}.stats.dlq"),
        format!("{topic}.rewards.dlq"),
    ]
}

/// The subcommand: runs the cluster until stdin closes.
pub fn serve(partitions: i32, topics: &[String]) -> anyhow::Result<()> {
    let holder: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .set("log_level", "3")
        .create()
        .context("starting the mock cluster")?;
    let cluster = holder
        .client()
        .mock_cluster()
        .context("the holder client has no mock cluster")?;
    for topic in topics {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating topic {topic}"))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cluster.bootstrap_servers())?;
    out.flush()?;
    drop(out);
    for line in std::io::stdin().lock().lines() {
        let result = match line?.trim() {
            "down" => cluster.broker_down(1),
            "up" => cluster.broker_up(1),
            _ => Ok(()),
        };
        if let Err(e) = result {
            eprintln!("broker: {e}");
        }
    }
    Ok(())
}

/// The broker process, as the harness holds it.
pub struct Broker {
    pub proc: Proc,
    pub bootstrap: String,
    stdin: std::process::ChildStdin,
}

impl Broker {
    pub fn start(partitions: i32, topic: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("the harness's own executable")?;
        let mut proc = Proc::spawn(
            "kafka",
            Command::new(exe)
                .arg("broker")
                .arg("--partitions")
                .arg(partitions.to_string())
                .arg("--topics")
                .arg(service_topics(topic).join(","))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let child = proc.child_mut().context("the broker exited")?;
        let stdin = child.stdin.take().context("the broker's stdin")?;
        let stdout = child.stdout.take().context("the broker's stdout")?;
        // Read the one line on a thread, so a broker that never prints cannot hang the run.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .context("the broker did not print its address within 30 s")?;
        let bootstrap = line.trim().to_owned();
        anyhow::ensure!(!bootstrap.is_empty(), "the broker exited before it started");
        Ok(Self {
            proc,
            bootstrap,
            stdin,
        })
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        self.proc.signal(signal)
    }

    /// `down` or `up` (see the module doc).
    pub fn command(&mut self, command: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }
}
