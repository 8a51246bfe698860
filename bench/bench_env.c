/* SPDX-License-Identifier: MIT */
/*
 * bench_env.c - what every dsm_bench scenario stands on: instances in
 * private directories, the registry that removes everything made (also
 * after SIGINT), the check that nothing was left, the raw system-call
 * sequences dynshm is compared against, and the control lock's counters
 * as the library keeps them (the contention and join scenarios).
 */
#include "bench.h"

/* ---- clean-up registry --------------------------------------------------- */

static struct bench_inst insts[MAX_INSTANCES];
static int ninsts;

static struct raw_obj raws[MAX_RAW];
static char raw_dir[PATH_MAX]; /* the mmap raw sequences' directory */
int raw_dirfd = -1;
char raw_prefix[32];    /* "dsmbench.<16 hex pid>." */
unsigned raw_key_base;  /* SysV keys: 0x3d000000 | pid << 12 */

/* region: bytes of region (whole MiB, huge_pages = off), 0 for none. */
int inst_open(dynshm_impl_type backend, uint32_t max_segments,
		     size_t region, struct bench_inst **out)
{
	struct bench_inst *b;
	dynshm_config *cfg = NULL;
	dynshm_instance_info info;
	char num[24];
	int rc;

	if (ninsts == MAX_INSTANCES)
		return fail(-ENOSPC, "too many instances");
	b = &insts[ninsts];
	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "%s/dsm-bench.XXXXXX", opt.tmpdir);
	if (!mkdtemp(b->dir))
		return fail(-errno, "mkdtemp %s", b->dir);
	ninsts++;
	b->backend = backend;
	rc = dynshm_config_new(&cfg);
	if (rc == 0)
		rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
				    dynshm_impl_type_name(backend));
	if (rc == 0 && max_segments) {
		snprintf(num, sizeof(num), "%u", max_segments);
		rc = dynshm_config_set(cfg, "max_segments", num);
	}
	if (rc == 0 && region) {
		b->region = true;
		snprintf(num, sizeof(num), "%zuMB", region / MIB);
		rc = dynshm_config_set(cfg, "min_dynamic_shared_memory", num);
		if (rc == 0)
			rc = dynshm_config_set(cfg, "huge_pages", "off");
	}
	if (rc == 0)
		rc = dynshm_instance_open(b->dir, cfg, 0, &b->inst);
	dynshm_config_free(cfg);
	if (rc == 0)
		rc = dynshm_instance_info_get(b->inst, &info, sizeof(info));
	if (rc < 0) {
		if (b->inst) {
			dynshm_instance_destroy(b->inst);
			b->inst = NULL;
		}
		rmdir(b->dir);
		return fail(rc, "cannot open a %s instance in %s",
			    dynshm_impl_type_name(backend), b->dir);
	}
	b->id = info.instance_id;
	*out = b;
	return 0;
}

void inst_destroy(struct bench_inst *b)
{
	int rc;

	if (!b->inst)
		return;
	rc = dynshm_instance_destroy(b->inst);
	b->inst = NULL;
	if (rc < 0)
		fail(rc, "dynshm_instance_destroy %s", b->dir);
	rmdir(b->dir); /* normally gone already */
}

static struct raw_obj *raw_track(dynshm_impl_type backend, const char *name,
				 int shmid)
{
	for (int i = 0; i < MAX_RAW; i++) {
		if (raws[i].live)
			continue;
		raws[i].backend = backend;
		snprintf(raws[i].name, sizeof(raws[i].name), "%s", name);
		raws[i].shmid = shmid;
		raws[i].live = true;
		return &raws[i];
	}
	return NULL;
}

void raw_remove(struct raw_obj *o)
{
	if (!o || !o->live)
		return;
	switch (o->backend) {
	case DYNSHM_IMPL_POSIX:
		shm_unlink(o->name);
		break;
	case DYNSHM_IMPL_SYSV:
		shmctl(o->shmid, IPC_RMID, NULL);
		break;
	case DYNSHM_IMPL_MMAP:
		unlinkat(raw_dirfd, o->name, 0);
		break;
	default:
		break;
	}
	o->live = false;
}

void cleanup_all(void)
{
	for (int i = 0; i < MAX_RAW; i++)
		raw_remove(&raws[i]);
	for (int i = 0; i < ninsts; i++)
		inst_destroy(&insts[i]);
	if (raw_dirfd >= 0) {
		close(raw_dirfd);
		raw_dirfd = -1;
		if (rmdir(raw_dir) < 0 && errno != ENOENT)
			fail(-errno, "rmdir %s", raw_dir);
	}
}

static int count_leftover(dynshm_handle h, const char *name, void *arg)
{
	(void)h;
	note("dsm_bench: left behind: %s", name);
	++*(int *)arg;
	return 0;
}

