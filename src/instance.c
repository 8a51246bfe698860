/* SPDX-License-Identifier: MIT */
/*
 * instance.c - joining and leaving an instance, the control lock, reaping.
 *
 * PostgreSQL ties DSM to one postmaster: when any backend dies uncleanly,
 * the whole cluster restarts so that shared state can be trusted again.
 * dynshm cannot ask that of a server, so each process is an entry of the
 * control segment's process table with its own row of references.  It is
 * dead only when the kernel has dropped the lock it held for its entry
 * (liveness.c); then a reap - within a few opens (each checks a few
 * processes, see join), on demand, when entries or slots run out, and
 * whenever the control lock reports that its holder died - clears its row;
 * whatever nobody holds any more is destroyed.  An entry is a membership,
 * named by (index, gen): a process checks under the control lock, at every
 * step, that its entry still carries its gen, and one that was released
 * gets -ESTALE and writes nothing more.
 *
 * The control lock is a robust process-shared mutex.  When the kernel tells
 * the next locker EOWNERDEAD, the derived fields are recomputed from primary
 * data (control.h explains the split), dead processes are reaped, and only
 * then is the lock marked consistent.
 */
#include "wrapper.h"
#include "abi.h"

#include "error.h"
#include "impl/impl_internal.h"
#include "region.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef DYNSHM_TEST_HOOKS
void (*dynshm_test_hook)(const char *point);
int dynshm_test_instance_tag = -1;
#endif
unsigned dynshm_fork_generation;

/* ---- registry of open instances: fork and exit handling ---------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dynshm_instance *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void fork_prepare(dynshm_instance *inst);
static int join_after_fork(dynshm_instance *inst);

/*
 * Hold every instance's lock across fork so no child inherits one held,
 * and give the child its parent's references (fork_prepare).
 */
static void before_fork(void)
{
	pthread_mutex_lock(&registry_lock);
	for (dynshm_instance *i = registry; i; i = i->next_open)
		pthread_mutex_lock(&i->mu);
	for (dynshm_instance *i = registry; i; i = i->next_open)
		fork_prepare(i);
}

/* The FORK entry's lock now lives in the child alone (or in nobody). */
static void after_fork_parent(void)
{
	for (dynshm_instance *i = registry; i; i = i->next_open) {
		if (i->fork_fd >= 0)
			dynshm_sys.close(i->fork_fd);
		i->fork_fd = -1;
		i->fork_entry = CTL_NONE;
		pthread_mutex_unlock(&i->mu);
	}
	pthread_mutex_unlock(&registry_lock);
}

static void init_recursive(pthread_mutex_t *mu)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(mu, &attr);
	pthread_mutexattr_destroy(&attr);
}

/*
 * In the child the locks are owned by a thread id that does not exist here
 * (a recursive mutex refuses an unlock by another thread): start them anew.
 */
static void after_fork_child(void)
{
	dynshm_fork_generation++;
	for (dynshm_instance *i = registry; i; i = i->next_open) {
		init_recursive(&i->mu);
		lock_after_fork(i); /* the parent's seat is the parent's */
		i->child_entry = CTL_NONE;
		if (i->fork_fd < 0 && i->fork_empty && i->live_fd >= 0) {
			/* Nothing inherited: the parent's lock is its own. */
			dynshm_sys.close(i->live_fd);
			i->live_fd = -1;
		}
		if (i->fork_fd < 0)
			continue; /* no FORK entry: keep the parent's lock */
		/*
		 * Our references are the FORK entry's, held by fork_fd: the
		 * parent's own description is the parent's business.
		 */
		if (i->live_fd >= 0)
			dynshm_sys.close(i->live_fd);
		i->live_fd = i->fork_fd;
		i->fork_fd = -1;
		i->child_entry = i->fork_entry;
		i->child_gen = i->fork_entry_gen;
		i->fork_entry = CTL_NONE;
	}
	pthread_mutex_init(&registry_lock, NULL);
}

