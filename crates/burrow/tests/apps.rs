//! Edge apps with direct origins (the edge as an L4 proxy, no tunnel).
#![allow(missing_docs)]

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use util::tls::*;
use util::*;

/// Origin listeners on consecutive ports, each answering its own port.
/// Returns the first port.
fn port_origins(n: u16) -> u16 {
    let listeners = listen_run(n);
    let base = listeners[0].local_addr().unwrap().port();
    for l in listeners {
        let p = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.write_all(p.to_string().as_bytes());
            }
        });
    }
    base
}

#[test]
fn a_port_range_maps_each_edge_port_to_its_origin_port() {
    let dir = tempdir();
    let origin_base = port_origins(10);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let origin = format!("tcp://127.0.0.1:{}-{}", origin_base, origin_base + 9);
    // Free edge ports are found, released and then bound by the edge; retry
    // in the unlikely case another process took one in between.
    let (edge_base, out) = (0..5)
        .find_map(|_| {
            let base = listen_run(10)[0].local_addr().unwrap().port();
            let proto = format!("tcp/{}-{}", base, base + 9);
            edge.admin(&["app", "create", "--protocol", &proto, "--origin", &origin])
                .ok()
                .map(|out| (base, out))
        })
        .expect("app create");
    // One line for the range, not ten.
    let listen: Vec<&str> = out.lines().filter(|l| l.starts_with("listen:")).collect();
    assert_eq!(
        listen,
        [format!(
            "listen: 127.0.0.1:{edge_base}-{} (10 ports)",
            edge_base + 9
        )],
        "{out}"
    );
    for i in 0..10u16 {
        let addr = SocketAddr::from(([127, 0, 0, 1], edge_base + i));
        let got = String::from_utf8(read_all(addr)).unwrap();
        assert_eq!(
            got,
            (origin_base + i).to_string(),
            "edge port {}",
            edge_base + i
        );
    }

    // A count mismatch names both counts; overlapping edge ports are refused.
    let err = edge
        .admin(&[
            "app",
            "create",
            "--protocol",
            "tcp/40000-40009",
            "--origin",
            "tcp://127.0.0.1:30000-30004",
        ])
        .unwrap_err();
    assert!(
        err.contains("origin_direct[0]") && err.contains("has 5 ports") && err.contains("has 10"),
        "{err}"
    );
    let overlap = format!("tcp/{}", edge_base + 5);
    let err = edge
        .admin(&[
            "app",
            "create",
            "--protocol",
            &overlap,
            "--origin",
            "tcp://127.0.0.1:1",
        ])
        .unwrap_err();
    assert!(err.contains("overlaps app"), "{err}");
}

#[test]
fn direct_origins_are_balanced_and_a_dead_one_is_skipped() {
    let dir = tempdir();
    let a = Origin::start(say_a);
    let b = Origin::start(say_b);
    // A port where nothing listens.
    let dead = free_port();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let port = free_port();
    let proto = format!("tcp/{port}");
    let oa = format!("tcp://{}", a.addr);
    let ob = format!("tcp://127.0.0.2:{}", b.addr.port());
    let od = format!("tcp://127.0.0.1:{dead}");
    // b listens on 127.0.0.1 only, so 127.0.0.2 is dead too: one live origin
    // among three.
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &proto,
        "--origin",
        &od,
        "--origin",
        &oa,
        "--origin",
        &ob,
    ])
    .expect("app create");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..12 {
        assert_eq!(read_all(addr), b"A");
    }
    assert_eq!(a.count(), 12);
    assert_eq!(b.count(), 0);

    // Two live origins share the connections.
    let port2 = free_port();
    let proto2 = format!("tcp/{port2}");
    let ob = format!("tcp://{}", b.addr);
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &proto2,
        "--origin",
        &oa,
        "--origin",
        &ob,
    ])
    .expect("app create");
    let addr2 = SocketAddr::from(([127, 0, 0, 1], port2));
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..20 {
        *seen.entry(read_all(addr2)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "not balanced: {seen:?}");
}

#[test]
fn apps_come_back_after_an_edge_restart_and_json_bodies_work() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let port = free_port();
    std::fs::write(
        dir.path().join("app.json"),
        format!(
            r#"{{"protocol": "tcp/{port}", "origin_direct": ["tcp://{}"],
                "dns": {{"type": "CNAME", "name": "echo.example.com"}},
                "ip_firewall": false, "proxy_protocol": "off", "tls": "off",
                "edge_ips": {{"type": "dynamic", "connectivity": "all"}}}}"#,
            origin.addr
        ),
    )
    .unwrap();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let app = dir.path().join("app.json").to_string_lossy().into_owned();
    edge.admin(&["app", "create", "--json", &app])
        .expect("app create --json");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(echo_round_trip(addr, b"before").unwrap(), b"before");
    drop(edge);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let mut s = connect(addr, Duration::from_secs(10));
    s.write_all(b"x").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"x");
    let list = edge.admin(&["app", "list", "--json"]).unwrap();
    assert!(list.contains("echo.example.com"), "{list}");
}

