//! A minimal ZooKeeper client for the chaos checker: it exposes what a checker needs and the
//! usual clients hide (the reply header's xid and zxid), and it never retries on its own.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::proto::{op, xid, Acl, ConnectRequest, Reader, Stat, Writer};

pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

pub struct Conn {
    stream: TcpStream,
    next_xid: i32,
    pub session: i64,
    pub addr: SocketAddr,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Conn {
    /// A new session on `addr`, telling the server the last zxid this client saw (a server
    /// behind it must refuse, as ZooKeeper does).
    pub async fn connect(
        addr: SocketAddr,
        last_zxid_seen: i64,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let work = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let hello = ConnectRequest::new_session(10_000, last_zxid_seen).framed();
            stream.write_all(&hello).await?;
            let body = read_frame(&mut stream).await?;
            let mut r = Reader::new(&body);
            let _proto = r.int().map_err(|_| bad("handshake"))?;
            let _timeout = r.int().map_err(|_| bad("handshake"))?;
            let session = r.long().map_err(|_| bad("handshake"))?;
            if session == 0 {
                return Err(bad("session refused"));
            }
            Ok(Conn {
                stream,
                next_xid: 1,
                session,
                addr,
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "handshake")))
    }

    /// Send a request without waiting for its reply; returns its xid.
    pub async fn send(&mut self, opcode: i32, body: &[u8]) -> io::Result<i32> {
        let x = self.next_xid;
        self.next_xid += 1;
        let mut w = Writer::frame();
        w.int(x).int(opcode);
        w.buf.extend_from_slice(body);
        self.stream.write_all(&w.into_frame()).await?;
        Ok(x)
    }

    /// The next reply (notifications and pings skipped).
    pub async fn recv(&mut self) -> io::Result<Reply> {
        loop {
            let body = read_frame(&mut self.stream).await?;
            let mut r = Reader::new(&body);
            let (x, z, e) = (
                r.int().map_err(|_| bad("reply header"))?,
                r.long().map_err(|_| bad("reply header"))?,
                r.int().map_err(|_| bad("reply header"))?,
            );
            if x == xid::NOTIFICATION || x == xid::PING {
                continue;
            }
            return Ok(Reply {
                xid: x,
                zxid: z,
                err: e,
                body: r.rest().to_vec(),
            });
        }
    }

    pub async fn close(mut self) {
        let _ = self.send(op::CLOSE_SESSION, &[]).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.recv()).await;
    }
}

async fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if !(0..=16 << 20).contains(&n) {
        return Err(bad("frame length"));
    }
    let mut b = vec![0; n as usize];
    s.read_exact(&mut b).await?;
    Ok(b)
}

pub fn create_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(Some(data)).acls(&[Acl {
        perms: 31,
        scheme: "world".into(),
        id: "anyone".into(),
    }]);
    w.int(0);
    w.buf
}

pub fn set_body(path: &str, data: &[u8], version: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(Some(data)).int(version);
    w.buf
}

pub fn path_body(path: &str, watch: Option<bool>) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path);
    if let Some(b) = watch {
        w.boolean(b);
    }
    w.buf
}

pub fn stat_of(body: &[u8]) -> Option<Stat> {
    Reader::new(body).stat().ok()
}

/// getData's reply: data and stat.
pub fn data_of(body: &[u8]) -> Option<(Vec<u8>, Stat)> {
    let mut r = Reader::new(body);
    let d = r.buffer().ok()?.unwrap_or_default();
    Some((d, r.stat().ok()?))
}
