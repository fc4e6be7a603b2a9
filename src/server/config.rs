//! zoo.cfg as Apache ZooKeeper reads it: `key=value` lines, `#` comments, unknown keys warned
//! about (not fatal), `myid` from `dataDir/myid`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Missing { path: PathBuf, message: String },
    #[error("{0} (named by {1})")]
    Jaas(super::sasl::JaasError, String),
}

/// TLS on `secureClientPort` (see [`super::tls`]).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub port: u16,
    /// `secureClientPortAddress`; default the client port's address.
    pub address: IpAddr,
    pub key_store: super::tls::Store,
    pub trust_store: Option<super::tls::Store>,
    pub client_auth: super::tls::ClientAuth,
    /// `X509AuthenticationProvider.superUser`: the certificate subject that is the super user.
    pub x509_super_user: Option<String>,
    /// `ssl.authProvider`: the scheme whose provider authenticates client certificates
    /// (`x509`); when it is not registered, Apache closes every connection that presents one.
    pub auth_provider: String,
}

/// SASL on the client port: the JAAS file's server section and the users it names.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    pub jaas: PathBuf,
    pub section: String,
    pub users: super::sasl::SaslUsers,
}

/// One `server.N=host:quorum:election[:role];[clientHost:]clientPort` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client: Option<SocketAddr>,
}

/// An HTTP endpoint of a node (AdminServer, Prometheus); no host = the client port's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub host: Option<IpAddr>,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct ZooCfg {
    pub path: PathBuf,
    pub tick_time: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_address: IpAddr,
    pub max_client_cnxns: usize,
    pub min_session_timeout: i32,
    pub max_session_timeout: i32,
    /// `None` = only the default (`srvr`); `Some(["*"])` = every command.
    pub whitelist: Vec<String>,
    pub servers: Vec<ServerLine>,
    pub myid: Option<u64>,
    pub extended_types: bool,
    pub super_digest: Option<String>,
    /// `enforceQuota` (Apache reads it as the `zookeeper.enforceQuota` property): hard quota
    /// limits refuse writes with QuotaExceeded.
    pub enforce_quota: bool,
    pub force_sync: bool,
    /// `quorumListenOnAllIPs`: bind the quorum and election ports on the wildcard address
    /// instead of the address in this server's own `server.N` line.
    pub quorum_listen_on_all_ips: bool,
    /// `reconfigEnabled`: whether clients may change the membership (off by default, as in
    /// Apache since 3.5.3).
    pub reconfig_enabled: bool,
    /// `zkherd.proxy.N=host:quorumPort:electionPort`: dial member N there (zkherd's link
    /// proxies, for network faults) instead of at its own address.
    pub proxies: BTreeMap<u64, String>,
    /// `readonlymode.enabled` (Apache reads it as a JVM system property): a member cut off
    /// from the quorum serves read-only sessions.
    pub read_only: bool,
    pub snap_count: u64,
    pub snap_retain_count: usize,
    /// Hours between purges; 0 = off.
    pub purge_interval_h: u64,
    pub max_buffer: usize,
    /// The AdminServer (`admin.enableServer`, `admin.serverAddress`, `admin.serverPort`): off
    /// unless zoo.cfg turns it on or names a port, and bound to the client port's host by
    /// default (Apache binds 0.0.0.0:8080 whenever it is not turned off).
    pub admin: Option<HttpEndpoint>,
    /// `admin.commandURL`: where the commands are listed (`/commands`).
    pub admin_command_url: String,
    /// The Prometheus endpoint (`metricsProvider.className=…PrometheusMetricsProvider`,
    /// `metricsProvider.httpHost`, `metricsProvider.httpPort`).
    pub metrics: Option<HttpEndpoint>,
    /// `authProvider.N=…` (Apache's `zookeeper.authProvider.*` properties): the extra ACL
    /// schemes registered, `sasl` for SASLAuthenticationProvider. digest and ip always are.
    pub auth_schemes: BTreeSet<String>,
    /// Where the JAAS file is: zoo.cfg `java.security.auth.login.config` (the builtin server
    /// reads it from zoo.cfg; the apache backend passes the line to Java as the system
    /// property of that name), else `-Djava.security.auth.login.config=` in
    /// `$SERVER_JVMFLAGS`/`$JVMFLAGS`, as zkServer.sh passes it.
    pub jaas_path: Option<PathBuf>,
    /// The JAAS section with the server's users (`sasl.serverconfig`, default `Server`).
    pub sasl_section: String,
    /// Filled by [`ZooCfg::load`] from the JAAS file; `None` = SASL is not configured.
    pub sasl: Option<SaslConfig>,
    /// `superUser`: the SASL user that is also the super user (Apache's `zookeeper.superUser`).
    pub sasl_super_user: Option<String>,
    /// `allowSaslFailedClients`: keep a connection whose SASL exchange failed.
    pub allow_sasl_failed: bool,
    /// `secureClientPort` and its `ssl.*` settings; `None` = no TLS port.
    pub tls: Option<TlsSettings>,
    /// Every key=value as written, for `conf`.
    pub raw: BTreeMap<String, String>,
    /// Keys this server does not understand (warned about at start).
    pub unknown: Vec<String>,
}

