//! Gateway egress policies: an ordered list of rules, first match wins,
//! evaluated once when a flow starts (SPEC section 3, reference `002_*`).
//!
//! A rule's [`Selector`] has optional dimensions; a rule matches when every
//! dimension it sets matches (AND), and a dimension with several values
//! matches when any of them does (OR). An empty selector matches every
//! flow (a catch-all). The [`Action`] picks the egress: the colo's default
//! pool, or dedicated IPs.
//!
//! Pure: [`decide`] takes the rules and the flow's [`Facts`] and returns the
//! [`Decision`] with the matched rule's index; [`lint`] finds rules that can
//! never match because an earlier rule covers every flow they would, and a
//! missing catch-all; [`explain`] says why one rule does or does not match.

use crate::host::HostPattern;
use crate::ports::PortRange;
use ipnet::{IpNet, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr};

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// IP version of the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// What a flow looks like when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The user's email, lower case.
    pub user_email: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The device id.
    pub device_id: Option<String>,
    /// The client's source address (as the edge sees it).
    pub src_ip: IpAddr,
    /// The destination address, once known (after resolving a name).
    pub dst_ip: Option<IpAddr>,
    /// The destination port.
    pub dst_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The destination hostname (from a SOCKS domain or TLS SNI), lower
    /// case.
    pub hostname: Option<String>,
    /// The destination is an app or hostname this edge serves ("orange").
    pub proxied: bool,
    /// The client's virtual network.
    pub vnet: Option<String>,
}

/// The optional dimensions of a rule. Empty lists and `None` match all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// User emails (lower case).
    pub emails: Vec<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Device ids.
    pub devices: Vec<String>,
    /// Source ranges.
    pub src: Vec<IpNet>,
    /// Destination ranges.
    pub dst: Vec<IpNet>,
    /// Destination ports.
    pub ports: Vec<PortRange>,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// Destination hostnames (exact or `*.` wildcard).
    pub hostnames: Vec<HostPattern>,
    /// Destination IP version.
    pub ip_version: Option<IpVersion>,
    /// Destination served by this edge (`true`) or not (`false`).
    pub proxied: Option<bool>,
    /// Virtual networks.
    pub vnets: Vec<String>,
}

/// Where a matching flow leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The local colo's shared egress pool.
    Default,
    /// Dedicated egress IPs.
    Dedicated {
        /// IPv4 source of the flow.
        primary_ipv4: Ipv4Addr,
        /// Used when the primary's colo is down.
        secondary_ipv4: Option<Ipv4Addr>,
        /// IPv6 sources.
        ipv6_range: Option<Ipv6Net>,
    },
    /// Refuse the flow (session log `ConnectionCloseReason`
    /// `BLOCKED_BY_POLICY`).
    Block,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default egress (this colo's shared pool)"),
            Self::Block => f.write_str("block"),
            Self::Dedicated {
                primary_ipv4,
                secondary_ipv4,
                ipv6_range,
            } => {
                write!(f, "dedicated egress from {primary_ipv4}")?;
                if let Some(s) = secondary_ipv4 {
                    write!(f, " (secondary {s})")?;
                }
                if let Some(r) = ipv6_range {
                    write!(f, ", IPv6 from {r}")?;
                }
                Ok(())
            }
        }
    }
}

/// One policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: String,
    /// Name shown in logs (`EgressRuleName`).
    pub name: String,
    /// What it matches.
    pub selector: Selector,
    /// What it does.
    pub action: Action,
}

/// The outcome for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Index of the first matching rule, if any.
    pub index: Option<usize>,
    /// The action to apply ([`Action::Default`] when nothing matched).
    pub action: &'a Action,
}

static DEFAULT: Action = Action::Default;

fn any_or<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

