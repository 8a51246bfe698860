/* SPDX-License-Identifier: MIT */
/*
 * test_wrapper.c - behaviour of the wrapper layer (dsm.h), with real
 * processes.
 *
 * Every real backend runs the same tests as a CMocka group of its own, from
 * one table (as test_impl.c does for the backend layer); the none backend
 * and the configuration API have small groups of their own.  Each test gets
 * a fresh private directory and opens its instances by directory inside it
 * ("<dir>/inst"), never by name, so nothing lands in $XDG_RUNTIME_DIR.
 *
 * Other processes are of two kinds, as in a real server: forked children
 * (which inherit the instance, see the fork rules in dsm.h) and unrelated
 * processes (this program re-executed with --child, which open the
 * instance by its directory).  They are sequenced with pipes, never with
 * sleeps; a read that waits longer than IO_TIMEOUT_MS is a hang, reported
 * as a failure rather than left to the meson timeout.
 *
 * Whether an OS object exists is asked of the OS (lstat of /dev/shm or of
 * the mmap file, shmget of the SysV key), by the names the backend layer
 * derives from (instance id, handle).  After every test the teardown
 * destroys whatever the test left open, kills its children, removes its
 * directory and counts leftovers (testutil.h): any is a failure.
 *
 * Threads are only ever made in forked processes, never in this one: a
 * process that has made threads hands their memory to every child it
 * forks later, and valgrind reports it lost there.  So every process of
 * the run stays valgrind-clean.  DYNSHM_TEST_FILTER='test_pin*' runs some
 * tests only.
 *
 * Runs alone (is_parallel: false): SysV objects of every test instance
 * share one tag.
 *
 * What is tested where:
 *   create in A, attach in B (forked / exec'd)   test_cross_process_*
 *   pins, unpin, dynshm_destroy                      test_pin, test_destroy_segment
 *   kill -9 of a holder, dynshm_reap                 test_kill9_reap
 *   stale and forged handles, slot reuse          test_stale_handles
 *   two instances side by side                    test_two_instances
 *   attaching twice in one process                test_attach_twice
 *   on-detach callbacks (detach, close, exit)     test_on_detach*
 *   scopes                                        test_scopes*
 *   fork: join, adopt, never release parent's     test_fork_*
 *   max_segments, max_processes                   test_limits
 *   dynshm_stat, dynshm_foreach_segment, info           test_inspection
 *   joining, conflicts, reset, restart            test_joining, test_reset,
 *                                                 test_open_after_all_killed
 *   threads; fork while another thread closes     test_threads,
 *                                                 test_fork_while_closing
 *   injected system-call failures                 test_injected_*
 *     (create, attach, removal of the OS object)
 *   none backend, configuration, dynshm_strerror     test_none, test_config,
 *                                                 test_strerror
 */
#include "inject.h"
#include "testutil.h"

#include "src/control.h"
#include "src/error.h"

#include <dynshm/dsm.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include "dsm_assert.h"

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
	int (*run)(void);
};

static const struct step posix_create[] = {
	{ "shm_open", false, true },
	{ "ftruncate", true, false },
	{ "posix_fallocate", true, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step posix_attach[] = {
	{ "shm_open", false, false },
	{ "fstat", false, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step sysv_create[] = {
	{ "shmget", false, true },
	{ "shmat", false, false },
	{ NULL, false, false },
};
/* by the shmid its slot recorded: no shmget (issue 13, item 1) */
static const struct step sysv_attach[] = {
	{ "shmctl", false, false },
	{ "shmat", false, false },
	{ NULL, false, false },
};
static const struct step mmap_create[] = {
	{ "openat", false, true },
	{ "ftruncate", true, false },
	{ "posix_fallocate", true, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step mmap_attach[] = {
	{ "openat", false, false },
	{ "fstat", false, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};

static int run_posix(void);
static int run_sysv(void);
static int run_mmap(void);
static int run_none(void);

static const struct backend backends[] = {
	{ "posix", DYNSHM_IMPL_POSIX, "mmap", posix_create, posix_attach,
	  "shm_unlink", 1, run_posix },
	/* shmget, shmctl(IPC_STAT), shmctl(IPC_RMID) */
	{ "sysv", DYNSHM_IMPL_SYSV, "posix", sysv_create, sysv_attach, "shmctl", 2,
	  run_sysv },
	{ "mmap", DYNSHM_IMPL_MMAP, "posix", mmap_create, mmap_attach, "unlinkat",
	  1, run_mmap },
	{ "none", DYNSHM_IMPL_NONE, "posix", NULL, NULL, NULL, 0, run_none },
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

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

static const struct backend *current;
static struct fixture the_fixture;
/* CMocka 1.1 does not count failed fixtures: count them ourselves. */
static int fixture_failures;

static int group_setup(void **state)
{
	memset(&the_fixture, 0, sizeof(the_fixture));
	the_fixture.be = current;
	for (int i = 0; i < MAX_FDS; i++)
		the_fixture.fds[i] = -1;
	*state = &the_fixture;
	return 0;
}

static int check_leftovers(const char *when)
{
	if (test_check_leftovers(when) == 0)
		return 0;
	fixture_failures++;
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return check_leftovers(current->name);
}

static int test_setup(void **state)
{
	struct fixture *f = *state;

	inject_reset();
	dynshm_test_hook = NULL;
	dynshm_clear_error();
	for (int i = 0; i < MAX_FDS; i++)
		f->fds[i] = -1;
	f->dir = test_make_dir();
	if (!f->dir) {
		fprintf(stderr, "cannot make a test directory: %s\n",
			strerror(errno));
		fixture_failures++;
		return -1;
	}
	return 0;
}

/*
 * Destroy every instance whose directory a test left in its directory
 * (a failed test, or children killed mid-way); how many there were.
 */
static int sweep_instances(struct fixture *f)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(f->dir);

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX], state_file[PATH_MAX + 8];
		dynshm_instance *inst = NULL;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		snprintf(state_file, sizeof(state_file), "%s/state", path);
		if (lstat(state_file, &st) < 0)
			continue;
		fprintf(stderr, "teardown: instance %s was left\n", path);
		n++;
		if (dynshm_instance_open(path, NULL, DYNSHM_OPEN_EXISTING, &inst) ==
		    0)
			dynshm_instance_destroy(inst);
		else
			fprintf(stderr, "teardown: cannot open %s: %s\n", path,
				dynshm_last_error());
	}
	closedir(d);
	return n;
}

static int test_teardown(void **state)
{
	struct fixture *f = *state;
	int bad = 0;

	inject_reset();
	dynshm_test_hook = NULL;
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			test_wait(f->kids[i]);
			f->kids[i] = 0;
		}
	}
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		f->fds[i] = -1;
	}
	for (int i = 0; i < MAX_INSTS; i++) {
		if (f->insts[i]) {
			int rc = dynshm_instance_destroy(f->insts[i]);

			if (rc != 0) {
				fprintf(stderr, "teardown: destroy: %d (%s)\n",
					rc, dynshm_last_error());
				bad = 1;
			}
			f->insts[i] = NULL;
		}
	}
	if (f->dir && sweep_instances(f) > 0)
		bad = 1;
	if (f->dir && test_remove_dir(f->dir) < 0)
		bad = 1;
	f->dir = NULL;
	if (check_leftovers("test teardown") < 0)
		bad = 1;
	return bad ? -1 : 0;
}

/* ---- assertions ---------------------------------------------------------- */

#define CHILD_RC(expr, want)                                                   \
	do {                                                                   \
		int rc_ = (expr), want_ = (want);                              \
		if (rc_ != want_) {                                            \
			fprintf(stderr,                                        \
				"%s:%d: child: %s = %d, expected %d (%s)\n",   \
				__FILE__, __LINE__, #expr, rc_, want_,         \
				dynshm_last_error());                             \
			return 1;                                              \
		}                                                              \
	} while (0)

/* ---- data patterns --------------------------------------------------------- */

static void fill(void *p, size_t size, uint64_t seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		c[i] = (unsigned char)(seed + i * 7 + (i >> 12) + (seed >> 40));
}

static bool check_fill(const void *p, size_t size, uint64_t seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i] != (unsigned char)(seed + i * 7 + (i >> 12) +
					    (seed >> 40)))
			return false;
	return true;
}

static bool all_zero(const void *p, size_t size)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i])
			return false;
	return true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Is addr inside some mapping of this process? */
static bool is_mapped(const void *addr)
{
	return test_is_mapped(addr);
}

static void hex(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%016" PRIx64, v);
}

/* ---- instances ------------------------------------------------------------- */

static void track_inst(struct fixture *f, dynshm_instance *inst)
{
	for (int i = 0; i < MAX_INSTS; i++) {
		if (!f->insts[i]) {
			f->insts[i] = inst;
			return;
		}
	}
	fail_msg("more than %d instances open in one test", MAX_INSTS);
}

static void untrack_inst(struct fixture *f, dynshm_instance *inst)
{
	for (int i = 0; i < MAX_INSTS; i++)
		if (f->insts[i] == inst)
			f->insts[i] = NULL;
}

static void path_in(struct fixture *f, const char *sub, char *buf,
		    size_t len)
{
	snprintf(buf, len, "%s/%s", f->dir, sub);
}

/* A configuration; max_* of 0 keep the defaults.  NULL backend: not set. */
static dynshm_config *make_cfg(const char *backend, unsigned max_segments,
			    unsigned max_processes)
{
	dynshm_config *cfg = NULL;
	char num[32];

	ASSERT_OK(dynshm_config_new(&cfg));
	if (backend)
		ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					 backend));
	if (max_segments) {
		snprintf(num, sizeof(num), "%u", max_segments);
		ASSERT_OK(dynshm_config_set(cfg, "max_segments", num));
	}
	if (max_processes) {
		snprintf(num, sizeof(num), "%u", max_processes);
		ASSERT_OK(dynshm_config_set(cfg, "max_processes", num));
	}
	return cfg;
}

/* Open <dir>/<sub>; the result is destroyed by the teardown if left. */
static int open_cfg(struct fixture *f, const char *sub, unsigned flags,
		    const dynshm_config *cfg, dynshm_instance **out)
{
	char path[PATH_MAX];
	int rc;

	path_in(f, sub, path, sizeof(path));
	*out = NULL;
	rc = dynshm_instance_open(path, cfg, flags, out);
	if (rc == 0)
		track_inst(f, *out);
	return rc;
}

static dynshm_instance *xopen_limits(struct fixture *f, const char *sub,
				  unsigned flags, unsigned max_segments,
				  unsigned max_processes)
{
	dynshm_config *cfg = make_cfg(f->be->name, max_segments, max_processes);
	dynshm_instance *inst = NULL;
	int rc = open_cfg(f, sub, flags, cfg, &inst);

	dynshm_config_free(cfg);
	if (rc != 0)
		fail_msg("open %s/%s: %d (%s)", f->dir, sub, rc,
			 dynshm_last_error());
	return inst;
}

static dynshm_instance *xopen(struct fixture *f, const char *sub)
{
	return xopen_limits(f, sub, 0, 0, 0);
}

static void xdestroy(struct fixture *f, dynshm_instance *inst)
{
	untrack_inst(f, inst);
	ASSERT_OK(dynshm_instance_destroy(inst));
}

static void xclose(struct fixture *f, dynshm_instance *inst)
{
	untrack_inst(f, inst);
	ASSERT_OK(dynshm_instance_close(inst));
}

static dynshm_instance_info info_of(dynshm_instance *inst)
{
	static dynshm_instance_info info; /* 4 KiB: keep it off small stacks */

	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	return info;
}

static dynshm_segment_info stat_of(dynshm_instance *inst, dynshm_handle h)
{
	dynshm_segment_info si;

	ASSERT_OK(dynshm_stat(inst, h, &si, sizeof(si)));
	return si;
}

static void assert_no_segment(dynshm_instance *inst, dynshm_handle h)
{
	dynshm_segment_info si;

	ASSERT_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
}

static dynshm_segment *xcreate(dynshm_instance *inst, size_t size, uint64_t seed)
{
	dynshm_segment *seg = NULL;

	ASSERT_OK(dynshm_create(inst, size, 0, &seg));
	assert_non_null(seg);
	assert_int_equal(dynshm_segment_size(seg), size);
	assert_true(all_zero(dynshm_segment_address(seg), size));
	if (seed)
		fill(dynshm_segment_address(seg), size, seed);
	return seg;
}

/* ---- where the OS objects of an instance are ------------------------------- */

struct where {
	dynshm_impl_type type;
	uint64_t id;
	char dir[PATH_MAX];
};

static struct where where_of(dynshm_instance *inst)
{
	dynshm_instance_info info = info_of(inst);
	struct where w;

	w.type = info.backend;
	w.id = info.instance_id;
	snprintf(w.dir, sizeof(w.dir), "%s", info.directory);
	return w;
}

/* Does the OS object of (w, h) exist?  Asked of the OS itself. */
static bool os_exists(const struct where *w, dynshm_handle h)
{
	char name[DYNSHM_IMPL_NAME_MAX], path[DYNSHM_IMPL_NAME_MAX + 16];
	dynshm_impl_space *space = NULL;
	struct stat st;
	unsigned key;
	int rc;

	if (w->type == DYNSHM_IMPL_NONE)
		return false;
	rc = dynshm_impl_space_open(w->type, w->id, w->dir, &space);
	if (rc == -ENOENT && w->type == DYNSHM_IMPL_MMAP)
		return false; /* its directory is gone, so is the file */
	if (rc != 0)
		fail_msg("space of %016" PRIx64 ": %d (%s)", w->id, rc,
			 dynshm_last_error());
	rc = dynshm_impl_object_name(space, h, name, sizeof(name));
	dynshm_impl_space_close(space);
	assert_int_equal(rc, 0);
	switch (w->type) {
	case DYNSHM_IMPL_POSIX:
		snprintf(path, sizeof(path), "/dev/shm%s", name);
		return lstat(path, &st) == 0;
	case DYNSHM_IMPL_MMAP:
		return lstat(name, &st) == 0;
	case DYNSHM_IMPL_SYSV:
		assert_int_equal(sscanf(name, "sysv:0x%x", &key), 1);
		return shmget((key_t)key, 0, 0) >= 0;
	default:
		return false;
	}
}

