//! Instance directories from templates, laid out as a person would by hand:
//!
//! ```text
//! <cluster dir>/
//!   .zkherd-cluster          marker: zkherd made this directory (down --purge checks it)
//!   spec.json                the effective spec of the last `up`
//!   node<i>/conf/zoo.cfg     server.N lines, ports, timing, 4lw whitelist
//!   node<i>/conf/log4j.properties
//!   node<i>/data/myid
//!   node<i>/datalog/
//!   node<i>/logs/node.log    the node's stdout and stderr
//! ```
//!
//! Rendering is idempotent: an unchanged spec rewrites nothing, a changed one rewrites the
//! configs and reports the lines that changed. It never writes into a directory it did not make.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ports::{Membership, NodePorts, PortPlan};
use crate::spec::EnsembleSpec;

const ZOO_CFG_TEMPLATE: &str = include_str!("../templates/zoo.cfg");
pub const LOG4J_TEMPLATE: &str = include_str!("../templates/log4j.properties");

/// The name of the marker file that proves zkherd created a cluster directory.
pub const MARKER: &str = ".zkherd-cluster";

/// The file, in the cluster directory, holding the password of zkherd's super user.
pub const SUPER_SECRET: &str = "super.secret";
const SUPER_USER: &str = "zkherd";

/// The server's JAAS file (`[security] sasl_users`), in the cluster directory.
pub const JAAS_SERVER: &str = "jaas.conf";
/// A client JAAS file (the `Client` section, as `sasl_client`), for zkCli.sh, Kafka, Curator.
pub const JAAS_CLIENT: &str = "client-jaas.conf";
/// Where `up --tls` mints the CA, server and client certificates, in the cluster directory.
pub const TLS_DIR: &str = "tls";
/// The provider zoo.cfg registers for the `x509` scheme.
pub const X509_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";
/// The provider zoo.cfg registers for the `sasl` scheme.
pub const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

fn jaas_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The server and client JAAS files, when the spec has SASL users.
pub fn jaas_files(spec: &EnsembleSpec) -> Option<(String, String)> {
    let (user, password) = spec.security.sasl_client()?;
    let module = crate::server::sasl::DIGEST_LOGIN_MODULE;
    let users = spec
        .security
        .sasl_users
        .iter()
        .map(|(n, p)| format!("    user_{n}={}", jaas_quote(p)))
        .collect::<Vec<_>>()
        .join("\n");
    let server = format!(
        "// Written by zkherd from [security] sasl_users: the server's DIGEST-MD5 users.\n\
         Server {{\n    {module} required\n{users};\n}};\n"
    );
    let client = format!(
        "// Written by zkherd: log in as {user} (java -Djava.security.auth.login.config=<this file>).\n\
         Client {{\n    {module} required\n    username={}\n    password={};\n}};\n",
        jaas_quote(user),
        jaas_quote(password)
    );
    Some((server, client))
}

