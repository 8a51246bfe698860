/* SPDX-License-Identifier: MIT */
/*
 * dsm_bench.c - what dynshm costs, measured against the system calls it
 * wraps, in the same run.
 *
 * A library that wraps shm_open or shmget is worth using only if the wrapper
 * costs little next to the kernel work it cannot avoid.  So every figure
 * here that can be compared is compared, in the same process and the same
 * minute, with the bare system-call sequence that does the same work
 * (docs/performance.md lists the sequences).  Raw and dynshm blocks
 * alternate (raw first in even repeats, dynshm first in odd ones) so that
 * frequency changes, page-cache state and noisy neighbours hit both; the
 * ratio reported is the median of the per-repeat ratios of adjacent blocks.
 * Absolute times are medians over repeats with p10/p90 and min/max.
 *
 * Scenarios (--scenario):
 *   create      dynshm_create + dynshm_detach (last detach destroys) vs raw
 *   attach      dynshm_attach + dynshm_detach of a pinned segment vs raw
 *   scale       attach + detach with 10 / 1,000 / 100,000 live segments
 *   contention  1, 2, 4 processes looping on one instance; how often
 *               the control lock was taken and waited for, and how long
 *               the waits were (the library's counters, dynshm_instance_info)
 *   join        dynshm_instance_open + close in a fresh child vs fork + exit,
 *               with 1 and 50 (and 250) processes already joined, and the
 *               control-lock takes and waits of an open + close; at the
 *               last level also one liveness check (dynshm_proc_alive),
 *               fork + exit while mapping a segment, and a forked child's
 *               first call (adoption)
 *   region      attach + detach and create + destroy of segments carved
 *               from a region (huge_pages = off) vs the posix backend
 *               and the raw posix system calls
 *   syscalls    each system call of the raw sequences timed alone, with
 *               the ones dynshm adds: where the time goes
 *   mq          the message queue (dynshm/facility.h) vs a pipe pair, a
 *               Unix stream socket pair and a POSIX message queue:
 *               64-byte ping-pong, 64 KiB streaming (and memcpy), and the
 *               CPU an idle receiver burns (bench_mq.c)
 *   area        dynshm_area_alloc + free (64 B, 4 KiB) vs glibc malloc +
 *               free; two processes allocating at once vs one
 *   hash        dynshm_hash_find with 1,000 vs 1,000,000 keys; two
 *               readers vs one
 *   named       dynshm_attach_named + dynshm_detach of one named segment
 *               while 10 / 1,000 / 100,000 named segments exist (carved
 *               from a region, not zero-filled: no memory is touched),
 *               next to attach by handle in the same blocks
 *
 * Everything made here is removed again, also after SIGINT/SIGTERM: the
 * handler only sets a flag, every loop checks it between operations, and
 * the normal clean-up path runs.  Instances live in private mkdtemp
 * directories under /tmp; raw objects are named "dsmbench.<pid>.*" (SysV:
 * keys 0x3d<pid><n>).  At the end the benchmark looks for anything it left
 * and fails (exit 1) if it finds something, which is what the smoke test
 * (tests/meson.build, --smoke) relies on.  Timings are never asserted.
 *
 * This file: main, the options, the result rows (CSV, verdicts, the target
 * summary) and the timing helpers.  Each scenario is a file of its own,
 * scenario_<name>.c; what they share is declared in bench.h.
 */
#include "bench.h"

const char *const scenario_names[N_SCENARIOS] = {
	"create", "attach", "scale", "contention", "join", "region",
	"syscalls", "mq", "area", "hash", "named",
};

struct bench_opt opt;
FILE *tout; /* the readable tables: stdout, or stderr with --csv */
volatile sig_atomic_t stop;
static int failures;

/* ---- small helpers ------------------------------------------------------- */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

__attribute__((format(printf, 2, 3))) int fail(int rc,
						      const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dsm_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (rc < 0)
		fprintf(stderr, ": %s (%s)", dynshm_strerror(rc),
			dynshm_last_error());
	fputc('\n', stderr);
	failures++;
	return rc < 0 ? rc : -EIO;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void fmt_time(char *buf, size_t len, double ns)
{
	if (ns < 0)
		snprintf(buf, len, "-");
	else if (ns < 10000)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 10e6)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else
		snprintf(buf, len, "%.2f ms", ns / 1e6);
}

