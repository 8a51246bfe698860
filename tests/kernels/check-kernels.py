#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-kernels.py - the test suite inside virtual machines booting the
distributions' long-term kernels (issue 16).

Why this exists: every other test runs on the kernel of the machine that
builds, and what dynshm relies on (robust futexes, flock and OFD locks,
posix_fallocate on tmpfs, SysV limits, SHM_HUGETLB and PMD sharing, shmem
THP, namespaces for the root tests) differs between the kernels that
servers actually run.  This boots each kernel of tests/kernels/kernels.list
under QEMU and runs the build's own tests there, as root, so a difference
shows up as a failing test instead of a user's bug report.

What it does, per kernel:
  1. fetch the kernel package with apt-get download, through a private apt
     configuration under a temporary directory (the host's sources and
     package lists are not touched), and unpack it with dpkg-deb -x (it is
     never installed);
  2. build an initramfs from the current build: every test program meson
     knows (`meson introspect --tests`, so tests added later come along),
     every program and library of the build, the files named in the tests'
     arguments, the shared libraries all of them need (ldd), busybox (static)
     for the shell and tools, bash and python3 (with its standard library)
     where the host has them, for the shell tests, and a small init;
  3. boot it with qemu-system-x86_64 -accel tcg (no KVM: it is not usable
     everywhere, e.g. nested, and TCG is enough), with a time limit;
  4. inside, run the tests one after the other the way `meson test` would
     (its environment, its working directory, its timeout times a factor
     for TCG, exit 77 = skipped), print one result line per test on the
     serial console and the output of the failing ones;
  5. read the results back from the console: the run fails if a test fails,
     times out, or the guest does not finish.

Suites 'build' and 'docs' are left out by default: they check the headers
with the compilers, the exported symbols with nm and the man pages with
groff - the toolchain and the text, not the kernel - and those tools are not
in the guest.

Nothing is installed on the host: it needs qemu-system-x86_64, a static
busybox, apt-get and dpkg-deb (Debian/Ubuntu), and Debian's archive.  Where
one is missing, or the archive cannot be read, it prints "skipped: <why>"
and exits 0.  A kernel whose package cannot be downloaded fails the run.
Everything it makes lives in one temporary directory that is removed at
the end, also on SIGTERM (--keep keeps it).  docs/kernels.md has the
measured times and the knobs (KERNELS_* environment variables).

  tests/kernels/check-kernels.py --build build [--kernels debian12-6.1]
  tests/kernels/check-kernels.py --build build --kernels debian12-6.1 \\
      --run 'build/bench/dsm_ptbench --procs 10 --size 1024'

