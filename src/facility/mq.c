/* SPDX-License-Identifier: MIT */
/*
 * mq.c - a single-sender, single-receiver message queue in shared memory.
 *
 * Why a ring with two counters: one writer per counter needs no lock, so a
 * process killed anywhere leaves nothing held, and the survivor can always
 * read a consistent state (PostgreSQL's shm_mq works the same way; pipes
 * and sockets cost two system calls and two copies per message, this ring
 * one copy and, when the other side is awake, no system call).
 *
 * The layout, the invariants of the ring and the wake-up protocol are in
 * mq.h, next to the structure they govern (as control.h does for the
 * control segment).
 */
#include "mq.h"

#include "../error.h"
#include "fsys.h"
#include "tlock.h"

#include <dynshm/facility.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a half-done message is being assembled into (receive side). */
enum mq_partial { PARTIAL_NONE, PARTIAL_COPY, PARTIAL_VIEW };

struct dynshm_mq {
	struct mq_shared *sh;
	unsigned char *ring;
	uint64_t ring_size;	/* local copy, never read back */
	dynshm_instance *inst;
	dynshm_mq_role role;
	uint64_t pos;		/* our counter: written or read */
	/* a long message in progress: footprint bytes done, its length */
	uint64_t done;
	uint64_t len;
	enum mq_partial partial;
	void *partial_buf;
	/* receiver: footprint of the message lent by the last view */
	uint64_t lent;
	uint64_t spin_ns;	/* the adaptive spin budget */
	uint64_t token;		/* ours, as attached */
	uint64_t peer_token;	/* the peer's, once seen */
	/*
	 * When the peer's liveness is next due to be checked by a call that
	 * would return -EAGAIN or -ETIMEDOUT (0: not waiting): a caller that
	 * polls with short timeouts never sleeps the 50 ms after which a
	 * waiting call looks, and must still learn that its peer died.
	 */
	uint64_t poll_check_at;
	unsigned fork_gen;	/* tlock_fork_generation() at attach */
	unsigned char *buf;	/* receiver: assembly buffer of views */
	size_t buf_cap;
};

/* ---- helpers --------------------------------------------------------------- */

static uint64_t round8(uint64_t v)
{
	return (v + 7) & ~UINT64_C(7);
}

static uint64_t shared_check(uint64_t ring_size)
{
	return (MQ_MAGIC ^ ring_size) * 0x100000001b3ull;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static int peer_of(dynshm_mq_role role)
{
	return role == DYNSHM_MQ_SENDER ? DYNSHM_MQ_RECEIVER : DYNSHM_MQ_SENDER;
}

/* The error for "the other side is gone", from our side's view. */
static int gone(const dynshm_mq *mq, const char *how)
{
	if (mq->role == DYNSHM_MQ_SENDER)
		return dynshm_fail(EPIPE, "the receiver of the message queue "
				   "at %p %s", (void *)mq->sh, how);
	return dynshm_fail(ECONNRESET, "the sender of the message queue at "
			   "%p %s", (void *)mq->sh, how);
}

static int corrupt(const dynshm_mq *mq, const char *what)
{
	return dynshm_fail(EUCLEAN, "the message queue at %p is corrupt (%s)",
			   (void *)mq->sh, what);
}

/* Ring bytes to = [pos, pos + n) of the stream, or from them. */
static void ring_put(dynshm_mq *mq, uint64_t pos, const void *src, size_t n)
{
	size_t off = (size_t)(pos % mq->ring_size);
	size_t first = mq->ring_size - off < n ? mq->ring_size - off : n;

	if (n == 0)
		return; /* src may be NULL */
	memcpy(mq->ring + off, src, first);
	memcpy(mq->ring, (const char *)src + first, n - first);
}

static void ring_get(const dynshm_mq *mq, uint64_t pos, void *dst, size_t n)
{
	size_t off = (size_t)(pos % mq->ring_size);
	size_t first = mq->ring_size - off < n ? mq->ring_size - off : n;

	if (n == 0)
		return; /* dst may be NULL */
	memcpy(dst, mq->ring + off, first);
	memcpy((char *)dst + first, mq->ring, n - first);
}

/* ---- counters, sleeping and waking ------------------------------------------ */

/* Bytes our side may use now: to read (receiver) or to fill (sender). */
static int ready_bytes(const dynshm_mq *mq, uint64_t *have)
{
	uint64_t other, used;

	if (mq->role == DYNSHM_MQ_RECEIVER) {
		other = __atomic_load_n(&mq->sh->written, __ATOMIC_ACQUIRE);
		used = other - mq->pos;
	} else {
		other = __atomic_load_n(&mq->sh->read, __ATOMIC_ACQUIRE);
		used = mq->pos - other;
	}
	if (other % 8 || used > mq->ring_size)
		return corrupt(mq, "the other side's counter is out of range");
	*have = mq->role == DYNSHM_MQ_RECEIVER ? used : mq->ring_size - used;
	return 0;
}

static uint32_t *my_sleep_word(dynshm_mq *mq)
{
	return mq->role == DYNSHM_MQ_RECEIVER ? &mq->sh->recv_sleep
					      : &mq->sh->send_sleep;
}

static uint32_t *peer_sleep_word(dynshm_mq *mq)
{
	return mq->role == DYNSHM_MQ_RECEIVER ? &mq->sh->send_sleep
					      : &mq->sh->recv_sleep;
}

static void wake(uint32_t *word)
{
	__atomic_store_n(word, 0, __ATOMIC_RELAXED);
	dynshm_fsys.futex(word, FUTEX_WAKE, 1, NULL);
}

/* Move our counter forward by n (ring bytes done) and wake a sleeper. */
static void publish(dynshm_mq *mq, uint64_t n)
{
	uint64_t *counter = mq->role == DYNSHM_MQ_RECEIVER ? &mq->sh->read
							   : &mq->sh->written;
	uint32_t *peer = peer_sleep_word(mq);

	mq->pos += n;
	__atomic_store_n(counter, mq->pos, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(peer, __ATOMIC_RELAXED))
		wake(peer);
}

/* 0: the peer is still there (or not yet attached); else its error. */
static int peer_detached(dynshm_mq *mq)
{
	int peer = peer_of(mq->role);

	if (__atomic_load_n(&mq->sh->detached[peer], __ATOMIC_ACQUIRE))
		return gone(mq, "has detached");
	return 0;
}

/*
 * After a bounded sleep: is the queue still there, and the peer's process
 * alive?  A queue whose memory was reused (its segment destroyed under a
 * process that still maps it) or scribbled shows a wrong magic or a peer
 * token that changed; waiting on it would last forever.
 */
static int peer_alive(dynshm_mq *mq)
{
	int peer = peer_of(mq->role);
	uint64_t token = __atomic_load_n(&mq->sh->token[peer],
					 __ATOMIC_ACQUIRE);
	int alive;

	if (__atomic_load_n(&mq->sh->magic, __ATOMIC_RELAXED) != MQ_MAGIC ||
	    __atomic_load_n(&mq->sh->token[mq->role], __ATOMIC_RELAXED) !=
		    mq->token ||
	    (mq->peer_token && token != mq->peer_token))
		return corrupt(mq, "its header changed while waiting");
	mq->peer_token = token;
	if (token == 0)
		return 0;
	alive = dynshm_proc_alive(mq->inst, token);
	if (alive == 0 || alive == -EINVAL) {
		/* Say so for later calls: the dead cannot. */
		__atomic_store_n(&mq->sh->detached[peer], 1, __ATOMIC_RELEASE);
		return gone(mq, "died (its process is gone)");
	}
	return 0; /* alive, or in doubt */
}

struct deadline {
	int timeout_ms;
	uint64_t at; /* CLOCK_MONOTONIC ns, when timeout_ms > 0 */
};

static void deadline_start(struct deadline *dl, int timeout_ms)
{
	dl->timeout_ms = timeout_ms;
	dl->at = timeout_ms > 0 ? now_ns() + (uint64_t)timeout_ms * 1000000u
				: 0;
}

static int timed_out(dynshm_mq *mq)
{
	if (__atomic_load_n(&mq->sh->token[peer_of(mq->role)],
			    __ATOMIC_ACQUIRE) == 0)
		return dynshm_fail(ENOTCONN, "the %s of the message queue at "
				   "%p never attached",
				   mq->role == DYNSHM_MQ_SENDER ? "receiver"
								: "sender",
				   (void *)mq->sh);
	return dynshm_fail(ETIMEDOUT, "timed out waiting on the message queue "
			   "at %p", (void *)mq->sh);
}

/* Ready now, or after the peer's departure (the receiver drains first). */
static int check_ready(dynshm_mq *mq, uint64_t need, bool *ok)
{
	uint64_t have = 0;
	int rc = ready_bytes(mq, &have);

	*ok = rc == 0 && have >= need;
	if (rc < 0 || *ok)
		return rc;
	rc = peer_detached(mq);
	if (rc < 0 && mq->role == DYNSHM_MQ_RECEIVER &&
	    ready_bytes(mq, &have) == 0 && have >= need) {
		*ok = true; /* published before it detached */
		return 0;
	}
	return rc;
}

static int spin(dynshm_mq *mq, uint64_t need, bool *ok)
{
	uint64_t until = now_ns() + mq->spin_ns;
	int rc;

	do {
		for (int i = 0; i < 64; i++) {
			rc = check_ready(mq, need, ok);
			if (rc < 0 || *ok)
				return rc;
			cpu_relax();
		}
	} while (now_ns() < until);
	return 0;
}

/* Sleep on our word for at most bound ns; 1 if the bound expired. */
static int sleep_once(dynshm_mq *mq, const struct deadline *dl, uint64_t need,
		      uint64_t bound, bool *ok)
{
	uint32_t *word = my_sleep_word(mq);
	uint64_t now;
	struct timespec ts;
	long r;
	int rc;

	__atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	rc = check_ready(mq, need, ok);
	if (rc < 0 || *ok) {
		__atomic_store_n(word, 0, __ATOMIC_RELAXED);
		return rc;
	}
	if (dl->timeout_ms > 0) {
		now = now_ns();
		if (now >= dl->at) {
			__atomic_store_n(word, 0, __ATOMIC_RELAXED);
			return timed_out(mq);
		}
		if (dl->at - now < bound)
			bound = dl->at - now;
	}
	ts.tv_sec = (time_t)(bound / 1000000000u);
	ts.tv_nsec = (long)(bound % 1000000000u);
	r = dynshm_fsys.futex(word, FUTEX_WAIT, 1, &ts);
	__atomic_store_n(word, 0, __ATOMIC_RELAXED);
	if (r < 0 && errno == ETIMEDOUT)
		return 1;
	if (r < 0 && errno != EAGAIN && errno != EINTR)
		return dynshm_fail(errno, "cannot wait on the message queue at "
				   "%p: futex: %s", (void *)mq->sh,
				   strerror(errno));
	return 0;
}

/*
 * A call about to give up (-EAGAIN, -ETIMEDOUT): if the handle has been
 * waiting, call after call, for longer than MQ_LIVENESS_FIRST_MS since
 * the last look, look at the peer now (at most one check per bound, so
 * a busy poller costs one system call every 50 ms, not one per call).
 * rc is the error to return when the peer is still there.
 */
static int give_up(dynshm_mq *mq, int rc)
{
	uint64_t now = now_ns(), bound = (uint64_t)MQ_LIVENESS_FIRST_MS * 1000000u;
	int gone;

	if (mq->poll_check_at == 0) {
		mq->poll_check_at = now + bound;
		return rc;
	}
	if (now < mq->poll_check_at)
		return rc;
	mq->poll_check_at = now + bound;
	gone = peer_alive(mq);
	return gone < 0 ? gone : rc;
}

/*
 * Wait until need bytes are ready for our side.  -EAGAIN (timeout 0),
 * -ETIMEDOUT / -ENOTCONN (timeout over), or the peer's departure.
 */
static int wait_ready(dynshm_mq *mq, uint64_t need, const struct deadline *dl)
{
	uint64_t bound = (uint64_t)MQ_LIVENESS_FIRST_MS * 1000000u, check_at;
	bool ok;
	int rc = check_ready(mq, need, &ok);

	if (rc < 0)
		return rc;
	if (ok) {
		mq->poll_check_at = 0;
		return 0;
	}
	if (dl->timeout_ms == 0)
		return give_up(mq, dynshm_fail(EAGAIN, "the message queue at "
					       "%p is %s", (void *)mq->sh,
					       mq->role == DYNSHM_MQ_SENDER
						       ? "full"
						       : "empty"));
	rc = spin(mq, need, &ok);
	if (rc < 0 || ok) {
		if (ok) {
			mq->poll_check_at = 0;
			mq->spin_ns = mq->spin_ns * 2 < MQ_SPIN_MAX_NS
					      ? mq->spin_ns * 2
					      : MQ_SPIN_MAX_NS;
		}
		return rc;
	}
	if (mq->spin_ns > MQ_SPIN_MIN_NS)
		mq->spin_ns /= 2;
	/*
	 * The liveness check is due by the clock, not when a futex wait
	 * times out: a process whose waits keep being interrupted (a signal
	 * handler on a timer, say, EINTR) would otherwise never look, and
	 * wait forever on a peer killed by SIGKILL.
	 */
	check_at = now_ns() + bound;
	while (rc == 0 && !ok) {
		uint64_t now = now_ns();

		if (now >= check_at) {
			rc = peer_alive(mq);
			if (rc < 0)
				break;
			if (bound < (uint64_t)MQ_LIVENESS_MAX_MS * 1000000u)
				bound *= 2;
			check_at = now + bound;
		}
		rc = sleep_once(mq, dl, need, check_at - now, &ok);
		if (rc == 1)
			rc = 0; /* the bound expired: the check above is due */
		if (rc == 0 && !ok)
			rc = check_ready(mq, need, &ok);
	}
	if (rc == -ETIMEDOUT)
		return give_up(mq, rc);
	if (ok)
		mq->poll_check_at = 0;
	return rc;
}

/*
 * A long message streams in pieces: wait for room (or bytes), then the
 * size of the next piece of its footprint, a multiple of 8.
 */
static int next_piece(dynshm_mq *mq, uint64_t footprint,
		      const struct deadline *dl, uint64_t *n)
{
	uint64_t have = 0;
	int rc = wait_ready(mq, 8, dl);

	if (rc == 0)
		rc = ready_bytes(mq, &have);
	if (rc < 0)
		return rc;
	*n = footprint - mq->done < have ? footprint - mq->done : have;
	return 0;
}

/* ---- create, attach, detach ------------------------------------------------- */

DYNSHM_EXPORT size_t dynshm_mq_estimate(size_t ring_size)
{
	if (ring_size > SIZE_MAX - sizeof(struct mq_shared) - 8)
		return 0;
	if (ring_size < MQ_MIN_RING) /* what dynshm_mq_create needs */
		ring_size = MQ_MIN_RING;
	return sizeof(struct mq_shared) + (size_t)round8(ring_size);
}

DYNSHM_EXPORT int dynshm_mq_create(void *chunk, size_t size)
{
	struct mq_shared *sh = chunk;
	uint64_t ring;

	if (!chunk || (uintptr_t)chunk % 8)
		return dynshm_fail(EINVAL, "a message queue needs an 8-byte "
				   "aligned chunk");
	if (size < sizeof(*sh) + MQ_MIN_RING)
		return dynshm_fail(EINVAL, "%zu bytes are too few for a message "
				   "queue (at least %zu)", size,
				   sizeof(*sh) + MQ_MIN_RING);
	ring = (size - sizeof(*sh)) & ~UINT64_C(7);
	memset(sh, 0, sizeof(*sh));
	sh->ring_size = ring;
	sh->check = shared_check(ring);
	__atomic_store_n(&sh->magic, MQ_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

static int validate(struct mq_shared *sh, size_t size, uint64_t *ring)
{
	if (size < sizeof(*sh) ||
	    __atomic_load_n(&sh->magic, __ATOMIC_ACQUIRE) != MQ_MAGIC)
		return dynshm_fail(EUCLEAN, "no message queue at %p (bad magic; "
				   "was it created?)", (void *)sh);
	*ring = sh->ring_size;
	if (sh->check != shared_check(*ring) || *ring % 8 ||
	    *ring < MQ_MIN_RING || *ring > size - sizeof(*sh))
		return dynshm_fail(EUCLEAN, "the message queue at %p is corrupt "
				   "(its ring size does not fit %zu bytes)",
				   (void *)sh, size);
	return 0;
}

DYNSHM_EXPORT int dynshm_mq_attach(dynshm_instance *inst, void *chunk,
				   size_t size, dynshm_mq_role role,
				   dynshm_mq **out)
{
	struct mq_shared *sh = chunk;
	uint64_t ring = 0, token, expected = 0;
	dynshm_mq *mq;
	int rc;

	if (!inst || !chunk || !out || (uintptr_t)chunk % 8 ||
	    (role != DYNSHM_MQ_SENDER && role != DYNSHM_MQ_RECEIVER))
		return dynshm_fail(EINVAL, "dynshm_mq_attach needs an instance, "
				   "an 8-byte aligned chunk, a role "
				   "(DYNSHM_MQ_SENDER or DYNSHM_MQ_RECEIVER) "
				   "and a place for the handle");
	rc = validate(sh, size, &ring);
	if (rc < 0)
		return rc;
	rc = dynshm_proc_self(inst, &token);
	if (rc < 0)
		return rc;
	mq = calloc(1, sizeof(*mq));
	if (!mq)
		return dynshm_fail(ENOMEM, "cannot allocate a message queue "
				   "handle");
	if (!__atomic_compare_exchange_n(&sh->token[role], &expected, token,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		free(mq);
		return dynshm_fail(EBUSY, "the %s of the message queue at %p "
				   "has attached already (one per queue)",
				   role == DYNSHM_MQ_SENDER ? "sender"
							    : "receiver", chunk);
	}
	mq->sh = sh;
	mq->ring = sh->ring;
	mq->ring_size = ring;
	mq->inst = inst;
	mq->role = role;
	mq->spin_ns = MQ_SPIN_MAX_NS;
	mq->token = token;
	mq->fork_gen = tlock_fork_generation();
	mq->pos = __atomic_load_n(role == DYNSHM_MQ_SENDER ? &sh->written
							   : &sh->read,
				  __ATOMIC_ACQUIRE);
	*out = mq;
	return 0;
}

/*
 * A queue end belongs to the process that attached it: the peer judges
 * it by that process's token, so a forked child sending or receiving
 * through an end it inherited would be taken for gone when its parent
 * leaves (and both would move one counter).  In a child the inherited
 * handle is refused, and its detach frees only the child's copy.
 */
static bool attached_here(const dynshm_mq *mq)
{
	return mq->fork_gen ==
	       atomic_load_explicit(&tlock_fork_gen, memory_order_relaxed);
}

static int not_here(const dynshm_mq *mq)
{
	return dynshm_fail(EBADFD, "this %s end of the message queue at %p "
			   "was attached by the process this one was forked "
			   "from, and belongs to it: attach a free end here "
			   "instead", mq->role == DYNSHM_MQ_SENDER ? "sender" :
			   "receiver", (void *)mq->sh);
}

DYNSHM_EXPORT int dynshm_mq_detach(dynshm_mq *mq)
{
	if (!mq)
		return dynshm_fail(EINVAL, "no message queue given");
	if (!attached_here(mq)) { /* the parent's end: ours is the copy */
		free(mq->buf);
		free(mq);
		return 0;
	}
	__atomic_store_n(&mq->sh->detached[mq->role], 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wake(peer_sleep_word(mq));
	free(mq->buf);
	free(mq);
	return 0;
}

/* ---- sending ------------------------------------------------------------------ */

/* Copy bytes [from, from + n) of the message's payload, gathered from iov. */
static void gather(const struct iovec *iov, int iovcnt, uint64_t from,
		   unsigned char *dst, size_t n)
{
	for (int i = 0; i < iovcnt && n > 0; i++) {
		size_t take;

		if (from >= iov[i].iov_len) {
			from -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - from < n ? iov[i].iov_len - from : n;
		memcpy(dst, (const char *)iov[i].iov_base + from, take);
		dst += take;
		n -= take;
		from = 0;
	}
}

/*
 * Put bytes [from, from + n) of the message's footprint (length word,
 * payload, padding) at our counter.  The padding is left as it was.
 */
static void put_footprint(dynshm_mq *mq, const struct iovec *iov, int iovcnt,
			  uint64_t from, uint64_t n)
{
	uint64_t pos = mq->pos, end = from + n;
	unsigned char chunk[256];

	if (from < 8) {
		ring_put(mq, pos, (const char *)&mq->len + from, 8 - from);
		pos += 8 - from;
		from = 8;
	}
	if (end > 8 + mq->len)
		end = 8 + mq->len;
	while (from < end) {
		size_t off = (size_t)(pos % mq->ring_size);
		size_t room = (size_t)(mq->ring_size - off);
		size_t take = end - from < room ? (size_t)(end - from) : room;

		if (iovcnt == 1) {
			memcpy(mq->ring + off,
			       (const char *)iov[0].iov_base + (from - 8), take);
		} else {
			if (take > sizeof(chunk))
				take = sizeof(chunk);
			gather(iov, iovcnt, from - 8, chunk, take);
			memcpy(mq->ring + off, chunk, take);
		}
		pos += take;
		from += take;
	}
}

static int check_resume(dynshm_mq *mq, uint64_t len)
{
	if (mq->done && mq->len != len)
		return dynshm_fail(EINVAL, "a message of %" PRIu64 " bytes is "
				   "half sent on the message queue at %p: "
				   "call again with the same message",
				   mq->len, (void *)mq->sh);
	mq->len = len;
	return 0;
}

static int send_whole(dynshm_mq *mq, const struct iovec *iov, int iovcnt,
		      uint64_t footprint, const struct deadline *dl)
{
	int rc = wait_ready(mq, footprint, dl);

	if (rc < 0)
		return rc;
	put_footprint(mq, iov, iovcnt, 0, footprint);
	publish(mq, footprint);
	return 0;
}

static int send_streamed(dynshm_mq *mq, const struct iovec *iov, int iovcnt,
			 uint64_t footprint, const struct deadline *dl)
{
	while (mq->done < footprint) {
		uint64_t n;
		int rc = next_piece(mq, footprint, dl, &n);

		if (rc < 0)
			return rc;
		put_footprint(mq, iov, iovcnt, mq->done, n);
		publish(mq, n);
		mq->done += n;
	}
	mq->done = 0;
	return 0;
}

DYNSHM_EXPORT int dynshm_mq_sendv(dynshm_mq *mq, const struct iovec *iov,
				  int iovcnt, int timeout_ms)
{
	struct deadline dl;
	uint64_t len = 0, footprint;
	int rc;

	if (!mq || mq->role != DYNSHM_MQ_SENDER || iovcnt < 0 ||
	    (iovcnt > 0 && !iov))
		return dynshm_fail(EINVAL, "dynshm_mq_send needs a queue "
				   "attached as sender and the message");
	if (!attached_here(mq))
		return not_here(mq);
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && !iov[i].iov_base)
			return dynshm_fail(EINVAL, "iovec %d has no buffer", i);
		/* compared before the sum, which could wrap to a small one */
		if (iov[i].iov_len > MQ_MAX_MSG - len)
			return dynshm_fail(EMSGSIZE, "a message is at most %"
					   PRIu64 " bytes", MQ_MAX_MSG);
		len += iov[i].iov_len;
	}
	rc = peer_detached(mq);
	if (rc == 0)
		rc = check_resume(mq, len);
	if (rc < 0)
		return rc;
	deadline_start(&dl, timeout_ms);
	footprint = 8 + round8(len);
	if (footprint <= mq->ring_size)
		return send_whole(mq, iov, iovcnt, footprint, &dl);
	return send_streamed(mq, iov, iovcnt, footprint, &dl);
}

DYNSHM_EXPORT int dynshm_mq_send(dynshm_mq *mq, const void *data, size_t len,
				 int timeout_ms)
{
	struct iovec iov = { (void *)(uintptr_t)data, len };

	return dynshm_mq_sendv(mq, &iov, 1, timeout_ms);
}

/* ---- receiving ---------------------------------------------------------------- */

/* Give back the ring space of the last view. */
static void return_lent(dynshm_mq *mq)
{
	if (mq->lent) {
		publish(mq, mq->lent);
		mq->lent = 0;
	}
}

static int grow_buf(dynshm_mq *mq, uint64_t len)
{
	unsigned char *p;

	if (len <= mq->buf_cap)
		return 0;
	if (len > SIZE_MAX)
		return dynshm_fail(ENOMEM, "cannot hold a message of %" PRIu64
				   " bytes", len);
	p = realloc(mq->buf, (size_t)len);
	if (!p)
		return dynshm_fail(ENOMEM, "cannot allocate %" PRIu64 " bytes "
				   "for a message of the queue at %p", len,
				   (void *)mq->sh);
	mq->buf = p;
	mq->buf_cap = (size_t)len;
	return 0;
}

/* The next message's length word; nothing consumed. */
static int peek_len(dynshm_mq *mq, const struct deadline *dl, uint64_t *len)
{
	int rc = wait_ready(mq, 8, dl);

	if (rc < 0)
		return rc;
	ring_get(mq, mq->pos, len, 8);
	if (*len > MQ_MAX_MSG)
		return corrupt(mq, "a message length is out of range");
	return 0;
}

/*
 * Room for the first `need` bytes of a long message being assembled for a
 * view.  The buffer grows as the bytes arrive, not to the announced
 * length at once: a length word scribbled to a huge value then costs
 * memory only for bytes that really came.
 */
static int view_room(dynshm_mq *mq, uint64_t need)
{
	uint64_t cap = mq->buf_cap;

	if (need <= cap)
		return 0;
	cap = cap * 2 > need ? cap * 2 : need;
	return grow_buf(mq, cap < mq->len ? cap : mq->len);
}

/*
 * Stream a long message into dst (NULL: the handle's buffer, for a view),
 * resuming where an earlier call stopped.
 */
static int receive_streamed(dynshm_mq *mq, unsigned char *dst,
			    const struct deadline *dl)
{
	uint64_t footprint = 8 + round8(mq->len);

	while (mq->done < footprint) {
		uint64_t n, from, to;
		int rc = next_piece(mq, footprint, dl, &n);

		if (rc < 0)
			return rc;
		from = mq->done < 8 ? 8 : mq->done;
		to = mq->done + n < 8 + mq->len ? mq->done + n : 8 + mq->len;
		if (!dst && to > from && (rc = view_room(mq, to - 8)) < 0)
			return rc;
		if (to > from)
			ring_get(mq, mq->pos + (from - mq->done),
				 (dst ? dst : mq->buf) + from - 8,
				 (size_t)(to - from));
		publish(mq, n);
		mq->done += n;
	}
	mq->done = 0;
	mq->partial = PARTIAL_NONE;
	return 0;
}

/*
 * The next message: *len, and either copied into dst (when dst is given)
 * or, when view is set and it is contiguous, *view pointing into the ring.
 */
static int receive_whole(dynshm_mq *mq, uint64_t len, unsigned char *dst,
			 const void **view, const struct deadline *dl)
{
	uint64_t footprint = 8 + round8(len);
	size_t off = (size_t)((mq->pos + 8) % mq->ring_size);
	int rc = wait_ready(mq, footprint, dl);

	if (rc < 0)
		return rc;
	if (view && off + len <= mq->ring_size) {
		*view = mq->ring + off;
		mq->lent = footprint;
		return 0;
	}
	if (view) {
		rc = grow_buf(mq, len);
		if (rc < 0)
			return rc;
		dst = mq->buf;
		*view = mq->buf;
	}
	ring_get(mq, mq->pos + 8, dst, (size_t)len);
	publish(mq, footprint);
	return 0;
}

static int receive(dynshm_mq *mq, void *buf, size_t cap, const void **view,
		   size_t *len, int timeout_ms)
{
	enum mq_partial kind = view ? PARTIAL_VIEW : PARTIAL_COPY;
	struct deadline dl;
	uint64_t n;
	int rc;

	if (!mq || mq->role != DYNSHM_MQ_RECEIVER || !len ||
	    (!view && cap && !buf))
		return dynshm_fail(EINVAL, "dynshm_mq_receive needs a queue "
				   "attached as receiver and a place for the "
				   "message");
	if (!attached_here(mq))
		return not_here(mq);
	return_lent(mq);
	deadline_start(&dl, timeout_ms);
	if (mq->partial != PARTIAL_NONE) {
		if (mq->partial != kind || (!view && mq->partial_buf != buf))
			return dynshm_fail(EINVAL, "a long message is half "
					   "received from the queue at %p: "
					   "call again the same way",
					   (void *)mq->sh);
	} else {
		rc = peek_len(mq, &dl, &n);
		if (rc < 0)
			return rc;
		if (!view && n > cap) {
			*len = (size_t)n;
			return dynshm_fail(EMSGSIZE, "the next message of the "
					   "queue at %p has %" PRIu64 " bytes, "
					   "more than the %zu given",
					   (void *)mq->sh, n, cap);
		}
		if (8 + round8(n) <= mq->ring_size) {
			rc = receive_whole(mq, n, buf, view, &dl);
			if (rc == 0)
				*len = (size_t)n;
			return rc;
		}
		mq->len = n;
		mq->done = 0;
		mq->partial = kind;
		mq->partial_buf = view ? NULL : buf;
	}
	rc = receive_streamed(mq, mq->partial_buf, &dl);
	if (rc < 0)
		return rc;
	*len = (size_t)mq->len;
	if (view)
		*view = mq->buf;
	return 0;
}

DYNSHM_EXPORT int dynshm_mq_receive(dynshm_mq *mq, void *buf, size_t cap,
				    size_t *len, int timeout_ms)
{
	return receive(mq, buf, cap, NULL, len, timeout_ms);
}

DYNSHM_EXPORT int dynshm_mq_receive_view(dynshm_mq *mq, const void **data,
					 size_t *len, int timeout_ms)
{
	if (!data)
		return dynshm_fail(EINVAL, "dynshm_mq_receive_view needs a "
				   "place for the message's address");
	return receive(mq, NULL, 0, data, len, timeout_ms);
}
