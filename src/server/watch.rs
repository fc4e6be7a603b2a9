//! Node-local watch tables: standard (one-shot) data and child watches, persistent and
//! persistent-recursive watches, all owned by connections (not sessions).
//! Delivery rules: `shared/docs/zookeeper-protocol.md` section 7.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// The connections watching one path in one table: nearly always one, held inline.
#[derive(Debug)]
enum Watchers {
    One(ConnId),
    Many(BTreeSet<ConnId>),
}

impl Watchers {
    /// True if `conn` was not watching yet.
    fn insert(&mut self, conn: ConnId) -> bool {
        match self {
            Watchers::One(c) if *c == conn => false,
            Watchers::One(c) => {
                *self = Watchers::Many(BTreeSet::from([*c, conn]));
                true
            }
            Watchers::Many(s) => s.insert(conn),
        }
    }

    fn contains(&self, conn: ConnId) -> bool {
        match self {
            Watchers::One(c) => *c == conn,
            Watchers::Many(s) => s.contains(&conn),
        }
    }

    fn len(&self) -> usize {
        match self {
            Watchers::One(_) => 1,
            Watchers::Many(s) => s.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = ConnId> + '_ {
        let (one, many) = match self {
            Watchers::One(c) => (Some(*c), None),
            Watchers::Many(s) => (None, Some(s.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// One kind of watch: path → who watches it. Paths are shared with the per-connection index.
type Table = BTreeMap<Arc<str>, Watchers>;

/// The four tables, indexed by these.
const DATA: usize = 0;
const CHILD: usize = 1;
const PERSISTENT: usize = 2;
const RECURSIVE: usize = 3;

#[derive(Debug, Default)]
pub struct WatchManager {
    /// exists/getData watches (one-shot); getChildren watches (one-shot); addWatch mode 0 (data
    /// and child events, kept after firing); addWatch mode 1 (data events for the path and every
    /// descendant).
    tables: [Table; 4],
    /// connection → the paths it watches, each with a bit per table: a closing connection
    /// costs its own watches, not a walk over everyone's.
    by_conn: BTreeMap<ConnId, BTreeMap<Arc<str>, u8>>,
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
    fn add(&mut self, t: usize, path: &str, conn: ConnId) {
        let table = &mut self.tables[t];
        let (key, fresh) = match table.get_key_value(path) {
            Some((k, _)) => {
                let k = k.clone();
                let fresh = table.get_mut(path).expect("just seen").insert(conn);
                (k, fresh)
            }
            None => {
                let k: Arc<str> = Arc::from(path);
                table.insert(k.clone(), Watchers::One(conn));
                (k, true)
            }
        };
        if fresh {
            *self
                .by_conn
                .entry(conn)
                .or_default()
                .entry(key)
                .or_default() |= 1 << t;
        }
    }

    /// Forget that `conn` watches `path` in table `t` (the per-connection side only).
    fn unlink(&mut self, conn: ConnId, t: usize, path: &str) {
        let Some(paths) = self.by_conn.get_mut(&conn) else {
            return;
        };
        if let Some(bits) = paths.get_mut(path) {
            *bits &= !(1 << t);
            if *bits == 0 {
                paths.remove(path);
            }
        }
        if paths.is_empty() {
            self.by_conn.remove(&conn);
        }
    }

    /// Remove `conn` from table `t` at `path`; true if it was there.
    fn remove_one(&mut self, t: usize, path: &str, conn: ConnId) -> bool {
        let table = &mut self.tables[t];
        let Some(w) = table.get_mut(path) else {
            return false;
        };
        let removed = match w {
            Watchers::One(c) if *c == conn => {
                table.remove(path);
                true
            }
            Watchers::One(_) => false,
            Watchers::Many(s) => {
                let removed = s.remove(&conn);
                if s.len() == 1 {
                    let last = *s.iter().next().expect("one left");
                    *w = Watchers::One(last);
                }
                removed
            }
        };
        if removed {
            self.unlink(conn, t, path);
        }
        removed
    }

    /// Fire a one-shot table's watches on `path`: they are gone after.
    fn take(&mut self, t: usize, path: &str, out: &mut BTreeSet<ConnId>) {
        if let Some(w) = self.tables[t].remove(path) {
            for conn in w.iter() {
                self.unlink(conn, t, path);
                out.insert(conn);
            }
        }
    }

    fn has(&self, t: usize, path: &str, conn: ConnId) -> bool {
        self.tables[t].get(path).is_some_and(|w| w.contains(conn))
    }

    pub fn add_data(&mut self, path: &str, conn: ConnId) {
        self.add(DATA, path, conn);
    }

    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        self.add(CHILD, path, conn);
    }

    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        self.add(if recursive { RECURSIVE } else { PERSISTENT }, path, conn);
    }

    /// Which connections get a notification for `ev`: at most one per connection.
    pub fn trigger(&mut self, ev: &Event) -> BTreeSet<ConnId> {
        let p = ev.path.as_str();
        let mut out = BTreeSet::new();
        match ev.kind {
            EventType::NodeCreated | EventType::NodeDataChanged => self.take(DATA, p, &mut out),
            EventType::NodeDeleted => {
                self.take(DATA, p, &mut out);
                self.take(CHILD, p, &mut out);
            }
            EventType::NodeChildrenChanged => self.take(CHILD, p, &mut out),
        }
        if let Some(w) = self.tables[PERSISTENT].get(p) {
            out.extend(w.iter());
        }
        if ev.kind != EventType::NodeChildrenChanged {
            for a in self_and_ancestors(p) {
                if let Some(w) = self.tables[RECURSIVE].get(a) {
                    out.extend(w.iter());
                }
            }
        }
        out
    }

    /// checkWatches: does `conn` hold a watch of `kind` on `path`?
    pub fn check(&self, path: &str, conn: ConnId, k: i32) -> bool {
        match k {
            kind::CHILDREN => self.has(CHILD, path, conn),
            kind::DATA => self.has(DATA, path, conn),
            kind::PERSISTENT => self.has(PERSISTENT, path, conn),
            kind::PERSISTENT_RECURSIVE => self.has(RECURSIVE, path, conn),
            kind::ANY => (0..4).any(|t| self.has(t, path, conn)),
            _ => false,
        }
    }

    /// removeWatches: true if anything was removed.
    pub fn remove(&mut self, path: &str, conn: ConnId, k: i32) -> bool {
        match k {
            kind::CHILDREN => self.remove_one(CHILD, path, conn),
            kind::DATA => self.remove_one(DATA, path, conn),
            kind::PERSISTENT => self.remove_one(PERSISTENT, path, conn),
            kind::PERSISTENT_RECURSIVE => self.remove_one(RECURSIVE, path, conn),
            kind::ANY => {
                let mut any = false;
                for t in [CHILD, DATA, PERSISTENT, RECURSIVE] {
                    any |= self.remove_one(t, path, conn);
                }
                any
            }
            _ => false,
        }
    }

    /// Drop every watch of a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        for (path, bits) in self.by_conn.remove(&conn).unwrap_or_default() {
            for t in 0..4 {
                if bits & (1 << t) != 0 {
                    self.remove_one(t, &path, conn);
                }
            }
        }
    }

    /// `wchs`: connections watching, paths watched, total watches (data table only, as Apache).
    pub fn summary(&self) -> (usize, usize, usize) {
        let data = &self.tables[DATA];
        let conns: BTreeSet<ConnId> = data.values().flat_map(Watchers::iter).collect();
        let total = data.values().map(Watchers::len).sum();
        (conns.len(), data.len(), total)
    }

    /// Total registrations (mntr's watch_count).
    pub fn count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.values().map(Watchers::len).sum::<usize>())
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

    #[test]
    fn a_closed_connection_takes_only_its_own_watches() {
        let mut w = WatchManager::default();
        for conn in 1..=3 {
            w.add_data("/a", conn);
            w.add_child("/a", conn);
            w.add_persistent("/p", conn, conn == 2);
        }
        w.add_data("/only-1", 1);
        w.add_data("/a", 1); // again: still one watch
        assert_eq!(w.count(), 10);
        w.drop_conn(1);
        assert_eq!(w.count(), 6);
        assert!(!w.check("/only-1", 1, kind::ANY));
        assert_eq!(w.summary(), (2, 1, 2));
        // A fired one-shot watch leaves nothing behind for its connection to drop later.
        assert_eq!(
            w.trigger(&ev(EventType::NodeDataChanged, "/a")),
            BTreeSet::from([2, 3])
        );
        assert!(w.remove("/a", 3, kind::CHILDREN));
        assert!(!w.remove("/a", 3, kind::DATA));
        w.drop_conn(2);
        w.drop_conn(3);
        assert_eq!(w.count(), 0);
        assert!(w.by_conn.is_empty() && w.tables.iter().all(|t| t.is_empty()));
    }
}
