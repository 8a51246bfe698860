/* SPDX-License-Identifier: MIT */
/*
 * scenario_scale.c - dsm_bench scenario "scale": attach + detach by
 * handle while 10 / 1,000 / 100,000 segments are live.
 */
#include "bench.h"

/* ---- scenario 2: handle lookup at scale ---------------------------------- */

struct scale_target {
	struct raw_ctx raw; /* attaches the dynshm segment's own OS object */
	struct dynshm_ctx dsm;
};

/* Point a raw attach at the OS object behind a dynshm handle. */
static int raw_on_segment(struct bench_inst *b, dynshm_handle h,
			  struct raw_ctx *r)
{
	dynshm_impl_space *space;
	char name[PATH_MAX];
	unsigned key;
	int rc;

	memset(r, 0, sizeof(*r));
	r->backend = b->backend;
	r->dirfd = -1;
	rc = dynshm_impl_space_open(b->backend, b->id, b->dir, &space);
	if (rc < 0)
		return rc;
	rc = dynshm_impl_object_name(space, h, name, sizeof(name));
	dynshm_impl_space_close(space);
	if (rc < 0)
		return rc;
	if (b->backend == DYNSHM_IMPL_SYSV) {
		if (sscanf(name, "sysv:0x%x", &key) != 1)
			return -EINVAL;
		r->key = (key_t)key;
	} else if (b->backend == DYNSHM_IMPL_POSIX) {
		snprintf(r->name, sizeof(r->name), "%s", name);
	} else {
		const char *slash = strrchr(name, '/');

		snprintf(r->name, sizeof(r->name), "%s", slash + 1);
		r->dirfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (r->dirfd < 0)
			return -errno;
	}
	return 0;
}

static long sysv_scale_limit(void)
{
	long shmmni = read_long_file("/proc/sys/kernel/shmmni");

	/* minus what exists, the control segment, the target and a margin */
	return shmmni - sysv_segments_in_use() - 16;
}

/* Grow the instance to `want` live (pinned, unmapped) segments. */
static int fill_to(struct bench_inst *b, long *have, long want)
{
	dynshm_handle h;
	int rc;

	while (*have < want) {
		if (stop)
			return -EINTR;
		rc = dynshm_make_pinned(b->inst, 4096, &h);
		if (rc < 0)
			return fail(rc, "creating live segment %ld of %ld",
				    *have + 1, want);
		++*have;
	}
	return 0;
}

