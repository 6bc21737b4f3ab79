//! Operating burrow: the connector's metrics server (cloudflared's metric
//! names), /ready and `burrow tunnel ready`, both metrics outputs checked by
//! `promtool check metrics`, JSON logs to a rotated file, and the systemd
//! units of `burrow service install` checked by `systemd-analyze verify`.
#![allow(missing_docs)]

mod util;

use std::io::Write;
use std::time::Duration;
use util::*;

/// The series' value in a Prometheus text exposition (0 when absent).
fn value(text: &str, series: &str) -> f64 {
    series_value(text, series)
}

/// cloudflared's families from `testdata/cloudflared-metrics.txt`:
/// (name, type, label names).
fn cloudflared_families() -> Vec<(String, String, Vec<String>)> {
    include_str!("testdata/cloudflared-metrics.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let labels = match f[2] {
                "-" => Vec::new(),
                ls => ls.split(',').map(str::to_owned).collect(),
            };
            (f[0].to_owned(), f[1].to_owned(), labels)
        })
        .collect()
}

/// promtool's lint lines that cloudflared's own names and labels raise:
/// counters without `_total`, camelCase label names.
fn cloudflared_lints() -> Vec<String> {
    let mut out = Vec::new();
    for (n, t, labels) in cloudflared_families() {
        if t == "counter" && !n.ends_with("_total") {
            out.push(format!("{n} counter metrics should have \"_total\" suffix"));
        }
        if labels
            .iter()
            .any(|l| l.chars().any(|c| c.is_ascii_uppercase()))
        {
            out.push(format!(
                "{n} label names should be written in 'snake_case' not 'camelCase'"
            ));
        }
    }
    out
}

/// Every family of the list is in `text` (classic format) with its type
/// and exactly its label names.
fn same_families_as_cloudflared(text: &str) {
    for (name, ty, labels) in cloudflared_families() {
        assert!(
            text.contains(&format!("# TYPE {name} {ty}\n")),
            "{name}: not exported as {ty}:\n{text}"
        );
        let suffix = if ty == "histogram" { "_count" } else { "" };
        let sample = text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{name}{suffix}{{"))
                    || l.starts_with(&format!("{name}{suffix} "))
            })
            .unwrap_or_else(|| panic!("{name}: no sample:\n{text}"));
        let mut got: Vec<String> = match sample.split_once('{') {
            Some((_, rest)) => rest
                .split('}')
                .next()
                .unwrap()
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
                .filter(|k| k != "le")
                .collect(),
            None => Vec::new(),
        };
        got.sort();
        let mut want = labels.clone();
        want.sort();
        assert_eq!(got, want, "{name}: label names");
    }
}

fn promtool(text: &str, what: &str) {
    promtool_allowing(text, what, Vec::new());
}

/// `promtool check metrics`, where only the lint lines in `allowed` may be
/// reported.
fn promtool_allowing(text: &str, what: &str, allowed: Vec<String>) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed; .ci/run installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !allowed.iter().any(|a| a == l))
        .collect();
    assert!(
        unexpected.is_empty() && (out.status.success() || !allowed.is_empty()),
        "promtool check metrics failed on the {what} output:\n{report}\n---\n{text}"
    );
}

