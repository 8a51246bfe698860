/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - helpers shared by every test program (see testutil.h).
 *
 * Deliberately independent of the library: leftovers are found by reading
 * /dev/shm and /proc/sysvipc/shm directly, so a bug in dynshm_impl_list cannot
 * hide a leak from the leak check.  (The fixture, test_fixture_*, and the
 * lock hand-over round do use the library: they are what tests share.)
 */
#include "testutil.h"
#include "dynshm/dsm_impl.h"
#include "dynshm/dsm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYSV_KEY_MARK 0x40000000u
#define SYSV_TAG_SHIFT 18

static uint64_t random64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
		if (errno != EINTR)
			abort(); /* no randomness: nothing sensible to do */
	}
	return v;
}

const struct test_backend test_real_backends[] = {
	{ "posix", DYNSHM_IMPL_POSIX },
	{ "sysv", DYNSHM_IMPL_SYSV },
	{ "mmap", DYNSHM_IMPL_MMAP },
};
const size_t test_n_real_backends =
	sizeof(test_real_backends) / sizeof(test_real_backends[0]);

uint64_t test_instance_id(void)
{
	return (random64() & ~(uint64_t)0xfff) | TEST_TAG;
}

uint64_t test_random_handle(void)
{
	uint64_t h;

	do
		h = random64();
	while (h == 0);
	return h;
}

static const char *tmp_dir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/tmp";
}

char *test_make_dir(void)
{
	char *path;

	if (asprintf(&path, "%s/dynshm-test.%03x.XXXXXX", tmp_dir(),
		     (unsigned)TEST_TAG) < 0)
		return NULL;
	if (!mkdtemp(path) || chmod(path, 0700) < 0) {
		int err = errno;

		rmdir(path);
		free(path);
		errno = err;
		return NULL;
	}
	return path;
}

static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

int test_remove_dir(char *dir)
{
	int rc = 0;

	if (!dir)
		return 0;
	/* a test may have made it unreadable or shared; take it back */
	chmod(dir, 0700);
	if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0) {
		fprintf(stderr, "cannot remove test directory %s: %s\n", dir,
			strerror(errno));
		rc = -errno;
	}
	free(dir);
	return rc;
}

/* Append one printf-formatted line to report, truncating quietly. */
static void report_line(char *report, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report_line(char *report, size_t len, const char *fmt, ...)
{
	size_t used;
	va_list ap;

	if (!report || len == 0)
		return;
	used = strnlen(report, len);
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(report + used, len - used, fmt, ap);
	va_end(ap);
	used = strnlen(report, len);
	if (used + 1 < len) {
		report[used] = '\n';
		report[used + 1] = '\0';
	}
}

/* "dynshm.<16 hex id>.<...>" with a test tag in the id? */
static bool is_test_object_name(const char *name)
{
	char hex[17];
	char *end;
	uint64_t id;

	if (strncmp(name, "dynshm.", 7) != 0 || strlen(name) < 7 + 16 + 1)
		return false;
	memcpy(hex, name + 7, 16);
	hex[16] = '\0';
	if (name[7 + 16] != '.')
		return false;
	id = strtoull(hex, &end, 16);
	return *end == '\0' && (id & 0xfff) == TEST_TAG;
}

static int count_dev_shm(char *report, size_t len)
{
	struct dirent *de;
	int n = 0;
	DIR *dir = opendir("/dev/shm");

	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir)) != NULL) {
		if (!is_test_object_name(de->d_name))
			continue;
		report_line(report, len, "/dev/shm/%s", de->d_name);
		n++;
	}
	closedir(dir);
	return n;
}

