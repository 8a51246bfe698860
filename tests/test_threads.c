/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - threads of one process against one instance: a thread
 * cancelled inside a call, and scopes of two threads on one segment
 * (issue 13, items 3 and 7).
 *
 * Cancellation.  open, read, close, fsync and nanosleep are cancellation
 * points, and the library calls them holding its per-instance mutex (not
 * robust: a thread that exits holding it blocks every other thread for
 * good), the control lock, the instance's flock, or half-way through a
 * lifetime step.  Each case makes one system call of one public call block
 * deterministically: the entry of the system-call table (src/sys.h) is
 * replaced by a stub that, in the victim thread only, says "inside" and
 * then polls pthread_testcancel() until the test releases it.  The test
 * cancels the victim while it is inside, releases it, joins it, and then
 * checks that nothing is left held: the instance mutex and the control lock
 * can be taken (the control lock not as EOWNERDEAD), the instance can be
 * opened again (its flock is free), no descriptor leaked, and the instance
 * still works.  A library that let the cancellation act kills the thread
 * inside the stub, with whatever it held.
 *
 * Scopes.  A scope undoes the attaches made inside it, not the mapping: a
 * thread that attached the same segment itself keeps it mapped.
 *
 * Own seat.  The control lock held under this process's own seat by a
 * call other than the one asking (a signal handler's, or a process that
 * shares the seat after replacing its descriptor) is refused, never taken
 * over.
 *
 * alarm() is a hang detector only; nothing measures time.
 */
#include "testutil.h"

#include "src/sys.h"
#include "src/wrapper.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm_assert.h"

#define HANG_SECONDS 60

static void on_alarm(int sig)
{
	static const char msg[] = "test_threads: HANG DETECTED (alarm)\n";

	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* ---- fixture --------------------------------------------------------------- */

static struct test_fixture fx;

static int setup(void **state)
{
	if (test_fixture_setup(&fx, true, "posix", "max_segments", "16",
			       (char *)NULL))
		return -1;
	if (!*state) /* else a case of test_cancel */
		*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dynshm_sys_reset();
	return test_fixture_teardown(&fx, false, "teardown");
}

/* ---- the blocking stub ------------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
								 ...);

static struct dynshm_sys real;
static _Thread_local bool is_victim;
static atomic_bool armed, released;
static sem_t inside;

/* In the victim, once: say "inside", then wait, cancellable, for release. */
static void block_point(void)
{
	struct timespec ts = { 0, 200000 };

	if (!is_victim || !atomic_exchange(&armed, false))
		return;
	sem_post(&inside);
	while (!atomic_load(&released)) {
		pthread_testcancel();
		nanosleep(&ts, NULL); /* a cancellation point too */
	}
}

static int stub_open(const char *path, int flags, mode_t mode)
{
	block_point();
	return real.open(path, flags, mode);
}

static int stub_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	block_point();
	return real.openat(dirfd, path, flags, mode);
}

static ssize_t stub_read(int fd, void *buf, size_t len)
{
	block_point();
	return real.read(fd, buf, len);
}

static int stub_fcntl(int fd, int cmd, void *arg)
{
	block_point();
	return real.fcntl(fd, cmd, arg);
}

static int stub_close(int fd)
{
	block_point();
	return real.close(fd);
}

static int stub_fsync(int fd)
{
	block_point();
	return real.fsync(fd);
}

static int stub_shm_open(const char *name, int oflag, mode_t mode)
{
	block_point();
	return real.shm_open(name, oflag, mode);
}

static int stub_shm_unlink(const char *name)
{
	block_point();
	return real.shm_unlink(name);
}

static int stub_nanosleep(const struct timespec *req, struct timespec *rem)
{
	block_point();
	return real.nanosleep(req, rem);
}

static void arm(const char *entry)
{
	real = dynshm_sys;
	atomic_store(&released, false);
	atomic_store(&armed, true);
	if (strcmp(entry, "open") == 0)
		dynshm_sys.open = stub_open;
	else if (strcmp(entry, "openat") == 0)
		dynshm_sys.openat = stub_openat;
	else if (strcmp(entry, "read") == 0)
		dynshm_sys.read = stub_read;
	else if (strcmp(entry, "close") == 0)
		dynshm_sys.close = stub_close;
	else if (strcmp(entry, "fcntl") == 0)
		dynshm_sys.fcntl = stub_fcntl;
	else if (strcmp(entry, "fsync") == 0)
		dynshm_sys.fsync = stub_fsync;
	else if (strcmp(entry, "shm_open") == 0)
		dynshm_sys.shm_open = stub_shm_open;
	else if (strcmp(entry, "shm_unlink") == 0)
		dynshm_sys.shm_unlink = stub_shm_unlink;
	else if (strcmp(entry, "nanosleep") == 0)
		dynshm_sys.nanosleep = stub_nanosleep;
	else
		die("no stub for %s", entry);
}

