//! The clients: Jepsen's processes, each running one operation at a time against a randomly
//! chosen instance, with a seeded generator per process. Every operation is recorded as an
//! `invoke` and its completion: `ok` for a 2xx, `fail` with the code for a 4xx, `info` for a
//! timeout, a transport error or a 5xx (it may have taken effect).
//!
//! What the clients know of the sale (who won, who confirmed, which campaigns are paused or
//! closed) comes only from the answers they got; it steers the mix (confirm a held win, refund a
//! confirmed one, resume a paused campaign) and is never trusted by the checker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::history::{EntryType, Func, Value};

use super::recorder::Recorder;

/// Weights of the operations (any scale).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub join: u32,
    pub confirm: u32,
    pub cancel: u32,
    pub refund: u32,
    pub stock: u32,
    pub pause: u32,
    pub resume: u32,
    pub close: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            join: 700,
            confirm: 140,
            cancel: 50,
            refund: 40,
            stock: 40,
            pause: 8,
            resume: 20,
            close: 2,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `join=700,confirm=140,…`; names left out keep their default weight.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Mix::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|e| format!("{part:?}: {e}"))?;
            let slot = match name.trim() {
                "join" => &mut mix.join,
                "confirm" => &mut mix.confirm,
                "cancel" => &mut mix.cancel,
                "refund" => &mut mix.refund,
                "stock" => &mut mix.stock,
                "pause" => &mut mix.pause,
                "resume" => &mut mix.resume,
                "close" => &mut mix.close,
                other => return Err(format!("unknown operation {other:?}")),
            };
            *slot = weight;
        }
        Ok(mix)
    }
}

impl Mix {
    fn pick(&self, rng: &mut StdRng) -> Func {
        let table = [
            (Func::Join, self.join),
            (Func::Confirm, self.confirm),
            (Func::Cancel, self.cancel),
            (Func::Refund, self.refund),
            (Func::Stock, self.stock),
            (Func::Pause, self.pause),
            (Func::Resume, self.resume),
            (Func::Close, self.close),
        ];
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Func::Join;
        }
        let mut x = rng.random_range(0..total);
        for (f, w) in table {
            if x < w {
                return f;
            }
            x -= w;
        }
        Func::Join
    }
}

#[derive(Debug, Clone)]
pub struct WorkloadParams {
    pub processes: usize,
    pub users: i64,
    pub mix: Mix,
    pub timeout: Duration,
    pub think: Duration,
    /// Share of joins sent with an `Idempotency-Key` (and retried with it after a timeout).
    pub idempotency_share: f64,
    /// Units a join asks: 1, or up to this (the campaigns' `perUserLimit`).
    pub max_quantity: i64,
    /// Closes are allowed only after this share of the run, and never of the last open campaign.
    pub close_after: f64,
    pub seed: u64,
}

/// A win a client saw, to confirm, cancel or refund later.
#[derive(Debug, Clone, Copy)]
struct Win {
    campaign: i64,
    user: i64,
    confirmed: bool,
    at: Instant,
}

/// What the clients share: the targets and what the answers told them.
pub struct Shared {
    pub bases: Vec<String>,
    /// Set by the nemesis: an instance it took down is avoided while down.
    pub up: Vec<AtomicBool>,
    pub admin_token: String,
    pub campaigns: Vec<i64>,
    pub stop: AtomicBool,
    wins: Mutex<Vec<Win>>,
    paused: Mutex<HashMap<i64, bool>>,
    closed: Mutex<Vec<i64>>,
    keys: AtomicU64,
}

impl Shared {
    pub fn new(bases: Vec<String>, admin_token: String, campaigns: Vec<i64>) -> Self {
        let up = bases.iter().map(|_| AtomicBool::new(true)).collect();
        Self {
            bases,
            up,
            admin_token,
            campaigns,
            stop: AtomicBool::new(false),
            wins: Mutex::new(Vec::new()),
            paused: Mutex::new(HashMap::new()),
            closed: Mutex::new(Vec::new()),
            keys: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One logical process until `shared.stop` or `until`.
pub async fn process(
    id: u64,
    params: Arc<WorkloadParams>,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    http: reqwest::Client,
    started: Instant,
    until: Instant,
) {
    let mut rng = StdRng::seed_from_u64(params.seed ^ (id.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut client = Client {
        id,
        params: &params,
        shared: &shared,
        recorder: &recorder,
        http: &http,
        started,
        until,
    };
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < until {
        let f = params.mix.pick(&mut rng);
        client.step(f, &mut rng).await;
        if !params.think.is_zero() {
            let ms = params.think.as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..=2 * ms))).await;
        }
    }
}

struct Client<'a> {
    id: u64,
    params: &'a WorkloadParams,
    shared: &'a Shared,
    recorder: &'a Recorder,
    http: &'a reqwest::Client,
    started: Instant,
    until: Instant,
}

/// An operation's request, described once for the recorder and the HTTP call.
struct Request {
    f: Func,
    path: String,
    body: Option<serde_json::Value>,
    admin: bool,
    idempotency_key: Option<String>,
    value: Value,
}

impl Client<'_> {
    async fn step(&mut self, f: Func, rng: &mut StdRng) {
        let request = match f {
            Func::Join => None,
            Func::Confirm | Func::Cancel | Func::Refund => self.lifecycle(f, rng),
            _ => self.control(f, rng),
        };
        match request {
            Some(r) => {
                self.send(r, rng).await;
            }
            None => self.join(rng).await,
        }
    }

