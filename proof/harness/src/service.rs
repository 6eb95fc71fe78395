//! The service under test: instances of the real `firstcome` binary as child processes, each on
//! its own loopback port, all on one database (through the proxy), one Redis key prefix and one
//! broker, sharing the admin token and the admission secret. An instance keeps its port across
//! restarts, so the clients' addresses stay valid.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

use super::{
    procs::{free_port, Proc, Signal},
    timeouts::Timeouts,
};

/// What every instance is started with.
#[derive(Debug, Clone)]
pub struct ServiceEnv {
    pub binary: PathBuf,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub bootstrap: String,
    pub admin_token: String,
    pub admission_secret: String,
    /// Set on every instance only with `--fast-timeouts` (`Timeouts::env`).
    pub timeouts: Timeouts,
    pub group_protocol: String,
    /// `GROUP_COMMIT_BUCKET_LANES` of every instance (`--bucket-lanes`).
    pub bucket_lanes: u32,
    /// `FIRSTCOME_PLANTED_BUG` of every instance (a `test-hooks` build only).
    pub planted_bug: Option<String>,
    pub log_dir: PathBuf,
}

pub struct Instance {
    pub name: String,
    pub port: u16,
    env: ServiceEnv,
    proc: Option<Proc>,
    /// Restarts so far; each start logs to its own file.
    starts: u32,
}

impl Instance {
    pub fn new(name: &str, env: ServiceEnv) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            port: free_port()?,
            env,
            proc: None,
            starts: 0,
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the binary and waits until this process (its own token) answers and is ready. A
    /// port taken meanwhile by another process makes the child exit: then another port.
    pub async fn start(&mut self, migrate: bool, http: &reqwest::Client) -> anyhow::Result<()> {
        for _attempt in 0..5 {
            self.starts += 1;
            let log = self
                .env
                .log_dir
                .join(format!("{}.{}.log", self.name, self.starts));
            self.proc = Some(self.spawn(migrate, &log)?);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let running = self.proc.as_mut().is_some_and(Proc::is_running);
                if !running {
                    break;
                }
                if self.is_ready(http).await {
                    return Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} was not ready within 60 s (log: {})",
                    self.name,
                    log.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Exited at start: the port may have been taken.
            self.port = free_port()?;
        }
        anyhow::bail!("{} did not start in 5 attempts", self.name)
    }

    fn spawn(&self, migrate: bool, log: &Path) -> anyhow::Result<Proc> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let e = &self.env;
        Proc::spawn(
            self.name.clone(),
            Command::new(&e.binary)
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("DATABASE_URL", &e.database_url)
                .env("REDIS_URL", &e.redis_url)
                .env("REDIS_KEY_PREFIX", &e.redis_prefix)
                .env("KAFKA_BOOTSTRAP_SERVERS", &e.bootstrap)
                .env("HTTP_ADDR", format!("127.0.0.1:{}", self.port))
                .env("ADMIN_TOKEN", &e.admin_token)
                .env("ADMISSION_SECRET", &e.admission_secret)
                .env("HTTP_MAX_CONNECTIONS_PER_CLIENT", "1000000")
                // Every simulated client is 127.0.0.1: one client to the room's ticket cap.
                .env("QUEUE_TICKETS_PER_CLIENT", "0")
                // The bot check at the room's door, at a cost that solves in a millisecond.
                .env("BOT_CHECK", "pow")
                .env("BOT_CHECK_COST", "10")
                .env("MIGRATE_ON_START", if migrate { "true" } else { "false" })
                // The relay's pace, not a bound the checker relies on (`timeouts`).
                .env("RELAY_LEASE_MS", "3000")
                .env("RELAY_POLL_INTERVAL_MS", "50")
                .envs(e.timeouts.env())
                .env("CONSUMER_GROUP_PROTOCOL", &e.group_protocol)
                .env("GROUP_COMMIT_BUCKET_LANES", e.bucket_lanes.to_string())
                .env(
                    "RUST_LOG",
                    std::env::var("PROOF_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .envs(
                    e.planted_bug
                        .iter()
                        .map(|bug| ("FIRSTCOME_PLANTED_BUG", bug)),
                )
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out),
        )
    }

    async fn is_ready(&self, http: &reqwest::Client) -> bool {
        let ours = http
            .get(format!("{}/api/v1/admin/outbox", self.base()))
            .bearer_auth(&self.env.admin_token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        ours && http
            .get(format!("{}/health/ready", self.base()))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        self.proc
            .as_ref()
            .with_context(|| format!("{} is not running", self.name))?
            .signal(signal)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill_now();
        }
    }

    /// SIGTERM; returns whether it exited within `grace` (killed otherwise).
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut p) = self.proc.take() else {
            return true;
        };
        let _ = p.signal(Signal::Cont);
        let _ = p.signal(Signal::Term);
        let exited = p.wait_exit(grace).await;
        p.kill_now();
        exited
    }

    pub fn is_up(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }
}
