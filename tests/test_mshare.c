/* SPDX-License-Identifier: MIT */
/*
 * test_mshare.c - msharefs placement (src/mshare.c, src/placement.c)
 * against a fake msharefs, and the real fallback on this kernel.
 *
 * The kernel here has no msharefs, so the v3 behaviour documented in the
 * patch texts (docs/mshare.md) is emulated through the system-call table:
 * a directory of the test stands for the mount (statfs reports
 * MSHARE_MAGIC, mshare_info is a real file), and files created in it are
 * regions: ftruncate sets the size once, to a multiple of the alignment;
 * mmap of the region reserves address space; MSHAREFS_CREATE_MAPPING maps
 * the object into every mapping of the region in this process (what shared
 * page tables make visible) and keeps a reference to it, as the host mm
 * does; MSHAREFS_UNMAP puts the reservation back.  Knobs make it an older
 * ABI (v1: CREATE_MAPPING unknown, UNMAP's number is SET_SIZE; v2: no
 * fd-backed objects), report another file system, or fail one step.
 *
 * Every test checks that what failed left nothing: descriptors (counted in
 * /proc/self/fd), region mappings, region files, /dev/shm objects.
 */
#include "fake_mshare.h"
#include "inject.h"
#include "testutil.h"

#include "src/mshare.h"
#include "src/sys.h"

#include <build_config.h>
#include <dynshm/dsm.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include "dsm_assert.h"

extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define ALIGN (2u << 20) /* the fake's mshare_info */

/* ---- the fake msharefs (tests/fake_mshare.c) ------------------------------ */

static char fake_mount[PATH_MAX];
#define fake (*fake_mshare)

#if DYNSHM_HAVE_MSHARE
/* Install it (once per test; again only puts the entries back). */
static void fake_install(int abi)
{
	int rc = fake_mshare_install(fake_mount, abi, ALIGN);

	if (rc < 0)
		fail_msg("fake_mshare_install: %s", strerror(-rc));
}

static int read_in_child(const void *addr, const char *text);

/* Region views in this process. */
static int fake_mappings(void)
{
	return fake_mshare ? fake_mshare_views() : 0;
}

/* Region files in the fake mount (everything but mshare_info and ours). */
static int region_files(void)
{
	DIR *d = opendir(fake_mount);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && strcmp(e->d_name, "mshare_info"))
			n++;
	closedir(d);
	return n;
}
#endif /* DYNSHM_HAVE_MSHARE */

/* ---- fixture ---------------------------------------------------------------- */

struct fixture {
	char *dir;
	char inst[PATH_MAX];
	int fds;
	int leftovers; /* before: another run's, not ours to judge */
};

