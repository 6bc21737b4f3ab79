//! The lean path for the commonest HTTP request: one without a body, for a
//! plain `http://` origin. Its head is parsed in place (`httparse`), matched
//! against the ingress rules, rewritten for the origin and written to a
//! pooled origin connection; the answer's head is rewritten the same way
//! and its body passed on as it arrives, delimited by the framing rules of
//! [`burrow_proto::http1`]. No header map, no task per origin connection,
//! no re-encoding.
//!
//! Everything else (a request body, an upgrade, an access check, a
//! built-in or non-`http://` service, `http2Origin`, or anything unusual)
//! is handed to hyper ([`crate::http::serve`]) with the bytes read so far,
//! and hyper serves the stream from then on.

use crate::env::FlowEnv;
use crate::ingress::Routing;
use crate::ConnInfo;
use burrow_config::connector::Service;
use burrow_config::origin_request::OriginRequest;
use burrow_proto::http1::{self, Bodiless, MAX_HEADERS};
use burrow_proto::StreamOpen;
use burrow_transport::http1_relay::{self as relay, AskError, MAX_HEAD};
use burrow_transport::replay::Replay;
use burrow_transport::BoxStream;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

/// What [`serve`] did with a stream.
pub(crate) enum Outcome {
    /// The stream is done (the edge closed it, or it broke, or drained).
    Closed,
    /// A request this path does not take: hyper serves the stream from its
    /// first unread byte.
    Hyper(Replay<BoxStream>),
}

/// What to do with the bytes read so far of a request.
enum Plan {
    /// Not a whole head yet.
    More,
    /// Not for this path.
    Hyper,
    /// Send `head` to rule `rule`'s origin.
    Forward {
        head_len: usize,
        rule: usize,
        head_request: bool,
        idempotent: bool,
    },
}

/// Reads a request head from `buf` and decides; for [`Plan::Forward`] the
/// rewritten head is in `out`.
fn plan(buf: &[u8], routing: &Routing, open: &StreamOpen, out: &mut Vec<u8>) -> Plan {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match http1::parse_bodiless(buf, &mut req, MAX_HEAD) {
        Bodiless::Head(n) => n,
        Bodiless::Partial => return Plan::More,
        // A body, an upgrade, too long or malformed: hyper takes it (and
        // answers 400 or 431 where that is the answer).
        Bodiless::Other => return Plan::Hyper,
    };
    let (method, target) = (req.method.unwrap_or("GET"), req.path.unwrap_or("/"));
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    // A kept-alive stream carries requests for any hostname of the tunnel:
    // each one is matched by its own Host.
    let host = http1::header(req.headers, "host")
        .next()
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(|h| burrow_policy::routes::strip_port(h).to_ascii_lowercase());
    let host = host.as_deref().unwrap_or(&open.hostname);
    let Some((rule, r)) = routing.ingress.find(host, Some(path)) else {
        return Plan::Hyper;
    };
    let plain_http = matches!(&r.service, Service::Tcp { scheme, .. } if scheme == "http");
    let guarded = routing.rules.get(rule).is_some_and(|r| r.guard.is_some());
    if !plain_http || guarded || r.origin.http2_origin {
        return Plan::Hyper;
    }
    out.clear();
    match r.origin.http_host_header.as_deref() {
        Some(host) => http1::write_request_head(out, &req, &[("host", host.as_bytes())]),
        None => http1::write_request_head(out, &req, &[]),
    }
    Plan::Forward {
        head_len,
        rule,
        head_request: method == "HEAD",
        idempotent: http1::resendable(method),
    }
}

/// Serves the requests on an HTTP flow stream while they are for this
/// path; `buf` holds bytes already read from `tunnel`.
pub(crate) async fn serve(
    env: &FlowEnv,
    conn: &ConnInfo,
    open: &StreamOpen,
    mut buf: BytesMut,
    mut tunnel: BoxStream,
) -> Outcome {
    let mut request = Vec::with_capacity(1024);
    let mut answer = Vec::with_capacity(1024);
    let mut from_origin = BytesMut::new();
    let drained = conn.draining.cancelled();
    tokio::pin!(drained);
    loop {
        let routing = env.routing.load_full();
        let (head_len, rule, head_request, idempotent) =
            match plan(&buf, &routing, open, &mut request) {
                Plan::Forward {
                    head_len,
                    rule,
                    head_request,
                    idempotent,
                } => (head_len, rule, head_request, idempotent),
                Plan::Hyper => return Outcome::Hyper(Replay::new(buf.freeze(), tunnel)),
                Plan::More => {
                    buf.reserve(4096);
                    let read = if buf.is_empty() && conn.draining.is_cancelled() {
                        // Between requests on a draining connection: wait a
                        // moment for a request already on its way (it is
                        // answered "not forwarded"), then close.
                        tokio::time::timeout(super::DRAIN_LINGER, tunnel.read_buf(&mut buf))
                            .await
                            .unwrap_or(Ok(0))
                    } else if buf.is_empty() {
                        tokio::select! {
                            r = tunnel.read_buf(&mut buf) => r,
                            () = &mut drained => continue,
                        }
                    } else {
                        tunnel.read_buf(&mut buf).await
                    };
                    if !matches!(read, Ok(n) if n > 0) {
                        let _ = tunnel.shutdown().await;
                        return Outcome::Closed;
                    }
                    continue;
                }
            };
        buf.advance(head_len);
        if conn.draining.is_cancelled() {
            // Not passed to the origin: the edge may send it elsewhere.
            let _ = tunnel.write_all(super::NOT_FORWARDED_RESPONSE).await;
            let _ = tunnel.shutdown().await;
            return Outcome::Closed;
        }
        let m = &env.metrics;
        m.request_started(conn.connection_id);
        let exchange = Exchange {
            routing: &routing,
            rule,
            head_request,
            idempotent,
        };
        let result = exchange
            .run(&request, &mut answer, &mut from_origin, &mut tunnel)
            .await;
        m.request_ended(conn.connection_id);
        let status = match result {
            Ok(status) => status,
            Err(Failure::Origin(reason)) => {
                m.request_errors.inc();
                let r = &routing.ingress.rules[rule];
                let addr = match &r.service {
                    Service::Tcp { addr, .. } => addr.as_str(),
                    _ => "",
                };
                answer.clear();
                let body =
                    crate::reply::bad_gateway(Some(rule), &format!("origin {addr}: {reason}"));
                bad_gateway(&mut answer, &body);
                if tunnel.write_all(&answer).await.is_err() {
                    return Outcome::Closed;
                }
                502
            }
            Err(Failure::Broken(reason)) => {
                debug!(%reason, "HTTP stream ended during an answer");
                let _ = tunnel.shutdown().await;
                return Outcome::Closed;
            }
        };
        m.response_by_code
            .get_or_create(&crate::metrics::CodeLabels {
                status_code: status,
            })
            .inc();
    }
}

