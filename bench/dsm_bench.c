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
 *   contention  1, 2, 4 processes looping on one instance; control-lock
 *               hold time measured by interposing pthread_mutex_lock
 *   join        dynshm_instance_open + close in a fresh child vs fork + exit,
 *               with 1 and 50 (and 250) processes already joined; at the
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
 */
#include "bench_mq.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#else
#define HAVE_RDTSC 0
#endif

#ifndef DYNSHM_BENCH_BUILDTYPE
#define DYNSHM_BENCH_BUILDTYPE "unknown"
#endif

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define MAX_LIST 8
#define MAX_PROCS 64
#define MAX_INSTANCES 32
#define MAX_RAW 8

enum scenario {
	SC_CREATE = 1u << 0,
	SC_ATTACH = 1u << 1,
	SC_SCALE = 1u << 2,
	SC_CONTENTION = 1u << 3,
	SC_JOIN = 1u << 4,
	SC_REGION = 1u << 5,
	SC_SYSCALLS = 1u << 6,
	SC_MQ = 1u << 7,
	SC_AREA = 1u << 8, /* issue 15 */
	SC_HASH = 1u << 9,
	SC_NAMED = 1u << 10,
	SC_DEFAULT = (1u << 11) - 1,
};

#define N_SCENARIOS 11
static const char *const scenario_names[N_SCENARIOS] = {
	"create", "attach", "scale", "contention", "join", "region",
	"syscalls", "mq", "area", "hash", "named",
};

static struct {
	long iterations; /* operations per timed block (4 KiB sizes) */
	int repeats;	 /* timed blocks per series */
	unsigned scenarios;
	unsigned backends; /* bit per dynshm_impl_type */
	size_t sizes[MAX_LIST];
	int nsizes;
	long live[MAX_LIST];
	int nlive;
	long procs[MAX_LIST];
	int nprocs;
	long joined[MAX_LIST];
	int njoined;
	const char *csv; /* NULL: none; "-": stdout */
	const char *tmpdir;
	bool smoke;
} opt;

static FILE *tout; /* the readable tables: stdout, or stderr with --csv */
static volatile sig_atomic_t stop;
static int failures;

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