void fmt_size(char *buf, size_t len, size_t size)
{
	if (size >= MIB && size % MIB == 0)
		snprintf(buf, len, "%zu MiB", size / MIB);
	else if (size >= KIB && size % KIB == 0)
		snprintf(buf, len, "%zu KiB", size / KIB);
	else
		snprintf(buf, len, "%zu B", size);
}

long max_l(long a, long b)
{
	return a > b ? a : b;
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double quantile(const double *sorted, int n, double q)
{
	double pos = q * (n - 1);
	int lo = (int)pos;

	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
}

struct stats stats_of(const double *v, int n)
{
	struct stats s = { -1, -1, -1, -1, -1, 0 };
	double *tmp;

	if (n <= 0 || !(tmp = malloc((size_t)n * sizeof(*tmp))))
		return s;
	memcpy(tmp, v, (size_t)n * sizeof(*tmp));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	s.n = n;
	s.med = quantile(tmp, n, 0.5);
	s.p10 = quantile(tmp, n, 0.1);
	s.p90 = quantile(tmp, n, 0.9);
	s.min = tmp[0];
	s.max = tmp[n - 1];
	free(tmp);
	return s;
}

struct stats ratio_stats(const double *num, const double *den, int n)
{
	double r[256];
	int k = 0;

	for (int i = 0; i < n && k < 256; i++)
		if (den[i] > 0)
			r[k++] = num[i] / den[i];
	return stats_of(r, k);
}

/* ---- results: CSV rows and the target summary ---------------------------- */

static struct row *rows;
static size_t nrows, rows_cap;

struct row *add_row(const char *scenario, const char *backend,
			   const char *operation, size_t size)
{
	struct row *r;

	if (nrows == rows_cap) {
		size_t cap = rows_cap ? rows_cap * 2 : 64;
		struct row *bigger = realloc(rows, cap * sizeof(*rows));

		if (!bigger) {
			static struct row dummy;

			return &dummy;
		}
		rows = bigger;
		rows_cap = cap;
	}
	r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->scenario, sizeof(r->scenario), "%s", scenario);
	snprintf(r->backend, sizeof(r->backend), "%s", backend);
	snprintf(r->operation, sizeof(r->operation), "%s", operation);
	r->size = size;
	r->s.med = r->s.p10 = r->s.p90 = r->s.min = r->s.max = -1;
	r->ratio = r->s;
	r->target = -1;
	r->param_value = -1;
	return r;
}

void set_verdict(struct row *r, double value, double target)
{
	r->target = target;
	snprintf(r->verdict, sizeof(r->verdict), "%s",
		 value < 0 ? "n/a" : value <= target ? "met" : "MISSED");
}

static void csv_num(FILE *f, double v, bool ratio)
{
	if (v >= 0 && ratio)
		fprintf(f, "%.4f", v);
	else if (v >= 0)
		fprintf(f, "%.6g", v);
	fputc(',', f);
}

static void write_csv(FILE *f)
{
	fprintf(f, "scenario,backend,operation,size_bytes,param,param_value,"
		   "variant,unit,iterations,repeats,median,p10,p90,min,max,"
		   "ratio_to,ratio_median,ratio_p10,ratio_p90,target,"
		   "verdict\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];

		fprintf(f, "%s,%s,%s,", r->scenario, r->backend, r->operation);
		if (r->size)
			fprintf(f, "%zu", r->size);
		fprintf(f, ",%s,", r->param);
		if (r->param_value >= 0)
			fprintf(f, "%ld", r->param_value);
		fprintf(f, ",%s,%s,", r->variant, r->unit);
		if (r->iterations > 0)
			fprintf(f, "%ld", r->iterations);
		fprintf(f, ",%d,", r->s.n);
		csv_num(f, r->s.med, false);
		csv_num(f, r->s.p10, false);
		csv_num(f, r->s.p90, false);
		csv_num(f, r->s.min, false);
		csv_num(f, r->s.max, false);
		fprintf(f, "%s,", r->ratio_to);
		csv_num(f, r->ratio.med, true);
		csv_num(f, r->ratio.p10, true);
		csv_num(f, r->ratio.p90, true);
		csv_num(f, r->target, true);
		fprintf(f, "%s\n", r->verdict);
	}
}

