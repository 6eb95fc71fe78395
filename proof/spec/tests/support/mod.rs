//! Builds crafted histories and final states: a `Sale` records operations as a harness would and
//! commits events as a correct service would, keeping just enough bookkeeping to write the final
//! state. It never refuses anything: a test plants an anomaly by committing what a correct
//! service would not, or by editing the history or the final state afterwards.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use firstcome_proof_spec::{
    check::{self, Options},
    final_state::{
        BucketState, Campaign, ControlRow, FinalState, Gate, Participation, RewardAccount,
        RewardGrant, Stats, TopicRecord,
    },
    history::{self, Entry, EntryType, Func, History, Process, Value},
    report::{AnomalyKind, Report},
};
use serde_json::json;

pub mod bucketed;
pub mod drops;

use bucketed::Bucketing;

pub const CAMPAIGN: i64 = 1;
pub const POINTS: i64 = 10;
/// Harness clock step between entries: 1 ms.
const STEP: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub struct Win {
    pub pid: i64,
    pub quantity: i64,
    pub status: &'static str,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub reason: Option<&'static str>,
    /// When it was closed, as MySQL's `cancelled_at` (the event's `occurredAt`).
    pub cancelled_at: Option<DateTime<Utc>>,
}

pub struct Sale {
    pub entries: Vec<(usize, Entry)>,
    pub records: Vec<TopicRecord>,
    now: u64,
    hold: Option<Duration>,
    total: i64,
    free: i64,
    paused: bool,
    closed: bool,
    next_pid: i64,
    next_event: u64,
    pub wins: BTreeMap<i64, Win>,
    controls: Vec<ControlRow>,
    stats: Stats,
    points: BTreeMap<i64, i64>,
    grants: Vec<RewardGrant>,
    /// Set for a bucketed campaign (§21): its buckets, pool, keys and outbox.
    pub bucketing: Option<Bucketing>,
}

pub fn ok_value(user: i64) -> Value {
    Value {
        campaign: Some(CAMPAIGN),
        user: Some(user),
        ..Value::default()
    }
}

impl Sale {
    /// A campaign of `stock` units whose wins are final at once.
    pub fn new(stock: i64) -> Self {
        Self {
            entries: Vec::new(),
            records: Vec::new(),
            now: 0,
            hold: None,
            total: stock,
            free: stock,
            paused: false,
            closed: false,
            next_pid: 100,
            next_event: 0,
            wins: BTreeMap::new(),
            controls: Vec::new(),
            stats: Stats {
                campaign: CAMPAIGN,
                ..Stats::default()
            },
            points: BTreeMap::new(),
            grants: Vec::new(),
            bucketing: None,
        }
    }

    /// A campaign of `buckets` buckets: its stock dealt in slices, the rest in the pool; wins
    /// keyed `1:<home>`, controls `1`, each key in a partition of its own.
    pub fn with_buckets(mut self, buckets: i64) -> Self {
        self.bucketing = Some(Bucketing::new(self.total, buckets));
        self
    }

    /// Wins are held for `seconds` (of the database's clock, which runs with the harness's here).
    pub fn with_holds(mut self, seconds: i64) -> Self {
        self.hold = Some(Duration::seconds(seconds));
        self
    }

    pub fn wall(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default()
            + Duration::nanoseconds(self.now as i64)
    }

    pub fn free(&self) -> i64 {
        self.free
    }

    /// Moves the clocks on.
    pub fn sleep_ms(&mut self, ms: u64) {
        self.now += ms * 1_000_000;
    }

    fn entry(&mut self, kind: EntryType, process: u64, f: Func, value: Value) {
        self.now += STEP;
        let line = self.entries.len() + 1;
        self.entries.push((
            line,
            Entry {
                kind,
                process: Process::Client(process),
                time: self.now,
                f,
                value,
            },
        ));
    }

    // ---- operations, low level -------------------------------------------------------------

