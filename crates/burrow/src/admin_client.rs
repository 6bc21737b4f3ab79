//! A small HTTP/1.1 client for the admin API (plain HTTP; the admin API
//! listens on loopback).

use crate::cli::AdminConn;
use crate::config_err;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// Largest admin response read, in bytes.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

pub(crate) struct AdminClient {
    authority: String,
    token: String,
}

impl AdminClient {
    pub(crate) async fn new(c: &AdminConn) -> anyhow::Result<Self> {
        let uri: http::Uri = c
            .admin_url
            .parse()
            .map_err(|_| config_err(format!("--admin-url: '{}' is not a URL", c.admin_url)))?;
        if uri.scheme_str() != Some("http") {
            return Err(config_err(
                "--admin-url: must start with http:// (the admin API is plain HTTP on loopback)",
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| config_err("--admin-url: needs host:port"))?
            .to_string();
        let token = match (&c.admin_token, &c.admin_token_file) {
            (Some(t), _) => {
                if std::env::var("BURROW_ADMIN_TOKEN").ok().as_deref() != Some(t.as_str()) {
                    eprintln!(
                        "warning: --admin-token on the command line is visible to every user of this host (ps, /proc); \
                         prefer --admin-token-file FILE or BURROW_ADMIN_TOKEN_FILE"
                    );
                }
                t.trim().to_owned()
            }
            (None, Some(f)) => tokio::fs::read_to_string(f)
                .await
                .map_err(|e| config_err(format!("--admin-token-file {}: {e}", f.display())))?
                .trim()
                .to_owned(),
            (None, None) => return Err(config_err(
                "no admin token: pass --admin-token-file EDGE_DIR/admin.token (the edge printed \
                     the path at start) or --admin-token, or set BURROW_ADMIN_TOKEN_FILE",
            )),
        };
        Ok(Self { authority, token })
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub(crate) async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(http::StatusCode, Value)> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.authority))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let payload = match &body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(payload))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the admin response: {e}"))?
            .to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, v))
    }

    /// [`ok`](Self::ok) with a typed body and answer (the admin API's
    /// shared types, `burrow_config::api`): an answer of another shape is
    /// an error naming the field, never a blank column.
    pub(crate) async fn typed<B, T>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T>
    where
        B: serde::Serialize,
        T: serde::de::DeserializeOwned,
    {
        let body = body.map(serde_json::to_value).transpose()?;
        let v = self.ok(method, path, body).await?;
        serde_json::from_value(v).map_err(|e| {
            anyhow::anyhow!("the admin API answered {path} in an unexpected shape: {e}")
        })
    }

    /// `GET path`, typed.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        self.typed(http::Method::GET, path, None::<&()>).await
    }

    /// `GET path`, a list printed as the API's JSON (`--json`) or as a
    /// table: `header` (skipped when empty) and one `row` per item, or the
    /// `empty` hint when there is none.
    pub(crate) async fn list<T>(
        &self,
        path: &str,
        json: bool,
        (header, empty): (&str, &str),
        row: impl Fn(&T) -> String,
    ) -> anyhow::Result<()>
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let list: Vec<T> = self.get(path).await?;
        if json {
            return print_json(&list);
        }
        if list.is_empty() {
            println!("{empty}");
            return Ok(());
        }
        if !header.is_empty() {
            println!("{header}");
        }
        for item in &list {
            println!("{}", row(item));
        }
        Ok(())
    }

    /// A bodiless change (`DELETE`, `POST .../revoke`); prints `done` when
    /// it was taken.
    pub(crate) async fn act(
        &self,
        method: http::Method,
        path: &str,
        done: &str,
    ) -> anyhow::Result<()> {
        self.ok(method, path, None).await?;
        println!("{done}");
        Ok(())
    }

    /// Like [`call`](Self::call), but a non-2xx answer becomes an error
    /// carrying the API's message and field.
    pub(crate) async fn ok(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        if status.is_success() {
            return Ok(v);
        }
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        match v.get("field").and_then(Value::as_str) {
            Some(f) => anyhow::bail!("{f}: {msg} (HTTP {status})"),
            None => anyhow::bail!("{msg} (HTTP {status})"),
        }
    }
}

/// Checks a name or id given on the command line before it goes into an
/// API path.
pub(crate) fn path_segment(field: &str, s: &str) -> anyhow::Result<String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(config_err(format!(
            "{field}: '{s}' is not a valid name or id (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(s.to_owned())
}

/// Prints an API answer as indented JSON.
/// Set by `--output yaml` (cloudflared's spelling): what `--json` prints
/// is YAML instead.
static YAML: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`print_json`] print YAML.
pub(crate) fn output_yaml() {
    YAML.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    if YAML.load(std::sync::atomic::Ordering::Relaxed) {
        print!("{}", serde_yaml_ng::to_string(v)?);
        return Ok(());
    }
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