/* ---- the cases ------------------------------------------------------------------ */

struct victim {
	const char *what;
	const char *entry;
	int (*op)(struct victim *v);
	dynshm_instance *other;	/* a second join of the instance, if any */
	dynshm_handle handle;	/* a segment to use */
	dynshm_segment *seg;
	int fds; /* descriptors before the case (0: count in run_case) */
	int rc;
};

static int op_open(struct victim *v)
{
	dynshm_instance *i = NULL;
	int rc = dynshm_instance_open(fx.path, fx.cfg, 0, &i);

	if (rc == 0)
		rc = dynshm_instance_close(i);
	(void)v;
	return rc;
}

/* The first open of a new instance: state file written and fsynced. */
static int op_open_new(struct victim *v)
{
	char path[PATH_MAX + 8];
	dynshm_instance *i = NULL;
	int rc;

	(void)v;
	snprintf(path, sizeof(path), "%s/new", fx.dir);
	rc = dynshm_instance_open(path, fx.cfg, 0, &i);
	if (rc == 0)
		rc = dynshm_instance_destroy(i);
	return rc;
}

static int op_create(struct victim *v)
{
	dynshm_segment *seg = NULL;
	int rc = dynshm_create(fx.inst, 4096, 0, &seg);

	(void)v;
	if (rc == 0)
		rc = dynshm_detach(seg);
	return rc;
}

static int op_attach(struct victim *v)
{
	dynshm_segment *seg = NULL;
	int rc = dynshm_attach(fx.inst, v->handle, &seg);

	if (rc == 0)
		rc = dynshm_detach(seg);
	return rc;
}

/* The last detach removes the object (shm_unlink) under the mutex. */
static int op_detach_last(struct victim *v)
{
	return dynshm_detach(v->seg);
}

/* A full reap asks the kernel about the other entry (F_OFD_GETLK,
 * liveness.c) with the control lock held. */
static int op_reap(struct victim *v)
{
	(void)v;
	return dynshm_reap(fx.inst, NULL);
}

static int op_close(struct victim *v)
{
	dynshm_instance *i = v->other;

	v->other = NULL;
	return dynshm_instance_close(i);
}

static void *victim_main(void *arg)
{
	struct victim *v = arg;

	is_victim = true;
	v->rc = v->op(v);
	pthread_testcancel(); /* the pending cancellation acts here */
	return NULL;
}

/*
 * Each case runs in a forked child (its first call joins the instance as a
 * process of its own), so that whatever a cancelled thread leaves held
 * dies with the child and the next case starts clean.  In the child: no
 * CMocka asserts, die() instead.
 */
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
								 ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "child: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (last error: %s)\n", dynshm_last_error());
	_exit(1);
}

#define CK_OK(expr)                                                            \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ != 0)                                                  \
			die("%s = %d", #expr, rc_);                            \
	} while (0)

static void check_nothing_held(const char *what)
{
	char lock[PATH_MAX + 8];
	dynshm_instance *i = NULL;
	dynshm_segment *seg = NULL;
	int fd, rc;

	rc = pthread_mutex_trylock(&fx.inst->mu);
	if (rc != 0)
		die("%s: the instance mutex is left held (%s)", what,
		    strerror(rc));
	pthread_mutex_unlock(&fx.inst->mu);
	if (__atomic_load_n(&fx.inst->c.hdr->lock_word, __ATOMIC_ACQUIRE))
		die("%s: the control lock was left held", what);
	if (fx.inst->c.hdr->lock_holder != CTL_NONE)
		die("%s: the control lock was left marked held by entry %u",
		    what, fx.inst->c.hdr->lock_holder);
	/* the instance's flock */
	snprintf(lock, sizeof(lock), "%s/lock", fx.path);
	fd = open(lock, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		rc = flock(fd, LOCK_EX | LOCK_NB);
		close(fd);
		if (rc < 0)
			die("%s: the instance's lock file is left locked (%s)",
			    what, strerror(errno));
	}
	CK_OK(dynshm_instance_open(fx.path, fx.cfg, 0, &i));
	CK_OK(dynshm_instance_close(i));
	CK_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	CK_OK(dynshm_detach(seg));
}