/* At a normal exit, run on-detach callbacks and leave every instance. */
static void at_exit(void)
{
	for (;;) {
		dynshm_instance *inst;

		pthread_mutex_lock(&registry_lock);
		inst = registry;
		/* A forked child that never used an instance holds nothing. */
		while (inst && inst->fork_gen != dynshm_fork_generation)
			inst = inst->next_open;
		pthread_mutex_unlock(&registry_lock);
		if (!inst)
			return;
		dynshm_instance_close(inst);
	}
}

static void registry_init(void)
{
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
	atexit(at_exit);
}

static void registry_add(dynshm_instance *inst)
{
	pthread_mutex_lock(&registry_lock);
	inst->next_open = registry;
	registry = inst;
	pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(dynshm_instance *inst)
{
	pthread_mutex_lock(&registry_lock);
	for (dynshm_instance **p = &registry; *p; p = &(*p)->next_open) {
		if (*p == inst) {
			*p = inst->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int seed(dynshm_instance *inst)
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

/* splitmix64: handles need unpredictability, not cryptographic strength. */
uint64_t inst_random(dynshm_instance *inst)
{
	uint64_t z = (inst->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int space_for(dynshm_instance *inst, dynshm_impl_type type, dynshm_impl_space **out)
{
	int rc;

	if ((unsigned)type >= 4)
		return dynshm_fail(EUCLEAN, "instance '%s' records unknown backend "
					 "%u",
				inst->name, (unsigned)type);
	if (!inst->spaces[type]) {
		rc = dynshm_impl_space_open(type, inst->id, inst->seg_dir,
					 &inst->spaces[type]);
		if (rc < 0)
			return rc;
	}
	*out = inst->spaces[type];
	return 0;
}

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
		out->ctime = (int64_t)(slot->created_ns / 1000000000u);
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
	if (s < inst->c.hdr->max_segments && inst->c.slots[s].handle == handle)
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
static int ctl_lock_any(dynshm_instance *inst)
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
		reap_locked(inst, true, NULL);
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
static void release_process_locked(struct ctl *c, uint32_t p)
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
			c->procs[p].joined_ns = now_ns();
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

/* Leave (entry checked ours by ctl_lock): free it, then drop its lock. */
static void leave_locked(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;

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
 * what is still there.
 */
static void fork_prepare(dynshm_instance *inst)
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
	dynshm_clear_error(); /* fork itself does not fail for this */
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
	proc->joined_ns = now_ns();
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
	rc = seed(inst);
	if (rc == 0) /* a region made since the parent joined (placement.c) */
		rc = placement_after_fork(inst);
	if (rc < 0)
		return rc;
	if (inst->child_entry != CTL_NONE) {
		rc = ctl_lock(inst);
		if (rc < 0)
			return rc;
		if (adopt_fork_entry_locked(inst)) {
			segment_adopt_after_fork(inst);
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
			segment_adopt_after_fork(inst);
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

/* ---- creating and attaching the control segment ------------------------ */

static uint64_t new_instance_id(dynshm_instance *inst)
{
	uint64_t id;

	do {
		id = inst_random(inst);
#ifdef DYNSHM_TEST_HOOKS
		if (dynshm_test_instance_tag >= 0)
			id = (id & ~(uint64_t)0xfff) |
			     (uint64_t)(dynshm_test_instance_tag & 0xfff);
#endif
	} while (id == 0);
	return id;
}

static void close_spaces(dynshm_instance *inst)
{
	for (int t = 0; t < 4; t++) {
		dynshm_impl_space_close(inst->spaces[t]);
		inst->spaces[t] = NULL;
	}
}

/*
 * Something not made by us sits at the control segment's name: a symbolic
 * link, another user's object or SysV segment (after a reboot emptied
 * /dev/shm anyone may create that name).  It is never used, and never
 * removed (wipe); a reset starts over under a new id.
 */
static int planted_control(dynshm_instance *inst, int rc)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", dynshm_last_error());
	return dynshm_fail(-rc,
			"the control segment of instance '%s' cannot be used: "
			"%s; it was not made by dynshm (planted?) and is left "
			"alone: a reset (dsm_demo reset, DYNSHM_OPEN_RESET) "
			"starts the instance over under a new id",
			inst->name, why);
}

/*
 * Is map, the SysV segment at our control key that failed validation, the
 * one this instance made (a key is not unique)?  Yes if it is of our size
 * and still says so (magic, instance id); or if it is of our size and
 * existed when the state file was written: our shmget(IPC_EXCL) at that
 * key had succeeded then, so a segment there no newer than the state file
 * is ours, scribbled.  One made since (SysV emptied by a reboot, another
 * program took the key) is not; nor one whose shm_ctime an IPC_SET moved
 * (doubt: left, never removed).
 */
static bool control_is_ours(dynshm_instance *inst, const dynshm_impl_map *map,
			    const struct inst_state *st)
{
	const struct ctl_header *h = dynshm_impl_map_address(map);
	struct stat sf;

	if (dynshm_impl_map_size(map) != st->ctl_size || st->ctl_size < sizeof(*h))
		return false;
	if (h->magic == CTL_MAGIC && h->instance_id == st->id)
		return true;
	return map->ident.shmid >= 0 &&
	       dynshm_sys.fstatat(inst->dirfd, "state", &sf,
				  AT_SYMLINK_NOFOLLOW) == 0 &&
	       map->ident.ctime <= (int64_t)sf.st_mtime;
}

static int attach_control(dynshm_instance *inst, const struct inst_state *st)
{
	dynshm_impl_space *space = NULL;
	int rc;

	inst->id = st->id;
	inst->backend = st->backend;
	inst->ctl_backend = st->ctl_backend;
	snprintf(inst->seg_dir, sizeof(inst->seg_dir), "%s", st->seg_dir);
	rc = space_for(inst, st->ctl_backend, &space);
	if (rc < 0)
		return rc;
	rc = dynshm_impl_attach(space, CTL_HANDLE, &inst->ctl_map);
	if (rc == -EACCES) /* planted: say what to do (issue 13, item 9) */
		return planted_control(inst, rc);
	if (rc < 0)
		return rc;
	rc = ctl_validate(dynshm_impl_map_address(inst->ctl_map),
			  dynshm_impl_map_size(inst->ctl_map), st->id, inst->name,
			  &inst->c);
	/*
	 * A key is not unique: what fails validation at our control key is
	 * someone else's (wipe leaves it) unless control_is_ours proves it.
	 */
	if (rc < 0 && st->ctl_backend == DYNSHM_IMPL_SYSV &&
	    !control_is_ours(inst, inst->ctl_map, st))
		inst->ctl_not_ours = true;
	if (rc == 0)
		rc = region_check(inst);
	if (rc < 0) {
		dynshm_impl_detach(inst->ctl_map);
		inst->ctl_map = NULL;
	}
	return rc;
}

static void wipe(dynshm_instance *inst);

static int create_control(dynshm_instance *inst, const struct dynshm_config *cfg)
{
	uint64_t region_size = region_plan(cfg);
	size_t size = ctl_total_size(cfg->max_segments, cfg->max_processes,
				     region_size);
	struct inst_state st;
	dynshm_impl_space *space = NULL;
	int rc = -EEXIST;

	memset(&st, 0, sizeof(st));
	st.backend = cfg->backend;
	st.ctl_backend =
		cfg->backend == DYNSHM_IMPL_NONE ? DYNSHM_IMPL_MMAP : cfg->backend;
	st.ctl_size = size;
	snprintf(st.seg_dir, sizeof(st.seg_dir), "%s",
		 cfg->directory[0] ? cfg->directory : inst->dir);
	snprintf(inst->seg_dir, sizeof(inst->seg_dir), "%s", st.seg_dir);
	for (int attempt = 0; rc == -EEXIST && attempt < 8; attempt++) {
		close_spaces(inst);
		inst->id = st.id = new_instance_id(inst);
		/* recorded before it exists: see state_write_pending */
		rc = state_write_pending(inst, &st, (int32_t)getpid(),
					 (int64_t)(now_ns() / 1000000000u));
		if (rc == 0)
			rc = space_for(inst, st.ctl_backend, &space);
		if (rc == 0)
			rc = dynshm_impl_create(space, CTL_HANDLE, size, 0,
					     &inst->ctl_map);
	}
	if (rc < 0) {
		state_remove_pending(inst); /* nothing was made */
		return rc == -EEXIST ? dynshm_fail(EEXIST, "cannot find a free "
						"instance id") : rc;
	}
	HOOK("open:created");
	inst->backend = st.backend;
	inst->ctl_backend = st.ctl_backend;
	rc = ctl_format(dynshm_impl_map_address(inst->ctl_map), inst->id,
			st.backend, cfg->max_segments, cfg->max_processes,
			region_size, (uint32_t)cfg->huge_pages);
	HOOK("open:formatted");
	if (rc == 0)
		rc = ctl_validate(dynshm_impl_map_address(inst->ctl_map), size,
				  inst->id, inst->name, &inst->c);
	if (rc == 0)
		rc = state_write(inst, &st);
	if (rc < 0) {
		/*
		 * Back out: unmap, remove the object, then its record - only
		 * once it is gone: an object that could not be removed stays
		 * named by "pending" for the next open to sweep.  The message
		 * stays the one of the failure.
		 */
		char why[512];
		int gone;

		snprintf(why, sizeof(why), "%s", dynshm_last_error());
		dynshm_impl_detach(inst->ctl_map);
		inst->ctl_map = NULL;
		gone = dynshm_impl_destroy(space, CTL_HANDLE);
		if (gone == 0 || gone == -ENOENT)
			state_remove_pending(inst);
		return dynshm_fail(-rc, "%s", why);
	}
	HOOK("open:state-written");
	state_remove_pending(inst); /* the state file names it now */
	/* After the state file, so that a crash here is wiped by key. */
	rc = region_create(inst, cfg);
	if (rc < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", dynshm_last_error());
		wipe(inst);
		rc = dynshm_fail(-rc, "%s", why);
	}
	return rc;
}

static int sweep_one(dynshm_handle handle, const char *os_name, void *arg)
{
	(void)handle;
	dynshm_impl_destroy_name(arg, os_name);
	return 0;
}

/* Remove by name prefix what a lost control segment can no longer list. */
static void sweep_prefix(dynshm_instance *inst)
{
	static const dynshm_impl_type named[] = { DYNSHM_IMPL_POSIX, DYNSHM_IMPL_MMAP };

	for (size_t i = 0; i < 2; i++) {
		dynshm_impl_space *space;

		if (space_for(inst, named[i], &space) == 0)
			dynshm_impl_list(space, sweep_one, space);
	}
}

/*
 * Destroy everything the instance recorded: every slot's OS object with its
 * own backend, then the control segment, then leftovers by prefix.
 * Marks the control segment dead first, so processes still joined stop.
 */
static void wipe(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;
	dynshm_impl_space *space = NULL;
	bool mapped = inst->ctl_map != NULL;

	if (!inst->ctl_map || c->hdr->region_size)
		region_remove(inst);
	/*
	 * ctl_lock_any: a destroyer killed after marking the segment may have
	 * left every object; sysv ones can be found only through the slots.
	 */
	if (inst->ctl_map && ctl_lock_any(inst) == 0) {
		c->hdr->destroyed = 1; /* see ctl_lock */
		for (uint32_t s = 0; s < c->hdr->max_segments; s++)
			if (c->slots[s].state != SLOT_FREE)
				os_destroy(inst, c->slots[s].backend,
					   c->slots[s].handle);
		ctl_unlock(inst);
	}
	if (inst->ctl_map) {
		dynshm_impl_detach(inst->ctl_map);
		inst->ctl_map = NULL;
	}
	placement_destroy(inst); /* the msharefs region and its record */
	/*
	 * Not mapped: the control object may be gone, or be something
	 * planted at its name.  posix and mmap objects are then removed only
	 * by the prefix sweep, which takes only regular files of ours; a
	 * SysV segment by key only if it is privately ours (sysv.c) and
	 * says it is this instance's control segment (attach_control).
	 */
	if ((mapped || (inst->ctl_backend == DYNSHM_IMPL_SYSV &&
			!inst->ctl_not_ours)) &&
	    space_for(inst, inst->ctl_backend, &space) == 0)
		dynshm_impl_destroy(space, CTL_HANDLE);
	sweep_prefix(inst);
	dynshm_sys.unlinkat(inst->dirfd, "state", 0);
	live_unlink(inst); /* the next incarnation's processes: a new file */
	close_spaces(inst);
}

static void wipe_previous(dynshm_instance *inst, const struct inst_state *st)
{
	if (attach_control(inst, st) < 0)
		inst->ctl_map = NULL; /* corrupt or gone: prefix sweep only */
	wipe(inst);
}

/* An explicit setting that disagrees with the instance is an error. */
static int check_conflicts(dynshm_instance *inst, const struct dynshm_config *cfg)
{
	if (config_is_explicit(cfg, CFG_BACKEND) &&
	    cfg->backend != inst->backend)
		return dynshm_fail(EINVAL,
				"instance '%s' was created with "
				"dynamic_shared_memory_type = %s; the setting "
				"%s conflicts (open with reset to recreate it)",
				inst->name, dynshm_impl_type_name(inst->backend),
				dynshm_impl_type_name(cfg->backend));
	if (config_is_explicit(cfg, CFG_DIRECTORY) && cfg->directory[0] &&
	    strcmp(cfg->directory, inst->seg_dir) != 0)
		return dynshm_fail(EINVAL,
				"instance '%s' keeps mmap segments in '%s'; the "
				"setting dynshm_directory = '%s' conflicts",
				inst->name, inst->seg_dir, cfg->directory);
	if (config_is_explicit(cfg, CFG_MIN_DSM) &&
	    cfg->min_dynamic_shared_memory !=
		    (region_of(&inst->c) ? region_of(&inst->c)->requested : 0))
		return dynshm_fail(EINVAL,
				"instance '%s' was created with a %" PRIu64
				"-byte region; the setting "
				"min_dynamic_shared_memory = %" PRIu64
				" bytes conflicts (open with reset to "
				"recreate it)",
				inst->name, inst->c.hdr->region_size,
				cfg->min_dynamic_shared_memory);
	return 0;
}

/*
 * A first open killed before its state file named its control object left
 * "pending" (state.c): remove the object it names, unless the state file
 * names the same id (killed after writing it).  Under the flock.  A SysV
 * object is removed only if its creator's pid, time and size prove it
 * (sysv.c).  A pending file that cannot be read or parsed is left as it
 * is and the open goes on (its message is not kept: nobody would see it);
 * the next first open or reset replaces it, a destroy removes it.
 */
static void sweep_pending(dynshm_instance *inst)
{
	struct dynshm_impl_ident ident = { -1, 0, 0, 0 };
	struct inst_state pending, st;
	dynshm_impl_space *space = NULL;

	if (state_read_pending(inst, &pending, &ident.cpid, &ident.ctime) < 0) {
		dynshm_clear_error();
		return;
	}
	if (state_read(inst, &st) == 0 && st.id == pending.id) {
		state_remove_pending(inst);
		return;
	}
	dynshm_clear_error();
	ident.size = pending.ctl_size;
	if (dynshm_impl_space_open(pending.ctl_backend, pending.id,
				pending.seg_dir, &space) == 0) {
		int rc = dynshm_impl_destroy_ident(space, CTL_HANDLE, &ident);

		if (rc == 0 || rc == -ENOENT) /* removed, or none of ours */
			state_remove_pending(inst);
		dynshm_impl_space_close(space);
	}
	dynshm_clear_error();
}

static int find_or_create(dynshm_instance *inst, const struct dynshm_config *cfg,
			  unsigned flags)
{
	struct inst_state st;
	int rc;

	sweep_pending(inst); /* a killed first open's object */
	rc = state_read(inst, &st);

	if (rc < 0 && rc != -ENOENT && !(flags & DYNSHM_OPEN_RESET))
		return rc;
	if (rc == 0 && (flags & DYNSHM_OPEN_RESET)) {
		wipe_previous(inst, &st);
		rc = -ENOENT;
	}
	if (rc == 0) {
		rc = attach_control(inst, &st);
		/*
		 * Marked destroyed, yet the state file still names it: its
		 * destroyer died half-way (one would hold our flock).  Finish.
		 */
		if (rc == 0 && !__atomic_load_n(&inst->c.hdr->destroyed,
						__ATOMIC_ACQUIRE))
			return check_conflicts(inst, cfg);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		/* Vanished (reboot, /dev/shm wiped) or half-destroyed. */
		wipe(inst);
	}
	if (flags & DYNSHM_OPEN_EXISTING)
		return dynshm_fail(ENOENT, "instance '%s' does not exist",
				inst->name);
	return create_control(inst, cfg);
}

/* ---- public: open, close, destroy, info, reap --------------------------- */

static int new_instance(const char *name_or_dir, dynshm_instance **out,
			bool *named)
{
	dynshm_instance *inst = calloc(1, sizeof(*inst));
	int rc;

	if (!inst)
		return dynshm_fail(ENOMEM, "out of memory opening an instance");
	inst->dirfd = -1;
	inst->me = CTL_NONE;
	inst->live_fd = inst->fork_fd = inst->lock_fd = -1;
	inst->seat = CTL_NONE;
	inst->fork_entry = inst->child_entry = CTL_NONE;
	rc = state_resolve(name_or_dir, inst->name, sizeof(inst->name),
			   inst->dir, sizeof(inst->dir), named);
	if (rc == 0)
		rc = seed(inst);
	if (rc < 0) {
		free(inst);
		return rc;
	}
	init_recursive(&inst->mu);
	inst->fork_gen = dynshm_fork_generation;
	*out = inst;
	return 0;
}

static void free_instance(dynshm_instance *inst)
{
	placement_close(inst);
	region_unmap(inst);
	if (inst->ctl_map)
		dynshm_impl_detach(inst->ctl_map);
	close_spaces(inst);
	if (inst->live_fd >= 0) /* after leaving: drops our lock if held */
		dynshm_sys.close(inst->live_fd);
	if (inst->lock_fd >= 0)
		dynshm_sys.close(inst->lock_fd);
	if (inst->dirfd >= 0)
		dynshm_sys.close(inst->dirfd);
	free(inst->local);
	pthread_mutex_destroy(&inst->mu);
	free(inst);
}

static int join(dynshm_instance *inst)
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
			leave_locked(inst);
			ctl_unlock(inst);
		}
		return dynshm_fail(ENOMEM, "out of memory joining instance '%s'",
				inst->name);
	}
	return 0;
}

/*
 * The bounded reap of an open (see JOIN_CHECKS), once joined and once the
 * msharefs region is mapped: a dead process's placed segments must be
 * unplaced as they are removed (os_destroy), which needs the region.
 * Best effort: a lock that fails now fails the next call.
 */
static void reap_at_open(dynshm_instance *inst)
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

DYNSHM_EXPORT int dynshm_instance_open(const char *name_or_dir,
				 const dynshm_config *cfg_in, unsigned flags,
				 dynshm_instance **out)
{
	struct dynshm_config cfg;
	dynshm_instance *inst = NULL;
	bool named = false;
	int lockfd = -1, rc;

	if (!out || (flags & ~(DYNSHM_OPEN_RESET | DYNSHM_OPEN_EXISTING |
			       DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_NOREAP)))
		return dynshm_fail(EINVAL, "bad arguments to dynshm_instance_open "
					"(flags 0x%x)",
				flags);
	pthread_once(&registry_once, registry_init);
	if (cfg_in)
		cfg = *cfg_in;
	else
		config_defaults(&cfg);
	entry_begin(); /* see CANCELLATION */
	rc = new_instance(name_or_dir, &inst, &named);
	if (rc < 0) {
		entry_end();
		return rc;
	}
	placement_init(inst, &cfg);
	rc = state_open_dir(inst, named, !(flags & DYNSHM_OPEN_EXISTING));
	if (rc == 0)
		rc = state_lock(inst, &lockfd);
	if (rc == 0)
		rc = find_or_create(inst, &cfg, flags);
	if (rc == 0)
		rc = region_join(inst);
	if (rc == 0) /* under the flock; before join, whose reaps unplace */
		rc = placement_open(inst, &cfg, flags);
	if (rc == 0)
		rc = join(inst);
	if (rc == 0 && !(flags & DYNSHM_OPEN_NOREAP)) /* else dynshm_reap's job */
		reap_at_open(inst);
	if (rc < 0 && lockfd >= 0)
		state_discard_unused(inst);
	if (lockfd >= 0)
		state_unlock(lockfd);
	if (rc < 0) {
		free_instance(inst);
		entry_end();
		return rc;
	}
	registry_add(inst);
	*out = inst;
	entry_end();
	return 0;
}

/*
 * Close and destroy leave the registry before taking inst->mu: before_fork
 * takes the registry lock and then every instance's mu, so taking the
 * registry lock while holding mu would deadlock against a fork in another
 * thread.
 */
DYNSHM_EXPORT int dynshm_instance_close(dynshm_instance *inst)
{
	int rc;

	registry_remove(inst);
	entry_begin(); /* free_instance closes: see CANCELLATION */
	rc = inst_enter(inst);
	if (rc < 0) {
		if (inst) /* cannot rejoin after fork: just let go */
			free_instance(inst);
		entry_end();
		return rc;
	}
	segment_detach_all(inst);
	if (ctl_lock(inst) == 0) {
		leave_locked(inst);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	free_instance(inst);
	entry_end();
	return 0;
}

DYNSHM_EXPORT int dynshm_instance_destroy(dynshm_instance *inst)
{
	int lockfd = -1, rc;

	registry_remove(inst);
	entry_begin(); /* see CANCELLATION */
	rc = inst_enter(inst);
	if (rc < 0) {
		if (inst)
			registry_add(inst); /* not destroyed: still open */
		entry_end();
		return rc;
	}
	segment_detach_all(inst);
	rc = state_lock(inst, &lockfd);
	wipe(inst);
	rc = state_remove(inst) < 0 && rc == 0 ? -EBUSY : rc;
	if (lockfd >= 0)
		state_unlock(lockfd);
	inst_leave(inst);
	free_instance(inst);
	entry_end();
	return rc < 0 ? rc : 0;
}

static int info_fill(dynshm_instance *inst, dynshm_instance_info *info)
{
	struct ctl_header *h;
	int rc;

	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	h = inst->c.hdr;
	memset(info, 0, sizeof(*info));
	info->struct_size = sizeof(*info);
	snprintf(info->name, sizeof(info->name), "%s", inst->name);
	snprintf(info->directory, sizeof(info->directory), "%s", inst->dir);
	info->instance_id = inst->id;
	info->backend = inst->backend;
	info->max_segments = h->max_segments;
	info->max_processes = h->max_processes;
	info->control_size = h->total_size;
	info->creator_pid = h->creator_pid;
	rc = ctl_lock(inst);
	if (rc == 0) {
		info->segments = h->nsegments;
		info->processes = h->nprocs;
		info->lock_repairs = h->lock_repairs;
		info->processes_reaped = h->processes_reaped;
		/* this call's own take included */
		info->lock_acquisitions = h->lock_acquisitions;
		info->lock_waits = h->lock_waits;
		info->lock_wait_ns = h->lock_wait_ns;
		region_info_locked(inst, info);
		ctl_unlock(inst);
	}
	placement_info(inst, info);
	inst_leave(inst);
	return rc;
}

/* Filled in full here, then copied out at the caller's size (abi.h). */
DYNSHM_EXPORT int dynshm_instance_info_get(dynshm_instance *inst,
					   dynshm_instance_info *info,
					   size_t info_size)
{
	dynshm_instance_info full;
	int rc;

	if (!info)
		return dynshm_fail(EINVAL, "no info buffer given");
	rc = abi_check_size(info_size, "dynshm_instance_info");
	if (rc < 0)
		return rc;
	rc = info_fill(inst, &full);
	if (rc == 0)
		abi_copy_out(info, info_size, &full, sizeof(full));
	return rc;
}

DYNSHM_EXPORT int dynshm_reap(dynshm_instance *inst, unsigned *reaped)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	rc = ctl_lock(inst);
	if (rc == 0) {
		unsigned gone = 0;
		char why[512] = "";

		rc = reap_locked(inst, true, reaped);
		if (rc < 0) /* the vanished pass clears messages: keep ours */
			snprintf(why, sizeof(why), "%s", dynshm_last_error());
		segment_retire_vanished_locked(inst, &gone); /* issue 13.6 */
		ctl_unlock(inst);
		if (rc < 0)
			dynshm_fail(-rc, "%s", why);
	}
	inst_leave(inst);
	return rc;
}
