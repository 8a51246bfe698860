/*
 * wrapper.h - process-local state of the wrapper layer, shared by
 * instance.c (join, leave, reap, fork), state.c (the instance directory)
 * and segment.c (create, attach, detach, pins, scopes, inspection).
 *
 * LOCKING inside one process.  dsm_instance.mu (recursive, so on-detach
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

#define DSM_NAME_MAX 64

struct on_detach {
	dsm_on_detach_fn fn;
	void *arg;
};

struct dsm_segment {
	dsm_instance *inst;		  /* never changes */
	struct dsm_segment *prev, *next;  /* inst->segs */
	dsm_handle handle;		  /* never changes */
	uint32_t slot;			  /* CTL_NONE once orphaned */
	dsm_impl_map *map;		  /* NULL when placed or in region */
	void *placed;			  /* placement.c: address, or NULL */
	size_t placed_size;
	void *region_addr;		  /* in the region: where, and */
	size_t region_size;		  /* how long (never change) */
	unsigned nattach;		  /* local attach count */
	struct dsm_scope *scope;	  /* owning scope or NULL */
	struct on_detach *cbs;
	unsigned ncbs, cbs_cap;
};

struct dsm_scope {
	dsm_instance *inst;
	struct dsm_scope *parent; /* the thread's next outer scope */
};

struct dsm_instance {
	pthread_mutex_t mu;
	struct dsm_instance *next_open; /* registry, under registry lock */

	char name[80];		    /* for messages: name or directory */
	char dir[PATH_MAX];	    /* instance directory */
	int dirfd;		    /* held open: a renamed dir can't redirect */
	bool made_dir;		    /* this open created dir (undo on failure) */
	uint64_t id;
	dsm_impl_type backend;	    /* for new segments */
	dsm_impl_type ctl_backend;  /* of the control segment */
	char seg_dir[PATH_MAX];	    /* mmap backend directory */
	dsm_impl_space *spaces[4];  /* by dsm_impl_type, opened lazily */

	dsm_impl_map *ctl_map;
	struct ctl c;
	uint32_t me;		    /* our process table entry */
	pid_t pid;		    /* the process that joined */
	unsigned fork_gen;	    /* dsm_fork_generation when joined */
	uint64_t rng;

	struct {		    /* the region's mapping here (region.c) */
		void *base;	    /* NULL: no region, or not mapped */
		size_t size;
		int same_address;   /* at the address its creator recorded */
	} region;

	struct dsm_segment **local; /* by slot index, NULL if not mapped */
	struct dsm_segment *segs;   /* every mapping, orphans included */
	struct placement place;	    /* msharefs region (placement.c) */
	/*
	 * sysv creates left that skip SHM_HUGETLB after it failed (no huge
	 * pages free): a failed try costs a system call per create.  Under
	 * mu.  (region_segment_flags, create_os_object.)
	 */
	unsigned huge_backoff;
};

/* State file contents (state.c). */
struct inst_state {
	uint64_t id;
	dsm_impl_type backend;
	dsm_impl_type ctl_backend;
	uint64_t ctl_size;
	char seg_dir[PATH_MAX];
};

/* instance.c */
extern unsigned dsm_fork_generation;
int inst_enter(dsm_instance *inst);
void inst_leave(dsm_instance *inst);
int ctl_lock(dsm_instance *inst);
void ctl_unlock(dsm_instance *inst);
int space_for(dsm_instance *inst, dsm_impl_type type, dsm_impl_space **out);
uint64_t inst_random(dsm_instance *inst);
int reap_locked(dsm_instance *inst, bool sweep, unsigned *reaped);
void reap_dead(dsm_instance *inst);
void slot_free_locked(dsm_instance *inst, uint32_t s);
int os_destroy(dsm_instance *inst, uint32_t backend, dsm_handle handle);

/* segment.c */
void segment_detach_all(dsm_instance *inst);
int segment_create(dsm_instance *inst, size_t size, const char *name,
		   unsigned flags, dsm_init_fn init, void *arg,
		   dsm_segment **out);
int segment_attach(dsm_instance *inst, dsm_handle handle, dsm_segment **out);
int segment_check_flags(const dsm_instance *inst, unsigned flags);

/* named.c */
/* Under the lock: -EEXIST if a live segment is called name (see control.h). */
int named_claim_locked(dsm_instance *inst, const char *name);
void segment_adopt_after_fork(dsm_instance *inst);

/* state.c */
int state_resolve(const char *name_or_dir, char *name, size_t name_len,
		  char *dir, size_t dir_len, bool *named);
int state_open_dir(dsm_instance *inst, bool named, bool create);
int state_lock(dsm_instance *inst, int *lockfd);
void state_unlock(int lockfd);
void state_discard_unused(dsm_instance *inst);
int state_read(dsm_instance *inst, struct inst_state *st);
int state_write(dsm_instance *inst, const struct inst_state *st);
int state_read_file(dsm_instance *inst, const char *file, char *text,
		    size_t len);
int state_write_file(dsm_instance *inst, const char *file, const char *text,
		     size_t len);
int state_remove(dsm_instance *inst);

/*
 * Test hook: called at named points inside critical sections so a test can
 * kill the process exactly there.  NULL in production.
 */
extern void (*dsm_test_hook)(const char *point);
extern int dsm_test_instance_tag;

#define HOOK(point)                                                            \
	do {                                                                   \
		if (dsm_test_hook)                                             \
			dsm_test_hook(point);                                  \
	} while (0)

#endif
