# SPDX-License-Identifier: MIT
"""pymc.py - python3-pymemcache (a client no one here wrote) against
dsm_memcache: its own encoding, pipelining of get_many/set_many, cas,
incr/decr, touch, expiry, noreply and error mapping.
Usage: pymc.py PORT   (the server is started by clients.sh)
"""
import sys
import time

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheClientError, \
        MemcacheServerError
except ImportError:
    print("SKIP: pymemcache is not installed (apt-get install "
          "python3-pymemcache)")
    sys.exit(77)

port = int(sys.argv[1])
c = Client(("127.0.0.1", port), connect_timeout=5, timeout=10)
bad = []


def check(what, got, want):
    if got != want:
        bad.append("%s: got %r, want %r" % (what, got, want))


check("set", c.set("pk", b"v1", noreply=False), True)
check("get", c.get("pk"), b"v1")
check("add existing", c.add("pk", b"x", noreply=False), False)
check("replace", c.replace("pk", b"v2", noreply=False), True)
v, cas = c.gets("pk")
check("gets", v, b"v2")
check("cas", c.cas("pk", b"v3", cas, noreply=False), True)
check("cas stale", c.cas("pk", b"v4", cas, noreply=False), False)
check("get after cas", c.get("pk"), b"v3")
many = {"m%d" % i: ("val%d" % i).encode() * (i + 1) for i in range(100)}
check("set_many", c.set_many(many, noreply=False), [])
check("get_many", c.get_many(list(many)), many)
c.set("cnt", b"10", noreply=False)
check("incr", c.incr("cnt", 5), 15)
check("decr", c.decr("cnt", 20), 0)
check("incr missing", c.incr("nocnt", 1), None)
check("delete", c.delete("pk", noreply=False), True)
check("delete missing", c.delete("pk", noreply=False), False)
check("touch missing", c.touch("nokey", 10, noreply=False), False)
c.set("ttl", b"t", expire=1, noreply=False)
check("touch", c.touch("ttl", 100, noreply=False), True)
c.set("short", b"s", expire=1, noreply=False)
big = b"\x00\xff" * 200000
check("big set", c.set("big", big, noreply=False), True)
check("big get", c.get("big"), big)
try:
    c.set("huge", b"x" * (2 << 20), noreply=False)
    bad.append("2 MiB value accepted")
except MemcacheServerError as e:
    check("too large", "too large" in str(e), True)
try:
    c.incr("big", 1)
    bad.append("incr of non-numeric accepted")
except MemcacheClientError:
    pass
time.sleep(2.1)
check("expired", c.get("short"), None)
check("touched", c.get("ttl"), b"t")
c.flush_all(noreply=False)
check("flush_all", c.get("m1"), None)
st = c.stats()
# Flushed items count in curr_items until reclaimed (lazily, as in
# memcached); what must hold is that the counters are there.
check("stats items", b"curr_items" in st and b"evictions" in st, True)
check("version", c.version().startswith(b"1.6"), True)
c.close()
for b in bad:
    print("FAIL " + b)
print("pymemcache: %d checks failed" % len(bad))
sys.exit(1 if bad else 0)
