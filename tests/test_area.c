/* SPDX-License-Identifier: MIT */
/*
 * test_area.c - the shared area and its hash table, with real processes
 * killed by SIGKILL at random points.
 *
 * The promises worth testing are the crash ones (dynshm/area.h): a process
 * killed anywhere inside allocate or free leaves an area the others go on
 * using, with no allocation handed out twice and nothing a survivor holds
 * disturbed; a process killed inside insert, delete or a resize leaves a
 * table where every operation that returned holds and no key is there
 * twice.  The storms below fork children that loop on the operations and
 * log, in a shared anonymous page, what has returned; the parent kills
 * them at random moments, replaces them, and checks the structure against
 * the log.  The kill moments are random rather than placed by a hook: the
 * children spend nearly all their time inside the library, and many kills
 * cover many points.  The rest is the contract of each function.
 *
 * Runs alone (is_parallel: false) like the other wrapper tests.
 */
#include "testutil.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm_assert.h"
#include "src/facility/area_int.h"
#include "src/facility/hash_int.h"

extern int dynshm_test_instance_tag;
/* Hidden test hook of the area and the table (src/facility/area_int.h). */
extern void (*dynshm_area_test_hook)(const char *point);

#define KIDS 3
#define SLOTS 48
#define KILLS 60

struct fixture {
	struct test_fixture t;
	pid_t kids[KIDS];
};

static struct fixture the_fixture;
static int fixture_failures;

static int test_setup(void **state)
{
	struct fixture *f = &the_fixture;

	memset(f, 0, sizeof(*f));
	if (test_fixture_setup(&f->t, true, "posix", (char *)NULL) < 0) {
		fixture_failures++;
		return -1;
	}
	*state = f;
	return 0;
}

static int test_teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < KIDS; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			test_wait(f->kids[i]);
		}
	}
	if (test_fixture_teardown(&f->t, false, "test teardown") < 0) {
		fixture_failures++;
		return -1;
	}
	return 0;
}

static void *shared_page(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Fill (or check) the first 64 and the last 8 bytes of a block with tag. */
static void stamp(unsigned char *p, size_t size, uint64_t tag)
{
	size_t n = size < 64 ? size & ~(size_t)7 : 64;

	for (size_t i = 0; i + 8 <= n; i += 8)
		memcpy(p + i, &tag, 8);
	if (size >= 16)
		memcpy(p + ((size - 8) & ~(size_t)7), &tag, 8);
}

static int stamped(const unsigned char *p, size_t size, uint64_t tag)
{
	size_t n = size < 64 ? size & ~(size_t)7 : 64;

	for (size_t i = 0; i + 8 <= n; i += 8)
		if (memcmp(p + i, &tag, 8))
			return 0;
	if (size >= 16 && memcmp(p + ((size - 8) & ~(size_t)7), &tag, 8))
		return 0;
	return 1;
}

/*
 * Installed in storm children: die by SIGKILL at one of the points inside
 * a mutation, now and then.  Rebuilds call their point once per entry,
 * so they get a smaller chance.
 */
static uint64_t die_seed;
static unsigned die_every = 400;

static void maybe_die(const char *point)
{
	unsigned every = strcmp(point, "hash.rebuild") ? die_every : 50000;

	if (rnd(&die_seed) % every == 0)
		raise(SIGKILL);
}

static void arm_hook(void)
{
	signal(SIGSEGV, SIG_DFL); /* not CMocka's: die, be seen */
	die_seed = (uint64_t)getpid() * 0x2545f4914f6cdd1dull | 1;
	dynshm_area_test_hook = maybe_die;
}

/* Wait for any storm child to die; its index in kids[], or -1. */
static int reap_any(pid_t *kids, int n)
{
	int status;
	pid_t pid = waitpid(-1, &status, 0);

	for (int k = 0; k < n; k++) {
		if (kids[k] == pid) {
			kids[k] = 0;
			if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
				fail_msg("storm child %d ended with status "
					 "0x%x", k, status);
			return k;
		}
	}
	fail_msg("waitpid: %s", strerror(errno));
	return -1;
}

/* ---- the contract -------------------------------------------------------- */

static size_t class_of(size_t size)
{
	static const size_t c[] = { 16, 32, 48, 64, 80, 96, 112, 128, 160,
		192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280,
		1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168,
		8192 };

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (size <= c[i])
			return c[i];
	return size;
}

static void test_alloc_free_stats(void **state)
{
	struct fixture *f = *state;
	static const size_t sizes[] = { 1, 16, 17, 64, 100, 4096, 8192, 8193,
					200000 };
	dynshm_area_ptr p[sizeof(sizes) / sizeof(sizes[0])];
	dynshm_area_stats st;
	dynshm_area *a;
	uint64_t used = 0;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *m;

		ASSERT_OK(dynshm_area_alloc(a, sizes[i], DYNSHM_AREA_ZERO,
					    &p[i]));
		assert_true(p[i] != DYNSHM_AREA_NULL);
		m = dynshm_area_get(a, p[i]);
		assert_non_null(m);
		assert_int_equal((uintptr_t)m % 16, 0);
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(m[k], 0);
		memset(m, (int)i + 1, sizes[i]);
		used += class_of(sizes[i]);
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *m = dynshm_area_get(a, p[i]);

		assert_int_equal(m[0], i + 1);
		assert_int_equal(m[sizes[i] - 1], i + 1);
	}
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.used_bytes, used);
	assert_int_equal(st.allocations, sizeof(sizes) / sizeof(sizes[0]));
	assert_int_equal(st.large_segments, 2);
	assert_int_equal(st.total_bytes,
			 st.used_bytes + st.free_bytes + st.overhead_bytes);
	assert_true(st.overhead_bytes < st.total_bytes / 10);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		ASSERT_OK(dynshm_area_free(a, p[i]));
	ASSERT_RC(dynshm_area_free(a, p[0]), -EINVAL);
	ASSERT_MSG_HAS("freed already");
	ASSERT_RC(dynshm_area_free(a, p[8]), -EINVAL);
	ASSERT_RC(dynshm_area_free(a, p[1] + 1), -EINVAL);
	ASSERT_RC(dynshm_area_alloc(a, 8, 0x80, &p[0]), -EINVAL);
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.used_bytes, 0);
	assert_int_equal(st.allocations, 0);
	assert_int_equal(st.large_segments, 0);
	ASSERT_OK(dynshm_area_destroy(a));
}