#[test]
fn connector_metrics_keep_cloudflared_names_and_ready_follows_the_edge() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let mut edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let creds = edge.create_tunnel("t");
    let app = edge.create_app("t", "tcp.example.com");
    let dead_app = edge.create_app("t", "dead.example.com");
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "ingress:\n  - hostname: tcp.example.com\n    service: tcp://{}\n  - hostname: web.example.com\n    service: http_status:200\n  - hostname: dead.example.com\n    service: tcp://127.0.0.1:{dead}\n  - service: http_status:404\n",
            origin.addr,
            dead = free_port()
        ),
    )
    .unwrap();
    let connector = connector(
        dir.path(),
        "connector",
        &creds,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
            "--ha-connections",
            "2",
        ],
    );
    let url = connector.wait_line("metrics:", Duration::from_secs(20));
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    edge.wait_connections("t", 2, Duration::from_secs(20));
    edge.admin(&["route", "dns", "t", "web.example.com"])
        .expect("route");

    // Ready: 200 with the count; `burrow tunnel ready` agrees.
    let (code, body) = http(&format!("http://{addr}"), "GET", "/ready", None, "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["readyConnections"], 2, "{body}");
    assert!(v["connectorId"].as_str().is_some_and(|s| s.len() == 36));
    let ready = |d: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args(["tunnel", "ready", "--metrics", &addr.to_string()])
            .current_dir(d)
            .output()
            .unwrap()
    };
    assert!(ready(dir.path()).status.success());

    // Traffic: two TCP flows (known bytes) and three HTTP requests.
    for _ in 0..2 {
        assert_eq!(echo_round_trip(app, &[7u8; 1000]).unwrap(), vec![7u8; 1000]);
    }
    let http_addr = edge.http_addr.unwrap();
    for _ in 0..3 {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: web.example.com",
            ])
            .arg(format!("http://{http_addr}/"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
    // One flow whose origin refuses: counted by reason, the client is cut.
    let mut s = connect(dead_app, Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut s, &mut buf).unwrap_or(0), 0);
    std::thread::sleep(Duration::from_millis(300));
    let (code, text) = http(&format!("http://{addr}"), "GET", "/metrics", None, "");
    assert_eq!(code, 200);
    assert_eq!(
        value(&text, "cloudflared_tunnel_ha_connections"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cloudflared_tcp_total_sessions"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cloudflared_tcp_active_sessions"),
        0.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cloudflared_tunnel_total_requests"),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "cloudflared_tunnel_response_by_code{status_code=\"200\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "burrow_connector_bytes_total{rule=\"0\",direction=\"to_origin\"}"
        ),
        2000.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "burrow_connector_bytes_total{rule=\"0\",direction=\"from_origin\"}"
        ),
        2000.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "cloudflared_tunnel_tunnel_register_success{rpcName=\"register_connection\"}"
        ),
        2.0
    );
    assert!(text.contains("edge_location=\"NRT\""), "{text}");
    assert!(
        text.contains("cloudflared_proxy_connect_latency_count 2"),
        "{text}"
    );
    assert!(text.contains("build_info{goversion="), "{text}");
    assert!(
        value(&text, "burrow_connector_ephemeral_ports") > 0.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "burrow_connector_origin_dial_failures_total{reason=\"refused\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cloudflared_proxy_connect_streams_errors"),
        1.0
    );
    same_families_as_cloudflared(&text);
    // cloudflared's counters keep their names, which lack `_total`, and
    // its `rpcName` label: promtool's lints about those, and nothing else.
    promtool_allowing(&text, "connector", cloudflared_lints());
    let (_, edge_text) = http(&edge.admin_url, "GET", "/metrics", None, "");
    promtool(&edge_text, "edge");
    let tid = {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
        v["TunnelID"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        value(
            &edge_text,
            &format!(
                "burrow_edge_tunnel_connections_by_tunnel{{tunnel_id=\"{tid}\",colo=\"NRT\"}}"
            )
        ),
        2.0,
        "{edge_text}"
    );
    assert!(
        edge_text.contains("burrow_edge_session_log_queue 0"),
        "{edge_text}"
    );
    // The app's bytes and (no longer) active flows, by app id.
    let app_lines: Vec<&str> = edge_text
        .lines()
        .filter(|l| l.starts_with("burrow_edge_app_bytes_total{"))
        .collect();
    for direction in ["to_origin", "from_origin"] {
        assert!(
            app_lines
                .iter()
                .any(|l| l.contains(&format!("direction=\"{direction}\"")) && l.ends_with(" 2000")),
            "{edge_text}"
        );
    }
    assert!(
        edge_text.contains("burrow_edge_app_active_flows{app="),
        "{edge_text}"
    );

    // The Grafana dashboard in deploy/ asks only for series burrow exports
    // (client sessions are exported once a client has had one).
    let dash = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/burrow.json"),
    )
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        let expr = panel["targets"][0]["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let ours = word.starts_with("cloudflared_") || word.starts_with("burrow_");
            if !ours || word == "burrow_edge_client_sessions_total" {
                continue;
            }
            assert!(
                text.contains(&format!("\n{word}")) || edge_text.contains(&format!("\n{word}")),
                "dashboard panel '{}' uses {word}, which no /metrics output has",
                panel["title"]
            );
        }
    }

    // The edge goes away: not ready any more.
    edge.proc.signal("TERM");
    edge.proc.wait_exit(Duration::from_secs(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = ready(dir.path());
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not ready (503)"), "{err}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still ready without an edge"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(connector);
}

#[test]
fn logs_go_to_a_json_logfile_when_asked() {
    let dir = tempdir();
    let log = dir.path().join("edge.log");
    let log_s = log.to_string_lossy().into_owned();
    let edge = EdgeProc::start(
        dir.path(),
        "NRT",
        "edge.db",
        &["--logfile", &log_s, "--output", "json"],
    );
    edge.admin(&["tunnel", "create", "t"])
        .expect("tunnel create");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        if lines
            .iter()
            .any(|l| l["fields"]["message"] == "tunnel created")
            || std::time::Instant::now() > deadline
        {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "tunnel created"),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l["level"].is_string()));
    // Nothing went to stderr meanwhile.
    assert!(
        !edge.proc.log().contains("tunnel created"),
        "{}",
        edge.proc.log()
    );
}

