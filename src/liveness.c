/* SPDX-License-Identifier: MIT */
/*
 * liveness.c - how a process of an instance is known to be alive, and the
 * public process tokens built on it (dynshm_proc_self, dynshm_proc_alive).
 *
 * A process is judged dead only on evidence the kernel guarantees: it held
 * something the kernel releases when the process is gone.  That thing is
 * an open-file-description (OFD) write lock on one byte of the instance
 * directory's "procs" file: byte p while process-table entry p is LIVE or
 * FORK (control.h).  The process takes it, through a descriptor opened at
 * join, before its entry is published; the kernel drops it when the last
 * descriptor of that open file description is closed, which happens at the
 * process's exit whatever kills it (exit, kill -9, the last thread of a
 * process whose leader called pthread_exit).  A checker asks F_OFD_GETLK on
 * its own descriptor, opened at its join - so checking needs no new
 * descriptor and works at any descriptor limit.
 *
 * Why this and not /proc/<pid>/stat (what dynshm read before): a pid and a
 * start time name a process only in one PID and time namespace, /proc may
 * be mounted with hidepid=2 or not at all, a leader thread that called
 * pthread_exit shows as a zombie while its process runs on, and opening
 * /proc costs a descriptor a checker at its limit does not have.  Lock
 * ownership is a property of the file and the kernel's open file
 * descriptions: namespaces, mounts, threads and budgets do not enter.
 *
 * The rule, and why it is sound:
 *   - a held lock (or any error asking) means alive.  Doubt never reaps;
 *   - no lock held means dead: entry p is published only with its lock
 *     taken, a live process closes its descriptor only after freeing its
 *     entry (leave), and a descriptor of ours cannot report someone else's
 *     file: before believing "no lock" the checker makes sure its
 *     descriptor is still the procs file it opened (an application that
 *     closed it and opened something else under that number is doubt);
 *   - locks of one open file description never conflict with each other,
 *     so a checker never sees its own lock; it never checks its own entry;
 *   - a lock inherited through fork lives on while the child keeps the
 *     description, which is what the FORK entries use (process.c).
 * The file is 0600 in a 0700 directory of the instance's owner: a process
 * of another user can neither open it nor join, so it can neither fake a
 * lock nor drop one.
 */
#include "wrapper.h"

#include "error.h"
#include "sys.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROCS_FILE "procs"

/* Bumped in every forked child (instance.c): "am I the process that...?" */
unsigned dynshm_fork_generation;

int live_open(dynshm_instance *inst, int *out)
{
	struct stat st;
	int fd = dynshm_sys.openat(inst->dirfd, PROCS_FILE,
				   O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				   0600);

	if (fd < 0) {
		if (errno == ELOOP)
			return dynshm_fail(EACCES, "refusing '%s/" PROCS_FILE
						 "': it is a symbolic link",
					inst->dir);
		return dynshm_fail(errno, "cannot open '%s/" PROCS_FILE "', "
				       "where the processes of instance '%s' "
				       "record that they live: %s",
				inst->dir, inst->name, strerror(errno));
	}
	if (dynshm_sys.fstat(fd, &st) < 0) {
		int err = errno;

		dynshm_sys.close(fd);
		return dynshm_fail(err, "cannot stat '%s/" PROCS_FILE "': %s",
				inst->dir, strerror(err));
	}
	if (!S_ISREG(st.st_mode) || !dynshm_uid_is_ours(st.st_uid) ||
	    (st.st_mode & 077)) {
		dynshm_sys.close(fd);
		return dynshm_fail(EACCES, "refusing '%s/" PROCS_FILE "': not a "
					 "regular file of mode 0600 owned by "
					 "uid %u",
				inst->dir, (unsigned)geteuid());
	}
	/* The first descriptor names the file; later ones must be it too. */
	if (!inst->live_known) {
		inst->live_dev = st.st_dev;
		inst->live_ino = st.st_ino;
		inst->live_known = true;
	} else if (st.st_dev != inst->live_dev || st.st_ino != inst->live_ino) {
		dynshm_sys.close(fd);
		return dynshm_fail(ESTALE, "'%s/" PROCS_FILE "' was replaced "
					 "(instance '%s' destroyed or reset)",
				inst->dir, inst->name);
	}
	*out = fd;
	return 0;
}