Exit status: 0 all passed (or skipped), 1 a test failed or a guest did not
finish, 2 usage or setup error.
"""

import argparse
import gzip
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = 'DYNSHM-KTEST:'
DEFAULT_EXCLUDE = ['build', 'docs']
DEBIAN_MIRROR = os.environ.get('DEBIAN_MIRROR', 'http://deb.debian.org/debian')
SECURITY_MIRROR = os.environ.get('DEBIAN_SECURITY_MIRROR',
                                 'http://deb.debian.org/debian-security')
KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
QEMU = os.environ.get('KERNELS_QEMU', 'qemu-system-x86_64')


class Skip(Exception):
    """The host cannot run this check; say why and succeed."""


class Fail(Exception):
    """A kernel cannot be tested (its package cannot be had): say why, go on
    with the next kernel, and fail at the end."""


def log(msg):
    print('check-kernels: ' + msg, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---- the kernel ------------------------------------------------------------

def read_kernel_list(path):
    kernels = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if not line:
                continue
            if len(line) != 3:
                raise SystemExit('%s: bad line: %s' % (path, ' '.join(line)))
            kernels.append(dict(name=line[0], suite=line[1], package=line[2]))
    return kernels


def apt_sources(suite):
    """A base release (bookworm) comes with its updates and security suites,
    as a Debian 12 machine has them; a backports suite comes alone (its own
    newest version is the one wanted)."""
    if '-' in suite:
        return ['deb [signed-by=%s] %s %s main' % (KEYRING, DEBIAN_MIRROR, suite)]
    return ['deb [signed-by=%s] %s %s main' % (KEYRING, DEBIAN_MIRROR, suite),
            'deb [signed-by=%s] %s %s-updates main' % (KEYRING, DEBIAN_MIRROR, suite),
            'deb [signed-by=%s] %s %s-security main' % (KEYRING, SECURITY_MIRROR, suite)]


def fetch_kernel(k, tmp, cache):
    """apt-get download + dpkg-deb -x; returns (vmlinuz, version string)."""
    adir = os.path.join(tmp, 'apt-' + k['name'])
    for d in ('etc/sources.list.d', 'lists/partial', 'cache/archives/partial',
              'deb'):
        os.makedirs(os.path.join(adir, d), exist_ok=True)
    with open(os.path.join(adir, 'etc/sources.list'), 'w') as f:
        f.write('\n'.join(apt_sources(k['suite'])) + '\n')
    conf = os.path.join(adir, 'apt.conf')
    with open(conf, 'w') as f:
        f.write('Dir::Etc::SourceList "%s/etc/sources.list";\n' % adir)
        f.write('Dir::Etc::SourceParts "%s/etc/sources.list.d";\n' % adir)
        f.write('Dir::Etc::Preferences "/dev/null";\n')
        f.write('Dir::Etc::PreferencesParts "%s/etc/sources.list.d";\n' % adir)
        f.write('Dir::State::Lists "%s/lists";\n' % adir)
        f.write('Dir::State::status "/dev/null";\n')
        f.write('Dir::Cache "%s/cache";\n' % adir)
        f.write('APT::Sandbox::User "root";\n')
    env = dict(os.environ, APT_CONFIG=conf, LC_ALL='C')
    debdir = os.path.join(adir, 'deb')
    try:
        run(['apt-get', 'update', '-qq'], env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        raise Skip("cannot read Debian's archive (%s): apt-get update failed"
                   % DEBIAN_MIRROR)

    def download(spec):
        name = spec.split('=')[0]
        if cache:
            hits = [f for f in os.listdir(cache)
                    if f.startswith(name + '_') and f.endswith('.deb')]
            if '=' in spec:
                ver = spec.split('=', 1)[1].replace(':', '%3a')
                hits = [f for f in hits if f.startswith('%s_%s_' % (name, ver))]
            if hits and '=' in spec:
                return os.path.join(cache, hits[0])
        before = set(os.listdir(debdir))
        run(['apt-get', 'download', '-qq', spec], env=env, cwd=debdir,
            stdout=subprocess.DEVNULL)
        new = [f for f in os.listdir(debdir) if f not in before]
        if len(new) != 1:
            raise SystemExit('apt-get download %s gave %s' % (spec, new))
        path = os.path.join(debdir, new[0])
        if cache:
            shutil.copy(path, cache)
        return path

    # The newest version first; a mirror that lacks it (a 404 for a suite's
    # newest upload) falls back to the next one, and says so.
    madison = subprocess.run(['apt-cache', 'madison', k['package']], env=env,
                             capture_output=True, text=True).stdout
    versions = []
    for line in madison.splitlines():
        ver = line.split('|')[1].strip() if line.count('|') >= 2 else None
        if ver and ver not in versions:
            versions.append(ver)
    if not versions:
        raise Fail('%s: no package %s in %s' % (k['name'], k['package'],
                                                 k['suite']))
    for i, ver in enumerate(versions):
        try:
            deb = download('%s=%s' % (k['package'], ver))
            break
        except subprocess.CalledProcessError:
            if i + 1 == len(versions):
                raise Fail('%s: cannot download %s from %s (any version)'
                           % (k['name'], k['package'], DEBIAN_MIRROR))
            log('%s: %s=%s cannot be downloaded, trying %s' % (
                k['name'], k['package'], ver, versions[i + 1]))
    pkg = subprocess.check_output(['dpkg-deb', '-f', deb, 'Package'],
                                  text=True).strip()
    if not re.match(r'linux-image-\d', pkg):
        # a metapackage: take the linux-image it depends on, that version
        deps = subprocess.check_output(['dpkg-deb', '-f', deb, 'Depends'],
                                       text=True)
        m = re.search(r'(linux-image-\d[^\s,(]*)\s*\(=\s*([^)\s]+)\)', deps)
        if not m:
            raise SystemExit('%s: no linux-image in Depends: %s' % (pkg, deps))
        deb = download('%s=%s' % (m.group(1), m.group(2)))
    root = os.path.join(adir, 'root')
    run(['dpkg-deb', '-x', deb, root])
    boot = os.path.join(root, 'boot')
    images = [f for f in os.listdir(boot) if f.startswith('vmlinuz-')]
    if len(images) != 1:
        raise SystemExit('%s: no single vmlinuz in %s' % (deb, images))
    return os.path.join(boot, images[0]), images[0][len('vmlinuz-'):]


# ---- the initramfs ---------------------------------------------------------

class Cpio:
    """An initramfs (newc cpio, gzip) whose files sit at their host paths,
    symbolic links on the way included (merged /usr, /lib64 ...)."""

    def __init__(self):
        self.entries = {}   # path -> (mode, data or link target)

    def _dir(self, path):
        if path and path not in self.entries:
            self._dir(os.path.dirname(path).rstrip('/'))
            self.entries[path] = (stat.S_IFDIR | 0o755, b'')

    def data(self, path, data, mode=0o755):
        self._dir(os.path.dirname(path))
        self.entries[path] = (stat.S_IFREG | mode, data)

    def symlink(self, path, target):
        self._dir(os.path.dirname(path))
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode())

    def add(self, path, skip=lambda p: False, depth=0):
        """Copy the host's path (file, link or tree) to the same path."""
        if depth > 40:
            raise SystemExit('symbolic link loop at ' + path)
        path = os.path.normpath(os.path.abspath(path))
        parts = path.strip('/').split('/')
        cur = ''
        for i, part in enumerate(parts):
            cur += '/' + part
            if os.path.islink(cur):
                target = os.readlink(cur)
                if cur not in self.entries:
                    self.symlink(cur, target)
                dest = os.path.normpath(os.path.join(os.path.dirname(cur),
                                                     target))
                rest = parts[i + 1:]
                return self.add(os.path.join(dest, *rest) if rest else dest,
                                skip, depth + 1)
        if path in self.entries and not stat.S_ISDIR(self.entries[path][0]):
            return
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            self._dir(path)
            for name in sorted(os.listdir(path)):
                sub = os.path.join(path, name)
                if not skip(sub):
                    self.add(sub, skip, depth)
        elif stat.S_ISREG(st.st_mode):
            with open(path, 'rb') as f:
                self.data(path, f.read(), st.st_mode & 0o7777)

    def write(self, out):
        ino = 1
        body = bytearray()

        def rec(name, mode, data):
            nonlocal ino
            nameb = name.encode() + b'\0'
            hdr = '070701' + ''.join('%08X' % v for v in (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                len(nameb), 0))
            ino += 1
            body.extend(hdr.encode() + nameb)
            body.extend(b'\0' * (-len(body) % 4))
            body.extend(data)
            body.extend(b'\0' * (-len(body) % 4))

        for path in sorted(self.entries):
            mode, data = self.entries[path]
            rec(path.lstrip('/'), mode, data)
        rec('TRAILER!!!', 0, b'')
        with open(out, 'wb') as f:
            f.write(gzip.compress(bytes(body), compresslevel=1))


