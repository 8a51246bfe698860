/* SPDX-License-Identifier: MIT */
/*
 * fake_mshare.h - an msharefs v3 emulation behind the system-call table,
 * whose state is shared between processes as the kernel's is.
 *
 * Why it exists: this kernel has no msharefs, and an emulation kept in each
 * process's own memory is too kind to catch mistakes - one process's
 * CREATE_MAPPING is invisible to another, a wrong UNMAP goes unnoticed and
 * the owner's exit only makes mmap fail (issue 17).  This one keeps what
 * the kernel keeps in one shared file (<mount>/.fake-mshare, mapped by
 * every process that installs or inherits the fake), read and changed
 * under one lock (an OFD lock on that file, which PID namespaces do not
 * affect) by every emulated call, and nothing in any process's own
 * memory that another process has to bring up to date:
 *   - regions by inode: size (set once, a multiple of the alignment), the
 *     owning *thread* (a robust mutex it locks at creation: the kernel
 *     releases it when that thread exits, whatever the process does), and
 *     every mapping by region offset; a mapping at the same offset replaces
 *     the old one; UNMAP is checked against what is mapped;
 *   - a process's view of a region is an inaccessible reservation.  Its
 *     first access to a window faults, and the fault handler maps what the
 *     shared state says lies there - or, when nothing does, lets the fault
 *     be a real SIGSEGV.  A mapping that UNMAP, a replacing CREATE_MAPPING
 *     or the owner's exit takes away is revoked in every process at once,
 *     before the call returns: its object is truncated to nothing, so any
 *     process's next access faults (SIGBUS) and the handler decides again
 *     against the shared state.  So forked children, processes whose
 *     leader thread exited and processes in other PID namespaces need
 *     nothing: no registration, no pid, no signal sent to them;
 *   - who holds a region is what the kernel counts: a process holding a
 *     region descriptor or a view holds a shared flock on the region's
 *     holder file (<mount>/.fake-mshare-hold-<n>), through the descriptor
 *     or the view's mapping, released by the kernel when the last of them
 *     goes - also in a process killed by SIGKILL;
 *   - the owner thread's exit is seen by every emulated call and fault
 *     (trylock of its robust mutex) and by a helper process (started by
 *     fake_mshare_install) within a millisecond; either tears the region
 *     down: every mapping revoked, later mmap and ioctls refused (EINVAL);
 *   - a process killed inside an emulated call (holding the lock) leaves
 *     a note of what it was doing; the next locker finishes or undoes it,
 *     so every call is all or nothing, as a system call is.
 * The host mm's reference to a placed object is a hard link in the mount
 * (.fake-mshare-obj-<n>) or, on another file system such as /dev/shm, next
 * to it (dynshm.<id>.fake-mshare-<n>, so a leaked one shows as a test
 * leftover), or for an object already unlinked (no name to link) a
 * descriptor the helper keeps and hands out over a unix socket bound in
 * the mount (.fake-mshare.keeper): reached by path, not by a pid, from
 * any PID or mount namespace.  A region is evicted (its mappings dropped)
 * once its file is unlinked and no process holds a descriptor or a view.
 *
 * What it cannot model: page-table sharing itself (each process maps the
 * objects itself); an object keeping its contents after its window is
 * revoked (truncating it is how every process loses it at once - the
 * library never uses a placed object but through the region); the owner
 * thread's exit reaching a window a process already mapped before the
 * helper sees it (within about a millisecond); memory charged to the
 * owner.  docs/mshare.md has the list.
 *
 * Rules for tests: install before forking (children inherit it), and
 * fake_mshare_uninstall() in teardown (before inject_reset).  A child
 * that wants a fault to kill it calls fake_mshare_default_faults(), not
 * signal(SIGSEGV, SIG_DFL): the emulation's handler must stay first.
 */
