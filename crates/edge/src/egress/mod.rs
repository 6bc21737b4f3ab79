//! Leaving the edge for client flows: dialing a destination from a
//! dedicated egress IP, UDP sockets and relays, and handing flows to the
//! peer edge of the colo that owns an egress IP.

pub(crate) mod dial;
pub(crate) mod peer;
pub(crate) mod peers;
pub(crate) mod tcp;
pub(crate) mod udp;