/// Keys read here or accepted as harmless.
const KNOWN: &[&str] = &[
    "tickTime",
    "initLimit",
    "syncLimit",
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "4lw.commands.whitelist",
    "extendedTypesEnabled",
    "zookeeper.extendedTypesEnabled",
    "enforceQuota",
    "zookeeper.enforceQuota",
    "DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.superDigest",
    "forceSync",
    "snapCount",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "jute.maxbuffer",
    "peerType",
    "standaloneEnabled",
    "reconfigEnabled",
    "admin.enableServer",
    "admin.serverPort",
    "admin.serverAddress",
    "admin.commandURL",
    "metricsProvider.className",
    "metricsProvider.httpHost",
    "metricsProvider.httpPort",
    "metricsProvider.exportJvmInfo",
    "electionAlg",
    "quorumListenOnAllIPs",
    "readonlymode.enabled",
    "java.security.auth.login.config",
    "sasl.serverconfig",
    "zookeeper.sasl.serverconfig",
    "superUser",
    "zookeeper.superUser",
    "allowSaslFailedClients",
    "zookeeper.allowSaslFailedClients",
    "secureClientPort",
    "secureClientPortAddress",
    // Apache needs Netty for TLS; the builtin server has one connection layer for both ports.
    "serverCnxnFactory",
    "ssl.keyStore.location",
    "ssl.keyStore.password",
    "ssl.keyStore.type",
    "ssl.trustStore.location",
    "ssl.trustStore.password",
    "ssl.trustStore.type",
    "ssl.clientAuth",
    "ssl.authProvider",
    "ssl.hostnameVerification",
    "ssl.protocol",
    "ssl.enabledProtocols",
    "ssl.ciphersuites",
    "X509AuthenticationProvider.superUser",
];

/// `-Dkey=value` in a JVM flags string, the way zkServer.sh hands flags to Java.
fn jvm_flag(flags: &str, key: &str) -> Option<String> {
    let prefix = format!("-D{key}=");
    flags
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&prefix))
        .map(|v| v.trim_matches(['"', '\'']).to_string())
}

