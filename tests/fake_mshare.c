/* SPDX-License-Identifier: MIT */
/*
 * fake_mshare.c - the shared-state msharefs v3 emulation (see
 * fake_mshare.h for what it models and why; docs/mshare.md for the v3
 * facts each rule comes from).
 *
 * Locking: fake_mshare->lock guards all shared state; SIGURG is blocked
 * while it is held, so the sync handler never waits for its own thread.
 * Nobody waits for another process while holding it.
 */
#include "fake_mshare.h"

#include "src/mshare.h"
#include "src/sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fake_mshare *fake_mshare;

static struct dynshm_sys real;
static int fd_region[1024]; /* region index + 1, this process's fds */

struct lmap {
	uint64_t id, off, size;
};

struct lview {
	char *base; /* NULL: unused */
	uint64_t size;
	int region;
	struct lmap m[FAKE_MAPS];
};

#define MAXVIEWS 16
static struct lview views[MAXVIEWS];
static bool forking_helper, atfork_done;

/* ---- small helpers ---------------------------------------------------------- */

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

__attribute__((format(printf, 1, 2))) static void note_error(const char *fmt,
								...)
{
	struct fake_mshare *fm = fake_mshare;
	va_list ap;

	va_start(ap, fmt);
	if (fm->errors++ == 0)
		vsnprintf(fm->error, sizeof(fm->error), fmt, ap);
	va_end(ap);
}

