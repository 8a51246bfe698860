/* SPDX-License-Identifier: MIT */
/*
 * test_toc.c - the table of contents and relative pointers
 * (include/dynshm/facility.h, src/facility/toc.c).
 *
 * What must hold: chunks come out aligned and inside the range; keys map
 * to the same chunk in another process, which maps the segment at another
 * address (a re-executed child, per backend and in the region); the
 * estimator's size is enough; and a scribbled table fails lookups rather
 * than handing out an address outside the range - checked with the table
 * placed right before a PROT_NONE page, so any read past the range kills
 * the test.
 */
#include "testutil.h"

#include "src/facility/toc.h"

#include <dynshm/facility.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The library gives test instances ids with TEST_TAG (src/wrapper.h). */
extern int dynshm_test_instance_tag;

#define NKEYS 16
#define CHUNK 1000

struct node {
	DYNSHM_RELPTR(struct node) next;
	uint64_t value;
};

/* ---- in one process ---------------------------------------------------------- */

static void test_alloc_insert_lookup(void **state)
{
	size_t sizes[NKEYS];
	size_t need, got;
	char *mem;
	dynshm_toc *toc = NULL;
	void *chunk, *found;

	(void)state;
	for (int i = 0; i < NKEYS; i++)
		sizes[i] = CHUNK + (size_t)i;
	need = dynshm_toc_estimate(NKEYS, sizes, NKEYS);
	assert_true(need > NKEYS * CHUNK);
	assert_int_equal(posix_memalign((void **)&mem, 4096, need), 0);
	memset(mem, 0, need);
	assert_int_equal(dynshm_toc_create(mem, need, NKEYS, &toc), 0);
	/* exactly what the estimate promised fits */
	for (int i = 0; i < NKEYS; i++) {
		assert_int_equal(dynshm_toc_alloc(toc, sizes[i], 0, &chunk), 0);
		assert_int_equal((uintptr_t)chunk % DYNSHM_TOC_ALIGN, 0);
		assert_true((char *)chunk + sizes[i] <= mem + need);
		memset(chunk, i + 1, sizes[i]);
		assert_int_equal(dynshm_toc_insert(toc, 100 + (uint64_t)i,
						   chunk, sizes[i]),
				 0);
	}
	assert_int_equal(dynshm_toc_alloc(toc, 1, 0, &chunk), -ENOSPC);
	assert_int_equal(dynshm_toc_insert(toc, 100, mem + need - 8, 8),
			 -EEXIST);
	assert_int_equal(dynshm_toc_insert(toc, 999, mem + need - 8, 8),
			 -ENOSPC);
	assert_int_equal(dynshm_toc_insert(toc, 999, mem + need - 8, 16),
			 -EINVAL);
	for (int i = 0; i < NKEYS; i++) {
		assert_int_equal(dynshm_toc_lookup(toc, 100 + (uint64_t)i,
						   &found, &got),
				 0);
		assert_int_equal(got, sizes[i]);
		assert_int_equal(((unsigned char *)found)[got - 1], i + 1);
	}
	assert_int_equal(dynshm_toc_lookup(toc, 7, &found, NULL), -ENOENT);
	dynshm_toc_release(toc);
	free(mem);
}

static void test_alignment_and_arguments(void **state)
{
	static uint64_t mem[4096];
	dynshm_toc *toc = NULL;
	void *chunk;

	(void)state;
	assert_int_equal(dynshm_toc_create((char *)mem + 4, sizeof(mem) - 8, 4,
					   &toc),
			 -EINVAL);
	assert_int_equal(dynshm_toc_create(mem, 64, 4, &toc), -EINVAL);
	assert_int_equal(dynshm_toc_attach(mem, sizeof(mem), &toc), -EUCLEAN);
	assert_int_equal(dynshm_toc_create(mem, sizeof(mem), 4, &toc), 0);
	assert_int_equal(dynshm_toc_alloc(toc, 10, 3, &chunk), -EINVAL);
	assert_int_equal(dynshm_toc_alloc(toc, 10, 8192, &chunk), -EINVAL);
	assert_int_equal(dynshm_toc_alloc(toc, 10, 8, &chunk), 0);
	assert_int_equal((uintptr_t)chunk % 8, 0);
	assert_int_equal(dynshm_toc_alloc(toc, 10, 4096, &chunk), 0);
	assert_int_equal((uintptr_t)chunk % 4096, 0);
	assert_int_equal(dynshm_toc_estimate(SIZE_MAX / 2, NULL, 0), 0);
	dynshm_toc_release(toc);
}

