/* SPDX-License-Identifier: MIT */
/*
 * wrapper_harness.h - the fixture and helpers of the wrapper-layer test
 * programs (test_segments, test_detach, test_fork, test_instance,
 * test_injected), which were one 3,500-line test_wrapper.c until it was
 * split by topic (issue 11, section 8).  One copy here, linked into each.
 *
 * Every real backend runs a program's tests as a CMocka group of its own,
 * from one table (as test_impl.c does for the backend layer); the none
 * backend and the configuration API have small groups of their own
 * (wrapper_main).  Each test gets a fresh private directory and opens its
 * instances by directory inside it ("<dir>/inst"), never by name, so
 * nothing lands in $XDG_RUNTIME_DIR.
 *
 * Other processes are of two kinds, as in a real server: forked children
 * (which inherit the instance, see the fork rules in dsm.h) and unrelated
 * processes (the program re-executed with --child, which open the instance
 * by its directory).  They are sequenced with pipes, never with sleeps; a
 * read that waits longer than IO_TIMEOUT_MS is a hang, reported as a
 * failure rather than left to the meson timeout.
 *
 * Whether an OS object exists is asked of the OS (lstat of /dev/shm or of
 * the mmap file, shmget of the SysV key), by the names the backend layer
 * derives from (instance id, handle).  After every test the teardown
 * destroys whatever the test left open, kills its children, removes its
 * directory and counts leftovers (testutil.h): any is a failure.
 *
 * Threads are only ever made in forked processes, never in the test
 * process: a process that has made threads hands their memory to every
 * child it forks later, and valgrind reports it lost there.  So every
 * process of the run stays valgrind-clean.  DYNSHM_TEST_FILTER='test_pin*'
 * runs some tests only.
 *
 * The programs run alone (is_parallel: false): SysV objects of every test
 * instance share one tag.
 */
#ifndef DYNSHM_TEST_WRAPPER_HARNESS_H
#define DYNSHM_TEST_WRAPPER_HARNESS_H

#include "testutil.h"

#include <dynshm/dsm.h>
#include <dynshm/dsm_impl.h>

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <setjmp.h>
#include <cmocka.h>

/* Hidden test hooks of the library (src/wrapper.h). */
extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define IO_TIMEOUT_MS 120000 /* a hang guard, not a timing assertion */
#define SHARED_SIZE (64 * 1024)
#define REPLY_AT 4096
#define FILL_AT 16384

/* ---- the table of backends ----------------------------------------------- */

/* One step of dynshm_create or dynshm_attach that can be made to fail. */
struct step {
	const char *entry;  /* dynshm_sys entry */
	bool retries_eintr; /* EINTR is retried inside: the call succeeds */
	bool first;	    /* the step that makes the name: EEXIST retries */
};

struct backend {
	const char *name;
	dynshm_impl_type type;
	const char *other; /* a different backend, for conflicts */
	const struct step *create_steps; /* end with { NULL } */
	const struct step *attach_steps;
	const char *remove_entry; /* removing the OS object: this call ... */
	int remove_nth;		  /* ... the nth of it in dynshm_impl_destroy */
};

/* posix, sysv, mmap, none: the order the groups run in. */
extern const struct backend backends[];
extern const size_t n_backends;
#define N_BACKENDS n_backends

/* ---- fixture ------------------------------------------------------------- */

#define MAX_INSTS 8
#define MAX_KIDS 8
#define MAX_FDS 24

struct fixture {
	const struct backend *be;
	char *dir; /* this test's private directory */
	dynshm_instance *insts[MAX_INSTS];
	pid_t kids[MAX_KIDS];
	int fds[MAX_FDS];
};

/* Per test: a fresh directory; afterwards everything it left is undone. */
int test_setup(void **state);
int test_teardown(void **state);

/*
 * A program's tests.  wrapper_main() runs api (no fixture) first, then
 * for posix, sysv and mmap each the groups "<name>/<backend>" of each and
 * "<name>/mmap-directory" of mmap_only after mmap's, then "<name>/none"
 * of none; any may be empty.  Children re-executed with --child are run
 * from the harness's table.  The exit status: 1 if any test or fixture
 * failed.
 */
struct wrapper_suite {
	const char *name;
	const struct CMUnitTest *api;
	size_t n_api;
	const struct CMUnitTest *each;
	size_t n_each;
	const struct CMUnitTest *mmap_only;
	size_t n_mmap_only;
	const struct CMUnitTest *none;
	size_t n_none;
};
int wrapper_main(int argc, char **argv, const struct wrapper_suite *s);
/* In a wrapper_suite: .each = a, .n_each = its length (and so on). */
#define WRAPPER_GROUP(field, a) .field = (a), .n_##field = sizeof(a) / sizeof((a)[0])
/* main() of a program whose tests (T(fn), ...) all run per real backend. */
#define WRAPPER_MAIN(topic, ...)                                               \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		static const struct CMUnitTest each[] = { __VA_ARGS__ };       \
		static const struct wrapper_suite suite = {                    \
			.name = (topic),                                       \
			WRAPPER_GROUP(each, each),                             \
		};                                                             \
                                                                               \
		return wrapper_main(argc, argv, &suite);                       \
	}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

/* ---- assertions ---------------------------------------------------------- */

#define CHILD_RC(expr, want)                                                   \
	do {                                                                   \
		int rc_ = (expr), want_ = (want);                              \
		if (rc_ != want_) {                                            \
			fprintf(stderr,                                        \
				"%s:%d: child: %s = %d, expected %d (%s)\n",   \
				__FILE__, __LINE__, #expr, rc_, want_,         \
				dynshm_last_error());                          \
			return 1;                                              \
		}                                                              \
	} while (0)

