/* SPDX-License-Identifier: MIT */
/*
 * mc_store.c - the item store of dsm_memcache (layout and crash-safety
 * rules: mc_store.h).
 *
 * Why stripe locks of our own on top of the hash table's partition locks:
 * the table makes each find, insert and delete atomic, but a cache needs
 * check-then-change (add, cas, incr) and must free the old item of a
 * replaced key exactly once.  A stripe lock per key hash, held for the
 * whole operation, gives both; the intent record in the stripe makes the
 * one commit of each operation redoable after a SIGKILL.
 *
 * Eviction is CLOCK (second chance) by sectors: the keys fall into 64
 * sectors by hash; a sweep walks the table (dynshm_hash_foreach) looking
 * only at the hand's sector, clears the `ref` bit of items read since the
 * last sweep and takes the others (and any expired or flushed item) as
 * victims, up to a batch; then it evicts each victim under its stripe lock
 * if the key still maps to it.  Approximate (the walk visits partitions in
 * one order) but O(batch x sectors) per sweep, not O(items).
 */
#include "mc_store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MC_SECTORS 64u
#define MC_BATCH 64u
#define MC_ALLOC_TRIES 8

int64_t mc_now;

static uint64_t key_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

uint32_t mc_exptime(int64_t exptime)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return 1; /* already past */
	if (exptime <= 60 * 60 * 24 * 30)
		exptime += mc_now;
	if (exptime > UINT32_MAX)
		exptime = UINT32_MAX;
	return (uint32_t)exptime;
}

static struct mc_item *item_at(struct mc_store *st, dynshm_area_ptr p)
{
	return dynshm_area_get(st->area, p);
}

/* A delayed flush_all whose time has come starts a new generation. */
static void flush_due(struct mc_shared *sh)
{
	int64_t at = atomic_load_explicit(&sh->flush_at, memory_order_relaxed);

	if (at && mc_now >= at &&
	    atomic_compare_exchange_strong(&sh->flush_at, &at, 0))
		atomic_fetch_add(&sh->flush_gen, 1);
}

static bool item_live(struct mc_store *st, const struct mc_item *it)
{
	uint32_t e = atomic_load_explicit(&it->exptime, memory_order_relaxed);

	if (it->gen != atomic_load(&st->sh->flush_gen))
		return false;
	return e == 0 || e > mc_now;
}

/* Redo a dead holder's commit (mc_store.h); called with the lock held. */
static void stripe_repair(struct mc_store *st, struct mc_stripe *s)
{
	dynshm_area_ptr newp = atomic_load(&s->newp);
	dynshm_area_ptr oldp = atomic_load(&s->oldp);
	struct mc_item *kit;
	int rc;

	if (atomic_load(&s->state) != MC_ACTIVE)
		return;
	kit = item_at(st, atomic_load(&s->keyitem));
	if (kit != NULL && newp) {
		rc = dynshm_hash_insert(st->hash, kit->data, &newp,
					DYNSHM_HASH_REPLACE);
		if (rc < 0) {
			/* Never linked (no room for the entry): undo. */
			dynshm_area_free(st->area, newp);
			oldp = 0;
		}
	} else if (kit != NULL) {
		dynshm_hash_delete(st->hash, kit->data);
	} else {
		oldp = 0; /* key unknown: the table may still name oldp */
	}
	atomic_store(&s->state, MC_IDLE);
	if (oldp)
		dynshm_area_free(st->area, oldp);
	atomic_fetch_add(&st->sh->repairs, 1);
}

static struct mc_stripe *lock_key(struct mc_store *st, const char *key)
{
	struct mc_stripe *s = &st->sh->stripes[key_hash(key) % MC_NSTRIPES];
	int rc = pthread_mutex_lock(&s->lock);

	if (rc == EOWNERDEAD) {
		stripe_repair(st, s);
		pthread_mutex_consistent(&s->lock);
	} else if (rc != 0) {
		fprintf(stderr, "dsm_memcache: stripe lock: %s\n",
			strerror(rc));
		abort();
	}
	flush_due(st->sh);
	return s;
}

