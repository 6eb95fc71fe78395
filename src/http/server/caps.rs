//! The caps on open connections (docs/design.md §17): `HTTP_MAX_CONNECTIONS` in all and
//! `HTTP_MAX_CONNECTIONS_PER_CLIENT` per client address, so that one client, or a crowd, cannot
//! hold every descriptor the process has.
//!
//! A connection is admitted with a [`Permit`] that gives its place back when dropped, however the
//! connection ends. The client here is the connection's peer (the headers have not been read
//! yet), keyed as every per-client limit is ([`ClientIp::key`]: an IPv6 peer by its /64). A peer
//! in `TRUSTED_PROXIES` carries many clients' connections, so only the total applies to it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use crate::{
    config::cidr::canonical,
    http::client_ip::{ClientIp, TrustedProxies},
    telemetry::metrics::{registry::ReasonLabels, Metrics},
};

/// Which cap refused a connection (the `reason` of `firstcome_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerClient,
    Total,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::PerClient => "per_client",
            Self::Total => "total",
        }
    }
}

/// The open connections, counted. Cheap to clone.
#[derive(Clone)]
pub struct Caps {
    inner: Arc<Inner>,
}

struct Inner {
    total: usize,
    per_client: usize,
    proxies: TrustedProxies,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Counts {
    open: usize,
    /// Only clients with a connection open: an entry goes with its client's last permit.
    by_client: HashMap<String, usize>,
}

impl Caps {
    pub fn new(
        total: usize,
        per_client: usize,
        proxies: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Exported at zero from the start, so that a rate over them is defined before the first.
        for refusal in [Refusal::PerClient, Refusal::Total] {
            metrics
                .connections_refused
                .get_or_create(&ReasonLabels {
                    reason: refusal.label(),
                })
                .inc_by(0);
        }
        Self {
            inner: Arc::new(Inner {
                total,
                per_client,
                proxies,
                counts: Mutex::new(Counts::default()),
                metrics,
            }),
        }
    }

