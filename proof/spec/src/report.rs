//! The checker's verdict: anomalies by kind with the operations and events involved, the counts a
//! run reports (operations by function and outcome, faults by kind, relaxations used), and its
//! rendering as a table for people or JSON for tools.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::history::Op;

/// The kinds of anomaly, in the order the table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// More units held and confirmed than the stock, at some point of the committed order or in
    /// MySQL at the end.
    Oversell,
    /// An acknowledged write (an `ok` join above all) that the order or MySQL does not have, or
    /// has otherwise than answered.
    LostWin,
    /// Something in the order that no operation invoked (or only refused ones).
    PhantomWin,
    /// A user who won twice in one campaign.
    DoubleWin,
    /// A step the model forbids (confirm after cancel, expiry before the deadline, …).
    IllegalTransition,
    /// A refusal the order does not justify at any prefix real time allows, outside the
    /// relaxations.
    UnjustifiedRefusal,
    /// The order contradicts real time: an operation that completed before another was invoked
    /// has its event after the other's.
    RealTimeInversion,
    /// A campaign's events first delivered out of outbox id order (design §2.5): the topic is
    /// not the committed order.
    OrderBreach,
    /// An event of a bucketed campaign under a key §21 does not give it: a win under another
    /// key than its user's home bucket's (or a bucket the campaign lacks, or the campaign's own
    /// key), a control under a bucket's key.
    WrongKey,
    /// A later event of a win (confirmed, cancelled, expired, refunded) under another key than
    /// the win's own (§21: they share it, so that per-key order covers the win's life).
    SplitWin,
    /// In one bucket's committed order, a win's `sequence` repeated or not above the previous
    /// win's (§21: handed out per bucket).
    BucketSequence,
    /// An event MySQL committed that the topic lacks, or a duplicate whose payload differs.
    MissingOrDuplicatedEvent,
    /// MySQL's end differs from the model's.
    DatabaseMismatch,
    /// MySQL or the gate keeps something of a user outside the user's home bucket (a
    /// participation row, a gate's user or returned win), or names a bucket the campaign lacks.
    WrongBucket,
    /// A bucket row or the undealt pool below zero, or the pool and the bucket rows not adding
    /// up to the campaign's `remainingStock`.
    BucketStock,
    /// A consumer's tables differ from the model's.
    ConsumerMismatch,
    /// The gate's stock or sets in Redis differ from the model's once settled.
    GateDrift,
    /// A win past the campaign's `perUserLimit`, or a join past it not refused as invalid (§3).
    PerUserLimit,
    /// On a queued campaign, a win without a token the room issued to its user, or a token
    /// that won twice (§16).
    AdmissionBreach,
    /// The waiting room out of arrival order: a ticket admitted while one that queued before it
    /// still waited, or a ticket moved back (§16).
    QueueOrder,
    /// A group's per-user limit passed (§22): a user's units across the group's campaigns
    /// (every win, whatever became of it) above the limit, MySQL's `group_holding` not their
    /// sum, or a `GROUP_LIMIT_REACHED` the committed wins do not justify.
    GroupLimit,
    /// A cart not all or nothing (§22): a purchase with other items than its request asked, a
    /// refused cart that wrote, an item whose purchase row is missing, items of one purchase
    /// left in different states, an answered cart MySQL lacks, an item's event without its
    /// purchase, a win without a purchase that no single join could have written.
    CartBreach,
    /// An input the checker cannot read as the contract says (an unknown event type, a
    /// missing field).
    MalformedInput,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 23] = [
        AnomalyKind::Oversell,
        AnomalyKind::LostWin,
        AnomalyKind::PhantomWin,
        AnomalyKind::DoubleWin,
        AnomalyKind::IllegalTransition,
        AnomalyKind::UnjustifiedRefusal,
        AnomalyKind::RealTimeInversion,
        AnomalyKind::OrderBreach,
        AnomalyKind::WrongKey,
        AnomalyKind::SplitWin,
        AnomalyKind::BucketSequence,
        AnomalyKind::MissingOrDuplicatedEvent,
        AnomalyKind::DatabaseMismatch,
        AnomalyKind::WrongBucket,
        AnomalyKind::BucketStock,
        AnomalyKind::ConsumerMismatch,
        AnomalyKind::GateDrift,
        AnomalyKind::PerUserLimit,
        AnomalyKind::AdmissionBreach,
        AnomalyKind::QueueOrder,
        AnomalyKind::GroupLimit,
        AnomalyKind::CartBreach,
        AnomalyKind::MalformedInput,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AnomalyKind::Oversell => "oversell",
            AnomalyKind::LostWin => "lost win",
            AnomalyKind::PhantomWin => "phantom win",
            AnomalyKind::DoubleWin => "double win",
            AnomalyKind::IllegalTransition => "illegal transition",
            AnomalyKind::UnjustifiedRefusal => "unjustified refusal",
            AnomalyKind::RealTimeInversion => "real-time inversion",
            AnomalyKind::OrderBreach => "order breach",
            AnomalyKind::WrongKey => "wrong key",
            AnomalyKind::SplitWin => "split win",
            AnomalyKind::BucketSequence => "bucket sequence",
            AnomalyKind::MissingOrDuplicatedEvent => "missing or duplicated event",
            AnomalyKind::DatabaseMismatch => "database mismatch",
            AnomalyKind::WrongBucket => "wrong bucket",
            AnomalyKind::BucketStock => "bucket stock",
            AnomalyKind::ConsumerMismatch => "consumer mismatch",
            AnomalyKind::GateDrift => "gate drift",
            AnomalyKind::PerUserLimit => "per-user limit",
            AnomalyKind::AdmissionBreach => "admission breach",
            AnomalyKind::QueueOrder => "queue order",
            AnomalyKind::GroupLimit => "group limit",
            AnomalyKind::CartBreach => "cart breach",
            AnomalyKind::MalformedInput => "malformed input",
        }
    }
}