/// haproxy in TCP mode with `accept-proxy`, logging the client address it
/// learned from the PROXY header, in front of `backend`.
struct Haproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Haproxy {
    fn start(dir: &std::path::Path, backend: SocketAddr) -> Haproxy {
        let port = free_port();
        let cfg = dir.join(format!("haproxy-{port}.cfg"));
        let log = dir.join(format!("haproxy-{port}.log"));
        std::fs::write(
            &cfg,
            format!(
                "global\n  log stdout format raw local0\n\
                 defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n  option logasap\n  log-format \"CLIENT %ci:%cp\"\n  default_backend be\n\
                 backend be\n  server s1 {backend}\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy must be installed (apt-get install haproxy; .ci/run does it)");
        connect(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        );
        Haproxy { child, port, log }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn proxy_protocol_v1_and_v2_give_haproxy_the_true_client_address() {
    let dir = tempdir();
    let echo_origin = Origin::start(echo);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let mut connectors = Vec::new();
    // Direct origins, then through a tunnel (the edge writes the header
    // first on the stream; the connector passes it on unchanged).
    for (version, through_tunnel) in [("v1", false), ("v2", false), ("v1", true), ("v2", true)] {
        let ha = Haproxy::start(dir.path(), echo_origin.addr);
        let port = free_port();
        let proto = format!("tcp/{port}");
        let origin = format!("tcp://127.0.0.1:{}", ha.port);
        let mut args = vec![
            "app",
            "create",
            "--protocol",
            &proto,
            "--proxy-protocol",
            version,
        ];
        let tunnel = format!("pp-{version}");
        if through_tunnel {
            let creds = edge.create_tunnel(&tunnel);
            connectors.push(connector(dir.path(), &tunnel, &creds, &["--url", &origin]));
            edge.wait_connections(&tunnel, 1, Duration::from_secs(20));
            args.extend(["--tunnel", &tunnel]);
        } else {
            args.extend(["--origin", &origin]);
        }
        edge.admin(&args).expect("app create");
        let version = if through_tunnel {
            format!("{version} via tunnel")
        } else {
            version.to_owned()
        };
        // The client comes from 127.0.0.3, the edge dials haproxy from
        // 127.0.0.1: only the PROXY header can tell haproxy the former.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 3], 0)).into())
            .unwrap();
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let mut s: std::net::TcpStream = sock.into();
        let client = s.local_addr().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello", "{version}: no echo through haproxy");
        let want = format!("CLIENT {client}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&ha.log).unwrap_or_default();
            if log.contains(&want) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{version}: haproxy log lacks {want:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn ip_access_rules_block_before_the_origin_and_specific_rules_win() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let (guarded, open) = (free_port(), free_port());
    let o = format!("tcp://{}", origin.addr);
    let (pg, po) = (format!("tcp/{guarded}"), format!("tcp/{open}"));
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &pg,
        "--origin",
        &o,
        "--ip-firewall",
    ])
    .expect("app create");
    edge.admin(&["app", "create", "--protocol", &po, "--origin", &o])
        .expect("app create");
    let range = edge
        .admin(&[
            "access-rule",
            "create",
            "--mode",
            "block",
            "--target",
            "ip_range",
            "--value",
            "127.0.0.0/30",
        ])
        .expect("rule");
    let range_id = range.trim().rsplit(' ').next().unwrap().to_owned();
    edge.admin(&[
        "access-rule",
        "create",
        "--mode",
        "allow",
        "--target",
        "ip",
        "--value",
        "127.0.0.2",
    ])
    .expect("rule");
    let err = edge
        .admin(&[
            "access-rule",
            "create",
            "--mode",
            "deny",
            "--target",
            "ip",
            "--value",
            "1.2.3.4",
        ])
        .unwrap_err();
    assert!(err.contains("mode: 'deny' is not allow or block"), "{err}");

    let g = SocketAddr::from(([127, 0, 0, 1], guarded));
    let op = SocketAddr::from(([127, 0, 0, 1], open));
    let allowed: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let blocked: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    // The specific allow beats the range block.
    assert_eq!(echo_from(allowed, g, b"hi"), b"hi");
    let before = origin.count();
    // Blocked: closed without a byte, and the origin never sees it.
    assert_eq!(echo_from(blocked, g, b"hi"), b"");
    assert_eq!(origin.count(), before);
    // Apps without ip_firewall ignore the rules.
    assert_eq!(echo_from(blocked, op, b"hi"), b"hi");
    // Removing the range rule lets 127.0.0.3 in.
    edge.admin(&["access-rule", "delete", &range_id])
        .expect("delete");
    assert_eq!(echo_from(blocked, g, b"again"), b"again");
    assert!(edge
        .proc
        .log()
        .contains("connection blocked by an IP access rule"));
    // Every decision on the firewalled app is counted; the one block too.
    let series =
        |d: &str| format!(r#"burrow_edge_access_decisions_total{{protocol="tcp",decision="{d}"}}"#);
    assert_eq!(edge.metric(&series("block")), 1.0);
    assert_eq!(edge.metric(&series("allow")), 2.0);
    // Three connections got through (blocked ones never became flows).
    assert_eq!(
        edge.metric(r#"burrow_edge_app_flows_total{protocol="tcp",origin="direct"}"#),
        3.0
    );
}

#[test]
fn updating_an_app_is_live_and_never_drops_open_connections() {
    let dir = tempdir();
    // A says "A", then echoes: its connections stay open.
    let a = Origin::start(|mut s: std::net::TcpStream| {
        if s.write_all(b"A").is_ok() {
            echo(s);
        }
    });
    let b = Origin::start(say_b);
    let echo_origin = Origin::start(echo);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let (p1, p2) = (free_port(), free_port());
    let (proto1, proto2) = (format!("tcp/{p1}"), format!("tcp/{p2}"));
    let oa = format!("tcp://{}", a.addr);
    let oe = format!("tcp://{}", echo_origin.addr);
    let out = edge
        .admin(&["app", "create", "--protocol", &proto1, "--origin", &oa])
        .expect("app create");
    let id = out
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    edge.admin(&["app", "create", "--protocol", &proto2, "--origin", &oe])
        .expect("app create");
    let app1 = SocketAddr::from(([127, 0, 0, 1], p1));
    let app2 = SocketAddr::from(([127, 0, 0, 1], p2));
    // An established connection of the app about to be updated, and one
    // of the other app, both mid-conversation.
    let mut mine = connect(app1, Duration::from_secs(5));
    let mut first = [0u8; 1];
    mine.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"A");
    let mut buf = [0u8; 3];
    mine.write_all(b"one").unwrap();
    mine.read_exact(&mut buf).unwrap();
    let mut held = connect(app2, Duration::from_secs(5));
    held.write_all(b"one").unwrap();
    held.read_exact(&mut buf).unwrap();

    // Change app 1's origin from A to B (same port: swapped in place).
    let body = dir.path().join("update.json");
    std::fs::write(
        &body,
        format!(
            r#"{{"protocol":"{proto1}","origin_direct":["tcp://{}"]}}"#,
            b.addr
        ),
    )
    .unwrap();
    let body = body.to_string_lossy().into_owned();
    edge.admin(&["app", "update", &id, "--json", &body])
        .expect("app update");
    assert_eq!(read_all(app1), b"B");
    held.write_all(b"two").unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(
        &buf, b"two",
        "the other app's open connection was disturbed"
    );
    // The updated app's own open connection keeps the origin it started with.
    mine.write_all(b"two").unwrap();
    mine.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two", "the updated app's open connection was cut");

    // Move app 1 to another port: the old one stops, the new one serves.
    let p3 = free_port();
    std::fs::write(
        &body,
        format!(
            r#"{{"protocol":"tcp/{p3}","origin_direct":["tcp://{}"]}}"#,
            b.addr
        ),
    )
    .unwrap();
    edge.admin(&["app", "update", &id, "--json", &body])
        .expect("app update");
    assert_eq!(read_all(SocketAddr::from(([127, 0, 0, 1], p3))), b"B");
    assert!(std::net::TcpStream::connect(app1).is_err());
    for c in [&mut held, &mut mine] {
        c.write_all(b"end").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"end");
    }
    // A bad update is refused and changes nothing.
    std::fs::write(
        &body,
        r#"{"protocol":"tcp/9-1","origin_direct":["tcp://127.0.0.1:1"]}"#,
    )
    .unwrap();
    let err = edge
        .admin(&["app", "update", &id, "--json", &body])
        .unwrap_err();
    assert!(err.contains("protocol: range 9-1 is reversed"), "{err}");
    assert_eq!(read_all(SocketAddr::from(([127, 0, 0, 1], p3))), b"B");
}

/// A UDP origin on 127.0.0.1:0 running `answer` for each datagram
/// (returning the reply).
fn udp_origin(answer: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&answer(&buf[..n]), from);
        }
    });
    addr
}

