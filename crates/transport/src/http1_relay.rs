//! The async half of relaying an HTTP/1.1 answer as it is framed (see
//! `burrow_proto::http1`): read its head, then pass its body from one
//! stream to another, with the edge's and the connector's lean request
//! paths as callers.

use burrow_proto::http1::{self, Chunked, Framing, MAX_HEADERS};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest head read (as hyper's limit on the same streams).
pub const MAX_HEAD: usize = 64 * 1024;

/// How much is read at a time while passing a body on.
const READ_CHUNK: usize = 64 * 1024;

/// An answer's head as read.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Bytes of the head in the buffer it was read from.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
}

/// Headers a hop may add to an answer it passes on (`Transfer-Encoding`
/// when it re-chunks, `Connection: close`): the next hop reads up to
/// `MAX_HEADERS + HOP_HEADERS`.
pub const HOP_HEADERS: usize = 4;

/// Parses an answer's head from `buf`: `None` until it is whole. Interim
/// `1xx` answers are dropped from `buf` (hyper, as a client, drops them
/// too). `answer` gets the head for the next hop, with `extra` headers.
/// An origin's answer may have [`MAX_HEADERS`] headers; one passed on by
/// another hop (`from_hop`), [`HOP_HEADERS`] more.
///
/// # Errors
/// A readable reason when the bytes are not an answer this path passes on
/// (malformed, too many headers, over [`MAX_HEAD`], a `101` nobody asked
/// for).
pub fn read_head(
    buf: &mut BytesMut,
    head_request: bool,
    from_hop: bool,
    answer: &mut Vec<u8>,
    extra: &[(&str, &[u8])],
) -> Result<Option<Head>, String> {
    let limit = if from_hop {
        MAX_HEADERS + HOP_HEADERS
    } else {
        MAX_HEADERS
    };
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + HOP_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) => {
                return Err(format!("the answer's head is over {MAX_HEAD} bytes"))
            }
            Err(e) => return Err(format!("invalid answer: {e}")),
        };
        let (Some(status), Some(version)) = (resp.code, resp.version) else {
            return Err("invalid answer".into());
        };
        if resp.headers.len() > limit {
            return Err(format!("the answer has more than {limit} headers"));
        }
        if status == 101 {
            return Err("101 Switching Protocols to a request without Upgrade".into());
        }
        if (100..200).contains(&status) {
            buf.advance(len);
            continue;
        }
        let framing = http1::response_framing(head_request, status, resp.headers)
            .map_err(|e| format!("invalid answer: {e}"))?;
        let keep_alive = http1::response_keeps_alive(version, resp.headers, framing);
        answer.clear();
        http1::write_response_head(
            answer,
            status,
            resp.reason.unwrap_or(""),
            resp.headers,
            framing,
            extra,
        );
        return Ok(Some(Head {
            len,
            status,
            framing,
            keep_alive,
        }));
    }
}

/// Why [`ask`] got no answer's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// Nothing came back: the request could not be written, or the stream
    /// closed or failed before any byte of an answer. A request whose
    /// method allows it may be sent again elsewhere.
    Unanswered(String),
    /// Part of an answer came, or what came is not an answer to pass on.
    Bad(String),
}

/// Writes `request` (a whole bodiless request) on `stream` and reads the
/// answer's head into `buf` (cleared first), as [`read_head`] does.
///
/// # Errors
/// [`AskError`], telling an unanswered request from a bad answer.
pub async fn ask<S>(
    stream: &mut S,
    request: &[u8],
    buf: &mut BytesMut,
    head_request: bool,
    from_hop: bool,
    answer: &mut Vec<u8>,
    extra: &[(&str, &[u8])],
) -> Result<Head, AskError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    buf.clear();
    stream
        .write_all(request)
        .await
        .map_err(|e| AskError::Unanswered(format!("sending the request: {e}")))?;
    loop {
        if let Some(head) =
            read_head(buf, head_request, from_hop, answer, extra).map_err(AskError::Bad)?
        {
            return Ok(head);
        }
        buf.reserve(16 * 1024);
        match stream.read_buf(buf).await {
            Ok(0) if buf.is_empty() => {
                return Err(AskError::Unanswered("closed without answering".into()))
            }
            Ok(0) => return Err(AskError::Bad("closed inside the answer's head".into())),
            Ok(_) => {}
            Err(e) if buf.is_empty() => return Err(AskError::Unanswered(e.to_string())),
            Err(e) => return Err(AskError::Bad(e.to_string())),
        }
    }
}

