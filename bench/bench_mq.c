/* SPDX-License-Identifier: MIT */
/*
 * bench_mq.c - scenario "mq" of dsm_bench: what a message costs on a
 * dynshm queue next to the kernel's own channels (bench_mq.h).
 *
 * Every transport is driven the same way: the parent and one forked child
 * exchange fixed-size messages through a small table of functions (send
 * exactly len bytes, receive exactly len bytes), so the figures differ
 * only by the transport.  The child is set up and says "ready" before the
 * clock starts; it leaves on a message whose first byte is 'q'.
 *   ping-pong  the parent sends 64 bytes, the child sends them back;
 *   stream     the parent sends n messages of 64 KiB, the child copies each
 *              out and answers the last with 64 bytes;
 *   memcpy     the same bytes copied once, in one process, into a ring of
 *              buffers as large as the queue's: the bandwidth ceiling.
 *   idle       a child blocks in dynshm_mq_receive on an empty queue whose
 *              sender is attached and alive; its CPU time over the wait.
 */
#include "bench_mq.h"

#include <dynshm/facility.h>

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const mqb_names[MQB_N] = {
	"dynshm-mq", "pipe", "unix-socket", "posix-mq", "memcpy",
};

struct link {
	enum mqb_transport t;
	int fd[2][2];	     /* pipe: [0] parent->child, [1] child->parent */
	mqd_t mq[2];	     /* posix-mq: same directions */
	dynshm_instance *inst;
	void *chunk[2];	     /* dynshm: same directions */
	size_t chunk_size;
	dynshm_mq *out, *in; /* this side's ends */
	bool child;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t mqb_segment_size(void)
{
	return 2 * dynshm_mq_estimate(MQB_RING);
}

/* ---- the transports --------------------------------------------------------- */

static int full_write(int fd, const void *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static int full_read(int fd, void *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EPIPE : -errno;
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static int posixmq_open(struct link *l, size_t msgsize)
{
	struct mq_attr attr = { .mq_maxmsg = 8, .mq_msgsize = (long)msgsize };
	char name[64];

	for (int d = 0; d < 2; d++) {
		snprintf(name, sizeof(name), "/dsmbench.%d.mq%d", (int)getpid(),
			 d);
		l->mq[d] = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600,
				   &attr);
		if (l->mq[d] == (mqd_t)-1) {
			int err = -errno;

			if (d == 1)
				mq_close(l->mq[0]);
			return err;
		}
		mq_unlink(name); /* nothing to leave behind */
	}
	return 0;
}

/* Before the fork: make the channel. */
static int link_make(struct link *l, size_t msgsize)
{
	int rc = 0;

	switch (l->t) {
	case MQB_PIPE:
		if (pipe(l->fd[0]) < 0)
			return -errno;
		if (pipe(l->fd[1]) < 0) {
			rc = -errno;
			close(l->fd[0][0]);
			close(l->fd[0][1]);
		}
		return rc;
	case MQB_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, l->fd[0]) < 0)
			return -errno;
		return 0;
	case MQB_POSIXMQ:
		return posixmq_open(l, msgsize);
	case MQB_DYNSHM:
		rc = dynshm_mq_create(l->chunk[0], l->chunk_size);
		if (rc == 0)
			rc = dynshm_mq_create(l->chunk[1], l->chunk_size);
		return rc;
	default:
		return -ENOTSUP;
	}
}

/* After the fork: keep this side's ends. */
static int link_side(struct link *l, bool child)
{
	int rc;

	l->child = child;
	switch (l->t) {
	case MQB_PIPE:
		close(l->fd[0][child ? 1 : 0]);
		close(l->fd[1][child ? 0 : 1]);
		return 0;
	case MQB_SOCKET:
		close(l->fd[0][child ? 0 : 1]);
		return 0;
	case MQB_DYNSHM:
		rc = dynshm_mq_attach(l->inst, l->chunk[child ? 1 : 0],
				      l->chunk_size, DYNSHM_MQ_SENDER, &l->out);
		if (rc == 0)
			rc = dynshm_mq_attach(l->inst, l->chunk[child ? 0 : 1],
					      l->chunk_size,
					      DYNSHM_MQ_RECEIVER, &l->in);
		return rc;
	default:
		return 0;
	}
}