/// Whether the spec turns reconfig on (`reconfigEnabled = true` under [zookeeper.extra]).
pub fn reconfig_enabled(spec: &EnsembleSpec) -> bool {
    spec.extra
        .get("reconfigEnabled")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn user_super_digest(spec: &EnsembleSpec) -> bool {
    spec.extra
        .keys()
        .any(|k| k.ends_with("DigestAuthenticationProvider.superDigest"))
}

/// `user:base64(sha1(user:password))`, ZooKeeper's digest form.
pub fn super_digest(user: &str, password: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// zkherd's own super password, when reconfig is on and the spec sets no super digest of its
/// own (the file is made by `render`).
fn own_super_secret(spec: &EnsembleSpec) -> Option<String> {
    if !reconfig_enabled(spec) || user_super_digest(spec) {
        return None;
    }
    fs::read_to_string(spec.dir.join(SUPER_SECRET))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The `digest` auth (`user:password`) that makes a client the super user, for reconfig:
/// zkherd's own, or `$ZKHERD_SUPER_AUTH` when the spec sets its own super digest.
pub fn super_auth(spec: &EnsembleSpec) -> Option<String> {
    if user_super_digest(spec) {
        return std::env::var("ZKHERD_SUPER_AUTH").ok();
    }
    own_super_secret(spec).map(|s| format!("{SUPER_USER}:{s}"))
}

fn ensure_super_secret(spec: &EnsembleSpec) -> Result<(), RenderError> {
    if !reconfig_enabled(spec) || user_super_digest(spec) {
        return Ok(());
    }
    let path = spec.dir.join(SUPER_SECRET);
    if path.exists() {
        return Ok(());
    }
    use base64::Engine;
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 18];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(io_err(Path::new("/dev/urandom")))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .map_err(io_err(&path))
}

/// Apache with reconfig on gets its members from a dynamic config file, as Apache documents
/// for 3.5+ (`dynamicConfigFile=`, server lines with their roles and client ports, and no
/// clientPort in zoo.cfg); Apache writes the next versions of it itself after each reconfig.
pub fn uses_dynamic_file(spec: &EnsembleSpec) -> bool {
    spec.backend == crate::spec::BackendKind::Apache && reconfig_enabled(spec)
}

/// The name of the dynamic config file zkherd renders, in each node's conf dir.
pub const DYNAMIC_CFG: &str = "zoo.cfg.dynamic";

/// The members as node `viewer` reaches them: with link proxies (`[network] faults`), every
/// other member's quorum and election ports are the supervisor's proxies for that pair, on
/// 127.0.0.1; its own and every client port are the real ones.
pub fn peer_view(spec: &EnsembleSpec, plan: &PortPlan, viewer: u16) -> Vec<NodePorts> {
    plan.nodes
        .iter()
        .map(|n| {
            let mut n = n.clone();
            if spec.network.faults && n.id != viewer {
                n.quorum = spec.proxy_port(viewer, n.id, false);
                n.election = spec.proxy_port(viewer, n.id, true);
            }
            n
        })
        .collect()
}

/// What a node binds: its host's address, or the wildcard when the spec says so
/// (`listen_on_all_ips`).
fn bind_addr(spec: &EnsembleSpec, host: std::net::IpAddr) -> std::net::IpAddr {
    match (spec.listen_on_all_ips, host) {
        (false, h) => h,
        (true, std::net::IpAddr::V4(_)) => std::net::IpAddr::from([0u8; 4]),
        (true, std::net::IpAddr::V6(_)) => std::net::IpAddr::from([0u16; 8]),
    }
}

/// `server.N=host:quorum:election:role;host:client` per member, as node `viewer` reaches them
/// (see [`peer_view`]), or at their own addresses (`None`): the dynamic config's lines, and a
/// reconfig's new member list.
pub fn member_lines(spec: &EnsembleSpec, plan: &PortPlan, viewer: Option<u16>) -> Vec<String> {
    match viewer {
        Some(v) => peer_view(spec, plan, v),
        None => plan.nodes.clone(),
    }
    .iter()
    .map(|n| {
        let role = if n.membership == Membership::Observer {
            "observer"
        } else {
            "participant"
        };
        format!(
            "server.{}={}:{}:{}:{role};{}",
            n.id,
            n.host,
            n.quorum,
            n.election,
            std::net::SocketAddr::new(bind_addr(spec, n.host), n.client)
        )
    })
    .collect()
}

/// The dynamic config file, as node `viewer` sees the ensemble.
pub fn dynamic_cfg(spec: &EnsembleSpec, plan: &PortPlan, viewer: u16) -> String {
    let mut out = member_lines(spec, plan, Some(viewer)).join("\n");
    out.push('\n');
    out
}

/// Four-letter words the probe and users rely on; always whitelisted.
pub const REQUIRED_4LW: &[&str] = &[
    "srvr", "mntr", "ruok", "stat", "conf", "cons", "envi", "isro", "wchs", "dirs",
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "{path}: {source}; check that the directory is writable, or choose another with --dir"
    )]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} exists, is not empty and was not created by zkherd (no {MARKER} file); \
         choose another cluster directory with --dir, or empty it"
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path} says myid {found}, but this node is {expected}; the data belongs to another node. \
         Run `zkherd down --purge` to start from empty data"
    )]
    MyidMismatch {
        path: PathBuf,
        found: String,
        expected: u16,
    },
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RenderError + '_ {
    move |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Marker contents.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    created_by: String,
    name: String,
}

/// Paths of one node's instance directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLayout {
    pub id: u16,
    pub ports: NodePorts,
    pub dir: PathBuf,
    pub conf_dir: PathBuf,
    pub zoo_cfg: PathBuf,
    pub data_dir: PathBuf,
    pub datalog_dir: PathBuf,
    pub logs_dir: PathBuf,
    /// stdout and stderr of the node's process.
    pub log_file: PathBuf,
}

