#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-layers.py - the library's files call each other bottom-up only.

Issue 11, section 8: the wrapper's files used to call each other in a
circle (instance.c <-> segment.c, named.c and placement.c back into
instance.c's lock and reap helpers).  The layers are now, bottom-up, as
src/meson.build lists them and src/sync.c explains; this test reads which
object of the library defines and which uses each symbol (nm over the
archive of the library's objects) and fails on any call from a file to one
of the same rank or above - so a new call that closes a circle, or a new
file that nobody placed in a layer, is caught where it is made.

usage: check-layers.py NM ARCHIVE
"""
import subprocess
import sys

# rank: a file may call only files of a strictly lower rank.
RANKS = {
    # base: system-call table, errors, configuration, state file
    'sys': 0, 'strerror_xsi': 0, 'version': 0,
    'error': 1,
    # the backends: shared helpers, the four backends, the dispatch
    'impl_common': 2,
    'impl_posix': 3, 'impl_sysv': 3, 'impl_mmap': 3, 'impl_none': 3,
    'impl_impl': 4,
    'config': 5, 'state': 5, 'spaces': 5,
    # the control segment: the region's allocator below the segment
    'region': 6,
    'control': 7,
    # the procs file (liveness, lock seats); the msharefs system calls
    'liveness': 8, 'mshare': 8, 'mshare_stub': 8,
    'placement': 9,
    # the control lock, repair and reaping; then membership
    'sync': 10,
    'process': 11,
    # segments and instances: the public API
    'segment': 12,
    'named': 13, 'instance': 13,
    # facilities, on the public API only
    'facility_fsys': 14,
    'facility_tlock': 15,
    'facility_toc': 16, 'facility_mq': 16, 'facility_area': 16,
    'facility_hash': 17,
}


def members(nm, archive):
    """{member: (defined symbols, undefined symbols)}"""
    out = subprocess.run([nm, archive], capture_output=True, text=True,
                         check=True).stdout
    objs, cur = {}, None
    for line in out.splitlines():
        if line.endswith('.o:'):
            cur = line[:-1].split('/')[-1].rsplit('.c.o', 1)[0]
            objs[cur] = (set(), set())
            continue
        parts = line.split()
        if cur is None or not parts:
            continue
        if len(parts) == 3 and parts[1] in 'TDBRC':
            objs[cur][0].add(parts[2])
        elif len(parts) == 2 and parts[0] == 'U':
            objs[cur][1].add(parts[1])
    return objs


def main():
    nm, archive = sys.argv[1], sys.argv[2]
    objs = members(nm, archive)
    owner = {s: o for o, (d, _) in objs.items() for s in d}
    bad = 0
    for o in sorted(objs):
        if o not in RANKS:
            print(f'{o}.c is in no layer: give it a rank in {sys.argv[0]}')
            bad += 1
    if len(objs) < 20:
        print(f'only {len(objs)} objects in {archive}: not the library?')
        bad += 1
    for o, (_, used) in sorted(objs.items()):
        for s in sorted(used):
            t = owner.get(s)
            if t is None or t == o or o not in RANKS or t not in RANKS:
                continue
            if RANKS[t] >= RANKS[o]:
                print(f'{o}.c calls {s} of {t}.c, which is not below it '
                      f'(ranks {RANKS[o]} -> {RANKS[t]})')
                bad += 1
    if bad:
        return 1
    print(f'{len(objs)} objects, every call goes down a layer')
    return 0


if __name__ == '__main__':
    sys.exit(main())
