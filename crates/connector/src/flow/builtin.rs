//! Built-in services (`hello_world`, `http_status:NNN`), answered by a
//! small HTTP/1.1 server on the flow stream itself, with no origin socket.

use crate::ConnInfo;
use burrow_config::connector::Service;
use burrow_proto::StreamOpen;
use burrow_transport::replay::Replay;
use burrow_transport::BoxStream;
use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;
use tracing::debug;

/// Idle limit of a built-in HTTP connection.
pub(crate) const BUILTIN_IDLE: Duration = Duration::from_secs(60);

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer of a built-in service (`http_status:NNN`, `hello_world`).
pub(crate) fn builtin_response<B>(
    service: &Service,
    req: &http::Request<B>,
    tunnel_id: uuid::Uuid,
    conn: &ConnInfo,
    open: &StreamOpen,
) -> http::Response<Full<Bytes>> {
    let resp = match *service {
        Service::HttpStatus(code) => http::Response::builder()
            .status(code)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::new())),
        _ => {
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let page = format!(
                "<!doctype html>\n<html><head><title>burrow hello world</title></head><body>\n\
                 <h1>Hello from burrow</h1>\n\
                 <p>This page was served by the connector's built-in hello_world origin, through a burrow tunnel.</p>\n\
                 <table>\n\
                 <tr><td>request</td><td>{method} {path}</td></tr>\n\
                 <tr><td>host</td><td>{host}</td></tr>\n\
                 <tr><td>client</td><td>{client}</td></tr>\n\
                 <tr><td>edge port</td><td>{edge_port}</td></tr>\n\
                 <tr><td>edge colo</td><td>{colo}</td></tr>\n\
                 <tr><td>transport</td><td>{proto}</td></tr>\n\
                 <tr><td>tunnel</td><td>{tunnel_id}</td></tr>\n\
                 <tr><td>connection</td><td>#{index} ({conn_id})</td></tr>\n\
                 <tr><td>flow</td><td>{flow}</td></tr>\n\
                 </table>\n</body></html>\n",
                method = escape(req.method().as_str()),
                path = escape(path),
                host = escape(host),
                client = open.client_addr,
                edge_port = open.edge_port,
                colo = escape(&conn.colo),
                proto = conn.protocol,
                index = conn.index,
                conn_id = conn.connection_id,
                flow = open.flow_id,
            );
            http::Response::builder()
                .status(200)
                .header("content-type", "text/html; charset=utf-8")
                .body(Full::new(Bytes::from(page)))
        }
    };
    resp.expect("static response parts are valid")
}

pub(crate) async fn serve_builtin(
    io: Replay<BoxStream>,
    service: Service,
    tunnel_id: uuid::Uuid,
    conn: Arc<ConnInfo>,
    open: StreamOpen,
) {
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let resp = builtin_response(&service, &req, tunnel_id, &conn, &open);
        async move { Ok::<_, http::Error>(resp) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    match tokio::time::timeout(BUILTIN_IDLE, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "built-in HTTP connection ended"),
        Err(_) => debug!("built-in HTTP connection idle; closed"),
    }
}
