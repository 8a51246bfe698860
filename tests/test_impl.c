/* SPDX-License-Identifier: MIT */
/*
 * test_impl.c - the backend layer (dsm_impl.h), against the real OS.
 *
 * The contract in dsm_impl.h is the same for every backend, so it is tested
 * the same way for every backend: one table lists them, and each real one
 * runs the common tests as a CMocka group of its own, with a fresh instance
 * id (and for mmap a fresh directory).  Tests that only make sense for one
 * backend (symlinks in the mmap directory, foreign owners) are appended to
 * that backend's group.  Failure paths are walked with inject.h; after every
 * test the space is listed and anything left fails the test.
 *
 * Runs alone (is_parallel: false): the sysv backend lists by a 12-bit tag
 * that every test instance shares, so a concurrent test's segments would
 * look like ours.
 */
#include "inject.h"
#include "testutil.h"

#include "src/error.h"

#include <dynshm/dsm_impl.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the table of backends ----------------------------------------------- */

/* One step of create (or attach, or destroy) that can fail. */
struct step {
	const char *entry;  /* dynshm_sys entry */
	int nth;	    /* which call of it in the operation */
	bool retries_eintr; /* EINTR is retried: the operation succeeds */
	bool quiet_eexist;  /* EEXIST is a name collision: no message */
};

struct backend {
	const char *name;
	dynshm_impl_type type;
	const struct step *create_steps; /* ends with { NULL } */
	const struct step *attach_steps;
	const struct step *destroy_steps;
	const char *detach_entry;
	int (*run)(void); /* runs this backend's group */
};

/* A step of attach or destroy; END closes a list. */
#define STEP(entry, nth) { entry, nth, false, false }
#define END { NULL, 0, false, false }

static const struct step posix_create[] = {
	{ "shm_open", 1, false, true },
	{ "ftruncate", 1, true, false },
	{ "posix_fallocate", 1, true, false },
	{ "mmap", 1, false, false },
	END,
};
static const struct step posix_attach[] = {
	STEP("shm_open", 1), STEP("fstat", 1), STEP("mmap", 1), END,
};
static const struct step posix_destroy[] = { STEP("shm_unlink", 1), END };

static const struct step sysv_create[] = {
	{ "shmget", 1, false, true },
	{ "shmat", 1, false, false },
	END,
};
static const struct step sysv_attach[] = {
	STEP("shmget", 1), STEP("shmctl", 1), STEP("shmat", 1), END,
};
/*
 * In the space that created or attached the segment (its shmid is known):
 * shmctl(IPC_STAT), shmctl(IPC_RMID).  In another space, by key:
 * shmget, shmctl(IPC_STAT), shmctl(IPC_RMID).
 */
static const struct step sysv_destroy[] = {
	STEP("shmctl", 1), STEP("shmctl", 2), END,
};
static const struct step sysv_destroy_by_key[] = {
	STEP("shmget", 1), STEP("shmctl", 1), STEP("shmctl", 2), END,
};

static const struct step mmap_create[] = {
	{ "openat", 1, false, true },
	{ "ftruncate", 1, true, false },
	{ "posix_fallocate", 1, true, false },
	{ "mmap", 1, false, false },
	END,
};
static const struct step mmap_attach[] = {
	STEP("openat", 1), STEP("fstat", 1), STEP("mmap", 1), END,
};
static const struct step mmap_destroy[] = { STEP("unlinkat", 1), END };

static int run_posix(void);
static int run_sysv(void);
static int run_mmap(void);
static int run_none(void);