fn udp_client(src: &str) -> std::net::UdpSocket {
    let c = std::net::UdpSocket::bind(format!("{src}:0")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

#[test]
fn udp_app_gives_each_client_its_own_replies_whole() {
    let dir = tempdir();
    let origin = udp_origin(|d| d.to_vec());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let port = free_port();
    let proto = format!("udp/{port}");
    let o = format!("udp://{origin}");
    edge.admin(&["app", "create", "--protocol", &proto, "--origin", &o])
        .expect("app create");
    many_udp_clients(SocketAddr::from(([127, 0, 0, 1], port)), 1400);
    // 20 clients, 20 sessions, open until they idle out.
    assert_eq!(edge.metric("burrow_edge_udp_sessions"), 20.0);
    assert_eq!(
        edge.metric(r#"burrow_edge_app_flows_total{protocol="udp",origin="direct"}"#),
        20.0
    );
}

/// 20 clients send 5 datagrams each (sizes up to `max`, all different) and
/// each must get its own datagrams back, whole.
fn many_udp_clients(app: SocketAddr, max: u32) {
    let handles: Vec<_> = (0..20u32)
        .map(|i| {
            std::thread::spawn(move || {
                let c = udp_client("127.0.0.1");
                for k in 0..5u32 {
                    // Sizes differ per datagram: merging or splitting would show.
                    let len = usize::try_from(1 + (i * 97 + k * 331 + i * k * 7919) % max).unwrap();
                    let mut payload = format!("client {i} datagram {k} ").into_bytes();
                    payload.resize(len.max(payload.len()), u8::try_from(i).unwrap());
                    c.send_to(&payload, app).unwrap();
                    let mut buf = vec![0u8; 65536];
                    let (n, from) = c.recv_from(&mut buf).expect("a reply");
                    assert_eq!(from, app);
                    assert_eq!(&buf[..n], &payload[..], "client {i} got another reply");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a UDP client failed");
    }
}

#[test]
fn udp_through_a_tunnel_on_quic_and_http2() {
    let dir = tempdir();
    let origin = udp_origin(|d| d.to_vec());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let url = format!("udp://{origin}");
    let mut connectors = Vec::new();
    for transport in ["quic", "http2"] {
        let creds = edge.create_tunnel(transport);
        connectors.push(connector(
            dir.path(),
            transport,
            &creds,
            &[
                "--url",
                &url,
                "--protocol",
                transport,
                "--metrics",
                "127.0.0.1:0",
            ],
        ));
        edge.wait_connections(transport, 1, Duration::from_secs(20));
        let port = free_port();
        let proto = format!("udp/{port}");
        edge.admin(&["app", "create", "--protocol", &proto, "--tunnel", transport])
            .expect("app create");
        let app = SocketAddr::from(([127, 0, 0, 1], port));
        many_udp_clients(app, 1400);
        // Datagrams far larger than a QUIC packet come through whole (one
        // client at a time: a burst of them would overflow the origin's
        // socket buffer, which is UDP working as designed).
        let c = udp_client("127.0.0.1");
        for len in [0usize, 1, 30_000, 65_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            c.send_to(&payload, app).unwrap();
            let mut buf = vec![0u8; 65536];
            let (n, _) = c.recv_from(&mut buf).expect("a reply");
            assert_eq!(
                sha256(&buf[..n]),
                sha256(&payload),
                "{transport}: {len} bytes"
            );
        }
        // cloudflared's UDP flow counters, summed over the connector's
        // connections: 20 clients and the one above, none failed.
        let url = connectors
            .last()
            .unwrap()
            .wait_line("metrics:", Duration::from_secs(5));
        let (_, text) = http(
            url.trim_end_matches("/metrics"),
            "GET",
            "/metrics",
            None,
            "",
        );
        let sum = |family: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(
            sum("cloudflared_udp_total_flows"),
            21.0,
            "{transport}: {text}"
        );
        assert_eq!(sum("cloudflared_udp_failed_flows"), 0.0, "{transport}");
        assert_eq!(series_value(&text, "cloudflared_udp_total_sessions"), 21.0);
    }
    // A TCP app on a udp:// ingress rule is refused by the connector with
    // the reason.
    let port = free_port();
    let proto = format!("tcp/{port}");
    edge.admin(&["app", "create", "--protocol", &proto, "--tunnel", "quic"])
        .expect("app create");
    assert_eq!(read_all(SocketAddr::from(([127, 0, 0, 1], port))), b"");
    let log = edge.proc.wait_log(
        "is a udp:// service; this flow is TCP",
        Duration::from_secs(10),
    );
    assert!(
        log.contains("is a udp:// service; this flow is TCP"),
        "{log}"
    );
    // On QUIC, small datagrams rode QUIC datagrams and the large ones the
    // stream; on HTTP/2 everything was framed. Sessions report at shutdown.
    let mut edge = edge;
    edge.proc.signal("TERM");
    edge.proc.wait_exit(Duration::from_secs(20));
    let log = edge.proc.log();
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("UDP session through the tunnel closed"))
        .collect();
    let count = |l: &str, key: &str| -> u64 {
        let at = l.find(&format!("{key}=")).unwrap() + key.len() + 1;
        l[at..].split_whitespace().next().unwrap().parse().unwrap()
    };
    let sum = |key: &str| -> u64 { closed.iter().map(|l| count(l, key)).sum() };
    assert_eq!(closed.len(), 42, "{log}");
    assert!(sum("quic_out") >= 100 && sum("quic_in") >= 100, "{log}");
    // 65,000-byte datagrams cannot be QUIC datagrams: framed, both ways.
    assert!(sum("framed_out") > 100 && sum("framed_in") > 100, "{log}");
}

#[test]
fn udp_simple_proxy_protocol_and_access_rules() {
    use burrow_proto::proxy_header::parse_simple;
    let dir = tempdir();
    // The origin answers with the client address the header carried.
    let origin = udp_origin(|d| match parse_simple(d) {
        Some((client, _, payload)) => {
            format!("{client} {}", String::from_utf8_lossy(payload)).into_bytes()
        }
        None => b"no header".to_vec(),
    });
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let port = free_port();
    let body = dir.path().join("udp.json");
    std::fs::write(
        &body,
        format!(r#"{{"protocol":"udp/{port}","origin_direct":["udp://{origin}"],"proxy_protocol":"simple","ip_firewall":true}}"#),
    )
    .unwrap();
    edge.admin(&["app", "create", "--json", &body.to_string_lossy()])
        .expect("app create");
    edge.admin(&[
        "access-rule",
        "create",
        "--mode",
        "block",
        "--target",
        "ip",
        "--value",
        "127.0.0.3",
    ])
    .expect("rule");
    let app = SocketAddr::from(([127, 0, 0, 1], port));
    let c = udp_client("127.0.0.2");
    c.send_to(b"hi", app).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = c.recv_from(&mut buf).expect("a reply");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        format!("{} hi", c.local_addr().unwrap())
    );
    let blocked = udp_client("127.0.0.3");
    blocked
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    blocked.send_to(b"hi", app).unwrap();
    assert!(
        blocked.recv_from(&mut buf).is_err(),
        "a blocked client got a reply"
    );
}

#[test]
fn country_and_asn_rules_use_the_geoip_files() {
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let country = data
        .join("test-country.mmdb")
        .to_string_lossy()
        .into_owned();
    let asn = data.join("test-asn.mmdb").to_string_lossy().into_owned();
    let dir = tempdir();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--geoip-country", &country, "--geoip-asn", &asn],
    );
    let port = free_port();
    let (proto, o) = (format!("tcp/{port}"), format!("tcp://{}", origin.addr));
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &proto,
        "--origin",
        &o,
        "--ip-firewall",
    ])
    .expect("app create");
    // In the fixtures: 127.0.0.3 is JP; 127.0.0.4 is US and AS64500.
    for (mode, target, value) in [
        ("block", "country", "JP"),
        ("allow", "country", "US"),
        ("block", "asn", "64500"),
    ] {
        edge.admin(&[
            "access-rule",
            "create",
            "--mode",
            mode,
            "--target",
            target,
            "--value",
            value,
        ])
        .expect("rule");
    }
    let app = SocketAddr::from(([127, 0, 0, 1], port));
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(
        echo_from(ip("127.0.0.2"), app, b"x"),
        b"x",
        "unknown to GeoIP: allowed"
    );
    assert_eq!(
        echo_from(ip("127.0.0.3"), app, b"x"),
        b"",
        "country JP is blocked"
    );
    // The ASN rule is more specific than the country allow.
    assert_eq!(
        echo_from(ip("127.0.0.4"), app, b"x"),
        b"",
        "AS64500 is blocked"
    );
}

/// Runs `openssl s_client` against `addr` with extra args, sends `input`,
/// and returns everything it printed once `want` shows up (or it exits).
fn s_client(addr: SocketAddr, args: &[&str], input: &[u8], want: &str) -> String {
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (o1, o2) = (out.clone(), out.clone());
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        o1.lock().unwrap().push_str(&s);
    });
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        o2.lock().unwrap().push_str(&s);
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    loop {
        let done = child.try_wait().unwrap().is_some();
        if out.lock().unwrap().contains(want) || done || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(100));
    let s = out.lock().unwrap().clone();
    s
}

#[test]
fn flexible_tls_terminates_at_the_edge_and_refuses_tls_1_1() {
    let dir = tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let d = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    make_ca(dir.path());
    make_cert(dir.path(), "app.example.com", &certs);

    let origin = Origin::start(echo);
    let cert_dir = certs.to_string_lossy().into_owned();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--cert-dir", &cert_dir]);
    let port = free_port();
    let (proto, o) = (format!("tcp/{port}"), format!("tcp://{}", origin.addr));
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &proto,
        "--origin",
        &o,
        "--tls",
        "flexible",
    ])
    .expect("app create");
    let app = SocketAddr::from(([127, 0, 0, 1], port));
    let ca = d("ca.pem");
    let common = [
        "-servername",
        "app.example.com",
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-quiet",
    ];
    // TLS 1.2 and 1.3 terminate at the edge; the origin sees plain bytes.
    for v in ["-tls1_2", "-tls1_3"] {
        let mut args = common.to_vec();
        args.push(v);
        let out = s_client(app, &args, b"through tls\n", "through tls");
        assert!(out.contains("through tls"), "{v}: {out}");
    }
    // TLS 1.1 is refused by the edge (the client is allowed to offer it).
    let mut args = common.to_vec();
    args.extend(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    let out = s_client(app, &args, b"old\n", "old");
    assert!(
        !out.contains("old\n") || out.contains("alert"),
        "TLS 1.1 was accepted: {out}"
    );
    let log = edge
        .proc
        .wait_log("TLS handshake failed", Duration::from_secs(10));
    assert!(log.contains("TLS handshake failed"), "{log}");
    // A plaintext client gets nothing from the origin.
    let before = origin.count();
    let _ = echo_round_trip(app, b"plain");
    assert_eq!(
        origin.count(),
        before,
        "a non-TLS client reached the origin"
    );
    // The same through a tunnel: TLS ends at the edge, the stream is plain.
    let url = format!("tcp://{}", origin.addr);
    let _c = edge.connected_tunnel("tls", &["--url", &url], 1);
    let port = free_port();
    let proto = format!("tcp/{port}");
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &proto,
        "--tunnel",
        "tls",
        "--tls",
        "flexible",
    ])
    .expect("app create");
    let app = SocketAddr::from(([127, 0, 0, 1], port));
    let mut args = common.to_vec();
    args.push("-tls1_3");
    let out = s_client(app, &args, b"via tunnel\n", "via tunnel");
    assert!(out.contains("via tunnel"), "tunnel: {out}");
}