/* ---- the machine --------------------------------------------------------- */

static char machine[1024];

long read_long_file(const char *path)
{
	char buf[64];
	long v = -1;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			v = strtol(buf, NULL, 10);
		fclose(f);
	}
	return v;
}

static void cpu_model(char *buf, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, len, "unknown cpu");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s", colon + 2);
			break;
		}
	}
	fclose(f);
}

long sysv_segments_in_use(void)
{
	char line[512];
	long n = -1; /* the header line */
	FILE *f = fopen("/proc/sysvipc/shm", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n < 0 ? 0 : n;
}

/* The 1-minute load average: the machine may be shared. */
static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void describe_machine(void)
{
	struct utsname u;
	struct statvfs sv;
	char cpu[128], shm[32] = "?";

	cpu_model(cpu, sizeof(cpu));
	uname(&u);
	if (statvfs("/dev/shm", &sv) == 0)
		snprintf(shm, sizeof(shm), "%.1f GiB",
			 (double)sv.f_blocks * sv.f_frsize /
				 (1024.0 * 1024 * 1024));
	snprintf(machine, sizeof(machine),
		 "cores %ld (%s); kernel %s %s %s; /dev/shm %s; "
		 "kernel.shmmni %ld; glibc %s; build %s; load %.2f at start",
		 sysconf(_SC_NPROCESSORS_ONLN), cpu, u.sysname, u.release,
		 u.machine, shm, read_long_file("/proc/sys/kernel/shmmni"),
#ifdef __GLIBC__
		 gnu_get_libc_version(),
#else
		 "?",
#endif
		 DYNSHM_BENCH_BUILDTYPE, loadavg());
}

/* ---- timing -------------------------------------------------------------- */

int run_block(op_fn fn, void *arg, long n, double *ns_per_op)
{
	uint64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		int rc = fn(arg);

		if (rc < 0)
			return rc;
	}
	*ns_per_op = (double)(now_ns() - t0) / (double)n;
	return 0;
}

/*
 * Alternate blocks of a and b, repeats times each (a first in even repeats,
 * b first in odd ones), after one short untimed warm-up block of each.
 */
int measure_pair(op_fn a, void *a_arg, op_fn b, void *b_arg, long n,
			double *va, double *vb)
{
	double warm;
	int rc = run_block(a, a_arg, max_l(1, n / 10), &warm);

	if (rc == 0)
		rc = run_block(b, b_arg, max_l(1, n / 10), &warm);
	for (int r = 0; rc == 0 && r < opt.repeats; r++) {
		if (stop)
			return -EINTR;
		if (r % 2 == 0) {
			rc = run_block(a, a_arg, n, &va[r]);
			if (rc == 0)
				rc = run_block(b, b_arg, n, &vb[r]);
		} else {
			rc = run_block(b, b_arg, n, &vb[r]);
			if (rc == 0)
				rc = run_block(a, a_arg, n, &va[r]);
		}
	}
	return rc;
}

void fmt_stats(char *buf, size_t len, const struct stats *s)
{
	char m[16], lo[16], hi[16];

	fmt_time(m, sizeof(m), s->med);
	fmt_time(lo, sizeof(lo), s->p10);
	fmt_time(hi, sizeof(hi), s->p90);
	snprintf(buf, len, "%s [%s .. %s]", m, lo, hi);
}

void fmt_ratio(char *buf, size_t len, const struct stats *s)
{
	if (s->med < 0)
		snprintf(buf, len, "-");
	else if (s->med < 0.1) /* the region's: two decimals would hide it */
		snprintf(buf, len, "%.3g [%.3g .. %.3g]", s->med, s->p10,
			 s->p90);
	else
		snprintf(buf, len, "%.2f [%.2f .. %.2f]", s->med, s->p10,
			 s->p90);
}

int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* ---- the summary of targets ---------------------------------------------- */

