//! The port plan (which node gets which ports) and the preflight bind check.
//!
//! Preflight binds every planned port on the spec's host before anything starts. When a port is
//! taken it reports the port, the node and kind it was meant for, and the pid and command line of
//! the process holding it, found through `/proc/net/tcp{,6}` and `/proc/<pid>/fd`.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener};

use serde::{Deserialize, Serialize};

use crate::spec::EnsembleSpec;

/// Whether a node votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    Voter,
    Observer,
}

/// The ports of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePorts {
    /// myid, 1-based.
    pub id: u16,
    pub membership: Membership,
    /// The address this node binds and the others reach it at.
    pub host: IpAddr,
    pub client: u16,
    pub quorum: u16,
    pub election: u16,
    pub admin: Option<u16>,
    #[serde(default)]
    pub metrics: Option<u16>,
    /// The TLS client port (`secureClientPort`), with `[security] tls`.
    #[serde(default)]
    pub secure: Option<u16>,
}

impl NodePorts {
    /// Every port this node listens on, with its kind.
    pub fn all(&self) -> Vec<(PortKind, u16)> {
        let mut v = vec![
            (PortKind::Client, self.client),
            (PortKind::Quorum, self.quorum),
            (PortKind::Election, self.election),
        ];
        if let Some(a) = self.admin {
            v.push((PortKind::Admin, a));
        }
        if let Some(m) = self.metrics {
            v.push((PortKind::Metrics, m));
        }
        if let Some(p) = self.secure {
            v.push((PortKind::Secure, p));
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    Client,
    Quorum,
    Election,
    Admin,
    Metrics,
    Secure,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Client => "client",
            PortKind::Quorum => "quorum",
            PortKind::Election => "election",
            PortKind::Admin => "admin",
            PortKind::Metrics => "metrics",
            PortKind::Secure => "secure client",
        })
    }
}

/// Every node's ports, derived from the spec's base ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlan {
    pub host: IpAddr,
    pub nodes: Vec<NodePorts>,
    /// No plaintext client ports (`[security] secure_only`): clients get the secure ones.
    #[serde(default)]
    pub secure_only: bool,
}

impl PortPlan {
    pub fn new(spec: &EnsembleSpec) -> PortPlan {
        if let Some(members) = &spec.members {
            return PortPlan {
                host: spec.host,
                secure_only: spec.security.secure_only,
                nodes: members
                    .iter()
                    .map(|m| NodePorts {
                        id: m.id,
                        membership: if m.observer {
                            Membership::Observer
                        } else {
                            Membership::Voter
                        },
                        host: m.host,
                        client: m.client,
                        quorum: m.quorum,
                        election: m.election,
                        admin: m.admin,
                        metrics: m.metrics,
                        // A member's TLS port: its client port + 100 (2181 → 2281).
                        secure: spec.security.tls.then_some(m.client.saturating_add(100)),
                    })
                    .collect(),
            };
        }
        let nodes = (1..=spec.total_nodes())
            .map(|id| {
                let off = id - 1;
                NodePorts {
                    id,
                    membership: if id <= spec.nodes {
                        Membership::Voter
                    } else {
                        Membership::Observer
                    },
                    host: spec.host,
                    client: spec.ports.client + off,
                    quorum: spec.ports.quorum + off,
                    election: spec.ports.election + off,
                    admin: spec.ports.admin.map(|a| a + off),
                    metrics: spec.ports.metrics.map(|m| m + off),
                    secure: spec.security.tls.then_some(spec.ports.secure + off),
                }
            })
            .collect();
        PortPlan {
            host: spec.host,
            nodes,
            secure_only: spec.security.secure_only,
        }
    }

    pub fn node(&self, id: u16) -> Option<&NodePorts> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The nodes this supervisor runs: all of them, or the one `up --member N` names.
    pub fn local_nodes(&self, spec: &EnsembleSpec) -> Vec<&NodePorts> {
        self.nodes
            .iter()
            .filter(|n| spec.local_member.is_none_or(|m| m == n.id))
            .collect()
    }

