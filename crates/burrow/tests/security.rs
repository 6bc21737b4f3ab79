//! The attacker's view: each test is one thing a peer (an eyeball, a
//! client device, a connector, an unauthenticated socket) must not be able
//! to do, named after what it proves. Issue 13 lists the findings these
//! tests pin down.
#![allow(missing_docs)]

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use util::httporigin::HttpOrigin;
use util::*;

/// `EgressRuleID` of a session rule `id` matched.
fn rule_id(id: &str) -> String {
    burrow_config::egress::log_id(Some(id)).to_string()
}

/// An edge with `--http`, a tunnel `t` whose connector serves
/// `web.example.com` (origin A), `internal.example.com` (origin B) and
/// `dead.example.com` (a port nobody listens on), and routes for
/// `web.example.com` and `dead.example.com` only.
fn two_rule_tunnel(dir: &Path) -> (EdgeProc, Proc, HttpOrigin, HttpOrigin) {
    let edge = EdgeProc::start(dir, "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let (a, b) = (HttpOrigin::start("A"), HttpOrigin::start("B"));
    let creds = edge.create_tunnel("t");
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "ingress:\n  - hostname: web.example.com\n    service: http://{}\n  \
             - hostname: internal.example.com\n    service: http://{}\n  \
             - hostname: dead.example.com\n    service: http://127.0.0.1:{}\n  \
             - service: http_status:404\n",
            a.addr,
            b.addr,
            // A port nobody listens on: bound, then freed.
            free_port()
        ),
    )
    .unwrap();
    let c = connector(
        dir,
        "connector",
        &creds,
        &["--config", cfg.to_str().unwrap()],
    );
    edge.wait_connections("t", 1, Duration::from_secs(20));
    for h in ["web.example.com", "dead.example.com"] {
        edge.admin(&["route", "dns", "t", h]).expect("route dns");
    }
    (edge, c, a, b)
}

/// Sends `raw` on a fresh connection and reads until the edge closes (or
/// 10 s pass); (status, whole answer).
fn raw_exchange(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn a_forged_host_reaches_only_the_routed_hostname() {
    let dir = tempdir();
    let (edge, _c, _a, _b) = two_rule_tunnel(dir.path());
    let http = edge.http_addr.unwrap();

    // The routed name in the request target, an unrouted one in Host: the
    // origin behind the routed name answers, and sees the routed name.
    let (status, text) = raw_exchange(
        http,
        "GET http://web.example.com/x HTTP/1.1\r\nHost: internal.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !text.contains("origin B"),
        "the unrouted rule answered: {text}"
    );
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("origin A") && text.contains("host web.example.com"),
        "{text}"
    );

    // Two Host headers: refused (RFC 9112 3.2), on either path.
    let (status, text) = raw_exchange(
        http,
        "GET / HTTP/1.1\r\nHost: web.example.com\r\nHost: internal.example.com\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("origin B"), "{text}");
    let (status, text) = raw_exchange(
        http,
        "POST / HTTP/1.1\r\nHost: web.example.com\r\nHost: internal.example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(status, 400, "{text}");

    // CONNECT is not something this listener does.
    let (status, text) = raw_exchange(
        http,
        "CONNECT internal.example.com:80 HTTP/1.1\r\nHost: internal.example.com:80\r\n\r\n",
    );
    assert_eq!(status, 405, "{text}");

    // The routed name still works as before, on both paths.
    let (status, text) = raw_exchange(
        http,
        "GET / HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("origin A"), "{text}");
}

#[test]
fn a_failing_origin_is_not_described_to_public_clients() {
    let dir = tempdir();
    let (edge, c, _a, _b) = two_rule_tunnel(dir.path());
    let http = edge.http_addr.unwrap();
    for raw in [
        // The lean path (no body) and the hyper path (a body).
        "GET / HTTP/1.1\r\nHost: dead.example.com\r\nConnection: close\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: dead.example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    ] {
        let (status, text) = raw_exchange(http, raw);
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains("127.0.0.1"), "the origin address leaked: {text}");
        assert!(!text.to_lowercase().contains("refused"), "the error leaked: {text}");
        let id = text
            .split("Request ID: ")
            .nth(1)
            .map(|r| r.trim().to_owned())
            .unwrap_or_else(|| panic!("no request id in {text}"));
        // The connector's log has the detail under the same id.
        let log = c.wait_log(&id, Duration::from_secs(5));
        let line = log.lines().find(|l| l.contains(&id)).expect("request id logged");
        assert!(line.contains("127.0.0.1"), "{line}");
    }
}

/// Reads from `s` until the peer closes it or it fails; how long that
/// took (panics after `limit`).
fn time_to_close(s: &mut std::net::TcpStream, limit: Duration) -> Duration {
    let t = std::time::Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("still open after {limit:?}")
            }
            Err(_) => return t.elapsed(),
        }
    }
}

