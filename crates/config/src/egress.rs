//! Egress policies as JSON (the API body and `burrow policy lint/test
//! --file`): a list of rules, first match wins.
//!
//! ```json
//! [{"id": "eng", "name": "eng leaves from NRT",
//!   "selector": {"groups": ["eng"], "ports": ["443", "8000-8100"],
//!                "protocols": ["tcp"], "hostnames": ["*.example.com"],
//!                "dst": ["198.51.100.0/24"], "ip_version": "4", "proxied": false},
//!   "action": {"type": "dedicated", "primary_ipv4": "203.0.113.10",
//!              "secondary_ipv4": "203.0.113.20", "ipv6_range": "2001:db8::/64"}},
//!  {"id": "rest", "name": "everyone else", "action": {"type": "default"}}]
//! ```
//!
//! Selector keys: `emails`, `groups`, `devices`, `src`, `dst` (CIDR or
//! IP), `ports` (`P` or `A-B`), `protocols` (`tcp`/`udp`), `hostnames`
//! (exact or `*.`), `ip_version` (`4`/`6`), `proxied` (bool), `vnets`.
//! Unknown keys are errors; every error names the rule and key.

use crate::ConfigError;
use burrow_policy::egress::{Action, IpVersion, Protocol, Rule, Selector};
use burrow_policy::host::HostPattern;
use burrow_policy::ports::PortRange;
use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// Namespace of [`log_id`]'s UUIDs.
const LOG_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6275_7272_6f77_4567_7265_7373_5275_6c65);

/// The UUID the network session log's `EgressRuleID` gives a rule: its id
/// when that is a UUID, else the UUID v5 of the id in burrow's namespace
/// (stable, so a log search by it keeps working). No rule: all zeros.
#[must_use]
pub fn log_id(rule_id: Option<&str>) -> uuid::Uuid {
    match rule_id {
        None => uuid::Uuid::nil(),
        Some(id) => uuid::Uuid::parse_str(id)
            .unwrap_or_else(|_| uuid::Uuid::new_v5(&LOG_ID_NAMESPACE, id.as_bytes())),
    }
}

/// One rule as the API and `--file` take it (checked by [`parse_rules`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique id, used by `move` and `delete`.
    pub id: String,
    /// What the rule is for.
    #[serde(default)]
    pub name: String,
    /// What the rule matches (all keys AND-ed, values in one key OR-ed);
    /// empty matches every flow.
    #[serde(default, skip_serializing_if = "RawSelector::is_empty")]
    pub selector: RawSelector,
    /// What happens to a matching flow.
    pub action: RawAction,
}

/// A rule's `selector`: the JSON keys, and the flags of `burrow policy
/// add` (a repeated flag is a list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawSelector {
    /// User email.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "email")]
    pub emails: Vec<String>,
    /// Group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Device id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Client source IP or CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "src")]
    pub src: Vec<String>,
    /// Destination IP or CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "dst")]
    pub dst: Vec<String>,
    /// Destination port or range A-B.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// tcp or udp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "protocol")]
    pub protocols: Vec<String>,
    /// Destination hostname, exact or *.example.com.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long)]
    pub ip_version: Option<String>,
    /// true: destinations served by this edge; false: all others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long)]
    pub proxied: Option<bool>,
    /// Virtual network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[arg(long = "vnet")]
    pub vnets: Vec<String>,
}

impl RawSelector {
    /// True when it matches every flow.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == RawSelector::default()
    }
}

/// A rule's `action`: `default`, `block`, or `dedicated` with its IPs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// `default`, `block` or `dedicated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `dedicated`: the IPv4 egress address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ipv4: Option<String>,
    /// `dedicated`: the address used when the primary's colo is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_ipv4: Option<String>,
    /// `dedicated`: the IPv6 egress range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_range: Option<String>,
}

fn net(field: &str, s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError::new(field, format!("'{s}' is not an IP address or CIDR range")))
}

fn each<T>(
    at: &str,
    key: &str,
    list: &[String],
    f: impl Fn(&str, &str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| f(&format!("{at}.{key}[{i}]"), s))
        .collect()
}

