/* SPDX-License-Identifier: MIT */
/*
 * test_ident.c - the library maps and removes only what it made (issue 13).
 *
 * Each case is a fault or a hostile neighbour that once made the library
 * map or remove memory that was not the segment a handle names, or leak an
 * object nothing could find:
 *   sysv identity  a SysV key is not unique per handle.  A creator killed
 *                  before its shmget succeeded, while another program's
 *                  segment holds the key: the reaper must leave that
 *                  segment alone.  A segment removed behind the library's
 *                  back whose key another segment then takes: its handle
 *                  must not map the newcomer, nor destroy remove it.  A
 *                  creator killed after its shmget: the reaper removes its
 *                  object (proved by creator pid, time and size);
 *   group mode     an object whose mode lets its group read or write it
 *                  (0640, 0660, 0620) is refused like one open to all;
 *   map count      a mapping refused with ENOMEM names vm.max_map_count
 *                  and the region;
 *   first open     kill -9 at each step of the first open of an instance
 *                  (object made, allocated, formatted, state written):
 *                  after a reset nothing of any incarnation remains;
 *   vanished       another program unlinks a segment's object: attach says
 *                  it vanished, list shows it, destroy and gc retire it;
 *   planted        after a reboot emptied /dev/shm, something else sits at
 *                  the control object's name: commands refuse it clearly,
 *                  a reset recovers with a new id.
 * One group per backend where the backend matters.  Children are forked
 * and use CHILD_CHECK, never CMocka's asserts.  Runs alone (is_parallel:
 * false): sysv objects share the test tag.
 */
#include "inject.h"
#include "testutil.h"

#include "src/control.h"
#include "src/sys.h"
#include "src/wrapper.h"

#include <dynshm/dsm.h>
#include <dynshm/dsm_impl.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define SEG_SIZE 8192
/* A segment with an OS object of its own that outlives its mapping. */
#define PINNED_OWN (DYNSHM_CREATE_PIN | DYNSHM_CREATE_NO_REGION)
#define KILLED (128 + SIGKILL)

static const struct test_backend *be;
/* be's backend, small limits; the instance is opened by each test */
static struct test_fixture fx;

/* ---- fixture and helpers ------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	return test_fixture_setup(&fx, false, be->name, "max_segments", "64",
				  "max_processes", "16", (char *)NULL);
}

static int teardown(void **state)
{
	(void)state;
	dynshm_test_hook = NULL;
	inject_reset();
	return test_fixture_teardown(&fx, false, be ? be->name : "teardown");
}

static dynshm_instance *xopen(unsigned flags)
{
	dynshm_instance *inst = NULL;
	int rc = dynshm_instance_open(fx.path, fx.cfg, flags, &inst);

	if (rc != 0)
		fail_msg("dynshm_instance_open(%s): %d (%s)", fx.path, rc,
			 dynshm_last_error());
	return inst;
}

static uint64_t id_of(dynshm_instance *inst)
{
	static dynshm_instance_info info;

	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)), 0);
	return info.instance_id;
}

static unsigned segments_of(dynshm_instance *inst)
{
	static dynshm_instance_info info;

	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)), 0);
	return info.segments;
}

static void assert_message_has(const char *what)
{
	const char *msg = dynshm_last_error();

	if (!strstr(msg, what))
		fail_msg("message \"%s\" does not mention \"%s\"", msg, what);
}

static dynshm_impl_space *space_of(uint64_t id)
{
	dynshm_impl_space *space = NULL;

	if (dynshm_impl_space_open(be->type, id, fx.path, &space) != 0)
		fail_msg("space_open: %s", dynshm_last_error());
	return space;
}

/* The SysV key of (id, handle), as the backend names it. */
static key_t sysv_key_of(uint64_t id, dynshm_handle h)
{
	dynshm_impl_space *space = space_of(id);
	char name[64];
	unsigned key = 0;

	assert_int_equal(dynshm_impl_object_name(space, h, name, sizeof(name)),
			 0);
	dynshm_impl_space_close(space);
	assert_int_equal(sscanf(name, "sysv:0x%x", &key), 1);
	return (key_t)key;
}

