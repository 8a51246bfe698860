/* SPDX-License-Identifier: MIT */
/*
 * test_hugepages.c - the region on huge pages (huge_pages = off|try|on).
 *
 * Needs root: it reserves huge pages through /proc/sys/vm/nr_hugepages and
 * switches /sys/kernel/mm/transparent_hugepage/shmem_enabled, and puts both
 * back whatever happens (atexit, and on SIGINT/SIGTERM/SIGALRM).  Skipped
 * (77) without root, and under valgrind (which drops SHM_HUGETLB from
 * shmget, so the segment would be on 4 KiB pages while the kernel says
 * otherwise).
 *
 *   on_without_pages  nr_hugepages = 0 and huge_pages = on: the open fails
 *                     with -ENOMEM and a message naming vm.nr_hugepages,
 *                     and leaves nothing behind
 *   try_without_pages nr_hugepages = 0, huge_pages = try: the instance
 *                     opens on small pages, and info says why
 *   hugetlb           pages reserved: the region is hugetlb - its mapping's
 *                     KernelPageSize in /proc/self/smaps is the huge page
 *                     size, HugePages_Free drops as it is touched, and a
 *                     forked process reads it
 *   sysv_segments     ordinary sysv segments of whole huge pages go on
 *                     hugetlb when pages are reserved, else 4 KiB pages
 *   thp               no hugetlb pages but shmem_enabled = advise: try falls
 *                     back to shmem THP, and smaps shows PMD-mapped shmem
 */
#include "testutil.h"

#include <dynshm/dsm.h>

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
#include <unistd.h>

#include <cmocka.h>

extern int dynshm_test_instance_tag;

#define NR_PATH "/proc/sys/vm/nr_hugepages"
#define THP_PATH "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

static char old_nr[32], old_thp[32];
static struct test_fixture fx; /* per test: instances at fx.path */

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

/* The bracketed word of shmem_enabled. */
static void thp_mode(char *buf, size_t len)
{
	char text[256], *open_, *close_;

	read_text(THP_PATH, text, sizeof(text));
	open_ = strchr(text, '[');
	close_ = open_ ? strchr(open_, ']') : NULL;
	buf[0] = '\0';
	if (open_ && close_) {
		*close_ = '\0';
		snprintf(buf, len, "%s", open_ + 1);
	}
}

static void restore(void)
{
	if (old_nr[0])
		write_text(NR_PATH, old_nr);
	if (old_thp[0])
		write_text(THP_PATH, old_thp);
}

static void on_signal(int sig)
{
	restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Set nr_hugepages; the number the kernel actually reserved. */
static long long set_pages(long long n)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", n);
	if (write_text(NR_PATH, buf) < 0)
		return -1;
	return test_meminfo("HugePages_Total:");
}

/* A "Key:   N kB" field of the smaps entry that maps addr; -1 if none. */
static long long smaps_field(void *addr, const char *key)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && strncmp(line, key, strlen(key)) == 0) {
			v = atoll(line + strlen(key));
			break;
		}
	}
	fclose(f);
	return v;
}

static int setup(void **state)
{
	(void)state;
	return test_fixture_setup(&fx, false, NULL);
}

static int teardown(void **state)
{
	(void)state;
	restore();
	return test_fixture_teardown(&fx, false, "teardown");
}

static int open_huge(const char *mode, const char *size, dynshm_instance **inst)
{
	dynshm_config *cfg = NULL;
	int rc;

	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_set(cfg, "min_dynamic_shared_memory", size),
			 0);
	assert_int_equal(dynshm_config_set(cfg, "huge_pages", mode), 0);
	rc = dynshm_instance_open(fx.path, cfg, 0, inst);
	dynshm_config_free(cfg);
	return rc;
}

static void test_on_without_pages(void **state)
{
	dynshm_instance *inst = NULL;

	(void)state;
	assert_int_equal(set_pages(0), 0);
	assert_int_equal(open_huge("on", "4MB", &inst), -ENOMEM);
	assert_non_null(strstr(dynshm_last_error(), "huge_pages = on"));
	assert_non_null(strstr(dynshm_last_error(), "vm.nr_hugepages"));
	/* and no instance is left: a plain open finds none */
	assert_int_equal(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
					   &inst),
			 -ENOENT);
}

static void test_try_without_pages(void **state)
{
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	char mode[32];

	(void)state;
	assert_int_equal(set_pages(0), 0);
	thp_mode(mode, sizeof(mode));
	assert_int_equal(open_huge("try", "4MB", &inst), 0);
	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	assert_string_not_equal(info.region_pages, "hugetlb");
	assert_int_equal(info.huge_pages, DYNSHM_HUGE_PAGES_TRY);
	assert_non_null(strstr(info.region_note, "no huge pages reserved"));
	assert_non_null(strstr(info.region_note, "shmem_enabled"));
	if (strcmp(mode, "never") == 0 || strcmp(mode, "deny") == 0)
		assert_string_equal(info.region_pages, "4k");
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static int child_reads(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	dynshm_instance_info info;

	CHILD_CHECK(dynshm_instance_open(fx.path, NULL, DYNSHM_OPEN_EXISTING,
				      &inst) == 0);
	CHILD_CHECK(dynshm_instance_info_get(inst, &info, sizeof(info)) == 0);
	CHILD_CHECK(smaps_field(info.region_address, "KernelPageSize:") ==
		    (long long)(info.region_page_size >> 10));
	CHILD_CHECK(dynshm_attach(inst, *(dynshm_handle *)arg, &seg) == 0);
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "huge") == 0);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

