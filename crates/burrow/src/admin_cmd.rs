//! Admin commands: `burrow tunnel create|list|info|delete|token` and
//! `burrow app create|list|delete`.

use crate::admin_client::{path_segment, print_json, AdminClient};
use crate::cli::{AdminConn, AppCommand, AppCreate, TunnelCommand};
use crate::config_err;
use burrow_config::api::{
    AccessRuleInfo, AppInfo, CreateAccessRule, CreateTunnel, CreateUser, DeviceInfo, EnrollDevice,
    TunnelInfo, UserInfo,
};
use burrow_config::app::{RawApp, RawDns, RawEdgeIps, RawOriginDns, RawOriginTunnel};
use burrow_config::credentials::Credentials;
use http::Method;
use serde_json::{json, Value};
use std::io::Write;

fn ts(secs: i64) -> String {
    // Seconds since the epoch, rendered as UTC without a date library.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn print_connections(t: &TunnelInfo) {
    let conns = &t.connections;
    if conns.is_empty() {
        println!("  (no live connections)");
        return;
    }
    println!(
        "  {:<6} {:<7} {:<4} {:<15} {:<36} {:<5} {:<16} SINCE",
        "COLO", "PROTO", "WIRE", "KEY EXCHANGE", "CONNECTOR", "INDEX", "ORIGIN IP"
    );
    for c in conns {
        println!(
            "  {:<6} {:<7} {:<4} {:<15} {:<36} {:<5} {:<16} {}",
            c.colo,
            c.protocol,
            format!("v{}", c.wire),
            if c.kx.is_empty() { "?" } else { &c.kx },
            c.connector_id,
            c.conn_index,
            c.origin_ip,
            ts(c.since),
        );
    }
}

/// `POST /api/v1/tunnels` (a new tunnel or an imported one), then writes
/// the credentials the edge answered with, checked first, to
/// `credentials_file` (default `./<tunnel-id>.json`); the id and the path.
async fn create_tunnel(
    client: &AdminClient,
    body: &CreateTunnel,
    credentials_file: Option<std::path::PathBuf>,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    let v: TunnelInfo = client
        .typed(Method::POST, "/api/v1/tunnels", Some(body))
        .await?;
    save_credentials(&v, credentials_file, false).await
}

/// Writes the credentials of an answer that carries them (create, import,
/// rotate-secret), checked first, to `credentials_file` (default
/// `./<tunnel-id>.json`); `overwrite` replaces an existing file. The id
/// and the path.
async fn save_credentials(
    v: &TunnelInfo,
    credentials_file: Option<std::path::PathBuf>,
    overwrite: bool,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    let id = v.id.to_string();
    let creds_json = serde_json::to_string_pretty(&v.credentials)?;
    // Validate what the edge sent before writing it.
    Credentials::from_json(&creds_json)
        .map_err(|e| anyhow::anyhow!("the edge sent unusable credentials: {e}"))?;
    let path = credentials_file.unwrap_or_else(|| format!("{id}.json").into());
    write_credentials(&path, &creds_json, overwrite).await?;
    Ok((id, path))
}

/// Writes a credentials file, mode 0600; an existing file is an error
/// unless `replace` (then it is truncated, keeping its 0600 mode).
async fn write_credentials(
    path: &std::path::Path,
    json: &str,
    replace: bool,
) -> anyhow::Result<()> {
    let path = path.to_owned();
    let json = json.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(!replace)
            .create(replace)
            .truncate(replace)
            .mode(0o600)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot write credentials to {}: {e}", path.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(json.as_bytes())?;
        f.write_all(b"\n")?;
        Ok(())
    })
    .await?
}

