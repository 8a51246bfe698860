#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_docs.py - the command samples in docs/*.md are what dsm_demo prints.

A sample is checked when it sits in a fenced block whose info string is
`console`:

    ```console
    $ dsm_demo --instance $INST create --name greeting "hello by name"
    e447710000000001
    [exit 0]
    $ dsm_demo --instance $INST read greeting
    hello by name
    ```

Each `$ ` line is a command (one line; run by bash), the lines after it up
to the next command are what it prints (stdout and stderr together;
trailing blank lines ignored), and an optional `[exit N]` line is its exit
status (not checked when absent).  Blocks fenced with plain ``` are shown,
not run: use them for output that depends on the machine, on root, on
timing or on a process left in the background.

Every document runs in a fresh private directory standing for /tmp/dsmdoc
(written so in the docs, in commands and in messages), with
INST=/tmp/dsmdoc/inst, XDG_RUNTIME_DIR=/tmp/dsmdoc/run, no DYNSHM_*
variable set, and dsm_demo first in PATH.  Its blocks run in order and
share state, as a reader following the text would.  A `$ cat FILE` whose
FILE does not exist yet writes the text shown under it first, so a sample
can show a configuration file and then use it.  Afterwards every instance
left in the directory is reset and checked for objects left in /dev/shm.

What differs from run to run is masked on both sides before comparing:
16-hex-digit tokens (handles and instance ids; a handle printed by one
command and typed in a later one is replaced by the real one), pids
(`created by pid:`, the CREATOR column, "creator_pid"), ages (the AGE
column, "age_seconds") and addresses (0x followed by 8 to 15 hex digits).

When dsm_demo's output changes on purpose, rewrite the samples from a
real run and review the diff:

    tests/test_docs.py --update build/contrib/dsm_demo docs/dsm_demo.md
    git diff docs/

A DOCS_DIR argument stands for every *.md file in it.

usage: test_docs.py [--update] DIR_WITH_DSM_DEMO DOC.md|DOCS_DIR...
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

DOCDIR = "/tmp/dsmdoc"
HEX16 = re.compile(r"(?<![0-9a-zA-Z])(?:0x)?([0-9a-f]{16})(?![0-9a-zA-Z])")
MASKS = [
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-zA-Z])"), "<hex16>"),
    (re.compile(r"(created by pid:\s+)\d+"), r"\1<pid>"),
    (re.compile(r"\s+\d+\s+\d+[smh]$"), " <pid> <age>"),
    (re.compile(r'"creator_pid": \d+'), '"creator_pid": <pid>'),
    (re.compile(r'"age_seconds": \d+'), '"age_seconds": <age>'),
    (re.compile(r"\b0x[0-9a-f]{8,15}(?![0-9a-zA-Z])"), "0x<addr>"),
]
EXIT = re.compile(r"^\[exit (\d+)\]$")


def mask(line):
    for pattern, repl in MASKS:
        line = pattern.sub(repl, line)
    return line


class Command:
    def __init__(self, lineno, text):
        self.lineno = lineno  # 0-based line of the "$ " line
        self.text = text
        self.expected = []  # (lineno, text)
        self.exit_line = None  # (lineno, code)


def parse(lines):
    """The commands of the console blocks, in order."""
    commands, in_block = [], False
    for i, line in enumerate(lines):
        stripped = line.rstrip("\n")
        if not in_block:
            in_block = stripped.strip() == "```console"
            continue
        if stripped.strip() == "```":
            in_block = False
            continue
        if stripped.startswith("$ "):
            commands.append(Command(i, stripped[2:]))
        elif commands:
            m = EXIT.match(stripped)
            if m:
                commands[-1].exit_line = (i, int(m.group(1)))
            elif commands[-1].exit_line is None:
                commands[-1].expected.append((i, stripped))
    for c in commands:
        while c.expected and c.expected[-1][1] == "":
            c.expected.pop()
    return commands


