//! Why a flow ended, and which side failed: one vocabulary for the
//! session log's `ConnectionCloseReason`, metric labels, log lines and
//! stream refusals, on the edge and the connector alike. Nothing parses a
//! message to learn what failed; it reads a [`FlowError`]'s fields.

use std::fmt;

/// Why a flow ended. [`CloseReason::as_str`] is the session log's
/// `ConnectionCloseReason` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Either side ended the connection (the normal end).
    ClientOrOriginClosed,
    /// The destination could not be reached.
    OriginUnreachable,
    /// The destination refused the connection.
    OriginRefused,
    /// The destination did not answer in time.
    OriginTimeout,
    /// No local port was free for the dial (ephemeral range exhausted).
    PortExhaustion,
    /// The destination's name did not resolve.
    DnsFailure,
    /// The policy's dedicated egress IP is not usable here, and no other
    /// exit was.
    EgressIpUnavailable,
    /// A private route's tunnel has no connector that took the flow.
    TunnelUnavailable,
    /// The built-in deny refused the destination (the edge host, its
    /// networks, metadata services...).
    DestinationDenied,
    /// An egress policy blocked the flow.
    BlockedByPolicy,
    /// The party's access was revoked while the flow ran.
    Revoked,
    /// Silent for longer than the idle limit.
    IdleTimeout,
    /// A transport failure mid-flow.
    Error,
    /// Not ended yet (a record's initial value).
    Unknown,
}

impl CloseReason {
    /// Every reason, for documentation and tests.
    pub const ALL: [CloseReason; 14] = [
        Self::ClientOrOriginClosed,
        Self::OriginUnreachable,
        Self::OriginRefused,
        Self::OriginTimeout,
        Self::PortExhaustion,
        Self::DnsFailure,
        Self::EgressIpUnavailable,
        Self::TunnelUnavailable,
        Self::DestinationDenied,
        Self::BlockedByPolicy,
        Self::Revoked,
        Self::IdleTimeout,
        Self::Error,
        Self::Unknown,
    ];

    /// The session log's spelling, also the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientOrOriginClosed => "CLIENT_OR_ORIGIN_CLOSED",
            Self::OriginUnreachable => "ORIGIN_UNREACHABLE",
            Self::OriginRefused => "ORIGIN_REFUSED",
            Self::OriginTimeout => "ORIGIN_TIMEOUT",
            Self::PortExhaustion => "PORT_EXHAUSTION",
            Self::DnsFailure => "DNS_FAILURE",
            Self::EgressIpUnavailable => "EGRESS_IP_UNAVAILABLE",
            Self::TunnelUnavailable => "TUNNEL_UNAVAILABLE",
            Self::DestinationDenied => "DESTINATION_DENIED",
            Self::BlockedByPolicy => "BLOCKED_BY_POLICY",
            Self::Revoked => "REVOKED",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::Error => "ERROR",
            Self::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The side of a flow where something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (eyeball, device) or its connection to us.
    Client,
    /// This process (a limit, a missing certificate, an internal state).
    Local,
    /// The tunnel: no connector, or its connection failed.
    Tunnel,
    /// The origin or destination, or the connector on its way there.
    Origin,
}

impl Side {
    /// Lower-case name, as log lines start.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Local => "internal",
            Self::Tunnel => "tunnel",
            Self::Origin => "origin",
        }
    }
}

/// Why a flow failed: the side, the reason, and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    /// Where it failed.
    pub side: Side,
    /// The close reason it ends with.
    pub reason: CloseReason,
    /// What happened, for the log (addresses, the OS error...).
    pub detail: String,
}

impl FlowError {
    /// A failure on `side` ending the flow with `reason`.
    pub fn new(side: Side, reason: CloseReason, detail: impl Into<String>) -> Self {
        Self {
            side,
            reason,
            detail: detail.into(),
        }
    }
    /// A transport failure on `side` ([`CloseReason::Error`]).
    pub fn io(side: Side, e: impl fmt::Display) -> Self {
        Self::new(side, CloseReason::Error, e.to_string())
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.side.as_str(), self.detail)
    }
}

impl std::error::Error for FlowError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_upper_case_name() {
        let names: std::collections::HashSet<_> =
            CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), CloseReason::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
    }

    #[test]
    fn an_error_reads_side_first() {
        let e = FlowError::new(Side::Tunnel, CloseReason::TunnelUnavailable, "no connector");
        assert_eq!(e.to_string(), "tunnel: no connector");
    }
}
