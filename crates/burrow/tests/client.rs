//! The zero-trust client: an enrolled device's SOCKS5 proxy through the
//! edge to a destination, with a network session log record per session.
#![allow(missing_docs)]

mod util;

use std::time::Duration;
use util::httporigin::HttpOrigin;
use util::*;

/// `EgressRuleID` of a session that no rule matched.
const NO_RULE: &str = "00000000-0000-0000-0000-000000000000";

/// `EgressRuleID` of a session rule `id` matched.
fn rule_id(id: &str) -> String {
    burrow_config::egress::log_id(Some(id)).to_string()
}

/// An edge whose clients may reach loopback destinations (the test
/// origins): `--egress-allow 127.0.0.0/8 --egress-allow ::1/128`.
fn client_edge(dir: &std::path::Path, colo: &str, state: &str, extra: &[&str]) -> EdgeProc {
    let mut args = vec!["--egress-allow", "127.0.0.0/8", "--egress-allow", "::1/128"];
    args.extend_from_slice(extra);
    EdgeProc::start(dir, colo, state, &args)
}

/// [`client_edge`] writing its session log to `dir/sessions.jsonl`;
/// the edge and the log's path.
fn logged_client_edge(dir: &std::path::Path, extra: &[&str]) -> (EdgeProc, std::path::PathBuf) {
    let mut args = vec!["--egress-allow", "127.0.0.0/8", "--egress-allow", "::1/128"];
    args.extend_from_slice(extra);
    logged_edge(dir, &args)
}

fn enroll(edge: &EdgeProc, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    edge.admin(&["user", "add", "ana@example.com", "--group", "eng"])
        .expect("user add");
    enroll_device(edge, dir, "ana@example.com", "laptop")
}

/// A TCP server on `bind` that answers each connection with the address
/// it sees the connection come from, then closes it.
fn peer_reporter(bind: &str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind(bind).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = std::io::Write::write_all(&mut s, peer.as_bytes());
        }
    });
    addr
}

#[test]
fn socks5_through_the_edge_reaches_the_destination_and_logs_the_session() {
    let dir = tempdir();
    let (edge, log) = logged_client_edge(dir.path(), &[]);
    let (creds, device_id) = enroll(&edge, dir.path());
    let origin = HttpOrigin::start("A");
    let c = ClientProc::start(
        dir.path(),
        "client",
        &creds,
        &["--http-proxy", "127.0.0.1:0"],
    );
    let (_client, socks, http_proxy) = (c.proc, c.socks, c.http_proxy.unwrap());

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
    // As the Gateway document types them: the rule's id a UUID (all zeros:
    // no rule matched), the evaluation time whole milliseconds.
    assert_eq!(ok["EgressRuleID"], NO_RULE);
    assert!(ok["RuleEvaluationDurationMs"].is_u64(), "{ok}");
    // curl spoke HTTP/1.1 through the tunnel: named from its first bytes.
    assert_eq!(ok["DetectedProtocol"], "HTTP", "{ok}");
    assert_eq!(
        records[2]["DetectedProtocol"], "",
        "nothing was sent: {:?}",
        records[2]
    );
    // The user's id is a stable UUID, the same in every record of the user.
    let uid = ok["UserID"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(uid).is_ok(), "{uid}");
    assert_eq!(records[1]["UserID"], uid);
}

#[test]
fn a_revoked_device_is_refused() {
    let dir = tempdir();
    let edge = client_edge(dir.path(), "NRT", "edge.db", &[]);
    let (creds, device_id) = enroll(&edge, dir.path());
    edge.admin(&["device", "revoke", &device_id])
        .expect("revoke");
    let c = creds.to_string_lossy().into_owned();
    let mut client = Proc::spawn(
        dir.path(),
        "client",
        &["client", "--credentials", &c, "--socks", "127.0.0.1:0"],
    );
    let code = client.wait_exit(Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}");
    assert!(client.log().contains("is revoked"), "{}", client.log());
    let log = edge.proc.wait_log("client refused", Duration::from_secs(5));
    assert!(log.contains("is revoked"), "{log}");
}

#[test]
fn an_unenrolled_device_is_refused() {
    let dir = tempdir();
    let edge = client_edge(dir.path(), "NRT", "edge.db", &[]);
    let (creds, device_id) = enroll(&edge, dir.path());
    // Deleting the user removes the device: its credentials no longer work.
    edge.admin(&["user", "delete", "ana@example.com"])
        .expect("user delete");
    let c = creds.to_string_lossy().into_owned();
    let mut client = Proc::spawn(
        dir.path(),
        "client",
        &["client", "--credentials", &c, "--socks", "127.0.0.1:0"],
    );
    let code = client.wait_exit(Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}");
    let want = format!("device {device_id} is not enrolled");
    assert!(client.log().contains(&want), "{}", client.log());
    edge.proc.wait_log(&want, Duration::from_secs(5));
}

