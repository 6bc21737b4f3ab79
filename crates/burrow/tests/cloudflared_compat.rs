//! Moving from cloudflared: its command lines, tokens, credentials files
//! and config files, run against a real edge and connector on loopback.
#![allow(missing_docs)]

mod util;

use base64::Engine;
use std::path::Path;
use std::time::Duration;
use util::*;

/// cloudflared's shapes of the credentials `tunnel create` wrote at
/// `creds`: its token (base64 of `{"a","t","s"}`, the account as 32 hex
/// digits) and its credentials file (with `Endpoint`, no edge CA).
fn cloudflared_shapes(creds: &Path) -> (String, String) {
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(creds).unwrap()).unwrap();
    let account = c["AccountTag"].as_str().unwrap().replace('-', "");
    let (tunnel, secret) = (
        c["TunnelID"].as_str().unwrap(),
        c["TunnelSecret"].as_str().unwrap(),
    );
    let token = base64::engine::general_purpose::STANDARD.encode(format!(
        r#"{{"a":"{account}","t":"{tunnel}","s":"{secret}"}}"#
    ));
    let file = format!(
        r#"{{"AccountTag":"{account}","TunnelSecret":"{secret}","TunnelID":"{tunnel}","Endpoint":""}}"#
    );
    (token, file)
}

