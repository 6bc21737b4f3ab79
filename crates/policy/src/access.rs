//! IP access rules for edge apps with `ip_firewall` on: `allow` / `block`
//! on an IP, a CIDR range, a country or an ASN.
//!
//! Precedence (documented in the README):
//! 1. The most specific matching rule decides: a single IP, then IP ranges
//!    (longer prefix first), then ASN, then country.
//! 2. Between rules of equal specificity, `allow` beats `block`.
//! 3. When no rule matches, the connection is allowed.
//!
//! Facts that need I/O (the country and ASN of the client, from a
//! MaxMind-DB file) are looked up by the caller before [`decide`].

use ipnet::IpNet;
use std::net::IpAddr;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Let the connection through.
    Allow,
    /// Close it before any byte reaches the origin.
    Block,
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One address.
    Ip(IpAddr),
    /// A CIDR range.
    Range(IpNet),
    /// An ISO 3166-1 alpha-2 country code, upper case.
    Country(String),
    /// An autonomous system number.
    Asn(u32),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Rule id, reported with the decision.
    pub id: String,
    /// Allow or block.
    pub mode: Mode,
    /// What it matches.
    pub target: Target,
}

/// Why a rule cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// `mode`, `target` or `value`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl Rule {
    /// Builds a rule from its API form (`mode`: allow|block, `target`:
    /// ip|ip_range|country|asn, `value`).
    ///
    /// # Errors
    /// [`RuleError`] naming the field.
    pub fn parse(id: &str, mode: &str, target: &str, value: &str) -> Result<Self, RuleError> {
        let e = |field, reason: String| RuleError { field, reason };
        let mode = match mode {
            "allow" => Mode::Allow,
            "block" => Mode::Block,
            other => return Err(e("mode", format!("'{other}' is not allow or block"))),
        };
        let v = value.trim();
        let target = match target {
            "ip" => Target::Ip(
                v.parse()
                    .map_err(|_| e("value", format!("'{v}' is not an IP address")))?,
            ),
            "ip_range" => Target::Range(
                v.parse::<IpNet>()
                    .map_err(|_| {
                        e(
                            "value",
                            format!("'{v}' is not a CIDR range such as 192.0.2.0/24"),
                        )
                    })?
                    .trunc(),
            ),
            "country" => {
                if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(e(
                        "value",
                        format!("'{v}' is not a two-letter country code"),
                    ));
                }
                Target::Country(v.to_ascii_uppercase())
            }
            "asn" => Target::Asn(
                v.trim_start_matches("AS")
                    .parse()
                    .map_err(|_| e("value", format!("'{v}' is not an AS number")))?,
            ),
            other => {
                return Err(e(
                    "target",
                    format!("'{other}' is not ip, ip_range, country or asn"),
                ))
            }
        };
        Ok(Self {
            id: id.to_owned(),
            mode,
            target,
        })
    }

    /// Specificity: larger is more specific.
    fn rank(&self) -> u32 {
        match &self.target {
            Target::Ip(_) => 1000,
            Target::Range(n) => 200 + u32::from(n.prefix_len()),
            Target::Asn(_) => 100,
            Target::Country(_) => 50,
        }
    }

    fn matches(&self, f: &Facts) -> bool {
        match &self.target {
            Target::Ip(ip) => canonical(*ip) == canonical(f.ip),
            Target::Range(n) => n.contains(&canonical(f.ip)) || n.contains(&f.ip),
            Target::Asn(a) => f.asn == Some(*a),
            Target::Country(c) => f.country.as_deref() == Some(c.as_str()),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What is known about a client when it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Source address.
    pub ip: IpAddr,
    /// Country code from the GeoIP file, if any.
    pub country: Option<String>,
    /// AS number from the GeoIP file, if any.
    pub asn: Option<u32>,
}

/// The outcome, with the rule that decided (none: default allow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the connection may proceed.
    pub allowed: bool,
    /// Id of the deciding rule.
    pub rule_id: Option<String>,
}

/// Applies the precedence above.
pub fn decide(rules: &[Rule], facts: &Facts) -> Decision {
    let best = rules
        .iter()
        .filter(|r| r.matches(facts))
        .max_by_key(|r| (r.rank(), r.mode == Mode::Allow));
    match best {
        None => Decision {
            allowed: true,
            rule_id: None,
        },
        Some(r) => Decision {
            allowed: r.mode == Mode::Allow,
            rule_id: Some(r.id.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(id: &str, mode: &str, target: &str, value: &str) -> Rule {
        Rule::parse(id, mode, target, value).unwrap()
    }

    fn facts(ip: &str) -> Facts {
        Facts {
            ip: ip.parse().unwrap(),
            country: Some("JP".into()),
            asn: Some(64500),
        }
    }

    #[test]
    fn specific_beats_general_and_allow_beats_block_on_ties() {
        let rules = vec![
            r("range", "block", "ip_range", "127.0.0.0/30"),
            r("ip", "allow", "ip", "127.0.0.2"),
            r("country", "block", "country", "jp"),
        ];
        assert_eq!(
            decide(&rules, &facts("127.0.0.2")).rule_id.as_deref(),
            Some("ip")
        );
        assert!(decide(&rules, &facts("127.0.0.2")).allowed);
        assert!(!decide(&rules, &facts("127.0.0.3")).allowed);
        // Outside the range: the country rule decides.
        let d = decide(&rules, &facts("127.0.0.9"));
        assert_eq!((d.allowed, d.rule_id.as_deref()), (false, Some("country")));
        let tie = vec![
            r("b", "block", "asn", "AS64500"),
            r("a", "allow", "asn", "64500"),
        ];
        assert!(decide(&tie, &facts("192.0.2.1")).allowed);
        let narrower = vec![
            r("wide", "allow", "ip_range", "10.0.0.0/8"),
            r("narrow", "block", "ip_range", "10.1.0.0/16"),
        ];
        assert!(!decide(&narrower, &facts("10.1.2.3")).allowed);
        assert!(decide(&narrower, &facts("10.2.2.3")).allowed);
        assert!(decide(&[], &facts("10.2.2.3")).allowed);
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_rules() {
        let rules = vec![r("x", "block", "ip", "192.0.2.1")];
        assert!(!decide(&rules, &facts("::ffff:192.0.2.1")).allowed);
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(
            Rule::parse("1", "deny", "ip", "1.2.3.4").unwrap_err().field,
            "mode"
        );
        assert_eq!(
            Rule::parse("1", "block", "cidr", "1.2.3.4")
                .unwrap_err()
                .field,
            "target"
        );
        assert_eq!(
            Rule::parse("1", "block", "ip_range", "1.2.3.4/40")
                .unwrap_err()
                .field,
            "value"
        );
        assert_eq!(
            Rule::parse("1", "block", "country", "JPN")
                .unwrap_err()
                .field,
            "value"
        );
    }

    proptest! {
        #[test]
        fn a_single_ip_rule_always_decides_for_its_ip(ip in any::<[u8; 4]>(), allow in any::<bool>(), prefix in 0u8..=32) {
            let addr = IpAddr::from(ip);
            let mode = if allow { "allow" } else { "block" };
            let other = if allow { "block" } else { "allow" };
            let rules = vec![
                r("range", other, "ip_range", &format!("{addr}/{prefix}")),
                r("one", mode, "ip", &addr.to_string()),
            ];
            let d = decide(&rules, &Facts { ip: addr, country: None, asn: None });
            prop_assert_eq!(d.allowed, allow);
        }
    }
}
