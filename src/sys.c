/* SPDX-License-Identifier: MIT */
/*
 * sys.c - the real entries of the system-call table (see sys.h for why it
 * exists).  A few entries need a thin adapter because the libc prototype is
 * variadic (open, openat, ioctl) or differs in constness.
 */
#include "sys.h"

#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

static int real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags, mode);
}

static int real_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

static int real_fcntl(int fd, int cmd, void *arg)
{
	return fcntl(fd, cmd, arg);
}

static long real_futex(uint32_t *uaddr, int op, uint32_t val,
		       const struct timespec *timeout)
{
	return syscall(SYS_futex, uaddr, op, val, timeout, NULL, 0);
}

/* One list, used twice: as the live table and as the copy to restore. */
#define REAL_SYS                                                               \
	{                                                                      \
		.shm_open = shm_open, .shm_unlink = shm_unlink,                \
		.open = real_open, .openat = real_openat,                      \
		.unlinkat = unlinkat, .renameat = renameat, .mkdir = mkdir,    \
		.rmdir = rmdir, .close = close, .fstat = fstat,                \
		.fstatat = fstatat, .fstatfs = fstatfs, .statfs = statfs,      \
		.ftruncate = ftruncate, .posix_fallocate = posix_fallocate,    \
		.read = read, .write = write, .fsync = fsync, .flock = flock,  \
		.mmap = mmap, .munmap = munmap, .madvise = madvise,            \
		.shmget = shmget, .shmat = shmat, .shmdt = shmdt,              \
		.shmctl = shmctl, .ioctl = real_ioctl,                         \
		.getrandom = getrandom, .kill = kill,                          \
		.nanosleep = nanosleep, .fcntl = real_fcntl,                   \
		.futex = real_futex,                                           \
	}

static const struct dynshm_sys real_sys = REAL_SYS;

struct dynshm_sys dynshm_sys = REAL_SYS;

void dynshm_sys_reset(void)
{
	dynshm_sys = real_sys;
}

bool dynshm_uid_is_ours(uid_t uid)
{
	return uid == geteuid();
}
