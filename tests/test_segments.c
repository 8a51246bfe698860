/* SPDX-License-Identifier: MIT */
/*
 * test_segments.c - create, attach, pin, destroy and inspect
 * segments across processes, per backend.
 *
 *   create in A, attach in B (forked / exec'd)   test_cross_process_*,
 *                                                 test_join_by_name
 *   pins, unpin, dynshm_destroy                   test_pin,
 *                                                 test_destroy_segment
 *   kill -9 of a holder, dynshm_reap              test_kill9_reap
 *   stale and forged handles, slot reuse          test_stale_handles
 *   two instances side by side                    test_two_instances
 *   attaching twice in one process                test_attach_twice
 *   dynshm_stat, dynshm_foreach_segment, info     test_inspection
 *   the control lock's counters: takes, waits      test_lock_statistics
 *
 * Split from test_wrapper.c (issue 11); the fixture, helpers and how the
 * tests are run are in wrapper_harness.h.
 */
#include "wrapper_harness.h"

#include "inject.h"
#include "src/control.h"
#include "src/error.h"

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

/* ---- 1. two processes: create in A, attach in B --------------------------- */

struct peer_arg {
	dynshm_instance *inst;
	int rfd, wfd;
};

/* A forked B: gets the handle through the pipe, then as the exec'd one. */
static int fork_peer(void *arg)
{
	struct peer_arg *a = arg;
	dynshm_handle h = 0;
	int rc;

	CHILD_CHECK(read_full(a->rfd, &h, sizeof(h)) == 0);
	rc = peer_body(a->inst, h, a->rfd, a->wfd);
	CHILD_OK(dynshm_instance_close(a->inst));
	return rc;
}

/*
 * by_name: open by instance name, as unrelated programs do, with
 * XDG_RUNTIME_DIR pointing into the test's directory (the exec'd peer
 * inherits it and joins by the same name).
 */
static void cross_process(struct fixture *f, bool exec, bool by_name)
{
	dynshm_instance *inst = NULL;
	struct where w;
	int to_child[2], to_parent[2];
	struct peer_arg arg;
	dynshm_segment *seg;
	dynshm_handle h;
	char expect[64];
	pid_t pid = 0;
	char *p;

	if (by_name) {
		dynshm_config *cfg = make_cfg(f->be->name, 0, 0);

		assert_int_equal(setenv("XDG_RUNTIME_DIR", f->dir, 1), 0);
		ASSERT_OK(dynshm_instance_open("joined-by-name", cfg, 0, &inst));
		track_inst(f, inst);
		dynshm_config_free(cfg);
		/* the instance lives where the name says, not elsewhere */
		snprintf(expect, sizeof(expect), "%s", "/dynshm/joined-by-name");
		assert_non_null(strstr(info_of(inst).directory, expect));
	} else {
		inst = xopen(f, "inst");
	}
	w = where_of(inst);
	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	arg.inst = inst;
	arg.rfd = to_child[0];
	arg.wfd = to_parent[1];
	if (!exec) /* forked before the segment exists: a real attach */
		pid = start_fork(f, fork_peer, &arg);

	seg = xcreate(inst, SHARED_SIZE, 0);
	h = dynshm_segment_handle(seg);
	p = dynshm_segment_address(seg);
	snprintf(p, 64, "hello from %016" PRIx64, h);
	fill(p + FILL_AT, SHARED_SIZE - FILL_AT, h);

	if (exec) {
		char hs[32], rs[16], ws[16];
		const char *args[] = { by_name ? "joined-by-name" : w.dir,
				       f->be->name, hs, rs, ws, NULL };

		hex(hs, sizeof(hs), h);
		snprintf(rs, sizeof(rs), "%d", to_child[0]);
		snprintf(ws, sizeof(ws), "%d", to_parent[1]);
		pid = start_exec(f, "peer", args, to_child[0], to_parent[1]);
	} else {
		send_handle(to_child[1], h);
	}
	close_fd(f, to_child[0]);
	close_fd(f, to_parent[1]);

	expect_byte(to_parent[0], 'a');
	snprintf(expect, sizeof(expect), "reply to %016" PRIx64, h);
	assert_string_equal(p + REPLY_AT, expect);
	assert_int_equal(stat_of(inst, h).references, 2);
	assert_int_equal(info_of(inst).processes, 2);

	/* A lets go first; B still maps it, so it must survive */
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));
	send_byte(to_child[1], 'd');

	assert_int_equal(finish_kid(f, pid), 0);
	/* B's detach was the last: the segment and its OS object are gone */
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach in B");
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(info_of(inst).processes, 1);
	xdestroy(f, inst);
	if (by_name)
		unsetenv("XDG_RUNTIME_DIR");
}