static void test_relptr(void **state)
{
	static struct node nodes[4];
	struct node *p;

	(void)state;
	memset(nodes, 0, sizeof(nodes));
	assert_true(dynshm_relptr_is_null(nodes[0].next));
	assert_null(dynshm_relptr_access(nodes, nodes[0].next));
	dynshm_relptr_store(nodes, nodes[0].next, &nodes[0]); /* the base */
	assert_false(dynshm_relptr_is_null(nodes[0].next));
	assert_ptr_equal(dynshm_relptr_access(nodes, nodes[0].next),
			 &nodes[0]);
	dynshm_relptr_store(nodes, nodes[1].next, &nodes[3]);
	p = dynshm_relptr_access_checked(nodes, sizeof(nodes), nodes[1].next);
	assert_ptr_equal(p, &nodes[3]);
	/* the last node does not fit a range that ends inside it */
	assert_null(dynshm_relptr_access_checked(nodes, sizeof(nodes) - 1,
						 nodes[1].next));
	nodes[2].next.relptr_off = UINT64_MAX; /* scribbled */
	assert_null(dynshm_relptr_access_checked(nodes, sizeof(nodes),
						 nodes[2].next));
	dynshm_relptr_store(nodes, nodes[2].next, (struct node *)NULL);
	assert_true(dynshm_relptr_is_null(nodes[2].next));
}

/* ---- scribbles --------------------------------------------------------------- */

/* size bytes, followed by a PROT_NONE page; unmap *map (*maplen bytes). */
static char *guarded(size_t size, void **map, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = (size + (size_t)page - 1) / (size_t)page;
	char *m;

	*maplen = (pages + 1) * (size_t)page;
	m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pages * (size_t)page, (size_t)page,
				  PROT_NONE),
			 0);
	*map = m;
	/* end the range exactly at the guard page */
	return m + pages * (size_t)page - size;
}

static void test_scribbled(void **state)
{
	size_t size = 8192 - 64, maplen, got;
	void *map, *found;
	char *base = guarded(size, &map, &maplen);
	char *saved = malloc(size);
	dynshm_toc *toc = NULL, *other;
	unsigned seed = 42, failures = 0, lookups = 0;
	void *chunk;

	(void)state;
	assert_non_null(saved);
	assert_int_equal(dynshm_toc_create(base, size, NKEYS, &toc), 0);
	for (int i = 0; i < NKEYS; i++) {
		assert_int_equal(dynshm_toc_alloc(toc, 200, 0, &chunk), 0);
		assert_int_equal(dynshm_toc_insert(toc, (uint64_t)i, chunk,
						   200),
				 0);
	}
	memcpy(saved, base, size);
	/* a targeted scribble: an entry pointing past the end */
	{
		uint64_t *words = (uint64_t *)(void *)base;
		size_t nwords = 1024 / 8;

		for (size_t w = 0; w < nwords; w++)
			if (words[w] == (uint64_t)3 && w + 2 < nwords &&
			    words[w + 2] == 200) {
				words[w + 1] = size - 100; /* offset of key 3 */
				break;
			}
		assert_int_equal(dynshm_toc_lookup(toc, 3, &found, &got),
				 -EUCLEAN);
		memcpy(base, saved, size);
	}
	/* random scribbles over the table: lookups stay in range */
	for (int round = 0; round < 20000; round++) {
		unsigned n = 1 + rand_r(&seed) % 8;

		for (unsigned k = 0; k < n; k++)
			base[rand_r(&seed) % 1024] = (char)rand_r(&seed);
		if (dynshm_toc_attach(base, size, &other) == 0) {
			for (uint64_t key = 0; key < NKEYS; key++) {
				int rc = dynshm_toc_lookup(other, key, &found,
							   &got);

				lookups++;
				if (rc < 0) {
					failures++;
					continue;
				}
				assert_true((char *)found >= base);
				assert_true((char *)found + got <= base + size);
			}
			if (dynshm_toc_alloc(other, 64, 0, &chunk) == 0)
				assert_true((char *)chunk + 64 <= base + size);
			dynshm_toc_release(other);
		}
		/* the creator's handle keeps its own geometry */
		for (uint64_t key = 0; key < NKEYS; key++)
			if (dynshm_toc_lookup(toc, key, &found, &got) == 0)
				assert_true((char *)found + got <=
					    base + size);
		if (round % 16 == 15)
			memcpy(base, saved, size);
	}
	printf("scribbles: %u of %u lookups refused\n", failures, lookups);
	dynshm_toc_release(toc);
	free(saved);
	munmap(map, maplen);
}

