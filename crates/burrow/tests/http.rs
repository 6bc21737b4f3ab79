//! HTTP through the tunnel: the edge's public listeners, hostname routes,
//! the connector's per-request ingress matching, streaming and upgrades.
#![allow(missing_docs)]

mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;
use util::httporigin::{pattern_bytes, HttpOrigin};
use util::*;

/// `curl` against the edge; returns (status, body, whether the transfer
/// ended cleanly, else curl's stderr). `extra` goes before the URL
/// (headers, data, ...).
fn curl_run(url: &str, extra: &[&str]) -> (u16, String, Result<(), String>) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let ended = if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    (code.trim().parse().unwrap_or(0), body.to_owned(), ended)
}

fn get(edge: &EdgeProc, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let (status, body, _) = get_run(edge, host, path, extra);
    (status, body)
}

/// `get`, with whether the transfer ended cleanly.
fn get_run(
    edge: &EdgeProc,
    host: &str,
    path: &str,
    extra: &[&str],
) -> (u16, String, Result<(), String>) {
    let url = format!("http://{}{path}", edge.http_addr.unwrap());
    let h = format!("Host: {host}");
    let mut args = vec!["-H", h.as_str()];
    args.extend_from_slice(extra);
    curl_run(&url, &args)
}

/// An edge with `--http`, a tunnel `t` whose connector runs `config`, and
/// routes for `hosts`.
fn setup(dir: &Path, config: &str, hosts: &[&str]) -> (EdgeProc, Proc) {
    let edge = EdgeProc::start(dir, "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let c = edge.connected_tunnel("t", &["--config", cfg.to_str().unwrap()], 1);
    for h in hosts {
        edge.admin(&["route", "dns", "t", h]).expect("route dns");
    }
    (edge, c)
}

#[test]
fn hostnames_paths_and_wildcards_route_through_the_tunnel() {
    let dir = tempdir();
    let (a, b, c) = (
        HttpOrigin::start("A"),
        HttpOrigin::start("B"),
        HttpOrigin::start("C"),
    );
    let sock = dir.path().join("origin.sock");
    HttpOrigin::start_unix("U", &sock);
    let config = format!(
        "ingress:\n\
         \x20 - hostname: a.example.com\n    path: ^/special\n    service: http://{}\n\
         \x20 - hostname: a.example.com\n    service: http://{}\n\
         \x20 - hostname: \"*.b.example.com\"\n    service: http://{}\n\
         \x20 - hostname: hello.example.com\n    service: hello_world\n\
         \x20 - hostname: unix.example.com\n    service: unix:{}\n\
         \x20 - service: http_status:404\n",
        c.addr,
        a.addr,
        b.addr,
        sock.display()
    );
    let (edge, mut connector) = setup(
        dir.path(),
        &config,
        &[
            "a.example.com",
            "*.b.example.com",
            "hello.example.com",
            "other.example.com",
            "unix.example.com",
        ],
    );

    let (st, body) = get(&edge, "a.example.com", "/index.html?q=1", &[]);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("origin A\n"), "{body}");
    assert!(body.contains("path /index.html?q=1\n"), "{body}");
    assert!(body.contains("host a.example.com\n"), "{body}");
    assert!(body.contains("xff 127.0.0.1\n"), "{body}");
    assert!(body.contains("proto http\n"), "{body}");
    assert!(body.contains("ip 127.0.0.1\n"), "{body}");
    // The path rule picks origin C.
    let (st, body) = get(&edge, "a.example.com", "/special/x", &[]);
    assert_eq!((st, body.lines().next()), (200, Some("origin C")));
    // Wildcard route and wildcard rule.
    let (st, body) = get(&edge, "x.y.b.example.com", "/", &[]);
    assert_eq!((st, body.lines().next()), (200, Some("origin B")));
    // Built-in services.
    let (st, body) = get(&edge, "hello.example.com", "/", &[]);
    assert_eq!(st, 200);
    assert!(body.contains("Hello from burrow"), "{body}");
    // A unix: socket origin.
    let (st, body) = get(&edge, "unix.example.com", "/sock", &[]);
    assert_eq!((st, body.lines().next()), (200, Some("origin U")), "{body}");
    let (st, _) = get(&edge, "other.example.com", "/", &[]);
    assert_eq!(st, 404, "the connector's http_status:404 catch-all");
    // No route on the edge: 404 from the edge itself.
    for host in ["b.example.com", "unknown.example.org"] {
        let (st, body) = get(&edge, host, "/", &[]);
        assert_eq!(st, 404, "{host}");
        assert!(body.contains("No tunnel serves this hostname"), "{body}");
    }
    // Clients cannot forge the connecting IP; X-Forwarded-For is appended.
    let (_, body) = get(
        &edge,
        "a.example.com",
        "/",
        &[
            "-H",
            "Burrow-Connecting-IP: 192.0.2.1",
            "-H",
            "X-Forwarded-For: 198.51.100.7",
        ],
    );
    assert!(body.contains("ip 127.0.0.1\n"), "{body}");
    assert!(body.contains("xff 198.51.100.7, 127.0.0.1\n"), "{body}");
    // HTTP/2 cleartext (prior knowledge) works the same.
    let (st, body) = get(&edge, "a.example.com", "/h2", &["--http2-prior-knowledge"]);
    assert_eq!((st, body.lines().next()), (200, Some("origin A")));

    // Routes are listed and removable.
    let list = edge.admin(&["route", "list"]).unwrap();
    assert!(list.contains("*.b.example.com\tt\t"), "{list}");
    edge.admin(&["route", "delete", "*.b.example.com"]).unwrap();
    assert_eq!(get(&edge, "x.b.example.com", "/", &[]).0, 404);
    let err = edge
        .admin(&["route", "dns", "t", "a.example.com"])
        .unwrap_err();
    assert!(
        err.contains("hostname") && err.contains("routed already"),
        "{err}"
    );
    let err = edge
        .admin(&["route", "dns", "nope", "z.example.com"])
        .unwrap_err();
    assert!(err.contains("tunnel") && err.contains("not found"), "{err}");

    // Without a connector: 502 with a page, and the reason in the log.
    connector.signal("TERM");
    connector.wait_exit(Duration::from_secs(15));
    let (st, body) = get(&edge, "a.example.com", "/", &[]);
    assert_eq!(st, 502, "{body}");
    assert!(body.contains("No connector"), "{body}");
    let log = edge
        .proc
        .wait_log("no connector is connected", Duration::from_secs(5));
    assert!(log.contains("HTTP request failed"), "{log}");
    // Requests are counted by status class.
    let count = |c: &str| edge.metric(&format!(r#"burrow_edge_http_requests_total{{code="{c}"}}"#));
    assert_eq!(count("2xx"), 7.0);
    assert_eq!(count("4xx"), 4.0);
    assert_eq!(count("5xx"), 1.0);
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn large_bodies_stream_both_ways_and_websockets_upgrade() {
    const SIZE: usize = 64 << 20;
    let dir = tempdir();
    let origin = HttpOrigin::start("A");
    let config = format!(
        "ingress:\n  - hostname: a.example.com\n    service: http://{}\n  - service: http_status:404\n",
        origin.addr
    );
    let (edge, connector) = setup(dir.path(), &config, &["a.example.com"]);
    let (edge_pid, conn_pid) = (edge.proc.child.id(), connector.child.id());
    // Warm up, then measure memory across the big transfers.
    assert_eq!(get(&edge, "a.example.com", "/", &[]).0, 200);
    let before = rss_kb(edge_pid) + rss_kb(conn_pid);

    // 64 MiB download, streamed (the origin sends 64 KiB chunks).
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "120", "-H", "Host: a.example.com"])
        .arg(format!(
            "http://{}/download?bytes={SIZE}",
            edge.http_addr.unwrap()
        ))
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), SIZE);
    assert_eq!(sha256(&out.stdout), sha256(&pattern_bytes(0, SIZE)));

    // 64 MiB upload, streamed; the origin answers with its checksum.
    let file = dir.path().join("upload.bin");
    let data = pattern_bytes(7, SIZE);
    std::fs::write(&file, &data).unwrap();
    let at = format!("@{}", file.display());
    let (st, body) = get(
        &edge,
        "a.example.com",
        "/upload",
        &[
            "--data-binary",
            &at,
            "-H",
            "Content-Type: application/octet-stream",
        ],
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body, format!("{} {SIZE}", hex::encode(sha256(&data))));

    // Neither end held a body in memory: one held whole would add 64 MiB.
    // What may be in flight is bounded by the 6 MiB QUIC stream window at
    // each end, plus the allocator's per-thread caches (measured 24-31 MiB
    // on 2 cores).
    let growth = (rss_kb(edge_pid) + rss_kb(conn_pid)).saturating_sub(before);
    eprintln!("edge + connector RSS growth over 2 x 64 MiB: {growth} KB");
    assert!(
        growth < 48 * 1024,
        "edge + connector RSS grew by {growth} KB"
    );

    // Trailers pass through both legs (asked for with TE: trailers).
    let mut s = connect(edge.http_addr.unwrap(), Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /trailers HTTP/1.1\r\nHost: a.example.com\r\nTE: trailers\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(raw.contains("transfer-encoding: chunked"), "{raw}");
    let body_at = raw.find("first ").expect("body");
    let trailer_at = raw.find("x-checksum: abc123").expect("trailer");
    assert!(trailer_at > body_at, "{raw}");

    // WebSocket-style upgrade: 101, then bytes both ways.
    let (mut s, head) = websocket_upgrade(&edge, "a.example.com");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"ping"[..], &[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9][..]] {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    drop(connector);
}