/* Segments come on demand and go back when empty; max_size holds. */
static void test_grow_shrink_max(void **state)
{
	struct fixture *f = *state;
	enum { N = 4000 };
	dynshm_area_ptr *p = calloc(N, sizeof(*p));
	dynshm_area_stats st;
	dynshm_area *a;
	int n = 0, rc;

	assert_non_null(p);
	ASSERT_OK(dynshm_area_create(f->t.inst, 3u << 22, 0, &a));
	while (n < N && (rc = dynshm_area_alloc(a, 4096, 0, &p[n])) == 0)
		n++;
	assert_int_equal(rc, -ENOMEM);
	ASSERT_MSG_HAS("maximum");
	assert_true(n > 500);
	ASSERT_RC(dynshm_area_alloc(a, 64, DYNSHM_AREA_SOFT, &p[n]), -ENOMEM);
	ASSERT_RC(dynshm_area_alloc(a, 5000000, DYNSHM_AREA_SOFT, &p[n]),
		  -ENOMEM);
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_true(st.segments >= 3);
	assert_true(st.total_bytes <= 3u << 22);
	for (int i = 0; i < n; i++)
		ASSERT_OK(dynshm_area_free(a, p[i]));
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.segments, 2); /* control + one kept */
	assert_int_equal(st.used_bytes, 0);
	ASSERT_OK(dynshm_area_destroy(a));
	free(p);
}

/* Another process maps what it is pointed at on first use. */
struct lazy_arg {
	dynshm_instance *inst;
	dynshm_handle h;
	dynshm_area_ptr ptr;
};

static int lazy_child(void *arg)
{
	struct lazy_arg *la = arg;
	dynshm_area *a;
	char *m;

	CHILD_CHECK(dynshm_area_attach(la->inst, la->h, &a) == 0);
	m = dynshm_area_get(a, la->ptr);
	CHILD_CHECK(m && strcmp(m, "hello from the parent") == 0);
	strcpy(m, "hello from the child");
	CHILD_CHECK(dynshm_area_free(a, la->ptr) == 0);
	CHILD_CHECK(dynshm_area_detach(a) == 0);
	return 0;
}

static void test_other_process(void **state)
{
	struct fixture *f = *state;
	struct lazy_arg la = { f->t.inst, 0, 0 };
	dynshm_area_stats st;
	dynshm_area *a;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	la.h = dynshm_area_handle(a);
	ASSERT_OK(dynshm_area_alloc(a, 100, 0, &la.ptr));
	strcpy(dynshm_area_get(a, la.ptr), "hello from the parent");
	assert_int_equal(test_fork(lazy_child, &la), 0);
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.allocations, 0);
	ASSERT_RC(dynshm_area_attach(f->t.inst, 12345, &a), -ENOENT);
	ASSERT_OK(dynshm_area_destroy(a));
}

static int named_child(void *arg)
{
	struct fixture *f = arg;
	dynshm_area *a;
	int created = -1;

	CHILD_CHECK(dynshm_area_get_named(f->t.inst, "the.area", 0, 0, &a,
					  &created) == 0);
	CHILD_CHECK(dynshm_area_detach(a) == 0);
	return created == 1 ? 10 : 0;
}

static void test_get_named(void **state)
{
	struct fixture *f = *state;
	pid_t pid[4];
	int created = 0, rc;
	dynshm_area *a;

	fflush(NULL);
	for (int i = 0; i < 4; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(named_child(f));
	}
	for (int i = 0; i < 4; i++) {
		rc = test_wait(pid[i]);
		assert_true(rc == 0 || rc == 10);
		created += rc == 10;
	}
	assert_int_equal(created, 1);
	ASSERT_OK(dynshm_area_get_named(f->t.inst, "the.area", 0, 0, &a,
					&created));
	assert_int_equal(created, 0);
	ASSERT_OK(dynshm_area_destroy(a));
}

/*
 * A process that dies with objects in its thread cache (freed by it, kept
 * for reuse) does not take them along: the next look gives them back.
 */
static int cache_child(void *arg)
{
	dynshm_area *a = arg;
	dynshm_area_ptr p[6];

	for (int i = 0; i < 6; i++)
		CHILD_CHECK(dynshm_area_alloc(a, 64, 0, &p[i]) == 0);
	for (int i = 0; i < 6; i++)
		CHILD_CHECK(dynshm_area_free(a, p[i]) == 0);
	raise(SIGKILL); /* no detach: the cache stays full */
	return 1;
}

static void test_dead_cache(void **state)
{
	struct fixture *f = *state;
	dynshm_area_stats st;
	dynshm_area *a;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	assert_int_equal(test_fork(cache_child, a), 128 + SIGKILL);
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.allocations, 0);
	assert_int_equal(st.used_bytes, 0);
	assert_true(st.repairs >= 1);
	ASSERT_OK(dynshm_area_destroy(a));
}