#ifndef DYNSHM_TEST_FAKE_MSHARE_H
#define DYNSHM_TEST_FAKE_MSHARE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum fake_step { STEP_NONE, STEP_OPEN, STEP_FTRUNCATE, STEP_MMAP,
		 STEP_CREATE, STEP_UNMAP };

#define FAKE_REGIONS 8
#define FAKE_MAPS 64
#define FAKE_LINK 192

struct fake_map {
	uint64_t id;		/* 0: unused; written last when added */
	uint64_t off, size, offset;
	uint64_t dev, ino;	/* the object */
	int prot;
	bool borrowed;		/* the helper keeps it, by id; link names it */
	char link[FAKE_LINK];	/* what keeps the object: open it to map it */
};

struct fake_region {
	bool used, sized, dead, unlinked, evicting;
	uint64_t serial;	/* names its holder file; tells reuse apart */
	uint64_t dev, ino;	/* the region file */
	char path[PATH_MAX];
	uint64_t size;
	pthread_mutex_t owner;	/* robust; locked by the creating thread */
	bool has_owner;		/* false: never had one (not made O_EXCL) */
	struct fake_map map[FAKE_MAPS];
};

/* What a call holding the lock was doing, for the next locker to finish
 * (or, for a CREATE_MAPPING not yet added, undo) if it was killed. */
enum fake_pending { PENDING_NONE, PENDING_CREATE, PENDING_UNMAP };

/* Guarded by the state lock: an OFD lock on byte 0 of this file. */
struct fake_mshare {
	uint32_t held;		/* 1 while a holder is in; left by one that died */
	char mount[PATH_MAX];
	uint64_t align;
	int abi;		/* 3, 2 (no fd objects) or 1 (old numbers) */
	uint32_t magic;		/* what statfs reports for the mount */
	int fail_step, fail_err; /* enum fake_step: fail it with fail_err */
	uint64_t next_id, next_serial;
	int32_t helper_pid;	/* the installer's child: in its namespace */
	int pending, pending_region;
	uint64_t pending_off, pending_size;
	struct fake_map pending_map; /* PENDING_CREATE: the map being added */
	/* counters tests read */
	unsigned creates, unmaps, replaced, empty_unmaps, teardowns;
	unsigned evictions, v1_set_size, revoked, faults_mapped, repairs;
	unsigned errors;	/* wrong unmaps and anything else impossible */
	char error[256];	/* the first of them */
	struct fake_region r[FAKE_REGIONS];
};

/* The shared state, NULL when not installed. */
extern struct fake_mshare *fake_mshare;

/*
 * Make mount (an existing directory) an msharefs of the given ABI with
 * alignment align: writes mshare_info, creates the shared state, starts
 * the helper, replaces the system-call table's entries.  0 or -errno.
 */
int fake_mshare_install(const char *mount, int abi, uint64_t align);
/* Stop the helper, drop what is left, put the table entries back. */
void fake_mshare_uninstall(void);
/* Wait (bounded) until the helper tore down every region whose owner
 * thread exited; the number torn down so far. */
unsigned fake_mshare_wait_teardown(unsigned want);
/* Mappings of the region at path covering region offset off (0 or 1). */
int fake_mshare_mapped_at(const char *path, uint64_t off);
/* Mappings in all regions; views of regions in this process. */
int fake_mshare_mappings(void);
int fake_mshare_views(void);
/* The i-th view of this process (in creation order), NULL if none. */
void *fake_mshare_view(int i);
/* Regions not yet evicted. */
int fake_mshare_live_regions(void);
/* Files of the emulation in the mount (object links, holder files) that no
 * live region accounts for: 0 unless something leaked.  (Links next to
 * objects in /dev/shm carry the instance's prefix: leftover checks see
 * those.) */
int fake_mshare_stray_files(void);
/* In a child that must die of a fault: what signal(SIGSEGV, SIG_DFL) and
 * signal(SIGBUS, SIG_DFL) would do, keeping the emulation's handler. */
void fake_mshare_default_faults(void);

#endif