static int setup(void **state)
{
	static struct fixture f;
	char path[PATH_MAX + 32];
	FILE *info;

	f.dir = test_make_dir();
	if (!f.dir)
		return -1;
	snprintf(f.inst, sizeof(f.inst), "%s/inst", f.dir);
	snprintf(fake_mount, sizeof(fake_mount), "%s/mshare", f.dir);
	if (mkdir(fake_mount, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mshare_info", fake_mount);
	info = fopen(path, "w");
	if (!info)
		return -1;
	fprintf(info, "%u\n", ALIGN);
	fclose(info);
	f.fds = test_count_fds();
	f.leftovers = test_count_leftovers(NULL, 0) - 1; /* our dir */
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char report[1024];
	int n, fds;

	if (fake_mshare && fake_mshare->errors) {
		fprintf(stderr, "teardown: the fake msharefs saw %u error(s), "
				"the first: %s\n",
			fake_mshare->errors, fake_mshare->error);
		fake_mshare_uninstall();
		inject_reset();
		return -1;
	}
	fake_mshare_uninstall();
	inject_reset();
	fds = test_count_fds();
	test_remove_dir(f->dir);
	n = test_count_leftovers(report, sizeof(report));
	if (n != f->leftovers || fds != f->fds) {
		fprintf(stderr, "teardown: %d leftovers, fds %d -> %d\n%s", n,
			f->fds, fds, report);
		return -1;
	}
	return 0;
}

static dynshm_config *config(const char *mode, const char *mount)
{
	dynshm_config *cfg = NULL;

	assert_int_equal(dynshm_config_new(&cfg), 0);
	ASSERT_OK(dynshm_config_set(cfg, "max_segments", "8"));
	ASSERT_OK(dynshm_config_set(cfg, "max_processes", "4"));
	ASSERT_OK(dynshm_config_set(cfg, "mshare", mode));
	if (mount)
		ASSERT_OK(dynshm_config_set(cfg, "mshare_path", mount));
	return cfg;
}

static dynshm_instance *open_inst(const struct fixture *f, const char *mode,
			       unsigned flags, dynshm_instance_info *info)
{
	dynshm_config *cfg = config(mode, fake_mount);
	dynshm_instance *inst = NULL;

	ASSERT_OK(dynshm_instance_open(f->inst, cfg, flags, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_info_get(inst, info, sizeof(*info)));
	return inst;
}

/* Remove the instance with the real table, whatever the test did. */
static void destroy_inst(const struct fixture *f)
{
	dynshm_config *cfg = config("off", NULL);
	dynshm_instance *inst = NULL;

	inject_reset();
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, 0, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_destroy(inst));
}

#define ASSERT_STATUS(info, text)                                              \
	do {                                                                   \
		if (!strstr((info)->mshare_status, (text)))                    \
			fail_msg("mshare status '%s' lacks '%s'",              \
				 (info)->mshare_status, (text));               \
	} while (0)

#if DYNSHM_HAVE_MSHARE
/* With the fake installed: try falls back, giving text as the reason. */
static void expect_fallback(struct fixture *f, unsigned flags,
			    const char *text)
{
	dynshm_instance_info info;
	dynshm_instance *inst;

	inst = open_inst(f, "try", flags, &info);
	assert_int_equal(info.mshare_active, 0);
	assert_int_equal(info.mshare_region_size, 0);
	ASSERT_STATUS(&info, text);
	ASSERT_OK(dynshm_instance_close(inst));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
	assert_int_equal(test_count_fds(), f->fds);
}

/* ... and on fails with err and the same reason; then clean up. */
static void expect_refusal(struct fixture *f, unsigned flags, int err,
			   const char *text)
{
	dynshm_instance *inst;
	dynshm_config *cfg;
	int rc;

	expect_fallback(f, flags, text);
	cfg = config("on", fake_mount);
	rc = dynshm_instance_open(f->inst, cfg, flags | DYNSHM_OPEN_RESET, &inst);
	dynshm_config_free(cfg);
	assert_int_equal(rc, -err);
	if (!strstr(dynshm_last_error(), "mshare = on") ||
	    !strstr(dynshm_last_error(), text))
		fail_msg("message '%s'", dynshm_last_error());
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
	assert_int_equal(test_count_fds(), f->fds);
	destroy_inst(f);
}
#endif

/* ---- tests ------------------------------------------------------------------- */

/* The real kernel here has no msharefs: try falls back, on fails. */
static void test_real_kernel_fallback(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst = NULL;
	dynshm_config *cfg;
	struct statfs st;
	int rc;

	if (statfs(MSHARE_DEFAULT_PATH, &st) == 0 && st.f_type == MSHARE_MAGIC)
		skip(); /* a kernel with msharefs: nothing to fall back from */
	cfg = config("try", NULL);
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst));
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.mshare_active, 0);
	assert_int_equal(info.mshare_region_size, 0);
#if DYNSHM_HAVE_MSHARE
	ASSERT_STATUS(&info, "msharefs not mounted at /sys/fs/mshare");
#else
	ASSERT_STATUS(&info, "built without mshare support");
#endif
	{ /* and segments work as ever */
		dynshm_segment *seg = NULL;

		ASSERT_OK(dynshm_create(inst, 4096, 0, &seg));
		memset(dynshm_segment_address(seg), 1, 4096);
		ASSERT_OK(dynshm_detach(seg));
	}
	ASSERT_OK(dynshm_instance_close(inst));
	dynshm_config_free(cfg);

	cfg = config("on", NULL);
	rc = dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET,
			       &inst);
	dynshm_config_free(cfg);
	assert_true(rc < 0);
	if (!strstr(dynshm_last_error(), "mshare = on, but"))
		fail_msg("message '%s'", dynshm_last_error());
	assert_int_equal(test_count_fds(), f->fds);
	destroy_inst(f);
}

static void test_config_keys(void **state)
{
	dynshm_config *cfg = NULL;
	char buf[PATH_MAX];

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_get(cfg, "mshare", buf, sizeof(buf)));
	assert_string_equal(buf, "try");
	ASSERT_OK(dynshm_config_get(cfg, "mshare_path", buf, sizeof(buf)));
	assert_string_equal(buf, "/sys/fs/mshare");
	assert_int_equal(dynshm_config_set(cfg, "mshare", "maybe"), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "off, try, on"));
	assert_int_equal(dynshm_config_set(cfg, "mshare_path", "rel/ative"),
			 -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "mshare_path"));
	ASSERT_OK(dynshm_config_set(cfg, "mshare", "on"));
	ASSERT_OK(dynshm_config_get(cfg, "mshare", buf, sizeof(buf)));
	assert_string_equal(buf, "on");
	dynshm_config_free(cfg);
}

/* mshare = off asks the system nothing. */
static void test_off(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;

	inject_fail("statfs", 0, 0); /* count only */
	inst = open_inst(f, "off", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(inject_calls("statfs"), 0);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "mshare = off");
	ASSERT_OK(dynshm_instance_destroy(inst));
}

#if DYNSHM_HAVE_MSHARE

