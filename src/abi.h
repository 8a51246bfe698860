/* SPDX-License-Identifier: MIT */
/*
 * abi.h - how the library fills a caller-allocated structure that can grow.
 *
 * dynshm_instance_info and dynshm_segment_info gain fields at their end
 * from one release to the next; a program built against older or newer
 * headers passes the size it knows (sizeof of its structure).  The library
 * fills min(that size, its own) bytes, zeroes the rest of the caller's
 * structure, and sets the first member, struct_size, to the number of bytes
 * it filled: fields ending beyond it were not filled (DYNSHM_INFO_HAS in
 * dynshm/dsm.h).  Fields are only ever appended, never moved or resized.
 */
#ifndef DYNSHM_ABI_H
#define DYNSHM_ABI_H

#include "error.h"

#include <stddef.h>
#include <string.h>

/* The smallest size a caller may pass: room for struct_size itself. */
#define ABI_MIN_SIZE sizeof(size_t)

static inline int abi_check_size(size_t size, const char *what)
{
	if (size < ABI_MIN_SIZE)
		return dynshm_fail(EINVAL, "%s size %zu is too small: pass "
					   "sizeof(%s) (at least %zu)",
				   what, size, what, ABI_MIN_SIZE);
	return 0;
}

/* Copy the library's full structure src (src_size bytes) out to dst. */
static inline void abi_copy_out(void *dst, size_t dst_size, const void *src,
				size_t src_size)
{
	size_t n = dst_size < src_size ? dst_size : src_size;

	memcpy(dst, src, n);
	if (dst_size > n)
		memset((char *)dst + n, 0, dst_size - n);
	memcpy(dst, &n, sizeof(n)); /* struct_size, the first member */
}

#endif
