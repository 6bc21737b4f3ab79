//! The metrics server (`--metrics`): `/metrics`, `/ready`, `/healthcheck`.

use super::Metrics;
use std::sync::Arc;

/// Where `--metrics` listens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MetricsAddr {
    /// The first free port of 127.0.0.1:20241-20245, as cloudflared.
    #[default]
    Auto,
    /// This address.
    At(std::net::SocketAddr),
    /// No metrics server.
    Off,
}

/// The ports cloudflared tries for its metrics server, in order.
pub const AUTO_PORTS: std::ops::RangeInclusive<u16> = 20241..=20245;

/// Binds the metrics listener; `None` when off or (auto) no port is free.
pub(crate) async fn bind(addr: &MetricsAddr) -> Result<Option<tokio::net::TcpListener>, String> {
    match addr {
        MetricsAddr::Off => Ok(None),
        MetricsAddr::At(a) => tokio::net::TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| format!("--metrics {a}: {e}")),
        MetricsAddr::Auto => {
            let found = first_free(AUTO_PORTS).await;
            if found.is_none() {
                tracing::warn!("no free port in 127.0.0.1:20241-20245; metrics server not started (use --metrics ADDR)");
            }
            Ok(found)
        }
    }
}

/// A listener on the first of `ports` of 127.0.0.1 that is free, in order.
async fn first_free(ports: impl IntoIterator<Item = u16>) -> Option<tokio::net::TcpListener> {
    for port in ports {
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return Some(l);
        }
    }
    None
}

/// Serves `/metrics`, `/ready` and `/healthcheck` until `shutdown`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    connector_id: uuid::Uuid,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let m = m.clone();
                async move {
                    // OpenMetrics when asked for (Prometheus), else classic text.
                    use burrow_transport::exposition as x;
                    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
                    // The ephemeral-port gauge reads /proc: off the runtime.
                    let text = tokio::task::spawn_blocking(move || m.render())
                        .await
                        .unwrap_or_default();
                    if x::wants_openmetrics(accept) {
                        ([(header::CONTENT_TYPE, x::OPENMETRICS)], text)
                    } else {
                        (
                            [(header::CONTENT_TYPE, x::PROMETHEUS_TEXT)],
                            x::to_prometheus_text_with(&text, Metrics::CLASSIC_COUNTERS),
                        )
                    }
                }
            }),
        )
        .route(
            "/ready",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move {
                    let n = m.ha_connections.get();
                    let status = if n > 0 {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::json!({
                        "status": status.as_u16(),
                        "readyConnections": n,
                        "connectorId": connector_id,
                    });
                    (status, axum::Json(body)).into_response()
                }
            }),
        )
        .route("/healthcheck", axum::routing::get(|| async { "OK\n" }));
    if let Ok(a) = listener.local_addr() {
        tracing::info!("metrics server on http://{a}/metrics");
        println!("metrics: http://{a}/metrics");
    }
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_search_takes_the_first_free_port_in_order_and_gives_up_after_the_last() {
        // Three ports: the first two held, the last free.
        let held: Vec<_> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let mut ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        ports.push(free_port);
        let l = first_free(ports.clone()).await.expect("the third is free");
        assert_eq!(l.local_addr().unwrap().port(), free_port);
        // Now all three are taken.
        assert!(first_free(ports).await.is_none());
        assert_eq!(AUTO_PORTS.clone().count(), 5);
        assert_eq!(
            *AUTO_PORTS.start(),
            20241,
            "cloudflared's first metrics port"
        );
    }
}
