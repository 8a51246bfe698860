/* SPDX-License-Identifier: MIT */
/*
 * test_liveness.c - no live process is ever reaped (issue 12).
 *
 * A process is dead only when the kernel has dropped the OFD lock it held
 * for its process-table entry (src/liveness.c).  Each test below is a way
 * the old rule - pid and start time read from /proc - took a live process
 * for dead and destroyed what it mapped, or a way a process released
 * behind its back then wrote to state it no longer owned:
 *
 *   a process in its own PID namespace (and its own /proc)   test_pid_namespace
 *     reaps nobody of the host; it does reap a host process
 *     once that is SIGKILLed (root: CLONE_NEWPID, CLONE_NEWNS)
 *   a leader thread that called pthread_exit while another   test_leader_exit
 *     thread runs: not reaped; reaped after the last one
 *   a reaper whose descriptor table is full reaps nobody;    test_full_descriptor_table
 *     a forked child that adopts at a full table is not
 *     reaped later
 *   /proc hidden (an empty mount over it, private mount      test_no_proc
 *     namespace; root): no false reap
 *   clocks ten days ahead (a time namespace; root): no       test_time_namespace
 *     false reap, the host's death seen from inside (a
 *     liveness that compared /proc start times, which the
 *     namespace shifts, would fail it)
 *   a process released behind its back gets -ESTALE, does    test_released_behind_back
 *     not publish another's half-initialised named segment
 *     (its init ran once, ours once), and its close leaves
 *     another process's entry alone
 *   a forked child that makes no call keeps its region       test_fork_child_keeps_region
 *     memory while the parent destroys it, creates another
 *     and dies; it goes when the child exits
 *   ... also when its fork made no FORK entry: the parent's  test_fork_without_entry_keeps_region
 *     detach and its clean leave keep the entry's references
 *     while the child shares its lock
 *   an error asking the kernel (fcntl, or the fstat that      test_check_errors
 *     makes sure "no lock" is about our file) reaps nobody
 *   a fork that cannot make its FORK entry (no descriptor)   test_fork_without_entry
 *     still gives the child its mappings at its first call
 *   dynshm_proc_self / dynshm_proc_alive                     test_tokens
 *   the control lock between PID namespaces: a namespaced     test_lock_across_pid_namespaces
 *     process waits for a host holder and takes the lock
 *     over when that one is SIGKILLed, and the reverse (root)
 *   dynshm_reap counts a dead lock holder that its own lock  test_reap_counts_repair
 *     take released in the repair
 *   the same for a hash table's partition lock (the area's   test_hash_lock_across_pid_namespaces
 *     locks are the same token lock)
 *
 * The first six fail on the tree before the change (five reap or publish
 * what they must not; the sixth hands the block to the new segment); the
 * last three test what it adds.  Tests needing root or namespaces skip
 * with the reason.
 */
#include "inject.h"
#include "testutil.h"

#include "src/control.h"
#include "src/wrapper.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define NSEGS 4

#ifdef TEST_OLD_TREE /* built against the tree before the change */
#define dynshm_proc_self(i, t) ((void)(i), (void)(t), -ENOSYS)
#define dynshm_proc_alive(i, t) ((void)(i), (void)(t), -ENOSYS)
#endif

struct fixture {
	char *dir;
	char path[4096];
	dynshm_config *cfg;
	dynshm_instance *inst; /* the test's own entry */
	pid_t kids[8];
	int nkids;
};

static struct fixture fx;

#define ASSERT_OK(expr)                                                        \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ != 0)                                                  \
			fail_msg("%s: %d (%s)", #expr, rc_, dynshm_last_error()); \
	} while (0)

/* ---- helpers ------------------------------------------------------------ */

static void make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
}

static int put(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

static int get(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* Pipe ends the next child must not keep (so that it sees EOF). */
static int parent_fds[4];
static int nparent_fds;

static void parent_only(int fd)
{
	parent_fds[nparent_fds++] = fd;
}

static pid_t start(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < nparent_fds; i++)
			close(parent_fds[i]);
		_exit(fn(arg));
	}
	nparent_fds = 0;
	fx.kids[fx.nkids++] = pid;
	return pid;
}

static int finish(pid_t pid)
{
	for (int i = 0; i < fx.nkids; i++)
		if (fx.kids[i] == pid)
			fx.kids[i] = 0;
	return test_wait(pid);
}

static unsigned reap(dynshm_instance *inst)
{
	unsigned n = 0;

	ASSERT_OK(dynshm_reap(inst, &n));
	return n;
}

static dynshm_instance_info info_of(dynshm_instance *inst)
{
	static dynshm_instance_info info;

	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	return info;
}

static bool exists(dynshm_handle h)
{
	dynshm_segment_info si;

	return dynshm_stat(fx.inst, h, &si, sizeof(si)) == 0;
}

/*
 * A host process: joins, creates NSEGS unpinned segments (mapped only
 * here), sends their handles, then waits for EOF on go.
 */
struct host_arg {
	int out, go;
};

static int host_main(void *arg)
{
	struct host_arg *a = arg;
	dynshm_instance *inst = NULL;
	dynshm_handle h[NSEGS];
	char c;

	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	for (int i = 0; i < NSEGS; i++) {
		dynshm_segment *seg = NULL;

		CHILD_CHECK(dynshm_create(inst, 4096, 0, &seg) == 0);
		h[i] = dynshm_segment_handle(seg);
		memcpy(dynshm_segment_address(seg), &h[i], sizeof(h[i]));
	}
	CHILD_CHECK(put(a->out, h, sizeof(h)) == 0);
	while (read(a->go, &c, 1) > 0)
		;
	return 0;
}

struct host {
	pid_t pid;
	int go; /* close: the host leaves */
	dynshm_handle h[NSEGS];
};

static void start_host(struct host *host)
{
	struct host_arg a;
	int out[2], go[2];

	make_pipe(out);
	make_pipe(go);
	a.out = out[1];
	a.go = go[0];
	parent_only(go[1]);
	host->pid = start(host_main, &a);
	close(out[1]);
	close(go[0]);
	host->go = go[1];
	assert_int_equal(get(out[0], host->h, sizeof(host->h)), 0);
	close(out[0]);
}

