/* SPDX-License-Identifier: MIT */
/*
 * inject.c - failure injection over dynshm_sys (see inject.h for why).
 *
 * One line per entry of struct dynshm_sys in INJECT_ENTRIES below generates the
 * wrapper that stands in for the real function, its slot in the state table
 * and its row in the name table; adding an entry to dynshm_sys means adding
 * one line here.  The wrapper calls whatever the table held when the first
 * entry was armed, so injection composes with any other replacement a test
 * made before.
 */
#include "inject.h"

#include "src/sys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * X(name, how it fails, return type, parameters, arguments)
 *
 * How it fails: ERRNO (-1 and errno), PTR ((void *)-1, which is MAP_FAILED,
 * and errno), ERRNUM (returns the error number) or CLOSED (does the real
 * call, then reports -1 and errno, as Linux close does).
 */
#define INJECT_ENTRIES(X)                                                      \
	X(shm_open, ERRNO, int, (const char *a, int b, mode_t c), (a, b, c))   \
	X(shm_unlink, ERRNO, int, (const char *a), (a))                        \
	X(open, ERRNO, int, (const char *a, int b, mode_t c), (a, b, c))       \
	X(openat, ERRNO, int, (int a, const char *b, int c, mode_t d),         \
	  (a, b, c, d))                                                        \
	X(unlinkat, ERRNO, int, (int a, const char *b, int c), (a, b, c))      \
	X(renameat, ERRNO, int, (int a, const char *b, int c, const char *d),  \
	  (a, b, c, d))                                                        \
	X(mkdir, ERRNO, int, (const char *a, mode_t b), (a, b))                \
	X(rmdir, ERRNO, int, (const char *a), (a))                             \
	X(close, CLOSED, int, (int a), (a))                                    \
	X(fstat, ERRNO, int, (int a, struct stat *b), (a, b))                  \
	X(fstatat, ERRNO, int, (int a, const char *b, struct stat *c, int d),  \
	  (a, b, c, d))                                                        \
	X(fstatfs, ERRNO, int, (int a, struct statfs *b), (a, b))              \
	X(statfs, ERRNO, int, (const char *a, struct statfs *b), (a, b))       \
	X(ftruncate, ERRNO, int, (int a, off_t b), (a, b))                     \
	X(posix_fallocate, ERRNUM, int, (int a, off_t b, off_t c), (a, b, c))  \
	X(read, ERRNO, ssize_t, (int a, void *b, size_t c), (a, b, c))         \
	X(write, ERRNO, ssize_t, (int a, const void *b, size_t c), (a, b, c))  \
	X(fsync, ERRNO, int, (int a), (a))                                     \
	X(flock, ERRNO, int, (int a, int b), (a, b))                           \
	X(mmap, PTR, void *,                                                   \
	  (void *a, size_t b, int c, int d, int e, off_t f),                   \
	  (a, b, c, d, e, f))                                                  \
	X(munmap, ERRNO, int, (void *a, size_t b), (a, b))                     \
	X(madvise, ERRNO, int, (void *a, size_t b, int c), (a, b, c))          \
	X(shmget, ERRNO, int, (key_t a, size_t b, int c), (a, b, c))           \
	X(shmat, PTR, void *, (int a, const void *b, int c), (a, b, c))        \
	X(shmdt, ERRNO, int, (const void *a), (a))                             \
	X(shmctl, ERRNO, int, (int a, int b, struct shmid_ds *c), (a, b, c))   \
	X(ioctl, ERRNO, int, (int a, unsigned long b, void *c), (a, b, c))     \
	X(getrandom, ERRNO, ssize_t, (void *a, size_t b, unsigned int c),      \
	  (a, b, c))                                                           \
	X(kill, ERRNO, int, (pid_t a, int b), (a, b))                          \
	X(nanosleep, ERRNO, int,                                               \
	  (const struct timespec *a, struct timespec *b), (a, b))             \
	X(fcntl, ERRNO, int, (int a, int b, void *c), (a, b, c))              \
	X(futex, ERRNO, long,                                                  \
	  (uint32_t *a, int b, uint32_t c, const struct timespec *d),         \
	  (a, b, c, d))

