/* SPDX-License-Identifier: MIT */
/*
 * state.c - the instance directory: where an instance is, and how a
 * process finds its control segment.
 *
 * A named instance lives in $XDG_RUNTIME_DIR/dynshm/<name>, else in
 * /tmp/dynshm-<uid>/<name>.  The directory holds:
 *	lock	flock()ed while a process opens, creates or resets the
 *		instance, so two first processes never both create it;
 *	state	a short text file naming the instance id, its backends, the
 *		control segment's size and the mmap directory; replaced
 *		atomically (write a temporary, fsync, rename);
 *	dynshm.<id>.<handle>	mmap backend files, by default.
 * Directories are 0700 and files 0600; anything else - another owner, a
 * wider mode, a symbolic link - is refused with a message saying which path
 * and why, since /tmp is shared with every local user.
 */
#include "wrapper.h"

#include "error.h"
#include "sys.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define STATE_MAGIC "dynshm-state 1"

static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > DYNSHM_NAME_MAX || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-' &&
		    *p != '.')
			return false;
	return true;
}

static int base_directory(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/dynshm", xdg);
	else
		n = snprintf(buf, len, "/tmp/dynshm-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return dynshm_fail(ENAMETOOLONG, "runtime directory path too long");
	return 0;
}

int state_resolve(const char *name_or_dir, char *name, size_t name_len,
		  char *dir, size_t dir_len, bool *named)
{
	char base[PATH_MAX];
	int rc, n;

	if (!name_or_dir)
		name_or_dir = "default";
	if (strlen(name_or_dir) >= name_len && !strchr(name_or_dir, '/'))
		return dynshm_fail(EINVAL, "instance name '%.40s...' is longer "
					"than %d bytes",
				name_or_dir, DYNSHM_NAME_MAX);
	snprintf(name, name_len, "%s", name_or_dir);
	if (strchr(name_or_dir, '/')) {
		if (name_or_dir[0] != '/')
			return dynshm_fail(EINVAL, "instance directory '%s' must "
						"be an absolute path",
					name_or_dir);
		n = snprintf(dir, dir_len, "%s", name_or_dir);
		if (n < 0 || (size_t)n >= dir_len)
			return dynshm_fail(ENAMETOOLONG, "instance directory path "
						      "too long");
		*named = false;
		return 0;
	}
	if (!valid_name(name_or_dir))
		return dynshm_fail(EINVAL,
				"invalid instance name '%s' (allowed: 1 to %d "
				"of A-Z a-z 0-9 _ - ., not starting with '.')",
				name_or_dir, DYNSHM_NAME_MAX);
	rc = base_directory(base, sizeof(base));
	if (rc < 0)
		return rc;
	n = snprintf(dir, dir_len, "%s/%s", base, name_or_dir);
	if (n < 0 || (size_t)n >= dir_len)
		return dynshm_fail(ENAMETOOLONG, "instance directory path too long");
	*named = true;
	return 0;
}

/* A directory must be ours, a real directory, and closed to others. */
static int check_private_dir(int fd, const char *path)
{
	struct stat st;

	if (dynshm_sys.fstat(fd, &st) < 0)
		return dynshm_fail(errno, "cannot stat '%s': %s", path,
				strerror(errno));
	if (!dynshm_uid_is_ours(st.st_uid))
		return dynshm_fail(EACCES,
				"refusing directory '%s': it belongs to uid %u, "
				"not to this process's uid %u",
				path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 077)
		return dynshm_fail(EACCES,
				"refusing directory '%s': mode %04o lets other "
				"users in (expected 0700)",
				path, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* *made (if not NULL) tells whether this call created the directory. */
static int open_private_dir(const char *path, bool create, int *out,
			    bool *made)
{
	int fd, rc;

	if (create && dynshm_sys.mkdir(path, 0700) == 0) {
		if (made)
			*made = true;
	} else if (create && errno != EEXIST) {
		return dynshm_fail(errno, "cannot create directory '%s': %s", path,
				strerror(errno));
	}
	fd = dynshm_sys.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
			  0);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return dynshm_fail(EACCES, "refusing '%s': it is a "
						"symbolic link or not a "
						"directory",
					path);
		return dynshm_fail(errno, "cannot open directory '%s': %s", path,
				strerror(errno));
	}
	rc = check_private_dir(fd, path);
	if (rc < 0) {
		dynshm_sys.close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

int state_open_dir(dynshm_instance *inst, bool named, bool create)
{
	int rc, fd;

	if (named) {
		char base[PATH_MAX];
		const char *xdg = getenv("XDG_RUNTIME_DIR");

		rc = base_directory(base, sizeof(base));
		if (rc < 0)
			return rc;
		if (xdg && xdg[0] == '/' && !create) {
			/* nothing to make; the instance dir check suffices */
		} else {
			rc = open_private_dir(base, create, &fd, NULL);
			if (rc < 0)
				return rc == -ENOENT ? dynshm_fail(ENOENT,
					"instance '%s' does not exist "
					"(no directory %s)", inst->name, base)
					: rc;
			dynshm_sys.close(fd);
		}
	}
	rc = open_private_dir(inst->dir, create, &inst->dirfd,
			      &inst->made_dir);
	if (rc == -ENOENT && !create)
		return dynshm_fail(ENOENT, "instance '%s' does not exist (no "
					"directory %s)",
				inst->name, inst->dir);
	return rc;
}

/* A plain private file of ours, opened relative to the instance dir. */
static int open_private_file(dynshm_instance *inst, const char *file, int flags,
			     int *out)
{
	struct stat st;
	int fd;

	/* O_NONBLOCK: a FIFO planted here opens at once, and is refused */
	fd = dynshm_sys.openat(inst->dirfd, file,
			       flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
			       0600);
	if (fd < 0) {
		if (errno == ELOOP)
			return dynshm_fail(EACCES, "refusing '%s/%s': it is a "
						"symbolic link",
					inst->dir, file);
		return dynshm_fail(errno, "cannot open '%s/%s': %s", inst->dir,
				file, strerror(errno));
	}
	if (dynshm_sys.fstat(fd, &st) < 0) {
		int err = errno;

		dynshm_sys.close(fd);
		return dynshm_fail(err, "cannot stat '%s/%s': %s", inst->dir, file,
				strerror(err));
	}
	if (!S_ISREG(st.st_mode) || !dynshm_uid_is_ours(st.st_uid) ||
	    (st.st_mode & 077)) {
		dynshm_sys.close(fd);
		return dynshm_fail(EACCES,
				"refusing '%s/%s': expected a regular file of "
				"uid %u with mode 0600, found uid %u mode %04o",
				inst->dir, file, (unsigned)geteuid(),
				(unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777));
	}
	*out = fd;
	return 0;
}

/*
 * The lock file can be removed while we wait for it (a destroy, or a failed
 * first open, unlinks it): a flock on the removed file excludes nobody.  So
 * after locking, check that the name still leads to the file we locked, and
 * start again when it does not.
 */
int state_lock(dynshm_instance *inst, int *lockfd)
{
	struct stat held, named;
	int fd, rc;

	for (;;) {
		rc = open_private_file(inst, "lock", O_RDWR | O_CREAT, &fd);
		if (rc < 0)
			return rc;
		do
			rc = dynshm_sys.flock(fd, LOCK_EX);
		while (rc < 0 && errno == EINTR);
		if (rc < 0) {
			int err = errno;

			dynshm_sys.close(fd);
			return dynshm_fail(err, "cannot lock '%s/lock': %s",
					inst->dir, strerror(err));
		}
		if (dynshm_sys.fstat(fd, &held) == 0 &&
		    dynshm_sys.fstatat(inst->dirfd, "lock", &named,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			break;
		dynshm_sys.close(fd);
	}
	*lockfd = fd;
	return 0;
}

/*
 * An open that failed before any state file existed made only the lock file
 * and perhaps the directory: remove the lock file, and the directory if this
 * open made it, so that a refused configuration or
 * a failed first create leaves nothing.  Called with the lock held; quiet,
 * so the caller's error message stands.
 */
void state_discard_unused(dynshm_instance *inst)
{
	struct stat st;

	if (dynshm_sys.fstatat(inst->dirfd, "state", &st, AT_SYMLINK_NOFOLLOW) ==
		    0 ||
	    errno != ENOENT)
		return;
	dynshm_sys.unlinkat(inst->dirfd, "lock", 0);
	if (inst->made_dir) /* fails harmlessly if anything else is in it */
		dynshm_sys.rmdir(inst->dir);
}

void state_unlock(int lockfd)
{
	dynshm_sys.close(lockfd); /* closing drops the flock */
}

/* Only inst->dir is read (for the message); fuzzed (tests/fuzz). */
int state_parse(dynshm_instance *inst, char *text, struct inst_state *st)
{
	char *line, *save = NULL;
	unsigned seen = 0;

	line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, STATE_MAGIC) != 0)
		goto corrupt;
	memset(st, 0, sizeof(*st));
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		char *val = strchr(line, ' ');

		if (!val)
			goto corrupt;
		*val++ = '\0';
		if (strcmp(line, "instance_id") == 0 &&
		    sscanf(val, "%" SCNx64, &st->id) == 1 && st->id != 0)
			seen |= 1;
		else if (strcmp(line, "backend") == 0 &&
			 dynshm_impl_type_from_name(val, &st->backend) == 0)
			seen |= 2;
		else if (strcmp(line, "control_backend") == 0 &&
			 dynshm_impl_type_from_name(val, &st->ctl_backend) == 0 &&
			 st->ctl_backend != DYNSHM_IMPL_NONE)
			seen |= 4;
		else if (strcmp(line, "control_size") == 0 &&
			 sscanf(val, "%" SCNu64, &st->ctl_size) == 1)
			seen |= 8;
		else if (strcmp(line, "mmap_directory") == 0 && val[0] == '/' &&
			 strlen(val) < sizeof(st->seg_dir))
			strcpy(st->seg_dir, val), seen |= 16;
		else if (strcmp(line, "control_space") == 0 && val[0] &&
			 strlen(val) < sizeof(st->space))
			strcpy(st->space, val); /* optional: see state_space */
		else if (strcmp(line, "boot_id") == 0 && val[0] &&
			 strlen(val) < sizeof(st->boot))
			strcpy(st->boot, val);
		else
			goto corrupt;
	}
	if (seen == 31)
		return 0;
corrupt:
	return dynshm_fail(EUCLEAN, "state file '%s/state' is corrupt or from "
				 "another version (open with reset to "
				 "recreate the instance)",
			inst->dir);
}

/* Read a small private file of the instance directory as text. */
int state_read_file(dynshm_instance *inst, const char *file, char *text,
		    size_t len)
{
	ssize_t n;
	int fd, rc;

	rc = open_private_file(inst, file, O_RDONLY, &fd);
	if (rc < 0)
		return rc;
	do
		n = dynshm_sys.read(fd, text, len - 1);
	while (n < 0 && errno == EINTR);
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
	if (n < 0)
		return dynshm_fail(errno, "cannot read '%s/%s': %s", inst->dir,
				file, strerror(errno));
	text[n] = '\0';
	return 0;
}

int state_read(dynshm_instance *inst, struct inst_state *st)
{
	char text[STATE_TEXT_MAX];
	int rc = state_read_file(inst, "state", text, sizeof(text));

	return rc < 0 ? rc : state_parse(inst, text, st);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = dynshm_sys.write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replace file atomically: write file.tmp, fsync, rename. */
int state_write_file(dynshm_instance *inst, const char *file, const char *text,
		     size_t len)
{
	char tmp[64];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	/* We hold the flock, so nobody else writes the temporary now. */
	dynshm_sys.unlinkat(inst->dirfd, tmp, 0);
	rc = open_private_file(inst, tmp, O_WRONLY | O_CREAT | O_EXCL, &fd);
	if (rc < 0)
		return rc;
	rc = write_all(fd, text, len);
	if (rc == 0 && dynshm_sys.fsync(fd) < 0)
		rc = -errno;
	dynshm_sys.close(fd);
	if (rc == 0 && dynshm_sys.renameat(inst->dirfd, tmp, inst->dirfd, file) < 0)
		rc = -errno;
	if (rc < 0) {
		dynshm_sys.unlinkat(inst->dirfd, tmp, 0);
		return dynshm_fail(-rc, "cannot write '%s/%s': %s", inst->dir,
				file, strerror(-rc));
	}
	return 0;
}

int state_write(dynshm_instance *inst, const struct inst_state *st)
{
	char text[STATE_TEXT_MAX];
	int n;

	n = snprintf(text, sizeof(text),
		     STATE_MAGIC "\ninstance_id %016" PRIx64 "\nbackend %s\n"
				 "control_backend %s\ncontrol_size %" PRIu64
				 "\nmmap_directory %s\n%s%s%s%s%s%s",
		     st->id, dynshm_impl_type_name(st->backend),
		     dynshm_impl_type_name(st->ctl_backend), st->ctl_size,
		     st->seg_dir, st->space[0] ? "control_space " : "",
		     st->space, st->space[0] ? "\n" : "",
		     st->boot[0] ? "boot_id " : "", st->boot,
		     st->boot[0] ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(text))
		return dynshm_fail(ENAMETOOLONG, "state file contents too long");
	return state_write_file(inst, "state", text, (size_t)n);
}

/*
 * >>> the first open's window (issue 13, item 2).  A first open creates the
 * control object under a new id and only then writes the state file that
 * names it; an open killed in between (allocating, formatting, fsyncing)
 * left an object under an id recorded nowhere.  So the id is written to
 * "pending" before anything is created, and removed once the state file
 * names the same id.  Whoever next holds the flock (an open, a reset)
 * finds it and removes what it names.  The creator's pid and the second
 * it started let a SysV control object be proved its own (sysv.c).
 */
#define PENDING_MAGIC "dynshm-pending 1"

int state_write_pending(dynshm_instance *inst, const struct inst_state *st,
			int32_t pid, int64_t since)
{
	char text[STATE_TEXT_MAX];
	int n;

	n = snprintf(text, sizeof(text),
		     PENDING_MAGIC "\ninstance_id %016" PRIx64
				   "\ncontrol_backend %s\ncontrol_size %" PRIu64
				   "\ncreator_pid %d\ncreated %" PRId64
				   "\nmmap_directory %s\ncontrol_space %s\n",
		     st->id, dynshm_impl_type_name(st->ctl_backend),
		     st->ctl_size, (int)pid, since, st->seg_dir,
		     st->space[0] ? st->space : "unknown");
	if (n < 0 || (size_t)n >= sizeof(text))
		return dynshm_fail(ENAMETOOLONG,
				"pending file contents too long");
	return state_write_file(inst, "pending", text, (size_t)n);
}

static int parse_pending(char *text, struct inst_state *st, int32_t *pid,
			 int64_t *since)
{
	char *line, *save = NULL;
	unsigned seen = 0;

	line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, PENDING_MAGIC) != 0)
		return -EUCLEAN;
	memset(st, 0, sizeof(*st));
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		char *val = strchr(line, ' ');

		if (!val)
			return -EUCLEAN;
		*val++ = '\0';
		if (strcmp(line, "instance_id") == 0 &&
		    sscanf(val, "%" SCNx64, &st->id) == 1 && st->id != 0)
			seen |= 1;
		else if (strcmp(line, "control_backend") == 0 &&
			 dynshm_impl_type_from_name(val, &st->ctl_backend) ==
				 0 &&
			 st->ctl_backend != DYNSHM_IMPL_NONE)
			seen |= 2;
		else if (strcmp(line, "control_size") == 0 &&
			 sscanf(val, "%" SCNu64, &st->ctl_size) == 1)
			seen |= 4;
		else if (strcmp(line, "creator_pid") == 0 &&
			 sscanf(val, "%" SCNd32, pid) == 1 && *pid > 0)
			seen |= 8; /* 0 would mean "any creator" (sysv.c) */
		else if (strcmp(line, "created") == 0 &&
			 sscanf(val, "%" SCNd64, since) == 1)
			seen |= 16;
		else if (strcmp(line, "mmap_directory") == 0 && val[0] == '/' &&
			 strlen(val) < sizeof(st->seg_dir))
			strcpy(st->seg_dir, val), seen |= 32;
		else if (strcmp(line, "control_space") == 0 && val[0] &&
			 strlen(val) < sizeof(st->space))
			strcpy(st->space, val); /* optional */
		else
			return -EUCLEAN;
	}
	return seen == 63 ? 0 : -EUCLEAN;
}