static void assert_gone(const struct where *w, dynshm_handle h, const char *ctx)
{
	if (os_exists(w, h))
		fail_msg("%s: the OS object of %016" PRIx64 " is still there",
			 ctx, h);
}

struct counting {
	char ctl_name[DYNSHM_IMPL_NAME_MAX];
	int n;
};

static int count_one(dynshm_handle handle, const char *os_name, void *arg)
{
	struct counting *c = arg;

	(void)handle;
	if (strcmp(os_name, c->ctl_name) != 0)
		c->n++;
	return 0;
}

/*
 * OS objects of segments (the control segment excluded).  For sysv this
 * counts every segment with the test tag: use it only while one sysv
 * instance exists.
 */
static int os_count(const struct where *w)
{
	dynshm_impl_space *space = NULL;
	struct counting c;

	memset(&c, 0, sizeof(c));
	ASSERT_OK(dynshm_impl_space_open(w->type, w->id, w->dir, &space));
	ASSERT_OK(dynshm_impl_object_name(space, CTL_HANDLE, c.ctl_name,
				       sizeof(c.ctl_name)));
	ASSERT_OK(dynshm_impl_list(space, count_one, &c));
	dynshm_impl_space_close(space);
	return c.n;
}

/* ---- pipes and children ------------------------------------------------------ */

static void track_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return;
		}
	}
	fail_msg("more than %d pipe ends in one test", MAX_FDS);
}

static void close_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (f->fds[i] == fd)
			f->fds[i] = -1;
	close(fd);
}

/* A pipe whose ends close on exec (start_exec keeps the child's). */
static void make_pipe(struct fixture *f, int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	track_fd(f, p[0]);
	track_fd(f, p[1]);
}

static int wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&pfd, 1, IO_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	return rc == 1 ? 0 : -1;
}

/* 0, or -1 on EOF, error or a hang. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n;

		if (wait_readable(fd) < 0)
			return -1;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void send_byte(int fd, char c)
{
	if (write_full(fd, &c, 1) < 0)
		fail_msg("cannot write to a child: %s", strerror(errno));
}

static void expect_byte(int fd, char want)
{
	char c = 0;

	if (read_full(fd, &c, 1) < 0)
		fail_msg("no '%c' from the child (it died or hung)", want);
	if (c != want)
		fail_msg("child sent '%c', expected '%c'", c, want);
}

static dynshm_handle recv_handle(int fd)
{
	dynshm_handle h = 0;

	if (read_full(fd, &h, sizeof(h)) < 0)
		fail_msg("no handle from the child (it died or hung)");
	return h;
}

static void send_handle(int fd, dynshm_handle h)
{
	if (write_full(fd, &h, sizeof(h)) < 0)
		fail_msg("cannot write to a child: %s", strerror(errno));
}

static void track_kid(struct fixture *f, pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] == 0) {
			f->kids[i] = pid;
			return;
		}
	}
	kill(pid, SIGKILL);
	test_wait(pid);
	fail_msg("more than %d children in one test", MAX_KIDS);
}

/* Wait for a child of this test: its exit status or 128 + signal. */
static int finish_kid(struct fixture *f, pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (f->kids[i] == pid)
			f->kids[i] = 0;
	return test_wait(pid);
}

/* Fork; the child runs fn(arg) and _exits with its value. */
static pid_t start_fork(struct fixture *f, int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int rc = fn(arg);

		fflush(NULL);
		_exit(rc);
	}
	assert_true(pid > 0);
	track_kid(f, pid);
	return pid;
}

/*
 * Re-execute this program as "--child name args..." without waiting (an
 * unrelated process); keep1/keep2 (or -1) are descriptors it inherits.
 */
static pid_t start_exec(struct fixture *f, const char *name,
			const char *const *args, int keep1, int keep2)
{
	char exe_buf[4096];
	const char *exe = test_self_exe(exe_buf, sizeof(exe_buf));
	char *argv[16];
	size_t n = 0;
	pid_t pid;

	argv[n++] = (char *)"dynshm-test-child";
	argv[n++] = (char *)"--child";
	argv[n++] = (char *)name;
	for (size_t i = 0; args && args[i]; i++) {
		assert_true(n < 15);
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (keep1 >= 0)
			fcntl(keep1, F_SETFD, 0);
		if (keep2 >= 0)
			fcntl(keep2, F_SETFD, 0);
		execv(exe, argv);
		fprintf(stderr, "cannot re-execute %s: %s\n", exe,
			strerror(errno));
		_exit(127);
	}
	assert_true(pid > 0);
	track_kid(f, pid);
	return pid;
}

/* Run an exec'd child to its end; its status. */
static int run_exec(struct fixture *f, const char *name,
		    const char *const *args)
{
	return finish_kid(f, start_exec(f, name, args, -1, -1));
}

/* ---- exec'd children ----------------------------------------------------- */

static int child_open(const char *dir, const char *backend, unsigned flags,
		      dynshm_instance **out)
{
	dynshm_config *cfg = NULL;
	int rc = 0;

	if (backend) {
		rc = dynshm_config_new(&cfg);
		if (rc == 0)
			rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
					    backend);
	}
	if (rc == 0)
		rc = dynshm_instance_open(dir, cfg, flags, out);
	dynshm_config_free(cfg);
	return rc;
}

/*
 * B of the two-process round trip: attach h, check A's data, reply, tell A;
 * wait until A has detached, check again, detach last (which destroys).
 */
static int peer_body(dynshm_instance *inst, dynshm_handle h, int rfd, int wfd)
{
	dynshm_segment *seg = NULL;
	dynshm_segment_info si;
	char expect[64], c = 0;
	char *p;

	CHILD_OK(dynshm_attach(inst, h, &seg));
	CHILD_CHECK(dynshm_segment_handle(seg) == h);
	CHILD_CHECK(dynshm_segment_size(seg) == SHARED_SIZE);
	p = dynshm_segment_address(seg);
	snprintf(expect, sizeof(expect), "hello from %016" PRIx64, h);
	CHILD_CHECK(strcmp(p, expect) == 0);
	CHILD_CHECK(check_fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h));
	snprintf(p + REPLY_AT, 64, "reply to %016" PRIx64, h);
	CHILD_CHECK(write_full(wfd, "a", 1) == 0);
	CHILD_CHECK(read_full(rfd, &c, 1) == 0 && c == 'd');
	/* A has detached: we map it alone, and it is intact */
	CHILD_OK(dynshm_stat(inst, h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_CHECK(strcmp(p, expect) == 0);
	CHILD_CHECK(check_fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h));
	CHILD_CHECK(strncmp(p + REPLY_AT, "reply to ", 9) == 0);
	CHILD_OK(dynshm_detach(seg));
	CHILD_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
	return 0;
}

/* --child peer <dir> <backend> <handle> <read fd> <write fd> */
static int child_peer(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	int rc;

	CHILD_CHECK(argc == 6);
	CHILD_OK(child_open(argv[1], argv[2], DYNSHM_OPEN_EXISTING, &inst));
	rc = peer_body(inst, strtoull(argv[3], NULL, 16), atoi(argv[4]),
		       atoi(argv[5]));
	CHILD_OK(dynshm_instance_close(inst));
	return rc;
}

/*
 * --child attach <dir> <handle> <expected rc> <seed or 0>
 * Attach h in an unrelated process and expect rc; on success check the
 * fill pattern (seed) and detach.
 */
static int child_attach(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = (dynshm_segment *)&inst; /* sentinel */
	dynshm_handle h;
	uint64_t seed;
	int want;

	CHILD_CHECK(argc == 5);
	h = strtoull(argv[2], NULL, 16);
	want = atoi(argv[3]);
	seed = strtoull(argv[4], NULL, 16);
	CHILD_OK(child_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &inst));
	CHILD_RC(dynshm_attach(inst, h, &seg), want);
	if (want == 0) {
		if (seed)
			CHILD_CHECK(check_fill(dynshm_segment_address(seg),
					       dynshm_segment_size(seg), seed));
		CHILD_OK(dynshm_detach(seg));
	} else {
		CHILD_CHECK(seg == (dynshm_segment *)&inst); /* untouched */
	}
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

/*
 * --child killed <dir> <h1> <h2> <write fd> <read fd>
 * Attach h1 and h2, mark h1, create a third segment, send its handle, wait
 * for the word, then die by SIGKILL holding all three.
 */
static int child_killed(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *s1 = NULL, *s2 = NULL, *s3 = NULL;
	dynshm_handle h3;
	int wfd, rfd;
	char c = 0;

	CHILD_CHECK(argc == 6);
	wfd = atoi(argv[4]);
	rfd = atoi(argv[5]);
	CHILD_OK(child_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &inst));
	CHILD_OK(dynshm_attach(inst, strtoull(argv[2], NULL, 16), &s1));
	CHILD_OK(dynshm_attach(inst, strtoull(argv[3], NULL, 16), &s2));
	CHILD_OK(dynshm_create(inst, 8192, 0, &s3));
	h3 = dynshm_segment_handle(s3);
	fill(dynshm_segment_address(s3), 8192, h3);
	strcpy(dynshm_segment_address(s1), "the killed child was here");
	CHILD_CHECK(write_full(wfd, &h3, sizeof(h3)) == 0);
	CHILD_CHECK(read_full(rfd, &c, 1) == 0 && c == 'k');
	raise(SIGKILL);
	return 1;
}

/*
 * --child join <dir> <instance id> <backend>
 * Join with no configuration: the same instance, its backend, two
 * processes (the test and us); DYNSHM_OPEN_EXISTING joins it too.
 */
static int child_join(int argc, char **argv)
{
	dynshm_instance *inst = NULL, *again = NULL;
	dynshm_instance_info info;
	dynshm_impl_type type;

	CHILD_CHECK(argc == 4);
	CHILD_OK(dynshm_impl_type_from_name(argv[3], &type));
	CHILD_OK(dynshm_instance_open(argv[1], NULL, 0, &inst));
	CHILD_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	CHILD_CHECK(info.instance_id == strtoull(argv[2], NULL, 16));
	CHILD_CHECK(info.backend == type);
	CHILD_CHECK(info.processes == 2);
	CHILD_CHECK(info.creator_pid != getpid());
	CHILD_OK(dynshm_instance_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &again));
	CHILD_OK(dynshm_instance_info_get(again, &info, sizeof(info)));
	CHILD_CHECK(info.instance_id == strtoull(argv[2], NULL, 16));
	CHILD_CHECK(info.processes == 3);
	CHILD_OK(dynshm_instance_close(again));
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static const struct test_child children[] = {
	{ "peer", child_peer },
	{ "attach", child_attach },
	{ "killed", child_killed },
	{ "join", child_join },
	{ NULL, NULL },
};

/* Run "attach" in an unrelated process; its status. */
static int attach_elsewhere(struct fixture *f, dynshm_instance *inst,
			    dynshm_handle h, int want, uint64_t seed)
{
	char hs[32], ws[16], ss[32];
	dynshm_instance_info info = info_of(inst);
	const char *args[] = { info.directory, hs, ws, ss, NULL };

	hex(hs, sizeof(hs), h);
	snprintf(ws, sizeof(ws), "%d", want);
	hex(ss, sizeof(ss), seed);
	return run_exec(f, "attach", args);
}

/* ---- 1. two processes: create in A, attach in B --------------------------- */

struct peer_arg {
	dynshm_instance *inst;
	int rfd, wfd;
};

/* A forked B: gets the handle through the pipe, then as the exec'd one. */
static int fork_peer(void *arg)
{
	struct peer_arg *a = arg;
	dynshm_handle h = 0;
	int rc;

	CHILD_CHECK(read_full(a->rfd, &h, sizeof(h)) == 0);
	rc = peer_body(a->inst, h, a->rfd, a->wfd);
	CHILD_OK(dynshm_instance_close(a->inst));
	return rc;
}

/*
 * by_name: open by instance name, as unrelated programs do, with
 * XDG_RUNTIME_DIR pointing into the test's directory (the exec'd peer
 * inherits it and joins by the same name).
 */
static void cross_process(struct fixture *f, bool exec, bool by_name)
{
	dynshm_instance *inst = NULL;
	struct where w;
	int to_child[2], to_parent[2];
	struct peer_arg arg;
	dynshm_segment *seg;
	dynshm_handle h;
	char expect[64];
	pid_t pid = 0;
	char *p;

	if (by_name) {
		dynshm_config *cfg = make_cfg(f->be->name, 0, 0);

		assert_int_equal(setenv("XDG_RUNTIME_DIR", f->dir, 1), 0);
		ASSERT_OK(dynshm_instance_open("joined-by-name", cfg, 0, &inst));
		track_inst(f, inst);
		dynshm_config_free(cfg);
		/* the instance lives where the name says, not elsewhere */
		snprintf(expect, sizeof(expect), "%s", "/dynshm/joined-by-name");
		assert_non_null(strstr(info_of(inst).directory, expect));
	} else {
		inst = xopen(f, "inst");
	}
	w = where_of(inst);
	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	arg.inst = inst;
	arg.rfd = to_child[0];
	arg.wfd = to_parent[1];
	if (!exec) /* forked before the segment exists: a real attach */
		pid = start_fork(f, fork_peer, &arg);

	seg = xcreate(inst, SHARED_SIZE, 0);
	h = dynshm_segment_handle(seg);
	p = dynshm_segment_address(seg);
	snprintf(p, 64, "hello from %016" PRIx64, h);
	fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h);

	if (exec) {
		char hs[32], rs[16], ws[16];
		const char *args[] = { by_name ? "joined-by-name" : w.dir,
				       f->be->name, hs, rs, ws, NULL };

		hex(hs, sizeof(hs), h);
		snprintf(rs, sizeof(rs), "%d", to_child[0]);
		snprintf(ws, sizeof(ws), "%d", to_parent[1]);
		pid = start_exec(f, "peer", args, to_child[0], to_parent[1]);
	} else {
		send_handle(to_child[1], h);
	}
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);

	expect_byte(to_parent[0], 'a');
	snprintf(expect, sizeof(expect), "reply to %016" PRIx64, h);
	assert_string_equal(p + REPLY_AT, expect);
	assert_int_equal(stat_of(inst, h).references, 2);
	assert_int_equal(info_of(inst).processes, 2);

	/* A lets go first; B still maps it, so it must survive */
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));
	send_byte(to_child[1], 'd');

	assert_int_equal(finish_kid(f, pid), 0);
	/* B's detach was the last: the segment and its OS object are gone */
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach in B");
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
	if (by_name)
		unsetenv("XDG_RUNTIME_DIR");
}

