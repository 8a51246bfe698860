/* SPDX-License-Identifier: MIT */
/*
 * posix.c - POSIX shared memory (shm_open), the default backend.
 *
 * Objects live in /dev/shm under "/dynshm.<instance>.<handle>".  This is the
 * cheapest backend to create and the easiest to inspect (ls /dev/shm), and
 * the one PostgreSQL defaults to for the same reasons.  Its weak spot is a
 * small /dev/shm: a tmpfs allocates pages lazily, so a segment sized only with
 * ftruncate would fail later with SIGBUS on first touch.  We therefore
 * allocate every page at create (posix_fallocate, retried on EINTR), turning
 * that into -ENOSPC here.
 */
#include "impl_internal.h"

#include "../error.h"
#include "../sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SHM_DIR "/dev/shm"

static int posix_name(const dynshm_impl_space *space, dynshm_handle handle,
		      char *buf, size_t len)
{
	if (len < 2)
		return dynshm_fail(ENAMETOOLONG, "object name buffer too small");
	buf[0] = '/';
	return dynshm_impl_base_name(space, handle, buf + 1, len - 1);
}

static int posix_create(dynshm_impl_space *space, dynshm_handle handle, size_t size,
			struct dynshm_impl_map *map)
{
	char name[DYNSHM_IMPL_PREFIX_MAX + 24];
	int fd, rc;

	rc = posix_name(space, handle, name, sizeof(name));
	if (rc < 0)
		return rc;
	fd = dynshm_sys.shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return -EEXIST; /* quiet: the caller retries */
		return dynshm_fail(errno, "cannot create POSIX shared memory "
				       "object '%s': %s",
				name, strerror(errno));
	}
	rc = dynshm_impl_fd_size(fd, size, name);
	if (rc < 0)
		goto fail_unlink;
	rc = dynshm_impl_fd_map(fd, size, name, map);
	if (rc < 0)
		goto fail_unlink;
	dynshm_sys.close(fd);
	return 0;

fail_unlink:
	/* back out: the object must not outlive a failed create */
	dynshm_sys.close(fd);
	dynshm_sys.shm_unlink(name);
	return rc;
}

static int posix_attach(dynshm_impl_space *space, dynshm_handle handle,
			struct dynshm_impl_map *map)
{
	char name[DYNSHM_IMPL_PREFIX_MAX + 24];
	size_t size;
	int fd, rc;

	rc = posix_name(space, handle, name, sizeof(name));
	if (rc < 0)
		return rc;
	fd = dynshm_sys.shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		/* shm_open adds O_NOFOLLOW: ELOOP is a planted symlink */
		int err = errno == ELOOP ? EACCES : errno;

		return dynshm_fail(err, "cannot open POSIX shared memory "
				     "object '%s': %s",
				name,
				errno == ELOOP ? "it is a symbolic link"
					       : strerror(errno));
	}
	rc = dynshm_impl_fd_check_owner(fd, name, &size);
	if (rc == 0)
		rc = dynshm_impl_fd_map(fd, size, name, map);
	dynshm_sys.close(fd);
	return rc;
}

static int posix_destroy_name(dynshm_impl_space *space, const char *name)
{
	/* only names of this instance: never another program's object */
	if (name[0] != '/' ||
	    dynshm_impl_parse_base_name(space, name + 1) == DYNSHM_HANDLE_INVALID)
		return dynshm_fail(EINVAL, "'%s' is not a POSIX shared memory "
					"object of this instance",
				name);
	if (dynshm_sys.shm_unlink(name) < 0)
		return dynshm_fail(errno, "cannot remove POSIX shared memory "
				       "object '%s': %s",
				name, strerror(errno));
	return 0;
}

static int posix_destroy(dynshm_impl_space *space, dynshm_handle handle)
{
	char name[DYNSHM_IMPL_PREFIX_MAX + 24];
	int rc = posix_name(space, handle, name, sizeof(name));

	return rc < 0 ? rc : posix_destroy_name(space, name);
}

/* Does the object still exist?  (Another program may have unlinked it.) */
static int posix_probe(dynshm_impl_space *space, dynshm_handle handle,
		       const struct dynshm_impl_ident *ident)
{
	char name[DYNSHM_IMPL_PREFIX_MAX + 24];
	int fd, rc;

	(void)ident; /* names are unique per handle */
	rc = posix_name(space, handle, name, sizeof(name));
	if (rc < 0)
		return rc;
	fd = dynshm_sys.shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == ENOENT)
			return dynshm_fail(ENOENT, "POSIX shared memory object "
						"'%s' vanished: another "
						"program removed it",
					name);
		return dynshm_fail(errno, "cannot open POSIX shared memory "
				       "object '%s': %s",
				name, strerror(errno));
	}
	dynshm_sys.close(fd);
	return 0;
}

/*
 * /dev/shm is where glibc's shm_open puts objects on Linux; listing it is the
 * only portable-enough way to enumerate them.
 */
static int posix_list(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg)
{
	struct dirent *de;
	DIR *dir;
	int rc = 0;

	dir = opendir(SHM_DIR);
	if (!dir)
		return dynshm_fail(errno, "cannot list " SHM_DIR ": %s",
				strerror(errno));
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		dynshm_handle h = dynshm_impl_parse_base_name(space, de->d_name);
		char name[sizeof(de->d_name) + 1];

		if (h == DYNSHM_HANDLE_INVALID ||
		    !dynshm_impl_is_ours(dirfd(dir), de->d_name))
			continue;
		snprintf(name, sizeof(name), "/%s", de->d_name);
		rc = fn(h, name, arg);
	}
	closedir(dir);
	return rc;
}

const struct dynshm_impl_ops dynshm_impl_posix_ops = {
	.version = DYNSHM_IMPL_OPS_VERSION,
	.type = DYNSHM_IMPL_POSIX,
	.name = "posix",
	.create = posix_create,
	.attach = posix_attach,
	.detach = dynshm_impl_munmap,
	.destroy = posix_destroy,
	.destroy_name = posix_destroy_name,
	.list = posix_list,
	.object_name = posix_name,
	.probe = posix_probe,
};
