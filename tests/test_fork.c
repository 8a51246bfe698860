/* SPDX-License-Identifier: MIT */
/*
 * test_fork.c - the fork rules of dsm.h (a child joins, adopts,
 * never releases what its parent holds, and meets segments destroyed
 * before its first call) and threads (calls from several at once, a fork
 * while another thread closes), per backend.
 *
 * Split from test_wrapper.c (issue 11); the fixture, helpers and how the
 * tests are run are in wrapper_harness.h.
 */
#include "wrapper_harness.h"

#include "inject.h"
#include "src/control.h"
#include "src/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dsm_assert.h"

/* ---- 9. fork semantics ------------------------------------------------------ */

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
	CHILD_CHECK(test_write_full(a->wfd, &hq, sizeof(hq)) == 0);
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

/*
 * A callback forks, or opens and closes another instance, while another
 * thread forks.  Callbacks run holding their instance's lock; fork's
 * handler took the registry lock and then waited for that lock, while
 * the callback's fork (or open, or close) waited for the registry lock:
 * both threads hung for good.  Thread A is in the callback; it lets B go,
 * gives B a moment to get into fork, then does what it does.
 */
struct cb_race {
	char dir[PATH_MAX], other[PATH_MAX];
	const char *backend;
	bool on_detach; /* else get-or-create's init */
	atomic_int in_callback, b_forking;
	int result;
};

static void fork_and_reap(void)
{
	pid_t pid = fork();

	if (pid == 0) { /* exec: see fork_forker */
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		(void)test_wait(pid);
}

static void callback_work(struct cb_race *r)
{
	struct timespec moment = { 0, 20000000 };
	dynshm_instance *other = NULL;

	atomic_store(&r->in_callback, 1);
	while (!atomic_load(&r->b_forking))
		sched_yield();
	nanosleep(&moment, NULL); /* B is in fork's handler by now */
	if (!r->on_detach) {
		fork_and_reap();
		return;
	}
	if (child_open(r->other, r->backend, 0, &other) != 0 ||
	    dynshm_instance_destroy(other) != 0)
		r->result = 1;
}

static int race_init(dynshm_segment *seg, void *arg)
{
	(void)seg;
	callback_work(arg);
	return 0;
}

static void race_on_detach(dynshm_segment *seg, void *arg)
{
	(void)seg;
	callback_work(arg);
}

static void *forking_thread(void *arg)
{
	struct cb_race *r = arg;

	while (!atomic_load(&r->in_callback))
		sched_yield();
	atomic_store(&r->b_forking, 1);
	fork_and_reap();
	return NULL;
}

static int callback_racer(void *arg)
{
	struct cb_race *r = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	pthread_t b;
	int created = 0;

	alarm(60); /* a hang ends here, as SIGALRM */
	CHILD_OK(child_open(r->dir, r->backend, 0, &inst));
	CHILD_CHECK(pthread_create(&b, NULL, forking_thread, r) == 0);
	if (r->on_detach) {
		CHILD_OK(dynshm_create(inst, 4096, 0, &seg));
		CHILD_OK(dynshm_on_detach(seg, race_on_detach, r));
		CHILD_OK(dynshm_detach(seg));
	} else {
		CHILD_OK(dynshm_get_named(inst, "race", 4096, 0, race_init, r,
					  &seg, &created));
		CHILD_CHECK(created == 1);
		CHILD_OK(dynshm_detach(seg));
	}
	CHILD_CHECK(pthread_join(b, NULL) == 0);
	CHILD_CHECK(r->result == 0);
	CHILD_OK(dynshm_instance_destroy(inst));
	return 0;
}

static void test_fork_during_callback(void **state)
{
	struct fixture *f = *state;
	static struct cb_race r;

	for (int v = 0; v < 2; v++) {
		pid_t pid;
		int st;

		memset(&r, 0, sizeof(r));
		path_in(f, "inst", r.dir, sizeof(r.dir));
		path_in(f, "other", r.other, sizeof(r.other));
		r.backend = f->be->name;
		r.on_detach = v == 1;
		pid = start_fork(f, callback_racer, &r);
		st = finish_kid(f, pid);
		if (st == 128 + SIGALRM)
			fail_msg("a fork and %s deadlocked",
				 v ? "an instance open and destroy in an "
				     "on-detach callback" :
				     "a fork in an init callback");
		assert_int_equal(st, 0);
	}
}

/* ---- groups -------------------------------------------------------------- */

WRAPPER_MAIN("fork",
	     T(test_fork_child_joins),
	     T(test_fork_child_adopts),
	     T(test_fork_child_never_releases_parent),
	     T(test_fork_destroyed_before_first_call),
	     T(test_threads),
	     T(test_fork_while_closing),
	     T(test_fork_during_callback))
