/*
 * proc_token.c - TEMPORARY process liveness tokens (dynshm_proc_self,
 * dynshm_proc_alive) for the shared area's per-thread caches.
 *
 * The lead replaces this file at merge with the wrapper's real signal;
 * the area depends only on the two declarations in dsm.h.  Until then it
 * sits on today's process table: a token is the entry index (low 16 bits)
 * and a 48-bit digest of what the membership wrote into its entry when it
 * joined (pid, start time, join time), so a later process reusing the
 * entry never matches an old token.  Liveness is ctl_proc_alive's answer
 * for the entry while the digest still matches; doubt (no /proc) means
 * alive.
 */
#include "wrapper.h"

#include "error.h"

#include <errno.h>
#include <inttypes.h>

#define TOKEN_INDEX_BITS 16
#define TOKEN_INDEX_MASK ((UINT64_C(1) << TOKEN_INDEX_BITS) - 1)

static uint64_t membership_digest(const struct ctl_proc *p)
{
	uint64_t h = 0x243f6a8885a308d3ull;

	h = (h ^ (uint32_t)__atomic_load_n(&p->pid, __ATOMIC_RELAXED)) *
	    0x9e3779b97f4a7c15ull;
	h = (h ^ __atomic_load_n(&p->start_time, __ATOMIC_RELAXED)) *
	    0x9e3779b97f4a7c15ull;
	h = (h ^ __atomic_load_n(&p->joined_ns, __ATOMIC_RELAXED)) *
	    0x9e3779b97f4a7c15ull;
	h >>= TOKEN_INDEX_BITS;
	return h ? h : 1;
}

DYNSHM_EXPORT int dynshm_proc_self(dynshm_instance *inst, uint64_t *token)
{
	int rc;

	if (!token)
		return dynshm_fail(EINVAL, "dynshm_proc_self: NULL token");
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	if (inst->me == CTL_NONE || inst->me > TOKEN_INDEX_MASK) {
		inst_leave(inst);
		return dynshm_fail(ESRCH, "this process is not joined to "
				   "instance '%s': open it again", inst->name);
	}
	*token = membership_digest(&inst->c.procs[inst->me])
			 << TOKEN_INDEX_BITS | inst->me;
	inst_leave(inst);
	return 0;
}

DYNSHM_EXPORT int dynshm_proc_alive(dynshm_instance *inst, uint64_t token)
{
	uint32_t index = (uint32_t)(token & TOKEN_INDEX_MASK);
	const struct ctl_proc *p;
	int saved = errno, rc = inst_enter(inst);
	bool alive;

	if (rc < 0)
		return rc;
	if ((token >> TOKEN_INDEX_BITS) == 0 ||
	    index >= inst->c.hdr->max_processes) {
		inst_leave(inst);
		return dynshm_fail(EINVAL, "0x%016" PRIx64 " is not a process "
				   "token of instance '%s' (they come from "
				   "dynshm_proc_self)", token, inst->name);
	}
	p = &inst->c.procs[index];
	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PROC_LIVE ||
	    membership_digest(p) != token >> TOKEN_INDEX_BITS) {
		inst_leave(inst);
		return 0;
	}
	if (index == inst->me) {
		inst_leave(inst);
		return 1;
	}
	errno = 0;
	alive = ctl_proc_alive(p);
	if (!alive && (errno == EMFILE || errno == ENFILE || errno == ENOMEM))
		alive = true; /* could not look: doubt means alive */
	errno = saved;
	inst_leave(inst);
	return alive ? 1 : 0;
}