#[test]
fn service_units_pass_systemd_verification() {
    let dir = tempdir();
    let burrow = env!("CARGO_BIN_EXE_burrow");
    // The README's test command (.ci/test) installs systemd; a unit is
    // checked by systemd itself, never by its shape alone.
    let analyze = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        analyze,
        "systemd-analyze must be installed (apt-get install systemd; bash .ci/test does it)"
    );
    for (kind, unit) in [
        ("edge", "burrow-edge.service"),
        ("connector", "burrow-connector.service"),
    ] {
        let config = dir.path().join("service.yml");
        let out = std::process::Command::new(burrow)
            .args([
                "service", "install", kind, "--user", "burrow", "--binary", burrow,
            ])
            .arg("--config")
            .arg(&config)
            .arg("--unit-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!(
                "systemctl daemon-reload && systemctl enable --now {unit}"
            )),
            "{stdout}"
        );
        let path = dir.path().join(unit);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("NoNewPrivileges=yes") && text.contains("ProtectSystem=strict"));
        assert!(text.contains(&format!("ExecStart={burrow} ")), "{text}");
        assert!(
            text.contains(&format!("WorkingDirectory={}\n", dir.path().display())),
            "relative paths in the config resolve beside it: {text}"
        );
        let v = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "systemd-analyze verify {unit}:\n{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    // By default the unit runs the installed path, not this build tree's
    // binary, and the next steps say how to put it there.
    let out = std::process::Command::new(burrow)
        .args(["service", "install", "connector", "--unit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("install -m 0755 {burrow} /usr/local/bin/burrow")),
        "{stdout}"
    );
    let text = std::fs::read_to_string(dir.path().join("burrow-connector.service")).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/burrow tunnel run"),
        "{text}"
    );
    // A relative config path is refused, naming the flag.
    let out = std::process::Command::new(burrow)
        .args([
            "service",
            "install",
            "connector",
            "--config",
            "config.yml",
            "--print",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn deploy_examples_load() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let edge = std::fs::read_to_string(deploy.join("edge.yaml")).unwrap();
    let f = burrow_config::edge::parse_edge_yaml(&edge).expect("deploy/edge.yaml");
    assert_eq!(f.colo.as_deref(), Some("NRT"));
    // Every flag of `burrow edge` is shown as a key (set or commented).
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["edge", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=', '<']).next())
        .filter(|f| !["config", "help", "version"].contains(f))
    {
        assert!(
            edge.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{flag}:"))),
            "deploy/edge.yaml lacks the key {flag}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["tunnel", "ingress", "validate", "--config"])
        .arg(deploy.join("config.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(deploy.join("prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One echo round trip on a held connection; `false` when the flow was cut.
fn echo_once(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    if s.write_all(b"x").is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(1)) && b[0] == b'x'
}

#[test]
fn port_exhaustion_at_the_connector_is_logged_counted_and_recovers() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let dir = tempdir();
    let ns = Netns::create(7);
    // Four ephemeral ports inside the namespace: four origin connections.
    ns.ephemeral_ports("40000 40003");
    // An echo origin inside the namespace (socat), on its loopback.
    let origin_port = 7007;
    let _socat = ns.echo_origin(origin_port);

    let listen = format!("10.201.7.1:{}", free_port());
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--listen", &listen]);
    let creds = edge.create_tunnel("t");
    let app = edge.create_app("t", "pe.example.com");
    let c = creds.to_string_lossy().into_owned();
    let url = format!("tcp://127.0.0.1:{origin_port}");
    let connector = Proc::spawn_in_netns(
        dir.path(),
        "connector",
        &ns.name,
        &[
            "tunnel",
            "run",
            "--credentials-file",
            &c,
            "--edge",
            &listen,
            "--url",
            &url,
            "--ha-connections",
            "1",
            "--protocol",
            "quic",
            "--metrics",
            "10.201.7.2:0",
            "--grace-period",
            "2s",
        ],
    );
    let metrics_url = connector.wait_line("metrics:", Duration::from_secs(20));
    let metrics_addr = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    edge.wait_connections("t", 1, Duration::from_secs(20));

    // Hold connections until the connector runs out of ports (bounded).
    let mut held = Vec::new();
    let mut cut_at = None;
    for i in 0..10 {
        let mut s = connect(app, Duration::from_secs(5));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if echo_once(&mut s) {
            held.push(s);
        } else {
            cut_at = Some(i);
            break;
        }
    }
    let cut_at = cut_at.expect("ten connections through four ports");
    assert!((1..=4).contains(&cut_at), "cut after {cut_at}");
    // The log says why, the metric counts it, the edge tells the reason.
    connector.wait_log("no free local port", Duration::from_secs(5));
    edge.proc
        .wait_log("no free local port", Duration::from_secs(5));
    let (_, text) = http(
        &format!("http://{metrics_addr}"),
        "GET",
        "/metrics",
        None,
        "",
    );
    assert!(
        value(
            &text,
            "burrow_connector_origin_dial_failures_total{reason=\"port_exhaustion\"}"
        ) >= 1.0,
        "{text}"
    );
    // The held origin connections show as ports in use.
    assert!(
        value(&text, "burrow_connector_ephemeral_ports_in_use") >= cut_at as f64,
        "{text}"
    );
    assert_eq!(value(&text, "burrow_connector_ephemeral_ports"), 4.0);
    // Free the ports: new flows work again.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = connect(app, Duration::from_secs(5));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if echo_once(&mut s) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(connector);
}

/// `burrow tunnel diag --json` against the SRV record served by `dns`.
fn diag(
    dir: &std::path::Path,
    dns: std::net::SocketAddr,
    creds: &std::path::Path,
) -> (bool, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "tunnel",
            "diag",
            "--json",
            "--dns-server",
            &dns.to_string(),
            "--credentials-file",
        ])
        .arg(creds)
        .current_dir(dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), v)
}

fn verdicts(v: &serde_json::Value, check: &str) -> Vec<(String, String)> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == check)
        .map(|c| {
            (
                c["verdict"].as_str().unwrap().to_owned(),
                c["hint"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn diag_checks_dns_tcp_tls_and_quic_and_names_blocked_udp() {
    let dir = tempdir();
    let healthy = EdgeProc::start(dir.path(), "NRT", "a.db", &[]);
    let creds = healthy.create_tunnel("t");
    let no_quic = EdgeProc::start(dir.path(), "KIX", "b.db", &["--disable-quic"]);
    // Healthy: the SRV targets resolve and every transport check passes,
    // certificates verified with the credentials' CA.
    let dns = srv_dns_server([healthy.tunnel_addr.port(), healthy.tunnel_addr.port()]);
    let (ok, v) = diag(dir.path(), dns, &creds);
    assert!(ok, "{v:#}");
    assert_eq!(
        verdicts(&v, "DNS SRV"),
        [("ok".into(), String::new())],
        "{v:#}"
    );
    assert_eq!(verdicts(&v, "DNS A").len(), 2, "{v:#}");
    for check in ["TCP connect", "TLS (HTTP/2 transport)", "QUIC handshake"] {
        let got = verdicts(&v, check);
        assert!(
            !got.is_empty() && got.iter().all(|(verdict, _)| verdict == "ok"),
            "{check}: {v:#}"
        );
    }
    assert!(v.to_string().contains("certificate verified"), "{v:#}");
    // An optional extra port nothing listens on: warnings, still exit 0.
    let extra = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["tunnel", "diag", "--json", "--dns-server", &dns.to_string()])
        .args(["--port", &extra.to_string(), "--credentials-file"])
        .arg(&creds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let extra_lines: Vec<&serde_json::Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["target"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{extra}"))
        })
        .collect();
    assert!(!extra_lines.is_empty(), "{v:#}");
    assert!(
        extra_lines.iter().all(|c| c["verdict"] == "warn"
            && c["hint"]
                .as_str()
                .unwrap()
                .contains(&format!("optional port {extra}"))),
        "{v:#}"
    );
    // UDP blocked (the KIX edge has no QUIC listener): a warning that names
    // the fallback and the fix; TCP and TLS still pass; exit 0.
    let dns = srv_dns_server([no_quic.tunnel_addr.port(), no_quic.tunnel_addr.port()]);
    let kix_ca = dir.path().join("b.d").join("ca.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "tunnel",
            "diag",
            "--dns-server",
            &dns.to_string(),
            "--edge-ca",
        ])
        .arg(&kix_ca)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let port = no_quic.tunnel_addr.port();
    assert!(
        text.contains(&format!(
            "UDP {port} blocked: the connector will use HTTP/2; allow UDP {port} egress for QUIC"
        )),
        "{text}"
    );
    // Nothing listening at all: a failure, exit 1.
    let dead = srv_dns_server([free_port(), free_port()]);
    let (ok, v) = diag(dir.path(), dead, &creds);
    assert!(!ok);
    assert!(
        verdicts(&v, "TCP connect")
            .iter()
            .all(|(verdict, _)| verdict == "fail"),
        "{v:#}"
    );
}

#[test]
fn diag_with_only_credentials_checks_the_edges_tunnel_run_would_use() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "a.db", &[]);
    let creds = edge.create_tunnel("t");
    // No --edge, no --dns-server: the credentials' edges, CA and domain,
    // as `tunnel run` takes them (no SRV lookup).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["tunnel", "diag", "--json", "--credentials-file"])
        .arg(&creds)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v:#}");
    assert!(verdicts(&v, "DNS SRV").is_empty(), "no SRV lookup: {v:#}");
    let addr = edge.tunnel_addr.to_string();
    assert!(
        v.to_string().contains(&addr),
        "checks the credentials' edge {addr}: {v:#}"
    );
    for check in ["TCP connect", "TLS (HTTP/2 transport)", "QUIC handshake"] {
        let got = verdicts(&v, check);
        assert!(
            !got.is_empty() && got.iter().all(|(verdict, _)| verdict == "ok"),
            "{check}: {v:#}"
        );
    }
}
