//! `zkherd apply`: reload the spec file into the running ensemble. The supervisor runs the
//! same command when it sees the file change (unless `up --no-watch`).
//!
//! What changes how:
//! - restart policy and backoff (`[restart]`): at once, for every node;
//! - anything that ends up in zoo.cfg or on the node's command line (`[zookeeper]`, its
//!   `extra` keys, `[apache]`): the instance dirs are re-rendered, then a rolling restart;
//! - the number of voters and observers (`cluster.nodes`, `cluster.observers`): by
//!   `zkherd scale` (reconfig; needs reconfigEnabled), after the changes above;
//! - the rest of the ensemble's shape (hosts, ports, backend, runtime, name, dir): refused,
//!   nothing applied.
//!
//! A file that does not parse or validate is reported with file:line:column and nothing is
//! applied.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use super::Global;
use crate::render;
use crate::spec::EnsembleSpec;
use crate::supervisor::control::{Request, Response};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Seconds each node may take to come back during the rolling restart.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

/// How a changed key reaches the running ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// New restart settings, sent to every job.
    Restart,
    /// Re-render zoo.cfg (or the command line), then a rolling restart.
    Rolling,
    /// Voters and observers: `zkherd scale`.
    Scale,
    /// Cannot change while the ensemble runs.
    Fixed,
}

/// One changed key: its spec name, old and new values, and how it applies.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    key: String,
    old: Value,
    new: Value,
    reach: Reach,
}

/// The spec's name for an EnsembleSpec field, and how a change to it applies.
fn field(name: &str) -> Option<(&'static str, Reach)> {
    Some(match name {
        // Bookkeeping, not the user's intent.
        "source" | "flags" | "no_watch" => return None,
        "restart" => ("restart", Reach::Restart),
        "tick_time" => ("zookeeper.tickTime", Reach::Rolling),
        "init_limit" => ("zookeeper.initLimit", Reach::Rolling),
        "sync_limit" => ("zookeeper.syncLimit", Reach::Rolling),
        "extra" => ("zookeeper.extra", Reach::Rolling),
        "apache" => ("apache", Reach::Rolling),
        "nodes" => ("cluster.nodes", Reach::Scale),
        "observers" => ("cluster.observers", Reach::Scale),
        "members" => ("cluster.members", Reach::Fixed),
        "local_member" => ("--member", Reach::Fixed),
        "listen_on_all_ips" => ("cluster.listen_on_all_ips", Reach::Fixed),
        "host" => ("cluster.host", Reach::Fixed),
        "ports" => ("ports", Reach::Fixed),
        "backend" => ("cluster.backend", Reach::Fixed),
        "runtime" => ("cluster.runtime", Reach::Fixed),
        "name" => ("cluster.name", Reach::Fixed),
        "dir" => ("cluster.dir", Reach::Fixed),
        "network" => ("network", Reach::Fixed),
        _ => ("(unknown)", Reach::Fixed),
    })
}

/// What differs between the running spec and the reloaded one, key by key (tables by
/// their own keys, so `restart.policy` rather than all of `restart`).
fn diff(old: &EnsembleSpec, new: &EnsembleSpec) -> Result<Vec<Change>> {
    let (Value::Object(a), Value::Object(b)) =
        (serde_json::to_value(old)?, serde_json::to_value(new)?)
    else {
        bail!("a spec did not serialize to a JSON object; nothing was applied");
    };
    let mut out = Vec::new();
    for (k, va) in &a {
        let vb = b.get(k).cloned().unwrap_or(Value::Null);
        if *va == vb {
            continue;
        }
        let Some((key, reach)) = field(k) else {
            continue;
        };
        match (va, &vb) {
            (Value::Object(oa), Value::Object(ob)) if k != "members" => {
                let mut keys: Vec<&String> = oa.keys().chain(ob.keys()).collect();
                keys.sort();
                keys.dedup();
                for sub in keys {
                    let (x, y) = (
                        oa.get(sub).cloned().unwrap_or(Value::Null),
                        ob.get(sub).cloned().unwrap_or(Value::Null),
                    );
                    if x != y {
                        out.push(Change {
                            key: format!("{key}.{sub}"),
                            old: x,
                            new: y,
                            reach,
                        });
                    }
                }
            }
            _ => out.push(Change {
                key: key.to_string(),
                old: va.clone(),
                new: vb,
                reach,
            }),
        }
    }
    Ok(out)
}

