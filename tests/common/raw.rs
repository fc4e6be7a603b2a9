//! A raw ZooKeeper protocol client for tests: exact bytes in, exact replies out.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use zkherd::server::proto::{ConnectRequest, Reader, Writer};

pub async fn within<T>(f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), f).await.ok()
}

/// A handshake; None when the server closed without answering.
pub async fn connect(
    addr: SocketAddr,
    session_id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
    timeout_ms: i32,
) -> (TcpStream, Option<(i32, i64, Vec<u8>)>) {
    let s = TcpStream::connect(addr).await.unwrap();
    handshake(s, session_id, passwd, last_zxid, timeout_ms).await
}

/// [`connect`] over TLS with `config` (the server named by its IP address).
#[allow(dead_code)]
pub async fn connect_tls(
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    Option<(i32, i64, Vec<u8>)>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let s = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    handshake(s, 0, vec![0; 16], 0, 30000).await
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    session_id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
    timeout_ms: i32,
) -> (S, Option<(i32, i64, Vec<u8>)>) {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: last_zxid,
        timeout: timeout_ms,
        session_id,
        passwd,
        read_only: Some(false),
    }
    .encode();
    // A server that refuses the connection may reset it before the request is written.
    let mut framed = (req.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&req);
    if s.write_all(&framed).await.is_err() {
        return (s, None);
    }
    let mut len = [0u8; 4];
    match within(s.read_exact(&mut len)).await {
        Some(Ok(_)) => {}
        _ => return (s, None),
    }
    let mut body = vec![0; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    let mut r = Reader::new(&body);
    let _proto = r.int().unwrap();
    let to = r.int().unwrap();
    let sid = r.long().unwrap();
    let pw = r.buffer().unwrap().unwrap();
    (s, Some((to, sid, pw)))
}

/// One reply: (xid, zxid, err, body), with notifications received before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
    /// (type, path) of notifications that arrived before this reply.
    pub events: Vec<(i32, String)>,
}

/// Send a request and read until its reply; None if the connection closed.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    xid: i32,
    opcode: i32,
    body: &[u8],
) -> Option<Reply> {
    let mut w = Writer::frame();
    w.int(xid).int(opcode);
    w.buf.extend_from_slice(body);
    s.write_all(&w.into_frame()).await.ok()?;
    let mut events = Vec::new();
    loop {
        let mut len = [0u8; 4];
        within(s.read_exact(&mut len)).await?.ok()?;
        let mut b = vec![0; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut b).await.ok()?;
        let mut r = Reader::new(&b);
        let (x, z, e) = (r.int().ok()?, r.long().ok()?, r.int().ok()?);
        if x == -1 {
            let t = r.int().ok()?;
            let _state = r.int().ok()?;
            events.push((t, r.string().ok()?));
            continue;
        }
        return Some(Reply {
            xid: x,
            zxid: z,
            err: e,
            body: r.rest().to_vec(),
            events,
        });
    }
}

/// Whether the server closed the connection (reads EOF within 10 s).
pub async fn is_closed<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 1];
    matches!(
        within(s.read(&mut b)).await,
        Some(Ok(0)) | None | Some(Err(_))
    )
}