static void lock_state(sigset_t *old)
{
	sigset_t urg;

	sigemptyset(&urg);
	sigaddset(&urg, SIGURG);
	pthread_sigmask(SIG_BLOCK, &urg, old);
	if (pthread_mutex_lock(&fake_mshare->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&fake_mshare->lock);
}

static void unlock_state(const sigset_t *old)
{
	pthread_mutex_unlock(&fake_mshare->lock);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Is /proc/<pid>[/task/<tid>]/stat gone, or a zombie's? */
static bool stat_dead(const char *path)
{
	char buf[256], *p;
	int fd;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

/*
 * Is pid gone (or a zombie, which will never sync again)?  A process whose
 * leader thread called pthread_exit shows its leader as a zombie while its
 * other threads run on (and sync): it is dead only when every thread is.
 */
static bool pid_dead(pid_t pid)
{
	char path[96];
	struct dirent *de;
	bool dead = true;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!stat_dead(path))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return true;
	while (dead && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat",
			 (int)pid, de->d_name);
		dead = stat_dead(path);
	}
	closedir(dir);
	return dead;
}

static struct fake_holder *holder(pid_t pid, int region, bool add)
{
	struct fake_mshare *fm = fake_mshare;

	for (int i = 0; i < FAKE_HOLDERS; i++)
		if (fm->h[i].pid == pid && fm->h[i].region == region)
			return &fm->h[i];
	if (!add)
		return NULL;
	for (int i = 0; i < FAKE_HOLDERS; i++)
		if (fm->h[i].pid == 0 || pid_dead(fm->h[i].pid)) {
			memset(&fm->h[i], 0, sizeof(fm->h[i]));
			fm->h[i].pid = pid;
			fm->h[i].region = region;
			fm->h[i].synced = fm->gen;
			return &fm->h[i];
		}
	note_error("holder table full");
	return NULL;
}

static void drop_map(struct fake_map *m)
{
	if (!m->id)
		return;
	if (!m->borrowed)
		unlink(m->link);
	else if (m->borrow_pid == getpid())
		real.close(m->borrow_fd);
	memset(m, 0, sizeof(*m));
}

static void drop_all(struct fake_region *r)
{
	for (int i = 0; i < FAKE_MAPS; i++)
		drop_map(&r->map[i]);
}

/*
 * A robust mutex sits in its owner thread's robust list, which runs through
 * the mutexes themselves: it must not be re-initialised or unmapped while
 * locked.  Let go of ours (EPERM when it is not ours: nothing done).
 */
static void release_owner(struct fake_region *r)
{
	if (r->owner_tid == gettid_() && r->owner_pid == getpid())
		pthread_mutex_unlock(&r->owner);
}

/* May slot r be made a new region?  Not while another live thread owns it. */
static bool reusable(struct fake_region *r)
{
	int rc;

	if (r->used)
		return false;
	if (!r->owner_tid)
		return true;
	release_owner(r);
	rc = pthread_mutex_trylock(&r->owner);
	if (rc == EBUSY)
		return false;
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(&r->owner);
	return true;
}

/* Under the lock: unlinked and held by no live process: evict it. */
static void maybe_evict(int ri)
{
	struct fake_mshare *fm = fake_mshare;
	struct fake_region *r = &fm->r[ri];

	if (!r->used || !r->unlinked)
		return;
	for (int i = 0; i < FAKE_HOLDERS; i++) {
		struct fake_holder *h = &fm->h[i];

		if (h->pid == 0 || h->region != ri)
			continue;
		if (h->nfds + h->nviews > 0 && !pid_dead(h->pid))
			return;
		memset(h, 0, sizeof(*h));
	}
	drop_all(r);
	release_owner(r);
	r->used = false;
	fm->evictions++;
}

/* ---- views ---------------------------------------------------------------- */

static void make_hole(char *at, uint64_t size)
{
	real.mmap(at, size, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

/* Under the lock: make view v show exactly what its region maps. */
static void sync_view(struct lview *v)
{
	struct fake_region *r = &fake_mshare->r[v->region];

	for (int i = 0; i < FAKE_MAPS; i++) {
		struct lmap *l = &v->m[i];
		bool keep = false;

		if (!l->id)
			continue;
		for (int k = 0; k < FAKE_MAPS && !keep && r->used && !r->dead; k++)
			keep = r->map[k].id == l->id;
		if (!keep) {
			make_hole(v->base + l->off, l->size);
			memset(l, 0, sizeof(*l));
		}
	}
	if (!r->used || r->dead)
		return;
	for (int k = 0; k < FAKE_MAPS; k++) {
		const struct fake_map *m = &r->map[k];
		struct lmap *free_l = NULL;
		bool have = false;
		int fd;

		if (!m->id)
			continue;
		for (int i = 0; i < FAKE_MAPS && !have; i++) {
			have = v->m[i].id == m->id;
			if (!v->m[i].id && !free_l)
				free_l = &v->m[i];
		}
		if (have || !free_l)
			continue;
		fd = open(m->link, O_RDWR | O_CLOEXEC);
		if (fd < 0 || real.mmap(v->base + m->off, m->size, m->prot,
					MAP_SHARED | MAP_FIXED, fd,
					(off_t)m->offset) == MAP_FAILED) {
			note_error("cannot map '%s' into a view (%llu, +%llu)",
				   m->link, (unsigned long long)m->off,
				   (unsigned long long)m->size);
			if (fd >= 0)
				close(fd);
			continue;
		}
		close(fd);
		*free_l = (struct lmap){ m->id, m->off, m->size };
	}
}

/* Under the lock: sync every view of this process, mark it synced. */
static void sync_mine(void)
{
	struct fake_mshare *fm = fake_mshare;

	for (int i = 0; i < MAXVIEWS; i++)
		if (views[i].base)
			sync_view(&views[i]);
	for (int i = 0; i < FAKE_HOLDERS; i++)
		if (fm->h[i].pid == getpid())
			fm->h[i].synced = fm->gen;
}

static void on_sigurg(int sig)
{
	int saved = errno;
	sigset_t old;

	(void)sig;
	if (fake_mshare) {
		lock_state(&old);
		sync_mine();
		unlock_state(&old);
	}
	errno = saved;
}

/*
 * Under the lock: a change to region ri.  Bumps the generation, syncs this
 * process's views and returns (in pids) the other processes with views.
 */
static int changed(int ri, pid_t *pids, int max)
{
	struct fake_mshare *fm = fake_mshare;
	int n = 0;

	fm->gen++;
	sync_mine();
	for (int i = 0; i < FAKE_HOLDERS && n < max; i++)
		if (fm->h[i].pid && fm->h[i].pid != getpid() &&
		    fm->h[i].region == ri && fm->h[i].nviews > 0)
			pids[n++] = fm->h[i].pid;
	return n;
}

/* Unlocked: tell them, and wait until each synced or died. */
static void tell(const pid_t *pids, int n)
{
	struct fake_mshare *fm = fake_mshare;
	uint64_t want = __atomic_load_n(&fm->gen, __ATOMIC_ACQUIRE);

	for (int i = 0; i < n; i++) {
		struct timespec ts = { 0, 200000 };
		long waited = 0;

		kill(pids[i], SIGURG);
		for (;;) {
			bool done = true;

			for (int k = 0; k < FAKE_HOLDERS; k++)
				if (__atomic_load_n(&fm->h[k].pid, __ATOMIC_ACQUIRE) ==
					    pids[i] &&
				    __atomic_load_n(&fm->h[k].synced,
						    __ATOMIC_ACQUIRE) < want)
					done = false;
			if (done || pid_dead(pids[i]))
				break;
			if (++waited % 5000 == 0) /* 1 s: ask again */
				kill(pids[i], SIGURG);
			if (waited > 100000) { /* 20 s: a bug, say so */
				sigset_t old;

				lock_state(&old);
				note_error("process %d never synced (gen %llu)",
					   (int)pids[i], (unsigned long long)want);
				unlock_state(&old);
				break;
			}
			nanosleep(&ts, NULL);
		}
	}
}

#define MAXTELL FAKE_HOLDERS

/* ---- the region's file and its descriptors -------------------------------- */

static int region_of_fd(int fd)
{
	return fd >= 0 && fd < 1024 ? fd_region[fd] - 1 : -1;
}

static bool in_mount(const char *path)
{
	size_t n = strlen(fake_mshare->mount);

	return strncmp(path, fake_mshare->mount, n) == 0 && path[n] == '/' &&
	       strcmp(path + n + 1, "mshare_info") != 0 &&
	       strncmp(path + n + 1, ".fake-mshare", 12) != 0;
}

static bool failing(enum fake_step step)
{
	if (fake_mshare->fail_step != (int)step)
		return false;
	errno = fake_mshare->fail_err;
	return true;
}

static int fake_statfs(const char *path, struct statfs *st)
{
	if (strcmp(path, fake_mshare->mount) != 0)
		return real.statfs(path, st);
	memset(st, 0, sizeof(*st));
	st->f_type = fake_mshare->magic;
	return 0;
}

static void owner_init(struct fake_region *r)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&r->owner, &a);
	pthread_mutexattr_destroy(&a);
}

static int fake_open(const char *path, int flags, mode_t mode)
{
	struct fake_mshare *fm = fake_mshare;
	struct stat st;
	sigset_t old;
	int fd, ri = -1;

	if (!in_mount(path))
		return real.open(path, flags, mode);
	if (failing(STEP_OPEN))
		return -1;
	fd = real.open(path, flags, mode);
	if (fd < 0)
		return fd;
	if (fd >= 1024 || real.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return fd; /* not a region: msharefs has only regions */
	lock_state(&old);
	for (int i = 0; i < FAKE_REGIONS && ri < 0; i++)
		if (fm->r[i].used && fm->r[i].ino == (uint64_t)st.st_ino &&
		    fm->r[i].dev == (uint64_t)st.st_dev)
			ri = i;
	for (int i = 0; i < FAKE_REGIONS && ri < 0; i++)
		if (reusable(&fm->r[i])) {
			struct fake_region *r = &fm->r[i];

			memset(r, 0, sizeof(*r));
			r->used = true;
			r->ino = (uint64_t)st.st_ino;
			r->dev = (uint64_t)st.st_dev;
			snprintf(r->path, sizeof(r->path), "%s", path);
			owner_init(r);
			/* v3 17/22: the creating task owns it */
			if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
				r->owner_pid = getpid();
				r->owner_tid = gettid_();
				pthread_mutex_lock(&r->owner);
			}
			ri = i;
		}
	if (ri >= 0) {
		struct fake_holder *h = holder(getpid(), ri, true);

		if (h)
			h->nfds++;
		fd_region[fd] = ri + 1;
	} else {
		note_error("region table full (%s)", path);
	}
	unlock_state(&old);
	return fd;
}

static int fake_close(int fd)
{
	int ri = region_of_fd(fd);
	sigset_t old;

	if (ri >= 0) {
		struct fake_holder *h;

		lock_state(&old);
		fd_region[fd] = 0;
		h = holder(getpid(), ri, false);
		if (h && h->nfds > 0)
			h->nfds--;
		maybe_evict(ri);
		unlock_state(&old);
	}
	return real.close(fd);
}

static int fake_unlinkat(int dirfd, const char *path, int flags)
{
	struct fake_mshare *fm = fake_mshare;
	struct stat st;
	sigset_t old;
	int rc;

	if (dirfd != AT_FDCWD || !in_mount(path) ||
	    real.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return real.unlinkat(dirfd, path, flags);
	rc = real.unlinkat(dirfd, path, flags);
	if (rc < 0)
		return rc;
	lock_state(&old);
	for (int i = 0; i < FAKE_REGIONS; i++)
		if (fm->r[i].used && fm->r[i].ino == (uint64_t)st.st_ino &&
		    fm->r[i].dev == (uint64_t)st.st_dev) {
			fm->r[i].unlinked = true;
			maybe_evict(i);
		}
	unlock_state(&old);
	return 0;
}

static int fake_ftruncate(int fd, off_t len)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), rc = 0;
	sigset_t old;

	if (ri < 0)
		return real.ftruncate(fd, len);
	if (failing(STEP_FTRUNCATE))
		return -1;
	if (fm->abi == 1) /* a plain setattr: no region size set */
		return 0;
	lock_state(&old);
	/* v3 05/22: once, and a multiple of the alignment. */
	if (fm->r[ri].sized || len <= 0 || (uint64_t)len % fm->align) {
		errno = EINVAL;
		rc = -1;
	} else {
		fm->r[ri].size = (uint64_t)len;
		fm->r[ri].sized = true;
	}
	unlock_state(&old);
	return rc;
}

