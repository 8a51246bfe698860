/* SPDX-License-Identifier: MIT */
/*
 * wrapper.h - process-local state of the wrapper layer, shared by
 * instance.c (open, close, destroy), process.c (join, leave, fork), sync.c
 * (the control lock, repair, reaping), state.c (the instance directory)
 * and segment.c (create, attach, detach, pins, scopes, inspection).
 *
 * LOCKING inside one process.  dynshm_instance.mu (recursive, so on-detach
 * callbacks may call back into the library) guards every field of the
 * instance and of its segments.  It is taken before the control segment's
 * lock, never after.  Public entry points take it with inst_enter(), which
 * also notices a fork and makes the child a process of its own.
 */
#ifndef DYNSHM_WRAPPER_H
#define DYNSHM_WRAPPER_H

#include "config.h"
#include "control.h"
#include "placement.h"

#include <dynshm/dsm.h>

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#define DYNSHM_NAME_MAX 64

struct on_detach {
	dynshm_on_detach_fn fn;
	void *arg;
};

struct dynshm_segment {
	dynshm_instance *inst;		  /* never changes */
	struct dynshm_segment *prev, *next;  /* inst->segs */
	dynshm_handle handle;		  /* never changes */
	uint32_t slot;			  /* CTL_NONE once orphaned */
	dynshm_impl_map *map;		  /* NULL when placed or in region */
	void *placed;			  /* placement.c: address, or NULL */
	size_t placed_size;
	void *region_addr;		  /* in the region: where, and */
	size_t region_size;		  /* how long (never change) */
	unsigned nattach;		  /* local attach count */
	unsigned os_huge;		  /* create: object on huge pages */
	/*
	 * Mapped when this process forked a child that got no FORK entry
	 * (process.c, fork): the child holds it through our entry, so our
	 * detach keeps the entry's reference.  Under inst->mu.
	 */
	bool child_holds;
	/*
	 * The attaches of nattach made inside scopes: per scope, how many.
	 * The rest were made outside any scope.  Sum of n <= nattach.  A
	 * scope's end undoes only its own attaches, so a mapping that other
	 * attaches (another thread's, say) still use stays (segment.c).
	 */
	struct scope_ref {
		struct dynshm_scope *scope;
		unsigned n;
	} *scoped;
	unsigned nscoped, scoped_cap;
	struct on_detach *cbs;
	unsigned ncbs, cbs_cap;
};

struct dynshm_scope {
	dynshm_instance *inst;
	struct dynshm_scope *parent; /* the thread's next outer scope */
};

struct dynshm_instance {
	pthread_mutex_t mu;
	struct dynshm_instance *next_open; /* registry, under registry lock */

	char name[80];		    /* for messages: name or directory */
	char dir[PATH_MAX];	    /* instance directory */
	int dirfd;		    /* held open: a renamed dir can't redirect */
	bool made_dir;		    /* this open created dir (undo on failure) */
	uint64_t id;
	dynshm_impl_type backend;	    /* for new segments */
	dynshm_impl_type ctl_backend;  /* of the control segment */
	char seg_dir[PATH_MAX];	    /* mmap backend directory */
	dynshm_impl_space *spaces[4];  /* by dynshm_impl_type, opened lazily */

	dynshm_impl_map *ctl_map;
	struct ctl c;
	uint32_t me;		    /* our process table entry */
	uint32_t me_gen;	    /* its gen when we took it (ownership) */
	bool scribbled;		    /* ctl_lock_any put back (C) fields */
	pid_t pid;		    /* the process that joined */
	unsigned fork_gen;	    /* dynshm_fork_generation when joined */
	/*
	 * liveness.c: our descriptor of the procs file, whose description
	 * holds the lock on byte me (opened at join, O_CLOEXEC), and which
	 * file it is.  Across a fork (process.c): fork_fd holds the lock of
	 * the FORK entry fork_entry made for the child, closed in the parent
	 * after the fork; in the child, child_entry/child_gen name that
	 * entry until the first call adopts it.
	 */
	int live_fd;
	dev_t live_dev;
	ino_t live_ino;
	bool live_known;	    /* live_dev/live_ino name the file */
	/*
	 * liveness.c: our own description of the procs file (never shared
	 * with another process: reopened in a forked child), and the seat
	 * it holds, which names us in the control lock's word (CTL_NONE
	 * until the first lock).  Under mu.
	 */
	int lock_fd;
	uint32_t seat;
	int fork_fd;
	uint32_t fork_entry, fork_entry_gen;
	bool fork_empty;	    /* we held nothing at the fork */
	/*
	 * A child forked without a FORK entry shares our entry's lock (our
	 * description): leaving must not release the entry (process.c).
	 */
	bool shares_entry;
	/* processes released by the repairs of our lock takes (sync.c) */
	unsigned repair_reaped;
	uint32_t child_entry, child_gen;
	uint64_t rng;