def is_elf(path):
    try:
        with open(path, 'rb') as f:
            return f.read(4) == b'\x7fELF'
    except OSError:
        return False


def shared_libs(path, env=None):
    """The libraries ldd resolves for an ELF file (with the test's env)."""
    out = subprocess.run(['ldd', path], capture_output=True, text=True,
                         env=env).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r'(/\S+) \(0x', line)
        if m:
            libs.append(m.group(1))
        elif '=> not found' in line:
            raise SystemExit('%s: %s' % (path, line.strip()))
    return libs


def guest_cmd(t):
    """A test's command as the guest runs it: a python interpreter named by
    a host path (a pyenv shim, say) becomes the guest's python3."""
    cmd = list(t['cmd'])
    if cmd and re.match(r'python(3(\.\d+)?)?$', os.path.basename(cmd[0])):
        cmd[0] = 'python3'
    return cmd


def host_tool(name):
    path = shutil.which(name)
    return os.path.realpath(path) if path else None


PY_SKIP = {'test', 'idlelib', 'tkinter', 'turtledemo', 'lib2to3',
           'ensurepip', 'pydoc_data', '__pycache__', 'site-packages',
           'dist-packages', 'config-3.11-x86_64-linux-gnu', 'unittest',
           'distutils'}


def add_python(cpio, libs):
    """python3 and its standard library (no tests, no tkinter, no site
    packages): test scripts may use it (test_demo.sh parses JSON)."""
    # meson's find_program('python3') (test commands) is the python that
    # runs meson, Debian's /usr/bin/python3 where it exists: take that one
    exe = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') \
        else shutil.which('python3')
    if not exe:
        return None
    try:
        info = subprocess.check_output([exe, '-c', (
            'import sys, sysconfig; '
            'print(sys.executable); print(sysconfig.get_paths()["stdlib"]); '
            'print(sysconfig.get_paths()["platstdlib"])')], text=True).split()
    except (OSError, subprocess.CalledProcessError):
        return None
    exe, stdlib, platstdlib = info

    def skip(p):
        base = os.path.basename(p)
        return base in PY_SKIP or base.startswith('config-')

    cpio.add(exe)
    libs.update(shared_libs(exe))
    for d in {stdlib, platstdlib}:
        cpio.add(d, skip)
        dyn = os.path.join(d, 'lib-dynload')
        if os.path.isdir(dyn):
            for so in os.listdir(dyn):
                libs.update(shared_libs(os.path.join(dyn, so)))
    # `python3` on the guest's PATH, whatever the host's layout
    if exe != '/usr/bin/python3':
        cpio.symlink('/usr/local/bin/python3', exe)
    return exe


