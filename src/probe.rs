//! Four-letter words: a small client and parsers for `srvr`, `mntr`, `ruok` and `cons`.
//!
//! Any backend whose nodes answer four-letter words on the client port can be probed: Apache
//! ZooKeeper and zkherd's builtin server alike. The parsers work on the text formats of
//! ZooKeeper 3.8 (see `tests/fixtures/4lw`, captured from real servers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a server says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
    ReadOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{addr}: connection failed: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr}: no answer to `{cmd}` within {timeout:?}")]
    Timeout {
        addr: SocketAddr,
        cmd: String,
        timeout: Duration,
    },
    #[error("{addr}: `{cmd}` failed: {source}")]
    Io {
        addr: SocketAddr,
        cmd: String,
        source: std::io::Error,
    },
    #[error("{addr}: `{cmd}` is not in the server's 4lw.commands.whitelist")]
    NotWhitelisted { addr: SocketAddr, cmd: String },
    #[error("{addr}: not currently serving requests (no quorum yet, or electing)")]
    NotServing { addr: SocketAddr },
    #[error("{addr}: cannot parse the `{cmd}` reply: {reason}")]
    Parse {
        addr: SocketAddr,
        cmd: String,
        reason: String,
    },
}

/// How a probe reaches a node: plaintext, or TLS with this client configuration (a
/// TLS-only cluster's secure client port).
pub type Tls = Option<std::sync::Arc<rustls::ClientConfig>>;

/// Send a four-letter word and read the reply until the server closes the connection.
pub async fn four_letter_word(
    addr: SocketAddr,
    cmd: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    four_letter_word_via(addr, &None, cmd, timeout).await
}

/// [`four_letter_word`] over `tls` when given.
pub async fn four_letter_word_via(
    addr: SocketAddr,
    tls: &Tls,
    cmd: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let text = exchange(addr, tls, cmd, cmd.as_bytes(), true, timeout).await?;
    if text.contains("is not executed because it is not in the whitelist") {
        return Err(ProbeError::NotWhitelisted {
            addr,
            cmd: cmd.to_string(),
        });
    }
    if text.starts_with("This ZooKeeper instance is not currently serving requests") {
        return Err(ProbeError::NotServing { addr });
    }
    Ok(text)
}

/// Parsed `srvr` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Srvr {
    pub version: String,
    pub mode: Mode,
    pub zxid: u64,
    pub connections: u64,
    pub outstanding: u64,
    pub node_count: u64,
    pub received: u64,
    pub sent: u64,
}

impl Srvr {
    /// The election epoch carried in the zxid's high 32 bits.
    pub fn epoch(&self) -> u32 {
        (self.zxid >> 32) as u32
    }
}

/// Parse a `srvr` (or `stat`) reply.
pub fn parse_srvr(text: &str) -> Result<Srvr, String> {
    let mut fields = BTreeMap::new();
    let mut version = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Zookeeper version: ") {
            version = Some(v.split(',').next().unwrap_or(v).trim().to_string());
            continue;
        }
        // `stat` lists clients as " /ip:port[...](...)" lines; skip anything without "Key: ".
        if let Some((k, v)) = line.split_once(": ") {
            if !k.starts_with(' ') {
                fields.insert(k.trim(), v.trim());
            }
        }
    }
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| format!("no `{k}` line"))
    };
    let num = |k: &str| -> Result<u64, String> {
        get(k)?
            .parse::<u64>()
            .map_err(|_| format!("`{k}` is not a number"))
    };
    let zxid_text = get("Zxid")?;
    let zxid = u64::from_str_radix(zxid_text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("`Zxid: {zxid_text}` is not hex"))?;
    Ok(Srvr {
        version: version.ok_or("no `Zookeeper version` line")?,
        mode: parse_mode(get("Mode")?)?,
        zxid,
        connections: num("Connections")?,
        outstanding: num("Outstanding")?,
        node_count: num("Node count")?,
        received: num("Received")?,
        sent: num("Sent")?,
    })
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Ok(match s {
        "leader" => Mode::Leader,
        "follower" => Mode::Follower,
        "observer" => Mode::Observer,
        "standalone" => Mode::Standalone,
        "read-only" => Mode::ReadOnly,
        other => return Err(format!("unknown mode {other:?}")),
    })
}

