/* SPDX-License-Identifier: MIT */
/*
 * named.c - segments found by name, and get-or-create with an
 * initialisation callback that runs exactly once.
 *
 * A name lives in the segment's slot of the control segment (control.h has
 * the invariant), not in a separate directory of names: the slot already
 * has a lifetime the reaper understands, so a name can never outlive its
 * segment nor be left claimed by a dead process.  A name is claimed in the
 * same hold of the control lock that reserves the slot, which is what
 * makes it unique.
 *
 * Get-or-create uses the CREATING state as the initialisation window, as
 * PostgreSQL 17's GetNamedDSMSegment uses a lock held across its callback:
 * the creator runs init before it publishes ACTIVE, and nobody can attach
 * a CREATING slot.  Here the waiters hold no lock while they wait - they
 * poll the slot with a growing sleep - because the creator may die, and a
 * waiter must then be free to notice it, have the reaper remove the
 * half-made segment, and start again as the creator.  A robust lock per
 * name would also work but would need a place in shared memory for every
 * name ever waited on; polling needs none, and waiting is rare.
 *
 * Lookup goes through the named index in the control segment (control.h,
 * NAMED INDEX): a hash of the name leads to a short chain of slots, so it
 * is O(1) whatever the number of segments.  It was a linear scan of the
 * used slots, 10.9 us at 4,000 named segments, and a server that looks a
 * name up per request paid that each time.  The index is derived data: a
 * crash in the middle of an update is repaired by ctl_recompute, and a
 * chain found scribbled is rebuilt and reported (-EUCLEAN).
 */
#include "wrapper.h"

#include "error.h"
#include "sys.h"

#include <stdio.h>
#include <string.h>

#define HANDLE_FMT "0x%016llx"
#define HANDLE_ARG(h) ((unsigned long long)(h))

/* Longest sleep between two looks at a slot being initialised. */
#define WAIT_MAX_NS 10000000L
#define WAIT_MIN_NS 50000L
/* A create that reports EEXIST for a name nobody has, this often: give up. */
#define VANISHED_NAME_TRIES 8

static const char allowed_text[] =
	"1 to 63 bytes of letters, digits and _ . - : /";

static bool name_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || strchr("_.-:/", ch) != NULL;
}

static int check_name(const char *name)
{
	size_t len;

	if (!name)
		return dynshm_fail(EINVAL, "no segment name given");
	len = strlen(name);
	if (len == 0 || len > DYNSHM_SEGMENT_NAME_MAX)
		return dynshm_fail(EINVAL,
				"segment name '%.*s%s' is %zu bytes long "
				"(allowed: %s)",
				DYNSHM_SEGMENT_NAME_MAX, name,
				len > DYNSHM_SEGMENT_NAME_MAX ? "..." : "", len,
				allowed_text);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (name_char_ok((char)ch))
			continue;
		if (ch == ' ')
			return dynshm_fail(EINVAL,
					"segment name '%s' contains a space "
					"(allowed: %s)",
					name, allowed_text);
		if (ch > ' ' && ch < 0x7f)
			return dynshm_fail(EINVAL,
					"segment name '%s' contains '%c' "
					"(allowed: %s)",
					name, ch, allowed_text);
		return dynshm_fail(EINVAL,
				"segment name contains the byte 0x%02x at "
				"offset %zu (allowed: %s)",
				ch, i, allowed_text);
	}
	return 0;
}


static int name_not_found(dynshm_instance *inst, const char *name,
			  bool creating)
{
	return dynshm_fail(ENOENT,
			"no segment named '%s' in instance '%s'%s", name,
			inst->name,
			creating ? " (one is being initialised; dynshm_get_named "
				   "waits for it)"
				 : "");
}

/* The arguments dynshm_create_named and dynshm_get_named share. */
static int check_create_args(const char *name, size_t size, dynshm_segment **out)
{
	int rc = check_name(name);

	if (rc < 0)
		return rc;
	if (size == 0 || size > DYNSHM_IMPL_MAX_SIZE)
		return dynshm_fail(EINVAL, "cannot create a segment of %zu bytes "
					"(sizes: 1 to %zu)",
				size, DYNSHM_IMPL_MAX_SIZE);
	if (!out)
		return dynshm_fail(EINVAL, "no result pointer given");
	return 0;
}

DYNSHM_EXPORT int dynshm_create_named(dynshm_instance *inst, const char *name,
				size_t size, unsigned flags, dynshm_segment **out)
{
	int rc = check_create_args(name, size, out);

	if (rc < 0)
		return rc;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	rc = segment_check_flags(inst, flags);
	if (rc == 0)
		rc = segment_create(inst, size, name, flags, NULL, NULL, out);
	inst_leave(inst);
	return rc;
}

/* Resolve name to the handle of a segment that can be attached. */
static int lookup_handle(dynshm_instance *inst, const char *name,
			 dynshm_handle *handle)
{
	struct ctl *c = &inst->c;
	uint32_t s = CTL_NONE;
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	rc = named_find_locked(inst, name, &s); /* -EUCLEAN: it says */
	if (rc == 0 && (s == CTL_NONE || c->slots[s].state != SLOT_ACTIVE))
		rc = name_not_found(inst, name, s != CTL_NONE);
	else if (rc == 0)
		*handle = c->slots[s].handle;
	ctl_unlock(inst);
	return rc;
}

