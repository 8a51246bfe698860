/* SPDX-License-Identifier: MIT */
/*
 * tlock.c - the facilities' process-shared lock, named by process token
 * (the protocol and why it is not a pthread mutex: tlock.h).
 */
#include "tlock.h"

#include "fsys.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

/* Bumped in every forked child: a cached token is its parent's. */
_Atomic unsigned tlock_fork_gen = 1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void forked(void)
{
	atomic_fetch_add(&tlock_fork_gen, 1);
}

static void register_fork(void)
{
	pthread_atfork(NULL, NULL, forked);
}

unsigned tlock_fork_generation(void)
{
	pthread_once(&once, register_fork);
	return atomic_load(&tlock_fork_gen);
}

int tlock_token(dynshm_instance *inst, uint64_t *cache, unsigned *cache_gen,
		uint64_t *me)
{
	unsigned gen;
	int rc;

	pthread_once(&once, register_fork);
	gen = atomic_load(&tlock_fork_gen);
	/* threads may fill the cache at once: with the same value */
	if (tlock_token_cached(cache, cache_gen, me))
		return 0;
	rc = dynshm_proc_self(inst, me);
	if (rc < 0)
		return rc;
	__atomic_store_n(cache, *me, __ATOMIC_RELAXED);
	__atomic_store_n(cache_gen, gen, __ATOMIC_RELEASE);
	return 0;
}

int tlock_take(dynshm_instance *inst, struct dynshm_tlock *l, uint64_t me,
	       bool try, bool *stolen)
{
	long ns = 1000000; /* 1 ms, doubling to 64 ms */
	bool timed_out = false;

	*stolen = false;
	for (;;) {
		uint32_t w = atomic_load(&l->word);
		uint64_t owner = 0;

		if (atomic_compare_exchange_strong(&l->owner, &owner, me))
			return 0;
		if (owner == 0)
			continue; /* given back meanwhile */
		if (timed_out && owner != me &&
		    dynshm_proc_alive(inst, owner) != 1) {
			/* dead, released, or no token at all: take it over */
			if (atomic_compare_exchange_strong(&l->owner, &owner,
							   me)) {
				*stolen = true;
				return 0;
			}
			continue;
		}
		if (try)
			return -EBUSY;
		/* somebody may sleep; a release since we read w: try again */
		if ((atomic_fetch_or(&l->word, 1u) | 1u) != (w | 1u))
			continue;
		{
			struct timespec ts = { ns / 1000000000,
					       ns % 1000000000 };
			long r = dynshm_fsys.futex((uint32_t *)&l->word,
						   FUTEX_WAIT, w | 1u, &ts);

			timed_out = r < 0 && errno == ETIMEDOUT;
		}
		if (timed_out && ns < 64000000)
			ns *= 2;
	}
}

void tlock_give(struct dynshm_tlock *l)
{
	/*
	 * Release is enough: the add below publishes this store to a taker
	 * that reads word after it (and one that read word before it sees the
	 * add in its fetch_or and tries again), and on x86 it is a plain store
	 * instead of a second locked instruction.
	 */
	atomic_store_explicit(&l->owner, 0, memory_order_release);
	if (atomic_fetch_add(&l->word, 2u) & 1u) {
		atomic_fetch_and(&l->word, ~1u);
		dynshm_fsys.futex((uint32_t *)&l->word, FUTEX_WAKE, INT32_MAX,
				  NULL);
	}
}
