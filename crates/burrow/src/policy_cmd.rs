//! `burrow policy …`: the edge's egress policies through the admin API
//! (`set`, `show`, `list`, `add`, `move`, `delete`), and the engine offline
//! (`lint|test --file rules.json`).

use crate::cli::PolicyCommand;
use crate::config_err;
use burrow_config::api::{AddPolicyRule, MovePolicyRule, PoliciesChanged, PoliciesSet};
use burrow_config::egress::{RawAction, RawRule};
use burrow_policy::egress::{decide, explain, lint, Facts, Finding, Protocol};

pub(crate) async fn run(admin: crate::cli::AdminConn, cmd: PolicyCommand) -> anyhow::Result<()> {
    let file = match cmd {
        PolicyCommand::Show => {
            let client = crate::admin_client::AdminClient::new(&admin).await?;
            let rules: Vec<RawRule> = client.get("/api/v1/policies").await?;
            return crate::admin_client::print_json(&rules);
        }
        PolicyCommand::Set { file } => {
            let text = tokio::fs::read_to_string(&file)
                .await
                .map_err(|e| config_err(format!("--file {}: {e}", file.display())))?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| config_err(format!("{}: {e}", file.display())))?;
            let client = crate::admin_client::AdminClient::new(&admin).await?;
            let set: PoliciesSet = client
                .typed(http::Method::PUT, "/api/v1/policies", Some(&body))
                .await?;
            println!("Egress policies set: {} rules", set.rules);
            for f in set.lint {
                println!("lint: {f}");
            }
            return Ok(());
        }
        PolicyCommand::Lint { ref file } | PolicyCommand::Test { ref file, .. } => file.clone(),
        PolicyCommand::List { .. }
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
                        "rule {} ({}) can never match: rule {} ({}) covers every flow it would",
                        index + 1,
                        rules[*index].id,
                        by + 1,
                        rules[*by].id
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
            // Numbered from 1, as positions are.
            for (i, r) in rules.iter().take(upto).enumerate() {
                println!("rule {} ({}): {}", i + 1, r.id, explain(r, &facts));
            }
            match d.index {
                Some(i) => println!(
                    "=> rule {} ({}) \"{}\": {}",
                    i + 1,
                    rules[i].id,
                    rules[i].name,
                    d.action
                ),
                None => println!("=> no rule matches: default egress"),
            }
        }
        // Answered above, before any rule file is read.
        PolicyCommand::Set { .. }
        | PolicyCommand::Show
        | PolicyCommand::List { .. }
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
    let action = match &a.dedicated {
        None if a.block => RawAction {
            kind: "block".into(),
            ..RawAction::default()
        },
        None => RawAction {
            kind: "default".into(),
            ..RawAction::default()
        },
        Some(primary) => RawAction {
            kind: "dedicated".into(),
            primary_ipv4: Some(primary.clone()),
            secondary_ipv4: a.secondary.clone(),
            ipv6_range: a.ipv6_range.clone(),
        },
    };
    let rule = RawRule {
        id: a.id.clone().unwrap_or_default(),
        name: a.name.clone(),
        selector: a.selector.clone(),
        action,
    };
    Ok(serde_json::to_value(rule)?)
}

/// One line per rule: position, id, name, selector, action.
fn print_rules(rules: &[RawRule]) {
    if rules.is_empty() {
        println!("No egress policies: every flow takes the default egress.");
        return;
    }
    println!("POSITION\tID\tNAME\tSELECTOR\tACTION\tLOG ID");
    for (i, r) in rules.iter().enumerate() {
        let sel = if r.selector.is_empty() {
            "any flow".to_owned()
        } else {
            serde_json::to_string(&r.selector).unwrap_or_default()
        };
        let action = serde_json::to_string(&r.action).unwrap_or_default();
        let log_id = burrow_config::egress::log_id(Some(&r.id));
        println!("{}\t{}\t{}\t{sel}\t{action}\t{log_id}", i + 1, r.id, r.name);
    }
}

async fn edit(admin: crate::cli::AdminConn, cmd: PolicyCommand) -> anyhow::Result<()> {
    use http::Method;
    let client = crate::admin_client::AdminClient::new(&admin).await?;
    let seg = |id: &str| crate::admin_client::path_segment("ID", id);
    let v = match cmd {
        PolicyCommand::List { json } => {
            let rules: Vec<RawRule> = client.get("/api/v1/policies").await?;
            if json {
                return crate::admin_client::print_json(&rules);
            }
            print_rules(&rules);
            return Ok(());
        }
        PolicyCommand::Add(a) => {
            let body = AddPolicyRule {
                rule: rule_json(&a)?,
                position: a.position,
            };
            client
                .typed(Method::POST, "/api/v1/policies/rules", Some(&body))
                .await?
        }
        PolicyCommand::Move { id, position } => {
            let path = format!("/api/v1/policies/rules/{}/move", seg(&id)?);
            client
                .typed(Method::POST, &path, Some(&MovePolicyRule { position }))
                .await?
        }
        PolicyCommand::Delete { id } => {
            let path = format!("/api/v1/policies/rules/{}", seg(&id)?);
            client.typed(Method::DELETE, &path, None::<&()>).await?
        }
        _ => unreachable!("only list/add/move/delete come here"),
    };
    let changed: PoliciesChanged = v;
    print_rules(&changed.rules);
    for f in changed.lint {
        println!("lint: {f}");
    }
    Ok(())
}
