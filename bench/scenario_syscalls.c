/* SPDX-License-Identifier: MIT */
/*
 * scenario_syscalls.c - dsm_bench scenario "syscalls": each system call
 * of the raw sequences timed alone, with the ones dynshm adds.
 */
#include "bench.h"

/* ---- where the time goes: each system call timed alone -------------------
 *
 * The raw sequences again, one call at a time (a vDSO clock read around
 * each, ~26 ns here), with the calls dynshm adds to them marked "+".
 * Medians over --iterations rounds of a 4 KiB object.
 */

#define N_STEPS 8

struct steps {
	const char *name[N_STEPS];
	double *v[N_STEPS];
	int n;
};

#define STEP(st, k, label, expr)                                               \
	do {                                                                   \
		uint64_t t_ = now_ns();                                        \
		expr;                                                          \
		(st)->v[k][it] = (double)(now_ns() - t_);                      \
		(st)->name[k] = (label);                                       \
		if ((st)->n <= (k))                                            \
			(st)->n = (k) + 1;                                     \
	} while (0)

static void steps_print(const char *bname, const char *what,
			struct steps *st, long n)
{
	double med[N_STEPS], total = 0;

	for (int k = 0; k < st->n; k++) {
		struct row *r = add_row("syscalls", bname, what, 4096);

		r->s = stats_of(st->v[k], (int)n);
		r->iterations = n;
		snprintf(r->variant, sizeof(r->variant), "%s", st->name[k]);
		snprintf(r->unit, sizeof(r->unit), "ns/call");
		med[k] = r->s.med;
		total += med[k];
	}
	for (int k = 0; k < st->n; k++)
		fprintf(tout, "%-7s %-15s %-24s %8.0f ns %5.1f%%\n", bname,
			what, st->name[k], med[k], 100 * med[k] / total);
	fprintf(tout, "%-7s %-15s %-24s %8.0f ns\n", bname, what,
		"sum of medians", total);
	st->n = 0;
}

static int steps_fd(dynshm_impl_type t, struct steps *st, long n)
{
	const char *bname = dynshm_impl_type_name(t);
	bool posix = t == DYNSHM_IMPL_POSIX;
	struct raw_ctx r = { .backend = t, .size = 4096 };
	struct stat sb;
	char name[64];
	void *p = NULL;
	int fd = -1, rc;

	for (long it = 0; it < n && !stop; it++) {
		raw_next_name(&r, name, posix);
		STEP(st, 0, posix ? "shm_open O_CREAT|O_EXCL"
				  : "openat O_CREAT|O_EXCL",
		     fd = posix ? shm_open(name, O_RDWR | O_CREAT | O_EXCL |
							 O_CLOEXEC, 0600)
				: openat(raw_dirfd, name, O_RDWR | O_CREAT |
						O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					 0600));
		if (fd < 0)
			return -errno;
		STEP(st, 1, "ftruncate", rc = ftruncate(fd, 4096));
		STEP(st, 2, "posix_fallocate",
		     rc |= posix_fallocate(fd, 0, 4096));
		STEP(st, 3, "mmap", p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					     MAP_SHARED, fd, 0));
		STEP(st, 4, "close", close(fd));
		if (p != MAP_FAILED)
			STEP(st, 5, "munmap", munmap(p, 4096));
		STEP(st, 6, posix ? "shm_unlink" : "unlinkat",
		     posix ? shm_unlink(name) : unlinkat(raw_dirfd, name, 0));
		if (rc != 0 || p == MAP_FAILED)
			return -EIO;
	}
	steps_print(bname, "create+destroy", st, n);
	rc = raw_make_target(&r);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		STEP(st, 0, posix ? "shm_open" : "openat",
		     fd = posix ? shm_open(r.name, O_RDWR | O_CLOEXEC, 0)
				: openat(raw_dirfd, r.name,
					 O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0));
		if (fd < 0) {
			rc = -errno;
			break;
		}
		STEP(st, 1, "fstat", fstat(fd, &sb));
		STEP(st, 2, "mmap", p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					     MAP_SHARED, fd, 0));
		STEP(st, 3, "close", close(fd));
		if (p != MAP_FAILED)
			STEP(st, 4, "munmap", munmap(p, 4096));
		else
			rc = -EIO;
	}
	raw_remove(r.obj);
	if (rc == 0 && !stop)
		steps_print(bname, "attach+detach", st, n);
	return rc;
}