#[test]
fn disable_chunked_encoding_sends_bodies_with_a_length() {
    let dir = tempdir();
    let origin = HttpOrigin::start("A");
    let config = format!(
        "ingress:\n  - hostname: wsgi.example.com\n    service: http://{a}\n    originRequest:\n      disableChunkedEncoding: true\n  - hostname: plain.example.com\n    service: http://{a}\n  - service: http_status:404\n",
        a = origin.addr
    );
    let (edge, connector) = setup(
        dir.path(),
        &config,
        &["wsgi.example.com", "plain.example.com"],
    );
    let file = dir.path().join("body.bin");
    let small = pattern_bytes(3, 300_000);
    std::fs::write(&file, &small).unwrap();
    let at = format!("@{}", file.display());
    let chunked = ["--data-binary", &at, "-H", "Transfer-Encoding: chunked"];
    let sum = hex::encode(sha256(&small));

    // The client sends chunked; the WSGI-style rule's origin gets a length.
    let (st, body) = get(&edge, "wsgi.example.com", "/upload?framing", &chunked);
    assert_eq!((st, body), (200, format!("{sum} 300000 length=300000")));
    // Without the option the body streams through chunked.
    let (st, body) = get(&edge, "plain.example.com", "/upload?framing", &chunked);
    assert_eq!((st, body), (200, format!("{sum} 300000 chunked")));
    // A body with a length is passed on as it is under both rules.
    let (st, body) = get(
        &edge,
        "wsgi.example.com",
        "/upload?framing",
        &["--data-binary", &at],
    );
    assert_eq!((st, body), (200, format!("{sum} 300000 length=300000")));

    // Over the 16 MiB bound: 413 with the reason, and nothing reaches the origin.
    std::fs::write(&file, pattern_bytes(0, (16 << 20) + 1)).unwrap();
    let (st, body) = get(&edge, "wsgi.example.com", "/upload?framing", &chunked);
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("disableChunkedEncoding"), "{body}");
    // The tunnel still serves.
    let (st, _) = get(&edge, "plain.example.com", "/", &[]);
    assert_eq!(st, 200);
    drop(connector);
}

