/* SPDX-License-Identifier: MIT */
/*
 * kill_storm.c - many processes, random operations, random kill -9s, and
 * after every round a check that the control segment still tells the truth.
 *
 * test_crash.c kills one process at each named step, one step at a time.
 * That proves each step can be repaired, but not that repairs compose: a
 * reaper killed while reaping a process that died while retiring a segment
 * another one was attaching.  Here W worker processes share one instance
 * and loop over random operations (create, attach, detach, pin, unpin,
 * destroy, named get-or-create, close and reopen the instance) while this
 * driver SIGKILLs random workers at random moments and starts new ones.
 * Each backend storms twice: without a region, and with a 16 MiB region
 * (huge_pages = off) where creates ask at random for the region, for the
 * backend, or for whichever fits.  Each backend that can be placed (posix,
 * mmap) storms a third time with msharefs placement on, against the shared
 * emulation of tests/fake_mshare.c: a supervisor process (never killed)
 * owns the region, every segment is placed, and the checks add that each
 * placed slot - and nothing else - is mapped in its window, and that no
 * process maps a placed segment's object itself.  Some workers are also
 * armed through the library's test hook (dynshm_test_hook) to kill themselves
 * at a random hook point, most of which lie inside the control lock - the
 * case a SIGKILL from outside hits only by luck.
 *
 * A round ends when every surviving worker has parked between operations.
 * Then a clean process (forked from the driver, which never opens the
 * instance itself) opens the instance - which reaps the dead - and checks,
 * against the control segment read under its lock:
 *   - the lock is free: a bounded trylock loop (a liveness check; nothing
 *     here measures time, and a hang is reported by a generous watchdog);
 *   - per live process, its row of references is exactly the set of our
 *     segments that /proc/<pid>/maps shows mapped, so refcounts equal live
 *     mappings; a live worker outside the process table maps nothing;
 *   - every slot is ACTIVE (nothing half-made or half-destroyed is left
 *     at rest), referenced or pinned, and its OS object exists - except a
 *     region slot, which has none: a process holding one maps the region;
 *   - every OS object of the instance (read from /dev/shm, the mmap
 *     directory or /proc/sysvipc/shm directly) belongs to a slot, and the
 *     region's SysV segment exists;
 *   - no two live slots (CREATING, or ACTIVE and not doomed) share a name,
 *     and every ACTIVE named slot carries its init stamp, so init ran to
 *     completion before the segment was published, and a worker killed
 *     inside init (at the storm's own point "storm:in-init") left nothing;
 *   - region blocks lie inside the region, aligned, do not overlap, and the
 *     allocator's used bytes and block count equal the slots' sum.
 * Workers also check data: every segment starts with its own handle, so an
 * attach that mapped the wrong object is caught.  They also allocate and
 * free in a shared area (issue 15, "storm.area") and stamp every block with
 * its own pointer; the checker then asks the area for its statistics,
 * which repairs whatever a killed worker left, and checks that they add
 * up.  And they insert, find and delete keys in a hash table in that area
 * (its area pointer in the named segment "storm.table"), whose values are
 * a function of their keys; the checker walks it for wrong values and
 * duplicate keys.
 *
 * Queue pairs (dynshm/facility.h): a worker's operation may be a message
 * queue in a fresh segment, shared with a partner process it forks; one
 * side sends messages of random lengths (up to 4x the ring, so some
 * stream in pieces), the other checks them.  When the driver kills the
 * worker, the partner must get -ECONNRESET or -EPIPE - never wait forever -
 * and leave; the driver waits for every partner to be gone before a check
 * (the watchdog calls a hang a failure), and the checks then find nothing
 * of the pair left but what the reaper releases.  At the end every worker
 * is killed, a last check runs, the instance is reset and destroyed, and
 * nothing of it may remain anywhere.
 *
 *	kill_storm [--kills N] [--workers N] [--backend posix|sysv|mmap]
 *		   [--region no|yes|both] [--mshare no|yes] [--seed N]
 *		   [--pid-namespaces no|yes]
 *
 * Some workers run with their leader thread exited and, as root, some in
 * PID namespaces of their own (--pid-namespaces no: none): see enum
 * worker_kind.
 *
 * --kills (or $KILL_STORM_KILLS) is the total over all storms: the test
 * suite runs a few hundred, `make soak` ten thousand.  Exit status 0 when no
 * check failed and nothing leaked, 1 otherwise, 77 when no backend can run.
 * Prints counts per storm ("posix", "posix+region", ...) and a total.
 *
 * Runs alone (is_parallel: false): sysv objects are told apart by the tag
 * that every test instance shares.
 */
#include "fake_mshare.h"
#include "testutil.h"

#include "src/region.h"
#include "src/wrapper.h"

#include <build_config.h>
#include <dynshm/area.h>
#include <dynshm/dsm.h>
#include <dynshm/dsm_impl.h>
#include <dynshm/facility.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define N_PUBLISHED 32	   /* handles workers pass to each other */
#define LOCAL_MAX 12	   /* attaches a worker holds at once */
#define OPS_PER_ROUND 40
#define MAX_SEGMENTS "48"
#define MAX_PROCESSES "24"
#define HANG_SECONDS 120   /* watchdog only: a hang, not a slow run */
#define STAMP_BYTES 8

/* Worker exit statuses besides 0 (parked and told to stop). */
#define EXIT_LIBRARY 2	   /* an error the operation may not return */
#define EXIT_DATA 3	   /* a segment did not hold what it should */
#define QUEUE_RING 512	   /* queue pairs: ring bytes */
#define QUEUE_MAX_MSG (4 * QUEUE_RING)

/* ---- what the driver and its processes share -------------------------- */

/* The library's hook points (HOOK in the sources); the first nine lie in
 * the control lock.  "storm:in-init" is the storm's own: the middle of the
 * init callback of dynshm_get_named, between its two stamps. */
static const char *const points[] = {
	"create:reserved",   "create:referenced", "attach:referenced",
	"detach:released",   "retire:moribund",	  "pin:changed",
	"reap:release",	     "region:allocated",  "named:reap",
	"create:before-os",  "create:after-os",	  "destroy:before-os",
	"destroy:after-os",  "region:before-zero", "named:init",
	"storm:in-init",     "named:wait",
};

#define N_POINTS (sizeof(points) / sizeof(points[0]))
#define N_IN_LOCK 9

/*
 * Named segments: a few names that every worker gets or creates.  Each has
 * its own size (dynshm_get_named refuses another size) and its own magic,
 * which the init callback writes after the handle; so a segment that was
 * published before its init completed, or whose init ran twice, or whose
 * name moved to another segment, shows in its first 16 bytes.
 */
static const char *const names[] = {
	"storm.a", "storm.b", "storm.c", "storm/d",
};

#define N_NAMES (sizeof(names) / sizeof(names[0]))
#define NAMED_MAGIC 0x6e616d6564000000ull /* "named" + the name's index */

static size_t named_size(size_t i)
{
	return 4096 * (i + 1) + 24 * i; /* distinct, some page-unaligned */
}

struct counts {
	uint64_t rounds, ops, kills, kills_busy, hook_kills, checks;
	uint64_t repairs, reaped, leaks, failures;
	uint64_t named_created, named_found, in_region, placed;
	uint64_t queue_pairs, queue_msgs, queue_peer_gone;
	/* msharefs emulation: mappings taken from every process (UNMAP,
	 * replaced), windows mapped on a first access, calls it finished
	 * for a process killed inside one */
	uint64_t revoked, faults_mapped, emu_repairs;
	/* workers started in a PID namespace of their own (with their own
	 * /proc), and workers whose leader thread exited; not_ns: namespaces
	 * not permitted here, plain workers instead */
	uint64_t ns_workers, leader_exit_workers, not_ns;
	uint64_t at[N_POINTS + 1]; /* hook kills by point; last: unknown */
	uint64_t reached[N_POINTS + 1]; /* hook calls by point, armed or not */
};

struct shared {
	uint64_t ops;				/* every op tried */
	uint64_t published[N_PUBLISHED];	/* handles, 0 = none */
	uint32_t busy[MAX_WORKERS];		/* 1 while inside a round */
	uint32_t hook_armed[MAX_WORKERS];	/* 1 while the hook may kill */
	int32_t pids[MAX_WORKERS];		/* live workers, 0 = none */
	/*
	 * Who a worker is in the instance: its token (dynshm_proc_self),
	 * since its pid there may be one of its own PID namespace; and,
	 * for a worker whose leader thread exited, the thread whose
	 * /proc/<tid>/maps shows its mappings (0: its pid's).
	 */
	uint64_t token[MAX_WORKERS];
	int32_t maps_tid[MAX_WORKERS];
	uint64_t repairs, reaped;		/* last check's reading */
	uint64_t leaks;				/* found by checks */
	uint64_t named_created, named_found;	/* dynshm_get_named outcomes */
	uint64_t in_region;			/* region slots seen by checks */
	uint64_t placed;			/* placed slots seen by checks */
	uint64_t at[N_POINTS + 1];		/* hook kills by point */
	uint64_t reached[N_POINTS + 1];		/* hook calls by point */
	/* queue pairs: partner pids (0 = none), outcomes */
	int32_t partners[MAX_WORKERS];
	uint64_t queue_pairs, queue_msgs, queue_peer_gone, queue_bad;
};

struct backend {
	const char *name;
	dynshm_impl_type type;
};

