/* SPDX-License-Identifier: MIT */
/*
 * dsm_ptbench.c - what N processes mapping the same shared memory pay in
 * page tables, by placement: plain segments, the region, the region on
 * hugetlb pages, the region on shmem transparent huge pages.
 *
 * Why a program of its own: page-table cost is a per-process, system-wide
 * quantity that needs whole processes (exec'd, so that nothing is inherited
 * from the parent) and root for the huge page settings; dsm_bench measures
 * times within one process.
 *
 * For each placement the parent creates an instance with `size` MiB of
 * segments (4 MiB each), then starts N children that each open the instance,
 * attach every segment, populate every page (MADV_POPULATE_WRITE, touching
 * as a fallback) and report their own VmPTE and VMA count before and after.
 * When all are ready the parent reads PageTables from /proc/meminfo: VmPTE
 * charges a shared PMD table to every sharer, so only the system-wide
 * figure shows hugetlb's shared page tables.  Nothing is timed.
 *
 *   dsm_ptbench [--procs 10,100] [--size 1024] [--attach 10000]
 *               [--modes base,plain,region,huge,thp]
 *
 * --attach n first times attaching n 4 KiB segments in one process, from the
 * region and from the posix backend, and counts the VMAs they add (0: skip).
 * "base" children only open the instance: their figures are the process's
 * own page tables, to subtract from the others.
 *
 * huge and thp need root: they set vm.nr_hugepages and shmem_enabled and
 * put both back (also on SIGINT/SIGTERM).  Without root they are skipped.
 */
#include <dynshm/dsm.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SEG_MB 4u
#define NR_PATH "/proc/sys/vm/nr_hugepages"
#define THP_PATH "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

static char old_nr[32], old_thp[64];

