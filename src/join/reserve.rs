//! The join's second step, reserve (docs/design.md §6): one `lua/reserve.lua` call, with the
//! campaign's keys rebuilt when they are missing, and a SOLD_OUT asked again while reservations
//! are in flight; the gate's decision read as a reservation or the join's answer; and the
//! sold-out memo it feeds.
//!
//! Why a SOLD_OUT waits for the reservations in flight: the gate takes a win's units when it
//! reserves them, MySQL when the win commits, a few milliseconds later. A join the gate refuses
//! in between, while a return or a refused reservation gives units back, would be told
//! SOLD_OUT although MySQL's committed order had the units free the whole time (the proof run
//! found such answers, docs/design.md §18). Asked again once the reservations settled, the
//! gate either has the units (the join wins) or its SOLD_OUT stands after the wins holding them
//! committed. After a sell-out nothing is in flight, so the flood of refusals pays nothing.
//!
//! A SOLD_OUT it no longer waits on, or a CAMPAIGN_PAUSED, first gives the gate the returns
//! and controls MySQL has markers for ([`loader::GateLoader::give_owed`]) and asks again: an
//! expiry's or a cancel's units, or a resume, reach the gate by a call after their commit, and
//! MySQL has them meanwhile. The sold-out memo repeats only a SOLD_OUT given again after a read
//! of the markers that began after the gate's refusal: one answered without it may be missing
//! units on their way, and the memo would refuse them for its whole window.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
    bucket::policy::{Found, Next},
    campaign::Campaign,
    gate::{sold_out::SoldOutMemo, AdmissionPass, Decision, Gate, GroupCheck, Sibling, Slot},
    group::{GroupDirectory, Limit},
    hooks::Hooks,
    join::{
        admit::{refused, Admitted},
        in_flight::{
            dry_bucket_wait, in_flight_wait, settling, undo_lost_reservation, IN_FLIGHT_FIRST_WAIT,
            IN_FLIGHT_LONGEST_WAIT,
        },
        request::{AdmissionRefusal, Gated, JoinError, JoinRequest, Reserved},
    },
    telemetry::metrics::{registry::ReasonLabels, Metrics},
    upkeep::loader::{self, GateLoader},
    waiting_room::buckets::{report_admission, AdmissionReport},
};

use super::tail::Tail;

/// The reserve step: the gate, the instance's rebuilds of it, the sold-out memo it feeds.
pub struct Reserve {
    gate: Gate,
    loader: GateLoader,
    sold_out: Arc<SoldOutMemo>,
    /// Gate latencies; refused admissions.
    metrics: Arc<Metrics>,
    /// The test seam (`crate::hooks`): where a test holds a join waiting for reservations in
    /// flight.
    hooks: Arc<dyn Hooks>,
    /// How long after the gate a win may still commit: `RESERVATION_TIMEOUT_MS` less a quarter
    /// for clocks (the reconciler may give the reservation back after the whole timeout).
    commit_within: Duration,
    /// A bucketed campaign's dry bucket looking for units (docs/design.md §21).
    tail: Tail,
    /// The groups' limits and campaigns (docs/design.md §22).
    groups: Arc<GroupDirectory>,
}

/// Rounds of "reserve, find the keys missing, load them" before giving up.
const LOAD_ROUNDS: u32 = 3;

/// The answer when the campaign's keys were still missing after [`LOAD_ROUNDS`] loads.
fn keys_vanished() -> JoinError {
    JoinError::Unavailable {
        what: "Redis",
        source: anyhow::anyhow!(
            "the campaign's keys vanished right after each of {LOAD_ROUNDS} loads"
        ),
    }
}

impl Reserve {
    /// The step over the gate and its rebuilds, the sold-out memo it feeds, its metrics, the
    /// commit window, the dry bucket's search and the groups.
    pub(super) fn new(
        (gate, loader, sold_out): (Gate, GateLoader, Arc<SoldOutMemo>),
        (metrics, hooks): (Arc<Metrics>, Arc<dyn Hooks>),
        commit_within: Duration,
        tail: Tail,
        groups: Arc<GroupDirectory>,
    ) -> Self {
        Self {
            gate,
            loader,
            sold_out,
            metrics,
            hooks,
            commit_within,
            tail,
            groups,
        }
    }

    /// The gate reservations are made at.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The instance's rebuilds of the gate.
    pub fn loader(&self) -> &GateLoader {
        &self.loader
    }

    /// The sold-out memo the step feeds.
    pub fn sold_out(&self) -> &Arc<SoldOutMemo> {
        &self.sold_out
    }

