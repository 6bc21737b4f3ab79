//! cloudflared's command grammar, read into burrow's: a pure rewrite of
//! the argument list before clap parses it, so the command lines of
//! cloudflared's systemd units, containers and docs work unchanged.
//!
//! - `tunnel [FLAGS] run [FLAGS] [TUNNEL]`: flags before `run` move after
//!   it; `tunnel [FLAGS]` with no subcommand is `tunnel run`.
//! - A top-level `--config FILE` goes to the command (`tunnel run`,
//!   `edge`, `tunnel ingress …`).
//! - `-v` and `version` print the version.
//! - `--output json|yaml` (`-o`) on a command that lists or shows is its
//!   output format; elsewhere `--output` stays the log format.
//! - cloudflared's `tunnel run` flags that mean nothing here
//!   ([`NOT_APPLICABLE`]) are taken out with their values and reported,
//!   so the caller logs each once; a few are renamed to burrow's
//!   ([`RENAMED`]).
//!
//! Which flags take a value is read from clap's own command definition,
//! so the rewrite never needs a second list of burrow's flags.

use clap::Command;

/// cloudflared `tunnel`/`tunnel run` flags with no meaning in burrow:
/// name, whether it takes a value, and why it is ignored.
pub(crate) const NOT_APPLICABLE: &[(&str, bool, &str)] = &[
    ("no-autoupdate", false, "burrow does not update itself"),
    ("autoupdate-freq", true, "burrow does not update itself"),
    ("is-autoupdated", false, "burrow does not update itself"),
    (
        "region",
        true,
        "your edges are the ones you give with --edge or SRV",
    ),
    (
        "retries",
        true,
        "burrow retries without limit, backing off to 30 s (--max-refusals bounds refusals)",
    ),
    (
        "max-edge-addr-retries",
        true,
        "burrow retries without limit, backing off to 30 s",
    ),
    ("metrics-update-freq", true, "metrics are live"),
    (
        "no-prechecks",
        false,
        "burrow runs no start-up checks (`burrow tunnel diag` does)",
    ),
    (
        "origincert",
        true,
        "burrow talks to your edge's admin API, not Cloudflare's",
    ),
    (
        "api-url",
        true,
        "burrow talks to your edge's admin API, not Cloudflare's",
    ),
    (
        "api-key",
        true,
        "burrow talks to your edge's admin API, not Cloudflare's",
    ),
    (
        "api-email",
        true,
        "burrow talks to your edge's admin API, not Cloudflare's",
    ),
    (
        "api-ca-key",
        true,
        "burrow talks to your edge's admin API, not Cloudflare's",
    ),
    ("lb-pool", true, "load balancing pools are Cloudflare's"),
    ("hostname", true, "route hostnames with `burrow route dns`"),
    ("id", true, "each connector gets its own id"),
    ("name", true, "create tunnels with `burrow tunnel create`"),
    ("n", true, "create tunnels with `burrow tunnel create`"),
    ("features", true, "burrow negotiates its features itself"),
    ("F", true, "burrow negotiates its features itself"),
    (
        "management-diagnostics",
        false,
        "burrow has no management service",
    ),
    (
        "management-hostname",
        true,
        "burrow has no management service",
    ),
    (
        "compression-quality",
        true,
        "burrow does not compress streams",
    ),
    (
        "use-reconnect-token",
        false,
        "burrow registers each connection afresh",
    ),
    ("stdin-control", false, "control burrow with signals"),
    (
        "max-fetch-size",
        true,
        "burrow talks to your edge's admin API",
    ),
    ("quick-service", true, "use `burrow quick`"),
    ("ui", false, "the UI was removed from cloudflared too"),
    (
        "heartbeat-interval",
        true,
        "QUIC and HTTP/2 keep-alives are burrow's own",
    ),
    (
        "heartbeat-count",
        true,
        "QUIC and HTTP/2 keep-alives are burrow's own",
    ),
    ("rpc-timeout", true, "burrow has no RPC to the edge"),
    (
        "write-stream-timeout",
        true,
        "burrow bounds idle flows itself",
    ),
    (
        "quic-disable-pmtu-discovery",
        false,
        "burrow's QUIC settings are its own",
    ),
    (
        "quic-connection-level-flow-control-limit",
        true,
        "burrow's QUIC windows are its own",
    ),
    (
        "quic-stream-level-flow-control-limit",
        true,
        "burrow's QUIC windows are its own",
    ),
    ("transport-loglevel", true, "use --loglevel"),
    ("proto-loglevel", true, "use --loglevel"),
    ("trace-output", true, "burrow writes no runtime traces"),
    ("tag", true, "burrow adds no tag headers to origin requests"),
    (
        "edge-bind-address",
        true,
        "burrow dials the edge from the system's choice of address",
    ),
    (
        "dns-resolver-addrs",
        true,
        "burrow has no virtual DNS resolver",
    ),
    ("icmpv4-src", true, "burrow does not proxy ICMP"),
    ("icmpv6-src", true, "burrow does not proxy ICMP"),
    ("service-op-ip", true, "burrow has no service operations"),
    (
        "max-active-flows",
        true,
        "set warp-routing.maxActiveFlows in config.yml",
    ),
    (
        "proxy-no-happy-eyeballs",
        false,
        "burrow dials each origin address in turn",
    ),
    (
        "proxy-connection-timeout",
        true,
        "burrow keeps no separate origin connection timeout",
    ),
    (
        "proxy-expect-continue-timeout",
        true,
        "burrow passes 100-continue through",
    ),
    ("proxy-address", true, "burrow runs no local origin proxy"),
    ("proxy-port", true, "burrow runs no local origin proxy"),
    (
        "socks5",
        false,
        "the socks-proxy service is not in burrow yet",
    ),
    ("bastion", false, "the bastion service is not in burrow yet"),
    ("ssh-server", false, "burrow has no built-in SSH server"),
    ("local-ssh-port", true, "burrow has no built-in SSH server"),
    (
        "ssh-idle-timeout",
        true,
        "burrow has no built-in SSH server",
    ),
    ("ssh-max-timeout", true, "burrow has no built-in SSH server"),
    ("bucket-name", true, "burrow has no SSH log uploader"),
    ("region-name", true, "burrow has no SSH log uploader"),
    ("secret-id", true, "burrow has no SSH log uploader"),
    ("access-key-id", true, "burrow has no SSH log uploader"),
    ("session-token", true, "burrow has no SSH log uploader"),
    ("s3-url-host", true, "burrow has no SSH log uploader"),
    ("host-key-path", true, "burrow has no built-in SSH server"),
    ("log-level", true, "use --loglevel"),
    ("force", false, "burrow needs no forcing"),
    (
        "dial-edge-timeout",
        true,
        "burrow's dial limits are --quic-fallback-after and its own",
    ),
];