def environment(work, demo_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNSHM_")}
    env["PATH"] = demo_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["INST"] = os.path.join(work, "inst")
    env["XDG_RUNTIME_DIR"] = os.path.join(work, "run")
    env["LC_ALL"] = "C"
    return env


def instances(work):
    for root, _dirs, files in os.walk(work):
        if "state" in files and "lock" in files:
            yield root


def clean_up(work, env):
    """Reset what the samples left; return the problems found."""
    problems = []
    for inst in list(instances(work)):
        info = subprocess.run(["dsm_demo", "--instance", inst, "info"],
                              env=env, capture_output=True, text=True)
        ids = re.findall(r"^instance id:\s+([0-9a-f]{16})$", info.stdout, re.M)
        subprocess.run(["dsm_demo", "--instance", inst, "reset"], env=env,
                       capture_output=True)
        for iid in ids:
            left = [n for n in os.listdir("/dev/shm")
                    if n.startswith("dynshm.%s." % iid)]
            if left:
                problems.append("left in /dev/shm: %s" % ", ".join(left))
    return problems


def run_doc(path, demo_dir, update):
    with open(path) as f:
        lines = f.readlines()
    commands = parse(lines)
    if not commands:
        return 0, 0
    work = tempfile.mkdtemp(prefix="dynshm-docs.")
    os.chmod(work, 0o700)
    os.mkdir(os.path.join(work, "run"), 0o700)
    env = environment(work, demo_dir)
    handles = {}  # handle shown in the doc -> handle of this run
    failures = 0
    try:
        for c in commands:
            text = c.text
            for doc_h, real_h in handles.items():
                text = text.replace(doc_h, real_h)
            cmd = text.replace(DOCDIR, work)
            m = re.match(r"cat (\S+)\s*$", text)
            if m and not os.path.exists(os.path.join(work, m.group(1))):
                with open(os.path.join(work, m.group(1)), "w") as f:
                    f.write("".join(t.replace(DOCDIR, work) + "\n"
                                    for _, t in c.expected))
            proc = subprocess.run(["bash", "-c", cmd], cwd=work, env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=60)
            actual = proc.stdout.replace(work, DOCDIR).rstrip("\n")
            actual = actual.split("\n") if actual else []
            expected = [t for _, t in c.expected]
            for e, a in zip(expected, actual):
                for doc_h, real_h in zip(HEX16.findall(e), HEX16.findall(a)):
                    handles.setdefault(doc_h, real_h)
            same = [mask(x) for x in expected] == [mask(x) for x in actual]
            code_ok = c.exit_line is None or c.exit_line[1] == proc.returncode
            if update:
                # The real run's lines replace the shown ones that differ
                # after masking; the others (and so their handles) stay.
                first = c.expected[0][0] if c.expected else c.lineno + 1
                for lineno, _ in c.expected:
                    lines[lineno] = None
                if c.exit_line:
                    lines[c.exit_line[0]] = "[exit %d]\n" % proc.returncode
                kept = [e if i < len(expected) and mask(e) == mask(a) else a
                        for i, (e, a) in enumerate(
                            zip(expected + [None] * len(actual), actual))]
                if kept:
                    out = "".join(k + "\n" for k in kept)
                    lines[first] = out if lines[first] is None else \
                        out + lines[first]
                continue
            if same and code_ok:
                continue
            failures += 1
            print("%s:%d: $ %s" % (path, c.lineno + 1, c.text))
            if not code_ok:
                print("  exit status %d, the doc says %d"
                      % (proc.returncode, c.exit_line[1]))
            if not same:
                print("  the doc shows:")
                print("".join("    | %s\n" % x for x in expected), end="")
                print("  dsm_demo printed:")
                print("".join("    | %s\n" % x for x in actual), end="")
    finally:
        problems = clean_up(work, env)
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("%s: %s" % (path, p))
        failures += 1
    if update:
        with open(path, "w") as f:
            f.write("".join(x for x in lines if x is not None))
    return len(commands), failures


def main(argv):
    update = "--update" in argv
    args = [a for a in argv if a != "--update"]
    if len(args) < 2:
        print(__doc__.strip().split("\n")[-1], file=sys.stderr)
        return 2
    demo_dir = os.path.abspath(args[0])
    if not os.access(os.path.join(demo_dir, "dsm_demo"), os.X_OK):
        print("no dsm_demo in %s" % demo_dir, file=sys.stderr)
        return 2
    docs = []
    for a in args[1:]:
        if os.path.isdir(a):
            docs += sorted(os.path.join(a, n) for n in os.listdir(a)
                           if n.endswith(".md"))
        else:
            docs.append(a)
    total = failed = 0
    for doc in docs:
        n, f = run_doc(doc, demo_dir, update)
        if n:
            print("%s: %d sample command(s), %d differ" % (doc, n, f))
        total += n
        failed += f
    if total == 0 and not update:
        print("no ```console sample found", file=sys.stderr)
        return 1
    return 1 if failed and not update else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
