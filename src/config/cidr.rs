//! `TRUSTED_PROXIES`: the networks whose connections may say who the client is (docs/design.md
//! §16), as CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses (`127.0.0.1`, `::1`).
//!
//! An IPv4 address seen over IPv6 (`::ffff:10.0.0.1`, a dual-stack listener) is compared as the
//! IPv4 address it is, so a list written in IPv4 matches it.

use std::{fmt, net::IpAddr, str::FromStr};

/// One network: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The first `prefix` bits of a `width`-bit address (32 or 128), the rest cleared.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    bits & (all << (width - prefix)) & all
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a CIDR (e.g. 10.0.0.0/8)"))?;
        let ip = canonical(ip);
        let width: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0..={width}"))?,
        };
        let bits = match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if masked(bits, width, prefix) != bits {
            return Err(format!(
                "{text:?} has bits set past its /{prefix}; write the network's own address"
            ));
        }
        Ok(Self {
            network: ip,
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `TRUSTED_PROXIES`: a comma-separated list; empty is none.
pub(super) fn cidr_list(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let net: Cidr = "10.1.0.0/16".parse().expect("valid");
        assert!(net.contains(ip("10.1.2.3")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        let one: Cidr = "127.0.0.1".parse().expect("valid");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fd00:1::/32".parse().expect("valid");
        assert!(v6.contains(ip("fd00:1:ffff::9")));
        assert!(!v6.contains(ip("fd00:2::1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("valid");
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        let loopback6: Cidr = "::1".parse().expect("valid");
        assert!(loopback6.contains(ip("::1")));
    }

    #[test]
    fn a_list_is_read_whole_or_refused_with_the_entry() {
        let list = cidr_list(" 10.0.0.0/8, ::1 ,,192.168.1.7").expect("valid");
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].to_string(), "10.0.0.0/8");
        assert!(cidr_list("").expect("valid").is_empty());
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "proxy.local",
            "10.0.0.0/x",
            "::/129",
        ] {
            let err = cidr_list(bad).unwrap_err();
            assert!(
                err.contains(bad.split('/').next().unwrap_or(bad)),
                "{bad}: {err}"
            );
        }
    }
}
