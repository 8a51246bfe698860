/* SPDX-License-Identifier: MIT */
/*
 * segment.c - creating, attaching and detaching segments; pins, on-detach
 * callbacks, scopes and inspection.
 *
 * The order of every lifetime step is what keeps the control segment's
 * promises (control.h):
 *   create:  reserve the slot (CREATING, with us as owner) under the lock,
 *            make the OS object outside it, then set our reference and
 *            publish ACTIVE under the lock.  A creator killed anywhere in
 *            between leaves a CREATING slot with a dead owner, whose object
 *            the reaper can find by name and remove.
 *   attach:  take our reference under the lock first, then map; a segment
 *            with a reference cannot be destroyed under us.
 *   detach:  unmap first, then drop the reference; whoever drops the last
 *            one of an unpinned segment marks it MORIBUND (owner = us),
 *            removes the OS object outside the lock, and frees the slot.
 * The process-local side - one dynshm_segment per mapped segment, found by
 * slot index in O(1) - lives in dynshm_instance and is guarded by its mutex.
 *
 * A segment carved from the region (region.c) follows the same steps; its
 * "OS object" is a block of the region, taken with the reservation under
 * the lock and given back when the slot is freed, and mapping it is pointer
 * arithmetic (seg->map is NULL, seg->region_addr says where).
 *
 * Named segments (named.c) use the same create and attach paths: a name is
 * claimed with the slot reservation, and an initialisation callback runs
 * between making the OS object and publishing ACTIVE.
 */
#include "wrapper.h"
#include "abi.h"

#include "error.h"
#include "impl/impl_internal.h"
#include "region.h"
#include "sys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local struct dynshm_scope *current_scope;

#define HANDLE_FMT "0x%016llx"
#define HANDLE_ARG(h) ((unsigned long long)(h))

static int not_found(dynshm_instance *inst, dynshm_handle handle)
{
	return dynshm_fail(ENOENT,
			"dynamic shared memory segment " HANDLE_FMT
			" not found in instance '%s'",
			HANDLE_ARG(handle), inst->name);
}

static struct dynshm_scope *scope_of(dynshm_instance *inst)
{
	for (struct dynshm_scope *s = current_scope; s; s = s->parent)
		if (s->inst == inst)
			return s;
	return NULL;
}

/*
 * Count one more attach of seg by this thread: in its innermost scope of
 * seg's instance, if it has one.  Before nattach++, so that a failure
 * changes nothing.
 */
static int scope_note(struct dynshm_segment *seg)
{
	struct dynshm_scope *scope = scope_of(seg->inst);
	struct scope_ref *refs;
	unsigned cap;

	if (!scope)
		return 0;
	for (unsigned i = 0; i < seg->nscoped; i++) {
		if (seg->scoped[i].scope == scope) {
			seg->scoped[i].n++;
			return 0;
		}
	}
	if (seg->nscoped == seg->scoped_cap) {
		cap = seg->scoped_cap ? seg->scoped_cap * 2 : 2;
		refs = realloc(seg->scoped, cap * sizeof(*refs));
		if (!refs)
			return dynshm_fail(ENOMEM, "out of memory recording an "
						"attach in a scope");
		seg->scoped = refs;
		seg->scoped_cap = cap;
	}
	seg->scoped[seg->nscoped].scope = scope;
	seg->scoped[seg->nscoped].n = 1;
	seg->nscoped++;
	return 0;
}

static void scope_drop_ref(struct dynshm_segment *seg, unsigned i)
{
	seg->scoped[i] = seg->scoped[--seg->nscoped];
}

/* Index of scope's record in seg, or -1. */
static int scope_ref_of(const struct dynshm_segment *seg,
			const struct dynshm_scope *scope)
{
	for (unsigned i = 0; i < seg->nscoped; i++)
		if (seg->scoped[i].scope == scope)
			return (int)i;
	return -1;
}

/*
 * An explicit dynshm_detach (before nattach--): it undoes this thread's
 * latest scoped attach if there is one, else an unscoped attach; only when
 * every remaining attach is a scoped one of other threads does it take one
 * of theirs (so that the counts never exceed nattach).
 */
static void scope_forget_one(struct dynshm_segment *seg)
{
	unsigned sum = 0;
	int i;

	for (struct dynshm_scope *s = current_scope; s; s = s->parent) {
		if (s->inst != seg->inst || (i = scope_ref_of(seg, s)) < 0)
			continue;
		if (--seg->scoped[i].n == 0)
			scope_drop_ref(seg, (unsigned)i);
		return;
	}
	for (unsigned k = 0; k < seg->nscoped; k++)
		sum += seg->scoped[k].n;
	if (sum >= seg->nattach && seg->nscoped > 0 &&
	    --seg->scoped[0].n == 0)
		scope_drop_ref(seg, 0);
}

static dynshm_handle new_handle(dynshm_instance *inst, uint32_t slot, uint32_t gen)
{
	uint64_t r;

	do
		r = inst_random(inst) & 0xffffff;
	while (r == 0);
	return r << HANDLE_RAND_SHIFT |
	       (uint64_t)(gen & 0xffff) << HANDLE_GEN_SHIFT | slot;
}

/* ---- names under the lock (named.c builds get-or-create on them) ---- */

/* Is the process that reserved this CREATING slot still running? */
static bool creator_alive(dynshm_instance *inst, const struct ctl_slot *slot)
{
	const struct ctl *c = &inst->c;
	const struct ctl_proc *p;

	if (slot->owner >= c->hdr->max_processes)
		return false;
	p = &c->procs[slot->owner];
	if (p->state != PROC_LIVE || p->gen != slot->owner_gen)
		return false;
	return slot->owner == inst->me || live_held(inst, slot->owner);
}

/*
 * Find name (its slot or CTL_NONE in *out); a slot whose creator died is
 * handed to the reaper first, which removes its object and frees it, so
 * the name is free again.  -EUCLEAN: the index was scribbled (rebuilt).
 */
int named_find_locked(dynshm_instance *inst, const char *name,
		      uint32_t *out)
{
	struct ctl *c = &inst->c;
	int rc = ctl_names_find(c, name, out);

	if (rc == 0 && *out != CTL_NONE &&
	    c->slots[*out].state == SLOT_CREATING &&
	    !creator_alive(inst, &c->slots[*out])) {
		HOOK("named:reap");
		reap_locked(inst, true, NULL);
		rc = ctl_names_find(c, name, out);
	}
	return rc;
}

