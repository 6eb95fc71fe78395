//! Who the client is, by address (docs/design.md §16): what the per-IP rate limit, the admin
//! door's failed-attempt limit and the live stream's per-client cap are keyed by.
//!
//! The client is the connection's peer, unless the peer is a trusted proxy (`TRUSTED_PROXIES`)
//! and `TRUSTED_PROXY_HEADER` names a header. Then the header's addresses, across all of its
//! lines in order, are read from the right, passing over those that are themselves trusted
//! proxies; the first one that is not is the client (nginx's `real_ip_recursive`). Whatever a
//! client wrote to the left of that is never read, so a forged first line changes nothing. An
//! address may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:4711`); RFC 7239's `Forwarded`
//! is read when that is the header named (its `for=` parameters). A value that cannot be read
//! counts as the peer (`firstcome_client_ip_unparseable_total`): never as a fresh client.
//!
//! IPv6 clients are keyed by their /64: one host is usually given a whole /64, so keying by /128
//! would hand it 2^64 buckets.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use poem::Request;

use crate::{
    config::{
        cidr::{canonical, Cidr},
        RateLimitSettings,
    },
    telemetry::metrics::Metrics,
};

/// The client of a request, as [`resolve`] found it (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// What limits and caps are keyed by: the IPv4 address, or the IPv6 address's /64 network
    /// (`2001:db8:1:2::/64`).
    pub fn key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & (u128::MAX << 64);
                format!("{}/64", Ipv6Addr::from(network))
            }
        }
    }
}

/// The client of `req`: what [`resolve`] put there, else the connection's peer (a request that
/// did not pass the middleware: a unit test).
pub fn of(req: &Request) -> ClientIp {
    req.extensions()
        .get::<ClientIp>()
        .copied()
        .unwrap_or_else(|| ClientIp(peer(req).unwrap_or(IpAddr::from([0, 0, 0, 0]))))
}

/// The connection's peer, IPv4-mapped addresses as IPv4.
pub fn peer(req: &Request) -> Option<IpAddr> {
    req.remote_addr()
        .as_socket_addr()
        .map(|addr| canonical(addr.ip()))
}

/// `TRUSTED_PROXY_HEADER` and `TRUSTED_PROXIES`. Cheap to clone.
#[derive(Clone)]
pub struct TrustedProxies {
    inner: Arc<Inner>,
}

struct Inner {
    /// Lower-cased; `None`: the peer is always the client.
    header: Option<String>,
    proxies: Vec<Cidr>,
    metrics: Arc<Metrics>,
}

/// One address of the header, read or not.
#[derive(Debug, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    Unreadable,
}

impl TrustedProxies {
    pub fn new(settings: &RateLimitSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                header: settings.trusted_proxy_header.clone(),
                proxies: settings.trusted_proxies.clone(),
                metrics,
            }),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.inner.proxies.iter().any(|net| net.contains(ip))
    }

    /// The client of `req` by the rule of the module's doc.
    pub fn client(&self, req: &Request) -> ClientIp {
        let Some(peer) = peer(req) else {
            return ClientIp(IpAddr::from([0, 0, 0, 0]));
        };
        let Some(header) = self.inner.header.as_deref() else {
            return ClientIp(peer);
        };
        if !self.trusts(peer) {
            return ClientIp(peer);
        }
        let forwarded = header == "forwarded";
        let mut hops: Vec<Hop> = Vec::new();
        for line in req.headers().get_all(header) {
            hops.extend(line_hops(line.as_bytes(), forwarded));
        }
        let mut leftmost = None;
        for hop in hops.iter().rev() {
            match hop {
                Hop::Addr(ip) if self.trusts(*ip) => leftmost = Some(*ip),
                Hop::Addr(ip) => return ClientIp(canonical(*ip)),
                Hop::Unreadable => {
                    self.inner.metrics.client_ip_unparseable.inc();
                    tracing::debug!(%peer, header, "A trusted proxy's client header could not be read; the peer counts as the client.");
                    return ClientIp(peer);
                }
            }
        }
        // Every address was a trusted proxy (or there was none): the left-most is the furthest
        // hop known, as nginx has it; without any, the peer.
        ClientIp(leftmost.map_or(peer, canonical))
    }
}

/// One address of an `X-Forwarded-For`-style list: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn address(text: &str) -> Hop {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Hop::Addr(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Hop::Addr(addr.ip());
    }
    match text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
    {
        Some(v6) => Hop::Addr(IpAddr::V6(v6)),
        None => Hop::Unreadable,
    }
}

/// The hops of one header line, split on its raw bytes before each element is decoded: an
/// element that is not ASCII text is that element's problem ([`Hop::Unreadable`]), never the
/// whole line's, so a client's stray byte to the left cannot hide the address a proxy appended
/// to its right.
fn line_hops(line: &[u8], forwarded: bool) -> impl Iterator<Item = Hop> + '_ {
    line.split(|b| *b == b',').map(move |element| {
        match std::str::from_utf8(element)
            .ok()
            .filter(|text| text.is_ascii())
        {
            None => Hop::Unreadable,
            Some(text) if forwarded => forwarded_hop(text),
            Some(text) => address(text),
        }
    })
}

/// The `for=` of one element of an RFC 7239 `Forwarded` line (`for=192.0.2.60;proto=http`, or
/// `for="[2001:db8::1]:4711"`). An element without one, `unknown` or an obfuscated `_name` cannot
/// be read.
fn forwarded_hop(element: &str) -> Hop {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map_or(Hop::Unreadable, |(_, value)| address(value))
}

