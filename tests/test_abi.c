/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - what lets the API grow without breaking built programs, and
 * the conveniences of issue 11 section 7.
 *
 *   dynshm_instance_info_get and dynshm_stat fill min(caller's size, the
 *   library's) bytes, never write past the caller's size, zero what
 *   the library does not know, and report the bytes filled in
 *   struct_size; a size smaller than struct_size itself is -EINVAL   test_instance_info_sized
 *                                                                       test_segment_info_sized
 *   dynshm_foreach_segment hands out the library's structure with
 *   struct_size set                                                    test_foreach_struct_size
 *   dynshm_version() agrees with the generated DYNSHM_VERSION_*        test_version
 *   dynshm_find_mapping returns this process's mapping without an
 *   attach (one detach still unmaps and destroys), -ENOENT and NULL
 *   for a handle not mapped here                                        test_find_mapping
 *   dynshm_unpin_mapping puts a pinned mapping back in the thread's
 *   scope, whose end then detaches it; refused without a scope and
 *   for a mapping already in one                                        test_unpin_mapping
 *
 * Without the sized copy the first two fail (the canary after a short
 * structure is overwritten); without the new functions this does not link.
 */
#include "testutil.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Hidden test hook of the library (src/wrapper.h). */
extern int dynshm_test_instance_tag;

#define CANARY 0xa5

struct fixture {
	char *dir;
	char path[4096];
	dynshm_instance *inst;
};

static struct fixture fx;

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.dir = test_make_dir();
	if (!fx.dir)
		return -1;
	snprintf(fx.path, sizeof(fx.path), "%s/inst", fx.dir);
	return dynshm_instance_open(fx.path, NULL, 0, &fx.inst) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char report[4096];
	int bad = 0;

	(void)state;
	if (fx.inst && dynshm_instance_destroy(fx.inst) != 0)
		bad++;
	if (test_remove_dir(fx.dir) < 0)
		bad++;
	if (test_count_leftovers(report, sizeof(report)) != 0) {
		fprintf(stderr, "leftovers:\n%s", report);
		bad++;
	}
	return bad ? -1 : 0;
}

/* All of buf[from, to) still holds the canary. */
static int intact(const unsigned char *buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (buf[i] != CANARY)
			return 0;
	return 1;
}

static int all_zero(const unsigned char *buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (buf[i] != 0)
			return 0;
	return 1;
}

static void test_instance_info_sized(void **state)
{
	const size_t full = sizeof(dynshm_instance_info);
	const size_t old = offsetof(dynshm_instance_info, instance_id);
	unsigned char *buf = malloc(full + 64);
	dynshm_instance_info *info = (dynshm_instance_info *)(void *)buf;

	(void)state;
	assert_non_null(buf);

	/* An older program: a structure that ends before instance_id. */
	memset(buf, CANARY, full + 64);
	assert_int_equal(dynshm_instance_info_get(fx.inst, info, old), 0);
	assert_int_equal(info->struct_size, old);
	assert_string_equal(info->name, fx.path);
	assert_true(intact(buf, old, full + 64));
	assert_false(DYNSHM_INFO_HAS(info, instance_id));
	assert_true(DYNSHM_INFO_HAS(info, name));

	/* One built before the lock statistics were appended. */
	{
		const size_t pre = offsetof(dynshm_instance_info,
					    lock_acquisitions);

		memset(buf, CANARY, full + 64);
		assert_int_equal(dynshm_instance_info_get(fx.inst, info, pre),
				 0);
		assert_int_equal(info->struct_size, pre);
		assert_true(intact(buf, pre, full + 64));
		assert_true(DYNSHM_INFO_HAS(info, region_note));
		assert_false(DYNSHM_INFO_HAS(info, lock_acquisitions));
	}

	/* A newer program: 64 bytes the library does not know, zeroed. */
	memset(buf, CANARY, full + 64);
	assert_int_equal(dynshm_instance_info_get(fx.inst, info, full + 64), 0);
	assert_int_equal(info->struct_size, full);
	assert_true(all_zero(buf, full, full + 64));
	assert_true(DYNSHM_INFO_HAS(info, lock_wait_ns));
	assert_true(info->lock_acquisitions > 0); /* this call's own take */
	assert_int_equal(info->processes, 1);

	/* Exactly ours. */
	assert_int_equal(dynshm_instance_info_get(fx.inst, info, full), 0);
	assert_int_equal(info->struct_size, full);
	assert_int_equal(info->max_segments > 0, 1);

	/* Too small to hold struct_size: refused, nothing written. */
	memset(buf, CANARY, full + 64);
	assert_int_equal(dynshm_instance_info_get(fx.inst, info,
						  sizeof(size_t) - 1),
			 -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "sizeof"));
	assert_true(intact(buf, 0, full + 64));
	free(buf);
}

static void test_segment_info_sized(void **state)
{
	const size_t full = sizeof(dynshm_segment_info);
	const size_t old = offsetof(dynshm_segment_info, created_ns);
	unsigned char *buf = malloc(full + 32);
	dynshm_segment_info *info = (dynshm_segment_info *)(void *)buf;
	dynshm_segment *seg;
	dynshm_handle h;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);

	memset(buf, CANARY, full + 32);
	assert_int_equal(dynshm_stat(fx.inst, h, info, old), 0);
	assert_int_equal(info->struct_size, old);
	assert_true(info->handle == h);
	assert_int_equal(info->size, 4096);
	assert_true(intact(buf, old, full + 32));
	assert_false(DYNSHM_INFO_HAS(info, name));

	memset(buf, CANARY, full + 32);
	assert_int_equal(dynshm_stat(fx.inst, h, info, full + 32), 0);
	assert_int_equal(info->struct_size, full);
	assert_true(all_zero(buf, full, full + 32));
	assert_true(DYNSHM_INFO_HAS(info, name));

	assert_int_equal(dynshm_stat(fx.inst, h, info, 1), -EINVAL);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_stat(fx.inst, h, info, full), -ENOENT);
	free(buf);
}