int named_claim_locked(dynshm_instance *inst, const char *name)
{
	uint32_t s = CTL_NONE;
	int rc = named_find_locked(inst, name, &s);

	if (rc < 0)
		return rc;
	if (s == CTL_NONE)
		return 0;
	return dynshm_fail(EEXIST,
			"a segment named '%s' already exists in instance '%s' "
			"(handle " HANDLE_FMT "%s)",
			name, inst->name, HANDLE_ARG(inst->c.slots[s].handle),
			inst->c.slots[s].state == SLOT_CREATING
				? ", being initialised"
				: "");
}

/* ---- process-local bookkeeping ----------------------------------------- */

static void link_segment(dynshm_instance *inst, struct dynshm_segment *seg)
{
	seg->next = inst->segs;
	if (inst->segs)
		inst->segs->prev = seg;
	inst->segs = seg;
	if (seg->slot != CTL_NONE)
		inst->local[seg->slot] = seg;
}

static void unlink_segment(dynshm_instance *inst, struct dynshm_segment *seg)
{
	if (seg->prev)
		seg->prev->next = seg->next;
	else
		inst->segs = seg->next;
	if (seg->next)
		seg->next->prev = seg->prev;
	if (seg->slot != CTL_NONE && inst->local[seg->slot] == seg)
		inst->local[seg->slot] = NULL;
}

static struct dynshm_segment *alloc_segment(dynshm_instance *inst)
{
	struct dynshm_segment *seg = calloc(1, sizeof(*seg));

	if (seg) {
		seg->inst = inst;
		seg->slot = CTL_NONE;
	}
	return seg;
}

/* ---- the shared side ---------------------------------------------------- */

/* If nobody holds slot s and it is not pinned, make it ours to destroy. */
static bool retire_if_unused_locked(dynshm_instance *inst, uint32_t s)
{
	struct ctl_slot *slot = &inst->c.slots[s];

	if (slot->state != SLOT_ACTIVE || slot->refcount || slot->pinned)
		return false;
	slot->owner = inst->me;
	slot->owner_gen = inst->me_gen;
	slot->owner_pid = (int32_t)inst->pid;
	ctl_publish(&slot->state, SLOT_MORIBUND);
	HOOK("retire:moribund");
	return true;
}

/* Outside the lock: remove the OS object of a slot we retired, free it. */
static void finish_destroy(dynshm_instance *inst, uint32_t s, uint32_t backend,
			   dynshm_handle handle)
{
	struct ctl_slot *slot = &inst->c.slots[s];
	int rc;

	HOOK("destroy:before-os");
	rc = os_destroy(inst, backend, handle);
	HOOK("destroy:after-os");
	if (ctl_lock(inst) < 0)
		return;
	/*
	 * Not removed: freeing the slot would lose the object (a sysv one
	 * beyond any sweep).  Keep it MORIBUND without an owner, so that the
	 * next sweeping reap, or the instance's destroy, tries again.
	 */
	if (slot->state == SLOT_MORIBUND && slot->handle == handle &&
	    slot->owner == inst->me && slot->owner_gen == inst->me_gen) {
		if (rc < 0)
			slot->owner = CTL_NONE;
		else
			slot_free_locked(inst, s);
	}
	ctl_unlock(inst);
}

/* Drop our reference on slot s (if it is still handle) and retire it. */
static void release_reference(dynshm_instance *inst, uint32_t s,
			      dynshm_handle handle)
{
	struct ctl_slot *slot = &inst->c.slots[s];
	uint32_t backend = 0;
	bool destroy = false;

	if (ctl_lock(inst) < 0)
		return;
	if (slot->handle == handle && slot->state != SLOT_FREE) {
		ctl_clear_bit(&inst->c, inst->me, s);
		HOOK("detach:released");
		backend = slot->backend;
		forks_let_go_locked(inst, s); /* may free the slot itself */
		destroy = slot->handle == handle &&
			  retire_if_unused_locked(inst, s);
	}
	ctl_unlock(inst);
	if (destroy)
		finish_destroy(inst, s, backend, handle);
}

/*
 * Region segments: take a block for slot (fresh from the free list).  Only
 * when the region is demanded (must) is it worth reaping the dead first;
 * otherwise the backend serves at once.
 */
static int reserve_block_locked(dynshm_instance *inst, uint32_t s, size_t size,
				bool must)
{
	struct ctl_slot *slot = &inst->c.slots[s];
	uint64_t offset = 0;
	uint32_t order = 0;
	int rc = region_alloc_locked(&inst->c, size, &offset, &order);

	if (rc == -ENOSPC && must) {
		reap_locked(inst, false, NULL); /* the dead may hold blocks */
		rc = region_alloc_locked(&inst->c, size, &offset, &order);
	}
	if (rc == -EUCLEAN)
		return rc; /* scribbled lists, rebuilt: the message says */
	if (rc < 0)
		return dynshm_fail(ENOSPC,
				"the region of instance '%s' has no free block "
				"of %zu bytes (largest free: %" PRIu64 " bytes)",
				inst->name, size,
				region_largest_free(&inst->c));
	HOOK("region:allocated");
	slot->backend = CTL_BACKEND_REGION;
	slot->huge = region_of(&inst->c)->pages == REGION_PAGES_HUGETLB;
	slot->region_offset = offset;
	slot->region_order = order;
	return 0;
}

/*
 * region: 0 backend, 1 region if it fits, 2 region only (reap to fit).
 * name: NULL for an anonymous segment; checked with the reservation.
 */