/// One `POST /upload` of `body` with `Connection: close`; whether the
/// origin answered 200 with the body's digest and length.
fn raw_post(addr: std::net::SocketAddr, host: &str, body: &[u8]) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    let want = format!("{} {}", hex::encode(sha256(body)), body.len());
    resp.starts_with("HTTP/1.1 200") && resp.contains(&want)
}

/// One `GET /` with `Connection: close`; the status code (0 on failure).
fn raw_get(addr: std::net::SocketAddr, host: &str) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp)
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn rolling_restart_of_two_replicas_fails_no_request_over_quic() {
    rolling_restart("quic");
}

#[test]
fn rolling_restart_of_two_replicas_fails_no_request_over_http2() {
    rolling_restart("http2");
}

/// Two replicas over `protocol`, restarted one after the other under a
/// GET/POST loop; no request may fail.
fn rolling_restart(protocol: &str) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempdir();
    let origin = HttpOrigin::start("A");
    let config = format!(
        "ingress:\n  - hostname: a.example.com\n    service: http://{}\n  - service: http_status:404\n",
        origin.addr
    );
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let creds = edge.create_tunnel("t");
    edge.admin(&["route", "dns", "t", "a.example.com"])
        .expect("route dns");
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, &config).unwrap();
    let cfg = cfg.to_str().unwrap().to_owned();
    let start = |name: &str| {
        connector(
            dir.path(),
            name,
            &creds,
            &["--config", &cfg, "--protocol", protocol],
        )
    };
    let mut replicas = [start("replica-1"), start("replica-2")];
    edge.wait_connections("t", 8, Duration::from_secs(20));

    // A steady, bounded request loop from 4 clients: GETs and POSTs with
    // bodies of up to 16 KiB, each checked by the origin's digest.
    let addr = edge.http_addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(90);
                let mut seed = c + 1;
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    let size = usize::from(u16::from_be_bytes({
                        let r = pattern(&mut seed, 2);
                        [r[0], r[1]]
                    })) % (16 * 1024 + 1);
                    let good = if size % 2 == 0 {
                        raw_get(addr, "a.example.com") == 200
                    } else {
                        raw_post(addr, "a.example.com", &pattern(&mut seed, size))
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Restart each replica in turn: SIGTERM, wait for it to drain and exit,
    // start it again, wait until it is registered.
    for (i, replica) in replicas.iter_mut().enumerate() {
        replica.signal("TERM");
        assert_eq!(replica.wait_exit(Duration::from_secs(20)), Some(0));
        *replica = start(&format!("replica-{}-again", i + 1));
        edge.wait_connections("t", 8, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("rolling restart over {protocol}: {ok} requests answered, {failed} failed");
    assert!(ok > 100, "only {ok} requests went through");
    let log = edge.proc.log();
    if failed > 0 {
        let _ = std::fs::write("/tmp/rolling-edge.log", &log);
    }
    let reasons: Vec<&str> = log.lines().filter(|l| l.contains("failed")).collect();
    assert_eq!(
        failed, 0,
        "{failed} requests failed during the rolling restart: {reasons:#?}"
    );
}

#[test]
fn config_reload_applies_new_rules_without_cutting_open_requests() {
    const SIZE: usize = 48 << 20;
    let dir = tempdir();
    let (a, b) = (HttpOrigin::start("A"), HttpOrigin::start("B"));
    let rules = |extra: &str| {
        format!(
            "ingress:\n  - hostname: a.example.com\n    service: http://{}\n{extra}  - service: http_status:404\n",
            a.addr
        )
    };
    let (edge, connector) = setup(
        dir.path(),
        &rules(""),
        &["a.example.com", "new.example.com"],
    );
    assert_eq!(get(&edge, "new.example.com", "/", &[]).0, 404);

    // A slow download (about 4 s) runs across the reloads.
    let url = format!("http://{}/download?bytes={SIZE}", edge.http_addr.unwrap());
    let download = std::thread::spawn(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "--limit-rate",
                "12M",
                "-H",
                "Host: a.example.com",
            ])
            .arg(url)
            .output()
            .unwrap()
            .stdout
    });
    std::thread::sleep(Duration::from_millis(300));

    // A valid change is picked up by the file watcher.
    let cfg = dir.path().join("config.yml");
    let new_rule = format!(
        "  - hostname: new.example.com\n    service: http://{}\n",
        b.addr
    );
    std::fs::write(&cfg, rules(&new_rule)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, body) = get(&edge, "new.example.com", "/", &[]);
        if st == 200 && body.starts_with("origin B") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new rule not applied: {st} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An invalid file is refused, with the reason, and the rules stay.
    std::fs::write(
        &cfg,
        "ingress:\n  - service: http_status:404\n  - hostname: x.example.com\n    service: hello_world\n",
    )
    .unwrap();
    let log = connector.wait_log("config reload rejected", Duration::from_secs(10));
    assert!(log.contains("config reload rejected"), "{log}");
    assert!(log.contains("ingress"), "{log}");
    assert!(get(&edge, "new.example.com", "/", &[])
        .1
        .starts_with("origin B"));
    // SIGHUP reloads too.
    std::fs::write(&cfg, rules("")).unwrap();
    connector.signal("HUP");
    connector.wait_log("trigger=\"SIGHUP\"", Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&edge, "new.example.com", "/", &[]).0 != 404 {
        assert!(std::time::Instant::now() < deadline, "rule not removed");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The download that started under the first rules completed intact.
    let got = download.join().unwrap();
    assert_eq!(got.len(), SIZE);
    assert_eq!(sha256(&got), sha256(&pattern_bytes(0, SIZE)));
}

