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