__attribute__((format(printf, 2, 3))) static int fail(int rc,
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

static void fmt_size(char *buf, size_t len, size_t size)
{
	if (size >= MIB && size % MIB == 0)
		snprintf(buf, len, "%zu MiB", size / MIB);
	else if (size >= KIB && size % KIB == 0)
		snprintf(buf, len, "%zu KiB", size / KIB);
	else
		snprintf(buf, len, "%zu B", size);
}

static long max_l(long a, long b)
{
	return a > b ? a : b;
}

/* ---- statistics ---------------------------------------------------------- */

struct stats {
	double med, p10, p90, min, max;
	int n;
};

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

static struct stats stats_of(const double *v, int n)
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

static struct stats ratio_stats(const double *num, const double *den, int n)
{
	double r[256];
	int k = 0;

	for (int i = 0; i < n && k < 256; i++)
		if (den[i] > 0)
			r[k++] = num[i] / den[i];
	return stats_of(r, k);
}

/* ---- results: CSV rows and the target summary ---------------------------- */

struct row {
	char scenario[16], backend[8], operation[40], param[20];
	char variant[20], unit[12], ratio_to[24], verdict[8];
	size_t size;
	long param_value, iterations;
	struct stats s, ratio;
	double target;
};

static struct row *rows;
static size_t nrows, rows_cap;

static struct row *add_row(const char *scenario, const char *backend,
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

static void set_verdict(struct row *r, double value, double target)
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

static long read_long_file(const char *path)
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

static long sysv_segments_in_use(void)
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

/* ---- control-lock profiling by interposition ------------------------------
 *
 * The control lock is the one robust mutex dynshm takes (control.h); the
 * per-instance mutex is recursive and private.  libdynshm.so calls
 * pthread_mutex_lock through its PLT, so these definitions in the
 * executable take those calls; the real functions are found with
 * dlsym(RTLD_NEXT).  While lp_on is set, every acquisition of a robust
 * mutex is counted and timed: wait = time inside pthread_mutex_lock, hold =
 * from its return to the entry of pthread_mutex_unlock.  Both time stamps
 * are taken inside the held region, so a hold is overstated by one timer
 * read (subtracted: lp_overhead) and lengthened by two.  Nothing in src/
 * changes.  Off, the wrappers cost one predictable branch.
 */

static int (*real_lock)(pthread_mutex_t *);
static int (*real_unlock)(pthread_mutex_t *);
static volatile int lp_on;
static double ticks_per_ns = 1.0;
static double lp_overhead; /* ticks of one timer read */

struct lockprof {
	uint64_t acquisitions, hold, wait, acquired_at, longest;
};
static struct lockprof lp;

static uint64_t ticks(void)
{
#if HAVE_RDTSC
	return __rdtsc();
#else
	return now_ns();
#endif
}

static void lp_resolve(void)
{
	real_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
						      "pthread_mutex_lock");
	real_unlock = (int (*)(pthread_mutex_t *))dlsym(
		RTLD_NEXT, "pthread_mutex_unlock");
	if (!real_lock || !real_unlock) {
		fprintf(stderr, "dsm_bench: cannot find pthread_mutex_lock\n");
		abort();
	}
}

static bool is_robust(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
	return (m->__data.__kind & 16) != 0; /* PTHREAD_MUTEX_ROBUST_NP */
#else
	(void)m;
	return false;
#endif
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
	uint64_t t0, t1;
	int rc;

	if (!real_lock)
		lp_resolve();
	if (!lp_on || !is_robust(m))
		return real_lock(m);
	t0 = ticks();
	rc = real_lock(m);
	t1 = ticks();
	if (rc == 0 || rc == EOWNERDEAD) {
		lp.acquisitions++;
		lp.wait += t1 - t0;
		lp.acquired_at = t1;
	}
	return rc;
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
	if (!real_unlock)
		lp_resolve();
	if (lp_on && lp.acquired_at && is_robust(m)) {
		uint64_t held = ticks() - lp.acquired_at;

		lp.hold += held;
		lp.longest = held > lp.longest ? held : lp.longest;
		lp.acquired_at = 0;
	}
	return real_unlock(m);
}

/* Ticks per nanosecond and the cost of one timer read. */
static void lp_calibrate(void)
{
	uint64_t t0 = now_ns(), c0 = ticks(), t1, c1;
	double d[64];

	while ((t1 = now_ns()) - t0 < 20000000)
		;
	c1 = ticks();
	ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	if (ticks_per_ns <= 0)
		ticks_per_ns = 1;
	for (int i = 0; i < 64; i++) {
		uint64_t a = ticks(), b = ticks();

		d[i] = (double)(b - a);
	}
	lp_overhead = stats_of(d, 64).med;
}

/* ---- clean-up registry --------------------------------------------------- */

struct bench_inst {
	dynshm_instance *inst; /* NULL once destroyed */
	dynshm_impl_type backend;
	bool region; /* has a region: a SysV object whatever the backend */
	uint64_t id;
	char dir[PATH_MAX];
};

static struct bench_inst insts[MAX_INSTANCES];
static int ninsts;

struct raw_obj {
	dynshm_impl_type backend;
	char name[PATH_MAX]; /* posix "/name"; mmap: base name in raw_dir */
	int shmid;	/* sysv */
	bool live;
};

static struct raw_obj raws[MAX_RAW];
static char raw_dir[PATH_MAX]; /* the mmap raw sequences' directory */
static int raw_dirfd = -1;
static char raw_prefix[32];    /* "dsmbench.<16 hex pid>." */
static unsigned raw_key_base;  /* SysV keys: 0x3d000000 | pid << 12 */

/* region: bytes of region (whole MiB, huge_pages = off), 0 for none. */
static int inst_open(dynshm_impl_type backend, uint32_t max_segments,
		     size_t region, struct bench_inst **out)
{
	struct bench_inst *b;
	dynshm_config *cfg = NULL;
	dynshm_instance_info info;
	char num[24];
	int rc;

	if (ninsts == MAX_INSTANCES)
		return fail(-ENOSPC, "too many instances");
	b = &insts[ninsts];
	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "%s/dsm-bench.XXXXXX", opt.tmpdir);
	if (!mkdtemp(b->dir))
		return fail(-errno, "mkdtemp %s", b->dir);
	ninsts++;
	b->backend = backend;
	rc = dynshm_config_new(&cfg);
	if (rc == 0)
		rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
				    dynshm_impl_type_name(backend));
	if (rc == 0 && max_segments) {
		snprintf(num, sizeof(num), "%u", max_segments);
		rc = dynshm_config_set(cfg, "max_segments", num);
	}
	if (rc == 0 && region) {
		b->region = true;
		snprintf(num, sizeof(num), "%zuMB", region / MIB);
		rc = dynshm_config_set(cfg, "min_dynamic_shared_memory", num);
		if (rc == 0)
			rc = dynshm_config_set(cfg, "huge_pages", "off");
	}
	if (rc == 0)
		rc = dynshm_instance_open(b->dir, cfg, 0, &b->inst);
	dynshm_config_free(cfg);
	if (rc == 0)
		rc = dynshm_instance_info_get(b->inst, &info, sizeof(info));
	if (rc < 0) {
		if (b->inst) {
			dynshm_instance_destroy(b->inst);
			b->inst = NULL;
		}
		rmdir(b->dir);
		return fail(rc, "cannot open a %s instance in %s",
			    dynshm_impl_type_name(backend), b->dir);
	}
	b->id = info.instance_id;
	*out = b;
	return 0;
}

static void inst_destroy(struct bench_inst *b)
{
	int rc;

	if (!b->inst)
		return;
	rc = dynshm_instance_destroy(b->inst);
	b->inst = NULL;
	if (rc < 0)
		fail(rc, "dynshm_instance_destroy %s", b->dir);
	rmdir(b->dir); /* normally gone already */
}

static struct raw_obj *raw_track(dynshm_impl_type backend, const char *name,
				 int shmid)
{
	for (int i = 0; i < MAX_RAW; i++) {
		if (raws[i].live)
			continue;
		raws[i].backend = backend;
		snprintf(raws[i].name, sizeof(raws[i].name), "%s", name);
		raws[i].shmid = shmid;
		raws[i].live = true;
		return &raws[i];
	}
	return NULL;
}