impl NodeLayout {
    pub fn new(cluster_dir: &Path, ports: &NodePorts) -> NodeLayout {
        let dir = cluster_dir.join(format!("node{}", ports.id));
        NodeLayout {
            id: ports.id,
            ports: ports.clone(),
            conf_dir: dir.join("conf"),
            zoo_cfg: dir.join("conf").join("zoo.cfg"),
            data_dir: dir.join("data"),
            datalog_dir: dir.join("datalog"),
            logs_dir: dir.join("logs"),
            log_file: dir.join("logs").join("node.log"),
            dir,
        }
    }
}

/// What `render` did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created(PathBuf),
    /// The file existed with other contents; the lines removed and added.
    Updated {
        path: PathBuf,
        removed: Vec<String>,
        added: Vec<String>,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Created(p) => write!(f, "created {}", p.display()),
            Change::Updated {
                path,
                removed,
                added,
            } => {
                write!(f, "updated {}", path.display())?;
                for l in removed {
                    write!(f, "\n  - {l}")?;
                }
                for l in added {
                    write!(f, "\n  + {l}")?;
                }
                Ok(())
            }
        }
    }
}

/// All node layouts of a spec (nothing is written).
pub fn layouts(spec: &EnsembleSpec) -> Vec<NodeLayout> {
    PortPlan::new(spec)
        .nodes
        .iter()
        .map(|p| NodeLayout::new(&spec.dir, p))
        .collect()
}