static const struct backend backends[] = {
	{ "posix", DYNSHM_IMPL_POSIX, posix_create, posix_attach, posix_destroy,
	  "munmap", run_posix },
	{ "sysv", DYNSHM_IMPL_SYSV, sysv_create, sysv_attach, sysv_destroy,
	  "shmdt", run_sysv },
	{ "mmap", DYNSHM_IMPL_MMAP, mmap_create, mmap_attach, mmap_destroy,
	  "munmap", run_mmap },
	{ "none", DYNSHM_IMPL_NONE, NULL, NULL, NULL, NULL, run_none },
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static const struct backend *backend_of(dynshm_impl_type type)
{
	for (size_t i = 0; i < N_BACKENDS; i++)
		if (backends[i].type == type)
			return &backends[i];
	return NULL;
}

/* ---- fixture ------------------------------------------------------------- */

#define MAX_SCRATCH 4

struct fixture {
	const struct backend *be;
	uint64_t id;
	char *dir; /* mmap only */
	dynshm_impl_space *space;
	char *scratch[MAX_SCRATCH]; /* directories of the running test */
};

static const struct backend *current; /* the group being run */
static struct fixture the_fixture;
/* CMocka 1.1 reports failed group fixtures but does not count them. */
static int group_fixture_failures;

/* Lists the space or fails the test. */
static struct test_listing *list_space(dynshm_impl_space *space)
{
	int rc;
	struct test_listing *l = test_list_space(space, &rc);

	if (!l)
		fail_msg("dynshm_impl_list: %d (%s)", rc, dynshm_last_error());
	return l;
}

static int listed_count(dynshm_impl_space *space)
{
	struct test_listing *l = list_space(space);
	int n = l->n;

	free(l);
	return n;
}

/*
 * Destroy whatever the space still holds; return how many there were.
 * Used by teardowns, so it reports rather than asserts.
 */
static int sweep(dynshm_impl_space *space, const char *when)
{
	struct test_listing *l;
	int rc, n;

	l = test_list_space(space, &rc);
	if (!l) {
		fprintf(stderr, "%s: cannot list: %d (%s)\n", when, rc,
			dynshm_last_error());
		return 1;
	}
	for (int i = 0; i < l->n && i < TEST_LISTED_MAX; i++) {
		fprintf(stderr, "%s: left behind: %s\n", when, l->name[i]);
		rc = dynshm_impl_destroy_name(space, l->name[i]);
		if (rc != 0)
			fprintf(stderr, "%s: cannot remove %s: %d (%s)\n", when,
				l->name[i], rc, dynshm_last_error());
	}
	n = l->n;
	free(l);
	return n;
}

static int group_setup(void **state)
{
	struct fixture *f = &the_fixture;
	int rc;

	memset(f, 0, sizeof(*f));
	f->be = current;
	f->id = test_instance_id();
	if (f->be->type == DYNSHM_IMPL_MMAP) {
		f->dir = test_make_dir();
		if (!f->dir) {
			fprintf(stderr, "cannot make a test directory: %s\n",
				strerror(errno));
			group_fixture_failures++;
			return -1;
		}
	}
	rc = dynshm_impl_space_open(f->be->type, f->id, f->dir, &f->space);
	if (rc != 0) {
		fprintf(stderr, "cannot open a %s space: %d (%s)\n",
			f->be->name, rc, dynshm_last_error());
		test_remove_dir(f->dir);
		f->dir = NULL;
		group_fixture_failures++;
		return -1;
	}
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fixture *f = *state;
	int left;

	inject_reset();
	left = sweep(f->space, f->be->name);
	dynshm_impl_space_close(f->space);
	f->space = NULL;
	if (f->dir && test_remove_dir(f->dir) < 0)
		left++;
	f->dir = NULL;
	if (left)
		group_fixture_failures++;
	return left ? -1 : 0;
}

static int test_setup(void **state)
{
	(void)state;
	inject_reset();
	dynshm_clear_error();
	return 0;
}

/* Every test must leave its space empty, whatever happened in it. */
static int test_teardown(void **state)
{
	struct fixture *f = *state;
	int bad = 0;

	inject_reset();
	for (int i = 0; i < MAX_SCRATCH; i++) {
		if (f->scratch[i] && test_remove_dir(f->scratch[i]) < 0)
			bad = 1;
		f->scratch[i] = NULL;
	}
	if (sweep(f->space, "test teardown"))
		bad = 1;
	return bad ? -1 : 0;
}

/* A private directory, removed by the teardown however the test ends. */
static const char *scratch_dir(struct fixture *f)
{
	for (int i = 0; i < MAX_SCRATCH; i++) {
		if (!f->scratch[i]) {
			f->scratch[i] = test_make_dir();
			if (!f->scratch[i])
				fail_msg("cannot make a directory: %s",
					 strerror(errno));
			return f->scratch[i];
		}
	}
	fail_msg("more than %d scratch directories", MAX_SCRATCH);
	return NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static void object_name(struct fixture *f, dynshm_handle h, char *buf,
			size_t len)
{
	int rc = dynshm_impl_object_name(f->space, h, buf, len);

	assert_int_equal(rc, 0);
}

/*
 * The part of the object's name that every message about it must contain:
 * the base name for posix and mmap (messages about the file may omit the
 * directory), the key for sysv.
 */
static void object_token(struct fixture *f, dynshm_handle h, char *buf,
			 size_t len)
{
	char name[DYNSHM_IMPL_NAME_MAX];
	const char *t;

	object_name(f, h, name, sizeof(name));
	if (strncmp(name, "sysv:", 5) == 0)
		t = name + 5;
	else
		t = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	snprintf(buf, len, "%s", t);
}

/* Does the OS object exist?  Asked of the OS directly, not of the library. */
static bool os_exists(struct fixture *f, dynshm_handle h)
{
	char name[DYNSHM_IMPL_NAME_MAX];
	struct stat st;

	object_name(f, h, name, sizeof(name));
	switch (f->be->type) {
	case DYNSHM_IMPL_POSIX: {
		char path[DYNSHM_IMPL_NAME_MAX + 16];

		snprintf(path, sizeof(path), "/dev/shm%s", name);
		return lstat(path, &st) == 0;
	}
	case DYNSHM_IMPL_MMAP:
		return lstat(name, &st) == 0;
	case DYNSHM_IMPL_SYSV: {
		unsigned key;

		assert_int_equal(sscanf(name, "sysv:0x%x", &key), 1);
		return shmget((key_t)key, 0, 0) >= 0;
	}
	default:
		return false;
	}
}

/* Nothing of h is left: neither listed nor present in the OS. */
static void assert_gone(struct fixture *f, dynshm_handle h, const char *ctx)
{
	struct test_listing *l = list_space(f->space);
	int n = l->n;

	free(l);
	if (n != 0)
		fail_msg("%s: %d object(s) left in the space", ctx, n);
	if (os_exists(f, h))
		fail_msg("%s: the OS object is still there", ctx);
}

static void fill(void *p, size_t size, uint64_t seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		c[i] = (unsigned char)(seed + i * 7 + (i >> 12));
}

static bool check_fill(const void *p, size_t size, uint64_t seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i] != (unsigned char)(seed + i * 7 + (i >> 12)))
			return false;
	return true;
}

