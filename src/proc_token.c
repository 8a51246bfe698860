/* SPDX-License-Identifier: MIT */
/*
 * proc_token.c - process liveness tokens for the facilities (dsm.h,
 * dynshm_proc_self / dynshm_proc_alive).
 *
 * Structures built on dynshm (the message queue of src/facility/) must tell
 * whether the process on the other side is still there, without knowing
 * how the wrapper records processes.  A token names one membership of one
 * process in the instance: the process table entry it holds and a 48-bit
 * tag derived from what that membership wrote into the entry when it
 * joined (pid, start time, join time).  A later process that reuses the
 * entry writes another join time, so its tag differs and the old token
 * reads as gone: tokens are not reused (a 2^-48 chance of a tag collision
 * aside).
 *
 *	token = tag << 16 | entry index	 (tag != 0, so token != 0)
 *
 * This file sits on today's process table (pid + /proc start time, see
 * ctl_proc_alive) and is meant to be replaced as a whole when the
 * wrapper's liveness signal changes; the facilities depend only on the two
 * declarations in dsm.h.
 *
 * The entry is read without the control lock: a membership that is still
 * joined never has its entry rewritten, so a torn read can only happen
 * while the entry belongs to someone else, when "gone" is the right answer.
 */
#include "wrapper.h"

#include "error.h"

#include <errno.h>
#include <inttypes.h>

#define TOKEN_INDEX_BITS 16
#define TOKEN_INDEX_MASK ((1u << TOKEN_INDEX_BITS) - 1)
#define TOKEN_TAG_MASK ((UINT64_C(1) << 48) - 1)

/* FNV-1a over the fields that name one membership of an entry. */
static uint64_t membership_tag(int32_t pid, uint64_t start_time,
			       uint64_t joined_ns)
{
	uint64_t v[3] = { (uint64_t)(uint32_t)pid, start_time, joined_ns };
	const unsigned char *p = (const unsigned char *)v;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < sizeof(v); i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	h = (h ^ (h >> 48)) & TOKEN_TAG_MASK;
	return h ? h : 1;
}

static uint64_t entry_tag(const struct ctl_proc *p)
{
	return membership_tag(__atomic_load_n(&p->pid, __ATOMIC_RELAXED),
			      __atomic_load_n(&p->start_time, __ATOMIC_RELAXED),
			      __atomic_load_n(&p->joined_ns, __ATOMIC_RELAXED));
}

DYNSHM_EXPORT int dynshm_proc_self(dynshm_instance *inst, uint64_t *token)
{
	int rc;

	if (!token)
		return dynshm_fail(EINVAL, "no place for the token given");
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	if (inst->me == CTL_NONE || inst->me > TOKEN_INDEX_MASK) {
		inst_leave(inst);
		return dynshm_fail(ESRCH, "this process is not joined to "
				   "instance '%s' (open it again)", inst->name);
	}
	*token = entry_tag(&inst->c.procs[inst->me]) << TOKEN_INDEX_BITS |
		 inst->me;
	inst_leave(inst);
	return 0;
}

static int entry_alive(const struct ctl_proc *p, uint64_t tag)
{
	int saved = errno;
	bool alive;

	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PROC_LIVE)
		return 0;
	if (entry_tag(p) != tag)
		return 0;
	errno = 0;
	alive = ctl_proc_alive(p);
	/* /proc could not be read at all: doubt means alive. */
	if (!alive && (errno == EMFILE || errno == ENFILE || errno == ENOMEM))
		alive = true;
	errno = saved;
	/* Released (reaped) while we looked: gone, whatever /proc says. */
	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PROC_LIVE)
		return 0;
	return alive ? 1 : 0;
}

DYNSHM_EXPORT int dynshm_proc_alive(dynshm_instance *inst, uint64_t token)
{
	uint32_t index = (uint32_t)(token & TOKEN_INDEX_MASK);
	uint64_t tag = token >> TOKEN_INDEX_BITS;
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	if (tag == 0 || tag > TOKEN_TAG_MASK ||
	    index >= inst->c.hdr->max_processes) {
		inst_leave(inst);
		return dynshm_fail(EINVAL, "0x%" PRIx64 " is not a process "
				   "token of instance '%s' (use one from "
				   "dynshm_proc_self)", token, inst->name);
	}
	if (index == inst->me) {
		rc = entry_tag(&inst->c.procs[index]) == tag;
		inst_leave(inst);
		return rc;
	}
	rc = entry_alive(&inst->c.procs[index], tag);
	inst_leave(inst);
	return rc;
}
