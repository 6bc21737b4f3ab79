//! Edge nodes on a shared PostgreSQL (issue 16). So far: the throwaway
//! database the cluster tests run against.
#![allow(missing_docs)]

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::pg::Pg;

#[test]
fn a_throwaway_postgresql_starts_answers_stops_and_comes_back() {
    let pg = match Pg::start() {
        Ok(pg) => pg,
        Err(why) => panic!("PostgreSQL for the cluster tests: {why}"),
    };
    assert_eq!(pg.psql("SELECT 40 + 2").unwrap(), "42");
    pg.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')")
        .unwrap();
    // The database goes away (as its host would) and comes back with its
    // data, on the same port.
    pg.set_running(false).unwrap();
    assert!(pg.psql("SELECT 1").is_err(), "answered while stopped");
    pg.set_running(true).unwrap();
    assert_eq!(pg.psql("SELECT v FROM kept").unwrap(), "before");
    let port = pg.port;
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after drop"
    );
}

/// A throwaway PostgreSQL, or the test fails saying why there is none.
fn database() -> Pg {
    Pg::start().unwrap_or_else(|why| panic!("PostgreSQL for the cluster tests: {why}"))
}

#[test]
fn an_edge_on_postgresql_serves_a_tunnel() {
    let pg = database();
    let dir = util::tempdir();
    let origin = util::Origin::start(util::echo);
    // Trust authentication ignores the password; the edge must still
    // never print it.
    let url = pg.url.replace("burrow@", "burrow:pw-never-logged@");
    let edge = util::EdgeProc::start(dir.path(), "NRT", &url, &[]);
    let creds = edge.create_tunnel("web");
    let app = edge.create_app("web", "web.example.com");
    let cfg = util::write_config(dir.path(), "config.yml", "web.example.com", origin.addr);
    let cfg = cfg.to_string_lossy().into_owned();
    let _conn = edge.run_connector("web", &creds, "connector", &["--config", &cfg], 4);
    let payload = util::pattern(&mut 7, 256 * 1024);
    assert_eq!(util::echo_round_trip(app, &payload).unwrap(), payload);
    // The rows are in PostgreSQL, not in a file of the node.
    assert_eq!(
        pg.psql("SELECT name FROM tunnels").unwrap(),
        "web",
        "tunnel row"
    );
    assert!(!dir.path().join("burrow-edge.db").exists());
    // The password never reaches the log, whatever the URL carries.
    let log = edge.proc.log();
    assert!(!log.contains("pw-never-logged"), "{log}");
    assert!(log.contains("burrow:***@127.0.0.1"), "{log}");
}

#[test]
fn an_unreachable_or_newer_database_or_a_wrong_secret_stops_the_start_with_a_clear_error() {
    let dir = util::tempdir();
    // Nothing listens on this port: exit 69, the URL shown without its
    // password.
    let port = util::free_port();
    let url = format!("postgres://burrow:hunter2@127.0.0.1:{port}/burrow");
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, "a cluster secret for the tests, 32+ chars\n").unwrap();
    let start = |url: &str, secret: &std::path::Path| {
        std::process::Command::new(util::BIN)
            .args(["edge", "--store", url, "--admin", "127.0.0.1:0"])
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("n.d"))
            .arg("--cluster-secret-file")
            .arg(secret)
            .output()
            .unwrap()
    };
    let out = start(&url, &secret);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    assert!(
        err.contains("burrow:***@127.0.0.1") && !err.contains("hunter2"),
        "{err}"
    );
    // A schema newer than this build: exit 65, both versions named.
    let pg = database();
    let edge = util::EdgeProc::start(dir.path(), "NRT", &pg.url, &[]);
    drop(edge);
    // Another cluster's secret opens nothing: exit 64, saying so.
    let wrong = dir.path().join("wrong.secret");
    std::fs::write(&wrong, "not the secret this cluster was made with").unwrap();
    let out = start(&pg.url, &wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("cluster-secret-file") && err.contains("another"),
        "{err}"
    );
    // Without one at all: exit 64, naming the setting.
    let out = std::process::Command::new(util::BIN)
        .args(["edge", "--store", &pg.url, "--admin", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("cluster-secret-file"), "{err}");
    pg.psql(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00', 0)",
    )
    .unwrap();
    let out = start(&pg.url, &secret);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("9999") && err.contains("newer"), "{err}");
}

/// Three edge nodes on one database: NRT on 127.0.0.2, KIX on .3, OSA on
/// .4, each with its own files and its apps on its own address.
struct Three {
    dir: tempfile::TempDir,
    nodes: Vec<util::EdgeProc>,
}