static bool all_zero(const void *p, size_t size)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i])
			return false;
	return true;
}

static void message_names(struct fixture *f, dynshm_handle h, const char *ctx)
{
	char token[DYNSHM_IMPL_NAME_MAX];
	const char *msg = dynshm_last_error();

	object_token(f, h, token, sizeof(token));
	if (msg[0] == '\0')
		fail_msg("%s: no message recorded", ctx);
	if (!strstr(msg, token))
		fail_msg("%s: message '%s' does not name '%s'", ctx, msg,
			 token);
}

static const char *errname(int err)
{
	switch (err) {
	case EINTR: return "EINTR";
	case ENOSPC: return "ENOSPC";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	case EMFILE: return "EMFILE";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	default: return "?";
	}
}

/* ---- common tests: every real backend ------------------------------------ */

static void test_round_trip(void **state)
{
	static const size_t sizes[] = { 1, 4096, 1 << 20, 3 * 4096 + 123,
					4095 };
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i];
		dynshm_handle h = test_random_handle();
		dynshm_impl_map *m1 = NULL, *m2 = NULL;
		unsigned char *p1, *p2;

		assert_int_equal(dynshm_impl_create(f->space, h, size, 0, &m1), 0);
		assert_non_null(m1);
		assert_int_equal(dynshm_impl_map_size(m1), size);
		p1 = dynshm_impl_map_address(m1);
		assert_non_null(p1);
		assert_true(all_zero(p1, size));
		fill(p1, size, h);

		assert_int_equal(dynshm_impl_attach(f->space, h, &m2), 0);
		assert_int_equal(dynshm_impl_map_size(m2), size);
		p2 = dynshm_impl_map_address(m2);
		assert_true(p2 != p1);
		assert_true(check_fill(p2, size, h));
		/* one object: a write through one mapping shows in the other */
		p2[size - 1] ^= 0xff;
		assert_int_equal(p1[size - 1], p2[size - 1]);

		assert_int_equal(dynshm_impl_detach(m2), 0);
		assert_int_equal(dynshm_impl_detach(m1), 0);
		assert_true(os_exists(f, h)); /* detach never removes */
		assert_int_equal(dynshm_impl_destroy(f->space, h), 0);

		dynshm_clear_error();
		m2 = NULL;
		assert_int_equal(dynshm_impl_attach(f->space, h, &m2), -ENOENT);
		assert_null(m2);
		assert_string_not_equal(dynshm_last_error(), "");
		assert_int_equal(dynshm_impl_destroy(f->space, h), -ENOENT);
		assert_gone(f, h, "after destroy");
	}
}

/* A mapping outlives the destroy of its object (contract of destroy). */
static void test_destroy_while_mapped(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;

	assert_int_equal(dynshm_impl_create(f->space, h, 8192, 0, &m), 0);
	fill(dynshm_impl_map_address(m), 8192, 3);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_false(os_exists(f, h));
	assert_true(check_fill(dynshm_impl_map_address(m), 8192, 3));
	assert_int_equal(dynshm_impl_detach(m), 0);
}

static void test_invalid_arguments(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;

	assert_int_equal(dynshm_impl_create(f->space, h, 0, 0, &m), -EINVAL);
	assert_string_not_equal(dynshm_last_error(), "");
	assert_int_equal(dynshm_impl_create(f->space, h, DYNSHM_IMPL_MAX_SIZE + 1, 0,
					 &m),
			 -EINVAL);
	assert_int_equal(dynshm_impl_create(f->space, h, SIZE_MAX, 0, &m),
			 -EINVAL);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 2, &m), -EINVAL);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0x80000000u, &m),
			 -EINVAL);
	assert_int_equal(dynshm_impl_create(f->space, DYNSHM_HANDLE_INVALID, 4096, 0,
					 &m),
			 -EINVAL);
	assert_int_equal(dynshm_impl_attach(f->space, DYNSHM_HANDLE_INVALID, &m),
			 -EINVAL);
	assert_int_equal(dynshm_impl_destroy(f->space, DYNSHM_HANDLE_INVALID),
			 -EINVAL);
	assert_int_equal(dynshm_impl_create(NULL, h, 4096, 0, &m), -EINVAL);
	assert_int_equal(dynshm_impl_detach(NULL), -EINVAL);
	assert_null(m);
	assert_gone(f, h, "after refused creates");
}

static void test_collision(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle(), h2;
	dynshm_impl_map *m1 = NULL, *m2 = NULL, *m3 = NULL;

	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m1), 0);
	strcpy(dynshm_impl_map_address(m1), "first");

	/* a message from an earlier failure must survive the quiet -EEXIST */
	dynshm_fail(EPERM, "sentinel %d", 42);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m2), -EEXIST);
	assert_null(m2);
	assert_string_equal(dynshm_last_error(), "sentinel 42");
	/* and none is made up either, whatever the size asked for */
	dynshm_clear_error();
	assert_int_equal(dynshm_impl_create(f->space, h, 8192, 0, &m2), -EEXIST);
	assert_null(m2);
	assert_string_equal(dynshm_last_error(), "");

	/* the existing object is untouched */
	assert_string_equal(dynshm_impl_map_address(m1), "first");
	assert_int_equal(dynshm_impl_attach(f->space, h, &m3), 0);
	assert_int_equal(dynshm_impl_map_size(m3), 4096);
	assert_string_equal(dynshm_impl_map_address(m3), "first");
	assert_int_equal(dynshm_impl_detach(m3), 0);

	/* the caller's retry with a new handle succeeds */
	do
		h2 = test_random_handle();
	while (h2 == h);
	assert_int_equal(dynshm_impl_create(f->space, h2, 4096, 0, &m2), 0);
	assert_true(all_zero(dynshm_impl_map_address(m2), 4096));

	assert_int_equal(dynshm_impl_detach(m2), 0);
	assert_int_equal(dynshm_impl_detach(m1), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h2), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_gone(f, h, "after collision test");
}

