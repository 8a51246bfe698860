/* SPDX-License-Identifier: MIT */
/*
 * dynshm/dsm_impl.h - the backend layer: raw shared memory objects.
 *
 * This layer knows only the operating system.  It creates, maps, unmaps and
 * removes shared memory objects named by an (instance id, handle) pair, and
 * nothing else: no reference counts, no lifetime, no control segment.  That
 * is the wrapper layer's job (dynshm/dsm.h).  Most programs want dsm.h; this
 * header is public so that tools and tests can drive a backend directly.
 *
 * Compiles as C99 and C++.
 *
 * THE CONTRACT (every backend keeps it; src/impl/impl.c enforces the common
 * parts before a backend is called)
 *
 *   A *space* (dynshm_impl_space) fixes the backend, the instance id and, for
 *   the mmap backend, the directory.  OS names derive from (instance id,
 *   handle) alone - "/dynshm.<id>.<handle>" for posix, "<dir>/dynshm.<id>.
 *   <handle>" for mmap, a key with the instance's 12-bit tag for sysv - so a
 *   process that knows both can find, map or remove an object that another
 *   process created, including one whose creator died half-way.
 *
 *   dynshm_impl_create(space, handle, size, flags, &map)
 *     in:  handle != DYNSHM_HANDLE_INVALID; 0 < size <= DYNSHM_IMPL_MAX_SIZE;
 *          flags: 0, or DYNSHM_IMPL_CREATE_HUGETLB (sysv only: the object
 *          is made with SHM_HUGETLB; -ENOMEM or -EPERM when the kernel
 *          has no huge page for it; -EINVAL with any other backend).
 *     out: *map, a read/write MAP_SHARED mapping of exactly size bytes,
 *          zero-filled, whose memory is reserved now: a full file system
 *          fails here with -ENOSPC, never later with SIGBUS (posix and mmap
 *          allocate every block; sysv memory is not file-system backed).
 *     The object is created exclusively (0600, owner = effective uid).
 *     If an object of that name already exists the call returns -EEXIST
 *     quietly (no message is recorded): the caller picks a new handle and
 *     tries again.  Any other failure removes whatever was made.
 *
 *   dynshm_impl_attach(space, handle, &map)
 *     out: *map of the object's full size, learned from the OS (fstat or
 *          IPC_STAT).  -ENOENT when no such object exists; -EACCES when it
 *          belongs to another user or is not a plain object of ours.
 *
 *   dynshm_impl_detach(map)
 *     Unmaps and frees map, which is invalid afterwards whatever the result.
 *     Never removes the object.
 *
 *   dynshm_impl_destroy(space, handle)
 *     Removes the object by name without needing a mapping.  Mappings that
 *     exist stay valid until detached; the memory goes when the last one
 *     does.  -ENOENT when there is no such object.
 *
 *   dynshm_impl_list(space, fn, arg)
 *     Calls fn for every object of this space's instance that exists now
 *     and belongs to the effective uid (an object another user planted
 *     under the instance's prefix is neither listed nor swept),
 *     with its handle (DYNSHM_HANDLE_INVALID for sysv, whose keys cannot be
 *     turned back into handles) and its OS name.  A non-zero return from fn
 *     stops the walk and is returned.  Used by the wrapper's cleanup and by
 *     leak checks.  dynshm_impl_destroy_name() removes an object by that name.
 *
 *   Return rule: 0 on success or a negative errno, never -1 and errno.
 *   On failure dynshm_last_error() holds a one-line message naming the object
 *   and the step that failed (except for the quiet -EEXIST above).
 *   Functions are thread-safe; a space may be shared by threads.
 *
 *   The none backend is a real backend that refuses: create returns
 *   -ENOTSUP ("dynamic shared memory is disabled by configuration"),
 *   attach -ENOENT, list finds nothing.
 */
#ifndef DYNSHM_DSM_IMPL_H
#define DYNSHM_DSM_IMPL_H

