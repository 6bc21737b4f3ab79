//! The built-in deny for destinations the edge dials on a client's behalf
//! (zero-trust egress, peer hand-offs). It runs before any egress policy,
//! on the address actually dialled (after name resolution), so a name
//! that resolves to 127.0.0.1 is refused like 127.0.0.1 itself.
//!
//! Refused, in this order:
//! 1. the edge's own listeners (tunnel endpoint, admin API, HTTP(S), app
//!    ports) — always, even inside an operator's `--egress-allow` range;
//! 2. unless inside an `--egress-allow` range: unspecified, loopback,
//!    link-local (169.254.0.0/16 — cloud metadata — and fe80::/10),
//!    multicast and broadcast destinations, and any address of the edge
//!    host itself;
//! 3. unless inside an `--egress-allow` range: private ranges (RFC 1918,
//!    100.64.0.0/10, ULA fc00::/7, site-local fec0::/10). Private networks
//!    are reached through private-network routes into tunnels, which are
//!    decided before this check.
//!
//! IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied {
    /// One of the edge's own listeners.
    EdgeListener,
    /// An address of the edge host.
    EdgeHost,
    /// Loopback (127.0.0.0/8, ::1).
    Loopback,
    /// Link-local (169.254.0.0/16, fe80::/10), where metadata services live.
    LinkLocal,
    /// Unspecified (0.0.0.0/8, ::).
    Unspecified,
    /// Multicast or broadcast.
    Multicast,
    /// A private range not opened with `--egress-allow`.
    Private,
}

impl Denied {
    /// A short reason for logs and the client.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::EdgeListener => "is a listener of this edge",
            Self::EdgeHost => "is an address of the edge host",
            Self::Loopback => "is a loopback address",
            Self::LinkLocal => "is a link-local address (metadata services live there)",
            Self::Unspecified => "is an unspecified address",
            Self::Multicast => "is a multicast or broadcast address",
            Self::Private => {
                "is in a private range: reach it through a private-network route, or open it with --egress-allow"
            }
        }
    }
}

/// What the caller knows about a destination that needs I/O to find out.
#[derive(Debug, Clone, Copy, Default)]
pub struct DialFacts {
    /// The address is one of the edge host's own (a bind to it succeeds).
    pub edge_host: bool,
    /// The address and port are an app listener of this edge.
    pub app_listener: bool,
}

/// The built-in deny: the edge's fixed listeners and the operator's
/// `--egress-allow` ranges.
#[derive(Debug, Clone, Default)]
pub struct DialGuard {
    listeners: Vec<SocketAddr>,
    allow: Vec<IpNet>,
}

