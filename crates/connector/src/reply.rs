//! What a public HTTP client is told when its request fails at the
//! connector: a generic line with a request id. The detail (origin
//! addresses, rule numbers, error chains) goes to the connector's log
//! under the same id, never to the client. Also how a flow stream is
//! refused before it reaches an origin.

use burrow_proto::{Frame, Refusal, RefuseCode};
use burrow_transport::frames::write_frame;
use burrow_transport::BoxStream;
use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

/// Logs `detail` under a fresh request id and returns the body of the
/// `502` the client gets.
pub(crate) fn bad_gateway(rule: Option<usize>, detail: &str) -> String {
    let mut id = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id);
    let request_id = hex::encode(id);
    info!(%request_id, rule, reason = %detail, "answered 502 Bad Gateway");
    format!("Bad Gateway: the origin could not be reached. Request ID: {request_id}")
}

/// Refuses a flow that arrived after this connection started draining.
pub(crate) async fn refuse_shutting_down(mut stream: BoxStream) {
    debug!("flow arrived while draining; refused so the edge retries elsewhere");
    reject(
        &mut stream,
        RefuseCode::ShuttingDown,
        "connector is shutting down",
    )
    .await;
}

pub(crate) async fn reject(stream: &mut BoxStream, code: RefuseCode, message: &str) {
    let f = Frame::StreamRejected(Refusal {
        code,
        message: message.to_owned(),
    });
    let _ = write_frame(stream, &f, false).await;
    let _ = stream.shutdown().await;
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