static int check_size(const dynshm_segment_info *info, void *arg)
{
	int *seen = arg;

	if (info->struct_size != sizeof(dynshm_segment_info))
		return -1;
	(*seen)++;
	return 0;
}

static void test_foreach_struct_size(void **state)
{
	dynshm_segment *a, *b;
	int seen = 0;

	(void)state;
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &a), 0);
	assert_int_equal(dynshm_create(fx.inst, 8192, 0, &b), 0);
	assert_int_equal(dynshm_foreach_segment(fx.inst, check_size, &seen), 0);
	assert_int_equal(seen, 2);
	assert_int_equal(dynshm_detach(a), 0);
	assert_int_equal(dynshm_detach(b), 0);
}

static void test_version(void **state)
{
	char expect[32];

	(void)state;
	snprintf(expect, sizeof(expect), "%d.%d.%d", DYNSHM_VERSION_MAJOR,
		 DYNSHM_VERSION_MINOR, DYNSHM_VERSION_PATCH);
	assert_string_equal(dynshm_version(), expect);
	assert_string_equal(dynshm_version(), DYNSHM_VERSION_STRING);
	assert_true(DYNSHM_CHECK_VERSION(0, 2, 0));
	assert_true(DYNSHM_CHECK_VERSION(DYNSHM_VERSION_MAJOR,
					 DYNSHM_VERSION_MINOR,
					 DYNSHM_VERSION_PATCH));
	assert_false(DYNSHM_CHECK_VERSION(DYNSHM_VERSION_MAJOR,
					  DYNSHM_VERSION_MINOR,
					  DYNSHM_VERSION_PATCH + 1));
}

static void test_find_mapping(void **state)
{
	dynshm_segment *seg, *found = (dynshm_segment *)&found;
	dynshm_segment_info info;
	dynshm_handle h;

	(void)state;
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);

	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), 0);
	assert_ptr_equal(found, seg);
	assert_ptr_equal(dynshm_segment_address(found),
			 dynshm_segment_address(seg));

	/* No attach was counted: one detach unmaps, and destroys it. */
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_stat(fx.inst, h, &info, sizeof(info)), -ENOENT);
	found = (dynshm_segment *)&found;
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), -ENOENT);
	assert_null(found);
	assert_non_null(strstr(dynshm_last_error(), "not mapped"));

	/* A segment that exists but is not mapped here is not found. */
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_pin_segment(seg), 0);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_stat(fx.inst, h, &info, sizeof(info)), 0);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), -ENOENT);
	assert_int_equal(dynshm_attach(fx.inst, h, &seg), 0);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), 0);
	assert_ptr_equal(found, seg);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_unpin_segment(fx.inst, h), 0);

	/* Destroyed while mapped here: the mapping is still found. */
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_destroy(fx.inst, h), 0);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), 0);
	assert_ptr_equal(found, seg);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), -ENOENT);

	assert_int_equal(dynshm_find_mapping(fx.inst, DYNSHM_HANDLE_INVALID,
					     &found),
			 -ENOENT);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, NULL), -EINVAL);
	assert_int_equal(dynshm_find_mapping(NULL, h, &found), -EINVAL);
}

static void test_unpin_mapping(void **state)
{
	dynshm_segment *seg, *found;
	dynshm_segment_info info;
	dynshm_scope *scope;
	dynshm_handle h;

	(void)state;
	/* Outside any scope: nothing would detach it. */
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	assert_int_equal(dynshm_unpin_mapping(seg), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "dynshm_scope_begin"));
	assert_int_equal(dynshm_detach(seg), 0);

	assert_int_equal(dynshm_scope_begin(fx.inst, &scope), 0);
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);
	/* Made in the scope: already in one. */
	assert_int_equal(dynshm_unpin_mapping(seg), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "already"));
	assert_int_equal(dynshm_pin_mapping(seg), 0);
	assert_int_equal(dynshm_unpin_mapping(seg), 0);
	assert_int_equal(dynshm_scope_end(scope), 0);
	/* The scope's end detached it: gone. */
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), -ENOENT);
	assert_int_equal(dynshm_stat(fx.inst, h, &info, sizeof(info)), -ENOENT);

	/* A mapping made before the scope joins it the same way. */
	assert_int_equal(dynshm_create(fx.inst, 4096, 0, &seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_scope_begin(fx.inst, &scope), 0);
	assert_int_equal(dynshm_unpin_mapping(seg), 0);
	assert_int_equal(dynshm_scope_end(scope), 0);
	assert_int_equal(dynshm_find_mapping(fx.inst, h, &found), -ENOENT);

	assert_int_equal(dynshm_unpin_mapping(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_instance_info_sized, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_info_sized, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_foreach_struct_size, setup,
						teardown),
		cmocka_unit_test(test_version),
		cmocka_unit_test_setup_teardown(test_find_mapping, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unpin_mapping, setup,
						teardown),
	};

	dynshm_test_instance_tag = TEST_TAG; /* the leftover checks know it */
	return cmocka_run_group_tests_name("abi", tests, NULL, NULL);
}