static void test_cross_process_fork(void **state)
{
	cross_process(*state, false, false);
}

static void test_cross_process_exec(void **state)
{
	cross_process(*state, true, false);
}

/* Unrelated processes join by instance name (issue: fork and exec). */
static void test_join_by_name(void **state)
{
	cross_process(*state, true, true);
}

/* ---- 2. pins --------------------------------------------------------------- */

struct pin_arg {
	dynshm_instance *inst;
	int wfd;
};

/* Create, pin, detach, leave: the segment must outlive us. */
static int fork_pinner(void *arg)
{
	struct pin_arg *a = arg;
	dynshm_segment *seg = NULL;
	dynshm_segment_info si;
	dynshm_handle h;

	CHILD_OK(dynshm_create(a->inst, 20000, 0, &seg));
	h = dynshm_segment_handle(seg);
	fill(dynshm_segment_address(seg), 20000, h);
	CHILD_OK(dynshm_pin_segment(seg));
	CHILD_RC(dynshm_pin_segment(seg), -EALREADY);
	CHILD_OK(dynshm_detach(seg));
	CHILD_OK(dynshm_stat(a->inst, h, &si, sizeof(si)));
	CHILD_CHECK(si.pinned && si.references == 0);
	CHILD_OK(dynshm_instance_close(a->inst));
	CHILD_CHECK(write_full(a->wfd, &h, sizeof(h)) == 0);
	return 0;
}

static void test_pin(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct pin_arg arg;
	dynshm_segment_info si;
	dynshm_segment *seg;
	int p[2];
	pid_t pid;
	dynshm_handle h;

	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	pid = start_fork(f, fork_pinner, &arg);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 0);

	/* the creator is gone; the pin keeps it */
	si = stat_of(inst, h);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	assert_int_equal(si.creator_pid, pid);
	assert_true(os_exists(&w, h));
	assert_int_equal(info_of(inst).processes, 1);

	/* another process attaches later and reads it */
	assert_int_equal(attach_elsewhere(f, inst, h, 0, h), 0);
	si = stat_of(inst, h);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	ASSERT_RC(dynshm_pin_segment(NULL), -EINVAL);

	/* unpin with nobody mapping destroys */
	ASSERT_OK(dynshm_unpin_segment(inst, h));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after unpin with nobody mapping");
	ASSERT_RC(dynshm_unpin_segment(inst, h), -ENOENT);

	/* an unpinned segment: unpin refused, pin twice refused */
	seg = xcreate(inst, 4096, 5);
	h = dynshm_segment_handle(seg);
	dynshm_clear_error();
	ASSERT_RC(dynshm_unpin_segment(inst, h), -EINVAL);
	assert_string_not_equal(dynshm_last_error(), "");
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_RC(dynshm_pin_segment(seg), -EALREADY);
	assert_string_not_equal(dynshm_last_error(), "");
	assert_true(stat_of(inst, h).pinned);
	/* unpinned while mapped: it stays until the last detach */
	ASSERT_OK(dynshm_unpin_segment(inst, h));
	si = stat_of(inst, h);
	assert_false(si.pinned);
	assert_int_equal(si.references, 1);
	assert_true(check_fill(dynshm_segment_address(seg), 4096, 5));
	ASSERT_OK(dynshm_detach(seg));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach of an unpinned segment");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* dynshm_destroy: unpin, refuse attaches, go at the last detach. */
static void test_destroy_segment(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 4096, 77);
	dynshm_handle h = dynshm_segment_handle(seg);
	dynshm_segment_info si;

	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_destroy(inst, h));
	si = stat_of(inst, h); /* still there: we map it */
	assert_false(si.pinned);
	assert_int_equal(si.references, 1);
	assert_true(os_exists(&w, h));
	/* nobody else may attach it any more */
	assert_int_equal(attach_elsewhere(f, inst, h, -ENOENT, 0), 0);
	ASSERT_RC(dynshm_pin_segment(seg), -ENOENT);
	ASSERT_RC(dynshm_destroy(inst, h), -ENOENT);
	assert_true(check_fill(dynshm_segment_address(seg), 4096, 77));
	ASSERT_OK(dynshm_detach(seg));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach of a destroyed segment");

	/* with nobody mapping it, at once */
	seg = xcreate(inst, 4096, 78);
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	assert_true(os_exists(&w, h));
	ASSERT_OK(dynshm_destroy(inst, h));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after destroying an unmapped segment");
	xdestroy(f, inst);
}

/* ---- 3. kill -9 of a process holding references ----------------------------- */

struct attach_arg {
	dynshm_instance *inst;
	dynshm_handle h;
	uint64_t seed;
	size_t size;
};

static int fork_attach_check(void *arg)
{
	struct attach_arg *a = arg;
	dynshm_segment *seg = NULL;

	CHILD_OK(dynshm_attach(a->inst, a->h, &seg));
	CHILD_CHECK(dynshm_segment_size(seg) == a->size);
	CHILD_CHECK(check_fill(dynshm_segment_address(seg), a->size, a->seed));
	CHILD_OK(dynshm_detach(seg));
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

static void test_kill9_reap(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *s1 = xcreate(inst, 8192, 0);
	dynshm_segment *s2 = xcreate(inst, 8192, 0);
	dynshm_segment *s4;
	dynshm_handle h1 = dynshm_segment_handle(s1), h2 = dynshm_segment_handle(s2);
	dynshm_handle h3, h4;
	dynshm_segment_info si;
	struct attach_arg aa;
	char hs1[32], hs2[32], ws[16], rs[16];
	const char *args[] = { w.dir, hs1, hs2, ws, rs, NULL };
	int to_child[2], to_parent[2];
	uint64_t reaped_before;
	unsigned n = 99;
	pid_t pid;

	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	hex(hs1, sizeof(hs1), h1);
	hex(hs2, sizeof(hs2), h2);
	snprintf(ws, sizeof(ws), "%d", to_parent[1]);
	snprintf(rs, sizeof(rs), "%d", to_child[0]);
	pid = start_exec(f, "killed", args, to_parent[1], to_child[0]);
	close_fd(f, to_parent[1]);
	close_fd(f, to_child[0]);
	h3 = recv_handle(to_parent[0]);

	assert_int_equal(stat_of(inst, h1).references, 2);
	assert_int_equal(stat_of(inst, h2).references, 2);
	si = stat_of(inst, h3);
	assert_int_equal(si.references, 1);
	assert_int_equal(si.creator_pid, pid);
	/* the parent lets go of s2: only the doomed child holds it */
	ASSERT_OK(dynshm_detach(s2));
	assert_int_equal(stat_of(inst, h2).references, 1);
	reaped_before = info_of(inst).processes_reaped;

	send_byte(to_child[1], 'k');
	assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);

	/* before the reap its references are still counted */
	assert_int_equal(stat_of(inst, h1).references, 2);
	assert_int_equal(stat_of(inst, h2).references, 1);
	assert_int_equal(stat_of(inst, h3).references, 1);
	assert_int_equal(info_of(inst).processes, 2);
	assert_true(os_exists(&w, h2));
	assert_true(os_exists(&w, h3));

	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 1);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).processes_reaped, reaped_before + 1);
	/* what the parent still maps survives, and is usable */
	si = stat_of(inst, h1);
	assert_int_equal(si.references, 1);
	assert_int_equal(si.state, DYNSHM_SEGMENT_ACTIVE);
	assert_string_equal(dynshm_segment_address(s1),
			    "the killed child was here");
	strcpy(dynshm_segment_address(s1), "still usable");
	/* what only the dead one held is destroyed */
	assert_no_segment(inst, h2);
	assert_no_segment(inst, h3);
	assert_gone(&w, h2, "s2 after the reap");
	assert_gone(&w, h3, "s3 after the reap");
	assert_int_equal(info_of(inst).segments, 1);
	/* a second reap finds nobody */
	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 0);

	/* the instance goes on working: create, attach in another process */
	s4 = xcreate(inst, 12288, 4);
	h4 = dynshm_segment_handle(s4);
	aa.inst = inst;
	aa.h = h4;
	aa.seed = 4;
	aa.size = 12288;
	assert_int_equal(finish_kid(f, start_fork(f, fork_attach_check, &aa)),
			 0);
	assert_int_equal(attach_elsewhere(f, inst, h4, 0, 4), 0);
	assert_int_equal(stat_of(inst, h4).references, 1);
	ASSERT_OK(dynshm_detach(s4));
	ASSERT_OK(dynshm_detach(s1));
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(os_count(&w), 0);
	xdestroy(f, inst);
}

/* ---- 4. stale and forged handles ------------------------------------------- */

static void expect_unknown(dynshm_instance *inst, const char *name,
			   dynshm_handle h, const char *what)
{
	dynshm_segment *seg = (dynshm_segment *)&inst; /* sentinel */
	dynshm_segment_info si;
	char text[32];

	snprintf(text, sizeof(text), "0x%016" PRIx64, h);
	dynshm_clear_error();
	if (dynshm_attach(inst, h, &seg) != -ENOENT)
		fail_msg("%s %s: attach did not fail with -ENOENT (%s)", what,
			 text, dynshm_last_error());
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	if (!strstr(dynshm_last_error(), text) ||
	    !strstr(dynshm_last_error(), name))
		fail_msg("%s: message '%s' does not name %s and '%s'", what,
			 dynshm_last_error(), text, name);
	ASSERT_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
	ASSERT_RC(dynshm_unpin_segment(inst, h), -ENOENT);
	ASSERT_RC(dynshm_destroy(inst, h), -ENOENT);
}

static void test_stale_handles(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *others[64];
	dynshm_segment *a, *b = NULL;
	dynshm_handle ha, hb = 0;
	uint32_t slot, mask = HANDLE_SLOT_MASK;
	int nothers = 0;
	char name[PATH_MAX];

	snprintf(name, sizeof(name), "%s", info.name);
	assert_string_equal(name, w.dir); /* opened by directory */

	a = xcreate(inst, 4096, 0xa);
	ha = dynshm_segment_handle(a);
	slot = (uint32_t)(ha & mask);
	ASSERT_OK(dynshm_detach(a));
	assert_no_segment(inst, ha);

	/* create until the same slot index comes round again */
	for (int i = 0; i < 64 && !b; i++) {
		dynshm_segment *s = xcreate(inst, 4096, 0xb);

		if ((dynshm_segment_handle(s) & mask) == slot)
			b = s;
		else
			others[nothers++] = s;
	}
	if (!b)
		fail_msg("slot %u was not reused in 64 creates", slot);
	hb = dynshm_segment_handle(b);
	assert_true(hb != ha);
	assert_true((hb >> HANDLE_GEN_SHIFT & 0xffff) !=
		    (ha >> HANDLE_GEN_SHIFT & 0xffff));

	/* the stale handle names nothing, and never the new segment */
	expect_unknown(inst, name, ha, "stale handle");
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	assert_int_equal(attach_elsewhere(f, inst, ha, -ENOENT, 0), 0);
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_false(os_exists(&w, ha));

	/* forged handles */
	for (int i = 0; i < 200; i++) {
		dynshm_handle r = test_random_handle();

		if (r == hb)
			continue;
		for (int j = 0; j < nothers; j++)
			if (r == dynshm_segment_handle(others[j]))
				r = 0;
		if (r)
			expect_unknown(inst, name, r, "random handle");
	}
	expect_unknown(inst, name, hb ^ (1ull << HANDLE_RAND_SHIFT),
		       "wrong random bits");
	expect_unknown(inst, name, hb ^ (0xffffffull << HANDLE_RAND_SHIFT),
		       "all random bits wrong");
	expect_unknown(inst, name, hb ^ (1ull << HANDLE_GEN_SHIFT),
		       "wrong generation");
	expect_unknown(inst, name, hb & mask, "slot only");
	expect_unknown(inst, name, DYNSHM_HANDLE_INVALID, "handle 0");
	expect_unknown(inst, name, (hb & ~(uint64_t)mask) | info.max_segments,
		       "slot == max_segments");
	expect_unknown(inst, name, (hb & ~(uint64_t)mask) | mask,
		       "slot 0xffffff");
	expect_unknown(inst, name, CTL_HANDLE, "the control segment's handle");
	expect_unknown(inst, name, UINT64_MAX, "all ones");

	/* and the live one is untouched by all of it */
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	ASSERT_OK(dynshm_detach(b));
	for (int j = 0; j < nothers; j++)
		ASSERT_OK(dynshm_detach(others[j]));
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 5. two instances side by side ------------------------------------------ */

struct listed {
	dynshm_handle h[16];
	int n;
};

static int collect(const dynshm_segment_info *si, void *arg)
{
	struct listed *l = arg;

	if (l->n < 16)
		l->h[l->n] = si->handle;
	l->n++;
	return 0;
}

static bool listed_has(const struct listed *l, dynshm_handle h)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (l->h[i] == h)
			return true;
	return false;
}