/* Look for anything this run made and did not remove. */
int verify_clean(void)
{
	struct stat st;
	struct dirent *de;
	char line[512];
	int left = 0;
	DIR *d;
	FILE *f;

	for (int i = 0; i < ninsts; i++) {
		dynshm_impl_space *space;

		if (stat(insts[i].dir, &st) == 0)
			note("dsm_bench: left behind: %s", insts[i].dir),
				left++;
		if (!insts[i].id)
			continue;
		if (insts[i].backend != DYNSHM_IMPL_MMAP &&
		    dynshm_impl_space_open(insts[i].backend, insts[i].id, NULL,
					&space) == 0) {
			dynshm_impl_list(space, count_leftover, &left);
			dynshm_impl_space_close(space);
		}
		/* the region's SysV object, keyed by the instance id */
		if (insts[i].region && insts[i].backend != DYNSHM_IMPL_SYSV &&
		    dynshm_impl_space_open(DYNSHM_IMPL_SYSV, insts[i].id, NULL,
					&space) == 0) {
			dynshm_impl_list(space, count_leftover, &left);
			dynshm_impl_space_close(space);
		}
	}
	if (raw_dir[0] && stat(raw_dir, &st) == 0)
		note("dsm_bench: left behind: %s", raw_dir), left++;
	if ((d = opendir("/dev/shm")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, raw_prefix,
				    strlen(raw_prefix)) == 0)
				note("dsm_bench: left behind: /dev/shm/%s",
				     de->d_name),
					left++;
		closedir(d);
	}
	if ((f = fopen("/proc/sysvipc/shm", "r")) != NULL) {
		while (fgets(line, sizeof(line), f)) {
			int key;

			if (sscanf(line, "%d", &key) == 1 &&
			    ((unsigned)key & 0xfffff000u) == raw_key_base)
				note("dsm_bench: left behind: SysV key 0x%08x",
				     (unsigned)key),
					left++;
		}
		fclose(f);
	}
	return left;
}

/* ---- raw system-call sequences ---------------------------------------------
 *
 * Exactly the calls dynshm's backends make for the same work, nothing
 * else.  Names are as long as dynshm's ("dsmbench.<16 hex>.<16 hex>") and
 * new for every create, as dynshm's are, so directory and dentry work is
 * the same; they are built by hand, not with snprintf, so that the
 * baseline is the system calls alone.
 */

static void hex16(char *p, uint64_t v)
{
	for (int i = 15; i >= 0; i--, v >>= 4)
		p[i] = "0123456789abcdef"[v & 15];
}

/* "/dsmbench.<pid>.<n>" (posix) or "dsmbench.<pid>.<n>" (mmap). */
void raw_next_name(struct raw_ctx *r, char *buf, bool slash)
{
	size_t plen = strlen(raw_prefix);
	char *p = buf;

	if (slash)
		*p++ = '/';
	memcpy(p, raw_prefix, plen);
	hex16(p + plen, ++r->counter);
	p[plen + 16] = '\0';
}

key_t raw_next_key(struct raw_ctx *r)
{
	return (key_t)(raw_key_base | (unsigned)(++r->counter & 0xfff));
}

static int raw_fd_fill(int fd, size_t size)
{
	int e;

	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	e = posix_fallocate(fd, 0, (off_t)size);
	return -e;
}

/*
 * The rest of a raw create on a new descriptor: size and allocate it, map
 * it, unmap it, close it.  0 or -errno.
 */
static int raw_fd_make(int fd, size_t size)
{
	int rc = raw_fd_fill(fd, size);
	void *p;

	if (rc == 0) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			rc = -errno;
		else
			munmap(p, size);
	}
	close(fd);
	return rc;
}

int raw_posix_create(void *arg)
{
	struct raw_ctx *r = arg;
	char name[64];
	int fd, rc;

	raw_next_name(r, name, true);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = raw_fd_make(fd, r->size);
	shm_unlink(name);
	return rc;
}

/* The attach half of the raw baseline: size from fstat, map, unmap. */
static int raw_map_fd(int fd)
{
	struct stat st;
	void *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	return munmap(p, (size_t)st.st_size) < 0 ? -errno : 0;
}

int raw_posix_attach(void *arg)
{
	struct raw_ctx *r = arg;

	return raw_map_fd(shm_open(r->name, O_RDWR | O_CLOEXEC, 0));
}

static int raw_mmap_create(void *arg)
{
	struct raw_ctx *r = arg;
	char name[64];
	int fd, rc;

	raw_next_name(r, name, false);
	fd = openat(raw_dirfd, name,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = raw_fd_make(fd, r->size);
	unlinkat(raw_dirfd, name, 0);
	return rc;
}

static int raw_mmap_attach(void *arg)
{
	struct raw_ctx *r = arg;

	return raw_map_fd(
		openat(r->dirfd, r->name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0));
}

static int raw_sysv_create(void *arg)
{
	struct raw_ctx *r = arg;
	void *p;
	int id = -1;

	for (int tries = 0; id < 0 && tries < 4096; tries++) {
		id = shmget(raw_next_key(r), r->size,
			    IPC_CREAT | IPC_EXCL | 0600);
		if (id < 0 && errno != EEXIST)
			return -errno;
	}
	if (id < 0)
		return -EEXIST;
	p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		int err = errno;

		shmctl(id, IPC_RMID, NULL);
		return -err;
	}
	shmdt(p);
	return shmctl(id, IPC_RMID, NULL) < 0 ? -errno : 0;
}