static int reserve_slot(dynshm_instance *inst, size_t size, int region,
			const char *name,
			uint32_t *out_slot, dynshm_handle *out_handle)
{
	struct ctl *c = &inst->c;
	struct ctl_slot *slot;
	uint32_t s;
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	if (name && (rc = named_claim_locked(inst, name)) < 0) {
		ctl_unlock(inst);
		return rc;
	}
	rc = ctl_pop_free(c, &s);
	if (rc == -ENOSPC) {
		reap_locked(inst, false, NULL); /* the dead may hold slots */
		rc = ctl_pop_free(c, &s);
	}
	if (rc == -ENOSPC) {
		ctl_unlock(inst);
		return dynshm_fail(ENOSPC,
				"all %u segment slots of instance '%s' are in "
				"use (raise max_segments)",
				c->hdr->max_segments, inst->name);
	}
	if (rc < 0) {
		ctl_unlock(inst);
		return rc; /* scribbled free list, rebuilt: the message says */
	}
	slot = &c->slots[s];
	slot->backend = inst->backend;
	slot->region_order = REGION_NO_BLOCK;
	slot->huge = 0;
	if (region &&
	    (rc = reserve_block_locked(inst, s, size, region == 2)) < 0) {
		ctl_push_free(c, s);
		c->hdr->nsegments--;
		ctl_unlock(inst);
		return rc;
	}
	slot->size = size;
	slot->handle = new_handle(inst, s, slot->gen);
	slot->owner = inst->me;
	slot->owner_gen = inst->me_gen;
	slot->owner_pid = (int32_t)inst->pid;
	slot->creator_pid = (int32_t)inst->pid;
	slot->creator_pidns = own_pid_namespace();
	slot->created_ns = ctl_now_ns();
	slot->pinned = 0;
	slot->doomed = 0;
	slot->os_id = 0; /* no object yet: identity unknown (control.h) */
	snprintf(slot->name, sizeof(slot->name), "%s", name ? name : "");
	slot->name_next = CTL_NONE;
	if (name)
		ctl_names_insert(c, s); /* derived (control.h, NAMED INDEX) */
	ctl_publish(&slot->state, SLOT_CREATING);
	HOOK("create:reserved");
	ctl_unlock(inst);
	*out_slot = s;
	*out_handle = slot->handle;
	return 0;
}

/* Give back a slot whose OS object was never made (or was removed). */
static void unreserve_slot(dynshm_instance *inst, uint32_t s, dynshm_handle handle)
{
	struct ctl_slot *slot = &inst->c.slots[s];

	if (ctl_lock(inst) < 0)
		return;
	if (slot->state == SLOT_CREATING && slot->handle == handle &&
	    slot->owner == inst->me && slot->owner_gen == inst->me_gen)
		slot_free_locked(inst, s);
	ctl_unlock(inst);
}

/*
 * A slot whose OS object could not be removed: MORIBUND without an owner,
 * so that the next reap tries again and its name is free at once (as
 * finish_destroy leaves one).
 */
static void abandon_slot(dynshm_instance *inst, uint32_t s, dynshm_handle handle)
{
	struct ctl_slot *slot = &inst->c.slots[s];

	if (ctl_lock(inst) < 0)
		return;
	if (slot->state == SLOT_CREATING && slot->handle == handle &&
	    slot->owner == inst->me && slot->owner_gen == inst->me_gen) {
		slot->owner = CTL_NONE;
		ctl_publish(&slot->state, SLOT_MORIBUND);
	}
	ctl_unlock(inst);
}

/*
 * Publish seg's slot, if it is still the CREATING slot we reserved: a
 * process released meanwhile (ctl_lock says -ESTALE), or whose slot was
 * finished by a reaper and reserved again by another, publishes nothing -
 * not another process's half-initialised segment.
 */
static int activate_slot(dynshm_instance *inst, struct dynshm_segment *seg,
			 bool pin)
{
	struct ctl_slot *slot = &inst->c.slots[seg->slot];
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	if (slot->state != SLOT_CREATING || slot->handle != seg->handle ||
	    slot->owner != inst->me || slot->owner_gen != inst->me_gen) {
		ctl_unlock(inst);
		return dynshm_fail(ESTALE, "segment 0x%016llx of instance '%s' "
					"was taken from this process while it "
					"was being created; create it again",
				HANDLE_ARG(seg->handle), inst->name);
	}
	ctl_set_bit(&inst->c, inst->me, seg->slot);
	slot->pinned = pin;
	if (seg->os_huge)
		slot->huge = 1;
	HOOK("create:referenced");
	ctl_publish(&slot->state, SLOT_ACTIVE);
	ctl_unlock(inst);
	return 0;
}

static int refuse_disabled(dynshm_instance *inst)
{
	dynshm_impl_space *space;
	dynshm_impl_map *map;
	int rc = space_for(inst, DYNSHM_IMPL_NONE, &space);

	/* The none backend words the refusal; keep one wording. */
	return rc < 0 ? rc : dynshm_impl_create(space, 1, 1, 0, &map);
}

/*
 * Is seg's slot still the CREATING slot this process reserved?  Read
 * without the lock: it only guards what is written into the slot before
 * activation, which activate_slot checks again under the lock.
 */
static bool slot_still_ours(const dynshm_instance *inst,
			    const struct dynshm_segment *seg)
{
	const struct ctl_slot *slot = &inst->c.slots[seg->slot];

	return __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE) ==
		       SLOT_CREATING &&
	       slot->handle == seg->handle && slot->owner == inst->me &&
	       slot->owner_gen == inst->me_gen;
}

/* After SHM_HUGETLB failed, this many sysv creates go straight to 4 KiB. */
#define HUGE_BACKOFF 64

/*
 * An OS object belongs to whoever makes it, and every process of the
 * instance refuses an object that is not its own (impl/common.c).  A
 * member that dropped privileges after joining (setresuid to a service
 * user, as prefork servers do) would make segments that the instance's
 * other processes can neither attach nor destroy, with create reporting
 * success: refuse it here, where the caller can still be told.  The
 * instance's owner is its directory's, checked ours at open.
 */
static int check_still_owner(dynshm_instance *inst)
{
	struct stat st;

	if (dynshm_sys.fstat(inst->dirfd, &st) < 0)
		return dynshm_fail(errno, "cannot stat the directory of "
				       "instance '%s': %s",
				   inst->name, strerror(errno));
	if (!dynshm_uid_is_ours(st.st_uid))
		return dynshm_fail(EACCES,
				"instance '%s' belongs to uid %u, but this "
				"process now runs as uid %u (privileges "
				"changed after dynshm_instance_open?): the "
				"instance's other processes could not use a "
				"segment it made",
				inst->name, (unsigned)st.st_uid,
				(unsigned)geteuid());
	return 0;
}