/* The whole v3 sequence: create, place, attach elsewhere, remove. */
static void test_v3_sequence(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info, info2;
	dynshm_instance *a, *b;
	dynshm_segment *seg = NULL, *seg2 = NULL;
	uint64_t slot;
	char *addr;

	fake_install(3);
	a = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(info.mshare_same_address, 1);
	assert_int_equal(info.mshare_window, 1ull << 30);
	/* 8 slots + the probe's window, rounded up to the alignment */
	assert_int_equal(info.mshare_region_size, 9ull << 30);
	assert_int_equal(info.mshare_region_size % ALIGN, 0);
	assert_int_equal(region_files(), 1);
	/* the probe: one CREATE_MAPPING, then one UNMAP */
	assert_int_equal(fake.creates, 1);
	assert_int_equal(fake.unmaps, 1);

	ASSERT_OK(dynshm_create(a, 10000, 0, &seg));
	assert_int_equal(fake.creates, 2);
	addr = dynshm_segment_address(seg);
	slot = dynshm_segment_handle(seg) & 0xffffff;
	assert_int_equal(dynshm_segment_size(seg), 10000);
	memcpy(addr, "placed", 7);

	/* A second view (as another process would): no mapping made. */
	b = open_inst(f, "try", 0, &info2);
	assert_int_equal(info2.mshare_active, 1);
	/* same process: the creator's range is taken, so elsewhere */
	assert_int_equal(info2.mshare_same_address, 0);
	ASSERT_STATUS(&info2, "not at the creator's");
	inject_fail("mmap", 0, 0);
	inject_fail("shm_open", 0, 0);
	ASSERT_OK(dynshm_attach(b, dynshm_segment_handle(seg), &seg2));
	assert_int_equal(inject_calls("mmap"), 0);
	assert_int_equal(inject_calls("shm_open"), 0);
	inject_reset();
	fake_install(3);
	assert_string_equal(dynshm_segment_address(seg2), "placed");
	assert_int_equal((char *)dynshm_segment_address(seg2) -
				 (char *)dynshm_segment_address(seg),
			 (char *)fake_mshare_view(1) - (char *)fake_mshare_view(0));
	assert_int_equal(((char *)dynshm_segment_address(seg2) -
			  (char *)fake_mshare_view(1)),
			 slot << 30);
	ASSERT_OK(dynshm_detach(seg2));
	ASSERT_OK(dynshm_instance_close(b));

	/* the last detach destroys it: UNMAP of its window */
	assert_int_equal(fake_mshare_mappings(), 1);
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(fake.unmaps, 2);
	/* its own window, not a neighbour's: nothing is mapped any more */
	assert_int_equal(fake_mshare_mappings(), 0);
	assert_int_equal(fake.empty_unmaps, 0);
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

/* A v1 kernel: CREATE_MAPPING unknown; UNMAP (its SET_SIZE) never sent. */
static void test_old_abi_v1(void **state)
{
	fake_install(1);
	expect_refusal(*state, DYNSHM_OPEN_SUPERVISOR, EPROTO,
		       "not the v3 ABI");
	assert_int_equal(fake.v1_set_size, 0);
}

static void test_v2_no_fd_objects(void **state)
{
	fake_install(2);
	expect_refusal(*state, DYNSHM_OPEN_SUPERVISOR, EPROTO,
		       "anonymous memory only");
}

static void test_not_msharefs(void **state)
{
	struct fixture *f = *state;

	fake_install(3);
	fake.magic = 0x01021994; /* tmpfs */
	expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, ENODEV,
		       "msharefs not mounted at");
}

static void test_bad_mshare_info(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 32];
	FILE *info;

	snprintf(path, sizeof(path), "%s/mshare_info", fake_mount);
	info = fopen(path, "w");
	assert_non_null(info);
	fputs("3000\n", info); /* not a power of two */
	fclose(info);
	fake_install(3);
	expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, EPROTO, "not an alignment");
}

static void test_no_supervisor(void **state)
{
	fake_install(3);
	expect_refusal(*state, 0, EINVAL, "DYNSHM_OPEN_SUPERVISOR");
}

static void test_sysv_has_no_fd(void **state)
{
	struct fixture *f = *state;
	dynshm_config *cfg = config("try", fake_mount);
	dynshm_instance_info info;
	dynshm_instance *inst = NULL;

	fake_install(3);
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type", "sysv"));
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "no file descriptor");
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

/* A supervisor arriving at a populated instance must reset it. */
static void test_supervisor_late(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *a, *b;

	fake_install(3);
	a = open_inst(f, "off", 0, &info);
	b = open_inst(f, "try", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "already has other processes or segments");
	ASSERT_OK(dynshm_instance_close(b));
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(region_files(), 0);
}

static int open_and_die(void *arg)
{
	const struct fixture *f = arg;
	dynshm_config *cfg = config("off", NULL);
	dynshm_instance *inst = NULL;

	if (dynshm_instance_open(f->inst, cfg, 0, &inst) != 0)
		return 1;
	raise(SIGKILL);
	return 1;
}

