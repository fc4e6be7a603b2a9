"""kazoo (Python) scenarios against a ZooKeeper server: python3 kazoo_scenarios.py HOST:PORT.

Each scenario asserts what a real kazoo user relies on. Prints one line per scenario and
exits non-zero on the first failure.
"""
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError,
                              NoNodeError, NotEmptyError)
from kazoo.security import make_digest_acl

HOSTS = sys.argv[1]
passed = []


def scenario(fn):
    fn()
    passed.append(fn.__name__)
    print("ok", fn.__name__, flush=True)
    return fn


def client(**kw):
    c = KazooClient(hosts=HOSTS, timeout=10, **kw)
    c.start(timeout=10)
    return c


zk = client()


@scenario
def crud_with_versions():
    zk.ensure_path("/kz")
    zk.create("/kz/a", b"one")
    data, stat = zk.get("/kz/a")
    assert data == b"one" and stat.version == 0, (data, stat)
    zk.set("/kz/a", b"two", version=0)
    try:
        zk.set("/kz/a", b"x", version=0)
        raise AssertionError("expected BadVersionError")
    except BadVersionError:
        pass
    try:
        zk.create("/kz/a", b"")
        raise AssertionError("expected NodeExistsError")
    except NodeExistsError:
        pass
    zk.create("/kz/a/child", b"")
    try:
        zk.delete("/kz/a")
        raise AssertionError("expected NotEmptyError")
    except NotEmptyError:
        pass
    zk.delete("/kz/a", recursive=True)
    assert zk.exists("/kz/a") is None
    try:
        zk.get("/kz/missing")
        raise AssertionError("expected NoNodeError")
    except NoNodeError:
        pass


@scenario
def ephemeral_sequential_and_cleanup_on_close():
    other = client()
    p1 = other.create("/kz/e-", b"", ephemeral=True, sequence=True)
    p2 = other.create("/kz/e-", b"", ephemeral=True, sequence=True)
    assert p1.endswith("0000000000") or p1[-10:].isdigit(), p1
    assert int(p2[-10:]) == int(p1[-10:]) + 1, (p1, p2)
    stat = zk.exists(p1)
    assert stat.ephemeralOwner == other.client_id[0], (stat, other.client_id)
    other.stop()
    other.close()
    assert zk.exists(p1) is None and zk.exists(p2) is None


@scenario
def watches_fire_once():
    zk.create("/kz/w", b"0")
    seen = []
    fired = threading.Event()

    def watcher(event):
        seen.append((event.type, event.path))
        fired.set()

    zk.get("/kz/w", watch=watcher)
    zk.set("/kz/w", b"1")
    assert fired.wait(10), "data watch did not fire"
    assert seen == [("CHANGED", "/kz/w")], seen
    fired.clear()
    zk.set("/kz/w", b"2")
    assert not fired.wait(0.5), "a one-shot watch fired twice"
    children = threading.Event()
    zk.get_children("/kz/w", watch=lambda e: children.set())
    zk.create("/kz/w/c", b"")
    assert children.wait(10), "child watch did not fire"


@scenario
def data_watch_recipe():
    zk.ensure_path("/kz/dw")
    values = []
    changed = threading.Event()

    @zk.DataWatch("/kz/dw")
    def on_change(data, stat):
        values.append(data)
        if data == b"new":
            changed.set()

    zk.set("/kz/dw", b"new")
    assert changed.wait(10), values


@scenario
def transactions_are_atomic():
    t = zk.transaction()
    t.create("/kz/t1", b"a")
    t.create("/kz/t2", b"b")
    t.check("/kz/t1", 0)
    results = t.commit()
    assert results[:2] == ["/kz/t1", "/kz/t2"], results
    t = zk.transaction()
    t.create("/kz/t3", b"")
    t.delete("/kz/missing")
    results = t.commit()
    assert isinstance(results[1], NoNodeError), results
    assert zk.exists("/kz/t3") is None


@scenario
def digest_acls():
    owner = client(auth_data=[("digest", "alice:pw")])
    acl = make_digest_acl("alice", "pw", all=True)
    owner.create("/kz/private", b"s", acl=[acl])
    try:
        zk.get("/kz/private")
        raise AssertionError("expected NoAuthError")
    except NoAuthError:
        pass
    assert owner.get("/kz/private")[0] == b"s"
    owner.stop()
    owner.close()


@scenario
def lock_recipe():
    lock = zk.Lock("/kz/lock", "me")
    assert lock.acquire(timeout=10)
    assert len(zk.get_children("/kz/lock")) == 1
    lock.release()


@scenario
def four_letter_words_and_version():
    assert zk.command(b"ruok") == "imok"
    version = zk.server_version()
    assert version[:2] == (3, 8), version


zk.stop()
zk.close()
print(f"kazoo: {len(passed)} scenarios passed", flush=True)