static int run_case(struct victim *v)
{
	pthread_t t;
	void *ret = NULL;
	int fds;

	dynshm_sys_reset();
	{
		/* a forked child's first call adopts its parent's references
		 * (its FORK entry, liveness.c): not what is counted here */
		dynshm_instance_info info;

		CK_OK(dynshm_instance_info_get(fx.inst, &info, sizeof(info)));
	}
	fds = v->fds ? v->fds : test_count_fds();
	sem_init(&inside, 0, 0);
	arm(v->entry);
	if (pthread_create(&t, NULL, victim_main, v) != 0)
		die("pthread_create");
	sem_wait(&inside);
	if (pthread_cancel(t) != 0)
		die("pthread_cancel");
	atomic_store(&released, true);
	if (pthread_join(t, &ret) != 0)
		die("pthread_join");
	dynshm_sys_reset();
	printf("%s (blocked in %s): %s\n", v->what, v->entry,
	       ret == PTHREAD_CANCELED && v->rc == 0
		       ? "finished, then cancelled"
		       : "cancelled inside the call");
	check_nothing_held(v->what);
	if (v->other) {
		CK_OK(dynshm_instance_close(v->other));
		v->other = NULL;
	}
	if (test_count_fds() != fds)
		die("%s: %d descriptors before, %d after", v->what, fds,
		    test_count_fds());
	/* the call ran to its end and then the thread was cancelled */
	if (ret != PTHREAD_CANCELED)
		die("%s: the thread was not cancelled at all", v->what);
	if (v->rc != 0)
		die("%s: %d", v->what, v->rc);
	sem_destroy(&inside);
	return 0;
}

static void in_child(int (*fn)(void *))
{
	alarm(HANG_SECONDS);
	assert_int_equal(test_fork(fn, NULL), 0);
	alarm(0);
}

static int case_open_join(void *arg)
{
	struct victim v = { .what = "dynshm_instance_open (join)",
			    .entry = "read",
			    .op = op_open };

	(void)arg;
	return run_case(&v);
}

static int case_open_first(void *arg)
{
	struct victim v = { .what = "dynshm_instance_open (first)",
			    .entry = "fsync",
			    .op = op_open_new };

	(void)arg;
	return run_case(&v);
}

static int case_create(void *arg)
{
	struct victim v = { .what = "dynshm_create",
			    .entry = "shm_open",
			    .op = op_create };

	(void)arg;
	return run_case(&v);
}

static int case_attach(void *arg)
{
	struct victim v = { .what = "dynshm_attach",
			    .entry = "close",
			    .op = op_attach };
	dynshm_segment *seg = NULL;

	(void)arg;
	CK_OK(dynshm_create(fx.inst, 4096, DYNSHM_CREATE_PIN, &seg));
	v.handle = dynshm_segment_handle(seg);
	CK_OK(dynshm_detach(seg));
	run_case(&v);
	CK_OK(dynshm_unpin_segment(fx.inst, v.handle));
	return 0;
}

static int case_detach(void *arg)
{
	struct victim v = { .what = "dynshm_detach (last)",
			    .entry = "shm_unlink",
			    .op = op_detach_last };

	(void)arg;
	CK_OK(dynshm_create(fx.inst, 4096, 0, &v.seg));
	return run_case(&v);
}

static int case_reap(void *arg)
{
	struct victim v = { .what = "dynshm_reap",
			    .entry = "fcntl",
			    .op = op_reap };

	(void)arg;
	CK_OK(dynshm_reap(fx.inst, NULL)); /* join first: fds counted after */
	v.fds = test_count_fds();
	CK_OK(dynshm_instance_open(fx.path, fx.cfg, 0, &v.other));
	return run_case(&v);
}

static int case_close(void *arg)
{
	struct victim v = { .what = "dynshm_instance_close",
			    .entry = "close",
			    .op = op_close };

	(void)arg;
	CK_OK(dynshm_reap(fx.inst, NULL));
	v.fds = test_count_fds();
	CK_OK(dynshm_instance_open(fx.path, fx.cfg, 0, &v.other));
	return run_case(&v);
}

struct cancel_case {
	int (*fn)(void *arg);
};

static const struct cancel_case cases[] = {
	{ case_open_join }, { case_open_first }, { case_create },
	{ case_attach },    { case_detach },	 { case_reap },
	{ case_close },
};

/* One case of cases[], given as CMocka's initial state. */
static void test_cancel(void **state)
{
	const struct cancel_case *c = *state;

	in_child(c->fn);
}

/* ---- scopes across threads ---------------------------------------------------- */

static bool is_mapped(const void *addr)
{
	return test_is_mapped(addr);
}