/// Reads an API body given with `--json FILE`.
async fn read_json_body(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| config_err(format!("--json {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| config_err(format!("--json {}: {e}", path.display())))
}

pub(crate) async fn tunnel(admin: AdminConn, cmd: TunnelCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin).await?;
    match cmd {
        TunnelCommand::Create {
            name,
            credentials_file,
        } => {
            let body = CreateTunnel {
                name: name.clone(),
                import: None,
            };
            let (id, path) = create_tunnel(&client, &body, credentials_file).await?;
            println!("Created tunnel {name} with id {id}");
            println!("Credentials written to {}", path.display());
            println!(
                "Run it with: burrow tunnel run --credentials-file {} --url tcp://localhost:PORT",
                path.display()
            );
        }
        TunnelCommand::Import {
            name,
            token,
            token_file,
            from_credentials,
            credentials_file,
        } => {
            let from = match (token, token_file, from_credentials) {
                (Some(t), _, _) => {
                    Credentials::from_token(&t).map_err(|e| config_err(format!("--token: {e}")))?
                }
                (_, Some(p), _) => {
                    let t = tokio::fs::read_to_string(&p)
                        .await
                        .map_err(|e| config_err(format!("--token-file {}: {e}", p.display())))?;
                    Credentials::from_token(&t)
                        .map_err(|e| config_err(format!("--token-file {}: {e}", p.display())))?
                }
                (_, _, Some(p)) => {
                    let t = tokio::fs::read_to_string(&p).await.map_err(|e| {
                        config_err(format!("--from-credentials {}: {e}", p.display()))
                    })?;
                    Credentials::from_json(&t).map_err(|e| {
                        config_err(format!("--from-credentials {}: {e}", p.display()))
                    })?
                }
                (None, None, None) => {
                    return Err(config_err(
                        "give the tunnel's --token, --token-file or --from-credentials",
                    ))
                }
            };
            let body = CreateTunnel {
                name: name.clone(),
                import: Some(burrow_config::api::ImportTunnel {
                    account_tag: from.account_id,
                    tunnel_id: from.tunnel_id,
                    secret: {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.encode(&from.secret.0)
                    },
                }),
            };
            let (id, path) = create_tunnel(&client, &body, credentials_file).await?;
            println!("Imported tunnel {name} with id {id}");
            println!(
                "Its connectors keep their token or credentials; give them this edge: \
                 --edge ADDR --edge-ca ca.pem"
            );
            println!(
                "burrow credentials (with this edge's address and CA) written to {}",
                path.display()
            );
        }
        TunnelCommand::List { json } => {
            let empty = "No tunnels. Create one with: burrow tunnel create NAME";
            let header = "ID\tNAME\tCREATED\tCONNECTIONS";
            client
                .list(
                    "/api/v1/tunnels",
                    json,
                    (header, empty),
                    |t: &TunnelInfo| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            t.id,
                            t.name,
                            ts(t.created_at),
                            t.connections.len()
                        )
                    },
                )
                .await?;
        }
        TunnelCommand::Info { name, json } => {
            let name = path_segment("NAME", &name)?;
            let t: TunnelInfo = client.get(&format!("/api/v1/tunnels/{name}")).await?;
            if json {
                return print_json(&t);
            }
            println!("Tunnel {} ({})", t.name, t.id);
            println!("Created {}", ts(t.created_at));
            print_connections(&t);
        }
        TunnelCommand::Delete { name } => {
            let name = path_segment("NAME", &name)?;
            let path = format!("/api/v1/tunnels/{name}");
            client
                .act(Method::DELETE, &path, &format!("Deleted tunnel {name}"))
                .await?;
        }
        TunnelCommand::RotateSecret {
            name,
            credentials_file,
        } => {
            let name = path_segment("NAME", &name)?;
            let v: TunnelInfo = client
                .typed(
                    Method::POST,
                    &format!("/api/v1/tunnels/{name}/rotate-secret"),
                    None::<&()>,
                )
                .await?;
            let (_, path) = save_credentials(&v, credentials_file, true).await?;
            println!("Rotated the secret of tunnel {name}; connectors on the old secret are disconnected");
            println!("New credentials written to {}", path.display());
        }
        TunnelCommand::Token {
            name,
            credentials_file,
        } => {
            let seg = path_segment("NAME", &name)?;
            let v: TunnelInfo = client
                .typed(Method::GET, &format!("/api/v1/tunnels/{seg}"), None::<&()>)
                .await?;
            let id = v.id.to_string();
            let path = credentials_file.unwrap_or_else(|| format!("{id}.json").into());
            let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
                config_err(format!(
                    "--credentials-file {}: {e} (the edge keeps only a hash of the secret: give the file `tunnel create` wrote, or run `burrow tunnel rotate-secret {name}`)",
                    path.display()
                ))
            })?;
            let creds = Credentials::from_json(&text)
                .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
            if creds.tunnel_id.to_string() != id {
                return Err(config_err(format!(
                    "{} holds the credentials of tunnel {}, not of {name} ({id})",
                    path.display(),
                    creds.tunnel_id
                )));
            }
            println!("{}", creds.to_token().expose());
        }
        TunnelCommand::Run(_)
        | TunnelCommand::Ready { .. }
        | TunnelCommand::Diag { .. }
        | TunnelCommand::Ingress(_)
        | TunnelCommand::Route(_)
        | TunnelCommand::Vnet(_) => {
            unreachable!("dispatched in main")
        }
    }
    Ok(())
}

