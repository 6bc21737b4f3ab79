//! The lean path for the commonest public request: HTTP/1.1 without a
//! body. Its head is parsed in place (`httparse`), routed by `Host`,
//! rewritten (hop-by-hop headers out; `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `Burrow-Connecting-IP` in) and written to the
//! client connection's own tunnel stream; the connector's answer is passed
//! back as it is framed (`burrow_transport::http1_relay`). No header map,
//! no hyper client, no re-encoding.
//!
//! Anything else (a body, an upgrade, `Expect`, HTTP/1.0 or HTTP/2, an
//! unknown host, a malformed head) is handed to hyper
//! ([`crate::http`]) with the bytes read so far, and hyper serves the
//! connection from then on, with its own answers (400, 404, 431...).

use crate::context::Ctx;
use burrow_proto::close::{FlowError, Side};
use burrow_proto::http1::{self, Bodiless};
use burrow_transport::http1_relay::{self as relay, AskError, MAX_HEAD};
use burrow_transport::replay::Replay;
use burrow_transport::BoxStream;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

/// Most request headers (as the hyper listener's cap).
pub(crate) const MAX_HEADERS: usize = 100;

/// What [`serve`] did with a client connection.
pub(crate) enum Outcome<S> {
    /// It is done (closed, timed out, or broken).
    Closed,
    /// A request this path does not take: hyper serves the connection
    /// from its first unread byte.
    Hyper(Replay<S>),
}

/// What to do with the bytes read so far of a request.
pub(crate) enum Plan {
    /// Not a whole head yet.
    More,
    /// Not for this path.
    Hyper,
    /// Send the head (in the caller's buffer) through `tunnel`.
    Forward {
        head_len: usize,
        tunnel: uuid::Uuid,
        hostname: String,
        head_request: bool,
        /// GET, HEAD or OPTIONS: sent again when a kept-alive stream
        /// closes under it.
        resendable: bool,
        /// The client asked to close after this answer.
        close: bool,
    },
}

/// The client side of one connection.
pub(crate) struct Client {
    peer_ip: String,
    https: bool,
}

/// Reads a request head from `buf` and decides; for [`Plan::Forward`] the
/// rewritten head is in `out`.
pub(crate) fn plan(
    buf: &[u8],
    routes: &burrow_policy::routes::RouteTable<uuid::Uuid>,
    client: &Client,
    out: &mut Vec<u8>,
) -> Plan {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match http1::parse_bodiless(buf, &mut req, MAX_HEAD) {
        Bodiless::Head(n) => n,
        Bodiless::Partial => return Plan::More,
        Bodiless::Other => return Plan::Hyper,
    };
    let method = req.method.unwrap_or("GET");
    let mut hosts = http1::header(req.headers, "host");
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Plan::Hyper;
    };
    let Ok(host) = std::str::from_utf8(host) else {
        return Plan::Hyper;
    };
    let hostname = burrow_policy::routes::strip_port(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let Some(tunnel) = routes.find(&hostname).copied() else {
        return Plan::Hyper;
    };
    let close = http1::tokens(req.headers, "connection").any(|t| t.eq_ignore_ascii_case(b"close"));
    // What the edge sets: the forwarding policy, as on the hyper path. A
    // client's X-Forwarded-For that `Connection` names stops here.
    let set = super::policy::edge_headers(
        host.as_bytes(),
        req.headers
            .iter()
            .filter(|h| {
                h.name.eq_ignore_ascii_case("x-forwarded-for")
                    && !http1::stops_here(h.name, req.headers)
            })
            .map(|h| h.value),
        &super::policy::Client {
            ip: &client.peer_ip,
            https: client.https,
        },
    );
    let set: [(&str, &[u8]); 4] = set.each_ref().map(|(n, v)| (*n, v.as_slice()));
    out.clear();
    // Written last, so a `Connection: host` cannot take them away.
    http1::write_request_head(out, &req, &set);
    Plan::Forward {
        head_len,
        tunnel,
        hostname,
        head_request: method == "HEAD",
        resendable: super::policy::resendable(method, true),
        close,
    }
}

/// The client connection's tunnel stream, kept between requests.
pub(crate) struct Kept {
    tunnel: uuid::Uuid,
    stream: BoxStream,
}

