/* SPDX-License-Identifier: MIT */
/*
 * test_named.c - named segments: dynshm_create_named, dynshm_attach_named and
 * the get-or-create dynshm_get_named, per backend, with real processes.
 *
 * The promise worth testing is the one about races and deaths: however
 * many processes call dynshm_get_named at once, the initialisation callback
 * runs to completion once and everybody sees the same segment; and when
 * the initialising process is killed inside the callback, a waiter
 * finishes the job on a fresh segment and nothing of the dead one remains.
 * Both are tested with forked processes started together through a pipe
 * and killed with SIGKILL, sequenced by pipes and a test hook, never by
 * sleeps.  The rest (duplicates, bad names, sizes, destroy and recreate)
 * is the contract of each function.
 *
 * Every test gets a private directory and an instance inside it; the
 * teardown destroys what is left, kills stray children and counts
 * leftovers (testutil.h).  Runs alone (is_parallel: false) like the other
 * wrapper tests: SysV objects of every test instance share one tag.
 */
#include "testutil.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm_assert.h"
#include "inject.h"

/* Hidden test hooks of the library (src/wrapper.h). */
extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define RACERS 8

struct fixture {
	const char *backend;
	bool region; /* segments carved from a region (named/region) */
	char *dir;
	dynshm_instance *inst;
	pid_t kids[RACERS + 2];
	struct shared *sh; /* MAP_SHARED page seen by every child */
};

/* What children report to the parent, in an anonymous shared mapping. */
struct shared {
	int init_calls;		 /* every entry into an init callback */
	int created[RACERS];
	dynshm_handle handle[RACERS];
	int seen[RACERS];	 /* the count a racer read in the segment */
};

static const char *current_backend;
static bool current_region;
static struct fixture the_fixture;
static int fixture_failures;

/* ---- fixture ------------------------------------------------------------- */

static int check_leftovers(const char *when)
{
	if (test_check_leftovers(when) == 0)
		return 0;
	fixture_failures++;
	return -1;
}

static int test_setup(void **state)
{
	struct fixture *f = &the_fixture;
	char path[PATH_MAX];
	dynshm_config *cfg = NULL;
	int rc;

	memset(f, 0, sizeof(*f));
	f->backend = current_backend;
	f->region = current_region;
	dynshm_test_hook = NULL;
	f->dir = test_make_dir();
	f->sh = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!f->dir || f->sh == MAP_FAILED) {
		fprintf(stderr, "setup: %s\n", strerror(errno));
		fixture_failures++;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/inst", f->dir);
	rc = dynshm_config_new(&cfg);
	if (rc == 0)
		rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
				    f->backend);
	if (rc == 0 && f->region)
		rc = dynshm_config_set(cfg, "min_dynamic_shared_memory", "1MB");
	if (rc == 0 && f->region)
		rc = dynshm_config_set(cfg, "huge_pages", "off");
	if (rc == 0)
		rc = dynshm_instance_open(path, cfg, 0, &f->inst);
	dynshm_config_free(cfg);
	if (rc < 0) {
		fprintf(stderr, "setup: open %s: %s\n", path,
			dynshm_last_error());
		fixture_failures++;
		return -1;
	}
	*state = f;
	return 0;
}

static int test_teardown(void **state)
{
	struct fixture *f = *state;
	int bad = 0;

	dynshm_test_hook = NULL;
	for (int i = 0; i < RACERS + 2; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			test_wait(f->kids[i]);
		}
	}
	if (f->inst && dynshm_instance_destroy(f->inst) < 0) {
		fprintf(stderr, "teardown: %s\n", dynshm_last_error());
		bad = 1;
	}
	if (f->sh && f->sh != MAP_FAILED)
		munmap(f->sh, sizeof(*f->sh));
	if (test_remove_dir(f->dir) < 0)
		bad = 1;
	if (check_leftovers("test teardown") < 0)
		bad = 1;
	return bad ? -1 : 0;
}

static unsigned segments_in(dynshm_instance *inst)
{
	dynshm_instance_info info;

	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	return info.segments;
}

/* fork; the child runs fn(arg) and _exits with its value. */
static pid_t start_child(struct fixture *f, int slot, int (*fn)(void *),
			 void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	f->kids[slot] = pid;
	return pid;
}

