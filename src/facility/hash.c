/* SPDX-License-Identifier: MIT */
/*
 * hash.c - a concurrent hash table in a shared area.
 *
 * Why this shape.  PostgreSQL's dshash grows by taking every partition
 * lock at once and cannot survive a backend killed while it holds one.
 * Here the table is HASH_NPARTS independent tables (a key's partition is
 * the top bits of its hash), each with a robust lock, its own bucket
 * array and its own growth: a resize stops only the readers of one
 * partition, for as long as it takes to relink its entries.
 *
 * Crash safety rests on the split of src/control.h:
 *   primary - a partition's list of all its entries (head, entry.next),
 *             and each entry's key and value.  An insert commits by
 *             storing the new entry at the head; a delete commits by
 *             storing its successor into its predecessor.  A key is never
 *             inserted twice because the insert looks it up first under
 *             the same lock.
 *   derived - entry.prev, the bucket array and entry.chain links, the
 *             count.  Whoever takes a partition lock whose holder died
 *             rebuilds them from the list, so a process killed at any
 *             point of an insert, a delete or a resize leaves a partition
 *             that holds exactly the entries whose commit store happened:
 *             every insert that returned is found, nothing is found twice.
 * A replace (DYNSHM_HASH_REPLACE) never writes a value in place: it
 * makes a new entry and commits by storing it into its predecessor's
 * link, so a crash leaves the old value or the new one, whole.
 * What a crash can leak (never corrupt): the entry of an insert or replace
 * killed before its commit, the entry of a delete or the old entry of a
 * replace killed after it, and the bucket array a resize was building or
 * giving back.  The area counts them as used.
 *
 * LOCKS.  parts[p].lock guards every field of partition p and of its
 * entries; the header is written once at creation.
 */
#include "area_int.h"
#include "hash_int.h"

#include "../error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * A lookup in a large table is two cache misses, and the processor can
 * overlap one lookup's misses with the next lookup's only while both fit
 * in its reorder window, so the lookup's path is kept short: what every
 * lookup runs (hashing, translating a pointer, checking an entry, the
 * uncontended lock) is inlined, and the rest is out of line.
 */
#define HOT static inline __attribute__((always_inline))

struct dynshm_hash {
	dynshm_area *area;
	dynshm_area_ptr self;
	struct hash_hdr *hdr;
};

HOT uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

HOT uint64_t hash_bytes(const unsigned char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	uint64_t w;

	if (n == 8) { /* the loop below, unrolled: the same value */
		memcpy(&w, p, 8);
		return mix((h ^ mix(w)) * 0x9e3779b97f4a7c15ull);
	}
	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&w, p, 8);
		h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ull;
	}
	w = 0;
	memcpy(&w, p, n);
	return mix(h ^ w);
}

/* Bytes a key takes in an entry: the value starts 8-byte aligned after it. */
HOT size_t key_room(size_t klen)
{
	return (klen + 7) & ~(size_t)7;
}

static inline void *at(struct dynshm_hash *t, dynshm_area_ptr p)
{
	return dynshm_area_get(t->area, p);
}

/*
 * BOUNDS.  Every pointer and size followed here was read back from shared
 * memory, so each is checked before use: an entry or a bucket array must
 * lie whole inside its segment's mapping (area_get_span), an entry's key
 * length and value offset must agree with the table, a walk along a list
 * or chain stops at a cycle (Brent's: a step counter and one saved
 * pointer), and a list neighbour about to be written must link back to
 * the entry.  What fails marks the partition dirty: its derived data is
 * rebuilt from the list, and an operation that still finds it wrong says
 * -EUCLEAN.  A scribble can make a table fail, never reach outside it.
 */
