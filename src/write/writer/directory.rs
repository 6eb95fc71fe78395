//! Which instance writes a campaign: every instance writes a heartbeat into one Redis hash every
//! second ([`run`]); a campaign's writer is the live instance (heartbeat at most [`LIVE_FOR`]
//! old) with the highest rendezvous hash of (campaign, instance). Each instance computes it from
//! its own view of the hash, so views may differ for a moment (an instance starting, stopping or
//! dying), and then two instances write one campaign: correct, as every writer's transaction
//! takes the campaign's row lock, only slower (docs/design.md §23).
//!
//! When this instance's view is stale (Redis unreachable for [`LIVE_FOR`]) it writes every
//! campaign itself.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::gate::Gate;

/// How often an instance writes its heartbeat and reads the others'.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// An instance whose heartbeat is older than this is not live; a view older than this is stale.
pub const LIVE_FOR: Duration = Duration::from_secs(3);

/// A heartbeat older than this is removed from the hash (an instance gone for good).
const FORGET_AFTER_MS: i64 = 60_000;

/// This instance's view of the live instances.
pub struct Directory {
    me: Arc<str>,
    view: RwLock<View>,
}

#[derive(Default)]
struct View {
    /// The live instances, this one among them.
    live: Vec<Arc<str>>,
    /// When it was read; `None` before the first read.
    read_at: Option<Instant>,
}

impl Directory {
    pub fn new(me: Arc<str>) -> Self {
        Self {
            me,
            view: RwLock::default(),
        }
    }

    /// This instance's id.
    pub fn me(&self) -> &Arc<str> {
        &self.me
    }

    /// The instance that writes `campaign_id` when it is another one; `None` when this instance
    /// writes it (it is the writer, or its view is stale).
    pub fn writer_of(&self, campaign_id: i64, now: Instant) -> Option<Arc<str>> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let fresh = view
            .read_at
            .is_some_and(|at| now.saturating_duration_since(at) < LIVE_FOR);
        if !fresh {
            return None;
        }
        let writer = writer_among(campaign_id, &view.live)?;
        (**writer != *self.me).then(|| writer.clone())
    }

    /// Takes the heartbeats read at `now_ms` (epoch) as the view; returns the instances to
    /// forget (long dead).
    fn note(&self, beats: HashMap<String, i64>, now_ms: i64, at: Instant) -> Vec<String> {
        let live_ms = i64::try_from(LIVE_FOR.as_millis()).unwrap_or(i64::MAX);
        let mut live: Vec<Arc<str>> = vec![self.me.clone()];
        let mut dead = Vec::new();
        for (id, beat) in beats {
            let age = now_ms - beat;
            if age > FORGET_AFTER_MS {
                dead.push(id);
            } else if age <= live_ms && *id != *self.me {
                live.push(id.into());
            }
        }
        live.sort();
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        *view = View {
            live,
            read_at: Some(at),
        };
        dead
    }
}

/// The writer of `campaign_id` among the live instances `ids`: the highest score, ties (never
/// seen) to the greater id.
pub fn writer_among<S: AsRef<str>>(campaign_id: i64, ids: &[S]) -> Option<&S> {
    ids.iter().max_by(|x, y| {
        let (x, y) = (x.as_ref(), y.as_ref());
        (score(campaign_id, x), x).cmp(&(score(campaign_id, y), y))
    })
}

/// A campaign's score for an instance (rendezvous hashing): FNV-1a over the instance's id and
/// the campaign's id, then a 64-bit finalizer so that close ids spread. The same on every
/// instance and every build.
fn score(campaign_id: i64, instance: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in instance.bytes().chain(campaign_id.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Writes this instance's heartbeat every [`BEAT_EVERY`] and reads the others' until `stop`;
/// then removes its own, so the others stop handing it wins at once.
pub async fn run(directory: Arc<Directory>, gate: Gate, stop: CancellationToken) {
    let me = directory.me().to_string();
    loop {
        let now_ms = Utc::now().timestamp_millis();
        match gate.heartbeat(&me, now_ms).await {
            Ok(beats) => {
                let dead = directory.note(beats, now_ms, Instant::now());
                if let Err(e) = gate.forget_instances(&dead).await {
                    tracing::debug!(error = %e, "Could not forget dead instances' heartbeats.");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "Could not write the heartbeat; trying again.");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(BEAT_EVERY) => {}
        }
    }
    if let Err(e) = gate.forget_instances(&[me]).await {
        tracing::info!(error = %e, "Could not remove this instance's heartbeat; the others stop handing it wins within 3 s.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory_with(me: &str, others: &[(&str, i64)], now_ms: i64) -> Directory {
        let d = Directory::new(me.into());
        let beats = others
            .iter()
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        d.note(beats, now_ms, Instant::now());
        d
    }

    #[test]
    fn every_instance_names_the_same_writer() {
        let now = Instant::now();
        let ids = ["a1", "b2", "c3"];
        let views: Vec<Directory> = ids
            .iter()
            .map(|me| directory_with(me, &ids.map(|id| (id, 1_000)), 1_000))
            .collect();
        for campaign in 0..200 {
            let named: Vec<Arc<str>> = views
                .iter()
                .map(|d| d.writer_of(campaign, now).unwrap_or_else(|| d.me().clone()))
                .collect();
            assert!(
                named.windows(2).all(|w| w[0] == w[1]),
                "campaign {campaign}: {named:?}"
            );
        }
    }

    #[test]
    fn campaigns_spread_over_the_instances() {
        let now = Instant::now();
        let d = directory_with("a1", &[("b2", 1_000), ("c3", 1_000)], 1_000);
        let mine = (0..300).filter(|c| d.writer_of(*c, now).is_none()).count();
        assert!(
            (60..140).contains(&mine),
            "{mine} of 300 campaigns written here"
        );
    }

    #[test]
    fn a_silent_instance_is_not_a_writer_and_a_long_dead_one_is_forgotten() {
        let now = Instant::now();
        let d = Directory::new("a1".into());
        let beats = [
            ("b2".to_string(), 10_000 - 3_001),
            ("c3".to_string(), 10_000 - 60_001),
        ];
        let dead = d.note(beats.into_iter().collect(), 10_000, now);
        assert_eq!(dead, vec!["c3".to_string()]);
        assert!((0..100).all(|c| d.writer_of(c, now).is_none()));
    }

    #[test]
    fn a_stale_view_writes_everything_here() {
        let d = directory_with("a1", &[("b2", 1_000)], 1_000);
        let now = Instant::now();
        assert!((0..100).any(|c| d.writer_of(c, now).is_some()));
        let later = now + LIVE_FOR;
        assert!((0..100).all(|c| d.writer_of(c, later).is_none()));
        assert!(Directory::new("a1".into()).writer_of(1, now).is_none());
    }
}
