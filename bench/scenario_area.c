/* SPDX-License-Identifier: MIT */
/*
 * scenario_area.c - dsm_bench scenario "area" (issue 15): the shared
 * allocator against glibc malloc, and two processes against one (the
 * comparison scenario_hash.c uses too).
 */
#include "bench.h"

/* ---- scenarios area and hash (issue 15) ---------------------------------- */
/*
 * area: dynshm_area_alloc + dynshm_area_free of 64 B and 4 KiB against
 * glibc malloc + free in the same process (target: at most 2x), and the
 * throughput of two processes allocating at once against one (target: at
 * least 1.6x).  hash: lookups of present keys in a table of 1,000 and of
 * 1,000,000 keys (target: the large one at most 1.25x the small one), and
 * two processes looking up at once against one (at least 1.6x).  Every
 * block writes one byte of what it allocates so that the compiler cannot
 * drop a malloc/free pair.
 */
static int area_alloc_free(void *arg)
{
	struct area_ctx *c = arg;
	dynshm_area_ptr p;
	int rc = dynshm_area_alloc(c->area, c->size, 0, &p);

	if (rc < 0)
		return rc;
	*(volatile char *)dynshm_area_get(c->area, p) = 1;
	return dynshm_area_free(c->area, p);
}

static int malloc_free(void *arg)
{
	struct area_ctx *c = arg;
	char *volatile p = malloc(c->size);

	if (!p)
		return -ENOMEM;
	p[0] = 1;
	free(p);
	return 0;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * np processes run fn n times each, started together once each has run
 * n / 10 untimed warm-up operations (its first faults on the shared pages,
 * its claim of an allocation cache) and said so; *ops_per_s: all
 * their operations over the span from the first start to the last end;
 * *ops_per_cpu_s: the same per second of CPU time they used, which other
 * load on the machine does not change (only contention inside does).
 */
static int par_run(int np, op_fn fn, struct area_ctx *c, long n,
		   double *ops_per_s, double *ops_per_cpu_s)
{
	uint64_t *t = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int go[2], ready[2], rc = 0;
	pid_t pids[2];
	uint64_t t0 = UINT64_MAX, t1 = 0, cpu = 0;

	if (t == MAP_FAILED)
		return -errno;
	if (pipe(go) < 0) {
		munmap(t, 4096);
		return -errno;
	}
	if (pipe(ready) < 0) {
		rc = -errno;
		close(go[0]);
		close(go[1]);
		munmap(t, 4096);
		return rc;
	}
	fflush(NULL);
	for (int i = 0; i < np; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char ch = 'r';
			int crc = 0;

			close(go[1]);
			close(ready[0]);
			c->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
			for (long k = 0; k < max_l(1, n / 10) && crc == 0; k++)
				crc = fn(c);
			if (crc < 0 || write(ready[1], &ch, 1) != 1)
				_exit(1);
			close(ready[1]); /* one that fails must not block */
			while (read(go[0], &ch, 1) < 0 && errno == EINTR)
				;
			t[2 * i] = now_ns();
			t[8 + i] = cpu_ns();
			for (long k = 0; k < n && crc == 0; k++)
				crc = fn(c);
			t[2 * i + 1] = now_ns();
			t[8 + i] = cpu_ns() - t[8 + i];
			_exit(crc < 0 ? 1 : 0);
		}
	}
	close(go[0]);
	close(ready[1]);
	for (int i = 0; i < np; i++) { /* every child warm: then go */
		char ch;
		ssize_t got;

		while ((got = read(ready[0], &ch, 1)) < 0 && errno == EINTR)
			;
		if (got <= 0)
			break; /* a child failed: wait_child says so */
	}
	close(ready[0]);
	close(go[1]);
	for (int i = 0; i < np; i++)
		if (pids[i] > 0 && wait_child(pids[i]) < 0)
			rc = -ECHILD;
	for (int i = 0; i < np && rc == 0; i++) {
		t0 = t[2 * i] < t0 ? t[2 * i] : t0;
		t1 = t[2 * i + 1] > t1 ? t[2 * i + 1] : t1;
		cpu += t[8 + i];
	}
	munmap(t, 4096);
	if (rc == 0) {
		*ops_per_s = (double)np * (double)n / ((double)(t1 - t0) / 1e9);
		*ops_per_cpu_s = (double)np * (double)n / ((double)cpu / 1e9);
	}
	return rc;
}