static int raw_sysv_attach(void *arg)
{
	struct raw_ctx *r = arg;
	struct shmid_ds ds;
	void *p;
	int id = shmget(r->key, 0, 0);

	if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		return -errno;
	return shmdt(p) < 0 ? -errno : 0;
}

op_fn raw_create_fn(dynshm_impl_type t)
{
	return t == DYNSHM_IMPL_POSIX ? raw_posix_create
	       : t == DYNSHM_IMPL_SYSV ? raw_sysv_create
				    : raw_mmap_create;
}

op_fn raw_attach_fn(dynshm_impl_type t)
{
	return t == DYNSHM_IMPL_POSIX ? raw_posix_attach
	       : t == DYNSHM_IMPL_SYSV ? raw_sysv_attach
				    : raw_mmap_attach;
}

/* Make the raw attach target: an object of r->size, kept until the end. */
int raw_make_target(struct raw_ctx *r)
{
	int fd;

	r->dirfd = raw_dirfd;
	if (r->backend == DYNSHM_IMPL_SYSV) {
		int id = -1;

		for (int tries = 0; id < 0 && tries < 4096; tries++) {
			r->key = raw_next_key(r);
			id = shmget(r->key, r->size,
				    IPC_CREAT | IPC_EXCL | 0600);
			if (id < 0 && errno != EEXIST)
				return -errno;
		}
		if (id < 0)
			return -EEXIST;
		r->obj = raw_track(DYNSHM_IMPL_SYSV, "", id);
		return 0;
	}
	raw_next_name(r, r->name, r->backend == DYNSHM_IMPL_POSIX);
	if (r->backend == DYNSHM_IMPL_POSIX)
		fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);
	else
		fd = openat(raw_dirfd, r->name,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	if (fd < 0)
		return -errno;
	r->obj = raw_track(r->backend, r->name, -1);
	return raw_fd_make(fd, r->size);
}

/* ---- dynshm operations --------------------------------------------------- */

int dynshm_create_destroy(void *arg)
{
	struct dynshm_ctx *d = arg;
	dynshm_segment *seg;
	int rc = dynshm_create(d->inst, d->size, d->flags, &seg);

	return rc < 0 ? rc : dynshm_detach(seg);
}

int dynshm_attach_detach(void *arg)
{
	struct dynshm_ctx *d = arg;
	dynshm_segment *seg;
	int rc = dynshm_attach(d->inst, d->target, &seg);

	return rc < 0 ? rc : dynshm_detach(seg);
}

/* A segment kept alive by a pin alone (not mapped here). */
int dynshm_make_pinned_flags(dynshm_instance *inst, size_t size,
				 unsigned flags, dynshm_handle *out)
{
	dynshm_segment *seg;
	int rc = dynshm_create(inst, size, flags, &seg);

	if (rc < 0)
		return rc;
	*out = dynshm_segment_handle(seg);
	rc = dynshm_pin_segment(seg);
	dynshm_detach(seg);
	return rc;
}

int dynshm_make_pinned(dynshm_instance *inst, size_t size, dynshm_handle *out)
{
	return dynshm_make_pinned_flags(inst, size, 0, out);
}

int open_raw_dir(void)
{
	snprintf(raw_dir, sizeof(raw_dir), "%s/dsm-bench-raw.XXXXXX",
		 opt.tmpdir);
	if (!mkdtemp(raw_dir)) {
		raw_dir[0] = '\0';
		return fail(-errno, "mkdtemp in %s", opt.tmpdir);
	}
	raw_dirfd = open(raw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return raw_dirfd < 0 ? fail(-errno, "open %s", raw_dir) : 0;
}

/* ---- the control lock's counters ------------------------------------------ */

int lock_counts_read(dynshm_instance *inst, struct lock_counts *out)
{
	dynshm_instance_info info;
	int rc = dynshm_instance_info_get(inst, &info, sizeof(info));

	if (rc < 0)
		return rc;
	/* DYNSHM_INFO_HAS(&info, lock_wait_ns), in terms cppcheck follows */
	if (info.struct_size < offsetof(dynshm_instance_info, lock_wait_ns) +
				       sizeof(info.lock_wait_ns))
		return -ENOSYS; /* a library older than these headers */
	out->acquisitions = info.lock_acquisitions;
	out->waits = info.lock_waits;
	out->wait_ns = info.lock_wait_ns;
	return 0;
}

struct lock_counts lock_counts_since(const struct lock_counts *first,
				     const struct lock_counts *then)
{
	struct lock_counts d = {
		.acquisitions = then->acquisitions - first->acquisitions,
		.waits = then->waits - first->waits,
		.wait_ns = then->wait_ns - first->wait_ns,
	};

	if (d.acquisitions > 0)
		d.acquisitions--; /* the second read's own */
	return d;
}
