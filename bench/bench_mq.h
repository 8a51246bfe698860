/* SPDX-License-Identifier: MIT */
/*
 * bench_mq.h - the measurements of dsm_bench's scenario "mq": the message
 * queue (dynshm/facility.h) against a pipe pair, a Unix stream socket pair
 * and a POSIX message queue, between two processes.
 *
 * This file measures; scenario_mq.c repeats, alternates, turns the figures
 * into rows and verdicts.
 */
#ifndef DYNSHM_BENCH_MQ_H
#define DYNSHM_BENCH_MQ_H

#include <dynshm/dsm.h>

#include <stddef.h>
#include <stdint.h>

enum mqb_transport {
	MQB_DYNSHM = 0,
	MQB_PIPE = 1,
	MQB_SOCKET = 2,
	MQB_POSIXMQ = 3,
	MQB_MEMCPY = 4, /* streaming only: one process, no transport */
	MQB_N = 5,
};

extern const char *const mqb_names[MQB_N];

#define MQB_PING 64		/* bytes of a ping-pong message */
#define MQB_STREAM (64 * 1024)	/* bytes of a streamed message */
#define MQB_RING (1024 * 1024) /* the dynshm queue's ring */

/* Bytes of the segment mqb_* need: two queues of MQB_RING. */
size_t mqb_segment_size(void);

/*
 * seg: a segment of mqb_segment_size() bytes of inst (mapped here; the
 * children inherit it).  Each call forks one child, sets the transport up,
 * and times only the exchanges.  0 or a negative errno; -ENOTSUP when a
 * transport cannot do it here (POSIX queues of 64 KiB messages).
 */
/* ns per 64-byte round trip, over n round trips. */
int mqb_rtt(dynshm_instance *inst, void *seg, enum mqb_transport t, long n,
	    double *ns);
/* ns per 64 KiB message, n messages from parent to child. */
int mqb_stream(dynshm_instance *inst, void *seg, enum mqb_transport t,
	       long n, double *ns);
/*
 * CPU time (ns) a receiver blocked on an empty dynshm queue uses per
 * second of waiting, over wait_ns of waiting.
 */
int mqb_idle(dynshm_instance *inst, void *seg, uint64_t wait_ns,
	     double *cpu_ns_per_s);

#endif