static int scale_backend(struct bench_inst *b, long limit)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	struct scale_target st;
	struct stats base_dsm = { .med = -1 }, base_raw = { .med = -1 };
	double va[256], vb[256];
	long have = 0;
	int rc;

	memset(&st, 0, sizeof(st));
	st.dsm.inst = b->inst;
	rc = dynshm_make_pinned(b->inst, 4096, &st.dsm.target);
	if (rc == 0)
		rc = raw_on_segment(b, st.dsm.target, &st.raw);
	if (rc < 0) {
		fail(rc, "%s: scale target", bname);
		goto out;
	}
	for (int i = 0; i < opt.nlive; i++) {
		long want = opt.live[i], got;
		char label[48], sd[80], sr[80], ov[16], g1[16], g2[16];
		struct stats sdm, srw, ratio;
		struct row *r;

		if (want > limit)
			want = limit;
		note("scale: %s: %ld live segments", bname, want);
		rc = fill_to(b, &have, want);
		if (rc < 0)
			goto out;
		got = have;
		rc = measure_pair(raw_attach_fn(b->backend), &st.raw,
				  dynshm_attach_detach, &st.dsm, opt.iterations,
				  va, vb);
		if (rc < 0) {
			if (rc != -EINTR)
				fail(rc, "%s: scale attach", bname);
			goto out;
		}
		sdm = stats_of(vb, opt.repeats);
		srw = stats_of(va, opt.repeats);
		ratio = ratio_stats(vb, va, opt.repeats);
		r = add_row("scale", bname, "attach+detach", 4096);
		snprintf(r->param, sizeof(r->param), "live_segments");
		r->param_value = got;
		snprintf(r->variant, sizeof(r->variant), "raw-same-object");
		snprintf(r->unit, sizeof(r->unit), "ns/op");
		r->iterations = opt.iterations;
		r->s = srw;
		if (i > 0 && base_raw.med > 0) {
			snprintf(r->ratio_to, sizeof(r->ratio_to),
				 "raw@%ld", opt.live[0]);
			r->ratio.med = srw.med / base_raw.med;
			r->ratio.p10 = r->ratio.p90 = -1;
		}
		r = add_row("scale", bname, "attach+detach", 4096);
		snprintf(r->param, sizeof(r->param), "live_segments");
		r->param_value = got;
		snprintf(r->variant, sizeof(r->variant), "dynshm");
		snprintf(r->unit, sizeof(r->unit), "ns/op");
		r->iterations = opt.iterations;
		r->s = sdm;
		if (i == 0) {
			base_dsm = sdm;
			base_raw = srw;
		} else if (base_dsm.med > 0) {
			snprintf(r->ratio_to, sizeof(r->ratio_to),
				 "dynshm@%ld", opt.live[0]);
			r->ratio.med = sdm.med / base_dsm.med;
			r->ratio.p10 = sdm.p10 / base_dsm.med;
			r->ratio.p90 = sdm.p90 / base_dsm.med;
			set_verdict(r, r->ratio.med, 1.25);
		}
		snprintf(label, sizeof(label), "%ld%s", got,
			 got < opt.live[i] ? " (shmmni cap)" : "");
		fmt_stats(sd, sizeof(sd), &sdm);
		fmt_stats(sr, sizeof(sr), &srw);
		snprintf(ov, sizeof(ov), "%.2f", ratio.med);
		if (i > 0) {
			snprintf(g1, sizeof(g1), "%.2f",
				 sdm.med / base_dsm.med);
			snprintf(g2, sizeof(g2), "%.2f",
				 srw.med / base_raw.med);
		} else {
			snprintf(g1, sizeof(g1), "1.00");
			snprintf(g2, sizeof(g2), "1.00");
		}
		fprintf(tout, "%-7s %-20s %-30s %-30s %-8s %-10s %-10s %s\n",
			bname, label, sd, sr, ov, g1, g2,
			i > 0 ? r->verdict : "-");
		fflush(tout);
	}
	rc = 0;
out:
	if (st.raw.dirfd >= 0 && b->backend == DYNSHM_IMPL_MMAP)
		close(st.raw.dirfd);
	/* the instance (and every live segment) goes with inst_destroy */
	return rc;
}

int scenario_scale(void)
{
	long max_live = 0, limit;
	uint32_t max_segments = 4096;

	for (int i = 0; i < opt.nlive; i++)
		max_live = max_l(max_live, opt.live[i]);
	while (max_segments < max_live + 64)
		max_segments *= 2;
	fprintf(tout, "\n== handle lookup at scale: attach + detach of one "
		      "pinned 4 KiB segment while N others are live (pinned, "
		      "not mapped); max_segments %u ==\n",
		max_segments);
	fprintf(tout, "   raw = the same system calls on the same OS object; "
		      "growth = median at N / median at %ld\n",
		opt.live[0]);
	fprintf(tout, "%-7s %-20s %-30s %-30s %-8s %-10s %-10s %s\n",
		"backend", "live segments", "dynshm median [p10 .. p90]",
		"raw median [p10 .. p90]", "dsm/raw", "growth dsm",
		"growth raw", "target 1.25");
	for (int t = 1; t < 4; t++) {
		struct bench_inst *b;
		int rc;

		if (!(opt.backends & 1u << t))
			continue;
		limit = t == DYNSHM_IMPL_SYSV ? sysv_scale_limit() : LONG_MAX;
		if (t == DYNSHM_IMPL_SYSV && limit < max_live)
			fprintf(tout, "   sysv: kernel.shmmni = %ld (from "
				      "/proc/sys/kernel/shmmni), %ld in use: "
				      "capped at %ld live segments\n",
				read_long_file("/proc/sys/kernel/shmmni"),
				sysv_segments_in_use(), limit);
		rc = inst_open((dynshm_impl_type)t, max_segments, 0, &b);
		if (rc < 0)
			continue;
		rc = scale_backend(b, limit);
		note("scale: %s: destroying the instance", 
		     dynshm_impl_type_name((dynshm_impl_type)t));
		inst_destroy(b);
		if (rc == -EINTR)
			return rc;
	}
	return 0;
}
