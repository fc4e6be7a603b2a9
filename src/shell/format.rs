//! zkCli.sh's output shapes: Stat blocks, dates as Java's `Date.toString()` prints them (in
//! UTC), ACL lines, watch events; and their JSON forms for `--json`.

use serde_json::{json, Value};
use zookeeper_client::{Acl, EventType, Permission, SessionState, Stat, WatchedEvent};

/// A Stat block, one `name = value` line per field, as zkCli's StatPrinter writes it.
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = {:#x}\nctime = {}\nmZxid = {:#x}\nmtime = {}\npZxid = {:#x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = {:#x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid,
        "mzxid": s.mzxid,
        "pzxid": s.pzxid,
        "ctime": s.ctime,
        "mtime": s.mtime,
        "version": s.version,
        "cversion": s.cversion,
        "aversion": s.aversion,
        "ephemeralOwner": s.ephemeral_owner,
        "dataLength": s.data_length,
        "numChildren": s.num_children,
    })
}

/// Milliseconds since the epoch as `Thu Dec 03 12:56:17 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::supervisor::job::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday} {month} {d:02} {:02}:{:02}:{:02} UTC {y}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Permissions as zkCli prints them: `cdrwa`, in that order.
pub fn perms(p: Permission) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (Permission::CREATE, 'c'),
        (Permission::DELETE, 'd'),
        (Permission::READ, 'r'),
        (Permission::WRITE, 'w'),
        (Permission::ADMIN, 'a'),
    ] {
        if p.has(bit) {
            s.push(c);
        }
    }
    s
}

/// Parse `cdrwa` (any subset, any order).
pub fn parse_perms(s: &str) -> Result<Permission, String> {
    let mut p = Permission::NONE;
    for c in s.chars() {
        p = p | match c {
            'c' => Permission::CREATE,
            'd' => Permission::DELETE,
            'r' => Permission::READ,
            'w' => Permission::WRITE,
            'a' => Permission::ADMIN,
            other => return Err(format!("{other:?} is not a permission (one of c d r w a)")),
        };
    }
    Ok(p)
}

/// `'world,'anyone\n: cdrwa` per entry.
pub fn acl_lines(acls: &[Acl]) -> String {
    acls.iter()
        .map(|a| format!("'{},'{}\n: {}\n", a.scheme(), a.id(), perms(a.permission())))
        .collect()
}

/// A znode's data in a JSON answer: `"data"` when it is UTF-8 text, else `"data_base64"`.
pub fn put_data(v: &mut Value, data: &[u8]) {
    use base64::Engine;
    match std::str::from_utf8(data) {
        Ok(s) => v["data"] = s.into(),
        Err(_) => {
            v["data_base64"] = base64::engine::general_purpose::STANDARD
                .encode(data)
                .into()
        }
    }
}

pub fn acl_json(acls: &[Acl]) -> Value {
    Value::Array(
        acls.iter()
            .map(|a| json!({"scheme": a.scheme(), "id": a.id(), "perms": perms(a.permission())}))
            .collect(),
    )
}

/// Java's names for a watch event's type.
pub fn event_type(t: EventType) -> &'static str {
    match t {
        EventType::Session => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
    }
}

pub fn session_state(s: SessionState) -> &'static str {
    match s {
        SessionState::Disconnected => "Disconnected",
        SessionState::SyncConnected => "SyncConnected",
        SessionState::AuthFailed => "AuthFailed",
        SessionState::ConnectedReadOnly => "ConnectedReadOnly",
        SessionState::Expired => "Expired",
        SessionState::Closed => "Closed",
    }
}

/// The block zkCli prints for a watch event (its MyWatcher, through printMessage).
pub fn event_block(state: &str, kind: &str, path: &str) -> String {
    format!("\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path}\n")
}

pub fn event(e: &WatchedEvent) -> String {
    let path = if e.path.is_empty() { "null" } else { &e.path };
    // Node events arrive while connected; the crate leaves their state at its default.
    let state = if e.event_type == EventType::Session {
        session_state(e.session_state)
    } else {
        "SyncConnected"
    };
    event_block(state, event_type(e.event_type), path)
}

pub fn event_json(e: &WatchedEvent) -> Value {
    json!({
        "event": event_type(e.event_type),
        "state": session_state(e.session_state),
        "path": e.path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_java_prints_them() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-12-03 12:56:17 UTC, a Thursday.
        assert_eq!(java_date(1_796_302_577_000), "Thu Dec 03 12:56:17 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn permissions_round_trip_in_cdrwa_order() {
        let p = parse_perms("arw").unwrap();
        assert_eq!(perms(p), "rwa");
        assert_eq!(perms(Permission::ALL), "cdrwa");
        assert!(parse_perms("rx").is_err());
    }
}
