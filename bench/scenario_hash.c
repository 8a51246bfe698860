/* SPDX-License-Identifier: MIT */
/*
 * scenario_hash.c - dsm_bench scenario "hash" (issue 15): lookups in a
 * small and a large table, and two readers against one.
 */
#include "bench.h"

static int hash_lookup(void *arg)
{
	struct area_ctx *c = arg;
	uint64_t k, v;

	c->seed ^= c->seed << 13;
	c->seed ^= c->seed >> 7;
	c->seed ^= c->seed << 17;
	k = c->seed % c->keys;
	return dynshm_hash_find(c->hash, &k, &v);
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
		r = add_row("hash", "posix", "find", 8);
		snprintf(r->param, sizeof(r->param), "keys");
		r->param_value = (long)big;
		r->iterations = n;
		snprintf(r->unit, sizeof(r->unit), "ns/op");
		r->s = stats_of(va, opt.repeats);
		r->ratio = ratio_stats(va, vb, opt.repeats);
		snprintf(r->ratio_to, sizeof(r->ratio_to), "1000 keys");
		set_verdict(r, r->ratio.med, 1.25);
		fprintf(tout, "  find  %" PRIu64 " keys %6.1f ns  1,000 keys "
			"%6.1f ns  %.2fx  (target <= 1.25) %s\n", big,
			r->s.med, stats_of(vb, opt.repeats).med,
			r->ratio.med, r->verdict);
		rc = scaling_row("hash", "find", 8, hash_lookup, &large, n);
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