/// One echo round trip on an open stream.
fn echo_once(s: &mut std::net::TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn revoking_a_device_or_deleting_its_user_ends_live_sessions_within_2s() {
    let dir = tempdir();
    let (edge, log) = logged_edge(dir.path(), &["--egress-allow", "127.0.0.1/32"]);
    let echo = Origin::start(util::echo);
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    edge.admin(&["user", "add", "bo@example.com"]).unwrap();
    let (ana_creds, ana_device) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let (bo_creds, _) = enroll_device(&edge, dir.path(), "bo@example.com", "bo");
    let (ana, ana_socks) = start_client_named(dir.path(), "client-ana", &ana_creds);
    let (bo, bo_socks) = start_client_named(dir.path(), "client-bo", &bo_creds);

    let mut a = socks_connect(&ana_socks, v4(echo.addr)).unwrap();
    let mut b = socks_connect(&bo_socks, v4(echo.addr)).unwrap();
    echo_once(&mut a, b"before");
    echo_once(&mut b, b"before");

    // Revoke ana's device: her open flow ends within 2 s, bo's does not.
    edge.admin(&["device", "revoke", &ana_device]).unwrap();
    let took = time_to_close(&mut a, Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    echo_once(&mut b, b"still here");
    assert!(
        socks_connect(&ana_socks, v4(echo.addr)).is_err(),
        "a revoked device opened a new flow"
    );
    ana.wait_log(
        "the edge ended this device's connection",
        Duration::from_secs(5),
    );
    assert!(
        ana.log().contains("the device was revoked"),
        "{}",
        ana.log()
    );

    // Delete bo's user: the same, with its own reason.
    edge.admin(&["user", "delete", "bo@example.com"]).unwrap();
    let took = time_to_close(&mut b, Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    bo.wait_log("the device's user was deleted", Duration::from_secs(5));

    let elog = edge.proc.log();
    assert!(elog.contains("access revoked"), "{elog}");
    assert!(
        elog.contains("the device was revoked") && elog.contains("the device's user was deleted"),
        "{elog}"
    );
    for reason in ["device_revoked", "user_deleted"] {
        let series = format!(
            "burrow_edge_revoked_connections_total{{party=\"client\",reason=\"{reason}\"}}"
        );
        assert_eq!(edge.metric(&series), 1.0, "{series}");
    }
    let recs = session_records(&log, 2);
    let reasons: Vec<_> = recs
        .iter()
        .map(|r| r["ConnectionCloseReason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["REVOKED", "REVOKED"], "{recs:?}");
}

#[test]
fn deleting_or_rotating_a_tunnel_ends_its_connectors_and_their_flows_within_2s() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let echo = Origin::start(util::echo);
    let mut conns = Vec::new();
    for (name, what) in [("gone", "delete"), ("turned", "rotate")] {
        let creds = edge.create_tunnel(name);
        let cfg = write_config(
            dir.path(),
            &format!("{name}.yml"),
            "echo.internal",
            echo.addr,
        );
        let c = connector(
            dir.path(),
            &format!("connector-{name}"),
            &creds,
            &["--config", cfg.to_str().unwrap(), "--max-refusals", "1"],
        );
        edge.wait_connections(name, 4, Duration::from_secs(20));
        let app = edge.create_app(name, "echo.internal");
        let mut s = connect(app, Duration::from_secs(5));
        echo_once(&mut s, b"before");
        conns.push((name, what, c, s));
    }
    for (name, what, mut c, mut s) in conns {
        match what {
            "delete" => edge.admin(&["tunnel", "delete", name]).unwrap(),
            _ => edge.admin(&["tunnel", "rotate-secret", name]).unwrap(),
        };
        let took = time_to_close(&mut s, Duration::from_secs(5));
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
        // The connector is told why, is refused when it comes back, and
        // gives up (--max-refusals 1).
        let why = if what == "delete" {
            "the tunnel was deleted"
        } else {
            "the tunnel secret was rotated"
        };
        c.wait_log(why, Duration::from_secs(5));
        assert!(
            c.log().contains("the edge ended this tunnel connection"),
            "{}",
            c.log()
        );
        assert_eq!(c.wait_exit(Duration::from_secs(15)), Some(1), "{}", c.log());
        if what != "delete" {
            assert!(edge.connections(name).is_empty());
        }
    }
    assert_eq!(
        edge.metric(
            r#"burrow_edge_revoked_connections_total{party="connector",reason="tunnel_deleted"}"#
        ),
        4.0
    );
    assert_eq!(
        edge.metric(
            r#"burrow_edge_revoked_connections_total{party="connector",reason="secret_rotated"}"#
        ),
        4.0
    );
}

/// The SOCKS5 reply code for a CONNECT to `host:port` (a name the edge
/// resolves); 0 is success.
fn socks_connect_name(socks: &str, host: &str, port: u16) -> u8 {
    let mut s = std::net::TcpStream::connect(socks).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello).unwrap();
    let mut req = vec![5, 1, 0, 3, u8::try_from(host.len()).unwrap()];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).unwrap();
    let mut reply = [0u8; 4];
    match s.read_exact(&mut reply) {
        Ok(()) => reply[1],
        Err(_) => 255,
    }
}

#[test]
fn a_device_cannot_reach_the_edge_host_or_its_listeners() {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, RecordType};
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    // A name that resolves to loopback (DNS rebinding onto the edge host).
    let dns = dns_server(|name, kind| match (name, kind) {
        ("rebind.example.com.", RecordType::A) => vec![RData::A(A::new(127, 0, 0, 1))],
        _ => Vec::new(),
    })
    .to_string();
    let echo = Origin::start(util::echo);

    // Without --egress-allow: nothing on loopback, by address or by name.
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &[
            "--session-log",
            &log_s,
            "--dns-server",
            &dns,
            "--http",
            "127.0.0.1:0",
        ],
    );
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, _) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let (client, socks) = start_client(dir.path(), &creds);
    let admin: SocketAddr = edge
        .admin_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    for (what, dst) in [
        ("the admin API", admin),
        ("the tunnel endpoint", edge.tunnel_addr),
        ("a loopback service", echo.addr),
    ] {
        assert!(
            socks_connect(&socks, v4(dst)).is_err(),
            "{what} was reachable"
        );
    }
    assert_ne!(
        socks_connect_name(&socks, "rebind.example.com", echo.addr.port()),
        0
    );
    assert_ne!(socks_connect_name(&socks, "localhost", admin.port()), 0);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks])
        .arg(format!("http://{admin}/metrics"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let recs = session_records(&log, 6);
    assert!(recs.len() >= 6, "{recs:?}");
    assert!(
        recs.iter()
            .all(|r| r["ConnectionCloseReason"] == "DESTINATION_DENIED"),
        "{recs:?}"
    );
    assert!(
        edge.proc.log().contains("is a loopback address"),
        "{}",
        edge.proc.log()
    );
    drop((client, edge));

    // With --egress-allow 127.0.0.0/8 the loopback service is reachable,
    // the edge's own listeners (admin, tunnel, HTTP, app) still are not.
    let dir = tempdir();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--egress-allow", "127.0.0.0/8", "--http", "127.0.0.1:0"],
    );
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    edge.create_tunnel("t");
    let app = edge.create_app("t", "x.example.com");
    let (creds, _) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let (_client, socks) = start_client(dir.path(), &creds);
    let mut s = socks_connect(&socks, v4(echo.addr)).expect("allowed range");
    echo_once(&mut s, b"allowed");
    let admin: SocketAddr = edge
        .admin_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    for (what, dst) in [
        ("the admin API", admin),
        ("the tunnel endpoint", edge.tunnel_addr),
        ("the HTTP listener", edge.http_addr.unwrap()),
        ("an app listener", app),
    ] {
        assert!(
            socks_connect(&socks, v4(dst)).is_err(),
            "{what} was reachable"
        );
    }
    assert!(edge.proc.log().contains("is a listener of this edge"));
}

