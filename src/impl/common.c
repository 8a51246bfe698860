/* SPDX-License-Identifier: MIT */
/*
 * common.c - what the backends share: object names, and the sizing,
 * mapping and owner checks of the two backends built on a file descriptor
 * (posix and mmap), which size, allocate and map identically.
 *
 * A file of its own so that the layer reads bottom-up: the backends call
 * down into this, impl.c calls down into the backends, and nothing here
 * calls back up.
 */
#include "impl_internal.h"

#include "../error.h"
#include "../sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- naming ------------------------------------------------------------ */

/*
 * Formatted by hand: this runs at every attach and destroy, and snprintf
 * cost about 1,200 instructions here, more than the rest of the backend's
 * user-space work on attach together.
 */
int dynshm_impl_base_name(const dynshm_impl_space *space, dynshm_handle handle,
		       char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t plen = space->prefix_len;

	if (len < plen + 17)
		return dynshm_fail(ENAMETOOLONG, "object name buffer too small");
	memcpy(buf, space->prefix, plen);
	for (int i = 15; i >= 0; i--, handle >>= 4)
		buf[plen + (size_t)i] = hex[handle & 0xf];
	buf[plen + 16] = '\0';
	return 0;
}

dynshm_handle dynshm_impl_parse_base_name(const dynshm_impl_space *space,
				    const char *base)
{
	size_t plen = space->prefix_len;
	uint64_t handle = 0;
	const char *p;

	if (strncmp(base, space->prefix, plen) != 0)
		return DYNSHM_HANDLE_INVALID;
	p = base + plen;
	if (strlen(p) != 16)
		return DYNSHM_HANDLE_INVALID;
	for (; *p; p++) {
		int digit;

		if (*p >= '0' && *p <= '9')
			digit = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			digit = *p - 'a' + 10;
		else
			return DYNSHM_HANDLE_INVALID;
		handle = handle << 4 | (uint64_t)digit;
	}
	return handle;
}

/* ---- helpers for file-descriptor backends ------------------------------- */

/* Size the object and reserve every block, so a full fs fails now. */
int dynshm_impl_fd_size(int fd, size_t size, const char *what)
{
	int rc;

	do
		rc = dynshm_sys.ftruncate(fd, (off_t)size);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return dynshm_fail(errno, "cannot size %s to %zu bytes: %s", what,
				size, strerror(errno));
	do
		rc = dynshm_sys.posix_fallocate(fd, 0, (off_t)size);
	while (rc == EINTR);
	if (rc != 0)
		return dynshm_fail(rc, "cannot allocate %zu bytes for %s: %s",
				size, what, strerror(rc));
	return 0;
}

int dynshm_impl_fd_map(int fd, size_t size, const char *what,
		    struct dynshm_impl_map *map)
{
	void *addr = dynshm_sys.mmap(NULL, size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, fd, 0);

	if (addr == MAP_FAILED)
		return dynshm_impl_map_failed(errno, size, what);
	map->address = addr;
	map->size = size;
	return 0;
}

/* A number read from a /proc file, or -1. */
static long proc_number(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = dynshm_sys.open(path, O_RDONLY | O_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	n = dynshm_sys.read(fd, buf, sizeof(buf) - 1);
	dynshm_sys.close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Lines of /proc/self/maps: the mappings this process has, or -1. */
static long count_mappings(void)
{
	char buf[4096];
	long lines = 0;
	ssize_t n;
	int fd = dynshm_sys.open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	while ((n = dynshm_sys.read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	dynshm_sys.close(fd);
	return n < 0 ? -1 : lines;
}

/*
 * mmap and shmat fail with ENOMEM when the process already has
 * vm.max_map_count mappings (65530 by default), and every segment mapped on
 * its own is one: a server with many segments meets the limit long before
 * it runs out of memory.  "Cannot allocate memory" alone sends the operator
 * looking at RAM, so the message names the limit with both numbers and the
 * way around it (the region: one mapping for every segment carved from it).
 * Only on failure, so the two /proc reads cost nothing otherwise.
 */
int dynshm_impl_map_failed(int err, size_t size, const char *what)
{
	long limit, maps;

	if (err != ENOMEM)
		return dynshm_fail(err, "cannot map %zu bytes of %s: %s", size,
				what, strerror(err));
	limit = proc_number("/proc/sys/vm/max_map_count");
	maps = count_mappings();
	return dynshm_fail(ENOMEM,
			"cannot map %zu bytes of %s: %s (this process has "
			"%ld mappings, the limit vm.max_map_count is %ld: "
			"raise it, or carve segments from the region with "
			"min_dynamic_shared_memory, one mapping for all of "
			"them)",
			size, what, strerror(ENOMEM), maps, limit);
}

/* Refuse anything that is not a plain, private object of ours. */
int dynshm_impl_fd_check_owner(int fd, const char *what, size_t *size)
{
	struct stat st;

	if (dynshm_sys.fstat(fd, &st) < 0)
		return dynshm_fail(errno, "cannot stat %s: %s", what,
				strerror(errno));
	if (!S_ISREG(st.st_mode))
		return dynshm_fail(EACCES, "%s is not a regular object", what);
	if (!dynshm_uid_is_ours(st.st_uid))
		return dynshm_fail(EACCES,
				"%s belongs to uid %u, not to this process's "
				"uid %u",
				what, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return dynshm_fail(EACCES,
				"%s is accessible to other users (mode %04o)",
				what, (unsigned)(st.st_mode & 07777));
	if (st.st_size <= 0)
		return dynshm_fail(ENOENT, "%s is empty (creation unfinished)",
				what);
	*size = (size_t)st.st_size;
	return 0;
}

/*
 * Listing feeds cleanup: an object another user planted under our prefix
 * (/dev/shm is writable by all) is not ours to report or to remove.
 */
bool dynshm_impl_is_ours(int dirfd, const char *name)
{
	struct stat st;

	if (dynshm_sys.fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return S_ISREG(st.st_mode) && dynshm_uid_is_ours(st.st_uid);
}

int dynshm_impl_munmap(struct dynshm_impl_map *map)
{
	if (dynshm_sys.munmap(map->address, map->size) < 0)
		return dynshm_fail(errno, "cannot unmap %zu bytes at %p: %s",
				map->size, map->address, strerror(errno));
	return 0;
}
