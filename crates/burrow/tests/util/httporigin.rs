//! A real HTTP/1.1 origin for the tests (hyper, on its own runtime thread):
//! - `GET /download?bytes=N`: N bytes of a fixed pattern, streamed in
//!   64 KiB chunks (chunked encoding);
//! - `POST /upload`: reads the body as it streams and answers
//!   `<sha256 hex> <length>` (with `?framing`, then `chunked` or
//!   `length=N`: how the body was delimited);
//! - `GET /ws` with `Upgrade: websocket`: answers 101, then echoes every
//!   byte of the upgraded connection;
//! - anything else: a text page naming the origin and echoing what the
//!   edge and connector set (host, X-Forwarded-For, X-Forwarded-Proto,
//!   Burrow-Connecting-IP, path).

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running origin (its thread lives until the test process ends).
pub struct HttpOrigin {
    pub addr: SocketAddr,
}

/// The download pattern: byte i is `i % 251`.
pub fn pattern_bytes(start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((start + i) % 251) as u8).collect()
}

fn full(s: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(s.into()).boxed()
}

async fn handle(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    if path == "/ws" && req.headers().contains_key("upgrade") {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = hyper_util::rt::TokioIo::new(up);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        return Ok(resp);
    }
    if path == "/upload" {
        // `?framing`: also say how the body was delimited.
        let framing = if req.uri().query() != Some("framing") {
            String::new()
        } else if req.headers().contains_key("transfer-encoding") {
            " chunked".into()
        } else {
            format!(" length={}", h("content-length"))
        };
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(d) = frame.data_ref() {
                hasher.update(d);
                len += d.len() as u64;
            }
        }
        return Ok(Response::new(full(format!(
            "{} {len}{framing}",
            hex::encode(hasher.finalize())
        ))));
    }
    if path == "/trailers" {
        // Two chunks, then trailers.
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("x-checksum", "abc123".parse().unwrap());
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first "))),
            Ok(Frame::data(Bytes::from_static(b"second"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut resp = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
        resp.headers_mut()
            .insert("trailer", "x-checksum".parse().unwrap());
        return Ok(resp);
    }
    if path == "/download" {
        let total: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("bytes="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let chunk = 64 * 1024u64;
        let stream = futures_util::stream::unfold(0u64, move |sent| async move {
            if sent >= total {
                return None;
            }
            let n = chunk.min(total - sent);
            let data = Bytes::from(pattern_bytes(sent, n as usize));
            Some((Ok::<_, Infallible>(Frame::data(data)), sent + n))
        });
        return Ok(Response::new(StreamBody::new(stream).boxed()));
    }
    let text = format!(
        "origin {name}\nmethod {}\npath {}\nhost {}\nxff {}\nproto {}\nip {}\n",
        req.method(),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        h("host"),
        h("x-forwarded-for"),
        h("x-forwarded-proto"),
        h("burrow-connecting-ip"),
    );
    Ok(Response::new(full(text)))
}

/// Serves one accepted connection of the origin.
fn serve<S>(name: &'static str, s: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| handle(name, req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
            .with_upgrades()
            .await;
    });
}

/// Runs the future `f` makes on a runtime of its own thread.
fn on_thread<F>(f: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    });
}

impl HttpOrigin {
    /// The same origin on a Unix socket at `path`.
    pub fn start_unix(name: &'static str, path: &std::path::Path) {
        let std_listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        on_thread(move || async move {
            let l = tokio::net::UnixListener::from_std(std_listener).unwrap();
            loop {
                if let Ok((s, _)) = l.accept().await {
                    serve(name, s);
                }
            }
        });
    }

    pub fn start(name: &'static str) -> HttpOrigin {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        on_thread(move || async move {
            let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                if let Ok((s, _)) = l.accept().await {
                    serve(name, s);
                }
            }
        });
        HttpOrigin { addr }
    }
}