/// `ip`, with an IPv4-mapped IPv6 address as the IPv4 address it carries.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl DialGuard {
    /// A guard for an edge listening on `listeners` (wildcard addresses
    /// cover every local address), opening `allow` deliberately.
    #[must_use]
    pub fn new(listeners: Vec<SocketAddr>, allow: Vec<IpNet>) -> Self {
        Self { listeners, allow }
    }

    /// The operator's allowed ranges.
    #[must_use]
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether the edge may dial `dst` for a client.
    ///
    /// # Errors
    /// [`Denied`] with the first reason that applies.
    pub fn check(&self, dst: SocketAddr, facts: DialFacts) -> Result<(), Denied> {
        let ip = canonical(dst.ip());
        let local = facts.edge_host || ip.is_loopback() || ip.is_unspecified();
        let own = self.listeners.iter().any(|l| {
            l.port() == dst.port()
                && (canonical(l.ip()) == ip || (l.ip().is_unspecified() && local))
        });
        if own || facts.app_listener {
            return Err(Denied::EdgeListener);
        }
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let (unspecified, loopback, link_local, multicast, private) = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (
                    o[0] == 0,
                    v4.is_loopback(),
                    v4.is_link_local(),
                    v4.is_multicast() || v4.is_broadcast(),
                    v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64),
                )
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                (
                    v6.is_unspecified(),
                    v6.is_loopback(),
                    (s[0] & 0xffc0) == 0xfe80,
                    v6.is_multicast(),
                    (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0,
                )
            }
        };
        if unspecified {
            Err(Denied::Unspecified)
        } else if loopback {
            Err(Denied::Loopback)
        } else if link_local {
            Err(Denied::LinkLocal)
        } else if multicast {
            Err(Denied::Multicast)
        } else if facts.edge_host {
            Err(Denied::EdgeHost)
        } else if private {
            Err(Denied::Private)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn guard(allow: &[&str]) -> DialGuard {
        DialGuard::new(
            vec![
                "127.0.0.1:7845".parse().unwrap(),
                "0.0.0.0:7844".parse().unwrap(),
                "[::]:443".parse().unwrap(),
            ],
            allow.iter().map(|a| a.parse().unwrap()).collect(),
        )
    }

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const NONE: DialFacts = DialFacts {
        edge_host: false,
        app_listener: false,
    };

    #[test]
    fn the_usual_suspects_are_refused() {
        let g = guard(&[]);
        for (dst, why) in [
            ("127.0.0.1:22", Denied::Loopback),
            ("127.9.9.9:80", Denied::Loopback),
            ("[::1]:80", Denied::Loopback),
            ("[::ffff:127.0.0.1]:80", Denied::Loopback),
            ("169.254.169.254:80", Denied::LinkLocal),
            ("[fe80::1]:80", Denied::LinkLocal),
            ("0.0.0.0:80", Denied::Unspecified),
            ("[::]:80", Denied::Unspecified),
            ("224.0.0.1:80", Denied::Multicast),
            ("255.255.255.255:80", Denied::Multicast),
            ("10.1.2.3:80", Denied::Private),
            ("172.16.0.1:80", Denied::Private),
            ("192.168.1.1:80", Denied::Private),
            ("100.64.0.1:80", Denied::Private),
            ("[fd00:ec2::254]:80", Denied::Private),
        ] {
            assert_eq!(g.check(at(dst), NONE), Err(why), "{dst}");
        }
        assert_eq!(g.check(at("198.51.100.7:443"), NONE), Ok(()));
        assert_eq!(g.check(at("[2001:db8::1]:443"), NONE), Ok(()));
    }

    #[test]
    fn an_address_of_the_edge_host_is_refused() {
        let g = guard(&[]);
        let host = DialFacts {
            edge_host: true,
            ..NONE
        };
        assert_eq!(g.check(at("198.51.100.7:22"), host), Err(Denied::EdgeHost));
        // A wildcard listener covers the host's public address too.
        assert_eq!(
            g.check(at("198.51.100.7:7844"), host),
            Err(Denied::EdgeListener)
        );
        assert_eq!(g.check(at("198.51.100.7:7844"), NONE), Ok(()));
    }

    #[test]
    fn allow_opens_ranges_but_never_the_edges_own_listeners() {
        let g = guard(&["127.0.0.0/8", "10.0.0.0/8"]);
        assert_eq!(g.check(at("127.0.0.1:8080"), NONE), Ok(()));
        assert_eq!(g.check(at("10.9.9.9:80"), NONE), Ok(()));
        assert_eq!(
            g.check(at("127.0.0.1:7845"), NONE),
            Err(Denied::EdgeListener)
        );
        assert_eq!(
            g.check(at("127.0.0.1:7844"), NONE),
            Err(Denied::EdgeListener)
        );
        assert_eq!(
            g.check(at("[::ffff:127.0.0.1]:7845"), NONE),
            Err(Denied::EdgeListener)
        );
        let app = DialFacts {
            app_listener: true,
            ..NONE
        };
        assert_eq!(
            g.check(at("127.0.0.1:9000"), app),
            Err(Denied::EdgeListener)
        );
        // Outside the allowed ranges nothing changed.
        assert_eq!(
            g.check(at("169.254.169.254:80"), NONE),
            Err(Denied::LinkLocal)
        );
        assert_eq!(g.check(at("192.168.0.1:80"), NONE), Err(Denied::Private));
    }

    proptest! {
        #[test]
        fn loopback_and_link_local_never_pass_without_an_allow(
            a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), port in any::<u16>()
        ) {
            let g = guard(&[]);
            let lo = SocketAddr::from(([127, a, b, c], port));
            prop_assert!(g.check(lo, NONE).is_err());
            let ll = SocketAddr::from(([169, 254, b, c], port));
            prop_assert!(g.check(ll, NONE).is_err());
            let mapped = SocketAddr::new(
                IpAddr::V6(std::net::Ipv4Addr::new(127, a, b, c).to_ipv6_mapped()),
                port,
            );
            prop_assert!(g.check(mapped, NONE).is_err());
        }
    }
}