static int fake_fstat(int fd, struct stat *st)
{
	int ri = region_of_fd(fd);
	int rc = real.fstat(fd, st);

	if (rc == 0 && ri >= 0)
		st->st_size = (off_t)fake_mshare->r[ri].size;
	return rc;
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	struct fake_region *r;
	struct fake_holder *h;
	struct lview *v = NULL;
	sigset_t old;
	char *p;

	(void)prot;
	if (ri < 0)
		return real.mmap(addr, len, prot, flags, fd, off);
	if (failing(STEP_MMAP))
		return MAP_FAILED;
	for (int i = 0; i < MAXVIEWS && !v; i++)
		if (!views[i].base)
			v = &views[i];
	if (!v) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	lock_state(&old);
	r = &fm->r[ri];
	/* v3 07/22 and 18/22: shared, whole, aligned, sized, owner alive. */
	if (!r->sized || r->dead || !r->owner_tid ||
	    (flags & MAP_TYPE) != MAP_SHARED || len != r->size || off != 0 ||
	    (fixed && (uintptr_t)addr % fm->align)) {
		unlock_state(&old);
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (fixed) {
		p = real.mmap(addr, len, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed,
			      -1, 0);
	} else {
		char *raw = real.mmap(NULL, len + fm->align, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS |
					      MAP_NORESERVE,
				      -1, 0);
		size_t lead;

		p = raw;
		if (raw != MAP_FAILED) {
			lead = (fm->align - (uintptr_t)raw % fm->align) % fm->align;
			if (lead)
				real.munmap(raw, lead);
			real.munmap(raw + lead + len, fm->align - lead);
			p = raw + lead;
		}
	}
	if (p == MAP_FAILED) {
		int err = errno;

		unlock_state(&old);
		errno = err;
		return MAP_FAILED;
	}
	memset(v, 0, sizeof(*v));
	v->base = p;
	v->size = len;
	v->region = ri;
	sync_view(v);
	h = holder(getpid(), ri, true);
	if (h) {
		h->nviews++;
		h->synced = fm->gen;
	}
	unlock_state(&old);
	return p;
}

static int fake_munmap(void *addr, size_t len)
{
	sigset_t old;

	for (int i = 0; fake_mshare && i < MAXVIEWS; i++)
		if (views[i].base == addr) {
			int ri = views[i].region;
			struct fake_holder *h;

			lock_state(&old);
			views[i].base = NULL;
			h = holder(getpid(), ri, false);
			if (h && h->nviews > 0)
				h->nviews--;
			real.munmap(addr, len);
			maybe_evict(ri);
			unlock_state(&old);
			return 0;
		}
	return real.munmap(addr, len);
}

/* ---- the ioctls ----------------------------------------------------------- */

/* Keep the object as the host mm would: a link, or this process's fd. */
static int hold_object(int fd, uint64_t id, struct fake_map *m)
{
	char self[64], target[FAKE_LINK - 64], *slash, *base;
	ssize_t n;

	/*
	 * thread-self, not self: in a process whose leader thread called
	 * pthread_exit (the kill storm has such workers), /proc/self/fd of
	 * the zombie leader is gone while the process lives on.
	 */
	snprintf(self, sizeof(self), "/proc/thread-self/fd/%d", fd);
	n = readlink(self, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = '\0';
	slash = strrchr(target, '/');
	if (target[0] == '/' && slash && !strstr(target, " (deleted)")) {
		/* in the mount if it can be (the object's directory stays
		 * removable, as the kernel's reference leaves it), else next
		 * to the object (another file system: /dev/shm) */
		int k = snprintf(m->link, sizeof(m->link),
				 "%.150s/.fake-mshare-obj-%llu",
				 fake_mshare->mount, (unsigned long long)id);

		if (k > 0 && (size_t)k < sizeof(m->link) &&
		    strlen(fake_mshare->mount) <= 150 &&
		    linkat(AT_FDCWD, self, AT_FDCWD, m->link,
			   AT_SYMLINK_FOLLOW) == 0)
			return 0;
		base = slash + 1;
		*slash = '\0';
		/* dynshm.<16 hex>. of the object's name, so leaks are seen */
		snprintf(m->link, sizeof(m->link), "%s/%.24sfake-mshare-%llu",
			 target[0] ? target : "", base, (unsigned long long)id);
		if (strncmp(base, "dynshm.", 7) != 0 || strlen(base) < 24)
			snprintf(m->link, sizeof(m->link),
				 "%s/.fake-mshare-%llu", target,
				 (unsigned long long)id);
		if (linkat(AT_FDCWD, self, AT_FDCWD, m->link,
			   AT_SYMLINK_FOLLOW) == 0)
			return 0;
	}
	m->borrowed = true;
	m->borrow_pid = getpid();
	m->borrow_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (m->borrow_fd < 0)
		return -1;
	snprintf(m->link, sizeof(m->link), "/proc/%d/fd/%d", (int)getpid(),
		 m->borrow_fd);
	return 0;
}

static int fake_create(int ri, const struct mshare_create_arg *c, pid_t *pids,
		       int *npids)
{
	struct fake_mshare *fm = fake_mshare;
	struct fake_region *r = &fm->r[ri];
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), end;
	struct fake_map *m = NULL;

	if (failing(STEP_CREATE))
		return -1;
	/* v3 18/22 and 20/22, in their order. */
	errno = EINVAL;
	if (r->dead || c->region_offset >= r->size)
		return -1;
	if ((c->flags & (MAP_SHARED | MAP_FIXED)) != (MAP_SHARED | MAP_FIXED))
		return -1;
	if (!(c->flags & MAP_ANONYMOUS)) {
		if (fm->abi == 2) /* v2: fd must be -1 */
			return -1;
		if (fcntl((int)c->fd, F_GETFD) < 0) {
			errno = EBADF;
			return -1;
		}
	}
	if (c->region_offset + c->size > r->size || c->size == 0 ||
	    c->region_offset % page || c->offset % page)
		return -1;
	/* MAP_FIXED in the host mm: what was there is replaced. */
	end = c->region_offset + c->size;
	for (int i = 0; i < FAKE_MAPS; i++) {
		struct fake_map *o = &r->map[i];

		if (!o->id || o->off >= end || o->off + o->size <= c->region_offset)
			continue;
		if (o->off < c->region_offset || o->off + o->size > end)
			note_error("CREATE_MAPPING [%llu, +%llu) cuts a mapping",
				   (unsigned long long)c->region_offset,
				   (unsigned long long)c->size);
		drop_map(o);
		fm->replaced++;
	}
	for (int i = 0; i < FAKE_MAPS && !m; i++)
		if (!r->map[i].id)
			m = &r->map[i];
	if (!m) {
		errno = ENOMEM;
		return -1;
	}
	memset(m, 0, sizeof(*m));
	if (hold_object((int)c->fd, fm->next_id + 1, m) < 0) {
		memset(m, 0, sizeof(*m));
		return -1;
	}
	m->id = ++fm->next_id;
	m->off = c->region_offset;
	m->size = c->size;
	m->offset = c->offset;
	m->prot = (int)c->prot;
	fm->creates++;
	*npids = changed(ri, pids, MAXTELL);
	return 0;
}

static int fake_unmap(int ri, const struct mshare_unmap_arg *u, pid_t *pids,
		      int *npids)
{
	struct fake_mshare *fm = fake_mshare;
	struct fake_region *r = &fm->r[ri];
	uint64_t end = u->region_offset + u->size;
	bool any = false;

	if (failing(STEP_UNMAP))
		return -1;
	/* v3 19/22 */
	if (r->dead || u->size > r->size || u->region_offset >= r->size ||
	    end > r->size) {
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; i < FAKE_MAPS; i++) {
		struct fake_map *m = &r->map[i];

		if (!m->id || m->off >= end || m->off + m->size <= u->region_offset)
			continue;
		/* The library unmaps what it placed, whole: anything else is
		 * a wrong offset or size. */
		if (m->off < u->region_offset || m->off + m->size > end)
			note_error("MSHAREFS_UNMAP [%llu, +%llu) cuts a mapping "
				   "(a wrong window?)",
				   (unsigned long long)u->region_offset,
				   (unsigned long long)u->size);
		drop_map(m);
		any = true;
	}
	if (!any)
		fm->empty_unmaps++;
	fm->unmaps++;
	*npids = changed(ri, pids, MAXTELL);
	return 0;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), rc, err, n = 0;
	pid_t pids[MAXTELL];
	sigset_t old;

	if (ri < 0)
		return real.ioctl(fd, req, arg);
	if (fm->abi == 1) {
		if (req == MSHAREFS_V1_SET_SIZE) { /* what UNMAP would do */
			__atomic_add_fetch(&fm->v1_set_size, 1, __ATOMIC_RELAXED);
			return 0;
		}
		errno = ENOTTY;
		return -1;
	}
	lock_state(&old);
	if (!fm->r[ri].sized || fm->r[ri].dead) { /* v3 18/22: first */
		errno = EINVAL;
		rc = -1;
	} else if (req == MSHAREFS_CREATE_MAPPING) {
		rc = fake_create(ri, arg, pids, &n);
	} else if (req == MSHAREFS_UNMAP) {
		rc = fake_unmap(ri, arg, pids, &n);
	} else {
		errno = ENOTTY;
		rc = -1;
	}
	err = errno;
	unlock_state(&old);
	tell(pids, n);
	errno = err;
	return rc;
}

