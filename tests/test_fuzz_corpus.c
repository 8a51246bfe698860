/* SPDX-License-Identifier: MIT */
/*
 * test_fuzz_corpus.c - the fuzzers' inputs, replayed in every build.
 *
 * The fuzz targets (tests/fuzz/) are built only on request, with clang.
 * Their corpus must not rot, and the entry points must hold up without a
 * fuzzer too, so this test feeds every file of tests/corpus/control,
 * tests/corpus/config and tests/corpus/state through the same entry points
 * (fuzz_entry.h), then a few hundred variants of each: random bit flips and
 * truncations.
 *   - files named valid-* must be accepted (0), every other seed refused;
 *   - a variant may be accepted or refused, but a refusal says why
 *     (dynshm_last_error) with -EUCLEAN (control, state) or -EINVAL
 *     (config), and nothing may crash - under ASan/UBSan (make asan)
 *     nothing may touch memory it should not.
 * The seed of the variants is printed; set FUZZ_CORPUS_SEED to repeat one.
 *
 *	test_fuzz_corpus CORPUS_DIR
 *	test_fuzz_corpus --write-corpus CORPUS_DIR/control   (regenerate seeds)
 */
#include "testutil.h"

#include "fuzz/fuzz_entry.h"
#include "src/control.h"
#include "src/region.h"
#include "src/error.h"

#include <dynshm/dsm.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cmocka.h>

#define VARIANTS 300
#define CORPUS_MAX_INPUT (1 << 20)

static const char *corpus_dir;
static uint64_t rng;

static uint64_t next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint8_t *slurp(const char *path, size_t *size)
{
	uint8_t *buf = malloc(CORPUS_MAX_INPUT);
	FILE *f = fopen(path, "rb");

	assert_non_null(buf);
	assert_non_null(f);
	*size = fread(buf, 1, CORPUS_MAX_INPUT, f);
	fclose(f);
	return buf;
}

/* A variant: some bits flipped, maybe cut short. */
static size_t mutate(uint8_t *buf, const uint8_t *orig, size_t size)
{
	unsigned flips = 1 + (unsigned)(next() % 4);

	memcpy(buf, orig, size);
	for (unsigned i = 0; size > 0 && i < flips; i++)
		buf[next() % size] ^= (uint8_t)(1u << (next() % 8));
	if (size > 0 && next() % 4 == 0)
		size = (size_t)(next() % size);
	return size;
}

typedef int (*entry_fn)(const uint8_t *, size_t);

static void replay(const char *sub, entry_fn fn, int refusal)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	int files = 0, accepted = 0;

	snprintf(path, sizeof(path), "%s/%s", corpus_dir, sub);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t size;
		uint8_t *orig, *buf;
		int rc;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", corpus_dir, sub,
			 de->d_name);
		orig = slurp(path, &size);
		rc = fn(orig, size);
		if (strncmp(de->d_name, "valid-", 6) == 0 ? rc != 0 : rc == 0)
			fail_msg("%s: %d (%s)", path, rc, dynshm_last_error());
		buf = malloc(size ? size : 1);
		assert_non_null(buf);
		for (int i = 0; i < VARIANTS; i++) {
			size_t n = mutate(buf, orig, size);

			dynshm_clear_error();
			rc = fn(buf, n);
			if (rc == 0) {
				accepted++;
				continue;
			}
			if (rc != -refusal && !(n == 0 && rc == -EINVAL))
				fail_msg("%s variant %d: %d (%s)", path, i, rc,
					 dynshm_last_error());
			if (n > 0 && dynshm_last_error()[0] == '\0')
				fail_msg("%s variant %d refused without a "
					 "message",
					 path, i);
		}
		free(buf);
		free(orig);
		files++;
	}
	closedir(d);
	print_message("%s: %d files, %d variants each, %d accepted\n", sub,
		      files, VARIANTS, accepted);
	assert_true(files > 0);
}

static void test_control_corpus(void **state)
{
	(void)state;
	replay("control", fuzz_control, EUCLEAN);
}

static void test_config_corpus(void **state)
{
	(void)state;
	replay("config", fuzz_config, EINVAL);
}

static void test_state_corpus(void **state)
{
	(void)state;
	replay("state", fuzz_state, EUCLEAN);
}

/* ---- seeds for the control corpus ------------------------------------------ */

static int write_image(const char *dir, const char *name, uint8_t flags,
		       const void *img, size_t size)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(&flags, 1, 1, f) != 1 ||
	    fwrite(img, 1, size, f) != size) {
		perror(path);
		return 1;
	}
	return fclose(f) == 0 ? 0 : 1;
}

/*
 * Images with a region and named slots, so that variants reach the region's
 * free lists and the named index (issue 13, item 4): a valid one, one whose
 * free-list head points outside the region, one whose free-slot list has a
 * cycle through a live slot, and one whose named chain loops.  The bad ones
 * are valid images (a control segment scribbled between calls is accepted
 * by validation): walking them must report and rebuild, not crash.
 */
