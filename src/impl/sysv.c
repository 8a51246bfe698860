/* SPDX-License-Identifier: MIT */
/*
 * sysv.c - System V shared memory (shmget/shmat).
 *
 * Useful where POSIX shm is unavailable or /dev/shm is tiny, and for
 * SHM_HUGETLB.  SysV segments have no names, only 31-bit keys, and are
 * limited by kernel.shmmax/shmall/shmmni, so this backend differs from the
 * others in two ways:
 *
 *   - Keys.  key = bit 30 | 12-bit instance tag << 18 | 18-bit hash of the
 *     handle, where the tag is the low 12 bits of the instance id.  Two handles of one instance can hash to the same key; the
 *     create then fails with EEXIST, reported quietly, and the caller simply
 *     picks another handle - the same rule as any name collision.  Bit 30
 *     keeps keys positive and never IPC_PRIVATE.
 *   - Listing.  A key cannot be turned back into a handle, and two instances
 *     share a 12-bit tag with probability 1/4096.  dynshm_impl_list therefore
 *     reports sysv objects with DYNSHM_HANDLE_INVALID and the name
 *     "sysv:0x<key>", and the wrapper destroys sysv segments only through the
 *     handles its control segment recorded, never by prefix alone.
 *
 * Memory of a SysV segment is allocated on first touch from the kernel's
 * internal shm mount, which has no size of its own (only shmall), so there is
 * no "full /dev/shm" SIGBUS to guard against here.
 */
#include "impl_internal.h"

#include "../error.h"
#include "../sys.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_MARK 0x40000000u
#define TAG_SHIFT 18
#define TAG_MASK 0xfffu
#define HASH_MASK 0x3ffffu

/* splitmix64's finaliser: a cheap, well-spread 64-bit mix. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* The low 12 bits of the (random) instance id; tests pick ids by it. */
static unsigned instance_tag(const dynshm_impl_space *space)
{
	return (unsigned)(space->instance_id & TAG_MASK);
}

static key_t sysv_key(const dynshm_impl_space *space, dynshm_handle handle)
{
	uint32_t hash = (uint32_t)(mix64(space->instance_id ^ mix64(handle)) &
				   HASH_MASK);

	return (key_t)(KEY_MARK | instance_tag(space) << TAG_SHIFT | hash);
}

key_t dynshm_impl_sysv_key(const dynshm_impl_space *space, dynshm_handle handle)
{
	return sysv_key(space, handle);
}

static int sysv_name(const dynshm_impl_space *space, dynshm_handle handle,
		     char *buf, size_t len)
{
	int n = snprintf(buf, len, "sysv:0x%08x",
			 (unsigned)sysv_key(space, handle));

	if (n < 0 || (size_t)n >= len)
		return dynshm_fail(ENAMETOOLONG, "object name buffer too small");
	return 0;
}

/*
 * The shmid hint cache.  Destroying by key costs shmget(key) + IPC_STAT +
 * IPC_RMID; most destroys come from the process that created or attached
 * the segment a moment earlier (the last detach destroys), and knew its
 * shmid.  With the id remembered, destroy is IPC_STAT + IPC_RMID: the
 * IPC_STAT stays because it is what proves the id still names the segment
 * of this key (ids are reused) and that the segment is still privately
 * ours - the same checks a lookup by key makes.
 */
static uint32_t id_tag(dynshm_handle handle)
{
	return (uint32_t)(handle >> 32) ^ (uint32_t)handle;
}

static void ids_put(dynshm_impl_space *space, dynshm_handle handle, int id)
{
	uint64_t e = (uint64_t)id_tag(handle) << 32 | (uint32_t)(id + 1);

	__atomic_store_n(&space->sysv_ids[handle % DYNSHM_IMPL_SYSV_IDS], e,
			 __ATOMIC_RELAXED);
}

