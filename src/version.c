/* SPDX-License-Identifier: MIT */
/*
 * version.c - which dynshm a program runs with.
 *
 * DYNSHM_VERSION_* (dynshm/version.h) say which headers a program was
 * built with; this says which library it loaded.  Both come from the
 * version in meson.build, through the generated header.
 */
#include "error.h"

#include <dynshm/dsm.h>
#include <dynshm/version.h>

DYNSHM_EXPORT const char *dynshm_version(void)
{
	return DYNSHM_VERSION_STRING;
}
