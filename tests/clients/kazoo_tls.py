"""kazoo over TLS with a client certificate: one line per check, compared by tests/tls.rs
between the builtin server and Apache. Usage: kazoo_tls.py HOSTS PREFIX CA CERT KEY OTHER_CERT OTHER_KEY [refusals]
(OTHER_*: a certificate of another CA, which the server must refuse)."""
import logging
import sys

from kazoo.client import KazooClient
from kazoo.security import make_acl

logging.basicConfig(level=logging.CRITICAL)
hosts, prefix, ca, cert, key, other_cert, other_key = sys.argv[1:8]
refusals = sys.argv[8:] == ["refusals"]
ME = "CN=zkherd-client,O=zkherd"


def client(certfile, keyfile, wait=8):
    zk = KazooClient(
        hosts=hosts,
        use_ssl=True,
        ca=ca,
        certfile=certfile,
        keyfile=keyfile,
        verify_certs=True,
        timeout=5,
        connection_retry={"max_tries": 0},
        command_retry={"max_tries": 0},
    )
    zk.start(timeout=wait)
    return zk


def outcome(f):
    try:
        return "ok %r" % (f(),)
    except Exception as e:  # noqa: BLE001 -- the outcome is the exception's name
        return type(e).__name__


zk = client(cert, key)
print("create with the x509 ACL", outcome(lambda: zk.create(prefix, b"v", acl=[make_acl("x509", ME, all=True)])))
print("read it", outcome(lambda: zk.get(prefix)[0]))
print("acl", outcome(lambda: [(a.id.scheme, a.id.id) for a in zk.get_acls(prefix)[0]]))
print("auth acl", outcome(lambda: [(a.id.scheme, a.id.id) for a in zk.get_acls(zk.create(prefix + "-auth", b"", acl=[make_acl("auth", "", all=True)]))[0]]))
print("invalid x509 id", outcome(lambda: zk.create(prefix + "-bad", b"", acl=[make_acl("x509", "nonsense", all=True)])))
zk.stop()

if refusals:
    print("a certificate of another CA", outcome(lambda: client(other_cert, other_key, 4)))
    print("no certificate", outcome(lambda: client(None, None, 4)))