/// Why a request got no (whole) answer.
enum Failure {
    /// Nothing was sent back yet: the edge gets a 502.
    Origin(String),
    /// The answer was cut short, or the tunnel stream failed: it closes.
    Broken(String),
}

/// One request to rule `rule`'s origin.
struct Exchange<'a> {
    routing: &'a Routing,
    rule: usize,
    head_request: bool,
    idempotent: bool,
}

impl Exchange<'_> {
    async fn run(
        &self,
        request: &[u8],
        answer: &mut Vec<u8>,
        buf: &mut BytesMut,
        tunnel: &mut BoxStream,
    ) -> Result<u16, Failure> {
        let r = &self.routing.ingress.rules[self.rule];
        let Service::Tcp { addr, .. } = &r.service else {
            return Err(Failure::Origin("internal: not an http:// rule".into()));
        };
        let pool = &self.routing.rules[self.rule].idle;
        if let Some(mut kept) = pool.take() {
            match self.ask(&mut kept, request, answer, buf).await {
                Ok(head) => return self.pass(kept, head, answer, buf, tunnel).await,
                // A kept connection the origin closed meanwhile: a request
                // that may be repeated goes again on a fresh one.
                Err(AskError::Unanswered(reason)) if self.idempotent => {
                    debug!(%reason, "kept origin connection failed; dialing again");
                }
                Err(AskError::Unanswered(reason) | AskError::Bad(reason)) => {
                    return Err(Failure::Origin(reason))
                }
            }
        }
        let mut fresh = dial(addr, &r.origin).await.map_err(Failure::Origin)?;
        match self.ask(&mut fresh, request, answer, buf).await {
            Ok(head) => self.pass(fresh, head, answer, buf, tunnel).await,
            Err(AskError::Unanswered(reason) | AskError::Bad(reason)) => {
                Err(Failure::Origin(reason))
            }
        }
    }

    /// Sends the request and reads the answer's head (skipping `1xx`
    /// interim answers); `answer` gets the rewritten head.
    async fn ask(
        &self,
        origin: &mut TcpStream,
        request: &[u8],
        answer: &mut Vec<u8>,
        buf: &mut BytesMut,
    ) -> Result<relay::Head, AskError> {
        relay::ask(origin, request, buf, self.head_request, false, answer, &[]).await
    }

    /// Passes the answer's body on, then keeps the origin connection when
    /// it can carry another request.
    async fn pass(
        &self,
        mut origin: TcpStream,
        head: relay::Head,
        answer: &mut Vec<u8>,
        buf: &mut BytesMut,
        tunnel: &mut BoxStream,
    ) -> Result<u16, Failure> {
        buf.advance(head.len);
        let clean = relay::pass_body(head.framing, &mut origin, answer, buf, tunnel)
            .await
            .map_err(Failure::Broken)?;
        if head.keep_alive && clean {
            self.routing.rules[self.rule].idle.put(origin);
        }
        Ok(head.status)
    }
}

/// Dials an origin within `connectTimeout`, with `tcpKeepAlive`.
async fn dial(addr: &str, o: &OriginRequest) -> Result<TcpStream, String> {
    let conn = tokio::time::timeout(o.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            format!(
                "no connection within {:?} (connectTimeout)",
                o.connect_timeout
            )
        })?
        .map_err(|e| format!("tcp connect error: {e}"))?;
    let _ = conn.set_nodelay(true);
    let _ = socket2::SockRef::from(&conn)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(o.tcp_keep_alive));
    Ok(conn)
}

/// A `502` answer with a one-line reason.
fn bad_gateway(out: &mut Vec<u8>, msg: &str) {
    http1::write_answer(
        out,
        502,
        "Bad Gateway",
        "text/plain; charset=utf-8",
        format!("{msg}\n").as_bytes(),
        &[],
    );
}
