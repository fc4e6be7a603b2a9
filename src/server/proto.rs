//! Jute encoding, ZooKeeper's records, opcodes and error codes: the one border between bytes
//! and typed requests. Pure and fuzzable: decoding checks every length against the bytes that
//! remain, so no input can make it panic or allocate more than the frame it was given.
//!
//! Layouts follow `shared/docs/zookeeper-protocol.md` sections 1-2.

use std::fmt;

/// Default `jute.maxbuffer`: frames above this close the connection.
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// KeeperException.Code values the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum ErrorCode {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    MarshallingError = -5,
    Unimplemented = -6,
    BadArguments = -8,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidAcl = -114,
    AuthFailed = -115,
    NotReadOnly = -119,
    NoWatcher = -121,
    ReconfigDisabled = -123,
    QuotaExceeded = -125,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(c: i32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match c {
            0 => Ok,
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -8 => BadArguments,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -119 => NotReadOnly,
            -121 => NoWatcher,
            -123 => ReconfigDisabled,
            -125 => QuotaExceeded,
            _ => return None,
        })
    }
}

/// Opcodes (request `type`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Special xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type DResult<T> = Result<T, DecodeError>;

/// Reads jute primitives from a byte slice; every read is bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "need {n} bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn int(&mut self) -> DResult<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn long(&mut self) -> DResult<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn boolean(&mut self) -> DResult<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// `buffer`: length −1 is null, distinct from empty.
    pub fn buffer(&mut self) -> DResult<Option<Vec<u8>>> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }

    /// `ustring`: null (−1) decodes as None. Invalid UTF-8 is replaced, as Java does.
    pub fn ustring(&mut self) -> DResult<Option<String>> {
        Ok(self.buffer()?.map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }))
    }

    /// A string where null is read as empty (paths, schemes).
    pub fn string(&mut self) -> DResult<String> {
        Ok(self.ustring()?.unwrap_or_default())
    }

    /// `vector<T>`: −1 = null (read as empty). Each element takes at least `min_size` bytes, so
    /// a count larger than the remaining bytes allow is rejected before allocating.
    pub fn vector<T>(
        &mut self,
        min_size: usize,
        mut f: impl FnMut(&mut Reader<'a>) -> DResult<T>,
    ) -> DResult<Vec<T>> {
        let n = self.int()?;
        if n < 0 {
            return Ok(Vec::new());
        }
        let n = n as usize;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(DecodeError(format!(
                "vector of {n} elements cannot fit in {} bytes",
                self.remaining()
            )));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }

    pub fn strings(&mut self) -> DResult<Vec<String>> {
        self.vector(4, |r| r.string())
    }

    pub fn acl(&mut self) -> DResult<Acl> {
        Ok(Acl {
            perms: self.int()?,
            scheme: self.string()?,
            id: self.string()?,
        })
    }

    pub fn acls(&mut self) -> DResult<Vec<Acl>> {
        self.vector(12, |r| r.acl())
    }

    /// The bytes of an encoded ACL list, stepped over without decoding it: a snapshot's znodes
    /// mostly repeat the previous one's list, which is then shared rather than built again.
    pub fn acls_raw(&mut self) -> DResult<&'a [u8]> {
        let start = self.pos;
        let n = self.int()?;
        for _ in 0..n.max(0) {
            self.take(4)?;
            for _ in 0..2 {
                let len = self.int()?;
                self.take(len.max(0) as usize)?;
            }
        }
        Ok(&self.buf[start..self.pos])
    }

    pub fn stat(&mut self) -> DResult<Stat> {
        Ok(Stat {
            czxid: self.long()?,
            mzxid: self.long()?,
            ctime: self.long()?,
            mtime: self.long()?,
            version: self.int()?,
            cversion: self.int()?,
            aversion: self.int()?,
            ephemeral_owner: self.long()?,
            data_length: self.int()?,
            num_children: self.int()?,
            pzxid: self.long()?,
        })
    }
}

