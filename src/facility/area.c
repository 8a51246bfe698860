/* SPDX-License-Identifier: MIT */
/*
 * area.c - a shared area: an allocator whose memory spans dynshm segments
 * made on demand, with pointers valid in every process.
 *
 * Why this shape.  PostgreSQL's dsa keeps its free lists in the memory it
 * manages and cannot survive a backend killed inside it: the postmaster
 * restarts everyone.  Here every allocation and free has one commit store
 * (a bit in a page's bitmap, a page descriptor, a segment state) and all
 * other bookkeeping is derived and recomputed by whoever next takes a lock
 * whose holder died (area_int.h has the split).  Bitmaps rather than free
 * lists threaded through the objects because a free list half-updated by a
 * dead process cannot be told from a good one, while a bit is either set
 * or not; finding a clear bit is one ctz per 64 objects.
 *
 * Speed.  Small sizes come from 64 KiB pages of one size class, owned by
 * one of AREA_NPARTS partitions with a lock each (glibc's arenas): a
 * process sticks to one partition (taken round robin when it first
 * allocates) and moves to the next when its lock is busy, so two processes
 * allocating at once rarely meet.  The area lock is taken only to take or
 * give back a whole page or segment.  A free goes to the partition that
 * owns the page.  Larger allocations get a segment each: they are rare and
 * the segment's creation costs more than any bookkeeping.  On top, each
 * thread keeps a few free objects per class in a cache slot in shared
 * memory (area_int.h, struct area_cache), owned by its process's liveness
 * token, so most alloc/free pairs take no lock at all; the caches of dead
 * processes are emptied by whoever finds them.
 *
 * Segments are named (dynshm.area.<area>.<index>.<gen>) so that a process
 * killed between making one and recording its handle leaves something the
 * next lock holder can find and destroy: nothing leaks.
 */
#include "area_int.h"

#include "../error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DYNSHM_TEST_HOOKS
void (*dynshm_area_test_hook)(const char *point);
#endif


/* ---- size classes -------------------------------------------------------- */

static const uint32_t class_size[AREA_NCLASSES] = {
	16,   32,   48,   64,   80,   96,   112,  128,  160,  192,  224,
	256,  320,  384,  448,  512,  640,  768,  896,  1024, 1280, 1536,
	1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
};

static struct {
	uint32_t nobj;	 /* objects in a page */
	uint32_t nwords; /* bitmap words */
	uint32_t objoff; /* offset of object 0 in the page */
	uint32_t inv;	 /* ceil(2^32 / size): x / size == x * inv >> 32 */
} classes[AREA_NCLASSES];
static uint8_t small_class[DYNSHM_AREA_SMALL_MAX / 16 + 1];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

/* This thread's partition; AREA_NONE until it first allocates. */
/* initial-exec: no __tls_get_addr call on the fast path (measured). */
#define AREA_TLS __thread __attribute__((tls_model("initial-exec")))
static AREA_TLS uint32_t my_part = AREA_NONE;

/* This thread's caches, by the open_id of the area handle. */
#define TL_CACHES 4
static AREA_TLS struct {
	uint64_t open_id;
	struct area_cache *c; /* NULL: none free when we looked */
} tl_caches[TL_CACHES];
static _Atomic uint64_t next_open_id = 1;

/* In a forked child: the caches' locks are the parent's threads'. */
static void forget_part(void)
{
	my_part = AREA_NONE;
	memset(tl_caches, 0, sizeof(tl_caches));
}

static void classes_init(void)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < AREA_NCLASSES; i++) {
		uint32_t n = (AREA_PAGE_SIZE - sizeof(struct area_page)) /
			     class_size[i];

		for (;;) {
			uint32_t words = (n + 63) / 64;
			uint32_t off = (sizeof(struct area_page) + words * 8 +
					63) & ~63u;

			if (off + n * class_size[i] <= AREA_PAGE_SIZE) {
				classes[i].nobj = n;
				classes[i].nwords = words;
				classes[i].objoff = off;
				classes[i].inv = (uint32_t)(((UINT64_C(1) << 32) +
					class_size[i] - 1) / class_size[i]);
				break;
			}
			n--;
		}
	}
	for (uint32_t s = 0; s <= DYNSHM_AREA_SMALL_MAX / 16; s++) {
		while (class_size[c] < s * 16)
			c++;
		small_class[s] = (uint8_t)c;
	}
	pthread_atfork(NULL, NULL, forget_part);
}

static inline uint32_t size_to_class(size_t size)
{
	return small_class[(size + 15) / 16];
}

static inline uint32_t desc_make(uint32_t part, uint32_t cls)
{
	return 1u | cls << 1 | part << 8;
}

/*
 * A taken page's descriptor as read from shared memory: its class and
 * partition index local arrays, so a scribbled one must not pass.
 */
static inline bool desc_valid(uint32_t d)
{
	return (d & 1) && ((d >> 1) & 0x7f) < AREA_NCLASSES &&
	       d >> 8 < AREA_NPARTS;
}

/* ---- mapping ------------------------------------------------------------- */

char *area_map_slow(struct dynshm_area *a, uint32_t idx)
{
	struct area_seg *s = &a->hdr->segs[idx];
	struct area_map *m = &a->map[idx];
	uint64_t h = atomic_load_explicit(&s->handle, memory_order_acquire);
	dynshm_segment *seg;
	char *base = NULL;
	int rc;

	pthread_mutex_lock(&a->maplock);
	if (m->base && atomic_load(&m->handle) == h) {
		base = m->base;
		goto out;
	}
	if (m->seg) {
		/* A segment given back since: drop our mapping of it. */
		atomic_store(&m->base, NULL);
		dynshm_detach(m->seg);
		m->seg = NULL;
	}
	if (h == 0)
		goto out;
	rc = dynshm_attach(a->inst, h, &seg);
	if (rc < 0)
		goto out;
	m->seg = seg;
	atomic_store_explicit(&m->handle, h, memory_order_release);
	atomic_store_explicit(&m->size, dynshm_segment_size(seg),
			      memory_order_relaxed);
	base = dynshm_segment_address(seg);
	atomic_store_explicit(&m->base, base, memory_order_release);
out:
	pthread_mutex_unlock(&a->maplock);
	return base;
}


/* Record a segment this process just made, already mapped. */
static void seg_adopt(struct dynshm_area *a, uint32_t idx, dynshm_segment *seg)
{
	struct area_map *m = &a->map[idx];

	pthread_mutex_lock(&a->maplock);
	atomic_store(&m->base, NULL);
	if (m->seg)
		dynshm_detach(m->seg);
	m->seg = seg;
	atomic_store_explicit(&m->handle, dynshm_segment_handle(seg),
			      memory_order_release);
	atomic_store_explicit(&m->size, dynshm_segment_size(seg),
			      memory_order_relaxed);
	atomic_store_explicit(&m->base, (char *)dynshm_segment_address(seg),
			      memory_order_release);
	pthread_mutex_unlock(&a->maplock);
}

