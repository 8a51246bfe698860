/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by every test program.
 *
 * Tests create real, system-wide objects (/dev/shm names, SysV keys,
 * directories), so two things must hold for every test: its objects are
 * recognisable as a test's, and nothing of them is left behind.  Instance
 * ids made by test_instance_id() carry TEST_TAG in their low 12 bits, which
 * is also the sysv backend's key tag, so test_count_leftovers() can find any
 * object a test forgot however it was named.
 *
 * Multi-process tests start children in one of two ways: test_fork() runs a
 * function in a forked child (inherits everything), test_spawn() re-executes
 * this very program with "--child <name> args..." (inherits nothing but the
 * environment - an unrelated process, as two shells running dsm_demo are).
 * A program that spawns children starts main() with test_child_main().
 */
#ifndef DYNSHM_TEST_TESTUTIL_H
#define DYNSHM_TEST_TESTUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <dynshm/dsm_impl.h>

/*
 * Low 12 bits of every test instance id (and so the SysV key tag).  The
 * build may choose another (meson -Dtest_tag=N) so that two checkouts can
 * run their suites on one machine at once without counting each other's
 * objects as leftovers.
 */
#ifndef TEST_TAG
#define TEST_TAG 0xd5fu
#endif
/* Exit status that meson (and automake) read as "skipped". */
#define TEST_SKIP 77
/* A uid that is not ours (nobody), for ownership tests run as root. */
#define TEST_OTHER_UID 65534

/* The real backends, in the order per-backend test groups run. */
struct test_backend {
	const char *name;
	dynshm_impl_type type;
};
extern const struct test_backend test_real_backends[];
extern const size_t test_n_real_backends;

/* A random instance id with TEST_TAG in its low 12 bits. */
uint64_t test_instance_id(void);
/* A random handle, never DYNSHM_HANDLE_INVALID. */
uint64_t test_random_handle(void);

/* A new private (0700) directory $TMPDIR/dynshm-test.XXXXXX; NULL on error. */
char *test_make_dir(void);
/* Remove dir and everything below it (not crossing mounts), free dir. */
int test_remove_dir(char *dir);

/*
 * Count what tests left behind: /dev/shm objects of test instances, SysV
 * segments with the test tag owned by us, and test directories.  Each is
 * described on a line of report (truncated to len).  Returns the count or
 * a negative errno.
 */
int test_count_leftovers(char *report, size_t len);

/*
 * What a backend space lists (dynshm_impl_list): the first TEST_LISTED_MAX
 * objects are kept, n counts them all.  test_list_space() returns a calloc'd
 * listing (free it) or NULL with *rc set to the error.
 */
#define TEST_LISTED_MAX 64
#define TEST_LISTED_NAME 256
struct test_listing {
	int n;
	uint64_t handle[TEST_LISTED_MAX];
	char name[TEST_LISTED_MAX][TEST_LISTED_NAME];
};
struct dynshm_impl_space;
struct test_listing *test_list_space(struct dynshm_impl_space *space, int *rc);

/* Entries in /proc/self/fd: compare before and after to catch fd leaks. */
int test_count_fds(void);
bool test_is_root(void);
/* A /proc/meminfo field ("HugePages_Free:", ...): its number, or -1. */
long long test_meminfo(const char *key);
/*
 * Count leftovers (test_count_leftovers) and print them under when;
 * 0 when there are none, else -1.
 */
int test_check_leftovers(const char *when);
/* Running under valgrind (its preload library is in LD_PRELOAD). */
bool test_under_valgrind(void);
/*
 * Is addr inside a mapping of this process (/proc/self/maps)?  true when
 * the file cannot be read: never claims a mapping is gone.
 */
bool test_is_mapped(const void *addr);

/* ---- one instance per test ---------------------------------------------- */

/*
 * The fixture of tests that each use one instance: a test directory, the
 * instance directory in it, a configuration and (if opened) the instance.
 */
