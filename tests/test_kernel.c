/* SPDX-License-Identifier: MIT */
/*
 * test_kernel.c - what the library needs from the kernel, checked on the
 * kernel the suite runs on, and what the library says where one lacks it.
 *
 * The suite runs on the build machine and, through `make check-kernels`
 * (tests/kernels/), inside guests booting Debian's long-term kernels, so
 * this file is where a kernel that differs shows first.  docs/kernels.md
 * lists every feature, the first kernel with it, and what the library does
 * without it.
 *
 *   test_required     what the library cannot work without is here, and
 *                     behaves (fails naming the feature otherwise):
 *                     getrandom, robust process-shared priority-inheritance
 *                     mutexes (a holder's death reported as EOWNERDEAD),
 *                     flock and OFD locks between processes, posix_fallocate
 *                     on a /dev/shm object, SysV shared memory.
 *   test_optional     what the library uses where present, reported (one
 *                     line each, on stderr) for the record of each kernel:
 *                     MAP_FIXED_NOREPLACE honoured or taken as a hint (the
 *                     msharefs open copes with both), shmem THP, hugetlb
 *                     pages, user namespaces, kernel.shmmax.
 *   test_no_getrandom a kernel without getrandom (before 3.17; injected):
 *                     the open fails with -ENOSYS and a message that names
 *                     getrandom and the kernel needed.
 */
#include "inject.h"
#include "testutil.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>
#include "dsm_assert.h"

extern int dynshm_test_instance_tag;

static struct test_fixture fx; /* this test's private directory */
static int leftovers;

static int setup(void **state)
{
	(void)state;
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

/* A required feature failed: say which, and which kernel has it. */
#define REQUIRE(cond, feature, since)                                          \
	do {                                                                   \
		if (!(cond))                                                   \
			fail_msg("kernel feature missing or broken: %s "       \
				 "(Linux %s or later; docs/kernels.md): %s",   \
				 feature, since, strerror(errno));             \
	} while (0)

static void report(const char *feature, const char *what)
{
	struct utsname u;

	uname(&u);
	fprintf(stderr, "kernel %s: %-22s %s\n", u.release, feature, what);
}

/* ---- required ------------------------------------------------------------ */

/* A child that takes the lock and dies holding it. */
static int die_holding(void *arg)
{
	pthread_mutex_lock(arg);
	_exit(0);
}

static void robust_pi_mutex(void)
{
	pthread_mutex_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_t attr;
	int rc;

	assert_true(m != MAP_FAILED);
	assert_int_equal(pthread_mutexattr_init(&attr), 0);
	assert_int_equal(pthread_mutexattr_setpshared(&attr,
						      PTHREAD_PROCESS_SHARED), 0);
	assert_int_equal(pthread_mutexattr_setrobust(&attr,
						     PTHREAD_MUTEX_ROBUST), 0);
	assert_int_equal(pthread_mutexattr_setprotocol(&attr,
						       PTHREAD_PRIO_INHERIT), 0);
	errno = rc = pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
	REQUIRE(rc == 0, "priority-inheritance futexes (CONFIG_FUTEX_PI)",
		"2.6.18");
	assert_int_equal(test_fork(die_holding, m), 0);
	errno = rc = pthread_mutex_lock(m);
	REQUIRE(rc == EOWNERDEAD, "robust futexes (set_robust_list)", "2.6.17");
	assert_int_equal(pthread_mutex_consistent(m), 0);
	assert_int_equal(pthread_mutex_unlock(m), 0);
	pthread_mutex_destroy(m);
	munmap(m, sizeof(*m));
}

/* Another process's attempt on path: 0 when it got the lock. */
static int try_flock(void *arg)
{
	int fd = open(arg, O_RDWR | O_CLOEXEC);

	return fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1;
}

static int try_ofd(void *arg)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(arg, O_RDWR | O_CLOEXEC);

	return fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : 1;
}

