//! `zkherd scale`, `zkherd add`, `zkherd remove`: change the number of voters and observers of
//! a running ensemble, on both backends, through ZooKeeper's own `reconfig`.
//!
//! Growing: render the new instance dirs, start the new nodes (they join as non-voting
//! learners of the existing ensemble), reconfig to the new member list, wait until healthy.
//! Shrinking: reconfig first (the leaving nodes stop counting), then stop the leaving nodes,
//! then wait until healthy. A role change (an observer becoming a voter when voters grow past
//! it) is part of the same reconfig. Nodes are numbered as `up` numbers them: voters 1..N,
//! observers after them.
//!
//! Refused, with the reason, before anything changes: fewer than two voters (Apache's rule for
//! a reconfig), dropping more voters at once than the current quorum can spare, an ensemble
//! that is not healthy, an ensemble without `reconfigEnabled = true`, one spread over several
//! hosts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::wait::wait_ready;
use super::Global;
use crate::ports::PortPlan;
use crate::render;
use crate::spec::EnsembleSpec;
use crate::supervisor::control::{Request, Response};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Voting members after the change (at least 2).
    #[arg(long, value_name = "N")]
    voters: u16,
    /// Observers after the change (default: as now).
    #[arg(long, value_name = "M")]
    observers: Option<u16>,
    /// Seconds to wait for new nodes to start and for the ensemble to be healthy again.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Add an observer instead of a voter.
    #[arg(long)]
    observer: bool,
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The node to remove: the highest-numbered voter or the highest-numbered observer
    /// (zkherd numbers voters 1..N and observers after them).
    node: u16,
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

/// Resize the cluster `g` names to the size `to` computes from its spec, recording the new
/// size with the cluster.
async fn resize_to(
    g: &Global,
    timeout: u64,
    to: impl FnOnce(&EnsembleSpec) -> Result<(u16, u16)>,
) -> Result<u8> {
    let current = super::resolve_cluster(g)?;
    let (voters, observers) = to(&current)?;
    resize(
        &current,
        voters,
        observers,
        Duration::from_secs(timeout),
        true,
    )
    .await?;
    Ok(0)
}

pub async fn scale(g: &Global, a: ScaleArgs) -> Result<u8> {
    resize_to(g, a.timeout, |c| {
        Ok((a.voters, a.observers.unwrap_or(c.observers)))
    })
    .await
}

pub async fn add(g: &Global, a: AddArgs) -> Result<u8> {
    resize_to(g, a.timeout, |c| {
        Ok(if a.observer {
            (c.nodes, c.observers + 1)
        } else {
            (c.nodes + 1, c.observers)
        })
    })
    .await
}

pub async fn remove(g: &Global, a: RemoveArgs) -> Result<u8> {
    resize_to(g, a.timeout, |c| last_removed(c, a.node)).await
}

/// The size without `node`, which must be the last voter (no observers) or the last observer.
fn last_removed(current: &EnsembleSpec, a_node: u16) -> Result<(u16, u16)> {
    let total = current.nodes + current.observers;
    Ok(if a_node == total && current.observers > 0 {
        (current.nodes, current.observers - 1)
    } else if a_node == current.nodes && current.observers == 0 {
        (current.nodes - 1, current.observers)
    } else if a_node == 0 || a_node > total {
        bail!(
            "there is no node {}; this cluster has nodes 1 to {total}",
            a_node
        );
    } else {
        let last = if current.observers > 0 {
            format!("observer {total}")
        } else {
            format!("voter {}", current.nodes)
        };
        bail!(
            "node {} cannot be removed alone: zkherd numbers voters 1..N and observers after \
             them, so only the last node ({last}) can go; `zkherd scale --voters N \
             --observers M` changes several at once",
            a_node
        );
    })
}

/// The `server.N=…` lines of a spec, as a reconfig's new member list.
fn member_lines(spec: &EnsembleSpec) -> Vec<String> {
    render::member_lines(spec, &PortPlan::new(spec), None)
}

