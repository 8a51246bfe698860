/* SPDX-License-Identifier: MIT */
/*
 * control.c - format, validate and keep consistent the control segment.
 *
 * Everything here works on a mapped control segment and knows nothing of
 * instances, files or backends; instance.c and segment.c decide when to
 * lock and what to change.  The rules the functions keep are written on the
 * structures in control.h.
 *
 * Validation is deliberately paranoid: a control segment is shared memory
 * that any process of the same user can scribble on, and a foreign object
 * can sit under our name.  Nothing is walked until magic, version, sizes,
 * geometry and the header checksum agree.
 */
#include "control.h"

#include "error.h"
#include "region.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CORRUPT(...) dynshm_fail(EUCLEAN, __VA_ARGS__)

static void names_rebuild(struct ctl *c);

static size_t align_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

static uint32_t row_words_for(uint32_t max_segments)
{
	return (max_segments + 63) / 64;
}

struct geometry {
	size_t procs, slots, refs, names, region, total;
	uint32_t buckets;
};

/* Named-index buckets: a power of two, at least max_segments. */
static uint32_t buckets_for(uint32_t max_segments)
{
	uint32_t b = 16;

	while (b < max_segments)
		b *= 2;
	return b;
}

static struct geometry geometry_of(uint32_t max_segments,
				   uint32_t max_processes, uint64_t region_size)
{
	struct geometry g;

	g.procs = align_up(sizeof(struct ctl_header), 64);
	g.slots = align_up(g.procs + (size_t)max_processes *
					     sizeof(struct ctl_proc),
			   64);
	g.refs = align_up(g.slots + (size_t)max_segments *
					    sizeof(struct ctl_slot),
			  64);
	g.names = align_up(g.refs + (size_t)max_processes *
					    row_words_for(max_segments) * 8,
			   64);
	g.buckets = buckets_for(max_segments);
	g.region = align_up(g.names + (size_t)g.buckets * 4, 64);
	g.total = align_up(g.region + region_area_size(region_size), 4096);
	return g;
}

size_t ctl_total_size(uint32_t max_segments, uint32_t max_processes,
		      uint64_t region_size)
{
	return geometry_of(max_segments, max_processes, region_size).total;
}

static uint64_t header_checksum(const struct ctl_header *h)
{
	const unsigned char *p = (const unsigned char *)h;
	uint64_t sum = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < offsetof(struct ctl_header, checksum); i++)
		sum = (sum ^ p[i]) * 0x100000001b3ull;
	return sum;
}

uint64_t ctl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ctl_format(void *base, uint64_t instance_id, uint32_t backend,
	       uint32_t max_segments, uint32_t max_processes,
	       uint64_t region_size, uint32_t huge_pages)
{
	struct geometry g =
		geometry_of(max_segments, max_processes, region_size);
	struct ctl_header *h = base;
	struct ctl c;
	int rc;

	h->magic = CTL_MAGIC;
	h->version = CTL_VERSION;
	h->header_size = sizeof(*h);
	h->slot_size = sizeof(struct ctl_slot);
	h->proc_size = sizeof(struct ctl_proc);
	h->max_segments = max_segments;
	h->max_processes = max_processes;
	h->row_words = row_words_for(max_segments);
	h->backend = backend;
	h->instance_id = instance_id;
	h->total_size = g.total;
	h->procs_offset = g.procs;
	h->slots_offset = g.slots;
	h->refs_offset = g.refs;
	h->huge_pages = huge_pages;
	h->region_size = region_size;
	h->region_offset = region_size ? g.region : 0;
	h->names_offset = g.names;
	h->name_buckets = g.buckets;
	h->created_ns = ctl_now_ns();
	h->creator_pid = (int32_t)getpid();
	h->checksum = header_checksum(h);
	rc = ctl_validate(base, g.total, instance_id, "new", &c);
	if (rc < 0)
		return rc;
	region_format(&c, region_size, region_size);
	h->lock_holder = CTL_NONE;
	ctl_recompute(&c);
	return 0;
}

