/* SPDX-License-Identifier: MIT */
/*
 * dynshm/dsm.h - dynamic shared memory for multiprocess servers.
 *
 * The wrapper layer: what servers call.  An *instance* is the unit of
 * sharing (PostgreSQL: one cluster).  Processes join it by name or
 * directory; inside it they create *segments* at run time, pass them to each
 * other by *handle*, and map them.  The library counts references per
 * process, so a process that dies (even by kill -9) loses its references on
 * its own and nothing else has to restart; a segment lives while some live
 * process maps it or while it is pinned.
 *
 * Rules that hold for every function here:
 *   - return 0 or a negative errno (pointer and value getters excepted);
 *     after a failure, dynshm_last_error() holds a one-line message naming the
 *     object and the step that failed (per thread; a success does not clear
 *     it, so read it only after a negative return), and dynshm_strerror()
 *     describes the code;
 *   - thread-safe: any thread of a process may call any function; objects
 *     returned to one thread may be used by another.  Not
 *     async-signal-safe: a call from a signal handler that interrupted
 *     a call on the same instance may fail with -EDEADLK (it never takes
 *     the control lock over from the call it interrupted);
 *   - fork: a child may go on using the instance it inherited.  From the
 *     fork on it holds references on every segment its parent mapped then,
 *     until its first dynshm call on that instance adopts them as its own
 *     (it then is a process of its own, with its own token) or it exits
 *     (or execs): a segment - region and msharefs-placed ones included -
 *     is never reused while a child that inherited it lives, even if the
 *     parent destroys it and dies.  The child never releases its parent's
 *     references.  When the process table or the parent's descriptor
 *     table is full at the fork, the child shares its parent's entry
 *     instead, and what the parent mapped then stays referenced past the
 *     parent's detach and leave, until parent and child have both gone;
 *   - a process is judged dead only when the kernel has released what it
 *     held (a lock on a file of the instance directory, through a
 *     descriptor opened at join with O_CLOEXEC: do not close descriptors
 *     the library opened).  A process released anyway gets -ESTALE from
 *     its next call and changes nothing; open the instance again.
 *
 * Compiles as C99 and C++.
 */
#ifndef DYNSHM_DSM_H
#define DYNSHM_DSM_H

#include <dynshm/dsm_impl.h>
#include <dynshm/version.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dynshm_config dynshm_config;
typedef struct dynshm_instance dynshm_instance;
typedef struct dynshm_segment dynshm_segment;
typedef struct dynshm_scope dynshm_scope;

/* ---- configuration ------------------------------------------------------
 * Keys (see docs/configuration.md): dynamic_shared_memory_type, dynshm_directory,
 * max_segments, max_processes, min_dynamic_shared_memory, huge_pages,
 * mshare, mshare_path.  Values are strings as in a config file.
 * A bad key or value returns -EINVAL with a message naming both and what is
 * allowed.  Keys and the names a key takes are case-insensitive; off/try/on
 * keys also take booleans (true/false, yes/no, 1/0); sizes take B, kB, MB,
 * GB, TB.
 */
int dynshm_config_new(dynshm_config **out);
void dynshm_config_free(dynshm_config *cfg);
int dynshm_config_set(dynshm_config *cfg, const char *key, const char *value);
/* The effective value of key as text, into buf; -ERANGE if len is short. */
int dynshm_config_get(const dynshm_config *cfg, const char *key, char *buf,
		   size_t len);
/*
 * Apply a file of "key = value" lines ('#' comments, '...' or "..." quotes).
 * All or nothing: on any error (message: file, line, key, value, what is
 * allowed) cfg is unchanged.
 */
int dynshm_config_load_file(dynshm_config *cfg, const char *path);
/*
 * Apply, in this order, the file path (or, when path is NULL, the file named
 * by $DYNSHM_CONFIG if set) and then the environment: DYNSHM_<KEY> for each
 * key, e.g. DYNSHM_DYNAMIC_SHARED_MEMORY_TYPE=sysv.  Later dynshm_config_set
 * calls override both.  All or nothing, like dynshm_config_load_file.
 * Another DYNSHM_* variable (but DYNSHM_CONFIG, DYNSHM_TEST_*) is refused.
 */
