//! The admin API's bodies and answers, shared by the edge's handlers and
//! the CLI's client: a field renamed on one side is a compile error on the
//! other, not a blank column. Requests refuse unknown fields.

use serde::{Deserialize, Serialize};

/// An error answer: `{"error": "...", "field": "..."}`; `field` names the
/// body field it is about, when there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// The offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /api/v1/tunnels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTunnel {
    /// Unique name.
    pub name: String,
    /// Keep an existing tunnel's identity (one moved from cloudflared):
    /// its connectors' token or credentials then work here unchanged.
    /// Absent: a new id and secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportTunnel>,
}

/// The identity of a tunnel made elsewhere, from its credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportTunnel {
    /// Its account (cloudflared's account tag).
    pub account_tag: uuid::Uuid,
    /// Its id.
    pub tunnel_id: uuid::Uuid,
    /// Its secret, base64 (16-256 bytes).
    pub secret: String,
}

/// A tunnel, with the live connections of every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunnelInfo {
    /// Tunnel id.
    pub id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Owning account.
    pub account_id: uuid::Uuid,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Live connections (fresh heartbeat).
    pub connections: Vec<ConnectionInfo>,
    /// The credentials file's content: only in the answers of create and
    /// rotate-secret (the store keeps the secret hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<serde_json::Value>,
}

/// One live tunnel connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Connection id.
    pub id: uuid::Uuid,
    /// The tunnel it serves.
    pub tunnel_id: uuid::Uuid,
    /// The connector process.
    pub connector_id: uuid::Uuid,
    /// Its HA index on that connector.
    pub conn_index: u8,
    /// The edge node's colo.
    pub colo: String,
    /// The edge node.
    pub node_id: String,
    /// `quic` or `http2`.
    pub protocol: String,
    /// The connector's address as the edge saw it.
    pub origin_ip: String,
    /// The connector's version.
    pub version: String,
    /// Registered at, Unix seconds.
    pub since: i64,
    /// Last heartbeat, Unix seconds.
    pub seen_at: i64,
    /// The tunnel protocol version it speaks (1 or 2; absent from the
    /// answers of older edges: 1).
    #[serde(default = "wire_v1")]
    pub wire: u16,
    /// The key-exchange group of its handshake (`X25519MLKEM768` when
    /// post-quantum; empty when not known).
    #[serde(default)]
    pub kx: String,
}

fn wire_v1() -> u16 {
    1
}

/// `POST /api/v1/routes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    /// Exact hostname or `*.example.com`.
    pub hostname: String,
    /// Tunnel name or id.
    pub tunnel: String,
}

/// A hostname route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The hostname, normalized.
    pub hostname: String,
    /// The tunnel it goes to.
    pub tunnel_id: uuid::Uuid,
    /// The tunnel's name, when it still exists.
    pub tunnel: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// `POST /api/v1/access-rules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessRule {
    /// `allow` or `block`.
    pub mode: String,
    /// `ip`, `ip_range`, `country` or `asn`.
    pub target: String,
    /// The address, range, code or number.
    pub value: String,
}

/// An IP access rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRuleInfo {
    /// Rule id.
    pub id: uuid::Uuid,
    /// `allow` or `block`.
    pub mode: String,
    /// `ip`, `ip_range`, `country` or `asn`.
    pub target: String,
    /// The address, range, code or number.
    pub value: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Why the rule cannot match yet, if so (no GeoIP file for its target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `POST /api/v1/egress-ips`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEgressIp {
    /// The IPv4 address.
    pub ip: String,
    /// The colo that owns it.
    pub colo: String,
}

/// A dedicated egress IP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EgressIpInfo {
    /// The IPv4 address.
    pub ip: String,
    /// The colo that owns it.
    pub colo: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An edge node of the cluster (`GET /api/v1/cluster/nodes`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// Its colo.
    pub colo: String,
    /// Its tunnel endpoint, where connectors and other nodes reach it.
    pub tunnel_addr: String,
    /// Its app addresses.
    pub app_addresses: Vec<String>,
    /// Its version.
    pub version: String,
    /// Started at, Unix seconds.
    pub started_at: i64,
    /// Milliseconds since it last renewed its lease.
    pub lease_age_ms: i64,
    /// Whether its lease holds (a dead node gets no flows).
    pub live: bool,
    /// Tunnel connections it holds.
    pub connections: i64,
    /// Whether it is the node that answered.
    pub this_node: bool,
}

/// `POST /api/v1/vnets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVnet {
    /// Unique name.
    pub name: String,
    /// Free text, at most 256 characters.
    #[serde(default)]
    pub comment: String,
    /// Make it the default virtual network.
    #[serde(default)]
    pub default: bool,
    /// Users whose devices may use it (`burrow client --vnet NAME`).
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Groups whose members' devices may use it.
    #[serde(default)]
    pub allow_groups: Vec<String>,
}