#[test]
fn a_block_policy_refuses_the_flow_and_says_so() {
    let dir = tempdir();
    let (edge, log) = logged_edge(dir.path(), &["--egress-allow", "127.0.0.0/8"]);
    let (a, b) = (Origin::start(util::echo), Origin::start(util::echo));
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, _) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let (_client, socks) = start_client(dir.path(), &creds);
    let port = a.addr.port().to_string();
    edge.admin(&["policy", "add", "--id", "no-a", "--port", &port, "--block"])
        .expect("a block rule is accepted");
    assert!(
        socks_connect(&socks, v4(a.addr)).is_err(),
        "blocked port reached"
    );
    let mut s = socks_connect(&socks, v4(b.addr)).expect("other ports pass");
    echo_once(&mut s, b"b");
    let recs = session_records(&log, 1);
    assert_eq!(
        recs[0]["ConnectionCloseReason"], "BLOCKED_BY_POLICY",
        "{recs:?}"
    );
    assert_eq!(recs[0]["EgressRuleID"], rule_id("no-a"), "{recs:?}");
    assert_eq!(
        edge.metric(r#"burrow_edge_client_sessions_total{reason="BLOCKED_BY_POLICY"}"#),
        1.0
    );
    // The API takes the same action as JSON.
    let token = std::fs::read_to_string(&edge.token_file).unwrap();
    let (status, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/policies/rules",
        Some(token.trim()),
        r#"{"rule": {"id": "blk", "action": {"type": "block"}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""action":{"type":"block"}"#), "{body}");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A TLS client config that trusts the edge's CA, with `alpn`.
fn edge_tls(ca_pem: &str, alpn: &[u8], tls13: bool) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider);
    let b = if tls13 {
        b.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        b.with_safe_default_protocol_versions()
    }
    .unwrap();
    let mut cfg = b.with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

/// Unauthenticated peers that try to make the edge buffer data: over
/// HTTP/2 as a client (ALPN burrow-h2c/1) and over QUIC, each with a
/// control stream that starts a preface and never finishes it, and many
/// more streams full of data. None of them ever registers.
async fn flood(
    edge: SocketAddr,
    ca_pem: String,
    conns: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    use bytes::Bytes;
    let chunk = Bytes::from(vec![0x55u8; 64 * 1024]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let (ca, chunk, mut stop) = (ca_pem.clone(), chunk.clone(), stop.clone());
        tasks.spawn(async move {
            let name = rustls::pki_types::ServerName::try_from("h2.burrow.internal").unwrap();
            match i % 2 {
                0 => {
                    // HTTP/2 client role (ALPN burrow-h2c/1): open streams
                    // and push data on each.
                    let tls = edge_tls(&ca, b"burrow-h2c/1", false);
                    let tcp = tokio::net::TcpStream::connect(edge).await.unwrap();
                    let io = match tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
                        .connect(name, tcp)
                        .await
                    {
                        Ok(io) => io,
                        Err(e) => panic!("flood TLS: {e}"),
                    };
                    let Ok((send, conn)) = h2::client::Builder::new()
                        .initial_window_size(8 << 20)
                        .handshake::<_, Bytes>(io)
                        .await
                    else {
                        return;
                    };
                    tokio::spawn(conn);
                    // The control stream: a preface that never ends, so the
                    // edge keeps waiting for a registration.
                    let Ok(mut ready) = send.clone().ready().await else {
                        return;
                    };
                    let req = http::Request::post("https://burrow.tunnel/flow")
                        .body(())
                        .unwrap();
                    let Ok((_resp, mut control)) = ready.send_request(req, false) else {
                        return;
                    };
                    let _ = control.send_data(Bytes::from_static(b"BURR"), false);
                    let mut streams = vec![control];
                    for _ in 0..64 {
                        let Ok(mut ready) = send.clone().ready().await else {
                            break;
                        };
                        let req = http::Request::post("https://burrow.tunnel/flow")
                            .body(())
                            .unwrap();
                        let Ok((_resp, mut body)) = ready.send_request(req, false) else {
                            break;
                        };
                        body.reserve_capacity(8 << 20);
                        for _ in 0..16 {
                            if body.send_data(chunk.clone(), false).is_err() {
                                break;
                            }
                        }
                        streams.push(body);
                    }
                    let _ = stop.changed().await;
                    drop(streams);
                }
                _ => {
                    // QUIC: open many streams and write to each.
                    let tls = edge_tls(&ca, b"burrow/1", true);
                    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
                    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
                    ep.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(
                        crypto,
                    )));
                    let Ok(conn) = ep.connect(edge, "quic.burrow.internal") else {
                        return;
                    };
                    let Ok(conn) = conn.await else { return };
                    let Ok((mut control, _recv)) = conn.open_bi().await else {
                        return;
                    };
                    if control.write_all(b"BURR").await.is_err() {
                        return;
                    }
                    for _ in 0..64 {
                        let conn = conn.clone();
                        let chunk = chunk.clone();
                        tokio::spawn(async move {
                            let Ok((mut send, _recv)) = conn.open_bi().await else {
                                return;
                            };
                            for _ in 0..16 {
                                if send.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                            std::future::pending::<()>().await;
                        });
                    }
                    let _ = stop.changed().await;
                    conn.close(0u32.into(), b"done");
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            eprintln!("flood task: {e}");
        }
    }
}

#[test]
fn unauthenticated_connections_cannot_make_the_edge_buffer_data() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let pid = edge.proc.child.id();
    let ca_pem = std::fs::read_to_string(dir.path().join("edge.d").join("ca.pem")).unwrap();
    let before = rss_kib(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = edge.tunnel_addr;
    let flood_task = rt.spawn(flood(addr, ca_pem, 30, stop_rx));
    // Let the flood reach whatever the edge lets it buffer.
    std::thread::sleep(Duration::from_secs(4));
    let during = rss_kib(pid);

    // A real connector registers meanwhile, promptly.
    let started = std::time::Instant::now();
    let _c = edge.connected_tunnel("t", &["--url", "tcp://127.0.0.1:9"], 1);
    let took = started.elapsed();

    let _ = stop_tx.send(true);
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), flood_task).await });
    let grown_mib = during.saturating_sub(before) / 1024;
    eprintln!("edge RSS {before} KiB before, {during} KiB during the flood; a connector registered in {took:?}");
    // 30 connections: without limits each could buffer its 30 MiB window.
    assert!(
        grown_mib < 48,
        "the edge grew by {grown_mib} MiB for 30 unauthenticated connections"
    );
    assert!(
        took < Duration::from_secs(3),
        "a connector took {took:?} to register"
    );
}

/// Sends `n` datagrams of 1,000 bytes on `conn`, each once quinn has room
/// for it; how many went out.
async fn send_datagrams(conn: &quinn::Connection, n: usize) -> usize {
    let payload = bytes::Bytes::from(vec![0x5au8; 1000]);
    let mut count = 0;
    for _ in 0..n {
        if conn.send_datagram_wait(payload.clone()).await.is_err() {
            break;
        }
        count += 1;
    }
    count
}

/// Datagrams per flooding connection: more than quinn's 1.25 MB buffer.
const FLOOD_DATAGRAMS: usize = 1500;

