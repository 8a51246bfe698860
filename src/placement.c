/* SPDX-License-Identifier: MIT */
/*
 * placement.c - msharefs placement of segments: the instance-level policy
 * around mshare.c (which knows only the kernel ABI).
 *
 * Why: with msharefs, a segment placed in the instance's region costs page
 * tables once, not once per process, and attaching it maps nothing.  Why
 * it is guarded: the v3 region dies when the thread that created it exits
 * (everything in it is unmapped, later access is SIGSEGV), so only a
 * process that opens the instance with DYNSHM_OPEN_SUPERVISOR - one that
 * stays for the instance's whole life, like a postmaster - may create it.
 *
 * Shared facts, and who writes them:
 *   <instance dir>/mshare, the record: region path, creator's address,
 *	size, window, the region file's device and inode, owner pid + process
 *	token.  Written once by the supervisor under the instance flock
 *	before any other process can join or any segment exists; removed
 *	only by wipe (destroy/reset).  Every field is checked against what
 *	it must be (the instance's id and max_segments, the region's real
 *	size and identity) before it is used: a scribbled record is EUCLEAN.
 *   <instance dir>/mshare.owner, one page holding a robust process-shared
 *	mutex that the creating *thread* locks and never unlocks.  The
 *	kernel ties the region to that thread and tears it down when the
 *	thread exits; the kernel also releases the thread's robust mutexes
 *	then, so "trylock says EOWNERDEAD" is exactly "the region is gone",
 *	even while the supervisor process lives on.  The creating process
 *	keeps the page mapped for good (its thread's robust list points
 *	into it).
 *   Slot s owns region bytes [s*window, (s+1)*window).  The last window
 *	(index max_segments) is kept for the ABI probe.  So placement needs
 *	no allocator and no per-slot flag: placement_covers() decides from
 *	the record, the slot's backend and size, identically everywhere, and
 *	a reaper finds a dead creator's placement from the slot index alone.
 *
 * Mode (config key mshare): off - never; try - when everything allows,
 * else fall back and say why in dynshm_instance_info; on - fail the open
 * instead.  A joiner follows the instance: if a record exists it must map
 * the region (placed segments are only reachable there).
 */
#include "wrapper.h"

#include "error.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RECORD_FILE "mshare"
#define RECORD_MAGIC "dynshm-mshare 3" /* 3: owner token, not start */
#define OWNER_FILE "mshare.owner"

/* Per-slot window: 1 GiB, halved until the region is at most 8 TiB. */
#define WINDOW_MAX (1ull << 30)
#define WINDOW_MIN (2ull << 20)
#define REGION_CAP (8ull << 40)

static void set_reason(struct placement *p, const char *text)
{
	snprintf(p->reason, sizeof(p->reason), "%s", text);
}

static uint64_t window_for(uint32_t max_segments)
{
	uint64_t w = WINDOW_MAX;

	while (w > WINDOW_MIN && ((uint64_t)max_segments + 1) * w > REGION_CAP)
		w /= 2;
	return w;
}

static void region_name(const dynshm_instance *inst, char *buf, size_t len)
{
	snprintf(buf, len, "dynshm.%016" PRIx64, inst->id);
}

/* ---- the record --------------------------------------------------------- */

struct record {
	char path[PATH_MAX];
	uint64_t addr, size, window, owner_token, dev, ino;
	int owner_pid;
};

/* One "key value" line; value runs to the end of the line (may hold spaces). */
static const char *field(char **save, const char *key)
{
	char *line = strtok_r(NULL, "\n", save);
	size_t n = strlen(key);

	if (!line || strncmp(line, key, n) != 0 || line[n] != ' ')
		return NULL;
	return line + n + 1;
}

static bool number(const char *text, int base, uint64_t *v)
{
	char *end;

	if (!text || !*text || *text == '-' || *text == ' ')
		return false;
	errno = 0;
	*v = strtoull(text, &end, base);
	return errno == 0 && *end == '\0';
}

