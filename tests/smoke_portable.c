/* SPDX-License-Identifier: MIT */
/*
 * smoke_portable.c - what must work with any C library, without CMocka.
 *
 * Built by .ci/musl-smoke.sh with musl-gcc (where CMocka is not available)
 * and by the suite with the usual compiler.  dynshm_strerror used GNU's
 * strerror_r, which musl does not have: there it returned NULL for codes
 * without a dynshm wording (-EBUSY), and printing that crashed.  Then one
 * create / attach / destroy round trip, parent and forked child.
 *
 * usage: smoke_portable [<instance directory>]   (exit 0 when all is well)
 * Without one it uses a fresh directory under $TMPDIR (or /tmp), removed
 * at the end.
 */
#include <dynshm/dsm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "smoke: FAIL: %s (%s)\n", what,
			dynshm_last_error());
		failures++;
	}
}

int main(int argc, char **argv)
{
	static const int codes[] = { EBUSY, EPERM, EINTR, EAGAIN, ENOMEM,
				     EMFILE, ERANGE, ENAMETOOLONG, EOWNERDEAD,
				     ENOENT, EINVAL, 0, 4095, 100000 };
	dynshm_instance *inst;
	dynshm_segment *seg;
	dynshm_handle h;
	char tmp[4096] = "", path[4200];
	const char *dir;
	pid_t pid;
	int status;

	if (argc > 2) {
		fprintf(stderr, "usage: %s [<instance directory>]\n", argv[0]);
		return 2;
	}
	if (argc == 2) {
		dir = argv[1];
	} else {
		snprintf(tmp, sizeof(tmp), "%s/dynshm-test.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(tmp)) {
			perror("mkdtemp");
			return 2;
		}
		snprintf(path, sizeof(path), "%s/inst", tmp);
		dir = path;
	}
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *text = dynshm_strerror(-codes[i]);

		check(text != NULL && text[0] != '\0', "dynshm_strerror text");
		if (text)
			printf("%6d  %s\n", -codes[i], text);
	}
	check(strcmp(dynshm_strerror(-EBUSY), strerror(EBUSY)) == 0,
	      "dynshm_strerror(-EBUSY) is the C library's text");
	check(strcmp(dynshm_version(), DYNSHM_VERSION_STRING) == 0,
	      "dynshm_version matches the headers");

	if (dynshm_instance_open(dir, NULL, 0, &inst) != 0) {
		check(0, "dynshm_instance_open");
		if (tmp[0])
			rmdir(tmp);
		return 1;
	}
	check(dynshm_create(inst, 4096, 0, &seg) == 0, "dynshm_create");
	if (failures == 0) {
		h = dynshm_segment_handle(seg);
		strcpy((char *)dynshm_segment_address(seg), "from the parent");
		pid = fork();
		if (pid == 0) {
			dynshm_instance *child;
			dynshm_segment *s;
			int ok = dynshm_instance_open(dir, NULL,
						      DYNSHM_OPEN_EXISTING,
						      &child) == 0 &&
				 dynshm_attach(child, h, &s) == 0 &&
				 strcmp((char *)dynshm_segment_address(s),
					"from the parent") == 0;

			_exit(ok && dynshm_instance_close(child) == 0 ? 0 : 1);
		}
		check(pid > 0 && waitpid(pid, &status, 0) == pid &&
			      WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a forked child attaches and reads");
		check(dynshm_detach(seg) == 0, "dynshm_detach");
	}
	check(dynshm_instance_destroy(inst) == 0, "dynshm_instance_destroy");
	if (tmp[0] && rmdir(tmp) != 0) {
		perror(tmp);
		failures++;
	}
	if (failures == 0)
		printf("smoke: ok (%s)\n", dynshm_version());
	return failures != 0;
}