static int write_region_corpus(const char *dir)
{
	uint64_t region = 64 * 4096, offset = 0;
	size_t size = ctl_total_size(8, 3, region);
	uint8_t *img = aligned_alloc(64, size);
	struct region_ctl *r;
	uint32_t order = 0, s;
	struct ctl c;
	int bad = 0;

	if (!img)
		return 1;
	memset(img, 0, size);
	if (ctl_format(img, 0x1234567890abcdefull, DYNSHM_IMPL_POSIX, 8, 3,
		       region, 0) ||
	    ctl_validate(img, size, 0x1234567890abcdefull, "seed", &c))
		return 1;
	r = region_of(&c);
	r->ready = 1;
	c.procs[0].state = PROC_LIVE;
	c.procs[0].pid = 1;
	for (int i = 0; i < 3; i++) {
		if (ctl_pop_free(&c, &s) ||
		    region_alloc_locked(&c, 4096u << i, &offset, &order))
			return 1;
		c.slots[s].state = SLOT_ACTIVE;
		c.slots[s].backend = CTL_BACKEND_REGION;
		c.slots[s].region_offset = offset;
		c.slots[s].region_order = order;
		c.slots[s].size = 4096u << i;
		c.slots[s].handle = 0x3333330000000000ull | s;
		snprintf(c.slots[s].name, sizeof(c.slots[s].name), "seg-%d", i);
		ctl_names_insert(&c, s);
		ctl_set_bit(&c, 0, s);
	}
	ctl_recompute(&c);
	bad |= write_image(dir, "valid-region", 0, img, size);
	r->head[2] = r->nblocks + 7;
	bad |= write_image(dir, "valid-scribbled-region-head", 0, img, size);
	ctl_recompute(&c);
	c.slots[c.hdr->free_head].next_free = 1; /* slot 1 is ACTIVE */
	bad |= write_image(dir, "valid-scribbled-free-cycle", 0, img, size);
	ctl_recompute(&c);
	for (uint32_t b = 0; b < c.hdr->name_buckets; b++)
		if (c.names[b] != CTL_NONE)
			c.slots[c.names[b]].name_next = c.names[b];
	bad |= write_image(dir, "valid-scribbled-name-loop", 0, img, size);
	free(img);
	return bad;
}

static int write_corpus(const char *dir)
{
	size_t size = ctl_total_size(8, 3, 0);
	uint8_t *img = aligned_alloc(64, size);
	struct ctl c;
	int bad = 0;

	if (!img)
		return 1;
	memset(img, 0, size);
	if (ctl_format(img, 0x1234567890abcdefull, DYNSHM_IMPL_POSIX, 8, 3, 0, 0) ||
	    ctl_validate(img, size, 0x1234567890abcdefull, "seed", &c))
		return 1;
	bad |= write_image(dir, "valid-empty", 0, img, size);
	/* a populated one: two slots, one process holding one of them */
	c.slots[1].state = SLOT_ACTIVE;
	c.slots[1].handle = 0x1111110000000001ull;
	c.slots[1].size = 4096;
	c.slots[1].backend = DYNSHM_IMPL_POSIX;
	c.slots[2].state = SLOT_CREATING;
	c.slots[2].owner = 0;
	c.slots[2].handle = 0x2222220000000002ull;
	c.procs[0].state = PROC_LIVE;
	c.procs[0].pid = 1;
	ctl_set_bit(&c, 0, 1);
	ctl_recompute(&c);
	bad |= write_image(dir, "valid-populated", 0, img, size);
	bad |= write_image(dir, "truncated", 0, img, sizeof(struct ctl_header));
	c.hdr->max_segments = 9; /* geometry lie, checksum repaired */
	bad |= write_image(dir, "bad-geometry", 1, img, size);
	c.hdr->max_segments = 8;
	c.hdr->magic ^= 1;
	bad |= write_image(dir, "bad-magic", 1, img, size);
	free(img);
	return bad | write_region_corpus(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_corpus),
		cmocka_unit_test(test_config_corpus),
		cmocka_unit_test(test_state_corpus),
	};
	const char *seed = getenv("FUZZ_CORPUS_SEED");

	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: test_fuzz_corpus CORPUS_DIR\n");
		return 2;
	}
	corpus_dir = argv[1];
	if (seed)
		rng = strtoull(seed, NULL, 0);
	else if (getrandom(&rng, sizeof(rng), 0) != sizeof(rng))
		rng = 1;
	printf("variants from FUZZ_CORPUS_SEED=0x%" PRIx64 "\n", rng);
	return cmocka_run_group_tests_name("fuzz-corpus", tests, NULL, NULL);
}
