/* SPDX-License-Identifier: MIT */
/*
 * bench_lockprof.c - dsm_bench's control-lock profiler: it interposes
 * pthread_mutex_lock/unlock (which is why dsm_bench links the shared
 * library) and times the robust mutex's waits and holds for the
 * contention and join scenarios.
 */
#include "bench.h"

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
volatile int lp_on;
double ticks_per_ns = 1.0;
double lp_overhead; /* ticks of one timer read */

struct lockprof lp;

static uint64_t ticks(void)
{
#if HAVE_RDTSC
	return __rdtsc();
#else
	return now_ns();
#endif
}

void lp_resolve(void)
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
void lp_calibrate(void)
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