    fn campaign(&self, rng: &mut StdRng) -> i64 {
        let closed = lock(&self.shared.closed).clone();
        let open: Vec<i64> = self
            .shared
            .campaigns
            .iter()
            .copied()
            .filter(|c| !closed.contains(c))
            .collect();
        // Now and then a closed campaign, for CAMPAIGN_ENDED.
        if open.is_empty() || rng.random_bool(0.03) {
            self.shared.campaigns[rng.random_range(0..self.shared.campaigns.len())]
        } else {
            open[rng.random_range(0..open.len())]
        }
    }

    async fn join(&mut self, rng: &mut StdRng) {
        let campaign = self.campaign(rng);
        let user = rng.random_range(1..=self.params.users);
        let quantity = if self.params.max_quantity > 1 && rng.random_bool(0.2) {
            rng.random_range(2..=self.params.max_quantity)
        } else {
            1
        };
        let key = rng.random_bool(self.params.idempotency_share).then(|| {
            format!(
                "k{}-{}",
                self.id,
                self.shared.keys.fetch_add(1, Ordering::Relaxed)
            )
        });
        // A timed-out join with a key is retried with the same key (at most twice).
        for _attempt in 0..3 {
            let request = Request {
                f: Func::Join,
                path: format!("/api/v1/campaigns/{campaign}/participations"),
                body: Some(json!({"userId": user, "quantity": quantity})),
                admin: false,
                idempotency_key: key.clone(),
                value: Value {
                    campaign: Some(campaign),
                    user: Some(user),
                    quantity: Some(quantity),
                    idempotency_key: key.clone(),
                    ..Value::default()
                },
            };
            let outcome = self.send(request, rng).await;
            if outcome != EntryType::Info || key.is_none() || Instant::now() >= self.until {
                break;
            }
        }
    }

    fn lifecycle(&mut self, f: Func, rng: &mut StdRng) -> Option<Request> {
        let win = {
            let mut wins = lock(&self.shared.wins);
            // Forget what is long settled (expired or confirmed long ago).
            wins.retain(|w| w.at.elapsed() < Duration::from_secs(20));
            let candidates: Vec<usize> = (0..wins.len())
                .filter(|&i| match f {
                    Func::Refund => wins[i].confirmed || rng.random_bool(0.2),
                    _ => !wins[i].confirmed,
                })
                .collect();
            if candidates.is_empty() {
                return None;
            }
            wins[candidates[rng.random_range(0..candidates.len())]]
        };
        let action = if f == Func::Confirm {
            "confirm"
        } else {
            "cancel"
        };
        Some(Request {
            f,
            path: format!(
                "/api/v1/campaigns/{}/participations/{}/{action}",
                win.campaign, win.user
            ),
            body: None,
            admin: f == Func::Refund,
            idempotency_key: None,
            value: Value {
                campaign: Some(win.campaign),
                user: Some(win.user),
                ..Value::default()
            },
        })
    }

