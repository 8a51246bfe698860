/* SPDX-License-Identifier: MIT */
/*
 * process.c - a process's membership of an instance: joining (its entry in
 * the process table, and the lock on it), leaving, and what a fork hands
 * to the child - and the entry into every public call (inst_enter), where
 * a forked child's first call makes it a process of its own.
 *
 * A layer of its own, between the control lock and reaping (sync.c) below
 * and segments and instances above: segment.c enters calls through
 * inst_enter, instance.c joins and leaves through here, and nothing here
 * calls up into either.
 */
#include "wrapper.h"

#include "error.h"
#include "placement.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int join_after_fork(dynshm_instance *inst);

int process_seed(dynshm_instance *inst)
{
	uint64_t s = 0;

	if (dynshm_sys.getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
		/* Kernels before 3.17 have no getrandom (docs/kernels.md). */
		if (errno == ENOSYS)
			return dynshm_fail(ENOSYS, "cannot read random bytes: "
					   "this kernel has no getrandom() "
					   "system call (Linux 3.17 or later "
					   "is needed)");
		return dynshm_fail(errno ? errno : EIO,
				"cannot read random bytes: %s", strerror(errno));
	}
	inst->rng = s ^ (uint64_t)getpid() << 32;
	return 0;
}

/* ---- joining ------------------------------------------------------------- */

/*
 * A free entry whose byte we could lock on fd (an entry freed while its
 * old process still holds the byte - released behind its back - is
 * skipped), reaping once when none is free.  Its index, or CTL_NONE with
 * the error in *rc.
 */
static uint32_t take_entry_locked(dynshm_instance *inst, int fd, int *rc)
{
	struct ctl *c = &inst->c;

	*rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
			if (c->procs[p].state != PROC_FREE)
				continue;
			*rc = live_take(inst, fd, p);
			if (*rc == -EAGAIN)
				continue;
			if (*rc < 0)
				return CTL_NONE;
			memset(ctl_row(c, p), 0, c->hdr->row_words * 8);
			/*
			 * A new membership: gen moves at the take too, so
			 * an entry freed without its bump (a scribble, an
			 * older library) still never passes for its past.
			 */
			__atomic_store_n(&c->procs[p].gen, c->procs[p].gen + 1,
					 __ATOMIC_RELEASE);
			c->procs[p].pid = (int32_t)getpid();
			c->procs[p].parent = CTL_NONE;
			c->procs[p].joined_ns = ctl_now_ns();
			c->procs[p].nrefs = 0;
			return p;
		}
		reap_locked(inst, false, NULL); /* a dead one may free one */
	}
	*rc = dynshm_fail(ENOSPC,
			"all %u process entries of instance '%s' are in use "
			"(raise max_processes)",
			c->hdr->max_processes, inst->name);
	return CTL_NONE;
}

/* fd: a new description of the procs file, which will hold our lock. */
static int join_locked(dynshm_instance *inst, int fd)
{
	struct ctl *c = &inst->c;
	int rc;
	uint32_t p = take_entry_locked(inst, fd, &rc);

	if (p == CTL_NONE)
		return rc;
	ctl_publish(&c->procs[p].state, PROC_LIVE);
	c->hdr->nprocs++;
	inst->me = p;
	inst->me_gen = c->procs[p].gen;
	inst->pid = getpid();
	inst->fork_gen = dynshm_fork_generation;
	return 0;
}

/*
 * Leave (entry checked ours by ctl_lock): free it, then drop its lock.
 * Unless a child forked without a FORK entry shares the lock (our
 * description, see fork below): the entry and its references are then
 * what keeps that child's memory, so they stay until the kernel drops the
 * lock - when the child exits or, joined, lets the description go - and
 * the next reap releases them.
 */
void process_leave_locked(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;

	if (inst->shares_entry) {
		inst->me = CTL_NONE;
		return;
	}
	release_process_locked(c, inst->me);
	c->hdr->processes_reaped--; /* a clean leave is not a reap */
	live_give_back(inst->live_fd, inst->me);
	inst->me = CTL_NONE;
}

