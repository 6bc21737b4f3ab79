//! Protocol version 2: a typed registration per role and a typed flow
//! header, instead of version 1's overloads (a device id in
//! `Register.tunnel_id`, `vnet=NAME` and `colo=NRT` inside `features`, an
//! IP or `host:port` in `StreamOpen.hostname`, a peer's source IP in
//! `client_addr`). A party that speaks it sends the preface with version 2
//! ([`PREFACE_V2`]); the frames of both versions share one type space, so
//! an edge decodes both with [`crate::decode`] and answers each party in
//! its own version. Version 1 stays accepted.
//!
//! This is the codec; the edge, connector, client and node link move to it
//! one at a time (see docs/PROTOCOL.md, "Version 2").

use crate::{
    features, put_addr, put_bytes, put_features, DecodeError, EncodeError, FlowKind, Id, Reader,
};
use crate::{MAX_SECRET_LEN, MAX_STR_LEN};
use bytes::{BufMut, BytesMut};
use std::net::{IpAddr, SocketAddr};

/// Protocol version 2's number in the preface.
pub const VERSION_2: u16 = 2;

/// The preface of a version 2 party: [`crate::MAGIC`] and version 2.
pub const PREFACE_V2: [u8; 8] = [b'B', b'U', b'R', b'R', b'O', b'W', 0, 2];

/// Who registers, with what only that role carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A connector of a tunnel.
    Connector {
        /// The tunnel it serves.
        tunnel_id: Id,
        /// Its process id (replicas differ).
        connector_id: Id,
        /// Which of its HA connections this is.
        conn_index: u8,
    },
    /// A zero-trust client device.
    Client {
        /// The enrolled device.
        device_id: Id,
        /// The virtual network it asks for (`None`: the default).
        vnet: Option<String>,
    },
    /// Another edge node of the cluster (the node-to-node link).
    Node {
        /// Its node id.
        node_id: String,
        /// Its colo.
        colo: String,
    },
}

/// `Registration` (type 6): the first frame of a version 2 party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The account.
    pub account_id: Id,
    /// The role's secret (tunnel, device, or cluster secret).
    pub secret: crate::WireSecret,
    /// Who registers.
    pub role: Role,
    /// Software version, for logs.
    pub version: String,
    /// Optional behaviour it supports (`stream-ack`, `quic-datagrams`).
    pub features: Vec<String>,
}

/// `Welcome` (type 7): the edge accepts a [`Registration`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The id the edge gave this connection.
    pub connection_id: Id,
    /// The edge node's colo.
    pub colo: String,
    /// The edge node's id.
    pub node_id: String,
    /// Optional behaviour the edge uses on this connection.
    pub features: Vec<String>,
}

/// Where a flow goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Through the connector's ingress rules: the app's hostname and the
    /// edge port the eyeball used.
    Ingress {
        /// Hostname the rules match.
        hostname: String,
        /// Edge port.
        edge_port: u16,
    },
    /// A name the receiving side resolves, and a port.
    Host {
        /// The name.
        name: String,
        /// The port.
        port: u16,
    },
    /// An address.
    Addr(SocketAddr),
}

/// `OpenFlow` (type 22): the first frame of a flow stream in version 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFlow {
    /// What the stream carries.
    pub kind: FlowKind,
    /// The opener's flow id, for logs on both sides.
    pub flow_id: u64,
    /// Where it goes.
    pub target: Target,
    /// The eyeball or client address as the edge saw it.
    pub client: SocketAddr,
    /// The source address to dial from (egress on another node), if any.
    pub source: Option<IpAddr>,
    /// The tunnel to carry it into (a flow carried to another node).
    pub tunnel: Option<Id>,
}

fn put_str(out: &mut BytesMut, field: &'static str, s: &str) -> Result<(), EncodeError> {
    put_bytes(out, field, s.as_bytes(), MAX_STR_LEN)
}

fn malformed(r: &Reader<'_>, reason: &'static str) -> DecodeError {
    DecodeError::Malformed {
        frame: r.frame,
        reason,
    }
}

