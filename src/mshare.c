/* SPDX-License-Identifier: MIT */
/*
 * mshare.c - the msharefs v3 ABI, and nothing else (see mshare.h for why
 * it is isolated, docs/mshare.md for where each fact comes from).
 *
 * Compiled only with the Meson feature 'mshare'.  What could not be
 * verified from the patch texts is marked UNVERIFIED below.
 */
#include "mshare.h"

#include "error.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

/*
 * v3's uapi structs are plain __u64/__u32 fields, laid out by the C ABI of
 * the target, as the kernel built for it lays them out: the fields end at
 * byte 36 everywhere; sizeof is 40 where u64 is 8-aligned (x86-64, arm64)
 * and 36 where it is 4-aligned (i386).  The ioctl number encodes sizeof, so
 * the struct must not be packed or padded by hand: each target sends the
 * number its own kernel expects.
 */
_Static_assert(offsetof(struct mshare_create_arg, fd) == 32, "mshare_create");
_Static_assert(sizeof(struct mshare_create_arg) ==
		       (36 + _Alignof(uint64_t) - 1) / _Alignof(uint64_t) *
			       _Alignof(uint64_t),
	       "mshare_create");
_Static_assert(sizeof(struct mshare_unmap_arg) == 16, "mshare_unmap");
/* The collision the probe order guards against. */
_Static_assert(MSHAREFS_V1_SET_SIZE == MSHAREFS_UNMAP, "v1 SET_SIZE");

static uint64_t page_size(void)
{
	long n = sysconf(_SC_PAGESIZE);

	return n > 0 ? (uint64_t)n : 4096;
}

/* Read/write shared memory of the object at off, as mmap would map it. */
static void fill_create(struct mshare_create_arg *c, uint64_t off, int fd,
			uint64_t size)
{
	memset(c, 0, sizeof(*c)); /* the kernel copies the padding too */
	c->region_offset = off;
	c->size = size;
	c->prot = PROT_READ | PROT_WRITE;
	c->flags = MAP_SHARED | MAP_FIXED;
	c->fd = (uint32_t)fd;
}

static int read_alignment(const char *mount, uint64_t *align)
{
	char path[PATH_MAX], text[64], *end;
	unsigned long long v;
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/mshare_info", mount) >=
	    (int)sizeof(path))
		return dynshm_fail(ENAMETOOLONG, "msharefs path '%s' is too long",
				mount);
	fd = dynshm_sys.open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return dynshm_fail(errno, "cannot open '%s': %s", path,
				strerror(errno));
	do
		n = dynshm_sys.read(fd, text, sizeof(text) - 1);
	while (n < 0 && errno == EINTR);
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
	if (n < 0)
		return dynshm_fail(errno, "cannot read '%s': %s", path,
				strerror(errno));
	text[n] = '\0';
	errno = 0;
	v = strtoull(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	/* The kernel prints "%ld\n" of P4D_SIZE: a power of two >= a page. */
	if (errno || end == text || *end != '\0' || v < page_size() ||
	    (v & (v - 1)) != 0) {
		text[strcspn(text, "\n")] = '\0';
		return dynshm_fail(EPROTO, "'%s' holds '%s', not an alignment in "
					"bytes (an msharefs of another version?)",
				path, text);
	}
	*align = v;
	return 0;
}

