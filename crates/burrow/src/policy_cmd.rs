//! `burrow policy …`: the edge's egress policies through the admin API
//! (`set`, `show`, `list`, `add`, `move`, `delete`), and the engine offline
//! (`lint|test --file rules.json`).

use crate::cli::PolicyCommand;
use crate::config_err;
use burrow_policy::egress::{decide, explain, lint, Facts, Finding, Protocol};
use serde_json::json;

pub(crate) async fn run(admin: crate::cli::AdminConn, cmd: PolicyCommand) -> anyhow::Result<()> {
    let file = match cmd {
        PolicyCommand::Show => {
            let client = crate::admin_client::AdminClient::new(&admin).await?;
            let v = client
                .ok(http::Method::GET, "/api/v1/policies", None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        PolicyCommand::Set { file } => {
            let text = tokio::fs::read_to_string(&file)
                .await
                .map_err(|e| config_err(format!("--file {}: {e}", file.display())))?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| config_err(format!("{}: {e}", file.display())))?;
            let client = crate::admin_client::AdminClient::new(&admin).await?;
            let v = client
                .ok(http::Method::PUT, "/api/v1/policies", Some(body))
                .await?;
            println!("Egress policies set: {} rules", v["rules"]);
            for f in v["lint"].as_array().cloned().unwrap_or_default() {
                println!("lint: {}", f.as_str().unwrap_or(""));
            }
            return Ok(());
        }
        PolicyCommand::Lint { ref file } | PolicyCommand::Test { ref file, .. } => file.clone(),
        PolicyCommand::List
        | PolicyCommand::Add(_)
        | PolicyCommand::Move { .. }
        | PolicyCommand::Delete { .. } => return edit(admin, cmd).await,
    };
    let text = tokio::fs::read_to_string(&file)
        .await
        .map_err(|e| config_err(format!("--file {}: {e}", file.display())))?;
    let rules = burrow_config::egress::parse_rules(&text)
        .map_err(|e| config_err(format!("{}: {e}", file.display())))?;
    match cmd {
        PolicyCommand::Lint { .. } => {
            let findings = lint(&rules);
            for f in &findings {
                match f {
                    Finding::Shadowed { index, by } => println!(
                        "rule {index} ({}) can never match: rule {by} ({}) covers every flow it would",
                        rules[*index].id, rules[*by].id
                    ),
                    Finding::NoCatchAll => println!(
                        "the last rule is not a catch-all: flows no rule matches take the default egress"
                    ),
                }
            }
            if findings.is_empty() {
                println!("OK: {} rules, no findings", rules.len());
            } else {
                std::process::exit(1);
            }
        }
        PolicyCommand::Test {
            user,
            groups,
            device,
            src,
            dst,
            port,
            protocol,
            hostname,
            proxied,
            vnet,
            ..
        } => {
            let ip = |field: &str, s: &str| {
                s.parse()
                    .map_err(|_| config_err(format!("{field}: '{s}' is not an IP address")))
            };
            let facts = Facts {
                user_email: user.map(|u| u.to_ascii_lowercase()),
                groups,
                device_id: device,
                src_ip: ip("--src", &src)?,
                dst_ip: dst.as_deref().map(|d| ip("--dst", d)).transpose()?,
                dst_port: port,
                protocol: match protocol.as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => {
                        return Err(config_err(format!(
                            "--protocol: '{other}' is not tcp or udp"
                        )))
                    }
                },
                hostname: hostname.map(|h| h.to_ascii_lowercase()),
                proxied,
                vnet,
            };
            let d = decide(&rules, &facts);
            let upto = d.index.map_or(rules.len(), |i| i + 1);
            for (i, r) in rules.iter().take(upto).enumerate() {
                println!("rule {i} ({}): {}", r.id, explain(r, &facts));
            }
            match d.index {
                Some(i) => println!(
                    "=> rule {i} ({}) \"{}\": {:?}",
                    rules[i].id, rules[i].name, d.action
                ),
                None => println!("=> no rule matches: default egress"),
            }
        }
        // Answered above, before any rule file is read.
        PolicyCommand::Set { .. }
        | PolicyCommand::Show
        | PolicyCommand::List
        | PolicyCommand::Add(_)
        | PolicyCommand::Move { .. }
        | PolicyCommand::Delete { .. } => {}
    }
    Ok(())
}