static void raw_remove(struct raw_obj *o)
{
	if (!o || !o->live)
		return;
	switch (o->backend) {
	case DYNSHM_IMPL_POSIX:
		shm_unlink(o->name);
		break;
	case DYNSHM_IMPL_SYSV:
		shmctl(o->shmid, IPC_RMID, NULL);
		break;
	case DYNSHM_IMPL_MMAP:
		unlinkat(raw_dirfd, o->name, 0);
		break;
	default:
		break;
	}
	o->live = false;
}

static void cleanup_all(void)
{
	for (int i = 0; i < MAX_RAW; i++)
		raw_remove(&raws[i]);
	for (int i = 0; i < ninsts; i++)
		inst_destroy(&insts[i]);
	if (raw_dirfd >= 0) {
		close(raw_dirfd);
		raw_dirfd = -1;
		if (rmdir(raw_dir) < 0 && errno != ENOENT)
			fail(-errno, "rmdir %s", raw_dir);
	}
}

static int count_leftover(dynshm_handle h, const char *name, void *arg)
{
	(void)h;
	note("dsm_bench: left behind: %s", name);
	++*(int *)arg;
	return 0;
}

/* Look for anything this run made and did not remove. */
static int verify_clean(void)
{
	struct stat st;
	struct dirent *de;
	char line[512];
	int left = 0;
	DIR *d;
	FILE *f;

	for (int i = 0; i < ninsts; i++) {
		dynshm_impl_space *space;

		if (stat(insts[i].dir, &st) == 0)
			note("dsm_bench: left behind: %s", insts[i].dir),
				left++;
		if (!insts[i].id)
			continue;
		if (insts[i].backend != DYNSHM_IMPL_MMAP &&
		    dynshm_impl_space_open(insts[i].backend, insts[i].id, NULL,
					&space) == 0) {
			dynshm_impl_list(space, count_leftover, &left);
			dynshm_impl_space_close(space);
		}
		/* the region's SysV object, keyed by the instance id */
		if (insts[i].region && insts[i].backend != DYNSHM_IMPL_SYSV &&
		    dynshm_impl_space_open(DYNSHM_IMPL_SYSV, insts[i].id, NULL,
					&space) == 0) {
			dynshm_impl_list(space, count_leftover, &left);
			dynshm_impl_space_close(space);
		}
	}
	if (raw_dir[0] && stat(raw_dir, &st) == 0)
		note("dsm_bench: left behind: %s", raw_dir), left++;
	if ((d = opendir("/dev/shm")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, raw_prefix,
				    strlen(raw_prefix)) == 0)
				note("dsm_bench: left behind: /dev/shm/%s",
				     de->d_name),
					left++;
		closedir(d);
	}
	if ((f = fopen("/proc/sysvipc/shm", "r")) != NULL) {
		while (fgets(line, sizeof(line), f)) {
			int key;

			if (sscanf(line, "%d", &key) == 1 &&
			    ((unsigned)key & 0xfffff000u) == raw_key_base)
				note("dsm_bench: left behind: SysV key 0x%08x",
				     (unsigned)key),
					left++;
		}
		fclose(f);
	}
	return left;
}

/* ---- raw system-call sequences ---------------------------------------------
 *
 * Exactly the calls dynshm's backends make for the same work, nothing
 * else.  Names are as long as dynshm's ("dsmbench.<16 hex>.<16 hex>") and
 * new for every create, as dynshm's are, so directory and dentry work is
 * the same; they are built by hand, not with snprintf, so that the
 * baseline is the system calls alone.
 */

struct raw_ctx {
	dynshm_impl_type backend;
	size_t size;
	uint64_t counter;
	/* the attach target */
	char name[PATH_MAX]; /* posix "/..", mmap base name */
	int dirfd;	/* mmap: directory of name */
	key_t key;	/* sysv */
	struct raw_obj *obj;
};

static void hex16(char *p, uint64_t v)
{
	for (int i = 15; i >= 0; i--, v >>= 4)
		p[i] = "0123456789abcdef"[v & 15];
}

/* "/dsmbench.<pid>.<n>" (posix) or "dsmbench.<pid>.<n>" (mmap). */
static void raw_next_name(struct raw_ctx *r, char *buf, bool slash)
{
	size_t plen = strlen(raw_prefix);
	char *p = buf;

	if (slash)
		*p++ = '/';
	memcpy(p, raw_prefix, plen);
	hex16(p + plen, ++r->counter);
	p[plen + 16] = '\0';
}

static key_t raw_next_key(struct raw_ctx *r)
{
	return (key_t)(raw_key_base | (unsigned)(++r->counter & 0xfff));
}

static int raw_fd_fill(int fd, size_t size)
{
	int e;

	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	e = posix_fallocate(fd, 0, (off_t)size);
	return -e;
}

static int raw_posix_create(void *arg)
{
	struct raw_ctx *r = arg;
	char name[64];
	void *p;
	int fd, rc;

	raw_next_name(r, name, true);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = raw_fd_fill(fd, r->size);
	p = rc ? MAP_FAILED
	       : mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      0);
	if (!rc && p == MAP_FAILED)
		rc = -errno;
	close(fd);
	if (p != MAP_FAILED)
		munmap(p, r->size);
	shm_unlink(name);
	return rc;
}

