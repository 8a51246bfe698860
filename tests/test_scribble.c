/* SPDX-License-Identifier: MIT */
/*
 * test_scribble.c - a control segment scribbled between calls, and dead
 * owners whose process entries were taken since (issue 13, items 4, 10
 * and 12).
 *
 * The control segment is shared memory any process of the user can write.
 * Every index and offset the library reads from it must be checked before
 * use; a derived structure found inconsistent is rebuilt from primary data
 * and the call that found it fails with -EUCLEAN naming it, and primary
 * data that cannot be right is refused, never followed:
 *   region_offset    a slot's block moved outside the region: attach fails,
 *                    it never returns an address outside the region;
 *   free-list head   a region free-list head out of range: create fails
 *                    (then works again), no SIGSEGV;
 *   free-slot cycle  the free-slot chain leads to a live slot: that slot is
 *                    never handed out again;
 *   named index      a named chain loops: reported and rebuilt; an index
 *                    wiped to empty is rebuilt by the next lock repair;
 *   header           a (C) header field changed between calls is put back;
 *   count            a scribbled segment count does not size the listing;
 *   row bits         reference bits beyond max_segments of a dead process
 *                    touch nothing outside its row;
 *   random           a child makes random calls with a random byte of the
 *                    control segment flipped before each: no crash.
 * Dead owners (item 12):
 *   slot 64+         a dead process holding references on slots 64 and
 *                    above: all of them released;
 *   entry taken      a CREATING or MORIBUND slot whose owner died and whose
 *                    process entry another live process holds now: the
 *                    reaper finishes it (the entry's generation differs),
 *                    also when the new occupant has the old pid number.
 * Cases that could crash the library run in a forked child, so a crash is
 * a failure of that case, not of the program.
 */
#include "testutil.h"

#include "src/control.h"
#include "src/region.h"
#include "src/wrapper.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm_assert.h"

#define HANG_SECONDS 60

static volatile pid_t running_child; /* killed with us on a hang */

static void on_alarm(int sig)
{
	static const char msg[] = "test_scribble: HANG DETECTED (alarm)\n";

	(void)sig;
	if (running_child > 0)
		kill(running_child, SIGKILL);
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* ---- fixture --------------------------------------------------------------- */

static struct test_fixture fx;
static pid_t kid; /* a child the teardown kills */

static int open_with(const char *max_segments, bool region)
{
	kid = 0;
	if (region ? test_fixture_setup(&fx, true, "posix", "max_segments",
					max_segments,
					"min_dynamic_shared_memory", "1MB",
					"huge_pages", "off", (char *)NULL)
		   : test_fixture_setup(&fx, true, "posix", "max_segments",
					max_segments, (char *)NULL))
		return -1;
	alarm(HANG_SECONDS);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return open_with("32", false);
}

static int setup_region(void **state)
{
	(void)state;
	return open_with("32", true);
}

static int setup_80(void **state)
{
	(void)state;
	return open_with("80", false);
}

static int teardown(void **state)
{
	(void)state;
	alarm(0);
	dynshm_test_hook = NULL;
	if (kid > 0) {
		kill(kid, SIGKILL);
		test_wait(kid);
	}
	/* reset: whatever a scribble made unreachable goes too */
	return test_fixture_teardown(&fx, true, "teardown");
}

static struct ctl *ctl(void)
{
	return &fx.inst->c;
}

/* The raw lock: no repair, no checks (what a scribbler would do). */
static void lock(void)
{
	bool stolen;

	assert_int_equal(lock_take(fx.inst, true, &stolen), 0);
	if (stolen || ctl()->hdr->lock_holder != CTL_NONE)
		fail_msg("the control lock was found dead-owned");
}

static void unlock(void)
{
	lock_give(fx.inst);
}

static uint32_t slot_of(dynshm_handle h)
{
	return (uint32_t)(h & HANDLE_SLOT_MASK);
}

static unsigned segments(void)
{
	dynshm_instance_info info;

	ASSERT_OK(dynshm_instance_info_get(fx.inst, &info, sizeof(info)));
	return info.segments;
}

/* Run fn in a forked child: 0, or a failure naming how it ended. */
static void in_child(const char *what, int (*fn)(void *), void *arg)
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	running_child = pid;
	status = test_wait(pid);
	running_child = 0;

	if (status != 0)
		fail_msg("%s: the child %s %d", what,
			 status > 128 ? "was killed by signal" : "exited with",
			 status > 128 ? status - 128 : status);
}