/* ---- across processes, per backend ----------------------------------------------- */

struct where {
	const char *name;
	const char *backend;
	const char *region; /* min_dynamic_shared_memory, or NULL */
};

static const struct where wheres[] = {
	{ "posix", "posix", NULL },
	{ "sysv", "sysv", NULL },
	{ "mmap", "mmap", NULL },
	{ "region", "posix", "4MB" },
};

/* --child lookup <instance dir> <handle>: check every key's contents. */
static int child_lookup(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	dynshm_toc *toc = NULL;
	struct node *head, *n;
	unsigned long long handle;
	void *found;
	size_t got;
	int count = 0;

	CHILD_CHECK(argc == 3);
	handle = strtoull(argv[2], NULL, 0);
	CHILD_CHECK(dynshm_instance_open(argv[1], NULL, DYNSHM_OPEN_EXISTING,
					 &inst) == 0);
	CHILD_CHECK(dynshm_attach(inst, handle, &seg) == 0);
	CHILD_CHECK(dynshm_toc_attach(dynshm_segment_address(seg),
				      dynshm_segment_size(seg), &toc) == 0);
	for (int i = 0; i < NKEYS; i++) {
		CHILD_CHECK(dynshm_toc_lookup(toc, 100 + (uint64_t)i, &found,
					      &got) == 0);
		CHILD_CHECK(got == CHUNK);
		CHILD_CHECK(((unsigned char *)found)[0] == i + 1);
	}
	/* a list of relative pointers, walked at this process's address */
	CHILD_CHECK(dynshm_toc_lookup(toc, 1, &found, &got) == 0);
	head = found;
	n = head;
	while (n) {
		CHILD_CHECK(n->value == (uint64_t)count++);
		n = dynshm_relptr_access_checked(dynshm_segment_address(seg),
						 dynshm_segment_size(seg),
						 n->next);
	}
	CHILD_CHECK(count == 5);
	printf("child maps the segment at %p\n", dynshm_segment_address(seg));
	dynshm_toc_release(toc);
	CHILD_CHECK(dynshm_detach(seg) == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

/*
 * The entry counter scribbled to its largest value: every insert refused,
 * entry 0 untouched.  An add past the end wrapped it to 0, and the next
 * insert overwrote the first published entry.  And an insert whose lookup
 * finds the table corrupt says so (it said -EEXIST).
 */
static void test_counter_scribbled(void **state)
{
	static uint64_t mem[8192 / 8];
	struct toc_header *h = (struct toc_header *)(void *)mem;
	dynshm_toc *toc = NULL;
	void *a, *b, *found = NULL;

	(void)state;
	assert_int_equal(dynshm_toc_create(mem, sizeof(mem), NKEYS, &toc), 0);
	assert_int_equal(dynshm_toc_alloc(toc, 64, 0, &a), 0);
	assert_int_equal(dynshm_toc_alloc(toc, 64, 0, &b), 0);
	assert_int_equal(dynshm_toc_insert(toc, 100, a, 64), 0);
	h->nreserved = UINT64_MAX;
	for (uint64_t k = 1; k <= 3; k++)
		assert_int_equal(dynshm_toc_insert(toc, k, b, 64), -ENOSPC);
	assert_int_equal(dynshm_toc_lookup(toc, 100, &found, NULL), 0);
	assert_ptr_equal(found, a);
	h->nreserved = 1;
	h->entries[0].offset = sizeof(mem) + 4096; /* points outside */
	assert_int_equal(dynshm_toc_insert(toc, 100, b, 64), -EUCLEAN);
	dynshm_toc_release(toc);
}

static void test_across_processes(const struct where *w)
{
	char *dir = test_make_dir(), path[PATH_MAX], hbuf[32];
	dynshm_config *cfg = NULL;
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	dynshm_toc *toc = NULL;
	struct node *nodes;
	void *chunk, *base;
	size_t size;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/inst", dir);
	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					   w->backend),
			 0);
	if (w->region) {
		assert_int_equal(dynshm_config_set(cfg,
						   "min_dynamic_shared_memory",
						   w->region),
				 0);
		assert_int_equal(dynshm_config_set(cfg, "huge_pages", "off"),
				 0);
	}
	assert_int_equal(dynshm_instance_open(path, cfg, 0, &inst), 0);
	dynshm_config_free(cfg);
	size = dynshm_toc_estimate(NKEYS + 1, NULL, 0) + NKEYS * CHUNK + 4096;
	assert_int_equal(dynshm_create(inst, size,
				       w->region ? DYNSHM_CREATE_REGION : 0,
				       &seg),
			 0);
	base = dynshm_segment_address(seg);
	assert_int_equal(dynshm_toc_create(base, dynshm_segment_size(seg),
					   NKEYS + 1, &toc),
			 0);
	for (int i = 0; i < NKEYS; i++) {
		assert_int_equal(dynshm_toc_alloc(toc, CHUNK, 0, &chunk), 0);
		memset(chunk, i + 1, CHUNK);
		assert_int_equal(dynshm_toc_insert(toc, 100 + (uint64_t)i,
						   chunk, CHUNK),
				 0);
	}
	assert_int_equal(dynshm_toc_alloc(toc, 5 * sizeof(*nodes), 0, &chunk),
			 0);
	nodes = chunk;
	for (int i = 0; i < 5; i++) {
		nodes[i].value = (uint64_t)i;
		dynshm_relptr_store(base, nodes[i].next,
				    i < 4 ? &nodes[i + 1] : NULL);
	}
	assert_int_equal(dynshm_toc_insert(toc, 1, nodes, 5 * sizeof(*nodes)),
			 0);
	printf("%s: parent maps the segment at %p\n", w->name, base);
	snprintf(hbuf, sizeof(hbuf), "0x%" PRIx64,
		 (uint64_t)dynshm_segment_handle(seg));
	{
		const char *args[] = { path, hbuf, NULL };

		assert_int_equal(test_spawn("lookup", args), 0);
	}
	dynshm_toc_release(toc);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	assert_int_equal(test_remove_dir(dir), 0);
	assert_int_equal(test_check_leftovers(w->name), 0);
}

static void test_posix(void **state)
{
	(void)state;
	test_across_processes(&wheres[0]);
}

static void test_sysv(void **state)
{
	(void)state;
	test_across_processes(&wheres[1]);
}

static void test_mmap(void **state)
{
	(void)state;
	test_across_processes(&wheres[2]);
}

static void test_region(void **state)
{
	(void)state;
	test_across_processes(&wheres[3]);
}

static const struct test_child children[] = {
	{ "lookup", child_lookup },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_insert_lookup),
		cmocka_unit_test(test_alignment_and_arguments),
		cmocka_unit_test(test_relptr),
		cmocka_unit_test(test_scribbled),
		cmocka_unit_test(test_counter_scribbled),
		cmocka_unit_test(test_posix),
		cmocka_unit_test(test_sysv),
		cmocka_unit_test(test_mmap),
		cmocka_unit_test(test_region),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	rc = test_child_main(argc, argv, children);
	if (rc >= 0)
		return rc;
	return cmocka_run_group_tests_name("toc", tests, NULL, NULL);
}