int ctl_validate(void *base, size_t map_size, uint64_t instance_id,
		 const char *where, struct ctl *out)
{
	struct ctl_header *h = base;
	struct geometry g;

	if (map_size < sizeof(*h))
		return CORRUPT("control segment of %s is truncated (%zu bytes)",
			       where, map_size);
	if (h->magic != CTL_MAGIC)
		return CORRUPT("control segment of %s has a foreign magic "
			       "number 0x%016" PRIx64,
			       where, h->magic);
	if (h->version != CTL_VERSION)
		return CORRUPT("control segment of %s has layout version %u; "
			       "this library reads version %u",
			       where, h->version, CTL_VERSION);
	if (h->header_size != sizeof(*h) ||
	    h->slot_size != sizeof(struct ctl_slot) ||
	    h->proc_size != sizeof(struct ctl_proc))
		return CORRUPT("control segment of %s was laid out by a "
			       "different build (structure sizes differ)",
			       where);
	if (h->checksum != header_checksum(h))
		return CORRUPT("control segment header of %s fails its "
			       "checksum",
			       where);
	if (h->instance_id != instance_id)
		return CORRUPT("control segment of %s belongs to instance "
			       "%016" PRIx64 ", not %016" PRIx64,
			       where, h->instance_id, instance_id);
	if (h->max_segments == 0 || h->max_segments > CTL_MAX_SEGMENTS ||
	    h->max_processes == 0 || h->max_processes > CTL_MAX_PROCESSES)
		return CORRUPT("control segment of %s has impossible limits",
			       where);
	if (h->region_size > REGION_MAX_SIZE ||
	    h->region_size % REGION_PAGE)
		return CORRUPT("control segment of %s records an impossible "
			       "region size",
			       where);
	g = geometry_of(h->max_segments, h->max_processes, h->region_size);
	if (h->row_words != row_words_for(h->max_segments) ||
	    h->region_offset != (h->region_size ? g.region : 0) ||
	    h->total_size != g.total || h->procs_offset != g.procs ||
	    h->slots_offset != g.slots || h->refs_offset != g.refs ||
	    h->names_offset != g.names || h->name_buckets != g.buckets ||
	    map_size < g.total)
		return CORRUPT("control segment of %s has inconsistent "
			       "geometry (%zu bytes mapped, %" PRIu64
			       " expected)",
			       where, map_size, h->total_size);
	out->hdr = h;
	/* offsets are multiples of 64 (geometry_of): via void * for clang */
	out->procs = (struct ctl_proc *)(void *)((char *)base + g.procs);
	out->slots = (struct ctl_slot *)(void *)((char *)base + g.slots);
	out->refs = (uint64_t *)(void *)((char *)base + g.refs);
	out->names = (uint32_t *)(void *)((char *)base + g.names);
	out->max_segments = h->max_segments;
	memcpy(out->ident, h, sizeof(out->ident));
	return 0;
}

void ctl_set_bit(struct ctl *c, uint32_t proc, uint32_t slot)
{
	uint64_t *word = &ctl_row(c, proc)[slot / 64];
	uint64_t bit = (uint64_t)1 << (slot % 64);

	if (*word & bit)
		return;
	__atomic_or_fetch(word, bit, __ATOMIC_RELEASE);
	c->slots[slot].refcount++;
	c->procs[proc].nrefs++;
}

void ctl_clear_bit(struct ctl *c, uint32_t proc, uint32_t slot)
{
	uint64_t *word = &ctl_row(c, proc)[slot / 64];
	uint64_t bit = (uint64_t)1 << (slot % 64);

	if (!(*word & bit))
		return;
	__atomic_and_fetch(word, ~bit, __ATOMIC_RELEASE);
	c->slots[slot].refcount--;
	c->procs[proc].nrefs--;
}

/*
 * Rebuild refcounts, per-process counts, the free list and the counters.
 * Also sanitises primary fields a crash cannot leave wrong but a scribbler
 * can: an out-of-range state or owner becomes something the reaper handles.
 */