static void file_locks(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", fx.dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	REQUIRE(flock(fd, LOCK_EX | LOCK_NB) == 0, "flock", "2.0");
	assert_int_equal(test_fork(try_flock, path), 1);
	assert_int_equal(flock(fd, LOCK_UN), 0);
	REQUIRE(fcntl(fd, F_OFD_SETLK, &fl) == 0,
		"open file description locks (F_OFD_SETLK)", "3.15");
	assert_int_equal(test_fork(try_ofd, path), 1);
	close(fd);
	assert_int_equal(test_fork(try_ofd, path), 0); /* released at close */
	unlink(path);
}

static void shm_fallocate(void)
{
	char name[64];
	int fd, rc;

	snprintf(name, sizeof(name), "/dynshm-kernel-probe.%ld", (long)getpid());
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	shm_unlink(name);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	errno = rc = posix_fallocate(fd, 0, 1 << 20);
	close(fd);
	REQUIRE(rc == 0, "posix_fallocate on tmpfs (/dev/shm)", "3.5");
}

static void test_required(void **state)
{
	uint64_t v;
	int id;

	(void)state;
	REQUIRE(getrandom(&v, sizeof(v), 0) == (ssize_t)sizeof(v),
		"getrandom", "3.17");
	robust_pi_mutex();
	file_locks();
	shm_fallocate();
	id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	REQUIRE(id >= 0, "SysV shared memory (CONFIG_SYSVIPC)", "2.0");
	assert_int_equal(shmctl(id, IPC_RMID, NULL), 0);
}

/* ---- optional: reported ------------------------------------------------ */

static int new_userns(void *arg)
{
	(void)arg;
	return unshare(CLONE_NEWUSER) == 0 ? 0 : 1;
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f || !fgets(buf, (int)len, f))
		snprintf(buf, len, "absent");
	if (f)
		fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void test_optional(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *a, *b, buf[128], line[160];

	(void)state;
	a = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	assert_true(a != MAP_FAILED);
	b = mmap(a, (size_t)page, PROT_READ,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (b == MAP_FAILED && errno == EEXIST)
		report("MAP_FIXED_NOREPLACE", "honoured (4.17+)");
	else
		report("MAP_FIXED_NOREPLACE",
		       "taken as a hint (before 4.17; mshare.c maps elsewhere)");
	if (b != MAP_FAILED)
		munmap(b, (size_t)page);
	munmap(a, (size_t)page);

	read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", buf,
		  sizeof(buf));
	report("shmem THP", buf);
	snprintf(line, sizeof(line), "Hugepagesize %lld kB, nr_hugepages file %s",
		 test_meminfo("Hugepagesize:"),
		 access("/proc/sys/vm/nr_hugepages", F_OK) == 0 ? "present"
								: "absent");
	report("hugetlb", line);
	report("user namespaces", test_fork(new_userns, NULL) == 0
					  ? "yes" : "no (root tests skip)");
	read_line("/proc/sys/kernel/shmmax", buf, sizeof(buf));
	report("kernel.shmmax", buf);
}

/* ---- refused: no getrandom -------------------------------------------- */

static void test_no_getrandom(void **state)
{
	char path[4300];
	dynshm_instance *inst = NULL;
	const char *msg;

	(void)state;
	snprintf(path, sizeof(path), "%s/inst", fx.dir);
	inject_fail("getrandom", 1, ENOSYS);
	ASSERT_RC(dynshm_instance_open(path, NULL, 0, &inst), -ENOSYS);
	inject_reset();
	msg = dynshm_last_error();
	if (!strstr(msg, "getrandom") || !strstr(msg, "3.17"))
		fail_msg("the message does not name getrandom and Linux 3.17: "
			 "'%s'", msg);
	/* with getrandom back, the same directory opens */
	ASSERT_OK(dynshm_instance_open(path, NULL, 0, &inst));
	ASSERT_OK(dynshm_instance_destroy(inst));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_optional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_getrandom, setup,
						teardown),
	};
	int rc;

	dynshm_test_instance_tag = TEST_TAG;
	rc = cmocka_run_group_tests_name("kernel", tests, NULL, NULL);
	return rc || leftovers ? 1 : 0;
}