/// An event of the order, as an anomaly cites it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    pub event_id: String,
    pub event_type: &'static str,
    /// Position in the campaign's deduplicated order (a bucketed campaign's: its keys merged,
    /// `check::merge`; an order breach cites positions in the key's own order).
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub kind: AnomalyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<i64>,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<Op>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRef>,
}

/// A refusal or answer accepted only through a documented relaxation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relaxed {
    pub relaxation: &'static str,
    pub mechanism: String,
    pub op: Op,
}

/// A run of a campaign's `SOLD_OUT` refusals given while its committed order had the units
/// free (excused or not), unbroken by a win or a justified refusal; times on the history's
/// clock, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stretch {
    pub campaign: i64,
    /// The first refusal's invoke.
    pub from: i64,
    /// The latest completion among its refusals.
    pub to: i64,
    pub refusals: usize,
}

impl Stretch {
    pub fn nanos(&self) -> i64 {
        self.to.saturating_sub(self.from)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// f → outcome → count.
    pub operations: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Fault kind → times injected.
    pub faults: BTreeMap<String, u64>,
    pub campaigns: usize,
    /// Distinct events in the orders, and copies beyond the first.
    pub events: usize,
    pub duplicate_events: usize,
    /// Refusal codes the model does not judge (rate limits, validation, …) → count.
    pub refusals_not_judged: BTreeMap<String, u64>,
    /// Relaxation → refusals it excused (design §18.1: each within its bound).
    pub relaxations: BTreeMap<&'static str, u64>,
    /// Campaign → its longest stretch refusing joins while the committed order had units free
    /// (only campaigns that had one; `check::stretch` defines it).
    pub stretches: BTreeMap<i64, Stretch>,
    pub relaxed: Vec<Relaxed>,
    /// Comparisons skipped because the final state lacked their part.
    pub skipped: Vec<String>,
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }

    pub fn push(
        &mut self,
        kind: AnomalyKind,
        campaign: Option<i64>,
        detail: impl Into<String>,
    ) -> &mut Anomaly {
        self.anomalies.push(Anomaly {
            kind,
            campaign,
            detail: detail.into(),
            ops: Vec::new(),
            events: Vec::new(),
        });
        let last = self.anomalies.len() - 1;
        &mut self.anomalies[last]
    }

