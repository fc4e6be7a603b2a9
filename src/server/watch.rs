//! Node-local watch tables: standard (one-shot) data and child watches, persistent and
//! persistent-recursive watches, all owned by connections (not sessions).
//! Delivery rules: `shared/docs/zookeeper-protocol.md` section 7.

use std::collections::{BTreeMap, BTreeSet};

use super::tree::{Event, EventType};

pub type ConnId = u64;

/// WatcherType ints used by checkWatches/removeWatches.
pub mod kind {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
    pub const PERSISTENT: i32 = 4;
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

type Table = BTreeMap<String, BTreeSet<ConnId>>;

#[derive(Debug, Default)]
pub struct WatchManager {
    /// exists/getData watches (one-shot).
    data: Table,
    /// getChildren watches (one-shot).
    child: Table,
    /// addWatch mode 0: data and child events, kept after firing.
    persistent: Table,
    /// addWatch mode 1: data events for the path and every descendant.
    recursive: Table,
}

fn add(t: &mut Table, path: &str, conn: ConnId) {
    t.entry(path.to_string()).or_default().insert(conn);
}

fn take(t: &mut Table, path: &str) -> BTreeSet<ConnId> {
    t.remove(path).unwrap_or_default()
}

fn has(t: &Table, path: &str, conn: ConnId) -> bool {
    t.get(path).is_some_and(|s| s.contains(&conn))
}

fn remove(t: &mut Table, path: &str, conn: ConnId) -> bool {
    let Some(s) = t.get_mut(path) else {
        return false;
    };
    let removed = s.remove(&conn);
    if s.is_empty() {
        t.remove(path);
    }
    removed
}

/// `path` and each of its ancestors up to `/`.
fn self_and_ancestors(path: &str) -> Vec<&str> {
    let mut out = vec![path];
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = if i == 0 { "/" } else { &p[..i] };
        out.push(p);
        if p == "/" {
            break;
        }
    }
    out
}

impl WatchManager {
    pub fn add_data(&mut self, path: &str, conn: ConnId) {
        add(&mut self.data, path, conn);
    }

    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        add(&mut self.child, path, conn);
    }

    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        if recursive {
            add(&mut self.recursive, path, conn);
        } else {
            add(&mut self.persistent, path, conn);
        }
    }

    /// Which connections get a notification for `ev`: at most one per connection.
    pub fn trigger(&mut self, ev: &Event) -> BTreeSet<ConnId> {
        let p = ev.path.as_str();
        let mut out = BTreeSet::new();
        match ev.kind {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                out.extend(take(&mut self.data, p));
            }
            EventType::NodeDeleted => {
                out.extend(take(&mut self.data, p));
                out.extend(take(&mut self.child, p));
            }
            EventType::NodeChildrenChanged => {
                out.extend(take(&mut self.child, p));
            }
        }
        if let Some(s) = self.persistent.get(p) {
            out.extend(s.iter().copied());
        }
        if ev.kind != EventType::NodeChildrenChanged {
            for a in self_and_ancestors(p) {
                if let Some(s) = self.recursive.get(a) {
                    out.extend(s.iter().copied());
                }
            }
        }
        out
    }

    /// checkWatches: does `conn` hold a watch of `kind` on `path`?
    pub fn check(&self, path: &str, conn: ConnId, k: i32) -> bool {
        match k {
            kind::CHILDREN => has(&self.child, path, conn),
            kind::DATA => has(&self.data, path, conn),
            kind::PERSISTENT => has(&self.persistent, path, conn),
            kind::PERSISTENT_RECURSIVE => has(&self.recursive, path, conn),
            kind::ANY => {
                has(&self.child, path, conn)
                    || has(&self.data, path, conn)
                    || has(&self.persistent, path, conn)
                    || has(&self.recursive, path, conn)
            }
            _ => false,
        }
    }

    /// removeWatches: true if anything was removed.
    pub fn remove(&mut self, path: &str, conn: ConnId, k: i32) -> bool {
        match k {
            kind::CHILDREN => remove(&mut self.child, path, conn),
            kind::DATA => remove(&mut self.data, path, conn),
            kind::PERSISTENT => remove(&mut self.persistent, path, conn),
            kind::PERSISTENT_RECURSIVE => remove(&mut self.recursive, path, conn),
            kind::ANY => {
                let a = remove(&mut self.child, path, conn);
                let b = remove(&mut self.data, path, conn);
                let c = remove(&mut self.persistent, path, conn);
                let d = remove(&mut self.recursive, path, conn);
                a || b || c || d
            }
            _ => false,
        }
    }

    /// Drop every watch of a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        for t in [
            &mut self.data,
            &mut self.child,
            &mut self.persistent,
            &mut self.recursive,
        ] {
            t.retain(|_, s| {
                s.remove(&conn);
                !s.is_empty()
            });
        }
    }

    /// `wchs`: connections watching, paths watched, total watches (data table only, as Apache).
    pub fn summary(&self) -> (usize, usize, usize) {
        let conns: BTreeSet<ConnId> = self.data.values().flatten().copied().collect();
        let total = self.data.values().map(BTreeSet::len).sum();
        (conns.len(), self.data.len(), total)
    }

    /// Total registrations (mntr's watch_count).
    pub fn count(&self) -> usize {
        [&self.data, &self.child, &self.persistent, &self.recursive]
            .iter()
            .map(|t| t.values().map(BTreeSet::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, path: &str) -> Event {
        Event {
            kind,
            path: path.into(),
        }
    }

    #[test]
    fn standard_watches_fire_once_persistent_ones_stay() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        w.add_persistent("/a", 2, false);
        let fired = w.trigger(&ev(EventType::NodeDataChanged, "/a"));
        assert_eq!(fired, BTreeSet::from([1, 2]));
        let fired = w.trigger(&ev(EventType::NodeDataChanged, "/a"));
        assert_eq!(fired, BTreeSet::from([2]));
    }

    #[test]
    fn delete_fires_data_and_child_watchers_once_per_connection() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        w.add_child("/a", 3);
        assert_eq!(
            w.trigger(&ev(EventType::NodeDeleted, "/a")),
            BTreeSet::from([1, 3])
        );
    }

    #[test]
    fn recursive_watches_see_descendants_but_never_child_events() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", 7, true);
        assert_eq!(
            w.trigger(&ev(EventType::NodeCreated, "/a/b/c")),
            BTreeSet::from([7])
        );
        assert!(w
            .trigger(&ev(EventType::NodeChildrenChanged, "/a"))
            .is_empty());
        assert!(w.trigger(&ev(EventType::NodeCreated, "/ab")).is_empty());
        let mut w = WatchManager::default();
        w.add_persistent("/", 1, true);
        assert_eq!(
            w.trigger(&ev(EventType::NodeDeleted, "/x")),
            BTreeSet::from([1])
        );
    }

    #[test]
    fn check_and_remove_by_kind() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        assert!(w.check("/a", 1, kind::DATA));
        assert!(!w.check("/a", 1, kind::CHILDREN));
        assert!(w.check("/a", 1, kind::ANY));
        assert!(!w.remove("/a", 1, kind::CHILDREN));
        assert!(w.remove("/a", 1, kind::ANY));
        assert!(!w.check("/a", 1, kind::ANY));
        w.add_child("/b", 2);
        w.drop_conn(2);
        assert_eq!(w.count(), 0);
    }
}
