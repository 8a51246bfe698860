/* SPDX-License-Identifier: MIT */
/*
 * error.c - return codes and the per-thread error message.
 *
 * Public functions return 0 or -errno (liburing's rule): the code says what
 * kind of failure it was and is cheap to test.  An operator also needs to
 * know *which* object and *which* step, so every failure path records a
 * one-line message in a thread-local buffer, read with dynshm_last_error().
 * Keeping the message out of the return value keeps the API small and the
 * fast paths free of allocation.
 */
#include "error.h"
#include "strerror_xsi.h"

#include <dynshm/dsm_impl.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[512];

int dynshm_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_message, sizeof(last_message), fmt, ap);
	va_end(ap);
	return -err;
}

void dynshm_clear_error(void)
{
	last_message[0] = '\0';
}

DYNSHM_EXPORT const char *dynshm_last_error(void)
{
	return last_message;
}

DYNSHM_EXPORT const char *dynshm_strerror(int code)
{
	static _Thread_local char buf[128];

	if (code == 0)
		return "success";
	if (code > 0)
		code = -code;
	switch (-code) {
	case ENOENT:
		return "no such dynamic shared memory segment or instance";
	case ENOTSUP:
		return "not supported (backend disabled or feature unavailable)";
	case ENOSPC:
		return "out of space (shared memory, slots or processes)";
	case EEXIST:
		return "already exists";
	case EACCES:
		return "permission denied (owned by another user or unsafe)";
	case EUCLEAN:
		return "control segment is corrupt or foreign";
	case EINVAL:
		return "invalid argument";
	default:
		/* Not GNU strerror_r: musl has only the XSI form. */
		return dynshm_errno_text(-code, buf, sizeof(buf));
	}
}
