/*
 * instance.c - joining and leaving an instance, the control lock, reaping.
 *
 * PostgreSQL ties DSM to one postmaster: when any backend dies uncleanly,
 * the whole cluster restarts so that shared state can be trusted again.
 * dynshm cannot ask that of a server, so each process is an entry of the
 * control segment's process table (pid + start time, so a reused pid is not
 * mistaken for the old process) with its own row of references.  A process
 * that dies is found by a reap - within a few opens (each checks a few
 * processes, see join), on demand, when entries or slots run out, and
 * whenever the control lock reports that its holder died - and its row is
 * cleared on its own; whatever nobody holds any more is destroyed.
 *
 * The control lock is a robust process-shared mutex.  When the kernel tells
 * the next locker EOWNERDEAD, the derived fields are recomputed from primary
 * data (control.h explains the split), dead processes are reaped, and only
 * then is the lock marked consistent.
 */
#include "wrapper.h"

#include "error.h"
#include "region.h"
#include "sys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void (*dynshm_test_hook)(const char *point);
int dynshm_test_instance_tag = -1;
unsigned dynshm_fork_generation;

/* ---- registry of open instances: fork and exit handling ---------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dynshm_instance *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

/* Hold every instance's lock across fork so no child inherits one held. */
static void before_fork(void)
{
	pthread_mutex_lock(&registry_lock);
	for (dynshm_instance *i = registry; i; i = i->next_open)
		pthread_mutex_lock(&i->mu);
}

