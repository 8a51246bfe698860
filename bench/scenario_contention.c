/* SPDX-License-Identifier: MIT */
/*
 * scenario_contention.c - dsm_bench scenario "contention": processes
 * looping on one instance, with how often they took the control lock, how
 * many of those takes had to wait and for how long (the library's own
 * counters, read before the processes start and after they finish).
 */
#include "bench.h"

/* ---- scenario 3: contention ---------------------------------------------- */

struct child_result {
	uint64_t start, end, ops;
	int rc;
};

static void child_loop(dynshm_instance *inst, dynshm_handle shared, long n,
		       struct child_result *res)
{
	struct dynshm_ctx dc = { .inst = inst, .size = 4096, .target = shared };
	uint64_t ops = 0;
	int rc = 0;

	res->start = now_ns();
	for (long i = 0; i < n && !stop && rc == 0; i++) {
		rc = dynshm_create_destroy(&dc);
		if (rc == 0)
			rc = dynshm_attach_detach(&dc);
		if (rc == 0)
			ops += 4; /* create, detach+destroy, attach, detach */
	}
	res->end = now_ns();
	res->ops = ops;
	res->rc = rc;
}

/* Read until EOF or want bytes: how many came. */
static long read_bytes(int fd, long want)
{
	long got = 0;
	char c;

	while (got < want) {
		ssize_t r = read(fd, &c, 1);

		if (r == 1)
			got++;
		else if (r == 0 || errno != EINTR)
			break;
	}
	return got;
}

/*
 * One timed run of nproc processes; fills the per-run figures.  The
 * counters are instance-wide, so they are read while every child waits:
 * after all have joined and before they are let go, and after all have
 * finished their loops and before they close (a barrier on pipes).
 */
static int contention_run(struct bench_inst *b, dynshm_handle shared, long np,
			  long n, struct child_result *res, double *out)
{
	int ready[2], go[2], done[2], leave[2], rc = 0;
	pid_t pids[MAX_PROCS];
	long started = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0, ops = 0;
	struct lock_counts c0 = { 0 }, c1 = { 0 }, d;
	char c;

	if (pipe(ready) < 0 || pipe(go) < 0 || pipe(done) < 0 ||
	    pipe(leave) < 0)
		return -errno;
	memset(res, 0, (size_t)np * sizeof(*res));
	for (; started < np; started++) {
		pid_t pid = fork();

		if (pid < 0) {
			rc = -errno;
			break;
		}
		if (pid == 0) {
			dynshm_segment_info info;
			int crc;

			close(ready[0]);
			close(go[1]);
			close(done[0]);
			close(leave[1]);
			/* the first call joins this child as a process */
			crc = dynshm_stat(b->inst, shared, &info, sizeof(info));
			if (write(ready[1], "r", 1) < 0)
				crc = -errno;
			while (crc == 0 && read(go[0], &c, 1) < 0 &&
			       errno == EINTR && !stop)
				;
			if (crc == 0)
				child_loop(b->inst, shared, n,
					   &res[started]);
			else
				res[started].rc = crc;
			if (write(done[1], "d", 1) < 0 && res[started].rc == 0)
				res[started].rc = -errno;
			read_bytes(leave[0], 1); /* EOF: counters read */
			dynshm_instance_close(b->inst);
			_exit(res[started].rc < 0 ? 1 : 0);
		}
		pids[started] = pid;
	}
	close(ready[1]);
	close(done[1]);
	close(leave[0]);
	read_bytes(ready[0], started);
	close(ready[0]);
	if (rc == 0)
		rc = lock_counts_read(b->inst, &c0);
	close(go[1]); /* go */
	close(go[0]);
	read_bytes(done[0], started); /* every loop over (or a child gone) */
	close(done[0]);
	if (rc == 0)
		rc = lock_counts_read(b->inst, &c1);
	close(leave[1]);
	for (long i = 0; i < started; i++)
		if (wait_child(pids[i]) < 0 && rc == 0)
			rc = res[i].rc ? res[i].rc : -ECHILD;
	if (rc < 0)
		return stop ? -EINTR : rc;
	for (long i = 0; i < np; i++) {
		t0 = res[i].start < t0 ? res[i].start : t0;
		t1 = res[i].end > t1 ? res[i].end : t1;
		ops += res[i].ops;
	}
	if (stop)
		return -EINTR;
	if (!ops || t1 <= t0)
		return -EIO;
	d = lock_counts_since(&c0, &c1);
	/* ops/s, acq/op, waited fraction, wait ns/op, wait ns per wait */
	out[0] = (double)ops / ((double)(t1 - t0) / 1e9);
	out[1] = (double)d.acquisitions / (double)ops;
	out[2] = d.acquisitions ? (double)d.waits / (double)d.acquisitions : 0;
	out[3] = (double)d.wait_ns / (double)ops;
	out[4] = d.waits ? (double)d.wait_ns / (double)d.waits : 0;
	return 0;
}