pub async fn run(g: &Global, a: ApplyArgs) -> Result<u8> {
    // With --dir, the running spec without reading the edited file, which may not parse.
    let current = super::resolve_cluster(g).context("nothing was applied")?;
    if super::supervisor_jobs(&current.dir).await?.is_none() {
        bail!(
            "no supervisor is running for cluster {} ({}); `zkherd up` reads the spec anyway",
            current.name,
            current.dir.display()
        );
    }
    let file: PathBuf = match g.file.clone().or(current.source.clone()) {
        Some(f) => f,
        None => bail!(
            "cluster {} was started without a spec file, so there is nothing to reload; start \
             it from a zkherd.toml (or -f FILE)",
            current.name
        ),
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut new = EnsembleSpec::load(&file).context("nothing was applied")?;
    new.source = Some(cwd.join(&file));
    new.apply(&current.flags, &cwd)
        .context("nothing was applied")?;
    new.no_watch = current.no_watch;
    let changes = diff(&current, &new)?;
    if changes.is_empty() {
        println!("{}: nothing to apply", file.display());
        return Ok(0);
    }
    println!("{} differs from the running ensemble:", file.display());
    for c in &changes {
        let how = match c.reach {
            Reach::Restart => "at once",
            Reach::Rolling => "by rolling restart",
            Reach::Scale => "by scale (reconfig)",
            Reach::Fixed => "cannot change while running",
        };
        println!("  {}: {} -> {} ({how})", c.key, c.old, c.new);
    }
    let fixed: Vec<&str> = changes
        .iter()
        .filter(|c| c.reach == Reach::Fixed)
        .map(|c| c.key.as_str())
        .collect();
    if !fixed.is_empty() {
        bail!(
            "{} cannot change while the ensemble runs; nothing was applied. Run `zkherd down` \
             and `zkherd up` to change them (the data is kept)",
            fixed.join(", ")
        );
    }
    // The other changes first, at today's size; then the new size.
    let scale = changes.iter().any(|c| c.reach == Reach::Scale);
    let (voters, observers) = (new.nodes, new.observers);
    new.nodes = current.nodes;
    new.observers = current.observers;
    if scale {
        if let Some(why) = super::scale::refusal(&new, voters, observers) {
            bail!("{why}; nothing was applied");
        }
    }
    if a.dry_run {
        println!("--dry-run: nothing applied");
        return Ok(0);
    }
    if changes.iter().any(|c| c.reach == Reach::Restart) {
        let req = Request::SetRestart {
            restart: new.restart.clone(),
        };
        match super::ask_supervisor(&current.dir, &req, Duration::from_secs(30)).await? {
            Some(Response::Done { message }) => println!("applied: {message}"),
            Some(Response::Error { message }) => bail!("supervisor: {message}"),
            Some(other) => bail!("supervisor: unexpected answer {other:?}"),
            None => bail!("the supervisor is gone"),
        }
    }
    // spec.json (and the configs) now describe the reloaded spec.
    for c in render::render(&new)? {
        if let render::Change::Updated { .. } = c {
            println!("{c}");
        }
    }
    if changes.iter().any(|c| c.reach == Reach::Rolling) {
        println!("rolling restart, so every node runs the new configuration:");
        super::rolling::roll(&new, Duration::ZERO, Duration::from_secs(a.timeout)).await?;
    }
    if scale {
        super::scale::resize(
            &new,
            voters,
            observers,
            Duration::from_secs(a.timeout),
            false,
        )
        .await?;
    }
    println!("applied {}", file.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spec(text: &str) -> EnsembleSpec {
        EnsembleSpec::parse(text, Path::new("zkherd.toml"), Path::new("/")).unwrap()
    }

    #[test]
    fn changes_are_named_by_their_spec_keys_and_sorted_by_reach() {
        let old = spec("");
        let new = spec(
            "[zookeeper]\ntickTime = 1000\n[zookeeper.extra]\nmaxClientCnxns = 5\n\
             [restart]\npolicy = \"never\"\n",
        );
        let d = diff(&old, &new).unwrap();
        let keys: Vec<(&str, Reach)> = d.iter().map(|c| (c.key.as_str(), c.reach)).collect();
        assert!(
            keys.contains(&("zookeeper.tickTime", Reach::Rolling)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("zookeeper.extra.maxClientCnxns", Reach::Rolling)),
            "{keys:?}"
        );
        assert!(
            keys.contains(&("restart.policy", Reach::Restart)),
            "{keys:?}"
        );
        assert_eq!(d.len(), 3, "{d:?}");
        let d = diff(&old, &spec("[cluster]\nnodes = 5\n")).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].key.as_str(), d[0].reach),
            ("cluster.nodes", Reach::Scale)
        );
        let d = diff(&old, &spec("[ports]\nclient = 3000\n")).unwrap();
        assert_eq!(d[0].reach, Reach::Fixed);
        assert!(diff(&old, &spec("")).unwrap().is_empty());
    }
}
