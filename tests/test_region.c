/* SPDX-License-Identifier: MIT */
/*
 * test_region.c - region carve-outs (min_dynamic_shared_memory): segments
 * cut from one mapping per process, across processes, with a buddy
 * allocator that lives in the control segment.
 *
 * What each test shows, and why it would fail without the feature:
 *   config        the two keys parse sizes/units and refuse bad values
 *   allocator     the buddy allocator alone, 20000 random steps against a
 *                 page map: no overlap, counters, failure only when no
 *                 block fits, and a rebuild (lock repair) changes nothing
 *   basic         a segment is placed in the region (stat says so, its
 *                 address lies inside the region) and is seen by a forked
 *                 and by an exec'd process, at the same address
 *   no_syscall    attaching a region segment makes no call through dynshm_sys
 *                 (every entry counted), while a posix attach makes some
 *   flags         exhaustion falls back to the backend, or fails with
 *                 DYNSHM_CREATE_REGION; NO_REGION; bad combinations
 *   reuse         freed blocks merge back: after filling the region with
 *                 pages and freeing them in a scattered order, one segment
 *                 of the whole region fits again
 *   zero          region segments are zeroed unless DYNSHM_CREATE_NO_ZERO
 *   taken_address a process whose recorded address is occupied maps the
 *                 region elsewhere, says so, and still reads the data
 *   kill          kill -9 mid-allocation (in the lock, outside it, after
 *                 it) leaks no block: the whole region is allocatable after
 *   full_of_the_dead  a region held by a dead process: DYNSHM_CREATE_REGION
 *                 reaps it and fits, a plain create uses the backend
 *   creator_dies  the creator killed before the region exists: the next
 *                 open wipes and recreates, nothing is left behind
 *   reset_corrupt a reset whose control segment is unreadable still
 *                 removes the region (by key)
 *
 * Runs alone (is_parallel: false): the region is a SysV segment with the
 * test tag, which the leftover check looks for.
 */
#include "testutil.h"
#include "inject.h"

#include "src/control.h"
#include "src/region.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define REGION_BYTES (1u << 20) /* 256 pages */
#define KILLED (128 + SIGKILL)

static struct test_fixture fx; /* per test: instances at fx.path */

static int setup(void **state)
{
	(void)state;
	inject_reset();
	dynshm_test_hook = NULL;
	return test_fixture_setup(&fx, false, NULL);
}

static int teardown(void **state)
{
	(void)state;
	inject_reset();
	dynshm_test_hook = NULL;
	return test_fixture_teardown(&fx, false, "teardown");
}

static dynshm_config *config(const char *backend, const char *region)
{
	dynshm_config *cfg = NULL;

	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					backend),
			 0);
	assert_int_equal(dynshm_config_set(cfg, "min_dynamic_shared_memory",
					region),
			 0);
	assert_int_equal(dynshm_config_set(cfg, "huge_pages", "off"), 0);
	assert_int_equal(dynshm_config_set(cfg, "max_segments", "512"), 0);
	return cfg;
}

static dynshm_instance *open_region(const char *region)
{
	dynshm_config *cfg = config("posix", region);
	dynshm_instance *inst = NULL;
	int rc = dynshm_instance_open(fx.path, cfg, 0, &inst);

	dynshm_config_free(cfg);
	if (rc != 0)
		fail_msg("open: %d %s", rc, dynshm_last_error());
	return inst;
}

static dynshm_instance_info info_of(dynshm_instance *inst)
{
	dynshm_instance_info info;

	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	return info;
}

static bool in_region(dynshm_instance *inst, dynshm_segment *seg)
{
	dynshm_instance_info info = info_of(inst);
	dynshm_segment_info si;
	char *a = dynshm_segment_address(seg), *base = info.region_address;

	assert_int_equal(dynshm_stat(inst, dynshm_segment_handle(seg), &si,
				     sizeof(si)), 0);
	if (!si.in_region)
		return false;
	assert_true(a >= base && a + dynshm_segment_size(seg) <= base +
							     info.region_size);
	assert_ptr_equal(a, base + si.region_offset);
	return true;
}

/* ---- config ----------------------------------------------------------------- */

