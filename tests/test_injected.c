/* SPDX-License-Identifier: MIT */
/*
 * test_injected.c - system calls made to fail inside
 * dynshm_create, dynshm_attach and the removal of an OS object (through
 * the dynshm_sys table, inject.h), and bad arguments to every call, per
 * backend: each fails cleanly and leaves nothing.
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

/* ---- 16. injected failures ---------------------------------------------------- */

/* The handles of slots in CREATING when the OS object is about to be made. */
static struct {
	dynshm_instance *inst;
	dynshm_handle h[32];
	int n;
	pid_t bad_creator;
} capture;

static int keep_creating(const dynshm_segment_info *si, void *arg)
{
	(void)arg;
	if (si->state != DYNSHM_SEGMENT_CREATING)
		return 0;
	if (si->creator_pid != getpid())
		capture.bad_creator = si->creator_pid;
	if (capture.n < 32)
		capture.h[capture.n] = si->handle;
	capture.n++;
	return 0;
}

static void capture_hook(const char *point)
{
	if (capture.inst && strcmp(point, "create:before-os") == 0)
		dynshm_foreach_segment(capture.inst, keep_creating, NULL);
}

static void start_capture(dynshm_instance *inst)
{
	memset(&capture, 0, sizeof(capture));
	capture.inst = inst;
	dynshm_test_hook = capture_hook;
}

static void stop_capture(void)
{
	dynshm_test_hook = NULL;
	capture.inst = NULL;
	assert_int_equal(capture.bad_creator, 0);
}

static const int create_errors[] = { ENOSPC, EACCES, ENOMEM, EINTR };

static void test_injected_create(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	const size_t size = 3 * 4096 + 5;

	for (const struct step *s = f->be->create_steps; s->entry; s++) {
		for (size_t e = 0; e < sizeof(create_errors) / sizeof(int);
		     e++) {
			int err = create_errors[e];
			dynshm_segment *seg = (dynshm_segment *)&inst;
			unsigned long calls;
			char ctx[128];
			int rc;

			snprintf(ctx, sizeof(ctx), "%s: create, %s fails %s",
				 f->be->name, s->entry, strerror(err));
			dynshm_clear_error();
			start_capture(inst);
			inject_fail(s->entry, 1, err);
			rc = dynshm_create(inst, size, 0, &seg);
			calls = inject_calls(s->entry);
			inject_reset();
			stop_capture();
			if (calls < 1)
				fail_msg("%s: the step was never reached", ctx);
			if (capture.n < 1)
				fail_msg("%s: no slot was reserved first", ctx);
			if (err == EINTR && s->retries_eintr) {
				if (rc != 0)
					fail_msg("%s: not retried: %d (%s)",
						 ctx, rc, dynshm_last_error());
				assert_int_equal(capture.n, 1);
				assert_int_equal(dynshm_segment_handle(seg),
						 capture.h[0]);
				assert_true(all_zero(dynshm_segment_address(seg),
						     size));
				ASSERT_OK(dynshm_detach(seg));
			} else {
				if (rc != -err)
					fail_msg("%s: returned %d (%s)", ctx,
						 rc, dynshm_last_error());
				assert_ptr_equal(seg, (dynshm_segment *)&inst);
				if (!dynshm_last_error()[0])
					fail_msg("%s: no message", ctx);
				assert_int_equal(capture.n, 1);
			}
			/* the slot was given back and no object is left */
			for (int i = 0; i < capture.n && i < 32; i++) {
				assert_no_segment(inst, capture.h[i]);
				assert_gone(&w, capture.h[i], ctx);
			}
			if (info_of(inst).segments != 0)
				fail_msg("%s: %u segments left", ctx,
					 info_of(inst).segments);
			if (os_count(&w) != 0)
				fail_msg("%s: %d OS objects left", ctx,
					 os_count(&w));
		}
		if (s->first) {
			dynshm_segment *seg = NULL;
			int rc;

			/* one collision: retried with a new handle */
			start_capture(inst);
			inject_fail(s->entry, 1, EEXIST);
			rc = dynshm_create(inst, size, 0, &seg);
			assert_int_equal(inject_calls(s->entry), 2);
			inject_reset();
			stop_capture();
			ASSERT_RC(rc, 0);
			assert_int_equal(capture.n, 2);
			assert_true(capture.h[0] != capture.h[1]);
			assert_int_equal(dynshm_segment_handle(seg), capture.h[1]);
			assert_no_segment(inst, capture.h[0]);
			assert_gone(&w, capture.h[0], "the collided handle");
			assert_int_equal(stat_of(inst, capture.h[1]).references,
					 1);
			assert_int_equal(info_of(inst).segments, 1);
			ASSERT_OK(dynshm_detach(seg));

			/* collisions without end: given up, nothing kept */
			seg = (dynshm_segment *)&inst;
			start_capture(inst);
			inject_fail_from(s->entry, 1, EEXIST);
			dynshm_clear_error();
			rc = dynshm_create(inst, size, 0, &seg);
			inject_reset();
			stop_capture();
			ASSERT_RC(rc, -EEXIST);
			assert_ptr_equal(seg, (dynshm_segment *)&inst);
			assert_string_not_equal(dynshm_last_error(), "");
			assert_true(capture.n > 1);
			for (int i = 0; i < capture.n && i < 32; i++)
				assert_no_segment(inst, capture.h[i]);
			assert_int_equal(info_of(inst).segments, 0);
			assert_int_equal(os_count(&w), 0);
		}
	}
	xdestroy(f, inst);
}