/// The rule `burrow policy add` describes with flags.
fn rule_json(a: &crate::cli::PolicyAdd) -> anyhow::Result<serde_json::Value> {
    if let Some(j) = &a.json {
        return serde_json::from_str(j).map_err(|e| config_err(format!("--json: {e}")));
    }
    let mut selector = serde_json::Map::new();
    for (key, values) in [
        ("emails", &a.emails),
        ("groups", &a.groups),
        ("devices", &a.devices),
        ("src", &a.src),
        ("dst", &a.dst),
        ("ports", &a.ports),
        ("protocols", &a.protocols),
        ("hostnames", &a.hostnames),
        ("vnets", &a.vnets),
    ] {
        if !values.is_empty() {
            selector.insert(key.into(), json!(values));
        }
    }
    if let Some(v) = &a.ip_version {
        selector.insert("ip_version".into(), json!(v));
    }
    if let Some(p) = a.proxied {
        selector.insert("proxied".into(), json!(p));
    }
    let action = match &a.dedicated {
        None if a.block => json!({"type": "block"}),
        None => json!({"type": "default"}),
        Some(primary) => {
            let mut d = json!({"type": "dedicated", "primary_ipv4": primary});
            if let Some(s) = &a.secondary {
                d["secondary_ipv4"] = json!(s);
            }
            if let Some(r) = &a.ipv6_range {
                d["ipv6_range"] = json!(r);
            }
            d
        }
    };
    Ok(json!({"id": a.id, "name": a.name, "selector": selector, "action": action}))
}

/// One line per rule: position, id, name, selector, action.
fn print_rules(rules: &serde_json::Value) {
    let list = rules.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No egress policies: every flow takes the default egress.");
        return;
    }
    for (i, r) in list.iter().enumerate() {
        let sel = r
            .get("selector")
            .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()))
            .map_or_else(|| "any flow".to_owned(), |s| s.to_string());
        println!(
            "{}\t{}\t{}\t{}\t{}",
            i + 1,
            r["id"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or(""),
            sel,
            r["action"]
        );
    }
}

async fn edit(admin: crate::cli::AdminConn, cmd: PolicyCommand) -> anyhow::Result<()> {
    use http::Method;
    let client = crate::admin_client::AdminClient::new(&admin).await?;
    let seg = |id: &str| crate::admin_client::path_segment("ID", id);
    let v = match cmd {
        PolicyCommand::List => {
            let v = client.ok(Method::GET, "/api/v1/policies", None).await?;
            print_rules(&v);
            return Ok(());
        }
        PolicyCommand::Add(a) => {
            let rule = rule_json(&a)?;
            client
                .ok(
                    Method::POST,
                    "/api/v1/policies/rules",
                    Some(json!({"rule": rule, "position": a.position})),
                )
                .await?
        }
        PolicyCommand::Move { id, position } => {
            client
                .ok(
                    Method::POST,
                    &format!("/api/v1/policies/rules/{}/move", seg(&id)?),
                    Some(json!({"position": position})),
                )
                .await?
        }
        PolicyCommand::Delete { id } => {
            client
                .ok(
                    Method::DELETE,
                    &format!("/api/v1/policies/rules/{}", seg(&id)?),
                    None,
                )
                .await?
        }
        _ => unreachable!("only list/add/move/delete come here"),
    };
    print_rules(&v["rules"]);
    for f in v["lint"].as_array().cloned().unwrap_or_default() {
        println!("lint: {}", f.as_str().unwrap_or(""));
    }
    Ok(())
}
