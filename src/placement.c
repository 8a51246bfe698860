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
 *	size, window, owner pid + process token.  Written once by the
 *	supervisor under the instance flock before any other process can
 *	join or any segment exists; removed only by wipe (destroy/reset).
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
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RECORD_FILE "mshare"
#define RECORD_MAGIC "dynshm-mshare 2" /* 2: owner token, not start */

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
	uint64_t addr, size, window, owner_token;
	int owner_pid;
};

static int read_record(dynshm_instance *inst, struct record *rec)
{
	char text[PATH_MAX + 256], magic[32];
	unsigned long long addr, size, window, start;
	int rc = state_read_file(inst, RECORD_FILE, text, sizeof(text));

	if (rc == -ENOENT) {
		dynshm_clear_error();
		return rc;
	}
	if (rc < 0)
		return rc;
	if (sscanf(text, "%31[^\n]\npath %4095s\naddress %llx\nsize %llu\n"
			 "window %llu\nowner %d %llu",
		   magic, rec->path, &addr, &size, &window, &rec->owner_pid,
		   &start) != 7 ||
	    strcmp(magic, RECORD_MAGIC) != 0 || window == 0)
		return dynshm_fail(EUCLEAN, "'%s/" RECORD_FILE "' is corrupt (open "
					 "with reset to recreate the instance)",
				inst->dir);
	rec->addr = addr;
	rec->size = size;
	rec->window = window;
	rec->owner_token = start;
	return 0;
}

static int write_record(dynshm_instance *inst, const struct placement *p)
{
	char text[PATH_MAX + 256];
	int n = snprintf(text, sizeof(text),
			 RECORD_MAGIC "\npath %s\naddress %" PRIxPTR
				      "\nsize %" PRIu64 "\nwindow %" PRIu64
				      "\nowner %d %" PRIu64 "\n",
			 p->region.path, (uintptr_t)p->region.base,
			 p->region.size, p->window, (int)p->owner_pid,
			 p->owner_token);

	if (n < 0 || (size_t)n >= sizeof(text))
		return dynshm_fail(ENAMETOOLONG, "msharefs record too long");
	return state_write_file(inst, RECORD_FILE, text, (size_t)n);
}

/* ---- open ----------------------------------------------------------------- */

/* Doubt is life, as everywhere (liveness.c). */
static bool owner_alive(dynshm_instance *inst, const struct placement *p)
{
	return p->owner_token != 0 && live_token(inst, p->owner_token) != 0;
}

/* The instance has a region: map it, whatever our own mode says. */
static int join_region(dynshm_instance *inst, const struct record *rec, int mode)
{
	struct placement *p = &inst->place;
	int rc;

	p->recorded = true;
	p->window = rec->window;
	p->creator_base = (void *)(uintptr_t)rec->addr;
	p->owner_pid = rec->owner_pid;
	p->owner_token = rec->owner_token;
	if (!owner_alive(inst, p)) {
		snprintf(p->reason, sizeof(p->reason),
			 "the msharefs region died with its owner, pid %d; "
			 "segments placed in it are lost (reopen the instance "
			 "with DYNSHM_OPEN_RESET)",
			 p->owner_pid);
		return mode == MSHARE_ON ? dynshm_fail(ESRCH, "mshare = on, but %s",
						    p->reason)
					 : 0;
	}
	rc = mshare_region_open(rec->path, p->creator_base, &p->region);
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
	if (inst->c.hdr->nprocs > 1 || inst->c.hdr->nsegments > 0)
		return "opened with DYNSHM_OPEN_SUPERVISOR, but the instance "
		       "already has other processes or segments (open with "
		       "DYNSHM_OPEN_RESET to recreate it with a region)";
	return NULL;
}

/*
 * The open's own reap comes after placement_open (instance.c), so that
 * placed segments are unplaced; a supervisor about to count who else is
 * there releases dead processes first.  Nothing is placed yet (no record),
 * so this reap needs no region.
 */
static void release_the_dead(dynshm_instance *inst, unsigned flags)
{
	if ((flags & DYNSHM_OPEN_SUPERVISOR) && !(flags & DYNSHM_OPEN_NOREAP))
		reap_dead(inst);
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
	rc = mshare_region_create(cfg->mshare_path, name,
				  ((uint64_t)nslots + 1) * p->window, probe,
				  &p->region);
	if (rc < 0)
		return rc;
	p->owner_pid = getpid();
	p->owner_token = ctl_token(inst->me, inst->me_gen); /* joined */
	p->creator_base = p->region.base;
	rc = write_record(inst, p);
	if (rc < 0) {
		/* back out: unmap and close, then remove the region file */
		mshare_region_close(&p->region);
		mshare_region_unlink(p->region.path);
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
	snprintf(p->mount, sizeof(p->mount), "%s", cfg->mshare_path);
}

int placement_open(dynshm_instance *inst, const struct dynshm_config *cfg,
		   unsigned flags)
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
		release_the_dead(inst, flags);
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
	mshare_region_close(&inst->place.region);
	inst->place.active = false;
}

void placement_destroy(dynshm_instance *inst)
{
	struct record rec;
	char path[PATH_MAX + 80], name[64];

	if (read_record(inst, &rec) == 0)
		mshare_region_unlink(rec.path);
	else if (inst->place.region.path[0])
		mshare_region_unlink(inst->place.region.path);
	/* Also by name: a supervisor killed before writing the record. */
	region_name(inst, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", inst->place.mount, name);
	mshare_region_unlink(path);
	dynshm_sys.unlinkat(inst->dirfd, RECORD_FILE, 0);
	dynshm_sys.unlinkat(inst->dirfd, RECORD_FILE ".tmp", 0);
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

	/* Whole window: the size is not needed, and an empty range is 0. */
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
