//! One status format for every backend: [`NodeStatus`] merges what the supervisor knows (pid,
//! job state, restarts, last exit) with what the node's four-letter words say (role, zxid,
//! connections, followers); [`EnsembleStatus`] judges the whole.
//!
//! The JSON form (`zkherd status --json`) is a stable schema, version [`SCHEMA_VERSION`]:
//!
//! ```text
//! { "schema": 1, "cluster": str, "dir": str, "backend": "apache"|"builtin",
//!   "supervisor": { "running": bool, "pid": int|null },
//!   "verdict": "healthy"|"degraded"|"no-quorum"|"down",
//!   "leader": int|null, "epoch": int|null, "connect_string": str,
//!   "voters": int, "observers": int,
//!   "nodes": [ { "id": int, "membership": "voter"|"observer",
//!                "role": "leader"|"follower"|"observer"|"standalone"|"starting"|"unresponsive"
//!                        |"paused"|"down"|"failed",
//!                "state": "stopped"|"running"|"paused"|"stopping"|"backoff"|"failed"|null,
//!                "pid": int|null, "host": str, "client_port": int, "zxid": "0x…"|null, "epoch": int|null,
//!                "connections": int|null, "uptime_s": int|null, "restarts": int|null,
//!                "last_exit": str|null, "synced_followers": int|null, "error": str|null } ] }
//! ```
//!
//! Fields are only ever added, never renamed or removed, without bumping `schema`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ports::{Membership, PortPlan};
use crate::probe::{self, Mode, NodeProbe};
use crate::spec::{BackendKind, EnsembleSpec};
use crate::supervisor::job::{unix_ms, JobInfo, JobState};

pub const SCHEMA_VERSION: u32 = 1;

/// What a node is doing, as far as status can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Leader,
    Follower,
    Observer,
    Standalone,
    /// The process runs but does not serve yet (electing, syncing, JVM starting).
    Starting,
    /// The port accepts connections but the node does not answer in time (hung, not paused by us).
    Unresponsive,
    /// Paused by `zkherd pause` (SIGSTOP).
    Paused,
    /// No process (stopped, backing off before a restart, or never started).
    Down,
    /// The supervisor gave up: configuration error or crash loop.
    Failed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Observer => "observer",
            Role::Standalone => "standalone",
            Role::Starting => "starting",
            Role::Unresponsive => "unresponsive",
            Role::Paused => "paused",
            Role::Down => "down",
            Role::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// One leader; every voter follows it in the same epoch; every observer observes.
    Healthy,
    /// A quorum serves, but some node is not part of it.
    Degraded,
    /// Some node runs, but no quorum serves writes.
    NoQuorum,
    /// No node runs.
    Down,
}

