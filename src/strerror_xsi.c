/* SPDX-License-Identifier: MIT */
/*
 * strerror_xsi.c - the C library's text for an errno value, portably.
 *
 * strerror_r has two incompatible forms: GNU's returns a char * (maybe a
 * static string, maybe buf), XSI/POSIX's fills buf and returns an int.
 * Which one a file gets depends on _GNU_SOURCE and on the C library: musl
 * has only the XSI one, so code written for GNU's form returns NULL there
 * (and a caller printing it crashes).  This file alone is compiled without
 * _GNU_SOURCE (the project adds it to every file, so it is undefined here
 * before any header), which gives the XSI form on glibc and on musl alike.
 */
#undef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L

#include "strerror_xsi.h"

#include <stdio.h>
#include <string.h>

const char *dynshm_errno_text(int err, char *buf, size_t len)
{
	if (len == 0)
		return "";
	/* XSI: 0, or an error number (old glibc: -1 with errno set). */
	if (strerror_r(err, buf, len) != 0 || buf[0] == '\0')
		snprintf(buf, len, "unknown error %d", err);
	return buf;
}