static void seg_forget(struct dynshm_area *a, uint32_t idx)
{
	struct area_map *m = &a->map[idx];

	pthread_mutex_lock(&a->maplock);
	atomic_store(&m->base, NULL);
	if (m->seg)
		dynshm_detach(m->seg);
	m->seg = NULL;
	atomic_store(&m->handle, 0);
	pthread_mutex_unlock(&a->maplock);
}

/*
 * A page by id (segment << 8 | page).  Ids come from shared memory (the
 * partial lists, a page's links): one that names no page of an active
 * PAGES segment gives NULL, never an address outside the segment.
 */
static inline struct area_page *page_at(struct dynshm_area *a, uint32_t id)
{
	uint32_t idx = id >> 8;
	char *base;

	if (idx == 0 || idx >= AREA_MAX_SEGS || (id & 0xff) >= AREA_SEG_PAGES ||
	    atomic_load_explicit(&a->hdr->segs[idx].state,
				 memory_order_relaxed) != SEG_ACTIVE ||
	    a->hdr->segs[idx].kind != KIND_PAGES)
		return NULL;
	base = area_seg_base(a, idx);
	if (!base)
		return NULL;
	return (struct area_page *)(base + AREA_SEG_HDR +
				    (size_t)(id & 0xff) * AREA_PAGE_SIZE);
}

static void seg_name(const struct dynshm_area *a, uint32_t idx, uint32_t gen,
		     char *buf, size_t len)
{
	snprintf(buf, len, "dynshm.area.%016" PRIx64 ".%u.%u", a->hdr->self,
		 idx, gen);
}

/* ---- segments (area lock held) ------------------------------------------- */

/* Finish what a dead holder of the area lock left: area_int.h. */
static int area_repair_locked(struct dynshm_area *a)
{
	struct area_hdr *h = a->hdr;
	uint64_t total = h->segs[0].size;

	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++) {
		struct area_seg *s = &h->segs[i];
		uint32_t st = atomic_load(&s->state);
		char name[DYNSHM_SEGMENT_NAME_MAX + 1];
		dynshm_segment *seg;

		if (st == SEG_CREATING) {
			seg_name(a, i, s->gen, name, sizeof(name));
			if (dynshm_attach_named(a->inst, name, &seg) == 0) {
				dynshm_destroy(a->inst,
					       dynshm_segment_handle(seg));
				dynshm_detach(seg);
			}
		} else if (st == SEG_FREEING) {
			dynshm_destroy(a->inst, atomic_load(&s->handle));
		}
		if (st == SEG_CREATING || st == SEG_FREEING) {
			seg_forget(a, i);
			atomic_store(&s->handle, 0);
			s->gen++;
			atomic_store_explicit(&s->state, SEG_FREE,
					      memory_order_release);
			continue;
		}
		if (st != SEG_ACTIVE)
			continue;
		total += s->size;
		if (s->kind == KIND_PAGES) {
			struct area_seghdr *sh = (void *)area_seg_base(a, i);
			uint32_t n = 0;

			if (!sh)
				return -ENOENT;
			for (uint32_t p = 0; p < AREA_SEG_PAGES; p++)
				n += atomic_load(&sh->desc[p]) == 0;
			s->free_pages = n;
		}
	}
	h->total_bytes = total;
	h->seg_hint = 1;
	return 0;
}

int area_token(struct dynshm_area *a, uint64_t *me)
{
	return tlock_token(a->inst, &a->me, &a->me_gen, me);
}

dynshm_instance *area_instance(struct dynshm_area *a)
{
	return a->inst;
}

/*
 * Take m (waiting, or -EBUSY at once if try); a holder found dead marks
 * *dirty, which the caller repairs before going on.
 */
static int robust_lock(struct dynshm_area *a, struct dynshm_tlock *m,
		       uint32_t *dirty, const char *what, bool try)
{
	uint64_t me;
	bool stolen;
	int rc = area_token(a, &me);

	if (rc == 0)
		rc = tlock_take(a->inst, m, me, try, &stolen);
	if (rc == -EBUSY)
		return rc;
	if (rc < 0)
		return dynshm_fail(-rc, "cannot take the %s of area 0x%016"
				    PRIx64 ": %s", what, a->hdr->self,
				    strerror(-rc));
	if (stolen) {
		*dirty = 1;
		atomic_fetch_add(&a->hdr->repairs, 1);
	}
	return 0;
}

static void seg_free_locked(struct dynshm_area *a, uint32_t i);

/* The refusal of a destroyed area (out of line: fast paths only test). */
static __attribute__((cold, noinline)) int area_destroyed(struct dynshm_area *a)
{
	return dynshm_fail(EIDRM, "area 0x%016" PRIx64 " was destroyed",
			   a->hdr->self);
}

/*
 * The area was destroyed (segs[0] is FREEING: area_int.h): finish what a
 * destroyer killed half-way left - its data segments and the control
 * segment - and refuse.  Without this a process still attached would make
 * new pinned segments for an area nobody can destroy any more.
 */
static int area_gone_locked(struct dynshm_area *a)
{
	struct area_hdr *h = a->hdr;

	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++)
		if (atomic_load(&h->segs[i].state) == SEG_ACTIVE)
			seg_free_locked(a, i);
	dynshm_destroy(a->inst, h->self); /* -ENOENT: done already */
	tlock_give(&h->lock);
	return area_destroyed(a);
}

static int area_lock(struct dynshm_area *a)
{
	struct area_hdr *h = a->hdr;
	int rc = robust_lock(a, &h->lock, &h->dirty, "area lock", false);

	if (rc < 0)
		return rc;
	if (h->dirty) {
		rc = area_repair_locked(a);
		if (rc < 0) {
			tlock_give(&h->lock);
			return dynshm_fail(-rc, "cannot repair area 0x%016"
					   PRIx64 " after a crash: a segment "
					   "cannot be mapped", h->self);
		}
		h->dirty = 0;
	}
	if (atomic_load(&h->segs[0].state) != SEG_ACTIVE)
		return area_gone_locked(a);
	return 0;
}

static void area_unlock(struct dynshm_area *a)
{
	tlock_give(&a->hdr->lock);
}

static int too_big(struct dynshm_area *a, uint64_t size, bool soft)
{
	struct area_hdr *h = a->hdr;

	if (h->max_size == 0 || h->total_bytes + size <= h->max_size)
		return 0;
	if (soft)
		return -ENOMEM;
	return dynshm_fail(ENOMEM, "area 0x%016" PRIx64 " has reached its "
			   "maximum of %" PRIu64 " bytes (%" PRIu64 " in use, "
			   "%" PRIu64 " more needed): free allocations or "
			   "create the area with a larger max_size",
			   h->self, h->max_size, h->total_bytes, size);
}

