/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control segment: the one shared structure of an instance.
 *
 * Every process of an instance maps it.  It records every segment the
 * library created (so nothing can leak), every process joined (so a dead
 * one's references can be released alone), and which process holds which
 * segment.  Its layout, in one shared memory object:
 *
 *	struct ctl_header			(one page at most)
 *	struct ctl_proc   procs[max_processes]
 *	struct ctl_slot   slots[max_segments]
 *	uint64_t          refs[max_processes][row_words]
 *	uint32_t          names[name_buckets]	(the named index, below)
 *	struct region_ctl + its block arrays	(only with a region, region.h)
 *
 * refs is a bitmap: bit s of row p is set while process p holds a reference
 * on slot s.  A process holds at most one reference per segment (repeated
 * attaches in one process are counted locally), so a row is the whole truth
 * about what a process holds and releasing a dead process is clearing its row.
 *
 * PRIMARY AND DERIVED DATA.  Crash repair rests on one split:
 *   primary  - slot state/handle/size/backend/owner/owner_gen/pinned/
 *              doomed/name, proc state/gen/pid, the refs bitmap.  Every mutation of
 *              primary data is ordered so that any prefix of it, left by a
 *              process killed half-way, is a state the reaper can finish;
 *              the field that publishes a change (a state) is written last
 *              with a release store.
 *              A region segment's slot also records its block (backend
 *              CTL_BACKEND_REGION, region_offset, region_order), written
 *              with the reservation before the state is published.
 *   derived  - slot refcount, proc nrefs, the free-slot list, the counters,
 *              the named index, and the region allocator's free lists and
 *              counters: which blocks are free is "every block no non-FREE
 *              slot records".
 *              Recomputed from primary data whenever a lock holder is found
 *              dead (ctl_repair), so a half-done update of them is harmless:
 *              a process killed mid-allocation leaks no block.
 *
 * SCRIBBLES.  Any process of the user can write here, so every index or
 * offset read from this memory is checked before it is used: free-slot
 * links, named-index links, region free-list heads and links, a slot's
 * region block, reference bits beyond max_segments.  A derived structure
 * found inconsistent is rebuilt from primary data (ctl_recompute) and the
 * call that found it fails with -EUCLEAN naming it; primary data found
 * impossible (a region block outside the region) is refused, never used.
 * The (C) header fields are also compared, under the lock, with the copy
 * each process took when it validated them (struct ctl.ident) and put back
 * from it.
 *
 * NAMED INDEX.  names[] is a hash table of name_buckets (a power of two)
 * chain heads; a chain links slots through ctl_slot.name_next.  It holds
 * every non-FREE slot with a non-empty name (reserve_slot adds, freeing
 * removes) and lookups filter by state, so a name is found in O(1)
 * whatever the number of segments.  Derived: ctl_recompute rebuilds it.
 *
 * LOCKING.  The control lock (header.lock_word, liveness.c THE CONTROL
 * LOCK) guards every field below marked (L).  Its holder is named by a
 * seat, an OFD lock on the instance's procs file that the kernel drops
 * when the holder dies, in whatever PID namespace; header.lock_holder
 * says whether the last holder let go or died half-way.  Fields marked (C) are written once while the segment is
 * created, before any other process can see it, and never change; they are
 * covered by the header checksum.
 */
#ifndef DYNSHM_CONTROL_H
#define DYNSHM_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MAGIC 0x54436d68736e7964ull /* "dynshmCT" little-endian */
#define CTL_VERSION 7u /* 2: region fields, 3: slot names, 4: os ident,
			     5: OFD liveness, 6: named index, 7: OFD lock */

#define CTL_MAX_SEGMENTS (1u << 20)
#define CTL_MAX_PROCESSES (1u << 16)
#define CTL_NONE UINT32_MAX
/* The first byte of the procs file's lock seats (liveness.c). */
#define CTL_SEAT_BASE CTL_MAX_PROCESSES /* beyond every entry's byte */
/* ctl_header.lock_holder of a holder that has no entry yet (a joiner) */
#define CTL_ANON (UINT32_MAX - 1)
/* Bytes of a slot's name field: DYNSHM_SEGMENT_NAME_MAX + 1 for the NUL. */
#define CTL_NAME_LEN 64