    /// How long after the gate a win may still commit.
    pub fn commit_within(&self) -> Duration {
        self.commit_within
    }

    /// The groups' limits and campaigns.
    pub fn groups(&self) -> &GroupDirectory {
        &self.groups
    }

    /// A dry bucket's search (docs/design.md §21), a cart's item's as a join's.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }
    /// The gate's decision for an admitted join, as the join's next step: a reservation, a user
    /// the gate already knows, or the answer (a refusal, or the gate unavailable).
    pub(super) async fn run(
        &self,
        admitted: &Admitted,
        req: &JoinRequest,
        commit_by: std::time::Instant,
    ) -> Result<Gated, JoinError> {
        let Admitted {
            campaign,
            now,
            pass,
        } = admitted;
        // The group's limit, read before the gate: nothing that can fail may stand between a
        // reservation and its settle step, or a failure there would leave the reservation open
        // until the reconciler (a proof run saw a MySQL failover do so: SOLD_OUT answered for
        // 15 s while MySQL had the units).
        let group = self.group_limit(campaign).await?;
        // When the gate was first asked: a sold-out it answers is remembered from here.
        let asked_at = std::time::Instant::now();
        let (decision, confirmed) = self.reserve(campaign, req, pass.as_ref(), *now).await?;
        let refusal = match decision {
            Decision::Reserved {
                sequence,
                returns_seen,
                gate_gen,
            } => {
                return Ok(Gated::Reserved(Reserved {
                    sequence,
                    returns_seen,
                    gate_gen,
                    reserved_at_ms: now.timestamp_millis(),
                    commit_by,
                    group,
                }));
            }
            Decision::GroupLimit { held } => {
                self.refused_by_group(campaign, pass.as_ref(), req, group, held)
            }
            Decision::AlreadyParticipated => return Ok(Gated::Already),
            Decision::TokenInvalid => refused(&self.metrics, AdmissionRefusal::Invalid),
            Decision::TokenUsed => refused(&self.metrics, AdmissionRefusal::Used),
            Decision::TokenExpired => refused(&self.metrics, AdmissionRefusal::Expired),
            Decision::SoldOut {
                remaining,
                winners,
                in_flight,
                latest_reserved_ms_ago,
            } => {
                tracing::debug!(
                    remaining,
                    winners,
                    in_flight,
                    latest_reserved_ms_ago,
                    "SOLD_OUT from the gate"
                );
                // Only a sell-out with nothing in flight is remembered: reservations still open
                // past the wait (an instance died holding them, MySQL hangs) may give units
                // back any moment, and the memo would refuse them for its whole window. Nor one
                // that a fresh read of the markers did not confirm: units an expiry or a cancel
                // committed may be on their way to the gate ([`Reserve::reserve`]).
                // A bucketed campaign has no one winners set to copy: its searches remember a
                // sell-out instead ([`Tail::sold_out_lately`]).
                if remaining <= 0 && in_flight == 0 && confirmed && campaign.buckets == 1 {
                    (self.sold_out)
                        .remember(&self.gate, campaign.slot(0), winners, asked_at)
                        .await;
                }
                JoinError::SoldOut
            }
            Decision::NotOpen => JoinError::NotOpen(campaign.starts_at),
            Decision::Ended => JoinError::Ended,
            Decision::Paused => JoinError::Paused,
            Decision::OverLimit => JoinError::OverLimit {
                quantity: req.entry.quantity,
                limit: campaign.per_user_limit,
            },
            Decision::Missing | Decision::SiblingMissing(_) => keys_vanished(),
        };
        Err(refusal)
    }

    /// The campaign's group's limit, when it has a group (read from the group directory).
    async fn group_limit(&self, campaign: &Campaign) -> Result<Option<Limit>, JoinError> {
        Ok(match campaign.group_id {
            Some(id) => Some(Limit {
                group_id: id,
                per_user: self
                    .groups
                    .get_with(id, std::iter::once(campaign.id))
                    .await?
                    .group
                    .per_user_limit,
            }),
            None => None,
        })
    }

    /// The gate's refusal for the group's limit: counted, and a bucketed campaign's admission
    /// spent in its room (`waiting_room::buckets::report_admission`).
    fn refused_by_group(
        &self,
        campaign: &Campaign,
        pass: Option<&AdmissionPass>,
        req: &JoinRequest,
        group: Option<Limit>,
        held: i64,
    ) -> JoinError {
        self.metrics
            .group_limit_refused
            .get_or_create(&ReasonLabels { reason: "GATE" })
            .inc();
        if let (Some(pass), true) = (pass, campaign.buckets > 1) {
            report_admission(
                &self.gate,
                campaign,
                (&pass.ticket, req.entry.user_id),
                AdmissionReport::Spent,
            );
        }
        JoinError::GroupLimit {
            limit: group.map_or(0, |g| g.per_user),
            held,
        }
    }