static void test_cross_process_fork(void **state)
{
	cross_process(*state, false, false);
}

static void test_cross_process_exec(void **state)
{
	cross_process(*state, true, false);
}

/* Unrelated processes join by instance name (issue: fork and exec). */
static void test_join_by_name(void **state)
{
	cross_process(*state, true, true);
}

/* ---- 2. pins --------------------------------------------------------------- */

struct pin_arg {
	dynshm_instance *inst;
	int wfd;
};

/* Create, pin, detach, leave: the segment must outlive us. */
static int fork_pinner(void *arg)
{
	struct pin_arg *a = arg;
	dynshm_segment *seg = NULL;
	dynshm_segment_info si;
	dynshm_handle h;

	CHILD_OK(dynshm_create(a->inst, 20000, 0, &seg));
	h = dynshm_segment_handle(seg);
	fill(dynshm_segment_address(seg), 20000, h);
	CHILD_OK(dynshm_pin_segment(seg));
	CHILD_RC(dynshm_pin_segment(seg), -EALREADY);
	CHILD_OK(dynshm_detach(seg));
	CHILD_OK(dynshm_stat(a->inst, h, &si, sizeof(si)));
	CHILD_CHECK(si.pinned && si.references == 0);
	CHILD_OK(dynshm_instance_close(a->inst));
	CHILD_CHECK(test_write_full(a->wfd, &h, sizeof(h)) == 0);
	return 0;
}

/*
 * A segment made and pinned by a child that has left (fork_pinner): its
 * handle; the child's pid in *child and the time just before the fork
 * in *forked_at, each if given.
 */
static dynshm_handle pinned_by_child(struct fixture *f, dynshm_instance *inst,
				     uint64_t *forked_at, pid_t *child)
{
	struct pin_arg arg;
	dynshm_handle h;
	int p[2];
	pid_t pid;

	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	if (forked_at)
		*forked_at = now_ns();
	pid = start_fork(f, fork_pinner, &arg);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 0);
	if (child)
		*child = pid;
	return h;
}