HOT struct hash_entry *entry_at(struct dynshm_hash *t, dynshm_area_ptr e)
{
	uint64_t room = 0;
	struct hash_entry *he = area_get_room(t->area, e, &room);
	uint32_t klen;

	if (!he || room < sizeof(*he))
		return NULL;
	klen = he->klen;
	if (klen == 0 || klen > DYNSHM_HASH_KEY_MAX + 1 ||
	    (t->hdr->key_size && klen != t->hdr->key_size) ||
	    he->voff != key_room(klen) ||
	    room - sizeof(*he) < (uint64_t)he->voff + t->hdr->value_size)
		return NULL;
	return he;
}

HOT struct hash_buckets *buckets_at(struct dynshm_hash *t,
				    dynshm_area_ptr b)
{
	uint64_t room = 0, log2;
	struct hash_buckets *bk = area_get_room(t->area, b, &room);

	if (!bk || room < sizeof(*bk))
		return NULL;
	log2 = bk->log2;
	if (log2 < HASH_MIN_LOG2 || log2 > 40 ||
	    room - sizeof(*bk) < sizeof(bk->b[0]) << log2)
		return NULL;
	return bk;
}

/* Brent's cycle check: call with each pointer of a walk; true: a cycle. */
struct walk {
	dynshm_area_ptr saved;
	uint64_t steps, power;
};

HOT bool walk_cycles(struct walk *w, dynshm_area_ptr e)
{
	if (w->power == 0) {
		w->power = 1;
		w->saved = e;
		return false;
	}
	if (e == w->saved)
		return true;
	if (++w->steps == w->power) {
		w->power *= 2;
		w->steps = 0;
		w->saved = e;
	}
	return false;
}

HOT size_t key_len(struct dynshm_hash *t, const void *key)
{
	return t->hdr->key_size ? t->hdr->key_size : strlen(key) + 1;
}

/* Rebuild prev links, count and bucket chains of part from its list. */
static int part_rebuild(struct dynshm_hash *t, struct hash_part *pt)
{
	struct hash_buckets *bk = buckets_at(t, pt->buckets);
	struct walk w = { 0 };
	dynshm_area_ptr prev = 0, e;
	uint64_t n = 0, mask;

	if (!bk)
		return -EUCLEAN;
	mask = (UINT64_C(1) << bk->log2) - 1;
	pt->log2_hint = (uint32_t)bk->log2;
	memset(bk->b, 0, sizeof(bk->b[0]) << bk->log2);
	for (e = pt->head; e; ) {
		struct hash_entry *he = entry_at(t, e);

		if (!he || walk_cycles(&w, e))
			return -EUCLEAN;
		he->prev = prev;
		he->chain = bk->b[he->hash & mask];
		bk->b[he->hash & mask] = e;
		AREA_HOOK("hash.rebuild");
		n++;
		prev = e;
		e = he->next;
	}
	pt->count = n;
	return 0;
}

/* part_lock's way when the lock is not simply free: wait for it. */
static int part_lock_wait(struct dynshm_hash *t, struct hash_part *pt)
{
	uint64_t me;
	bool stolen;
	int rc = area_token(t->area, &me);

	if (rc == 0)
		rc = tlock_take(area_instance(t->area), &pt->lock, me,
				false, &stolen);
	if (rc < 0)
		return dynshm_fail(-rc, "cannot take a partition lock of hash "
				    "table 0x%016" PRIx64 ": %s", t->self,
				    strerror(-rc));
	if (stolen)
		pt->dirty = 1;
	return 0;
}

/* part_lock's way when a repair is due (lock held); gives it on failure. */
static int part_repair(struct dynshm_hash *t, struct hash_part *pt)
{
	int rc = part_rebuild(t, pt);

	if (rc < 0) {
		tlock_give(&pt->lock);
		return dynshm_fail(-rc, "cannot repair hash table 0x%016" PRIx64
				   ": its list of entries is corrupt or "
				   "cannot be mapped", t->self);
	}
	pt->dirty = 0;
	return 0;
}

/* Take pt's lock, repairing the partition if a holder died; 0 or -errno. */
HOT int part_lock(struct dynshm_hash *t, struct hash_part *pt)
{
	uint64_t me;

	if (!tlock_token_cached(&t->area->me, &t->area->me_gen, &me) ||
	    !tlock_try_free(&pt->lock, me)) {
		int rc = part_lock_wait(t, pt);

		if (rc < 0)
			return rc;
	}
	if (pt->dirty)
		return part_repair(t, pt);
	return 0;
}

