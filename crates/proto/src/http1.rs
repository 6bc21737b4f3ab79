//! HTTP/1.1 framing for a relay that passes messages on without decoding
//! them into header maps (RFC 9112): where a message's body ends
//! ([`request_framing`], [`response_framing`], [`Chunked`]) and the head a
//! proxy hop writes on ([`write_request_head`], [`write_response_head`]).
//!
//! Heads are parsed with `httparse`; everything here is pure. The
//! connector's lean request path uses it for requests without a body;
//! anything it does not handle (bodies, upgrades, malformed or unusual
//! messages) goes to hyper instead.

use std::fmt::Write as _;

/// Most header lines in a head this module handles; more is left to hyper
/// (which answers 431).
pub const MAX_HEADERS: usize = 128;

/// Longest chunk-size line (size and extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of trailer fields accepted after the last chunk.
pub const MAX_TRAILERS: usize = 64 * 1024;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding: ends with the last chunk and trailers.
    Chunked,
    /// A response read until the origin closes the connection.
    UntilClose,
}

/// Why a message's body length cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A `Content-Length` that is not a decimal number.
    #[error("Content-Length {0:?} is not a number")]
    BadLength(String),
    /// `Content-Length` given twice with different values.
    #[error("Content-Length is given more than once with different values")]
    ConflictingLength,
    /// A request whose transfer codings do not end in `chunked`.
    #[error("Transfer-Encoding {0:?} does not end in chunked")]
    NotChunked(String),
    /// A request with both `Transfer-Encoding` and `Content-Length`.
    #[error("a request has both Transfer-Encoding and Content-Length")]
    LengthAndEncoding,
}

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk size that is not hexadecimal, or too large.
    #[error("bad chunk size")]
    BadSize,
    /// A chunk-size line over [`MAX_CHUNK_LINE`] bytes.
    #[error("chunk-size line longer than {MAX_CHUNK_LINE} bytes")]
    LineTooLong,
    /// A line not ended by CRLF, or chunk data not followed by CRLF.
    #[error("chunk not ended by CRLF")]
    MissingCrlf,
    /// Trailer fields over [`MAX_TRAILERS`] bytes.
    #[error("trailers longer than {MAX_TRAILERS} bytes")]
    TrailersTooLong,
}