INIT = r'''#!/bin/busybox sh
# The guest's init: mount what a Linux system has, run the tests, power off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts /dev/hugepages
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t devpts devpts /dev/pts
# /tmp becomes a tmpfs, keeping what the initramfs put there (a build
# tree checked out under /tmp, as CI's clone may be)
mkdir -p /.tmp-initramfs
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /.tmp-initramfs
cp -a /tmp/. /.tmp-initramfs/ 2>/dev/null
mount -o move /.tmp-initramfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname dynshm-guest
# loopback, for the tests that serve on 127.0.0.1 (dsm_memcache)
ifconfig lo 127.0.0.1 up 2>/dev/null || ip link set lo up 2>/dev/null
ulimit -c 0
echo "@MARK@ BOOTED $(uname -r) $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
cd /
sh /ktest/run.sh
echo "@MARK@ POWEROFF"
sync
poweroff -f
'''

RUNNER_HEAD = r'''#!/bin/sh
# Generated by check-kernels.py: the tests, as meson test would run them.
pass=0 fail=0 skip=0
uptime_cs() { read u _ </proc/uptime; echo "${u%%.*}${u#*.}"; }
export HOME=/root LANG=C.UTF-8 MESON_TEST_ITERATION=1
# what meson test sets for sanitized builds, so such a build behaves alike
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_summary=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_summary=1:print_stacktrace=1
'''

RUNNER_TEST = r'''
# ---- @NAME@
echo "@MARK@ START @IDX@ @QNAME@"
t0=$(uptime_cs)
( cd @WORKDIR@ && exec env MALLOC_PERTURB_=$(( $(uptime_cs) % 255 + 1 )) @ENV@ \
    timeout -s KILL @TIMEOUT@ @CMD@ ) >/tmp/ktest.log 2>&1 </dev/null
rc=$?
t1=$(uptime_cs)
secs=$(( (t1 - t0) / 100 )).$(( (t1 - t0) % 100 / 10 ))
if [ $rc -eq 77 ]; then st=SKIP
elif [ $(( (t1 - t0) / 100 )) -ge @TIMEOUT@ ]; then st=TIMEOUT
elif [ $rc -eq 0 ]; then st=@OK@
else st=@BAD@
fi
[ -n "$show" ] && [ $st != FAIL ] && [ $st != TIMEOUT ] && sed 's/^/| /' /tmp/ktest.log
case $st in
OK) pass=$((pass + 1)) ;;
SKIP) skip=$((skip + 1)); echo "@MARK@ skip reason: $(tail -n 3 /tmp/ktest.log | tr '\n' ' ')" ;;
*) fail=$((fail + 1))
   echo "@MARK@ ---- output of @QNAME@ (exit $rc)"
   sed 's/^/| /' /tmp/ktest.log
   echo "@MARK@ ---- end" ;;
esac
echo "@MARK@ RESULT @IDX@ $st rc=$rc ${secs}s @QNAME@"
'''