#define CK(cond)                                                               \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: child check failed: %s (%s)\n", \
				__FILE__, __LINE__, #cond,                     \
				dynshm_last_error());                          \
			return 1;                                              \
		}                                                              \
	} while (0)

/* ---- item 4: scribbled region_offset and order ------------------------------ */

static void test_scribbled_region_offset(void **state)
{
	dynshm_segment *seg = NULL;
	dynshm_handle h;
	struct ctl_slot *slot;
	uint64_t offset;
	uint32_t order;

	(void)state;
	ASSERT_OK(dynshm_create(fx.inst, 4096,
				DYNSHM_CREATE_REGION | DYNSHM_CREATE_PIN, &seg));
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_detach(seg));
	slot = &ctl()->slots[slot_of(h)];
	offset = slot->region_offset;
	order = slot->region_order;

	lock();
	slot->region_offset = ctl()->hdr->region_size * 4; /* outside */
	unlock();
	seg = NULL;
	ASSERT_RC(dynshm_attach(fx.inst, h, &seg), -EUCLEAN);
	ASSERT_MSG_HAS("region_offset");
	assert_null(seg);

	lock();
	slot->region_offset = offset;
	slot->region_order = 30; /* a block larger than any region */
	unlock();
	ASSERT_RC(dynshm_attach(fx.inst, h, &seg), -EUCLEAN);
	ASSERT_MSG_HAS("region_order");

	lock();
	slot->region_order = order;
	unlock();
	ASSERT_OK(dynshm_attach(fx.inst, h, &seg));
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_unpin_segment(fx.inst, h));
	assert_int_equal(segments(), 0);
}

/* ---- item 4: scribbled region free-list heads ------------------------------- */

static int scribbled_head_child(void *arg)
{
	struct region_ctl *r = region_of(ctl());
	dynshm_segment *seg = NULL;
	bool stolen;
	int rc;

	(void)arg;
	CK(lock_take(fx.inst, true, &stolen) == 0 && !stolen);
	for (uint32_t o = 0; o < REGION_ORDERS; o++)
		r->head[o] = 0x7ffffff0u - o; /* far beyond the region */
	lock_give(fx.inst);
	rc = dynshm_create(fx.inst, 4096, DYNSHM_CREATE_REGION, &seg);
	CK(rc == -EUCLEAN);
	CK(strstr(dynshm_last_error(), "free list") != NULL);
	/* rebuilt from the slots: the next create works */
	CK(dynshm_create(fx.inst, 4096, DYNSHM_CREATE_REGION, &seg) == 0);
	CK(dynshm_detach(seg) == 0);
	return 0;
}

static void test_scribbled_free_list_head(void **state)
{
	(void)state;
	in_child("create with a scribbled free-list head",
		 scribbled_head_child, NULL);
	assert_int_equal(segments(), 0);
}

/* ---- item 4: a cycle in the free-slot chain --------------------------------- */