static void test_two_instances(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *a = xopen(f, "inst-a"), *b = xopen(f, "inst-b");
	dynshm_segment *sa[3], *sb[2];
	struct listed la, lb;
	char name_a[PATH_MAX], name_b[PATH_MAX];

	snprintf(name_a, sizeof(name_a), "%s", info_of(a).name);
	snprintf(name_b, sizeof(name_b), "%s", info_of(b).name);
	assert_true(info_of(a).instance_id != info_of(b).instance_id);
	for (int i = 0; i < 3; i++)
		sa[i] = xcreate(a, 4096, 0x100 + (uint64_t)i);
	for (int i = 0; i < 2; i++)
		sb[i] = xcreate(b, 4096, 0x200 + (uint64_t)i);

	for (int i = 0; i < 3; i++) {
		dynshm_handle h = dynshm_segment_handle(sa[i]);
		bool clash = false;

		for (int j = 0; j < 2; j++)
			clash |= h == dynshm_segment_handle(sb[j]);
		if (clash) /* 24 random bits alike: 1 in 16 million */
			continue;
		expect_unknown(b, name_b, h, "a's handle in b");
	}
	for (int i = 0; i < 2; i++) {
		dynshm_handle h = dynshm_segment_handle(sb[i]);
		bool clash = false;

		for (int j = 0; j < 3; j++)
			clash |= h == dynshm_segment_handle(sa[j]);
		if (!clash)
			expect_unknown(a, name_a, h,
				       "b's handle in a");
	}

	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	ASSERT_OK(dynshm_foreach_segment(a, collect, &la));
	ASSERT_OK(dynshm_foreach_segment(b, collect, &lb));
	assert_int_equal(la.n, 3);
	assert_int_equal(lb.n, 2);
	for (int i = 0; i < 3; i++)
		assert_true(listed_has(&la, dynshm_segment_handle(sa[i])));
	for (int i = 0; i < 2; i++)
		assert_true(listed_has(&lb, dynshm_segment_handle(sb[i])));
	for (int i = 0; i < 3; i++) {
		assert_true(check_fill(dynshm_segment_address(sa[i]), 4096,
				       0x100 + (uint64_t)i));
		ASSERT_OK(dynshm_detach(sa[i]));
	}
	/* b does not notice a's segments going */
	assert_int_equal(info_of(b).segments, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(check_fill(dynshm_segment_address(sb[i]), 4096,
				       0x200 + (uint64_t)i));
		ASSERT_OK(dynshm_detach(sb[i]));
	}
	xdestroy(f, a);
	xdestroy(f, b);
}

/* ---- 6. attaching twice in one process ------------------------------------ */

static void test_attach_twice(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct pin_arg arg;
	dynshm_segment *a1 = NULL, *a2 = NULL, *c, *c2 = NULL;
	dynshm_handle h, hc;
	void *addr;
	int p[2];
	pid_t pid;

	/* made by another process, so both calls here are attaches */
	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	pid = start_fork(f, fork_pinner, &arg);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 0);

	ASSERT_OK(dynshm_attach(inst, h, &a1));
	ASSERT_OK(dynshm_attach(inst, h, &a2));
	assert_ptr_equal(a1, a2);
	assert_int_equal(stat_of(inst, h).references, 1);
	ASSERT_OK(dynshm_unpin_segment(inst, h)); /* the last detach destroys */
	addr = dynshm_segment_address(a1);
	assert_true(is_mapped(addr));

	ASSERT_OK(dynshm_detach(a1));
	assert_true(is_mapped(addr));
	assert_true(check_fill(addr, 20000, h));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));

	ASSERT_OK(dynshm_detach(a2));
	assert_false(is_mapped(addr));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the second detach");

	/* the creator attaching its own segment gets the same object too */
	c = xcreate(inst, 4096, 6);
	hc = dynshm_segment_handle(c);
	ASSERT_OK(dynshm_attach(inst, hc, &c2));
	assert_ptr_equal(c, c2);
	addr = dynshm_segment_address(c);
	ASSERT_OK(dynshm_detach(c2));
	assert_true(is_mapped(addr));
	assert_int_equal(stat_of(inst, hc).references, 1);
	ASSERT_OK(dynshm_detach(c));
	assert_false(is_mapped(addr));
	assert_no_segment(inst, hc);
	assert_gone(&w, hc, "after the creator's second detach");
	xdestroy(f, inst);
}

/* ---- 7. on-detach callbacks -------------------------------------------------- */

static struct {
	int order[32];
	int n;
	int self_cancel_rc;
	int cancel_other_rc;
	int first_byte; /* what a callback read from the segment */
} cblog;

static void cb_record(dynshm_segment *seg, void *arg)
{
	(void)seg;
	if (cblog.n < 32)
		cblog.order[cblog.n] = (int)(intptr_t)arg;
	cblog.n++;
}

static void cb_self_cancel(dynshm_segment *seg, void *arg)
{
	cblog.self_cancel_rc = dynshm_cancel_on_detach(seg, cb_self_cancel, arg);
	cblog.first_byte = *(unsigned char *)dynshm_segment_address(seg);
	cb_record(seg, (void *)100);
}

static void cb_cancel_other(dynshm_segment *seg, void *arg)
{
	cblog.cancel_other_rc = dynshm_cancel_on_detach(seg, cb_record, arg);
	cb_record(seg, (void *)200);
}

static void assert_order(const int *want, int n)
{
	assert_int_equal(cblog.n, n);
	for (int i = 0; i < n; i++)
		if (cblog.order[i] != want[i])
			fail_msg("callback %d ran as number %d, expected %d",
				 cblog.order[i], i + 1, want[i]);
}

static void test_on_detach(void **state)
{
	static const int lifo[] = { 4, 100, 3, 2, 1 };
	static const int only_canceller[] = { 200 };
	static const int at_close[] = { 8, 7 };
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst"), *other;
	dynshm_segment *seg = xcreate(inst, 4096, 0), *again = NULL;
	dynshm_handle h = dynshm_segment_handle(seg);

	memset(&cblog, 0, sizeof(cblog));
	cblog.self_cancel_rc = 1;
	*(unsigned char *)dynshm_segment_address(seg) = 0x5a;
	ASSERT_OK(dynshm_attach(inst, h, &again));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)1));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)2));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)3));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)2));
	ASSERT_OK(dynshm_on_detach(seg, cb_self_cancel, (void *)9));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)4));
	ASSERT_RC(dynshm_on_detach(seg, NULL, NULL), -EINVAL);
	/* the most recent (cb_record, 2) goes: 1 2 3 self 4 remain */
	ASSERT_OK(dynshm_cancel_on_detach(seg, cb_record, (void *)2));
	ASSERT_RC(dynshm_cancel_on_detach(seg, cb_record, (void *)77), -ENOENT);
	ASSERT_RC(dynshm_cancel_on_detach(seg, cb_self_cancel, (void *)8),
		  -ENOENT);

	ASSERT_OK(dynshm_detach(again)); /* not the last: nothing runs */
	assert_int_equal(cblog.n, 0);
	ASSERT_OK(dynshm_detach(seg));
	assert_order(lifo, 5);
	assert_int_equal(cblog.self_cancel_rc, -ENOENT);
	assert_int_equal(cblog.first_byte, 0x5a); /* still mapped in it */
	assert_no_segment(inst, h);

	/* a callback cancelling one that has not run yet */
	memset(&cblog, 0, sizeof(cblog));
	cblog.cancel_other_rc = 1;
	seg = xcreate(inst, 4096, 0);
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)5));
	ASSERT_OK(dynshm_on_detach(seg, cb_cancel_other, (void *)5));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(cblog.cancel_other_rc, 0);
	assert_order(only_canceller, 1);

	/* callbacks run at dynshm_instance_close too */
	memset(&cblog, 0, sizeof(cblog));
	other = xopen(f, "other");
	seg = xcreate(other, 4096, 0);
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)7));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)8));
	xclose(f, other);
	assert_order(at_close, 2);
	other = xopen(f, "other");
	assert_int_equal(info_of(other).segments, 0); /* destroyed at close */
	assert_no_segment(other, h);
	xdestroy(f, other);
	xdestroy(f, inst);
}

struct exit_arg {
	dynshm_instance *inst;
	int wfd;
};

static void cb_pipe(dynshm_segment *seg, void *arg)
{
	(void)seg;
	write_full((int)(intptr_t)arg, "X", 1);
}

/* Register a callback and exit(0) without detaching or closing. */
static int fork_exit_with_callback(void *arg)
{
	struct exit_arg *a = arg;
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	CHILD_OK(dynshm_create(a->inst, 4096, 0, &seg));
	h = dynshm_segment_handle(seg);
	CHILD_OK(dynshm_on_detach(seg, cb_pipe, (void *)(intptr_t)a->wfd));
	CHILD_CHECK(write_full(a->wfd, &h, sizeof(h)) == 0);
	fflush(NULL);
	exit(0);
}

