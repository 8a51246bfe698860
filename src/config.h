/* SPDX-License-Identifier: MIT */
/*
 * config.h - the settings an instance is opened with (see config.c).
 */
#ifndef DYNSHM_CONFIG_H
#define DYNSHM_CONFIG_H

#include <dynshm/dsm.h>

#include <limits.h>
#include <stdint.h>

enum config_key {
	CFG_BACKEND,
	CFG_DIRECTORY,
	CFG_MAX_SEGMENTS,
	CFG_MAX_PROCESSES,
	/* >>> mshare keys (placement.c) */
	CFG_MSHARE,
	CFG_MSHARE_PATH,
	/* <<< mshare keys */
	CFG_MIN_DSM,	/* region carve-outs (region.c) */
	CFG_HUGE_PAGES,
	CFG_NKEYS
};

enum mshare_mode { MSHARE_OFF = 0, MSHARE_TRY = 1, MSHARE_ON = 2 };

struct dynshm_config {
	dynshm_impl_type backend;
	char directory[PATH_MAX]; /* "" = the instance directory */
	uint32_t max_segments;
	uint32_t max_processes;
	int mshare;			/* enum mshare_mode */
	char mshare_path[PATH_MAX];	/* where msharefs is mounted */
	uint64_t min_dynamic_shared_memory; /* region bytes, 0 = none */
	int huge_pages;			     /* enum dynshm_huge_pages */
	unsigned explicit_keys; /* bit per enum config_key set by someone */
};

/* Compiled defaults (meson_options.txt default_backend and constants). */
void config_defaults(struct dynshm_config *cfg);

static inline int config_is_explicit(const struct dynshm_config *cfg,
				     enum config_key key)
{
	return cfg && (cfg->explicit_keys >> key & 1);
}

#endif