static void test_free_slot_cycle(void **state)
{
	dynshm_segment *a = NULL, *b = NULL, *c = NULL;
	dynshm_segment_info si;
	dynshm_handle ha;
	uint32_t f;
	int rc;

	(void)state;
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &a));
	ha = dynshm_segment_handle(a);
	lock();
	/* the next free slot's link leads back to the live slot of a */
	f = ctl()->hdr->free_head;
	assert_int_not_equal(f, CTL_NONE);
	ctl()->slots[f].next_free = slot_of(ha);
	unlock();

	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &b)); /* takes f */
	rc = dynshm_create(fx.inst, 4096, 0, &c);	 /* would take a's */
	if (rc == 0)
		assert_int_not_equal(slot_of(dynshm_segment_handle(c)),
				     slot_of(ha));
	ASSERT_RC(rc, -EUCLEAN);
	ASSERT_MSG_HAS("free-slot list");
	/* a is untouched and still attachable by its handle */
	ASSERT_OK(dynshm_stat(fx.inst, ha, &si, sizeof(si)));
	assert_int_equal(si.state, DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(si.references, 1);
	/* rebuilt: the next create gets a free slot */
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &c));
	assert_int_not_equal(slot_of(dynshm_segment_handle(c)), slot_of(ha));
	ASSERT_OK(dynshm_detach(c));
	ASSERT_OK(dynshm_detach(b));
	ASSERT_OK(dynshm_detach(a));
	assert_int_equal(segments(), 0);
}

/* ---- item 4: a (C) header field scribbled between calls ---------------------- */

static int scribbled_header_child(void *arg)
{
	dynshm_segment *seg = NULL;
	uint32_t max = ctl()->hdr->max_segments;

	(void)arg;
	ctl()->hdr->max_segments = 1u << 20; /* walks would leave the map */
	CK(dynshm_create(fx.inst, 4096, 0, &seg) == -EUCLEAN);
	CK(strstr(dynshm_last_error(), "max_segments") != NULL);
	CK(ctl()->hdr->max_segments == max);
	CK(dynshm_create(fx.inst, 4096, 0, &seg) == 0);
	CK(dynshm_detach(seg) == 0);
	return 0;
}

static void test_scribbled_header(void **state)
{
	(void)state;
	in_child("a call after max_segments was scribbled",
		 scribbled_header_child, NULL);
	assert_int_equal(segments(), 0);
}

/*
 * dynshm_find_mapping reads no shared header either: with max_segments
 * scribbled to its largest value, a handle naming a far slot used to index
 * the process's table of mappings (max_segments entries, as validated at
 * open) far past its end - a crash, or a stale pointer handed out.
 */
static int scribbled_find_child(void *arg)
{
	dynshm_segment *seg = NULL, *found = (dynshm_segment *)&found;
	uint32_t max = ctl()->hdr->max_segments;

	(void)arg;
	CK(dynshm_create(fx.inst, 4096, 0, &seg) == 0);
	ctl()->hdr->max_segments = UINT32_MAX;
	CK(dynshm_find_mapping(fx.inst, (dynshm_handle)0x0123450000fffff0ull,
			       &found) == -ENOENT);
	CK(found == NULL);
	CK(dynshm_find_mapping(fx.inst, dynshm_segment_handle(seg), &found) ==
	   0);
	CK(found == seg);
	ctl()->hdr->max_segments = max;
	CK(dynshm_detach(seg) == 0);
	return 0;
}

static void test_scribbled_header_find_mapping(void **state)
{
	(void)state;
	in_child("dynshm_find_mapping after max_segments was scribbled",
		 scribbled_find_child, NULL);
	assert_int_equal(segments(), 0);
}

/* ---- item 4: a scribbled segment count sizes nothing --------------------------- */

static int count_one(const dynshm_segment_info *info, void *arg)
{
	(void)info;
	++*(unsigned *)arg;
	return 0;
}

static int scribbled_count_child(void *arg)
{
	dynshm_segment *a = NULL, *b = NULL;
	unsigned seen = 0;

	(void)arg;
	CK(dynshm_create(fx.inst, 4096, 0, &a) == 0);
	CK(dynshm_create(fx.inst, 4096, 0, &b) == 0);
	ctl()->hdr->nsegments = UINT32_MAX; /* derived: sized the listing */
	CK(dynshm_foreach_segment(fx.inst, count_one, &seen) == 0);
	CK(seen == 2);
	CK(dynshm_detach(a) == 0);
	CK(dynshm_detach(b) == 0);
	return 0;
}