static void test_on_detach_at_exit(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct exit_arg arg;
	dynshm_handle h;
	int p[2];
	pid_t pid;

	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	pid = start_fork(f, fork_exit_with_callback, &arg);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	expect_byte(p[0], 'X');
	assert_int_equal(finish_kid(f, pid), 0);
	/* its exit detached (and so destroyed) the segment, and left */
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the creator's exit");
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 8. scopes ------------------------------------------------------------- */

struct thread_create {
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc;
	bool own_scope; /* create inside a scope of this thread, then end it */
	dynshm_handle h;
};

static void *create_in_thread(void *arg)
{
	struct thread_create *t = arg;
	dynshm_scope *scope = NULL;

	if (t->own_scope && (t->rc = dynshm_scope_begin(t->inst, &scope)) != 0)
		return NULL;
	t->rc = dynshm_create(t->inst, 4096, 0, &t->seg);
	if (t->rc == 0)
		t->h = dynshm_segment_handle(t->seg);
	if (t->own_scope && t->rc == 0)
		t->rc = dynshm_scope_end(scope);
	return NULL;
}

static void test_scopes(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_scope *outer = NULL, *inner = NULL, *s = NULL;
	dynshm_segment *a, *b, *pinned, *c, *again = NULL, *d, *gone;
	dynshm_handle ha, hb, hp, hc, hd;
	void *addr_a, *addr_c, *addr_p;

	ASSERT_OK(dynshm_scope_begin(inst, &outer));
	a = xcreate(inst, 4096, 0xa);
	b = xcreate(inst, 4096, 0xb);
	pinned = xcreate(inst, 4096, 0xc);
	gone = xcreate(inst, 4096, 0);
	ha = dynshm_segment_handle(a);
	hb = dynshm_segment_handle(b);
	hp = dynshm_segment_handle(pinned);
	addr_a = dynshm_segment_address(a);
	addr_p = dynshm_segment_address(pinned);
	ASSERT_OK(dynshm_pin_mapping(b));	    /* moved out of the scope */
	ASSERT_OK(dynshm_pin_segment(pinned)); /* the segment outlives us */
	ASSERT_OK(dynshm_detach(gone));	    /* detached early: no matter */

	ASSERT_OK(dynshm_scope_begin(inst, &inner));
	c = xcreate(inst, 4096, 0xd);
	hc = dynshm_segment_handle(c);
	addr_c = dynshm_segment_address(c);
	/* an attach of what the outer scope maps stays in the outer one */
	ASSERT_OK(dynshm_attach(inst, ha, &again));
	assert_ptr_equal(again, a);

	dynshm_clear_error();
	ASSERT_RC(dynshm_scope_end(outer), -EINVAL);
	assert_string_not_equal(dynshm_last_error(), "");
	ASSERT_RC(dynshm_scope_end(NULL), -EINVAL);

	ASSERT_OK(dynshm_scope_end(inner));
	assert_no_segment(inst, hc);
	assert_gone(&w, hc, "a segment of the inner scope");
	assert_false(is_mapped(addr_c));
	assert_int_equal(stat_of(inst, ha).references, 1);
	assert_true(check_fill(addr_a, 4096, 0xa));

	/* nested again inside the outer one, empty */
	ASSERT_OK(dynshm_scope_begin(inst, &s));
	ASSERT_OK(dynshm_scope_end(s));

	/* the outer scope ends: a fully detached though attached twice */
	ASSERT_OK(dynshm_scope_end(outer));
	assert_no_segment(inst, ha);
	assert_gone(&w, ha, "a segment of the outer scope");
	assert_false(is_mapped(addr_a));
	/* b was moved out: still mapped and held */
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	/* the pinned segment is unmapped but kept */
	assert_false(is_mapped(addr_p));
	assert_int_equal(stat_of(inst, hp).references, 0);
	assert_true(os_exists(&w, hp));
	assert_int_equal(attach_elsewhere(f, inst, hp, 0, 0xc), 0);

	/* outside any scope a create lives until detached */
	d = xcreate(inst, 4096, 0);
	hd = dynshm_segment_handle(d);
	assert_int_equal(stat_of(inst, hd).references, 1);

	ASSERT_OK(dynshm_detach(d));
	ASSERT_OK(dynshm_detach(b));
	ASSERT_OK(dynshm_unpin_segment(inst, hp));
	assert_gone(&w, hp, "the pinned one after unpin");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/*
 * Scopes are per thread: a thread's create while another thread's scope
 * is open belongs to no scope, and a thread's own scope takes only its
 * mappings.  Threads run in a forked process (see test_threads).
 */
static int fork_scope_threads(void *arg)
{
	dynshm_instance *inst = arg;
	struct thread_create plain, scoped;
	dynshm_scope *scope = NULL;
	dynshm_segment *mine = NULL;
	dynshm_segment_info si;
	dynshm_handle hm;
	pthread_t thread;

	CHILD_OK(dynshm_scope_begin(inst, &scope));
	CHILD_OK(dynshm_create(inst, 4096, 0, &mine));
	hm = dynshm_segment_handle(mine);
	memset(&plain, 0, sizeof(plain));
	memset(&scoped, 0, sizeof(scoped));
	plain.inst = scoped.inst = inst;
	scoped.own_scope = true;
	CHILD_CHECK(pthread_create(&thread, NULL, create_in_thread, &plain) ==
		    0);
	CHILD_CHECK(pthread_join(thread, NULL) == 0);
	CHILD_OK(plain.rc);
	CHILD_CHECK(pthread_create(&thread, NULL, create_in_thread, &scoped) ==
		    0);
	CHILD_CHECK(pthread_join(thread, NULL) == 0);
	CHILD_OK(scoped.rc);
	/* the other thread's scope ended: its segment went, ours stayed */
	CHILD_RC(dynshm_stat(inst, scoped.h, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_stat(inst, hm, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_OK(dynshm_scope_end(scope));
	/* ours went with our scope; the plain create of the thread stayed */
	CHILD_RC(dynshm_stat(inst, hm, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_stat(inst, plain.h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_OK(dynshm_detach(plain.seg));
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static void test_scopes_per_thread(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);

	assert_int_equal(finish_kid(f, start_fork(f, fork_scope_threads, inst)),
			 0);
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(os_count(&w), 0);
	xdestroy(f, inst);
}

/* ---- 9. fork semantics ------------------------------------------------------ */

struct fork_arg {
	dynshm_instance *inst;
	dynshm_segment *seg; /* inherited mapping, or NULL */
	dynshm_handle h, h2;
	int rfd, wfd;
	int how;
};

/*
 * (a) A child that calls dynshm_attach and dynshm_create on the inherited
 * instance joins as a process of its own.
 */
static int fork_worker(void *arg)
{
	struct fork_arg *a = arg;
	dynshm_segment *p = NULL, *q = NULL;
	dynshm_instance_info info;
	dynshm_handle hq;
	char c = 0;

	CHILD_OK(dynshm_attach(a->inst, a->h, &p));
	CHILD_CHECK(check_fill(dynshm_segment_address(p), 4096, 0x91));
	CHILD_OK(dynshm_create(a->inst, 8192, 0, &q));
	hq = dynshm_segment_handle(q);
	fill(dynshm_segment_address(q), 8192, hq);
	CHILD_OK(dynshm_instance_info_get(a->inst, &info, sizeof(info)));
	CHILD_CHECK(info.processes == 2);
	CHILD_CHECK(write_full(a->wfd, &hq, sizeof(hq)) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'g');
	CHILD_OK(dynshm_detach(p));
	CHILD_OK(dynshm_detach(q));
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

static void test_fork_child_joins(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *pseg = xcreate(inst, 4096, 0x91), *q = NULL;
	dynshm_handle hp = dynshm_segment_handle(pseg), hq;
	struct fork_arg arg;
	dynshm_segment_info si;
	int to_child[2], to_parent[2];
	pid_t pid;

	ASSERT_OK(dynshm_pin_segment(pseg));
	ASSERT_OK(dynshm_detach(pseg)); /* nothing mapped at the fork */
	assert_int_equal(info_of(inst).processes, 1);
	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	memset(&arg, 0, sizeof(arg));
	arg.inst = inst;
	arg.h = hp;
	arg.rfd = to_child[0];
	arg.wfd = to_parent[1];
	pid = start_fork(f, fork_worker, &arg);
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);

	hq = recv_handle(to_parent[0]);
	assert_int_equal(info_of(inst).processes, 2);
	assert_int_equal(stat_of(inst, hp).references, 1);
	si = stat_of(inst, hq);
	assert_int_equal(si.references, 1);
	assert_int_equal(si.creator_pid, pid);
	ASSERT_OK(dynshm_attach(inst, hq, &q));
	assert_true(check_fill(dynshm_segment_address(q), 8192, hq));
	send_byte(to_child[1], 'g');
	assert_int_equal(finish_kid(f, pid), 0);

	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(stat_of(inst, hp).references, 0);
	assert_int_equal(stat_of(inst, hq).references, 1); /* ours */
	ASSERT_OK(dynshm_detach(q));
	assert_gone(&w, hq, "the child's segment after our detach");
	ASSERT_OK(dynshm_unpin_segment(inst, hp));
	assert_gone(&w, hp, "the pinned one after unpin");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/*
 * (b) A child that adopted an inherited mapping (by making any call)
 * keeps the segment alive after the parent detaches; its detach is then
 * the last.
 */
static int fork_adopter(void *arg)
{
	struct fork_arg *a = arg;
	dynshm_instance_info info;
	dynshm_segment_info si;
	char c = 0;

	/* the first call: join, adopting the inherited mapping */
	CHILD_OK(dynshm_instance_info_get(a->inst, &info, sizeof(info)));
	CHILD_CHECK(info.processes == 2);
	CHILD_CHECK(write_full(a->wfd, "j", 1) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'd');
	/* the parent let go; we hold it alone */
	CHILD_OK(dynshm_stat(a->inst, a->h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_CHECK(check_fill(dynshm_segment_address(a->seg), 8192, 0x92));
	strcpy(dynshm_segment_address(a->seg), "adopted and alive");
	CHILD_CHECK(write_full(a->wfd, "r", 1) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'x');
	CHILD_OK(dynshm_detach(a->seg));
	CHILD_RC(dynshm_stat(a->inst, a->h, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

static void test_fork_child_adopts(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 8192, 0x92), *again = NULL;
	dynshm_handle h = dynshm_segment_handle(seg);
	struct fork_arg arg;
	int to_child[2], to_parent[2];
	pid_t pid;

	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	memset(&arg, 0, sizeof(arg));
	arg.inst = inst;
	arg.seg = seg;
	arg.h = h;
	arg.rfd = to_child[0];
	arg.wfd = to_parent[1];
	pid = start_fork(f, fork_adopter, &arg);
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);

	expect_byte(to_parent[0], 'j');
	assert_int_equal(stat_of(inst, h).references, 2);
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));
	send_byte(to_child[1], 'd');
	expect_byte(to_parent[0], 'r');
	/* a fresh attach here sees the child's write */
	ASSERT_OK(dynshm_attach(inst, h, &again));
	assert_string_equal(dynshm_segment_address(again), "adopted and alive");
	assert_int_equal(stat_of(inst, h).references, 2);
	ASSERT_OK(dynshm_detach(again));
	send_byte(to_child[1], 'x');
	assert_int_equal(finish_kid(f, pid), 0);
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the adopting child's last detach");
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
}

/*
 * (c) A child never releases its parent's reference, however it leaves:
 * 0 exit(0) without any call, 1 detach the inherited mapping and close,
 * 2 close at once, 3 one call then exit(0) (the atexit handler closes),
 * 4 one call then _exit (the reaper releases it later).
 */
static int fork_leaver(void *arg)
{
	struct fork_arg *a = arg;
	dynshm_instance_info info;
	dynshm_segment_info si;

	switch (a->how) {
	case 0:
		fflush(NULL);
		exit(0);
	case 1:
		CHILD_OK(dynshm_detach(a->seg));
		CHILD_OK(dynshm_stat(a->inst, a->h, &si, sizeof(si)));
		CHILD_CHECK(si.references == 1); /* the parent's */
		CHILD_OK(dynshm_instance_close(a->inst));
		return 0;
	case 2:
		CHILD_OK(dynshm_instance_close(a->inst));
		return 0;
	case 3:
		CHILD_OK(dynshm_instance_info_get(a->inst, &info,
						  sizeof(info)));
		CHILD_CHECK(info.processes == 2);
		fflush(NULL);
		exit(0);
	default:
		CHILD_OK(dynshm_stat(a->inst, a->h, &si, sizeof(si)));
		CHILD_CHECK(si.references == 2);
		return 0; /* _exit: no atexit handler */
	}
}

static void test_fork_child_never_releases_parent(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 8192, 0x93);
	dynshm_handle h = dynshm_segment_handle(seg);
	struct fork_arg arg;
	unsigned n = 0;
	int p[2];
	char c;

	/* a child that made no call runs none of our on-detach callbacks */
	make_pipe(f, p);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	ASSERT_OK(dynshm_on_detach(seg, cb_pipe, (void *)(intptr_t)p[1]));
	memset(&arg, 0, sizeof(arg));
	arg.inst = inst;
	arg.seg = seg;
	arg.h = h;
	for (int how = 0; how <= 4; how++) {
		arg.how = how;
		if (finish_kid(f, start_fork(f, fork_leaver, &arg)) != 0)
			fail_msg("child leaving by way %d failed", how);
		if (how == 0) {
			if (read(p[0], &c, 1) != -1 || errno != EAGAIN)
				fail_msg("a child that made no call ran our "
					 "on-detach callback at its exit");
			ASSERT_OK(dynshm_cancel_on_detach(seg, cb_pipe,
						       (void *)(intptr_t)p[1]));
		}
		if (how == 4) {
			ASSERT_OK(dynshm_reap(inst, &n));
			assert_int_equal(n, 1);
		}
		if (how == 0) {
			/*
			 * It held our references from the fork until its
			 * exit; the next reap lets them go (it never was a
			 * process of its own: not counted).
			 */
			ASSERT_OK(dynshm_reap(inst, &n));
			assert_int_equal(n, 0);
		}
		if (stat_of(inst, h).references != 1)
			fail_msg("after a child left by way %d: %u references",
				 how, stat_of(inst, h).references);
		assert_int_equal(info_of(inst).processes, 1);
		assert_true(check_fill(dynshm_segment_address(seg), 8192, 0x93));
		assert_true(os_exists(&w, h));
	}
	ASSERT_OK(dynshm_detach(seg));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the parent's detach");
	xdestroy(f, inst);
}

/*
 * (d) A segment the parent lets go of between the fork and the child's
 * first call is still the child's: the child holds its parent's references
 * from the fork on (a FORK entry, src/instance.c), so the segment and its
 * slot stay until the child, at its first call, adopts and then drops it.
 * (It used to be freed at the parent's detach, its slot given to the next
 * segment while the child still mapped it.)
 */
static int fork_late_joiner(void *arg)
{
	struct fork_arg *a = arg;
	dynshm_segment_info si;
	char c = 0;

	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'd');
	CHILD_CHECK(read_full(a->rfd, &a->h2, sizeof(a->h2)) == 0);
	/* no call made yet: the inherited memory is still valid */
	CHILD_CHECK(check_fill(dynshm_segment_address(a->seg), 8192, 0x94));
	/* the first call adopts it: ours, and the only reference */
	CHILD_OK(dynshm_stat(a->inst, a->h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_OK(dynshm_stat(a->inst, a->h2, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1); /* the parent's new one: not ours */
	CHILD_CHECK(check_fill(dynshm_segment_address(a->seg), 8192, 0x94));
	CHILD_OK(dynshm_detach(a->seg)); /* the last reference: it goes */
	CHILD_RC(dynshm_stat(a->inst, a->h, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

static void test_fork_destroyed_before_first_call(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 8192, 0x94), *next;
	dynshm_handle h = dynshm_segment_handle(seg), h2;
	struct fork_arg arg;
	int to_child[2];
	pid_t pid;

	make_pipe(f, to_child);
	memset(&arg, 0, sizeof(arg));
	arg.inst = inst;
	arg.seg = seg;
	arg.h = h;
	arg.rfd = to_child[0];
	pid = start_fork(f, fork_late_joiner, &arg);
	close_fd(f, to_child[0]);

	/* the child has made no call, and yet holds what it inherited */
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));
	next = xcreate(inst, 4096, 0x95);
	h2 = dynshm_segment_handle(next);
	assert_int_not_equal(h2 & HANDLE_SLOT_MASK, h & HANDLE_SLOT_MASK);
	send_byte(to_child[1], 'd');
	send_handle(to_child[1], h2);
	assert_int_equal(finish_kid(f, pid), 0);
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the child's detach");
	assert_int_equal(stat_of(inst, h2).references, 1);
	assert_int_equal(info_of(inst).processes, 1);
	ASSERT_OK(dynshm_detach(next));
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 10. limits -------------------------------------------------------------- */

struct open_arg {
	const char *dir;
	int rfd, wfd;
	int want;
	bool die;
};

/* Open the instance by directory (a new handle, not the inherited one). */
static int fork_opener(void *arg)
{
	struct open_arg *a = arg;
	dynshm_instance *inst = NULL;
	char c = 0;

	dynshm_clear_error();
	CHILD_RC(dynshm_instance_open(a->dir, NULL, 0, &inst), a->want);
	if (a->want != 0) {
		CHILD_CHECK(strstr(dynshm_last_error(), "max_processes") != NULL);
		return 0;
	}
	if (a->die)
		raise(SIGKILL);
	if (a->wfd >= 0) {
		CHILD_CHECK(write_full(a->wfd, "j", 1) == 0);
		CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'x');
	}
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 4, 2);
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *segs[4], *fifth = (dynshm_segment *)&inst;
	struct open_arg oa;
	int to_child[2], to_parent[2];
	pid_t holder;

	assert_int_equal(info.max_segments, 4);
	assert_int_equal(info.max_processes, 2);
	for (int i = 0; i < 4; i++)
		segs[i] = xcreate(inst, 4096, 0);
	dynshm_clear_error();
	ASSERT_RC(dynshm_create(inst, 4096, 0, &fifth), -ENOSPC);
	ASSERT_MSG_HAS("max_segments");
	assert_ptr_equal(fifth, (dynshm_segment *)&inst);
	assert_int_equal(info_of(inst).segments, 4);
	ASSERT_OK(dynshm_detach(segs[3]));
	segs[3] = xcreate(inst, 4096, 0); /* a freed slot is usable again */
	for (int i = 0; i < 4; i++)
		ASSERT_OK(dynshm_detach(segs[i]));
	assert_int_equal(info_of(inst).segments, 0);

	/* max_processes = 2: us and one holder; a third is refused */
	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	memset(&oa, 0, sizeof(oa));
	oa.dir = info.directory;
	oa.rfd = to_child[0];
	oa.wfd = to_parent[1];
	holder = start_fork(f, fork_opener, &oa);
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);
	expect_byte(to_parent[0], 'j');
	assert_int_equal(info_of(inst).processes, 2);

	oa.rfd = oa.wfd = -1;
	oa.want = -ENOSPC;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	assert_int_equal(info_of(inst).processes, 2);
	send_byte(to_child[1], 'x');
	assert_int_equal(finish_kid(f, holder), 0);
	assert_int_equal(info_of(inst).processes, 1);

	/* a place left by a clean leave, and by a dead process, is reused */
	oa.want = 0;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	oa.die = true;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)),
			 128 + SIGKILL);
	assert_int_equal(info_of(inst).processes, 2); /* not reaped yet */
	oa.die = false;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
}

/* ---- 11. inspection ----------------------------------------------------------- */

struct stop_arg {
	int calls;
};

static int stop_at_first(const dynshm_segment_info *si, void *arg)
{
	(void)si;
	((struct stop_arg *)arg)->calls++;
	return 42;
}

struct found {
	dynshm_segment_info info[4];
	int n;
};

static int keep_info(const dynshm_segment_info *si, void *arg)
{
	struct found *fd = arg;

	if (fd->n < 4)
		fd->info[fd->n] = *si;
	fd->n++;
	return 0;
}

static void assert_same_info(const dynshm_segment_info *a,
			     const dynshm_segment_info *b)
{
	assert_int_equal(a->handle, b->handle);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->backend, b->backend);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->references, b->references);
	assert_int_equal(a->pinned, b->pinned);
	assert_int_equal(a->creator_pid, b->creator_pid);
	assert_int_equal(a->created_ns, b->created_ns);
}

static void test_inspection(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 16, 8);
	dynshm_instance_info info = info_of(inst);
	char path[PATH_MAX];
	struct pin_arg arg;
	struct stop_arg stop = { 0 };
	struct found found;
	dynshm_segment_info s1, s2;
	dynshm_segment *seg;
	dynshm_handle h1, h2;
	uint64_t before, after, fork_before;
	int p[2];
	pid_t pid;

	path_in(f, "inst", path, sizeof(path));
	assert_string_equal(info.name, path);
	assert_string_equal(info.directory, path);
	assert_true(info.instance_id != 0);
	assert_int_equal(info.instance_id & 0xfff, TEST_TAG);
	assert_int_equal(info.backend, f->be->type);
	assert_int_equal(info.max_segments, 16);
	assert_int_equal(info.max_processes, 8);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.processes, 1);
	assert_true(info.control_size > 0);
	assert_int_equal(info.creator_pid, getpid());
	assert_int_equal(info.lock_repairs, 0);
	ASSERT_RC(dynshm_instance_info_get(inst, NULL, 0), -EINVAL);

	before = now_ns();
	seg = xcreate(inst, 10000, 1);
	after = now_ns();
	h1 = dynshm_segment_handle(seg);

	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	fork_before = now_ns();
	pid = start_fork(f, fork_pinner, &arg);
	close_fd(f, p[1]);
	h2 = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 0);

	s1 = stat_of(inst, h1);
	assert_int_equal(s1.handle, h1);
	assert_int_equal(s1.size, 10000);
	assert_int_equal(s1.backend, f->be->type);
	assert_int_equal(s1.state, DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(s1.references, 1);
	assert_false(s1.pinned);
	assert_int_equal(s1.creator_pid, getpid());
	assert_true(s1.created_ns >= before && s1.created_ns <= after);

	s2 = stat_of(inst, h2);
	assert_int_equal(s2.handle, h2);
	assert_int_equal(s2.size, 20000);
	assert_int_equal(s2.backend, f->be->type);
	assert_int_equal(s2.state, DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(s2.references, 0);
	assert_true(s2.pinned);
	assert_int_equal(s2.creator_pid, pid);
	assert_true(s2.created_ns >= fork_before && s2.created_ns <= now_ns());

	memset(&found, 0, sizeof(found));
	ASSERT_OK(dynshm_foreach_segment(inst, keep_info, &found));
	assert_int_equal(found.n, 2);
	for (int i = 0; i < 2; i++)
		assert_same_info(&found.info[i],
				 found.info[i].handle == h1 ? &s1 : &s2);
	assert_true(found.info[0].handle != found.info[1].handle);
	assert_int_equal(dynshm_foreach_segment(inst, stop_at_first, &stop), 42);
	assert_int_equal(stop.calls, 1);
	ASSERT_RC(dynshm_foreach_segment(inst, NULL, NULL), -EINVAL);
	ASSERT_RC(dynshm_stat(inst, h1, NULL, 0), -EINVAL);

	info = info_of(inst);
	assert_int_equal(info.segments, 2);
	assert_int_equal(info.processes, 1);

	assert_null(dynshm_segment_address(NULL));
	assert_int_equal(dynshm_segment_size(NULL), 0);
	assert_int_equal(dynshm_segment_handle(NULL), DYNSHM_HANDLE_INVALID);

	ASSERT_OK(dynshm_unpin_segment(inst, h2));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(info_of(inst).segments, 0);
	memset(&found, 0, sizeof(found));
	ASSERT_OK(dynshm_foreach_segment(inst, keep_info, &found));
	assert_int_equal(found.n, 0);
	xdestroy(f, inst);
}

/* ---- 12. joining, reset, a restart after everyone was killed --------------- */

static void test_joining(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 32, 0);
	dynshm_instance_info info = info_of(inst);
	dynshm_instance *other = NULL;
	dynshm_config *cfg;
	char ids[32], missing[PATH_MAX];
	const char *args[] = { info.directory, ids, f->be->name, NULL };
	struct stat st;

	/* another process joins the same instance */
	hex(ids, sizeof(ids), info.instance_id);
	assert_int_equal(run_exec(f, "join", args), 0);
	assert_int_equal(info_of(inst).processes, 1);

	/* DYNSHM_OPEN_EXISTING on a directory that is not there */
	path_in(f, "missing", missing, sizeof(missing));
	dynshm_clear_error();
	ASSERT_RC(dynshm_instance_open(missing, NULL, DYNSHM_OPEN_EXISTING, &other),
		  -ENOENT);
	assert_string_not_equal(dynshm_last_error(), "");
	assert_int_equal(lstat(missing, &st), -1); /* and it made none */

	/* an explicit backend that disagrees is refused */
	cfg = make_cfg(f->be->other, 0, 0);
	dynshm_clear_error();
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	ASSERT_MSG_HAS("dynamic_shared_memory_type");
	cfg = make_cfg("none", 0, 0);
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	/* and so does an explicit segment directory other than its own */
	cfg = make_cfg(NULL, 0, 0);
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", f->dir));
	dynshm_clear_error();
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	ASSERT_MSG_HAS("dynshm_directory");
	assert_int_equal(info_of(inst).processes, 1);

	/* settings not made explicitly do not conflict; limits are kept */
	cfg = make_cfg(NULL, 0, 0);
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &other));
	dynshm_config_free(cfg);
	assert_int_equal(info_of(other).instance_id, info.instance_id);
	assert_int_equal(info_of(other).max_segments, 32);
	assert_int_equal(info_of(inst).processes, 2);
	xclose(f, other);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *old = xopen(f, "inst"), *fresh;
	struct where w_old = where_of(old);
	dynshm_segment *p = xcreate(old, 8192, 0x71), *q = xcreate(old, 8192, 0x72);
	dynshm_segment *r, *nothing = NULL;
	dynshm_handle hp = dynshm_segment_handle(p), hq = dynshm_segment_handle(q);

	ASSERT_OK(dynshm_pin_segment(p));
	ASSERT_OK(dynshm_detach(p));
	assert_true(os_exists(&w_old, hp));
	assert_true(os_exists(&w_old, hq));

	/* a supervisor restarts: everything of the earlier incarnation goes */
	fresh = xopen_limits(f, "inst", DYNSHM_OPEN_RESET, 0, 0);
	assert_true(info_of(fresh).instance_id != w_old.id);
	assert_int_equal(info_of(fresh).segments, 0);
	assert_int_equal(info_of(fresh).processes, 1);
	assert_gone(&w_old, hp, "a pinned segment after reset");
	assert_gone(&w_old, hq, "a mapped segment after reset");
	assert_gone(&w_old, CTL_HANDLE, "the old control segment");
	assert_no_segment(fresh, hp);
	assert_no_segment(fresh, hq);

	/* the old handle has lost its instance; its mapping stays valid */
	ASSERT_RC(dynshm_create(old, 4096, 0, &nothing), -ENOENT);
	ASSERT_RC(dynshm_attach(old, hp, &nothing), -ENOENT);
	assert_true(check_fill(dynshm_segment_address(q), 8192, 0x72));
	/* letting go always works (docs/design.md, "A destroyed instance") */
	ASSERT_OK(dynshm_detach(q));
	untrack_inst(f, old);
	ASSERT_OK(dynshm_instance_close(old));

	r = xcreate(fresh, 4096, 0x73);
	assert_int_equal(attach_elsewhere(f, fresh, dynshm_segment_handle(r), 0,
					  0x73),
			 0);
	ASSERT_OK(dynshm_detach(r));
	assert_int_equal(info_of(fresh).segments, 0);
	xdestroy(f, fresh);
}

