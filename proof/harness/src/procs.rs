//! Child processes of a run and the signals the nemesis sends them. Every child is owned by a
//! [`Proc`], which kills and reaps it when dropped, so a run that fails or panics leaves nothing
//! running. Signals go through `kill(1)`: the crate forbids `unsafe`, and a signal is all the
//! nemesis needs.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::Context;

/// A port free on loopback now. Bound later by a child, so another process may take it first:
/// callers check that the child they started is the one answering.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The signals the nemesis sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Term,
    Stop,
    Cont,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Term => "TERM",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

/// One child process, killed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> anyhow::Result<Self> {
        let name = name.into();
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self {
            name,
            child: Some(child),
        })
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs (a stopped process runs).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        let status = Command::new("kill")
            .arg("-s")
            .arg(signal.name())
            .arg(pid.to_string())
            .status()
            .context("running kill(1)")?;
        anyhow::ensure!(
            status.success(),
            "kill -s {} {} ({}) failed",
            signal.name(),
            pid,
            self.name
        );
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; returns whether it did (and reaps it).
    pub async fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return true;
                }
                Some(Ok(None)) if Instant::now() >= deadline => return false,
                Some(Ok(None)) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// SIGCONT (a stopped process cannot die of SIGTERM), SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if self.child.is_none() {
            return;
        }
        let _ = self.signal(Signal::Cont);
        let _ = self.signal(Signal::Term);
        if !self.wait_exit(grace).await {
            self.kill_now();
        }
    }

    /// SIGKILL and reap, without waiting on anything else.
    pub fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_now();
    }
}
