//! The replicated state machine: the znode tree and the session table.
//!
//! [`State::apply`] is a pure function of (state, [`Entry`]): no clock (time comes from the
//! entry), no randomness (session ids and passwords come from the entry), and only ordered maps,
//! so every replica that applies the same log reaches the same tree, the same results and the
//! same watch events. Validation order, error codes and Stat rules follow
//! `shared/docs/zookeeper-protocol.md` sections 4, 5 and 8.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};

use super::proto::{perms, Acl, CreateMode, ErrorCode, Stat, WriteOp};

/// ephemeralOwner marker of a container node (clients are shown 0).
pub const CONTAINER_OWNER: i64 = i64::MIN; // 0x8000_0000_0000_0000
/// High byte of ephemeralOwner marking a TTL node; the low 56 bits hold the TTL.
pub const TTL_OWNER_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;
/// Largest TTL accepted (2^40 − 1 ms).
pub const MAX_TTL: i64 = (1 << 40) - 1;

/// An identity a connection holds: (`digest`, `user:hash`), (`ip`, `127.0.0.1`), (`super`, ``).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthId {
    pub scheme: String,
    pub id: String,
}

/// What gets replicated: one transaction, stamped by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub zxid: i64,
    /// The leader's wall clock when it accepted the request (ms since the epoch).
    pub time_ms: i64,
    pub session_id: i64,
    /// The caller's auth ids at the time of the request (for ACL checks and `auth` fixup).
    pub auth: Vec<AuthId>,
    pub txn: Txn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
        passwd: [u8; 16],
    },
    CloseSession,
    Write(WriteOp),
    Multi(Vec<WriteOp>),
    /// Delete an empty container or expired TTL node (proposed by the leader's reaper).
    Reap {
        path: String,
    },
    /// A request the leader refused but Apache still turns into a txn (a disabled reconfig, a
    /// top-level check): it only takes a zxid. Holds the error code.
    Error(i32),
    /// A committed reconfig: `/zookeeper/config` gets these `server.N=…` lines and
    /// `version=<this txn's zxid>` (the ensemble's membership follows it, see
    /// `server::ensemble`).
    ///
    /// `static_config`: the first leader publishing zoo.cfg's servers while reconfig is off;
    /// Apache shows that config as `version=0` with mzxid 0.
    Reconfig {
        servers: String,
        static_config: bool,
    },
}

/// Result of one write op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `opcode` is the create opcode; 1 answers with the path only, 15/19/21 with path + Stat.
    Create {
        opcode: i32,
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    SetAcl {
        stat: Stat,
    },
    Check,
    /// A reconfig: the new config text and the Stat of `/zookeeper/config`.
    Config {
        data: Vec<u8>,
        stat: Stat,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    Session,
    Single(Result<OpResult, ErrorCode>),
    /// Ok: every op's result. Err: the index and code of the first failure.
    Multi(Result<Vec<OpResult>, (usize, ErrorCode)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub path: String,
}

/// What applying an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub zxid: i64,
    pub result: TxnResult,
    /// Watch triggers, in order, all carrying this entry's zxid.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Znode {
    /// None = null data, distinct from empty.
    pub data: Option<Vec<u8>>,
    /// Shared with every znode that has the same list ([`intern_acl`]).
    pub acl: Arc<[Acl]>,
    /// Stored fields: cversion counts child creations; ephemeral_owner holds raw markers.
    pub stat: Stat,
    pub children: BTreeSet<String>,
}

impl Znode {
    fn new(data: Option<Vec<u8>>, acl: Arc<[Acl]>, zxid: i64, time: i64, owner: i64) -> Znode {
        Znode {
            data,
            acl,
            stat: Stat {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                data_length: 0,
                num_children: 0,
                pzxid: zxid,
            },
            children: BTreeSet::new(),
        }
    }

    /// The Stat clients see.
    pub fn visible_stat(&self) -> Stat {
        let n = self.children.len() as i32;
        let mut s = self.stat;
        s.cversion = self.stat.cversion.wrapping_mul(2).wrapping_sub(n);
        s.num_children = n;
        s.data_length = self.data.as_ref().map_or(0, |d| d.len() as i32);
        s.ephemeral_owner = visible_owner(self.stat.ephemeral_owner);
        s
    }

    /// The session owning this ephemeral, if it is one (not a container or TTL node).
    pub fn ephemeral_session(&self) -> Option<i64> {
        let o = self.stat.ephemeral_owner;
        (o != 0 && visible_owner(o) != 0).then_some(o)
    }

    pub fn is_container(&self) -> bool {
        self.stat.ephemeral_owner == CONTAINER_OWNER
    }

    pub fn ttl(&self) -> Option<i64> {
        let o = self.stat.ephemeral_owner;
        (o != CONTAINER_OWNER && o & TTL_OWNER_MASK == TTL_OWNER_MASK)
            .then_some(o & !TTL_OWNER_MASK)
    }
}

fn visible_owner(o: i64) -> i64 {
    if o == CONTAINER_OWNER || (o & TTL_OWNER_MASK) == TTL_OWNER_MASK {
        0
    } else {
        o
    }
}

/// The one shared copy of an ACL list. Most znodes carry one of a few lists (Kafka's all carry
/// `world:anyone`), so a znode holds a 16-byte pointer rather than a list of its own, as Apache's
/// ReferenceCountedACLCache does. Interning changes no value, so what the cache holds never
/// shows in a replica's state; lists no znode uses any more are dropped as the cache grows.
pub fn intern_acl(acl: Vec<Acl>) -> Arc<[Acl]> {
    struct Cache {
        lists: BTreeMap<Vec<Acl>, Weak<[Acl]>>,
        sweep_at: usize,
    }
    static CACHE: Mutex<Cache> = Mutex::new(Cache {
        lists: BTreeMap::new(),
        sweep_at: 1024,
    });
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(shared) = c.lists.get(&acl).and_then(Weak::upgrade) {
        return shared;
    }
    if c.lists.len() >= c.sweep_at {
        c.lists.retain(|_, w| w.strong_count() > 0);
        c.sweep_at = (c.lists.len() * 2).max(1024);
    }
    let shared: Arc<[Acl]> = Arc::from(acl.as_slice());
    c.lists.insert(acl, Arc::downgrade(&shared));
    shared
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
    pub passwd: [u8; 16],
}

/// The replicated state: tree, sessions, and the last applied zxid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub nodes: BTreeMap<String, Znode>,
    /// session → its ephemeral paths.
    pub ephemerals: BTreeMap<i64, BTreeSet<String>>,
    pub sessions: BTreeMap<i64, SessionEntry>,
    pub last_zxid: i64,
    /// TTL nodes allowed (zoo.cfg `extendedTypesEnabled`); the same on every replica.
    pub extended_types: bool,
    /// `DigestAuthenticationProvider.superDigest` id (`super:hash`), if configured.
    pub super_digest: Option<String>,
    /// Hard quota limits refuse writes (zoo.cfg `enforceQuota`); the same on every replica.
    pub enforce_quota: bool,
    /// ACL schemes registered beyond digest and ip (`authProvider.N`): `sasl`.
    pub auth_schemes: BTreeSet<String>,
}