/* The figures of one run (contention_run's out[]). */
#define NOUT 5

/* Loops per process; mmap creates are file-system work, ~10x dearer. */
static long contention_loops(dynshm_impl_type t)
{
	return max_l(2, opt.iterations / (t == DYNSHM_IMPL_MMAP ? 8 : 2));
}

static int contention_backend(struct bench_inst *b,
			      struct child_result *res)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	static const char *const names[NOUT] = {
		"ops/s", "lock acquisitions", "lock waited",
		"lock wait/op", "lock wait/waited",
	};
	static const char *const units[NOUT] = {
		"ops/s", "acq/op", "fraction", "ns/op", "ns/waited",
	};
	double v[NOUT][256];
	dynshm_handle shared;
	long n = contention_loops(b->backend);
	double base_ops = -1;
	int rc = dynshm_make_pinned(b->inst, 4096, &shared);

	if (rc < 0)
		return fail(rc, "%s: contention target", bname);
	for (int p = 0; p < opt.nprocs; p++) {
		long np = opt.procs[p];
		struct stats s[NOUT];
		char tp[96];

		for (int r = 0; r < opt.repeats; r++) {
			double out[NOUT] = { 0, 0, 0, 0, 0 };

			rc = contention_run(b, shared, np, n, res, out);
			if (rc < 0) {
				if (rc != -EINTR)
					fail(rc, "%s: contention, %ld "
						 "processes", bname, np);
				goto out;
			}
			for (int k = 0; k < NOUT; k++)
				v[k][r] = out[k];
		}
		for (int k = 0; k < NOUT; k++) {
			struct row *row = add_row("contention", bname,
						  "create+destroy+attach+"
						  "detach", 4096);

			s[k] = stats_of(v[k], opt.repeats);
			snprintf(row->param, sizeof(row->param), "processes");
			row->param_value = np;
			snprintf(row->variant, sizeof(row->variant), "%s",
				 k == 0 ? "dynshm" : names[k]);
			snprintf(row->unit, sizeof(row->unit), "%s", units[k]);
			row->iterations = n * 4;
			row->s = s[k];
			if (k == 0 && p > 0 && base_ops > 0) {
				snprintf(row->ratio_to, sizeof(row->ratio_to),
					 "ops/s@%ld", opt.procs[0]);
				row->ratio.med = s[k].med / base_ops;
				row->ratio.p10 = row->ratio.p90 = -1;
			}
		}
		if (p == 0)
			base_ops = s[0].med;
		snprintf(tp, sizeof(tp), "%.0f [%.0f .. %.0f]", s[0].med,
			 s[0].p10, s[0].p90);
		fprintf(tout,
			"%-7s %5ld  %-28s %-8.2f %6.2f  %8.2f%% %9.0f %11.0f\n",
			bname, np, tp, base_ops > 0 ? s[0].med / base_ops : 1,
			s[1].med, 100 * s[2].med, s[3].med, s[4].med);
		fflush(tout);
	}
	rc = 0;
out:
	dynshm_destroy(b->inst, shared);
	return rc;
}

int scenario_contention(void)
{
	struct child_result *res;
	long maxp = 1;
	int rc = 0;

	for (int i = 0; i < opt.nprocs; i++)
		maxp = max_l(maxp, opt.procs[i]);
	res = mmap(NULL, (size_t)maxp * sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return fail(-errno, "mmap");
	fprintf(tout, "\n== contention: N processes on one instance, each "
		      "looping create+destroy and attach+detach of a shared "
		      "pinned segment (4 KiB), %ld loops = %ld ops each (mmap: "
		      "%ld); %ld cores ==\n",
		contention_loops(DYNSHM_IMPL_POSIX),
		4 * contention_loops(DYNSHM_IMPL_POSIX),
		4 * contention_loops(DYNSHM_IMPL_MMAP),
		sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(tout, "   control lock: the library's counters "
		      "(dynshm_instance_info), all processes; waited = takes "
		      "that found it held; wait/waited = mean wait of those; "
		      "hold time is not measured\n");
	fprintf(tout, "%-7s %5s  %-28s %-8s %6s  %9s %9s %11s\n",
		"backend", "procs", "ops/s median [p10 .. p90]", "scaling",
		"acq/op", "waited", "wait/op", "wait/waited");
	for (int t = 1; t < 4 && rc != -EINTR; t++) {
		struct bench_inst *b;

		if (!(opt.backends & 1u << t))
			continue;
		if (inst_open((dynshm_impl_type)t, 0, 0, &b) < 0)
			continue;
		rc = contention_backend(b, res);
		inst_destroy(b);
	}
	munmap(res, (size_t)maxp * sizeof(*res));
	return rc;
}