/// A way to give credentials: its name, flags, environment.
type Way<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn cloudflared_tokens_and_credentials_files_run_a_tunnel() {
    let echo = Origin::start(util::echo);
    let s = Setup::edge(&[]);
    let t = s.tunnel("cf");
    let app = t.app("cf.example.com");
    let (token, file) = cloudflared_shapes(&t.creds);
    let ca = s.path().join("edge.d").join("ca.pem");
    std::fs::write(s.path().join("cf.token"), &token).unwrap();
    std::fs::write(s.path().join("cf-cloudflared.json"), &file).unwrap();
    let edge = s.edge.tunnel_addr.to_string();
    let url = format!("tcp://{}", echo.addr);
    let common = [
        "--edge",
        &edge,
        "--edge-ca",
        ca.to_str().unwrap(),
        "--url",
        &url,
        "--ha-connections",
        "1",
        "--grace-period",
        "1s",
    ];
    // Each way cloudflared takes credentials, one connector at a time.
    let ways: [Way; 5] = [
        ("TUNNEL_TOKEN", vec![], vec![("TUNNEL_TOKEN", &token)]),
        ("--token", vec!["--token", &token], vec![]),
        ("--token-file", vec!["--token-file", "cf.token"], vec![]),
        (
            "--cred-file",
            vec!["--cred-file", "cf-cloudflared.json"],
            vec![],
        ),
        (
            "--credentials-contents",
            vec!["--credentials-contents", &file],
            vec![],
        ),
    ];
    for (i, (way, flags, envs)) in ways.into_iter().enumerate() {
        let mut args = vec!["tunnel", "run"];
        args.extend(flags);
        args.extend(common);
        let mut c = Proc::spawn_env(s.path(), &format!("connector{i}"), &args, &envs);
        s.edge.wait_connections("cf", 1, Duration::from_secs(15));
        let payload = format!("through {way}").repeat(100).into_bytes();
        assert_eq!(echo_round_trip(app, &payload).unwrap(), payload, "{way}");
        if way.contains("cred") {
            assert!(
                c.log().contains("'Endpoint' is not used by burrow"),
                "{way}: the unknown field is warned about: {}",
                c.log()
            );
        }
        assert!(
            !c.log().contains(&token),
            "{way}: the token is never logged"
        );
        c.signal("TERM");
        assert_eq!(c.wait_exit(Duration::from_secs(10)), Some(0), "{way}");
        let gone = std::time::Instant::now();
        while !s.edge.connections("cf").is_empty() {
            assert!(
                gone.elapsed() < Duration::from_secs(10),
                "{way}: still connected"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A string that is neither kind of token: refused, naming both.
    let mut bad = Proc::spawn(
        s.path(),
        "bad",
        &["tunnel", "run", "--token", "xyz", "--url", &url],
    );
    assert_ne!(bad.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(bad.log().contains("cloudflared token"), "{}", bad.log());
}

#[test]
fn a_cloudflared_tunnel_imported_by_its_token_keeps_its_connectors_token() {
    let echo = Origin::start(util::echo);
    let s = Setup::edge(&[]);
    // A tunnel made by cloudflared elsewhere: its own account, id, secret.
    let secret = base64::engine::general_purpose::STANDARD.encode([0x5au8; 32]);
    let tunnel = "8f1c2f0e-52a7-4a43-9f5b-3c1d2e4f5a6b";
    let token = base64::engine::general_purpose::STANDARD.encode(format!(
        r#"{{"a":"699d98642c564d2e855e9661899b7252","t":"{tunnel}","s":"{secret}"}}"#
    ));
    std::fs::write(s.path().join("web.token"), &token).unwrap();
    let out = s
        .edge
        .admin(&["tunnel", "import", "web", "--token-file", "web.token"])
        .expect("tunnel import");
    assert!(
        out.contains(&format!("Imported tunnel web with id {tunnel}")),
        "{out}"
    );
    // Importing it twice names the id.
    let again = s
        .edge
        .admin(&["tunnel", "import", "web2", "--token", &token])
        .unwrap_err();
    assert!(again.contains("import.tunnel_id"), "{again}");
    let app = s.edge.create_app("web", "web.example.com");
    let ca = s.path().join("edge.d").join("ca.pem");
    let edge = s.edge.tunnel_addr.to_string();
    let url = format!("tcp://{}", echo.addr);
    let _c = Proc::spawn_env(
        s.path(),
        "connector",
        &[
            "tunnel",
            "run",
            "--edge",
            &edge,
            "--edge-ca",
            ca.to_str().unwrap(),
            "--url",
            &url,
        ],
        &[("TUNNEL_TOKEN", &token)],
    );
    s.edge.wait_connections("web", 4, Duration::from_secs(15));
    let payload = b"the same token as before".repeat(500);
    assert_eq!(echo_round_trip(app, &payload).unwrap(), payload);
    // A token with another secret for the same id is refused.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!(
        r#"{{"a":"699d98642c564d2e855e9661899b7252","t":"{tunnel}","s":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode([0x5bu8; 32])
    ));
    let mut bad = Proc::spawn_env(
        s.path(),
        "wrong",
        &[
            "tunnel",
            "run",
            "--edge",
            &edge,
            "--edge-ca",
            ca.to_str().unwrap(),
            "--url",
            &url,
            "--max-refusals",
            "1",
        ],
        &[("TUNNEL_TOKEN", &wrong)],
    );
    assert_eq!(bad.wait_exit(Duration::from_secs(15)), Some(1));
    assert!(bad.log().contains("secret does not match"), "{}", bad.log());
}

#[test]
fn cloudflared_command_lines_run_the_tunnel() {
    let echo = Origin::start(util::echo);
    let s = Setup::edge(&[]);
    let t = s.tunnel("web");
    let app = t.app("web.example.com");
    let id = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&t.creds).unwrap())
        .unwrap()["TunnelID"]
        .as_str()
        .unwrap()
        .to_owned();
    // The credentials where cloudflared keeps them: <ID>.json beside the
    // config, which names no credentials file.
    std::fs::create_dir(s.path().join("cf")).unwrap();
    std::fs::copy(&t.creds, s.path().join("cf").join(format!("{id}.json"))).unwrap();
    std::fs::write(
        s.path().join("cf").join("config.yml"),
        // Flags as keys, as cloudflared takes them: applied, or reported
        // as not applicable.
        format!(
            "logfile: connector-file.log\nretries: 5\nedge-ip-version: auto\n\
             ingress:\n  - service: tcp://{}\n",
            echo.addr
        ),
    )
    .unwrap();
    // cloudflared's unit file line: flags before `run`, the tunnel as an
    // argument, flags cloudflared has and burrow does not.
    let mut c = Proc::spawn(
        s.path(),
        "connector",
        &[
            "tunnel",
            "--no-autoupdate",
            "--config",
            "cf/config.yml",
            "--region",
            "us",
            "run",
            "--label",
            "web-1",
            "--pidfile",
            "connector.pid",
            "--protocol",
            "h2mux",
            &id,
        ],
    );
    let conns = s.edge.wait_connections("web", 4, Duration::from_secs(15));
    assert!(
        conns[0]["version"].as_str().unwrap().contains("(web-1)"),
        "the label shows with the connection: {conns:?}"
    );
    let payload = b"as cloudflared was run".repeat(300);
    assert_eq!(echo_round_trip(app, &payload).unwrap(), payload);
    let pid = std::fs::read_to_string(s.path().join("connector.pid")).unwrap();
    assert_eq!(pid.trim(), c.child.id().to_string());
    // `logfile:` from config.yml took the logs.
    let log = std::fs::read_to_string(s.path().join("connector-file.log")).unwrap();
    assert!(!log.contains("unknown key"), "{log}");
    for flag in ["--no-autoupdate", "--region", "--retries"] {
        assert!(
            log.contains(&format!("{flag}: cloudflared's flag, not applicable")),
            "{flag} is logged as not applicable: {log}"
        );
    }
    c.signal("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        !s.path().join("connector.pid").exists(),
        "the pid file goes at exit"
    );
    // A tunnel argument that is not the credentials' names both.
    let mut wrong = Proc::spawn(
        s.path(),
        "wrong",
        &[
            "tunnel",
            "--config",
            "cf/config.yml",
            "run",
            "--credentials-file",
            t.creds.to_str().unwrap(),
            "other",
        ],
    );
    assert_ne!(wrong.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(wrong.log().contains("TUNNEL: 'other'"), "{}", wrong.log());
}

#[test]
fn version_and_output_formats_as_cloudflared_spells_them() {
    let s = Setup::edge(&[]);
    let _t = s.tunnel("web");
    let version = |arg: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
            .arg(arg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{arg}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(version("-v").starts_with("burrow "));
    assert_eq!(version("-v"), version("version"));
    let json = s
        .edge
        .admin(&["tunnel", "list", "--output", "json"])
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["name"], "web");
    let yaml = s
        .edge
        .admin(&["tunnel", "info", "web", "-o", "yaml"])
        .unwrap();
    assert!(yaml.contains("name: web"), "{yaml}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&yaml).is_err(),
        "YAML, not JSON"
    );
}

#[test]
fn post_quantum_key_agreement_is_negotiated_on_both_transports_and_can_be_required() {
    let echo = Origin::start(util::echo);
    let url = format!("tcp://{}", echo.addr);
    let s = Setup::edge(&[]);
    for protocol in ["quic", "http2"] {
        let t = s.tunnel(protocol);
        let app = t.app(&format!("{protocol}.example.com"));
        let _c = t.connector(
            &[
                "--url",
                &url,
                "--protocol",
                protocol,
                "--ha-connections",
                "1",
            ],
            1,
        );
        let conns = s.edge.connections(protocol);
        assert_eq!(conns[0]["protocol"], protocol);
        assert_eq!(conns[0]["kx"], "X25519MLKEM768", "{protocol}: {conns:?}");
        assert_eq!(echo_round_trip(app, b"pq").unwrap(), b"pq");
        let info = s.edge.admin(&["tunnel", "info", protocol]).unwrap();
        assert!(
            info.contains("KEY EXCHANGE") && info.contains("X25519MLKEM768"),
            "{info}"
        );
    }
    assert_eq!(
        s.edge
            .metric("burrow_edge_tunnel_key_exchanges_total{group=\"X25519MLKEM768\"}"),
        2.0
    );
    // An edge without it: the default connector falls back to X25519; one
    // that requires it is refused, naming why.
    let classic = Setup::edge(&["--post-quantum", "off"]);
    let t = classic.tunnel("c");
    let _c = t.connector(&["--url", &url, "--ha-connections", "1"], 1);
    assert_eq!(classic.edge.connections("c")[0]["kx"], "X25519");
    let mut pq = Proc::spawn(
        classic.path(),
        "pq",
        &[
            "tunnel",
            "run",
            "--credentials-file",
            t.creds.to_str().unwrap(),
            "--url",
            &url,
            "-pq",
            "--max-refusals",
            "1",
            "--ha-connections",
            "1",
        ],
    );
    assert_eq!(pq.wait_exit(Duration::from_secs(20)), Some(1));
    let log = pq.log();
    assert!(
        log.contains("post-quantum key agreement (X25519MLKEM768) is required")
            && log.contains("does not offer it"),
        "{log}"
    );
    // A wrong value names the setting.
    let dir = tempdir();
    let mut bad = Proc::spawn(
        dir.path(),
        "bad",
        &["edge", "--state", "e.db", "--post-quantum", "maybe"],
    );
    assert_eq!(bad.wait_exit(Duration::from_secs(10)), Some(64));
    assert!(bad.log().contains("post-quantum: 'maybe'"), "{}", bad.log());
}

#[test]
fn cloudflareds_origin_flags_shape_the_url_origin() {
    let origin = util::httporigin::HttpOrigin::start("O");
    let s = Setup::edge(&["--http", "127.0.0.1:0"]);
    let t = s.tunnel("web");
    s.edge
        .admin(&["route", "dns", "web", "web.example.com"])
        .expect("route");
    let url = format!("http://{}", origin.addr);
    let _c = t.connector(
        &[
            "--url",
            &url,
            "--http-host-header",
            "internal.local",
            "--proxy-connect-timeout",
            "5s",
        ],
        4,
    );
    let http = s.edge.http_addr.unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-H", "Host: web.example.com"])
        .arg(format!("http://{http}/"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("host internal.local"),
        "the Host the origin saw: {body}"
    );
    // A bad value names the flag.
    let mut bad = Proc::spawn(
        s.path(),
        "bad",
        &[
            "tunnel",
            "run",
            "--credentials-file",
            t.creds.to_str().unwrap(),
            "--url",
            &url,
            "--proxy-tls-timeout",
            "soon",
        ],
    );
    assert_eq!(bad.wait_exit(Duration::from_secs(10)), Some(64));
    assert!(bad.log().contains("--proxy-tls-timeout"), "{}", bad.log());
}

#[test]
fn ingress_commands_find_the_config_as_cloudflared_does() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".cloudflared")).unwrap();
    let cfg = home.join(".cloudflared").join("config.yml");
    std::fs::write(&cfg, "ingress:\n  - hostname: a.example.com\n    service: http://localhost:8080\n  - service: http_status:404\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args(args)
            .env("HOME", &home)
            .env_remove("BURROW_TUNNEL_CONFIG")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // No --config: ~/.cloudflared/config.yml.
    let out = run(&["tunnel", "ingress", "validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: 2 ingress rules"));
    // cloudflared's documented spelling: --config before the subcommand.
    let out = run(&[
        "tunnel",
        "--config",
        cfg.to_str().unwrap(),
        "ingress",
        "rule",
        "https://a.example.com/x",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Matched rule #0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `burrow access service-token --json`: (id, secret, secret's SHA-256).
fn service_token() -> (String, String, String) {
    let out = std::process::Command::new(BIN)
        .args(["access", "service-token", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    (s("clientId"), s("clientSecret"), s("clientSecretSha256"))
}

/// Runs `prog args` with `envs`, at most 180 s; (success, stdout, stderr).
fn run_with(prog: &str, args: &[String], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new("timeout")
        .arg("180")
        .arg(prog)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// cloudflared's `access ssh` as ssh's ProxyCommand: an ssh session and
/// 50 MB each way with scp reach a real sshd behind the tunnel's `ssh://`
/// rule, through the edge's HTTPS listener, with the rule's service token
/// checked by the connector; a wrong or missing token gets no further
/// than the connector.
#[test]
fn ssh_and_scp_go_through_burrow_access_to_a_real_sshd() {
    use util::tls::{make_ca, make_cert};
    let dir = tempdir();
    let d = dir.path();
    let sshd = util::sshd::Sshd::start(d);
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_ca(d);
    make_cert(d, "ssh.example.com", &certs);
    let edge = EdgeProc::start(
        d,
        "NRT",
        "edge.db",
        &[
            "--https",
            "127.0.0.1:0",
            "--cert-dir",
            certs.to_str().unwrap(),
        ],
    );
    let (id, secret, hash) = service_token();
    let config = d.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "ingress:\n\
             \x20 - hostname: ssh.example.com\n    service: ssh://{}\n\
             \x20   originRequest:\n      access:\n        required: true\n\
             \x20       serviceTokens:\n          - clientId: {id}\n            clientSecretSha256: {hash}\n\
             \x20 - service: http_status:404\n",
            sshd.addr
        ),
    )
    .unwrap();
    let _connector = edge.connected_tunnel("t", &["--config", config.to_str().unwrap()], 1);
    edge.admin(&["route", "dns", "t", "ssh.example.com"])
        .expect("route dns");
    let proxy = format!(
        "{BIN} access ssh --hostname %h --edge 127.0.0.1:{} --edge-ca {ca}",
        edge.https_addr.unwrap().port()
    );
    let opts = sshd.client_options(d, &proxy);
    let login = format!("{}@ssh.example.com", sshd.user);
    let token = [
        ("TUNNEL_SERVICE_TOKEN_ID", id.as_str()),
        ("TUNNEL_SERVICE_TOKEN_SECRET", secret.as_str()),
    ];

    // An ssh session.
    let mut args = opts.clone();
    args.extend([login.clone(), "echo hello from sshd; uname -s".into()]);
    let (ok, out, err) = run_with("ssh", &args, &token);
    assert!(ok, "ssh failed: {err}\nsshd: {}", sshd.log());
    assert_eq!(out, "hello from sshd\nLinux\n");

    // 50 MB up and back down with scp, checked by sha256.
    let mut seed = 17;
    let data = pattern(&mut seed, 50 * 1024 * 1024);
    let (up, remote, down) = (d.join("up.bin"), d.join("remote.bin"), d.join("down.bin"));
    std::fs::write(&up, &data).unwrap();
    let mut args = opts.clone();
    args.extend([
        up.display().to_string(),
        format!("{login}:{}", remote.display()),
    ]);
    let (ok, _, err) = run_with("scp", &args, &token);
    assert!(ok, "scp up failed: {err}");
    let mut args = opts.clone();
    args.extend([
        format!("{login}:{}", remote.display()),
        down.display().to_string(),
    ]);
    let (ok, _, err) = run_with("scp", &args, &token);
    assert!(ok, "scp down failed: {err}");
    assert_eq!(sha256(&std::fs::read(&remote).unwrap()), sha256(&data));
    assert_eq!(sha256(&std::fs::read(&down).unwrap()), sha256(&data));

    // A wrong secret and no token: refused by the connector's access check.
    for envs in [
        vec![
            ("TUNNEL_SERVICE_TOKEN_ID", id.as_str()),
            ("TUNNEL_SERVICE_TOKEN_SECRET", "not-the-secret"),
        ],
        vec![],
    ] {
        let mut args = opts.clone();
        args.extend([login.clone(), "echo should not run".into()]);
        let (ok, out, err) = run_with("ssh", &args, &envs);
        assert!(!ok, "ssh without a valid token ran: {out}");
        assert!(err.contains("403"), "the refusal names 403: {err}");
    }
}

/// `burrow access tcp --url`: a local listener whose every connection is
/// carried to the hostname's `tcp://` rule (cloudflared's form for RDP and
/// other TCP services); several at once, bytes intact.
#[test]
fn access_tcp_listener_carries_each_connection_to_the_tcp_rule() {
    let dir = tempdir();
    let d = dir.path();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(d, "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let config = d.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "ingress:\n  - hostname: rdp.example.com\n    service: rdp://{}\n  - service: http_status:404\n",
            origin.addr
        ),
    )
    .unwrap();
    let _connector = edge.connected_tunnel("t", &["--config", config.to_str().unwrap()], 1);
    edge.admin(&["route", "dns", "t", "rdp.example.com"])
        .expect("route dns");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let edge_url = format!("http://{}", edge.http_addr.unwrap());
    let access = Proc::spawn(
        d,
        "access",
        &[
            "access",
            "rdp",
            "--hostname",
            "rdp.example.com",
            "--url",
            &listen,
            "--edge",
            &edge_url,
        ],
    );
    access.wait_log("listening", Duration::from_secs(10));
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            std::thread::spawn(move || {
                let mut seed = i + 1;
                let payload = pattern(&mut seed, 2 * 1024 * 1024);
                let back = echo_round_trip(addr, &payload).unwrap();
                assert_eq!(sha256(&back), sha256(&payload), "connection {i}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A plain web request to the TCP hostname is told what to use.
    let mut s = connect(edge.http_addr.unwrap(), Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: rdp.example.com\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("burrow access tcp"), "{answer}");
}

/// cloudflared's `socks-proxy` and `bastion` services, reached with
/// `burrow access tcp`: curl through the SOCKS5 proxy reaches what the
/// rule's `ipRules` allow and nothing else; a bastion carries a stream to
/// the destination its client names, within its `ipRules`.
#[test]
fn socks_proxy_and_bastion_rules_serve_what_their_ip_rules_allow() {
    let dir = tempdir();
    let d = dir.path();
    let web = util::httporigin::HttpOrigin::start("S");
    let echo_origin = Origin::start(echo);
    let edge = EdgeProc::start(d, "NRT", "edge.db", &["--http", "127.0.0.1:0"]);
    let config = d.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "ingress:\n\
             \x20 - hostname: socks.example.com\n    service: socks-proxy\n\
             \x20   originRequest:\n      ipRules:\n\
             \x20       - {{prefix: 127.0.0.1/32, ports: [{web}], allow: true}}\n\
             \x20       - {{prefix: 0.0.0.0/0, allow: false}}\n\
             \x20 - hostname: bastion.example.com\n    service: bastion\n\
             \x20   originRequest:\n      ipRules:\n\
             \x20       - {{prefix: 127.0.0.1/32, ports: [{echo}], allow: true}}\n\
             \x20 - service: http_status:404\n",
            web = web.addr.port(),
            echo = echo_origin.addr.port(),
        ),
    )
    .unwrap();
    let connector = edge.connected_tunnel("t", &["--config", config.to_str().unwrap()], 1);
    for h in ["socks.example.com", "bastion.example.com"] {
        edge.admin(&["route", "dns", "t", h]).expect("route dns");
    }
    let edge_url = format!("http://{}", edge.http_addr.unwrap());
    let socks = format!("127.0.0.1:{}", free_port());
    let access = Proc::spawn(
        d,
        "access-socks",
        &[
            "access",
            "tcp",
            "--hostname",
            "socks.example.com",
            "--url",
            &socks,
            "--edge",
            &edge_url,
        ],
    );
    access.wait_log("listening", Duration::from_secs(10));
    let curl = |proxy_flag: &str, url: &str| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", proxy_flag, &socks, url])
            .output()
            .unwrap()
    };
    // Allowed: by address, and by a name the connector resolves.
    for (flag, url) in [
        (
            "--socks5",
            format!("http://127.0.0.1:{}/a", web.addr.port()),
        ),
        (
            "--socks5-hostname",
            format!("http://localhost:{}/b", web.addr.port()),
        ),
    ] {
        let out = curl(flag, &url);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(body.starts_with("origin S"), "{body}");
    }
    // Denied: another port of the same host, another address.
    for url in [
        format!("http://127.0.0.1:{}/", echo_origin.addr.port()),
        format!("http://127.0.0.2:{}/", web.addr.port()),
    ] {
        let out = curl("--socks5", &url);
        assert!(!out.status.success(), "{url} went through");
    }
    // The connector says why.
    connector.wait_log("is denied by ipRules[1]", Duration::from_secs(5));

    // The bastion: stdin/stdout to the destination the client names.
    let bastion = |dest: &str| {
        let mut child = std::process::Command::new(BIN)
            .args([
                "access",
                "ssh",
                "--hostname",
                "bastion.example.com",
                "--edge",
                &edge_url,
                "--destination",
                dest,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"through the bastion\n").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = bastion(&echo_origin.addr.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"through the bastion\n");
    let out = bastion(&web.addr.to_string());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("ipRules"), "{err}");
}