#include <stddef.h>
#include <stdint.h>

/*
 * 64-bit targets only (meson.build refuses to configure for others): sizes
 * up to DYNSHM_IMPL_MAX_SIZE and offsets in shared memory need a 64-bit
 * size_t, and a 32-bit build would truncate them silently.
 */
#if defined(SIZE_MAX) && SIZE_MAX < 0xffffffffffffffffu
#error "dynshm supports 64-bit targets only (size_t must be 64-bit)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A segment's handle: slot index, generation and a random part; 0 is none. */
typedef uint64_t dynshm_handle;
#define DYNSHM_HANDLE_INVALID ((dynshm_handle)0)

/* Largest object the backend layer will try to create (2^46 bytes). */
#define DYNSHM_IMPL_MAX_SIZE ((size_t)1 << 46)

/* dynshm_impl_create flag: back the object with huge pages (sysv only). */
#define DYNSHM_IMPL_CREATE_HUGETLB 0x1u

/* Longest OS name, including the terminating NUL. */
#define DYNSHM_IMPL_NAME_MAX 4096

typedef enum dynshm_impl_type {
	DYNSHM_IMPL_NONE = 0,
	DYNSHM_IMPL_POSIX = 1,
	DYNSHM_IMPL_SYSV = 2,
	DYNSHM_IMPL_MMAP = 3
} dynshm_impl_type;

typedef struct dynshm_impl_space dynshm_impl_space;
typedef struct dynshm_impl_map dynshm_impl_map;

typedef int (*dynshm_impl_list_fn)(dynshm_handle handle, const char *os_name,
				void *arg);

/* "posix", "sysv", "mmap", "none"; NULL for an unknown value. */
const char *dynshm_impl_type_name(dynshm_impl_type type);
/* 0, or -EINVAL with a message listing the allowed names. */
int dynshm_impl_type_from_name(const char *name, dynshm_impl_type *type);

/*
 * Open a space.  directory is required by the mmap backend (it must exist,
 * belong to the effective uid and not be writable by group or others) and
 * ignored by the others.  instance_id must not be 0.
 */
int dynshm_impl_space_open(dynshm_impl_type type, uint64_t instance_id,
			const char *directory, dynshm_impl_space **out);
void dynshm_impl_space_close(dynshm_impl_space *space);
dynshm_impl_type dynshm_impl_space_type(const dynshm_impl_space *space);

int dynshm_impl_create(dynshm_impl_space *space, dynshm_handle handle, size_t size,
		    unsigned flags, dynshm_impl_map **out);
int dynshm_impl_attach(dynshm_impl_space *space, dynshm_handle handle,
		    dynshm_impl_map **out);
int dynshm_impl_detach(dynshm_impl_map *map);
int dynshm_impl_destroy(dynshm_impl_space *space, dynshm_handle handle);
int dynshm_impl_destroy_name(dynshm_impl_space *space, const char *os_name);
int dynshm_impl_list(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg);

/* The OS name of (space, handle) into buf; -ERANGE if it won't fit. */
int dynshm_impl_object_name(const dynshm_impl_space *space, dynshm_handle handle,
			 char *buf, size_t len);

void *dynshm_impl_map_address(const dynshm_impl_map *map);
size_t dynshm_impl_map_size(const dynshm_impl_map *map);

/*
 * Errors, shared by both layers.  dynshm_strerror() describes a return code;
 * dynshm_last_error() is the detailed message of the calling thread's most
 * recent failure ("" when none), valid until its next dynshm call.
 */
const char *dynshm_strerror(int code);
const char *dynshm_last_error(void);
/*
 * The symbol of an errno value, negative or positive: "ENOENT" for -ENOENT,
 * "0" for 0, NULL for a value that has none.  Constant strings.
 */
const char *dynshm_strerrorname(int code);

#ifdef __cplusplus
}
#endif

#endif