static void test_config(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = { { "0", "0MB" },	 { "64", "64MB" }, { "512kB", "512kB" },
		     { "3MB", "3MB" },	 { "2GB", "2GB" }, { "1 GB", "1GB" },
		     { "64GB", "64GB" } };
	static const char *const bad[] = { "-1", "1XB", "1mb", "65GB",
					   "1TB",	 "",    "MB",  "0x10" };
	dynshm_config *cfg = NULL;
	char buf[64];

	(void)state;
	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_get(cfg, "huge_pages", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "try");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(dynshm_config_set(cfg,
						"min_dynamic_shared_memory",
						good[i].in),
				 0);
		assert_int_equal(dynshm_config_get(cfg,
						"min_dynamic_shared_memory",
						buf, sizeof(buf)),
				 0);
		assert_string_equal(buf, good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dynshm_config_set(cfg,
						"min_dynamic_shared_memory",
						bad[i]),
				 -EINVAL);
		assert_non_null(strstr(dynshm_last_error(),
				       "min_dynamic_shared_memory"));
	}
	assert_int_equal(dynshm_config_set(cfg, "huge_pages", "maybe"), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "off, try, on"));
	assert_int_equal(dynshm_config_set(cfg, "huge_pages", "on"), 0);
	assert_int_equal(dynshm_config_get(cfg, "huge_pages", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "on");
	dynshm_config_free(cfg);
}

/* ---- the allocator alone, against a model ------------------------------------ */

#define MODEL_SLOTS 256
#define MODEL_PAGES 259 /* not a power of two: a greedy decomposition */

static uint8_t *tags_of(struct region_ctl *r)
{
	return (uint8_t *)((uint32_t *)(r + 1) + 2 * (size_t)r->nblocks);
}

/*
 * Random allocations and frees on a control segment in private memory,
 * checked after every step against a page map of its own: blocks never
 * overlap, are aligned and inside, the counters agree, an allocation fails
 * only when no free block is large enough, and every so often a rebuild
 * from the slots (what a lock repair does) gives exactly the same free
 * lists - buddies are always merged, so the free set has one shape.
 */
static void test_allocator(void **state)
{
	size_t total = ctl_total_size(MODEL_SLOTS, 4,
				      (uint64_t)MODEL_PAGES * REGION_PAGE);
	void *base = calloc(1, total);
	static uint8_t owner[MODEL_PAGES]; /* slot + 1 holding each page */
	static uint8_t before[MODEL_PAGES];
	uint64_t used = 0;
	unsigned seed = 12345, nheld = 0;
	struct region_ctl *r;
	struct ctl c;

	(void)state;
	assert_non_null(base);
	assert_int_equal(ctl_format(base, 1, DYNSHM_IMPL_POSIX, MODEL_SLOTS, 4,
				    (uint64_t)MODEL_PAGES * REGION_PAGE, 0),
			 0);
	assert_int_equal(ctl_validate(base, total, 1, "model", &c), 0);
	r = region_of(&c);
	assert_non_null(r);
	memset(owner, 0, sizeof(owner));
	for (int step = 0; step < 20000; step++) {
		uint32_t s = rand_r(&seed) % MODEL_SLOTS;
		struct ctl_slot *slot = &c.slots[s];

		if (slot->state == SLOT_FREE) {
			uint64_t size = 1 + rand_r(&seed) % (40 * REGION_PAGE),
				 off = 0;
			uint32_t order = 0, o = 0, b;
			int rc = region_alloc_locked(&c, size, &off, &order);

			while (((uint64_t)REGION_PAGE << o) < size)
				o++;
			if (rc < 0) {
				/* right to fail: no free block of order >= o */
				for (b = 0; b < MODEL_PAGES; b++)
					assert_true(tags_of(r)[b] <= o);
				continue;
			}
			assert_int_equal(order, o);
			b = (uint32_t)(off / REGION_PAGE);
			assert_int_equal(b % (1u << o), 0);
			assert_true(b + (1u << o) <= MODEL_PAGES);
			for (uint32_t p = b; p < b + (1u << o); p++) {
				assert_int_equal(owner[p], 0);
				owner[p] = (uint8_t)(s + 1);
			}
			slot->state = SLOT_ACTIVE;
			slot->backend = CTL_BACKEND_REGION;
			slot->region_offset = off;
			slot->region_order = order;
			used += 1u << o;
			nheld++;
		} else {
			uint32_t b = (uint32_t)(slot->region_offset /
						REGION_PAGE);

			for (uint32_t p = b; p < b + (1u << slot->region_order);
			     p++)
				owner[p] = 0;
			used -= 1u << slot->region_order;
			nheld--;
			region_free_locked(&c, s);
			slot->state = SLOT_FREE;
		}
		assert_int_equal(r->used_pages, used);
		assert_int_equal(r->nsegments, nheld);
		/* free heads lie on pages nobody holds */
		for (uint32_t p = 0; p < MODEL_PAGES; p++)
			if (tags_of(r)[p])
				assert_int_equal(owner[p], 0);
		if (step % 97 == 0) {
			memcpy(before, tags_of(r), MODEL_PAGES);
			region_rebuild(&c);
			assert_memory_equal(before, tags_of(r), MODEL_PAGES);
			assert_int_equal(r->used_pages, used);
			assert_int_equal(r->nsegments, nheld);
		}
	}
	/* free everything: one canonical free region again */
	for (uint32_t s = 0; s < MODEL_SLOTS; s++)
		if (c.slots[s].state != SLOT_FREE) {
			region_free_locked(&c, s);
			c.slots[s].state = SLOT_FREE;
		}
	assert_int_equal(r->used_pages, 0);
	memcpy(before, tags_of(r), MODEL_PAGES);
	region_rebuild(&c);
	assert_memory_equal(before, tags_of(r), MODEL_PAGES);
	assert_int_equal(region_largest_free(&c), 256u * REGION_PAGE);
	free(base);
}

