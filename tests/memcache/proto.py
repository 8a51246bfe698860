# SPDX-License-Identifier: MIT
"""proto.py - protocol edge cases of dsm_memcache, on a raw socket.

Why: real clients exercise the happy path; a server also has to answer
partial lines, values larger than it accepts, bad commands and pipelined
requests the way memcached does (ERROR, CLIENT_ERROR, SERVER_ERROR), or
clients desynchronise.  Each check names what it shows.
Usage: proto.py DSM_MEMCACHE
"""
import os
import subprocess
import sys
import time

from mcserver import Conn, Server

failures = []


def check(what, got, want):
    if got != want:
        failures.append("%s: got %r, want %r" % (what, got, want))


def main():
    srv = Server(sys.argv[1], workers=2, memory_mb=16, item_max=4096)
    try:
        run(srv.port)
        big_get(srv)
        second_server(sys.argv[1], srv)
    finally:
        failures.extend(srv.stop())
    for f in failures:
        print("FAIL " + f)
    print("%d failures" % len(failures))
    return 1 if failures else 0


def run(port):
    c = Conn(port)
    # Storage and retrieval, flags, cas.
    check("set", c.cmd(b"set k 42 0 5\r\nhello\r\n"), b"STORED")
    check("get", c.get(b"k"), (42, b"hello"))
    _, _, cas = c.get(b"k", cas=True)
    check("cas stale", c.cmd(b"cas k 0 0 1 %d\r\nx\r\n" % (cas + 999)),
          b"EXISTS")
    check("cas", c.cmd(b"cas k 0 0 1 %d\r\nx\r\n" % cas), b"STORED")
    check("cas missing", c.cmd(b"cas nokey 0 0 1 1\r\nx\r\n"), b"NOT_FOUND")
    check("add existing", c.cmd(b"add k 0 0 1\r\ny\r\n"), b"NOT_STORED")
    check("replace missing", c.cmd(b"replace nokey 0 0 1\r\ny\r\n"),
          b"NOT_STORED")
    check("empty value", c.cmd(b"set e 0 0 0\r\n\r\n"), b"STORED")
    check("get empty", c.get(b"e"), (0, b""))
    check("binary value", c.cmd(b"set b 0 0 4\r\n\r\n\x00\xff\r\n"), b"STORED")
    check("get binary", c.get(b"b"), (0, b"\r\n\x00\xff"))
    # Numbers.
    check("set n", c.cmd(b"set n 0 0 20\r\n18446744073709551615\r\n"),
          b"STORED")
    check("incr wraps", c.cmd(b"incr n 1\r\n"), b"0")
    check("decr floors", c.cmd(b"decr n 5\r\n"), b"0")
    check("incr", c.cmd(b"incr n 7\r\n"), b"7")
    check("incr missing", c.cmd(b"incr nokey 1\r\n"), b"NOT_FOUND")
    check("incr bad delta", c.cmd(b"incr n abc\r\n"),
          b"CLIENT_ERROR invalid numeric delta argument")
    check("incr non-numeric", c.cmd(b"incr k 1\r\n"),
          b"CLIENT_ERROR cannot increment or decrement non-numeric value")
    # Delete, touch, expiry.
    check("delete", c.cmd(b"delete n\r\n"), b"DELETED")
    check("delete again", c.cmd(b"delete n\r\n"), b"NOT_FOUND")
    check("expired at once", c.cmd(b"set x 0 -1 1\r\nx\r\n"), b"STORED")
    check("get expired", c.get(b"x"), None)
    check("set ttl", c.cmd(b"set t 0 1 1\r\nt\r\n"), b"STORED")
    check("touch", c.cmd(b"touch t 100\r\n"), b"TOUCHED")
    check("touch missing", c.cmd(b"touch nokey 1\r\n"), b"NOT_FOUND")
    check("set short ttl", c.cmd(b"set s 0 1 1\r\ns\r\n"), b"STORED")
    time.sleep(2.1)
    check("expired after ttl", c.get(b"s"), None)
    check("touched survives", c.get(b"t"), (0, b"t"))
    # noreply: no answer at all; the next reply is the next command's.
    c.send(b"set q 0 0 1 noreply\r\nq\r\ndelete q noreply\r\n"
           b"incr nokey 1 noreply\r\ntouch t 10 noreply\r\n")
    check("noreply", c.cmd(b"version\r\n")[:8], b"VERSION ")
    # ... errors included, as memcached 1.6: a pipelining client would
    # take them for the next command's replies.
    c.send(b"set nbig 0 0 5000 noreply\r\n" + b"x" * 5000 + b"\r\n"
           b"incr nn x noreply\r\ntouch nn x noreply\r\n")
    check("noreply errors", c.cmd(b"version\r\n")[:8], b"VERSION ")
    check("noreply deleted", c.get(b"q"), None)
    # Errors.
    check("unknown command", c.cmd(b"bogus a b\r\n"), b"ERROR")
    check("empty line", c.cmd(b"\r\n"), b"ERROR")
    check("get without key", c.cmd(b"get\r\n"), b"ERROR")
    check("bad set line", c.cmd(b"set k 0 0 notanumber\r\n"),
          b"CLIENT_ERROR bad command line format")
    check("key too long", c.cmd(b"get " + b"a" * 251 + b"\r\n"),
          b"CLIENT_ERROR bad command line format")
    check("bad data chunk", c.cmd(b"set k 0 0 2\r\nabcd\r\n"),
          b"CLIENT_ERROR bad data chunk")
    c.line()  # "cd" was left as a command of its own: ERROR
    # Oversized value: refused, its data swallowed, the next command runs.
    big = b"v" * 5000
    check("too large", c.cmd(b"set big 0 0 5000\r\n" + big + b"\r\n"),
          b"SERVER_ERROR object too large for cache")
    check("after too large", c.cmd(b"version\r\n")[:8], b"VERSION ")
    check("too large not stored", c.get(b"big"), None)
    # A set refused as too large drops the key's old value, as memcached
    # does: a later get must not return what the client overwrote.
    check("set old", c.cmd(b"set old 0 0 3\r\nold\r\n"), b"STORED")
    check("too large over old",
          c.cmd(b"set old 0 0 5000\r\n" + big + b"\r\n"),
          b"SERVER_ERROR object too large for cache")
    check("no stale value", c.get(b"old"), None)
    # Partial lines and data blocks, sent a byte at a time.
    req = b"set p 3 0 10\r\n0123456789\r\nget p\r\n"
    for i in range(len(req)):
        c.send(req[i:i + 1])
        time.sleep(0.002)
    check("partial set", c.line(), b"STORED")
    check("partial get", (c.line(), c.line(), c.line()),
          (b"VALUE p 3 10", b"0123456789", b"END"))
    # Pipelined: many commands in one write, answers in order.
    pipe = b"".join(b"set p%d 0 0 %d\r\n%s\r\n" % (i, len(str(i)),
                    str(i).encode()) for i in range(200))
    pipe += b"".join(b"get p%d\r\n" % i for i in range(200))
    c.send(pipe)
    ok = all(c.line() == b"STORED" for _ in range(200))
    check("pipelined sets", ok, True)
    for i in range(200):
        got = (c.line(), c.line(), c.line())
        want = (b"VALUE p%d 0 %d" % (i, len(str(i))), str(i).encode(),
                b"END")
        if got != want:
            check("pipelined get %d" % i, got, want)
            break
    # A get of 2000 keys (a line far beyond 2048 bytes) answers them all.
    keys = [b"p%d" % (i % 200) for i in range(2000)]
    c.send(b"get " + b" ".join(keys) + b"\r\n")
    n = 0
    while c.line() != b"END":
        c.line()
        n += 1
    check("get of 2000 keys", n, 2000)
    # Multi-get with hits and misses.
    c.send(b"get p1 nokey p2\r\n")
    check("multi-get", [c.line() for _ in range(5)],
          [b"VALUE p1 0 1", b"1", b"VALUE p2 0 1", b"2", b"END"])
    # flush_all.
    check("flush_all", c.cmd(b"flush_all\r\n"), b"OK")
    check("flushed", c.get(b"p1"), None)
    check("set after flush", c.cmd(b"set f 0 0 1\r\nf\r\n"), b"STORED")
    check("get after flush", c.get(b"f"), (0, b"f"))
    st = c.stats()
    for k in ("curr_connections", "curr_items", "bytes", "evictions",
              "limit_maxbytes", "cmd_get", "get_hits", "version"):
        if k not in st:
            failures.append("stats lacks %s" % k)
    check("stats limit", st.get("limit_maxbytes"), str(16 << 20))
    check("stats connections", st.get("curr_connections"), "1")
    # A line too long without a newline: CLIENT_ERROR, then closed.
    c2 = Conn(port)
    check("line too long", c2.cmd(b"g" * 70000), b"CLIENT_ERROR line too long")
    c2.close()
    c.close()


