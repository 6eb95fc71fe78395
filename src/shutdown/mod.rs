//! Stopping within a bounded time, whatever a dependency does (docs/design.md §2.7).
//!
//! The order of a shutdown is written down in `startup.rs`; this module holds what keeps it
//! bounded:
//! - [`watchdog`]: the stop signals and the deadline, held by a thread outside the async runtime;
//! - [`off_runtime`]: blocking client calls (librdkafka's synchronous commit, close, destructors)
//!   on threads of their own, each awaited for at most a limit;
//! - [`running`]: what is running, by name, for the log line of a shutdown that missed its
//!   deadline.

pub mod off_runtime;
pub mod running;
pub mod watchdog;