static void test_scribbled_count(void **state)
{
	(void)state;
	in_child("listing after nsegments was scribbled", scribbled_count_child,
		 NULL);
}

/* ---- item 4: reference bits beyond max_segments ----------------------------- */

/*
 * A dead process whose row has bits beyond max_segments (80: bits 80..127
 * of its second word): releasing it must touch nothing but its row - in
 * particular not "the refcount of slot 100", which lies in the rows of
 * other processes.
 */
static void test_row_bits_beyond_max(void **state)
{
	struct ctl *c = ctl();
	dynshm_segment *mine = NULL;
	dynshm_instance *other = NULL;
	size_t from, to;
	unsigned char *before;
	uint32_t dead;

	(void)state;
	ASSERT_OK(dynshm_create(fx.inst, 4096, 0, &mine));
	ASSERT_OK(dynshm_instance_open(fx.path, fx.cfg, 0, &other));
	dead = other->me;
	lock();
	ctl_row(c, dead)[1] |= ~(uint64_t)0 << (80 - 64);
	unlock();
	/* "dead": the kernel drops its entry's lock (liveness.c) */
	close(other->live_fd);
	other->live_fd = -1;
	/* everything after the slots but the dead row must stay as it is */
	from = (size_t)((char *)c->refs - (char *)c->hdr);
	to = c->hdr->total_size;
	before = malloc(to - from);
	assert_non_null(before);
	memcpy(before, (char *)c->hdr + from, to - from);
	ASSERT_OK(dynshm_reap(fx.inst, NULL));
	assert_int_equal(c->procs[dead].state, PROC_FREE);
	memset(before + ((char *)ctl_row(c, dead) - (char *)c->refs), 0,
	       c->hdr->row_words * 8);
	for (size_t i = 0; i < to - from; i++)
		if (before[i] != ((unsigned char *)c->hdr)[from + i])
			fail_msg("byte %zu after the slots changed (0x%02x -> "
				 "0x%02x)",
				 from + i, before[i],
				 ((unsigned char *)c->hdr)[from + i]);
	free(before);
	assert_int_equal(c->slots[slot_of(dynshm_segment_handle(mine))].refcount,
			 1);
	dynshm_instance_close(other); /* released already: frees only */
	ASSERT_OK(dynshm_detach(mine));
	assert_int_equal(segments(), 0);
}

/* ---- items 4 and 10: the named index ------------------------------------------ */

static void test_named_index_scribbled(void **state)
{
	struct ctl *c = ctl();
	dynshm_segment *a = NULL, *b = NULL;

	uint32_t sa;

	(void)state;
	ASSERT_OK(dynshm_create_named(fx.inst, "alpha", 4096, 0, &a));
	sa = slot_of(dynshm_segment_handle(a));
	lock();
	/* every chain leads to alpha, whose link loops back to itself */
	for (uint32_t k = 0; k < c->hdr->name_buckets; k++)
		c->names[k] = sa;
	c->slots[sa].name_next = sa;
	unlock();
	ASSERT_RC(dynshm_attach_named(fx.inst, "beta", &b), -EUCLEAN);
	ASSERT_MSG_HAS("in a cycle");
	ASSERT_RC(dynshm_attach_named(fx.inst, "beta", &b), -ENOENT);
	ASSERT_OK(dynshm_attach_named(fx.inst, "alpha", &b));
	ASSERT_OK(dynshm_detach(b));
	lock();
	for (uint32_t k = 0; k < c->hdr->name_buckets; k++)
		c->names[k] = 0xfffffff0u; /* every chain out of range */
	unlock();
	ASSERT_RC(dynshm_attach_named(fx.inst, "alpha", &b), -EUCLEAN);
	ASSERT_MSG_HAS("named index");
	ASSERT_OK(dynshm_attach_named(fx.inst, "alpha", &b)); /* rebuilt */
	assert_ptr_equal(a, b);
	ASSERT_OK(dynshm_detach(b));
	ASSERT_OK(dynshm_detach(a));
	assert_int_equal(segments(), 0);
}

