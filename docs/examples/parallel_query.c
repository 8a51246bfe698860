/* SPDX-License-Identifier: MIT */
/*
 * parallel_query.c - a leader fans work out to worker processes over
 * message queues and gathers the results, as PostgreSQL's parallel query
 * does with shm_toc and shm_mq.
 *
 * The leader makes one segment, puts a table of contents at its start and
 * two queues per worker in it (work: leader -> worker, results: worker ->
 * leader), and forks the workers.  Each worker finds its queues by key,
 * takes ranges of numbers until the leader's end of stream, and answers
 * each with the primes in it - a message that may be longer than the ring,
 * which the queue streams.  The leader checks the gathered answer against
 * one it computes alone.
 *
 *	parallel_query [workers] [instance directory]
 *
 * Without a directory it makes a temporary one and removes it at the end.
 */
#include <dynshm/facility.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define TASKS 64
#define SPAN 20000u
#define RING 4096
#define KEY_WORK(i) (2 * (uint64_t)(i))
#define KEY_RESULT(i) (2 * (uint64_t)(i) + 1)

struct task {
	uint32_t id, lo, hi;
};

static int is_prime(uint32_t n)
{
	if (n < 2)
		return 0;
	for (uint32_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return 0;
	return 1;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: %s (%s)\n", what, dynshm_strerror(rc),
		dynshm_last_error());
	return 1;
}

/* A worker: answer every task with its id and the primes in its range. */
static int worker(dynshm_instance *inst, dynshm_toc *toc, int me)
{
	static uint32_t out[1 + SPAN];
	dynshm_mq *in, *res;
	struct task t;
	void *chunk;
	size_t size, len;
	int rc;

	if ((rc = dynshm_toc_lookup(toc, KEY_WORK(me), &chunk, &size)) < 0 ||
	    (rc = dynshm_mq_attach(inst, chunk, size, DYNSHM_MQ_RECEIVER,
				   &in)) < 0)
		return fail("worker: work queue", rc);
	if ((rc = dynshm_toc_lookup(toc, KEY_RESULT(me), &chunk, &size)) < 0 ||
	    (rc = dynshm_mq_attach(inst, chunk, size, DYNSHM_MQ_SENDER,
				   &res)) < 0)
		return fail("worker: result queue", rc);
	while ((rc = dynshm_mq_receive(in, &t, sizeof(t), &len, -1)) == 0) {
		size_t n = 1;

		out[0] = t.id;
		for (uint32_t v = t.lo; v < t.hi; v++)
			if (is_prime(v))
				out[n++] = v;
		rc = dynshm_mq_send(res, out, n * sizeof(out[0]), -1);
		if (rc < 0)
			return fail("worker: send", rc);
	}
	if (rc != -ECONNRESET) /* the leader's end of stream */
		return fail("worker: receive", rc);
	dynshm_mq_detach(in);
	dynshm_mq_detach(res);
	return 0;
}

/* The segment: a table of contents and two queues per worker. */
static int build(dynshm_instance *inst, int workers, dynshm_segment **seg,
		 dynshm_toc **toc)
{
	size_t qsize = dynshm_mq_estimate(RING), sizes[2 * MAX_WORKERS];
	size_t need;
	void *chunk;
	int rc;

	for (int i = 0; i < 2 * workers; i++)
		sizes[i] = qsize;
	need = dynshm_toc_estimate(2 * (size_t)workers, sizes,
				   2 * (size_t)workers);
	rc = dynshm_create(inst, need, 0, seg);
	if (rc == 0)
		rc = dynshm_toc_create(dynshm_segment_address(*seg), need,
				       2 * (size_t)workers, toc);
	for (int i = 0; rc == 0 && i < 2 * workers; i++) {
		rc = dynshm_toc_alloc(*toc, qsize, 0, &chunk);
		if (rc == 0)
			rc = dynshm_mq_create(chunk, qsize);
		if (rc == 0)
			rc = dynshm_toc_insert(*toc, (uint64_t)i, chunk, qsize);
	}
	return rc;
}