static int count_sysv(char *report, size_t len)
{
	unsigned want = SYSV_KEY_MARK >> SYSV_TAG_SHIFT | TEST_TAG;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/sysvipc/shm", "re");

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	if (!fgets(line, sizeof(line), f)) { /* the header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		int key, id, cpid, lpid;
		unsigned perms, uid;
		unsigned long long size;
		unsigned long nattch;

		if (sscanf(line, "%d %d %o %llu %d %d %lu %u", &key, &id,
			   &perms, &size, &cpid, &lpid, &nattch, &uid) != 8)
			continue;
		if ((unsigned)key >> SYSV_TAG_SHIFT != want || uid != geteuid())
			continue;
		report_line(report, len,
			    "SysV segment key 0x%08x shmid %d (%llu bytes, "
			    "%lu attached)",
			    (unsigned)key, id, size, nattch);
		n++;
	}
	fclose(f);
	return n;
}

static int count_dirs_in(const char *base, char *report, size_t len)
{
	glob_t g;
	char *pattern;
	int n = 0, rc;

	if (asprintf(&pattern, "%s/dynshm-test.%03x.*", base,
		     (unsigned)TEST_TAG) < 0)
		return -ENOMEM;
	rc = glob(pattern, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &g);
	free(pattern);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc != 0)
		return -EIO;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		report_line(report, len, "directory %s", g.gl_pathv[i]);
		n++;
	}
	globfree(&g);
	return n;
}

int test_count_leftovers(char *report, size_t len)
{
	int total = 0, n;

	if (report && len)
		report[0] = '\0';
	n = count_dev_shm(report, len);
	if (n < 0)
		return n;
	total += n;
	n = count_sysv(report, len);
	if (n < 0)
		return n;
	total += n;
	n = count_dirs_in("/tmp", report, len);
	if (n < 0)
		return n;
	total += n;
	if (strcmp(tmp_dir(), "/tmp") != 0) {
		n = count_dirs_in(tmp_dir(), report, len);
		if (n < 0)
			return n;
		total += n;
	}
	return total;
}

int test_count_fds(void)
{
	struct dirent *de;
	int n = 0;
	DIR *dir = opendir("/proc/self/fd");

	if (!dir)
		return -errno;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

bool test_is_root(void)
{
	return geteuid() == 0;
}

/* ---- child processes ---------------------------------------------------- */

int test_child_main(int argc, char **argv, const struct test_child *children)
{
	if (argc < 2 || strcmp(argv[1], "--child") != 0)
		return -1;
	if (argc < 3) {
		fprintf(stderr, "--child needs a child name\n");
		return 2;
	}
	for (const struct test_child *c = children; c->name; c++)
		if (strcmp(c->name, argv[2]) == 0)
			return c->fn(argc - 2, argv + 2);
	fprintf(stderr, "no child named '%s'\n", argv[2]);
	return 2;
}

int test_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/*
 * The program to re-execute.  /proc/self/exe names the running binary
 * except under valgrind, where the process really is valgrind's tool and
 * only readlink() is made to tell the truth; so resolve the link, and fall
 * back to it when the binary was replaced while running.
 */
const char *test_self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0 || (size_t)n >= len - 1)
		return "/proc/self/exe";
	buf[n] = '\0';
	if (strstr(buf, " (deleted)") || access(buf, X_OK) < 0)
		return "/proc/self/exe";
	return buf;
}

int test_spawn(const char *name, const char *const *args)
{
	char exe_buf[4096];
	const char *exe = test_self_exe(exe_buf, sizeof(exe_buf));
	size_t n = 0;
	char **argv;
	pid_t pid;

	while (args && args[n])
		n++;
	argv = calloc(n + 4, sizeof(*argv));
	if (!argv)
		return -1;
	argv[0] = (char *)"dynshm-test-child";
	argv[1] = (char *)"--child";
	argv[2] = (char *)name;
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = (char *)args[i];
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execv(exe, argv);
		fprintf(stderr, "cannot re-execute %s: %s\n", exe,
			strerror(errno));
		_exit(127);
	}
	free(argv);
	if (pid < 0)
		return -1;
	return test_wait(pid);
}

pid_t test_fork_start(int (*fn)(void *arg), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int rc = fn(arg);

		fflush(NULL);
		_exit(rc);
	}
	return pid;
}

int test_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = test_fork_start(fn, arg);

	return pid < 0 ? -1 : test_wait(pid);
}

int test_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int collect_listed(dynshm_handle handle, const char *os_name, void *arg)
{
	struct test_listing *l = arg;

	if (l->n < TEST_LISTED_MAX) {
		l->handle[l->n] = handle;
		snprintf(l->name[l->n], TEST_LISTED_NAME, "%s", os_name);
	}
	l->n++;
	return 0;
}

struct test_listing *test_list_space(struct dynshm_impl_space *space, int *rc)
{
	struct test_listing *l = calloc(1, sizeof(*l));

	*rc = l ? dynshm_impl_list(space, collect_listed, l) : -ENOMEM;
	if (*rc != 0) {
		free(l);
		return NULL;
	}
	return l;
}

bool test_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") != NULL;
}

long long test_meminfo(const char *key)
{
	char line[256];
	long long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = atoll(line + strlen(key));
	if (f)
		fclose(f);
	return v;
}

int test_check_leftovers(const char *when)
{
	static char report[8192];
	int n = test_count_leftovers(report, sizeof(report));

	if (n == 0)
		return 0;
	fprintf(stderr, "%s: %d leftover(s):\n%s", when, n, report);
	return -1;
}

bool test_is_mapped(const void *addr)
{
	unsigned long a = (unsigned long)addr, lo, hi;
	char line[512];
	bool found = false;
	FILE *maps = fopen("/proc/self/maps", "re");

	if (!maps)
		return true;
	while (!found && fgets(line, sizeof(line), maps))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo &&
		    a < hi)
			found = true;
	fclose(maps);
	return found;
}

