/* SPDX-License-Identifier: MIT */
/*
 * region.c - region carve-outs and huge pages.
 *
 * Why: every process that maps a shared 4 KiB page pays its own page-table
 * entry and every mapped segment is a VMA of its own, and attaching one is
 * an open, an fstat and an mmap.  A region is one shared object, made when
 * the instance is created (min_dynamic_shared_memory bytes) and mapped once
 * by each joining process, at the same address where it can be.  dynshm_create
 * then carves segments out of it: attaching such a segment is a lookup in
 * the control segment and pointer arithmetic - no system call, no VMA.
 *
 * The allocator is a buddy system over 4 KiB pages.  Its free lists live in
 * the control segment as derived data (region.h states the invariants): the
 * truth is which slots hold which blocks, and region_rebuild() recomputes
 * the lists from the slots when a lock holder died.  Allocation and free are
 * O(log n) (one list per order, doubly linked, indices not pointers, since
 * every process maps the control segment at its own address).
 *
 * The OS object is a SysV segment, whatever the instance's backend:
 *   - SHM_HUGETLB gives huge pages with no hugetlbfs mount and no descriptor
 *     to pass between unrelated processes (memfd MFD_HUGETLB would need fd
 *     passing; a hugetlbfs file needs a mount the operator must provide);
 *   - its key derives from the instance id (the sysv backend's key of
 *     REGION_HANDLE), so crash cleanup finds it with the instance id alone,
 *     and the test suite's leak check sees it;
 *   - shmat() at an address refuses a range that is in use, which is the
 *     MAP_FIXED_NOREPLACE behaviour wanted for "same address where possible".
 * Huge pages: huge_pages = try|on asks for SHM_HUGETLB; `try` falls back to
 * 4 KiB pages and, where shmem_enabled allows it, to shmem transparent huge
 * pages (MADV_HUGEPAGE in every process), recording why in the control
 * segment so that every process's dynshm_instance_info_get says it.  The region
 * is mapped 1 GiB-aligned so that on x86-64 hugetlb PMD page tables are
 * shared between processes for every whole GiB it covers.
 *
 * Placement elsewhere (msharefs) replaces the three functions under "the OS
 * object": os_make, region_map_at and os_unmap.  Nothing else here knows
 * what the object is.
 */
#include "region.h"

#include "error.h"
#include "impl/impl_internal.h"
#include "sys.h"
#include "wrapper.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION_ALIGN ((uint64_t)1 << 30)
#define THP_SIZE ((uint64_t)2 << 20)

/* ---- allocator -------------------------------------------------------------- */

static uint32_t *next_of(struct region_ctl *r)
{
	return (uint32_t *)(r + 1);
}

static uint32_t *prev_of(struct region_ctl *r)
{
	return next_of(r) + r->nblocks;
}

static uint8_t *tag_of(struct region_ctl *r)
{
	return (uint8_t *)(prev_of(r) + r->nblocks);
}

size_t region_area_size(uint64_t region_size)
{
	uint64_t n = region_size / REGION_PAGE;

	return region_size ? sizeof(struct region_ctl) + (size_t)n * 9 : 0;
}

struct region_ctl *region_of(const struct ctl *c)
{
	if (!c->hdr->region_size)
		return NULL;
	return (struct region_ctl *)((char *)c->hdr + c->hdr->region_offset);
}

/*
 * The list operations check every index they read from the control segment
 * before using it (control.h, SCRIBBLES) and return false, having written
 * nothing, when one is impossible; the caller rebuilds the lists.
 */
static bool list_push(struct region_ctl *r, uint32_t order, uint32_t b)
{
	uint32_t *next = next_of(r), *prev = prev_of(r);
	uint32_t h = r->head[order];

	if (b >= r->nblocks ||
	    (h != CTL_NONE && (h >= r->nblocks || prev[h] != CTL_NONE)))
		return false;
	next[b] = h;
	prev[b] = CTL_NONE;
	if (h != CTL_NONE)
		prev[h] = b;
	r->head[order] = b;
	tag_of(r)[b] = (uint8_t)(order + 1);
	return true;
}