/* Parse only: the fields' values are checked by check_record. */
static int read_record(dynshm_instance *inst, struct record *rec)
{
	char text[PATH_MAX + 512], *save = NULL, *line;
	const char *path, *owner;
	uint64_t pid = 0;
	int rc = state_read_file(inst, RECORD_FILE, text, sizeof(text)), n = 0;

	if (rc == -ENOENT) {
		dynshm_clear_error();
		return rc;
	}
	if (rc < 0)
		return rc;
	memset(rec, 0, sizeof(*rec));
	line = strtok_r(text, "\n", &save);
	path = line && strcmp(line, RECORD_MAGIC) == 0 ? field(&save, "path")
						       : NULL;
	if (path && strlen(path) < sizeof(rec->path)) {
		strcpy(rec->path, path);
		n = number(field(&save, "address"), 16, &rec->addr) &&
		    number(field(&save, "size"), 10, &rec->size) &&
		    number(field(&save, "window"), 10, &rec->window);
	}
	if (n) {
		const char *file = field(&save, "file");
		char *sp = file ? strchr(file, ' ') : NULL;

		if (sp) {
			*sp = '\0';
			n = number(file, 10, &rec->dev) &&
			    number(sp + 1, 10, &rec->ino);
		} else {
			n = 0;
		}
	}
	owner = n ? field(&save, "owner") : NULL;
	if (owner) {
		char *sp = strchr(owner, ' ');

		if (sp) {
			*sp = '\0';
			n = number(owner, 10, &pid) &&
			    number(sp + 1, 10, &rec->owner_token) &&
			    pid > 0 && pid <= INT32_MAX;
			rec->owner_pid = (int)pid;
		} else {
			n = 0;
		}
	} else {
		n = 0;
	}
	if (!n)
		return dynshm_fail(EUCLEAN, "'%s/" RECORD_FILE "' is corrupt (open "
					 "with reset to recreate the instance)",
				inst->dir);
	return 0;
}

static int write_record(dynshm_instance *inst, const struct placement *p)
{
	char text[PATH_MAX + 512];
	int n = snprintf(text, sizeof(text),
			 RECORD_MAGIC "\npath %s\naddress %" PRIxPTR
				      "\nsize %" PRIu64 "\nwindow %" PRIu64
				      "\nfile %" PRIu64 " %" PRIu64
				      "\nowner %d %" PRIu64 "\n",
			 p->region.path, (uintptr_t)p->region.base,
			 p->region.size, p->window, p->region.dev,
			 p->region.ino, (int)p->owner_pid, p->owner_token);

	if (n < 0 || (size_t)n >= sizeof(text))
		return dynshm_fail(ENAMETOOLONG, "msharefs record too long");
	return state_write_file(inst, RECORD_FILE, text, (size_t)n);
}

/* Does path name this instance's region file (<dir>/dynshm.<id>)? */
static bool our_region_path(const dynshm_instance *inst, const char *path)
{
	char name[64];
	const char *slash = strrchr(path, '/');

	region_name(inst, name, sizeof(name));
	return path[0] == '/' && slash && slash != path &&
	       strcmp(slash + 1, name) == 0 && !strstr(path, "/../") &&
	       !strstr(path, "/./") && !strstr(path, "//");
}

static int corrupt_field(dynshm_instance *inst, const char *what)
{
	return dynshm_fail(EUCLEAN, "'%s/" RECORD_FILE "' is corrupt: %s (open "
				 "with reset to recreate the instance)",
			inst->dir, what);
}

/*
 * Every field against what it must be, before anything is mapped or
 * removed by it: the path is this instance's region name, the window is
 * the one max_segments gives, the size holds every window and the probe's,
 * and address + size fits this process's address space.
 */
static int check_record(dynshm_instance *inst, const struct record *rec)
{
	uint64_t nwin = (uint64_t)inst->c.hdr->max_segments + 1;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (!our_region_path(inst, rec->path))
		return corrupt_field(inst, "the path is not this instance's "
					   "region file");
	if (rec->window != window_for(inst->c.hdr->max_segments))
		return corrupt_field(inst, "the window is not the one "
					   "max_segments gives");
	if (rec->size % rec->window || rec->size / rec->window < nwin ||
	    rec->size > REGION_CAP * 2)
		return corrupt_field(inst, "the size does not hold every "
					   "window");
	if (rec->addr == 0 || rec->addr % page ||
	    rec->addr > (uint64_t)UINTPTR_MAX - rec->size)
		return corrupt_field(inst, "the address is not page aligned "
					   "or runs past the address space");
	return 0;
}

/* ---- the owner thread ------------------------------------------------------ */