int dynshm_config_load(dynshm_config *cfg, const char *path);

/* Values of the key huge_pages (for the region; see docs/configuration.md). */
typedef enum dynshm_huge_pages {
	DYNSHM_HUGE_PAGES_OFF = 0,
	DYNSHM_HUGE_PAGES_TRY = 1, /* the default: huge pages if reserved */
	DYNSHM_HUGE_PAGES_ON = 2	/* no huge pages: dynshm_instance_open fails */
} dynshm_huge_pages;

/* ---- instances ---------------------------------------------------------- */

/* Destroy everything an earlier incarnation left, then start afresh. */
#define DYNSHM_OPEN_RESET 0x1u
/* Join an existing instance only: -ENOENT instead of creating one. */
#define DYNSHM_OPEN_EXISTING 0x2u
/*
 * This process stays for the instance's whole life (a postmaster).  Only
 * such a process, opening a fresh (or reset) instance, creates the msharefs
 * region (config key mshare): the kernel tears the region down when the
 * thread that created it exits, so open from the thread that lives longest.
 */
#define DYNSHM_OPEN_SUPERVISOR 0x4u
/*
 * Do not reap dead processes while joining, so that a following dynshm_reap
 * can count them (dsm_demo gc).  Reaping still happens when the process
 * table is full and when a lock holder is found dead.
 */
#define DYNSHM_OPEN_NOREAP 0x8u

/*
 * Join (creating if absent) the instance called name_or_dir: a name
 * ([A-Za-z0-9_.-], at most 64 bytes; NULL means "default") lives in
 * $XDG_RUNTIME_DIR/dynshm/<name>, else /tmp/dynshm-<uid>/<name>; anything
 * containing '/' is the instance directory itself.  cfg may be NULL.
 * Joining checks a few other joined processes for death, round robin,
 * and reaps all (as dynshm_reap) when one of them died.
 */
int dynshm_instance_open(const char *name_or_dir, const dynshm_config *cfg,
		      unsigned flags, dynshm_instance **out);
/* Detach every mapping this process holds in it, leave, free inst. */
int dynshm_instance_close(dynshm_instance *inst);
/*
 * Destroy the instance: every segment (pinned or not, mapped or not), the
 * control segment and the instance directory.  Other processes still joined
 * keep their mappings but lose the instance.  inst is freed.
 */
int dynshm_instance_destroy(dynshm_instance *inst);

/*
 * The two info structures can grow: fields are only appended.  The caller
 * passes sizeof its structure; the library fills min(that, its own size)
 * bytes, zeroes the rest and sets struct_size to the bytes it filled.  A
 * program built against newer headers than the library it runs with tests
 * a field with DYNSHM_INFO_HAS before reading it; fields of 0.2 are always
 * there.  A dynshm_foreach_segment callback gets the library's structure:
 * test fields added after 0.2 the same way.
 */
#define DYNSHM_INFO_HAS(info, field)                                           \
	((size_t)((const char *)&(info)->field - (const char *)(info)) +       \
		 sizeof((info)->field) <= (info)->struct_size)