static const int attach_errors[] = { EACCES, ENOMEM, EMFILE };

static void test_injected_attach(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_segment *seg = xcreate(inst, 20000, 0x66);
	dynshm_handle h = dynshm_segment_handle(seg);

	/* pinned with nobody mapping it: our attach is a real one */
	ASSERT_OK(dynshm_pin_segment(seg));
	ASSERT_OK(dynshm_detach(seg));
	for (const struct step *s = f->be->attach_steps; s->entry; s++) {
		for (size_t e = 0; e < sizeof(attach_errors) / sizeof(int);
		     e++) {
			int err = attach_errors[e];
			dynshm_segment_info si;
			char ctx[128];
			int rc;

			snprintf(ctx, sizeof(ctx), "%s: attach, %s fails %s",
				 f->be->name, s->entry, strerror(err));
			seg = (dynshm_segment *)&inst;
			dynshm_clear_error();
			inject_fail(s->entry, 1, err);
			rc = dynshm_attach(inst, h, &seg);
			if (inject_calls(s->entry) < 1)
				fail_msg("%s: the step was never reached", ctx);
			inject_reset();
			if (rc != -err)
				fail_msg("%s: returned %d (%s)", ctx, rc,
					 dynshm_last_error());
			assert_ptr_equal(seg, (dynshm_segment *)&inst);
			if (!dynshm_last_error()[0])
				fail_msg("%s: no message", ctx);
			/* our reference was dropped again; all else as was */
			si = stat_of(inst, h);
			assert_int_equal(si.references, 0);
			assert_true(si.pinned);
			assert_int_equal(si.state, DYNSHM_SEGMENT_ACTIVE);
			assert_true(os_exists(&w, h));
			assert_int_equal(info_of(inst).segments, 1);
			assert_int_equal(os_count(&w), 1);
			/* and the next attach works */
			ASSERT_OK(dynshm_attach(inst, h, &seg));
			assert_true(check_fill(dynshm_segment_address(seg), 20000,
					       0x66));
			assert_int_equal(stat_of(inst, h).references, 1);
			ASSERT_OK(dynshm_detach(seg));
		}
	}

	/* held by another process: our failed attach leaves its count */
	{
		struct fork_arg arg;
		int to_child[2], to_parent[2];
		pid_t pid;

		make_pipe(f, to_child);
		make_pipe(f, to_parent);
		memset(&arg, 0, sizeof(arg));
		arg.inst = inst;
		arg.h = h;
		arg.rfd = to_child[0];
		arg.wfd = to_parent[1];
		ASSERT_OK(dynshm_unpin_segment(inst, h));
		/* unpinned with nobody mapping it: it went */
		assert_no_segment(inst, h);
		seg = xcreate(inst, 4096, 0x67);
		h = dynshm_segment_handle(seg);
		arg.h = h;
		arg.seg = seg;
		pid = start_fork(f, fork_adopter, &arg); /* adopts seg */
		close_fd(f, to_child[0]);
		close_fd(f, to_parent[1]);
		expect_byte(to_parent[0], 'j');
		ASSERT_OK(dynshm_detach(seg));
		assert_int_equal(stat_of(inst, h).references, 1);
		seg = (dynshm_segment *)&inst;
		inject_fail(f->be->attach_steps[0].entry, 1, EACCES);
		ASSERT_RC(dynshm_attach(inst, h, &seg), -EACCES);
		inject_reset();
		assert_int_equal(stat_of(inst, h).references, 1);
		assert_true(os_exists(&w, h));
		kill(pid, SIGKILL);
		assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);
		ASSERT_OK(dynshm_reap(inst, NULL));
		assert_no_segment(inst, h);
		assert_gone(&w, h, "after the holder was reaped");
	}
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- bad arguments --------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst"), *none = NULL;
	struct where w = where_of(inst);
	dynshm_segment *seg = (dynshm_segment *)&inst, *real;
	dynshm_scope *scope = NULL;

	ASSERT_RC(dynshm_create(inst, 0, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, DYNSHM_IMPL_MAX_SIZE + 1, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, SIZE_MAX, 0, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, 4096, 0x80, &seg), -EINVAL);
	ASSERT_RC(dynshm_create(inst, 4096, 0, NULL), -EINVAL);
	ASSERT_RC(dynshm_create(NULL, 4096, 0, &seg), -EINVAL);
	assert_ptr_equal(seg, (dynshm_segment *)&inst);
	real = xcreate(inst, 4096, 0);
	ASSERT_RC(dynshm_attach(inst, dynshm_segment_handle(real), NULL), -EINVAL);
	ASSERT_RC(dynshm_attach(NULL, dynshm_segment_handle(real), &seg), -EINVAL);
	ASSERT_RC(dynshm_detach(NULL), -EINVAL);
	ASSERT_RC(dynshm_on_detach(NULL, cb_pipe, NULL), -EINVAL);
	ASSERT_RC(dynshm_cancel_on_detach(NULL, cb_pipe, NULL), -EINVAL);
	ASSERT_RC(dynshm_pin_mapping(NULL), -EINVAL);
	ASSERT_RC(dynshm_scope_begin(NULL, &scope), -EINVAL);
	ASSERT_RC(dynshm_scope_begin(inst, NULL), -EINVAL);
	ASSERT_RC(dynshm_instance_info_get(NULL, &(dynshm_instance_info){ 0 },
					   sizeof(dynshm_instance_info)),
		  -EINVAL);
	ASSERT_RC(dynshm_reap(NULL, NULL), -EINVAL);
	ASSERT_RC(dynshm_instance_open(w.dir, NULL, 0x80, &none), -EINVAL);
	ASSERT_RC(dynshm_instance_open(w.dir, NULL, 0, NULL), -EINVAL);
	dynshm_clear_error();
	ASSERT_RC(dynshm_instance_open("relative/inst", NULL, 0, &none), -EINVAL);
	ASSERT_MSG_HAS("relative/inst");
	assert_null(none);
	/* nothing of the refused calls is left; the good one is intact */
	assert_int_equal(info_of(inst).segments, 1);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(os_count(&w), 1);
	ASSERT_OK(dynshm_detach(real));
	xdestroy(f, inst);
}