/* ---- two processes ------------------------------------------------------- */

#define SHARED_SIZE (64 * 1024)
#define FORK_REPLY_AT 4096
#define EXEC_REPLY_AT 8192

static void greeting(dynshm_handle h, char *buf, size_t len)
{
	snprintf(buf, len, "dynshm parent %016" PRIx64, h);
}

static void reply(const char *who, dynshm_handle h, char *buf, size_t len)
{
	snprintf(buf, len, "%s child %016" PRIx64 " was here", who, h);
}

/* Attach h in space, check the greeting, leave a reply at offset. */
static int child_attach_and_reply(dynshm_impl_space *space, dynshm_handle h,
				  size_t offset, const char *who)
{
	char expect[128], answer[128];
	dynshm_impl_map *m = NULL;
	char *p;
	int rc;

	rc = dynshm_impl_attach(space, h, &m);
	if (rc != 0)
		fprintf(stderr, "%s child: attach: %d (%s)\n", who, rc,
			dynshm_last_error());
	CHILD_CHECK(rc == 0);
	CHILD_CHECK(dynshm_impl_map_size(m) == SHARED_SIZE);
	p = dynshm_impl_map_address(m);
	greeting(h, expect, sizeof(expect));
	CHILD_CHECK(strcmp(p, expect) == 0);
	CHILD_CHECK(check_fill(p + 16384, SHARED_SIZE - 16384, h));
	reply(who, h, answer, sizeof(answer));
	strcpy(p + offset, answer);
	CHILD_CHECK(dynshm_impl_detach(m) == 0);
	return 0;
}

struct fork_arg {
	struct fixture *f;
	dynshm_handle h;
};

static int fork_child(void *arg)
{
	struct fork_arg *a = arg;

	/* the inherited space is used as is: a prefork server's children */
	return child_attach_and_reply(a->f->space, a->h, FORK_REPLY_AT, "fork");
}

/* --child attach <backend> <instance id> <directory or -> <handle> */
static int exec_child(int argc, char **argv)
{
	dynshm_impl_space *space = NULL;
	dynshm_impl_type type;
	uint64_t id;
	dynshm_handle h;
	int rc;

	CHILD_CHECK(argc == 5);
	CHILD_CHECK(dynshm_impl_type_from_name(argv[1], &type) == 0);
	id = strtoull(argv[2], NULL, 16);
	h = strtoull(argv[4], NULL, 16);
	rc = dynshm_impl_space_open(type, id,
				 strcmp(argv[3], "-") ? argv[3] : NULL, &space);
	if (rc != 0)
		fprintf(stderr, "exec child: space: %d (%s)\n", rc,
			dynshm_last_error());
	CHILD_CHECK(rc == 0);
	rc = child_attach_and_reply(space, h, EXEC_REPLY_AT, "exec");
	dynshm_impl_space_close(space);
	return rc;
}