const COLOS: [(&str, &str); 3] = [
    ("NRT", "127.0.0.2"),
    ("KIX", "127.0.0.3"),
    ("OSA", "127.0.0.4"),
];

impl Three {
    fn start(pg: &Pg) -> Three {
        Self::start_with(pg, |_| vec![])
    }

    /// With `extra(colo)` flags for each node.
    fn start_with(pg: &Pg, extra: impl Fn(&str) -> Vec<String>) -> Three {
        let dir = util::tempdir();
        let nodes = COLOS
            .iter()
            .map(|(colo, ip)| {
                let listen = format!("{ip}:0");
                let mut args = vec![
                    "--listen".to_owned(),
                    listen,
                    "--app-address".into(),
                    ip.to_string(),
                ];
                args.extend(extra(colo));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                util::EdgeProc::start(dir.path(), colo, &pg.url, &args)
            })
            .collect();
        Three { dir, nodes }
    }
}

/// A connector of `tunnel` that dials only `edges` and serves `ingress`
/// (`--config FILE` or `--url URL`) with `n` HA connections, once `at`
/// lists all `n`.
fn pinned_connector(
    at: &util::EdgeProc,
    tunnel: &str,
    creds: &std::path::Path,
    edges: &[&util::EdgeProc],
    ingress: [&str; 2],
    n: usize,
) -> util::Proc {
    let mut args: Vec<String> = edges
        .iter()
        .flat_map(|e| ["--edge".to_owned(), e.tunnel_addr.to_string()])
        .collect();
    args.extend(ingress.map(str::to_owned));
    args.extend(["--ha-connections".to_owned(), n.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    at.run_connector(tunnel, creds, "connector", &args, n)
}

/// Calls `probe` until it holds, for at most `limit`; how long it took.
fn within(limit: Duration, what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !probe() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

#[test]
fn a_change_made_at_any_node_is_in_force_on_all_three_within_a_second() {
    let pg = database();
    let three = Three::start(&pg);
    let [nrt, kix, osa] = &three.nodes[..] else {
        unreachable!()
    };
    // A tunnel created at NRT is listed by the others, and its
    // credentials (written by NRT) register at KIX: one trust domain.
    let creds = nrt.create_tunnel("web");
    for n in [kix, osa] {
        assert!(n.admin(&["tunnel", "list"]).unwrap().contains("web"));
    }
    let _connector = pinned_connector(
        kix,
        "web",
        &creds,
        &[kix],
        ["--url", "http://127.0.0.1:9"],
        1,
    );
    // One admin token for the cluster, in every node's file.
    let token = std::fs::read_to_string(&nrt.token_file).unwrap();
    for n in [kix, osa] {
        assert_eq!(std::fs::read_to_string(&n.token_file).unwrap(), token);
    }
    // Every node lists the three, live; KIX holds the connection, and
    // NRT's `tunnel info` shows it.
    let status: serde_json::Value =
        serde_json::from_str(&osa.admin(&["cluster", "status", "--json"]).unwrap()).unwrap();
    let status = status.as_array().unwrap();
    assert_eq!(status.len(), 3, "{status:?}");
    assert!(status.iter().all(|n| n["live"] == true), "{status:?}");
    let kix_row = status.iter().find(|n| n["colo"] == "KIX").unwrap();
    assert_eq!(kix_row["connections"], 1, "{status:?}");
    let conns = nrt.connections("web");
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["colo"], "KIX");
    // Neither the CA key nor the token is in the database as it is.
    let meta = pg.psql("SELECT key || '=' || value FROM meta").unwrap();
    assert!(
        meta.contains("cluster_ca=") && !meta.contains("PRIVATE KEY"),
        "{meta}"
    );
    assert!(!meta.contains(token.trim()), "the admin token in plain");
    // An app created at KIX listens on every node's own address.
    let origin = util::Origin::start(util::echo);
    let port = util::free_port();
    let (proto, o) = (format!("tcp/{port}"), format!("tcp://{}", origin.addr));
    kix.admin(&[
        "app",
        "create",
        "--protocol",
        &proto,
        "--origin",
        &o,
        "--ip-firewall",
    ])
    .expect("app create");
    for (colo, ip) in COLOS {
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let took = within(Duration::from_secs(1), colo, || {
            util::echo_round_trip(addr, b"hi").is_ok_and(|b| b == b"hi")
        });
        eprintln!("app at {colo}: {took:?}");
    }
    // An access rule created at OSA blocks at NRT.
    osa.admin(&[
        "access-rule",
        "create",
        "--mode",
        "block",
        "--target",
        "ip",
        "--value",
        "127.0.0.9",
    ])
    .expect("rule");
    let nrt_app: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let blocked: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    let took = within(Duration::from_secs(1), "block at NRT", || {
        util::echo_from(blocked, nrt_app, b"hi").is_empty()
    });
    eprintln!("access rule at NRT: {took:?}");
    // The app deleted at OSA stops listening everywhere.
    let id = kix.admin(&["app", "list", "--json"]).unwrap();
    let id = serde_json::from_str::<serde_json::Value>(&id).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    osa.admin(&["app", "delete", &id]).expect("app delete");
    for (colo, ip) in COLOS {
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        within(Duration::from_secs(1), colo, || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
        });
    }
    drop(three.dir);
}

/// A TCP proxy to `upstream` that can be cut: every relayed connection is
/// closed and new ones are refused (closed at once) until it is mended —
/// one node losing its database while the others keep theirs.
struct Cut {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Cut {
    fn start(upstream: SocketAddr) -> Cut {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c2, o2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                if c2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(u) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut o = o2.lock().unwrap();
                o.push(c.try_clone().unwrap());
                o.push(u.try_clone().unwrap());
                let (mut c1, mut u1) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                let (mut c, mut u) = (c, u);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut u1);
                    let _ = u1.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u, &mut c);
                    let _ = c.shutdown(Shutdown::Both);
                });
            }
        });
        Cut { addr, cut, open }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