#[test]
fn the_client_reconnects_when_the_edge_comes_back() {
    let dir = tempdir();
    let listen = format!("127.0.0.1:{}", free_port());
    let edge = client_edge(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let (creds, _) = enroll(&edge, dir.path());
    let origin = HttpOrigin::start("A");
    let (client, socks) = start_client(dir.path(), &creds);
    let url = format!("http://127.0.0.1:{}/", origin.addr.port());
    let fetch = || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--socks5-hostname", &socks, &url])
            .output()
            .map(|o| o.status.success() && o.stdout.starts_with(b"origin A"))
            .unwrap_or(false)
    };
    assert!(fetch());
    // The edge is killed and comes back on the same address and state: its
    // first packet to the client is a stateless reset, and the client
    // redials at once.
    drop(edge);
    let _edge = client_edge(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let restarted = std::time::Instant::now();
    while !fetch() {
        assert!(
            restarted.elapsed() < Duration::from_secs(40),
            "no reconnect; client log:\n{}",
            client.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = restarted.elapsed();
    eprintln!("the client was served again {took:?} after the edge restarted");
    assert!(took < Duration::from_secs(4), "took {took:?} (target 2 s)");
    assert!(client.log().contains("reconnecting"), "{}", client.log());
}

#[test]
fn egress_policies_pick_the_source_address_first_match_wins() {
    let dir = tempdir();
    let (edge, log) = logged_client_edge(dir.path(), &[]);
    let (creds, _) = enroll(&edge, dir.path()); // ana@example.com, group eng
                                                // A destination that answers with the peer address it sees.
    let dst = peer_reporter("127.0.0.1:0");
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
    let (_client, socks) = start_client(dir.path(), &creds);
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

    // Single-rule edits: add on top, move below the catch-all, delete.
    let out = edge
        .admin(&[
            "policy",
            "add",
            "--id",
            "v7",
            "--name",
            "to dst via .7",
            "--dst",
            "127.0.0.1/32",
            "--protocol",
            "tcp",
            "--dedicated",
            "127.0.0.7",
            "--position",
            "1",
        ])
        .expect("policy add");
    assert!(
        out.starts_with("POSITION\tID\tNAME\t") && out.contains("\n1\tv7\tto dst via .7\t"),
        "{out}"
    );
    assert_eq!(seen(), "127.0.0.7", "the new first rule");
    let out = edge
        .admin(&["policy", "move", "v7", "--position", "3"])
        .expect("policy move");
    assert!(
        out.contains("lint: rule 3 can never match: rule 2 covers every flow it would"),
        "{out}"
    );
    assert_eq!(seen(), "127.0.0.6", "v7 is now behind the catch-all");
    let err = edge
        .admin(&["policy", "move", "nope", "--position", "1"])
        .unwrap_err();
    assert!(
        err.contains("id") && err.contains("no rule with id 'nope'"),
        "{err}"
    );
    let err = edge
        .admin(&["policy", "add", "--id", "r2", "--dedicated", "127.0.0.8"])
        .unwrap_err();
    assert!(err.contains("used by an earlier rule"), "{err}");
    let err = edge
        .admin(&["policy", "add", "--id", "x", "--port", "99999"])
        .unwrap_err();
    assert!(err.contains("selector.ports"), "{err}");
    edge.admin(&["policy", "delete", "v7"])
        .expect("policy delete");
    let list = edge.admin(&["policy", "list"]).unwrap();
    assert_eq!(list.lines().count(), 3, "a header and two rules: {list}");

    // "proxied": a hostname routed through this edge is an orange
    // destination; it leaves here, from the rule's dedicated IP.
    edge.create_tunnel("t");
    edge.admin(&["route", "dns", "t", "localhost"])
        .expect("route dns");
    edge.admin(&[
        "policy",
        "add",
        "--id",
        "orange",
        "--proxied",
        "true",
        "--dedicated",
        "127.0.0.9",
        "--position",
        "1",
    ])
    .expect("policy add");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks])
        .arg(format!("telnet://localhost:{}", dst.port()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "127.0.0.9", "orange");
    assert_eq!(
        seen(),
        "127.0.0.6",
        "the same address by IP is grey: not the orange rule"
    );
    // An app listener of this edge is never dialled for a client, even
    // inside --egress-allow: refused before any policy.
    let app = edge.create_app("t", "orange.example.com");
    let _ = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--socks5-hostname", &socks])
        .arg(format!("telnet://{app}"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let recs = session_records(&log, 6);
    let to_app = recs
        .iter()
        .find(|r| r["OriginPort"] == app.port())
        .expect("a record for the app session");
    assert_eq!(
        to_app["ConnectionCloseReason"], "DESTINATION_DENIED",
        "{to_app}"
    );
    assert_eq!(to_app["EgressRuleID"], NO_RULE, "{to_app}");
    // Decisions are counted per rule.
    assert_eq!(
        edge.metric("burrow_edge_egress_decisions_total{rule=\"orange\"}"),
        1.0
    );
    assert!(edge.metric("burrow_edge_egress_decisions_total{rule=\"r2\"}") >= 2.0);
    assert_eq!(recs[0]["EgressRuleID"], rule_id("r1"));
    assert_eq!(recs[0]["EgressRuleName"], "eng via .5");
    assert_eq!(recs[0]["EgressIP"], "127.0.0.5");
    assert_eq!(recs[1]["EgressRuleID"], rule_id("r2"));
    assert_eq!(recs[1]["EgressIP"], "127.0.0.6");
}

#[test]
fn private_networks_route_through_the_tunnel_of_the_clients_vnet() {
    let dir = tempdir();
    let (edge, log) = logged_client_edge(dir.path(), &[]);
    let (creds, _) = enroll(&edge, dir.path());
    // A private destination that answers with the peer address it sees.
    let dst = match peer_reporter("127.0.0.1:0") {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    // And one that holds connections open until the client closes.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hold = match l.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            });
        }
    });
    // Internet egress would leave from 127.0.0.5; private routes must not.
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"id": "all", "name": "all via .5", "action": {"type": "dedicated", "primary_ipv4": "127.0.0.5"}}]"#,
    )
    .unwrap();
    edge.admin(&["policy", "set", "--file", rules.to_str().unwrap()])
        .expect("policy set");

    // Tunnel a in the default vnet, tunnel b in vnet lab: the same network.
    let tunnel_id = |creds: &std::path::Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(creds).unwrap()).unwrap();
        v["TunnelID"].as_str().unwrap().to_owned()
    };
    let (ca, cb) = (edge.create_tunnel("a"), edge.create_tunnel("b"));
    let (ida, idb) = (tunnel_id(&ca), tunnel_id(&cb));
    let cfg_b = dir.path().join("b.yml");
    std::fs::write(&cfg_b, "warp-routing:\n  maxActiveFlows: 1\n").unwrap();
    let mut conn_a = connector(dir.path(), "conn-a", &ca, &["--hello-world"]);
    let conn_b = connector(
        dir.path(),
        "conn-b",
        &cb,
        &["--hello-world", "--config", cfg_b.to_str().unwrap()],
    );
    edge.wait_connections("a", 1, Duration::from_secs(20));
    edge.wait_connections("b", 1, Duration::from_secs(20));
    edge.admin(&[
        "vnet",
        "add",
        "lab",
        "--comment",
        "the lab",
        "--allow-group",
        "eng",
    ])
    .expect("vnet add");
    edge.admin(&["route", "ip", "add", "127.0.0.0/8", "a"])
        .expect("route a");
    edge.admin(&[
        "tunnel",
        "route",
        "ip",
        "add",
        "127.0.0.0/8",
        "b",
        "--vnet",
        "lab",
    ])
    .expect("route b");
    let err = edge
        .admin(&["route", "ip", "add", "127.0.0.0/8", "b", "--vnet", "lab"])
        .unwrap_err();
    assert!(
        err.contains("routed already in virtual network 'lab'"),
        "{err}"
    );
    let err = edge
        .admin(&["route", "ip", "add", "127.0.0.1/8", "b"])
        .unwrap_err();
    assert!(
        err.contains("network") && err.contains("did you mean 127.0.0.0/8"),
        "{err}"
    );
    let got = edge
        .admin(&["route", "ip", "get", "127.9.9.9", "--vnet", "lab"])
        .unwrap();
    assert!(got.contains(&idb), "{got}");

    // One device per client: a device connects once at a time.
    let (lab_creds, _) = enroll_device(&edge, dir.path(), "ana@example.com", "laptop-lab");
    let default = ClientProc::start(dir.path(), "client-default", &creds, &[]);
    let lab = ClientProc::start(dir.path(), "client-lab", &lab_creds, &["--vnet", "lab"]);
    let (_client_default, socks_default) = (default.proc, default.socks);
    let (_client_lab, socks_lab) = (lab.proc, lab.socks);
    let seen = |socks: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5-hostname", socks])
            .arg(format!("telnet://{dst}"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The connector dialled (source 127.0.0.1), not the edge's egress (.5).
    assert_eq!(seen(&socks_default), "127.0.0.1");
    conn_a.wait_log("private-network flow", Duration::from_secs(5));
    assert!(!conn_b.log().contains("private-network flow"));
    assert_eq!(seen(&socks_lab), "127.0.0.1");
    conn_b.wait_log("private-network flow", Duration::from_secs(5));

    // Connector b takes one private flow at a time. The flow curl just
    // made frees its slot when connector b sees it end, a moment after
    // curl exits: until then the first flow may be refused too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let held = loop {
        match socks_connect(&socks_lab, hold) {
            Ok(s) => break s,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "first flow: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(
        socks_connect(&socks_lab, hold).is_err(),
        "over maxActiveFlows"
    );
    edge.proc.wait_log(
        "maxActiveFlows (1 private-network flows)",
        Duration::from_secs(5),
    );
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen(&socks_lab) != "127.0.0.1" {
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Without tunnel a's connector, the default vnet's flows fail; lab's work.
    conn_a.signal("TERM");
    assert_eq!(conn_a.wait_exit(Duration::from_secs(15)), Some(0));
    assert_eq!(seen(&socks_default), "");
    assert_eq!(seen(&socks_lab), "127.0.0.1");

    // The log: tunnel and vnet per session, no egress rule on private flows.
    let vnets: serde_json::Value =
        serde_json::from_str(&edge.admin(&["vnet", "list", "--json"]).unwrap()).unwrap();
    let vnet_id = |name: &str| {
        vnets
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let recs = session_records(&log, 7);
    let (ok_a, ok_b) = (&recs[0], &recs[1]);
    assert_eq!(ok_a["Offramp"], "CFD_TUNNEL", "{ok_a}");
    assert_eq!(ok_a["DestinationTunnelID"], ida.as_str());
    assert_eq!(ok_a["VirtualNetworkID"], vnet_id("default").as_str());
    assert_eq!(ok_a["EgressRuleID"], NO_RULE);
    assert_eq!(ok_a["OriginPort"], dst.port());
    assert_eq!(ok_a["BytesReceived"], 9);
    assert_eq!(ok_b["DestinationTunnelID"], idb.as_str());
    assert_eq!(ok_b["VirtualNetworkID"], vnet_id("lab").as_str());
    let reasons: Vec<&str> = recs
        .iter()
        .map(|r| r["ConnectionCloseReason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"ORIGIN_UNREACHABLE"), "{reasons:?}");
    assert!(reasons.contains(&"TUNNEL_UNAVAILABLE"), "{reasons:?}");

    // A vnet with routes cannot go; an unknown vnet is refused by name.
    let err = edge.admin(&["vnet", "delete", "lab"]).unwrap_err();
    assert!(err.contains("route(s) still use it"), "{err}");
    edge.admin(&["route", "ip", "delete", "127.0.0.0/8", "--vnet", "lab"])
        .expect("route delete");
    edge.admin(&["vnet", "delete", "lab"]).expect("vnet delete");
    let c_lab = lab_creds.to_string_lossy().into_owned();
    let mut nope = Proc::spawn(
        dir.path(),
        "client-nope",
        &[
            "client",
            "--credentials",
            &c_lab,
            "--socks",
            "127.0.0.1:0",
            "--vnet",
            "nope",
        ],
    );
    let code = nope.wait_exit(Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}");
    assert!(
        nope.log().contains("virtual network 'nope' does not exist"),
        "{}",
        nope.log()
    );
}

/// An HTTP endpoint that collects logpush bodies; it answers `503` to its
/// first request, then `200`.
fn logpush_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let got = lines.clone();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            assert!(head.starts_with("post /ingest?token=s3cret "), "{head}");
            assert!(
                head.contains("content-type: application/x-ndjson"),
                "{head}"
            );
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            if n == 0 {
                let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                continue;
            }
            let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
            got.lock().unwrap().extend(body.lines().map(str::to_owned));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (addr, lines)
}

#[test]
fn logpush_delivers_every_record_with_retries_and_at_shutdown() {
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let (rx_addr, received) = logpush_receiver();
    let url = format!("http://{rx_addr}/ingest?token=s3cret");
    let mut edge = client_edge(
        dir.path(),
        "NRT",
        "edge.db",
        &["--session-log", &log_s, "--logpush-url", &url],
    );
    let (creds, _) = enroll(&edge, dir.path());
    let origin = HttpOrigin::start("A");
    let (_client, socks) = start_client(dir.path(), &creds);
    let fetch = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks])
            .arg(format!("http://127.0.0.1:{}/", origin.addr.port()))
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    // Two sessions: the first request is refused with 503, the retry lands.
    fetch();
    fetch();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        edge.metric("burrow_edge_logpush_failed_requests_total"),
        1.0
    );
    assert_eq!(edge.metric("burrow_edge_logpush_records_sent_total"), 2.0);
    // A third, then SIGTERM at once: shutdown sends it before exiting.
    fetch();
    edge.proc.signal("TERM");
    assert_eq!(edge.proc.wait_exit(Duration::from_secs(30)), Some(0));
    let ids = |lines: &[String]| {
        let mut v: Vec<String> = lines
            .iter()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                r["SessionID"].as_str().unwrap().to_owned()
            })
            .collect();
        v.sort();
        v
    };
    let pushed = ids(&received.lock().unwrap());
    let file: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pushed.len(), 3, "{pushed:?}");
    assert_eq!(pushed, ids(&file));
    assert!(!edge.proc.log().contains("s3cret"), "the token was logged");
}

