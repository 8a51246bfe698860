/* SPDX-License-Identifier: MIT */
/*
 * spaces.c - an instance's backend spaces, opened lazily, one per backend.
 *
 * Everything that makes, finds or removes an OS object of the instance
 * (segments, the region, the control segment) goes through the space of
 * its backend.  A file of its own, right above the backends, so that the
 * control segment's region code and the reaper below the instance layer
 * reach the backends without calling up into instance.c.
 */
#include "wrapper.h"

#include "error.h"

int space_for(dynshm_instance *inst, dynshm_impl_type type, dynshm_impl_space **out)
{
	int rc;

	if ((unsigned)type >= 4)
		return dynshm_fail(EUCLEAN, "instance '%s' records unknown backend "
					 "%u",
				inst->name, (unsigned)type);
	if (!inst->spaces[type]) {
		rc = dynshm_impl_space_open(type, inst->id, inst->seg_dir,
					 &inst->spaces[type]);
		if (rc < 0)
			return rc;
	}
	*out = inst->spaces[type];
	return 0;
}

void close_spaces(dynshm_instance *inst)
{
	for (int t = 0; t < 4; t++) {
		dynshm_impl_space_close(inst->spaces[t]);
		inst->spaces[t] = NULL;
	}
}
