/* SPDX-License-Identifier: MIT */
/*
 * test_detach.c - what runs when a segment is let go: on-detach
 * callbacks (at detach, close and exit) and scopes (per thread too), per
 * backend.
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

/* ---- 7. on-detach callbacks -------------------------------------------------- */

static struct {
	int order[32];
	int n;
	int self_cancel_rc;
	int cancel_other_rc;
	int first_byte; /* what a callback read from the segment */
} cblog;

static void cb_record(dynshm_segment *seg, void *arg)
{
	(void)seg;
	if (cblog.n < 32)
		cblog.order[cblog.n] = (int)(intptr_t)arg;
	cblog.n++;
}

static void cb_self_cancel(dynshm_segment *seg, void *arg)
{
	cblog.self_cancel_rc = dynshm_cancel_on_detach(seg, cb_self_cancel, arg);
	cblog.first_byte = *(unsigned char *)dynshm_segment_address(seg);
	cb_record(seg, (void *)100);
}

static void cb_cancel_other(dynshm_segment *seg, void *arg)
{
	cblog.cancel_other_rc = dynshm_cancel_on_detach(seg, cb_record, arg);
	cb_record(seg, (void *)200);
}

static void assert_order(const int *want, int n)
{
	assert_int_equal(cblog.n, n);
	for (int i = 0; i < n; i++)
		if (cblog.order[i] != want[i])
			fail_msg("callback %d ran as number %d, expected %d",
				 cblog.order[i], i + 1, want[i]);
}

static void test_on_detach(void **state)
{
	static const int lifo[] = { 4, 100, 3, 2, 1 };
	static const int only_canceller[] = { 200 };
	static const int at_close[] = { 8, 7 };
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst"), *other;
	dynshm_segment *seg = xcreate(inst, 4096, 0), *again = NULL;
	dynshm_handle h = dynshm_segment_handle(seg);

	memset(&cblog, 0, sizeof(cblog));
	cblog.self_cancel_rc = 1;
	*(unsigned char *)dynshm_segment_address(seg) = 0x5a;
	ASSERT_OK(dynshm_attach(inst, h, &again));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)1));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)2));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)3));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)2));
	ASSERT_OK(dynshm_on_detach(seg, cb_self_cancel, (void *)9));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)4));
	ASSERT_RC(dynshm_on_detach(seg, NULL, NULL), -EINVAL);
	/* the most recent (cb_record, 2) goes: 1 2 3 self 4 remain */
	ASSERT_OK(dynshm_cancel_on_detach(seg, cb_record, (void *)2));
	ASSERT_RC(dynshm_cancel_on_detach(seg, cb_record, (void *)77), -ENOENT);
	ASSERT_RC(dynshm_cancel_on_detach(seg, cb_self_cancel, (void *)8),
		  -ENOENT);

	ASSERT_OK(dynshm_detach(again)); /* not the last: nothing runs */
	assert_int_equal(cblog.n, 0);
	ASSERT_OK(dynshm_detach(seg));
	assert_order(lifo, 5);
	assert_int_equal(cblog.self_cancel_rc, -ENOENT);
	assert_int_equal(cblog.first_byte, 0x5a); /* still mapped in it */
	assert_no_segment(inst, h);

	/* a callback cancelling one that has not run yet */
	memset(&cblog, 0, sizeof(cblog));
	cblog.cancel_other_rc = 1;
	seg = xcreate(inst, 4096, 0);
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)5));
	ASSERT_OK(dynshm_on_detach(seg, cb_cancel_other, (void *)5));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(cblog.cancel_other_rc, 0);
	assert_order(only_canceller, 1);

	/* callbacks run at dynshm_instance_close too */
	memset(&cblog, 0, sizeof(cblog));
	other = xopen(f, "other");
	seg = xcreate(other, 4096, 0);
	h = dynshm_segment_handle(seg);
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)7));
	ASSERT_OK(dynshm_on_detach(seg, cb_record, (void *)8));
	xclose(f, other);
	assert_order(at_close, 2);
	other = xopen(f, "other");
	assert_int_equal(info_of(other).segments, 0); /* destroyed at close */
	assert_no_segment(other, h);
	xdestroy(f, other);
	xdestroy(f, inst);
}

/*
 * A callback attaches the very segment being detached, and detaches it
 * from inside the callback: the attach keeps the mapping (it used to get
 * the dying dynshm_segment, freed as the callback returned), the detach
 * is refused (it used to wrap the attach count).
 */
static struct {
	dynshm_instance *inst;
	dynshm_segment *again;
	int attach_rc, detach_rc;
} reattach;

static void cb_reattach(dynshm_segment *seg, void *arg)
{
	(void)arg;
	reattach.detach_rc = dynshm_detach(seg);
	reattach.attach_rc = dynshm_attach(reattach.inst,
					   dynshm_segment_handle(seg),
					   &reattach.again);
}

