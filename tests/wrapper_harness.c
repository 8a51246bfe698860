/* SPDX-License-Identifier: MIT */
/*
 * wrapper_harness.c - the fixture, helpers and exec'd children shared by
 * the wrapper-layer test programs (see wrapper_harness.h for how they
 * test), and wrapper_main(), which runs a program's tests per backend.
 */
#include "wrapper_harness.h"

#include "inject.h"
#include "src/control.h"
#include "src/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dsm_assert.h"

/* ---- the table of backends ----------------------------------------------- */

static const struct step posix_create[] = {
	{ "shm_open", false, true },
	{ "ftruncate", true, false },
	{ "posix_fallocate", true, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step posix_attach[] = {
	{ "shm_open", false, false },
	{ "fstat", false, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step sysv_create[] = {
	{ "shmget", false, true },
	{ "shmat", false, false },
	{ NULL, false, false },
};
/* by the shmid its slot recorded: no shmget (issue 13, item 1) */
static const struct step sysv_attach[] = {
	{ "shmctl", false, false },
	{ "shmat", false, false },
	{ NULL, false, false },
};
static const struct step mmap_create[] = {
	{ "openat", false, true },
	{ "ftruncate", true, false },
	{ "posix_fallocate", true, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};
static const struct step mmap_attach[] = {
	{ "openat", false, false },
	{ "fstat", false, false },
	{ "mmap", false, false },
	{ NULL, false, false },
};

const struct backend backends[] = {
	{ "posix", DYNSHM_IMPL_POSIX, "mmap", posix_create, posix_attach,
	  "shm_unlink", 1 },
	/* shmget, shmctl(IPC_STAT), shmctl(IPC_RMID) */
	{ "sysv", DYNSHM_IMPL_SYSV, "posix", sysv_create, sysv_attach, "shmctl", 2 },
	{ "mmap", DYNSHM_IMPL_MMAP, "posix", mmap_create, mmap_attach, "unlinkat",
	  1 },
	{ "none", DYNSHM_IMPL_NONE, "posix", NULL, NULL, NULL, 0 },
};

const size_t n_backends = sizeof(backends) / sizeof(backends[0]);

/* ---- fixture ------------------------------------------------------------- */

static const struct backend *current;
static struct fixture the_fixture;
/* CMocka 1.1 does not count failed fixtures: count them ourselves. */
static int fixture_failures;

static int group_setup(void **state)
{
	memset(&the_fixture, 0, sizeof(the_fixture));
	the_fixture.be = current;
	for (int i = 0; i < MAX_FDS; i++)
		the_fixture.fds[i] = -1;
	*state = &the_fixture;
	return 0;
}

static int check_leftovers(const char *when)
{
	if (test_check_leftovers(when) == 0)
		return 0;
	fixture_failures++;
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return check_leftovers(current->name);
}

int test_setup(void **state)
{
	struct fixture *f = *state;

	inject_reset();
	dynshm_test_hook = NULL;
	dynshm_clear_error();
	for (int i = 0; i < MAX_FDS; i++)
		f->fds[i] = -1;
	f->dir = test_make_dir();
	if (!f->dir) {
		fprintf(stderr, "cannot make a test directory: %s\n",
			strerror(errno));
		fixture_failures++;
		return -1;
	}
	return 0;
}

/*
 * Destroy every instance whose directory a test left in its directory
 * (a failed test, or children killed mid-way); how many there were.
 */
static int sweep_instances(struct fixture *f)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(f->dir);

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX], state_file[PATH_MAX + 8];
		dynshm_instance *inst = NULL;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		snprintf(state_file, sizeof(state_file), "%s/state", path);
		if (lstat(state_file, &st) < 0)
			continue;
		fprintf(stderr, "teardown: instance %s was left\n", path);
		n++;
		if (dynshm_instance_open(path, NULL, DYNSHM_OPEN_EXISTING, &inst) ==
		    0)
			dynshm_instance_destroy(inst);
		else
			fprintf(stderr, "teardown: cannot open %s: %s\n", path,
				dynshm_last_error());
	}
	closedir(d);
	return n;
}

int test_teardown(void **state)
{
	struct fixture *f = *state;
	int bad = 0;

	inject_reset();
	dynshm_test_hook = NULL;
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			test_wait(f->kids[i]);
			f->kids[i] = 0;
		}
	}
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		f->fds[i] = -1;
	}
	for (int i = 0; i < MAX_INSTS; i++) {
		if (f->insts[i]) {
			int rc = dynshm_instance_destroy(f->insts[i]);

			if (rc != 0) {
				fprintf(stderr, "teardown: destroy: %d (%s)\n",
					rc, dynshm_last_error());
				bad = 1;
			}
			f->insts[i] = NULL;
		}
	}
	if (f->dir && sweep_instances(f) > 0)
		bad = 1;
	if (f->dir && test_remove_dir(f->dir) < 0)
		bad = 1;
	f->dir = NULL;
	if (check_leftovers("test teardown") < 0)
		bad = 1;
	return bad ? -1 : 0;
}

