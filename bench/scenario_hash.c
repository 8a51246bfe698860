/* SPDX-License-Identifier: MIT */
/*
 * scenario_hash.c - dsm_bench scenario "hash" (issue 15): lookups in a
 * small and a large table, and two readers against one.
 */
#include "bench.h"

/* The next of a xorshift64 sequence: the keys looked up, in any order. */
static inline uint64_t next_key(uint64_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return *seed;
}

static int hash_lookup(void *arg)
{
	struct area_ctx *c = arg;
	uint64_t k, v;

	k = next_key(&c->seed) % c->keys;
	return dynshm_hash_find(c->hash, &k, &v);
}

/* A row of the large table against the 1,000-key one (ns per op). */
static struct row *keys_row(const char *operation, uint64_t big, long n,
			    const double *va, const double *vb)
{
	struct row *r = add_row("hash", "posix", operation, 8);

	snprintf(r->param, sizeof(r->param), "keys");
	r->param_value = (long)big;
	r->iterations = n;
	snprintf(r->unit, sizeof(r->unit), "ns/op");
	r->s = stats_of(va, opt.repeats);
	r->ratio = ratio_stats(va, vb, opt.repeats);
	snprintf(r->ratio_to, sizeof(r->ratio_to), "1000 keys");
	return r;
}

/*
 * What memory alone costs a lookup in a large table: two dependent random
 * 8-byte reads (as a bucket slot, then an entry), each address depending
 * on the read before, in shared memory (4 KiB pages, as the area's
 * segments) as large as the big table, next to the same in a buffer as
 * large as the small table.  A yardstick, not an exact floor: lookups
 * overlap a little more than this chain (the bucket prefetch is not
 * ordered by the lock), but each needs at least its entry, one such read
 * (docs/performance.md).
 */
struct chase_ctx {
	uint64_t *buf;
	size_t words;
	uint64_t seed, acc;
};

static int chase(void *arg)
{
	struct chase_ctx *c = arg;
	uint64_t x;

	next_key(&c->seed);
	x = c->buf[(c->seed ^ c->acc) % c->words];
	c->acc += c->buf[(x ^ c->seed) % c->words];
	return 0;
}

static int chase_init(struct chase_ctx *c, size_t bytes)
{
	c->words = bytes / 8;
	c->buf = mmap(NULL, c->words * 8, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->buf == MAP_FAILED) {
		c->buf = NULL;
		return -errno;
	}
	for (size_t i = 0; i < c->words; i++)
		c->buf[i] = i * 0x9e3779b97f4a7c15ull;
	c->seed = 88172645463325252ull;
	return 0;
}

/*
 * Bytes per key of a table of 8-byte keys and values: a 64-byte entry (its
 * size class) and two 8-byte bucket slots (the array grows at half full).
 */
#define TABLE_BYTES_PER_KEY 80

static int hash_memory(uint64_t big, long n)
{
	struct chase_ctx cs = { 0 }, cl = { 0 };
	double va[256], vb[256];
	struct row *r;
	int rc = chase_init(&cs, 1000 * TABLE_BYTES_PER_KEY);

	if (rc == 0)
		rc = chase_init(&cl, big * TABLE_BYTES_PER_KEY);
	if (rc == 0)
		rc = measure_pair(chase, &cl, chase, &cs, n, va, vb);
	if (rc == 0) {
		r = keys_row("2 dependent reads (memory)", big, n, va, vb);
		fprintf(tout, "  memory: 2 dependent random reads in %.1f "
			"MiB %6.1f ns, in %.0f KiB %6.1f ns  %.2fx  (no "
			"table: the memory alone)\n",
			(double)(cl.words * 8) / MIB, r->s.med,
			(double)(cs.words * 8) / KIB,
			stats_of(vb, opt.repeats).med, r->ratio.med);
	}
	if (cs.buf)
		munmap(cs.buf, cs.words * 8);
	if (cl.buf)
		munmap(cl.buf, cl.words * 8);
	return rc;
}

/*
 * The least any hash table can cost here: keys 1..n in open addressing
 * (16-byte slots of key and value, linear probing, at most half full) in
 * shared memory of 4 KiB pages, looked up with no lock, no check and no
 * translation: one random read for most keys, and nothing that stops the
 * CPU from overlapping one lookup's miss with the next.  Its own growth
 * from 1,000 to the large count is what the machine's memory charges any
 * table; dynshm's row is read against it (docs/performance.md).
 */
struct ideal_ctx {
	struct { uint64_t key, value; } *slot;
	uint64_t mask, keys, seed, acc;
};