/*
 * An area destroyed by another process while this one is attached: the
 * attached process's next allocations are refused (-EIDRM) and leave
 * nothing.  They used to succeed and make new pinned segments for an area
 * nobody could destroy any more: leaked until the instance went.  A
 * destroyer killed half-way is finished by the next taker of the lock.
 */
struct destroy_arg {
	dynshm_instance *inst;
	dynshm_handle h;
	bool die;
};

static void die_destroying(const char *point)
{
	if (strcmp(point, "area.destroying") == 0)
		raise(SIGKILL);
}

static int destroy_child(void *arg)
{
	struct destroy_arg *da = arg;
	dynshm_area *a;

	CHILD_CHECK(dynshm_area_attach(da->inst, da->h, &a) == 0);
	if (da->die)
		dynshm_area_test_hook = die_destroying;
	CHILD_CHECK(dynshm_area_destroy(a) == 0);
	return 0;
}

static uint32_t instance_segments(dynshm_instance *inst)
{
	dynshm_instance_info info;

	ASSERT_OK(dynshm_reap(inst, NULL)); /* the child's references */
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	return info.segments;
}

static void test_destroyed_elsewhere(void **state)
{
	struct fixture *f = *state;
	uint32_t before = instance_segments(f->t.inst);

	for (int die = 0; die < 2; die++) {
		struct destroy_arg da = { f->t.inst, 0, die == 1 };
		dynshm_area_ptr p, q;
		dynshm_area_stats st;
		dynshm_area *a;

		ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
		da.h = dynshm_area_handle(a);
		ASSERT_OK(dynshm_area_alloc(a, 100, 0, &p));
		ASSERT_OK(dynshm_area_alloc(a, 100000, 0, &q));
		assert_int_equal(test_fork(destroy_child, &da),
				 die ? 128 + SIGKILL : 0);
		/* what our thread cache still holds is not handed out */
		ASSERT_RC(dynshm_area_alloc(a, 100, 0, &p), -EIDRM);
		ASSERT_RC(dynshm_area_alloc(a, 3000, 0, &p), -EIDRM);
		ASSERT_RC(dynshm_area_alloc(a, 100000, 0, &q), -EIDRM);
		ASSERT_RC(dynshm_area_stats_get(a, &st), -EIDRM);
		ASSERT_OK(dynshm_area_detach(a));
		assert_int_equal(instance_segments(f->t.inst), before);
	}
}

/*
 * Segment 0 of an area is its control segment: a pointer into it is no
 * allocation, and must not become an address.  dynshm_area_get used to
 * return one (so a scribbled or made-up pointer let a caller - or the
 * hash table following a scribbled link - write on the area's locks,
 * segment table and thread caches).
 */
static void test_segment_zero(void **state)
{
	struct fixture *f = *state;
	dynshm_area_ptr p;
	dynshm_hash *t;
	dynshm_area *a;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_OK(dynshm_area_alloc(a, 100, 0, &p));
	assert_non_null(dynshm_area_get(a, p));
	for (dynshm_area_ptr off = 1; off < 65536; off += 8)
		assert_null(dynshm_area_get(a, off));
	/* Not a stale message from an earlier failure: this one, named. */
	assert_int_equal(dynshm_area_alloc(a, 100, 0x100, &p), -EINVAL);
	ASSERT_RC(dynshm_hash_attach(a, 0x100, &t), -ENOENT);
	assert_non_null(strstr(dynshm_last_error(),
			       "area pointer 0x0000000000000100 is not inside"));
	ASSERT_OK(dynshm_area_destroy(a));
}

/* Threads of one process: caches and partitions are per thread. */
struct thread_arg {
	dynshm_area *a;
	int bad;
};

static void *thread_loop(void *arg)
{
	struct thread_arg *ta = arg;
	dynshm_area_ptr p[64];

	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 64; i++) {
			if (dynshm_area_alloc(ta->a, 16 + (size_t)i * 24, 0,
					      &p[i]) < 0) {
				ta->bad++;
				return NULL;
			}
			stamp(dynshm_area_get(ta->a, p[i]), 16 + (size_t)i * 24,
			      (uint64_t)(uintptr_t)ta ^ (uint64_t)i);
		}
		for (int i = 0; i < 64; i++) {
			if (!stamped(dynshm_area_get(ta->a, p[i]),
				     16 + (size_t)i * 24,
				     (uint64_t)(uintptr_t)ta ^ (uint64_t)i))
				ta->bad++;
			if (dynshm_area_free(ta->a, p[i]) < 0)
				ta->bad++;
		}
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	struct thread_arg ta[4];
	pthread_t th[4];
	dynshm_area_stats st;
	dynshm_area *a;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	for (int i = 0; i < 4; i++) {
		ta[i].a = a;
		ta[i].bad = 0;
		assert_int_equal(pthread_create(&th[i], NULL, thread_loop,
						&ta[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ta[i].bad, 0);
	}
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.used_bytes, 0); /* exited threads' caches: free */
	ASSERT_OK(dynshm_area_destroy(a));
}

