//! Connections and sessions an app's limits refused: counted, and logged
//! at most once per app per 10 s.

use super::compiled::Compiled;
use crate::context::Ctx;
use std::net::SocketAddr;
use tracing::warn;

/// Counts and (at most once per app per 10 s) logs an app connection
/// or UDP session refused by `why`.
pub(crate) fn refused(ctx: &Ctx, app: &Compiled, why: crate::limits::Refused, peer: SocketAddr) {
    ctx.telemetry
        .metrics
        .app_refused
        .get_or_create(&crate::telemetry::metrics::AppRefusedLabels {
            app: app.id.to_string(),
            limit: why.label(),
        })
        .inc();
    if let Some(held) = ctx.apps.refusal_log.pass(app.id, std::time::Instant::now()) {
        warn!(
            app_id = %app.id, client = %peer, limit = why.label(), refused_since_last_line = held,
            max_connections = app.spec.limits.max_connections,
            max_connections_per_ip = app.spec.limits.max_per_ip,
            "app connection refused by a limit"
        );
    }
}