/// cloudflared flags spelled otherwise in burrow: (cloudflared, burrow).
pub(crate) const RENAMED: &[(&str, &str)] = &[("cacert", "edge-ca"), ("pq", "post-quantum")];

/// The rewritten arguments, and what to tell the operator once logging
/// is up.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) args: Vec<String>,
    /// One line per ignored cloudflared flag.
    pub(crate) ignored: Vec<String>,
    /// `--output yaml` on a listing: print YAML instead of JSON.
    pub(crate) yaml: bool,
}

/// `--name` or `-n` → `name` (and its `=value`, if any).
fn flag_name(arg: &str) -> Option<(&str, Option<&str>)> {
    let body = arg
        .strip_prefix("--")
        .or_else(|| arg.strip_prefix('-').filter(|b| !b.is_empty()))?;
    Some(match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    })
}

/// Whether `name` takes a value in any of `cmds` (the command and its
/// ancestors, whose global options it accepts); `--config` always does.
fn takes_value(cmds: &[&Command], name: &str) -> Option<bool> {
    if name == "config" {
        return Some(true);
    }
    let found = |c: &Command| {
        c.get_arguments()
            .find(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&name))
                    || (name.len() == 1 && a.get_short() == name.chars().next())
            })
            .map(|a| a.get_action().takes_values())
    };
    cmds.iter().find_map(|c| found(c)).or_else(|| {
        NOT_APPLICABLE
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
    })
}

/// Splits `args` (options first) into its options (with their values)
/// and the rest, starting at the first argument that is not an option.
fn leading_options(cmds: &[&Command], args: &[String]) -> (Vec<String>, usize) {
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let Some((name, inline)) = flag_name(&args[i]) else {
            break;
        };
        opts.push(args[i].clone());
        i += 1;
        if inline.is_none() && takes_value(cmds, name) == Some(true) && i < args.len() {
            opts.push(args[i].clone());
            i += 1;
        }
    }
    (opts, i)
}