#[test]
fn full_and_strict_tls_encrypt_to_the_origin_and_strict_checks_its_name() {
    let dir = tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_ca(dir.path());
    make_cert(dir.path(), "app.example.com", &certs);
    make_cert(dir.path(), "origin.example.com", dir.path());
    let log = dir.path().join("s_server.out");
    let (_origin, origin) = tls_origin(dir.path(), "origin.example.com", &log);

    let cert_dir = certs.to_string_lossy().into_owned();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--cert-dir", &cert_dir, "--origin-ca", &ca],
    );
    let o = format!("tcp://{origin}");
    let app = |tls: &str, dns_name: Option<&str>| {
        let port = free_port();
        let proto = format!("tcp/{port}");
        let mut args = vec![
            "app",
            "create",
            "--protocol",
            &proto,
            "--origin",
            &o,
            "--tls",
            tls,
        ];
        if let Some(n) = dns_name {
            args.extend(["--dns-name", n]);
        }
        edge.admin(&args).expect("app create");
        SocketAddr::from(([127, 0, 0, 1], port))
    };
    let full = app("full", None);
    let strict = app("strict", Some("origin.example.com"));
    let wrong = app("strict", Some("wrong.example.com"));
    let client = [
        "-servername",
        "app.example.com",
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-quiet",
    ];
    // The origin answers through TLS (s_server -rev reverses the line).
    let out = s_client(full, &client, b"hello full\n", "lluf olleh");
    assert!(out.contains("lluf olleh"), "full: {out}");
    let out = s_client(strict, &client, b"hello strict\n", "tcirts olleh");
    assert!(out.contains("tcirts olleh"), "strict: {out}");
    // A certificate for another name is refused, with the reason logged,
    // and the client gets nothing from the origin.
    let out = s_client(wrong, &client, b"hello wrong\n", "gnorw olleh");
    assert!(
        !out.contains("gnorw olleh"),
        "strict accepted a wrong name: {out}"
    );
    let edge_log = edge
        .proc
        .wait_log("not valid for name", Duration::from_secs(10));
    assert!(
        edge_log.contains("TLS handshake failed") && edge_log.contains("not valid for name"),
        "{edge_log}"
    );
    assert_eq!(
        edge.metric(r#"burrow_edge_tls_handshake_failures_total{side="origin"}"#),
        1.0
    );
    // The full and strict handshakes that worked are counted too (each
    // client connection also terminated TLS at the edge).
    assert_eq!(
        edge.metric(r#"burrow_edge_tls_handshakes_total{side="origin"}"#),
        2.0
    );
    assert!(edge.metric(r#"burrow_edge_tls_handshakes_total{side="client"}"#) >= 3.0);
    // burrow offers the cipher suites in the documented origin order.
    let report = std::fs::read_to_string(&log).unwrap();
    assert!(
        report.contains(
            "Client cipher list: TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
        ),
        "{report}"
    );
}

/// A TCP and a UDP origin on `ip` (same port number for both families of
/// the pair used by the test): each answers `tag`.
fn tagged_origins(ip: [u8; 4], port: Option<u16>, tag: &'static [u8]) -> u16 {
    for _ in 0..50 {
        let want = port.unwrap_or(0);
        let Ok(tcp) = std::net::TcpListener::bind(SocketAddr::from((ip, want))) else {
            continue;
        };
        let p = tcp.local_addr().unwrap().port();
        let Ok(udp) = std::net::UdpSocket::bind(SocketAddr::from((ip, p))) else {
            continue;
        };
        std::thread::spawn(move || {
            for s in tcp.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.write_all(tag);
            }
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((_, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(tag, from);
            }
        });
        return p;
    }
    panic!("no free port pair on {ip:?}");
}

/// An app on `protocol` whose origin is `origin.test` (TTL 1 s) at
/// `origin_port`.
fn dns_app(edge: &EdgeProc, protocol: &str, origin_port: &str) {
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        protocol,
        "--origin-dns",
        "origin.test",
        "--origin-port",
        origin_port,
        "--origin-dns-ttl",
        "1",
    ])
    .expect("app create");
}

#[test]
fn dns_origins_follow_the_name_as_it_changes() {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};
    use std::sync::{Arc, Mutex};
    let dir = tempdir();
    let p = tagged_origins([127, 0, 0, 5], None, b"A");
    tagged_origins([127, 0, 0, 6], Some(p), b"B");
    let current = Arc::new(Mutex::new([127u8, 0, 0, 5]));
    let answer = current.clone();
    let dns = dns_server(move |name, kind| match kind {
        RecordType::A if name == "origin.test." => {
            let [a, b, c, d] = *answer.lock().unwrap();
            vec![RData::A(A::new(a, b, c, d))]
        }
        _ => Vec::new(),
    });
    let dns = dns.to_string();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--dns-server", &dns]);
    let (tcp_port, udp_port) = (free_port(), free_port());
    let op = p.to_string();
    for (proto, port) in [("tcp", tcp_port), ("udp", udp_port)] {
        dns_app(&edge, &format!("{proto}/{port}"), &op);
    }
    let tcp_app = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    let udp_app = SocketAddr::from(([127, 0, 0, 1], udp_port));
    let udp_ask = || {
        let c = udp_client("127.0.0.1");
        c.send_to(b"?", udp_app).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = c.recv_from(&mut buf).expect("UDP answer");
        buf[..n].to_vec()
    };
    assert_eq!(read_all(tcp_app), b"A");
    assert_eq!(udp_ask(), b"A");
    // The name moves; after its TTL, new flows and sessions follow it.
    *current.lock().unwrap() = [127, 0, 0, 6];
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(read_all(tcp_app), b"B");
    assert_eq!(udp_ask(), b"B");
    // A name that does not resolve fails the flow with the name in the log.
    let bad_port = free_port();
    let protocol = format!("tcp/{bad_port}");
    edge.admin(&[
        "app",
        "create",
        "--protocol",
        &protocol,
        "--origin-dns",
        "missing.test",
        "--origin-port",
        &op,
    ])
    .expect("app create");
    assert_eq!(read_all(SocketAddr::from(([127, 0, 0, 1], bad_port))), b"");
    let log = edge
        .proc
        .wait_log("cannot resolve missing.test", Duration::from_secs(10));
    assert!(log.contains("cannot resolve missing.test"), "{log}");
}