/// A UDP echo server on `ip` that answers `<sender ip> <payload>`.
fn udp_echo(ip: &str) -> std::net::SocketAddr {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut out = format!("{} ", from.ip()).into_bytes();
            out.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&out, from);
        }
    });
    addr
}

#[test]
fn socks5_udp_associate_reaches_the_internet_and_private_networks() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let (edge, log) = logged_client_edge(dir.path(), &[]);
    let (creds, _) = enroll(&edge, dir.path());
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"id": "udp", "name": "udp via .5", "selector": {"protocols": ["udp"]}, "action": {"type": "dedicated", "primary_ipv4": "127.0.0.5"}}]"#,
    )
    .unwrap();
    edge.admin(&["policy", "set", "--file", rules.to_str().unwrap()])
        .expect("policy set");
    let public = udp_echo("127.0.0.1");
    let private = udp_echo("127.0.0.2");
    let conn = edge.connected_tunnel("t", &["--hello-world"], 1);
    edge.admin(&["route", "ip", "add", "127.0.0.2", "t"])
        .expect("route");
    let (_client, socks) = start_client(dir.path(), &creds);

    // UDP ASSOCIATE: the reply names the relay address.
    let mut ctl = std::net::TcpStream::connect(&socks).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ctl.write_all(&[5, 1, 0]).unwrap();
    let mut hello = [0u8; 2];
    ctl.read_exact(&mut hello).unwrap();
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 10];
    ctl.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..4], [5, 0, 0, 1], "{reply:?}");
    let relay = std::net::SocketAddr::from((
        [reply[4], reply[5], reply[6], reply[7]],
        u16::from_be_bytes([reply[8], reply[9]]),
    ));
    let app = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    app.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header = |to: std::net::SocketAddr| {
        let std::net::SocketAddr::V4(a) = to else {
            panic!()
        };
        let mut h = vec![0, 0, 0, 1];
        h.extend_from_slice(&a.ip().octets());
        h.extend_from_slice(&a.port().to_be_bytes());
        h
    };
    // Datagrams of several sizes to each destination, one at a time.
    let mut totals = std::collections::HashMap::new();
    for (to, seen_as) in [(public, "127.0.0.5"), (private, "127.0.0.1")] {
        let (mut sent, mut received) = (0u64, 0u64);
        for (i, size) in [1usize, 100, 1200, 8000, 30000].into_iter().enumerate() {
            let payload = pattern(&mut (i as u64 + 1), size);
            let mut d = header(to);
            d.extend_from_slice(&payload);
            app.send_to(&d, relay).unwrap();
            let mut buf = vec![0u8; 65536];
            let (n, from) = app.recv_from(&mut buf).expect("an answer");
            assert_eq!(from, relay);
            let h = header(to);
            assert_eq!(&buf[..h.len()], &h[..], "answer names the destination");
            let mut want = format!("{seen_as} ").into_bytes();
            want.extend_from_slice(&payload);
            assert_eq!(sha256(&buf[h.len()..n]), sha256(&want), "{to} size {size}");
            sent += size as u64;
            received += want.len() as u64;
        }
        totals.insert(to.port(), (sent, received));
    }
    conn.wait_log("private-network UDP session", Duration::from_secs(5));
    // Closing the SOCKS connection ends the association and its sessions.
    drop(ctl);
    let recs = session_records(&log, 2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    for r in &recs {
        assert_eq!(r["Protocol"], "UDP", "{r}");
        let port = r["OriginPort"].as_u64().unwrap() as u16;
        let (sent, received) = totals[&port];
        assert_eq!(r["BytesSent"], sent, "{r}");
        assert_eq!(r["BytesReceived"], received, "{r}");
        if port == public.port() {
            assert_eq!(r["Offramp"], "INTERNET");
            assert_eq!(r["EgressRuleID"], rule_id("udp"));
            assert_eq!(r["EgressIP"], "127.0.0.5");
        } else {
            assert_eq!(r["Offramp"], "CFD_TUNNEL");
        }
    }
}