static void test_on_detach_reattach(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	dynshm_segment *seg = xcreate(inst, 4096, 0);
	dynshm_handle h = dynshm_segment_handle(seg);
	dynshm_segment *found = NULL;
	unsigned char *addr = dynshm_segment_address(seg);

	memset(&reattach, 0, sizeof(reattach));
	reattach.inst = inst;
	addr[0] = 0x5a;
	ASSERT_OK(dynshm_on_detach(seg, cb_reattach, NULL));
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(reattach.detach_rc, -EINVAL);
	ASSERT_OK(reattach.attach_rc);
	/* the mapping lives on for the callback's attach */
	ASSERT_OK(dynshm_find_mapping(inst, h, &found));
	assert_ptr_equal(found, reattach.again);
	assert_int_equal(dynshm_segment_handle(reattach.again), h);
	assert_int_equal(*(unsigned char *)dynshm_segment_address(reattach.again),
			 0x5a);
	ASSERT_OK(dynshm_detach(reattach.again)); /* now the last: it goes */
	assert_no_segment(inst, h);
	xdestroy(f, inst);
}

struct exit_arg {
	dynshm_instance *inst;
	int wfd;
};

/* Register a callback and exit(0) without detaching or closing. */
static int fork_exit_with_callback(void *arg)
{
	struct exit_arg *a = arg;
	dynshm_segment *seg = NULL;
	dynshm_handle h;

	CHILD_OK(dynshm_create(a->inst, 4096, 0, &seg));
	h = dynshm_segment_handle(seg);
	CHILD_OK(dynshm_on_detach(seg, cb_pipe, (void *)(intptr_t)a->wfd));
	CHILD_CHECK(test_write_full(a->wfd, &h, sizeof(h)) == 0);
	fflush(NULL);
	exit(0);
}

static void test_on_detach_at_exit(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	struct exit_arg arg;
	dynshm_handle h;
	int p[2];
	pid_t pid;

	make_pipe(f, p);
	arg.inst = inst;
	arg.wfd = p[1];
	pid = start_fork(f, fork_exit_with_callback, &arg);
	close_fd(f, p[1]);
	h = recv_handle(p[0]);
	expect_byte(p[0], 'X');
	assert_int_equal(finish_kid(f, pid), 0);
	/* its exit detached (and so destroyed) the segment, and left */
	assert_no_segment(inst, h);
	assert_gone(&w, h, "after the creator's exit");
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/* ---- 8. scopes ------------------------------------------------------------- */

struct thread_create {
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc;
	bool own_scope; /* create inside a scope of this thread, then end it */
	dynshm_handle h;
};

static void *create_in_thread(void *arg)
{
	struct thread_create *t = arg;
	dynshm_scope *scope = NULL;

	if (t->own_scope && (t->rc = dynshm_scope_begin(t->inst, &scope)) != 0)
		return NULL;
	t->rc = dynshm_create(t->inst, 4096, 0, &t->seg);
	if (t->rc == 0)
		t->h = dynshm_segment_handle(t->seg);
	if (t->own_scope && t->rc == 0)
		t->rc = dynshm_scope_end(scope);
	return NULL;
}

static void test_scopes(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);
	dynshm_scope *outer = NULL, *inner = NULL, *s = NULL;
	dynshm_segment *a, *b, *pinned, *c, *again = NULL, *d, *gone;
	dynshm_handle ha, hb, hp, hc, hd;
	void *addr_a, *addr_c, *addr_p;

	ASSERT_OK(dynshm_scope_begin(inst, &outer));
	a = xcreate(inst, 4096, 0xa);
	b = xcreate(inst, 4096, 0xb);
	pinned = xcreate(inst, 4096, 0xc);
	gone = xcreate(inst, 4096, 0);
	ha = dynshm_segment_handle(a);
	hb = dynshm_segment_handle(b);
	hp = dynshm_segment_handle(pinned);
	addr_a = dynshm_segment_address(a);
	addr_p = dynshm_segment_address(pinned);
	ASSERT_OK(dynshm_pin_mapping(b));	    /* moved out of the scope */
	ASSERT_OK(dynshm_pin_segment(pinned)); /* the segment outlives us */
	ASSERT_OK(dynshm_detach(gone));	    /* detached early: no matter */

	ASSERT_OK(dynshm_scope_begin(inst, &inner));
	c = xcreate(inst, 4096, 0xd);
	hc = dynshm_segment_handle(c);
	addr_c = dynshm_segment_address(c);
	/* an attach of what the outer scope maps stays in the outer one */
	ASSERT_OK(dynshm_attach(inst, ha, &again));
	assert_ptr_equal(again, a);

	dynshm_clear_error();
	ASSERT_RC(dynshm_scope_end(outer), -EINVAL);
	assert_string_not_equal(dynshm_last_error(), "");
	ASSERT_RC(dynshm_scope_end(NULL), -EINVAL);

	ASSERT_OK(dynshm_scope_end(inner));
	assert_no_segment(inst, hc);
	assert_gone(&w, hc, "a segment of the inner scope");
	assert_false(is_mapped(addr_c));
	assert_int_equal(stat_of(inst, ha).references, 1);
	assert_true(check_fill(addr_a, 4096, 0xa));

	/* nested again inside the outer one, empty */
	ASSERT_OK(dynshm_scope_begin(inst, &s));
	ASSERT_OK(dynshm_scope_end(s));

	/* the outer scope ends: a fully detached though attached twice */
	ASSERT_OK(dynshm_scope_end(outer));
	assert_no_segment(inst, ha);
	assert_gone(&w, ha, "a segment of the outer scope");
	assert_false(is_mapped(addr_a));
	/* b was moved out: still mapped and held */
	assert_int_equal(stat_of(inst, hb).references, 1);
	assert_true(check_fill(dynshm_segment_address(b), 4096, 0xb));
	/* the pinned segment is unmapped but kept */
	assert_false(is_mapped(addr_p));
	assert_int_equal(stat_of(inst, hp).references, 0);
	assert_true(os_exists(&w, hp));
	assert_int_equal(attach_elsewhere(f, inst, hp, 0, 0xc), 0);

	/* outside any scope a create lives until detached */
	d = xcreate(inst, 4096, 0);
	hd = dynshm_segment_handle(d);
	assert_int_equal(stat_of(inst, hd).references, 1);

	ASSERT_OK(dynshm_detach(d));
	ASSERT_OK(dynshm_detach(b));
	ASSERT_OK(dynshm_unpin_segment(inst, hp));
	assert_gone(&w, hp, "the pinned one after unpin");
	assert_int_equal(info_of(inst).segments, 0);
	xdestroy(f, inst);
}

