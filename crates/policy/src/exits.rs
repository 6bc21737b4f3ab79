//! Where an egress flow leaves from (the behaviour matrix of dedicated
//! egress IPs, reference `002_*`): the source address is always the
//! dedicated IP, but which colo dials depends on the destination.
//!
//! | destination            | leaves from                     |
//! |------------------------|---------------------------------|
//! | IPv4, not served here ("grey") | the colo that owns the IP |
//! | IPv4 served here ("orange")    | this colo                  |
//! | IPv6                   | this colo                       |
//!
//! The primary IPv4 comes first; the secondary is the fallback when the
//! primary's colo cannot be reached.

use crate::egress::Action;
use std::net::{IpAddr, Ipv4Addr};

/// One way out, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Dial from this edge, from `source` when set.
    Local {
        /// Source address to bind.
        source: Option<IpAddr>,
    },
    /// Hand the flow to the peer edge of `colo`, which dials from `source`
    /// (its default address when `None`).
    Peer {
        /// The owning colo.
        colo: String,
        /// Source address the peer binds.
        source: Option<Ipv4Addr>,
    },
}

/// The exits to try, in order, for a flow to `dst` under `action`.
/// `owner(ip)` names the colo a dedicated IPv4 belongs to (`None`: not
/// declared, taken as this colo's).
pub fn plan<'a>(
    action: &Action,
    dst: IpAddr,
    proxied: bool,
    local_colo: &str,
    owner: impl Fn(Ipv4Addr) -> Option<&'a str>,
) -> Vec<Exit> {
    let Action::Dedicated {
        primary_ipv4,
        secondary_ipv4,
        ipv6_range,
    } = action
    else {
        return vec![Exit::Local { source: None }];
    };
    if dst.is_ipv6() {
        // From this colo, from the range when there is one.
        return vec![Exit::Local {
            source: ipv6_range.map(|r| IpAddr::V6(ipv6_source(&r))),
        }];
    }
    let exit = |ip: Ipv4Addr| match owner(ip) {
        Some(colo) if colo != local_colo && !proxied => Exit::Peer {
            colo: colo.to_owned(),
            source: Some(ip),
        },
        _ => Exit::Local {
            source: Some(IpAddr::V4(ip)),
        },
    };
    let mut out = vec![exit(*primary_ipv4)];
    if let Some(s) = secondary_ipv4 {
        let second = exit(*s);
        if !out.contains(&second) {
            out.push(second);
        }
    }
    out
}

/// The address of a dedicated IPv6 range flows leave from: the range's
/// first host (network + 1), or the address itself for a `/128`.
pub fn ipv6_source(range: &ipnet::Ipv6Net) -> std::net::Ipv6Addr {
    if range.prefix_len() == 128 {
        return range.addr();
    }
    let n = u128::from(range.network());
    std::net::Ipv6Addr::from(n + 1)
}

/// Where a colo is: coordinates in degrees, and its country (ISO code).
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Colo name.
    pub colo: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Country, e.g. `JP`.
    pub country: Option<String>,
}

