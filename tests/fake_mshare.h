/* SPDX-License-Identifier: MIT */
/*
 * fake_mshare.h - an msharefs v3 emulation behind the system-call table,
 * whose state is shared between processes as the kernel's is.
 *
 * Why it exists: this kernel has no msharefs, and an emulation kept in each
 * process's own memory is too kind to catch mistakes - one process's
 * CREATE_MAPPING is invisible to another, a wrong UNMAP goes unnoticed and
 * the owner's exit only makes mmap fail (issue 17).  This one keeps what
 * the kernel keeps in a shared file (<mount>/.fake-mshare, mapped by every
 * process that installs or inherits the fake):
 *   - regions by inode: size (set once, a multiple of the alignment), the
 *     owning *thread* (a robust mutex it locks at creation: the kernel
 *     releases it when that thread exits, whatever the process does), and
 *     every mapping by region offset; a mapping at the same offset replaces
 *     the old one; UNMAP is checked against what is mapped;
 *   - who holds each region (pid, descriptors, views), so that a change
 *     made by one process reaches every view: the changer sends SIGURG to
 *     the others and waits until each has re-synchronised its view (or is
 *     dead).  A view is an inaccessible reservation with each mapping
 *     mapped over it, so anything not mapped - an unmapped window, a region
 *     torn down - is a real SIGSEGV;
 *   - a helper process (started by fake_mshare_install) notices an owner
 *     thread's exit (the robust mutex turns EOWNERDEAD) and tears the region
 *     down: every mapping dropped, every view inaccessible, later mmap and
 *     ioctls refused with EINVAL.
 * The host mm's reference to a placed object is a hard link in the mount
 * (.fake-mshare-obj-<n>) or, on another file system such as /dev/shm, next
 * to it (dynshm.<id>.fake-mshare-<n>, so a leaked one shows as a test
 * leftover), or for an object already unlinked /proc/<pid>/fd/<n> of the
 * placing process.  A region is evicted (its mappings dropped) once its
 * file is unlinked and no live process holds a descriptor or a view.
 *
 * What it cannot model: page-table sharing itself (each process has its
 * own mappings of the objects), a change reaching other processes at the
 * same instant (they get it before the changing call returns, by signal),
 * memory charged to the owner.  docs/mshare.md has the list.
 *
 * Rules for tests: install before forking (children inherit it), and
 * fake_mshare_uninstall() in teardown (before inject_reset).
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
#define FAKE_HOLDERS 96
#define FAKE_LINK 192

struct fake_map {
	uint64_t id;		/* 0: unused */
	uint64_t off, size, offset;
	int prot;
	bool borrowed;		/* link is /proc/<pid>/fd/<fd>: not unlinked */
	int32_t borrow_pid, borrow_fd;
	char link[FAKE_LINK];	/* what keeps the object: open it to map it */
};

struct fake_region {
	bool used, sized, dead, unlinked;
	uint64_t dev, ino;	/* the region file */
	char path[PATH_MAX];
	uint64_t size;
	pthread_mutex_t owner;	/* robust; locked by the creating thread */
	int32_t owner_pid, owner_tid; /* 0: no owner (never was one) */
	struct fake_map map[FAKE_MAPS];
};

struct fake_holder {
	int32_t pid;		/* 0: unused */
	int region;
	int nfds, nviews;
	uint64_t synced;	/* the last generation its views reflect */
};

/* Guarded by lock (robust, process-shared). */
struct fake_mshare {
	pthread_mutex_t lock;
	char mount[PATH_MAX];
	uint64_t align;
	int abi;		/* 3, 2 (no fd objects) or 1 (old numbers) */
	uint32_t magic;		/* what statfs reports for the mount */
	int fail_step, fail_err; /* enum fake_step: fail it with fail_err */
	uint64_t gen, next_id;
	int32_t helper_pid;
	/* counters tests read */
	unsigned creates, unmaps, replaced, empty_unmaps, teardowns;
	unsigned evictions, v1_set_size;
	unsigned errors;	/* wrong unmaps and anything else impossible */
	char error[256];	/* the first of them */
	struct fake_region r[FAKE_REGIONS];
	struct fake_holder h[FAKE_HOLDERS];
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

#endif
