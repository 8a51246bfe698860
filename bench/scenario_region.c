/* SPDX-License-Identifier: MIT */
/*
 * scenario_region.c - dsm_bench scenario "region": segments carved from a
 * region against posix segments and the raw posix calls.
 */
#include "bench.h"

/* ---- scenario 4: region carve-outs -----------------------------------------
 *
 * One posix instance with a region (min_dynamic_shared_memory, huge_pages
 * = off so that it runs on any machine) holds both kinds of segment: region
 * ones (DYNSHM_CREATE_REGION) and posix ones (DYNSHM_CREATE_NO_REGION).  Attach +
 * detach of each is measured against the raw posix attach (shm_open, fstat,
 * mmap, munmap, close); create + destroy of each, with and without the
 * region's zero fill, against the raw posix create.  Each segment is its
 * own series; the blocks of a case rotate their order every repeat.
 */

#define MAX_WAYS 4

struct way {
	const char *backend, *variant; /* CSV columns */
	op_fn fn;
	void *arg;
};

/*
 * Like measure_pair for k operations: one untimed warm-up block of each,
 * then repeats rounds in which the order rotates by one, so that each
 * operation leads as often as the others.
 */
static int measure_ways(const struct way *w, int k, long n,
			double v[MAX_WAYS][256])
{
	double warm;
	int rc = 0;

	for (int j = 0; rc == 0 && j < k; j++)
		rc = run_block(w[j].fn, w[j].arg, max_l(1, n / 10), &warm);
	for (int r = 0; rc == 0 && r < opt.repeats; r++) {
		if (stop)
			return -EINTR;
		for (int j = 0; rc == 0 && j < k; j++) {
			int x = (r + j) % k;

			rc = run_block(w[x].fn, w[x].arg, n, &v[x][r]);
		}
	}
	return rc;
}

/* The region: four times the largest size's power of two, >= 16 MiB. */
static size_t region_bytes(void)
{
	size_t big = 4096, want;

	for (int i = 0; i < opt.nsizes; i++)
		while (big < opt.sizes[i])
			big *= 2;
	want = 4 * big;
	want = (want + MIB - 1) / MIB * MIB;
	return want < 16 * MIB ? 16 * MIB : want;
}

static struct row *region_row(const struct way *w, const char *what,
			      size_t size, long n, const double *v)
{
	struct row *r = add_row("region", w->backend, what, size);

	snprintf(r->variant, sizeof(r->variant), "%s", w->variant);
	snprintf(r->unit, sizeof(r->unit), "ns/op");
	r->iterations = n;
	r->s = stats_of(v, opt.repeats);
	return r;
}

/*
 * Print and record one case: ways[0] is the raw sequence and ways[1] the
 * posix backend; ratios are to both.  A region way gets two CSV rows with
 * the same times, one per ratio_to.
 */
static void region_report(const struct way *w, int k, const char *what,
			  size_t size, long n, double v[MAX_WAYS][256])
{
	char sz[32], st[80], r0[48], r1[48];

	fmt_size(sz, sizeof(sz), size);
	for (int j = 0; j < k; j++) {
		struct row *r = region_row(&w[j], what, size, n, v[j]);
		struct stats to_raw = ratio_stats(v[j], v[0], opt.repeats);
		struct stats to_posix = ratio_stats(v[j], v[1], opt.repeats);

		if (j > 0) {
			snprintf(r->ratio_to, sizeof(r->ratio_to), "raw");
			r->ratio = to_raw;
		}
		if (j > 1) {
			r = region_row(&w[j], what, size, n, v[j]);
			snprintf(r->ratio_to, sizeof(r->ratio_to),
				 "posix-dynshm");
			r->ratio = to_posix;
		}
		fmt_stats(st, sizeof(st), &r->s);
		if (j > 0)
			fmt_ratio(r0, sizeof(r0), &to_raw);
		else
			snprintf(r0, sizeof(r0), "-");
		if (j > 1)
			fmt_ratio(r1, sizeof(r1), &to_posix);
		else
			snprintf(r1, sizeof(r1), "-");
		fprintf(tout, "%-7s %-15s %-14s %6ld  %-34s %-27s %s\n", sz,
			what, w[j].variant, n, st, r0, r1);
	}
	fflush(tout);
}

