#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh - what `make demo` shows: a segment created by one process and
# read by another, listed, then destroyed.  Each step is a separate process,
# exactly as two shells would do it.  Uses a private instance directory so
# it never touches a real instance, and removes it at the end.
set -euo pipefail
demo="${1:?usage: demo.sh PATH/TO/dsm_demo}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/dynshm-demo.XXXXXX")"
inst="$dir/instance"
trap '"$demo" --instance "$inst" reset >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

# Show each command as a user would type it, then run it.
step() {
	printf '\n$ dsm_demo %s\n' "${*:2}" | sed "s|--instance $inst |--instance \$INST |"
	"$@"
}

echo "INST=$inst  (a private instance directory for this demo)"
for backend in posix sysv mmap; do
	printf '\n==== backend: %s ====\n' "$backend"
	printf '\n# process 1 creates a pinned segment and exits:\n'
	printf '$ dsm_demo --instance $INST --backend %s create "hello from pid %s"\n' \
		"$backend" "$$"
	handle="$("$demo" --instance "$inst" --backend "$backend" \
		create "hello from pid $$")"
	echo "$handle"
	printf '\n# process 2 attaches it by handle and reads it:\n'
	step "$demo" --instance "$inst" read "$handle"
	printf '\n# a segment can also have a name, and be found by it:\n'
	step "$demo" --instance "$inst" create --name greeting "hello by name"
	step "$demo" --instance "$inst" read greeting
	step "$demo" --instance "$inst" list
	step "$demo" --instance "$inst" destroy "$handle"
	step "$demo" --instance "$inst" destroy greeting
	printf '\n# the handle is now refused:\n'
	step "$demo" --instance "$inst" read "$handle" || true
	step "$demo" --instance "$inst" info
	step "$demo" --instance "$inst" reset
done