pub(crate) fn put_registration(out: &mut BytesMut, g: &Registration) -> Result<(), EncodeError> {
    out.put_slice(&g.account_id);
    put_bytes(out, "secret", g.secret.expose(), MAX_SECRET_LEN)?;
    match &g.role {
        Role::Connector {
            tunnel_id,
            connector_id,
            conn_index,
        } => {
            out.put_u8(1);
            out.put_slice(tunnel_id);
            out.put_slice(connector_id);
            out.put_u8(*conn_index);
        }
        Role::Client { device_id, vnet } => {
            out.put_u8(2);
            out.put_slice(device_id);
            match vnet {
                Some(v) => {
                    out.put_u8(1);
                    put_str(out, "vnet", v)?;
                }
                None => out.put_u8(0),
            }
        }
        Role::Node { node_id, colo } => {
            out.put_u8(3);
            put_str(out, "node_id", node_id)?;
            put_str(out, "colo", colo)?;
        }
    }
    put_str(out, "version", &g.version)?;
    put_features(out, &g.features)
}

pub(crate) fn registration(r: &mut Reader<'_>) -> Result<Registration, DecodeError> {
    let account_id = r.id()?;
    let secret = crate::WireSecret(r.bytes("secret", MAX_SECRET_LEN)?.to_vec());
    let role = match r.u8()? {
        1 => Role::Connector {
            tunnel_id: r.id()?,
            connector_id: r.id()?,
            conn_index: r.u8()?,
        },
        2 => Role::Client {
            device_id: r.id()?,
            vnet: match r.u8()? {
                0 => None,
                1 => Some(r.string("vnet")?),
                _ => return Err(malformed(r, "vnet flag must be 0 or 1")),
            },
        },
        3 => Role::Node {
            node_id: r.string("node_id")?,
            colo: r.string("colo")?,
        },
        _ => return Err(malformed(r, "unknown role")),
    };
    Ok(Registration {
        account_id,
        secret,
        role,
        version: r.string("version")?,
        features: features(r)?,
    })
}

pub(crate) fn put_welcome(out: &mut BytesMut, w: &Welcome) -> Result<(), EncodeError> {
    out.put_slice(&w.connection_id);
    put_str(out, "colo", &w.colo)?;
    put_str(out, "node_id", &w.node_id)?;
    put_features(out, &w.features)
}

pub(crate) fn welcome(r: &mut Reader<'_>) -> Result<Welcome, DecodeError> {
    Ok(Welcome {
        connection_id: r.id()?,
        colo: r.string("colo")?,
        node_id: r.string("node_id")?,
        features: features(r)?,
    })
}

pub(crate) fn put_open_flow(out: &mut BytesMut, f: &OpenFlow) -> Result<(), EncodeError> {
    out.put_u8(crate::kind_byte(f.kind));
    out.put_u64(f.flow_id);
    match &f.target {
        Target::Ingress {
            hostname,
            edge_port,
        } => {
            out.put_u8(1);
            put_str(out, "hostname", hostname)?;
            out.put_u16(*edge_port);
        }
        Target::Host { name, port } => {
            out.put_u8(2);
            put_str(out, "name", name)?;
            out.put_u16(*port);
        }
        Target::Addr(a) => {
            out.put_u8(3);
            put_addr(out, a);
        }
    }
    put_addr(out, &f.client);
    match f.source {
        // An address with port 0, as `addr` encodes it.
        Some(ip) => {
            out.put_u8(1);
            put_addr(out, &SocketAddr::new(ip, 0));
        }
        None => out.put_u8(0),
    }
    match &f.tunnel {
        Some(t) => {
            out.put_u8(1);
            out.put_slice(t);
        }
        None => out.put_u8(0),
    }
    Ok(())
}