/// Parsed `mntr` reply: every `zk_key\tvalue` line, keys without the `zk_` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mntr {
    pub values: BTreeMap<String, String>,
}

impl Mntr {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse::<f64>().ok().map(|f| f as u64)
    }

    /// `zk_server_state`: leader, follower, observer, standalone.
    pub fn server_state(&self) -> Option<&str> {
        self.get("server_state")
    }

    /// Leader only: followers in sync (`zk_synced_followers`).
    pub fn synced_followers(&self) -> Option<u64> {
        self.number("synced_followers")
    }

    /// Leader only: connected learners (`zk_followers` or, in 3.6+, `zk_learners`).
    pub fn followers(&self) -> Option<u64> {
        self.number("followers").or_else(|| self.number("learners"))
    }

    /// Leader only: observers in sync (`zk_synced_observers`).
    pub fn synced_observers(&self) -> Option<u64> {
        self.number("synced_observers")
    }
}

pub fn parse_mntr(text: &str) -> Result<Mntr, String> {
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {line:?} has no tab"))?;
        let k = k.strip_prefix("zk_").unwrap_or(k);
        values.insert(k.to_string(), v.trim().to_string());
    }
    if !values.contains_key("server_state") {
        return Err("no zk_server_state line".into());
    }
    Ok(Mntr { values })
}

/// `ruok` answers `imok` when the server is running (not necessarily serving).
pub fn parse_ruok(text: &str) -> bool {
    text.starts_with("imok")
}

/// One line of `cons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub remote: String,
    pub fields: BTreeMap<String, String>,
}

impl Connection {
    /// The session id, when the connection has one.
    pub fn session_id(&self) -> Option<u64> {
        let sid = self.fields.get("sid")?;
        u64::from_str_radix(sid.trim_start_matches("0x"), 16).ok()
    }
}

/// Parse `cons`: ` /ip:port[n](k=v,k=v,...)` lines.
pub fn parse_cons(text: &str) -> Result<Vec<Connection>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let line = line.trim();
        let remote_end = line
            .find('[')
            .ok_or_else(|| format!("line {line:?} has no '['"))?;
        let remote = line[..remote_end].trim_start_matches('/').to_string();
        let open = line
            .find('(')
            .ok_or_else(|| format!("line {line:?} has no '('"))?;
        let body = line[open + 1..].trim_end_matches(')');
        let fields = body
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(Connection { remote, fields });
    }
    Ok(out)
}

/// What one node's four-letter words say, gathered in one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProbe {
    pub srvr: Option<Srvr>,
    pub mntr: Option<Mntr>,
    /// Why srvr is missing, if it is: "not serving", a timeout, a refused connection.
    pub error: Option<String>,
    /// The port accepted a connection.
    pub reachable: bool,
    /// The node answered `This ZooKeeper instance is not currently serving requests`.
    pub not_serving: bool,
}

/// Probe a node: `srvr`, and `mntr` when it leads (for its followers).
pub async fn probe_node(addr: SocketAddr, timeout: Duration) -> NodeProbe {
    probe_node_via(addr, &None, timeout).await
}

