//! The clients: Jepsen's processes, each running one operation at a time against a randomly
//! chosen instance, with a seeded generator per process. Every operation is recorded as an
//! `invoke` and its completion ([`super::request`]).
//!
//! Two kinds of process: the sale's (`--processes`), which join the open campaigns and confirm,
//! cancel, refund and control any campaign by the mix; and the waiting room's
//! (`--queue-processes`, [`super::waiting_room`]), users who queue for a queued campaign, poll,
//! and join with their token. Joins ask 1 unit, or up to the campaign's `perUserLimit`, and now
//! and then more than it (which must be refused as invalid).
//!
//! What the clients know of the sale (who won, who confirmed, which campaigns are paused or
//! closed, which tokens were issued) comes only from the answers they got; it steers the mix
//! (confirm a held win, refund a confirmed one, resume a paused campaign, borrow a token) and is
//! never trusted by the checker.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

use crate::history::{EntryType, Func, Value};

use super::{mix::Mix, recorder::Recorder, request::Request};

#[derive(Debug, Clone)]
pub struct WorkloadParams {
    pub processes: usize,
    pub users: i64,
    pub mix: Mix,
    pub timeout: Duration,
    pub think: Duration,
    /// Share of joins sent with an `Idempotency-Key` (and retried with it after a timeout).
    pub idempotency_share: f64,
    /// Share of joins that ask more than the campaign's `perUserLimit` (refused as invalid).
    pub over_limit_share: f64,
    /// Waiting-room clients: how often they poll, and how long a user waits before leaving.
    pub poll_every: Duration,
    pub patience: Duration,
    /// Closes are allowed only after this share of the run, and never of the last open campaign.
    pub close_after: f64,
    /// Share of the joins that are carts (design §22), when the run has groups.
    pub cart_share: f64,
    /// A grouped campaign's users are drawn from `1..=group_users`.
    pub group_users: i64,
    pub seed: u64,
}

/// What the harness set up for a campaign, for the clients to steer by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    pub per_user_limit: i64,
    /// `admission: QUEUE`: joined only through the waiting room.
    pub queued: bool,
    /// The campaign's `buckets` (§21): 1 for an unbucketed one, whose gate keys, rows and
    /// event keys are the campaign's own; above 1, one gate and one MySQL row per bucket.
    pub buckets: i64,
    /// The run's group (its index among `--groups` then `--bucketed-groups`) the campaign is
    /// in (design §22); `None`: in none.
    pub group: Option<usize>,
    /// Created with `confirmWithinSeconds: 0` (wins final at once) rather than the run's.
    pub no_window: bool,
}

/// A win a client saw, to confirm, cancel or refund later.
#[derive(Debug, Clone, Copy)]
pub(super) struct Win {
    pub campaign: i64,
    pub user: i64,
    pub confirmed: bool,
    pub at: Instant,
}

/// What the clients share: the targets and what the answers told them.
pub struct Shared {
    pub bases: Vec<String>,
    /// Each instance's name, as the nemesis's faults name their target.
    pub names: Vec<String>,
    /// Set by the nemesis: an instance it took down is avoided while down.
    pub up: Vec<AtomicBool>,
    pub admin_token: String,
    pub campaigns: Vec<i64>,
    pub plans: HashMap<i64, Plan>,
    pub stop: AtomicBool,
    pub(super) wins: Mutex<Vec<Win>>,
    pub(super) paused: Mutex<HashMap<i64, bool>>,
    pub(super) closed: Mutex<Vec<i64>>,
    /// Tokens the room issued lately (campaign, user, token): what a dishonest client borrows.
    pub(super) tokens: Mutex<Vec<(i64, i64, String)>>,
    keys: AtomicU64,
    /// The run's groups' ids (a plan's `group` indexes them).
    pub groups: Vec<i64>,
    /// Purchases the answers told of, to confirm or cancel whole ([`super::carts`]).
    pub(super) purchases: Mutex<Vec<super::carts::Bought>>,
}