void ctl_recompute(struct ctl *c)
{
	struct ctl_header *h = c->hdr;
	uint32_t p, s;

	h->nsegments = 0;
	h->nprocs = 0;
	h->nforks = 0;
	h->free_head = CTL_NONE;
	for (s = 0; s < h->max_segments; s++)
		c->slots[s].refcount = 0;
	for (p = 0; p < h->max_processes; p++) {
		struct ctl_proc *proc = &c->procs[p];
		uint64_t *row = ctl_row(c, p);

		proc->nrefs = 0;
		if (!ctl_proc_held(proc)) {
			proc->state = PROC_FREE;
			memset(row, 0, h->row_words * 8);
			continue;
		}
		if (proc->state == PROC_LIVE)
			h->nprocs++;
		else
			h->nforks++;
		for (uint32_t w = 0; w < h->row_words; w++) {
			uint64_t bits = row[w];

			while (bits) {
				s = w * 64 + (uint32_t)__builtin_ctzll(bits);
				bits &= bits - 1;
				if (s >= h->max_segments ||
				    c->slots[s].state == SLOT_FREE) {
					row[w] &= ~((uint64_t)1 << (s % 64));
					continue;
				}
				c->slots[s].refcount++;
				proc->nrefs++;
			}
		}
	}
	/* Push in reverse so that low slots are handed out first. */
	for (s = h->max_segments; s-- > 0;) {
		struct ctl_slot *slot = &c->slots[s];

		if (slot->state > SLOT_MORIBUND)
			slot->state = SLOT_MORIBUND; /* let the reaper judge */
		if ((slot->state == SLOT_CREATING ||
		     slot->state == SLOT_MORIBUND) &&
		    slot->owner >= h->max_processes)
			slot->owner = CTL_NONE;
		if (slot->state == SLOT_FREE)
			ctl_push_free(c, s);
		else
			h->nsegments++;
	}
	names_rebuild(c);
	region_rebuild(c);
}

int ctl_pop_free(struct ctl *c, uint32_t *out)
{
	struct ctl_header *h = c->hdr;
	uint32_t s = h->free_head, next;

	if (s == CTL_NONE)
		return -ENOSPC;
	/* a cycle of free slots ends at one popped before: not FREE now */
	if (s >= h->max_segments || c->slots[s].state != SLOT_FREE ||
	    ((next = c->slots[s].next_free) != CTL_NONE &&
	     next >= h->max_segments)) {
		uint32_t head = s;

		ctl_recompute(c);
		return CORRUPT("the free-slot list of the control segment was "
			       "scribbled (free_head or a next_free link "
			       "leads to %" PRIu32 ", %s); rebuilt from the "
			       "slot states, retry",
			       head,
			       head >= h->max_segments
				       ? "beyond max_segments"
				       : c->slots[head].state != SLOT_FREE
						 ? "a slot in use"
						 : "whose link is out of range");
	}
	h->free_head = next;
	c->slots[s].next_free = CTL_NONE;
	h->nsegments++;
	*out = s;
	return 0;
}

void ctl_push_free(struct ctl *c, uint32_t s)
{
	c->slots[s].next_free = c->hdr->free_head;
	c->hdr->free_head = s;
}

/* ---- the named index (control.h, NAMED INDEX) -------------------------- */

static uint32_t name_bucket(const struct ctl *c, const char *name)
{
	uint32_t sum = 0x811c9dc5u;

	for (size_t i = 0; i < CTL_NAME_LEN && name[i]; i++)
		sum = (sum ^ (unsigned char)name[i]) * 0x01000193u;
	return sum & (c->hdr->name_buckets - 1);
}

static void names_rebuild(struct ctl *c)
{
	struct ctl_header *h = c->hdr;

	for (uint32_t b = 0; b < h->name_buckets; b++)
		c->names[b] = CTL_NONE;
	/* in reverse, so that chains list low slots first */
	for (uint32_t s = h->max_segments; s-- > 0;) {
		c->slots[s].name_next = CTL_NONE;
		if (c->slots[s].state != SLOT_FREE && c->slots[s].name[0])
			ctl_names_insert(c, s);
	}
}

void ctl_names_insert(struct ctl *c, uint32_t s)
{
	struct ctl_slot *slot = &c->slots[s];
	uint32_t b;

	slot->name[CTL_NAME_LEN - 1] = '\0';
	b = name_bucket(c, slot->name);
	slot->name_next = c->names[b];
	c->names[b] = s;
}

/*
 * Walk name's chain: *link ends at the link that holds s (or at the end).
 * false when the chain is scribbled: a link beyond max_segments, to a FREE
 * slot, or longer than max_segments (a cycle).
 */
