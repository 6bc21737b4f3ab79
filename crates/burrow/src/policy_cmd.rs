//! `burrow policy lint|test --file rules.json`: the egress policy engine,
//! offline.

use crate::cli::PolicyCommand;
use crate::config_err;
use burrow_policy::egress::{decide, explain, lint, Facts, Finding, Protocol};

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
        PolicyCommand::Set { .. } | PolicyCommand::Show => {}
    }
    Ok(())
}
