/* SPDX-License-Identifier: MIT */
/*
 * test_mq.c - the message queue (include/dynshm/facility.h,
 * src/facility/mq.c), per backend and in the region.
 *
 * Each backend (posix, sysv, mmap, and posix with a region) runs the same
 * group; the queue lives in a segment of that kind.  What must hold:
 *   - a stream of messages of random lengths (1 byte to 4x the ring, so
 *     some are streamed in pieces) arrives whole and in order between two
 *     processes, received alternately by copy and by view (a million on
 *     the first backend, fewer on the others: the path is the same);
 *   - a view points into the ring when the message is contiguous there and
 *     into the handle's buffer when it wraps; counters go round the ring
 *     many times;
 *   - non-blocking calls say -EAGAIN, timeouts -ETIMEDOUT, a side whose
 *     peer never attached -ENOTCONN; a half-done long message resumes;
 *   - detach: the receiver drains what was sent, then -ECONNRESET; a
 *     sender to a detached receiver gets -EPIPE; a role attaches once;
 *   - a peer killed with SIGKILL at random moments (sending, receiving,
 *     or idle): the survivor gets the error, never hangs (the meson timeout
 *     would catch it), and the instance leaves nothing behind;
 *   - a scribbled queue header and ring: errors, never a crash nor an
 *     access outside the chunk (it sits between two PROT_NONE pages);
 *   - a futex wait interrupted by EINTR (dynshm_fsys) just waits again,
 *     and waits cut short again and again still notice a dead peer.
 * Nothing here measures time; the few sleeps only make a kill land while
 * the survivor is asleep rather than spinning, and the test holds either way.
 */
#include "testutil.h"

#include "src/facility/fsys.h"
#include "src/facility/mq.h"

#include <dynshm/facility.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The library gives test instances ids with TEST_TAG (src/wrapper.h). */
extern int dynshm_test_instance_tag;

#define RING 1024
#define MAXMSG (4 * RING)

struct where {
	const char *name;
	const char *backend;
	const char *region; /* min_dynamic_shared_memory, or NULL */
	long messages;	    /* for the stream test */
};

static const struct where wheres[] = {
	{ "posix", "posix", NULL, 1000000 },
	{ "sysv", "sysv", NULL, 50000 },
	{ "mmap", "mmap", NULL, 50000 },
	{ "region", "posix", "4MB", 50000 },
};

static const struct where *current;

struct fixture {
	char *dir;
	dynshm_instance *inst;
	dynshm_segment *seg;
	void *chunk;
	size_t size;
};

static struct fixture fx;

/* ---- setup ----------------------------------------------------------------- */

static int setup(void **state)
{
	char path[PATH_MAX];
	dynshm_config *cfg = NULL;
	int rc;

	memset(&fx, 0, sizeof(fx));
	dynshm_fsys_reset();
	fx.dir = test_make_dir();
	if (!fx.dir)
		return -1;
	snprintf(path, sizeof(path), "%s/inst", fx.dir);
	if (dynshm_config_new(&cfg) < 0 ||
	    dynshm_config_set(cfg, "dynamic_shared_memory_type",
			      current->backend) < 0)
		return -1;
	if (current->region &&
	    (dynshm_config_set(cfg, "min_dynamic_shared_memory",
			       current->region) < 0 ||
	     dynshm_config_set(cfg, "huge_pages", "off") < 0))
		return -1;
	rc = dynshm_instance_open(path, cfg, 0, &fx.inst);
	dynshm_config_free(cfg);
	if (rc < 0)
		return -1;
	fx.size = dynshm_mq_estimate(RING);
	if (dynshm_create(fx.inst, fx.size,
			  current->region ? DYNSHM_CREATE_REGION : 0,
			  &fx.seg) < 0)
		return -1;
	fx.chunk = dynshm_segment_address(fx.seg);
	*state = &fx;
	return dynshm_mq_create(fx.chunk, fx.size) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	dynshm_fsys_reset();
	if (fx.seg)
		dynshm_detach(fx.seg);
	if (fx.inst && dynshm_instance_destroy(fx.inst) < 0)
		return -1;
	if (test_remove_dir(fx.dir) < 0)
		return -1;
	return test_check_leftovers(current->name);
}

static dynshm_mq *attach(dynshm_mq_role role)
{
	dynshm_mq *mq = NULL;

	assert_int_equal(dynshm_mq_attach(fx.inst, fx.chunk, fx.size, role,
					  &mq),
			 0);
	return mq;
}

/* ---- messages ------------------------------------------------------------- */

static unsigned char pattern(uint64_t seq, size_t i)
{
	return (unsigned char)((seq * 2654435761u >> 13) + i * 7);
}

static void fill(unsigned char *buf, uint64_t seq, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(seq, i);
}

static bool intact(const unsigned char *buf, uint64_t seq, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pattern(seq, i))
			return false;
	return true;
}