/* An area whose control segment is carved from the region. */
static void test_in_region(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst;
	dynshm_config *cfg;
	dynshm_segment_info info;
	char path[PATH_MAX];
	dynshm_area_ptr p;
	dynshm_area *a;

	snprintf(path, sizeof(path), "%s/region", f->t.dir);
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_set(cfg, "min_dynamic_shared_memory", "4MB"));
	ASSERT_OK(dynshm_config_set(cfg, "huge_pages", "off"));
	ASSERT_OK(dynshm_instance_open(path, cfg, 0, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_area_create(inst, 0, DYNSHM_CREATE_REGION, &a));
	ASSERT_OK(dynshm_stat(inst, dynshm_area_handle(a), &info, sizeof(info)));
	assert_int_equal(info.in_region, 1);
	ASSERT_OK(dynshm_area_alloc(a, 1000, DYNSHM_AREA_ZERO, &p));
	ASSERT_OK(dynshm_area_free(a, p));
	ASSERT_OK(dynshm_area_destroy(a));
	ASSERT_OK(dynshm_instance_destroy(inst));
}

/* ---- allocate/free storm ---------------------------------------------- */

enum { S_EMPTY, S_ALLOCING, S_HELD, S_FREEING };

struct slot {
	_Atomic int state;
	uint64_t ptr;
	uint64_t size;
	uint64_t tag;
};

struct storm {
	struct slot s[KIDS][SLOTS];
	_Atomic uint64_t ops[KIDS];
};

static int storm_child(dynshm_area *a, struct storm *sm, int k)
{
	uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;

	for (;;) {
		struct slot *s = &sm->s[k][rnd(&seed) % SLOTS];
		int rc;

		if (atomic_load(&s->state) == S_EMPTY) {
			uint64_t size = rnd(&seed) % 64 == 0 ?
				8193 + rnd(&seed) % 60000 :
				1 + rnd(&seed) % (rnd(&seed) % 2 ? 256 : 8192);
			dynshm_area_ptr p;

			atomic_store(&s->state, S_ALLOCING);
			rc = dynshm_area_alloc(a, size, 0, &p);
			if (rc == -ENOMEM) {
				atomic_store(&s->state, S_EMPTY);
				continue;
			}
			if (rc != 0)
				fprintf(stderr, "alloc %" PRIu64 ": %d %s\n",
					size, rc, dynshm_last_error());
			CHILD_CHECK(rc == 0);
			s->tag = rnd(&seed);
			stamp(dynshm_area_get(a, p), size, s->tag);
			s->ptr = p;
			s->size = size;
			atomic_store(&s->state, S_HELD);
		} else {
			CHILD_CHECK(stamped(dynshm_area_get(a, s->ptr),
					    s->size, s->tag));
			atomic_store(&s->state, S_FREEING);
			rc = dynshm_area_free(a, s->ptr);
			if (rc != 0)
				fprintf(stderr, "free: %d %s\n", rc,
					dynshm_last_error());
			CHILD_CHECK(rc == 0);
			atomic_store(&s->state, S_EMPTY);
		}
		atomic_fetch_add(&sm->ops[k], 1);
	}
}

static pid_t start_storm_child(dynshm_area *a, struct storm *sm, int k)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		arm_hook();
		_exit(storm_child(a, sm, k));
	}
	assert_true(pid > 0);
	return pid;
}

/* After kid k died: settle its in-flight slots; count possible leaks. */
static int settle(struct storm *sm, int k)
{
	int unsure = 0;

	for (int i = 0; i < SLOTS; i++) {
		struct slot *s = &sm->s[k][i];
		int st = atomic_load(&s->state);

		if (st == S_ALLOCING) {
			unsure++; /* allocated or not: the dead one's */
			atomic_store(&s->state, S_EMPTY);
		} else if (st == S_FREEING) {
			/*
			 * Freed or not: not ours to free now, since another
			 * child may already have the block again.
			 */
			unsure++;
			atomic_store(&s->state, S_EMPTY);
		}
	}
	return unsure;
}

static void test_alloc_storm(void **state)
{
	struct fixture *f = *state;
	struct storm *sm = shared_page(sizeof(*sm));
	dynshm_area_stats st;
	dynshm_area_ptr *p;
	dynshm_area *a;
	uint64_t held = 0;
	int unsure = 0, status;
	enum { N = 3000 };

	ASSERT_OK(dynshm_area_create(f->t.inst, 64u << 20, 0, &a));
	for (int k = 0; k < KIDS; k++)
		f->kids[k] = start_storm_child(a, sm, k);
	for (int n = 0; n < KILLS; n++) {
		int k = reap_any(f->kids, KIDS);

		unsure += settle(sm, k);
		f->kids[k] = start_storm_child(a, sm, k);
	}
	for (int k = 0; k < KIDS; k++) {
		kill(f->kids[k], SIGKILL);
		status = test_wait(f->kids[k]);
		f->kids[k] = 0;
		assert_int_equal(status, 128 + SIGKILL);
		unsure += settle(sm, k);
	}
	/* Nothing a survivor holds was handed out again or overwritten. */
	for (int k = 0; k < KIDS; k++) {
		for (int i = 0; i < SLOTS; i++) {
			struct slot *s = &sm->s[k][i];

			if (atomic_load(&s->state) != S_HELD)
				continue;
			assert_true(stamped(dynshm_area_get(a, s->ptr),
					    s->size, s->tag));
			held++;
		}
	}
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	print_message("storm: %d kills, %" PRIu64 " repairs, %" PRIu64
		      " held, %d unsure, %" PRIu64 " allocations\n",
		      KILLS + KIDS, st.repairs, held, unsure, st.allocations);
	assert_true(st.allocations >= held);
	/* at most one in-flight op and one cache move per death */
	assert_true(st.allocations <= held + (uint64_t)unsure + KILLS + KIDS);
	assert_int_equal(st.total_bytes,
			 st.used_bytes + st.free_bytes + st.overhead_bytes);
	/* The free lists are sound: fresh blocks overlap nothing. */
	p = calloc(N, sizeof(*p));
	assert_non_null(p);
	for (int i = 0; i < N; i++) {
		ASSERT_OK(dynshm_area_alloc(a, 1 + i % 3000, 0, &p[i]));
		stamp(dynshm_area_get(a, p[i]), 1 + i % 3000, 1000 + i);
	}
	for (int i = 0; i < N; i++)
		assert_true(stamped(dynshm_area_get(a, p[i]), 1 + i % 3000,
				    1000 + i));
	for (int k = 0; k < KIDS; k++)
		for (int i = 0; i < SLOTS; i++)
			if (atomic_load(&sm->s[k][i].state) == S_HELD) {
				assert_true(stamped(
					dynshm_area_get(a, sm->s[k][i].ptr),
					sm->s[k][i].size, sm->s[k][i].tag));
				ASSERT_OK(dynshm_area_free(a,
							   sm->s[k][i].ptr));
			}
	for (int i = 0; i < N; i++)
		ASSERT_OK(dynshm_area_free(a, p[i]));
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_true(st.allocations <= (uint64_t)unsure + KILLS + KIDS);
	free(p);
	ASSERT_OK(dynshm_area_destroy(a));
	munmap(sm, sizeof(*sm));
}