static uint64_t ideal_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static int ideal_lookup(void *arg)
{
	struct ideal_ctx *c = arg;
	uint64_t k, i;

	k = next_key(&c->seed) % c->keys + 1;
	for (i = ideal_hash(k) & c->mask; c->slot[i].key != k;
	     i = (i + 1) & c->mask)
		;
	c->acc += c->slot[i].value;
	return 0;
}

static int ideal_init(struct ideal_ctx *c, uint64_t n)
{
	uint64_t cap = 2;

	while (cap < 2 * n)
		cap <<= 1;
	c->slot = mmap(NULL, cap * sizeof(*c->slot), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->slot == MAP_FAILED) {
		c->slot = NULL;
		return -errno;
	}
	c->mask = cap - 1;
	for (uint64_t k = 1; k <= n; k++) {
		uint64_t i = ideal_hash(k) & c->mask;

		while (c->slot[i].key)
			i = (i + 1) & c->mask;
		c->slot[i].key = k;
		c->slot[i].value = k;
	}
	c->keys = n;
	c->seed = 88172645463325252ull;
	return 0;
}

static int hash_ideal(uint64_t big, long n)
{
	struct ideal_ctx cs = { 0 }, cl = { 0 };
	double va[256], vb[256];
	struct row *r;
	int rc = ideal_init(&cs, 1000);

	if (rc == 0)
		rc = ideal_init(&cl, big);
	if (rc == 0)
		rc = measure_pair(ideal_lookup, &cl, ideal_lookup, &cs, n,
				  va, vb);
	if (rc == 0) {
		r = keys_row("find (reference table)", big, n, va, vb);
		fprintf(tout, "  reference table (no lock, one read): %" PRIu64
			" keys %6.1f ns  1,000 keys %6.1f ns  %.2fx  (what "
			"memory charges any table)\n", big, r->s.med,
			stats_of(vb, opt.repeats).med, r->ratio.med);
	}
	if (cs.slot)
		munmap(cs.slot, (cs.mask + 1) * sizeof(*cs.slot));
	if (cl.slot)
		munmap(cl.slot, (cl.mask + 1) * sizeof(*cl.slot));
	return rc;
}

/* A table of keys 0..n-1 (8-byte keys and values). */
static int hash_fill(struct area_ctx *c, uint64_t n, dynshm_area_ptr *tp)
{
	int rc = dynshm_hash_create(c->area, 8, 8, tp, &c->hash);

	for (uint64_t k = 0; rc == 0 && k < n && !stop; k++)
		rc = dynshm_hash_insert(c->hash, &k, &k, 0);
	c->keys = n;
	c->seed = 88172645463325252ull;
	return stop ? -EINTR : rc;
}

int scenario_hash(void)
{
	long n = opt.smoke ? 1000 : 1000000;
	uint64_t big = opt.smoke ? 10000 : 1000000;
	struct area_ctx small = { 0 }, large = { 0 };
	double va[256], vb[256];
	dynshm_area_ptr tp;
	struct bench_inst *b;
	struct row *r;
	int rc = inst_open(DYNSHM_IMPL_POSIX, 0, 0, &b);

	if (rc < 0)
		return rc;
	fprintf(tout, "\n== hash: dynshm_hash_find of present keys, 1,000 vs "
		"%" PRIu64 " keys, %ld lookups per block ==\n", big, n);
	rc = dynshm_area_create(b->inst, 0, 0, &small.area);
	if (rc == 0) {
		large.area = small.area;
		rc = hash_fill(&small, 1000, &tp);
	}
	if (rc == 0)
		rc = hash_fill(&large, big, &tp);
	if (rc == 0)
		rc = measure_pair(hash_lookup, &large, hash_lookup, &small, n,
				  va, vb);
	if (rc == 0) {
		r = keys_row("find", big, n, va, vb);
		set_verdict(r, r->ratio.med, 1.25);
		fprintf(tout, "  find  %" PRIu64 " keys %6.1f ns  1,000 keys "
			"%6.1f ns  %.2fx  (target <= 1.25) %s\n", big,
			r->s.med, stats_of(vb, opt.repeats).med,
			r->ratio.med, r->verdict);
		rc = scaling_row("hash", "find", 8, hash_lookup, &large, n);
		if (rc == 0)
			rc = hash_memory(big, n);
		if (rc == 0)
			rc = hash_ideal(big, n);
	}
	if (rc < 0 && rc != -EINTR)
		fail(rc, "hash: %s", dynshm_last_error());
	if (large.hash)
		dynshm_hash_detach(large.hash);
	if (small.hash)
		dynshm_hash_detach(small.hash);
	if (small.area)
		dynshm_area_destroy(small.area);
	inst_destroy(b);
	return rc;
}