RUNNER_TAIL = r'''
echo "@MARK@ END pass=$pass fail=$fail skip=$skip"
'''

RUNNER_CMD = r'''
# ---- --run
echo "@MARK@ START 0 run"
t0=$(uptime_cs)
( cd @WORKDIR@ && exec env @ENV@ timeout -s KILL @TIMEOUT@ @CMD@ ) </dev/null 2>&1
rc=$?
t1=$(uptime_cs)
secs=$(( (t1 - t0) / 100 )).$(( (t1 - t0) % 100 / 10 ))
if [ $rc -eq 0 ]; then st=OK; pass=1; else st=FAIL; fail=1; fi
echo "@MARK@ RESULT 0 $st rc=$rc ${secs}s run"
'''


def q(s):
    return shlex.quote(str(s))


def discover_tests(build, suites, exclude):
    tests = json.loads(subprocess.check_output(
        ['meson', 'introspect', '--tests', build], text=True))
    chosen = []
    for t in tests:
        # suites look like 'project:suite'; match either spelling
        names = set(t['suite']) | {s.split(':', 1)[-1] for s in t['suite']}
        if suites and not names & set(suites):
            continue
        if names & set(exclude):
            continue
        chosen.append(t)
    # meson's order: priority first (higher earlier), then as defined
    chosen.sort(key=lambda t: -t.get('priority', 0))
    return chosen