static int wait_child(struct fixture *f, int slot)
{
	int status = test_wait(f->kids[slot]);

	f->kids[slot] = 0;
	return status;
}

static void read_exactly(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("read from a child: %s",
				 n == 0 ? "end of file" : strerror(errno));
		got += (size_t)n;
	}
}

/* ---- eight processes race get-or-create ---------------------------------- */

struct racer {
	struct fixture *f;
	int index;
	int start_fd; /* read end: EOF is the starting gun */
	int gun_fd;   /* write end: closed by every racer at once */
};

/* Counts itself, widens the window, then counts in the segment. */
static int init_counter(dynshm_segment *seg, void *arg)
{
	struct shared *sh = arg;
	int *count = dynshm_segment_address(seg);

	__atomic_add_fetch(&sh->init_calls, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 200; i++)
		sched_yield(); /* let the others pile up behind us */
	(*count)++;
	return 0;
}

static int racer_main(void *arg)
{
	struct racer *r = arg;
	struct shared *sh = r->f->sh;
	dynshm_segment *seg = NULL;
	char c;
	int created = -1;

	close(r->gun_fd);
	while (read(r->start_fd, &c, 1) < 0 && errno == EINTR)
		;
	CHILD_OK(dynshm_get_named(r->f->inst, "race.counter", 4096,
			       DYNSHM_CREATE_PIN, init_counter, sh, &seg,
			       &created));
	sh->created[r->index] = created;
	sh->handle[r->index] = dynshm_segment_handle(seg);
	sh->seen[r->index] = *(int *)dynshm_segment_address(seg);
	CHILD_OK(dynshm_detach(seg));
	CHILD_OK(dynshm_instance_close(r->f->inst));
	return 0;
}

static void test_race_get_or_create(void **state)
{
	struct fixture *f = *state;
	struct racer racers[RACERS];
	dynshm_segment *seg;
	int start[2], creators = 0;

	assert_int_equal(pipe(start), 0);
	for (int i = 0; i < RACERS; i++) {
		racers[i].f = f;
		racers[i].index = i;
		racers[i].start_fd = start[0];
		racers[i].gun_fd = start[1];
		start_child(f, i, racer_main, &racers[i]);
	}
	close(start[0]);
	close(start[1]); /* go */
	for (int i = 0; i < RACERS; i++)
		assert_int_equal(wait_child(f, i), 0);

	assert_int_equal(f->sh->init_calls, 1);
	for (int i = 0; i < RACERS; i++) {
		creators += f->sh->created[i];
		assert_int_equal(f->sh->handle[i], f->sh->handle[0]);
		assert_int_equal(f->sh->seen[i], 1); /* nobody saw it early */
	}
	assert_int_equal(creators, 1);

	/* pinned: it outlived them all, and is found by name */
	ASSERT_OK(dynshm_attach_named(f->inst, "race.counter", &seg));
	assert_int_equal(dynshm_segment_handle(seg), f->sh->handle[0]);
	assert_int_equal(*(int *)dynshm_segment_address(seg), 1);
	ASSERT_OK(dynshm_destroy(f->inst, dynshm_segment_handle(seg)));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(segments_in(f->inst), 0);
}

/* ---- the creator dies inside init ---------------------------------------- */

struct victim {
	struct fixture *f;
	int ready_fd;  /* write end: the victim's handle, from inside init */
	int block_fd;  /* read end that never gets data */
	int waiting_fd; /* write end: the waiter is about to wait */
};

static struct victim *the_victim;