/// `app list`: id, protocol, how many ports listen, the origin.
fn app_row(a: &AppInfo) -> String {
    let s = &a.spec;
    let origin = if let Some(t) = &s.origin_tunnel {
        format!("tunnel {} hostname {}", t.tunnel, t.hostname)
    } else if let Some(d) = &s.origin_direct {
        format!("direct {}", d.join(","))
    } else if let Some(d) = &s.origin_dns {
        let port = s.origin_port.as_ref().map(ToString::to_string);
        format!("dns {} port {}", d.name, port.unwrap_or_default())
    } else {
        String::new()
    };
    let ports = a.listen.len();
    format!("{}\t{}\t{ports}\t{origin}", a.id, s.protocol)
}

pub(crate) async fn app(admin: AdminConn, cmd: AppCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin).await?;
    match cmd {
        AppCommand::Create(args) => {
            let AppCreate {
                protocol,
                tunnel,
                hostname,
                origin,
                proxy_protocol,
                ip_firewall,
                tls,
                origin_dns,
                origin_port,
                origin_dns_ttl,
                dns_name,
                connectivity,
                json: file,
            } = *args;
            let body = match file {
                Some(path) => read_json_body(&path).await?,
                None => {
                    let protocol = protocol.ok_or_else(|| {
                        config_err(
                            "--protocol: required (tcp/PORT or tcp/A-B), or give --json FILE",
                        )
                    })?;
                    let mut body = RawApp {
                        protocol,
                        ip_firewall,
                        proxy_protocol,
                        tls,
                        dns: dns_name.map(|name| RawDns {
                            kind: "CNAME".into(),
                            name,
                        }),
                        edge_ips: connectivity.map(|connectivity| RawEdgeIps {
                            kind: "dynamic".into(),
                            connectivity,
                        }),
                        ..RawApp::default()
                    };
                    match (tunnel, origin.is_empty(), origin_dns) {
                        (Some(tunnel), true, None) => {
                            body.origin_tunnel = Some(RawOriginTunnel {
                                tunnel,
                                hostname: hostname.unwrap_or_default(),
                            });
                        }
                        (None, false, None) => body.origin_direct = Some(origin),
                        (None, true, Some(name)) => {
                            body.origin_dns = Some(RawOriginDns {
                                name,
                                ttl: origin_dns_ttl,
                            });
                            body.origin_port = Some(json!(origin_port.unwrap_or_default()));
                        }
                        _ => return Err(config_err(
                            "give one of --tunnel NAME (with --hostname), --origin tcp://IP:PORT or --origin-dns NAME --origin-port PORT",
                        )),
                    }
                    serde_json::to_value(body)?
                }
            };
            let app: AppInfo = client
                .typed(Method::POST, "/api/v1/apps", Some(&body))
                .await?;
            println!("Created app {}", app.id);
            let addrs: Vec<std::net::SocketAddr> =
                app.listen.iter().filter_map(|a| a.parse().ok()).collect();
            let lines = if addrs.len() == app.listen.len() {
                listen_lines(&addrs)
            } else {
                app.listen.clone()
            };
            for line in lines {
                println!("listen: {line}");
            }
        }
        AppCommand::List { json } => {
            let empty =
                "No apps. Create one with: burrow app create --protocol tcp/PORT --tunnel NAME";
            client
                .list(
                    "/api/v1/apps",
                    json,
                    ("ID\tPROTOCOL\tPORTS\tORIGIN", empty),
                    app_row,
                )
                .await?;
        }
        AppCommand::Update { id, json: path } => {
            let id = path_segment("ID", &id)?;
            let body = read_json_body(&path).await?;
            let app: AppInfo = client
                .typed(Method::PUT, &format!("/api/v1/apps/{id}"), Some(&body))
                .await?;
            println!("Updated app {}", app.id);
        }
        AppCommand::Get { id } => {
            let id = path_segment("ID", &id)?;
            let app: AppInfo = client.get(&format!("/api/v1/apps/{id}")).await?;
            print_json(&app)?;
        }
        AppCommand::Delete { id } => {
            let id = path_segment("ID", &id)?;
            client
                .act(
                    Method::DELETE,
                    &format!("/api/v1/apps/{id}"),
                    &format!("Deleted app {id}"),
                )
                .await?;
        }
    }
    Ok(())
}