struct victim_arg {
	const char *dir;
	dynshm_handle pinned; /* 0: create and pin it; else attach it */
	int rfd, wfd;
};

/* Create (and pin) or attach, create an unpinned one, report, die. */
static int fork_victim(void *arg)
{
	struct victim_arg *a = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *p = NULL, *u = NULL;
	dynshm_handle hs[2];
	char c = 0;

	CHILD_OK(dynshm_instance_open(a->dir, NULL, 0, &inst));
	if (a->pinned == 0) {
		CHILD_OK(dynshm_create(inst, 16384, 0, &p));
		fill(dynshm_segment_address(p), 16384, 0x81);
		CHILD_OK(dynshm_pin_segment(p));
	} else {
		CHILD_OK(dynshm_attach(inst, a->pinned, &p));
	}
	CHILD_OK(dynshm_create(inst, 4096, 0, &u));
	hs[0] = dynshm_segment_handle(p);
	hs[1] = dynshm_segment_handle(u);
	CHILD_CHECK(write_full(a->wfd, hs, sizeof(hs)) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'k');
	raise(SIGKILL);
	return 1;
}

static void test_open_after_all_killed(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct victim_arg va[2];
	int to_child[2][2], to_parent[2][2];
	dynshm_handle hs[2][2];
	dynshm_segment_info si;
	dynshm_segment *p = NULL;
	pid_t pids[2];

	xclose(f, inst); /* nobody is joined any more */
	for (int i = 0; i < 2; i++) {
		make_pipe(f, to_child[i]);
		make_pipe(f, to_parent[i]);
		va[i].dir = w.dir;
		va[i].pinned = i == 0 ? 0 : hs[0][0];
		va[i].rfd = to_child[i][0];
		va[i].wfd = to_parent[i][1];
		pids[i] = start_fork(f, fork_victim, &va[i]);
		close_fd(f, to_child[i][0]);
		close_fd(f, to_parent[i][1]);
		if (read_full(to_parent[i][0], hs[i], sizeof(hs[i])) < 0)
			fail_msg("victim %d reported nothing", i);
	}
	assert_int_equal(hs[1][0], hs[0][0]);
	for (int i = 0; i < 2; i++)
		send_byte(to_child[i][1], 'k');
	for (int i = 0; i < 2; i++)
		assert_int_equal(finish_kid(f, pids[i]), 128 + SIGKILL);
	for (int i = 0; i < 2; i++) {
		assert_true(os_exists(&w, hs[i][0]));
		assert_true(os_exists(&w, hs[i][1]));
	}

	/* a plain open: the dead are reaped, the pinned segment is kept */
	inst = xopen_limits(f, "inst", 0, 0, 0);
	assert_int_equal(info_of(inst).instance_id, w.id);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).processes_reaped, 2);
	assert_int_equal(info_of(inst).segments, 1);
	si = stat_of(inst, hs[0][0]);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	for (int i = 0; i < 2; i++) {
		assert_no_segment(inst, hs[i][1]);
		assert_gone(&w, hs[i][1], "an unpinned segment of the dead");
	}
	ASSERT_OK(dynshm_attach(inst, hs[0][0], &p));
	assert_true(check_fill(dynshm_segment_address(p), 16384, 0x81));
	ASSERT_OK(dynshm_unpin_segment(inst, hs[0][0]));
	ASSERT_OK(dynshm_detach(p));
	assert_gone(&w, hs[0][0], "the pinned one after unpin and detach");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 15. threads ----------------------------------------------------------- */

#define NTHREADS 4
#define ITERATIONS 200

struct thread_board {
	dynshm_instance *inst;
	_Atomic uint64_t handles[NTHREADS];
	atomic_int errors;
	atomic_int peer_attaches;
	pthread_mutex_t msg_lock;
	char msg[512];
};

struct thread_arg {
	struct thread_board *board;
	int index;
};

static void thread_error(struct thread_board *b, const char *what, int rc)
{
	pthread_mutex_lock(&b->msg_lock);
	if (!b->msg[0])
		snprintf(b->msg, sizeof(b->msg), "%s: %d (%s)", what, rc,
			 dynshm_last_error());
	pthread_mutex_unlock(&b->msg_lock);
	atomic_fetch_add(&b->errors, 1);
}

/* Each segment starts with its own handle, written before it is shown. */
static void *thread_main(void *arg)
{
	struct thread_arg *t = arg;
	struct thread_board *b = t->board;

	for (int i = 0; i < ITERATIONS; i++) {
		size_t size = 4096 * (size_t)(1 + i % 3);
		dynshm_segment *seg = NULL, *again = NULL, *peer = NULL;
		dynshm_handle h, ph;
		uint64_t *words;
		int rc;

		rc = dynshm_create(b->inst, size, 0, &seg);
		if (rc != 0) {
			thread_error(b, "create", rc);
			break;
		}
		h = dynshm_segment_handle(seg);
		words = dynshm_segment_address(seg);
		words[0] = h;
		words[1] = (uint64_t)t->index;
		fill(words + 2, size - 16, h);
		atomic_store(&b->handles[t->index], h);

		rc = dynshm_attach(b->inst, h, &again);
		if (rc != 0 || again != seg)
			thread_error(b, "attach own", rc);

		ph = atomic_load(&b->handles[(t->index + 1 + i) % NTHREADS]);
		if (ph && ph != h) {
			rc = dynshm_attach(b->inst, ph, &peer);
			if (rc == 0) {
				const uint64_t *pw = dynshm_segment_address(peer);

				if (pw[0] != ph ||
				    !check_fill(pw + 2,
						dynshm_segment_size(peer) - 16, ph))
					thread_error(b, "peer contents", 0);
				atomic_fetch_add(&b->peer_attaches, 1);
				rc = dynshm_detach(peer);
				if (rc != 0)
					thread_error(b, "detach peer", rc);
			} else if (rc != -ENOENT) {
				thread_error(b, "attach peer", rc);
			}
		}
		if (words[0] != h || !check_fill(words + 2, size - 16, h))
			thread_error(b, "own contents", 0);
		atomic_store(&b->handles[t->index], 0);
		if (again && (rc = dynshm_detach(again)) != 0)
			thread_error(b, "detach own attach", rc);
		rc = dynshm_detach(seg);
		if (rc != 0)
			thread_error(b, "detach", rc);
	}
	return NULL;
}

/*
 * The threads run in a forked process of their own: a process that has
 * made threads leaves their (cached) thread memory to every child it forks
 * later, which valgrind then reports as lost in those children.
 */
