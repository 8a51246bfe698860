/* SPDX-License-Identifier: MIT */
/*
 * error.h - how library code reports a failure (see error.c).
 *
 *	return dynshm_fail(ENOENT, "segment 0x%llx not found in instance '%s'", ...);
 *
 * records the message for dynshm_last_error() and returns -ENOENT.  A caller
 * that passes a failure up unchanged keeps the innermost message, which names
 * the step that actually failed.
 */
#ifndef DYNSHM_ERROR_H
#define DYNSHM_ERROR_H

#include <errno.h>

#define DYNSHM_EXPORT __attribute__((visibility("default")))

int dynshm_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dynshm_clear_error(void);

/* Keep errno across cleanup calls that may clobber it (libuv's habit). */
#define DYNSHM_SAVE_ERRNO(stmt)                                                   \
	do {                                                                   \
		int saved_errno_ = errno;                                      \
		stmt;                                                          \
		errno = saved_errno_;                                          \
	} while (0)

#endif