static void test_pin(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment_info si;
	dynshm_segment *seg;
	pid_t pid;
	dynshm_handle h;

	h = pinned_by_child(f, inst, NULL, &pid);

	/* the creator is gone; the pin keeps it */
	si = stat_of(inst, h);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	assert_int_equal(si.creator_pid, pid);
	assert_true(os_exists(&w, h));
	assert_int_equal(info_of(inst).processes, 1);

	/* another process attaches later and reads it */
	assert_int_equal(attach_elsewhere(f, inst, h, 0, h), 0);
	si = stat_of(inst, h);
	assert_true(si.pinned);
	assert_int_equal(si.references, 0);
	ASSERT_RC(dynshm_pin_segment(NULL), -EINVAL);
	/* a NULL result pointer is what the message names, not the size */
	ASSERT_RC(dynshm_create(inst, 4096, 0, NULL), -EINVAL);
	assert_string_equal(dynshm_last_error(), "no result pointer given");

	/* unpin with nobody mapping destroys */
	ASSERT_OK(dynshm_unpin_segment(inst, h));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after unpin with nobody mapping");
	ASSERT_RC(dynshm_unpin_segment(inst, h), -ENOENT);

	/* an unpinned segment: unpin refused, pin twice refused */
	seg = xcreate(inst, 4096, 5);
	h = dynshm_segment_handle(seg);
	dynshm_clear_error();
	ASSERT_RC(dynshm_unpin_segment(inst, h), -EINVAL);
	assert_string_not_equal(dynshm_last_error(), "");
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_RC(dynshm_pin_segment(seg), -EALREADY);
	assert_string_not_equal(dynshm_last_error(), "");
	assert_true(stat_of(inst, h).pinned);
	/* unpinned while mapped: it stays until the last detach */
	ASSERT_OK(dynshm_unpin_segment(inst, h));
	si = stat_of(inst, h);
	assert_false(si.pinned);
	assert_int_equal(si.references, 1);
	assert_true(check_fill(dynshm_segment_address(seg), 4096, 5));
	ASSERT_OK(dynshm_detach(seg));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach of an unpinned segment");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* dynshm_destroy: unpin, refuse attaches, go at the last detach. */
static void test_destroy_segment(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 4096, 77);
	dynshm_handle h = dynshm_segment_handle(seg);
	dynshm_segment_info si;

	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_destroy(inst, h));
	si = stat_of(inst, h); /* still there: we map it */
	assert_false(si.pinned);
	assert_int_equal(si.references, 1);
	assert_true(os_exists(&w, h));
	/* nobody else may attach it any more */
	assert_int_equal(attach_elsewhere(f, inst, h, -ENOENT, 0), 0);
	ASSERT_RC(dynshm_pin_segment(seg), -ENOENT);
	ASSERT_RC(dynshm_destroy(inst, h), -ENOENT);
	assert_true(check_fill(dynshm_segment_address(seg), 4096, 77));
	ASSERT_OK(dynshm_detach(seg));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the last detach of a destroyed segment");

	/* with nobody mapping it, at once */
	seg = xcreate(inst, 4096, 78);
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	assert_true(os_exists(&w, h));
	ASSERT_OK(dynshm_destroy(inst, h));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after destroying an unmapped segment");
	xdestroy(f, inst);
}

/* ---- 3. kill -9 of a process holding references ----------------------------- */

struct attach_arg {
	dynshm_instance *inst;
	dynshm_handle h;
	uint64_t seed;
	size_t size;
};

static int fork_attach_check(void *arg)
{
	struct attach_arg *a = arg;
	dynshm_segment *seg = NULL;

	CHILD_OK(dynshm_attach(a->inst, a->h, &seg));
	CHILD_CHECK(dynshm_segment_size(seg) == a->size);
	CHILD_CHECK(check_fill(dynshm_segment_address(seg), a->size, a->seed));
	CHILD_OK(dynshm_detach(seg));
	CHILD_OK(dynshm_instance_close(a->inst));
	return 0;
}

