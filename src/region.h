/* SPDX-License-Identifier: MIT */
/*
 * region.h - the region: one shared mapping per process from which small
 * segments are carved (PostgreSQL's min_dynamic_shared_memory), optionally
 * on huge pages.  See region.c for why, and docs/design.md "The region".
 *
 * Two halves:
 *   - the allocator, a buddy system over 4 KiB pages whose state lives in the
 *     control segment (struct region_ctl and the arrays after it).  It knows
 *     only struct ctl; control.c calls region_rebuild() from ctl_recompute().
 *   - the OS object and its mapping in each process (region_create,
 *     region_join, region_remove), which know the instance.
 *
 * INVARIANTS (struct region_ctl, in the control segment).  Fields marked (C)
 * are written by the instance's creator before any other process can find
 * the control segment (state file written, flock still held) and never
 * change; `ready`, written last with a release store, says the OS object
 * exists.  Fields marked (L, derived) are guarded by the control lock and
 * are derived data (control.h): the free lists say which blocks no slot
 * holds, and region_rebuild() recomputes them from the slots alone, so a
 * process killed in the middle of an allocation or a free leaks nothing.
 *
 *   - every block b on list o has tag[b] == o + 1, is 2^o-aligned and lies
 *     inside the region; no two free blocks overlap and no free block
 *     overlaps the block of a non-FREE slot with backend CTL_BACKEND_REGION;
 *   - blocks neither free nor held by such a slot do not exist outside a
 *     held lock (the "leaks nothing" promise);
 *   - two free buddies of the same order are merged (so a free region is
 *     its greedy decomposition: the largest aligned blocks that fit).
 */
#ifndef DYNSHM_REGION_H
#define DYNSHM_REGION_H

#include "control.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REGION_PAGE 4096u
#define REGION_MAX_ORDER 24u /* blocks up to 2^24 pages = 64 GiB */
#define REGION_ORDERS (REGION_MAX_ORDER + 1)
#define REGION_MAX_SIZE ((uint64_t)1 << 36)
/* ctl_slot.region_order of a slot whose block was found impossible. */
#define REGION_NO_BLOCK 0xffu
#define REGION_MAGIC 0x4e4f4947455264ull /* "dREGION" */

enum region_pages {
	REGION_PAGES_SMALL = 1,	  /* 4 KiB pages */
	REGION_PAGES_THP = 2,	  /* shmem transparent huge pages (advised) */
	REGION_PAGES_HUGETLB = 3, /* SHM_HUGETLB */
};

struct region_ctl {
	uint64_t magic;	    /* (C) REGION_MAGIC */
	uint64_t size;	    /* (C) bytes, a multiple of page_size */
	uint64_t requested; /* (C) min_dynamic_shared_memory as configured */
	uint32_t nblocks;   /* (C) size / REGION_PAGE */
	uint32_t max_order; /* (C) largest order that fits nblocks */

	uint32_t ready;	      /* (C) 1 once the OS object exists */
	uint32_t pages;	      /* (C) enum region_pages */
	int32_t key;	      /* (C) SysV key of the OS object */
	int32_t huge_setting; /* (C) dynshm_huge_pages it was created with */
	uint64_t page_size;   /* (C) bytes */
	uint64_t address;     /* (C) where the creator mapped it */
	char note[384];	      /* (C) why these pages; the next switch */

	uint32_t head[REGION_ORDERS]; /* (L, derived) free list per order */
	uint32_t nsegments;	      /* (L, derived) blocks held */
	uint64_t used_pages;	      /* (L, derived) pages held */
	/* then uint32_t next[nblocks], prev[nblocks]; uint8_t tag[nblocks] */
};

/* ---- allocator (control segment only) ----------------------------------- */

/* Bytes the allocator needs in the control segment; 0 without a region. */
size_t region_area_size(uint64_t region_size);
/* The region's record in c, or NULL when the instance has none. */
struct region_ctl *region_of(const struct ctl *c);
/* Lay out an empty allocator for a region of size bytes (at format). */
void region_format(struct ctl *c, uint64_t requested, uint64_t size);
/* Rebuild the free lists and counters from the slots (ctl_recompute). */
void region_rebuild(struct ctl *c);
/*
 * Take a block for size bytes; -ENOSPC when none is free.  O(log n).
 * -EUCLEAN when a free-list head or link was found scribbled (every index
 * is checked before use): the lists are rebuilt from the slots, and the
 * message names the field.
 */
int region_alloc_locked(struct ctl *c, uint64_t size, uint64_t *offset,
			uint32_t *order);
/* Give back slot s's block (a region slot about to become FREE). */
void region_free_locked(struct ctl *c, uint32_t s);
/*
 * Does slot s record a block that lies in the region and holds its size?
 * Else -EUCLEAN naming the field (primary data: refused, never used).
 */
int region_block_check(const struct ctl *c, uint32_t s);
/* Put back the (C) geometry derivable from the header; true if it had to. */
bool region_fix_geometry(struct ctl *c);
/* Bytes of the largest block free now (under the lock). */
uint64_t region_largest_free(const struct ctl *c);

/* ---- the OS object and its mappings (need the instance) ------------------ */

struct dynshm_instance;
struct dynshm_config;
struct dynshm_instance_info;

/* Region bytes for cfg (0: none): the request rounded to its page size. */
uint64_t region_plan(const struct dynshm_config *cfg);
/* Creator: make the OS object, map it, fill the (C) fields, publish ready. */
int region_create(struct dynshm_instance *inst, const struct dynshm_config *cfg);
/* Joiner: -ENOENT when the creator died before ready (wipe and redo). */
int region_check(struct dynshm_instance *inst);
/* Map the region in this process (no-op if mapped or if there is none). */
int region_join(struct dynshm_instance *inst);
/* Unmap it here (free_instance, wipe). */
void region_unmap(struct dynshm_instance *inst);
/* Remove the OS object by its key (wipe; needs only the instance id). */
void region_remove(struct dynshm_instance *inst);
/*
 * DYNSHM_IMPL_CREATE_HUGETLB when an ordinary segment of size bytes should be
 * tried on huge pages: sysv backend, huge_pages not off, a whole number of
 * huge pages, and no failed try in the last few creates (huge_backoff).
 * Else 0.
 */
unsigned region_segment_flags(struct dynshm_instance *inst, size_t size);
/* Fill the region part of info (control lock held by the caller). */
void region_info_locked(struct dynshm_instance *inst,
			struct dynshm_instance_info *info);

#endif