static int create_os_object(dynshm_instance *inst, size_t size,
			    const char *name, struct dynshm_segment *seg)
{
	dynshm_impl_space *space;
	unsigned huge = region_segment_flags(inst, size);
	int rc = check_still_owner(inst);

	if (rc == 0)
		rc = space_for(inst, inst->backend, &space);

	for (int attempt = 0; rc == 0 && attempt < 16; attempt++) {
		rc = reserve_slot(inst, size, 0, name, &seg->slot,
				  &seg->handle);
		if (rc < 0)
			break;
		HOOK("create:before-os");
		rc = dynshm_impl_create(space, seg->handle, size, huge, &seg->map);
		if (rc < 0 && rc != -EEXIST && huge) {
			/* no huge page for it: 4 KiB pages, as huge_pages says */
			huge = 0;
			inst->huge_backoff = HUGE_BACKOFF;
			dynshm_clear_error();
			rc = dynshm_impl_create(space, seg->handle, size, 0,
					     &seg->map);
		}
		if (rc == 0) {
			seg->os_huge = huge != 0; /* published by activate_slot */
			/*
			 * The SysV identity goes in now, before activation, so
			 * a reaper of a creator killed from here on removes the
			 * object by identity; only while the slot is still the
			 * one we reserved (a released process writes nothing).
			 */
			if (slot_still_ours(inst, seg))
				slot_record_ident(&inst->c.slots[seg->slot],
						  seg->map);
			break;
		}
		unreserve_slot(inst, seg->slot, seg->handle);
		seg->slot = CTL_NONE;
		if (rc != -EEXIST)
			return rc;
		rc = 0; /* a name collision: try another handle */
	}
	if (rc == 0 && !seg->map)
		rc = dynshm_fail(EEXIST, "16 name collisions in a row creating a "
				      "segment in instance '%s'",
			      inst->name);
	return rc;
}

/* Reserve a slot with a block of the region; zero it outside the lock. */
static int create_in_region(dynshm_instance *inst, size_t size,
			    const char *name, unsigned flags,
			    struct dynshm_segment *seg)
{
	struct ctl_slot *slot;
	int rc = reserve_slot(inst, size, flags & DYNSHM_CREATE_REGION ? 2 : 1,
			      name, &seg->slot, &seg->handle);

	if (rc < 0)
		return rc;
	slot = &inst->c.slots[seg->slot]; /* ours while CREATING */
	rc = region_block_check(&inst->c, seg->slot);
	if (rc < 0) {
		unreserve_slot(inst, seg->slot, seg->handle);
		seg->slot = CTL_NONE;
		return rc;
	}
	seg->region_addr = (char *)inst->region.base + slot->region_offset;
	seg->region_size = size;
	HOOK("region:before-zero");
	if (!(flags & DYNSHM_CREATE_NO_ZERO))
		memset(seg->region_addr, 0, size);
	return 0;
}

/* Region first unless told otherwise; the backend when it has no room. */
static int create_placed(dynshm_instance *inst, size_t size, const char *name,
			 unsigned flags, struct dynshm_segment *seg)
{
	int rc;

	if (flags & DYNSHM_CREATE_NO_REGION)
		return create_os_object(inst, size, name, seg);
	if (!inst->region.base) {
		if (flags & DYNSHM_CREATE_REGION)
			return dynshm_fail(ENOTSUP,
					"instance '%s' has no region "
					"(min_dynamic_shared_memory = 0)",
					inst->name);
		return create_os_object(inst, size, name, seg);
	}
	rc = create_in_region(inst, size, name, flags, seg);
	if (rc == -ENOSPC && !(flags & DYNSHM_CREATE_REGION)) {
		dynshm_clear_error();
		seg->slot = CTL_NONE;
		rc = create_os_object(inst, size, name, seg);
	}
	return rc;
}

#define CREATE_FLAGS                                                           \
	(DYNSHM_CREATE_REGION | DYNSHM_CREATE_NO_REGION | DYNSHM_CREATE_NO_ZERO |        \
	 DYNSHM_CREATE_PIN)

/* The flags every create function takes (dynshm_create, the named ones). */
int segment_check_flags(const dynshm_instance *inst, unsigned flags)
{
	if ((flags & ~CREATE_FLAGS) ||
	    (flags & DYNSHM_CREATE_REGION && flags & DYNSHM_CREATE_NO_REGION))
		return dynshm_fail(EINVAL,
				"bad create flags 0x%x for instance '%s' "
				"(allowed: DYNSHM_CREATE_REGION or "
				"DYNSHM_CREATE_NO_REGION, DYNSHM_CREATE_NO_ZERO, "
				"DYNSHM_CREATE_PIN)",
				flags, inst->name);
	return 0;
}

/* A failed initialisation callback: its code, with a message of ours. */
static int init_failed(dynshm_instance *inst, const char *name, int rc)
{
	if (rc > 0)
		rc = -ECANCELED; /* not an errno: say "cancelled" */
	return dynshm_fail(-rc, "the initialisation callback of segment '%s' in "
			     "instance '%s' failed (%s); the segment was "
			     "removed",
			name, inst->name, strerror(-rc));
}

/*
 * Create, run init while the slot is still CREATING (so that nobody else
 * can map a half-initialised segment), then publish it.  Arguments are
 * valid and inst is entered.  name and init are NULL for dynshm_create.
 */
int segment_create(dynshm_instance *inst, size_t size, const char *name,
		   unsigned flags, dynshm_init_fn init, void *arg,
		   dynshm_segment **out)
{
	struct dynshm_segment *seg;
	int rc;

	if (inst->backend == DYNSHM_IMPL_NONE)
		return refuse_disabled(inst);
	seg = alloc_segment(inst);
	if (!seg)
		return dynshm_fail(ENOMEM, "out of memory creating a segment");
	rc = create_placed(inst, size, name, flags, seg);
	if (rc < 0)
		goto fail_free;
	HOOK("create:after-os");
	/* >>> placement (placement.h): the region instead of our own map */
	if (seg->map && placement_covers(inst, inst->backend, size)) {
		rc = placement_place(inst, seg, size);
		if (rc < 0)
			goto fail_unmap;
	}
	/* <<< placement */
	if (init) {
		HOOK("named:init");
		rc = init(seg, arg);
		if (rc != 0) {
			rc = init_failed(inst, name, rc);
			goto fail_unmap;
		}
	}
	rc = scope_note(seg);
	if (rc < 0)
		goto fail_unmap;
	rc = activate_slot(inst, seg, flags & DYNSHM_CREATE_PIN);
	if (rc < 0)
		goto fail_unmap;
	seg->nattach = 1;
	link_segment(inst, seg);
	*out = seg;
	return 0;

fail_unmap:
	/*
	 * Back out in reverse: unmap, remove the object, free the slot - or,
	 * when the object could not be removed, leave the slot to the next
	 * reap (abandon_slot), never freed with its object recorded nowhere.
	 * A process released meanwhile (-ESTALE) removes the object its own
	 * mapping names (by that identity, never by key alone) and leaves the
	 * slot, no longer its own.  The message stays the one of the failure.
	 */
	{
		char why[512];
		int gone = 0;

		snprintf(why, sizeof(why), "%s", dynshm_last_error());
		if (rc == -ESTALE && (seg->map || seg->placed)) {
			dynshm_impl_space *space;
			struct dynshm_impl_ident ident = { -1, 0, 0, 0 };

			if (seg->map)
				ident = seg->map->ident;
			if (space_for(inst, inst->backend, &space) == 0)
				dynshm_impl_destroy_ident(space, seg->handle,
							  &ident);
			if (seg->map)
				dynshm_impl_detach(seg->map);
		} else {
			if (seg->map)
				dynshm_impl_detach(seg->map);
			if (seg->map || seg->placed) /* a region block has none */
				gone = os_destroy(inst, inst->backend,
						  seg->handle);
		}
		if (gone < 0)
			abandon_slot(inst, seg->slot, seg->handle);
		else
			unreserve_slot(inst, seg->slot, seg->handle);
		dynshm_fail(-rc, "%s", why);
	}
fail_free:
	free(seg->scoped);
	free(seg->cbs);
	free(seg);
	return rc;
}

