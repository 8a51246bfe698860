/* SPDX-License-Identifier: MIT */
/*
 * impl.c - the dispatch point of the backend layer.
 *
 * Why a separate layer at all: the wrapper (lifetime, reference counts, the
 * control segment) is the same whatever the OS object is, and the OS objects
 * differ in awkward ways - posix shm and mmap files have names and sizes you
 * can fstat, SysV segments have 31-bit keys and limits of their own, and
 * "none" must refuse cleanly.  PostgreSQL draws the same line between dsm.c
 * and dsm_impl.c.  Every call from the wrapper comes through here; this file
 * validates what is common, then calls the backend's ops table.  What the
 * backends share among themselves is in common.c, below both.
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

static const struct dynshm_impl_ops *const backends[] = {
	[DYNSHM_IMPL_NONE] = &dynshm_impl_none_ops,
	[DYNSHM_IMPL_POSIX] = &dynshm_impl_posix_ops,
	[DYNSHM_IMPL_SYSV] = &dynshm_impl_sysv_ops,
	[DYNSHM_IMPL_MMAP] = &dynshm_impl_mmap_ops,
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static const struct dynshm_impl_ops *ops_of(dynshm_impl_type type)
{
	if ((unsigned)type >= N_BACKENDS)
		return NULL;
	return backends[type];
}

DYNSHM_EXPORT const char *dynshm_impl_type_name(dynshm_impl_type type)
{
	const struct dynshm_impl_ops *ops = ops_of(type);

	return ops ? ops->name : NULL;
}

DYNSHM_EXPORT int dynshm_impl_type_from_name(const char *name, dynshm_impl_type *type)
{
	for (unsigned i = 0; name && i < N_BACKENDS; i++) {
		if (strcmp(name, backends[i]->name) == 0) {
			*type = backends[i]->type;
			return 0;
		}
	}
	return dynshm_fail(EINVAL,
			"unknown dynamic shared memory type '%s' "
			"(allowed: posix, sysv, mmap, none)",
			name ? name : "(null)");
}

static int open_directory(dynshm_impl_space *space, const char *directory)
{
	struct stat st;
	int fd;

	fd = dynshm_sys.open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno;
		bool link = err == ELOOP;

		/* with O_DIRECTORY, a symlink to a directory gives ENOTDIR */
		if (err == ENOTDIR &&
		    dynshm_sys.fstatat(AT_FDCWD, directory, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			link = true;
		if (link)
			return dynshm_fail(EACCES,
					"cannot open segment directory '%s': "
					"it is a symbolic link",
					directory);
		return dynshm_fail(err, "cannot open segment directory '%s': %s",
				directory, strerror(err));
	}
	if (dynshm_sys.fstat(fd, &st) < 0) {
		int err = errno;

		dynshm_sys.close(fd);
		return dynshm_fail(err, "cannot stat segment directory '%s': %s",
				directory, strerror(err));
	}
	if (!dynshm_uid_is_ours(st.st_uid)) {
		dynshm_sys.close(fd);
		return dynshm_fail(EACCES,
				"segment directory '%s' belongs to uid %u, "
				"not to this process's uid %u",
				directory, (unsigned)st.st_uid,
				(unsigned)geteuid());
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		dynshm_sys.close(fd);
		return dynshm_fail(EACCES,
				"segment directory '%s' is writable by others "
				"(mode %04o) without the sticky bit",
				directory, (unsigned)(st.st_mode & 07777));
	}
	space->dirfd = fd;
	return 0;
}