/* ---- the owner's exit: the helper ----------------------------------------- */

/* Under the lock: has region i's owner thread exited?  Tear it down. */
static bool check_owner(int i)
{
	struct fake_region *r = &fake_mshare->r[i];
	int rc;

	if (!r->used || r->dead || !r->owner_tid)
		return false;
	rc = pthread_mutex_trylock(&r->owner);
	if (rc == EBUSY)
		return false;
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(&r->owner); /* not made consistent */
	/* v3 17/22: exit_mshare unmaps everything; mmap refuses later */
	r->dead = true;
	drop_all(r);
	fake_mshare->teardowns++;
	return true;
}

static void helper_main(pid_t parent)
{
	struct timespec ts = { 0, 2000000 };

	for (;;) {
		pid_t pids[MAXTELL];
		int n = 0;
		bool gone = getppid() != parent;
		sigset_t old;

		lock_state(&old);
		for (int i = 0; i < FAKE_REGIONS; i++)
			if (check_owner(i))
				n += changed(i, pids + n, MAXTELL - n);
		unlock_state(&old);
		tell(pids, n);
		if (gone)
			_exit(0);
		nanosleep(&ts, NULL);
	}
}

/* ---- fork ------------------------------------------------------------------- */

static void after_fork_child(void)
{
	struct fake_mshare *fm = fake_mshare;
	sigset_t old;

	if (!fm || forking_helper)
		return;
	lock_state(&old);
	for (int ri = 0; ri < FAKE_REGIONS; ri++) {
		int nfds = 0, nviews = 0;
		struct fake_holder *h;

		for (int fd = 0; fd < 1024; fd++)
			nfds += fd_region[fd] == ri + 1;
		for (int i = 0; i < MAXVIEWS; i++)
			nviews += views[i].base && views[i].region == ri;
		if (nfds + nviews == 0)
			continue;
		h = holder(getpid(), ri, true);
		if (h) {
			h->nfds = nfds;
			h->nviews = nviews;
		}
	}
	sync_mine();
	unlock_state(&old);
}