static const struct backend backends[] = {
	{ "posix", DYNSHM_IMPL_POSIX },
	{ "sysv", DYNSHM_IMPL_SYSV },
	{ "mmap", DYNSHM_IMPL_MMAP },
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

struct worker {
	pid_t pid;	/* 0 when the slot is empty */
	int go;		/* write end: one byte starts a round */
	int done;	/* read end: one byte ends it, EOF = died */
	bool killed;	/* by the driver, this round */
	bool finished;	/* reported done this round */
};

struct storm {
	const struct backend *be;
	bool region;		/* the instance has a region (16 MiB) */
	bool mshare;		/* placement on, against fake_mshare.c */
	char *mount;		/* its fake msharefs, a test directory */
	pid_t supervisor;	/* owns the region; never killed */
	int supervisor_go;	/* write end: closing it ends the supervisor */
	dynshm_config *cfg_off;	/* for the final reset: mshare = off */
	char label[16];		/* "posix" or "posix+region" */
	char *dir;
	dynshm_config *cfg;
	uint64_t id;
	struct shared *sh;
	struct worker w[MAX_WORKERS];
	int nworkers;
	uint64_t rng;
	int sysv_before;	/* tagged SysV segments before the storm */
	struct counts n;
};

static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned below(uint64_t *state, unsigned n)
{
	return (unsigned)(next_random(state) % n);
}

static bool write_byte(int fd, char c)
{
	ssize_t n;

	do
		n = write(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1;
}

/* 1 byte read, 0 at EOF, -1 on error. */
static int read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 1 : n == 0 ? 0 : -1;
}

/* ---- a worker ------------------------------------------------------------ */

struct held {
	dynshm_segment *seg;
	dynshm_handle handle;
};

#define AREA_HELD 16 /* area blocks a worker holds at once */
#define AREA_NAME "storm.area"

struct wstate {
	struct storm *st;
	int index;
	dynshm_instance *inst;
	struct held local[LOCAL_MAX];
	int nlocal;
	dynshm_area *area;	/* NULL until the first area op */
	dynshm_hash *hash;	/* NULL until the first table op */
	dynshm_area_ptr blocks[AREA_HELD];
	size_t sizes[AREA_HELD];
	int nblocks;
	uint64_t rng;
	int hook_countdown;	/* > 0: die at that many-th hook call */
	int go, done;		/* the driver's pipes (a partner closes them) */
};

static struct wstate *hooked;

/* Called by the library at every named point (see HOOK in wrapper.h). */
static void storm_hook(const char *point)
{
	size_t i = 0;

	if (!hooked)
		return;
	while (i < N_POINTS && strcmp(points[i], point) != 0)
		i++;
	__atomic_add_fetch(&hooked->st->sh->reached[i], 1, __ATOMIC_RELAXED);
	if (hooked->hook_countdown <= 0 || --hooked->hook_countdown > 0)
		return;
	__atomic_add_fetch(&hooked->st->sh->at[i], 1, __ATOMIC_RELAXED);
	raise(SIGKILL);
}

#define BAD(ws, what, rc)                                                      \
	do {                                                                   \
		fprintf(stderr,                                                \
			"kill_storm: worker %d (%s): %s returned %d: %s\n",   \
			(int)getpid(), (ws)->st->label, what, rc,           \
			dynshm_last_error());                                     \
		_exit(EXIT_LIBRARY);                                           \
	} while (0)

static dynshm_handle pick_published(struct wstate *ws)
{
	return __atomic_load_n(&ws->st->sh->published[below(&ws->rng,
							     N_PUBLISHED)],
			       __ATOMIC_ACQUIRE);
}

static void check_stamp(struct wstate *ws, dynshm_segment *seg, dynshm_handle h)
{
	uint64_t v;

	memcpy(&v, dynshm_segment_address(seg), sizeof(v));
	if (v != h) {
		fprintf(stderr, "kill_storm: worker %d: segment %016" PRIx64
				" holds the stamp of %016" PRIx64 "\n",
			(int)getpid(), h, v);
		_exit(EXIT_DATA);
	}
}

/* With a region: a third each from wherever fits, the region only, and
 * the backend only.  Without one: always 0. */
static unsigned place_flags(struct wstate *ws)
{
	static const unsigned choice[] = { 0, DYNSHM_CREATE_REGION,
					   DYNSHM_CREATE_NO_REGION };

	return ws->st->region ? choice[below(&ws->rng, 3)] : 0;
}

static void publish(struct wstate *ws, dynshm_segment *seg, dynshm_handle h)
{
	ws->local[ws->nlocal].seg = seg;
	ws->local[ws->nlocal++].handle = h;
	__atomic_store_n(&ws->st->sh->published[below(&ws->rng, N_PUBLISHED)],
			 h, __ATOMIC_RELEASE);
}

static void op_create(struct wstate *ws)
{
	/* sizes: a page, odd sizes, up to 64 KiB */
	size_t size = STAMP_BYTES + below(&ws->rng, 65536);
	dynshm_segment *seg = NULL;
	dynshm_handle h;
	int rc;

	if (ws->nlocal == LOCAL_MAX)
		return;
	rc = dynshm_create(ws->inst, size, place_flags(ws), &seg);
	if (rc == -ENOSPC)
		return; /* every slot (or the region) in use: allowed */
	if (rc != 0)
		BAD(ws, "dynshm_create", rc);
	h = dynshm_segment_handle(seg);
	memcpy(dynshm_segment_address(seg), &h, sizeof(h));
	publish(ws, seg, h);
}

static void op_attach(struct wstate *ws)
{
	dynshm_handle h = pick_published(ws);
	dynshm_segment *seg = NULL;
	int rc;

	if (!h || ws->nlocal == LOCAL_MAX)
		return;
	rc = dynshm_attach(ws->inst, h, &seg);
	if (rc == -ENOENT)
		return; /* destroyed meanwhile: allowed */
	if (rc != 0)
		BAD(ws, "dynshm_attach", rc);
	check_stamp(ws, seg, h);
	ws->local[ws->nlocal].seg = seg;
	ws->local[ws->nlocal++].handle = h;
}

static void op_detach(struct wstate *ws)
{
	int i, rc;

	if (ws->nlocal == 0)
		return;
	i = (int)below(&ws->rng, (unsigned)ws->nlocal);
	check_stamp(ws, ws->local[i].seg, ws->local[i].handle);
	rc = dynshm_detach(ws->local[i].seg);
	if (rc != 0)
		BAD(ws, "dynshm_detach", rc);
	ws->local[i] = ws->local[--ws->nlocal];
}

static void op_pin(struct wstate *ws)
{
	int rc;

	if (ws->nlocal == 0)
		return;
	rc = dynshm_pin_segment(ws->local[below(&ws->rng,
					     (unsigned)ws->nlocal)].seg);
	if (rc != 0 && rc != -EALREADY && rc != -ENOENT)
		BAD(ws, "dynshm_pin_segment", rc);
}

static void op_unpin(struct wstate *ws)
{
	dynshm_handle h = pick_published(ws);
	int rc;

	if (!h)
		return;
	rc = dynshm_unpin_segment(ws->inst, h);
	if (rc != 0 && rc != -EINVAL && rc != -ENOENT)
		BAD(ws, "dynshm_unpin_segment", rc);
}

static void op_destroy(struct wstate *ws)
{
	dynshm_handle h = pick_published(ws);
	int rc;

	if (!h)
		return;
	rc = dynshm_destroy(ws->inst, h);
	if (rc != 0 && rc != -ENOENT)
		BAD(ws, "dynshm_destroy", rc);
}

static void open_instance(struct wstate *ws)
{
	uint64_t token = 0;
	int rc = dynshm_instance_open(ws->st->dir, ws->st->cfg, DYNSHM_OPEN_EXISTING,
				   &ws->inst);

	if (rc != 0)
		BAD(ws, "dynshm_instance_open", rc);
	rc = dynshm_proc_self(ws->inst, &token);
	if (rc != 0)
		BAD(ws, "dynshm_proc_self", rc);
	__atomic_store_n(&ws->st->sh->token[ws->index], token,
			 __ATOMIC_RELEASE);
}

static void area_leave(struct wstate *ws)
{
	if (ws->hash)
		dynshm_hash_detach(ws->hash);
	ws->hash = NULL;
	if (ws->area)
		dynshm_area_detach(ws->area);
	ws->area = NULL;
	ws->nblocks = 0; /* still allocated: the area keeps them */
}

/* Leave the instance (detaching everything) and join it again. */
static void op_reopen(struct wstate *ws)
{
	int rc;

	area_leave(ws);
	rc = dynshm_instance_close(ws->inst);

	ws->inst = NULL;
	ws->nlocal = 0;
	if (rc != 0)
		BAD(ws, "dynshm_instance_close", rc);
	open_instance(ws);
}

/*
 * Named get-or-create.  The init callback finds the segment zero-filled,
 * writes the handle, may die (the storm's own hook point), then writes the
 * name's magic.  Whoever gets the name - creator or not - must find both.
 */
struct named_arg {
	struct wstate *ws;
	size_t index;
};

static void check_named(dynshm_segment *seg, size_t index)
{
	uint64_t v[2], want = NAMED_MAGIC + index;
	dynshm_handle h = dynshm_segment_handle(seg);

	memcpy(v, dynshm_segment_address(seg), sizeof(v));
	if (v[0] != h || v[1] != want) {
		fprintf(stderr, "kill_storm: worker %d: named segment '%s' "
				"(%016" PRIx64 ") holds %016" PRIx64
				" %016" PRIx64 ", not its init stamp\n",
			(int)getpid(), names[index], h, v[0], v[1]);
		_exit(EXIT_DATA);
	}
}

static int named_init(dynshm_segment *seg, void *arg)
{
	const struct named_arg *na = arg;
	const unsigned char *p = dynshm_segment_address(seg);
	uint64_t magic = NAMED_MAGIC + na->index;
	dynshm_handle h = dynshm_segment_handle(seg);

	for (size_t i = 0; i < dynshm_segment_size(seg); i++)
		if (p[i] != 0) {
			fprintf(stderr, "kill_storm: worker %d: new named "
					"segment '%s' not zero at byte %zu\n",
				(int)getpid(), names[na->index], i);
			_exit(EXIT_DATA);
		}
	memcpy(dynshm_segment_address(seg), &h, sizeof(h));
	storm_hook("storm:in-init");
	memcpy((char *)dynshm_segment_address(seg) + sizeof(h), &magic,
	       sizeof(magic));
	return 0;
}

static void op_get_named(struct wstate *ws)
{
	struct named_arg na = { ws, below(&ws->rng, N_NAMES) };
	unsigned flags = place_flags(ws);
	dynshm_segment *seg = NULL;
	int rc, created = -1;

	if (ws->nlocal == LOCAL_MAX)
		return;
	if (below(&ws->rng, 4) == 0)
		flags |= DYNSHM_CREATE_PIN;
	rc = dynshm_get_named(ws->inst, names[na.index], named_size(na.index),
			   flags, named_init, &na, &seg, &created);
	if (rc == -ENOSPC)
		return; /* every slot (or the region) in use: allowed */
	if (rc != 0)
		BAD(ws, "dynshm_get_named", rc);
	if (created != 0 && created != 1)
		BAD(ws, "dynshm_get_named (created not set)", created);
	check_named(seg, na.index);
	__atomic_add_fetch(created ? &ws->st->sh->named_created :
				     &ws->st->sh->named_found,
			   1, __ATOMIC_RELAXED);
	publish(ws, seg, dynshm_segment_handle(seg));
}

/*
 * A queue pair.  The worker makes a segment with a queue and forks a
 * partner; a random one of them sends 1 to 40 messages and detaches, the
 * other checks them and must then see the end (-ECONNRESET, or -EPIPE
 * for a sender whose receiver left).  A partner whose worker is killed
 * meanwhile sees the same errors; whatever else it sees is a failure.
 */
static unsigned char queue_byte(uint64_t seq, size_t i)
{
	return (unsigned char)(seq * 131 + i * 7);
}

static size_t queue_len(uint64_t *rng)
{
	return 1 + below(rng, 1u << below(rng, 12)) % QUEUE_MAX_MSG;
}

/* Send count messages (forever when count < 0): 0, or the error. */
static int queue_send(dynshm_mq *mq, uint64_t *rng, long count)
{
	unsigned char buf[QUEUE_MAX_MSG];

	for (uint64_t seq = 0; count < 0 || (long)seq < count; seq++) {
		size_t len = queue_len(rng);
		int rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = queue_byte(seq, i);
		rc = dynshm_mq_send(mq, buf, len, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Receive count messages (until an error when count < 0), checking each:
 * 0, the error, or -EBADMSG for a damaged message. */
static int queue_receive(dynshm_mq *mq, long count, uint64_t *msgs)
{
	for (uint64_t seq = 0; count < 0 || (long)seq < count; seq++) {
		const unsigned char *data;
		size_t len;
		int rc = dynshm_mq_receive_view(mq, (const void **)&data, &len,
						-1);

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < len; i++)
			if (data[i] != queue_byte(seq, i))
				return -EBADMSG;
		(*msgs)++;
	}
	return 0;
}

/*
 * The partner attaches the segment by handle rather than using the mapping
 * it inherited: a region segment destroyed between the fork and a child's
 * first call has its memory reused (the gap dsm.h describes), and the
 * worker may be killed in that window.
 */
static void partner_main(struct wstate *ws, dynshm_handle handle,
			 dynshm_mq_role role)
{
	struct shared *sh = ws->st->sh;
	uint64_t msgs = 0, rng = ws->rng ^ 0x5eed;
	dynshm_segment *seg = NULL;
	dynshm_mq *mq = NULL;
	int rc;

	/* before closing the driver's pipe: the driver, seeing the worker
	 * gone (EOF), then also sees this partner and waits for it */
	__atomic_store_n(&sh->partners[ws->index], getpid(), __ATOMIC_RELEASE);
	hooked = NULL;
	dynshm_test_hook = NULL;
	close(ws->go);
	close(ws->done);
	rc = dynshm_attach(ws->inst, handle, &seg);
	if (rc == -ENOENT) /* the worker died and its segment went */
		rc = role == DYNSHM_MQ_SENDER ? -EPIPE : -ECONNRESET;
	else if (rc == 0)
		rc = dynshm_mq_attach(ws->inst, dynshm_segment_address(seg),
				      dynshm_mq_estimate(QUEUE_RING), role,
				      &mq);
	if (rc == 0) {
		rc = role == DYNSHM_MQ_SENDER ? queue_send(mq, &rng, -1)
					      : queue_receive(mq, -1, &msgs);
		dynshm_mq_detach(mq);
	}
	__atomic_add_fetch(&sh->queue_msgs, msgs, __ATOMIC_RELAXED);
	if (rc == (role == DYNSHM_MQ_SENDER ? -EPIPE : -ECONNRESET)) {
		__atomic_add_fetch(&sh->queue_peer_gone, 1, __ATOMIC_RELAXED);
	} else {
		fprintf(stderr, "kill_storm: partner %d (%s): %s ended with "
				"%d: %s\n",
			(int)getpid(), ws->st->label,
			role == DYNSHM_MQ_SENDER ? "send" : "receive", rc,
			dynshm_last_error());
		__atomic_add_fetch(&sh->queue_bad, 1, __ATOMIC_RELAXED);
	}
	dynshm_instance_close(ws->inst);
	__atomic_store_n(&sh->partners[ws->index], 0, __ATOMIC_RELEASE);
	_exit(0);
}

static void op_queue(struct wstate *ws)
{
	size_t size = dynshm_mq_estimate(QUEUE_RING);
	dynshm_mq_role role = below(&ws->rng, 2) ? DYNSHM_MQ_SENDER
						 : DYNSHM_MQ_RECEIVER;
	long count = 1 + (long)below(&ws->rng, 40);
	uint64_t msgs = 0, rng = ws->rng ^ 0x5eed;
	dynshm_segment *seg = NULL;
	dynshm_mq *mq = NULL;
	pid_t pid;
	int rc;

	rc = dynshm_create(ws->inst, size, place_flags(ws), &seg);
	if (rc == -ENOSPC)
		return;
	if (rc != 0)
		BAD(ws, "dynshm_create (queue)", rc);
	rc = dynshm_mq_create(dynshm_segment_address(seg), size);
	if (rc == 0)
		rc = dynshm_mq_attach(ws->inst, dynshm_segment_address(seg),
				      size, role, &mq);
	if (rc != 0)
		BAD(ws, "dynshm_mq_create/attach", rc);
	__atomic_add_fetch(&ws->st->sh->queue_pairs, 1, __ATOMIC_RELAXED);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		BAD(ws, "fork (queue partner)", -errno);
	if (pid == 0)
		partner_main(ws, dynshm_segment_handle(seg),
			     role == DYNSHM_MQ_SENDER ? DYNSHM_MQ_RECEIVER
						      : DYNSHM_MQ_SENDER);
	rc = role == DYNSHM_MQ_SENDER ? queue_send(mq, &rng, count)
				      : queue_receive(mq, count, &msgs);
	if (rc != 0)
		BAD(ws, "the queue pair's worker side", rc);
	__atomic_add_fetch(&ws->st->sh->queue_msgs, msgs, __ATOMIC_RELAXED);
	dynshm_mq_detach(mq);
	if (test_wait(pid) != 0)
		BAD(ws, "the queue partner's exit", -ECHILD);
	rc = dynshm_detach(seg);
	if (rc != 0)
		BAD(ws, "dynshm_detach (queue)", rc);
}

/* Both ends of an area block hold its own pointer. */
static void area_stamp(unsigned char *p, size_t size, dynshm_area_ptr ptr)
{
	memcpy(p, &ptr, sizeof(ptr));
	memcpy(p + size - sizeof(ptr), &ptr, sizeof(ptr));
}

static void area_check(struct wstate *ws, int i)
{
	const unsigned char *p = dynshm_area_get(ws->area, ws->blocks[i]);
	uint64_t a, b;

	if (!p)
		BAD(ws, "dynshm_area_get", -ENOENT);
	memcpy(&a, p, sizeof(a));
	memcpy(&b, p + ws->sizes[i] - sizeof(b), sizeof(b));
	if (a != ws->blocks[i] || b != ws->blocks[i]) {
		fprintf(stderr, "kill_storm: worker %d: area block %016" PRIx64
				" holds %016" PRIx64 " %016" PRIx64 "\n",
			(int)getpid(), ws->blocks[i], a, b);
		_exit(EXIT_DATA);
	}
}

/* Allocate or free in the shared area (issue 15). */
static void op_area(struct wstate *ws)
{
	dynshm_area_ptr ptr;
	size_t size;
	int rc, i;

	if (!ws->area) {
		rc = dynshm_area_get_named(ws->inst, AREA_NAME, 0, 0,
					   &ws->area, NULL);
		if (rc == -ENOSPC || rc == -ENOMEM)
			return; /* every slot (or the region) in use */
		if (rc != 0)
			BAD(ws, "dynshm_area_get_named", rc);
	}
	if (ws->nblocks == AREA_HELD ||
	    (ws->nblocks > 0 && below(&ws->rng, 2))) {
		i = (int)below(&ws->rng, (unsigned)ws->nblocks);
		area_check(ws, i);
		rc = dynshm_area_free(ws->area, ws->blocks[i]);
		if (rc != 0)
			BAD(ws, "dynshm_area_free", rc);
		ws->blocks[i] = ws->blocks[--ws->nblocks];
		ws->sizes[i] = ws->sizes[ws->nblocks];
		return;
	}
	size = 16 + below(&ws->rng, below(&ws->rng, 16) ? 3000 : 20000);
	rc = dynshm_area_alloc(ws->area, size, 0, &ptr);
	if (rc == -ENOSPC || rc == -ENOMEM)
		return; /* every slot (or the region) in use: allowed */
	if (rc != 0)
		BAD(ws, "dynshm_area_alloc", rc);
	area_stamp(dynshm_area_get(ws->area, ptr), size, ptr);
	ws->blocks[ws->nblocks] = ptr;
	ws->sizes[ws->nblocks++] = size;
}

/*
 * The storm's hash table: its area pointer lives in the named segment
 * TABLE_NAME (8 bytes, 0 until someone made the table).  A worker that
 * finds 0 makes a table and installs it with a compare-and-swap; a loser
 * destroys its own.  One killed in between leaks a table, nothing more.
 */
#define TABLE_NAME "storm.table"
#define TABLE_VALUE(k) ((k) * 3 + 1)

static int hash_join(struct wstate *ws)
{
	dynshm_area_ptr tp = 0, mine;
	dynshm_segment *seg;
	dynshm_hash *t;
	int rc;

	rc = dynshm_get_named(ws->inst, TABLE_NAME, 8, DYNSHM_CREATE_PIN, NULL,
			      NULL, &seg, NULL);
	if (rc == -ENOSPC || rc == -ENOMEM)
		return rc;
	if (rc != 0)
		BAD(ws, "dynshm_get_named(table)", rc);
	tp = __atomic_load_n((uint64_t *)dynshm_segment_address(seg),
			     __ATOMIC_ACQUIRE);
	if (tp == 0) {
		rc = dynshm_hash_create(ws->area, 8, 8, &mine, &t);
		if (rc == -ENOSPC || rc == -ENOMEM) {
			dynshm_detach(seg);
			return rc;
		}
		if (rc != 0)
			BAD(ws, "dynshm_hash_create", rc);
		if (__atomic_compare_exchange_n(
			    (uint64_t *)dynshm_segment_address(seg), &tp, mine,
			    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			ws->hash = t;
		} else {
			dynshm_hash_destroy(t);
		}
	}
	dynshm_detach(seg);
	if (!ws->hash) {
		rc = dynshm_hash_attach(ws->area, tp, &ws->hash);
		if (rc != 0)
			BAD(ws, "dynshm_hash_attach", rc);
	}
	return 0;
}

/* Insert, find or delete one of this worker's 512 keys. */
static void op_hash(struct wstate *ws)
{
	uint64_t key, value;
	int rc;

	if (!ws->area) {
		op_area(ws); /* joins the area first */
		return;
	}
	if (!ws->hash && hash_join(ws) < 0)
		return;
	key = (uint64_t)ws->index << 32 | below(&ws->rng, 512);
	value = TABLE_VALUE(key);
	switch (below(&ws->rng, 3)) {
	case 0:
		rc = dynshm_hash_insert(ws->hash, &key, &value,
					DYNSHM_HASH_REPLACE);
		if (rc != 0 && rc != -ENOSPC && rc != -ENOMEM)
			BAD(ws, "dynshm_hash_insert", rc);
		break;
	case 1:
		rc = dynshm_hash_find(ws->hash, &key, &value);
		if (rc == 0 && value != TABLE_VALUE(key)) {
			fprintf(stderr, "kill_storm: worker %d: key %016" PRIx64
					" has value %016" PRIx64 "\n",
				(int)getpid(), key, value);
			_exit(EXIT_DATA);
		}
		if (rc != 0 && rc != -ENOENT)
			BAD(ws, "dynshm_hash_find", rc);
		break;
	default:
		rc = dynshm_hash_delete(ws->hash, &key);
		if (rc != 0 && rc != -ENOENT)
			BAD(ws, "dynshm_hash_delete", rc);
	}
}

static void (*const ops[])(struct wstate *) = {
	op_create, op_create, op_create, op_attach, op_attach, op_attach,
	op_detach, op_detach, op_detach, op_pin,    op_unpin,  op_destroy,
	op_destroy, op_reopen, op_get_named, op_get_named, op_queue,
	op_area, op_area, op_hash, op_hash,
};

#define N_OPS (sizeof(ops) / sizeof(ops[0]))

static void run_round(struct wstate *ws)
{
	struct shared *sh = ws->st->sh;

	/* a third of the rounds: die at a random hook point, if reached */
	ws->hook_countdown = below(&ws->rng, 3) == 0 ?
				     1 + (int)below(&ws->rng, 48) : 0;
	__atomic_store_n(&sh->hook_armed[ws->index], ws->hook_countdown > 0,
			 __ATOMIC_RELEASE);
	for (int i = 0; i < OPS_PER_ROUND; i++) {
		__atomic_add_fetch(&sh->ops, 1, __ATOMIC_RELAXED);
		ops[below(&ws->rng, N_OPS)](ws);
	}
	ws->hook_countdown = 0;
	__atomic_store_n(&sh->hook_armed[ws->index], 0, __ATOMIC_RELEASE);
}

static int worker_main(struct storm *st, int index, int go, int done)
{
	struct wstate ws;
	char c;

	memset(&ws, 0, sizeof(ws));
	ws.st = st;
	ws.index = index;
	ws.rng = st->rng ^ (uint64_t)getpid() << 20;
	ws.go = go;
	ws.done = done;
	hooked = &ws;
	dynshm_test_hook = storm_hook;
	open_instance(&ws);
	if (!write_byte(done, 'r')) /* joined: the driver may go on */
		return 1;
	while (read_byte(go, &c) == 1) {
		__atomic_store_n(&st->sh->busy[index], 1, __ATOMIC_RELEASE);
		run_round(&ws);
		__atomic_store_n(&st->sh->busy[index], 0, __ATOMIC_RELEASE);
		if (!write_byte(done, 'd'))
			break;
	}
	/* told to stop (EOF): leave cleanly */
	dynshm_test_hook = NULL;
	area_leave(&ws);
	dynshm_instance_close(ws.inst);
	return 0;
}

/* ---- the checker ---------------------------------------------------------- */

/* A mapping's or object's name reduced to what every source agrees on:
 * "dynshm.<id>.<handle>" for posix and mmap, "SYSV<key>" for sysv. */
#define KEY_LEN 64

static void object_key(dynshm_impl_space *space, dynshm_handle h, char *key)
{
	char name[DYNSHM_IMPL_NAME_MAX];
	unsigned sysv;
	const char *base;

	key[0] = '\0';
	if (dynshm_impl_object_name(space, h, name, sizeof(name)) != 0)
		return;
	if (sscanf(name, "sysv:0x%x", &sysv) == 1) {
		snprintf(key, KEY_LEN, "SYSV%08x", sysv);
		return;
	}
	base = strrchr(name, '/');
	snprintf(key, KEY_LEN, "%.*s", KEY_LEN - 1, base ? base + 1 : name);
}

/* Our objects mapped by pid: keys into keys[], up to max; count or -1. */
static int mapped_keys(pid_t pid, uint64_t id, char (*keys)[KEY_LEN], int max)
{
	char path[64], line[4096], prefix[40];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	snprintf(prefix, sizeof(prefix), "dynshm.%016" PRIx64 ".", id);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *name = strchr(line, '/'), *base, *end;
		unsigned key;

		if (!name)
			continue;
		line[strcspn(line, "\n")] = '\0';
		end = strstr(name, " (deleted)");
		if (end)
			*end = '\0';
		base = strrchr(name, '/') + 1;
		if (strstr(base, "fake-mshare-"))
			continue; /* the emulated msharefs region's pages */
		if (strncmp(base, prefix, strlen(prefix)) != 0 &&
		    !(sscanf(base, "SYSV%8x", &key) == 1 &&
		      (key & 0x40000000u) &&
		      (key >> 18 & 0xfff) == (id & 0xfff)))
			continue;
		if (n < max)
			snprintf(keys[n], KEY_LEN, "%s", base);
		n++;
	}
	fclose(f);
	return n;
}

static bool has_key(char (*keys)[KEY_LEN], int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

#define MAX_KEYS 256

struct check {
	dynshm_instance *inst;
	dynshm_impl_space *space;
	char ctl_key[KEY_LEN];
	char region_key[KEY_LEN]; /* the region's SysV object, "" if none */
	char (*slot_key)[KEY_LEN]; /* by slot, "" when FREE or in the region */
	bool *in_region;	   /* by slot: carved from the region */
	bool *placed;		   /* by slot: in the msharefs region */
	uint64_t region_slots, placed_slots;
	int problems;
	uint64_t leaks;
};

#define PROBLEM(ck, ...)                                                       \
	do {                                                                   \
		fprintf(stderr, "kill_storm: check: " __VA_ARGS__);            \
		fputc('\n', stderr);                                           \
		(ck)->problems++;                                              \
	} while (0)

/*
 * The lock must be free: we hold nothing, every worker is parked.  A
 * holder killed with it may have left lock_holder set; the next locker
 * repairs that, so only a lock that stays taken is a problem.
 */
static void check_lock_free(struct check *ck)
{
	struct timespec pause = { 0, 1000000 };
	bool stolen = false;
	int rc = -EBUSY;

	for (int i = 0; i < 5000 && rc == -EBUSY; i++) {
		rc = lock_take(ck->inst, false, &stolen);
		if (rc == -EBUSY)
			nanosleep(&pause, NULL);
	}
	if (rc == 0)
		lock_give(ck->inst);
	if (rc < 0 || stolen)
		PROBLEM(ck, "control lock not free at rest: %s",
			rc < 0 ? strerror(-rc) : "its holder died with it");
}

/* Each live process's row of references equals what it maps. */
static void check_process(struct check *ck, uint32_t p, pid_t pid)
{
	static char keys[MAX_KEYS][KEY_LEN];
	struct ctl *c = &ck->inst->c;
	int n = mapped_keys(pid, ck->inst->id, keys, MAX_KEYS);

	if (n < 0)
		return; /* gone meanwhile: the next check will see */
	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		bool bit = p != CTL_NONE && ctl_bit(c, p, s);
		bool mapped = ck->slot_key[s][0] &&
			      has_key(keys, n, ck->slot_key[s]);

		/* a region segment is no mapping of its own: its holder
		 * maps the region, as every process of the instance does */
		/* a placed segment maps nothing of its own anywhere */
		if (ck->placed[s]) {
			if (mapped)
				PROBLEM(ck, "process %d maps placed slot %u's "
					    "object itself",
					(int)pid, s);
			continue;
		}
		if (ck->in_region[s]) {
			if (bit && !has_key(keys, n, ck->region_key))
				PROBLEM(ck, "process %d holds region slot %u "
					    "but does not map the region",
					(int)pid, s);
			continue;
		}
		if (bit != mapped)
			PROBLEM(ck, "process %d: slot %u %s but %s", (int)pid,
				s, bit ? "referenced" : "not referenced",
				mapped ? "mapped" : "not mapped");
	}
	for (int i = 0; i < n && i < MAX_KEYS; i++) {
		bool known = strcmp(keys[i], ck->ctl_key) == 0 ||
			     strcmp(keys[i], ck->region_key) == 0;

		for (uint32_t s = 0; !known && s < c->hdr->max_segments; s++)
			known = strcmp(keys[i], ck->slot_key[s]) == 0;
		if (!known)
			PROBLEM(ck, "process %d maps %s, which no slot records",
				(int)pid, keys[i]);
	}
}

/* A named slot's first 16 bytes: its handle, then its name's magic. */
static void check_named_stamp(struct check *ck, uint32_t s, const void *addr)
{
	const struct ctl_slot *slot = &ck->inst->c.slots[s];
	uint64_t v[2];
	size_t i = 0;

	/* the area's segments: the area checks them (check_area) */
	if (strcmp(slot->name, AREA_NAME) == 0 ||
	    strcmp(slot->name, TABLE_NAME) == 0 ||
	    strncmp(slot->name, "dynshm.area.", 12) == 0)
		return;
	while (i < N_NAMES && strcmp(names[i], slot->name) != 0)
		i++;
	if (i == N_NAMES) {
		PROBLEM(ck, "slot %u has the name '%s', which no worker uses",
			s, slot->name);
		return;
	}
	memcpy(v, addr, sizeof(v));
	if (v[0] != slot->handle || v[1] != NAMED_MAGIC + i)
		PROBLEM(ck, "named slot %u ('%s') is ACTIVE without its init "
			    "stamp: %016" PRIx64 " %016" PRIx64,
			s, slot->name, v[0], v[1]);
}

/*
 * The name invariant (control.h): among the slots that are CREATING, or
 * ACTIVE and not doomed, no two hold the same name.
 */
static void check_names(struct check *ck)
{
	struct ctl *c = &ck->inst->c;

	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		const struct ctl_slot *a = &c->slots[s];

		if (!a->name[0] || !(a->state == SLOT_CREATING ||
				     (a->state == SLOT_ACTIVE && !a->doomed)))
			continue;
		for (uint32_t t = s + 1; t < c->hdr->max_segments; t++) {
			const struct ctl_slot *b = &c->slots[t];

			if ((b->state == SLOT_CREATING ||
			     (b->state == SLOT_ACTIVE && !b->doomed)) &&
			    strcmp(a->name, b->name) == 0)
				PROBLEM(ck, "slots %u and %u are both live "
					    "with the name '%s'",
					s, t, a->name);
		}
	}
}

/*
 * Region blocks: inside the region, aligned, big enough, no two
 * overlapping, and the allocator's counters equal the sum of the blocks of
 * every non-FREE region slot (region.h).  Blocks are 2^order pages and
 * 2^order-aligned, so two overlap exactly when one contains the other's
 * start.
 */
static void check_region(struct check *ck)
{
	struct ctl *c = &ck->inst->c;
	const struct region_ctl *r = region_of(c);
	uint64_t used = 0, n = 0;

	if (!r)
		return;
	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		const struct ctl_slot *a = &c->slots[s];
		uint64_t len;

		if (!ck->in_region[s])
			continue;
		if (a->region_order > REGION_MAX_ORDER) {
			PROBLEM(ck, "region slot %u has no block (order %u)",
				s, a->region_order);
			continue;
		}
		len = (uint64_t)REGION_PAGE << a->region_order;
		if (a->region_offset % len || a->region_offset + len > r->size ||
		    a->size > len)
			PROBLEM(ck, "region slot %u: block at %" PRIu64
				    " of %" PRIu64 " bytes is misplaced (size "
				    "%" PRIu64 ", region %" PRIu64 ")",
				s, a->region_offset, len, a->size, r->size);
		for (uint32_t t = s + 1; t < c->hdr->max_segments; t++) {
			const struct ctl_slot *b = &c->slots[t];
			uint64_t blen;

			if (!ck->in_region[t] ||
			    b->region_order > REGION_MAX_ORDER)
				continue;
			blen = (uint64_t)REGION_PAGE << b->region_order;
			if (a->region_offset < b->region_offset + blen &&
			    b->region_offset < a->region_offset + len)
				PROBLEM(ck, "region slots %u and %u overlap",
					s, t);
		}
		used += len;
		n++;
	}
	if (used != r->used_pages * REGION_PAGE || n != r->nsegments)
		PROBLEM(ck, "region counters say %" PRIu64 " bytes in %u "
			    "blocks, the slots hold %" PRIu64 " in %" PRIu64,
			r->used_pages * REGION_PAGE, r->nsegments, used, n);
	ck->region_slots += n;
}

/*
 * msharefs: every placed slot is mapped in its own window of the region,
 * and nothing else is (a window left behind by a reap, or an UNMAP of the
 * wrong window, shows here).  Read from the emulation's shared state.
 */
static void check_placed(struct check *ck)
{
	const struct placement *p = &ck->inst->place;
	struct ctl *c = &ck->inst->c;
	int placed = 0;

	if (!fake_mshare || !p->recorded)
		return;
	if (!p->active)
		PROBLEM(ck, "the msharefs region is not mapped: %s", p->reason);
	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		if (!ck->placed[s])
			continue;
		placed++;
		ck->placed_slots++;
		if (fake_mshare_mapped_at(p->region.path,
					  (uint64_t)s * p->window) != 1)
			PROBLEM(ck, "placed slot %u is not mapped in its window",
				s);
	}
	if (fake_mshare_mappings() != placed)
		PROBLEM(ck, "the msharefs region maps %d objects for %d placed "
			    "slots",
			fake_mshare_mappings(), placed);
	if (fake_mshare->errors)
		PROBLEM(ck, "the msharefs emulation saw %u error(s): %s",
			fake_mshare->errors, fake_mshare->error);
	if (fake_mshare_stray_files() != 0)
		PROBLEM(ck, "the msharefs emulation has %d file(s) no mapping "
			    "accounts for",
			fake_mshare_stray_files());
}