DYNSHM_EXPORT int dynshm_create(dynshm_instance *inst, size_t size, unsigned flags,
			  dynshm_segment **out)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	if (!out)
		rc = dynshm_fail(EINVAL, "no result pointer given");
	else if (size == 0 || size > DYNSHM_IMPL_MAX_SIZE)
		rc = dynshm_fail(EINVAL,
			      "cannot create a segment of %zu bytes in "
			      "instance '%s' (sizes: 1 to %zu)",
			      size, inst->name, DYNSHM_IMPL_MAX_SIZE);
	else
		rc = segment_check_flags(inst, flags);
	if (rc == 0)
		rc = segment_create(inst, size, NULL, flags, NULL, NULL, out);
	inst_leave(inst);
	return rc;
}

/*
 * Take the control lock and resolve handle to a live slot: ACTIVE and not
 * being destroyed.  On success the lock is held; on failure it is not.
 */
static int lock_live_slot(dynshm_instance *inst, dynshm_handle handle, uint32_t *out)
{
	struct ctl *c = &inst->c;
	uint32_t s;
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	s = ctl_lookup(c, handle);
	if (s == CTL_NONE || c->slots[s].state != SLOT_ACTIVE ||
	    c->slots[s].doomed) {
		ctl_unlock(inst);
		return not_found(inst, handle);
	}
	*out = s;
	return 0;
}

/*
 * Take our reference on handle under the lock; its slot and backend, and
 * for a region segment where it is (in seg).
 */
static int reference_handle(dynshm_instance *inst, dynshm_handle handle,
			    uint32_t *out_slot, uint32_t *backend,
			    uint64_t *size, struct dynshm_segment *seg,
			    struct dynshm_impl_ident *ident)
{
	struct ctl *c = &inst->c;
	uint32_t s = CTL_NONE;
	int rc = lock_live_slot(inst, handle, &s);

	if (rc < 0)
		return rc;
	/* a scribbled block would put the segment outside the region */
	if (c->slots[s].backend == CTL_BACKEND_REGION &&
	    (rc = region_block_check(c, s)) < 0) {
		ctl_unlock(inst);
		return rc;
	}
	ctl_set_bit(c, inst->me, s);
	HOOK("attach:referenced");
	*backend = c->slots[s].backend;
	*size = c->slots[s].size;
	slot_ident(&c->slots[s], ident);
	if (*backend == CTL_BACKEND_REGION) {
		seg->region_addr =
			(char *)inst->region.base + c->slots[s].region_offset;
		seg->region_size = c->slots[s].size;
	}
	ctl_unlock(inst);
	*out_slot = s;
	return 0;
}

/*
 * >>> vanished objects (issue 13, item 6).  Another program may remove a
 * segment's OS object: Python's multiprocessing resource tracker unlinks
 * every shared_memory block an interpreter attached when it exits, an
 * operator runs ipcrm or rm.  The slot stays ACTIVE (it is held or pinned)
 * but nothing can map it again.  An attach says so (-EIDRM, not -ENOENT,
 * which means "no such segment"), dynshm_foreach_segment reports the state
 * DYNSHM_SEGMENT_VANISHED, and dynshm_reap and dynshm_destroy retire the
 * slot: there is nothing left to keep, so a pin no longer holds it.
 */
static int vanished(dynshm_instance *inst, dynshm_handle handle)
{
	char why[384];

	snprintf(why, sizeof(why), "%s", dynshm_last_error());
	return dynshm_fail(EIDRM,
			"segment " HANDLE_FMT " of instance '%s' vanished: "
			"another program removed its object (%s); destroy it "
			"or reap (dsm_demo destroy, gc) to retire its slot",
			HANDLE_ARG(handle), inst->name, why);
}

/* Does slot's object still exist?  (Probed with the backend that made it.) */
static bool object_vanished(dynshm_instance *inst, uint32_t backend,
			    dynshm_handle handle,
			    const struct dynshm_impl_ident *ident)
{
	dynshm_impl_space *space = NULL;
	int rc;

	if (backend == CTL_BACKEND_REGION)
		return false; /* no object of its own */
	rc = space_for(inst, (dynshm_impl_type)backend, &space);
	if (rc == 0)
		rc = dynshm_impl_probe(space, handle, ident);
	dynshm_clear_error();
	return rc == -ENOENT; /* any other failure is doubt: still there */
}

/*
 * dynshm_reap's vanished pass: unpin and doom every ACTIVE slot whose
 * object vanished; free the ones nobody holds now (the others go with
 * their last detach).  The count of slots retired or doomed in *n.
 * Each object is probed with a system call, outside the control lock:
 * the slots are listed under it, probed without it, and a slot is acted
 * on only if, under the lock again, it still holds the handle probed.
 * So the lock is held for two walks of the slots, not for a system call
 * per segment.  Best effort: out of memory, nothing is retired.
 */