static int init_and_hang(dynshm_segment *seg, void *arg)
{
	struct victim *v = arg;
	dynshm_handle h = dynshm_segment_handle(seg);
	char c;

	__atomic_add_fetch(&v->f->sh->init_calls, 1, __ATOMIC_SEQ_CST);
	*(int *)dynshm_segment_address(seg) = 42; /* a half-made segment */
	if (write(v->ready_fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
		return -EIO;
	while (read(v->block_fd, &c, 1) != 0) /* until SIGKILL */
		;
	return -EIO;
}

static int creator_main(void *arg)
{
	struct victim *v = arg;
	dynshm_segment *seg;

	dynshm_get_named(v->f->inst, "victim", 8192, 0, init_and_hang, v, &seg,
		      NULL);
	return 3; /* never reached: killed inside init */
}

static void tell_waiting(const char *point)
{
	static bool told;

	if (!told && strcmp(point, "named:wait") == 0) {
		told = true;
		if (write(the_victim->waiting_fd, "w", 1) != 1)
			_exit(4);
	}
}

static int init_fresh(dynshm_segment *seg, void *arg)
{
	struct shared *sh = arg;
	int *p = dynshm_segment_address(seg);

	__atomic_add_fetch(&sh->init_calls, 1, __ATOMIC_SEQ_CST);
	if (*p != 0)
		return -EUCLEAN; /* the dead creator's memory: must not be */
	*p = 1;
	return 0;
}

static int waiter_main(void *arg)
{
	struct victim *v = arg;
	dynshm_segment *seg = NULL;
	int created = -1;

	the_victim = v;
	dynshm_test_hook = tell_waiting;
	CHILD_OK(dynshm_get_named(v->f->inst, "victim", 8192, 0, init_fresh,
			       v->f->sh, &seg, &created));
	CHILD_CHECK(created == 1);
	CHILD_CHECK(*(int *)dynshm_segment_address(seg) == 1);
	v->f->sh->handle[1] = dynshm_segment_handle(seg);
	CHILD_OK(dynshm_instance_close(v->f->inst));
	return 0;
}

/* Does the OS object of handle still exist in inst? */
static bool os_object_exists(dynshm_instance *inst, dynshm_handle handle)
{
	dynshm_instance_info info;
	dynshm_impl_space *space = NULL;
	dynshm_impl_map *map = NULL;
	int rc;

	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	ASSERT_OK(dynshm_impl_space_open(info.backend, info.instance_id,
				      info.directory, &space));
	rc = dynshm_impl_attach(space, handle, &map);
	if (rc == 0)
		dynshm_impl_detach(map);
	dynshm_impl_space_close(space);
	if (rc != 0 && rc != -ENOENT)
		fail_msg("cannot tell whether the object exists: %s",
			 dynshm_last_error());
	return rc == 0;
}

/*
 * What a segment's memory is: its own OS object, or (named/region) a block
 * of the instance's region, which has no object to look for.
 */
static void assert_made(struct fixture *f, dynshm_handle handle)
{
	dynshm_segment_info si;

	if (!f->region) {
		assert_true(os_object_exists(f->inst, handle));
		return;
	}
	ASSERT_OK(dynshm_stat(f->inst, handle, &si, sizeof(si)));
	assert_true(si.in_region);
}

static void assert_unmade(struct fixture *f, dynshm_handle handle)
{
	dynshm_instance_info info;

	if (!f->region) {
		assert_false(os_object_exists(f->inst, handle));
		return;
	}
	ASSERT_OK(dynshm_instance_info_get(f->inst, &info, sizeof(info)));
	assert_int_equal(info.region_used, 0);
	assert_int_equal(info.region_segments, 0);
}

static void test_creator_killed_in_init(void **state)
{
	struct fixture *f = *state;
	struct victim v = { f, -1, -1, -1 };
	int ready[2], block[2], waiting[2];
	dynshm_handle dead_handle;
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(block), 0);
	assert_int_equal(pipe(waiting), 0);
	v.ready_fd = ready[1];
	v.block_fd = block[0];
	v.waiting_fd = waiting[1];

	start_child(f, 0, creator_main, &v);
	read_exactly(ready[0], &dead_handle, sizeof(dead_handle));
	assert_made(f, dead_handle);
	start_child(f, 1, waiter_main, &v);
	read_exactly(waiting[0], &c, 1); /* the waiter waits on the creator */

	kill(f->kids[0], SIGKILL);
	assert_int_equal(wait_child(f, 0), 128 + SIGKILL);
	assert_int_equal(wait_child(f, 1), 0);
	close(ready[0]), close(ready[1]), close(block[0]), close(block[1]);
	close(waiting[0]), close(waiting[1]);

	/* both entered init; the waiter's run is the one that counted */
	assert_int_equal(f->sh->init_calls, 2);
	assert_true(f->sh->handle[1] != dead_handle);
	/* the dead creator's segment is gone: slot and OS object */
	ASSERT_RC(dynshm_stat(f->inst, dead_handle, &(dynshm_segment_info){ 0 },
			      sizeof(dynshm_segment_info)),
		  -ENOENT);
	assert_unmade(f, dead_handle);
	/* the waiter's (unpinned) went with its last detach */
	assert_int_equal(segments_in(f->inst), 0);
	assert_unmade(f, f->sh->handle[1]);
}

/* ---- the contract of each function --------------------------------------- */

struct finder {
	const char *name;
	dynshm_handle found;
	int count;
};

static int find_by_name(const dynshm_segment_info *info, void *arg)
{
	struct finder *fi = arg;

	if (strcmp(info->name, fi->name) == 0) {
		fi->found = info->handle;
		fi->count++;
	}
	return 0;
}

static int attach_in_child(void *arg)
{
	struct fixture *f = &the_fixture;
	dynshm_segment *seg;

	CHILD_OK(dynshm_attach_named(f->inst, "dup", &seg));
	CHILD_CHECK(dynshm_segment_handle(seg) == *(dynshm_handle *)arg);
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "dup text") == 0);
	CHILD_CHECK(dynshm_create_named(f->inst, "dup", 64, 0, &seg) ==
		    -EEXIST);
	CHILD_OK(dynshm_instance_close(f->inst));
	return 0;
}

