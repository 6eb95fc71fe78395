//! The `Waiting room` settings (docs/design.md §16): the key that signs admission tokens, how long
//! a token stays valid, and how long a ticket may go unpolled before it is dropped.

use std::time::Duration;

use clap::Args;

use crate::config::{
    values::{jwt_secret, millis},
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
}
