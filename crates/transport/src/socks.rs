//! The server side of a SOCKS5 handshake on any byte stream: the zero-trust
//! client's local proxy and the connector's `socks-proxy` rules both use it
//! (the codec itself is [`burrow_proto::socks5`]).

use burrow_proto::socks5::{self, Request};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most a greeting and request may take together before the peer is
/// refused (a request is at most 4 + 1 + 255 + 2 bytes).
const MAX_HANDSHAKE: usize = 600;

async fn read_until<S, T>(
    io: &mut S,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<T>, socks5::SocksError>,
) -> Result<T, String>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(v) = parse(buf).map_err(|e| e.to_string())? {
            return Ok(v);
        }
        if buf.len() > MAX_HANDSHAKE {
            return Err("SOCKS request too long".into());
        }
        let mut chunk = [0u8; 512];
        let n = io.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the SOCKS handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the greeting (answering "no authentication", or refusing a peer
/// that does not offer it) and the request, within `limit`. Returns the
/// request and any bytes the peer sent after it; the caller answers the
/// request with [`socks5::reply`].
///
/// # Errors
/// The reason, for the log.
pub async fn accept<S>(io: &mut S, limit: Duration) -> Result<(Request, Vec<u8>), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let mut buf = Vec::with_capacity(64);
        let (no_auth, used) = read_until(io, &mut buf, socks5::parse_greeting).await?;
        buf.drain(..used);
        if !no_auth {
            let _ = io.write_all(&[socks5::VERSION, socks5::NO_METHOD]).await;
            return Err("client offers no 'no authentication' method".to_owned());
        }
        io.write_all(&[socks5::VERSION, socks5::NO_AUTH])
            .await
            .map_err(|e| e.to_string())?;
        let (req, used) = read_until(io, &mut buf, socks5::parse_request).await?;
        buf.drain(..used);
        Ok((req, buf))
    };
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| "SOCKS handshake timed out".to_owned())?
}
