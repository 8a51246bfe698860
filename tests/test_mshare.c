/* SPDX-License-Identifier: MIT */
/*
 * test_mshare.c - msharefs placement (src/mshare.c, src/placement.c)
 * against a fake msharefs, and the real fallback on this kernel.
 *
 * The kernel here has no msharefs, so the v3 behaviour documented in the
 * patch texts (docs/mshare.md) is emulated through the system-call table:
 * a directory of the test stands for the mount (statfs reports
 * MSHARE_MAGIC, mshare_info is a real file), and files created in it are
 * regions: ftruncate sets the size once, to a multiple of the alignment;
 * mmap of the region reserves address space; MSHAREFS_CREATE_MAPPING maps
 * the object into every mapping of the region in this process (what shared
 * page tables make visible) and keeps a reference to it, as the host mm
 * does; MSHAREFS_UNMAP puts the reservation back.  Knobs make it an older
 * ABI (v1: CREATE_MAPPING unknown, UNMAP's number is SET_SIZE; v2: no
 * fd-backed objects), report another file system, or fail one step.
 *
 * Every test checks that what failed left nothing: descriptors (counted in
 * /proc/self/fd), region mappings, region files, /dev/shm objects.
 */
#include "inject.h"
#include "testutil.h"

#include "src/mshare.h"
#include "src/sys.h"

#include <build_config.h>
#include <dynshm/dsm.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern int dynshm_test_instance_tag;
extern void (*dynshm_test_hook)(const char *point);

#define ASSERT_OK(expr)                                                        \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ != 0)                                                  \
			fail_msg("%s = %d (%s)", #expr, rc_,                   \
				 dynshm_last_error());                            \
	} while (0)

#define ALIGN (2u << 20) /* the fake's mshare_info */

/* ---- the fake msharefs ---------------------------------------------------- */

enum fake_step { STEP_NONE, STEP_OPEN, STEP_FTRUNCATE, STEP_MMAP,
		 STEP_CREATE, STEP_UNMAP };

#define MAXR 4
#define MAXMAP 4
#define MAXPLACED 16

struct placed {
	uint64_t off, size, offset;
	int prot, fd; /* a duplicate: the host mm's reference */
};

struct fregion {
	bool used, sized;
	char path[PATH_MAX];
	uint64_t size;
	void *maps[MAXMAP];
	int nfds;
	struct placed placed[MAXPLACED];
};

static struct {
	char mount[PATH_MAX];
	int abi;	/* 3, 2 or 1 */
	uint32_t magic; /* what statfs reports for the mount */
	bool owner_gone;
	enum fake_step fail_step;
	int fail_err;
	unsigned creates, unmaps, v1_set_size;
	struct fregion r[MAXR];
	int fd_region[1024]; /* region index + 1 */
} fake;

#if DYNSHM_HAVE_MSHARE
static struct dynshm_sys real;

static struct fregion *region_of(int fd)
{
	if (fd < 0 || fd >= 1024 || !fake.fd_region[fd])
		return NULL;
	return &fake.r[fake.fd_region[fd] - 1];
}

static bool failing(enum fake_step step)
{
	if (fake.fail_step != step)
		return false;
	errno = fake.fail_err;
	return true;
}

static void drop_placed(struct placed *p)
{
	real.close(p->fd);
	memset(p, 0, sizeof(*p));
}

static int map_placed(void *base, const struct placed *p)
{
	void *at = (char *)base + p->off;

	return real.mmap(at, p->size, p->prot, MAP_SHARED | MAP_FIXED, p->fd,
			 (off_t)p->offset) == at
		       ? 0
		       : -1;
}

static int fake_statfs(const char *path, struct statfs *st)
{
	if (strcmp(path, fake.mount) != 0)
		return real.statfs(path, st);
	memset(st, 0, sizeof(*st));
	st->f_type = fake.magic;
	return 0;
}