pub(crate) fn open_flow(r: &mut Reader<'_>) -> Result<OpenFlow, DecodeError> {
    let kind = crate::kind_of(r)?;
    let flow_id = r.u64()?;
    let target = match r.u8()? {
        1 => Target::Ingress {
            hostname: r.string("hostname")?,
            edge_port: r.u16()?,
        },
        2 => Target::Host {
            name: r.string("name")?,
            port: r.u16()?,
        },
        3 => Target::Addr(r.addr()?),
        _ => return Err(malformed(r, "unknown target")),
    };
    let client = r.addr()?;
    let source = match r.u8()? {
        0 => None,
        1 => {
            let a = r.addr()?;
            if a.port() != 0 {
                return Err(malformed(r, "source carries no port"));
            }
            Some(a.ip())
        }
        _ => return Err(malformed(r, "source flag must be 0 or 1")),
    };
    let tunnel = match r.u8()? {
        0 => None,
        1 => Some(r.id()?),
        _ => return Err(malformed(r, "tunnel flag must be 0 or 1")),
    };
    Ok(OpenFlow {
        kind,
        flow_id,
        target,
        client,
        source,
        tunnel,
    })
}

/// Version 1's feature marking a zero-trust client's `Register`.
pub const V1_CLIENT: &str = "client";
/// Version 1's feature marking a peer edge's `Register`.
pub const V1_PEER: &str = "peer";

impl Registration {
    /// A version 1 `Register`, read the way version 1 overloaded it: the
    /// feature [`V1_PEER`] (with `colo=NRT`) is a node, [`V1_CLIENT`]
    /// (with `vnet=NAME`, its device id in `tunnel_id`) is a client,
    /// anything else a connector. The markers leave `features`.
    #[must_use]
    pub fn from_v1(r: crate::Register) -> Self {
        let tagged = |prefix: &str| {
            r.features
                .iter()
                .find_map(|f| f.strip_prefix(prefix))
                .map(str::to_owned)
        };
        let role = if r.features.iter().any(|f| f == V1_PEER) {
            Role::Node {
                node_id: String::new(),
                colo: tagged("colo=").unwrap_or_default(),
            }
        } else if r.features.iter().any(|f| f == V1_CLIENT) {
            Role::Client {
                device_id: r.tunnel_id,
                vnet: tagged("vnet="),
            }
        } else {
            Role::Connector {
                tunnel_id: r.tunnel_id,
                connector_id: r.connector_id,
                conn_index: r.conn_index,
            }
        };
        let marker = |f: &String| {
            f == V1_PEER || f == V1_CLIENT || f.starts_with("colo=") || f.starts_with("vnet=")
        };
        let plain = !matches!(role, Role::Connector { .. });
        Self {
            account_id: r.account_id,
            secret: r.secret,
            features: r
                .features
                .into_iter()
                .filter(|f| !(plain && marker(f)))
                .collect(),
            role,
            version: r.version,
        }
    }

    /// The same registration as version 1 spells it, for an edge that
    /// speaks only version 1.
    #[must_use]
    pub fn to_v1(&self) -> crate::Register {
        let mut features = self.features.clone();
        let (tunnel_id, connector_id, conn_index) = match &self.role {
            Role::Connector {
                tunnel_id,
                connector_id,
                conn_index,
            } => (*tunnel_id, *connector_id, *conn_index),
            Role::Client { device_id, vnet } => {
                features.insert(0, V1_CLIENT.to_owned());
                features.extend(vnet.as_ref().map(|v| format!("vnet={v}")));
                (*device_id, *device_id, 0)
            }
            Role::Node { colo, .. } => {
                features.insert(0, V1_PEER.to_owned());
                features.push(format!("colo={colo}"));
                ([0; 16], [0; 16], 0)
            }
        };
        crate::Register {
            account_id: self.account_id,
            tunnel_id,
            secret: self.secret.clone(),
            connector_id,
            conn_index,
            version: self.version.clone(),
            features,
        }
    }
}

impl Welcome {
    /// A version 1 `Registered` (it names no node and no features).
    #[must_use]
    pub fn from_v1(r: crate::Registered) -> Self {
        Self {
            connection_id: r.connection_id,
            colo: r.colo,
            node_id: String::new(),
            features: Vec::new(),
        }
    }
}

