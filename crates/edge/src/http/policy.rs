//! What the edge does to a public HTTP request, whichever path serves it.

use std::time::Duration;

/// Largest request head accepted (HTTP/1.1 buffer; HTTP/2 header list).
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Most request headers on HTTP/1.1.
pub(crate) const MAX_HEADERS: usize = 100;

/// Times a bodiless GET/HEAD/OPTIONS is resent when a kept-alive tunnel
/// stream closes under it.
pub(crate) const RESENDS: usize = 4;

/// Time a client has to send a request head, counted from the connection's
/// start or the end of the previous answer.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Header carrying the client's address to the origin.
pub(crate) const CONNECTING_IP: &str = "burrow-connecting-ip";
