/* SPDX-License-Identifier: MIT */
/*
 * test_instance.c - the instance: max_segments and max_processes,
 * joining and its conflicts, reset, a restart after every process was
 * killed, a failed open that leaves nothing, the mmap backend's segment
 * directory, the none backend, and the configuration API and
 * dynshm_strerror (no instance).
 *
 * Split from test_wrapper.c (issue 11); the fixture, helpers and how the
 * tests are run are in wrapper_harness.h.
 */
#include "wrapper_harness.h"

#include "inject.h"
#include "src/control.h"
#include "src/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dsm_assert.h"

/* ---- 10. limits -------------------------------------------------------------- */

struct open_arg {
	const char *dir;
	int rfd, wfd;
	int want;
	bool die;
};

/* Open the instance by directory (a new handle, not the inherited one). */
static int fork_opener(void *arg)
{
	struct open_arg *a = arg;
	dynshm_instance *inst = NULL;
	char c = 0;

	dynshm_clear_error();
	CHILD_RC(dynshm_instance_open(a->dir, NULL, 0, &inst), a->want);
	if (a->want != 0) {
		CHILD_CHECK(strstr(dynshm_last_error(), "max_processes") != NULL);
		return 0;
	}
	if (a->die)
		raise(SIGKILL);
	if (a->wfd >= 0) {
		CHILD_CHECK(test_write_full(a->wfd, "j", 1) == 0);
		CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'x');
	}
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 4, 2);
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *segs[4], *fifth = (dynshm_segment *)&inst;
	struct open_arg oa;
	int to_child[2], to_parent[2];
	pid_t holder;

	assert_int_equal(info.max_segments, 4);
	assert_int_equal(info.max_processes, 2);
	/* the setting (the default), with no region too: it said off */
	assert_int_equal(info.huge_pages, DYNSHM_HUGE_PAGES_TRY);
	for (int i = 0; i < 4; i++)
		segs[i] = xcreate(inst, 4096, 0);
	dynshm_clear_error();
	ASSERT_RC(dynshm_create(inst, 4096, 0, &fifth), -ENOSPC);
	ASSERT_MSG_HAS("max_segments");
	assert_ptr_equal(fifth, (dynshm_segment *)&inst);
	assert_int_equal(info_of(inst).segments, 4);
	ASSERT_OK(dynshm_detach(segs[3]));
	segs[3] = xcreate(inst, 4096, 0); /* a freed slot is usable again */
	for (int i = 0; i < 4; i++)
		ASSERT_OK(dynshm_detach(segs[i]));
	assert_int_equal(info_of(inst).segments, 0);

	/* max_processes = 2: us and one holder; a third is refused */
	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	memset(&oa, 0, sizeof(oa));
	oa.dir = info.directory;
	oa.rfd = to_child[0];
	oa.wfd = to_parent[1];
	holder = start_fork(f, fork_opener, &oa);
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);
	expect_byte(to_parent[0], 'j');
	assert_int_equal(info_of(inst).processes, 2);

	oa.rfd = oa.wfd = -1;
	oa.want = -ENOSPC;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	assert_int_equal(info_of(inst).processes, 2);
	send_byte(to_child[1], 'x');
	assert_int_equal(finish_kid(f, holder), 0);
	assert_int_equal(info_of(inst).processes, 1);

	/* a place left by a clean leave, and by a dead process, is reused */
	oa.want = 0;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	oa.die = true;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)),
			 128 + SIGKILL);
	assert_int_equal(info_of(inst).processes, 2); /* not reaped yet */
	oa.die = false;
	assert_int_equal(finish_kid(f, start_fork(f, fork_opener, &oa)), 0);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
}

/* ---- 12. joining, reset, a restart after everyone was killed --------------- */