/* The path of (id, handle)'s object for posix and mmap. */
static void object_path(uint64_t id, dynshm_handle h, char *buf, size_t len)
{
	dynshm_impl_space *space = space_of(id);
	char name[DYNSHM_IMPL_NAME_MAX];

	assert_int_equal(dynshm_impl_object_name(space, h, name, sizeof(name)),
			 0);
	dynshm_impl_space_close(space);
	if (be->type == DYNSHM_IMPL_POSIX)
		snprintf(buf, len, "/dev/shm%s", name);
	else
		snprintf(buf, len, "%s", name);
}

/*
 * A SysV segment of ours (0600) at key, made by another process (so its
 * creator pid is not ours), holding text.  Its shmid, or -1.
 */
static int plant_sysv(key_t key, size_t size, const char *text)
{
	int fds[2], id = -1;
	pid_t pid;

	if (pipe(fds) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int got = shmget(key, size, IPC_CREAT | IPC_EXCL | 0600);
		char *p = got >= 0 ? shmat(got, NULL, 0) : (void *)-1;

		if (p != (void *)-1) {
			snprintf(p, size, "%s", text);
			shmdt(p);
		}
		if (write(fds[1], &got, sizeof(got)) != sizeof(got))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &id, sizeof(id)) != sizeof(id))
		id = -1;
	close(fds[0]);
	if (pid > 0)
		test_wait(pid);
	return id;
}

/* Is shmid still the segment under key? */
static bool sysv_alive(int id, key_t key)
{
	struct shmid_ds ds;

	return shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_perm.__key == key;
}

static dynshm_segment_state listed_state(dynshm_instance *inst,
					 dynshm_handle h);

/* ---- sysv identity (issue 13, item 1) ------------------------------------ */

/*
 * The creator's shmget, replaced: before it runs, another process takes the
 * key (a "foreign" segment of the same uid, mode and size), then the
 * creator dies - killed after reserving its slot, before its own object
 * existed.  The foreign shmid goes to the parent through collide_fd.
 */
static int collide_fd = -1;
static bool collide_after; /* die after the real shmget instead */

static int colliding_shmget(key_t key, size_t size, int flags)
{
	int id;

	if (!(flags & IPC_CREAT))
		return shmget(key, size, flags);
	if (collide_after) {
		id = shmget(key, size, flags);
		if (write(collide_fd, &key, sizeof(key)) != sizeof(key))
			_exit(1);
		raise(SIGKILL);
	}
	id = plant_sysv(key, size, "foreign");
	if (write(collide_fd, &id, sizeof(id)) != sizeof(id) ||
	    write(collide_fd, &key, sizeof(key)) != sizeof(key))
		_exit(1);
	raise(SIGKILL);
	return -1;
}

static int child_create_colliding(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	(void)arg;
	dynshm_test_instance_tag = TEST_TAG;
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	dynshm_sys.shmget = colliding_shmget;
	dynshm_create(inst, SEG_SIZE, 0, &seg);
	return 3; /* not reached: the shmget dies */
}

/* A child creates and dies in its shmget; what it reports, read. */
static void run_colliding(bool after, int *id, key_t *key)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	collide_fd = fds[1];
	collide_after = after;
	assert_int_equal(test_fork(child_create_colliding, NULL), KILLED);
	close(fds[1]);
	if (!after)
		assert_int_equal(read(fds[0], id, sizeof(*id)), sizeof(*id));
	assert_int_equal(read(fds[0], key, sizeof(*key)), sizeof(*key));
	close(fds[0]);
}