static void test_kill9_reap(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *s1 = xcreate(inst, 8192, 0);
	dynshm_segment *s2 = xcreate(inst, 8192, 0);
	dynshm_segment *s4;
	dynshm_handle h1 = dynshm_segment_handle(s1), h2 = dynshm_segment_handle(s2);
	dynshm_handle h3, h4;
	dynshm_segment_info si;
	struct attach_arg aa;
	char hs1[32], hs2[32], ws[16], rs[16];
	const char *args[] = { w.dir, hs1, hs2, ws, rs, NULL };
	int to_child[2], to_parent[2];
	uint64_t reaped_before;
	unsigned n = 99;
	pid_t pid;

	make_pipe(f, to_child);
	make_pipe(f, to_parent);
	hex(hs1, sizeof(hs1), h1);
	hex(hs2, sizeof(hs2), h2);
	snprintf(ws, sizeof(ws), "%d", to_parent[1]);
	snprintf(rs, sizeof(rs), "%d", to_child[0]);
	pid = start_exec(f, "killed", args, to_parent[1], to_child[0]);
	close_fd(f, to_parent[1]);
	close_fd(f, to_child[0]);
	h3 = recv_handle(to_parent[0]);

	assert_int_equal(stat_of(inst, h1).references, 2);
	assert_int_equal(stat_of(inst, h2).references, 2);
	si = stat_of(inst, h3);
	assert_int_equal(si.references, 1);
	assert_int_equal(si.creator_pid, pid);
	/* the parent lets go of s2: only the doomed child holds it */
	ASSERT_OK(dynshm_detach(s2));
	assert_int_equal(stat_of(inst, h2).references, 1);
	reaped_before = info_of(inst).processes_reaped;

	send_byte(to_child[1], 'k');
	assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);

	/* before the reap its references are still counted */
	assert_int_equal(stat_of(inst, h1).references, 2);
	assert_int_equal(stat_of(inst, h2).references, 1);
	assert_int_equal(stat_of(inst, h3).references, 1);
	assert_int_equal(info_of(inst).processes, 2);
	assert_true(os_exists(&w, h2));
	assert_true(os_exists(&w, h3));

	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 1);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).processes_reaped, reaped_before + 1);
	/* what the parent still maps survives, and is usable */
	si = stat_of(inst, h1);
	assert_int_equal(si.references, 1);
	assert_int_equal(si.state, DYNSHM_SEGMENT_ACTIVE);
	assert_string_equal(dynshm_segment_address(s1),
			    "the killed child was here");
	strcpy(dynshm_segment_address(s1), "still usable");
	/* what only the dead one held is destroyed */
	assert_no_segment(inst, h2);
	assert_no_segment(inst, h3);
	assert_gone(&w, h2, "s2 after the reap");
	assert_gone(&w, h3, "s3 after the reap");
	assert_int_equal(info_of(inst).segments, 1);
	/* a second reap finds nobody */
	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 0);

	/* the instance goes on working: create, attach in another process */
	s4 = xcreate(inst, 12288, 4);
	h4 = dynshm_segment_handle(s4);
	aa.inst = inst;
	aa.h = h4;
	aa.seed = 4;
	aa.size = 12288;
	assert_int_equal(finish_kid(f, start_fork(f, fork_attach_check, &aa)),
			 0);
	assert_int_equal(attach_elsewhere(f, inst, h4, 0, 4), 0);
	assert_int_equal(stat_of(inst, h4).references, 1);
	ASSERT_OK(dynshm_detach(s4));
	ASSERT_OK(dynshm_detach(s1));
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(os_count(&w), 0);
	xdestroy(f, inst);
}

/* ---- 4. stale and forged handles ------------------------------------------- */

static void expect_unknown(dynshm_instance *inst, const char *name,
			   dynshm_handle h, const char *what)
{
	dynshm_segment *seg = (dynshm_segment *)&inst; /* sentinel */
	dynshm_segment_info si;
	char text[32];

	snprintf(text, sizeof(text), "0x%016" PRIx64, h);
	dynshm_clear_error();
	if (dynshm_attach(inst, h, &seg) != -ENOENT)
		fail_msg("%s %s: attach did not fail with -ENOENT (%s)", what,
			 text, dynshm_last_error());
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	if (!strstr(dynshm_last_error(), text) ||
	    !strstr(dynshm_last_error(), name))
		fail_msg("%s: message '%s' does not name %s and '%s'", what,
			 dynshm_last_error(), text, name);
	ASSERT_RC(dynshm_stat(inst, h, &si, sizeof(si)), -ENOENT);
	ASSERT_RC(dynshm_unpin_segment(inst, h), -ENOENT);
	ASSERT_RC(dynshm_destroy(inst, h), -ENOENT);
}