/* The attach half of the raw baseline: size from fstat, map, unmap. */
static int raw_map_fd(int fd)
{
	struct stat st;
	void *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	return munmap(p, (size_t)st.st_size) < 0 ? -errno : 0;
}

static int raw_posix_attach(void *arg)
{
	struct raw_ctx *r = arg;

	return raw_map_fd(shm_open(r->name, O_RDWR | O_CLOEXEC, 0));
}

static int raw_mmap_create(void *arg)
{
	struct raw_ctx *r = arg;
	char name[64];
	void *p;
	int fd, rc;

	raw_next_name(r, name, false);
	fd = openat(raw_dirfd, name,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = raw_fd_fill(fd, r->size);
	p = rc ? MAP_FAILED
	       : mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      0);
	if (!rc && p == MAP_FAILED)
		rc = -errno;
	close(fd);
	if (p != MAP_FAILED)
		munmap(p, r->size);
	unlinkat(raw_dirfd, name, 0);
	return rc;
}

static int raw_mmap_attach(void *arg)
{
	struct raw_ctx *r = arg;

	return raw_map_fd(
		openat(r->dirfd, r->name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0));
}

static int raw_sysv_create(void *arg)
{
	struct raw_ctx *r = arg;
	void *p;
	int id = -1;

	for (int tries = 0; id < 0 && tries < 4096; tries++) {
		id = shmget(raw_next_key(r), r->size,
			    IPC_CREAT | IPC_EXCL | 0600);
		if (id < 0 && errno != EEXIST)
			return -errno;
	}
	if (id < 0)
		return -EEXIST;
	p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		int err = errno;

		shmctl(id, IPC_RMID, NULL);
		return -err;
	}
	shmdt(p);
	return shmctl(id, IPC_RMID, NULL) < 0 ? -errno : 0;
}

static int raw_sysv_attach(void *arg)
{
	struct raw_ctx *r = arg;
	struct shmid_ds ds;
	void *p;
	int id = shmget(r->key, 0, 0);

	if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		return -errno;
	return shmdt(p) < 0 ? -errno : 0;
}

typedef int (*op_fn)(void *arg);

static op_fn raw_create_fn(dynshm_impl_type t)
{
	return t == DYNSHM_IMPL_POSIX ? raw_posix_create
	       : t == DYNSHM_IMPL_SYSV ? raw_sysv_create
				    : raw_mmap_create;
}

static op_fn raw_attach_fn(dynshm_impl_type t)
{
	return t == DYNSHM_IMPL_POSIX ? raw_posix_attach
	       : t == DYNSHM_IMPL_SYSV ? raw_sysv_attach
				    : raw_mmap_attach;
}

/* Make the raw attach target: an object of r->size, kept until the end. */
static int raw_make_target(struct raw_ctx *r)
{
	void *p;
	int fd, rc = 0;

	r->dirfd = raw_dirfd;
	if (r->backend == DYNSHM_IMPL_SYSV) {
		int id = -1;

		for (int tries = 0; id < 0 && tries < 4096; tries++) {
			r->key = raw_next_key(r);
			id = shmget(r->key, r->size,
				    IPC_CREAT | IPC_EXCL | 0600);
			if (id < 0 && errno != EEXIST)
				return -errno;
		}
		if (id < 0)
			return -EEXIST;
		r->obj = raw_track(DYNSHM_IMPL_SYSV, "", id);
		return 0;
	}
	raw_next_name(r, r->name, r->backend == DYNSHM_IMPL_POSIX);
	if (r->backend == DYNSHM_IMPL_POSIX)
		fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);
	else
		fd = openat(raw_dirfd, r->name,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	if (fd < 0)
		return -errno;
	r->obj = raw_track(r->backend, r->name, -1);
	rc = raw_fd_fill(fd, r->size);
	if (rc == 0) {
		p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 0);
		if (p == MAP_FAILED)
			rc = -errno;
		else
			munmap(p, r->size);
	}
	close(fd);
	return rc;
}

/* ---- dynshm operations --------------------------------------------------- */

struct dynshm_ctx {
	dynshm_instance *inst;
	size_t size;
	unsigned flags; /* of dynshm_create */
	dynshm_handle target;
};

static int dynshm_create_destroy(void *arg)
{
	struct dynshm_ctx *d = arg;
	dynshm_segment *seg;
	int rc = dynshm_create(d->inst, d->size, d->flags, &seg);

	return rc < 0 ? rc : dynshm_detach(seg);
}

static int dynshm_attach_detach(void *arg)
{
	struct dynshm_ctx *d = arg;
	dynshm_segment *seg;
	int rc = dynshm_attach(d->inst, d->target, &seg);

	return rc < 0 ? rc : dynshm_detach(seg);
}

/* A segment kept alive by a pin alone (not mapped here). */
static int dynshm_make_pinned_flags(dynshm_instance *inst, size_t size,
				 unsigned flags, dynshm_handle *out)
{
	dynshm_segment *seg;
	int rc = dynshm_create(inst, size, flags, &seg);

	if (rc < 0)
		return rc;
	*out = dynshm_segment_handle(seg);
	rc = dynshm_pin_segment(seg);
	dynshm_detach(seg);
	return rc;
}

static int dynshm_make_pinned(dynshm_instance *inst, size_t size, dynshm_handle *out)
{
	return dynshm_make_pinned_flags(inst, size, 0, out);
}