/// Serves the client connection `io` while its requests are for this
/// path.
pub(crate) async fn serve<S>(
    ctx: &Ctx,
    mut io: S,
    peer: SocketAddr,
    port: u16,
    https: bool,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let client = Client {
        peer_ip: peer.ip().to_string(),
        https,
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut request = Vec::with_capacity(1024);
    let mut answer = Vec::with_capacity(1024);
    let mut from_tunnel = BytesMut::new();
    let mut kept: Option<Kept> = None;
    let header_timeout = tokio::time::sleep(crate::http::policy::HEADER_READ_TIMEOUT);
    tokio::pin!(header_timeout);
    loop {
        let (head_len, tunnel, hostname, head_request, resendable, close) =
            match plan(&buf, &ctx.tables.now().routes, &client, &mut request) {
                Plan::Forward {
                    head_len,
                    tunnel,
                    hostname,
                    head_request,
                    resendable,
                    close,
                } => (head_len, tunnel, hostname, head_request, resendable, close),
                Plan::Hyper => {
                    if let Some(mut k) = kept.take() {
                        let _ = k.stream.shutdown().await;
                    }
                    return Outcome::Hyper(Replay::new(buf.freeze(), io));
                }
                Plan::More => {
                    buf.reserve(4096);
                    let read = tokio::select! {
                        r = io.read_buf(&mut buf) => r.ok(),
                        () = &mut header_timeout => None,
                    };
                    if !matches!(read, Some(n) if n > 0) {
                        if let Some(mut k) = kept.take() {
                            let _ = k.stream.shutdown().await;
                        }
                        return Outcome::Closed;
                    }
                    continue;
                }
            };
        buf.advance(head_len);
        // Counted when the lean path takes the request, before its answer
        // can reach the client.
        ctx.telemetry
            .metrics
            .http_requests_by_path
            .get_or_create(&crate::telemetry::metrics::PathLabels { path: "lean" })
            .inc();
        let extra: &[(&str, &[u8])] = if close {
            &[("connection", b"close")]
        } else {
            &[]
        };
        let asked = Ask {
            ctx,
            port,
            tunnel,
            head_request,
            resendable,
            request: &request,
            extra,
        };
        let (status, done) = match asked.answer(&mut kept, &mut from_tunnel, &mut answer).await {
            Ok((stream, head)) => {
                from_tunnel.advance(head.len);
                let passed = relay::pass_body(
                    head.framing,
                    &mut *stream,
                    &mut answer,
                    &mut from_tunnel,
                    &mut io,
                )
                .await;
                match passed {
                    Ok(clean) if clean && head.keep_alive => {}
                    Ok(_) => {
                        if let Some(mut k) = kept.take() {
                            let _ = k.stream.shutdown().await;
                        }
                    }
                    Err(reason) => {
                        debug!(host = %hostname, %reason, "answer cut short");
                        return Outcome::Closed;
                    }
                }
                (head.status, close)
            }
            Err(e) => {
                info!(host = %hostname, reason = %e, "HTTP request failed");
                let text = super::page::bad_gateway_text(&e);
                answer.clear();
                crate::http::page::page_bytes(
                    &mut answer,
                    http::StatusCode::BAD_GATEWAY,
                    text,
                    close,
                );
                if io.write_all(&answer).await.is_err() {
                    return Outcome::Closed;
                }
                (502, close)
            }
        };
        ctx.telemetry
            .metrics
            .http_requests
            .get_or_create(&crate::telemetry::metrics::StatusLabels::of(
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY),
            ))
            .inc();
        if done {
            let _ = io.shutdown().await;
            if let Some(mut k) = kept.take() {
                let _ = k.stream.shutdown().await;
            }
            return Outcome::Closed;
        }
        header_timeout
            .as_mut()
            .reset(tokio::time::Instant::now() + crate::http::policy::HEADER_READ_TIMEOUT);
    }
}

/// One request through a tunnel.
pub(crate) struct Ask<'a> {
    ctx: &'a Ctx,
    port: u16,
    tunnel: uuid::Uuid,
    head_request: bool,
    resendable: bool,
    request: &'a [u8],
    extra: &'a [(&'a str, &'a [u8])],
}