/* Every host segment is still there, attachable, with its own data. */
static void assert_host_intact(const struct host *host, const char *after)
{
	for (int i = 0; i < NSEGS; i++) {
		dynshm_segment *seg = NULL;
		int rc = dynshm_attach(fx.inst, host->h[i], &seg);

		if (rc != 0)
			fail_msg("%s: a live host's segment %d: %d (%s)", after,
				 i, rc, dynshm_last_error());
		assert_memory_equal(dynshm_segment_address(seg), &host->h[i],
				    sizeof(host->h[i]));
		ASSERT_OK(dynshm_detach(seg));
	}
}

static void kill_host(struct host *host)
{
	kill(host->pid, SIGKILL);
	assert_int_equal(finish(host->pid), 128 + SIGKILL);
	close(host->go);
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.dir = test_make_dir();
	if (!fx.dir)
		return -1;
	snprintf(fx.path, sizeof(fx.path), "%s/inst", fx.dir);
	if (dynshm_config_new(&fx.cfg) != 0 ||
	    dynshm_config_set(fx.cfg, "dynamic_shared_memory_type", "posix") !=
		    0 ||
	    dynshm_config_set(fx.cfg, "min_dynamic_shared_memory", "1MB") != 0)
		return -1;
	return dynshm_instance_open(fx.path, fx.cfg, 0, &fx.inst) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char report[4096];
	int bad = 0;

	(void)state;
	for (int i = 0; i < fx.nkids; i++)
		if (fx.kids[i] > 0) {
			kill(fx.kids[i], SIGKILL);
			test_wait(fx.kids[i]);
		}
	if (fx.inst && dynshm_instance_destroy(fx.inst) != 0)
		bad++;
	dynshm_config_free(fx.cfg);
	if (test_remove_dir(fx.dir) < 0)
		bad++;
	if (test_count_leftovers(report, sizeof(report)) != 0) {
		fprintf(stderr, "leftovers:\n%s", report);
		bad++;
	}
	return bad ? -1 : 0;
}

/* ---- PID namespace, /proc hidden ------------------------------------------ */

/*
 * In a new PID namespace with its own /proc (as `unshare -p -f
 * --mount-proc` makes it), or with /proc hidden under an empty tmpfs:
 * join, reap, report how many were reaped; then, told to, reap again.
 */
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif
#define TIME_AHEAD_S "864000"

struct ns_arg {
	int flags; /* CLONE_NEWPID: own pid namespace and /proc */
	int out, in;
};