/// Writes jute primitives.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer that reserves 4 bytes for the frame length; finish with [`Writer::into_frame`].
    pub fn frame() -> Writer {
        Writer {
            buf: vec![0, 0, 0, 0],
        }
    }

    pub fn into_frame(mut self) -> Vec<u8> {
        let n = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.buf
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.int(-1),
            Some(b) => {
                self.int(b.len() as i32);
                self.buf.extend_from_slice(b);
                self
            }
        }
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buffer(Some(s.as_bytes()))
    }

    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.int(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }

    pub fn acl(&mut self, a: &Acl) -> &mut Self {
        self.int(a.perms).string(&a.scheme).string(&a.id)
    }

    pub fn acls(&mut self, v: &[Acl]) -> &mut Self {
        self.int(v.len() as i32);
        for a in v {
            self.acl(a);
        }
        self
    }

    pub fn stat(&mut self, s: &Stat) -> &mut Self {
        self.long(s.czxid)
            .long(s.mzxid)
            .long(s.ctime)
            .long(s.mtime)
            .int(s.version)
            .int(s.cversion)
            .int(s.aversion)
            .long(s.ephemeral_owner)
            .int(s.data_length)
            .int(s.num_children)
            .long(s.pzxid)
    }

    pub fn reply_header(&mut self, xid: i32, zxid: i64, err: i32) -> &mut Self {
        self.int(xid).long(zxid).int(err)
    }
}

pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub fn world_all() -> Acl {
        Acl {
            perms: perms::ALL,
            scheme: "world".into(),
            id: "anyone".into(),
        }
    }
}

/// The 68-byte Stat, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// The session handshake request (no RequestHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// None when the client did not send the optional readOnly byte.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// A request for a new session, as a client sends it first.
    pub fn new_session(timeout_ms: i32, last_zxid_seen: i64) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            timeout: timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    }

    /// The encoded request with its length prefix, ready to write to a socket.
    pub fn framed(&self) -> Vec<u8> {
        let body = self.encode();
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    }

    pub fn decode(b: &[u8]) -> DResult<ConnectRequest> {
        let mut r = Reader::new(b);
        let req = ConnectRequest {
            protocol_version: r.int()?,
            last_zxid_seen: r.long()?,
            timeout: r.int()?,
            session_id: r.long()?,
            passwd: r.buffer()?.unwrap_or_default(),
            read_only: if r.remaining() > 0 {
                Some(r.boolean()?)
            } else {
                None
            },
        };
        Ok(req)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.int(self.protocol_version)
            .long(self.last_zxid_seen)
            .int(self.timeout)
            .long(self.session_id)
            .buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.boolean(ro);
        }
        w.buf
    }
}

/// The handshake reply; `read_only` is written only if the client sent it.
pub fn encode_connect_response(
    timeout: i32,
    session_id: i64,
    passwd: &[u8; 16],
    read_only: Option<bool>,
) -> Vec<u8> {
    let mut w = Writer::frame();
    w.int(0).int(timeout).long(session_id).buffer(Some(passwd));
    // Only for a client that sent the flag (older clients read no more): whether this is a
    // read-only session.
    if let Some(ro) = read_only {
        w.boolean(ro);
    }
    w.into_frame()
}

