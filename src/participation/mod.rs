//! The outbox participation path (docs/design.md §6): validate, pass the Redis gate
//! (`crate::gate`), write the win and its event in one MySQL transaction, and compensate in Redis
//! when anything after the gate fails.
//!
//! # Layout, in the order a join meets it
//! - [`join`]: the request, the accepted win and the errors, shared by both paths.
//! - [`service`]: the path itself, top to bottom: admission and the gate's reservation, then,
//!   in a task of its own, the write and settlement or compensation.
//! - [`admission`]: the campaign checks both paths make.
//! - [`batcher`]: group commit: a campaign's wins that queue behind its running transaction
//!   share the next one.
//! - [`transaction`]: the participation transaction: one win, or a batch of one campaign's wins,
//!   with their outbox rows and the guarded stock decrement.
//! - [`in_doubt`]: a batch whose COMMIT went unanswered, settled as soon as MySQL answers again.
//! - [`lifecycle`]: a win after its acceptance: confirm, cancel, expire, units back to the sale;
//!   [`state_change`] is its SQL, [`expiry`] the sweeper of holds past their deadline.
//! - [`drift`]: the audit comparing each open campaign's gate with MySQL, repairing what it can
//!   prove.
//! - [`status`]: the states of a participation (held, confirmed, cancelled, expired).
//! - [`store`]: participation lookups.
//! - [`reconcile`]: giving back reservations that crashed instances left open.
//! - [`sync`]: the naive synchronous baseline kept for comparison (no Redis, no outbox).

pub mod admission;
pub mod batcher;
pub mod drift;
pub mod expiry;
pub mod in_doubt;
pub mod join;
pub mod lifecycle;
pub mod reconcile;
pub mod service;
pub mod state_change;
pub mod status;
pub mod store;
pub mod sync;
pub mod transaction;

pub use crate::gate::Entry;
pub use join::{Accepted, AdmissionRefusal, JoinError, JoinRequest};
pub use service::ParticipationService;
pub use status::ParticipationStatus;
