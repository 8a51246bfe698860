/* SPDX-License-Identifier: MIT */
/*
 * mshare.h - msharefs regions: one address range whose page tables every
 * process that maps it shares (experimental kernel ABI, patch series v3,
 * "Add support for shared PTEs across processes", August 2025, unmerged).
 *
 * Why it exists: a shared 4 KiB page costs each mapping process an 8-byte
 * PTE; with msharefs the PTEs live once, in the region's host mm.  The ABI
 * is unmerged and may change, so everything that knows it is in mshare.c,
 * compiled only with the Meson feature 'mshare'; mshare_stub.c stands in
 * otherwise and refuses with "built without mshare support".
 * docs/mshare.md records the ABI facts with their sources.
 *
 * The sequence (v3):
 *	probe	statfs(mount) says MSHARE_MAGIC; <mount>/mshare_info holds
 *		the alignment as decimal text;
 *	create	open(<mount>/<name>, O_RDWR|O_CREAT|O_EXCL), ftruncate to a
 *		multiple of the alignment, then a harmless MSHAREFS_CREATE_
 *		MAPPING (a one-page posix shm object at the region's last
 *		page) proves the v3 ABI before any other ioctl is sent -
 *		v1's SET_SIZE has the number of v3's UNMAP;
 *	map	mmap(MAP_SHARED) of the whole region file, at the creator's
 *		address in every process where it is free;
 *	place	MSHAREFS_CREATE_MAPPING of an fd-backed object at an offset;
 *	remove	MSHAREFS_UNMAP of that range;
 *	destroy	unlink the region file.
 * The region dies (everything in it unmapped) when the *thread* that
 * created the file exits: only a long-lived supervisor may create one.
 *
 * Every system call goes through dynshm_sys.  Functions return 0 or -errno
 * and record a message with dynshm_fail(); a failed function leaves nothing
 * behind (no descriptor, no mapping, no file).
 */
#ifndef DYNSHM_MSHARE_H
#define DYNSHM_MSHARE_H

#include <limits.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <stdint.h>

#define MSHARE_DEFAULT_PATH "/sys/fs/mshare"

/* ---- the v3 ABI (include/uapi/linux/msharefs.h of the v3 series) ------- */

#define MSHARE_MAGIC 0x4d534852u /* "MSHR", include/uapi/linux/magic.h */

struct mshare_create_arg {
	uint64_t region_offset; /* where in the region, bytes */
	uint64_t size;
	uint64_t offset;	/* into the object, as mmap's offset */
	uint32_t prot;
	uint32_t flags;		/* MAP_SHARED | MAP_FIXED required */
	uint32_t fd;		/* the object, in the caller's fd table */
};

struct mshare_unmap_arg {
	uint64_t region_offset;
	uint64_t size;
};

/* v1 (January 2025) took the region's start and size here. */
struct mshare_v1_info {
	uint64_t start;
	uint64_t size;
};

/* The numbers: _IOW('x', 0, ...) and _IOW('x', 1, ...) in v3. */
#define MSHAREFS_CREATE_MAPPING _IOW('x', 0, struct mshare_create_arg)
#define MSHAREFS_UNMAP _IOW('x', 1, struct mshare_unmap_arg)
/* v1's number for "set the region's start and size": the same as UNMAP. */
#define MSHAREFS_V1_SET_SIZE _IOW('x', 1, struct mshare_v1_info)

/* ---- regions -------------------------------------------------------------- */

struct mshare_region {
	int fd;		    /* the region file, -1 when none */
	void *base;	    /* this process's mapping, NULL when none */
	uint64_t size;	    /* bytes, a multiple of align */
	uint64_t align;	    /* from mshare_info */
	char path[PATH_MAX];
	uint64_t dev, ino;  /* the region file's identity (fstat) */
};

#define MSHARE_REGION_INIT { -1, NULL, 0, 0, "", 0, 0 }

/*
 * Is msharefs mounted at mount, with a usable mshare_info?  *align gets the
 * alignment.  On failure the message says why in words an operator can act
 * on ("msharefs not mounted at /sys/fs/mshare").
 */
int mshare_probe(const char *mount, uint64_t *align);

/*
 * Create <mount>/<name> of at least min_size bytes (rounded up to the
 * alignment), prove the v3 ABI, map it MAP_SHARED wherever the kernel
 * chooses.  probe_name is a posix shm name for the one-page ABI probe
 * (unlinked at once).  -EEXIST when the file exists.
 */
int mshare_region_create(const char *mount, const char *name,
			 uint64_t min_size, const char *probe_name,
			 struct mshare_region *r);

/*
 * Open an existing region file and map it, at addr if addr is free there
 * (MAP_FIXED_NOREPLACE), else wherever the kernel chooses: compare r->base
 * with addr to know which.  The mount is world-writable without the sticky
 * bit, so anyone may replace a region file: it is opened with O_NOFOLLOW
 * and must be a regular file of our uid that no one else may read or
 * write (EPERM otherwise, saying what was found); the caller compares
 * r->dev and r->ino with the identity it recorded.
 */
int mshare_region_open(const char *path, void *addr, struct mshare_region *r);

/* Place size bytes of the object fd at region offset off (CREATE_MAPPING). */
int mshare_place(struct mshare_region *r, uint64_t off, int fd, uint64_t size);
/* Remove whatever lies in [off, off + size) of the region (UNMAP). */
int mshare_unplace(struct mshare_region *r, uint64_t off, uint64_t size);

/* Unmap and close; the region lives on for the others. */
void mshare_region_close(struct mshare_region *r);
/*
 * Remove a region file by path (no mapping needed); -ENOENT if absent.
 * Only inside an msharefs: a path whose directory is not one is refused
 * (EPERM), so that a scribbled record cannot make it remove anything else.
 */
int mshare_region_unlink(const char *path);

#endif
