//! Following the other nodes: the store's change feed drives this node's
//! routing tables, app listeners and live-grant checks, and tells whether
//! the store answers (`burrow_edge_store_up`). When the database goes
//! away the node keeps serving on what it read last; when it returns, the
//! node subscribes again and reads the whole state once, so a change made
//! meanwhile arrives.

use crate::context::Ctx;
use burrow_store::Change;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Wait between attempts to subscribe while the store is away.
const RESUBSCRIBE: Duration = Duration::from_millis(500);

/// Which parts of this node a change touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touches {
    /// Routing tables: access rules, routes, policies, vnets, egress IPs.
    pub(crate) tables: bool,
    /// App listeners.
    pub(crate) apps: bool,
    /// Live grants (tunnels, devices, users, vnets) to re-check.
    pub(crate) grants: bool,
}

impl Touches {
    /// Everything: after a (re)subscription, or a change of unknown kind.
    pub(crate) const ALL: Touches = Touches {
        tables: true,
        apps: true,
        grants: true,
    };

    /// What a change to the admin API's resource `what` touches.
    pub(crate) fn of(what: &str) -> Touches {
        match what {
            "apps" => Touches {
                tables: false,
                apps: true,
                grants: false,
            },
            "tunnels" => Touches {
                tables: true,
                apps: true,
                grants: true,
            },
            "devices" | "users" => Touches {
                tables: false,
                apps: false,
                grants: true,
            },
            "access-rules" | "routes" | "policies" | "egress-ips" => Touches {
                tables: true,
                apps: false,
                grants: false,
            },
            "vnets" | "ip-routes" => Touches {
                tables: true,
                apps: false,
                grants: true,
            },
            _ => Touches::ALL,
        }
    }
}

/// The admin API resource a request path changes (`/api/v1/apps/ID` →
/// `apps`); `*` when it names none.
pub(crate) fn resource(path: &str) -> &str {
    path.strip_prefix("/api/v1/")
        .and_then(|p| p.split('/').next())
        .filter(|r| !r.is_empty())
        .unwrap_or("*")
}

/// Applies a change to this node.
pub(crate) async fn apply(ctx: &Arc<Ctx>, accepting: &CancellationToken, t: Touches) {
    if t.tables {
        ctx.tables.reload(&ctx.store).await;
    }
    if t.apps {
        ctx.apps.running.sync(ctx, accepting).await;
    }
    if t.grants {
        ctx.grants.changed.notify_one();
    }
}

/// Follows the other nodes until `shutdown`: subscribes, reads the whole
/// state, applies each change as it comes; on a lost subscription marks
/// the store down and tries again every [`RESUBSCRIBE`].
pub(crate) async fn follow(
    ctx: Arc<Ctx>,
    accepting: CancellationToken,
    shutdown: CancellationToken,
) {
    // Warned of this outage already; subscribed before (so a success is a
    // return, worth a line).
    let (mut warned, mut before) = (false, false);
    loop {
        let mut feed = tokio::select! {
            () = shutdown.cancelled() => return,
            f = ctx.store.changes() => match f {
                Ok(f) => f,
                Err(e) => {
                    ctx.telemetry.metrics.store_up.set(0);
                    if !warned {
                        warn!(error = %e, "the state store is unreachable; serving on the state read last");
                        warned = true;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RESUBSCRIBE) => continue,
                    }
                }
            },
        };
        apply(&ctx, &accepting, Touches::ALL).await;
        ctx.telemetry.metrics.store_up.set(1);
        if before {
            info!("the state store is back; state read again");
            // Connections registered while it was away (or pruned as this
            // node's lease lapsed) are this node's again in the registry.
            for r in ctx.registry.all() {
                let _ = ctx.store.add_connection(&r.record).await;
            }
        }
        before = true;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                () = ctx.store_trouble.notified() => Ok(None),
                n = feed.next() => n,
            };
            match next {
                Ok(Some(Change { node, what })) => {
                    if node != ctx.id.node_id {
                        apply(&ctx, &accepting, Touches::of(&what)).await;
                    }
                }
                Ok(None) | Err(_) => {
                    ctx.telemetry.metrics.store_up.set(0);
                    warn!("lost the state store's change feed; serving on the state read last");
                    warned = true;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_path_names_the_resource_it_changes() {
        assert_eq!(resource("/api/v1/apps/5f0c"), "apps");
        assert_eq!(resource("/api/v1/devices/5f0c/revoke"), "devices");
        assert_eq!(resource("/api/v1/policies"), "policies");
        assert_eq!(resource("/healthcheck"), "*");
        assert_eq!(
            Touches::of("apps"),
            Touches {
                tables: false,
                apps: true,
                grants: false
            }
        );
        assert_eq!(Touches::of("something new"), Touches::ALL);
    }
}
