//! One task per client connection: framing, the handshake, and the four-letter-word sniff.
//!
//! The reader decodes frames into requests for the core; a writer task sends whatever the core
//! queues for this connection, in order (notifications before the reply that caused them,
//! replies in arrival order, because the core queues them that way). Nothing else touches the
//! socket.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

use super::proto::{self, ConnectRequest, DecodeError, Request};
use super::tree::AuthId;
use super::watch::ConnId;

/// Four-letter words recognised in the first 4 bytes of a connection.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "dirs",
    "isro", "crst", "srst", "gtmk", "stmk", "hash",
];

/// What the core sends a connection.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    /// Flush what is queued, then close.
    Close,
}

/// What connections send the core.
#[derive(Debug)]
pub enum CoreMsg {
    Connect {
        conn: ConnId,
        req: ConnectRequest,
        remote: SocketAddr,
        /// Ids the transport proved before the handshake: `x509:<subject>` (and `super:`)
        /// from a TLS client certificate.
        auth: Vec<AuthId>,
        tx: mpsc::UnboundedSender<Out>,
    },
    Request {
        conn: ConnId,
        xid: i32,
        opcode: i32,
        req: Result<Request, DecodeError>,
        received: Instant,
        bytes: usize,
    },
    Closed {
        conn: ConnId,
    },
    FourLetter {
        cmd: String,
        remote: SocketAddr,
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command or the Prometheus text (see `admin`).
    Admin {
        cmd: String,
        reply: oneshot::Sender<serde_json::Value>,
    },
}

/// Per-IP connection counts for `maxClientCnxns`.
#[derive(Clone, Default)]
pub struct ConnLimits {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnLimits {
    pub fn new(max: usize) -> ConnLimits {
        ConnLimits {
            max,
            counts: Default::default(),
        }
    }

    fn acquire(&self, ip: IpAddr) -> bool {
        let mut c = self.counts.lock().expect("limits lock");
        let n = c.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut c = self.counts.lock().expect("limits lock");
        if let Some(n) = c.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&ip);
            }
        }
    }
}

/// What the secure client port does with a connection before the protocol starts.
#[derive(Clone)]
pub struct TlsAccept {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Client certificates are asked for (`ssl.clientAuth` want or need).
    pub asks_certificates: bool,
    /// The x509 provider (`ssl.authProvider`) is registered (`authProvider.N=…
    /// X509AuthenticationProvider`); without it Apache closes a connection that presents a
    /// certificate, and so does this server.
    pub x509: bool,
    /// `X509AuthenticationProvider.superUser`.
    pub super_user: Option<String>,
}

/// A handshake that takes longer than this is dropped (a client that connects and says
/// nothing holds no task for long).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept connections until the listener fails; each gets its own task. With `tls`, each
/// connection does its TLS handshake first (the secure client port).
pub async fn accept_loop(
    listener: TcpListener,
    core: mpsc::Sender<CoreMsg>,
    limits: ConnLimits,
    max_buffer: usize,
    tls: Option<TlsAccept>,
    next_conn: Arc<std::sync::atomic::AtomicU64>,
) {
    // Connection tasks belong to this loop: when the server stops (or is dropped), they stop.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !limits.acquire(remote.ip()) {
            tracing::warn!(
                "too many connections from {} (maxClientCnxns); dropping",
                remote.ip()
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let core = core.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            match tls {
                None => serve(stream, remote, conn, Vec::new(), core, max_buffer).await,
                Some(t) => {
                    let hs = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, t.acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(s)) => {
                            if let Some(auth) = client_certificate_ids(&t, &s, remote) {
                                serve(s, remote, conn, auth, core, max_buffer).await;
                            }
                        }
                        Ok(Err(e)) => tracing::warn!("TLS handshake with {remote} failed: {e}"),
                        Err(_) => tracing::warn!(
                            "TLS handshake with {remote} took over {}s; dropped",
                            TLS_HANDSHAKE_TIMEOUT.as_secs()
                        ),
                    }
                }
            }
            limits.release(remote.ip());
        });
    }
}

/// The ids a client certificate proves, as Apache's X509AuthenticationProvider gives them:
/// `x509:<subject, RFC 2253>`, and `super:<subject>` for the configured super user. None:
/// close the connection (a certificate, but no x509 provider registered).
fn client_certificate_ids(
    t: &TlsAccept,
    s: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    remote: SocketAddr,
) -> Option<Vec<AuthId>> {
    if !t.asks_certificates {
        return Some(Vec::new());
    }
    let Some(cert) = s.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Some(Vec::new());
    };
    if !t.x509 {
        tracing::error!(
            "{remote}: a client certificate, but the x509 auth provider is not registered \
             (zoo.cfg authProvider.N=org.apache.zookeeper.server.auth.X509AuthenticationProvider); \
             closing, as Apache does"
        );
        return None;
    }
    let Some(id) = super::tls::x509_id(cert) else {
        tracing::error!("{remote}: the client certificate's subject cannot be read; closing");
        return None;
    };
    let mut ids = Vec::new();
    if t.super_user.as_deref() == Some(id.as_str()) {
        ids.push(AuthId {
            scheme: "super".into(),
            id: id.clone(),
        });
    }
    tracing::info!("{remote}: authenticated x509 id {id:?}");
    ids.push(AuthId {
        scheme: "x509".into(),
        id,
    });
    Some(ids)
}

