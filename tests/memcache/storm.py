# SPDX-License-Identifier: MIT
"""storm.py - clients set and get random keys while workers are killed.

What it shows (issue 15): a worker killed with SIGKILL at any moment -
at random from outside, and (DSM_MEMCACHE_CRASH_EVERY) inside a commit,
where the next worker must finish it - loses nothing acknowledged,
corrupts nothing, and leaks at most one item per kill from outside and
nothing for a kill inside a commit.  Every value names its key and version and carries a checksum,
so any read can be judged: it must be intact, of this key, and no older
than the last acknowledged set before the read began (and no newer than
the last one sent).  Phase 1 has room for everything, so a miss of an
acknowledged key fails; phase 2 has a small area, so misses are allowed
but must not outnumber the evictions the server counted.
Bounded: a fixed number of operations per client and of kills.
Usage: storm.py DSM_MEMCACHE
"""
import hashlib
import os
import random
import signal
import sys
import threading
import time

from mcserver import Conn, Server

CLIENTS = 4


def value(key, version, size):
    head = b"%s:%d:" % (key, version)
    body = hashlib.sha256(head).digest() * (size // 32 + 1)
    body = head + body[:max(0, size - len(head))]
    return body + hashlib.sha256(body).digest()[:8]


def judge(key, data):
    """The version data holds, or raise if it is not an intact value."""
    body, sum_ = data[:-8], data[-8:]
    if hashlib.sha256(body).digest()[:8] != sum_:
        raise ValueError("checksum")
    k, v, _ = body.split(b":", 2)
    if k != key:
        raise ValueError("value of key %r under %r" % (k, key))
    version = int(v)
    if value(key, version, len(body)) != data:
        raise ValueError("body")
    return version


class Client(threading.Thread):
    def __init__(self, port, idx, nkeys, ops, size, stop):
        super().__init__()
        self.port, self.idx, self.ops, self.size = port, idx, ops, size
        self.keys = [b"c%d-k%d" % (idx, i) for i in range(nkeys)]
        self.acked = {}    # key -> last acknowledged version
        self.sent = {}     # key -> last version sent
        self.errors, self.misses, self.reconnects = [], 0, 0
        self.oom, self.sets, self.evicting = 0, 0, False
        self.rng = random.Random(idx * 7919)
        self.conn, self.stop = None, stop

    def connect(self):
        for _ in range(200):
            try:
                self.conn = Conn(self.port, timeout=10)
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("cannot reconnect")

    def run(self):
        try:
            self.connect()
            for _ in range(self.ops):
                if self.errors:
                    return
                key = self.rng.choice(self.keys)
                try:
                    if self.rng.random() < 0.6:
                        self.do_set(key)
                    else:
                        self.do_get(key, during=True)
                except (OSError, ConnectionError):
                    self.reconnects += 1
                    self.conn.close()
                    self.connect()
        except Exception as e:  # report, don't hang the test
            self.errors.append("client %d: %r" % (self.idx, e))

    def do_set(self, key):
        self.sets += 1
        v = self.sent.get(key, 0) + 1
        self.sent[key] = v
        data = value(key, v, self.rng.randrange(16, self.size))
        r = self.conn.cmd(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(data), data))
        if r == b"STORED":
            self.acked[key] = v
        elif r.startswith(b"SERVER_ERROR out of memory") and self.evicting:
            # Not acknowledged, so not stored: memcached answers so too
            # when eviction cannot free room of the right size at once.
            self.oom += 1
        else:
            self.errors.append("set %r: %r" % (key, r))

    def do_get(self, key, during):
        floor = self.acked.get(key, 0)
        got = self.conn.get(key)
        if got is None:
            if floor:
                self.misses += 1
            return
        try:
            v = judge(key, got[1])
        except ValueError as e:
            self.errors.append("get %r: corrupt (%s)" % (key, e))
            return
        if v < floor or v > self.sent.get(key, 0):
            self.errors.append("get %r: version %d outside [%d, %d]"
                               % (key, v, floor, self.sent.get(key, 0)))

    def fill(self):
        """Store every key once, before any kill (so no key is new later)."""
        self.connect()
        for key in self.keys:
            while key not in self.acked:
                try:
                    self.do_set(key)
                except (OSError, ConnectionError):
                    self.conn.close()
                    self.connect()
        self.conn.close()

    def verify(self):
        self.connect()
        for key in self.keys:
            if key in self.acked:
                self.do_get(key, during=False)
        self.conn.close()