static void test_duplicates(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg, *again, *anon;
	dynshm_segment_info info;
	struct finder fi = { "dup", 0, 0 };
	dynshm_handle h;

	ASSERT_OK(dynshm_create_named(f->inst, "dup", 64, 0, &seg));
	h = dynshm_segment_handle(seg);
	strcpy(dynshm_segment_address(seg), "dup text");
	ASSERT_RC(dynshm_create_named(f->inst, "dup", 64, 0, &again), -EEXIST);
	ASSERT_MSG_HAS("'dup'");
	ASSERT_MSG_HAS("already exists");
	ASSERT_RC(dynshm_create_named(f->inst, "dup", 128, DYNSHM_CREATE_PIN,
				   &again),
		  -EEXIST);
	/* anonymous segments never conflict; names are case-sensitive */
	ASSERT_OK(dynshm_create(f->inst, 64, 0, &anon));
	ASSERT_OK(dynshm_create_named(f->inst, "DUP", 64, 0, &again));
	assert_int_equal(test_fork(attach_in_child, &h), 0);

	ASSERT_OK(dynshm_stat(f->inst, h, &info, sizeof(info)));
	assert_string_equal(info.name, "dup");
	ASSERT_OK(dynshm_stat(f->inst, dynshm_segment_handle(anon), &info,
			      sizeof(info)));
	assert_string_equal(info.name, "");
	ASSERT_OK(dynshm_foreach_segment(f->inst, find_by_name, &fi));
	assert_int_equal(fi.count, 1);
	assert_int_equal(fi.found, h);

	/* attaching by name in the creating process: the same mapping */
	ASSERT_OK(dynshm_attach_named(f->inst, "dup", &again));
	assert_ptr_equal(again, seg);
	ASSERT_OK(dynshm_detach(again));
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_detach(anon));
	ASSERT_OK(dynshm_attach_named(f->inst, "DUP", &again));
	ASSERT_OK(dynshm_detach(again));
	ASSERT_OK(dynshm_detach(again));
	assert_int_equal(segments_in(f->inst), 0);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
		"", "has space", "semi;colon", "tab\there", "quote\"d",
		"back\\slash", "caf\xc3\xa9", "new\nline",
	};
	struct fixture *f = *state;
	char longest[DYNSHM_SEGMENT_NAME_MAX + 2];
	dynshm_segment *seg = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_RC(dynshm_create_named(f->inst, bad[i], 64, 0, &seg),
			  -EINVAL);
		ASSERT_MSG_HAS("allowed: 1 to 63 bytes");
		ASSERT_RC(dynshm_attach_named(f->inst, bad[i], &seg), -EINVAL);
		ASSERT_RC(dynshm_get_named(f->inst, bad[i], 64, 0, NULL, NULL,
					&seg, NULL),
			  -EINVAL);
	}
	ASSERT_RC(dynshm_create_named(f->inst, "semi;colon", 64, 0, &seg),
		  -EINVAL);
	ASSERT_MSG_HAS("contains ';'");
	ASSERT_RC(dynshm_create_named(f->inst, "caf\xc3\xa9", 64, 0, &seg),
		  -EINVAL);
	ASSERT_MSG_HAS("byte 0xc3 at offset 3");
	ASSERT_RC(dynshm_create_named(f->inst, NULL, 64, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create_named(f->inst, "ok", 64, 0, NULL), -EINVAL);
	ASSERT_RC(dynshm_create_named(f->inst, "ok", 0, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create_named(f->inst, "ok", 64, 0x10, &seg), -EINVAL);
	ASSERT_MSG_HAS("DYNSHM_CREATE_PIN");
	ASSERT_RC(dynshm_create_named(NULL, "ok", 64, 0, &seg), -EINVAL);

	/* the longest allowed name works; one more byte does not */
	memset(longest, 'n', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	ASSERT_RC(dynshm_create_named(f->inst, longest, 64, 0, &seg), -EINVAL);
	ASSERT_MSG_HAS("64 bytes long");
	longest[DYNSHM_SEGMENT_NAME_MAX] = '\0';
	assert_int_equal(segments_in(f->inst), 0); /* nothing was made */
	ASSERT_OK(dynshm_create_named(f->inst, longest, 64, 0, &seg));
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_create_named(f->inst, "a-Z_0.9:x/y", 64, 0, &seg));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(segments_in(f->inst), 0);
}

static int count_calls(dynshm_segment *seg, void *arg)
{
	(void)seg;
	(*(int *)arg)++;
	return 0;
}

static void test_size_mismatch(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg, *other;
	int calls = 0, created = -1;

	ASSERT_OK(dynshm_get_named(f->inst, "sized", 4096, 0, count_calls,
				&calls, &seg, &created));
	assert_int_equal(created, 1);
	ASSERT_RC(dynshm_get_named(f->inst, "sized", 8192, 0, count_calls,
				&calls, &other, &created),
		  -EINVAL);
	ASSERT_MSG_HAS("4096 bytes");
	ASSERT_MSG_HAS("8192 bytes were asked for");
	ASSERT_MSG_HAS("'sized'");
	ASSERT_OK(dynshm_get_named(f->inst, "sized", 4096, 0, count_calls,
				&calls, &other, &created));
	assert_int_equal(created, 0);
	assert_ptr_equal(other, seg);
	assert_int_equal(calls, 1);
	ASSERT_OK(dynshm_detach(other));
	ASSERT_OK(dynshm_detach(seg));
	/* unpinned: gone with its last detach, and the name with it */
	ASSERT_OK(dynshm_get_named(f->inst, "sized", 8192, 0, count_calls,
				&calls, &seg, &created));
	assert_int_equal(created, 1);
	assert_int_equal(calls, 2);
	assert_int_equal(dynshm_segment_size(seg), 8192);
	ASSERT_OK(dynshm_detach(seg));
}

static int fail_init(dynshm_segment *seg, void *arg)
{
	(void)seg, (void)arg;
	return -EIO;
}

static void test_init_fails(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg = NULL;
	int calls = 0, created = -1;

	ASSERT_RC(dynshm_get_named(f->inst, "flaky", 4096, 0, fail_init, NULL,
				&seg, &created),
		  -EIO);
	ASSERT_MSG_HAS("initialisation callback of segment 'flaky'");
	assert_int_equal(created, -1); /* untouched on failure */
	assert_int_equal(segments_in(f->inst), 0);
	ASSERT_RC(dynshm_attach_named(f->inst, "flaky", &seg), -ENOENT);
	ASSERT_OK(dynshm_get_named(f->inst, "flaky", 4096, 0, count_calls,
				&calls, &seg, &created));
	assert_int_equal(created, 1);
	assert_int_equal(calls, 1);
	ASSERT_OK(dynshm_detach(seg));
}

static void test_destroy_then_recreate(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *old, *fresh, *seg;
	dynshm_handle fresh_handle;
	char msg[512];

	ASSERT_OK(dynshm_create_named(f->inst, "phoenix", 64, DYNSHM_CREATE_PIN,
				   &old));
	strcpy(dynshm_segment_address(old), "first");
	ASSERT_OK(dynshm_destroy(f->inst, dynshm_segment_handle(old)));
	/* the name is free at once, though the old one is still mapped */
	ASSERT_RC(dynshm_attach_named(f->inst, "phoenix", &seg), -ENOENT);
	snprintf(msg, sizeof(msg), "no segment named 'phoenix' in instance "
				   "'%s/inst'",
		 f->dir);
	ASSERT_MSG_HAS(msg);
	ASSERT_OK(dynshm_create_named(f->inst, "phoenix", 64, DYNSHM_CREATE_PIN,
				   &fresh));
	assert_true(dynshm_segment_handle(fresh) != dynshm_segment_handle(old));
	assert_string_equal(dynshm_segment_address(old), "first");
	assert_string_equal(dynshm_segment_address(fresh), "");
	fresh_handle = dynshm_segment_handle(fresh);
	ASSERT_OK(dynshm_detach(old));
	ASSERT_OK(dynshm_detach(fresh));
	/* pinned: still there with nobody mapping it, found by name */
	ASSERT_OK(dynshm_attach_named(f->inst, "phoenix", &seg));
	assert_int_equal(dynshm_segment_handle(seg), fresh_handle);
	ASSERT_OK(dynshm_destroy(f->inst, dynshm_segment_handle(seg)));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(segments_in(f->inst), 0);
	ASSERT_RC(dynshm_attach_named(f->inst, "never-made", &seg), -ENOENT);
	ASSERT_MSG_HAS("'never-made'");
}

static int get_named_again(dynshm_segment *seg, void *arg)
{
	dynshm_segment *inner;

	(void)seg;
	return dynshm_get_named(arg, "self", 64, 0, NULL, NULL, &inner, NULL);
}

static void test_init_calls_itself(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg;

	ASSERT_RC(dynshm_get_named(f->inst, "self", 64, 0, get_named_again,
				f->inst, &seg, NULL),
		  -EDEADLK);
	assert_int_equal(segments_in(f->inst), 0);
}

/* ---- flags, pins and failures in every placement ------------------------ */

/* DYNSHM_CREATE_PIN on plain and named creates: kept until unpinned. */
static void test_create_pinned(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg, *named;
	dynshm_segment_info si;
	dynshm_handle h, hn;

	ASSERT_OK(dynshm_create(f->inst, 4096, DYNSHM_CREATE_PIN, &seg));
	ASSERT_OK(dynshm_create_named(f->inst, "pinned", 4096, DYNSHM_CREATE_PIN,
				   &named));
	h = dynshm_segment_handle(seg);
	hn = dynshm_segment_handle(named);
	strcpy(dynshm_segment_address(seg), "kept");
	ASSERT_OK(dynshm_stat(f->inst, h, &si, sizeof(si)));
	assert_true(si.pinned);
	assert_int_equal(si.in_region, f->region);
	ASSERT_OK(dynshm_stat(f->inst, hn, &si, sizeof(si)));
	assert_true(si.pinned);
	assert_string_equal(si.name, "pinned");
	ASSERT_RC(dynshm_pin_segment(seg), -EALREADY);
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_detach(named));
	/* nobody maps them: the pins keep them */
	assert_int_equal(segments_in(f->inst), 2);
	assert_made(f, h);
	ASSERT_OK(dynshm_attach(f->inst, h, &seg));
	assert_string_equal(dynshm_segment_address(seg), "kept");
	ASSERT_OK(dynshm_detach(seg));
	/* unpinned with nobody attached: destroyed at once */
	ASSERT_OK(dynshm_unpin_segment(f->inst, h));
	ASSERT_RC(dynshm_stat(f->inst, h, &si, sizeof(si)), -ENOENT);
	ASSERT_OK(dynshm_unpin_segment(f->inst, hn));
	ASSERT_RC(dynshm_attach_named(f->inst, "pinned", &seg), -ENOENT);
	assert_int_equal(segments_in(f->inst), 0);
	assert_unmade(f, h);
}

