//! What the edge tells its operator about traffic: Prometheus metrics,
//! the network session log of client flows, and logpush of those records.

pub(crate) mod logpush;
pub(crate) mod metrics;
pub(crate) mod session_log;

use session_log::SessionRecord;

/// The edge's telemetry sinks.
pub(crate) struct Telemetry {
    /// Prometheus metrics (`/metrics`).
    pub(crate) metrics: metrics::Metrics,
    /// Network session log writer.
    pub(crate) session_log: session_log::SessionLog,
    /// Network session log records to an HTTP endpoint, if configured.
    pub(crate) logpush: Option<logpush::Logpush>,
}

impl Telemetry {
    /// Queues a finished session's log record (counted when dropped).
    pub(crate) fn log_session(&self, r: SessionRecord) {
        self.metrics
            .client_sessions
            .get_or_create(&metrics::OutcomeLabels {
                reason: r.close_reason().as_str().to_owned(),
            })
            .inc();
        let line = r.into_line();
        if let Some(lp) = &self.logpush {
            lp.push(&line);
        }
        if !self.session_log.push(line) {
            self.metrics.session_log_dropped.inc();
            tracing::debug!("session log queue full; record dropped and counted");
        }
    }
}
