//! Operating burrow: the connector's metrics server (cloudflared's metric
//! names), /ready and `burrow tunnel ready`, and both metrics outputs
//! checked by `promtool check metrics`.
#![allow(missing_docs)]

mod util;

use std::io::Write;
use std::time::Duration;
use util::*;

/// The series' value in a Prometheus text exposition (0 when absent).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn promtool(text: &str, what: &str) {
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
    assert!(
        out.status.success(),
        "promtool check metrics failed on the {what} output:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connector_metrics_keep_cloudflared_names_and_ready_follows_the_edge() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let mut edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let creds = edge.create_tunnel("t");
    let app = edge.create_app("t", "tcp.example.com");
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "ingress:\n  - hostname: tcp.example.com\n    service: tcp://{}\n  - hostname: web.example.com\n    service: http_status:200\n  - service: http_status:404\n",
            origin.addr
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
        value(&text, "cloudflared_tunnel_tunnel_register_success"),
        2.0
    );
    assert!(text.contains("edge_location=\"NRT\""), "{text}");
    assert!(
        text.contains("cloudflared_proxy_connect_latency_count 2"),
        "{text}"
    );
    assert!(text.contains("build_info{version="), "{text}");
    assert!(
        value(&text, "burrow_connector_ephemeral_ports") > 0.0,
        "{text}"
    );
    promtool(&text, "connector");
    let (_, edge_text) = http(&edge.admin_url, "GET", "/metrics", None, "");
    promtool(&edge_text, "edge");

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