/* Only the dead were there: a supervisor may still make the region. */
static void test_supervisor_after_the_dead(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;

	assert_int_equal(test_fork(open_and_die, f), 128 + SIGKILL);
	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(info.processes, 1);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

/* Each step of region creation failing: fall back, leave nothing. */
static void test_failures_back_out(void **state)
{
	static const struct {
		enum fake_step step;
		int err;
		const char *text;
	} steps[] = {
		{ STEP_OPEN, EACCES, "cannot create msharefs region" },
		{ STEP_FTRUNCATE, EINVAL, "cannot size msharefs region" },
		{ STEP_CREATE, ENOMEM, "probe" },
		{ STEP_UNMAP, EIO, "not UNMAP" },
		{ STEP_MMAP, ENOMEM, "cannot map msharefs region" },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fake_install(3);
		fake.fail_step = steps[i].step;
		fake.fail_err = steps[i].err;
		expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, steps[i].err,
			       steps[i].text);
	}
	/* The probe object (the 2nd shm_open, after the control segment's). */
	fake_install(3);
	inject_fail("shm_open", 2, EMFILE);
	expect_fallback(f, DYNSHM_OPEN_SUPERVISOR, "probe object");
	destroy_inst(f);
	/* The record (the 3rd rename, after the pending and state files'). */
	fake_install(3);
	inject_fail("renameat", 3, EIO);
	expect_fallback(f, DYNSHM_OPEN_SUPERVISOR, "/mshare'");
	destroy_inst(f);
}

/* The module itself: argument checks of CREATE_MAPPING and UNMAP. */
static void test_place_arguments(void **state)
{
	struct mshare_region r = MSHARE_REGION_INIT;
	char probe[64];
	int fd;

	(void)state;
	fake_install(3);
	snprintf(probe, sizeof(probe), "/dynshm.%016llx.mshare-probe",
		 (unsigned long long)test_instance_id());
	ASSERT_OK(mshare_region_create(fake_mount, "args", 3 * ALIGN - 1,
				       probe, &r));
	assert_int_equal(r.size, 3 * ALIGN);
	assert_int_equal(r.align, ALIGN);
	fd = memfd_create("obj", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	/* beyond the region, unaligned offset, bad descriptor */
	assert_int_equal(mshare_place(&r, 3 * ALIGN, fd, 4096), -EINVAL);
	assert_int_equal(mshare_place(&r, 3 * ALIGN - 4096, fd, 8192),
			 -EINVAL);
	assert_int_equal(mshare_place(&r, 100, fd, 4096), -EINVAL);
	assert_int_equal(mshare_place(&r, 0, 1000, 4096), -EBADF);
	assert_non_null(strstr(dynshm_last_error(), "cannot place"));
	ASSERT_OK(mshare_place(&r, ALIGN, fd, 5000)); /* rounded to pages */
	assert_int_equal(r.fd >= 0, 1);
	memcpy((char *)r.base + ALIGN, "x", 2);
	{
		char back[2];

		assert_int_equal(pread(fd, back, 2, 0), 2);
		assert_string_equal(back, "x");
	}
	assert_int_equal(mshare_unplace(&r, 0, 4 * ALIGN), -EINVAL);
	assert_int_equal(mshare_unplace(&r, 3 * ALIGN, 4096), -EINVAL);
	{ /* a second object at the same offset replaces the first */
		int fd2 = memfd_create("obj2", MFD_CLOEXEC);

		assert_true(fd2 >= 0);
		assert_int_equal(pwrite(fd2, "y", 2, 0), 2);
		ASSERT_OK(mshare_place(&r, ALIGN, fd2, 8192));
		close(fd2);
		assert_int_equal(fake.replaced, 1);
		assert_int_equal(fake_mshare_mappings(), 1);
		assert_string_equal((char *)r.base + ALIGN, "y");
	}
	/* an UNMAP that cuts a mapping is an error the emulation records */
	ASSERT_OK(mshare_unplace(&r, ALIGN + 4096, 4096));
	assert_int_equal(fake.errors, 1);
	assert_non_null(strstr(fake.error, "cuts a mapping"));
	fake.errors = 0; /* expected: not the teardown's business */
	assert_int_equal(fake_mshare_mappings(), 0);
	ASSERT_OK(mshare_place(&r, ALIGN, fd, 5000));
	ASSERT_OK(mshare_unplace(&r, ALIGN, ALIGN));
	assert_int_equal(read_in_child((char *)r.base + ALIGN, "x"),
			 128 + SIGSEGV); /* nothing mapped there any more */
	/* a second size is refused (set once) */
	assert_int_equal(dynshm_sys.ftruncate(r.fd, 4 * ALIGN), -1);
	close(fd);
	mshare_region_close(&r);
	ASSERT_OK(mshare_region_unlink(r.path));
	assert_int_equal(mshare_region_unlink(r.path), -ENOENT);
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

static int supervisor_child(void *arg)
{
	const struct fixture *f = arg;
	dynshm_config *cfg = config("on", fake_mount);
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;

	if (dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst) != 0 ||
	    dynshm_instance_info_get(inst, &info,
				     sizeof(info)) != 0 || !info.mshare_active)
		return 1;
	dynshm_config_free(cfg);
	return 0; /* exits: the region dies with it */
}

/* The owner exited: try says so, on fails, reset recovers. */
static void test_owner_gone(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_config *cfg;

	fake_install(3);
	assert_int_equal(test_fork(supervisor_child, f), 0);
	assert_int_equal(region_files(), 1);
	/* the child's exit ended its thread: the helper tears it down */
	assert_int_equal(fake_mshare_wait_teardown(1), 1);
	inst = open_inst(f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "died with its owner");
	{ /* a segment that belongs in the region is refused clearly */
		dynshm_segment *seg = NULL;

		assert_int_equal(dynshm_create(inst, 4096, 0, &seg), -ESRCH);
		assert_non_null(strstr(dynshm_last_error(), "msharefs region"));
	}
	ASSERT_OK(dynshm_instance_close(inst));
	cfg = config("on", fake_mount);
	assert_int_equal(dynshm_instance_open(f->inst, cfg, 0, &inst), -ESRCH);
	dynshm_config_free(cfg);
	/* a supervisor resetting it gets a fresh region */
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET, &info);
	assert_int_equal(info.mshare_active, 1);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
	assert_int_equal(fake_mappings(), 0);
}