/*
 * Scopes are per thread: a thread's create while another thread's scope
 * is open belongs to no scope, and a thread's own scope takes only its
 * mappings.  Threads run in a forked process (see test_threads).
 */
static int fork_scope_threads(void *arg)
{
	dynshm_instance *inst = arg;
	struct thread_create plain, scoped;
	dynshm_scope *scope = NULL;
	dynshm_segment *mine = NULL;
	dynshm_segment_info si;
	dynshm_handle hm;
	pthread_t thread;

	CHILD_OK(dynshm_scope_begin(inst, &scope));
	CHILD_OK(dynshm_create(inst, 4096, 0, &mine));
	hm = dynshm_segment_handle(mine);
	memset(&plain, 0, sizeof(plain));
	memset(&scoped, 0, sizeof(scoped));
	plain.inst = scoped.inst = inst;
	scoped.own_scope = true;
	CHILD_CHECK(pthread_create(&thread, NULL, create_in_thread, &plain) ==
		    0);
	CHILD_CHECK(pthread_join(thread, NULL) == 0);
	CHILD_OK(plain.rc);
	CHILD_CHECK(pthread_create(&thread, NULL, create_in_thread, &scoped) ==
		    0);
	CHILD_CHECK(pthread_join(thread, NULL) == 0);
	CHILD_OK(scoped.rc);
	/* the other thread's scope ended: its segment went, ours stayed */
	CHILD_RC(dynshm_stat(inst, scoped.h, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_stat(inst, hm, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_OK(dynshm_scope_end(scope));
	/* ours went with our scope; the plain create of the thread stayed */
	CHILD_RC(dynshm_stat(inst, hm, &si, sizeof(si)), -ENOENT);
	CHILD_OK(dynshm_stat(inst, plain.h, &si, sizeof(si)));
	CHILD_CHECK(si.references == 1);
	CHILD_OK(dynshm_detach(plain.seg));
	CHILD_OK(dynshm_instance_close(inst));
	return 0;
}

static void test_scopes_per_thread(void **state)
{
	struct fixture *f = *state;
	dynshm_instance *inst = xopen(f, "inst");
	struct where w = where_of(inst);

	assert_int_equal(finish_kid(f, start_fork(f, fork_scope_threads, inst)),
			 0);
	assert_int_equal(info_of(inst).segments, 0);
	assert_int_equal(info_of(inst).processes, 1);
	assert_int_equal(os_count(&w), 0);
	xdestroy(f, inst);
}

/* ---- groups -------------------------------------------------------------- */

WRAPPER_MAIN("detach",
	     T(test_on_detach),
	     T(test_on_detach_at_exit),
	     T(test_on_detach_reattach),
	     T(test_scopes),
	     T(test_scopes_per_thread))