int mshare_probe(const char *mount, uint64_t *align)
{
	struct statfs st;

	if (dynshm_sys.statfs(mount, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return dynshm_fail(ENODEV, "msharefs not mounted at %s (no "
						"such directory: the kernel "
						"has no msharefs)",
					mount);
		return dynshm_fail(errno, "cannot statfs '%s': %s", mount,
				strerror(errno));
	}
	if ((uint32_t)st.f_type != MSHARE_MAGIC)
		return dynshm_fail(ENODEV, "msharefs not mounted at %s (file "
					"system type 0x%llx there; mount it "
					"with 'mount -t msharefs msharefs %s')",
				mount, (unsigned long long)st.f_type, mount);
	return read_alignment(mount, align);
}

/*
 * Prove the v3 ABI with a real, harmless placement: one page of a fresh
 * posix shm object at the region's last page, then removed.  Sent before
 * any other ioctl: on a v1 kernel CREATE_MAPPING's v3 number is unknown
 * (ENOTTY), while UNMAP's v3 number would have set v1's region size.  v2
 * knows the numbers but maps anonymous memory only (EINVAL for an fd).
 */
static int probe_abi(struct mshare_region *r, const char *probe_name)
{
	uint64_t page = page_size();
	int pfd, rc = 0;

	pfd = dynshm_sys.shm_open(probe_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			       0600);
	if (pfd < 0)
		return dynshm_fail(errno, "cannot create the msharefs probe "
				       "object '%s': %s",
				probe_name, strerror(errno));
	dynshm_sys.shm_unlink(probe_name); /* the descriptor is enough */
	if (dynshm_sys.ftruncate(pfd, (off_t)page) < 0)
		rc = dynshm_fail(errno, "cannot size the msharefs probe object: "
				     "%s",
			      strerror(errno));
	if (rc == 0) {
		struct mshare_create_arg c;

		fill_create(&c, r->size - page, pfd, page);
		if (dynshm_sys.ioctl(r->fd, MSHAREFS_CREATE_MAPPING, &c) < 0) {
			int err = errno;

			if (err == ENOTTY)
				rc = dynshm_fail(EPROTO,
					      "msharefs at '%s' is not the v3 "
					      "ABI: MSHAREFS_CREATE_MAPPING is "
					      "unknown to it (ENOTTY; an older "
					      "patch series)",
					      r->path);
			else if (err == EINVAL)
				rc = dynshm_fail(EPROTO,
					      "msharefs at '%s' refused to map "
					      "an fd-backed object (EINVAL; the "
					      "v2 series maps anonymous memory "
					      "only)",
					      r->path);
			else
				rc = dynshm_fail(err, "msharefs ABI probe on '%s' "
						   "failed: %s",
					      r->path, strerror(err));
		}
	}
	if (rc == 0) {
		struct mshare_unmap_arg u = { r->size - page, page };

		if (dynshm_sys.ioctl(r->fd, MSHAREFS_UNMAP, &u) < 0)
			rc = dynshm_fail(errno, "msharefs at '%s' accepted "
					     "CREATE_MAPPING but not UNMAP: %s",
				      r->path, strerror(errno));
	}
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(pfd));
	return rc;
}

int mshare_region_create(const char *mount, const char *name,
			 uint64_t min_size, const char *probe_name,
			 struct mshare_region *r)
{
	struct mshare_region n = MSHARE_REGION_INIT;
	void *base;
	int rc = mshare_probe(mount, &n.align);

	if (rc < 0)
		return rc;
	if (min_size == 0 || min_size > UINT64_MAX - n.align)
		return dynshm_fail(EINVAL, "bad msharefs region size %" PRIu64,
				min_size);
	n.size = (min_size + n.align - 1) / n.align * n.align;
	if (snprintf(n.path, sizeof(n.path), "%s/%s", mount, name) >=
	    (int)sizeof(n.path))
		return dynshm_fail(ENAMETOOLONG, "msharefs path '%s/%s' is too "
					      "long",
				mount, name);
	n.fd = dynshm_sys.open(n.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
					    O_NOFOLLOW,
			    0600);
	if (n.fd < 0)
		return dynshm_fail(errno, "cannot create msharefs region '%s': %s",
				n.path, strerror(errno));
	{
		struct stat st;

		if (dynshm_sys.fstat(n.fd, &st) < 0) {
			rc = dynshm_fail(errno, "cannot stat msharefs region "
					     "'%s': %s",
				      n.path, strerror(errno));
			goto fail_close;
		}
		n.dev = (uint64_t)st.st_dev;
		n.ino = (uint64_t)st.st_ino;
	}
	/* The size is set once, to a multiple of the alignment (v3 05/22). */
	if (dynshm_sys.ftruncate(n.fd, (off_t)n.size) < 0) {
		rc = dynshm_fail(errno, "cannot size msharefs region '%s' to %" PRIu64
				     " bytes: %s",
			      n.path, n.size, strerror(errno));
		goto fail_close;
	}
	rc = probe_abi(&n, probe_name);
	if (rc < 0)
		goto fail_close;
	base = dynshm_sys.mmap(NULL, n.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			    n.fd, 0);
	if (base == MAP_FAILED) {
		rc = dynshm_fail(errno, "cannot map msharefs region '%s' (%" PRIu64
				     " bytes): %s",
			      n.path, n.size, strerror(errno));
		goto fail_close;
	}
	n.base = base;
	*r = n;
	return 0;

fail_close:
	/* back out in reverse: close, then remove the file */
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(n.fd));
	DYNSHM_SAVE_ERRNO(dynshm_sys.unlinkat(AT_FDCWD, n.path, 0));
	return rc;
}