static struct flock byte_of(short type, uint32_t p)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl)); /* l_pid must be 0 for OFD locks */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)p;
	fl.l_len = 1;
	return fl;
}

int live_take(dynshm_instance *inst, int fd, uint32_t p)
{
	struct flock fl = byte_of(F_WRLCK, p);

	if (dynshm_sys.fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return -EAGAIN; /* a process released behind its back: skip */
	return dynshm_fail(errno, "cannot lock entry %u of '%s/" PROCS_FILE
				  "' for instance '%s': %s",
			p, inst->dir, inst->name, strerror(errno));
}

void live_give_back(int fd, uint32_t p)
{
	struct flock fl = byte_of(F_UNLCK, p);

	if (fd >= 0)
		dynshm_sys.fcntl(fd, F_OFD_SETLK, &fl);
}

bool live_held(dynshm_instance *inst, uint32_t p)
{
	struct flock fl = byte_of(F_WRLCK, p);
	struct stat st;

	/* Ours (a FORK entry not yet adopted, too): our lock is not seen. */
	if (p == inst->me || p == inst->child_entry)
		return true;
	if (inst->live_fd < 0 ||
	    dynshm_sys.fcntl(inst->live_fd, F_OFD_GETLK, &fl) < 0 ||
	    fl.l_type != F_UNLCK)
		return true;
	/* "Nobody holds it": believed only of the file we opened. */
	if (dynshm_sys.fstat(inst->live_fd, &st) < 0 ||
	    st.st_dev != inst->live_dev || st.st_ino != inst->live_ino)
		return true;
	return false;
}

/*
 * The file goes with its incarnation; so does our lock descriptor, and,
 * when no descriptor of ours is left on it, the name of the file.
 */
void live_unlink(dynshm_instance *inst)
{
	dynshm_sys.unlinkat(inst->dirfd, PROCS_FILE, 0);
	if (inst->lock_fd >= 0)
		dynshm_sys.close(inst->lock_fd);
	inst->lock_fd = -1;
	inst->seat = CTL_NONE;
	if (inst->live_fd < 0)
		inst->live_known = false;
}

/* ---- the control lock ---------------------------------------------------- */

/*
 * THE CONTROL LOCK is a futex word in the control segment,
 * ctl_header.lock_word: 0 when free, else the SEAT of its holder plus one,
 * with LOCK_WAITERS set while somebody may sleep on it.  A seat is one
 * byte of the procs file beyond every entry's byte (CTL_SEAT_BASE + s),
 * which a process holds an OFD write lock on, through a description of its
 * own (lock_fd), from its first lock until it closes the instance.  So:
 *   - taking and letting go of a free lock are one atomic instruction each,
 *     with no system call (a region segment attaches without one);
 *   - a waiter sleeps on the word (FUTEX_WAIT, a bounded while) and the
 *     holder wakes every sleeper as it lets go, so a sleeper killed after
 *     its wake-up takes nobody else's turn with it;
 *   - a holder that dies keeps the word, but the kernel drops its seat's
 *     lock as its files close: a waiter that times out asks the kernel
 *     (F_OFD_GETLK) whether the seat named in the word is still held, and
 *     when it is not, takes the word over ("stolen") and repairs what the
 *     dead holder left half done (sync.c, ctl_lock_any);
 *   - a process that claims a seat finds out by itself whether the word
 *     names that seat: if it does, the seat's last owner died holding the
 *     lock (it was free to claim), and the claimer takes the word over -
 *     so a reused seat never makes a dead holder look alive.
 * Nothing here depends on pids, PID or time namespaces, /proc, which
 * thread of a process is alive, or the checker's descriptor budget; any
 * error asking the kernel means "alive, ask again later".  Why not a PI
 * robust mutex, as before: its futex names its owner by thread id, which
 * means something only in the owner's PID namespace (a waiter in another
 * one gets ESRCH), and only the owner's own exit releases it.
 *
 * Every take is counted in the header (control.h, the lock's statistics,
 * shown by dynshm_instance_info_get): the fast path adds one increment of
 * a field under the lock it just took; only a take that found the word
 * held reads CLOCK_MONOTONIC, as it starts to wait and once the lock is
 * its own.  How long the lock is held is not measured.
 *
 * lock_fd is never shared with another process: a forked child closes the
 * inherited one and opens its own (lock_after_fork), and claims a seat of
 * its own at its first lock.  An application must not close the library's
 * descriptors: one that closed lock_fd would drop the seat, and a holder
 * without its seat is taken for dead.
 */
#define LOCK_WAITERS 0x80000000u

static uint32_t seats_of(const struct ctl_header *h)
{
	/*
	 * Four per entry: joiners take one before their entry, and a claim
	 * probing from a random seat then finds one free within a probe or
	 * two even with every entry taken.
	 */
	return 4 * h->max_processes;
}

static int lock_fd_open(dynshm_instance *inst)
{
	return inst->lock_fd >= 0 ? 0 : live_open(inst, &inst->lock_fd);
}

/* A free seat, held through lock_fd from now until the instance closes. */
static int seat_claim(dynshm_instance *inst)
{
	uint32_t n = seats_of(inst->c.hdr), start;
	int rc = lock_fd_open(inst);

	if (rc < 0)
		return rc;
	start = (uint32_t)(inst_random(inst) % n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = (start + i) % n;
		struct flock fl = byte_of(F_WRLCK, CTL_SEAT_BASE + s);

		if (dynshm_sys.fcntl(inst->lock_fd, F_OFD_SETLK, &fl) == 0) {
			inst->seat = s;
			return 0;
		}
		if (errno != EAGAIN && errno != EACCES)
			return dynshm_fail(errno, "cannot lock a seat in '%s/"
						  PROCS_FILE "' for instance "
						  "'%s': %s",
					inst->dir, inst->name,
					strerror(errno));
	}
	return dynshm_fail(ENOSPC, "all %u lock seats of instance '%s' are "
				   "held (too many handles open)",
			n, inst->name);
}

/* Is seat s held by somebody (or in doubt)?  Never asked of our own. */
static bool seat_held(dynshm_instance *inst, uint32_t s)
{
	struct flock fl = byte_of(F_WRLCK, CTL_SEAT_BASE + s);
	struct stat st;

	if (dynshm_sys.fcntl(inst->lock_fd, F_OFD_GETLK, &fl) < 0 ||
	    fl.l_type != F_UNLCK)
		return true;
	/* "Nobody holds it": believed only of the file we opened. */
	return dynshm_sys.fstat(inst->lock_fd, &st) < 0 ||
	       st.st_dev != inst->live_dev || st.st_ino != inst->live_ino;
}

static long futex_wait(uint32_t *word, uint32_t val, long ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	return dynshm_sys.futex(word, FUTEX_WAIT, val, &ts);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The lock was just taken after the word was found held at the first
 * attempt (at since): count the wait (control.h, the lock's statistics).
 * Under the lock now, so plain stores.
 */
static int lock_waited(struct ctl_header *h, uint64_t since)
{
	uint64_t now = monotonic_ns();

	h->lock_acquisitions++;
	h->lock_waits++;
	h->lock_wait_ns += now > since ? now - since : 0;
	return 0;
}

/*
 * The word names the seat we have held since an earlier call, yet this
 * call does not hold the lock.  Nobody else can have taken it through
 * our seat unless our seat is no longer ours alone, so either a signal
 * handler of ours interrupted a call that holds the lock (the library is
 * not async-signal-safe), or the seat's descriptor was closed or
 * replaced (dup2) in some process that went on using it - here, with
 * another process claiming the seat since, or there, with us the
 * claimer.  Taking the lock over would make two holders, whose work
 * the other processes would share: refuse.
 */
static int own_seat_named(dynshm_instance *inst)
{
	return dynshm_fail(EDEADLK,
			"the control lock of instance '%s' is held under "
			"this process's own lock seat (%u) by another call: "
			"a dynshm call from a signal handler that interrupted "
			"one, or a process that closed or replaced (dup2) the "
			"library's descriptor of '%s/" PROCS_FILE "' and "
			"still uses its seat; not taken over",
			inst->name, inst->seat, inst->dir);
}

int lock_take(dynshm_instance *inst, bool wait, bool *stolen)
{
	struct ctl_header *h = inst->c.hdr;
	uint32_t *word = &h->lock_word;
	uint32_t n = seats_of(h), me, v = 0;
	bool timed_out = false, claimed = false;
	long ns = 1000000; /* 1 ms, doubling to 64 ms */
	uint64_t since;
	int rc;

	*stolen = false;
	if (inst->seat == CTL_NONE) {
		rc = seat_claim(inst);
		if (rc < 0)
			return rc;
		claimed = true;
	}
	me = inst->seat + 1;
	if (__atomic_compare_exchange_n(word, &v, me, false, __ATOMIC_ACQUIRE,
					__ATOMIC_RELAXED)) {
		h->lock_acquisitions++; /* ours now: a plain increment */
		return 0;
	}
	since = monotonic_ns(); /* the slow path only: the word was held */
	for (;;) {
		uint32_t holder;

		v = __atomic_load_n(word, __ATOMIC_RELAXED);
		if ((v & ~LOCK_WAITERS) == 0) {
			/* sleepers may remain: whoever takes it wakes them */
			if (__atomic_compare_exchange_n(word, &v, me | v, false,
							__ATOMIC_ACQUIRE,
							__ATOMIC_RELAXED))
				return lock_waited(h, since);
			continue;
		}
		holder = (v & ~LOCK_WAITERS) - 1;
		if (holder == inst->seat && !claimed)
			return own_seat_named(inst);
		/*
		 * Ours, just claimed: its last owner died holding the lock.
		 * Out of range (a scribble): nobody can hold it.  Timed out:
		 * ask.
		 */
		if (holder == inst->seat || holder >= n ||
		    (timed_out && !seat_held(inst, holder))) {
			if (__atomic_compare_exchange_n(
				    word, &v, me | (v & LOCK_WAITERS), false,
				    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				*stolen = true;
				return lock_waited(h, since);
			}
			continue;
		}
		if (!wait)
			return -EBUSY;
		if (!(v & LOCK_WAITERS)) {
			if (!__atomic_compare_exchange_n(
				    word, &v, v | LOCK_WAITERS, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				continue;
			v |= LOCK_WAITERS;
		}
		timed_out = futex_wait(word, v, ns) < 0 && errno == ETIMEDOUT;
		if (timed_out && ns < 64000000)
			ns *= 2;
	}
}

void lock_give(dynshm_instance *inst)
{
	uint32_t *word = &inst->c.hdr->lock_word;

	if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) & LOCK_WAITERS)
		dynshm_sys.futex(word, FUTEX_WAKE, INT32_MAX, NULL);
}

/*
 * In a forked child (instance.c, after_fork_child): the inherited lock
 * descriptor shares its description, and so its seat, with the parent.
 * Close it and open our own now - the slot just freed makes sure a child
 * at its descriptor limit still gets one; if that fails anyway, the next
 * lock tries again and says why.  The seat is claimed at the first lock.
 */
void lock_after_fork(dynshm_instance *inst)
{
	inst->seat = CTL_NONE;
	if (inst->lock_fd < 0)
		return;
	dynshm_sys.close(inst->lock_fd);
	inst->lock_fd = -1;
	if (live_open(inst, &inst->lock_fd) < 0)
		inst->lock_fd = -1;
	dynshm_clear_error();
}

/* ---- process tokens (the public calls are in instance.c) ----------------- */


/*
 * 1 while token's process is joined and alive (or in doubt), 0 once it
 * died or was released, -1 for a token that cannot be one.  Without the
 * control lock: a queue may ask often.  Entry and gen are read with
 * acquire loads; a gen that moved on is final (gens only grow), and a lock
 * found gone is final too (dead stays dead), so no torn view can turn a
 * live process into a dead one: "dead" needs the kernel's word about the
 * entry while it still carries the token's gen.  inst is entered.
 */
int live_token(dynshm_instance *inst, uint64_t token)
{
	uint32_t index = (uint32_t)token, gen = (uint32_t)(token >> 32), p;
	const struct ctl_proc *proc;
	uint32_t state;

	if (index == 0 || index > inst->c.hdr->max_processes)
		return -1;
	p = index - 1;
	proc = &inst->c.procs[p];
	state = __atomic_load_n(&proc->state, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&proc->gen, __ATOMIC_ACQUIRE) != gen ||
	    (state != PROC_LIVE && state != PROC_FORK))
		return 0; /* released, or never this token's */
	if (p == inst->me && gen == inst->me_gen)
		return 1; /* ourselves: our own lock is not reported to us */
	return live_held(inst, p) ? 1 : 0; /* 0: the next reap releases it */
}