/// The values of every `name` header (names compare case-blind).
pub fn header<'h, 'b: 'h>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The comma-separated tokens of every `name` header, trimmed.
pub fn tokens<'h, 'b: 'h>(
    headers: &'h [httparse::Header<'b>],
    name: &'h str,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    header(headers, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, FramingError> {
    let mut found = None;
    for t in tokens(headers, "content-length") {
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadLength(
                String::from_utf8_lossy(t).into_owned(),
            ));
        }
        let n: u64 = std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| FramingError::BadLength(String::from_utf8_lossy(t).into_owned()))?;
        match found {
            Some(m) if m != n => return Err(FramingError::ConflictingLength),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// Whether the last transfer coding is `chunked`; `None` without any.
fn ends_chunked(headers: &[httparse::Header<'_>]) -> Option<Result<(), String>> {
    let last = tokens(headers, "transfer-encoding").last()?;
    if last.eq_ignore_ascii_case(b"chunked") {
        Some(Ok(()))
    } else {
        Some(Err(String::from_utf8_lossy(last).into_owned()))
    }
}

/// A request's body framing (RFC 9112 6.3): chunked, a length, or none.
/// Both headers at once, or codings not ending in chunked, are refused:
/// they are how requests are smuggled past a hop.
///
/// # Errors
/// [`FramingError`] naming the header at fault.
pub fn request_framing(headers: &[httparse::Header<'_>]) -> Result<Framing, FramingError> {
    let length = content_length(headers)?;
    match ends_chunked(headers) {
        Some(_) if length.is_some() => Err(FramingError::LengthAndEncoding),
        Some(Ok(())) => Ok(Framing::Chunked),
        Some(Err(coding)) => Err(FramingError::NotChunked(coding)),
        None => Ok(match length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }),
    }
}

/// A response's body framing (RFC 9112 6.3), given whether the request
/// was `HEAD` and the status.
///
/// # Errors
/// [`FramingError`] for a bad or conflicting `Content-Length`.
pub fn response_framing(
    head_request: bool,
    status: u16,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, FramingError> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    match ends_chunked(headers) {
        Some(Ok(())) => return Ok(Framing::Chunked),
        Some(Err(_)) => return Ok(Framing::UntilClose),
        None => {}
    }
    Ok(match content_length(headers)? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Whether a response lets its connection carry another request: HTTP/1.1
/// without `Connection: close`, and a body that does not end at close.
#[must_use]
pub fn response_keeps_alive(
    version: u8,
    headers: &[httparse::Header<'_>],
    framing: Framing,
) -> bool {
    version == 1
        && framing != Framing::UntilClose
        && !tokens(headers, "connection").any(|t| t.eq_ignore_ascii_case(b"close"))
}

/// What [`parse_bodiless`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodiless {
    /// Not a whole head yet.
    Partial,
    /// A head of this many bytes, for an HTTP/1.1 request without a body,
    /// upgrade or `Expect`, with an origin-form target (`/path?query`).
    Head(usize),
    /// Anything else: a body, an upgrade, another version, a head longer
    /// than allowed or malformed. Left to a full HTTP implementation.
    Other,
}

/// Parses a request head from `buf` into `req` and tells whether it is
/// one the lean paths take (see [`Bodiless`]); a partial head longer than
/// `max_head` bytes is [`Bodiless::Other`].
pub fn parse_bodiless<'b>(
    buf: &'b [u8],
    req: &mut httparse::Request<'_, 'b>,
    max_head: usize,
) -> Bodiless {
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Bodiless::Partial,
        _ => return Bodiless::Other,
    };
    let simple = req.method.is_some()
        && req.version == Some(1)
        && req.path.is_some_and(|p| p.starts_with('/'))
        && request_framing(req.headers) == Ok(Framing::Empty)
        && !asks_upgrade(req.headers)
        && header(req.headers, "expect").next().is_none();
    if simple {
        Bodiless::Head(len)
    } else {
        Bodiless::Other
    }
}

/// Whether a request asks to switch protocols (an `Upgrade` header).
#[must_use]
pub fn asks_upgrade(headers: &[httparse::Header<'_>]) -> bool {
    header(headers, "upgrade").next().is_some()
}

/// Hop-by-hop headers (RFC 9110 7.6.1) and the proxy ones: never passed
/// on. `Trailer` is not one: it announces end-to-end trailers.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Response header a draining connector sets on its answer (a `503`) to a
/// request it did not pass to the origin: the edge may send that request
/// again on another connection, body included when it kept the body.
pub const NOT_FORWARDED: &str = "burrow-not-forwarded";

/// Whether the response head `head` carries [`NOT_FORWARDED`] (a draining
/// connector's answer to a request it did not pass to the origin).
#[must_use]
pub fn not_forwarded(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    matches!(r.parse(head), Ok(httparse::Status::Complete(_)))
        && r.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(NOT_FORWARDED))
}

/// Whether a request may be sent again after the hop it went to closed
/// without an answer — the one resend rule of both roles: only the safe
/// methods GET, HEAD and OPTIONS, and only without a body (callers check
/// the body). PUT and DELETE are idempotent too, but a resent one may
/// repeat a change whose answer was lost, so they are never resent.
pub fn resendable(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Whether header `name` stops at this hop: a hop-by-hop header or one
/// the `Connection` header names.
pub fn stops_here(name: &str, headers: &[httparse::Header<'_>]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || tokens(headers, "connection").any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a request's head for the next hop: the request line as HTTP/1.1,
/// its headers minus hop-by-hop ones (`TE: trailers` stays: it asks every
/// hop for trailers) and minus those named in `set`, then `set`'s headers
/// (the hop's own: a `Host` override, `X-Forwarded-For`, ...).
pub fn write_request_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    set: &[(&str, &[u8])],
) {
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let wants_trailers = tokens(req.headers, "te").any(|t| t.eq_ignore_ascii_case(b"trailers"));
    for h in req.headers.iter() {
        if stops_here(h.name, req.headers)
            || set.iter().any(|(n, _)| h.name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        put_header(out, h.name, h.value);
    }
    if wants_trailers {
        put_header(out, "te", b"trailers");
    }
    for (name, value) in set {
        put_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response's head for the next hop as HTTP/1.1: status, reason,
/// headers minus hop-by-hop ones, then `extra`; `Transfer-Encoding:
/// chunked` when the body is chunked or is re-chunked here because it ends
/// at close (see [`write_chunk`]), and then no `Content-Length`.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[httparse::Header<'_>],
    framing: Framing,
    extra: &[(&str, &[u8])],
) {
    let chunked = matches!(framing, Framing::Chunked | Framing::UntilClose);
    let _ = write!(Bytes(out), "HTTP/1.1 {status:03} {reason}\r\n");
    for h in headers {
        if stops_here(h.name, headers) || (chunked && h.name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        put_header(out, h.name, h.value);
    }
    for (name, value) in extra {
        put_header(out, name, value);
    }
    if chunked {
        put_header(out, "transfer-encoding", b"chunked");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole answer with a fixed body (an error page, say): status
/// line, `content-type`, `content-length`, `extra` headers, the body.
pub fn write_answer(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &[u8])],
) {
    let _ = write!(
        Bytes(out),
        "HTTP/1.1 {status:03} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        put_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Wraps `data` as one chunk (the body of an [`Framing::UntilClose`]
/// response, sent on chunked); empty `data` writes the last chunk.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(Bytes(out), "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `fmt::Write` into a byte vector.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Where a [`Chunked`] scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Chunk-size digits (`digits` so far).
    Size { size: u64, digits: u8, line: usize },
    /// After the size: extensions up to CR.
    Ext { size: u64, line: usize },
    /// CR of the size line seen.
    SizeLf { size: u64 },
    /// Chunk data left.
    Data { left: u64 },
    /// CR after chunk data expected.
    DataCr,
    /// LF after chunk data expected.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart { total: usize },
    /// Inside a trailer line.
    Trailer { total: usize },
    /// CR of a trailer line seen.
    TrailerLf { total: usize },
    /// CR of the final empty line seen.
    EndLf,
    /// The body is over.
    Done,
}

/// Follows a chunked body as its bytes pass (they are passed on as they
/// are, extensions and trailers included) and finds where it ends.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    /// At the start of a body.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: 0,
                line: 0,
            },
        }
    }

    /// Whether the whole body (last chunk and trailers) has been seen.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans the next bytes of the stream; returns how many of them belong
    /// to the body (all of `input`, unless the body ends inside it).
    ///
    /// # Errors
    /// [`ChunkError`] when the bytes are not a well-formed chunked body;
    /// the scan should not be continued.
    pub fn scan(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data { left } => {
                    let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::Size { size, digits, line } => {
                    let line = line + 1;
                    if line > MAX_CHUNK_LINE {
                        return Err(ChunkError::LineTooLong);
                    }
                    match (b as char).to_digit(16) {
                        Some(d) => {
                            if digits >= 15 {
                                return Err(ChunkError::BadSize);
                            }
                            State::Size {
                                size: size * 16 + u64::from(d),
                                digits: digits + 1,
                                line,
                            }
                        }
                        None if digits == 0 => return Err(ChunkError::BadSize),
                        None if b == b'\r' => State::SizeLf { size },
                        None if b == b';' || b == b' ' || b == b'\t' => State::Ext { size, line },
                        None => return Err(ChunkError::BadSize),
                    }
                }
                State::Ext { size, line } => {
                    let line = line + 1;
                    if line > MAX_CHUNK_LINE {
                        return Err(ChunkError::LineTooLong);
                    }
                    match b {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(ChunkError::MissingCrlf),
                        _ => State::Ext { size, line },
                    }
                }
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => State::TrailerStart { total: 0 },
                    b'\n' => State::Data { left: size },
                    _ => return Err(ChunkError::MissingCrlf),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkError::MissingCrlf),
                },
                State::DataLf => match b {
                    b'\n' => State::Size {
                        size: 0,
                        digits: 0,
                        line: 0,
                    },
                    _ => return Err(ChunkError::MissingCrlf),
                },
                State::TrailerStart { total } => match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => trailer_byte(total)?,
                },
                State::Trailer { total } => match b {
                    b'\r' => State::TrailerLf { total },
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => trailer_byte(total)?,
                },
                State::TrailerLf { total } => match b {
                    b'\n' => State::TrailerStart { total },
                    _ => return Err(ChunkError::MissingCrlf),
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(ChunkError::MissingCrlf),
                },
            };
            i += 1;
        }
        Ok(i)
    }
}