static int region_attach_case(struct bench_inst *b, size_t size)
{
	struct raw_ctx raw = { .backend = DYNSHM_IMPL_POSIX, .size = size };
	struct dynshm_ctx posix = { .inst = b->inst, .size = size };
	struct dynshm_ctx region = { .inst = b->inst, .size = size };
	const struct way w[3] = {
		{ "posix", "raw", raw_posix_attach, &raw },
		{ "posix", "dynshm", dynshm_attach_detach, &posix },
		{ "region", "region", dynshm_attach_detach, &region },
	};
	double v[MAX_WAYS][256];
	int rc = raw_make_target(&raw);

	if (rc == 0)
		rc = dynshm_make_pinned_flags(b->inst, size, DYNSHM_CREATE_NO_REGION,
					   &posix.target);
	if (rc == 0)
		rc = dynshm_make_pinned_flags(b->inst, size, DYNSHM_CREATE_REGION,
					   &region.target);
	if (rc == 0)
		rc = measure_ways(w, 3, opt.iterations, v);
	if (rc == 0)
		region_report(w, 3, "attach+detach", size, opt.iterations, v);
	if (region.target)
		dynshm_destroy(b->inst, region.target);
	if (posix.target)
		dynshm_destroy(b->inst, posix.target);
	raw_remove(raw.obj);
	if (rc < 0 && rc != -EINTR)
		return fail(rc, "region attach+detach");
	return rc;
}

static int region_create_case(struct bench_inst *b, size_t size)
{
	struct raw_ctx raw = { .backend = DYNSHM_IMPL_POSIX, .size = size };
	struct dynshm_ctx posix = { b->inst, size, DYNSHM_CREATE_NO_REGION, 0 };
	struct dynshm_ctx zero = { b->inst, size, DYNSHM_CREATE_REGION, 0 };
	struct dynshm_ctx nozero = { b->inst, size,
				  DYNSHM_CREATE_REGION | DYNSHM_CREATE_NO_ZERO, 0 };
	const struct way w[4] = {
		{ "posix", "raw", raw_posix_create, &raw },
		{ "posix", "dynshm", dynshm_create_destroy, &posix },
		{ "region", "region", dynshm_create_destroy, &zero },
		{ "region", "region-nozero", dynshm_create_destroy, &nozero },
	};
	double v[MAX_WAYS][256];
	long n = create_iterations(size);
	int rc = measure_ways(w, 4, n, v);

	if (rc == 0)
		region_report(w, 4, "create+destroy", size, n, v);
	if (rc < 0 && rc != -EINTR)
		return fail(rc, "region create+destroy");
	return rc;
}

int scenario_region(void)
{
	size_t bytes = region_bytes();
	struct bench_inst *b;
	int rc;

	fprintf(tout, "\n== region: segments carved from a %zu MiB region "
		      "(huge_pages = off) vs the posix backend (dynshm) and "
		      "the raw posix system calls, one instance, per "
		      "operation ==\n",
		bytes / MIB);
	fprintf(tout, "   vs raw, vs posix: medians of per-repeat ratios "
		      "[p10 .. p90]; region zero-fills unless "
		      "DYNSHM_CREATE_NO_ZERO (region-nozero)\n");
	fprintf(tout, "%-7s %-15s %-14s %6s  %-34s %-27s %s\n", "size",
		"operation", "variant", "iters", "median [p10 .. p90]",
		"vs raw", "vs posix dynshm");
	rc = inst_open(DYNSHM_IMPL_POSIX, 0, bytes, &b);
	if (rc < 0) { /* counted as a failure, and said why, by inst_open */
		fprintf(tout, "   not measured: no instance with a region\n");
		return 0;
	}
	for (int i = 0; rc != -EINTR && i < opt.nsizes; i++)
		rc = region_attach_case(b, opt.sizes[i]);
	for (int i = 0; rc != -EINTR && i < opt.nsizes; i++)
		rc = region_create_case(b, opt.sizes[i]);
	inst_destroy(b);
	return rc == -EINTR ? rc : 0;
}