/* Is b a free block of this order whose neighbours point back at it? */
static bool linked(struct region_ctl *r, uint32_t order, uint32_t b)
{
	uint32_t *next = next_of(r), *prev = prev_of(r);
	uint32_t n, p;

	if (b >= r->nblocks || tag_of(r)[b] != order + 1 ||
	    b % (1u << order) || (uint64_t)b + (1u << order) > r->nblocks)
		return false;
	n = next[b];
	p = prev[b];
	if (p == CTL_NONE ? r->head[order] != b
			  : p >= r->nblocks || next[p] != b)
		return false;
	return n == CTL_NONE || (n < r->nblocks && prev[n] == b);
}

static bool list_remove(struct region_ctl *r, uint32_t order, uint32_t b)
{
	uint32_t *next = next_of(r), *prev = prev_of(r);

	if (!linked(r, order, b))
		return false;
	if (prev[b] != CTL_NONE)
		next[prev[b]] = next[b];
	else
		r->head[order] = next[b];
	if (next[b] != CTL_NONE)
		prev[next[b]] = prev[b];
	tag_of(r)[b] = 0;
	return true;
}

static uint32_t order_for(uint64_t size)
{
	uint64_t pages = (size + REGION_PAGE - 1) / REGION_PAGE;
	uint32_t o = 0;

	while (((uint64_t)1 << o) < pages)
		o++;
	return o;
}

void region_format(struct ctl *c, uint64_t requested, uint64_t size)
{
	struct region_ctl *r = region_of(c);

	if (!r)
		return;
	r->magic = REGION_MAGIC;
	r->size = size;
	r->requested = requested;
	r->nblocks = (uint32_t)(size / REGION_PAGE);
	r->max_order = 0;
	while (r->max_order < REGION_MAX_ORDER &&
	       ((uint64_t)2 << r->max_order) <= r->nblocks)
		r->max_order++;
	/* the free lists: ctl_format's ctl_recompute calls region_rebuild */
}

/* Split free block (h, q) until block (b, o) is cut out of it. */
static bool split_to(struct region_ctl *r, uint32_t h, uint32_t q, uint32_t b,
		     uint32_t o)
{
	while (q > o) {
		uint32_t half = 1u << --q;

		if (b >= h + half) {
			if (!list_push(r, q, h))
				return false;
			h += half;
		} else if (!list_push(r, q, h + half)) {
			return false;
		}
	}
	r->nsegments++;
	r->used_pages += (uint64_t)1 << o;
	return true;
}

/* Mark block (b, o) as held; false if it is not wholly free. */
static bool carve(struct region_ctl *r, uint32_t b, uint32_t o)
{
	if (o > r->max_order || b % (1u << o) ||
	    (uint64_t)b + (1u << o) > r->nblocks)
		return false;
	for (uint32_t q = o; q <= r->max_order; q++) {
		uint32_t h = b & ~((1u << q) - 1);

		if ((uint64_t)h + (1u << q) > r->nblocks)
			return false;
		if (tag_of(r)[h] == q + 1)
			return list_remove(r, q, h) && split_to(r, h, q, b, o);
	}
	return false;
}

bool region_fix_geometry(struct ctl *c)
{
	struct region_ctl *r = region_of(c);
	uint64_t size = c->hdr->region_size;
	uint32_t nblocks = (uint32_t)(size / REGION_PAGE), max_order = 0;

	if (!r)
		return false;
	/* the largest order that fits, as region_format computes it */
	max_order = nblocks ? 31u - (uint32_t)__builtin_clz(nblocks) : 0;
	if (max_order > REGION_MAX_ORDER)
		max_order = REGION_MAX_ORDER;
	if (r->magic == REGION_MAGIC && r->size == size &&
	    r->nblocks == nblocks && r->max_order == max_order)
		return false;
	r->magic = REGION_MAGIC;
	r->size = size;
	r->nblocks = nblocks;
	r->max_order = max_order;
	return true;
}

