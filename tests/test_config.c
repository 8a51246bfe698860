/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - the configuration parser and the order of its sources.
 *
 * What an operator meets first is a refused setting, so every refusal is
 * checked for what its message says, not only for its code: the file, the
 * line, the key, the value and what is allowed.  A refused file or
 * environment must change nothing (all or nothing), the sources must apply
 * in the documented order (compiled default < file < environment < API),
 * and a process joining an instance with a conflicting explicit backend must
 * be told so.  Instances are opened by directory in a private test
 * directory, and the leftovers check runs after every test that makes one.
 * (Size units arrive with the first size key; none of these keys has one.)
 */
#include "testutil.h"

#include <build_config.h>
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

#include "dsm_assert.h"

extern int dynshm_test_instance_tag;

static char *dir; /* this test's private directory */
static int leftovers;

static int setup(void **state)
{
	(void)state;
	dir = test_make_dir();
	unsetenv("DYNSHM_CONFIG");
	unsetenv("DYNSHM_DYNAMIC_SHARED_MEMORY_TYPE");
	unsetenv("DYNSHM_MAX_SEGMENTS");
	unsetenv("DYNSHM_MAX_PROCESSES");
	unsetenv("DYNSHM_DSM_DIRECTORY");
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	char report[4096];
	int n;

	(void)state;
	test_remove_dir(dir);
	dir = NULL;
	n = test_count_leftovers(report, sizeof(report));
	if (n != 0) {
		fprintf(stderr, "%d leftover(s):\n%s", n, report);
		leftovers++;
		return -1;
	}
	return 0;
}

/* Write text to <dir>/name; the path in path. */
static void write_file(const char *name, const char *text, char *path,
		       size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void expect_setting(const dynshm_config *cfg, const char *key,
			 const char *want)
{
	char buf[PATH_MAX];

	ASSERT_OK(dynshm_config_get(cfg, key, buf, sizeof(buf)));
	if (strcmp(buf, want) != 0)
		fail_msg("%s = '%s', expected '%s'", key, buf, want);
}

/* The message of the last failure holds every one of the NULL-ended list. */
static void expect_message(const char *first, ...)
{
	const char *msg = dynshm_last_error();
	va_list ap;

	va_start(ap, first);
	for (const char *part = first; part; part = va_arg(ap, const char *))
		if (!strstr(msg, part))
			fail_msg("message '%s' lacks '%s'", msg, part);
	va_end(ap);
}

/* ---- file syntax ------------------------------------------------------- */

static void test_file_syntax(void **state)
{
	char path[PATH_MAX];
	dynshm_config *cfg;

	(void)state;
	write_file("good.conf",
		   "# a comment line\n"
		   "\n"
		   "   \t\n"
		   "dynamic_shared_memory_type = sysv   # trailing comment\n"
		   "max_segments=10\n"
		   "max_segments = 12\r\n" /* later wins; CRLF is fine */
		   "  max_processes\t=\t'7'\n"
		   "dynshm_directory = '/srv/it''s here'\n"
		   "dynshm_directory = \"/srv/with # hash\"  # and a comment\n",
		   path, sizeof(path));
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_load_file(cfg, path));
	expect_setting(cfg, "dynamic_shared_memory_type", "sysv");
	expect_setting(cfg, "max_segments", "12");
	expect_setting(cfg, "max_processes", "7");
	expect_setting(cfg, "dynshm_directory", "/srv/with # hash");

	write_file("quote.conf", "dynshm_directory = '/srv/it''s here'\n", path,
		   sizeof(path));
	ASSERT_OK(dynshm_config_load_file(cfg, path));
	expect_setting(cfg, "dynshm_directory", "/srv/it's here");
	write_file("empty.conf", "dynshm_directory = ''\n", path, sizeof(path));
	ASSERT_OK(dynshm_config_load_file(cfg, path));
	expect_setting(cfg, "dynshm_directory", "");
	dynshm_config_free(cfg);
}

/* Each refusal: its code, a message with every part, and cfg unchanged. */
struct refusal {
	const char *text;
	int err;
	const char *parts[4]; /* besides the file name */
};