    /// The gate's decision; a SOLD_OUT with reservations in flight is asked again until they
    /// settle (see the module's documentation). Also says whether a final SOLD_OUT is
    /// confirmed: answered again after a read of the markers that began after the gate's first
    /// refusal (`loader::Owed`), the only SOLD_OUT the sold-out memo may repeat.
    async fn reserve(
        &self,
        campaign: &Arc<Campaign>,
        req: &JoinRequest,
        pass: Option<&AdmissionPass>,
        now: DateTime<Utc>,
    ) -> Result<(Decision, bool), JoinError> {
        if req.entry.bucket.is_some() {
            return self.reserve_in_bucket(campaign, req, pass, now).await;
        }
        let started = std::time::Instant::now();
        let bound = in_flight_wait(self.commit_within);
        let mut wait = IN_FLIGHT_FIRST_WAIT;
        let mut owed_asked = false;
        let mut confirmed = false;
        loop {
            let decision = self.reserve_once(campaign, req, pass, now).await?;
            let refused_at = std::time::Instant::now();
            let waited = started.elapsed();
            match decision {
                Decision::SoldOut {
                    in_flight,
                    latest_reserved_ms_ago,
                    ..
                } if waited < bound
                    && settling(in_flight, latest_reserved_ms_ago, self.commit_within) =>
                {
                    self.hooks.before_in_flight_wait().await;
                    tokio::time::sleep(wait.min(bound - waited)).await;
                    wait = (wait * 2).min(IN_FLIGHT_LONGEST_WAIT);
                }
                Decision::SoldOut { .. } | Decision::Paused if !owed_asked => {
                    owed_asked = true;
                    match self.gave_owed(campaign, req.entry.slot(), refused_at).await {
                        loader::Owed::Skipped => return Ok((decision, false)),
                        loader::Owed::Read { fresh } => confirmed = fresh,
                    }
                }
                _ => return Ok((decision, confirmed)),
            }
        }
    }

    /// [`Reserve::reserve`] in a bucketed campaign's home bucket: a SOLD_OUT there sends the join
    /// looking for units in the pool and the siblings ([`Tail::find`]), one search per bucket at
    /// a time on an instance (the bucket's other dry joins wait for it, then ask their gate
    /// again), and stands only when MySQL had too few units in the whole campaign at one
    /// instant, or when the units MySQL has stay held by reservations in flight past the wait
    /// for them (as an unbucketed SOLD_OUT does). A CAMPAIGN_PAUSED first gives the bucket's gate
    /// what MySQL owes it, as there. Says whether a SOLD_OUT was confirmed by MySQL.
    pub(super) async fn reserve_in_bucket(
        &self,
        campaign: &Arc<Campaign>,
        req: &JoinRequest,
        pass: Option<&AdmissionPass>,
        now: DateTime<Utc>,
    ) -> Result<(Decision, bool), JoinError> {
        let slot = req.entry.slot();
        let mut waiting = dry_bucket_wait(self.commit_within, Instant::now());
        let mut owed_asked = false;
        loop {
            let decision = self.reserve_once(campaign, req, pass, now).await?;
            match decision {
                Decision::SoldOut { .. } if self.tail.sold_out_lately(campaign.id) => {
                    return Ok((decision, false))
                }
                Decision::SoldOut { .. } => {}
                Decision::Paused if !owed_asked => {
                    owed_asked = true;
                    if self.gave_owed(campaign, slot, Instant::now()).await == loader::Owed::Skipped
                    {
                        return Ok((decision, false));
                    }
                    continue;
                }
                _ => return Ok((decision, false)),
            }
            let searching = self.tail.searching(slot).await;
            // The search this one waited for may have brought units: the gate first; or it
            // found the campaign sold out: the memo answers.
            let again = self.reserve_once(campaign, req, pass, now).await?;
            let sold_out = matches!(again, Decision::SoldOut { .. });
            if !sold_out || self.tail.sold_out_lately(campaign.id) {
                return Ok((again, false));
            }
            let quantity = i64::from(req.entry.quantity);
            let commit_by = Instant::now() + self.commit_within;
            let found = self.tail.find(campaign, slot, quantity, commit_by).await;
            drop(searching);
            let found = found.map_err(|e| {
                tracing::warn!(error = %e, campaign_id = campaign.id, %slot,
                    "Could not look for units for a dry bucket; the join answers unavailable.");
                JoinError::Unavailable {
                    what: "the campaign's buckets",
                    source: e.into(),
                }
            })?;
            match waiting.after(found, Instant::now()) {
                Next::Search => {}
                Next::Sleep(pause) => {
                    if !owed_asked {
                        owed_asked = true;
                        self.gave_owed(campaign, slot, Instant::now()).await;
                    }
                    tokio::time::sleep(pause).await;
                }
                Next::SoldOut => return Ok((again, found == Found::SoldOut)),
                Next::Busy => return Err(JoinError::Busy),
            }
        }
    }