/// Edge KIX, and edge NRT with KIX as its peer (shared secret, KIX's CA)
/// plus `nrt_extra` flags.
fn kix_and_nrt(dir: &std::path::Path, nrt_extra: &[&str]) -> (EdgeProc, EdgeProc) {
    let secret = dir.join("peer.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef-test\n").unwrap();
    let secret_s = secret.to_string_lossy().into_owned();
    let kix = client_edge(dir, "KIX", "kix.db", &["--peer-secret-file", &secret_s]);
    let kix_ca = dir.join("kix.d").join("ca.pem");
    let peer = format!("KIX={}", kix.tunnel_addr);
    let mut args = vec![
        "--peer",
        &peer,
        "--peer-secret-file",
        &secret_s,
        "--peer-ca",
        kix_ca.to_str().unwrap(),
    ];
    args.extend_from_slice(nrt_extra);
    let nrt = client_edge(dir, "NRT", "nrt.db", &args);
    (kix, nrt)
}

/// What `to` (a `peer_reporter`) saw as the connection's source, reached
/// through the client's SOCKS5 proxy `socks`.
fn seen_through(socks: &str, to: std::net::SocketAddr) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "25", "--socks5-hostname", socks])
        .arg(format!("telnet://{to}"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dedicated_egress_leaves_from_the_owning_colo_and_fails_over_to_the_secondary() {
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let (kix, nrt) = kix_and_nrt(dir.path(), &["--session-log", &log_s]);
    let (creds, _) = enroll(&nrt, dir.path());
    nrt.admin(&["egress-ip", "add", "127.0.0.7", "--colo", "KIX"])
        .expect("egress-ip add");
    nrt.admin(&["egress-ip", "add", "127.0.0.8", "--colo", "NRT"])
        .expect("egress-ip add");
    let err = nrt
        .admin(&["egress-ip", "add", "127.0.0.9", "--colo", "bad colo"])
        .unwrap_err();
    assert!(err.contains("colo"), "{err}");
    // A destination that answers with the peer address it sees.
    let dst = peer_reporter("127.0.0.1:0");
    let (_client, socks) = start_client(dir.path(), &creds);
    let seen = |to| seen_through(&socks, to);
    // No policy: the default egress takes the nearest colo's dedicated IP,
    // and NRT has one of its own.
    assert_eq!(seen(dst), "127.0.0.8");
    nrt.admin(&[
        "policy",
        "add",
        "--id",
        "ded",
        "--name",
        "dedicated",
        "--dedicated",
        "127.0.0.7",
        "--secondary",
        "127.0.0.8",
    ])
    .expect("policy add");
    // Grey IPv4: KIX owns 127.0.0.7, so KIX's edge dials it.
    assert_eq!(seen(dst), "127.0.0.7");
    kix.proc.wait_log("peer egress", Duration::from_secs(5));
    nrt.proc
        .wait_log("connected to peer edge", Duration::from_secs(5));
    // Orange (a hostname routed through NRT): NRT dials it itself, still
    // from 127.0.0.7.
    nrt.create_tunnel("t");
    nrt.admin(&["route", "dns", "t", "localhost"])
        .expect("route dns");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "25", "--socks5-hostname", &socks])
        .arg(format!("telnet://localhost:{}", dst.port()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "127.0.0.7");
    assert_eq!(
        kix.proc.log().matches("peer egress").count(),
        1,
        "orange went to KIX"
    );
    // KIX dies: the flow leaves from the secondary's colo, and does not
    // fail; it waits at most until QUIC gives KIX up (2 s).
    drop(kix);
    let t = std::time::Instant::now();
    assert_eq!(seen(dst), "127.0.0.8");
    let took = t.elapsed();
    eprintln!("a flow for a killed peer left from the secondary after {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(seen(dst), "127.0.0.8");

    let recs = session_records(&log, 5);
    // In order: default, grey via KIX, orange, grey twice via the secondary.
    let mut grey: Vec<&serde_json::Value> = recs.iter().collect();
    let orange = grey.remove(2);
    assert_eq!(grey.len(), 4, "{recs:#?}");
    assert_eq!(grey[0]["EgressRuleID"], NO_RULE);
    assert_eq!(grey[0]["EgressIP"], "127.0.0.8");
    assert_eq!(grey[1]["EgressColoName"], "KIX");
    assert_eq!(grey[1]["IngressColoName"], "NRT");
    assert_eq!(grey[1]["EgressIP"], "127.0.0.7");
    assert_eq!(grey[1]["BytesReceived"], 9);
    assert_eq!(grey[2]["EgressColoName"], "NRT");
    assert_eq!(grey[2]["EgressIP"], "127.0.0.8");
    assert_eq!(grey[2]["EgressRuleID"], rule_id("ded"));
    assert_eq!(orange["EgressColoName"], "NRT");
    assert_eq!(orange["EgressIP"], "127.0.0.7");
}

#[test]
fn a_peer_that_does_not_answer_holds_up_no_other_colo() {
    let dir = tempdir();
    // OSA's address: a UDP port nobody serves, so connecting to it takes
    // until QUIC gives the handshake up (its 2 s idle timeout).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let osa = format!("OSA={}", dead.local_addr().unwrap());
    drop(dead);
    let (_kix, nrt) = kix_and_nrt(dir.path(), &["--peer", &osa]);
    let (creds, _) = enroll(&nrt, dir.path());
    for (ip, colo) in [
        ("127.0.0.7", "KIX"),
        ("127.0.0.9", "OSA"),
        ("127.0.0.8", "NRT"),
    ] {
        nrt.admin(&["egress-ip", "add", ip, "--colo", colo])
            .expect("egress-ip add");
    }
    let (to_kix, to_osa) = (peer_reporter("127.0.0.1:0"), peer_reporter("127.0.0.1:0"));
    for (id, dst, ip) in [("k", to_kix, "127.0.0.7"), ("o", to_osa, "127.0.0.9")] {
        let port = dst.port().to_string();
        nrt.admin(&[
            "policy",
            "add",
            "--id",
            id,
            "--port",
            &port,
            "--dedicated",
            ip,
            "--secondary",
            "127.0.0.8",
        ])
        .expect("policy add");
    }
    let (_client, socks) = start_client(dir.path(), &creds);
    let socks2 = socks.clone();
    let seen = |to| seen_through(&socks, to);
    let seen2 = move |to| seen_through(&socks2, to);
    // A flow toward OSA waits until OSA is given up, then fails over.
    let slow = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        (seen2(to_osa), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile a flow toward KIX goes through at once.
    let started = std::time::Instant::now();
    assert_eq!(seen(to_kix), "127.0.0.7");
    let fast = started.elapsed();
    let (osa_seen, slow) = slow.join().unwrap();
    assert_eq!(osa_seen, "127.0.0.8", "OSA is down: the secondary");
    assert!(
        slow >= Duration::from_millis(1500),
        "OSA's flow took {slow:?}"
    );
    assert!(
        fast < Duration::from_secs(1),
        "KIX's flow waited {fast:?} for OSA's connect"
    );
}

#[test]
fn a_peer_with_the_wrong_secret_is_refused() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.secret"), dir.path().join("b.secret"));
    std::fs::write(&a, "a".repeat(40)).unwrap();
    std::fs::write(&b, "b".repeat(40)).unwrap();
    let kix = client_edge(
        dir.path(),
        "KIX",
        "kix.db",
        &["--peer-secret-file", a.to_str().unwrap()],
    );
    let kix_ca = dir.path().join("kix.d").join("ca.pem");
    let peer = format!("KIX={}", kix.tunnel_addr);
    let nrt = client_edge(
        dir.path(),
        "NRT",
        "nrt.db",
        &[
            "--peer",
            &peer,
            "--peer-secret-file",
            b.to_str().unwrap(),
            "--peer-ca",
            kix_ca.to_str().unwrap(),
        ],
    );
    let (creds, _) = enroll(&nrt, dir.path());
    nrt.admin(&["egress-ip", "add", "127.0.0.7", "--colo", "KIX"])
        .expect("egress-ip add");
    nrt.admin(&["policy", "add", "--id", "ded", "--dedicated", "127.0.0.7"])
        .expect("policy add");
    let origin = HttpOrigin::start("A");
    let (_client, socks) = start_client(dir.path(), &creds);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname", &socks])
        .arg(format!("http://{}/", origin.addr))
        .output()
        .unwrap();
    assert!(!out.status.success(), "no secondary: the flow must fail");
    kix.proc
        .wait_log("peer secret does not match", Duration::from_secs(5));
    // A bad secret file is refused at start, naming the flag.
    std::fs::write(&b, "short").unwrap();
    let mut bad = Proc::spawn(
        dir.path(),
        "edge-bad",
        &[
            "edge",
            "--colo",
            "X",
            "--state",
            "x.db",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--peer-secret-file",
            b.to_str().unwrap(),
        ],
    );
    assert_eq!(bad.wait_exit(Duration::from_secs(20)), Some(64));
    assert!(bad.log().contains("peer-secret-file"), "{}", bad.log());
}

/// An address on `lo` for the length of a test (needs root).
struct LoAddr(&'static str);

impl LoAddr {
    fn add(cidr: &'static str) -> Option<LoAddr> {
        let ok = std::process::Command::new("ip")
            .args(["-6", "addr", "add", cidr, "dev", "lo"])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(LoAddr(cidr))
    }
}

impl Drop for LoAddr {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["-6", "addr", "del", self.0, "dev", "lo"])
            .status();
    }
}

#[test]
fn ipv6_destinations_leave_from_the_dedicated_ipv6_range() {
    // Adding an address to lo needs root.
    if !is_root() {
        eprintln!("skipped: adding an IPv6 address to lo needs root");
        return;
    }
    let _addr = LoAddr::add("fd00:b0::7/128").expect("ip -6 addr add fd00:b0::7/128 dev lo");
    let dir = tempdir();
    let edge = client_edge(dir.path(), "NRT", "edge.db", &[]);
    let (creds, _) = enroll(&edge, dir.path());
    edge.admin(&[
        "policy",
        "add",
        "--id",
        "v6",
        "--dedicated",
        "127.0.0.5",
        "--ipv6-range",
        "fd00:b0::7/128",
    ])
    .expect("policy add");
    let dst = peer_reporter("[::1]:0");
    let (_client, socks) = start_client(dir.path(), &creds);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--socks5-hostname", &socks])
        .arg(format!("telnet://{dst}"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fd00:b0::7");
}

#[test]
fn clients_fall_back_to_http2_when_udp_is_blocked() {
    let dir = tempdir();
    let log = dir.path().join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    // No QUIC listener at all: UDP to the edge goes nowhere.
    let edge = client_edge(
        dir.path(),
        "NRT",
        "edge.db",
        &["--session-log", &log_s, "--disable-quic"],
    );
    let (creds, _) = enroll(&edge, dir.path());
    // One device per client: a device connects once at a time.
    let (creds2, _) = enroll_device(&edge, dir.path(), "ana@example.com", "laptop-2");
    let origin = HttpOrigin::start("A");
    let echo = udp_echo("127.0.0.1");
    let start = |name: &str, protocol: &str| {
        let c = if protocol == "auto" { &creds2 } else { &creds };
        let c = ClientProc::start(dir.path(), name, c, &["--protocol", protocol]);
        (c.proc, c.socks)
    };
    let (explicit, socks_h2) = start("client-h2", "http2");
    let (auto, socks_auto) = start("client-auto", "auto");
    explicit.wait_log("protocol=\"http2\"", Duration::from_secs(5));
    auto.wait_log("falling back to HTTP/2", Duration::from_secs(30));
    auto.wait_log("protocol=\"http2\"", Duration::from_secs(10));
    for socks in [&socks_h2, &socks_auto] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5-hostname", socks])
            .arg(format!("http://127.0.0.1:{}/over-h2", origin.addr.port()))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains("path /over-h2"), "{body}");
    }
    // UDP sessions ride the HTTP/2 connection too (framed on streams).
    use std::io::{Read, Write};
    let mut ctl = std::net::TcpStream::connect(&socks_h2).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ctl.write_all(&[5, 1, 0]).unwrap();
    let mut hello = [0u8; 2];
    ctl.read_exact(&mut hello).unwrap();
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 10];
    ctl.read_exact(&mut reply).unwrap();
    assert_eq!(reply[1], 0);
    let relay = std::net::SocketAddr::from((
        [reply[4], reply[5], reply[6], reply[7]],
        u16::from_be_bytes([reply[8], reply[9]]),
    ));
    let app = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    app.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let std::net::SocketAddr::V4(e) = echo else {
        panic!()
    };
    let mut d = vec![0, 0, 0, 1];
    d.extend_from_slice(&e.ip().octets());
    d.extend_from_slice(&e.port().to_be_bytes());
    let head = d.len();
    d.extend_from_slice(b"ping over h2");
    app.send_to(&d, relay).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = app.recv_from(&mut buf).expect("an answer");
    assert_eq!(&buf[head..n], b"127.0.0.1 ping over h2");
}

