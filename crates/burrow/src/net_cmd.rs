//! `burrow vnet …`, `burrow route ip …` and `burrow egress-ip …`: virtual
//! networks, private network routes and dedicated egress IPs, through the
//! edge admin API.

use crate::admin_client::{path_segment, AdminClient};
use crate::cli::{AdminConn, ClusterCommand, EgressIpCommand, IpRouteCommand, VnetCommand};
use crate::config_err;
use burrow_config::api::{
    CreateEgressIp, CreateIpRoute, CreateRoute, CreateVnet, EgressIpInfo, IpRouteInfo, NodeInfo,
    RouteInfo, VnetAccess, VnetInfo,
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
            let table = ("NAME\tDEFAULT\tID\tCOMMENT", "No virtual networks.");
            client
                .list("/api/v1/vnets", json, table, |n: &VnetInfo| {
                    let d = if n.default { "yes" } else { "" };
                    format!("{}\t{d}\t{}\t{}", n.name, n.id, n.comment)
                })
                .await?;
        }
        VnetCommand::Default { name } => {
            let seg = path_segment("NAME", &name)?;
            client
                .act(
                    Method::PUT,
                    &format!("/api/v1/vnets/{seg}/default"),
                    &format!("{name} is now the default virtual network"),
                )
                .await?;
        }
        VnetCommand::Delete { name } => {
            let seg = path_segment("NAME", &name)?;
            client
                .act(
                    Method::DELETE,
                    &format!("/api/v1/vnets/{seg}"),
                    &format!("Deleted virtual network {name}"),
                )
                .await?;
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
            let table = (
                "NETWORK\tVNET\tTUNNEL\tTUNNEL ID\tCOMMENT",
                "No IP routes. Add one with: burrow route ip add 10.0.0.0/8 TUNNEL",
            );
            client
                .list("/api/v1/ip-routes", json, table, |r: &IpRouteInfo| {
                    let vnet = r.vnet.as_deref().unwrap_or_default();
                    let tunnel = r.tunnel.as_deref().unwrap_or_default();
                    format!(
                        "{}\t{vnet}\t{tunnel}\t{}\t{}",
                        r.network, r.tunnel_id, r.comment
                    )
                })
                .await?;
        }
        IpRouteCommand::Get { ip, vnet } => {
            let routes: Vec<IpRouteInfo> = client.get("/api/v1/ip-routes").await?;
            let vnets: Vec<VnetInfo> = client.get("/api/v1/vnets").await?;
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
                .act(
                    Method::DELETE,
                    &format!("/api/v1/ip-routes/{seg}{q}"),
                    &format!("Deleted IP route {net}"),
                )
                .await?;
        }
    }
    Ok(())
}

pub(crate) async fn cluster(admin: AdminConn, cmd: ClusterCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(&admin).await?;
    match cmd {
        ClusterCommand::Status { json } => {
            let table = (
                "NODE\tCOLO\tTUNNEL\tVERSION\tLEASE\tCONNECTIONS",
                "No nodes have announced themselves yet.",
            );
            client
                .list("/api/v1/cluster/nodes", json, table, |n: &NodeInfo| {
                    let lease = if n.live {
                        format!("live ({:.1}s ago)", n.lease_age_ms as f64 / 1000.0)
                    } else {
                        format!("DEAD ({}s ago)", n.lease_age_ms / 1000)
                    };
                    let me = if n.this_node { " (this node)" } else { "" };
                    format!(
                        "{}{me}\t{}\t{}\t{}\t{lease}\t{}",
                        n.id, n.colo, n.tunnel_addr, n.version, n.connections
                    )
                })
                .await?;
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
            let table = (
                "IP\tCOLO",
                "No egress IPs. Declare one with: burrow egress-ip add IP --colo COLO",
            );
            client
                .list("/api/v1/egress-ips", json, table, |e: &EgressIpInfo| {
                    format!("{}\t{}", e.ip, e.colo)
                })
                .await?;
        }
        EgressIpCommand::Delete { ip } => {
            let ip: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| config_err(format!("IP: '{ip}' is not an IPv4 address")))?;
            client
                .act(
                    Method::DELETE,
                    &format!("/api/v1/egress-ips/{ip}"),
                    &format!("Deleted egress IP {ip}"),
                )
                .await?;
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
            let empty = "No routes. Add one with: burrow route dns TUNNEL HOSTNAME";
            client
                .list("/api/v1/routes", json, ("", empty), |r: &RouteInfo| {
                    let tunnel = r.tunnel.as_deref().unwrap_or("-");
                    format!("{}\t{tunnel}\t{}", r.hostname, r.tunnel_id)
                })
                .await?;
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
                .act(
                    Method::DELETE,
                    &format!("/api/v1/routes/{seg}"),
                    &format!("Deleted route {hostname}"),
                )
                .await?;
        }
        RouteCommand::Ip(cmd) => return ip_route(&client, cmd).await,
    }
    Ok(())
}
