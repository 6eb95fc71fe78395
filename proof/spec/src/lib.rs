//! `firstcome-proof-spec`: the specification of a firstcome sale — a model of the contract, the
//! formats of a recorded history and final state, and the checker that judges them (issue 38;
//! design §18). The harness that records a history is `firstcome-proof` (`proof/harness`). The model is written from `docs/design.md`, never imported
//! from the service: a checker that shares the code it checks shares its bugs. This crate depends
//! on nothing of `firstcome`.
//!
//! # Formats
//!
//! - **History** ([`history`]): JSON Lines in Jepsen's shape. Each line is
//!   `{"type": "invoke"|"ok"|"fail"|"info", "process": <int>|"nemesis", "time": <ns, monotonic>,
//!   "f": "join"|"confirm"|"cancel"|"refund"|"stock"|"pause"|"resume"|"close"|"queue"|"poll"|
//!   "cart"|"purchase-confirm"|"purchase-cancel"|"purchase-refund"|"nemesis", "value": {…}}`. A process runs one operation at a time: its `invoke` is
//!   completed by its next entry (`ok` definite success, `fail` definite refusal with
//!   `value.code`, `info` indeterminate); an `invoke` never completed counts as `info`. `value` holds the arguments
//!   (`campaign`, `user`, `quantity`, `idempotencyKey`, `admissionToken`, `delta`, `ticket`) and
//!   the answer (`participationId`, `status`, `reason`, `sequence`, `controlSeq`, `totalStock`,
//!   `remainingStock`, the waiting room's `ticket`, `state`, `position` and `admissionToken`,
//!   `code`, `error`). Faults are `process: "nemesis"`, `f: "nemesis"` entries
//!   with `value.fault` (the kind), `value.phase` (`start`/`stop`, absent for an instant fault)
//!   and `value.target`.
//! - **Final state** ([`final_state`]): one JSON document taken once the faults are healed and
//!   the system settled: MySQL's `campaigns` (with `perUserLimit` and `admission`),
//!   `participations` and control audit (`controls`);
//!   each campaign's gate in Redis (`gates`: stock, users, returned, pending); every record of the
//!   topic (`events`: partition, offset, key, payload) in partition then offset order; the
//!   consumers' tables (`stats` per campaign, `rewards` per user, `grants` per event). A
//!   bucketed campaign's fields (§21: `buckets`, `pool`, `bucketRows`, each participation's
//!   and gate's `bucket`) are read apart ([`final_state::read_with_buckets`]) and judged by
//!   [`check::check_with_buckets`]; without them every campaign is one bucket, as before.
//!
//! # The model
//!
//! [`model::CampaignModel`] is one campaign as its committed events leave it: `free`, `held`
//! and `confirmed` units (always `free + held + confirmed = total`, never negative), each user's
//! win and its state (`HELD → CONFIRMED | CANCELLED | EXPIRED`, `CONFIRMED → CANCELLED`; a user
//! who ever won is refused for good), paused and closed, the last control's number, and what the
//! stats and rewards consumers should hold. A step is legal only as the contract says: a win
//! needs free units, a user without a win, and an open campaign (up to a grace after a pause or
//! close, §15); a confirmation needs a live hold within its deadline; a cancellation a live win
//! (a confirmed one only by an admin; an expiry only of a hold past its deadline, within a
//! tolerance), and units come back once; a control carries the next number, is not a no-op,
//! never withdraws below what is held and confirmed, and states the totals the model reaches.
//!
//! # The checks
//!
//! [`check::check`] (its module doc has the steps and their cost): the topic's per-campaign
//! order, deduplicated, is the committed order; replayed on the model every step must be legal
//! and the end must equal MySQL, the gate and the consumers; the order must agree with real time;
//! every `ok` must be in the order as answered, every `fail` justified at a prefix real time
//! allows, every `info` in it at most once, and nothing in it uninvoked. Relaxations (the
//! sold-out memo) are parameters, counted apart. Beside the order, the waiting room and the
//! per-user limit ([`model::admission`]): no win past `perUserLimit`, no win on a queued
//! campaign without a token the room issued to its user, a token wins once, first come first
//! admitted. Groups and carts (§22): each cart's items are projected as joins of their
//! campaigns, so every check above counts them; the group's per-user limit and carts all or
//! nothing are judged beside ([`check::check_all`], with [`final_state::read_all`]'s
//! [`final_state::GroupState`]). The verdict is a [`report::Report`].

pub mod check;
pub mod event;
pub mod final_state;
pub mod history;
pub mod model;
pub mod report;
