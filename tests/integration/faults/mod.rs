//! Fault and crash runs (docs/design.md §2.3, §2.7, §2.9): SIGKILL and SIGTERM of the real binary,
//! Kafka hung or gone at shutdown, MySQL and Redis hanging or failing mid-burst.

mod crash;
mod dependency_faults;
mod mysql_black_hole;
mod mysql_failover;
mod pool;
mod shutdown;
mod steal_in_doubt;