/* Handle layout: [63..40] random, [39..24] generation, [23..0] slot. */
#define HANDLE_SLOT_BITS 24
#define HANDLE_SLOT_MASK ((1u << HANDLE_SLOT_BITS) - 1)
#define HANDLE_GEN_SHIFT 24
#define HANDLE_RAND_SHIFT 40
/* The control segment's own OS object: slot bits that no slot can have. */
#define CTL_HANDLE ((uint64_t)0x00c0ffee00ffffffull)
/* The region's OS object (region.c), likewise beyond every slot. */
#define REGION_HANDLE ((uint64_t)0x00c0ffee00fffffeull)
/* ctl_slot.backend of a segment carved from the region: no OS object. */
#define CTL_BACKEND_REGION 0x80u

/*
 * Slot states.  The refcount convention differs from PostgreSQL's (2+
 * active, 1 moribund, 0 free) because references are per process here:
 *
 *   FREE ---reserve---> CREATING ---OS object made---> ACTIVE
 *     ^                    |                              |
 *     |          creator died (reaper)       refcount 0 and not pinned
 *     |                    v                              v
 *     +-----OS object removed------------------------- MORIBUND
 *
 * Outside the lock: an ACTIVE slot has refcount > 0 or is pinned; a
 * CREATING or MORIBUND slot has a live owner, or a dead one that the next
 * reap replaces.  In CREATING the owner's bit is not yet set.  A reap that
 * cannot remove a dead creator's object makes the slot MORIBUND without an
 * owner (so its name is released) and leaves the removal to the next one.
 */
enum ctl_slot_state {
	SLOT_FREE = 0,
	SLOT_CREATING = 1,
	SLOT_ACTIVE = 2,
	SLOT_MORIBUND = 3,
};

/*
 * Process entry states.  An entry is a process's membership; whether the
 * process behind it lives is never read from /proc or pids but from the
 * kernel (liveness.c): while an entry is LIVE or FORK, a write lock on
 * byte <entry index> of the instance's "procs" file is held through an
 * open file description of that process (taken before the state is
 * published), and the kernel drops it when the last descriptor of that
 * description is closed - at the process's exit, whatever killed it.
 *
 *   FREE ---join (lock taken)---> LIVE ---leave, or reaped (lock gone)---> FREE
 *     |                            ^
 *     +--fork (parent, lock on a   | the child's first call adopts it
 *        description only the      |
 *        child keeps)----------> FORK ---child exited (lock gone)---> FREE
 *
 * FORK holds the references a forked child inherited (a copy of its
 * parent's row at the fork) until the child's first call makes the entry
 * its own, or the child exits (process.c, "fork").  gen is bumped each
 * time an entry is freed: (index, gen) names one membership, never reused
 * (a process's token, dynshm_proc_self), and a process whose gen moved on
 * knows it was released.
 */
enum ctl_proc_state {
	PROC_FREE = 0,
	PROC_LIVE = 1,
	PROC_FORK = 2,
};