#[test]
fn apps_listen_on_pool_addresses_by_connectivity() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &[
            "--app-ipv4-pool",
            "127.0.0.7,127.0.0.8",
            "--app-ipv6-pool",
            "::1",
        ],
    );
    let o = format!("tcp://{}", origin.addr);
    let create = |connectivity: &str| -> Vec<SocketAddr> {
        let protocol = format!("tcp/{}", free_port());
        let out = edge
            .admin(&[
                "app",
                "create",
                "--protocol",
                &protocol,
                "--origin",
                &o,
                "--connectivity",
                connectivity,
            ])
            .expect("app create");
        out.lines()
            .filter_map(|l| l.strip_prefix("listen: "))
            .map(|a| a.parse().unwrap())
            .collect()
    };
    // all: one address from each pool; both carry the app.
    let all = create("all");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[0].is_ipv4() && ["127.0.0.7", "127.0.0.8"].contains(&all[0].ip().to_string().as_str())
    );
    assert_eq!(all[1].ip().to_string(), "::1");
    for a in &all {
        assert_eq!(echo_round_trip(*a, b"pooled").unwrap(), b"pooled", "{a}");
    }
    // ipv6: nothing on IPv4.
    let v6 = create("ipv6");
    assert_eq!(v6.len(), 1);
    assert!(v6[0].is_ipv6());
    assert_eq!(echo_round_trip(v6[0], b"six").unwrap(), b"six");
    for ip in ["127.0.0.7", "127.0.0.8"] {
        let v4 = SocketAddr::new(ip.parse().unwrap(), v6[0].port());
        assert!(std::net::TcpStream::connect(v4).is_err(), "{v4} answers");
    }
    // GET shows the same addresses.
    let list = edge.admin(&["app", "list", "--json"]).unwrap();
    assert!(list.contains(&format!("[::1]:{}", v6[0].port())), "{list}");

    // An edge without an IPv6 pool refuses IPv6-only apps, naming the field.
    let dir2 = tempdir();
    let edge2 = EdgeProc::start(dir2.path(), "KIX", "edge.db", &["--app-ipv6-pool", ""]);
    let protocol = format!("tcp/{}", free_port());
    let err = edge2
        .admin(&[
            "app",
            "create",
            "--protocol",
            &protocol,
            "--origin",
            &o,
            "--connectivity",
            "ipv6",
        ])
        .unwrap_err();
    assert!(
        err.contains("edge_ips.connectivity") && err.contains("--app-ipv6-pool"),
        "{err}"
    );
}

