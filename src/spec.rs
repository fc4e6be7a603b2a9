//! `zkherd.toml`: what the user wants, with defaults and validation.
//!
//! Parsing goes through serde with `deny_unknown_fields`, so a typo is an error that names the
//! file, line and column. Values that serde cannot judge (port ranges, node counts, reserved
//! zoo.cfg keys) are checked afterwards with the span kept by [`toml::Spanned`], so those errors
//! point at the offending line as well. CLI flags are applied with [`EnsembleSpec::apply`] and
//! validated the same way, naming the flag instead of a line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The default spec written by `zkherd init`; every line is commented so the file documents itself.
pub const DEFAULT_SPEC_TOML: &str = include_str!("../templates/zkherd.toml");

/// Where a value came from, so an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `file:line:column` in a spec file.
    File {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// A command-line flag such as `--nodes`.
    Flag(String),
    /// A built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, column } => {
                write!(f, "{}:{}:{}", path.display(), line, column)
            }
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => write!(f, "default value"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: Origin, message: String },
    #[error("{origin}: invalid `{key}`: {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}

/// Which program runs a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// zkherd's own ZooKeeper-compatible server, replicating through Raft (no Java needed).
    #[default]
    Builtin,
    /// Real Apache ZooKeeper (`java … QuorumPeerMain zoo.cfg`).
    Apache,
}

/// How builtin nodes run under the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeRuntime {
    /// One child process per node (`zkherd node --config zoo.cfg`): the default.
    #[default]
    Processes,
    /// Tokio tasks inside the supervisor, each node on a runtime of its own (builtin only).
    Tasks,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Builtin => "builtin",
            BackendKind::Apache => "apache",
        })
    }
}

/// When the supervisor restarts a node that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart after any exit the supervisor did not ask for, even a clean one.
    Always,
    /// Restart after a crash or a signal, not after exit code 0.
    #[default]
    OnFailure,
    /// Never restart; a dead node stays down.
    Never,
}

/// The file as written: every field optional, spans kept for validation messages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    ports: RawPorts,
    #[serde(default)]
    zookeeper: RawZookeeper,
    #[serde(default)]
    apache: RawApache,
    #[serde(default)]
    restart: RawRestart,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    security: RawSecurity,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    sasl_users: Option<Spanned<BTreeMap<String, String>>>,
    sasl_client: Option<Spanned<String>>,
    tls: Option<bool>,
    secure_only: Option<Spanned<bool>>,
    client_auth: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    faults: Option<bool>,
    proxy_base: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<Spanned<String>>,
    dir: Option<Spanned<PathBuf>>,
    backend: Option<BackendKind>,
    runtime: Option<Spanned<NodeRuntime>>,
    nodes: Option<Spanned<i64>>,
    observers: Option<Spanned<i64>>,
    host: Option<Spanned<String>>,
    /// Several machines, one member each (or more): `hosts = ["10.0.0.1", ...]`.
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// Several machines, a table per member: `[[cluster.members]] id = 1, host = "10.0.0.1"`.
    members: Option<Spanned<Vec<Spanned<RawMember>>>>,
    listen_on_all_ips: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: Option<Spanned<i64>>,
    host: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    client: Option<Spanned<i64>>,
    quorum: Option<Spanned<i64>>,
    election: Option<Spanned<i64>>,
    admin: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    client: Option<Spanned<i64>>,
    quorum: Option<Spanned<i64>>,
    election: Option<Spanned<i64>>,
    admin: Option<Spanned<i64>>,
    metrics: Option<Spanned<i64>>,
    secure: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZookeeper {
    #[serde(rename = "tickTime")]
    tick_time: Option<Spanned<i64>>,
    #[serde(rename = "initLimit")]
    init_limit: Option<Spanned<i64>>,
    #[serde(rename = "syncLimit")]
    sync_limit: Option<Spanned<i64>>,
    #[serde(default)]
    extra: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApache {
    home: Option<PathBuf>,
    java: Option<PathBuf>,
    heap_mb: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    policy: Option<RestartPolicy>,
    initial_backoff_ms: Option<Spanned<i64>>,
    max_backoff_ms: Option<Spanned<i64>>,
    crash_loop_limit: Option<Spanned<i64>>,
    crash_loop_window_s: Option<Spanned<i64>>,
}

/// Base ports; node `i` (1-based) uses `base + i - 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasePorts {
    pub client: u16,
    pub quorum: u16,
    pub election: u16,
    /// AdminServer base port; `None` turns the AdminServer off.
    pub admin: Option<u16>,
    /// Prometheus metrics base port (`metricsProvider.httpPort`); `None` turns it off.
    #[serde(default)]
    pub metrics: Option<u16>,
    /// TLS client base port (`secureClientPort`), used with `[security] tls`.
    #[serde(default = "default_secure_port")]
    pub secure: u16,
}

fn default_secure_port() -> u16 {
    2281
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApacheSettings {
    /// ZooKeeper install; `None` = auto-detect (`ZOOKEEPER_HOME`, Debian, a release tarball).
    pub home: Option<PathBuf>,
    /// Java executable; `None` = `$JAVA_HOME/bin/java`, then `java` on PATH.
    pub java: Option<PathBuf>,
    /// JVM max heap in MiB (`-Xmx`).
    pub heap_mb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartSettings {
    pub policy: RestartPolicy,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// This many deaths within `crash_loop_window_s`, each soon after a start, mark a node failed.
    pub crash_loop_limit: u32,
    pub crash_loop_window_s: u64,
}

/// One member of an ensemble spread over several hosts, with its ports resolved: the spec's
/// base ports (Apache's conventional 2181/2888/3888 unless `[ports]` says otherwise) on every
/// host, `+k` for the k-th further member sharing a host, and a member's own ports when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// myid.
    pub id: u16,
    /// The member's address; a host name in the spec is resolved when the spec is read.
    pub host: IpAddr,
    /// The host name as the spec gives it, if it gives one.
    #[serde(default)]
    pub name: Option<String>,
    pub observer: bool,
    pub client: u16,
    pub quorum: u16,
    pub election: u16,
    pub admin: Option<u16>,
    #[serde(default)]
    pub metrics: Option<u16>,
}

/// Apache ZooKeeper's conventional ports, the defaults when members name their hosts.
pub const CONVENTIONAL_PORTS: BasePorts = BasePorts {
    client: 2181,
    quorum: 2888,
    election: 3888,
    admin: None,
    metrics: None,
    secure: 2281,
};

/// A validated ensemble specification: defaults filled in, every value in range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    pub name: String,
    /// Cluster directory, absolute once resolved.
    pub dir: PathBuf,
    pub backend: BackendKind,
    /// Child processes (default) or in-process tasks (builtin only).
    #[serde(default)]
    pub runtime: NodeRuntime,
    /// Number of voting members.
    pub nodes: u16,
    /// Number of observers, numbered after the voters.
    pub observers: u16,
    pub host: IpAddr,
    pub ports: BasePorts,
    pub tick_time: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// Extra zoo.cfg lines, passed through verbatim (sorted by key for stable output).
    pub extra: BTreeMap<String, String>,
    pub apache: ApacheSettings,
    pub restart: RestartSettings,
    /// Members on named hosts (`cluster.hosts` / `[[cluster.members]]`), sorted by id; `None`
    /// for the usual one-host ensemble, whose ports are `base + myid - 1` on `host`.
    #[serde(default)]
    pub members: Option<Vec<MemberSpec>>,
    /// `up --member N`: this supervisor renders and runs member N only; the others run
    /// elsewhere (other hosts, other supervisors).
    #[serde(default)]
    pub local_member: Option<u16>,
    /// `cluster.listen_on_all_ips`: every node binds the wildcard address (client port, and
    /// quorum/election ports through zoo.cfg's `quorumListenOnAllIPs`) while its `server.N`
    /// line still names its host, for hosts whose advertised address is not their own (NAT).
    /// Off by default: a node binds its host's address only.
    #[serde(default)]
    pub listen_on_all_ips: bool,
    /// The spec file this came from, if any: the supervisor watches it, `zkherd apply`
    /// reloads it.
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// The command-line overrides of the `up` that made this spec, applied again to a
    /// reloaded file so that flags are not mistaken for edits.
    #[serde(default)]
    pub flags: Overrides,
    /// `up --no-watch`: do not reload the spec file when it changes.
    #[serde(default)]
    pub no_watch: bool,
    /// `up --ui [PORT]`: the supervisor serves the dashboard on 127.0.0.1:PORT (0: any free
    /// port; the URL is written to `<dir>/ui.url`).
    #[serde(default)]
    pub ui: Option<u16>,
    /// `[network]`: links between nodes through the supervisor's proxies, for network faults.
    #[serde(default)]
    pub network: NetworkSettings,
    /// `[security]`: SASL on the client port.
    #[serde(default)]
    pub security: SecuritySettings,
}

