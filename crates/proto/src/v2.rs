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

use crate::{put_addr, put_bytes, DecodeError, EncodeError, FlowKind, Id, Reader, MAX_FEATURES};
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

fn put_features(out: &mut BytesMut, features: &[String]) -> Result<(), EncodeError> {
    if features.len() > MAX_FEATURES {
        return Err(EncodeError {
            field: "features",
            len: features.len(),
            max: MAX_FEATURES,
        });
    }
    out.put_u8(u8::try_from(features.len()).expect("bounded by MAX_FEATURES"));
    for f in features {
        put_str(out, "feature", f)?;
    }
    Ok(())
}

fn features(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let n = usize::from(r.u8()?);
    if n > MAX_FEATURES {
        return Err(DecodeError::TooLong {
            field: "features",
            len: n,
            max: MAX_FEATURES,
        });
    }
    (0..n).map(|_| r.string("feature")).collect()
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