#[test]
fn flows_that_cannot_leave_are_logged_with_their_close_reason() {
    let dir = tempdir();
    // Every name is unknown to this DNS server.
    let dns = dns_server(|_, _| Vec::new()).to_string();
    let (edge, log) = logged_client_edge(dir.path(), &["--dns-server", &dns]);
    let (creds, _) = enroll(&edge, dir.path());
    let (_client, socks) = start_client(dir.path(), &creds);
    let echo = Origin::start(util::echo);

    // A name that does not resolve (the edge asks its --dns-server).
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname", &socks])
        .arg("http://missing.test/")
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown name was reached");
    let recs = session_records(&log, 1);
    assert_eq!(recs[0]["ConnectionCloseReason"], "DNS_FAILURE", "{recs:?}");

    // A dedicated egress IP this host does not have, and no other exit.
    edge.admin(&[
        "policy",
        "add",
        "--id",
        "far",
        "--dst",
        "127.0.0.1/32",
        "--dedicated",
        "192.0.2.77",
    ])
    .expect("policy add");
    let err = socks_connect(&socks, v4(echo.addr)).expect_err("no way out");
    assert!(err.to_string().contains("SOCKS5 reply"), "{err}");
    let recs = session_records(&log, 2);
    assert_eq!(
        recs[1]["ConnectionCloseReason"], "EGRESS_IP_UNAVAILABLE",
        "{recs:?}"
    );
    assert_eq!(recs[1]["EgressRuleID"], rule_id("far"), "{recs:?}");
    assert!(
        edge.metric(r#"burrow_edge_client_sessions_total{reason="EGRESS_IP_UNAVAILABLE"}"#) >= 1.0
    );

    // A destination that never answers: a listener whose accept queue is
    // full drops new SYNs, so the edge's dial runs into its 10 s timeout.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let at: std::net::SocketAddr = "127.0.0.3:0".parse().unwrap();
    full.bind(&at.into()).unwrap();
    full.listen(0).unwrap();
    let silent = full.local_addr().unwrap().as_socket().unwrap();
    let _queued: Vec<_> = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&silent, Duration::from_millis(300)).ok()
        })
        .collect();
    let started = std::time::Instant::now();
    let err = socks_connect(&socks, v4(silent)).expect_err("nobody answers");
    assert!(err.to_string().contains("SOCKS5 reply"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(9), "gave up early");
    let recs = session_records(&log, 3);
    assert_eq!(
        recs[2]["ConnectionCloseReason"], "ORIGIN_TIMEOUT",
        "{recs:?}"
    );
}