impl TrustedProxies {
    /// Finds the client once, in front of every route (`http::door`), and leaves it on the
    /// request for the limits behind it.
    pub fn resolve(&self, req: &mut Request) {
        let client = self.client(req);
        req.extensions_mut().insert(client);
    }
}

/// A request from `peer` with the header `lines`, as the server would hand it over (unit tests).
#[cfg(test)]
pub(crate) fn test_request(peer: &str, lines: &[(&str, &str)]) -> Request {
    let mut builder = poem::http::Request::builder();
    for (name, value) in lines {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).expect("a request").into_parts();
    let addr: SocketAddr = peer.parse().expect("a socket address");
    let parts = poem::RequestParts::from((
        parts,
        poem::web::LocalAddr::default(),
        poem::web::RemoteAddr(poem::Addr::SocketAddr(addr)),
        poem::http::uri::Scheme::HTTP,
    ));
    Request::from_parts(parts, poem::Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn proxies(pairs: &[(&str, &str)]) -> TrustedProxies {
        let settings = Settings::from_pairs(pairs).expect("valid settings");
        TrustedProxies::new(&settings.rate_limits, Arc::new(Metrics::new()))
    }

    fn request(peer: &str, lines: &[(&str, &str)]) -> Request {
        test_request(peer, lines)
    }

    fn client(p: &TrustedProxies, peer: &str, lines: &[(&str, &str)]) -> String {
        p.client(&request(peer, lines)).0.to_string()
    }

    const XFF: [(&str, &str); 2] = [
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ];

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let p = proxies(&XFF);
        let forged = [("x-forwarded-for", "198.51.100.1")];
        assert_eq!(client(&p, "203.0.113.9:5000", &forged), "203.0.113.9");
        assert_eq!(client(&p, "10.0.0.5:5000", &forged), "198.51.100.1");
        assert_eq!(client(&p, "10.0.0.5:5000", &[]), "10.0.0.5");
        let none = proxies(&[]);
        assert_eq!(client(&none, "10.0.0.5:5000", &forged), "10.0.0.5");
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address_across_every_line() {
        let p = proxies(&XFF);
        // The client's own forged line comes first; the proxy appends the real address.
        let lines = [
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.9"),
        ];
        assert_eq!(client(&p, "10.0.0.5:80", &lines), "198.51.100.7");
        let one_line = [("x-forwarded-for", "1.1.1.1,198.51.100.7")];
        assert_eq!(client(&p, "10.0.0.5:80", &one_line), "198.51.100.7");
        let all_proxies = [("x-forwarded-for", "10.0.0.7, 10.0.0.8")];
        assert_eq!(client(&p, "10.0.0.5:80", &all_proxies), "10.0.0.7");
    }

    #[test]
    fn ports_and_brackets_are_read_and_garbage_is_the_peer() {
        let p = proxies(&XFF);
        for (value, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("1.1.1.1, not-an-ip", "10.0.0.5"),
            ("unknown", "10.0.0.5"),
        ] {
            assert_eq!(
                client(&p, "10.0.0.5:80", &[("x-forwarded-for", value)]),
                want,
                "{value}"
            );
        }
    }

    /// A request from `peer` with one `name` line of raw `bytes` (not necessarily text).
    fn raw_request(peer: &str, name: &str, bytes: &[u8]) -> Request {
        let mut req = request(peer, &[]);
        let value = poem::http::HeaderValue::from_bytes(bytes).expect("a header value");
        let name = poem::http::HeaderName::from_bytes(name.as_bytes()).expect("a name");
        req.headers_mut().append(name, value);
        req
    }

    #[test]
    fn an_element_that_is_not_ascii_is_its_own_problem_not_the_lines() {
        let p = proxies(&XFF);
        let line = b"1.1.1.1\xff, 203.0.113.9";
        let req = raw_request("10.0.0.5:80", "x-forwarded-for", line);
        assert_eq!(p.client(&req).0.to_string(), "203.0.113.9");
        // The proxy's own element unreadable: the peer, as for any unreadable right-most hop.
        let req = raw_request("10.0.0.5:80", "x-forwarded-for", b"203.0.113.9, 1.1.1.\xe9");
        assert_eq!(p.client(&req).0.to_string(), "10.0.0.5");
        let f = proxies(&[
            ("TRUSTED_PROXY_HEADER", "forwarded"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        let line = b"for=\"1.1.1.1\xff\", for=198.51.100.4;proto=https";
        let req = raw_request("10.0.0.5:80", "forwarded", line);
        assert_eq!(f.client(&req).0.to_string(), "198.51.100.4");
    }

    #[test]
    fn forwarded_is_read_by_its_for_parameters() {
        let p = proxies(&[
            ("TRUSTED_PROXY_HEADER", "Forwarded"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        let lines = [(
            "forwarded",
            "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.9;by=10.0.0.5",
        )];
        assert_eq!(client(&p, "10.0.0.5:80", &lines), "2001:db8:cafe::17");
        let obfuscated = [("forwarded", "for=_hidden")];
        assert_eq!(client(&p, "10.0.0.5:80", &obfuscated), "10.0.0.5");
        let no_for = [("forwarded", "proto=https")];
        assert_eq!(client(&p, "10.0.0.5:80", &no_for), "10.0.0.5");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = ClientIp("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip"));
        let c = ClientIp("2001:db8:1:3::1".parse().expect("ip"));
        assert_eq!(a.key(), "2001:db8:1:2::/64");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_eq!(
            ClientIp("192.0.2.1".parse().expect("ip")).key(),
            "192.0.2.1"
        );
        let p = proxies(&XFF);
        assert_eq!(
            client(
                &p,
                "[::ffff:10.0.0.5]:80",
                &[("x-forwarded-for", "198.51.100.2")]
            ),
            "198.51.100.2"
        );
    }
}