typedef struct dynshm_instance_info {
	size_t struct_size;	  /* set by the library: bytes filled in */
	char name[80];		  /* as given, or "default" */
	char directory[4096];	  /* the runtime directory */
	uint64_t instance_id;	  /* random; part of every OS name */
	dynshm_impl_type backend;	  /* fixed when the instance was created */
	uint32_t max_segments;	  /* slots in the control segment */
	uint32_t max_processes;	  /* entries in the process table */
	uint32_t segments;	  /* slots in use now */
	uint32_t processes;	  /* processes joined now */
	uint64_t control_size;	  /* bytes of the control segment */
	pid_t creator_pid;	  /* the process that created the instance */
	uint64_t lock_repairs;	  /* times a dead lock holder was repaired */
	uint64_t processes_reaped; /* dead processes released so far */
	/* msharefs placement (docs/mshare.md); added in 0.2 */
	uint32_t mshare_active;	      /* 1: segments are placed in the region */
	uint32_t mshare_same_address; /* 1: at the creator's address here */
	uint64_t mshare_region_size;  /* bytes of address space, 0 if none */
	uint64_t mshare_window;	      /* region bytes per segment slot */
	char mshare_status[256];      /* why not active, or a note; "" if none */

	/*
	 * The region (min_dynamic_shared_memory): one mapping per process
	 * from which dynshm_create carves segments.  region_size 0: none.
	 */
	uint64_t region_size;	   /* bytes, rounded up to its page size */
	uint64_t region_used;	   /* bytes of blocks handed out now */
	uint64_t region_largest_free; /* largest segment that fits now */
	uint32_t region_segments;  /* segments living in it now */
	int region_same_address;   /* 1: mapped here at the recorded address */
	void *region_address;	   /* where this process maps it */
	void *region_recorded_address; /* where its creator mapped it */
	uint64_t region_page_size; /* bytes: 4096, or the huge page size */
	dynshm_huge_pages huge_pages; /* the setting it was created with */
	char region_pages[16];	   /* "hugetlb", "shmem-thp", "4k" or "none" */
	/* Why these pages, and which switch turns the next saving on. */
	char region_note[384];

	/*
	 * The control lock since the instance was created, all processes
	 * together (never reset): times it was taken, how many of those
	 * found it held and had to wait, and the nanoseconds they waited
	 * (CLOCK_MONOTONIC).  How long it is held is not measured.
	 */
	uint64_t lock_acquisitions;
	uint64_t lock_waits;
	uint64_t lock_wait_ns;
} dynshm_instance_info;

/* info_size: sizeof(*info); -EINVAL when smaller than a size_t. */
int dynshm_instance_info_get(dynshm_instance *inst, dynshm_instance_info *info,
			     size_t info_size);

/*
 * Release the references of processes that died and destroy what nobody
 * holds.  *reaped (may be NULL) receives how many dead processes were
 * released.  Also runs at open when the few processes an open checks
 * include a dead one, when tables are full, and when a lock holder is
 * found dead.
 */
int dynshm_reap(dynshm_instance *inst, unsigned *reaped);

/*
 * Process liveness for structures built on dynshm (queues, allocators).
 * dynshm_proc_self() gives this process's token in inst: a nonzero value,
 * meaningful in every process of the instance, that names this process's
 * membership (not its pid).  dynshm_proc_alive() returns 1 while the
 * process that got token is joined and alive, 0 once it has died or been
 * released (a token is never reused), and 1 when in doubt; -EINVAL for a
 * token that cannot be one.
 */
int dynshm_proc_self(dynshm_instance *inst, uint64_t *token);
int dynshm_proc_alive(dynshm_instance *inst, uint64_t token);

/* ---- segments ----------------------------------------------------------- */

/* Flags of dynshm_create. */
/* Only from the region: -ENOSPC when it has no room, -ENOTSUP without one. */
#define DYNSHM_CREATE_REGION 0x1u
/* Never from the region: an OS object of the instance's backend. */
#define DYNSHM_CREATE_NO_REGION 0x2u
/* A region segment keeps whatever its block held (backend ones are zero). */
#define DYNSHM_CREATE_NO_ZERO 0x4u

/*
 * Create a segment of size bytes (zero-filled unless DYNSHM_CREATE_NO_ZERO)
 * and map it.  With neither region flag, a segment comes from the region
 * when the instance has one with room, else from the backend.
 * -ENOSPC when every slot is in use (the message names max_segments) or the
 * OS is out of memory; -ENOTSUP when the instance's backend is none;
 * -EINVAL for unknown flags or both region flags.
 */
int dynshm_create(dynshm_instance *inst, size_t size, unsigned flags,
	       dynshm_segment **out);
/*
 * Map the segment called handle.  -ENOENT for an unknown, stale, forged or
 * other instance's handle, and for a segment being destroyed (dynshm_destroy
 * was called).  Attaching a segment this process already maps returns the
 * same dynshm_segment and counts one more attach - even when it is being
 * destroyed, since the mapping exists and holds a reference anyway.
 */