impl Verdict {
    /// `zkherd status` exit code: 0 healthy, 1 degraded, 2 no quorum, 3 down.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::NoQuorum => 2,
            Verdict::Down => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::NoQuorum => "no quorum",
            Verdict::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u16,
    pub membership: Membership,
    pub role: Role,
    pub state: Option<JobState>,
    pub pid: Option<u32>,
    /// The node's address (added in schema 1 with multi-host specs; a one-host ensemble's
    /// nodes all share it).
    #[serde(default = "default_host")]
    pub host: String,
    pub client_port: u16,
    pub zxid: Option<String>,
    pub epoch: Option<u32>,
    pub connections: Option<u64>,
    pub uptime_s: Option<u64>,
    pub restarts: Option<u32>,
    pub last_exit: Option<String>,
    /// Leader only: followers in sync, from `mntr`.
    pub synced_followers: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub running: bool,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleStatus {
    pub schema: u32,
    pub cluster: String,
    pub dir: String,
    pub backend: BackendKind,
    pub supervisor: SupervisorInfo,
    pub verdict: Verdict,
    pub leader: Option<u16>,
    pub epoch: Option<u32>,
    pub connect_string: String,
    pub voters: u16,
    pub observers: u16,
    pub nodes: Vec<NodeStatus>,
}

impl EnsembleStatus {
    pub fn node(&self, id: u16) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Healthy, and the leader reports every follower synced (when it reports at all).
    pub fn fully_synced(&self) -> bool {
        if self.verdict != Verdict::Healthy {
            return false;
        }
        match self.leader.and_then(|l| self.node(l)) {
            Some(leader) => match leader.synced_followers {
                Some(s) => s + 1 >= u64::from(self.voters),
                None => true,
            },
            // A single standalone node has no leader and nothing to sync.
            None => self.voters == 1,
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}

/// The TLS client a TLS-only (`secure_only`) cluster is probed with: its CA and minted
/// client certificate. None for a cluster with plaintext ports (or unreadable material: the
/// probes then fail and say so).
fn tls_probe(spec: &EnsembleSpec) -> probe::Tls {
    if !spec.security.secure_only {
        return None;
    }
    let m = crate::server::tls::Minted::in_dir(&spec.dir.join(crate::render::TLS_DIR));
    match m.client_config() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("cannot probe over TLS: {e}");
            None
        }
    }
}

/// Probe every node (in parallel) and merge with the supervisor's job infos, if any.
pub async fn collect(
    spec: &EnsembleSpec,
    supervisor: Option<(u32, Vec<JobInfo>)>,
    timeout: Duration,
) -> EnsembleStatus {
    let plan = PortPlan::new(spec);
    // A TLS-only cluster is probed on its secure ports, as its own client (zkherd's minted
    // client certificate).
    let tls = tls_probe(spec);
    let mut set = tokio::task::JoinSet::new();
    for n in &plan.nodes {
        let addr = match (&tls, n.secure) {
            (Some(_), Some(p)) => SocketAddr::new(n.host, p),
            _ => SocketAddr::new(n.host, n.client),
        };
        let admin = n.admin.map(|p| SocketAddr::new(n.host, p));
        let id = n.id;
        let tls = tls.clone();
        set.spawn(async move {
            let p = probe::probe_node_via(addr, &tls, timeout).await;
            // The four-letter words failed (not whitelisted, or the port speaks something
            // else): the AdminServer, where there is one, says the same.
            if let (None, false, Some(admin)) = (&p.srvr, p.not_serving, admin) {
                let a = probe::probe_node_admin(admin, timeout).await;
                if a.srvr.is_some() || a.not_serving {
                    return (id, a);
                }
            }
            (id, p)
        });
    }
    let mut probes = std::collections::BTreeMap::new();
    while let Some(Ok((id, p))) = set.join_next().await {
        probes.insert(id, p);
    }
    let jobs = supervisor.as_ref().map(|(_, j)| j.as_slice());
    let nodes = plan
        .nodes
        .iter()
        .map(|n| {
            let job = jobs.and_then(|j| j.iter().find(|j| j.id == n.id));
            let pid = match job {
                Some(j) => j.pid,
                // Without a supervisor, the pid is whoever listens on the client port.
                None if jobs.is_none() && crate::ports::is_local(n.host) => {
                    crate::ports::find_listener_at(
                        n.host,
                        n.secure
                            .filter(|_| spec.security.secure_only)
                            .unwrap_or(n.client),
                    )
                    .map(|h| h.pid)
                }
                None => None,
            };
            // A TLS-only node's client port is its secure one.
            let mut shown = n.clone();
            if let (true, Some(p)) = (plan.secure_only, n.secure) {
                shown.client = p;
            }
            node_status(&shown, pid, job, probes.get(&n.id))
        })
        .collect::<Vec<_>>();
    judge(
        spec,
        &plan,
        SupervisorInfo {
            running: supervisor.is_some(),
            pid: supervisor.map(|(p, _)| p),
        },
        nodes,
    )
}

fn node_status(
    n: &crate::ports::NodePorts,
    pid: Option<u32>,
    job: Option<&JobInfo>,
    probe: Option<&NodeProbe>,
) -> NodeStatus {
    let srvr = probe.and_then(|p| p.srvr.as_ref());
    let role = match (job.map(|j| j.state), srvr) {
        (Some(JobState::Failed), _) => Role::Failed,
        (Some(JobState::Paused), _) => Role::Paused,
        (Some(JobState::Stopped | JobState::Backoff | JobState::Stopping), _) => Role::Down,
        (_, Some(s)) => match s.mode {
            Mode::Leader => Role::Leader,
            Mode::Follower => Role::Follower,
            Mode::Observer => Role::Observer,
            Mode::Standalone => Role::Standalone,
            Mode::ReadOnly => Role::Starting,
        },
        (_, None) => match probe {
            Some(p) if p.not_serving => Role::Starting,
            Some(p) if p.reachable => Role::Unresponsive,
            // Supervised and running, but the port is not open yet: still starting.
            _ if job.is_some() => Role::Starting,
            _ => Role::Down,
        },
    };
    let uptime_s = job
        .and_then(|j| j.started_at_ms)
        .map(|t| unix_ms().saturating_sub(t) / 1000);
    NodeStatus {
        id: n.id,
        membership: n.membership,
        role,
        state: job.map(|j| j.state),
        pid,
        host: n.host.to_string(),
        client_port: n.client,
        zxid: srvr.map(|s| format!("{:#x}", s.zxid)),
        epoch: srvr.map(|s| s.epoch()),
        connections: srvr.map(|s| s.connections),
        uptime_s,
        restarts: job.map(|j| j.restarts),
        last_exit: job.and_then(|j| j.last_exit.clone()),
        synced_followers: probe
            .and_then(|p| p.mntr.as_ref())
            .and_then(|m| m.synced_followers()),
        error: job
            .and_then(|j| j.reason.clone()) // A serving node needs no explanation, and a down one (no process) obviously
            // refuses connections: only the in-between states carry the probe's error.
            .or_else(|| match role {
                Role::Starting | Role::Unresponsive | Role::Paused => {
                    probe.and_then(|p| p.error.clone())
                }
                _ => None,
            }),
    }
}

/// Decide the verdict from the nodes' roles and epochs.
fn judge(
    spec: &EnsembleSpec,
    plan: &PortPlan,
    supervisor: SupervisorInfo,
    nodes: Vec<NodeStatus>,
) -> EnsembleStatus {
    let voters: Vec<&NodeStatus> = nodes
        .iter()
        .filter(|n| n.membership == Membership::Voter)
        .collect();
    let majority = voters.len() / 2 + 1;
    let leaders: Vec<&NodeStatus> = voters
        .iter()
        .copied()
        .filter(|n| n.role == Role::Leader)
        .collect();
    let alive = nodes
        .iter()
        .any(|n| !matches!(n.role, Role::Down | Role::Failed));
    let standalone = voters.len() == 1 && voters[0].role == Role::Standalone;
    let (verdict, leader, epoch) = if !alive {
        (Verdict::Down, None, None)
    } else if standalone {
        let all_obs = nodes
            .iter()
            .filter(|n| n.membership == Membership::Observer)
            .all(|n| n.role == Role::Observer);
        let v = if all_obs {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        };
        (v, None, voters[0].epoch)
    } else if leaders.len() == 1 {
        let l = leaders[0];
        let e = l.epoch;
        // A follower's zxid stays in the previous epoch until the new leader's first commit
        // (Apache reports 0x0 on a fresh ensemble), so a lower epoch is fine; a higher one would
        // mean it follows someone else. Membership in the quorum comes from the leader's own
        // count of synced followers when it reports one.
        let follows = |n: &&NodeStatus, role: Role| n.role == role && n.epoch <= e;
        let followers = voters.iter().filter(|n| follows(n, Role::Follower)).count();
        let synced = l
            .synced_followers
            .map_or(followers, |s| (s as usize).min(followers));
        let serving = 1 + synced;
        let observers_ok = nodes
            .iter()
            .filter(|n| n.membership == Membership::Observer)
            .all(|n| follows(&n, Role::Observer));
        let v = if serving < majority {
            Verdict::NoQuorum
        } else if serving == voters.len() && observers_ok {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        };
        (v, Some(l.id), e)
    } else {
        (Verdict::NoQuorum, None, None)
    };
    EnsembleStatus {
        schema: SCHEMA_VERSION,
        cluster: spec.name.clone(),
        dir: spec.dir.display().to_string(),
        backend: spec.backend,
        supervisor,
        verdict,
        leader,
        epoch,
        connect_string: plan.connect_string(),
        voters: spec.nodes,
        observers: spec.observers,
        nodes,
    }
}

/// The human table and verdict lines.
pub fn render_table(s: &EnsembleStatus) -> String {
    use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
    let mut t = Table::new();
    // Nodes on several hosts: the port column says host:port.
    let one_host = s.nodes.windows(2).all(|w| w[0].host == w[1].host);
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "node",
            "role",
            "pid",
            if one_host { "port" } else { "address" },
            "zxid",
            "epoch",
            "conns",
            "uptime",
            "restarts",
            "last exit",
        ]);
    let dash = || "-".to_string();
    for n in &s.nodes {
        let role = if n.membership == Membership::Observer && n.role != Role::Observer {
            format!("{} (observer)", n.role.as_str())
        } else {
            n.role.as_str().to_string()
        };
        t.add_row(vec![
            n.id.to_string(),
            role,
            n.pid.map_or_else(dash, |p| p.to_string()),
            if one_host {
                n.client_port.to_string()
            } else {
                format!("{}:{}", n.host, n.client_port)
            },
            n.zxid.clone().unwrap_or_else(dash),
            n.epoch.map_or_else(dash, |e| e.to_string()),
            n.connections.map_or_else(dash, |c| c.to_string()),
            n.uptime_s.map_or_else(dash, human_duration),
            n.restarts.map_or_else(dash, |r| r.to_string()),
            n.last_exit.clone().unwrap_or_else(dash),
        ]);
    }
    let mut out = format!(
        "cluster {} ({} backend) at {}\n{t}\n",
        s.cluster, s.backend, s.dir
    );
    let leader = s
        .leader
        .map(|l| format!(", leader node {l}"))
        .unwrap_or_default();
    let epoch = s.epoch.map(|e| format!(", epoch {e}")).unwrap_or_default();
    out.push_str(&format!("verdict: {}{leader}{epoch}\n", s.verdict.as_str()));
    for n in &s.nodes {
        // Explain what is unexpected; a node that is simply down needs no probe error.
        let explain = match n.role {
            Role::Starting | Role::Unresponsive | Role::Failed | Role::Down => n.error.clone(),
            _ => None,
        };
        if let Some(e) = explain {
            out.push_str(&format!("  node {}: {e}\n", n.id));
        }
    }
    if !s.supervisor.running {
        out.push_str("supervisor: not running (status from probing the ports)\n");
    }
    out.push_str(&format!("connect: {}\n", s.connect_string));
    out
}