static void print_targets(void)
{
	int met = 0, missed = 0;

	fprintf(tout, "\n== targets (medians, this run) ==\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		char sz[32] = "";

		if (!r->verdict[0] || strcmp(r->verdict, "n/a") == 0)
			continue;
		if (r->size)
			fmt_size(sz, sizeof(sz), r->size);
		fprintf(tout, "%-7s %-10s %-6s %-26s", r->verdict, r->scenario,
			r->backend, r->operation);
		if (r->param[0])
			fprintf(tout, " %s=%ld", r->param, r->param_value);
		else
			fprintf(tout, " %s", sz);
		fprintf(tout, ": %.2fx %s (limit %.2fx)\n", r->ratio.med,
			r->ratio_to, r->target);
		if (strcmp(r->verdict, "met") == 0)
			met++;
		else
			missed++;
	}
	fprintf(tout, "%d met, %d missed\n", met, missed);
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dsm_bench [options]\n"
		"  --iterations N     operations per timed block (default "
		"2000; fewer\n"
		"                     for large creates and for forks)\n"
		"  --repeats N        timed blocks per series (default 9, max "
		"255)\n"
		"  --scenario LIST    create,attach,syscalls,contention,join,"
		"region,scale,mq,area,hash,named\n"
		"                     (default all; syscalls times each "
		"call of the raw\n"
		"                     sequences alone)\n"
		"  --backend LIST     posix,sysv,mmap (default all)\n"
		"  --sizes LIST       segment sizes, e.g. 4k,1m,64m (default)\n"
		"  --live LIST        live segments for scale (default "
		"10,1000,100000)\n"
		"  --procs LIST       processes for contention (default "
		"1,2,4)\n"
		"  --joined LIST      processes joined for join (default "
		"1,50,250)\n"
		"  --csv [FILE]       also write CSV to FILE, or to stdout "
		"(tables\n"
		"                     then go to stderr)\n"
		"  --tmpdir DIR       where instance directories are made "
		"(default /tmp)\n"
		"  --smoke            tiny counts, for the test suite\n"
		"  --help\n");
}

static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	if (*end == 'k' || *end == 'K')
		v *= 1024, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1024 * 1024, end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_list(const char *s, long *out, int max)
{
	char buf[256], *tok, *save = NULL;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == max || parse_long(tok, &out[n]) < 0)
			return -1;
		n++;
	}
	return n ? n : -1;
}

static int parse_names(const char *s, const char *const *names, int nnames,
		       unsigned *mask, int shift)
{
	char buf[256], *tok, *save = NULL;

	*mask = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < nnames; i++)
			if (strcmp(tok, names[i]) == 0)
				break;
		if (i == nnames) {
			fprintf(stderr, "dsm_bench: unknown name '%s'\n", tok);
			return -1;
		}
		*mask |= 1u << (i + shift);
	}
	return *mask ? 0 : -1;
}

static void defaults(void)
{
	opt.iterations = 2000;
	opt.repeats = 9;
	opt.scenarios = SC_DEFAULT;
	opt.backends = 1u << DYNSHM_IMPL_POSIX | 1u << DYNSHM_IMPL_SYSV |
		       1u << DYNSHM_IMPL_MMAP;
	opt.sizes[0] = 4 * KIB;
	opt.sizes[1] = MIB;
	opt.sizes[2] = 64 * MIB;
	opt.nsizes = 3;
	opt.live[0] = 10;
	opt.live[1] = 1000;
	opt.live[2] = 100000;
	opt.nlive = 3;
	opt.procs[0] = 1;
	opt.procs[1] = 2;
	opt.procs[2] = 4;
	opt.nprocs = 3;
	opt.joined[0] = 1;
	opt.joined[1] = 50;
	opt.joined[2] = 250;
	opt.njoined = 3;
	opt.tmpdir = "/tmp";
}

static void smoke(void)
{
	opt.smoke = true;
	opt.iterations = 4;
	opt.repeats = 2;
	opt.sizes[0] = 4 * KIB;
	opt.sizes[1] = MIB;
	opt.nsizes = 2;
	opt.live[0] = 2;
	opt.live[1] = 20;
	opt.nlive = 2;
	opt.procs[0] = 1;
	opt.procs[1] = 2;
	opt.nprocs = 2;
	opt.joined[0] = 1;
	opt.joined[1] = 3;
	opt.njoined = 2;
}

