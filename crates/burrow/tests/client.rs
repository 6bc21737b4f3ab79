//! The zero-trust client: an enrolled device's SOCKS5 proxy through the
//! edge to a destination, with a network session log record per session.
#![allow(missing_docs)]

mod util;

use std::time::Duration;
use util::httporigin::HttpOrigin;
use util::*;

fn enroll(edge: &EdgeProc, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    edge.admin(&["user", "add", "ana@example.com", "--group", "eng"])
        .expect("user add");
    let creds = dir.join("laptop.json");
    let c = creds.to_string_lossy().into_owned();
    edge.admin(&[
        "device",
        "enroll",
        "--user",
        "ana@example.com",
        "--name",
        "laptop",
        "--credentials-file",
        &c,
    ])
    .expect("enroll");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    (creds, v["DeviceID"].as_str().unwrap().to_owned())
}

#[test]
fn socks5_through_the_edge_reaches_the_destination_and_logs_the_session() {
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--session-log", &log_s]);
    let (creds, device_id) = enroll(&edge, dir.path());
    let origin = HttpOrigin::start("A");
    let socks = format!("127.0.0.1:{}", free_port());
    let c = creds.to_string_lossy().into_owned();
    let http_proxy = format!("127.0.0.1:{}", free_port());
    let client = Proc::spawn(
        dir.path(),
        "client",
        &[
            "client",
            "--credentials",
            &c,
            "--socks",
            &socks,
            "--http-proxy",
            &http_proxy,
        ],
    );
    client.wait_line("SOCKS5 proxy:", Duration::from_secs(20));

    // curl resolves nothing itself: the name goes to the edge.
    let url = format!("http://localhost:{}/through-socks", origin.addr.port());
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname", &socks, &url])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.starts_with("origin A\n") && body.contains("path /through-socks"),
        "{body}"
    );

    // The same through the HTTP CONNECT proxy (curl -p forces CONNECT).
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-p",
            "-x",
            &format!("http://{http_proxy}"),
            &url,
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.starts_with("origin A\n"), "{body}");

    // An unreachable destination: curl is told, and the session is logged.
    let dead = format!("http://127.0.0.1:{}/", free_port());
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--socks5-hostname",
            &socks,
            &dead,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // One record per session, Gateway's field names.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let recs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if recs.len() >= 3 || std::time::Instant::now() > deadline {
            break recs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(records.len(), 3, "{records:#?}");
    let ok = &records[0];
    assert_eq!(ok["Email"], "ana@example.com");
    assert_eq!(ok["DeviceID"], device_id.as_str());
    assert_eq!(ok["DeviceName"], "laptop");
    assert_eq!(ok["IngressColoName"], "NRT");
    assert_eq!(ok["EgressColoName"], "NRT");
    assert_eq!(ok["Offramp"], "INTERNET");
    assert_eq!(ok["Protocol"], "TCP");
    assert_eq!(ok["OriginPort"], origin.addr.port());
    assert_eq!(ok["ConnectionCloseReason"], "CLIENT_OR_ORIGIN_CLOSED");
    assert!(ok["BytesSent"].as_u64().unwrap() > 50, "{ok}");
    assert!(ok["BytesReceived"].as_u64().unwrap() > 50, "{ok}");
    assert!(ok["SessionEndTime"].as_i64().unwrap() > ok["SessionStartTime"].as_i64().unwrap());
    assert_eq!(ok["SessionID"].as_str().unwrap().len(), 32);
    assert_eq!(
        records[1]["ConnectionCloseReason"],
        "CLIENT_OR_ORIGIN_CLOSED"
    );
    assert_eq!(records[2]["ConnectionCloseReason"], "ORIGIN_REFUSED");
    let sessions = |r: &str| {
        edge.metric(&format!(
            r#"burrow_edge_client_sessions_total{{reason="{r}"}}"#
        ))
    };
    assert_eq!(sessions("CLIENT_OR_ORIGIN_CLOSED"), 2.0);
    assert_eq!(sessions("ORIGIN_REFUSED"), 1.0);
    for k in [
        "EgressIP",
        "EgressPort",
        "EgressRuleID",
        "EgressRuleName",
        "OriginIP",
        "SourceIP",
        "SourcePort",
        "RuleEvaluationDurationMs",
        "VirtualNetworkID",
        "UserID",
        "AccountID",
    ] {
        assert!(ok.get(k).is_some(), "{k} missing");
    }
}