/// [`probe_node`] over `tls` when given.
pub async fn probe_node_via(addr: SocketAddr, tls: &Tls, timeout: Duration) -> NodeProbe {
    match four_letter_word_via(addr, tls, "srvr", timeout).await {
        Ok(text) => match parse_srvr(&text) {
            Ok(srvr) => {
                let mntr = if srvr.mode == Mode::Leader {
                    match four_letter_word_via(addr, tls, "mntr", timeout).await {
                        Ok(t) => parse_mntr(&t).ok(),
                        Err(_) => None,
                    }
                } else {
                    None
                };
                NodeProbe {
                    srvr: Some(srvr),
                    mntr,
                    error: None,
                    reachable: true,
                    not_serving: false,
                }
            }
            Err(reason) => NodeProbe {
                srvr: None,
                mntr: None,
                error: Some(
                    ProbeError::Parse {
                        addr,
                        cmd: "srvr".into(),
                        reason,
                    }
                    .to_string(),
                ),
                reachable: true,
                not_serving: false,
            },
        },
        Err(e) => NodeProbe {
            srvr: None,
            mntr: None,
            reachable: !matches!(e, ProbeError::Connect { .. }),
            not_serving: matches!(e, ProbeError::NotServing { .. }),
            error: Some(e.to_string()),
        },
    }
}

/// Send `request` to `addr` (closing our side after it when `half_close`, as four-letter
/// words want) and read the answer to its end; `label` names the exchange in errors.
async fn exchange(
    addr: SocketAddr,
    tls: &Tls,
    label: &str,
    request: &[u8],
    half_close: bool,
    timeout: Duration,
) -> Result<String, ProbeError> {
    async fn talk<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut s: S,
        request: &[u8],
        half_close: bool,
    ) -> std::io::Result<String> {
        s.write_all(request).await?;
        if half_close {
            let _ = s.shutdown().await;
        } else {
            s.flush().await?;
        }
        let mut buf = Vec::with_capacity(4096);
        // A TLS peer that closes without close_notify ends the stream with an error; what
        // arrived before it is the answer.
        match s.read_to_end(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    let work = async {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|source| ProbeError::Connect { addr, source })?;
        let io = |source| ProbeError::Io {
            addr,
            cmd: label.to_string(),
            source,
        };
        match tls {
            None => talk(s, request, half_close).await.map_err(io),
            Some(config) => {
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, s)
                    .await
                    .map_err(io)?;
                talk(s, request, half_close).await.map_err(io)
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr,
            cmd: label.to_string(),
            timeout,
        })?
}

