#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_demo.sh - dsm_demo driven as a user drives it: separate processes
# from a shell, exit codes, stdout and stderr read as text.
#
#   test_demo.sh PATH/TO/dsm_demo
#
# For each backend: create in one process and read in another, by handle
# and by --name; list and list --json (parsed with python3, compared with
# what was created); destroy by name; what a missing handle or name says;
# --hold then an interrupt; a holder killed with SIGKILL that gc reports;
# a refused configuration file that creates nothing; usage errors (exit 2)
# against user errors (exit 1); --help of every command.  And per backend,
# an instance with a region: a segment carved from it is listed as region.
#
# dsm_demo is a normal program, so its instance ids carry no test tag and
# the suite's leftovers test cannot see its objects: after each reset this
# script looks for the instance's objects itself (/dev/shm names, SysV keys
# with its tag, the directory).  Processes are sequenced through a FIFO,
# never by sleeping.
set -u
demo="${1:?usage: test_demo.sh PATH/TO/dsm_demo}"
command -v python3 >/dev/null || { echo "python3 is needed to parse JSON"; exit 77; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/dynshm-test.XXXXXX")"
holder=
cleanup() {
	[ -n "$holder" ] && kill -9 "$holder" 2>/dev/null && wait "$holder"
	for i in "$dir"/*/; do
		[ -f "$i/state" ] && "$demo" --instance "${i%/}" reset >/dev/null 2>&1
	done
	rm -rf "$dir"
}
trap cleanup EXIT

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# run WANT_RC ARGS...: run dsm_demo; stdout in $out, stderr in $err.
run() {
	local want=$1
	shift
	"$demo" "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	out="$(cat "$dir/out")"
	err="$(cat "$dir/err")"
	if [ "$rc" != "$want" ]; then
		fail "dsm_demo $* exited $rc, expected $want (stderr: $err)"
		return 1
	fi
	return 0
}

has() { # has TEXT NEEDLE WHAT
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: '$1' does not contain '$2'" ;;
	esac
}

one_line() { # the user-error promise: exactly one line on stderr
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "$1: stderr is not one line: $err"
}

# Start `create --hold` in the background; its handle in $held.
start_holder() {
	rm -f "$dir/fifo"
	mkfifo "$dir/fifo"
	"$demo" "$@" >"$dir/fifo" &
	holder=$!
	read -r held <"$dir/fifo"
}

# Nothing of instance id $1 (16 hex digits) may be left anywhere.
check_gone() {
	local id=$1 tag
	if compgen -G "/dev/shm/dynshm.$id.*" >/dev/null; then
		fail "objects left in /dev/shm: $(ls /dev/shm | grep "$id")"
	fi
	tag=$(( (16#${id:12:4}) & 0xfff ))
	if awk -v want=$(( 0x1000 | tag )) -v uid="$(id -u)" \
		'NR > 1 && int($1 / 262144) == want && $8 == uid { found = 1 }
		 END { exit !found }' /proc/sysvipc/shm; then
		fail "SysV segments left with the tag of instance $id"
	fi
}

json_check() { # json_check PYTHON-EXPRESSION-ON-l WHAT
	# list --json is a versioned object; l is its list of segments
	printf '%s' "$out" | python3 -c "import json, sys
d = json.load(sys.stdin)
l = d['segments']
sys.exit(0 if d['version'] == 1 and ($1) else 1)" || fail "$2: list --json gave $out"
}

info_json_check() { # info_json_check PYTHON-EXPRESSION-ON-d WHAT
	printf '%s' "$out" | python3 -c "import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d['version'] == 1 and ($1) else 1)" || fail "$2: info --json gave $out"
}

for backend in posix sysv mmap; do
	inst="$dir/$backend"
	D=(--instance "$inst")

	# create in one process, read in others: by handle and by name
	run 0 "${D[@]}" --backend "$backend" create --name greeting "hello, $backend" || continue
	[[ "$out" =~ ^[0-9a-f]{16}$ ]] || fail "create printed '$out', not a handle"
	named=$out
	run 0 "${D[@]}" read "$named" && [ "$out" = "hello, $backend" ] ||
		fail "read by handle gave '$out'"
	run 0 "${D[@]}" read greeting && [ "$out" = "hello, $backend" ] ||
		fail "read by name gave '$out'"
	run 0 "${D[@]}" read "0x$named" && [ "$out" = "hello, $backend" ] ||
		fail "read by 0x handle gave '$out'"
	run 0 "${D[@]}" create "no name"
	anon=$out

	# list shows names; --json parses and matches what was created
	run 0 "${D[@]}" list
	has "$out" "greeting" "list"
	has "$out" "$anon" "list"
	run 0 "${D[@]}" list --json
	json_check "len(l) == 2 and {(s['handle'], s['name']) for s in l} == {('$named', 'greeting'), ('$anon', None)} and all(s['backend'] == '$backend' and s['pinned'] and s['state'] == 'active' and s['references'] == 0 for s in l)" "json after create"
	json_check "[s['size'] for s in l if s['name'] == 'greeting'] == [len('hello, $backend') + 1]" "json size"

	# lsipc's --noheadings and -o: the columns asked for, in that order
	run 0 "${D[@]}" list --noheadings -o name,SIZE,Backend
	want=$(printf 'greeting  %12d  %s\n%-8s  %12d  %s\n' \
		$(( ${#backend} + 8 )) "$backend" - 8 "$backend" | sort)
	[ "$(printf '%s\n' "$out" | sort)" = "$want" ] ||
		fail "list --noheadings -o name,SIZE,Backend gave: $out (expected $want)"
	run 0 "${D[@]}" list -o HANDLE
	[ "$(printf '%s\n' "$out" | sed -n 1p)" = "HANDLE" ] &&
		[ "$(printf '%s\n' "$out" | grep -c -e "^$named\$" -e "^$anon\$")" = 2 ] ||
		fail "list -o HANDLE gave: $out"
	run 2 "${D[@]}" list -o handle,colour
	has "$err" "unknown column 'colour'" "list -o with a bad column"

	# info --json: the same facts as info, for scripts
	run 0 "${D[@]}" info --json
	info_json_check "d['backend'] == '$backend' and d['segments'] == 2 and d['directory'] == '$inst' and len(d['instance_id']) == 16 and 'note' in d['region'] and 'status' in d['mshare']" "info --json"

	# user errors: exit 1, one line on stderr that names the culprit
	run 1 "${D[@]}" create --name greeting "again"
	has "$err" "a segment named 'greeting' already exists" "duplicate name"
	one_line "duplicate name"
	run 1 "${D[@]}" create --name "no spaces" "x"
	has "$err" "allowed: 1 to 63 bytes" "bad name"
	run 1 "${D[@]}" read 00000000deadbeef
	has "$err" "0x00000000deadbeef not found in instance '$inst'" "missing handle"
	one_line "missing handle"
	run 1 "${D[@]}" read no-such-name
	has "$err" "no segment named 'no-such-name' in instance '$inst'" "missing name"
	run 1 "${D[@]}" read 'semi;colon'
	has "$err" "neither a segment handle" "bad argument"
	run 1 --instance "$dir/absent" list
	has "$err" "does not exist" "absent instance"
	[ -e "$dir/absent" ] && fail "listing an absent instance created it"
	run 1 "${D[@]}" --backend "$( [ $backend = posix ] && echo mmap || echo posix)" list
	has "$err" "conflicts" "conflicting backend"

	# destroy by name: gone by name and by handle, name free again
	run 0 "${D[@]}" destroy greeting
	run 1 "${D[@]}" read greeting
	has "$err" "no segment named 'greeting'" "read after destroy"
	run 1 "${D[@]}" read "$named"
	has "$err" "0x$named not found" "old handle after destroy"
	run 0 "${D[@]}" create --name greeting "second life"
	run 0 "${D[@]}" read greeting && [ "$out" = "second life" ] ||
		fail "recreated name reads '$out'"
	run 0 "${D[@]}" destroy "$anon"

	# --hold: mapped while the holder runs, gone after an interrupt
	start_holder "${D[@]}" create --name held --hold "held text"
	run 0 "${D[@]}" read held && [ "$out" = "held text" ] ||
		fail "read of a held segment gave '$out'"
	kill -INT "$holder"
	wait "$holder" || fail "interrupted holder exited $?"
	holder=
	run 1 "${D[@]}" read "$held"
	has "$err" "0x$held not found" "read after interrupt"

	# a holder killed with SIGKILL: gc releases it and says so
	start_holder "${D[@]}" create --hold "doomed text"
	kill -9 "$holder"
	wait "$holder"
	holder=
	# list only looks: the dead holder's reference is still shown
	run 0 "${D[@]}" list --json
	json_check "[s['references'] for s in l if s['handle'] == '$held'] == [1]" "json before gc"
	run 0 "${D[@]}" gc
	[ "$out" = "released 1 dead process" ] || fail "gc said '$out'"
	run 0 "${D[@]}" list --json
	json_check "[s['name'] for s in l] == ['greeting']" "json after gc"
	run 0 "${D[@]}" gc
	[ "$out" = "released 0 dead processes" ] || fail "second gc said '$out'"

	# >>> vanished (issue 13.6): another program removes a segment's object
	# (posix: Python's multiprocessing.shared_memory, as its resource
	# tracker would); read says so, list shows it, gc and destroy retire it
	for how in gc destroy; do
		run 0 "${D[@]}" create --name "gone-$how" "vanishing"
		gone=$out
		run 0 "${D[@]}" info
		gid=$(printf '%s\n' "$out" | awk '/^instance id:/ { print $3 }')
		case $backend in
		posix) python3 -c "from multiprocessing import shared_memory as m
m.SharedMemory(name='dynshm.$gid.$gone').unlink()" || fail "python could not unlink" ;;
		mmap) rm "$inst/dynshm.$gid.$gone" ;;
		sysv) shmid=$(awk -v want=$(( 0x1000 | ((16#${gid:12:4}) & 0xfff) )) \
			'NR > 1 && int($1 / 262144) == want && $4 == 10 { print $2 }' /proc/sysvipc/shm)
			ipcrm -m "$shmid" || fail "ipcrm -m '$shmid'" ;;
		esac
		run 1 "${D[@]}" read "gone-$how"
		has "$err" "vanished" "read of a vanished segment"
		run 0 "${D[@]}" list --json
		json_check "[s['state'] for s in l if s['handle'] == '$gone'] == ['vanished']" "json of a vanished segment"
		if [ $how = gc ]; then
			run 0 "${D[@]}" gc
		else
			run 0 "${D[@]}" destroy "gone-$how"
		fi
		has "$out" "segment $gone ('gone-$how'): its $backend object had vanished" "$how of a vanished segment"
		run 0 "${D[@]}" list --json
		json_check "[s['name'] for s in l] == ['greeting']" "json after $how of a vanished segment"
	done
	# an empty argument names no segment: destroy "" must not take an
	# unnamed vanished one (posix, mmap: the object is a file to remove)
	if [ "$backend" != sysv ]; then
		run 0 "${D[@]}" create "unnamed"
		gone=$out
		run 0 "${D[@]}" info
		gid=$(printf '%s\n' "$out" | awk '/^instance id:/ { print $3 }')
		if [ "$backend" = posix ]; then
			rm "/dev/shm/dynshm.$gid.$gone"
		else
			rm "$inst/dynshm.$gid.$gone"
		fi
		"$demo" "${D[@]}" destroy "" >/dev/null 2>&1 &&
			fail "destroy \"\" succeeded"
		run 0 "${D[@]}" list --json
		json_check "[s['state'] for s in l if s['handle'] == '$gone'] == ['vanished']" "an unnamed vanished segment after destroy \"\""
		run 0 "${D[@]}" gc
		run 0 "${D[@]}" list --json
		json_check "[s['name'] for s in l] == ['greeting']" "json after gc of an unnamed vanished segment"
	fi
	# <<< vanished

	# reset: everything goes, and nothing is left anywhere
	run 0 "${D[@]}" info
	id=$(printf '%s\n' "$out" | awk '/^instance id:/ { print $3 }')
	run 0 "${D[@]}" reset
	[ -e "$inst" ] && fail "reset left $inst"
	check_gone "$id"

	# a region (from the environment): create lands in it, and list says
	# region, not the backend of the region's own object
	rinst="$dir/region-$backend"
	R=(--instance "$rinst")
	DYNSHM_MIN_DYNAMIC_SHARED_MEMORY=16MB DYNSHM_HUGE_PAGES=off \
		run 0 "${R[@]}" --backend "$backend" create --name carved "in the region" || continue
	carved=$out
	run 0 "${R[@]}" list
	printf '%s\n' "$out" | grep -Eq "^$carved +carved +[0-9]+ +region " ||
		fail "list does not show the region segment as region: $out"
	run 0 "${R[@]}" list --json
	json_check "[s['backend'] for s in l if s['handle'] == '$carved'] == ['region']" "json region backend"
	run 0 "${R[@]}" info
	id=$(printf '%s\n' "$out" | awk '/^instance id:/ { print $3 }')
	run 0 "${R[@]}" reset
	check_gone "$id"
done

# >>> planted (issue 13.9): a reboot emptied /dev/shm and a symbolic link
# now sits at the control segment's name.  Commands refuse it clearly;
# reset says what it found, recovers, and leaves the link alone.
pinst="$dir/planted"
run 0 --instance "$pinst" --backend posix create "before the reboot"
run 0 --instance "$pinst" info
pid=$(printf '%s\n' "$out" | awk '/^instance id:/ { print $3 }')
rm -f /dev/shm/dynshm."$pid".*
ln -s /etc/hostname "/dev/shm/dynshm.$pid.00c0ffee00ffffff"
run 1 --instance "$pinst" list
has "$err" "not made by dynshm" "list of a planted instance"
one_line "list of a planted instance"
run 0 --instance "$pinst" reset
has "$out" "found: " "reset of a planted instance"
has "$out" "symbolic link" "reset of a planted instance"
has "$out" "destroyed" "reset of a planted instance"
[ -L "/dev/shm/dynshm.$pid.00c0ffee00ffffff" ] || fail "reset removed the planted link"
rm -f "/dev/shm/dynshm.$pid.00c0ffee00ffffff"
[ -e "$pinst" ] && fail "reset left $pinst"
check_gone "$pid"
# <<< planted

# A refused configuration: exit 1, file:line, key, value, what is allowed;
# and nothing is created.
printf '# test\nmax_segments = 16\ndynamic_shared_memory_type = posx\n' >"$dir/bad.conf"
run 1 --instance "$dir/never" --config "$dir/bad.conf" create "x"
has "$err" "$dir/bad.conf:3: invalid value 'posx' for dynamic_shared_memory_type (allowed: posix, sysv, mmap, none)" "bad config"
[ -e "$dir/never" ] && fail "a refused configuration created $dir/never"
printf 'max_segment = 16\n' >"$dir/typo.conf"
run 1 --instance "$dir/never" --config "$dir/typo.conf" create "x"
has "$err" "typo.conf:1: unknown configuration key 'max_segment' (value '16'" "unknown key"
run 1 --instance "$dir/never" --config "$dir/missing.conf" create "x"
has "$err" "cannot open configuration file '$dir/missing.conf'" "missing file"
DYNSHM_MAX_SEGMENTS=-3 run 1 --instance "$dir/never" create "x"
has "$err" "DYNSHM_MAX_SEGMENTS" "bad environment"
has "$err" "'-3'" "bad environment value"
[ -e "$dir/never" ] && fail "a refused configuration created $dir/never"

# Usage errors: exit 2, and a hint on stderr
for args in "" "frobnicate" "--bogus list" "--instance" "read" "read a b" \
	"create" "create --name" "create --bogus x" "list --bogus" \
	"destroy" "gc extra" "info extra" "reset extra"; do
	# shellcheck disable=SC2086 # word splitting is the point
	run 2 --instance "$dir/never" $args && has "$err" "try 'dsm_demo --help'" "usage: '$args'"
	[ -z "$out" ] || fail "usage error '$args' printed on stdout: $out"
done
[ -e "$dir/never" ] && fail "a usage error created $dir/never"

# --help: the whole tool and each command, exit 0, on stdout
run 0 --help && has "$out" "commands:" "--help"
run 0 -h && has "$out" "commands:" "-h"
for cmd in create read list destroy gc info reset; do
	run 0 "$cmd" --help && has "$out" "usage: dsm_demo $cmd" "$cmd --help"
	run 0 "$cmd" -h && has "$out" "usage: dsm_demo $cmd" "$cmd -h"
done
# --version: the project's version, exit 0
run 0 --version && [[ "$out" =~ ^dsm_demo\ \(dynshm\)\ [0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	fail "--version printed '$out'"

if [ "$failures" -ne 0 ]; then
	echo "$failures failure(s)" >&2
	exit 1
fi
echo "dsm_demo: all checks passed"