static void kill_at_referenced(const char *point)
{
	if (strcmp(point, "create:referenced") == 0)
		raise(SIGKILL);
}

static int create_and_die(void *arg)
{
	dynshm_segment *seg = NULL;

	dynshm_test_hook = kill_at_referenced;
	dynshm_create(arg, 4096, 0, &seg); /* placed, then killed */
	return 1;
}

/* A creator killed after placing: the reaper removes the placement. */
static void test_kill9_after_place(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	unsigned reaped = 0;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(fake.unmaps, 1); /* the probe's */
	assert_int_equal(test_fork(create_and_die, inst), 128 + SIGKILL);
	/* It died holding the control lock: the next locker repairs, reaps. */
	ASSERT_OK(dynshm_reap(inst, &reaped));
	assert_int_equal(fake.unmaps, 2); /* its window */
	assert_int_equal(fake_mshare_mappings(), 0);
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.segments, 0);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

static int create_then_die(void *arg)
{
	dynshm_segment *seg = NULL;

	if (dynshm_create(arg, 4096, 0, &seg) != 0) /* placed */
		return 1;
	raise(SIGKILL);
	return 1;
}

/*
 * A creator killed holding a placed segment, found dead by another open
 * (the reap at join): its window is unmapped like in any other reap.
 */
static void test_reaped_at_open(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst, *other;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(fake.unmaps, 1); /* the probe's */
	assert_int_equal(test_fork(create_then_die, inst), 128 + SIGKILL);
	other = open_inst(f, "on", 0, &info);
	assert_int_equal(info.segments, 0); /* the open reaped it */
	assert_int_equal(fake.unmaps, 2);   /* and its window */
	assert_int_equal(fake_mshare_mappings(), 0);
	ASSERT_OK(dynshm_instance_close(other));
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

static int placed_init_fails(dynshm_segment *seg, void *arg)
{
	*(dynshm_handle *)arg = dynshm_segment_handle(seg);
	strcpy(dynshm_segment_address(seg), "half made");
	return -EIO;
}

/* A named segment whose init fails after placing: unplaced and removed. */
static void test_placed_init_fails(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_segment *seg = NULL;
	dynshm_handle h = 0;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(dynshm_get_named(inst, "placed", 4096, 0,
				       placed_init_fails, &h, &seg, NULL),
			 -EIO);
	assert_int_equal(fake.creates, 2); /* the probe's and its own */
	assert_int_equal(fake.unmaps, 2);
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.segments, 0);
	ASSERT_OK(dynshm_get_named(inst, "placed", 4096, 0, NULL, NULL, &seg,
				NULL));
	assert_int_equal(((char *)dynshm_segment_address(seg))[0], 0);
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

/* ---- issue 17: what the shared emulation shows ----------------------------- */

struct duo {
	const struct fixture *f;
	dynshm_instance *inst;
	dynshm_handle handle;
	int ready[2], go[2]; /* child -> parent, parent -> child */
};

static void duo_pipes(struct duo *d)
{
	assert_int_equal(pipe2(d->ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(d->go, O_CLOEXEC), 0);
}

static void duo_close(struct duo *d)
{
	close(d->ready[0]);
	close(d->ready[1]);
	close(d->go[0]);
	close(d->go[1]);
}

/* Fork fn(d) as a child that talks through the pipes; its pid. */
static pid_t duo_fork(int (*fn)(struct duo *), struct duo *d)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* a parent that fails must not leave us waiting, nor CMocka
		 * turn our SIGSEGV into more tests run here (the emulation's
		 * fault handler stays: it maps windows on first access) */
		close(d->go[1]);
		close(d->ready[0]);
		fake_mshare_default_faults();
		_exit(fn(d));
	}
	return pid;
}

static int read_text(void *arg)
{
	const char *text = arg;
	const char *at = *(const char *const *)(text + 64);

	fake_mshare_default_faults(); /* CMocka's handler would carry on */
	return strcmp(at, text) == 0 ? 0 : 1; /* a hole is SIGSEGV */
}

