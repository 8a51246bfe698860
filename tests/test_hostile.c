/* SPDX-License-Identifier: MIT */
/*
 * test_hostile.c - what a careless or malicious caller, a full file system
 * and a storm of signals can throw at the wrapper layer.
 *
 * Each case says what must happen instead of a crash, a leak or a wrong
 * mapping:
 *   handles   random, stale, another instance's, and one whose slot was
 *             reused: -ENOENT from attach, stat, pin changes and destroy,
 *             and not one mapping appears in /proc/self/maps;
 *   sizes     0, 1, page-unaligned, SIZE_MAX, larger than /dev/shm, larger
 *             than the SysV shmmax (set small in a private IPC namespace):
 *             a clear error, and no object or slot left;
 *   full fs   the instance directory (mmap) or /dev/shm (posix) is a 1 MiB
 *             tmpfs in a private mount namespace: -ENOSPC at create, no
 *             SIGBUS when touching what was created, older segments intact;
 *   EINTR     an interval timer fires every few microseconds into a handler
 *             installed without SA_RESTART while segments are created and
 *             destroyed: every call succeeds or fails cleanly, nothing leaks;
 *   lock      a sleeper woken by the release of the control lock is killed
 *             before it runs while a newcomer barges in: the other sleeper
 *             must still get the lock (the kill storm's hang, made
 *             deterministic with SCHED_IDLE and a busy process);
 *   files     the instance directory, state and lock files, the control
 *             segment and segments with the wrong mode, replaced by a
 *             symbolic link, or (as root) owned by someone else: refused
 *             with -EACCES and a message naming the path and the reason;
 *   dropped   a member that joined as the owner and dropped to nobody
 *             (setresuid) may not create objects the owner cannot use;
 *   namespace an open from another IPC namespace, with a /dev/shm of its
 *             own, or with the mmap directory hidden: -EXDEV, and the
 *             instance left whole (it used to be wiped and replaced).
 * One CMocka group per backend.  Cases that need root or namespaces skip.
 * Runs alone (is_parallel: false): sysv objects share the test tag.
 */
#include "inject.h"
#include "testutil.h"

#include "src/control.h"

#include <dynshm/dsm.h>
#include <dynshm/dsm_impl.h>

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
#include <grp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

static const struct test_backend *be;
static char *dir;	      /* the test's directory */
static char inst_dir[4200];   /* dir/inst: the instance directory */
static char *other_dir;	      /* owned by nobody in test_other_user */
static char planted[256];     /* the object nobody put into /dev/shm */

/* ---- helpers ---------------------------------------------------------- */

static dynshm_config *config(void)
{
	dynshm_config *cfg = NULL;

	assert_int_equal(dynshm_config_new(&cfg), 0);
	assert_int_equal(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					be->name),
			 0);
	assert_int_equal(dynshm_config_set(cfg, "max_segments", "16"), 0);
	assert_int_equal(dynshm_config_set(cfg, "max_processes", "8"), 0);
	return cfg;
}

static int open_at(const char *where, unsigned flags, dynshm_instance **out)
{
	dynshm_config *cfg = config();
	int rc = dynshm_instance_open(where, cfg, flags, out);

	dynshm_config_free(cfg);
	return rc;
}

static dynshm_instance *xopen(void)
{
	dynshm_instance *inst = NULL;
	int rc = open_at(inst_dir, 0, &inst);

	if (rc != 0)
		fail_msg("open %s: %d %s", inst_dir, rc, dynshm_last_error());
	return inst;
}

static uint64_t id_of(dynshm_instance *inst)
{
	static dynshm_instance_info info;

	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	return info.instance_id;
}

static uint32_t nsegments(dynshm_instance *inst)
{
	static dynshm_instance_info info;

	assert_int_equal(dynshm_instance_info_get(inst, &info, sizeof(info)),
			 0);
	return info.segments;
}

/* Mappings of this process whose path names a dynshm object or SysV shm. */
static int our_mappings(void)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/dynshm.") || strstr(line, "/SYSV"))
			n++;
	fclose(f);
	return n;
}

/* Objects of the backend with this instance's prefix, read by the library. */
static int count_cb(dynshm_handle h, const char *name, void *arg)
{
	(void)h, (void)name;
	++*(int *)arg;
	return 0;
}

static int objects_of(uint64_t id)
{
	dynshm_impl_space *space = NULL;
	int n = 0, rc = dynshm_impl_space_open(be->type, id, inst_dir, &space);

	if (rc == -ENOENT && be->type == DYNSHM_IMPL_MMAP)
		return 0; /* the instance directory went with the instance */
	assert_int_equal(rc, 0);
	assert_int_equal(dynshm_impl_list(space, count_cb, &n), 0);
	dynshm_impl_space_close(space);
	return n;
}

static void assert_message_has(const char *what)
{
	const char *msg = dynshm_last_error();

	if (!strstr(msg, what))
		fail_msg("message \"%s\" does not mention \"%s\"", msg, what);
}

static int setup(void **state)
{
	(void)state;
	dir = test_make_dir();
	if (!dir)
		return -1;
	snprintf(inst_dir, sizeof(inst_dir), "%s/inst", dir);
	return 0;
}

