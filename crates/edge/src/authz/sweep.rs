//! Re-checks of live grants: every [`AUTHZ_SWEEP`], and at once when an
//! admin change on this node may have revoked one.

use crate::authz;
use crate::context::Ctx;
use crate::telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often every live grant is checked against the store, so changes
/// made through another node sharing the store take effect here too.
const AUTHZ_SWEEP: Duration = Duration::from_secs(1);

/// Re-checks the grants of connected parties every [`AUTHZ_SWEEP`], and at
/// once when an admin change on this node may have revoked one.
pub(crate) async fn authz_sweeps(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(AUTHZ_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = ctx.grants.changed.notified() => {}
        }
        if ctx.grants.len() == 0 {
            continue;
        }
        let facts = match authz::Facts::load(&ctx.store).await {
            Ok(f) => f,
            Err(e) => {
                // Keep serving on the grants checked last; say so.
                warn!(error = %e, "could not re-check live grants against the state store");
                continue;
            }
        };
        for (grant, why) in ctx.grants.sweep(&facts) {
            ctx.telemetry
                .metrics
                .revoked
                .get_or_create(&metrics::RevokedLabels {
                    party: grant.party(),
                    reason: why.label(),
                })
                .inc();
        }
    }
}