static int buckets_new(struct dynshm_hash *t, uint64_t log2,
		       dynshm_area_ptr *out)
{
	struct hash_buckets *bk;
	int rc = dynshm_area_alloc(t->area, sizeof(*bk) +
				   (sizeof(bk->b[0]) << log2),
				   DYNSHM_AREA_ZERO, out);

	if (rc < 0)
		return rc;
	bk = at(t, *out);
	bk->log2 = log2;
	return 0;
}

/* Double part's buckets (lock held); failure leaves it as it was. */
static void part_grow(struct dynshm_hash *t, struct hash_part *pt)
{
	struct hash_buckets *old = buckets_at(t, pt->buckets);
	dynshm_area_ptr nb, ob = pt->buckets;

	if (!old || old->log2 >= 40 ||
	    buckets_new(t, old->log2 + 1, &nb) < 0)
		return;
	/* Commit: readers after us use the new array; rebuild fills it. */
	pt->buckets = nb;
	AREA_HOOK("hash.grow");
	if (part_rebuild(t, pt) < 0) {
		pt->buckets = ob;
		pt->dirty = 1;
		dynshm_area_free(t->area, nb);
		return;
	}
	pt->log2_hint = (uint32_t)old->log2 + 1;
	dynshm_area_free(t->area, ob);
}

/*
 * The entry with key in part, its address in *hep, and in *link the chain
 * link to it.
 */
HOT bool keys_equal(const unsigned char *a, const void *b, size_t n)
{
	uint64_t x, y;

	if (n != 8)
		return memcmp(a, b, n) == 0;
	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	return x == y;
}

HOT dynshm_area_ptr part_find(struct dynshm_hash *t, struct hash_part *pt,
				 uint64_t h, const void *key, size_t klen,
				 dynshm_area_ptr **link, struct hash_entry **hep)
{
	struct hash_buckets *bk = buckets_at(t, pt->buckets);
	struct walk w = { 0 };
	dynshm_area_ptr *l, e;

	if (!bk) {
		pt->dirty = 1;
		return 0;
	}
	l = &bk->b[h & ((UINT64_C(1) << bk->log2) - 1)];
	for (e = *l; e; ) {
		struct hash_entry *he = entry_at(t, e);

		if (!he || walk_cycles(&w, e)) {
			pt->dirty = 1;
			return 0;
		}
		if (he->hash == h && he->klen == klen &&
		    keys_equal(he->data, key, klen)) {
			if (link)
				*link = l;
			*hep = he;
			return e;
		}
		l = &he->chain;
		e = he->chain;
	}
	return 0;
}

/*
 * part_find, trusted: the entry found (0: none) and, for one that is found,
 * list neighbours that link back to it, so that the commit store of a
 * delete or replace lands in the right place.  Derived data found wrong
 * is rebuilt once; -EUCLEAN if the partition is still wrong after that.
 */
static int locate(struct dynshm_hash *t, struct hash_part *pt, uint64_t h,
		  const void *key, size_t klen, dynshm_area_ptr **link,
		  dynshm_area_ptr *out, struct hash_entry **hep)
{
	for (int round = 0;; round++) {
		struct hash_entry *he = NULL, *nb;
		dynshm_area_ptr e = part_find(t, pt, h, key, klen, link, &he);

		if (!link) {
			/* a lookup writes nothing: the chain walk suffices */
		} else if (he && he->prev) {
			nb = entry_at(t, he->prev);
			if (!nb || nb->next != e)
				pt->dirty = 1;
		} else if (he && pt->head != e) {
			pt->dirty = 1;
		}
		if (link && he && he->next && !entry_at(t, he->next))
			pt->dirty = 1;
		if (!pt->dirty) {
			*out = e;
			if (hep)
				*hep = e ? he : NULL;
			return 0;
		}
		if (round == 1 || part_rebuild(t, pt) < 0)
			return dynshm_fail(EUCLEAN, "hash table 0x%016" PRIx64
					   " is corrupt (a partition's links "
					   "do not hold)", t->self);
		pt->dirty = 0;
	}
}