static void remove_instance(const char *where)
{
	dynshm_instance *inst = NULL;

	if (access(where, F_OK) == 0 &&
	    open_at(where, DYNSHM_OPEN_RESET, &inst) == 0)
		dynshm_instance_destroy(inst);
}

static int teardown(void **state)
{
	static char report[4096];
	char other[4300];
	int n;

	(void)state;
	test_handover_reap(); /* first: a killed lock holder frees the lock */
	/* whatever a failed test left: a reset then destroy removes it */
	remove_instance(inst_dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	remove_instance(other);
	test_remove_dir(dir);
	test_remove_dir(other_dir);
	other_dir = NULL;
	if (planted[0])
		shm_unlink(planted);
	planted[0] = '\0';
	dir = NULL;
	n = test_count_leftovers(report, sizeof(report));
	if (n != 0) {
		fprintf(stderr, "teardown: %d leftover(s):\n%s", n, report);
		return -1;
	}
	return 0;
}

/* ---- handles ------------------------------------------------------------ */

static void assert_refused(dynshm_instance *inst, dynshm_handle h)
{
	dynshm_segment *seg = NULL;
	dynshm_segment_info info;
	int maps = our_mappings();

	assert_int_equal(dynshm_attach(inst, h, &seg), -ENOENT);
	assert_null(seg);
	assert_message_has("not found");
	assert_int_equal(dynshm_stat(inst, h, &info, sizeof(info)), -ENOENT);
	assert_int_equal(dynshm_unpin_segment(inst, h), -ENOENT);
	assert_int_equal(dynshm_destroy(inst, h), -ENOENT);
	assert_int_equal(our_mappings(), maps);
}

static void test_handles(void **state)
{
	dynshm_instance *inst = xopen(), *other = NULL;
	dynshm_segment *a = NULL, *b = NULL, *o = NULL;
	dynshm_handle stale, reused_slot;
	char other_path[4300];

	(void)state;
	/* random handles, and the shapes that might confuse a lookup */
	for (int i = 0; i < 200; i++)
		assert_refused(inst, test_random_handle());
	assert_refused(inst, DYNSHM_HANDLE_INVALID);
	assert_refused(inst, UINT64_MAX);
	assert_refused(inst, CTL_HANDLE);
	assert_refused(inst, HANDLE_SLOT_MASK);

	/* stale: destroyed, and the slot then reused by a new segment */
	assert_int_equal(dynshm_create(inst, 4096, 0, &a), 0);
	stale = dynshm_segment_handle(a);
	assert_int_equal(dynshm_detach(a), 0);
	assert_refused(inst, stale);
	assert_int_equal(dynshm_create(inst, 4096, 0, &b), 0);
	reused_slot = dynshm_segment_handle(b);
	assert_int_equal(reused_slot & HANDLE_SLOT_MASK,
			 stale & HANDLE_SLOT_MASK);
	assert_refused(inst, stale);
	/* the same slot and generation but another random part: forged */
	assert_refused(inst, reused_slot ^ ((uint64_t)1 << HANDLE_RAND_SHIFT));
	assert_refused(inst, reused_slot ^ ((uint64_t)1 << HANDLE_GEN_SHIFT));

	/* another instance's live handle */
	snprintf(other_path, sizeof(other_path), "%s/other", dir);
	assert_int_equal(open_at(other_path, 0, &other), 0);
	assert_int_equal(dynshm_create(other, 4096, 0, &o), 0);
	assert_refused(inst, dynshm_segment_handle(o));
	assert_int_equal(dynshm_instance_destroy(other), 0);

	assert_int_equal(dynshm_detach(b), 0);
	assert_int_equal(nsegments(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- sizes -------------------------------------------------------------- */

static void assert_create_fails(dynshm_instance *inst, size_t size, int err,
				const char *says)
{
	uint64_t id = id_of(inst);
	int before = objects_of(id), maps = our_mappings();
	dynshm_segment *seg = NULL;
	int rc = dynshm_create(inst, size, 0, &seg);

	if (rc != -err)
		fail_msg("create of %zu bytes: %d, expected %d (%s)", size, rc,
			 -err, dynshm_last_error());
	assert_null(seg);
	assert_message_has(says);
	assert_int_equal(nsegments(inst), 0);
	assert_int_equal(objects_of(id), before);
	assert_int_equal(our_mappings(), maps);
}

static void test_sizes(void **state)
{
	dynshm_instance *inst = xopen();
	long page = sysconf(_SC_PAGESIZE);
	size_t odd[] = { 1, 2, (size_t)page - 1, (size_t)page + 1, 3 * 4096 + 7 };
	struct statvfs vfs;

	(void)state;
	assert_create_fails(inst, 0, EINVAL, "sizes: 1 to");
	assert_create_fails(inst, SIZE_MAX, EINVAL, "sizes: 1 to");
	assert_create_fails(inst, DYNSHM_IMPL_MAX_SIZE + 1, EINVAL, "sizes");
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		dynshm_segment *seg = NULL;
		unsigned char *p;

		assert_int_equal(dynshm_create(inst, odd[i], 0, &seg), 0);
		assert_true(dynshm_segment_size(seg) >= odd[i]);
		p = dynshm_segment_address(seg);
		p[0] = 1;
		p[odd[i] - 1] = 2; /* the last byte asked for is there */
		assert_int_equal(dynshm_detach(seg), 0);
	}
	/* larger than all of /dev/shm: refused at once, never a SIGBUS later */
	if (be->type == DYNSHM_IMPL_POSIX && statvfs("/dev/shm", &vfs) == 0) {
		size_t total = (size_t)vfs.f_blocks * vfs.f_frsize;

		if (total < DYNSHM_IMPL_MAX_SIZE / 2)
			assert_create_fails(inst, total + (size_t)page, ENOSPC,
					    "cannot allocate");
	}
	assert_int_equal(nsegments(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* In a private IPC namespace, lower shmmax and exceed it. */
static int shmmax_child(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	const char *where = arg;
	int fd, rc;

	if (unshare(CLONE_NEWIPC) < 0)
		return TEST_SKIP;
	fd = open("/proc/sys/kernel/shmmax", O_WRONLY);
	if (fd < 0 || write(fd, "1048576", 7) != 7)
		return TEST_SKIP;
	close(fd);
	CHILD_CHECK(open_at(where, 0, &inst) == 0);
	rc = dynshm_create(inst, 2 << 20, 0, &seg);
	fprintf(stderr, "create of 2 MiB with shmmax 1 MiB: %d (%s)\n", rc,
		dynshm_last_error());
	CHILD_CHECK(rc == -EINVAL);
	CHILD_CHECK(strstr(dynshm_last_error(), "shmmax") != NULL);
	CHILD_CHECK(nsegments(inst) == 0);
	CHILD_CHECK(dynshm_create(inst, 1 << 20, 0, &seg) == 0);
	CHILD_CHECK(dynshm_detach(seg) == 0);
	CHILD_CHECK(dynshm_instance_destroy(inst) == 0);
	return 0;
}

static void test_sysv_shmmax(void **state)
{
	int rc;

	(void)state;
	if (be->type != DYNSHM_IMPL_SYSV)
		skip();
	if (!test_is_root())
		skip();
	rc = test_fork(shmmax_child, inst_dir);
	if (rc == TEST_SKIP)
		skip();
	assert_int_equal(rc, 0);
}

/* ---- a full file system -------------------------------------------------- */

static int private_tmpfs(const char *target, const char *mode)
{
	char options[64];

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		return TEST_SKIP;
	snprintf(options, sizeof(options), "size=1m,mode=%s", mode);
	if (mount("dynshm-test", target, "tmpfs", MS_NOSUID | MS_NODEV,
		  options) < 0)
		return TEST_SKIP;
	return 0;
}

static void fill(unsigned char *p, size_t n, unsigned char v)
{
	memset(p, v, n);
}

static bool filled(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static int full_child(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *small = NULL, *big = NULL, *more = NULL;
	const char *where = arg;
	int rc;

	(void)arg;
	rc = be->type == DYNSHM_IMPL_POSIX ? private_tmpfs("/dev/shm", "1777")
					: private_tmpfs(dir, "0700");
	if (rc != 0)
		return rc;
	CHILD_CHECK(open_at(where, 0, &inst) == 0);
	CHILD_CHECK(dynshm_create(inst, 256 << 10, 0, &small) == 0);
	fill(dynshm_segment_address(small), 256 << 10, 0x5a);
	rc = dynshm_create(inst, 2 << 20, 0, &big);
	fprintf(stderr, "%s: create of 2 MiB in a 1 MiB fs: %d (%s)\n",
		be->name, rc, dynshm_last_error());
	CHILD_CHECK(rc == -ENOSPC);
	CHILD_CHECK(big == NULL);
	CHILD_CHECK(nsegments(inst) == 1);
	CHILD_CHECK(filled(dynshm_segment_address(small), 256 << 10, 0x5a));
	/* what does get created is backed: touching all of it is no SIGBUS */
	CHILD_CHECK(dynshm_create(inst, 512 << 10, 0, &more) == 0);
	fill(dynshm_segment_address(more), 512 << 10, 0xa5);
	CHILD_CHECK(filled(dynshm_segment_address(small), 256 << 10, 0x5a));
	CHILD_CHECK(dynshm_detach(more) == 0);
	CHILD_CHECK(dynshm_detach(small) == 0);
	CHILD_CHECK(dynshm_instance_destroy(inst) == 0);
	return 0;
}

static void test_full_fs(void **state)
{
	char where[4300];
	int rc;

	(void)state;
	if (be->type == DYNSHM_IMPL_SYSV || !test_is_root())
		skip(); /* sysv memory is not file-system backed */
	/* the instance lives on the small tmpfs mounted over dir */
	snprintf(where, sizeof(where), "%s/inst", dir);
	rc = test_fork(full_child, where);
	if (rc == TEST_SKIP)
		skip();
	assert_int_equal(rc, 0);
}

/* ---- EINTR storm ----------------------------------------------------------- */

static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

static int print_left(const dynshm_segment_info *info, void *arg)
{
	(void)arg;
	print_message("left: segment %016" PRIx64 " state %d refs %u pinned "
		      "%d\n",
		      info->handle, (int)info->state, info->references,
		      info->pinned);
	return 0;
}

static void test_eintr_storm(void **state)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 20 }, { 0, 20 } }, stop = { { 0, 0 },
								{ 0, 0 } };
	dynshm_instance *inst = NULL;
	int fds = test_count_fds(), ok = 0, failed = 0;
	uint64_t id;

	(void)state;
	/*
	 * Under valgrind a signal costs more than the 20 us between ticks,
	 * so no system call ever completes (seen: open spinning for 14 min).
	 * The native and ASan runs cover EINTR handling.
	 */
	if (test_under_valgrind())
		skip();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tick; /* no SA_RESTART: calls see EINTR */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	ticks = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(open_at(inst_dir, 0, &inst), 0);
	for (int i = 0; i < 300; i++) {
		dynshm_segment *seg = NULL;
		int rc = dynshm_create(inst, 4096 + (size_t)i * 512, 0, &seg);

		if (rc == 0) {
			ok++;
			memset(dynshm_segment_address(seg), 1, 4096);
			assert_int_equal(dynshm_detach(seg), 0);
		} else {
			failed++;
			assert_null(seg);
			assert_true(dynshm_last_error()[0] != '\0');
		}
	}
	assert_int_equal(setitimer(ITIMER_REAL, &stop, NULL), 0);
	/*
	 * The handler stays: a tick already pending (valgrind delivers
	 * signals late) must not find SIGALRM's default action, which kills.
	 */
	print_message("%s: %d creates succeeded, %d failed, %d signals\n",
		      be->name, ok, failed, (int)ticks);
	assert_true(ticks > 0);
	if (be->type == DYNSHM_IMPL_MMAP) {
		/* the unlink of the last detach itself interrupted, once */
		dynshm_segment *seg = NULL;

		assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
		inject_fail("unlinkat", 1, EINTR);
		assert_int_equal(dynshm_detach(seg), 0);
		assert_int_equal(inject_calls("unlinkat"), 2);
		inject_reset();
	}
	assert_int_equal(dynshm_foreach_segment(inst, print_left, NULL), 0);
	assert_int_equal(nsegments(inst), 0);
	id = id_of(inst);
	assert_int_equal(objects_of(id), 1); /* the control segment */
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	assert_int_equal(objects_of(id), 0);
	assert_int_equal(test_count_fds(), fds);
}

/* ---- lock hand-over ------------------------------------------------------------ */

static dynshm_handle pinned_handle;

static void hold_hook(const char *point)
{
	if (strcmp(point, "attach:referenced") == 0)
		test_holder_holding();
}

/* The holder: an attach holds the control lock at "attach:referenced". */
static int hold_control_lock(void *inst)
{
	dynshm_segment *seg = NULL;

	dynshm_test_hook = hold_hook;
	return dynshm_attach(inst, pinned_handle, &seg) == 0 ? 0 : 1;
}

/* A sleeper: an instance_info_get takes the control lock once. */
static int take_control_lock(void *inst)
{
	static dynshm_instance_info info;

	return dynshm_instance_info_get(inst, &info, sizeof(info)) == 0 ? 0 : 1;
}

/*
 * The hand-over round of testutil.h on the control lock: the kill storm's
 * hang with a plain robust mutex (see src/control.c).
 */
static void test_lock_handover(void **state)
{
	dynshm_instance *inst = xopen();
	const struct test_handover ho = { hold_control_lock, take_control_lock,
					  inst };
	dynshm_segment *seg = NULL;
	int hung = 0;

	(void)state;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		assert_int_equal(dynshm_instance_destroy(inst), 0);
		skip(); /* the hog would starve the test itself */
	}
	assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
	assert_int_equal(dynshm_pin_segment(seg), 0);
	pinned_handle = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_detach(seg), 0);
	for (int round = 0; round < 20 && !hung; round++)
		hung = test_handover_round(&ho) != 0;
	assert_false(hung);
	assert_int_equal(dynshm_unpin_segment(inst, pinned_handle), 0);
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(nsegments(inst), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- modes and symbolic links ----------------------------------------------- */

/* Opening must fail with -EACCES and a message naming path and reason. */
static void assert_open_refused(const char *path, const char *why)
{
	dynshm_instance *inst = NULL;
	int rc = open_at(inst_dir, 0, &inst);

	if (rc != -EACCES)
		fail_msg("open with %s: %d, expected -EACCES (%s)", path, rc,
			 rc == 0 ? "opened" : dynshm_last_error());
	assert_message_has(path);
	assert_message_has(why);
}

static void path_in(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", inst_dir, file);
}

static void test_file_modes(void **state)
{
	dynshm_instance *inst = xopen();
	char path[4400];
	struct stat st;

	(void)state;
	assert_int_equal(dynshm_instance_close(inst), 0);
	/* what open creates is private */
	assert_int_equal(stat(inst_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	path_in(path, sizeof(path), "state");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	path_in(path, sizeof(path), "lock");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* and a wider mode is refused, each in turn */
	assert_int_equal(chmod(inst_dir, 0755), 0);
	assert_open_refused(inst_dir, "mode 0755");
	assert_int_equal(chmod(inst_dir, 0700), 0);
	path_in(path, sizeof(path), "state");
	assert_int_equal(chmod(path, 0644), 0);
	assert_open_refused(path, "mode 0644");
	assert_int_equal(chmod(path, 0600), 0);
	path_in(path, sizeof(path), "lock");
	assert_int_equal(chmod(path, 0660), 0);
	assert_open_refused(path, "mode 0660");
	assert_int_equal(chmod(path, 0600), 0);
	inst = xopen();
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* Move path aside and put a symbolic link to the original in its place. */
static void plant_link(const char *path, char *aside, size_t len)
{
	snprintf(aside, len, "%s.real", path);
	assert_int_equal(rename(path, aside), 0);
	assert_int_equal(symlink(aside, path), 0);
}

static void unplant_link(const char *path, const char *aside)
{
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(aside, path), 0);
}

/* A file-backed object (posix or mmap) of handle h: its path. */
static bool object_path(uint64_t id, dynshm_handle h, char *buf, size_t len)
{
	dynshm_impl_space *space = NULL;
	char name[DYNSHM_IMPL_NAME_MAX];

	assert_int_equal(dynshm_impl_space_open(be->type, id, inst_dir, &space),
			 0);
	assert_int_equal(dynshm_impl_object_name(space, h, name, sizeof(name)), 0);
	dynshm_impl_space_close(space);
	if (be->type == DYNSHM_IMPL_POSIX)
		snprintf(buf, len, "/dev/shm%s", name);
	else if (be->type == DYNSHM_IMPL_MMAP)
		snprintf(buf, len, "%s", name);
	else
		return false;
	return true;
}

static void test_object_modes(void **state)
{
	dynshm_instance *inst = xopen(), *second = NULL;
	dynshm_segment *seg = NULL, *again = NULL;
	char path[DYNSHM_IMPL_NAME_MAX + 16];
	uint64_t id = id_of(inst);
	dynshm_handle h;

	(void)state;
	if (be->type == DYNSHM_IMPL_SYSV) {
		assert_int_equal(dynshm_instance_destroy(inst), 0);
		skip(); /* covered by test_impl: IPC_SET mode */
	}
	assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
	assert_int_equal(dynshm_pin_segment(seg), 0);
	h = dynshm_segment_handle(seg);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_true(object_path(id, h, path, sizeof(path)));
	/* a segment another user could read */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(dynshm_attach(inst, h, &again), -EACCES);
	assert_message_has("mode 0644");
	assert_int_equal(chmod(path, 0600), 0);
	/* a control segment another user could write */
	assert_true(object_path(id, CTL_HANDLE, path, sizeof(path)));
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(open_at(inst_dir, 0, &second), -EACCES);
	assert_message_has("mode 0666");
	assert_int_equal(chmod(path, 0600), 0);
	/* a symbolic link planted where the segment was */
	assert_true(object_path(id, h, path, sizeof(path)));
	{
		char aside[DYNSHM_IMPL_NAME_MAX + 32];

		plant_link(path, aside, sizeof(aside));
		assert_int_equal(dynshm_attach(inst, h, &again), -EACCES);
		assert_message_has("symbolic link");
		unplant_link(path, aside);
	}
	assert_int_equal(dynshm_attach(inst, h, &again), 0);
	assert_int_equal(dynshm_unpin_segment(inst, h), 0);
	assert_int_equal(dynshm_detach(again), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

static void test_symlinks(void **state)
{
	dynshm_instance *inst = xopen();
	char path[4400], aside[4500];
	const char *files[] = { "state", "lock" };

	(void)state;
	assert_int_equal(dynshm_instance_close(inst), 0);
	for (size_t i = 0; i < 2; i++) {
		path_in(path, sizeof(path), files[i]);
		plant_link(path, aside, sizeof(aside));
		assert_open_refused(path, "symbolic link");
		unplant_link(path, aside);
	}
	plant_link(inst_dir, aside, sizeof(aside));
	assert_open_refused(inst_dir, "symbolic link");
	unplant_link(inst_dir, aside);
	inst = xopen();
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/*
 * A FIFO planted in place of a private file: the open must refuse it, not
 * wait for a writer that never comes (an O_RDONLY open of a FIFO blocks).
 * The open runs in a child with an alarm, so a hang fails the test.
 */
static int open_refused_child(void *arg)
{
	dynshm_instance *inst = NULL;

	(void)arg;
	alarm(20);
	return open_at(inst_dir, 0, &inst) == -EACCES &&
			       strstr(dynshm_last_error(), "regular file") ?
		       0 :
		       1;
}

static void test_fifos(void **state)
{
	dynshm_instance *inst = xopen();
	const char *files[] = { "state", "procs", "lock" };
	char path[4400], aside[4500];

	(void)state;
	assert_int_equal(dynshm_instance_close(inst), 0);
	for (size_t i = 0; i < 3; i++) {
		int st;

		path_in(path, sizeof(path), files[i]);
		snprintf(aside, sizeof(aside), "%s.real", path);
		assert_int_equal(rename(path, aside), 0);
		assert_int_equal(mkfifo(path, 0600), 0);
		st = test_fork(open_refused_child, NULL);
		assert_int_equal(unlink(path), 0);
		assert_int_equal(rename(aside, path), 0);
		if (st != 0)
			fail_msg("a FIFO as '%s': the open %s", files[i],
				 st == 128 + SIGALRM ? "hung" : "was not refused");
	}
	inst = xopen();
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* The mmap backend's directory: no symlink, not open to others. */
static void test_mmap_directory(void **state)
{
	dynshm_impl_space *space = NULL;
	char seg_dir[4300], link[4300];

	(void)state;
	if (be->type != DYNSHM_IMPL_MMAP)
		skip();
	snprintf(seg_dir, sizeof(seg_dir), "%s/segs", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(mkdir(seg_dir, 0700), 0);
	assert_int_equal(symlink(seg_dir, link), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(),
					     link, &space),
			 -EACCES);
	assert_message_has("symbolic link");
	assert_int_equal(chmod(seg_dir, 0777), 0);
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(),
					     seg_dir, &space),
			 -EACCES);
	assert_message_has("writable by others");
	assert_int_equal(chmod(seg_dir, 01777), 0); /* sticky: like /tmp */
	assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP, test_instance_id(),
					     seg_dir, &space),
			 0);
	dynshm_impl_space_close(space);
	if (test_is_root()) {
		assert_int_equal(chmod(seg_dir, 0700), 0);
		assert_int_equal(chown(seg_dir, TEST_OTHER_UID, TEST_OTHER_UID),
				 0);
		assert_int_equal(dynshm_impl_space_open(DYNSHM_IMPL_MMAP,
						     test_instance_id(),
						     seg_dir, &space),
				 -EACCES);
		assert_message_has("belongs to uid 65534");
	}
}

/* As root: the instance directory or state file handed to another owner. */
static void test_foreign_owner(void **state)
{
	dynshm_instance *inst = NULL;
	char path[4400];

	(void)state;
	if (!test_is_root())
		skip();
	inst = xopen();
	assert_int_equal(dynshm_instance_close(inst), 0);
	path_in(path, sizeof(path), "state");
	assert_int_equal(chown(path, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	assert_open_refused(path, "uid 65534");
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(chown(inst_dir, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	assert_open_refused(inst_dir, "belongs to uid 65534");
	assert_int_equal(chown(inst_dir, 0, 0), 0);
	inst = xopen();
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- other users ----------------------------------------------------------- */

struct victim {
	uint64_t id;		/* the owner's instance */
	dynshm_handle h;		/* a live segment of it */
	char own_dir[4300];	/* a directory the other user owns */
};

static int drop_to_nobody(void)
{
	if (setgroups(0, NULL) < 0 ||
	    setresgid(TEST_OTHER_UID, TEST_OTHER_UID, TEST_OTHER_UID) < 0 ||
	    setresuid(TEST_OTHER_UID, TEST_OTHER_UID, TEST_OTHER_UID) < 0)
		return -1;
	return geteuid() == TEST_OTHER_UID ? 0 : -1;
}

#define REFUSED(call)                                                          \
	do {                                                                   \
		int rc_ = (call);                                              \
		fprintf(stderr, "as nobody: %s: %d (%s)\n", #call, rc_,        \
			dynshm_last_error());                                     \
		CHILD_CHECK(rc_ == -EACCES);                                   \
		CHILD_CHECK(dynshm_last_error()[0] != '\0');                      \
	} while (0)

/* As nobody: reach for the owner's instance every way the API offers. */
static int nobody_child(void *arg)
{
	const struct victim *v = arg;
	dynshm_instance *inst = NULL;
	dynshm_impl_space *space = NULL;
	dynshm_impl_map *map = NULL;
	char garbage[4400];
	int listed = 0, fd;

	CHILD_CHECK(drop_to_nobody() == 0);
	REFUSED(open_at(inst_dir, 0, &inst));
	REFUSED(open_at(inst_dir, DYNSHM_OPEN_RESET, &inst));
	REFUSED(open_at(inst_dir, DYNSHM_OPEN_EXISTING, &inst));
	if (be->type == DYNSHM_IMPL_MMAP) {
		REFUSED(dynshm_impl_space_open(be->type, v->id, inst_dir, &space));
	} else {
		CHILD_CHECK(dynshm_impl_space_open(be->type, v->id, inst_dir,
						&space) == 0);
		REFUSED(dynshm_impl_attach(space, v->h, &map));
		REFUSED(dynshm_impl_attach(space, CTL_HANDLE, &map));
		REFUSED(dynshm_impl_destroy(space, v->h));
		REFUSED(dynshm_impl_destroy(space, CTL_HANDLE));
		CHILD_CHECK(dynshm_impl_list(space, count_cb, &listed) == 0);
		CHILD_CHECK(listed == 0);
		dynshm_impl_space_close(space);
	}
	/* garbage where nobody can write: its own directory, /dev/shm */
	snprintf(garbage, sizeof(garbage), "%s/state", v->own_dir);
	fd = open(garbage, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(write(fd, "dynshm-state 1\ninstance_id 1\n\xff", 31) == 31);
	close(fd);
	snprintf(garbage, sizeof(garbage), "/dynshm.%016" PRIx64 ".%016" PRIx64,
		 v->id, test_random_handle());
	fd = shm_open(garbage, O_RDWR | O_CREAT | O_EXCL, 0666);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(write(fd, "garbage", 7) == 7);
	close(fd);
	printf("%s\n", garbage);
	fflush(stdout);
	return 0;
}

static void test_other_user(void **state)
{
	dynshm_instance *inst = NULL, *foreign = NULL;
	dynshm_segment *seg = NULL;
	struct victim *v = calloc(1, sizeof(*v));
	char *own = other_dir = test_make_dir();
	int out[2], rc, listed;
	FILE *f;

	(void)state;
	assert_non_null(v);
	assert_non_null(own);
	if (!test_is_root()) {
		free(v);
		skip();
	}
	inst = xopen();
	assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
	memcpy(dynshm_segment_address(seg), "secret", 7);
	v->id = id_of(inst);
	v->h = dynshm_segment_handle(seg);
	snprintf(v->own_dir, sizeof(v->own_dir), "%s", own);
	assert_int_equal(chown(own, TEST_OTHER_UID, TEST_OTHER_UID), 0);
	/* let nobody's output (the name it planted) back to us */
	assert_int_equal(pipe(out), 0);
	fflush(NULL);
	if (fork() == 0) {
		close(out[0]);
		dup2(out[1], 1);
		_exit(nobody_child(v));
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	if (!fgets(planted, sizeof(planted), f))
		planted[0] = '\0';
	fclose(f);
	planted[strcspn(planted, "\n")] = '\0';
	assert_int_equal(wait(&rc) > 0 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1,
			 0);
	/* the owner is unharmed and does not trust nobody's things */
	assert_memory_equal(dynshm_segment_address(seg), "secret", 7);
	assert_int_equal(open_at(own, 0, &foreign), -EACCES);
	assert_message_has("belongs to uid 65534");
	listed = objects_of(v->id);
	assert_int_equal(listed, 2); /* control segment and seg */
	assert_int_equal(dynshm_reap(inst, NULL), 0);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	/* nobody's object is nobody's: the owner's sweep left it alone */
	if (planted[0]) {
		assert_int_equal(shm_unlink(planted), 0);
		planted[0] = '\0';
	}
	free(v);
}

/*
 * A member that joins as the owner and then drops to another uid (a
 * prefork server's worker turning into its service user) made segments
 * owned by that uid: create said 0, and the owner could neither attach
 * nor destroy them ("belongs to uid 65534").  Its create must be refused.
 */
static int dropped_child(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	int rc;

	(void)arg;
	CHILD_CHECK(open_at(inst_dir, 0, &inst) == 0);
	CHILD_CHECK(drop_to_nobody() == 0);
	rc = dynshm_create(inst, 8192,
			   DYNSHM_CREATE_NO_REGION | DYNSHM_CREATE_PIN, &seg);
	fprintf(stderr, "dropped member: create: %d (%s)\n", rc,
		dynshm_last_error());
	CHILD_CHECK(rc == -EACCES);
	CHILD_CHECK(strstr(dynshm_last_error(), "privileges") != NULL);
	CHILD_CHECK(dynshm_instance_close(inst) == 0);
	return 0;
}

static void test_dropped_member(void **state)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = NULL;
	int rc;

	(void)state;
	if (!test_is_root())
		skip();
	inst = xopen();
	assert_int_equal(dynshm_create(inst, 4096, 0, &seg), 0);
	fflush(NULL);
	if (fork() == 0)
		_exit(dropped_child(NULL));
	assert_int_equal(wait(&rc) > 0 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1,
			 0);
	/* nothing the owner cannot use was published */
	assert_int_equal(nsegments(inst), 1);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
}

/* ---- another namespace ------------------------------------------------ */

/*
 * A process that sees the instance directory but not where its objects
 * live - another IPC namespace (sysv), a /dev/shm of its own (posix), a
 * private mount over the mmap directory - found the control object
 * "vanished" and wiped the instance under its processes (even a read-only
 * open did), then made another in its place.  It must be refused with
 * -EXDEV, and the instance left whole.
 */
static char seg_dir[4300]; /* the mmap backend's own directory here */

/* Look elsewhere than the test: a private IPC namespace, /dev/shm or seg_dir. */
static int enter_other_place(void)
{
	if (be->type == DYNSHM_IMPL_SYSV)
		return unshare(CLONE_NEWIPC) == 0 ? 0 : TEST_SKIP;
	return private_tmpfs(be->type == DYNSHM_IMPL_POSIX ? "/dev/shm" :
			     seg_dir, "0700");
}

static int other_ns_open(unsigned flags)
{
	dynshm_config *cfg = config();
	dynshm_instance *inst = NULL;
	int rc;

	if (be->type == DYNSHM_IMPL_MMAP)
		assert_int_equal(dynshm_config_set(cfg, "dynshm_directory",
						   seg_dir), 0);
	rc = dynshm_instance_open(inst_dir, cfg, flags, &inst);
	dynshm_config_free(cfg);
	if (rc == 0)
		dynshm_instance_close(inst);
	return rc;
}

static int other_ns_child(void *arg)
{
	int rc;

	(void)arg;
	alarm(20);
	rc = enter_other_place();
	if (rc != 0)
		return rc;
	for (int i = 0; i < 2; i++) {
		rc = other_ns_open(i ? DYNSHM_OPEN_EXISTING : 0);
		if (rc != -EXDEV || !strstr(dynshm_last_error(),
					    "another namespace")) {
			fprintf(stderr, "open from another namespace: %d "
				"(%s)\n", rc, dynshm_last_error());
			return 1;
		}
	}
	return 0;
}

/*
 * In the other namespace: die in a first open, after "pending" is
 * written - killed, as a crash would, which also spares valgrind's leak
 * check the instance the open was making.
 */
static void die_when_created(const char *point)
{
	if (strcmp(point, "open:created") == 0)
		raise(SIGKILL);
}

static int other_ns_half_open(void *arg)
{
	dynshm_instance *inst = NULL;
	dynshm_config *cfg = config();
	int rc;

	alarm(20);
	rc = enter_other_place();
	if (rc != 0)
		return rc;
	if (be->type == DYNSHM_IMPL_MMAP)
		CHILD_CHECK(dynshm_config_set(cfg, "dynshm_directory",
					      seg_dir) == 0);
	dynshm_test_hook = die_when_created;
	(void)dynshm_instance_open(arg, cfg, 0, &inst);
	return 1; /* the hook ends it */
}

static void test_other_namespace(void **state)
{
	dynshm_instance *inst = NULL, *again = NULL;
	dynshm_segment *seg = NULL;
	dynshm_config *cfg = config();
	char other[4300];
	uint64_t id;
	int rc;

	(void)state;
	if (!test_is_root())
		skip();
	snprintf(seg_dir, sizeof(seg_dir), "%s/segs", dir);
	assert_int_equal(mkdir(seg_dir, 0700), 0);
	if (be->type == DYNSHM_IMPL_MMAP)
		assert_int_equal(dynshm_config_set(cfg, "dynshm_directory",
						   seg_dir), 0);
	assert_int_equal(dynshm_instance_open(inst_dir, cfg, 0, &inst), 0);
	dynshm_config_free(cfg);
	id = id_of(inst);
	assert_int_equal(dynshm_create_named(inst, "kept", 4096,
					     DYNSHM_CREATE_PIN, &seg), 0);
	strcpy(dynshm_segment_address(seg), "still here");
	assert_int_equal(dynshm_detach(seg), 0);

	rc = test_fork(other_ns_child, NULL);
	if (rc == TEST_SKIP)
		skip();
	assert_int_equal(rc, 0);

	/* the instance and its segment are whole, for us and for a newcomer */
	assert_int_equal(id_of(inst), id);
	assert_int_equal(dynshm_attach_named(inst, "kept", &seg), 0);
	assert_string_equal(dynshm_segment_address(seg), "still here");
	assert_int_equal(dynshm_destroy(inst, dynshm_segment_handle(seg)), 0);
	assert_int_equal(dynshm_detach(seg), 0);
	assert_int_equal(other_ns_open(DYNSHM_OPEN_EXISTING), 0);
	assert_int_equal(open_at(inst_dir, DYNSHM_OPEN_EXISTING, &again), 0);
	assert_int_equal(id_of(again), id);
	assert_int_equal(dynshm_instance_close(again), 0);
	assert_int_equal(dynshm_instance_destroy(inst), 0);

	/*
	 * A first open there died half-way: its "pending" names an object we
	 * cannot see.  A first open here must not take it for gone (and
	 * overwrite the record); a reset may take the directory over.
	 */
	snprintf(other, sizeof(other), "%s/other", dir);
	assert_int_equal(test_fork(other_ns_half_open, other), 128 + SIGKILL);
	cfg = config();
	if (be->type == DYNSHM_IMPL_MMAP)
		assert_int_equal(dynshm_config_set(cfg, "dynshm_directory",
						   seg_dir), 0);
	assert_int_equal(dynshm_instance_open(other, cfg, 0, &inst), -EXDEV);
	assert_message_has("died half-way");
	assert_int_equal(dynshm_instance_open(other, cfg, DYNSHM_OPEN_RESET,
					      &inst), 0);
	dynshm_config_free(cfg);
	assert_int_equal(dynshm_instance_destroy(inst), 0);
	assert_int_equal(rmdir(seg_dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysv_shmmax, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_fs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eintr_storm, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lock_handover, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_file_modes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_object_modes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fifos, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmap_directory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_foreign_owner, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_user, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dropped_member, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_other_namespace, setup,
						teardown),
	};
	int failed = 0;

	dynshm_test_instance_tag = TEST_TAG;
	for (size_t b = 0; b < test_n_real_backends; b++) {
		char name[32];

		be = &test_real_backends[b];
		snprintf(name, sizeof(name), "hostile-%s", be->name);
		failed += cmocka_run_group_tests_name(name, tests, NULL, NULL);
	}
	return failed ? 1 : 0;
}
