//! zkCli's quota commands, done as zkCli does them on the client side: `setquota` writes
//! `/zookeeper/quota<path>/zookeeper_limits` (and creates `zookeeper_stats`, which the
//! server fills in), `listquota` reads both, `delquota` clears a limit or removes the quota.
//! Messages, streams and exit codes are zkCli 3.8's.

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use super::{keeper, Failure, Reply};
use crate::server::tree::{StatsTrack, QUOTA_LIMITS, QUOTA_ROOT, QUOTA_STATS};

/// The limit each flag sets: soft count, soft bytes, hard count, hard bytes.
const FLAGS: [(char, &str); 4] = [
    ('n', "count"),
    ('b', "bytes"),
    ('N', "countHardLimit"),
    ('B', "byteHardLimit"),
];

const MISSING: &str = "org.apache.commons.cli.MissingOptionException: Missing required option: \
     [-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]";

/// The one quota flag (commons-cli's option group: exactly one), its value, and the path.
struct QuotaArgs {
    key: Option<&'static str>,
    value: Option<String>,
    path: Option<String>,
}

fn parse(words: &[String], valued: bool) -> Result<QuotaArgs, Failure> {
    let mut out = QuotaArgs {
        key: None,
        value: None,
        path: None,
    };
    let mut chosen: Option<char> = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let flag = w
            .strip_prefix('-')
            .filter(|f| f.chars().count() == 1)
            .and_then(|f| f.chars().next());
        match flag {
            Some(c) => {
                let Some((_, key)) = FLAGS.iter().find(|(f, _)| *f == c) else {
                    return Err(Failure::new(format!(
                        "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {w}"
                    )));
                };
                if let Some(prev) = chosen {
                    return Err(Failure::new(format!(
                        "org.apache.commons.cli.AlreadySelectedException: The option '{c}' was \
                         specified but an option from this group has already been selected: '{prev}'"
                    )));
                }
                chosen = Some(c);
                out.key = Some(key);
                if valued {
                    out.value = it.next().cloned();
                }
            }
            None if out.path.is_none() => out.path = Some(w.clone()),
            None => {}
        }
    }
    Ok(out)
}

fn limits_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{QUOTA_LIMITS}")
}

fn stats_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{QUOTA_STATS}")
}

async fn read(zk: &Client, path: &str) -> Result<Option<Vec<u8>>, Failure> {
    match zk.get_data(path).await {
        Ok((d, _)) => Ok(Some(d)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(keeper(e, path)),
    }
}

async fn create(zk: &Client, path: &str, data: &[u8]) -> Result<(), Failure> {
    let mode = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match zk.create(path, data, &mode).await {
        Ok(_) | Err(ZkError::NodeExists) => Ok(()),
        Err(e) => Err(keeper(e, path)),
    }
}

/// Ancestors of `path` (not itself), nearest last: `/a/b/c` → `/a`, `/a/b`.
fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (1..parts.len())
        .map(|n| format!("/{}", parts[..n].join("/")))
        .collect()
}

/// A quota somewhere below `path`'s quota directory: its path.
async fn child_quota(zk: &Client, path: &str) -> Result<Option<String>, Failure> {
    let mut stack = vec![format!("{QUOTA_ROOT}{path}")];
    while let Some(dir) = stack.pop() {
        let kids = match zk.list_children(&dir).await {
            Ok(k) => k,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(keeper(e, &dir)),
        };
        let under = dir.strip_prefix(QUOTA_ROOT).unwrap_or(&dir);
        if under != path && kids.iter().any(|k| k == QUOTA_LIMITS) {
            return Ok(Some(under.to_string()));
        }
        let mut kids: Vec<_> = kids
            .into_iter()
            .filter(|k| k != QUOTA_LIMITS && k != QUOTA_STATS)
            .collect();
        kids.sort();
        for k in kids.into_iter().rev() {
            stack.push(format!("{dir}/{k}"));
        }
    }
    Ok(None)
}