static void test_stale_handles(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_instance_info info = info_of(inst);
	dynshm_segment *others[64];
	dynshm_segment *a, *b = NULL;
	dynshm_handle ha, hb = 0;
	uint32_t slot, mask = HANDLE_SLOT_MASK;
	int nothers = 0;
	char name[PATH_MAX];

	snprintf(name, sizeof(name), "%s", info.name);
	assert_string_equal(name, w.dir); /* opened by directory */

	a = xcreate(inst, 4096, 0xa);
	ha = dynshm_segment_handle(a);
	slot = (uint32_t)(ha & mask);
	ASSERT_OK(dynshm_detach(a));
	assert_no_segment(inst, ha);

	/* create until the same slot index comes round again */
	for (int i = 0; i < 64 && !b; i++) {
		dynshm_segment *s = xcreate(inst, 4096, 0xb);

		if ((dynshm_segment_handle(s) & mask) == slot)
			b = s;
		else
			others[nothers++] = s;
	}
	if (!b)
		fail_msg("slot %u was not reused in 64 creates", slot);
	hb = dynshm_segment_handle(b);
	assert_true(hb != ha);
	assert_true((hb >> HANDLE_GEN_SHIFT & 0xffff) !=
		    (ha >> HANDLE_GEN_SHIFT & 0xffff));

	/* the stale handle names nothing, and never the new segment */
	expect_unknown(inst, name, ha, "stale handle");
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	assert_int_equal(attach_elsewhere(f, inst, ha, -ENOENT, 0), 0);
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_false(os_exists(&w, ha));

	/* forged handles */
	for (int i = 0; i < 200; i++) {
		dynshm_handle r = test_random_handle();

		if (r == hb)
			continue;
		for (int j = 0; j < nothers; j++)
			if (r == dynshm_segment_handle(others[j]))
				r = 0;
		if (r)
			expect_unknown(inst, name, r, "random handle");
	}
	expect_unknown(inst, name, hb ^ (1ull << HANDLE_RAND_SHIFT),
		       "wrong random bits");
	expect_unknown(inst, name, hb ^ (0xffffffull << HANDLE_RAND_SHIFT),
		       "all random bits wrong");
	expect_unknown(inst, name, hb ^ (1ull << HANDLE_GEN_SHIFT),
		       "wrong generation");
	expect_unknown(inst, name, hb & mask, "slot only");
	expect_unknown(inst, name, DYNSHM_HANDLE_INVALID, "handle 0");
	expect_unknown(inst, name, (hb & ~(uint64_t)mask) | info.max_segments,
		       "slot == max_segments");
	expect_unknown(inst, name, (hb & ~(uint64_t)mask) | mask,
		       "slot 0xffffff");
	expect_unknown(inst, name, CTL_HANDLE, "the control segment's handle");
	expect_unknown(inst, name, UINT64_MAX, "all ones");

	/* and the live one is untouched by all of it */
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	ASSERT_OK(dynshm_detach(b));
	for (int j = 0; j < nothers; j++)
		ASSERT_OK(dynshm_detach(others[j]));
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 5. two instances side by side ------------------------------------------ */

static void test_two_instances(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *a = xopen(f, "inst-a"), *b = xopen(f, "inst-b");
	dynshm_segment *sa[3], *sb[2];
	struct listed la, lb;
	char name_a[PATH_MAX], name_b[PATH_MAX];

	snprintf(name_a, sizeof(name_a), "%s", info_of(a).name);
	snprintf(name_b, sizeof(name_b), "%s", info_of(b).name);
	assert_true(info_of(a).instance_id != info_of(b).instance_id);
	for (int i = 0; i < 3; i++)
		sa[i] = xcreate(a, 4096, 0x100 + (uint64_t)i);
	for (int i = 0; i < 2; i++)
		sb[i] = xcreate(b, 4096, 0x200 + (uint64_t)i);

	for (int i = 0; i < 3; i++) {
		dynshm_handle h = dynshm_segment_handle(sa[i]);
		bool clash = false;

		for (int j = 0; j < 2; j++)
			clash |= h == dynshm_segment_handle(sb[j]);
		if (clash) /* 24 random bits alike: 1 in 16 million */
			continue;
		expect_unknown(b, name_b, h, "a's handle in b");
	}
	for (int i = 0; i < 2; i++) {
		dynshm_handle h = dynshm_segment_handle(sb[i]);
		bool clash = false;

		for (int j = 0; j < 3; j++)
			clash |= h == dynshm_segment_handle(sa[j]);
		if (!clash)
			expect_unknown(a, name_a, h,
				       "b's handle in a");
	}

	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	ASSERT_OK(dynshm_foreach_segment(a, collect, &la));
	ASSERT_OK(dynshm_foreach_segment(b, collect, &lb));
	assert_int_equal(la.n, 3);
	assert_int_equal(lb.n, 2);
	for (int i = 0; i < 3; i++)
		assert_true(listed_has(&la, dynshm_segment_handle(sa[i])));
	for (int i = 0; i < 2; i++)
		assert_true(listed_has(&lb, dynshm_segment_handle(sb[i])));
	for (int i = 0; i < 3; i++) {
		assert_true(check_fill(dynshm_segment_address(sa[i]), 4096,
				       0x100 + (uint64_t)i));
		ASSERT_OK(dynshm_detach(sa[i]));
	}
	/* b does not notice a's segments going */
	assert_int_equal(info_of(b).segments, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(check_fill(dynshm_segment_address(sb[i]), 4096,
				       0x200 + (uint64_t)i));
		ASSERT_OK(dynshm_detach(sb[i]));
	}
	xdestroy(f, a);
	xdestroy(f, b);
}

/* ---- 6. attaching twice in one process ------------------------------------ */

static void test_attach_twice(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *a1 = NULL, *a2 = NULL, *c, *c2 = NULL;
	dynshm_handle h, hc;
	void *addr;

	/* made by another process, so both calls here are attaches */
	h = pinned_by_child(f, inst, NULL, NULL);

	ASSERT_OK(dynshm_attach(inst, h, &a1));
	ASSERT_OK(dynshm_attach(inst, h, &a2));
	assert_ptr_equal(a1, a2);
	assert_int_equal(stat_of(inst, h).references, 1);
	ASSERT_OK(dynshm_unpin_segment(inst, h)); /* the last detach destroys */
	addr = dynshm_segment_address(a1);
	assert_true(is_mapped(addr));

	ASSERT_OK(dynshm_detach(a1));
	assert_true(is_mapped(addr));
	assert_true(check_fill(addr, 20000, h));
	assert_int_equal(stat_of(inst, h).references, 1);
	assert_true(os_exists(&w, h));

	ASSERT_OK(dynshm_detach(a2));
	assert_false(is_mapped(addr));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the second detach");

	/* the creator attaching its own segment gets the same object too */
	c = xcreate(inst, 4096, 6);
	hc = dynshm_segment_handle(c);
	ASSERT_OK(dynshm_attach(inst, hc, &c2));
	assert_ptr_equal(c, c2);
	addr = dynshm_segment_address(c);
	ASSERT_OK(dynshm_detach(c2));
	assert_true(is_mapped(addr));
	assert_int_equal(stat_of(inst, hc).references, 1);
	ASSERT_OK(dynshm_detach(c));
	assert_false(is_mapped(addr));
	assert_no_segment(inst, hc);
	assert_gone(&w, hc, "after the creator's second detach");
	xdestroy(f, inst);
}

/* ---- 11. inspection ----------------------------------------------------------- */

struct stop_arg {
	int calls;
};

static int stop_at_first(const dynshm_segment_info *si, void *arg)
{
	(void)si;
	((struct stop_arg *)arg)->calls++;
	return 42;
}

struct found {
	dynshm_segment_info info[4];
	int n;
};

static int keep_info(const dynshm_segment_info *si, void *arg)
{
	struct found *fd = arg;

	if (fd->n < 4)
		fd->info[fd->n] = *si;
	fd->n++;
	return 0;
}

static void assert_same_info(const dynshm_segment_info *a,
			     const dynshm_segment_info *b)
{
	assert_int_equal(a->handle, b->handle);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->backend, b->backend);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->references, b->references);
	assert_int_equal(a->pinned, b->pinned);
	assert_int_equal(a->creator_pid, b->creator_pid);
	assert_int_equal(a->created_ns, b->created_ns);
}