/* Make a segment of size bytes at a free entry; its index in *idx. */
static int seg_create_locked(struct dynshm_area *a, uint32_t kind,
			     uint64_t size, uint64_t large_bytes, bool soft,
			     uint32_t *idx)
{
	struct area_hdr *h = a->hdr;
	char name[DYNSHM_SEGMENT_NAME_MAX + 1];
	dynshm_segment *seg;
	uint32_t i;
	int rc;

	rc = too_big(a, size, soft);
	if (rc < 0)
		return rc;
	for (i = 1; i < AREA_MAX_SEGS; i++)
		if (atomic_load(&h->segs[i].state) == SEG_FREE)
			break;
	if (i == AREA_MAX_SEGS) {
		if (soft)
			return -ENOMEM;
		return dynshm_fail(ENOMEM, "area 0x%016" PRIx64 " uses all "
				   "its %u segments: free allocations",
				   h->self, AREA_MAX_SEGS - 1);
	}
	h->segs[i].kind = kind;
	h->segs[i].size = size;
	h->segs[i].large_bytes = large_bytes;
	atomic_store_explicit(&h->segs[i].state, SEG_CREATING,
			      memory_order_release);
	AREA_HOOK("seg.creating");
	seg_name(a, i, h->segs[i].gen, name, sizeof(name));
	rc = dynshm_create_named(a->inst, name, size, DYNSHM_CREATE_PIN, &seg);
	if (rc < 0) {
		atomic_store(&h->segs[i].state, SEG_FREE);
		return rc;
	}
	if (kind == KIND_PAGES) {
		struct area_seghdr *sh = dynshm_segment_address(seg);

		AREA_HOOK("seg.made");

		sh->magic = AREA_MAGIC;
		sh->index = i;
		sh->npages = AREA_SEG_PAGES;
		h->segs[i].free_pages = AREA_SEG_PAGES;
	}
	atomic_store(&h->segs[i].handle, dynshm_segment_handle(seg));
	seg_adopt(a, i, seg);
	/* Commit: from here the segment is the area's. */
	atomic_store_explicit(&h->segs[i].state, SEG_ACTIVE,
			      memory_order_release);
	h->total_bytes += size;
	*idx = i;
	return 0;
}

static void seg_free_locked(struct dynshm_area *a, uint32_t i)
{
	struct area_seg *s = &a->hdr->segs[i];

	/* Commit: the segment is no longer the area's. */
	atomic_store_explicit(&s->state, SEG_FREEING, memory_order_release);
	AREA_HOOK("seg.freeing");
	dynshm_destroy(a->inst, atomic_load(&s->handle));
	seg_forget(a, i);
	AREA_HOOK("seg.destroyed");
	atomic_store(&s->handle, 0);
	s->gen++;
	a->hdr->total_bytes -= s->size;
	atomic_store_explicit(&s->state, SEG_FREE, memory_order_release);
}

static uint32_t pages_segments_locked(struct dynshm_area *a)
{
	uint32_t n = 0;

	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++)
		n += atomic_load(&a->hdr->segs[i].state) == SEG_ACTIVE &&
		     a->hdr->segs[i].kind == KIND_PAGES;
	return n;
}

/* ---- pages (partition lock held) ----------------------------------------- */

static void page_init(struct area_page *pg, uint32_t cls)
{
	pg->cls = cls;
	pg->nobj = classes[cls].nobj;
	pg->hint = 0;
	pg->next = AREA_NONE;
	pg->prev = AREA_NONE;
	pg->nfree = pg->nobj;
	for (uint32_t w = 0; w < classes[cls].nwords; w++)
		pg->nfree -= (uint32_t)__builtin_popcountll(pg->bits[w]);
}

/*
 * The partial lists are derived data read back from shared memory: a link
 * or class that names no page (scribbled) is not followed; the partition
 * is marked for repair instead, which rebuilds the lists from the
 * descriptors and bitmaps when its lock is next taken.
 */
static struct area_page *link_at(struct dynshm_area *a, struct area_part *pt,
				 uint32_t id)
{
	struct area_page *pg = page_at(a, id);

	if (!pg)
		pt->dirty = 1;
	return pg;
}

static void partial_push(struct dynshm_area *a, struct area_part *pt,
			 uint32_t id, struct area_page *pg)
{
	uint32_t head, cls = pg->cls;
	struct area_page *hp;

	if (cls >= AREA_NCLASSES) {
		pt->dirty = 1;
		return;
	}
	head = pt->partial[cls];
	pg->prev = AREA_NONE;
	pg->next = head;
	if (head != AREA_NONE && (hp = link_at(a, pt, head)) != NULL)
		hp->prev = id;
	AREA_HOOK("list.push");
	pt->partial[cls] = id;
}

static void partial_unlink(struct dynshm_area *a, struct area_part *pt,
			   struct area_page *pg)
{
	uint32_t prev = pg->prev, next = pg->next, cls = pg->cls;
	struct area_page *np;

	if (cls >= AREA_NCLASSES) {
		pt->dirty = 1;
		return;
	}
	if (prev != AREA_NONE) {
		if ((np = link_at(a, pt, prev)) != NULL)
			np->next = next;
	} else {
		pt->partial[cls] = next;
	}
	AREA_HOOK("list.unlink");
	if (next != AREA_NONE && (np = link_at(a, pt, next)) != NULL)
		np->prev = prev;
	pg->next = pg->prev = AREA_NONE;
}

/* Rebuild partition p's lists from descriptors and bitmaps. */
static int part_repair_locked(struct dynshm_area *a, uint32_t p)
{
	struct area_part *pt = &a->hdr->parts[p];
	int rc = area_lock(a);

	if (rc < 0)
		return rc;
	for (uint32_t c = 0; c < AREA_NCLASSES; c++)
		pt->partial[c] = AREA_NONE;
	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++) {
		struct area_seg *s = &a->hdr->segs[i];
		struct area_seghdr *sh;

		if (atomic_load(&s->state) != SEG_ACTIVE ||
		    s->kind != KIND_PAGES)
			continue;
		sh = (void *)area_seg_base(a, i);
		if (!sh) {
			area_unlock(a);
			return -ENOENT;
		}
		for (uint32_t n = 0; n < AREA_SEG_PAGES; n++) {
			uint32_t d = atomic_load(&sh->desc[n]);
			uint32_t id = i << 8 | n;
			struct area_page *pg;

			/* a scribbled descriptor: the page stays out */
			if (!desc_valid(d) || d >> 8 != p)
				continue;
			pg = page_at(a, id);
			page_init(pg, (d >> 1) & 0x7f);
			if (pg->nfree > 0)
				partial_push(a, pt, id, pg);
		}
	}
	area_unlock(a);
	return 0;
}

