/* SPDX-License-Identifier: MIT */
/*
 * dsm_assert.h - CMocka assertions that print dynshm's own message.
 *
 * A failing call is worth little without dynshm_last_error(), which names the
 * object and the step; these print it.  Include after <cmocka.h>.  The
 * CHILD_ forms are for forked children, where CMocka's asserts must not
 * run (see CHILD_CHECK in testutil.h): they print and return 1.
 */
#ifndef DYNSHM_TEST_DSM_ASSERT_H
#define DYNSHM_TEST_DSM_ASSERT_H

#include <dynshm/dsm.h>

#include <stdio.h>
#include <string.h>

#define ASSERT_OK(expr)                                                        \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ != 0)                                                  \
			fail_msg("%s = %d (%s)", #expr, rc_,                   \
				 dynshm_last_error());                            \
	} while (0)

#define ASSERT_RC(expr, want)                                                  \
	do {                                                                   \
		int rc_ = (expr), want_ = (want);                              \
		if (rc_ != want_)                                              \
			fail_msg("%s = %d, expected %d (%s)", #expr, rc_,      \
				 want_, dynshm_last_error());                     \
	} while (0)

#define ASSERT_MSG_HAS(text)                                                   \
	do {                                                                   \
		if (!strstr(dynshm_last_error(), (text)))                         \
			fail_msg("message '%s' does not contain '%s'",         \
				 dynshm_last_error(), (text));                    \
	} while (0)

#define CHILD_OK(expr)                                                         \
	do {                                                                   \
		int rc_ = (expr);                                              \
		if (rc_ != 0) {                                                \
			fprintf(stderr, "%s:%d: child: %s = %d (%s)\n",        \
				__FILE__, __LINE__, #expr, rc_,                \
				dynshm_last_error());                             \
			return 1;                                              \
		}                                                              \
	} while (0)

#endif