/* 1 .. MAXMSG, spread evenly over the powers of two. */
static size_t random_len(unsigned *seed)
{
	unsigned bits = 1 + (unsigned)rand_r(seed) % 13;
	size_t len = 1 + (size_t)rand_r(seed) % ((size_t)1 << bits);

	return len > MAXMSG ? MAXMSG : len;
}

/* Send message seq of len bytes, as one buffer or as three. */
static int send_msg(dynshm_mq *mq, const unsigned char *buf, size_t len,
		    uint64_t seq, int timeout_ms)
{
	struct iovec iov[3];
	size_t a = len / 3, b = len / 2;

	if (seq % 2 == 0)
		return dynshm_mq_send(mq, buf, len, timeout_ms);
	iov[0].iov_base = (void *)(uintptr_t)buf;
	iov[0].iov_len = a;
	iov[1].iov_base = (void *)(uintptr_t)(buf + a);
	iov[1].iov_len = b - a;
	iov[2].iov_base = (void *)(uintptr_t)(buf + b);
	iov[2].iov_len = len - b;
	return dynshm_mq_sendv(mq, iov, 3, timeout_ms);
}

/* ---- a stream between two processes ------------------------------------------ */

struct stream {
	long count;
	unsigned seed;
};

static int sender_child(void *arg)
{
	const struct stream *s = arg;
	unsigned char *buf = malloc(MAXMSG);
	unsigned seed = s->seed;
	dynshm_mq *mq = NULL;

	CHILD_CHECK(buf != NULL);
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_SENDER, &mq) == 0);
	for (long seq = 0; seq < s->count; seq++) {
		size_t len = random_len(&seed);

		fill(buf, (uint64_t)seq, len);
		CHILD_CHECK(send_msg(mq, buf, len, (uint64_t)seq, -1) == 0);
	}
	CHILD_CHECK(dynshm_mq_detach(mq) == 0);
	free(buf);
	return 0;
}

static pid_t start(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

static void test_stream(void **state)
{
	/* under valgrind every copy is emulated: the path, not the count */
	struct stream s = { test_under_valgrind() ? 5000 : current->messages,
			    7 };
	static unsigned char buf[MAXMSG]; /* not malloc: see the fork */
	unsigned seed = s.seed;
	dynshm_mq *mq;
	long views = 0, copies = 0;
	pid_t pid;

	(void)state;
	/* fork first: a child holding our handle would leak it (valgrind) */
	pid = start(sender_child, &s);
	mq = attach(DYNSHM_MQ_RECEIVER);
	for (long seq = 0; seq < s.count; seq++) {
		size_t want = random_len(&seed), len = 0;
		const void *data;

		if (seq % 3 == 0) {
			assert_int_equal(dynshm_mq_receive(mq, buf, MAXMSG,
							   &len, -1),
					 0);
			data = buf;
			copies++;
		} else {
			assert_int_equal(dynshm_mq_receive_view(mq, &data,
								&len, -1),
					 0);
			views++;
		}
		assert_int_equal(len, want);
		if (!intact(data, (uint64_t)seq, len))
			fail_msg("message %ld (%zu bytes) is damaged", seq,
				 len);
	}
	/* the sender detached after its last message: the end */
	{
		size_t len;

		assert_int_equal(dynshm_mq_receive(mq, buf, MAXMSG, &len, -1),
				 -ECONNRESET);
	}
	assert_int_equal(test_wait(pid), 0);
	printf("%s: %ld messages (%ld by view, %ld by copy)\n", current->name,
	       s.count, views, copies);
	assert_int_equal(dynshm_mq_detach(mq), 0);
}

/* ---- views, copies and wrap-around in one process ----------------------------- */

static void test_view_copy_wrap(void **state)
{
	dynshm_mq *rx = attach(DYNSHM_MQ_RECEIVER);
	dynshm_mq *tx = attach(DYNSHM_MQ_SENDER);
	unsigned char buf[RING], got[RING];
	const unsigned char *ring_lo = fx.chunk,
			    *ring_hi = ring_lo + fx.size;
	uint64_t sent = 0, recvd = 0, bytes = 0;
	unsigned seed = 3, in_ring = 0, wrapped = 0;
	size_t lens[64];

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t len = 1 + (size_t)rand_r(&seed) % 300;
		const void *data;
		size_t n;
		int rc;

		fill(buf, sent, len);
		rc = dynshm_mq_send(tx, buf, len, 0);
		if (rc == 0) {
			lens[sent++ % 64] = len;
			bytes += len;
			continue;
		}
		assert_int_equal(rc, -EAGAIN);
		if (recvd % 2) {
			assert_int_equal(dynshm_mq_receive_view(rx, &data, &n,
								0),
					 0);
			if ((const unsigned char *)data >= ring_lo &&
			    (const unsigned char *)data < ring_hi)
				in_ring++;
			else
				wrapped++;
		} else {
			assert_int_equal(dynshm_mq_receive(rx, got, sizeof(got),
							   &n, 0),
					 0);
			data = got;
		}
		assert_int_equal(n, lens[recvd % 64]);
		assert_true(intact(data, recvd, n));
		recvd++;
	}
	/* both kinds of view happened, and the counters went round often */
	assert_true(in_ring > 100);
	assert_true(wrapped > 10);
	assert_true(bytes > 100 * RING);
	/* too small a buffer: the length, and nothing consumed */
	{
		size_t n = 0;

		while (recvd < sent) {
			assert_int_equal(dynshm_mq_receive(rx, got, 0, &n, 0),
					 -EMSGSIZE);
			assert_int_equal(n, lens[recvd % 64]);
			assert_int_equal(dynshm_mq_receive(rx, got, n, &n, 0),
					 0);
			assert_true(intact(got, recvd, n));
			recvd++;
		}
		assert_int_equal(dynshm_mq_receive(rx, got, sizeof(got), &n, 0),
				 -EAGAIN);
	}
	/* an empty message */
	{
		const void *data;
		size_t n = 99;

		assert_int_equal(dynshm_mq_send(tx, NULL, 0, 0), 0);
		assert_int_equal(dynshm_mq_receive_view(rx, &data, &n, 0), 0);
		assert_int_equal(n, 0);
	}
	assert_int_equal(dynshm_mq_detach(tx), 0);
	assert_int_equal(dynshm_mq_detach(rx), 0);
}