static int steps_sysv(struct steps *st, long n)
{
	struct raw_ctx r = { .backend = DYNSHM_IMPL_SYSV, .size = 4096 };
	struct shmid_ds ds;
	void *p;
	int id, rc = 0;

	for (long it = 0; it < n && !stop; it++) {
		key_t key = raw_next_key(&r);

		STEP(st, 0, "shmget IPC_CREAT|EXCL",
		     id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
		if (id < 0)
			return -errno;
		STEP(st, 1, "shmat", p = shmat(id, NULL, 0));
		if (p != (void *)-1)
			STEP(st, 2, "shmdt", shmdt(p));
		STEP(st, 3, "+ IPC_STAT (dynshm)", shmctl(id, IPC_STAT, &ds));
		STEP(st, 4, "shmctl IPC_RMID", shmctl(id, IPC_RMID, NULL));
		if (p == (void *)-1)
			return -EIO;
	}
	steps_print("sysv", "create+destroy", st, n);
	rc = raw_make_target(&r);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		STEP(st, 0, "shmget key", id = shmget(r.key, 0, 0));
		STEP(st, 1, "shmctl IPC_STAT", shmctl(id, IPC_STAT, &ds));
		STEP(st, 2, "shmat", p = shmat(id, NULL, 0));
		if (p == (void *)-1) {
			rc = -errno;
			break;
		}
		STEP(st, 3, "shmdt", shmdt(p));
	}
	raw_remove(r.obj);
	if (rc == 0 && !stop)
		steps_print("sysv", "attach+detach", st, n);
	return rc;
}

/*
 * What a check of one joined process costs (src/liveness.c): one
 * F_OFD_GETLK on the checker's own descriptor of the procs file, against a
 * byte another open file description holds; and, for comparison, what it
 * cost before issue 12 - reading /proc/<pid>/stat (open, read, close) and
 * kill(pid, 0) - checked against the parent, a live process.
 */
static int steps_join(struct steps *st, long n)
{
	char path[64], buf[1024], file[] = "/tmp/dsm_bench.procs.XXXXXX";
	struct flock fl;
	pid_t pid = getppid();
	ssize_t got = 0;
	int fd = -1, holder = mkstemp(file), mine = -1, rc = 0;

	if (holder >= 0)
		mine = open(file, O_RDWR | O_CLOEXEC);
	if (holder >= 0)
		unlink(file);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 7;
	fl.l_len = 1;
	if (mine < 0 || fcntl(holder, F_OFD_SETLK, &fl) < 0)
		rc = -errno;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (long it = 0; rc == 0 && it < n && !stop; it++) {
		fl.l_type = F_WRLCK; /* the answer overwrote the question */
		fl.l_pid = 0;
		STEP(st, 0, "fcntl F_OFD_GETLK (the check)",
		     rc = fcntl(mine, F_OFD_GETLK, &fl));
		if (rc < 0 || fl.l_type != F_WRLCK) {
			rc = rc < 0 ? -errno : -EIO;
			break;
		}
		STEP(st, 1, "was: open /proc/<pid>/stat",
		     fd = open(path, O_RDONLY | O_CLOEXEC));
		if (fd < 0) {
			rc = -errno;
			break;
		}
		STEP(st, 2, "was: read", got = read(fd, buf, sizeof(buf)));
		STEP(st, 3, "was: close", close(fd));
		STEP(st, 4, "was: kill(pid, 0)", (void)kill(pid, 0));
		if (got <= 0)
			rc = -EIO;
	}
	if (holder >= 0)
		close(holder);
	if (mine >= 0)
		close(mine);
	if (rc == 0 && !stop)
		steps_print("join", "check a process", st, n);
	return rc;
}

int scenario_syscalls(void)
{
	struct steps st = { .n = 0 };
	long n = opt.iterations;
	int rc = 0;

	for (int k = 0; k < N_STEPS; k++)
		if (!(st.v[k] = malloc((size_t)n * sizeof(double))))
			rc = -ENOMEM;
	fprintf(tout, "\n== where the time goes: each system call of the raw "
		      "sequences timed alone (4 KiB, median of %ld); + marks "
		      "what dynshm adds ==\n",
		n);
	for (int t = 1; t < 4 && rc == 0 && !stop; t++) {
		if (!(opt.backends & 1u << t))
			continue;
		rc = t == DYNSHM_IMPL_SYSV ? steps_sysv(&st, n)
					: steps_fd((dynshm_impl_type)t, &st, n);
		if (rc < 0)
			fail(rc, "syscalls: %s",
			     dynshm_impl_type_name((dynshm_impl_type)t));
	}
	if (rc == 0 && !stop && opt.scenarios & SC_JOIN) {
		rc = steps_join(&st, n);
		if (rc < 0)
			fail(rc, "syscalls: join");
	}
	for (int k = 0; k < N_STEPS; k++)
		free(st.v[k]);
	return stop ? -EINTR : rc;
}