    pub fn invoke(&mut self, process: u64, f: Func, value: Value) {
        self.entry(EntryType::Invoke, process, f, value);
    }
    pub fn invoke_join(&mut self, process: u64, user: i64) {
        self.invoke(
            process,
            Func::Join,
            Value {
                quantity: Some(1),
                ..ok_value(user)
            },
        );
    }
    pub fn ok(&mut self, process: u64, f: Func, value: Value) {
        self.entry(EntryType::Ok, process, f, value);
    }
    pub fn fail(&mut self, process: u64, f: Func, code: &str) {
        self.entry(
            EntryType::Fail,
            process,
            f,
            Value {
                code: Some(code.to_owned()),
                ..Value::default()
            },
        );
    }
    pub fn info(&mut self, process: u64, f: Func) {
        self.entry(
            EntryType::Info,
            process,
            f,
            Value {
                error: Some("timeout".to_owned()),
                ..Value::default()
            },
        );
    }
    /// A join of one unit sent to `instance` (a fault's `target`).
    pub fn invoke_join_on(&mut self, process: u64, user: i64, instance: &str) {
        self.invoke(
            process,
            Func::Join,
            Value {
                quantity: Some(1),
                instance: Some(instance.to_owned()),
                ..ok_value(user)
            },
        );
    }
    pub fn nemesis(&mut self, fault: &str, phase: Option<&str>) {
        self.nemesis_on(fault, phase, None);
    }
    /// A fault of the nemesis that names what it hit.
    pub fn nemesis_on(&mut self, fault: &str, phase: Option<&str>, target: Option<&str>) {
        self.now += STEP;
        let value = Value {
            fault: Some(fault.to_owned()),
            phase: phase.map(str::to_owned),
            target: target.map(str::to_owned),
            ..Value::default()
        };
        let line = self.entries.len() + 1;
        self.entries.push((
            line,
            Entry {
                kind: EntryType::Info,
                process: Process::Nemesis(history::NemesisTag::Nemesis),
                time: self.now,
                f: Func::Nemesis,
                value,
            },
        ));
    }

    // ---- events, as a correct service commits them (but never refused here) ----------------

    pub fn publish(&mut self, payload: serde_json::Value) {
        if let Some(b) = &mut self.bucketing {
            let record = b.record(payload);
            self.records.push(record);
            return;
        }
        let offset = self.records.len() as i64;
        self.records.push(TopicRecord {
            partition: 0,
            offset,
            key: Some(CAMPAIGN.to_string()),
            payload,
        });
    }

    fn event_id(&mut self) -> String {
        self.next_event += 1;
        format!("0193a5f2-0000-7000-8000-{:012}", self.next_event)
    }

    /// Commits a win of `user` and returns its participation id.
    pub fn commit_win(&mut self, user: i64, quantity: i64) -> i64 {
        let pid = self.next_pid;
        self.next_pid += 1;
        let at = self.wall();
        let status = if self.hold.is_some() {
            "HELD"
        } else {
            "CONFIRMED"
        };
        let hold_expires_at = self.hold.map(|h| at + h);
        let id = self.event_id();
        let sequence = match &mut self.bucketing {
            Some(b) => b.take(user, quantity),
            None => pid,
        };
        let mut payload = json!({"eventId": id, "eventType": "ParticipationAccepted", "occurredAt": at,
            "campaignId": CAMPAIGN, "participationId": pid, "userId": user, "quantity": quantity,
            "sequence": sequence, "rewardPoints": POINTS, "status": status});
        if let Some(h) = hold_expires_at {
            payload["holdExpiresAt"] = json!(h);
        }
        self.publish(payload);
        self.free -= quantity;
        self.wins.insert(
            user,
            Win {
                pid,
                quantity,
                status,
                hold_expires_at,
                reason: None,
                cancelled_at: None,
            },
        );
        self.stats_add(|s| &mut s.accepted_count, 1);
        self.stats_add(|s| &mut s.accepted_quantity, quantity);
        self.stats_add(|s| &mut s.active_quantity, quantity);
        if status == "CONFIRMED" {
            self.stats_add(|s| &mut s.confirmed_count, 1);
            self.grant(&id, user, POINTS * quantity);
        }
        pid
    }

    pub fn commit_confirm(&mut self, user: i64) {
        let w = self.wins[&user].clone();
        let id = self.event_id();
        let at = self.wall();
        self.publish(json!({"eventId": id, "eventType": "ParticipationConfirmed", "occurredAt": at,
            "campaignId": CAMPAIGN, "participationId": w.pid, "userId": user, "quantity": w.quantity,
            "rewardPoints": POINTS}));
        if let Some(w) = self.wins.get_mut(&user) {
            w.status = "CONFIRMED";
        }
        self.stats_add(|s| &mut s.confirmed_count, 1);
        self.grant(&id, user, POINTS * w.quantity);
    }