static int fake_open(const char *path, int flags, mode_t mode)
{
	size_t n = strlen(fake.mount);
	struct fregion *r = NULL;
	int fd;

	if (strncmp(path, fake.mount, n) != 0 || path[n] != '/' ||
	    strcmp(path + n + 1, "mshare_info") == 0)
		return real.open(path, flags, mode);
	if (failing(STEP_OPEN))
		return -1;
	fd = real.open(path, flags, mode);
	if (fd < 0)
		return fd;
	for (int i = 0; i < MAXR && !r; i++)
		if (fake.r[i].used && strcmp(fake.r[i].path, path) == 0)
			r = &fake.r[i];
	for (int i = 0; i < MAXR && !r; i++)
		if (!fake.r[i].used) {
			r = &fake.r[i];
			memset(r, 0, sizeof(*r));
			r->used = true;
			snprintf(r->path, sizeof(r->path), "%s", path);
		}
	assert_non_null(r);
	r->nfds++;
	fake.fd_region[fd] = (int)(r - fake.r) + 1;
	return fd;
}

static int fake_ftruncate(int fd, off_t len)
{
	struct fregion *r = region_of(fd);

	if (!r)
		return real.ftruncate(fd, len);
	if (failing(STEP_FTRUNCATE))
		return -1;
	if (fake.abi == 1) /* a plain setattr: no region size set */
		return 0;
	/* v3 05/22: once, and a multiple of the alignment. */
	if (r->sized || len <= 0 || (uint64_t)len % ALIGN) {
		errno = EINVAL;
		return -1;
	}
	r->size = (uint64_t)len;
	r->sized = true;
	return 0;
}

static int fake_fstat(int fd, struct stat *st)
{
	struct fregion *r = region_of(fd);
	int rc = real.fstat(fd, st);

	if (rc == 0 && r)
		st->st_size = (off_t)r->size;
	return rc;
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	struct fregion *r = region_of(fd);
	int fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	char *p;
	int slot = -1;

	if (!r)
		return real.mmap(addr, len, prot, flags, fd, off);
	if (failing(STEP_MMAP))
		return MAP_FAILED;
	/* v3 07/22 and 17/22: shared, whole, aligned, sized, owner alive. */
	if (!r->sized || fake.owner_gone || (flags & MAP_TYPE) != MAP_SHARED ||
	    len != r->size || off != 0 ||
	    (fixed && (uintptr_t)addr % ALIGN)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	for (int i = 0; i < MAXMAP && slot < 0; i++)
		if (!r->maps[i])
			slot = i;
	assert_true(slot >= 0);
	if (fixed) {
		p = real.mmap(addr, len, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed,
			      -1, 0);
		if (p == MAP_FAILED)
			return MAP_FAILED;
	} else {
		char *raw = real.mmap(NULL, len + ALIGN, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS |
					      MAP_NORESERVE,
				      -1, 0);
		size_t lead;

		if (raw == MAP_FAILED)
			return MAP_FAILED;
		lead = (ALIGN - (uintptr_t)raw % ALIGN) % ALIGN;
		if (lead)
			real.munmap(raw, lead);
		real.munmap(raw + lead + len, ALIGN - lead);
		p = raw + lead;
	}
	for (int i = 0; i < MAXPLACED; i++)
		if (r->placed[i].size)
			assert_int_equal(map_placed(p, &r->placed[i]), 0);
	r->maps[slot] = p;
	return p;
}

static int fake_munmap(void *addr, size_t len)
{
	for (int i = 0; i < MAXR; i++)
		for (int m = 0; m < MAXMAP; m++)
			if (fake.r[i].used && fake.r[i].maps[m] == addr)
				fake.r[i].maps[m] = NULL;
	return real.munmap(addr, len);
}

static int fake_create(struct fregion *r, const struct mshare_create_arg *c)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct placed *p = NULL;

	if (failing(STEP_CREATE))
		return -1;
	/* v3 18/22 and 20/22, in their order. */
	errno = EINVAL;
	if (c->region_offset >= r->size)
		return -1;
	if ((c->flags & (MAP_SHARED | MAP_FIXED)) != (MAP_SHARED | MAP_FIXED))
		return -1;
	if (!(c->flags & MAP_ANONYMOUS)) {
		if (fake.abi == 2) /* v2: fd must be -1 */
			return -1;
		if (fcntl((int)c->fd, F_GETFD) < 0) {
			errno = EBADF;
			return -1;
		}
	}
	if (c->region_offset + c->size > r->size || c->size == 0 ||
	    c->region_offset % page || c->offset % page)
		return -1;
	for (int i = 0; i < MAXPLACED && !p; i++)
		if (!r->placed[i].size)
			p = &r->placed[i];
	assert_non_null(p);
	p->off = c->region_offset;
	p->size = c->size;
	p->offset = c->offset;
	p->prot = (int)c->prot;
	p->fd = fcntl((int)c->fd, F_DUPFD_CLOEXEC, 0);
	for (int m = 0; m < MAXMAP; m++)
		if (r->maps[m])
			assert_int_equal(map_placed(r->maps[m], p), 0);
	fake.creates++;
	return 0;
}