impl Ask<'_> {
    /// Sends the request on the kept stream (or a new one) and reads the
    /// answer's head into `answer`. A stream that closes before any answer
    /// (its connector drained) costs a resendable request nothing: it goes
    /// again on a stream opened then.
    async fn answer<'k>(
        &self,
        kept: &'k mut Option<Kept>,
        buf: &mut BytesMut,
        answer: &mut Vec<u8>,
    ) -> Result<(&'k mut BoxStream, relay::Head), FlowError> {
        let mut resends = 0;
        loop {
            if kept.as_ref().is_some_and(|k| k.tunnel != self.tunnel) {
                if let Some(mut k) = kept.take() {
                    let _ = k.stream.shutdown().await;
                }
            }
            if kept.is_none() {
                let stream =
                    crate::tunnel::reach::open_stream(self.ctx, self.port, self.tunnel).await?;
                *kept = Some(Kept {
                    tunnel: self.tunnel,
                    stream,
                });
            }
            let Some(k) = kept.as_mut() else {
                return Err(FlowError::io(Side::Local, "no tunnel stream"));
            };
            let asked = relay::ask(
                &mut k.stream,
                self.request,
                buf,
                self.head_request,
                true,
                answer,
                self.extra,
            )
            .await;
            match asked {
                // A draining connector did not pass it on: any request may
                // go again (lean requests have no body).
                Ok(_)
                    if burrow_proto::http1::not_forwarded(answer)
                        && resends < crate::http::policy::RESENDS =>
                {
                    debug!("the draining connector did not forward the request; sending it again");
                    resends += 1;
                    *kept = None;
                }
                Ok(head) => {
                    let Some(k) = kept.as_mut() else {
                        return Err(FlowError::io(Side::Local, "no tunnel stream"));
                    };
                    return Ok((&mut k.stream, head));
                }
                // A fresh stream too: the connector may start draining
                // right after accepting it.
                Err(AskError::Unanswered(reason))
                    if self.resendable && resends < crate::http::policy::RESENDS =>
                {
                    debug!(%reason, "kept-alive tunnel stream closed under the request; sending it again");
                    resends += 1;
                    *kept = None;
                }
                Err(AskError::Unanswered(reason) | AskError::Bad(reason)) => {
                    *kept = None;
                    return Err(FlowError::io(
                        Side::Tunnel,
                        format!("tunnel stream: {reason}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> (burrow_policy::routes::RouteTable<uuid::Uuid>, uuid::Uuid) {
        let t = uuid::Uuid::from_u128(7);
        (
            burrow_policy::routes::RouteTable::new([("app.example".to_owned(), t)]),
            t,
        )
    }

    fn client() -> Client {
        Client {
            peer_ip: "192.0.2.9".into(),
            https: false,
        }
    }

    fn run(req: &str) -> (Plan, String) {
        let (table, _) = routes();
        let mut out = Vec::new();
        let p = plan(req.as_bytes(), &table, &client(), &mut out);
        (p, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn a_routed_bodiless_get_is_forwarded_with_the_edge_headers() {
        let req = "GET /a HTTP/1.1\r\nHost: App.Example:80\r\nX-Forwarded-For: 10.0.0.1\r\n\
                   Burrow-Connecting-IP: 6.6.6.6\r\nConnection: x-drop\r\nX-Drop: 1\r\n\r\n";
        let (p, head) = run(req);
        let Plan::Forward {
            head_len,
            tunnel,
            hostname,
            head_request,
            resendable,
            close,
        } = p
        else {
            panic!("not forwarded: {head}");
        };
        assert_eq!(head_len, req.len());
        assert_eq!(tunnel, routes().1);
        assert_eq!(hostname, "app.example");
        assert!(!head_request && resendable && !close);
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("x-forwarded-for: 10.0.0.1, 192.0.2.9\r\n"),
            "{head}"
        );
        assert!(
            lower.contains("burrow-connecting-ip: 192.0.2.9\r\n"),
            "{head}"
        );
        assert!(
            !lower.contains("6.6.6.6") && !lower.contains("x-drop"),
            "{head}"
        );
        assert!(lower.contains("x-forwarded-proto: http\r\n"), "{head}");
    }

    #[test]
    fn what_the_lean_path_does_not_take_goes_to_hyper() {
        for req in [
            // A body.
            "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc",
            // No route.
            "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n",
            // Two Host headers.
            "GET / HTTP/1.1\r\nHost: app.example\r\nHost: app.example\r\n\r\n",
            // HTTP/1.0.
            "GET / HTTP/1.0\r\nHost: app.example\r\n\r\n",
            // An upgrade.
            "GET / HTTP/1.1\r\nHost: app.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(matches!(run(req).0, Plan::Hyper), "{req:?}");
        }
    }

    #[test]
    fn partial_heads_wait_and_only_safe_methods_are_resendable() {
        assert!(matches!(run("GET / HTTP/1.1\r\nHost: app").0, Plan::More));
        for (m, resend, head) in [
            ("HEAD", true, true),
            ("OPTIONS", true, false),
            ("DELETE", false, false),
        ] {
            let req = format!("{m} / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n");
            match run(&req).0 {
                Plan::Forward {
                    resendable,
                    head_request,
                    close,
                    ..
                } => {
                    assert_eq!(
                        (resendable, head_request, close),
                        (resend, head, true),
                        "{m}"
                    );
                }
                _ => panic!("{m} not forwarded"),
            }
        }
    }
}