/* ---- data patterns --------------------------------------------------------- */

void fill(void *p, size_t size, uint64_t seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		c[i] = (unsigned char)(seed + i * 7 + (i >> 12) + (seed >> 40));
}

bool check_fill(const void *p, size_t size, uint64_t seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i] != (unsigned char)(seed + i * 7 + (i >> 12) +
					    (seed >> 40)))
			return false;
	return true;
}

bool all_zero(const void *p, size_t size)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < size; i++)
		if (c[i])
			return false;
	return true;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Is addr inside some mapping of this process? */
bool is_mapped(const void *addr)
{
	return test_is_mapped(addr);
}

void hex(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%016" PRIx64, v);
}

/* ---- instances ------------------------------------------------------------- */

void track_inst(struct fixture *f, dynshm_instance *inst)
{
	for (int i = 0; i < MAX_INSTS; i++) {
		if (!f->insts[i]) {
			f->insts[i] = inst;
			return;
		}
	}
	fail_msg("more than %d instances open in one test", MAX_INSTS);
}

void untrack_inst(struct fixture *f, dynshm_instance *inst)
{
	for (int i = 0; i < MAX_INSTS; i++)
		if (f->insts[i] == inst)
			f->insts[i] = NULL;
}

void path_in(struct fixture *f, const char *sub, char *buf,
		    size_t len)
{
	snprintf(buf, len, "%s/%s", f->dir, sub);
}

/* A configuration; max_* of 0 keep the defaults.  NULL backend: not set. */
dynshm_config *make_cfg(const char *backend, unsigned max_segments,
			    unsigned max_processes)
{
	dynshm_config *cfg = NULL;
	char num[32];

	ASSERT_OK(dynshm_config_new(&cfg));
	if (backend)
		ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					 backend));
	if (max_segments) {
		snprintf(num, sizeof(num), "%u", max_segments);
		ASSERT_OK(dynshm_config_set(cfg, "max_segments", num));
	}
	if (max_processes) {
		snprintf(num, sizeof(num), "%u", max_processes);
		ASSERT_OK(dynshm_config_set(cfg, "max_processes", num));
	}
	return cfg;
}

/* Open <dir>/<sub>; the result is destroyed by the teardown if left. */
int open_cfg(struct fixture *f, const char *sub, unsigned flags,
		    const dynshm_config *cfg, dynshm_instance **out)
{
	char path[PATH_MAX];
	int rc;

	path_in(f, sub, path, sizeof(path));
	*out = NULL;
	rc = dynshm_instance_open(path, cfg, flags, out);
	if (rc == 0)
		track_inst(f, *out);
	return rc;
}

dynshm_instance *xopen_limits(struct fixture *f, const char *sub,
				  unsigned flags, unsigned max_segments,
				  unsigned max_processes)
{
	dynshm_config *cfg = make_cfg(f->be->name, max_segments, max_processes);
	dynshm_instance *inst = NULL;
	int rc = open_cfg(f, sub, flags, cfg, &inst);

	dynshm_config_free(cfg);
	if (rc != 0)
		fail_msg("open %s/%s: %d (%s)", f->dir, sub, rc,
			 dynshm_last_error());
	return inst;
}

dynshm_instance *xopen(struct fixture *f, const char *sub)
{
	return xopen_limits(f, sub, 0, 0, 0);
}

void xdestroy(struct fixture *f, dynshm_instance *inst)
{
	untrack_inst(f, inst);
	ASSERT_OK(dynshm_instance_destroy(inst));
}

void xclose(struct fixture *f, dynshm_instance *inst)
{
	untrack_inst(f, inst);
	ASSERT_OK(dynshm_instance_close(inst));
}

dynshm_instance_info info_of(dynshm_instance *inst)
{
	static dynshm_instance_info info; /* 4 KiB: keep it off small stacks */

	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	return info;
}