static void check_slots(struct check *ck)
{
	struct ctl *c = &ck->inst->c;

	for (uint32_t s = 0; s < c->hdr->max_segments; s++) {
		struct ctl_slot *slot = &c->slots[s];
		dynshm_impl_map *map = NULL;
		int rc;

		ck->slot_key[s][0] = '\0';
		ck->in_region[s] = slot->state != SLOT_FREE &&
				   slot->backend == CTL_BACKEND_REGION;
		ck->placed[s] = slot->state != SLOT_FREE &&
				placement_covers(ck->inst, slot->backend,
						 slot->size);
		if (slot->state == SLOT_FREE)
			continue;
		if (slot->state != SLOT_ACTIVE)
			PROBLEM(ck, "slot %u left in state %u at rest", s,
				slot->state);
		if (slot->refcount == 0 && !slot->pinned) {
			PROBLEM(ck, "slot %u: nobody holds it, not pinned: "
				    "leaked", s);
			ck->leaks++;
		}
		if (ck->in_region[s]) {
			/* no OS object of its own to demand */
			if (slot->state == SLOT_ACTIVE && slot->name[0])
				check_named_stamp(ck, s,
						  (char *)ck->inst->region.base +
							  slot->region_offset);
			continue;
		}
		object_key(ck->space, slot->handle, ck->slot_key[s]);
		rc = dynshm_impl_attach(ck->space, slot->handle, &map);
		if (rc != 0) {
			PROBLEM(ck, "slot %u (%s): its OS object is "
				    "missing: %d %s",
				s, ck->slot_key[s], rc, dynshm_last_error());
			continue;
		}
		if (slot->state == SLOT_ACTIVE && slot->name[0])
			check_named_stamp(ck, s, dynshm_impl_map_address(map));
		dynshm_impl_detach(map);
	}
	check_names(ck);
	check_region(ck);
	check_placed(ck);
}