#[test]
fn a_revoked_device_is_refused() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let (creds, device_id) = enroll(&edge, dir.path());
    edge.admin(&["device", "revoke", &device_id])
        .expect("revoke");
    let socks = format!("127.0.0.1:{}", free_port());
    let c = creds.to_string_lossy().into_owned();
    let mut client = Proc::spawn(
        dir.path(),
        "client",
        &["client", "--credentials", &c, "--socks", &socks],
    );
    let code = client.wait_exit(Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}");
    assert!(client.log().contains("is revoked"), "{}", client.log());
    let log = edge.proc.wait_log("client refused", Duration::from_secs(5));
    assert!(log.contains("is revoked"), "{log}");
}

#[test]
fn the_client_reconnects_when_the_edge_comes_back() {
    let dir = tempdir();
    let listen = format!("127.0.0.1:{}", free_port());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let (creds, _) = enroll(&edge, dir.path());
    let origin = HttpOrigin::start("A");
    let socks = format!("127.0.0.1:{}", free_port());
    let c = creds.to_string_lossy().into_owned();
    let client = Proc::spawn(
        dir.path(),
        "client",
        &["client", "--credentials", &c, "--socks", &socks],
    );
    client.wait_line("SOCKS5 proxy:", Duration::from_secs(20));
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let fetch = || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--socks5-hostname", &socks, &url])
            .output()
            .map(|o| o.status.success() && o.stdout.starts_with(b"origin A"))
            .unwrap_or(false)
    };
    assert!(fetch());
    // The edge dies and comes back on the same address and state.
    drop(edge);
    let _edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !fetch() {
        assert!(
            std::time::Instant::now() < deadline,
            "no reconnect; client log:\n{}",
            client.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(client.log().contains("reconnecting"), "{}", client.log());
}

#[test]
fn egress_policies_pick_the_source_address_first_match_wins() {
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--session-log", &log_s]);
    let (creds, _) = enroll(&edge, dir.path()); // ana@example.com, group eng
                                                // A destination that answers with the peer address it sees.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = std::io::Write::write_all(&mut s, peer.as_bytes());
        }
    });
    let rules = dir.path().join("rules.json");
    let write_rules = |first_group: &str| {
        std::fs::write(
            &rules,
            format!(
                r#"[{{"id": "r1", "name": "{first_group} via .5", "selector": {{"groups": ["{first_group}"]}},
                     "action": {{"type": "dedicated", "primary_ipv4": "127.0.0.5"}}}},
                    {{"id": "r2", "name": "everyone via .6",
                     "action": {{"type": "dedicated", "primary_ipv4": "127.0.0.6"}}}}]"#
            ),
        )
        .unwrap();
        let r = rules.to_string_lossy().into_owned();
        edge.admin(&["policy", "set", "--file", &r])
            .expect("policy set")
    };
    write_rules("eng");
    let socks = format!("127.0.0.1:{}", free_port());
    let c = creds.to_string_lossy().into_owned();
    let client = Proc::spawn(
        dir.path(),
        "client",
        &["client", "--credentials", &c, "--socks", &socks],
    );
    client.wait_line("SOCKS5 proxy:", Duration::from_secs(20));
    let seen = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks])
            .arg(format!("telnet://{dst}"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(seen(), "127.0.0.5", "ana is in eng: the first rule");
    write_rules("sales");
    assert_eq!(seen(), "127.0.0.6", "not in sales: the catch-all");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["EgressRuleID"], "r1");
    assert_eq!(recs[0]["EgressRuleName"], "eng via .5");
    assert_eq!(recs[0]["EgressIP"], "127.0.0.5");
    assert_eq!(recs[1]["EgressRuleID"], "r2");
    assert_eq!(recs[1]["EgressIP"], "127.0.0.6");
}