def phase(binary, name, memory_mb, nkeys, size, kills, evicting):
    srv = Server(binary, workers=2, memory_mb=memory_mb)
    problems = []
    try:
        stop = threading.Event()
        clients = [Client(srv.port, i, nkeys, 2500, size, stop)
                   for i in range(CLIENTS)]
        base = None
        if not evicting:
            # Allocations beyond the items and their table entries: the
            # header, the table, its buckets.  Fixed once every key exists.
            for c in clients:
                c.fill()
            st = Conn(srv.port).stats()
            base = int(st["area_allocations"]) - 2 * int(st["curr_items"])
        for c in clients:
            c.evicting = evicting
            c.start()
        rng = random.Random(1)
        done = 0
        while done < kills and any(c.is_alive() for c in clients):
            time.sleep(rng.uniform(0.02, 0.1))
            ws = srv.workers()
            if ws:
                try:
                    os.kill(rng.choice(ws), signal.SIGKILL)
                    done += 1
                except ProcessLookupError:
                    pass
        for c in clients:
            c.join(timeout=120)
            if c.is_alive():
                problems.append("a client hung")
        during = sum(c.misses for c in clients)
        for c in clients:
            c.misses = 0
            c.verify()
        st = Conn(srv.port).stats()
        misses = sum(c.misses for c in clients)
        for c in clients:
            problems.extend(c.errors)
        ev = int(st["evictions"])
        print("%s: %d kills, restarts %s, stripe repairs %s, area repairs "
              "%s, reconnects %d, evictions %d, misses %d (during %d), "
              "items %s" % (name, done, st["worker_restarts"],
                            st["stripe_repairs"], st["area_repairs"],
                            sum(c.reconnects for c in clients), ev, misses,
                            during, st["curr_items"]))
        if base is not None:
            # A commit's repair leaves nothing behind; a kill from outside
            # may leak one item (mc_store.h).  The hook's kills (restarts
            # beyond ours) must leak nothing.
            leaked = (int(st["area_allocations"]) -
                      2 * int(st["curr_items"]) - base)
            print("%s: %d allocations leaked, %d kills from outside, %d "
                  "inside commits" % (name, leaked, done,
                                      int(st["worker_restarts"]) - done))
            if leaked > done:
                problems.append("%s: %d allocations leaked by %d kills"
                                % (name, leaked, done))
        if not evicting and (misses or during):
            problems.append("%s: %d acknowledged sets lost" % (name, misses + during))
        if evicting and misses > ev:
            problems.append("%s: %d misses but only %d evictions"
                            % (name, misses, ev))
        oom, sets = sum(c.oom for c in clients), sum(c.sets for c in clients)
        print("%s: %d of %d sets refused for memory" % (name, oom, sets))
        if oom * 20 > sets:
            problems.append("%s: more than 5%% of sets refused" % name)
        if evicting and ev == 0:
            problems.append("%s: the small area never evicted" % name)
        if int(st["worker_restarts"]) < done:
            problems.append("%s: %d kills but %s restarts"
                            % (name, done, st["worker_restarts"]))
    finally:
        problems.extend(srv.stop())
    return problems


def main():
    binary = sys.argv[1]
    problems = []
    # Phase 1: room for all; kills from outside and inside commits.
    os.environ["DSM_MEMCACHE_CRASH_EVERY"] = "97"
    problems += phase(binary, "no eviction", 64, 300, 3000, 25, False)
    # Phase 2: 24 MiB for about 40 MiB of values: CLOCK evicts.
    os.environ["DSM_MEMCACHE_CRASH_EVERY"] = "0"
    problems += phase(binary, "evicting", 24, 2500, 8000, 15, True)
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