/*
 * ---- fork -------------------------------------------------------------------
 * A forked child holds its parent's references from the fork until its
 * first call adopts them or it exits.  Before the fork the parent copies
 * its row into a FORK entry (control.h) locked through a new description
 * of the procs file; after the fork the parent closes that descriptor, so
 * the lock lives exactly as long as the child keeps it: when the child
 * exits without a call the kernel drops it and the next reap releases the
 * entry; at its first call the child makes the entry LIVE, its own (its
 * token from then on; adoption needs no new descriptor).  So a segment -
 * a region or msharefs-placed one included - is never reused while a child
 * that inherited it lives, even if the parent destroys it and dies.
 * A parent that holds no reference makes none (nothing to inherit).  Where
 * no FORK entry can be made (no free entry, no descriptor) the fork goes
 * on, and the child keeps its parent's description: the parent's entry
 * then lives while the child does, and the child adopts at its first call
 * what is still there.  For that the parent must not let go of it: the
 * segments it maps at such a fork keep their reference past its detach
 * (child_holds), and its leave keeps the entry (shares_entry); both are
 * released when the entry's lock goes.
 */
void process_fork_prepare(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;
	uint32_t p;
	int fd = -1, rc;

	inst->fork_fd = -1;
	inst->fork_entry = CTL_NONE;
	inst->fork_empty = false;
	/*
	 * A child forking before its first call: with a FORK entry of its
	 * own it adopts it first, so that its child gets a copy; without,
	 * it has nothing of its own to pass on (its descriptor, if any, is
	 * inherited as it is).
	 */
	if (inst->fork_gen != dynshm_fork_generation &&
	    (inst->child_entry == CTL_NONE || join_after_fork(inst) < 0))
		goto out;
	if (inst->me == CTL_NONE)
		goto out;
	/*
	 * Nothing to inherit: the child needs neither entry nor lock.  Our
	 * own row changes only under inst->mu, which we hold, so it may be
	 * read before the control lock - which a fork then never waits for.
	 */
	if (!inst->segs) {
		inst->fork_empty = true;
		goto out;
	}
	if (ctl_lock(inst) < 0)
		goto out;
	p = CTL_NONE;
	if (live_open(inst, &fd) == 0)
		p = take_entry_locked(inst, fd, &rc);
	if (p != CTL_NONE) {
		const uint64_t *row = ctl_row(c, inst->me);

		for (uint32_t w = 0; w < c->hdr->row_words; w++)
			for (uint64_t bits = row[w]; bits; bits &= bits - 1)
				ctl_set_bit(c, p,
					    w * 64 + (uint32_t)__builtin_ctzll(
							     bits));
		c->procs[p].parent = inst->me;
		HOOK("fork:entry");
		ctl_publish(&c->procs[p].state, PROC_FORK);
		c->hdr->nforks++;
		inst->fork_entry = p;
		inst->fork_entry_gen = c->procs[p].gen;
		inst->fork_fd = fd;
		fd = -1;
	}
	ctl_unlock(inst);
out:
	if (fd >= 0)
		dynshm_sys.close(fd);
	/* a joined process with mappings whose child got no FORK entry */
	if (inst->fork_gen == dynshm_fork_generation &&
	    inst->me != CTL_NONE && !inst->fork_empty &&
	    inst->fork_entry == CTL_NONE) {
		inst->shares_entry = true;
		for (struct dynshm_segment *seg = inst->segs; seg;
		     seg = seg->next)
			seg->child_holds = true;
	}
	dynshm_clear_error(); /* fork itself does not fail for this */
}

/*
 * A forked child's mappings, once it is a process of its own: its row
 * gets a bit for each still-live segment it inherited; one destroyed since
 * the fork keeps its memory here but loses its slot.  Under the lock.
 */
static void adopt_mappings_locked(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;

	for (struct dynshm_segment *seg = inst->segs; seg; seg = seg->next) {
		struct ctl_slot *slot;

		if (seg->slot == CTL_NONE)
			continue;
		slot = &c->slots[seg->slot];
		if (slot->handle == seg->handle &&
		    slot->state == SLOT_ACTIVE) {
			ctl_set_bit(c, inst->me, seg->slot);
			continue;
		}
		/* Destroyed since the fork: keep the memory, not the slot. */
		inst->local[seg->slot] = NULL;
		seg->slot = CTL_NONE;
	}
}