static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static long long field(const char *path, const char *key)
{
	char text[8192], *p;

	read_text(path, text, sizeof(text));
	p = strstr(text, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void restore(void)
{
	if (old_nr[0])
		write_text(NR_PATH, old_nr);
	if (old_thp[0])
		write_text(THP_PATH, old_thp);
}

static void on_signal(int sig)
{
	restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- a child: open, attach everything, populate, report, wait ------------ */

static int child(const char *path, const char *handles_file, int report_fd,
		 int go_fd)
{
	long long pte0 = field("/proc/self/status", "VmPTE:"), pte1;
	int vma0 = count_lines("/proc/self/maps"), vma1;
	dynshm_instance *inst = NULL;
	FILE *f = fopen(handles_file, "r");
	unsigned long long h;
	char line[128], c;

	if (!f || dynshm_instance_open(path, NULL, DYNSHM_OPEN_EXISTING, &inst) < 0)
		goto fail;
	while (fscanf(f, "%llx", &h) == 1) {
		dynshm_segment *seg = NULL;
		char *p;
		size_t len;

		if (dynshm_attach(inst, h, &seg) < 0)
			goto fail;
		p = dynshm_segment_address(seg);
		len = dynshm_segment_size(seg);
		if (madvise((void *)((uintptr_t)p & ~(uintptr_t)4095),
			    len + ((uintptr_t)p & 4095),
			    MADV_POPULATE_WRITE) < 0)
			for (size_t i = 0; i < len; i += 4096)
				p[i] = 1;
	}
	fclose(f);
	pte1 = field("/proc/self/status", "VmPTE:");
	vma1 = count_lines("/proc/self/maps");
	snprintf(line, sizeof(line), "%lld %d\n", pte1 - pte0, vma1 - vma0);
	if (write(report_fd, line, strlen(line)) < 0)
		return 3;
	if (read(go_fd, &c, 1) < 0) { /* wait until the parent has measured */
	}
	dynshm_instance_close(inst);
	return 0;

fail:
	/* say so: the parent waits for one line per child */
	fprintf(stderr, "child: %s\n", dynshm_last_error());
	if (write(report_fd, "fail\n", 5) < 0) {
	}
	return 1;
}

/* ---- the parent ------------------------------------------------------------ */

struct mode {
	const char *name, *region, *huge; /* region NULL: plain segments */
	bool root;
};

static const struct mode modes[] = {
	{ "base", NULL, "off", false }, /* open only: the process's own cost */
	{ "plain", NULL, "off", false },
	{ "region", "yes", "off", false },
	{ "huge", "yes", "on", true },
	{ "thp", "yes", "try", true },
};

static int prepare(const struct mode *m, unsigned size_mb)
{
	char buf[32];

	if (strcmp(m->name, "huge") == 0) {
		snprintf(buf, sizeof(buf), "%u", size_mb / 2 + 8);
		if (write_text(NR_PATH, buf) < 0 ||
		    field("/proc/meminfo", "HugePages_Total:") <
			    (long long)size_mb / 2)
			return -1;
	}
	if (strcmp(m->name, "thp") == 0) {
		if (write_text(NR_PATH, "0") < 0 ||
		    write_text(THP_PATH, "advise") < 0)
			return -1;
	}
	return 0;
}

static int run(const struct mode *m, unsigned nprocs, unsigned size_mb,
	       const char *self)
{
	char dir[] = "/tmp/dynshm-ptbench.XXXXXX", path[128], hfile[160],
	     size[32], buf[32];
	dynshm_config *cfg = NULL;
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	int report[2], go[2], rc = 0;
	pid_t *kids = calloc(nprocs, sizeof(*kids));
	long long pt0, pt1, pte_sum = 0, vma_sum = 0;
	FILE *hf, *rf;

	if (!kids || !mkdtemp(dir) || prepare(m, size_mb) < 0) {
		printf("%-7s %6u  skipped (needs root and %u MiB of huge "
		       "pages)\n",
		       m->name, nprocs, size_mb);
		free(kids);
		if (dir[0] && strchr(dir, 'X') == NULL)
			rmdir(dir);
		restore();
		return 0;
	}
	snprintf(path, sizeof(path), "%s/inst", dir);
	snprintf(hfile, sizeof(hfile), "%s/handles", dir);
	snprintf(size, sizeof(size), "%uMB", m->region ? size_mb : 0);
	dynshm_config_new(&cfg);
	snprintf(buf, sizeof(buf), "%u", nprocs + 8);
	dynshm_config_set(cfg, "max_processes", buf);
	dynshm_config_set(cfg, "min_dynamic_shared_memory", size);
	dynshm_config_set(cfg, "huge_pages", m->huge);
	if (dynshm_instance_open(path, cfg, 0, &inst) < 0) {
		fprintf(stderr, "%s: %s\n", m->name, dynshm_last_error());
		rc = 1;
		goto out;
	}
	hf = fopen(hfile, "w");
	for (unsigned i = 0; hf && strcmp(m->name, "base") != 0 &&
			     i < size_mb / SEG_MB;
	     i++) {
		dynshm_segment *seg = NULL;

		if (dynshm_create(inst, (size_t)SEG_MB << 20,
			       m->region ? DYNSHM_CREATE_REGION
					 : DYNSHM_CREATE_NO_REGION,
			       &seg) < 0 ||
		    dynshm_pin_segment(seg) < 0) {
			fprintf(stderr, "%s: %s\n", m->name, dynshm_last_error());
			rc = 1;
			break;
		}
		fprintf(hf, "%" PRIx64 "\n", dynshm_segment_handle(seg));
		dynshm_detach(seg);
	}
	if (hf)
		fclose(hf);
	dynshm_instance_info_get(inst, &info, sizeof(info));
	if (rc || pipe(report) < 0 || pipe(go) < 0)
		goto out;
	sleep(1); /* let earlier runs' page-table frees settle */
	pt0 = field("/proc/meminfo", "PageTables:");
	for (unsigned i = 0; i < nprocs; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char rfd[16], gfd[16];

			close(report[0]);
			close(go[1]);
			snprintf(rfd, sizeof(rfd), "%d", report[1]);
			snprintf(gfd, sizeof(gfd), "%d", go[0]);
			execl(self, self, "--child", path, hfile, rfd, gfd,
			      (char *)NULL);
			_exit(127);
		}
	}
	close(report[1]);
	close(go[0]);
	rf = fdopen(report[0], "r");
	for (unsigned i = 0; i < nprocs; i++) {
		long long pte;
		int vmas;

		if (fscanf(rf, "%lld %d", &pte, &vmas) != 2) {
			fprintf(stderr, "%s: a child failed\n", m->name);
			rc = 1;
			break;
		}
		pte_sum += pte;
		vma_sum += vmas;
	}
	pt1 = field("/proc/meminfo", "PageTables:");
	close(go[1]); /* release them */
	for (unsigned i = 0; i < nprocs; i++)
		if (kids[i] > 0)
			waitpid(kids[i], NULL, 0);
	fclose(rf);
	if (rc == 0)
		printf("%-7s %6u %10.1f %14.1f %10.1f  %s\n", m->name, nprocs,
		       (double)pte_sum / nprocs, (double)(pt1 - pt0) / nprocs,
		       (double)vma_sum / nprocs,
		       m->region ? info.region_pages : "4k");
out:
	if (inst)
		dynshm_instance_destroy(inst);
	dynshm_config_free(cfg);
	unlink(hfile);
	rmdir(dir);
	restore();
	free(kids);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * n small (4 KiB) pinned segments, in the region or not: the time to
 * attach them all in a process that does not map them, and the VMAs added.
 */
static int attach_run(unsigned n, bool region)
{
	char dir[] = "/tmp/dynshm-ptbench.XXXXXX", path[128], buf[32];
	dynshm_handle *h = calloc(n, sizeof(*h));
	dynshm_segment **segs = calloc(n, sizeof(*segs));
	dynshm_config *cfg = NULL;
	dynshm_instance *inst = NULL;
	int vma0, rc = 0;
	double t0, t1;

	if (!h || !segs || !mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/inst", dir);
	dynshm_config_new(&cfg);
	snprintf(buf, sizeof(buf), "%u", n + 16);
	dynshm_config_set(cfg, "max_segments", buf);
	snprintf(buf, sizeof(buf), "%ukB", region ? n * 4 + 4096 : 0);
	dynshm_config_set(cfg, "min_dynamic_shared_memory", buf);
	dynshm_config_set(cfg, "huge_pages", "off");
	if (dynshm_instance_open(path, cfg, 0, &inst) < 0)
		rc = 1;
	for (unsigned i = 0; rc == 0 && i < n; i++) {
		if (dynshm_create(inst, 4096,
			       region ? DYNSHM_CREATE_REGION
				      : DYNSHM_CREATE_NO_REGION,
			       &segs[i]) < 0 ||
		    dynshm_pin_segment(segs[i]) < 0)
			rc = 1;
		else {
			h[i] = dynshm_segment_handle(segs[i]);
			dynshm_detach(segs[i]);
		}
	}
	vma0 = count_lines("/proc/self/maps");
	t0 = now_s();
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if (dynshm_attach(inst, h[i], &segs[i]) < 0)
			rc = 1;
	t1 = now_s();
	if (rc == 0)
		printf("attach %u x 4 KiB %-7s %8.2f us each, %d VMAs added\n",
		       n, region ? "region" : "posix", (t1 - t0) * 1e6 / n,
		       count_lines("/proc/self/maps") - vma0);
	else
		fprintf(stderr, "attach run: %s\n", dynshm_last_error());
	if (inst)
		dynshm_instance_destroy(inst);
	dynshm_config_free(cfg);
	rmdir(dir);
	free(h);
	free(segs);
	return rc;
}

int main(int argc, char **argv)
{
	char procs[128] = "10,100",
	     mode_list[128] = "base,plain,region,huge,thp";
	unsigned attach_n = 10000;
	char self[4096], mode_now[64];
	unsigned size_mb = 1024;
	ssize_t n;
	int rc = 0;

	if (argc == 6 && strcmp(argv[1], "--child") == 0)
		return child(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--procs") == 0)
			snprintf(procs, sizeof(procs), "%s", argv[i + 1]);
		else if (strcmp(argv[i], "--size") == 0)
			size_mb = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--attach") == 0)
			attach_n = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--modes") == 0)
			snprintf(mode_list, sizeof(mode_list), "%s",
				 argv[i + 1]);
		else {
			fprintf(stderr, "usage: dsm_ptbench [--procs 10,100] "
					"[--size MiB] [--modes plain,region,"
					"huge,thp]\n");
			return 2;
		}
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	if (geteuid() == 0) {
		read_text(NR_PATH, old_nr, sizeof(old_nr));
		read_text(THP_PATH, mode_now, sizeof(mode_now));
		if (strchr(mode_now, '[')) {
			snprintf(old_thp, sizeof(old_thp), "%s",
				 strchr(mode_now, '[') + 1);
			*strchr(old_thp, ']') = '\0';
		}
		atexit(restore);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
	}
	printf("%u MiB in %u-MiB segments per process; per process: VmPTE "
	       "growth (kB), system-wide PageTables growth (kB), VMAs added\n",
	       size_mb, SEG_MB);
	printf("%-7s %6s %10s %14s %10s  %s\n", "mode", "procs", "VmPTE",
	       "PageTables", "VMAs", "pages");
	if (attach_n) {
		rc |= attach_run(attach_n, false);
		rc |= attach_run(attach_n, true);
	}
	for (char *np, *p = procs; p && *p; p = np) {
		unsigned nprocs = (unsigned)strtoul(p, &np, 10);

		np = *np == ',' ? np + 1 : NULL;
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			if (!strstr(mode_list, modes[i].name))
				continue;
			if (modes[i].root && geteuid() != 0) {
				printf("%-7s %6u  skipped (needs root)\n",
				       modes[i].name, nprocs);
				continue;
			}
			rc |= run(&modes[i], nprocs, size_mb, self);
		}
	}
	return rc;
}