static void unlock(struct mc_stripe *s)
{
	pthread_mutex_unlock(&s->lock);
}

/*
 * Test hook: with DSM_MEMCACHE_CRASH_EVERY=N in its environment, a worker
 * kills itself with SIGKILL inside its Nth commit: after publishing the
 * intent, or after the hash operation (by its pid), so the storm test
 * lands kills where the repair must redo the commit and free the old
 * item - after which nothing may leak.  (A kill after state = IDLE leaks
 * the old item by design: mc_store.h.)
 */
unsigned mc_crash_every;

static void crash_point(unsigned where)
{
	static unsigned commits;

	if (!mc_crash_every)
		return;
	if (where == 0)
		commits++;
	if (commits % mc_crash_every == 0 && where == (unsigned)getpid() % 2)
		raise(SIGKILL);
}

/*
 * The commit: make key map to newp (or to nothing), free oldp.  Lock
 * held.  -ENOMEM when the table has no room for a new entry (nothing
 * changed; newp stays the caller's).
 */
static int commit(struct mc_store *st, struct mc_stripe *s, const char *key,
		  dynshm_area_ptr newp, dynshm_area_ptr oldp)
{
	struct mc_item *nit = newp ? item_at(st, newp) : NULL;
	struct mc_item *oit = oldp ? item_at(st, oldp) : NULL;
	int rc;

	atomic_store_explicit(&s->newp, newp, memory_order_relaxed);
	atomic_store_explicit(&s->oldp, oldp, memory_order_relaxed);
	atomic_store_explicit(&s->keyitem, newp ? newp : oldp,
			      memory_order_relaxed);
	atomic_store_explicit(&s->state, MC_ACTIVE, memory_order_release);
	crash_point(0);
	if (newp)
		rc = dynshm_hash_insert(st->hash, key, &newp,
					DYNSHM_HASH_REPLACE);
	else
		rc = dynshm_hash_delete(st->hash, key);
	crash_point(1);
	atomic_store_explicit(&s->state, MC_IDLE, memory_order_release);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (nit) {
		atomic_fetch_add(&st->sh->bytes, nit->nkey + nit->nbytes);
		atomic_fetch_add(&st->sh->total_items, 1);
	}
	if (oit) {
		atomic_fetch_sub(&st->sh->bytes, oit->nkey + oit->nbytes);
		dynshm_area_free(st->area, oldp);
	}
	return 0;
}

/* The live item key maps to (lock held), or 0; *dead: a dead one. */
static dynshm_area_ptr find_locked(struct mc_store *st, const char *key,
				   dynshm_area_ptr *dead)
{
	dynshm_area_ptr p;
	struct mc_item *it;

	*dead = 0;
	if (dynshm_hash_find(st->hash, key, &p) < 0)
		return 0;
	it = item_at(st, p);
	if (it == NULL)
		return 0;
	if (!item_live(st, it)) {
		*dead = p;
		return 0;
	}
	return p;
}

/* Reclaim a dead item key maps to (lock held). */
static void reclaim_locked(struct mc_store *st, struct mc_stripe *s,
			   const char *key, dynshm_area_ptr dead)
{
	if (dead && commit(st, s, key, 0, dead) == 0)
		atomic_fetch_add(&st->sh->reclaimed, 1);
}

enum mc_res mc_get(struct mc_store *st, struct mc_wstats *ws, const char *key,
		   void (*emit)(const struct mc_item *it, void *arg),
		   void *arg)
{
	struct mc_stripe *s = lock_key(st, key);
	dynshm_area_ptr dead, p = find_locked(st, key, &dead);
	struct mc_item *it;

	if (!p) {
		if (dead) {
			it = item_at(st, dead);
			if (it->gen != atomic_load(&st->sh->flush_gen))
				atomic_fetch_add_explicit(&ws->get_flushed, 1,
						memory_order_relaxed);
			else
				atomic_fetch_add_explicit(&ws->get_expired, 1,
						memory_order_relaxed);
		}
		reclaim_locked(st, s, key, dead);
		unlock(s);
		return MC_NOT_FOUND;
	}
	it = item_at(st, p);
	if (!atomic_load_explicit(&it->ref, memory_order_relaxed))
		atomic_store_explicit(&it->ref, 1, memory_order_relaxed);
	emit(it, arg);
	unlock(s);
	return MC_STORED;
}