int dynshm_attach(dynshm_instance *inst, dynshm_handle handle, dynshm_segment **out);
/*
 * Undo one attach (or the create).  At the last one, run the on-detach
 * callbacks, unmap, and drop this process's reference; the process that
 * drops the last reference of an unpinned segment destroys it.
 */
int dynshm_detach(dynshm_segment *seg);

void *dynshm_segment_address(const dynshm_segment *seg);
size_t dynshm_segment_size(const dynshm_segment *seg);
dynshm_handle dynshm_segment_handle(const dynshm_segment *seg);

/* Keep the segment alive with no mapping, until unpinned or destroyed. */
int dynshm_pin_segment(dynshm_segment *seg);
/* Remove the pin; the segment goes when nobody maps it (now, if nobody). */
int dynshm_unpin_segment(dynshm_instance *inst, dynshm_handle handle);
/*
 * Unpin and refuse further attaches; the OS object goes when the last
 * process that maps it detaches (at once if none does).
 */
int dynshm_destroy(dynshm_instance *inst, dynshm_handle handle);

typedef void (*dynshm_on_detach_fn)(dynshm_segment *seg, void *arg);
/*
 * Call fn(seg, arg) when this process's last detach of seg happens
 * (including at dynshm_instance_close and at normal process exit).
 * Callbacks run last registered first; each is removed before it runs.
 * A callback that attaches seg again keeps the mapping (seg stays valid
 * until that attach is undone); one that detaches seg gets -EINVAL.
 */
int dynshm_on_detach(dynshm_segment *seg, dynshm_on_detach_fn fn, void *arg);
/* Remove the most recent registration of (fn, arg); -ENOENT if none. */
int dynshm_cancel_on_detach(dynshm_segment *seg, dynshm_on_detach_fn fn, void *arg);

/* ---- named segments ------------------------------------------------------
 * A segment may carry a name, unique among the live segments of its
 * instance, so that processes can find it without passing a handle.
 * Names: 1 to DYNSHM_SEGMENT_NAME_MAX bytes of letters, digits and '_' '.' '-'
 * ':' '/'.  A name is released when its segment is destroyed (dynshm_destroy,
 * or its last detach), even while a process still maps the old one.
 * Finding a name goes through a hash index in the control segment: O(1),
 * whatever the number of segments.
 */
#define DYNSHM_SEGMENT_NAME_MAX 63

/*
 * Create flag (dynshm_create, dynshm_create_named, dynshm_get_named): publish the
 * segment already pinned, with no moment at which it exists unpinned.
 */
#define DYNSHM_CREATE_PIN 0x8u

/*
 * Like dynshm_create, with a name.  -EEXIST when a live segment has that name;
 * -EINVAL for a bad name (the message says what is allowed).
 */
int dynshm_create_named(dynshm_instance *inst, const char *name, size_t size,
		     unsigned flags, dynshm_segment **out);
/*
 * Like dynshm_attach, by name.  -ENOENT when no live segment has that name,
 * including one still being initialised by dynshm_get_named (which waits).
 */
int dynshm_attach_named(dynshm_instance *inst, const char *name, dynshm_segment **out);

/*
 * Initialise a new named segment: seg is mapped and zero-filled, and no
 * other process can map it until this returns.  Return 0, or a negative
 * errno to give up: the segment is then destroyed and dynshm_get_named returns
 * that value.  It may use dynshm_segment_address/_size/_handle of seg, and
 * must not call other dynshm functions on its instance.
 */
typedef int (*dynshm_init_fn)(dynshm_segment *seg, void *arg);

/*
 * Get or create: attach the live segment called name, or create it with
 * size bytes and run init(seg, arg) (init may be NULL).  However many
 * processes race, init runs to completion exactly once: the others wait
 * until it has returned, then attach.  If the initialising process dies
 * inside init, its segment is destroyed and one of the waiters creates a
 * fresh one and runs init itself.  *created (may be NULL) is set to 1 when
 * this call created the segment, else 0.  -EINVAL when the segment exists
 * with another size (the message has both); flags: as for dynshm_create.
 */
