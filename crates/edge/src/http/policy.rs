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

/// The client as the forwarding policy sees it.
pub(crate) struct Client<'a> {
    /// The client's address, as text.
    pub(crate) ip: &'a str,
    /// Whether it came to the HTTPS listener.
    pub(crate) https: bool,
}

/// The headers the edge sets on every request it forwards, whichever path
/// serves it; both write them last, replacing any of the same name the
/// client sent (after hop-by-hop headers and those `Connection` names are
/// gone):
/// - `Host`: the name the request was routed on (the authority of an
///   absolute-form or HTTP/2 target wins over a `Host` header);
/// - `X-Forwarded-For`: every value the client sent, in order, then the
///   client's own address;
/// - `X-Forwarded-Proto`: `http` or `https`, the listener's;
/// - `Burrow-Connecting-IP`: the client's address (a client cannot forge
///   it).
pub(crate) fn edge_headers<'v>(
    host: &[u8],
    client_xff: impl IntoIterator<Item = &'v [u8]>,
    client: &Client<'_>,
) -> [(&'static str, Vec<u8>); 4] {
    let mut xff = Vec::new();
    for v in client_xff {
        let v = v.trim_ascii();
        if !v.is_empty() {
            xff.extend_from_slice(v);
            xff.extend_from_slice(b", ");
        }
    }
    xff.extend_from_slice(client.ip.as_bytes());
    let proto: &[u8] = if client.https { b"https" } else { b"http" };
    [
        ("host", host.to_vec()),
        ("x-forwarded-for", xff),
        ("x-forwarded-proto", proto.to_vec()),
        (CONNECTING_IP, client.ip.as_bytes().to_vec()),
    ]
}

/// Whether a request the edge forwarded may be sent again when the
/// kept-alive tunnel stream it went on closes without an answer (its
/// connector drained): [`burrow_proto::http1::resendable`], the rule both
/// roles follow, for a request without a body.
pub(crate) fn resendable(method: &str, bodiless: bool) -> bool {
    bodiless && burrow_proto::http1::resendable(method)
}

/// Largest request body the edge keeps a copy of, so that a request a
/// draining connector answered "not forwarded" can be sent again on
/// another connection (any method: the origin never saw it). Bodies with a
/// `Content-Length` up to this are read whole before the request goes out;
/// longer ones, and bodies of unknown length, stream as they come and are
/// not resent (a 503 from the draining connector reaches the client).
pub(crate) const RESEND_BODY_LIMIT: u64 = 64 * 1024;

/// Whether the edge keeps a copy of a body of `content_length` bytes.
pub(crate) fn keeps_body(content_length: Option<u64>) -> bool {
    content_length.is_some_and(|n| n <= RESEND_BODY_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client<'static> {
        Client {
            ip: "192.0.2.7",
            https: true,
        }
    }

    #[test]
    fn every_client_forwarded_for_value_is_kept_in_order_then_the_client() {
        let h = edge_headers(
            b"a.example",
            [&b"10.0.0.1"[..], b" 10.0.0.2, 10.0.0.3 "],
            &client(),
        );
        assert_eq!(h[1].1, b"10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7");
        let h = edge_headers(b"a.example", [], &client());
        assert_eq!(h[1].1, b"192.0.2.7");
    }

    #[test]
    fn the_edge_sets_host_proto_and_the_connecting_ip() {
        let h = edge_headers(b"a.example", [], &client());
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "host",
                "x-forwarded-for",
                "x-forwarded-proto",
                CONNECTING_IP
            ]
        );
        assert_eq!(h[0].1, b"a.example");
        assert_eq!(h[2].1, b"https");
        assert_eq!(h[3].1, b"192.0.2.7");
    }

    #[test]
    fn only_bodiless_safe_requests_are_resent() {
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(resendable(m, true), "{m}");
            assert!(!resendable(m, false), "{m} with a body");
        }
        for m in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
            assert!(!resendable(m, true), "{m}");
        }
    }
}