static void test_inspection(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen_limits(f, "inst", 0, 16, 8);
	dynshm_instance_info info = info_of(inst);
	char path[PATH_MAX];
	struct stop_arg stop = { 0 };
	struct found found;
	dynshm_segment_info s1, s2;
	dynshm_segment *seg;
	dynshm_handle h1, h2;
	uint64_t before, after, fork_before;
	pid_t pid;

	path_in(f, "inst", path, sizeof(path));
	assert_string_equal(info.name, path);
	assert_string_equal(info.directory, path);
	assert_true(info.instance_id != 0);
	assert_int_equal(info.instance_id & 0xfff, TEST_TAG);
	assert_int_equal(info.backend, f->be->type);
	assert_int_equal(info.max_segments, 16);
	assert_int_equal(info.max_processes, 8);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.processes, 1);
	assert_true(info.control_size > 0);
	assert_int_equal(info.creator_pid, getpid());
	assert_int_equal(info.lock_repairs, 0);
	ASSERT_RC(dynshm_instance_info_get(inst, NULL, 0), -EINVAL);

	before = now_ns();
	seg = xcreate(inst, 10000, 1);
	after = now_ns();
	h1 = dynshm_segment_handle(seg);

	h2 = pinned_by_child(f, inst, &fork_before, &pid);

	s1 = stat_of(inst, h1);
	assert_int_equal(s1.handle, h1);
	assert_int_equal(s1.size, 10000);
	assert_int_equal(s1.backend, f->be->type);
	assert_int_equal(s1.state, DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(s1.references, 1);
	assert_false(s1.pinned);
	assert_int_equal(s1.creator_pid, getpid());
	assert_true(s1.created_ns >= before && s1.created_ns <= after);

	s2 = stat_of(inst, h2);
	assert_int_equal(s2.handle, h2);
	assert_int_equal(s2.size, 20000);
	assert_int_equal(s2.backend, f->be->type);
	assert_int_equal(s2.state, DYNSHM_SEGMENT_ACTIVE);
	assert_int_equal(s2.references, 0);
	assert_true(s2.pinned);
	assert_int_equal(s2.creator_pid, pid);
	assert_true(s2.created_ns >= fork_before && s2.created_ns <= now_ns());

	memset(&found, 0, sizeof(found));
	ASSERT_OK(dynshm_foreach_segment(inst, keep_info, &found));
	assert_int_equal(found.n, 2);
	for (int i = 0; i < 2; i++)
		assert_same_info(&found.info[i],
				 found.info[i].handle == h1 ? &s1 : &s2);
	assert_true(found.info[0].handle != found.info[1].handle);
	assert_int_equal(dynshm_foreach_segment(inst, stop_at_first, &stop), 42);
	assert_int_equal(stop.calls, 1);
	ASSERT_RC(dynshm_foreach_segment(inst, NULL, NULL), -EINVAL);
	ASSERT_RC(dynshm_stat(inst, h1, NULL, 0), -EINVAL);

	info = info_of(inst);
	assert_int_equal(info.segments, 2);
	assert_int_equal(info.processes, 1);

	assert_null(dynshm_segment_address(NULL));
	assert_int_equal(dynshm_segment_size(NULL), 0);
	assert_int_equal(dynshm_segment_handle(NULL), DYNSHM_HANDLE_INVALID);

	ASSERT_OK(dynshm_unpin_segment(inst, h2));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(info_of(inst).segments, 0);
	memset(&found, 0, sizeof(found));
	ASSERT_OK(dynshm_foreach_segment(inst, keep_info, &found));
	assert_int_equal(found.n, 0);
	xdestroy(f, inst);
}