async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    remote: SocketAddr,
    conn: ConnId,
    auth: Vec<AuthId>,
    core: mpsc::Sender<CoreMsg>,
    max_buffer: usize,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let mut head = [0u8; 4];
    if rd.read_exact(&mut head).await.is_err() {
        return;
    }
    if let Ok(word) = std::str::from_utf8(&head) {
        if FOUR_LETTER_WORDS.contains(&word) {
            four_letter(word, remote, rd, wr, &core).await;
            return;
        }
    }
    let len = i32::from_be_bytes(head);
    if len < 0 || len as usize > max_buffer {
        return;
    }
    let Some(body) = read_body(&mut rd, len as usize).await else {
        return;
    };
    let Ok(req) = ConnectRequest::decode(&body) else {
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let closed = Arc::new(Notify::new());
    let writer = tokio::spawn(write_loop(wr, rx, closed.clone()));
    if core
        .send(CoreMsg::Connect {
            conn,
            req,
            remote,
            auth,
            tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut frames = FrameReader {
        rd,
        buf: Vec::new(),
        start: 0,
    };
    loop {
        tokio::select! {
            frame = frames.next(max_buffer) => {
                let Some(frame) = frame else { break };
                let received = Instant::now();
                let bytes = frame.len();
                let mut r = proto::Reader::new(&frame);
                let (Ok(xid), Ok(opcode)) = (r.int(), r.int()) else { break };
                let req = proto::decode_request(opcode, r.rest());
                if core
                    .send(CoreMsg::Request { conn, xid, opcode, req, received, bytes })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            _ = closed.notified() => break,
        }
    }
    let _ = core.send(CoreMsg::Closed { conn }).await;
    let _ = writer.await;
}

/// A connection's requests, read through one buffer: a client's pipelined requests arrive in
/// one read (it took two per request, the length and then the body), and the buffer is given
/// back whenever it is drained, so an idle connection holds none. Cancel-safe: what was read
/// stays in the buffer.
struct FrameReader<R> {
    rd: R,
    buf: Vec<u8>,
    /// Where the unconsumed bytes in `buf` start.
    start: usize,
}

/// The most a read asks for at once: memory grows with the bytes that actually arrive, so a
/// client that announces a large frame and sends little (or drips it) holds little.
const READ_CHUNK: usize = 64 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame; None on EOF, error, or a length outside 0..=max_buffer.
    async fn next(&mut self, max_buffer: usize) -> Option<Vec<u8>> {
        loop {
            let have = &self.buf[self.start..];
            let need = match have.get(..4) {
                Some(head) => {
                    let len = i32::from_be_bytes(head.try_into().expect("4 bytes"));
                    if len < 0 || len as usize > max_buffer {
                        tracing::debug!("closing a connection: frame length {len}");
                        return None;
                    }
                    let end = 4 + len as usize;
                    if have.len() >= end {
                        let body = have[4..end].to_vec();
                        self.start += end;
                        if self.start == self.buf.len() {
                            self.buf = Vec::new();
                            self.start = 0;
                        }
                        return Some(body);
                    }
                    end - have.len()
                }
                None => 4 - have.len(),
            };
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(need.clamp(4096, READ_CHUNK));
            if self.rd.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}

/// Read exactly `len` bytes. Memory grows with the bytes that actually arrive, so a client that
/// announces a large frame and sends little (or drips it) holds little.
async fn read_body<R: AsyncRead + Unpin>(rd: &mut R, len: usize) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    (&mut *rd)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .ok()?;
    (body.len() == len).then_some(body)
}

/// What a connection's queued frames may hold between writes before the buffer is given back;
/// an idle connection (most of them, with thousands of sessions) holds a few bytes.
const KEEP_WRITE_BUFFER: usize = 16 * 1024;

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    closed: Arc<Notify>,
) {
    let mut buf: Vec<u8> = Vec::new();
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Write everything already queued in one write.
        let mut close = false;
        while let Some(out) = next.take() {
            match out {
                Out::Frame(f) if buf.is_empty() => buf = f,
                Out::Frame(f) => buf.extend_from_slice(&f),
                Out::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() && w.write_all(&buf).await.is_err() {
            break 'outer;
        }
        if close {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
            break 'outer;
        }
        if w.flush().await.is_err() {
            break;
        }
        buf.clear();
        if buf.capacity() > KEEP_WRITE_BUFFER {
            buf = Vec::new();
        }
    }
    closed.notify_one();
}

async fn four_letter<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    word: &str,
    remote: SocketAddr,
    mut rd: R,
    mut wr: W,
    core: &mpsc::Sender<CoreMsg>,
) {
    // stmk carries an 8-byte mask; read it so the reply is not cut by a reset.
    if word == "stmk" {
        let mut mask = [0u8; 8];
        let _ = rd.read_exact(&mut mask).await;
    }
    let (tx, rx) = oneshot::channel();
    if core
        .send(CoreMsg::FourLetter {
            cmd: word.to_string(),
            remote,
            reply: tx,
        })
        .await
        .is_err()
    {
        return;
    }
    if let Ok(text) = rx.await {
        // One write: kazoo reads the reply with a single recv.
        let _ = wr.write_all(text.as_bytes()).await;
    }
    let _ = wr.shutdown().await;
}