/* ---- non-blocking calls, timeouts, resuming a long message --------------------- */

static void test_nonblocking_timeouts(void **state)
{
	static unsigned char big[3 * MAXMSG], got[3 * MAXMSG];
	dynshm_mq *rx = attach(DYNSHM_MQ_RECEIVER), *tx;
	size_t n, len = 3 * MAXMSG - 5;
	const void *data;
	int rc, rounds = 0;

	(void)state;
	/* no sender yet */
	assert_int_equal(dynshm_mq_receive(rx, got, sizeof(got), &n, 0),
			 -EAGAIN);
	assert_int_equal(dynshm_mq_receive(rx, got, sizeof(got), &n, 30),
			 -ENOTCONN);
	tx = attach(DYNSHM_MQ_SENDER);
	assert_int_equal(dynshm_mq_receive_view(rx, &data, &n, 30),
			 -ETIMEDOUT);
	/* fill the ring */
	while ((rc = dynshm_mq_send(tx, big, 100, 0)) == 0)
		rounds++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(rounds > 0 && rounds < RING / 100 + 1);
	assert_int_equal(dynshm_mq_send(tx, big, 100, 30), -ETIMEDOUT);
	while (rounds-- > 0)
		assert_int_equal(dynshm_mq_receive(rx, got, sizeof(got), &n, 0),
				 0);
	/* a message of 12x the ring, pushed and pulled without blocking */
	fill(big, 77, len);
	{
		int srx = -EAGAIN, stx = -EAGAIN;

		rounds = 0;
		while (srx != 0) {
			if (stx != 0) {
				stx = dynshm_mq_send(tx, big, len, 0);
				assert_true(stx == 0 || stx == -EAGAIN);
			}
			srx = dynshm_mq_receive(rx, got, sizeof(got), &n, 0);
			assert_true(srx == 0 || srx == -EAGAIN);
			if (rounds++ == 2 && srx == -EAGAIN) {
				/* half-received: another kind of call is
				 * refused, the same one goes on */
				assert_int_equal(dynshm_mq_receive_view(
							 rx, &data, &n, 0),
						 -EINVAL);
			}
		}
		assert_int_equal(stx, 0);
		assert_true(rounds > 10);
		assert_int_equal(n, len);
		assert_true(intact(got, 77, len));
	}
	/* a half-sent message must be finished with the same length */
	assert_int_equal(dynshm_mq_send(tx, big, len, 0), -EAGAIN);
	assert_int_equal(dynshm_mq_send(tx, big, 10, 0), -EINVAL);
	while (dynshm_mq_send(tx, big, len, 0) != 0)
		assert_int_equal(dynshm_mq_receive_view(rx, &data, &n, 0),
				 -EAGAIN);
	assert_int_equal(dynshm_mq_receive_view(rx, &data, &n, 0), 0);
	assert_int_equal(n, len);
	assert_true(intact(data, 77, len));
	assert_int_equal(dynshm_mq_detach(tx), 0);
	assert_int_equal(dynshm_mq_detach(rx), 0);
}

static void test_sender_without_receiver(void **state)
{
	dynshm_mq *tx = attach(DYNSHM_MQ_SENDER);
	unsigned char buf[64] = { 0 };
	int rc;

	(void)state;
	while ((rc = dynshm_mq_send(tx, buf, sizeof(buf), 0)) == 0)
		;
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(dynshm_mq_send(tx, buf, sizeof(buf), 30), -ENOTCONN);
	assert_int_equal(dynshm_mq_detach(tx), 0);
}

/* ---- detach -------------------------------------------------------------------- */