def build_initramfs(build, tests, run_cmd, factor, show, out):
    cpio = Cpio()
    libs = set()
    build = os.path.abspath(build)

    # the host's top-level links first (merged /usr), so that nothing is
    # put into a directory /bin where the host has a link to usr/bin
    for top in ('/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'):
        if os.path.islink(top):
            cpio.symlink(top, os.readlink(top))
    busybox = host_tool('busybox')
    cpio.add(busybox)
    if os.path.realpath('/bin/busybox') != busybox:    # init runs /bin/busybox
        cpio.symlink(os.path.join(os.path.realpath('/bin'), 'busybox'), busybox)
    libs.update(shared_libs(busybox))
    bash = host_tool('bash')
    if bash:
        cpio.add(bash)
        if os.path.exists('/bin/bash'):     # #!/bin/bash, whatever the layout
            cpio.add('/bin/bash')
        libs.update(shared_libs(bash))
    # programs the test scripts call that busybox may lack (ipcrm, ipcs)
    for name in ('ipcrm', 'ipcs'):
        tool = host_tool(name)
        if tool:
            cpio.add(tool)
            libs.update(shared_libs(tool))
    # glibc dlopens libgcc_s for pthread_exit and pthread_cancel: ldd does
    # not list it, and without it those calls abort in the guest
    for d in ('/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64',
              '/usr/lib64'):
        gcc_s = os.path.join(d, 'libgcc_s.so.1')
        if os.path.exists(gcc_s):
            libs.add(os.path.realpath(gcc_s))
            libs.add(gcc_s)
            break
    python = add_python(cpio, libs)

    # every program and library of the build (tests run other programs of it)
    def skip_build(p):
        base = os.path.basename(p)
        return base.endswith('.p') or base.startswith('meson-') or \
            base in ('compile_commands.json', '.ninja_log', '.ninja_deps')
    for top, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if not skip_build(os.path.join(top, d))]
        for f in files:
            p = os.path.join(top, f)
            if is_elf(p) and os.access(p, os.X_OK) or f.endswith('.so') or \
                    '.so.' in f:
                cpio.add(p)
                if is_elf(p):
                    libs.update(shared_libs(p))

    # what the tests name: programs, scripts and their interpreters, files
    for t in tests:
        env = dict(os.environ, **(t.get('env') or {}))
        wd = t.get('workdir') or build
        for i, arg in enumerate(t['cmd']):
            p = arg if os.path.isabs(arg) else os.path.join(wd, arg)
            if not os.path.exists(p) or (not os.path.isabs(arg) and i == 0):
                continue
            if os.path.isdir(p) and p in ('/', '/usr', '/tmp'):
                continue
            cpio.add(p)
            if p.endswith('.py'):   # the modules a test script imports
                d = os.path.dirname(p)
                for f in os.listdir(d):
                    if f.endswith('.py'):
                        cpio.add(os.path.join(d, f))
            if os.path.isfile(p) and is_elf(p):
                libs.update(shared_libs(p, env))
            elif os.path.isfile(p):
                with open(p, 'rb') as f:
                    first = f.readline()
                if first.startswith(b'#!'):
                    interp = first[2:].decode().split()
                    prog = interp[1] if interp[0].endswith('/env') else interp[0]
                    if os.path.basename(prog) not in ('sh', 'env', 'bash', 'python3'):
                        tool = host_tool(os.path.basename(prog))
                        if tool:
                            cpio.add(tool)
                            libs.update(shared_libs(tool))

    for lib in sorted(libs):
        cpio.add(lib)

    cpio.data('/etc/passwd', b'root:x:0:0:root:/root:/bin/sh\n'
              b'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n', 0o644)
    cpio.data('/etc/group', b'root:x:0:\nnogroup:x:65534:\n', 0o644)
    cpio.data('/etc/hostname', b'dynshm-guest\n', 0o644)
    cpio.data('/init', INIT.replace('@MARK@', MARK).encode())

    script = RUNNER_HEAD + ('show=1\n' if show else 'show=\n')
    if run_cmd:
        script += (RUNNER_CMD.replace('@WORKDIR@', q(os.getcwd()))
                   .replace('@ENV@', 'LD_LIBRARY_PATH=' + q(build + '/src'))
                   .replace('@TIMEOUT@', '3600')
                   .replace('@CMD@', ' '.join(q(os.path.abspath(a))
                                              if os.path.exists(a) else q(a)
                                              for a in shlex.split(run_cmd))))
        for a in shlex.split(run_cmd):
            if os.path.exists(a) and os.path.isfile(a):
                cpio.add(a)
                if is_elf(a):
                    for lib in shared_libs(a):
                        cpio.add(lib)
    for idx, t in enumerate(tests if not run_cmd else [], 1):
        qname = '%s / %s' % ('+'.join(s.split(':', 1)[-1] for s in t['suite']),
                             t['name'])
        env = ' '.join(q('%s=%s' % kv) for kv in sorted((t.get('env') or {}).items()))
        # meson: a timeout of 0 (or less) means none; ours is still bounded
        timeout = int(t['timeout'] * factor) if (t.get('timeout') or 0) > 0 \
            else 3600
        ok, bad = ('FAIL', 'OK') if t.get('should_fail') else ('OK', 'FAIL')
        script += (RUNNER_TEST.replace('@NAME@', qname.replace('\n', ' '))
                   .replace('@QNAME@', q(qname))
                   .replace('@IDX@', str(idx))
                   .replace('@WORKDIR@', q(t.get('workdir') or build))
                   .replace('@ENV@', env)
                   .replace('@TIMEOUT@', str(timeout))
                   .replace('@CMD@', ' '.join(q(a) for a in guest_cmd(t)))
                   .replace('@OK@', ok).replace('@BAD@', bad))
    script += RUNNER_TAIL
    cpio.data('/ktest/run.sh', script.replace('@MARK@', MARK).encode())
    cpio.write(out)
    return python


# ---- the virtual machine ---------------------------------------------------

