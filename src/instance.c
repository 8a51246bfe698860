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
 * The control lock is a futex word naming a lock seat, whose OFD lock the
 * kernel drops when its holder dies (liveness.c, THE CONTROL LOCK).  The
 * next locker takes it over and, in sync.c, recomputes the derived fields
 * from primary data (control.h explains the split) and reaps dead
 * processes before it goes on.
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

/* ---- registry of open instances: fork and exit handling ---------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dynshm_instance *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;


/*
 * Hold every instance's lock across fork so no child inherits one held,
 * and give the child its parent's references (fork_prepare).
 *
 * The instance locks are only tried, and on one that another thread holds
 * everything is given back and tried again after a pause.  That thread may
 * be in a callback (get-or-create's init, an on-detach callback), which
 * runs holding its instance's lock and may fork, open or close an
 * instance - each of which takes registry_lock: waiting for its lock while
 * holding registry_lock deadlocked both.  A thread's own locks are taken
 * again (they are recursive), so a fork from inside a callback goes on.
 */
static void before_fork(void)
{
	struct timespec pause = { 0, 50000 }; /* 50 us, doubling to ~10 ms */

	for (;;) {
		dynshm_instance *busy = NULL;

		pthread_mutex_lock(&registry_lock);
		for (dynshm_instance *i = registry; i; i = i->next_open)
			if (pthread_mutex_trylock(&i->mu) != 0) {
				busy = i;
				break;
			}
		if (!busy)
			break;
		for (dynshm_instance *i = registry; i != busy; i = i->next_open)
			pthread_mutex_unlock(&i->mu);
		pthread_mutex_unlock(&registry_lock);
		dynshm_sys.nanosleep(&pause, NULL);
		if (pause.tv_nsec < 10000000)
			pause.tv_nsec *= 2;
	}
	for (dynshm_instance *i = registry; i; i = i->next_open)
		process_fork_prepare(i);
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
		i->shares_entry = false; /* the parent's care, not ours */
		for (struct dynshm_segment *s = i->segs; s; s = s->next)
			s->child_holds = false;
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
	/* where the object will be, for "pending" and the state file */
	state_space(st.ctl_backend, st.seg_dir, st.space, sizeof(st.space));
	state_boot_id(st.boot, sizeof(st.boot));
	for (int attempt = 0; rc == -EEXIST && attempt < 8; attempt++) {
		close_spaces(inst);
		inst->id = st.id = new_instance_id(inst);
		/* recorded before it exists: see state_write_pending */
		rc = state_write_pending(inst, &st, (int32_t)getpid(),
					 (int64_t)(ctl_now_ns() / 1000000000u));
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
static int sweep_pending(dynshm_instance *inst, unsigned flags)
{
	struct dynshm_impl_ident ident = { -1, 0, 0, 0 };
	struct inst_state pending, st;
	dynshm_impl_space *space = NULL;
	char here[STATE_SPACE_MAX];

	if (state_read_pending(inst, &pending, &ident.cpid, &ident.ctime) < 0) {
		dynshm_clear_error();
		return 0;
	}
	if (state_read(inst, &st) == 0 && st.id == pending.id) {
		state_remove_pending(inst);
		return 0;
	}
	dynshm_clear_error();
	/*
	 * Made where we cannot look (another namespace): its object cannot be
	 * found from here and must not be taken for gone, and a first open
	 * of ours would overwrite the record.  Only a reset takes the
	 * directory over (what it names there is then left to that place).
	 */
	if (state_elsewhere(&pending, here, sizeof(here))) {
		if (flags & DYNSHM_OPEN_RESET) {
			state_remove_pending(inst);
			return 0;
		}
		return dynshm_fail(EXDEV, "instance '%s': a first open in %s "
				   "died half-way and left a control segment "
				   "there; this process looks in %s and cannot "
				   "remove it.  Open from there to finish, or "
				   "with reset to take the directory over",
				   inst->name, pending.space, here);
	}
	ident.size = pending.ctl_size;
	if (dynshm_impl_space_open(pending.ctl_backend, pending.id,
				pending.seg_dir, &space) == 0) {
		int rc = dynshm_impl_destroy_ident(space, CTL_HANDLE, &ident);

		if (rc == 0 || rc == -ENOENT) /* removed, or none of ours */
			state_remove_pending(inst);
		dynshm_impl_space_close(space);
	}
	dynshm_clear_error();
	return 0;
}

/*
 * The control object the state file names was not found.  Wipe (0) when
 * that is what it is: the boot changed (a reboot took the memory), or we
 * look where its creator looked and it was removed behind the library's
 * back.  Refuse (-EXDEV) when we look somewhere else - another IPC
 * namespace, another /dev/shm, an mmap directory we do not see: the
 * instance lives on there.  A state file from before the place was
 * recorded, or whose creator could not tell it, gets the old rule (wipe).
 */
static int control_gone_here(dynshm_instance *inst,
			     const struct inst_state *st)
{
	char space[STATE_SPACE_MAX], boot[STATE_BOOT_MAX];

	if (!state_elsewhere(st, space, sizeof(space)))
		return 0;
	state_boot_id(boot, sizeof(boot));
	if (st->boot[0] && boot[0] && strcmp(st->boot, boot) != 0)
		return 0;
	if (strcmp(space, "unknown") == 0)
		return dynshm_fail(EXDEV, "instance '%s' keeps its control "
				   "segment (%s) in %s, where its creator "
				   "made it; this process cannot see it and "
				   "cannot tell where it looks (is /proc "
				   "mounted?), so it cannot prove the "
				   "instance gone: it was left as it is.  "
				   "Open with reset to start it afresh",
				   inst->name,
				   dynshm_impl_type_name(st->ctl_backend),
				   st->space);
	return dynshm_fail(EXDEV, "instance '%s' keeps its control segment "
			   "(%s) in %s, where its creator made it; this "
			   "process looks in %s and cannot see it there: it "
			   "runs in another namespace (a container?).  The "
			   "instance was left as it is: join it from where it "
			   "was made or share that namespace, or use another "
			   "instance (a reset here would strand the processes "
			   "there)", inst->name,
			   dynshm_impl_type_name(st->ctl_backend), st->space,
			   space);
}

static int find_or_create(dynshm_instance *inst, const struct dynshm_config *cfg,
			  unsigned flags)
{
	struct inst_state st;
	int rc;

	rc = sweep_pending(inst, flags); /* a killed first open's object */
	if (rc < 0)
		return rc;
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
		if (rc == -ENOENT && control_gone_here(inst, &st) < 0)
			return -EXDEV;
		/* Vanished (reboot, /dev/shm wiped) or half-destroyed. */
		wipe(inst);
	}
	if (flags & DYNSHM_OPEN_EXISTING)
		return dynshm_fail(ENOENT, "instance '%s' does not exist",
				inst->name);
	return create_control(inst, cfg);
}

/* ---- public: process tokens (liveness.c) --------------------------------- */

DYNSHM_EXPORT int dynshm_proc_self(dynshm_instance *inst, uint64_t *token)
{
	int rc;

	if (!token)
		return dynshm_fail(EINVAL, "no token pointer given");
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	rc = ctl_lock(inst); /* says -ESTALE if we were released */
	if (rc == 0) {
		*token = ctl_token(inst->me, inst->me_gen);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	return rc;
}

DYNSHM_EXPORT int dynshm_proc_alive(dynshm_instance *inst, uint64_t token)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	rc = live_token(inst, token);
	if (rc < 0)
		rc = dynshm_fail(EINVAL, "0x%016llx is not a process token of "
				      "instance '%s' (entry %u of %u)",
			      (unsigned long long)token, inst->name,
			      (unsigned)token, inst->c.hdr->max_processes);
	inst_leave(inst);
	return rc;
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
		rc = process_seed(inst);
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
		rc = placement_open(inst, &cfg, flags, reap_dead);
	if (rc == 0)
		rc = process_join(inst);
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
 * Close and destroy leave the registry once they hold inst->mu.  A fork
 * then either came first (it held mu: the child got the instance whole,
 * its references in a FORK entry and its own seat) or comes after and
 * does not see it.  Leaving first, as they did, opened a window in which
 * a fork copied the instance without any of that: the child kept the
 * parent's seat and mappings with no entry.  (Taking the registry lock
 * while holding mu is safe: before_fork only tries the instance locks.)
 */
DYNSHM_EXPORT int dynshm_instance_close(dynshm_instance *inst)
{
	int rc;

	entry_begin(); /* free_instance closes: see CANCELLATION */
	rc = inst_enter(inst);
	registry_remove(inst);
	if (rc < 0) {
		if (inst) /* cannot rejoin after fork: just let go */
			free_instance(inst);
		entry_end();
		return rc;
	}
	segment_detach_all(inst);
	if (ctl_lock(inst) == 0) {
		process_leave_locked(inst);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	free_instance(inst);
	entry_end();
	return 0;
}

/*
 * Has another process destroyed (or reset) this incarnation, and its
 * destroy finished?  Then the instance directory is no longer ours: it may
 * already hold the next incarnation (a reset, or a first open since), and
 * removing its state, lock and procs files would orphan that one's running
 * processes while the next open made yet another.  A destroyer that died
 * half-way left the state file naming us: that destroy is ours to finish.
 * Under the flock.
 */
static bool superseded(dynshm_instance *inst)
{
	struct inst_state st;
	bool named_us;

	if (!inst->ctl_map ||
	    !__atomic_load_n(&inst->c.hdr->destroyed, __ATOMIC_ACQUIRE))
		return false;
	named_us = state_read(inst, &st) == 0 && st.id == inst->id;
	dynshm_clear_error();
	return !named_us;
}

DYNSHM_EXPORT int dynshm_instance_destroy(dynshm_instance *inst)
{
	int lockfd = -1, rc;

	entry_begin(); /* see CANCELLATION */
	rc = inst_enter(inst);
	if (rc < 0) { /* not destroyed: still open */
		entry_end();
		return rc;
	}
	registry_remove(inst); /* holding mu: see dynshm_instance_close */
	segment_detach_all(inst);
	rc = state_lock(inst, &lockfd);
	if (superseded(inst)) {
		/* nothing of ours is left to remove; the directory is not ours */
		rc = dynshm_fail(ENOENT, "instance '%s' was already destroyed "
				 "or reset by another process; its directory "
				 "was left as it is",
				 inst->name);
	} else {
		wipe(inst);
		rc = state_remove(inst) < 0 && rc == 0 ? -EBUSY : rc;
	}
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
	inst->repair_reaped = 0;
	rc = ctl_lock(inst);
	if (rc == 0) {
		unsigned gone = 0;
		char why[512] = "";

		rc = reap_locked(inst, true, reaped);
		/* a holder found dead by our lock take was reaped there */
		if (reaped)
			*reaped += inst->repair_reaped;
		if (rc < 0) /* the vanished pass clears messages: keep ours */
			snprintf(why, sizeof(why), "%s", dynshm_last_error());
		ctl_unlock(inst);
		segment_retire_vanished(inst, &gone); /* issue 13.6 */
		if (rc < 0)
			dynshm_fail(-rc, "%s", why);
	}
	inst_leave(inst);
	return rc;
}
