//! `burrow`: one binary, several roles.
//!
//! Module map:
//! - `cli`: clap definitions (what `--help` shows).
//! - `edge_cmd`: `burrow edge`.
//! - `run_cmd`: `burrow tunnel run` (the connector).
//! - `admin_cmd`: `burrow tunnel create|list|info|delete|token`, `burrow app ...`.
//! - `admin_client`: the small HTTP/1.1 client those use.
//! - `quick_cmd`: `burrow quick`.
//!
//! Exit codes: 0 success; 64 bad configuration or flags (nothing was bound);
//! 1 any other failure, including the edge refusing the tunnel credentials.

mod access_cmd;
mod admin_client;
mod admin_cmd;
mod capacity;
mod cli;
mod client_cmd;
mod cloudflared_args;
mod edge_cmd;
mod logfile;
mod net_cmd;
mod policy_cmd;
mod quick_cmd;
mod run_cmd;
mod service;

use clap::Parser;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// A configuration problem: reported as is, exit code 64.
#[derive(Debug)]
pub(crate) struct ConfigProblem(pub(crate) String);

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

/// Shorthand for a configuration error.
pub(crate) fn config_err(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(ConfigProblem(msg.into()))
}

/// `loglevel:` from the config file of `burrow edge --config` or `burrow
/// tunnel run --config`, when --loglevel is not given. Read before the
/// runtime starts; a file that does not load is reported by the command.
fn file_loglevel(command: &cli::Command) -> Option<String> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).ok();
    match command {
        cli::Command::Edge(a) => {
            burrow_config::edge::parse_edge_yaml(&read(a.config.as_deref()?)?)
                .ok()?
                .loglevel
        }
        cli::Command::Tunnel(t) => match &t.command {
            cli::TunnelCommand::Run(r) => {
                burrow_config::connector::parse_connector_yaml(&read(r.config.as_deref()?)?)
                    .ok()?
                    .log_level
            }
            _ => None,
        },
        // On stdin/stdout (ssh's ProxyCommand) only what goes wrong is
        // worth printing beside the session.
        cli::Command::Access(a) => match &a.command {
            cli::AccessClientCommand::Tcp(t) if t.url.is_none() => Some("warn".into()),
            _ => None,
        },
        _ => None,
    }
}

fn init_logging(args: &cli::Cli) -> anyhow::Result<()> {
    let level = args
        .loglevel
        .clone()
        .or_else(|| file_loglevel(&args.command))
        .unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,quinn=warn,quinn_proto=warn,rustls=warn,sqlx=warn"
    ))
    .map_err(|e| config_err(format!("--loglevel: {e}")))?;
    let json = args.log_format == cli::LogFormat::Json;
    if let Some(path) = &args.logfile {
        if args.logfile_max_size == 0 {
            return Err(config_err("--logfile-max-size: must be at least 1 (MB)"));
        }
        let file = logfile::RotatingFile::open(path.clone(), args.logfile_max_size * 1024 * 1024)
            .map_err(|e| config_err(format!("--logfile {}: {e}", path.display())))?;
        let b = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(file);
        if json {
            b.json().init();
        } else {
            b.init();
        }
        return Ok(());
    }
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
    Ok(())
}

/// `burrow service install`.
fn service_install(
    kind: service::Kind,
    config: Option<std::path::PathBuf>,
    binary: Option<std::path::PathBuf>,
    user: &str,
    unit_dir: &std::path::Path,
    print: bool,
) -> anyhow::Result<()> {
    burrow_config::identity::validate_label("--user", user)
        .map_err(|e| config_err(e.to_string()))?;
    let config = config.unwrap_or_else(|| {
        std::path::PathBuf::from(match kind {
            service::Kind::Edge => "/etc/burrow/edge.yaml",
            service::Kind::Connector => "/etc/burrow/config.yml",
        })
    });
    if !config.is_absolute() {
        return Err(config_err(format!(
            "--config: '{}' must be an absolute path (systemd runs the service from /)",
            config.display()
        )));
    }
    // The unit runs an installed binary, not this one's build tree: the
    // next steps say how to put it there when this is not it.
    let this = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let binary = binary.unwrap_or_else(|| service::DEFAULT_BINARY.into());
    if !binary.is_absolute() {
        return Err(config_err(format!(
            "--binary: '{}' must be an absolute path",
            binary.display()
        )));
    }
    let install_from = this.filter(|t| *t != binary);
    let text = service::unit(kind, &binary, &config, user);
    if print {
        print!("{text}");
        return Ok(());
    }
    let path = unit_dir.join(kind.unit_name());
    std::fs::write(&path, &text)
        .map_err(|e| config_err(format!("--unit-dir: cannot write {}: {e}", path.display())))?;
    println!("Wrote {}", path.display());
    print!(
        "{}",
        service::next_steps(kind, user, &config, &binary, install_from.as_deref())
    );
    Ok(())
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub(crate) fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
        t.cancel();
    });
    token
}

/// For `tunnel run`, the arguments with the config file's flag-named keys
/// put right after `run` (the command line's own flags follow and win);
/// `None` for other commands or when there is no such key. The file is
/// `--config`'s, or the first found where cloudflared looks; an unreadable
/// one is left for `tunnel run` to report.
fn run_config_flags(root: &clap::Command, args: &[String]) -> Option<Vec<String>> {
    let at = args
        .windows(2)
        .position(|w| w[0] == "tunnel" && w[1] == "run")?
        + 2;
    let given = args[at..]
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.as_str() {
            "--config" => args.get(at + i + 1).cloned(),
            _ => a.strip_prefix("--config=").map(str::to_owned),
        });
    let path = given
        .map(std::path::PathBuf::from)
        .or_else(run_cmd::default_config)?;
    let text = std::fs::read_to_string(path).ok()?;
    let file: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&text).ok()?;
    let flags = cloudflared_args::config_flags(root, args, &file);
    if flags.is_empty() {
        return None;
    }
    let mut out = args[..at].to_vec();
    out.extend(flags);
    out.extend(args[at..].iter().cloned());
    Some(out)
}