impl ZooCfg {
    /// What the replicated state machine takes from this file.
    pub fn tree_options(&self) -> super::tree::TreeOptions {
        super::tree::TreeOptions {
            extended_types: self.extended_types,
            super_digest: self.super_digest.clone(),
            enforce_quota: self.enforce_quota,
            auth_schemes: self.auth_schemes.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<ZooCfg, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::parse(&text, path)?;
        let myid_path = cfg.data_dir.join("myid");
        if let Ok(s) = std::fs::read_to_string(&myid_path) {
            let id = s.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                path: myid_path.clone(),
                line: 1,
                message: format!("{:?} is not a server id", s.trim()),
            })?;
            cfg.myid = Some(id);
        }
        // The environment, as zkServer.sh hands it to Java, when zoo.cfg names no JAAS file
        // (read here, not in the pure `parse`).
        if cfg.jaas_path.is_none() {
            cfg.jaas_path = ["SERVER_JVMFLAGS", "JVMFLAGS"].iter().find_map(|v| {
                jvm_flag(&std::env::var(v).ok()?, "java.security.auth.login.config")
                    .map(PathBuf::from)
            });
        }
        if let Some(jaas) = cfg.jaas_path.clone() {
            cfg.sasl = cfg.load_sasl(&jaas)?;
        }
        if cfg.servers.len() > 1 && cfg.myid.is_none() {
            return Err(ConfigError::Missing {
                path: myid_path,
                message: "myid file is missing; a quorum member needs its server id".into(),
            });
        }
        Ok(cfg)
    }

    /// Read the JAAS file's server section. A file without that section is no error (Apache
    /// then runs without SASL too); a file that cannot be read or parsed, or a section with a
    /// login module other than DIGEST-MD5's, is.
    fn load_sasl(&self, jaas: &Path) -> Result<Option<SaslConfig>, ConfigError> {
        let named_by = format!(
            "{}: java.security.auth.login.config, or $SERVER_JVMFLAGS",
            self.path.display()
        );
        let text = std::fs::read_to_string(jaas).map_err(|e| {
            ConfigError::Jaas(
                super::sasl::JaasError::Unusable {
                    path: jaas.to_path_buf(),
                    message: format!("cannot read the JAAS file: {e}"),
                },
                named_by.clone(),
            )
        })?;
        let parsed = super::sasl::Jaas::parse(&text, jaas)
            .map_err(|e| ConfigError::Jaas(e, named_by.clone()))?;
        if !parsed.sections.contains_key(&self.sasl_section) {
            tracing::warn!(
                "{}: no JAAS section named {}; SASL is off",
                jaas.display(),
                self.sasl_section
            );
            return Ok(None);
        }
        let users = parsed
            .digest_users(&self.sasl_section, jaas)
            .map_err(|e| ConfigError::Jaas(e, named_by))?;
        Ok(Some(SaslConfig {
            jaas: jaas.to_path_buf(),
            section: self.sasl_section.clone(),
            users,
        }))
    }

    pub fn parse(text: &str, path: &Path) -> Result<ZooCfg, ConfigError> {
        let mut raw = BTreeMap::new();
        let mut lines = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (k, v) = t.split_once('=').ok_or_else(|| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("{t:?} is not key=value"),
            })?;
            raw.insert(k.trim().to_string(), v.trim().to_string());
            lines.insert(k.trim().to_string(), i + 1);
        }
        let err = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: lines.get(key).copied().unwrap_or(0),
            message: format!("{key}: {message}"),
        };
        fn num<T: std::str::FromStr>(
            raw: &BTreeMap<String, String>,
            key: &str,
            default: T,
            err: &dyn Fn(&str, String) -> ConfigError,
        ) -> Result<T, ConfigError> {
            match raw.get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<T>()
                    .map_err(|_| err(key, format!("{v:?} is not a number"))),
            }
        }
        let tick_time: u32 = num(&raw, "tickTime", 3000, &err)?;
        if tick_time == 0 {
            return Err(err("tickTime", "must be positive".into()));
        }
        let data_dir = PathBuf::from(
            raw.get("dataDir")
                .ok_or_else(|| err("dataDir", "dataDir is not set".into()))?,
        );
        let data_log_dir = raw
            .get("dataLogDir")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.clone());
        let client_port: u16 = num(&raw, "clientPort", 0, &err)?;
        let client_address: IpAddr = match raw.get("clientPortAddress") {
            Some(a) => a
                .parse()
                .map_err(|_| err("clientPortAddress", format!("{a:?} is not an IP address")))?,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let min_session_timeout = num(&raw, "minSessionTimeout", 2 * tick_time as i32, &err)?;
        let max_session_timeout = num(&raw, "maxSessionTimeout", 20 * tick_time as i32, &err)?;
        let mut servers = Vec::new();
        for (k, v) in &raw {
            if let Some(id) = k.strip_prefix("server.") {
                let id: u64 = id
                    .parse()
                    .map_err(|_| err(k, "server id is not a number".into()))?;
                servers.push(parse_server_line(id, v).map_err(|m| err(k, m))?);
            }
        }
        servers.sort_by_key(|s| s.id);
        // Apache's ssl settings are `zookeeper.ssl.*` system properties; zoo.cfg may name
        // them with or without the prefix.
        let prop = |key: &str| {
            raw.get(key)
                .or_else(|| raw.get(&format!("zookeeper.{key}")))
                .cloned()
        };
        let secure_port: u16 = num(&raw, "secureClientPort", 0, &err)?;
        if client_port == 0 && secure_port == 0 && !servers.iter().any(|s| s.client.is_some()) {
            return Err(err(
                "clientPort",
                "clientPort is not set (nor secureClientPort)".into(),
            ));
        }
        let tls = if secure_port == 0 {
            None
        } else {
            let store = |what: &str| {
                prop(&format!("ssl.{what}.location")).map(|l| super::tls::Store {
                    location: PathBuf::from(l),
                    kind: prop(&format!("ssl.{what}.type")),
                    password: prop(&format!("ssl.{what}.password")),
                })
            };
            let key_store = store("keyStore").ok_or_else(|| {
                err(
                    "secureClientPort",
                    "a secure client port needs ssl.keyStore.location (the server's key and \
                     certificate)"
                        .into(),
                )
            })?;
            let client_auth = match prop("ssl.clientAuth") {
                None => super::tls::ClientAuth::Need,
                Some(v) => super::tls::ClientAuth::parse(&v).ok_or_else(|| {
                    err("ssl.clientAuth", format!("{v:?} is not none, want or need"))
                })?,
            };
            let address = match raw.get("secureClientPortAddress") {
                Some(a) => a.parse().map_err(|_| {
                    err(
                        "secureClientPortAddress",
                        format!("{a:?} is not an IP address"),
                    )
                })?,
                None => client_address,
            };
            Some(TlsSettings {
                port: secure_port,
                address,
                key_store,
                trust_store: store("trustStore"),
                client_auth,
                x509_super_user: prop("X509AuthenticationProvider.superUser"),
                auth_provider: prop("ssl.authProvider").unwrap_or_else(|| "x509".into()),
            })
        };
        let bool_of = |key: &str| -> Result<Option<bool>, ConfigError> {
            match raw.get(key).map(|v| v.to_ascii_lowercase()) {
                None => Ok(None),
                Some(v) if v == "true" || v == "yes" => Ok(Some(true)),
                Some(v) if v == "false" || v == "no" => Ok(Some(false)),
                Some(v) => Err(err(key, format!("{v:?} is not true/false"))),
            }
        };
        let extended_types = bool_of("extendedTypesEnabled")?
            .or(bool_of("zookeeper.extendedTypesEnabled")?)
            .unwrap_or(false);
        let enforce_quota = bool_of("enforceQuota")?
            .or(bool_of("zookeeper.enforceQuota")?)
            .unwrap_or(false);
        let force_sync = bool_of("forceSync")?.unwrap_or(true);
        let quorum_listen_on_all_ips = bool_of("quorumListenOnAllIPs")?.unwrap_or(false);
        let reconfig_enabled = bool_of("reconfigEnabled")?.unwrap_or(false);
        let read_only = bool_of("readonlymode.enabled")?.unwrap_or(false);
        let proxies = raw
            .iter()
            .filter_map(|(k, v)| {
                let id = k.strip_prefix("zkherd.proxy.")?.parse::<u64>().ok()?;
                Some((id, v.trim().to_string()))
            })
            .collect();
        // The HTTP endpoints bind the client port's host unless told otherwise (a wildcard
        // client address stays a wildcard).
        let host_of = |key: &str| -> Result<Option<IpAddr>, ConfigError> {
            match raw.get(key) {
                None => Ok(None),
                Some(a) => a
                    .parse()
                    .map(Some)
                    .map_err(|_| err(key, format!("{a:?} is not an IP address"))),
            }
        };
        let admin_on = match bool_of("admin.enableServer")? {
            Some(on) => on,
            None => raw.contains_key("admin.serverPort"),
        };
        let admin = if admin_on {
            let port: u16 = num(&raw, "admin.serverPort", 8080, &err)?;
            Some(HttpEndpoint {
                host: host_of("admin.serverAddress")?,
                port,
            })
        } else {
            None
        };
        let metrics = match raw.get("metricsProvider.className") {
            Some(c) if c.ends_with("PrometheusMetricsProvider") => {
                let port: u16 = num(&raw, "metricsProvider.httpPort", 7000, &err)?;
                Some(HttpEndpoint {
                    host: host_of("metricsProvider.httpHost")?,
                    port,
                })
            }
            Some(c)
                if c.ends_with("DefaultMetricsProvider") || c.ends_with("NullMetricsProvider") =>
            {
                None
            }
            Some(c) => {
                return Err(err(
                    "metricsProvider.className",
                    format!(
                        "{c:?} is not a metrics provider this server has; use \
                         org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
                    ),
                ))
            }
            None => None,
        };
        let whitelist = match raw.get("4lw.commands.whitelist") {
            None => vec!["srvr".to_string()],
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        let mut auth_schemes = BTreeSet::new();
        for (k, v) in &raw {
            if !k.starts_with("authProvider.") && !k.starts_with("zookeeper.authProvider.") {
                continue;
            }
            match v.rsplit('.').next().unwrap_or("") {
                "SASLAuthenticationProvider" => {
                    auth_schemes.insert("sasl".to_string());
                }
                "X509AuthenticationProvider" => {
                    auth_schemes.insert("x509".to_string());
                }
                "DigestAuthenticationProvider" | "IPAuthenticationProvider" => {}
                other => {
                    return Err(err(
                        k,
                        format!(
                            "{other:?} is not an authentication provider this server has; it \
                             knows org.apache.zookeeper.server.auth.SASLAuthenticationProvider \
                             and X509AuthenticationProvider (digest and ip are always on)"
                        ),
                    ))
                }
            }
        }
        let jaas_path = raw
            .get("java.security.auth.login.config")
            .map(PathBuf::from);
        let sasl_section = raw
            .get("sasl.serverconfig")
            .or(raw.get("zookeeper.sasl.serverconfig"))
            .cloned()
            .unwrap_or_else(|| "Server".into());
        let sasl_super_user = raw
            .get("superUser")
            .or(raw.get("zookeeper.superUser"))
            .cloned();
        let allow_sasl_failed = bool_of("allowSaslFailedClients")?
            .or(bool_of("zookeeper.allowSaslFailedClients")?)
            .unwrap_or(false);
        let unknown = raw
            .keys()
            .filter(|k| {
                !KNOWN.contains(&k.as_str())
                    && !k.starts_with("server.")
                    && !k.starts_with("zkherd.proxy.")
                    && !k.starts_with("authProvider.")
                    && !k.starts_with("zookeeper.authProvider.")
            })
            .cloned()
            .collect();
        Ok(ZooCfg {
            path: path.to_path_buf(),
            tick_time,
            init_limit: num(&raw, "initLimit", 10, &err)?,
            sync_limit: num(&raw, "syncLimit", 5, &err)?,
            data_dir,
            data_log_dir,
            client_port,
            client_address,
            max_client_cnxns: num(&raw, "maxClientCnxns", 60, &err)?,
            min_session_timeout,
            max_session_timeout,
            whitelist,
            servers,
            myid: None,
            extended_types,
            enforce_quota,
            super_digest: raw
                .get("DigestAuthenticationProvider.superDigest")
                .or(raw.get("zookeeper.DigestAuthenticationProvider.superDigest"))
                .cloned(),
            force_sync,
            quorum_listen_on_all_ips,
            reconfig_enabled,
            proxies,
            read_only,
            snap_count: num(&raw, "snapCount", 100_000, &err)?.max(2),
            snap_retain_count: num(&raw, "autopurge.snapRetainCount", 3usize, &err)?.max(3),
            purge_interval_h: num(&raw, "autopurge.purgeInterval", 0, &err)?,
            max_buffer: num(
                &raw,
                "jute.maxbuffer",
                super::proto::DEFAULT_MAX_BUFFER,
                &err,
            )?,
            admin,
            admin_command_url: raw
                .get("admin.commandURL")
                .cloned()
                .unwrap_or_else(|| "/commands".into()),
            metrics,
            auth_schemes,
            jaas_path,
            sasl_section,
            sasl: None,
            sasl_super_user,
            allow_sasl_failed,
            tls,
            raw,
            unknown,
        })
    }

    /// Whether `cmd` may run (`4lw.commands.whitelist`).
    pub fn allows(&self, cmd: &str) -> bool {
        self.whitelist.iter().any(|w| w == "*" || w == cmd)
    }

    /// Whether there is a plaintext client port (a TLS-only server has none).
    pub fn has_client_port(&self) -> bool {
        self.client_addr().port() != 0
    }

    /// The address the client port listens on.
    pub fn client_addr(&self) -> SocketAddr {
        let mine = self
            .myid
            .and_then(|id| self.servers.iter().find(|s| s.id == id))
            .and_then(|s| s.client);
        match (self.client_port, mine) {
            (0, Some(a)) => a,
            (p, _) => SocketAddr::new(self.client_address, p),
        }
    }

    /// Where an HTTP endpoint listens: its own host, or the client port's.
    pub fn http_addr(&self, e: HttpEndpoint) -> SocketAddr {
        SocketAddr::new(e.host.unwrap_or(self.client_addr().ip()), e.port)
    }

    /// Standalone when there is at most one server line (Apache's standaloneEnabled default).
    pub fn is_standalone(&self) -> bool {
        self.servers.len() <= 1
    }
}