int mshare_region_open(const char *path, void *addr, struct mshare_region *r)
{
	struct mshare_region n = MSHARE_REGION_INIT;
	struct stat st;
	void *base = MAP_FAILED;
	int rc;

	if (snprintf(n.path, sizeof(n.path), "%s", path) >= (int)sizeof(n.path))
		return dynshm_fail(ENAMETOOLONG, "msharefs path too long");
	n.fd = dynshm_sys.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	if (n.fd < 0)
		return dynshm_fail(errno, "cannot open msharefs region '%s': %s%s",
				path, strerror(errno),
				errno == ELOOP ? " (a symbolic link was planted "
						 "in its place)"
					       : "");
	if (dynshm_sys.fstat(n.fd, &st) < 0) {
		rc = dynshm_fail(errno, "cannot stat msharefs region '%s': %s",
			      path, strerror(errno));
		goto fail_close;
	}
	/* The mount is 0777 without the sticky bit: anyone can replace it. */
	if (!S_ISREG(st.st_mode) || !dynshm_uid_is_ours(st.st_uid) ||
	    (st.st_mode & 077)) {
		rc = dynshm_fail(EPERM, "msharefs region '%s' is not ours (type "
				     "%o, uid %u, mode %03o; expected a "
				     "region of uid %u, mode 0600): someone "
				     "replaced it; not joining it (reset the "
				     "instance)",
			      path, (unsigned)(st.st_mode & S_IFMT),
			      (unsigned)st.st_uid,
			      (unsigned)(st.st_mode & 0777),
			      (unsigned)geteuid());
		goto fail_close;
	}
	n.dev = (uint64_t)st.st_dev;
	n.ino = (uint64_t)st.st_ino;
	if (st.st_size <= 0) {
		rc = dynshm_fail(EPROTO, "msharefs region '%s' has no size (its "
				      "creator died before sizing it)",
			      path);
		goto fail_close;
	}
	n.size = (uint64_t)st.st_size;
	/* Same address as the creator's where it is free (v2+ allow any). */
	if (addr)
		base = dynshm_sys.mmap(addr, n.size, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_FIXED_NOREPLACE, n.fd, 0);
	if (base == MAP_FAILED || (addr && base != addr)) {
		/* Kernels before 4.17 treat the flag as a hint. */
		if (base != MAP_FAILED)
			dynshm_sys.munmap(base, n.size);
		base = dynshm_sys.mmap(NULL, n.size, PROT_READ | PROT_WRITE,
				    MAP_SHARED, n.fd, 0);
	}
	if (base == MAP_FAILED) {
		/* v3 refuses (EINVAL) once the region's owner has exited. */
		rc = dynshm_fail(errno, "cannot map msharefs region '%s': %s%s",
			      path, strerror(errno),
			      errno == EINVAL ? " (its owner may have exited)"
					      : "");
		goto fail_close;
	}
	n.base = base;
	*r = n;
	return 0;

fail_close:
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(n.fd));
	return rc;
}

int mshare_place(struct mshare_region *r, uint64_t off, int fd, uint64_t size)
{
	uint64_t page = page_size();
	struct mshare_create_arg c;

	fill_create(&c, off, fd, (size + page - 1) / page * page);
	if (r->fd < 0)
		return dynshm_fail(EBADF, "no msharefs region open");
	if (dynshm_sys.ioctl(r->fd, MSHAREFS_CREATE_MAPPING, &c) < 0)
		return dynshm_fail(errno, "cannot place %" PRIu64 " bytes at offset "
				       "%" PRIu64 " of msharefs region '%s': %s",
				c.size, off, r->path, strerror(errno));
	return 0;
}

int mshare_unplace(struct mshare_region *r, uint64_t off, uint64_t size)
{
	struct mshare_unmap_arg u = { off, size };

	if (r->fd < 0)
		return dynshm_fail(EBADF, "no msharefs region open");
	if (dynshm_sys.ioctl(r->fd, MSHAREFS_UNMAP, &u) < 0)
		return dynshm_fail(errno, "cannot remove [%" PRIu64 ", +%" PRIu64
				       ") from msharefs region '%s': %s",
				off, size, r->path, strerror(errno));
	return 0;
}

void mshare_region_close(struct mshare_region *r)
{
	if (r->base)
		dynshm_sys.munmap(r->base, r->size);
	if (r->fd >= 0)
		dynshm_sys.close(r->fd);
	r->base = NULL;
	r->fd = -1;
}

int mshare_region_unlink(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct statfs st;

	if (!slash || slash == path || (size_t)(slash - path) >= sizeof(dir))
		return dynshm_fail(EPERM, "not removing '%s': not a region path",
				path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (dynshm_sys.statfs(dir, &st) < 0)
		return errno == ENOENT ? -ENOENT
				       : dynshm_fail(errno, "cannot statfs '%s': %s",
						  dir, strerror(errno));
	if ((uint32_t)st.f_type != MSHARE_MAGIC)
		return dynshm_fail(EPERM, "not removing '%s': '%s' is no "
					"msharefs (file system type 0x%llx)",
				path, dir, (unsigned long long)st.f_type);
	if (dynshm_sys.unlinkat(AT_FDCWD, path, 0) < 0)
		return errno == ENOENT ? -ENOENT
				       : dynshm_fail(errno, "cannot remove msharefs "
							 "region '%s': %s",
						  path, strerror(errno));
	return 0;
}