/* ---- hash table --------------------------------------------------------- */

struct kv {
	uint64_t v[2];
};

static int count_fn(const void *key, size_t len, void *value, void *arg)
{
	(void)key;
	(void)len;
	(void)value;
	(*(uint64_t *)arg)++;
	return 0;
}

/*
 * The largest values: an entry must be a small object of the area.  A
 * table whose entries were larger took a segment per entry and failed
 * after about a thousand (the area has 1024 segments).
 */
static void test_hash_value_limits(void **state)
{
	struct fixture *f = *state;
	static unsigned char value[8144];
	dynshm_area_ptr tp;
	dynshm_hash *t;
	dynshm_area *a;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_RC(dynshm_hash_create(a, 8, 8145, &tp, &t), -EINVAL);
	ASSERT_RC(dynshm_hash_create(a, DYNSHM_HASH_STRING, 7121, &tp, &t),
		  -EINVAL);
	ASSERT_OK(dynshm_hash_create(a, 8, sizeof(value), &tp, &t));
	for (uint64_t k = 0; k < 1500; k++) {
		memset(value, (int)k, sizeof(value));
		ASSERT_OK(dynshm_hash_insert(t, &k, value, 0));
	}
	ASSERT_OK(dynshm_hash_find(t, &(uint64_t){ 1234 }, value));
	assert_int_equal(value[0], 1234 & 0xff);
	assert_int_equal(value[sizeof(value) - 1], 1234 & 0xff);
	ASSERT_OK(dynshm_hash_destroy(t));
	ASSERT_OK(dynshm_area_destroy(a));
}

static void test_hash_basic(void **state)
{
	struct fixture *f = *state;
	dynshm_area_ptr tp, sp;
	dynshm_hash *t, *s, *t2;
	dynshm_area *a;
	struct kv v;
	uint64_t n = 0, key;
	int val;
	enum { N = 50000 };

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_OK(dynshm_hash_create(a, sizeof(uint64_t), sizeof(v), &tp, &t));
	for (key = 0; key < N; key++) {
		v.v[0] = key * 3;
		v.v[1] = ~key;
		ASSERT_OK(dynshm_hash_insert(t, &key, &v, 0));
	}
	key = 7;
	ASSERT_RC(dynshm_hash_insert(t, &key, &v, 0), -EEXIST);
	ASSERT_OK(dynshm_hash_attach(a, tp, &t2));
	for (key = 0; key < N; key++) {
		ASSERT_OK(dynshm_hash_find(t2, &key, &v));
		assert_int_equal(v.v[0], key * 3);
		assert_int_equal(v.v[1], ~key);
	}
	key = N;
	ASSERT_RC(dynshm_hash_find(t2, &key, &v), -ENOENT);
	for (key = 0; key < N; key += 2)
		ASSERT_OK(dynshm_hash_delete(t, &key));
	key = 0;
	ASSERT_RC(dynshm_hash_delete(t, &key), -ENOENT);
	ASSERT_OK(dynshm_hash_count(t, &n));
	assert_int_equal(n, N / 2);
	n = 0;
	ASSERT_OK(dynshm_hash_foreach(t, count_fn, &n));
	assert_int_equal(n, N / 2);
	key = 1;
	v.v[0] = 42;
	ASSERT_OK(dynshm_hash_insert(t, &key, &v, DYNSHM_HASH_REPLACE));
	ASSERT_OK(dynshm_hash_find(t, &key, &v));
	assert_int_equal(v.v[0], 42);
	ASSERT_OK(dynshm_hash_detach(t2));
	ASSERT_OK(dynshm_hash_destroy(t));

	ASSERT_OK(dynshm_hash_create(a, DYNSHM_HASH_STRING, sizeof(int), &sp,
				     &s));
	val = 1;
	ASSERT_OK(dynshm_hash_insert(s, "alpha", &val, 0));
	val = 2;
	ASSERT_OK(dynshm_hash_insert(s, "alphabet", &val, 0));
	ASSERT_OK(dynshm_hash_find(s, "alpha", &val));
	assert_int_equal(val, 1);
	ASSERT_RC(dynshm_hash_find(s, "alp", &val), -ENOENT);
	ASSERT_OK(dynshm_hash_delete(s, "alphabet"));
	ASSERT_OK(dynshm_hash_destroy(s));
	{
		dynshm_area_stats st;

		ASSERT_OK(dynshm_area_stats_get(a, &st));
		assert_int_equal(st.allocations, 0);
	}
	ASSERT_OK(dynshm_area_destroy(a));
}

