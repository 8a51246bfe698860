/* SPDX-License-Identifier: MIT */
/*
 * scenario_join.c - dsm_bench scenario "join": joining and leaving an
 * instance against fork + exit, with processes already joined, and what
 * an open + close does to the control lock (takes, and waits if any).
 */
#include "bench.h"

/* ---- scenario 5: process join / leave ------------------------------------ */

struct helpers {
	int quit[2];
	pid_t pids[512];
	int n;
	uint64_t token; /* the first helper's (dynshm_proc_self) */
};

/* A process that joins the instance and stays until told to go. */
static int helper_spawn(struct helpers *h, const char *dir)
{
	int ready[2];
	char c;
	pid_t pid;

	if (h->n >= 512)
		return -ENOSPC;
	if (pipe(ready) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dynshm_instance *inst;
		int rc;

		char msg[1 + sizeof(uint64_t)] = "x";
		uint64_t token = 0;

		close(h->quit[1]);
		close(ready[0]);
		rc = dynshm_instance_open(dir, NULL, 0, &inst);
		if (rc == 0)
			rc = dynshm_proc_self(inst, &token);
		if (rc == 0)
			msg[0] = 'j';
		memcpy(msg + 1, &token, sizeof(token));
		if (write(ready[1], msg, sizeof(msg)) < 0 || rc < 0)
			_exit(1);
		close(ready[1]);
		while (read(h->quit[0], &c, 1) != 0 && !stop)
			;
		dynshm_instance_close(inst);
		_exit(0);
	}
	close(ready[1]);
	h->pids[h->n++] = pid;
	{
		char msg[1 + sizeof(uint64_t)];
		ssize_t got;

		while ((got = read(ready[0], msg, sizeof(msg))) < 0 &&
		       errno == EINTR)
			;
		c = got == (ssize_t)sizeof(msg) ? msg[0] : 'x';
		if (c == 'j' && h->n == 1)
			memcpy(&h->token, msg + 1, sizeof(h->token));
	}
	close(ready[0]);
	return c == 'j' ? 0 : -EIO;
}

static void helpers_stop(struct helpers *h)
{
	if (h->quit[1] >= 0)
		close(h->quit[1]);
	h->quit[1] = -1;
	for (int i = 0; i < h->n; i++)
		wait_child(h->pids[i]);
	h->n = 0;
	if (h->quit[0] >= 0)
		close(h->quit[0]);
	h->quit[0] = -1;
}

struct join_ctx {
	const char *dir;
	double *child_ns;  /* shared with children: open+close time, */
	double *child_open; /* the open alone, */
	double *child_flt; /* and the minor page faults it took */
	long i;
};

static long minor_faults(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static int fork_exit(void *arg)
{
	pid_t pid = fork();

	(void)arg;
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	return wait_child(pid);
}

/*
 * A forked child's first call on the instance it inherited (the parent
 * maps a segment, so the child holds its references in a FORK entry until
 * this call adopts them: src/instance.c, fork), timed in the child.
 */
struct adopt_ctx {
	dynshm_instance *inst;
	double *child_ns;
	long i;
};

static int fork_adopt(void *arg)
{
	struct adopt_ctx *a = arg;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		uint64_t t0 = now_ns(), token = 0;
		int rc = dynshm_proc_self(a->inst, &token);

		a->child_ns[a->i] = (double)(now_ns() - t0);
		_exit(rc < 0 ? 1 : 0);
	}
	a->i++;
	return wait_child(pid);
}

struct alive_ctx {
	dynshm_instance *inst;
	uint64_t token;
};

/* One check of another process, as a queue would make it. */
static int check_alive(void *arg)
{
	struct alive_ctx *a = arg;

	return dynshm_proc_alive(a->inst, a->token) == 1 ? 0 : -EIO;
}

static int fork_join(void *arg)
{
	struct join_ctx *j = arg;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dynshm_instance *inst;
		long f0 = minor_faults();
		uint64_t t0;
		int rc;

		t0 = now_ns();
		rc = dynshm_instance_open(j->dir, NULL, 0, &inst);
		j->child_open[j->i] = (double)(now_ns() - t0);
		if (rc == 0)
			rc = dynshm_instance_close(inst);
		j->child_ns[j->i] = (double)(now_ns() - t0);
		j->child_flt[j->i] = (double)(minor_faults() - f0);
		_exit(rc < 0 ? 1 : 0);
	}
	j->i++;
	return wait_child(pid);
}