/// `setquota -n|-b|-N|-B val path`.
pub async fn set(zk: &Client, words: &[String]) -> Result<Reply, Failure> {
    let a = parse(words, true)?;
    let (Some(key), Some(path)) = (a.key, a.path.clone()) else {
        return Err(Failure::new(MISSING));
    };
    let value = match a.value.as_deref().map(str::parse::<i64>) {
        Some(Ok(v)) => v,
        // zkCli says so and carries on with exit code 0.
        _ => {
            return Ok(Reply::new(
                "NumberFormatException happens when parsing the option value\n",
                serde_json::json!({"error": "not a number"}),
            )
            .on_stderr())
        }
    };
    if path == "/" || path.ends_with('/') {
        return Err(Failure::new("Path must not end with / character"));
    }
    if read(zk, &path).await?.is_none() {
        return Err(Failure::new(format!("{path} does not exist.")));
    }
    let limits = limits_path(&path);
    let mut quota = match read(zk, &limits).await? {
        Some(d) => StatsTrack::parse(&d),
        None => {
            for p in ancestors(&path) {
                if read(zk, &limits_path(&p)).await?.is_some() {
                    return Err(Failure::new(format!(
                        "{path} has a parent {p} which has a quota"
                    )));
                }
            }
            if let Some(child) = child_quota(zk, &path).await? {
                return Err(Failure::new(format!(
                    "{path} has a child {child} which has a quota"
                )));
            }
            let mut dir = QUOTA_ROOT.to_string();
            for part in path.split('/').filter(|p| !p.is_empty()) {
                dir.push('/');
                dir.push_str(part);
                create(zk, &dir, b"").await?;
            }
            let mut fresh = StatsTrack::default();
            for (_, k) in FLAGS {
                fresh.set(k, -1);
            }
            fresh
        }
    };
    quota.set(key, value);
    let data = quota.encode();
    match zk.set_data(&limits, &data, None).await {
        Ok(_) => {}
        Err(ZkError::NoNode) => create(zk, &limits, &data).await?,
        Err(e) => return Err(keeper(e, &limits)),
    }
    let stats = stats_path(&path);
    if read(zk, &stats).await?.is_none() {
        // The server counts the subtree into it as it is created.
        create(zk, &stats, b"count=0,bytes=0").await?;
    }
    let used = StatsTrack::parse(&read(zk, &stats).await?.unwrap_or_default());
    let mut text = String::new();
    for (what, soft, hard, now) in [
        ("count", "count", "countHardLimit", "count"),
        ("bytes", "bytes", "byteHardLimit", "bytes"),
    ] {
        let current = used.get(now);
        let below = |k: &str| quota.get(k) > -1 && quota.get(k) < current;
        if below(soft) || below(hard) {
            text.push_str(&format!(
                "[Warning]: the {what} quota you create is less than the existing {what}:{current}\n"
            ));
        }
    }
    Ok(Reply::new(
        text,
        serde_json::json!({"path": path, "quota": String::from_utf8_lossy(&data)}),
    ))
}

/// `listquota path`.
pub async fn list(zk: &Client, words: &[String]) -> Result<Reply, Failure> {
    let Some(path) = words.iter().find(|w| !w.starts_with('-')) else {
        return Err(Failure::new("listquota path"));
    };
    let limits = limits_path(path);
    let err = format!("absolute path is {limits}\n");
    let Some(quota) = read(zk, &limits).await? else {
        return Ok(Reply {
            err: format!("{err}quota for {path} does not exist.\n"),
            ..Reply::new("", serde_json::json!({"path": path, "quota": null}))
        });
    };
    let stats = read(zk, &stats_path(path)).await?.unwrap_or_default();
    let (quota, stats) = (
        String::from_utf8_lossy(&quota).into_owned(),
        String::from_utf8_lossy(&stats).into_owned(),
    );
    Ok(Reply {
        err,
        ..Reply::new(
            format!("Output quota for {path} {quota}\nOutput stat for {path} {stats}\n"),
            serde_json::json!({"path": path, "quota": quota, "stat": stats}),
        )
    })
}

/// `delquota [-n|-b|-N|-B] path`: one limit back to -1, or (no flag) the whole quota.
pub async fn delete(zk: &Client, words: &[String]) -> Result<Reply, Failure> {
    let a = parse(words, false)?;
    let Some(path) = a.path else {
        return Err(Failure::new("delquota [-n|-b|-N|-B] path"));
    };
    let limits = limits_path(&path);
    let Some(data) = read(zk, &limits).await? else {
        return Ok(Reply::new(
            format!("Quota does not exist for {path}\n"),
            serde_json::json!({"path": path, "deleted": false}),
        ));
    };
    if let Some(key) = a.key {
        let mut quota = StatsTrack::parse(&data);
        quota.set(key, -1);
        zk.set_data(&limits, &quota.encode(), None)
            .await
            .map_err(|e| keeper(e, &limits))?;
        return Ok(Reply::new(
            "",
            serde_json::json!({"path": path, "cleared": key}),
        ));
    }
    for node in [limits, stats_path(&path)] {
        match zk.delete(&node, None).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(e) => return Err(keeper(e, &node)),
        }
    }
    // The quota's directory and the ancestors it leaves empty.
    let mut p = path.clone();
    loop {
        let d = format!("{QUOTA_ROOT}{p}");
        match zk.delete(&d, None).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(ZkError::NotEmpty) => break,
            Err(e) => return Err(keeper(e, &d)),
        }
        match p.rfind('/') {
            Some(0) | None => break,
            Some(i) => p.truncate(i),
        }
    }
    Ok(Reply::new(
        "",
        serde_json::json!({"path": path, "deleted": true}),
    ))
}