/*
 * Map <dir>/mshare.owner (create: make it, and lock its mutex from this
 * thread).  The descriptor is closed at once; the page stays.
 */
static int owner_map(dynshm_instance *inst, bool create, pthread_mutex_t **out)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	void *m;
	int fd, rc = 0;

	fd = dynshm_sys.openat(inst->dirfd, OWNER_FILE,
			    O_RDWR | O_CLOEXEC | O_NOFOLLOW |
				    (create ? O_CREAT | O_TRUNC : 0),
			    0600);
	if (fd < 0)
		return dynshm_fail(errno, "cannot open '%s/" OWNER_FILE "': %s",
				inst->dir, strerror(errno));
	if (create && dynshm_sys.ftruncate(fd, page) < 0)
		rc = dynshm_fail(errno, "cannot size '%s/" OWNER_FILE "': %s",
			      inst->dir, strerror(errno));
	else if (dynshm_sys.fstat(fd, &st) < 0)
		rc = dynshm_fail(errno, "cannot stat '%s/" OWNER_FILE "': %s",
			      inst->dir, strerror(errno));
	else if (!S_ISREG(st.st_mode) || !dynshm_uid_is_ours(st.st_uid) ||
		 (st.st_mode & 077) || st.st_size < page)
		rc = dynshm_fail(EPERM, "'%s/" OWNER_FILE "' is not ours or not "
					"a page (reset the instance)",
			      inst->dir);
	if (rc < 0) {
		DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
		return rc;
	}
	m = dynshm_sys.mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
			 MAP_SHARED, fd, 0);
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
	if (m == MAP_FAILED)
		return dynshm_fail(errno, "cannot map '%s/" OWNER_FILE "': %s",
				inst->dir, strerror(errno));
	if (create) {
		pthread_mutexattr_t a;

		pthread_mutexattr_init(&a);
		pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(m, &a);
		pthread_mutexattr_destroy(&a);
		pthread_mutex_lock(m); /* for the thread's life */
	}
	*out = m;
	return 0;
}

/* Undo owner_map(create) after a failed creation. */
static void owner_unmake(dynshm_instance *inst, struct placement *p)
{
	if (!p->owner_mu)
		return;
	pthread_mutex_unlock(p->owner_mu); /* off the robust list first */
	dynshm_sys.munmap(p->owner_mu, (size_t)sysconf(_SC_PAGESIZE));
	p->owner_mu = NULL;
	p->owns = false;
	dynshm_sys.unlinkat(inst->dirfd, OWNER_FILE, 0);
}

/* Is the creating thread alive?  Its robust mutex says, for nothing. */
static bool owner_thread_alive(const struct placement *p)
{
	int rc;

	if (!p->owner_mu)
		return false;
	rc = pthread_mutex_trylock(p->owner_mu);
	if (rc == EBUSY)
		return true;
	/* EOWNERDEAD: unlocked without consistent, it stays dead for all */
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(p->owner_mu);
	return false;
}

/* ---- open ----------------------------------------------------------------- */

/*
 * Doubt is life, as everywhere (liveness.c).  The region is its creating
 * thread's: the robust mutex that thread holds in mshare.owner, released
 * by the kernel at the thread's exit, is the signal.  The supervisor makes
 * the region before it joins the process table, so a record has no owner
 * token (0); one that has a token (a record written after the join) is
 * also dead once that token is.
 */
static bool owner_alive(dynshm_instance *inst, const struct placement *p)
{
	return (p->owner_token == 0 ||
		live_token(inst, p->owner_token) != 0) &&
	       owner_thread_alive(p); /* the region is the thread's */
}

