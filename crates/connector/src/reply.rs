//! What a public HTTP client is told when its request fails at the
//! connector: a generic line with a request id. The detail (origin
//! addresses, rule numbers, error chains) goes to the connector's log
//! under the same id, never to the client.

use rand::RngCore;
use tracing::info;

/// Logs `detail` under a fresh request id and returns the body of the
/// `502` the client gets.
pub(crate) fn bad_gateway(rule: Option<usize>, detail: &str) -> String {
    let mut id = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id);
    let request_id = hex::encode(id);
    info!(%request_id, rule, reason = %detail, "answered 502 Bad Gateway");
    format!("Bad Gateway: the origin could not be reached. Request ID: {request_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_public_text_names_no_detail() {
        let body = super::bad_gateway(Some(1), "origin 10.0.0.5:8080: connection refused");
        assert!(!body.contains("10.0.0.5"), "{body}");
        assert!(body.starts_with("Bad Gateway"), "{body}");
        let id = body.rsplit(' ').next().unwrap();
        assert_eq!(id.len(), 16, "{body}");
    }
}