impl Selector {
    /// The first dimension that does not match the flow, by name; `None`
    /// when the selector matches.
    pub fn mismatch(&self, f: &Facts) -> Option<&'static str> {
        let email = f.user_email.as_deref();
        if !any_or(&self.emails, |e| Some(e.as_str()) == email) {
            return Some("user email");
        }
        if !any_or(&self.groups, |g| f.groups.contains(g)) {
            return Some("group");
        }
        if !any_or(&self.devices, |d| {
            Some(d.as_str()) == f.device_id.as_deref()
        }) {
            return Some("device");
        }
        if !any_or(&self.src, |n| n.contains(&f.src_ip)) {
            return Some("source IP");
        }
        if !any_or(&self.dst, |n| f.dst_ip.is_some_and(|ip| n.contains(&ip))) {
            return Some("destination IP");
        }
        if !any_or(&self.ports, |r| r.contains(f.dst_port)) {
            return Some("destination port");
        }
        if !any_or(&self.protocols, |p| *p == f.protocol) {
            return Some("protocol");
        }
        if !any_or(&self.hostnames, |h| {
            f.hostname.as_deref().is_some_and(|n| h.matches(n))
        }) {
            return Some("hostname");
        }
        if let Some(v) = self.ip_version {
            let actual = f.dst_ip.map(|ip| {
                if ip.is_ipv4() {
                    IpVersion::V4
                } else {
                    IpVersion::V6
                }
            });
            if actual != Some(v) {
                return Some("IP version");
            }
        }
        if self.proxied.is_some_and(|p| p != f.proxied) {
            return Some("proxied");
        }
        if !any_or(&self.vnets, |v| Some(v.as_str()) == f.vnet.as_deref()) {
            return Some("virtual network");
        }
        None
    }

    /// Whether the selector matches the flow.
    pub fn matches(&self, f: &Facts) -> bool {
        self.mismatch(f).is_none()
    }

    /// Whether every flow this selector matches, `other` matches too.
    pub fn covered_by(&self, other: &Selector) -> bool {
        fn list<T: PartialEq>(mine: &[T], theirs: &[T]) -> bool {
            theirs.is_empty() || (!mine.is_empty() && mine.iter().all(|x| theirs.contains(x)))
        }
        fn nets(mine: &[IpNet], theirs: &[IpNet]) -> bool {
            theirs.is_empty()
                || (!mine.is_empty() && mine.iter().all(|m| theirs.iter().any(|t| t.contains(m))))
        }
        let ports = other.ports.is_empty()
            || (!self.ports.is_empty()
                && self.ports.iter().all(|m| {
                    other
                        .ports
                        .iter()
                        .any(|t| t.start() <= m.start() && m.end() <= t.end())
                }));
        let hosts = other.hostnames.is_empty()
            || (!self.hostnames.is_empty()
                && self
                    .hostnames
                    .iter()
                    .all(|m| other.hostnames.iter().any(|t| host_covers(t, m))));
        list(&self.emails, &other.emails)
            && list(&self.groups, &other.groups)
            && list(&self.devices, &other.devices)
            && nets(&self.src, &other.src)
            && nets(&self.dst, &other.dst)
            && ports
            && list(&self.protocols, &other.protocols)
            && hosts
            && (other.ip_version.is_none() || self.ip_version == other.ip_version)
            && (other.proxied.is_none() || self.proxied == other.proxied)
            && list(&self.vnets, &other.vnets)
    }

    /// Whether the selector matches every flow.
    pub fn is_catch_all(&self) -> bool {
        *self == Selector::default()
    }
}

/// Whether pattern `t` matches every name pattern `m` matches.
fn host_covers(t: &HostPattern, m: &HostPattern) -> bool {
    match (t, m) {
        (HostPattern::Any, _) => true,
        (_, HostPattern::Any) => false,
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Exact(_), HostPattern::Wildcard(_)) => false,
        (HostPattern::Wildcard(suffix), HostPattern::Exact(b)) => {
            b.len() > suffix.len() && b.ends_with(suffix.as_str())
        }
        (HostPattern::Wildcard(ts), HostPattern::Wildcard(ms)) => ms.ends_with(ts.as_str()),
    }
}

/// The first rule matching `facts`, in order.
pub fn decide<'a>(rules: &'a [Rule], facts: &Facts) -> Decision<'a> {
    match rules.iter().position(|r| r.selector.matches(facts)) {
        Some(i) => Decision {
            index: Some(i),
            action: &rules[i].action,
        },
        None => Decision {
            index: None,
            action: &DEFAULT,
        },
    }
}

/// Why rule `rule` does or does not match `facts`, for `policy test`.
pub fn explain(rule: &Rule, facts: &Facts) -> String {
    match rule.selector.mismatch(facts) {
        None if rule.selector.is_catch_all() => "matches: it has no conditions".into(),
        None => "matches: every condition it sets holds".into(),
        Some(dim) => format!("does not match: {dim}"),
    }
}