static int part_lock(struct dynshm_area *a, uint32_t p, bool try)
{
	struct area_part *pt = &a->hdr->parts[p];
	int rc = robust_lock(a, &pt->lock, &pt->dirty, "partition lock", try);

	if (rc < 0)
		return rc;
	if (pt->dirty) {
		rc = part_repair_locked(a, p);
		if (rc < 0) {
			tlock_give(&pt->lock);
			return dynshm_fail(-rc, "cannot repair partition %u of "
					   "area 0x%016" PRIx64 " after a "
					   "crash", p, a->hdr->self);
		}
		pt->dirty = 0;
	}
	return 0;
}

static void part_unlock(struct dynshm_area *a, uint32_t p)
{
	tlock_give(&a->hdr->parts[p].lock);
}

/* Take a free page for class cls of partition p (p locked). */
static int page_take(struct dynshm_area *a, uint32_t p, uint32_t cls,
		     bool soft, uint32_t *out)
{
	struct area_hdr *h = a->hdr;
	uint32_t idx = AREA_NONE;
	int rc = area_lock(a);

	if (rc < 0)
		return rc;
	for (uint32_t k = 0; k < AREA_MAX_SEGS - 1; k++) {
		uint32_t i = 1 + (h->seg_hint - 1 + k) % (AREA_MAX_SEGS - 1);
		struct area_seg *s = &h->segs[i];

		if (atomic_load(&s->state) == SEG_ACTIVE &&
		    s->kind == KIND_PAGES && s->free_pages > 0) {
			idx = i;
			break;
		}
	}
	if (idx == AREA_NONE) {
		rc = seg_create_locked(a, KIND_PAGES, AREA_SEG_SIZE, 0, soft,
				       &idx);
		if (rc < 0)
			goto out;
	}
	{
		struct area_seghdr *sh = (void *)area_seg_base(a, idx);
		struct area_page *pg;
		uint32_t n;

		if (!sh) {
			rc = -ENOENT;
			goto out;
		}
		for (n = 0; n < AREA_SEG_PAGES; n++)
			if (atomic_load(&sh->desc[n]) == 0)
				break;
		if (n == AREA_SEG_PAGES) { /* free_pages was wrong */
			h->dirty = 1;
			rc = dynshm_fail(EAGAIN, "area 0x%016" PRIx64
					 " needed a repair; try again",
					 h->self);
			goto out;
		}
		pg = (void *)((char *)sh + AREA_SEG_HDR +
			      (size_t)n * AREA_PAGE_SIZE);
		memset(pg, 0, sizeof(*pg) + classes[cls].nwords * 8);
		page_init(pg, cls);
		AREA_HOOK("page.init");
		/* Commit: the page is partition p's. */
		atomic_store_explicit(&sh->desc[n], desc_make(p, cls),
				      memory_order_release);
		AREA_HOOK("page.taken");
		h->segs[idx].free_pages--;
		h->seg_hint = idx;
		*out = idx << 8 | n;
	}
out:
	area_unlock(a);
	return rc;
}

/* Give an empty page back (p locked, page unlinked). */
static void page_give_back(struct dynshm_area *a, struct area_part *pt,
			   uint32_t id)
{
	struct area_hdr *h = a->hdr;
	uint32_t idx = id >> 8;
	struct area_seghdr *sh;

	if (area_lock(a) < 0) {
		pt->dirty = 1; /* the next holder relinks the page */
		return;
	}
	sh = (void *)area_seg_base(a, idx);
	/* Commit: the page is free again (its bitmap is all zero). */
	atomic_store_explicit(&sh->desc[id & 0xff], 0, memory_order_release);
	AREA_HOOK("page.back");
	h->segs[idx].free_pages++;
	if (h->segs[idx].free_pages == AREA_SEG_PAGES &&
	    pages_segments_locked(a) > 1)
		seg_free_locked(a, idx);
	area_unlock(a);
}

/* ---- allocate and free --------------------------------------------------- */

static int alloc_small(struct dynshm_area *a, uint32_t p, uint32_t cls,
		       bool soft, dynshm_area_ptr *out)
{
	struct area_part *pt = &a->hdr->parts[p];
	uint32_t id = pt->partial[cls];
	struct area_page *pg;
	uint32_t w, nw = classes[cls].nwords, nobj = classes[cls].nobj;
	uint64_t freebits;
	int rc;

	if (id == AREA_NONE) {
		rc = page_take(a, p, cls, soft, &id);
		if (rc < 0)
			return rc;
		pg = page_at(a, id);
		if (!pg) { /* taken, but its segment cannot be mapped now */
			pt->dirty = 1;
			return -ENOENT;
		}
		partial_push(a, pt, id, pg);
	} else {
		pg = page_at(a, id);
		if (!pg || pg->cls != cls || pg->nobj != nobj) {
			pt->dirty = 1; /* a scribbled list or page header */
			return dynshm_fail(EAGAIN, "area 0x%016" PRIx64
					   " needed a repair; try again",
					   a->hdr->self);
		}
	}
	w = pg->hint < nw ? pg->hint : 0;
	for (uint32_t k = 0;; k++, w = w + 1 == nw ? 0 : w + 1) {
		freebits = ~pg->bits[w];
		if (w == nw - 1 && nobj % 64)
			freebits &= (UINT64_C(1) << (nobj % 64)) - 1;
		if (freebits)
			break;
		if (k == nw) { /* nfree lied: a repair is due */
			pt->dirty = 1;
			return dynshm_fail(EAGAIN, "area 0x%016" PRIx64
					   " needed a repair; try again",
					   a->hdr->self);
		}
	}
	{
		uint32_t b = (uint32_t)__builtin_ctzll(freebits);
		uint32_t obj = w * 64 + b;

		/* Commit: the object is allocated. */
		pg->bits[w] |= UINT64_C(1) << b;
		AREA_HOOK("alloc.bit");
		pg->hint = w;
		if (--pg->nfree == 0)
			partial_unlink(a, pt, pg);
		AREA_HOOK("alloc.done");
		*out = (uint64_t)(id >> 8) << AREA_OFF_BITS |
		       (AREA_SEG_HDR + (uint64_t)(id & 0xff) * AREA_PAGE_SIZE +
			classes[cls].objoff + (uint64_t)obj * class_size[cls]);
	}
	return 0;
}

