/* SPDX-License-Identifier: MIT */
/*
 * scenario_pairs.c - dsm_bench scenarios "create" and "attach":
 * dynshm_create + detach and dynshm_attach + detach against the raw
 * system-call sequences, per backend and size.
 */
#include "bench.h"

/* ---- scenarios 1: create + destroy, attach + detach ---------------------- */

static double target_for(dynshm_impl_type t, size_t size)
{
	if (size > MIB)
		return -1; /* no target at 64 MiB */
	return t == DYNSHM_IMPL_SYSV ? 1.25 : 1.15;
}

/* Fewer iterations where each one moves more memory. */
long create_iterations(size_t size)
{
	long div = (long)(size / (256 * KIB));

	return max_l(3, opt.iterations / max_l(1, div));
}

static void print_pair_header(const char *title)
{
	fprintf(tout, "\n== %s ==\n", title);
	fprintf(tout, "%-6s %-7s %-15s %6s  %-30s %-30s %-20s %-6s %s\n",
		"backend", "size", "operation", "iters",
		"raw median [p10 .. p90]", "dynshm median [p10 .. p90]",
		"ratio [p10 .. p90]", "target", "verdict");
}

static int pair_case(struct bench_inst *b, size_t size, bool create)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	const char *what = create ? "create+destroy" : "attach+detach";
	struct raw_ctx rc_ = { .backend = b->backend, .size = size };
	struct dynshm_ctx dc = { .inst = b->inst, .size = size };
	double va[256], vb[256];
	long n = create ? create_iterations(size) : opt.iterations;
	char sz[32], sa[80], sb[80], sr[40], tg[8];
	struct row *ra, *rd;
	int rc = 0;

	if (!create) {
		rc = raw_make_target(&rc_);
		if (rc == 0)
			rc = dynshm_make_pinned(b->inst, size, &dc.target);
		if (rc < 0)
			goto out;
	}
	rc = measure_pair(create ? raw_create_fn(b->backend)
				 : raw_attach_fn(b->backend),
			  &rc_, create ? dynshm_create_destroy : dynshm_attach_detach,
			  &dc, n, va, vb);
	if (rc < 0)
		goto out;
	ra = add_row(create ? "create" : "attach", bname, what, size);
	snprintf(ra->variant, sizeof(ra->variant), "raw");
	snprintf(ra->unit, sizeof(ra->unit), "ns/op");
	ra->iterations = n;
	ra->s = stats_of(va, opt.repeats);
	rd = add_row(create ? "create" : "attach", bname, what, size);
	snprintf(rd->variant, sizeof(rd->variant), "dynshm");
	snprintf(rd->unit, sizeof(rd->unit), "ns/op");
	snprintf(rd->ratio_to, sizeof(rd->ratio_to), "raw");
	rd->iterations = n;
	rd->s = stats_of(vb, opt.repeats);
	rd->ratio = ratio_stats(vb, va, opt.repeats);
	if (target_for(b->backend, size) > 0)
		set_verdict(rd, rd->ratio.med, target_for(b->backend, size));
	fmt_size(sz, sizeof(sz), size);
	fmt_stats(sa, sizeof(sa), &ra->s);
	fmt_stats(sb, sizeof(sb), &rd->s);
	fmt_ratio(sr, sizeof(sr), &rd->ratio);
	if (rd->target > 0)
		snprintf(tg, sizeof(tg), "%.2f", rd->target);
	else
		snprintf(tg, sizeof(tg), "-");
	fprintf(tout, "%-7s %-7s %-15s %6ld  %-30s %-30s %-20s %-6s %s\n",
		bname, sz, what, n, sa, sb, sr, tg,
		rd->verdict[0] ? rd->verdict : "-");
	fflush(tout);
out:
	if (!create && dc.target)
		dynshm_destroy(b->inst, dc.target);
	raw_remove(rc_.obj);
	if (rc < 0 && rc != -EINTR)
		return fail(rc, "%s %s", bname, what);
	return rc;
}

int scenario_pairs(struct bench_inst *const *by_backend, bool create)
{
	print_pair_header(create ? "create + destroy: dynshm_create + dynshm_detach "
				   "vs raw system calls (per operation)"
				 : "attach + detach of a pinned segment: "
				   "dynshm_attach + dynshm_detach vs raw system "
				   "calls (per operation)");
	for (int t = 1; t < 4; t++) {
		if (!by_backend[t])
			continue;
		for (int i = 0; i < opt.nsizes; i++) {
			int rc = pair_case(by_backend[t], opt.sizes[i], create);

			if (rc == -EINTR)
				return rc;
		}
	}
	return 0;
}