static int ns_member(struct ns_arg *a)
{
	dynshm_instance *inst = NULL;
	unsigned n = 0;
	char c;

	if (a->flags & CLONE_NEWPID) {
		CHILD_CHECK(getpid() == 1);
		CHILD_CHECK(mount("proc", "/proc", "proc",
				  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0);
	} else if (a->flags & CLONE_NEWTIME) {
		FILE *f = fopen("/proc/self/timens_offsets", "re");
		char line[128];
		bool ahead = false;

		CHILD_CHECK(f != NULL);
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "monotonic", 9) == 0)
				ahead = strstr(line, TIME_AHEAD_S) != NULL;
		fclose(f);
		CHILD_CHECK(ahead); /* its clocks are ten days ahead */
	} else {
		CHILD_CHECK(mount("none", "/proc", "tmpfs", 0, "size=4k") == 0);
	}
	CHILD_CHECK(access("/proc/self/stat", F_OK) != 0 ||
		    (a->flags & (CLONE_NEWPID | CLONE_NEWTIME)));
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	CHILD_CHECK(dynshm_reap(inst, &n) == 0);
	CHILD_CHECK(put(a->out, &n, sizeof(n)) == 0);
	CHILD_CHECK(get(a->in, &c, 1) == 0);
	CHILD_CHECK(dynshm_reap(inst, &n) == 0);
	CHILD_CHECK(put(a->out, &n, sizeof(n)) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

/*
 * Enter a private mount namespace (and flags' others); fn runs in a child
 * (pid 1 if CLONE_NEWPID), whose pid out here goes to pid_fd if >= 0.
 * fn's status, or 77 when namespaces are not permitted.
 */
static int ns_run(int flags, int (*fn)(void *), void *arg, int pid_fd)
{
	int32_t inner;
	pid_t pid;

	if (unshare(CLONE_NEWNS | flags) != 0)
		return 77;
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
		return 77;
	if (flags & CLONE_NEWTIME) {
		/* the children's clocks: set before the first one is made */
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		const char *ahead = "monotonic " TIME_AHEAD_S " 0\n"
				    "boottime " TIME_AHEAD_S " 0\n";
		bool ok = fd >= 0 && write(fd, ahead, strlen(ahead)) ==
					     (ssize_t)strlen(ahead);

		if (fd >= 0)
			close(fd);
		if (!ok)
			return 77;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(fn(arg));
	inner = (int32_t)pid;
	if (pid_fd >= 0 && put(pid_fd, &inner, sizeof(inner)) != 0)
		return 1;
	return test_wait(pid);
}

static int ns_member_of(void *arg)
{
	return ns_member(arg);
}

static int ns_entry(void *arg)
{
	struct ns_arg *a = arg;

	return ns_run(a->flags, ns_member_of, a, -1);
}

static void run_in_namespace(int flags, const char *what)
{
	struct host host;
	struct ns_arg a;
	int out[2], in[2];
	unsigned n = 99;
	pid_t member;

	if (!test_is_root()) {
		print_message("skipped: %s needs root (unshare)\n", what);
		skip();
	}
	start_host(&host);
	make_pipe(out);
	make_pipe(in);
	a.flags = flags;
	a.out = out[1];
	a.in = in[0];
	parent_only(in[1]);
	member = start(ns_entry, &a);
	close(out[1]);
	close(in[0]);
	if (get(out[0], &n, sizeof(n)) != 0) {
		int st = finish(member);

		kill_host(&host);
		if (st == 77) {
			print_message("skipped: %s not permitted here\n", what);
			skip();
		}
		fail_msg("%s: the member failed (status %d)", what, st);
	}
	assert_int_equal(n, 0); /* it reaped nobody: the host lives */
	assert_host_intact(&host, what);
	assert_int_equal(reap(fx.inst), 0);
	kill_host(&host);
	assert_int_equal(put(in[1], "r", 1), 0);
	assert_int_equal(get(out[0], &n, sizeof(n)), 0);
	assert_int_equal(n, 1); /* the killed host, found from inside */
	for (int i = 0; i < NSEGS; i++)
		assert_false(exists(host.h[i]));
	close(in[1]);
	close(out[0]);
	assert_int_equal(finish(member), 0);
	assert_int_equal(info_of(fx.inst).processes, 1);
}

static void test_pid_namespace(void **state)
{
	(void)state;
	run_in_namespace(CLONE_NEWPID, "a PID namespace with its own /proc");
}

static void test_no_proc(void **state)
{
	(void)state;
	run_in_namespace(0, "a mount namespace with /proc hidden");
}

/*
 * Clocks ten days ahead (a time namespace, as CRIU's restored processes
 * have): nothing in liveness reads a clock, and no time stamp of one
 * process is compared with another's clock but CLOCK_REALTIME, which time
 * namespaces leave alone; this keeps it so.
 */
static void test_time_namespace(void **state)
{
	(void)state;
	run_in_namespace(CLONE_NEWTIME, "a time namespace ten days ahead");
}

/* ---- the control lock across PID namespaces ------------------------------ */

/*
 * The old lock, a PI robust mutex, named its owner by thread id: a waiter
 * in another PID namespace could not find that thread (ESRCH) and glibc
 * parked it for good.  One process holds the lock inside an attach (a
 * test hook stops it there); one in the other namespace waits for it; the
 * holder is SIGKILLed; the waiter must go on, repairing.  Both ways round.
 */
extern void (*dynshm_test_hook)(const char *point);

struct nslock_arg {
	int tell; /* -> test: 'w' about to wait, 'h' holding, results */
	int go;	  /* <- test (never written: the holder is killed) */
	int pid;  /* -> test: the namespaced process's pid out here */
	bool hold;
	dynshm_handle h;
};

static struct nslock_arg *holding;

static void hold_in_attach(const char *point)
{
	char c = 'h';

	if (strcmp(point, "attach:referenced") != 0)
		return;
	if (put(holding->tell, &c, 1) != 0 || get(holding->go, &c, 1) != 0)
		_exit(1);
	_exit(1);
}

/* Attach a->h and stop inside, holding the control lock. */
static int hold_lock(dynshm_instance *inst, struct nslock_arg *a)
{
	dynshm_segment *seg = NULL;

	holding = a;
	dynshm_test_hook = hold_in_attach;
	(void)dynshm_attach(inst, a->h, &seg);
	return 1; /* the hook never returns */
}

static int host_lock_holder(void *arg)
{
	return hold_lock(fx.inst, arg);
}

/* In the new namespace: hold the lock, or wait for it and report. */
static int nslock_member(struct nslock_arg *a)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	int32_t rc;
	uint64_t repairs;

	CHILD_CHECK(getpid() == 1);
	CHILD_CHECK(mount("proc", "/proc", "proc",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0);
	if (a->hold) {
		CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) ==
			    0);
		return hold_lock(inst, a);
	}
	CHILD_CHECK(put(a->tell, "w", 1) == 0);
	rc = dynshm_instance_open(fx.path, fx.cfg, 0, &inst);
	CHILD_CHECK(put(a->tell, &rc, sizeof(rc)) == 0);
	CHILD_CHECK(rc == 0);
	repairs = info_of(inst).lock_repairs;
	CHILD_CHECK(put(a->tell, &repairs, sizeof(repairs)) == 0);
	rc = dynshm_attach(inst, a->h, &seg);
	CHILD_CHECK(put(a->tell, &rc, sizeof(rc)) == 0);
	CHILD_CHECK(rc == 0 && dynshm_detach(seg) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

static int nslock_member_of(void *arg)
{
	return nslock_member(arg);
}

static int nslock_entry(void *arg)
{
	struct nslock_arg *a = arg;

	return ns_run(CLONE_NEWPID, nslock_member_of, a, a->pid);
}

/* get(), failing the test instead of waiting more than a minute. */
static void get_or_hang(int fd, void *buf, size_t len, const char *what)
{
	struct pollfd pfd = { fd, POLLIN, 0 };

	if (poll(&pfd, 1, 60000) != 1)
		fail_msg("%s: no word in a minute (hung on the lock?)", what);
	assert_int_equal(get(fd, buf, len), 0);
}

static int host_waiter(void *arg)
{
	dynshm_instance_info info;

	(void)arg;
	return dynshm_instance_info_get(fx.inst, &info, sizeof(info)) == 0 ?
		       0 :
		       1;
}

/* Skip the test (with the reason) unless we are root. */
static void need_root(const char *what)
{
	if (!test_is_root()) {
		print_message("skipped: %s need root (unshare)\n", what);
		skip();
	}
}

/*
 * Start entry, which runs a namespaced process: that one's pid out here,
 * or skip if namespaces are not permitted.
 */
static pid_t start_nslock(int (*entry)(void *), struct nslock_arg *a,
			  int tell[2], int pidp[2], pid_t *outer)
{
	int32_t inner = 0;

	make_pipe(tell);
	make_pipe(pidp);
	a->tell = tell[1];
	a->pid = pidp[1];
	*outer = start(entry, a);
	close(tell[1]);
	close(pidp[1]);
	if (get(pidp[0], &inner, sizeof(inner)) != 0) {
		if (finish(*outer) == 77) {
			print_message("skipped: PID namespaces not permitted "
				      "here\n");
			skip();
		}
		fail_msg("the namespaced process did not start");
	}
	close(pidp[0]);
	return (pid_t)inner;
}

/* A host process that holds the lock (fn): its pid, once it holds it. */
static pid_t start_host_holder(int (*fn)(void *), struct nslock_arg *b,
			       int hold_tell[2], int go)
{
	pid_t pid;
	char c = 0;

	make_pipe(hold_tell);
	b->tell = hold_tell[1];
	b->go = go;
	pid = start(fn, b);
	close(hold_tell[1]);
	get_or_hang(hold_tell[0], &c, 1, "host holder");
	assert_int_equal(c, 'h');
	return pid;
}

static void test_lock_across_pid_namespaces(void **state)
{
	struct nslock_arg a = { .go = -1 }, b = { .go = -1 };
	int tell[2], pidp[2], go[2], hold_tell[2], st;
	uint64_t repairs = 0, before;
	dynshm_segment *seg = NULL;
	pid_t holder, outer, inner, waiter;
	int32_t rc = -1;
	char c;

	(void)state;
	need_root("PID namespaces");
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	ASSERT_OK(dynshm_pin_segment(seg));
	a.h = b.h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_detach(seg));
	before = info_of(fx.inst).lock_repairs;
	make_pipe(go);

	/* 1: a host process holds it; the namespaced one waits */
	holder = start_host_holder(host_lock_holder, &b, hold_tell, go[0]);
	a.go = go[0];
	inner = start_nslock(nslock_entry, &a, tell, pidp, &outer);
	get_or_hang(tell[0], &c, 1, "namespaced waiter");
	assert_int_equal(c, 'w');
	assert_true(test_await_lock_wait(inner));
	kill(holder, SIGKILL);
	assert_int_equal(finish(holder), 128 + SIGKILL);
	get_or_hang(tell[0], &rc, sizeof(rc), "namespaced open");
	assert_int_equal(rc, 0);
	get_or_hang(tell[0], &repairs, sizeof(repairs), "namespaced info");
	assert_true(repairs > before); /* it took the lock over */
	get_or_hang(tell[0], &rc, sizeof(rc), "namespaced attach");
	assert_int_equal(rc, 0);
	assert_int_equal(finish(outer), 0);
	close(tell[0]);
	close(hold_tell[0]);

	/* 2: the namespaced one holds it; a host process waits */
	b.hold = true;
	inner = start_nslock(nslock_entry, &b, tell, pidp, &outer);
	get_or_hang(tell[0], &c, 1, "namespaced holder");
	assert_int_equal(c, 'h');
	waiter = start(host_waiter, NULL);
	assert_true(test_await_lock_wait(waiter));
	kill(inner, SIGKILL); /* its namespace's init: the namespace goes */
	st = -1;
	for (int i = 0; i < 60000 && st < 0; i++) {
		struct timespec ms = { 0, 1000000 };

		if (waitpid(waiter, &st, WNOHANG) != waiter) {
			st = -1;
			nanosleep(&ms, NULL);
		}
	}
	if (st < 0)
		fail_msg("the host waiter still waits a minute after the "
			 "namespaced holder was killed");
	for (int i = 0; i < fx.nkids; i++)
		if (fx.kids[i] == waiter)
			fx.kids[i] = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	finish(outer);
	close(tell[0]);
	close(go[0]);
	close(go[1]);
	assert_true(info_of(fx.inst).lock_repairs > repairs);
	ASSERT_OK(dynshm_unpin_segment(fx.inst, a.h));
	assert_false(exists(a.h));
	(void)reap(fx.inst); /* the namespaced holder, if the repair ran first */
	assert_int_equal(info_of(fx.inst).processes, 1);
}

/*
 * dynshm_reap counts a process that its own lock take found dead holding
 * the lock and released in the repair: it said 0 (the repair's reap kept
 * its count), and dsm_demo gc under-reported.
 */
static void test_reap_counts_repair(void **state)
{
	struct nslock_arg b = { .go = -1 };
	dynshm_segment *seg = NULL;
	int hold_tell[2], go[2];
	pid_t holder;

	(void)state;
	/* pinned, not mapped here: the holder's attach is a real one */
	ASSERT_OK(dynshm_create(fx.inst, 4096, DYNSHM_CREATE_PIN, &seg));
	b.h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_detach(seg));
	make_pipe(go);
	holder = start_host_holder(host_lock_holder, &b, hold_tell, go[0]);
	kill(holder, SIGKILL);
	assert_int_equal(finish(holder), 128 + SIGKILL);
	assert_int_equal(reap(fx.inst), 1);
	close(hold_tell[0]);
	close(go[0]);
	close(go[1]);
	ASSERT_OK(dynshm_unpin_segment(fx.inst, b.h));
	assert_false(exists(b.h));
	assert_int_equal(info_of(fx.inst).processes, 1);
}

