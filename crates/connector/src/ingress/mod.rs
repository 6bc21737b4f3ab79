//! HTTP clients toward origins, one per ingress rule, built from the rule's
//! `originRequest` when the rules are loaded (and again on every reload):
//! connection pool size and idle time, dial and TLS timeouts, TCP
//! keep-alive, TLS roots (`caPool` or the system's), `originServerName`,
//! `noTLSVerify`, and HTTP/2 toward the origin (`http2Origin`).

pub(crate) mod access;
pub(crate) mod pool;

use burrow_config::connector::{Ingress, Service};
use burrow_config::origin_request::OriginRequest;
use http::Uri;
use hyper::body::Incoming;
use hyper_rustls::{DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector whose whole dial (TCP, then TLS) must finish in time.
#[derive(Clone)]
pub(crate) struct Timed<C> {
    inner: C,
    limit: Duration,
}

impl<C> tower_service::Service<Uri> for Timed<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(format!(
                    "no connection within {limit:?} (connectTimeout + tlsTimeout)"
                )
                .into()),
            }
        })
    }
}

/// The client of one rule.
pub(crate) type Client = hyper_util::client::legacy::Client<
    Timed<HttpsConnector<HttpConnector<OriginResolver>>>,
    OriginBody,
>;

/// Resolves origin names; with `matchSNItoHost`, every name to the rule's
/// own origin address (the request's URI then carries the eyeball's Host,
/// so TLS names it, while the connection goes to the origin).
#[derive(Clone, Debug)]
pub(crate) struct OriginResolver {
    pinned: Option<String>,
}

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for OriginResolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let target = match &self.pinned {
            Some(addr) => addr.clone(),
            // The port is the URI's; HttpConnector sets it.
            None => format!("{}:0", name.as_str()),
        };
        Box::pin(async move {
            Ok(tokio::net::lookup_host(target)
                .await?
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

/// A request body toward an origin: streamed as it arrives, or (with
/// `disableChunkedEncoding`) read whole first so it can carry a length.
pub(crate) type OriginBody = http_body_util::Either<Incoming, http_body_util::Full<bytes::Bytes>>;

/// The ingress rules and what each needs to reach its origin, swapped
/// together on reload.
pub(crate) struct Routing {
    pub(crate) ingress: Ingress,
    /// `rules[i]` serves `ingress.rules[i]`.
    pub(crate) rules: Vec<RuleState>,
}

/// One rule's origin side.
pub(crate) struct RuleState {
    /// The HTTP client of an http:// or https:// rule.
    pub(crate) client: Option<Client>,
    /// The access-token check, when `access.required`.
    pub(crate) guard: Option<Arc<access::AccessGuard>>,
    /// TLS toward a `unix+tls:` socket.
    pub(crate) unix_tls: Option<tokio_rustls::TlsConnector>,
    /// Idle origin connections for the lean HTTP path.
    pub(crate) idle: pool::IdlePool,
}

/// A byte stream to an origin.
pub(crate) trait OriginIo:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> OriginIo for T {}

/// Dials rule `index`'s `unix:` / `unix+tls:` socket (TLS name: the rule's
/// `originServerName`, else `localhost`), within its connect + TLS
/// timeouts.
///
/// # Errors
/// A readable reason naming the socket.
pub(crate) async fn dial_unix(
    routing: &Routing,
    index: usize,
) -> Result<Box<dyn OriginIo>, String> {
    let rule = &routing.ingress.rules[index];
    let Service::Unix { path, tls } = &rule.service else {
        return Err("internal: not a unix rule".into());
    };
    let scheme = if *tls { "unix+tls" } else { "unix" };
    let o = &rule.origin;
    let sock = tokio::time::timeout(o.connect_timeout, tokio::net::UnixStream::connect(path))
        .await
        .map_err(|_| {
            format!(
                "origin {scheme}:{}: no answer within {:?}",
                path.display(),
                o.connect_timeout
            )
        })?
        .map_err(|e| format!("origin {scheme}:{}: {e}", path.display()))?;
    if !*tls {
        return Ok(Box::new(sock));
    }
    let Some(Some(connector)) = routing.rules.get(index).map(|r| &r.unix_tls) else {
        return Err("internal: no TLS settings for this rule".into());
    };
    let name = o
        .origin_server_name
        .clone()
        .unwrap_or_else(|| "localhost".into());
    let name = ServerName::try_from(name).map_err(|e| format!("originServerName: {e}"))?;
    let stream = tokio::time::timeout(o.tls_timeout, connector.connect(name, sock))
        .await
        .map_err(|_| {
            format!(
                "origin {scheme}:{}: TLS handshake took longer than {:?}",
                path.display(),
                o.tls_timeout
            )
        })?
        .map_err(|e| format!("origin {scheme}:{}: TLS: {e}", path.display()))?;
    Ok(Box::new(stream))
}

fn tls_config(o: &OriginRequest, at: &str) -> Result<rustls::ClientConfig, String> {
    let provider = burrow_transport::pki::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?;
    let mut cfg = if o.no_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(burrow_transport::pki::any_server_certificate(
                &provider,
            ))
            .with_no_client_auth()
    } else {
        let roots = match &o.ca_pool {
            Some(path) => {
                burrow_transport::pki::roots_from_pem_file(&format!("{at}.caPool"), path)?
            }
            None => burrow_transport::pki::system_roots(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = if o.http2_origin {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(cfg)
}

/// The client for one rule's origin settings.
///
/// # Errors
/// A message naming the setting (`ingress[2].originRequest.caPool ...`).
pub(crate) fn client(o: &OriginRequest, at: &str, origin: &str) -> Result<Client, String> {
    let mut http = HttpConnector::new_with_resolver(OriginResolver {
        pinned: o.match_sni_to_host.then(|| origin.to_owned()),
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(o.connect_timeout));
    http.set_keepalive(Some(o.tcp_keep_alive));
    http.set_nodelay(true);
    if o.no_happy_eyeballs {
        http.set_happy_eyeballs_timeout(None);
    }
    let resolver: Arc<dyn hyper_rustls::ResolveServerName + Send + Sync> =
        match &o.origin_server_name {
            Some(name) => Arc::new(FixedServerNameResolver::new(
                ServerName::try_from(name.clone())
                    .map_err(|e| format!("{at}.originServerName '{name}': {e}"))?,
            )),
            None => Arc::new(DefaultServerNameResolver::default()),
        };
    let https = HttpsConnector::new(http, tls_config(o, at)?, false, resolver);
    let timed = Timed {
        inner: https,
        limit: o.connect_timeout + o.tls_timeout,
    };
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(o.keep_alive_timeout)
            .pool_max_idle_per_host(o.keep_alive_connections)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(o.http2_origin)
            .build(timed),
    )
}

/// Builds the clients of every HTTP rule.
///
/// # Errors
/// The first rule whose settings cannot be used.
pub(crate) fn routing(ingress: Ingress) -> Result<Routing, String> {
    let rules = ingress
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule_state(i, r))
        .collect::<Result<_, _>>()?;
    Ok(Routing { ingress, rules })
}

/// What rule `i` needs to reach its origin.
fn rule_state(i: usize, r: &burrow_config::connector::IngressRule) -> Result<RuleState, String> {
    let at = format!("ingress[{i}].originRequest");
    let client = match &r.service {
        Service::Tcp { scheme, addr } if scheme == "http" || scheme == "https" => {
            Some(client(&r.origin, &at, addr)?)
        }
        _ => None,
    };
    let guard = match &r.origin.access {
        Some(a) if a.required => Some(Arc::new(access::AccessGuard::new(
            a,
            &format!("{at}.access"),
        )?)),
        _ => None,
    };
    let unix_tls = match &r.service {
        Service::Unix { tls: true, .. } => Some(tokio_rustls::TlsConnector::from(Arc::new(
            tls_config(&r.origin, &at)?,
        ))),
        _ => None,
    };
    Ok(RuleState {
        client,
        guard,
        unix_tls,
        idle: pool::IdlePool::new(&r.origin),
    })
}