static void test_detach(void **state)
{
	dynshm_mq *rx = attach(DYNSHM_MQ_RECEIVER);
	dynshm_mq *tx = attach(DYNSHM_MQ_SENDER), *again = NULL;
	unsigned char buf[MAXMSG];
	size_t n;

	(void)state;
	assert_int_equal(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
					  DYNSHM_MQ_SENDER, &again),
			 -EBUSY);
	assert_int_equal(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
					  DYNSHM_MQ_RECEIVER, &again),
			 -EBUSY);
	for (uint64_t i = 0; i < 3; i++) {
		fill(buf, i, 10 + i);
		assert_int_equal(dynshm_mq_send(tx, buf, 10 + i, 0), 0);
	}
	assert_int_equal(dynshm_mq_detach(tx), 0);
	for (uint64_t i = 0; i < 3; i++) {
		assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, -1),
				 0);
		assert_int_equal(n, 10 + i);
		assert_true(intact(buf, i, n));
	}
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, -1),
			 -ECONNRESET);
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0),
			 -ECONNRESET);
	assert_int_equal(dynshm_mq_detach(rx), 0);

	/* the other way round: a sender whose receiver left */
	assert_int_equal(dynshm_mq_create(fx.chunk, fx.size), 0);
	rx = attach(DYNSHM_MQ_RECEIVER);
	tx = attach(DYNSHM_MQ_SENDER);
	assert_int_equal(dynshm_mq_detach(rx), 0);
	assert_int_equal(dynshm_mq_send(tx, buf, 10, -1), -EPIPE);
	assert_int_equal(dynshm_mq_detach(tx), 0);
}

/* ---- a peer killed with SIGKILL ------------------------------------------------- */

/* Send forever (until killed); arg: 1 to attach and then only sleep. */
static int endless_sender(void *arg)
{
	unsigned char *buf = malloc(MAXMSG);
	unsigned seed = (unsigned)getpid();
	dynshm_mq *mq = NULL;

	CHILD_CHECK(buf != NULL);
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_SENDER, &mq) == 0);
	for (uint64_t seq = 0;; seq++) {
		size_t len = random_len(&seed);

		if (arg)
			pause();
		fill(buf, seq, len);
		CHILD_CHECK(send_msg(mq, buf, len, seq, -1) == 0);
	}
}

/* Receive forever (until killed); arg: 1 to attach and then only sleep. */
static int endless_receiver(void *arg)
{
	unsigned char *buf = malloc(MAXMSG);
	dynshm_mq *mq = NULL;

	CHILD_CHECK(buf != NULL);
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_RECEIVER, &mq) == 0);
	for (uint64_t seq = 0;; seq++) {
		size_t len;

		if (arg)
			pause();
		CHILD_CHECK(dynshm_mq_receive(mq, buf, MAXMSG, &len, -1) == 0);
		CHILD_CHECK(intact(buf, seq, len));
	}
}

/*
 * Wait until the child has attached as role: a side whose peer never
 * attached waits for it as long as it is told to (forever, with -1).
 * Peeks at the queue's token words (src/facility/mq.h), which only a test
 * may do.
 */
static void wait_attached(dynshm_mq_role role)
{
	struct mq_shared *sh = fx.chunk;

	while (__atomic_load_n(&sh->token[role], __ATOMIC_ACQUIRE) == 0)
		sched_yield();
}

static void kill_at_random(pid_t pid, unsigned *seed)
{
	struct timespec ts = { 0, (long)(rand_r(seed) % 3000) * 1000 };

	nanosleep(&ts, NULL);
	assert_int_equal(kill(pid, SIGKILL), 0);
}

/* The survivor receives until the dead sender's error. */
static void survive_sender(unsigned *seed, bool idle)
{
	unsigned char *buf = malloc(MAXMSG);
	dynshm_mq *rx = attach(DYNSHM_MQ_RECEIVER);
	pid_t pid = start(endless_sender, idle ? (void *)1 : NULL);
	unsigned want = idle ? 0 : (unsigned)rand_r(seed) % 200;
	uint64_t seq = 0;
	size_t len;
	int rc;

	for (; seq < want; seq++) {
		assert_int_equal(dynshm_mq_receive(rx, buf, MAXMSG, &len, -1),
				 0);
		assert_true(intact(buf, seq, len));
	}
	wait_attached(DYNSHM_MQ_SENDER);
	kill_at_random(pid, seed);
	while ((rc = dynshm_mq_receive(rx, buf, MAXMSG, &len, -1)) == 0)
		assert_true(intact(buf, seq++, len));
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(test_wait(pid), 128 + SIGKILL);
	assert_int_equal(dynshm_mq_detach(rx), 0);
	free(buf);
}