/* Only inst->dir is read (for the message); fuzzed (tests/fuzz). */
int state_parse_pending(dynshm_instance *inst, char *text,
			struct inst_state *st, int32_t *pid, int64_t *since)
{
	if (parse_pending(text, st, pid, since) < 0)
		return dynshm_fail(EUCLEAN,
				"'%s/pending' is corrupt; remove it (it names "
				"a control segment a killed first open may "
				"have left)",
				inst->dir);
	return 0;
}

/* 0 and what a pending file names, -ENOENT when there is none. */
int state_read_pending(dynshm_instance *inst, struct inst_state *st,
		       int32_t *pid, int64_t *since)
{
	char text[STATE_TEXT_MAX];
	int rc = state_read_file(inst, "pending", text, sizeof(text));

	return rc < 0 ? rc : state_parse_pending(inst, text, st, pid, since);
}

void state_remove_pending(dynshm_instance *inst)
{
	dynshm_sys.unlinkat(inst->dirfd, "pending", 0);
	dynshm_sys.unlinkat(inst->dirfd, "pending.tmp", 0);
}
/* <<< the first open's window */

/*
 * >>> where the control object lives.  The instance directory can be
 * shared with a process that does not share the place its objects live
 * in: one in another IPC namespace sees none of its SysV objects, one with
 * a /dev/shm of its own (a container's) none of its POSIX ones, one that
 * does not see the mmap directory none of its files.  To such a process
 * the control object looks vanished, as after a reboot, and an open used
 * to wipe the instance and make another in its place, under every process
 * of the first (and a read-only open wiped it too).  So the state file
 * records where the creator found the control object's backend and the
 * boot it was made in; an open that cannot find the control object wipes
 * only when it looks in the same place (an object removed behind the
 * library's back) or the boot changed, and refuses otherwise
 * (find_or_create in instance.c).  The text is what the messages show.
 */