	struct {		    /* the region's mapping here (region.c) */
		void *base;	    /* NULL: no region, or not mapped */
		size_t size;
		int same_address;   /* at the address its creator recorded */
	} region;

	struct dynshm_segment **local; /* by slot index, NULL if not mapped */
	struct dynshm_segment *segs;   /* every mapping, orphans included */
	struct placement place;	    /* msharefs region (placement.c) */
	/*
	 * sysv creates left that skip SHM_HUGETLB after it failed (no huge
	 * pages free): a failed try costs a system call per create.  Under
	 * mu.  (region_segment_flags, create_os_object.)
	 */
	unsigned huge_backoff;
	/*
	 * >>> attach_control found, at a SysV control key, a segment that is
	 * not this instance's control segment (control_is_ours): not ours,
	 * so wipe never removes it (issue 13, item 9).
	 */
	bool ctl_not_ours;
	/* <<< */
};

/* State file contents (state.c). */
/* the most of a state or pending file read, with its '\0' (state.c) */
#define STATE_TEXT_MAX (3 * PATH_MAX + 256)
/* >>> where the control object lives (state.c) */
#define STATE_SPACE_MAX (PATH_MAX + 64)
#define STATE_BOOT_MAX 40

struct inst_state {
	uint64_t id;
	dynshm_impl_type backend;
	dynshm_impl_type ctl_backend;
	uint64_t ctl_size;
	char seg_dir[PATH_MAX];
	/*
	 * Where the creator found the control object's backend, and the boot
	 * it was made in (state_space, state_boot_id); "" in a state file
	 * written before they were recorded.
	 */
	char space[STATE_SPACE_MAX];
	char boot[STATE_BOOT_MAX];
};

/* liveness.c: bumped in every forked child (instance.c, after_fork_child) */
extern unsigned dynshm_fork_generation;

/* instance.c */