impl OpenFlow {
    /// The typed header of a flow the edge opens to a connector: a
    /// private-network flow's destination is an address (or a name and a
    /// port), every other flow goes through the ingress rules.
    #[must_use]
    pub fn from_stream_open(o: &crate::StreamOpen) -> Self {
        let target = match o.kind {
            FlowKind::PrivateTcp | FlowKind::PrivateUdp => match o.destination() {
                Some(a) => Target::Addr(a),
                None => Target::Host {
                    name: o.hostname.clone(),
                    port: o.edge_port,
                },
            },
            FlowKind::Tcp | FlowKind::Udp | FlowKind::Http => Target::Ingress {
                hostname: o.hostname.clone(),
                edge_port: o.edge_port,
            },
        };
        Self {
            kind: o.kind,
            flow_id: o.flow_id,
            target,
            client: o.client_addr,
            source: None,
            tunnel: None,
        }
    }

    /// The header as the connector's flow handling reads it (version 1's
    /// shape): a private flow's destination in `hostname` and
    /// `edge_port`, any other name or address as `host:port`.
    #[must_use]
    pub fn into_stream_open(self) -> crate::StreamOpen {
        let private = matches!(self.kind, FlowKind::PrivateTcp | FlowKind::PrivateUdp);
        let (hostname, edge_port) = match self.target {
            Target::Ingress {
                hostname,
                edge_port,
            } => (hostname, edge_port),
            Target::Host { name, port } if private => (name, port),
            Target::Addr(a) if private => (a.ip().to_string(), a.port()),
            Target::Host { name, port } => (join_host_port(&name, port), 0),
            Target::Addr(a) => (a.to_string(), 0),
        };
        crate::StreamOpen {
            kind: self.kind,
            flow_id: self.flow_id,
            hostname,
            edge_port,
            client_addr: self.client,
        }
    }