    pub fn commit_cancel(&mut self, user: i64, reason: &'static str) {
        let w = self.wins[&user].clone();
        let id = self.event_id();
        let at = match reason {
            // The sweeper runs a little after the deadline.
            "EXPIRED" => w.hold_expires_at.unwrap_or(self.wall()) + Duration::milliseconds(200),
            _ => self.wall(),
        };
        self.publish(json!({"eventId": id, "eventType": "ParticipationCancelled", "occurredAt": at,
            "campaignId": CAMPAIGN, "participationId": w.pid, "userId": user, "quantity": w.quantity,
            "reason": reason, "previousStatus": if w.status == "HELD" { "HELD" } else { "CONFIRMED" },
            "rewardPoints": POINTS}));
        self.free += w.quantity;
        if let Some(b) = &mut self.bucketing {
            b.give(user, w.quantity);
        }
        if w.status == "CONFIRMED" {
            self.grant(&id, user, -POINTS * w.quantity);
        }
        let entry = self.wins.get_mut(&user).expect("a win");
        entry.status = if reason == "EXPIRED" {
            "EXPIRED"
        } else {
            "CANCELLED"
        };
        entry.reason = Some(reason);
        entry.cancelled_at = Some(at);
        self.stats_add(|s| &mut s.active_quantity, -w.quantity);
        if reason == "EXPIRED" {
            self.stats_add(|s| &mut s.expired_count, 1);
        } else {
            self.stats_add(|s| &mut s.cancelled_count, 1);
        }
    }

    /// Commits a control and returns its number.
    pub fn commit_control(&mut self, kind: &str, delta: i64) -> i64 {
        let seq = self.controls.len() as i64 + 1;
        let id = self.event_id();
        let (total, free) = (self.total + delta, self.free + delta);
        let event_type = match kind {
            "STOCK" => "CampaignStockChanged",
            "PAUSE" => "CampaignPaused",
            "RESUME" => "CampaignResumed",
            _ => "CampaignClosed",
        };
        let mut payload = json!({"eventId": id, "eventType": event_type, "occurredAt": self.wall(),
            "campaignId": CAMPAIGN, "controlSeq": seq, "changedBy": "ops", "totalStock": total,
            "remainingStock": free});
        if kind == "STOCK" {
            payload["delta"] = json!(delta);
            if delta > 0 {
                self.stats_add(|s| &mut s.stock_added, delta);
            } else {
                self.stats_add(|s| &mut s.stock_withdrawn, -delta);
            }
        }
        self.publish(payload);
        if let (Some(b), "STOCK") = (&mut self.bucketing, kind) {
            b.stock(delta);
        }
        (self.total, self.free) = (total, free);
        match kind {
            "PAUSE" => self.paused = true,
            "RESUME" => self.paused = false,
            "CLOSE" => self.closed = true,
            _ => {}
        }
        self.stats_add(|s| &mut s.controls_applied, 1);
        self.controls.push(ControlRow {
            campaign: CAMPAIGN,
            seq,
            kind: kind.to_owned(),
            delta,
            total_stock: total,
            remaining_stock: free,
            event_id: id,
        });
        seq
    }

    fn grant(&mut self, event_id: &str, user: i64, points: i64) {
        *self.points.entry(user).or_default() += points;
        self.grants.push(RewardGrant {
            event_id: event_id.to_owned(),
            user,
            campaign: CAMPAIGN,
            points,
        });
    }

    fn stats_add(&mut self, field: impl Fn(&mut Stats) -> &mut Option<i64>, n: i64) {
        let f = field(&mut self.stats);
        *f = Some(f.unwrap_or(0) + n);
    }

    // ---- operations with their effect, sequential ------------------------------------------

    pub fn join(&mut self, process: u64, user: i64) -> i64 {
        self.invoke_join(process, user);
        let pid = self.commit_win(user, 1);
        let status = self.wins[&user].status.to_owned();
        self.ok(
            process,
            Func::Join,
            Value {
                participation_id: Some(pid),
                status: Some(status),
                ..Value::default()
            },
        );
        pid
    }

    pub fn join_refused(&mut self, process: u64, user: i64, code: &str) {
        self.invoke_join(process, user);
        self.fail(process, Func::Join, code);
    }

    pub fn confirm(&mut self, process: u64, user: i64) {
        self.invoke(process, Func::Confirm, ok_value(user));
        self.commit_confirm(user);
        self.ok(
            process,
            Func::Confirm,
            Value {
                status: Some("CONFIRMED".into()),
                ..Value::default()
            },
        );
    }

    pub fn cancel(&mut self, process: u64, user: i64, f: Func) {
        self.invoke(process, f, ok_value(user));
        self.commit_cancel(user, if f == Func::Refund { "ADMIN" } else { "USER" });
        self.ok(
            process,
            f,
            Value {
                status: Some("CANCELLED".into()),
                ..Value::default()
            },
        );
    }