static int fake_unmap(struct fregion *r, const struct mshare_unmap_arg *u)
{
	if (failing(STEP_UNMAP))
		return -1;
	/* v3 19/22 */
	if (u->size > r->size || u->region_offset >= r->size ||
	    u->region_offset + u->size > r->size) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < MAXPLACED; i++) {
		struct placed *p = &r->placed[i];

		if (p->size && p->off >= u->region_offset &&
		    p->off + p->size <= u->region_offset + u->size)
			drop_placed(p);
	}
	for (int m = 0; m < MAXMAP; m++)
		if (r->maps[m])
			real.mmap((char *)r->maps[m] + u->region_offset, u->size,
				  PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
					  MAP_FIXED,
				  -1, 0);
	fake.unmaps++;
	return 0;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct fregion *r = region_of(fd);

	if (!r)
		return real.ioctl(fd, req, arg);
	if (fake.abi == 1) {
		if (req == MSHAREFS_V1_SET_SIZE) { /* what UNMAP would do */
			fake.v1_set_size++;
			return 0;
		}
		errno = ENOTTY;
		return -1;
	}
	if (!r->sized) { /* v3 18/22: before any command */
		errno = EINVAL;
		return -1;
	}
	if (req == MSHAREFS_CREATE_MAPPING)
		return fake_create(r, arg);
	if (req == MSHAREFS_UNMAP)
		return fake_unmap(r, arg);
	errno = ENOTTY;
	return -1;
}

static int fake_close(int fd)
{
	struct fregion *r = region_of(fd);

	if (r) {
		fake.fd_region[fd] = 0;
		if (--r->nfds == 0) {
			bool mapped = false;

			for (int m = 0; m < MAXMAP; m++)
				mapped |= r->maps[m] != NULL;
			/* Evicted: the host mm drops what it holds. */
			if (!mapped)
				for (int i = 0; i < MAXPLACED; i++)
					if (r->placed[i].size)
						drop_placed(&r->placed[i]);
			if (!mapped)
				r->used = false;
		}
	}
	return real.close(fd);
}

static void fake_install(int abi)
{
	fake.abi = abi;
	fake.magic = MSHARE_MAGIC;
	fake.fail_step = STEP_NONE;
	fake.owner_gone = false;
	real = dynshm_sys;
	dynshm_sys.statfs = fake_statfs;
	dynshm_sys.open = fake_open;
	dynshm_sys.ftruncate = fake_ftruncate;
	dynshm_sys.fstat = fake_fstat;
	dynshm_sys.mmap = fake_mmap;
	dynshm_sys.munmap = fake_munmap;
	dynshm_sys.ioctl = fake_ioctl;
	dynshm_sys.close = fake_close;
}

static int fake_mappings(void)
{
	int n = 0;

	for (int i = 0; i < MAXR; i++)
		for (int m = 0; fake.r[i].used && m < MAXMAP; m++)
			n += fake.r[i].maps[m] != NULL;
	return n;
}

/* Region files in the fake mount (everything but mshare_info). */
static int region_files(void)
{
	DIR *d = opendir(fake.mount);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && strcmp(e->d_name, "mshare_info"))
			n++;
	closedir(d);
	return n;
}
#endif /* DYNSHM_HAVE_MSHARE */

/* ---- fixture ---------------------------------------------------------------- */

struct fixture {
	char *dir;
	char inst[PATH_MAX];
	int fds;
	int leftovers; /* before: another run's, not ours to judge */
};

