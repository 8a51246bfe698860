/* SPDX-License-Identifier: MIT */
/*
 * sys.h - the one table through which dynshm reaches the operating system.
 *
 * Every system call (and the few libc calls that wrap one, such as shm_open
 * and posix_fallocate) that the library makes goes through dynshm_sys.  The
 * table exists so that tests can replace single entries and make the Nth
 * call fail with a chosen errno: that is the only practical way to walk every
 * failure path (EINTR, ENOSPC, EEXIST, EACCES, ENOMEM, EMFILE) and prove that
 * each one backs out what it did.  The idea is SQLite's aSyscall[].
 *
 * Rules for library code:
 *   - never call one of these functions directly, always dynshm_sys.name(...);
 *   - entries keep the libc convention (-1 and errno, or MAP_FAILED, or the
 *     error number returned for posix_fallocate); conversion to -errno
 *     happens in the caller, next to the call;
 *   - the table is process-global and not locked: tests replace entries
 *     before starting threads, and restore them with dynshm_sys_reset().
 */
#ifndef DYNSHM_SYS_H
#define DYNSHM_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>

/* musl's toolchain has no <linux/futex.h>: the two operations used here */
#if __has_include(<linux/futex.h>)
#include <linux/futex.h>
#endif
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#endif
#ifndef FUTEX_WAKE
#define FUTEX_WAKE 1
#endif

struct dynshm_sys {
	int (*shm_open)(const char *name, int oflag, mode_t mode);
	int (*shm_unlink)(const char *name);
	int (*open)(const char *path, int flags, mode_t mode);
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	int (*renameat)(int olddirfd, const char *oldpath, int newdirfd,
			const char *newpath);
	int (*mkdir)(const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	int (*close)(int fd);
	int (*fstat)(int fd, struct stat *st);
	int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
	int (*fstatfs)(int fd, struct statfs *st);
	int (*statfs)(const char *path, struct statfs *st);
	int (*ftruncate)(int fd, off_t length);
	int (*posix_fallocate)(int fd, off_t offset, off_t len);
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*fsync)(int fd);
	int (*flock)(int fd, int op);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
		      off_t off);
	int (*munmap)(void *addr, size_t len);
	int (*madvise)(void *addr, size_t len, int advice);
	int (*shmget)(key_t key, size_t size, int flags);
	void *(*shmat)(int shmid, const void *addr, int flags);
	int (*shmdt)(const void *addr);
	int (*shmctl)(int shmid, int cmd, struct shmid_ds *buf);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	ssize_t (*getrandom)(void *buf, size_t len, unsigned int flags);
	int (*kill)(pid_t pid, int sig);
	/* waiting for another process's named-segment initialisation */
	int (*nanosleep)(const struct timespec *req, struct timespec *rem);
	/* liveness.c: OFD byte-range locks (F_OFD_SETLK, F_OFD_GETLK) */
	int (*fcntl)(int fd, int cmd, void *arg);
	/* liveness.c: the control lock's sleeps (FUTEX_WAIT, FUTEX_WAKE) */
	long (*futex)(uint32_t *uaddr, int op, uint32_t val,
		      const struct timespec *timeout);
};

/* Hidden: reachable from the library and from tests linked statically. */
extern struct dynshm_sys dynshm_sys;

/* Put every entry back to the real function. */
void dynshm_sys_reset(void);

/*
 * Is uid this process's effective uid?  Every owner check (objects,
 * directories, files) asks this.  It asks the kernel each time: a cached
 * euid once told a process that had dropped from root to nobody that root's
 * segments were its own, so listing and sweeping took them
 * (tests/test_hostile.c, test_other_user).  geteuid() costs one null system
 * call, about 0.15 us here (docs/performance.md).
 */
bool dynshm_uid_is_ours(uid_t uid);

#endif
