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
 * Spellings are PostgreSQL's: keys and the names a key takes in any case,
 * every boolean spelling for an off/try/on key, memory units B to TB.
 * Hostile files (a NUL byte, a FIFO, a device, a byte-order mark) and a
 * DYNSHM_* variable naming no key are refused with a message, never read
 * half or waited on.
 */
#include "inject.h"
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dsm_assert.h"

extern int dynshm_test_instance_tag;

static struct test_fixture fx; /* this test's private directory */
static int leftovers;

static int setup(void **state)
{
	(void)state;
	unsetenv("DYNSHM_CONFIG");
	unsetenv("DYNSHM_DYNAMIC_SHARED_MEMORY_TYPE");
	unsetenv("DYNSHM_MAX_SEGMENTS");
	unsetenv("DYNSHM_MAX_PROCESSES");
	unsetenv("DYNSHM_DSM_DIRECTORY");
	return test_fixture_setup(&fx, false, NULL);
}

static int teardown(void **state)
{
	(void)state;
	if (test_fixture_teardown(&fx, false, "after the test") != 0) {
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

	snprintf(path, len, "%s/%s", fx.dir, name);
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

	snprintf(path, sizeof(path), "%s/missing.conf", fx.dir);
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
	snprintf(inst_path, sizeof(inst_path), "%s/inst", fx.dir);
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
	snprintf(path, sizeof(path), "%s/inst", fx.dir);
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

/* ---- spellings (issue 11, section 5) ---------------------------------- */

static void test_spellings(void **state)
{
	static const struct {
		const char *key, *value, *want;
	} cases[] = {
		/* key names in any case */
		{ "MAX_SEGMENTS", "12", "12" },
		{ "Max_Processes", "7", "7" },
		/* enum values in any case */
		{ "dynamic_shared_memory_type", "SysV", "sysv" },
		{ "DYNAMIC_SHARED_MEMORY_TYPE", "POSIX", "posix" },
		{ "huge_pages", "TRY", "try" },
		{ "mshare", "Off", "off" },
		/* booleans for off/try/on keys */
		{ "huge_pages", "true", "on" },
		{ "huge_pages", "no", "off" },
		{ "huge_pages", "YES", "on" },
		{ "huge_pages", "0", "off" },
		{ "mshare", "1", "on" },
		{ "mshare", "false", "off" },
		/* PostgreSQL's memory units, B included */
		{ "min_dynamic_shared_memory", "1048576B", "1MB" },
		{ "min_dynamic_shared_memory", "1000 B", "1000B" },
		{ "min_dynamic_shared_memory", "8kB", "8kB" },
		{ "min_dynamic_shared_memory", "0TB", "0MB" },
	};
	static const struct {
		const char *key, *value, *allowed;
	} refused[] = {
		{ "huge_pages", "maybe", "true, false, yes, no, 1, 0" },
		{ "mshare", "2", "off, try, on" },
		/* units keep PostgreSQL's case */
		{ "min_dynamic_shared_memory", "1mb", "B, kB, MB, GB or TB" },
		{ "min_dynamic_shared_memory", "1b", "B, kB, MB, GB or TB" },
		{ "dynamic_shared_memory_type", "posixx", "posix, sysv" },
	};
	char buf[64], path[PATH_MAX];
	dynshm_config *cfg;

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (dynshm_config_set(cfg, cases[i].key, cases[i].value) != 0)
			fail_msg("%s = '%s' refused: %s", cases[i].key,
				 cases[i].value, dynshm_last_error());
		ASSERT_OK(dynshm_config_get(cfg, cases[i].key, buf,
					    sizeof(buf)));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("%s = '%s' reads back '%s', expected '%s'",
				 cases[i].key, cases[i].value, buf,
				 cases[i].want);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		ASSERT_RC(dynshm_config_set(cfg, refused[i].key,
					    refused[i].value),
			  -EINVAL);
		expect_message(refused[i].value, refused[i].allowed,
			       (char *)NULL);
	}
	/* a file says it the same way */
	write_file("case.conf", "Huge_Pages = Off\nMSHARE = yes\n", path,
		   sizeof(path));
	ASSERT_OK(dynshm_config_load_file(cfg, path));
	expect_setting(cfg, "huge_pages", "off");
	expect_setting(cfg, "mshare", "on");
	dynshm_config_free(cfg);
}

/* A buffer too small: -ERANGE, and the message says how many bytes. */
static void test_get_buffer(void **state)
{
	char buf[8];
	dynshm_config *cfg;

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type", "mmap"));
	ASSERT_RC(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf, 4),
		  -ERANGE);
	expect_message("dynamic_shared_memory_type", "needs a buffer of 5 bytes",
		       "4 given", (char *)NULL);
	ASSERT_OK(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf, 5));
	assert_string_equal(buf, "mmap");
	dynshm_config_free(cfg);
}

/* ---- hostile files (issue 13, item 5) ----------------------------------- */