/// Whether `dir` carries zkherd's marker.
pub fn is_zkherd_dir(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Create or update the cluster directory for `spec`. Returns what changed.
pub fn render(spec: &EnsembleSpec) -> Result<Vec<Change>, RenderError> {
    let dir = &spec.dir;
    let mut changes = Vec::new();
    if dir.exists() && !is_zkherd_dir(dir) {
        let empty = fs::read_dir(dir).map_err(io_err(dir))?.next().is_none();
        if !empty {
            return Err(RenderError::Foreign { path: dir.clone() });
        }
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let marker = serde_json::to_string_pretty(&Marker {
        created_by: format!("zkherd {}", env!("CARGO_PKG_VERSION")),
        name: spec.name.clone(),
    })
    .expect("marker serializes");
    write_if_changed(&dir.join(MARKER), &marker, &mut changes, false)?;
    let spec_json = serde_json::to_string_pretty(spec).expect("spec serializes");
    // spec.json holds the SASL passwords, if any: owner-only, like the JAAS files.
    write_file(
        &dir.join("spec.json"),
        &spec_json,
        &mut changes,
        false,
        0o600,
    )?;
    ensure_super_secret(spec)?;
    if spec.security.tls {
        let mut hosts: Vec<std::net::IpAddr> =
            PortPlan::new(spec).nodes.iter().map(|n| n.host).collect();
        hosts.sort();
        hosts.dedup();
        crate::server::tls::mint(&dir.join(TLS_DIR), &hosts, &spec.name)?;
    }
    if let Some((server, client)) = jaas_files(spec) {
        write_file(&dir.join(JAAS_SERVER), &server, &mut changes, false, 0o600)?;
        write_file(&dir.join(JAAS_CLIENT), &client, &mut changes, false, 0o600)?;
    }

    let plan = PortPlan::new(spec);
    // `up --member N` lays out member N only: the others live on their own hosts.
    for ports in plan.local_nodes(spec) {
        let l = NodeLayout::new(dir, ports);
        for d in [&l.conf_dir, &l.data_dir, &l.datalog_dir, &l.logs_dir] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let myid_path = l.data_dir.join("myid");
        match fs::read_to_string(&myid_path) {
            Ok(existing) if existing.trim() != ports.id.to_string() => {
                return Err(RenderError::MyidMismatch {
                    path: myid_path,
                    found: existing.trim().to_string(),
                    expected: ports.id,
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_if_changed(&myid_path, &format!("{}\n", ports.id), &mut changes, false)?;
            }
            Err(e) => return Err(io_err(&myid_path)(e)),
        }
        write_if_changed(&l.zoo_cfg, &zoo_cfg(spec, &plan, &l), &mut changes, true)?;
        if uses_dynamic_file(spec) {
            let path = l.conf_dir.join(DYNAMIC_CFG);
            write_if_changed(&path, &dynamic_cfg(spec, &plan, l.id), &mut changes, true)?;
        }
        write_if_changed(
            &l.conf_dir.join("log4j.properties"),
            LOG4J_TEMPLATE,
            &mut changes,
            false,
        )?;
    }
    Ok(changes)
}

/// The zoo.cfg text of one node.
pub fn zoo_cfg(spec: &EnsembleSpec, plan: &PortPlan, node: &NodeLayout) -> String {
    // What a node binds: its host's address, or the wildcard when the spec says so. Apache
    // binds the client address of its own server line (over clientPortAddress), so the
    // wildcard goes there too.
    let bind_of = |host| bind_addr(spec, host);
    // Apache dials the addresses of the server lines: with link proxies, its own view.
    let view = if spec.backend == crate::spec::BackendKind::Apache {
        peer_view(spec, plan, node.id)
    } else {
        plan.nodes.clone()
    };
    let servers = view
        .iter()
        .map(|n| {
            format!(
                "server.{}={}:{}:{}{}{}",
                n.id,
                n.host,
                n.quorum,
                n.election,
                if n.membership == Membership::Observer {
                    ":observer"
                } else {
                    ""
                },
                // TLS-only: no plaintext client address anywhere.
                if spec.security.secure_only {
                    String::new()
                } else {
                    format!(";{}", std::net::SocketAddr::new(bind_of(n.host), n.client))
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut role_lines = String::new();
    if node.ports.membership == Membership::Observer {
        role_lines.push_str("peerType=observer\n");
    }
    if spec.listen_on_all_ips {
        role_lines.push_str("quorumListenOnAllIPs=true\n");
    }
    let builtin = spec.backend == crate::spec::BackendKind::Builtin;
    if spec.network.faults && builtin {
        // The builtin server keeps the true server lines (they become the Raft membership and
        // /zookeeper/config) and dials the proxies named here.
        for n in peer_view(spec, plan, node.id) {
            if n.id != node.id {
                role_lines.push_str(&format!(
                    "zkherd.proxy.{}=127.0.0.1:{}:{}\n",
                    n.id, n.quorum, n.election
                ));
            }
        }
    }
    let bind = bind_of(node.ports.host);
    let admin = match node.ports.admin {
        Some(p) => {
            format!("admin.enableServer=true\nadmin.serverAddress={bind}\nadmin.serverPort={p}")
        }
        None => "admin.enableServer=false".to_string(),
    };
    let admin = match node.ports.metrics {
        Some(p) => format!(
            "{admin}\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\nmetricsProvider.httpHost={bind}\nmetricsProvider.httpPort={p}"
        ),
        None => admin,
    };
    let mut whitelist: Vec<String> = REQUIRED_4LW.iter().map(|s| s.to_string()).collect();
    let mut extra = String::new();
    for (k, v) in &spec.extra {
        if k == "4lw.commands.whitelist" {
            if v.trim() == "*" {
                whitelist = vec!["*".into()];
            } else {
                for w in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    if !whitelist.iter().any(|x| x == w) {
                        whitelist.push(w.to_string());
                    }
                }
            }
            continue;
        }
        extra.push_str(&format!("{k}={v}\n"));
    }
    if !spec.security.sasl_users.is_empty() {
        // The builtin server reads the JAAS path from this line; the apache backend hands it
        // to Java as the system property of the same name.
        extra.push_str(&format!(
            "authProvider.1={SASL_PROVIDER}\njava.security.auth.login.config={}\n",
            spec.dir.join(JAAS_SERVER).display()
        ));
    }
    if let Some(secure) = node.ports.secure {
        let tls = spec.dir.join(TLS_DIR);
        let m = crate::server::tls::Minted::in_dir(&tls);
        // Apache serves TLS through Netty only; the builtin server ignores the factory line.
        // Stores named under [zookeeper.extra] (your own PKCS#12 or PEM files) replace the
        // minted ones.
        let own = |k: &str| spec.extra.contains_key(k);
        let mut lines = vec![
            format!("secureClientPort={secure}"),
            format!("secureClientPortAddress={bind}"),
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
        ];
        if !own("ssl.keyStore.location") {
            lines.push(format!("ssl.keyStore.location={}", m.server.display()));
            lines.push("ssl.keyStore.type=PEM".into());
        }
        if !own("ssl.trustStore.location") {
            lines.push(format!("ssl.trustStore.location={}", m.ca.display()));
            lines.push("ssl.trustStore.type=PEM".into());
        }
        if !own("ssl.clientAuth") {
            lines.push(format!("ssl.clientAuth={}", spec.security.client_auth));
        }
        lines.push(format!("authProvider.x509={X509_PROVIDER}"));
        for l in lines {
            extra.push_str(&l);
            extra.push('\n');
        }
    }
    if let Some(secret) = own_super_secret(spec) {
        // zkherd's own super user, so `zkherd scale` may reconfig (Apache allows only the
        // super user by default).
        extra.push_str(&format!(
            "DigestAuthenticationProvider.superDigest={}\n",
            super_digest(SUPER_USER, &secret)
        ));
    }
    let text = fill(
        ZOO_CFG_TEMPLATE,
        &[
            ("myid", node.id.to_string()),
            ("name", spec.name.clone()),
            ("tick_time", spec.tick_time.to_string()),
            ("init_limit", spec.init_limit.to_string()),
            ("sync_limit", spec.sync_limit.to_string()),
            ("data_dir", node.data_dir.display().to_string()),
            ("datalog_dir", node.datalog_dir.display().to_string()),
            ("client_port", node.ports.client.to_string()),
            ("host", bind.to_string()),
            ("admin", admin),
            ("whitelist", whitelist.join(",")),
            (
                "servers",
                if uses_dynamic_file(spec) {
                    format!(
                        "{role_lines}dynamicConfigFile={}",
                        node.conf_dir.join(DYNAMIC_CFG).display()
                    )
                } else {
                    format!("{role_lines}{servers}")
                },
            ),
            ("extra", extra),
        ],
    );
    // Empty placeholders leave blank lines; keep the file tidy. With a dynamic file the client
    // port is its server line's.
    let dynamic = uses_dynamic_file(spec);
    let no_client_port = dynamic || spec.security.secure_only;
    let mut out = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !(no_client_port && l.starts_with("clientPort")))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// Replace `{{key}}` placeholders. Unknown placeholders are a bug in the template, caught by tests.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

fn write_if_changed(
    path: &Path,
    contents: &str,
    changes: &mut Vec<Change>,
    report_diff: bool,
) -> Result<(), RenderError> {
    write_file(path, contents, changes, report_diff, 0o644)
}

/// [`write_if_changed`] with the file's mode (before umask).
fn write_file(
    path: &Path,
    contents: &str,
    changes: &mut Vec<Change>,
    report_diff: bool,
    mode: u32,
) -> Result<(), RenderError> {
    use std::os::unix::fs::PermissionsExt;
    if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o777 != mode & 0o777) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
    }
    match fs::read_to_string(path) {
        Ok(old) if old == contents => return Ok(()),
        Ok(old) => {
            if report_diff {
                let old_lines: Vec<&str> = old.lines().collect();
                let new_lines: Vec<&str> = contents.lines().collect();
                changes.push(Change::Updated {
                    path: path.to_path_buf(),
                    removed: old_lines
                        .iter()
                        .filter(|l| !new_lines.contains(l))
                        .map(|s| s.to_string())
                        .collect(),
                    added: new_lines
                        .iter()
                        .filter(|l| !old_lines.contains(l))
                        .map(|s| s.to_string())
                        .collect(),
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            changes.push(Change::Created(path.to_path_buf()))
        }
        Err(e) => return Err(io_err(path)(e)),
    }
    // Write to a temporary file and rename, so a reader never sees half a config.
    let tmp = path.with_extension("zkherd-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::remove_file(&tmp);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .and_then(|mut f| f.write_all(contents.as_bytes()))
            .map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

/// Delete a cluster directory, but only one zkherd created.
pub fn purge(dir: &Path) -> Result<(), RenderError> {
    if !dir.exists() {
        return Ok(());
    }
    if !is_zkherd_dir(dir) {
        return Err(RenderError::Foreign {
            path: dir.to_path_buf(),
        });
    }
    fs::remove_dir_all(dir).map_err(io_err(dir))
}

/// Golden files live in tests/golden; `ZKHERD_BLESS=1 cargo test` rewrites them.
#[cfg(test)]
pub(crate) mod golden {
    use std::fs;
    use std::path::Path;

    pub(crate) fn golden(name: &str, actual: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("ZKHERD_BLESS").is_some() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, actual).unwrap();
        }
        let expected = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with ZKHERD_BLESS=1", path.display()));
        assert_eq!(
            actual,
            expected,
            "rendered output differs from {}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str, dir: &Path) -> EnsembleSpec {
        let mut s = EnsembleSpec::parse(text, Path::new("zkherd.toml"), Path::new("/")).unwrap();
        s.dir = dir.to_path_buf();
        s
    }

    use crate::render::golden::golden;

    #[test]
    fn zoo_cfg_matches_golden_files() {
        let s = spec(
            "[cluster]\nnodes = 3\nobservers = 1\n[zookeeper.extra]\nmaxClientCnxns = 0\n",
            Path::new("/clusters/demo"),
        );
        let plan = PortPlan::new(&s);
        let ls = layouts(&s);
        golden("zoo.cfg.node1", &zoo_cfg(&s, &plan, &ls[0]));
        golden("zoo.cfg.node4-observer", &zoo_cfg(&s, &plan, &ls[3]));
        let s = spec(
            "[ports]\nadmin = 8080\n[zookeeper.extra]\n\"4lw.commands.whitelist\" = \"wchc, srvr\"\n",
            Path::new("/clusters/demo"),
        );
        let plan = PortPlan::new(&s);
        golden(
            "zoo.cfg.admin-whitelist",
            &zoo_cfg(&s, &plan, &layouts(&s)[1]),
        );
    }

    #[test]
    fn members_bind_their_own_host_unless_the_spec_asks_for_all_ips() {
        let text = "[cluster]\nhosts = [\"10.0.0.1\", \"10.0.0.2\"]\n";
        let s = spec(text, Path::new("/c"));
        let plan = PortPlan::new(&s);
        let cfg = zoo_cfg(&s, &plan, &layouts(&s)[1]);
        assert!(cfg.contains("clientPortAddress=10.0.0.2\n"), "{cfg}");
        assert!(
            cfg.contains("server.1=10.0.0.1:2888:3888;10.0.0.1:2181\n"),
            "{cfg}"
        );
        assert!(
            !cfg.contains("0.0.0.0") && !cfg.contains("quorumListenOnAllIPs"),
            "{cfg}"
        );
        let s = spec(
            &format!("{text}listen_on_all_ips = true\n"),
            Path::new("/c"),
        );
        let cfg = zoo_cfg(&s, &plan, &layouts(&s)[1]);
        assert!(cfg.contains("clientPortAddress=0.0.0.0\n"), "{cfg}");
        assert!(cfg.contains("quorumListenOnAllIPs=true\n"), "{cfg}");
        // Peers still reach each member at its host; only the bind is the wildcard.
        assert!(
            cfg.contains("server.1=10.0.0.1:2888:3888;0.0.0.0:2181\n"),
            "{cfg}"
        );
    }

    #[test]
    fn rendering_creates_the_layout_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let s = spec("", &dir);
        let first = render(&s).unwrap();
        assert!(first.len() >= 3 * 3);
        for i in 1..=3 {
            let n = dir.join(format!("node{i}"));
            assert_eq!(
                fs::read_to_string(n.join("data/myid")).unwrap(),
                format!("{i}\n")
            );
            assert!(n.join("conf/zoo.cfg").is_file());
            assert!(n.join("datalog").is_dir() && n.join("logs").is_dir());
        }
        assert!(
            render(&s).unwrap().is_empty(),
            "second render changes nothing"
        );
    }

    #[test]
    fn sasl_users_give_owner_only_jaas_files_the_server_parses() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let s = spec(
            "[security]\nsasl_users = { bob = 'se\"cr\\\\et', super = 'x' }\n",
            &dir,
        );
        render(&s).unwrap();
        for f in [JAAS_SERVER, JAAS_CLIENT, "spec.json"] {
            let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let cfg = crate::server::config::ZooCfg::load(&dir.join("node1/conf/zoo.cfg")).unwrap();
        assert!(cfg.auth_schemes.contains("sasl"));
        let users = cfg.sasl.expect("SASL configured").users;
        assert_eq!(users.0.get("bob").map(String::as_str), Some("se\"cr\\\\et"));
        let client = fs::read_to_string(dir.join(JAAS_CLIENT)).unwrap();
        let j = crate::server::sasl::Jaas::parse(&client, Path::new("c")).unwrap();
        assert_eq!(j.sections["Client"][0].options["username"], "bob");
        assert_eq!(j.sections["Client"][0].options["password"], "se\"cr\\\\et");
    }

    #[test]
    fn a_changed_spec_reports_the_changed_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        render(&spec("", &dir)).unwrap();
        let changes = render(&spec("[zookeeper]\ntickTime = 500\n", &dir)).unwrap();
        let cfg_changes: Vec<_> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Updated {
                    path,
                    removed,
                    added,
                } if path.ends_with("zoo.cfg") => Some((removed.clone(), added.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(cfg_changes.len(), 3);
        assert_eq!(
            cfg_changes[0],
            (vec!["tickTime=2000".into()], vec!["tickTime=500".into()])
        );
    }

    #[test]
    fn a_foreign_directory_is_never_written_or_purged() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("precious.txt"), "keep").unwrap();
        let e = render(&spec("", tmp.path())).unwrap_err();
        assert!(matches!(e, RenderError::Foreign { .. }), "{e}");
        assert!(e.to_string().contains("was not created by zkherd"));
        assert!(matches!(
            purge(tmp.path()),
            Err(RenderError::Foreign { .. })
        ));
        assert!(tmp.path().join("precious.txt").exists());
    }

    #[test]
    fn purge_removes_a_zkherd_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        render(&spec("", &dir)).unwrap();
        purge(&dir).unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn a_myid_of_another_node_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        render(&spec("", &dir)).unwrap();
        fs::write(dir.join("node2/data/myid"), "7\n").unwrap();
        let e = render(&spec("", &dir)).unwrap_err();
        assert!(
            matches!(e, RenderError::MyidMismatch { expected: 2, .. }),
            "{e}"
        );
    }

    #[test]
    fn reconfig_gives_a_super_user_and_apache_a_dynamic_config_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let text = "[cluster]\nbackend = \"apache\"\nobservers = 1\n[zookeeper.extra]\nreconfigEnabled = true\n";
        render(&spec(text, &dir)).unwrap();
        let secret = fs::read_to_string(dir.join(SUPER_SECRET)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(SUPER_SECRET))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let cfg = fs::read_to_string(dir.join("node1/conf/zoo.cfg")).unwrap();
        assert!(cfg.contains(&format!(
            "DigestAuthenticationProvider.superDigest={}\n",
            super_digest("zkherd", secret.trim())
        )));
        assert!(cfg.contains(&format!(
            "dynamicConfigFile={}\n",
            dir.join("node1/conf/zoo.cfg.dynamic").display()
        )));
        assert!(
            !cfg.contains("clientPort") && !cfg.contains("server."),
            "{cfg}"
        );
        let dynamic = fs::read_to_string(dir.join("node1/conf/zoo.cfg.dynamic")).unwrap();
        assert_eq!(
            dynamic,
            "server.1=127.0.0.1:2881:3881:participant;127.0.0.1:2181\n\
             server.2=127.0.0.1:2882:3882:participant;127.0.0.1:2182\n\
             server.3=127.0.0.1:2883:3883:participant;127.0.0.1:2183\n\
             server.4=127.0.0.1:2884:3884:observer;127.0.0.1:2184\n"
        );
        assert_eq!(
            super_auth(&spec(text, &dir)),
            Some(format!("zkherd:{}", secret.trim()))
        );
        // Rendering again keeps the secret; builtin nodes keep their server lines.
        let builtin = text.replace("apache", "builtin");
        render(&spec(&builtin, &dir)).unwrap();
        assert_eq!(fs::read_to_string(dir.join(SUPER_SECRET)).unwrap(), secret);
        let cfg = fs::read_to_string(dir.join("node1/conf/zoo.cfg")).unwrap();
        assert!(
            cfg.contains("server.4=") && cfg.contains("clientPort="),
            "{cfg}"
        );
        // Digest of a known password, as ZooKeeper's DigestAuthenticationProvider computes it.
        assert_eq!(
            super_digest("super", "secret"),
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
    }
}
