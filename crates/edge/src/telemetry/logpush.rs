//! Logpush: network session log records sent in batches to an HTTP(S)
//! endpoint (`--logpush-url`), as newline-delimited JSON in a `POST`
//! (`Content-Type: application/x-ndjson`).
//!
//! Records wait in a bounded queue ([`QUEUE`]); a batch goes out when it
//! holds [`BATCH_MAX`] records or its oldest record is [`BATCH_WAIT`] old.
//! A batch that fails (connection error, timeout, `5xx`, `408`, `429`) is
//! retried [`ATTEMPTS`] times with growing pauses; other answers are final.
//! Records are never dropped silently: a full queue, a batch that is given
//! up on and records left at shutdown are counted in
//! `burrow_edge_logpush_dropped_total` and logged. A clean shutdown sends
//! everything queued (within [`SHUTDOWN_LIMIT`]).

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Records waiting to be sent; more are dropped and counted.
pub(crate) const QUEUE: usize = 16_384;
/// Most records in one request.
pub(crate) const BATCH_MAX: usize = 1_000;
/// Longest a record waits for its batch to fill.
pub(crate) const BATCH_WAIT: Duration = Duration::from_secs(1);
/// Tries per batch.
pub(crate) const ATTEMPTS: u32 = 5;
/// Limit of one request (connect, TLS, send, answer).
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// How long shutdown waits for queued records to go out.
pub(crate) const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Where to send, checked when the edge starts.
#[derive(Debug, Clone)]
pub struct LogpushTarget {
    uri: Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl LogpushTarget {
    /// Parses `--logpush-url` (`http://` or `https://`); `ca` replaces the
    /// system roots for `https://` (TLS is always verified).
    ///
    /// # Errors
    /// A message naming the flag and what is wrong.
    pub fn new(url: &str, ca: Option<&std::path::Path>) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("--logpush-url '{url}': {e}"))?;
        if uri.host().is_none() {
            return Err(format!("--logpush-url '{url}': needs a host"));
        }
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => {
                let roots = match ca {
                    Some(p) => burrow_transport::pki::roots_from_pem_file("--logpush-ca", p)?,
                    None => burrow_transport::pki::system_roots(),
                };
                let cfg =
                    rustls::ClientConfig::builder_with_provider(burrow_transport::pki::provider())
                        .with_safe_default_protocol_versions()
                        .map_err(|e| e.to_string())?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                Some(Arc::new(cfg))
            }
            _ => {
                return Err(format!(
                    "--logpush-url '{url}': must start with http:// or https://"
                ))
            }
        };
        Ok(Self { uri, tls })
    }

    /// The URL without any query (for logs: a query may carry a token).
    fn shown(&self) -> String {
        format!(
            "{}://{}{}",
            self.uri.scheme_str().unwrap_or("http"),
            self.uri.authority().map_or("", |a| a.as_str()),
            self.uri.path()
        )
    }
}

/// Counters the sender moves.
#[derive(Clone, Default)]
pub(crate) struct LogpushStats {
    pub(crate) sent: Counter,
    pub(crate) dropped: Counter,
    pub(crate) failed_requests: Counter,
}

/// The sender's handle.
pub(crate) struct Logpush {
    tx: std::sync::Mutex<Option<mpsc::Sender<String>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stats: LogpushStats,
    queued: Arc<std::sync::atomic::AtomicU64>,
}

impl Logpush {
    pub(crate) fn start(target: LogpushTarget, stats: LogpushStats) -> Self {
        let (tx, rx) = mpsc::channel::<String>(QUEUE);
        let queued = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(run(target, rx, stats.clone(), queued.clone()));
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            task: std::sync::Mutex::new(Some(task)),
            stats,
            queued,
        }
    }

    /// Queues a record; a full queue drops it and counts it.
    pub(crate) fn push(&self, line: &str) {
        let tx = self.tx.lock().expect("logpush lock poisoned").clone();
        let Some(tx) = tx else { return };
        if tx.try_send(line.to_owned()).is_ok() {
            self.queued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.stats.dropped.inc();
            debug!("logpush queue full; record dropped and counted");
        }
    }

    /// Sends what is queued, then stops; what could not go out in time is
    /// counted as dropped.
    pub(crate) async fn flush_and_stop(&self) {
        self.tx.lock().expect("logpush lock poisoned").take();
        let task = self.task.lock().expect("logpush lock poisoned").take();
        let Some(mut t) = task else { return };
        if tokio::time::timeout(SHUTDOWN_LIMIT, &mut t).await.is_err() {
            t.abort();
            let left = self.queued.load(std::sync::atomic::Ordering::Relaxed);
            self.stats.dropped.inc_by(left);
            warn!(
                records = left,
                "logpush: records not delivered by shutdown; counted as dropped"
            );
        }
    }
}