/* Write len bytes (NULs allowed) to <dir>/name. */
static void write_bytes(const char *name, const char *bytes, size_t len,
			char *path, size_t plen)
{
	FILE *f;

	snprintf(path, plen, "%s/%s", fx.dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_hostile_files(void **state)
{
	static const char nul1[] = "\0max_segments = 5\nbogus\n";
	static const char nul3[] = "max_segments = 5\n# fine\nmax_pro\0cesses = 3\n";
	static const char bom[] = "\xEF\xBB\xBFmax_segments = 5\n";
	char path[PATH_MAX];
	dynshm_config *cfg;

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_set(cfg, "max_segments", "99"));

	/* a NUL byte: refused with file:line, nothing applied */
	write_bytes("nul1.conf", nul1, sizeof(nul1) - 1, path, sizeof(path));
	ASSERT_RC(dynshm_config_load_file(cfg, path), -EINVAL);
	expect_message(path, ":1: ", "NUL byte", (char *)NULL);
	write_bytes("nul3.conf", nul3, sizeof(nul3) - 1, path, sizeof(path));
	ASSERT_RC(dynshm_config_load_file(cfg, path), -EINVAL);
	expect_message(path, ":3: ", "NUL byte", (char *)NULL);
	expect_setting(cfg, "max_segments", "99");

	/* a UTF-8 byte-order mark is accepted */
	write_bytes("bom.conf", bom, sizeof(bom) - 1, path, sizeof(path));
	if (dynshm_config_load_file(cfg, path) != 0)
		fail_msg("a file with a byte-order mark was refused: %s",
			 dynshm_last_error());
	expect_setting(cfg, "max_segments", "5");

	/*
	 * A FIFO with no writer: refused at once, never waited on.  The
	 * alarm turns a hang into a failure (SIGALRM ends the test).
	 */
	snprintf(path, sizeof(path), "%s/fifo.conf", fx.dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(20);
	ASSERT_RC(dynshm_config_load_file(cfg, path), -EINVAL);
	alarm(0);
	expect_message(path, "a FIFO", "allowed: a regular file", (char *)NULL);
	ASSERT_RC(dynshm_config_load(cfg, path), -EINVAL);

	/* a device and a directory: refused the same way */
	ASSERT_RC(dynshm_config_load_file(cfg, "/dev/null"), -EINVAL);
	expect_message("/dev/null", "a character device", (char *)NULL);
	ASSERT_RC(dynshm_config_load_file(cfg, fx.dir), -EINVAL);
	expect_message(fx.dir, "a directory", (char *)NULL);
	expect_setting(cfg, "max_segments", "5");
	dynshm_config_free(cfg);
}

/*
 * A configuration file whose fstat fails is refused with fstat's own code
 * (the message says "cannot stat"), not -EINVAL as if it were of a wrong
 * kind.
 */
static void test_stat_failure(void **state)
{
	static const char text[] = "max_segments = 5\n";
	dynshm_config *cfg;
	char path[4200];

	(void)state;
	assert_int_equal(dynshm_config_new(&cfg), 0);
	write_bytes("ok.conf", text, sizeof(text) - 1, path, sizeof(path));
	inject_fail("fstat", 1, EIO);
	ASSERT_RC(dynshm_config_load_file(cfg, path), -EIO);
	inject_reset();
	expect_message(path, "cannot stat", (char *)NULL);
	dynshm_config_free(cfg);
}

/* ---- a DYNSHM_* variable that names no key (issue 11, section 5) ------- */

static void test_unknown_variable(void **state)
{
	dynshm_config *cfg;

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	setenv("DYNSHM_MAX_SEGMENTS", "40", 1);
	setenv("DYNSHM_MAX_SEGMENT", "50", 1); /* a typo */
	ASSERT_RC(dynshm_config_load(cfg, NULL), -EINVAL);
	expect_message("environment DYNSHM_MAX_SEGMENT names no configuration "
		       "key",
		       "max_segments", "mshare_path", (char *)NULL);
	expect_setting(cfg, "max_segments", "4096"); /* all or nothing */
	unsetenv("DYNSHM_MAX_SEGMENT");

	/* the test programs' own variables and the file's are not keys */
	setenv("DYNSHM_TEST_SOMETHING", "x", 1);
	setenv("DYNSHM_CONFIG", "", 1);
	ASSERT_OK(dynshm_config_load(cfg, NULL));
	expect_setting(cfg, "max_segments", "40");
	unsetenv("DYNSHM_TEST_SOMETHING");
	unsetenv("DYNSHM_CONFIG");
	unsetenv("DYNSHM_MAX_SEGMENTS");
	dynshm_config_free(cfg);
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
		cmocka_unit_test_setup_teardown(test_spellings, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_buffer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stat_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_variable, setup,
						teardown),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	rc = cmocka_run_group_tests_name("config", tests, NULL, NULL);
	return rc || leftovers ? 1 : 0;
}
