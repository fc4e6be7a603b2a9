//! Subtrees as JSON: `dump` walks one (parents before children, `/zookeeper` left out) and
//! `load` creates it again; and `deleteall`.
//!
//! The format, `{"format": "zkherd-dump/1", "root": "/a", "nodes": [{"path", "data" |
//! "data_base64", "acl": [{"scheme","id","perms"}], "ephemeral", "ctime", "mtime"}]}`, is
//! meant to be read and edited by people: data is text when it is UTF-8.

use base64::Engine;
use serde_json::{json, Value};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error as ZkError};

use super::{format, keeper, Failure};

pub const FORMAT: &str = "zkherd-dump/1";

fn child_path(parent: &str, name: &str) -> String {
    format!("{}/{name}", parent.trim_end_matches('/'))
}

/// The subtree at `root`, parents first, children in name order. ZooKeeper's own
/// `/zookeeper` subtree is left out.
pub async fn dump(zk: &Client, root: &str) -> Result<Value, Failure> {
    let mut nodes = Vec::new();
    let mut stack = vec![root.to_string()];
    while let Some(path) = stack.pop() {
        if path == "/zookeeper" || path.starts_with("/zookeeper/") {
            continue;
        }
        let (data, stat) = match zk.get_data(&path).await {
            Ok(v) => v,
            // Deleted while we walk: not part of the dump.
            Err(ZkError::NoNode) if path != root => continue,
            Err(e) => return Err(keeper(e, &path)),
        };
        let (acls, _) = match zk.get_acl(&path).await {
            Ok(v) => v,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(keeper(e, &path)),
        };
        // Without ADMIN on a node the server shows digest ids as `user:x`; loading that
        // back would lock the node for good, so such a dump is refused.
        if let Some(a) = acls
            .iter()
            .find(|a| a.scheme() == "digest" && a.id().ends_with(":x"))
        {
            return Err(Failure {
                kind: Some("NoAuth".into()),
                path: Some(path.clone()),
                ..Failure::new(format!(
                    "{path}: the server hides the digest of `{}` (this session has no ADMIN \
                     permission there); `addauth digest USER:PASSWORD` first, or the dump could \
                     not restore the ACL",
                    a.id()
                ))
            });
        }
        let mut kids = match zk.list_children(&path).await {
            Ok(k) => k,
            Err(ZkError::NoNode) => continue,
            Err(e) => return Err(keeper(e, &path)),
        };
        if path != "/" || !data.is_empty() || root == "/" {
            let mut n = json!({
                "path": path,
                "acl": format::acl_json(&acls),
                "ctime": stat.ctime,
                "mtime": stat.mtime,
            });
            format::put_data(&mut n, &data);
            if stat.ephemeral_owner != 0 {
                n["ephemeral"] = true.into();
            }
            nodes.push(n);
        }
        kids.sort();
        for k in kids.into_iter().rev() {
            stack.push(child_path(&path, &k));
        }
    }
    Ok(json!({"format": FORMAT, "root": root, "nodes": nodes}))
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub created: usize,
    pub set: usize,
    pub skipped: usize,
}

/// Create the nodes of a dump in its order. An existing node is an error, unless `overwrite`
/// (then its data is set). Ephemeral nodes are skipped: they belong to a session that is
/// gone. The root `/` is never created, only its data set when `overwrite`.
pub async fn load(zk: &Client, dump: &Value, overwrite: bool) -> Result<Loaded, Failure> {
    if dump["format"] != FORMAT {
        return Err(Failure::new(format!(
            "not a zkherd dump (its \"format\" is {}, expected \"{FORMAT}\")",
            dump["format"]
        )));
    }
    let nodes = dump["nodes"]
        .as_array()
        .ok_or_else(|| Failure::new("the dump has no \"nodes\" list"))?;
    let mut out = Loaded::default();
    for (i, n) in nodes.iter().enumerate() {
        let path = n["path"]
            .as_str()
            .ok_or_else(|| Failure::new(format!("node {i} of the dump has no \"path\"")))?;
        if n["ephemeral"] == true {
            out.skipped += 1;
            continue;
        }
        let data = match (&n["data"], &n["data_base64"]) {
            (Value::String(s), _) => s.clone().into_bytes(),
            (_, Value::String(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| Failure::new(format!("{path}: bad data_base64: {e}")))?,
            _ => Vec::new(),
        };
        let acls = acls_of(&n["acl"]).map_err(|m| Failure::new(format!("{path}: {m}")))?;
        if path == "/" {
            if overwrite {
                zk.set_data("/", &data, None)
                    .await
                    .map_err(|e| keeper(e, "/"))?;
                out.set += 1;
            } else {
                out.skipped += 1;
            }
            continue;
        }
        let options = CreateMode::Persistent.with_acls(Acls::new(&acls));
        match zk.create(path, &data, &options).await {
            Ok(_) => out.created += 1,
            Err(ZkError::NodeExists) if overwrite => {
                zk.set_data(path, &data, None)
                    .await
                    .map_err(|e| keeper(e, path))?;
                out.set += 1;
            }
            Err(ZkError::NodeExists) => {
                return Err(Failure::new(format!(
                    "Node already exists: {path} (after creating {} znodes); use `load -o` to set \
                     the data of existing znodes",
                    out.created
                )))
            }
            Err(e) => return Err(keeper(e, path)),
        }
    }
    Ok(out)
}

fn acls_of(v: &Value) -> Result<Vec<Acl>, String> {
    let Some(list) = v.as_array() else {
        return Ok(vec![Acl::new(
            zookeeper_client::Permission::ALL,
            AuthId::anyone(),
        )]);
    };
    list.iter()
        .map(|a| {
            let field = |k: &str| {
                a[k].as_str()
                    .ok_or_else(|| format!("an ACL entry lacks {k:?}"))
            };
            let perms = format::parse_perms(field("perms")?)?;
            Ok(Acl::new(perms, AuthId::new(field("scheme")?, field("id")?)))
        })
        .collect()
}

/// Delete `root` and everything below it, deepest first (zkCli's ZKUtil.deleteRecursive).
pub async fn delete_all(zk: &Client, root: &str) -> Result<usize, Failure> {
    let mut order = vec![root.to_string()];
    let mut i = 0;
    while i < order.len() {
        match zk.list_children(&order[i]).await {
            Ok(kids) => {
                let base = order[i].clone();
                order.extend(kids.into_iter().map(|k| child_path(&base, &k)));
            }
            Err(ZkError::NoNode) if i > 0 => {}
            Err(e) => return Err(keeper(e, &order[i])),
        }
        i += 1;
    }
    let mut n = 0;
    for p in order.iter().rev() {
        if p == "/" {
            continue;
        }
        match zk.delete(p, None).await {
            Ok(()) => n += 1,
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(keeper(e, p)),
        }
    }
    Ok(n)
}
