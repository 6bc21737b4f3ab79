//! What a failed dial means: one classification of the OS error, which
//! the edge (session log reasons) and the connector (metric labels, the
//! hint in its warning) both read.

use burrow_proto::close::CloseReason;

/// Why a TCP or UDP dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialFailure {
    /// `EADDRNOTAVAIL`: no free local port (the ephemeral range is used up).
    PortExhaustion,
    /// `EMFILE` / `ENFILE`: the process or the system is out of descriptors.
    TooManyOpenFiles,
    /// The destination refused the connection.
    Refused,
    /// The destination did not answer in time.
    TimedOut,
    /// Anything else.
    Unreachable,
}

const EADDRNOTAVAIL: i32 = 99;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// Classifies a dial's error.
pub fn classify(e: &std::io::Error) -> DialFailure {
    match e.raw_os_error() {
        Some(EADDRNOTAVAIL) => DialFailure::PortExhaustion,
        Some(ENFILE | EMFILE) => DialFailure::TooManyOpenFiles,
        _ if e.kind() == std::io::ErrorKind::ConnectionRefused => DialFailure::Refused,
        _ if e.kind() == std::io::ErrorKind::TimedOut => DialFailure::TimedOut,
        _ => DialFailure::Unreachable,
    }
}

impl DialFailure {
    /// Metric label (`reason=`).
    pub const fn label(self) -> &'static str {
        match self {
            Self::PortExhaustion => "port_exhaustion",
            Self::TooManyOpenFiles => "too_many_open_files",
            Self::Refused => "refused",
            Self::TimedOut => "timeout",
            Self::Unreachable => "unreachable",
        }
    }

    /// The close reason a flow ends with.
    pub const fn close_reason(self) -> CloseReason {
        match self {
            Self::PortExhaustion => CloseReason::PortExhaustion,
            Self::Refused => CloseReason::OriginRefused,
            Self::TimedOut => CloseReason::OriginTimeout,
            Self::TooManyOpenFiles | Self::Unreachable => CloseReason::OriginUnreachable,
        }
    }

    /// What the operator can do, for failures of this host rather than of
    /// the destination.
    pub const fn hint(self) -> Option<&'static str> {
        match self {
            Self::PortExhaustion => Some(
                "no free local port: the ephemeral port range is exhausted; widen it: \
                 sysctl -w net.ipv4.ip_local_port_range=\"11000 60999\"",
            ),
            Self::TooManyOpenFiles => {
                Some("too many open files: raise the limit (ulimit -n, LimitNOFILE= in the unit)")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_reasons() {
        let e = std::io::Error::from_raw_os_error(EADDRNOTAVAIL);
        assert_eq!(classify(&e), DialFailure::PortExhaustion);
        assert_eq!(classify(&e).close_reason(), CloseReason::PortExhaustion);
        assert!(classify(&e).hint().is_some());
        let e = std::io::Error::from_raw_os_error(EMFILE);
        assert_eq!(classify(&e).label(), "too_many_open_files");
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&e).close_reason(), CloseReason::OriginRefused);
        let e = std::io::Error::other("no route");
        assert_eq!(classify(&e), DialFailure::Unreachable);
        assert!(classify(&e).hint().is_none());
    }
}
