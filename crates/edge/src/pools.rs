//! Which addresses an app listens on (`edge_ips`): one address from the
//! IPv4 pool and/or one from the IPv6 pool, by the app's connectivity.
//!
//! The address of a pool is chosen by the app id, so an app keeps its
//! address across restarts while the pool stays the same, and apps spread
//! over a pool. When the pool changes, the address may change; the admin
//! API's `GET /api/v1/apps/{id}` shows the current `listen` addresses.
//!
//! A pool may hold an unspecified address (`0.0.0.0`, `::`) to listen on
//! every interface; IPv6 listeners are IPv6-only, so both can coexist.

use burrow_config::app::Connectivity;
use std::net::IpAddr;

/// The address pools of an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPools {
    /// IPv4 addresses apps may listen on.
    pub v4: Vec<IpAddr>,
    /// IPv6 addresses apps may listen on.
    pub v6: Vec<IpAddr>,
}

impl Default for AppPools {
    /// Loopback only: `127.0.0.1` and `::1`.
    fn default() -> Self {
        Self {
            v4: vec![IpAddr::from([127, 0, 0, 1])],
            v6: vec![IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])],
        }
    }
}

impl AppPools {
    /// One address for every app (the other family's pool is empty).
    pub fn single(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Self {
                v4: vec![ip],
                v6: Vec::new(),
            }
        } else {
            Self {
                v4: Vec::new(),
                v6: vec![ip],
            }
        }
    }

    /// The addresses app `id` listens on.
    ///
    /// # Errors
    /// The reason, when the connectivity asks for a family whose pool is
    /// empty (or both are).
    pub fn addresses(
        &self,
        id: uuid::Uuid,
        connectivity: Connectivity,
    ) -> Result<Vec<IpAddr>, String> {
        let pick = |pool: &[IpAddr]| -> Option<IpAddr> {
            if pool.is_empty() {
                return None;
            }
            let n = u64::try_from(pool.len()).unwrap_or(1);
            let i = usize::try_from(id.as_u64_pair().0 % n).unwrap_or(0);
            Some(pool[i])
        };
        let out: Vec<IpAddr> = match connectivity {
            Connectivity::All => pick(&self.v4).into_iter().chain(pick(&self.v6)).collect(),
            Connectivity::Ipv4 => pick(&self.v4).into_iter().collect(),
            Connectivity::Ipv6 => pick(&self.v6).into_iter().collect(),
        };
        if out.is_empty() {
            let flag = match connectivity {
                Connectivity::Ipv4 => "an IPv4 pool (--app-ipv4-pool)",
                Connectivity::Ipv6 => "an IPv6 pool (--app-ipv6-pool)",
                Connectivity::All => "an address pool (--app-ipv4-pool / --app-ipv6-pool)",
            };
            return Err(format!("this edge has no {flag} to listen on"));
        }
        Ok(out)
    }

    /// The pools without the addresses this host cannot bind (say `::1` on
    /// a host with IPv6 turned off); `dropped` hears of each one removed.
    pub fn usable(&self, mut dropped: impl FnMut(IpAddr, &std::io::Error)) -> Self {
        let mut keep = |pool: &[IpAddr]| -> Vec<IpAddr> {
            pool.iter()
                .copied()
                .filter(|ip| match std::net::UdpSocket::bind((*ip, 0)) {
                    Ok(_) => true,
                    Err(e) => {
                        dropped(*ip, &e);
                        false
                    }
                })
                .collect()
        };
        Self {
            v4: keep(&self.v4),
            v6: keep(&self.v6),
        }
    }

    /// Parses a comma-separated list of addresses of one family, as given
    /// to `--app-ipv4-pool` / `--app-ipv6-pool` (empty string: no pool).
    ///
    /// # Errors
    /// The entry and why it is not usable.
    pub fn parse_pool(list: &str, v6: bool) -> Result<Vec<IpAddr>, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip: IpAddr = item
                .parse()
                .map_err(|_| format!("'{item}' is not an IP address"))?;
            if ip.is_ipv6() != v6 {
                return Err(format!(
                    "'{item}' is an IPv{} address",
                    if ip.is_ipv6() { 6 } else { 4 }
                ));
            }
            if ip.is_multicast() {
                return Err(format!("'{item}' is a multicast address"));
            }
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> AppPools {
        AppPools {
            v4: AppPools::parse_pool("127.0.0.1, 127.0.0.2,127.0.0.3", false).expect("v4"),
            v6: AppPools::parse_pool("::1", true).expect("v6"),
        }
    }

    #[test]
    fn connectivity_selects_the_families() {
        let id = uuid::Uuid::from_u64_pair(4, 0);
        let p = pools();
        assert_eq!(
            p.addresses(id, Connectivity::All).expect("all"),
            vec![
                IpAddr::from([127, 0, 0, 2]),
                "::1".parse::<IpAddr>().expect("ip")
            ]
        );
        assert_eq!(
            p.addresses(id, Connectivity::Ipv6).expect("v6"),
            vec!["::1".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(p.addresses(id, Connectivity::Ipv4).expect("v4").len(), 1);
    }

    #[test]
    fn apps_spread_over_the_pool_and_keep_their_address() {
        let p = pools();
        let mut seen = std::collections::HashSet::new();
        for i in 0..30 {
            let id = uuid::Uuid::from_u64_pair(i, 99);
            let a = p.addresses(id, Connectivity::Ipv4).expect("v4");
            assert_eq!(a, p.addresses(id, Connectivity::Ipv4).expect("again"));
            seen.insert(a[0]);
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn an_empty_family_is_an_error_only_when_asked_for() {
        let p = AppPools::single(IpAddr::from([127, 0, 0, 1]));
        let id = uuid::Uuid::nil();
        assert_eq!(p.addresses(id, Connectivity::All).expect("all").len(), 1);
        let e = p.addresses(id, Connectivity::Ipv6).unwrap_err();
        assert!(e.contains("--app-ipv6-pool"), "{e}");
    }

    #[test]
    fn addresses_the_host_lacks_are_dropped() {
        let p = AppPools {
            v4: vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([192, 0, 2, 123])],
            v6: Vec::new(),
        };
        let mut gone = Vec::new();
        let u = p.usable(|ip, _| gone.push(ip));
        assert_eq!(u.v4, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(gone, vec![IpAddr::from([192, 0, 2, 123])]);
    }

    #[test]
    fn pool_entries_are_checked() {
        assert!(AppPools::parse_pool("127.0.0.1,::1", false)
            .unwrap_err()
            .contains("'::1' is an IPv6 address"));
        assert!(AppPools::parse_pool("224.0.0.1", false).is_err());
        assert!(AppPools::parse_pool("nope", true)
            .unwrap_err()
            .contains("'nope' is not an IP address"));
        assert_eq!(
            AppPools::parse_pool("", true).expect("empty"),
            Vec::<IpAddr>::new()
        );
    }
}
