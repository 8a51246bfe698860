/* SPDX-License-Identifier: MIT */
/*
 * mmap.c - segments as files in a directory, mapped MAP_SHARED.
 *
 * For systems with a small or missing /dev/shm, or where an operator wants
 * segments in a place of their choosing (by default the instance's runtime
 * directory, usually on a tmpfs).  On a disk file system the kernel may write
 * dirty pages back, which costs I/O; PostgreSQL warns about the same.
 *
 * A directory is a place where another local user might plant things, so:
 * the directory must belong to us and not be writable by others unless it
 * has the sticky bit (checked when the space opens, and held open as a
 * descriptor so a renamed-away directory cannot redirect us); every file is
 * opened relative to that descriptor with O_NOFOLLOW; a create that finds
 * something already at its name says whether that is a harmless collision
 * (quiet -EEXIST) or a planted symlink or foreign file (-EACCES).
 */
#include "impl_internal.h"

#include "../error.h"
#include "../sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NAME_LEN (DYNSHM_IMPL_PREFIX_MAX + 24)

static int mmap_name(const dynshm_impl_space *space, dynshm_handle handle,
		     char *buf, size_t len)
{
	char base[NAME_LEN];
	int rc = dynshm_impl_base_name(space, handle, base, sizeof(base));
	int n;

	if (rc < 0)
		return rc;
	n = snprintf(buf, len, "%s/%s", space->directory, base);
	if (n < 0 || (size_t)n >= len)
		return dynshm_fail(ENAMETOOLONG, "object name buffer too small");
	return 0;
}

/* Something is already at base: a collision, or something planted? */
static int explain_existing(dynshm_impl_space *space, const char *base)
{
	struct stat st;

	if (dynshm_sys.fstatat(space->dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -EEXIST; /* gone again: let the caller retry */
	if (S_ISLNK(st.st_mode))
		return dynshm_fail(EACCES,
				"refusing to create '%s/%s': a symbolic link "
				"was planted there",
				space->directory, base);
	if (!S_ISREG(st.st_mode) || !dynshm_uid_is_ours(st.st_uid))
		return dynshm_fail(EACCES,
				"refusing to create '%s/%s': a foreign object "
				"(uid %u, mode %04o) is in the way",
				space->directory, base, (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777));
	return -EEXIST; /* quiet: ours, a genuine name collision */
}

static int mmap_create(dynshm_impl_space *space, dynshm_handle handle, size_t size,
		       struct dynshm_impl_map *map)
{
	char base[NAME_LEN];
	int fd, rc;

	rc = dynshm_impl_base_name(space, handle, base, sizeof(base));
	if (rc < 0)
		return rc;
	fd = dynshm_sys.openat(space->dirfd, base,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return explain_existing(space, base);
		return dynshm_fail(errno, "cannot create segment file '%s/%s': %s",
				space->directory, base, strerror(errno));
	}
	rc = dynshm_impl_fd_size(fd, size, base);
	if (rc < 0)
		goto fail_unlink;
	rc = dynshm_impl_fd_map(fd, size, base, map);
	if (rc < 0)
		goto fail_unlink;
	dynshm_sys.close(fd);
	return 0;

fail_unlink:
	dynshm_sys.close(fd);
	dynshm_sys.unlinkat(space->dirfd, base, 0);
	return rc;
}

static int mmap_attach(dynshm_impl_space *space, dynshm_handle handle,
		       struct dynshm_impl_map *map)
{
	char base[NAME_LEN];
	size_t size;
	int fd, rc;

	rc = dynshm_impl_base_name(space, handle, base, sizeof(base));
	if (rc < 0)
		return rc;
	fd = dynshm_sys.openat(space->dirfd, base,
			    O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno == ELOOP ? EACCES : errno;

		return dynshm_fail(err, "cannot open segment file '%s/%s': %s",
				space->directory, base,
				errno == ELOOP ? "it is a symbolic link"
					       : strerror(errno));
	}
	rc = dynshm_impl_fd_check_owner(fd, base, &size);
	if (rc == 0)
		rc = dynshm_impl_fd_map(fd, size, base, map);
	dynshm_sys.close(fd);
	return rc;
}

/* os_name is a full path; only names inside our directory are accepted. */
static int mmap_destroy_name(dynshm_impl_space *space, const char *os_name)
{
	size_t dlen = strlen(space->directory);
	const char *base = os_name;
	int rc;

	if (strncmp(os_name, space->directory, dlen) == 0 &&
	    os_name[dlen] == '/')
		base = os_name + dlen + 1;
	if (dynshm_impl_parse_base_name(space, base) == DYNSHM_HANDLE_INVALID)
		return dynshm_fail(EINVAL, "'%s' is not a segment file of this "
					"instance",
				os_name);
	/*
	 * Retried on EINTR: a signal during the unlink (possible on network
	 * and FUSE file systems, and under valgrind) must not leave the
	 * segment for the next sweep when trying again costs nothing.
	 */
	do
		rc = dynshm_sys.unlinkat(space->dirfd, base, 0);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return dynshm_fail(errno, "cannot remove segment file '%s/%s': %s",
				space->directory, base, strerror(errno));
	return 0;
}

static int mmap_destroy(dynshm_impl_space *space, dynshm_handle handle)
{
	char base[NAME_LEN];
	int rc = dynshm_impl_base_name(space, handle, base, sizeof(base));

	return rc < 0 ? rc : mmap_destroy_name(space, base);
}

/* Does the file still exist?  (Another program may have unlinked it.) */
static int mmap_probe(dynshm_impl_space *space, dynshm_handle handle,
		      const struct dynshm_impl_ident *ident)
{
	char base[NAME_LEN];
	struct stat st;
	int rc = dynshm_impl_base_name(space, handle, base, sizeof(base));

	(void)ident; /* names are unique per handle */
	if (rc < 0)
		return rc;
	if (dynshm_sys.fstatat(space->dirfd, base, &st,
			       AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno == ENOENT)
		return dynshm_fail(ENOENT, "segment file '%s/%s' vanished: "
					"another program removed it",
				space->directory, base);
	return dynshm_fail(errno, "cannot stat segment file '%s/%s': %s",
			space->directory, base, strerror(errno));
}

static int mmap_list(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	fd = dynshm_sys.openat(space->dirfd, ".",
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return dynshm_fail(errno, "cannot list '%s': %s",
				space->directory, strerror(errno));
	dir = fdopendir(fd);
	if (!dir) {
		int err = errno;

		dynshm_sys.close(fd);
		return dynshm_fail(err, "cannot list '%s': %s", space->directory,
				strerror(err));
	}
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		dynshm_handle h = dynshm_impl_parse_base_name(space, de->d_name);
		char name[DYNSHM_IMPL_NAME_MAX];

		if (h == DYNSHM_HANDLE_INVALID ||
		    !dynshm_impl_is_ours(space->dirfd, de->d_name))
			continue;
		snprintf(name, sizeof(name), "%s/%s", space->directory,
			 de->d_name);
		rc = fn(h, name, arg);
	}
	closedir(dir);
	return rc;
}

const struct dynshm_impl_ops dynshm_impl_mmap_ops = {
	.version = DYNSHM_IMPL_OPS_VERSION,
	.type = DYNSHM_IMPL_MMAP,
	.name = "mmap",
	.create = mmap_create,
	.attach = mmap_attach,
	.detach = dynshm_impl_munmap,
	.destroy = mmap_destroy,
	.destroy_name = mmap_destroy_name,
	.list = mmap_list,
	.object_name = mmap_name,
	.probe = mmap_probe,
};