#[test]
fn https_origins_use_ca_pool_server_name_and_no_tls_verify() {
    use util::tls::{make_ca, make_cert, s_server};
    let dir = tempdir();
    let ca = make_ca(dir.path());
    make_cert(dir.path(), "origin.internal", dir.path());
    // openssl s_server -www answers every request with a status page.
    let (_tls, tls_addr) = s_server(
        dir.path(),
        "origin.internal",
        &dir.path().join("s_server.log"),
        "-www",
    );
    let plain = HttpOrigin::start("A");
    let config = format!(
        "originRequest:\n  connectTimeout: 5s\n\
         ingress:\n\
         \x20 - hostname: ca.example.com\n    service: https://{tls_addr}\n\
         \x20   originRequest:\n      caPool: {ca}\n      originServerName: origin.internal\n\
         \x20 - hostname: noverify.example.com\n    service: https://{tls_addr}\n\
         \x20   originRequest:\n      noTLSVerify: true\n\
         \x20 - hostname: strict.example.com\n    service: https://{tls_addr}\n\
         \x20 - hostname: host.example.com\n    service: http://{}\n\
         \x20   originRequest:\n      httpHostHeader: internal.local\n\
         \x20 - service: http_status:404\n",
        plain.addr
    );
    let (edge, connector) = setup(
        dir.path(),
        &config,
        &[
            "ca.example.com",
            "noverify.example.com",
            "strict.example.com",
            "host.example.com",
        ],
    );
    for host in ["ca.example.com", "noverify.example.com"] {
        let (st, body) = get(&edge, host, "/", &[]);
        assert_eq!(st, 200, "{host}: {body}");
        assert!(body.contains("s_server"), "{host}: {body}");
    }
    // Without caPool the test CA is unknown (and the IP is not the
    // certificate's name): 502, with the reason in the connector's log.
    let (st, body) = get(&edge, "strict.example.com", "/", &[]);
    assert_eq!(st, 502, "{body}");
    let log = connector.wait_log("answered 502 Bad Gateway", Duration::from_secs(5));
    assert!(log.contains("certificate"), "{log}");
    // httpHostHeader replaces Host toward the origin.
    let (st, body) = get(&edge, "host.example.com", "/", &[]);
    assert_eq!(st, 200);
    assert!(body.contains("host internal.local\n"), "{body}");
}