/* The instance has a region: map it, whatever our own mode says. */
static int join_region(dynshm_instance *inst, const struct record *rec, int mode)
{
	struct placement *p = &inst->place;
	int rc;

	rc = check_record(inst, rec);
	if (rc < 0)
		return rc;
	p->recorded = true;
	p->window = rec->window;
	p->creator_base = (void *)(uintptr_t)rec->addr;
	p->owner_pid = rec->owner_pid;
	p->owner_token = rec->owner_token;
	if (!p->owner_mu && owner_map(inst, false, &p->owner_mu) < 0)
		dynshm_clear_error(); /* no owner page: the owner is gone */
	if (!owner_alive(inst, p)) {
		snprintf(p->reason, sizeof(p->reason),
			 "the msharefs region died with its owner, thread of "
			 "pid %d; segments placed in it are lost (reopen the "
			 "instance with DYNSHM_OPEN_RESET)",
			 p->owner_pid);
		return mode == MSHARE_ON ? dynshm_fail(ESRCH, "mshare = on, but %s",
						    p->reason)
					 : 0;
	}
	rc = mshare_region_open(rec->path, p->creator_base, &p->region);
	if (rc == 0 && (p->region.dev != rec->dev || p->region.ino != rec->ino ||
			p->region.size != rec->size)) {
		rc = dynshm_fail(EPERM, "msharefs region '%s' is not the one the "
					"instance recorded (%s): someone "
					"replaced it; not joining it (reset "
					"the instance)",
				rec->path,
				p->region.size != rec->size ? "another size"
							    : "another file");
		mshare_region_close(&p->region);
	}
	if (rc < 0) {
		set_reason(p, dynshm_last_error());
		if (mode == MSHARE_ON)
			return dynshm_fail(-rc, "mshare = on, but %s", p->reason);
		dynshm_clear_error();
		return 0;
	}
	p->active = true;
	p->same_address = p->region.base == p->creator_base;
	if (!p->same_address)
		snprintf(p->reason, sizeof(p->reason),
			 "region mapped at %p here, not at the creator's %p "
			 "(that range is taken in this process)",
			 p->region.base, p->creator_base);
	return 0;
}

/* Why this process may not create a region now, or NULL if it may. */
static const char *why_not_create(dynshm_instance *inst, unsigned flags)
{
	if (!(flags & DYNSHM_OPEN_SUPERVISOR))
		return "the instance was not opened with DYNSHM_OPEN_SUPERVISOR "
		       "by a process that stays (the msharefs v3 region dies "
		       "with the process that creates it)";
	if (inst->backend != DYNSHM_IMPL_POSIX && inst->backend != DYNSHM_IMPL_MMAP)
		return "the instance's backend has no file descriptor to place "
		       "(msharefs needs posix or mmap)";
	if (inst->c.hdr->nprocs > 0 || inst->c.hdr->nsegments > 0)
		return "opened with DYNSHM_OPEN_SUPERVISOR, but the instance "
		       "already has other processes or segments (open with "
		       "DYNSHM_OPEN_RESET to recreate it with a region)";
	return NULL;
}

/*
 * placement_open runs before the open joins (instance.c): every reap of
 * the open - a dead lock holder repaired, a full process table, the reap
 * at open - then finds the region mapped and unplaces what it removes.  A
 * supervisor about to count who else is there releases dead processes
 * first.  Nothing is placed yet (no record), so this reap needs no region.
 */
static void release_the_dead(dynshm_instance *inst, unsigned flags,
			     void (*reap)(dynshm_instance *))
{
	if ((flags & DYNSHM_OPEN_SUPERVISOR) && !(flags & DYNSHM_OPEN_NOREAP))
		reap(inst);
}

static int create_region(dynshm_instance *inst, const struct dynshm_config *cfg)
{
	struct placement *p = &inst->place;
	uint32_t nslots = inst->c.hdr->max_segments;
	char name[64], probe[96];
	int rc;

	p->window = window_for(nslots);
	region_name(inst, name, sizeof(name));
	snprintf(probe, sizeof(probe), "/%s.mshare-probe", name);
	/* The owner page first: the region never exists without it. */
	rc = owner_map(inst, true, &p->owner_mu);
	if (rc < 0)
		return rc;
	p->owns = true;
	rc = mshare_region_create(cfg->mshare_path, name,
				  ((uint64_t)nslots + 1) * p->window, probe,
				  &p->region);
	if (rc == -EEXIST) {
		/*
		 * No record, and we hold the instance flock: a supervisor
		 * killed between creating the file and writing the record
		 * left it (or someone planted it).  Nothing can be placed in
		 * it; remove it and create ours.
		 */
		char path[PATH_MAX + 80];

		snprintf(path, sizeof(path), "%s/%s", cfg->mshare_path, name);
		dynshm_clear_error();
		rc = mshare_region_unlink(path);
		if (rc == 0 || rc == -ENOENT)
			rc = mshare_region_create(cfg->mshare_path, name,
						  ((uint64_t)nslots + 1) *
							  p->window,
						  probe, &p->region);
	}
	if (rc < 0) {
		DYNSHM_SAVE_ERRNO(owner_unmake(inst, p));
		return rc;
	}
	p->owner_pid = getpid();
	p->owner_token = 0; /* not joined yet: the owner thread decides */
	p->creator_base = p->region.base;
	HOOK("mshare:created");
	rc = write_record(inst, p);
	if (rc < 0) {
		/* back out: unmap and close, remove the region file, owner */
		mshare_region_close(&p->region);
		mshare_region_unlink(p->region.path);
		owner_unmake(inst, p);
		return rc;
	}
	p->recorded = p->active = p->same_address = true;
	return 0;
}

