/* SPDX-License-Identifier: MIT */
/*
 * sync.c - the control lock, its repair after a dead holder, and reaping:
 * the one home of what keeps the control segment consistent between
 * processes that come, go and die.
 *
 * Layers, bottom-up: the backends (impl/) and their spaces (spaces.c); the
 * control segment (control.c, region.c); the procs file and its locks
 * (liveness.c); msharefs placement (placement.c, mshare.c); this file; then
 * segments (segment.c, named.c) and instances (instance.c) with the public
 * API.  Nothing in a lower layer calls up into this file, and this file
 * calls nothing above it: the instance layer asks it to lock, repair and
 * reap, never the reverse.
 */
#include "wrapper.h"

#include "error.h"
#include "impl/impl_internal.h"
#include "placement.h"
#include "region.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Our PID namespace, as the inode of /proc/self/ns/pid (0 when /proc is
 * not there to say).  Asked once per process: a process's own namespace
 * never changes (unshare and setns move only its later children, which
 * are new processes: a new fork generation).
 */
uint64_t own_pid_namespace(void)
{
	static unsigned asked_in = UINT_MAX; /* atomics: threads may ask */
	static uint64_t ino;
	struct stat st;
	uint64_t now;

	if (__atomic_load_n(&asked_in, __ATOMIC_ACQUIRE) ==
	    dynshm_fork_generation)
		return __atomic_load_n(&ino, __ATOMIC_RELAXED);
	now = dynshm_sys.fstatat(AT_FDCWD, "/proc/self/ns/pid", &st, 0) == 0 ?
		      (uint64_t)st.st_ino :
		      0;
	__atomic_store_n(&ino, now, __ATOMIC_RELAXED);
	__atomic_store_n(&asked_in, dynshm_fork_generation, __ATOMIC_RELEASE);
	return now;
}

void slot_ident(const struct ctl_slot *slot, struct dynshm_impl_ident *out)
{
	int32_t id = __atomic_load_n(&slot->os_id, __ATOMIC_ACQUIRE);

	out->size = slot->size;
	if (id > 0) {
		out->shmid = id - 1;
		out->cpid = slot->os_cpid;
		out->ctime = slot->os_ctime;
	} else { /* what the creator's proof needs (control.h) */
		out->shmid = -1;
		out->cpid = slot->creator_pid;
		/* a pid from another PID namespace proves nothing here */
		if (slot->backend == DYNSHM_IMPL_SYSV &&
		    (slot->creator_pidns == 0 ||
		     slot->creator_pidns != own_pid_namespace()))
			out->cpid = 0;
		/*
		 * A second early: shm_ctime is the kernel's coarse clock,
		 * which can still read the previous second a few ms after
		 * our CLOCK_REALTIME passed it - a creator that reserved just
		 * after a second began made an object "older" than its slot,
		 * which the reaper then left behind as not its own.
		 */
		out->ctime = (int64_t)(slot->created_ns / 1000000000u) - 1;
	}
}

/* The creator, while the slot is CREATING and its own. */
void slot_record_ident(struct ctl_slot *slot, const dynshm_impl_map *map)
{
	if (map->ident.shmid < 0)
		return; /* not sysv, or unknown: proved by its creator */
	slot->os_cpid = map->ident.cpid;
	slot->os_ctime = map->ident.ctime;
	HOOK("create:before-ident");
	__atomic_store_n(&slot->os_id, map->ident.shmid + 1, __ATOMIC_RELEASE);
}

/*
 * Remove a segment's OS object with the backend that made it.  handle is
 * the current handle of its slot, whose identity (control.h) says which
 * object that is: a SysV object that does not match it is left alone.
 */
int os_destroy(dynshm_instance *inst, uint32_t backend, dynshm_handle handle)
{
	struct dynshm_impl_ident ident = { -1, 0, 0, 0 };
	uint32_t s = (uint32_t)(handle & HANDLE_SLOT_MASK);
	dynshm_impl_space *space = NULL;
	int rc;

	if (backend == CTL_BACKEND_REGION)
		return 0; /* carved from the region: no object of its own */
	if (s < inst->c.max_segments && inst->c.slots[s].handle == handle)
		slot_ident(&inst->c.slots[s], &ident);
	rc = space_for(inst, (dynshm_impl_type)backend, &space);
	if (rc == 0) {
		placement_release(inst, backend, handle); /* mshare: first */
		rc = dynshm_impl_destroy_ident(space, handle, &ident);
	}
	return rc == -ENOENT ? 0 : rc;
}

