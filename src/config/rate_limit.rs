//! The `Rate limits` settings (docs/design.md §16): token buckets per user and per client IP at
//! the door, shared by every instance through Redis, and which header names the client's IP when
//! a proxy stands in front.
//!
//! The client's address is the connection's peer, unless `TRUSTED_PROXY_HEADER` names a header
//! and the peer is in `TRUSTED_PROXIES` (`http::client_ip` reads it).
//!
//! Each rate is unset (the default: on for the calls of a campaign with a waiting room, at
//! values an honest client polling once a second never meets; off elsewhere), 0 (off
//! everywhere) or a number (on every public call).

use clap::Args;

use crate::config::{
    cidr::{cidr_list, Cidr},
    invalid,
    values::{header_name, number},
    ConfigError,
};

/// A bucket: tokens added per second and the most it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: u32,
    pub burst: u32,
}

/// A user's bucket on a campaign with a waiting room when `RATE_LIMIT_USER_PER_SECOND` is unset.
pub const QUEUED_USER: Limit = Limit {
    per_second: 5,
    burst: 10,
};
/// An IP's bucket on a campaign with a waiting room when `RATE_LIMIT_IP_PER_SECOND` is unset.
pub const QUEUED_IP: Limit = Limit {
    per_second: 50,
    burst: 100,
};

#[derive(Debug, Clone, Default, Args)]
pub struct RateLimitSettings {
    /// Calls per second per user (joins, queue, polls, confirm, cancel, rewards); unset: 5 on campaigns with a waiting room, off elsewhere; 0: off (0–100000)
    #[arg(id = "RATE_LIMIT_USER_PER_SECOND", long = "rate-limit-user-per-second", env,
          value_parser = number::<u32>(0..=100_000))]
    pub user_per_second: Option<u32>,
    /// Burst per user (1–1000000); unset: twice the rate (10 on campaigns with a waiting room)
    #[arg(id = "RATE_LIMIT_USER_BURST", long = "rate-limit-user-burst", env,
          value_parser = number::<u32>(1..=1_000_000))]
    pub user_burst: Option<u32>,
    /// Calls per second per client IP on every public call; unset: 50 on campaigns with a waiting room, off elsewhere; 0: off (0–1000000)
    #[arg(id = "RATE_LIMIT_IP_PER_SECOND", long = "rate-limit-ip-per-second", env,
          value_parser = number::<u32>(0..=1_000_000))]
    pub ip_per_second: Option<u32>,
    /// Burst per client IP (1–10000000); unset: twice the rate (100 on campaigns with a waiting room)
    #[arg(id = "RATE_LIMIT_IP_BURST", long = "rate-limit-ip-burst", env,
          value_parser = number::<u32>(1..=10_000_000))]
    pub ip_burst: Option<u32>,
    /// Header a proxy in front sets to the client's address: `x-forwarded-for` (or another of its form), or `forwarded` (RFC 7239). Honoured only from TRUSTED_PROXIES; the client is the right-most address that is not itself a trusted proxy. Unset: the connection's peer address
    #[arg(id = "TRUSTED_PROXY_HEADER", long = "trusted-proxy-header", env,
          value_parser = header_name)]
    pub trusted_proxy_header: Option<String>,
    /// The proxies in front, as CIDRs or addresses (`10.0.0.0/8,::1`): only their connections may name the client in TRUSTED_PROXY_HEADER (required with it), and they are exempt from the per-client connection cap
    #[arg(id = "TRUSTED_PROXIES", long = "trusted-proxies", env, default_value = "",
          hide_default_value = true, value_parser = cidr_list)]
    pub trusted_proxies: std::vec::Vec<Cidr>,
}

impl RateLimitSettings {
    /// A header is only as trustworthy as the peers it is taken from: it needs their list.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        match &self.trusted_proxy_header {
            Some(header) if self.trusted_proxies.is_empty() => Err(invalid(
                "TRUSTED_PROXIES",
                "",
                &format!(
                    "must list the proxies in front (e.g. TRUSTED_PROXIES=10.0.0.0/8) when \
                     TRUSTED_PROXY_HEADER={header} is set: from any other peer the header is \
                     whatever the client wrote"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The user's bucket on a call of a campaign with (`queued`) or without a waiting room.
    pub fn user(&self, queued: bool) -> Option<Limit> {
        resolve(self.user_per_second, self.user_burst, queued, QUEUED_USER)
    }

    /// The client IP's bucket, likewise.
    pub fn ip(&self, queued: bool) -> Option<Limit> {
        resolve(self.ip_per_second, self.ip_burst, queued, QUEUED_IP)
    }

    /// Whether the IP limit is configured for every public call (not only queued campaigns').
    pub fn ip_everywhere(&self) -> Option<Limit> {
        self.ip(false)
    }
}

fn resolve(rate: Option<u32>, burst: Option<u32>, queued: bool, default: Limit) -> Option<Limit> {
    match rate {
        Some(0) => None,
        Some(per_second) => Some(Limit {
            per_second,
            burst: burst.unwrap_or(per_second.saturating_mul(2)),
        }),
        None if queued => Some(Limit {
            burst: burst.unwrap_or(default.burst),
            ..default
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn a_proxy_header_needs_the_proxies_it_comes_from() {
        let err = Settings::from_pairs(&[("TRUSTED_PROXY_HEADER", "X-Forwarded-For")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("TRUSTED_PROXIES="), "{err}");
        assert!(err.contains("x-forwarded-for"), "{err}");
        let s = Settings::from_pairs(&[
            ("TRUSTED_PROXY_HEADER", "forwarded"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ])
        .expect("valid");
        assert_eq!(s.rate_limits.trusted_proxies.len(), 2);
        let err = Settings::from_pairs(&[("TRUSTED_PROXIES", "10.0.0.1/8")]).unwrap_err();
        assert!(err.to_string().starts_with("TRUSTED_PROXIES="), "{err}");
    }

    #[test]
    fn unset_limits_apply_to_queued_campaigns_only_and_zero_turns_them_off() {
        let unset = RateLimitSettings::default();
        assert_eq!(unset.user(false), None);
        assert_eq!(unset.user(true), Some(QUEUED_USER));
        assert_eq!(unset.ip(true), Some(QUEUED_IP));
        let off = RateLimitSettings {
            user_per_second: Some(0),
            ..RateLimitSettings::default()
        };
        assert_eq!(off.user(true), None);
        let set = RateLimitSettings {
            ip_per_second: Some(7),
            ..RateLimitSettings::default()
        };
        let seven = Limit {
            per_second: 7,
            burst: 14,
        };
        assert_eq!(set.ip(false), Some(seven));
        assert_eq!(set.ip(true), Some(seven));
    }
}
