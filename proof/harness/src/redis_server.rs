//! The run's own Redis: a `redis-server` on a free loopback port, without persistence, so the
//! nemesis can flush it, hang it (SIGSTOP) and restart it without touching the test suite's
//! shared Redis. A restart comes back empty on the same port, as a Redis without persistence
//! does after a crash.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

use super::procs::{free_port, Proc, Signal};

pub struct RedisServer {
    pub proc: Proc,
    pub port: u16,
    dir: PathBuf,
    binary: String,
}

impl RedisServer {
    pub async fn start(binary: &str, dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = free_port()?;
        let proc = spawn(binary, &dir, port)?;
        let mut server = Self {
            proc,
            port,
            dir,
            binary: binary.to_owned(),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        self.proc.signal(signal)
    }

    /// SIGKILL, then a new empty server on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill_now();
        self.proc = spawn(&self.binary, &self.dir, self.port)?;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url())?;
        loop {
            anyhow::ensure!(self.proc.is_running(), "redis-server exited at start");
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server not ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(binary: &str, dir: &Path, port: u16) -> anyhow::Result<Proc> {
    Proc::spawn(
        "redis",
        Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}