/// Serves `body` as `application/json` to every request (a JWKS URL).
fn json_server(body: String) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn access_tokens_are_checked_before_the_origin() {
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let dir = tempdir();
    // An ES256 key (rcgen) and an RS256 key (openssl), published as a JWKS.
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = ec.public_key_raw();
    let rsa_pem = dir.path().join("rsa.pem");
    util::tls::openssl(&["genrsa", "-out", rsa_pem.to_str().unwrap(), "2048"]);
    let modulus = std::process::Command::new("openssl")
        .args([
            "rsa",
            "-in",
            rsa_pem.to_str().unwrap(),
            "-noout",
            "-modulus",
        ])
        .output()
        .unwrap();
    let modulus = String::from_utf8(modulus.stdout).unwrap();
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let jwks = serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
         "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        {"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": b64(&n), "e": "AQAB"},
    ]})
    .to_string();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let jwks_url = format!("http://{}/certs", json_server(jwks.clone()));

    let origin = HttpOrigin::start("A");
    let config = format!(
        "ingress:\n\
         \x20 - hostname: file.example.com\n    service: http://{o}\n\
         \x20   originRequest:\n      access: {{required: true, teamName: test, audTag: [aud-1, aud-2], jwks: {f}}}\n\
         \x20 - hostname: url.example.com\n    service: http://{o}\n\
         \x20   originRequest:\n      access: {{required: true, audTag: aud-1, jwks: \"{u}\"}}\n\
         \x20 - hostname: noaud.example.com\n    service: http://{o}\n\
         \x20   originRequest:\n      access: {{required: true, teamName: test, jwks: {f}}}\n\
         \x20 - service: http_status:404\n",
        o = origin.addr,
        f = jwks_file.display(),
        u = jwks_url,
    );
    let (edge, connector) = setup(
        dir.path(),
        &config,
        &["file.example.com", "url.example.com", "noaud.example.com"],
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ec_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let rsa_key = EncodingKey::from_rsa_pem(&std::fs::read(&rsa_pem).unwrap()).unwrap();
    let token = |alg: Algorithm, kid: &str, key: &EncodingKey, aud: &str, exp: i64, nbf: i64| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        let claims =
            serde_json::json!({"aud": aud, "exp": exp, "nbf": nbf, "sub": "user@example.com"});
        encode(&h, &claims, key).unwrap()
    };
    let ok_ec = token(
        Algorithm::ES256,
        "ec1",
        &ec_key,
        "aud-2",
        now + 300,
        now - 10,
    );
    let ok_rsa = token(
        Algorithm::RS256,
        "rsa1",
        &rsa_key,
        "aud-1",
        now + 300,
        now - 10,
    );
    let expired = token(
        Algorithm::ES256,
        "ec1",
        &ec_key,
        "aud-1",
        now - 600,
        now - 900,
    );
    let early = token(
        Algorithm::ES256,
        "ec1",
        &ec_key,
        "aud-1",
        now + 900,
        now + 600,
    );
    let wrong_aud = token(
        Algorithm::ES256,
        "ec1",
        &ec_key,
        "someone-else",
        now + 300,
        now - 10,
    );
    // Signed by another key but claiming kid ec1: the signature fails.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other_key = EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap();
    let forged = token(
        Algorithm::ES256,
        "ec1",
        &other_key,
        "aud-1",
        now + 300,
        now - 10,
    );

    let with = |host: &str, header: &str, t: &str| {
        let h = format!("{header}: {t}");
        get(&edge, host, "/", &["-H", h.as_str()])
    };
    // No audTag (cloudflared accepts the config): no token is good enough.
    let (st, body) = with("noaud.example.com", "Cf-Access-Jwt-Assertion", &ok_rsa);
    assert_eq!(st, 403, "no audience tag: refused: {body}");
    for host in ["file.example.com", "url.example.com"] {
        let (st, body) = with(host, "Cf-Access-Jwt-Assertion", &ok_rsa);
        assert_eq!(st, 200, "{host} RS256: {body}");
        assert!(body.starts_with("origin A"));
        let refused = [
            ("expired", expired.as_str()),
            ("not yet valid", early.as_str()),
            ("wrong audience", wrong_aud.as_str()),
            ("bad signature", forged.as_str()),
            ("garbage", "not.a.token"),
        ];
        for (what, t) in refused {
            let (st, body) = with(host, "Cf-Access-Jwt-Assertion", t);
            assert_eq!(st, 403, "{host} {what}: {body}");
            assert!(!body.contains("origin A"), "{what} reached the origin");
        }
        let (st, body) = get(&edge, host, "/", &[]);
        assert_eq!(st, 403, "{host} without a token");
        assert!(body.contains("no access token"), "{body}");
    }
    // ES256, and burrow's own header name.
    let (st, _) = with("file.example.com", "Burrow-Access-Jwt", &ok_ec);
    assert_eq!(st, 200);
    let (st, _) = with("url.example.com", "Cf-Access-Jwt-Assertion", &ok_ec);
    assert_eq!(st, 403, "aud-2 is not accepted on url.example.com");
    let log = connector.wait_log(
        "request refused by the access check",
        Duration::from_secs(5),
    );
    assert!(
        log.contains("ExpiredSignature") || log.contains("expired"),
        "{log}"
    );
}

#[test]
fn the_https_listener_serves_http2_and_http1_with_sni_certificates() {
    use util::tls::{make_ca, make_cert};
    let dir = tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_ca(dir.path());
    make_cert(dir.path(), "a.example.com", &certs);
    make_cert(dir.path(), "b.example.com", &certs);
    let origin = HttpOrigin::start("A");
    let cert_dir = certs.to_string_lossy().into_owned();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--https", "127.0.0.1:0", "--cert-dir", &cert_dir],
    );
    let url = format!("http://{}", origin.addr);
    let _c = edge.connected_tunnel("t", &["--url", &url], 1);
    for h in ["a.example.com", "b.example.com"] {
        edge.admin(&["route", "dns", "t", h]).expect("route dns");
    }
    let port = edge.https_addr.unwrap().port();
    for (host, version, want) in [
        ("a.example.com", "--http2", "HTTP/2"),
        ("b.example.com", "--http1.1", "HTTP/1.1"),
    ] {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-i",
                version,
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
            ])
            .arg(format!("https://{host}:{port}/tls?x=1"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(want), "{host} over {version}: {text}");
        assert!(text.contains("origin A\n"), "{text}");
        assert!(text.contains("proto https\n"), "{text}");
        assert!(text.contains(&format!("host {host}")), "{text}");
        assert!(text.contains("path /tls?x=1\n"), "{text}");
    }
}

/// A raw HTTP/1.1 origin answering by path with every body framing (for
/// the connector's lean path, which passes answers on as they are framed).
fn framings_origin(mut s: std::net::TcpStream) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
                buf.drain(..i + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let fixed = |b: &str| format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len());
        let resp = match path {
            "/length" if method == "HEAD" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".into(),
            "/length" => fixed("hello"),
            "/chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                           5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
                .into(),
            "/interim" => "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                           HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .into(),
            "/empty" => "HTTP/1.1 204 No Content\r\n\r\n".into(),
            "/host" => fixed(&header("host").unwrap_or_default()),
            "/echo" => fixed(&format!(
                "{}:{}",
                body.len(),
                String::from_utf8_lossy(&body)
            )),
            "/until-close" => {
                let _ =
                    s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
                return;
            }
            "/bye" => {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
                );
                return;
            }
            "/garbage" => {
                let _ = s.write_all(b"SPLAT\r\n\r\n");
                return;
            }
            "/big" => {
                let data = pattern_bytes(7, 4 << 20);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for c in data.chunks(7777) {
                    let _ = write!(s, "{:x}\r\n", c.len());
                    let _ = s.write_all(c);
                    let _ = s.write_all(b"\r\n");
                }
                "0\r\n\r\n".into()
            }
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
        };
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Sends `req` on `s` and reads one answer with a Content-Length: (status, body).
fn exchange(s: &mut std::net::TcpStream, req: &str) -> (u16, String) {
    if !req.is_empty() {
        s.write_all(req.as_bytes()).unwrap();
    }
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "answer cut: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (
        head[9..12].parse().unwrap(),
        String::from_utf8(body).unwrap(),
    )
}

