/* SPDX-License-Identifier: MIT */
/*
 * mq.h - the shared layout of a message queue (src/facility/mq.c) and
 * the rules every process that touches it keeps.
 *
 * LAYOUT of a queue, at the start of its chunk (struct mq_shared):
 *
 *	line 0	magic, ring_size, check		(C) written once by create
 *		token[role], detached[role]
 *	line 1	written, recv_sleep		(sender's line)
 *	line 2	read, send_sleep		(receiver's line)
 *	ring[ring_size]				(ring_size % 8 == 0)
 *
 * A message in the ring is an 8-byte length, the bytes, and padding to 8:
 * its footprint is 8 + round8(len).  A message whose footprint fits the
 * ring is written whole and published at once; a longer one is streamed
 * through the ring in pieces (multiples of 8 bytes), the receiver copying
 * each piece out as it is published.  Both sides tell the two cases apart
 * from the length alone.
 *
 * INVARIANTS
 *   written  only the sender writes it; read  only the receiver.  Both are
 *            64-bit byte counts since creation that only grow (no wrap in
 *            practice: 2^64 bytes), always multiples of 8, and
 *            0 <= written - read <= ring_size.  Byte k of the stream lives
 *            at ring[k % ring_size].  Bytes [read, written) belong to the
 *            receiver, the rest of the ring to the sender.
 *   MEMORY ORDER (the one rule): a side writes ring bytes, then publishes
 *            its counter with a release store; the other side loads that
 *            counter with an acquire load before touching the bytes it
 *            covers.  That is all the ordering the data needs.
 *   token[r] set once, by compare-and-swap from 0, by the process that
 *            attaches as role r (its dynshm_proc_self token).  0: that side
 *            has never attached.
 *   detached[r]  0 -> 1 once, when role r detaches, or when its peer finds
 *            its process dead.  After it, role r writes nothing more.  For
 *            the receiver, a detached sender is the end of the stream: what
 *            was published before is still delivered.
 *   recv_sleep / send_sleep  futex words, 1 while that side is (about to
 *            be) asleep waiting for the other; the side that publishes
 *            resets it to 0 and wakes.
 *   Each side keeps its own counter and ring_size in its process-local
 *   handle and never reads them back; the other side's counter is checked
 *   (multiple of 8, within ring_size of ours) before use, and every ring
 *   access is taken modulo the local ring_size, so a scribbled header yields
 *   -EUCLEAN or garbage bytes, never an access outside the chunk.
 *
 * WAKE-UPS (no lost wake-up; Drepper's "Futexes Are Tricky"): a waiter
 * spins briefly, then stores 1 in its sleep word, issues a full fence,
 * re-checks the counter, and calls FUTEX_WAIT(word, 1) - shared, not
 * FUTEX_PRIVATE, since the word is in shared memory.  A publisher stores
 * its counter, issues a full fence, and if the word reads 1, stores 0 and
 * calls FUTEX_WAKE.  Either the waiter sees the new counter, or the
 * publisher sees the 1; and a wake that comes before the wait makes the
 * kernel find 0 and return at once.  A sleeper never waits more than
 * a bound at a time - MQ_LIVENESS_FIRST_MS, doubling up to
 * MQ_LIVENESS_MAX_MS within one wait: after each such bound (by the
 * clock, however its futex waits ended: timed out, woken, or EINTR) it asks
 * dynshm_proc_alive() whether the peer's process still exists, so a peer
 * killed by SIGKILL (which cannot set detached) is noticed within that
 * bound.  An idle waiter so wakes a few times a second and sleeps otherwise.
 *
 * SPINNING.  A futex wake-up costs a few microseconds (more in a virtual
 * machine, where waking an idle CPU is an interprocessor interrupt), which
 * is the whole round trip when the peer answers at once.  So a waiter first
 * spins, for a budget kept per handle and adapted like an adaptive mutex:
 * doubled (up to MQ_SPIN_MAX_NS) when the wait ended while spinning, halved
 * (down to MQ_SPIN_MIN_NS) when it had to sleep.  Two busy processes on
 * separate cores then exchange messages without system calls, and a
 * waiter whose peer is slow or descheduled soon stops burning CPU.
 */
#ifndef DYNSHM_FACILITY_MQ_H
#define DYNSHM_FACILITY_MQ_H

#include <stdint.h>

#define MQ_MAGIC 0x51456d68736e7964ull /* "dynshmEQ" little-endian */
#define MQ_LINE 64
#define MQ_MIN_RING 64u
/* Longest message a length word may announce; longer is corruption. */
#define MQ_MAX_MSG (UINT64_C(1) << 56)
/* A sleeper re-checks its peer's liveness after these bounds. */
#define MQ_LIVENESS_FIRST_MS 50
#define MQ_LIVENESS_MAX_MS 400
/* The spin budget before sleeping (SPINNING above). */
#define MQ_SPIN_MIN_NS 1000
#define MQ_SPIN_MAX_NS 50000

struct mq_shared {
	uint64_t magic;	    /* (C) */
	uint64_t ring_size; /* (C) */
	uint64_t check;	    /* (C) a function of the two above */
	uint64_t token[2];  /* [role]: CAS from 0 once, by that role */
	uint32_t detached[2]; /* [role]: 0 -> 1 once */
	char pad0_[MQ_LINE - 48];
	uint64_t written;    /* sender only, release stores */
	uint32_t recv_sleep; /* receiver sets 1, sender resets 0 */
	char pad1_[MQ_LINE - 12];
	uint64_t read;	     /* receiver only, release stores */
	uint32_t send_sleep; /* sender sets 1, receiver resets 0 */
	char pad2_[MQ_LINE - 12];
	unsigned char ring[];
};

_Static_assert(sizeof(struct mq_shared) == 3 * MQ_LINE, "mq header layout");

#endif