static int setup(void **state)
{
	static struct fixture f;
	char path[PATH_MAX + 32];
	FILE *info;

	memset(&fake, 0, sizeof(fake));
	f.dir = test_make_dir();
	if (!f.dir)
		return -1;
	snprintf(f.inst, sizeof(f.inst), "%s/inst", f.dir);
	snprintf(fake.mount, sizeof(fake.mount), "%s/mshare", f.dir);
	if (mkdir(fake.mount, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mshare_info", fake.mount);
	info = fopen(path, "w");
	if (!info)
		return -1;
	fprintf(info, "%u\n", ALIGN);
	fclose(info);
	f.fds = test_count_fds();
	f.leftovers = test_count_leftovers(NULL, 0) - 1; /* our dir */
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char report[1024];
	int n, fds;

	inject_reset(); /* also takes the fake away */
	fds = test_count_fds();
	test_remove_dir(f->dir);
	n = test_count_leftovers(report, sizeof(report));
	if (n != f->leftovers || fds != f->fds) {
		fprintf(stderr, "teardown: %d leftovers, fds %d -> %d\n%s", n,
			f->fds, fds, report);
		return -1;
	}
	return 0;
}

static dynshm_config *config(const char *mode, const char *mount)
{
	dynshm_config *cfg = NULL;

	assert_int_equal(dynshm_config_new(&cfg), 0);
	ASSERT_OK(dynshm_config_set(cfg, "max_segments", "8"));
	ASSERT_OK(dynshm_config_set(cfg, "max_processes", "4"));
	ASSERT_OK(dynshm_config_set(cfg, "mshare", mode));
	if (mount)
		ASSERT_OK(dynshm_config_set(cfg, "mshare_path", mount));
	return cfg;
}

static dynshm_instance *open_inst(const struct fixture *f, const char *mode,
			       unsigned flags, dynshm_instance_info *info)
{
	dynshm_config *cfg = config(mode, fake.mount);
	dynshm_instance *inst = NULL;

	ASSERT_OK(dynshm_instance_open(f->inst, cfg, flags, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_info_get(inst, info, sizeof(*info)));
	return inst;
}

/* Remove the instance with the real table, whatever the test did. */
static void destroy_inst(const struct fixture *f)
{
	dynshm_config *cfg = config("off", NULL);
	dynshm_instance *inst = NULL;

	inject_reset();
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, 0, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_destroy(inst));
}

#define ASSERT_STATUS(info, text)                                              \
	do {                                                                   \
		if (!strstr((info)->mshare_status, (text)))                    \
			fail_msg("mshare status '%s' lacks '%s'",              \
				 (info)->mshare_status, (text));               \
	} while (0)

#if DYNSHM_HAVE_MSHARE
/* With the fake installed: try falls back, giving text as the reason. */
static void expect_fallback(struct fixture *f, unsigned flags,
			    const char *text)
{
	dynshm_instance_info info;
	dynshm_instance *inst;

	inst = open_inst(f, "try", flags, &info);
	assert_int_equal(info.mshare_active, 0);
	assert_int_equal(info.mshare_region_size, 0);
	ASSERT_STATUS(&info, text);
	ASSERT_OK(dynshm_instance_close(inst));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
	assert_int_equal(test_count_fds(), f->fds);
}

/* ... and on fails with err and the same reason; then clean up. */
static void expect_refusal(struct fixture *f, unsigned flags, int err,
			   const char *text)
{
	dynshm_instance *inst;
	dynshm_config *cfg;
	int rc;

	expect_fallback(f, flags, text);
	cfg = config("on", fake.mount);
	rc = dynshm_instance_open(f->inst, cfg, flags | DYNSHM_OPEN_RESET, &inst);
	dynshm_config_free(cfg);
	assert_int_equal(rc, -err);
	if (!strstr(dynshm_last_error(), "mshare = on") ||
	    !strstr(dynshm_last_error(), text))
		fail_msg("message '%s'", dynshm_last_error());
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
	assert_int_equal(test_count_fds(), f->fds);
	destroy_inst(f);
}
#endif

/* ---- tests ------------------------------------------------------------------- */

/* The real kernel here has no msharefs: try falls back, on fails. */
static void test_real_kernel_fallback(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst = NULL;
	dynshm_config *cfg;
	struct statfs st;
	int rc;

	if (statfs(MSHARE_DEFAULT_PATH, &st) == 0 && st.f_type == MSHARE_MAGIC)
		skip(); /* a kernel with msharefs: nothing to fall back from */
	cfg = config("try", NULL);
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst));
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.mshare_active, 0);
	assert_int_equal(info.mshare_region_size, 0);
#if DYNSHM_HAVE_MSHARE
	ASSERT_STATUS(&info, "msharefs not mounted at /sys/fs/mshare");
#else
	ASSERT_STATUS(&info, "built without mshare support");