    /// `host:client,host:client,…` — what clients are given.
    pub fn connect_string(&self) -> String {
        if self.secure_only {
            return self.secure_connect_string().unwrap_or_default();
        }
        self.nodes
            .iter()
            .map(|n| SocketAddr::new(n.host, n.client).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:secure,…`: the TLS client ports, when the nodes have them.
    pub fn secure_connect_string(&self) -> Option<String> {
        let v = self
            .nodes
            .iter()
            .map(|n| n.secure.map(|p| SocketAddr::new(n.host, p).to_string()))
            .collect::<Option<Vec<_>>>()?;
        (!v.is_empty()).then(|| v.join(","))
    }

    /// Try to bind every port of `nodes`; return every conflict found.
    pub fn preflight(&self, nodes: &[u16]) -> Vec<PortConflict> {
        let mut conflicts = Vec::new();
        for n in self.nodes.iter().filter(|n| nodes.contains(&n.id)) {
            for (kind, port) in n.all() {
                if let Err(e) = TcpListener::bind(SocketAddr::new(n.host, port)) {
                    conflicts.push(PortConflict {
                        node: n.id,
                        kind,
                        port,
                        error: e.to_string(),
                        holder: find_listener_at(n.host, port),
                    });
                }
            }
        }
        conflicts
    }
}

/// A planned port that cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConflict {
    pub node: u16,
    pub kind: PortKind,
    pub port: u16,
    pub error: String,
    pub holder: Option<PortHolder>,
}

impl fmt::Display for PortConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port {} ({} port of node {}) is not free: {}",
            self.port, self.kind, self.node, self.error
        )?;
        match &self.holder {
            Some(h) => write!(f, "; held by pid {} ({})", h.pid, h.command),
            None => write!(
                f,
                "; the holder could not be identified (another user's process?)"
            ),
        }
    }
}

/// The process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortHolder {
    pub pid: u32,
    pub command: String,
}

/// Whether `host` is an address of this machine (of this network namespace): only a local
/// address can be bound. Status names pids only for nodes on local addresses.
pub fn is_local(host: IpAddr) -> bool {
    host.is_loopback() || TcpListener::bind(SocketAddr::new(host, 0)).is_ok()
}

/// Is anything listening on `host:port`, or on the wildcard address at `port`?
pub fn is_listening_at(host: IpAddr, port: u16) -> bool {
    listening_ports_at(host).contains(&port)
}

/// The ports among `ports` that cannot be bound on `host`. A bind fails for a listener at the
/// same address and for one at the wildcard (IPv4, or dual-stack IPv6), so no socket-table scan
/// is needed here: the only listener a bind misses is an IPv6-only wildcard one, which cannot
/// take the node's IPv4 connections. (A scan of `/proc/net/tcp` walks the kernel's whole socket
/// hash, 10-16 ms on this machine, which every restart used to pay.)
pub fn busy<K: Copy>(host: IpAddr, ports: &[(K, u16)]) -> Vec<(K, u16)> {
    ports
        .iter()
        .filter(|(_, p)| TcpListener::bind(SocketAddr::new(host, *p)).is_err())
        .copied()
        .collect()
}

/// Every TCP port in the LISTEN state at `host` or at the wildcard address (IPv4 and IPv6).
/// Listeners at other specific addresses are left out: members of a multi-host spec may share
/// a port on different addresses of one machine.
pub fn listening_ports_at(host: IpAddr) -> std::collections::BTreeSet<u16> {
    listening_sockets()
        .into_iter()
        .filter(|(a, _, _)| *a == host || a.is_unspecified() || host.is_unspecified())
        .map(|(_, p, _)| p)
        .collect()
}

/// The process listening on `host:port` (or on the wildcard address at `port`): members of a
/// multi-host spec may share a port on different addresses of one machine.
pub fn find_listener_at(host: IpAddr, port: u16) -> Option<PortHolder> {
    let inodes: Vec<u64> = listening_sockets()
        .into_iter()
        .filter(|(a, p, _)| *p == port && (*a == host || a.is_unspecified()))
        .map(|(_, _, i)| i)
        .collect();
    holder_of(&inodes)
}

fn holder_of(inodes: &[u64]) -> Option<PortHolder> {
    if inodes.is_empty() {
        return None;
    }
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                if inodes.contains(&inode) {
                    return Some(PortHolder {
                        pid,
                        command: process_command(pid).unwrap_or_else(|| "?".into()),
                    });
                }
            }
        }
    }
    None
}

/// A process's command line, space-joined, shortened for messages.
pub fn process_command(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut s = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if s.len() > 160 {
        let mut cut = 157;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    Some(s)
}

/// (address, port, socket inode) of every listening socket, from `/proc/net/tcp` and
/// `/proc/net/tcp6`.
fn listening_sockets() -> Vec<(IpAddr, u16, u64)> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse_proc_net_tcp(&text));
        }
    }
    out
}

/// (address, port, socket inode) of every listening socket (state 0A) in a
/// `/proc/net/tcp{,6}` table.
fn parse_proc_net_tcp(text: &str) -> impl Iterator<Item = (IpAddr, u16, u64)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (addr, port) = cols.get(1)?.split_once(':')?;
        let state = cols.get(3)?;
        let inode = cols.get(9)?.parse::<u64>().ok()?;
        let p = u16::from_str_radix(port, 16).ok()?;
        (*state == "0A").then_some((proc_net_addr(addr)?, p, inode))
    })
}

/// The kernel prints an address as 32-bit words in the machine's byte order.
fn proc_net_addr(hex: &str) -> Option<IpAddr> {
    if hex.len() % 8 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for i in (0..hex.len()).step_by(8) {
        let word = u32::from_str_radix(hex.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn node_i_uses_base_plus_i_minus_one() {
        let spec = EnsembleSpec::parse(
            "[cluster]\nnodes = 3\nobservers = 1\n[ports]\nadmin = 8080\n",
            Path::new("z.toml"),
            Path::new("/"),
        )
        .unwrap();
        let plan = PortPlan::new(&spec);
        assert_eq!(plan.nodes.len(), 4);
        let n3 = plan.node(3).unwrap();
        assert_eq!(
            (n3.client, n3.quorum, n3.election, n3.admin),
            (2183, 2883, 3883, Some(8082))
        );
        assert_eq!(n3.membership, Membership::Voter);
        assert_eq!(plan.node(4).unwrap().membership, Membership::Observer);
        assert_eq!(
            plan.connect_string(),
            "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183,127.0.0.1:2184"
        );
    }

    #[test]
    fn proc_net_tcp_lines_are_parsed() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0885 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0885 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let inodes = |port: u16| -> Vec<u64> {
            parse_proc_net_tcp(text)
                .filter(|(_, p, _)| *p == port)
                .map(|(_, _, i)| i)
                .collect()
        };
        assert_eq!(inodes(2181), vec![12345]);
        assert!(inodes(2182).is_empty());
        let (addr, _, _) = parse_proc_net_tcp(text).next().unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1");
        assert_eq!(
            proc_net_addr("00000000000000000000000001000000")
                .unwrap()
                .to_string(),
            "::1"
        );
    }

    #[test]
    fn preflight_names_the_node_kind_and_our_own_pid() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let plan = PortPlan {
            secure_only: false,
            host: "127.0.0.1".parse().unwrap(),
            nodes: vec![NodePorts {
                id: 2,
                membership: Membership::Voter,
                host: "127.0.0.1".parse().unwrap(),
                client: port,
                quorum: 1,
                election: 1,
                admin: None,
                metrics: None,
                secure: None,
            }],
        };
        let conflicts: Vec<_> = plan
            .preflight(&[2])
            .into_iter()
            .filter(|c| c.kind == PortKind::Client)
            .collect();
        assert_eq!(conflicts.len(), 1);
        let c = &conflicts[0];
        assert_eq!(c.holder.as_ref().unwrap().pid, std::process::id());
        let msg = c.to_string();
        assert!(
            msg.contains(&format!("port {port} (client port of node 2)")),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("held by pid {}", std::process::id())),
            "{msg}"
        );
    }
}