DYNSHM_EXPORT int dynshm_impl_space_open(dynshm_impl_type type, uint64_t instance_id,
				   const char *directory,
				   dynshm_impl_space **out)
{
	const struct dynshm_impl_ops *ops = ops_of(type);
	dynshm_impl_space *space;
	int rc;

	if (!ops)
		return dynshm_fail(EINVAL, "unknown backend type %d", (int)type);
	if (instance_id == 0 || !out)
		return dynshm_fail(EINVAL, "instance id 0 or no result pointer");
	if (type == DYNSHM_IMPL_MMAP && (!directory || !*directory))
		return dynshm_fail(EINVAL, "the mmap backend needs a directory");
	space = calloc(1, sizeof(*space));
	if (!space)
		return dynshm_fail(ENOMEM, "out of memory opening a backend");
	space->ops = ops;
	space->instance_id = instance_id;
	space->dirfd = -1;
	snprintf(space->prefix, sizeof(space->prefix), "dynshm.%016" PRIx64 ".",
		 instance_id);
	space->prefix_len = strlen(space->prefix);
	if (type == DYNSHM_IMPL_MMAP) {
		space->directory = strdup(directory);
		if (!space->directory) {
			rc = dynshm_fail(ENOMEM, "out of memory opening a backend");
			goto fail_free;
		}
		rc = open_directory(space, directory);
		if (rc < 0)
			goto fail_dir;
	}
	*out = space;
	return 0;

fail_dir:
	free(space->directory);
fail_free:
	free(space);
	return rc;
}

DYNSHM_EXPORT void dynshm_impl_space_close(dynshm_impl_space *space)
{
	if (!space)
		return;
	if (space->dirfd >= 0)
		dynshm_sys.close(space->dirfd);
	free(space->directory);
	free(space);
}

DYNSHM_EXPORT dynshm_impl_type dynshm_impl_space_type(const dynshm_impl_space *space)
{
	return space->ops->type;
}

static int check_handle(const dynshm_impl_space *space, dynshm_handle handle)
{
	if (!space)
		return dynshm_fail(EINVAL, "no backend space given");
	if (handle == DYNSHM_HANDLE_INVALID)
		return dynshm_fail(EINVAL, "handle 0 is never a segment");
	return 0;
}

static int new_map(dynshm_impl_space *space, dynshm_handle handle,
		   struct dynshm_impl_map **out)
{
	struct dynshm_impl_map *map = calloc(1, sizeof(*map));

	if (!map)
		return dynshm_fail(ENOMEM, "out of memory for a mapping");
	map->ops = space->ops;
	map->handle = handle;
	map->ident.shmid = -1; /* none recorded (sysv fills it in) */
	*out = map;
	return 0;
}

DYNSHM_EXPORT int dynshm_impl_create(dynshm_impl_space *space, dynshm_handle handle,
			       size_t size, unsigned flags, dynshm_impl_map **out)
{
	struct dynshm_impl_map *map = NULL;
	int rc = check_handle(space, handle);

	if (rc < 0)
		return rc;
	if (flags & ~DYNSHM_IMPL_CREATE_HUGETLB)
		return dynshm_fail(EINVAL, "unknown create flags 0x%x", flags);
	if ((flags & DYNSHM_IMPL_CREATE_HUGETLB) &&
	    space->ops->type != DYNSHM_IMPL_SYSV)
		return dynshm_fail(EINVAL, "huge pages for single segments need the "
					"sysv backend, not %s",
				space->ops->name);
	if (size == 0 || size > DYNSHM_IMPL_MAX_SIZE)
		return dynshm_fail(EINVAL,
				"cannot create a segment of %zu bytes "
				"(allowed: 1 to %zu)",
				size, DYNSHM_IMPL_MAX_SIZE);
	rc = new_map(space, handle, &map);
	if (rc < 0)
		return rc;
	map->create_flags = flags;
	rc = space->ops->create(space, handle, size, map);
	if (rc < 0) {
		free(map);
		return rc;
	}
	*out = map;
	return 0;
}