#endif
	{ /* and segments work as ever */
		dynshm_segment *seg = NULL;

		ASSERT_OK(dynshm_create(inst, 4096, 0, &seg));
		memset(dynshm_segment_address(seg), 1, 4096);
		ASSERT_OK(dynshm_detach(seg));
	}
	ASSERT_OK(dynshm_instance_close(inst));
	dynshm_config_free(cfg);

	cfg = config("on", NULL);
	rc = dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET,
			       &inst);
	dynshm_config_free(cfg);
	assert_true(rc < 0);
	if (!strstr(dynshm_last_error(), "mshare = on, but"))
		fail_msg("message '%s'", dynshm_last_error());
	assert_int_equal(test_count_fds(), f->fds);
	destroy_inst(f);
}

static void test_config_keys(void **state)
{
	dynshm_config *cfg = NULL;
	char buf[PATH_MAX];

	(void)state;
	ASSERT_OK(dynshm_config_new(&cfg));
	ASSERT_OK(dynshm_config_get(cfg, "mshare", buf, sizeof(buf)));
	assert_string_equal(buf, "try");
	ASSERT_OK(dynshm_config_get(cfg, "mshare_path", buf, sizeof(buf)));
	assert_string_equal(buf, "/sys/fs/mshare");
	assert_int_equal(dynshm_config_set(cfg, "mshare", "maybe"), -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "off, try, on"));
	assert_int_equal(dynshm_config_set(cfg, "mshare_path", "rel/ative"),
			 -EINVAL);
	assert_non_null(strstr(dynshm_last_error(), "mshare_path"));
	ASSERT_OK(dynshm_config_set(cfg, "mshare", "on"));
	ASSERT_OK(dynshm_config_get(cfg, "mshare", buf, sizeof(buf)));
	assert_string_equal(buf, "on");
	dynshm_config_free(cfg);
}

/* mshare = off asks the system nothing. */
static void test_off(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;

	inject_fail("statfs", 0, 0); /* count only */
	inst = open_inst(f, "off", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(inject_calls("statfs"), 0);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "mshare = off");
	ASSERT_OK(dynshm_instance_destroy(inst));
}

#if DYNSHM_HAVE_MSHARE

/* The whole v3 sequence: create, place, attach elsewhere, remove. */
static void test_v3_sequence(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info, info2;
	dynshm_instance *a, *b;
	dynshm_segment *seg = NULL, *seg2 = NULL;
	uint64_t slot;
	char *addr;

	fake_install(3);
	a = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(info.mshare_same_address, 1);
	assert_int_equal(info.mshare_window, 1ull << 30);
	/* 8 slots + the probe's window, rounded up to the alignment */
	assert_int_equal(info.mshare_region_size, 9ull << 30);
	assert_int_equal(info.mshare_region_size % ALIGN, 0);
	assert_int_equal(region_files(), 1);
	/* the probe: one CREATE_MAPPING, then one UNMAP */
	assert_int_equal(fake.creates, 1);
	assert_int_equal(fake.unmaps, 1);

	ASSERT_OK(dynshm_create(a, 10000, 0, &seg));
	assert_int_equal(fake.creates, 2);
	addr = dynshm_segment_address(seg);
	slot = dynshm_segment_handle(seg) & 0xffffff;
	assert_int_equal(dynshm_segment_size(seg), 10000);
	memcpy(addr, "placed", 7);

	/* A second view (as another process would): no mapping made. */
	b = open_inst(f, "try", 0, &info2);
	assert_int_equal(info2.mshare_active, 1);
	/* same process: the creator's range is taken, so elsewhere */
	assert_int_equal(info2.mshare_same_address, 0);
	ASSERT_STATUS(&info2, "not at the creator's");
	inject_fail("mmap", 0, 0);
	inject_fail("shm_open", 0, 0);
	ASSERT_OK(dynshm_attach(b, dynshm_segment_handle(seg), &seg2));
	assert_int_equal(inject_calls("mmap"), 0);
	assert_int_equal(inject_calls("shm_open"), 0);
	inject_reset();
	fake_install(3);
	assert_string_equal(dynshm_segment_address(seg2), "placed");
	assert_int_equal((char *)dynshm_segment_address(seg2) -
				 (char *)dynshm_segment_address(seg),
			 (char *)fake.r[0].maps[1] - (char *)fake.r[0].maps[0]);
	assert_int_equal(((char *)dynshm_segment_address(seg2) -
			  (char *)fake.r[0].maps[1]),
			 slot << 30);
	ASSERT_OK(dynshm_detach(seg2));
	ASSERT_OK(dynshm_instance_close(b));

	/* the last detach destroys it: UNMAP of its window */
	ASSERT_OK(dynshm_detach(seg));
	assert_int_equal(fake.unmaps, 2);
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

/* A v1 kernel: CREATE_MAPPING unknown; UNMAP (its SET_SIZE) never sent. */
static void test_old_abi_v1(void **state)
{
	fake_install(1);
	expect_refusal(*state, DYNSHM_OPEN_SUPERVISOR, EPROTO,
		       "not the v3 ABI");
	assert_int_equal(fake.v1_set_size, 0);
}

static void test_v2_no_fd_objects(void **state)
{
	fake_install(2);
	expect_refusal(*state, DYNSHM_OPEN_SUPERVISOR, EPROTO,
		       "anonymous memory only");
}

static void test_not_msharefs(void **state)
{
	struct fixture *f = *state;

	fake_install(3);
	fake.magic = 0x01021994; /* tmpfs */
	expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, ENODEV,
		       "msharefs not mounted at");
}