void placement_init(dynshm_instance *inst, const struct dynshm_config *cfg)
{
	struct placement *p = &inst->place;

	memset(p, 0, sizeof(*p));
	p->region = (struct mshare_region)MSHARE_REGION_INIT;
	p->mode = cfg->mshare;
	snprintf(p->mount, sizeof(p->mount), "%s", cfg->mshare_path);
}

int placement_open(dynshm_instance *inst, const struct dynshm_config *cfg,
		   unsigned flags, void (*reap)(dynshm_instance *))
{
	struct placement *p = &inst->place;
	struct record rec;
	uint64_t align;
	const char *why;
	int rc;

	rc = read_record(inst, &rec);
	if (rc == 0)
		return join_region(inst, &rec, cfg->mshare);
	if (rc != -ENOENT)
		return rc;
	if (cfg->mshare == MSHARE_OFF) {
		set_reason(p, "mshare = off");
		return 0;
	}
	/* In the order an operator has to fix them. */
	rc = mshare_probe(cfg->mshare_path, &align);
	if (rc == 0) {
		release_the_dead(inst, flags, reap);
		why = why_not_create(inst, flags);
		if (why)
			rc = dynshm_fail(EINVAL, "%s", why);
		else
			rc = create_region(inst, cfg);
	}
	if (rc == 0)
		return 0;
	set_reason(p, dynshm_last_error());
	if (cfg->mshare == MSHARE_ON)
		return dynshm_fail(-rc, "mshare = on, but %s", p->reason);
	dynshm_clear_error();
	return 0;
}

void placement_close(dynshm_instance *inst)
{
	struct placement *p = &inst->place;

	mshare_region_close(&p->region);
	p->active = false;
	/* The creator's thread holds the mutex in it: the page stays. */
	if (p->owner_mu && !p->owns)
		dynshm_sys.munmap(p->owner_mu, (size_t)sysconf(_SC_PAGESIZE));
	p->owner_mu = NULL;
}

int placement_after_fork(dynshm_instance *inst)
{
	struct placement *p = &inst->place;
	struct record rec;
	int rc = read_record(inst, &rec);

	if (rc == -ENOENT && !p->recorded)
		return 0;
	if (rc < 0) {
		dynshm_clear_error(); /* the join that follows says more */
		return 0;
	}
	if (p->recorded && rec.dev == p->region.dev && rec.ino == p->region.ino)
		return 0; /* the parent's region: its mapping is ours too */
	/* A supervisor made the region after our parent joined: map it. */
	mshare_region_close(&p->region);
	p->recorded = p->active = p->same_address = false;
	p->reason[0] = '\0';
	return join_region(inst, &rec, p->mode);
}