static void test_two_processes(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	char text[128], id[32], handle[32];
	struct fork_arg arg = { f, h };
	dynshm_impl_map *m = NULL;
	const char *args[5];
	char *p;

	assert_int_equal(dynshm_impl_create(f->space, h, SHARED_SIZE, 0, &m), 0);
	p = dynshm_impl_map_address(m);
	fill(p + 16384, SHARED_SIZE - 16384, h);
	greeting(h, p, 128);

	assert_int_equal(test_fork(fork_child, &arg), 0);

	snprintf(id, sizeof(id), "%016" PRIx64, f->id);
	snprintf(handle, sizeof(handle), "%016" PRIx64, h);
	args[0] = f->be->name;
	args[1] = id;
	args[2] = f->dir ? f->dir : "-";
	args[3] = handle;
	args[4] = NULL;
	assert_int_equal(test_spawn("attach", args), 0);

	reply("fork", h, text, sizeof(text));
	assert_string_equal(p + FORK_REPLY_AT, text);
	reply("exec", h, text, sizeof(text));
	assert_string_equal(p + EXEC_REPLY_AT, text);

	assert_int_equal(dynshm_impl_detach(m), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_gone(f, h, "after the two-process round trip");
}

/* ---- injected failures --------------------------------------------------- */

static const int create_errors[] = { EINTR, ENOSPC, EACCES, ENOMEM, EMFILE,
				     EEXIST };

static void test_create_failures(void **state)
{
	struct fixture *f = *state;

	for (const struct step *s = f->be->create_steps; s->entry; s++) {
		for (size_t i = 0; i < sizeof(create_errors) / sizeof(int);
		     i++) {
			int err = create_errors[i];
			dynshm_handle h = test_random_handle();
			dynshm_impl_map *m = NULL;
			unsigned long calls;
			char ctx[128];
			int fds, rc;

			snprintf(ctx, sizeof(ctx),
				 "%s: create, %s #%d fails %s", f->be->name,
				 s->entry, s->nth, errname(err));
			fds = test_count_fds();
			dynshm_clear_error();
			inject_fail(s->entry, s->nth, err);
			rc = dynshm_impl_create(f->space, h, 3 * 4096 + 5, 0, &m);
			calls = inject_calls(s->entry);
			inject_reset();

			if (calls < (unsigned long)s->nth)
				fail_msg("%s: the step was never reached", ctx);
			if (err == EINTR && s->retries_eintr) {
				if (rc != 0)
					fail_msg("%s: not retried: %d (%s)",
						 ctx, rc, dynshm_last_error());
				assert_int_equal(calls, s->nth + 1);
				assert_int_equal(dynshm_impl_map_size(m),
						 3 * 4096 + 5);
				assert_true(all_zero(dynshm_impl_map_address(m),
						     3 * 4096 + 5));
				assert_int_equal(dynshm_impl_detach(m), 0);
				assert_int_equal(
					dynshm_impl_destroy(f->space, h), 0);
			} else {
				if (rc != -err)
					fail_msg("%s: returned %d (%s)", ctx,
						 rc, dynshm_last_error());
				assert_null(m);
				if (err == EEXIST && s->quiet_eexist) {
					if (dynshm_last_error()[0])
						fail_msg("%s: collision not "
							 "quiet: '%s'",
							 ctx, dynshm_last_error());
				} else {
					message_names(f, h, ctx);
				}
			}
			if (test_count_fds() != fds)
				fail_msg("%s: %d descriptors before, %d after",
					 ctx, fds, test_count_fds());
			assert_gone(f, h, ctx);
		}
	}
}

static const int attach_errors[] = { EINTR, EACCES, ENOMEM, EMFILE, ENOENT };

static void test_attach_failures(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;

	assert_int_equal(dynshm_impl_create(f->space, h, 20000, 0, &m), 0);
	fill(dynshm_impl_map_address(m), 20000, 9);
	assert_int_equal(dynshm_impl_detach(m), 0);

	for (const struct step *s = f->be->attach_steps; s->entry; s++) {
		for (size_t i = 0; i < sizeof(attach_errors) / sizeof(int);
		     i++) {
			int err = attach_errors[i];
			char ctx[128];
			int fds, rc;

			snprintf(ctx, sizeof(ctx),
				 "%s: attach, %s #%d fails %s", f->be->name,
				 s->entry, s->nth, errname(err));
			fds = test_count_fds();
			m = NULL;
			dynshm_clear_error();
			inject_fail(s->entry, s->nth, err);
			rc = dynshm_impl_attach(f->space, h, &m);
			if (inject_calls(s->entry) < (unsigned long)s->nth)
				fail_msg("%s: the step was never reached", ctx);
			inject_reset();
			if (rc != -err)
				fail_msg("%s: returned %d (%s)", ctx, rc,
					 dynshm_last_error());
			assert_null(m);
			message_names(f, h, ctx);
			if (test_count_fds() != fds)
				fail_msg("%s: %d descriptors before, %d after",
					 ctx, fds, test_count_fds());
			/* a failed attach leaves the object as it was */
			assert_int_equal(dynshm_impl_attach(f->space, h, &m), 0);
			assert_int_equal(dynshm_impl_map_size(m), 20000);
			assert_true(check_fill(dynshm_impl_map_address(m), 20000,
					       9));
			assert_int_equal(dynshm_impl_detach(m), 0);
		}
	}
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_gone(f, h, "after attach failures");
}

static void destroy_failures(struct fixture *f, dynshm_impl_space *space,
			     const struct step *steps, dynshm_handle h)
{
	for (const struct step *s = steps; s->entry; s++) {
		char ctx[128];
		int rc;

		snprintf(ctx, sizeof(ctx), "%s: destroy, %s #%d fails EACCES",
			 f->be->name, s->entry, s->nth);
		dynshm_clear_error();
		inject_fail(s->entry, s->nth, EACCES);
		rc = dynshm_impl_destroy(space, h);
		inject_reset();
		if (rc != -EACCES)
			fail_msg("%s: returned %d (%s)", ctx, rc,
				 dynshm_last_error());
		message_names(f, h, ctx);
		assert_true(os_exists(f, h));
	}
}

static void test_detach_destroy_failures(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;
	size_t size;
	void *addr;

	/* detach: the map is freed whatever happens; the code is returned */
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	addr = dynshm_impl_map_address(m);
	size = dynshm_impl_map_size(m);
	inject_fail(f->be->detach_entry, 1, EINVAL);
	assert_int_equal(dynshm_impl_detach(m), -EINVAL);
	assert_int_equal(inject_calls(f->be->detach_entry), 1);
	inject_reset();
	assert_string_not_equal(dynshm_last_error(), "");
	/* the memory is still mapped: unmap it behind the library's back */
	if (f->be->type == DYNSHM_IMPL_SYSV)
		assert_int_equal(shmdt(addr), 0);
	else
		assert_int_equal(munmap(addr, size), 0);

	/* destroy: each step's failure is returned and keeps the object */
	destroy_failures(f, f->space, f->be->destroy_steps, h);
	if (f->be->type == DYNSHM_IMPL_SYSV) {
		/* a space that never saw h's shmid looks its key up */
		dynshm_impl_space *other = NULL;

		assert_int_equal(dynshm_impl_space_open(f->be->type, f->id, f->dir,
						     &other),
				 0);
		destroy_failures(f, other, sysv_destroy_by_key, h);
		dynshm_impl_space_close(other);
	}
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_gone(f, h, "after destroy failures");
}

/* ---- listing ------------------------------------------------------------- */

static int stop_after_one(dynshm_handle handle, const char *os_name, void *arg)
{
	(void)handle, (void)os_name;
	++*(int *)arg;
	return 7;
}

static int find_name(const struct test_listing *l, const char *name)
{
	for (int i = 0; i < l->n && i < TEST_LISTED_MAX; i++)
		if (strcmp(l->name[i], name) == 0)
			return i;
	return -1;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	char names[3][DYNSHM_IMPL_NAME_MAX], other_name[DYNSHM_IMPL_NAME_MAX];
	dynshm_impl_space *other = NULL;
	dynshm_handle h[3], oh = test_random_handle();
	dynshm_impl_map *m = NULL;
	struct test_listing *l;
	int calls = 0;

	assert_int_equal(listed_count(f->space), 0);
	for (int i = 0; i < 3; i++) {
		h[i] = test_random_handle();
		assert_int_equal(dynshm_impl_create(f->space, h[i], 4096, 0, &m),
				 0);
		assert_int_equal(dynshm_impl_detach(m), 0);
		object_name(f, h[i], names[i], sizeof(names[i]));
	}
	/* another instance's object must not be listed or removable by name */
	assert_int_equal(dynshm_impl_space_open(f->be->type, test_instance_id(),
					     f->dir, &other),
			 0);
	assert_int_equal(dynshm_impl_create(other, oh, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	assert_int_equal(dynshm_impl_object_name(other, oh, other_name,
					      sizeof(other_name)),
			 0);

	l = list_space(f->space);
	if (f->be->type == DYNSHM_IMPL_SYSV) {
		/*
		 * Every test instance has the same 12-bit tag, and sysv lists
		 * by tag (documented in sysv.c): the other one shows up too.
		 */
		assert_int_equal(l->n, 4);
		assert_true(find_name(l, other_name) >= 0);
	} else {
		assert_int_equal(l->n, 3);
		assert_true(find_name(l, other_name) < 0);
	}
	for (int i = 0; i < 3; i++) {
		int at = find_name(l, names[i]);

		if (at < 0)
			fail_msg("%s is not listed", names[i]);
		if (f->be->type == DYNSHM_IMPL_SYSV) {
			assert_int_equal(l->handle[at], DYNSHM_HANDLE_INVALID);
			assert_memory_equal(l->name[at], "sysv:0x", 7);
		} else {
			assert_int_equal(l->handle[at], h[i]);
		}
	}
	free(l);

	/* a non-zero return stops the walk and is returned */
	assert_int_equal(dynshm_impl_list(f->space, stop_after_one, &calls), 7);
	assert_int_equal(calls, 1);

	if (f->be->type != DYNSHM_IMPL_SYSV) {
		dynshm_clear_error();
		assert_int_equal(dynshm_impl_destroy_name(f->space, other_name),
				 -EINVAL);
		assert_string_not_equal(dynshm_last_error(), "");
		assert_int_equal(dynshm_impl_destroy_name(f->space,
						       "/not-ours.1234"),
				 -EINVAL);
	}
	assert_int_equal(dynshm_impl_attach(other, oh, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	assert_int_equal(dynshm_impl_destroy(other, oh), 0);
	dynshm_impl_space_close(other);

	/* destroy_name removes exactly the one named */
	assert_int_equal(dynshm_impl_destroy_name(f->space, names[1]), 0);
	assert_int_equal(dynshm_impl_attach(f->space, h[1], &m), -ENOENT);
	assert_int_not_equal(dynshm_impl_destroy_name(f->space, names[1]), 0);
	l = list_space(f->space);
	assert_int_equal(l->n, 2);
	assert_true(find_name(l, names[0]) >= 0);
	assert_true(find_name(l, names[1]) < 0);
	assert_true(find_name(l, names[2]) >= 0);
	free(l);

	assert_int_equal(dynshm_impl_destroy(f->space, h[0]), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h[2]), 0);
	assert_int_equal(listed_count(f->space), 0);
}

/* ---- posix: foreign objects ---------------------------------------------- */

static void test_posix_foreign(void **state)
{
	struct fixture *f = *state;
	char name[DYNSHM_IMPL_NAME_MAX], path[DYNSHM_IMPL_NAME_MAX + 16];
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;
	int fd;

	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	object_name(f, h, name, sizeof(name));
	fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	assert_true(fd >= 0);

	assert_int_equal(fchmod(fd, 0644), 0);
	m = NULL;
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	assert_non_null(strstr(dynshm_last_error(), "0644"));
	assert_int_equal(fchmod(fd, 0600), 0);
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);

	if (test_is_root()) {
		m = NULL;
		assert_int_equal(fchown(fd, TEST_OTHER_UID, (gid_t)-1), 0);
		assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
		assert_null(m);
		message_names(f, h, "attach to another user's object");
	} else {
		print_message("not root: skipping the other-owner check\n");
	}
	close(fd);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);

	/* a symlink in /dev/shm at our name is not an object of ours */
	h = test_random_handle();
	object_name(f, h, name, sizeof(name));
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	assert_int_equal(symlink("/dev/null", path), 0);
	m = NULL;
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	assert_int_equal(unlink(path), 0);
}

/* ---- sysv: foreign segments ---------------------------------------------- */

/*
 * A space remembers the shmid of what it created or attached, so that
 * destroy need not look the key up.  That id goes stale when another space
 * (another process) destroys and recreates the segment: destroy must notice
 * and fall back to the key, or it would leave the new segment behind.
 */
static void test_sysv_stale_shmid(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_space *other = NULL;
	dynshm_impl_map *m = NULL;
	unsigned calls;

	assert_int_equal(dynshm_impl_space_open(f->be->type, f->id, f->dir,
					     &other),
			 0);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	/* the id known: destroy by it, without a lookup by key */
	inject_fail("shmget", 1, EACCES);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	calls = (unsigned)inject_calls("shmget");
	inject_reset();
	assert_int_equal(calls, 0);
	assert_false(os_exists(f, h));

	/* remembered by f->space, removed and made again through other */
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	assert_int_equal(dynshm_impl_destroy(other, h), 0);
	assert_int_equal(dynshm_impl_create(other, h, 8192, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
	assert_false(os_exists(f, h));
	/* and a stale id of a segment that is gone is not an error */
	assert_int_equal(dynshm_impl_destroy(f->space, h), -ENOENT);
	dynshm_impl_space_close(other);
}

static void test_sysv_foreign(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	char name[DYNSHM_IMPL_NAME_MAX];
	dynshm_impl_map *m = NULL;
	struct shmid_ds ds;
	unsigned key;
	int id;

	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	object_name(f, h, name, sizeof(name));
	assert_int_equal(sscanf(name, "sysv:0x%x", &key), 1);
	id = shmget((key_t)key, 0, 0);
	assert_true(id >= 0);

	assert_int_equal(shmctl(id, IPC_STAT, &ds), 0);
	ds.shm_perm.mode = 0644;
	assert_int_equal(shmctl(id, IPC_SET, &ds), 0);
	m = NULL;
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	message_names(f, h, "attach to a segment readable by others");

	ds.shm_perm.mode = 0600;
	if (test_is_root()) {
		ds.shm_perm.uid = TEST_OTHER_UID;
		assert_int_equal(shmctl(id, IPC_SET, &ds), 0);
		assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
		assert_int_equal(dynshm_impl_destroy(f->space, h), -EACCES);
		ds.shm_perm.uid = geteuid();
	} else {
		print_message("not root: skipping the other-owner check\n");
	}
	assert_int_equal(shmctl(id, IPC_SET, &ds), 0);
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
}

/* ---- mmap: a directory other users might reach --------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static void assert_file_is(const char *path, const char *text)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, text);
}

static void test_mmap_planted_symlink(void **state)
{
	struct fixture *f = *state;
	char name[DYNSHM_IMPL_NAME_MAX], target[DYNSHM_IMPL_NAME_MAX];
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;
	const char *elsewhere = scratch_dir(f);
	struct stat st;

	object_name(f, h, name, sizeof(name));

	/* create through a symlink to an existing file */
	snprintf(target, sizeof(target), "%s/victim", elsewhere);
	write_file(target, "untouched\n", 0600);
	assert_int_equal(symlink(target, name), 0);
	assert_int_equal(dynshm_impl_create(f->space, h, 1 << 20, 0, &m),
			 -EACCES);
	assert_null(m);
	assert_non_null(strstr(dynshm_last_error(), "symbolic link"));
	assert_file_is(target, "untouched\n");
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(name, &st), 0);
	assert_true(S_ISLNK(st.st_mode));

	/* attach through it */
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	assert_file_is(target, "untouched\n");
	assert_int_equal(unlink(name), 0);

	/* create through a dangling symlink must not make its target */
	snprintf(target, sizeof(target), "%s/absent", elsewhere);
	assert_int_equal(symlink(target, name), 0);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), -EACCES);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(unlink(name), 0);
}