/// `get`, but the transfer must also end cleanly (curl exits 0 within 10 s).
fn get_whole(edge: &EdgeProc, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let mut args = vec!["--max-time", "10"];
    args.extend_from_slice(extra);
    let (status, body, ended) = get_run(edge, host, path, &args);
    if let Err(e) = ended {
        panic!("{path}: {e}");
    }
    (status, body)
}

#[test]
fn bodiless_requests_take_the_lean_path_with_every_answer_framing() {
    let dir = tempdir();
    let origin = Origin::start(framings_origin);
    let config = format!(
        "ingress:\n\
         \x20 - hostname: renamed.example.com\n    service: http://{0}\n    originRequest:\n      httpHostHeader: internal.example\n\
         \x20 - hostname: f.example.com\n    service: http://{0}\n\
         \x20 - service: http_status:404\n",
        origin.addr
    );
    let (edge, connector) = setup(
        dir.path(),
        &config,
        &["f.example.com", "renamed.example.com"],
    );
    let f = |path: &str| get_whole(&edge, "f.example.com", path, &[]);
    assert_eq!(f("/length"), (200, "hello".into()));
    assert_eq!(f("/chunked"), (200, "hello world".into()));
    assert_eq!(f("/interim"), (200, "ok".into()));
    assert_eq!(f("/empty"), (204, String::new()));
    assert_eq!(f("/until-close"), (200, "until close".into()));
    assert_eq!(f("/bye"), (200, "bye".into()));
    assert_eq!(
        f("/length"),
        (200, "hello".into()),
        "after an origin's Connection: close"
    );
    let (code, body) = f("/garbage");
    assert_eq!(code, 502, "{body}");
    // The client gets a request id; the connector's log has the detail.
    let id = body.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        body.contains("Request ID") && !body.contains("invalid answer"),
        "{body}"
    );
    let log = connector.wait_log(&id, Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains(&id))
        .expect("request id logged");
    assert!(line.contains("invalid answer"), "{line}");
    let (code, head) = get_whole(&edge, "f.example.com", "/length", &["-I"]);
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 5"),
        "{head}"
    );
    assert_eq!(
        get_whole(&edge, "renamed.example.com", "/host", &[]),
        (200, "internal.example".into())
    );

    // A 4 MiB chunked answer arrives whole.
    let out = dir.path().join("big");
    let status = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "-H", "Host: f.example.com", "-o"])
        .arg(&out)
        .arg(format!("http://{}/big", edge.http_addr.unwrap()))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        sha256(&std::fs::read(&out).unwrap()),
        sha256(&pattern_bytes(7, 4 << 20))
    );

    // Origin connections are kept and reused: 20 more requests (each on a
    // new client connection) open at most one more.
    let before = origin.count();
    for _ in 0..20 {
        assert_eq!(f("/length"), (200, "hello".into()));
    }
    assert!(
        origin.count() <= before + 1,
        "{} -> {}",
        before,
        origin.count()
    );

    // One client connection: bodiless requests, then one with a body (hyper
    // serves the stream from there on), then bodiless again.
    let mut s = std::net::TcpStream::connect(edge.http_addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = |m: &str, p: &str, b: &str| {
        format!(
            "{m} {p} HTTP/1.1\r\nHost: f.example.com\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
    };
    assert_eq!(
        exchange(&mut s, &req("GET", "/length", "")),
        (200, "hello".into())
    );
    assert_eq!(
        exchange(&mut s, &req("POST", "/echo", "abc")),
        (200, "3:abc".into())
    );
    assert_eq!(
        exchange(&mut s, &req("GET", "/length", "")),
        (200, "hello".into())
    );
    assert_eq!(
        exchange(&mut s, &req("DELETE", "/echo", "")),
        (200, "0:".into())
    );

    // The edge's lean path: pipelined requests are answered in order; a
    // `Connection` header cannot strip Host; `Connection: close` is
    // answered with it, then the connection closes.
    let mut s = std::net::TcpStream::connect(edge.http_addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let two = format!("{}{}", req("GET", "/length", ""), req("GET", "/host", ""));
    assert_eq!(exchange(&mut s, &two), (200, "hello".into()));
    assert_eq!(exchange(&mut s, ""), (200, "f.example.com".into()));
    s.write_all(b"GET /host HTTP/1.1\r\nHost: f.example.com\r\nConnection: host, close\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(
        rest.to_ascii_lowercase().contains("connection: close\r\n"),
        "{rest}"
    );
    assert!(rest.ends_with("\r\n\r\nf.example.com"), "{rest}");
    // What the lean path does not take, hyper answers as before.
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = |text: &str| {
        let mut s = std::net::TcpStream::connect(edge.http_addr.unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(text.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let out = raw(&format!(
        "GET /length HTTP/1.1\r\nHost: f.example.com\r\n{many}\r\n"
    ));
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let out = raw("GET /length HTTP/1.0\r\nHost: f.example.com\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.0 200") && out.ends_with("hello"),
        "{out}"
    );
    // Both lengths: hyper reads it as chunked and closes after (RFC 9112
    // 6.1), so nothing can be smuggled behind it.
    let out = raw("GET /length HTTP/1.1\r\nHost: f.example.com\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /bye HTTP/1.1\r\n\r\n");
    assert!(
        out.contains("connection: close\r\n") && out.ends_with("hello"),
        "{out}"
    );

    // HTTP/2 clients: hyper serves them, with every framing.
    let h2 = ["--http2-prior-knowledge"];
    let f2 = |path: &str| get_whole(&edge, "f.example.com", path, &h2);
    assert_eq!(f2("/length"), (200, "hello".into()));
    assert_eq!(f2("/chunked"), (200, "hello world".into()));
    assert_eq!(f2("/interim"), (200, "ok".into()));
    assert_eq!(f2("/empty"), (204, String::new()));
    assert_eq!(f2("/until-close"), (200, "until close".into()));
    assert_eq!(f2("/bye"), (200, "bye".into()));
    assert_eq!(f2("/garbage").0, 502);
    let (code, head) = get_whole(&edge, "f.example.com", "/length", &["-I", h2[0]]);
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 5"),
        "{head}"
    );
    // Many requests on one connection, each framing after another, then
    // all at once.
    let paths = [
        "/length",
        "/chunked",
        "/length",
        "/until-close",
        "/empty",
        "/length",
        "/bye",
        "/chunked",
        "/interim",
        "/length",
    ];
    let want: Vec<(u16, String)> = paths
        .iter()
        .map(|p| match *p {
            "/length" => (200, "hello".into()),
            "/chunked" => (200, "hello world".into()),
            "/until-close" => (200, "until close".into()),
            "/empty" => (204, String::new()),
            "/bye" => (200, "bye".into()),
            _ => (200, "ok".into()),
        })
        .collect();
    let addr = edge.http_addr.unwrap();
    assert_eq!(h2_gets(addr, "f.example.com", &paths, false), want);
    let many: Vec<&str> = paths.iter().cycle().take(60).copied().collect();
    let want_many: Vec<_> = want.iter().cycle().take(60).cloned().collect();
    for _ in 0..3 {
        assert_eq!(h2_gets(addr, "f.example.com", &many, true), want_many);
    }
    let base = format!("http://{addr}");
    // A 4 MiB chunked answer arrives whole over HTTP/2 too.
    let big2 = dir.path().join("big2");
    let status = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            h2[0],
            "-H",
            "Host: f.example.com",
            "-o",
        ])
        .arg(&big2)
        .arg(format!("{base}/big"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        sha256(&std::fs::read(&big2).unwrap()),
        sha256(&pattern_bytes(7, 4 << 20))
    );
    drop(connector);
}

/// GETs `paths` on one HTTP/2 connection (prior knowledge) to `addr`, one
/// after another or all at once: (status, body) of each, in order.
fn h2_gets(
    addr: std::net::SocketAddr,
    host: &str,
    paths: &[&str],
    at_once: bool,
) -> Vec<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let get = |path: String| {
            let send = send.clone();
            let uri = format!("http://{host}{path}");
            async move {
                let mut send = send.ready().await.unwrap();
                let req = http::Request::get(uri).body(()).unwrap();
                let (resp, _) = send.send_request(req, true).unwrap();
                let resp = resp.await.unwrap();
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let mut data = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                (status, String::from_utf8(data).unwrap())
            }
        };
        let timeout = Duration::from_secs(20);
        if at_once {
            let all = paths.iter().map(|p| get((*p).to_owned()));
            tokio::time::timeout(timeout, futures_util::future::join_all(all))
                .await
                .expect("answers within 20 s")
        } else {
            let mut out = Vec::new();
            for p in paths {
                let got = tokio::time::timeout(timeout, get((*p).to_owned())).await;
                out.push(got.expect("an answer within 20 s"));
            }
            out
        }
    })
}