/*
 * The same for a hash table's partition lock (and so the area's locks,
 * the same token lock, src/facility/tlock.h): they were PI robust mutexes
 * too.  The holder is dynshm_hash_foreach, whose callback blocks with the
 * partition lock held; the waiter looks the same key up.  The namespaced
 * process uses the area and table it inherited (its first call joins).
 */
static dynshm_area *ns_area;
static dynshm_hash *ns_hash;
static const uint64_t ns_key = 7;

static int hold_in_foreach(const void *key, size_t key_len, void *value,
			   void *arg)
{
	(void)key;
	(void)key_len;
	(void)value;
	hold_in_attach(arg ? "attach:referenced" : "");
	return 0;
}

static int hash_holder(void *arg)
{
	holding = arg;
	(void)dynshm_hash_foreach(ns_hash, hold_in_foreach, holding);
	return 1; /* never: the callback stops there */
}

static int hash_waiter(void *arg)
{
	struct nslock_arg *a = arg;
	uint64_t v = 0;
	int32_t rc;

	if (a->hold)
		return hash_holder(a);
	if (put(a->tell, "w", 1) != 0)
		return 1;
	rc = dynshm_hash_find(ns_hash, &ns_key, &v);
	if (rc == 0 && v != ns_key * 3)
		rc = -EBADMSG;
	return put(a->tell, &rc, sizeof(rc)) == 0 && rc == 0 ? 0 : 1;
}