/// `[security]`: with `sasl_users`, zkherd renders a JAAS file with those DIGEST-MD5 users
/// (`<dir>/jaas.conf`, the server's; `<dir>/client-jaas.conf`, for clients, as
/// `sasl_client`) and registers SASLAuthenticationProvider, on either backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecuritySettings {
    /// name → password.
    pub sasl_users: BTreeMap<String, String>,
    /// The user the client JAAS file logs in as: `sasl_client`, or the first name.
    pub sasl_client: Option<String>,
    /// A TLS client port per node (`secureClientPort`, `[ports] secure` + i), with a CA, server
    /// and client certificates zkherd mints into `<dir>/tls/` (`up --tls`).
    #[serde(default)]
    pub tls: bool,
    /// No plaintext client port at all (needs `tls`).
    #[serde(default)]
    pub secure_only: bool,
    /// `ssl.clientAuth`: need (default), want or none.
    #[serde(default = "default_client_auth")]
    pub client_auth: String,
}

fn default_client_auth() -> String {
    "need".into()
}

impl Default for SecuritySettings {
    fn default() -> SecuritySettings {
        SecuritySettings {
            sasl_users: BTreeMap::new(),
            sasl_client: None,
            tls: false,
            secure_only: false,
            client_auth: default_client_auth(),
        }
    }
}

impl SecuritySettings {
    /// The client's SASL user and password, when SASL is on.
    pub fn sasl_client(&self) -> Option<(&str, &str)> {
        let name = match &self.sasl_client {
            Some(n) => n.as_str(),
            None => self.sasl_users.keys().next()?.as_str(),
        };
        self.sasl_users
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `[network]`: with `faults`, every node reaches every other through a proxy of the
/// supervisor's on 127.0.0.1 (one per directed pair and port kind), which `zkherd partition`,
/// `isolate`, `heal` and `net delay|loss` control. Off by default: nothing in between.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    pub faults: bool,
    /// First proxy port; default the quorum base + 10000.
    pub proxy_base: Option<u16>,
}

/// At most this many nodes with link proxies (the proxy ports are laid out per pair).
pub const MAX_PROXIED_NODES: u16 = 32;

impl EnsembleSpec {
    /// The first proxy port (see [`NetworkSettings`]).
    pub fn proxy_base(&self) -> u16 {
        self.network
            .proxy_base
            .unwrap_or(self.ports.quorum.saturating_add(10_000))
    }

    /// The proxy port that node `from` dials to reach `to`'s quorum (`election` false) or
    /// election port.
    pub fn proxy_port(&self, from: u16, to: u16, election: bool) -> u16 {
        let n = MAX_PROXIED_NODES;
        self.proxy_base() + ((from - 1) * n + (to - 1)) * 2 + u16::from(election)
    }
}

/// zoo.cfg keys zkherd writes itself; setting them through `extra` would contradict the plan.
const RESERVED_ZOO_CFG_KEYS: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "tickTime",
    "initLimit",
    "syncLimit",
    "admin.enableServer",
    "admin.serverPort",
    "admin.serverAddress",
    "metricsProvider.className",
    "metricsProvider.httpHost",
    "metricsProvider.httpPort",
    "standaloneEnabled",
    "quorumListenOnAllIPs",
];

/// Command-line overrides; `None` leaves the file's (or default) value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub name: Option<String>,
    pub dir: Option<PathBuf>,
    pub backend: Option<BackendKind>,
    /// `--in-process`: run builtin nodes as tasks inside the supervisor.
    pub in_process: bool,
    pub nodes: Option<i64>,
    pub observers: Option<i64>,
    pub base_port: Option<i64>,
    /// `--member N`: run only member N here.
    pub member: Option<u16>,
    /// `--net faults|direct`: link proxies on or off.
    #[serde(default)]
    pub net_faults: Option<bool>,
    /// `--tls`: a TLS client port per node, with minted certificates.
    #[serde(default)]
    pub tls: bool,
}

impl EnsembleSpec {
    /// The spec with nothing but defaults, relative to `base_dir`.
    pub fn defaults(base_dir: &Path) -> EnsembleSpec {
        Self::from_raw(RawSpec::default(), &SourceText::none(), base_dir)
            .expect("defaults are valid")
    }