/*
 * pid sleeps on a lock in the kernel (futex_* or, PI, rt_mutex_*)?  wchan
 * names the function.  Before 5.16, x86 found it by frame pointers, which
 * kernels built with the ORC unwinder lack (Debian 11's 5.10): wchan is
 * then "0", and the system call pid sleeps in (/proc/<pid>/syscall, the
 * number first; "running" when it runs) answers instead.
 */
bool test_lock_waiting(pid_t pid)
{
	char path[64], wchan[64];
	FILE *f;
	bool in, known;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	f = fopen(path, "re");
	known = f && fgets(wchan, sizeof(wchan), f) && strcmp(wchan, "0") != 0;
	in = known && (strstr(wchan, "futex") || strstr(wchan, "rt_mutex"));
	if (f)
		fclose(f);
	if (known)
		return in;
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	f = fopen(path, "re");
	in = f && fgets(wchan, sizeof(wchan), f) &&
	     strtol(wchan, NULL, 10) == SYS_futex;
	if (f)
		fclose(f);
	return in;
}

bool test_await_lock_wait(pid_t pid)
{
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 10000; i++) {
		if (test_lock_waiting(pid))
			return true;
		nanosleep(&ms, NULL);
	}
	return false;
}

/* ---- lock hand-over ------------------------------------------------------ */

/* A child that takes the lock and holds it until told to go. */
struct holder {
	pid_t pid;
	int tell[2]; /* holder -> test: 'h' holding, 'd' released */
	int go[2];   /* test -> holder: release */
};

static const struct test_handover *handover; /* in every child */
static struct holder *holding;			/* in the holder */
/* Children of a round, for test_handover_reap if a round is cut short. */
static pid_t spawned[8];
static int nspawned;

void test_holder_holding(void)
{
	char c = 'h';

	if (write(holding->tell[1], &c, 1) != 1 ||
	    read(holding->go[0], &c, 1) != 1)
		_exit(1);
}

static int holder_child(void *arg)
{
	char c = 'd';

	holding = arg;
	if (handover->hold(handover->arg) != 0 ||
	    write(holding->tell[1], &c, 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int locker_child(void *arg)
{
	(void)arg;
	return handover->lock(handover->arg);
}

/* Run on CPU 0 only; at SCHED_IDLE if idle. */
static void pin_cpu0(bool idle)
{
	struct sched_param sp = { 0 };
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
	if (idle)
		sched_setscheduler(0, SCHED_IDLE, &sp);
}

/* A sleeper that, once woken, waits for its CPU behind the hog. */
static int idle_locker_child(void *arg)
{
	pin_cpu0(true);
	return locker_child(arg);
}

static int hog_child(void *arg)
{
	volatile unsigned long n = 0;

	(void)arg;
	pin_cpu0(false);
	for (;;)
		n++;
	return 0;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	if (pid > 0 && nspawned < 8)
		spawned[nspawned++] = pid;
	return pid;
}

void test_handover_reap(void)
{
	for (int i = 0; i < nspawned; i++)
		if (waitpid(spawned[i], NULL, WNOHANG) == 0) {
			kill(spawned[i], SIGKILL);
			waitpid(spawned[i], NULL, 0);
		}
	nspawned = 0;
}

static int start_holder(struct holder *h)
{
	h->tell[0] = h->tell[1] = h->go[0] = h->go[1] = -1;
	h->pid = -1;
	if (pipe(h->tell) != 0 || pipe(h->go) != 0)
		return -1;
	h->pid = spawn(holder_child, h);
	return h->pid > 0 ? 0 : -1;
}

static void end_holder(struct holder *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	h->pid = -1;
	for (int i = 0; i < 2; i++) {
		if (h->tell[i] >= 0)
			close(h->tell[i]);
		if (h->go[i] >= 0)
			close(h->go[i]);
		h->tell[i] = h->go[i] = -1;
	}
}

/* What the holder said ('h', 'd'), or 0 if it said nothing. */
static char hear(struct holder *h)
{
	char c = 0;

	return read(h->tell[0], &c, 1) == 1 ? c : 0;
}

static bool let_go(struct holder *h)
{
	return write(h->go[1], "g", 1) == 1;
}

/* D either takes the lock (1: 'h' on its pipe) or sleeps on it (0); -1. */
static int holds_or_waits(struct holder *d)
{
	struct timespec ms = { 0, 1000000 };
	struct pollfd pfd = { d->tell[0], POLLIN, 0 };

	for (int i = 0; i < 10000; i++) {
		if (poll(&pfd, 1, 0) == 1)
			return hear(d) == 'h';
		if (test_lock_waiting(d->pid))
			return 0;
		nanosleep(&ms, NULL);
	}
	fprintf(stderr, "process %d neither took nor waited for the lock\n",
		(int)d->pid);
	return -1;
}

/*
 * Let D go whenever it holds the lock, until both C has exited and D has
 * released: C's exit status, or -1 if that takes more than ~10 s (a
 * liveness check; C is then killed).
 */
static int settle_bounded(struct holder *d, pid_t c)
{
	struct timespec ms = { 0, 1000000 };
	struct pollfd pfd = { d->tell[0], POLLIN, 0 };
	bool d_done = false;
	int status = -1;

	for (int i = 0; i < 10000 && (status < 0 || !d_done); i++) {
		int st;

		if (poll(&pfd, 1, 0) == 1) {
			if (hear(d) != 'h')
				d_done = true;
			else if (!let_go(d))
				break;
			continue;
		}
		if (status < 0 && waitpid(c, &st, WNOHANG) == c)
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		nanosleep(&ms, NULL);
	}
	if (status < 0) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	}
	return d_done ? status : -1;
}

#define ROUND_CHECK(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: hand-over: %s failed\n",       \
				__FILE__, __LINE__, #cond);                    \
			goto out;                                              \
		}                                                              \
	} while (0)