/*
 * Allocate an item of nbytes for key, lock held; on a full area, drop the
 * lock, evict, and take it again.  0 when nothing could be made room for.
 */
static dynshm_area_ptr alloc_item(struct mc_store *st, struct mc_stripe *s,
				  const char *key, uint32_t nbytes, int *tries)
{
	size_t nkey = strlen(key);
	dynshm_area_ptr p;
	struct mc_item *it;

	if (dynshm_area_alloc(st->area, sizeof(*it) + nkey + 1 + nbytes,
			      DYNSHM_AREA_SOFT, &p) < 0) {
		(*tries)++;
		return 0;
	}
	it = item_at(st, p);
	if (it == NULL) {
		dynshm_area_free(st->area, p);
		(*tries)++;
		return 0;
	}
	memset(it, 0, sizeof(*it));
	it->nkey = (uint16_t)nkey;
	it->nbytes = nbytes;
	it->gen = atomic_load(&st->sh->flush_gen);
	memcpy(it->data, key, nkey + 1);
	(void)s;
	return p;
}

/*
 * Run op under key's stripe lock; op returns a result, or MC_NOMEM to ask
 * for room (the lock is dropped, a batch evicted, and op runs again).
 */
struct op {
	enum mc_mode mode;
	uint32_t flags;
	uint32_t exptime;
	const char *data;
	uint32_t nbytes;
	uint64_t cas;
	bool incr;
	uint64_t delta, result;
};

static enum mc_res apply_locked(struct mc_store *st, struct mc_stripe *s,
				const char *key, struct op *op, int *tries)
{
	dynshm_area_ptr dead, newp, oldp = find_locked(st, key, &dead);
	struct mc_item *nit, *oit = oldp ? item_at(st, oldp) : NULL;
	uint32_t n = op->nbytes;
	char num[24];

	switch (op->mode) {
	case MC_ADD:
		if (oldp)
			return MC_NOT_STORED;
		break;
	case MC_REPLACE:
	case MC_APPEND:
	case MC_PREPEND:
		if (!oldp)
			return MC_NOT_STORED;
		if (op->mode != MC_REPLACE) {
			if ((uint64_t)oit->nbytes + n > st->sh->item_max)
				return MC_NOT_STORED;
			n += oit->nbytes;
		}
		break;
	case MC_CAS:
		if (!oldp)
			return MC_NOT_FOUND;
		if (oit->cas != op->cas)
			return MC_EXISTS;
		break;
	case MC_SET:
		break;
	}
	if (op->data == NULL) { /* incr / decr */
		uint64_t v = 0;

		if (!oldp)
			return MC_NOT_FOUND;
		if (oit->nbytes == 0 || oit->nbytes > 20)
			return MC_NON_NUMERIC;
		for (uint32_t i = 0; i < oit->nbytes; i++) {
			char c = mc_item_value(oit)[i];
			uint64_t d = (uint64_t)(c - '0');

			if (c < '0' || c > '9' ||
			    v > (UINT64_MAX - d) / 10)
				return MC_NON_NUMERIC;
			v = v * 10 + d;
		}
		if (op->incr)
			v += op->delta;
		else
			v = v > op->delta ? v - op->delta : 0;
		op->result = v;
		n = (uint32_t)snprintf(num, sizeof(num), "%llu",
				       (unsigned long long)v);
	}
	newp = alloc_item(st, s, key, n, tries);
	if (!newp)
		return MC_NOMEM;
	nit = item_at(st, newp);
	if (op->data == NULL) {
		memcpy((char *)mc_item_value(nit), num, n);
	} else if (op->mode == MC_APPEND) {
		memcpy((char *)mc_item_value(nit), mc_item_value(oit),
		       oit->nbytes);
		memcpy((char *)mc_item_value(nit) + oit->nbytes, op->data,
		       op->nbytes);
	} else if (op->mode == MC_PREPEND) {
		memcpy((char *)mc_item_value(nit), op->data, op->nbytes);
		memcpy((char *)mc_item_value(nit) + op->nbytes,
		       mc_item_value(oit), oit->nbytes);
	} else {
		memcpy((char *)mc_item_value(nit), op->data, n);
	}
	if (oit && (op->data == NULL || op->mode == MC_APPEND ||
		    op->mode == MC_PREPEND)) {
		nit->flags = oit->flags;
		atomic_store(&nit->exptime, atomic_load(&oit->exptime));
	} else {
		nit->flags = op->flags;
		atomic_store(&nit->exptime, op->exptime);
	}
	nit->cas = atomic_fetch_add(&st->sh->cas_next, 1);
	if (!oldp && dead)
		oldp = dead; /* replaced: its memory goes with the commit */
	if (commit(st, s, key, newp, oldp) < 0) {
		dynshm_area_free(st->area, newp);
		(*tries)++;
		return MC_NOMEM;
	}
	if (oldp == dead && dead)
		atomic_fetch_add(&st->sh->reclaimed, 1);
	return MC_STORED;
}