struct ctl_slot {
	uint32_t state;	    /* (L) enum ctl_slot_state, published last */
	uint32_t backend;   /* (L) dynshm_impl_type that made the OS object */
	uint64_t handle;    /* (L) current handle; stale ones differ */
	uint64_t size;	    /* (L) bytes */
	uint32_t owner;	    /* (L) CREATING: creator, MORIBUND: destroyer */
	int32_t creator_pid; /* (L) for tools */
	uint64_t created_ns; /* (L) CLOCK_REALTIME at reservation */
	uint32_t pinned;    /* (L) 1 while pinned */
	uint32_t doomed;    /* (L) dynshm_destroy called: refuse attaches */
	uint32_t gen;	    /* (L) bumped each time the slot is freed */
	uint32_t refcount;  /* (L, derived) processes whose bit is set */
	uint32_t next_free; /* (L, derived) free list link or CTL_NONE */
	int32_t owner_pid;  /* (L) pid of owner, for tools */
	/*
	 * (L) the owner entry's ctl_proc.gen when it became owner: an entry
	 * taken since by another process (same pid number or not: PID
	 * namespaces) is not the owner.
	 */
	uint32_t owner_gen;
	uint32_t name_next; /* (L, derived) named-index chain or CTL_NONE */
	uint32_t region_order;	/* (L) region: block of 2^order pages */
	uint32_t huge;		/* (L) on hugetlb */
	uint64_t region_offset; /* (L) region: byte offset of the block */
	/*
	 * (L) primary.  "" for an anonymous segment.  Written when the slot
	 * is reserved (before CREATING is published) and not changed until
	 * the slot is reserved again; meaningful only while state != FREE.
	 * NAME INVARIANT: among the slots that are CREATING, or ACTIVE and
	 * not doomed, no two hold the same non-empty name.  Kept by checking
	 * and reserving under one hold of the lock (segment.c, named.c);
	 * dynshm_destroy (doomed) and MORIBUND release the name at once, so it
	 * can be reused while the old segment is still mapped somewhere.
	 * A CREATING slot with a name is also the init window of
	 * dynshm_get_named: others wait until it turns ACTIVE or is freed.
	 */
	char name[CTL_NAME_LEN];
	/*
	 * >>> object identity (primary).  A SysV key is not unique per
	 * handle (src/impl/sysv.c), so once the object exists its creator
	 * records what IPC_STAT says of it, and attach and destroy act only
	 * on the object these describe (struct dynshm_impl_ident).  Written
	 * by the creator while CREATING: os_cpid and os_ctime first, os_id
	 * (shmid + 1) last with a release store.  0 from the reservation
	 * until then: a slot without one removes an object only if IPC_STAT
	 * proves that creator_pid made it after created_ns, of this size.
	 * Unused (0) by the other backends, whose names are unique.
	 */
	int32_t os_id;
	int32_t os_cpid;
	int64_t os_ctime;
	/*
	 * (L) the creator's PID namespace (the inode of /proc/self/ns/pid,
	 * 0 unknown), written with creator_pid: creator_pid proves an
	 * unrecorded SysV object only to a checker in that same namespace.
	 */
	uint64_t creator_pidns;
	/* <<< object identity */
};

struct ctl_proc {
	uint32_t state;	     /* (L) enum ctl_proc_state, published last */
	int32_t pid;	     /* (L) for display only (FORK: the parent's) */
	uint32_t gen;	     /* (L) bumped when freed, before FREE is published */
	uint32_t parent;     /* (L) FORK: the forking process's entry, tools */
	uint64_t joined_ns;  /* (L) */
	uint32_t nrefs;	     /* (L, derived) bits set in its row */
	uint32_t reserved_;
};

struct ctl_header {
	/* (C) identity and geometry, covered by checksum */
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint32_t slot_size;
	uint32_t proc_size;
	uint32_t max_segments;
	uint32_t max_processes;
	uint32_t row_words;
	uint32_t backend; /* the instance's backend for new segments */
	uint64_t instance_id;
	uint64_t total_size;
	uint64_t procs_offset;
	uint64_t slots_offset;
	uint64_t refs_offset;
	uint64_t created_ns;
	int32_t creator_pid;
	uint32_t huge_pages;	/* dynshm_huge_pages for segments and region */
	uint64_t region_size;	/* bytes of the region, 0 = none */
	uint64_t region_offset; /* of its struct region_ctl, here */
	uint64_t names_offset;	/* of the named index */
	uint32_t name_buckets;	/* a power of two */
	uint32_t reserved_;
	uint64_t checksum; /* FNV-1a of every byte above */

	/*
	 * The control lock itself (liveness.c): 0 free, else the holder's
	 * seat + 1, bit 31 while sleepers may wait.  Atomics only.
	 */
	uint32_t lock_word;
	uint32_t reserved3_;

	/* (L, derived) */
	uint32_t free_head;
	uint32_t nsegments;
	uint32_t nprocs; /* LIVE entries (a FORK one is no process yet) */
	/* (L) set when the instance is destroyed or reset; never cleared */
	uint32_t destroyed;
	/* (L) statistics, never reset */
	uint64_t lock_repairs;
	uint64_t processes_reaped;
	/*
	 * (L) the control lock's own (liveness.c, lock_take), written by
	 * each holder as it takes the lock: acquisitions, those that found
	 * the word held at the first attempt and had to wait, and the
	 * CLOCK_MONOTONIC nanoseconds those waited, from the failed attempt
	 * until the lock was theirs (a take-over from a dead holder
	 * included).  The fast path adds one increment, no clock read.
	 * Plain stores under the lock: a holder killed half-way through one
	 * (two halves on 32-bit machines), or a scribble, leaves a wrong
	 * figure and nothing else, so ctl_recompute leaves them alone.
	 */
	uint64_t lock_acquisitions;
	uint64_t lock_waits;
	uint64_t lock_wait_ns;
	/*
	 * (L, derived) where the next open starts checking for dead
	 * processes (sync.c, JOIN_CHECKS): opens check a few entries each,
	 * round robin, instead of all.  Any value is harmless (taken modulo
	 * max_processes), so ctl_recompute leaves it alone.
	 */
	uint32_t reap_cursor;
	/* (L, derived) FORK entries: a detach looks at them when not 0 */
	uint32_t nforks;
	/*
	 * (L) the entry of the process holding the lock, CTL_ANON for a
	 * holder with no entry yet (a joiner), CTL_NONE when nobody holds
	 * it.  Set as the lock is taken, put back as it is let go: whoever
	 * takes the lock and finds it set knows the last holder died holding
	 * it, and whose exit to wait for before the repair.
	 */
	uint32_t lock_holder;
	uint32_t reserved2_;
};

