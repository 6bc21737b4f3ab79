//! The built-in DNS responder (`--dns ADDR`), authoritative for the edge
//! domain: `_v2-origintunneld._tcp.<domain>` SRV lists the live nodes'
//! tunnel endpoints (targets `<node>.nodes.<domain>`, with their A/AAAA),
//! so connectors find live edges the way cloudflared does; an app's
//! `dns.name` answers with that app's addresses on the live nodes. Records
//! follow membership (a dead node is gone within its lease) and carry a
//! short TTL. [`answer`] is the socket-free core; [`Responder`] serves it
//! with hickory-server on UDP and TCP.

use crate::context::Ctx;
use crate::pools::AppPools;
use burrow_config::app::Connectivity;
use burrow_store::Node;
use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// TTL of every record: membership changes within a lease.
const TTL: u32 = 5;

/// The SRV name connectors look up, under the edge domain.
const SRV_LABELS: &str = "_v2-origintunneld._tcp";

/// What the responder knows: the domain, the live nodes, the apps with a
/// DNS name.
pub(crate) struct Zone {
    pub(crate) domain: Name,
    pub(crate) nodes: Vec<Node>,
    pub(crate) apps: Vec<(String, uuid::Uuid, Connectivity)>,
}

/// An answer: the response code, answers, additional records, and the SOA
/// for the authority section (negative answers).
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) code: ResponseCode,
    pub(crate) authoritative: bool,
    pub(crate) answers: Vec<Record>,
    pub(crate) additionals: Vec<Record>,
    pub(crate) soa: Vec<Record>,
}

/// `s` as a fully qualified, lower-case name.
fn name(s: &str) -> Option<Name> {
    Name::from_str(&format!("{}.", s.trim_end_matches('.')))
        .ok()
        .map(|n| n.to_lowercase())
}

impl Zone {
    /// A node's host name: `<id>.nodes.<domain>` (ids are DNS labels).
    fn host(&self, n: &Node) -> Option<Name> {
        Name::from_str(&format!("{}.nodes", n.id.to_ascii_lowercase()))
            .ok()?
            .append_domain(&self.domain)
            .ok()
    }

    fn soa(&self) -> Record {
        let ns = Name::from_str("ns")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let mbox = Name::from_str("hostmaster")
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        Record::from_rdata(
            self.domain.clone(),
            TTL,
            RData::SOA(SOA::new(ns, mbox, 1, 60, 30, 3600, TTL)),
        )
    }
}

fn address(owner: &Name, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), TTL, rdata)
}

fn wants(qtype: RecordType, ip: &IpAddr) -> bool {
    match qtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::AAAA => ip.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    }
}

/// The answer to `qname`/`qtype` from `zone`.
pub(crate) fn answer(zone: &Zone, qname: &Name, qtype: RecordType) -> Answer {
    let qname = qname.to_lowercase();
    let in_zone = zone.domain.zone_of(&qname);
    let mut a = Answer {
        authoritative: true,
        ..Answer::default()
    };
    let endpoints: Vec<(Name, SocketAddr)> = zone
        .nodes
        .iter()
        .filter_map(|n| Some((zone.host(n)?, n.tunnel_addr.parse::<SocketAddr>().ok()?)))
        .filter(|(_, addr)| !addr.ip().is_unspecified())
        .collect();
    let mut known = false;
    // The SRV set of the live nodes' tunnel endpoints.
    let srv = Name::from_str(SRV_LABELS)
        .ok()
        .and_then(|n| n.append_domain(&zone.domain).ok());
    if srv.as_ref() == Some(&qname) {
        known = true;
        if matches!(qtype, RecordType::SRV | RecordType::ANY) {
            for (host, addr) in &endpoints {
                a.answers.push(Record::from_rdata(
                    qname.clone(),
                    TTL,
                    RData::SRV(SRV::new(1, 1, addr.port(), host.clone())),
                ));
                a.additionals.push(address(host, addr.ip()));
            }
        }
    }
    // A node's host name.
    for (host, addr) in &endpoints {
        if *host == qname {
            known = true;
            if wants(qtype, &addr.ip()) {
                a.answers.push(address(host, addr.ip()));
            }
        }
    }
    // An app's DNS name: its address on each live node.
    for (app_name, id, connectivity) in &zone.apps {
        if name(app_name).as_ref() != Some(&qname) {
            continue;
        }
        known = true;
        for n in &zone.nodes {
            let pools = AppPools {
                v4: ips(&n.app_ipv4),
                v6: ips(&n.app_ipv6),
            };
            for ip in pools.addresses(*id, *connectivity).unwrap_or_default() {
                if wants(qtype, &ip) && !ip.is_unspecified() {
                    a.answers.push(address(&qname, ip));
                }
            }
        }
    }
    if qname == zone.domain && matches!(qtype, RecordType::SOA | RecordType::ANY) {
        a.answers.push(zone.soa());
        return a;
    }
    if !known && !in_zone {
        // Not ours to answer.
        a.code = ResponseCode::Refused;
        a.authoritative = false;
        return a;
    }
    if !known && qname != zone.domain {
        a.code = ResponseCode::NXDomain;
    }
    if a.answers.is_empty() && in_zone {
        a.soa.push(zone.soa());
    }
    a
}

