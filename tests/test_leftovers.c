/* SPDX-License-Identifier: MIT */
/*
 * test_leftovers.c - runs after every other test and fails if any of them
 * left something behind.
 *
 * Each test program checks its own space, but a crashed child, an early
 * return or a test that leaks through another path would go unnoticed.
 * Every test object carries the test tag in its instance id (testutil.h),
 * so one look at /dev/shm, the SysV segment table and the temporary
 * directory finds them all, whoever made them.  Nothing is removed here:
 * what is found is left for a person to look at.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
	static char report[16384];
	int n = test_count_leftovers(report, sizeof(report));

	if (n < 0) {
		fprintf(stderr, "cannot look for leftovers: %s\n",
			strerror(-n));
		return 1;
	}
	if (n > 0) {
		fprintf(stderr, "%d object(s) left behind by tests:\n%s", n,
			report);
		return 1;
	}
	printf("no leftovers\n");
	return 0;
}