static bool recorded(struct check *ck, const char *key)
{
	if (strcmp(key, ck->ctl_key) == 0 ||
	    strcmp(key, ck->region_key) == 0)
		return true;
	for (uint32_t s = 0; s < ck->inst->c.hdr->max_segments; s++)
		if (strcmp(key, ck->slot_key[s]) == 0)
			return true;
	return false;
}

/* Every OS object of the instance, read from the OS, not the library. */
static void check_objects(struct check *ck, const struct storm *st)
{
	char prefix[40], key[KEY_LEN];
	struct dirent *de;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "dynshm.%016" PRIx64 ".",
		 ck->inst->id);
	if (st->be->type == DYNSHM_IMPL_SYSV || ck->region_key[0]) {
		/* the region is a SysV segment whatever the backend */
		char line[512];
		bool region_seen = false;
		FILE *f = fopen("/proc/sysvipc/shm", "re");

		while (f && fgets(line, sizeof(line), f)) {
			int k;
			unsigned uid;

			if (sscanf(line, "%d %*d %*o %*u %*d %*d %*u %u", &k,
				   &uid) != 2 || uid != geteuid() ||
			    !((unsigned)k & 0x40000000u) ||
			    ((unsigned)k >> 18 & 0xfff) != TEST_TAG)
				continue;
			snprintf(key, sizeof(key), "SYSV%08x", (unsigned)k);
			region_seen = region_seen ||
				      strcmp(key, ck->region_key) == 0;
			if (!recorded(ck, key)) {
				PROBLEM(ck, "SysV segment %s has no slot", key);
				ck->leaks++;
			}
		}
		if (f)
			fclose(f);
		if (ck->region_key[0] && !region_seen)
			PROBLEM(ck, "the region's SysV segment %s is missing",
				ck->region_key);
		if (st->be->type == DYNSHM_IMPL_SYSV)
			return;
	}
	d = opendir(st->be->type == DYNSHM_IMPL_POSIX ? "/dev/shm" : st->dir);
	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    strstr(de->d_name, "fake-mshare-"))
			continue; /* the emulated region's hold: checked above */
		if (!recorded(ck, de->d_name)) {
			PROBLEM(ck, "object %s has no slot", de->d_name);
			ck->leaks++;
		}
	}
	if (d)
		closedir(d);
}