async fn run(
    target: LogpushTarget,
    mut rx: mpsc::Receiver<String>,
    stats: LogpushStats,
    queued: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch: Vec<String> = Vec::new();
    let mut due = tokio::time::Instant::now();
    loop {
        let closed = tokio::select! {
            line = rx.recv() => match line {
                Some(l) => {
                    if batch.is_empty() {
                        due = tokio::time::Instant::now() + BATCH_WAIT;
                    }
                    batch.push(l);
                    if batch.len() < BATCH_MAX {
                        continue;
                    }
                    false
                }
                None => true,
            },
            () = tokio::time::sleep_until(due), if !batch.is_empty() => false,
        };
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let body = batch.join("\n") + "\n";
            batch.clear();
            if deliver(&target, Bytes::from(body), &stats).await {
                stats.sent.inc_by(n);
            } else {
                stats.dropped.inc_by(n);
                warn!(records = n, url = %target.shown(), "logpush: batch given up after {ATTEMPTS} tries; records counted as dropped");
            }
            queued.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        }
        if closed {
            return;
        }
    }
}

/// Sends one batch with retries; whether it was accepted.
async fn deliver(target: &LogpushTarget, body: Bytes, stats: &LogpushStats) -> bool {
    let mut pause = Duration::from_millis(250);
    for attempt in 1..=ATTEMPTS {
        let outcome = tokio::time::timeout(REQUEST_LIMIT, post(target, body.clone())).await;
        let (retry, why) = match outcome {
            Ok(Ok(s)) if s.is_success() => return true,
            Ok(Ok(s)) => (
                s.is_server_error()
                    || s == StatusCode::REQUEST_TIMEOUT
                    || s == StatusCode::TOO_MANY_REQUESTS,
                format!("answered {s}"),
            ),
            Ok(Err(e)) => (true, e),
            Err(_) => (true, format!("no answer within {REQUEST_LIMIT:?}")),
        };
        stats.failed_requests.inc();
        warn!(url = %target.shown(), attempt, reason = %why, "logpush request failed");
        if !retry || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    false
}

/// One `POST` on a fresh connection; the answer's status.
async fn post(target: &LogpushTarget, body: Bytes) -> Result<StatusCode, String> {
    let uri = &target.uri;
    let host = uri.host().unwrap_or_default();
    let port = uri
        .port_u16()
        .unwrap_or(if target.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(|c| c == '[' || c == ']'), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::post(path)
        .header(
            http::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .header(
            http::header::USER_AGENT,
            concat!("burrow-edge/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    match &target.tls {
        None => send(TokioIo::new(tcp), req).await,
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_matches(|c| c == '[' || c == ']').to_owned(),
            )
            .map_err(|e| format!("server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(TokioIo::new(tls), req).await
        }
    }
}

async fn send<I>(io: I, req: Request<Full<Bytes>>) -> Result<StatusCode, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_tried_five_times_then_the_batch_is_dropped() {
        let url = format!("http://127.0.0.1:{}/logs", closed_port());
        let stats = LogpushStats::default();
        let lp = Logpush::start(LogpushTarget::new(&url, None).unwrap(), stats.clone());
        lp.push("{\"a\":1}");
        lp.push("{\"a\":2}");
        lp.flush_and_stop().await;
        assert_eq!(stats.failed_requests.get(), u64::from(ATTEMPTS));
        assert_eq!(stats.dropped.get(), 2);
        assert_eq!(stats.sent.get(), 0);
    }

    #[tokio::test]
    async fn a_refusal_that_retrying_cannot_fix_is_not_retried() {
        // An endpoint that answers every request 400.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/logs", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let stats = LogpushStats::default();
        let lp = Logpush::start(LogpushTarget::new(&url, None).unwrap(), stats.clone());
        lp.push("{\"a\":1}");
        lp.flush_and_stop().await;
        assert_eq!(stats.failed_requests.get(), 1);
        assert_eq!(stats.dropped.get(), 1);
    }

    #[test]
    fn targets_are_checked() {
        assert!(LogpushTarget::new("http://127.0.0.1:9/logs?token=x", None).is_ok());
        let t = LogpushTarget::new("http://127.0.0.1:9/logs?token=secret", None).unwrap();
        assert_eq!(t.shown(), "http://127.0.0.1:9/logs");
        assert!(LogpushTarget::new("ftp://x/", None)
            .unwrap_err()
            .contains("http:// or https://"));
        assert!(LogpushTarget::new("not a url", None)
            .unwrap_err()
            .contains("--logpush-url"));
        assert!(LogpushTarget::new("/just/a/path", None).is_err());
    }
}