impl Shared {
    pub fn new(bases: Vec<String>, admin_token: String, plans: Vec<(i64, Plan)>) -> Self {
        let up = bases.iter().map(|_| AtomicBool::new(true)).collect();
        let names = (1..=bases.len())
            .map(super::system::instance_name)
            .collect();
        Self {
            bases,
            names,
            up,
            admin_token,
            campaigns: plans.iter().map(|(id, _)| *id).collect(),
            plans: plans.into_iter().collect(),
            stop: AtomicBool::new(false),
            wins: Mutex::new(Vec::new()),
            paused: Mutex::new(HashMap::new()),
            closed: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
            keys: AtomicU64::new(0),
            groups: Vec::new(),
            purchases: Mutex::new(Vec::new()),
        }
    }

    pub fn with_groups(self, groups: Vec<i64>) -> Self {
        Self { groups, ..self }
    }

    /// The campaigns of group `g` (its index), in creation order; only those the answers
    /// left open unless `closed_too`.
    pub(super) fn group_campaigns(&self, g: usize, closed_too: bool) -> Vec<i64> {
        let closed = lock(&self.closed).clone();
        (self.campaigns.iter().copied())
            .filter(|c| self.plans.get(c).is_some_and(|p| p.group == Some(g)))
            .filter(|c| closed_too || !closed.contains(c))
            .collect()
    }

    /// The campaigns joined without a waiting room, or with one.
    pub(super) fn joinable(&self, queued: bool) -> Vec<i64> {
        let closed = lock(&self.closed).clone();
        self.campaigns
            .iter()
            .copied()
            .filter(|c| self.plans.get(c).is_some_and(|p| p.queued == queued))
            .filter(|c| !closed.contains(c))
            .collect()
    }

    /// Whether the answers so far left the campaign paused.
    pub(super) fn is_paused(&self, campaign: i64) -> bool {
        lock(&self.paused).get(&campaign).copied().unwrap_or(false)
    }

    pub(super) fn limit(&self, campaign: i64) -> i64 {
        self.plans.get(&campaign).map_or(1, |p| p.per_user_limit)
    }