void segment_retire_vanished(dynshm_instance *inst, unsigned *n)
{
	struct ctl *c = &inst->c;
	struct probe {
		uint32_t slot;
		uint32_t backend;
		dynshm_handle handle;
		struct dynshm_impl_ident ident;
	} *p;
	uint32_t np = 0, max = c->max_segments;

	*n = 0;
	p = calloc(max, sizeof(*p));
	if (!p || ctl_lock(inst) < 0)
		goto out;
	for (uint32_t s = 0; s < max; s++) {
		struct ctl_slot *slot = &c->slots[s];

		if (slot->state != SLOT_ACTIVE)
			continue;
		p[np].slot = s;
		p[np].backend = slot->backend;
		p[np].handle = slot->handle;
		slot_ident(slot, &p[np].ident);
		np++;
	}
	ctl_unlock(inst);
	for (uint32_t i = 0; i < np; i++)
		if (!object_vanished(inst, p[i].backend, p[i].handle,
				     &p[i].ident))
			p[i].handle = DYNSHM_HANDLE_INVALID; /* still there */
	if (ctl_lock(inst) < 0)
		goto out;
	for (uint32_t i = 0; i < np; i++) {
		struct ctl_slot *slot = &c->slots[p[i].slot];

		if (p[i].handle == DYNSHM_HANDLE_INVALID ||
		    slot->handle != p[i].handle || slot->state != SLOT_ACTIVE)
			continue; /* there, or freed and reused meanwhile */
		slot->pinned = 0;
		slot->doomed = 1;
		(*n)++;
		if (slot->refcount == 0 &&
		    os_destroy(inst, slot->backend, slot->handle) == 0)
			slot_free_locked(inst, p[i].slot);
	}
	ctl_unlock(inst);
out:
	free(p);
	dynshm_clear_error();
}
/* <<< vanished objects */

static int attach_new(dynshm_instance *inst, dynshm_handle handle,
		      dynshm_segment **out)
{
	struct dynshm_segment *seg = alloc_segment(inst);
	struct dynshm_impl_ident ident;
	dynshm_impl_space *space = NULL;
	uint32_t backend = 0;
	uint64_t size = 0;
	int rc;

	if (!seg)
		return dynshm_fail(ENOMEM, "out of memory attaching a segment");
	rc = scope_note(seg); /* first: nothing to undo if it fails */
	if (rc == 0)
		rc = reference_handle(inst, handle, &seg->slot, &backend,
				      &size, seg, &ident);
	if (rc < 0)
		goto fail_free;
	seg->handle = handle;
	if (backend == CTL_BACKEND_REGION)
		rc = 0; /* carved from the region: no system call at all */
	else if (placement_covers(inst, backend, size)) /* placement.h */
		rc = placement_attach(inst, seg, (size_t)size);
	else {
		rc = space_for(inst, (dynshm_impl_type)backend, &space);
		if (rc == 0)
			rc = dynshm_impl_attach_ident(space, handle, &ident,
						      &seg->map);
		if (rc == -ENOENT)
			rc = vanished(inst, handle);
	}
	if (rc < 0)
		goto fail_release;
	seg->nattach = 1;
	link_segment(inst, seg);
	*out = seg;
	return 0;

fail_release:
	release_reference(inst, seg->slot, handle);
fail_free:
	free(seg->scoped);
	free(seg);
	return rc;
}

/* dynshm_attach with inst entered (also used by the named functions). */
int segment_attach(dynshm_instance *inst, dynshm_handle handle, dynshm_segment **out)
{
	uint32_t s = (uint32_t)(handle & HANDLE_SLOT_MASK);

	if (!out)
		return dynshm_fail(EINVAL, "no result pointer given");
	/* unlocked: the validated size of inst->local, not the header's */
	if (s < inst->c.max_segments && inst->local[s] &&
	    inst->local[s]->handle == handle) {
		int rc = scope_note(inst->local[s]);

		if (rc < 0)
			return rc;
		inst->local[s]->nattach++; /* already mapped here */
		*out = inst->local[s];
		return 0;
	}
	return attach_new(inst, handle, out);
}

DYNSHM_EXPORT int dynshm_attach(dynshm_instance *inst, dynshm_handle handle,
			  dynshm_segment **out)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	rc = segment_attach(inst, handle, out);
	inst_leave(inst);
	return rc;
}

/*
 * The last local detach: callbacks, unmap, then drop the reference.  A
 * callback that attached seg again (the attach finds this very mapping,
 * still in local[]) keeps it: the mapping lives on for that attach, and
 * its last detach runs whatever callbacks are registered by then.  Before,
 * the attach returned seg and seg was freed here at once.
 */
static void detach_last(dynshm_instance *inst, struct dynshm_segment *seg)
{
	while (seg->ncbs > 0) {
		struct on_detach cb = seg->cbs[--seg->ncbs];

		cb.fn(seg, cb.arg);
	}
	if (seg->nattach > 0)
		return; /* attached again by a callback */
	unlink_segment(inst, seg);
	if (seg->map) /* placed and region segments have none */
		dynshm_impl_detach(seg->map);
	/* a child forked without a FORK entry maps it through our entry */
	if (seg->slot != CTL_NONE && !seg->child_holds)
		release_reference(inst, seg->slot, seg->handle);
	free(seg->scoped);
	free(seg->cbs);
	free(seg);
}

DYNSHM_EXPORT int dynshm_detach(dynshm_segment *seg)
{
	dynshm_instance *inst;
	int rc;

	if (!seg)
		return dynshm_fail(EINVAL, "no segment given");
	inst = seg->inst;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	if (seg->nattach == 0) { /* from one of its own on-detach callbacks */
		inst_leave(inst);
		return dynshm_fail(EINVAL, "segment " HANDLE_FMT " of instance "
					"'%s' is being detached (a detach from "
					"its own on-detach callback?)",
				HANDLE_ARG(seg->handle), inst->name);
	}
	scope_forget_one(seg);
	if (--seg->nattach == 0)
		detach_last(inst, seg);
	inst_leave(inst);
	return 0;
}

void segment_detach_all(dynshm_instance *inst)
{
	while (inst->segs) {
		inst->segs->nattach = 0;
		detach_last(inst, inst->segs);
	}
}

DYNSHM_EXPORT void *dynshm_segment_address(const dynshm_segment *seg)
{
	if (!seg)
		return NULL;
	if (seg->placed)
		return seg->placed;
	return seg->map ? dynshm_impl_map_address(seg->map) : seg->region_addr;
}

DYNSHM_EXPORT size_t dynshm_segment_size(const dynshm_segment *seg)
{
	if (!seg)
		return 0;
	if (seg->placed)
		return seg->placed_size;
	return seg->map ? dynshm_impl_map_size(seg->map) : seg->region_size;
}

DYNSHM_EXPORT dynshm_handle dynshm_segment_handle(const dynshm_segment *seg)
{
	return seg ? seg->handle : DYNSHM_HANDLE_INVALID;
}

/* ---- pins and destruction ---------------------------------------------- */

enum pin_op { PIN, UNPIN, DESTROY };