static int fork_threads(void *arg)
{
	struct thread_board *b = arg;
	struct thread_arg args[NTHREADS];
	pthread_t threads[NTHREADS];
	dynshm_instance_info info;

	pthread_mutex_init(&b->msg_lock, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		args[i].board = b;
		args[i].index = i;
		CHILD_CHECK(pthread_create(&threads[i], NULL, thread_main,
					   &args[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		CHILD_CHECK(pthread_join(threads[i], NULL) == 0);
	pthread_mutex_destroy(&b->msg_lock);
	if (atomic_load(&b->errors))
		fprintf(stderr, "%d error(s) in threads; first: %s\n",
			atomic_load(&b->errors), b->msg);
	CHILD_CHECK(atomic_load(&b->errors) == 0);
	printf("%d attaches of other threads' segments\n",
	       atomic_load(&b->peer_attaches));
	CHILD_OK(dynshm_instance_info_get(b->inst, &info, sizeof(info)));
	CHILD_CHECK(info.segments == 0);
	CHILD_OK(dynshm_instance_close(b->inst));
	return 0;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	static struct thread_board board;
	struct where w;

	memset(&board, 0, sizeof(board));
	board.inst = xopen(f, "inst");
	w = where_of(board.inst);
	assert_int_equal(finish_kid(f, start_fork(f, fork_threads, &board)),
			 0);
	assert_int_equal(info_of(board.inst).segments, 0);
	assert_int_equal(info_of(board.inst).processes, 1);
	assert_int_equal(os_count(&w), 0);
	xdestroy(f, board.inst);
}

/*
 * fork() in one thread while another opens, uses and closes instances.
 * The atfork handler takes the registry lock, then every instance's lock;
 * close must never hold an instance's lock while waiting for the registry
 * (that deadlocked).  Run in a process of its own so a hang is reported.
 */
#define CHURN_ROUNDS 500

struct churn {
	char dir[PATH_MAX];
	const char *backend;
	atomic_int done;
	atomic_int errors;
	char msg[256];
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < CHURN_ROUNDS && !atomic_load(&c->errors); i++) {
		dynshm_instance *inst = NULL;
		dynshm_segment *seg = NULL;
		int rc = child_open(c->dir, c->backend, 0, &inst);

		/* close with mappings held: it works longer under the lock */
		for (int k = 0; rc == 0 && k < 6; k++)
			rc = dynshm_create(inst, 4096, 0, &seg);
		if (rc == 0)
			rc = dynshm_detach(seg);
		if (rc == 0)
			rc = dynshm_instance_close(inst);
		if (rc != 0) {
			snprintf(c->msg, sizeof(c->msg), "round %d: %d (%s)",
				 i, rc, dynshm_last_error());
			atomic_fetch_add(&c->errors, 1);
		}
	}
	atomic_store(&c->done, 1);
	return NULL;
}

static int fork_forker(void *arg)
{
	struct churn *c = arg;
	pthread_t thread;
	int forks = 0;

	CHILD_CHECK(pthread_create(&thread, NULL, churn_thread, c) == 0);
	while (!atomic_load(&c->done)) {
		pid_t pid = fork();

		/*
		 * The child leaves by exec: a forked copy of a threaded
		 * process would show valgrind the other threads' memory as
		 * lost at its exit (the exec'd program is not traced).
		 */
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		CHILD_CHECK(pid > 0);
		CHILD_CHECK(test_wait(pid) == 0);
		forks++;
	}
	CHILD_CHECK(pthread_join(thread, NULL) == 0);
	if (atomic_load(&c->errors))
		fprintf(stderr, "churn: %s\n", c->msg);
	CHILD_CHECK(atomic_load(&c->errors) == 0);
	CHILD_CHECK(forks > 0);
	return 0;
}

static void test_fork_while_closing(void **state)
{
	struct fixture *f = *state;
	static struct churn churn;
	dynshm_instance *inst;
	int p[2];
	pid_t pid;
	char c = 0;

	memset(&churn, 0, sizeof(churn));
	path_in(f, "inst", churn.dir, sizeof(churn.dir));
	churn.backend = f->be->name;
	make_pipe(f, p);
	pid = start_fork(f, fork_forker, &churn);
	close_fd(f, p[1]);
	/* EOF when it ends; nothing within the guard time is a deadlock */
	if (wait_readable(p[0]) < 0 || read(p[0], &c, 1) != 0)
		fail_msg("fork and close deadlocked (no end within %d s)",
			 IO_TIMEOUT_MS / 1000);
	assert_int_equal(finish_kid(f, pid), 0);
	inst = xopen(f, "inst");
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 16. injected failures ---------------------------------------------------- */

/* The handles of slots in CREATING when the OS object is about to be made. */
static struct {
	dynshm_instance *inst;
	dynshm_handle h[32];
	int n;
	pid_t bad_creator;
} capture;

static int keep_creating(const dynshm_segment_info *si, void *arg)
{
	(void)arg;
	if (si->state != DYNSHM_SEGMENT_CREATING)
		return 0;
	if (si->creator_pid != getpid())
		capture.bad_creator = si->creator_pid;
	if (capture.n < 32)
		capture.h[capture.n] = si->handle;
	capture.n++;
	return 0;
}

static void capture_hook(const char *point)
{
	if (capture.inst && strcmp(point, "create:before-os") == 0)
		dynshm_foreach_segment(capture.inst, keep_creating, NULL);
}

static void start_capture(dynshm_instance *inst)
{
	memset(&capture, 0, sizeof(capture));
	capture.inst = inst;
	dynshm_test_hook = capture_hook;
}

static void stop_capture(void)
{
	dynshm_test_hook = NULL;
	capture.inst = NULL;
	assert_int_equal(capture.bad_creator, 0);
}

static const int create_errors[] = { ENOSPC, EACCES, ENOMEM, EINTR };

static void test_injected_create(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	const size_t size = 3 * 4096 + 5;

	for (const struct step *s = f->be->create_steps; s->entry; s++) {
		for (size_t e = 0; e < sizeof(create_errors) / sizeof(int);
		     e++) {
			int err = create_errors[e];
			dynshm_segment *seg = (dynshm_segment *)&inst;
			unsigned long calls;
			char ctx[128];
			int rc;

			snprintf(ctx, sizeof(ctx), "%s: create, %s fails %s",
				 f->be->name, s->entry, strerror(err));
			dynshm_clear_error();
			start_capture(inst);
			inject_fail(s->entry, 1, err);
			rc = dynshm_create(inst, size, 0, &seg);
			calls = inject_calls(s->entry);
			inject_reset();
			stop_capture();
			if (calls < 1)
				fail_msg("%s: the step was never reached", ctx);
			if (capture.n < 1)
				fail_msg("%s: no slot was reserved first", ctx);
			if (err == EINTR && s->retries_eintr) {
				if (rc != 0)
					fail_msg("%s: not retried: %d (%s)",
						 ctx, rc, dynshm_last_error());
				assert_int_equal(capture.n, 1);
				assert_int_equal(dynshm_segment_handle(seg),
						 capture.h[0]);
				assert_true(all_zero(dynshm_segment_address(seg),
						     size));
				ASSERT_OK(dynshm_detach(seg));
			} else {
				if (rc != -err)
					fail_msg("%s: returned %d (%s)", ctx,
						 rc, dynshm_last_error());
				assert_ptr_equal(seg, (dynshm_segment *)&inst);
				if (!dynshm_last_error()[0])
					fail_msg("%s: no message", ctx);
				assert_int_equal(capture.n, 1);
			}
			/* the slot was given back and no object is left */
			for (int i = 0; i < capture.n && i < 32; i++) {
				assert_no_segment(inst, capture.h[i]);
				assert_gone(&w, capture.h[i], ctx);
			}
			if (info_of(inst).segments != 0)
				fail_msg("%s: %u segments left", ctx,
					 info_of(inst).segments);
			if (os_count(&w) != 0)
				fail_msg("%s: %d OS objects left", ctx,
					 os_count(&w));
		}
		if (s->first) {
			dynshm_segment *seg = NULL;
			int rc;

			/* one collision: retried with a new handle */
			start_capture(inst);
			inject_fail(s->entry, 1, EEXIST);
			rc = dynshm_create(inst, size, 0, &seg);
			assert_int_equal(inject_calls(s->entry), 2);
			inject_reset();
			stop_capture();
			ASSERT_RC(rc, 0);
			assert_int_equal(capture.n, 2);
			assert_true(capture.h[0] != capture.h[1]);
			assert_int_equal(dynshm_segment_handle(seg), capture.h[1]);
			assert_no_segment(inst, capture.h[0]);
			assert_gone(&w, capture.h[0], "the collided handle");
			assert_int_equal(stat_of(inst, capture.h[1]).references,
					 1);
			assert_int_equal(info_of(inst).segments, 1);
			ASSERT_OK(dynshm_detach(seg));

			/* collisions without end: given up, nothing kept */
			seg = (dynshm_segment *)&inst;
			start_capture(inst);
			inject_fail_from(s->entry, 1, EEXIST);
			dynshm_clear_error();
			rc = dynshm_create(inst, size, 0, &seg);
			inject_reset();
			stop_capture();
			ASSERT_RC(rc, -EEXIST);
			assert_ptr_equal(seg, (dynshm_segment *)&inst);
			assert_string_not_equal(dynshm_last_error(), "");
			assert_true(capture.n > 1);
			for (int i = 0; i < capture.n && i < 32; i++)
				assert_no_segment(inst, capture.h[i]);
			assert_int_equal(info_of(inst).segments, 0);
			assert_int_equal(os_count(&w), 0);
		}
	}
	xdestroy(f, inst);
}

static const int attach_errors[] = { EACCES, ENOMEM, EMFILE };

static void test_injected_attach(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 20000, 0x66);
	dynshm_handle h = dynshm_segment_handle(seg);

	/* pinned with nobody mapping it: our attach is a real one */
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	for (const struct step *s = f->be->attach_steps; s->entry; s++) {
		for (size_t e = 0; e < sizeof(attach_errors) / sizeof(int);
		     e++) {
			int err = attach_errors[e];
			dynshm_segment_info si;
			char ctx[128];
			int rc;

			snprintf(ctx, sizeof(ctx), "%s: attach, %s fails %s",
				 f->be->name, s->entry, strerror(err));
			seg = (dynshm_segment *)&inst;
			dynshm_clear_error();
			inject_fail(s->entry, 1, err);
			rc = dynshm_attach(inst, h, &seg);
			if (inject_calls(s->entry) < 1)
				fail_msg("%s: the step was never reached", ctx);
			inject_reset();
			if (rc != -err)
				fail_msg("%s: returned %d (%s)", ctx, rc,
					 dynshm_last_error());
			assert_ptr_equal(seg, (dynshm_segment *)&inst);
			if (!dynshm_last_error()[0])
				fail_msg("%s: no message", ctx);
			/* our reference was dropped again; all else as was */
			si = stat_of(inst, h);
			assert_int_equal(si.references, 0);
			assert_true(si.pinned);
			assert_int_equal(si.state, DYNSHM_SEGMENT_ACTIVE);
			assert_true(os_exists(&w, h));
			assert_int_equal(info_of(inst).segments, 1);
			assert_int_equal(os_count(&w), 1);
			/* and the next attach works */
			ASSERT_OK(dynshm_attach(inst, h, &seg));
			assert_true(check_fill(dynshm_segment_address(seg), 20000,
					       0x66));
			assert_int_equal(stat_of(inst, h).references, 1);
			ASSERT_OK(dynshm_detach(seg));
		}
	}

	/* held by another process: our failed attach leaves its count */
	{
		struct fork_arg arg;
		int to_child[2], to_parent[2];
		pid_t pid;

		make_pipe(f, to_child);
		make_pipe(f, to_parent);
		memset(&arg, 0, sizeof(arg));
		arg.inst = inst;
		arg.h = h;
		arg.rfd = to_child[0];
		arg.wfd = to_parent[1];
		ASSERT_OK(dynshm_unpin_segment(inst, h));
		/* unpinned with nobody mapping it: it went */
		assert_no_segment(inst, h);
		seg = xcreate(inst, 4096, 0x67);
		h = dynshm_segment_handle(seg);
		arg.h = h;
		arg.seg = seg;
		pid = start_fork(f, fork_adopter, &arg); /* adopts seg */
		close_fd(f, to_child[0]);
		close_fd(f, to_parent[1]);
		expect_byte(to_parent[0], 'j');
		ASSERT_OK(dynshm_detach(seg));
		assert_int_equal(stat_of(inst, h).references, 1);
		seg = (dynshm_segment *)&inst;
		inject_fail(f->be->attach_steps[0].entry, 1, EACCES);
		ASSERT_RC(dynshm_attach(inst, h, &seg), -EACCES);
		inject_reset();
		assert_int_equal(stat_of(inst, h).references, 1);
		assert_true(os_exists(&w, h));
		kill(pid, SIGKILL);
		assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);
		ASSERT_OK(dynshm_reap(inst, NULL));
		assert_no_segment(inst, h);
		assert_gone(&w, h, "after the holder was reaped");
	}
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- mmap: a segment directory of its own -------------------------------- */

static int count_entries(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_mmap_directory(void **state)
{
	struct fixture *f = *state;
	dynshm_config *cfg = make_cfg("mmap", 0, 0);
	dynshm_instance *inst = NULL, *again = NULL;
	dynshm_segment *seg;
	struct where w;
	char segs[PATH_MAX], inst_dir[PATH_MAX];
	dynshm_handle h;

	path_in(f, "segs", segs, sizeof(segs));
	path_in(f, "inst", inst_dir, sizeof(inst_dir));
	assert_int_equal(mkdir(segs, 0700), 0);
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", segs));
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &inst));
	/* the same directory given again is no conflict */
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &again));
	assert_int_equal(info_of(again).instance_id, info_of(inst).instance_id);
	xclose(f, again);
	dynshm_config_free(cfg);
	w = where_of(inst);
	snprintf(w.dir, sizeof(w.dir), "%s", segs);
	seg = xcreate(inst, 8192, 9);
	h = dynshm_segment_handle(seg);
	assert_true(os_exists(&w, h));
	assert_int_equal(os_count(&w), 1);
	/* the instance directory holds no segment file */
	snprintf(w.dir, sizeof(w.dir), "%s", inst_dir);
	assert_false(os_exists(&w, h));
	snprintf(w.dir, sizeof(w.dir), "%s", segs);
	assert_int_equal(attach_elsewhere(f, inst, h, 0, 9), 0);
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	xdestroy(f, inst); /* takes the pinned one and the control file */
	assert_false(os_exists(&w, h));
	assert_int_equal(count_entries(segs), 0);
}