/* ---- timing -------------------------------------------------------------- */

static int run_block(op_fn fn, void *arg, long n, double *ns_per_op)
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
static int measure_pair(op_fn a, void *a_arg, op_fn b, void *b_arg, long n,
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

static void fmt_stats(char *buf, size_t len, const struct stats *s)
{
	char m[16], lo[16], hi[16];

	fmt_time(m, sizeof(m), s->med);
	fmt_time(lo, sizeof(lo), s->p10);
	fmt_time(hi, sizeof(hi), s->p90);
	snprintf(buf, len, "%s [%s .. %s]", m, lo, hi);
}

static void fmt_ratio(char *buf, size_t len, const struct stats *s)
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

/* ---- scenarios 1: create + destroy, attach + detach ---------------------- */

static double target_for(dynshm_impl_type t, size_t size)
{
	if (size > MIB)
		return -1; /* no target at 64 MiB */
	return t == DYNSHM_IMPL_SYSV ? 1.25 : 1.15;
}

/* Fewer iterations where each one moves more memory. */
static long create_iterations(size_t size)
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

static int scenario_pairs(struct bench_inst *const *by_backend, bool create)
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

static int scenario_scale(void)
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

static int scenario_named(void)
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

/* ---- scenario 3: contention ---------------------------------------------- */

struct child_result {
	uint64_t start, end, ops, acquisitions, hold, wait;
	int rc;
};

static void child_loop(dynshm_instance *inst, dynshm_handle shared, long n,
		       struct child_result *res)
{
	struct dynshm_ctx dc = { .inst = inst, .size = 4096, .target = shared };
	uint64_t ops = 0;
	int rc = 0;

	memset(&lp, 0, sizeof(lp));
	lp_on = 1;
	res->start = now_ns();
	for (long i = 0; i < n && !stop && rc == 0; i++) {
		rc = dynshm_create_destroy(&dc);
		if (rc == 0)
			rc = dynshm_attach_detach(&dc);
		if (rc == 0)
			ops += 4; /* create, detach+destroy, attach, detach */
	}
	res->end = now_ns();
	lp_on = 0;
	res->ops = ops;
	res->acquisitions = lp.acquisitions;
	res->hold = lp.hold;
	res->wait = lp.wait;
	res->rc = rc;
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* One timed run of nproc processes; fills the per-run figures. */
static int contention_run(struct bench_inst *b, dynshm_handle shared, long np,
			  long n, struct child_result *res, double *out)
{
	int ready[2], go[2], rc = 0;
	pid_t pids[MAX_PROCS];
	long started = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0, ops = 0, acq = 0, hold = 0, wait = 0;
	char c;

	if (pipe(ready) < 0 || pipe(go) < 0)
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
			dynshm_instance_close(b->inst);
			_exit(res[started].rc < 0 ? 1 : 0);
		}
		pids[started] = pid;
	}
	close(ready[1]);
	for (long i = 0; i < started; i++)
		while (read(ready[0], &c, 1) < 0 && errno == EINTR)
			;
	close(ready[0]);
	close(go[1]); /* go */
	close(go[0]);
	for (long i = 0; i < started; i++)
		if (wait_child(pids[i]) < 0 && rc == 0)
			rc = res[i].rc ? res[i].rc : -ECHILD;
	if (rc < 0)
		return stop ? -EINTR : rc;
	for (long i = 0; i < np; i++) {
		t0 = res[i].start < t0 ? res[i].start : t0;
		t1 = res[i].end > t1 ? res[i].end : t1;
		ops += res[i].ops;
		acq += res[i].acquisitions;
		hold += res[i].hold;
		wait += res[i].wait;
	}
	if (stop)
		return -EINTR;
	if (!ops || t1 <= t0)
		return -EIO;
	/* ops/s, acq/op, hold ns/op, wait ns/op, hold ns/acq, lock busy */
	out[0] = (double)ops / ((double)(t1 - t0) / 1e9);
	out[1] = (double)acq / (double)ops;
	out[2] = ((double)hold - lp_overhead * (double)acq) / ticks_per_ns /
		 (double)ops;
	out[3] = (double)wait / ticks_per_ns / (double)ops;
	out[4] = acq ? ((double)hold - lp_overhead * (double)acq) /
			       ticks_per_ns / (double)acq
		     : 0;
	out[5] = (double)hold / ticks_per_ns / (double)(t1 - t0);
	return 0;
}

/* Loops per process; mmap creates are file-system work, ~10x dearer. */
static long contention_loops(dynshm_impl_type t)
{
	return max_l(2, opt.iterations / (t == DYNSHM_IMPL_MMAP ? 8 : 2));
}

static int contention_backend(struct bench_inst *b,
			      struct child_result *res)
{
	const char *bname = dynshm_impl_type_name(b->backend);
	static const char *const names[6] = {
		"ops/s", "lock acquisitions/op", "lock hold ns/op",
		"lock wait ns/op", "lock hold ns/acquisition",
		"lock busy fraction",
	};
	static const char *const units[6] = {
		"ops/s", "acq/op", "ns/op", "ns/op", "ns/acq", "fraction",
	};
	double v[6][256];
	dynshm_handle shared;
	long n = contention_loops(b->backend);
	double base_ops = -1;
	int rc = dynshm_make_pinned(b->inst, 4096, &shared);

