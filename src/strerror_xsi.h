/* SPDX-License-Identifier: MIT */
/*
 * strerror_xsi.h - the C library's text for an errno value, portably
 * (strerror_xsi.c says why it needs a file of its own).
 */
#ifndef DYNSHM_STRERROR_XSI_H
#define DYNSHM_STRERROR_XSI_H

#include <stddef.h>

/* The text for err (positive) in buf, never NULL; returns buf. */
const char *dynshm_errno_text(int err, char *buf, size_t len);

#endif
