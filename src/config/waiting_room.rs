//! The `Waiting room` settings (docs/design.md §16): the key that signs admission tokens, how long
//! a token stays valid, how long a ticket may go unpolled before it is dropped, and the caps on
//! tickets per client and per room.

use std::time::Duration;

use clap::Args;

use crate::config::{
    values::{jwt_secret, millis, number},
    Secret,
};

#[derive(Debug, Clone, Args)]
pub struct WaitingRoomSettings {
    /// HMAC key of admission tokens, 32 bytes or more, the same on every instance; unset: generated at start (tokens then work only on the instance that issued them)
    #[arg(id = "ADMISSION_SECRET", long = "admission-secret", env, hide_env_values = true,
          default_value = "", hide_default_value = true, value_parser = jwt_secret)]
    pub secret: std::option::Option<Secret>,
    /// How long an admitted user's token stays valid; unused, its unit goes to the next in the queue (1000–3600000)
    #[arg(id = "ADMISSION_TOKEN_TTL_MS", long = "admission-token-ttl-ms", env,
          default_value = "60000", value_parser = millis(1_000..=3_600_000))]
    pub token_lifetime: Duration,
    /// A waiting ticket not polled for this long is dropped and leaves the queue (1000–3600000)
    // Clients poll about once a second; positions never count dropped tickets.
    #[arg(id = "QUEUE_TICKET_IDLE_MS", long = "queue-ticket-idle-ms", env,
          default_value = "30000", value_parser = millis(1_000..=3_600_000))]
    pub idle_timeout: Duration,
    /// The most live tickets (waiting, waitlisted or admitted) one client address holds in one campaign's room; past it, 409 TICKET_LIMIT_REACHED (0: no cap; clients behind one NAT share it)
    #[arg(id = "QUEUE_TICKETS_PER_CLIENT", long = "queue-tickets-per-client", env,
          default_value_t = 50, value_parser = number::<u32>(0..=1_000_000))]
    pub tickets_per_client: u32,
    /// The most tickets one campaign's room keeps waiting, waitlisted ones too; past it, 409 QUEUE_FULL (0: no cap; about 100 bytes of Redis a ticket)
    #[arg(id = "QUEUE_MAX_WAITING", long = "queue-max-waiting", env,
          default_value_t = 1_000_000, value_parser = number::<u32>(0..=100_000_000))]
    pub max_waiting: u32,
}