/// Answers one request per connection (keep-alive, as far as the client
/// can tell), then closes it a moment later.
fn closes_when_idle(mut s: std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn kept_origin_connections_closed_by_the_origin_are_not_a_failure() {
    let dir = tempdir();
    let origin = Origin::start(closes_when_idle);
    let config = format!(
        "ingress:\n  - hostname: idle.example.com\n    service: http://{}\n  - service: http_status:404\n",
        origin.addr
    );
    let (edge, connector) = setup(dir.path(), &config, &["idle.example.com"]);
    for i in 0..30 {
        // Both: the close already seen (after the pause) and racing it.
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(60));
        }
        assert_eq!(
            get_whole(&edge, "idle.example.com", "/", &[]),
            (200, "ok".into()),
            "request {i}"
        );
    }
    assert!(origin.count() >= 30);
    drop(connector);
}

/// An origin that answers each request with the head it received (the
/// body read and dropped), one request per connection.
fn head_echo_origin() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).unwrap_or(0) != 1 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap_or(0));
                let mut body = vec![0u8; len];
                let _ = s.read_exact(&mut body);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    head.len()
                );
                let _ = s.write_all(answer.as_bytes());
                let _ = s.write_all(&head);
            });
        }
    });
    addr
}

/// The request line and the headers of a received head, names lowered,
/// sorted; `content-length` left out (only the POST has one).
fn head_lines(head: &str) -> (String, Vec<String>) {
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_owned();
    let mut headers: Vec<String> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or((l, ""));
            format!("{}: {}", n.trim().to_ascii_lowercase(), v.trim())
        })
        .filter(|l| !l.starts_with("content-length:"))
        .collect();
    headers.sort();
    (first, headers)
}