static int alloc_large(struct dynshm_area *a, size_t size, bool soft,
		       dynshm_area_ptr *out)
{
	uint64_t segsize = (AREA_LARGE_HDR + (uint64_t)size + 4095) & ~4095ull;
	uint32_t idx;
	int rc = area_lock(a);

	if (rc < 0)
		return rc;
	/* The size is recorded before the commit (the state). */
	rc = seg_create_locked(a, KIND_LARGE, segsize, size, soft, &idx);
	if (rc == 0)
		*out = (uint64_t)idx << AREA_OFF_BITS | AREA_LARGE_HDR;
	area_unlock(a);
	return rc;
}

static struct area_cache *cache_claim(struct dynshm_area *a, bool claim);

/*
 * This thread's cache in area a, claiming one on first use; or NULL.
 * Inline: it is on both halves of the allocation fast path, and the
 * usual answer is the first TLS slot (measured: the call was 5 % of an
 * alloc+free pair).
 */
static inline struct area_cache *cache_get(struct dynshm_area *a, bool claim)
{
	if (__builtin_expect(tl_caches[0].open_id == a->open_id, 1))
		return tl_caches[0].c;
	return cache_claim(a, claim);
}

DYNSHM_EXPORT int dynshm_area_alloc(dynshm_area *a, size_t size,
				    unsigned flags, dynshm_area_ptr *out)
{
	bool soft = flags & DYNSHM_AREA_SOFT;
	struct area_cache *c;
	uint32_t cls, p;
	int rc;

	if (!a || !out || (flags & ~(DYNSHM_AREA_ZERO | DYNSHM_AREA_SOFT)))
		return dynshm_fail(EINVAL, "dynshm_area_alloc: NULL area or "
				   "out, or unknown flags 0x%x (allowed: "
				   "DYNSHM_AREA_ZERO, DYNSHM_AREA_SOFT)",
				   flags);
	if (size > DYNSHM_AREA_SMALL_MAX) {
		if (size > AREA_OFF_MASK - AREA_LARGE_HDR)
			return dynshm_fail(ENOMEM, "cannot allocate %zu bytes "
					   "in an area: at most 2^40 - 64",
					   size);
		rc = alloc_large(a, size, soft, out);
		if (rc == 0 && (flags & DYNSHM_AREA_ZERO))
			memset(dynshm_area_get(a, *out), 0, size);
		return rc;
	}
	cls = size_to_class(size ? size : 1);
	/*
	 * Destroyed (area_int.h: segs[0]): the thread cache may still hold
	 * objects of its freed segments, which must not be handed out.  The
	 * locked paths below refuse by themselves.
	 */
	if (__builtin_expect(atomic_load_explicit(&a->hdr->segs[0].state,
						  memory_order_relaxed) !=
			     SEG_ACTIVE, 0))
		return area_destroyed(a);
	c = cache_get(a, true);
	if (c) {
		uint32_t n = atomic_load_explicit(&c->count[cls],
						  memory_order_relaxed);

		if (n > AREA_CACHE_DEPTH) {
			/* scribbled: forget them, as cache_drain does */
			atomic_store(&c->count[cls], 0);
		} else if (n > 0) {
			*out = c->objs[cls][n - 1];
			/* Commit: the object is the caller's. */
			atomic_store_explicit(&c->count[cls], n - 1,
					      memory_order_release);
			goto done;
		}
	}
	p = my_part;
	if (p == AREA_NONE) {
		p = atomic_fetch_add(&a->hdr->next_part, 1) % AREA_NPARTS;
		my_part = p;
	}
	for (uint32_t k = 0;; k++) {
		rc = part_lock(a, p, k < AREA_NPARTS - 1);
		if (rc != -EBUSY)
			break;
		p = (p + 1) % AREA_NPARTS;
	}
	if (rc < 0)
		return rc;
	my_part = p;
	rc = alloc_small(a, p, cls, soft, out);
	/* Fill the cache while we hold the lock: the next allocs are free. */
	for (uint32_t n = 0; c && rc == 0 && n < AREA_CACHE_DEPTH / 2; n++) {
		dynshm_area_ptr more;

		/* only from pages the partition has: no new page for this */
		if (a->hdr->parts[p].partial[cls] == AREA_NONE ||
		    alloc_small(a, p, cls, true, &more) < 0)
			break;
		c->objs[cls][n] = more;
		atomic_store_explicit(&c->count[cls], n + 1,
				      memory_order_release);
		AREA_HOOK("cache.fill");
	}
	part_unlock(a, p);
	if (rc < 0)
		return rc;
done:
	if (flags & DYNSHM_AREA_ZERO)
		memset(dynshm_area_get(a, *out), 0, class_size[cls]);
	return 0;
}

static int bad_ptr(struct dynshm_area *a, dynshm_area_ptr ptr, const char *why)
{
	return dynshm_fail(EINVAL, "dynshm_area_free: 0x%016" PRIx64 " is not "
			   "an allocation of area 0x%016" PRIx64 " (%s)", ptr,
			   a->hdr->self, why);
}

static int free_large(struct dynshm_area *a, uint32_t idx, dynshm_area_ptr ptr)
{
	int rc = area_lock(a);

	if (rc < 0)
		return rc;
	if (atomic_load(&a->hdr->segs[idx].state) != SEG_ACTIVE ||
	    a->hdr->segs[idx].kind != KIND_LARGE) {
		area_unlock(a);
		return bad_ptr(a, ptr, "freed already");
	}
	seg_free_locked(a, idx);
	area_unlock(a);
	return 0;
}

/* Where a small allocation lives (free_locate). */
struct small_loc {
	struct area_seghdr *sh;
	struct area_page *pg;
	uint32_t idx, n, d, p, cls, obj;
};

/* Check that ptr is a live small allocation and find it, unlocked. */
static inline __attribute__((always_inline)) int small_locate(struct dynshm_area *a, dynshm_area_ptr ptr,
			struct small_loc *l)
{
	uint64_t off = ptr & AREA_OFF_MASK, rel;

	if (off < AREA_SEG_HDR || off >= AREA_SEG_SIZE)
		return bad_ptr(a, ptr, "offset out of range");
	l->sh = (void *)area_seg_base(a, l->idx);
	if (!l->sh)
		return -ENOENT;
	l->n = (uint32_t)((off - AREA_SEG_HDR) / AREA_PAGE_SIZE);
	l->d = atomic_load_explicit(&l->sh->desc[l->n], memory_order_acquire);
	if (l->d == 0)
		return bad_ptr(a, ptr, "page not in use");
	if (!desc_valid(l->d))
		return bad_ptr(a, ptr, "its page descriptor is corrupt");
	l->p = l->d >> 8;
	l->cls = (l->d >> 1) & 0x7f;
	rel = off - AREA_SEG_HDR - (uint64_t)l->n * AREA_PAGE_SIZE;
	if (rel < classes[l->cls].objoff)
		return bad_ptr(a, ptr, "not the start of an object");
	/* rel < 2^16, size <= 2^13: the reciprocal is exact */
	rel -= classes[l->cls].objoff;
	l->obj = (uint32_t)(rel * classes[l->cls].inv >> 32);
	if ((uint64_t)l->obj * class_size[l->cls] != rel)
		return bad_ptr(a, ptr, "not the start of an object");
	if (l->obj >= classes[l->cls].nobj)
		return bad_ptr(a, ptr, "past the last object");
	l->pg = (void *)((char *)l->sh + AREA_SEG_HDR +
			 (size_t)l->n * AREA_PAGE_SIZE);
	if (!(l->pg->bits[l->obj / 64] & UINT64_C(1) << (l->obj % 64)))
		return bad_ptr(a, ptr, "freed already");
	return 0;
}