static int link_send(struct link *l, const void *buf, size_t len)
{
	int d = l->child ? 1 : 0;

	switch (l->t) {
	case MQB_PIPE:
		return full_write(l->fd[d][1], buf, len);
	case MQB_SOCKET:
		return full_write(l->fd[0][l->child ? 1 : 0], buf, len);
	case MQB_POSIXMQ:
		return mq_send(l->mq[d], buf, len, 0) < 0 ? -errno : 0;
	case MQB_DYNSHM:
		return dynshm_mq_send(l->out, buf, len, -1);
	default:
		return -ENOTSUP;
	}
}

static int link_recv(struct link *l, void *buf, size_t len)
{
	int d = l->child ? 0 : 1;
	size_t got = 0;
	ssize_t n;

	switch (l->t) {
	case MQB_PIPE:
		return full_read(l->fd[d][0], buf, len);
	case MQB_SOCKET:
		return full_read(l->fd[0][l->child ? 1 : 0], buf, len);
	case MQB_POSIXMQ:
		n = mq_receive(l->mq[d], buf, len, NULL);
		return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	case MQB_DYNSHM: {
		int rc = dynshm_mq_receive(l->in, buf, len, &got, -1);

		return rc < 0 ? rc : got == len ? 0 : -EIO;
	}
	default:
		return -ENOTSUP;
	}
}

static void link_close(struct link *l)
{
	switch (l->t) {
	case MQB_PIPE:
		close(l->fd[0][l->child ? 0 : 1]);
		close(l->fd[1][l->child ? 1 : 0]);
		break;
	case MQB_SOCKET:
		close(l->fd[0][l->child ? 1 : 0]);
		break;
	case MQB_POSIXMQ:
		mq_close(l->mq[0]);
		mq_close(l->mq[1]);
		break;
	case MQB_DYNSHM:
		if (l->out)
			dynshm_mq_detach(l->out);
		if (l->in)
			dynshm_mq_detach(l->in);
		break;
	default:
		break;
	}
}

/* ---- one exchange: a child, a clock ------------------------------------------- */

enum mode { PINGPONG, STREAM };

/* The child: echo (ping-pong) or count n messages then answer (stream). */
static int child_loop(struct link *l, enum mode m, long n)
{
	static char buf[MQB_STREAM];
	size_t len = m == PINGPONG ? MQB_PING : MQB_STREAM;
	int rc = link_side(l, true);

	memset(buf, 'r', MQB_PING);
	if (rc == 0)
		rc = link_send(l, buf, MQB_PING); /* ready */
	for (long i = 0; rc == 0; i++) {
		rc = link_recv(l, buf, len);
		if (rc < 0 || buf[0] == 'q')
			break;
		if (m == PINGPONG || i == n - 1)
			rc = link_send(l, buf, MQB_PING);
	}
	link_close(l);
	if (l->t == MQB_DYNSHM)
		dynshm_instance_close(l->inst);
	return rc < 0 ? 1 : 0;
}

static int wait_pid(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static int parent_loop(struct link *l, enum mode m, long n, double *ns)
{
	static char buf[MQB_STREAM];
	uint64_t t0;
	int rc = link_side(l, false);

	memset(buf, 'p', sizeof(buf));
	if (rc == 0)
		rc = link_recv(l, buf, MQB_PING); /* the child is ready */
	memset(buf, 'p', sizeof(buf));
	t0 = now_ns();
	for (long i = 0; rc == 0 && i < n; i++) {
		if (m == PINGPONG) {
			rc = link_send(l, buf, MQB_PING);
			if (rc == 0)
				rc = link_recv(l, buf, MQB_PING);
		} else {
			rc = link_send(l, buf, MQB_STREAM);
		}
	}
	if (rc == 0 && m == STREAM)
		rc = link_recv(l, buf, MQB_PING);
	*ns = (double)(now_ns() - t0) / (double)n;
	buf[0] = 'q';
	if (rc == 0)
		rc = link_send(l, buf, m == PINGPONG ? MQB_PING : MQB_STREAM);
	return rc;
}

static int exchange(dynshm_instance *inst, void *seg, enum mqb_transport t,
		    enum mode m, long n, double *ns)
{
	struct link l = { .t = t, .inst = inst };
	pid_t pid;
	int rc, wrc;

	if (t == MQB_POSIXMQ && m == STREAM)
		return -ENOTSUP; /* msgsize_max is 8 KiB unless root raises it */
	l.chunk_size = dynshm_mq_estimate(MQB_RING);
	l.chunk[0] = seg;
	l.chunk[1] = (char *)seg + l.chunk_size;
	rc = link_make(&l, m == PINGPONG ? MQB_PING : MQB_STREAM);
	if (rc < 0)
		return rc;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		l.child = false;
		link_close(&l);
		return rc;
	}
	if (pid == 0)
		_exit(child_loop(&l, m, n));
	rc = parent_loop(&l, m, n, ns);
	if (rc < 0)
		kill(pid, SIGKILL); /* it may wait for a message forever */
	link_close(&l);
	wrc = wait_pid(pid);
	return rc < 0 ? rc : wrc;
}