/// Options split into `--config FILE` (with its value) and the others,
/// each in their order.
fn split_config(opts: Vec<String>) -> (Vec<String>, Vec<String>) {
    let (mut config, mut others) = (Vec::new(), Vec::new());
    let mut it = opts.into_iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            config.push(a);
            config.extend(it.next());
        } else if a.starts_with("--config=") {
            config.push(a);
        } else {
            others.push(a);
        }
    }
    (config, others)
}

/// Reads cloudflared's grammar into burrow's. `args` excludes the
/// program name; `root` is burrow's clap command.
pub(crate) fn rewrite(root: &Command, args: &[String]) -> Rewritten {
    let mut out = Rewritten::default();
    if args.first().is_some_and(|a| a == "-v" || a == "version") {
        out.args = vec!["--version".into()];
        return out;
    }
    // Top-level options, and a top-level --config that belongs to the
    // command.
    let (top, at) = leading_options(&[root], args);
    let (config, globals) = split_config(top);
    let rest = &args[at..];
    let Some(command) = rest.first() else {
        out.args = globals;
        out.args.extend(config);
        return out;
    };
    out.args = globals;
    out.args.push(command.clone());
    // Bare `tunnel`: its help, as before.
    if command != "tunnel" || (rest.len() == 1 && config.is_empty()) {
        out.args.extend(config);
        out.args.extend(rest[1..].iter().cloned());
        output_format(root, &mut out);
        return out;
    }
    let tunnel = root.find_subcommand("tunnel").expect("burrow has `tunnel`");
    let run = tunnel
        .find_subcommand("run")
        .expect("burrow has `tunnel run`");
    // Options between `tunnel` and its subcommand.
    let (mut before, at) = leading_options(&[run, tunnel, root], &rest[1..]);
    before.splice(0..0, config);
    let after = &rest[1 + at..];
    let sub = after.first().map(String::as_str);
    let runs = match sub {
        Some("run") => true,
        None => true,
        Some(s) => tunnel.find_subcommand(s).is_none(),
    };
    if !runs {
        // `tunnel --admin-url X list`: options of `tunnel` itself stay;
        // `tunnel --config F ingress validate` (cloudflared's docs): the
        // config goes to the subcommand, at the end.
        let (config, others) = split_config(before);
        out.args.extend(others);
        out.args.extend(after.iter().cloned());
        out.args.extend(config);
        output_format(root, &mut out);
        return out;
    }
    let run_args: Vec<String> = if sub == Some("run") {
        after[1..].to_vec()
    } else {
        after.to_vec()
    };
    out.args.push("run".into());
    let mut all = before;
    all.extend(run_args);
    let mut i = 0;
    while i < all.len() {
        let a = &all[i];
        i += 1;
        let Some((name, inline)) = flag_name(a) else {
            out.args.push(a.clone());
            continue;
        };
        if let Some((_, value, why)) = NOT_APPLICABLE.iter().find(|(n, _, _)| *n == name) {
            if *value && inline.is_none() {
                i += 1;
            }
            out.ignored.push(format!(
                "--{name}: cloudflared's flag, not applicable ({why}); ignored"
            ));
            continue;
        }
        // Spelled as burrow's own flags.
        let value_of = |i: usize| inline.map(str::to_owned).or_else(|| all.get(i).cloned());
        match name {
            "unix-socket" => {
                if let Some(p) = value_of(i) {
                    out.args.push(format!("--url=unix:{p}"));
                }
                i += usize::from(inline.is_none());
                continue;
            }
            "log-directory" => {
                if let Some(d) = value_of(i) {
                    out.args
                        .push(format!("--logfile={}/burrow.log", d.trim_end_matches('/')));
                }
                i += usize::from(inline.is_none());
                continue;
            }
            _ => {}
        }
        match RENAMED.iter().find(|(from, _)| *from == name) {
            Some((_, to)) => out.args.push(match inline {
                Some(v) => format!("--{to}={v}"),
                None => format!("--{to}"),
            }),
            None => out.args.push(a.clone()),
        }
        if inline.is_none()
            && takes_value(&[run, tunnel, root], name) == Some(true)
            && i < all.len()
        {
            out.args.push(all[i].clone());
            i += 1;
        }
    }
    out
}