/* Clear the object's bit and fix the derived data (l->p locked). */
static int free_small_locked(struct dynshm_area *a, dynshm_area_ptr ptr,
			     struct small_loc *l)
{
	struct area_page *pg = l->pg;
	uint64_t bit = UINT64_C(1) << (l->obj % 64);

	if (atomic_load(&l->sh->desc[l->n]) != l->d ||
	    !(pg->bits[l->obj / 64] & bit))
		return bad_ptr(a, ptr, "freed already");
	/* Commit: the object is free. */
	pg->bits[l->obj / 64] &= ~bit;
	AREA_HOOK("free.bit");
	if (pg->nfree++ == 0)
		partial_push(a, &a->hdr->parts[l->p], l->idx << 8 | l->n, pg);
	AREA_HOOK("free.pushed");
	if (pg->nfree == pg->nobj &&
	    (pg->next != AREA_NONE || pg->prev != AREA_NONE)) {
		partial_unlink(a, &a->hdr->parts[l->p], pg);
		page_give_back(a, &a->hdr->parts[l->p], l->idx << 8 | l->n);
	}
	return 0;
}

/*
 * Find and check ptr: 1 for a small allocation (in *l), 0 large.  Inline
 * (with small_locate): it is most of dynshm_area_free's fast path.
 */
static inline __attribute__((always_inline)) int free_check(struct dynshm_area *a, dynshm_area_ptr ptr,
		      struct small_loc *l)
{
	uint32_t idx = (uint32_t)(ptr >> AREA_OFF_BITS);
	struct area_seg *s;

	if (idx == 0 || idx >= AREA_MAX_SEGS)
		return bad_ptr(a, ptr, "no such segment");
	s = &a->hdr->segs[idx];
	if (atomic_load(&s->state) != SEG_ACTIVE)
		return bad_ptr(a, ptr, "segment not in use");
	if (s->kind == KIND_LARGE)
		return (ptr & AREA_OFF_MASK) == AREA_LARGE_HDR ? 0 :
			bad_ptr(a, ptr, "inside a large allocation");
	if (s->kind != KIND_PAGES)
		return bad_ptr(a, ptr, "not a data segment");
	l->idx = idx;
	return small_locate(a, ptr, l) < 0 ? -EINVAL : 1;
}

/*
 * Free the objects of cache c, class cls, from the top down to keep left,
 * taking each partition lock once per run of objects of that partition.
 * Each object leaves the cache (count lowered) just before its bit is
 * cleared, so a crash in here leaks at most the one object in between.
 * Errors are recorded, not returned: the objects were checked when they
 * went in.
 */
static void cache_drain(struct dynshm_area *a, struct area_cache *c,
			uint32_t cls, uint32_t keep)
{
	uint32_t held = AREA_NONE;
	uint32_t n = atomic_load(&c->count[cls]);
	struct small_loc l;

	if (n > AREA_CACHE_DEPTH) {
		/*
		 * Scribbled: which slots hold cached objects is unknown, and a
		 * stale slot may name an object handed out since.  Forget
		 * them (they stay allocated, leaked) rather than free one
		 * that is in use.
		 */
		atomic_store(&c->count[cls], 0);
		return;
	}
	while (n > keep) {
		uint64_t p = c->objs[cls][n - 1];
		bool ok = free_check(a, p, &l) == 1;

		if (ok && held != l.p) {
			if (held != AREA_NONE)
				part_unlock(a, held);
			held = part_lock(a, l.p, false) == 0 ? l.p : AREA_NONE;
			ok = held != AREA_NONE;
		}
		/* Commit: out of the cache. */
		atomic_store_explicit(&c->count[cls], --n,
				      memory_order_release);
		AREA_HOOK("cache.drain");
		if (ok)
			free_small_locked(a, p, &l);
	}
	if (held != AREA_NONE)
		part_unlock(a, held);
}

/* Give back every object in cache c (ours, or its owner dead). */
static void cache_empty(struct dynshm_area *a, struct area_cache *c)
{
	for (uint32_t cls = 0; cls < AREA_NCLASSES; cls++)
		cache_drain(a, c, cls, 0);
}

/*
 * Take cache slot s for token me if it is free, or if its owner died (then
 * empty it first).  1 if we took it.
 */
static int cache_take(struct dynshm_area *a, uint32_t s, uint64_t me)
{
	struct area_cache *c = &a->hdr->caches[s];
	uint64_t owner = atomic_load(&c->owner);

	if (owner != 0 && (owner == me ||
			   dynshm_proc_alive(a->inst, owner) != 0))
		return 0;
	if (!atomic_compare_exchange_strong(&c->owner, &owner, me))
		return 0;
	if (owner != 0) {
		atomic_fetch_add(&a->hdr->repairs, 1);
		cache_empty(a, c);
	}
	return 1;
}

/* Empty the caches of dead processes (stats). */
static void caches_reclaim(struct dynshm_area *a)
{
	uint64_t me;

	if (dynshm_proc_self(a->inst, &me) < 0)
		return;
	for (uint32_t s = 0; s < AREA_NCACHES; s++) {
		uint64_t owner = atomic_load(&a->hdr->caches[s].owner);

		if (owner == 0 || owner == me)
			continue;
		if (cache_take(a, s, me))
			atomic_store(&a->hdr->caches[s].owner, 0);
	}
}

/* cache_get's slow path: the other TLS slots, then a claim. */
static __attribute__((noinline)) struct area_cache *
cache_claim(struct dynshm_area *a, bool claim)
{
	uint64_t me;
	uint32_t i, s;

	for (i = 1; i < TL_CACHES; i++)
		if (tl_caches[i].open_id == a->open_id)
			return tl_caches[i].c;
	if (!claim)
		return NULL;
	for (i = 0; i < TL_CACHES && tl_caches[i].open_id; i++)
		;
	if (i == TL_CACHES)
		return NULL;
	tl_caches[i].open_id = a->open_id;
	tl_caches[i].c = NULL;
	if (dynshm_proc_self(a->inst, &me) < 0)
		return NULL;
	for (s = 0; s < AREA_NCACHES; s++) {
		if (cache_take(a, s, me)) {
			tl_caches[i].c = &a->hdr->caches[s];
			break;
		}
	}
	return tl_caches[i].c;
}