/* The live worker whose membership entry p (with its gen) is, or -1. */
static int worker_of(const struct storm *st, const struct ctl *c, uint32_t p)
{
	uint64_t token = ctl_token(p, c->procs[p].gen);

	for (int i = 0; i < MAX_WORKERS; i++)
		if (st->sh->pids[i] > 0 && st->sh->token[i] == token)
			return i;
	return -1;
}

/* Whose /proc/<id>/maps shows worker i's mappings. */
static pid_t maps_of(const struct storm *st, int i)
{
	return st->sh->maps_tid[i] ? st->sh->maps_tid[i] : st->sh->pids[i];
}

/* Every entry of the table has its key's value, and no key is twice. */
struct table_walk {
	uint64_t keys[MAX_WORKERS * 512 + 1];
	uint64_t n, bad;
};

static int table_entry(const void *key, size_t len, void *value, void *arg)
{
	struct table_walk *w = arg;
	uint64_t k, v;

	memcpy(&k, key, 8);
	memcpy(&v, value, 8);
	if (len != 8 || v != TABLE_VALUE(k) ||
	    w->n == sizeof(w->keys) / sizeof(w->keys[0]))
		w->bad++;
	else
		w->keys[w->n++] = k;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void check_table(struct check *ck, dynshm_area *a)
{
	static struct table_walk w;
	dynshm_segment *seg;
	dynshm_hash *t;
	uint64_t tp, count;

	if (dynshm_attach_named(ck->inst, TABLE_NAME, &seg) != 0)
		return;
	tp = __atomic_load_n((uint64_t *)dynshm_segment_address(seg),
			     __ATOMIC_ACQUIRE);
	dynshm_detach(seg);
	if (tp == 0)
		return;
	if (dynshm_hash_attach(a, tp, &t) != 0) {
		PROBLEM(ck, "cannot attach the table: %s",
			dynshm_last_error());
		return;
	}
	w.n = w.bad = 0;
	if (dynshm_hash_foreach(t, table_entry, &w) != 0 ||
	    dynshm_hash_count(t, &count) != 0)
		PROBLEM(ck, "table walk: %s", dynshm_last_error());
	else if (w.bad || count != w.n)
		PROBLEM(ck, "table: %" PRIu64 " wrong entries, count %" PRIu64
			    " for %" PRIu64 " walked", w.bad, count, w.n);
	qsort(w.keys, w.n, sizeof(w.keys[0]), cmp_u64);
	for (uint64_t i = 1; i < w.n; i++)
		if (w.keys[i] == w.keys[i - 1])
			PROBLEM(ck, "table key %016" PRIx64 " is there twice",
				w.keys[i]);
	dynshm_hash_detach(t);
}

/*
 * The shared area, if a worker made it: its statistics (which repair what
 * killed workers left, under its locks) must succeed and add up.
 */
static void check_area(struct check *ck)
{
	dynshm_segment *seg;
	dynshm_area_stats as;
	dynshm_area *a;
	int rc;

	if (dynshm_attach_named(ck->inst, AREA_NAME, &seg) != 0)
		return; /* none yet (or being made) */
	rc = dynshm_area_attach(ck->inst, dynshm_segment_handle(seg), &a);
	dynshm_detach(seg);
	if (rc != 0) {
		PROBLEM(ck, "cannot attach the area: %s", dynshm_last_error());
		return;
	}
	check_table(ck, a);
	rc = dynshm_area_stats_get(a, &as);
	if (rc != 0)
		PROBLEM(ck, "area statistics: %s", dynshm_last_error());
	else if (as.total_bytes != as.used_bytes + as.free_bytes +
					   as.overhead_bytes ||
		 as.overhead_bytes > as.total_bytes / 2)
		PROBLEM(ck, "area bytes do not add up: total %" PRIu64
			    " used %" PRIu64 " free %" PRIu64 " overhead %"
			    PRIu64, as.total_bytes, as.used_bytes,
			as.free_bytes, as.overhead_bytes);
	dynshm_area_detach(a);
}

static int checker_main(struct storm *st)
{
	static char slot_keys[1024][KEY_LEN];
	static bool in_region[1024], placed[1024];
	const struct region_ctl *r;
	dynshm_instance_info info;
	struct check ck;
	struct ctl *c;

	memset(&ck, 0, sizeof(ck));
	ck.slot_key = slot_keys;
	ck.in_region = in_region;
	ck.placed = placed;
	if (dynshm_instance_open(st->dir, st->cfg, DYNSHM_OPEN_EXISTING, &ck.inst)) {
		fprintf(stderr, "kill_storm: check: cannot open: %s\n",
			dynshm_last_error());
		return 1;
	}
	c = &ck.inst->c;
	if (c->hdr->max_segments > 1024 ||
	    space_for(ck.inst, st->be->type, &ck.space) != 0) {
		fprintf(stderr, "kill_storm: check: %s\n", dynshm_last_error());
		return 1;
	}
	object_key(ck.space, CTL_HANDLE, ck.ctl_key);
	r = region_of(c);
	if (r)
		snprintf(ck.region_key, sizeof(ck.region_key), "SYSV%08x",
			 (unsigned)r->key);
	if (st->region && (!r || !ck.inst->region.base))
		PROBLEM(&ck, "the instance has no region, or it is not mapped");
	check_lock_free(&ck);
	if (ctl_lock(ck.inst) != 0) {
		fprintf(stderr, "kill_storm: check: %s\n", dynshm_last_error());
		return 1;
	}
	check_slots(&ck);
	for (uint32_t p = 0; p < c->hdr->max_processes; p++) {
		int w;

		if (c->procs[p].state == PROC_FORK)
			PROBLEM(&ck, "process entry %u is a fork's: no worker "
				    "forks", p);
		if (c->procs[p].state != PROC_LIVE || p == ck.inst->me)
			continue;
		w = worker_of(st, c, p);
		if (!live_held(ck.inst, p))
			PROBLEM(&ck, "process entry %u (pid %d) is dead "
				    "after a reap", p, c->procs[p].pid);
		else if (w < 0 && c->procs[p].pid != st->supervisor)
			PROBLEM(&ck, "process entry %u (pid %d) is no worker",
				p, c->procs[p].pid);
		else /* a worker, or the msharefs storms' supervisor */
			check_process(&ck, p, w < 0 ? st->supervisor
						   : maps_of(st, w));
	}
	/* a live worker that is in no entry maps nothing of ours */
	for (int i = 0; i < MAX_WORKERS; i++) {
		bool joined = false;

		if (st->sh->pids[i] <= 0)
			continue;
		for (uint32_t p = 0; p < c->hdr->max_processes; p++)
			joined = joined || (c->procs[p].state == PROC_LIVE &&
					    worker_of(st, c, p) == i);
		if (!joined)
			check_process(&ck, CTL_NONE, maps_of(st, i));
	}
	check_objects(&ck, st);
	ctl_unlock(ck.inst);
	check_area(&ck);
	if (dynshm_instance_info_get(ck.inst, &info, sizeof(info)) == 0) {
		st->sh->repairs = info.lock_repairs;
		st->sh->reaped = info.processes_reaped;
	}
	st->sh->leaks += ck.leaks;
	st->sh->in_region += ck.region_slots;
	st->sh->placed += ck.placed_slots;
	dynshm_instance_close(ck.inst);
	return ck.problems ? 1 : 0;
}

/* ---- the driver ------------------------------------------------------------ */

static struct storm *watched; /* for the watchdog */
static pid_t checker_pid;

static void kill_all(struct storm *st)
{
	for (int i = 0; i < MAX_WORKERS; i++)
		if (st->w[i].pid > 0)
			kill(st->w[i].pid, SIGKILL);
}

static void on_alarm(int sig)
{
	static const char msg[] = "kill_storm: HANG: a process did not "
				  "finish its round or check; probably stuck "
				  "on the control lock\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	if (watched)
		kill_all(watched);
	if (checker_pid > 0)
		kill(checker_pid, SIGKILL);
	_exit(1);
}

/* In a new child: drop every descriptor only the driver may hold. */
static void close_driver_fds(struct storm *st)
{
	signal(SIGALRM, SIG_DFL);
	alarm(0);
	if (st->supervisor_go >= 0)
		close(st->supervisor_go);
	for (int i = 0; i < MAX_WORKERS; i++) {
		if (st->w[i].go >= 0)
			close(st->w[i].go);
		if (st->w[i].done >= 0)
			close(st->w[i].done);
	}
}

/*
 * The msharefs storms' supervisor: creates the instance with the region
 * (DYNSHM_OPEN_SUPERVISOR, mshare = on), hands back its id, and stays
 * until the driver closes its pipe - never killed, as a postmaster.
 */
static int start_supervisor(struct storm *st)
{
	int go[2], ready[2];
	char c = 0;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dynshm_instance *inst = NULL;
		dynshm_instance_info info;

		close(go[1]);
		close(ready[0]);
		signal(SIGALRM, SIG_DFL);
		if (dynshm_instance_open(st->dir, st->cfg, DYNSHM_OPEN_SUPERVISOR,
				      &inst) != 0 ||
		    dynshm_instance_info_get(inst, &info, sizeof(info)) != 0 ||
		    !info.mshare_active) {
			fprintf(stderr, "kill_storm: supervisor: %s\n",
				dynshm_last_error());
			_exit(1);
		}
		st->sh->repairs = info.instance_id; /* handed back */
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		dynshm_instance_close(inst); /* destroyed meanwhile: fine */
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	st->supervisor = pid;
	st->supervisor_go = go[1];
	while (read(ready[0], &c, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	return c == 'r' ? 0 : -1;
}

static pid_t fork_child(struct storm *st, int (*fn)(struct storm *))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close_driver_fds(st);
		_exit(fn(st));
	}
	return pid;
}

static int run_child(struct storm *st, int (*fn)(struct storm *))
{
	int status;

	checker_pid = fork_child(st, fn);
	if (checker_pid < 0)
		return -1;
	status = test_wait(checker_pid);
	checker_pid = 0;
	return status;
}

static void end_worker(struct storm *st, int i)
{
	close(st->w[i].go);
	close(st->w[i].done);
	st->w[i].go = st->w[i].done = -1;
	st->w[i].pid = 0;
	st->sh->pids[i] = 0;
}

/*
 * Kinds of worker (issue 12: none may be taken for dead while it runs):
 * every fourth one, from the third, runs its rounds in a second thread
 * after its leader thread called pthread_exit (/proc/<pid>/stat says Z);
 * every fourth from the second (unless --pid-namespaces no, or where
 * namespaces are not permitted) runs in a PID namespace of its own with
 * its own /proc (as `unshare -p -f --mount-proc` makes a container), so
 * that its pid in the instance is 1 and the others' pids mean nothing to
 * it.  They share the control lock with the others: its holder is named
 * by a lock seat, not a thread id (src/liveness.c).
 */
enum worker_kind { PLAIN, PID_NS, LEADER_EXIT };

static bool pid_namespaces = true; /* --pid-namespaces */

/*
 * The msharefs storms have them too.  They were left out for a while:
 * with them about one msharefs storm in ten failed, because the
 * emulation's state lock was a robust mutex, whose futex word names its
 * holder by thread id - every namespaced worker is thread 1 of its own
 * namespace, and one killed while waiting made the kernel take another
 * namespace's thread 1, the live holder, for dead (tests/fake_mshare.c,
 * lock_state; docs/mshare.md).  Its lock and its references to objects
 * no longer depend on pids.
 */
static enum worker_kind kind_of(const struct storm *st, int i)
{
	(void)st;
	if (i % 4 == 1 && pid_namespaces)
		return PID_NS;
	return i % 4 == 2 ? LEADER_EXIT : PLAIN;
}

struct thread_worker {
	struct storm *st;
	int index, go, done;
};

static void *worker_thread(void *arg)
{
	struct thread_worker *tw = arg;

	__atomic_store_n(&tw->st->sh->maps_tid[tw->index], (int32_t)gettid(),
			 __ATOMIC_RELEASE);
	_exit(worker_main(tw->st, tw->index, tw->go, tw->done));
}

/* In the new worker process: become the kind it is, then work. */
static int worker_entry(struct storm *st, int i, int go, int done)
{
	static struct thread_worker tw;
	pthread_t t;

	if (kind_of(st, i) == PID_NS) {
		/* our own /proc, in our own mount namespace (best effort) */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
			mount("proc", "/proc", "proc",
			      MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	}
	if (kind_of(st, i) != LEADER_EXIT)
		return worker_main(st, i, go, done);
	tw = (struct thread_worker){ st, i, go, done };
	if (pthread_create(&t, NULL, worker_thread, &tw) != 0)
		return 1;
	pthread_exit(NULL);
}

/*
 * A new process in new PID and mount namespaces: fork, unshare, fork
 * again (the grandchild is pid 1 there; a fork, not a raw clone, so that
 * libc knows its own thread id), and let the middle one exit: the driver
 * is a subreaper (main), so the grandchild becomes its child.  Returns
 * as fork does, or -2 when namespaces are not permitted.
 */
static pid_t fork_in_namespace(void)
{
	pid_t mid, w = -2;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	mid = fork();
	if (mid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (mid == 0) {
		close(p[0]);
		if (unshare(CLONE_NEWPID | CLONE_NEWNS) == 0) {
			w = fork();
			if (w == 0) {
				close(p[1]);
				return 0; /* the worker */
			}
		}
		if (write(p[1], &w, sizeof(w)) != (ssize_t)sizeof(w))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &w, sizeof(w)) != (ssize_t)sizeof(w))
		w = -1;
	close(p[0]);
	test_wait(mid);
	return w;
}

/* fork, or for a PID_NS worker into new PID and mount namespaces. */
static pid_t fork_worker(struct storm *st, int i)
{
	if (kind_of(st, i) == PID_NS && !st->n.not_ns) {
		pid_t pid = fork_in_namespace();

		if (pid != -2) {
			if (pid > 0)
				st->n.ns_workers++;
			return pid;
		}
		st->n.not_ns = 1; /* not root, or no namespaces: plain ones */
	}
	if (kind_of(st, i) == LEADER_EXIT)
		st->n.leader_exit_workers++;
	return fork();
}

/* Start worker i and wait until it has joined: 0, or -1. */
static int start_worker(struct storm *st, int i)
{
	int go[2], done[2];
	pid_t pid;
	char c;

	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
		return -1;
	st->rng ^= next_random(&st->rng);
	st->sh->maps_tid[i] = 0;
	st->sh->token[i] = 0;
	fflush(NULL);
	pid = fork_worker(st, i);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close_driver_fds(st);
		close(go[1]);
		close(done[0]);
		_exit(worker_entry(st, i, go[0], done[1]));
	}
	close(go[0]);
	close(done[1]);
	st->w[i].pid = pid;
	st->w[i].go = go[1];
	st->w[i].done = done[0];
	st->sh->pids[i] = pid;
	if (read_byte(done[0], &c) != 1 || c != 'r')
		return -1;
	return 0;
}

/* Reap worker i, which died; classify how. */
static void bury_worker(struct storm *st, int i)
{
	int status = test_wait(st->w[i].pid);

	/*
	 * A worker in a PID namespace of its own is that namespace's init:
	 * its death killed its queue partner too (and the kernel waited for
	 * it before the worker could be waited for), which so never got to
	 * say it left.
	 */
	if (kind_of(st, i) == PID_NS && !st->n.not_ns)
		__atomic_store_n(&st->sh->partners[i], 0, __ATOMIC_RELEASE);

	if (st->w[i].killed) {
		/* counted when killed */
	} else if (status == 128 + SIGKILL) {
		st->n.hook_kills++; /* killed itself at a hook point */
		st->n.kills++;
	} else {
		fprintf(stderr, "kill_storm: %s: worker %d ended with status "
				"%d\n",
			st->label, (int)st->w[i].pid, status);
		st->n.failures++;
	}
	end_worker(st, i);
}

static void kill_some(struct storm *st, uint64_t budget)
{
	unsigned nkill = below(&st->rng, 4); /* 0 to 3 this round */
	struct timespec delay = { 0, 0 };

	for (unsigned k = 0; k < nkill && st->n.kills < budget; k++) {
		int i = (int)below(&st->rng, (unsigned)st->nworkers);

		delay.tv_nsec = (long)below(&st->rng, 400) * 1000;
		nanosleep(&delay, NULL);
		if (st->w[i].killed || st->w[i].pid <= 0)
			continue;
		if (__atomic_load_n(&st->sh->busy[i], __ATOMIC_ACQUIRE))
			st->n.kills_busy++;
		kill(st->w[i].pid, SIGKILL);
		st->w[i].killed = true;
		st->n.kills++;
	}
}

/* Wait until every worker has parked or died; 0, or -1 on a broken pipe. */
static int settle(struct storm *st)
{
	for (;;) {
		struct pollfd pfd[MAX_WORKERS];
		int map[MAX_WORKERS], n = 0;

		for (int i = 0; i < st->nworkers; i++) {
			if (st->w[i].pid <= 0 || st->w[i].finished)
				continue;
			pfd[n].fd = st->w[i].done;
			pfd[n].events = POLLIN;
			map[n++] = i;
		}
		if (n == 0)
			return 0;
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (int j = 0; j < n; j++) {
			int i = map[j];
			char c;

			if (!pfd[j].revents)
				continue;
			if (read_byte(st->w[i].done, &c) == 1)
				st->w[i].finished = true;
			else
				bury_worker(st, i);
		}
	}
}

/*
 * Wait until every queue partner has left: a partner whose worker was
 * killed must notice by itself (the watchdog turns a hang into a failure).
 * Before a check, which would otherwise see it leaving half-way.
 */
static void wait_partners(struct storm *st)
{
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < MAX_WORKERS; i++)
		while (__atomic_load_n(&st->sh->partners[i],
				       __ATOMIC_ACQUIRE) != 0)
			nanosleep(&ms, NULL);
}