static void test_joining(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 32, 0);
	dynshm_instance_info info = info_of(inst);
	dynshm_instance *other = NULL;
	dynshm_config *cfg;
	char ids[32], missing[PATH_MAX];
	const char *args[] = { info.directory, ids, f->be->name, NULL };
	struct stat st;

	/* another process joins the same instance */
	hex(ids, sizeof(ids), info.instance_id);
	assert_int_equal(run_exec(f, "join", args), 0);
	assert_int_equal(info_of(inst).processes, 1);

	/* DYNSHM_OPEN_EXISTING on a directory that is not there */
	path_in(f, "missing", missing, sizeof(missing));
	dynshm_clear_error();
	ASSERT_RC(dynshm_instance_open(missing, NULL, DYNSHM_OPEN_EXISTING, &other),
		  -ENOENT);
	assert_string_not_equal(dynshm_last_error(), "");
	assert_int_equal(lstat(missing, &st), -1); /* and it made none */

	/* an explicit backend that disagrees is refused */
	cfg = make_cfg(f->be->other, 0, 0);
	dynshm_clear_error();
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	ASSERT_MSG_HAS("dynamic_shared_memory_type");
	cfg = make_cfg("none", 0, 0);
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	/* and so does an explicit segment directory other than its own */
	cfg = make_cfg(NULL, 0, 0);
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", f->dir));
	dynshm_clear_error();
	ASSERT_RC(open_cfg(f, "inst", 0, cfg, &other), -EINVAL);
	dynshm_config_free(cfg);
	ASSERT_MSG_HAS("dynshm_directory");
	assert_int_equal(info_of(inst).processes, 1);

	/* settings not made explicitly do not conflict; limits are kept */
	cfg = make_cfg(NULL, 0, 0);
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &other));
	dynshm_config_free(cfg);
	assert_int_equal(info_of(other).instance_id, info.instance_id);
	assert_int_equal(info_of(other).max_segments, 32);
	assert_int_equal(info_of(inst).processes, 2);
	xclose(f, other);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *old = xopen(f, "inst"), *fresh;
	struct where w_old = where_of(old);
	dynshm_segment *p = xcreate(old, 8192, 0x71), *q = xcreate(old, 8192, 0x72);
	dynshm_segment *r, *nothing = NULL;
	dynshm_handle hp = dynshm_segment_handle(p), hq = dynshm_segment_handle(q);

	ASSERT_OK(dynshm_pin_segment(p));
	ASSERT_OK(dynshm_detach(p));
	assert_true(os_exists(&w_old, hp));
	assert_true(os_exists(&w_old, hq));

	/* a supervisor restarts: everything of the earlier incarnation goes */
	fresh = xopen_limits(f, "inst", DYNSHM_OPEN_RESET, 0, 0);
	assert_true(info_of(fresh).instance_id != w_old.id);
	assert_int_equal(info_of(fresh).segments, 0);
	assert_int_equal(info_of(fresh).processes, 1);
	assert_gone(&w_old, hp, "a pinned segment after reset");
	assert_gone(&w_old, hq, "a mapped segment after reset");
	assert_gone(&w_old, CTL_HANDLE, "the old control segment");
	assert_no_segment(fresh, hp);
	assert_no_segment(fresh, hq);

	/* the old handle has lost its instance; its mapping stays valid */
	ASSERT_RC(dynshm_create(old, 4096, 0, &nothing), -ENOENT);
	ASSERT_RC(dynshm_attach(old, hp, &nothing), -ENOENT);
	assert_true(check_fill(dynshm_segment_address(q), 8192, 0x72));
	/* letting go always works (docs/design.md, "A destroyed instance") */
	ASSERT_OK(dynshm_detach(q));
	untrack_inst(f, old);
	ASSERT_OK(dynshm_instance_close(old));

	r = xcreate(fresh, 4096, 0x73);
	assert_int_equal(attach_elsewhere(f, fresh, dynshm_segment_handle(r), 0,
					  0x73),
			 0);
	ASSERT_OK(dynshm_detach(r));
	assert_int_equal(info_of(fresh).segments, 0);
	xdestroy(f, fresh);
}

/*
 * A process still joined to an incarnation that another process reset
 * calls dynshm_instance_destroy on its old handle.  Its incarnation is
 * already gone; the directory now belongs to the new one, which must
 * survive: before, the stale destroy removed the new incarnation's state,
 * lock and procs files (and with posix the directory), so the next open
 * made a third incarnation beside the running one and lost its segments.
 */
static void test_stale_destroy_after_reset(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *old = xopen(f, "inst"), *fresh, *again;
	dynshm_segment *keep = NULL, *seen = NULL;
	uint64_t id;

	fresh = xopen_limits(f, "inst", DYNSHM_OPEN_RESET, 0, 0);
	id = info_of(fresh).instance_id;
	ASSERT_OK(dynshm_create_named(fresh, "keep", 4096, DYNSHM_CREATE_PIN,
				      &keep));
	fill(dynshm_segment_address(keep), 4096, 0x5a);

	untrack_inst(f, old);
	ASSERT_RC(dynshm_instance_destroy(old), -ENOENT); /* old is freed */
	assert_non_null(strstr(dynshm_last_error(), "already"));

	/* the new incarnation is whole: a newcomer joins it, not a third */
	again = xopen(f, "inst");
	assert_true(info_of(again).instance_id == id);
	assert_int_equal(info_of(again).processes, 2);
	ASSERT_OK(dynshm_attach_named(again, "keep", &seen));
	assert_true(check_fill(dynshm_segment_address(seen), 4096, 0x5a));
	ASSERT_OK(dynshm_detach(seen));
	xclose(f, again);
	ASSERT_OK(dynshm_detach(keep));
	xdestroy(f, fresh);
}

