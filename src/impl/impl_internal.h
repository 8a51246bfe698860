/* SPDX-License-Identifier: MIT */
/*
 * impl_internal.h - what the backends share with the dispatch point.
 *
 * Each backend is one file exporting one `const struct dynshm_impl_ops`.  The
 * dispatch point (impl.c) checks arguments common to every backend, then
 * calls through the ops table; backends never call each other.  The ops
 * struct starts with a version so that slots can be added without breaking
 * an out-of-tree backend (SQLite's sqlite3_io_methods does the same).
 */
#ifndef DYNSHM_IMPL_INTERNAL_H
#define DYNSHM_IMPL_INTERNAL_H

#include <dynshm/dsm_impl.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define DYNSHM_IMPL_OPS_VERSION 1

/* Entries of a space's SysV shmid hint cache (see struct dynshm_impl_space). */
#define DYNSHM_IMPL_SYSV_IDS 64

/* "dynshm.<16 hex instance id>." - every OS name starts with this. */
#define DYNSHM_IMPL_PREFIX_MAX 32

struct dynshm_impl_space {
	const struct dynshm_impl_ops *ops; /* never changes */
	uint64_t instance_id;		/* never changes, not 0 */
	int dirfd;			/* mmap: the directory, else -1 */
	char *directory;		/* mmap: its path, else NULL */
	char prefix[DYNSHM_IMPL_PREFIX_MAX];
	size_t prefix_len;		/* strlen(prefix), never changes */
	/*
	 * sysv: the shmids this process created or attached, as a hint for
	 * destroy (sysv.c).  Entry handle % SYSV_IDS is the tag of the handle
	 * in bits 63..32 and shmid + 1 in bits 31..0, 0 when empty; read and
	 * written with atomic operations, no lock.  A wrong or stale entry
	 * costs a fallback to the key lookup, never a wrong removal.
	 */
	uint64_t sysv_ids[DYNSHM_IMPL_SYSV_IDS];
};

/*
 * What identifies a SysV object beyond its key, which is not unique per
 * handle (sysv.c).  The wrapper records it in the segment's slot once the
 * object exists (control.h) and gives it back to attach, destroy and
 * probe, which act only on an object that matches it:
 *   shmid >= 0  recorded: the object is shmid, still under the handle's
 *               key, of this size, created at ctime (IPC_STAT's shm_ctime,
 *               which IPC_SET may since have moved forward);
 *   shmid < 0   not recorded (its creator died first): whatever holds the
 *               key counts as the handle's object only if IPC_STAT proves
 *               that process cpid made it at ctime or later, of this size;
 *               cpid 0 when the creator's pid cannot be compared here (it
 *               ran in another PID namespace: shm_cpid is told in the
 *               asker's): then key, size and time decide.
 * An object that does not match is "not found" and is left alone.  Other
 * backends' names are unique per handle; they ignore it.
 */
struct dynshm_impl_ident {
	int32_t shmid;
	int32_t cpid;
	int64_t ctime;
	uint64_t size;
};

struct dynshm_impl_map {
	void *address;
	size_t size;
	const struct dynshm_impl_ops *ops;
	dynshm_handle handle;
	unsigned create_flags; /* dynshm_impl_create's flags, for ops->create */
	struct dynshm_impl_ident ident; /* sysv: filled by create and attach */
};

struct dynshm_impl_ops {
	unsigned version;
	dynshm_impl_type type;
	const char *name;
	/* Called with validated arguments and a zeroed *map to fill in. */
	int (*create)(dynshm_impl_space *space, dynshm_handle handle, size_t size,
		      struct dynshm_impl_map *map);
	int (*attach)(dynshm_impl_space *space, dynshm_handle handle,
		      struct dynshm_impl_map *map);
	int (*detach)(struct dynshm_impl_map *map);
	int (*destroy)(dynshm_impl_space *space, dynshm_handle handle);
	int (*destroy_name)(dynshm_impl_space *space, const char *os_name);
	int (*list)(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg);
	int (*object_name)(const dynshm_impl_space *space, dynshm_handle handle,
			   char *buf, size_t len);
	/*
	 * By identity (struct dynshm_impl_ident); NULL: attach and destroy
	 * by name.  probe: 0 while the object exists, -ENOENT once it is
	 * gone (a message says it vanished), else -errno (doubt).
	 */
	int (*attach_ident)(dynshm_impl_space *space, dynshm_handle handle,
			    const struct dynshm_impl_ident *ident,
			    struct dynshm_impl_map *map);
	int (*destroy_ident)(dynshm_impl_space *space, dynshm_handle handle,
			     const struct dynshm_impl_ident *ident);
	int (*probe)(dynshm_impl_space *space, dynshm_handle handle,
		     const struct dynshm_impl_ident *ident);
};

extern const struct dynshm_impl_ops dynshm_impl_posix_ops;
extern const struct dynshm_impl_ops dynshm_impl_sysv_ops;
extern const struct dynshm_impl_ops dynshm_impl_mmap_ops;
extern const struct dynshm_impl_ops dynshm_impl_none_ops;

/* Helpers shared by the file-descriptor backends (posix, mmap). */
int dynshm_impl_fd_size(int fd, size_t size, const char *what);
int dynshm_impl_fd_map(int fd, size_t size, const char *what,
		    struct dynshm_impl_map *map);
int dynshm_impl_fd_check_owner(int fd, const char *what, size_t *size);
int dynshm_impl_munmap(struct dynshm_impl_map *map);
/* Is name in dirfd a regular file of ours (not planted by another user)? */
bool dynshm_impl_is_ours(int dirfd, const char *name);

/*
 * The wrapper's entry points by identity (see struct dynshm_impl_ident).
 * Not exported: the public backend layer names objects by handle alone.
 */
int dynshm_impl_attach_ident(dynshm_impl_space *space, dynshm_handle handle,
			     const struct dynshm_impl_ident *ident,
			     dynshm_impl_map **out);
int dynshm_impl_destroy_ident(dynshm_impl_space *space, dynshm_handle handle,
			      const struct dynshm_impl_ident *ident);
int dynshm_impl_probe(dynshm_impl_space *space, dynshm_handle handle,
		      const struct dynshm_impl_ident *ident);
/* A mapping failed with err: the message, naming vm.max_map_count. */
int dynshm_impl_map_failed(int err, size_t size, const char *what);

/* The SysV key of handle in space (the wrapper's region is made by hand). */
key_t dynshm_impl_sysv_key(const dynshm_impl_space *space, dynshm_handle handle);

/* Base name "dynshm.<id>.<handle>" (no leading slash or directory). */
int dynshm_impl_base_name(const dynshm_impl_space *space, dynshm_handle handle,
		       char *buf, size_t len);
/* The handle encoded in a base name of this space, or DYNSHM_HANDLE_INVALID. */
dynshm_handle dynshm_impl_parse_base_name(const dynshm_impl_space *space,
				    const char *base);

#endif