void placement_destroy(dynshm_instance *inst)
{
	struct record rec;
	char path[PATH_MAX + 80], name[64];

	/* Only what is this instance's region file, inside an msharefs. */
	if (read_record(inst, &rec) == 0 && our_region_path(inst, rec.path))
		mshare_region_unlink(rec.path);
	else if (inst->place.region.path[0])
		mshare_region_unlink(inst->place.region.path);
	/* Also by name: a supervisor killed before writing the record. */
	region_name(inst, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", inst->place.mount, name);
	if (inst->place.mount[0])
		mshare_region_unlink(path);
	dynshm_sys.unlinkat(inst->dirfd, RECORD_FILE, 0);
	dynshm_sys.unlinkat(inst->dirfd, RECORD_FILE ".tmp", 0);
	dynshm_sys.unlinkat(inst->dirfd, OWNER_FILE, 0);
	dynshm_clear_error();
}

/* ---- segments ------------------------------------------------------------- */

bool placement_covers(const dynshm_instance *inst, uint32_t backend,
		      uint64_t size)
{
	return inst->place.recorded &&
	       (backend == DYNSHM_IMPL_POSIX || backend == DYNSHM_IMPL_MMAP) &&
	       size <= inst->place.window;
}

/* The region must be mapped here and its owner alive to use it. */
static int usable(dynshm_instance *inst, dynshm_handle handle)
{
	struct placement *p = &inst->place;

	if (p->active && owner_alive(inst, p))
		return 0;
	if (p->active)
		snprintf(p->reason, sizeof(p->reason),
			 "the msharefs region died with its owner, pid %d; "
			 "segments placed in it are lost (reopen the instance "
			 "with DYNSHM_OPEN_RESET)",
			 p->owner_pid);
	return dynshm_fail(ESRCH, "segment 0x%016llx of instance '%s' belongs in "
			       "its msharefs region, which this process "
			       "cannot use: %s",
			(unsigned long long)handle, inst->name, p->reason);
}

/* Open the backend's object by name: the descriptor CREATE_MAPPING wants. */
static int open_object(dynshm_instance *inst, dynshm_handle handle, int *fd)
{
	dynshm_impl_space *space = NULL;
	char name[DYNSHM_IMPL_NAME_MAX];
	int rc = space_for(inst, inst->backend, &space);

	if (rc == 0)
		rc = dynshm_impl_object_name(space, handle, name, sizeof(name));
	if (rc < 0)
		return rc;
	if (inst->backend == DYNSHM_IMPL_POSIX)
		*fd = dynshm_sys.shm_open(name, O_RDWR | O_CLOEXEC, 0);
	else
		*fd = dynshm_sys.open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
	if (*fd < 0)
		return dynshm_fail(errno, "cannot reopen '%s' to place it: %s",
				name, strerror(errno));
	return 0;
}

int placement_place(dynshm_instance *inst, struct dynshm_segment *seg, size_t size)
{
	struct placement *p = &inst->place;
	uint64_t off = (uint64_t)seg->slot * p->window;
	int fd = -1, rc = usable(inst, seg->handle);

	if (rc == 0)
		rc = open_object(inst, seg->handle, &fd);
	if (rc == 0) {
		rc = mshare_place(&p->region, off, fd, size);
		DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
	}
	if (rc < 0)
		return rc;
	/* Every process now sees it in the region: drop our own mapping. */
	dynshm_impl_detach(seg->map);
	seg->map = NULL;
	seg->placed = (char *)p->region.base + off;
	seg->placed_size = size;
	return 0;
}

int placement_attach(dynshm_instance *inst, struct dynshm_segment *seg,
		     size_t size)
{
	struct placement *p = &inst->place;
	int rc = usable(inst, seg->handle);

	if (rc < 0)
		return rc;
	seg->placed = (char *)p->region.base + (uint64_t)seg->slot * p->window;
	seg->placed_size = size;
	return 0;
}

void placement_release(dynshm_instance *inst, uint32_t backend,
		       dynshm_handle handle)
{
	struct placement *p = &inst->place;
	uint32_t slot = (uint32_t)(handle & HANDLE_SLOT_MASK);

	/*
	 * Not while the instance is destroyed (wipe marks it first): the
	 * processes still attached keep their windows until they detach, as
	 * they keep an unlinked object's mapping; the region goes with the
	 * last of them.  Whole window: an empty range is fine.
	 */
	if (inst->c.hdr && __atomic_load_n(&inst->c.hdr->destroyed,
					   __ATOMIC_ACQUIRE))
		return;
	if (p->active && placement_covers(inst, backend, 0))
		if (mshare_unplace(&p->region, (uint64_t)slot * p->window,
				   p->window) < 0)
			dynshm_clear_error(); /* the owner is gone: nothing left */
}

void placement_info(const dynshm_instance *inst, dynshm_instance_info *info)
{
	const struct placement *p = &inst->place;

	info->mshare_active = p->active;
	info->mshare_same_address = p->active && p->same_address;
	info->mshare_region_size = p->active ? p->region.size : 0;
	info->mshare_window = p->recorded ? p->window : 0;
	snprintf(info->mshare_status, sizeof(info->mshare_status), "%s",
		 p->reason);
}
