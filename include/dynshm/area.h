/* SPDX-License-Identifier: MIT */
/*
 * dynshm/area.h - a shared area (an allocator that grows by segments) and
 * a concurrent hash table in it.
 *
 * Facilities built on the wrapper (dynshm/dsm.h) and nothing below it:
 * servers that must allocate shared objects at run time (PostgreSQL's dsa
 * and dshash, nginx's slab zones) and find them by key.  Both survive a
 * process killed with SIGKILL at any instruction inside them: the next
 * process to take the lock the dead one held repairs the structure, and
 * nothing else has to restart.  docs/design.md ("The shared area", "The
 * hash table") says how.
 *
 * Rules as in dynshm/dsm.h: 0 or a negative errno (getters excepted), a
 * message in dynshm_last_error() after a failure, thread-safe.  An area or
 * table handle (dynshm_area *, dynshm_hash *) belongs to the process that
 * attached it; a forked child may go on using the one it inherited.
 * Detach an area (and its tables) before closing its instance: the
 * instance's close unmaps the area's segments under the handle.
 *
 * Compiles as C99 and C++.
 */
#ifndef DYNSHM_AREA_H
#define DYNSHM_AREA_H

#include <dynshm/dsm.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the shared area ----------------------------------------------------- */

typedef struct dynshm_area dynshm_area;

/*
 * An area pointer: the segment's number in the area (bits 40..55) and the
 * byte offset in it (bits 0..39).  The same value names the same memory
 * in every process; 0 is the null pointer.
 */
typedef uint64_t dynshm_area_ptr;
#define DYNSHM_AREA_NULL ((dynshm_area_ptr)0)

/* Flags of dynshm_area_alloc. */
#define DYNSHM_AREA_ZERO 0x1u /* zero-fill the allocation */
/* Fail softly: -ENOMEM without recording a message (a cache that evicts). */
#define DYNSHM_AREA_SOFT 0x2u

/* Allocations up to this size come from shared pages; larger ones get a
 * segment of their own. */
#define DYNSHM_AREA_SMALL_MAX 8192u

/*
 * Create an area that may grow to max_size bytes of segments (its control
 * segment included; 0: no limit beyond the instance's).  flags: placement
 * of the control segment, as for dynshm_create (DYNSHM_CREATE_REGION,
 * DYNSHM_CREATE_NO_REGION).  The area lives until dynshm_area_destroy,
 * whoever detaches.
 */
int dynshm_area_create(dynshm_instance *inst, uint64_t max_size,
		       unsigned flags, dynshm_area **out);
/* Attach the area whose control segment is handle. -ENOENT, -EUCLEAN. */
int dynshm_area_attach(dynshm_instance *inst, dynshm_handle handle,
		       dynshm_area **out);
/*
 * Get or create by name (dynshm_get_named's rules: initialised exactly
 * once however many processes race).  *created (may be NULL): 1 if this
 * call created it.  An existing area keeps its own max_size.
 */
int dynshm_area_get_named(dynshm_instance *inst, const char *name,
			  uint64_t max_size, unsigned flags, dynshm_area **out,
			  int *created);
dynshm_handle dynshm_area_handle(const dynshm_area *area);
/* Drop this process's mappings of the area and free area. */
int dynshm_area_detach(dynshm_area *area);
/* Destroy every segment of the area, then detach; area is freed. */
int dynshm_area_destroy(dynshm_area *area);

/*
 * Allocate size bytes (16-byte aligned) and store the pointer in *out.
 * -ENOMEM when the area's max_size is reached (the message says so) or
 * the instance has no room for another segment.
 */
int dynshm_area_alloc(dynshm_area *area, size_t size, unsigned flags,
		      dynshm_area_ptr *out);
/* Free an allocation; -EINVAL for a pointer that is not one. */
int dynshm_area_free(dynshm_area *area, dynshm_area_ptr ptr);
/*
 * The address of ptr in this process, mapping its segment on first use;
 * NULL for the null pointer, for any pointer into segment 0 (the control
 * segment: no allocation is there), for an offset past its segment (a
 * pointer that is not one of the area's), or when the segment cannot be
 * mapped (dynshm_last_error() then says why).
 */
void *dynshm_area_get(dynshm_area *area, dynshm_area_ptr ptr);

typedef struct dynshm_area_stats {
	uint64_t max_size;	/* as created; 0: none */
	uint64_t total_bytes;	/* bytes of all its segments */
	uint64_t used_bytes;	/* live allocations, rounded to their class */
	uint64_t free_bytes;	/* allocatable without a new segment */
	/* headers and slack: total = used + free + overhead, always */
	uint64_t overhead_bytes;
	uint64_t allocations;	/* live allocations */
	uint32_t segments;	/* all, control segment included */
	uint32_t large_segments; /* holding one large allocation */
	/* of free_bytes, permille in partly used pages (not whole pages) */
	uint32_t fragmentation;
	uint32_t reserved;
	uint64_t repairs;	/* dead lock holders repaired so far */
} dynshm_area_stats;

/* Computed from the allocator's primary data, under its locks. */
int dynshm_area_stats_get(dynshm_area *area, dynshm_area_stats *stats);

/* ---- the hash table ------------------------------------------------------ */

typedef struct dynshm_hash dynshm_hash;

/* Key size for NUL-terminated string keys (at most DYNSHM_HASH_KEY_MAX). */
#define DYNSHM_HASH_STRING 0u
#define DYNSHM_HASH_KEY_MAX 1024u
/* Flag of dynshm_hash_insert: overwrite the value of an existing key. */
#define DYNSHM_HASH_REPLACE 0x1u

/*
 * Create a table in area with keys of key_size bytes (or string keys) and
 * values of value_size bytes.  An entry (40 bytes, the key rounded up to
 * 8, the value) must fit DYNSHM_AREA_SMALL_MAX, else -EINVAL.  *table
 * receives its area pointer, which other processes pass to
 * dynshm_hash_attach.
 */
int dynshm_hash_create(dynshm_area *area, size_t key_size, size_t value_size,
		       dynshm_area_ptr *table, dynshm_hash **out);
int dynshm_hash_attach(dynshm_area *area, dynshm_area_ptr table,
		       dynshm_hash **out);
/* Free this process's handle (the table stays). */
int dynshm_hash_detach(dynshm_hash *hash);
/* Free the table and its entries in the area, and the handle. */
int dynshm_hash_destroy(dynshm_hash *hash);

/* -EEXIST when key is present (unless DYNSHM_HASH_REPLACE). */
int dynshm_hash_insert(dynshm_hash *hash, const void *key, const void *value,
		       unsigned flags);
/* Copy key's value to value (may be NULL); -ENOENT when absent. */
int dynshm_hash_find(dynshm_hash *hash, const void *key, void *value);
/* -ENOENT when absent. */
int dynshm_hash_delete(dynshm_hash *hash, const void *key);

/*
 * Call fn for every entry, one partition at a time under its lock (fn must
 * not call the table).  fn returns 0 to go on; anything else stops the
 * walk and is returned.  Entries inserted or deleted meanwhile in other
 * partitions may or may not be seen.
 */
typedef int (*dynshm_hash_fn)(const void *key, size_t key_len, void *value,
			      void *arg);
int dynshm_hash_foreach(dynshm_hash *hash, dynshm_hash_fn fn, void *arg);
/* Entries in the table now. */
int dynshm_hash_count(dynshm_hash *hash, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif
