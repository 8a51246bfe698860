/* SPDX-License-Identifier: MIT */
/*
 * fake_mshare.c - the shared-state msharefs v3 emulation (see
 * fake_mshare.h for what it models and why; docs/mshare.md for the v3
 * facts each rule comes from).
 *
 * Locking: the state lock (lock_state) guards all shared state.  Nobody
 * waits for another process while holding it, and nothing touches a view
 * while holding it (the fault handler takes it, and a fault can only come
 * from the library's own accesses).  A holder killed with it held leaves
 * fm->held set, and fm->pending (and r->dead / r->evicting) for repair()
 * to finish.
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
#include <sys/file.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fake_mshare *fake_mshare;

#define MAXFD 1024

static struct dynshm_sys real;
static int fd_region[MAXFD]; /* region index + 1, this process's fds */
static int fd_hold[MAXFD];   /* its holder-file descriptor + 1 */

/* What this process has mapped in a view: its own page tables. */
struct lmap {
	uint64_t id, off, size;
};

struct lview {
	char *base; /* NULL: unused */
	uint64_t size, serial;
	int region;
	struct lmap m[FAKE_MAPS];
};

#define MAXVIEWS 16
static struct lview views[MAXVIEWS];
static struct sigaction old_segv, old_bus; /* handlers before ours */
static bool handlers_ours;
static __thread void *last_fault; /* a fault retried once already */
static __thread bool in_lock;	   /* taking or holding the state lock */

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

static void hold_path(const struct fake_region *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s/.fake-mshare-hold-%llu", fake_mshare->mount,
		 (unsigned long long)r->serial);
}

/*
 * ---- the keeper: objects no name reaches ------------------------------------
 *
 * An object already unlinked when it is placed (the probe's, in every
 * region creation) has no name to link, and the host mm's reference to
 * it is a file reference, not a process's.  The helper process keeps such
 * objects' descriptors and hands copies out (SCM_RIGHTS) over a unix
 * socket bound in the mount, one connection per call: every process,
 * whatever its PID or mount namespace, reaches it by that path, not by a
 * pid (/proc/<pid>/fd/<n>, as before, named another process or none from
 * a worker in a PID namespace of its own).  Callers hold the state lock;
 * the helper never waits for it (try_lock_state), so it always answers.
 */
enum keeper_op { KEEP = 1, FETCH, FORGET };

struct keeper_msg {
	uint64_t op, id; /* no padding to leave uninitialised */
};

#define KEPT (FAKE_REGIONS * FAKE_MAPS + 8)
static bool i_am_keeper; /* in the helper: the table is here */
static struct {
	uint64_t id; /* 0: free */
	int fd;
} kept[KEPT];