/* Throughput of two processes over one, per repeat; a row with >= 1.6. */
int scaling_row(const char *scenario, const char *operation,
		       size_t size, op_fn fn, struct area_ctx *c, long n)
{
	double one[256], two[256], cone[256], ctwo[256];
	struct stats cpu;
	struct row *r;
	int rc = 0;

	for (int i = 0; i < opt.repeats && rc == 0 && !stop; i++) {
		/* alternate which goes first, as measure_pair does */
		if (i % 2 == 0)
			rc = par_run(1, fn, c, n, &one[i], &cone[i]);
		if (rc == 0)
			rc = par_run(2, fn, c, n, &two[i], &ctwo[i]);
		if (rc == 0 && i % 2 == 1)
			rc = par_run(1, fn, c, n, &one[i], &cone[i]);
	}
	if (rc < 0 || stop)
		return stop ? -EINTR : fail(rc, "%s: %s", scenario, operation);
	r = add_row(scenario, "posix", operation, size);
	snprintf(r->param, sizeof(r->param), "processes");
	r->param_value = 2;
	r->iterations = n;
	snprintf(r->unit, sizeof(r->unit), "ops/s");
	r->s = stats_of(two, opt.repeats);
	r->ratio = ratio_stats(two, one, opt.repeats);
	snprintf(r->ratio_to, sizeof(r->ratio_to), "1 process");
	r->target = 1.6;
	snprintf(r->verdict, sizeof(r->verdict), "%s",
		 r->ratio.med >= 1.6 ? "met" : "MISSED");
	/* 2 x the per-CPU-second rate ratio: what two idle cores would give */
	cpu = ratio_stats(ctwo, cone, opt.repeats);
	fprintf(tout, "  %-28s 2 procs %10.0f ops/s  %.2fx one  (target >= "
		"1.60) %s; per CPU second %.2fx one, so %.2fx on two idle "
		"cores\n", operation, r->s.med, r->ratio.med, r->verdict,
		cpu.med, 2 * cpu.med);
	return 0;
}

static int area_vs_malloc(struct area_ctx *c, size_t size, long n)
{
	double va[256], vb[256];
	struct row *r;
	int rc;

	c->size = size;
	rc = measure_pair(area_alloc_free, c, malloc_free, c, n, va, vb);
	if (rc < 0)
		return rc == -EINTR ? rc : fail(rc, "area: alloc+free");
	r = add_row("area", "posix", "alloc+free", size);
	r->iterations = n;
	snprintf(r->unit, sizeof(r->unit), "ns/op");
	r->s = stats_of(va, opt.repeats);
	r->ratio = ratio_stats(va, vb, opt.repeats);
	snprintf(r->ratio_to, sizeof(r->ratio_to), "malloc+free");
	set_verdict(r, r->ratio.med, 2.0);
	fprintf(tout, "  alloc+free %5zu B   area %7.1f ns  malloc %7.1f ns  "
		"%.2fx  (target <= 2.00) %s\n", size, r->s.med,
		stats_of(vb, opt.repeats).med, r->ratio.med, r->verdict);
	return 0;
}

int scenario_area(void)
{
	long n = opt.smoke ? 1000 : 2000000;
	struct area_ctx c = { 0 };
	struct bench_inst *b;
	int rc = inst_open(DYNSHM_IMPL_POSIX, 0, 0, &b);

	if (rc < 0)
		return rc;
	fprintf(tout, "\n== area: dynshm_area_alloc + free vs glibc malloc + "
		"free, %ld ops per block ==\n", n);
	rc = dynshm_area_create(b->inst, 0, 0, &c.area);
	if (rc < 0) {
		inst_destroy(b);
		return fail(rc, "area: create");
	}
	rc = area_vs_malloc(&c, 64, n);
	if (rc == 0)
		rc = area_vs_malloc(&c, 4096, n);
	c.size = 64;
	if (rc == 0)
		rc = scaling_row("area", "alloc+free", 64, area_alloc_free,
				 &c, n);
	dynshm_area_destroy(c.area);
	inst_destroy(b);
	return rc;
}