static int nshash_member(void *arg)
{
	CHILD_CHECK(getpid() == 1);
	CHILD_CHECK(mount("proc", "/proc", "proc",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0);
	return hash_waiter(arg);
}

static int nshash_entry(void *arg)
{
	struct nslock_arg *a = arg;

	return ns_run(CLONE_NEWPID, nshash_member, a, a->pid);
}

static void test_hash_lock_across_pid_namespaces(void **state)
{
	struct nslock_arg a = { .go = -1 }, b = { .go = -1 };
	int tell[2], pidp[2], go[2], hold_tell[2];
	uint64_t v = ns_key * 3;
	dynshm_area_ptr table;
	pid_t holder, outer, inner, waiter;
	int32_t rc = -1;
	char c;

	(void)state;
	need_root("PID namespaces");
	ASSERT_OK(dynshm_area_create(fx.inst, 0, 0, &ns_area));
	ASSERT_OK(dynshm_hash_create(ns_area, sizeof(uint64_t),
				     sizeof(uint64_t), &table, &ns_hash));
	ASSERT_OK(dynshm_hash_insert(ns_hash, &ns_key, &v, 0));
	make_pipe(go);

	/* 1: a host process holds the partition; the namespaced one waits */
	b.hold = true;
	holder = start_host_holder(hash_holder, &b, hold_tell, go[0]);
	a.go = go[0];
	inner = start_nslock(nshash_entry, &a, tell, pidp, &outer);
	get_or_hang(tell[0], &c, 1, "namespaced waiter");
	assert_true(test_await_lock_wait(inner));
	kill(holder, SIGKILL);
	assert_int_equal(finish(holder), 128 + SIGKILL);
	get_or_hang(tell[0], &rc, sizeof(rc), "namespaced find");
	assert_int_equal(rc, 0);
	assert_int_equal(finish(outer), 0);
	close(tell[0]);
	close(hold_tell[0]);

	/* 2: the namespaced one holds it; a host process waits */
	inner = start_nslock(nshash_entry, &b, hold_tell, pidp, &outer);
	get_or_hang(hold_tell[0], &c, 1, "namespaced holder");
	assert_int_equal(c, 'h');
	a.hold = false;
	make_pipe(tell);
	a.tell = tell[1];
	waiter = start(hash_waiter, &a);
	close(tell[1]);
	get_or_hang(tell[0], &c, 1, "host waiter");
	assert_true(test_await_lock_wait(waiter));
	kill(inner, SIGKILL); /* its namespace's init: the namespace goes */
	get_or_hang(tell[0], &rc, sizeof(rc), "host find");
	assert_int_equal(rc, 0);
	assert_int_equal(finish(waiter), 0);
	finish(outer);
	close(tell[0]);
	close(hold_tell[0]);
	close(go[0]);
	close(go[1]);
	ASSERT_OK(dynshm_hash_destroy(ns_hash));
	ASSERT_OK(dynshm_area_destroy(ns_area));
	(void)reap(fx.inst);
	assert_int_equal(info_of(fx.inst).processes, 1);
}

/* ---- a leader thread that exited ------------------------------------------- */

struct leader_arg {
	int out, go;
	dynshm_handle h;
};

static void *leader_survivor(void *arg)
{
	struct leader_arg *a = arg;
	char c;

	while (read(a->go, &c, 1) > 0)
		;
	_exit(0); /* the last thread: the process ends */
}

static int leader_main(void *arg)
{
	struct leader_arg *a = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	pthread_t t;

	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	CHILD_CHECK(dynshm_create(inst, 4096, DYNSHM_CREATE_NO_REGION, &seg) ==
		    0);
	a->h = dynshm_segment_handle(seg);
	CHILD_CHECK(pthread_create(&t, NULL, leader_survivor, a) == 0);
	CHILD_CHECK(put(a->out, &a->h, sizeof(a->h)) == 0);
	pthread_exit(NULL); /* /proc/<pid>/stat now says 'Z' */
}

/* The state letter of /proc/<pid>/stat. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	p = p ? strrchr(buf, ')') : NULL;
	return p && p[1] == ' ' ? p[2] : '?';
}

static void test_leader_exit(void **state)
{
	struct leader_arg a;
	int out[2], go[2];
	dynshm_handle h = 0;
	pid_t pid;

	(void)state;
	make_pipe(out);
	make_pipe(go);
	a.out = out[1];
	a.go = go[0];
	parent_only(go[1]);
	pid = start(leader_main, &a);
	close(out[1]);
	close(go[0]);
	assert_int_equal(get(out[0], &h, sizeof(h)), 0);
	close(out[0]);
	/* until the leader is gone (a liveness wait, bounded) */
	for (int i = 0; i < 10000 && proc_state(pid) != 'Z'; i++)
		usleep(1000);
	assert_int_equal(proc_state(pid), 'Z');
	assert_int_equal(reap(fx.inst), 0);
	assert_true(exists(h));
	assert_int_equal(info_of(fx.inst).processes, 2);
	close(go[1]); /* the other thread ends the process */
	assert_int_equal(finish(pid), 0);
	assert_int_equal(reap(fx.inst), 1);
	assert_false(exists(h));
	assert_int_equal(info_of(fx.inst).processes, 1);
}

/* ---- a full descriptor table ------------------------------------------------ */

/* Lower RLIMIT_NOFILE to what is open and fill the rest: no fd left. */
static int fill_descriptor_table(void)
{
	struct rlimit rl;
	int fd, max = 0;

	while ((fd = open("/dev/null", O_RDONLY)) >= 0)
		if (fd > max)
			max = fd;
	if (errno != EMFILE && errno != ENFILE)
		return -1;
	/* also the soft limit down to it, so nothing above can be opened */
	rl.rlim_cur = (rlim_t)max + 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	rl.rlim_cur = (rlim_t)max + 1;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	return open("/dev/null", O_RDONLY) < 0 && errno == EMFILE ? 0 : -1;
}

struct full_arg {
	int out, go;
	dynshm_instance *inherited; /* adopt this one at a full table */
	dynshm_handle h;
};

/* A reaper with no descriptor left: dynshm_reap releases nobody. */
static int full_reaper(void *arg)
{
	struct full_arg *a = arg;
	dynshm_instance *inst = NULL;
	unsigned n = 99;

	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	CHILD_CHECK(fill_descriptor_table() == 0);
	CHILD_CHECK(dynshm_reap(inst, &n) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0); /* needs none either */
	CHILD_CHECK(put(a->out, &n, sizeof(n)) == 0);
	return 0;
}

/* A forked child whose first call comes at a full table. */
static int full_adopter(void *arg)
{
	struct full_arg *a = arg;
	dynshm_segment_info si;
	char c;

	CHILD_CHECK(fill_descriptor_table() == 0);
	CHILD_CHECK(dynshm_stat(a->inherited, a->h, &si, sizeof(si)) == 0);
	CHILD_CHECK(put(a->out, "j", 1) == 0);
	while (read(a->go, &c, 1) > 0)
		;
	return 0;
}