int mqb_rtt(dynshm_instance *inst, void *seg, enum mqb_transport t, long n,
	    double *ns)
{
	return exchange(inst, seg, t, PINGPONG, n, ns);
}

/* One copy of each message into a ring of buffers as large as the queue's. */
static int memcpy_stream(long n, double *ns)
{
	static char src[MQB_STREAM];
	char *ring = malloc(MQB_RING);
	uint64_t t0;

	if (!ring)
		return -ENOMEM;
	memset(src, 'm', sizeof(src));
	memset(ring, 0, MQB_RING);
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		char *dst = ring + (size_t)i % (MQB_RING / MQB_STREAM) *
					   MQB_STREAM;

		memcpy(dst, src, MQB_STREAM);
		__asm__ __volatile__("" : : "r"(dst) : "memory");
	}
	*ns = (double)(now_ns() - t0) / (double)n;
	free(ring);
	return 0;
}

int mqb_stream(dynshm_instance *inst, void *seg, enum mqb_transport t,
	       long n, double *ns)
{
	if (t == MQB_MEMCPY)
		return memcpy_stream(n, ns);
	return exchange(inst, seg, t, STREAM, n, ns);
}

/* ---- an idle receiver ------------------------------------------------------------ */

static int idle_child(dynshm_instance *inst, void *chunk, size_t size,
		      int report)
{
	struct timespec c0, c1;
	uint64_t w0, w1;
	dynshm_mq *rx;
	double v = -1;
	char c;
	size_t len;

	if (dynshm_mq_attach(inst, chunk, size, DYNSHM_MQ_RECEIVER, &rx) == 0) {
		if (write(report, "r", 1) != 1)
			return 1;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
		w0 = now_ns();
		if (dynshm_mq_receive(rx, &c, 1, &len, -1) == 0) {
			w1 = now_ns();
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
			v = ((double)(c1.tv_sec - c0.tv_sec) * 1e9 +
			     (double)(c1.tv_nsec - c0.tv_nsec)) /
			    ((double)(w1 - w0) / 1e9);
		}
		dynshm_mq_detach(rx);
	}
	dynshm_instance_close(inst);
	return write(report, &v, sizeof(v)) == sizeof(v) && v >= 0 ? 0 : 1;
}

int mqb_idle(dynshm_instance *inst, void *seg, uint64_t wait_ns,
	     double *cpu_ns_per_s)
{
	size_t size = dynshm_mq_estimate(MQB_RING);
	struct timespec ts = { (time_t)(wait_ns / 1000000000u),
			       (long)(wait_ns % 1000000000u) };
	dynshm_mq *tx = NULL;
	int fds[2], rc;
	char c;
	pid_t pid;

	rc = dynshm_mq_create(seg, size);
	if (rc == 0)
		rc = dynshm_mq_attach(inst, seg, size, DYNSHM_MQ_SENDER, &tx);
	if (rc < 0)
		return rc;
	if (pipe(fds) < 0) {
		rc = -errno;
		dynshm_mq_detach(tx);
		return rc;
	}
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		_exit(idle_child(inst, seg, size, fds[1]));
	}
	close(fds[1]);
	rc = pid < 0 ? -errno : full_read(fds[0], &c, 1);
	if (rc == 0) {
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		rc = dynshm_mq_send(tx, "w", 1, -1);
	}
	if (rc == 0)
		rc = full_read(fds[0], cpu_ns_per_s, sizeof(*cpu_ns_per_s));
	close(fds[0]);
	dynshm_mq_detach(tx);
	if (pid > 0 && wait_pid(pid) < 0 && rc == 0)
		rc = -ECHILD;
	return rc;
}