/* Give this thread's cache of a back (detach). */
static void cache_release(struct dynshm_area *a)
{
	for (uint32_t i = 0; i < TL_CACHES; i++) {
		if (tl_caches[i].open_id != a->open_id)
			continue;
		if (tl_caches[i].c) {
			cache_empty(a, tl_caches[i].c);
			atomic_store(&tl_caches[i].c->owner, 0);
		}
		tl_caches[i].open_id = 0;
		tl_caches[i].c = NULL;
	}
}

/* Count what live caches hold as free, not used (stats, all locked). */
static void stats_caches_locked(struct dynshm_area *a, dynshm_area_stats *st)
{
	for (uint32_t s = 0; s < AREA_NCACHES; s++) {
		struct area_cache *c = &a->hdr->caches[s];

		if (atomic_load(&c->owner) == 0)
			continue;
		for (uint32_t cls = 0; cls < AREA_NCLASSES; cls++) {
			uint64_t n = atomic_load(&c->count[cls]);

			if (n > AREA_CACHE_DEPTH)
				n = AREA_CACHE_DEPTH;
			st->allocations -= n;
			st->used_bytes -= n * class_size[cls];
			st->free_bytes += n * class_size[cls];
		}
	}
}

DYNSHM_EXPORT int dynshm_area_free(dynshm_area *a, dynshm_area_ptr ptr)
{
	struct area_cache *c;
	struct small_loc l;
	uint32_t n;
	int rc;

	if (!a)
		return dynshm_fail(EINVAL, "dynshm_area_free: NULL area");
	rc = free_check(a, ptr, &l);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return free_large(a, l.idx = (uint32_t)(ptr >> AREA_OFF_BITS),
				  ptr);
	c = cache_get(a, true);
	if (c) {
		n = atomic_load_explicit(&c->count[l.cls],
					 memory_order_relaxed);
		if (n > AREA_CACHE_DEPTH) { /* scribbled */
			cache_drain(a, c, l.cls, 0);
			n = 0;
		}
		for (uint32_t i = 0; i < n; i++)
			if (c->objs[l.cls][i] == ptr)
				return bad_ptr(a, ptr, "freed already");
		if (n == AREA_CACHE_DEPTH) {
			n = AREA_CACHE_DEPTH / 2;
			cache_drain(a, c, l.cls, n);
		}
		c->objs[l.cls][n] = ptr;
		/* Commit: the object is in the cache. */
		atomic_store_explicit(&c->count[l.cls], n + 1,
				      memory_order_release);
		AREA_HOOK("cache.push");
		return 0;
	}
	rc = part_lock(a, l.p, false);
	if (rc < 0)
		return rc;
	rc = free_small_locked(a, ptr, &l);
	part_unlock(a, l.p);
	return rc;
}

DYNSHM_EXPORT void *dynshm_area_get(dynshm_area *a, dynshm_area_ptr ptr)
{
	uint64_t room;

	/* segment 0, a scribbled index or offset: no address (area_int.h) */
	return a ? area_get_room(a, ptr, &room) : NULL;
}

void *area_get_span(dynshm_area *a, dynshm_area_ptr ptr, uint64_t len)
{
	uint64_t room = 0;
	char *p = area_get_room(a, ptr, &room);

	return p && len <= room ? p : NULL;
}

/* ---- create, attach, destroy --------------------------------------------- */

static size_t ctl_size(void)
{
	return (sizeof(struct area_hdr) + 4095) & ~(size_t)4095;
}

static void hdr_init(struct area_hdr *h, dynshm_handle self, uint64_t max_size)
{
	h->version = AREA_VERSION;
	h->nparts = AREA_NPARTS;
	h->max_size = max_size;
	h->self = self;
	memset(&h->lock, 0, sizeof(h->lock)); /* free */
	for (uint32_t p = 0; p < AREA_NPARTS; p++) {
		memset(&h->parts[p].lock, 0, sizeof(h->parts[p].lock));
		for (uint32_t c = 0; c < AREA_NCLASSES; c++)
			h->parts[p].partial[c] = AREA_NONE;
	}
	h->segs[0].kind = KIND_CONTROL;
	h->segs[0].size = ctl_size();
	h->segs[0].handle = self;
	h->segs[0].state = SEG_ACTIVE;
	h->total_bytes = ctl_size();
	h->seg_hint = 1;
	atomic_store_explicit((_Atomic uint64_t *)&h->magic, AREA_MAGIC,
			      memory_order_release);
}

static int area_open(dynshm_instance *inst, dynshm_segment *seg,
		     dynshm_area **out)
{
	struct area_hdr *h = dynshm_segment_address(seg);
	struct dynshm_area *a;

	if (dynshm_segment_size(seg) < sizeof(*h) || h->magic != AREA_MAGIC ||
	    h->version != AREA_VERSION || h->nparts != AREA_NPARTS) {
		dynshm_detach(seg);
		return dynshm_fail(EUCLEAN, "segment is not a dynshm area "
				   "(magic, version or size differ)");
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		dynshm_detach(seg);
		return dynshm_fail(ENOMEM, "out of memory for an area handle");
	}
	pthread_once(&classes_once, classes_init);
	a->inst = inst;
	a->open_id = atomic_fetch_add(&next_open_id, 1);
	a->ctl = seg;
	a->hdr = h;
	pthread_mutex_init(&a->maplock, NULL);
	a->map[0].seg = NULL; /* the control segment is a->ctl */
	atomic_store(&a->map[0].handle, h->self);
	atomic_store(&a->map[0].size, dynshm_segment_size(seg));
	atomic_store(&a->map[0].base, (char *)h);
	*out = a;
	return 0;
}

#define PLACEMENT (DYNSHM_CREATE_REGION | DYNSHM_CREATE_NO_REGION)

static int check_create(const char *fn, dynshm_instance *inst,
			dynshm_area **out, unsigned flags, uint64_t max_size)
{
	if (!inst || !out || (flags & ~PLACEMENT))
		return dynshm_fail(EINVAL, "%s: NULL instance or out, or flags "
				   "0x%x other than DYNSHM_CREATE_REGION/"
				   "NO_REGION", fn, flags);
	if (max_size && max_size < ctl_size() + AREA_SEG_SIZE)
		return dynshm_fail(EINVAL, "area max_size %" PRIu64 " is "
				   "below the least useful, %zu bytes",
				   max_size, ctl_size() + AREA_SEG_SIZE);
	return 0;
}