/* The survivor sends until the dead receiver's error. */
static void survive_receiver(unsigned *seed, bool idle)
{
	unsigned char *buf = malloc(MAXMSG);
	dynshm_mq *tx = attach(DYNSHM_MQ_SENDER);
	pid_t pid = start(endless_receiver, idle ? (void *)1 : NULL);
	/* an idle receiver takes nothing: a blocking send would wait */
	unsigned want = idle ? 0 : (unsigned)rand_r(seed) % 200;
	uint64_t seq = 0;
	size_t len;
	int rc;

	for (; seq < want; seq++) {
		len = random_len(seed);
		fill(buf, seq, len);
		assert_int_equal(send_msg(tx, buf, len, seq, -1), 0);
	}
	wait_attached(DYNSHM_MQ_RECEIVER);
	kill_at_random(pid, seed);
	do {
		len = random_len(seed);
		fill(buf, seq, len);
		rc = send_msg(tx, buf, len, seq++, -1);
	} while (rc == 0);
	assert_int_equal(rc, -EPIPE);
	assert_int_equal(test_wait(pid), 128 + SIGKILL);
	assert_int_equal(dynshm_mq_detach(tx), 0);
	free(buf);
}

static void test_peer_killed(void **state)
{
	unsigned seed = 11;
	unsigned reaped = 0;

	(void)state;
	for (int round = 0; round < 12; round++) {
		assert_int_equal(dynshm_mq_create(fx.chunk, fx.size), 0);
		if (round % 2 == 0)
			survive_sender(&seed, round % 4 == 2);
		else
			survive_receiver(&seed, round % 4 == 3);
	}
	/* the dead were joined: their entries go, nothing else was theirs */
	assert_int_equal(dynshm_reap(fx.inst, &reaped), 0);
	assert_true(reaped <= 12);
}

/* ---- scribbles ------------------------------------------------------------------ */

/* size bytes between two PROT_NONE pages; unmap *map (*maplen bytes). */
static char *guarded(size_t size, void **map, size_t *maplen)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (size + page - 1) / page;
	char *m;

	*maplen = (pages + 2) * page;
	m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m, page, PROT_NONE), 0);
	assert_int_equal(mprotect(m + (pages + 1) * page, page, PROT_NONE), 0);
	*map = m;
	/* start page-aligned (so the guard is right before) ... */
	return m + page;
}

static void scribble_round(char *q, size_t size, unsigned *seed,
			   dynshm_mq *tx, dynshm_mq *rx, size_t *slen,
			   int *rkind)
{
	static unsigned char buf[3 * RING + 64];
	unsigned hits = 1 + (unsigned)rand_r(seed) % 4;
	const void *data;
	size_t n;
	int rc;

	for (unsigned k = 0; k < hits; k++) {
		size_t at = rand_r(seed) % 2 ? (size_t)rand_r(seed) % 192
					     : (size_t)rand_r(seed) % size;

		q[at] = (char)rand_r(seed);
	}
	for (int op = 0; op < 8; op++) {
		if (rand_r(seed) % 2) {
			rc = dynshm_mq_send(tx, buf, *slen, 0);
			if (rc == 0)
				*slen = (size_t)rand_r(seed) % sizeof(buf);
		} else if (*rkind) {
			rc = dynshm_mq_receive_view(rx, &data, &n, 0);
			if (rc == 0)
				*rkind = rand_r(seed) % 2;
		} else {
			rc = dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0);
			if (rc == 0 || rc == -EMSGSIZE)
				*rkind = rand_r(seed) % 2;
		}
		assert_true(rc <= 0);
	}
}

static void test_scribbled(void **state)
{
	size_t size = dynshm_mq_estimate(RING), maplen;
	void *map;
	char *q = guarded(size, &map, &maplen);
	char *saved = malloc(size);
	unsigned seed = 5;
	unsigned refused = 0;
	dynshm_mq *tx = NULL, *rx = NULL;

	(void)state;
	assert_non_null(saved);
	/* the end of the chunk against the guard page, too */
	for (int pass = 0; pass < 2; pass++) {
		char *base = pass ? q + (((size + 4095) & ~(size_t)4095) - size)
				  : q;
		size_t slen = 100;
		int rkind = 0;

		assert_int_equal(dynshm_mq_create(base, size), 0);
		memcpy(saved, base, size);
		for (int round = 0; round < 3000; round++) {
			if (round % 50 == 0) {
				if (tx)
					dynshm_mq_detach(tx);
				if (rx)
					dynshm_mq_detach(rx);
				memcpy(base, saved, size);
				assert_int_equal(dynshm_mq_attach(
							 fx.inst, base, size,
							 DYNSHM_MQ_SENDER, &tx),
						 0);
				assert_int_equal(dynshm_mq_attach(
							 fx.inst, base, size,
							 DYNSHM_MQ_RECEIVER,
							 &rx),
						 0);
				slen = 100;
				rkind = 0;
			}
			scribble_round(base, size, &seed, tx, rx, &slen,
				       &rkind);
		}
		/* a scribbled header refuses attaches */
		for (int round = 0; round < 2000; round++) {
			dynshm_mq *m = NULL;

			memcpy(base, saved, size);
			base[(size_t)rand_r(&seed) % 24] ^=
				(char)(1 + rand_r(&seed) % 255);
			if (dynshm_mq_attach(fx.inst, base, size,
					     DYNSHM_MQ_SENDER, &m) < 0)
				refused++;
			else
				dynshm_mq_detach(m);
		}
	}
	assert_int_equal(refused, 4000);
	dynshm_mq_detach(tx);
	dynshm_mq_detach(rx);
	free(saved);
	munmap(map, maplen);
}

/*
 * A waiter whose queue memory is wiped under it (its segment destroyed and
 * the memory reused, as can happen to a region segment in a forked child)
 * must not wait forever on a peer that now reads "never attached".
 */
static int waiting_receiver(void *arg)
{
	dynshm_mq *mq = NULL;
	char buf[8];
	size_t n;
	int rc;

	(void)arg;
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_RECEIVER, &mq) == 0);
	rc = dynshm_mq_receive(mq, buf, sizeof(buf), &n, -1);
	CHILD_CHECK(rc == -EUCLEAN);
	return 0;
}

static void test_header_wiped(void **state)
{
	dynshm_mq *tx;
	pid_t pid;

	(void)state;
	pid = start(waiting_receiver, NULL);
	tx = attach(DYNSHM_MQ_SENDER);
	wait_attached(DYNSHM_MQ_RECEIVER);
	memset(fx.chunk, 0, fx.size);
	assert_int_equal(test_wait(pid), 0);
	assert_int_equal(dynshm_mq_detach(tx), 0); /* into wiped memory */
}

/* ---- futex waits interrupted ------------------------------------------------------ */

static long (*real_futex)(uint32_t *, int, uint32_t, const struct timespec *);
static unsigned long interrupted;

static long eintr_futex(uint32_t *uaddr, int op, uint32_t val,
			const struct timespec *ts)
{
	if (op == 0 /* FUTEX_WAIT */ && interrupted++ % 2 == 0) {
		errno = EINTR;
		return -1;
	}
	return real_futex(uaddr, op, val, ts);
}

/*
 * Sends once the receiver is attached, and then late: the receiver has
 * been waiting (a loaded machine may delay the receiver's attach past any
 * fixed sleep, and a sender that sends and leaves before the receiver
 * came made the receive say -ECONNRESET).
 */
static int late_sender(void *arg)
{
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	dynshm_mq *mq = NULL;

	(void)arg;
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_SENDER, &mq) == 0);
	wait_attached(DYNSHM_MQ_RECEIVER);
	nanosleep(&ts, NULL);
	CHILD_CHECK(dynshm_mq_send(mq, "late", 4, -1) == 0);
	CHILD_CHECK(dynshm_mq_detach(mq) == 0);
	return 0;
}

static void test_futex_eintr(void **state)
{
	dynshm_mq *rx;
	char buf[8];
	size_t n;
	pid_t pid;

	(void)state;
	real_futex = dynshm_fsys.futex;
	dynshm_fsys.futex = eintr_futex;
	pid = start(late_sender, NULL);
	rx = attach(DYNSHM_MQ_RECEIVER);
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, -1), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "late", 4);
	assert_int_equal(test_wait(pid), 0);
	dynshm_fsys_reset();
	assert_int_equal(dynshm_mq_detach(rx), 0);
}

/*
 * A waiter whose futex waits are all cut short (as by a signal handler on
 * a timer: every wait ends in EINTR before its bound) must still look at
 * its peer's liveness: a sender killed by SIGKILL is found dead, and the
 * receive says -ECONNRESET long before its (generous) timeout.  Checking
 * liveness only when a wait ran to its bound never looked, and waited out
 * the timeout (or forever, with -1).
 */
static long signalled_futex(uint32_t *uaddr, int op, uint32_t val,
			    const struct timespec *ts)
{
	struct timespec tick = { 0, 2 * 1000 * 1000 };

	if (op == 0 /* FUTEX_WAIT */) {
		if (ts && (ts->tv_sec > 0 || ts->tv_nsec > tick.tv_nsec))
			ts = &tick; /* the signal comes before the bound */
		if (real_futex(uaddr, op, val, ts) < 0 && errno != ETIMEDOUT)
			return -1;
		errno = EINTR;
		return -1;
	}
	return real_futex(uaddr, op, val, ts);
}

static int killed_sender(void *arg)
{
	dynshm_mq *mq = NULL;

	(void)arg;
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_SENDER, &mq) == 0);
	raise(SIGKILL);
	return 1;
}

static void test_futex_eintr_peer_dies(void **state)
{
	dynshm_mq *rx;
	char buf[8];
	size_t n;
	pid_t pid;

	(void)state;
	rx = attach(DYNSHM_MQ_RECEIVER);
	pid = start(killed_sender, NULL);
	assert_int_equal(test_wait(pid), 128 + SIGKILL);
	real_futex = dynshm_fsys.futex;
	dynshm_fsys.futex = signalled_futex;
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 20000),
			 -ECONNRESET);
	dynshm_fsys_reset();
	assert_int_equal(dynshm_mq_detach(rx), 0);
}

/*
 * A caller that polls - timeout 0, or timeouts shorter than the 50 ms
 * after which a waiting call checks its peer - must still learn that the
 * peer died: its calls used to return -EAGAIN / -ETIMEDOUT forever,
 * because only a call that slept 50 ms looked.  The loops are bounded by
 * a number of calls (generous: the check is due every 50 ms), not timed.
 */
static int killed_receiver(void *arg)
{
	dynshm_mq *mq = NULL;

	(void)arg;
	CHILD_CHECK(dynshm_mq_attach(fx.inst, fx.chunk, fx.size,
				     DYNSHM_MQ_RECEIVER, &mq) == 0);
	raise(SIGKILL);
	return 1;
}

static void test_poll_dead_peer(void **state)
{
	static unsigned char buf[256];
	const void *data;
	dynshm_mq *mq;
	long calls;
	size_t n;
	int rc;

	(void)state;
	/* the receiver polls a dead sender */
	mq = attach(DYNSHM_MQ_RECEIVER);
	assert_int_equal(test_wait(start(killed_sender, NULL)), 128 + SIGKILL);
	for (calls = 0; calls < 1000; calls++) {
		rc = dynshm_mq_receive(mq, buf, sizeof(buf), &n, 10);
		if (rc != -ETIMEDOUT)
			break;
	}
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(dynshm_mq_detach(mq), 0);

	/* the same with timeout 0, by view */
	assert_int_equal(dynshm_mq_create(fx.chunk, fx.size), 0);
	mq = attach(DYNSHM_MQ_RECEIVER);
	assert_int_equal(test_wait(start(killed_sender, NULL)), 128 + SIGKILL);
	for (calls = 0; calls < 100000000; calls++) {
		rc = dynshm_mq_receive_view(mq, &data, &n, 0);
		if (rc != -EAGAIN)
			break;
	}
	assert_int_equal(rc, -ECONNRESET);
	assert_int_equal(dynshm_mq_detach(mq), 0);

	/* a sender with a full ring polls a dead receiver */
	assert_int_equal(dynshm_mq_create(fx.chunk, fx.size), 0);
	mq = attach(DYNSHM_MQ_SENDER);
	assert_int_equal(test_wait(start(killed_receiver, NULL)),
			 128 + SIGKILL);
	for (calls = 0; calls < 100000000; calls++) {
		rc = dynshm_mq_send(mq, buf, sizeof(buf), 0);
		if (rc != 0 && rc != -EAGAIN)
			break;
	}
	assert_int_equal(rc, -EPIPE);
	assert_int_equal(dynshm_mq_detach(mq), 0);
}

/*
 * Sizes at the edges: an estimate for a ring under the 64-byte minimum
 * must still be a size dynshm_mq_create takes (it returned 192 for 0,
 * which create refused), and iovec lengths whose sum wraps around 2^64
 * are refused (they were sent as a short message, and the call said 0).
 */
static void test_edges(void **state)
{
	static char mem[512] __attribute__((aligned(64)));
	static char a[100];
	struct iovec iov[2] = { { a, sizeof(a) }, { a, SIZE_MAX - 50 } };
	dynshm_mq *tx = attach(DYNSHM_MQ_SENDER);
	size_t n;

	(void)state;
	for (size_t ring = 0; ring <= 64; ring++) {
		assert_true(dynshm_mq_estimate(ring) <= sizeof(mem));
		assert_int_equal(dynshm_mq_create(mem, dynshm_mq_estimate(ring)),
				 0);
	}
	assert_int_equal(dynshm_mq_sendv(tx, iov, 2, 0), -EMSGSIZE);
	iov[1].iov_len = SIZE_MAX;
	assert_int_equal(dynshm_mq_sendv(tx, iov, 2, 0), -EMSGSIZE);
	iov[1].iov_len = 8;
	assert_int_equal(dynshm_mq_sendv(tx, iov, 2, 0), 0);
	assert_int_equal(dynshm_mq_detach(tx), 0);
	{
		dynshm_mq *rx = attach(DYNSHM_MQ_RECEIVER);
		char buf[256];

		assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0),
				 0);
		assert_int_equal(n, sizeof(a) + 8);
		assert_int_equal(dynshm_mq_detach(rx), 0);
	}
}

/*
 * A forked child that inherited an attached end: refused (-EBADFD), and
 * its detach frees only its copy - before, it sent under its parent's
 * token (the receiver then took it for gone with the parent) and its
 * detach told the receiver that the parent's end had gone.
 */
static dynshm_mq *inherited;

static int inherited_child(void *arg)
{
	size_t n = 0;
	char c;

	(void)arg;
	CHILD_CHECK(dynshm_mq_send(inherited, "x", 1, 0) == -EBADFD);
	CHILD_CHECK(strstr(dynshm_last_error(), "attach a free end") != NULL);
	CHILD_CHECK(dynshm_mq_receive(inherited, &c, 1, &n, 0) == -EINVAL);
	CHILD_CHECK(dynshm_mq_detach(inherited) == 0);
	return 0;
}