void state_space(dynshm_impl_type backend, const char *seg_dir, char *buf,
		 size_t len)
{
	const char *path = backend == DYNSHM_IMPL_POSIX  ? "/dev/shm"
			   : backend == DYNSHM_IMPL_SYSV ? "/proc/self/ns/ipc"
							 : seg_dir;
	struct stat st;

	if (backend != DYNSHM_IMPL_POSIX && backend != DYNSHM_IMPL_SYSV &&
	    backend != DYNSHM_IMPL_MMAP) {
		snprintf(buf, len, "none");
		return;
	}
	if (dynshm_sys.fstatat(AT_FDCWD, path, &st, 0) < 0) {
		snprintf(buf, len, "unknown");
		return;
	}
	if (backend == DYNSHM_IMPL_SYSV)
		snprintf(buf, len, "SysV IPC namespace ipc:[%" PRIu64 "]",
			 (uint64_t)st.st_ino);
	else
		snprintf(buf, len, "'%s' (device %u:%u, inode %" PRIu64 ")",
			 path, major(st.st_dev), minor(st.st_dev),
			 (uint64_t)st.st_ino);
}

/*
 * Whether this process looks for st's control object somewhere other than
 * where its recorder found the backend (*here: where we look).  False when
 * the place was not recorded (an older file) or its recorder could not
 * tell it: there is nothing to tell apart then.
 */