static int round_once(struct storm *st, uint64_t budget)
{
	int status;

	for (int i = 0; i < st->nworkers; i++) {
		st->w[i].killed = st->w[i].finished = false;
		if (st->w[i].pid <= 0 && start_worker(st, i) < 0) {
			fprintf(stderr, "kill_storm: cannot start a worker\n");
			return -1;
		}
		if (!write_byte(st->w[i].go, 'g'))
			return -1;
	}
	alarm(HANG_SECONDS);
	kill_some(st, budget);
	if (settle(st) < 0)
		return -1;
	/* killed after parking: still to be buried */
	for (int i = 0; i < st->nworkers; i++)
		if (st->w[i].pid > 0 && st->w[i].killed)
			bury_worker(st, i);
	wait_partners(st);
	/* replace the dead before the check, so it sees them joined */
	for (int i = 0; i < st->nworkers; i++)
		if (st->w[i].pid <= 0 && start_worker(st, i) < 0)
			return -1;
	status = run_child(st, checker_main);
	alarm(0);
	st->n.rounds++;
	st->n.checks++;
	if (status != 0) {
		fprintf(stderr, "kill_storm: %s: check after round %" PRIu64
				" failed (status %d)\n",
			st->label, st->n.rounds, status);
		st->n.failures++;
	}
	return 0;
}

