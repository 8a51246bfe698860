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
 *
 * dynshm_strerror() describes a code without knowing what failed, so its
 * words must hold for every function that returns it: -ENOENT comes from a
 * missing configuration file as well as from a stale handle.
 * dynshm_strerrorname() gives the symbol ("ENOENT"), for logs and scripts
 * that match on it.
 */
#include "error.h"
#include "strerror_xsi.h"

#include <dynshm/dsm_impl.h>

#include <limits.h>
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
	if (code == INT_MIN) /* no errno value, and -code would overflow */
		return dynshm_errno_text(code, buf, sizeof(buf));
	if (code > 0)
		code = -code;
	switch (-code) {
	case ENOENT:
		return "not found (no such file, instance or segment)";
	case ENOTSUP:
		return "not supported (backend disabled or feature unavailable)";
	case ENOSPC:
		return "out of space (memory, segment slots or process entries)";
	case EEXIST:
		return "already exists";
	case EACCES:
		return "permission denied (owned by another user, or unsafe "
		       "permissions)";
	case EUCLEAN:
		return "control segment is corrupt or foreign";
	case EINVAL:
		return "invalid argument";
	default:
		/* Not GNU strerror_r: musl has only the XSI form. */
		return dynshm_errno_text(-code, buf, sizeof(buf));
	}
}

/*
 * Linux's errno symbols, one per value: where two names share a value
 * (EWOULDBLOCK, EDEADLOCK, EOPNOTSUPP) the one the library documents
 * comes first and wins.
 */
#define E(name) { name, #name }
static const struct {
	int code;
	const char *name;
} errno_names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
	E(ENOEXEC), E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES),
	E(EFAULT), E(ENOTBLK), E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV),
	E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY),
	E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK),
	E(EPIPE), E(EDOM), E(ERANGE), E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK),
	E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(ENOMSG), E(EIDRM), E(ECHRNG),
	E(EL2NSYNC), E(EL3HLT), E(EL3RST), E(ELNRNG), E(EUNATCH), E(ENOCSI),
	E(EL2HLT), E(EBADE), E(EBADR), E(EXFULL), E(ENOANO), E(EBADRQC),
	E(EBADSLT), E(EBFONT), E(ENOSTR), E(ENODATA), E(ETIME), E(ENOSR),
	E(ENONET), E(ENOPKG), E(EREMOTE), E(ENOLINK), E(EADV), E(ESRMNT),
	E(ECOMM), E(EPROTO), E(EMULTIHOP), E(EDOTDOT), E(EBADMSG),
	E(EOVERFLOW), E(ENOTUNIQ), E(EBADFD), E(EREMCHG), E(ELIBACC),
	E(ELIBBAD), E(ELIBSCN), E(ELIBMAX), E(ELIBEXEC), E(EILSEQ),
	E(ERESTART), E(ESTRPIPE), E(EUSERS), E(ENOTSOCK), E(EDESTADDRREQ),
	E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT),
	E(ESOCKTNOSUPPORT), E(ENOTSUP), E(EPFNOSUPPORT), E(EAFNOSUPPORT),
	E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH),
	E(ENETRESET), E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(EISCONN),
	E(ENOTCONN), E(ESHUTDOWN), E(ETOOMANYREFS), E(ETIMEDOUT),
	E(ECONNREFUSED), E(EHOSTDOWN), E(EHOSTUNREACH), E(EALREADY),
	E(EINPROGRESS), E(ESTALE), E(EUCLEAN), E(ENOTNAM), E(ENAVAIL),
	E(EISNAM), E(EREMOTEIO), E(EDQUOT), E(ENOMEDIUM), E(EMEDIUMTYPE),
	E(ECANCELED), E(ENOKEY), E(EKEYEXPIRED), E(EKEYREVOKED),
	E(EKEYREJECTED), E(EOWNERDEAD), E(ENOTRECOVERABLE), E(ERFKILL),
#ifdef EHWPOISON
	E(EHWPOISON),
#endif
	E(EWOULDBLOCK), E(EDEADLOCK), E(EOPNOTSUPP),
};
#undef E

DYNSHM_EXPORT const char *dynshm_strerrorname(int code)
{
	if (code == 0)
		return "0";
	if (code == INT_MIN) /* no errno value, and -code would overflow */
		return NULL;
	if (code < 0)
		code = -code;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]);
	     i++)
		if (errno_names[i].code == code)
			return errno_names[i].name;
	return NULL;
}
