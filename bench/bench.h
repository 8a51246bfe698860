/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what dsm_bench's files share: the options, the result rows,
 * the timing and statistics helpers, the instances and raw system-call
 * sequences every scenario compares against, and one entry point per
 * scenario.
 *
 * dsm_bench grew to one file of 3,600 lines (issue 11, section 8); it is
 * split by scenario so that a scenario can be read, and changed, alone.
 * dsm_bench.c holds main, the options, the rows and verdicts and the
 * timing helpers; bench_env.c the instances, the clean-up registry, the
 * raw sequences and the control lock's counters; each scenario_<name>.c
 * one scenario (bench_mq.c: the mq transports).
 */
#ifndef DYNSHM_BENCH_H
#define DYNSHM_BENCH_H

#include "bench_mq.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <dirent.h>
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
extern const char *const scenario_names[N_SCENARIOS];

struct bench_opt {
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
};
extern struct bench_opt opt;

extern FILE *tout; /* the readable tables: stdout, or stderr with --csv */
extern volatile sig_atomic_t stop; /* set by SIGINT/SIGTERM */

/* ---- statistics and rows (dsm_bench.c) ----------------------------------- */

struct stats {
	double med, p10, p90, min, max;
	int n;
};

struct row {
	char scenario[16], backend[8], operation[40], param[20];
	char variant[20], unit[12], ratio_to[24], verdict[8];
	size_t size;
	long param_value, iterations;
	struct stats s, ratio;
	double target;
};

typedef int (*op_fn)(void *arg);

uint64_t now_ns(void);
__attribute__((format(printf, 1, 2))) void note(const char *fmt, ...);
/* Report a failure (counted: exit status 1); returns rc, or -EIO. */
__attribute__((format(printf, 2, 3))) int fail(int rc, const char *fmt, ...);
void fmt_size(char *buf, size_t len, size_t size);
long max_l(long a, long b);
long read_long_file(const char *path);
long sysv_segments_in_use(void);
struct stats stats_of(const double *v, int n);
struct stats ratio_stats(const double *num, const double *den, int n);
struct row *add_row(const char *scenario, const char *backend,
		    const char *operation, size_t size);
void set_verdict(struct row *r, double value, double target);
int run_block(op_fn fn, void *arg, long n, double *ns_per_op);
int measure_pair(op_fn a, void *a_arg, op_fn b, void *b_arg, long n,
		 double *va, double *vb);
void fmt_stats(char *buf, size_t len, const struct stats *s);
void fmt_ratio(char *buf, size_t len, const struct stats *s);
int wait_child(pid_t pid);

/* ---- the control lock's counters (bench_env.c) ---------------------------- */

/*
 * What the library counts of its control lock (dynshm_instance_info:
 * lock_acquisitions, lock_waits, lock_wait_ns), for every process of the
 * instance together.  How long the lock is held is not counted.
 */
struct lock_counts {
	uint64_t acquisitions, waits, wait_ns;
};
/* Read them now (the read itself takes the lock once, counted). */
int lock_counts_read(dynshm_instance *inst, struct lock_counts *out);
/*
 * What others did between two reads, first and then: then - first less
 * the second read's own take (it never waits while nobody else runs).
 */
struct lock_counts lock_counts_since(const struct lock_counts *first,
				     const struct lock_counts *then);

/* ---- instances, clean-up, raw sequences (bench_env.c) -------------------- */

struct bench_inst {
	dynshm_instance *inst; /* NULL once destroyed */
	dynshm_impl_type backend;
	bool region; /* has a region: a SysV object whatever the backend */
	uint64_t id;
	char dir[PATH_MAX];
};

struct raw_obj {
	dynshm_impl_type backend;
	char name[PATH_MAX]; /* posix "/name"; mmap: base name in raw_dir */
	int shmid;	/* sysv */
	bool live;
};

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

struct dynshm_ctx {
	dynshm_instance *inst;
	size_t size;
	unsigned flags; /* of dynshm_create */
	dynshm_handle target;
};

extern int raw_dirfd;
extern char raw_prefix[32];   /* "dsmbench.<16 hex pid>." */
extern unsigned raw_key_base; /* SysV keys: 0x3d000000 | pid << 12 */

/* region: bytes of region (whole MiB, huge_pages = off), 0 for none. */
int inst_open(dynshm_impl_type backend, uint32_t max_segments, size_t region,
	      struct bench_inst **out);
void inst_destroy(struct bench_inst *b);
void raw_remove(struct raw_obj *o);
int open_raw_dir(void);
void cleanup_all(void);
int verify_clean(void);
void raw_next_name(struct raw_ctx *r, char *buf, bool slash);
key_t raw_next_key(struct raw_ctx *r);
int raw_posix_create(void *arg);
int raw_posix_attach(void *arg);
op_fn raw_create_fn(dynshm_impl_type t);
op_fn raw_attach_fn(dynshm_impl_type t);
int raw_make_target(struct raw_ctx *r);
int dynshm_create_destroy(void *arg);
int dynshm_attach_detach(void *arg);
int dynshm_make_pinned_flags(dynshm_instance *inst, size_t size,
			     unsigned flags, dynshm_handle *out);
int dynshm_make_pinned(dynshm_instance *inst, size_t size,
		       dynshm_handle *out);

/* ---- the scenarios (scenario_<name>.c) ----------------------------------- */

long create_iterations(size_t size); /* scenario_pairs.c, also region */
int scenario_pairs(struct bench_inst *const *by_backend, bool create);
int scenario_scale(void);
int scenario_named(void);
int scenario_contention(void);
int scenario_region(void);
int scenario_join(void);
int scenario_syscalls(void);
int scenario_mq(void);

/* area and hash share the two-process throughput comparison */
struct area_ctx {
	dynshm_area *area;
	dynshm_hash *hash;
	size_t size;
	uint64_t keys, seed;
};
int scaling_row(const char *scenario, const char *operation, size_t size,
		op_fn fn, struct area_ctx *c, long n);
int scenario_area(void);
int scenario_hash(void);

#endif