HOT int check_key(struct dynshm_hash *t, const void *key, size_t *klen)
{
	*klen = 0;
	if (!t || !key)
		return dynshm_fail(EINVAL, "hash table: NULL table or key");
	*klen = key_len(t, key);
	if (*klen > DYNSHM_HASH_KEY_MAX + 1)
		return dynshm_fail(EINVAL, "hash table key of %zu bytes: at "
				   "most %u allowed", *klen - 1,
				   DYNSHM_HASH_KEY_MAX);
	return 0;
}

/* Check key, hash it and lock its partition (*pt). */
static int key_lock(struct dynshm_hash *t, const void *key, size_t *klen,
		    uint64_t *h, struct hash_part **pt)
{
	int rc = check_key(t, key, klen);

	if (rc < 0)
		return rc;
	*h = hash_bytes(key, *klen);
	*pt = &t->hdr->parts[*h >> HASH_PART_SHIFT];
	return part_lock(t, *pt);
}

/* A new entry for key and value, not linked anywhere yet. */
static int entry_new(struct dynshm_hash *t, uint64_t h, const void *key,
		     size_t klen, const void *value, dynshm_area_ptr *out)
{
	size_t voff = key_room(klen);
	struct hash_entry *he;
	int rc = dynshm_area_alloc(t->area, sizeof(*he) + voff +
				   t->hdr->value_size, 0, out);

	if (rc < 0)
		return rc;
	he = at(t, *out);
	he->hash = h;
	he->klen = (uint32_t)klen;
	he->voff = (uint32_t)voff;
	memcpy(he->data, key, klen);
	if (t->hdr->value_size)
		memcpy(he->data + voff, value, t->hdr->value_size);
	return 0;
}

/*
 * Put a new entry ne in the place of old (lock held; link is the chain
 * link to old).  The value is never overwritten in place, so a process
 * killed here leaves the old value or the new one, never half of each.
 */
static void entry_swap(struct dynshm_hash *t, struct hash_part *pt,
		       dynshm_area_ptr old, dynshm_area_ptr ne,
		       dynshm_area_ptr *link)
{
	/* old and its neighbours were checked by locate */
	struct hash_entry *oh = entry_at(t, old), *nh = at(t, ne);

	nh->next = oh->next;
	nh->prev = oh->prev;
	nh->chain = oh->chain;
	/* Commit: the new entry takes the old one's place in the list. */
	if (oh->prev)
		entry_at(t, oh->prev)->next = ne;
	else
		pt->head = ne;
	AREA_HOOK("hash.replaced");
	if (oh->next)
		entry_at(t, oh->next)->prev = ne;
	*link = ne;
}

