//! [`FlowEnv`]: what every flow of a connector shares.

use crate::ingress::pool::PRUNE_EVERY;
use std::sync::Arc;
use std::time::Duration;

/// What the flow handler needs from the connector.
pub(crate) struct FlowEnv {
    /// The ingress rules and their origin clients; swapped whole by a
    /// config reload (flows already running keep what they matched).
    pub(crate) routing: arc_swap::ArcSwap<crate::ingress::Routing>,
    pub(crate) connect_timeout: Duration,
    pub(crate) tunnel_id: uuid::Uuid,
    /// Private-network flows and their `warp-routing` limits.
    pub(crate) private: crate::private::PrivateFlows,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Where the connector's background tasks run (connection drivers,
    /// upgraded connections, the idle-pool pruner, the metrics server);
    /// waited for when the connector stops.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

/// Closes idle origin connections past `keepAliveTimeout` (within
/// [`PRUNE_EVERY`]) even when no request comes to put one back; ends with
/// the connector. Pools of replaced rules close with them.
pub(crate) async fn close_idle(env: std::sync::Weak<FlowEnv>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(env) = env.upgrade() else {
            return;
        };
        for rule in &env.routing.load().rules {
            let pool = &rule.idle;
            pool.prune();
        }
    }
}
