/* SPDX-License-Identifier: MIT */
/*
 * dynshm/facility.h - what goes in a segment: a table of contents, relative
 * pointers and a message queue.
 *
 * The wrapper (dsm.h) hands out raw bytes.  These facilities give them a
 * shape that every process of an instance can use, whatever address it maps
 * the segment at (PostgreSQL built shm_toc and shm_mq on its DSM for the
 * same reason).  They are built only on dsm.h: they hold no lock of the
 * wrapper and need nothing from it but dynshm_proc_self/_alive.
 *
 * Shared memory is not trusted: any process of the user can scribble on
 * it.  Every value read from it is checked against the size the caller
 * gave (process-local, never read back from the segment) before it is used
 * as an offset, so a corrupt table or queue makes a call fail with
 * -EUCLEAN, never touch memory outside the range the caller passed.
 *
 * Rules as in dsm.h: 0 or a negative errno, a message in
 * dynshm_last_error(); thread-safe for distinct objects (one dynshm_toc
 * handle may be shared by threads; one dynshm_mq handle is used by one
 * thread at a time).
 *
 * Compiles as C99 and C++.
 */
#ifndef DYNSHM_FACILITY_H
#define DYNSHM_FACILITY_H

#include <dynshm/dsm.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- table of contents ---------------------------------------------------
 * A table at the start of a range of shared memory (usually a whole
 * segment) that maps 64-bit keys to chunks of the same range.  One process
 * creates it; any process attaches it (with the address and size of its
 * own mapping), allocates chunks, inserts keys and looks them up.  Chunks
 * are never freed: the table lives as long as the segment.  A process killed
 * in the middle of an allocation or an insert wastes that chunk or entry,
 * and nothing else.
 */
typedef struct dynshm_toc dynshm_toc;

/* Chunks are aligned to this many bytes unless a larger alignment is asked. */
#define DYNSHM_TOC_ALIGN 64

/*
 * Bytes needed for a table of nkeys keys followed by nchunks chunks of the
 * given sizes, each at the default alignment (a chunk allocated with a
 * larger alignment a needs up to a - DYNSHM_TOC_ALIGN more).  0 when it
 * would overflow.
 */
size_t dynshm_toc_estimate(size_t nkeys, const size_t *chunk_sizes,
			   size_t nchunks);
/*
 * Lay out an empty table for max_keys keys in the size bytes at base and
 * return a handle (process-local; dynshm_toc_release frees it).  -EINVAL
 * when base is not 8-byte aligned or size cannot hold the table.
 */
int dynshm_toc_create(void *base, size_t size, size_t max_keys,
		      dynshm_toc **out);
/*
 * A handle for the table another process created at base, mapped here with
 * size bytes.  -EUCLEAN when no valid table is there.
 */
int dynshm_toc_attach(void *base, size_t size, dynshm_toc **out);
/* Free the handle; the table in shared memory is untouched. */
void dynshm_toc_release(dynshm_toc *toc);
/*
 * A chunk of size bytes aligned to align (0: DYNSHM_TOC_ALIGN; a power of
 * two up to 4096), zero-filled if the range was.  -ENOSPC when the range
 * has no room left.
 */
int dynshm_toc_alloc(dynshm_toc *toc, size_t size, size_t align, void **out);
/*
 * Record key -> chunk (size bytes at chunk, inside the range).  -EEXIST
 * when the key is already recorded, -ENOSPC when all max_keys entries are
 * used, -EINVAL when the chunk is not inside the range.  Give each key one
 * inserter: two inserting it at the same moment may both succeed (lookups
 * then find the first).
 */
int dynshm_toc_insert(dynshm_toc *toc, uint64_t key, void *chunk, size_t size);
/*
 * The chunk recorded for key: its address in this process and its size
 * (size may be NULL).  -ENOENT when the key is not recorded; -EUCLEAN when
 * its entry points outside the range.
 */
int dynshm_toc_lookup(dynshm_toc *toc, uint64_t key, void **out, size_t *size);

/* ---- relative pointers -----------------------------------------------------
 * A pointer stored in shared memory as an offset from a base (the start of
 * the segment), so that it means the same thing in every process.  Typed:
 *
 *	struct node { DYNSHM_RELPTR(struct node) next; int v; };
 *	dynshm_relptr_store(base, n->next, other);
 *	struct node *p = dynshm_relptr_access(base, n->next);
 *	p = dynshm_relptr_access_checked(base, size, n->next);  (NULL if out)
 *
 * The stored value is offset + 1, so 0 (zeroed memory) is the null pointer
 * and the base itself can be pointed to.  The checked form returns NULL
 * unless the whole pointed-to object lies inside [base, base + size).
 */
#define DYNSHM_RELPTR(type)                                                    \
	union {                                                                \
		type *relptr_type;                                             \
		uint64_t relptr_off;                                           \
	}

static inline uint64_t dynshm_relptr_offset_(const void *base, const void *p)
{
	return p ? (uint64_t)((const char *)p - (const char *)base) + 1 : 0;
}