    pub(super) fn next_key(&self, process: u64) -> String {
        format!("k{process}-{}", self.keys.fetch_add(1, Ordering::Relaxed))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
    let mut rng = seeded(&params, id);
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

/// Each process's own generator, from the run's seed.
pub(super) fn seeded(params: &WorkloadParams, id: u64) -> StdRng {
    StdRng::seed_from_u64(params.seed ^ (id.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// One logical process: it runs one operation at a time.
pub(super) struct Client<'a> {
    pub id: u64,
    pub params: &'a WorkloadParams,
    pub shared: &'a Shared,
    pub recorder: &'a Recorder,
    pub http: &'a reqwest::Client,
    pub started: Instant,
    pub until: Instant,
}

impl Client<'_> {
    async fn step(&mut self, f: Func, rng: &mut StdRng) {
        let request = match f {
            Func::Join
                if !self.shared.groups.is_empty() && rng.random_bool(self.params.cart_share) =>
            {
                return self.cart(rng).await;
            }
            Func::Join => None,
            Func::Confirm | Func::Cancel | Func::Refund => match self.purchase_lifecycle(f, rng) {
                Some(r) => Some(r),
                None => self.lifecycle(f, rng),
            },
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
        // Now and then a closed campaign, for CAMPAIGN_ENDED.
        let open = self.shared.joinable(false);
        let any: Vec<i64> = (self.shared.campaigns.iter().copied())
            .filter(|c| self.shared.plans.get(c).is_some_and(|p| !p.queued))
            .collect();
        let pool = if open.is_empty() || rng.random_bool(0.03) {
            &any
        } else {
            &open
        };
        if pool.is_empty() {
            return;
        }
        let campaign = pool[rng.random_range(0..pool.len())];
        // A group's users are fewer, so that they come back to it and reach its limit.
        let grouped = self
            .shared
            .plans
            .get(&campaign)
            .is_some_and(|p| p.group.is_some());
        let users = if grouped {
            self.params.group_users
        } else {
            self.params.users
        };
        let user = rng.random_range(1..=users);
        let quantity = self.quantity(campaign, rng);
        self.join_with(campaign, user, quantity, None, rng).await;
    }

    /// Units a join asks: 1, or up to the campaign's limit, and now and then more than it.
    pub(super) fn quantity(&self, campaign: i64, rng: &mut StdRng) -> i64 {
        let limit = self.shared.limit(campaign);
        if rng.random_bool(self.params.over_limit_share) {
            limit + rng.random_range(1..=2)
        } else if limit > 1 && rng.random_bool(0.2) {
            rng.random_range(2..=limit)
        } else {
            1
        }
    }

    /// A join, with an `Idempotency-Key` now and then (never past the limit: such a join is
    /// refused, nothing to retry); one that timed out with a key is retried with it, at most
    /// twice. Returns the last completion.
    pub(super) async fn join_with(
        &mut self,
        campaign: i64,
        user: i64,
        quantity: i64,
        token: Option<String>,
        rng: &mut StdRng,
    ) -> (EntryType, Value) {
        let within = quantity <= self.shared.limit(campaign);
        let key = (within && rng.random_bool(self.params.idempotency_share))
            .then(|| self.shared.next_key(self.id));
        let mut body = json!({"userId": user, "quantity": quantity});
        if let Some(token) = &token {
            body["admissionToken"] = json!(token);
        }
        let mut last = (EntryType::Info, Value::default());
        for _attempt in 0..3 {
            let mut request = Request::post(
                Func::Join,
                format!("/api/v1/campaigns/{campaign}/participations"),
                Value {
                    campaign: Some(campaign),
                    user: Some(user),
                    quantity: Some(quantity),
                    idempotency_key: key.clone(),
                    admission_token: token.clone(),
                    ..Value::default()
                },
            );
            request.body = Some(body.clone());
            request.idempotency_key = key.clone();
            last = self.send(request, rng).await;
            if last.0 != EntryType::Info || key.is_none() || Instant::now() >= self.until {
                break;
            }
        }
        last
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
        let mut request = Request::post(
            f,
            format!(
                "/api/v1/campaigns/{}/participations/{}/{action}",
                win.campaign, win.user
            ),
            Value {
                campaign: Some(win.campaign),
                user: Some(win.user),
                ..Value::default()
            },
        );
        request.admin = f == Func::Refund;
        Some(request)
    }

    fn control(&mut self, f: Func, rng: &mut StdRng) -> Option<Request> {
        let campaign = self.campaign(rng);
        let paused = self.shared.is_paused(campaign);
        let (kind, body, delta) = match f {
            Func::Stock => {
                // A queued campaign mostly loses stock, so it sells out and stays near it:
                // tickets are then WAITLISTED and what comes back (an expiry, a cancel, a few
                // units added) goes out as offers (design §22). The others mostly gain.
                let queued = self.shared.plans.get(&campaign).is_some_and(|p| p.queued);
                let delta = match (queued, rng.random_bool(if queued { 0.3 } else { 0.6 })) {
                    (false, true) => rng.random_range(1..=5),
                    (true, true) => rng.random_range(1..=2),
                    (_, false) => -rng.random_range(1..=3),
                };
                ("stock", Some(json!({ "delta": delta })), Some(delta))
            }
            Func::Pause if !paused => ("pause", None, None),
            Func::Resume if paused || rng.random_bool(0.1) => ("resume", None, None),
            Func::Close => {
                let elapsed = self.started.elapsed().as_secs_f64();
                let total = (self.until - self.started).as_secs_f64();
                // Never a queued campaign (its room is what the waiting-room clients are for),
                // nor the last open one.
                let queued = self.shared.plans.get(&campaign).is_none_or(|p| p.queued);
                if elapsed < self.params.close_after * total
                    || queued
                    || self.shared.joinable(false).len() < 2
                {
                    return None;
                }
                ("close", None, None)
            }
            _ => return None,
        };
        let mut request = Request::post(
            f,
            format!("/api/v1/admin/campaigns/{campaign}/{kind}"),
            Value {
                campaign: Some(campaign),
                delta,
                ..Value::default()
            },
        );
        request.body = body;
        request.admin = true;
        Some(request)
    }
}