	if (rc < 0)
		return fail(rc, "%s: contention target", bname);
	for (int p = 0; p < opt.nprocs; p++) {
		long np = opt.procs[p];
		struct stats s[6];
		char tp[96];

		for (int r = 0; r < opt.repeats; r++) {
			double out[6] = { 0, 0, 0, 0, 0, 0 };

			rc = contention_run(b, shared, np, n, res, out);
			if (rc < 0) {
				if (rc != -EINTR)
					fail(rc, "%s: contention, %ld "
						 "processes", bname, np);
				goto out;
			}
			for (int k = 0; k < 6; k++)
				v[k][r] = out[k];
		}
		for (int k = 0; k < 6; k++) {
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
			"%-7s %5ld  %-28s %-8.2f %6.2f  %9.0f %9.0f %9.0f "
			"%8.1f%%\n",
			bname, np, tp, base_ops > 0 ? s[0].med / base_ops : 1,
			s[1].med, s[2].med, s[4].med, s[3].med,
			100 * s[5].med);
		fflush(tout);
	}
	rc = 0;
out:
	dynshm_destroy(b->inst, shared);
	return rc;
}

static int scenario_contention(void)
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
	fprintf(tout, "   control lock measured by interposing "
		      "pthread_mutex_lock/unlock (robust mutex only); "
		      "hold = lock return .. unlock entry\n");
	fprintf(tout, "%-7s %5s  %-28s %-8s %6s  %9s %9s %9s %9s\n",
		"backend", "procs", "ops/s median [p10 .. p90]", "scaling",
		"acq/op", "hold/op", "hold/acq", "wait/op", "lock busy");
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

static int scenario_region(void)
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
	double *child_flt; /* the minor page faults it took, */
	double *child_hold; /* and its longest control-lock hold */
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

		memset(&lp, 0, sizeof(lp));
		lp_on = 1;
		t0 = now_ns();
		rc = dynshm_instance_open(j->dir, NULL, 0, &inst);
		j->child_open[j->i] = (double)(now_ns() - t0);
		if (rc == 0)
			rc = dynshm_instance_close(inst);
		j->child_ns[j->i] = (double)(now_ns() - t0);
		lp_on = 0;
		j->child_flt[j->i] = (double)(minor_faults() - f0);
		j->child_hold[j->i] = ((double)lp.longest - lp_overhead) /
				      ticks_per_ns;
		_exit(rc < 0 ? 1 : 0);
	}
	j->i++;
	return wait_child(pid);
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
			       .child_flt = child_ns + 2 * nf,
			       .child_hold = child_ns + 3 * nf };
	struct dynshm_ctx dc = { .inst = b->inst, .size = 4096 };
	double base[4] = { -1, -1, -1, -1 };
	double vf[256], vj[256], vc[256], va[256], vk[256], vp[256], vo[256];
	double vh[256];
	int rc;

	rc = dynshm_make_pinned(b->inst, 4096, &dc.target);
	if (rc == 0 && pipe(h.quit) < 0)
		rc = -errno;
	if (rc < 0)
		return fail(rc, "%s: join setup", bname);
	for (int i = 0; i < opt.njoined && rc == 0; i++) {
		long want = opt.joined[i];
		dynshm_instance_info info;
		struct stats sf, sj, sc, sa, sk, rf, sp, so, sh;
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
					rc = run_block(fork_join, &jc, nf,
						       &vj[k]);
			} else {
				rc = run_block(fork_join, &jc, nf, &vj[k]);
				if (rc == 0)
					rc = run_block(fork_exit, NULL, nf,
						       &vf[k]);
			}
			med = stats_of(child_ns, (int)jc.i).med;
			vc[k] = med;
			vp[k] = stats_of(jc.child_flt, (int)jc.i).med;
			vo[k] = stats_of(jc.child_open, (int)jc.i).med;
			vh[k] = stats_of(jc.child_hold, (int)jc.i).med;
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
		sh = stats_of(vh, opt.repeats);
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
		join_row(bname, "open+close (child-timed)", want,
			 "longest lock hold", nf, sh);
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
		join_print(bname, want, &sh, -1,
			   "  longest control-lock hold in it");
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