static int change_pin(dynshm_instance *inst, dynshm_handle handle, enum pin_op op)
{
	struct ctl_slot *slot;
	bool destroy = false;
	uint32_t s = CTL_NONE, backend;
	int rc = lock_live_slot(inst, handle, &s);

	if (rc < 0)
		return rc;
	slot = &inst->c.slots[s];
	backend = slot->backend;
	if (op == PIN && slot->pinned)
		rc = dynshm_fail(EALREADY, "segment " HANDLE_FMT " of instance "
					"'%s' is already pinned",
			      HANDLE_ARG(handle), inst->name);
	else if (op == UNPIN && !slot->pinned)
		rc = dynshm_fail(EINVAL, "segment " HANDLE_FMT " of instance '%s' "
				      "is not pinned",
			      HANDLE_ARG(handle), inst->name);
	else {
		slot->pinned = op == PIN;
		if (op == DESTROY)
			slot->doomed = 1;
		HOOK("pin:changed");
		forks_let_go_locked(inst, s); /* may free the slot itself */
		destroy = slot->handle == handle &&
			  retire_if_unused_locked(inst, s);
	}
	ctl_unlock(inst);
	if (destroy)
		finish_destroy(inst, s, backend, handle);
	return rc;
}

static int change_pin_entry(dynshm_instance *inst, dynshm_handle handle,
			    enum pin_op op)
{
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	rc = change_pin(inst, handle, op);
	inst_leave(inst);
	return rc;
}

DYNSHM_EXPORT int dynshm_pin_segment(dynshm_segment *seg)
{
	if (!seg)
		return dynshm_fail(EINVAL, "no segment given");
	return change_pin_entry(seg->inst, seg->handle, PIN);
}

DYNSHM_EXPORT int dynshm_unpin_segment(dynshm_instance *inst, dynshm_handle handle)
{
	return change_pin_entry(inst, handle, UNPIN);
}

DYNSHM_EXPORT int dynshm_destroy(dynshm_instance *inst, dynshm_handle handle)
{
	return change_pin_entry(inst, handle, DESTROY);
}

/* ---- on-detach callbacks ------------------------------------------------ */

DYNSHM_EXPORT int dynshm_on_detach(dynshm_segment *seg, dynshm_on_detach_fn fn, void *arg)
{
	int rc;

	if (!seg || !fn)
		return dynshm_fail(EINVAL, "no segment or callback given");
	rc = inst_enter(seg->inst);
	if (rc < 0)
		return rc;
	if (seg->ncbs == seg->cbs_cap) {
		unsigned cap = seg->cbs_cap ? seg->cbs_cap * 2 : 4;
		struct on_detach *cbs = realloc(seg->cbs, cap * sizeof(*cbs));

		if (!cbs) {
			inst_leave(seg->inst);
			return dynshm_fail(ENOMEM, "out of memory registering a "
						"callback");
		}
		seg->cbs = cbs;
		seg->cbs_cap = cap;
	}
	seg->cbs[seg->ncbs].fn = fn;
	seg->cbs[seg->ncbs].arg = arg;
	seg->ncbs++;
	inst_leave(seg->inst);
	return 0;
}

DYNSHM_EXPORT int dynshm_cancel_on_detach(dynshm_segment *seg, dynshm_on_detach_fn fn,
				    void *arg)
{
	int rc;

	if (!seg)
		return dynshm_fail(EINVAL, "no segment given");
	rc = inst_enter(seg->inst);
	if (rc < 0)
		return rc;
	rc = dynshm_fail(ENOENT, "no such on-detach callback registered");
	for (unsigned i = seg->ncbs; i-- > 0;) {
		if (seg->cbs[i].fn == fn && seg->cbs[i].arg == arg) {
			memmove(&seg->cbs[i], &seg->cbs[i + 1],
				(seg->ncbs - i - 1) * sizeof(seg->cbs[0]));
			seg->ncbs--;
			dynshm_clear_error();
			rc = 0;
			break;
		}
	}
	inst_leave(seg->inst);
	return rc;
}

/* ---- scopes --------------------------------------------------------------- */

DYNSHM_EXPORT int dynshm_scope_begin(dynshm_instance *inst, dynshm_scope **out)
{
	struct dynshm_scope *scope;

	if (!inst || !out)
		return dynshm_fail(EINVAL, "no instance or result pointer given");
	scope = calloc(1, sizeof(*scope));
	if (!scope)
		return dynshm_fail(ENOMEM, "out of memory for a scope");
	scope->inst = inst;
	scope->parent = current_scope;
	current_scope = scope;
	*out = scope;
	return 0;
}

static struct dynshm_segment *first_in_scope(dynshm_instance *inst,
					  struct dynshm_scope *scope)
{
	for (struct dynshm_segment *seg = inst->segs; seg; seg = seg->next)
		if (scope_ref_of(seg, scope) >= 0)
			return seg;
	return NULL;
}

DYNSHM_EXPORT int dynshm_scope_end(dynshm_scope *scope)
{
	struct dynshm_segment *seg;
	int rc;

	if (!scope || scope != current_scope)
		return dynshm_fail(EINVAL, "scope %p is not this thread's "
					"innermost scope",
				(void *)scope);
	rc = inst_enter(scope->inst);
	if (rc < 0)
		return rc;
	/*
	 * Undo the scope's own attaches only: the mapping stays while other
	 * attaches (outside scopes, other threads') hold it.  Callbacks may
	 * detach others: look again after each one.
	 */
	while ((seg = first_in_scope(scope->inst, scope)) != NULL) {
		int i = scope_ref_of(seg, scope);
		unsigned n = seg->scoped[i].n;

		scope_drop_ref(seg, (unsigned)i);
		seg->nattach -= n < seg->nattach ? n : seg->nattach;
		if (seg->nattach == 0)
			detach_last(scope->inst, seg);
	}
	inst_leave(scope->inst);
	current_scope = scope->parent;
	free(scope);
	return 0;
}

DYNSHM_EXPORT int dynshm_pin_mapping(dynshm_segment *seg)
{
	int rc;

	if (!seg)
		return dynshm_fail(EINVAL, "no segment given");
	rc = inst_enter(seg->inst);
	if (rc < 0)
		return rc;
	seg->nscoped = 0; /* every attach of it now outlives the scopes */
	inst_leave(seg->inst);
	return 0;
}

/* ---- issue 11: unpin_mapping and find_mapping ---------------------------- */

/*
 * Undo dynshm_pin_mapping (or a mapping made outside any scope): seg joins
 * the calling thread's innermost scope of its instance, which detaches it
 * fully when it ends.  Refused when seg already belongs to a scope, or when
 * the thread has no scope on that instance (nothing would detach it).
 */
