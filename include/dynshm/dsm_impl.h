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
 *   A *space* (dsm_impl_space) fixes the backend, the instance id and, for
 *   the mmap backend, the directory.  OS names derive from (instance id,
 *   handle) alone - "/dynshm.<id>.<handle>" for posix, "<dir>/dynshm.<id>.
 *   <handle>" for mmap, a key with the instance's 12-bit tag for sysv - so a
 *   process that knows both can find, map or remove an object that another
 *   process created, including one whose creator died half-way.
 *
 *   dsm_impl_create(space, handle, size, flags, &map)
 *     in:  handle != DSM_HANDLE_INVALID; 0 < size <= DSM_IMPL_MAX_SIZE;
 *          flags: 0, or DSM_IMPL_CREATE_HUGETLB (sysv only: the object
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
 *   dsm_impl_attach(space, handle, &map)
 *     out: *map of the object's full size, learned from the OS (fstat or
 *          IPC_STAT).  -ENOENT when no such object exists; -EACCES when it
 *          belongs to another user or is not a plain object of ours.
 *
 *   dsm_impl_detach(map)
 *     Unmaps and frees map, which is invalid afterwards whatever the result.
 *     Never removes the object.
 *
 *   dsm_impl_destroy(space, handle)
 *     Removes the object by name without needing a mapping.  Mappings that
 *     exist stay valid until detached; the memory goes when the last one
 *     does.  -ENOENT when there is no such object.
 *
 *   dsm_impl_list(space, fn, arg)
 *     Calls fn for every object of this space's instance that exists now
 *     and belongs to the effective uid (an object another user planted
 *     under the instance's prefix is neither listed nor swept),
 *     with its handle (DSM_HANDLE_INVALID for sysv, whose keys cannot be
 *     turned back into handles) and its OS name.  A non-zero return from fn
 *     stops the walk and is returned.  Used by the wrapper's cleanup and by
 *     leak checks.  dsm_impl_destroy_name() removes an object by that name.
 *
 *   Return rule: 0 on success or a negative errno, never -1 and errno.
 *   On failure dsm_last_error() holds a one-line message naming the object
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

#ifdef __cplusplus
extern "C" {
#endif

/* A segment's handle: slot index, generation and a random part; 0 is none. */
typedef uint64_t dsm_handle;
#define DSM_HANDLE_INVALID ((dsm_handle)0)

/* Largest object the backend layer will try to create (2^46 bytes). */
#define DSM_IMPL_MAX_SIZE ((size_t)1 << 46)

/* dsm_impl_create flag: back the object with huge pages (sysv only). */
#define DSM_IMPL_CREATE_HUGETLB 0x1u

/* Longest OS name, including the terminating NUL. */
#define DSM_IMPL_NAME_MAX 4096

typedef enum dsm_impl_type {
	DSM_IMPL_NONE = 0,
	DSM_IMPL_POSIX = 1,
	DSM_IMPL_SYSV = 2,
	DSM_IMPL_MMAP = 3
} dsm_impl_type;

typedef struct dsm_impl_space dsm_impl_space;
typedef struct dsm_impl_map dsm_impl_map;

typedef int (*dsm_impl_list_fn)(dsm_handle handle, const char *os_name,
				void *arg);

/* "posix", "sysv", "mmap", "none"; NULL for an unknown value. */
const char *dsm_impl_type_name(dsm_impl_type type);
/* 0, or -EINVAL with a message listing the allowed names. */
int dsm_impl_type_from_name(const char *name, dsm_impl_type *type);

/*
 * Open a space.  directory is required by the mmap backend (it must exist,
 * belong to the effective uid and not be writable by group or others) and
 * ignored by the others.  instance_id must not be 0.
 */
int dsm_impl_space_open(dsm_impl_type type, uint64_t instance_id,
			const char *directory, dsm_impl_space **out);
void dsm_impl_space_close(dsm_impl_space *space);
dsm_impl_type dsm_impl_space_type(const dsm_impl_space *space);

int dsm_impl_create(dsm_impl_space *space, dsm_handle handle, size_t size,
		    unsigned flags, dsm_impl_map **out);
int dsm_impl_attach(dsm_impl_space *space, dsm_handle handle,
		    dsm_impl_map **out);
int dsm_impl_detach(dsm_impl_map *map);
int dsm_impl_destroy(dsm_impl_space *space, dsm_handle handle);
int dsm_impl_destroy_name(dsm_impl_space *space, const char *os_name);
int dsm_impl_list(dsm_impl_space *space, dsm_impl_list_fn fn, void *arg);

/* The OS name of (space, handle) into buf; -ENAMETOOLONG if it won't fit. */
int dsm_impl_object_name(const dsm_impl_space *space, dsm_handle handle,
			 char *buf, size_t len);

void *dsm_impl_map_address(const dsm_impl_map *map);
size_t dsm_impl_map_size(const dsm_impl_map *map);

/*
 * Errors, shared by both layers.  dsm_strerror() describes a return code;
 * dsm_last_error() is the detailed message of the calling thread's most
 * recent failure ("" when none), valid until its next dynshm call.
 */
const char *dsm_strerror(int code);
const char *dsm_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