pub(crate) async fn access(admin: AdminConn, cmd: crate::cli::AccessCommand) -> anyhow::Result<()> {
    use crate::cli::AccessCommand;
    let client = AdminClient::new(&admin).await?;
    match cmd {
        AccessCommand::Create {
            mode,
            target,
            value,
        } => {
            let body = CreateAccessRule {
                mode,
                target,
                value,
            };
            let v: AccessRuleInfo = client
                .typed(Method::POST, "/api/v1/access-rules", Some(&body))
                .await?;
            println!("Created access rule {}", v.id);
            if let Some(w) = v.warning {
                eprintln!("warning: {w}");
            }
        }
        AccessCommand::List { json } => {
            let table = (
                "ID\tMODE\tTARGET\tVALUE\tCREATED",
                "No access rules. Add one with: burrow access-rule create --mode block --target ip_range --value CIDR",
            );
            client
                .list("/api/v1/access-rules", json, table, |r: &AccessRuleInfo| {
                    let created = ts(r.created_at);
                    format!("{}\t{}\t{}\t{}\t{created}", r.id, r.mode, r.target, r.value)
                })
                .await?;
        }
        AccessCommand::Delete { id } => {
            let id = path_segment("ID", &id)?;
            let path = format!("/api/v1/access-rules/{id}");
            client
                .act(Method::DELETE, &path, &format!("Deleted access rule {id}"))
                .await?;
        }
    }
    Ok(())
}

pub(crate) async fn user(admin: AdminConn, cmd: crate::cli::UserCommand) -> anyhow::Result<()> {
    use crate::cli::UserCommand;
    let client = AdminClient::new(&admin).await?;
    match cmd {
        UserCommand::Add { email, groups } => {
            let body = CreateUser { email, groups };
            let v: UserInfo = client
                .typed(Method::POST, "/api/v1/users", Some(&body))
                .await?;
            println!("Added user {}", v.email);
        }
        UserCommand::List { json } => {
            let table = (
                "EMAIL\tGROUPS\tCREATED",
                "No users. Add one with: burrow user add EMAIL --group GROUP",
            );
            client
                .list("/api/v1/users", json, table, |u: &UserInfo| {
                    format!("{}\t{}\t{}", u.email, u.groups.join(","), ts(u.created_at))
                })
                .await?;
        }
        UserCommand::Delete { email } => {
            let email = burrow_config::identity::validate_email("EMAIL", &email)
                .map_err(|e| config_err(e.to_string()))?;
            let seg = email
                .replace('%', "%25")
                .replace('@', "%40")
                .replace('+', "%2B");
            let path = format!("/api/v1/users/{seg}");
            let done = format!("Deleted user {email} and their devices");
            client.act(Method::DELETE, &path, &done).await?;
        }
    }
    Ok(())
}