/// Why `current` cannot become `voters` + `observers`, if it cannot.
pub fn refusal(current: &EnsembleSpec, voters: u16, observers: u16) -> Option<String> {
    if current.members.is_some() || current.local_member.is_some() {
        return Some(
            "this ensemble is spread over several hosts (a member list); change its membership \
             with a reconfig from a client (zkCli.sh `reconfig`) and edit the member list"
                .into(),
        );
    }
    if current.network.faults {
        return Some(
            "this ensemble runs with link proxies (`[network] faults`), which are laid out for \
             its nodes when it starts; scale it without them"
                .into(),
        );
    }
    if !render::reconfig_enabled(current) {
        return Some(format!(
            "cluster {} has reconfig off: scaling moves the membership with ZooKeeper's reconfig. \
             Add `reconfigEnabled = true` under [zookeeper.extra] in the spec and run `zkherd \
             apply` (a rolling restart), then scale",
            current.name
        ));
    }
    if voters < 2 {
        return Some(format!(
            "{voters} voter(s): a reconfig must leave at least two voters (ZooKeeper's rule)"
        ));
    }
    if u32::from(voters) + u32::from(observers) > 255 {
        return Some("at most 255 nodes".into());
    }
    // The voters that stay (1..=min) must be a quorum of today's voters, or the change itself
    // could not commit with the old ones gone.
    let kept = current.nodes.min(voters);
    let quorum = current.nodes / 2 + 1;
    if kept < quorum {
        return Some(format!(
            "going from {} to {voters} voters drops {} at once, more than the quorum of {} can \
             spare (it needs {quorum}); scale down in steps, e.g. `zkherd scale --voters {}`",
            current.nodes,
            current.nodes - kept,
            current.nodes,
            quorum.max(2)
        ));
    }
    None
}

/// Move the running ensemble of `current` to `voters` + `observers`.
/// `pin`: record the size as an override (`zkherd scale`), so reloading a spec file that
/// names another size (`apply`, the watcher) keeps it; `apply` itself does not pin.
pub async fn resize(
    current: &EnsembleSpec,
    voters: u16,
    observers: u16,
    timeout: Duration,
    pin: bool,
) -> Result<()> {
    if (voters, observers) == (current.nodes, current.observers) {
        println!(
            "cluster {} already has {voters} voters and {observers} observers",
            current.name
        );
        return Ok(());
    }
    if let Some(why) = refusal(current, voters, observers) {
        bail!("{why}; nothing was changed");
    }
    super::require_supervisor(current).await?;
    let t0 = Instant::now();
    if let Err(e) = wait_ready(current, Duration::from_secs(10), |_| {}).await {
        bail!("the ensemble is not healthy, so changing its membership could cost the quorum; nothing was changed. {e}");
    }
    let auth = render::super_auth(current).with_context(|| {
        "the spec sets its own DigestAuthenticationProvider.superDigest; set ZKHERD_SUPER_AUTH \
         to that super user's user:password so zkherd may reconfig"
    })?;
    let mut next = current.clone();
    next.nodes = voters;
    next.observers = observers;
    if pin {
        next.flags.nodes = Some(i64::from(voters));
        next.flags.observers = Some(i64::from(observers));
    }
    let (old_total, new_total) = (
        current.nodes + current.observers,
        next.nodes + next.observers,
    );
    // Through voters that stay: a leaving node drops its clients when the reconfig commits.
    let stay = current.nodes.min(voters);
    let connect = PortPlan::new(current)
        .nodes
        .iter()
        .filter(|n| n.id <= stay)
        .map(|n| format!("{}:{}", n.host, n.client))
        .collect::<Vec<_>>()
        .join(",");
    let lines = member_lines(&next);
    println!(
        "cluster {}: {} voters + {} observers -> {voters} voters + {observers} observers",
        current.name, current.nodes, current.observers
    );
    if new_total > old_total {
        render::render(&next)?;
        supervise(&next).await?;
        let plan = PortPlan::new(&next);
        for n in plan.nodes.iter().filter(|n| n.id > old_total) {
            wait_listening(n.host, n.election, timeout)
                .await
                .with_context(|| format!("node {} did not start", n.id))?;
            println!("node {} started", n.id);
        }
        if let Err(e) = reconfig(&connect, &auth, &lines).await {
            // Back to the old shape: stop the new nodes, restore the configs.
            let _ = supervise(current).await;
            let _ = render::render(current);
            bail!("reconfig failed: {e}; the new nodes were stopped, nothing else changed");
        }
    } else {
        reconfig(&connect, &auth, &lines)
            .await
            .map_err(|e| anyhow::anyhow!("reconfig failed: {e}; nothing was changed"))?;
        supervise(&next).await?;
        render::render(&next)?;
    }
    println!("reconfig committed; waiting until every member follows the new config");
    let status = wait_ready(&next, timeout, |_| {})
        .await
        .map_err(|e| anyhow::anyhow!("the ensemble did not become healthy: {e}"))?;
    println!(
        "scaled to {voters} voters + {observers} observers in {:.2}s; healthy, leader node {}",
        t0.elapsed().as_secs_f64(),
        status.leader.map_or("-".into(), |l| l.to_string())
    );
    println!("connect: {}", status.connect_string);
    if pin && next.source.is_some() {
        println!(
            "the spec file still says its own size; `zkherd apply` keeps this one, but a later \
             `zkherd up` after `down` reads the file: set nodes = {voters} and observers = \
             {observers} there to keep it"
        );
    }
    Ok(())
}

