//! Access tokens (`originRequest.access`): with `required: true`, a request
//! reaches the origin only with a valid JWT in `Cf-Access-Jwt-Assertion`
//! (or `Burrow-Access-Jwt`): signed RS256 or ES256 by a key of the JWKS
//! (matched by `kid`), `aud` one of `audTag`, inside `exp`/`nbf`. Anything
//! else gets 403 before any origin byte.
//!
//! Keys come from a JWKS file (read when the rules load) or URL (fetched on
//! first use, kept 5 minutes, fetched again at most every 10 s when a token
//! names an unknown `kid`).
//!
//! A service token (`CF-Access-Client-Id` and `CF-Access-Client-Secret`,
//! as `burrow access` and Cloudflare's clients send them) passes when the
//! id is one of the rule's `serviceTokens` and the secret's SHA-256 equals
//! the configured one (compared in constant time). A request naming an id
//! is judged by the token alone.

use burrow_config::origin_request::{AccessCheck, ServiceToken};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
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

/// Headers of a service token.
const CLIENT_ID: &str = "cf-access-client-id";
const CLIENT_SECRET: &str = "cf-access-client-secret";

/// The token check of one rule.
pub(crate) struct AccessGuard {
    aud: Vec<String>,
    /// Where the JWT keys are; none when only service tokens are accepted.
    source: Option<Source>,
    tokens: Vec<ServiceToken>,
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
        let source = match check.jwks.as_deref() {
            Some(jwks) => Some(Self::source(jwks, at)?),
            None if check.service_tokens.is_empty() => {
                return Err(format!("{at}.jwks: no signing keys configured"))
            }
            None => None,
        };
        Ok(Self {
            aud: check.aud_tag.clone(),
            source,
            tokens: check.service_tokens.clone(),
        })
    }

    fn source(jwks: &str, at: &str) -> Result<Source, String> {
        Ok(
            if jwks.starts_with("http://") || jwks.starts_with("https://") {
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
            },
        )
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
            Some(Source::File(set)) => return Ok(set.clone()),
            Some(Source::Url(u)) => (&u.uri, &u.client, &u.cache),
            None => return Err("no access token accepted here but service tokens".into()),
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

    /// Checks a service token: `None` when the request names none.
    fn service_token(&self, headers: &HeaderMap) -> Option<Result<(), String>> {
        let id = headers.get(CLIENT_ID)?;
        let secret = headers.get(CLIENT_SECRET).map_or(&[][..], |v| v.as_bytes());
        let presented: [u8; 32] = sha2::Sha256::digest(secret).into();
        // Every configured token is compared, so the time taken does not
        // tell which ids exist.
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.tokens {
            let id_eq = t.client_id.as_bytes().ct_eq(id.as_bytes());
            ok |= id_eq & t.secret_sha256.ct_eq(&presented);
        }
        Some(if bool::from(ok) {
            Ok(())
        } else {
            Err("service token refused (CF-Access-Client-Id/Secret)".into())
        })
    }

    /// Checks the request's token; the reason when it is refused.
    pub(crate) async fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        if let Some(verdict) = self.service_token(headers) {
            return verdict;
        }
        if self.source.is_none() {
            return Err(
                "no service token (CF-Access-Client-Id and CF-Access-Client-Secret headers)".into(),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> AccessGuard {
        let check = AccessCheck {
            required: true,
            service_tokens: vec![ServiceToken {
                client_id: "id1.access".into(),
                secret_sha256: sha2::Sha256::digest(b"s3cret").into(),
            }],
            ..AccessCheck::default()
        };
        AccessGuard::new(&check, "originRequest.access").unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[tokio::test]
    async fn a_service_token_passes_only_with_its_own_secret() {
        let g = guard();
        let ok = headers(&[(CLIENT_ID, "id1.access"), (CLIENT_SECRET, "s3cret")]);
        assert_eq!(g.check(&ok).await, Ok(()));
        for bad in [
            headers(&[(CLIENT_ID, "id1.access"), (CLIENT_SECRET, "s3cre")]),
            headers(&[(CLIENT_ID, "id1.access")]),
            headers(&[(CLIENT_ID, "id2.access"), (CLIENT_SECRET, "s3cret")]),
            headers(&[(CLIENT_SECRET, "s3cret")]),
            headers(&[]),
        ] {
            assert!(g.check(&bad).await.is_err(), "{bad:?}");
        }
    }
}