/* ---- setup and the end ------------------------------------------------- */

static int create_instance(struct storm *st)
{
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	int rc = dynshm_instance_open(st->dir, st->cfg, 0, &inst);

	if (rc == 0)
		rc = dynshm_instance_info_get(inst, &info, sizeof(info));
	if (rc != 0) {
		fprintf(stderr, "kill_storm: cannot create a %s instance: %s\n",
			st->label, dynshm_last_error());
		return 1;
	}
	st->sh->published[0] = 0;
	st->sh->repairs = info.instance_id; /* handed back through here */
	return dynshm_instance_close(inst) == 0 ? 0 : 1;
}

/* Reset (which removes even pinned segments), then destroy. */
static int reset_and_destroy(struct storm *st)
{
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;

	if (dynshm_instance_open(st->dir, st->cfg_off ? st->cfg_off : st->cfg,
			      DYNSHM_OPEN_RESET, &inst) != 0 ||
	    dynshm_instance_info_get(inst, &info, sizeof(info)) != 0) {
		fprintf(stderr, "kill_storm: reset: %s\n", dynshm_last_error());
		return 1;
	}
	if (info.segments != 0 || info.processes != 1 ||
	    info.region_used != 0 || info.region_segments != 0) {
		fprintf(stderr, "kill_storm: after reset: %u segments, %u "
				"processes, %" PRIu64 " region bytes in use\n",
			info.segments, info.processes, info.region_used);
		return 1;
	}
	if (dynshm_instance_destroy(inst) != 0) {
		fprintf(stderr, "kill_storm: destroy: %s\n", dynshm_last_error());
		return 1;
	}
	return 0;
}