/// A problem [`lint`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Rule `index` can never match: rule `by` (earlier) covers it.
    Shadowed {
        /// The unreachable rule.
        index: usize,
        /// The earlier rule covering it.
        by: usize,
    },
    /// The last rule is not a catch-all: unmatched flows take the default
    /// egress.
    NoCatchAll,
}

/// Rules that can never match, and a missing catch-all.
pub fn lint(rules: &[Rule]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if let Some(by) = rules[..i]
            .iter()
            .position(|earlier| r.selector.covered_by(&earlier.selector))
        {
            out.push(Finding::Shadowed { index: i, by });
        }
    }
    // No rules at all: every flow takes the default egress, plainly.
    if !rules.is_empty() && !rules.last().is_some_and(|r| r.selector.is_catch_all()) {
        out.push(Finding::NoCatchAll);
    }
    out
}

impl std::fmt::Display for Finding {
    /// Rules numbered from 1, as `burrow policy list` and positions do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shadowed { index, by } => write!(
                f,
                "rule {} can never match: rule {} covers every flow it would",
                index + 1,
                by + 1
            ),
            Self::NoCatchAll => f.write_str(
                "the last rule is not a catch-all: flows no rule matches take the default egress",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rules_is_no_finding_and_findings_read_as_text() {
        assert!(lint(&[]).is_empty(), "no policies: nothing to warn about");
        assert_eq!(
            Finding::Shadowed { index: 2, by: 0 }.to_string(),
            "rule 3 can never match: rule 1 covers every flow it would"
        );
        let a = Action::Dedicated {
            primary_ipv4: "203.0.113.7".parse().unwrap(),
            secondary_ipv4: Some("203.0.113.8".parse().unwrap()),
            ipv6_range: None,
        };
        assert_eq!(
            a.to_string(),
            "dedicated egress from 203.0.113.7 (secondary 203.0.113.8)"
        );
    }

    fn facts() -> Facts {
        Facts {
            user_email: Some("ana@example.com".into()),
            groups: vec!["eng".into()],
            device_id: Some("dev-1".into()),
            src_ip: "203.0.113.7".parse().unwrap(),
            dst_ip: Some("198.51.100.20".parse().unwrap()),
            dst_port: 443,
            protocol: Protocol::Tcp,
            hostname: Some("api.example.org".into()),
            proxied: false,
            vnet: None,
        }
    }

    fn rule(id: &str, selector: Selector, ip: [u8; 4]) -> Rule {
        Rule {
            id: id.into(),
            name: format!("rule {id}"),
            selector,
            action: Action::Dedicated {
                primary_ipv4: Ipv4Addr::from(ip),
                secondary_ipv4: None,
                ipv6_range: None,
            },
        }
    }

    #[test]
    fn first_match_wins_and_nothing_means_default() {
        let rules = vec![
            rule(
                "sales",
                Selector {
                    groups: vec!["sales".into()],
                    ..Default::default()
                },
                [192, 0, 2, 1],
            ),
            rule(
                "web",
                Selector {
                    ports: vec![
                        PortRange::new(443, 443).unwrap(),
                        PortRange::new(80, 80).unwrap(),
                    ],
                    protocols: vec![Protocol::Tcp],
                    ..Default::default()
                },
                [192, 0, 2, 2],
            ),
            rule("all", Selector::default(), [192, 0, 2, 3]),
        ];
        let d = decide(&rules, &facts());
        assert_eq!(d.index, Some(1));
        let mut udp = facts();
        udp.protocol = Protocol::Udp;
        assert_eq!(decide(&rules, &udp).index, Some(2));
        assert_eq!(decide(&rules[..2], &udp).index, None);
        assert_eq!(*decide(&rules[..2], &udp).action, Action::Default);
    }

    #[test]
    fn every_dimension_is_checked() {
        let f = facts();
        let cases: Vec<(Selector, bool)> = vec![
            (
                Selector {
                    emails: vec!["ana@example.com".into()],
                    ..Default::default()
                },
                true,
            ),
            (
                Selector {
                    emails: vec!["bo@example.com".into()],
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    devices: vec!["dev-2".into()],
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    src: vec!["203.0.113.0/24".parse().unwrap()],
                    ..Default::default()
                },
                true,
            ),
            (
                Selector {
                    dst: vec!["10.0.0.0/8".parse().unwrap()],
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    hostnames: vec![HostPattern::parse("*.example.org").unwrap()],
                    ..Default::default()
                },
                true,
            ),
            (
                Selector {
                    hostnames: vec![HostPattern::parse("example.org").unwrap()],
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    ip_version: Some(IpVersion::V6),
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    proxied: Some(true),
                    ..Default::default()
                },
                false,
            ),
            (
                Selector {
                    proxied: Some(false),
                    ..Default::default()
                },
                true,
            ),
            (
                Selector {
                    vnets: vec!["lab".into()],
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (s, want)) in cases.into_iter().enumerate() {
            assert_eq!(s.matches(&f), want, "case {i}: {s:?}");
        }
    }

    #[test]
    fn explain_names_the_failing_condition() {
        let r = rule(
            "r",
            Selector {
                groups: vec!["eng".into()],
                ports: vec![PortRange::new(22, 22).unwrap()],
                ..Default::default()
            },
            [192, 0, 2, 9],
        );
        assert_eq!(explain(&r, &facts()), "does not match: destination port");
        let all = rule("all", Selector::default(), [192, 0, 2, 9]);
        assert_eq!(explain(&all, &facts()), "matches: it has no conditions");
    }

    #[test]
    fn lint_finds_shadowed_rules_and_a_missing_catch_all() {
        let rules = vec![
            rule(
                "eng",
                Selector {
                    groups: vec!["eng".into(), "ops".into()],
                    ..Default::default()
                },
                [192, 0, 2, 1],
            ),
            // Narrower than rule 0 in every dimension it sets: unreachable.
            rule(
                "eng-web",
                Selector {
                    groups: vec!["eng".into()],
                    ports: vec![PortRange::new(443, 443).unwrap()],
                    ..Default::default()
                },
                [192, 0, 2, 2],
            ),
            // Different group: reachable.
            rule(
                "sales",
                Selector {
                    groups: vec!["sales".into()],
                    ..Default::default()
                },
                [192, 0, 2, 3],
            ),
            // *.corp.example.com is inside *.example.com
            rule(
                "wide",
                Selector {
                    hostnames: vec![HostPattern::parse("*.example.com").unwrap()],
                    ..Default::default()
                },
                [192, 0, 2, 4],
            ),
            rule(
                "narrow",
                Selector {
                    hostnames: vec![HostPattern::parse("*.corp.example.com").unwrap()],
                    dst: vec!["10.0.0.0/24".parse().unwrap()],
                    ..Default::default()
                },
                [192, 0, 2, 5],
            ),
        ];
        assert_eq!(
            lint(&rules),
            vec![
                Finding::Shadowed { index: 1, by: 0 },
                Finding::Shadowed { index: 4, by: 3 },
                Finding::NoCatchAll
            ]
        );
        let mut with_all = rules.clone();
        with_all.push(rule("all", Selector::default(), [192, 0, 2, 6]));
        assert!(!lint(&with_all).contains(&Finding::NoCatchAll));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn arb_selector() -> impl Strategy<Value = Selector> {
            (
                proptest::collection::vec(prop_oneof!["eng", "ops", "sales"], 0..3),
                proptest::collection::vec((0u16..200, 0u16..200), 0..3),
                proptest::option::of(any::<bool>()),
                proptest::collection::vec(0u8..4, 0..3),
            )
                .prop_map(|(groups, ports, proxied, nets)| Selector {
                    groups,
                    ports: ports
                        .into_iter()
                        .map(|(a, b)| PortRange::new(a.min(b).max(1), a.max(b).max(1)).unwrap())
                        .collect(),
                    proxied,
                    dst: nets
                        .into_iter()
                        .map(|n| format!("10.{n}.0.0/16").parse().unwrap())
                        .collect(),
                    ..Default::default()
                })
        }

        fn arb_facts() -> impl Strategy<Value = Facts> {
            (
                prop_oneof!["eng", "ops", "sales"],
                1u16..200,
                any::<bool>(),
                0u8..4,
                any::<u8>(),
            )
                .prop_map(|(g, port, proxied, n, host)| Facts {
                    groups: vec![g.to_string()],
                    dst_port: port,
                    proxied,
                    dst_ip: Some(IpAddr::from([10, n, 1, host])),
                    ..facts()
                })
        }

        proptest! {
            /// If lint says B is covered by A, no flow matches B and not A.
            #[test]
            fn covered_means_no_flow_escapes(a in arb_selector(), b in arb_selector(), f in arb_facts()) {
                if b.covered_by(&a) && b.matches(&f) {
                    prop_assert!(a.matches(&f), "{b:?} covered by {a:?} but {f:?} escapes");
                }
            }
        }
    }
}
