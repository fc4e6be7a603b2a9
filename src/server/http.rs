//! A small HTTP/1.1 server for the loopback endpoints (the AdminServer, Prometheus, zkherd's
//! dashboard): one request per connection, bounded header and body sizes, bounded waits. It
//! is not a general web server; it serves a few JSON, text and HTML routes to a browser,
//! curl or a Prometheus scraper.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Requests larger than this are answered 413 (a znode's data is at most 1 MiB by default).
const MAX_BODY: usize = 2 << 20;
const MAX_HEAD: usize = 16 << 10;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Request {
    pub method: String,
    /// The path without the query string, percent-decoded.
    pub path: String,
    /// The query string's pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// A JSON error `{"error": message}`.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.to_string() }))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Accept connections on `listener` for ever, answering each request with `handler`.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = one(stream, handler).await;
        });
    }
}

async fn one<F, Fut>(mut stream: TcpStream, handler: F) -> std::io::Result<()>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let response = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Err(_) => return Ok(()),
        Ok(Err(e)) => e,
        Ok(Ok(req)) => handler(req).await,
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}

/// Read one request; a malformed one becomes the error response to send.
async fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let mut buf = Vec::with_capacity(1024);
    // Where the search for the blank line resumes: each read scans only what it added.
    let mut scanned = 0;
    let head_end = loop {
        if let Some(i) = find(&buf[scanned..], b"\r\n\r\n") {
            break scanned + i;
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(Response::error(413, "request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Response::error(400, e))?;
        if n == 0 {
            return Err(Response::error(400, "connection closed mid-request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_head(&String::from_utf8_lossy(&buf[..head_end]))?;
    let length = head.content_length;
    if length > MAX_BODY {
        return Err(Response::error(413, "request body too large"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 << 10)];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Response::error(400, e))?;
        if n == 0 {
            return Err(Response::error(400, "connection closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        method: head.method,
        path: head.path,
        query: head.query,
        headers: head.headers,
        body,
    })
}

/// A request's head: the request line and the headers, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub content_length: usize,
}

/// Parse a request head (without the blank line that ends it). Any text gives a head or the
/// error response to send, never a panic (`cargo test`'s proptest feeds it arbitrary text).
pub fn parse_head(head: &str) -> Result<Head, Response> {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(Response::error(400, format!("bad request line {first:?}")));
    };
    if method.is_empty() || !target.starts_with('/') {
        return Err(Response::error(400, format!("bad request line {first:?}")));
    }
    let mut content_length = 0usize;
    let mut headers = Vec::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            if k.trim().eq_ignore_ascii_case("content-length") {
                content_length = v
                    .trim()
                    .parse()
                    .map_err(|_| Response::error(400, "bad Content-Length"))?;
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Head {
        method: method.to_string(),
        path: percent_decode(path),
        query: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(&v.replace('+', " ")))
            })
            .collect(),
        headers,
        content_length,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `%2F` → `/`; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        /// Any head text parses or gives a 4xx, never a panic.
        #[test]
        fn any_head_parses_or_is_refused(text in ".{0,400}") {
            if let Err(r) = parse_head(&text) {
                prop_assert!(r.status == 400 || r.status == 413, "{}", r.status);
            }
        }

        /// A well-formed head comes back as it was written.
        #[test]
        fn a_written_head_is_read_back(
            path in "/[a-z0-9/]{0,20}",
            key in "[a-z]{1,8}",
            value in "[a-zA-Z0-9 /]{0,12}",
            length in 0usize..100_000,
        ) {
            let head = format!(
                "POST {path}?{key}={} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}",
                value.replace(' ', "+").replace('/', "%2F")
            );
            let h = parse_head(&head).unwrap();
            prop_assert_eq!(h.method, "POST");
            prop_assert_eq!(h.path, path);
            prop_assert_eq!(h.query, vec![(key, value)]);
            prop_assert_eq!(h.content_length, length);
        }
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("/a%2Fb%20c"), "/a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
        assert_eq!(percent_decode("%€"), "%€");
    }

    #[tokio::test]
    async fn a_request_is_parsed_and_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, |req: Request| async move {
            Response::json(
                200,
                &serde_json::json!({
                    "method": req.method,
                    "path": req.path,
                    "p": req.param("path"),
                    "body": String::from_utf8_lossy(&req.body),
                }),
            )
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /api/x%20y?path=%2Fa%2Fb&z HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        let body: serde_json::Value =
            serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["method"], "POST");
        assert_eq!(body["path"], "/api/x y");
        assert_eq!(body["p"], "/a/b");
        assert_eq!(body["body"], "hello");
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, |_req: Request| async move {
            Response::text(200, "text/plain", "never")
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    }
}