int dynshm_get_named(dynshm_instance *inst, const char *name, size_t size,
		  unsigned flags, dynshm_init_fn init, void *arg,
		  dynshm_segment **out, int *created);

/* ---- scopes --------------------------------------------------------------
 * Attaches (dynshm_create, dynshm_attach) made by a thread while one of its
 * scopes is current belong to that scope and are undone when it ends; a
 * mapping goes with its last attach, so one that another thread (or an
 * attach outside scopes) still uses stays.  Scopes nest per thread.
 * Attaches made outside any scope live until detached or until
 * dynshm_instance_close.  End every scope of an instance before closing or
 * destroying it: a scope does not outlive its instance, and ending it
 * afterwards uses the freed instance.
 */
int dynshm_scope_begin(dynshm_instance *inst, dynshm_scope **out);
/* End the thread's innermost scope (which must be scope); frees it. */
int dynshm_scope_end(dynshm_scope *scope);
/* Move seg's attaches out of scopes: they live until detached explicitly. */
int dynshm_pin_mapping(dynshm_segment *seg);
/*
 * Undo dynshm_pin_mapping: seg (which belongs to no scope) joins the calling
 * thread's innermost scope of its instance.  -EINVAL when seg already
 * belongs to a scope or the thread has no scope on that instance.
 */
int dynshm_unpin_mapping(dynshm_segment *seg);
/*
 * This process's existing mapping of handle, without attaching again (the
 * attach count is unchanged: do not detach it on this account).  -ENOENT,
 * and *out = NULL, when this process does not map it.
 */
int dynshm_find_mapping(dynshm_instance *inst, dynshm_handle handle,
			dynshm_segment **out);

/* ---- version ------------------------------------------------------------- */

/*
 * The library's version, "MAJOR.MINOR.PATCH"; DYNSHM_VERSION_STRING is the
 * version of the headers the program was built with (dynshm/version.h).
 */
const char *dynshm_version(void);

/* ---- inspection ---------------------------------------------------------- */

typedef enum dynshm_segment_state {
	DYNSHM_SEGMENT_CREATING = 1, /* slot reserved, OS object being made */
	DYNSHM_SEGMENT_ACTIVE = 2,
	DYNSHM_SEGMENT_MORIBUND = 3, /* being destroyed */
	/*
	 * ACTIVE, but another program removed its OS object
	 * (dynshm_foreach_segment only): dynshm_destroy or dynshm_reap
	 * retires the slot.
	 */
	DYNSHM_SEGMENT_VANISHED = 4
} dynshm_segment_state;

typedef struct dynshm_segment_info {
	size_t struct_size;  /* set by the library: bytes filled in */
	dynshm_handle handle;
	uint64_t size;
	dynshm_impl_type backend;
	dynshm_segment_state state;
	uint32_t references; /* processes holding it */
	int pinned;
	pid_t creator_pid;
	uint64_t created_ns; /* CLOCK_REALTIME, nanoseconds */
	int in_region;	     /* 1: carved from the region (no OS object) */
	int huge_pages;	     /* 1: on hugetlb pages */
	uint64_t region_offset; /* where in the region, when in_region */
	char name[DYNSHM_SEGMENT_NAME_MAX + 1]; /* "" when it has none */
} dynshm_segment_info;

/*
 * -ENOENT when handle names no segment of inst.  info_size: sizeof(*info),
 * as for dynshm_instance_info_get.
 */
int dynshm_stat(dynshm_instance *inst, dynshm_handle handle,
		dynshm_segment_info *info, size_t info_size);

/* fn returns 0 to go on, anything else to stop (and that is returned). */
typedef int (*dynshm_segment_fn)(const dynshm_segment_info *info, void *arg);
/* Calls fn on a snapshot taken under the lock, outside the lock. */
int dynshm_foreach_segment(dynshm_instance *inst, dynshm_segment_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