static int scenario_join(void)
{
	long nf = join_forks();
	double *child_ns;
	int rc = 0;

	child_ns = mmap(NULL, 4 * (size_t)nf * sizeof(double),
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
	munmap(child_ns, 4 * (size_t)nf * sizeof(double));
	return rc;
}

/* ---- where the time goes: each system call timed alone -------------------
 *
 * The raw sequences again, one call at a time (a vDSO clock read around
 * each, ~26 ns here), with the calls dynshm adds to them marked "+".
 * Medians over --iterations rounds of a 4 KiB object.
 */

#define N_STEPS 8

struct steps {
	const char *name[N_STEPS];
	double *v[N_STEPS];
	int n;
};

#define STEP(st, k, label, expr)                                               \
	do {                                                                   \
		uint64_t t_ = now_ns();                                        \
		expr;                                                          \
		(st)->v[k][it] = (double)(now_ns() - t_);                      \
		(st)->name[k] = (label);                                       \
		if ((st)->n <= (k))                                            \
			(st)->n = (k) + 1;                                     \
	} while (0)

static void steps_print(const char *bname, const char *what,
			struct steps *st, long n)
{
	double med[N_STEPS], total = 0;

	for (int k = 0; k < st->n; k++) {
		struct row *r = add_row("syscalls", bname, what, 4096);

		r->s = stats_of(st->v[k], (int)n);
		r->iterations = n;
		snprintf(r->variant, sizeof(r->variant), "%s", st->name[k]);
		snprintf(r->unit, sizeof(r->unit), "ns/call");
		med[k] = r->s.med;
		total += med[k];
	}
	for (int k = 0; k < st->n; k++)
		fprintf(tout, "%-7s %-15s %-24s %8.0f ns %5.1f%%\n", bname,
			what, st->name[k], med[k], 100 * med[k] / total);
	fprintf(tout, "%-7s %-15s %-24s %8.0f ns\n", bname, what,
		"sum of medians", total);
	st->n = 0;
}

static int steps_fd(dynshm_impl_type t, struct steps *st, long n)
{
	const char *bname = dynshm_impl_type_name(t);
	bool posix = t == DYNSHM_IMPL_POSIX;
	struct raw_ctx r = { .backend = t, .size = 4096 };
	struct stat sb;
	char name[64];
	void *p = NULL;
	int fd = -1, rc;

	for (long it = 0; it < n && !stop; it++) {
		raw_next_name(&r, name, posix);
		STEP(st, 0, posix ? "shm_open O_CREAT|O_EXCL"
				  : "openat O_CREAT|O_EXCL",
		     fd = posix ? shm_open(name, O_RDWR | O_CREAT | O_EXCL |
							 O_CLOEXEC, 0600)
				: openat(raw_dirfd, name, O_RDWR | O_CREAT |
						O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					 0600));
		if (fd < 0)
			return -errno;
		STEP(st, 1, "ftruncate", rc = ftruncate(fd, 4096));
		STEP(st, 2, "posix_fallocate",
		     rc |= posix_fallocate(fd, 0, 4096));
		STEP(st, 3, "mmap", p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					     MAP_SHARED, fd, 0));
		STEP(st, 4, "close", close(fd));
		if (p != MAP_FAILED)
			STEP(st, 5, "munmap", munmap(p, 4096));
		STEP(st, 6, posix ? "shm_unlink" : "unlinkat",
		     posix ? shm_unlink(name) : unlinkat(raw_dirfd, name, 0));
		if (rc != 0 || p == MAP_FAILED)
			return -EIO;
	}
	steps_print(bname, "create+destroy", st, n);
	rc = raw_make_target(&r);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		STEP(st, 0, posix ? "shm_open" : "openat",
		     fd = posix ? shm_open(r.name, O_RDWR | O_CLOEXEC, 0)
				: openat(raw_dirfd, r.name,
					 O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0));
		if (fd < 0) {
			rc = -errno;
			break;
		}
		STEP(st, 1, "fstat", fstat(fd, &sb));
		STEP(st, 2, "mmap", p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					     MAP_SHARED, fd, 0));
		STEP(st, 3, "close", close(fd));
		if (p != MAP_FAILED)
			STEP(st, 4, "munmap", munmap(p, 4096));
		else
			rc = -EIO;
	}
	raw_remove(r.obj);
	if (rc == 0 && !stop)
		steps_print(bname, "attach+detach", st, n);
	return rc;
}

static int steps_sysv(struct steps *st, long n)
{
	struct raw_ctx r = { .backend = DYNSHM_IMPL_SYSV, .size = 4096 };
	struct shmid_ds ds;
	void *p;
	int id, rc = 0;

	for (long it = 0; it < n && !stop; it++) {
		key_t key = raw_next_key(&r);

		STEP(st, 0, "shmget IPC_CREAT|EXCL",
		     id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
		if (id < 0)
			return -errno;
		STEP(st, 1, "shmat", p = shmat(id, NULL, 0));
		if (p != (void *)-1)
			STEP(st, 2, "shmdt", shmdt(p));
		STEP(st, 3, "+ IPC_STAT (dynshm)", shmctl(id, IPC_STAT, &ds));
		STEP(st, 4, "shmctl IPC_RMID", shmctl(id, IPC_RMID, NULL));
		if (p == (void *)-1)
			return -EIO;
	}
	steps_print("sysv", "create+destroy", st, n);
	rc = raw_make_target(&r);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		STEP(st, 0, "shmget key", id = shmget(r.key, 0, 0));
		STEP(st, 1, "shmctl IPC_STAT", shmctl(id, IPC_STAT, &ds));
		STEP(st, 2, "shmat", p = shmat(id, NULL, 0));
		if (p == (void *)-1) {
			rc = -errno;
			break;
		}
		STEP(st, 3, "shmdt", shmdt(p));
	}
	raw_remove(r.obj);
	if (rc == 0 && !stop)
		steps_print("sysv", "attach+detach", st, n);
	return rc;
}

/*
 * What a check of one joined process costs (src/liveness.c): one
 * F_OFD_GETLK on the checker's own descriptor of the procs file, against a
 * byte another open file description holds; and, for comparison, what it
 * cost before issue 12 - reading /proc/<pid>/stat (open, read, close) and
 * kill(pid, 0) - checked against the parent, a live process.
 */