DYNSHM_EXPORT int dynshm_unpin_mapping(dynshm_segment *seg)
{
	struct dynshm_scope *scope;
	int rc;

	if (!seg)
		return dynshm_fail(EINVAL, "no segment given");
	rc = inst_enter(seg->inst);
	if (rc < 0)
		return rc;
	scope = scope_of(seg->inst);
	if (seg->nscoped)
		rc = dynshm_fail(EINVAL, "segment " HANDLE_FMT " already "
					 "belongs to a scope: only a pinned "
					 "mapping can be unpinned",
				 HANDLE_ARG(seg->handle));
	else if (!scope)
		rc = dynshm_fail(EINVAL, "no scope of instance '%s' is current "
					 "in this thread: call "
					 "dynshm_scope_begin first",
				 seg->inst->name);
	else if ((rc = scope_note(seg)) == 0)
		seg->scoped[0].n = seg->nattach; /* every attach: the scope's */
	inst_leave(seg->inst);
	return rc;
}

/*
 * This process's mapping of handle, without attaching again: O(1) through
 * the slot's local entry, else (a segment destroyed while mapped here, no
 * longer in a slot) a walk of the process's mappings.
 */
DYNSHM_EXPORT int dynshm_find_mapping(dynshm_instance *inst,
				      dynshm_handle handle,
				      dynshm_segment **out)
{
	uint32_t s = (uint32_t)(handle & HANDLE_SLOT_MASK);
	struct dynshm_segment *seg = NULL;
	int rc;

	if (!out)
		return dynshm_fail(EINVAL, "no result pointer given");
	*out = NULL;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	if (handle != DYNSHM_HANDLE_INVALID) {
		if (s < inst->c.max_segments && inst->local[s] &&
		    inst->local[s]->handle == handle)
			seg = inst->local[s];
		for (struct dynshm_segment *m = inst->segs; !seg && m;
		     m = m->next)
			if (m->handle == handle)
				seg = m;
	}
	if (seg)
		*out = seg;
	else
		rc = dynshm_fail(ENOENT, "dynamic shared memory segment "
					 HANDLE_FMT " is not mapped by this "
					 "process in instance '%s'",
				 HANDLE_ARG(handle), inst->name);
	inst_leave(inst);
	return rc;
}

/* ---- inspection ----------------------------------------------------------- */

static void fill_info(const struct ctl_slot *slot, dynshm_segment_info *info)
{
	memset(info, 0, sizeof(*info));
	info->struct_size = sizeof(*info);
	info->handle = slot->handle;
	info->size = slot->size;
	info->backend = (dynshm_impl_type)slot->backend;
	if (slot->backend == CTL_BACKEND_REGION) {
		info->backend = DYNSHM_IMPL_SYSV; /* the region's object */
		info->in_region = 1;
		info->region_offset = slot->region_offset;
	}
	info->state = (dynshm_segment_state)slot->state;
	info->references = slot->refcount;
	info->pinned = slot->pinned != 0;
	info->creator_pid = slot->creator_pid;
	info->huge_pages = slot->huge != 0;
	info->created_ns = slot->created_ns;
	memcpy(info->name, slot->name, sizeof(info->name) - 1);
	info->name[sizeof(info->name) - 1] = '\0';
}

/* Filled in full, then copied out at the caller's size (abi.h). */
DYNSHM_EXPORT int dynshm_stat(dynshm_instance *inst, dynshm_handle handle,
			      dynshm_segment_info *out, size_t info_size)
{
	dynshm_segment_info full, *info = &full;
	uint32_t s;
	int rc;

	if (!out)
		return dynshm_fail(EINVAL, "no info buffer given");
	rc = abi_check_size(info_size, "dynshm_segment_info");
	if (rc < 0)
		return rc;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	rc = ctl_lock(inst);
	if (rc == 0) {
		s = ctl_lookup(&inst->c, handle);
		if (s == CTL_NONE)
			rc = not_found(inst, handle);
		else
			fill_info(&inst->c.slots[s], info);
		ctl_unlock(inst);
	}
	inst_leave(inst);
	if (rc == 0)
		abi_copy_out(out, info_size, info, sizeof(*info));
	return rc;
}

static int snapshot(dynshm_instance *inst, dynshm_segment_info **out, size_t *n)
{
	struct ctl *c = &inst->c;
	dynshm_segment_info *infos;
	struct dynshm_impl_ident *idents;
	uint32_t *backends;
	size_t count = 0, used = 0;
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	/* counted, not nsegments: a scribbled count must not size the array */
	for (uint32_t s = 0; s < c->hdr->max_segments; s++)
		used += c->slots[s].state != SLOT_FREE;
	infos = malloc((used + 1) * sizeof(*infos));
	idents = malloc((used + 1) * sizeof(*idents));
	backends = malloc((used + 1) * sizeof(*backends));
	if (!infos || !idents || !backends) {
		ctl_unlock(inst);
		free(infos);
		free(idents);
		free(backends);
		return dynshm_fail(ENOMEM, "out of memory listing segments");
	}
	for (uint32_t s = 0; s < c->hdr->max_segments &&
			     count < used; s++) {
		if (c->slots[s].state == SLOT_FREE)
			continue;
		slot_ident(&c->slots[s], &idents[count]);
		backends[count] = c->slots[s].backend;
		fill_info(&c->slots[s], &infos[count++]);
	}
	ctl_unlock(inst);
	/* outside the lock: is each ACTIVE segment's object still there? */
	for (size_t i = 0; i < count; i++)
		if (infos[i].state == DYNSHM_SEGMENT_ACTIVE &&
		    object_vanished(inst, backends[i], infos[i].handle,
				    &idents[i]))
			infos[i].state = DYNSHM_SEGMENT_VANISHED;
	free(idents);
	free(backends);
	*out = infos;
	*n = count;
	return 0;
}

DYNSHM_EXPORT int dynshm_foreach_segment(dynshm_instance *inst, dynshm_segment_fn fn,
				   void *arg)
{
	dynshm_segment_info *infos = NULL;
	size_t n = 0;
	int rc = inst_enter(inst);

	if (rc < 0)
		return rc;
	if (!fn)
		rc = dynshm_fail(EINVAL, "no callback given");
	else
		rc = snapshot(inst, &infos, &n);
	inst_leave(inst);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = fn(&infos[i], arg);
	free(infos);
	return rc;
}
