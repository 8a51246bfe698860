# SPDX-License-Identifier: MIT
"""mcserver.py - start and stop dsm_memcache for the memcache tests.

Why: every memcache test needs a server on a free loopback port in an
instance of its own, and must prove at the end that nothing is left
behind: the supervisor exited 0, its workers are gone (reaped), the port
is free and the instance directory (and its /dev/shm objects) removed.
The test tag (TEST_TAG) names the scratch directory like the C tests do,
so .ci/run's leftover check sees anything we would leave.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def children(pid):
    """Pids whose parent is pid (from /proc, no tool needed)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


class Server:
    def __init__(self, binary, workers=2, memory_mb=16, item_max=None):
        tag = int(os.environ.get("TEST_TAG", "3423"))
        self.dir = tempfile.mkdtemp(prefix="dynshm-test.%03x." % tag,
                                    dir="/tmp")
        self.port_file = os.path.join(self.dir, "port")
        self.pid_file = os.path.join(self.dir, "pid")
        self.instance = os.path.join(self.dir, "inst")
        args = [binary, "-p", "0", "-t", str(workers), "-m", str(memory_mb),
                "--instance", self.instance, "--port-file", self.port_file,
                "--pid-file", self.pid_file]
        if item_max:
            args += ["-I", str(item_max)]
        self.proc = subprocess.Popen(args)
        try:
            self._wait_ready(workers)
        except BaseException:
            # Leave nothing behind even when the server did not start.
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill_hard()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _wait_ready(self, workers):
        for _ in range(200):
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    txt = f.read()
                if txt.endswith("\n"):
                    self.port = int(txt)
                    break
            if self.proc.poll() is not None:
                raise RuntimeError("dsm_memcache exited with %d"
                                   % self.proc.returncode)
            time.sleep(0.05)
        else:
            raise RuntimeError("dsm_memcache did not start")
        for _ in range(200):
            if len(self.workers()) == workers:
                break
            time.sleep(0.05)

    def workers(self):
        return children(self.proc.pid)

    def stop(self):
        """SIGTERM, then check that nothing is left; returns problems."""
        workers = self.workers()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        problems = []
        if rc != 0:
            problems.append("supervisor exited with %d" % rc)
        for w in workers:
            if os.path.exists("/proc/%d" % w):
                problems.append("worker %d still exists" % w)
        if os.path.exists(self.instance):
            problems.append("instance directory %s left" % self.instance)
        # Nothing listens on the port any more (TIME_WAIT of closed
        # connections may remain: SO_REUSEADDR passes over those).
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", self.port))
            s.listen(1)
        except OSError as e:
            problems.append("port %d not free: %s" % (self.port, e))
        finally:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def kill_hard(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Conn:
    """A raw text-protocol connection (no client library in between)."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port),
                                          timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def cmd(self, data):
        self.send(data)
        return self.line()

    def get(self, key, cas=False):
        """(flags, value[, cas]) or None."""
        self.send(b"%s %s\r\n" % (b"gets" if cas else b"get", key))
        res = None
        while True:
            ln = self.line()
            if ln == b"END":
                return res
            p = ln.split()
            if p[0] != b"VALUE":
                raise ValueError("unexpected %r" % ln)
            data = self.exact(int(p[3]) + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("bad data terminator")
            res = (int(p[2]), data[:-2]) + ((int(p[4]),) if cas else ())

    def stats(self):
        self.send(b"stats\r\n")
        out = {}
        while True:
            ln = self.line()
            if ln == b"END":
                return out
            _, k, v = ln.decode().split(" ", 2)
            out[k] = v

    def close(self):
        self.s.close()