/// Create modes (flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(f: i32) -> Option<CreateMode> {
        use CreateMode::*;
        Some(match f {
            0 => Persistent,
            1 => Ephemeral,
            2 => PersistentSequential,
            3 => EphemeralSequential,
            4 => Container,
            5 => PersistentWithTtl,
            6 => PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn flags(self) -> i32 {
        self as i32
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// One write inside a multi, or a top-level write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Create {
        /// 1, 15, 19 or 21: decides the response shape.
        opcode: i32,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        flags: i32,
        /// −1 for non-TTL opcodes.
        ttl: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// One read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData { path: String },
    GetChildren { path: String },
}

/// A decoded client request (after the RequestHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Write(WriteOp),
    Multi(Vec<WriteOp>),
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    MultiRead(Vec<ReadOp>),
    Reconfig(super::dynconfig::ReconfigRequest),
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
    /// A SASL token (`GetSASLRequest`), answered by the connection's exchange ([`super::sasl`]).
    Sasl {
        token: Vec<u8>,
    },
    /// A top-level check, a notification, or an opcode we do not know: −6 then close.
    Unimplemented(i32),
}

impl Request {
    /// Whether this request goes through the write path (log, apply, zxid).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Write(_) | Request::Multi(_) | Request::CloseSession
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

fn decode_create(r: &mut Reader, opcode: i32) -> DResult<WriteOp> {
    let path = r.string()?;
    let data = r.buffer()?;
    let acl = r.acls()?;
    let flags = r.int()?;
    let ttl = if opcode == op::CREATE_TTL {
        r.long()?
    } else {
        -1
    };
    Ok(WriteOp::Create {
        opcode,
        path,
        data,
        acl,
        flags,
        ttl,
    })
}

fn decode_write(r: &mut Reader, opcode: i32) -> DResult<Option<WriteOp>> {
    Ok(Some(match opcode {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            decode_create(r, opcode)?
        }
        op::DELETE => WriteOp::Delete {
            path: r.string()?,
            version: r.int()?,
        },
        op::SET_DATA => WriteOp::SetData {
            path: r.string()?,
            data: r.buffer()?,
            version: r.int()?,
        },
        op::SET_ACL => WriteOp::SetAcl {
            path: r.string()?,
            acl: r.acls()?,
            version: r.int()?,
        },
        op::CHECK => WriteOp::Check {
            path: r.string()?,
            version: r.int()?,
        },
        _ => return Ok(None),
    }))
}

/// Decode the body of a request of type `opcode`.
pub fn decode_request(opcode: i32, body: &[u8]) -> DResult<Request> {
    let mut r = Reader::new(body);
    let req = match opcode {
        op::CREATE
        | op::CREATE2
        | op::CREATE_CONTAINER
        | op::CREATE_TTL
        | op::DELETE
        | op::SET_DATA
        | op::SET_ACL => Request::Write(decode_write(&mut r, opcode)?.expect("write opcode")),
        op::CHECK | op::NOTIFICATION => Request::Unimplemented(opcode),
        op::EXISTS => Request::Exists {
            path: r.string()?,
            watch: r.boolean()?,
        },
        op::GET_DATA => Request::GetData {
            path: r.string()?,
            watch: r.boolean()?,
        },
        op::GET_ACL => Request::GetAcl { path: r.string()? },
        op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
            path: r.string()?,
            watch: r.boolean()?,
            with_stat: opcode == op::GET_CHILDREN2,
        },
        op::SYNC => Request::Sync { path: r.string()? },
        op::PING => Request::Ping,
        op::MULTI => {
            let mut ops = Vec::new();
            loop {
                let t = r.int()?;
                let done = r.boolean()?;
                let _err = r.int()?;
                if done {
                    break;
                }
                match decode_write(&mut r, t)? {
                    Some(w) => ops.push(w),
                    None => return Err(DecodeError(format!("op {t} is not allowed in multi"))),
                }
                if ops.len() > 1_000_000 {
                    return Err(DecodeError("too many ops in multi".into()));
                }
            }
            Request::Multi(ops)
        }
        op::MULTI_READ => {
            let mut ops = Vec::new();
            loop {
                let t = r.int()?;
                let done = r.boolean()?;
                let _err = r.int()?;
                if done {
                    break;
                }
                let path = r.string()?;
                let _watch = r.boolean()?;
                ops.push(match t {
                    op::GET_DATA => ReadOp::GetData { path },
                    op::GET_CHILDREN => ReadOp::GetChildren { path },
                    _ => return Err(DecodeError(format!("op {t} is not allowed in multiRead"))),
                });
            }
            Request::MultiRead(ops)
        }
        op::RECONFIG => Request::Reconfig(super::dynconfig::ReconfigRequest {
            joining: r.ustring()?,
            leaving: r.ustring()?,
            new_members: r.ustring()?,
            from_config: r.long()?,
        }),
        op::CHECK_WATCHES | op::REMOVE_WATCHES => {
            let path = r.string()?;
            let kind = r.int()?;
            if opcode == op::CHECK_WATCHES {
                Request::CheckWatches { path, kind }
            } else {
                Request::RemoveWatches { path, kind }
            }
        }
        op::AUTH => {
            let _type = r.int()?;
            Request::Auth {
                scheme: r.string()?,
                auth: r.buffer()?.unwrap_or_default(),
            }
        }
        op::SET_WATCHES | op::SET_WATCHES2 => {
            let mut s = SetWatches {
                relative_zxid: r.long()?,
                data: r.strings()?,
                exist: r.strings()?,
                child: r.strings()?,
                ..Default::default()
            };
            if opcode == op::SET_WATCHES2 {
                s.persistent = r.strings()?;
                s.persistent_recursive = r.strings()?;
            }
            Request::SetWatches(s)
        }
        op::GET_EPHEMERALS => Request::GetEphemerals {
            prefix: r.string()?,
        },
        op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: r.string()? },
        op::ADD_WATCH => Request::AddWatch {
            path: r.string()?,
            mode: r.int()?,
        },
        op::WHO_AM_I => Request::WhoAmI,
        op::CLOSE_SESSION => Request::CloseSession,
        op::SASL => Request::Sasl {
            token: r.buffer()?.unwrap_or_default(),
        },
        other => Request::Unimplemented(other),
    };
    Ok(req)
}

