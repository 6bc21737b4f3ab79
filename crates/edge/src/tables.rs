//! The routing tables every flow reads — IP access rules, hostname routes,
//! egress policies, virtual networks with their IP routes, and dedicated
//! egress IPs — as one immutable [`Snapshot`] swapped whole
//! ([`arc_swap`]): a flow takes one snapshot and sees one consistent
//! version of all of them, and readers never lock.
//!
//! The snapshot is rebuilt from the store ([`Tables::reload`]) when an
//! admin change commits on this node, and when another node announces
//! one (`follow`).

use arc_swap::ArcSwap;
use burrow_policy::{access, egress, ip_routes, routes};
use burrow_store::{Store, StoreError};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tracing::warn;

/// Meta key holding the egress policies (the API's JSON list).
pub(crate) const POLICIES_KEY: &str = "egress_policies";

/// Virtual networks and the IP routes into tunnels, as the edge uses them.
#[derive(Debug, Default)]
pub(crate) struct PrivateNets {
    /// Name → id.
    pub(crate) vnets: HashMap<String, uuid::Uuid>,
    pub(crate) default_vnet: Option<uuid::Uuid>,
    /// Id → the vnet as stored (for its access lists).
    pub(crate) rows: HashMap<uuid::Uuid, burrow_store::Vnet>,
    /// `(vnet id, network) → tunnel id`.
    pub(crate) table: ip_routes::IpRouteTable<uuid::Uuid, uuid::Uuid>,
}

impl PrivateNets {
    /// The name of vnet `id`, if it exists.
    pub(crate) fn name_of(&self, id: uuid::Uuid) -> Option<&str> {
        self.rows.get(&id).map(|v| v.name.as_str())
    }
}

/// One consistent version of every routing table.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// IP access rules, in order.
    pub(crate) access: Vec<access::Rule>,
    /// Hostname → tunnel routes of the HTTP listeners.
    pub(crate) routes: routes::RouteTable<uuid::Uuid>,
    /// Egress policies, in order.
    pub(crate) policies: Vec<egress::Rule>,
    /// Virtual networks and private-network routes.
    pub(crate) private: PrivateNets,
    /// Dedicated egress IPv4 → owning colo.
    pub(crate) egress_ips: HashMap<Ipv4Addr, String>,
}

/// The current [`Snapshot`].
#[derive(Default)]
pub(crate) struct Tables {
    now: ArcSwap<Snapshot>,
}

impl Tables {
    /// The current snapshot; hold it for the whole flow.
    pub(crate) fn now(&self) -> Arc<Snapshot> {
        self.now.load_full()
    }

    /// Rebuilds the snapshot from the store. A table that cannot be read
    /// (or holds invalid rows, which are skipped and logged) keeps its
    /// running version.
    pub(crate) async fn reload(&self, store: &Store) {
        let old = self.now();
        let keep = |what: &str, e: StoreError| {
            warn!(error = %e, "could not read {what} from the state store; keeping the running ones");
        };
        let access = match store.access_rules().await {
            Ok(rows) => access_rules(&rows),
            Err(e) => {
                keep("access rules", e);
                old.access.clone()
            }
        };
        let routes = match store.routes().await {
            Ok(rows) => {
                routes::RouteTable::new(rows.into_iter().map(|r| (r.hostname, r.tunnel_id)))
            }
            Err(e) => {
                keep("routes", e);
                old.routes.clone()
            }
        };
        let policies = match store.meta(POLICIES_KEY).await {
            Ok(Some(json)) => burrow_config::egress::parse_rules(&json).unwrap_or_else(|e| {
                warn!(error = %e, "stored egress policies are invalid; keeping the running ones");
                old.policies.clone()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                keep("egress policies", e);
                old.policies.clone()
            }
        };
        let private = match (store.vnets().await, store.ip_routes().await) {
            (Ok(v), Ok(r)) => private_nets(v, &r),
            (Err(e), _) | (_, Err(e)) => {
                keep("virtual networks and IP routes", e);
                PrivateNets {
                    vnets: old.private.vnets.clone(),
                    default_vnet: old.private.default_vnet,
                    rows: old.private.rows.clone(),
                    table: old.private.table.clone(),
                }
            }
        };
        let egress_ips = match store.egress_ips().await {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|e| Some((e.ip.parse().ok()?, e.colo)))
                .collect(),
            Err(e) => {
                keep("egress IPs", e);
                old.egress_ips.clone()
            }
        };
        self.now.store(Arc::new(Snapshot {
            access,
            routes,
            policies,
            private,
            egress_ips,
        }));
    }
}

fn access_rules(rows: &[burrow_store::AccessRule]) -> Vec<access::Rule> {
    rows.iter()
        .filter_map(|r| {
            access::Rule::parse(&r.id.to_string(), &r.mode, &r.target, &r.value)
                .map_err(|e| warn!(rule_id = %r.id, reason = %e.reason, "stored access rule is invalid; ignored"))
                .ok()
        })
        .collect()
}

fn private_nets(vnets: Vec<burrow_store::Vnet>, routes: &[burrow_store::IpRoute]) -> PrivateNets {
    let table = ip_routes::IpRouteTable::new(routes.iter().filter_map(|r| {
        let network = ip_routes::parse_network(&r.network)
            .map_err(
                |e| warn!(route_id = %r.id, reason = %e, "stored IP route is invalid; ignored"),
            )
            .ok()?;
        Some(ip_routes::IpRoute {
            vnet: r.vnet_id,
            network,
            target: r.tunnel_id,
        })
    }));
    PrivateNets {
        default_vnet: vnets.iter().find(|v| v.is_default).map(|v| v.id),
        vnets: vnets.iter().map(|v| (v.name.clone(), v.id)).collect(),
        rows: vnets.into_iter().map(|v| (v.id, v)).collect(),
        table,
    }
}