/* Placement flags with names: the name goes where the segment goes. */
static void test_named_flags(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg, *fill, *again;
	dynshm_segment_info si;

	ASSERT_RC(dynshm_create_named(f->inst, "f", 64,
				   DYNSHM_CREATE_REGION | DYNSHM_CREATE_NO_REGION,
				   &seg),
		  -EINVAL);
	ASSERT_RC(dynshm_get_named(f->inst, "f", 64, 0x100, NULL, NULL, &seg,
				NULL),
		  -EINVAL);
	if (!f->region) {
		ASSERT_RC(dynshm_create_named(f->inst, "f", 64,
					   DYNSHM_CREATE_REGION, &seg),
			  -ENOTSUP);
		ASSERT_OK(dynshm_create_named(f->inst, "f", 64, 0, &seg));
		ASSERT_OK(dynshm_detach(seg));
		assert_int_equal(segments_in(f->inst), 0);
		return;
	}
	ASSERT_OK(dynshm_create_named(f->inst, "in", 4096,
				   DYNSHM_CREATE_REGION | DYNSHM_CREATE_PIN |
					   DYNSHM_CREATE_NO_ZERO,
				   &seg));
	ASSERT_OK(dynshm_stat(f->inst, dynshm_segment_handle(seg), &si,
			      sizeof(si)));
	assert_true(si.in_region && si.pinned);
	assert_string_equal(si.name, "in");
	ASSERT_OK(dynshm_destroy(f->inst, dynshm_segment_handle(seg)));
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_create_named(f->inst, "out", 4096, DYNSHM_CREATE_NO_REGION,
				   &seg));
	ASSERT_OK(dynshm_stat(f->inst, dynshm_segment_handle(seg), &si,
			      sizeof(si)));
	assert_false(si.in_region);
	assert_string_equal(si.name, "out");
	ASSERT_OK(dynshm_detach(seg));
	/* too big for the region: refused, and the name stays free */
	ASSERT_RC(dynshm_get_named(f->inst, "big", 2 << 20, DYNSHM_CREATE_REGION,
				NULL, NULL, &seg, NULL),
		  -ENOSPC);
	ASSERT_RC(dynshm_attach_named(f->inst, "big", &seg), -ENOENT);
	/* a full region: the named create falls back, name and all */
	ASSERT_OK(dynshm_create(f->inst, 1 << 20, DYNSHM_CREATE_REGION, &fill));
	ASSERT_OK(dynshm_create_named(f->inst, "spill", 4096, 0, &seg));
	ASSERT_OK(dynshm_stat(f->inst, dynshm_segment_handle(seg), &si,
			      sizeof(si)));
	assert_false(si.in_region);
	assert_string_equal(si.name, "spill");
	ASSERT_OK(dynshm_attach_named(f->inst, "spill", &again));
	assert_ptr_equal(again, seg);
	ASSERT_OK(dynshm_detach(again));
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_detach(fill));
	assert_int_equal(segments_in(f->inst), 0);
}

