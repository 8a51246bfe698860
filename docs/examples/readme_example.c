/* SPDX-License-Identifier: MIT */
/* One process creates a segment; another, given its handle, reads it. */
#include <dynshm/dsm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc = dynshm_instance_open("example", NULL, 0, &inst);

	if (rc == 0 && argc < 2) {		/* first process: create */
		rc = dynshm_create(inst, 4096, 0, &seg);
		if (rc == 0) {
			strcpy((char *)dynshm_segment_address(seg),
			       "hello from dynshm");
			dynshm_pin_segment(seg);	/* outlive this process */
			printf("%llx\n",
			       (unsigned long long)dynshm_segment_handle(seg));
			rc = dynshm_instance_close(inst);
		}
	} else if (rc == 0) {			/* second process: attach */
		rc = dynshm_attach(inst, strtoull(argv[1], NULL, 16), &seg);
		if (rc == 0) {
			printf("%s\n", (char *)dynshm_segment_address(seg));
			rc = dynshm_instance_destroy(inst); /* remove it all */
		}
	}
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", dynshm_strerror(rc), dynshm_last_error());
	return rc < 0;
}