static unsigned refs_of(dynshm_handle h)
{
	dynshm_segment_info si;

	ASSERT_OK(dynshm_stat(fx.inst, h, &si, sizeof(si)));
	return si.references;
}

struct scoped_thread {
	dynshm_handle handle;
	int attaches; /* inside the scope */
	sem_t attached, end;
	int rc;
};

/* Attach inside a scope of its own, wait, end the scope. */
static void *scoped_main(void *arg)
{
	struct scoped_thread *t = arg;
	dynshm_scope *scope = NULL;
	dynshm_segment *seg = NULL;

	t->rc = dynshm_scope_begin(fx.inst, &scope);
	for (int i = 0; t->rc == 0 && i < t->attaches; i++)
		t->rc = dynshm_attach(fx.inst, t->handle, &seg);
	sem_post(&t->attached);
	sem_wait(&t->end);
	if (t->rc == 0)
		t->rc = dynshm_scope_end(scope);
	return NULL;
}

/*
 * Thread A attaches inside its scope; the main thread (B) attaches the same
 * segment outside any scope, before or after A; A's scope ends: B's attach
 * keeps the mapping, and B's detach is the last.
 */
static void scope_case(bool b_first, int a_attaches)
{
	struct scoped_thread a = { 0 };
	dynshm_segment *mine = NULL, *b = NULL;
	pthread_t t;
	void *addr;

	ASSERT_OK(dynshm_create(fx.inst, 4096, DYNSHM_CREATE_PIN, &mine));
	a.handle = dynshm_segment_handle(mine);
	ASSERT_OK(dynshm_detach(mine));
	a.attaches = a_attaches;
	sem_init(&a.attached, 0, 0);
	sem_init(&a.end, 0, 0);
	alarm(HANG_SECONDS);
	if (b_first)
		ASSERT_OK(dynshm_attach(fx.inst, a.handle, &b));
	assert_int_equal(pthread_create(&t, NULL, scoped_main, &a), 0);
	sem_wait(&a.attached);
	if (!b_first)
		ASSERT_OK(dynshm_attach(fx.inst, a.handle, &b));
	addr = dynshm_segment_address(b);
	memset(addr, 0x5a, 4096);
	sem_post(&a.end);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (a.rc != 0)
		fail_msg("thread A: %d (%s)", a.rc, dynshm_last_error());
	/* A's scope is over: B's attach still maps it and holds it */
	assert_true(is_mapped(addr));
	assert_int_equal(refs_of(a.handle), 1);
	assert_int_equal(((unsigned char *)addr)[4095], 0x5a);
	ASSERT_OK(dynshm_detach(b));
	/* B's was the last attach: unmapped now, reference dropped */
	assert_false(is_mapped(addr));
	assert_int_equal(refs_of(a.handle), 0);
	ASSERT_OK(dynshm_unpin_segment(fx.inst, a.handle));
	alarm(0);
	sem_destroy(&a.attached);
	sem_destroy(&a.end);
}

static void test_scope_other_thread_first(void **state)
{
	(void)state;
	scope_case(true, 1);
}

static void test_scope_other_thread_after(void **state)
{
	(void)state;
	scope_case(false, 1);
	scope_case(false, 3);
}

/*
 * One thread: two attaches inside a scope and one outside; the scope's end
 * undoes its two, the mapping stays for the third.  An explicit detach
 * inside the scope undoes one of the scope's own.
 */
static void test_scope_counts(void **state)
{
	dynshm_segment *seg = NULL, *x = NULL, *out = NULL;
	dynshm_scope *scope = NULL;
	dynshm_handle h;
	void *addr;

	(void)state;
	ASSERT_OK(dynshm_create(fx.inst, 4096, DYNSHM_CREATE_PIN, &seg));
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_scope_begin(fx.inst, &scope));
	ASSERT_OK(dynshm_attach(fx.inst, h, &x));
	ASSERT_OK(dynshm_attach(fx.inst, h, &x));
	ASSERT_OK(dynshm_attach(fx.inst, h, &x));
	ASSERT_OK(dynshm_detach(x)); /* one of the scope's three */
	ASSERT_OK(dynshm_scope_end(scope));
	/* all three were the scope's: gone */
	assert_int_equal(refs_of(h), 0);

	ASSERT_OK(dynshm_attach(fx.inst, h, &out));
	addr = dynshm_segment_address(out);
	ASSERT_OK(dynshm_scope_begin(fx.inst, &scope));
	ASSERT_OK(dynshm_attach(fx.inst, h, &x));
	ASSERT_OK(dynshm_attach(fx.inst, h, &x));
	ASSERT_OK(dynshm_scope_end(scope));
	assert_true(is_mapped(addr));
	assert_int_equal(refs_of(h), 1);
	ASSERT_OK(dynshm_detach(out));
	assert_false(is_mapped(addr));
	ASSERT_OK(dynshm_unpin_segment(fx.inst, h));
}

