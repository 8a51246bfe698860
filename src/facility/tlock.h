/* SPDX-License-Identifier: MIT */
/*
 * tlock.h - a process-shared lock whose holder is named by its process
 * token (dynshm_proc_self), for the facilities' locks in shared memory.
 *
 * Why not a robust PI pthread mutex (what the area and the hash table
 * used before): its futex names the owner by thread id, which means
 * something only in the owner's PID namespace, so a waiter in another
 * one gets ESRCH and glibc parks or aborts it.  A process token means the
 * same in every namespace, and dynshm_proc_alive asks the kernel about it
 * (an OFD lock the kernel drops when the process dies: src/liveness.c).
 *
 * owner is 0 when free, else the holder's token; threads of one process
 * share a token, and a thread that finds its own token there waits like
 * anyone (another thread of its process holds the lock: the library never
 * takes one of these locks twice in a thread).  word counts releases
 * (bits 1..31) and says that somebody may sleep (bit 0):
 *   - a taker reads word, then tries owner 0 -> me; failing, it sets bit
 *     0 and sleeps on word as it read it (FUTEX_WAIT), a bounded while;
 *   - a giver stores owner 0, then adds 2 to word; if bit 0 was set it
 *     clears it and wakes every sleeper, so one killed after its wake-up
 *     takes nobody's turn with it.  A release between a taker's read and
 *     its sleep changed word: the sleep returns at once;
 *   - a sleeper whose wait times out (1 ms, doubling to 64 ms) asks
 *     dynshm_proc_alive about owner; dead (or no token at all: a
 *     scribble), it takes the lock over - "stolen": the caller repairs
 *     what the holder left half done, as it did on EOWNERDEAD.
 * Uncontended, taking is one compare-and-swap and giving a store and an
 * add.  Tokens are never reused (the entry's generation is in them), so
 * a dead holder never looks alive because its token came back.
 */
#ifndef DYNSHM_FACILITY_TLOCK_H
#define DYNSHM_FACILITY_TLOCK_H

#include <dynshm/dsm.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct dynshm_tlock {
	_Atomic uint64_t owner; /* 0 free, else the holder's token */
	_Atomic uint32_t word;	/* releases << 1 | somebody may sleep */
	uint32_t pad_;
};

/*
 * Take l for token me (waiting unless try: then -EBUSY at once); 0 with
 * *stolen set when its holder had died holding it.  -errno only when the
 * wait itself fails.  Never returns holding it on an error.
 */
int tlock_take(dynshm_instance *inst, struct dynshm_tlock *l, uint64_t me,
	       bool try, bool *stolen);
void tlock_give(struct dynshm_tlock *l);

/*
 * This process's token in inst, cached per (cache, fork): *cache_gen and
 * *cache hold it; a forked child asks again.  0 or -errno.
 */
int tlock_token(dynshm_instance *inst, uint64_t *cache, unsigned *cache_gen,
		uint64_t *me);

/* Bumped in every forked child (tlock.c); read by tlock_token_cached. */
extern _Atomic unsigned tlock_fork_gen;

/*
 * This process's fork generation, with the handler that bumps it in a
 * forked child registered: a value kept by a handle (mq.c) says, when it
 * no longer matches, that the handle was made by the parent.
 */
unsigned tlock_fork_generation(void);

/*
 * tlock_token's fast path, inline for a lookup's lock (hash.c): true with
 * *me when the cache holds this process's token.  The cache is filled
 * only by tlock_token, which registers the fork handler first, so a
 * generation that matches is this process's.
 */
static inline bool tlock_token_cached(const uint64_t *cache,
				      const unsigned *cache_gen, uint64_t *me)
{
	if (__atomic_load_n(cache_gen, __ATOMIC_ACQUIRE) !=
	    atomic_load_explicit(&tlock_fork_gen, memory_order_relaxed))
		return false;
	*me = __atomic_load_n(cache, __ATOMIC_RELAXED);
	return *me != 0;
}

/* tlock_take's first step, inline: true when l was free and is now ours. */
static inline bool tlock_try_free(struct dynshm_tlock *l, uint64_t me)
{
	uint64_t free_ = 0;

	return atomic_compare_exchange_strong(&l->owner, &free_, me);
}

#endif
