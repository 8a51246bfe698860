/* SPDX-License-Identifier: MIT */
/*
 * mshare_stub.c - stands in for mshare.c when the library is built with
 * -Dmshare=disabled, so that 'mshare = try' falls back and 'mshare = on'
 * fails with one clear message instead of the build needing #ifdefs.
 */
#include "mshare.h"

#include "error.h"

static int refuse(void)
{
	return dynshm_fail(ENOTSUP, "built without mshare support (Meson "
				 "feature 'mshare' disabled)");
}

int mshare_probe(const char *mount, uint64_t *align)
{
	(void)mount;
	(void)align;
	return refuse();
}

int mshare_region_create(const char *mount, const char *name,
			 uint64_t min_size, const char *probe_name,
			 struct mshare_region *r)
{
	(void)mount, (void)name, (void)min_size, (void)probe_name, (void)r;
	return refuse();
}

int mshare_region_open(const char *path, void *addr, struct mshare_region *r)
{
	(void)path, (void)addr, (void)r;
	return refuse();
}

int mshare_place(struct mshare_region *r, uint64_t off, int fd, uint64_t size)
{
	(void)r, (void)off, (void)fd, (void)size;
	return refuse();
}

int mshare_unplace(struct mshare_region *r, uint64_t off, uint64_t size)
{
	(void)r, (void)off, (void)size;
	return refuse();
}

void mshare_region_close(struct mshare_region *r)
{
	(void)r;
}

int mshare_region_unlink(const char *path)
{
	(void)path;
	return -ENOENT;
}