/* Takes the control lock, as a holder marks it, and dies holding it. */
static int die_holding_lock(void *arg)
{
	bool stolen;

	(void)arg;
	if (lock_take(fx.inst, true, &stolen) == 0)
		ctl()->hdr->lock_holder = CTL_ANON;
	raise(SIGKILL);
	return 1;
}

/*
 * An index wiped to empty loses names silently (no lookup can tell in
 * O(1)); the index is derived data, so the next repair brings them back.
 */
static void test_named_index_rebuilt_by_repair(void **state)
{
	struct ctl *c = ctl();
	dynshm_segment *a = NULL, *b = NULL;
	dynshm_instance_info info;

	(void)state;
	ASSERT_OK(dynshm_create_named(fx.inst, "alpha", 4096, 0, &a));
	lock();
	for (uint32_t k = 0; k < c->hdr->name_buckets; k++)
		c->names[k] = CTL_NONE;
	unlock();
	ASSERT_RC(dynshm_attach_named(fx.inst, "alpha", &b), -ENOENT);
	assert_int_equal(test_fork(die_holding_lock, NULL), 128 + SIGKILL);
	ASSERT_OK(dynshm_attach_named(fx.inst, "alpha", &b));
	assert_ptr_equal(a, b);
	ASSERT_OK(dynshm_instance_info_get(fx.inst, &info, sizeof(info)));
	assert_int_equal(info.lock_repairs, 1);
	ASSERT_OK(dynshm_detach(b));
	ASSERT_OK(dynshm_detach(a));
}

/* ---- item 4: random scribbles between random calls ----------------------------- */

#define SCRIBBLE_ROUNDS 400

static uint64_t rng;