/* ---- the control lock --------------------------------------------------- */

/*
 * A dead holder's lock is released when its descriptors are closed, and
 * its entry's lock on the procs file with them, but not necessarily at the
 * same instant, so its entry may still look held for a moment.  Wait for
 * it, a bounded while, so that the repair releases the dead holder and
 * finishes its work now rather than at some later reap.
 */
static void wait_for_dead_holder(dynshm_instance *inst, uint32_t holder)
{
	struct ctl *c = &inst->c;
	long ns = 10000;

	if (holder >= c->hdr->max_processes || holder == inst->me ||
	    !ctl_proc_held(&c->procs[holder]))
		return;
	for (int i = 0; i < 40 && live_held(inst, holder); i++) {
		struct timespec ts = { 0, ns };

		dynshm_sys.nanosleep(&ts, NULL);
		ns = ns * 2 > 5000000 ? 5000000 : ns * 2;
	}
}

/*
 * Lock (repairing after a dead holder) even if the instance was destroyed.
 * The lock is taken over from a holder that died with it (liveness.c, THE
 * CONTROL LOCK: "stolen"); lock_holder is set by every holder as it takes
 * the lock and put back to CTL_NONE as it lets go, so it says the same
 * (a holder killed after its release but before the word was cleared
 * left nothing half done, and is not counted), and names whose exit to
 * wait for.
 */
int ctl_lock_any(dynshm_instance *inst)
{
	struct ctl_header *h = inst->c.hdr;
	uint32_t holder;
	bool stolen;
	int rc = lock_take(inst, true, &stolen);

	if (rc < 0)
		return rc;
	holder = __atomic_load_n(&h->lock_holder, __ATOMIC_ACQUIRE);
	__atomic_store_n(&h->lock_holder,
			 inst->me != CTL_NONE ? inst->me : CTL_ANON,
			 __ATOMIC_RELAXED);
	if (holder != CTL_NONE) {
		/* The holder died inside a mutation: finish or undo it. */
		wait_for_dead_holder(inst, holder);
		ctl_check_live(&inst->c); /* the geometry first */
		dynshm_clear_error();
		ctl_recompute(&inst->c);
		h->lock_repairs++;
		{
			unsigned n = 0;

			reap_locked(inst, true, &n);
			inst->repair_reaped += n; /* dynshm_reap counts them */
		}
	}
	/* Scribbled (C) fields are put back; ctl_lock reports it. */
	if (ctl_check_live(&inst->c) < 0)
		inst->scribbled = true;
	return 0;
}

void ctl_unlock(dynshm_instance *inst)
{
	__atomic_store_n(&inst->c.hdr->lock_holder, CTL_NONE,
			 __ATOMIC_RELEASE);
	lock_give(inst);
}

int ctl_lock(dynshm_instance *inst)
{
	struct ctl_header *h = inst->c.hdr;
	int rc = ctl_lock_any(inst);

	if (rc < 0)
		return rc;
	if (inst->scribbled) {
		char why[400];

		inst->scribbled = false;
		snprintf(why, sizeof(why), "%s", dynshm_last_error());
		ctl_unlock(inst);
		return dynshm_fail(EUCLEAN, "instance '%s': %s", inst->name,
				why);
	}
	if (h->destroyed) {
		ctl_unlock(inst);
		return dynshm_fail(ENOENT, "instance '%s' was destroyed or reset "
					"by another process",
				inst->name);
	}
	/* Still ours?  A released process changes nothing (wrapper.h). */
	if (inst->me != CTL_NONE &&
	    (inst->c.procs[inst->me].state != PROC_LIVE ||
	     inst->c.procs[inst->me].gen != inst->me_gen)) {
		ctl_unlock(inst);
		return dynshm_fail(ESTALE, "this process was released from "
					"instance '%s'; open it again",
				inst->name);
	}
	return 0;
}

