"""kazoo (with pure-sasl) against a SASL DIGEST-MD5 server: one line per check, compared by
tests/sasl.rs between the builtin server and Apache. Usage: kazoo_sasl.py HOSTS PREFIX"""
import logging
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.security import make_acl

logging.basicConfig(level=logging.CRITICAL)
hosts, prefix = sys.argv[1], sys.argv[2]


def client(user, password):
    zk = KazooClient(
        hosts=hosts,
        sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password},
        timeout=10,
        connection_retry={"max_tries": 0},
        command_retry={"max_tries": 0},
    )
    zk.start(timeout=15)
    return zk


def outcome(f):
    try:
        return "ok %r" % (f(),)
    except KazooException as e:
        return type(e).__name__


bob = client("bob", "bobsecret")
node = prefix + "-bob"
print("bob creates", outcome(lambda: bob.create(node, b"v", acl=[make_acl("sasl", "bob", all=True)])))
print("bob reads", outcome(lambda: bob.get(node)[0]))
auth = prefix + "-auth"
print("auth acl", outcome(lambda: bob.create(auth, b"", acl=[make_acl("auth", "", all=True)])))
print("auth acl reads back", outcome(lambda: [(a.id.scheme, a.id.id, a.perms) for a in bob.get_acls(auth)[0]]))
print("invalid sasl id", outcome(lambda: bob.create(prefix + "-x", b"", acl=[make_acl("sasl", "a@b@c", all=True)])))
bob.stop()

alice = client("alice", "alicesecret")
print("alice reads bob's node", outcome(lambda: alice.get(node)[0]))
alice.stop()

admin = client("super", "adminsecret")
print("super reads bob's node", outcome(lambda: admin.get(node)[0]))
admin.stop()


def wrong_password():
    # kazoo reports a refused SASL exchange either from start() (it never saw the session
    # connected) or from the first request, depending on thread timing; both are a refusal.
    try:
        zk = client("bob", "wrong")
    except Exception as e:  # noqa: BLE001
        return "refused" if type(e).__name__ in ("AuthFailedError", "KazooTimeoutError") else type(e).__name__
    try:
        r = outcome(lambda: zk.get("/")[0])
    finally:
        try:
            zk.stop()
        except Exception:  # noqa: BLE001
            pass
    return "refused" if r == "AuthFailedError" else r


print("wrong password", wrong_password())
