//! The edge's `edge.yaml`: the same settings as `burrow edge` flags. Unknown
//! keys are errors here (unlike the connector's cloudflared-compatible file).

use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Every `burrow edge` setting, declared once: each field is both a flag
/// (`--edge-domain`) and an `edge.yaml` key (`edge-domain`) of the same
/// name, with the same help. Defaults are the `[default: ...]` in each
/// help line; they apply after flags and file are merged ([`Self::over`]),
/// so a flag left out never hides the file's value.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EdgeSettings {
    /// YAML file with the same settings as these flags, by the same names
    /// (flags win; repeatable flags add to the file's list).
    #[arg(long, env = "BURROW_EDGE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Short name of this edge node, e.g. NRT. [default: LOCAL]
    #[arg(long)]
    pub colo: Option<String>,
    /// Tunnel endpoint: QUIC on UDP and HTTP/2 over TLS on TCP, same port.
    /// Port 0 picks a free port (logged). [default: 0.0.0.0:7844]
    #[arg(long)]
    pub listen: Option<String>,
    /// Admin API and health endpoints. Keep it on loopback.
    /// [default: 127.0.0.1:7845]
    #[arg(long)]
    pub admin: Option<String>,
    /// Where the state lives: sqlite:PATH (one host; edges on it may share
    /// the file) or postgres://USER:PASSWORD@HOST:PORT/DB (edge nodes on
    /// many hosts share it; the password is never logged, and the
    /// environment keeps it out of the process list).
    /// [default: sqlite:./burrow-edge.db]
    #[arg(
        long,
        env = "BURROW_STORE",
        value_name = "URL",
        conflicts_with = "state"
    )]
    pub store: Option<String>,
    /// SQLite state file, created on first start: the same as
    /// --store sqlite:PATH.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// File holding the cluster's secret: the same file on every node of a
    /// PostgreSQL store (at least 32 characters). It seals the shared edge
    /// CA key and admin token in the database and authenticates the nodes
    /// to each other. A node needs only this and the store URL to join.
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// This node's own files: the edge CA and keys, the admin token, the
    /// QUIC reset key. [default: beside a SQLite store (edge.db →
    /// edge.d/); ./burrow-edge.d with PostgreSQL]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Edge domain: TLS names are quic.<domain> and h2.<domain>.
    /// [default: burrow.internal]
    #[arg(long)]
    pub edge_domain: Option<String>,
    /// IPv4 addresses apps listen on, comma-separated; each app takes one
    /// (chosen by its id) unless its edge_ips.connectivity is ipv6. Use
    /// 0.0.0.0 for every interface. [default: 127.0.0.1]
    #[arg(long, value_name = "IP[,IP...]")]
    pub app_ipv4_pool: Option<String>,
    /// IPv6 addresses apps listen on, comma-separated; each app takes one
    /// unless its edge_ips.connectivity is ipv4. Give "" for none.
    /// [default: ::1]
    #[arg(long, value_name = "IP[,IP...]")]
    pub app_ipv6_pool: Option<String>,
    /// One address for every app (sets that family's pool and empties the
    /// other); shorthand for the two pool settings.
    #[arg(long, value_name = "IP", conflicts_with_all = ["app_ipv4_pool", "app_ipv6_pool"])]
    pub app_address: Option<String>,
    /// CA certificates (PEM) that origins of tls: strict apps must chain
    /// to. [default: the system roots]
    #[arg(long, value_name = "FILE")]
    pub origin_ca: Option<PathBuf>,
    /// DNS server (IP:PORT) for origin_dns names and zero-trust egress.
    /// [default: the system's resolver configuration]
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<String>,
    /// Serve the built-in DNS responder here (UDP and TCP), authoritative
    /// for the edge domain: _v2-origintunneld._tcp.<domain> SRV lists the
    /// live nodes' tunnel endpoints (connectors find edges with it), and
    /// each app's dns.name answers with its addresses on the live nodes.
    /// Delegate the edge domain (and app names) to it. [default: off]
    #[arg(long, value_name = "IP:PORT")]
    pub dns: Option<String>,
    /// Newest tunnel protocol version this node speaks: 2, or 1 to behave
    /// like a node of an older release (refuses version 2 parties and
    /// speaks version 1 to other nodes) while rehearsing an upgrade.
    /// [default: 2]
    #[arg(long, value_name = "1|2")]
    pub wire_version: Option<u16>,
    /// Post-quantum key agreement (X25519MLKEM768) on the tunnel endpoint:
    /// prefer (offered first, classical fallback), require (connectors,
    /// clients and nodes without it are refused at the handshake) or off.
    /// [default: prefer]
    #[arg(long, value_name = "prefer|require|off")]
    pub post_quantum: Option<String>,
    /// How long open flows may finish after SIGTERM/SIGINT. [default: 30s]
    #[arg(long)]
    pub grace_period: Option<String>,
    /// Let zero-trust clients reach CIDR although the built-in deny refuses
    /// it (loopback, link-local, private ranges, this host's addresses).
    /// Repeatable. DANGEROUS: clients then reach services on those
    /// addresses as the edge host; the edge's own listeners stay refused.
    #[arg(long, value_name = "CIDR")]
    pub egress_allow: Vec<String>,
    /// Serve HTTP/2 only: no UDP listener.
    #[arg(long)]
    pub disable_quic: bool,
    /// Public HTTP listener for hostnames routed to tunnels (`burrow route
    /// dns`), e.g. 0.0.0.0:80. [default: off]
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<String>,
    /// Public HTTPS listener (HTTP/1.1 and HTTP/2) for routed hostnames,
    /// with the --cert-dir certificates chosen by SNI. [default: off]
    #[arg(long, value_name = "IP:PORT")]
    pub https: Option<String>,
    /// Network session log of zero-trust client flows: one JSON object per
    /// finished session (Gateway's field names), rotated at 64 MiB.
    #[arg(long, value_name = "FILE")]
    pub session_log: Option<PathBuf>,
    /// Also send each session log record to this HTTP(S) endpoint: batches
    /// of JSON lines in a POST (application/x-ndjson), up to 1,000 records
    /// or 1 s apart, retried 5 times; drops are counted in
    /// burrow_edge_logpush_records_dropped_total. A query string is kept
    /// (and never logged), e.g. for a token.
    #[arg(long, value_name = "URL")]
    pub logpush_url: Option<String>,
    /// CA certificates (PEM) to verify an https:// logpush endpoint with.
    /// [default: the system roots]
    #[arg(long, value_name = "FILE")]
    pub logpush_ca: Option<PathBuf>,
    /// A peer edge of another colo, for egress from that colo's dedicated
    /// IPs (`burrow egress-ip add IP --colo KIX`): COLO=HOST:PORT, its
    /// tunnel endpoint. Repeat for several. Needs peer-secret-file.
    #[arg(long, value_name = "COLO=HOST:PORT")]
    pub peer: Vec<String>,
    /// File holding the secret shared by all peer edges (at least 32
    /// characters; the same file on every edge). Also lets this edge accept
    /// flows from its peers.
    #[arg(long, value_name = "FILE")]
    pub peer_secret_file: Option<PathBuf>,
    /// CA certificate (PEM) of the peer edges' endpoints. [default: this
    /// edge's own CA, i.e. edges that share a CA]
    #[arg(long, value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,
    /// Where a colo is, for the default egress (flows no policy matches
    /// leave with the dedicated IP of the nearest colo; without dedicated
    /// IPs, users in a country with its own colo leave from that colo):
    /// COLO=LAT,LON[,COUNTRY], e.g. NRT=35.76,140.38,JP. Repeat for each
    /// colo, this one included.
    #[arg(long, value_name = "COLO=LAT,LON[,CC]")]
    pub colo_location: Vec<String>,
    /// Directory of certificates for apps that terminate TLS at the edge:
    /// NAME.pem (chain) and NAME.key per hostname, chosen by SNI.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// MaxMind-DB country file (GeoLite2-Country, DB-IP country lite) for
    /// access rules with target country.
    #[arg(long, value_name = "FILE")]
    pub geoip_country: Option<PathBuf>,
    /// MaxMind-DB ASN file (GeoLite2-ASN, DB-IP ASN lite) for access rules
    /// with target asn.
    #[arg(long, value_name = "FILE")]
    pub geoip_asn: Option<PathBuf>,
    /// Log level when --loglevel and BURROW_LOGLEVEL are not given (only in
    /// edge.yaml; the flag is the global --loglevel). [default: info]
    #[arg(skip)]
    pub loglevel: Option<String>,
}

