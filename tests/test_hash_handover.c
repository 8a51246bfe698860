/* SPDX-License-Identifier: MIT */
/*
 * test_hash_handover.c - a process killed just after being woken for a
 * hash table partition lock must not strand the other sleepers.
 *
 * Why a test of its own: dsm_memcache's workers sleep on these locks and
 * are killed at random.  A plain robust mutex wakes one sleeper and lets
 * it race for the lock; if that sleeper is killed before it runs, the
 * wake-up dies with it and the others sleep forever on a free lock.  The
 * control lock had this hang (tests/test_hostile.c, test_lock_handover,
 * whose choreography this follows); the area's and the table's locks had
 * it too until they became priority-inheriting (the kernel then hands the
 * lock to the sleeper, and a sleeper killed holding it is an ordinary
 * EOWNERDEAD).  Only public calls: the holder is dynshm_hash_foreach,
 * whose callback blocks while the partition lock is held; the sleepers
 * are dynshm_hash_find of the same key.
 *
 * A releases the lock, which wakes sleeper B; before B runs (it waits for
 * its CPU at SCHED_IDLE behind a busy process), newcomer D takes the free
 * lock, and B is killed.  C must still get the lock once D lets go.
 * Fails (hangs, reported after ~10 s) with the plain robust mutexes.
 *
 * The choreography helpers (spawn, holders, lock_waiting, settle_bounded)
 * repeat test_hostile.c's: they should move to a shared test file, which
 * was left for after the branches merge (test_hostile.c is shared).
 */
#include "testutil.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char *dir;
static dynshm_instance *inst;
static dynshm_area *area;
static dynshm_hash *hash;
static const uint64_t the_key = 42;

struct holder {
	pid_t pid;
	int tell[2]; /* child -> parent: 'h' holding, 'd' done */
	int go[2];   /* parent -> child: release */
};

static struct holder *holding;

static int hold_fn(const void *key, size_t key_len, void *value, void *arg)
{
	char c = 'h';

	if (write(holding->tell[1], &c, 1) != 1 ||
	    read(holding->go[0], &c, 1) != 1)
		_exit(1);
	return 0;
}

static int holder_child(void *arg)
{
	char c = 'd';

	holding = arg;
	if (dynshm_hash_foreach(hash, hold_fn, NULL) != 0 ||
	    write(holding->tell[1], &c, 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int locker_child(void *arg)
{
	uint64_t v;

	(void)arg;
	return dynshm_hash_find(hash, &the_key, &v) == 0 ? 0 : 1;
}

static void pin_cpu0(bool idle)
{
	struct sched_param sp = { 0 };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	if (idle)
		sched_setscheduler(0, SCHED_IDLE, &sp);
}

static int idle_locker_child(void *arg)
{
	pin_cpu0(true);
	return locker_child(arg);
}

static int hog_child(void *arg)
{
	volatile unsigned long n = 0;

	(void)arg;
	pin_cpu0(false);
	for (;;)
		n++;
	return 0;
}

static pid_t spawned[8];
static int nspawned;

static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	assert_true(pid > 0);
	if (nspawned < 8)
		spawned[nspawned++] = pid;
	return pid;
}

static void reap_spawned(void)
{
	for (int i = 0; i < nspawned; i++)
		if (waitpid(spawned[i], NULL, WNOHANG) == 0) {
			kill(spawned[i], SIGKILL);
			waitpid(spawned[i], NULL, 0);
		}
	nspawned = 0;
}

static void start_holder(struct holder *h)
{
	assert_int_equal(pipe(h->tell), 0);
	assert_int_equal(pipe(h->go), 0);
	h->pid = spawn(holder_child, h);
}

static void end_holder(struct holder *h)
{
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	close(h->tell[0]);
	close(h->tell[1]);
	close(h->go[0]);
	close(h->go[1]);
}

static char hear(struct holder *h)
{
	char c = 0;

	assert_int_equal(read(h->tell[0], &c, 1), 1);
	return c;
}

static bool holds_or_waits(struct holder *d)
{
	struct timespec ms = { 0, 1000000 };
	struct pollfd pfd = { d->tell[0], POLLIN, 0 };

	for (int i = 0; i < 10000; i++) {
		if (poll(&pfd, 1, 0) == 1)
			return hear(d) == 'h';
		if (test_lock_waiting(d->pid))
			return false;
		nanosleep(&ms, NULL);
	}
	fail_msg("process %d neither took nor waited for the lock",
		 (int)d->pid);
	return false;
}

/* C's exit status once D is done, or -1 after ~10 s (C is then killed). */
static int settle_bounded(struct holder *d, pid_t c)
{
	struct timespec ms = { 0, 1000000 };
	struct pollfd pfd = { d->tell[0], POLLIN, 0 };
	bool d_done = false;
	int status = -1;

	for (int i = 0; i < 10000 && (status < 0 || !d_done); i++) {
		int st;

		if (poll(&pfd, 1, 0) == 1) {
			if (hear(d) == 'h')
				assert_int_equal(write(d->go[1], "g", 1), 1);
			else
				d_done = true;
			continue;
		}
		if (status < 0 && waitpid(c, &st, WNOHANG) == c)
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		nanosleep(&ms, NULL);
	}
	if (status < 0) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	}
	return d_done ? status : -1;
}

static int handover_round(void)
{
	struct holder a, d;
	pid_t b, c, hog;
	bool d_holds;
	int status;

	start_holder(&a);
	assert_int_equal(hear(&a), 'h');
	b = spawn(idle_locker_child, NULL);
	assert_true(test_await_lock_wait(b));
	hog = spawn(hog_child, NULL);
	c = spawn(locker_child, NULL);
	assert_true(test_await_lock_wait(c));
	assert_int_equal(write(a.go[1], "g", 1), 1);
	assert_int_equal(hear(&a), 'd');
	start_holder(&d);
	d_holds = holds_or_waits(&d);
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	if (d_holds)
		assert_int_equal(write(d.go[1], "g", 1), 1);
	status = settle_bounded(&d, c);
	kill(hog, SIGKILL);
	waitpid(hog, NULL, 0);
	end_holder(&d);
	end_holder(&a);
	nspawned = 0; /* all reaped */
	return status;
}

static void test_partition_lock_handover(void **state)
{
	uint64_t v = 7;
	dynshm_area_ptr table;
	int hung = 0;

	(void)state;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip(); /* the hog would starve the test itself */
	assert_int_equal(dynshm_area_create(inst, 0, 0, &area), 0);
	assert_int_equal(dynshm_hash_create(area, sizeof(uint64_t),
					    sizeof(uint64_t), &table, &hash),
			 0);
	assert_int_equal(dynshm_hash_insert(hash, &the_key, &v, 0), 0);
	for (int round = 0; round < 10 && !hung; round++)
		hung = handover_round() != 0;
	assert_false(hung);
}

static int setup(void **state)
{
	char path[PATH_MAX];

	(void)state;
	dir = test_make_dir();
	if (!dir)
		return -1;
	snprintf(path, sizeof(path), "%s/inst", dir);
	if (dynshm_instance_open(path, NULL, 0, &inst) < 0) {
		fprintf(stderr, "setup: %s\n", dynshm_last_error());
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	int bad = 0;

	(void)state;
	reap_spawned();
	if (hash)
		dynshm_hash_detach(hash);
	if (area && dynshm_area_destroy(area) < 0)
		bad = 1;
	if (inst && dynshm_instance_destroy(inst) < 0)
		bad = 1;
	if (test_remove_dir(dir) < 0)
		bad = 1;
	return bad ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_partition_lock_handover,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