/// One unregistered QUIC connection: a control stream begun (so the edge
/// waits for the rest of a registration), then [`FLOOD_DATAGRAMS`]; it
/// reports how many went out on `sent`, then stays open until `stop`.
async fn datagram_flood(
    edge: SocketAddr,
    ca_pem: String,
    sent: tokio::sync::mpsc::Sender<usize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let tls = edge_tls(&ca_pem, b"burrow/1", true);
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let conn = match ep.connect(edge, "quic.burrow.internal") {
        Ok(c) => c.await.ok(),
        Err(_) => None,
    };
    if let Some(conn) = &conn {
        if let Ok((mut control, _recv)) = conn.open_bi().await {
            let _ = control.write_all(b"BURR").await;
            let _ = sent.send(send_datagrams(conn, FLOOD_DATAGRAMS).await).await;
            let _ = stop.changed().await;
            conn.close(0u32.into(), b"done");
            return;
        }
    }
    let _ = sent.send(0).await;
}

/// A connector's registration (version 2, `stream-ack` only: no
/// `quic-datagrams`, so the edge has no datagram reader for it), then
/// [`FLOOD_DATAGRAMS`]; it reports how many went out on `sent`, then stays
/// open until `stop`.
async fn registered_datagram_flood(
    edge: SocketAddr,
    ca_pem: String,
    creds: PathBuf,
    sent: tokio::sync::mpsc::Sender<usize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use burrow_proto::v2::{Registration, Role};
    let creds = burrow_config::credentials::Credentials::from_json(
        &std::fs::read_to_string(creds).unwrap(),
    )
    .unwrap();
    let trust = burrow_transport::pki::EdgeTrust::new(&ca_pem, "burrow.internal").unwrap();
    let ep = burrow_transport::quic::client_endpoint(edge).unwrap();
    let (conn, mut control) =
        burrow_transport::quic::connect(&ep, edge, &trust, Duration::from_secs(5))
            .await
            .unwrap();
    let reg = Registration {
        account_id: *creds.account_id.as_bytes(),
        secret: creds.secret.0.clone().into(),
        role: Role::Connector {
            tunnel_id: *creds.tunnel_id.as_bytes(),
            connector_id: *uuid::Uuid::new_v4().as_bytes(),
            conn_index: 0,
        },
        version: "test".into(),
        features: vec![burrow_proto::FEATURE_STREAM_ACK.into()],
    };
    let mut reader = burrow_transport::frames::FrameReader::new();
    let answer = burrow_transport::frames::register(
        &mut control,
        &mut reader,
        &reg,
        burrow_proto::v2::VERSION_2,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(
        matches!(answer, burrow_transport::frames::Answer::Welcome(_)),
        "not welcomed: {answer:?}"
    );
    let burrow_transport::ConnectorConn::Quic(q) = &conn else {
        panic!("not QUIC");
    };
    let _ = sent.send(send_datagrams(q, FLOOD_DATAGRAMS).await).await;
    let _ = stop.changed().await;
    drop(control);
}

/// Runs `conns` flooding connections made by `flood` (each reports the
/// datagrams it sent, then stays open until told to stop) against `edge`,
/// and measures the edge's RSS while they are open; `while_open` runs
/// then too. Returns the datagrams sent and the growth in MiB.
fn edge_growth_under_datagrams<F, Fut>(
    edge: &EdgeProc,
    conns: usize,
    flood: F,
    while_open: impl FnOnce(),
) -> (usize, u64)
where
    F: Fn(tokio::sync::mpsc::Sender<usize>, tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let pid = edge.proc.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = rss_kib(pid);
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel(conns);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..conns {
        rt.spawn(flood(sent_tx.clone(), stop_rx.clone()));
    }
    let sent: usize = rt.block_on(async {
        let mut total = 0;
        for _ in 0..conns {
            match tokio::time::timeout(Duration::from_secs(30), sent_rx.recv()).await {
                Ok(Some(n)) => total += n,
                _ => break,
            }
        }
        total
    });
    // Let the edge take in what is still in flight.
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_kib(pid);
    while_open();
    let _ = stop_tx.send(true);
    drop(rt);
    eprintln!("{sent} datagrams sent; edge RSS {before} KiB before, {during} KiB after");
    (sent, during.saturating_sub(before) / 1024)
}

/// QUIC datagrams are not flow-controlled: quinn keeps up to 1.25 MB of
/// them per connection until the application reads them. Connections that
/// never register send 1.5 MB of datagrams each; the edge must not hold
/// them (48 connections could make it hold 60 MB).
#[test]
fn unregistered_quic_connections_cannot_make_the_edge_buffer_datagrams() {
    const CONNS: usize = 48;
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let ca_pem = std::fs::read_to_string(dir.path().join("edge.d").join("ca.pem")).unwrap();
    let addr = edge.tunnel_addr;
    let (sent, grown_mib) = edge_growth_under_datagrams(
        &edge,
        CONNS,
        |sent, stop| datagram_flood(addr, ca_pem.clone(), sent, stop),
        || {},
    );
    assert!(sent >= CONNS * 1000, "only {sent} datagrams went out");
    assert!(
        grown_mib < 16,
        "the edge grew by {grown_mib} MiB for {CONNS} unregistered connections' datagrams"
    );
}

/// A registered connector that did not list `quic-datagrams` has no
/// datagram reader at the edge: its datagrams are dropped, not left in
/// quinn's 1.25 MB buffer for the life of the connection.
#[test]
fn a_connector_without_a_datagram_reader_cannot_make_the_edge_buffer_datagrams() {
    const CONNS: usize = 16;
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let creds = edge.create_tunnel("quiet");
    let ca_pem = std::fs::read_to_string(dir.path().join("edge.d").join("ca.pem")).unwrap();
    let addr = edge.tunnel_addr;
    let (sent, grown_mib) = edge_growth_under_datagrams(
        &edge,
        CONNS,
        |sent, stop| registered_datagram_flood(addr, ca_pem.clone(), creds.clone(), sent, stop),
        || assert_eq!(edge.connections("quiet").len(), CONNS, "all registered"),
    );
    assert!(sent >= CONNS * 1000, "only {sent} datagrams went out");
    assert!(
        grown_mib < 10,
        "the edge grew by {grown_mib} MiB for {CONNS} connections' unread datagrams"
    );
}

#[test]
fn idle_sockets_from_one_address_do_not_delay_other_connectors() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--disable-quic"]);
    // More idle TCP connections from 127.0.0.2 than the edge has handshake
    // slots in all (1,024); they never send a byte.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(connect_from("127.0.0.2".parse().unwrap(), edge.tunnel_addr));
    }
    let started = std::time::Instant::now();
    let _c = edge.connected_tunnel(
        "t",
        &["--url", "tcp://127.0.0.1:9", "--protocol", "http2"],
        1,
    );
    let took = started.elapsed();
    eprintln!("a connector registered in {took:?} beside 1,100 idle sockets");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    drop(idle);
}