    pub fn relax(&mut self, relaxation: &'static str, mechanism: String, op: &Op) {
        *self.relaxations.entry(relaxation).or_default() += 1;
        self.relaxed.push(Relaxed {
            relaxation,
            mechanism,
            op: op.clone(),
        });
    }

    /// The run's longest stretch of refusals with units free, then each campaign's.
    fn render_stretches(&self) -> String {
        let ms = |s: &Stretch| s.nanos() as f64 / 1e6;
        let Some(top) = self.stretches.values().max_by_key(|s| s.nanos()) else {
            return "longest refusal stretch with units free: none".to_owned();
        };
        let per: Vec<String> = self
            .stretches
            .values()
            .map(|s| {
                format!(
                    "campaign {} {:.1} ms ({} refusals)",
                    s.campaign,
                    ms(s),
                    s.refusals
                )
            })
            .collect();
        format!(
            "longest refusal stretch with units free: {:.1} ms (campaign {}, {} refusals from {:.3} s); per campaign: {}",
            ms(top),
            top.campaign,
            top.refusals,
            top.from as f64 / 1e9,
            per.join(", ")
        )
    }

    /// The table for people; at most `details` anomalies of each kind are spelled out.
    pub fn render(&self, details: usize) -> String {
        let mut out = String::new();
        let total_ops: u64 = self.operations.values().flat_map(|m| m.values()).sum();
        let _ = writeln!(
            out,
            "firstcome-proof check: {total_ops} operations, {} campaigns, {} events ({} duplicate copies)",
            self.campaigns, self.events, self.duplicate_events
        );
        let _ = writeln!(
            out,
            "\n{:<10} {:>10} {:>10} {:>10}",
            "operation", "ok", "fail", "info"
        );
        for (f, by) in &self.operations {
            let n = |o: &str| by.get(o).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{f:<10} {:>10} {:>10} {:>10}",
                n("ok"),
                n("fail"),
                n("info")
            );
        }
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "\nfaults injected: {}", or_none(list(&self.faults)));
        let relaxations: BTreeMap<String, u64> = self
            .relaxations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let _ = writeln!(out, "relaxations used: {}", or_none(list(&relaxations)));
        let _ = writeln!(out, "{}", self.render_stretches());
        let _ = writeln!(
            out,
            "refusals not judged: {}",
            or_none(list(&self.refusals_not_judged))
        );
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {s}");
        }
        let _ = writeln!(out, "\n{:<28} {:>8}", "anomaly", "count");
        for kind in AnomalyKind::ALL {
            let _ = writeln!(out, "{:<28} {:>8}", kind.label(), self.count(kind));
        }
        for kind in AnomalyKind::ALL {
            let of_kind: Vec<_> = self.anomalies.iter().filter(|a| a.kind == kind).collect();
            for a in of_kind.iter().take(details) {
                render_anomaly(&mut out, a);
            }
            if of_kind.len() > details {
                let _ = writeln!(out, "  … {} more {}", of_kind.len() - details, kind.label());
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.is_clean() {
                "no anomalies"
            } else {
                "ANOMALIES FOUND"
            }
        );
        out
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "none".to_owned()
    } else {
        s
    }
}

fn render_anomaly(out: &mut String, a: &Anomaly) {
    let campaign = a
        .campaign
        .map(|c| format!(" campaign {c}:"))
        .unwrap_or_default();
    let _ = writeln!(out, "\n[{}]{campaign} {}", a.kind.label(), a.detail);
    for op in &a.ops {
        let value = serde_json::to_string(&op.value).unwrap_or_default();
        let complete = op
            .complete
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "  op process {} {} {} invoked {} completed {} {value}",
            op.process,
            op.f.name(),
            op.outcome.name(),
            op.invoke,
            complete
        );
    }
    for e in &a.events {
        let _ = writeln!(
            out,
            "  event #{} {} {}",
            e.position, e.event_type, e.event_id
        );
    }
}