    /// The destination named by a [`Target::Host`] or [`Target::Addr`]:
    /// a name or an address, and the port. `None` for
    /// [`Target::Ingress`].
    #[must_use]
    pub fn host_port(&self) -> Option<(String, u16)> {
        match &self.target {
            Target::Host { name, port } => Some((name.clone(), *port)),
            Target::Addr(a) => Some((a.ip().to_string(), a.port())),
            Target::Ingress { .. } => None,
        }
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks a preface of either version at the start of `buf`: `Ok(None)`
/// while `buf` is a strict prefix of one (read more), else the bytes it
/// took and the version (1 or 2).
///
/// # Errors
/// [`DecodeError::BadMagic`], or [`DecodeError::UnsupportedVersion`] for
/// any other version.
pub fn decode_preface_any(buf: &[u8]) -> Result<Option<(usize, u16)>, DecodeError> {
    let n = buf.len().min(crate::MAGIC.len());
    if buf[..n] != crate::MAGIC[..n] {
        return Err(DecodeError::BadMagic);
    }
    if buf.len() < PREFACE_V2.len() {
        return Ok(None);
    }
    match u16::from_be_bytes([buf[6], buf[7]]) {
        v @ (crate::VERSION | VERSION_2) => Ok(Some((PREFACE_V2.len(), v))),
        v => Err(DecodeError::UnsupportedVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, Frame};
    use proptest::prelude::*;

    fn round_trip(f: &Frame) {
        let mut b = BytesMut::new();
        encode(f, &mut b).unwrap();
        let (back, n) = decode(&b).unwrap().unwrap();
        assert_eq!(n, b.len());
        assert_eq!(&back, f);
    }

    #[test]
    fn every_role_and_target_round_trips() {
        let reg = |role| {
            Frame::Registration(Registration {
                account_id: [1; 16],
                secret: vec![2; 32].into(),
                role,
                version: "burrow 0.2".into(),
                features: vec!["stream-ack".into()],
            })
        };
        round_trip(&reg(Role::Connector {
            tunnel_id: [3; 16],
            connector_id: [4; 16],
            conn_index: 3,
        }));
        round_trip(&reg(Role::Client {
            device_id: [5; 16],
            vnet: Some("lab".into()),
        }));
        round_trip(&reg(Role::Client {
            device_id: [5; 16],
            vnet: None,
        }));
        round_trip(&reg(Role::Node {
            node_id: "NRT-1a2b3c4d".into(),
            colo: "NRT".into(),
        }));
        round_trip(&Frame::Welcome(Welcome {
            connection_id: [6; 16],
            colo: "KIX".into(),
            node_id: "KIX-0".into(),
            features: vec![],
        }));
        for (target, source, tunnel) in [
            (
                Target::Ingress {
                    hostname: "ssh.example.com".into(),
                    edge_port: 22,
                },
                None,
                None,
            ),
            (
                Target::Host {
                    name: "intranet.example".into(),
                    port: 8080,
                },
                Some("203.0.113.7".parse().unwrap()),
                None,
            ),
            (
                Target::Addr("[fd00::5]:53".parse().unwrap()),
                None,
                Some([9; 16]),
            ),
        ] {
            round_trip(&Frame::OpenFlow(OpenFlow {
                kind: FlowKind::PrivateUdp,
                flow_id: 77,
                target,
                client: "192.0.2.1:5353".parse().unwrap(),
                source,
                tunnel,
            }));
        }
    }

    #[test]
    fn bad_tags_and_flags_are_named_errors() {
        let mut b = BytesMut::new();
        encode(
            &Frame::Registration(Registration {
                account_id: [1; 16],
                secret: vec![2; 4].into(),
                role: Role::Client {
                    device_id: [5; 16],
                    vnet: None,
                },
                version: String::new(),
                features: vec![],
            }),
            &mut b,
        )
        .unwrap();
        // The role byte sits after the header, account and secret.
        let role_at = crate::HEADER_LEN + 16 + 2 + 4;
        b[role_at] = 9;
        let err = decode(&b).unwrap_err().to_string();
        assert!(
            err.contains("Registration") && err.contains("role"),
            "{err}"
        );
    }

    #[test]
    fn the_fuzz_seeds_are_valid_v2_frames() {
        let of = include_bytes!("../../../fuzz/seeds/frame/v2_open_flow");
        let Ok(Some((Frame::OpenFlow(f), n))) = decode(of) else {
            panic!("not an OpenFlow")
        };
        assert_eq!(n, of.len());
        assert_eq!(f.source, Some("203.0.113.7".parse().unwrap()));
        let rg = include_bytes!("../../../fuzz/seeds/frame/v2_registration");
        let Ok(Some((Frame::Registration(g), _))) = decode(rg) else {
            panic!("not a Registration")
        };
        assert!(matches!(g.role, Role::Client { vnet: Some(ref v), .. } if v == "lab"));
    }

    #[test]
    fn prefaces_of_both_versions_are_accepted_and_others_named() {
        assert_eq!(decode_preface_any(&crate::PREFACE).unwrap(), Some((8, 1)));
        assert_eq!(decode_preface_any(&PREFACE_V2).unwrap(), Some((8, 2)));
        assert_eq!(decode_preface_any(&PREFACE_V2[..5]).unwrap(), None);
        let mut v3 = PREFACE_V2;
        v3[7] = 3;
        assert!(matches!(
            decode_preface_any(&v3),
            Err(DecodeError::UnsupportedVersion(3))
        ));
        assert!(matches!(
            decode_preface_any(b"GET / HTTP/1.1"),
            Err(DecodeError::BadMagic)
        ));
    }

    #[test]
    fn v1_registrations_read_as_their_roles_and_back() {
        let base = crate::Register {
            account_id: [1; 16],
            tunnel_id: [2; 16],
            secret: vec![3; 32].into(),
            connector_id: [4; 16],
            conn_index: 2,
            version: "burrow 0.1".into(),
            features: vec!["quic-datagrams".into(), "stream-ack".into()],
        };
        let c = Registration::from_v1(base.clone());
        assert_eq!(
            c.role,
            Role::Connector {
                tunnel_id: [2; 16],
                connector_id: [4; 16],
                conn_index: 2
            }
        );
        assert_eq!(c.features, base.features);
        assert_eq!(c.to_v1(), base);

        let client = crate::Register {
            features: vec!["client".into(), "vnet=lab".into()],
            connector_id: [2; 16],
            conn_index: 0,
            ..base.clone()
        };
        let g = Registration::from_v1(client.clone());
        assert_eq!(
            g.role,
            Role::Client {
                device_id: [2; 16],
                vnet: Some("lab".into())
            }
        );
        assert!(g.features.is_empty());
        assert_eq!(g.to_v1(), client);

        let peer = crate::Register {
            tunnel_id: [0; 16],
            connector_id: [0; 16],
            conn_index: 0,
            features: vec!["peer".into(), "colo=KIX".into()],
            ..base
        };
        let n = Registration::from_v1(peer.clone());
        assert_eq!(
            n.role,
            Role::Node {
                node_id: String::new(),
                colo: "KIX".into()
            }
        );
        assert_eq!(n.to_v1(), peer);
    }

    #[test]
    fn flow_headers_keep_their_meaning_across_versions() {
        let app = crate::StreamOpen {
            kind: FlowKind::Tcp,
            flow_id: 9,
            hostname: "ssh.example.com".into(),
            edge_port: 2222,
            client_addr: "192.0.2.1:5000".parse().unwrap(),
        };
        let typed = OpenFlow::from_stream_open(&app);
        assert!(matches!(
            typed.target,
            Target::Ingress {
                edge_port: 2222,
                ..
            }
        ));
        assert_eq!(typed.clone().into_stream_open(), app);
        assert_eq!(typed.host_port(), None);

        let private = crate::StreamOpen {
            kind: FlowKind::PrivateUdp,
            hostname: "fd00::5".into(),
            edge_port: 53,
            ..app.clone()
        };
        let typed = OpenFlow::from_stream_open(&private);
        assert_eq!(typed.target, Target::Addr("[fd00::5]:53".parse().unwrap()));
        assert_eq!(typed.into_stream_open(), private);

        // A client's flow names its destination; version 1 wrote host:port.
        let client = OpenFlow {
            kind: FlowKind::Tcp,
            flow_id: 1,
            target: Target::Addr("[2001:db8::1]:443".parse().unwrap()),
            client: "127.0.0.1:4000".parse().unwrap(),
            source: None,
            tunnel: None,
        };
        assert_eq!(
            client.clone().into_stream_open().hostname,
            "[2001:db8::1]:443"
        );
        assert_eq!(client.host_port(), Some(("2001:db8::1".into(), 443)));
        let named = OpenFlow {
            target: Target::Host {
                name: "example.com".into(),
                port: 80,
            },
            ..client
        };
        assert_eq!(named.into_stream_open().hostname, "example.com:80");
    }

    fn arb_open_flow() -> impl Strategy<Value = Frame> {
        (
            any::<u64>(),
            ".{0,50}",
            any::<u16>(),
            0u8..3,
            any::<([u8; 4], u16)>(),
            proptest::option::of(any::<[u8; 16]>()),
            proptest::option::of(any::<[u8; 4]>()),
        )
            .prop_map(|(id, name, port, t, (ip, cport), tunnel, source)| {
                let target = match t {
                    0 => Target::Ingress {
                        hostname: name,
                        edge_port: port,
                    },
                    1 => Target::Host { name, port },
                    _ => Target::Addr(SocketAddr::from((ip, port))),
                };
                Frame::OpenFlow(OpenFlow {
                    kind: FlowKind::Tcp,
                    flow_id: id,
                    target,
                    client: SocketAddr::from((ip, cport)),
                    source: source.map(IpAddr::from),
                    tunnel,
                })
            })
    }

    proptest! {
        #[test]
        fn open_flows_round_trip(f in arb_open_flow()) {
            round_trip(&f);
        }

        #[test]
        fn arbitrary_bytes_after_a_v2_type_never_panic(t in prop_oneof![Just(6u8), Just(7u8), Just(22u8)], body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = vec![t];
            b.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            b.extend_from_slice(&body);
            let _ = decode(&b);
        }
    }
}