impl EdgeSettings {
    /// These settings (flags) over `file`'s: a value given here wins, a
    /// list given here adds to the file's, `disable-quic` is on if either
    /// sets it. Works on the serialized form, so no field is named twice.
    #[must_use]
    pub fn over(&self, file: &EdgeSettings) -> EdgeSettings {
        use serde_json::Value;
        let (Ok(Value::Object(flags)), Ok(Value::Object(mut merged))) =
            (serde_json::to_value(self), serde_json::to_value(file))
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        for (key, value) in flags {
            match (value, merged.get_mut(&key)) {
                (Value::Null | Value::Bool(false), _) => {}
                (Value::Array(more), Some(Value::Array(list))) => list.extend(more),
                (value, _) => {
                    merged.insert(key, value);
                }
            }
        }
        let mut out: EdgeSettings =
            serde_json::from_value(Value::Object(merged)).unwrap_or_else(|_| self.clone());
        out.config = self.config.clone();
        out
    }

    /// The settings as `key: value` pairs (YAML key names), for telling
    /// which keys two configurations disagree on.
    #[must_use]
    pub fn entries(&self) -> Vec<(String, String)> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => {
                m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Parses `--egress-allow` / `egress-allow` values: CIDRs or single
/// addresses, host bits clear.
///
/// # Errors
/// [`ConfigError`] naming `field[i]`.
pub fn parse_egress_allow(
    field: &str,
    values: &[String],
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = || format!("{field}[{i}]");
            let net = match v.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => v
                    .parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| {
                        ConfigError::new(at(), format!("'{v}' is not a CIDR or an IP address"))
                    })?,
            };
            if net.trunc() != net {
                return Err(ConfigError::new(
                    at(),
                    format!("'{v}' has host bits set; did you mean {}?", net.trunc()),
                ));
            }
            Ok(net)
        })
        .collect()
}