static enum mc_res run(struct mc_store *st, const char *key, struct op *op)
{
	int tries = 0;

	for (;;) {
		struct mc_stripe *s = lock_key(st, key);
		enum mc_res r = apply_locked(st, s, key, op, &tries);

		unlock(s);
		if (r != MC_NOMEM)
			return r;
		if (tries >= MC_ALLOC_TRIES)
			return MC_NOMEM;
		mc_evict(st);
	}
}

enum mc_res mc_store_item(struct mc_store *st, enum mc_mode mode,
			  const char *key, uint32_t flags, int64_t exptime,
			  const char *data, uint32_t nbytes, uint64_t cas)
{
	struct op op = { .mode = mode, .flags = flags,
			 .exptime = mc_exptime(exptime), .data = data,
			 .nbytes = nbytes, .cas = cas };

	return run(st, key, &op);
}

enum mc_res mc_incr(struct mc_store *st, const char *key, bool incr,
		    uint64_t delta, uint64_t *result)
{
	struct op op = { .mode = MC_SET, .incr = incr, .delta = delta };
	enum mc_res r = run(st, key, &op);

	*result = op.result;
	return r;
}

enum mc_res mc_delete(struct mc_store *st, const char *key)
{
	struct mc_stripe *s = lock_key(st, key);
	dynshm_area_ptr dead, p = find_locked(st, key, &dead);
	enum mc_res r = MC_NOT_FOUND;

	if (p && commit(st, s, key, 0, p) == 0)
		r = MC_DELETED;
	else
		reclaim_locked(st, s, key, dead);
	unlock(s);
	return r;
}

enum mc_res mc_touch(struct mc_store *st, const char *key, int64_t exptime)
{
	struct mc_stripe *s = lock_key(st, key);
	dynshm_area_ptr dead, p = find_locked(st, key, &dead);
	enum mc_res r = MC_NOT_FOUND;

	if (p) {
		atomic_store(&item_at(st, p)->exptime, mc_exptime(exptime));
		r = MC_TOUCHED;
	} else {
		reclaim_locked(st, s, key, dead);
	}
	unlock(s);
	return r;
}

void mc_flush(struct mc_store *st, int64_t delay)
{
	if (delay > 0) {
		atomic_store(&st->sh->flush_at, (int64_t)mc_exptime(delay));
		return;
	}
	atomic_store(&st->sh->flush_at, 0);
	atomic_fetch_add(&st->sh->flush_gen, 1);
}