static void test_sysv_reaper_spares_foreign(void **state)
{
	dynshm_instance *inst;
	int id = -1;
	key_t key = 0;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	inst = xopen(0);
	run_colliding(false, &id, &key);
	assert_true(id >= 0);
	assert_int_equal(segments_of(inst), 1); /* the dead creator's slot */
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	/* the slot is gone, the segment that held the key is not */
	assert_int_equal(segments_of(inst), 0);
	assert_true(sysv_alive(id, key));
	assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static void test_sysv_killed_after_shmget(void **state)
{
	dynshm_instance *inst;
	int id = -1;
	key_t key = 0;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	inst = xopen(0);
	run_colliding(true, &id, &key);
	assert_true(shmget(key, 0, 0) >= 0); /* made, recorded nowhere */
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	/* proved the creator's by pid, time and size: removed */
	assert_int_equal(segments_of(inst), 0);
	assert_true(shmget(key, 0, 0) < 0 && errno == ENOENT);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/*
 * The same, with the creator's clock a second ahead of the kernel's: its
 * slot says it reserved just after a second began, while shm_ctime (the
 * kernel's coarse clock, a few ms behind) still reads the second before.
 * The reaper must still take the object for the creator's.  (Made here by
 * moving the slot's reservation time forward; it happened by itself about
 * once in 250 runs of the test above, and left the object behind.)
 */
static void test_sysv_killed_after_shmget_coarse_clock(void **state)
{
	dynshm_instance *inst;
	struct shmid_ds ds;
	struct ctl *c;
	int id = -1, n = 0;
	key_t key = 0;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	inst = xopen(0);
	run_colliding(true, &id, &key);
	id = shmget(key, 0, 0);
	assert_true(id >= 0);
	assert_int_equal(shmctl(id, IPC_STAT, &ds), 0);
	c = &inst->c;
	for (uint32_t s = 0; s < c->hdr->max_segments; s++)
		if (c->slots[s].state == SLOT_CREATING) {
			c->slots[s].created_ns =
				((uint64_t)ds.shm_ctime + 1) * 1000000000u +
				1000000u;
			n++;
		}
	assert_int_equal(n, 1);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_true(shmget(key, 0, 0) < 0 && errno == ENOENT);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/*
 * A segment removed behind the library's back, and another segment (same
 * uid, mode and size) made at its key: the old handle must reach neither
 * its memory nor its removal.
 */
static void test_sysv_stale_key(void **state)
{
	dynshm_instance *inst;
	dynshm_segment *seg = NULL;
	dynshm_handle h;
	key_t key;
	int id, rc;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	inst = xopen(0);
	assert_int_equal(dynshm_create(inst, SEG_SIZE, PINNED_OWN, &seg), 0);
	h = dynshm_segment_handle(seg);
	snprintf(dynshm_segment_address(seg), 64, "ours");
	assert_int_equal(dynshm_detach(seg), 0);
	key = sysv_key_of(id_of(inst), h);
	id = shmget(key, 0, 0);
	assert_true(id >= 0);
	assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
	id = plant_sysv(key, SEG_SIZE, "foreign");
	assert_true(id >= 0);
	rc = dynshm_attach(inst, h, &seg);
	if (rc == 0)
		fail_msg("the stale handle mapped another segment, holding "
			 "\"%s\"", (char *)dynshm_segment_address(seg));
	assert_message_has("vanished");
	assert_int_equal(dynshm_destroy(inst, h), 0); /* retires the slot */
	assert_int_equal(segments_of(inst), 0);
	assert_true(sysv_alive(id, key));
	assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/*
 * IPC_SET (an operator's chmod or chown of the segment) moves shm_ctime
 * forward.  The segment is still ours: attach maps it, list shows it
 * active, and a reap keeps it - taken for vanished, the reap would free
 * its slot and lose the segment, which no prefix sweep finds.  The wait
 * for the next second is what makes shm_ctime move.
 */
static void test_sysv_ipc_set(void **state)
{
	dynshm_instance *inst;
	dynshm_segment *seg = NULL;
	struct shmid_ds ds;
	dynshm_handle h;
	time_t t0;
	int shmid;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	inst = xopen(0);
	assert_int_equal(dynshm_create(inst, SEG_SIZE, PINNED_OWN, &seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_detach(seg), 0);
	shmid = shmget(sysv_key_of(id_of(inst), h), 0, 0);
	assert_true(shmid >= 0);
	assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
	t0 = ds.shm_ctime;
	while (time(NULL) <= t0)
		usleep(20000);
	ds.shm_perm.mode = 0600; /* unchanged: the call alone moves ctime */
	assert_int_equal(shmctl(shmid, IPC_SET, &ds), 0);
	assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
	assert_true(ds.shm_ctime > t0);

	if (dynshm_attach(inst, h, &seg) != 0)
		fail_msg("attach after IPC_SET: %s", dynshm_last_error());
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(listed_state(inst, h), DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 1);
	assert_true(sysv_alive(shmid, sysv_key_of(id_of(inst), h)));
	assert_int_equal(dynshm_unpin_segment(inst, h), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- group mode (issue 13, item 12) -------------------------------------- */

static void set_mode(uint64_t id, dynshm_handle h, mode_t mode)
{
	if (be->type == DYNSHM_IMPL_SYSV) {
		struct shmid_ds ds;
		int shmid = shmget(sysv_key_of(id, h), 0, 0);

		assert_true(shmid >= 0);
		assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
		ds.shm_perm.mode = mode;
		assert_int_equal(shmctl(shmid, IPC_SET, &ds), 0);
	} else {
		char path[DYNSHM_IMPL_NAME_MAX + 16];

		object_path(id, h, path, sizeof(path));
		assert_int_equal(chmod(path, mode), 0);
	}
}

static void test_group_mode(void **state)
{
	static const mode_t modes[] = { 0640, 0660, 0620, 0610 };
	dynshm_instance *inst = xopen(0);
	dynshm_segment *seg = NULL;
	uint64_t id = id_of(inst);
	dynshm_handle h;
	dynshm_impl_space *space = space_of(id);
	dynshm_impl_map *map = NULL;

	(void)state;
	assert_int_equal(dynshm_create(inst, SEG_SIZE, PINNED_OWN, &seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_detach(seg), 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char want[16];

		set_mode(id, h, modes[i]);
		snprintf(want, sizeof(want), "mode %04o", (unsigned)modes[i]);
		assert_int_equal(dynshm_attach(inst, h, &seg), -EACCES);
		assert_message_has(want);
		assert_int_equal(dynshm_impl_attach(space, h, &map), -EACCES);
		assert_message_has(want);
	}
	set_mode(id, h, 0600);
	assert_int_equal(dynshm_attach(inst, h, &seg), 0);
	assert_int_equal(dynshm_detach(seg), 0);
	dynshm_impl_space_close(space);
	assert_int_equal(dynshm_unpin_segment(inst, h), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- vm.max_map_count (issue 13, item 11) -------------------------------- */

static long read_max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

/*
 * Use up this process's mappings: single pages of alternating protection,
 * so that neighbours cannot merge, until mmap refuses.  Then give back
 * none: the library's own mapping is the one that fails.
 */
static void exhaust_mappings(void)
{
	long page = sysconf(_SC_PAGESIZE);

	for (unsigned long i = 0;; i++) {
		int prot = i % 2 ? PROT_READ : PROT_NONE;
		void *p = mmap(NULL, (size_t)page, prot,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
	}
}

static int child_map_limit(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	const char *msg;
	int rc;

	(void)arg;
	dynshm_test_instance_tag = TEST_TAG;
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	exhaust_mappings();
	rc = dynshm_create(inst, SEG_SIZE, DYNSHM_CREATE_NO_REGION, &seg);
	msg = dynshm_last_error();
	fprintf(stderr, "%s: %s\n", be->name, msg);
	CHILD_CHECK(rc == -ENOMEM);
	CHILD_CHECK(strstr(msg, "vm.max_map_count") != NULL);
	CHILD_CHECK(strstr(msg, "min_dynamic_shared_memory") != NULL);
	_exit(0); /* without unmapping 65,000 pages one by one */
}

static void test_map_limit(void **state)
{
	dynshm_instance *inst;
	long limit = read_max_map_count();

	(void)state;
	/* unknown, too many mappings to exhaust quickly, or valgrind (which
	 * manages the address space itself and fails first) */
	if (limit < 0 || limit > 1000000 || test_under_valgrind())
		skip();
	inst = xopen(0);
	assert_int_equal(test_fork(child_map_limit, NULL), 0);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- the first open's window (issue 13, item 2) -------------------------- */

/*
 * Where a first open dies: a hook point, or the nth call of a system-call
 * entry (posix_fallocate: allocating the control object; fsync 1: the
 * pending record, 2: the state file).
 */
struct open_kill {
	const char *hook;
	const char *entry;
	int nth;
};

static const struct open_kill open_kills[] = {
	{ NULL, "fsync", 1 },
	{ NULL, "posix_fallocate", 1 },
	{ "open:created", NULL, 0 },
	{ "open:formatted", NULL, 0 },
	{ NULL, "fsync", 2 },
	{ "open:state-written", NULL, 0 },
};

static const struct open_kill *open_kill;
static int kill_calls;

static void die_at_hook(const char *point)
{
	if (open_kill->hook && strcmp(point, open_kill->hook) == 0)
		raise(SIGKILL);
}

static int killing_fsync(int fd)
{
	if (++kill_calls == open_kill->nth)
		raise(SIGKILL);
	return fsync(fd);
}

static int killing_fallocate(int fd, off_t off, off_t len)
{
	if (++kill_calls == open_kill->nth)
		raise(SIGKILL);
	return posix_fallocate(fd, off, len);
}

static int child_first_open(void *arg)
{
	dynshm_instance *inst = NULL;

	(void)arg;
	dynshm_test_instance_tag = TEST_TAG;
	kill_calls = 0;
	dynshm_test_hook = die_at_hook;
	if (open_kill->entry && strcmp(open_kill->entry, "fsync") == 0)
		dynshm_sys.fsync = killing_fsync;
	if (open_kill->entry &&
	    strcmp(open_kill->entry, "posix_fallocate") == 0)
		dynshm_sys.posix_fallocate = killing_fallocate;
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	return 3; /* the kill point was not reached */
}

static void test_first_open_killed(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(open_kills) / sizeof(open_kills[0]);
	     k++) {
		char report[2048], what[64];
		dynshm_instance *inst;
		struct stat st;
		int status, n;

		open_kill = &open_kills[k];
		snprintf(what, sizeof(what), "%s %d",
			 open_kill->hook ? open_kill->hook : open_kill->entry,
			 open_kill->nth);
		status = test_fork(child_first_open, NULL);
		if (status == 3 && open_kill->entry &&
		    strcmp(open_kill->entry, "posix_fallocate") == 0 &&
		    be->type == DYNSHM_IMPL_SYSV)
			status = KILLED; /* sysv allocates nothing: opened */
		if (status != KILLED)
			fail_msg("%s: child status %d", what, status);
		/* a reset (and the destroy after it) finds every incarnation */
		inst = xopen(DYNSHM_OPEN_RESET);
		assert_int_equal(dynshm_instance_destroy(inst), 0);
		assert_true(stat(fx.path, &st) < 0 && errno == ENOENT);
		n = test_count_leftovers(report, sizeof(report));
		if (n != 1 || !strstr(report, fx.dir))
			fail_msg("%s: killed first open of %s left %d: %s",
				 what, be->name, n - 1, report);
	}
}

/*
 * A first open whose state file cannot be written backs out; when its
 * control object cannot be removed either, "pending" must go on naming it
 * (else it is recorded nowhere and leaks), the next open sweeps it, and
 * the open reports the failure that stopped it, not the back-out's.
 * posix only: there the back-out's removal is one shm_unlink.
 */
static void test_first_open_backout_kept(void **state)
{
	dynshm_instance *inst = NULL;
	char pending[4300];
	struct stat st;

	(void)state;
	if (be->type != DYNSHM_IMPL_POSIX)
		return;
	inject_fail("renameat", 2, EIO);     /* 1: pending, 2: state */
	inject_fail("shm_unlink", 1, EBUSY); /* the back-out's removal */
	assert_int_equal(dynshm_instance_open(fx.path, fx.cfg, 0, &inst), -EIO);
	assert_null(inst);
	assert_non_null(strstr(dynshm_last_error(), "state"));
	inject_reset();
	snprintf(pending, sizeof(pending), "%s/pending", fx.path);
	assert_int_equal(stat(pending, &st), 0);
	/* the next open sweeps it: teardown finds nothing left */
	inst = xopen(0);
	assert_true(stat(pending, &st) < 0 && errno == ENOENT);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- vanished objects (issue 13, item 6) --------------------------------- */

/* Another program removes the OS object of (id, h) behind our back. */
static void remove_behind(uint64_t id, dynshm_handle h)
{
	if (be->type == DYNSHM_IMPL_SYSV) {
		int shmid = shmget(sysv_key_of(id, h), 0, 0);

		assert_true(shmid >= 0);
		assert_int_equal(shmctl(shmid, IPC_RMID, NULL), 0);
	} else {
		char path[DYNSHM_IMPL_NAME_MAX + 16];

		object_path(id, h, path, sizeof(path));
		assert_int_equal(unlink(path), 0);
	}
}

static int state_of_fn(const dynshm_segment_info *info, void *arg)
{
	dynshm_segment_info *want = arg;

	if (info->handle == want->handle)
		*want = *info;
	return 0;
}

static dynshm_segment_state listed_state(dynshm_instance *inst,
					 dynshm_handle h)
{
	dynshm_segment_info info;

	memset(&info, 0, sizeof(info));
	info.handle = h;
	assert_int_equal(dynshm_foreach_segment(inst, state_of_fn, &info), 0);
	return info.state;
}

static dynshm_handle create_named_pinned(dynshm_instance *inst,
					 const char *name)
{
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	assert_int_equal(dynshm_create_named(inst, name, SEG_SIZE, PINNED_OWN,
					    &seg),
			 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_detach(seg), 0);
	return h;
}

static void test_vanished(void **state)
{
	dynshm_instance *inst = xopen(0);
	dynshm_segment *seg = NULL, *held = NULL;
	uint64_t id = id_of(inst);
	dynshm_handle h, h2;

	(void)state;
	/* pinned, nobody maps it: attach says vanished, gc retires it */
	h = create_named_pinned(inst, "v");
	assert_int_equal(listed_state(inst, h), DYNSHM_SEGMENT_ACTIVE);
	remove_behind(id, h);
	assert_int_equal(dynshm_attach(inst, h, &seg), -EIDRM);
	assert_message_has("vanished");
	assert_int_equal(dynshm_attach_named(inst, "v", &seg), -EIDRM);
	assert_message_has("vanished");
	assert_int_equal(listed_state(inst, h), DYNSHM_SEGMENT_VANISHED);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 0);
	/* the name is free again */
	h = create_named_pinned(inst, "v");
	/* destroy retires one too */
	remove_behind(id, h);
	assert_int_equal(dynshm_destroy(inst, h), 0);
	assert_int_equal(segments_of(inst), 0);
	/* still mapped here: gc dooms it, the last detach retires it */
	assert_int_equal(dynshm_create(inst, SEG_SIZE, PINNED_OWN, &held), 0);
	h2 = dynshm_segment_handle(held);
	remove_behind(id, h2);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 1);
	snprintf(dynshm_segment_address(held), 16, "still mapped");
	assert_int_equal(dynshm_detach(held), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* A child that creates a segment and dies holding it (no detach). */
static int child_create_and_die(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;

	(void)arg;
	dynshm_test_instance_tag = TEST_TAG;
	CHILD_CHECK(dynshm_instance_open(fx.path, fx.cfg, 0, &inst) == 0);
	CHILD_CHECK(dynshm_create(inst, SEG_SIZE, DYNSHM_CREATE_NO_REGION,
				  &seg) == 0);
	_exit(0);
}

/*
 * dynshm_reap failing to remove a dead process's segment says why: the
 * vanished-object pass that follows it must not wipe the message.
 * posix only: there the removal is one shm_unlink.
 */
static void test_reap_failure_message(void **state)
{
	dynshm_instance *inst;

	(void)state;
	if (be->type != DYNSHM_IMPL_POSIX)
		skip();
	inst = xopen(0);
	assert_int_equal(test_fork(child_create_and_die, NULL), 0);
	assert_int_equal(segments_of(inst), 1);
	inject_fail("shm_unlink", 1, EIO);
	assert_int_equal(dynshm_reap(inst, NULL), -EIO);
	inject_reset();
	assert_message_has("cannot remove");
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static int init_refuses(dynshm_segment *seg, void *arg)
{
	(void)seg;
	(void)arg;
	return -ENOSPC;
}

/*
 * A create whose init callback fails backs out; when the object cannot be
 * removed then, its slot must stay (MORIBUND, no owner) for the next reap
 * to retry - freeing it would leave the object recorded nowhere.  The call
 * reports the callback's failure.  posix only: one shm_unlink.
 */
static void test_create_backout_kept(void **state)
{
	dynshm_instance *inst;
	dynshm_segment *seg = NULL;

	(void)state;
	if (be->type != DYNSHM_IMPL_POSIX)
		skip();
	inst = xopen(0);
	inject_fail("shm_unlink", 1, EIO);
	assert_int_equal(dynshm_get_named(inst, "doomed", SEG_SIZE,
					  DYNSHM_CREATE_NO_REGION, init_refuses,
					  NULL, &seg, NULL),
			 -ENOSPC);
	inject_reset();
	assert_message_has("initialisation callback");
	assert_int_equal(segments_of(inst), 1); /* kept for the reap */
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(segments_of(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- planted at the control object's name (issue 13, item 9) ------------- */

/*
 * After a reboot emptied /dev/shm (the instance directory survived), the
 * control object is gone and something else sits at its name: a symbolic
 * link (posix, mmap) or another user's SysV segment (sysv, root only).
 * Its shmid in *shmid for sysv.
 */
static void plant_control(uint64_t id, char *path, size_t len, int *shmid)
{
	if (be->type == DYNSHM_IMPL_SYSV) {
		key_t key = sysv_key_of(id, CTL_HANDLE);
		struct shmid_ds ds;

		assert_int_equal(shmctl(shmget(key, 0, 0), IPC_RMID, NULL), 0);
		*shmid = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
		assert_true(*shmid >= 0);
		assert_int_equal(shmctl(*shmid, IPC_STAT, &ds), 0);
		ds.shm_perm.uid = TEST_OTHER_UID;
		assert_int_equal(shmctl(*shmid, IPC_SET, &ds), 0);
		return;
	}
	object_path(id, CTL_HANDLE, path, len);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/etc/hostname", path), 0);
}

static void test_planted_control(void **state)
{
	char path[DYNSHM_IMPL_NAME_MAX + 16];
	dynshm_instance *inst = NULL;
	uint64_t old_id;
	struct stat st;
	int shmid = -1;

	(void)state;
	if (be->type == DYNSHM_IMPL_SYSV && !test_is_root())
		skip(); /* a segment of another user needs IPC_SET as root */
	inst = xopen(0);
	old_id = id_of(inst);
	assert_int_equal(dynshm_instance_close(inst), 0);
	plant_control(old_id, path, sizeof(path), &shmid);
	/* every open refuses it, saying what it is and what to do */
	assert_int_equal(dynshm_instance_open(fx.path, fx.cfg, 0, &inst),
			 -EACCES);
	assert_message_has("not made by dynshm");
	assert_message_has("reset");
	assert_int_equal(dynshm_instance_open(fx.path, fx.cfg,
					      DYNSHM_OPEN_EXISTING, &inst),
			 -EACCES);
	/* a reset starts over under a new id and leaves the thing alone */
	inst = xopen(DYNSHM_OPEN_RESET);
	assert_true(id_of(inst) != old_id);
	if (be->type == DYNSHM_IMPL_SYSV) {
		struct shmid_ds ds;

		assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
		assert_int_equal(shmctl(shmid, IPC_RMID, NULL), 0);
	} else {
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
	}
	/* the destroy leaves it too; mmap: so the directory stays (-EBUSY) */
	assert_int_equal(dynshm_instance_destroy(inst),
			 be->type == DYNSHM_IMPL_MMAP ? -EBUSY : 0);
	if (be->type != DYNSHM_IMPL_SYSV) {
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(unlink(path), 0);
	}
}

/*
 * The same with a SysV segment of our own uid (another program's, after a
 * reboot) at the control key: it is not a control segment of ours (magic,
 * instance id), so opens refuse it and a reset leaves it - whatever its
 * size, the control segment's own included.  size 0: the control's size.
 */
static void planted_same_uid(size_t size)
{
	dynshm_instance *inst = NULL;
	struct shmid_ds ds;
	uint64_t old_id;
	key_t key;
	int shmid, rc;

	char state_path[4300];
	struct stat sf;

	inst = xopen(0);
	old_id = id_of(inst);
	assert_int_equal(dynshm_instance_close(inst), 0);
	/* planted later than the state file was written, as after a reboot */
	snprintf(state_path, sizeof(state_path), "%s/state", fx.path);
	assert_int_equal(stat(state_path, &sf), 0);
	while (time(NULL) <= sf.st_mtime)
		usleep(20000);
	key = sysv_key_of(old_id, CTL_HANDLE);
	shmid = shmget(key, 0, 0);
	assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
	assert_int_equal(shmctl(shmid, IPC_RMID, NULL), 0);
	shmid = plant_sysv(key, size ? size : ds.shm_segsz,
			   "another program's data");
	assert_true(shmid >= 0);
	rc = dynshm_instance_open(fx.path, fx.cfg, 0, &inst);
	assert_true(rc < 0);
	inst = xopen(DYNSHM_OPEN_RESET);
	assert_true(id_of(inst) != old_id);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	assert_true(sysv_alive(shmid, key));
	assert_int_equal(shmctl(shmid, IPC_RMID, NULL), 0);
}

static void test_planted_control_same_uid(void **state)
{
	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	planted_same_uid(4096);
	planted_same_uid(0);
}

/* ---- main ---------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sysv_reaper_spares_foreign,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysv_killed_after_shmget,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysv_killed_after_shmget_coarse_clock,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysv_stale_key, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sysv_ipc_set, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_mode, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_first_open_killed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_first_open_backout_kept,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reap_failure_message, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_create_backout_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_planted_control, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_planted_control_same_uid,
						setup, teardown),
	};
	int failed = 0;

	dynshm_test_instance_tag = TEST_TAG;
	for (size_t b = 0; b < test_n_real_backends; b++) {
		char name[32];

		be = &test_real_backends[b];
		snprintf(name, sizeof(name), "ident-%s", be->name);
		failed += cmocka_run_group_tests_name(name, tests, NULL, NULL);
	}
	return failed ? 1 : 0;
}