#[test]
fn a_node_that_loses_the_database_for_20_s_keeps_serving_and_catches_up() {
    let pg = database();
    let dir = util::tempdir();
    let cut = Cut::start(format!("127.0.0.1:{}", pg.port).parse().unwrap());
    let via_cut = pg
        .url
        .replace(&format!(":{}/", pg.port), &format!(":{}/", cut.addr.port()));
    let nrt = util::EdgeProc::start(
        dir.path(),
        "NRT",
        &via_cut,
        &[
            "--listen",
            "127.0.0.2:0",
            "--app-address",
            "127.0.0.2",
            "--egress-allow",
            "127.0.0.1/32",
        ],
    );
    let kix = util::EdgeProc::start(
        dir.path(),
        "KIX",
        &pg.url,
        &["--listen", "127.0.0.3:0", "--app-address", "127.0.0.3"],
    );
    let origin = util::Origin::start(util::echo);
    let o = format!("tcp://{}", origin.addr);
    let app = |edge: &util::EdgeProc| -> u16 {
        let port = util::free_port();
        let proto = format!("tcp/{port}");
        edge.admin(&["app", "create", "--protocol", &proto, "--origin", &o])
            .expect("app create");
        port
    };
    let first = app(&kix);
    let at_nrt = |port: u16| -> SocketAddr { format!("127.0.0.2:{port}").parse().unwrap() };
    // And a tunnel whose connector is at KIX only: NRT carries its flows.
    let creds = kix.create_tunnel("web");
    let cfg = util::write_config(dir.path(), "config.yml", "echo.example.com", origin.addr);
    let cfg_arg = cfg.to_str().unwrap();
    let _connector = pinned_connector(&kix, "web", &creds, &[&kix], ["--config", cfg_arg], 1);
    let carried = nrt.create_app("web", "echo.example.com").port();
    within(Duration::from_secs(2), "a carried flow at NRT", || {
        util::echo_round_trip(at_nrt(carried), b"hi").is_ok_and(|b| b == b"hi")
    });
    // And a tunnel whose connector is at NRT (registered once, so NRT has
    // read the tunnel).
    let local_creds = nrt.create_tunnel("local");
    let at_nrt_edge = nrt.tunnel_addr.to_string();
    let local_args = [
        "--edge",
        &at_nrt_edge,
        "--config",
        cfg.to_str().unwrap(),
        "--ha-connections",
        "1",
    ];
    let local_connector =
        nrt.run_connector("local", &local_creds, "connector-local", &local_args, 1);
    let local_app = nrt.create_app("local", "echo.example.com").port();
    // And a zero-trust client connected at NRT once (so NRT has read its
    // device).
    nrt.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (device, _) = util::enroll_device(&nrt, dir.path(), "ana@example.com", "ana");
    let nrt_edge = nrt.tunnel_addr.to_string();
    let client = util::ClientProc::start(dir.path(), "client", &device, &["--edge", &nrt_edge]);
    let client_flow = |socks: &str| -> bool {
        let Ok(mut f) = util::socks_connect(socks, util::v4(origin.addr)) else {
            return false;
        };
        let mut back = [0u8; 2];
        f.write_all(b"hi").is_ok() && f.read_exact(&mut back).is_ok() && &back == b"hi"
    };
    assert!(client_flow(&client.socks));
    within(Duration::from_secs(1), "app at NRT", || {
        util::echo_round_trip(at_nrt(first), b"hi").is_ok()
    });
    assert_eq!(nrt.metric("burrow_edge_store_up"), 1.0);
    // An established flow, open across the outage.
    let mut long = util::connect(at_nrt(first), Duration::from_secs(2));
    long.write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    long.read_exact(&mut buf).unwrap();

    cut.set_cut(true);
    within(Duration::from_secs(10), "store_up 0", || {
        nrt.metric("burrow_edge_store_up") == 0.0
    });
    // Made at KIX while NRT cannot see the database.
    let second = app(&kix);
    let outage = Instant::now();
    let mut flows = 0;
    while outage.elapsed() < Duration::from_secs(20) {
        let payload = util::pattern(&mut (flows + 1), 4096);
        assert_eq!(
            util::echo_round_trip(at_nrt(first), &payload).unwrap(),
            payload,
            "a new flow during the outage"
        );
        let t = Instant::now();
        assert_eq!(
            util::echo_round_trip(at_nrt(carried), &payload)
                .unwrap_or_else(|e| panic!("{e}\n{}", nrt.proc.log())),
            payload,
            "a new flow carried to KIX during the outage"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        flows += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(flows > 50, "{flows} flows");
    // A connector that restarts while NRT's database is away registers
    // there again, checked against the tunnel as NRT read it last.
    drop(local_connector);
    let _again = util::connector(dir.path(), "connector-local-2", &local_creds, &local_args);
    within(
        Duration::from_secs(10),
        "a flow through the re-registered connector",
        || util::echo_round_trip(at_nrt(local_app), b"again").is_ok_and(|b| b == b"again"),
    );
    assert!(nrt.proc.log().contains("against the tunnel as last read"));
    // The client too, checked against its device as last read.
    drop(client);
    let client = util::ClientProc::start(dir.path(), "client-2", &device, &["--edge", &nrt_edge]);
    within(
        Duration::from_secs(10),
        "a client flow after reconnecting",
        || client_flow(&client.socks),
    );
    assert!(nrt.proc.log().contains("checking the device as last read"));
    long.write_all(b"during").unwrap();
    long.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"during");
    assert!(
        std::net::TcpStream::connect_timeout(&at_nrt(second), Duration::from_millis(200)).is_err(),
        "NRT knew of an app made while it was away"
    );

    cut.set_cut(false);
    let took = within(Duration::from_secs(5), "store_up 1", || {
        nrt.metric("burrow_edge_store_up") == 1.0
    });
    eprintln!("store back after {took:?}");
    within(
        Duration::from_secs(2),
        "the app made meanwhile, at NRT",
        || util::echo_round_trip(at_nrt(second), b"hi").is_ok_and(|b| b == b"hi"),
    );
    nrt.proc
        .wait_log("the state store is back", Duration::from_secs(5));
}

#[test]
fn a_killed_node_is_dead_to_the_others_within_its_lease() {
    let pg = database();
    let mut three = Three::start(&pg);
    let creds = three.nodes[0].create_tunnel("web");
    let kix = &three.nodes[1];
    let _connector = pinned_connector(
        kix,
        "web",
        &creds,
        &[kix],
        ["--url", "http://127.0.0.1:9"],
        1,
    );
    let kix = three.nodes.remove(1);
    kix.proc.signal("KILL");
    let nrt = &three.nodes[0];
    let took = within(Duration::from_secs(10), "KIX dead at NRT", || {
        let out = nrt.admin(&["cluster", "status"]).unwrap();
        out.lines().any(|l| l.contains("KIX") && l.contains("DEAD"))
            && nrt.connections("web").is_empty()
    });
    eprintln!("KIX dead after {took:?}");
    // The table names the columns an operator reads.
    let out = nrt.admin(&["cluster", "status"]).unwrap();
    assert!(
        out.contains("LEASE") && out.contains("(this node)"),
        "{out}"
    );
    drop(kix);
}

/// A raw HTTP/1.1 GET to `addr` for `host`; the whole answer.
fn get(addr: SocketAddr, host: &str) -> String {
    let mut s = util::connect(addr, Duration::from_secs(5));
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn flows_at_nodes_without_the_connector_reach_the_origin_through_the_node_that_has_it() {
    let pg = database();
    let three = Three::start_with(&pg, |colo| {
        if colo == "OSA" {
            vec!["--http".into(), "127.0.0.4:0".into()]
        } else {
            vec![]
        }
    });
    let [nrt, kix, osa] = &three.nodes[..] else {
        unreachable!()
    };
    let bulk = util::Origin::start(util::bulk);
    let web = util::httporigin::HttpOrigin::start("W");
    let cfg = three.dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "ingress:\n  - hostname: bulk.example.com\n    service: tcp://{}\n  \
             - hostname: www.example.com\n    service: http://{}\n  \
             - hostname: dead.example.com\n    service: tcp://127.0.0.1:1\n  - service: http_status:404\n",
            bulk.addr, web.addr
        ),
    )
    .unwrap();
    let creds = nrt.create_tunnel("web");
    let _connector = pinned_connector(
        kix,
        "web",
        &creds,
        &[kix],
        ["--config", cfg.to_str().unwrap()],
        2,
    );
    // A TCP app, answered at NRT's address; NRT holds no connection.
    let app = nrt.create_app("web", "bulk.example.com");
    let app = SocketAddr::new("127.0.0.2".parse().unwrap(), app.port());
    within(Duration::from_secs(2), "app at NRT", || {
        std::net::TcpStream::connect_timeout(&app, Duration::from_millis(200)).is_ok()
    });
    util::bulk_both_ways(app, "through NRT → KIX");
    // A flow the connector refuses (its origin is down): the refusal
    // comes back through KIX with the connector's reason.
    let refused = nrt.create_app("web", "dead.example.com");
    let refused = SocketAddr::new("127.0.0.2".parse().unwrap(), refused.port());
    assert_eq!(
        util::echo_round_trip(refused, b"hi").unwrap_or_default(),
        b""
    );
    nrt.proc
        .wait_log("connector refused the flow", Duration::from_secs(5));
    // An HTTP route, asked at OSA's listener.
    osa.admin(&["route", "dns", "web", "www.example.com"])
        .expect("route dns");
    let answer = get(osa.http_addr.unwrap(), "www.example.com");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("origin W") && answer.contains("host www.example.com"),
        "{answer}"
    );
    // Counted where they left and where they arrived; KIX measured its
    // round trips to the others.
    assert!(nrt.metric("burrow_edge_forwarded_flows_out_total") >= 2.0);
    assert!(osa.metric("burrow_edge_forwarded_flows_out_total") >= 1.0);
    assert!(kix.metric("burrow_edge_forwarded_flows_in_total") >= 3.0);
    within(Duration::from_secs(6), "RTT to NRT measured at KIX", || {
        let (_, body) = util::http(&kix.admin_url, "GET", "/metrics", None, "");
        body.contains("burrow_edge_node_rtt_seconds{") && body.contains("colo=\"NRT\"")
    });
}