    /// Parse and validate a spec file. Relative `dir` values are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<EnsembleSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parse spec text; `path` is only used in messages, `base_dir` resolves a relative `dir`.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<EnsembleSpec, SpecError> {
        let source = SourceText {
            path: Some(path.to_path_buf()),
            text,
        };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let origin = match e.span() {
                Some(span) => source.origin(span.start),
                None => Origin::File {
                    path: path.to_path_buf(),
                    line: 1,
                    column: 1,
                },
            };
            SpecError::Parse {
                origin,
                message: e.message().trim().to_string(),
            }
        })?;
        Self::from_raw(raw, &source, base_dir)
    }

    fn from_raw(
        raw: RawSpec,
        src: &SourceText,
        base_dir: &Path,
    ) -> Result<EnsembleSpec, SpecError> {
        let name = match &raw.cluster.name {
            Some(n) => {
                let origin = src.origin(n.span().start);
                let name = n.get_ref().clone();
                validate_name(&name).map_err(|message| SpecError::Invalid {
                    origin,
                    key: "cluster.name".into(),
                    message,
                })?;
                name
            }
            None => "zkherd".to_string(),
        };
        let dir = match &raw.cluster.dir {
            Some(d) => d.get_ref().clone(),
            None => PathBuf::from(".zkherd").join(&name),
        };
        let dir = absolutize(base_dir, &dir);
        let multi_host = raw.cluster.hosts.is_some() || raw.cluster.members.is_some();
        let mut nodes = ranged(src, "cluster.nodes", &raw.cluster.nodes, 3, 1, 255)?;
        let mut observers = ranged(src, "cluster.observers", &raw.cluster.observers, 0, 0, 255)?;
        if multi_host {
            if let Some(h) = &raw.cluster.host {
                return Err(SpecError::Invalid {
                    origin: src.origin(h.span().start),
                    key: "cluster.host".into(),
                    message: "cluster.host is the one address of a single-host ensemble; with \
                              cluster.hosts or [[cluster.members]] each member names its own host"
                        .into(),
                });
            }
        }
        let host = match &raw.cluster.host {
            Some(h) => {
                let origin = src.origin(h.span().start);
                h.get_ref().parse::<IpAddr>().map_err(|_| SpecError::Invalid {
                    origin,
                    key: "cluster.host".into(),
                    message: format!(
                        "{:?} is not an IP address; use 127.0.0.1 (the default) or another local address",
                        h.get_ref()
                    ),
                })?
            }
            None => IpAddr::from([127, 0, 0, 1]),
        };
        // One host: 2181.., 2881.., 3881.. (node i at base + i - 1). Several hosts: Apache's
        // conventional 2181/2888/3888 on each.
        let (quorum_default, election_default) = if multi_host {
            (CONVENTIONAL_PORTS.quorum, CONVENTIONAL_PORTS.election)
        } else {
            (2881, 3881)
        };
        let ports = BasePorts {
            client: ranged(src, "ports.client", &raw.ports.client, 2181, 1, 65535)?,
            quorum: ranged(
                src,
                "ports.quorum",
                &raw.ports.quorum,
                quorum_default,
                1,
                65535,
            )?,
            election: ranged(
                src,
                "ports.election",
                &raw.ports.election,
                election_default,
                1,
                65535,
            )?,
            admin: match ranged(src, "ports.admin", &raw.ports.admin, 0, 0, 65535)? {
                0 => None,
                p => Some(p),
            },
            metrics: match ranged(src, "ports.metrics", &raw.ports.metrics, 0, 0, 65535)? {
                0 => None,
                p => Some(p),
            },
            secure: ranged(src, "ports.secure", &raw.ports.secure, 2281, 1, 65535)?,
        };
        let members = if multi_host {
            let m = resolve_members(&raw.cluster, src, &ports)?;
            let obs = m.iter().filter(|m| m.observer).count() as u16;
            observers = obs;
            nodes = m.len() as u16 - obs;
            if nodes == 0 {
                return Err(SpecError::Invalid {
                    origin: src.origin(members_span(&raw.cluster)),
                    key: "cluster.members".into(),
                    message: "every member is an observer; an ensemble needs at least one voter"
                        .into(),
                });
            }
            Some(m)
        } else {
            None
        };
        let zk = raw.zookeeper;
        let tick_time = ranged(src, "zookeeper.tickTime", &zk.tick_time, 2000, 1, 600_000)?;
        let init_limit = ranged(src, "zookeeper.initLimit", &zk.init_limit, 10, 1, 10_000)?;
        let sync_limit = ranged(src, "zookeeper.syncLimit", &zk.sync_limit, 5, 1, 10_000)?;
        let mut extra = BTreeMap::new();
        for (key, value) in zk.extra {
            let origin = src.origin(key.span().start);
            let key_name = key.into_inner();
            validate_extra_key(&key_name).map_err(|message| SpecError::Invalid {
                origin: origin.clone(),
                key: format!("zookeeper.extra.{key_name}"),
                message,
            })?;
            let rendered = match value.into_inner() {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(SpecError::Invalid {
                        origin,
                        key: format!("zookeeper.extra.{key_name}"),
                        message: format!(
                            "a zoo.cfg value must be a string, number or boolean, not a {}",
                            other.type_str()
                        ),
                    })
                }
            };
            if rendered.contains('\n') {
                return Err(SpecError::Invalid {
                    origin,
                    key: format!("zookeeper.extra.{key_name}"),
                    message: "a zoo.cfg value cannot contain a line break".into(),
                });
            }
            extra.insert(key_name, rendered);
        }
        let apache = ApacheSettings {
            home: raw.apache.home.map(|h| absolutize(base_dir, &h)),
            java: raw.apache.java,
            heap_mb: ranged(src, "apache.heap_mb", &raw.apache.heap_mb, 256, 32, 65_536)?,
        };
        let network = NetworkSettings {
            faults: raw.network.faults.unwrap_or(false),
            proxy_base: match &raw.network.proxy_base {
                Some(_) => Some(ranged(
                    src,
                    "network.proxy_base",
                    &raw.network.proxy_base,
                    0,
                    1,
                    65535 - 2 * i64::from(MAX_PROXIED_NODES * MAX_PROXIED_NODES),
                )?),
                None => None,
            },
        };
        let security = {
            let users = raw
                .security
                .sasl_users
                .as_ref()
                .map(|u| u.get_ref().clone())
                .unwrap_or_default();
            let origin_of = |span: std::ops::Range<usize>| src.origin(span.start);
            if let Some(u) = &raw.security.sasl_users {
                for (name, password) in u.get_ref() {
                    let bad = name.is_empty()
                        || name.chars().any(|c| {
                            c.is_whitespace() || c.is_control() || "{};=\"'\\/#@".contains(c)
                        });
                    if bad {
                        return Err(SpecError::Invalid {
                            origin: origin_of(u.span()),
                            key: "security.sasl_users".into(),
                            message: format!(
                                "user name {name:?} cannot go in a JAAS file; use letters, digits, \
                                 `.`, `_` or `-`"
                            ),
                        });
                    }
                    if password.chars().any(|c| c.is_control()) {
                        return Err(SpecError::Invalid {
                            origin: origin_of(u.span()),
                            key: "security.sasl_users".into(),
                            message: format!("the password of {name} contains a control character"),
                        });
                    }
                }
            }
            if let Some(c) = &raw.security.sasl_client {
                if !users.contains_key(c.get_ref()) {
                    return Err(SpecError::Invalid {
                        origin: origin_of(c.span()),
                        key: "security.sasl_client".into(),
                        message: format!(
                            "{:?} is not one of security.sasl_users ({})",
                            c.get_ref(),
                            users.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
            }
            let client_auth = match &raw.security.client_auth {
                None => default_client_auth(),
                Some(c) => {
                    let v = c.get_ref().to_ascii_lowercase();
                    if !["need", "want", "none"].contains(&v.as_str()) {
                        return Err(SpecError::Invalid {
                            origin: origin_of(c.span()),
                            key: "security.client_auth".into(),
                            message: format!("{:?} is not need, want or none", c.get_ref()),
                        });
                    }
                    v
                }
            };
            let tls = raw.security.tls.unwrap_or(false);
            let secure_only = raw
                .security
                .secure_only
                .as_ref()
                .is_some_and(|s| *s.get_ref());
            if secure_only && !tls {
                return Err(SpecError::Invalid {
                    origin: origin_of(raw.security.secure_only.as_ref().expect("set").span()),
                    key: "security.secure_only".into(),
                    message: "turning the plaintext port off needs tls = true".into(),
                });
            }
            SecuritySettings {
                sasl_users: users,
                sasl_client: raw.security.sasl_client.map(|c| c.into_inner()),
                tls,
                secure_only,
                client_auth,
            }
        };
        let r = raw.restart;
        let restart = RestartSettings {
            policy: r.policy.unwrap_or_default(),
            initial_backoff_ms: ranged(
                src,
                "restart.initial_backoff_ms",
                &r.initial_backoff_ms,
                500,
                0,
                3_600_000,
            )?,
            max_backoff_ms: ranged(
                src,
                "restart.max_backoff_ms",
                &r.max_backoff_ms,
                30_000,
                0,
                3_600_000,
            )?,
            crash_loop_limit: ranged(
                src,
                "restart.crash_loop_limit",
                &r.crash_loop_limit,
                5,
                1,
                1000,
            )?,
            crash_loop_window_s: ranged(
                src,
                "restart.crash_loop_window_s",
                &r.crash_loop_window_s,
                60,
                1,
                86_400,
            )?,
        };
        let runtime_origin = raw
            .cluster
            .runtime
            .as_ref()
            .map(|r| src.origin(r.span().start));
        let spec = EnsembleSpec {
            name,
            dir,
            backend: raw.cluster.backend.unwrap_or_default(),
            runtime: raw
                .cluster
                .runtime
                .map(|r| r.into_inner())
                .unwrap_or_default(),
            nodes,
            observers,
            host,
            ports,
            tick_time,
            init_limit,
            sync_limit,
            extra,
            apache,
            restart,
            members,
            local_member: None,
            listen_on_all_ips: raw.cluster.listen_on_all_ips.unwrap_or(false),
            source: src.path.clone(),
            flags: Overrides::default(),
            no_watch: false,
            ui: None,
            network,
            security,
        };
        if spec.network.faults && spec.members.is_some() {
            return Err(SpecError::Invalid {
                origin: src.origin(0),
                key: "network.faults".into(),
                message: "link proxies run on one host; a spec whose members name their hosts \
                          cannot use them"
                    .into(),
            });
        }
        spec.check_port_ranges(&|key| match key {
            "ports.client" => raw
                .ports
                .client
                .as_ref()
                .map(|s| src.origin(s.span().start)),
            "ports.quorum" => raw
                .ports
                .quorum
                .as_ref()
                .map(|s| src.origin(s.span().start)),
            "ports.election" => raw
                .ports
                .election
                .as_ref()
                .map(|s| src.origin(s.span().start)),
            "ports.admin" => raw.ports.admin.as_ref().map(|s| src.origin(s.span().start)),
            "ports.metrics" => raw
                .ports
                .metrics
                .as_ref()
                .map(|s| src.origin(s.span().start)),
            _ => None,
        })?;
        spec.check_runtime(runtime_origin.unwrap_or(Origin::Default))?;
        if spec.restart.max_backoff_ms < spec.restart.initial_backoff_ms {
            return Err(SpecError::Invalid {
                origin: src.origin_of(&r.max_backoff_ms),
                key: "restart.max_backoff_ms".into(),
                message: format!(
                    "{} is below restart.initial_backoff_ms ({})",
                    spec.restart.max_backoff_ms, spec.restart.initial_backoff_ms
                ),
            });
        }
        Ok(spec)
    }

    /// Apply command-line overrides and re-check what they touch.
    pub fn apply(&mut self, o: &Overrides, base_dir: &Path) -> Result<(), SpecError> {
        self.flags = o.clone();
        if let Some(name) = &o.name {
            validate_name(name).map_err(|message| SpecError::Invalid {
                origin: Origin::Flag("--name".into()),
                key: "cluster.name".into(),
                message,
            })?;
            self.name = name.clone();
        }
        if let Some(dir) = &o.dir {
            self.dir = absolutize(base_dir, dir);
        }
        if let Some(b) = o.backend {
            self.backend = b;
        }
        let flag = |f: &str| Origin::Flag(f.to_string());
        if o.in_process {
            self.runtime = NodeRuntime::Tasks;
            self.check_runtime(flag("--in-process"))?;
        } else if o.backend.is_some() {
            self.check_runtime(flag("--backend"))?;
        }
        if self.members.is_some() {
            let clash = [
                ("--nodes", o.nodes.is_some()),
                ("--observers", o.observers.is_some()),
                ("--base-port", o.base_port.is_some()),
            ];
            if let Some((f, _)) = clash.iter().find(|(_, set)| *set) {
                return Err(SpecError::Invalid {
                    origin: flag(f),
                    key: "cluster.members".into(),
                    message: format!(
                        "{f} does not apply to a spec whose members name their hosts; edit the \
                         member list (and [ports]) in the spec instead"
                    ),
                });
            }
        }
        if let Some(id) = o.member {
            let known: Vec<u16> = match &self.members {
                Some(m) => m.iter().map(|m| m.id).collect(),
                None => (1..=self.total_nodes()).collect(),
            };
            if !known.contains(&id) {
                return Err(SpecError::Invalid {
                    origin: flag("--member"),
                    key: "cluster.members".into(),
                    message: format!(
                        "the spec has no member {id}; its members are {}",
                        known
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            self.local_member = Some(id);
        }
        if o.tls {
            self.security.tls = true;
        }
        if let Some(faults) = o.net_faults {
            if faults && self.members.is_some() {
                return Err(SpecError::Invalid {
                    origin: flag("--net"),
                    key: "network.faults".into(),
                    message: "link proxies run on one host; a spec whose members name their \
                              hosts cannot use them"
                        .into(),
                });
            }
            self.network.faults = faults;
        }
        if let Some(n) = o.nodes {
            self.nodes = check_range(flag("--nodes"), "cluster.nodes", n, 1, 255)?;
        }
        if let Some(n) = o.observers {
            self.observers = check_range(flag("--observers"), "cluster.observers", n, 0, 255)?;
        }
        if let Some(p) = o.base_port {
            // One flag moves all three ranges together, keeping the usual 2181/2881/3881 spacing.
            let client = check_range(flag("--base-port"), "ports.client", p, 1, 65535)?;
            let quorum = check_range(flag("--base-port"), "ports.quorum", p + 700, 1, 65535)?;
            let election = check_range(flag("--base-port"), "ports.election", p + 1700, 1, 65535)?;
            self.ports.client = client;
            self.ports.quorum = quorum;
            self.ports.election = election;
            self.ports.secure =
                check_range(flag("--base-port"), "ports.secure", p + 100, 1, 65535)?;
            if self.ports.admin.is_some() {
                self.ports.admin = Some(check_range(
                    flag("--base-port"),
                    "ports.admin",
                    p + 5900,
                    1,
                    65535,
                )?);
            }
            if self.ports.metrics.is_some() {
                self.ports.metrics = Some(check_range(
                    flag("--base-port"),
                    "ports.metrics",
                    p + 4900,
                    1,
                    65535,
                )?);
            }
        }
        let origin = |key: &str| -> Option<Origin> {
            match key {
                "ports.client" | "ports.quorum" | "ports.election" | "ports.admin"
                | "ports.metrics" => o.base_port.map(|_| flag("--base-port")),
                _ => None,
            }
        };
        self.check_port_ranges(&origin)
    }

    /// In-process nodes are builtin servers; Apache ZooKeeper needs a JVM per node.
    fn check_runtime(&self, origin: Origin) -> Result<(), SpecError> {
        if self.runtime == NodeRuntime::Tasks && self.backend == BackendKind::Apache {
            return Err(SpecError::Invalid {
                origin,
                key: "cluster.runtime".into(),
                message: "runtime \"tasks\" (--in-process) runs builtin nodes inside the \
                          supervisor; the apache backend needs runtime \"processes\""
                    .into(),
            });
        }
        Ok(())
    }

    /// The host name the spec gives member `id`, if it names its host rather than its address.
    pub fn host_name(&self, id: u16) -> Option<&str> {
        self.members
            .iter()
            .flatten()
            .find(|m| m.id == id)
            .and_then(|m| m.name.as_deref())
    }

    /// Total number of nodes (voters and observers).
    pub fn total_nodes(&self) -> u16 {
        self.nodes + self.observers
    }

    /// Ranges must fit below 65536 and must not overlap one another.
    fn check_port_ranges(
        &self,
        origin_of: &dyn Fn(&str) -> Option<Origin>,
    ) -> Result<(), SpecError> {
        if self.members.is_some() {
            // Checked per host by resolve_members.
            return Ok(());
        }
        let n = u32::from(self.total_nodes());
        let mut ranges: Vec<(&str, u16)> = vec![
            ("ports.client", self.ports.client),
            ("ports.quorum", self.ports.quorum),
            ("ports.election", self.ports.election),
        ];
        if let Some(a) = self.ports.admin {
            ranges.push(("ports.admin", a));
        }
        if let Some(m) = self.ports.metrics {
            ranges.push(("ports.metrics", m));
        }
        if self.security.tls {
            ranges.push(("ports.secure", self.ports.secure));
        }
        for (key, base) in &ranges {
            if u32::from(*base) + n - 1 > 65535 {
                return Err(SpecError::Invalid {
                    origin: origin_of(key).unwrap_or(Origin::Default),
                    key: key.to_string(),
                    message: format!(
                        "{n} nodes starting at port {base} would need ports up to {}, above 65535; choose a lower base",
                        u32::from(*base) + n - 1
                    ),
                });
            }
        }
        for (i, (ka, a)) in ranges.iter().enumerate() {
            for (kb, b) in &ranges[i + 1..] {
                let (a, b) = (u32::from(*a), u32::from(*b));
                if a < b + n && b < a + n {
                    return Err(SpecError::Invalid {
                        origin: origin_of(kb).or_else(|| origin_of(ka)).unwrap_or(Origin::Default),
                        key: kb.to_string(),
                        message: format!(
                            "the {kb} range {b}..{} overlaps the {ka} range {a}..{}; space the bases at least {n} apart",
                            b + n - 1,
                            a + n - 1
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A member's host: an IP address, or a host name resolved here (IPv4 first, as the JVM runs
/// with preferIPv4Stack). zoo.cfg then carries the address, so the builtin server and Apache
/// read the same thing; a name that does not resolve on this machine is an error.
fn resolve_host(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.len() > 253 || !host.trim_end_matches('.').split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is neither an IP address nor a host name; give each member's address \
             (e.g. \"10.0.0.1\") or name (e.g. \"zk1.example.com\")"
        ));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (host, 0u16)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot resolve host name {host:?} on this machine ({e}); add it to /etc/hosts \
                 or DNS, or give the member's IP address"
            )
        })?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("host name {host:?} resolves to no address"))
}

/// Where the member list starts in the file, for messages about the list as a whole.
fn members_span(c: &RawCluster) -> usize {
    c.members
        .as_ref()
        .map(|m| m.span().start)
        .or_else(|| c.hosts.as_ref().map(|h| h.span().start))
        .unwrap_or(0)
}

/// `cluster.hosts` or `[[cluster.members]]` → members with every port resolved and checked.
fn resolve_members(
    c: &RawCluster,
    src: &SourceText,
    base: &BasePorts,
) -> Result<Vec<MemberSpec>, SpecError> {
    struct Wanted {
        at: usize,
        id: u16,
        host: (IpAddr, Option<String>),
        observer: bool,
        own: [Option<u16>; 4],
    }
    let parse_host = |h: &Spanned<String>, key: &str| {
        resolve_host(h.get_ref())
            .map(|ip| {
                let name = h.get_ref().parse::<IpAddr>().is_err();
                (ip, name.then(|| h.get_ref().clone()))
            })
            .map_err(|message| SpecError::Invalid {
                origin: src.origin(h.span().start),
                key: key.into(),
                message,
            })
    };
    let mut wanted = Vec::new();
    match (&c.hosts, &c.members) {
        (Some(_), Some(m)) => {
            return Err(SpecError::Invalid {
                origin: src.origin(m.span().start),
                key: "cluster.members".into(),
                message: "give either cluster.hosts or [[cluster.members]], not both".into(),
            })
        }
        (Some(hosts), None) => {
            let n = hosts.get_ref().len();
            if n == 0 || n > 255 {
                return Err(SpecError::Invalid {
                    origin: src.origin(hosts.span().start),
                    key: "cluster.hosts".into(),
                    message: format!("{n} hosts; an ensemble has 1 to 255 members"),
                });
            }
            // With a host list, `observers = M` makes the last M hosts observers, and `nodes`,
            // when given, must be the rest.
            let obs = c.observers.as_ref().map_or(0, |o| *o.get_ref());
            if obs < 0 || obs as usize >= n {
                return Err(SpecError::Invalid {
                    origin: src.origin_of(&c.observers),
                    key: "cluster.observers".into(),
                    message: format!(
                        "{obs} observers among {n} hosts; at least one host must be a voter"
                    ),
                });
            }
            if let Some(v) = &c.nodes {
                if *v.get_ref() as usize + obs as usize != n {
                    return Err(SpecError::Invalid {
                        origin: src.origin(v.span().start),
                        key: "cluster.nodes".into(),
                        message: format!(
                            "{} voters and {obs} observers do not make the {n} hosts listed; \
                             drop cluster.nodes (the host list decides)",
                            v.get_ref()
                        ),
                    });
                }
            }
            for (i, h) in hosts.get_ref().iter().enumerate() {
                wanted.push(Wanted {
                    at: h.span().start,
                    id: i as u16 + 1,
                    host: parse_host(h, "cluster.hosts")?,
                    observer: i >= n - obs as usize,
                    own: [None; 4],
                });
            }
        }
        (None, Some(members)) => {
            for key in [
                ("cluster.nodes", &c.nodes),
                ("cluster.observers", &c.observers),
            ] {
                if let Some(v) = key.1 {
                    return Err(SpecError::Invalid {
                        origin: src.origin(v.span().start),
                        key: key.0.into(),
                        message: "[[cluster.members]] decides the voters and observers (role = \
                                  \"observer\"); drop this key"
                            .into(),
                    });
                }
            }
            for m in members.get_ref() {
                let at = m.span().start;
                let m = m.get_ref();
                let missing = |what: &str| SpecError::Invalid {
                    origin: src.origin(at),
                    key: format!("cluster.members.{what}"),
                    message: format!("a member needs `{what}` (e.g. id = 1, host = \"10.0.0.1\")"),
                };
                let id: u16 = ranged(src, "cluster.members.id", &m.id, 0, 1, 255)?;
                if m.id.is_none() {
                    return Err(missing("id"));
                }
                let host = parse_host(
                    m.host.as_ref().ok_or_else(|| missing("host"))?,
                    "cluster.members.host",
                )?;
                let observer = match m.role.as_ref().map(|r| (r, r.get_ref().as_str())) {
                    None | Some((_, "participant" | "voter")) => false,
                    Some((_, "observer")) => true,
                    Some((r, other)) => {
                        return Err(SpecError::Invalid {
                            origin: src.origin(r.span().start),
                            key: "cluster.members.role".into(),
                            message: format!(
                                "{other:?} is not a role; use \"participant\" (votes, the \
                                 default) or \"observer\""
                            ),
                        })
                    }
                };
                let port =
                    |key: &str, v: &Option<Spanned<i64>>| -> Result<Option<u16>, SpecError> {
                        match v {
                            None => Ok(None),
                            Some(_) => ranged(src, key, v, 0, 1, 65535).map(Some),
                        }
                    };
                wanted.push(Wanted {
                    at,
                    id,
                    host,
                    observer,
                    own: [
                        port("cluster.members.client", &m.client)?,
                        port("cluster.members.quorum", &m.quorum)?,
                        port("cluster.members.election", &m.election)?,
                        port("cluster.members.admin", &m.admin)?,
                    ],
                });
            }
            if wanted.is_empty() || wanted.len() > 255 {
                return Err(SpecError::Invalid {
                    origin: src.origin(members.span().start),
                    key: "cluster.members".into(),
                    message: format!("{} members; an ensemble has 1 to 255", wanted.len()),
                });
            }
        }
        (None, None) => unreachable!("only called with hosts or members"),
    }
    wanted.sort_by_key(|w| w.id);
    for (i, w) in wanted.iter().enumerate() {
        if w.id as usize != i + 1 {
            let message = if i > 0 && wanted[i - 1].id == w.id {
                format!(
                    "member id {} is given twice; every member needs its own myid",
                    w.id
                )
            } else {
                format!(
                    "member ids must be 1..{} without gaps (myid {} is missing)",
                    wanted.len(),
                    i + 1
                )
            };
            return Err(SpecError::Invalid {
                origin: src.origin(w.at),
                key: "cluster.members.id".into(),
                message,
            });
        }
    }
    // The k-th further member on one host shifts every base by k, as on a single host.
    let mut on_host: BTreeMap<IpAddr, u16> = BTreeMap::new();
    let mut taken: BTreeMap<(IpAddr, u16), (u16, &str)> = BTreeMap::new();
    let mut out = Vec::new();
    for w in &wanted {
        let k = on_host.entry(w.host.0).or_insert(0);
        let off = u32::from(*k);
        *k += 1;
        let shifted = |own: Option<u16>, base: u16, key: &str| -> Result<u16, SpecError> {
            if let Some(p) = own {
                return Ok(p);
            }
            u16::try_from(u32::from(base) + off).map_err(|_| SpecError::Invalid {
                origin: src.origin(w.at),
                key: key.into(),
                message: format!(
                    "member {} is the {}th on {} and would need port {} above 65535; give it \
                     its own ports",
                    w.id,
                    off + 1,
                    w.host.0,
                    u32::from(base) + off
                ),
            })
        };
        let m = MemberSpec {
            id: w.id,
            host: w.host.0,
            name: w.host.1.clone(),
            observer: w.observer,
            client: shifted(w.own[0], base.client, "ports.client")?,
            quorum: shifted(w.own[1], base.quorum, "ports.quorum")?,
            election: shifted(w.own[2], base.election, "ports.election")?,
            admin: match (w.own[3], base.admin) {
                (Some(p), _) => Some(p),
                (None, Some(a)) => Some(shifted(None, a, "ports.admin")?),
                (None, None) => None,
            },
            metrics: match base.metrics {
                Some(m) => Some(shifted(None, m, "ports.metrics")?),
                None => None,
            },
        };
        let mut ports = vec![
            ("client", m.client),
            ("quorum", m.quorum),
            ("election", m.election),
        ];
        if let Some(a) = m.admin {
            ports.push(("admin", a));
        }
        if let Some(p) = m.metrics {
            ports.push(("metrics", p));
        }
        for (kind, p) in ports {
            if let Some((other, other_kind)) = taken.insert((m.host, p), (m.id, kind)) {
                return Err(SpecError::Invalid {
                    origin: src.origin(w.at),
                    key: format!("cluster.members.{kind}"),
                    message: format!(
                        "{}:{p} would be both the {other_kind} port of member {other} and the \
                         {kind} port of member {}; give one of them other ports",
                        m.host, m.id
                    ),
                });
            }
        }
        out.push(m);
    }
    Ok(out)
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

fn validate_extra_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['=', '\n', ' ']) {
        return Err(format!("{key:?} is not a valid zoo.cfg key"));
    }
    if RESERVED_ZOO_CFG_KEYS.contains(&key) || key.starts_with("server.") {
        return Err(format!(
            "zkherd writes `{key}` itself; set it through the spec's own keys ([cluster], [ports], [zookeeper]) instead"
        ));
    }
    Ok(())
}

fn absolutize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        let base = if base.is_absolute() {
            base.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(base)
        };
        base.join(p)
    };
    normalize(&joined)
}

/// Remove `.` and resolve `..` lexically, so paths print cleanly and compare equal.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The spec text kept beside parsing so byte offsets can become `line:column`.
struct SourceText<'a> {
    path: Option<PathBuf>,
    text: &'a str,
}

impl SourceText<'_> {
    fn none() -> SourceText<'static> {
        SourceText {
            path: None,
            text: "",
        }
    }

    fn origin(&self, offset: usize) -> Origin {
        let Some(path) = &self.path else {
            return Origin::Default;
        };
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Origin::File {
            path: path.clone(),
            line,
            column,
        }
    }

    fn origin_of<T>(&self, v: &Option<Spanned<T>>) -> Origin {
        v.as_ref()
            .map_or(Origin::Default, |s| self.origin(s.span().start))
    }
}

fn ranged<T: TryFrom<i64>>(
    src: &SourceText,
    key: &str,
    value: &Option<Spanned<i64>>,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, SpecError> {
    match value {
        None => Ok(default),
        Some(v) => check_range(src.origin(v.span().start), key, *v.get_ref(), min, max),
    }
}

fn check_range<T: TryFrom<i64>>(
    origin: Origin,
    key: &str,
    v: i64,
    min: i64,
    max: i64,
) -> Result<T, SpecError> {
    if v < min || v > max {
        return Err(SpecError::Invalid {
            origin,
            key: key.to_string(),
            message: format!("{v} is out of range; expected {min} to {max}"),
        });
    }
    T::try_from(v).map_err(|_| SpecError::Invalid {
        origin: Origin::Default,
        key: key.to_string(),
        message: format!("{v} does not fit"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EnsembleSpec, SpecError> {
        EnsembleSpec::parse(text, Path::new("zkherd.toml"), Path::new("/base"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.name, "zkherd");
        assert_eq!(s.dir, PathBuf::from("/base/.zkherd/zkherd"));
        assert_eq!(s.backend, BackendKind::Builtin);
        assert_eq!((s.nodes, s.observers), (3, 0));
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert_eq!(
            s.ports,
            BasePorts {
                client: 2181,
                quorum: 2881,
                election: 3881,
                admin: None,
                metrics: None,
                secure: 2281,
            }
        );
        assert_eq!((s.tick_time, s.init_limit, s.sync_limit), (2000, 10, 5));
        assert_eq!(s.restart.policy, RestartPolicy::OnFailure);
        assert_eq!(s.apache.heap_mb, 256);
    }

    #[test]
    fn the_init_template_parses_to_the_defaults() {
        let s = parse(DEFAULT_SPEC_TOML).unwrap();
        assert_eq!(s, parse("").unwrap());
    }

    #[test]
    fn every_section_is_read() {
        let s = parse(
            r#"
[cluster]
name = "kafka-test"
dir = "clusters/k"
backend = "apache"
nodes = 5
observers = 1
host = "127.0.0.2"
[ports]
client = 12181
quorum = 12881
election = 13881
admin = 18080
[zookeeper]
tickTime = 500
initLimit = 4
syncLimit = 2
[zookeeper.extra]
maxClientCnxns = 0
"4lw.commands.whitelist" = "*"
[apache]
home = "/opt/zk"
java = "/usr/lib/jvm/bin/java"
heap_mb = 128
[restart]
policy = "always"
initial_backoff_ms = 100
max_backoff_ms = 1000
crash_loop_limit = 3
crash_loop_window_s = 10
"#,
        )
        .unwrap();
        assert_eq!(s.name, "kafka-test");
        assert_eq!(s.dir, PathBuf::from("/base/clusters/k"));
        assert_eq!((s.nodes, s.observers, s.total_nodes()), (5, 1, 6));
        assert_eq!(s.ports.admin, Some(18080));
        assert_eq!(s.tick_time, 500);
        assert_eq!(s.extra.get("maxClientCnxns").unwrap(), "0");
        assert_eq!(s.extra.get("4lw.commands.whitelist").unwrap(), "*");
        assert_eq!(s.apache.home, Some(PathBuf::from("/opt/zk")));
        assert_eq!(s.restart.policy, RestartPolicy::Always);
        assert_eq!(s.restart.crash_loop_limit, 3);
    }

    #[test]
    fn malformed_toml_names_file_line_and_column() {
        let e = err("[cluster]\nnodes = = 3\n");
        assert!(e.starts_with("zkherd.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_with_position_and_valid_keys() {
        let e = err("[cluster]\nnodes = 3\nnodez = 4\n");
        assert!(e.starts_with("zkherd.toml:3:1"), "{e}");
        assert!(e.contains("unknown field `nodez`"), "{e}");
        assert!(e.contains("`nodes`"), "lists the valid keys: {e}");
    }

    #[test]
    fn sasl_users_are_checked_and_the_client_user_defaults_to_the_first() {
        let s = parse("[security]\nsasl_users = { zed = \"z\", bob = \"b\" }\n").unwrap();
        assert_eq!(s.security.sasl_client(), Some(("bob", "b")));
        let e = err("[security]\nsasl_users = { \"bo b\" = \"x\" }\n");
        assert!(
            e.starts_with("zkherd.toml:2:") && e.contains("cannot go in a JAAS file"),
            "{e}"
        );
        let e = err("[security]\nsasl_users = { bob = \"x\" }\nsasl_client = \"eve\"\n");
        assert!(
            e.starts_with("zkherd.toml:3:") && e.contains("not one of security.sasl_users (bob)"),
            "{e}"
        );
        assert_eq!(parse("").unwrap().security.sasl_client(), None);
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = err("[clutser]\nnodes = 3\n");
        assert!(e.contains("unknown field `clutser`"), "{e}");
    }

    #[test]
    fn in_process_nodes_are_builtin_only() {
        let e = err("[cluster]\nbackend = \"apache\"\nruntime = \"tasks\"\n");
        assert!(e.contains("cluster.runtime") && e.contains(":3:"), "{e}");
        let ok = parse("[cluster]\nruntime = \"tasks\"\n");
        assert_eq!(ok.map(|s| s.runtime).ok(), Some(NodeRuntime::Tasks));
        let mut s = EnsembleSpec::defaults(Path::new("/tmp"));
        s.backend = BackendKind::Apache;
        let o = Overrides {
            in_process: true,
            ..Default::default()
        };
        let e = s.apply(&o, Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("--in-process"), "{e}");
    }

    #[test]
    fn bad_enum_value_lists_the_choices() {
        let e = err("[cluster]\nbackend = \"docker\"\n");
        assert!(e.starts_with("zkherd.toml:2:11"), "{e}");
        assert!(e.contains("builtin") && e.contains("apache"), "{e}");
        let e = err("[restart]\npolicy = \"sometimes\"\n");
        assert!(
            e.contains("always") && e.contains("on-failure") && e.contains("never"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_an_error() {
        let e = err("[cluster]\nnodes = \"three\"\n");
        assert!(e.starts_with("zkherd.toml:2:9"), "{e}");
    }

    #[test]
    fn out_of_range_values_cite_their_line() {
        let e = err("[cluster]\nnodes = 0\n");
        assert_eq!(
            e,
            "zkherd.toml:2:9: invalid `cluster.nodes`: 0 is out of range; expected 1 to 255"
        );
        let e = err("[cluster]\nobservers = -1\n");
        assert!(e.contains("cluster.observers"), "{e}");
        let e = err("[ports]\nclient = 70000\n");
        assert!(
            e.starts_with("zkherd.toml:2:10") && e.contains("ports.client"),
            "{e}"
        );
        let e = err("[zookeeper]\ntickTime = 0\n");
        assert!(e.contains("zookeeper.tickTime"), "{e}");
        let e = err("[apache]\nheap_mb = 1\n");
        assert!(e.contains("apache.heap_mb"), "{e}");
    }

    #[test]
    fn a_port_range_past_65535_is_refused() {
        let e = err("[ports]\nclient = 65534\n");
        assert!(e.starts_with("zkherd.toml:2:10"), "{e}");
        assert!(e.contains("above 65535"), "{e}");
    }

    #[test]
    fn overlapping_port_ranges_are_refused() {
        let e = err("[ports]\nclient = 2181\nquorum = 2183\n");
        assert!(e.contains("overlaps"), "{e}");
        assert!(e.starts_with("zkherd.toml:3:10"), "{e}");
    }

    #[test]
    fn bad_host_and_name_are_refused() {
        let e = err("[cluster]\nhost = \"localhost\"\n");
        assert!(e.contains("not an IP address"), "{e}");
        let e = err("[cluster]\nname = \"a/b\"\n");
        assert!(e.contains("cluster.name"), "{e}");
    }

    #[test]
    fn a_host_list_gives_each_member_the_conventional_ports() {
        let s = parse("[cluster]\nhosts = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\n").unwrap();
        assert_eq!((s.nodes, s.observers), (3, 0));
        let m = s.members.as_ref().unwrap();
        assert_eq!(m.len(), 3);
        for (i, m) in m.iter().enumerate() {
            assert_eq!(m.id as usize, i + 1);
            assert_eq!(m.host.to_string(), format!("10.0.0.{}", i + 1));
            assert_eq!((m.client, m.quorum, m.election), (2181, 2888, 3888));
            assert!(!m.observer);
        }
        let s =
            parse("[cluster]\nhosts = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\nobservers = 1\n")
                .unwrap();
        assert_eq!((s.nodes, s.observers), (2, 1));
        assert!(s.members.unwrap()[2].observer);
    }

    #[test]
    fn host_names_are_resolved_when_the_spec_is_read() {
        let s = parse("[cluster]\nhosts = [\"localhost\", \"127.0.0.2\"]\n").unwrap();
        let m = s.members.unwrap();
        assert_eq!(m[0].host.to_string(), "127.0.0.1");
        assert_eq!(m[0].name.as_deref(), Some("localhost"));
        assert_eq!(m[1].name, None);
    }

    #[test]
    fn members_sharing_a_host_are_shifted_and_their_own_ports_win() {
        let s = parse(
            "[cluster]\n\
             [[cluster.members]]\nid = 2\nhost = \"10.0.0.1\"\n\
             [[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\n\
             [[cluster.members]]\nid = 3\nhost = \"10.0.0.2\"\nrole = \"observer\"\nclient = 2999\n\
             [ports]\nquorum = 4000\n",
        )
        .unwrap();
        let m = s.members.unwrap();
        assert_eq!(m.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(
            (m[0].client, m[0].quorum, m[0].election),
            (2181, 4000, 3888)
        );
        assert_eq!(
            (m[1].client, m[1].quorum, m[1].election),
            (2182, 4001, 3889)
        );
        assert_eq!(
            (m[2].client, m[2].quorum, m[2].election),
            (2999, 4000, 3888)
        );
        assert!(m[2].observer);
        assert_eq!((s.nodes, s.observers), (2, 1));
    }

    #[test]
    fn bad_member_lists_are_refused_at_their_line() {
        let e = err("[cluster]\nhosts = [\"10.0.0.1\", \"zk2.invalid\"]\n");
        assert!(
            e.contains("zkherd.toml:2:22") && e.contains("cannot resolve host name"),
            "{e}"
        );
        let e = err("[cluster]\nhosts = [\"10.0.0.1\", \"zk 2\"]\n");
        assert!(e.contains("neither an IP address nor a host name"), "{e}");
        let e = err("[cluster]\nhost = \"10.0.0.1\"\nhosts = [\"10.0.0.1\"]\n");
        assert!(
            e.contains("zkherd.toml:2:") && e.contains("each member names its own host"),
            "{e}"
        );
        let e = err("[cluster]\nhosts = [\"10.0.0.1\", \"10.0.0.2\"]\nnodes = 3\n");
        assert!(
            e.contains("zkherd.toml:3:") && e.contains("do not make the 2 hosts"),
            "{e}"
        );
        let e = err("[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\n[[cluster.members]]\nid = 1\nhost = \"10.0.0.2\"\n");
        assert!(
            e.contains("zkherd.toml:4:") && e.contains("given twice"),
            "{e}"
        );
        let e = err("[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\n[[cluster.members]]\nid = 3\nhost = \"10.0.0.2\"\n");
        assert!(e.contains("without gaps (myid 2 is missing)"), "{e}");
        let e = err("[[cluster.members]]\nhost = \"10.0.0.1\"\n");
        assert!(e.contains("a member needs `id`"), "{e}");
        let e = err("[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\nrole = \"leader\"\n");
        assert!(
            e.contains("zkherd.toml:4:8") && e.contains("not a role"),
            "{e}"
        );
        let e = err("[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\nclient = 3888\n");
        assert!(
            e.contains("10.0.0.1:3888 would be both the client port of member 1 and the election port of member 1"),
            "{e}"
        );
        let e = err("[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\nrole = \"observer\"\n");
        assert!(e.contains("at least one voter"), "{e}");
        let e = err("[cluster]\nnodes = 2\n[[cluster.members]]\nid = 1\nhost = \"10.0.0.1\"\n");
        assert!(
            e.contains("zkherd.toml:2:") && e.contains("drop this key"),
            "{e}"
        );
    }

    #[test]
    fn member_flags_are_checked_against_the_member_list() {
        let mut s =
            parse("[cluster]\nhosts = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"]\n").unwrap();
        let e = s
            .apply(
                &Overrides {
                    nodes: Some(5),
                    ..Default::default()
                },
                Path::new("/"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("flag --nodes") && e.contains("edit the member list"),
            "{e}"
        );
        let e = s
            .apply(
                &Overrides {
                    member: Some(4),
                    ..Default::default()
                },
                Path::new("/"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("no member 4; its members are 1, 2, 3"), "{e}");
        s.apply(
            &Overrides {
                member: Some(2),
                ..Default::default()
            },
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(s.local_member, Some(2));
    }

    #[test]
    fn reserved_extra_keys_are_refused() {
        let e = err("[zookeeper.extra]\nclientPort = 1\n");
        assert!(
            e.starts_with("zkherd.toml:2:1") && e.contains("zkherd writes `clientPort`"),
            "{e}"
        );
        let e = err("[zookeeper.extra]\n\"server.1\" = \"x\"\n");
        assert!(e.contains("server.1"), "{e}");
        let e = err("[zookeeper.extra]\nfoo = [1]\n");
        assert!(e.contains("not a array"), "{e}");
    }

    #[test]
    fn backoff_bounds_are_consistent() {
        let e = err("[restart]\ninitial_backoff_ms = 5000\nmax_backoff_ms = 10\n");
        assert!(e.starts_with("zkherd.toml:3:18"), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_are_validated() {
        let mut s = parse("[cluster]\nnodes = 3\n").unwrap();
        s.apply(
            &Overrides {
                nodes: Some(5),
                base_port: Some(12181),
                backend: Some(BackendKind::Apache),
                ..Default::default()
            },
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(s.nodes, 5);
        assert_eq!(
            (s.ports.client, s.ports.quorum, s.ports.election),
            (12181, 12881, 13881)
        );
        let e = s
            .apply(
                &Overrides {
                    nodes: Some(0),
                    ..Default::default()
                },
                Path::new("/cwd"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("flag --nodes:"), "{e}");
        let e = s
            .apply(
                &Overrides {
                    base_port: Some(65000),
                    ..Default::default()
                },
                Path::new("/cwd"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("flag --base-port:"), "{e}");
    }
}
