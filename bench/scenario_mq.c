/* SPDX-License-Identifier: MIT */
/*
 * scenario_mq.c - dsm_bench scenario "mq": repeats bench_mq.c's
 * measurements, alternates the transports and turns them into rows and
 * verdicts.
 */
#include "bench.h"

/* ---- scenario 8: the message queue (bench_mq.c) -------------------------- */

/*
 * Per repeat, every transport runs one block, in an order that rotates
 * with the repeat; ratios are the medians of per-repeat ratios, as
 * elsewhere.  Streaming is compared as time per message (the inverse of
 * throughput), so that every target reads "at most".
 */
static struct row *mq_row(const char *op, enum mqb_transport t, size_t size,
			  long n, const double *v, const char *unit)
{
	struct row *r = add_row("mq", "posix", op, size);

	snprintf(r->variant, sizeof(r->variant), "%s", mqb_names[t]);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	r->iterations = n;
	r->s = stats_of(v, opt.repeats);
	return r;
}

static void mq_print(const struct row *r, const char *extra)
{
	char st[80], ra[40] = "-";

	fmt_stats(st, sizeof(st), &r->s);
	if (r->ratio.med >= 0)
		fmt_ratio(ra, sizeof(ra), &r->ratio);
	fprintf(tout, "%-16s %-12s %7ld  %-30s %-22s %-10s %s%s\n",
		r->operation, r->variant, r->iterations, st, ra,
		r->ratio_to[0] ? r->ratio_to : "-",
		r->verdict[0] ? r->verdict : "-", extra);
}

typedef int (*mq_measure_fn)(dynshm_instance *, void *, enum mqb_transport,
			     long, double *);

/* v[t][repeat]: each transport's block, all transports per repeat. */
static int mq_series(struct bench_inst *b, void *seg, mq_measure_fn fn,
		     const bool *use, long n, double v[MQB_N][256])
{
	for (int r = 0; r < opt.repeats && !stop; r++)
		for (int k = 0; k < MQB_N; k++) {
			enum mqb_transport t = (enum mqb_transport)((k + r) %
								     MQB_N);
			int rc;

			if (!use[t])
				continue;
			rc = fn(b->inst, seg, t, n, &v[t][r]);
			if (rc < 0)
				return fail(rc, "mq: %s", mqb_names[t]);
		}
	return stop ? -EINTR : 0;
}

static int mq_pingpong(struct bench_inst *b, void *seg)
{
	static double v[MQB_N][256];
	const bool use[MQB_N] = { true, true, true, true, false };
	long n = opt.iterations * 5;
	struct row *rows_[MQB_N];
	int rc = mq_series(b, seg, mqb_rtt, use, n, v);

	if (rc < 0)
		return rc;
	for (int t = 0; t < MQB_POSIXMQ + 1; t++) {
		rows_[t] = mq_row("pingpong-64B", (enum mqb_transport)t,
				  MQB_PING, n, v[t], "ns/rtt");
		if (t != MQB_PIPE) {
			snprintf(rows_[t]->ratio_to, sizeof(rows_[t]->ratio_to),
				 "pipe");
			rows_[t]->ratio = ratio_stats(v[t], v[MQB_PIPE],
						      opt.repeats);
		}
	}
	set_verdict(rows_[MQB_DYNSHM], rows_[MQB_DYNSHM]->ratio.med, 0.25);
	for (int t = 0; t < MQB_POSIXMQ + 1; t++)
		mq_print(rows_[t], "");
	return 0;
}

static int mq_streaming(struct bench_inst *b, void *seg)
{
	static double v[MQB_N][256];
	const bool use[MQB_N] = { true, true, true, false, true };
	long n = max_l(8, opt.iterations / 2);
	struct row *r, *dyn = NULL;
	int rc = mq_series(b, seg, mqb_stream, use, n, v);

	if (rc < 0)
		return rc;
	for (int t = 0; t < MQB_N; t++) {
		char extra[48];

		if (!use[t])
			continue;
		r = mq_row("stream-64KiB", (enum mqb_transport)t, MQB_STREAM,
			   n, v[t], "ns/msg");
		if (t == MQB_DYNSHM) {
			dyn = r;
			snprintf(r->ratio_to, sizeof(r->ratio_to),
				 "unix-socket");
			r->ratio = ratio_stats(v[t], v[MQB_SOCKET],
					       opt.repeats);
			set_verdict(r, r->ratio.med, 0.5);
		}
		snprintf(extra, sizeof(extra), "  %.2f GB/s",
			 r->s.med > 0 ? MQB_STREAM / r->s.med : 0);
		mq_print(r, extra);
	}
	/* how close to one memcpy of the same bytes: no target */
	r = mq_row("stream-vs-memcpy", MQB_DYNSHM, MQB_STREAM, n, v[MQB_DYNSHM],
		   "ns/msg");
	snprintf(r->ratio_to, sizeof(r->ratio_to), "memcpy/dynshm");
	r->ratio = ratio_stats(v[MQB_MEMCPY], v[MQB_DYNSHM], opt.repeats);
	mq_print(r, "  (fraction of memcpy bandwidth reached)");
	(void)dyn;
	return 0;
}

static int mq_idle_cpu(struct bench_inst *b, void *seg)
{
	static double v[256];
	uint64_t wait = opt.smoke ? 50000000u : 1000000000u;
	double ms[256];
	struct row *r;

	for (int i = 0; i < opt.repeats && !stop; i++) {
		int rc = mqb_idle(b->inst, seg, wait, &v[i]);

		if (rc < 0)
			return fail(rc, "mq: idle receiver");
		ms[i] = v[i] / 1e6;
	}
	if (stop)
		return -EINTR;
	r = mq_row("idle-receiver-cpu", MQB_DYNSHM, 0, 1, v, "cpu-ns/s");
	snprintf(r->ratio_to, sizeof(r->ratio_to), "1ms-per-s");
	r->ratio = stats_of(ms, opt.repeats);
	set_verdict(r, r->ratio.med, 1.0);
	mq_print(r, "");
	return 0;
}

int scenario_mq(void)
{
	struct bench_inst *b;
	dynshm_segment *seg = NULL;
	int rc;

	fprintf(tout, "\n== mq: dynshm message queue (posix segment, %d KiB "
		      "ring) vs pipe pair, Unix stream socket pair, POSIX "
		      "mq_open; two processes ==\n",
		MQB_RING / 1024);
	fprintf(tout, "   ratios: medians of per-repeat ratios [p10 .. p90]; "
		      "stream compares time per message (2x throughput = "
		      "0.5)\n");
	fprintf(tout, "%-16s %-12s %7s  %-30s %-22s %-10s %s\n", "operation",
		"transport", "iters", "median [p10 .. p90]", "ratio", "to",
		"verdict");
	rc = inst_open(DYNSHM_IMPL_POSIX, 0, 0, &b);
	if (rc < 0)
		return 0; /* counted and explained by inst_open */
	rc = dynshm_create(b->inst, mqb_segment_size(), 0, &seg);
	if (rc < 0) {
		fail(rc, "mq: segment");
	} else {
		void *base = dynshm_segment_address(seg);

		rc = mq_pingpong(b, base);
		if (rc != -EINTR)
			rc = mq_streaming(b, base);
		if (rc != -EINTR)
			rc = mq_idle_cpu(b, base);
		dynshm_detach(seg);
	}
	inst_destroy(b);
	return rc == -EINTR ? rc : 0;
}