static void test_file_refusals(void **state)
{
	static const struct refusal cases[] = {
		{ "max_segments = 20\ndynamic_shared_memory_type = posx\n",
		  -EINVAL,
		  { ":2: ", "'posx'", "dynamic_shared_memory_type",
		    "allowed: posix, sysv, mmap, none" } },
		{ "max_segments = -3\n", -EINVAL,
		  { ":1: ", "'-3'", "max_segments",
		    "allowed: a whole number from 1 to 1048560" } },
		{ "max_processes = 0\n", -EINVAL,
		  { ":1: ", "'0'", "max_processes",
		    "a whole number from 1 to 65536" } },
		{ "max_segments = 12 MB\n", -EINVAL,
		  { ":1: ", "'12 MB'", "max_segments", "whole number" } },
		{ "# ok\nmax_segments 20\n", -EINVAL,
		  { ":2: ", "expected 'key = value'", "'max_segments 20'",
		    NULL } },
		{ "huge_page = on\n", -EINVAL,
		  { ":1: ", "unknown configuration key 'huge_page'",
		    "value 'on'", "known: dynamic_shared_memory_type" } },
		{ "dynshm_directory = '/srv/open\n", -EINVAL,
		  { ":1: ", "dynshm_directory", "unterminated quote",
		    "'/srv/open" } },
		{ "dynshm_directory = \"/srv\" junk\n", -EINVAL,
		  { ":1: ", "dynshm_directory", "text after the value",
		    "\"/srv\" junk" } },
		{ "dynshm_directory = relative\n", -EINVAL,
		  { ":1: ", "'relative'", "dynshm_directory",
		    "allowed: an absolute path" } },
		{ " = posix\n", -EINVAL,
		  { ":1: ", "unknown configuration key ''", "value 'posix'",
		    NULL } },
	};
	char path[PATH_MAX], name[32];
	dynshm_config *cfg;

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_set(cfg, "max_segments", "99"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct refusal *c = &cases[i];

		snprintf(name, sizeof(name), "bad%zu.conf", i);
		write_file(name, c->text, path, sizeof(path));
		ASSERT_RC(dynshm_config_load_file(cfg, path), c->err);
		expect_message(path, c->parts[0], c->parts[1], c->parts[2],
			       c->parts[3], (char *)NULL);
		/* all or nothing: the good lines before it did not apply */
		expect_setting(cfg, "max_segments", "99");
		expect_setting(cfg, "dynamic_shared_memory_type",
			     DYNSHM_DEFAULT_BACKEND);
	}

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	ASSERT_RC(dynshm_config_load_file(cfg, path), -ENOENT);
	expect_message("cannot open configuration file", path,
		       "No such file", (char *)NULL);
	ASSERT_RC(dynshm_config_load(cfg, path), -ENOENT);
	setenv("DYNSHM_CONFIG", path, 1);
	ASSERT_RC(dynshm_config_load(cfg, NULL), -ENOENT);
	expect_message(path, (char *)NULL);
	unsetenv("DYNSHM_CONFIG");
	expect_setting(cfg, "max_segments", "99");
	dynshm_config_free(cfg);
}

/* ---- precedence -------------------------------------------------------- */

static void test_precedence(void **state)
{
	char path[PATH_MAX], inst_path[PATH_MAX];
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_config *cfg;

	(void)state;
	/* compiled default */
	ASSERT_OK(dynshm_config_new(&cfg));
	expect_setting(cfg, "dynamic_shared_memory_type", DYNSHM_DEFAULT_BACKEND);
	expect_setting(cfg, "max_segments", "4096");
	expect_setting(cfg, "max_processes", "256");

	/* < file */
	write_file("p.conf",
		   "dynamic_shared_memory_type = mmap\n"
		   "max_segments = 100\n"
		   "max_processes = 10\n",
		   path, sizeof(path));
	ASSERT_OK(dynshm_config_load(cfg, path));
	expect_setting(cfg, "dynamic_shared_memory_type", "mmap");
	expect_setting(cfg, "max_segments", "100");

	/* < environment, which wins over the file, found by $DYNSHM_CONFIG */
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_config_new(&cfg));
	setenv("DYNSHM_CONFIG", path, 1);
	setenv("DYNSHM_MAX_SEGMENTS", "200", 1);
	ASSERT_OK(dynshm_config_load(cfg, NULL));
	expect_setting(cfg, "dynamic_shared_memory_type", "mmap"); /* file */
	expect_setting(cfg, "max_segments", "200");		 /* env */
	expect_setting(cfg, "max_processes", "10");		 /* file */

	/* a bad environment value is refused by name, and changes nothing */
	setenv("DYNSHM_MAX_PROCESSES", "-3", 1);
	ASSERT_RC(dynshm_config_load(cfg, NULL), -EINVAL);
	expect_message("environment DYNSHM_MAX_PROCESSES", "'-3'",
		       "max_processes", "allowed: a whole number", (char *)NULL);
	expect_setting(cfg, "max_processes", "10");
	unsetenv("DYNSHM_MAX_PROCESSES");
	unsetenv("DYNSHM_MAX_SEGMENTS");
	unsetenv("DYNSHM_CONFIG");

	/* < API, and the effective values are what the instance gets */
	ASSERT_OK(dynshm_config_set(cfg, "max_segments", "300"));
	expect_setting(cfg, "max_segments", "300");
	snprintf(inst_path, sizeof(inst_path), "%s/inst", dir);
	ASSERT_OK(dynshm_instance_open(inst_path, cfg, 0, &inst));
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.max_segments, 300);
	assert_int_equal(info.max_processes, 10);
	assert_int_equal(info.backend, DYNSHM_IMPL_MMAP);
	ASSERT_OK(dynshm_instance_destroy(inst));
	dynshm_config_free(cfg);
}

