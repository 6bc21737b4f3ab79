//! Admin API for the cluster's nodes (`/api/v1/cluster/nodes`).

use super::api::{AdminState, ApiError};
use crate::cluster::members::now_ms;
use axum::extract::State;
use axum::Json;
use burrow_config::api::NodeInfo;

pub(super) async fn nodes(State(st): State<AdminState>) -> Result<Json<Vec<NodeInfo>>, ApiError> {
    let store = &st.ctx.store;
    let nodes = store.nodes().await.map_err(ApiError::internal)?;
    let counts = store
        .connection_counts()
        .await
        .map_err(ApiError::internal)?;
    let now = now_ms();
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeInfo {
                live: n.live_at(now),
                lease_age_ms: now - n.renewed_at_ms,
                connections: counts
                    .iter()
                    .find(|(id, _)| *id == n.id)
                    .map_or(0, |(_, c)| *c),
                this_node: n.id == st.ctx.id.node_id,
                app_addresses: n
                    .app_ipv4
                    .split(',')
                    .chain(n.app_ipv6.split(','))
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
                id: n.id,
                colo: n.colo,
                tunnel_addr: n.tunnel_addr,
                version: n.version,
                started_at: n.started_at,
            })
            .collect(),
    ))
}
