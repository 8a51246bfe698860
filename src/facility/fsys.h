/* SPDX-License-Identifier: MIT */
/*
 * fsys.h - the system calls of the facilities, through one table.
 *
 * The wrapper reaches the OS through dynshm_sys (src/sys.h) so that tests
 * can make any call fail.  The facilities keep to the wrapper's public API
 * and so do not use that table; they make one system call of their own,
 * futex(2), and route it through this table for the same reason: a test
 * replaces the entry to walk the EINTR and failure paths of a wait.
 *
 * Entries keep the libc convention (-1 and errno); callers convert.
 */
#ifndef DYNSHM_FACILITY_FSYS_H
#define DYNSHM_FACILITY_FSYS_H

#include <stdint.h>
#include <time.h>

/* FUTEX_WAIT and FUTEX_WAKE, also where musl has no <linux/futex.h> */
#include "../sys.h"

struct dynshm_fsys {
	/* futex(uaddr, op, val, timeout): FUTEX_WAIT / FUTEX_WAKE only */
	long (*futex)(uint32_t *uaddr, int op, uint32_t val,
		      const struct timespec *timeout);
};

/* Hidden: reachable from the library and from tests linked statically. */
extern struct dynshm_fsys dynshm_fsys;

/* Put every entry back to the real function. */
void dynshm_fsys_reset(void);

#endif