/* SysV segments of ours with the test tag (sysv keys name no instance). */
static int count_sysv_tagged(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/sysvipc/shm", "re");

	while (f && fgets(line, sizeof(line), f)) {
		int k;
		unsigned uid;

		if (sscanf(line, "%d %*d %*o %*u %*d %*d %*u %u", &k, &uid) == 2 &&
		    uid == geteuid() && ((unsigned)k & 0x40000000u) &&
		    ((unsigned)k >> 18 & 0xfff) == TEST_TAG)
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

/*
 * What is left of this storm's instance: objects with its prefix in
 * /dev/shm, its directory (mmap files included), and SysV segments with
 * the test tag beyond those there before the storm.  Other programs'
 * leftovers are not counted: the suite's leftovers test finds those.
 */
static int count_remains(const struct storm *st)
{
	char prefix[40];
	struct dirent *de;
	struct stat sb;
	int n = 0, sysv = count_sysv_tagged() - st->sysv_before;
	DIR *d = opendir("/dev/shm");

	snprintf(prefix, sizeof(prefix), "dynshm.%016" PRIx64 ".", st->id);
	while (d && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			fprintf(stderr, "kill_storm: left: /dev/shm/%s\n",
				de->d_name);
			n++;
		}
	if (d)
		closedir(d);
	if (stat(st->dir, &sb) == 0) {
		fprintf(stderr, "kill_storm: left: directory %s\n", st->dir);
		n++;
	}
	if (sysv > 0)
		fprintf(stderr, "kill_storm: left: %d SysV segment(s)\n", sysv);
	return n + (sysv > 0 ? sysv : 0);
}

static int finish(struct storm *st)
{
	int status;

	/* everybody dies at once */
	for (int i = 0; i < st->nworkers; i++) {
		if (st->w[i].pid <= 0)
			continue;
		kill(st->w[i].pid, SIGKILL);
		test_wait(st->w[i].pid);
		end_worker(st, i);
		st->n.kills++;
	}
	alarm(HANG_SECONDS);
	wait_partners(st);
	status = run_child(st, checker_main);
	st->n.checks++;
	if (status != 0)
		st->n.failures++;
	st->n.repairs = st->sh->repairs;
	st->n.reaped = st->sh->reaped;
	if (run_child(st, reset_and_destroy) != 0)
		st->n.failures++;
	if (st->supervisor > 0) {
		/* it leaves; its thread's exit tears the region down */
		close(st->supervisor_go);
		st->supervisor_go = -1;
		if (test_wait(st->supervisor) != 0)
			st->n.failures++;
		st->supervisor = 0;
		/* destroyed, and its last holder gone: the region is evicted
		 * (the helper sees the last holder's exit) and nothing of it
		 * is left */
		for (int i = 0; i < 5000 && fake_mshare_live_regions() != 0; i++)
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		if (fake_mshare_live_regions() != 0 ||
		    fake_mshare_mappings() != 0 || fake_mshare->errors ||
		    fake_mshare_stray_files() != 0) {
			fprintf(stderr, "kill_storm: %s: the msharefs emulation "
					"still has %d region(s) mapping %d "
					"object(s), %d stray file(s); %u "
					"error(s) %s\n",
				st->label, fake_mshare_live_regions(),
				fake_mshare_mappings(),
				fake_mshare_stray_files(), fake_mshare->errors,
				fake_mshare->error);
			st->n.failures++;
		}
		st->n.revoked = fake_mshare->revoked;
		st->n.faults_mapped = fake_mshare->faults_mapped;
		st->n.emu_repairs = fake_mshare->repairs;
	}
	alarm(0);
	st->n.leaks = st->sh->leaks + (uint64_t)count_remains(st);
	return 0;
}

static bool backend_usable(const struct backend *be)
{
	int id;

	if (be->type != DYNSHM_IMPL_SYSV)
		return true;
	id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id < 0)
		return false;
	shmctl(id, IPC_RMID, NULL);
	return true;
}

static void print_counts(const char *what, const struct counts *n)
{
	printf("kill_storm: %-12s rounds %" PRIu64 ", operations %" PRIu64
	       ", kills %" PRIu64 " (driver %" PRIu64 " of which %" PRIu64
	       " mid-round, hook %" PRIu64 "), lock repairs %" PRIu64
	       ", processes reaped %" PRIu64 ", checks %" PRIu64
	       ", failures %" PRIu64 ", leaks %" PRIu64 "\n",
	       what, n->rounds, n->ops, n->kills, n->kills - n->hook_kills,
	       n->kills_busy, n->hook_kills, n->repairs, n->reaped, n->checks,
	       n->failures, n->leaks);
	printf("kill_storm: %-12s named get-or-create: %" PRIu64 " created, "
	       "%" PRIu64 " found; region segments seen by checks %" PRIu64
	       ", placed (msharefs) %" PRIu64 "\n",
	       what, n->named_created, n->named_found, n->in_region, n->placed);
	printf("kill_storm: %-12s queue pairs %" PRIu64 ", messages checked %"
	       PRIu64 ", partners that saw their peer go %" PRIu64 "\n",
	       what, n->queue_pairs, n->queue_msgs, n->queue_peer_gone);
	if (n->faults_mapped)
		printf("kill_storm: %-12s msharefs emulation: windows mapped on "
		       "first access %" PRIu64 ", mappings revoked in every "
		       "process %" PRIu64 ", calls finished for a killed "
		       "caller %" PRIu64 "\n",
		       what, n->faults_mapped, n->revoked, n->emu_repairs);
	printf("kill_storm: %-12s workers in a PID namespace of their own "
	       "%" PRIu64 "%s, workers whose leader thread exited %" PRIu64
	       "\n",
	       what, n->ns_workers,
	       n->not_ns ? " (namespaces not permitted here)" : "",
	       n->leader_exit_workers);
	printf("kill_storm: %-12s hook kills inside the lock:", what);
	for (size_t i = 0; i < N_POINTS + 1; i++) {
		if (i == N_IN_LOCK)
			printf("; outside:");
		printf(" %s %" PRIu64, i < N_POINTS ? points[i] : "other",
		       n->at[i]);
	}
	printf("\nkill_storm: %-12s hook points reached (armed or not):",
	       what);
	for (size_t i = 0; i < N_POINTS + 1; i++)
		printf(" %s %" PRIu64, i < N_POINTS ? points[i] : "other",
		       n->reached[i]);
	printf("\n");
	fflush(stdout);
}

/* Placement on, against a fake msharefs in a directory of its own. */
static int mshare_setup(struct storm *st)
{
	st->mount = test_make_dir();
	if (!st->mount || fake_mshare_install(st->mount, 3, 2u << 20) != 0 ||
	    dynshm_config_set(st->cfg, "mshare", "on") != 0 ||
	    dynshm_config_set(st->cfg, "mshare_path", st->mount) != 0 ||
	    dynshm_config_new(&st->cfg_off) != 0 ||
	    dynshm_config_set(st->cfg_off, "dynamic_shared_memory_type",
			   st->be->name) != 0 ||
	    dynshm_config_set(st->cfg_off, "max_segments", MAX_SEGMENTS) != 0 ||
	    dynshm_config_set(st->cfg_off, "max_processes", MAX_PROCESSES) != 0 ||
	    dynshm_config_set(st->cfg_off, "mshare", "off") != 0) {
		fprintf(stderr, "kill_storm: mshare setup: %s\n",
			dynshm_last_error());
		return -1;
	}
	return 0;
}

static int storm_backend(struct storm *st, uint64_t budget)
{
	int rc = 0;

	st->dir = test_make_dir();
	if (!st->dir || dynshm_config_new(&st->cfg) != 0 ||
	    dynshm_config_set(st->cfg, "dynamic_shared_memory_type",
			   st->be->name) != 0 ||
	    dynshm_config_set(st->cfg, "max_segments", MAX_SEGMENTS) != 0 ||
	    dynshm_config_set(st->cfg, "max_processes", MAX_PROCESSES) != 0 ||
	    (st->region &&
	     (dynshm_config_set(st->cfg, "min_dynamic_shared_memory", "16MB") ||
	      dynshm_config_set(st->cfg, "huge_pages", "off")))) {
		fprintf(stderr, "kill_storm: setup: %s\n", strerror(errno));
		return -1;
	}
	for (int i = 0; i < MAX_WORKERS; i++)
		st->w[i].go = st->w[i].done = -1;
	st->supervisor_go = -1;
	if (st->mshare && mshare_setup(st) != 0)
		return -1;
	st->sysv_before = count_sysv_tagged();
	if (st->mshare ? start_supervisor(st) != 0
		       : run_child(st, create_instance) != 0)
		rc = -1;
	st->id = st->sh->repairs;
	st->sh->repairs = 0;
	watched = st;
	while (rc == 0 && st->n.kills < budget)
		rc = round_once(st, budget);
	if (rc < 0) {
		st->n.failures++;
		kill_all(st);
	}
	finish(st);
	st->n.ops = st->sh->ops;
	st->n.named_created = st->sh->named_created;
	st->n.named_found = st->sh->named_found;
	st->n.in_region = st->sh->in_region;
	st->n.placed = st->sh->placed;
	st->n.queue_pairs = st->sh->queue_pairs;
	st->n.queue_msgs = st->sh->queue_msgs;
	st->n.queue_peer_gone = st->sh->queue_peer_gone;
	st->n.failures += st->sh->queue_bad;
	memcpy(st->n.at, st->sh->at, sizeof(st->n.at));
	memcpy(st->n.reached, st->sh->reached, sizeof(st->n.reached));
	watched = NULL;
	if (st->dir) {
		struct stat sb;

		if (stat(st->dir, &sb) == 0)
			test_remove_dir(st->dir);
		else
			free(st->dir);
	}
	dynshm_config_free(st->cfg);
	if (st->mshare) {
		fake_mshare_uninstall();
		test_remove_dir(st->mount);
		dynshm_config_free(st->cfg_off);
	}
	return 0;
}

static void add_counts(struct counts *to, const struct counts *n)
{
	to->rounds += n->rounds;
	to->ops += n->ops;
	to->kills += n->kills;
	to->kills_busy += n->kills_busy;
	to->hook_kills += n->hook_kills;
	to->checks += n->checks;
	to->repairs += n->repairs;
	to->reaped += n->reaped;
	to->leaks += n->leaks;
	to->failures += n->failures;
	to->named_created += n->named_created;
	to->named_found += n->named_found;
	to->in_region += n->in_region;
	to->placed += n->placed;
	to->queue_pairs += n->queue_pairs;
	to->queue_msgs += n->queue_msgs;
	to->queue_peer_gone += n->queue_peer_gone;
	to->revoked += n->revoked;
	to->faults_mapped += n->faults_mapped;
	to->emu_repairs += n->emu_repairs;
	to->ns_workers += n->ns_workers;
	to->leader_exit_workers += n->leader_exit_workers;
	to->not_ns += n->not_ns;
	for (size_t i = 0; i < N_POINTS + 1; i++) {
		to->at[i] += n->at[i];
		to->reached[i] += n->reached[i];
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: kill_storm [--kills N] [--workers N] "
			"[--backend posix|sysv|mmap] [--region no|yes|both] "
			"[--mshare no|yes] [--seed N] [--pid-namespaces no|yes]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *env = getenv("KILL_STORM_KILLS"), *only = NULL;
	const char *region = "both", *mshare = "yes";
	uint64_t kills = env ? strtoull(env, NULL, 10) : 300, seed = 0;
	int workers = 6, ran = 0, variants;
	struct counts total;

	/* PID_NS workers are grandchildren: adopt them (fork_in_namespace) */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--kills") == 0)
			kills = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--workers") == 0)
			workers = atoi(argv[++i]);
		else if (strcmp(argv[i], "--backend") == 0)
			only = argv[++i];
		else if (strcmp(argv[i], "--region") == 0)
			region = argv[++i];
		else if (strcmp(argv[i], "--mshare") == 0)
			mshare = argv[++i];
		else if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--pid-namespaces") == 0)
			pid_namespaces = strcmp(argv[++i], "yes") == 0;
		else
			usage();
	}
	if (workers < 1 || workers > MAX_WORKERS || kills == 0 ||
	    (strcmp(region, "no") && strcmp(region, "yes") &&
	     strcmp(region, "both")) ||
	    (strcmp(mshare, "no") && strcmp(mshare, "yes")))
		usage();
	if (!DYNSHM_HAVE_MSHARE)
		mshare = "no";
	/* storms to share the kills: backends times region variants, and
	 * the backends that can be placed once more with msharefs */
	variants = (only ? 1 : (int)N_BACKENDS) *
			   (strcmp(region, "both") == 0 ? 2 : 1) +
		   (strcmp(mshare, "yes") == 0 ? (only ? 1 : 2) : 0);
	if (seed == 0 && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL);
	printf("kill_storm: seed 0x%" PRIx64 ", %d workers, %" PRIu64
	       " kills in all\n",
	       seed, workers, kills);
	dynshm_test_instance_tag = TEST_TAG;
	signal(SIGALRM, on_alarm);
	memset(&total, 0, sizeof(total));
	for (size_t v = 0; v < 3 * N_BACKENDS; v++) {
		const struct backend *be = &backends[v % N_BACKENDS];
		bool with_region = v >= N_BACKENDS && v < 2 * N_BACKENDS;
		bool with_mshare = v >= 2 * N_BACKENDS;
		struct storm st;

		if ((only && strcmp(only, be->name) != 0) ||
		    (!with_mshare &&
		     strcmp(region, with_region ? "no" : "yes") == 0))
			continue;
		/* only objects with a descriptor can be placed */
		if (with_mshare && (strcmp(mshare, "yes") != 0 ||
				    be->type == DYNSHM_IMPL_SYSV))
			continue;
		/* the region is a SysV segment whatever the backend */
		if (!backend_usable(with_region ? &backends[1] : be)) {
			printf("kill_storm: %s%s: not available here, "
			       "skipped\n",
			       be->name, with_region ? "+region" : "");
			continue;
		}
		memset(&st, 0, sizeof(st));
		st.be = be;
		st.region = with_region;
		st.mshare = with_mshare;
		snprintf(st.label, sizeof(st.label), "%s%s", be->name,
			 with_region ? "+region" : with_mshare ? "+mshare" : "");
		st.nworkers = workers;
		st.rng = seed + v;
		st.sh = mmap(NULL, sizeof(*st.sh), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (st.sh == MAP_FAILED)
			return 1;
		storm_backend(&st, (kills + (uint64_t)variants - 1) /
					   (uint64_t)variants);
		print_counts(st.label, &st.n);
		add_counts(&total, &st.n);
		munmap(st.sh, sizeof(*st.sh));
		ran++;
	}
	if (ran == 0) {
		printf("skipped: no backend available\n");
		return TEST_SKIP;
	}
	print_counts("total", &total);
	return total.failures || total.leaks ? 1 : 0;
}