/* ---- data patterns --------------------------------------------------------- */

/* A pattern of seed over size bytes, and whether it is there. */
void fill(void *p, size_t size, uint64_t seed);
bool check_fill(const void *p, size_t size, uint64_t seed);
bool all_zero(const void *p, size_t size);
uint64_t now_ns(void);
/* Is addr inside some mapping of this process? */
bool is_mapped(const void *addr);
/* v as 16 hex digits, as the --child arguments carry handles. */
void hex(char *buf, size_t len, uint64_t v);

/* ---- instances ------------------------------------------------------------- */

void track_inst(struct fixture *f, dynshm_instance *inst);
void untrack_inst(struct fixture *f, dynshm_instance *inst);
void path_in(struct fixture *f, const char *sub, char *buf, size_t len);
/* A configuration; max_* of 0 keep the defaults.  NULL backend: not set. */
dynshm_config *make_cfg(const char *backend, unsigned max_segments,
			unsigned max_processes);
/* Open <dir>/<sub>; the result is destroyed by the teardown if left. */
int open_cfg(struct fixture *f, const char *sub, unsigned flags,
	     const dynshm_config *cfg, dynshm_instance **out);
dynshm_instance *xopen_limits(struct fixture *f, const char *sub,
			      unsigned flags, unsigned max_segments,
			      unsigned max_processes);
dynshm_instance *xopen(struct fixture *f, const char *sub);
void xdestroy(struct fixture *f, dynshm_instance *inst);
void xclose(struct fixture *f, dynshm_instance *inst);
dynshm_instance_info info_of(dynshm_instance *inst);
dynshm_segment_info stat_of(dynshm_instance *inst, dynshm_handle h);
void assert_no_segment(dynshm_instance *inst, dynshm_handle h);
/* Create size bytes, check they are zero, fill them with seed (if not 0). */
dynshm_segment *xcreate(dynshm_instance *inst, size_t size, uint64_t seed);

/* What dynshm_foreach_segment lists (collect): the first 16 handles. */
struct listed {
	dynshm_handle h[16];
	int n;
};
int collect(const dynshm_segment_info *si, void *arg);
bool listed_has(const struct listed *l, dynshm_handle h);

/* An on-detach callback that writes "X" to the descriptor in arg. */
void cb_pipe(dynshm_segment *seg, void *arg);

/* ---- where the OS objects of an instance are ------------------------------- */

struct where {
	dynshm_impl_type type;
	uint64_t id;
	char dir[PATH_MAX];
};

struct where where_of(dynshm_instance *inst);
/* Does the OS object of (w, h) exist?  Asked of the OS itself. */
bool os_exists(const struct where *w, dynshm_handle h);
void assert_gone(const struct where *w, dynshm_handle h, const char *ctx);
/*
 * OS objects of segments (the control segment excluded).  For sysv this
 * counts every segment with the test tag: use it only while one sysv
 * instance exists.
 */
int os_count(const struct where *w);

/* ---- pipes and children ------------------------------------------------------ */

void track_fd(struct fixture *f, int fd);
void close_fd(struct fixture *f, int fd);
/* A pipe whose ends close on exec (start_exec keeps the child's). */
void make_pipe(struct fixture *f, int p[2]);
/* 0 once fd is readable, -1 after IO_TIMEOUT_MS. */
int wait_readable(int fd);
/* 0, or -1 on EOF, error or a hang. */
int read_full(int fd, void *buf, size_t len);
void send_byte(int fd, char c);
void expect_byte(int fd, char want);
dynshm_handle recv_handle(int fd);
void send_handle(int fd, dynshm_handle h);
void track_kid(struct fixture *f, pid_t pid);
/* Wait for a child of this test: its exit status or 128 + signal. */
int finish_kid(struct fixture *f, pid_t pid);
/* Fork; the child runs fn(arg) and _exits with its value. */
pid_t start_fork(struct fixture *f, int (*fn)(void *), void *arg);
/*
 * Re-execute this program as "--child name args..." without waiting (an
 * unrelated process); keep1/keep2 (or -1) are descriptors it inherits.
 * The children: peer, attach, killed, join (wrapper_harness.c).
 */
pid_t start_exec(struct fixture *f, const char *name,
		 const char *const *args, int keep1, int keep2);
/* Run an exec'd child to its end; its status. */
int run_exec(struct fixture *f, const char *name, const char *const *args);

/* What a forked child of test_fork and test_injected is given. */
struct fork_arg {
	dynshm_instance *inst;
	dynshm_segment *seg; /* inherited mapping, or NULL */
	dynshm_handle h, h2;
	int rfd, wfd;
	int how;
};
/*
 * A forked child that adopts the inherited mapping a->seg (of a->h, filled
 * with 0x92 over 8192 bytes) by its first call: says 'j', waits for 'd'
 * (the parent detached), checks it holds it alone, writes "adopted and
 * alive", says 'r', waits for 'x', detaches last.
 */
int fork_adopter(void *arg);

/* Open dir with backend (NULL: none set) in a child. */
int child_open(const char *dir, const char *backend, unsigned flags,
	       dynshm_instance **out);
/*
 * B of the two-process round trip: attach h, check A's data, reply, tell A;
 * wait until A has detached, check again, detach last (which destroys).
 */
int peer_body(dynshm_instance *inst, dynshm_handle h, int rfd, int wfd);
/* Run "attach" in an unrelated process; its status. */
int attach_elsewhere(struct fixture *f, dynshm_instance *inst,
		     dynshm_handle h, int want, uint64_t seed);

#endif