struct victim_arg {
	const char *dir;
	dynshm_handle pinned; /* 0: create and pin it; else attach it */
	int rfd, wfd;
};

/* Create (and pin) or attach, create an unpinned one, report, die. */
static int fork_victim(void *arg)
{
	struct victim_arg *a = arg;
	dynshm_instance *inst = NULL;
	dynshm_segment *p = NULL, *u = NULL;
	dynshm_handle hs[2];
	char c = 0;

	CHILD_OK(dynshm_instance_open(a->dir, NULL, 0, &inst));
	if (a->pinned == 0) {
		CHILD_OK(dynshm_create(inst, 16384, 0, &p));
		fill(dynshm_segment_address(p), 16384, 0x81);
		CHILD_OK(dynshm_pin_segment(p));
	} else {
		CHILD_OK(dynshm_attach(inst, a->pinned, &p));
	}
	CHILD_OK(dynshm_create(inst, 4096, 0, &u));
	hs[0] = dynshm_segment_handle(p);
	hs[1] = dynshm_segment_handle(u);
	CHILD_CHECK(test_write_full(a->wfd, hs, sizeof(hs)) == 0);
	CHILD_CHECK(read_full(a->rfd, &c, 1) == 0 && c == 'k');
	raise(SIGKILL);
	return 1;
}

static void test_open_after_all_killed(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct victim_arg va[2];
	int to_child[2][2], to_parent[2][2];
	dynshm_handle hs[2][2];
	dynshm_segment_info si;
	dynshm_segment *p = NULL;
	pid_t pids[2];

	xclose(f, inst); /* nobody is joined any more */
	for (int i = 0; i < 2; i++) {
		make_pipe(f, to_child[i]);
		make_pipe(f, to_parent[i]);
		va[i].dir = w.dir;
		va[i].pinned = i == 0 ? 0 : hs[0][0];
		va[i].rfd = to_child[i][0];
		va[i].wfd = to_parent[i][1];
		pids[i] = start_fork(f, fork_victim, &va[i]);
		close_fd(f, to_child[i][0]);
		close_fd(f, to_parent[i][1]);
		if (read_full(to_parent[i][0], hs[i], sizeof(hs[i])) < 0)
			fail_msg("victim %d reported nothing", i);
	}
	assert_int_equal(hs[1][0], hs[0][0]);
	for (int i = 0; i < 2; i++)
		send_byte(to_child[i][1], 'k');
	for (int i = 0; i < 2; i++)
		assert_int_equal(finish_kid(f, pids[i]), 128 + SIGKILL);
	for (int i = 0; i < 2; i++) {
		assert_true(os_exists(&w, hs[i][0]));
		assert_true(os_exists(&w, hs[i][1]));
	}

	/* a plain open: the dead are reaped, the pinned segment is kept */
	inst = xopen_limits(f, "inst", 0, 0, 0);
	assert_int_equal(info_of(inst).instance_id, w.id);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).processes_reaped, 2);
	assert_int_equal(info_of(inst).segments, 1);
	si = stat_of(inst, hs[0][0]);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	for (int i = 0; i < 2; i++) {
		assert_no_segment(inst, hs[i][1]);
		assert_gone(&w, hs[i][1], "an unpinned segment of the dead");
	}
	ASSERT_OK(dynshm_attach(inst, hs[0][0], &p));
	assert_true(check_fill(dynshm_segment_address(p), 16384, 0x81));
	ASSERT_OK(dynshm_unpin_segment(inst, hs[0][0]));
	ASSERT_OK(dynshm_detach(p));
	assert_gone(&w, hs[0][0], "the pinned one after unpin and detach");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- mmap: a segment directory of its own -------------------------------- */