enum inject_index {
#define X_ENUM(name, ...) IDX_##name,
	INJECT_ENTRIES(X_ENUM)
#undef X_ENUM
	IDX_COUNT
};

struct inject_state {
	bool armed;
	bool persist;	     /* fail every call from the nth on */
	int nth;	     /* 0: count only */
	int err;
	unsigned long calls; /* atomic */
};

static struct inject_state state[IDX_COUNT];
static struct dynshm_sys saved; /* what the wrappers call through */
static bool saved_valid;

/* The error to fail this call with, or 0 to pass it through. */
static int inject_hit(enum inject_index i)
{
	struct inject_state *s = &state[i];
	unsigned long n = __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
	unsigned long nth = (unsigned long)s->nth;

	if (nth == 0)
		return 0;
	if (n == nth || (s->persist && n > nth))
		return s->err;
	return 0;
}

#define FAIL_ERRNO(name, args, err)                                            \
	do {                                                                   \
		errno = (err);                                                 \
		return -1;                                                     \
	} while (0)
#define FAIL_PTR(name, args, err)                                              \
	do {                                                                   \
		errno = (err);                                                 \
		return (void *)-1;                                             \
	} while (0)
#define FAIL_ERRNUM(name, args, err) return (err)
#define FAIL_CLOSED(name, args, err)                                           \
	do {                                                                   \
		(void)saved.name args;                                         \
		errno = (err);                                                 \
		return -1;                                                     \
	} while (0)

#define X_WRAPPER(name, how, ret, params, args)                                \
	static ret inject_##name params                                        \
	{                                                                      \
		int err_ = inject_hit(IDX_##name);                             \
									       \
		if (err_)                                                      \
			FAIL_##how(name, args, err_);                          \
		return saved.name args;                                        \
	}                                                                      \
	static void install_##name(void)                                       \
	{                                                                      \
		dynshm_sys.name = inject_##name;                                  \
	}
INJECT_ENTRIES(X_WRAPPER)
#undef X_WRAPPER

static const struct {
	const char *name;
	void (*install)(void);
} entries[IDX_COUNT] = {
#define X_ROW(name, ...) [IDX_##name] = { #name, install_##name },
	INJECT_ENTRIES(X_ROW)
#undef X_ROW
};

static enum inject_index lookup(const char *name)
{
	for (int i = 0; i < IDX_COUNT; i++)
		if (strcmp(entries[i].name, name) == 0)
			return (enum inject_index)i;
	fprintf(stderr, "inject: no system-call entry named '%s'\n", name);
	abort();
}

static void arm(const char *name, int nth, int err, bool persist)
{
	enum inject_index i = lookup(name);

	if (nth < 0 || (nth > 0 && err <= 0)) {
		fprintf(stderr,
			"inject: bad arguments for '%s': nth %d err %d\n",
			name, nth, err);
		abort();
	}
	if (!saved_valid) {
		saved = dynshm_sys;
		saved_valid = true;
	}
	state[i].nth = nth;
	state[i].err = err;
	state[i].persist = persist;
	__atomic_store_n(&state[i].calls, 0, __ATOMIC_SEQ_CST);
	state[i].armed = true;
	entries[i].install();
}

void inject_fail(const char *name, int nth, int err)
{
	arm(name, nth, err, false);
}

void inject_fail_from(const char *name, int nth, int err)
{
	arm(name, nth, err, true);
}

unsigned long inject_calls(const char *name)
{
	enum inject_index i = lookup(name);

	if (!state[i].armed)
		return 0;
	return __atomic_load_n(&state[i].calls, __ATOMIC_SEQ_CST);
}

void inject_reset(void)
{
	dynshm_sys_reset();
	memset(state, 0, sizeof(state));
	saved_valid = false;
}