/* Kid k's op i: i%3 == 0, 1 insert key(k, i); i%3 == 2 delete key(k, i-1). */
struct hstorm {
	_Atomic uint64_t done[KIDS]; /* ops that returned */
};

static uint64_t hkey(int k, uint64_t i)
{
	return (uint64_t)k << 40 | i;
}

static int hash_child(dynshm_hash *t, struct hstorm *hs, int k)
{
	uint64_t i = atomic_load(&hs->done[k]);
	bool first = true;

	for (;; i++, first = false) {
		uint64_t key = hkey(k, i % 3 == 2 ? i - 1 : i);
		uint64_t v = key ^ 0x5555;
		int rc;

		if (i % 3 == 2) {
			rc = dynshm_hash_delete(t, &key);
			CHILD_CHECK(rc == 0 || (first && rc == -ENOENT));
		} else {
			rc = dynshm_hash_insert(t, &key, &v, 0);
			CHILD_CHECK(rc == 0 || (first && rc == -EEXIST));
		}
		atomic_store(&hs->done[k], i + 1);
	}
}

static pid_t start_hash_child(dynshm_hash *t, struct hstorm *hs, int k)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		arm_hook();
		die_every = 3000; /* more keys, so more resizes */
		_exit(hash_child(t, hs, k));
	}
	assert_true(pid > 0);
	return pid;
}

struct seen {
	uint64_t *keys;
	uint64_t n, cap;
	int bad;
};

static int collect(const void *key, size_t len, void *value, void *arg)
{
	struct seen *s = arg;
	uint64_t k, v;

	memcpy(&k, key, 8);
	memcpy(&v, value, 8);
	if (len != 8 || v != (k ^ 0x5555))
		s->bad++;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->keys = realloc(s->keys, s->cap * 8);
	}
	s->keys[s->n++] = k;
	return 0;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_hash_storm(void **state)
{
	struct fixture *f = *state;
	struct hstorm *hs = shared_page(sizeof(*hs));
	uint64_t count, expect = 0;
	struct seen seen = { 0 };
	dynshm_area_stats st;
	dynshm_area_ptr tp;
	dynshm_hash *t;
	dynshm_area *a;
	int status;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_OK(dynshm_hash_create(a, 8, 8, &tp, &t));
	for (int k = 0; k < KIDS; k++)
		f->kids[k] = start_hash_child(t, hs, k);
	for (int n = 0; n < KILLS; n++) {
		int k = reap_any(f->kids, KIDS);

		f->kids[k] = start_hash_child(t, hs, k);
	}
	for (int k = 0; k < KIDS; k++) {
		kill(f->kids[k], SIGKILL);
		status = test_wait(f->kids[k]);
		f->kids[k] = 0;
		assert_int_equal(status, 128 + SIGKILL);
	}
	/* Every returned op holds; the in-flight one may have or not. */
	for (int k = 0; k < KIDS; k++) {
		uint64_t done = atomic_load(&hs->done[k]);

		for (uint64_t i = 0; i < done; i++) {
			uint64_t key = hkey(k, i), v = 0;
			int rc;

			if (i % 3 == 2 || (i % 3 == 1 && i + 1 == done))
				continue; /* no key, or its delete in flight */
			rc = dynshm_hash_find(t, &key, &v);
			if (i % 3 == 0) {
				if (rc != 0)
					fail_msg("key %d/%" PRIu64 " lost "
						 "(done %" PRIu64 ")", k, i,
						 done);
				assert_int_equal(v, key ^ 0x5555);
				expect++;
			} else if (rc != -ENOENT) {
				fail_msg("deleted key %d/%" PRIu64 " back",
					 k, i);
			}
		}
	}
	ASSERT_OK(dynshm_hash_foreach(t, collect, &seen));
	assert_int_equal(seen.bad, 0);
	qsort(seen.keys, seen.n, 8, cmp64);
	for (uint64_t i = 1; i < seen.n; i++)
		if (seen.keys[i] == seen.keys[i - 1])
			fail_msg("key %" PRIx64 " twice", seen.keys[i]);
	ASSERT_OK(dynshm_hash_count(t, &count));
	assert_int_equal(count, seen.n);
	assert_true(seen.n >= expect && seen.n <= expect + KIDS);
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	print_message("hash storm: %" PRIu64 " keys, %" PRIu64 " area "
		      "repairs\n", seen.n, st.repairs);
	free(seen.keys);
	ASSERT_OK(dynshm_hash_destroy(t));
	ASSERT_OK(dynshm_area_destroy(a));
	munmap(hs, sizeof(*hs));
}

/*
 * Replace storm: children overwrite 64 keys again and again with values
 * whose 32 words all hold one stamp, and die at the table's hook points.
 * Every key must stay, once, with a whole value (never half of two).
 */
#define RKEYS 64
#define RWORDS 32

static int replace_child(dynshm_hash *t)
{
	uint64_t v[RWORDS];
	uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;

	for (;;) {
		uint64_t key = rnd(&seed) % RKEYS, stamp = rnd(&seed);

		for (int w = 0; w < RWORDS; w++)
			v[w] = stamp;
		CHILD_CHECK(dynshm_hash_insert(t, &key, v,
					       DYNSHM_HASH_REPLACE) == 0);
	}
}