/// `GET /commands/<cmd>` on an AdminServer (Apache's or a builtin node's): the JSON answer.
pub async fn admin_command(
    addr: SocketAddr,
    cmd: &str,
    timeout: Duration,
) -> Result<serde_json::Value, ProbeError> {
    let what = format!("/commands/{cmd}");
    let req = format!(
        "GET {what} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let text = exchange(addr, &None, &what, req.as_bytes(), false, timeout).await?;
    let parse = |reason: String| ProbeError::Parse {
        addr,
        cmd: what.clone(),
        reason,
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| parse("not an HTTP response".into()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(parse(format!("HTTP status {status}")));
    }
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| parse(format!("not JSON: {e}")))?;
    match v["error"].as_str() {
        Some(e) if e.contains("not currently serving") => Err(ProbeError::NotServing { addr }),
        Some(e) => Err(parse(e.to_string())),
        None => Ok(v),
    }
}

/// Undo `Transfer-Encoding: chunked` (Jetty answers so).
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The same probe through the AdminServer at `admin` (for nodes whose client port does not
/// answer four-letter words): `server_stats` for srvr's figures, `monitor` for mntr's.
pub async fn probe_node_admin(admin: SocketAddr, timeout: Duration) -> NodeProbe {
    let failed = |e: ProbeError| NodeProbe {
        srvr: None,
        mntr: None,
        reachable: !matches!(e, ProbeError::Connect { .. }),
        not_serving: matches!(e, ProbeError::NotServing { .. }),
        error: Some(e.to_string()),
    };
    let stats = match admin_command(admin, "server_stats", timeout).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let monitor = match admin_command(admin, "monitor", timeout).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let values: BTreeMap<String, String> = monitor
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "command" && *k != "error")
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), text))
                })
                .collect()
        })
        .unwrap_or_default();
    let ss = &stats["server_stats"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let read_only = stats["read_only"] == true;
    let mode = if read_only {
        Ok(Mode::ReadOnly)
    } else {
        parse_mode(ss["server_state"].as_str().unwrap_or(""))
    };
    let mode = match mode {
        Ok(m) => m,
        Err(reason) => {
            return failed(ProbeError::Parse {
                addr: admin,
                cmd: "/commands/server_stats".into(),
                reason,
            })
        }
    };
    let version = stats["version"].as_str().unwrap_or("");
    let srvr = Srvr {
        version: version
            .split(',')
            .next()
            .unwrap_or(version)
            .trim()
            .to_string(),
        mode,
        zxid: n(&ss["last_processed_zxid"]),
        connections: n(&ss["num_alive_client_connections"]),
        outstanding: n(&ss["outstanding_requests"]),
        node_count: n(&stats["node_count"]),
        received: n(&ss["packets_received"]),
        sent: n(&ss["packets_sent"]),
    };
    NodeProbe {
        mntr: (mode == Mode::Leader).then_some(Mntr { values }),
        srvr: Some(srvr),
        error: None,
        reachable: true,
        not_serving: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/4lw")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn srvr_of_a_leader() {
        let s = parse_srvr(&fixture("srvr-leader.txt")).unwrap();
        assert_eq!(s.mode, Mode::Leader);
        assert!(s.version.starts_with("3.8."), "{}", s.version);
        assert!(s.epoch() >= 1);
    }

    #[test]
    fn srvr_of_a_follower() {
        let s = parse_srvr(&fixture("srvr-follower.txt")).unwrap();
        assert_eq!(s.mode, Mode::Follower);
        assert!(s.node_count >= 5);
    }

    #[test]
    fn srvr_of_an_observer_and_a_standalone() {
        assert_eq!(
            parse_srvr(&fixture("srvr-observer.txt")).unwrap().mode,
            Mode::Observer
        );
        let s = parse_srvr(&fixture("srvr-standalone.txt")).unwrap();
        assert_eq!(s.mode, Mode::Standalone);
        assert_eq!(s.node_count, 5);
    }

    #[test]
    fn stat_parses_like_srvr() {
        let s = parse_srvr(&fixture("stat-follower.txt")).unwrap();
        assert_eq!(s.mode, Mode::Follower);
        assert!(s.connections >= 1);
    }

    #[test]
    fn mntr_of_a_leader_counts_synced_followers() {
        let m = parse_mntr(&fixture("mntr-leader.txt")).unwrap();
        assert_eq!(m.server_state(), Some("leader"));
        assert_eq!(m.synced_followers(), Some(2));
        assert!(m.get("version").unwrap().starts_with("3.8."));
    }

    #[test]
    fn mntr_of_a_follower_has_no_follower_counts() {
        let m = parse_mntr(&fixture("mntr-follower.txt")).unwrap();
        assert_eq!(m.server_state(), Some("follower"));
        assert_eq!(m.synced_followers(), None);
    }

    #[test]
    fn cons_lines_give_session_ids() {
        let c = parse_cons(&fixture("cons.txt")).unwrap();
        assert!(!c.is_empty());
        assert!(c.iter().any(|c| c.session_id().is_some()), "{c:?}");
        assert!(c[0].remote.starts_with("127.0.0.1:"), "{}", c[0].remote);
    }

    #[test]
    fn ruok_and_the_refusals() {
        assert!(parse_ruok(&fixture("ruok.txt")));
        assert!(!parse_ruok(""));
        assert!(fixture("not-serving.txt")
            .starts_with("This ZooKeeper instance is not currently serving requests"));
        assert!(fixture("not-whitelisted.txt").contains("is not in the whitelist"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_srvr("").is_err());
        assert!(parse_srvr("Zookeeper version: x\nZxid: zz\nMode: leader\n").is_err());
        assert!(parse_srvr("Mode: wizard\n").is_err());
        assert!(parse_mntr("zk_version 3.8\n").is_err());
        assert!(parse_cons("garbage").is_err());
    }
}