/* ---- install ------------------------------------------------------------------ */

static int map_state(const char *mount, bool create)
{
	char path[PATH_MAX + 32];
	bool fresh = false;
	void *p;
	int fd;

	snprintf(path, sizeof(path), "%s/.fake-mshare", mount);
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0),
		  0600);
	if (fd < 0 && create && errno == EEXIST)
		fd = open(path, O_RDWR | O_CLOEXEC);
	else if (fd >= 0 && create)
		fresh = true;
	if (fd < 0)
		return -errno;
	if (fresh && ftruncate(fd, sizeof(struct fake_mshare)) < 0) {
		close(fd);
		return -errno;
	}
	p = mmap(NULL, sizeof(struct fake_mshare), PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	fake_mshare = p;
	if (fresh) {
		pthread_mutexattr_t a;

		pthread_mutexattr_init(&a);
		pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&fake_mshare->lock, &a);
		pthread_mutexattr_destroy(&a);
		snprintf(fake_mshare->mount, sizeof(fake_mshare->mount), "%s",
			 mount);
	}
	return 0;
}

static void hook(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigurg;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGURG, &sa, NULL);
	if (!atfork_done) {
		pthread_atfork(NULL, NULL, after_fork_child);
		atfork_done = true;
	}
	if (dynshm_sys.open != fake_open)
		real = dynshm_sys;
	dynshm_sys.statfs = fake_statfs;
	dynshm_sys.open = fake_open;
	dynshm_sys.unlinkat = fake_unlinkat;
	dynshm_sys.ftruncate = fake_ftruncate;
	dynshm_sys.fstat = fake_fstat;
	dynshm_sys.mmap = fake_mmap;
	dynshm_sys.munmap = fake_munmap;
	dynshm_sys.ioctl = fake_ioctl;
	dynshm_sys.close = fake_close;
}

