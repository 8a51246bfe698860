/* One process creates a segment; another, given its handle, reads it. */
#include <dynshm/dsm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	dsm_instance *inst;
	dsm_segment *seg;
	int rc = dsm_instance_open("example", NULL, 0, &inst);

	if (rc == 0 && argc < 2) {		/* first process: create */
		rc = dsm_create(inst, 4096, 0, &seg);
		if (rc == 0) {
			strcpy(dsm_segment_address(seg), "hello from dynshm");
			dsm_pin_segment(seg);	/* outlive this process */
			printf("%llx\n",
			       (unsigned long long)dsm_segment_handle(seg));
			rc = dsm_instance_close(inst);
		}
	} else if (rc == 0) {			/* second process: attach */
		rc = dsm_attach(inst, strtoull(argv[1], NULL, 16), &seg);
		if (rc == 0) {
			printf("%s\n", (char *)dsm_segment_address(seg));
			rc = dsm_instance_destroy(inst); /* remove it all */
		}
	}
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", dsm_strerror(rc), dsm_last_error());
	return rc < 0;
}
