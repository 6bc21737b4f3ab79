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
    /// Hand the flow to the peer edge of `colo`, which dials from `source`.
    Peer {
        /// The owning colo.
        colo: String,
        /// Source address the peer binds.
        source: Ipv4Addr,
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
        ..
    } = action
    else {
        return vec![Exit::Local { source: None }];
    };
    if dst.is_ipv6() {
        // The IPv6 range is not bound yet: the local default source.
        return vec![Exit::Local { source: None }];
    }
    let exit = |ip: Ipv4Addr| match owner(ip) {
        Some(colo) if colo != local_colo && !proxied => Exit::Peer {
            colo: colo.to_owned(),
            source: ip,
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
                    source: [203, 0, 113, 7].into()
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
}