fn trailer_byte(total: usize) -> Result<State, ChunkError> {
    if total + 1 > MAX_TRAILERS {
        return Err(ChunkError::TrailersTooLong);
    }
    Ok(State::Trailer { total: total + 1 })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_not_forwarded_answer_is_recognised_by_its_header() {
        let yes = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nBurrow-Not-Forwarded: draining\r\n\r\n";
        assert!(not_forwarded(yes));
        assert!(!not_forwarded(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(
            !not_forwarded(b"HTTP/1.1 503 Service Unav"),
            "a partial head"
        );
    }

    use super::*;
    use proptest::prelude::*;

    fn parse_req(raw: &[u8]) -> (Vec<u8>, Result<Framing, FramingError>) {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut h);
        assert!(req.parse(raw).unwrap().is_complete());
        let mut out = Vec::new();
        write_request_head(&mut out, &req, &[("host", b"origin.internal")]);
        (out, request_framing(req.headers))
    }

    fn resp(raw: &[u8], head: bool) -> (Vec<u8>, Result<Framing, FramingError>, bool) {
        let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut h);
        assert!(r.parse(raw).unwrap().is_complete());
        let framing = response_framing(head, r.code.unwrap(), r.headers);
        let mut out = Vec::new();
        let keep = framing
            .clone()
            .map(|f| response_keeps_alive(r.version.unwrap(), r.headers, f))
            .unwrap_or(false);
        if let Ok(f) = &framing {
            write_response_head(
                &mut out,
                r.code.unwrap(),
                r.reason.unwrap(),
                r.headers,
                *f,
                &[],
            );
        }
        (out, framing, keep)
    }

    #[test]
    fn request_head_drops_hop_by_hop_and_sets_host() {
        let (out, framing) = parse_req(
            b"GET /a?b=1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: keep-alive, X-Secret\r\n\
              X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers, gzip\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nAccept: */*\r\nte: trailers\r\nhost: origin.internal\r\n\r\n"
        );
        assert_eq!(framing, Ok(Framing::Empty));
    }

    #[test]
    fn only_simple_bodiless_requests_are_taken() {
        let check = |raw: &str| {
            let mut h = [httparse::EMPTY_HEADER; 4];
            let mut req = httparse::Request::new(&mut h);
            parse_bodiless(raw.as_bytes(), &mut req, 64)
        };
        let simple = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(check(simple), Bodiless::Head(simple.len()));
        assert_eq!(check("GET /a HTTP/1.1\r\nHost: a\r\n"), Bodiless::Partial);
        assert_eq!(
            check(&format!("GET /{} HTTP/1.1\r\n", "a".repeat(64))),
            Bodiless::Other
        );
        for other in [
            "GET /a HTTP/1.0\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
            "GET /a HTTP/1.1\r\nBad Name: 1\r\n\r\n",
        ] {
            assert_eq!(check(other), Bodiless::Other, "{other}");
        }
    }

    #[test]
    fn request_framing_refuses_smuggling_shapes() {
        let f = |h: &str| parse_req(format!("POST / HTTP/1.1\r\nHost: a\r\n{h}\r\n").as_bytes()).1;
        assert_eq!(f("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(f("Content-Length: 0\r\n"), Ok(Framing::Empty));
        assert_eq!(
            f("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("Content-Length: 5, 6\r\n"),
            Err(FramingError::ConflictingLength)
        );
        assert_eq!(
            f("Content-Length: +5\r\n"),
            Err(FramingError::BadLength("+5".into()))
        );
        assert_eq!(
            f("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            f("Transfer-Encoding: chunked, gzip\r\n"),
            Err(FramingError::NotChunked("gzip".into()))
        );
        assert_eq!(
            f("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            Err(FramingError::LengthAndEncoding)
        );
        assert_eq!(f(""), Ok(Framing::Empty));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let r = |s: &str, head| resp(s.as_bytes(), head);
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false).1,
            Ok(Framing::Length(3))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).1,
            Ok(Framing::Empty)
        );
        assert_eq!(
            r("HTTP/1.1 204 No Content\r\n\r\n", false).1,
            Ok(Framing::Empty)
        );
        assert_eq!(
            r(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .1,
            Ok(Framing::Empty)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\n\r\n", false).1,
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).1,
            Ok(Framing::UntilClose)
        );
        let (head, f, keep) = r(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        );
        assert_eq!(f, Ok(Framing::Chunked));
        assert!(keep);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert!(r("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false)
            .1
            .is_err());
    }

    #[test]
    fn keep_alive_needs_http11_without_close_and_a_delimited_body() {
        assert!(resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).2);
        assert!(
            !resp(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .2
        );
        assert!(!resp(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).2);
        assert!(!resp(b"HTTP/1.1 200 OK\r\n\r\n", false).2);
    }

    #[test]
    fn a_fixed_answer_parses_back() {
        let mut out = Vec::new();
        write_answer(
            &mut out,
            502,
            "Bad Gateway",
            "text/plain",
            b"no\n",
            &[("connection", b"close")],
        );
        assert_eq!(
            out,
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nno\n"
        );
    }

    #[test]
    fn a_body_until_close_is_rechunked() {
        let (head, f, _) = resp(
            b"HTTP/1.0 200 OK\r\nServer: x\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!(f, Ok(Framing::UntilClose));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: x\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello world, 17 b");
        write_chunk(&mut out, b"");
        assert_eq!(out, b"11\r\nhello world, 17 b\r\n0\r\n\r\n");
        let mut c = Chunked::new();
        assert_eq!(c.scan(&out), Ok(out.len()));
        assert!(c.is_done());
    }

    #[test]
    fn chunked_scan_finds_the_end_with_extensions_and_trailers() {
        let body = b"5;name=val\r\nhello\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\nGET / HTTP/1.1";
        let end = body.len() - b"GET / HTTP/1.1".len();
        let mut c = Chunked::new();
        assert_eq!(c.scan(body), Ok(end));
        assert!(c.is_done());
        // The same, a byte at a time.
        let mut c = Chunked::new();
        let mut n = 0;
        for b in body.chunks(1) {
            n += c.scan(b).unwrap();
        }
        assert_eq!(n, end);
    }

    #[test]
    fn chunked_scan_refuses_malformed_bodies() {
        let bad = |s: &[u8]| Chunked::new().scan(s);
        assert_eq!(bad(b"x\r\n"), Err(ChunkError::BadSize));
        assert_eq!(bad(b"\r\n"), Err(ChunkError::BadSize));
        assert_eq!(bad(b"5\nhello"), Err(ChunkError::BadSize));
        assert_eq!(bad(b"3\r\nabcX"), Err(ChunkError::MissingCrlf));
        assert_eq!(bad(b"1000000000000000\r\n"), Err(ChunkError::BadSize));
        assert_eq!(bad(b"0\r\nX: y\n"), Err(ChunkError::MissingCrlf));
        let long = [b"1;".as_slice(), &[b'a'; MAX_CHUNK_LINE]].concat();
        assert_eq!(bad(&long), Err(ChunkError::LineTooLong));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'a', MAX_TRAILERS + 1));
        assert_eq!(bad(&trailers), Err(ChunkError::TrailersTooLong));
    }

    proptest! {
        /// Any body cut into chunks of any sizes, scanned in any split, ends
        /// exactly where it was written to end.
        #[test]
        fn chunked_scan_ends_at_the_end(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
            split in 1usize..64,
            extra in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut body = Vec::new();
            for c in &chunks {
                write_chunk(&mut body, c);
            }
            write_chunk(&mut body, b"");
            let end = body.len();
            body.extend_from_slice(&extra);
            let mut c = Chunked::new();
            let mut n = 0;
            for piece in body.chunks(split) {
                n += c.scan(piece).unwrap();
                if c.is_done() { break; }
            }
            prop_assert!(c.is_done());
            prop_assert_eq!(n, end);
        }

        /// Any bytes: the scan never panics and never claims more than it saw.
        #[test]
        fn chunked_scan_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut c = Chunked::new();
            if let Ok(n) = c.scan(&input) {
                prop_assert!(n <= input.len());
            }
        }
    }
}
