/* SPDX-License-Identifier: MIT */
/*
 * scenario_named.c - dsm_bench scenario "named": attach by name while
 * many named segments exist, next to attach by handle.
 */
#include "bench.h"

/* ---- named lookup at scale (issue 13, item 10) ----------------------------- */

struct named_ctx {
	dynshm_instance *inst;
	const char *name;
};

static int dynshm_named_attach_detach(void *arg)
{
	struct named_ctx *n = arg;
	dynshm_segment *seg;
	int rc = dynshm_attach_named(n->inst, n->name, &seg);

	return rc < 0 ? rc : dynshm_detach(seg);
}

#define NAMED_FLAGS                                                            \
	(DYNSHM_CREATE_REGION | DYNSHM_CREATE_NO_ZERO | DYNSHM_CREATE_PIN)

/*
 * Grow the instance to `want` named segments (pinned, not mapped); the last
 * one made is the one looked up (name and handle in n and d): it sits in
 * the highest slot, the worst case of a search through the slots.
 */
static int named_fill(struct named_ctx *n, struct dynshm_ctx *d, long *have,
		      long want)
{
	static char name[32];
	dynshm_segment *seg;
	int rc;

	while (*have < want) {
		if (stop)
			return -EINTR;
		snprintf(name, sizeof(name), "bench-%ld", *have);
		rc = dynshm_create_named(n->inst, name, 4096, NAMED_FLAGS,
					 &seg);
		if (rc < 0)
			return fail(rc, "creating named segment %ld of %ld",
				    *have + 1, want);
		d->target = dynshm_segment_handle(seg);
		n->name = name;
		dynshm_detach(seg);
		++*have;
	}
	return 0;
}

int scenario_named(void)
{
	struct named_ctx nc;
	struct dynshm_ctx dc;
	struct bench_inst *b;
	struct stats base = { .med = -1 };
	double va[256], vb[256];
	long max_live = 0, have = 0;
	uint32_t max_segments = 4096;
	size_t region;
	int rc;

	for (int i = 0; i < opt.nlive; i++)
		max_live = max_l(max_live, opt.live[i]);
	while (max_segments < max_live + 64)
		max_segments *= 2;
	region = ((size_t)(max_live + 64) * 4096 + MIB - 1) / MIB * MIB;
	fprintf(tout, "\n== named lookup at scale: dynshm_attach_named + "
		      "dynshm_detach of the last of N named pinned 4 KiB region "
		      "segments; max_segments %u ==\n",
		max_segments);
	fprintf(tout, "   by handle = dynshm_attach + dynshm_detach of the same "
		      "segment, in the same blocks; growth = median at N / "
		      "median at %ld\n",
		opt.live[0]);
	fprintf(tout, "%-20s %-30s %-30s %-10s %-10s %s\n", "named segments",
		"by name median [p10 .. p90]", "by handle median [p10 .. p90]",
		"name/hdl", "growth", "target 1.25");
	rc = inst_open(DYNSHM_IMPL_POSIX, max_segments, region, &b);
	if (rc < 0)
		return 0;
	memset(&dc, 0, sizeof(dc));
	nc.inst = dc.inst = b->inst;
	for (int i = 0; i < opt.nlive; i++) {
		char sn[80], sh[80], ov[16], gr[16];
		struct stats sname, shdl, ratio;
		struct row *r;

		note("named: %ld named segments", opt.live[i]);
		rc = named_fill(&nc, &dc, &have, opt.live[i]);
		if (rc < 0)
			goto out;
		rc = measure_pair(dynshm_attach_detach, &dc,
				  dynshm_named_attach_detach, &nc,
				  opt.iterations, va, vb);
		if (rc < 0) {
			if (rc != -EINTR)
				fail(rc, "named: attach by name");
			goto out;
		}
		sname = stats_of(vb, opt.repeats);
		shdl = stats_of(va, opt.repeats);
		ratio = ratio_stats(vb, va, opt.repeats);
		r = add_row("named", "posix", "attach_named+detach", 4096);
		snprintf(r->param, sizeof(r->param), "named_segments");
		r->param_value = have;
		snprintf(r->variant, sizeof(r->variant), "dynshm-by-name");
		snprintf(r->unit, sizeof(r->unit), "ns/op");
		r->iterations = opt.iterations;
		r->s = sname;
		if (i == 0) {
			base = sname;
		} else if (base.med > 0) {
			snprintf(r->ratio_to, sizeof(r->ratio_to), "by-name@%ld",
				 opt.live[0]);
			r->ratio.med = sname.med / base.med;
			r->ratio.p10 = sname.p10 / base.med;
			r->ratio.p90 = sname.p90 / base.med;
			set_verdict(r, r->ratio.med, 1.25);
		}
		fmt_stats(sn, sizeof(sn), &sname);
		fmt_stats(sh, sizeof(sh), &shdl);
		snprintf(ov, sizeof(ov), "%.2f", ratio.med);
		snprintf(gr, sizeof(gr), "%.2f",
			 i > 0 && base.med > 0 ? sname.med / base.med : 1.0);
		fprintf(tout, "%-20ld %-30s %-30s %-10s %-10s %s\n", have, sn,
			sh, ov, gr, i > 0 ? r->verdict : "-");
		fflush(tout);
	}
	rc = 0;
out:
	note("named: destroying the instance");
	inst_destroy(b);
	return rc;
}