/// Great-circle distance in km.
fn km(a: &Site, b: &Site) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// The exits of a flow no policy matched (the default egress):
/// - when dedicated IPs exist (`dedicated`: IP and owning colo), the IP of
///   the colo nearest this one (this colo first, then by the sites'
///   coordinates; colos without coordinates last, by name), the next
///   nearest as the fallback, then the shared pool here;
/// - otherwise, a user whose country (`user_country`, from GeoIP) has a
///   colo of its own leaves from that colo's shared pool (the
///   Mexico-via-Los-Angeles case of `002_*`), else from this colo's.
pub fn default_plan(
    dst: IpAddr,
    proxied: bool,
    local_colo: &str,
    sites: &[Site],
    user_country: Option<&str>,
    dedicated: &[(Ipv4Addr, String)],
) -> Vec<Exit> {
    let local = Exit::Local { source: None };
    if !dedicated.is_empty() {
        let here = sites.iter().find(|s| s.colo == local_colo);
        let distance = |colo: &str| -> f64 {
            if colo == local_colo {
                return 0.0;
            }
            match (here, sites.iter().find(|s| s.colo == colo)) {
                (Some(a), Some(b)) => km(a, b),
                _ => f64::INFINITY,
            }
        };
        let mut owned: Vec<(f64, &str, Ipv4Addr)> = dedicated
            .iter()
            .map(|(ip, colo)| (distance(colo), colo.as_str(), *ip))
            .collect();
        owned.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
        // One IP per colo, nearest colos first.
        let mut colos: Vec<(&str, Ipv4Addr)> = Vec::new();
        for (_, colo, ip) in owned {
            if !colos.iter().any(|(c, _)| *c == colo) {
                colos.push((colo, ip));
            }
        }
        let action = Action::Dedicated {
            primary_ipv4: colos[0].1,
            secondary_ipv4: colos.get(1).map(|c| c.1),
            ipv6_range: None,
        };
        let owner = |ip: Ipv4Addr| colos.iter().find(|c| c.1 == ip).map(|c| c.0);
        let mut exits = plan(&action, dst, proxied, local_colo, owner);
        if !exits.contains(&local) {
            exits.push(local);
        }
        return exits;
    }
    let home = user_country.and_then(|cc| {
        sites
            .iter()
            .find(|s| s.country.as_deref() == Some(cc) && s.colo != local_colo)
    });
    let here_in_country = sites.iter().any(|s| {
        s.colo == local_colo && s.country.as_deref() == user_country && user_country.is_some()
    });
    match home {
        Some(s) if !here_in_country && !proxied => vec![
            Exit::Peer {
                colo: s.colo.clone(),
                source: None,
            },
            local,
        ],
        _ => vec![local],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dedicated(p: [u8; 4], s: Option<[u8; 4]>) -> Action {
        Action::Dedicated {
            primary_ipv4: p.into(),
            secondary_ipv4: s.map(Into::into),
            ipv6_range: None,
        }
    }

    fn owner(ip: Ipv4Addr) -> Option<&'static str> {
        match ip.octets()[3] {
            7 => Some("KIX"),
            8 => Some("NRT"),
            _ => None,
        }
    }

    const GREY: &str = "198.51.100.1";

    #[test]
    fn grey_ipv4_leaves_from_the_owning_colo_then_the_secondary() {
        let a = dedicated([203, 0, 113, 7], Some([203, 0, 113, 8]));
        let exits = plan(&a, GREY.parse().unwrap(), false, "NRT", owner);
        assert_eq!(
            exits,
            [
                Exit::Peer {
                    colo: "KIX".into(),
                    source: Some([203, 0, 113, 7].into())
                },
                Exit::Local {
                    source: Some("203.0.113.8".parse().unwrap())
                }
            ]
        );
        // At KIX itself the primary is local.
        let at_kix = plan(&a, GREY.parse().unwrap(), false, "KIX", owner);
        assert_eq!(
            at_kix[0],
            Exit::Local {
                source: Some("203.0.113.7".parse().unwrap())
            }
        );
    }

    #[test]
    fn orange_ipv4_and_ipv6_leave_locally() {
        let a = dedicated([203, 0, 113, 7], None);
        assert_eq!(
            plan(&a, GREY.parse().unwrap(), true, "NRT", owner),
            [Exit::Local {
                source: Some("203.0.113.7".parse().unwrap())
            }]
        );
        assert_eq!(
            plan(&a, "2001:db8::1".parse().unwrap(), false, "NRT", owner),
            [Exit::Local { source: None }]
        );
        // With a range, IPv6 leaves from it (here too).
        let v6 = Action::Dedicated {
            primary_ipv4: [203, 0, 113, 7].into(),
            secondary_ipv4: None,
            ipv6_range: Some("2001:db8:7::/48".parse().unwrap()),
        };
        assert_eq!(
            plan(&v6, "2001:db8::1".parse().unwrap(), false, "NRT", owner),
            [Exit::Local {
                source: Some("2001:db8:7::1".parse().unwrap())
            }]
        );
        assert_eq!(
            ipv6_source(&"fd00::7/128".parse().unwrap()),
            "fd00::7".parse::<std::net::Ipv6Addr>().unwrap()
        );
        assert_eq!(
            plan(&Action::Default, GREY.parse().unwrap(), false, "NRT", owner),
            [Exit::Local { source: None }]
        );
    }

    #[test]
    fn undeclared_ips_are_local() {
        let a = dedicated([203, 0, 113, 9], None);
        assert_eq!(
            plan(&a, GREY.parse().unwrap(), false, "NRT", owner),
            [Exit::Local {
                source: Some("203.0.113.9".parse().unwrap())
            }]
        );
    }

    fn site(colo: &str, lat: f64, lon: f64, cc: &str) -> Site {
        Site {
            colo: colo.into(),
            lat,
            lon,
            country: Some(cc.into()),
        }
    }

    fn sites() -> Vec<Site> {
        vec![
            site("NRT", 35.76, 140.38, "JP"),
            site("KIX", 34.43, 135.23, "JP"),
            site("LAX", 33.94, -118.40, "US"),
            site("QRO", 20.62, -100.19, "MX"),
            site("FRA", 50.03, 8.56, "DE"),
        ]
    }

    #[test]
    fn default_egress_uses_the_nearest_colos_dedicated_ip() {
        let dst: IpAddr = GREY.parse().unwrap();
        let ded = vec![
            ([203, 0, 113, 1].into(), "FRA".to_owned()),
            ([203, 0, 113, 2].into(), "KIX".to_owned()),
            ([203, 0, 113, 3].into(), "LAX".to_owned()),
        ];
        // From NRT: KIX is nearest, LAX next, then the shared pool here.
        assert_eq!(
            default_plan(dst, false, "NRT", &sites(), None, &ded),
            [
                Exit::Peer {
                    colo: "KIX".into(),
                    source: Some([203, 0, 113, 2].into())
                },
                Exit::Peer {
                    colo: "LAX".into(),
                    source: Some([203, 0, 113, 3].into())
                },
                Exit::Local { source: None },
            ]
        );
        // At a colo with its own dedicated IP: that one, locally.
        assert_eq!(
            default_plan(dst, false, "FRA", &sites(), None, &ded)[0],
            Exit::Local {
                source: Some("203.0.113.1".parse().unwrap())
            }
        );
    }

    #[test]
    fn default_pool_follows_the_users_country() {
        let dst: IpAddr = GREY.parse().unwrap();
        // A user in Mexico who reached LAX leaves from QRO's pool.
        assert_eq!(
            default_plan(dst, false, "LAX", &sites(), Some("MX"), &[]),
            [
                Exit::Peer {
                    colo: "QRO".into(),
                    source: None
                },
                Exit::Local { source: None }
            ]
        );
        // A user in Japan at NRT stays at NRT; unknown countries stay too.
        for cc in [Some("JP"), Some("BR"), None] {
            assert_eq!(
                default_plan(dst, false, "NRT", &sites(), cc, &[]),
                [Exit::Local { source: None }]
            );
        }
        assert!((km(&sites()[0], &sites()[1]) - 440.0).abs() < 60.0);
    }
}