static void test_hugetlb(void **state)
{
	long long page_kb = test_meminfo("Hugepagesize:"), free_before;
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	(void)state;
	if (page_kb <= 0 || set_pages(8) < 4) {
		skip(); /* the kernel could not reserve them */
		return;
	}
	assert_int_equal(open_huge("on", "4MB", &inst), 0);
	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	assert_string_equal(info.region_pages, "hugetlb");
	assert_int_equal(info.region_page_size, (uint64_t)page_kb << 10);
	assert_int_equal(info.region_size % ((uint64_t)page_kb << 10), 0);
	assert_non_null(strstr(info.region_note, "hugetlb pages"));
	assert_int_equal(smaps_field(info.region_address, "KernelPageSize:"),
			 page_kb);
	free_before = test_meminfo("HugePages_Free:");
	assert_int_equal(dynshm_create(inst, info.region_size, DYNSHM_CREATE_REGION,
				    &seg),
			 0); /* zeroing touches every page */
	assert_true(test_meminfo("HugePages_Free:") <=
		    free_before - (long long)(info.region_size /
					      ((uint64_t)page_kb << 10)));
	strcpy(dynshm_segment_address(seg), "huge");
	h = dynshm_segment_handle(seg);
	assert_int_equal(test_fork(child_reads, &h), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	/* the pages went back with the region */
	assert_int_equal(test_meminfo("HugePages_Free:"),
			 test_meminfo("HugePages_Total:"));
}

/*
 * Ordinary segments of the sysv backend: a whole number of huge pages goes
 * on hugetlb when pages are reserved, falls back to 4 KiB pages when not;
 * other sizes never try.  dynshm_stat says which.
 */
static void test_sysv_segments(void **state)
{
	long long page_kb = test_meminfo("Hugepagesize:");
	size_t hsize = (size_t)page_kb << 10;
	dynshm_config *cfg = NULL;
	dynshm_instance *inst = NULL;
	dynshm_segment *big = NULL, *odd = NULL, *small = NULL;
	dynshm_segment_info si;

	(void)state;
	if (page_kb <= 0 || set_pages(2) < 2) {
		skip();
		return;
	}
	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					"sysv"),
			 0);
	assert_int_equal(dynshm_instance_open(fx.path, cfg, 0, &inst), 0);
	dynshm_config_free(cfg);
	assert_int_equal(dynshm_create(inst, 2 * hsize, 0, &big), 0);
	assert_int_equal(dynshm_stat(inst, dynshm_segment_handle(big), &si,
				     sizeof(si)), 0);
	assert_true(si.huge_pages);
	assert_false(si.in_region);
	assert_int_equal(smaps_field(dynshm_segment_address(big),
				     "KernelPageSize:"),
			 page_kb);
	/* not a multiple: never tried */
	assert_int_equal(dynshm_create(inst, hsize + 4096, 0, &odd), 0);
	assert_int_equal(dynshm_stat(inst, dynshm_segment_handle(odd), &si,
				     sizeof(si)), 0);
	assert_false(si.huge_pages);
	/* the two pages are taken: falls back to 4 KiB pages */
	assert_int_equal(dynshm_create(inst, hsize, 0, &small), 0);
	assert_int_equal(dynshm_stat(inst, dynshm_segment_handle(small), &si,
				     sizeof(si)), 0);
	assert_false(si.huge_pages);
	assert_int_equal(smaps_field(dynshm_segment_address(small),
				     "KernelPageSize:"),
			 4);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static void test_thp(void **state)
{
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	dynshm_segment *seg = NULL;

	(void)state;
	if (!old_thp[0] || write_text(THP_PATH, "advise") < 0) {
		skip(); /* no shmem THP on this kernel */
		return;
	}
	assert_int_equal(set_pages(0), 0);
	assert_int_equal(open_huge("try", "4MB", &inst), 0);
	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	assert_string_equal(info.region_pages, "shmem-thp");
	assert_non_null(strstr(info.region_note, "shmem_enabled = advise"));
	assert_int_equal(dynshm_create(inst, info.region_size, DYNSHM_CREATE_REGION,
				    &seg),
			 0);
	/* PMD-mapped shmem: the transparent huge pages are in use */
	assert_true(smaps_field(info.region_address, "ShmemPmdMapped:") > 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_on_without_pages),
		T(test_try_without_pages),
		T(test_hugetlb),
		T(test_sysv_segments),
		T(test_thp),
	};
	char mode[32];

	if (!test_is_root()) {
		printf("skipped: needs root to reserve huge pages\n");
		return TEST_SKIP;
	}
	if (test_under_valgrind()) {
		printf("skipped: valgrind ignores SHM_HUGETLB\n");
		return TEST_SKIP;
	}
	if (test_meminfo("HugePages_Total:") < 0) {
		printf("skipped: the kernel has no hugetlb support\n");
		return TEST_SKIP;
	}
	dynshm_test_instance_tag = TEST_TAG;
	read_text(NR_PATH, old_nr, sizeof(old_nr));
	thp_mode(mode, sizeof(mode));
	if (mode[0])
		snprintf(old_thp, sizeof(old_thp), "%s", mode);
	atexit(restore);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGALRM, on_signal);
	return cmocka_run_group_tests_name("hugepages", tests, NULL, NULL);
}