    fn control(&mut self, f: Func, rng: &mut StdRng) -> Option<Request> {
        let campaign = self.campaign(rng);
        let paused = lock(&self.shared.paused)
            .get(&campaign)
            .copied()
            .unwrap_or(false);
        let (kind, body, delta) = match f {
            Func::Stock => {
                let delta = if rng.random_bool(0.6) {
                    rng.random_range(1..=5)
                } else {
                    -rng.random_range(1..=3)
                };
                ("stock", Some(json!({ "delta": delta })), Some(delta))
            }
            Func::Pause if !paused => ("pause", None, None),
            Func::Resume if paused || rng.random_bool(0.1) => ("resume", None, None),
            Func::Close => {
                let elapsed = self.started.elapsed().as_secs_f64();
                let total = (self.until - self.started).as_secs_f64();
                let closed = lock(&self.shared.closed).len();
                if elapsed < self.params.close_after * total
                    || closed + 1 >= self.shared.campaigns.len()
                {
                    return None;
                }
                ("close", None, None)
            }
            _ => return None,
        };
        Some(Request {
            f,
            path: format!("/api/v1/admin/campaigns/{campaign}/{kind}"),
            body,
            admin: true,
            idempotency_key: None,
            value: Value {
                campaign: Some(campaign),
                delta,
                ..Value::default()
            },
        })
    }

    /// Records the invoke, sends, records the completion; returns its type.
    async fn send(&mut self, r: Request, rng: &mut StdRng) -> EntryType {
        let instance = {
            let up: Vec<usize> = (0..self.shared.bases.len())
                .filter(|&i| self.shared.up[i].load(Ordering::Relaxed))
                .collect();
            if up.is_empty() {
                rng.random_range(0..self.shared.bases.len())
            } else {
                up[rng.random_range(0..up.len())]
            }
        };
        let url = format!("{}{}", self.shared.bases[instance], r.path);
        let mut builder = self.http.post(url).timeout(self.params.timeout);
        if r.admin {
            builder = builder.bearer_auth(&self.shared.admin_token);
        }
        if let Some(key) = &r.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        builder = match &r.body {
            Some(body) => builder.json(body),
            None => builder.header("content-length", "0"),
        };
        self.recorder
            .client(EntryType::Invoke, self.id, r.f, r.value.clone());
        let (kind, value) = answer(builder.send().await, r.value).await;
        self.learn(r.f, kind, &value);
        self.recorder.client(kind, self.id, r.f, value);
        kind
    }

    /// What the clients keep from an answer, to steer later operations.
    fn learn(&self, f: Func, kind: EntryType, v: &Value) {
        let (Some(campaign), EntryType::Ok) = (v.campaign, kind) else {
            return;
        };
        match f {
            Func::Join => {
                if let Some(user) = v.user {
                    lock(&self.shared.wins).push(Win {
                        campaign,
                        user,
                        confirmed: v.status.as_deref() == Some("CONFIRMED"),
                        at: Instant::now(),
                    });
                }
            }
            Func::Confirm | Func::Cancel | Func::Refund => {
                let mut wins = lock(&self.shared.wins);
                let same = |w: &Win| w.campaign == campaign && Some(w.user) == v.user;
                if f == Func::Confirm {
                    wins.iter_mut().filter(|w| same(w)).for_each(|w| {
                        w.confirmed = true;
                        w.at = Instant::now();
                    });
                } else {
                    wins.retain(|w| !same(w));
                }
            }
            Func::Pause | Func::Resume => {
                lock(&self.shared.paused).insert(campaign, f == Func::Pause);
            }
            Func::Close => lock(&self.shared.closed).push(campaign),
            _ => {}
        }
    }
}

/// The completion of an operation from its HTTP answer.
async fn answer(
    result: reqwest::Result<reqwest::Response>,
    mut value: Value,
) -> (EntryType, Value) {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            value.error = Some(if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connect() {
                "connect".to_owned()
            } else {
                "transport".to_owned()
            });
            return (EntryType::Info, value);
        }
    };
    let status = response.status();
    let body: serde_json::Value = match response.json().await {
        Ok(b) => b,
        Err(e) => {
            value.error = Some(if e.is_timeout() {
                format!("{} timeout reading the body", status.as_u16())
            } else {
                format!("{} unreadable body", status.as_u16())
            });
            return (EntryType::Info, value);
        }
    };
    let int = |k: &str| body.get(k).and_then(serde_json::Value::as_i64);
    let text = |k: &str| {
        body.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if status.is_success() {
        value.participation_id = int("participationId");
        value.status = text("status");
        value.sequence = int("sequence");
        value.control_seq = int("controlCount");
        if value.control_seq.is_some() {
            value.total_stock = int("totalStock");
            value.remaining_stock = int("remainingStock");
        }
        (EntryType::Ok, value)
    } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        value.code = text("code").or_else(|| Some(format!("HTTP_{}", status.as_u16())));
        value.participation_id = int("participationId");
        (EntryType::Fail, value)
    } else {
        value.error = Some(format!(
            "{} {}",
            status.as_u16(),
            text("code").unwrap_or_default()
        ));
        (EntryType::Info, value)
    }
}