static int count_entries(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_mmap_directory(void **state)
{
	struct fixture *f = *state;
	dynshm_config *cfg = make_cfg("mmap", 0, 0);
	dynshm_instance *inst = NULL, *again = NULL;
	dynshm_segment *seg;
	struct where w;
	char segs[PATH_MAX], inst_dir[PATH_MAX];
	dynshm_handle h;

	path_in(f, "segs", segs, sizeof(segs));
	path_in(f, "inst", inst_dir, sizeof(inst_dir));
	assert_int_equal(mkdir(segs, 0700), 0);
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", segs));
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &inst));
	/* the same directory given again is no conflict */
	ASSERT_OK(open_cfg(f, "inst", 0, cfg, &again));
	assert_int_equal(info_of(again).instance_id, info_of(inst).instance_id);
	xclose(f, again);
	dynshm_config_free(cfg);
	w = where_of(inst);
	snprintf(w.dir, sizeof(w.dir), "%s", segs);
	seg = xcreate(inst, 8192, 9);
	h = dynshm_segment_handle(seg);
	assert_true(os_exists(&w, h));
	assert_int_equal(os_count(&w), 1);
	/* the instance directory holds no segment file */
	snprintf(w.dir, sizeof(w.dir), "%s", inst_dir);
	assert_false(os_exists(&w, h));
	snprintf(w.dir, sizeof(w.dir), "%s", segs);
	assert_int_equal(attach_elsewhere(f, inst, h, 0, 9), 0);
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	xdestroy(f, inst); /* takes the pinned one and the control file */
	assert_false(os_exists(&w, h));
	assert_int_equal(count_entries(segs), 0);
}

/* ---- 13. none ---------------------------------------------------------------- */

static void test_none(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *seg = (dynshm_segment *)&inst;
	struct listed l;

	assert_int_equal(info.backend, DYNSHM_IMPL_NONE);
	assert_int_equal(info.processes, 1);
	dynshm_clear_error();
	ASSERT_RC(dynshm_create(inst, 4096, 0, &seg), -ENOTSUP);
	ASSERT_MSG_HAS("disabled by configuration");
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	assert_int_equal(info_of(inst).segments, 0);
	ASSERT_RC(dynshm_attach(inst, test_random_handle(), &seg), -ENOENT);
	memset(&l, 0, sizeof(l));
	ASSERT_OK(dynshm_foreach_segment(inst, collect, &l));
	assert_int_equal(l.n, 0);
	ASSERT_OK(dynshm_reap(inst, NULL));
	xdestroy(f, inst);
}

/*
 * A first open that fails (here: mapping the new control segment) leaves
 * nothing: no OS object, no lock file, and no directory if the open made it;
 * a directory the caller made stays, empty.
 */
static void test_failed_open_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	const struct step *last = f->be->create_steps;
	dynshm_config *cfg = make_cfg(f->be->name, 0, 0);
	char path[PATH_MAX];
	dynshm_instance *inst = NULL;
	struct stat st;
	int rc;

	while (last[1].entry)
		last++;
	path_in(f, "made-by-open", path, sizeof(path));
	inject_fail(last->entry, 1, ENOMEM);
	rc = open_cfg(f, "made-by-open", 0, cfg, &inst);
	inject_reset();
	ASSERT_RC(rc, -ENOMEM);
	assert_null(inst);
	if (stat(path, &st) == 0)
		fail_msg("failed open left directory %s", path);

	path_in(f, "made-by-caller", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	inject_fail(last->entry, 1, ENOMEM);
	rc = open_cfg(f, "made-by-caller", 0, cfg, &inst);
	inject_reset();
	ASSERT_RC(rc, -ENOMEM);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(rmdir(path), 0); /* so: empty */

	/* and the next open of the same place works */
	inst = xopen(f, "made-by-open");
	xdestroy(f, inst);
	dynshm_config_free(cfg);
}

/* ---- 14. configuration, 17. dynshm_strerror ---------------------------------- */

static void expect_refused(dynshm_config *cfg, const char *key,
			   const char *value, const char *kept)
{
	char buf[PATH_MAX];

	dynshm_clear_error();
	if (dynshm_config_set(cfg, key, value) != -EINVAL)
		fail_msg("%s = '%s' was not refused", key, value);
	if (!strstr(dynshm_last_error(), key))
		fail_msg("message '%s' does not name the key %s",
			 dynshm_last_error(), key);
	if (value[0] && !strstr(dynshm_last_error(), value))
		fail_msg("message '%s' does not name the value '%s'",
			 dynshm_last_error(), value);
	ASSERT_OK(dynshm_config_get(cfg, key, buf, sizeof(buf)));
	assert_string_equal(buf, kept);
}