def boot(kernel, initrd, name, args, tests):
    """Boot, stream the console, return (ok, summary line, seconds)."""
    # TCG, not KVM: KVM is not usable everywhere (this project's machine is
    # nested and KVM fails there), and TCG is enough.  '-cpu max' without
    # cx16: QEMU 7.2's TCG corrupts state on the gs-relative cmpxchg16b of
    # 6.12's SLUB fast path (double fault in kmem_cache_alloc, at boot or
    # under threads); without cx16 the kernel takes its plain path.
    cmd = [QEMU, '-accel', os.environ.get('KERNELS_ACCEL', 'tcg'),
           '-cpu', os.environ.get('KERNELS_CPU', 'max,-cx16'),
           '-smp', str(args.smp), '-m', str(args.memory),
           '-nodefaults', '-display', 'none', '-no-reboot',
           '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd,
           '-append', 'console=ttyS0 panic=-1 quiet loglevel=3']
    log('%s: booting (%s)' % (name, ' '.join(cmd[:8])))
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        return watch(proc, start, name, args, tests)
    finally:
        if proc.poll() is None:     # interrupted: no guest outlives us
            proc.kill()
            proc.wait()


def watch(proc, start, name, args, tests):
    results, end, booted, poweroff = {}, None, None, False
    tail = []
    timed_out = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b''
    deadline = start + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            proc.kill()
            break
        if not sel.select(timeout=min(left, 5)):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b'\n')
        for raw in lines:
            line = raw.decode('utf-8', 'replace').rstrip('\r')
            tail = (tail + [line])[-40:]
            i = line.find(MARK)
            if i >= 0:
                words = line[i + len(MARK):].split()
                if words[:1] == ['BOOTED']:
                    booted = ' '.join(words[1:])
                elif words[:1] == ['RESULT']:
                    results[int(words[1])] = words[2]
                elif words[:1] == ['END']:
                    end = ' '.join(words[1:])
                elif words[:1] == ['POWEROFF']:
                    poweroff = True
            if args.verbose or i >= 0 or line.startswith('| ') or \
                    (args.run and booted):
                print('[%s] %s' % (name, line), flush=True)
    proc.wait()
    secs = time.monotonic() - start
    expected = [0] if args.run else range(1, len(tests) + 1)
    bad = [i for i, st in results.items() if st not in ('OK', 'SKIP')]
    missing = [i for i in expected if i not in results]
    ok = end is not None and poweroff and not bad and not missing and \
        not timed_out
    if not ok:
        why = ('did not finish within %d s' % args.timeout if timed_out else
               'never booted' if booted is None else
               'stopped before the end' if end is None else
               '%d failed' % len(bad) if bad else
               'no result for %d tests' % len(missing))
        if booted is None or end is None:
            print('[%s] last console lines:' % name)
            for line in tail:
                print('[%s] > %s' % (name, line))
        return False, why, secs, booted
    return True, end, secs, booted