static uint64_t next_random(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * A random byte of the control segment (total bytes, read before the first
 * scribble: the header's copy may be scribbled itself) but the lock word
 * and `destroyed`.  (A lock word scribbled to name a live process's seat
 * keeps everyone waiting until that process takes the lock or exits, as a
 * scribbled mutex did; lock_holder may be hit: the next locker then
 * repairs for nothing.)
 */
static bool spared(size_t at)
{
	size_t word = offsetof(struct ctl_header, lock_word);
	size_t dead = offsetof(struct ctl_header, destroyed);

	return (at >= word && at < word + 4) || (at >= dead && at < dead + 4);
}

static void scribble_one(struct ctl *c, size_t total)
{
	size_t at;

	do
		at = (size_t)(next_random() % total);
	while (spared(at));
	((unsigned char *)c->hdr)[at] ^= (unsigned char)(1u << (next_random() % 8));
}

static int random_scribbles_child(void *arg)
{
	static const char *const names[] = { "n0", "n1", "n2", "n3" };
	dynshm_segment *held[8] = { 0 };
	dynshm_handle handles[8] = { 0 };
	size_t total = ctl()->hdr->total_size;
	unsigned ok = 0, refused = 0;

	(void)arg;
	for (int round = 0; round < SCRIBBLE_ROUNDS; round++) {
		unsigned k = (unsigned)(next_random() % 8);
		unsigned op = (unsigned)(next_random() % 5);
		dynshm_segment *seg = NULL;
		int rc = 0;

		scribble_one(ctl(), total);
		if (op == 0 && !held[k]) {
			rc = dynshm_create(fx.inst, 1 + next_random() % 20000,
					   (unsigned)(next_random() % 3) == 0
						   ? DYNSHM_CREATE_NO_REGION
						   : 0,
					   &held[k]);
			if (rc == 0)
				handles[k] = dynshm_segment_handle(held[k]);
		} else if (op == 1 && handles[k]) {
			rc = dynshm_attach(fx.inst, handles[k], &seg);
			if (rc == 0)
				rc = dynshm_detach(seg);
		} else if (op == 2 && held[k]) {
			memset(dynshm_segment_address(held[k]), 0x77,
			       dynshm_segment_size(held[k]));
			rc = dynshm_detach(held[k]);
			held[k] = NULL;
		} else if (op == 3) {
			rc = dynshm_get_named(fx.inst, names[k % 4], 4096, 0,
					      NULL, NULL, &seg, NULL);
			if (rc == 0)
				rc = dynshm_detach(seg);
		} else if (op == 4 && handles[k]) {
			rc = dynshm_destroy(fx.inst, handles[k]);
		}
		if (rc == 0)
			ok++;
		else
			refused++;
	}
	for (unsigned k = 0; k < 8; k++)
		if (held[k])
			dynshm_detach(held[k]);
	printf("random scribbles: %d rounds, %u calls succeeded, %u refused\n",
	       SCRIBBLE_ROUNDS, ok, refused);
	return 0;
}

static void test_random_scribbles(void **state)
{
	const char *seed = getenv("SCRIBBLE_SEED");

	(void)state;
	if (seed && *seed)
		rng = strtoull(seed, NULL, 0);
	else if (getrandom(&rng, sizeof(rng), 0) != sizeof(rng))
		rng = 1;
	print_message("SCRIBBLE_SEED=0x%" PRIx64 "\n", rng);
	fflush(NULL);
	in_child("random calls with random scribbles", random_scribbles_child,
		 NULL);
}

/* ---- item 12: a dead process holding slots 64 and above -------------------- */

static int hold_70_and_die(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg;

	(void)arg;
	CK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	for (int i = 0; i < 70; i++)
		CK(dynshm_create(inst, 4096, 0, &seg) == 0);
	raise(SIGKILL);
	return 1;
}

static void test_dead_holds_slot_64(void **state)
{
	unsigned reaped = 0;

	(void)state;
	assert_int_equal(test_fork(hold_70_and_die, NULL), 128 + SIGKILL);
	assert_int_equal(segments(), 70);
	ASSERT_OK(dynshm_reap(fx.inst, &reaped));
	assert_int_equal(reaped, 1);
	/* every one of them, slots 64..69 included */
	assert_int_equal(segments(), 0);
	assert_int_equal(ctl()->procs[0].nrefs, 0);
}

/* ---- item 12: an owner entry that belongs to another process now ------------ */

static const char *die_at;

static void die_hook(const char *point)
{
	if (die_at && strcmp(point, die_at) == 0)
		raise(SIGKILL);
}

/* Reserve a slot (CREATING) or retire one (MORIBUND), die right there. */
static int owner_dies(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	die_at = arg;
	CK(dynshm_instance_open(fx.path, fx.cfg, DYNSHM_OPEN_NOREAP, &inst) ==
	   0);
	dynshm_test_hook = die_hook;
	if (strcmp(die_at, "create:before-os") == 0) {
		dynshm_create(inst, 4096, 0, &seg);
	} else {
		dynshm_test_hook = NULL;
		CK(dynshm_create(inst, 4096, 0, &seg) == 0);
		dynshm_test_hook = die_hook;
		dynshm_detach(seg);
	}
	return 1; /* not reached */
}

/* A new process that joins (taking the lowest free entry) and waits. */
static pid_t start_occupant(int *release_fd, uint32_t *entry)
{
	int go[2], ready[2];
	pid_t pid;
	char c = 0;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dynshm_instance *inst = NULL;
		uint32_t me;

		close(go[1]);
		close(ready[0]);
		if (dynshm_instance_open(fx.path, fx.cfg, DYNSHM_OPEN_NOREAP,
					 &inst) != 0)
			_exit(1);
		me = inst->me;
		if (write(ready[1], &me, sizeof(me)) != sizeof(me))
			_exit(1);
		(void)!read(go[0], &c, 1); /* until the test lets go */
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], entry, sizeof(*entry)),
			 (ssize_t)sizeof(*entry));
	close(ready[0]);
	*release_fd = go[1];
	return pid;
}

