/* SPDX-License-Identifier: MIT */
/*
 * test_shm_full.c - a really full /dev/shm (and mmap directory).
 *
 * The contract promises that a full file system fails at create with
 * -ENOSPC and never later with SIGBUS, and that the failed create leaves
 * nothing behind and harms no other segment.  Injection (test_impl.c) shows
 * the code paths; this shows the promise against the kernel: a child process
 * gets a private mount namespace, mounts a 1 MiB tmpfs over /dev/shm (and
 * over a private directory for mmap) and fills it.  The namespace, and with
 * it the tmpfs and anything in it, disappears when the child exits, so the
 * real /dev/shm is never touched.
 *
 * Needs root (CAP_SYS_ADMIN): exits 77, skipped, otherwise, and also when
 * the kernel or a container refuses the new namespace with EPERM.
 */
#include "testutil.h"

#include <dynshm/dsm_impl.h>

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cmocka.h>

#define SMALL (256 * 1024)
#define MEDIUM (512 * 1024)
#define LARGE (2 * 1024 * 1024)

/*
 * Enter a private mount namespace and mount a 1 MiB tmpfs on target.
 * 0, TEST_SKIP when not permitted, or 1.
 */
static int private_tmpfs(const char *target, const char *mode)
{
	char options[64];

	if (unshare(CLONE_NEWNS) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return errno == EPERM ? TEST_SKIP : 1;
	}
	/* source and type are ignored; "none" rather than NULL for valgrind */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "making mounts private: %s\n", strerror(errno));
		return errno == EPERM ? TEST_SKIP : 1;
	}
	snprintf(options, sizeof(options), "size=1m,mode=%s", mode);
	if (mount("dynshm-test", target, "tmpfs", MS_NOSUID | MS_NODEV,
		  options) < 0) {
		fprintf(stderr, "mounting a tmpfs on %s: %s\n", target,
			strerror(errno));
		return errno == EPERM ? TEST_SKIP : 1;
	}
	return 0;
}

/* Entries of dir other than . and ..; the one found goes to *name. */
static int entries(const char *dir, char *name, size_t len)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(name, len, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static void fill(unsigned char *p, size_t size)
{
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(i * 13 + 1);
}

static int check_fill(const unsigned char *p, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)(i * 13 + 1))
			return 0;
	return 1;
}

static int count_listed(dynshm_handle handle, const char *os_name, void *arg)
{
	(void)handle, (void)os_name;
	++*(int *)arg;
	return 0;
}

/*
 * In the child: fill a 1 MiB file system (which holds the objects of space,
 * and is the directory fs_dir) and check what the contract promises.
 */
static int fill_up(dynshm_impl_space *space, const char *fs_dir)
{
	dynshm_handle small = test_random_handle(), large = test_random_handle();
	dynshm_handle medium = test_random_handle();
	dynshm_impl_map *m = NULL, *big = NULL, *again = NULL;
	char name[DYNSHM_IMPL_NAME_MAX], found[256];
	const char *base;
	int rc, listed = 0;

	CHILD_CHECK(dynshm_impl_create(space, small, SMALL, 0, &m) == 0);
	fill(dynshm_impl_map_address(m), SMALL);

	rc = dynshm_impl_create(space, large, LARGE, 0, &big);
	fprintf(stderr, "create of %d bytes in a 1 MiB fs: %d (%s)\n", LARGE,
		rc, dynshm_last_error());
	CHILD_CHECK(rc == -ENOSPC);
	CHILD_CHECK(big == NULL);
	CHILD_CHECK(dynshm_last_error()[0] != '\0');

	/* nothing of the failed create is left; the other one is intact */
	CHILD_CHECK(entries(fs_dir, found, sizeof(found)) == 1);
	CHILD_CHECK(dynshm_impl_object_name(space, small, name, sizeof(name)) ==
		    0);
	base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	CHILD_CHECK(strcmp(found, base) == 0);
	CHILD_CHECK(dynshm_impl_list(space, count_listed, &listed) == 0);
	CHILD_CHECK(listed == 1);
	CHILD_CHECK(check_fill(dynshm_impl_map_address(m), SMALL));
	CHILD_CHECK(dynshm_impl_attach(space, small, &again) == 0);
	CHILD_CHECK(dynshm_impl_map_size(again) == SMALL);
	CHILD_CHECK(check_fill(dynshm_impl_map_address(again), SMALL));
	CHILD_CHECK(dynshm_impl_detach(again) == 0);

	/* the failed create gave its blocks back: 256 + 512 KiB still fit */
	CHILD_CHECK(dynshm_impl_create(space, medium, MEDIUM, 0, &again) == 0);
	fill(dynshm_impl_map_address(again), MEDIUM); /* no SIGBUS */
	CHILD_CHECK(dynshm_impl_detach(again) == 0);
	CHILD_CHECK(dynshm_impl_destroy(space, medium) == 0);

	CHILD_CHECK(dynshm_impl_detach(m) == 0);
	CHILD_CHECK(dynshm_impl_destroy(space, small) == 0);
	CHILD_CHECK(entries(fs_dir, found, sizeof(found)) == 0);
	return 0;
}

static int posix_child(void *arg)
{
	dynshm_impl_space *space = NULL;
	int rc;

	(void)arg;
	rc = private_tmpfs("/dev/shm", "1777");
	if (rc != 0)
		return rc;
	CHILD_CHECK(dynshm_impl_space_open(DYNSHM_IMPL_POSIX, test_instance_id(),
					NULL, &space) == 0);
	rc = fill_up(space, "/dev/shm");
	dynshm_impl_space_close(space);
	return rc;
}

static int mmap_child(void *arg)
{
	const char *dir = arg;
	dynshm_impl_space *space = NULL;
	int rc;

	rc = private_tmpfs(dir, "0700");
	if (rc != 0)
		return rc;
	rc = dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(), dir,
				 &space);
	if (rc != 0)
		fprintf(stderr, "space on %s: %d (%s)\n", dir, rc,
			dynshm_last_error());
	CHILD_CHECK(rc == 0);
	rc = fill_up(space, dir);
	dynshm_impl_space_close(space);
	return rc;
}

static void test_posix_full(void **state)
{
	(void)state;
	assert_int_equal(test_fork(posix_child, NULL), 0);
}

static void test_mmap_full(void **state)
{
	char *dir = test_make_dir();
	int status;

	(void)state;
	assert_non_null(dir);
	/* made (and removed) out here: the mount is only in the child */
	status = test_fork(mmap_child, dir);
	assert_int_equal(test_remove_dir(dir), 0);
	assert_int_equal(status, 0);
}

/* Can we have a private mount namespace with a tmpfs at all? */
static int probe_child(void *arg)
{
	char *dir = arg;

	return private_tmpfs(dir, "0700");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_posix_full),
		cmocka_unit_test(test_mmap_full),
	};
	char *dir;
	int rc;

	if (!test_is_root()) {
		printf("skipped: mounting a small tmpfs needs root\n");
		return TEST_SKIP;
	}
	dir = test_make_dir();
	if (!dir) {
		perror("test directory");
		return 1;
	}
	rc = test_fork(probe_child, dir);
	test_remove_dir(dir);
	if (rc == TEST_SKIP) {
		printf("skipped: no private mount namespace with a tmpfs "
		       "(EPERM; an unprivileged container?)\n");
		return TEST_SKIP;
	}
	if (rc != 0) {
		fprintf(stderr, "probe for a private tmpfs failed: %d\n", rc);
		return 1;
	}
	return cmocka_run_group_tests_name("shm-full", tests, NULL, NULL);
}
