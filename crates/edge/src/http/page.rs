//! The short HTML pages the edge answers with itself (404, 502...).

use burrow_proto::close::{CloseReason, FlowError, Side};
use http::StatusCode;

/// The HTML of a short page with `status`.
pub(crate) fn page_html(status: StatusCode, text: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "<!doctype html>\n<html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1>\n<p>{text}</p>\n<hr><p>burrow</p></body></html>\n",
        code = status.as_u16(),
    )
}

/// A short HTML page with `status`, as a whole HTTP/1.1 answer (with
/// `Connection: close` when `close`).
pub(crate) fn page_bytes(out: &mut Vec<u8>, status: StatusCode, text: &str, close: bool) {
    let close: &[(&str, &[u8])] = if close {
        &[("connection", b"close")]
    } else {
        &[]
    };
    burrow_proto::http1::write_answer(
        out,
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        "text/html; charset=utf-8",
        page_html(status, text).as_bytes(),
        close,
    );
}

/// The 502 page's text for a request that failed with `e`: which side
/// failed, never the detail (that goes to the log).
pub(crate) fn bad_gateway_text(e: &FlowError) -> &'static str {
    match (e.side, e.reason) {
        (Side::Tunnel, CloseReason::TunnelUnavailable) => {
            "No connector of this hostname's tunnel is connected to the edge."
        }
        _ => "The tunnel could not reach the origin.",
    }
}