#[test]
fn a_new_udp_client_waiting_on_dns_does_not_hold_up_the_others() {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempdir();
    let p = tagged_origins([127, 0, 0, 5], None, b"A");
    // Answers at once, or (once `slow`) after 3 s.
    let slow = Arc::new(AtomicBool::new(false));
    let answer_slowly = slow.clone();
    let dns = dns_server(move |name, kind| match kind {
        RecordType::A if name == "origin.test." => {
            if answer_slowly.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(3));
            }
            vec![RData::A(A::new(127, 0, 0, 5))]
        }
        _ => Vec::new(),
    });
    let dns = dns.to_string();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--dns-server", &dns]);
    let port = free_port();
    dns_app(&edge, &format!("udp/{port}"), &p.to_string());
    let app = SocketAddr::from(([127, 0, 0, 1], port));
    let ask = |c: &std::net::UdpSocket, wait: Duration| -> Option<(Vec<u8>, Duration)> {
        let started = std::time::Instant::now();
        c.set_read_timeout(Some(wait)).unwrap();
        c.send_to(b"?", app).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = c.recv_from(&mut buf).ok()?;
        Some((buf[..n].to_vec(), started.elapsed()))
    };
    // B has a session; then the name's TTL runs out and lookups get slow.
    let b = udp_client("127.0.0.1");
    assert_eq!(
        ask(&b, Duration::from_secs(10))
            .expect("B's first answer")
            .0,
        b"A"
    );
    slow.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1300));
    // A new client A needs a lookup (3 s); B, meanwhile, is answered at once.
    let a = udp_client("127.0.0.1");
    a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    a.send_to(b"?", app).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (tag, took) = ask(&b, Duration::from_secs(2)).expect("B answered while A waits on DNS");
    assert_eq!(tag, b"A");
    assert!(
        took < Duration::from_secs(1),
        "B waited {took:?} behind A's lookup"
    );
    // A's datagram was queued, not dropped: its answer comes after the lookup.
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = a.recv_from(&mut buf).expect("A answered after its lookup");
    assert_eq!(&buf[..n], b"A");
}