void region_rebuild(struct ctl *c)
{
	struct region_ctl *r = region_of(c);

	if (!r)
		return;
	region_fix_geometry(c); /* every index below depends on it */
	for (uint32_t o = 0; o < REGION_ORDERS; o++)
		r->head[o] = CTL_NONE;
	memset(tag_of(r), 0, r->nblocks);
	r->nsegments = 0;
	r->used_pages = 0;
	/* All free: the largest aligned blocks that fit. */
	for (uint32_t b = 0; b < r->nblocks;) {
		uint32_t o = 0;

		while (o < r->max_order && b % (2u << o) == 0 &&
		       (uint64_t)b + (2u << o) <= r->nblocks)
			o++;
		list_push(r, o, b);
		b += 1u << o;
	}
	/* Then cut out every block a slot holds. */
	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		struct ctl_slot *slot = &c->slots[s];

		if (slot->state == SLOT_FREE ||
		    slot->backend != CTL_BACKEND_REGION ||
		    slot->region_order == REGION_NO_BLOCK)
			continue;
		if (slot->region_offset % REGION_PAGE == 0 &&
		    slot->region_offset / REGION_PAGE < r->nblocks &&
		    carve(r, (uint32_t)(slot->region_offset / REGION_PAGE),
			  slot->region_order))
			continue;
		/* Impossible (a scribbler): let the reaper drop the slot. */
		slot->region_order = REGION_NO_BLOCK;
		slot->state = SLOT_MORIBUND;
		slot->owner = CTL_NONE;
	}
}

int region_alloc_locked(struct ctl *c, uint64_t size, uint64_t *offset,
			uint32_t *order)
{
	struct region_ctl *r = region_of(c);
	uint32_t o = order_for(size);

	if (!r || o > r->max_order)
		return -ENOSPC;
	for (uint32_t q = o; q <= r->max_order; q++) {
		uint32_t b = r->head[q];

		if (b == CTL_NONE)
			continue;
		/* list_remove checks b (alignment, tag, links) first */
		if (!list_remove(r, q, b) || !split_to(r, b, q, b, o)) {
			region_rebuild(c);
			return dynshm_fail(EUCLEAN,
					"the region's free list of order %u "
					"was scribbled (head[%u] or a link "
					"leads to block %u of %u); rebuilt "
					"from the slots, retry",
					q, q, b, r->nblocks);
		}
		*offset = (uint64_t)b * REGION_PAGE;
		*order = o;
		return 0;
	}
	return -ENOSPC;
}

int region_block_check(const struct ctl *c, uint32_t s)
{
	const struct region_ctl *r = region_of(c);
	const struct ctl_slot *slot = &c->slots[s];
	uint64_t off = slot->region_offset, size = slot->size;
	uint32_t o = slot->region_order;
	uint64_t b = off / REGION_PAGE;

	if (r && o <= r->max_order && off % REGION_PAGE == 0 &&
	    b % ((uint64_t)1 << o) == 0 &&
	    b + ((uint64_t)1 << o) <= r->nblocks && size > 0 &&
	    size <= (uint64_t)REGION_PAGE << o)
		return 0;
	return dynshm_fail(EUCLEAN,
			"segment 0x%016llx: its slot records a block that is "
			"not in the region (region_offset %" PRIu64
			", region_order %u, size %" PRIu64
			", region of %" PRIu64 " bytes); its memory cannot be "
			"found: destroy the segment or reset the instance",
			(unsigned long long)slot->handle, off, o, size,
			r ? r->size : 0);
}

void region_free_locked(struct ctl *c, uint32_t s)
{
	struct region_ctl *r = region_of(c);
	struct ctl_slot *slot = &c->slots[s];
	uint32_t o = slot->region_order, b;

	if (!r || slot->backend != CTL_BACKEND_REGION || o > r->max_order)
		return; /* REGION_NO_BLOCK, or scribbled: give nothing back */
	slot->region_order = REGION_NO_BLOCK;
	b = (uint32_t)(slot->region_offset / REGION_PAGE);
	if ((uint64_t)b + (1u << o) > r->nblocks || b % (1u << o))
		return;
	r->nsegments--;
	r->used_pages -= (uint64_t)1 << o;
	while (o < r->max_order) {
		uint32_t buddy = b ^ (1u << o);

		if ((uint64_t)buddy + (1u << o) > r->nblocks ||
		    tag_of(r)[buddy] != o + 1)
			break;
		if (!list_remove(r, o, buddy))
			goto scribbled;
		b &= ~(1u << o);
		o++;
	}
	if (list_push(r, o, b))
		return;
scribbled:
	/* derived data (the slot no longer records the block): rebuild */
	region_rebuild(c);
}

