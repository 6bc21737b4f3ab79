//! `burrow vnet …`, `burrow route ip …` and `burrow egress-ip …`: virtual
//! networks, private network routes and dedicated egress IPs, through the
//! edge admin API.

use crate::admin_client::{path_segment, print_json, AdminClient};
use crate::cli::{AdminConn, EgressIpCommand, IpRouteCommand, VnetCommand};
use crate::config_err;
use burrow_config::api::{
    CreateEgressIp, CreateIpRoute, CreateRoute, CreateVnet, EgressIpInfo, IpRouteInfo, RouteInfo,
    VnetAccess, VnetInfo,
};
use burrow_policy::ip_routes::{parse_network, IpRoute, IpRouteTable};
use http::Method;

pub(crate) async fn vnet(admin: AdminConn, cmd: VnetCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin).await?;
    match cmd {
        VnetCommand::Add {
            name,
            comment,
            default,
            allow_users,
            allow_groups,
        } => {
            let body = CreateVnet {
                name,
                comment,
                default,
                allow_users,
                allow_groups,
            };
            let v: VnetInfo = client
                .typed(Method::POST, "/api/v1/vnets", Some(&body))
                .await?;
            let note = if default { " (now the default)" } else { "" };
            println!("Added virtual network {} ({}){note}", v.name, v.id);
        }
        VnetCommand::Allow {
            name,
            users,
            groups,
        } => {
            let seg = path_segment("NAME", &name)?;
            let body = VnetAccess { users, groups };
            let v: VnetInfo = client
                .typed(
                    Method::PUT,
                    &format!("/api/v1/vnets/{seg}/access"),
                    Some(&body),
                )
                .await?;
            println!(
                "Virtual network {} may be used by users {:?} and groups {:?}",
                v.name, v.allow_users, v.allow_groups
            );
        }
        VnetCommand::List { json } => {
            let list: Vec<VnetInfo> = client
                .typed(Method::GET, "/api/v1/vnets", None::<&()>)
                .await?;
            if json {
                return print_json(&list);
            }
            println!("NAME\tDEFAULT\tID\tCOMMENT");
            for n in list {
                let d = if n.default { "yes" } else { "" };
                println!("{}\t{d}\t{}\t{}", n.name, n.id, n.comment);
            }
        }
        VnetCommand::Default { name } => {
            let seg = path_segment("NAME", &name)?;
            client
                .ok(Method::PUT, &format!("/api/v1/vnets/{seg}/default"), None)
                .await?;
            println!("{name} is now the default virtual network");
        }
        VnetCommand::Delete { name } => {
            let seg = path_segment("NAME", &name)?;
            client
                .ok(Method::DELETE, &format!("/api/v1/vnets/{seg}"), None)
                .await?;
            println!("Deleted virtual network {name}");
        }
    }
    Ok(())
}

/// `?vnet=NAME`, checked.
fn vnet_query(vnet: Option<&str>) -> anyhow::Result<String> {
    Ok(match vnet {
        Some(v) => format!("?vnet={}", path_segment("--vnet", v)?),
        None => String::new(),
    })
}

