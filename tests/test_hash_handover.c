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
 * The choreography is testutil.h's test_handover_round(), which
 * test_hostile.c's test_lock_handover runs on the control lock.
 */
#include "testutil.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char *dir;
static dynshm_instance *inst;
static dynshm_area *area;
static dynshm_hash *hash;
static const uint64_t the_key = 42;

/* The holder: a foreach holds the partition lock in its callback. */
static int hold_fn(const void *key, size_t key_len, void *value, void *arg)
{
	(void)key;
	(void)key_len;
	(void)value;
	(void)arg;
	test_holder_holding();
	return 0;
}

static int hold_partition_lock(void *arg)
{
	(void)arg;
	return dynshm_hash_foreach(hash, hold_fn, NULL) == 0 ? 0 : 1;
}

/* A sleeper: a find of the same key takes the partition lock once. */
static int take_partition_lock(void *arg)
{
	uint64_t v;

	(void)arg;
	return dynshm_hash_find(hash, &the_key, &v) == 0 ? 0 : 1;
}

static void test_partition_lock_handover(void **state)
{
	uint64_t v = 7;
	dynshm_area_ptr table;
	const struct test_handover ho = { hold_partition_lock,
					  take_partition_lock, NULL };
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
		hung = test_handover_round(&ho) != 0;
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
	test_handover_reap();
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