#[test]
fn the_lean_and_hyper_paths_forward_the_same_head() {
    let dir = tempdir();
    let origin = head_echo_origin();
    let config = format!("ingress:\n  - service: http://{origin}\n");
    let (edge, _connector) = setup(dir.path(), &config, &["heads.test"]);
    let addr = edge.http_addr.unwrap();
    let forged = "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\
                  Burrow-Connecting-IP: 6.6.6.6\r\nConnection: keep-alive, x-custom\r\n\
                  X-Custom: dropped\r\nX-Keep: kept\r\n";
    let requests = [
        // Bodiless HTTP/1.1 GET: the lean path.
        ("lean GET", format!("GET /h?x=1 HTTP/1.1\r\nHost: heads.test\r\n{forged}\r\n")),
        // An absolute-form target names the host itself.
        (
            "absolute-form GET",
            format!("GET http://heads.test/h?x=1 HTTP/1.1\r\nHost: heads.test\r\n{forged}\r\n"),
        ),
        // HTTP/1.0: the hyper path.
        ("HTTP/1.0 GET", format!("GET /h?x=1 HTTP/1.0\r\nHost: heads.test\r\n{forged}\r\n")),
        // A body: the hyper path.
        (
            "POST",
            format!("POST /h?x=1 HTTP/1.1\r\nHost: heads.test\r\n{forged}Content-Length: 5\r\n\r\nhello"),
        ),
    ];
    let by_path = |p: &str| {
        edge.metric(&format!(
            r#"burrow_edge_http_requests_by_path_total{{path="{p}"}}"#
        ))
    };
    let mut seen = Vec::new();
    for (what, req) in &requests {
        let lean_before =
            edge.metric_or_zero(r#"burrow_edge_http_requests_by_path_total{path="lean"}"#);
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (status, head) = exchange(&mut s, req);
        assert_eq!(status, 200, "{what}: {head}");
        let (first, headers) = head_lines(&head);
        let method = if *what == "POST" { "post" } else { "get" };
        assert_eq!(
            first.to_ascii_lowercase(),
            format!("{method} /h?x=1 http/1.1"),
            "{what}"
        );
        let lean_after =
            edge.metric_or_zero(r#"burrow_edge_http_requests_by_path_total{path="lean"}"#);
        seen.push((what.to_string(), headers, lean_after > lean_before));
    }
    assert!(
        by_path("lean") >= 1.0 && by_path("hyper") >= 2.0,
        "both paths served"
    );
    assert!(seen[0].2, "the bodiless HTTP/1.1 GET took the lean path");
    assert!(
        !seen[2].2 && !seen[3].2,
        "HTTP/1.0 and the POST took the hyper path"
    );
    let want = |h: &str| seen[0].1.iter().any(|l| l == h);
    assert!(
        want("x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1"),
        "{:?}",
        seen[0].1
    );
    assert!(want("burrow-connecting-ip: 127.0.0.1"), "{:?}", seen[0].1);
    assert!(want("x-forwarded-proto: http"), "{:?}", seen[0].1);
    assert!(want("host: heads.test"), "{:?}", seen[0].1);
    assert!(want("x-keep: kept"), "{:?}", seen[0].1);
    assert!(
        !seen[0].1.iter().any(|l| l.starts_with("x-custom")),
        "{:?}",
        seen[0].1
    );
    for (what, headers, _) in &seen[1..] {
        assert_eq!(
            headers, &seen[0].1,
            "{what} reached the origin with another head than the lean GET"
        );
    }
}

/// A WebSocket upgrade request for `host` at the edge's HTTP listener;
/// the connection and the answer's head, lowercased.
fn websocket_upgrade(edge: &EdgeProc, host: &str) -> (std::net::TcpStream, String) {
    let mut s = connect(edge.http_addr.unwrap(), Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).to_ascii_lowercase())
}

#[test]
fn a_ws_service_carries_a_websocket_as_cloudflared_does() {
    let dir = tempdir();
    let origin = HttpOrigin::start("W");
    // cloudflared's spelling of a WebSocket origin: ws:// is an HTTP
    // origin whose upgrade is proxied.
    let config = format!(
        "ingress:\n  - hostname: ws.example.com\n    service: ws://{}\n  - service: http_status:404\n",
        origin.addr
    );
    let (edge, _connector) = setup(dir.path(), &config, &["ws.example.com"]);
    let (mut s, head) = websocket_upgrade(&edge, "ws.example.com");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let frame = [0x81u8, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    s.write_all(&frame).unwrap();
    let mut back = [0u8; 11];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, frame);
}

#[test]
fn match_sni_to_host_names_the_requested_host_to_an_https_origin() {
    use util::tls::{make_ca, make_cert, s_server};
    let dir = tempdir();
    let ca = make_ca(dir.path());
    make_cert(dir.path(), "sni.example.com", dir.path());
    let (_tls, tls_addr) = s_server(
        dir.path(),
        "sni.example.com",
        &dir.path().join("s_server.log"),
        "-www",
    );
    // The origin's certificate names sni.example.com, not its address:
    // only with matchSNItoHost does the check pass.
    let config = format!(
        "ingress:\n\
         \x20 - hostname: sni.example.com\n    service: https://{tls_addr}\n\
         \x20   originRequest:\n      caPool: {ca}\n      matchSNItoHost: true\n\
         \x20 - hostname: plain.sni.example.com\n    service: https://{tls_addr}\n\
         \x20   originRequest:\n      caPool: {ca}\n\
         \x20 - service: http_status:404\n"
    );
    let (edge, _connector) = setup(
        dir.path(),
        &config,
        &["sni.example.com", "plain.sni.example.com"],
    );
    let (st, body) = get(&edge, "sni.example.com", "/", &[]);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("s_server"), "{body}");
    let (st, _) = get(&edge, "plain.sni.example.com", "/", &[]);
    assert_eq!(
        st, 502,
        "without it the name checked is the origin's address"
    );
}