/* splitmix64: handles need unpredictability, not cryptographic strength. */
static inline uint64_t inst_random(dynshm_instance *inst)
{
	uint64_t z = (inst->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* No cancellation inside a public call (process.c, CANCELLATION). */
void entry_begin(void);
void entry_end(void);

/*
 * process.c: membership.  inst_enter/inst_leave bracket every public call
 * on an instance (inst->mu, cancellation off; a forked child's first call
 * joins); process_join and process_leave_locked take and free our entry;
 * process_fork_prepare runs in the fork handler (the child's FORK entry).
 */
int inst_enter(dynshm_instance *inst);
void inst_leave(dynshm_instance *inst);
int process_seed(dynshm_instance *inst);
int process_join(dynshm_instance *inst);
void process_leave_locked(dynshm_instance *inst);
void process_fork_prepare(dynshm_instance *inst);

/* spaces.c: the backend space of each backend, opened on first use */
int space_for(dynshm_instance *inst, dynshm_impl_type type, dynshm_impl_space **out);
void close_spaces(dynshm_instance *inst);

/*
 * sync.c: the control lock (with its repair after a dead holder) and
 * reaping.  ctl_lock also refuses a destroyed instance, a scribbled header
 * and a process released behind its back; ctl_lock_any only locks and
 * repairs (wipe uses it on a destroyed instance).
 */
int ctl_lock_any(dynshm_instance *inst);
int ctl_lock(dynshm_instance *inst);
void ctl_unlock(dynshm_instance *inst);
int reap_locked(dynshm_instance *inst, bool sweep, unsigned *reaped);
void reap_dead(dynshm_instance *inst);
void reap_at_open(dynshm_instance *inst);
void slot_free_locked(dynshm_instance *inst, uint32_t s);
/* Clear p's row, end its membership (gen first), free the entry. */
void release_process_locked(struct ctl *c, uint32_t p);
void forks_let_go_locked(dynshm_instance *inst, uint32_t s);
int os_destroy(dynshm_instance *inst, uint32_t backend, dynshm_handle handle);
/* >>> object identity (control.h): what the backend is told of slot */
struct dynshm_impl_ident;
void slot_ident(const struct ctl_slot *slot, struct dynshm_impl_ident *out);
void slot_record_ident(struct ctl_slot *slot, const dynshm_impl_map *map);
/* <<< object identity */
/* this process's PID namespace (0 unknown), see slot_ident */
uint64_t own_pid_namespace(void);

/* liveness.c: the procs file and its per-entry locks */
int live_open(dynshm_instance *inst, int *out);
/* Lock entry p's byte on fd: 0, -EAGAIN (held elsewhere), or -errno. */
int live_take(dynshm_instance *inst, int fd, uint32_t p);
void live_give_back(int fd, uint32_t p);
/* false only when the kernel says nobody holds entry p's lock. */
bool live_held(dynshm_instance *inst, uint32_t p);
void live_unlink(dynshm_instance *inst);
/*
 * The control lock (liveness.c, THE CONTROL LOCK), raw: take it (waiting,
 * or -EBUSY at once; *stolen when its last holder died holding it), let
 * it go, and give a forked child its own descriptor.  ctl_lock
 * (sync.c) adds the repair and the checks.  Each take is counted in
 * the header's lock statistics (control.h), a wait with its duration.
 */
int lock_take(dynshm_instance *inst, bool wait, bool *stolen);
void lock_give(dynshm_instance *inst);
void lock_after_fork(dynshm_instance *inst);
/* Is token's process alive: 1 (or doubt), 0 dead or released, -1 bogus. */
int live_token(dynshm_instance *inst, uint64_t token);

/* segment.c */
void segment_detach_all(dynshm_instance *inst);
int segment_create(dynshm_instance *inst, size_t size, const char *name,
		   unsigned flags, dynshm_init_fn init, void *arg,
		   dynshm_segment **out);
int segment_attach(dynshm_instance *inst, dynshm_handle handle, dynshm_segment **out);
int segment_check_flags(const dynshm_instance *inst, unsigned flags);
/* >>> vanished objects: dynshm_reap's part (segment.c), takes the lock */
void segment_retire_vanished(dynshm_instance *inst, unsigned *n);
/* <<< vanished objects */

/* segment.c: names under the lock (named.c) */
/* Under the lock: -EEXIST if a live segment is called name (see control.h). */
int named_claim_locked(dynshm_instance *inst, const char *name);
/*
 * Under the lock: name's slot or CTL_NONE in *out; a CREATING slot whose
 * creator died is reaped first.  -EUCLEAN: the index was scribbled.
 */
int named_find_locked(dynshm_instance *inst, const char *name, uint32_t *out);

/* state.c */
int state_resolve(const char *name_or_dir, char *name, size_t name_len,
		  char *dir, size_t dir_len, bool *named);
int state_open_dir(dynshm_instance *inst, bool named, bool create);
int state_lock(dynshm_instance *inst, int *lockfd);
void state_unlock(int lockfd);
void state_discard_unused(dynshm_instance *inst);
int state_read(dynshm_instance *inst, struct inst_state *st);
int state_write(dynshm_instance *inst, const struct inst_state *st);
int state_read_file(dynshm_instance *inst, const char *file, char *text,
		    size_t len);
int state_write_file(dynshm_instance *inst, const char *file, const char *text,
		     size_t len);
int state_remove(dynshm_instance *inst);
/* >>> the first open's window (state.c) */
int state_write_pending(dynshm_instance *inst, const struct inst_state *st,
			int32_t pid, int64_t since);
int state_read_pending(dynshm_instance *inst, struct inst_state *st,
		       int32_t *pid, int64_t *since);
void state_remove_pending(dynshm_instance *inst);
/* <<< the first open's window */
/*
 * The parsers behind state_read and state_read_pending, on text that ends
 * in '\0' (modified in place).  0, or -EUCLEAN with a message naming
 * inst->dir, the only field read.  Separate so that the fuzzer
 * (tests/fuzz/fuzz_entry.c) reaches them without an instance directory.
 */
int state_parse(dynshm_instance *inst, char *text, struct inst_state *st);
int state_parse_pending(dynshm_instance *inst, char *text,
			struct inst_state *st, int32_t *pid, int64_t *since);
/* >>> where the control object lives (state.c) */
void state_space(dynshm_impl_type backend, const char *seg_dir, char *buf,
		 size_t len);
void state_boot_id(char *buf, size_t len);
bool state_elsewhere(const struct inst_state *st, char *here, size_t len);

/*
 * Test hook: called at named points inside critical sections so a test can
 * kill the process exactly there.  Compiled only into the internal library
 * the tests link (-DDYNSHM_TEST_HOOKS, src/meson.build): the installed
 * library has neither the hook nor the instance-tag override.
 */
#ifdef DYNSHM_TEST_HOOKS
extern void (*dynshm_test_hook)(const char *point);
extern int dynshm_test_instance_tag;

#define HOOK(point)                                                            \
	do {                                                                   \
		if (dynshm_test_hook)                                             \
			dynshm_test_hook(point);                                  \
	} while (0)
#else
#define HOOK(point) ((void)0)
#endif

#endif