static int parse_args(int argc, char **argv)
{
	static const char *const backends[] = { "posix", "sysv", "mmap" };
	long list[MAX_LIST];
	int n;

	defaults();
	for (int i = 1; i < argc; i++) /* --smoke first: others override */
		if (strcmp(argv[i], "--smoke") == 0)
			smoke();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long x;

		if (strcmp(a, "--smoke") == 0)
			continue;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--csv") == 0) {
			opt.csv = v && v[0] != '-' ? argv[++i] : "-";
			if (v && strcmp(v, "-") == 0)
				i++;
			continue;
		}
		if (strncmp(a, "--csv=", 6) == 0) {
			opt.csv = a + 6;
			continue;
		}
		if (!v)
			goto bad;
		i++;
		if (strcmp(a, "--iterations") == 0 && parse_long(v, &x) == 0)
			opt.iterations = x;
		else if (strcmp(a, "--repeats") == 0 &&
			 parse_long(v, &x) == 0 && x <= 255)
			opt.repeats = (int)x;
		else if (strcmp(a, "--scenario") == 0 ||
			 strcmp(a, "--scenarios") == 0) {
			if (parse_names(v, scenario_names, N_SCENARIOS,
					&opt.scenarios, 0) < 0)
				goto bad;
		} else if (strcmp(a, "--backend") == 0 ||
			   strcmp(a, "--backends") == 0) {
			if (parse_names(v, backends, 3, &opt.backends, 1) < 0)
				goto bad;
		} else if (strcmp(a, "--sizes") == 0 &&
			   (n = parse_list(v, list, MAX_LIST)) > 0) {
			for (int k = 0; k < n; k++)
				opt.sizes[k] = (size_t)list[k];
			opt.nsizes = n;
		} else if (strcmp(a, "--live") == 0 &&
			   (n = parse_list(v, opt.live, MAX_LIST)) > 0)
			opt.nlive = n;
		else if (strcmp(a, "--procs") == 0 &&
			 (n = parse_list(v, opt.procs, MAX_LIST)) > 0)
			opt.nprocs = n;
		else if (strcmp(a, "--joined") == 0 &&
			 (n = parse_list(v, opt.joined, MAX_LIST)) > 0)
			opt.njoined = n;
		else if (strcmp(a, "--tmpdir") == 0 && v[0] == '/')
			opt.tmpdir = v;
		else
			goto bad;
	}
	for (int k = 0; k < opt.nprocs; k++)
		if (opt.procs[k] > MAX_PROCS)
			goto bad;
	for (int k = 0; k < opt.njoined; k++)
		if (opt.joined[k] > 512)
			goto bad;
	return 0;
bad:
	usage(stderr);
	return -1;
}

/* ---- main ---------------------------------------------------------------- */

static void print_header(FILE *f, const char *lead)
{
	char list[128] = "";

	for (int i = 0; i < N_SCENARIOS; i++)
		if (opt.scenarios & 1u << i)
			snprintf(list + strlen(list),
				 sizeof(list) - strlen(list), "%s%s",
				 list[0] ? "," : "", scenario_names[i]);
	fprintf(f, "%sdynshm benchmark (dsm_bench)\n", lead);
	fprintf(f, "%smachine: %s\n", lead, machine);
	fprintf(f, "%srun: iterations %ld, repeats %d, scenarios %s%s\n",
		lead, opt.iterations, opt.repeats, list,
		opt.smoke ? " (smoke: figures meaningless)" : "");
	fprintf(f, "%sfigures: medians over repeats, [p10 .. p90]; ratios "
		   "are medians of per-repeat ratios of adjacent blocks\n",
		lead);
}

static uint64_t section_start;

static void section_done(const char *what)
{
	uint64_t t = now_ns();

	fprintf(tout, "   (%s: %.1f s)\n", what,
		(double)(t - section_start) / 1e9);
	fflush(tout);
	section_start = t;
}