/// Ask the supervisor to run exactly `spec`'s nodes.
async fn supervise(spec: &EnsembleSpec) -> Result<()> {
    let req = Request::Resize {
        spec: Box::new(spec.clone()),
    };
    match super::ask_supervisor(&spec.dir, &req, Duration::from_secs(120)).await? {
        Some(Response::Done { message }) => {
            println!("supervisor: {message}");
            Ok(())
        }
        Some(Response::Error { message }) => bail!("supervisor: {message}"),
        Some(other) => bail!("supervisor: unexpected answer {other:?}"),
        None => bail!("the supervisor is gone"),
    }
}

async fn wait_listening(host: std::net::IpAddr, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect((host, port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on {host}:{port} after {timeout:?}; see `zkherd logs`")
}

/// A non-incremental reconfig to `lines`, as the super user, through the zookeeper-client
/// crate (the same request zkCli.sh's `reconfig -members` sends). A lost connection (the
/// leader changing under the reconfig) is no failure if the committed config is the new one.
async fn reconfig(connect: &str, auth: &str, lines: &[String]) -> Result<(), String> {
    match reconfig_once(connect, auth, lines).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let client = connect_as(connect, auth).await?;
            let (data, _) = client.get_config().await.map_err(|e| e.to_string())?;
            let committed: Vec<String> = String::from_utf8_lossy(&data)
                .lines()
                .filter(|l| l.starts_with("server."))
                .map(str::to_string)
                .collect();
            if committed == lines {
                println!("reconfig answered {e}, but the new config is committed");
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

async fn connect_as(connect: &str, auth: &str) -> Result<zookeeper_client::Client, String> {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(3))
        .with_auth("digest", auth.as_bytes())
        .connect(connect)
        .await
        .map_err(|e| format!("cannot connect to {connect}: {e}"))
}

async fn reconfig_once(connect: &str, auth: &str, lines: &[String]) -> Result<(), String> {
    let client = connect_as(connect, auth).await?;
    let update = zookeeper_client::EnsembleUpdate::New {
        ensemble: lines.iter().map(String::as_str),
    };
    let (data, _) = tokio::time::timeout(
        Duration::from_secs(60),
        client.update_ensemble(update, None),
    )
    .await
    .map_err(|_| "no answer within 60 s".to_string())?
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&data);
    println!(
        "new config {}",
        text.lines()
            .find(|l| l.starts_with("version="))
            .unwrap_or("")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(text: &str) -> EnsembleSpec {
        EnsembleSpec::parse(text, Path::new("zkherd.toml"), Path::new("/")).unwrap()
    }

    const ON: &str = "[zookeeper.extra]\nreconfigEnabled = true\n";

    #[test]
    fn what_would_lose_the_quorum_is_refused() {
        let three = spec(ON);
        assert!(refusal(&three, 5, 0).is_none());
        assert!(refusal(&three, 2, 0).is_none());
        assert!(refusal(&three, 1, 0)
            .unwrap()
            .contains("at least two voters"));
        let five = spec(&format!("[cluster]\nnodes = 5\n{ON}"));
        assert!(refusal(&five, 3, 0).is_none());
        let r = refusal(&five, 2, 0).unwrap();
        assert!(r.contains("drops 3 at once"), "{r}");
        assert!(refusal(&spec(""), 5, 0)
            .unwrap()
            .contains("reconfigEnabled"));
    }

    #[test]
    fn member_lines_name_roles_and_client_ports() {
        let s = spec(&format!("[cluster]\nnodes = 2\nobservers = 1\n{ON}"));
        assert_eq!(
            member_lines(&s),
            vec![
                "server.1=127.0.0.1:2881:3881:participant;127.0.0.1:2181",
                "server.2=127.0.0.1:2882:3882:participant;127.0.0.1:2182",
                "server.3=127.0.0.1:2883:3883:observer;127.0.0.1:2183",
            ]
        );
    }
}