/* A mapped, validated control segment. */
struct ctl {
	struct ctl_header *hdr;
	struct ctl_proc *procs;
	struct ctl_slot *slots;
	uint64_t *refs;
	uint32_t *names;
	/* as validated: for what is read without the lock (inst->local) */
	uint32_t max_segments;
	/* the (C) header as validated: a scribble is put back from it */
	unsigned char ident[offsetof(struct ctl_header, lock_word)];
};

/* CLOCK_REALTIME in ns: the control segment's time stamps (created_ns...) */
uint64_t ctl_now_ns(void);

size_t ctl_total_size(uint32_t max_segments, uint32_t max_processes,
		      uint64_t region_size);
/* Lay out a fresh control segment in zeroed memory of ctl_total_size(). */
int ctl_format(void *base, uint64_t instance_id, uint32_t backend,
	       uint32_t max_segments, uint32_t max_processes,
	       uint64_t region_size, uint32_t huge_pages);
/* Check header and geometry against a mapping of map_size bytes. */
int ctl_validate(void *base, size_t map_size, uint64_t instance_id,
		 const char *where, struct ctl *out);

static inline uint64_t *ctl_row(const struct ctl *c, uint32_t proc)
{
	return c->refs + (size_t)proc * c->hdr->row_words;
}

static inline bool ctl_bit(const struct ctl *c, uint32_t proc, uint32_t slot)
{
	return ctl_row(c, proc)[slot / 64] >> (slot % 64) & 1;
}

void ctl_set_bit(struct ctl *c, uint32_t proc, uint32_t slot);
void ctl_clear_bit(struct ctl *c, uint32_t proc, uint32_t slot);

/* Rebuild every derived field from primary data. */
void ctl_recompute(struct ctl *c);
/*
 * Pop a free slot / push a freed one.  -ENOSPC when none is free; -EUCLEAN
 * when the list was found scribbled (a link out of range, or to a slot
 * that is not FREE: a cycle ends there): derived data rebuilt, message set.
 */
int ctl_pop_free(struct ctl *c, uint32_t *out);
void ctl_push_free(struct ctl *c, uint32_t slot);

/* The named index (see NAMED INDEX): add / remove slot s by its name. */
void ctl_names_insert(struct ctl *c, uint32_t s);
void ctl_names_remove(struct ctl *c, uint32_t s);
/*
 * The slot holding name (CREATING, or ACTIVE and not doomed) in *out, or
 * CTL_NONE.  -EUCLEAN when the chain was scribbled (rebuilt, message set).
 */
int ctl_names_find(struct ctl *c, const char *name, uint32_t *out);
/*
 * Under the lock: the (C) header still as validated, and the region's (C)
 * geometry?  Puts back what differs; -EUCLEAN (message names the field)
 * when it had to.
 */
int ctl_check_live(struct ctl *c);

/* O(1) handle resolution; the slot or CTL_NONE. */
uint32_t ctl_lookup(const struct ctl *c, uint64_t handle);

/* A LIVE or FORK entry: one whose process the kernel tells about. */
static inline bool ctl_proc_held(const struct ctl_proc *p)
{
	return p->state == PROC_LIVE || p->state == PROC_FORK;
}

/* Process tokens (dynshm_proc_self): [63..32] entry gen, [31..0] index + 1. */
static inline uint64_t ctl_token(uint32_t proc, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)(proc + 1);
}

/* Publish a state with a release store (see PRIMARY AND DERIVED DATA). */
static inline void ctl_publish(uint32_t *field, uint32_t value)
{
	__atomic_store_n(field, value, __ATOMIC_RELEASE);
}

#endif