struct failing_init {
	dynshm_handle handle;
	int rc;
};

static int fail_init_after_writing(dynshm_segment *seg, void *arg)
{
	struct failing_init *fi = arg;

	fi->handle = dynshm_segment_handle(seg);
	memset(dynshm_segment_address(seg), 0x5a, dynshm_segment_size(seg));
	return fi->rc;
}

/* A failed init backs the create out: slot, object or block, name. */
static void test_init_fails_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct failing_init fi = { 0, 7 }; /* not an errno: cancelled */
	dynshm_segment_info si;
	dynshm_segment *seg;
	unsigned flags[] = { 0, DYNSHM_CREATE_PIN, DYNSHM_CREATE_NO_REGION };

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		ASSERT_RC(dynshm_get_named(f->inst, "fails", 8192, flags[i],
					fail_init_after_writing, &fi, &seg,
					NULL),
			  -ECANCELED);
		ASSERT_RC(dynshm_stat(f->inst, fi.handle, &si, sizeof(si)),
			  -ENOENT);
		assert_int_equal(segments_in(f->inst), 0);
		assert_false(os_object_exists(f->inst, fi.handle));
		assert_unmade(f, fi.handle);
	}
	/* the same memory again: zeroed, the failed init's bytes gone */
	ASSERT_OK(dynshm_get_named(f->inst, "fails", 8192, 0, NULL, NULL, &seg,
				NULL));
	assert_int_equal(((unsigned char *)dynshm_segment_address(seg))[0], 0);
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(segments_in(f->inst), 0);
}