static void test_full_descriptor_table(void **state)
{
	struct host host;
	struct full_arg a;
	dynshm_segment *seg = NULL;
	int out[2], go[2];
	unsigned n = 99;
	pid_t pid;
	char c = 0;

	(void)state;
	start_host(&host);
	make_pipe(out);
	a.out = out[1];
	pid = start(full_reaper, &a);
	close(out[1]);
	assert_int_equal(get(out[0], &n, sizeof(n)), 0);
	close(out[0]);
	assert_int_equal(finish(pid), 0);
	assert_int_equal(n, 0);
	assert_host_intact(&host, "after a reap at a full descriptor table");

	/* a forked child adopting its parent's references at a full table */
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	make_pipe(out);
	make_pipe(go);
	a.out = out[1];
	a.go = go[0];
	a.inherited = fx.inst;
	a.h = dynshm_segment_handle(seg);
	parent_only(go[1]);
	pid = start(full_adopter, &a);
	close(out[1]);
	close(go[0]);
	assert_int_equal(get(out[0], &c, 1), 0);
	close(out[0]);
	ASSERT_OK(dynshm_detach(seg));
	/* it joined: a reap by anyone leaves it, and its reference */
	assert_int_equal(reap(fx.inst), 0);
	assert_int_equal(info_of(fx.inst).processes, 3); /* us, host, child */
	assert_true(exists(a.h));
	assert_host_intact(&host, "after the full-table child joined");
	close(go[1]);
	assert_int_equal(finish(pid), 0); /* _exit: it leaves by dying */
	kill_host(&host);
	assert_int_equal(reap(fx.inst), 2);
	assert_false(exists(a.h));
}

/* ---- released behind its back ---------------------------------------------- */

/*
 * What a buggy or older reaper once did to a live process: free its
 * entry under the lock (row cleared, gen moved on).  Only this test
 * does it; the library never does to a process whose lock is held.
 */
static void force_release(dynshm_instance *inst, pid_t pid)
{
	struct ctl *c = &inst->c;
	bool found = false;

	assert_int_equal(ctl_lock(inst), 0);
	for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
		if (c->procs[p].state != PROC_LIVE || c->procs[p].pid != pid)
			continue;
		for (uint32_t s = 0; s < c->hdr->max_segments; s++)
			ctl_clear_bit(c, p, s);
#ifndef TEST_OLD_TREE /* (to show the test fails before the change) */
		c->procs[p].gen++;
#endif
		c->procs[p].state = PROC_FREE;
		c->hdr->nprocs--;
		found = true;
	}
	ctl_unlock(inst);
	assert_true(found);
}

struct stale_arg {
	int out, in;
};

static struct stale_arg *stale;

static int init_a(dynshm_segment *seg, void *arg)
{
	char c;

	(void)arg;
	strcpy(dynshm_segment_address(seg), "A");
	/* tell the test we are inside init, and wait to be let go */
	if (put(stale->out, "i", 1) != 0 || get(stale->in, &c, 1) != 0)
		_exit(3);
	return 0;
}

static int stale_main(void *arg)
{
	struct stale_arg *a = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	int created = 0, rc;
	char c;

	stale = a;
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	rc = dynshm_get_named(inst, "stale", 4096, DYNSHM_CREATE_NO_REGION,
			      init_a, NULL, &seg, &created);
	CHILD_CHECK(put(a->out, &rc, sizeof(rc)) == 0);
	CHILD_CHECK(rc != -ESTALE ||
		    strstr(dynshm_last_error(), "released") != NULL ||
		    strstr(dynshm_last_error(), "taken from this process"));
	/* any further call: -ESTALE, nothing changed */
	rc = dynshm_create(inst, 4096, 0, &seg);
	CHILD_CHECK(put(a->out, &rc, sizeof(rc)) == 0);
	CHILD_CHECK(get(a->in, &c, 1) == 0);
	dynshm_instance_close(inst); /* leaves no entry it does not own */
	return 0;
}

struct init_t_arg {
	struct stale_arg *a;
	int out_rd, in_wr;
	int a_rc;
	uint32_t state_after_a;
	dynshm_instance *inst;
};

/* Our init: while it runs, A (released) tries to publish. */
static int init_t(dynshm_segment *seg, void *arg)
{
	struct init_t_arg *t = arg;
	dynshm_handle h = dynshm_segment_handle(seg);
	struct ctl *c = &t->inst->c;

	strcpy(dynshm_segment_address(seg), "T");
	if (put(t->in_wr, "g", 1) != 0 ||
	    get(t->out_rd, &t->a_rc, sizeof(t->a_rc)) != 0)
		return -EIO;
	t->state_after_a =
		c->slots[h & HANDLE_SLOT_MASK].state; /* still CREATING? */
	return 0;
}