dynshm_segment_info stat_of(dynshm_instance *inst, dynshm_handle h)
{
	dynshm_segment_info si;

	ASSERT_OK(dynshm_stat(inst, h, &si, sizeof(si)));
	return si;
}

void assert_no_segment(dynshm_instance *inst, dynshm_handle h)
{
	dynshm_segment_info si;

	ASSERT_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
}

dynshm_segment *xcreate(dynshm_instance *inst, size_t size, uint64_t seed)
{
	dynshm_segment *seg = NULL;

	ASSERT_OK(dynshm_create(inst, size, 0, &seg));
	assert_non_null(seg);
	assert_int_equal(dynshm_segment_size(seg), size);
	assert_true(all_zero(dynshm_segment_address(seg), size));
	if (seed)
		fill(dynshm_segment_address(seg), size, seed);
	return seg;
}

/* ---- where the OS objects of an instance are ------------------------------- */

struct where where_of(dynshm_instance *inst)
{
	dynshm_instance_info info = info_of(inst);
	struct where w;

	w.type = info.backend;
	w.id = info.instance_id;
	snprintf(w.dir, sizeof(w.dir), "%s", info.directory);
	return w;
}

/* Does the OS object of (w, h) exist?  Asked of the OS itself. */
bool os_exists(const struct where *w, dynshm_handle h)
{
	char name[DYNSHM_IMPL_NAME_MAX], path[DYNSHM_IMPL_NAME_MAX + 16];
	dynshm_impl_space *space = NULL;
	struct stat st;
	unsigned key;
	int rc;

	if (w->type == DYNSHM_IMPL_NONE)
		return false;
	rc = dynshm_impl_space_open(w->type, w->id, w->dir, &space);
	if (rc == -ENOENT && w->type == DYNSHM_IMPL_MMAP)
		return false; /* its directory is gone, so is the file */
	if (rc != 0)
		fail_msg("space of %016" PRIx64 ": %d (%s)", w->id, rc,
			 dynshm_last_error());
	rc = dynshm_impl_object_name(space, h, name, sizeof(name));
	dynshm_impl_space_close(space);
	assert_int_equal(rc, 0);
	switch (w->type) {
	case DYNSHM_IMPL_POSIX:
		snprintf(path, sizeof(path), "/dev/shm%s", name);
		return lstat(path, &st) == 0;
	case DYNSHM_IMPL_MMAP:
		return lstat(name, &st) == 0;
	case DYNSHM_IMPL_SYSV:
		assert_int_equal(sscanf(name, "sysv:0x%x", &key), 1);
		return shmget((key_t)key, 0, 0) >= 0;
	default:
		return false;
	}
}

void assert_gone(const struct where *w, dynshm_handle h, const char *ctx)
{
	if (os_exists(w, h))
		fail_msg("%s: the OS object of %016" PRIx64 " is still there",
			 ctx, h);
}

struct counting {
	char ctl_name[DYNSHM_IMPL_NAME_MAX];
	int n;
};

static int count_one(dynshm_handle handle, const char *os_name, void *arg)
{
	struct counting *c = arg;

	(void)handle;
	if (strcmp(os_name, c->ctl_name) != 0)
		c->n++;
	return 0;
}

/*
 * OS objects of segments (the control segment excluded).  For sysv this
 * counts every segment with the test tag: use it only while one sysv
 * instance exists.
 */
int os_count(const struct where *w)
{
	dynshm_impl_space *space = NULL;
	struct counting c;

	memset(&c, 0, sizeof(c));
	ASSERT_OK(dynshm_impl_space_open(w->type, w->id, w->dir, &space));
	ASSERT_OK(dynshm_impl_object_name(space, CTL_HANDLE, c.ctl_name,
				       sizeof(c.ctl_name)));
	ASSERT_OK(dynshm_impl_list(space, count_one, &c));
	dynshm_impl_space_close(space);
	return c.n;
}

/* ---- pipes and children ------------------------------------------------------ */

void track_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return;
		}
	}
	fail_msg("more than %d pipe ends in one test", MAX_FDS);
}

void close_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (f->fds[i] == fd)
			f->fds[i] = -1;
	close(fd);
}

/* A pipe whose ends close on exec (start_exec keeps the child's). */
void make_pipe(struct fixture *f, int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	track_fd(f, p[0]);
	track_fd(f, p[1]);
}

int wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&pfd, 1, IO_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	return rc == 1 ? 0 : -1;
}

/* 0, or -1 on EOF, error or a hang. */
int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n;

		if (wait_readable(fd) < 0)
			return -1;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void send_byte(int fd, char c)
{
	if (test_write_full(fd, &c, 1) < 0)
		fail_msg("cannot write to a child: %s", strerror(errno));
}

void expect_byte(int fd, char want)
{
	char c = 0;

	if (read_full(fd, &c, 1) < 0)
		fail_msg("no '%c' from the child (it died or hung)", want);
	if (c != want)
		fail_msg("child sent '%c', expected '%c'", c, want);
}

dynshm_handle recv_handle(int fd)
{
	dynshm_handle h = 0;

	if (read_full(fd, &h, sizeof(h)) < 0)
		fail_msg("no handle from the child (it died or hung)");
	return h;
}

void send_handle(int fd, dynshm_handle h)
{
	if (test_write_full(fd, &h, sizeof(h)) < 0)
		fail_msg("cannot write to a child: %s", strerror(errno));
}

void track_kid(struct fixture *f, pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++) {
		if (f->kids[i] == 0) {
			f->kids[i] = pid;
			return;
		}
	}
	kill(pid, SIGKILL);
	test_wait(pid);
	fail_msg("more than %d children in one test", MAX_KIDS);
}

/* Wait for a child of this test: its exit status or 128 + signal. */
int finish_kid(struct fixture *f, pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (f->kids[i] == pid)
			f->kids[i] = 0;
	return test_wait(pid);
}

/* Fork; the child runs fn(arg) and _exits with its value. */
pid_t start_fork(struct fixture *f, int (*fn)(void *), void *arg)
{
	pid_t pid = test_fork_start(fn, arg);

	assert_true(pid > 0);
	track_kid(f, pid);
	return pid;
}

/*
 * Re-execute this program as "--child name args..." without waiting (an
 * unrelated process); keep1/keep2 (or -1) are descriptors it inherits.
 */
pid_t start_exec(struct fixture *f, const char *name,
			const char *const *args, int keep1, int keep2)
{
	char exe_buf[4096];
	const char *exe = test_self_exe(exe_buf, sizeof(exe_buf));
	char *argv[16];
	size_t n = 0;
	pid_t pid;

	argv[n++] = (char *)"dynshm-test-child";
	argv[n++] = (char *)"--child";
	argv[n++] = (char *)name;
	for (size_t i = 0; args && args[i]; i++) {
		assert_true(n < 15);
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (keep1 >= 0)
			fcntl(keep1, F_SETFD, 0);
		if (keep2 >= 0)
			fcntl(keep2, F_SETFD, 0);
		execv(exe, argv);
		fprintf(stderr, "cannot re-execute %s: %s\n", exe,
			strerror(errno));
		_exit(127);
	}
	assert_true(pid > 0);
	track_kid(f, pid);
	return pid;
}

/* Run an exec'd child to its end; its status. */
int run_exec(struct fixture *f, const char *name,
		    const char *const *args)
{
	return finish_kid(f, start_exec(f, name, args, -1, -1));
}

/* ---- exec'd children ----------------------------------------------------- */

int child_open(const char *dir, const char *backend, unsigned flags,
		      dynshm_instance **out)
{
	dynshm_config *cfg = NULL;
	int rc = 0;

	if (backend) {
		rc = dynshm_config_new(&cfg);
		if (rc == 0)
			rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
					    backend);
	}
	if (rc == 0)
		rc = dynshm_instance_open(dir, cfg, flags, out);
	dynshm_config_free(cfg);
	return rc;
}

/*
 * B of the two-process round trip: attach h, check A's data, reply, tell A;
 * wait until A has detached, check again, detach last (which destroys).
 */