/* ---- the control lock's statistics ------------------------------------------ */

/*
 * The holder child (forked: it inherits the instance), stopped by the test
 * hook inside an attach, holding the control lock: it says 'h', waits
 * until the test process sleeps on the lock, and lets go.
 */
static int lock_tell_fd = -1;

static void hold_until_waited(const char *point)
{
	char c = 'h';

	if (strcmp(point, "attach:referenced") != 0)
		return;
	dynshm_test_hook = NULL;
	if (write(lock_tell_fd, &c, 1) != 1)
		_exit(2);
	if (!test_await_lock_wait(getppid()))
		_exit(3); /* the test never waited: it fails on our status */
}

static int lock_holder(void *arg)
{
	struct attach_arg *a = arg;
	dynshm_segment *seg = NULL;

	dynshm_test_hook = hold_until_waited;
	CHILD_OK(dynshm_attach(a->inst, a->h, &seg));
	CHILD_OK(dynshm_detach(seg));
	return 0;
}

/*
 * lock_acquisitions counts every take of the control lock; lock_waits and
 * lock_wait_ns count a take that found it held: here the test's own
 * dynshm_instance_info_get while a child holds it inside an attach.
 */
static void test_lock_statistics(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	dynshm_segment *seg = xcreate(inst, 4096, 0);
	dynshm_instance_info before, after;
	struct attach_arg aa = { .inst = inst };
	int tell[2];
	pid_t pid;

	ASSERT_OK(dynshm_pin_segment(seg));
	aa.h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_detach(seg));

	/* uncontended: every call counts, none waits */
	before = info_of(inst);
	assert_true(before.lock_acquisitions > 0); /* the open and create */
	for (int i = 0; i < 4; i++) {
		ASSERT_OK(dynshm_attach(inst, aa.h, &seg));
		ASSERT_OK(dynshm_detach(seg));
	}
	after = info_of(inst);
	/* each attach and detach takes it, and so does info itself */
	assert_true(after.lock_acquisitions >= before.lock_acquisitions + 9);
	assert_int_equal(after.lock_waits, before.lock_waits);
	assert_int_equal(after.lock_wait_ns, before.lock_wait_ns);

	/* contended: the child holds it, info_get waits */
	before = after;
	make_pipe(f, tell);
	lock_tell_fd = tell[1];
	pid = start_fork(f, lock_holder, &aa);
	close_fd(f, tell[1]);
	expect_byte(tell[0], 'h');
	after = info_of(inst); /* sleeps until the child lets go */
	assert_int_equal(finish_kid(f, pid), 0);
	assert_true(after.lock_waits >= before.lock_waits + 1);
	assert_true(after.lock_wait_ns > before.lock_wait_ns);
	/* the child's adoption, attach (and so far its detach), and info */
	assert_true(after.lock_acquisitions >= before.lock_acquisitions + 3);
	assert_true(after.lock_waits <= after.lock_acquisitions);
	/* never reset: the child's detach and this call come on top */
	before = after;
	after = info_of(inst);
	assert_true(after.lock_acquisitions > before.lock_acquisitions);
	assert_true(after.lock_waits >= before.lock_waits);

	ASSERT_OK(dynshm_unpin_segment(inst, aa.h));
	xdestroy(f, inst);
}

/* ---- groups -------------------------------------------------------------- */

WRAPPER_MAIN("segments",
	     T(test_cross_process_fork),
	     T(test_cross_process_exec),
	     T(test_join_by_name),
	     T(test_pin),
	     T(test_destroy_segment),
	     T(test_kill9_reap),
	     T(test_stale_handles),
	     T(test_two_instances),
	     T(test_attach_twice),
	     T(test_inspection),
	     T(test_lock_statistics))