    /// A place for a connection from `peer`, or the cap it would pass (counted as refused).
    pub fn admit(&self, peer: IpAddr) -> Result<Permit, Refusal> {
        let peer = canonical(peer);
        let client = (!self.inner.proxies.trusts(peer)).then(|| ClientIp(peer).key());
        let admitted = self.inner.count_in(client.as_deref());
        match admitted {
            Ok(()) => {
                self.inner.metrics.connections_open.inc();
                Ok(Permit {
                    inner: self.inner.clone(),
                    client,
                    connection: true,
                })
            }
            Err(refusal) => {
                self.inner
                    .metrics
                    .connections_refused
                    .get_or_create(&ReasonLabels {
                        reason: refusal.label(),
                    })
                    .inc();
                Err(refusal)
            }
        }
    }
}

impl Caps {
    /// One more stream in flight on an HTTP/2 connection of `peer` that already has one: it takes
    /// a place under the per-client cap as a connection would (not under the total, which counts
    /// descriptors), so that a client cannot multiply its cap by the streams of a connection. A
    /// trusted proxy is exempt, as from the per-client cap of connections.
    pub fn admit_stream(&self, peer: IpAddr) -> Result<Permit, Refusal> {
        let peer = canonical(peer);
        let client = (!self.inner.proxies.trusts(peer)).then(|| ClientIp(peer).key());
        let Some(key) = client else {
            return Ok(Permit {
                inner: self.inner.clone(),
                client: None,
                connection: false,
            });
        };
        let mut counts = self.inner.counts();
        let of_client = counts.by_client.get(&key).copied().unwrap_or(0);
        if of_client >= self.inner.per_client {
            drop(counts);
            self.inner
                .metrics
                .connections_refused
                .get_or_create(&ReasonLabels {
                    reason: Refusal::PerClient.label(),
                })
                .inc();
            return Err(Refusal::PerClient);
        }
        counts.by_client.insert(key.clone(), of_client + 1);
        Ok(Permit {
            inner: self.inner.clone(),
            client: Some(key),
            connection: false,
        })
    }
}

impl Inner {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counts are whole after any panic (each change is one statement), so a poisoned
        // lock still holds good numbers.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client's own cap first: a client over it is refused as such even when the total
    /// is also reached.
    fn count_in(&self, client: Option<&str>) -> Result<(), Refusal> {
        let mut counts = self.counts();
        let of_client = client.map_or(0, |key| counts.by_client.get(key).copied().unwrap_or(0));
        if client.is_some() && of_client >= self.per_client {
            return Err(Refusal::PerClient);
        }
        if counts.open >= self.total {
            return Err(Refusal::Total);
        }
        counts.open += 1;
        if let Some(key) = client {
            counts.by_client.insert(key.to_owned(), of_client + 1);
        }
        Ok(())
    }
}

/// One admitted connection's place (or an HTTP/2 stream's, [`Caps::admit_stream`]); dropping it
/// gives the place back.
pub struct Permit {
    inner: Arc<Inner>,
    /// The key the connection counts under; `None` for a trusted proxy (the total only).
    client: Option<String>,
    /// A connection's (counted in the total and the open gauge), or a stream's (per client only).
    connection: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.inner.counts();
        if self.connection {
            counts.open = counts.open.saturating_sub(1);
        }
        if let Some(key) = &self.client {
            if let Some(n) = counts.by_client.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    counts.by_client.remove(key);
                }
            }
        }
        drop(counts);
        if self.connection {
            self.inner.metrics.connections_open.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn caps(total: usize, per_client: usize, trusted: &str) -> (Caps, Arc<Metrics>) {
        let settings = Settings::from_pairs(&[("TRUSTED_PROXIES", trusted)]).expect("settings");
        let metrics = Arc::new(Metrics::new());
        let proxies = TrustedProxies::new(&settings.rate_limits, metrics.clone());
        (
            Caps::new(total, per_client, proxies, metrics.clone()),
            metrics,
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn a_client_over_its_cap_is_refused_until_one_of_its_connections_closes() {
        let (caps, metrics) = caps(100, 2, "");
        let first = caps.admit(ip("192.0.2.1")).expect("first");
        let _second = caps.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(caps.admit(ip("192.0.2.1")).err(), Some(Refusal::PerClient));
        assert!(
            caps.admit(ip("192.0.2.2")).is_ok(),
            "another client is not concerned"
        );
        assert_eq!(metrics.connections_open.get(), 2);
        drop(first);
        assert!(caps.admit(ip("192.0.2.1")).is_ok());
        let refused = metrics
            .connections_refused
            .get_or_create(&ReasonLabels {
                reason: "per_client",
            })
            .get();
        assert_eq!(refused, 1);
    }

    #[test]
    fn the_total_applies_to_everyone_and_places_come_back() {
        let (caps, metrics) = caps(2, 10, "");
        let a = caps.admit(ip("192.0.2.1")).expect("a");
        let _b = caps.admit(ip("192.0.2.2")).expect("b");
        assert_eq!(caps.admit(ip("192.0.2.3")).err(), Some(Refusal::Total));
        drop(a);
        assert!(caps.admit(ip("192.0.2.3")).is_ok());
        assert_eq!(metrics.connections_open.get(), 1);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64_and_ipv4_mapped_as_ipv4() {
        let (caps, _) = caps(100, 1, "");
        let _a = caps.admit(ip("2001:db8:1:2::1")).expect("a");
        assert_eq!(
            caps.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerClient)
        );
        assert!(caps.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = caps.admit(ip("192.0.2.7")).expect("v4");
        assert_eq!(
            caps.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Refusal::PerClient)
        );
    }

    #[test]
    fn http2_streams_take_places_under_the_per_client_cap_not_the_total() {
        let (caps, metrics) = caps(2, 3, "10.0.0.0/8");
        let _connection = caps.admit(ip("192.0.2.1")).expect("a connection");
        let second = caps.admit_stream(ip("192.0.2.1")).expect("a second stream");
        let _third = caps.admit_stream(ip("192.0.2.1")).expect("a third stream");
        assert_eq!(
            caps.admit_stream(ip("192.0.2.1")).err(),
            Some(Refusal::PerClient)
        );
        assert_eq!(caps.admit(ip("192.0.2.1")).err(), Some(Refusal::PerClient));
        drop(second);
        assert!(caps.admit_stream(ip("192.0.2.1")).is_ok());
        assert_eq!(
            metrics.connections_open.get(),
            1,
            "streams are no connections"
        );
        assert!(
            caps.admit(ip("192.0.2.2")).is_ok(),
            "the total counts connections"
        );
        let _proxied: Vec<Permit> = (0..10)
            .map(|_| {
                caps.admit_stream(ip("10.1.2.3"))
                    .expect("a proxy is exempt")
            })
            .collect();
    }

    #[test]
    fn a_trusted_proxy_meets_only_the_total() {
        let (caps, _) = caps(3, 1, "10.0.0.0/8");
        let _held: Vec<Permit> = (0..3)
            .map(|_| caps.admit(ip("10.1.2.3")).expect("a proxy's connection"))
            .collect();
        assert_eq!(caps.admit(ip("10.1.2.3")).err(), Some(Refusal::Total));
    }
}