static pid_t start_replace_child(dynshm_hash *t)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		arm_hook();
		die_every = 200;
		_exit(replace_child(t));
	}
	assert_true(pid > 0);
	return pid;
}

static int whole_value(const void *key, size_t len, void *value, void *arg)
{
	const uint64_t *v = value;

	(void)key;
	(void)len;
	for (int w = 1; w < RWORDS; w++)
		if (v[w] != v[0])
			(*(int *)arg)++;
	return 0;
}

static void test_replace_storm(void **state)
{
	struct fixture *f = *state;
	uint64_t v[RWORDS] = { 0 }, count;
	dynshm_area_ptr tp;
	dynshm_hash *t;
	dynshm_area *a;
	int torn = 0, status;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_OK(dynshm_hash_create(a, 8, sizeof(v), &tp, &t));
	for (uint64_t key = 0; key < RKEYS; key++)
		ASSERT_OK(dynshm_hash_insert(t, &key, v, 0));
	for (int k = 0; k < KIDS; k++)
		f->kids[k] = start_replace_child(t);
	for (int n = 0; n < KILLS; n++) {
		int k = reap_any(f->kids, KIDS);

		f->kids[k] = start_replace_child(t);
	}
	for (int k = 0; k < KIDS; k++) {
		kill(f->kids[k], SIGKILL);
		status = test_wait(f->kids[k]);
		f->kids[k] = 0;
		assert_int_equal(status, 128 + SIGKILL);
	}
	ASSERT_OK(dynshm_hash_foreach(t, whole_value, &torn));
	assert_int_equal(torn, 0);
	ASSERT_OK(dynshm_hash_count(t, &count));
	assert_int_equal(count, RKEYS);
	for (uint64_t key = 0; key < RKEYS; key++)
		ASSERT_OK(dynshm_hash_find(t, &key, v));
	ASSERT_OK(dynshm_hash_destroy(t));
	ASSERT_OK(dynshm_area_destroy(a));
}

/* ---- scribbles -------------------------------------------------------------- */

/*
 * Shared data the area reads back is bounds-checked: a scribbled page
 * descriptor, page link or cache count makes an operation fail or a
 * repair happen, never an access outside a segment (each scenario below
 * reached far past its segment, or freed through a wild partition lock,
 * before the checks).  Peeks at the layout (src/facility/area_int.h).
 */
static struct area_seghdr *seg_of(dynshm_area *a, dynshm_area_ptr p)
{
	return dynshm_area_get(a, p >> AREA_OFF_BITS << AREA_OFF_BITS);
}

static struct area_page *page_of(dynshm_area *a, dynshm_area_ptr p)
{
	uint64_t n = ((p & AREA_OFF_MASK) - AREA_SEG_HDR) / AREA_PAGE_SIZE;

	return (void *)((char *)seg_of(a, p) + AREA_SEG_HDR +
			n * AREA_PAGE_SIZE);
}

static _Atomic uint32_t *desc_of(dynshm_area *a, dynshm_area_ptr p)
{
	uint64_t n = ((p & AREA_OFF_MASK) - AREA_SEG_HDR) / AREA_PAGE_SIZE;

	return &seg_of(a, p)->desc[n];
}

static void check_usable(dynshm_area *a, size_t size)
{
	dynshm_area_ptr q[200];
	dynshm_area_stats st;

	for (int i = 0; i < 200; i++) {
		int rc;

		while ((rc = dynshm_area_alloc(a, size, 0, &q[i])) == -EAGAIN)
			; /* a repair was due: the next call makes it */
		ASSERT_OK(rc);
		memset(dynshm_area_get(a, q[i]), i, size);
	}
	for (int i = 0; i < 200; i++)
		ASSERT_OK(dynshm_area_free(a, q[i]));
	ASSERT_OK(dynshm_area_stats_get(a, &st));
	assert_int_equal(st.total_bytes,
			 st.used_bytes + st.free_bytes + st.overhead_bytes);
}