/* The remembered shmid of handle, or -1. */
static int ids_get(const dynshm_impl_space *space, dynshm_handle handle)
{
	uint64_t e = __atomic_load_n(
		&space->sysv_ids[handle % DYNSHM_IMPL_SYSV_IDS], __ATOMIC_RELAXED);

	if ((uint32_t)e == 0 || (uint32_t)(e >> 32) != id_tag(handle))
		return -1;
	return (int)((uint32_t)e - 1);
}

/* Forget handle's shmid (if that entry still holds it). */
static void ids_forget(dynshm_impl_space *space, dynshm_handle handle, int id)
{
	uint64_t e = (uint64_t)id_tag(handle) << 32 | (uint32_t)(id + 1);

	__atomic_compare_exchange_n(
		&space->sysv_ids[handle % DYNSHM_IMPL_SYSV_IDS], &e, 0, false,
		__ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static int shmget_error(int err, key_t key, size_t size)
{
	switch (err) {
	case EINVAL:
		return dynshm_fail(EINVAL,
				"cannot create SysV segment with key 0x%08x of "
				"%zu bytes: larger than kernel.shmmax or "
				"smaller than kernel.shmmin",
				(unsigned)key, size);
	case ENOSPC:
		return dynshm_fail(ENOSPC,
				"cannot create SysV segment with key 0x%08x of "
				"%zu bytes: kernel.shmmni or kernel.shmall "
				"reached",
				(unsigned)key, size);
	default:
		return dynshm_fail(err,
				"cannot create SysV segment with key 0x%08x of "
				"%zu bytes: %s",
				(unsigned)key, size, strerror(err));
	}
}

static int attach_failed(int err, key_t key, size_t size)
{
	char what[48];

	snprintf(what, sizeof(what), "SysV segment 0x%08x", (unsigned)key);
	return dynshm_impl_map_failed(err, size, what);
}

/*
 * The identity of the segment just made or found as id (see struct
 * dynshm_impl_ident), for the wrapper to record.  When IPC_STAT fails
 * nothing is recorded, and the object is proved by its creator instead.
 */
static void record_ident(int id, size_t size, struct dynshm_impl_map *map)
{
	struct shmid_ds ds;

	map->ident.shmid = -1;
	map->ident.size = size;
	if (dynshm_sys.shmctl(id, IPC_STAT, &ds) < 0)
		return;
	map->ident.cpid = (int32_t)ds.shm_cpid;
	map->ident.ctime = (int64_t)ds.shm_ctime;
	map->ident.shmid = id;
}

static int sysv_create(dynshm_impl_space *space, dynshm_handle handle, size_t size,
		       struct dynshm_impl_map *map)
{
	key_t key = sysv_key(space, handle);
	void *addr;
	int id;

	bool huge = map->create_flags & DYNSHM_IMPL_CREATE_HUGETLB;

	id = dynshm_sys.shmget(key, size,
			    IPC_CREAT | IPC_EXCL | 0600 | (huge ? SHM_HUGETLB : 0));
	if (id < 0) {
		if (errno == EEXIST)
			return -EEXIST; /* quiet: the caller retries */
		if (huge && (errno == ENOMEM || errno == EPERM))
			return dynshm_fail(errno,
					"cannot create SysV segment with key "
					"0x%08x of %zu bytes on huge pages: %s",
					(unsigned)key, size,
					errno == ENOMEM ? "too few reserved "
							  "(vm.nr_hugepages)"
							: "not permitted "
							  "(vm.hugetlb_shm_group)");
		return shmget_error(errno, key, size);
	}
	addr = dynshm_sys.shmat(id, NULL, 0);
	if (addr == (void *)-1) {
		int err = errno;

		dynshm_sys.shmctl(id, IPC_RMID, NULL); /* back out */
		return attach_failed(err, key, size);
	}
	ids_put(space, handle, id);
	record_ident(id, size, map);
	map->address = addr;
	map->size = size;
	return 0;
}

/* A segment with this shm_perm, found under key, must be private to us. */
static int check_ours(key_t key, const struct shmid_ds *ds)
{
	if (!dynshm_uid_is_ours(ds->shm_perm.uid) || (ds->shm_perm.mode & 077))
		return dynshm_fail(EACCES,
				"SysV segment 0x%08x belongs to uid %u with "
				"mode %04o, not privately to uid %u",
				(unsigned)key, (unsigned)ds->shm_perm.uid,
				(unsigned)(ds->shm_perm.mode & 0777),
				(unsigned)geteuid());
	return 0;
}

/* shmid of key if it is a segment of ours, with its size. */
static int sysv_lookup(key_t key, size_t *size)
{
	struct shmid_ds ds;
	int id, rc;

	id = dynshm_sys.shmget(key, 0, 0);
	if (id < 0)
		return dynshm_fail(errno, "cannot find SysV segment 0x%08x: %s",
				(unsigned)key, strerror(errno));
	if (dynshm_sys.shmctl(id, IPC_STAT, &ds) < 0)
		return dynshm_fail(errno, "cannot stat SysV segment 0x%08x: %s",
				(unsigned)key, strerror(errno));
	rc = check_ours(key, &ds);
	if (rc < 0)
		return rc;
	if (size)
		*size = ds.shm_segsz;
	return id;
}

static int sysv_attach(dynshm_impl_space *space, dynshm_handle handle,
		       struct dynshm_impl_map *map)
{
	key_t key = sysv_key(space, handle);
	size_t size;
	void *addr;
	int id;

	id = sysv_lookup(key, &size);
	if (id < 0)
		return id;
	addr = dynshm_sys.shmat(id, NULL, 0);
	if (addr == (void *)-1)
		return attach_failed(errno, key, size);
	ids_put(space, handle, id);
	record_ident(id, size, map);
	map->address = addr;
	map->size = size;
	return 0;
}

static int sysv_detach(struct dynshm_impl_map *map)
{
	if (dynshm_sys.shmdt(map->address) < 0)
		return dynshm_fail(errno, "cannot detach SysV segment at %p: %s",
				map->address, strerror(errno));
	return 0;
}

static int remove_key(key_t key)
{
	int id = sysv_lookup(key, NULL);

	if (id < 0)
		return id;
	if (dynshm_sys.shmctl(id, IPC_RMID, NULL) < 0)
		return dynshm_fail(errno, "cannot remove SysV segment 0x%08x: %s",
				(unsigned)key, strerror(errno));
	return 0;
}

/*
 * Remove key through a remembered id: 0 when removed, 1 when the id no
 * longer names key's segment (the caller looks the key up), or -errno.
 * Failures other than "no such id" are returned as the key lookup would
 * return them, and the id is kept for the next try.
 */
static int remove_by_id(key_t key, int id)
{
	struct shmid_ds ds;
	int rc;

	if (dynshm_sys.shmctl(id, IPC_STAT, &ds) < 0) {
		if (errno == EINVAL || errno == EIDRM)
			return 1; /* removed since: ask by key */
		return dynshm_fail(errno, "cannot stat SysV segment 0x%08x: %s",
				(unsigned)key, strerror(errno));
	}
	if (ds.shm_perm.__key != key)
		return 1; /* the id now names another segment */
	rc = check_ours(key, &ds);
	if (rc < 0)
		return rc;
	if (dynshm_sys.shmctl(id, IPC_RMID, NULL) == 0)
		return 0;
	if (errno == EINVAL || errno == EIDRM)
		return 1;
	return dynshm_fail(errno, "cannot remove SysV segment 0x%08x: %s",
			(unsigned)key, strerror(errno));
}

static int sysv_destroy(dynshm_impl_space *space, dynshm_handle handle)
{
	key_t key = sysv_key(space, handle);
	int id = ids_get(space, handle);
	int rc = id < 0 ? 1 : remove_by_id(key, id);

	if (id >= 0 && (rc == 0 || rc == 1))
		ids_forget(space, handle, id); /* removed, or stale */
	return rc == 1 ? remove_key(key) : rc;
}

static int sysv_destroy_name(dynshm_impl_space *space, const char *os_name)
{
	unsigned key;
	char tail;

	if (sscanf(os_name, "sysv:0x%x%c", &key, &tail) != 1 ||
	    key >> TAG_SHIFT != (KEY_MARK >> TAG_SHIFT | instance_tag(space)))
		return dynshm_fail(EINVAL, "'%s' is not a SysV segment name of "
					"this instance",
				os_name);
	return remove_key((key_t)key);
}

/* ---- by identity ---------------------------------------------------------
 *
 * A key is tag | hash18(handle): two handles, two instances sharing a tag,
 * or another program's ftok key can all land on it.  So the wrapper never
 * acts on "whatever holds the key": it records the object's identity in
 * the slot (struct dynshm_impl_ident) and these functions act only on an
 * object that IPC_STAT shows to be that one.  A recorded identity must
 * match in id, key and size, with a shm_ctime no earlier than the one
 * recorded: shm_ctime is set at creation and moved forward by IPC_SET (an
 * operator's chmod or chown of the segment), and a segment so changed is
 * still ours - were it taken for vanished, a reap would free its slot and
 * lose it (SysV objects have no prefix to sweep).  An id reused for a new
 * segment at the same key and size is what equality of the three rules
 * out.  An unrecorded identity matches only in key and size and by being
 * made by the slot's creator (its pid in shm_cpid, where the creator ran
 * in our PID namespace) no earlier than the second it reserved the slot.
 * A
 * segment removed with IPC_RMID while still attached loses its key
 * (IPC_PRIVATE), so it reads as vanished too.
 */
static bool ident_matches(key_t key, const struct shmid_ds *ds,
			  const struct dynshm_impl_ident *ident)
{
	if (ds->shm_perm.__key != key || ds->shm_segsz != ident->size)
		return false;
	if (ident->shmid >= 0)
		return (int64_t)ds->shm_ctime >= ident->ctime;
	return (ident->cpid == 0 || (int32_t)ds->shm_cpid == ident->cpid) &&
	       (int64_t)ds->shm_ctime >= ident->ctime;
}

/* The shmid of handle's object as ident names it, -ENOENT, or -errno. */
static int find_ident(dynshm_impl_space *space, dynshm_handle handle,
		      const struct dynshm_impl_ident *ident)
{
	key_t key = sysv_key(space, handle);
	struct shmid_ds ds;
	int id = ident->shmid, rc;

	if (id < 0) {
		id = dynshm_sys.shmget(key, 0, 0);
		if (id < 0)
			return dynshm_fail(errno, "cannot find SysV segment "
						"0x%08x: %s",
					(unsigned)key, strerror(errno));
	}
	if (dynshm_sys.shmctl(id, IPC_STAT, &ds) < 0) {
		if (errno == EINVAL || errno == EIDRM)
			return dynshm_fail(ENOENT, "SysV segment 0x%08x (shmid "
						"%d) vanished: another "
						"program removed it",
					(unsigned)key, id);
		return dynshm_fail(errno, "cannot stat SysV segment 0x%08x: %s",
				(unsigned)key, strerror(errno));
	}
	if (!ident_matches(key, &ds, ident)) {
		if (ident->shmid >= 0)
			return dynshm_fail(ENOENT,
					"SysV segment 0x%08x (shmid %d) "
					"vanished: the id now names another "
					"object (key 0x%08x, %zu bytes)",
					(unsigned)key, id,
					(unsigned)ds.shm_perm.__key,
					(size_t)ds.shm_segsz);
		return dynshm_fail(ENOENT,
				"SysV segment 0x%08x (shmid %d, %zu bytes, "
				"made by pid %d) is not the one pid %d would "
				"have made: left alone",
				(unsigned)key, id, (size_t)ds.shm_segsz,
				(int)ds.shm_cpid, (int)ident->cpid);
	}
	rc = check_ours(key, &ds);
	return rc < 0 ? rc : id;
}

static int sysv_attach_ident(dynshm_impl_space *space, dynshm_handle handle,
			     const struct dynshm_impl_ident *ident,
			     struct dynshm_impl_map *map)
{
	int id = find_ident(space, handle, ident);
	void *addr;

	if (id < 0)
		return id;
	addr = dynshm_sys.shmat(id, NULL, 0);
	if (addr == (void *)-1)
		return attach_failed(errno, sysv_key(space, handle),
				     (size_t)ident->size);
	ids_put(space, handle, id);
	map->ident = *ident;
	map->ident.shmid = id;
	map->address = addr;
	map->size = (size_t)ident->size;
	return 0;
}

static int sysv_destroy_ident(dynshm_impl_space *space, dynshm_handle handle,
			      const struct dynshm_impl_ident *ident)
{
	int id = find_ident(space, handle, ident);

	if (id < 0)
		return id;
	ids_forget(space, handle, id);
	if (dynshm_sys.shmctl(id, IPC_RMID, NULL) == 0)
		return 0;
	if (errno == EINVAL || errno == EIDRM)
		return dynshm_fail(ENOENT, "SysV segment 0x%08x vanished while "
					"being removed",
				(unsigned)sysv_key(space, handle));
	return dynshm_fail(errno, "cannot remove SysV segment 0x%08x: %s",
			(unsigned)sysv_key(space, handle), strerror(errno));
}

static int sysv_probe(dynshm_impl_space *space, dynshm_handle handle,
		      const struct dynshm_impl_ident *ident)
{
	int id = find_ident(space, handle, ident);

	return id < 0 ? id : 0;
}

/* Read all of /proc/sysvipc/shm; the caller frees *out. */
static int read_sysvipc(char **out)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap);
	int fd;

	if (!buf)
		return dynshm_fail(ENOMEM, "out of memory listing SysV segments");
	fd = dynshm_sys.open("/proc/sysvipc/shm", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno;

		free(buf);
		return dynshm_fail(err, "cannot open /proc/sysvipc/shm: %s",
				strerror(err));
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *bigger = realloc(buf, cap * 2);

			if (!bigger) {
				dynshm_sys.close(fd);
				free(buf);
				return dynshm_fail(ENOMEM, "out of memory listing "
							"SysV segments");
			}
			buf = bigger;
			cap *= 2;
		}
		n = dynshm_sys.read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : 0;

			dynshm_sys.close(fd);
			if (err) {
				free(buf);
				return dynshm_fail(err, "cannot read "
						     "/proc/sysvipc/shm: %s",
						strerror(err));
			}
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static int sysv_list(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg)
{
	unsigned want = KEY_MARK >> TAG_SHIFT | instance_tag(space);
	char *text = NULL, *line, *save = NULL;
	int rc = read_sysvipc(&text);

	if (rc < 0)
		return rc;
	line = strtok_r(text, "\n", &save); /* the header line */
	while (rc == 0 && (line = strtok_r(NULL, "\n", &save)) != NULL) {
		int key, id;
		unsigned perms, uid;
		unsigned long long size;
		int cpid, lpid;
		unsigned long nattch;
		char name[32];

		if (sscanf(line, "%d %d %o %llu %d %d %lu %u", &key, &id,
			   &perms, &size, &cpid, &lpid, &nattch, &uid) != 8)
			continue;
		if ((unsigned)key >> TAG_SHIFT != want || !dynshm_uid_is_ours((uid_t)uid))
			continue;
		snprintf(name, sizeof(name), "sysv:0x%08x", (unsigned)key);
		rc = fn(DYNSHM_HANDLE_INVALID, name, arg);
	}
	free(text);
	return rc;
}

const struct dynshm_impl_ops dynshm_impl_sysv_ops = {
	.version = DYNSHM_IMPL_OPS_VERSION,
	.type = DYNSHM_IMPL_SYSV,
	.name = "sysv",
	.create = sysv_create,
	.attach = sysv_attach,
	.detach = sysv_detach,
	.destroy = sysv_destroy,
	.destroy_name = sysv_destroy_name,
	.list = sysv_list,
	.object_name = sysv_name,
	.attach_ident = sysv_attach_ident,
	.destroy_ident = sysv_destroy_ident,
	.probe = sysv_probe,
};