DYNSHM_EXPORT int dynshm_attach_named(dynshm_instance *inst, const char *name,
				dynshm_segment **out)
{
	dynshm_handle handle = DYNSHM_HANDLE_INVALID;
	int rc = check_name(name);

	if (rc == 0 && !out)
		rc = dynshm_fail(EINVAL, "no result pointer given");
	if (rc < 0)
		return rc;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	rc = lookup_handle(inst, name, &handle);
	if (rc == 0)
		rc = segment_attach(inst, handle, out);
	/* Destroyed between the lookup and the attach: gone by name too. */
	if (rc == -ENOENT)
		rc = name_not_found(inst, name, false);
	inst_leave(inst);
	return rc;
}

/* ---- get-or-create ------------------------------------------------------ */

enum found { FOUND_NONE, FOUND_ACTIVE, FOUND_BUSY };

/*
 * One look at name under the lock.  FOUND_ACTIVE sets *handle; FOUND_BUSY
 * means a live process is initialising it.  A size mismatch, or our own
 * initialisation calling us back, is an error.
 */
static int look(dynshm_instance *inst, const char *name, size_t size,
		enum found *found, dynshm_handle *handle)
{
	struct ctl *c = &inst->c;
	struct ctl_slot *slot;
	uint32_t s = CTL_NONE;
	int rc = ctl_lock(inst);

	if (rc < 0)
		return rc;
	*found = FOUND_NONE;
	rc = named_find_locked(inst, name, &s);
	if (rc < 0 || s == CTL_NONE)
		goto out;
	slot = &c->slots[s];
	if (slot->size != size)
		rc = dynshm_fail(EINVAL,
			      "segment '%s' of instance '%s' has %llu bytes; "
			      "%zu bytes were asked for",
			      name, inst->name, (unsigned long long)slot->size,
			      size);
	else if (slot->state == SLOT_ACTIVE && ctl_lookup(c, slot->handle) != s)
		/* an attach by it would never find it: do not loop on it */
		rc = dynshm_fail(EUCLEAN,
			      "segment '%s' of instance '%s' is in slot %u, "
			      "whose handle " HANDLE_FMT " names another slot: "
			      "the control segment was scribbled on",
			      name, inst->name, s, HANDLE_ARG(slot->handle));
	else if (slot->state == SLOT_ACTIVE) {
		*found = FOUND_ACTIVE;
		*handle = slot->handle;
	} else if (slot->owner == inst->me)
		rc = dynshm_fail(EDEADLK, "dynshm_get_named('%s') called from the "
				       "initialisation of that same segment",
			      name);
	else
		*found = FOUND_BUSY;
out:
	ctl_unlock(inst);
	return rc;
}

/*
 * Sleep without holding inst->mu, so other threads of this process go on;
 * the wait grows from WAIT_MIN_NS to WAIT_MAX_NS.
 */
static int wait_a_little(dynshm_instance *inst, long *ns)
{
	struct timespec ts = { 0, *ns };

	int rc;

	HOOK("named:wait");
	entry_begin(); /* still inside dynshm_get_named: no cancellation */
	inst_leave(inst);
	dynshm_sys.nanosleep(&ts, NULL); /* early wake-ups are harmless */
	*ns = *ns * 2 > WAIT_MAX_NS ? WAIT_MAX_NS : *ns * 2;
	rc = inst_enter(inst);
	entry_end();
	return rc;
}

/* *entered turns false if re-entering inst after a wait failed. */
static int get_or_create(dynshm_instance *inst, const char *name, size_t size,
			 unsigned flags, dynshm_init_fn init, void *arg,
			 dynshm_segment **out, int *created, bool *entered)
{
	long wait_ns = WAIT_MIN_NS;
	int vanished = 0;

	for (;;) {
		dynshm_handle handle = DYNSHM_HANDLE_INVALID;
		enum found found;
		int rc = look(inst, name, size, &found, &handle);

		if (rc < 0)
			return rc;
		if (found != FOUND_NONE)
			vanished = 0;
		if (found == FOUND_BUSY) {
			rc = wait_a_little(inst, &wait_ns);
			if (rc < 0) {
				*entered = false;
				return rc;
			}
			continue;
		}
		if (found == FOUND_ACTIVE) {
			rc = segment_attach(inst, handle, out);
			if (rc != -ENOENT) /* destroyed meanwhile: look again */
				return rc;
			continue;
		}
		rc = segment_create(inst, size, name, flags, init, arg, out);
		if (rc == 0)
			*created = 1;
		/*
		 * EEXIST: another process claimed the name since we looked;
		 * go and wait for it.  If the name keeps being free when we
		 * look, the EEXIST is a collision of OS names: report it.
		 */
		if (rc != -EEXIST || ++vanished >= VANISHED_NAME_TRIES)
			return rc;
	}
}

DYNSHM_EXPORT int dynshm_get_named(dynshm_instance *inst, const char *name,
			     size_t size, unsigned flags, dynshm_init_fn init,
			     void *arg, dynshm_segment **out, int *created)
{
	bool entered = true;
	int made = 0;
	int rc = check_create_args(name, size, out);

	if (rc < 0)
		return rc;
	rc = inst_enter(inst);
	if (rc < 0)
		return rc;
	rc = segment_check_flags(inst, flags);
	if (rc == 0)
		rc = get_or_create(inst, name, size, flags, init, arg, out,
				   &made, &entered);
	if (entered)
		inst_leave(inst);
	if (rc == 0 && created)
		*created = made;
	return rc;
}