static void test_mmap_unsafe_directory(void **state)
{
	struct fixture *f = *state;
	const char *dir = scratch_dir(f), *elsewhere = scratch_dir(f);
	char link[DYNSHM_IMPL_NAME_MAX];
	dynshm_impl_space *s = NULL;

	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, dir, &s),
			 -EACCES);
	assert_null(s);
	assert_non_null(strstr(dynshm_last_error(), dir));
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, dir, &s),
			 -EACCES);
	/* shared but sticky (like /tmp) is acceptable */
	assert_int_equal(chmod(dir, 01777), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, dir, &s),
			 0);
	dynshm_impl_space_close(s);
	s = NULL;
	assert_int_equal(chmod(dir, 0700), 0);

	/* a symlink to a good directory is refused all the same */
	snprintf(link, sizeof(link), "%s/link", elsewhere);
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, link, &s),
			 -EACCES);
	assert_null(s);

	/* not a directory, and missing */
	snprintf(link, sizeof(link), "%s/file", elsewhere);
	write_file(link, "x", 0600);
	assert_int_not_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, link,
						 &s),
			     0);
	snprintf(link, sizeof(link), "%s/missing", elsewhere);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, link, &s),
			 -ENOENT);
	assert_null(s);

	if (test_is_root()) {
		assert_int_equal(chown(dir, TEST_OTHER_UID, (gid_t)-1), 0);
		assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, f->id, dir,
						     &s),
				 -EACCES);
		assert_null(s);
	} else {
		print_message("not root: skipping the other-owner check\n");
	}
}

