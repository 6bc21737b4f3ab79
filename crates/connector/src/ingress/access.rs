//! Access tokens (`originRequest.access`): with `required: true`, a request
//! reaches the origin only with a valid JWT in `Cf-Access-Jwt-Assertion`
//! (or `Burrow-Access-Jwt`): signed RS256 or ES256 by a key of the JWKS
//! (matched by `kid`), `aud` one of `audTag`, inside `exp`/`nbf`. Anything
//! else gets 403 before any origin byte.
//!
//! Keys come from a JWKS file (read when the rules load) or URL (fetched on
//! first use, kept 5 minutes, fetched again at most every 10 s when a token
//! names an unknown `kid`).

use burrow_config::origin_request::AccessCheck;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Headers a token may come in.
const HEADERS: [&str; 2] = ["cf-access-jwt-assertion", "burrow-access-jwt"];
/// How long fetched keys are used.
const KEYS_TTL: Duration = Duration::from_secs(300);
/// Shortest time between two fetches.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_JWKS: usize = 1 << 20;

type FetchClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

enum Source {
    File(Arc<JwkSet>),
    Url(Box<UrlSource>),
}

struct UrlSource {
    uri: http::Uri,
    client: FetchClient,
    cache: Mutex<Option<(Instant, Arc<JwkSet>)>>,
}

/// The token check of one rule.
pub(crate) struct AccessGuard {
    aud: Vec<String>,
    source: Source,
}

fn fetch_client() -> Result<FetchClient, String> {
    let provider = burrow_transport::pki::provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(burrow_transport::pki::system_roots())
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

impl AccessGuard {
    /// Prepares the check (reads a JWKS file now).
    ///
    /// # Errors
    /// A message naming the setting.
    pub(crate) fn new(check: &AccessCheck, at: &str) -> Result<Self, String> {
        let jwks = check
            .jwks
            .as_deref()
            .ok_or_else(|| format!("{at}.jwks: no signing keys configured"))?;
        let source = if jwks.starts_with("http://") || jwks.starts_with("https://") {
            Source::Url(Box::new(UrlSource {
                uri: jwks
                    .parse()
                    .map_err(|e| format!("{at}.jwks '{jwks}': {e}"))?,
                client: fetch_client()?,
                cache: Mutex::new(None),
            }))
        } else {
            let text =
                std::fs::read_to_string(jwks).map_err(|e| format!("{at}.jwks {jwks}: {e}"))?;
            let set: JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("{at}.jwks {jwks}: {e}"))?;
            Source::File(Arc::new(set))
        };
        Ok(Self {
            aud: check.aud_tag.clone(),
            source,
        })
    }

    async fn fetch(uri: &http::Uri, client: &FetchClient) -> Result<JwkSet, String> {
        let resp = tokio::time::timeout(Duration::from_secs(15), client.get(uri.clone()))
            .await
            .map_err(|_| format!("JWKS {uri}: no answer within 15 s"))?
            .map_err(|e| format!("JWKS {uri}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("JWKS {uri}: HTTP {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS)
            .collect()
            .await
            .map_err(|e| format!("JWKS {uri}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("JWKS {uri}: {e}"))
    }

    /// The keys, fetching when stale (or when `kid` is unknown and the last
    /// fetch is old enough).
    async fn keys(&self, kid: Option<&str>) -> Result<Arc<JwkSet>, String> {
        let (uri, client, cache) = match &self.source {
            Source::File(set) => return Ok(set.clone()),
            Source::Url(u) => (&u.uri, &u.client, &u.cache),
        };
        let mut cache = cache.lock().await;
        if let Some((at, set)) = cache.as_ref() {
            let known = kid.is_none_or(|k| set.find(k).is_some());
            if at.elapsed() < KEYS_TTL && (known || at.elapsed() < REFETCH_AFTER) {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(Self::fetch(uri, client).await?);
        *cache = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// Checks the request's token; the reason when it is refused.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let token = HEADERS
            .iter()
            .find_map(|h| headers.get(*h))
            .ok_or("no access token (Cf-Access-Jwt-Assertion header)")?
            .to_str()
            .map_err(|_| "access token is not text")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad token: {e}"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(format!(
                "token algorithm {:?} is not RS256 or ES256",
                header.alg
            ));
        }
        let keys = self.keys(header.kid.as_deref()).await?;
        let candidates: Vec<_> = match header.kid.as_deref() {
            Some(kid) => keys.find(kid).into_iter().collect(),
            None => keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err("no key of the JWKS matches the token's kid".into());
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&self.aud);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let mut last = String::from("no usable key");
        for jwk in candidates {
            let key = match DecodingKey::from_jwk(jwk) {
                Ok(k) => k,
                Err(e) => {
                    last = format!("JWKS key unusable: {e}");
                    continue;
                }
            };
            match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("token refused: {e}"),
            }
        }
        Err(last)
    }
}