static void test_forked_end(void **state)
{
	dynshm_mq *rx;
	char buf[8];
	size_t n = 0;

	(void)state;
	inherited = attach(DYNSHM_MQ_SENDER);
	rx = attach(DYNSHM_MQ_RECEIVER);
	assert_int_equal(test_fork(inherited_child, NULL), 0);
	/* the parent's end is still attached and still works */
	assert_int_equal(dynshm_mq_send(inherited, "ok", 2, 0), 0);
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "ok", 2);
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0),
			 -EAGAIN);
	assert_int_equal(dynshm_mq_detach(inherited), 0);
	assert_int_equal(dynshm_mq_receive(rx, buf, sizeof(buf), &n, 0),
			 -ECONNRESET);
	assert_int_equal(dynshm_mq_detach(rx), 0);
}

/* ---- process tokens (dsm.h) ------------------------------------------------------ */

struct token_pipes {
	int report[2]; /* child -> parent: its token */
	int hold[2];   /* parent -> child: EOF lets it exit */
};

static int token_child(void *arg)
{
	struct token_pipes *p = arg;
	uint64_t token = 0;
	char c;

	close(p->report[0]);
	close(p->hold[1]);
	CHILD_CHECK(dynshm_proc_self(fx.inst, &token) == 0);
	CHILD_CHECK(write(p->report[1], &token, sizeof(token)) ==
		    (ssize_t)sizeof(token));
	CHILD_CHECK(read(p->hold[0], &c, 1) == 0);
	return 0;
}

/* A forked child's token: alive while it runs, dead after, never again. */
static uint64_t child_token(pid_t *pid, struct token_pipes *p)
{
	uint64_t token = 0;

	assert_int_equal(pipe(p->report), 0);
	assert_int_equal(pipe(p->hold), 0);
	*pid = start(token_child, p);
	close(p->report[1]);
	close(p->hold[0]);
	assert_int_equal(read(p->report[0], &token, sizeof(token)),
			 sizeof(token));
	close(p->report[0]);
	return token;
}

static void test_proc_tokens(void **state)
{
	struct token_pipes p;
	uint64_t me = 0, again = 0, child, second;
	unsigned reaped;
	pid_t pid;

	(void)state;
	assert_int_equal(dynshm_proc_self(fx.inst, &me), 0);
	assert_int_equal(dynshm_proc_self(fx.inst, &again), 0);
	assert_true(me != 0);
	assert_int_equal(me, again);
	assert_int_equal(dynshm_proc_alive(fx.inst, me), 1);
	assert_int_equal(dynshm_proc_alive(fx.inst, 0), -EINVAL);
	assert_int_equal(dynshm_proc_alive(fx.inst, 0xffff), -EINVAL);
	assert_int_equal(dynshm_proc_self(fx.inst, NULL), -EINVAL);

	child = child_token(&pid, &p);
	assert_true(child != 0 && child != me);
	assert_int_equal(dynshm_proc_alive(fx.inst, child), 1);
	close(p.hold[1]); /* let it go */
	assert_int_equal(test_wait(pid), 0);
	assert_int_equal(dynshm_proc_alive(fx.inst, child), 0);
	assert_int_equal(dynshm_reap(fx.inst, &reaped), 0);
	assert_int_equal(dynshm_proc_alive(fx.inst, child), 0);

	/* the next child may take the same entry: the old token stays dead */
	second = child_token(&pid, &p);
	assert_true(second != child);
	printf("tokens: dead child %#llx, next child %#llx\n",
	       (unsigned long long)child, (unsigned long long)second);
	assert_int_equal(dynshm_proc_alive(fx.inst, second), 1);
	assert_int_equal(dynshm_proc_alive(fx.inst, child), 0);
	close(p.hold[1]);
	assert_int_equal(test_wait(pid), 0);
}

/* ---- groups ---------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static int run(const struct where *w)
{
	const struct CMUnitTest tests[] = {
		T(test_stream),
		T(test_view_copy_wrap),
		T(test_nonblocking_timeouts),
		T(test_sender_without_receiver),
		T(test_detach),
		T(test_peer_killed),
		T(test_scribbled),
		T(test_futex_eintr),
		T(test_futex_eintr_peer_dies),
		T(test_poll_dead_peer),
		T(test_edges),
		T(test_forked_end),
		T(test_header_wiped),
		T(test_proc_tokens),
	};
	char name[32];

	current = w;
	snprintf(name, sizeof(name), "mq/%s", w->name);
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

int main(int argc, char **argv)
{
	int rc = 0;

	(void)argc;
	(void)argv;
	dynshm_test_instance_tag = TEST_TAG;
	if (getenv("DYNSHM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DYNSHM_TEST_FILTER"));
	for (size_t i = 0; i < sizeof(wheres) / sizeof(wheres[0]); i++)
		rc += run(&wheres[i]);
	return rc ? 1 : 0;
}
