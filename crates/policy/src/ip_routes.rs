//! Private-network routes: `CIDR (in a virtual network) → tunnel`
//! (`burrow route ip add`).
//!
//! A client flow's destination address is looked up in the client's
//! virtual network only, so the same CIDR may lead to different tunnels in
//! different virtual networks. Within one virtual network the longest
//! matching prefix wins, as in a routing table.

use ipnet::IpNet;
use std::net::IpAddr;

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRoute<V, T> {
    /// The virtual network the route belongs to.
    pub vnet: V,
    /// The routed network (host bits cleared).
    pub network: IpNet,
    /// Where matching flows go.
    pub target: T,
}

/// The compiled routes, read once per flow.
#[derive(Debug, Clone)]
pub struct IpRouteTable<V, T> {
    /// Longest prefix first, so the first hit is the best one.
    routes: Vec<IpRoute<V, T>>,
}

impl<V, T> Default for IpRouteTable<V, T> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

/// Parses a route's network: an IPv4/IPv6 CIDR, or a bare address (a
/// host route). Host bits must be zero so that what is listed is what
/// matches.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net: IpNet = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err(format!("'{s}' is not an IP network such as 10.0.0.0/8")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "'{s}' has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

impl<V: PartialEq, T> IpRouteTable<V, T> {
    /// Builds the table.
    pub fn new(routes: impl IntoIterator<Item = IpRoute<V, T>>) -> Self {
        let mut routes: Vec<_> = routes.into_iter().collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.network.prefix_len()));
        Self { routes }
    }

    /// The most specific route of `vnet` containing `ip`.
    pub fn lookup(&self, vnet: &V, ip: IpAddr) -> Option<&IpRoute<V, T>> {
        let ip = canonical(ip);
        self.routes
            .iter()
            .find(|r| &r.vnet == vnet && r.network.contains(&ip))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// `::ffff:a.b.c.d` is the IPv4 address a.b.c.d for routing.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(vnet: &'static str, net: &str, target: u32) -> IpRoute<&'static str, u32> {
        IpRoute {
            vnet,
            network: parse_network(net).unwrap(),
            target,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_within_a_vnet() {
        let t = IpRouteTable::new([
            route("a", "10.0.0.0/8", 1),
            route("a", "10.1.0.0/16", 2),
            route("a", "10.1.2.3", 3),
        ]);
        assert_eq!(t.lookup(&"a", ip("10.9.9.9")).unwrap().target, 1);
        assert_eq!(t.lookup(&"a", ip("10.1.9.9")).unwrap().target, 2);
        assert_eq!(t.lookup(&"a", ip("10.1.2.3")).unwrap().target, 3);
        assert!(t.lookup(&"a", ip("11.0.0.1")).is_none());
    }

    #[test]
    fn overlapping_networks_in_different_vnets_stay_apart() {
        let t = IpRouteTable::new([route("a", "10.0.0.0/8", 1), route("b", "10.0.0.0/8", 2)]);
        assert_eq!(t.lookup(&"a", ip("10.0.0.1")).unwrap().target, 1);
        assert_eq!(t.lookup(&"b", ip("10.0.0.1")).unwrap().target, 2);
        assert!(t.lookup(&"c", ip("10.0.0.1")).is_none());
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let t = IpRouteTable::new([route("a", "fd00::/8", 1), route("a", "192.168.0.0/16", 2)]);
        assert_eq!(t.lookup(&"a", ip("fd12::1")).unwrap().target, 1);
        assert_eq!(t.lookup(&"a", ip("::ffff:192.168.1.1")).unwrap().target, 2);
        assert!(t.lookup(&"a", ip("fe80::1")).is_none());
    }

    #[test]
    fn networks_parse_with_clear_errors() {
        assert_eq!(
            parse_network("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network("10.0.0.5").unwrap().to_string(),
            "10.0.0.5/32"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        let e = parse_network("10.0.0.5/8").unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("example.com")
            .unwrap_err()
            .contains("not an IP network"));
    }

    proptest! {
        /// The table agrees with a brute-force longest-prefix search.
        #[test]
        fn lookup_is_the_longest_matching_prefix(
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u8..3), 0..40),
            probe in any::<u32>(),
            vnet in 0u8..3,
        ) {
            let routes: Vec<IpRoute<u8, usize>> = nets.iter().enumerate().map(|(i, (a, len, v))| IpRoute {
                vnet: *v,
                network: IpNet::V4(ipnet::Ipv4Net::new((*a).into(), *len).unwrap().trunc()),
                target: i,
            }).collect();
            let table = IpRouteTable::new(routes.clone());
            let probe = IpAddr::V4(probe.into());
            let best = routes.iter()
                .filter(|r| r.vnet == vnet && r.network.contains(&probe))
                .map(|r| r.network.prefix_len())
                .max();
            let got = table.lookup(&vnet, probe).map(|r| r.network.prefix_len());
            prop_assert_eq!(got, best);
        }
    }
}