static void after_fork_parent(void)
{
	for (dynshm_instance *i = registry; i; i = i->next_open)
		pthread_mutex_unlock(&i->mu);
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
	for (dynshm_instance *i = registry; i; i = i->next_open)
		init_recursive(&i->mu);
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

/* Remove a segment's OS object with the backend that made it. */
int os_destroy(dynshm_instance *inst, uint32_t backend, dynshm_handle handle)
{
	dynshm_impl_space *space = NULL;
	int rc;

	if (backend == CTL_BACKEND_REGION)
		return 0; /* carved from the region: no object of its own */
	rc = space_for(inst, (dynshm_impl_type)backend, &space);
	if (rc == 0) {
		placement_release(inst, backend, handle); /* mshare: first */
		rc = dynshm_impl_destroy(space, handle);
	}
	return rc == -ENOENT ? 0 : rc;
}

/* ---- the control lock --------------------------------------------------- */

/* Lock (repairing after a dead holder) even if the instance was destroyed. */
static int ctl_lock_any(dynshm_instance *inst)
{
	struct ctl_header *h = inst->c.hdr;
	int rc = pthread_mutex_lock(&h->lock);

	if (rc == EOWNERDEAD) {
		/* The holder died inside a mutation: finish or undo it. */
		ctl_recompute(&inst->c);
		h->lock_repairs++;
		reap_locked(inst, true, NULL);
		pthread_mutex_consistent(&h->lock);
		rc = 0;
	}
	if (rc != 0)
		return dynshm_fail(rc, "cannot lock the control segment of "
				    "instance '%s': %s",
				inst->name, strerror(rc));
	return 0;
}

int ctl_lock(dynshm_instance *inst)
{
	struct ctl_header *h = inst->c.hdr;
	int rc = ctl_lock_any(inst);

	if (rc < 0)
		return rc;
	if (h->destroyed) {
		pthread_mutex_unlock(&h->lock);
		return dynshm_fail(ENOENT, "instance '%s' was destroyed or reset "
					"by another process",
				inst->name);
	}
	return 0;
}

void ctl_unlock(dynshm_instance *inst)
{
	pthread_mutex_unlock(&inst->c.hdr->lock);
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
	c->hdr->nsegments--;
	ctl_push_free(c, s);
}

static bool owner_alive(const struct ctl *c, const struct ctl_slot *slot)
{
	const struct ctl_proc *p;

	if (slot->owner >= c->hdr->max_processes)
		return false;
	p = &c->procs[slot->owner];
	return p->state == PROC_LIVE && p->pid == slot->owner_pid;
}

static void release_process_locked(struct ctl *c, uint32_t p)
{
	uint64_t *row = ctl_row(c, p);

	for (uint32_t w = 0; w < c->hdr->row_words; w++)
		while (row[w])
			ctl_clear_bit(c, p, w * 64 +
						    (uint32_t)__builtin_ctzll(
							    row[w]));
	ctl_publish(&c->procs[p].state, PROC_FREE);
	c->hdr->nprocs--;
	c->hdr->processes_reaped++;
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

	for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
		if (c->procs[p].state != PROC_LIVE || p == inst->me)
			continue;
		if (ctl_proc_alive(&c->procs[p]))
			continue;
		HOOK("reap:release");
		release_process_locked(c, p);
		dead++;
	}
	if (dead || sweep) {
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
 * The reap at open.  It used to be the full reap, which reads
 * /proc/<pid>/stat (8 us here) for every joined process under the control
 * lock: an open cost 8 us more per process joined and held the lock for
 * 2 ms at 250.  Now an open looks at a bounded number of entries, outside
 * the lock (it copies pid and start time under the lock, tests unlocked):
 *   - JOIN_CHECKS entries, round robin from reap_cursor, with kill(pid, 0):
 *     ESRCH means the process is gone and collected by its parent, the
 *     usual state of one that crashed (0.5 us a check);
 *   - one entry, round robin from reap_cursor_deep, with its start time in
 *     /proc: that also catches a zombie not yet collected and a reused pid.
 * Only when one of them is dead does the open do the full reap, under the
 * lock: where one process died, others often did (a server killed as a
 * whole), and cleaning up after a crash may cost what dynshm_reap costs, once.
 * So with n processes joined a dead one is found within n/JOIN_CHECKS
 * opens once collected, within n opens as a zombie, and at once by
 * dynshm_reap, a full table or a lock repair.  A dead process stays dead, so
 * the unlocked verdict holds.
 */
#define JOIN_CHECKS 8

struct join_check {
	int32_t pid;
	uint64_t start_time;
};

/* The first live entry other than ours from *cursor on; cursor past it. */
static bool next_live(dynshm_instance *inst, uint32_t *cursor, uint32_t *seen,
		      struct join_check *out)
{
	struct ctl *c = &inst->c;
	uint32_t max = c->hdr->max_processes;
	uint32_t p = *cursor % max;
	bool found = false;

	for (; *seen < max && !found; (*seen)++) {
		const struct ctl_proc *proc = &c->procs[p];

		if (proc->state == PROC_LIVE && p != inst->me) {
			*out = (struct join_check){ proc->pid,
						    proc->start_time };
			found = true;
		}
		p = p + 1 == max ? 0 : p + 1;
	}
	*cursor = p;
	return found;
}

/* Under the lock: the entries to check (chk[0] deeply), cursors moved. */
static unsigned pick_checks_locked(dynshm_instance *inst, struct join_check *chk)
{
	struct ctl_header *h = inst->c.hdr;
	uint32_t seen = 0;
	unsigned n = 0;

	if (!next_live(inst, &h->reap_cursor_deep, &seen, &chk[0]))
		return 0;
	seen = 0;
	while (n < JOIN_CHECKS &&
	       next_live(inst, &h->reap_cursor, &seen, &chk[1 + n]))
		n++;
	return 1 + n;
}

/* Outside the lock: is any of the picked processes gone? */
static bool any_dead(const struct join_check *chk, unsigned n)
{
	if (n == 0)
		return false;
	if (chk[0].pid <= 0 ||
	    ctl_process_start_time(chk[0].pid) != chk[0].start_time)
		return true;
	for (unsigned i = 1; i < n; i++)
		if (chk[i].pid <= 0 ||
		    (dynshm_sys.kill(chk[i].pid, 0) < 0 && errno == ESRCH))
			return true;
	return false;
}

/* Release dead processes now; best effort (a failing lock fails later). */
void reap_dead(dynshm_instance *inst)
{
	if (ctl_lock(inst) < 0) {
		dynshm_clear_error();
		return;
	}
	reap_locked(inst, false, NULL);
	ctl_unlock(inst);
}

/* ---- joining ------------------------------------------------------------- */

/* start: our /proc start time, read before taking the lock. */
static int join_locked(dynshm_instance *inst, uint64_t start)
{
	struct ctl *c = &inst->c;

	for (int attempt = 0; attempt < 2; attempt++) {
		for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
			struct ctl_proc *proc = &c->procs[p];

			if (proc->state != PROC_FREE)
				continue;
			memset(ctl_row(c, p), 0, c->hdr->row_words * 8);
			proc->pid = (int32_t)getpid();
			proc->start_time = start;
			proc->joined_ns = now_ns();
			proc->nrefs = 0;
			ctl_publish(&proc->state, PROC_LIVE);
			c->hdr->nprocs++;
			inst->me = p;
			inst->pid = getpid();
			inst->fork_gen = dynshm_fork_generation;
			return 0;
		}
		reap_locked(inst, false, NULL); /* a dead one may free one */
	}
	return dynshm_fail(ENOSPC,
			"all %u process entries of instance '%s' are in use "
			"(raise max_processes)",
			c->hdr->max_processes, inst->name);
}

static void leave_locked(dynshm_instance *inst)
{
	struct ctl *c = &inst->c;

	release_process_locked(c, inst->me);
	c->hdr->processes_reaped--; /* a clean leave is not a reap */
}

/* In a forked child: become a process of our own, adopt the mappings. */
static int join_after_fork(dynshm_instance *inst)
{
	uint64_t start;
	int rc;

	inst->me = CTL_NONE;
	rc = seed(inst);
	if (rc < 0)
		return rc;
	start = ctl_process_start_time(getpid());
	rc = ctl_lock(inst);
	if (rc < 0)
		return rc;
	rc = join_locked(inst, start);
	if (rc == 0)
		segment_adopt_after_fork(inst);
	ctl_unlock(inst);
	return rc;
}

int inst_enter(dynshm_instance *inst)
{
	int rc;

	if (!inst)
		return dynshm_fail(EINVAL, "no instance given");
	pthread_mutex_lock(&inst->mu);
	if (inst->fork_gen == dynshm_fork_generation)
		return 0;
	rc = join_after_fork(inst);
	if (rc < 0)
		pthread_mutex_unlock(&inst->mu);
	return rc;
}

void inst_leave(dynshm_instance *inst)
{
	pthread_mutex_unlock(&inst->mu);
}

/* ---- creating and attaching the control segment ------------------------ */

static uint64_t new_instance_id(dynshm_instance *inst)
{
	uint64_t id;

	do {
		id = inst_random(inst);
		if (dynshm_test_instance_tag >= 0)
			id = (id & ~(uint64_t)0xfff) |
			     (uint64_t)(dynshm_test_instance_tag & 0xfff);
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
	if (rc < 0)
		return rc;
	rc = ctl_validate(dynshm_impl_map_address(inst->ctl_map),
			  dynshm_impl_map_size(inst->ctl_map), st->id, inst->name,
			  &inst->c);
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
		rc = space_for(inst, st.ctl_backend, &space);
		if (rc == 0)
			rc = dynshm_impl_create(space, CTL_HANDLE, size, 0,
					     &inst->ctl_map);
	}
	if (rc < 0)
		return rc == -EEXIST ? dynshm_fail(EEXIST, "cannot find a free "
						"instance id") : rc;
	inst->backend = st.backend;
	inst->ctl_backend = st.ctl_backend;
	rc = ctl_format(dynshm_impl_map_address(inst->ctl_map), inst->id,
			st.backend, cfg->max_segments, cfg->max_processes,
			region_size, (uint32_t)cfg->huge_pages);
	if (rc == 0)
		rc = ctl_validate(dynshm_impl_map_address(inst->ctl_map), size,
				  inst->id, inst->name, &inst->c);
	if (rc == 0)
		rc = state_write(inst, &st);
	if (rc < 0) {
		/* back out: unmap, then remove the object */
		dynshm_impl_detach(inst->ctl_map);
		inst->ctl_map = NULL;
		dynshm_impl_destroy(space, CTL_HANDLE);
		return rc;
	}
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
	if (space_for(inst, inst->ctl_backend, &space) == 0)
		dynshm_impl_destroy(space, CTL_HANDLE);
	sweep_prefix(inst);
	dynshm_sys.unlinkat(inst->dirfd, "state", 0);
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

static int find_or_create(dynshm_instance *inst, const struct dynshm_config *cfg,
			  unsigned flags)
{
	struct inst_state st;
	int rc = state_read(inst, &st);

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
	if (inst->dirfd >= 0)
		dynshm_sys.close(inst->dirfd);
	free(inst->local);
	pthread_mutex_destroy(&inst->mu);
	free(inst);
}

static int join(dynshm_instance *inst)
{
	uint64_t start = ctl_process_start_time(getpid());
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	rc = join_locked(inst, start);
	ctl_unlock(inst);
	if (rc < 0)
		return rc;
	inst->local = calloc(inst->c.hdr->max_segments, sizeof(*inst->local));
	if (!inst->local) {
		ctl_lock(inst);
		leave_locked(inst);
		ctl_unlock(inst);
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
	struct join_check chk[1 + JOIN_CHECKS];
	unsigned n;

	if (ctl_lock(inst) < 0) {
		dynshm_clear_error();
		return;
	}
	n = pick_checks_locked(inst, chk);
	ctl_unlock(inst);
	if (any_dead(chk, n))
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
	rc = new_instance(name_or_dir, &inst, &named);
	if (rc < 0)
		return rc;
	placement_init(inst, &cfg);
	rc = state_open_dir(inst, named, !(flags & DYNSHM_OPEN_EXISTING));
	if (rc == 0)
		rc = state_lock(inst, &lockfd);
	if (rc == 0)
		rc = find_or_create(inst, &cfg, flags);
	if (rc == 0)
		rc = region_join(inst);
	if (rc == 0)
		rc = join(inst);
	if (rc == 0) {
		rc = placement_open(inst, &cfg, flags); /* under the flock */
		if (rc < 0 && ctl_lock(inst) == 0) {
			leave_locked(inst); /* back out the join */
			ctl_unlock(inst);
		}
	}
	if (rc == 0 && !(flags & DYNSHM_OPEN_NOREAP)) /* else dynshm_reap's job */
		reap_at_open(inst);
	if (rc < 0 && lockfd >= 0)
		state_discard_unused(inst);
	if (lockfd >= 0)
		state_unlock(lockfd);
	if (rc < 0) {
		free_instance(inst);
		return rc;
	}
	registry_add(inst);
	*out = inst;
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
	rc = inst_enter(inst);
	if (rc < 0) {
		if (inst) /* cannot rejoin after fork: just let go */
			free_instance(inst);
		return rc;
	}
	segment_detach_all(inst);
	if (ctl_lock(inst) == 0) {
		leave_locked(inst);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	free_instance(inst);
	return 0;
}

DYNSHM_EXPORT int dynshm_instance_destroy(dynshm_instance *inst)
{
	int lockfd = -1, rc;

	registry_remove(inst);
	rc = inst_enter(inst);
	if (rc < 0) {
		if (inst)
			registry_add(inst); /* not destroyed: still open */
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
	return rc < 0 ? rc : 0;
}

DYNSHM_EXPORT int dynshm_instance_info_get(dynshm_instance *inst,
				     dynshm_instance_info *info)
{
	struct ctl_header *h;
	int rc;

	if (!info)
		return dynshm_fail(EINVAL, "no info buffer given");
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	h = inst->c.hdr;
	memset(info, 0, sizeof(*info));
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
		region_info_locked(inst, info);
		ctl_unlock(inst);
	}
	placement_info(inst, info);
	inst_leave(inst);
	return rc;
}

DYNSHM_EXPORT int dynshm_reap(dynshm_instance *inst, unsigned *reaped)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	rc = ctl_lock(inst);
	if (rc == 0) {
		rc = reap_locked(inst, true, reaped);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	return rc;
}