bool state_elsewhere(const struct inst_state *st, char *here, size_t len)
{
	here[0] = '\0';
	if (!st->space[0] || strcmp(st->space, "unknown") == 0)
		return false;
	state_space(st->ctl_backend, st->seg_dir, here, len);
	return strcmp(here, st->space) != 0;
}

/* This boot's id (the kernel's random boot_id), or "" where unreadable. */
void state_boot_id(char *buf, size_t len)
{
	int fd = dynshm_sys.open("/proc/sys/kernel/random/boot_id",
				 O_RDONLY | O_CLOEXEC, 0);
	ssize_t n = -1;

	buf[0] = '\0';
	if (fd < 0)
		return;
	do
		n = dynshm_sys.read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}
/* <<< where the control object lives */

/* Remove state, lock and the directory itself (if nothing else is in it). */
int state_remove(dynshm_instance *inst)
{
	dynshm_sys.unlinkat(inst->dirfd, "state", 0);
	dynshm_sys.unlinkat(inst->dirfd, "state.tmp", 0);
	state_remove_pending(inst);
	dynshm_sys.unlinkat(inst->dirfd, "lock", 0);
	if (dynshm_sys.rmdir(inst->dir) < 0 && errno != ENOENT)
		return dynshm_fail(errno, "cannot remove instance directory '%s': "
				       "%s",
				inst->dir, strerror(errno));
	return 0;
}