/// `burrow tunnel diag` against the edges `dns` names; its output and
/// whether it passed.
fn diag(dns: &str, creds: &std::path::Path) -> (String, bool) {
    let out = std::process::Command::new(util::BIN)
        .args(["tunnel", "diag", "--dns-server", dns, "--credentials-file"])
        .arg(creds)
        .output()
        .unwrap();
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.success(),
    )
}

#[test]
fn when_a_node_is_killed_its_srv_record_goes_and_flows_resume_through_the_others() {
    let pg = database();
    let mut three = Three::start_with(&pg, |colo| {
        let ip = COLOS.iter().find(|(c, _)| *c == colo).unwrap().1;
        vec!["--dns".into(), format!("{ip}:0")]
    });
    let dns_of = |n: &util::EdgeProc| -> String {
        n.proc
            .wait_line("DNS:", Duration::from_secs(5))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let dns = dns_of(&three.nodes[0]);
    let origin = util::Origin::start(util::echo);
    let cfg = util::write_config(
        three.dir.path(),
        "config.yml",
        "echo.example.com",
        origin.addr,
    );
    let creds = three.nodes[0].create_tunnel("web");
    // The SRV record lists the three nodes once NRT has read them (the
    // next beat); diag checks each.
    within(
        Duration::from_secs(5),
        "three nodes in the SRV record",
        || {
            let (out, ok) = diag(&dns, &creds);
            ok && COLOS.iter().all(|(_, ip)| out.contains(ip))
        },
    );

    // The connector finds the edges through the responder, no --edge.
    let connector = util::connector(
        three.dir.path(),
        "connector",
        &creds,
        &[
            "--dns-server",
            &dns,
            "--config",
            cfg.to_str().unwrap(),
            "--ha-connections",
            "4",
        ],
    );
    three.nodes[0].wait_connections("web", 4, Duration::from_secs(20));
    let app = three.nodes[2].create_app("web", "echo.example.com");
    let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), app.port());
    within(Duration::from_secs(2), "the app on every node", || {
        COLOS
            .iter()
            .all(|(_, ip)| util::echo_round_trip(at(ip), b"hi").is_ok_and(|b| b == b"hi"))
    });
    let held_by_kix = three.nodes[0]
        .connections("web")
        .iter()
        .filter(|c| c["colo"] == "KIX")
        .count();
    assert!(
        held_by_kix > 0,
        "KIX holds none of the 4 connections: {:?}\n{}",
        three.nodes[0].connections("web"),
        connector.log()
    );
    // KIX dies. Flows at NRT and OSA resume within the lease (6 s) and
    // the connector re-homes on the live nodes.
    let kix = three.nodes.remove(1);
    kix.proc.signal("KILL");
    let killed = Instant::now();
    let resumed = within(Duration::from_secs(10), "flows at NRT and OSA", || {
        [COLOS[0].1, COLOS[2].1]
            .iter()
            .all(|ip| util::echo_round_trip(at(ip), b"again").is_ok_and(|b| b == b"again"))
    });
    eprintln!("flows resumed {resumed:?} after the kill");
    // Then nothing fails: 200 flows in a row over the two live nodes.
    for i in 0..200u64 {
        let payload = util::pattern(&mut (i + 1), 2048);
        let ip = [COLOS[0].1, COLOS[2].1][usize::try_from(i % 2).unwrap()];
        assert_eq!(
            util::echo_round_trip(at(ip), &payload).unwrap(),
            payload,
            "flow {i}"
        );
    }
    // KIX's SRV record is gone within its lease; its connections too.
    within(Duration::from_secs(10), "KIX out of the SRV record", || {
        let (out, _) = diag(&dns, &creds);
        !out.contains(COLOS[1].1)
    });
    three.nodes[0].wait_connections("web", 4, Duration::from_secs(20));
    assert!(three.nodes[0]
        .connections("web")
        .iter()
        .all(|c| c["colo"] != "KIX"));
    eprintln!("re-homed {:?} after the kill", killed.elapsed());
    drop((kix, connector));
}

