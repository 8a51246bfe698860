/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program of the parent project in tests/subproject: it
 * creates a segment in a fresh instance, reads it back and destroys the
 * instance.  With --version it prints the library's version only.
 */
#include <dynshm/dsm.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("dynshm %s\n", dynshm_version());
		return strcmp(dynshm_version(), DYNSHM_VERSION_STRING) != 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s <instance directory> | --version\n",
			argv[0]);
		return 2;
	}
	rc = dynshm_instance_open(argv[1], NULL, 0, &inst);
	if (rc == 0) {
		rc = dynshm_create(inst, 4096, 0, &seg);
		if (rc == 0) {
			strcpy((char *)dynshm_segment_address(seg), "consumed");
			printf("%s\n", (char *)dynshm_segment_address(seg));
			rc = dynshm_detach(seg);
		}
		if (dynshm_instance_destroy(inst) < 0 && rc == 0)
			rc = -1;
	}
	if (rc < 0)
		fprintf(stderr, "consumer: %s: %s\n", dynshm_strerror(rc),
			dynshm_last_error());
	return rc < 0;
}