static void test_config(void **state)
{
	static const char *const counts[] = { "max_segments", "max_processes" };
	static const char *const bad_counts[] = {
		"-3", "0", "abc", "", "12abc", " 5", "1.5", "0x10",
		"99999999999999999999999",
	};
	dynshm_config *cfg = NULL;
	char buf[PATH_MAX];

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));

	/* the backend: every name round-trips, a typo is refused */
	for (size_t i = 0; i < N_BACKENDS; i++) {
		ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type",
					 backends[i].name));
		ASSERT_OK(dynshm_config_get(cfg, "dynamic_shared_memory_type",
					 buf, sizeof(buf)));
		assert_string_equal(buf, backends[i].name);
	}
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type", "mmap"));
	expect_refused(cfg, "dynamic_shared_memory_type", "posx", "mmap");
	expect_refused(cfg, "dynamic_shared_memory_type", "posix2", "mmap");
	ASSERT_MSG_HAS("posix"); /* what is allowed */

	for (size_t k = 0; k < 2; k++) {
		ASSERT_OK(dynshm_config_set(cfg, counts[k], "17"));
		ASSERT_OK(dynshm_config_get(cfg, counts[k], buf, sizeof(buf)));
		assert_string_equal(buf, "17");
		for (size_t i = 0; i < sizeof(bad_counts) / sizeof(char *);
		     i++)
			expect_refused(cfg, counts[k], bad_counts[i], "17");
		ASSERT_OK(dynshm_config_set(cfg, counts[k], "1"));
		ASSERT_OK(dynshm_config_get(cfg, counts[k], buf, sizeof(buf)));
		assert_string_equal(buf, "1");
	}

	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", "/srv/dsm"));
	ASSERT_OK(dynshm_config_get(cfg, "dynshm_directory", buf, sizeof(buf)));
	assert_string_equal(buf, "/srv/dsm");
	expect_refused(cfg, "dynshm_directory", "relative/dir", "/srv/dsm");
	expect_refused(cfg, "dynshm_directory", "dsm", "/srv/dsm");
	ASSERT_OK(dynshm_config_set(cfg, "dynshm_directory", ""));
	ASSERT_OK(dynshm_config_get(cfg, "dynshm_directory", buf, sizeof(buf)));
	assert_string_equal(buf, "");

	/* unknown keys: refused and named, and change nothing */
	dynshm_clear_error();
	ASSERT_RC(dynshm_config_set(cfg, "max_segment", "10"), -EINVAL);
	ASSERT_MSG_HAS("max_segment");
	ASSERT_RC(dynshm_config_set(cfg, "dynamic_shared_memory", "posix"),
		  -EINVAL);
	ASSERT_MSG_HAS("dynamic_shared_memory");
	ASSERT_RC(dynshm_config_get(cfg, "max_segment", buf, sizeof(buf)),
		  -EINVAL);
	ASSERT_RC(dynshm_config_set(cfg, NULL, "1"), -EINVAL);
	ASSERT_RC(dynshm_config_set(cfg, "max_segments", NULL), -EINVAL);
	ASSERT_RC(dynshm_config_set(NULL, "max_segments", "1"), -EINVAL);
	ASSERT_OK(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf,
				 sizeof(buf)));
	assert_string_equal(buf, "mmap");
	assert_true(dynshm_config_get(cfg, "dynamic_shared_memory_type", buf,
				   2) < 0);
	dynshm_config_free(cfg);
	dynshm_config_free(NULL);
}

static void test_strerror(void **state)
{
	static const int codes[] = { 0,	      -ENOENT, -ENOSPC, -EUCLEAN,
				     -EINVAL, -EEXIST, -12345,  -99999,
				     ENOENT,  777 };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(int); i++) {
		const char *s = dynshm_strerror(codes[i]);

		if (!s || !s[0])
			fail_msg("dynshm_strerror(%d) is empty", codes[i]);
	}
	assert_string_not_equal(dynshm_strerror(-ENOENT), dynshm_strerror(-ENOSPC));
	assert_string_not_equal(dynshm_strerror(0), dynshm_strerror(-ENOENT));
}

/* ---- groups -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct CMUnitTest api[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_strerror),
	};
	static const struct CMUnitTest each[] = {
		T(test_limits),
		T(test_joining),
		T(test_reset),
		T(test_stale_destroy_after_reset),
		T(test_open_after_all_killed),
		T(test_failed_open_leaves_nothing),
	};
	static const struct CMUnitTest mmap_only[] = {
		T(test_mmap_directory),
	};
	static const struct CMUnitTest none[] = {
		T(test_none),
	};
	static const struct wrapper_suite suite = {
		.name = "instance",
		WRAPPER_GROUP(api, api),
		WRAPPER_GROUP(each, each),
		WRAPPER_GROUP(mmap_only, mmap_only),
		WRAPPER_GROUP(none, none),
	};

	return wrapper_main(argc, argv, &suite);
}