    pub fn control(&mut self, process: u64, f: Func, delta: i64) {
        let value = Value {
            campaign: Some(CAMPAIGN),
            delta: (f == Func::Stock).then_some(delta),
            ..Value::default()
        };
        self.invoke(process, f, value);
        let kind = match f {
            Func::Stock => "STOCK",
            Func::Pause => "PAUSE",
            Func::Resume => "RESUME",
            _ => "CLOSE",
        };
        let seq = self.commit_control(kind, delta);
        self.ok(
            process,
            f,
            Value {
                control_seq: Some(seq),
                total_stock: Some(self.total),
                remaining_stock: Some(self.free),
                ..Value::default()
            },
        );
    }

    // ---- the end --------------------------------------------------------------------------

    pub fn history(&self) -> History {
        history::pair(self.entries.clone()).expect("a well-formed history")
    }

    pub fn final_state(&self) -> FinalState {
        let participations = self
            .wins
            .iter()
            .map(|(&user, w)| Participation {
                id: w.pid,
                campaign: CAMPAIGN,
                user,
                quantity: w.quantity,
                status: w.status.to_owned(),
                accepted_at: None,
                hold_expires_at: w.hold_expires_at,
                cancel_reason: w.reason.map(str::to_owned),
                cancelled_at: w.cancelled_at,
            })
            .collect();
        let returned = self
            .wins
            .values()
            .filter(|w| w.reason.is_some())
            .map(|w| w.pid)
            .collect();
        let mut stats = self.stats.clone();
        stats.events_applied = Some(self.records.len() as i64);
        stats.paused = Some(self.paused);
        stats.closed = Some(self.closed);
        let gates = match &self.bucketing {
            Some(b) => b.gates(&self.wins).into_iter().map(|g| g.gate).collect(),
            None => vec![Gate {
                campaign: CAMPAIGN,
                stock: Some(self.free),
                users: Some(self.wins.keys().copied().collect()),
                returned: Some(returned),
                pending: Some(0),
            }],
        };
        FinalState {
            campaigns: vec![Campaign {
                id: CAMPAIGN,
                total_stock: self.total,
                remaining_stock: self.free,
                paused: self.paused,
                closed: self.closed,
                reward_points: POINTS,
                confirm_within_seconds: self.hold.map_or(0, |h| h.num_seconds()),
                ..Campaign::default()
            }],
            participations,
            controls: Some(self.controls.clone()),
            gates: Some(gates),
            events: self.records.clone(),
            outbox: self.bucketing.as_ref().map(|b| b.outbox.clone()),
            stats: Some(vec![stats]),
            rewards: Some(
                self.points
                    .iter()
                    .map(|(&user, &points)| RewardAccount { user, points })
                    .collect(),
            ),
            grants: Some(self.grants.clone()),
        }
    }

    /// What the final state says of buckets: nothing for an unbucketed campaign.
    pub fn bucket_state(&self) -> BucketState {
        match &self.bucketing {
            Some(b) => b.state(&self.wins),
            None => BucketState::default(),
        }
    }

    pub fn check_with(&self, opts: &Options) -> Report {
        match self.bucketing {
            Some(_) => check::check_with_buckets(
                &self.history(),
                &self.final_state(),
                &self.bucket_state(),
                opts,
            ),
            None => check::check(&self.history(), &self.final_state(), opts),
        }
    }

    pub fn check(&self) -> Report {
        self.check_with(&Options::default())
    }
}

/// Asserts a clean verdict, printing the table otherwise.
pub fn assert_clean(report: &Report) {
    assert!(
        report.is_clean(),
        "expected no anomalies:\n{}",
        report.render(50)
    );
}

/// Asserts an anomaly of `kind` (others may come with it).
pub fn assert_flags(report: &Report, kind: AnomalyKind) {
    // Shown with --nocapture: what else the planted fault set off.
    for a in &report.anomalies {
        eprintln!("  [{}] {}", a.kind.label(), a.detail);
    }
    assert!(
        report.count(kind) > 0,
        "expected {}:\n{}",
        kind.label(),
        report.render(50)
    );
}

pub fn check(history: &History, state: &FinalState) -> Report {
    check::check(history, state, &Options::default())
}

/// Checks a bucketed sale's history against a final state and its bucket fields.
pub fn check_buckets(history: &History, state: &FinalState, buckets: &BucketState) -> Report {
    check::check_with_buckets(history, state, buckets, &Options::default())
}
