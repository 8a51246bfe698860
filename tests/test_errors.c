/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - what a caller reads about a failure code.
 *
 * dynshm_strerrorname() must name every errno value the C library knows,
 * by the symbol the library's documentation uses where two share a value,
 * and say NULL (not crash, not invent) for the rest.  dynshm_strerror()'s
 * own wordings must hold for every function that returns the code: a
 * missing configuration file is -ENOENT too, and is not a "segment".
 * A caller's buffer that is too short is -ERANGE with the length needed.
 * No instance or object is made, so this runs alongside anything.
 */
#include <dynshm/dsm.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_names(void **state)
{
	static const struct {
		int code;
		const char *name;
	} cases[] = {
		{ -ENOENT, "ENOENT" },	  { ENOENT, "ENOENT" },
		{ -EINVAL, "EINVAL" },	  { -EUCLEAN, "EUCLEAN" },
		{ -ERANGE, "ERANGE" },	  { -ENOSPC, "ENOSPC" },
		{ -EWOULDBLOCK, "EAGAIN" }, { -EOPNOTSUPP, "ENOTSUP" },
		{ -EDEADLOCK, "EDEADLK" }, { 0, "0" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *name = dynshm_strerrorname(cases[i].code);

		if (!name || strcmp(name, cases[i].name) != 0)
			fail_msg("dynshm_strerrorname(%d) = %s, expected %s",
				 cases[i].code, name ? name : "NULL",
				 cases[i].name);
	}
	assert_null(dynshm_strerrorname(-99999));
	assert_null(dynshm_strerrorname(4095));
	/* no errno value: negating it would overflow (UBSan: the asan setup) */
	assert_null(dynshm_strerrorname(INT_MIN));
	assert_non_null(dynshm_strerror(INT_MIN));
}

/* Every value with a C library text below 134 has a name, "E..." */
static void test_every_known_code(void **state)
{
	(void)state;
	for (int code = 1; code < 134; code++) {
		const char *name = dynshm_strerrorname(-code);
		char unknown[64];

		snprintf(unknown, sizeof(unknown), "Unknown error %d", code);
		if (strcmp(strerror(code), unknown) == 0)
			continue;
		if (!name || name[0] != 'E')
			fail_msg("errno %d (%s) has no name: %s", code,
				 strerror(code), name ? name : "NULL");
	}
}

/* Wordings that fit every source of the code. */
static void test_wording(void **state)
{
	const char *s = dynshm_strerror(-ENOENT);

	(void)state;
	if (strstr(s, "segment or instance") || !strstr(s, "file"))
		fail_msg("-ENOENT reads '%s': a missing configuration file "
			 "is no segment",
			 s);
	assert_string_equal(dynshm_strerror(ENOENT), s);
	assert_non_null(strstr(dynshm_strerror(-ENOSPC), "memory"));
	assert_string_equal(dynshm_strerror(0), "success");
}

/* dynshm_impl_object_name into a short buffer: -ERANGE, length named. */
static void test_short_name_buffer(void **state)
{
	dynshm_impl_space *space;
	char name[DYNSHM_IMPL_NAME_MAX], small[8], want[64];

	(void)state;
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_POSIX,
						0x1234567890abcdefull, NULL,
						&space),
			 0);
	assert_int_equal(dynshm_impl_object_name(space, 0x42, name,
						 sizeof(name)),
			 0);
	assert_int_equal(dynshm_impl_object_name(space, 0x42, small,
						 sizeof(small)),
			 -ERANGE);
	snprintf(want, sizeof(want), "needs a buffer of %zu bytes; 8 given",
		 strlen(name) + 1);
	if (!strstr(dynshm_last_error(), want))
		fail_msg("message '%s' lacks '%s'", dynshm_last_error(), want);
	dynshm_impl_space_close(space);
}

/* A NULL result pointer is -EINVAL with a message, not a crash. */
static void test_null_result(void **state)
{
	(void)state;
	assert_int_equal(dynshm_config_new(NULL), -EINVAL);
	assert_string_equal(dynshm_last_error(), "no result pointer given");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_every_known_code),
		cmocka_unit_test(test_wording),
		cmocka_unit_test(test_short_name_buffer),
		cmocka_unit_test(test_null_result),
	};

	return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