/* Read what addr holds in a forked child: 0 when it is text. */
static int read_in_child(const void *addr, const char *text)
{
	char arg[64 + sizeof(void *)];

	snprintf(arg, 64, "%s", text);
	memcpy(arg + 64, &addr, sizeof(addr));
	return test_fork(read_text, arg);
}

static int attached_reader(struct duo *d)
{
	dynshm_config *cfg = config("try", fake_mount);
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	char c = 0;

	int rc = dynshm_instance_open(d->f->inst, cfg, 0, &inst);

	dynshm_config_free(cfg);
	CHILD_CHECK(rc == 0);
	CHILD_CHECK(dynshm_attach(inst, d->handle, &seg) == 0);
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "kept") == 0);
	CHILD_CHECK(write(d->ready[1], "r", 1) == 1);
	CHILD_CHECK(read(d->go[0], &c, 1) == 1);
	/* the instance was destroyed meanwhile: our mapping stays */
	CHILD_CHECK(strcmp(dynshm_segment_address(seg), "kept") == 0);
	return 0;
}

/*
 * Item 1: destroy leaves alone the windows other processes still use,
 * as it leaves their mappings of unlinked objects (dynshm_instance_destroy(3)).
 */
static void test_destroy_keeps_windows(void **state)
{
	struct fixture *f = *state;
	struct duo d = { .f = f };
	dynshm_instance_info info;
	dynshm_instance *a;
	dynshm_segment *seg = NULL;
	char c;
	pid_t pid;

	fake_install(3);
	a = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	ASSERT_OK(dynshm_create(a, 4096, 0, &seg));
	strcpy(dynshm_segment_address(seg), "kept");
	d.handle = dynshm_segment_handle(seg);
	duo_pipes(&d);
	pid = duo_fork(attached_reader, &d);
	assert_int_equal(read(d.ready[0], &c, 1), 1);
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(write(d.go[1], "g", 1), 1);
	assert_int_equal(test_wait(pid), 0); /* not 128 + SIGSEGV */
	duo_close(&d);
	assert_int_equal(fake.errors, 0);
	assert_int_equal(region_files(), 0);
}

/* A region file of our own making at path (as another user would make). */
static void plant_region(const char *path)
{
	int fd = dynshm_sys.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);

	assert_true(fd >= 0);
	assert_int_equal(dynshm_sys.ftruncate(fd, 9ll << 30), 0);
	dynshm_sys.close(fd);
}

/* Item 2: a replaced region file (symlink, another file) is not joined. */
static void test_replaced_region(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *a, *b;
	char path[PATH_MAX + 64], evil[PATH_MAX + 64];

	fake_install(3);
	a = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	snprintf(path, sizeof(path), "%s/dynshm.%016llx", fake_mount,
		 (unsigned long long)info.instance_id);
	snprintf(evil, sizeof(evil), "%s/evil", fake_mount);
	plant_region(evil);
	/* a symbolic link in its place */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(evil, path), 0);
	b = open_inst(f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "symbolic link");
	ASSERT_OK(dynshm_instance_close(b));
	/* another region under its name */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(evil, path), 0);
	b = open_inst(f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "not the one the instance recorded");
	ASSERT_OK(dynshm_instance_close(b));
	if (test_is_root()) { /* and one of another user */
		assert_int_equal(chown(path, TEST_OTHER_UID, TEST_OTHER_UID), 0);
		b = open_inst(f, "try", 0, &info);
		assert_int_equal(info.mshare_active, 0);
		ASSERT_STATUS(&info, "is not ours");
		ASSERT_OK(dynshm_instance_close(b));
	}
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(region_files(), 0);
}

static int late_creator(struct duo *d)
{
	dynshm_segment *seg = NULL;
	dynshm_instance_info info;
	char c = 0;

	CHILD_CHECK(read(d->go[0], &c, 1) == 1);
	/* the first call since the fork: a supervisor made a region since */
	CHILD_CHECK(dynshm_create(d->inst, 4096, 0, &seg) == 0);
	strcpy(dynshm_segment_address(seg), "child");
	CHILD_CHECK(dynshm_instance_info_get(d->inst, &info, sizeof(info)) == 0);
	d->handle = dynshm_segment_handle(seg);
	CHILD_CHECK(write(d->ready[1], &d->handle, sizeof(d->handle)) ==
		    (ssize_t)sizeof(d->handle));
	CHILD_CHECK(read(d->go[0], &c, 1) == 1);
	return info.mshare_active ? 0 : 1;
}

/* Item 3: a forked child's first call sees the region made since. */
static void test_fork_sees_new_region(void **state)
{
	struct fixture *f = *state;
	struct duo d = { .f = f };
	dynshm_instance_info info;
	dynshm_instance *s;
	dynshm_segment *seg = NULL;
	pid_t pid;

	fake_install(3);
	d.inst = open_inst(f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 0);
	duo_pipes(&d);
	pid = duo_fork(late_creator, &d);
	ASSERT_OK(dynshm_instance_close(d.inst)); /* the parent leaves */
	s = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(write(d.go[1], "g", 1), 1);
	assert_int_equal(read(d.ready[0], &d.handle, sizeof(d.handle)),
			 (ssize_t)sizeof(d.handle));
	ASSERT_OK(dynshm_attach(s, d.handle, &seg));
	assert_int_equal(read_in_child(dynshm_segment_address(seg), "child"), 0);
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(write(d.go[1], "g", 1), 1);
	assert_int_equal(test_wait(pid), 0);
	duo_close(&d);
	ASSERT_OK(dynshm_instance_destroy(s));
	assert_int_equal(fake.errors, 0);
}

