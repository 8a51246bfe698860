/* SPDX-License-Identifier: MIT */
/*
 * placement.h - where a segment's memory is mapped: the instance's
 * msharefs region (one set of page tables for every process) or an
 * ordinary per-process mapping.  See placement.c.
 *
 * The interface a second placement (the region carve-out) plugs into:
 *   placement_covers()	same answer in every process, from shared facts
 *			only (the instance's record, the slot's backend
 *			and size), so no per-slot flag is needed;
 *   placement_place()	after the backend made the object: put it in the
 *			region, drop the per-process mapping;
 *   placement_attach()	address of a covered segment, no mapping made;
 *   placement_release() before the backend removes the object.
 */
#ifndef DYNSHM_PLACEMENT_H
#define DYNSHM_PLACEMENT_H

#include "mshare.h"

#include <dynshm/dsm.h>

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct dynshm_config;
struct dynshm_segment;

/*
 * Process-local; guarded by dynshm_instance.mu like the rest of the instance.
 * Set once at open (under the instance's flock) and then read-only, except
 * that region is closed at free.
 */
struct placement {
	bool recorded;	    /* the instance has a region (record file) */
	bool active;	    /* and this process maps it */
	bool same_address;  /* at the creator's address */
	uint64_t window;    /* bytes of region per slot; slot s at s*window */
	void *creator_base; /* the creator's address */
	pid_t owner_pid;    /* the region dies with a thread of it
			       (pid for display) */
	uint64_t owner_token; /* its process token (liveness.c): alive? */
	pthread_mutex_t *owner_mu; /* mshare.owner's page, or NULL */
	bool owns;	    /* this process made it: never unmapped */
	int mode;	    /* config mshare, for a join after fork */
	struct mshare_region region;
	char reason[256];   /* why not active, or a note when active */
	char mount[PATH_MAX]; /* config mshare_path */
};

/* Before anything else of the instance: empty, with the mount path. */
void placement_init(dynshm_instance *inst, const struct dynshm_config *cfg);

/*
 * Decide, create or map; under the instance flock, before joining (so
 * that the join's reaps find the region mapped).  reap releases dead
 * processes (sync.c, reap_dead): passed in, so that placement, below the
 * reaper, never calls up into it.
 */
int placement_open(dynshm_instance *inst, const struct dynshm_config *cfg,
		   unsigned flags, void (*reap)(dynshm_instance *));
/*
 * In a forked child, before it joins: a supervisor may have made the region
 * since the parent opened (read the record again; map it if new).
 */
int placement_after_fork(dynshm_instance *inst);
/* Unmap and close this process's view. */
void placement_close(dynshm_instance *inst);
/* Remove the region file and the record (instance destroy or reset). */
void placement_destroy(dynshm_instance *inst);

bool placement_covers(const dynshm_instance *inst, uint32_t backend,
		      uint64_t size);
int placement_place(dynshm_instance *inst, struct dynshm_segment *seg, size_t size);
int placement_attach(dynshm_instance *inst, struct dynshm_segment *seg,
		     size_t size);
void placement_release(dynshm_instance *inst, uint32_t backend,
		       dynshm_handle handle);

void placement_info(const dynshm_instance *inst, dynshm_instance_info *info);

#endif