static inline void *dynshm_relptr_address_(const void *base, uint64_t off)
{
	return off ? (void *)((const char *)base + (off - 1)) : NULL;
}

static inline void *dynshm_relptr_checked_(const void *base, size_t size,
					   uint64_t off, size_t objsize)
{
	if (off == 0 || off - 1 > size || objsize > size - (off - 1))
		return NULL;
	return (void *)((const char *)base + (off - 1));
}

#ifdef __cplusplus
#define DYNSHM_RELPTR_TYPEOF_(rp) decltype((rp).relptr_type)
#else
#define DYNSHM_RELPTR_TYPEOF_(rp) __typeof__((rp).relptr_type)
#endif

#define dynshm_relptr_is_null(rp) ((rp).relptr_off == 0)
#define dynshm_relptr_store(base, rp, ptr)                                     \
	((void)sizeof((rp).relptr_type == (ptr)),                              \
	 (rp).relptr_off = dynshm_relptr_offset_((base), (ptr)))
#define dynshm_relptr_access(base, rp)                                         \
	((DYNSHM_RELPTR_TYPEOF_(rp))dynshm_relptr_address_((base),             \
							   (rp).relptr_off))
#define dynshm_relptr_access_checked(base, size, rp)                           \
	((DYNSHM_RELPTR_TYPEOF_(rp))dynshm_relptr_checked_(                   \
		(base), (size), (rp).relptr_off, sizeof(*(rp).relptr_type)))

/* ---- message queue ---------------------------------------------------------
 * One sender and one receiver exchange messages of any length through a
 * ring in shared memory (a chunk of any segment, from a table of contents
 * or not, or a region segment).  A message longer than the ring is streamed
 * through it in pieces.  Each side attaches by role; when the other side
 * detaches or its process dies, a waiting call returns an error instead of
 * waiting forever.  docs/design.md describes the ring and the wake-ups.
 *
 * timeout_ms of send and receive: -1 waits as long as it takes, 0 never
 * waits (-EAGAIN when it would), > 0 waits at most that long (-ETIMEDOUT).
 * A send or receive that returned -EAGAIN or -ETIMEDOUT half-way through a
 * long message resumes when called again the same way with the same
 * arguments; the other side never sees a half message as a whole one.
 *
 * Errors that end the conversation:
 *   -EPIPE       send: the receiver detached or died;
 *   -ECONNRESET  receive: the sender detached or died and no whole message
 *                is left (a sender that detaches after its last send is the
 *                end of the stream: the receiver gets every message first);
 *   -ENOTCONN    a wait with a timeout ended and the other side never
 *                attached;
 *   -EUCLEAN     the queue's shared state is corrupt.
 */
typedef struct dynshm_mq dynshm_mq;

typedef enum dynshm_mq_role {
	DYNSHM_MQ_SENDER = 0,
	DYNSHM_MQ_RECEIVER = 1
} dynshm_mq_role;

/* Bytes of a queue whose ring holds ring_size bytes, at least 64 (0 on
 * overflow). */
size_t dynshm_mq_estimate(size_t ring_size);
/*
 * Lay out an empty queue in the size bytes at chunk (8-byte aligned; the
 * ring gets what the header leaves, rounded down to 8).  -EINVAL when size
 * leaves a ring under 64 bytes.  No side is attached.
 */
int dynshm_mq_create(void *chunk, size_t size);
/*
 * Attach to the queue at chunk (size bytes mapped here) as role, on behalf
 * of this process in inst (whose liveness the other side watches).
 * -EBUSY when the role is taken, -EUCLEAN when no valid queue is there.
 * *out is process-local; dynshm_mq_detach frees it.
 */
int dynshm_mq_attach(dynshm_instance *inst, void *chunk, size_t size,
		     dynshm_mq_role role, dynshm_mq **out);
/* Leave the queue (the other side sees it) and free mq.  A role is not
 * attached again.  An end belongs to the process that attached it: in a
 * forked child an inherited handle gives -EBADFD, and its detach frees
 * only the child's copy. */
int dynshm_mq_detach(dynshm_mq *mq);

/* Send len bytes (len may be 0). */
int dynshm_mq_send(dynshm_mq *mq, const void *data, size_t len, int timeout_ms);
/* Send the concatenation of iovcnt buffers as one message. */
int dynshm_mq_sendv(dynshm_mq *mq, const struct iovec *iov, int iovcnt,
		    int timeout_ms);
/*
 * Receive the next message into buf (cap bytes), its length into *len.
 * -EMSGSIZE when it is longer than cap: *len says how long, and nothing is
 * consumed.
 */
int dynshm_mq_receive(dynshm_mq *mq, void *buf, size_t cap, size_t *len,
		      int timeout_ms);
/*
 * Receive the next message without copying when it lies contiguous in the
 * ring: *data then points into the ring.  Otherwise it is copied into a
 * buffer the handle owns.  Either way *data stays valid, and the ring
 * space stays taken, until the next receive or the detach.
 */
int dynshm_mq_receive_view(dynshm_mq *mq, const void **data, size_t *len,
			   int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