/*
 * Removing the OS object fails (at the last detach, in the reaper): the
 * segment must stay recorded - MORIBUND, refused to attachers - so that
 * the next reap or the instance's destroy removes it.  (It used to be freed
 * regardless, leaving a SysV segment that nothing could find again.)
 */
struct killed_creator {
	dynshm_instance *inst;
	int wfd;
};

static int fork_create_and_die(void *arg)
{
	struct killed_creator *k = arg;
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	CHILD_OK(dynshm_create(k->inst, 4096, 0, &seg));
	h = dynshm_segment_handle(seg);
	CHILD_CHECK(test_write_full(k->wfd, &h, sizeof(h)) == 0);
	raise(SIGKILL);
	return 1;
}

static void test_injected_remove(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct killed_creator kc;
	dynshm_segment *seg = xcreate(inst, 4096, 0);
	dynshm_handle h = dynshm_segment_handle(seg);
	dynshm_segment_info si;
	unsigned n = 0;
	int p[2];
	pid_t pid;

	/* at the last detach */
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_OK(dynshm_detach(seg));
	assert_true(inject_calls(f->be->remove_entry) >=
		    (unsigned long)f->be->remove_nth);
	inject_reset();
	assert_true(os_exists(&w, h));
	si = stat_of(inst, h);
	assert_int_equal(si.state, DYNSHM_SEGMENT_MORIBUND);
	assert_int_equal(si.references, 0);
	assert_int_equal(info_of(inst).segments, 1);
	seg = (dynshm_segment *)&inst;
	ASSERT_RC(dynshm_attach(inst, h, &seg), -ENOENT);
	assert_int_equal(attach_elsewhere(f, inst, h, -ENOENT, 0), 0);
	/* the next reap finishes it, also while we are still here */
	ASSERT_OK(dynshm_reap(inst, NULL));
	assert_no_segment(inst, h);
	assert_gone(&w, h, "a failed removal, after the reap");
	assert_int_equal(info_of(inst).segments, 0);

	/* in the reaper: the dead creator's segment */
	make_pipe(f, p);
	kc.inst = inst;
	kc.wfd = p[1];
	pid = start_fork(f, fork_create_and_die, &kc);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	assert_int_equal(finish_kid(f, pid), 128 + SIGKILL);
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_RC(dynshm_reap(inst, &n), -EACCES);
	inject_reset();
	assert_int_equal(n, 1);
	assert_true(os_exists(&w, h));
	assert_int_equal(info_of(inst).segments, 1);
	ASSERT_OK(dynshm_reap(inst, &n));
	assert_int_equal(n, 0);
	assert_no_segment(inst, h);
	assert_gone(&w, h, "a failed removal in the reaper, reaped again");

	/* and the instance's destroy takes one still MORIBUND */
	seg = xcreate(inst, 4096, 0);
	h = dynshm_segment_handle(seg);
	inject_fail(f->be->remove_entry, f->be->remove_nth, EACCES);
	ASSERT_OK(dynshm_detach(seg));
	inject_reset();
	assert_true(os_exists(&w, h));
	xdestroy(f, inst);
	assert_gone(&w, h, "a failed removal, after the instance's destroy");
}

/* ---- groups -------------------------------------------------------------- */

WRAPPER_MAIN("injected",
	     T(test_injected_create),
	     T(test_injected_attach),
	     T(test_injected_remove),
	     T(test_bad_arguments))