/* Every key survives get then set, and a refused set changes nothing. */
static void test_round_trip(void **state)
{
	static const char *const keys[] = {
		"dynamic_shared_memory_type", "dynshm_directory", "max_segments",
		"max_processes",
	};
	static const char *const values[] = { "sysv", "/var/dsm", "1048560",
					      "65536" };
	char buf[PATH_MAX];
	dynshm_config *a, *b;

	(void)state;
	ASSERT_OK(dynshm_config_new(&a));
	ASSERT_OK(dynshm_config_new(&b));
	for (size_t i = 0; i < 4; i++) {
		ASSERT_OK(dynshm_config_set(a, keys[i], values[i]));
		ASSERT_OK(dynshm_config_get(a, keys[i], buf, sizeof(buf)));
		ASSERT_OK(dynshm_config_set(b, keys[i], buf));
		expect_setting(b, keys[i], values[i]);
	}
	ASSERT_RC(dynshm_config_set(b, "max_segments", "1048561"), -EINVAL);
	expect_setting(b, "max_segments", "1048560");
	ASSERT_RC(dynshm_config_set(b, "max_sgements", "5"), -EINVAL);
	expect_message("unknown configuration key 'max_sgements'",
		       "value '5'", (char *)NULL);
	ASSERT_RC(dynshm_config_get(b, "max_sgements", buf, sizeof(buf)),
		  -EINVAL);
	expect_message("unknown configuration key 'max_sgements' (known:",
		       (char *)NULL);
	dynshm_config_free(a);
	dynshm_config_free(b);
}

/* ---- joining an instance ---------------------------------------------- */

static void test_join_conflict(void **state)
{
	char path[PATH_MAX], file[PATH_MAX], text[128];
	const char *other = strcmp(DYNSHM_DEFAULT_BACKEND, "mmap") == 0
				    ? "posix"
				    : "mmap";
	dynshm_instance_info info;
	dynshm_instance *creator, *joiner = NULL;
	dynshm_config *cfg;

	(void)state;
	snprintf(path, sizeof(path), "%s/inst", dir);
	/* the instance is made with the compiled default backend */
	ASSERT_OK(dynshm_instance_open(path, NULL, 0, &creator));

	/* an explicit other backend, from any source, is reported */
	snprintf(text, sizeof(text), "dynamic_shared_memory_type = %s\n",
		 other);
	write_file("other.conf", text, file, sizeof(file));
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_load_file(cfg, file));
	ASSERT_RC(dynshm_instance_open(path, cfg, 0, &joiner), -EINVAL);
	expect_message("was created with dynamic_shared_memory_type = "
		       DYNSHM_DEFAULT_BACKEND,
		       other, "conflicts", (char *)NULL);
	dynshm_config_free(cfg);

	setenv("DYNSHM_DYNAMIC_SHARED_MEMORY_TYPE", other, 1);
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_load(cfg, NULL));
	unsetenv("DYNSHM_DYNAMIC_SHARED_MEMORY_TYPE");
	ASSERT_RC(dynshm_instance_open(path, cfg, 0, &joiner), -EINVAL);
	expect_message("conflicts", (char *)NULL);
	dynshm_config_free(cfg);

	/* the same backend said explicitly, or nothing said: joins */
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type",
				 DYNSHM_DEFAULT_BACKEND));
	ASSERT_OK(dynshm_instance_open(path, cfg, 0, &joiner));
	ASSERT_OK(dynshm_instance_close(joiner));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_open(path, NULL, 0, &joiner));
	ASSERT_OK(dynshm_instance_info_get(joiner, &info, sizeof(info)));
	assert_string_equal(dynshm_impl_type_name(info.backend),
			    DYNSHM_DEFAULT_BACKEND);
	ASSERT_OK(dynshm_instance_close(joiner));
	ASSERT_OK(dynshm_instance_destroy(creator));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_syntax, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_file_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_join_conflict, setup,
						teardown),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	rc = cmocka_run_group_tests_name("config", tests, NULL, NULL);
	return rc || leftovers ? 1 : 0;
}