static int steps_join(struct steps *st, long n)
{
	char path[64], buf[1024], file[] = "/tmp/dsm_bench.procs.XXXXXX";
	struct flock fl;
	pid_t pid = getppid();
	ssize_t got = 0;
	int fd = -1, holder = mkstemp(file), mine = -1, rc = 0;

	if (holder >= 0)
		mine = open(file, O_RDWR | O_CLOEXEC);
	if (holder >= 0)
		unlink(file);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 7;
	fl.l_len = 1;
	if (mine < 0 || fcntl(holder, F_OFD_SETLK, &fl) < 0)
		rc = -errno;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		fl.l_type = F_WRLCK; /* the answer overwrote the question */
		fl.l_pid = 0;
		STEP(st, 0, "fcntl F_OFD_GETLK (the check)",
		     rc = fcntl(mine, F_OFD_GETLK, &fl));
		if (rc < 0 || fl.l_type != F_WRLCK) {
			rc = rc < 0 ? -errno : -EIO;
			break;
		}
		STEP(st, 1, "was: open /proc/<pid>/stat",
		     fd = open(path, O_RDONLY | O_CLOEXEC));
		if (fd < 0) {
			rc = -errno;
			break;
		}
		STEP(st, 2, "was: read", got = read(fd, buf, sizeof(buf)));
		STEP(st, 3, "was: close", close(fd));
		STEP(st, 4, "was: kill(pid, 0)", (void)kill(pid, 0));
		if (got <= 0)
			rc = -EIO;
	}
	if (holder >= 0)
		close(holder);
	if (mine >= 0)
		close(mine);
	if (rc == 0 && !stop)
		steps_print("join", "check a process", st, n);
	return rc;
}

static int scenario_syscalls(void)
{
	struct steps st = { .n = 0 };
	long n = opt.iterations;
	int rc = 0;

	for (int k = 0; k < N_STEPS; k++)
		if (!(st.v[k] = malloc((size_t)n * sizeof(double))))
			rc = -ENOMEM;
	fprintf(tout, "\n== where the time goes: each system call of the raw "
		      "sequences timed alone (4 KiB, median of %ld); + marks "
		      "what dynshm adds ==\n",
		n);
	for (int t = 1; t < 4 && rc == 0 && !stop; t++) {
		if (!(opt.backends & 1u << t))
			continue;
		rc = t == DYNSHM_IMPL_SYSV ? steps_sysv(&st, n)
					: steps_fd((dynshm_impl_type)t, &st, n);
		if (rc < 0)
			fail(rc, "syscalls: %s",
			     dynshm_impl_type_name((dynshm_impl_type)t));
	}
	if (rc == 0 && !stop && opt.scenarios & SC_JOIN) {
		rc = steps_join(&st, n);
		if (rc < 0)
			fail(rc, "syscalls: join");
	}
	for (int k = 0; k < N_STEPS; k++)
		free(st.v[k]);
	return stop ? -EINTR : rc;
}

/* ---- scenario 8: the message queue (bench_mq.c) ---------------------------- */

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

static int scenario_mq(void)
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

static int open_raw_dir(void)
{
	snprintf(raw_dir, sizeof(raw_dir), "%s/dsm-bench-raw.XXXXXX",
		 opt.tmpdir);
	if (!mkdtemp(raw_dir)) {
		raw_dir[0] = '\0';
		return fail(-errno, "mkdtemp in %s", opt.tmpdir);
	}
	raw_dirfd = open(raw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return raw_dirfd < 0 ? fail(-errno, "open %s", raw_dir) : 0;
}

static uint64_t section_start;

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
struct area_ctx {
	dynshm_area *area;
	dynshm_hash *hash;
	size_t size;
	uint64_t keys, seed;
};

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

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * np processes run fn n times each, started together; *ops_per_s: all
 * their operations over the span from the first start to the last end;
 * *ops_per_cpu_s: the same per second of CPU time they used, which other
 * load on the machine does not change (only contention inside does).
 */
static int par_run(int np, op_fn fn, struct area_ctx *c, long n,
		   double *ops_per_s, double *ops_per_cpu_s)
{
	uint64_t *t = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int go[2], rc = 0;
	pid_t pids[2];
	uint64_t t0 = UINT64_MAX, t1 = 0, cpu = 0;

	if (t == MAP_FAILED)
		return -errno;
	if (pipe(go) < 0) {
		munmap(t, 4096);
		return -errno;
	}
	fflush(NULL);
	for (int i = 0; i < np; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char ch;
			int crc = 0;

			close(go[1]);
			c->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
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
static int scaling_row(const char *scenario, const char *operation,
		       size_t size, op_fn fn, struct area_ctx *c, long n)
{
	double one[256], two[256], cone[256], ctwo[256];
	struct stats cpu;
	struct row *r;
	int rc = 0;

	for (int i = 0; i < opt.repeats && rc == 0 && !stop; i++) {
		rc = par_run(1, fn, c, n, &one[i], &cone[i]);
		if (rc == 0)
			rc = par_run(2, fn, c, n, &two[i], &ctwo[i]);
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

static int scenario_area(void)
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

static int scenario_hash(void)
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
	if (!real_lock)
		lp_resolve();
	lp_calibrate();
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