/* ---- a creator that dies leaves its name free ---------------------------- */

static const char *die_at;

static void die_hook(const char *point)
{
	if (die_at && strcmp(point, die_at) == 0)
		raise(SIGKILL);
}

static int create_named_and_die(void *arg)
{
	dynshm_segment *seg;

	die_at = arg;
	dynshm_test_hook = die_hook;
	dynshm_create_named(the_fixture.inst, "orphan", 4096, 0, &seg);
	return 3; /* the hook was not reached */
}

/* Removing a backend's object: this call, the nth of it, fails. */
static void removal_fails(const struct fixture *f)
{
	if (strcmp(f->backend, "posix") == 0)
		inject_fail("shm_unlink", 1, EACCES);
	else if (strcmp(f->backend, "sysv") == 0)
		inject_fail("shmctl", 2, EACCES);
	else
		inject_fail("unlinkat", 1, EACCES);
}

/*
 * Killed while creating, at each step: the next create of the name reaps
 * the dead slot and gets the name - also when the dead one's object cannot
 * be removed yet (the name must not wait for the removal).
 */
static void test_dead_creator_frees_name(void **state)
{
	static const char *const points[] = {
		"create:reserved", "create:after-os", "create:referenced",
	};
	struct fixture *f = *state;
	dynshm_segment *seg;

	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		for (int fail = 0; fail < (f->region ? 1 : 2); fail++) {
			start_child(f, 0, create_named_and_die,
				    (void *)points[i]);
			assert_int_equal(wait_child(f, 0), 128 + SIGKILL);
			if (fail)
				removal_fails(f);
			ASSERT_OK(dynshm_create_named(f->inst, "orphan", 4096, 0,
						   &seg));
			inject_reset();
			ASSERT_OK(dynshm_detach(seg));
			ASSERT_OK(dynshm_reap(f->inst, NULL)); /* the leftover */
			assert_int_equal(segments_in(f->inst), 0);
		}
	}
}