/* ---- reaping ------------------------------------------------------------ */

void slot_free_locked(dynshm_instance *inst, uint32_t s)
{
	struct ctl *c = &inst->c;
	struct ctl_slot *slot = &c->slots[s];

	/* Clear stray bits first: a reused slot must start unreferenced. */
	for (uint32_t p = 0; slot->refcount && p < c->hdr->max_processes; p++)
		ctl_clear_bit(c, p, s);
	region_free_locked(c, s); /* derived: a crash here is rebuilt */
	slot->gen++;
	slot->pinned = 0;
	slot->doomed = 0;
	ctl_publish(&slot->state, SLOT_FREE);
	ctl_names_remove(c, s); /* derived, after FREE: see ctl_names_remove */
	c->hdr->nsegments--;
	ctl_push_free(c, s);
}

/*
 * Is the entry still the process that became the slot's owner?  Not if it
 * was taken since by another process (owner_gen), whatever its pid.
 */
static bool owner_alive(const struct ctl *c, const struct ctl_slot *slot)
{
	const struct ctl_proc *p;

	if (slot->owner >= c->hdr->max_processes)
		return false;
	p = &c->procs[slot->owner];
	return p->state == PROC_LIVE && p->gen == slot->owner_gen;
}

/* Clear p's row, end its membership (gen first), free the entry. */
void release_process_locked(struct ctl *c, uint32_t p)
{
	uint64_t *row = ctl_row(c, p);
	bool live = c->procs[p].state == PROC_LIVE;
	uint32_t max = c->hdr->max_segments;

	for (uint32_t w = 0; w < c->hdr->row_words; w++) {
		while (row[w]) {
			uint32_t s = w * 64 + (uint32_t)__builtin_ctzll(row[w]);

			if (s >= max) { /* scribbled: no slot to count down */
				row[w] &= ~(~(uint64_t)0 << (s % 64));
				continue;
			}
			ctl_clear_bit(c, p, s);
		}
	}
	__atomic_store_n(&c->procs[p].gen, c->procs[p].gen + 1,
			 __ATOMIC_RELEASE);
	ctl_publish(&c->procs[p].state, PROC_FREE);
	if (live) { /* a FORK entry was no process yet */
		c->hdr->nprocs--;
		c->hdr->processes_reaped++;
	} else {
		c->hdr->nforks--;
	}
}

/*
 * Slot s is about to be let go of, but references remain: if one of them
 * is a FORK entry whose child has exited (the usual end of a child that
 * never used the instance, or that exec'd), reap now, so that the segment
 * goes at this detach as it would have without the fork - not at some
 * later reap.  O(1) while no FORK entry exists.
 */
void forks_let_go_locked(dynshm_instance *inst, uint32_t s)
{
	struct ctl *c = &inst->c;

	if (c->hdr->nforks == 0 || c->slots[s].refcount == 0)
		return;
	for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
		if (c->procs[p].state != PROC_FORK || !ctl_bit(c, p, s))
			continue;
		if (!live_held(inst, p)) {
			reap_locked(inst, false, NULL);
			return;
		}
	}
}

/*
 * Release dead processes, then (when any died, or when sweep is asked for)
 * finish every slot whose owner is gone and destroy what nobody holds.
 * The OS objects are removed under the lock: reaping is rare and must not
 * leave a window in which a half-finished slot is visible as free.
 */