static bool chain_walk(struct ctl *c, const char *name, uint32_t s,
		       uint32_t **link)
{
	uint32_t max = c->hdr->max_segments, steps = 0;
	uint32_t *l = &c->names[name_bucket(c, name)];

	while (*l != CTL_NONE && *l != s) {
		if (*l >= max || c->slots[*l].state == SLOT_FREE ||
		    ++steps > max)
			return false;
		l = &c->slots[*l].name_next;
	}
	*link = l;
	return true;
}

void ctl_names_remove(struct ctl *c, uint32_t s)
{
	uint32_t *link;

	if (!c->slots[s].name[0])
		return;
	c->slots[s].name[CTL_NAME_LEN - 1] = '\0';
	if (!chain_walk(c, c->slots[s].name, s, &link)) {
		names_rebuild(c); /* derived: s is left out if it is FREE */
		return;
	}
	if (*link == s)
		*link = c->slots[s].name_next;
	c->slots[s].name_next = CTL_NONE;
}

int ctl_names_find(struct ctl *c, const char *name, uint32_t *out)
{
	uint32_t max = c->hdr->max_segments, steps = 0;
	uint32_t b = name_bucket(c, name), s = c->names[b];

	*out = CTL_NONE;
	for (; s != CTL_NONE; s = c->slots[s].name_next) {
		const struct ctl_slot *slot;

		if (s >= max || c->slots[s].state == SLOT_FREE ||
		    ++steps > max) {
			names_rebuild(c);
			return CORRUPT("the named index of the control segment "
				       "was scribbled (bucket %" PRIu32
				       " leads to slot %" PRIu32 ", %s); "
				       "rebuilt from the slots, retry",
				       b, s,
				       s >= max ? "beyond max_segments"
				       : steps > max ? "in a cycle"
						     : "a free slot");
		}
		slot = &c->slots[s];
		if (slot->state != SLOT_CREATING &&
		    (slot->state != SLOT_ACTIVE || slot->doomed))
			continue;
		if (strncmp(slot->name, name, CTL_NAME_LEN) == 0) {
			*out = s;
			return 0;
		}
	}
	return 0;
}

/* ---- a control segment scribbled between calls ------------------------- */

static const struct {
	const char *name;
	size_t offset;
} header_fields[] = {
#define F(f) { #f, offsetof(struct ctl_header, f) }
	F(magic), F(version), F(header_size), F(slot_size), F(proc_size),
	F(max_segments), F(max_processes), F(row_words), F(backend),
	F(instance_id), F(total_size), F(procs_offset), F(slots_offset),
	F(refs_offset), F(created_ns), F(creator_pid), F(huge_pages),
	F(region_size), F(region_offset), F(names_offset), F(name_buckets),
	F(reserved_), F(checksum),
#undef F
};

static const char *header_field_at(size_t offset)
{
	const char *name = "header";

	for (size_t i = 0; i < sizeof(header_fields) / sizeof(header_fields[0]);
	     i++)
		if (header_fields[i].offset <= offset)
			name = header_fields[i].name;
	return name;
}

int ctl_check_live(struct ctl *c)
{
	unsigned char *h = (unsigned char *)c->hdr;
	struct region_ctl *r;
	const char *field = NULL;

	/* memcmp first: this runs at every lock, the loop only on a change */
	for (size_t i = 0; memcmp(h, c->ident, sizeof(c->ident)) != 0 &&
			   i < sizeof(c->ident);
	     i++) {
		if (h[i] != c->ident[i]) {
			field = header_field_at(i);
			memcpy(h, c->ident, sizeof(c->ident));
			break;
		}
	}
	r = region_of(c);
	if (r && region_fix_geometry(c)) {
		field = field ? field : "region geometry (struct region_ctl)";
		region_rebuild(c);
	}
	if (!field)
		return 0;
	ctl_recompute(c);
	return CORRUPT("the control segment header was scribbled (field %s); "
		       "put back as this process validated it and derived "
		       "data rebuilt, retry",
		       field);
}

uint32_t ctl_lookup(const struct ctl *c, uint64_t handle)
{
	uint32_t s = (uint32_t)(handle & HANDLE_SLOT_MASK);

	if (handle == 0 || s >= c->hdr->max_segments)
		return CTL_NONE;
	if (c->slots[s].handle != handle || c->slots[s].state == SLOT_FREE)
		return CTL_NONE;
	return s;
}