static void entry_taken(const char *point, uint32_t want_state,
			bool same_pid)
{
	struct ctl *c = ctl();
	uint32_t s = CTL_NONE, owner, entry = CTL_NONE;
	dynshm_segment_info si;
	dynshm_handle h;
	int release = -1;

	assert_int_equal(test_fork(owner_dies, (void *)point), 128 + SIGKILL);
	lock();
	for (uint32_t i = 0; i < c->hdr->max_segments; i++)
		if (c->slots[i].state != SLOT_FREE)
			s = i;
	assert_int_not_equal(s, CTL_NONE);
	assert_int_equal(c->slots[s].state, want_state);
	owner = c->slots[s].owner;
	h = c->slots[s].handle;
	/*
	 * The owner's entry is released without its slot being finished (a
	 * reap that judged it dead while it was still inside its call, or a
	 * library of the past); a new process takes the entry.
	 */
	ctl_row(c, owner)[0] = 0;
	c->procs[owner].state = PROC_FREE;
	unlock();
	kid = start_occupant(&release, &entry);
	assert_int_equal(entry, owner);
	if (same_pid) {
		/* the dead owner had the new one's pid number (PID namespaces) */
		lock();
		c->slots[s].owner_pid = c->procs[entry].pid;
		unlock();
	}
	ASSERT_OK(dynshm_reap(fx.inst, NULL));
	/* the new occupant's liveness is not the old owner's */
	ASSERT_RC(dynshm_stat(fx.inst, h, &si, sizeof(si)), -ENOENT);
	assert_int_equal(segments(), 0);
	assert_int_equal(c->procs[entry].state, PROC_LIVE); /* still there */
	close(release);
	assert_int_equal(test_wait(kid), 0);
	kid = 0;
}

static void test_creating_owner_entry_taken(void **state)
{
	(void)state;
	entry_taken("create:before-os", SLOT_CREATING, false);
}

static void test_creating_owner_entry_taken_same_pid(void **state)
{
	(void)state;
	entry_taken("create:before-os", SLOT_CREATING, true);
}

static void test_moribund_owner_entry_taken(void **state)
{
	(void)state;
	entry_taken("destroy:before-os", SLOT_MORIBUND, false);
}

static void test_moribund_owner_entry_taken_same_pid(void **state)
{
	(void)state;
	entry_taken("destroy:before-os", SLOT_MORIBUND, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scribbled_region_offset,
						setup_region, teardown),
		cmocka_unit_test_setup_teardown(test_scribbled_free_list_head,
						setup_region, teardown),
		cmocka_unit_test_setup_teardown(test_free_slot_cycle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scribbled_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scribbled_count, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_scribbled_header_find_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_bits_beyond_max,
						setup_80, teardown),
		cmocka_unit_test_setup_teardown(test_named_index_scribbled,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_named_index_rebuilt_by_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_scribbles,
						setup_region, teardown),
		cmocka_unit_test_setup_teardown(test_dead_holds_slot_64,
						setup_80, teardown),
		cmocka_unit_test_setup_teardown(test_creating_owner_entry_taken,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_creating_owner_entry_taken_same_pid, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_moribund_owner_entry_taken,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_moribund_owner_entry_taken_same_pid, setup,
			teardown),
	};

	dynshm_test_instance_tag = TEST_TAG;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests_name("scribble", tests, NULL, NULL);
}