/* ---- bad arguments --------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst"), *none = NULL;
	struct where w = where_of(inst);
	dynshm_segment *seg = (dynshm_segment *)&inst, *real;
	dynshm_scope *scope = NULL;

	ASSERT_RC(dynshm_create(inst, 0, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, DYNSHM_IMPL_MAX_SIZE + 1, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, SIZE_MAX, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, 4096, 0x80, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, 4096, 0, NULL), -EINVAL);
	ASSERT_RC(dynshm_create(NULL, 4096, 0, &seg), -EINVAL);
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	real = xcreate(inst, 4096, 0);
	ASSERT_RC(dynshm_attach(inst, dynshm_segment_handle(real), NULL), -EINVAL);
	ASSERT_RC(dynshm_attach(NULL, dynshm_segment_handle(real), &seg), -EINVAL);
	ASSERT_RC(dynshm_detach(NULL), -EINVAL);
	ASSERT_RC(dynshm_on_detach(NULL, cb_record, NULL), -EINVAL);
	ASSERT_RC(dynshm_cancel_on_detach(NULL, cb_record, NULL), -EINVAL);
	ASSERT_RC(dynshm_pin_mapping(NULL), -EINVAL);
	ASSERT_RC(dynshm_scope_begin(NULL, &scope), -EINVAL);
	ASSERT_RC(dynshm_scope_begin(inst, NULL), -EINVAL);
	ASSERT_RC(dynshm_instance_info_get(NULL, &(dynshm_instance_info){ 0 },
					   sizeof(dynshm_instance_info)),
		  -EINVAL);
	ASSERT_RC(dynshm_reap(NULL, NULL), -EINVAL);
	ASSERT_RC(dynshm_instance_open(w.dir, NULL, 0x80, &none), -EINVAL);
	ASSERT_RC(dynshm_instance_open(w.dir, NULL, 0, NULL), -EINVAL);
	dynshm_clear_error();
	ASSERT_RC(dynshm_instance_open("relative/inst", NULL, 0, &none), -EINVAL);
	ASSERT_MSG_HAS("relative/inst");
	assert_null(none);
	/* nothing of the refused calls is left; the good one is intact */
	assert_int_equal(info_of(inst).segments, 1);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(os_count(&w), 1);
	ASSERT_OK(dynshm_detach(real));
	xdestroy(f, inst);
}

/*
 * Removing the OS object fails (at the last detach, in the reaper): the
 * segment must stay recorded - MORIBUND, refused to attachers - so that
 * the next reap or the instance's destroy removes it.  (It used to be freed
 * regardless, leaving a SysV segment that nothing could find again.)
 */
struct killed_creator {
	dynshm_instance *inst;
	int wfd;
};

static int fork_create_and_die(void *arg)
{
	struct killed_creator *k = arg;
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	CHILD_OK(dynshm_create(k->inst, 4096, 0, &seg));
	h = dynshm_segment_handle(seg);
	CHILD_CHECK(write_full(k->wfd, &h, sizeof(h)) == 0);
	raise(SIGKILL);
	return 1;
}

static void test_injected_remove(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct killed_creator kc;
	dynshm_segment *seg = xcreate(inst, 4096, 0);
	dynshm_handle h = dynshm_segment_handle(seg);
	dynshm_segment_info si;
	unsigned n = 0;
	int p[2];
	pid_t pid;

	/* at the last detach */
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_OK(dynshm_detach(seg));
	assert_true(inject_calls(f->be->remove_entry) >=
		    (unsigned long)f->be->remove_nth);
	inject_reset();
	assert_true(os_exists(&w, h));
	si = stat_of(inst, h);
	assert_int_equal(si.state, DYNSHM_SEGMENT_MORIBUND);
	assert_int_equal(si.references, 0);
	assert_int_equal(info_of(inst).segments, 1);
	seg = (dynshm_segment *)&inst;
	ASSERT_RC(dynshm_attach(inst, h, &seg), -ENOENT);
	assert_int_equal(attach_elsewhere(f, inst, h, -ENOENT, 0), 0);
	/* the next reap finishes it, also while we are still here */
	ASSERT_OK(dynshm_reap(inst, NULL));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "a failed removal, after the reap");
	assert_int_equal(info_of(inst).segments, 0);

	/* in the reaper: the dead creator's segment */
	make_pipe(f, p);
	kc.inst = inst;
	kc.wfd = p[1];
	pid = start_fork(f, fork_create_and_die, &kc);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_RC(dynshm_reap(inst, &n), -EACCES);
	inject_reset();
	assert_int_equal(n, 1);
	assert_true(os_exists(&w, h));
	assert_int_equal(info_of(inst).segments, 1);
	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 0);
	assert_no_segment(inst, h);
	assert_gone(&w, h, "a failed removal in the reaper, reaped again");

	/* and the instance's destroy takes one still MORIBUND */
	seg = xcreate(inst, 4096, 0);
	h = dynshm_segment_handle(seg);
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_OK(dynshm_detach(seg));
	inject_reset();
	assert_true(os_exists(&w, h));
	xdestroy(f, inst);
	assert_gone(&w, h, "a failed removal, after the instance's destroy");
}

/* ---- 13. none ---------------------------------------------------------------- */

static void test_none(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *seg = (dynshm_segment *)&inst;
	struct listed l;

	assert_int_equal(info.backend, DYNSHM_IMPL_NONE);
	assert_int_equal(info.processes, 1);
	dynshm_clear_error();
	ASSERT_RC(dynshm_create(inst, 4096, 0, &seg), -ENOTSUP);
	ASSERT_MSG_HAS("disabled by configuration");
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	assert_int_equal(info_of(inst).segments, 0);
	ASSERT_RC(dynshm_attach(inst, test_random_handle(), &seg), -ENOENT);
	memset(&l, 0, sizeof(l));
	ASSERT_OK(dynshm_foreach_segment(inst, collect, &l));
	assert_int_equal(l.n, 0);
	ASSERT_OK(dynshm_reap(inst, NULL));
	xdestroy(f, inst);
}

/*
 * A first open that fails (here: mapping the new control segment) leaves
 * nothing: no OS object, no lock file, and no directory if the open made it;
 * a directory the caller made stays, empty.
 */
static void test_failed_open_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	const struct step *last = f->be->create_steps;
	dynshm_config *cfg = make_cfg(f->be->name, 0, 0);
	char path[PATH_MAX];
	dynshm_instance *inst = NULL;
	struct stat st;
	int rc;

	while (last[1].entry)
		last++;
	path_in(f, "made-by-open", path, sizeof(path));
	inject_fail(last->entry, 1, ENOMEM);
	rc = open_cfg(f, "made-by-open", 0, cfg, &inst);
	inject_reset();
	ASSERT_RC(rc, -ENOMEM);
	assert_null(inst);
	if (stat(path, &st) == 0)
		fail_msg("failed open left directory %s", path);

	path_in(f, "made-by-caller", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	inject_fail(last->entry, 1, ENOMEM);
	rc = open_cfg(f, "made-by-caller", 0, cfg, &inst);
	inject_reset();
	ASSERT_RC(rc, -ENOMEM);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(rmdir(path), 0); /* so: empty */

	/* and the next open of the same place works */
	inst = xopen(f, "made-by-open");
	xdestroy(f, inst);
	dynshm_config_free(cfg);
}

/* ---- 14. configuration, 17. dynshm_strerror ---------------------------------- */

static void expect_refused(dynshm_config *cfg, const char *key,
			   const char *value, const char *kept)
{
	char buf[PATH_MAX];

	dynshm_clear_error();
	if (dynshm_config_set(cfg, key, value) != -EINVAL)
		fail_msg("%s = '%s' was not refused", key, value);
	if (!strstr(dynshm_last_error(), key))
		fail_msg("message '%s' does not name the key %s",
			 dynshm_last_error(), key);
	if (value[0] && !strstr(dynshm_last_error(), value))
		fail_msg("message '%s' does not name the value '%s'",
			 dynshm_last_error(), value);
	ASSERT_OK(dynshm_config_get(cfg, key, buf, sizeof(buf)));
	assert_string_equal(buf, kept);
}

static void test_config(void **state)
{
	static const char *const counts[] = { "max_segments", "max_processes" };
	static const char *const bad_counts[] = {
		"-3", "0", "abc", "", "12abc", " 5", "1.5", "0x10",
		"99999999999999999999999",
	};
	dynshm_config *cfg = NULL;
	char buf[PATH_MAX];

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));

	/* the backend: every name round-trips, a typo is refused */
	for (size_t i = 0; i < N_BACKENDS; i++) {
		ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					 backends[i].name));
		ASSERT_OK(dynshm_config_get(cfg, "dynamic_shared_memory_type",
					 buf, sizeof(buf)));
		assert_string_equal(buf, backends[i].name);
	}
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type", "mmap"));
	expect_refused(cfg, "dynamic_shared_memory_type", "posx", "mmap");
	expect_refused(cfg, "dynamic_shared_memory_type", "posix2", "mmap");
	ASSERT_MSG_HAS("posix"); /* what is allowed */

	for (size_t k = 0; k < 2; k++) {
		ASSERT_OK(dynshm_config_set(cfg, counts[k], "17"));
		ASSERT_OK(dynshm_config_get(cfg, counts[k], buf, sizeof(buf)));
		assert_string_equal(buf, "17");
		for (size_t i = 0; i < sizeof(bad_counts) / sizeof(char *);
		     i++)
			expect_refused(cfg, counts[k], bad_counts[i], "17");
		ASSERT_OK(dynshm_config_set(cfg, counts[k], "1"));
		ASSERT_OK(dynshm_config_get(cfg, counts[k], buf, sizeof(buf)));
		assert_string_equal(buf, "1");
	}

	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", "/srv/dsm"));
	ASSERT_OK(dynshm_config_get(cfg, "dynshm_directory", buf, sizeof(buf)));
	assert_string_equal(buf, "/srv/dsm");
	expect_refused(cfg, "dynshm_directory", "relative/dir", "/srv/dsm");
	expect_refused(cfg, "dynshm_directory", "dsm", "/srv/dsm");
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", ""));
	ASSERT_OK(dynshm_config_get(cfg, "dynshm_directory", buf, sizeof(buf)));
	assert_string_equal(buf, "");

	/* unknown keys: refused and named, and change nothing */
	dynshm_clear_error();
	ASSERT_RC(dynshm_config_set(cfg, "max_segment", "10"), -EINVAL);
	ASSERT_MSG_HAS("max_segment");
	ASSERT_RC(dynshm_config_set(cfg, "dynamic_shared_memory", "posix"),
		  -EINVAL);
	ASSERT_MSG_HAS("dynamic_shared_memory");
	ASSERT_RC(dynshm_config_get(cfg, "max_segment", buf, sizeof(buf)),
		  -EINVAL);
	ASSERT_RC(dynshm_config_set(cfg, NULL, "1"), -EINVAL);
	ASSERT_RC(dynshm_config_set(cfg, "max_segments", NULL), -EINVAL);
	ASSERT_RC(dynshm_config_set(NULL, "max_segments", "1"), -EINVAL);
	ASSERT_OK(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf,
				 sizeof(buf)));
	assert_string_equal(buf, "mmap");
	assert_true(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf,
				   2) < 0);
	dynshm_config_free(cfg);
	dynshm_config_free(NULL);
}

static void test_strerror(void **state)
{
	static const int codes[] = { 0,	      -ENOENT, -ENOSPC, -EUCLEAN,
				     -EINVAL, -EEXIST, -12345,  -99999,
				     ENOENT,  777 };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(int); i++) {
		const char *s = dynshm_strerror(codes[i]);

		if (!s || !s[0])
			fail_msg("dynshm_strerror(%d) is empty", codes[i]);
	}
	assert_string_not_equal(dynshm_strerror(-ENOENT), dynshm_strerror(-ENOSPC));
	assert_string_not_equal(dynshm_strerror(0), dynshm_strerror(-ENOENT));
}

/* ---- groups -------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

static int run_common(const char *name)
{
	const struct CMUnitTest tests[] = {
		T(test_cross_process_fork),
		T(test_cross_process_exec),
		T(test_join_by_name),
		T(test_pin),
		T(test_destroy_segment),
		T(test_kill9_reap),
		T(test_stale_handles),
		T(test_two_instances),
		T(test_attach_twice),
		T(test_on_detach),
		T(test_on_detach_at_exit),
		T(test_scopes),
		T(test_scopes_per_thread),
		T(test_fork_child_joins),
		T(test_fork_child_adopts),
		T(test_fork_child_never_releases_parent),
		T(test_fork_destroyed_before_first_call),
		T(test_limits),
		T(test_inspection),
		T(test_joining),
		T(test_reset),
		T(test_open_after_all_killed),
		T(test_threads),
		T(test_fork_while_closing),
		T(test_injected_create),
		T(test_injected_attach),
		T(test_injected_remove),
		T(test_bad_arguments),
		T(test_failed_open_leaves_nothing),
	};

	return cmocka_run_group_tests_name(name, tests, group_setup,
					   group_teardown);
}

static int run_posix(void)
{
	return run_common("wrapper/posix");
}

static int run_sysv(void)
{
	return run_common("wrapper/sysv");
}

static int run_mmap(void)
{
	const struct CMUnitTest tests[] = { T(test_mmap_directory) };

	return run_common("wrapper/mmap") +
	       cmocka_run_group_tests_name("wrapper/mmap-directory", tests,
					   group_setup, group_teardown);
}

static int run_none(void)
{
	const struct CMUnitTest tests[] = { T(test_none) };

	return cmocka_run_group_tests_name("wrapper/none", tests, group_setup,
					   group_teardown);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest api[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_strerror),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG; /* children too: they run main */
	rc = test_child_main(argc, argv, children);
	if (rc >= 0)
		return rc;
	/* e.g. DYNSHM_TEST_FILTER='test_pin*' to run some tests only */
	if (getenv("DYNSHM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DYNSHM_TEST_FILTER"));
	rc = cmocka_run_group_tests_name("wrapper/config", api, NULL, NULL);
	for (size_t i = 0; i < N_BACKENDS; i++) {
		current = &backends[i];
		rc += current->run();
	}
	return rc || fixture_failures ? 1 : 0;
}