static void test_bad_mshare_info(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 32];
	FILE *info;

	snprintf(path, sizeof(path), "%s/mshare_info", fake.mount);
	info = fopen(path, "w");
	assert_non_null(info);
	fputs("3000\n", info); /* not a power of two */
	fclose(info);
	fake_install(3);
	expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, EPROTO, "not an alignment");
}

static void test_no_supervisor(void **state)
{
	fake_install(3);
	expect_refusal(*state, 0, EINVAL, "DYNSHM_OPEN_SUPERVISOR");
}

static void test_sysv_has_no_fd(void **state)
{
	struct fixture *f = *state;
	dynshm_config *cfg = config("try", fake.mount);
	dynshm_instance_info info;
	dynshm_instance *inst = NULL;

	fake_install(3);
	ASSERT_OK(dynshm_config_set(cfg, "dynamic_shared_memory_type", "sysv"));
	ASSERT_OK(dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst));
	dynshm_config_free(cfg);
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "no file descriptor");
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

/* A supervisor arriving at a populated instance must reset it. */
static void test_supervisor_late(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *a, *b;

	fake_install(3);
	a = open_inst(f, "off", 0, &info);
	b = open_inst(f, "try", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "already has other processes or segments");
	ASSERT_OK(dynshm_instance_close(b));
	ASSERT_OK(dynshm_instance_destroy(a));
	assert_int_equal(region_files(), 0);
}

static int open_and_die(void *arg)
{
	const struct fixture *f = arg;
	dynshm_config *cfg = config("off", NULL);
	dynshm_instance *inst = NULL;

	if (dynshm_instance_open(f->inst, cfg, 0, &inst) != 0)
		return 1;
	raise(SIGKILL);
	return 1;
}

