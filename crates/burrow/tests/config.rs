//! Config fixtures through the real binary: every file in
//! `tests/config/invalid/` fails with exit code 64 and the message in its
//! `.expected` twin (which names the rule and field); every file in
//! `tests/config/valid/` passes `burrow tunnel ingress validate`.
#![allow(missing_docs)]

mod util;

use std::path::PathBuf;
use std::process::Command;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

fn validate(path: &std::path::Path) -> std::process::Output {
    Command::new(util::BIN)
        .args(["tunnel", "ingress", "validate", "--config"])
        .arg(path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn invalid_fixtures_fail_naming_rule_and_field() {
    let files = fixtures("invalid");
    assert!(
        files.len() >= 10,
        "fixture list is unexpectedly short: {files:?}"
    );
    for f in files {
        let expected = std::fs::read_to_string(f.with_extension("expected")).unwrap();
        let expected = expected.trim();
        let out = validate(&f);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{}: {stderr}", f.display());
        assert!(
            stderr.contains(expected),
            "{}: expected {expected:?} in:\n{stderr}",
            f.display()
        );
    }
}

#[test]
fn valid_fixtures_pass() {
    let files = fixtures("valid");
    assert!(!files.is_empty());
    for f in files {
        let out = validate(&f);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK:"));
    }
}

#[test]
fn unknown_cloudflared_keys_warn_by_name() {
    let f =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config/valid/cloudflared-style.yml");
    let out = validate(&f);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `metrics:` is understood now (the connector's metrics server).
    assert!(!stderr.contains("'metrics'"), "{stderr}");
    assert!(
        stderr.contains("key 'no-autoupdate': cloudflared's flag, not applicable"),
        "{stderr}"
    );
}

#[test]
fn ingress_rule_shows_the_matching_rule() {
    let f =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config/valid/cloudflared-style.yml");
    let run = |url: &str| {
        let out = Command::new(util::BIN)
            .args(["tunnel", "ingress", "rule", url, "--config"])
            .arg(&f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("https://x.db.example.com").contains("rule #1"));
    assert!(run("https://web.example.com/api/v1").contains("rule #2"));
    assert!(run("https://web.example.com/other").contains("rule #3"));
}

#[test]
fn bad_flags_name_the_flag_and_exit_64() {
    let dir = util::tempdir();
    let out = Command::new(util::BIN)
        .args(["edge", "--listen", "nonsense", "--state"])
        .arg(dir.path().join("e.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen: 'nonsense' is not an IP:port"));
    let out = Command::new(util::BIN)
        .args(["tunnel", "run", "--url", "tcp://x:1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
}

#[test]
fn origin_request_keys_burrow_does_not_act_on_warn() {
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config/valid/origin-request.yml");
    let out = validate(&f);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("originRequest.proxyPort is not supported by burrow and is ignored"),
        "{stderr}"
    );
    // noHappyEyeballs and matchSNItoHost are carried out.
    assert!(!stderr.contains("noHappyEyeballs"), "{stderr}");
}

#[test]
fn policy_lint_finds_a_shadowed_rule_and_test_explains_the_match() {
    let dir = util::tempdir();
    let f = dir.path().join("rules.json");
    std::fs::write(
        &f,
        r#"[{"id": "eng", "name": "engineering", "selector": {"groups": ["eng", "ops"]},
             "action": {"type": "dedicated", "primary_ipv4": "203.0.113.10"}},
            {"id": "eng-web", "selector": {"groups": ["eng"], "ports": ["443"]},
             "action": {"type": "dedicated", "primary_ipv4": "203.0.113.11"}},
            {"id": "sales", "selector": {"groups": ["sales"], "protocols": ["tcp"]},
             "action": {"type": "default"}}]"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(util::BIN)
            .args(args)
            .arg("--file")
            .arg(&f)
            .output()
            .unwrap()
    };
    let out = run(&["policy", "lint"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("rule 2 (eng-web) can never match: rule 1 (eng)"),
        "{text}"
    );
    assert!(text.contains("not a catch-all"), "{text}");

    let out = run(&[
        "policy",
        "test",
        "--user",
        "bo@example.com",
        "--group",
        "sales",
        "--dst",
        "198.51.100.9",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("rule 1 (eng): does not match: group"),
        "{text}"
    );
    assert!(text.contains("=> rule 3 (sales)"), "{text}");
    // The action in words, not as Rust prints it.
    assert!(
        !text.contains("Dedicated {") && !text.contains("Default"),
        "{text}"
    );
    let out = run(&["policy", "test", "--protocol", "udp"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no rule matches: default egress"));

    std::fs::write(
        &f,
        r#"[{"id": "x", "selector": {"dst": ["nope"]}, "action": {"type": "default"}}]"#,
    )
    .unwrap();
    let out = run(&["policy", "lint"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies[0].selector.dst[0]"));
}

#[test]
fn ingress_rule_answers_as_cloudflared_for_its_service_and_hostname_forms() {
    let f = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config/valid/cloudflared-services.yml");
    for (url, rule) in [
        (
            "https://ws.example.com/chat",
            "#0: ws.example.com -> http://localhost:8080",
        ),
        (
            "wss.example.com",
            "#1: wss.example.com -> https://localhost:8443",
        ),
        (
            "raw.example.com",
            "#3: raw.example.com -> tcp://10.0.0.5:7864",
        ),
        // A browser sends the punycode of an internationalised name.
        (
            "https://xn--bcher-kva.example.com/x",
            "#4: bücher.example.com",
        ),
        ("xn--mnchen-3ya.example.com", "#5: "),
        ("socks.example.com", "#6: socks.example.com -> socks-proxy"),
        ("jump.example.com", "#7: jump.example.com -> bastion"),
        ("somewhere.example.org", "#10: * -> http_status:999"),
    ] {
        let out = Command::new(util::BIN)
            .args(["tunnel", "ingress", "rule", url, "--config"])
            .arg(&f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("Matched rule {rule}")),
            "{url}: {text}"
        );
    }
}
