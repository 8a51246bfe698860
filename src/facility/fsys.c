/* SPDX-License-Identifier: MIT */
/*
 * fsys.c - the real entries of the facilities' system-call table (fsys.h).
 */
#include "fsys.h"

#include <sys/syscall.h>
#include <unistd.h>

static long real_futex(uint32_t *uaddr, int op, uint32_t val,
		       const struct timespec *timeout)
{
	return syscall(SYS_futex, uaddr, op, val, timeout, NULL, 0);
}

struct dynshm_fsys dynshm_fsys = {
	.futex = real_futex,
};

void dynshm_fsys_reset(void)
{
	dynshm_fsys.futex = real_futex;
}