/// Passes a body on to `to`, after the head in `answer` (sent together
/// when the body is already in `buf`, which holds what was read after the
/// head). Returns whether `from` ended exactly at the body's end, so it
/// can carry another message.
///
/// # Errors
/// A readable reason when either side fails or `from` cuts the body
/// short; the message is then broken and both streams should close.
pub async fn pass_body<R, W>(
    framing: Framing,
    from: &mut R,
    answer: &mut Vec<u8>,
    buf: &mut BytesMut,
    to: &mut W,
) -> Result<bool, String>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let sent = |e: std::io::Error| format!("sending the answer on: {e}");
    let mut clean = true;
    match framing {
        Framing::Empty => {
            clean = buf.is_empty();
            to.write_all(answer).await.map_err(sent)?;
        }
        Framing::Length(n) => {
            let mut left = n;
            loop {
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                left -= take as u64;
                if left == 0 {
                    clean = buf.len() == take;
                }
                send(to, answer, &buf[..take]).await.map_err(sent)?;
                if left == 0 {
                    break;
                }
                read_more(from, buf).await?;
            }
        }
        Framing::Chunked => {
            let mut scan = Chunked::new();
            loop {
                let take = scan.scan(buf).map_err(|e| format!("chunked body: {e}"))?;
                if scan.is_done() {
                    clean = buf.len() == take;
                }
                send(to, answer, &buf[..take]).await.map_err(sent)?;
                if scan.is_done() {
                    break;
                }
                read_more(from, buf).await?;
            }
        }
        Framing::UntilClose => {
            clean = false;
            loop {
                if !buf.is_empty() {
                    http1::write_chunk(answer, buf);
                }
                to.write_all(answer).await.map_err(sent)?;
                answer.clear();
                buf.clear();
                buf.reserve(READ_CHUNK);
                if from.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
                    http1::write_chunk(answer, b"");
                    to.write_all(answer).await.map_err(sent)?;
                    break;
                }
            }
        }
    }
    to.flush().await.map_err(sent)?;
    Ok(clean)
}

/// Writes `body` to `to`: after the head still in `head` (then emptied),
/// in one write, as the first bytes of a small answer; later parts
/// straight from the read buffer, without a copy.
async fn send<W: AsyncWrite + Unpin + ?Sized>(
    to: &mut W,
    head: &mut Vec<u8>,
    body: &[u8],
) -> std::io::Result<()> {
    if head.is_empty() {
        return to.write_all(body).await;
    }
    head.extend_from_slice(body);
    let sent = to.write_all(head).await;
    head.clear();
    sent
}

/// Reads the next bytes of a body into the emptied `buf`; `from` closing
/// here cuts the body short.
async fn read_more<R: AsyncRead + Unpin + ?Sized>(
    from: &mut R,
    buf: &mut BytesMut,
) -> Result<(), String> {
    buf.clear();
    buf.reserve(READ_CHUNK);
    match from.read_buf(buf).await {
        Ok(0) => Err("closed before the body's end".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a head from `first`, then passes the body from `first`'s rest
    /// and `rest`: (what was sent on, whether `from` ended clean).
    async fn relay(first: &[u8], mut rest: &[u8]) -> Result<(Vec<u8>, bool), String> {
        let mut buf = BytesMut::from(first);
        let mut answer = Vec::new();
        let head = read_head(&mut buf, false, false, &mut answer, &[])?.expect("a whole head");
        buf.advance(head.len);
        let mut out = Vec::new();
        let clean = pass_body(head.framing, &mut rest, &mut answer, &mut buf, &mut out).await?;
        Ok((out, clean))
    }

    #[tokio::test]
    async fn bodies_pass_whole_across_reads() {
        let (out, clean) = relay(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            b" world",
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello worl"
        );
        assert!(!clean, "a byte past the body");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        let (out, clean) = relay(chunked, b"0\r\nX-T: 1\r\n\r\n").await.unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        );
        assert!(clean);
    }

    #[tokio::test]
    async fn a_body_until_close_is_rechunked_and_a_cut_body_fails() {
        let (out, clean) = relay(b"HTTP/1.0 200 OK\r\n\r\nab", b"cd").await.unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
        );
        assert!(!clean);
        let cut = relay(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", b"").await;
        assert_eq!(cut.unwrap_err(), "closed before the body's end");
    }

    #[test]
    fn interim_answers_are_skipped_and_odd_ones_refused() {
        let mut answer = Vec::new();
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..]);
        let head = read_head(
            &mut buf,
            false,
            false,
            &mut answer,
            &[("connection", b"close")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (head.status, head.framing, head.len),
            (204, Framing::Empty, buf.len())
        );
        assert_eq!(
            answer,
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
        );
        let mut buf = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]);
        assert!(read_head(&mut buf, false, false, &mut answer, &[]).is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        let err = read_head(&mut buf, false, false, &mut answer, &[]).unwrap_err();
        assert!(err.contains("more than 128 headers"), "{err}");
        let mut buf = BytesMut::from(raw.as_bytes());
        assert!(read_head(&mut buf, false, true, &mut answer, &[])
            .unwrap()
            .is_some());
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: 1\r\n"[..]);
        assert!(read_head(&mut buf, false, false, &mut answer, &[])
            .unwrap()
            .is_none());
    }
}