def peak_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1])
    return 0


def big_get(srv):
    """A get whose reply is far larger than its line (16000 keys of a 4 KiB
    value: 64 MiB) is answered as the client reads, not built whole in the
    worker's memory first (it was: 64 MiB and more per such line)."""
    c = Conn(srv.port)
    check("set 4k", c.cmd(b"set v4k 0 0 4096\r\n" + b"v" * 4096 + b"\r\n"),
          b"STORED")
    workers = srv.workers()
    before = {p: peak_kib(p) for p in workers}
    n = 16000
    c.send(b"get " + b" ".join([b"v4k"] * n) + b"\r\nversion\r\n")
    got = 0
    while True:
        ln = c.line()
        if ln == b"END":
            break
        if ln != b"VALUE v4k 0 4096" or c.exact(4098) != b"v" * 4096 + b"\r\n":
            check("big get value %d" % got, ln, b"VALUE v4k 0 4096")
            return
        got += 1
    check("big get values", got, n)
    check("after big get", c.line()[:8], b"VERSION ")
    grew = max(peak_kib(p) - before.get(p, 0) for p in workers)
    # Under a sanitizer freed memory stays in its quarantine: no bound.
    if os.environ.get("SANITIZE", "none") == "none" and grew > 24 * 1024:
        failures.append("a 64 MiB get reply grew a worker by %d KiB (at "
                        "most 24 MiB: the reply waits for the reader)" % grew)
    c.close()


def second_server(binary, srv):
    """A second server started on the instance of a running one refuses to
    start, and the first goes on storing (the start's reset wiped the
    running server's instance, and every set of its failed after)."""
    c = Conn(srv.port)
    check("set before", c.cmd(b"set keep 0 0 4\r\nkept\r\n"), b"STORED")
    p = subprocess.run([binary, "-p", "0", "-t", "1", "--instance",
                        srv.instance], stderr=subprocess.PIPE, timeout=60)
    check("second server exit", p.returncode, 1)
    check("second server says why", b"in use by" in p.stderr, True)
    check("get after", c.get(b"keep"), (0, b"kept"))
    check("set after", c.cmd(b"set more 0 0 4\r\nmore\r\n"), b"STORED")
    check("get new", c.get(b"more"), (0, b"more"))
    c.close()


if __name__ == "__main__":
    sys.exit(main())
