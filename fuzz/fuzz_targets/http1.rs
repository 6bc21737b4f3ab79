//! Feeds arbitrary bytes to the HTTP/1.1 relay framing: a request head, a
//! response head and a chunked body. Nothing may panic; a head written for
//! the next hop must parse again, with no hop-by-hop header left; a chunked
//! body scanned in pieces must end where a scan in one piece ends.
#![no_main]

use burrow_proto::http1::{
    parse_bodiless, request_framing, response_framing, write_request_head, write_response_head,
    Bodiless, Chunked, MAX_HEADERS,
};
use libfuzzer_sys::fuzz_target;

fn no_hop_by_hop(headers: &[httparse::Header<'_>]) {
    for h in headers {
        for bad in [
            "connection",
            "keep-alive",
            "upgrade",
            "transfer-encoding",
            "proxy-connection",
        ] {
            assert!(!h.name.eq_ignore_ascii_case(bad), "{} passed on", h.name);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let split = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let data = data.get(1..).unwrap_or_default();

    let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut h);
    if let Bodiless::Head(n) = parse_bodiless(data, &mut req, 64 * 1024) {
        assert!(n <= data.len());
        assert_eq!(
            request_framing(req.headers),
            Ok(burrow_proto::http1::Framing::Empty)
        );
    }
    let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut h);
    if let Ok(httparse::Status::Complete(_)) = req.parse(data) {
        let _ = request_framing(req.headers);
        let mut out = Vec::new();
        write_request_head(&mut out, &req, &[("host", b"origin.internal")]);
        // One more header than the original at most (the host set).
        let mut h2 = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
        let mut again = httparse::Request::new(&mut h2);
        assert!(matches!(again.parse(&out), Ok(httparse::Status::Complete(n)) if n == out.len()));
        assert_eq!(again.method, req.method);
        assert_eq!(again.path, req.path);
        no_hop_by_hop(again.headers);
    }

    let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut h);
    if let Ok(httparse::Status::Complete(_)) = resp.parse(data) {
        let status = resp.code.unwrap_or(200);
        if let Ok(framing) = response_framing(false, status, resp.headers) {
            let mut out = Vec::new();
            write_response_head(
                &mut out,
                status,
                resp.reason.unwrap_or(""),
                resp.headers,
                framing,
                &[],
            );
            // One more header than the original at most (transfer-encoding).
            let mut h2 = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
            let mut again = httparse::Response::new(&mut h2);
            assert!(
                matches!(again.parse(&out), Ok(httparse::Status::Complete(n)) if n == out.len())
            );
            assert_eq!(again.code, Some(status));
            for hd in again.headers.iter() {
                if hd.name != "transfer-encoding" {
                    no_hop_by_hop(std::slice::from_ref(hd));
                }
            }
        }
    }

    let whole = Chunked::new().scan(data);
    let mut pieces = Chunked::new();
    let mut seen = 0;
    let mut failed = false;
    for piece in data.chunks(split) {
        match pieces.scan(piece) {
            Ok(n) => {
                seen += n;
                if pieces.is_done() {
                    break;
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    match whole {
        Ok(n) => {
            assert!(!failed);
            assert_eq!(seen, n);
        }
        Err(_) => assert!(failed),
    }
});