#[test]
fn udp_sessions_end_after_the_apps_idle_timeout_and_are_counted() {
    let dir = tempdir();
    let origin = udp_origin(|d| d.to_vec());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let (_, app) = edge.create_app_json(&serde_json::json!({
        "protocol": format!("udp/{}", free_port()),
        "origin_direct": [format!("udp://{origin}")],
        "idle_timeout": 1,
    }));
    let round_trip = |c: &std::net::UdpSocket, msg: &[u8]| {
        c.send_to(msg, app).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = c.recv_from(&mut buf).expect("a reply");
        assert_eq!(&buf[..n], msg);
    };
    let (idle, busy) = (udp_client("127.0.0.1"), udp_client("127.0.0.1"));
    round_trip(&idle, b"once");
    round_trip(&busy, b"first");
    assert_eq!(edge.metric("burrow_edge_udp_sessions"), 2.0);
    // The busy client keeps its session past the timeout; the idle one's
    // ends within a second of it.
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        round_trip(&busy, b"again");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(edge.metric("burrow_edge_udp_sessions"), 1.0);
    assert_eq!(edge.metric("burrow_edge_app_idle_closed_total"), 1.0);
    // The idle client is served again, in a new session.
    round_trip(&idle, b"back");
    assert_eq!(
        edge.metric(r#"burrow_edge_app_flows_total{protocol="udp",origin="direct"}"#),
        3.0
    );
}