static int keeper_addr(struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if ((size_t)snprintf(a->sun_path, sizeof(a->sun_path),
			     "%s/.fake-mshare.keeper", fake_mshare->mount) >=
	    sizeof(a->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Send msg (with fd when fd >= 0); 0 or -1. */
static int send_with_fd(int sock, const void *msg, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { (void *)msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Receive msg and the descriptor sent with it (*fd, -1 if none). */
static int recv_with_fd(int sock, void *msg, size_t len, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

	*fd = -1;
	for (c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)len) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		if (n >= 0)
			errno = ECONNRESET;
		return -1;
	}
	return 0;
}

/* In the helper: do op; a FETCH's descriptor in *out (not to be closed). */
static int32_t keeper_do(const struct keeper_msg *q, int fd, int *out)
{
	int free_k = -1;

	*out = -1;
	for (int k = 0; k < KEPT; k++) {
		if (kept[k].id == q->id && q->id) {
			if (q->op == FETCH) {
				*out = kept[k].fd;
				return 0;
			}
			close(kept[k].fd); /* FORGET, or KEEP again */
			kept[k].id = 0;
		}
		if (!kept[k].id && free_k < 0)
			free_k = k;
	}
	if (q->op == FETCH)
		return ENOENT;
	if (q->op != KEEP)
		return 0;
	if (fd < 0 || free_k < 0)
		return fd < 0 ? EBADF : ENOMEM;
	kept[free_k].id = q->id;
	kept[free_k].fd = fd;
	return 0;
}

/*
 * op on object id (KEEP sends fd; FETCH returns a descriptor of the
 * object).  -1 with errno on failure.  Under the state lock.
 */
static int keeper_call(enum keeper_op op, uint64_t id, int fd)
{
	struct keeper_msg q = { op, id };
	struct sockaddr_un a;
	int32_t err = 0;
	int sock, got = -1, mine;

	if (i_am_keeper) {
		if (op == KEEP && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
			return -1;
		err = keeper_do(&q, fd, &mine);
		if (err && op == KEEP)
			close(fd);
		if (!err && op == FETCH &&
		    (got = fcntl(mine, F_DUPFD_CLOEXEC, 0)) < 0)
			return -1;
		errno = err;
		return err ? -1 : op == FETCH ? got : 0;
	}
	if (keeper_addr(&a) < 0)
		return -1;
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -1;
	if (connect(sock, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    send_with_fd(sock, &q, sizeof(q), op == KEEP ? fd : -1) < 0 ||
	    recv_with_fd(sock, &err, sizeof(err), &got) < 0) {
		int e = errno;

		close(sock);
		errno = e;
		return -1;
	}
	close(sock);
	if (err) {
		if (got >= 0)
			close(got);
		errno = err;
		return -1;
	}
	return op == FETCH ? got : 0;
}

/* In the helper: answer every call waiting on the listening socket. */
static void keeper_serve(int lsock)
{
	int c;

	while ((c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		struct keeper_msg q = { 0 };
		int fd, out;
		int32_t err;

		/* a caller killed before it sent anything: EOF, nothing done */
		if (recv_with_fd(c, &q, sizeof(q), &fd) == 0) {
			err = keeper_do(&q, fd, &out);
			if (err && fd >= 0)
				close(fd);
			send_with_fd(c, &err, sizeof(err), out);
		}
		close(c);
	}
}

/* A descriptor of the object m names (its link, or the keeper's). */
static int object_open(const struct fake_map *m)
{
	if (m->borrowed)
		return keeper_call(FETCH, m->id, -1);
	return open(m->link, O_RDWR | O_CLOEXEC);
}

/* Let go of what keeps the object of map (m's fields only are read). */
static void object_release(const struct fake_map *m)
{
	if (m->borrowed)
		keeper_call(FORGET, m->id, -1);
	else if (m->link[0])
		unlink(m->link);
}

/*
 * Take a mapping away from every process at once: truncating its object
 * zaps every page table entry of it in every process (the kernel's own
 * unmap_mapping_range), so the next access anywhere faults and the fault
 * handler asks the shared state again.  Idempotent (repair() repeats it).
 */
static void drop_map(struct fake_map *m, bool revoke)
{
	if (!m->id && !m->link[0])
		return;
	if (revoke && m->link[0]) {
		int fd = object_open(m);

		if (fd >= 0) {
			if (ftruncate(fd, 0) == 0)
				fake_mshare->revoked++;
			close(fd);
		}
	}
	object_release(m);
	memset(m, 0, sizeof(*m));
}

static void drop_all(struct fake_region *r, bool revoke)
{
	for (int i = 0; i < FAKE_MAPS; i++)
		drop_map(&r->map[i], revoke);
}

/* Revoke every mapping of region ri overlapping [off, end) but keep. */
static unsigned drop_range(int ri, uint64_t off, uint64_t end,
			   const struct fake_map *keep, const char *what)
{
	struct fake_region *r = &fake_mshare->r[ri];
	unsigned n = 0;

	for (int i = 0; i < FAKE_MAPS; i++) {
		struct fake_map *m = &r->map[i];

		if (m == keep || !m->id || m->off >= end || m->off + m->size <= off)
			continue;
		/* The library places and removes whole windows: anything that
		 * cuts a mapping is a wrong offset or size. */
		if (what && (m->off < off || m->off + m->size > end))
			note_error("%s [%llu, +%llu) cuts a mapping%s", what,
				   (unsigned long long)off,
				   (unsigned long long)(end - off),
				   keep ? "" : " (a wrong window?)");
		/* the same object again: nothing to take away */
		drop_map(m, !(keep && keep->dev == m->dev && keep->ino == m->ino));
		n++;
	}
	return n;
}

/*
 * The regions a thread of this process owns, in this process's memory
 * (a forked child owns none: v3 17/22).  Not told by pid and thread id in
 * the shared state, as before: those of a process in another PID
 * namespace can be the same numbers, and its unlock of the owner's
 * mutex would then succeed - and unlink the mutex from a robust list in
 * another address space.
 */
static struct {
	uint64_t serial; /* 0: none */
	int tid;
} owning[FAKE_REGIONS];

static void owning_note(struct fake_region *r)
{
	owning[r - fake_mshare->r].serial = r->serial;
	owning[r - fake_mshare->r].tid = gettid_();
}

/*
 * A robust mutex sits in its owner thread's robust list, which runs through
 * the mutexes themselves: it must not be re-initialised or unmapped while
 * locked.  Let go of it if this thread owns it.
 */
static void release_owner(struct fake_region *r)
{
	long i = r - fake_mshare->r;

	if (owning[i].serial && owning[i].serial == r->serial &&
	    owning[i].tid == gettid_()) {
		pthread_mutex_unlock(&r->owner);
		owning[i].serial = 0;
	}
}

/* Under the lock: a region's owner thread exited: tear it down. */
static void teardown(struct fake_region *r)
{
	r->dead = true; /* first: repair() finishes what follows */
	drop_all(r, true);
	fake_mshare->teardowns++;
}

/* Under the lock: has region i's owner thread exited?  As the kernel's
 * exit_mshare (v3 17/22): everything unmapped, mmap refused later. */
static void check_owner(int i)
{
	struct fake_region *r = &fake_mshare->r[i];
	int rc;

	if (!r->used || r->dead || !r->has_owner)
		return;
	rc = pthread_mutex_trylock(&r->owner);
	if (rc == EBUSY)
		return;
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(&r->owner); /* not made consistent */
	teardown(r);
}

/* Does a process hold a descriptor or a view of it?  The kernel says. */
static bool held(const struct fake_region *r)
{
	char path[PATH_MAX + 64];
	bool busy;
	int fd;

	hold_path(r, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	busy = flock(fd, LOCK_EX | LOCK_NB) < 0;
	close(fd);
	return busy;
}

static void finish_evict(struct fake_region *r)
{
	char path[PATH_MAX + 64];

	r->evicting = true; /* first: repair() finishes what follows */
	drop_all(r, false); /* nobody maps it: nothing to take away */
	hold_path(r, path, sizeof(path));
	unlink(path);
	release_owner(r);
	r->used = r->evicting = false;
	fake_mshare->evictions++;
}

/* Under the lock: unlinked and held by no process: evict it. */
static void maybe_evict(int ri)
{
	struct fake_region *r = &fake_mshare->r[ri];

	if (r->used && r->unlinked && !held(r))
		finish_evict(r);
}

/* Under the lock, after a holder died in it: finish what it was doing. */
static void repair(void)
{
	struct fake_mshare *fm = fake_mshare;

	fm->repairs++;
	if (fm->pending == PENDING_CREATE) {
		struct fake_region *r = &fm->r[fm->pending_region];
		const struct fake_map *added = NULL;

		for (int i = 0; i < FAKE_MAPS && !added; i++)
			if (r->map[i].id == fm->pending_map.id)
				added = &r->map[i];
		if (added) /* it was added: finish the replacing */
			drop_range(fm->pending_region, added->off,
				   added->off + added->size, added, NULL);
		else /* undo */
			object_release(&fm->pending_map);
	} else if (fm->pending == PENDING_UNMAP) {
		drop_range(fm->pending_region, fm->pending_off,
			   fm->pending_off + fm->pending_size, NULL, NULL);
	}
	fm->pending = PENDING_NONE;
	memset(&fm->pending_map, 0, sizeof(fm->pending_map));
	for (int i = 0; i < FAKE_REGIONS; i++) {
		if (fm->r[i].evicting)
			finish_evict(&fm->r[i]);
		else if (fm->r[i].used && fm->r[i].dead)
			drop_all(&fm->r[i], true);
	}
}

/*
 * The state lock is an OFD write lock on byte 0 of the state file, taken
 * through a description opened for this one hold and closed with it, plus
 * a mutex of this process's own that its threads take first.  The kernel
 * drops the OFD lock when its holder dies, and knows nothing of pids: it
 * holds between processes in any PID namespaces.  No descriptor stays
 * open between calls (tests count them), and none is inherited: a fork
 * waits for the local mutex (pthread_atfork), so no hold is under way in
 * the parent when the child copies its descriptors.
 *
 * Not a robust pthread mutex, as it was: its futex word names the holder
 * by thread id, which means something only in the holder's PID namespace.
 * The kill storm's namespaced workers are all thread 1 (or 2, 3 ...) of
 * namespaces of their own; when one of them was killed while waiting for
 * the lock (the kernel then looks at the mutex its robust list marks as
 * being taken) and the holder was another namespace's thread 1, the kernel
 * took the holder for the dying thread, marked the lock's owner dead and
 * woke a waiter, which took it with EOWNERDEAD and ran repair() while the
 * holder still worked: two holders, the state torn (a map added with an
 * empty link, windows lost; the holder's unlock then failed with EPERM).
 *
 * A holder that dies leaves fm->held set: the next holder repairs.
 */
static int lock_fd = -1; /* while this process holds or waits: local_lock */
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static void local_lock_take(void)
{
	pthread_mutex_lock(&local_lock);
}

static void local_lock_drop(void)
{
	pthread_mutex_unlock(&local_lock);
}

/* In a forked child: it owns no region; its only thread holds the mutex. */
static void after_fork_child(void)
{
	memset(owning, 0, sizeof(owning));
	local_lock_drop();
}

/* Take the state lock; without wait, only if it is free (false if not). */
static bool take_state(bool wait)
{
	struct fake_mshare *fm = fake_mshare;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 1 };
	char path[PATH_MAX + 32];
	int rc;

	in_lock = true;
	local_lock_take();
	snprintf(path, sizeof(path), "%s/.fake-mshare", fm->mount);
	lock_fd = open(path, O_RDWR | O_CLOEXEC);
	do
		rc = lock_fd < 0 ? -1
				 : fcntl(lock_fd, wait ? F_OFD_SETLKW
						       : F_OFD_SETLK, &fl);
	while (rc < 0 && lock_fd >= 0 && errno == EINTR);
	if (rc < 0 && !wait && (errno == EAGAIN || errno == EACCES)) {
		close(lock_fd);
		lock_fd = -1;
		local_lock_drop();
		in_lock = false;
		return false;
	}
	if (rc < 0) {
		fprintf(stderr, "fake_mshare: cannot take the state lock "
				"('%s'): %s\n", path, strerror(errno));
		abort();
	}
	if (fm->held) /* its last holder died holding it */
		repair();
	fm->held = 1;
	return true;
}

static void lock_state(void)
{
	take_state(true);
}

static void unlock_state(void)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 1 };

	fake_mshare->held = 0;
	fcntl(lock_fd, F_OFD_SETLK, &fl);
	close(lock_fd);
	lock_fd = -1;
	local_lock_drop();
	in_lock = false;
}

/* ---- views and faults ------------------------------------------------------- */

/* Make [at, at + size) of a view inaccessible again. */
static void make_hole(char *at, uint64_t size)
{
	mmap(at, size, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

static struct lview *view_of(const void *addr)
{
	for (int i = 0; i < MAXVIEWS; i++)
		if (views[i].base && (const char *)addr >= views[i].base &&
		    (const char *)addr < views[i].base + views[i].size)
			return &views[i];
	return NULL;
}

enum resolved { NOT_OURS, RETRY, FAULT };

/*
 * A fault at addr: ask the shared state what lies there now.  RETRY when
 * it is mapped here now (or another thread just mapped it); FAULT when the
 * access is a real fault: nothing lies there (addr is left inaccessible),
 * or what lies there is what this process maps and it still faults.
 */
static enum resolved resolve(void *addr)
{
	struct fake_mshare *fm = fake_mshare;
	struct lview *v = fm ? view_of(addr) : NULL;
	const struct fake_map *cur = NULL;
	struct lmap *l = NULL, *free_l = NULL;
	struct fake_region *r;
	uint64_t off;
	int fd;

	if (!v)
		return NOT_OURS;
	off = (uint64_t)((char *)addr - v->base);
	lock_state();
	r = &fm->r[v->region];
	if (r->used && r->serial == v->serial) {
		check_owner(v->region);
		for (int k = 0; k < FAKE_MAPS && !r->dead && !cur; k++)
			if (r->map[k].id && r->map[k].off <= off &&
			    off < r->map[k].off + r->map[k].size)
				cur = &r->map[k];
	}
	for (int i = 0; i < FAKE_MAPS && !l; i++)
		if (v->m[i].id && v->m[i].off <= off &&
		    off < v->m[i].off + v->m[i].size)
			l = &v->m[i];
	if (l && cur && l->id == cur->id) {
		unlock_state();
		if (last_fault == addr)
			return FAULT; /* mapped, and faults again: real */
		last_fault = addr; /* another thread may have mapped it */
		return RETRY;
	}
	last_fault = NULL;
	/* what this process maps there is stale: gone from the region */
	for (int i = 0; i < FAKE_MAPS; i++) {
		struct lmap *s = &v->m[i];

		if (s->id && ((s->off <= off && off < s->off + s->size) ||
			      (cur && s->off < cur->off + cur->size &&
			       cur->off < s->off + s->size))) {
			make_hole(v->base + s->off, s->size);
			memset(s, 0, sizeof(*s));
		}
		if (!s->id && !free_l)
			free_l = s;
	}
	if (!cur) {
		unlock_state();
		return FAULT;
	}
	fd = object_open(cur);
	if (fd < 0 || !free_l ||
	    mmap(v->base + cur->off, cur->size, cur->prot, MAP_SHARED | MAP_FIXED,
		 fd, (off_t)cur->offset) == MAP_FAILED) {
		note_error("cannot map '%s' into a view (%llu, +%llu): %s",
			   cur->link, (unsigned long long)cur->off,
			   (unsigned long long)cur->size, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlock_state();
		return FAULT;
	}
	close(fd);
	*free_l = (struct lmap){ cur->id, cur->off, cur->size };
	fm->faults_mapped++;
	unlock_state();
	return RETRY;
}

/* Hand a real fault to whatever handled it before us, or the default. */
static void deliver(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *o = sig == SIGSEGV ? &old_segv : &old_bus;

	if ((o->sa_flags & SA_SIGINFO) && o->sa_sigaction) {
		o->sa_sigaction(sig, si, uc);
		return;
	}
	if (!(o->sa_flags & SA_SIGINFO) && o->sa_handler != SIG_DFL &&
	    o->sa_handler != SIG_IGN) {
		o->sa_handler(sig);
		return;
	}
	/* the access is made again and faults with the default action */
	signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	/*
	 * A fault while taking or holding the state lock: none of the
	 * emulation's code touches a view, so it is a bad access of its own.
	 * The kernel would make it a SIGSEGV; resolving it here would wait
	 * for our own lock.
	 */
	if (in_lock) {
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
	}

	switch (resolve(si->si_addr)) {
	case RETRY:
		break;
	case FAULT:
		/* a stale mapping's SIGBUS is now a hole: made again, the
		 * access is the SIGSEGV an unmapped window gives */
		if (sig == SIGSEGV || view_of(si->si_addr) == NULL ||
		    last_fault == si->si_addr)
			deliver(sig, si, uc);
		else
			last_fault = si->si_addr;
		break;
	case NOT_OURS:
		deliver(sig, si, uc);
		break;
	}
	errno = saved;
}

/* ---- the region's file and its descriptors -------------------------------- */

static int region_of_fd(int fd)
{
	return fd >= 0 && fd < MAXFD ? fd_region[fd] - 1 : -1;
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

/* May slot r be made a new region?  Not while another live thread owns it. */
static bool reusable(struct fake_region *r)
{
	int rc;

	if (r->used)
		return false;
	if (!r->has_owner)
		return true;
	release_owner(r);
	rc = pthread_mutex_trylock(&r->owner);
	if (rc == EBUSY)
		return false;
	if (rc == 0 || rc == EOWNERDEAD)
		pthread_mutex_unlock(&r->owner);
	return true;
}

/* Under the lock: a descriptor of region r holding its flock; -1 on error. */
static int hold(const struct fake_region *r)
{
	char path[PATH_MAX + 64];
	int fd;

	hold_path(r, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0) {
		note_error("cannot hold region '%s': %s", r->path,
			   strerror(errno));
		close(fd);
		fd = -1;
	}
	return fd;
}

static int fake_open(const char *path, int flags, mode_t mode)
{
	struct fake_mshare *fm = fake_mshare;
	struct stat st;
	int fd, ri = -1, hfd = -1;

	if (!in_mount(path))
		return real.open(path, flags, mode);
	if (failing(STEP_OPEN))
		return -1;
	fd = real.open(path, flags, mode);
	if (fd < 0)
		return fd;
	if (fd >= MAXFD || real.fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return fd; /* not a region: msharefs has only regions */
	lock_state();
	for (int i = 0; i < FAKE_REGIONS; i++)
		check_owner(i);
	for (int i = 0; i < FAKE_REGIONS && ri < 0; i++)
		if (fm->r[i].used && fm->r[i].ino == (uint64_t)st.st_ino &&
		    fm->r[i].dev == (uint64_t)st.st_dev)
			ri = i;
	for (int i = 0; i < FAKE_REGIONS && ri < 0; i++)
		if (reusable(&fm->r[i])) {
			struct fake_region *r = &fm->r[i];

			memset(r, 0, sizeof(*r));
			r->serial = ++fm->next_serial;
			r->ino = (uint64_t)st.st_ino;
			r->dev = (uint64_t)st.st_dev;
			snprintf(r->path, sizeof(r->path), "%s", path);
			owner_init(r);
			/* v3 17/22: the creating task owns it */
			if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
				r->has_owner = true;
				pthread_mutex_lock(&r->owner);
				owning_note(r);
			}
			r->used = true;
			ri = i;
		}
	if (ri >= 0)
		hfd = hold(&fm->r[ri]);
	if (ri >= 0 && hfd >= 0 && hfd < MAXFD) {
		fd_region[fd] = ri + 1;
		fd_hold[fd] = hfd + 1;
	} else {
		if (hfd >= 0)
			close(hfd);
		note_error("region table full, or no holder file (%s)", path);
	}
	unlock_state();
	return fd;
}

static int fake_close(int fd)
{
	int ri = region_of_fd(fd), rc;

	if (ri < 0)
		return real.close(fd);
	close(fd_hold[fd] - 1);
	fd_hold[fd] = fd_region[fd] = 0;
	rc = real.close(fd);
	lock_state();
	maybe_evict(ri);
	unlock_state();
	return rc;
}

static int fake_unlinkat(int dirfd, const char *path, int flags)
{
	struct fake_mshare *fm = fake_mshare;
	struct stat st;
	int rc;

	if (dirfd != AT_FDCWD || !in_mount(path) ||
	    real.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return real.unlinkat(dirfd, path, flags);
	rc = real.unlinkat(dirfd, path, flags);
	if (rc < 0)
		return rc;
	lock_state();
	for (int i = 0; i < FAKE_REGIONS; i++)
		if (fm->r[i].used && fm->r[i].ino == (uint64_t)st.st_ino &&
		    fm->r[i].dev == (uint64_t)st.st_dev) {
			fm->r[i].unlinked = true;
			maybe_evict(i);
		}
	unlock_state();
	return 0;
}

static int fake_ftruncate(int fd, off_t len)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), rc = 0;

	if (ri < 0)
		return real.ftruncate(fd, len);
	if (failing(STEP_FTRUNCATE))
		return -1;
	if (fm->abi == 1) /* a plain setattr: no region size set */
		return 0;
	lock_state();
	/* v3 05/22: once, and a multiple of the alignment. */
	if (fm->r[ri].sized || len <= 0 || (uint64_t)len % fm->align) {
		errno = EINVAL;
		rc = -1;
	} else {
		fm->r[ri].size = (uint64_t)len;
		fm->r[ri].sized = true;
	}
	unlock_state();
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

/*
 * A view: the holder file mapped inaccessible (MAP_SHARED, so that the
 * mapping keeps the descriptor's flock for as long as any part of it, in
 * this process or a forked child, is mapped).  Windows are mapped over it
 * on their first access (resolve).
 */
static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), hfd, err;
	int fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	struct fake_region *r;
	struct lview *v = NULL;
	char *p = MAP_FAILED;

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
	lock_state();
	r = &fm->r[ri];
	check_owner(ri);
	/* v3 07/22 and 18/22: shared, whole, aligned, sized, owner alive. */
	if (!r->sized || r->dead || !r->has_owner ||
	    (flags & MAP_TYPE) != MAP_SHARED || len != r->size || off != 0 ||
	    (fixed && (uintptr_t)addr % fm->align)) {
		unlock_state();
		errno = EINVAL;
		return MAP_FAILED;
	}
	hfd = hold(r);
	if (hfd < 0) {
		unlock_state();
		errno = EIO;
		return MAP_FAILED;
	}
	if (fixed) {
		p = real.mmap(addr, len, PROT_NONE,
			      MAP_SHARED | MAP_NORESERVE | fixed, hfd, 0);
	} else {
		char *raw = real.mmap(NULL, len + fm->align, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS |
					      MAP_NORESERVE,
				      -1, 0);

		if (raw != MAP_FAILED) {
			size_t lead = (fm->align - (uintptr_t)raw % fm->align) %
				      fm->align;

			p = mmap(raw + lead, len, PROT_NONE,
				 MAP_SHARED | MAP_NORESERVE | MAP_FIXED, hfd, 0);
			if (p == MAP_FAILED) {
				real.munmap(raw, len + fm->align);
			} else {
				if (lead)
					real.munmap(raw, lead);
				real.munmap(raw + lead + len, fm->align - lead);
			}
		}
	}
	err = errno;
	close(hfd); /* the mapping keeps it, and its lock */
	if (p == MAP_FAILED) {
		unlock_state();
		errno = err;
		return MAP_FAILED;
	}
	memset(v, 0, sizeof(*v));
	v->size = len;
	v->region = ri;
	v->serial = r->serial;
	v->base = p;
	unlock_state();
	return p;
}

static int fake_munmap(void *addr, size_t len)
{
	for (int i = 0; fake_mshare && i < MAXVIEWS; i++)
		if (views[i].base == addr) {
			int ri = views[i].region;

			real.munmap(addr, len);
			views[i].base = NULL;
			lock_state();
			maybe_evict(ri);
			unlock_state();
			return 0;
		}
	return real.munmap(addr, len);
}

/* ---- the ioctls ----------------------------------------------------------- */

/* Keep the object as the host mm would: a link, or else the keeper.
 * m->id and m->link are set before anything is made: repair() removes the
 * link, or has the keeper forget the object, if we die. */
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
	target[n > 0 ? n : 0] = '\0';
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
	/* unlinked (or no /proc to name it): the keeper holds it */
	m->borrowed = true;
	snprintf(m->link, sizeof(m->link), "(the keeper's object %llu)",
		 (unsigned long long)id);
	return keeper_call(KEEP, id, fd);
}

static int fake_create(int ri, const struct mshare_create_arg *c)
{
	struct fake_mshare *fm = fake_mshare;
	struct fake_region *r = &fm->r[ri];
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct fake_map *m = NULL, *pm = &fm->pending_map;
	struct stat st;
	uint64_t id;

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
		if (fstat((int)c->fd, &st) < 0) {
			errno = EBADF;
			return -1;
		}
	} else {
		return -1; /* anonymous memory: nothing the library sends */
	}
	if (c->region_offset + c->size > r->size || c->size == 0 ||
	    c->region_offset % page || c->offset % page)
		return -1;
	for (int i = 0; i < FAKE_MAPS && !m; i++)
		if (!r->map[i].id)
			m = &r->map[i];
	if (!m) {
		errno = ENOMEM;
		return -1;
	}
	/* Noted first: a caller killed from here on is finished or undone. */
	id = fm->next_id + 1;
	memset(pm, 0, sizeof(*pm));
	pm->id = id;
	fm->pending_region = ri;
	fm->pending = PENDING_CREATE;
	if (hold_object((int)c->fd, id, pm) < 0) {
		int err = errno;

		object_release(pm);
		memset(pm, 0, sizeof(*pm));
		fm->pending = PENDING_NONE;
		errno = err;
		return -1;
	}
	pm->off = c->region_offset;
	pm->size = c->size;
	pm->offset = c->offset;
	pm->dev = (uint64_t)st.st_dev;
	pm->ino = (uint64_t)st.st_ino;
	pm->prot = (int)c->prot;
	*m = *pm;
	m->id = 0;
	__atomic_store_n(&m->id, id, __ATOMIC_RELEASE); /* added */
	fm->next_id = id;
	/* MAP_FIXED in the host mm: what was there is replaced. */
	fm->replaced += drop_range(ri, m->off, m->off + m->size, m,
				   "CREATE_MAPPING");
	fm->creates++;
	fm->pending = PENDING_NONE;
	memset(pm, 0, sizeof(*pm));
	return 0;
}

static int fake_unmap(int ri, const struct mshare_unmap_arg *u)
{
	struct fake_mshare *fm = fake_mshare;
	struct fake_region *r = &fm->r[ri];
	uint64_t end = u->region_offset + u->size;

	if (failing(STEP_UNMAP))
		return -1;
	/* v3 19/22 */
	if (r->dead || u->size > r->size || u->region_offset >= r->size ||
	    end > r->size) {
		errno = EINVAL;
		return -1;
	}
	fm->pending_region = ri;
	fm->pending_off = u->region_offset;
	fm->pending_size = u->size;
	fm->pending = PENDING_UNMAP;
	if (drop_range(ri, u->region_offset, end, NULL, "MSHAREFS_UNMAP") == 0)
		fm->empty_unmaps++;
	fm->unmaps++;
	fm->pending = PENDING_NONE;
	return 0;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct fake_mshare *fm = fake_mshare;
	int ri = region_of_fd(fd), rc, err;

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
	lock_state();
	check_owner(ri);
	if (!fm->r[ri].sized || fm->r[ri].dead) { /* v3 18/22: first */
		errno = EINVAL;
		rc = -1;
	} else if (req == MSHAREFS_CREATE_MAPPING) {
		rc = fake_create(ri, arg);
	} else if (req == MSHAREFS_UNMAP) {
		rc = fake_unmap(ri, arg);
	} else {
		errno = ENOTTY;
		rc = -1;
	}
	err = errno;
	unlock_state();
	errno = err;
	return rc;
}

/* ---- the helper: owner exits and last holders nobody calls about ---------- */

/*
 * The helper answers the keeper's callers at once, and every millisecond
 * or so, when the state lock is free, does what nobody may call about.
 * It never waits for the lock: a caller of the keeper holds it.
 */
static void helper_main(pid_t parent, int lsock)
{
	struct pollfd p = { .fd = lsock, .events = POLLIN };

	i_am_keeper = true;
	for (unsigned n = 0;; n++) {
		bool gone = getppid() != parent;

		if (poll(&p, 1, 1) > 0)
			keeper_serve(lsock);
		if (take_state(false)) {
			for (int i = 0; i < FAKE_REGIONS; i++) {
				check_owner(i);
				if (n % 4 == 0) /* a holder killed: nobody closed */
					maybe_evict(i);
			}
			unlock_state();
		}
		if (gone)
			_exit(0);
	}
}

/* The keeper's socket, listening, bound in the mount; -1 with errno. */
static int keeper_listen(void)
{
	struct sockaddr_un a;
	int s;

	if (keeper_addr(&a) < 0)
		return -1;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	unlink(a.sun_path); /* a socket left by a killed installer */
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s, 64) < 0) {
		int e = errno;

		close(s);
		errno = e;
		return -1;
	}
	return s;
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
	if (fresh)
		snprintf(fake_mshare->mount, sizeof(fake_mshare->mount), "%s",
			 mount);
	return 0;
}

static void hook(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	/* ours first; what was there handles what is not ours */
	for (int k = 0; k < 2; k++) {
		int sig = k ? SIGBUS : SIGSEGV;
		struct sigaction *old = k ? &old_bus : &old_segv, cur;

		sigaction(sig, NULL, &cur);
		if (handlers_ours && cur.sa_sigaction == on_fault &&
		    (cur.sa_flags & SA_SIGINFO))
			continue;
		sigaction(sig, &sa, old);
		/* ours, put back by someone who saved it with signal(): it
		 * would get no siginfo; what was before it is lost */
		if (old->sa_sigaction == on_fault) { /* the union */
			memset(old, 0, sizeof(*old));
			old->sa_handler = SIG_DFL;
		}
	}
	handlers_ours = true;
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

void fake_mshare_default_faults(void)
{
	memset(&old_segv, 0, sizeof(old_segv));
	memset(&old_bus, 0, sizeof(old_bus));
	old_segv.sa_handler = SIG_DFL;
	old_bus.sa_handler = SIG_DFL;
}

int fake_mshare_install(const char *mount, int abi, uint64_t align)
{
	static bool atfork_set;
	char path[PATH_MAX + 32];
	pid_t parent = getpid(), pid;
	FILE *info;
	int rc, lsock;

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
	if (!atfork_set && pthread_atfork(local_lock_take, local_lock_drop,
					  after_fork_child) == 0)
		atfork_set = true;
	fake_mshare->abi = abi;
	fake_mshare->align = align;
	fake_mshare->magic = MSHARE_MAGIC;
	memset(fd_region, 0, sizeof(fd_region));
	memset(fd_hold, 0, sizeof(fd_hold));
	memset(views, 0, sizeof(views));
	lsock = keeper_listen();
	if (lsock < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		for (int fd = 0; fd < 3 && null >= 0; fd++)
			dup2(null, fd);
		/* nothing of the test's: no flock, no pipe may stay open */
		if (lsock != 3 && dup3(lsock, 3, O_CLOEXEC) < 0)
			_exit(1);
		if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0) /* before 5.9 */
			for (int fd = 4; fd < 4096; fd++)
				close(fd);
		helper_main(parent, 3);
	}
	close(lsock);
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
	return fake_mshare->teardowns;
}

void fake_mshare_uninstall(void)
{
	struct fake_mshare *fm = fake_mshare;
	char path[PATH_MAX + 64];

	if (!fm)
		return;
	if (fm->helper_pid > 0 && getpid() != fm->helper_pid) {
		struct sockaddr_un a;

		kill(fm->helper_pid, SIGKILL);
		waitpid(fm->helper_pid, NULL, 0);
		fm->helper_pid = 0;
		if (keeper_addr(&a) == 0)
			unlink(a.sun_path);
	}
	lock_state();
	for (int i = 0; i < FAKE_REGIONS; i++) {
		struct fake_region *r = &fm->r[i];

		if (!r->used)
			continue;
		/* ours: let go, so that unmapping the state is safe */
		release_owner(r);
		drop_all(r, false);
		hold_path(r, path, sizeof(path));
		unlink(path);
		r->used = false;
	}
	unlock_state();
	if (handlers_ours) {
		sigaction(SIGSEGV, &old_segv, NULL);
		sigaction(SIGBUS, &old_bus, NULL);
		handlers_ours = false;
	}
	for (int i = 0; i < MAXVIEWS; i++)
		views[i].base = NULL;
	for (int fd = 0; fd < MAXFD; fd++)
		if (fd_hold[fd])
			close(fd_hold[fd] - 1);
	memset(fd_region, 0, sizeof(fd_region));
	memset(fd_hold, 0, sizeof(fd_hold));
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

/* Is name (in the mount) a link or holder file a live region accounts for? */
static bool accounted(const char *name)
{
	struct fake_mshare *fm = fake_mshare;
	char path[PATH_MAX + 64];

	for (int i = 0; i < FAKE_REGIONS; i++) {
		const struct fake_region *r = &fm->r[i];

		if (!r->used)
			continue;
		hold_path(r, path, sizeof(path));
		if (strcmp(strrchr(path, '/') + 1, name) == 0)
			return true;
		for (int k = 0; k < FAKE_MAPS; k++) {
			const char *s = strrchr(r->map[k].link, '/');

			if (r->map[k].id && s && strcmp(s + 1, name) == 0)
				return true;
		}
	}
	return false;
}

int fake_mshare_stray_files(void)
{
	DIR *d;
	struct dirent *e;
	int n = 0;

	lock_state();
	d = opendir(fake_mshare->mount);
	while (d && (e = readdir(d)) != NULL)
		if (strncmp(e->d_name, ".fake-mshare-", 13) == 0 &&
		    !accounted(e->d_name))
			n++;
	if (d)
		closedir(d);
	unlock_state();
	return n;
}