/*
 * A timed block of fork_join, and what its children did to the control
 * lock per open+close: the instance's counters before and after the
 * block.  Nobody else touches the instance meanwhile (the helpers wait on
 * a pipe; this process maps nothing, so its forks make no FORK entry).
 */
static int join_block(dynshm_instance *inst, struct join_ctx *jc, long nf,
		      double *ns, double *acq, double *waits, double *wait_ns)
{
	struct lock_counts c0, c1, d;
	int rc = lock_counts_read(inst, &c0);

	if (rc == 0)
		rc = run_block(fork_join, jc, nf, ns);
	if (rc == 0)
		rc = lock_counts_read(inst, &c1);
	if (rc < 0)
		return rc;
	d = lock_counts_since(&c0, &c1);
	*acq = (double)d.acquisitions / (double)nf;
	*waits = (double)d.waits / (double)nf;
	*wait_ns = (double)d.wait_ns / (double)nf;
	return 0;
}

static void join_print(const char *bname, long joined, const struct stats *s,
		       double base_med, const char *what)
{
	char st[80], g[16];

	fmt_stats(st, sizeof(st), s);
	if (base_med > 0)
		snprintf(g, sizeof(g), "%.2f", s->med / base_med);
	else
		snprintf(g, sizeof(g), "-");
	fprintf(tout, "%-7s %6ld  %-34s %-30s %s\n", bname, joined, what, st,
		g);
}

static struct row *join_row(const char *bname, const char *op, long joined,
			    const char *variant, long n, struct stats s)
{
	struct row *r = add_row("join", bname, op, 0);

	snprintf(r->param, sizeof(r->param), "joined_processes");
	r->param_value = joined;
	snprintf(r->variant, sizeof(r->variant), "%s", variant);
	snprintf(r->unit, sizeof(r->unit), "ns/op");
	r->iterations = n;
	r->s = s;
	return r;
}

/* Growth vs the first level, judged against the 1.25 tolerance. */
static void join_growth(struct row *r, double base, long first)
{
	if (base <= 0)
		return;
	snprintf(r->ratio_to, sizeof(r->ratio_to), "joined=%ld", first);
	r->ratio.med = r->s.med / base;
	r->ratio.p10 = r->s.p10 / base;
	r->ratio.p90 = r->s.p90 / base;
	set_verdict(r, r->ratio.med, 1.25);
}

/* Forks per timed block: each costs about a millisecond here. */
static long join_forks(void)
{
	return max_l(3, opt.iterations / 50);
}

/*
 * Issue 12's costs, beside fork + exit in the same run: one liveness check
 * of another process (dynshm_proc_alive), fork + exit while this process
 * maps a segment (each fork makes a FORK entry), and a forked child's
 * first call (adoption), timed in the child.
 */
static int fork_costs(struct bench_inst *b, struct helpers *h,
		      double *child_ns, long nf, long joined)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	struct alive_ctx ac = { .inst = b->inst, .token = h->token };
	struct adopt_ctx ad = { .inst = b->inst, .child_ns = child_ns };
	long nchecks = max_l(10, opt.iterations * 20);
	double vf[256], vm[256], vd[256], vk[256];
	struct stats sf, sm, sd, sk;
	dynshm_segment *seg = NULL;
	struct row *r;
	int rc = 0;

	if (!h->token) /* no helper at this level: check the instance itself */
		rc = dynshm_proc_self(b->inst, &ac.token);
	for (int k = 0; k < opt.repeats && rc == 0 && !stop; k++) {
		rc = run_block(fork_exit, NULL, nf, &vf[k]);
		if (rc == 0)
			rc = dynshm_create(b->inst, 4096, 0, &seg);
		if (rc == 0)
			rc = run_block(fork_exit, NULL, nf, &vm[k]);
		ad.i = 0;
		if (rc == 0)
			rc = run_block(fork_adopt, &ad, nf, &vd[k]);
		if (seg)
			dynshm_detach(seg);
		seg = NULL;
		vd[k] = stats_of(child_ns, (int)ad.i).med;
		if (rc == 0)
			rc = run_block(check_alive, &ac, nchecks, &vk[k]);
	}
	if (rc < 0 || stop)
		return stop ? -EINTR : rc;
	sf = stats_of(vf, opt.repeats);
	sm = stats_of(vm, opt.repeats);
	sd = stats_of(vd, opt.repeats);
	sk = stats_of(vk, opt.repeats);
	join_row(bname, "fork+exit, nothing mapped", joined, "baseline", nf,
		 sf);
	r = join_row(bname, "fork+exit, 1 segment mapped", joined,
		     "dynshm (FORK entry)", nf, sm);
	r->ratio = ratio_stats(vm, vf, opt.repeats);
	snprintf(r->ratio_to, sizeof(r->ratio_to), "fork+exit");
	join_row(bname, "child's first call (adoption)", joined, "dynshm", nf,
		 sd);
	join_row(bname, "check a process (dynshm_proc_alive)", joined,
		 h->token ? "another process" : "itself", nchecks, sk);
	join_print(bname, joined, &sf, -1, "fork+exit, nothing mapped");
	join_print(bname, joined, &sm, sf.med, "fork+exit, 1 segment mapped");
	join_print(bname, joined, &sd, -1, "child's first call (adoption)");
	join_print(bname, joined, &sk, -1, "check a process (proc_alive)");
	return 0;
}