#[test]
fn a_client_flow_with_no_free_local_port_is_logged_port_exhaustion() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let dir = tempdir();
    // The edge runs in a namespace with four ephemeral ports: four flows
    // to one destination take them all.
    let ns = Netns::create(8);
    ns.ephemeral_ports("40000 40003");
    let _socat = ns.echo_origin(7008);
    let args = [
        "edge",
        "--colo",
        "NRT",
        "--state",
        "edge.db",
        // Fixed ports: `:0` would take two of the four.
        "--listen",
        "10.201.8.2:7844",
        "--admin",
        "10.201.8.2:7845",
        "--app-address",
        "127.0.0.1",
        "--egress-allow",
        "127.0.0.0/8",
        "--session-log",
        "sessions.jsonl",
    ];
    let proc = Proc::spawn_in_netns(dir.path(), "edge", &ns.name, &args);
    let edge = EdgeProc::started(proc, dir.path(), "edge.db", &[]);
    let (creds, _) = enroll(&edge, dir.path());
    let (_client, socks) = start_client(dir.path(), &creds);
    let origin: std::net::SocketAddrV4 = "127.0.0.1:7008".parse().unwrap();
    let mut held = Vec::new();
    for i in 0..4 {
        let mut s = socks_connect(&socks, origin).unwrap_or_else(|e| panic!("flow {i}: {e}"));
        use std::io::{Read, Write};
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        held.push(s);
    }
    let err = socks_connect(&socks, origin).expect_err("a fifth local port");
    assert!(err.to_string().contains("SOCKS5 reply"), "{err}");
    let recs = session_records(&dir.path().join("sessions.jsonl"), 1);
    assert_eq!(
        recs[0]["ConnectionCloseReason"], "PORT_EXHAUSTION",
        "{recs:?}"
    );
    // A port comes free, a flow goes again.
    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while socks_connect(&socks, origin).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no flow after a port came free"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn clients_speak_version_2_and_fall_back_to_an_older_edge() {
    let echo = Origin::start(util::echo);
    for (wire, flags) in [(2, &[][..]), (1, &["--wire-version", "1"][..])] {
        let dir = tempdir();
        let edge = client_edge(dir.path(), "NRT", "edge.db", flags);
        let (creds, _) = enroll(&edge, dir.path());
        let c = ClientProc::start(dir.path(), "client", &creds, &[]);
        let mut s = socks_connect(&c.socks, v4(echo.addr)).expect("a flow through the edge");
        std::io::Write::write_all(&mut s, b"ping").unwrap();
        let mut back = [0u8; 4];
        std::io::Read::read_exact(&mut s, &mut back).unwrap();
        assert_eq!(&back, b"ping", "version {wire}");
        let log = c.proc.log();
        assert!(
            log.contains(&format!("wire={wire}")),
            "the client says which version it speaks: {log}"
        );
    }
}