DYNSHM_EXPORT int dynshm_area_create(dynshm_instance *inst, uint64_t max_size,
				     unsigned flags, dynshm_area **out)
{
	dynshm_segment *seg;
	int rc;

	rc = check_create("dynshm_area_create", inst, out, flags, max_size);
	if (rc < 0)
		return rc;
	rc = dynshm_create(inst, ctl_size(), flags | DYNSHM_CREATE_PIN, &seg);
	if (rc < 0)
		return rc;
	hdr_init(dynshm_segment_address(seg), dynshm_segment_handle(seg),
		 max_size);
	return area_open(inst, seg, out);
}

DYNSHM_EXPORT int dynshm_area_attach(dynshm_instance *inst,
				     dynshm_handle handle, dynshm_area **out)
{
	dynshm_segment *seg;
	int rc;

	if (!inst || !out)
		return dynshm_fail(EINVAL, "dynshm_area_attach: NULL argument");
	rc = dynshm_attach(inst, handle, &seg);
	if (rc < 0)
		return rc;
	return area_open(inst, seg, out);
}

static int named_init(dynshm_segment *seg, void *arg)
{
	hdr_init(dynshm_segment_address(seg), dynshm_segment_handle(seg),
		 *(uint64_t *)arg);
	return 0;
}

DYNSHM_EXPORT int dynshm_area_get_named(dynshm_instance *inst,
					const char *name, uint64_t max_size,
					unsigned flags, dynshm_area **out,
					int *created)
{
	dynshm_segment *seg;
	int rc;

	rc = check_create("dynshm_area_get_named", inst, out, flags,
			  max_size);
	if (rc < 0)
		return rc;
	rc = dynshm_get_named(inst, name, ctl_size(), flags | DYNSHM_CREATE_PIN,
			      named_init, &max_size, &seg, created);
	if (rc < 0)
		return rc;
	return area_open(inst, seg, out);
}

DYNSHM_EXPORT dynshm_handle dynshm_area_handle(const dynshm_area *a)
{
	return a ? a->hdr->self : DYNSHM_HANDLE_INVALID;
}

DYNSHM_EXPORT int dynshm_area_detach(dynshm_area *a)
{
	int rc;

	if (!a)
		return dynshm_fail(EINVAL, "dynshm_area_detach: NULL area");
	cache_release(a);
	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++)
		if (a->map[i].seg)
			dynshm_detach(a->map[i].seg);
	rc = dynshm_detach(a->ctl);
	pthread_mutex_destroy(&a->maplock);
	free(a);
	return rc;
}

/* Every partition lock, in order, then the area lock; *p: how many held. */
static int lock_all(struct dynshm_area *a, uint32_t *p)
{
	int rc;

	for (*p = 0; *p < AREA_NPARTS; (*p)++) {
		rc = part_lock(a, *p, false);
		if (rc < 0)
			return rc;
	}
	return area_lock(a);
}

DYNSHM_EXPORT int dynshm_area_destroy(dynshm_area *a)
{
	struct area_hdr *h;
	uint32_t p;
	int rc;

	if (!a)
		return dynshm_fail(EINVAL, "dynshm_area_destroy: NULL area");
	h = a->hdr;
	rc = lock_all(a, &p);
	if (rc < 0)
		goto unlock;
	/* Commit: the area is going; whoever takes its lock next finishes. */
	atomic_store(&h->segs[0].state, SEG_FREEING);
	AREA_HOOK("area.destroying");
	for (uint32_t i = 1; i < AREA_MAX_SEGS; i++)
		if (atomic_load(&h->segs[i].state) == SEG_ACTIVE)
			seg_free_locked(a, i);
	/* under the lock, so that no finisher destroys it first */
	rc = dynshm_destroy(a->inst, h->self);
	area_unlock(a);
unlock:
	while (p-- > 0)
		part_unlock(a, p);
	if (rc < 0)
		return rc;
	return dynshm_area_detach(a);
}

/* ---- statistics ---------------------------------------------------------- */

static void stats_pages_locked(struct dynshm_area *a, uint32_t i,
			       dynshm_area_stats *st, uint64_t *partly)
{
	struct area_seghdr *sh = (void *)area_seg_base(a, i);

	if (!sh)
		return;
	for (uint32_t n = 0; n < AREA_SEG_PAGES; n++) {
		uint32_t d = atomic_load(&sh->desc[n]);
		struct area_page *pg;
		uint32_t cls, used = 0;

		if (d == 0) {
			st->free_bytes += AREA_PAGE_SIZE;
			continue;
		}
		if (!desc_valid(d))
			continue; /* scribbled: counted as overhead */
		cls = (d >> 1) & 0x7f;
		pg = (void *)((char *)sh + AREA_SEG_HDR +
			      (size_t)n * AREA_PAGE_SIZE);
		for (uint32_t w = 0; w < classes[cls].nwords; w++)
			used += (uint32_t)__builtin_popcountll(pg->bits[w]);
		st->allocations += used;
		st->used_bytes += (uint64_t)used * class_size[cls];
		st->free_bytes += (uint64_t)(classes[cls].nobj - used) *
				  class_size[cls];
		*partly += (uint64_t)(classes[cls].nobj - used) *
			   class_size[cls];
	}
}

DYNSHM_EXPORT int dynshm_area_stats_get(dynshm_area *a, dynshm_area_stats *st)
{
	struct area_hdr *h;
	uint64_t partly = 0;
	uint32_t p;
	int rc;

	if (!a || !st)
		return dynshm_fail(EINVAL, "dynshm_area_stats_get: NULL "
				   "argument");
	h = a->hdr;
	memset(st, 0, sizeof(*st));
	/* Our own cache goes back too, so that empty segments can go. */
	if (cache_get(a, false))
		cache_empty(a, cache_get(a, false));
	caches_reclaim(a);
	rc = lock_all(a, &p);
	if (rc < 0)
		goto unlock;
	st->max_size = h->max_size;
	for (uint32_t i = 0; i < AREA_MAX_SEGS; i++) {
		struct area_seg *s = &h->segs[i];

		if (atomic_load(&s->state) != SEG_ACTIVE)
			continue;
		st->segments++;
		st->total_bytes += s->size;
		if (s->kind == KIND_LARGE) {
			st->large_segments++;
			st->allocations++;
			st->used_bytes += s->large_bytes;
		} else if (s->kind == KIND_PAGES) {
			stats_pages_locked(a, i, st, &partly);
		}
	}
	stats_caches_locked(a, st);
	st->overhead_bytes = st->total_bytes - st->used_bytes - st->free_bytes;
	st->fragmentation = st->free_bytes ?
		(uint32_t)(partly * 1000 / st->free_bytes) : 0;
	st->repairs = atomic_load(&h->repairs);
	area_unlock(a);
unlock:
	while (p-- > 0)
		part_unlock(a, p);
	return rc;
}