/* Only the dead were there: a supervisor may still make the region. */
static void test_supervisor_after_the_dead(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;

	assert_int_equal(test_fork(open_and_die, f), 128 + SIGKILL);
	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(info.mshare_active, 1);
	assert_int_equal(info.processes, 1);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

/* Each step of region creation failing: fall back, leave nothing. */
static void test_failures_back_out(void **state)
{
	static const struct {
		enum fake_step step;
		int err;
		const char *text;
	} steps[] = {
		{ STEP_OPEN, EACCES, "cannot create msharefs region" },
		{ STEP_FTRUNCATE, EINVAL, "cannot size msharefs region" },
		{ STEP_CREATE, ENOMEM, "probe" },
		{ STEP_UNMAP, EIO, "not UNMAP" },
		{ STEP_MMAP, ENOMEM, "cannot map msharefs region" },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fake_install(3);
		fake.fail_step = steps[i].step;
		fake.fail_err = steps[i].err;
		expect_refusal(f, DYNSHM_OPEN_SUPERVISOR, steps[i].err,
			       steps[i].text);
	}
	/* The probe object (the 2nd shm_open, after the control segment's). */
	fake_install(3);
	inject_fail("shm_open", 2, EMFILE);
	expect_fallback(f, DYNSHM_OPEN_SUPERVISOR, "probe object");
	destroy_inst(f);
	/* The record (the 3rd rename, after the pending and state files'). */
	fake_install(3);
	inject_fail("renameat", 3, EIO);
	expect_fallback(f, DYNSHM_OPEN_SUPERVISOR, "/mshare'");
	destroy_inst(f);
}

/* The module itself: argument checks of CREATE_MAPPING and UNMAP. */
static void test_place_arguments(void **state)
{
	struct mshare_region r = MSHARE_REGION_INIT;
	char probe[64];
	int fd;

	(void)state;
	fake_install(3);
	snprintf(probe, sizeof(probe), "/dynshm.%016llx.mshare-probe",
		 (unsigned long long)test_instance_id());
	ASSERT_OK(mshare_region_create(fake.mount, "args", 3 * ALIGN - 1,
				       probe, &r));
	assert_int_equal(r.size, 3 * ALIGN);
	assert_int_equal(r.align, ALIGN);
	fd = memfd_create("obj", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	/* beyond the region, unaligned offset, bad descriptor */
	assert_int_equal(mshare_place(&r, 3 * ALIGN, fd, 4096), -EINVAL);
	assert_int_equal(mshare_place(&r, 3 * ALIGN - 4096, fd, 8192),
			 -EINVAL);
	assert_int_equal(mshare_place(&r, 100, fd, 4096), -EINVAL);
	assert_int_equal(mshare_place(&r, 0, 1000, 4096), -EBADF);
	assert_non_null(strstr(dynshm_last_error(), "cannot place"));
	ASSERT_OK(mshare_place(&r, ALIGN, fd, 5000)); /* rounded to pages */
	assert_int_equal(r.fd >= 0, 1);
	memcpy((char *)r.base + ALIGN, "x", 2);
	{
		char back[2];

		assert_int_equal(pread(fd, back, 2, 0), 2);
		assert_string_equal(back, "x");
	}
	assert_int_equal(mshare_unplace(&r, 0, 4 * ALIGN), -EINVAL);
	assert_int_equal(mshare_unplace(&r, 3 * ALIGN, 4096), -EINVAL);
	ASSERT_OK(mshare_unplace(&r, ALIGN, ALIGN));
	/* a second size is refused (set once) */
	assert_int_equal(dynshm_sys.ftruncate(r.fd, 4 * ALIGN), -1);
	close(fd);
	mshare_region_close(&r);
	ASSERT_OK(mshare_region_unlink(r.path));
	assert_int_equal(mshare_region_unlink(r.path), -ENOENT);
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

static int supervisor_child(void *arg)
{
	const struct fixture *f = arg;
	dynshm_config *cfg = config("on", fake.mount);
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;

	fake_install(3);
	if (dynshm_instance_open(f->inst, cfg, DYNSHM_OPEN_SUPERVISOR, &inst) != 0 ||
	    dynshm_instance_info_get(inst, &info,
				     sizeof(info)) != 0 || !info.mshare_active)
		return 1;
	dynshm_config_free(cfg);
	return 0; /* exits: the region dies with it */
}

/* The owner exited: try says so, on fails, reset recovers. */
static void test_owner_gone(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_config *cfg;

	assert_int_equal(test_fork(supervisor_child, f), 0);
	assert_int_equal(region_files(), 1);
	fake_install(3);
	fake.owner_gone = true;
	inst = open_inst(f, "try", 0, &info);
	assert_int_equal(info.mshare_active, 0);
	ASSERT_STATUS(&info, "died with its owner");
	{ /* a segment that belongs in the region is refused clearly */
		dynshm_segment *seg = NULL;

		assert_int_equal(dynshm_create(inst, 4096, 0, &seg), -ESRCH);
		assert_non_null(strstr(dynshm_last_error(), "msharefs region"));
	}
	ASSERT_OK(dynshm_instance_close(inst));
	cfg = config("on", fake.mount);
	assert_int_equal(dynshm_instance_open(f->inst, cfg, 0, &inst), -ESRCH);
	dynshm_config_free(cfg);
	/* a supervisor resetting it gets a fresh region */
	fake.owner_gone = false;
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET, &info);
	assert_int_equal(info.mshare_active, 1);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
	assert_int_equal(fake_mappings(), 0);
}

static void kill_at_referenced(const char *point)
{
	if (strcmp(point, "create:referenced") == 0)
		raise(SIGKILL);
}

static int create_and_die(void *arg)
{
	dynshm_segment *seg = NULL;

	dynshm_test_hook = kill_at_referenced;
	dynshm_create(arg, 4096, 0, &seg); /* placed, then killed */
	return 1;
}

/* A creator killed after placing: the reaper removes the placement. */
static void test_kill9_after_place(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	unsigned reaped = 0;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(fake.unmaps, 1); /* the probe's */
	assert_int_equal(test_fork(create_and_die, inst), 128 + SIGKILL);
	/* It died holding the control lock: the next locker repairs, reaps. */
	ASSERT_OK(dynshm_reap(inst, &reaped));
	assert_int_equal(fake.unmaps, 2); /* its window */
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.segments, 0);
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

static int create_then_die(void *arg)
{
	dynshm_segment *seg = NULL;

	if (dynshm_create(arg, 4096, 0, &seg) != 0) /* placed */
		return 1;
	raise(SIGKILL);
	return 1;
}

/*
 * A creator killed holding a placed segment, found dead by another open
 * (the reap at join): its window is unmapped like in any other reap.
 */
static void test_reaped_at_open(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst, *other;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(fake.unmaps, 1); /* the probe's */
	assert_int_equal(test_fork(create_then_die, inst), 128 + SIGKILL);
	other = open_inst(f, "on", 0, &info);
	assert_int_equal(info.segments, 0); /* the open reaped it */
	assert_int_equal(fake.unmaps, 2);   /* and its window */
	ASSERT_OK(dynshm_instance_close(other));
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(region_files(), 0);
}

static int placed_init_fails(dynshm_segment *seg, void *arg)
{
	*(dynshm_handle *)arg = dynshm_segment_handle(seg);
	strcpy(dynshm_segment_address(seg), "half made");
	return -EIO;
}

/* A named segment whose init fails after placing: unplaced and removed. */
static void test_placed_init_fails(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_segment *seg = NULL;
	dynshm_handle h = 0;

	fake_install(3);
	inst = open_inst(f, "on", DYNSHM_OPEN_SUPERVISOR, &info);
	assert_int_equal(dynshm_get_named(inst, "placed", 4096, 0,
				       placed_init_fails, &h, &seg, NULL),
			 -EIO);
	assert_int_equal(fake.creates, 2); /* the probe's and its own */
	assert_int_equal(fake.unmaps, 2);
	ASSERT_OK(dynshm_instance_info_get(inst, &info, sizeof(info)));
	assert_int_equal(info.segments, 0);
	ASSERT_OK(dynshm_get_named(inst, "placed", 4096, 0, NULL, NULL, &seg,
				NULL));
	assert_int_equal(((char *)dynshm_segment_address(seg))[0], 0);
	ASSERT_OK(dynshm_detach(seg));
	ASSERT_OK(dynshm_instance_destroy(inst));
	assert_int_equal(fake_mappings(), 0);
	assert_int_equal(region_files(), 0);
}

#else /* !DYNSHM_HAVE_MSHARE */

static void test_built_without(void **state)
{
	struct fixture *f = *state;
	dynshm_instance_info info;
	dynshm_instance *inst;
	dynshm_config *cfg;

	inst = open_inst(f, "try", DYNSHM_OPEN_SUPERVISOR, &info);
	ASSERT_STATUS(&info, "built without mshare support");
	ASSERT_OK(dynshm_instance_close(inst));
	cfg = config("on", fake.mount);
	assert_int_equal(dynshm_instance_open(f->inst, cfg,
					   DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET,
					   &inst),
			 -ENOTSUP);
	dynshm_config_free(cfg);
	destroy_inst(f);
}

#endif

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_real_kernel_fallback),
		T(test_config_keys),
		T(test_off),
#if DYNSHM_HAVE_MSHARE
		T(test_v3_sequence),
		T(test_old_abi_v1),
		T(test_v2_no_fd_objects),
		T(test_not_msharefs),
		T(test_bad_mshare_info),
		T(test_no_supervisor),
		T(test_sysv_has_no_fd),
		T(test_supervisor_late),
		T(test_supervisor_after_the_dead),
		T(test_failures_back_out),
		T(test_place_arguments),
		T(test_owner_gone),
		T(test_kill9_after_place),
		T(test_reaped_at_open),
		T(test_placed_init_fails),
#else
		T(test_built_without),
#endif
	};

	dynshm_test_instance_tag = TEST_TAG;
	return cmocka_run_group_tests_name("mshare", tests, NULL, NULL);
}
