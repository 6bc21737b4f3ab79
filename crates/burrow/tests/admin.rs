//! The edge's admin API and configuration file, through the real binary.
#![allow(missing_docs)]

mod util;

use std::net::TcpStream;
use std::time::Duration;
use util::*;

#[test]
fn admin_api_requires_the_token_and_names_bad_fields() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let token = std::fs::read_to_string(&edge.token_file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "a 32-byte hex token");

    // Health endpoints are open; everything under /v1 needs the token.
    assert_eq!(
        http(&edge.admin_url, "GET", "/healthcheck", None, "").0,
        200
    );
    assert_eq!(http(&edge.admin_url, "GET", "/ready", None, "").0, 200);
    assert_eq!(
        http(&edge.admin_url, "GET", "/api/v1/tunnels", None, "").0,
        401
    );
    assert_eq!(
        http(&edge.admin_url, "GET", "/api/v1/tunnels", Some("wrong"), "").0,
        401
    );
    assert_eq!(
        http(&edge.admin_url, "GET", "/api/v1/tunnels", Some(token), "").0,
        200
    );

    let (st, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token),
        r#"{"name":"bad name!"}"#,
    );
    assert_eq!(st, 400);
    assert!(body.contains(r#""field":"name""#), "{body}");
    let (st, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token),
        r#"{"nmae":"x"}"#,
    );
    assert_eq!(st, 400);
    assert!(body.contains("nmae"), "{body}");
    let (st, _) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token),
        "{not json",
    );
    assert_eq!(st, 400);

    let (st, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token),
        r#"{"name":"ok"}"#,
    );
    assert_eq!(st, 201, "{body}");
    assert!(body.contains("TunnelSecret"), "create returns credentials");
    let (st, _) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/tunnels",
        Some(token),
        r#"{"name":"ok"}"#,
    );
    assert_eq!(st, 409);
    // Listing never shows secrets.
    let (_, list) = http(&edge.admin_url, "GET", "/api/v1/tunnels", Some(token), "");
    assert!(
        !list.contains("TunnelSecret") && !list.contains("secret"),
        "{list}"
    );

    let (st, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/apps",
        Some(token),
        r#"{"protocol":"tcp/0","origin_tunnel":{"tunnel":"ok"}}"#,
    );
    assert_eq!(st, 400);
    assert!(
        body.contains(r#""field":"protocol""#) && body.contains("port 0"),
        "{body}"
    );
    let (st, body) = http(
        &edge.admin_url,
        "POST",
        "/api/v1/apps",
        Some(token),
        r#"{"protocol":"tcp/5","origin_tunnel":{"tunnel":"nope"}}"#,
    );
    assert_eq!(st, 404);
    assert!(body.contains(r#""field":"origin_tunnel.tunnel""#), "{body}");

    // The CLI reports the API's field and message.
    let err = edge
        .admin(&[
            "app",
            "create",
            "--protocol",
            "tcp/53",
            "--tunnel",
            "ok",
            "--tls",
            "strict",
        ])
        .unwrap_err();
    assert!(
        err.contains("tls: full and strict encrypt edge→origin"),
        "{err}"
    );
    // The token never appears in the edge log.
    assert!(!edge.proc.log().contains(token));
}

#[test]
fn app_delete_stops_the_listener_and_tunnel_delete_removes_apps() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    edge.create_tunnel("t");
    let addr = edge.create_app("t", "a.example.com");
    assert!(TcpStream::connect(addr).is_ok());
    let list = edge.admin(&["app", "list", "--json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = v[0]["id"].as_str().unwrap().to_owned();
    edge.admin(&["app", "delete", &id]).unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the app port still listens"
    );
    edge.create_app("t", "b.example.com");
    edge.admin(&["tunnel", "delete", "t"]).unwrap();
    let list = edge.admin(&["app", "list", "--json"]).unwrap();
    assert_eq!(list.trim(), "[]");
    assert!(edge
        .admin(&["tunnel", "info", "t"])
        .unwrap_err()
        .contains("not found"));
}

#[test]
fn edge_reads_its_settings_from_a_yaml_file_and_rejects_unknown_keys() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("edge.yaml"),
        "colo: KIX\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate: ./from-file.db\ngrace-period: 1s\n\
         loglevel: debug\negress-allow: [10.9.0.0/16]\n",
    )
    .unwrap();
    let p = Proc::spawn(
        dir.path(),
        "edge",
        &[
            "edge",
            "--config",
            "edge.yaml",
            "--egress-allow",
            "192.0.2.0/24",
        ],
    );
    p.wait_line("burrow edge KIX ready", Duration::from_secs(30));
    let ca = p.wait_line("edge CA:", Duration::from_secs(5));
    assert!(ca.contains("from-file.d/ca.pem (created)"), "{ca}");
    assert!(dir.path().join("from-file.db").exists());
    // `loglevel:` applies when --loglevel is not given; a repeated flag
    // adds to the file's list.
    p.wait_log("DEBUG", Duration::from_secs(5));
    let allow = p.wait_log("egress-allow:", Duration::from_secs(5));
    assert!(
        allow.contains("10.9.0.0/16") && allow.contains("192.0.2.0/24"),
        "{allow}"
    );

    std::fs::write(dir.path().join("bad.yaml"), "colo: KIX\nlisten_addr: 1\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["edge", "--config", "bad.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
}

#[test]
fn edge_restart_keeps_tunnels_apps_and_certificates() {
    let dir = tempdir();
    let origin = Origin::start(echo);
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let creds = edge.create_tunnel("keep");
    let app = edge.create_app("keep", "k.example.com");
    drop(edge);
    // Same state: the app comes back on its port, the old credentials (and
    // the CA embedded in them) still work.
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    let url = format!("tcp://{}", origin.addr);
    let ta = edge.tunnel_addr.to_string();
    let flags = ["--url", &url, "--edge", &ta, "--ha-connections", "1"];
    let _c = edge.run_connector("keep", &creds, "c", &flags, 1);
    assert_eq!(echo_round_trip(app, b"again").unwrap(), b"again");
}

#[test]
fn users_and_devices_enroll_revoke_and_name_bad_fields() {
    let dir = tempdir();
    let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", &[]);
    edge.admin(&[
        "user",
        "add",
        "Ana@Example.com",
        "--group",
        "eng",
        "--group",
        "ops",
    ])
    .expect("user add");
    let err = edge.admin(&["user", "add", "ana@example.com"]).unwrap_err();
    assert!(
        err.contains("email") && err.contains("already exists"),
        "{err}"
    );
    let err = edge.admin(&["user", "add", "not-an-email"]).unwrap_err();
    assert!(
        err.contains("email: 'not-an-email' is not an email address"),
        "{err}"
    );
    let err = edge
        .admin(&["user", "add", "bo@example.com", "--group", "bad group"])
        .unwrap_err();
    assert!(err.contains("groups[0]"), "{err}");

    let creds = dir.path().join("laptop.json");
    let c = creds.to_string_lossy().into_owned();
    let out = edge
        .admin(&[
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
    assert!(out.contains("for ana@example.com"), "{out}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    for k in [
        "AccountTag",
        "DeviceID",
        "UserEmail",
        "DeviceSecret",
        "EdgeCA",
        "Edges",
    ] {
        assert!(file.get(k).is_some(), "{k} missing: {file}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let err = edge
        .admin(&[
            "device",
            "enroll",
            "--user",
            "nobody@example.com",
            "--name",
            "x",
        ])
        .unwrap_err();
    assert!(err.contains("user") && err.contains("not found"), "{err}");

    let id = file["DeviceID"].as_str().unwrap().to_owned();
    let list = edge.admin(&["device", "list"]).unwrap();
    let row = |list: &str| {
        list.lines()
            .find(|l| l.starts_with(&id))
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
    };
    let r = row(&list).unwrap_or_else(|| panic!("no row for {id}: {list}"));
    assert_eq!(r[1..4], ["ana@example.com", "laptop", "active"], "{list}");
    let json = edge.admin(&["device", "list", "--json"]).unwrap();
    assert!(json.contains("\"revoked\": false"), "{json}");
    assert!(
        !list.contains(file["DeviceSecret"].as_str().unwrap()),
        "secret listed"
    );
    edge.admin(&["device", "revoke", &id]).expect("revoke");
    let list = edge.admin(&["device", "list"]).unwrap();
    assert_eq!(row(&list).unwrap()[3], "revoked", "{list}");
    edge.admin(&["user", "delete", "ana@example.com"])
        .expect("delete");
    assert!(!edge.admin(&["device", "list"]).unwrap().contains(&id));
}

/// Copies a committed state directory (`testdata/NAME`) into `dir`.
fn fixture(dir: &std::path::Path, name: &str) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name);
    std::fs::create_dir(dir.join("state.d")).unwrap();
    for f in std::fs::read_dir(&from).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
    }
    for f in std::fs::read_dir(from.join("state.d")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join("state.d").join(f.file_name())).unwrap();
    }
}

#[test]
fn a_state_file_from_before_versioned_migrations_opens_with_everything_in_it() {
    // Written by the build before `sqlx::migrate!` (see its README).
    let dir = tempdir();
    fixture(dir.path(), "state-e758da8");
    let edge = EdgeProc::start(dir.path(), "NRT", "state.db", &[]);
    let list = |args: &[&str]| edge.admin(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(list(&["tunnel", "list"]).contains("keep"));
    assert!(list(&["app", "list"]).contains("47001"));
    assert!(list(&["route", "list"]).contains("www.example.com"));
    assert!(list(&["user", "list"]).contains("kept@example.com"));
    assert!(list(&["device", "list"]).contains("laptop"));
    let vnets = list(&["vnet", "list", "--json"]);
    assert!(vnets.contains("lab") && vnets.contains("eng"), "{vnets}");
    assert!(list(&["route", "ip", "list"]).contains("10.20.0.0/16"));
    assert!(list(&["egress-ip", "list"]).contains("127.0.0.9"));
    assert!(list(&["access-rule", "list"]).contains("192.0.2.0/24"));
    assert!(list(&["policy", "list"]).contains("eng-lab"));
    // The app listens again, and the tunnel's credentials still register.
    TcpStream::connect("127.0.0.1:47001").expect("the stored app listens");
    let ta = edge.tunnel_addr.to_string();
    let flags = ["--url", "tcp://127.0.0.1:9", "--edge", &ta];
    let _c = edge.run_connector(
        "keep",
        &dir.path().join("keep.json"),
        "connector",
        &flags,
        1,
    );
    // Versioned now: the edge says which schema it opened.
    edge.proc.wait_log("schema version", Duration::from_secs(5));
}