int fake_mshare_install(const char *mount, int abi, uint64_t align)
{
	char path[PATH_MAX + 32];
	pid_t parent = getpid(), pid;
	FILE *info;
	int rc;

	if (fake_mshare) { /* again: new knobs, entries put back */
		fake_mshare->abi = abi;
		fake_mshare->align = align;
		fake_mshare->magic = MSHARE_MAGIC;
		fake_mshare->fail_step = STEP_NONE;
		hook();
		return 0;
	}
	snprintf(path, sizeof(path), "%s/mshare_info", mount);
	info = fopen(path, "wx");
	if (info) {
		fprintf(info, "%llu\n", (unsigned long long)align);
		fclose(info);
	} else if (errno != EEXIST) {
		return -errno;
	}
	rc = map_state(mount, true);
	if (rc < 0)
		return rc;
	fake_mshare->abi = abi;
	fake_mshare->align = align;
	fake_mshare->magic = MSHARE_MAGIC;
	memset(fd_region, 0, sizeof(fd_region));
	memset(views, 0, sizeof(views));
	forking_helper = true;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		for (int fd = 0; fd < 3 && null >= 0; fd++)
			dup2(null, fd);
		/* nothing of the test's: no flock, no pipe may stay open */
		if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) /* before 5.9 */
			for (int fd = 3; fd < 4096; fd++)
				close(fd);
		signal(SIGURG, SIG_IGN);
		helper_main(parent);
	}
	forking_helper = false;
	if (pid < 0)
		return -errno;
	fake_mshare->helper_pid = pid;
	hook();
	return 0;
}