struct dynshm_config;
struct dynshm_instance;
struct test_fixture {
	char *dir;		 /* test_make_dir() */
	char path[PATH_MAX];	 /* dir/inst */
	struct dynshm_config *cfg;	 /* backend and the settings given */
	struct dynshm_instance *inst; /* when opened, else NULL */
};
/*
 * Fill fx: a directory, a configuration of backend and the key, value
 * pairs that follow (ending with (char *)NULL; backend NULL: no
 * configuration, and nothing follows), and the instance at fx->path if
 * open.  0, or -1 (said on stderr).
 */
int test_fixture_setup(struct test_fixture *fx, bool open, const char *backend,
		       ...);
/*
 * Destroy fx->inst (with reset: close it, then open the instance with
 * DYNSHM_OPEN_RESET and destroy that, so what a test made unreachable goes
 * too; without an fx->inst: destroy an instance a test left at fx->path),
 * free the configuration, remove the directory and count leftovers
 * (test_check_leftovers(when)).  0, or -1 if anything failed or was left.
 */
int test_fixture_teardown(struct test_fixture *fx, bool reset,
			  const char *when);

/* ---- child processes ---------------------------------------------------- */

struct test_child {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the child's name */
};

/*
 * If argv[1] is "--child", run the child named argv[2] with the remaining
 * arguments and return its exit status (2 for an unknown name); otherwise
 * return -1 and let main() go on.  children ends with a { NULL } entry.
 */
int test_child_main(int argc, char **argv, const struct test_child *children);
/*
 * fork + execv("/proc/self/exe", "--child", name, args..., NULL), wait, and
 * return the exit status (128 + signal if killed, -1 if it could not start).
 * args ends with NULL.  (The link is resolved first, so that this works
 * under valgrind too; the child then runs without it.)
 */
int test_spawn(const char *name, const char *const *args);
/* The path of this program, to re-execute it (valgrind-safe). */
const char *test_self_exe(char *buf, size_t len);
/* fork, run fn(arg) in the child and _exit with its value; wait; status. */
int test_fork(int (*fn)(void *arg), void *arg);
/* The same without waiting: the child's pid, or -1. */
pid_t test_fork_start(int (*fn)(void *arg), void *arg);
/* Write all of buf (retrying EINTR and short writes): 0, or -1. */
int test_write_full(int fd, const void *buf, size_t len);
/* Wait for pid: exit status, 128 + signal, or -1. */
int test_wait(pid_t pid);

/*
 * Checks inside a child process, where CMocka's asserts must not be used
 * (they would unwind into the parent's test runner state): print where and
 * what, and return exit status 1 from the child function.
 */
#define CHILD_CHECK(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: child check failed: %s\n",     \
				__FILE__, __LINE__, #cond);                    \
			return 1;                                              \
		}                                                              \
	} while (0)

/*
 * Does pid sleep on a lock in the kernel (a futex)?  From
 * /proc/<pid>/wchan, or /proc/<pid>/syscall where wchan reads 0 (5.10).
 */
bool test_lock_waiting(pid_t pid);
/* Wait (bounded, about 10 s) until test_lock_waiting(pid): true, or false. */
bool test_await_lock_wait(pid_t pid);

/*
 * One round of the lock hand-over test (test_hostile's control lock,
 * test_hash_handover's partition lock).  Holder A releases the lock, which
 * wakes sleeper B; before B runs (it waits for its CPU at SCHED_IDLE behind
 * a busy process on CPU 0), newcomer D takes the free lock, and B is
 * killed.  Sleeper C must still get the lock once D lets go.  With a plain
 * robust mutex it does not: B took the only wake-up, and C sleeps forever
 * on a free lock.
 *
 * hold runs in a child (A and D): it takes the lock, calls
 * test_holder_holding() while it holds it, releases it and returns 0.
 * lock runs in a child (B and C): it takes the lock once and returns 0.
 * Both are given arg.  The round returns C's exit status, or -1 if C did
 * not get the lock within ~10 s or the round went wrong (said on stderr);
 * every child it started is reaped by then.
 */
struct test_handover {
	int (*hold)(void *arg);
	int (*lock)(void *arg);
	void *arg;
};
int test_handover_round(const struct test_handover *ho);
/* In hold: say "holding", and wait until the round lets go. */
void test_holder_holding(void);
/* Kill and reap children a round left (for a teardown; normally none). */
void test_handover_reap(void);

#endif