int peer_body(dynshm_instance *inst, dynshm_handle h, int rfd, int wfd)
{
	dynshm_segment *seg = NULL;
	dynshm_segment_info si;
	char expect[64], c = 0;
	char *p;

	CHILD_OK(dynshm_attach(inst, h, &seg));
	CHILD_CHECK(dynshm_segment_handle(seg) == h);
	CHILD_CHECK(dynshm_segment_size(seg) == SHARED_SIZE);
	p = dynshm_segment_address(seg);
	snprintf(expect, sizeof(expect), "hello from %016" PRIx64, h);
	CHILD_CHECK(strcmp(p, expect) == 0);
	CHILD_CHECK(check_fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h));
	snprintf(p + REPLY_AT, 64, "reply to %016" PRIx64, h);
	CHILD_CHECK(test_write_full(wfd, "a", 1) == 0);
	CHILD_CHECK(read_full(rfd, &c, 1) == 0 && c == 'd');
	/* A has detached: we map it alone, and it is intact */
	CHILD_OK(dynshm_stat(inst, h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_CHECK(strcmp(p, expect) == 0);
	CHILD_CHECK(check_fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h));
	CHILD_CHECK(strncmp(p + REPLY_AT, "reply to ", 9) == 0);
	CHILD_OK(dynshm_detach(seg));
	CHILD_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
	return 0;
}

/* --child peer <dir> <backend> <handle> <read fd> <write fd> */
static int child_peer(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	int rc;

	CHILD_CHECK(argc == 6);
	CHILD_OK(child_open(argv[1], argv[2], DYNSHM_OPEN_EXISTING, &inst));
	rc = peer_body(inst, strtoull(argv[3], NULL, 16), atoi(argv[4]),
		       atoi(argv[5]));
	CHILD_OK(dynshm_instance_close(inst));
	return rc;
}

/*
 * --child attach <dir> <handle> <expected rc> <seed or 0>
 * Attach h in an unrelated process and expect rc; on success check the
 * fill pattern (seed) and detach.
 */
static int child_attach(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *seg = (dynshm_segment *)&inst; /* sentinel */
	dynshm_handle h;
	uint64_t seed;
	int want;

	CHILD_CHECK(argc == 5);
	h = strtoull(argv[2], NULL, 16);
	want = atoi(argv[3]);
	seed = strtoull(argv[4], NULL, 16);
	CHILD_OK(child_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &inst));
	CHILD_RC(dynshm_attach(inst, h, &seg), want);
	if (want == 0) {
		if (seed)
			CHILD_CHECK(check_fill(dynshm_segment_address(seg),
					       dynshm_segment_size(seg), seed));
		CHILD_OK(dynshm_detach(seg));
	} else {
		CHILD_CHECK(seg == (dynshm_segment *)&inst); /* untouched */
	}
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

/*
 * --child killed <dir> <h1> <h2> <write fd> <read fd>
 * Attach h1 and h2, mark h1, create a third segment, send its handle, wait
 * for the word, then die by SIGKILL holding all three.
 */
static int child_killed(int argc, char **argv)
{
	dynshm_instance *inst = NULL;
	dynshm_segment *s1 = NULL, *s2 = NULL, *s3 = NULL;
	dynshm_handle h3;
	int wfd, rfd;
	char c = 0;

	CHILD_CHECK(argc == 6);
	wfd = atoi(argv[4]);
	rfd = atoi(argv[5]);
	CHILD_OK(child_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &inst));
	CHILD_OK(dynshm_attach(inst, strtoull(argv[2], NULL, 16), &s1));
	CHILD_OK(dynshm_attach(inst, strtoull(argv[3], NULL, 16), &s2));
	CHILD_OK(dynshm_create(inst, 8192, 0, &s3));
	h3 = dynshm_segment_handle(s3);
	fill(dynshm_segment_address(s3), 8192, h3);
	strcpy(dynshm_segment_address(s1), "the killed child was here");
	CHILD_CHECK(test_write_full(wfd, &h3, sizeof(h3)) == 0);
	CHILD_CHECK(read_full(rfd, &c, 1) == 0 && c == 'k');
	raise(SIGKILL);
	return 1;
}

/*
 * --child join <dir> <instance id> <backend>
 * Join with no configuration: the same instance, its backend, two
 * processes (the test and us); DYNSHM_OPEN_EXISTING joins it too.
 */