/// config.yml keys the connector's config parser applies itself.
const FILE_KEYS: &[&str] = &[
    "tunnel",
    "credentials-file",
    "ingress",
    "protocol",
    "ha-connections",
    "edge",
    "edge-ca",
    "grace-period",
    "loglevel",
    "originRequest",
    "warp-routing",
    "metrics",
    "config",
];

/// Whether `key` of a config.yml is a `tunnel run` flag (or a global one,
/// or a cloudflared flag burrow ignores or renames): then it is applied,
/// or reported, as that flag.
pub(crate) fn is_flag_key(root: &Command, key: &str) -> bool {
    let Some(run) = root
        .find_subcommand("tunnel")
        .and_then(|t| t.find_subcommand("run"))
    else {
        return false;
    };
    let tunnel = root.find_subcommand("tunnel").expect("checked above");
    key.len() > 1 && takes_value(&[run, tunnel, root], key).is_some()
        || RENAMED.iter().any(|(from, _)| *from == key)
}

/// The keys of a config.yml named like flags (cloudflared takes any of
/// its flags as a config key), as flags to put before the command line's
/// own, which win: a key whose flag the command line gives is left out.
/// Keys the config parser applies itself are left to it.
pub(crate) fn config_flags(
    root: &Command,
    cli: &[String],
    file: &serde_yaml_ng::Mapping,
) -> Vec<String> {
    let given = |key: &str| {
        cli.iter().any(|a| {
            flag_name(a).is_some_and(|(n, _)| {
                n == key || RENAMED.iter().any(|(from, to)| *from == key && n == *to)
            })
        })
    };
    let mut out = Vec::new();
    for (k, v) in file {
        let Some(key) = k.as_str() else { continue };
        if FILE_KEYS.contains(&key) || !is_flag_key(root, key) || given(key) {
            continue;
        }
        let scalar = |v: &serde_yaml_ng::Value| match v {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        match v {
            serde_yaml_ng::Value::Bool(true) => out.push(format!("--{key}")),
            serde_yaml_ng::Value::Bool(false) | serde_yaml_ng::Value::Null => {}
            serde_yaml_ng::Value::Sequence(items) => {
                out.extend(
                    items
                        .iter()
                        .filter_map(scalar)
                        .map(|x| format!("--{key}={x}")),
                );
            }
            other => out.extend(scalar(other).map(|x| format!("--{key}={x}"))),
        }
    }
    out
}

/// `--output json|yaml` / `-o json|yaml` on a command that has `--json`:
/// its output format.
fn output_format(root: &Command, out: &mut Rewritten) {
    // The command path: the leading words that are subcommands (options
    // and their values skipped).
    let mut chain = vec![root];
    let mut i = 0;
    while let Some(a) = out.args.get(i) {
        i += 1;
        if let Some((name, inline)) = flag_name(a) {
            let mut nearest_first = chain.clone();
            nearest_first.reverse();
            if inline.is_none() && takes_value(&nearest_first, name) == Some(true) {
                i += 1;
            }
            continue;
        }
        match chain[chain.len() - 1].find_subcommand(a) {
            Some(c) => chain.push(c),
            None => break,
        }
    }
    let cmd = chain[chain.len() - 1];
    if cmd.get_arguments().all(|a| a.get_long() != Some("json")) {
        return;
    }
    let mut args = Vec::with_capacity(out.args.len());
    let mut it = std::mem::take(&mut out.args).into_iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "--output" | "-o" => it.next(),
            _ => a
                .strip_prefix("--output=")
                .or_else(|| a.strip_prefix("-o="))
                .map(str::to_owned),
        };
        match value.as_deref() {
            Some("json") => args.push("--json".into()),
            Some("yaml") => {
                args.push("--json".into());
                out.yaml = true;
            }
            // Anything else: as given, for clap to judge.
            Some(other) => {
                args.push("--output".into());
                args.push(other.to_owned());
            }
            None => args.push(a),
        }
    }
    out.args = args;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn rw(line: &str) -> Rewritten {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        rewrite(&crate::cli::Cli::command(), &args)
    }

    fn parses(args: &[String]) {
        let mut full = vec!["burrow".to_owned()];
        full.extend(args.iter().cloned());
        if let Err(e) = <crate::cli::Cli as clap::Parser>::try_parse_from(&full) {
            panic!("{full:?}: {e}");
        }
    }

    #[test]
    fn cloudflared_command_lines_read_as_burrows() {
        for (line, want) in [
            (
                "tunnel --no-autoupdate run --token T",
                "tunnel run --token T",
            ),
            (
                "tunnel --config /etc/cloudflared/config.yml run web",
                "tunnel run --config /etc/cloudflared/config.yml web",
            ),
            ("tunnel run web", "tunnel run web"),
            ("--config c.yml tunnel run", "tunnel run --config c.yml"),
            (
                "tunnel --loglevel debug --protocol quic run --url http://localhost:8080",
                "tunnel run --loglevel debug --protocol quic --url http://localhost:8080",
            ),
            ("tunnel --config c.yml", "tunnel run --config c.yml"),
            (
                "tunnel run --region us --retries 5 --label web-1 --metrics 127.0.0.1:2000 web",
                "tunnel run --label web-1 --metrics 127.0.0.1:2000 web",
            ),
            (
                "tunnel run --cacert ca.pem --autoupdate-freq=24h --no-autoupdate",
                "tunnel run --edge-ca ca.pem",
            ),
            ("tunnel list --output json", "tunnel list --json"),
            ("tunnel info web -o json", "tunnel info web --json"),
            (
                "tunnel --admin-url http://127.0.0.1:7845 list --output json",
                "tunnel --admin-url http://127.0.0.1:7845 list --json",
            ),
            (
                "tunnel run --output json --url http://x",
                "tunnel run --output json --url http://x",
            ),
            ("-v", "--version"),
            ("version", "--version"),
            ("--config e.yaml edge", "edge --config e.yaml"),
        ] {
            let got = rw(line);
            assert_eq!(got.args.join(" "), want, "{line}");
            if got.args != ["--version"] {
                parses(&got.args);
            }
        }
        let got = rw("tunnel --no-autoupdate run --region us --token T");
        assert_eq!(got.ignored.len(), 2);
        assert!(got.ignored[0].contains("--no-autoupdate") && got.ignored[0].contains("update"));
        assert!(rw("tunnel list --output yaml").yaml);
    }

    #[test]
    fn config_keys_named_like_flags_become_flags_the_command_line_overrides() {
        let root = crate::cli::Cli::command();
        let file: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(
            "tunnel: web\nloglevel: debug\nlogfile: /var/log/c.log\nedge-ip-version: 6\n\
             retries: 5\nno-autoupdate: true\nlabel: host-1\ncacert: ca.pem\n\
             ingress: []\nunknown-thing: 1\npost-quantum: false\n",
        )
        .unwrap();
        let cli: Vec<String> = ["tunnel", "run", "--label", "mine"]
            .map(str::to_owned)
            .to_vec();
        let flags = config_flags(&root, &cli, &file);
        assert_eq!(
            flags,
            [
                "--logfile=/var/log/c.log",
                "--edge-ip-version=6",
                "--retries=5",
                "--no-autoupdate",
                "--cacert=ca.pem",
            ]
        );
        assert!(is_flag_key(&root, "logfile") && !is_flag_key(&root, "unknown-thing"));
    }

    /// Every flag cloudflared's `tunnel` and `tunnel run` take (from its
    /// source: cmd/cloudflared/tunnel/cmd.go, subcommands.go, the
    /// ingress and logging flags), each with a value where it takes one.
    const CLOUDFLARED_RUN_FLAGS: &[(&str, Option<&str>)] = &[
        ("edge", Some("127.0.0.1:7844")),
        ("region", Some("us")),
        ("edge-ip-version", Some("auto")),
        ("edge-bind-address", Some("127.0.0.1")),
        ("cacert", Some("ca.pem")),
        ("hostname", Some("h")),
        ("id", Some("x")),
        ("lb-pool", Some("p")),
        ("api-key", Some("k")),
        ("api-email", Some("e")),
        ("api-ca-key", Some("k")),
        ("api-url", Some("https://x")),
        ("metrics-update-freq", Some("5s")),
        ("tag", Some("a=b")),
        ("heartbeat-interval", Some("5s")),
        ("heartbeat-count", Some("5")),
        ("max-edge-addr-retries", Some("8")),
        ("retries", Some("5")),
        ("ha-connections", Some("4")),
        ("rpc-timeout", Some("5s")),
        ("write-stream-timeout", Some("0s")),
        ("quic-disable-pmtu-discovery", None),
        ("quic-connection-level-flow-control-limit", Some("1")),
        ("quic-stream-level-flow-control-limit", Some("1")),
        ("label", Some("l")),
        ("grace-period", Some("30s")),
        ("compression-quality", Some("0")),
        ("use-reconnect-token", None),
        ("dial-edge-timeout", Some("15s")),
        ("stdin-control", None),
        ("name", Some("n")),
        ("ui", None),
        ("quick-service", Some("https://x")),
        ("max-fetch-size", Some("1")),
        ("post-quantum", None),
        ("management-diagnostics", None),
        ("config", Some("c.yml")),
        ("origincert", Some("cert.pem")),
        ("autoupdate-freq", Some("24h")),
        ("no-autoupdate", None),
        ("no-prechecks", None),
        ("metrics", Some("127.0.0.1:2000")),
        ("pidfile", Some("p")),
        ("url", Some("http://localhost:8080")),
        ("hello-world", None),
        ("socks5", None),
        ("proxy-connect-timeout", Some("30s")),
        ("proxy-tls-timeout", Some("10s")),
        ("proxy-tcp-keepalive", Some("30s")),
        ("proxy-no-happy-eyeballs", None),
        ("proxy-keepalive-connections", Some("100")),
        ("proxy-keepalive-timeout", Some("90s")),
        ("proxy-connection-timeout", Some("90s")),
        ("proxy-expect-continue-timeout", Some("90s")),
        ("http-host-header", Some("h")),
        ("origin-server-name", Some("n")),
        ("unix-socket", Some("/s")),
        ("origin-ca-pool", Some("ca.pem")),
        ("no-tls-verify", None),
        ("no-chunked-encoding", None),
        ("http2-origin", None),
        ("management-hostname", Some("m")),
        ("service-op-ip", Some("1.2.3.4")),
        ("local-ssh-port", Some("2222")),
        ("ssh-idle-timeout", Some("1m")),
        ("ssh-max-timeout", Some("1m")),
        ("bucket-name", Some("b")),
        ("region-name", Some("r")),
        ("secret-id", Some("s")),
        ("access-key-id", Some("a")),
        ("session-token", Some("t")),
        ("s3-url-host", Some("h")),
        ("host-key-path", Some("k")),
        ("ssh-server", None),
        ("bastion", None),
        ("proxy-address", Some("127.0.0.1")),
        ("proxy-port", Some("0")),
        ("loglevel", Some("info")),
        ("transport-loglevel", Some("info")),
        ("logfile", Some("c.log")),
        ("log-directory", Some("/var/log")),
        ("trace-output", Some("t")),
        ("output", Some("json")),
        ("protocol", Some("quic")),
        ("features", Some("x")),
        ("is-autoupdated", None),
        ("max-active-flows", Some("1")),
        ("dns-resolver-addrs", Some("1.1.1.1:53")),
        ("icmpv4-src", Some("0.0.0.0")),
        ("icmpv6-src", Some("::")),
        ("credentials-file", Some("c.json")),
        ("cred-file", Some("c.json")),
        ("credentials-contents", Some("{}")),
        ("token", Some("t")),
        ("token-file", Some("t")),
        ("force", None),
    ];

    #[test]
    fn every_cloudflared_run_flag_parses_before_or_after_run() {
        for (flag, value) in CLOUDFLARED_RUN_FLAGS {
            for before in [true, false] {
                let mut words = vec!["tunnel".to_owned()];
                let mut f = vec![format!("--{flag}")];
                f.extend(value.map(str::to_owned));
                if before {
                    words.extend(f);
                    words.push("run".into());
                } else {
                    words.push("run".into());
                    words.extend(f);
                }
                let got = rewrite(&crate::cli::Cli::command(), &words);
                parses(&got.args);
            }
        }
        let got = rw("tunnel run --unix-socket /run/app.sock --log-directory /var/log/cf/");
        assert_eq!(
            got.args.join(" "),
            "tunnel run --url=unix:/run/app.sock --logfile=/var/log/cf/burrow.log"
        );
    }

    #[test]
    fn burrow_command_lines_are_left_as_they_are() {
        for line in [
            "tunnel run --credentials-file web.json --url tcp://127.0.0.1:22",
            "tunnel create web",
            "tunnel --admin-url http://127.0.0.1:7845 list",
            "edge --colo NRT --state edge.db",
            "app create --protocol tcp/2222 --tunnel web --hostname ssh.example.com",
            "quick --hello-world",
            "--loglevel debug tunnel run --config c.yml",
        ] {
            let got = rw(line);
            assert_eq!(got.args.join(" "), line);
            assert!(got.ignored.is_empty());
        }
    }
}