    /// Before a SOLD_OUT with nothing in flight, or a CAMPAIGN_PAUSED: whether MySQL owed the
    /// gate units or a resume (committed, their gate call not made yet, or failed while Redis
    /// hung) and they are in it now. One read of the campaign's markers at a time per campaign
    /// (a join refused meanwhile takes its answer), then none for `loader::OWED_READ_EVERY`.
    /// A failure answers as before, unconfirmed.
    pub async fn gave_owed(
        &self,
        campaign: &Campaign,
        slot: Slot,
        refused_at: std::time::Instant,
    ) -> loader::Owed {
        match self.loader.give_owed(campaign, slot, refused_at).await {
            Ok(owed) => {
                if owed != loader::Owed::Skipped {
                    tracing::debug!(
                        campaign_id = campaign.id,
                        ?owed,
                        "Gave the gate what MySQL owed it; asking it again."
                    );
                }
                owed
            }
            Err(e) => {
                tracing::debug!(error = %e, campaign_id = campaign.id,
                    "Could not read what MySQL owes the gate; answering SOLD_OUT.");
                loader::Owed::Skipped
            }
        }
    }

    /// One EVALSHA; when the campaign's keys are missing (first request, eviction, Redis
    /// restart), wait for the instance's one rebuild of them ([`loader::GateLoader`]) and ask
    /// again. The keys can vanish again between the rebuild and the retry (another eviction), so
    /// a few rounds are allowed.
    pub(super) async fn reserve_once(
        &self,
        campaign: &Arc<Campaign>,
        req: &JoinRequest,
        pass: Option<&AdmissionPass>,
        now: DateTime<Utc>,
    ) -> Result<Decision, JoinError> {
        let now_ms = now.timestamp_millis();
        let epoch = crate::campaign::gate_epoch(campaign);
        // A list read before this campaign joined the group is read again.
        let group = match campaign.group_id {
            Some(id) => Some(
                self.groups
                    .get_with(id, std::iter::once(campaign.id))
                    .await?,
            ),
            None => None,
        };
        let siblings = group.as_ref().map(|g| g.siblings_of(campaign.id));
        let check = group
            .as_ref()
            .zip(siblings)
            .map(|(g, siblings)| GroupCheck {
                limit: g.group.per_user_limit,
                siblings,
            });
        for _ in 0..LOAD_ROUNDS {
            let started = std::time::Instant::now();
            let decision = self
                .gate
                .reserve(&req.entry, pass, (epoch, check), now_ms)
                .await;
            self.metrics
                .gate_duration
                .observe(started.elapsed().as_secs_f64());
            if decision.is_err() {
                undo_lost_reservation(self.gate.clone(), req.entry, now_ms);
            }
            let decision = decision?;
            match decision {
                Decision::Missing => self.loader.ensure(campaign, req.entry.slot()).await?,
                Decision::SiblingMissing(_) => {
                    self.load_group(req.entry.slot(), siblings.unwrap_or_default())
                        .await?
                }
                _ => return Ok(decision),
            }
        }
        Ok(Decision::Missing)
    }

    /// The gate found a sibling's keys missing (a join's or a cart's): after a flush or a
    /// failover they all are, so every campaign of the group is loaded at once in the user's
    /// bucket `slot` (a loaded one costs one call), rather than one per round of
    /// [`LOAD_ROUNDS`] (docs/design.md §22).
    pub async fn load_group(&self, slot: Slot, siblings: &[Sibling]) -> Result<(), JoinError> {
        let loads = siblings.iter().map(|sibling| async move {
            let campaign = self.groups.campaign(sibling.campaign_id).await?;
            self.loader
                .ensure(&campaign, slot.sibling(sibling.campaign_id))
                .await?;
            Ok::<(), JoinError>(())
        });
        for loaded in futures::future::join_all(loads).await {
            loaded?;
        }
        Ok(())
    }
}