static void test_released_behind_back(void **state)
{
	struct stale_arg a;
	struct init_t_arg t;
	dynshm_instance *other = NULL;
	dynshm_segment *named = NULL, *q = NULL;
	dynshm_handle qh;
	int out[2], in[2], created = 0, rc2 = 0;
	char c = 0;
	pid_t pid;

	(void)state;
	make_pipe(out);
	make_pipe(in);
	a.out = out[1];
	a.in = in[0];
	parent_only(in[1]);
	parent_only(out[0]);
	pid = start(stale_main, &a);
	close(out[1]);
	close(in[0]);
	assert_int_equal(get(out[0], &c, 1), 0); /* A is inside its init */
	force_release(fx.inst, pid);

	/* another process joins now (our second entry) and holds Q */
	ASSERT_OK(dynshm_instance_open(fx.path, fx.cfg, 0, &other));
	ASSERT_OK(dynshm_create(other, 4096, DYNSHM_CREATE_NO_REGION, &q));
	qh = dynshm_segment_handle(q);

	/* we take the name over (A's half-made slot is reaped) and init */
	memset(&t, 0, sizeof(t));
	t.out_rd = out[0];
	t.in_wr = in[1];
	t.inst = fx.inst;
	ASSERT_OK(dynshm_get_named(fx.inst, "stale", 4096,
				DYNSHM_CREATE_NO_REGION, init_t, &t, &named,
				&created));
	assert_int_equal(created, 1);
	if (t.a_rc != -ESTALE)
		fail_msg("a released process finishing its create got %d, "
			 "not -ESTALE", t.a_rc);
	/* A published nothing: our slot stayed CREATING during our init */
	assert_int_equal(t.state_after_a, SLOT_CREATING);
	assert_string_equal(dynshm_segment_address(named), "T");
	assert_int_equal(get(out[0], &rc2, sizeof(rc2)), 0);
	assert_int_equal(rc2, -ESTALE);

	/* A closes: it must not release the entry it no longer owns */
	assert_int_equal(put(in[1], "c", 1), 0);
	assert_int_equal(finish(pid), 0);
	close(out[0]);
	close(in[1]);
	{
		dynshm_segment_info si;

		ASSERT_OK(dynshm_stat(fx.inst, qh, &si, sizeof(si)));
		assert_int_equal(si.references, 1); /* other's, untouched */
		ASSERT_OK(dynshm_stat(fx.inst, dynshm_segment_handle(named),
				   &si, sizeof(si)));
		assert_int_equal(si.references, 1); /* ours only */
	}
	assert_int_equal(info_of(fx.inst).processes, 2);
	assert_int_equal(reap(fx.inst), 0);
	ASSERT_OK(dynshm_detach(q));
	ASSERT_OK(dynshm_instance_close(other));
	ASSERT_OK(dynshm_detach(named));
	assert_int_equal(info_of(fx.inst).segments, 0);
}

/* ---- a forked child's region memory ----------------------------------------- */

static void *child_mem; /* C's view of S, inherited across the fork */

/* C: no dynshm call at all; on SIGUSR1, is S still P's pattern? */
static int pattern_child(int ready)
{
	sigset_t set;
	int sig = 0;

	/*
	 * Running: the fork's child handler has let go of P's own lock (else
	 * P would look alive through our copy of its descriptor until then).
	 */
	if (put(ready, "c", 1) != 0)
		return 2;
	close(ready);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigwait(&set, &sig) != 0)
		return 2;
	for (size_t i = 0; i < 65536; i++)
		if (((unsigned char *)child_mem)[i] != 0x5a)
			return 4; /* another segment's data in our memory */
	return 0;
}

/*
 * P: creates region segment S, forks C, destroys and detaches S, creates
 * S2 of the same size, reports both offsets and C's pid, and dies - or,
 * no_entry, forks with no descriptor for C's FORK entry and leaves
 * cleanly.
 */
struct parent_arg {
	int out;
	bool no_entry;
};