DYNSHM_EXPORT int dynshm_hash_insert(dynshm_hash *t, const void *key,
				     const void *value, unsigned flags)
{
	dynshm_area_ptr e, old, *link = NULL;
	struct hash_part *pt;
	struct hash_entry *he;
	struct hash_buckets *bk;
	size_t klen;
	uint64_t h;
	int rc;

	if (flags & ~DYNSHM_HASH_REPLACE)
		return dynshm_fail(EINVAL, "dynshm_hash_insert: unknown flags "
				   "0x%x (allowed: DYNSHM_HASH_REPLACE)",
				   flags);
	rc = key_lock(t, key, &klen, &h, &pt);
	if (rc < 0)
		return rc;
	rc = locate(t, pt, h, key, klen, &link, &old, NULL);
	if (rc < 0)
		goto out;
	if (old && !(flags & DYNSHM_HASH_REPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	rc = entry_new(t, h, key, klen, value, &e);
	if (rc < 0)
		goto out;
	if (old) {
		entry_swap(t, pt, old, e, link);
		tlock_give(&pt->lock);
		return dynshm_area_free(t->area, old);
	}
	he = at(t, e);
	he->prev = 0;
	he->next = pt->head;
	/* Commit: the entry is in the table. */
	atomic_store_explicit((_Atomic uint64_t *)&pt->head, e,
			      memory_order_release);
	AREA_HOOK("hash.inserted");
	if (he->next) {
		struct hash_entry *nb = entry_at(t, he->next);

		if (nb)
			nb->prev = e;
		else
			pt->dirty = 1; /* the next lock rebuilds */
	}
	AREA_HOOK("hash.prev");
	bk = buckets_at(t, pt->buckets);
	if (!bk) {
		pt->dirty = 1;
		goto out;
	}
	he->chain = bk->b[h & ((UINT64_C(1) << bk->log2) - 1)];
	bk->b[h & ((UINT64_C(1) << bk->log2) - 1)] = e;
	/*
	 * Grow at half full: a found key then sits on average 1.1-1.25
	 * entries down its chain instead of 1.25-1.5, and in a table larger
	 * than the caches each entry passed is a DRAM miss (docs/
	 * performance.md); the price is 8 bytes of bucket per key.
	 */
	if (++pt->count > (UINT64_C(1) << bk->log2) / 2)
		part_grow(t, pt);
out:
	tlock_give(&pt->lock);
	return rc;
}

/*
 * Start loading the bucket slot of hash h before the partition lock is
 * taken, so that its cache miss (in a large table, a DRAM access and a
 * page walk) overlaps the lock.  Everything read here is read unlocked
 * and may be stale or scribbled: it only chooses an address to prefetch,
 * which cannot fault, and nothing is dereferenced.
 */
HOT void prefetch_bucket(struct dynshm_hash *t, struct hash_part *pt,
			 uint64_t h)
{
	uint32_t log2 = atomic_load_explicit((_Atomic uint32_t *)&pt->log2_hint,
					     memory_order_relaxed);
	dynshm_area_ptr b = atomic_load_explicit(
		(_Atomic uint64_t *)&pt->buckets, memory_order_relaxed);
	uint64_t room = 0;
	char *base;

	if (log2 < HASH_MIN_LOG2 || log2 > 40)
		return;
	base = area_get_room(t->area, b, &room);
	if (base)
		__builtin_prefetch(base + sizeof(struct hash_buckets) +
				   sizeof(dynshm_area_ptr) *
					   (h & ((UINT64_C(1) << log2) - 1)));
}

DYNSHM_EXPORT int dynshm_hash_find(dynshm_hash *t, const void *key,
				   void *value)
{
	struct hash_part *pt;
	struct hash_entry *he;
	dynshm_area_ptr e;
	size_t klen;
	uint64_t h;
	int rc = check_key(t, key, &klen);

	if (rc < 0)
		return rc;
	h = hash_bytes(key, klen);
	pt = &t->hdr->parts[h >> HASH_PART_SHIFT];
	prefetch_bucket(t, pt, h);
	rc = part_lock(t, pt);
	if (rc < 0)
		return rc;
	/*
	 * One translation of the entry, checked by entry_at.  A link that
	 * fails its checks marks the partition dirty: locate then rebuilds
	 * and looks again.
	 */
	he = NULL;
	e = part_find(t, pt, h, key, klen, NULL, &he);
	if (pt->dirty) {
		rc = locate(t, pt, h, key, klen, NULL, &e, &he);
		if (rc < 0) {
			tlock_give(&pt->lock);
			return rc;
		}
	}
	if (e && value) {
		if (t->hdr->value_size == 8)
			memcpy(value, he->data + he->voff, 8);
		else
			memcpy(value, he->data + he->voff,
			       t->hdr->value_size);
	}
	tlock_give(&pt->lock);
	return e ? 0 : -ENOENT;
}

DYNSHM_EXPORT int dynshm_hash_delete(dynshm_hash *t, const void *key)
{
	struct hash_part *pt;
	struct hash_entry *he;
	dynshm_area_ptr e, *link;
	size_t klen;
	uint64_t h;
	int rc = key_lock(t, key, &klen, &h, &pt);

	if (rc < 0)
		return rc;
	rc = locate(t, pt, h, key, klen, &link, &e, NULL);
	if (rc < 0 || !e) {
		tlock_give(&pt->lock);
		return rc < 0 ? rc : -ENOENT;
	}
	he = entry_at(t, e); /* it and its neighbours checked by locate */
	/* Commit: the entry is out of the table. */
	if (he->prev)
		entry_at(t, he->prev)->next = he->next;
	else
		pt->head = he->next;
	AREA_HOOK("hash.deleted");
	if (he->next)
		entry_at(t, he->next)->prev = he->prev;
	*link = he->chain;
	AREA_HOOK("hash.unchained");
	pt->count--;
	tlock_give(&pt->lock);
	return dynshm_area_free(t->area, e);
}

DYNSHM_EXPORT int dynshm_hash_foreach(dynshm_hash *t, dynshm_hash_fn fn,
				      void *arg)
{
	int rc = 0;

	if (!t || !fn)
		return dynshm_fail(EINVAL, "dynshm_hash_foreach: NULL argument");
	for (uint32_t p = 0; p < HASH_NPARTS && rc == 0; p++) {
		struct hash_part *pt = &t->hdr->parts[p];

		rc = part_lock(t, pt);
		if (rc < 0)
			return rc;
		struct walk w = { 0 };

		for (dynshm_area_ptr e = pt->head; e && rc == 0; ) {
			struct hash_entry *he = entry_at(t, e);

			if (!he || walk_cycles(&w, e)) {
				rc = dynshm_fail(EUCLEAN, "hash table 0x%016"
						 PRIx64 " is corrupt (its list "
						 "of entries)", t->self);
				break;
			}
			rc = fn(he->data, t->hdr->key_size ? he->klen :
				he->klen - 1, he->data + he->voff, arg);
			e = he->next;
		}
		tlock_give(&pt->lock);
	}
	return rc;
}

DYNSHM_EXPORT int dynshm_hash_count(dynshm_hash *t, uint64_t *count)
{
	uint64_t n = 0;

	if (!t || !count)
		return dynshm_fail(EINVAL, "dynshm_hash_count: NULL argument");
	for (uint32_t p = 0; p < HASH_NPARTS; p++) {
		int rc = part_lock(t, &t->hdr->parts[p]);

		if (rc < 0)
			return rc;
		n += t->hdr->parts[p].count;
		tlock_give(&t->hdr->parts[p].lock);
	}
	*count = n;
	return 0;
}

/* The largest value_size whose entries fit the area's small objects. */
static size_t hash_value_max(size_t key_size)
{
	size_t key = key_size ? key_size : DYNSHM_HASH_KEY_MAX + 1;

	return DYNSHM_AREA_SMALL_MAX - sizeof(struct hash_entry) -
	       key_room(key);
}

static int hash_open(dynshm_area *area, dynshm_area_ptr self,
		     dynshm_hash **out)
{
	struct dynshm_hash *t;
	struct hash_hdr *h;

	/*
	 * NULL from area_get_span: either the segment could not be mapped
	 * (dynshm_attach said why) or the pointer names no allocation of
	 * the area, which records nothing: say so, rather than leave an
	 * earlier failure's message to be read as this one's.
	 */
	dynshm_clear_error();
	h = area_get_span(area, self, sizeof(*h));
	if (!h && dynshm_last_error()[0])
		return -ENOENT;
	if (!h)
		return dynshm_fail(ENOENT, "area pointer 0x%016" PRIx64 " is "
				   "not inside a segment of area 0x%016" PRIx64
				   ": no hash table there", self,
				   dynshm_area_handle(area));
	if (h->magic != HASH_MAGIC)
		return dynshm_fail(EUCLEAN, "area pointer 0x%016" PRIx64
				   " is not a hash table", self);
	t = calloc(1, sizeof(*t));
	if (!t)
		return dynshm_fail(ENOMEM, "out of memory for a table handle");
	t->area = area;
	t->self = self;
	t->hdr = h;
	*out = t;
	return 0;
}

DYNSHM_EXPORT int dynshm_hash_create(dynshm_area *area, size_t key_size,
				     size_t value_size, dynshm_area_ptr *table,
				     dynshm_hash **out)
{
	struct hash_hdr *h;
	struct dynshm_hash tmp;
	dynshm_area_ptr self;
	uint32_t p;
	int rc;

	if (!area || !table || !out || key_size > DYNSHM_HASH_KEY_MAX)
		return dynshm_fail(EINVAL, "dynshm_hash_create: NULL argument, "
				   "or key_size %zu above %u", key_size,
				   DYNSHM_HASH_KEY_MAX);
	/*
	 * Every entry must be a small object of the area: a larger one gets
	 * a segment of its own, and the area has at most AREA_MAX_SEGS, so a
	 * table of them would fail after about a thousand entries.
	 */
	if (value_size > hash_value_max(key_size))
		return dynshm_fail(EINVAL, "dynshm_hash_create: value_size %zu "
				   "above %zu, the most an entry with %s "
				   "keys leaves (an entry must fit in %u "
				   "bytes)", value_size,
				   hash_value_max(key_size),
				   key_size ? "these" : "string",
				   DYNSHM_AREA_SMALL_MAX);
	rc = dynshm_area_alloc(area, sizeof(*h), DYNSHM_AREA_ZERO, &self);
	if (rc < 0)
		return rc;
	h = dynshm_area_get(area, self);
	h->key_size = (uint32_t)key_size;
	h->value_size = (uint32_t)value_size;
	tmp.area = area;
	tmp.hdr = h;
	for (p = 0; p < HASH_NPARTS; p++) {
		rc = buckets_new(&tmp, HASH_MIN_LOG2, &h->parts[p].buckets);
		if (rc < 0)
			goto fail;
		h->parts[p].log2_hint = HASH_MIN_LOG2;
		memset(&h->parts[p].lock, 0, sizeof(h->parts[p].lock));
	}
	h->magic = HASH_MAGIC;
	rc = hash_open(area, self, out);
	if (rc < 0)
		goto fail;
	*table = self;
	return 0;
fail:
	while (p-- > 0)
		dynshm_area_free(area, h->parts[p].buckets);
	dynshm_area_free(area, self);
	return rc;
}

DYNSHM_EXPORT int dynshm_hash_attach(dynshm_area *area, dynshm_area_ptr table,
				     dynshm_hash **out)
{
	if (!area || !out)
		return dynshm_fail(EINVAL, "dynshm_hash_attach: NULL argument");
	return hash_open(area, table, out);
}

DYNSHM_EXPORT int dynshm_hash_detach(dynshm_hash *t)
{
	if (!t)
		return dynshm_fail(EINVAL, "dynshm_hash_detach: NULL table");
	free(t);
	return 0;
}

DYNSHM_EXPORT int dynshm_hash_destroy(dynshm_hash *t)
{
	if (!t)
		return dynshm_fail(EINVAL, "dynshm_hash_destroy: NULL table");
	for (uint32_t p = 0; p < HASH_NPARTS; p++) {
		struct hash_part *pt = &t->hdr->parts[p];
		struct walk w = { 0 };
		int rc = part_lock(t, pt);

		if (rc < 0)
			return rc;
		while (pt->head && !walk_cycles(&w, pt->head)) {
			dynshm_area_ptr e = pt->head;
			struct hash_entry *he = entry_at(t, e);

			/* a corrupt list: what it still names is leaked */
			pt->head = he ? he->next : 0;
			dynshm_area_free(t->area, e);
		}
		dynshm_area_free(t->area, pt->buckets);
		pt->buckets = 0;
		tlock_give(&pt->lock);
	}
	t->hdr->magic = 0;
	dynshm_area_free(t->area, t->self);
	free(t);
	return 0;
}