fn ips(list: &str) -> Vec<IpAddr> {
    list.split(',').filter_map(|s| s.parse().ok()).collect()
}

/// The responder as hickory-server serves it.
pub(crate) struct Responder {
    pub(crate) ctx: Arc<Ctx>,
}

impl Responder {
    fn zone(&self) -> Option<Zone> {
        Some(Zone {
            domain: name(&self.ctx.id.edge_domain)?,
            nodes: self.ctx.members.live_nodes(),
            apps: self.ctx.apps.running.dns_names(),
        })
    }
}

#[async_trait::async_trait]
impl RequestHandler for Responder {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let fail = |code| {
            let mut h = Header::response_from_request(request.header());
            h.set_response_code(code);
            h
        };
        if request.op_code() != OpCode::Query || request.message_type() != MessageType::Query {
            let r = builder.error_msg(request.header(), ResponseCode::NotImp);
            return response_handle
                .send_response(r)
                .await
                .unwrap_or_else(|_| fail(ResponseCode::ServFail).into());
        }
        let (Ok(info), Some(zone)) = (request.request_info(), self.zone()) else {
            let r = builder.error_msg(request.header(), ResponseCode::FormErr);
            return response_handle
                .send_response(r)
                .await
                .unwrap_or_else(|_| fail(ResponseCode::ServFail).into());
        };
        let qname: Name = LowerName::clone(info.query.name()).into();
        let a = answer(&zone, &qname, info.query.query_type());
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(a.authoritative);
        header.set_response_code(a.code);
        let r = builder.build(
            header,
            a.answers.iter(),
            [],
            a.soa.iter(),
            a.additionals.iter(),
        );
        response_handle
            .send_response(r)
            .await
            .unwrap_or_else(|_| fail(ResponseCode::ServFail).into())
    }
}

/// Serves the responder on `udp` and `tcp` until `shutdown`.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut server = hickory_server::ServerFuture::new(Responder { ctx });
    server.register_socket(udp);
    server.register_listener(tcp, std::time::Duration::from_secs(5));
    tokio::select! {
        () = shutdown.cancelled() => {
            let _ = server.shutdown_gracefully().await;
        }
        r = server.block_until_done() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "DNS responder stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, tunnel: &str, app_v4: &str) -> Node {
        Node {
            id: id.into(),
            colo: id[..3].into(),
            tunnel_addr: tunnel.into(),
            app_ipv4: app_v4.into(),
            app_ipv6: String::new(),
            version: "x".into(),
            started_at: 0,
            renewed_at_ms: 0,
            lease_ms: 0,
        }
    }

    fn zone() -> Zone {
        Zone {
            domain: name("burrow.internal.").unwrap(),
            nodes: vec![
                node("NRT-1", "127.0.0.2:7844", "127.0.0.2"),
                node("KIX-2", "127.0.0.3:7845", "127.0.0.3"),
                node("OSA-3", "0.0.0.0:7844", "0.0.0.0"),
            ],
            apps: vec![(
                "ssh.example.com".into(),
                uuid::Uuid::nil(),
                Connectivity::All,
            )],
        }
    }

    fn q(n: &str, t: RecordType) -> Answer {
        answer(&zone(), &Name::from_str(n).unwrap(), t)
    }

    #[test]
    fn srv_lists_each_live_node_with_its_address() {
        let a = q("_v2-origintunneld._tcp.Burrow.Internal.", RecordType::SRV);
        assert_eq!(a.code, ResponseCode::NoError);
        let srv: Vec<(String, u16)> = a
            .answers
            .iter()
            .filter_map(|r| match r.data() {
                RData::SRV(s) => Some((s.target().to_string(), s.port())),
                _ => None,
            })
            .collect();
        // An unspecified listen address is not advertised.
        assert_eq!(
            srv,
            [
                ("nrt-1.nodes.burrow.internal.".to_owned(), 7844),
                ("kix-2.nodes.burrow.internal.".to_owned(), 7845)
            ]
        );
        assert_eq!(a.additionals.len(), 2);
        let host = q("kix-2.nodes.burrow.internal.", RecordType::A);
        assert!(
            matches!(host.answers[0].data(), RData::A(ip) if ip.0 == std::net::Ipv4Addr::new(127, 0, 0, 3))
        );
    }

    #[test]
    fn an_app_name_answers_with_its_address_on_each_node() {
        let a = q("ssh.example.com.", RecordType::A);
        let ips: Vec<String> = a.answers.iter().map(|r| r.data().to_string()).collect();
        assert_eq!(ips, ["127.0.0.2", "127.0.0.3"]);
        assert!(q("ssh.example.com.", RecordType::AAAA).answers.is_empty());
    }

    #[test]
    fn unknown_names_are_nxdomain_inside_and_refused_outside() {
        let a = q("nope.burrow.internal.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain);
        assert_eq!(a.soa.len(), 1);
        assert_eq!(q("example.org.", RecordType::A).code, ResponseCode::Refused);
        let soa = q("burrow.internal.", RecordType::SOA);
        assert_eq!(soa.code, ResponseCode::NoError);
        assert_eq!(soa.answers.len(), 1);
    }
}