static int child_join(int argc, char **argv)
{
	dynshm_instance *inst = NULL, *again = NULL;
	dynshm_instance_info info;
	dynshm_impl_type type;

	CHILD_CHECK(argc == 4);
	CHILD_OK(dynshm_impl_type_from_name(argv[3], &type));
	CHILD_OK(dynshm_instance_open(argv[1], NULL, 0, &inst));
	CHILD_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	CHILD_CHECK(info.instance_id == strtoull(argv[2], NULL, 16));
	CHILD_CHECK(info.backend == type);
	CHILD_CHECK(info.processes == 2);
	CHILD_CHECK(info.creator_pid != getpid());
	CHILD_OK(dynshm_instance_open(argv[1], NULL, DYNSHM_OPEN_EXISTING, &again));
	CHILD_OK(dynshm_instance_info_get(again, &info, sizeof(info)));
	CHILD_CHECK(info.instance_id == strtoull(argv[2], NULL, 16));
	CHILD_CHECK(info.processes == 3);
	CHILD_OK(dynshm_instance_close(again));
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static const struct test_child children[] = {
	{ "peer", child_peer },
	{ "attach", child_attach },
	{ "killed", child_killed },
	{ "join", child_join },
	{ NULL, NULL },
};

/* Run "attach" in an unrelated process; its status. */
int attach_elsewhere(struct fixture *f, dynshm_instance *inst,
			    dynshm_handle h, int want, uint64_t seed)
{
	char hs[32], ws[16], ss[32];
	dynshm_instance_info info = info_of(inst);
	const char *args[] = { info.directory, hs, ws, ss, NULL };

	hex(hs, sizeof(hs), h);
	snprintf(ws, sizeof(ws), "%d", want);
	hex(ss, sizeof(ss), seed);
	return run_exec(f, "attach", args);
}


/* ---- shared by several programs ------------------------------------------ */

int collect(const dynshm_segment_info *si, void *arg)
{
	struct listed *l = arg;

	if (l->n < 16)
		l->h[l->n] = si->handle;
	l->n++;
	return 0;
}

bool listed_has(const struct listed *l, dynshm_handle h)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (l->h[i] == h)
			return true;
	return false;
}

void cb_pipe(dynshm_segment *seg, void *arg)
{
	(void)seg;
	test_write_full((int)(intptr_t)arg, "X", 1);
}

/*
 * (b) A child that adopted an inherited mapping (by making any call)
 * keeps the segment alive after the parent detaches; its detach is then
 * the last.
 */
int fork_adopter(void *arg)
{
	struct fork_arg *a = arg;
	dynshm_instance_info info;
	dynshm_segment_info si;
	char c = 0;

	/* the first call: join, adopting the inherited mapping */
	CHILD_OK(dynshm_instance_info_get(a->inst, &info, sizeof(info)));
	CHILD_CHECK(info.processes == 2);
	CHILD_CHECK(test_write_full(a->wfd, "j", 1) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'd');
	/* the parent let go; we hold it alone */
	CHILD_OK(dynshm_stat(a->inst, a->h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_CHECK(check_fill(dynshm_segment_address(a->seg), 8192, 0x92));
	strcpy(dynshm_segment_address(a->seg), "adopted and alive");
	CHILD_CHECK(test_write_full(a->wfd, "r", 1) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'x');
	CHILD_OK(dynshm_detach(a->seg));
	CHILD_RC(dynshm_stat(a->inst, a->h, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

/* ---- groups -------------------------------------------------------------- */

static int run_group(const char *name, const char *group,
		     const struct CMUnitTest *tests, size_t n)
{
	char full[128];

	if (n == 0)
		return 0;
	snprintf(full, sizeof(full), "%s/%s", name, group);
	return _cmocka_run_group_tests(full, tests, n, group_setup,
				       group_teardown);
}

int wrapper_main(int argc, char **argv, const struct wrapper_suite *s)
{
	char full[128];
	int rc;

	dynshm_test_instance_tag = TEST_TAG; /* children too: they run main */
	rc = test_child_main(argc, argv, children);
	if (rc >= 0)
		return rc;
	/* e.g. DYNSHM_TEST_FILTER='test_pin*' to run some tests only */
	if (getenv("DYNSHM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DYNSHM_TEST_FILTER"));
	rc = 0;
	if (s->n_api > 0) {
		snprintf(full, sizeof(full), "%s/config", s->name);
		rc += _cmocka_run_group_tests(full, s->api, s->n_api, NULL,
					      NULL);
	}
	for (size_t i = 0; i < N_BACKENDS; i++) {
		current = &backends[i];
		if (current->type == DYNSHM_IMPL_NONE) {
			rc += run_group(s->name, "none", s->none, s->n_none);
			continue;
		}
		rc += run_group(s->name, current->name, s->each, s->n_each);
		if (current->type == DYNSHM_IMPL_MMAP)
			rc += run_group(s->name, "mmap-directory",
					s->mmap_only, s->n_mmap_only);
	}
	return rc || fixture_failures ? 1 : 0;
}