/* The FORK entry made for us, if it is still ours: make it LIVE. */
static bool adopt_fork_entry_locked(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;
	uint32_t p = inst->child_entry;
	struct ctl_proc *proc;

	inst->child_entry = CTL_NONE;
	if (p >= c->hdr->max_processes)
		return false;
	proc = &c->procs[p];
	if (proc->state != PROC_FORK || proc->gen != inst->child_gen)
		return false;
	proc->pid = (int32_t)getpid();
	proc->joined_ns = ctl_now_ns();
	ctl_publish(&proc->state, PROC_LIVE);
	c->hdr->nprocs++;
	c->hdr->nforks--;
	inst->me = p;
	inst->me_gen = proc->gen;
	inst->pid = getpid();
	inst->fork_gen = dynshm_fork_generation;
	return true;
}

/*
 * In a forked child: become a process of our own, adopt the mappings.
 * With a FORK entry made for us, adopting it needs no descriptor (ours
 * already holds its lock).  Else a fresh join, through a new description:
 * our checks of others go through it too, since the inherited one may
 * hold our parent's lock, which would hide the parent from us.
 */
static int join_after_fork(dynshm_instance *inst)
{
	int old = inst->live_fd, fd = -1, rc;

	inst->me = CTL_NONE;
	rc = process_seed(inst);
	if (rc == 0) /* a region made since the parent joined (placement.c) */
		rc = placement_after_fork(inst);
	if (rc < 0)
		return rc;
	if (inst->child_entry != CTL_NONE) {
		rc = ctl_lock(inst);
		if (rc < 0)
			return rc;
		if (adopt_fork_entry_locked(inst)) {
			adopt_mappings_locked(inst);
			ctl_unlock(inst);
			return 0;
		}
		ctl_unlock(inst); /* released behind our back: join afresh */
	}
	rc = live_open(inst, &fd);
	if (rc < 0)
		return rc;
	inst->live_fd = fd;
	rc = ctl_lock(inst);
	if (rc == 0) {
		rc = join_locked(inst, fd);
		if (rc == 0)
			adopt_mappings_locked(inst);
		ctl_unlock(inst);
	}
	if (rc < 0) {
		inst->live_fd = old;
		dynshm_sys.close(fd);
		return rc;
	}
	/* The inherited description stays with whoever else has it. */
	if (old >= 0)
		dynshm_sys.close(old);
	return 0;
}

/*
 * CANCELLATION.  open, read, close, fsync and nanosleep are cancellation
 * points, and the library calls them with inst->mu (not robust: a thread
 * that exits holding it blocks every other thread for good) and sometimes
 * the control lock held, or half-way through a lifetime step.  So no public
 * entry point can be cancelled half-way: entry_begin() disables
 * cancellation for the duration of the call and entry_end() restores the
 * caller's state, so a pending cancellation acts at the caller's next
 * cancellation point after the call returned.  Nested entries (on-detach
 * callbacks calling back, get-or-create's waits) only count.  inst_enter
 * and inst_leave do it for every entry point that takes inst->mu; the few
 * that do work outside it (open, close, destroy) call these themselves.
 */
static _Thread_local unsigned entry_depth;
static _Thread_local int entry_cancel_state;

void entry_begin(void)
{
	if (entry_depth++ == 0)
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE,
				       &entry_cancel_state);
}

void entry_end(void)
{
	if (entry_depth > 0 && --entry_depth == 0)
		pthread_setcancelstate(entry_cancel_state, NULL);
}

int inst_enter(dynshm_instance *inst)
{
	int rc;

	if (!inst)
		return dynshm_fail(EINVAL, "no instance given");
	entry_begin();
	pthread_mutex_lock(&inst->mu);
	if (inst->fork_gen == dynshm_fork_generation)
		return 0;
	rc = join_after_fork(inst);
	if (rc < 0) {
		pthread_mutex_unlock(&inst->mu);
		entry_end();
	}
	return rc;
}

void inst_leave(dynshm_instance *inst)
{
	pthread_mutex_unlock(&inst->mu);
	entry_end();
}

int process_join(dynshm_instance *inst)
{
	int rc = live_open(inst, &inst->live_fd);

	if (rc < 0)
		return rc;
	rc = ctl_lock(inst);
	if (rc < 0)
		return rc;
	rc = join_locked(inst, inst->live_fd);
	ctl_unlock(inst);
	if (rc < 0)
		return rc;
	inst->local = calloc(inst->c.max_segments, sizeof(*inst->local));
	if (!inst->local) {
		if (ctl_lock(inst) == 0) {
			process_leave_locked(inst);
			ctl_unlock(inst);
		}
		return dynshm_fail(ENOMEM, "out of memory joining instance '%s'",
				inst->name);
	}
	return 0;
}

