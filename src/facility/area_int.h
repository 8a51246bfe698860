/* SPDX-License-Identifier: MIT */
/*
 * area_int.h - the shared area's layout, shared by area.c and hash.c.
 *
 * An area is a control segment (struct area_hdr) and up to AREA_MAX_SEGS
 * data segments, each a named, pinned dynshm segment.  A data segment is
 * either PAGES - a 4 KiB header (struct area_seghdr) and AREA_SEG_PAGES
 * pages of 64 KiB, each page cut into objects of one size class - or
 * LARGE - one allocation of more than DYNSHM_AREA_SMALL_MAX bytes.
 * Entry 0 of the segment table is the control segment itself, so no
 * allocation has segment number 0 and the pointer 0 is null.
 *
 * LOCKS.  hdr.lock (the area lock, A) guards the segment table and every
 * page descriptor change; parts[p].lock (a partition lock, P) guards the
 * pages of partition p (their headers and bitmaps) and parts[p].partial.
 * Order: at most one partition lock, then the area lock; only stats and
 * destroy take several partition locks, in index order.  All are robust
 * and process-shared.
 *
 * PRIMARY AND DERIVED DATA (as in src/control.h):
 *   primary - segs[i].state/kind/handle/size/large_bytes/gen, a page's
 *             descriptor (free, or partition + class), a page's bitmap
 *             (bit set = object allocated).  Each allocation or free has
 *             exactly one commit store: the bitmap bit (small), the
 *             descriptor (page taken or given back), the segment state
 *             (segment made, large allocation, segment given back).
 *   derived - segs[i].free_pages, hdr.total_bytes, a page header's
 *             cls/nobj/nfree/hint/next/prev, parts[p].partial.  Recomputed
 *             from primary data by the next holder of a lock whose holder
 *             died (the robust mutex reports EOWNERDEAD), so any prefix of
 *             a mutation is repairable.
 * Per-thread caches of free objects (struct area_cache) have their own
 * rule, below.
 * INVARIANTS outside the locks:
 *   - a page whose descriptor is free has an all-zero bitmap (it is
 *     zeroed before the descriptor is published);
 *   - a CREATING or FREEING segment entry exists only while its maker
 *     holds the area lock, so a lock holder that finds one finishes the
 *     job of a dead process: it destroys the segment by its name
 *     (dynshm.area.<control handle>.<index>.<gen>) or handle;
 *   - a PAGES segment with every page free is given back, unless it is
 *     the area's only one;
 *   - segs[0] (the control segment) is ACTIVE while the area lives and
 *     FREEING from the moment dynshm_area_destroy commits (area lock and
 *     every partition lock held): from then on every taker of the area
 *     lock finishes the destroy and refuses (-EIDRM), so a process still
 *     attached never makes a segment for a destroyed area.
 */
#ifndef DYNSHM_FACILITY_AREA_INT_H
#define DYNSHM_FACILITY_AREA_INT_H

#include "tlock.h"

#include <dynshm/area.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define AREA_MAGIC 0x4165726168736479ull /* "dyshareA" */
#define AREA_VERSION 2u /* 2: token locks (tlock.h) */
#define AREA_MAX_SEGS 1024u
#define AREA_NPARTS 8u
#define AREA_NCLASSES 32u
#define AREA_PAGE_SIZE 65536u
#define AREA_SEG_HDR 4096u
#define AREA_SEG_PAGES 63u
#define AREA_SEG_SIZE (AREA_SEG_HDR + (uint64_t)AREA_SEG_PAGES * AREA_PAGE_SIZE)
#define AREA_LARGE_HDR 64u
#define AREA_NONE UINT32_MAX
#define AREA_OFF_BITS 40
#define AREA_OFF_MASK ((UINT64_C(1) << AREA_OFF_BITS) - 1)

enum area_seg_state {
	SEG_FREE = 0,
	SEG_CREATING = 1,
	SEG_ACTIVE = 2,
	SEG_FREEING = 3,
};

enum area_seg_kind {
	KIND_CONTROL = 0,
	KIND_PAGES = 1,
	KIND_LARGE = 2,
};

struct area_seg {
	_Atomic uint32_t state;	  /* (A) enum area_seg_state, written last */
	uint32_t kind;		  /* (A) enum area_seg_kind */
	uint32_t gen;		  /* (A) bumped when freed; part of its name */
	uint32_t free_pages;	  /* (A, derived) PAGES: descriptors free */
	_Atomic uint64_t handle;  /* (A) dynshm handle while ACTIVE/FREEING */
	uint64_t size;		  /* (A) bytes of the segment */
	uint64_t large_bytes;	  /* (A) LARGE: bytes asked for */
};

struct area_part {
	struct dynshm_tlock lock;
	uint32_t dirty;			/* (P) set while a repair is due */
	uint32_t partial[AREA_NCLASSES]; /* (P, derived) page ids */
} __attribute__((aligned(64)));

/*
 * A thread's cache of free small objects (glibc's tcache), in shared
 * memory so that a dead process's caches can be emptied by others.  owner
 * is the owning process's token (dynshm_proc_self), 0 when the slot is
 * free; it is claimed by compare-and-swap, from 0 or from a token that
 * dynshm_proc_alive reports dead (the claimer then empties it first).
 * Cached objects are allocated in their page's bitmap.  Only the owning
 * thread writes count and objs; count is the commit: a push writes the
 * slot then count, a pop reads the slot then lowers count, so a dead
 * owner's cache holds exactly objs[c][0..count).  A slot is emptied
 * before it is given back (owner 0), so a free slot is empty.
 */