DYNSHM_EXPORT int dynshm_impl_attach(dynshm_impl_space *space, dynshm_handle handle,
			       dynshm_impl_map **out)
{
	struct dynshm_impl_map *map = NULL;
	int rc = check_handle(space, handle);

	if (rc < 0)
		return rc;
	rc = new_map(space, handle, &map);
	if (rc < 0)
		return rc;
	rc = space->ops->attach(space, handle, map);
	if (rc < 0) {
		free(map);
		return rc;
	}
	*out = map;
	return 0;
}

/* ---- by identity (the wrapper's entry points, impl_internal.h) --------- */

int dynshm_impl_attach_ident(dynshm_impl_space *space, dynshm_handle handle,
			     const struct dynshm_impl_ident *ident,
			     dynshm_impl_map **out)
{
	struct dynshm_impl_map *map = NULL;
	int rc = check_handle(space, handle);

	if (rc < 0)
		return rc;
	if (!space->ops->attach_ident)
		return dynshm_impl_attach(space, handle, out);
	rc = new_map(space, handle, &map);
	if (rc < 0)
		return rc;
	rc = space->ops->attach_ident(space, handle, ident, map);
	if (rc < 0) {
		free(map);
		return rc;
	}
	*out = map;
	return 0;
}

int dynshm_impl_destroy_ident(dynshm_impl_space *space, dynshm_handle handle,
			      const struct dynshm_impl_ident *ident)
{
	int rc = check_handle(space, handle);

	if (rc < 0)
		return rc;
	if (!space->ops->destroy_ident)
		return space->ops->destroy(space, handle);
	return space->ops->destroy_ident(space, handle, ident);
}

int dynshm_impl_probe(dynshm_impl_space *space, dynshm_handle handle,
		      const struct dynshm_impl_ident *ident)
{
	int rc = check_handle(space, handle);

	if (rc < 0 || !space->ops->probe)
		return rc; /* none: no objects to lose */
	return space->ops->probe(space, handle, ident);
}

DYNSHM_EXPORT int dynshm_impl_detach(dynshm_impl_map *map)
{
	int rc;

	if (!map)
		return dynshm_fail(EINVAL, "no mapping given");
	rc = map->ops->detach(map);
	free(map);
	return rc;
}

DYNSHM_EXPORT int dynshm_impl_destroy(dynshm_impl_space *space, dynshm_handle handle)
{
	int rc = check_handle(space, handle);

	return rc < 0 ? rc : space->ops->destroy(space, handle);
}

DYNSHM_EXPORT int dynshm_impl_destroy_name(dynshm_impl_space *space,
				     const char *os_name)
{
	if (!space || !os_name)
		return dynshm_fail(EINVAL, "no backend space or name given");
	return space->ops->destroy_name(space, os_name);
}

DYNSHM_EXPORT int dynshm_impl_list(dynshm_impl_space *space, dynshm_impl_list_fn fn,
			     void *arg)
{
	if (!space || !fn)
		return dynshm_fail(EINVAL, "no backend space or callback given");
	return space->ops->list(space, fn, arg);
}

/*
 * A buffer too small is -ERANGE with the length needed (as
 * dynshm_config_get does), measured with a buffer that always fits; the
 * backends' own -ENAMETOOLONG stays internal.
 */
DYNSHM_EXPORT int dynshm_impl_object_name(const dynshm_impl_space *space,
				    dynshm_handle handle, char *buf, size_t len)
{
	char full[DYNSHM_IMPL_NAME_MAX];
	int rc = space->ops->object_name(space, handle, buf, len);

	if (rc != -ENAMETOOLONG ||
	    space->ops->object_name(space, handle, full, sizeof(full)) < 0)
		return rc;
	return dynshm_fail(ERANGE, "the object name '%s' needs a buffer of %zu "
			       "bytes; %zu given",
			full, strlen(full) + 1, len);
}

DYNSHM_EXPORT void *dynshm_impl_map_address(const dynshm_impl_map *map)
{
	return map->address;
}

DYNSHM_EXPORT size_t dynshm_impl_map_size(const dynshm_impl_map *map)
{
	return map->size;
}