/// Every form a secret could take in a log: the raw bytes, hex (both
/// cases), base64 (standard and URL-safe, padded or not), and the
/// decimal byte lists `Debug` prints for `Vec<u8>` and `[u8; N]`.
fn secret_forms(raw: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let b64 = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let list: Vec<String> = raw.iter().map(u8::to_string).collect();
    let mut forms = vec![
        raw.to_vec(),
        hex::encode(raw).into_bytes(),
        hex::encode_upper(raw).into_bytes(),
        list.join(", ").into_bytes(),
        list.join(",").into_bytes(),
    ];
    forms.extend(b64.iter().map(|e| e.encode(raw).into_bytes()));
    // A log line may carry a part of a long secret: any 12-byte window of
    // the hex and base64 forms counts as a leak too.
    forms.retain(|f| f.len() >= 12);
    forms
}

fn leaks(log: &[u8], raw: &[u8]) -> Option<String> {
    secret_forms(raw).into_iter().find_map(|form| {
        log.windows(form.len())
            .position(|w| w == form.as_slice())
            .map(|at| {
                String::from_utf8_lossy(
                    &log[at.saturating_sub(80)..(at + form.len() + 20).min(log.len())],
                )
                .into_owned()
            })
    })
}

#[test]
fn no_secret_reaches_any_log_even_at_trace_level() {
    use base64::Engine;
    let dir = tempdir();
    let peer_secret = "0123456789abcdef0123456789abcdef-peer-secret";
    let ps = dir.path().join("peer.secret");
    std::fs::write(&ps, format!("{peer_secret}\n")).unwrap();
    let ps = ps.to_string_lossy().into_owned();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &[
            "--loglevel",
            "trace",
            "--egress-allow",
            "127.0.0.0/8",
            "--http",
            "127.0.0.1:0",
            "--peer-secret-file",
            &ps,
        ],
    );
    let echo = Origin::start(util::echo);
    let creds = edge.create_tunnel("t");
    let cfg = write_config(dir.path(), "config.yml", "echo.internal", echo.addr);
    let c = connector(
        dir.path(),
        "connector",
        &creds,
        &["--config", cfg.to_str().unwrap(), "--loglevel", "trace"],
    );
    edge.wait_connections("t", 4, Duration::from_secs(20));
    let app = edge.create_app("t", "echo.internal");
    let mut s = connect(app, Duration::from_secs(5));
    echo_once(&mut s, b"through the tunnel");
    drop(s);
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (dev, device_id) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let cp = ClientProc::start(dir.path(), "client", &dev, &["--loglevel", "trace"]);
    let (client, socks) = (cp.proc, cp.socks);
    let mut s = socks_connect(&socks, v4(echo.addr)).unwrap();
    echo_once(&mut s, b"through the client");
    drop(s);
    // Revocation and a rotation travel with reasons, not secrets.
    edge.admin(&["device", "revoke", &device_id]).unwrap();
    client.wait_log(
        "the edge ended this device's connection",
        Duration::from_secs(5),
    );
    let new_creds = dir.path().join("t-rotated.json");
    edge.admin(&[
        "tunnel",
        "rotate-secret",
        "t",
        "--credentials-file",
        new_creds.to_str().unwrap(),
    ])
    .unwrap();
    c.wait_log(
        "the edge ended this tunnel connection",
        Duration::from_secs(5),
    );

    let b64 = base64::engine::general_purpose::STANDARD;
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        (
            "tunnel secret",
            b64.decode(json(&creds)["TunnelSecret"].as_str().unwrap())
                .unwrap(),
        ),
        (
            "rotated tunnel secret",
            b64.decode(json(&new_creds)["TunnelSecret"].as_str().unwrap())
                .unwrap(),
        ),
        (
            "device secret",
            b64.decode(json(&dev)["DeviceSecret"].as_str().unwrap())
                .unwrap(),
        ),
        (
            "admin token",
            std::fs::read_to_string(&edge.token_file)
                .unwrap()
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        ("peer secret", peer_secret.as_bytes().to_vec()),
    ];
    // The detector finds each form it claims to.
    for form in secret_forms(&secrets[0].1) {
        let mut line = b"INFO x: secret=".to_vec();
        line.extend_from_slice(&form);
        assert!(
            leaks(&line, &secrets[0].1).is_some(),
            "{}",
            String::from_utf8_lossy(&form)
        );
    }
    let logs = [
        ("edge", std::fs::read(&edge.proc.stderr_path).unwrap()),
        ("connector", std::fs::read(&c.stderr_path).unwrap()),
        ("client", std::fs::read(&client.stderr_path).unwrap()),
    ];
    for (who, log) in &logs {
        let text = String::from_utf8_lossy(log);
        assert!(
            text.contains(" DEBUG "),
            "{who} did not log at debug/trace level:\n{text}"
        );
        for (what, raw) in &secrets {
            if let Some(around) = leaks(log, raw) {
                panic!("the {what} is in the {who}'s log: …{around}…");
            }
        }
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn secrets_are_stored_hashed_and_state_files_are_private() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    // A state directory written by the build before hashing (6a47fd0),
    // with its 0644 state file and 0755 directory.
    let dir = tempdir();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/state-6a47fd0");
    std::fs::create_dir(dir.path().join("state.d")).unwrap();
    for f in ["state.db", "legacy.json", "device.json"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    for f in std::fs::read_dir(fixture.join("state.d")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join("state.d").join(f.file_name())).unwrap();
    }
    let perm =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // As a checkout or a copy leaves them: nothing is 0600.
    for f in [
        "state.db",
        "state.d/admin.token",
        "state.d/ca.key",
        "state.d/edge-burrow.internal.key",
    ] {
        perm(&dir.path().join(f), 0o644);
    }
    perm(&dir.path().join("state.d"), 0o755);
    let token = std::fs::read_to_string(dir.path().join("state.d/admin.token")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(f)).unwrap()).unwrap()
    };
    let tunnel_secret = b64
        .decode(json("legacy.json")["TunnelSecret"].as_str().unwrap())
        .unwrap();
    let device_secret = b64
        .decode(json("device.json")["DeviceSecret"].as_str().unwrap())
        .unwrap();
    let raw = std::fs::read(dir.path().join("state.db")).unwrap();
    assert!(
        leaks(&raw, token.trim().as_bytes()).is_some(),
        "the fixture holds the token in plain"
    );

    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "state.db",
        &["--session-log", &log_s, "--egress-allow", "127.0.0.0/8"],
    );
    // The old admin token, tunnel credentials and device credentials work.
    edge.admin(&["tunnel", "list"])
        .expect("the old admin token still works");
    let echo = Origin::start(util::echo);
    let conn_log = dir.path().join("connector.log");
    let at = edge.tunnel_addr.to_string();
    let _c = connector(
        dir.path(),
        "connector",
        &dir.path().join("legacy.json"),
        &[
            "--url",
            &format!("tcp://{}", echo.addr),
            "--logfile",
            conn_log.to_str().unwrap(),
            "--edge",
            &at,
        ],
    );
    edge.wait_connections("legacy", 1, Duration::from_secs(20));
    // The device's credentials name the old edge address too.
    let device = dir.path().join("device.json");
    let c = ClientProc::start(dir.path(), "client", &device, &["--edge", &at]);
    let (_client, socks) = (c.proc, c.socks);
    let mut s = socks_connect(&socks, v4(echo.addr)).expect("the old device registers");
    echo_once(&mut s, b"old device");
    drop(s);
    session_records(&log, 1);

    // Nothing in the state is a secret as it is.
    let mut state = std::fs::read(dir.path().join("state.db")).unwrap();
    state.extend(std::fs::read(dir.path().join("state.db-wal")).unwrap_or_default());
    for (what, secret) in [
        ("admin token", token.trim().as_bytes().to_vec()),
        ("tunnel secret", tunnel_secret),
        ("device secret", device_secret),
    ] {
        assert!(
            leaks(&state, &secret).is_none(),
            "the {what} is stored as it is"
        );
    }
    // Files that hold identities are the owner's alone.
    for f in [
        "state.db",
        "state.db-wal",
        "state.db-shm",
        "sessions.jsonl",
        "connector.log",
        "state.d/admin.token",
        "state.d/ca.key",
        "state.d/edge-burrow.internal.key",
    ] {
        assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&dir.path().join("state.d")), 0o700);
    // `tunnel token` reads the credentials file; the API will not show a
    // secret it no longer has.
    let t = edge
        .admin(&[
            "tunnel",
            "token",
            "legacy",
            "--credentials-file",
            "legacy.json",
        ])
        .unwrap();
    assert!(t.trim().len() > 40, "{t}");
    let (status, body) = http(
        &edge.admin_url,
        "GET",
        "/api/v1/tunnels/legacy/credentials",
        Some(token.trim()),
        "",
    );
    assert_eq!(status, 410, "{body}");
    // A fresh edge makes its files private from the start.
    let fresh = tempdir();
    let _e = EdgeProc::start(fresh.path(), "KIX", "new/edge.db", &[]);
    assert_eq!(mode(&fresh.path().join("new")), 0o700);
    assert_eq!(mode(&fresh.path().join("new/edge.db")), 0o600);
    assert_eq!(mode(&fresh.path().join("new/edge.d")), 0o700);
}