/// Parses an `edge.yaml`: every key is optional, unknown keys are errors.
/// Values are checked where they are resolved (the `burrow edge` command)
/// except `colo`, `grace-period` and `egress-allow`, checked here.
///
/// # Errors
/// [`ConfigError`] naming the key (unknown keys included) and the reason.
pub fn parse_edge_yaml(text: &str) -> Result<EdgeSettings, ConfigError> {
    if text.trim().is_empty() {
        return Ok(EdgeSettings::default());
    }
    let file: EdgeSettings =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::new("edge.yaml", e.to_string()))?;
    if let Some(c) = &file.colo {
        validate_colo(c)?;
    }
    if let Some(g) = &file.grace_period {
        crate::duration::parse(g).map_err(|r| ConfigError::new("grace-period", r))?;
    }
    parse_egress_allow("egress-allow", &file.egress_allow)?;
    Ok(file)
}

/// Checks a colo name: 1-16 ASCII letters, digits or `-`.
///
/// # Errors
/// [`ConfigError`] on field `colo`.
pub fn validate_colo(c: &str) -> Result<(), ConfigError> {
    if c.is_empty() || c.len() > 16 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::new(
            "colo",
            format!("'{c}' must be 1-16 letters, digits or '-', e.g. NRT"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        edge: EdgeSettings,
    }

    #[test]
    fn every_flag_is_a_yaml_key_of_the_same_name() {
        let cmd = Cli::command();
        let mut seen = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "config" | "help") {
                continue;
            }
            let value = if arg.get_action().takes_values() {
                "x"
            } else {
                "true"
            };
            // A key the file does not know fails with "unknown field".
            let err = parse_edge_yaml(&format!("{long}: {value}\n"))
                .err()
                .map(|e| e.reason)
                .unwrap_or_default();
            assert!(!err.contains("unknown field"), "--{long}: {err}");
            seen += 1;
        }
        assert!(seen >= 25, "only {seen} flags");
    }

    #[test]
    fn flags_win_lists_add_and_unset_flags_keep_the_file() {
        let file = parse_edge_yaml(
            "colo: NRT\nlisten: 0.0.0.0:7844\negress-allow: [10.0.0.0/8]\ndisable-quic: true\n",
        )
        .unwrap();
        let flags = Cli::parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--egress-allow",
            "192.168.0.0/16",
        ])
        .edge;
        let m = flags.over(&file);
        assert_eq!(m.colo.as_deref(), Some("NRT"));
        assert_eq!(m.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(m.egress_allow, ["10.0.0.0/8", "192.168.0.0/16"]);
        assert!(m.disable_quic);
        let changed: Vec<String> = m
            .entries()
            .into_iter()
            .zip(file.entries())
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0)
            .collect();
        assert_eq!(changed, ["egress-allow", "listen"]);
    }

    #[test]
    fn parses_and_rejects_unknown() {
        let f = parse_edge_yaml("colo: NRT\nlisten: 127.0.0.1:0\ngrace-period: 5s\n").unwrap();
        assert_eq!(f.colo.as_deref(), Some("NRT"));
        assert_eq!(f.grace_period.as_deref(), Some("5s"));
        let e = parse_edge_yaml("grace-period: soon\n").unwrap_err();
        assert_eq!(e.field, "grace-period");
        let e = parse_edge_yaml("colour: NRT\n").unwrap_err();
        assert!(e.reason.contains("colour"), "{e}");
        let e = parse_edge_yaml("colo: 'N RT'\n").unwrap_err();
        assert_eq!(e.field, "colo");
        let f = parse_edge_yaml("egress-allow: [127.0.0.0/8, 10.1.2.3]\n").unwrap();
        assert_eq!(f.egress_allow.len(), 2);
        let e = parse_edge_yaml("egress-allow: [nope]\n").unwrap_err();
        assert_eq!(e.field, "egress-allow[0]");
        let e = parse_edge_yaml("egress-allow: [127.0.0.1/8]\n").unwrap_err();
        assert_eq!(e.field, "egress-allow[0]");
        assert!(e.reason.contains("127.0.0.0/8"), "{e}");
    }
}