uint64_t region_largest_free(const struct ctl *c)
{
	struct region_ctl *r = region_of(c);

	for (uint32_t q = r ? r->max_order + 1 : 0; q-- > 0;)
		if (r->head[q] != CTL_NONE)
			return (uint64_t)REGION_PAGE << q;
	return 0;
}

/* ---- reading the kernel's settings ----------------------------------------- */

/* Read a small text file through dynshm_sys; "" on any failure. */
static void read_text(const char *path, char *buf, size_t len)
{
	ssize_t n = -1;
	int fd = dynshm_sys.open(path, O_RDONLY | O_CLOEXEC, 0);

	if (fd >= 0) {
		n = dynshm_sys.read(fd, buf, len - 1);
		dynshm_sys.close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
}

/* A "Key: value" line of /proc/meminfo; -1 when absent. */
static long long meminfo_value(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? atoll(p + strlen(key)) : -1;
}

struct hugetlb_state {
	long long total, free, rsvd; /* pages; total -1: no hugetlb at all */
	uint64_t page_size;	     /* bytes; 0 when unknown */
};

static void hugetlb_state(struct hugetlb_state *h)
{
	char text[8192];
	long long kb;

	read_text("/proc/meminfo", text, sizeof(text));
	h->total = meminfo_value(text, "HugePages_Total:");
	h->free = meminfo_value(text, "HugePages_Free:");
	h->rsvd = meminfo_value(text, "HugePages_Rsvd:");
	kb = meminfo_value(text, "Hugepagesize:");
	h->page_size = kb > 0 ? (uint64_t)kb << 10 : 0;
}

/* The bracketed word of shmem_enabled ("never" when unreadable). */
static void shmem_thp_mode(char *mode, size_t len)
{
	char text[256], *open, *close;

	read_text("/sys/kernel/mm/transparent_hugepage/shmem_enabled", text,
		  sizeof(text));
	open = strchr(text, '[');
	close = open ? strchr(open, ']') : NULL;
	if (!open || !close) {
		snprintf(mode, len, "unavailable");
		return;
	}
	*close = '\0';
	snprintf(mode, len, "%s", open + 1);
}

static bool thp_allowed(const char *mode)
{
	return strcmp(mode, "advise") == 0 || strcmp(mode, "always") == 0 ||
	       strcmp(mode, "within_size") == 0 || strcmp(mode, "force") == 0;
}

static uint64_t round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

uint64_t region_plan(const struct dynshm_config *cfg)
{
	struct hugetlb_state h;

	if (!cfg->min_dynamic_shared_memory || cfg->backend == DYNSHM_IMPL_NONE)
		return 0;
	if (cfg->huge_pages == DYNSHM_HUGE_PAGES_OFF)
		return round_up(cfg->min_dynamic_shared_memory, REGION_PAGE);
	hugetlb_state(&h);
	return round_up(cfg->min_dynamic_shared_memory,
			h.page_size ? h.page_size : THP_SIZE);
}

unsigned region_segment_flags(dynshm_instance *inst, size_t size)
{
	static uint64_t page_size; /* the kernel's, read once per process */
	uint64_t ps = __atomic_load_n(&page_size, __ATOMIC_RELAXED);

	if (inst->backend != DYNSHM_IMPL_SYSV ||
	    inst->c.hdr->huge_pages == DYNSHM_HUGE_PAGES_OFF)
		return 0;
	if (inst->huge_backoff > 0) {
		inst->huge_backoff--; /* it failed lately: do not ask again yet */
		return 0;
	}
	if (!ps) {
		struct hugetlb_state h;

		hugetlb_state(&h);
		ps = h.page_size ? h.page_size : UINT64_MAX;
		__atomic_store_n(&page_size, ps, __ATOMIC_RELAXED);
	}
	return size >= ps && size % ps == 0 ? DYNSHM_IMPL_CREATE_HUGETLB : 0;
}

/* Why SHM_HUGETLB failed with err, and what would make it work. */
static void hugetlb_reason(int err, uint64_t size, char *buf, size_t len)
{
	struct hugetlb_state h;
	unsigned long long need;

	hugetlb_state(&h);
	need = h.page_size ? (unsigned long long)(size / h.page_size) : 0;
	if (h.total < 0 || !h.page_size)
		snprintf(buf, len, "the kernel has no hugetlb support");
	else if (err == EPERM)
		snprintf(buf, len, "not permitted to use SHM_HUGETLB (add the "
				   "group to vm.hugetlb_shm_group or grant "
				   "CAP_IPC_LOCK)");
	else if (err == ENOMEM && h.total == 0)
		snprintf(buf, len, "no huge pages reserved (vm.nr_hugepages = "
				   "0; %llu pages of %llu kB needed: sysctl -w "
				   "vm.nr_hugepages=%llu)",
			 need, (unsigned long long)(h.page_size >> 10), need);
	else if (err == ENOMEM)
		snprintf(buf, len, "only %lld of %lld huge pages available, %llu "
				   "needed (raise vm.nr_hugepages)",
			 h.free - h.rsvd, h.total, need);
	else
		snprintf(buf, len, "shmget(SHM_HUGETLB) failed: %s",
			 strerror(err));
}

/* ---- the OS object: the only code that knows what the region is ----------- */

static int region_key(dynshm_instance *inst, key_t *key)
{
	dynshm_impl_space *space;
	int rc = space_for(inst, DYNSHM_IMPL_SYSV, &space);

	if (rc == 0)
		*key = dynshm_impl_sysv_key(space, REGION_HANDLE);
	return rc;
}

/* Unused, 1 GiB-aligned address space for size bytes; NULL if none. */
static void *free_range(size_t size)
{
	size_t len = size + REGION_ALIGN;
	void *p = dynshm_sys.mmap(NULL, len, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			       0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + REGION_ALIGN - 1) & ~(uintptr_t)(REGION_ALIGN - 1);
	dynshm_sys.munmap(p, len);
	return (void *)a;
}

/* Make the object: shmid, or -errno with errno's meaning kept. */
static int os_make(key_t key, uint64_t size, bool huge)
{
	int id = dynshm_sys.shmget(key, size,
				IPC_CREAT | IPC_EXCL | 0600 |
					(huge ? SHM_HUGETLB : 0));

	return id < 0 ? -errno : id;
}

/*
 * Map the region at want (NULL: anywhere 1 GiB-aligned); *got is where it
 * went.  A taken address is not an error: the caller compares.
 */
static int region_map_at(dynshm_instance *inst, const struct region_ctl *r,
			 void *want, void **got)
{
	struct shmid_ds ds;
	void *addr = (void *)-1;
	int id = dynshm_sys.shmget(r->key, 0, 0);

	if (id < 0)
		return dynshm_fail(errno == ENOENT ? ENOENT : errno,
				"cannot find the region (SysV key 0x%08x) of "
				"instance '%s': %s",
				(unsigned)r->key, inst->name, strerror(errno));
	if (dynshm_sys.shmctl(id, IPC_STAT, &ds) < 0)
		return dynshm_fail(errno, "cannot stat the region of instance "
				       "'%s': %s",
				inst->name, strerror(errno));
	if (!dynshm_uid_is_ours(ds.shm_perm.uid) || (ds.shm_perm.mode & 077) ||
	    ds.shm_segsz < r->size)
		return dynshm_fail(EACCES,
				"the region of instance '%s' (SysV key 0x%08x) "
				"is not a private object of uid %u of %" PRIu64
				" bytes",
				inst->name, (unsigned)r->key,
				(unsigned)geteuid(), r->size);
	if (want)
		addr = dynshm_sys.shmat(id, want, 0);
	for (int i = 0; addr == (void *)-1 && i < 2; i++) {
		void *at = free_range(r->size); /* a race may take it: twice */

		addr = dynshm_sys.shmat(id, at, 0);
		if (addr == (void *)-1 && (errno != EINVAL || !at))
			break;
	}
	if (addr == (void *)-1)
		addr = dynshm_sys.shmat(id, NULL, 0);
	if (addr == (void *)-1)
		return dynshm_fail(errno, "cannot map the region of instance '%s' "
				       "(%" PRIu64 " bytes): %s",
				inst->name, r->size, strerror(errno));
	if (r->pages == REGION_PAGES_THP)
		dynshm_sys.madvise(addr, r->size, MADV_HUGEPAGE); /* per VMA */
	*got = addr;
	return 0;
}

static void os_unmap(void *addr)
{
	dynshm_sys.shmdt(addr);
}

/* ---- creating, joining, removing ------------------------------------------ */

static int make_object(dynshm_instance *inst, const struct dynshm_config *cfg,
		       struct region_ctl *r, key_t key)
{
	char why[256] = "", mode[32];
	int id = -EINVAL;

	r->page_size = REGION_PAGE;
	r->pages = REGION_PAGES_SMALL;
	if (cfg->huge_pages != DYNSHM_HUGE_PAGES_OFF) {
		struct hugetlb_state h;

		hugetlb_state(&h);
		id = h.page_size && r->size % h.page_size == 0
			     ? os_make(key, r->size, true)
			     : -EINVAL;
		if (id >= 0) {
			r->page_size = h.page_size;
			r->pages = REGION_PAGES_HUGETLB;
			snprintf(r->note, sizeof(r->note),
				 "hugetlb pages of %llu kB (SysV SHM_HUGETLB)%s",
				 (unsigned long long)(h.page_size >> 10),
				 r->size >= REGION_ALIGN
					 ? "; page tables shared for each whole "
					   "GiB"
					 : "; smaller than 1 GiB, so page "
					   "tables are not shared (size it in "
					   "GiB multiples)");
			return id;
		}
		if (id == -EEXIST)
			goto exists;
		hugetlb_reason(-id, r->size, why, sizeof(why));
		if (cfg->huge_pages == DYNSHM_HUGE_PAGES_ON)
			return dynshm_fail(-id == EPERM ? EPERM : ENOMEM,
					"cannot create the %" PRIu64 "-byte "
					"region of instance '%s' on huge pages "
					"(huge_pages = on): %s",
					r->size, inst->name, why);
	}
	id = os_make(key, r->size, false);
	if (id == -EEXIST)
		goto exists;
	if (id < 0)
		return dynshm_fail(-id, "cannot create the %" PRIu64 "-byte region "
				     "of instance '%s' (SysV key 0x%08x): %s",
				r->size, inst->name, (unsigned)key,
				strerror(-id));
	shmem_thp_mode(mode, sizeof(mode));
	if (cfg->huge_pages == DYNSHM_HUGE_PAGES_OFF)
		snprintf(r->note, sizeof(r->note),
			 "huge_pages = off: 4 kB pages (set huge_pages = try "
			 "and reserve vm.nr_hugepages to share page tables)");
	else if (thp_allowed(mode)) {
		r->pages = REGION_PAGES_THP;
		r->page_size = THP_SIZE;
		snprintf(r->note, sizeof(r->note),
			 "hugetlb unavailable: %.200s; shmem transparent huge "
			 "pages instead (shmem_enabled = %s, MADV_HUGEPAGE)",
			 why, mode);
	} else
		snprintf(r->note, sizeof(r->note),
			 "4 kB pages: hugetlb unavailable: %.150s; shmem "
			 "transparent huge pages off too (shmem_enabled = %s; "
			 "echo advise > /sys/kernel/mm/transparent_hugepage/"
			 "shmem_enabled)",
			 why, mode);
	return id;

exists:
	return dynshm_fail(EEXIST, "cannot create the region of instance '%s': "
				"SysV key 0x%08x is taken (reset the instance)",
			inst->name, (unsigned)key);
}

int region_create(dynshm_instance *inst, const struct dynshm_config *cfg)
{
	struct region_ctl *r = region_of(&inst->c);
	void *addr = NULL;
	key_t key = 0;
	int id, rc;

	if (!r)
		return 0;
	rc = region_key(inst, &key);
	if (rc < 0)
		return rc;
	HOOK("region:before-create");
	r->huge_setting = cfg->huge_pages;
	r->requested = cfg->min_dynamic_shared_memory;
	id = make_object(inst, cfg, r, key);
	if (id < 0)
		return id;
	r->key = key;
	rc = region_map_at(inst, r, NULL, &addr);
	if (rc < 0) {
		dynshm_sys.shmctl(id, IPC_RMID, NULL); /* back out */
		return rc;
	}
	r->address = (uint64_t)(uintptr_t)addr;
	inst->region.base = addr;
	inst->region.size = r->size;
	inst->region.same_address = 1;
	ctl_publish(&r->ready, 1);
	return 0;
}

int region_check(dynshm_instance *inst)
{
	struct region_ctl *r = region_of(&inst->c);

	if (!r)
		return 0;
	if (r->magic != REGION_MAGIC || r->size != inst->c.hdr->region_size ||
	    r->nblocks != r->size / REGION_PAGE ||
	    r->max_order > REGION_MAX_ORDER ||
	    ((uint64_t)1 << r->max_order) > r->nblocks)
		return dynshm_fail(EUCLEAN, "the region record of instance '%s' is "
					 "corrupt",
				inst->name);
	if (!__atomic_load_n(&r->ready, __ATOMIC_ACQUIRE))
		return dynshm_fail(ENOENT, "instance '%s' was never finished: its "
					"creator died before making the region",
				inst->name);
	return 0;
}

int region_join(dynshm_instance *inst)
{
	struct region_ctl *r = region_of(&inst->c);
	void *want, *got = NULL;
	int rc;

	if (!r || inst->region.base)
		return 0;
	want = (void *)(uintptr_t)r->address;
	rc = region_map_at(inst, r, want, &got);
	if (rc < 0)
		return rc;
	inst->region.base = got;
	inst->region.size = r->size;
	inst->region.same_address = got == want;
	return 0;
}

void region_unmap(dynshm_instance *inst)
{
	if (inst->region.base)
		os_unmap(inst->region.base);
	inst->region.base = NULL;
}

void region_remove(dynshm_instance *inst)
{
	dynshm_impl_space *space;

	region_unmap(inst);
	/* By key: works even when the control segment is lost or corrupt. */
	if (space_for(inst, DYNSHM_IMPL_SYSV, &space) == 0)
		dynshm_impl_destroy(space, REGION_HANDLE);
}

static const char *pages_name(uint32_t pages)
{
	switch (pages) {
	case REGION_PAGES_HUGETLB:
		return "hugetlb";
	case REGION_PAGES_THP:
		return "shmem-thp";
	default:
		return "4k";
	}
}

void region_info_locked(dynshm_instance *inst, struct dynshm_instance_info *info)
{
	struct region_ctl *r = region_of(&inst->c);

	/* the setting, for the segments' objects too (sysv: SHM_HUGETLB) */
	info->huge_pages = (dynshm_huge_pages)inst->c.hdr->huge_pages;
	if (!r) {
		snprintf(info->region_pages, sizeof(info->region_pages),
			 "none");
		snprintf(info->region_note, sizeof(info->region_note),
			 "no region (min_dynamic_shared_memory = 0): every "
			 "segment is its own mapping; set it to carve segments "
			 "from one mapping");
		return;
	}
	info->region_size = r->size;
	info->region_used = r->used_pages * REGION_PAGE;
	info->region_largest_free = region_largest_free(&inst->c);
	info->region_segments = r->nsegments;
	info->region_address = inst->region.base;
	info->region_recorded_address = (void *)(uintptr_t)r->address;
	info->region_same_address = inst->region.same_address;
	info->region_page_size = r->page_size;
	info->huge_pages = (dynshm_huge_pages)r->huge_setting;
	snprintf(info->region_pages, sizeof(info->region_pages), "%s",
		 pages_name(r->pages));
	snprintf(info->region_note, sizeof(info->region_note), "%.383s",
		 r->note);
}
