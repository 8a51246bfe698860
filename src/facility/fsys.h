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

/*
 * The futex operations, from the kernel's headers where the C library's
 * include path has them; musl-gcc's does not, and the values are kernel
 * ABI (they never change), so they are spelt out for that case.
 */
#if defined(__has_include)
#if __has_include(<linux/futex.h>)
#include <linux/futex.h>
#endif
#endif
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#endif
#ifndef FUTEX_WAKE
#define FUTEX_WAKE 1
#endif

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