/* With the none backend every named create is refused, nothing is made. */
static void test_none_refuses(void **state)
{
	struct fixture *f = *state;
	dynshm_segment *seg;

	ASSERT_RC(dynshm_create_named(f->inst, "n", 64, 0, &seg), -ENOTSUP);
	ASSERT_MSG_HAS("disabled");
	ASSERT_RC(dynshm_get_named(f->inst, "n", 64, 0, count_calls, NULL, &seg,
				NULL),
		  -ENOTSUP);
	ASSERT_RC(dynshm_attach_named(f->inst, "n", &seg), -ENOENT);
	assert_int_equal(segments_in(f->inst), 0);
}

/* ---- groups -------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

static int run(const char *backend)
{
	char name[64];
	const struct CMUnitTest tests[] = {
		T(test_race_get_or_create),
		T(test_creator_killed_in_init),
		T(test_duplicates),
		T(test_bad_names),
		T(test_size_mismatch),
		T(test_init_fails),
		T(test_destroy_then_recreate),
		T(test_init_calls_itself),
		T(test_create_pinned),
		T(test_named_flags),
		T(test_init_fails_leaves_nothing),
		T(test_dead_creator_frees_name),
	};

	current_backend = backend;
	snprintf(name, sizeof(name), "named/%s%s", backend,
		 current_region ? "+region" : "");
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

int main(void)
{
	static const char *const backends[] = { "posix", "sysv", "mmap" };
	int rc = 0;

	dynshm_test_instance_tag = TEST_TAG;
	if (getenv("DYNSHM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DYNSHM_TEST_FILTER"));
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		rc += run(backends[i]);
	current_region = true; /* the same promises for region segments */
	rc += run("posix");
	current_region = false;
	{
		const struct CMUnitTest none[] = { T(test_none_refuses) };

		current_backend = "none";
		rc += cmocka_run_group_tests_name("named/none", none, NULL,
						  NULL);
	}
	return rc || fixture_failures ? 1 : 0;
}