/// Whether the edge echoes on a fresh connection from `src` to `app` (a
/// refused connection is closed without a byte).
fn echoes_from(src: &str, app: SocketAddr) -> Option<std::net::TcpStream> {
    let mut s = connect_from(src.parse().unwrap(), app);
    s.write_all(b"hi").ok()?;
    let mut b = [0u8; 2];
    s.read_exact(&mut b).ok()?;
    (&b == b"hi").then_some(s)
}

#[test]
fn app_connections_are_capped_per_app_and_source_and_idle_ones_close() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let echo = Origin::start(util::echo);
    let port = free_port();
    let (id, app) = edge.create_app_json(&serde_json::json!({
        "protocol": format!("tcp/{port}"),
        "origin_direct": [format!("tcp://{}", echo.addr)],
        "idle_timeout": 2,
        "max_connections": 5,
        "max_connections_per_ip": 3,
    }));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(echoes_from("127.0.0.1", app).expect("under the caps"));
    }
    assert!(
        echoes_from("127.0.0.1", app).is_none(),
        "a 4th from one address"
    );
    for _ in 0..2 {
        held.push(echoes_from("127.0.0.2", app).expect("another address"));
    }
    assert!(echoes_from("127.0.0.3", app).is_none(), "a 6th for the app");
    let refused = |limit: &str| {
        edge.metric(&format!(
            "burrow_edge_app_refused_total{{app=\"{id}\",limit=\"{limit}\"}}"
        ))
    };
    assert_eq!(refused("source_cap"), 1.0);
    assert_eq!(refused("app_cap"), 1.0);
    let log = edge.proc.log();
    assert_eq!(
        log.matches("app connection refused by a limit").count(),
        1,
        "one line per app per 10 s:\n{log}"
    );
    // Idle connections close after the app's idle_timeout (2 s), busy ones
    // stay: keep one busy past it.
    let mut busy = held.pop().unwrap();
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        echo_once(&mut busy, b"x");
        std::thread::sleep(Duration::from_millis(300));
    }
    for mut s in held {
        let took = time_to_close(&mut s, Duration::from_secs(5));
        assert!(
            took < Duration::from_secs(2),
            "closed {took:?} after the check"
        );
    }
    echo_once(&mut busy, b"still open");
    assert!(edge.metric("burrow_edge_app_idle_closed_total") >= 4.0);
    // Closed connections free their slots.
    assert!(echoes_from("127.0.0.3", app).is_some());
    // The limits are validated, naming the field.
    let f = dir.path().join("bad.json");
    std::fs::write(
        &f,
        serde_json::json!({"protocol": "tcp/1", "origin_direct": ["tcp://127.0.0.1:1"], "max_connections_per_ip": 0})
            .to_string(),
    )
    .unwrap();
    let err = edge
        .admin(&["app", "create", "--json", f.to_str().unwrap()])
        .unwrap_err();
    assert!(err.contains("max_connections_per_ip"), "{err}");
}