/// Encode a request body (the inverse of [`decode_request`]); used by tests, the log and
/// forwarding.
pub fn encode_write(w: &mut Writer, op: &WriteOp) {
    match op {
        WriteOp::Create {
            opcode,
            path,
            data,
            acl,
            flags,
            ttl,
        } => {
            w.string(path).buffer(data.as_deref()).acls(acl).int(*flags);
            if *opcode == op::CREATE_TTL {
                w.long(*ttl);
            }
        }
        WriteOp::Delete { path, version } => {
            w.string(path).int(*version);
        }
        WriteOp::SetData {
            path,
            data,
            version,
        } => {
            w.string(path).buffer(data.as_deref()).int(*version);
        }
        WriteOp::SetAcl { path, acl, version } => {
            w.string(path).acls(acl).int(*version);
        }
        WriteOp::Check { path, version } => {
            w.string(path).int(*version);
        }
    }
}

pub fn write_opcode(op: &WriteOp) -> i32 {
    match op {
        WriteOp::Create { opcode, .. } => *opcode,
        WriteOp::Delete { .. } => op::DELETE,
        WriteOp::SetData { .. } => op::SET_DATA,
        WriteOp::SetAcl { .. } => op::SET_ACL,
        WriteOp::Check { .. } => op::CHECK,
    }
}