fn human_duration(s: u64) -> String {
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(voters: u16, observers: u16) -> EnsembleSpec {
        let mut s = EnsembleSpec::defaults(Path::new("/"));
        s.nodes = voters;
        s.observers = observers;
        s
    }

    fn node(id: u16, role: Role, epoch: Option<u32>) -> NodeStatus {
        NodeStatus {
            id,
            membership: Membership::Voter,
            role,
            state: None,
            pid: None,
            host: default_host(),
            client_port: 2180 + id,
            zxid: None,
            epoch,
            connections: None,
            uptime_s: None,
            restarts: None,
            last_exit: None,
            synced_followers: None,
            error: None,
        }
    }

    fn verdict(spec: &EnsembleSpec, nodes: Vec<NodeStatus>) -> Verdict {
        let plan = PortPlan::new(spec);
        judge(
            spec,
            &plan,
            SupervisorInfo {
                running: false,
                pid: None,
            },
            nodes,
        )
        .verdict
    }

    #[test]
    fn one_leader_and_all_followers_in_its_epoch_is_healthy() {
        let s = spec(3, 0);
        let v = verdict(
            &s,
            vec![
                node(1, Role::Follower, Some(2)),
                node(2, Role::Follower, Some(2)),
                node(3, Role::Leader, Some(2)),
            ],
        );
        assert_eq!(v, Verdict::Healthy);
    }

    #[test]
    fn followers_behind_the_leaders_epoch_still_count_but_ahead_of_it_do_not() {
        // Apache followers report zxid 0x0 until the new leader's first commit.
        let s = spec(3, 0);
        let v = verdict(
            &s,
            vec![
                node(1, Role::Follower, Some(0)),
                node(2, Role::Follower, Some(0)),
                node(3, Role::Leader, Some(1)),
            ],
        );
        assert_eq!(v, Verdict::Healthy);
        let v = verdict(
            &s,
            vec![
                node(1, Role::Follower, Some(3)),
                node(2, Role::Follower, Some(2)),
                node(3, Role::Leader, Some(2)),
            ],
        );
        assert_eq!(v, Verdict::Degraded);
    }

    #[test]
    fn the_leaders_synced_count_decides_who_serves() {
        let s = spec(3, 0);
        let mut leader = node(3, Role::Leader, Some(2));
        leader.synced_followers = Some(1);
        let v = verdict(
            &s,
            vec![
                node(1, Role::Follower, Some(2)),
                node(2, Role::Follower, Some(2)),
                leader.clone(),
            ],
        );
        assert_eq!(v, Verdict::Degraded);
        leader.synced_followers = Some(0);
        let v = verdict(
            &s,
            vec![
                node(1, Role::Follower, Some(2)),
                node(2, Role::Follower, Some(2)),
                leader,
            ],
        );
        assert_eq!(v, Verdict::NoQuorum);
    }

    #[test]
    fn a_paused_follower_degrades_and_two_missing_lose_quorum() {
        let s = spec(3, 0);
        assert_eq!(
            verdict(
                &s,
                vec![
                    node(1, Role::Paused, None),
                    node(2, Role::Follower, Some(2)),
                    node(3, Role::Leader, Some(2)),
                ],
            ),
            Verdict::Degraded
        );
        assert_eq!(
            verdict(
                &s,
                vec![
                    node(1, Role::Paused, None),
                    node(2, Role::Down, None),
                    node(3, Role::Leader, Some(2)),
                ],
            ),
            Verdict::NoQuorum
        );
    }

    #[test]
    fn no_leader_is_no_quorum_and_nothing_running_is_down() {
        let s = spec(3, 0);
        assert_eq!(
            verdict(
                &s,
                vec![
                    node(1, Role::Starting, None),
                    node(2, Role::Starting, None),
                    node(3, Role::Down, None),
                ],
            ),
            Verdict::NoQuorum
        );
        assert_eq!(
            verdict(
                &s,
                vec![
                    node(1, Role::Down, None),
                    node(2, Role::Failed, None),
                    node(3, Role::Down, None),
                ],
            ),
            Verdict::Down
        );
    }

    #[test]
    fn observers_count_for_health_but_not_for_quorum() {
        let s = spec(3, 1);
        let mut obs = node(4, Role::Down, None);
        obs.membership = Membership::Observer;
        let mut nodes = vec![
            node(1, Role::Follower, Some(2)),
            node(2, Role::Follower, Some(2)),
            node(3, Role::Leader, Some(2)),
            obs,
        ];
        assert_eq!(verdict(&s, nodes.clone()), Verdict::Degraded);
        nodes[3].role = Role::Observer;
        nodes[3].epoch = Some(2);
        assert_eq!(verdict(&s, nodes), Verdict::Healthy);
    }

    #[test]
    fn a_single_standalone_node_is_healthy() {
        let s = spec(1, 0);
        assert_eq!(
            verdict(&s, vec![node(1, Role::Standalone, Some(0))]),
            Verdict::Healthy
        );
    }

    #[test]
    fn exit_codes_are_as_documented() {
        assert_eq!(Verdict::Healthy.exit_code(), 0);
        assert_eq!(Verdict::Degraded.exit_code(), 1);
        assert_eq!(Verdict::NoQuorum.exit_code(), 2);
        assert_eq!(Verdict::Down.exit_code(), 3);
    }
}
