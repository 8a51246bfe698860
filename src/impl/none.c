/* SPDX-License-Identifier: MIT */
/*
 * none.c - the backend that refuses.
 *
 * "dynamic_shared_memory_type = none" must be a real choice an operator can
 * make (a container without /dev/shm, a policy that forbids shared memory),
 * and it must fail loudly at the first create rather than crash somewhere
 * later.  Registering it as an ordinary ops table, as SQLite registers
 * "unix-none", keeps every caller free of special cases.
 */
#include "impl_internal.h"

#include "../error.h"

static int none_create(dynshm_impl_space *space, dynshm_handle handle, size_t size,
		       struct dynshm_impl_map *map)
{
	(void)space, (void)handle, (void)size, (void)map;
	return dynshm_fail(ENOTSUP,
			"dynamic shared memory is disabled by configuration "
			"(dynamic_shared_memory_type = none)");
}

static int none_attach(dynshm_impl_space *space, dynshm_handle handle,
		       struct dynshm_impl_map *map)
{
	(void)space, (void)map;
	return dynshm_fail(ENOENT,
			"segment 0x%016llx does not exist: dynamic shared "
			"memory is disabled by configuration",
			(unsigned long long)handle);
}

static int none_detach(struct dynshm_impl_map *map)
{
	(void)map;
	return dynshm_fail(EINVAL, "the none backend has no mappings");
}

static int none_destroy(dynshm_impl_space *space, dynshm_handle handle)
{
	(void)space;
	return dynshm_fail(ENOENT, "segment 0x%016llx does not exist: dynamic "
				"shared memory is disabled by configuration",
			(unsigned long long)handle);
}

static int none_destroy_name(dynshm_impl_space *space, const char *os_name)
{
	(void)space;
	return dynshm_fail(ENOENT, "'%s' does not exist: dynamic shared memory "
				"is disabled by configuration",
			os_name);
}

static int none_list(dynshm_impl_space *space, dynshm_impl_list_fn fn, void *arg)
{
	(void)space, (void)fn, (void)arg;
	return 0;
}

static int none_name(const dynshm_impl_space *space, dynshm_handle handle,
		     char *buf, size_t len)
{
	return dynshm_impl_base_name(space, handle, buf, len);
}

const struct dynshm_impl_ops dynshm_impl_none_ops = {
	.version = DYNSHM_IMPL_OPS_VERSION,
	.type = DYNSHM_IMPL_NONE,
	.name = "none",
	.create = none_create,
	.attach = none_attach,
	.detach = none_detach,
	.destroy = none_destroy,
	.destroy_name = none_destroy_name,
	.list = none_list,
	.object_name = none_name,
};