unsigned fake_mshare_wait_teardown(unsigned want)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 20000; i++) {
		if (__atomic_load_n(&fake_mshare->teardowns, __ATOMIC_ACQUIRE) >=
		    want)
			break;
		nanosleep(&ts, NULL);
	}
	/* and this process's views reflect it */
	{
		sigset_t old;

		lock_state(&old);
		sync_mine();
		unlock_state(&old);
	}
	return fake_mshare->teardowns;
}

void fake_mshare_uninstall(void)
{
	struct fake_mshare *fm = fake_mshare;
	sigset_t old;

	if (!fm)
		return;
	if (fm->helper_pid > 0 && getpid() != fm->helper_pid) {
		kill(fm->helper_pid, SIGKILL);
		waitpid(fm->helper_pid, NULL, 0);
		fm->helper_pid = 0;
	}
	lock_state(&old);
	for (int i = 0; i < FAKE_REGIONS; i++) {
		struct fake_region *r = &fm->r[i];

		/* ours: let go, so that unmapping the state is safe */
		release_owner(r);
		drop_all(r);
		r->used = false;
	}
	pthread_mutex_unlock(&fm->lock);
	signal(SIGURG, SIG_DFL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < MAXVIEWS; i++)
		views[i].base = NULL;
	memset(fd_region, 0, sizeof(fd_region));
	dynshm_sys = real;
	fake_mshare = NULL;
	munmap(fm, sizeof(*fm));
}