#define AREA_NCACHES 64u
#define AREA_CACHE_DEPTH 8u
struct area_cache {
	_Atomic uint64_t owner;
	_Atomic uint32_t count[AREA_NCLASSES];
	uint64_t objs[AREA_NCLASSES][AREA_CACHE_DEPTH];
} __attribute__((aligned(64)));

struct area_hdr {
	uint64_t magic;		/* (C) */
	uint32_t version;	/* (C) */
	uint32_t nparts;	/* (C) */
	uint64_t max_size;	/* (C) 0: none */
	uint64_t self;		/* (C) the control segment's handle */
	struct dynshm_tlock lock; /* the area lock */
	uint32_t dirty;		/* (A) set while a repair is due */
	uint32_t seg_hint;	/* (A, derived) where to look for a page */
	uint64_t total_bytes;	/* (A, derived) */
	_Atomic uint64_t repairs;
	_Atomic uint32_t next_part; /* round robin for new processes */
	struct area_part parts[AREA_NPARTS];
	struct area_seg segs[AREA_MAX_SEGS];
	struct area_cache caches[AREA_NCACHES];
};

/* Descriptor of a page: 0 free, else 1 | class << 1 | partition << 8. */
struct area_seghdr {
	uint64_t magic;
	uint32_t index;
	uint32_t npages;
	_Atomic uint32_t desc[AREA_SEG_PAGES];
};

/* At the start of every taken page; bits[] then the objects. */
struct area_page {
	uint32_t cls;	/* derived from the descriptor */
	uint32_t nobj;	/* derived from the class */
	uint32_t nfree; /* derived: nobj - popcount(bits) */
	uint32_t hint;	/* derived: a word of bits to look at first */
	uint32_t next;	/* derived: partial list (page ids) */
	uint32_t prev;
	uint32_t pad[2];
	uint64_t bits[]; /* primary */
};

/*
 * Test hook: called at named points inside every mutation, so a test can
 * die exactly there.  Only in the internal library the tests link
 * (-DDYNSHM_TEST_HOOKS, as wrapper.h's HOOK): the installed library has
 * neither the pointer nor a load and branch at each point.
 */
#ifdef DYNSHM_TEST_HOOKS
extern void (*dynshm_area_test_hook)(const char *point);
#define AREA_HOOK(point)                                                       \
	do {                                                                   \
		if (dynshm_area_test_hook)                                     \
			dynshm_area_test_hook(point);                          \
	} while (0)
#else
#define AREA_HOOK(point) ((void)0)
#endif

/*
 * The address of [ptr, ptr + len) when the whole span lies inside the
 * mapping of ptr's segment, else NULL: for structures built in the area
 * (hash.c) that follow pointers read back from shared memory.
 */
void *area_get_span(dynshm_area *a, dynshm_area_ptr ptr, uint64_t len);

/*
 * This process's mapping of segment i.  Written under maplock in the
 * order base = NULL, handle, base; read without it in the order handle,
 * base: a reader that sees a handle also sees the base that goes with it,
 * or NULL (then it takes the slow path).
 */
struct area_map {
	_Atomic(char *) base;
	_Atomic uint64_t handle;
	_Atomic uint64_t size;	/* of our mapping, written before base */
	dynshm_segment *seg;
};

/*
 * A process's handle of an area.  Here rather than in area.c so that the
 * translation of an area pointer (area_get_room), which every hash table
 * lookup makes twice or more, is inlined: out of line it was a quarter of
 * a lookup's instructions (docs/performance.md).
 */
struct dynshm_area {
	dynshm_instance *inst;
	dynshm_segment *ctl;
	struct area_hdr *hdr;
	pthread_mutex_t maplock; /* this process's map[] slow path */
	uint64_t me;		  /* our token for the locks (tlock_token) */
	unsigned me_gen;
	uint64_t open_id;	 /* unique in the process, never reused */
	struct area_map map[AREA_MAX_SEGS];
};

/* Map segment idx (under maplock), or NULL; area_seg_base's slow path. */
char *area_map_slow(struct dynshm_area *a, uint32_t idx);

/* Where segment idx is mapped in this process (mapping it first), or NULL. */
static inline char *area_seg_base(struct dynshm_area *a, uint32_t idx)
{
	uint64_t h = atomic_load_explicit(&a->map[idx].handle,
					  memory_order_acquire);
	char *b = atomic_load_explicit(&a->map[idx].base,
				       memory_order_acquire);

	if (b && h == atomic_load_explicit(&a->hdr->segs[idx].handle,
					   memory_order_relaxed))
		return b;
	return area_map_slow(a, idx);
}

/*
 * area_get_span's check without a length: the address of ptr, and in
 * *room how many bytes from it the mapping holds; NULL for a pointer
 * that names no mapped segment or lies beyond it.
 */
static inline void *area_get_room(struct dynshm_area *a, dynshm_area_ptr ptr,
				  uint64_t *room)
{
	uint32_t idx = (uint32_t)(ptr >> AREA_OFF_BITS);
	uint64_t off = ptr & AREA_OFF_MASK, size;
	char *base;

	/* segment 0 is the control segment: no allocation lies there */
	if (idx == 0 || idx >= AREA_MAX_SEGS)
		return NULL;
	base = area_seg_base(a, idx);
	size = atomic_load_explicit(&a->map[idx].size, memory_order_relaxed);
	if (!base || off >= size)
		return NULL;
	*room = size - off;
	return base + off;
}

/* This process's token (tlock.h) for the locks of area a; a's instance. */
int area_token(struct dynshm_area *a, uint64_t *me);
dynshm_instance *area_instance(struct dynshm_area *a);

#endif