/// Parses and checks a list of rules.
///
/// # Errors
/// [`ConfigError`] naming `policies[i].selector.key[j]` (or the action
/// field) and the reason.
pub fn parse_rules(json: &str) -> Result<Vec<Rule>, ConfigError> {
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| ConfigError::new("policies", e.to_string()))?;
    let mut out = Vec::with_capacity(raw.len());
    let mut ids = std::collections::HashSet::new();
    for (i, v) in raw.into_iter().enumerate() {
        let at = format!("policies[{i}]");
        let r: RawRule =
            serde_json::from_value(v).map_err(|e| ConfigError::new(&at, e.to_string()))?;
        if r.id.is_empty() || !ids.insert(r.id.clone()) {
            return Err(ConfigError::new(
                format!("{at}.id"),
                format!("'{}' is empty or used by an earlier rule", r.id),
            ));
        }
        let s = &r.selector;
        let sat = format!("{at}.selector");
        let selector = Selector {
            emails: each(&sat, "emails", &s.emails, |f, e| {
                crate::identity::validate_email(f, e)
            })?,
            groups: s.groups.clone(),
            devices: s.devices.clone(),
            src: each(&sat, "src", &s.src, net)?,
            dst: each(&sat, "dst", &s.dst, net)?,
            ports: each(&sat, "ports", &s.ports, |f, p| {
                PortRange::parse(p).map_err(|e| ConfigError::new(f, e.0))
            })?,
            protocols: each(&sat, "protocols", &s.protocols, |f, p| match p {
                "tcp" => Ok(Protocol::Tcp),
                "udp" => Ok(Protocol::Udp),
                other => Err(ConfigError::new(f, format!("'{other}' is not tcp or udp"))),
            })?,
            hostnames: each(&sat, "hostnames", &s.hostnames, |f, h| {
                HostPattern::parse(h).map_err(|e| ConfigError::new(f, e.to_string()))
            })?,
            ip_version: match s.ip_version.as_deref() {
                None => None,
                Some("4") => Some(IpVersion::V4),
                Some("6") => Some(IpVersion::V6),
                Some(other) => {
                    return Err(ConfigError::new(
                        format!("{sat}.ip_version"),
                        format!("'{other}' is not 4 or 6"),
                    ))
                }
            },
            proxied: s.proxied,
            vnets: s.vnets.clone(),
        };
        let aat = format!("{at}.action");
        let action = match r.action.kind.as_str() {
            "default" => Action::Default,
            "block" => Action::Block,
            "dedicated" => {
                let v4 = |key: &str, v: &Option<String>| -> Result<Option<Ipv4Addr>, ConfigError> {
                    v.as_deref()
                        .map(|s| {
                            s.parse().map_err(|_| {
                                ConfigError::new(
                                    format!("{aat}.{key}"),
                                    format!("'{s}' is not an IPv4 address"),
                                )
                            })
                        })
                        .transpose()
                };
                let primary_ipv4 =
                    v4("primary_ipv4", &r.action.primary_ipv4)?.ok_or_else(|| {
                        ConfigError::new(
                            format!("{aat}.primary_ipv4"),
                            "required for dedicated egress",
                        )
                    })?;
                let ipv6_range = r
                    .action
                    .ipv6_range
                    .as_deref()
                    .map(|s| {
                        s.parse::<Ipv6Net>().map_err(|_| {
                            ConfigError::new(
                                format!("{aat}.ipv6_range"),
                                format!("'{s}' is not an IPv6 range"),
                            )
                        })
                    })
                    .transpose()?;
                Action::Dedicated {
                    primary_ipv4,
                    secondary_ipv4: v4("secondary_ipv4", &r.action.secondary_ipv4)?,
                    ipv6_range,
                }
            }
            other => {
                return Err(ConfigError::new(
                    format!("{aat}.type"),
                    format!("'{other}' is not default, dedicated or block"),
                ))
            }
        };
        out.push(Rule {
            id: r.id,
            name: r.name,
            selector,
            action,
        });
    }
    Ok(out)
}

/// One change to the ordered list (`burrow policy add/move/delete`).
#[derive(Debug, Clone)]
pub enum Edit {
    /// Insert `rule` at 1-based `position` (the end when `None`).
    Add {
        /// The rule, as JSON.
        rule: serde_json::Value,
        /// Where it goes: 1 is first.
        position: Option<usize>,
    },
    /// Move the rule `id` to 1-based `position`.
    Move {
        /// Rule id.
        id: String,
        /// 1 is first.
        position: usize,
    },
    /// Remove the rule `id`.
    Delete {
        /// Rule id.
        id: String,
    },
}

/// Applies `edit` to the stored list (as JSON values) and checks the
/// result with [`parse_rules`]; returns the new list.
///
/// # Errors
/// [`ConfigError`] naming the field: `id` (unknown), `position` (out of
/// range), or the new rule's own errors.
pub fn edit(
    mut list: Vec<serde_json::Value>,
    edit: Edit,
) -> Result<Vec<serde_json::Value>, ConfigError> {
    let find = |list: &[serde_json::Value], id: &str| {
        list.iter()
            .position(|r| r.get("id").and_then(|v| v.as_str()) == Some(id))
            .ok_or_else(|| ConfigError::new("id", format!("no rule with id '{id}'")))
    };
    let check_pos = |p: usize, len: usize| {
        if p == 0 || p > len {
            Err(ConfigError::new(
                "position",
                format!("must be from 1 to {len}"),
            ))
        } else {
            Ok(p - 1)
        }
    };
    match edit {
        Edit::Add { rule, position } => {
            let at = match position {
                Some(p) => check_pos(p, list.len() + 1)?,
                None => list.len(),
            };
            list.insert(at, rule);
        }
        Edit::Move { id, position } => {
            let from = find(&list, &id)?;
            let to = check_pos(position, list.len())?;
            let r = list.remove(from);
            list.insert(to, r);
        }
        Edit::Delete { id } => {
            let at = find(&list, &id)?;
            list.remove(at);
        }
    }
    parse_rules(&serde_json::Value::Array(list.clone()).to_string())?;
    Ok(list)
}