/* ---- the control lock named by our own seat ------------------------------ */

/*
 * The control lock's word names its holder by seat.  The word naming our
 * own seat while this call does not hold the lock used to be read as "our
 * seat's last owner died holding it", and the lock was taken over - but
 * a seat is claimed once per open, so outside that claim the holder is
 * alive: a call of ours that a signal handler interrupted, or a process
 * that closed or replaced (dup2) its seat's descriptor, whose seat we
 * claimed since.  Two holders then mutate the control segment at once.
 * Refused now with -EDEADLK, and the word left to its holder.
 */
extern void (*dynshm_test_hook)(const char *point);

static int handler_rc = 1;
static uint32_t word_in_handler, word_after_handler;

static void reenter(int sig)
{
	unsigned n;

	(void)sig;
	handler_rc = dynshm_reap(fx.inst, &n);
	word_in_handler = __atomic_load_n(&fx.inst->c.hdr->lock_word,
					  __ATOMIC_RELAXED);
}

static void raise_inside_lock(const char *point)
{
	if (strcmp(point, "create:reserved") != 0)
		return;
	dynshm_test_hook = NULL;
	raise(SIGUSR1);
	word_after_handler = __atomic_load_n(&fx.inst->c.hdr->lock_word,
					     __ATOMIC_RELAXED);
}

static uint64_t repairs(void)
{
	dynshm_instance_info info;

	ASSERT_OK(dynshm_instance_info_get(fx.inst, &info, sizeof(info)));
	return info.lock_repairs;
}

/* A handler calls dynshm while its thread is inside the control lock. */
static void test_signal_handler_reentry(void **state)
{
	struct sigaction sa, old;
	dynshm_segment *seg = NULL;
	uint64_t before;
	uint32_t mine;

	(void)state;
	alarm(HANG_SECONDS);
	before = repairs();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = reenter;
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	dynshm_test_hook = raise_inside_lock;
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &seg));
	dynshm_test_hook = NULL;
	sigaction(SIGUSR1, &old, NULL);
	mine = fx.inst->seat + 1;
	/* the handler's call is refused; the interrupted one keeps the lock */
	assert_int_equal(handler_rc, -EDEADLK);
	assert_int_equal(word_in_handler & 0x7fffffffu, mine);
	assert_int_equal(word_after_handler & 0x7fffffffu, mine);
	assert_int_equal(repairs(), before); /* nothing "repaired" */
	ASSERT_OK(dynshm_detach(seg));
	alarm(0);
}

/*
 * Another process holds the lock through our seat (it replaced the
 * seat's descriptor with dup2, and we claimed the seat since): simulated
 * by writing our seat into the word.  Our call must not take it over.
 */
static void test_own_seat_held_elsewhere(void **state)
{
	uint32_t *word = &fx.inst->c.hdr->lock_word;
	unsigned n = 0;
	uint64_t before;

	(void)state;
	alarm(HANG_SECONDS);
	before = repairs(); /* also claims our seat */
	assert_int_not_equal(fx.inst->seat, CTL_NONE);
	__atomic_store_n(word, fx.inst->seat + 1, __ATOMIC_RELEASE);
	assert_int_equal(dynshm_reap(fx.inst, &n), -EDEADLK);
	assert_non_null(strstr(dynshm_last_error(), "own lock seat"));
	assert_int_equal(__atomic_load_n(word, __ATOMIC_ACQUIRE),
			 fx.inst->seat + 1); /* still the other holder's */
	__atomic_store_n(word, 0, __ATOMIC_RELEASE); /* it lets go */
	ASSERT_OK(dynshm_reap(fx.inst, &n));
	assert_int_equal(repairs(), before);
	alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[0]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[1]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[2]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[3]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[4]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[5]),
		cmocka_unit_test_prestate_setup_teardown(test_cancel, setup,
							 teardown,
							 (void *)&cases[6]),
		cmocka_unit_test_setup_teardown(test_scope_other_thread_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_other_thread_after,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_counts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_signal_handler_reentry,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_seat_held_elsewhere,
						setup, teardown),
	};

	dynshm_test_instance_tag = TEST_TAG;
	setvbuf(stdout, NULL, _IOLBF, 0); /* seen even after a hang */
	if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_scope*' */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	signal(SIGALRM, on_alarm);
	return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