static int run(void)
{
	struct bench_inst *by_backend[4] = { NULL, NULL, NULL, NULL };
	int rc = 0;

	section_start = now_ns();

	if (opt.scenarios & (SC_CREATE | SC_ATTACH)) {
		for (int t = 1; t < 4; t++)
			if (opt.backends & 1u << t &&
			    inst_open((dynshm_impl_type)t, 0, 0, &by_backend[t]) < 0)
				by_backend[t] = NULL;
		if (opt.scenarios & SC_CREATE) {
			rc = scenario_pairs(by_backend, true);
			section_done("create");
		}
		if (rc != -EINTR && opt.scenarios & SC_ATTACH) {
			rc = scenario_pairs(by_backend, false);
			section_done("attach");
		}
		for (int t = 1; t < 4; t++)
			if (by_backend[t])
				inst_destroy(by_backend[t]);
	}
	if (rc != -EINTR && opt.scenarios & SC_SYSCALLS) {
		section_start = now_ns();
		rc = scenario_syscalls();
		section_done("syscalls");
	}
	if (rc != -EINTR && opt.scenarios & SC_CONTENTION) {
		rc = scenario_contention();
		section_done("contention");
	}
	if (rc != -EINTR && opt.scenarios & SC_REGION) {
		section_start = now_ns();
		rc = scenario_region();
		section_done("region");
	}
	if (rc != -EINTR && opt.scenarios & SC_JOIN) {
		section_start = now_ns();
		rc = scenario_join();
		section_done("join");
	}
	if (rc != -EINTR && opt.scenarios & SC_MQ) {
		section_start = now_ns();
		rc = scenario_mq();
		section_done("mq");
	}
	if (rc != -EINTR && opt.scenarios & SC_AREA) { /* issue 15 */
		section_start = now_ns();
		rc = scenario_area();
		section_done("area");
	}
	if (rc != -EINTR && opt.scenarios & SC_HASH) {
		section_start = now_ns();
		rc = scenario_hash();
		section_done("hash");
	}
	if (rc != -EINTR && opt.scenarios & SC_NAMED) {
		section_start = now_ns();
		rc = scenario_named();
		section_done("named, including filling and destroying");
	}
	/* last: 100,000 mmap files keep an ext4 /tmp busy for a while */
	if (rc != -EINTR && opt.scenarios & SC_SCALE) {
		section_start = now_ns();
		rc = scenario_scale();
		section_done("scale, including filling and destroying");
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	uint64_t t0 = now_ns();
	int rc, left;

	if (parse_args(argc, argv) < 0)
		return 2;
	tout = opt.csv && strcmp(opt.csv, "-") == 0 ? stderr : stdout;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: waits see EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(raw_prefix, sizeof(raw_prefix), "dsmbench.%016llx.",
		 (unsigned long long)getpid());
	raw_key_base = 0x3d000000u | ((unsigned)getpid() & 0xfff) << 12;
	describe_machine();
	print_header(tout, "");
	rc = open_raw_dir();
	if (rc == 0)
		rc = run();
	cleanup_all();
	left = verify_clean();
	if (left)
		fprintf(stderr, "dsm_bench: %d object(s) left behind\n", left);
	else
		fprintf(tout, "\ncleanup: nothing left behind (instances, "
			      "/dev/shm, SysV, %s)\n",
			opt.tmpdir);
	if (opt.scenarios & (SC_CREATE | SC_ATTACH | SC_SCALE | SC_JOIN | SC_MQ))
		print_targets();
	fprintf(tout, "total time %.1f s, load %.2f at the end%s\n",
		(double)(now_ns() - t0) / 1e9, loadavg(),
		stop ? " (interrupted)" : "");
	if (opt.csv) {
		FILE *f = strcmp(opt.csv, "-") == 0 ? stdout
						    : fopen(opt.csv, "w");

		if (!f) {
			fail(-errno, "cannot write %s", opt.csv);
		} else {
			print_header(f, "# ");
			write_csv(f);
			if (f != stdout)
				fclose(f);
		}
	}
	if (stop)
		return 130;
	return left || failures ? 1 : 0;
}