/// Encode a multi body.
pub fn encode_multi(w: &mut Writer, ops: &[WriteOp]) {
    for o in ops {
        w.int(write_opcode(o)).boolean(false).int(-1);
        encode_write(w, o);
    }
    w.int(-1).boolean(true).int(-1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn null_and_empty_buffers_differ() {
        let mut w = Writer::new();
        w.buffer(None).buffer(Some(b""));
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.buffer().unwrap(), None);
        assert_eq!(r.buffer().unwrap(), Some(vec![]));
    }

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 7,
            timeout: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        assert_eq!(req.encode().len(), 45);
        assert_eq!(ConnectRequest::decode(&req.encode()).unwrap(), req);
        req.read_only = None;
        assert_eq!(req.encode().len(), 44);
        assert_eq!(ConnectRequest::decode(&req.encode()).unwrap(), req);
    }

    #[test]
    fn connect_response_is_41_bytes_framed_with_read_only() {
        let f = encode_connect_response(30000, 5, &[1; 16], Some(false));
        assert_eq!(f.len(), 41);
        assert_eq!(&f[..4], &37i32.to_be_bytes());
        assert_eq!(encode_connect_response(30000, 5, &[1; 16], None).len(), 40);
    }

    #[test]
    fn a_huge_vector_count_is_refused_without_allocating() {
        let mut w = Writer::new();
        w.string("/a").int(i32::MAX).int(0);
        assert!(decode_request(op::SET_ACL, &w.buf).is_err());
    }

    #[test]
    fn multi_round_trips_and_rejects_reads() {
        let ops = vec![
            WriteOp::Create {
                opcode: op::CREATE,
                path: "/a".into(),
                data: None,
                acl: vec![Acl::world_all()],
                flags: 1,
                ttl: -1,
            },
            WriteOp::SetData {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                version: 0,
            },
            WriteOp::Check {
                path: "/".into(),
                version: -1,
            },
        ];
        let mut w = Writer::new();
        encode_multi(&mut w, &ops);
        assert_eq!(
            decode_request(op::MULTI, &w.buf).unwrap(),
            Request::Multi(ops)
        );
        let mut w = Writer::new();
        w.int(op::GET_DATA)
            .boolean(false)
            .int(-1)
            .string("/a")
            .boolean(false);
        w.int(-1).boolean(true).int(-1);
        assert!(decode_request(op::MULTI, &w.buf).is_err());
    }

    #[test]
    fn top_level_check_and_unknown_opcodes_are_unimplemented() {
        assert_eq!(
            decode_request(op::CHECK, &[]).unwrap(),
            Request::Unimplemented(13)
        );
        assert_eq!(
            decode_request(999, &[]).unwrap(),
            Request::Unimplemented(999)
        );
    }

    fn arb_acl() -> impl Strategy<Value = Acl> {
        (any::<i32>(), "[a-z]{0,6}", ".{0,12}").prop_map(|(perms, scheme, id)| Acl {
            perms,
            scheme,
            id,
        })
    }

    fn arb_write() -> impl Strategy<Value = WriteOp> {
        let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        prop_oneof![
            (
                prop_oneof![Just(1), Just(15), Just(19), Just(21)],
                ".{0,20}",
                data.clone(),
                proptest::collection::vec(arb_acl(), 0..3),
                any::<i32>(),
                any::<i64>()
            )
                .prop_map(|(opcode, path, data, acl, flags, ttl)| WriteOp::Create {
                    opcode,
                    path,
                    data,
                    acl,
                    flags,
                    ttl: if opcode == 21 { ttl } else { -1 },
                }),
            (".{0,20}", any::<i32>()).prop_map(|(path, version)| WriteOp::Delete { path, version }),
            (".{0,20}", data, any::<i32>()).prop_map(|(path, data, version)| WriteOp::SetData {
                path,
                data,
                version
            }),
            (
                ".{0,20}",
                proptest::collection::vec(arb_acl(), 0..3),
                any::<i32>()
            )
                .prop_map(|(path, acl, version)| WriteOp::SetAcl {
                    path,
                    acl,
                    version
                }),
        ]
    }

    proptest! {
        #[test]
        fn writes_round_trip(op in arb_write()) {
            let mut w = Writer::new();
            encode_write(&mut w, &op);
            prop_assert_eq!(decode_request(write_opcode(&op), &w.buf).unwrap(), Request::Write(op));
        }

        #[test]
        fn multis_round_trip(ops in proptest::collection::vec(arb_write(), 0..5)) {
            let mut w = Writer::new();
            encode_multi(&mut w, &ops);
            prop_assert_eq!(decode_request(op::MULTI, &w.buf).unwrap(), Request::Multi(ops));
        }

        #[test]
        fn decoding_never_panics(opcode in -20i32..120, body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(opcode, &body);
            let _ = ConnectRequest::decode(&body);
        }
    }
}