static void test_scribbled(void **state)
{
	struct fixture *f = *state;
	struct area_hdr *hdr;
	struct area_cache *mine = NULL;
	struct area_page *pg;
	dynshm_area_ptr p, q[6];
	dynshm_area *a;
	uint32_t d, cls = 2; /* 48 bytes: no other test object has it */
	uint64_t me, off;
	int rc;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	hdr = a->hdr;

	/* a descriptor naming a partition past the table: refused */
	ASSERT_OK(dynshm_area_alloc(a, 64, 0, &p));
	d = atomic_load(desc_of(a, p));
	atomic_store(desc_of(a, p), d | 0xffffu << 8);
	ASSERT_RC(dynshm_area_free(a, p), -EINVAL);
	ASSERT_MSG_HAS("descriptor");
	atomic_store(desc_of(a, p), d | 100u << 1); /* class 100 of 32 */
	ASSERT_RC(dynshm_area_free(a, p), -EINVAL);
	atomic_store(desc_of(a, p), d);
	ASSERT_OK(dynshm_area_free(a, p));

	/* offsets past a segment have no address */
	off = AREA_SEG_SIZE + 4096;
	assert_null(dynshm_area_get(a, p >> AREA_OFF_BITS << AREA_OFF_BITS |
					       off));

	/*
	 * A page's partial-list link naming page 200 of a 63-page segment:
	 * the locked allocation that takes the page's last object unlinks
	 * it, and must not follow the link.
	 */
	for (int i = 0; i < 6; i++) /* 1 locked + 4 from the cache + 1 */
		ASSERT_OK(dynshm_area_alloc(a, 48, 0, &q[i]));
	pg = page_of(a, q[5]);
	assert_int_equal(pg->cls, cls);
	pg->next = (uint32_t)(q[5] >> AREA_OFF_BITS) << 8 | 200;
	pg->nfree = 1; /* the next locked allocation unlinks it */
	for (int i = 0; i < 5; i++) { /* 4 from the cache, then locked */
		while ((rc = dynshm_area_alloc(a, 48, 0, &p)) == -EAGAIN)
			;
		ASSERT_OK(rc);
		ASSERT_OK(dynshm_area_free(a, p));
	}
	for (int i = 0; i < 6; i++)
		ASSERT_OK(dynshm_area_free(a, q[i]));
	check_usable(a, 48);

	/* a cache count far past its slots: forgotten, never followed */
	ASSERT_OK(dynshm_proc_self(f->t.inst, &me));
	ASSERT_OK(dynshm_area_alloc(a, 48, 0, &p));
	for (uint32_t s = 0; s < AREA_NCACHES; s++)
		if (atomic_load(&hdr->caches[s].owner) == me)
			mine = &hdr->caches[s];
	assert_non_null(mine);
	atomic_store(&mine->count[cls], 0x40000000u);
	ASSERT_OK(dynshm_area_free(a, p));
	ASSERT_OK(dynshm_area_alloc(a, 48, 0, &p));
	atomic_store(&mine->count[cls], 0x40000000u);
	ASSERT_OK(dynshm_area_alloc(a, 48, 0, &q[0]));
	assert_true(q[0] != p);
	ASSERT_OK(dynshm_area_free(a, q[0]));
	ASSERT_OK(dynshm_area_free(a, p));
	check_usable(a, 48);
	ASSERT_OK(dynshm_area_destroy(a));
}

/*
 * The same for the table: a bucket array whose size word was scribbled,
 * an entry whose derived prev link names another entry, and a list made
 * into a cycle.  Before the checks the first read 2^60 buckets away, the
 * second made a delete drop a live entry it did not delete, the third
 * walked forever.
 */
#define SKEYS 2000

static struct hash_part *fullest_part(struct hash_hdr *hh, dynshm_area *a,
				      struct hash_entry **e)
{
	struct hash_part *best = NULL;

	for (uint32_t p = 0; p < HASH_NPARTS; p++)
		if (!best || hh->parts[p].count > best->count)
			best = &hh->parts[p];
	assert_true(best->count >= 4);
	e[0] = dynshm_area_get(a, best->head);
	for (int i = 1; i < 4; i++)
		e[i] = dynshm_area_get(a, e[i - 1]->next);
	return best;
}

static void test_hash_scribbled(void **state)
{
	struct fixture *f = *state;
	struct hash_entry *e[4];
	struct hash_buckets *bk;
	struct hash_part *pt;
	struct hash_hdr *hh;
	dynshm_area_ptr table, saved;
	dynshm_hash *t;
	dynshm_area *a;
	uint64_t v, key, count, log2, gone;

	ASSERT_OK(dynshm_area_create(f->t.inst, 0, 0, &a));
	ASSERT_OK(dynshm_hash_create(a, 8, 8, &table, &t));
	for (key = 0; key < SKEYS; key++)
		ASSERT_OK(dynshm_hash_insert(t, &key, &key, 0));
	hh = dynshm_area_get(a, table);

	/* a bucket array that says 2^60 buckets: refused, then repaired */
	pt = fullest_part(hh, a, e);
	bk = dynshm_area_get(a, pt->buckets);
	log2 = bk->log2;
	bk->log2 = 60;
	memcpy(&key, e[1]->data, 8);
	ASSERT_RC(dynshm_hash_find(t, &key, &v), -EUCLEAN);
	ASSERT_RC(dynshm_hash_delete(t, &key), -EUCLEAN);
	bk->log2 = log2;
	ASSERT_OK(dynshm_hash_find(t, &key, &v));
	assert_int_equal(v, key);

	/* e[2]'s prev names e[0]: the delete of e[2] must not drop e[1] */
	e[2]->prev = pt->head;
	memcpy(&gone, e[2]->data, 8);
	ASSERT_OK(dynshm_hash_delete(t, &gone));
	for (key = 0; key < SKEYS; key++)
		ASSERT_RC(dynshm_hash_find(t, &key, &v),
			  key == gone ? -ENOENT : 0);

	/* a cycle in the list: an error, not a walk forever */
	saved = e[1]->next;
	e[1]->next = pt->head;
	ASSERT_RC(dynshm_hash_foreach(t, count_fn, &count), -EUCLEAN);
	e[1]->next = saved;
	ASSERT_OK(dynshm_hash_count(t, &count));
	assert_int_equal(count, SKEYS - 1);
	ASSERT_OK(dynshm_hash_destroy(t));
	ASSERT_OK(dynshm_area_destroy(a));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_alloc_free_stats),
		T(test_grow_shrink_max),
		T(test_other_process),
		T(test_get_named),
		T(test_dead_cache),
		T(test_destroyed_elsewhere),
		T(test_segment_zero),
		T(test_threads),
		T(test_in_region),
		T(test_alloc_storm),
		T(test_hash_value_limits),
		T(test_hash_basic),
		T(test_hash_storm),
		T(test_replace_storm),
		T(test_scribbled),
		T(test_hash_scribbled),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	if (getenv("DYNSHM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DYNSHM_TEST_FILTER"));
	rc = cmocka_run_group_tests_name("area", tests, NULL, NULL);
	return rc || fixture_failures ? 1 : 0;
}