pub(crate) async fn device(admin: AdminConn, cmd: crate::cli::DeviceCommand) -> anyhow::Result<()> {
    use crate::cli::DeviceCommand;
    let client = AdminClient::new(&admin).await?;
    match cmd {
        DeviceCommand::Enroll {
            user,
            name,
            credentials_file,
        } => {
            let body = EnrollDevice {
                user,
                name: name.clone(),
            };
            let v: DeviceInfo = client
                .typed(Method::POST, "/api/v1/devices", Some(&body))
                .await?;
            let creds_json = serde_json::to_string_pretty(&v.credentials)?;
            burrow_config::identity::DeviceCredentials::from_json(&creds_json)
                .map_err(|e| anyhow::anyhow!("the edge sent unusable credentials: {e}"))?;
            let path = credentials_file
                .unwrap_or_else(|| std::path::PathBuf::from(format!("device-{name}.json")));
            write_credentials(&path, &creds_json, false).await?;
            println!(
                "Enrolled device {} for {}; credentials written to {}",
                v.id,
                v.user_email,
                path.display()
            );
        }
        DeviceCommand::List { json } => {
            let table = (
                "ID\tUSER\tNAME\tSTATE\tENROLLED",
                "No devices. Enroll one with: burrow device enroll --user EMAIL --name NAME",
            );
            client
                .list("/api/v1/devices", json, table, |d: &DeviceInfo| {
                    let state = if d.revoked { "revoked" } else { "active" };
                    let enrolled = ts(d.created_at);
                    format!(
                        "{}\t{}\t{}\t{state}\t{enrolled}",
                        d.id, d.user_email, d.name
                    )
                })
                .await?;
        }
        DeviceCommand::Revoke { id } => {
            let id = path_segment("ID", &id)?;
            let path = format!("/api/v1/devices/{id}/revoke");
            client
                .act(Method::POST, &path, &format!("Revoked device {id}"))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(ts(1_795_442_400), "2026-11-23T14:00:00Z");
    }
}

/// An app's listen addresses, consecutive ports of one address as one
/// range (`127.0.0.1:20000-20999 (1000 ports)`), in the edge's order.
fn listen_lines(addrs: &[std::net::SocketAddr]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let start = addrs[i];
        let mut end = i;
        while end + 1 < addrs.len()
            && addrs[end + 1].ip() == start.ip()
            && u32::from(addrs[end + 1].port()) == u32::from(addrs[end].port()) + 1
        {
            end += 1;
        }
        if end == i {
            out.push(start.to_string());
        } else {
            out.push(format!(
                "{start}-{} ({} ports)",
                addrs[end].port(),
                end - i + 1
            ));
        }
        i = end + 1;
    }
    out
}

#[cfg(test)]
mod listen_tests {
    use super::listen_lines;

    #[test]
    fn consecutive_ports_of_one_address_are_one_line() {
        let mut addrs: Vec<std::net::SocketAddr> = (20000..21000)
            .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
            .collect();
        addrs.extend((20000..21000).map(|p| {
            format!("[::1]:{p}")
                .parse::<std::net::SocketAddr>()
                .unwrap()
        }));
        addrs.push("127.0.0.1:443".parse().unwrap());
        assert_eq!(
            listen_lines(&addrs),
            [
                "127.0.0.1:20000-20999 (1000 ports)",
                "[::1]:20000-20999 (1000 ports)",
                "127.0.0.1:443"
            ]
        );
    }
}
