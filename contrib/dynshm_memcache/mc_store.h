/* SPDX-License-Identifier: MIT */
/*
 * mc_store.h - the item store of dsm_memcache: items in a dynshm area,
 * found through a dynshm hash table, shared by every worker process.
 *
 * Split from the network code so that the crash-safety rules live in one
 * place (mc_store.c) and the protocol code (dsm_memcache.c) only calls
 * operations that either commit or leave nothing changed.
 *
 * Shared layout and invariants
 * ----------------------------
 * struct mc_shared is one allocation in the area, made by the supervisor
 * before it forks; workers find it through the pointer they inherit.
 *
 * An item (struct mc_item) is one allocation: header, key (NUL-ended),
 * value bytes.  Once linked into the hash it is immutable except for `ref`
 * (the CLOCK bit, any worker, relaxed) and `exptime` (touch, under the
 * item's stripe lock, one aligned 32-bit store).  A changed value is a new
 * item that replaces the old one.
 *
 * The hash maps key -> area pointer of the item.  Every read or change of
 * a key's mapping happens under the key's stripe lock (stripes[h % N], a
 * robust, priority-inheriting process-shared mutex), so the item a reader copies cannot be freed
 * under it, and a check-then-change (add, cas, incr) is atomic.  No code
 * holds two stripe locks at once.
 *
 * A change of a mapping is one *commit* under the stripe lock, logged in
 * the stripe's intent record before it starts:
 *     newp, oldp, keyitem written; state = ACTIVE  (release)
 *     hash_insert(key, newp, REPLACE) or hash_delete(key)
 *     state = IDLE
 *     area_free(oldp)
 * A worker killed while holding the lock leaves the mutex EOWNERDEAD; the
 * next worker to take it finds state ACTIVE and redoes the hash operation
 * (idempotent: a REPLACE half-written by the dead one is written again
 * whole) and frees oldp, then marks the mutex consistent.  So:
 *   - a set that was acknowledged committed, and stays;
 *   - a set killed after publishing ACTIVE is completed by the repair (it
 *     was not acknowledged, so either outcome is allowed), never half-done;
 *   - a worker killed between allocating an item and publishing ACTIVE
 *     leaks that one item (nobody can find it); killed between state = IDLE
 *     and the end of area_free, it leaks the old item.  At most one item
 *     per kill; the area's own repair keeps its accounting whole.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <dynshm/area.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_KEY_MAX 250
#define MC_MAX_WORKERS 64
#define MC_NSTRIPES 1024u
#define MC_MAGIC 0x6d656d63616368ULL

/* Per-worker counters: written only by the worker in that slot. */
struct mc_wstats {
	_Atomic uint64_t cmd_get, get_hits, get_misses, get_expired,
		get_flushed, cmd_set, cmd_touch, touch_hits, touch_misses,
		cmd_flush, delete_hits, delete_misses, incr_hits, incr_misses,
		decr_hits, decr_misses, cas_hits, cas_misses, cas_badval,
		bytes_read, bytes_written, total_connections;
	/* Connections open now; zeroed by the supervisor when it dies. */
	_Atomic int64_t curr_connections;
	_Atomic int32_t pid;
	uint32_t pad;
};

#define MC_IDLE 0u
#define MC_ACTIVE 1u

struct mc_stripe {
	pthread_mutex_t lock;
	/* The intent of the commit in progress (see above); lock guards. */
	_Atomic uint32_t state;
	uint32_t pad;
	_Atomic uint64_t newp, oldp, keyitem;
	char pad2[128 - sizeof(pthread_mutex_t) - 32];
};

struct mc_shared {
	uint64_t magic;
	dynshm_area_ptr table; /* written once, before the fork */
	uint64_t max_bytes, item_max, started;
	int32_t supervisor_pid, nworkers;
	_Atomic uint64_t cas_next;
	_Atomic uint64_t bytes;	      /* value + key bytes of linked items */
	_Atomic uint64_t total_items; /* commits of a new item */
	_Atomic uint64_t evictions;   /* live items evicted for room */
	_Atomic uint64_t reclaimed;   /* expired or flushed items reclaimed */
	_Atomic uint64_t repairs;     /* stripe intents redone */
	_Atomic uint64_t restarts;    /* workers replaced */
	_Atomic uint64_t hand;	      /* CLOCK hand: the sector swept next */
	/* flush_all: items of an older generation are dead. */
	_Atomic uint32_t flush_gen;
	_Atomic int64_t flush_at; /* a delayed flush_all's time, 0: none */
	struct mc_wstats ws[MC_MAX_WORKERS];
	struct mc_stripe stripes[MC_NSTRIPES];
};

struct mc_item {
	uint64_t cas;
	uint32_t flags;
	_Atomic uint32_t exptime; /* absolute Unix time, 0: never */
	uint32_t nbytes;	  /* value length */
	uint32_t gen;		  /* flush generation when made */
	uint16_t nkey;
	_Atomic uint8_t ref; /* CLOCK: read since the hand last passed */
	uint8_t pad[5];
	char data[]; /* key, NUL, value */
};

static inline const char *mc_item_value(const struct mc_item *it)
{
	return it->data + it->nkey + 1;
}

/* A worker's (or the supervisor's) view of the store. */
struct mc_store {
	dynshm_area *area;
	dynshm_hash *hash;
	struct mc_shared *sh;
};

/* Results of the operations. */
enum mc_res {
	MC_STORED, MC_NOT_STORED, MC_EXISTS, MC_NOT_FOUND, MC_DELETED,
	MC_TOUCHED, MC_NOMEM, MC_NON_NUMERIC, MC_FAIL
};

enum mc_mode { MC_SET, MC_ADD, MC_REPLACE, MC_CAS, MC_APPEND, MC_PREPEND };

/* Supervisor: make the shared header and table in area. */
int mc_store_create(struct mc_store *st, dynshm_area *area,
		    uint64_t max_bytes, uint64_t item_max);

/* Test hook (mc_store.c): SIGKILL inside every Nth commit; 0: off. */
extern unsigned mc_crash_every;

/* The current time, as the store sees it (set by the caller's loop). */
extern int64_t mc_now;

/* Absolute expiry time from a protocol exptime. */
uint32_t mc_exptime(int64_t exptime);

/*
 * Copy key's item out: emit(item, arg) is called under the stripe lock
 * when the key holds a live item.  Returns MC_STORED if found, else
 * MC_NOT_FOUND.
 */
enum mc_res mc_get(struct mc_store *st, struct mc_wstats *ws, const char *key,
		   void (*emit)(const struct mc_item *it, void *arg),
		   void *arg);
enum mc_res mc_store_item(struct mc_store *st, enum mc_mode mode,
			  const char *key, uint32_t flags, int64_t exptime,
			  const char *data, uint32_t nbytes, uint64_t cas);
enum mc_res mc_delete(struct mc_store *st, const char *key);
enum mc_res mc_touch(struct mc_store *st, const char *key, int64_t exptime);
enum mc_res mc_incr(struct mc_store *st, const char *key, bool incr,
		    uint64_t delta, uint64_t *result);
void mc_flush(struct mc_store *st, int64_t delay);
/* Evict up to a batch of items (CLOCK); returns how many went. */
unsigned mc_evict(struct mc_store *st);
/* Items linked now. */
uint64_t mc_items(struct mc_store *st);

#endif
