use super::*;
use proptest::prelude::*;

fn samples() -> Vec<Frame> {
    vec![
        Frame::Register(Register {
            account_id: [1; 16],
            tunnel_id: [2; 16],
            secret: vec![0xAB; 32].into(),
            connector_id: [3; 16],
            conn_index: 2,
            version: "burrow 0.1.0".into(),
            features: vec!["quic".into(), "h2".into()],
        }),
        Frame::Registered(Registered {
            connection_id: [9; 16],
            colo: "NRT".into(),
        }),
        Frame::Refused(Refusal {
            code: RefuseCode::BadSecret,
            message: "tunnel secret does not match".into(),
        }),
        Frame::GoAway,
        Frame::StreamOpen(StreamOpen {
            kind: FlowKind::Tcp,
            flow_id: 77,
            hostname: "ssh.example.com".into(),
            edge_port: 2222,
            client_addr: "[2001:db8::1]:40000".parse().unwrap(),
        }),
        Frame::StreamOpen(StreamOpen {
            kind: FlowKind::Tcp,
            flow_id: u64::MAX,
            hostname: String::new(),
            edge_port: 1,
            client_addr: "127.0.0.1:5".parse().unwrap(),
        }),
        Frame::StreamAccepted,
        Frame::StreamRejected(Refusal {
            code: RefuseCode::Other(999),
            message: "nope".into(),
        }),
        Frame::StreamOpenAcked(StreamOpen {
            kind: FlowKind::Udp,
            flow_id: 78,
            hostname: "dns.example.com".into(),
            edge_port: 53,
            client_addr: "192.0.2.1:5353".parse().unwrap(),
        }),
        Frame::StreamReceived,
        Frame::ForwardOpen(ForwardOpen {
            tunnel_id: [9; 16],
            open: StreamOpen {
                kind: FlowKind::PrivateUdp,
                flow_id: 3,
                hostname: "10.0.0.5".into(),
                edge_port: 53,
                client_addr: "[2001:db8::1]:40000".parse().unwrap(),
            },
        }),
    ]
}

fn enc(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode(f, &mut b).unwrap();
    b.to_vec()
}

#[test]
fn round_trip_every_frame() {
    for f in samples() {
        let bytes = enc(&f);
        let (got, n) = decode(&bytes).unwrap().unwrap();
        assert_eq!(got, f);
        assert_eq!(n, bytes.len());
    }
}

#[test]
fn every_strict_prefix_is_incomplete() {
    for f in samples() {
        let bytes = enc(&f);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "{f:?} cut at {cut}");
        }
    }
}

#[test]
fn trailing_bytes_stay_with_the_caller() {
    let mut bytes = enc(&Frame::StreamAccepted);
    bytes.extend_from_slice(b"payload");
    let (f, n) = decode(&bytes).unwrap().unwrap();
    assert_eq!(f, Frame::StreamAccepted);
    assert_eq!(&bytes[n..], b"payload");
}

#[test]
fn decodes_the_same_however_reads_are_split() {
    let mut all = Vec::new();
    for f in samples() {
        all.extend(enc(&f));
    }
    for chunk in [1usize, 2, 3, 7, 64] {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in all.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some((f, n)) = decode(&buf).unwrap() {
                out.push(f);
                buf.drain(..n);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(out, samples(), "chunk size {chunk}");
    }
}

#[test]
fn oversized_length_is_refused_before_the_payload_arrives() {
    let mut b = vec![ty::REGISTER];
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode(&b),
        Err(DecodeError::TooLong { field: "frame", .. })
    ));
}

#[test]
fn unknown_type_is_refused_at_once() {
    assert_eq!(decode(&[200]), Err(DecodeError::UnknownType(200)));
}

#[test]
fn trailing_garbage_inside_a_frame_is_refused() {
    let mut b = vec![ty::GOAWAY];
    b.extend_from_slice(&1u32.to_be_bytes());
    b.push(0);
    assert!(matches!(decode(&b), Err(DecodeError::Malformed { .. })));
}

#[test]
fn preface_checks() {
    assert_eq!(decode_preface(&PREFACE), Ok(Some(8)));
    for cut in 0..PREFACE.len() {
        assert_eq!(decode_preface(&PREFACE[..cut]), Ok(None));
    }
    assert_eq!(
        decode_preface(b"GET / HTTP/1.1"),
        Err(DecodeError::BadMagic)
    );
    assert_eq!(
        decode_preface(b"BURROW\x00\x09"),
        Err(DecodeError::UnsupportedVersion(9))
    );
}

#[test]
fn encode_refuses_oversized_fields() {
    let f = Frame::StreamOpen(StreamOpen {
        kind: FlowKind::Tcp,
        flow_id: 1,
        hostname: "a".repeat(MAX_STR_LEN + 1),
        edge_port: 1,
        client_addr: "127.0.0.1:1".parse().unwrap(),
    });
    let mut b = BytesMut::new();
    let e = encode(&f, &mut b).unwrap_err();
    assert_eq!(e.field, "hostname");
    assert!(b.is_empty());
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_SECRET_LEN),
            any::<u8>(),
            ".{0,40}",
            proptest::collection::vec(".{0,10}", 0..5)
        )
            .prop_map(|(a, t, secret, i, version, features)| {
                Frame::Register(Register {
                    account_id: a,
                    tunnel_id: t,
                    secret: secret.into(),
                    connector_id: a,
                    conn_index: i,
                    version,
                    features,
                })
            }),
        (
            any::<u64>(),
            ".{0,100}",
            any::<u16>(),
            arb_addr(),
            0u8..5,
            0u8..3,
            any::<[u8; 16]>()
        )
            .prop_map(|(id, h, p, c, k, form, tunnel_id)| {
                let open = StreamOpen {
                    kind: [
                        FlowKind::Tcp,
                        FlowKind::Udp,
                        FlowKind::Http,
                        FlowKind::PrivateTcp,
                        FlowKind::PrivateUdp,
                    ][usize::from(k)],
                    flow_id: id,
                    hostname: h,
                    edge_port: p,
                    client_addr: c,
                };
                match form {
                    0 => Frame::StreamOpen(open),
                    1 => Frame::StreamOpenAcked(open),
                    _ => Frame::ForwardOpen(ForwardOpen { tunnel_id, open }),
                }
            }),
        (any::<u16>(), ".{0,100}").prop_map(|(c, m)| Frame::StreamRejected(Refusal {
            code: RefuseCode::from_u16(c),
            message: m
        })),
    ]
}

proptest! {
    #[test]
    fn prop_round_trip(f in arb_frame()) {
        let bytes = enc(&f);
        let (got, n) = decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(got, f);
    }

    #[test]
    fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_preface(&bytes);
    }
}

#[test]
fn private_flows_name_their_destination() {
    let mut open = StreamOpen {
        kind: FlowKind::PrivateTcp,
        flow_id: 1,
        hostname: "fd00::5".into(),
        edge_port: 22,
        client_addr: "127.0.0.1:1".parse().unwrap(),
    };
    assert_eq!(open.destination(), Some("[fd00::5]:22".parse().unwrap()));
    open.hostname = "db.internal".into();
    assert_eq!(open.destination(), None);
    open.hostname = "10.0.0.5".into();
    open.kind = FlowKind::Tcp;
    assert_eq!(open.destination(), None);
}