#[test]
fn apps_at_their_file_limit_leave_the_tunnel_endpoint_and_admin_api_working() {
    let dir = tempdir();
    // 600 descriptors: app flows and HTTP clients may hold 600 - 256 = 344
    // of them; a flow to a direct origin holds two.
    let edge = EdgeProc::start_with(
        dir.path(),
        "NRT",
        "edge.db",
        &["--http", "127.0.0.1:0"],
        Some(600),
    );
    let echo = Origin::start(util::echo);
    let port = free_port();
    let (_, app) = edge.create_app_json(&serde_json::json!({
        "protocol": format!("tcp/{port}"),
        "origin_direct": [format!("tcp://{}", echo.addr)],
    }));
    // 200 app clients from many addresses and 100 idle HTTP clients: more
    // than the budget allows.
    let mut held = Vec::new();
    for i in 0..300u32 {
        let src = format!("127.0.1.{}", 1 + i % 200);
        let to = if i % 3 == 2 {
            edge.http_addr.unwrap()
        } else {
            app
        };
        held.push(connect_from(src.parse().unwrap(), to));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The admin API and the tunnel endpoint still accept.
    let _c = edge.connected_tunnel("t", &["--url", &format!("tcp://{}", echo.addr)], 4);
    assert!(
        !edge.proc.log().contains("Too many open files"),
        "{}",
        edge.proc.log()
    );
    // The full budget is counted and said, per listener.
    assert!(edge.metric(r#"burrow_edge_listener_full_total{listener="app"}"#) >= 1.0);
    edge.proc
        .wait_log("no descriptor permit left", Duration::from_secs(5));
    // Once clients leave, waiting ones are served.
    held.truncate(10);
    let mut s = connect(app, Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    echo_once(&mut s, b"after");
}

#[test]
fn a_tunnel_app_flow_takes_one_descriptor_from_the_budget() {
    let dir = tempdir();
    // 600 descriptors: 344 for flows. A tunnel app's flow holds only the
    // client's socket, so 300 fit (counted at two each, 172 did).
    let edge = EdgeProc::start_with(dir.path(), "NRT", "edge.db", &[], Some(600));
    let echo = Origin::start(util::echo);
    let _c = edge.connected_tunnel("t", &["--url", &format!("tcp://{}", echo.addr)], 4);
    let port = free_port();
    let (_, app) = edge.create_app_json(&serde_json::json!({
        "protocol": format!("tcp/{port}"),
        "origin_tunnel": {"tunnel": "t", "hostname": "echo.example.com"},
        "max_connections_per_ip": 1000,
    }));
    let mut held = Vec::new();
    for i in 0..300u32 {
        let mut s = connect(app, Duration::from_secs(5));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        echo_once(&mut s, format!("flow {i}").as_bytes());
        held.push(s);
    }
    assert_eq!(
        edge.metric_or_zero(r#"burrow_edge_listener_full_total{listener="app"}"#),
        0.0
    );
}

/// Whether a TLS handshake to the HTTPS listener with SNI `host` succeeds
/// and verifies against `ca`.
fn tls_ok(https: SocketAddr, host: &str, ca: &str) -> bool {
    let resolve = format!("{host}:{}:127.0.0.1", https.port());
    std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
        ])
        .arg(format!("https://{host}:{}/", https.port()))
        .status()
        .unwrap()
        .success()
}

#[test]
fn sighup_reloads_certificates_and_never_ends_the_edge_or_quick() {
    use util::tls::{make_ca, make_cert};
    let dir = tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_ca(dir.path());
    make_cert(dir.path(), "a.example.com", &certs);
    make_cert(dir.path(), "c.example.com", &certs);
    let yaml = dir.path().join("edge.yaml");
    std::fs::write(&yaml, "grace-period: 2s\n").unwrap();
    let mut edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &[
            "--https",
            "127.0.0.1:0",
            "--cert-dir",
            certs.to_str().unwrap(),
            "--config",
            yaml.to_str().unwrap(),
        ],
    );
    let https = edge.https_addr.unwrap();
    assert!(tls_ok(https, "a.example.com", &ca));
    assert!(
        !tls_ok(https, "b.example.com", &ca),
        "no certificate for b yet"
    );
    make_cert(dir.path(), "b.example.com", &certs);
    std::fs::write(&yaml, "grace-period: 9s\nsession-log: s.jsonl\n").unwrap();
    edge.proc.signal("HUP");
    edge.proc
        .wait_log("cert-dir: reloaded (3 hostnames)", Duration::from_secs(10));
    assert!(tls_ok(https, "b.example.com", &ca), "b after SIGHUP");
    let log = edge.proc.log();
    assert!(
        log.contains("take effect after a restart") && log.contains("session-log"),
        "{log}"
    );
    assert_eq!(
        edge.proc.wait_exit(Duration::from_secs(1)),
        None,
        "SIGHUP ended the edge"
    );
    edge.admin(&["tunnel", "list"]).expect("still serving");

    let mut q = Proc::spawn(dir.path(), "quick", &["quick", "--hello-world"]);
    q.wait_line("Your quick tunnel is ready:", Duration::from_secs(30));
    q.signal("HUP");
    q.wait_log("quick has nothing to reload", Duration::from_secs(5));
    assert_eq!(
        q.wait_exit(Duration::from_secs(1)),
        None,
        "SIGHUP ended quick"
    );
}

#[test]
fn a_restarted_edge_gets_quic_back_not_a_fallback_to_http2() {
    let dir = tempdir();
    let listen = format!("127.0.0.1:{}", free_port());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let creds = edge.create_tunnel("t");
    let c = connector(
        dir.path(),
        "connector",
        &creds,
        &[
            "--url",
            "tcp://127.0.0.1:9",
            "--protocol",
            "auto",
            "--quic-fallback-after",
            "1s",
        ],
    );
    edge.wait_connections("t", 4, Duration::from_secs(20));
    // The edge goes away for longer than the QUIC idle timeout (10 s), so
    // the connector redials while it is down: every dial fails, QUIC and
    // TCP alike.
    drop(edge);
    c.wait_log("tunnel connection lost", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    // Rows of the killed edge's connections linger in the state for a
    // while: count only connections registered since the restart.
    let t = std::time::Instant::now();
    let conns = loop {
        let fresh: Vec<_> = edge
            .connections("t")
            .into_iter()
            .filter(|x| x["since"].as_u64().unwrap_or(0) >= restarted)
            .collect();
        if fresh.len() >= 4 {
            break fresh;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "{fresh:?}\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        conns.iter().all(|x| x["protocol"] == "quic"),
        "fell back although UDP was never blocked: {conns:?}\n{}",
        c.log()
    );
    assert!(!c.log().contains("UDP looks blocked"), "{}", c.log());
}

#[test]
fn small_holes_are_closed() {
    let dir = tempdir();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--egress-allow", "127.0.0.0/8"],
    );
    // Names that are path segments, emails that break paths, '+' ports.
    for (args, field) in [
        (vec!["tunnel", "create", "."], "name"),
        (vec!["tunnel", "create", ".."], "name"),
        (vec!["user", "add", "a/b@example.com"], "email"),
        (
            vec![
                "app",
                "create",
                "--protocol",
                "tcp/+5",
                "--origin",
                "tcp://127.0.0.1:5",
            ],
            "protocol",
        ),
    ] {
        let err = edge
            .admin(&args)
            .expect_err(&format!("{args:?} was accepted"));
        assert!(err.contains(field), "{args:?}: {err}");
    }
    // An oversized admin body is 413, not 400.
    let token = std::fs::read_to_string(&edge.token_file).unwrap();
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(80 * 1024));
    let (status, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token.trim()),
        &big,
    );
    assert_eq!(status, 413, "{body}");

    // A client proxy beyond loopback needs --allow-lan.
    edge.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, _) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let out = std::process::Command::new(BIN)
        .args([
            "client",
            "--credentials",
            creds.to_str().unwrap(),
            "--socks",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--socks") && err.contains("--allow-lan"),
        "{err}"
    );

    // One device's credentials used twice: the newer connection wins and
    // the older one is told why.
    let echo = Origin::start(util::echo);
    let (first, _) = start_client_named(dir.path(), "client-1", &creds);
    let (_second, socks2) = start_client_named(dir.path(), "client-2", &creds);
    first.wait_log("the same device connected again", Duration::from_secs(5));
    let mut s = socks_connect(&socks2, v4(echo.addr)).expect("the newer client works");
    echo_once(&mut s, b"second");
    assert!(
        edge.metric(r#"burrow_edge_revoked_connections_total{party="client",reason="superseded"}"#)
            >= 1.0
    );
}

#[test]
fn which_virtual_network_a_device_uses_is_policy_not_its_choice() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    edge.admin(&["user", "add", "ana@example.com", "--group", "eng"])
        .unwrap();
    edge.admin(&["user", "add", "bo@example.com", "--group", "sales"])
        .unwrap();
    edge.admin(&["vnet", "add", "lab", "--allow-group", "eng"])
        .unwrap();
    edge.admin(&["vnet", "add", "vault"]).unwrap();
    let (ana, _) = enroll_device(&edge, dir.path(), "ana@example.com", "ana");
    let (bo, _) = enroll_device(&edge, dir.path(), "bo@example.com", "bo");
    let run = |name: &str, creds: &Path, vnet: &str| {
        Proc::spawn(
            dir.path(),
            name,
            &[
                "client",
                "--credentials",
                creds.to_str().unwrap(),
                "--socks",
                "127.0.0.1:0",
                "--vnet",
                vnet,
            ],
        )
    };
    // Allowed by group: connects.
    let ana_lab = run("ana-lab", &ana, "lab");
    ana_lab.wait_line("SOCKS5 proxy:", Duration::from_secs(20));
    // Not in the group, a vnet nobody is allowed, an unknown vnet: refused
    // with the reason.
    for (name, creds, vnet, why) in [
        ("bo-lab", &bo, "lab", "may not use virtual network 'lab'"),
        (
            "ana-vault",
            &ana,
            "vault",
            "may not use virtual network 'vault'",
        ),
        (
            "ana-nope",
            &ana,
            "nope",
            "virtual network 'nope' does not exist",
        ),
    ] {
        let mut p = run(name, creds, vnet);
        let code = p.wait_exit(Duration::from_secs(20));
        assert!(matches!(code, Some(c) if c != 0), "{name}: exit {code:?}");
        assert!(p.log().contains(why), "{name}: {}", p.log());
    }
    // Taking the group's access away disconnects the client already on it.
    edge.admin(&["vnet", "allow", "lab", "--user", "bo@example.com"])
        .unwrap();
    ana_lab.wait_log(
        "may no longer use its virtual network",
        Duration::from_secs(5),
    );
    assert_eq!(
        edge.metric(
            r#"burrow_edge_revoked_connections_total{party="client",reason="vnet_access"}"#
        ),
        1.0
    );
}

#[test]
fn a_revocation_made_through_one_edge_ends_sessions_on_another_sharing_the_state() {
    let dir = tempdir();
    let a = EdgeProc::start(dir.path(), "NRT", "shared.db", &[]);
    let b = EdgeProc::start(
        dir.path(),
        "KIX",
        "shared.db",
        &[
            "--app-address",
            "127.0.0.2",
            "--egress-allow",
            "127.0.0.0/8",
        ],
    );
    let echo = Origin::start(util::echo);
    a.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, device) = enroll_device(&a, dir.path(), "ana@example.com", "ana");
    // The client connects to B; the revocation is made through A.
    let at_b = b.tunnel_addr.to_string();
    let c = ClientProc::start(dir.path(), "client", &creds, &["--edge", &at_b]);
    let (_client, socks) = (c.proc, c.socks);
    let mut s = socks_connect(&socks, v4(echo.addr)).unwrap();
    echo_once(&mut s, b"via KIX");
    a.admin(&["device", "revoke", &device]).unwrap();
    let took = time_to_close(&mut s, Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    b.proc
        .wait_log("the device was revoked", Duration::from_secs(5));
}

/// An eyeball without the rule's service token cannot make the connector
/// dial a TCP-stream origin (`burrow access`'s rules): refused with 403
/// before any origin connection, however the upgrade is dressed (a wrong
/// secret, a right id with no secret, a JWT with no keys configured); and
/// a peer's oversized WebSocket message ends its stream instead of being
/// held (unit test in `transport::ws_tcp`).
#[test]
fn a_tcp_stream_rule_with_a_service_token_dials_nothing_for_strangers() {
    use sha2::Digest;
    let dir = tempdir();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let hash = hex::encode(sha2::Sha256::digest(b"the-secret"));
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "ingress:\n  - hostname: ssh.example.com\n    service: ssh://{}\n    originRequest:\n      access:\n        required: true\n        serviceTokens:\n          - {{clientId: id1.access, clientSecretSha256: {hash}}}\n  - service: http_status:404\n",
            origin.addr
        ),
    )
    .unwrap();
    let _c = edge.connected_tunnel("t", &["--config", cfg.to_str().unwrap()], 1);
    edge.admin(&["route", "dns", "t", "ssh.example.com"])
        .expect("route dns");
    let upgrade = |extra: &str| {
        let mut s = connect(edge.http_addr.unwrap(), Duration::from_secs(5));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: ssh.example.com\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).into_owned()
    };
    for extra in [
        "",
        "CF-Access-Client-Id: id1.access\r\nCF-Access-Client-Secret: wrong\r\n",
        "CF-Access-Client-Id: id1.access\r\n",
        "CF-Access-Client-Id: other.access\r\nCF-Access-Client-Secret: the-secret\r\n",
        "Cf-Access-Jwt-Assertion: e30.e30.e30\r\n",
    ] {
        assert_eq!(upgrade(extra), "HTTP/1.1 403", "{extra:?}");
    }
    assert_eq!(origin.count(), 0, "the origin was dialed for a stranger");
    // The right token: 101, and the origin is dialed once.
    assert_eq!(
        upgrade("CF-Access-Client-Id: id1.access\r\nCF-Access-Client-Secret: the-secret\r\n"),
        "HTTP/1.1 101"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(origin.count(), 1);
}