/// `PUT /api/v1/vnets/{name}/access`: who may use a vnet, replaced whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VnetAccess {
    /// Users' emails.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `POST /api/v1/ip-routes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIpRoute {
    /// CIDR (or one address).
    pub network: String,
    /// Tunnel name or id.
    pub tunnel: String,
    /// Vnet name; the default vnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnet: Option<String>,
    /// Free text, at most 256 characters.
    #[serde(default)]
    pub comment: String,
}

/// A virtual network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VnetInfo {
    /// Vnet id.
    pub id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Whether it is the account's default.
    pub default: bool,
    /// Free text.
    pub comment: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Users who may use it (a non-default vnet).
    pub allow_users: Vec<String>,
    /// Groups whose users may use it.
    pub allow_groups: Vec<String>,
}

/// A private-network route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpRouteInfo {
    /// Route id.
    pub id: uuid::Uuid,
    /// The network, CIDR.
    pub network: String,
    /// The tunnel it goes to.
    pub tunnel_id: uuid::Uuid,
    /// The tunnel's name, when it still exists.
    pub tunnel: Option<String>,
    /// Its virtual network.
    pub vnet_id: uuid::Uuid,
    /// The vnet's name.
    pub vnet: Option<String>,
    /// Free text.
    pub comment: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The user's email (lower-cased by the edge).
    pub email: String,
    /// Groups, for policies and vnet access.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserInfo {
    /// Email, lower case.
    pub email: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// `POST /api/v1/devices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollDevice {
    /// The owner's email.
    pub user: String,
    /// A name for the device.
    pub name: String,
}

/// An enrolled device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: uuid::Uuid,
    /// The owner's email.
    pub user_email: String,
    /// Its name.
    pub name: String,
    /// Whether its access was revoked.
    pub revoked: bool,
    /// Enrollment time, Unix seconds.
    pub created_at: i64,
    /// The device credentials file's content: only in the enroll answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<serde_json::Value>,
}

/// An app: its body as created (`POST /api/v1/apps`) plus what the edge
/// adds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppInfo {
    /// App id.
    pub id: uuid::Uuid,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The addresses it listens on (`IP:PORT` or `IP:A-B`); empty while
    /// its ports cannot be bound.
    pub listen: Vec<String>,
    /// The tunnel of an `origin_tunnel` app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_id: Option<uuid::Uuid>,
    /// The body it was created or last updated with.
    #[serde(flatten)]
    pub spec: crate::app::RawApp,
}

/// `POST /api/v1/policies/rules` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPolicyRule {
    /// The rule; checked with the whole list.
    pub rule: serde_json::Value,
    /// 1-based position; the end when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// `POST /api/v1/policies/rules/ID/move` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovePolicyRule {
    /// 1-based position.
    pub position: usize,
}

/// The answer to a change of one policy rule: the whole list after it and
/// the lint findings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoliciesChanged {
    /// Every rule, in order (first match wins).
    pub rules: Vec<crate::egress::RawRule>,
    /// Rules that can never match, a missing catch-all.
    pub lint: Vec<String>,
}

/// The answer to `PUT /api/v1/policies`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoliciesSet {
    /// How many rules there are now.
    pub rules: usize,
    /// Rules that can never match, a missing catch-all.
    pub lint: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields_and_answers_round_trip() {
        let bad: Result<CreateRoute, _> =
            serde_json::from_str(r#"{"hostname":"a.example","tunnel":"t","extra":1}"#);
        assert!(bad.unwrap_err().to_string().contains("extra"));
        let r = RouteInfo {
            hostname: "a.example".into(),
            tunnel_id: uuid::Uuid::nil(),
            tunnel: Some("t".into()),
            created_at: 1,
        };
        let back: RouteInfo = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back.hostname, "a.example");
        let e: ErrorBody = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert!(e.field.is_none());
        // An app answer is its body plus the edge's fields, flat.
        let a: AppInfo = serde_json::from_str(
            r#"{"id":"00000000-0000-0000-0000-000000000000","created_at":1,"listen":["127.0.0.1:80"],
                "protocol":"tcp/80","origin_direct":["tcp://127.0.0.1:81"]}"#,
        )
        .unwrap();
        assert_eq!(a.spec.protocol, "tcp/80");
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["protocol"], "tcp/80");
        assert_eq!(v["listen"][0], "127.0.0.1:80");
    }
}