/*
 * Item 4: a creator killed inside the control lock after placing; the next
 * open repairs the lock while joining - the region must be mapped by then,
 * so that the reap unplaces the window.
 */
static void test_reap_in_join_unplaces(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *s, *b;

	fake_install(3);
	s = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(test_fork(create_and_die, s), 128 + SIGKILL);
	assert_int_equal(fake_mshare_mappings(), 1); /* its window */
	b = open_inst(f, "on", 0, &info);
	assert_int_equal(info.segments, 0);
	assert_int_equal(fake_mshare_mappings(), 0);
	ASSERT_OK(dynshm_instance_close(b));
	ASSERT_OK(dynshm_instance_destroy(s));
	assert_int_equal(region_files(), 0);
}

static void kill_at_created(const char *point)
{
	if (strcmp(point, "mshare:created") == 0)
		raise(SIGKILL);
}

static int supervisor_dies_early(void *arg)
{
	const struct fixture *f = arg;
	dynshm_config *cfg = config("on", fake_mount);
	dynshm_instance *inst = NULL;

	dynshm_test_hook = kill_at_created;
	dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst);
	return 1; /* not reached: the hook kills */
}

/* Item 5: a supervisor killed before writing the record blocks no one. */
static void test_stale_region_file(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *s;

	fake_install(3);
	assert_int_equal(test_fork(supervisor_dies_early, f), 128 + SIGKILL);
	assert_int_equal(region_files(), 1); /* its file, no record */
	s = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(region_files(), 1);
	ASSERT_OK(dynshm_instance_destroy(s));
	assert_int_equal(region_files(), 0);
}

struct sup {
	struct fixture *f;
	dynshm_instance *inst;
	pthread_barrier_t bar;
};

static void *supervisor_thread(void *arg)
{
	struct sup *sp = arg;
	dynshm_config *cfg = config("on", fake_mount);

	if (dynshm_instance_open(sp->f->inst, cfg, DYNSHM_OPEN_SUPERVISOR,
			      &sp->inst) != 0)
		sp->inst = NULL;
	dynshm_config_free(cfg);
	pthread_barrier_wait(&sp->bar); /* opened */
	pthread_barrier_wait(&sp->bar); /* may exit: the region with it */
	return NULL;
}

/*
 * Item 6: the region belongs to the creating thread, not the process: once
 * that thread exited, processes that mapped the region get a clean error,
 * not an address in a torn-down region.
 */
static void test_owner_thread_exits(void **state)
{
	struct sup sp = { .f = *state };
	dynshm_instance_info info;
	dynshm_instance *a, *b;
	dynshm_segment *seg = NULL, *seg2 = NULL;
	dynshm_handle h;
	pthread_t t;

	fake_install(3);
	assert_int_equal(pthread_barrier_init(&sp.bar, NULL, 2), 0);
	assert_int_equal(pthread_create(&t, NULL, supervisor_thread, &sp), 0);
	pthread_barrier_wait(&sp.bar);
	assert_non_null(sp.inst);
	a = open_inst(sp.f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 1);
	ASSERT_OK(dynshm_create(a, 4096, 0, &seg));
	strcpy(dynshm_segment_address(seg), "placed");
	h = dynshm_segment_handle(seg);
	b = open_inst(sp.f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 1);
	pthread_barrier_wait(&sp.bar);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* the thread exited (the process lives on): the kernel tears down */
	assert_int_equal(fake_mshare_wait_teardown(1), 1);
	assert_int_equal(read_in_child(dynshm_segment_address(seg), "placed"),
			 128 + SIGSEGV);
	assert_int_equal(dynshm_attach(b, h, &seg2), -ESRCH);
	if (!strstr(dynshm_last_error(), "died with its owner"))
		fail_msg("message '%s'", dynshm_last_error());
	assert_int_equal(dynshm_create(b, 4096, 0, &seg2), -ESRCH);
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_instance_close(b));
	ASSERT_OK(dynshm_instance_close(a));
	ASSERT_OK(dynshm_instance_close(sp.inst));
	pthread_barrier_destroy(&sp.bar);
	destroy_inst(sp.f);
}

/*
 * Item 7: an mshare_path with a space works (the record keeps the path to
 * the end of its line); one with a newline is refused by the configuration.
 */