/* ---- eviction ------------------------------------------------------------ */

struct victim {
	dynshm_area_ptr p;
	char key[MC_KEY_MAX + 1];
};

struct sweep {
	struct mc_store *st;
	uint32_t sector;
	unsigned n;
	struct victim v[MC_BATCH];
};

static int sweep_fn(const void *key, size_t key_len, void *value, void *arg)
{
	struct sweep *sw = arg;
	dynshm_area_ptr p;
	struct mc_item *it;

	if ((key_hash(key) >> 40) % MC_SECTORS != sw->sector)
		return 0;
	memcpy(&p, value, sizeof(p));
	it = item_at(sw->st, p);
	if (it == NULL || key_len > MC_KEY_MAX)
		return 0;
	if (item_live(sw->st, it) &&
	    atomic_exchange_explicit(&it->ref, 0, memory_order_relaxed))
		return 0; /* second chance */
	sw->v[sw->n].p = p;
	memcpy(sw->v[sw->n].key, key, key_len);
	sw->v[sw->n].key[key_len] = '\0';
	return ++sw->n == MC_BATCH;
}

unsigned mc_evict(struct mc_store *st)
{
	static struct sweep sw; /* workers are single-threaded */
	unsigned done = 0;

	for (unsigned round = 0; round < 2 * MC_SECTORS && !done; round++) {
		sw.st = st;
		sw.n = 0;
		sw.sector = (uint32_t)(atomic_fetch_add(&st->sh->hand, 1) %
				       MC_SECTORS);
		dynshm_hash_foreach(st->hash, sweep_fn, &sw);
		for (unsigned i = 0; i < sw.n; i++) {
			struct mc_stripe *s = lock_key(st, sw.v[i].key);
			dynshm_area_ptr p;
			struct mc_item *it;
			bool live;

			if (dynshm_hash_find(st->hash, sw.v[i].key, &p) < 0 ||
			    p != sw.v[i].p) {
				unlock(s);
				continue;
			}
			it = item_at(st, p);
			live = it && item_live(st, it);
			if (commit(st, s, sw.v[i].key, 0, p) == 0) {
				atomic_fetch_add(live ? &st->sh->evictions :
						 &st->sh->reclaimed, 1);
				done++;
			}
			unlock(s);
		}
	}
	return done;
}

uint64_t mc_items(struct mc_store *st)
{
	uint64_t n = 0;

	dynshm_hash_count(st->hash, &n);
	return n;
}

/* ---- creation ------------------------------------------------------------ */

int mc_store_create(struct mc_store *st, dynshm_area *area,
		    uint64_t max_bytes, uint64_t item_max)
{
	pthread_mutexattr_t ma;
	dynshm_area_ptr p;
	struct mc_shared *sh;
	int rc;

	rc = dynshm_area_alloc(area, sizeof(*sh), DYNSHM_AREA_ZERO, &p);
	if (rc < 0)
		return rc;
	sh = dynshm_area_get(area, p);
	if (sh == NULL)
		return -ENOMEM;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	/*
	 * Priority inheritance makes the kernel hand the lock to the next
	 * sleeper: with a plain robust mutex a sleeper killed after its
	 * wake-up takes the wake-up with it and the others sleep on a free
	 * lock (docs/reliability.md, the control lock's hang).
	 */
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	for (unsigned i = 0; i < MC_NSTRIPES; i++)
		pthread_mutex_init(&sh->stripes[i].lock, &ma);
	pthread_mutexattr_destroy(&ma);
	sh->magic = MC_MAGIC;
	sh->max_bytes = max_bytes;
	sh->item_max = item_max;
	atomic_store(&sh->cas_next, 1);
	rc = dynshm_hash_create(area, DYNSHM_HASH_STRING,
				sizeof(dynshm_area_ptr), &sh->table,
				&st->hash);
	if (rc < 0)
		return rc;
	st->area = area;
	st->sh = sh;
	return 0;
}
