/* SPDX-License-Identifier: MIT */
/*
 * toc.c - the table of contents: key -> chunk, at the start of a segment.
 *
 * A process that creates a segment for others must tell them where things
 * are in it; addresses differ per process, so the table records offsets
 * from its own start.  The layout and its invariants are in toc.h.
 */
#include "toc.h"

#include "../error.h"

#include <dynshm/facility.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct dynshm_toc {
	struct toc_header *hdr;
	char *base;
	uint64_t size;	     /* min(caller's size, total_size) */
	uint64_t max_keys;
	uint64_t data_start;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint64_t header_check(uint64_t max_keys, uint64_t data_start,
			     uint64_t total_size)
{
	uint64_t h = TOC_MAGIC ^ TOC_VERSION;

	h = (h ^ max_keys) * 0x100000001b3ull;
	h = (h ^ data_start) * 0x100000001b3ull;
	return (h ^ total_size) * 0x100000001b3ull;
}

/* Bytes of header and entries, aligned; 0 on overflow. */
static uint64_t table_bytes(size_t nkeys)
{
	if (nkeys > (SIZE_MAX - 4096) / sizeof(struct toc_entry) / 2)
		return 0;
	return align_up(sizeof(struct toc_header) +
				nkeys * sizeof(struct toc_entry),
			DYNSHM_TOC_ALIGN);
}

DYNSHM_EXPORT size_t dynshm_toc_estimate(size_t nkeys,
					 const size_t *chunk_sizes,
					 size_t nchunks)
{
	uint64_t total = table_bytes(nkeys);

	if (total == 0 || (nchunks && !chunk_sizes))
		return 0;
	for (size_t i = 0; i < nchunks; i++) {
		if (chunk_sizes[i] > SIZE_MAX / 2 - total)
			return 0;
		total += align_up(chunk_sizes[i], DYNSHM_TOC_ALIGN);
	}
	return total > SIZE_MAX ? 0 : (size_t)total;
}

static int new_handle(void *base, uint64_t size, uint64_t max_keys,
		      uint64_t data_start, dynshm_toc **out)
{
	dynshm_toc *toc = malloc(sizeof(*toc));

	if (!toc)
		return dynshm_fail(ENOMEM, "cannot allocate a table of "
				   "contents handle");
	toc->hdr = base;
	toc->base = base;
	toc->size = size;
	toc->max_keys = max_keys;
	toc->data_start = data_start;
	*out = toc;
	return 0;
}