int fake_mshare_mapped_at(const char *path, uint64_t off)
{
	struct fake_mshare *fm = fake_mshare;
	int n = 0;

	for (int i = 0; i < FAKE_REGIONS; i++) {
		struct fake_region *r = &fm->r[i];

		if (!r->used || (path && strcmp(r->path, path) != 0))
			continue;
		for (int k = 0; k < FAKE_MAPS; k++)
			n += r->map[k].id && r->map[k].off <= off &&
			     off < r->map[k].off + r->map[k].size;
	}
	return n;
}

int fake_mshare_mappings(void)
{
	struct fake_mshare *fm = fake_mshare;
	int n = 0;

	for (int i = 0; i < FAKE_REGIONS; i++)
		for (int k = 0; fm->r[i].used && k < FAKE_MAPS; k++)
			n += fm->r[i].map[k].id != 0;
	return n;
}

int fake_mshare_views(void)
{
	int n = 0;

	for (int i = 0; i < MAXVIEWS; i++)
		n += views[i].base != NULL;
	return n;
}

void *fake_mshare_view(int i)
{
	for (int k = 0; k < MAXVIEWS; k++)
		if (views[k].base && i-- == 0)
			return views[k].base;
	return NULL;
}

int fake_mshare_live_regions(void)
{
	int n = 0;

	for (int i = 0; i < FAKE_REGIONS; i++)
		n += fake_mshare->r[i].used;
	return n;
}