static int join_backend(struct bench_inst *b, double *child_ns)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	struct helpers h = { .quit = { -1, -1 } };
	long nf = join_forks(), first = opt.joined[0];
	long nops = max_l(2, opt.iterations / 4);
	struct join_ctx jc = { .dir = b->dir, .child_ns = child_ns,
			       .child_open = child_ns + nf,
			       .child_flt = child_ns + 2 * nf };
	struct dynshm_ctx dc = { .inst = b->inst, .size = 4096 };
	double base[4] = { -1, -1, -1, -1 };
	double vf[256], vj[256], vc[256], va[256], vk[256], vp[256], vo[256];
	double vla[256], vlw[256], vln[256]; /* lock: takes, waits, ns */
	int rc;

	rc = dynshm_make_pinned(b->inst, 4096, &dc.target);
	if (rc == 0 && pipe(h.quit) < 0)
		rc = -errno;
	if (rc < 0)
		return fail(rc, "%s: join setup", bname);
	for (int i = 0; i < opt.njoined && rc == 0; i++) {
		long want = opt.joined[i];
		dynshm_instance_info info;
		struct stats sf, sj, sc, sa, sk, rf, sp, so, sla, slw, sln;
		struct row *r;

		while (rc == 0 && 1 + h.n < want && !stop)
			rc = helper_spawn(&h, b->dir);
		if (rc == 0)
			rc = dynshm_instance_info_get(b->inst, &info,
						      sizeof(info));
		if (rc < 0 || stop)
			break;
		for (int k = 0; k < opt.repeats && rc == 0; k++) {
			double med;

			jc.i = 0;
			if (k % 2 == 0) {
				rc = run_block(fork_exit, NULL, nf, &vf[k]);
				if (rc == 0)
					rc = join_block(b->inst, &jc, nf,
							&vj[k], &vla[k],
							&vlw[k], &vln[k]);
			} else {
				rc = join_block(b->inst, &jc, nf, &vj[k],
						&vla[k], &vlw[k], &vln[k]);
				if (rc == 0)
					rc = run_block(fork_exit, NULL, nf,
						       &vf[k]);
			}
			med = stats_of(child_ns, (int)jc.i).med;
			vc[k] = med;
			vp[k] = stats_of(jc.child_flt, (int)jc.i).med;
			vo[k] = stats_of(jc.child_open, (int)jc.i).med;
			if (rc == 0)
				rc = run_block(dynshm_attach_detach, &dc, nops,
					       &va[k]);
			if (rc == 0)
				rc = run_block(dynshm_create_destroy, &dc, nops,
					       &vk[k]);
			if (stop)
				rc = -EINTR;
		}
		if (rc < 0)
			break;
		sf = stats_of(vf, opt.repeats);
		sj = stats_of(vj, opt.repeats);
		sc = stats_of(vc, opt.repeats);
		sa = stats_of(va, opt.repeats);
		sk = stats_of(vk, opt.repeats);
		sp = stats_of(vp, opt.repeats);
		so = stats_of(vo, opt.repeats);
		sla = stats_of(vla, opt.repeats);
		slw = stats_of(vlw, opt.repeats);
		sln = stats_of(vln, opt.repeats);
		if (i == 0) {
			base[3] = so.med;
			base[0] = sc.med;
			base[1] = sa.med;
			base[2] = sk.med;
		}
		fprintf(tout, "%-7s %6s  processes joined now: %u\n", bname,
			"", info.processes);
		join_row(bname, "fork+exit", want, "baseline", nf, sf);
		r = join_row(bname, "fork+open+close+exit", want, "dynshm", nf,
			     sj);
		rf = ratio_stats(vj, vf, opt.repeats);
		r->ratio = rf;
		snprintf(r->ratio_to, sizeof(r->ratio_to), "fork+exit");
		r = join_row(bname, "open+close (child-timed)", want, "dynshm",
			     nf, sc);
		if (i > 0)
			join_growth(r, base[0], first);
		r = join_row(bname, "open (child-timed)", want, "dynshm", nf,
			     so);
		if (i > 0)
			join_growth(r, base[3], first);
		r = join_row(bname, "open+close (child-timed)", want,
			     "minor faults", nf, sp);
		snprintf(r->unit, sizeof(r->unit), "faults/op");
		r = join_row(bname, "open+close (lock counters)", want,
			     "lock acquisitions", nf, sla);
		snprintf(r->unit, sizeof(r->unit), "acq/op");
		r = join_row(bname, "open+close (lock counters)", want,
			     "lock waits", nf, slw);
		snprintf(r->unit, sizeof(r->unit), "waits/op");
		join_row(bname, "open+close (lock counters)", want,
			 "lock wait ns", nf, sln);
		r = join_row(bname, "attach+detach", want, "dynshm", nops,
			     sa);
		if (i > 0)
			join_growth(r, base[1], first);
		r = join_row(bname, "create+destroy", want, "dynshm", nops,
			     sk);
		if (i > 0)
			join_growth(r, base[2], first);
		join_print(bname, want, &sf, -1, "fork+exit (parent-timed)");
		join_print(bname, want, &sj, -1,
			   "fork+open+close+exit (parent)");
		fprintf(tout, "%-7s %6s  %-34s %.2f [%.2f .. %.2f]\n", "", "",
			"  ratio to fork+exit", rf.med, rf.p10, rf.p90);
		join_print(bname, want, &sc, i ? base[0] : -1,
			   "open+close (child-timed)");
		join_print(bname, want, &so, i ? base[3] : -1,
			   "  of which open (child-timed)");
		fprintf(tout, "%-7s %6s  %-34s %.0f [%.0f .. %.0f]\n", "", "",
			"  minor page faults in open+close", sp.med, sp.p10,
			sp.p90);
		fprintf(tout, "%-7s %6s  %-34s %.2f [%.2f .. %.2f] takes, "
			"%.2f waits, %.0f ns waiting\n", "", "",
			"  control lock in open+close", sla.med, sla.p10,
			sla.p90, slw.med, sln.med);
		join_print(bname, want, &sa, i ? base[1] : -1,
			   "attach+detach");
		join_print(bname, want, &sk, i ? base[2] : -1,
			   "create+destroy");
		if (i == opt.njoined - 1) /* helpers joined: one to check */
			rc = fork_costs(b, &h, child_ns, nf, want);
		fflush(tout);
	}
	helpers_stop(&h);
	dynshm_destroy(b->inst, dc.target);
	if (stop)
		return -EINTR;
	return rc < 0 ? fail(rc, "%s: join", bname) : 0;
}

int scenario_join(void)
{
	long nf = join_forks();
	double *child_ns;
	int rc = 0;

	child_ns = mmap(NULL, 3 * (size_t)nf * sizeof(double),
			PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
			0);
	if (child_ns == MAP_FAILED)
		return fail(-errno, "mmap");
	fprintf(tout, "\n== process join/leave: dynshm_instance_open + "
		      "dynshm_instance_close in a new (forked) child vs fork + "
		      "exit; %ld forks per block; growth = median / median "
		      "at %ld joined ==\n",
		nf, opt.joined[0]);
	fprintf(tout, "%-7s %6s  %-34s %-30s %s\n", "backend", "joined",
		"operation", "median [p10 .. p90]", "growth");
	for (int t = 1; t < 4 && rc != -EINTR; t++) {
		struct bench_inst *b;

		if (!(opt.backends & 1u << t))
			continue;
		if (inst_open((dynshm_impl_type)t, 0, 0, &b) < 0)
			continue;
		rc = join_backend(b, child_ns);
		inst_destroy(b);
	}
	munmap(child_ns, 3 * (size_t)nf * sizeof(double));
	return rc;
}