#[cfg(test)]
mod tests {

    #[test]
    fn session_log_rule_ids_are_uuids_stable_and_nil_for_none() {
        assert_eq!(log_id(None), uuid::Uuid::nil());
        let a = log_id(Some("block-ads"));
        assert_eq!(a, log_id(Some("block-ads")));
        assert_ne!(a, log_id(Some("block-ad")));
        assert_eq!(a.get_version_num(), 5);
        let u = "3f2a1b4c-0000-4000-8000-000000000001";
        assert_eq!(log_id(Some(u)).to_string(), u);
    }
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let rules = parse_rules(
            r#"[{"id": "eng", "name": "eng leaves from NRT",
                 "selector": {"groups": ["eng"], "ports": ["443", "8000-8100"],
                              "protocols": ["tcp"], "hostnames": ["*.example.com"],
                              "dst": ["198.51.100.0/24", "192.0.2.7"], "ip_version": "4", "proxied": false},
                 "action": {"type": "dedicated", "primary_ipv4": "203.0.113.10",
                            "secondary_ipv4": "203.0.113.20", "ipv6_range": "2001:db8::/64"}},
                {"id": "rest", "name": "everyone else", "action": {"type": "default"}}]"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].selector.ports.len(), 2);
        assert!(rules[1].selector.is_catch_all());
    }

    #[test]
    fn errors_name_the_rule_and_key() {
        let cases = [
            (
                r#"[{"id":"a","selector":{"dst":["nope"]},"action":{"type":"default"}}]"#,
                "policies[0].selector.dst[0]",
            ),
            (
                r#"[{"id":"a","selector":{"ports":["9-2"]},"action":{"type":"default"}}]"#,
                "policies[0].selector.ports[0]",
            ),
            (
                r#"[{"id":"a","selector":{"protocols":["icmp"]},"action":{"type":"default"}}]"#,
                "policies[0].selector.protocols[0]",
            ),
            (
                r#"[{"id":"a","action":{"type":"dedicated"}}]"#,
                "policies[0].action.primary_ipv4",
            ),
            (
                r#"[{"id":"a","action":{"type":"teleport"}}]"#,
                "policies[0].action.type",
            ),
            (
                r#"[{"id":"a","action":{"type":"default"}},{"id":"a","action":{"type":"default"}}]"#,
                "policies[1].id",
            ),
            (
                r#"[{"id":"a","selector":{"colour":1},"action":{"type":"default"}}]"#,
                "policies[0]",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(parse_rules(json).unwrap_err().field, field, "{json}");
        }
    }

    #[test]
    fn edits_keep_order_and_name_the_field() {
        let r = |id: &str| serde_json::json!({"id": id, "action": {"type": "default"}});
        let ids = |l: &[serde_json::Value]| -> Vec<String> {
            l.iter()
                .map(|v| v["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let l = edit(
            vec![],
            Edit::Add {
                rule: r("a"),
                position: None,
            },
        )
        .unwrap();
        let l = edit(
            l,
            Edit::Add {
                rule: r("b"),
                position: None,
            },
        )
        .unwrap();
        let l = edit(
            l,
            Edit::Add {
                rule: r("c"),
                position: Some(1),
            },
        )
        .unwrap();
        assert_eq!(ids(&l), ["c", "a", "b"]);
        let l = edit(
            l,
            Edit::Move {
                id: "c".into(),
                position: 3,
            },
        )
        .unwrap();
        assert_eq!(ids(&l), ["a", "b", "c"]);
        let l = edit(l, Edit::Delete { id: "b".into() }).unwrap();
        assert_eq!(ids(&l), ["a", "c"]);
        let e = |l: &[serde_json::Value], x| edit(l.to_vec(), x).unwrap_err();
        assert_eq!(e(&l, Edit::Delete { id: "zz".into() }).field, "id");
        assert_eq!(
            e(
                &l,
                Edit::Move {
                    id: "a".into(),
                    position: 3
                }
            )
            .field,
            "position"
        );
        assert_eq!(
            e(
                &l,
                Edit::Add {
                    rule: r("x"),
                    position: Some(0)
                }
            )
            .field,
            "position"
        );
        assert_eq!(
            e(
                &l,
                Edit::Add {
                    rule: r("a"),
                    position: None
                }
            )
            .field,
            "policies[2].id"
        );
        let bad = serde_json::json!({"id": "y", "action": {"type": "nope"}});
        assert!(e(
            &l,
            Edit::Add {
                rule: bad,
                position: None
            }
        )
        .field
        .starts_with("policies[2]"));
    }
}