static void test_mmap_foreign_file(void **state)
{
	struct fixture *f = *state;
	char name[DYNSHM_IMPL_NAME_MAX];
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;

	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), 0);
	assert_int_equal(dynshm_impl_detach(m), 0);
	object_name(f, h, name, sizeof(name));

	assert_int_equal(chmod(name, 0644), 0);
	m = NULL;
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	message_names(f, h, "attach to a file readable by others");
	assert_int_equal(chmod(name, 0600), 0);

	if (!test_is_root()) {
		print_message("not root: skipping the other-owner checks\n");
		assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
		return;
	}
	assert_int_equal(chown(name, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -EACCES);
	assert_null(m);
	message_names(f, h, "attach to another user's file");
	/* a foreign file in the way of a create is not a quiet collision */
	dynshm_clear_error();
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), -EACCES);
	assert_null(m);
	message_names(f, h, "create over another user's file");
	assert_int_equal(dynshm_impl_destroy(f->space, h), 0);
}

/* ---- none, and the API around spaces ------------------------------------- */

static int count_calls(dynshm_handle handle, const char *os_name, void *arg)
{
	(void)handle, (void)os_name;
	++*(int *)arg;
	return 0;
}

static void test_none(void **state)
{
	struct fixture *f = *state;
	dynshm_handle h = test_random_handle();
	dynshm_impl_map *m = NULL;
	int calls = 0;

	assert_int_equal(dynshm_impl_space_type(f->space), DYNSHM_IMPL_NONE);
	assert_int_equal(dynshm_impl_create(f->space, h, 4096, 0, &m), -ENOTSUP);
	assert_null(m);
	assert_non_null(strstr(dynshm_last_error(), "disabled by configuration"));
	assert_int_equal(dynshm_impl_attach(f->space, h, &m), -ENOENT);
	assert_null(m);
	assert_int_equal(dynshm_impl_destroy(f->space, h), -ENOENT);
	assert_int_equal(dynshm_impl_list(f->space, count_calls, &calls), 0);
	assert_int_equal(calls, 0);
}

