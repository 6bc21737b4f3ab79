//! HTTP proxying pieces shared by the edge's HTTP listeners and the
//! connector's HTTP proxy: hop-by-hop headers and protocol upgrades (pure
//! functions), passing an upstream response on, and readable errors.

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, UPGRADE};
use std::future::Future;

use burrow_proto::http1::HOP_BY_HOP;

/// Whether a request (or a `101` response) switches protocols: an
/// `Upgrade` header and `upgrade` among the `Connection` tokens.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and every header named in `Connection`.
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay (the
/// hop being crossed is part of the upgrade). `TE: trailers` stays too:
/// it asks every hop for trailers, and without it HTTP/1.1 origins drop
/// them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let wants_trailers = headers
        .get_all("te")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = headers.get(UPGRADE).cloned();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
    if keep_upgrade {
        if let Some(u) = upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, u);
        }
    }
    if wants_trailers {
        headers.insert("te", HeaderValue::from_static("trailers"));
    }
}

/// `e` and each of its sources, joined with `": "` (hyper's client errors
/// say what failed only in their sources).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Passes an upstream response on: strips hop-by-hop headers and, after a
/// `101` answering a client that asked to upgrade (`client_up`), returns
/// the task that joins the two upgraded connections, for the caller to
/// spawn its own way.
pub fn pass_response(
    mut resp: http::Response<hyper::body::Incoming>,
    client_up: Option<hyper::upgrade::OnUpgrade>,
) -> (
    http::Response<hyper::body::Incoming>,
    Option<impl Future<Output = ()> + Send + 'static>,
) {
    let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let join = match (switching, client_up) {
        (true, Some(client_up)) => {
            let origin_up = hyper::upgrade::on(&mut resp);
            Some(async move {
                match tokio::try_join!(client_up, origin_up) {
                    Ok((c, o)) => {
                        let mut c = hyper_util::rt::TokioIo::new(c);
                        let mut o = hyper_util::rt::TokioIo::new(o);
                        let _ = crate::splice::splice(&mut c, &mut o).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            })
        }
        _ => None,
    };
    strip_hop_by_hop(resp.headers_mut(), switching);
    (resp, join)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut m = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut m, false);
        assert_eq!(m.len(), 1);
        assert_eq!(m["x-kept"], "yes");
    }

    #[test]
    fn te_trailers_survives_and_other_te_values_go() {
        let mut m = map(&[("te", "trailers, deflate")]);
        strip_hop_by_hop(&mut m, false);
        assert_eq!(m["te"], "trailers");
        let mut m = map(&[("te", "gzip")]);
        strip_hop_by_hop(&mut m, false);
        assert!(!m.contains_key("te"));
    }

    #[test]
    fn upgrades_are_recognized_and_kept_when_asked() {
        let mut m = map(&[
            ("connection", "Keep-Alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade(&m));
        strip_hop_by_hop(&mut m, true);
        assert_eq!(m["connection"], "upgrade");
        assert_eq!(m["upgrade"], "websocket");
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
    }
}