/* ---- across processes ------------------------------------------------------- */

struct shared_check {
	dynshm_handle handle;
	void *address;
};

static int child_reads(void *arg)
{
	struct shared_check *sc = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	/* a forked child: its own dynshm_instance_open, its own mapping */
	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	CHILD_CHECK(dynshm_attach(inst, sc->handle, &seg) == 0);
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "from the parent") == 0);
	strcpy(dynshm_segment_address(seg), "from the child");
	CHILD_CHECK(dynshm_detach(seg) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

/* Exec'd: argv[1] handle, [2] recorded address, [3] same|block, [4] path. */
static int spawned_reads(int argc, char **argv)
{
	dynshm_handle h = strtoull(argv[1], NULL, 16);
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	dynshm_segment *seg = NULL;
	void *want = (void *)(uintptr_t)strtoull(argv[2], NULL, 16);

	CHILD_CHECK(argc == 5);
	snprintf(fx.path, sizeof(fx.path), "%s", argv[4]);
	if (strcmp(argv[3], "block") == 0) {
		/* occupy the recorded address before joining */
		void *p = mmap(want, 4096, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
				       MAP_FIXED_NOREPLACE,
			       -1, 0);
		CHILD_CHECK(p == want);
	}
	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	CHILD_CHECK(dynshm_instance_info_get(inst, &info, sizeof(info)) == 0);
	CHILD_CHECK(info.region_recorded_address == want);
	if (strcmp(argv[3], "block") == 0)
		CHILD_CHECK(!info.region_same_address &&
			    info.region_address != want);
	else
		CHILD_CHECK(info.region_same_address &&
			    info.region_address == want);
	CHILD_CHECK(dynshm_attach(inst, h, &seg) == 0);
	CHILD_CHECK((char *)dynshm_segment_address(seg) >=
			    (char *)info.region_address &&
		    (char *)dynshm_segment_address(seg) <
			    (char *)info.region_address + info.region_size);
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "from the child") == 0);
	CHILD_CHECK(dynshm_detach(seg) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

static void spawn_reader(dynshm_handle h, void *addr, const char *mode)
{
	char hs[32], as[32];
	const char *args[] = { hs, as, mode, fx.path, NULL };

	snprintf(hs, sizeof(hs), "%" PRIx64, h);
	snprintf(as, sizeof(as), "%" PRIxPTR, (uintptr_t)addr);
	assert_int_equal(test_spawn("reads", args), 0);
}

static void test_basic(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_instance_info info = info_of(inst);
	struct shared_check sc;
	dynshm_segment *seg = NULL;

	(void)state;
	assert_int_equal(info.region_size, REGION_BYTES);
	assert_string_equal(info.region_pages, "4k");
	assert_int_equal(info.region_page_size, 4096);
	assert_int_equal(info.huge_pages, DYNSHM_HUGE_PAGES_OFF);
	assert_true(info.region_same_address);
	assert_ptr_equal(info.region_address, info.region_recorded_address);
	assert_int_equal((uintptr_t)info.region_address % (1u << 30), 0);
	assert_non_null(strstr(info.region_note, "huge_pages = off"));

	assert_int_equal(dynshm_create(inst, 5000, 0, &seg), 0);
	assert_true(in_region(inst, seg));
	assert_int_equal(dynshm_segment_size(seg), 5000);
	info = info_of(inst);
	assert_int_equal(info.region_segments, 1);
	assert_int_equal(info.region_used, 8192); /* 2 pages: a buddy block */
	strcpy(dynshm_segment_address(seg), "from the parent");
	sc.handle = dynshm_segment_handle(seg);
	sc.address = dynshm_segment_address(seg);
	assert_int_equal(test_fork(child_reads, &sc), 0);
	spawn_reader(sc.handle, info.region_recorded_address, "same");

	assert_string_equal(dynshm_segment_address(seg), "from the child");
	assert_int_equal(dynshm_detach(seg), 0);
	info = info_of(inst);
	assert_int_equal(info.region_segments, 0);
	assert_int_equal(info.region_used, 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static int count_in_region(const dynshm_segment_info *si, void *arg)
{
	*(int *)arg += si->in_region;
	return 0;
}

static void test_foreach(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *a = NULL, *b = NULL;
	int n = 0;

	(void)state;
	assert_int_equal(dynshm_create(inst, 100, 0, &a), 0);
	assert_int_equal(dynshm_create(inst, 100, DYNSHM_CREATE_NO_REGION, &b), 0);
	assert_int_equal(dynshm_foreach_segment(inst, count_in_region, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- no system call at attach ----------------------------------------------- */

static const char *const sys_entries[] = {
	"shm_open", "shm_unlink", "open",  "openat",   "unlinkat",
	"renameat", "mkdir",	  "rmdir", "close",    "fstat",
	"fstatat",  "fstatfs",	  "statfs", "ftruncate", "posix_fallocate",
	"read",	    "write",	  "fsync", "flock",    "mmap",
	"munmap",   "madvise",	  "shmget", "shmat",   "shmdt",
	"shmctl",   "ioctl",	  "getrandom", "kill",
};

#define N_ENTRIES (sizeof(sys_entries) / sizeof(sys_entries[0]))

static unsigned long calls_during_attach(dynshm_instance *inst, dynshm_handle h)
{
	unsigned long total = 0;
	dynshm_segment *seg = NULL;

	for (size_t i = 0; i < N_ENTRIES; i++)
		inject_fail(sys_entries[i], 0, 0); /* count only */
	if (dynshm_attach(inst, h, &seg) != 0)
		return 9999;
	for (size_t i = 0; i < N_ENTRIES; i++)
		total += inject_calls(sys_entries[i]);
	inject_reset();
	dynshm_detach(seg);
	return total;
}

struct two_handles {
	dynshm_handle region, posix;
};

static int child_counts(void *arg)
{
	struct two_handles *h = arg;
	dynshm_instance *inst = NULL;

	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	CHILD_CHECK(calls_during_attach(inst, h->region) == 0);
	/* the same count for an ordinary segment: the counting works */
	CHILD_CHECK(calls_during_attach(inst, h->posix) >= 3);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

static void test_no_syscall(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *r = NULL, *p = NULL;
	struct two_handles h;

	(void)state;
	assert_int_equal(dynshm_create(inst, 4096, DYNSHM_CREATE_REGION, &r), 0);
	assert_int_equal(dynshm_create(inst, 4096, DYNSHM_CREATE_NO_REGION, &p), 0);
	assert_false(in_region(inst, p));
	h.region = dynshm_segment_handle(r);
	h.posix = dynshm_segment_handle(p);
	assert_int_equal(test_fork(child_counts, &h), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- flags and exhaustion ---------------------------------------------------- */

static void test_flags(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *whole = NULL, *seg = NULL;

	(void)state;
	assert_int_equal(dynshm_create(inst, 1, DYNSHM_CREATE_REGION |
						     DYNSHM_CREATE_NO_REGION,
				    &seg),
			 -EINVAL);
	assert_int_equal(dynshm_create(inst, 1, 0x100, &seg), -EINVAL);
	assert_int_equal(dynshm_create(inst, REGION_BYTES + 1, DYNSHM_CREATE_REGION,
				    &seg),
			 -ENOSPC);
	assert_int_equal(dynshm_create(inst, REGION_BYTES, DYNSHM_CREATE_REGION,
				    &whole),
			 0);
	assert_int_equal(dynshm_create(inst, 1, DYNSHM_CREATE_REGION, &seg),
			 -ENOSPC);
	assert_non_null(strstr(dynshm_last_error(), "no free block"));
	/* no flag: falls back to the backend */
	assert_int_equal(dynshm_create(inst, 1, 0, &seg), 0);
	assert_false(in_region(inst, seg));
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_detach(whole), 0);
	assert_int_equal(dynshm_create(inst, 1, DYNSHM_CREATE_NO_REGION, &seg), 0);
	assert_false(in_region(inst, seg));
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);

	/* no region at all */
	inst = open_region("0");
	assert_string_equal(info_of(inst).region_pages, "none");
	assert_int_equal(dynshm_create(inst, 1, DYNSHM_CREATE_REGION, &seg),
			 -ENOTSUP);
	assert_non_null(strstr(dynshm_last_error(), "min_dynamic_shared_memory"));
	assert_int_equal(dynshm_create(inst, 1, 0, &seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- reuse --------------------------------------------------------------------- */

static void test_reuse(void **state)
{
	enum { N = REGION_BYTES / 4096 };
	static dynshm_segment *segs[N];
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *seg = NULL;

	(void)state;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			assert_int_equal(dynshm_create(inst, 4096,
						    DYNSHM_CREATE_REGION,
						    &segs[i]),
					 0);
		assert_int_equal(dynshm_create(inst, 1, DYNSHM_CREATE_REGION, &seg),
				 -ENOSPC);
		/* free in a scattered order: odd ones, then even ones */
		for (int i = 1; i < N; i += 2)
			assert_int_equal(dynshm_detach(segs[i]), 0);
		/* half is free, but no two free pages are buddies */
		assert_int_equal(info_of(inst).region_largest_free, 4096);
		assert_int_equal(dynshm_create(inst, 8192, DYNSHM_CREATE_REGION,
					    &seg),
				 -ENOSPC);
		for (int i = 0; i < N; i += 2)
			assert_int_equal(dynshm_detach(segs[i]), 0);
		assert_int_equal(info_of(inst).region_used, 0);
		assert_int_equal(dynshm_create(inst, REGION_BYTES,
					    DYNSHM_CREATE_REGION, &seg),
				 0);
		assert_int_equal(dynshm_detach(seg), 0);
	}
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- zeroing ------------------------------------------------------------------ */

static void test_zero(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *seg = NULL;
	char *p;

	(void)state;
	assert_int_equal(dynshm_create(inst, 8192, DYNSHM_CREATE_REGION, &seg), 0);
	memset(dynshm_segment_address(seg), 0x5a, 8192);
	assert_int_equal(dynshm_detach(seg), 0);
	/* the same block again (the allocator is deterministic) */
	assert_int_equal(dynshm_create(inst, 8192, DYNSHM_CREATE_REGION |
							DYNSHM_CREATE_NO_ZERO,
				    &seg),
			 0);
	p = dynshm_segment_address(seg);
	assert_int_equal(p[0], 0x5a); /* not zeroed: as asked */
	assert_int_equal(p[8191], 0x5a);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_create(inst, 8192, DYNSHM_CREATE_REGION, &seg), 0);
	p = dynshm_segment_address(seg);
	for (int i = 0; i < 8192; i++)
		if (p[i] != 0)
			fail_msg("byte %d is 0x%02x, not zero", i, p[i]);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- the recorded address taken --------------------------------------------- */

static void test_taken_address(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *seg = NULL;

	(void)state;
	assert_int_equal(dynshm_create(inst, 100, DYNSHM_CREATE_REGION, &seg), 0);
	strcpy(dynshm_segment_address(seg), "from the child");
	spawn_reader(dynshm_segment_handle(seg), info.region_recorded_address,
		     "block");
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- kill -9 mid-allocation -------------------------------------------------- */

static const char *die_at;

static void die_hook(const char *point)
{
	if (die_at && strcmp(point, die_at) == 0)
		raise(SIGKILL);
}

static int child_dies_creating(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	(void)arg;
	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	/* hold one block for good, so the kill hits a split region */
	CHILD_CHECK(dynshm_create(inst, 4096, DYNSHM_CREATE_REGION, &seg) == 0);
	dynshm_test_hook = die_hook;
	dynshm_create(inst, 3 * 4096, DYNSHM_CREATE_REGION, &seg);
	return 3; /* the hook was not reached */
}

static void test_kill(void **state)
{
	static const char *const points[] = {
		"region:allocated",  /* in the lock: free lists half-done */
		"create:reserved",   /* in the lock: slot CREATING */
		"region:before-zero", /* outside the lock */
		"create:referenced", /* in the lock: our bit set */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		dynshm_instance *inst = open_region("1MB");
		dynshm_instance_info info;
		dynshm_segment *seg = NULL;
		unsigned reaped = 0;

		die_at = points[i];
		assert_int_equal(test_fork(child_dies_creating, NULL), KILLED);
		die_at = NULL;
		/* a kill in the lock is reaped by the repair already */
		assert_int_equal(dynshm_reap(inst, &reaped), 0);
		info = info_of(inst);
		assert_int_equal(info.processes, 1);
		if (info.region_used != 0 || info.region_segments != 0)
			fail_msg("after a kill at %s: %" PRIu64 " bytes in "
				 "%u segments still used",
				 points[i], info.region_used,
				 info.region_segments);
		assert_int_equal(info.segments, 0);
		assert_int_equal(dynshm_create(inst, REGION_BYTES,
					    DYNSHM_CREATE_REGION, &seg),
				 0);
		assert_int_equal(dynshm_instance_destroy(inst), 0);
	}
}

/* A process that dies holding the whole region. */
static int child_fills_and_dies(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	(void)arg;
	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	CHILD_CHECK(dynshm_create(inst, REGION_BYTES, DYNSHM_CREATE_REGION, &seg) ==
		    0);
	raise(SIGKILL);
	return 3;
}

/*
 * DYNSHM_CREATE_REGION on a region full of a dead process's segments reaps
 * first; without the flag the backend serves at once.
 */
static void test_full_of_the_dead(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_segment *seg = NULL;

	(void)state;
	assert_int_equal(test_fork(child_fills_and_dies, NULL), KILLED);
	assert_int_equal(info_of(inst).region_used, REGION_BYTES);
	assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
	assert_false(in_region(inst, seg)); /* no reap on this path */
	assert_int_equal(dynshm_create(inst, REGION_BYTES, DYNSHM_CREATE_REGION,
				    &seg),
			 0);
	assert_true(in_region(inst, seg));
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* The creator killed after the state file, before the region exists. */
static int child_dies_opening(void *arg)
{
	dynshm_config *cfg = arg;
	dynshm_instance *inst = NULL;

	die_at = "region:before-create";
	dynshm_test_hook = die_hook;
	dynshm_instance_open(fx.path, cfg, 0, &inst);
	return 3;
}

static void test_creator_dies(void **state)
{
	dynshm_config *cfg = config("posix", "1MB");
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	(void)state;
	assert_int_equal(test_fork(child_dies_opening, cfg), KILLED);
	assert_int_equal(dynshm_instance_open(fx.path, cfg, 0, &inst), 0);
	assert_int_equal(info_of(inst).region_size, REGION_BYTES);
	assert_int_equal(dynshm_create(inst, 4096, DYNSHM_CREATE_REGION, &seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	dynshm_config_free(cfg);
}

/*
 * The control segment scribbled over (foreign magic): a reset cannot read
 * it, yet removes the region, found by its key alone.  The teardown's leak
 * check sees the region if it stays.
 */
static void test_reset_corrupt(void **state)
{
	dynshm_instance *inst = open_region("1MB");
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *seg = NULL;
	dynshm_config *cfg;
	char name[64];
	int fd;

	(void)state;
	assert_int_equal(dynshm_create(inst, 4096, DYNSHM_CREATE_REGION, &seg), 0);
	assert_int_equal(dynshm_pin_segment(seg), 0);
	assert_int_equal(dynshm_instance_close(inst), 0);
	snprintf(name, sizeof(name), "/dynshm.%016" PRIx64 ".00c0ffee00ffffff",
		 info.instance_id);
	fd = shm_open(name, O_RDWR, 0);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	inst = NULL;
	assert_int_equal(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
					   &inst),
			 -EUCLEAN);
	cfg = config("posix", "1MB");
	assert_int_equal(dynshm_instance_open(fx.path, cfg, DYNSHM_OPEN_RESET,
					   &inst),
			 0);
	dynshm_config_free(cfg);
	assert_int_not_equal(info_of(inst).instance_id, info.instance_id);
	assert_int_equal(info_of(inst).region_used, 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	/* the teardown's leak check: the old region went with the reset */
}

/* A joiner asking for a different region is told so. */
static void test_conflict(void **state)
{
	dynshm_instance *inst = open_region("1MB"), *other = NULL;
	dynshm_config *cfg = config("posix", "2MB");

	(void)state;
	assert_int_equal(dynshm_instance_open(fx.path, cfg, 0, &other),
			 -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "min_dynamic_shared_memory"));
	dynshm_config_free(cfg);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* Every backend: the region is the same SysV object whatever it is. */
static void test_backends(void **state)
{
	static const char *const names[] = { "posix", "sysv", "mmap" };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		dynshm_config *cfg = config(names[i], "256kB");
		dynshm_instance *inst = NULL;
		dynshm_segment *seg = NULL;
		struct shared_check sc;

		assert_int_equal(dynshm_instance_open(fx.path, cfg, 0, &inst),
				 0);
		dynshm_config_free(cfg);
		assert_int_equal(dynshm_create(inst, 64, 0, &seg), 0);
		assert_true(in_region(inst, seg));
		strcpy(dynshm_segment_address(seg), "from the parent");
		sc.handle = dynshm_segment_handle(seg);
		assert_int_equal(test_fork(child_reads, &sc), 0);
		assert_string_equal(dynshm_segment_address(seg),
				    "from the child");
		assert_int_equal(dynshm_instance_destroy(inst), 0);
	}
}

/*
 * huge_pages = try on sysv with no huge page free: a create whose size is a
 * whole number of huge pages asks for SHM_HUGETLB, fails, and falls back.
 * The next creates must not pay that failed shmget again.
 */
static void test_huge_backoff(void **state)
{
	dynshm_config *cfg = config("sysv", "0");
	dynshm_instance *inst = NULL;
	dynshm_segment *a = NULL, *b = NULL;
	unsigned long first, second;
	const size_t two_mb = 2u << 20;

	(void)state;
	/*
	 * Needs a try that fails: no free 2 MiB huge pages, and not under
	 * valgrind (which drops SHM_HUGETLB, so the try succeeds).
	 */
	if (test_meminfo("HugePages_Free:") != 0 ||
	    test_meminfo("Hugepagesize:") != 2048 ||
	    test_under_valgrind()) {
		dynshm_config_free(cfg);
		skip();
	}
	assert_int_equal(dynshm_config_set(cfg, "huge_pages", "try"), 0);
	assert_int_equal(dynshm_instance_open(fx.path, cfg, 0, &inst), 0);
	dynshm_config_free(cfg);
	inject_fail("shmget", 0, 0); /* count only */
	assert_int_equal(dynshm_create(inst, two_mb, 0, &a), 0);
	first = inject_calls("shmget");
	assert_int_equal(dynshm_create(inst, two_mb, 0, &b), 0);
	second = inject_calls("shmget") - first;
	inject_reset();
	assert_int_equal(first, 2);  /* SHM_HUGETLB refused, then 4 KiB */
	assert_int_equal(second, 1); /* straight to 4 KiB */
	assert_int_equal(dynshm_detach(a), 0);
	assert_int_equal(dynshm_detach(b), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static const struct test_child children[] = {
	{ "reads", spawned_reads },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_allocator),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_basic),
		T(test_foreach),
		T(test_no_syscall),
		T(test_flags),
		T(test_reuse),
		T(test_zero),
		T(test_taken_address),
		T(test_kill),
		T(test_full_of_the_dead),
		T(test_creator_dies),
		T(test_reset_corrupt),
		T(test_conflict),
		T(test_backends),
		T(test_huge_backoff),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	rc = test_child_main(argc, argv, children);
	if (rc >= 0)
		return rc;
	return cmocka_run_group_tests_name("region", tests, NULL, NULL);
}