static int parent_main(void *arg)
{
	struct parent_arg *pa = arg;
	int *out = &pa->out;
	dynshm_instance *inst = NULL;
	dynshm_segment *s = NULL, *s2 = NULL;
	dynshm_segment_info si;
	uint64_t off[2];
	sigset_t set;
	int ready[2];
	char r;
	pid_t c;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHILD_CHECK(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	CHILD_CHECK(dynshm_create(inst, 65536, DYNSHM_CREATE_REGION, &s) == 0);
	memset(dynshm_segment_address(s), 0x5a, 65536);
	CHILD_CHECK(dynshm_stat(inst, dynshm_segment_handle(s), &si, sizeof(si)) == 0);
	off[0] = si.region_offset;
	child_mem = dynshm_segment_address(s);
	CHILD_CHECK(pipe(ready) == 0);
	if (pa->no_entry)
		inject_fail("openat", 1, EMFILE); /* the FORK entry's */
	fflush(NULL);
	c = fork();
	if (c == 0)
		_exit(pattern_child(ready[1]));
	CHILD_CHECK(c > 0);
	CHILD_CHECK(!pa->no_entry || inject_calls("openat") == 1);
	inject_reset();
	close(ready[1]);
	CHILD_CHECK(get(ready[0], &r, 1) == 0);
	close(ready[0]);
	CHILD_CHECK(dynshm_destroy(inst, dynshm_segment_handle(s)) == 0);
	CHILD_CHECK(dynshm_detach(s) == 0);
	CHILD_CHECK(dynshm_create(inst, 65536, DYNSHM_CREATE_REGION, &s2) == 0);
	memset(dynshm_segment_address(s2), 0xa5, 65536);
	CHILD_CHECK(dynshm_stat(inst, dynshm_segment_handle(s2), &si, sizeof(si)) == 0);
	off[1] = si.region_offset;
	CHILD_CHECK(put(*out, off, sizeof(off)) == 0);
	CHILD_CHECK(put(*out, &c, sizeof(c)) == 0);
	if (pa->no_entry) {
		CHILD_CHECK(dynshm_detach(s2) == 0);
		CHILD_CHECK(dynshm_instance_close(inst) == 0); /* clean */
		return 0;
	}
	raise(SIGKILL); /* P dies without leaving */
	return 0;
}

/*
 * P (parent_main) forks C, which maps S and makes no call; P's new
 * segment, and ours made after P is gone, must not get S's block while C
 * lives.  P dies by SIGKILL (its entry is reaped, C's FORK entry holds S),
 * or - no_entry - its fork could make no FORK entry, and it leaves cleanly
 * (C holds S through P's own entry, which must outlive P's detach and
 * leave).  Then S goes when C does.
 */
static void run_child_keeps_region(bool no_entry)
{
	dynshm_segment *s3 = NULL;
	dynshm_segment_info si;
	uint64_t off[2];
	struct parent_arg pa = { -1, no_entry };
	int out[2];
	pid_t p, c;

	/* C outlives P: reparented to us, so that we can wait for it */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	make_pipe(out);
	pa.out = out[1];
	p = start(parent_main, &pa);
	close(out[1]);
	assert_int_equal(get(out[0], off, sizeof(off)), 0);
	assert_int_equal(get(out[0], &c, sizeof(c)), 0);
	close(out[0]);
	assert_int_equal(finish(p), no_entry ? 0 : 128 + SIGKILL);
	fx.kids[fx.nkids++] = c; /* ours now, for the teardown */
	if (off[0] == off[1])
		fail_msg("P's new segment got the block (offset %llu) that its "
			 "forked child still maps", (unsigned long long)off[0]);
	/*
	 * Killed, P is reaped (its child holds S through its FORK entry);
	 * left, nothing is: C still holds P's entry.
	 */
	assert_int_equal(reap(fx.inst), no_entry ? 0 : 1);
	ASSERT_OK(dynshm_create(fx.inst, 65536, DYNSHM_CREATE_REGION, &s3));
	memset(dynshm_segment_address(s3), 0xee, 65536);
	ASSERT_OK(dynshm_stat(fx.inst, dynshm_segment_handle(s3), &si,
			      sizeof(si)));
	if (si.region_offset == off[0])
		fail_msg("with P gone, a new segment got the block (offset "
			 "%llu) that P's child still maps",
			 (unsigned long long)off[0]);
	assert_int_equal(kill(c, SIGUSR1), 0);
	assert_int_equal(finish(c), 0); /* its memory was never reused */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	ASSERT_OK(dynshm_detach(s3));
	/*
	 * The child is gone: what it inherited goes at the next reap, which
	 * finds P's entry dead with it (no_entry) - a FORK entry that never
	 * was a process is not counted.
	 */
	assert_int_equal(reap(fx.inst), no_entry ? 1 : 0);
	assert_int_equal(info_of(fx.inst).segments, 0);
}

static void test_fork_child_keeps_region(void **state)
{
	(void)state;
	run_child_keeps_region(false);
}

static void test_fork_without_entry_keeps_region(void **state)
{
	(void)state;
	run_child_keeps_region(true);
}

/* ---- errors while checking, and a fork that cannot make its entry ------------ */

/* Any error asking the kernel is doubt, and doubt is life. */
static void test_check_errors(void **state)
{
	struct host host;

	(void)state;
	start_host(&host);
	kill_host(&host); /* dead: its lock is gone */
	inject_fail_from("fcntl", 1, ENOLCK);
	assert_int_equal(reap(fx.inst), 0);
	inject_reset();
	/* "no lock" is believed only of the file our descriptor still is */
	inject_fail_from("fstat", 1, EIO);
	assert_int_equal(reap(fx.inst), 0);
	inject_reset();
	assert_int_equal(reap(fx.inst), 1);
	for (int i = 0; i < NSEGS; i++)
		assert_false(exists(host.h[i]));
}

static int fallback_child(void *arg)
{
	dynshm_handle h = *(dynshm_handle *)arg;
	dynshm_segment_info si;

	/* no FORK entry: the first call joins afresh and adopts */
	CHILD_CHECK(dynshm_stat(fx.inst, h, &si, sizeof(si)) == 0);
	CHILD_CHECK(si.references == 2);
	return 0;
}

/* No descriptor for a FORK entry: the fork goes on, the child joins later. */
static void test_fork_without_entry(void **state)
{
	dynshm_segment *seg = NULL;
	dynshm_handle h;
	pid_t pid;

	(void)state;
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	h = dynshm_segment_handle(seg);
	inject_fail("openat", 1, EMFILE); /* the FORK entry's descriptor */
	pid = start(fallback_child, &h);
	assert_int_equal(inject_calls("openat"), 1);
	inject_reset();
	assert_int_equal(finish(pid), 0);
	assert_int_equal(reap(fx.inst), 1); /* it _exit()ed, joined */
	/*
	 * We cannot tell whether a child still shares our entry, so what we
	 * mapped at that fork keeps its reference past our detach, until our
	 * entry goes (test_fork_without_entry_keeps_region says why).
	 */
	ASSERT_OK(dynshm_detach(seg));
	assert_true(exists(h));
}

/* ---- tokens ------------------------------------------------------------------ */

static int token_child(void *arg)
{
	int *fds = arg;
	uint64_t tok = 0;
	char c;

	CHILD_CHECK(dynshm_proc_self(fx.inst, &tok) == 0);
	CHILD_CHECK(put(fds[0], &tok, sizeof(tok)) == 0);
	CHILD_CHECK(dynshm_proc_alive(fx.inst, tok) == 1);
	while (read(fds[1], &c, 1) > 0)
		;
	return 0;
}

static void test_tokens(void **state)
{
	dynshm_segment *seg = NULL;
	uint64_t self = 0, kid = 0;
	int out[2], go[2], fds[2];
	pid_t pid;

	(void)state;
#ifdef TEST_OLD_TREE
	skip();
#endif
	ASSERT_OK(dynshm_proc_self(fx.inst, &self));
	assert_true(self != 0);
	assert_int_equal(dynshm_proc_alive(fx.inst, self), 1);
	assert_int_equal(dynshm_proc_alive(fx.inst, 0), -EINVAL);
	assert_int_equal(dynshm_proc_alive(fx.inst, 0xffffffffull), -EINVAL);
	assert_int_equal(dynshm_proc_self(fx.inst, NULL), -EINVAL);
	/* a forked child (holding our references) gets a token of its own */
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	make_pipe(out);
	make_pipe(go);
	fds[0] = out[1];
	fds[1] = go[0];
	parent_only(go[1]);
	pid = start(token_child, fds);
	close(out[1]);
	close(go[0]);
	assert_int_equal(get(out[0], &kid, sizeof(kid)), 0);
	close(out[0]);
	assert_true(kid != 0 && kid != self);
	assert_int_equal(dynshm_proc_alive(fx.inst, kid), 1);
	kill(pid, SIGKILL);
	assert_int_equal(finish(pid), 128 + SIGKILL);
	close(go[1]);
	/* dead: 0 at once, before any reap; and after it (never reused) */
	assert_int_equal(dynshm_proc_alive(fx.inst, kid), 0);
	assert_int_equal(reap(fx.inst), 1);
	assert_int_equal(dynshm_proc_alive(fx.inst, kid), 0);
	assert_int_equal(dynshm_proc_alive(fx.inst, self), 1);
	ASSERT_OK(dynshm_detach(seg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pid_namespace, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_namespace, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_leader_exit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_descriptor_table,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_released_behind_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_child_keeps_region,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_fork_without_entry_keeps_region, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fork_without_entry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reap_counts_repair, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_across_pid_namespaces,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_hash_lock_across_pid_namespaces, setup, teardown),
	};

	dynshm_test_instance_tag = TEST_TAG;
	return cmocka_run_group_tests_name("liveness", tests, NULL, NULL);
}