static dynshm_mq *attach(dynshm_instance *inst, dynshm_toc *toc,
			 uint64_t key, dynshm_mq_role role)
{
	dynshm_mq *mq = NULL;
	void *chunk;
	size_t size;

	if (dynshm_toc_lookup(toc, key, &chunk, &size) < 0 ||
	    dynshm_mq_attach(inst, chunk, size, role, &mq) < 0)
		return NULL;
	return mq;
}

/* Send the tasks round robin, then end every work stream. */
static int fan_out(dynshm_instance *inst, dynshm_toc *toc, int workers)
{
	for (int w = 0; w < workers; w++) {
		dynshm_mq *mq = attach(inst, toc, KEY_WORK(w), DYNSHM_MQ_SENDER);
		int rc = 0;

		if (!mq)
			return fail("leader: work queue", -EIO);
		for (uint32_t id = (uint32_t)w; rc == 0 && id < TASKS;
		     id += (uint32_t)workers) {
			struct task t = { id, id * SPAN, (id + 1) * SPAN };

			rc = dynshm_mq_send(mq, &t, sizeof(t), -1);
		}
		dynshm_mq_detach(mq);
		if (rc < 0)
			return fail("leader: send", rc);
	}
	return 0;
}

/* Gather every answer; the count and sum of the primes found. */
static int gather(dynshm_instance *inst, dynshm_toc *toc, int workers,
		  uint64_t *count, uint64_t *sum)
{
	int answered = 0;

	for (int w = 0; w < workers; w++) {
		dynshm_mq *mq = attach(inst, toc, KEY_RESULT(w),
				       DYNSHM_MQ_RECEIVER);
		const void *data;
		size_t len;
		int rc;

		if (!mq)
			return fail("leader: result queue", -EIO);
		while ((rc = dynshm_mq_receive_view(mq, &data, &len, -1)) ==
		       0) {
			const uint32_t *v = data;

			for (size_t i = 1; i < len / sizeof(*v); i++) {
				(*count)++;
				*sum += v[i];
			}
			answered++;
		}
		dynshm_mq_detach(mq);
		if (rc != -ECONNRESET)
			return fail("leader: receive", rc);
	}
	return answered == TASKS ? 0 : fail("leader: answers missing", -EIO);
}

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 4, rc, status = 0;
	char tmpl[] = "/tmp/dynshm-example.XXXXXX";
	const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
	uint64_t count = 0, sum = 0, want_count = 0, want_sum = 0;
	dynshm_instance *inst;
	dynshm_segment *seg;
	dynshm_toc *toc;
	pid_t pids[MAX_WORKERS];

	if (workers < 1 || workers > MAX_WORKERS || !dir)
		return 2;
	rc = dynshm_instance_open(dir, NULL, 0, &inst);
	if (rc < 0)
		return fail("open", rc);
	rc = build(inst, workers, &seg, &toc);
	if (rc < 0)
		return fail("build", rc);
	for (int w = 0; w < workers; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			_exit(worker(inst, toc, w));
	}
	rc = fan_out(inst, toc, workers) ||
	     gather(inst, toc, workers, &count, &sum);
	for (int w = 0; w < workers; w++)
		if (waitpid(pids[w], &status, 0) < 0 || status != 0)
			rc = 1;
	for (uint32_t v = 0; v < TASKS * SPAN; v++)
		if (is_prime(v)) {
			want_count++;
			want_sum += v;
		}
	printf("%d workers: %llu primes below %u (sum %llu), alone: %llu\n",
	       workers, (unsigned long long)count, TASKS * SPAN,
	       (unsigned long long)sum, (unsigned long long)want_count);
	dynshm_toc_release(toc);
	dynshm_instance_destroy(inst); /* segment, queues and all */
	if (argc <= 2)
		rmdir(dir);
	return rc || count != want_count || sum != want_sum;
}