#[test]
fn ip_rules_in_the_connector_config_bound_what_private_flows_reach() {
    let dir = tempdir();
    let edge = client_edge(dir.path(), "NRT", "edge.db", &[]);
    let (creds, _) = enroll(&edge, dir.path());
    let echo = Origin::start(util::echo);
    let other = Origin::start(util::echo);
    let denied = Origin::start(util::echo);
    // 127.0.0.1: the echo's port only; the denied origin's address is
    // refused by an earlier rule whatever the port.
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "originRequest:\n  ipRules:\n    - prefix: 127.0.0.3/32\n      allow: false\n    \
             - prefix: 127.0.0.0/8\n      ports: [{}]\n      allow: true\n",
            echo.addr.port()
        ),
    )
    .unwrap();
    let ca = edge.create_tunnel("t");
    let c = connector(
        dir.path(),
        "conn",
        &ca,
        &["--hello-world", "--config", cfg.to_str().unwrap()],
    );
    edge.wait_connections("t", 4, Duration::from_secs(20));
    edge.admin(&["route", "ip", "add", "127.0.0.0/8", "t"])
        .expect("route");
    let (_client, socks) = start_client(dir.path(), &creds);
    // Allowed: the first rule that matches allows it.
    let mut s = socks_connect(&socks, v4(echo.addr)).expect("allowed");
    std::io::Write::write_all(&mut s, b"ok").unwrap();
    let mut back = [0u8; 2];
    std::io::Read::read_exact(&mut s, &mut back).unwrap();
    assert_eq!(&back, b"ok");
    // Another port: no rule matches, so it is denied.
    assert!(socks_connect(&socks, v4(other.addr)).is_err(), "not listed");
    // The same port on a denied address: the earlier deny rule wins.
    let at_3 = std::net::SocketAddr::from(([127, 0, 0, 3], echo.addr.port()));
    assert!(socks_connect(&socks, v4(at_3)).is_err(), "denied first");
    let log = c.wait_log("ipRules[0]", Duration::from_secs(5));
    assert!(
        log.contains("matches no originRequest.ipRules rule"),
        "{log}"
    );
    assert_eq!(
        echo.count(),
        1,
        "nothing reached the origins but the allowed flow"
    );
    assert_eq!(other.count() + denied.count(), 0);
}
