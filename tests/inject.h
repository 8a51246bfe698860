/* SPDX-License-Identifier: MIT */
/*
 * inject.h - make chosen system calls fail, for tests.
 *
 * Every path by which the library reaches the operating system goes through
 * the table dynshm_sys (src/sys.h).  Failure paths are where leaks hide, and
 * real failures (a full /dev/shm, EINTR, EMFILE) are hard to provoke on
 * demand, so tests replace one entry at a time with a wrapper that counts
 * calls and fails the Nth one - SQLite's test_syscall, for the same reason.
 *
 *	inject_fail("posix_fallocate", 1, ENOSPC);
 *	rc = dynshm_impl_create(space, handle, size, 0, &map);
 *	assert_int_equal(rc, -ENOSPC);
 *	inject_reset();
 *
 * A failing call returns what libc would: -1 with errno set for most
 * entries, MAP_FAILED for mmap, (void *)-1 for shmat, and the error number
 * itself (errno untouched) for posix_fallocate.  close is special: like
 * Linux, the descriptor is closed even when the call reports an error, so
 * an injected close failure never leaks a descriptor of the test.
 *
 * Entries are process-global and not locked: arm them before starting
 * threads.  Call counters are atomic, so armed entries may be called from
 * several threads.  An unknown entry name aborts the test program loudly.
 */
#ifndef DYNSHM_TEST_INJECT_H
#define DYNSHM_TEST_INJECT_H

/*
 * Make the nth call (1-based, counted from now) of entry name fail with err.
 * nth == 0 only counts calls (see inject_calls) and never fails.
 */
void inject_fail(const char *name, int nth, int err);
/* Like inject_fail, but the nth call and every later one fail. */
void inject_fail_from(const char *name, int nth, int err);
/* Calls of entry name since it was armed; 0 if it is not armed. */
unsigned long inject_calls(const char *name);
/* Disarm everything: dynshm_sys_reset() and forget all counters. */
void inject_reset(void);

#endif