fn parse_server_line(id: u64, v: &str) -> Result<ServerLine, String> {
    let (peer, client) = match v.split_once(';') {
        Some((p, c)) => (p, Some(c)),
        None => (v, None),
    };
    let parts: Vec<&str> = peer.split(':').collect();
    if parts.len() < 3 {
        return Err(format!("{v:?} is not host:quorumPort:electionPort"));
    }
    let port = |s: &str| s.parse::<u16>().map_err(|_| format!("{s:?} is not a port"));
    let observer = match parts.get(3) {
        None | Some(&"participant") => false,
        Some(&"observer") => true,
        Some(other) => return Err(format!("unknown role {other:?}")),
    };
    let client = match client {
        None => None,
        Some(c) => {
            let (h, p) = match c.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => ("0.0.0.0", c),
            };
            let ip: IpAddr = h
                .parse()
                .map_err(|_| format!("{h:?} is not an IP address"))?;
            Some(SocketAddr::new(ip, port(p)?))
        }
    };
    Ok(ServerLine {
        id,
        host: parts[0].to_string(),
        quorum_port: port(parts[1])?,
        election_port: port(parts[2])?,
        observer,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_cfg(dir: &Path, jaas: &str, extra: &str) -> Result<ZooCfg, ConfigError> {
        let jaas_path = dir.join("jaas.conf");
        std::fs::write(&jaas_path, jaas).unwrap();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPort=2181\nauthProvider.1=org.apache.zookeeper.server.auth.\
                 SASLAuthenticationProvider\njava.security.auth.login.config={}\n{extra}",
                dir.display(),
                jaas_path.display()
            ),
        )
        .unwrap();
        ZooCfg::load(&cfg)
    }

    #[test]
    fn a_jaas_server_section_gives_the_sasl_users() {
        let t = tempfile::tempdir().unwrap();
        let c = sasl_cfg(
            t.path(),
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"s\"; };",
            "superUser=bob\n",
        )
        .unwrap();
        assert!(c.auth_schemes.contains("sasl"));
        assert_eq!(c.sasl.unwrap().users.0.get("bob").unwrap(), "s");
        assert_eq!(c.sasl_super_user.as_deref(), Some("bob"));
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    }

    #[test]
    fn sasl_problems_are_config_errors_that_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let e = sasl_cfg(
            t.path(),
            "Server { com.sun.security.auth.module.Krb5LoginModule required; };",
            "",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("jaas.conf") && e.to_string().contains("DIGEST-MD5 only"),
            "{e}"
        );
        let e = sasl_cfg(t.path(), "Server {", "").unwrap_err();
        assert!(e.to_string().contains("jaas.conf:1"), "{e}");
        // No server section: SASL stays off, as in Apache.
        let c = sasl_cfg(
            t.path(),
            "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"b\"; };",
            "",
        )
        .unwrap();
        assert!(c.sasl.is_none());
        let e = sasl_cfg(t.path(), "", "authProvider.2=com.example.Mine\n").unwrap_err();
        assert!(e.to_string().contains("authProvider.2"), "{e}");
    }

    #[test]
    fn jvm_flags_name_the_jaas_file_as_zkserver_sh_passes_them() {
        assert_eq!(
            jvm_flag(
                "-Xmx1g -Djava.security.auth.login.config=/etc/zk/jaas.conf -Dx=y",
                "java.security.auth.login.config"
            )
            .as_deref(),
            Some("/etc/zk/jaas.conf")
        );
        assert_eq!(jvm_flag("-Xmx1g", "java.security.auth.login.config"), None);
    }

    #[test]
    fn zkherd_rendered_config_parses() {
        let golden = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/zoo.cfg.node4-observer"),
        )
        .unwrap();
        let c = ZooCfg::parse(&golden, Path::new("zoo.cfg")).unwrap();
        assert_eq!(c.tick_time, 2000);
        assert_eq!(c.client_port, 2184);
        assert_eq!(c.servers.len(), 4);
        assert!(c.servers[3].observer);
        assert_eq!(c.servers[0].client.unwrap().to_string(), "127.0.0.1:2181");
        assert_eq!(
            (c.min_session_timeout, c.max_session_timeout),
            (4000, 40000)
        );
        assert!(c.allows("mntr") && !c.allows("wchc"));
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    }

    #[test]
    fn defaults_and_errors() {
        let c = ZooCfg::parse("dataDir=/d\nclientPort=2181\nfoo.bar=1\n", Path::new("z")).unwrap();
        assert_eq!(c.tick_time, 3000);
        assert_eq!(c.whitelist, vec!["srvr"]);
        assert_eq!(c.unknown, vec!["foo.bar"]);
        assert!(c.force_sync);
        let e = ZooCfg::parse("dataDir=/d\nclientPort=abc\n", Path::new("z")).unwrap_err();
        assert_eq!(e.to_string(), "z:2: clientPort: \"abc\" is not a number");
        let e = ZooCfg::parse("clientPort=1\n", Path::new("z")).unwrap_err();
        assert!(e.to_string().contains("dataDir"));
        let e =
            ZooCfg::parse("dataDir=/d\nclientPort=1\nserver.1=a:b\n", Path::new("z")).unwrap_err();
        assert!(e.to_string().starts_with("z:3: server.1"), "{e}");
    }
}