static void test_types_and_spaces(void **state)
{
	dynshm_impl_space *s = NULL;
	dynshm_impl_type t;

	(void)state;
	for (size_t i = 0; i < N_BACKENDS; i++) {
		assert_string_equal(dynshm_impl_type_name(backends[i].type),
				    backends[i].name);
		assert_int_equal(dynshm_impl_type_from_name(backends[i].name, &t),
				 0);
		assert_int_equal(t, backends[i].type);
	}
	assert_null(dynshm_impl_type_name((dynshm_impl_type)42));
	assert_int_equal(dynshm_impl_type_from_name("posx", &t), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "posx"));
	assert_non_null(strstr(dynshm_last_error(), "posix, sysv, mmap, none"));
	assert_int_equal(dynshm_impl_type_from_name(NULL, &t), -EINVAL);

	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_POSIX, 0, NULL, &s),
			 -EINVAL);
	assert_int_equal(dynshm_impl_space_open((dynshm_impl_type)42,
					     test_instance_id(), NULL, &s),
			 -EINVAL);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(),
					     NULL, &s),
			 -EINVAL);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(),
					     "", &s),
			 -EINVAL);
	assert_null(s);
	dynshm_impl_space_close(NULL);
	assert_non_null(backend_of(DYNSHM_IMPL_NONE));
}

/* ---- groups -------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
#define COMMON_TESTS                                                           \
	T(test_round_trip), T(test_destroy_while_mapped),                      \
		T(test_invalid_arguments), T(test_collision),                  \
		T(test_two_processes), T(test_create_failures),                \
		T(test_attach_failures), T(test_detach_destroy_failures),      \
		T(test_list)

static int run_posix(void)
{
	const struct CMUnitTest tests[] = { COMMON_TESTS,
					    T(test_posix_foreign) };

	return cmocka_run_group_tests_name("impl/posix", tests, group_setup,
					   group_teardown);
}

static int run_sysv(void)
{
	const struct CMUnitTest tests[] = { COMMON_TESTS,
					    T(test_sysv_foreign),
					    T(test_sysv_stale_shmid) };

	return cmocka_run_group_tests_name("impl/sysv", tests, group_setup,
					   group_teardown);
}

static int run_mmap(void)
{
	const struct CMUnitTest tests[] = {
		COMMON_TESTS,
		T(test_mmap_planted_symlink),
		T(test_mmap_unsafe_directory),
		T(test_mmap_foreign_file),
	};

	return cmocka_run_group_tests_name("impl/mmap", tests, group_setup,
					   group_teardown);
}

static int run_none(void)
{
	const struct CMUnitTest tests[] = { T(test_none) };

	return cmocka_run_group_tests_name("impl/none", tests, group_setup,
					   group_teardown);
}

static const struct test_child children[] = {
	{ "attach", exec_child },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	const struct CMUnitTest api[] = {
		cmocka_unit_test(test_types_and_spaces),
	};
	int rc = test_child_main(argc, argv, children);

	if (rc >= 0)
		return rc;
	rc = cmocka_run_group_tests_name("impl/api", api, NULL, NULL);
	for (size_t i = 0; i < N_BACKENDS; i++) {
		current = &backends[i];
		rc += current->run();
	}
	return rc || group_fixture_failures ? 1 : 0;
}