pub(crate) async fn ip_route(client: &AdminClient, cmd: IpRouteCommand) -> anyhow::Result<()> {
    match cmd {
        IpRouteCommand::Add {
            network,
            tunnel,
            vnet,
            comment,
        } => {
            let body = CreateIpRoute {
                network,
                tunnel,
                vnet,
                comment,
            };
            let r: IpRouteInfo = client
                .typed(Method::POST, "/api/v1/ip-routes", Some(&body))
                .await?;
            println!(
                "Routed {} to tunnel {} ({}) in virtual network {}",
                r.network,
                r.tunnel.unwrap_or_default(),
                r.tunnel_id,
                r.vnet.unwrap_or_default()
            );
        }
        IpRouteCommand::List { json } => {
            let list: Vec<IpRouteInfo> = client
                .typed(Method::GET, "/api/v1/ip-routes", None::<&()>)
                .await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("No IP routes. Add one with: burrow route ip add 10.0.0.0/8 TUNNEL");
                return Ok(());
            }
            println!("NETWORK\tVNET\tTUNNEL\tTUNNEL ID\tCOMMENT");
            for r in list {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.network,
                    r.vnet.unwrap_or_default(),
                    r.tunnel.unwrap_or_default(),
                    r.tunnel_id,
                    r.comment
                );
            }
        }
        IpRouteCommand::Get { ip, vnet } => {
            let routes: Vec<IpRouteInfo> = client
                .typed(Method::GET, "/api/v1/ip-routes", None::<&()>)
                .await?;
            let vnets: Vec<VnetInfo> = client
                .typed(Method::GET, "/api/v1/vnets", None::<&()>)
                .await?;
            let vnet = match vnet {
                Some(v) => v,
                None => vnets
                    .into_iter()
                    .find(|v| v.default)
                    .map(|v| v.name)
                    .unwrap_or_default(),
            };
            let table = IpRouteTable::new(routes.into_iter().filter_map(|r| {
                Some(IpRoute {
                    vnet: r.vnet.clone().unwrap_or_default(),
                    network: parse_network(&r.network).ok()?,
                    target: r,
                })
            }));
            match table.lookup(&vnet, ip) {
                Some(r) => println!(
                    "{ip} in virtual network {vnet}: route {} → tunnel {} ({})",
                    r.network,
                    r.target.tunnel.as_deref().unwrap_or(""),
                    r.target.tunnel_id
                ),
                None => println!(
                    "{ip} in virtual network {vnet}: no route; flows go to the Internet under the egress policies"
                ),
            }
        }
        IpRouteCommand::Delete { network, vnet } => {
            let net = parse_network(&network).map_err(|e| config_err(format!("NETWORK: {e}")))?;
            let seg = net.to_string().replace('/', "-");
            let q = vnet_query(vnet.as_deref())?;
            client
                .ok(Method::DELETE, &format!("/api/v1/ip-routes/{seg}{q}"), None)
                .await?;
            println!("Deleted IP route {net}");
        }
    }
    Ok(())
}

pub(crate) async fn egress_ip(admin: AdminConn, cmd: EgressIpCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin).await?;
    match cmd {
        EgressIpCommand::Add { ip, colo } => {
            let body = CreateEgressIp { ip, colo };
            let v: EgressIpInfo = client
                .typed(Method::POST, "/api/v1/egress-ips", Some(&body))
                .await?;
            println!("Egress IP {} belongs to colo {}", v.ip, v.colo);
        }
        EgressIpCommand::List { json } => {
            let list: Vec<EgressIpInfo> = client
                .typed(Method::GET, "/api/v1/egress-ips", None::<&()>)
                .await?;
            if json {
                return print_json(&list);
            }
            println!("IP\tCOLO");
            for e in list {
                println!("{}\t{}", e.ip, e.colo);
            }
        }
        EgressIpCommand::Delete { ip } => {
            let ip: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| config_err(format!("IP: '{ip}' is not an IPv4 address")))?;
            client
                .ok(Method::DELETE, &format!("/api/v1/egress-ips/{ip}"), None)
                .await?;
            println!("Deleted egress IP {ip}");
        }
    }
    Ok(())
}

pub(crate) async fn route(admin: AdminConn, cmd: crate::cli::RouteCommand) -> anyhow::Result<()> {
    use crate::cli::RouteCommand;
    let client = AdminClient::new(&admin).await?;
    match cmd {
        RouteCommand::Dns { tunnel, hostname } => {
            let body = CreateRoute { hostname, tunnel };
            let v: RouteInfo = client
                .typed(Method::POST, "/api/v1/routes", Some(&body))
                .await?;
            println!(
                "Routed {} to tunnel {} ({})",
                v.hostname,
                v.tunnel.unwrap_or_default(),
                v.tunnel_id
            );
        }
        RouteCommand::List { json } => {
            let list: Vec<RouteInfo> = client
                .typed(Method::GET, "/api/v1/routes", None::<&()>)
                .await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("No routes. Add one with: burrow route dns TUNNEL HOSTNAME");
            }
            for r in list {
                let tunnel = r.tunnel.as_deref().unwrap_or("-");
                println!("{}\t{tunnel}\t{}", r.hostname, r.tunnel_id);
            }
        }
        RouteCommand::Delete { hostname } => {
            // `*.` is sent percent-encoded; the rest must be a plain name.
            let rest = hostname.strip_prefix("*.").unwrap_or(&hostname);
            path_segment("HOSTNAME", rest)?;
            let seg = if hostname.starts_with("*.") {
                format!("%2A.{rest}")
            } else {
                rest.to_owned()
            };
            client
                .ok(Method::DELETE, &format!("/api/v1/routes/{seg}"), None)
                .await?;
            println!("Deleted route {hostname}");
        }
        RouteCommand::Ip(cmd) => return ip_route(&client, cmd).await,
    }
    Ok(())
}