#[test]
fn a_device_revoked_at_one_node_is_refused_at_every_node_and_its_live_session_ends() {
    let pg = database();
    let three = Three::start_with(&pg, |_| {
        vec!["--egress-allow".into(), "127.0.0.1/32".into()]
    });
    let [nrt, kix, osa] = &three.nodes[..] else {
        unreachable!()
    };
    let echo = util::Origin::start(util::echo);
    nrt.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, device) = util::enroll_device(nrt, three.dir.path(), "ana@example.com", "ana");
    // Connected at NRT, and (the same device) at KIX.
    let at_nrt = util::ClientProc::start(three.dir.path(), "client-nrt", &creds, &[]);
    let kix_edge = kix.tunnel_addr.to_string();
    let at_kix = util::ClientProc::start(
        three.dir.path(),
        "client-kix",
        &creds,
        &["--edge", &kix_edge],
    );
    let mut flows: Vec<std::net::TcpStream> = [&at_nrt, &at_kix]
        .iter()
        .map(|c| util::socks_connect(&c.socks, util::v4(echo.addr)).unwrap())
        .collect();
    for f in &mut flows {
        f.write_all(b"before").unwrap();
        let mut back = [0u8; 6];
        f.read_exact(&mut back).unwrap();
    }
    // Revoked through OSA: both sessions end within 2 s.
    let t = Instant::now();
    osa.admin(&["device", "revoke", &device]).unwrap();
    for f in &mut flows {
        f.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let closed = matches!(f.read(&mut buf), Ok(0) | Err(_));
        assert!(
            closed && t.elapsed() < Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
    eprintln!("both sessions ended {:?} after the revocation", t.elapsed());
    // And a fresh start at OSA is refused.
    let osa_edge = osa.tunnel_addr.to_string();
    let again = util::Proc::spawn(
        three.dir.path(),
        "client-osa",
        &[
            "client",
            "--credentials",
            creds.to_str().unwrap(),
            "--edge",
            &osa_edge,
            "--socks",
            "127.0.0.1:0",
        ],
    );
    again.wait_log("revoked", Duration::from_secs(10));
}

#[test]
fn flows_carried_through_a_node_that_dies_go_to_the_other_holder_at_once() {
    let pg = database();
    let mut three = Three::start(&pg);
    let origin = util::Origin::start(util::echo);
    let cfg = util::write_config(
        three.dir.path(),
        "config.yml",
        "echo.example.com",
        origin.addr,
    );
    let creds = three.nodes[0].create_tunnel("web");
    // The connector on KIX and OSA only; NRT carries its flows to them.
    let _connector = pinned_connector(
        &three.nodes[0],
        "web",
        &creds,
        &[&three.nodes[1], &three.nodes[2]],
        ["--config", cfg.to_str().unwrap()],
        4,
    );
    let app = three.nodes[0].create_app("web", "echo.example.com");
    let at_nrt = SocketAddr::new("127.0.0.2".parse().unwrap(), app.port());
    // One flow: connect, echo 16 bytes, within 3 s.
    let flow = || -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&at_nrt, Duration::from_secs(3)) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut back = [0u8; 16];
        s.write_all(&[7; 16]).is_ok() && s.read_exact(&mut back).is_ok() && back == [7; 16]
    };
    within(Duration::from_secs(5), "a flow at NRT", flow);
    let kix_node = three.nodes.remove(1);
    kix_node.proc.signal("KILL");
    let killed = Instant::now();
    let (mut failed, mut n, mut last_ok, mut worst) = (0, 0, Instant::now(), Duration::ZERO);
    while killed.elapsed() < Duration::from_secs(8) {
        n += 1;
        if flow() {
            worst = worst.max(last_ok.elapsed());
            last_ok = Instant::now();
        } else {
            failed += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{failed} of {n} flows failed; longest gap {worst:?}");
    assert!(
        worst < Duration::from_secs(2),
        "longest gap without a flow {worst:?}"
    );
    assert!(failed <= 2, "{failed} of {n} flows failed");
    drop(kix_node);
}

/// What a destination that reports the source address it sees says,
/// reached through the SOCKS proxy `socks`.
fn seen_through(socks: &str, to: SocketAddr) -> String {
    let Ok(mut s) = util::socks_connect(socks, util::v4(to)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn dedicated_egress_leaves_from_a_live_node_of_the_owning_colo_without_peer_flags() {
    let pg = database();
    let mut three = Three::start_with(&pg, |_| vec!["--egress-allow".into(), "127.0.0.0/8".into()]);
    let nrt = &three.nodes[0];
    nrt.admin(&["egress-ip", "add", "127.0.0.7", "--colo", "KIX"])
        .unwrap();
    nrt.admin(&["egress-ip", "add", "127.0.0.8", "--colo", "NRT"])
        .unwrap();
    // Set at OSA, in force at NRT.
    three.nodes[2]
        .admin(&[
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
        .unwrap();
    nrt.admin(&["user", "add", "ana@example.com"]).unwrap();
    let (creds, _) = util::enroll_device(nrt, three.dir.path(), "ana@example.com", "ana");
    let client = util::ClientProc::start(three.dir.path(), "client", &creds, &[]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = s.write_all(peer.as_bytes());
        }
    });
    // KIX owns 127.0.0.7: the client's flow at NRT leaves from KIX's node,
    // found through the membership (no --peer anywhere).
    assert_eq!(seen_through(&client.socks, dst), "127.0.0.7");
    three.nodes[1]
        .proc
        .wait_log("peer egress", Duration::from_secs(5));
    // KIX dies: the secondary, NRT's own IP.
    let kix = three.nodes.remove(1);
    kix.proc.signal("KILL");
    let t = Instant::now();
    let seen = seen_through(&client.socks, dst);
    assert_eq!(seen, "127.0.0.8", "after {:?}", t.elapsed());
    eprintln!(
        "left from the secondary {:?} after KIX was killed",
        t.elapsed()
    );
    drop(kix);
}

#[test]
fn a_node_partitioned_by_nftables_is_dead_to_the_others_and_gets_no_flows() {
    if !util::is_root() {
        eprintln!("skipped: network namespaces and nftables need root");
        return;
    }
    let pg = database();
    // OSA in a namespace of its own, reaching the database and the others
    // over a veth pair (10.201.9.1 outside, .2 inside).
    let ns = util::Netns::create(9);
    pg.listen_also("10.201.9.1", "10.201.9.0/30").unwrap();
    let dir = util::tempdir();
    let nrt = util::EdgeProc::start(
        dir.path(),
        "NRT",
        &pg.url,
        &["--listen", "127.0.0.2:0", "--app-address", "127.0.0.2"],
    );
    let url = pg.url.replace("127.0.0.1", "10.201.9.1");
    let secret = dir.path().join("cluster.secret");
    let osa = util::Proc::spawn_in_netns(
        dir.path(),
        "edge-OSA",
        &ns.name,
        &[
            "edge",
            "--colo",
            "OSA",
            "--store",
            &url,
            "--data-dir",
            "OSA.d",
            "--cluster-secret-file",
            secret.to_str().unwrap(),
            "--listen",
            "10.201.9.2:0",
            "--admin",
            "10.201.9.2:0",
            "--app-address",
            "10.201.9.2",
            "--grace-period",
            "1s",
        ],
    );
    let osa = util::EdgeProc::started_with_token(
        osa,
        dir.path(),
        dir.path().join("OSA.d/admin.token"),
        &[],
    );
    let origin = util::Origin::start(util::echo);
    let cfg = util::write_config(dir.path(), "config.yml", "echo.example.com", origin.addr);
    let creds = nrt.create_tunnel("web");
    let _connector = pinned_connector(
        &nrt,
        "web",
        &creds,
        &[&osa],
        ["--config", cfg.to_str().unwrap()],
        2,
    );
    let app = nrt.create_app("web", "echo.example.com");
    let at_nrt = SocketAddr::new("127.0.0.2".parse().unwrap(), app.port());
    within(Duration::from_secs(5), "a flow at NRT through OSA", || {
        util::echo_round_trip(at_nrt, b"hi").is_ok_and(|b| b == b"hi")
    });
    // Partition OSA: nothing in or out of its namespace.
    let rules = "table inet partition {\n  chain in { type filter hook input priority 0; policy drop; }\n  \
                 chain out { type filter hook output priority 0; policy drop; }\n}\n";
    let rules_file = dir.path().join("partition.nft");
    std::fs::write(&rules_file, rules).unwrap();
    let out = ns.exec(&["nft", "-f", rules_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    // Its lease lapses at NRT (6 s, read every 2 s).
    within(Duration::from_secs(12), "OSA dead at NRT", || {
        let s = nrt.admin(&["cluster", "status"]).unwrap();
        s.lines().any(|l| l.contains("OSA") && l.contains("DEAD"))
    });
    eprintln!("OSA dead at NRT {:?} after the partition", t.elapsed());
    // NRT sends it nothing more: a flow now fails at once, saying why.
    let before = nrt.metric("burrow_edge_forwarded_flows_out_total");
    let t = Instant::now();
    assert_eq!(
        util::echo_round_trip(at_nrt, b"hi").unwrap_or_default(),
        b""
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    nrt.proc
        .wait_log("at any live edge node", Duration::from_secs(2));
    assert_eq!(nrt.metric("burrow_edge_forwarded_flows_out_total"), before);
    drop(ns);
}

#[test]
fn nodes_of_two_protocol_versions_carry_each_others_flows_during_an_upgrade() {
    let pg = database();
    // OSA behaves as a node of the previous release: version 1 only.
    let three = Three::start_with(&pg, |colo| {
        if colo == "OSA" {
            vec!["--wire-version".into(), "1".into()]
        } else {
            vec![]
        }
    });
    let [nrt, _kix, osa] = &three.nodes[..] else {
        unreachable!()
    };
    let echo = util::Origin::start(util::echo);
    let url = format!("tcp://{}", echo.addr);
    // A connector at the old node (it falls back to version 1), a flow
    // at a new node: the new node's link to OSA falls back too.
    let old = nrt.create_tunnel("old");
    let _at_osa = pinned_connector(osa, "old", &old, &[osa], ["--url", &url], 1);
    assert_eq!(nrt.connections("old")[0]["wire"], 1);
    let app = nrt.create_app("old", "old.example.com");
    let app = SocketAddr::new("127.0.0.2".parse().unwrap(), app.port());
    let payload = b"across versions".repeat(4000);
    within(Duration::from_secs(3), "NRT → OSA (version 1)", || {
        util::echo_round_trip(app, &payload).ok().as_deref() == Some(&payload[..])
    });
    nrt.proc
        .wait_log("speaking version 1", Duration::from_secs(2));
    // And the other way: a connector at a new node in version 2, a flow
    // at the old node, which speaks version 1 to it.
    let new = nrt.create_tunnel("new");
    let _at_nrt = pinned_connector(nrt, "new", &new, &[nrt], ["--url", &url], 1);
    assert_eq!(nrt.connections("new")[0]["wire"], 2);
    let app = osa.create_app("new", "new.example.com");
    let app = SocketAddr::new("127.0.0.4".parse().unwrap(), app.port());
    within(Duration::from_secs(3), "OSA → NRT (version 1)", || {
        util::echo_round_trip(app, &payload).ok().as_deref() == Some(&payload[..])
    });
    assert!(nrt.metric("burrow_edge_forwarded_flows_in_total") >= 1.0);
    assert!(osa.metric("burrow_edge_forwarded_flows_in_total") >= 1.0);
}
