//! The client's HTTP CONNECT proxy request (RFC 9110 9.3.6): only
//! `CONNECT host:port HTTP/1.x`, headers ignored, head at most
//! [`MAX_HEAD`] bytes. Pure; `Ok(None)` means "need more bytes".

/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Why a request head is refused (the proxy answers `400`, or `405` for
/// another method).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Not a CONNECT request.
    #[error("only CONNECT is supported, got {0}")]
    Method(String),
    /// The request line or target is malformed.
    #[error("malformed CONNECT request: {0}")]
    Malformed(&'static str),
    /// The head is longer than [`MAX_HEAD`].
    #[error("request head longer than {MAX_HEAD} bytes")]
    TooLong,
}

/// Parses a request head: `Ok(Some((host, port, consumed)))`.
///
/// # Errors
/// [`ConnectError`] naming what is wrong.
pub fn parse(buf: &[u8]) -> Result<Option<(String, u16, usize)>, ConnectError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(ConnectError::TooLong)
        } else {
            Ok(None)
        };
    };
    if end + 4 > MAX_HEAD {
        return Err(ConnectError::TooLong);
    }
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| ConnectError::Malformed("not UTF-8"))?;
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ConnectError::Malformed(
            "request line is not 'CONNECT host:port HTTP/1.1'",
        ));
    };
    if method != "CONNECT" {
        return Err(ConnectError::Method(method.chars().take(16).collect()));
    }
    if !version.starts_with("HTTP/1.") {
        return Err(ConnectError::Malformed("not HTTP/1.x"));
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or(ConnectError::Malformed("target has no port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or(ConnectError::Malformed("bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.len() > 253 {
        return Err(ConnectError::Malformed("bad host"));
    }
    Ok(Some((host.to_ascii_lowercase(), port, end + 4)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_requests_parse() {
        let r = b"CONNECT Example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nrest";
        assert_eq!(parse(r), Ok(Some(("example.com".into(), 443, r.len() - 4))));
        assert_eq!(
            parse(b"CONNECT [::1]:80 HTTP/1.0\r\n\r\n")
                .unwrap()
                .unwrap()
                .0,
            "::1"
        );
        assert_eq!(parse(b"CONNECT a:1 HTTP/1.1\r\n"), Ok(None));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ConnectError::Method("GET".into()))
        );
        assert!(parse(b"CONNECT host HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"CONNECT host:0 HTTP/1.1\r\n\r\n").is_err());
        assert_eq!(parse(&vec![b'a'; MAX_HEAD + 1]), Err(ConnectError::TooLong));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(Some((_, _, n))) = parse(&data) {
                prop_assert!(n <= data.len());
            }
        }
    }
}