int reap_locked(dynshm_instance *inst, bool sweep, unsigned *reaped)
{
	struct ctl *c = &inst->c;
	unsigned dead = 0;
	int first_err = 0;
	bool released = false;

	for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
		if (!ctl_proc_held(&c->procs[p]) || p == inst->me)
			continue;
		if (live_held(inst, p)) /* the kernel's word; doubt is life */
			continue;
		HOOK("reap:release");
		if (c->procs[p].state == PROC_LIVE)
			dead++; /* a FORK entry's child never joined */
		release_process_locked(c, p);
		released = true;
	}
	if (released || sweep) {
		for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
			struct ctl_slot *slot = &c->slots[s];
			bool finish = false;

			if (slot->state == SLOT_CREATING ||
			    slot->state == SLOT_MORIBUND)
				finish = !owner_alive(c, slot);
			else if (slot->state == SLOT_ACTIVE)
				finish = slot->refcount == 0 && !slot->pinned;
			if (!finish)
				continue;
			{
				int rc = os_destroy(inst, slot->backend,
						    slot->handle);

				if (rc < 0 && !first_err)
					first_err = rc;
				if (rc < 0) {
					/*
					 * Still there: the next reap tries
					 * again.  MORIBUND without an owner,
					 * so that a dead creator's name is
					 * free now (control.h).
					 */
					slot->owner = CTL_NONE;
					ctl_publish(&slot->state,
						    SLOT_MORIBUND);
					continue;
				}
			}
			slot_free_locked(inst, s);
		}
	}
	if (reaped)
		*reaped = dead;
	return first_err;
}

/*
 * The reap at open.  An open looks at a bounded number of entries instead
 * of all: JOIN_CHECKS held entries, round robin from reap_cursor, each
 * asked of the kernel (live_held, one F_OFD_GETLK).  Their indexes are
 * picked under the control lock and checked outside it.  Only when one of
 * them is dead does the open do the full reap, under the lock, which asks
 * again: where one process died, others often did (a server killed as a
 * whole), and cleaning up after a crash may cost what dynshm_reap costs,
 * once.  So with n processes joined a dead one is found within
 * n/JOIN_CHECKS opens, and at once by dynshm_reap, a full table or a lock
 * repair.  An unlocked verdict that is out of date (the entry was freed
 * and taken again meanwhile) only costs that full reap.
 */
#define JOIN_CHECKS 8

/* Under the lock: up to JOIN_CHECKS held entries other than ours. */
static unsigned pick_checks_locked(dynshm_instance *inst, uint32_t *chk)
{
	struct ctl *c = &inst->c;
	uint32_t max = c->hdr->max_processes;
	uint32_t p = c->hdr->reap_cursor % max;
	unsigned n = 0;

	for (uint32_t seen = 0; seen < max && n < JOIN_CHECKS; seen++) {
		if (ctl_proc_held(&c->procs[p]) && p != inst->me)
			chk[n++] = p;
		p = p + 1 == max ? 0 : p + 1;
	}
	c->hdr->reap_cursor = p;
	return n;
}

/* Outside the lock: is any of the picked processes gone? */
static bool any_dead(dynshm_instance *inst, const uint32_t *chk, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!live_held(inst, chk[i]))
			return true;
	return false;
}

/*
 * Release dead processes now; best effort (a failing lock fails later).
 * Before this process has joined (placement_open reaps before the join)
 * it has no descriptor of the procs file to ask the kernel with, and a
 * check without one is doubt: borrow one for the reap.  It holds no lock,
 * so closing it changes nothing for anyone.
 */
void reap_dead(dynshm_instance *inst)
{
	int borrowed = -1;

	if (inst->live_fd < 0 && live_open(inst, &borrowed) == 0)
		inst->live_fd = borrowed;
	if (ctl_lock(inst) < 0)
		dynshm_clear_error();
	else {
		reap_locked(inst, false, NULL);
		ctl_unlock(inst);
	}
	if (borrowed >= 0) {
		inst->live_fd = -1;
		dynshm_sys.close(borrowed);
	}
	dynshm_clear_error();
}

/*
 * The bounded reap of an open (see JOIN_CHECKS), once joined and once the
 * msharefs region is mapped: a dead process's placed segments must be
 * unplaced as they are removed (os_destroy), which needs the region.
 * Best effort: a lock that fails now fails the next call.
 */
void reap_at_open(dynshm_instance *inst)
{
	uint32_t chk[JOIN_CHECKS];
	unsigned n;

	if (ctl_lock(inst) < 0) {
		dynshm_clear_error();
		return;
	}
	n = pick_checks_locked(inst, chk);
	ctl_unlock(inst);
	if (any_dead(inst, chk, n))
		reap_dead(inst);
}