def check_host():
    if os.uname().machine != 'x86_64':
        raise Skip('the host is %s; the guests and the copied programs are '
                   'x86_64' % os.uname().machine)
    for tool, pkg in ((QEMU, 'qemu-system-x86'),
                      ('busybox', 'busybox-static'),
                      ('apt-get', 'apt'), ('dpkg-deb', 'dpkg'),
                      ('ldd', 'libc-bin'), ('meson', 'meson')):
        if not shutil.which(tool):
            raise Skip('%s is not installed (Debian package %s)' % (tool, pkg))
    bb = host_tool('busybox')
    out = subprocess.run(['ldd', bb], capture_output=True, text=True)
    if '=>' in out.stdout:
        raise Skip('%s is not static (install busybox-static)' % bb)
    if not os.path.exists(KEYRING):
        raise Skip('no %s: the kernels come from Debian\'s archive' % KEYRING)
    probe = subprocess.run([QEMU, '-accel', 'help'],
                           capture_output=True, text=True)
    if probe.returncode != 0 or 'tcg' not in probe.stdout:
        raise Skip('qemu-system-x86_64 cannot run here (no TCG accelerator: %s)'
                   % (probe.stdout + probe.stderr).strip()[:200])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--build', default='build', help='meson build directory')
    ap.add_argument('--list', default=os.path.join(HERE, 'kernels.list'))
    ap.add_argument('--kernels', default=os.environ.get('KERNELS', ''),
                    help='comma-separated names from the list (default all)')
    ap.add_argument('--suite', action='append', default=[],
                    help='run only these suites (as meson test --suite)')
    ap.add_argument('--no-suite', action='append', default=None,
                    help='leave out these suites (default: build, docs)')
    ap.add_argument('--timeout-multiplier', type=float,
                    default=float(os.environ.get('KERNELS_TIMEOUT_MULTIPLIER', 4)),
                    help="factor on each test's meson timeout (TCG is slow)")
    ap.add_argument('--timeout', type=int,
                    default=int(os.environ.get('KERNELS_TIMEOUT', 2400)),
                    help='seconds a guest may run before it counts as hung')
    ap.add_argument('--memory', default=os.environ.get('KERNELS_MEMORY', '2G'))
    ap.add_argument('--smp', type=int, default=2)
    ap.add_argument('--cache', default=os.environ.get('KERNELS_CACHE'),
                    help='keep downloaded .deb files here between runs')
    ap.add_argument('--run', help='run this command in the guest instead of '
                    'the tests (e.g. a benchmark); its output is printed')
    ap.add_argument('--keep', action='store_true', help='keep the temp dir')
    ap.add_argument('--show-output', action='store_true',
                    help="print every test's output, not only the failures'")
    ap.add_argument('--verbose', action='store_true',
                    help='print the whole console, kernel messages included')
    args = ap.parse_args()
    exclude = DEFAULT_EXCLUDE if args.no_suite is None else args.no_suite

    try:
        check_host()
    except Skip as e:
        print('check-kernels: skipped: %s' % e, flush=True)
        return 0
    if not os.path.exists(os.path.join(args.build, 'build.ninja')):
        log('no meson build in %s (configure and build it first)' % args.build)
        return 2

    kernels = read_kernel_list(args.list)
    if args.kernels:
        want = args.kernels.split(',')
        unknown = set(want) - {k['name'] for k in kernels}
        if unknown:
            log('unknown kernels %s (see %s)' % (', '.join(sorted(unknown)),
                                                  args.list))
            return 2
        kernels = [k for k in kernels if k['name'] in want]
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)

    # SIGTERM (a CI timeout, kill) unwinds like ^C: the guest is killed and
    # the temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tests = discover_tests(args.build, args.suite, exclude)
    log('%d tests from %s (left out: suites %s)' % (
        len(tests), args.build, ', '.join(exclude) or 'none'))
    tmp = tempfile.mkdtemp(prefix='dynshm-kernels.')
    summary, status = [], 0
    try:
        initrd = os.path.join(tmp, 'initramfs.gz')
        t0 = time.monotonic()
        python = build_initramfs(args.build, tests, args.run,
                                 args.timeout_multiplier, args.show_output,
                                 initrd)
        log('initramfs: %.1f MB in %.1f s (python3: %s)' % (
            os.path.getsize(initrd) / 1e6, time.monotonic() - t0,
            python or 'none, tests that need it skip'))
        for k in kernels:
            try:
                t0 = time.monotonic()
                vmlinuz, version = fetch_kernel(k, tmp, args.cache)
                log('%s: %s from %s (%.0f s to fetch)' % (
                    k['name'], version, k['suite'], time.monotonic() - t0))
            except Skip as e:
                print('check-kernels: skipped: %s' % e, flush=True)
                return 0
            except (Fail, subprocess.CalledProcessError) as e:
                log('FAILED: %s' % e)
                summary.append('%-14s %-28s %-6s %s' % (
                    k['name'], '?', 'FAILED', 'not fetched: %s' % e))
                status = 1
                continue
            ok, what, secs, booted = boot(vmlinuz, initrd, k['name'], args,
                                          tests)
            line = '%-14s %-28s %-6s %4.0f s  %s' % (
                k['name'], version, 'ok' if ok else 'FAILED', secs, what)
            summary.append(line)
            if not ok:
                status = 1
    finally:
        if args.keep:
            log('kept ' + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log('summary (TCG, %d vCPUs, %s memory):' % (args.smp, args.memory))
    for line in summary:
        print('  ' + line)
    return status


if __name__ == '__main__':
    sys.exit(main())