DYNSHM_EXPORT int dynshm_toc_create(void *base, size_t size, size_t max_keys,
				    dynshm_toc **out)
{
	uint64_t data_start = table_bytes(max_keys);
	struct toc_header *h = base;
	int rc;

	if (!base || !out || (uintptr_t)base % 8)
		return dynshm_fail(EINVAL, "a table of contents needs an "
				   "8-byte aligned base and a place for the "
				   "handle");
	if (data_start == 0 || data_start > size)
		return dynshm_fail(EINVAL, "%zu bytes cannot hold a table of "
				   "contents for %zu keys (dynshm_toc_estimate "
				   "says how many can)", size, max_keys);
	rc = new_handle(base, size, max_keys, data_start, out);
	if (rc < 0)
		return rc;
	memset(h, 0, sizeof(*h) + max_keys * sizeof(struct toc_entry));
	h->version = TOC_VERSION;
	h->max_keys = max_keys;
	h->data_start = data_start;
	h->total_size = size;
	h->check = header_check(max_keys, data_start, size);
	h->alloc_next = data_start;
	h->nreserved = 0;
	__atomic_store_n(&h->magic, TOC_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

DYNSHM_EXPORT int dynshm_toc_attach(void *base, size_t size, dynshm_toc **out)
{
	const struct toc_header *h = base;
	uint64_t max_keys, data_start, total;

	if (!base || !out || (uintptr_t)base % 8)
		return dynshm_fail(EINVAL, "a table of contents needs an "
				   "8-byte aligned base and a place for the "
				   "handle");
	if (size < sizeof(*h) ||
	    __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != TOC_MAGIC ||
	    h->version != TOC_VERSION)
		return dynshm_fail(EUCLEAN, "no table of contents at %p (bad "
				   "magic or version; was it created?)", base);
	max_keys = h->max_keys;
	data_start = h->data_start;
	total = h->total_size;
	if (h->check != header_check(max_keys, data_start, total) ||
	    max_keys > SIZE_MAX || table_bytes((size_t)max_keys) != data_start ||
	    data_start > size || data_start > total)
		return dynshm_fail(EUCLEAN, "the table of contents at %p is "
				   "corrupt (its geometry does not check out "
				   "against %zu bytes)", base, size);
	return new_handle(base, total < size ? total : size, max_keys,
			  data_start, out);
}

DYNSHM_EXPORT void dynshm_toc_release(dynshm_toc *toc)
{
	free(toc);
}

DYNSHM_EXPORT int dynshm_toc_alloc(dynshm_toc *toc, size_t size, size_t align,
				   void **out)
{
	uint64_t cur, start, end;

	if (!toc || !out)
		return dynshm_fail(EINVAL, "no table of contents or no place "
				   "for the chunk given");
	if (align == 0)
		align = DYNSHM_TOC_ALIGN;
	if (align & (align - 1) || align > TOC_MAX_ALIGN)
		return dynshm_fail(EINVAL, "chunk alignment %zu is not a power "
				   "of two up to %u", align, TOC_MAX_ALIGN);
	cur = __atomic_load_n(&toc->hdr->alloc_next, __ATOMIC_RELAXED);
	do {
		if (cur < toc->data_start || cur > toc->size)
			return dynshm_fail(EUCLEAN, "the table of contents at "
					   "%p is corrupt (next free byte %"
					   PRIu64 " outside it)",
					   (void *)toc->base, cur);
		/* Align the address, not the offset: base may be less. */
		start = align_up((uintptr_t)toc->base + cur, align) -
			(uintptr_t)toc->base;
		if (size > toc->size || start > toc->size - size)
			return dynshm_fail(ENOSPC, "no room for a chunk of %zu "
					   "bytes in the table of contents at "
					   "%p (%" PRIu64 " of %" PRIu64
					   " bytes used)", size,
					   (void *)toc->base, cur, toc->size);
		end = align_up(start + size, 8);
		if (end > toc->size)
			end = toc->size;
	} while (!__atomic_compare_exchange_n(&toc->hdr->alloc_next, &cur, end,
					      false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	*out = toc->base + start;
	return 0;
}

/* The published entry i, copied, if it is sound; else false. */
static bool read_entry(const dynshm_toc *toc, uint64_t i,
		       struct toc_entry *e)
{
	const struct toc_entry *s = &toc->hdr->entries[i];

	if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != TOC_PUBLISHED)
		return false;
	e->key = __atomic_load_n(&s->key, __ATOMIC_RELAXED);
	e->offset = __atomic_load_n(&s->offset, __ATOMIC_RELAXED);
	e->size = __atomic_load_n(&s->size, __ATOMIC_RELAXED);
	return true;
}

static uint64_t entries_in_use(const dynshm_toc *toc)
{
	uint64_t n = __atomic_load_n(&toc->hdr->nreserved, __ATOMIC_ACQUIRE);

	return n < toc->max_keys ? n : toc->max_keys;
}

static bool in_range(const dynshm_toc *toc, uint64_t offset, uint64_t size)
{
	return offset >= toc->data_start && offset <= toc->size &&
	       size <= toc->size - offset;
}

DYNSHM_EXPORT int dynshm_toc_lookup(dynshm_toc *toc, uint64_t key, void **out,
				    size_t *size)
{
	uint64_t n;

	if (!toc || !out)
		return dynshm_fail(EINVAL, "no table of contents or no place "
				   "for the chunk given");
	n = entries_in_use(toc);
	for (uint64_t i = 0; i < n; i++) {
		struct toc_entry e;

		if (!read_entry(toc, i, &e) || e.key != key)
			continue;
		if (!in_range(toc, e.offset, e.size))
			return dynshm_fail(EUCLEAN, "the table of contents at "
					   "%p is corrupt (key 0x%" PRIx64
					   " points outside it)",
					   (void *)toc->base, key);
		*out = toc->base + e.offset;
		if (size)
			*size = (size_t)e.size;
		return 0;
	}
	return dynshm_fail(ENOENT, "key 0x%" PRIx64 " is not in the table of "
			   "contents at %p", key, (void *)toc->base);
}

DYNSHM_EXPORT int dynshm_toc_insert(dynshm_toc *toc, uint64_t key,
				    void *chunk, size_t size)
{
	uint64_t offset, i;
	struct toc_entry *e;
	void *found;
	int rc;

	if (!toc || !chunk || (char *)chunk < toc->base)
		return dynshm_fail(EINVAL, "no table of contents or no chunk "
				   "given");
	offset = (uint64_t)((char *)chunk - toc->base);
	if (!in_range(toc, offset, size))
		return dynshm_fail(EINVAL, "the chunk of %zu bytes at %p is not "
				   "inside the table of contents at %p", size,
				   chunk, (void *)toc->base);
	rc = dynshm_toc_lookup(toc, key, &found, NULL);
	if (rc == 0)
		return dynshm_fail(EEXIST, "key 0x%" PRIx64 " is already in "
				   "the table of contents at %p", key,
				   (void *)toc->base);
	if (rc != -ENOENT)
		return rc; /* corrupt: its message stands */
	/*
	 * Taken only below max_keys, by compare-and-swap: an add past the
	 * end, repeated, would wrap a scribbled counter back to entry 0 and
	 * overwrite a published entry.
	 */
	i = __atomic_load_n(&toc->hdr->nreserved, __ATOMIC_ACQUIRE);
	do {
		if (i >= toc->max_keys)
			return dynshm_fail(ENOSPC, "all %" PRIu64 " entries of "
					   "the table of contents at %p are "
					   "used", toc->max_keys,
					   (void *)toc->base);
	} while (!__atomic_compare_exchange_n(&toc->hdr->nreserved, &i, i + 1,
					      false, __ATOMIC_ACQ_REL,
					      __ATOMIC_ACQUIRE));
	e = &toc->hdr->entries[i];
	e->key = key;
	e->offset = offset;
	e->size = size;
	__atomic_store_n(&e->state, TOC_PUBLISHED, __ATOMIC_RELEASE);
	return 0;
}