/// The zoo.cfg settings the state machine obeys. Every member must have the same (zkherd
/// renders one zoo.cfg shape for all): they decide what a write does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeOptions {
    pub extended_types: bool,
    pub super_digest: Option<String>,
    pub enforce_quota: bool,
    pub auth_schemes: BTreeSet<String>,
}

/// Where quotas live (Apache's `Quotas`): `/zookeeper/quota<path>/zookeeper_limits` holds a
/// quota's limits, `.../zookeeper_stats` what the subtree uses.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const QUOTA_LIMITS: &str = "zookeeper_limits";
pub const QUOTA_STATS: &str = "zookeeper_stats";

fn data_len(d: &Option<Vec<u8>>) -> i64 {
    d.as_ref().map_or(0, |d| d.len() as i64)
}

/// For `/zookeeper/quota<p>/zookeeper_stats`: `<p>`.
fn quota_target_of_stat_node(path: &str) -> Option<String> {
    let rest = path.strip_prefix(QUOTA_ROOT)?;
    let target = rest.strip_suffix(&format!("/{QUOTA_STATS}"))?;
    target.starts_with('/').then(|| target.to_string())
}

/// Apache's StatsTrack text: `count=C,bytes=B`, then (when there are other keys) `=` and
/// `;key=value` in key order. Parsing splits on runs of `,` and `;`; an empty value is -1,
/// a missing key reads as -1.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsTrack(BTreeMap<String, i64>);

impl StatsTrack {
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut m = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            let v = if v.is_empty() {
                Ok(-1)
            } else {
                v.trim().parse::<i64>()
            };
            if let Ok(v) = v {
                m.insert(k.to_string(), v);
            }
        }
        StatsTrack(m)
    }

    pub fn get(&self, key: &str) -> i64 {
        self.0.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        self.0.insert(key.to_string(), value);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let others: Vec<_> = self
            .0
            .iter()
            .filter(|(k, _)| *k != "count" && *k != "bytes")
            .collect();
        if !others.is_empty() {
            s.push('=');
            for (k, v) in others {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s.into_bytes()
    }
}

/// Parent path of `p` ("" → root for "/x").
fn parent_of(p: &str) -> Option<&str> {
    let i = p.rfind('/')?;
    Some(if i == 0 { "/" } else { &p[..i] })
}

fn child_name(p: &str) -> &str {
    &p[p.rfind('/').map_or(0, |i| i + 1)..]
}

/// Paths that can never be deleted.
const PROTECTED: &[&str] = &["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// Full path validation (PathUtils.validatePath), on UTF-16 code units as Java does.
pub fn validate_path(p: &str) -> Result<(), ErrorCode> {
    let bad = Err(ErrorCode::BadArguments);
    if p.is_empty() || !p.starts_with('/') {
        return bad;
    }
    if p.len() == 1 {
        return Ok(());
    }
    if p.ends_with('/') {
        return bad;
    }
    for seg in p[1..].split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad;
        }
    }
    for u in p.encode_utf16() {
        let bad_char = u == 0
            || (0x0001..=0x001f).contains(&u)
            || (0x007f..=0x009f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u);
        if bad_char {
            return bad;
        }
    }
    Ok(())
}

/// What a committed `Txn::Reconfig` at `zxid` writes to `/zookeeper/config`: its text and its
/// version (also the znode's mzxid).
pub fn config_text(servers: &str, static_config: bool, zxid: i64) -> (String, i64) {
    let version = if static_config { 0 } else { zxid };
    let text = if servers.is_empty() {
        format!("version={version:x}")
    } else {
        format!("{servers}\nversion={version:x}")
    };
    (text, version)
}

impl State {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    pub fn new(opts: TreeOptions) -> State {
        let TreeOptions {
            extended_types,
            super_digest,
            enforce_quota,
            auth_schemes,
        } = opts;
        let mut nodes = BTreeMap::new();
        let mut root = Znode::new(Some(vec![]), intern_acl(vec![Acl::world_all()]), 0, 0, 0);
        root.children.insert("zookeeper".into());
        let mut zk = Znode::new(Some(vec![]), intern_acl(vec![Acl::world_all()]), 0, 0, 0);
        zk.children.insert("quota".into());
        zk.children.insert("config".into());
        let quota = Znode::new(Some(vec![]), intern_acl(vec![Acl::world_all()]), 0, 0, 0);
        let mut config = Znode::new(
            Some(vec![]),
            intern_acl(vec![Acl {
                perms: perms::READ,
                scheme: "world".into(),
                id: "anyone".into(),
            }]),
            0,
            0,
            0,
        );
        config.stat.aversion = -1;
        nodes.insert("/".into(), root);
        nodes.insert("/zookeeper".into(), zk);
        nodes.insert("/zookeeper/quota".into(), quota);
        nodes.insert("/zookeeper/config".into(), config);
        State {
            nodes,
            ephemerals: BTreeMap::new(),
            sessions: BTreeMap::new(),
            last_zxid: 0,
            extended_types,
            super_digest,
            enforce_quota,
            auth_schemes,
        }
    }

    /// Look a path up; `""` is the root alias, as in ZooKeeper.
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(if path.is_empty() { "/" } else { path })
    }

    /// Node count as `srvr` reports it (ZooKeeper counts the root twice: "/" and its "" alias).
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Σ(path length + data length), as `mntr`'s approximate_data_size.
    pub fn approximate_data_size(&self) -> usize {
        self.nodes
            .iter()
            .map(|(p, n)| if p == "/" { 0 } else { p.len() } + n.data.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
            + 1
    }

    /// checkACL: does a caller with `auth` hold `required` on `acl`?
    pub fn check_acl(acl: &[Acl], auth: &[AuthId], required: i32) -> bool {
        if acl.is_empty() || auth.iter().any(|a| a.scheme == "super") {
            return true;
        }
        acl.iter().any(|e| {
            e.perms & required != 0
                && ((e.scheme == "world" && e.id == "anyone")
                    || auth.iter().any(|a| {
                        a.scheme == e.scheme
                            && match e.scheme.as_str() {
                                "digest" => a.id == e.id,
                                "ip" => ip_matches(&e.id, &a.id),
                                // SASLAuthenticationProvider.matches: the same name, or the
                                // SASL user `super`. (An entry of this scheme exists only
                                // where the provider is registered: fixup refuses it
                                // otherwise.)
                                "sasl" => a.id == e.id || a.id == "super",
                                // X509AuthenticationProvider.matches: the same subject.
                                "x509" => a.id == e.id,
                                _ => false,
                            }
                    }))
        })
    }

    /// ACL fixup for create and setACL.
    fn fixup_acl(
        acl: &[Acl],
        auth: &[AuthId],
        schemes: &BTreeSet<String>,
    ) -> Result<Arc<[Acl]>, ErrorCode> {
        // Ids whose provider authenticates (Apache's isAuthenticated): digest, and sasl
        // when SASLAuthenticationProvider is registered; never ip or super.
        let authenticated = |scheme: &str| {
            scheme == "digest"
                || ((scheme == "sasl" || scheme == "x509") && schemes.contains(scheme))
        };
        let mut out: Vec<Acl> = Vec::new();
        let push = |out: &mut Vec<Acl>, a: Acl| {
            if !out.contains(&a) {
                out.push(a);
            }
        };
        for a in acl {
            match a.scheme.as_str() {
                "world" if a.id == "anyone" => push(&mut out, a.clone()),
                "auth" => {
                    let ids: Vec<&AuthId> =
                        auth.iter().filter(|i| authenticated(&i.scheme)).collect();
                    if ids.is_empty() {
                        return Err(ErrorCode::InvalidAcl);
                    }
                    for i in ids {
                        push(
                            &mut out,
                            Acl {
                                perms: a.perms,
                                scheme: i.scheme.clone(),
                                id: i.id.clone(),
                            },
                        );
                    }
                }
                "digest" if a.id.matches(':').count() == 1 => push(&mut out, a.clone()),
                "ip" if parse_cidr(&a.id).is_some() => push(&mut out, a.clone()),
                "sasl" if schemes.contains("sasl") && super::sasl::valid_sasl_id(&a.id) => {
                    push(&mut out, a.clone())
                }
                "x509" if schemes.contains("x509") && super::tls::valid_x500_name(&a.id) => {
                    push(&mut out, a.clone())
                }
                _ => return Err(ErrorCode::InvalidAcl),
            }
        }
        if out.is_empty() {
            return Err(ErrorCode::InvalidAcl);
        }
        Ok(intern_acl(out))
    }

    /// Apply one entry. Entries must come in zxid order.
    pub fn apply(&mut self, e: &Entry) -> Applied {
        debug_assert!(
            e.zxid > self.last_zxid,
            "zxid {:#x} after {:#x}",
            e.zxid,
            self.last_zxid
        );
        self.last_zxid = e.zxid;
        let mut events = Vec::new();
        let result = match &e.txn {
            Txn::CreateSession { timeout_ms, passwd } => {
                self.sessions.insert(
                    e.session_id,
                    SessionEntry {
                        timeout_ms: *timeout_ms,
                        passwd: *passwd,
                    },
                );
                TxnResult::Session
            }
            Txn::CloseSession => {
                self.sessions.remove(&e.session_id);
                let paths = self.ephemerals.remove(&e.session_id).unwrap_or_default();
                // Deepest first, so an ephemeral's (impossible) children never block it.
                for p in paths.iter().rev() {
                    if self.nodes.contains_key(p) {
                        self.remove_node(p, e.zxid, &mut events, &mut Undo::disabled());
                    }
                }
                TxnResult::Session
            }
            Txn::Reap { path } => {
                let reapable = self.get(path).is_some_and(|n| {
                    n.children.is_empty()
                        && ((n.is_container() && n.stat.cversion > 0)
                            || n.ttl().is_some_and(|ttl| e.time_ms - n.stat.mtime > ttl))
                });
                if reapable {
                    self.remove_node(path, e.zxid, &mut events, &mut Undo::disabled());
                    TxnResult::Single(Ok(OpResult::Delete))
                } else {
                    TxnResult::Single(Err(ErrorCode::BadArguments))
                }
            }
            Txn::Error(code) => TxnResult::Single(Err(
                ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError)
            )),
            Txn::Reconfig {
                servers,
                static_config,
            } => {
                let (text, version) = config_text(servers, *static_config, e.zxid);
                let path = "/zookeeper/config";
                match self.nodes.get_mut(path) {
                    Some(n) => {
                        // As Apache: version stays -1, mzxid is the config's version.
                        n.data = Some(text.clone().into_bytes());
                        n.stat.version = -1;
                        n.stat.mzxid = version;
                        n.stat.mtime = e.time_ms;
                        let stat = n.visible_stat();
                        events.push(Event {
                            kind: EventType::NodeDataChanged,
                            path: path.into(),
                        });
                        TxnResult::Single(Ok(OpResult::Config {
                            data: text.into_bytes(),
                            stat,
                        }))
                    }
                    None => TxnResult::Single(Err(ErrorCode::SystemError)),
                }
            }
            Txn::Write(op) => {
                // A single op validates before it mutates: nothing to undo.
                let mut undo = Undo::disabled();
                let r = self.apply_op(op, e, &mut events, &mut undo);
                TxnResult::Single(r)
            }
            Txn::Multi(ops) => {
                let mut undo = Undo::enabled();
                let mut results = Vec::with_capacity(ops.len());
                let mut failed = None;
                for (i, op) in ops.iter().enumerate() {
                    match self.apply_op(op, e, &mut events, &mut undo) {
                        Ok(r) => results.push(r),
                        Err(code) => {
                            failed = Some((i, code));
                            break;
                        }
                    }
                }
                match failed {
                    None => TxnResult::Multi(Ok(results)),
                    Some(f) => {
                        self.rollback(undo);
                        events.clear();
                        TxnResult::Multi(Err(f))
                    }
                }
            }
        };
        Applied {
            zxid: e.zxid,
            result,
            events,
        }
    }

    fn session_live(&self, e: &Entry) -> bool {
        self.sessions.contains_key(&e.session_id)
    }

    fn apply_op(
        &mut self,
        op: &WriteOp,
        e: &Entry,
        events: &mut Vec<Event>,
        undo: &mut Undo,
    ) -> Result<OpResult, ErrorCode> {
        match op {
            WriteOp::Create {
                opcode,
                path,
                data,
                acl,
                flags,
                ttl,
            } => self.create(*opcode, path, data, acl, *flags, *ttl, e, events, undo),
            WriteOp::Delete { path, version } => {
                if !path.contains('/') || path.contains('\0') || PROTECTED.contains(&path.as_str())
                {
                    return Err(ErrorCode::BadArguments);
                }
                if !self.session_live(e) {
                    return Err(ErrorCode::SessionExpired);
                }
                let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
                let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
                if !Self::check_acl(&parent.acl, &e.auth, perms::DELETE) {
                    return Err(ErrorCode::NoAuth);
                }
                let node = self.get(path).ok_or(ErrorCode::NoNode)?;
                if *version != -1 && *version != node.stat.version {
                    return Err(ErrorCode::BadVersion);
                }
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                undo.removed(self, path);
                self.remove_node(path, e.zxid, events, undo);
                Ok(OpResult::Delete)
            }
            WriteOp::SetData {
                path,
                data,
                version,
            } => {
                validate_path(path)?;
                if !self.session_live(e) {
                    return Err(ErrorCode::SessionExpired);
                }
                let node = self.get(path).ok_or(ErrorCode::NoNode)?;
                if !Self::check_acl(&node.acl, &e.auth, perms::WRITE) {
                    return Err(ErrorCode::NoAuth);
                }
                if *version != -1 && *version != node.stat.version {
                    return Err(ErrorCode::BadVersion);
                }
                let bytes_diff = data_len(data) - data_len(&node.data);
                self.quota_check(path, bytes_diff, 0, undo)?;
                undo.changed(self, path);
                let node = self.nodes.get_mut(path).expect("checked");
                node.data = data.clone();
                node.stat.version = node.stat.version.wrapping_add(1);
                node.stat.mzxid = e.zxid;
                node.stat.mtime = e.time_ms;
                let stat = node.visible_stat();
                events.push(Event {
                    kind: EventType::NodeDataChanged,
                    path: path.clone(),
                });
                self.quota_account(path, bytes_diff, 0, undo);
                Ok(OpResult::SetData { stat })
            }
            WriteOp::SetAcl { path, acl, version } => {
                validate_path(path)?;
                if !self.session_live(e) {
                    return Err(ErrorCode::SessionExpired);
                }
                let fixed = Self::fixup_acl(acl, &e.auth, &self.auth_schemes)?;
                let node = self.get(path).ok_or(ErrorCode::NoNode)?;
                if !Self::check_acl(&node.acl, &e.auth, perms::ADMIN) {
                    return Err(ErrorCode::NoAuth);
                }
                if *version != -1 && *version != node.stat.aversion {
                    return Err(ErrorCode::BadVersion);
                }
                undo.changed(self, path);
                let node = self.nodes.get_mut(path).expect("checked");
                node.acl = fixed;
                node.stat.aversion = node.stat.aversion.wrapping_add(1);
                Ok(OpResult::SetAcl {
                    stat: node.visible_stat(),
                })
            }
            WriteOp::Check { path, version } => {
                validate_path(path)?;
                if !self.session_live(e) {
                    return Err(ErrorCode::SessionExpired);
                }
                let node = self.get(path).ok_or(ErrorCode::NoNode)?;
                if !Self::check_acl(&node.acl, &e.auth, perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                if *version != -1 && *version != node.stat.version {
                    return Err(ErrorCode::BadVersion);
                }
                Ok(OpResult::Check)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        opcode: i32,
        path: &str,
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        flags: i32,
        ttl: i64,
        e: &Entry,
        events: &mut Vec<Event>,
        undo: &mut Undo,
    ) -> Result<OpResult, ErrorCode> {
        let mode = CreateMode::from_flags(flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() {
            if !self.extended_types {
                return Err(ErrorCode::Unimplemented);
            }
            if ttl <= 0 || ttl > MAX_TTL {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        if !self.session_live(e) {
            return Err(ErrorCode::SessionExpired);
        }
        if !path.contains('/') || path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let fixed = Self::fixup_acl(acl, &e.auth, &self.auth_schemes)?;
        let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !Self::check_acl(&parent.acl, &e.auth, perms::CREATE) {
            return Err(ErrorCode::NoAuth);
        }
        let final_path = if mode.is_sequential() {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_string()
        };
        validate_path(&final_path)?;
        if self.nodes.contains_key(&final_path) || final_path == "/" {
            return Err(ErrorCode::NodeExists);
        }
        if parent.ephemeral_session().is_some() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        self.quota_check(&final_path, data_len(data), 1, undo)?;
        let owner = if mode.is_ephemeral() {
            e.session_id
        } else if mode == CreateMode::Container {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            TTL_OWNER_MASK | ttl
        } else {
            0
        };
        let parent_key = if parent_path.is_empty() {
            "/"
        } else {
            parent_path
        }
        .to_string();
        undo.created(self, &final_path, &parent_key);
        let parent = self.nodes.get_mut(&parent_key).expect("checked");
        parent.stat.cversion = parent.stat.cversion.wrapping_add(1);
        parent.stat.pzxid = e.zxid;
        parent.children.insert(child_name(&final_path).to_string());
        let node = Znode::new(data.clone(), fixed, e.zxid, e.time_ms, owner);
        let stat = node.visible_stat();
        if mode.is_ephemeral() {
            self.ephemerals
                .entry(e.session_id)
                .or_default()
                .insert(final_path.clone());
        }
        self.nodes.insert(final_path.clone(), node);
        // A quota's stats node starts with the subtree's figures (Apache's
        // updateQuotaForPath); then this node counts for the quota over it, if any.
        if let Some(quoted) = quota_target_of_stat_node(&final_path) {
            self.quota_recount(&quoted, &final_path);
        }
        self.quota_account(&final_path, data_len(data), 1, undo);
        events.push(Event {
            kind: EventType::NodeCreated,
            path: final_path.clone(),
        });
        events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_key,
        });
        Ok(OpResult::Create {
            opcode,
            path: final_path,
            stat,
        })
    }

    /// Remove an existing node (no checks), count it out of its quota, record its events.
    fn remove_node(&mut self, path: &str, zxid: i64, events: &mut Vec<Event>, undo: &mut Undo) {
        let Some(node) = self.nodes.remove(path) else {
            return;
        };
        self.quota_account(path, -data_len(&node.data), -1, undo);
        if let Some(s) = node.ephemeral_session() {
            if let Some(set) = self.ephemerals.get_mut(&s) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
        }
        let parent_path = parent_of(path).unwrap_or("/").to_string();
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.remove(child_name(path));
            parent.stat.pzxid = zxid;
        }
        events.push(Event {
            kind: EventType::NodeDeleted,
            path: path.to_string(),
        });
        events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_path,
        });
    }

    /// The path with a quota that covers `path` (itself or its nearest ancestor whose
    /// `/zookeeper/quota<p>/zookeeper_limits` exists), as Apache's quota trie finds it; a
    /// quota on `/` counts nothing, as in Apache.
    fn quota_prefix(&self, path: &str) -> Option<String> {
        // No quota at all (the usual case): one lookup, not one per ancestor.
        if self
            .nodes
            .get(QUOTA_ROOT)
            .is_none_or(|q| q.children.is_empty())
        {
            return None;
        }
        let mut p = path;
        while !p.is_empty() && p != "/" {
            if self
                .nodes
                .contains_key(&format!("{QUOTA_ROOT}{p}/{QUOTA_LIMITS}"))
            {
                return Some(p.to_string());
            }
            p = parent_of(p).unwrap_or("");
        }
        None
    }

    /// Apache's checkQuota (with `enforceQuota`): refuse a write that takes the covering
    /// quota's count or bytes past a hard limit. Soft limits only warn there; here they do
    /// nothing.
    /// The usage compared is the one before the txn: Apache checks against the committed tree,
    /// so earlier ops of the same multi do not count.
    fn quota_check(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
        undo: &Undo,
    ) -> Result<(), ErrorCode> {
        if !self.enforce_quota {
            return Ok(());
        }
        let Some(q) = self.quota_prefix(path) else {
            return Ok(());
        };
        let node_data = |p: String| self.nodes.get(&p).and_then(|n| n.data.clone());
        let Some(limits) = node_data(format!("{QUOTA_ROOT}{q}/{QUOTA_LIMITS}")) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(&limits);
        let check_count =
            count_diff != 0 && (limits.get("count") > -1 || limits.get("countHardLimit") > -1);
        let check_bytes =
            bytes_diff != 0 && (limits.get("bytes") > -1 || limits.get("byteHardLimit") > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let stats_path = format!("{QUOTA_ROOT}{q}/{QUOTA_STATS}");
        let before = match undo.data_before(&stats_path) {
            Some(d) => d.clone(),
            None => node_data(stats_path),
        };
        let Some(current) = before else {
            return Ok(());
        };
        let current = StatsTrack::parse(&current);
        let over = |now: &str, diff: i64, hard: &str| {
            let hard = limits.get(hard);
            hard > -1 && current.get(now) + diff > hard
        };
        if (check_count && over("count", count_diff, "countHardLimit"))
            || (check_bytes && over("bytes", bytes_diff, "byteHardLimit"))
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        Ok(())
    }

    /// Add the diffs to the stats node of the quota covering `path`. As in Apache the stats
    /// node's data changes but its stat does not (no new version, no watch event).
    fn quota_account(&mut self, path: &str, bytes_diff: i64, count_diff: i64, undo: &mut Undo) {
        let Some(q) = self.quota_prefix(path) else {
            return;
        };
        let stats_path = format!("{QUOTA_ROOT}{q}/{QUOTA_STATS}");
        if !self.nodes.contains_key(&stats_path) {
            return;
        }
        undo.changed(self, &stats_path);
        let node = self.nodes.get_mut(&stats_path).expect("checked");
        let mut st = StatsTrack::parse(node.data.as_deref().unwrap_or_default());
        st.set("count", st.get("count") + count_diff);
        st.set("bytes", st.get("bytes") + bytes_diff);
        node.data = Some(st.encode());
    }

    /// Set the stats node at `stats_path` to the count and bytes of the subtree at `quoted`.
    fn quota_recount(&mut self, quoted: &str, stats_path: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![quoted.to_string()];
        while let Some(p) = stack.pop() {
            let Some(n) = self.nodes.get(&p) else {
                continue;
            };
            count += 1;
            bytes += data_len(&n.data);
            for c in &n.children {
                stack.push(format!("{}/{c}", p.trim_end_matches('/')));
            }
        }
        if let Some(n) = self.nodes.get_mut(stats_path) {
            let mut st = StatsTrack::default();
            st.set("count", count);
            st.set("bytes", bytes);
            n.data = Some(st.encode());
        }
    }

    /// Undo a failed multi's effects, newest first.
    fn rollback(&mut self, undo: Undo) {
        for op in undo.ops.into_iter().rev() {
            match op {
                UndoOp::Created {
                    path,
                    parent,
                    parent_stat,
                } => {
                    if let Some(n) = self.nodes.remove(&path) {
                        self.unindex_ephemeral(&path, &n);
                    }
                    if let Some(p) = self.nodes.get_mut(&parent) {
                        p.children.remove(child_name(&path));
                        p.stat = parent_stat;
                    }
                }
                UndoOp::Removed {
                    path,
                    node,
                    parent,
                    parent_stat,
                } => {
                    if let Some(s) = node.ephemeral_session() {
                        self.ephemerals.entry(s).or_default().insert(path.clone());
                    }
                    if let Some(p) = self.nodes.get_mut(&parent) {
                        p.children.insert(child_name(&path).to_string());
                        p.stat = parent_stat;
                    }
                    self.nodes.insert(path, node);
                }
                UndoOp::Changed {
                    path,
                    data,
                    acl,
                    stat,
                } => {
                    if let Some(n) = self.nodes.get_mut(&path) {
                        n.data = data;
                        n.acl = acl;
                        n.stat = stat;
                    }
                }
            }
        }
    }

    fn unindex_ephemeral(&mut self, path: &str, n: &Znode) {
        if let Some(s) = n.ephemeral_session() {
            if let Some(set) = self.ephemerals.get_mut(&s) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
        }
    }

    /// Paths of containers and TTL nodes that are due for reaping at `now_ms` (leader side).
    pub fn reapable(&self, now_ms: i64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                n.children.is_empty()
                    && ((n.is_container() && n.stat.cversion > 0)
                        || n.ttl().is_some_and(|ttl| now_ms - n.stat.mtime > ttl))
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Number of descendants of `path` (not counting itself).
    pub fn descendants(&self, path: &str) -> usize {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.as_str() != "/")
            .count()
    }
}

/// What a multi changed, to undo on failure. Records only what an op touched (never a parent's
/// children set), so a create under a parent with many children stays O(log n).
struct Undo {
    enabled: bool,
    ops: Vec<UndoOp>,
}

enum UndoOp {
    Created {
        path: String,
        parent: String,
        parent_stat: Stat,
    },
    /// A deleted node (it had no children) and its parent's stat before.
    Removed {
        path: String,
        node: Znode,
        parent: String,
        parent_stat: Stat,
    },
    Changed {
        path: String,
        data: Option<Vec<u8>>,
        acl: Arc<[Acl]>,
        stat: Stat,
    },
}

impl Undo {
    fn enabled() -> Undo {
        Undo {
            enabled: true,
            ops: Vec::new(),
        }
    }

    fn disabled() -> Undo {
        Undo {
            enabled: false,
            ops: Vec::new(),
        }
    }

    /// The data `path` had before this txn changed it, if it did.
    fn data_before(&self, path: &str) -> Option<&Option<Vec<u8>>> {
        self.ops.iter().find_map(|op| match op {
            UndoOp::Changed { path: p, data, .. } if p == path => Some(data),
            _ => None,
        })
    }

    fn parent_stat(state: &State, parent: &str) -> Stat {
        state.nodes.get(parent).map(|p| p.stat).unwrap_or_default()
    }

    fn created(&mut self, state: &State, path: &str, parent: &str) {
        if self.enabled {
            self.ops.push(UndoOp::Created {
                path: path.to_string(),
                parent: parent.to_string(),
                parent_stat: Self::parent_stat(state, parent),
            });
        }
    }

    fn removed(&mut self, state: &State, path: &str) {
        if !self.enabled {
            return;
        }
        if let Some(node) = state.nodes.get(path) {
            let parent = parent_of(path).unwrap_or("/").to_string();
            self.ops.push(UndoOp::Removed {
                path: path.to_string(),
                node: node.clone(),
                parent_stat: Self::parent_stat(state, &parent),
                parent,
            });
        }
    }

    fn changed(&mut self, state: &State, path: &str) {
        if !self.enabled {
            return;
        }
        if let Some(n) = state.nodes.get(path) {
            self.ops.push(UndoOp::Changed {
                path: path.to_string(),
                data: n.data.clone(),
                acl: n.acl.clone(),
                stat: n.stat,
            });
        }
    }
}

/// Parse `a.b.c.d[/bits]` or an IPv6 address with optional `/bits`.
fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn ip_matches(acl_id: &str, caller: &str) -> bool {
    let (Some((net, bits)), Ok(ip)) = (parse_cidr(acl_id), caller.parse::<std::net::IpAddr>())
    else {
        return false;
    };
    match (net, ip) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::proto::op;

    const S: i64 = 0x100;

    struct T {
        st: State,
        zxid: i64,
    }

    impl T {
        fn new() -> T {
            let mut t = T {
                st: State::new(TreeOptions::default()),
                zxid: 0,
            };
            t.run(Txn::CreateSession {
                timeout_ms: 30000,
                passwd: [0; 16],
            });
            t
        }

        fn run(&mut self, txn: Txn) -> Applied {
            self.zxid += 1;
            self.st.apply(&Entry {
                zxid: self.zxid,
                time_ms: 1000 + self.zxid,
                session_id: S,
                auth: vec![AuthId {
                    scheme: "ip".into(),
                    id: "127.0.0.1".into(),
                }],
                txn,
            })
        }

        fn create(&mut self, path: &str, flags: i32) -> Result<OpResult, ErrorCode> {
            match self
                .run(Txn::Write(WriteOp::Create {
                    opcode: op::CREATE2,
                    path: path.into(),
                    data: Some(b"d".to_vec()),
                    acl: vec![Acl::world_all()],
                    flags,
                    ttl: -1,
                }))
                .result
            {
                TxnResult::Single(r) => r,
                other => panic!("{other:?}"),
            }
        }

        fn write(&mut self, op: WriteOp) -> Result<OpResult, ErrorCode> {
            match self.run(Txn::Write(op)).result {
                TxnResult::Single(r) => r,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stats_track_reads_and_writes_apaches_format() {
        let t = StatsTrack::parse(b"count=3,bytes=-1=;byteHardLimit=20;countHardLimit=-1");
        assert_eq!(t.get("count"), 3);
        assert_eq!(t.get("bytes"), -1);
        assert_eq!(t.get("byteHardLimit"), 20);
        assert_eq!(t.get("missing"), -1);
        assert_eq!(
            t.encode(),
            b"count=3,bytes=-1=;byteHardLimit=20;countHardLimit=-1".to_vec()
        );
        let mut s = StatsTrack::parse(b"count=2,bytes=5");
        s.set("count", 3);
        assert_eq!(s.encode(), b"count=3,bytes=5".to_vec());
        // Empty values read as -1; garbage is skipped, not a panic in apply.
        assert_eq!(StatsTrack::parse(b"count=,bytes=x;;=").get("count"), -1);
        assert_eq!(
            StatsTrack::parse(b"").encode(),
            b"count=-1,bytes=-1".to_vec()
        );
    }

    #[test]
    fn quota_counts_follow_creates_deletes_and_sets_and_roll_back_with_a_multi() {
        let mut t = T::new();
        t.create("/q", 0).unwrap();
        t.create("/zookeeper/quota/q", 0).unwrap();
        t.write(WriteOp::Create {
            opcode: op::CREATE2,
            path: "/zookeeper/quota/q/zookeeper_limits".into(),
            data: Some(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3".to_vec()),
            acl: vec![Acl::world_all()],
            flags: 0,
            ttl: -1,
        })
        .unwrap();
        t.create("/zookeeper/quota/q/zookeeper_stats", 0).unwrap();
        let stats = |t: &T| {
            let n = t.st.get("/zookeeper/quota/q/zookeeper_stats").unwrap();
            (
                String::from_utf8(n.data.clone().unwrap()).unwrap(),
                n.stat.version,
            )
        };
        // `/q` with data "d" (the helper's).
        assert_eq!(stats(&t), ("count=1,bytes=1".into(), 0));
        t.create("/q/a", 0).unwrap();
        assert_eq!(stats(&t), ("count=2,bytes=2".into(), 0));
        // Not enforced by default: over the hard limit is allowed and counted.
        t.create("/q/b", 0).unwrap();
        t.create("/q/c", 0).unwrap();
        assert_eq!(stats(&t).0, "count=4,bytes=4");
        t.st.enforce_quota = true;
        assert_eq!(t.create("/q/d", 0), Err(ErrorCode::QuotaExceeded));
        // A failed multi leaves the figures as they were.
        let r = t.run(Txn::Multi(vec![
            WriteOp::Delete {
                path: "/q/c".into(),
                version: -1,
            },
            WriteOp::Create {
                opcode: op::CREATE,
                path: "/q/e".into(),
                data: None,
                acl: vec![Acl::world_all()],
                flags: 0,
                ttl: -1,
            },
        ]));
        assert!(matches!(r.result, TxnResult::Multi(_)), "{:?}", r.result);
        assert_eq!(stats(&t).0, "count=4,bytes=4");
        t.write(WriteOp::Delete {
            path: "/q/c".into(),
            version: -1,
        })
        .unwrap();
        assert_eq!(stats(&t), ("count=3,bytes=3".into(), 0));
    }

    #[test]
    fn the_initial_tree_shows_zookeepers_special_stats() {
        let st = State::new(TreeOptions::default());
        assert_eq!(st.get("/").unwrap().visible_stat().cversion, -1);
        assert_eq!(st.get("/zookeeper").unwrap().visible_stat().cversion, -2);
        assert_eq!(
            st.get("/zookeeper/config").unwrap().visible_stat().aversion,
            -1
        );
        assert_eq!(st.node_count(), 5);
        assert_eq!(st.get("").unwrap().visible_stat().num_children, 1);
    }

    #[test]
    fn sequential_suffix_counts_every_creation_and_ignores_deletes() {
        let mut t = T::new();
        t.create("/abc", 0).unwrap();
        let name = |r: Result<OpResult, ErrorCode>| match r.unwrap() {
            OpResult::Create { path, .. } => path,
            o => panic!("{o:?}"),
        };
        assert_eq!(name(t.create("/abc/def", 2)), "/abc/def0000000000");
        assert_eq!(name(t.create("/abc/def", 2)), "/abc/def0000000001");
        t.create("/abc/defg", 0).unwrap();
        t.write(WriteOp::Delete {
            path: "/abc/defg".into(),
            version: -1,
        })
        .unwrap();
        assert_eq!(name(t.create("/abc/def", 2)), "/abc/def0000000003");
        // Visible cversion = creations + deletions.
        assert_eq!(t.st.get("/abc").unwrap().visible_stat().cversion, 5);
    }

    #[test]
    fn create_validation_order_matches_zookeeper() {
        let mut t = T::new();
        assert_eq!(
            t.create("/x", 9),
            Err(ErrorCode::BadArguments),
            "flags first"
        );
        assert_eq!(
            t.create("/x", 5),
            Err(ErrorCode::Unimplemented),
            "TTL disabled"
        );
        assert_eq!(t.create("noslash", 0), Err(ErrorCode::BadArguments));
        assert_eq!(
            t.write(WriteOp::Create {
                opcode: op::CREATE,
                path: "/missing/x".into(),
                data: None,
                acl: vec![],
                flags: 0,
                ttl: -1
            }),
            Err(ErrorCode::InvalidAcl),
            "ACL before NoNode"
        );
        assert_eq!(t.create("/missing/x", 0), Err(ErrorCode::NoNode));
        assert_eq!(
            t.create("/a/", 0),
            Err(ErrorCode::NoNode),
            "parent /a missing"
        );
        t.create("/a", 0).unwrap();
        assert_eq!(t.create("/a/", 0), Err(ErrorCode::BadArguments));
        assert!(t.create("/a/", 2).is_ok(), "sequential /a/ is valid");
        assert_eq!(t.create("/", 0), Err(ErrorCode::NodeExists));
        t.create("/e", 1).unwrap();
        assert_eq!(t.create("/e/c", 0), Err(ErrorCode::NoChildrenForEphemerals));
        assert_eq!(
            t.create("/e", 0),
            Err(ErrorCode::NodeExists),
            "exists before ephemeral parent"
        );
        assert_eq!(
            t.create("/a/\u{1F600}", 0),
            Err(ErrorCode::BadArguments),
            "emoji"
        );
    }

    #[test]
    fn failed_writes_consume_a_zxid() {
        let mut t = T::new();
        let a = t.run(Txn::Write(WriteOp::Delete {
            path: "/nope".into(),
            version: -1,
        }));
        assert_eq!(a.result, TxnResult::Single(Err(ErrorCode::NoNode)));
        assert_eq!(t.st.last_zxid, 2);
    }

    #[test]
    fn delete_checks_in_order_and_protects_special_nodes() {
        let mut t = T::new();
        let del = |t: &mut T, p: &str, v| {
            t.write(WriteOp::Delete {
                path: p.into(),
                version: v,
            })
        };
        assert_eq!(del(&mut t, "/zookeeper", -1), Err(ErrorCode::BadArguments));
        assert_eq!(del(&mut t, "/", -1), Err(ErrorCode::BadArguments));
        assert_eq!(del(&mut t, "/a/b", -1), Err(ErrorCode::NoNode));
        t.create("/a", 0).unwrap();
        t.create("/a/b", 0).unwrap();
        assert_eq!(del(&mut t, "/a", 5), Err(ErrorCode::BadVersion));
        assert_eq!(del(&mut t, "/a", 0), Err(ErrorCode::NotEmpty));
        assert_eq!(del(&mut t, "/a/b", 0), Ok(OpResult::Delete));
    }

    #[test]
    fn set_data_and_set_acl_update_the_right_stat_fields() {
        let mut t = T::new();
        t.create("/a", 0).unwrap();
        let czxid = t.st.get("/a").unwrap().stat.czxid;
        let r = t
            .write(WriteOp::SetData {
                path: "/a".into(),
                data: Some(b"xyz".to_vec()),
                version: 0,
            })
            .unwrap();
        let OpResult::SetData { stat } = r else {
            panic!()
        };
        assert_eq!((stat.version, stat.data_length, stat.czxid), (1, 3, czxid));
        assert_eq!(stat.mzxid, t.zxid);
        let before = t.st.get("/a").unwrap().stat;
        let r = t
            .write(WriteOp::SetAcl {
                path: "/a".into(),
                acl: vec![Acl::world_all()],
                version: 0,
            })
            .unwrap();
        let OpResult::SetAcl { stat } = r else {
            panic!()
        };
        assert_eq!(stat.aversion, 1);
        assert_eq!((stat.mzxid, stat.mtime), (before.mzxid, before.mtime));
        assert_eq!(
            t.write(WriteOp::SetAcl {
                path: "/nope".into(),
                acl: vec![],
                version: -1
            }),
            Err(ErrorCode::InvalidAcl),
            "ACL fixup before NoNode"
        );
    }

    #[test]
    fn a_failed_multi_changes_nothing_and_names_the_failing_op() {
        let mut t = T::new();
        t.create("/a", 0).unwrap();
        let before = t.st.clone();
        let a = t.run(Txn::Multi(vec![
            WriteOp::Create {
                opcode: op::CREATE,
                path: "/a/s-".into(),
                data: None,
                acl: vec![Acl::world_all()],
                flags: 3,
                ttl: -1,
            },
            WriteOp::Delete {
                path: "/a".into(),
                version: -1,
            },
        ]));
        assert_eq!(a.result, TxnResult::Multi(Err((1, ErrorCode::NotEmpty))));
        assert!(a.events.is_empty());
        let mut after = t.st.clone();
        after.last_zxid = before.last_zxid;
        assert_eq!(after, before, "rolled back, ephemeral index included");
        // The sequence counter did not advance either.
        let r = t.create("/a/s-", 2).unwrap();
        assert!(matches!(r, OpResult::Create { path, .. } if path == "/a/s-0000000000"));
    }

    #[test]
    fn a_failed_multi_undoes_set_data_delete_and_create_in_reverse() {
        let mut t = T::new();
        t.create("/a", 0).unwrap();
        t.create("/a/b", 1).unwrap();
        let before = t.st.clone();
        let a = t.run(Txn::Multi(vec![
            WriteOp::SetData {
                path: "/a".into(),
                data: Some(b"changed".to_vec()),
                version: -1,
            },
            WriteOp::Delete {
                path: "/a/b".into(),
                version: -1,
            },
            WriteOp::Create {
                opcode: op::CREATE,
                path: "/a/b".into(),
                data: None,
                acl: vec![Acl::world_all()],
                flags: 0,
                ttl: -1,
            },
            WriteOp::SetAcl {
                path: "/a".into(),
                acl: vec![Acl::world_all()],
                version: 0,
            },
            WriteOp::Check {
                path: "/a".into(),
                version: 42,
            },
        ]));
        assert_eq!(a.result, TxnResult::Multi(Err((4, ErrorCode::BadVersion))));
        let mut after = t.st.clone();
        after.last_zxid = before.last_zxid;
        assert_eq!(after, before);
    }

    #[test]
    fn later_multi_ops_see_earlier_ones() {
        let mut t = T::new();
        let a = t.run(Txn::Multi(vec![
            WriteOp::Create {
                opcode: op::CREATE,
                path: "/k".into(),
                data: None,
                acl: vec![Acl::world_all()],
                flags: 1,
                ttl: -1,
            },
            WriteOp::SetData {
                path: "/k".into(),
                data: Some(b"v".to_vec()),
                version: 0,
            },
            WriteOp::Check {
                path: "/k".into(),
                version: 1,
            },
        ]));
        assert!(
            matches!(a.result, TxnResult::Multi(Ok(ref v)) if v.len() == 3),
            "{a:?}"
        );
    }

    #[test]
    fn close_session_deletes_its_ephemerals_with_events() {
        let mut t = T::new();
        t.create("/p", 0).unwrap();
        t.create("/p/e", 1).unwrap();
        let a = t.run(Txn::CloseSession);
        assert!(t.st.get("/p/e").is_none());
        assert!(t.st.ephemerals.is_empty() && t.st.sessions.is_empty());
        assert_eq!(
            a.events,
            vec![
                Event {
                    kind: EventType::NodeDeleted,
                    path: "/p/e".into()
                },
                Event {
                    kind: EventType::NodeChildrenChanged,
                    path: "/p".into()
                }
            ]
        );
        // A write on the closed session is refused.
        assert_eq!(t.create("/q", 0), Err(ErrorCode::SessionExpired));
    }

    #[test]
    fn digest_and_ip_acls_are_enforced_and_super_passes() {
        let alice = AuthId {
            scheme: "digest".into(),
            id: "alice:hash".into(),
        };
        let acl = vec![Acl {
            perms: perms::READ,
            scheme: "digest".into(),
            id: "alice:hash".into(),
        }];
        assert!(State::check_acl(
            &acl,
            std::slice::from_ref(&alice),
            perms::READ
        ));
        assert!(!State::check_acl(&acl, &[alice], perms::WRITE));
        let ip = AuthId {
            scheme: "ip".into(),
            id: "10.1.2.3".into(),
        };
        let net = vec![Acl {
            perms: perms::ALL,
            scheme: "ip".into(),
            id: "10.1.0.0/16".into(),
        }];
        assert!(State::check_acl(&net, &[ip], perms::READ));
        let other = AuthId {
            scheme: "ip".into(),
            id: "10.2.0.1".into(),
        };
        assert!(!State::check_acl(&net, &[other], perms::READ));
        let sup = AuthId {
            scheme: "super".into(),
            id: "".into(),
        };
        assert!(State::check_acl(&acl, &[sup], perms::ALL));
    }

    #[test]
    fn auth_acl_expands_to_the_callers_digest_ids() {
        let auth = vec![
            AuthId {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            },
            AuthId {
                scheme: "digest".into(),
                id: "bob:h".into(),
            },
        ];
        let fixed = State::fixup_acl(
            &[Acl {
                perms: perms::ALL,
                scheme: "auth".into(),
                id: "".into(),
            }],
            &auth,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(fixed.len(), 1);
        assert_eq!(fixed[0].id, "bob:h");
        assert_eq!(
            State::fixup_acl(
                &[Acl {
                    perms: perms::ALL,
                    scheme: "auth".into(),
                    id: "".into()
                }],
                &auth[..1],
                &BTreeSet::new()
            ),
            Err(ErrorCode::InvalidAcl),
            "ip ids do not count for auth"
        );
    }

    #[test]
    fn containers_are_reaped_only_after_they_had_children() {
        let mut t = T::new();
        t.create("/c", 4).unwrap();
        assert!(t.st.reapable(i64::MAX).is_empty(), "never had a child");
        t.create("/c/x", 0).unwrap();
        t.write(WriteOp::Delete {
            path: "/c/x".into(),
            version: -1,
        })
        .unwrap();
        assert_eq!(t.st.reapable(0), vec!["/c".to_string()]);
        assert_eq!(t.st.get("/c").unwrap().visible_stat().ephemeral_owner, 0);
        t.run(Txn::Reap { path: "/c".into() });
        assert!(t.st.get("/c").is_none());
    }

    #[test]
    fn replicas_applying_the_same_entries_are_identical() {
        let mut a = T::new();
        let mut b = T::new();
        for t in [&mut a, &mut b] {
            t.create("/x", 0).unwrap();
            t.create("/x/s", 3).unwrap();
            t.create("/x/s", 2).unwrap();
            t.run(Txn::CloseSession);
        }
        assert_eq!(a.st, b.st);
    }

    #[test]
    fn descendants_count_excludes_the_node_itself() {
        let mut t = T::new();
        t.create("/a", 0).unwrap();
        t.create("/a/b", 0).unwrap();
        t.create("/a/b/c", 0).unwrap();
        t.create("/ab", 0).unwrap();
        assert_eq!(t.st.descendants("/a"), 2);
        assert_eq!(t.st.descendants("/"), t.st.nodes.len() - 1);
    }
}