fn main() -> ExitCode {
    // cloudflared's command lines read as burrow's (arguments that are not
    // UTF-8 are left alone).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let utf8: Option<Vec<String>> = raw
        .iter()
        .skip(1)
        .map(|a| a.to_str().map(str::to_owned))
        .collect();
    let rewritten = utf8.map(|a| {
        use clap::CommandFactory;
        let root = cli::Cli::command();
        let first = cloudflared_args::rewrite(&root, &a);
        // `tunnel run`: config.yml keys named like flags are flags too.
        match run_config_flags(&root, &first.args) {
            Some(mut args) => {
                let mut again = cloudflared_args::rewrite(&root, &std::mem::take(&mut args));
                again.ignored.splice(0..0, first.ignored);
                again
            }
            None => first,
        }
    });
    let parsed = match &rewritten {
        Some(r) => {
            cli::Cli::try_parse_from(std::iter::once("burrow".to_owned()).chain(r.args.clone()))
        }
        None => cli::Cli::try_parse_from(raw),
    };
    let args = match parsed {
        Ok(a) => a,
        // Help and version print and exit as clap does; a bad flag or
        // value is a configuration error (exit 64, as documented).
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(64);
        }
    };
    if let Err(e) = init_logging(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(64);
    }
    if let Some(r) = &rewritten {
        for line in &r.ignored {
            tracing::info!("{line}");
        }
        if r.yaml {
            admin_client::output_yaml();
        }
    }
    // Each proxied flow holds sockets; use the whole open-file allowance.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match args.command {
            cli::Command::Edge(a) => edge_cmd::run(*a).await,
            cli::Command::Quick(a) => quick_cmd::run(a).await,
            cli::Command::Tunnel(t) => match t.command {
                cli::TunnelCommand::Run(a) => run_cmd::run(a).await,
                cli::TunnelCommand::Ready { metrics } => run_cmd::ready(metrics).await,
                cli::TunnelCommand::Diag {
                    edge_domain,
                    edges,
                    dns_server,
                    credentials_file,
                    edge_ca,
                    ports,
                    json,
                } => {
                    run_cmd::diag(
                        run_cmd::DiagArgs {
                            edge_domain,
                            edges,
                            dns_server,
                            credentials_file,
                            edge_ca,
                            ports,
                        },
                        json,
                    )
                    .await
                }
                cli::TunnelCommand::Ingress(c) => run_cmd::ingress(c).await,
                cli::TunnelCommand::Route(c) => net_cmd::route(t.admin, c).await,
                cli::TunnelCommand::Vnet(c) => net_cmd::vnet(t.admin, c).await,
                cmd => admin_cmd::tunnel(t.admin, cmd).await,
            },
            cli::Command::App(a) => admin_cmd::app(a.admin, a.command).await,
            cli::Command::AccessRule(a) => admin_cmd::access(a.admin, a.command).await,
            cli::Command::Route(a) => net_cmd::route(a.admin, a.command).await,
            cli::Command::Vnet(a) => net_cmd::vnet(a.admin, a.command).await,
            cli::Command::EgressIp(a) => net_cmd::egress_ip(a.admin, a.command).await,
            cli::Command::Cluster(a) => net_cmd::cluster(a.admin, a.command).await,
            cli::Command::User(a) => admin_cmd::user(a.admin, a.command).await,
            cli::Command::Device(a) => admin_cmd::device(a.admin, a.command).await,
            cli::Command::Client(a) => client_cmd::run(a).await,
            cli::Command::Access(a) => access_cmd::run(a.command).await,
            cli::Command::Service(cli::ServiceCommand::Install {
                kind,
                config,
                binary,
                user,
                unit_dir,
                print,
            }) => service_install(kind, config, binary, &user, &unit_dir, print),
            cli::Command::Capacity {
                users,
                sessions_per_user,
            } => {
                if sessions_per_user.is_some_and(|s| !(s > 0.0 && s <= 100_000.0)) {
                    Err(config_err(
                        "--sessions-per-user: must be more than 0 (and at most 100000)",
                    ))
                } else {
                    print!(
                        "{}",
                        capacity::render(users, &capacity::plan(users, sessions_per_user))
                    );
                    Ok(())
                }
            }
            cli::Command::Policy(a) => policy_cmd::run(a.admin, a.command).await,
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// 64 for a configuration problem (a cluster secret that does not open
/// the cluster included); for a state store that cannot be
/// used, 69 (unreachable: retrying later may work) or 65 (its schema is
/// newer than this build); 1 otherwise.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    use burrow_store::StoreError;
    if e.downcast_ref::<ConfigProblem>().is_some() {
        return ExitCode::from(64);
    }
    match e.downcast_ref::<burrow_edge::EdgeError>() {
        Some(burrow_edge::EdgeError::Store { source, .. }) => match source {
            StoreError::Connect { .. } => ExitCode::from(69),
            StoreError::Schema { .. } => ExitCode::from(65),
            _ => ExitCode::from(1),
        },
        // The cluster secret does not open the cluster: a configuration
        // problem.
        Some(burrow_edge::EdgeError::Cluster(_)) => ExitCode::from(64),
        _ => ExitCode::from(1),
    }
}