int test_handover_round(const struct test_handover *ho)
{
	struct holder a = { .pid = -1, { -1, -1 }, { -1, -1 } }, d = a;
	pid_t b, c, hog = -1;
	int d_holds, status = -1;

	handover = ho;
	ROUND_CHECK(start_holder(&a) == 0);
	ROUND_CHECK(hear(&a) == 'h');
	b = spawn(idle_locker_child, NULL);
	ROUND_CHECK(b > 0 && test_await_lock_wait(b));
	hog = spawn(hog_child, NULL);
	c = spawn(locker_child, NULL);
	ROUND_CHECK(hog > 0 && c > 0 && test_await_lock_wait(c));
	ROUND_CHECK(let_go(&a));
	ROUND_CHECK(hear(&a) == 'd');
	ROUND_CHECK(start_holder(&d) == 0);
	d_holds = holds_or_waits(&d);
	ROUND_CHECK(d_holds >= 0);
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	if (d_holds)
		ROUND_CHECK(let_go(&d));
	status = settle_bounded(&d, c);
out:
	if (hog > 0) {
		kill(hog, SIGKILL);
		waitpid(hog, NULL, 0);
	}
	end_holder(&d);
	end_holder(&a);
	test_handover_reap(); /* what a cut-short round left */
	return status;
}

/* ---- one instance per test ---------------------------------------------- */

int test_fixture_setup(struct test_fixture *fx, bool open, const char *backend,
		       ...)
{
	const char *key;
	va_list ap;
	int rc;

	memset(fx, 0, sizeof(*fx));
	fx->dir = test_make_dir();
	if (!fx->dir) {
		fprintf(stderr, "setup: cannot make a test directory: %s\n",
			strerror(errno));
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/inst", fx->dir);
	rc = backend ? dynshm_config_new(&fx->cfg) : 0;
	if (rc == 0 && backend)
		rc = dynshm_config_set(fx->cfg, "dynamic_shared_memory_type",
				       backend);
	va_start(ap, backend);
	while (rc == 0 && backend &&
	       (key = va_arg(ap, const char *)) != NULL)
		rc = dynshm_config_set(fx->cfg, key, va_arg(ap, const char *));
	va_end(ap);
	if (rc == 0 && open)
		rc = dynshm_instance_open(fx->path, fx->cfg, 0, &fx->inst);
	if (rc != 0) {
		fprintf(stderr, "setup: %s\n", dynshm_last_error());
		return -1;
	}
	return 0;
}

int test_fixture_teardown(struct test_fixture *fx, bool reset, const char *when)
{
	dynshm_instance *again = NULL;
	int bad = 0;

	if (reset) {
		if (fx->inst)
			dynshm_instance_close(fx->inst);
		fx->inst = NULL;
		if (dynshm_instance_open(fx->path, fx->cfg, DYNSHM_OPEN_RESET,
					 &again) != 0 ||
		    dynshm_instance_destroy(again) != 0)
			bad = 1;
	} else if (fx->inst) {
		bad = dynshm_instance_destroy(fx->inst) != 0;
	} else if (fx->dir && dynshm_instance_open(fx->path, fx->cfg,
						    DYNSHM_OPEN_EXISTING,
						    &again) == 0) {
		dynshm_instance_destroy(again); /* a failed test's instance */
	}
	if (bad)
		fprintf(stderr, "teardown: %s\n", dynshm_last_error());
	fx->inst = NULL;
	dynshm_config_free(fx->cfg);
	fx->cfg = NULL;
	if (fx->dir && test_remove_dir(fx->dir) < 0)
		bad = 1;
	fx->dir = NULL;
	if (test_check_leftovers(when) < 0)
		bad = 1;
	return bad ? -1 : 0;
}