static void test_path_with_space(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *s, *b;
	dynshm_config *cfg = config("off", NULL);
	char saved[PATH_MAX];

	assert_int_equal(dynshm_config_set(cfg, "mshare_path", "/a\nb"), -EINVAL);
	dynshm_config_free(cfg);
	snprintf(saved, sizeof(saved), "%s", fake_mount);
	snprintf(fake_mount, sizeof(fake_mount), "%s/ms hare", f->dir);
	assert_int_equal(mkdir(fake_mount, 0700), 0);
	fake_install(3);
	s = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	b = open_inst(f, "off", 0, &info); /* joiners follow the instance */
	assert_int_equal(info.mshare_active, 1);
	ASSERT_OK(dynshm_instance_close(b));
	ASSERT_OK(dynshm_instance_destroy(s));
	assert_int_equal(region_files(), 0);
	snprintf(fake_mount, sizeof(fake_mount), "%s", saved);
}

/* Replace the record's line that starts with key by "key value". */
static void scribble(const struct fixture *f, const char *key,
		     const char *value, char *saved, size_t len)
{
	char path[PATH_MAX + 16], text[PATH_MAX + 512], out[PATH_MAX + 512];
	char *line, *save = NULL;
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/mshare", f->inst);
	fp = fopen(path, "r");
	assert_non_null(fp);
	text[fread(text, 1, sizeof(text) - 1, fp)] = '\0';
	fclose(fp);
	if (saved)
		snprintf(saved, len, "%s", text);
	out[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ' ')
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s %s\n",
					      key, value);
		else
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s\n",
					      line);
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(out, fp);
	fclose(fp);
}

static void restore_record(const struct fixture *f, const char *text)
{
	char path[PATH_MAX + 16];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/mshare", f->inst);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void expect_corrupt(const struct fixture *f, const char *what)
{
	dynshm_config *cfg = config("try", fake_mount);
	dynshm_instance *b = NULL;

	assert_int_equal(dynshm_instance_open(f->inst, cfg, 0, &b), -EUCLEAN);
	dynshm_config_free(cfg);
	if (!strstr(dynshm_last_error(), what))
		fail_msg("message '%s' lacks '%s'", dynshm_last_error(), what);
}

/*
 * Item 8: every record field is checked before use, and destroy removes
 * only the instance's own region file.
 */
static void test_record_checked(void **state)
{
	struct fixture *f = *state;
	char saved[PATH_MAX + 512], victim[PATH_MAX + 32];
	dynshm_instance_info info;
	dynshm_instance *s;
	struct stat st;
	FILE *fp;

	fake_install(3);
	s = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	scribble(f, "window", "2147483648", saved, sizeof(saved));
	expect_corrupt(f, "window");
	restore_record(f, saved);
	scribble(f, "size", "1073741824", NULL, 0);
	expect_corrupt(f, "size");
	restore_record(f, saved);
	scribble(f, "address", "7f0000000123", NULL, 0);
	expect_corrupt(f, "address");
	restore_record(f, saved);
	scribble(f, "address", "fffffffffffff000", NULL, 0);
	expect_corrupt(f, "address");
	restore_record(f, saved);
	/* a path to something else: never joined, never removed */
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	fp = fopen(victim, "w");
	assert_non_null(fp);
	fclose(fp);
	scribble(f, "path", victim, NULL, 0);
	expect_corrupt(f, "path");
	ASSERT_OK(dynshm_instance_destroy(s));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(unlink(victim), 0);
	/* the region file, by name, is gone all the same */
	assert_int_equal(region_files(), 0);
}

#else /* !DYNSHM_HAVE_MSHARE */

static void test_built_without(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_config *cfg;

	inst = open_inst(f, "try", DYNSHM_OPEN_SUPERVISOR, &info);
	ASSERT_STATUS(&info, "built without mshare support");
	ASSERT_OK(dynshm_instance_close(inst));
	cfg = config("on", fake_mount);
	assert_int_equal(dynshm_instance_open(f->inst, cfg,
					   DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET,
					   &inst),
			 -ENOTSUP);
	dynshm_config_free(cfg);
	destroy_inst(f);
}

#endif

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_real_kernel_fallback),
		T(test_config_keys),
		T(test_off),
#if DYNSHM_HAVE_MSHARE
		T(test_v3_sequence),
		T(test_old_abi_v1),
		T(test_v2_no_fd_objects),
		T(test_not_msharefs),
		T(test_bad_mshare_info),
		T(test_no_supervisor),
		T(test_sysv_has_no_fd),
		T(test_supervisor_late),
		T(test_supervisor_after_the_dead),
		T(test_failures_back_out),
		T(test_place_arguments),
		T(test_owner_gone),
		T(test_kill9_after_place),
		T(test_reaped_at_open),
		T(test_placed_init_fails),
		T(test_destroy_keeps_windows),
		T(test_replaced_region),
		T(test_fork_sees_new_region),
		T(test_reap_in_join_unplaces),
		T(test_stale_region_file),
		T(test_owner_thread_exits),
		T(test_path_with_space),
		T(test_record_checked),
#else
		T(test_built_without),
#endif
	};

	dynshm_test_instance_tag = TEST_TAG;
	return cmocka_run_group_tests_name("mshare", tests, NULL, NULL);
}
