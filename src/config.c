/* SPDX-License-Identifier: MIT */
/*
 * config.c - configuration keys, their defaults and their validation.
 *
 * One table describes every key: its name (PostgreSQL's where one exists),
 * how to parse it and what is allowed.  Every source of settings - a file,
 * the environment, the API - goes through set_key(), so a bad value is
 * refused the same way wherever it came from, with a message that names the
 * key, the value and what is allowed (and for a file, the file and line).
 *
 * Precedence is the order of application, later wins: compiled defaults
 * (dynshm_config_new) < config file < environment < dynshm_config_set.
 * dynshm_config_load() applies the file and the environment in that order.
 *
 * Spelling follows PostgreSQL's GUCs: key names and the names a key takes
 * are case-insensitive, on/off keys take every boolean spelling
 * (on/off/true/false/yes/no/1/0), sizes take B, kB, MB, GB and TB.  What
 * PostgreSQL would refuse loudly is refused here too: an unknown key in a
 * file, and a DYNSHM_* variable in the environment that names no key.
 */
#include "config.h"

#include "error.h"
#include "mshare.h"

#include <build_config.h>
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_MAX_SEGMENTS 4096u
#define DEFAULT_MAX_PROCESSES 256u

struct key_desc {
	const char *name;
	enum config_key key;
	int (*set)(struct dynshm_config *cfg, const struct key_desc *d,
		   const char *value);
	int (*get)(const struct dynshm_config *cfg, char *buf, size_t len);
	uint64_t min, max; /* integer keys */
};

static int set_backend(struct dynshm_config *cfg, const struct key_desc *d,
		       const char *value)
{
	char lower[16];
	size_t i;

	/* The backend layer's names are lower case; the key is not fussy. */
	for (i = 0; value[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)value[i]);
	lower[i] = '\0';
	if (value[i] != '\0' ||
	    dynshm_impl_type_from_name(lower, &cfg->backend) < 0)
		return dynshm_fail(EINVAL, "invalid value '%s' for %s "
					"(allowed: posix, sysv, mmap, none)",
				value, d->name);
	return 0;
}

static int get_backend(const struct dynshm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", dynshm_impl_type_name(cfg->backend));
}

static int set_directory(struct dynshm_config *cfg, const struct key_desc *d,
			 const char *value)
{
	if (value[0] != '\0' && value[0] != '/')
		return dynshm_fail(EINVAL, "invalid value '%s' for %s (allowed: "
					"an absolute path, or empty for the "
					"instance directory)",
				value, d->name);
	if (strlen(value) >= sizeof(cfg->directory))
		return dynshm_fail(EINVAL, "value for %s is longer than %zu bytes",
				d->name, sizeof(cfg->directory) - 1);
	strcpy(cfg->directory, value);
	return 0;
}

static int get_directory(const struct dynshm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", cfg->directory);
}

/* Leading decimal digits (no sign, no space); false if none or overflow. */
static bool leading_number(const char *value, unsigned long long *v,
			   char **end)
{
	errno = 0;
	if (!isdigit((unsigned char)value[0]))
		return false;
	*v = strtoull(value, end, 10);
	return errno == 0;
}

/* A whole number, no sign, no junk; units are for size keys. */
static int parse_count(const struct key_desc *d, const char *value,
		       uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!leading_number(value, &v, &end) || *end != '\0' || v < d->min ||
	    v > d->max)
		goto bad;
	*out = v;
	return 0;
bad:
	return dynshm_fail(EINVAL,
			"invalid value '%s' for %s (allowed: a whole number "
			"from %llu to %llu)",
			value, d->name, (unsigned long long)d->min,
			(unsigned long long)d->max);
}

static int set_max_segments(struct dynshm_config *cfg, const struct key_desc *d,
			    const char *value)
{
	uint64_t v = 0;
	int rc = parse_count(d, value, &v);

	if (rc == 0)
		cfg->max_segments = (uint32_t)v;
	return rc;
}

static int get_max_segments(const struct dynshm_config *cfg, char *buf,
			    size_t len)
{
	return snprintf(buf, len, "%u", cfg->max_segments);
}

static int set_max_processes(struct dynshm_config *cfg, const struct key_desc *d,
			     const char *value)
{
	uint64_t v = 0;
	int rc = parse_count(d, value, &v);

	if (rc == 0)
		cfg->max_processes = (uint32_t)v;
	return rc;
}

static int get_max_processes(const struct dynshm_config *cfg, char *buf,
			     size_t len)
{
	return snprintf(buf, len, "%u", cfg->max_processes);
}

/* ---- mshare keys (msharefs placement, placement.c) ------------------------ */

static const char *const mshare_modes[] = { "off", "try", "on" };

/*
 * An off/try/on key (mshare, huge_pages): "try", or any of PostgreSQL's
 * boolean spellings, in any case.  0 off, 1 try, 2 on; -1 for anything else.
 */
static int parse_off_try_on(const char *value)
{
	static const char *const off[] = { "off", "false", "no", "0" };
	static const char *const on[] = { "on", "true", "yes", "1" };

	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		if (strcasecmp(value, off[i]) == 0)
			return 0;
		if (strcasecmp(value, on[i]) == 0)
			return 2;
	}
	return strcasecmp(value, "try") == 0 ? 1 : -1;
}

static int set_mshare(struct dynshm_config *cfg, const struct key_desc *d,
		      const char *value)
{
	int m = parse_off_try_on(value);

	if (m >= 0) {
		cfg->mshare = m; /* MSHARE_OFF, _TRY, _ON are 0, 1, 2 */
		return 0;
	}
	return dynshm_fail(EINVAL, "invalid value '%s' for %s (allowed: off, "
				"try, on, or a boolean: true, false, yes, no, "
				"1, 0)",
			value, d->name);
}

static int get_mshare(const struct dynshm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", mshare_modes[cfg->mshare]);
}

static int set_mshare_path(struct dynshm_config *cfg, const struct key_desc *d,
			   const char *value)
{
	bool control = false;

	/* Spaces are fine (the record keeps the path to the end of its
	 * line); a newline or another control character is not. */
	for (const char *c = value; *c; c++)
		control = control || (unsigned char)*c < 0x20 || *c == 0x7f;
	if (value[0] != '/' || control ||
	    strlen(value) >= sizeof(cfg->mshare_path))
		return dynshm_fail(EINVAL, "invalid value for %s (allowed: an "
					"absolute path shorter than %zu bytes, "
					"without control characters)",
				d->name, sizeof(cfg->mshare_path));
	strcpy(cfg->mshare_path, value);
	return 0;
}

static int get_mshare_path(const struct dynshm_config *cfg, char *buf,
			   size_t len)
{
	return snprintf(buf, len, "%s", cfg->mshare_path);
}

/* ---- region carve-outs and huge pages (region.c) ------------------------ */

/*
 * A size: digits, then optionally B, kB, MB, GB or TB (powers of 1024,
 * spelled - case included - as PostgreSQL spells its memory units); a bare
 * number is megabytes, as for PostgreSQL's min_dynamic_shared_memory.
 */
static int set_min_dsm(struct dynshm_config *cfg, const struct key_desc *d,
		       const char *value)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = { { "", 20 },   { "B", 0 },	  { "kB", 10 },
		      { "MB", 20 }, { "GB", 30 }, { "TB", 40 } };
	unsigned long long v;
	char *end;

	if (!leading_number(value, &v, &end))
		goto bad;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > d->max >> units[i].shift)
			goto bad;
		cfg->min_dynamic_shared_memory = (uint64_t)v << units[i].shift;
		return 0;
	}
bad:
	return dynshm_fail(EINVAL,
			"invalid value '%s' for %s (allowed: 0, or a size up "
			"to 64GB with unit B, kB, MB, GB or TB; no unit means "
			"MB)",
			value, d->name);
}

static int get_min_dsm(const struct dynshm_config *cfg, char *buf, size_t len)
{
	uint64_t v = cfg->min_dynamic_shared_memory;

	if (v && v % (1ull << 30) == 0)
		return snprintf(buf, len, "%lluGB",
				(unsigned long long)(v >> 30));
	if (v % (1ull << 20) == 0)
		return snprintf(buf, len, "%lluMB",
				(unsigned long long)(v >> 20));
	if (v % (1ull << 10) == 0)
		return snprintf(buf, len, "%llukB",
				(unsigned long long)(v >> 10));
	return snprintf(buf, len, "%lluB", (unsigned long long)v);
}

static const char *const huge_names[] = {
	[DYNSHM_HUGE_PAGES_OFF] = "off",
	[DYNSHM_HUGE_PAGES_TRY] = "try",
	[DYNSHM_HUGE_PAGES_ON] = "on",
};

static int set_huge_pages(struct dynshm_config *cfg, const struct key_desc *d,
			  const char *value)
{
	int i = parse_off_try_on(value);

	if (i >= 0) {
		cfg->huge_pages = i; /* DYNSHM_HUGE_PAGES_OFF, _TRY, _ON */
		return 0;
	}
	return dynshm_fail(EINVAL, "invalid value '%s' for %s (allowed: off, try, "
				"on, or a boolean: true, false, yes, no, 1, 0)",
			value, d->name);
}

static int get_huge_pages(const struct dynshm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", huge_names[cfg->huge_pages]);
}

static const struct key_desc keys[] = {
	{ "dynamic_shared_memory_type", CFG_BACKEND, set_backend, get_backend,
	  0, 0 },
	{ "dynshm_directory", CFG_DIRECTORY, set_directory, get_directory, 0, 0 },
	{ "max_segments", CFG_MAX_SEGMENTS, set_max_segments,
	  get_max_segments, 1, 1048560 },
	{ "max_processes", CFG_MAX_PROCESSES, set_max_processes,
	  get_max_processes, 1, 65536 },
	{ "min_dynamic_shared_memory", CFG_MIN_DSM, set_min_dsm, get_min_dsm,
	  0, 1ull << 36 },
	{ "huge_pages", CFG_HUGE_PAGES, set_huge_pages, get_huge_pages, 0, 0 },
	/* >>> mshare keys */
	{ "mshare", CFG_MSHARE, set_mshare, get_mshare, 0, 0 },
	{ "mshare_path", CFG_MSHARE_PATH, set_mshare_path, get_mshare_path,
	  0, 0 },
	/* <<< mshare keys */
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_desc *find_key(const char *name)
{
	for (size_t i = 0; name && i < NKEYS; i++)
		if (strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Every key's name, comma-separated, for messages (all eight fit). */
static void known_keys(char *known, size_t len)
{
	size_t used = 0;

	known[0] = '\0';
	for (size_t i = 0; i < NKEYS && used < len; i++)
		used += (size_t)snprintf(known + used, len - used, "%s%s",
					 i ? ", " : "", keys[i].name);
}

/* value: what was to be set, or NULL when only reading the key. */
static int unknown_key(const char *name, const char *value)
{
	char known[256];

	known_keys(known, sizeof(known));
	if (value)
		return dynshm_fail(EINVAL,
				"unknown configuration key '%s' (value '%s'; "
				"known: %s)",
				name ? name : "(null)", value, known);
	return dynshm_fail(EINVAL, "unknown configuration key '%s' (known: %s)",
			name ? name : "(null)", known);
}

void config_defaults(struct dynshm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (dynshm_impl_type_from_name(DYNSHM_DEFAULT_BACKEND, &cfg->backend) < 0)
		cfg->backend = DYNSHM_IMPL_POSIX;
	cfg->max_segments = DEFAULT_MAX_SEGMENTS;
	cfg->max_processes = DEFAULT_MAX_PROCESSES;
	cfg->min_dynamic_shared_memory = 0;
	cfg->huge_pages = DYNSHM_HUGE_PAGES_TRY;
	cfg->mshare = MSHARE_TRY;
	strcpy(cfg->mshare_path, MSHARE_DEFAULT_PATH);
}

DYNSHM_EXPORT int dynshm_config_new(dynshm_config **out)
{
	struct dynshm_config *cfg;

	if (!out)
		return dynshm_fail(EINVAL, "no result pointer given");
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return dynshm_fail(ENOMEM, "out of memory for a configuration");
	config_defaults(cfg);
	*out = cfg;
	return 0;
}

DYNSHM_EXPORT void dynshm_config_free(dynshm_config *cfg)
{
	free(cfg);
}

/* Apply one setting; a refused value leaves cfg as it was. */
static int set_key(struct dynshm_config *cfg, const char *key, const char *value)
{
	const struct key_desc *d = find_key(key);
	struct dynshm_config copy;
	int rc;

	if (!d)
		return unknown_key(key, value);
	copy = *cfg;
	rc = d->set(&copy, d, value);
	if (rc < 0)
		return rc;
	copy.explicit_keys |= 1u << d->key;
	*cfg = copy;
	return 0;
}

DYNSHM_EXPORT int dynshm_config_set(dynshm_config *cfg, const char *key,
			      const char *value)
{
	if (!cfg || !value)
		return dynshm_fail(EINVAL, "no configuration or value given");
	return set_key(cfg, key, value);
}

/* ---- config files ----------------------------------------------------------
 * PostgreSQL's syntax, the part that matters here: one "key = value" per
 * line, '#' starts a comment, values may be quoted with '...' ('' inside
 * for a quote) or "...".  Unlike postgresql.conf the '=' is required: a
 * line without one is far more often a typo than a style.
 */

static char *skip_space(char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static void trim_end(char *p)
{
	size_t n = strlen(p);

	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' ||
			 p[n - 1] == '\r'))
		p[--n] = '\0';
}

/* Unquote value in place; -1 on an unterminated quote or trailing junk. */
static int parse_value(char *value)
{
	char quote = value[0], *in = value + 1, *out = value;

	if (quote != '\'' && quote != '"') {
		char *hash = strchr(value, '#');

		if (hash)
			*hash = '\0';
		trim_end(value);
		return 0;
	}
	for (;;) {
		if (*in == '\0')
			return -1;
		if (*in == quote && in[1] == quote && quote == '\'') {
			*out++ = quote;
			in += 2;
			continue;
		}
		if (*in == quote)
			break;
		*out++ = *in++;
	}
	*out = '\0';
	in = skip_space(in + 1);
	return *in == '\0' || *in == '#' ? 0 : -1;
}

static int parse_line(struct dynshm_config *cfg, const char *path, int lineno,
		      char *line)
{
	char *key = skip_space(line), *eq, *value, raw[256];
	int rc;

	if (*key == '\0' || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (!eq)
		return dynshm_fail(EINVAL, "%s:%d: expected 'key = value', found "
					"'%s'",
				path, lineno, key);
	*eq = '\0';
	trim_end(key);
	value = skip_space(eq + 1);
	snprintf(raw, sizeof(raw), "%s", value); /* parse_value rewrites it */
	if (parse_value(value) < 0)
		return dynshm_fail(EINVAL, "%s:%d: %s: unterminated quote or text "
					"after the value: %s (allowed: "
					"'text', \"text\" or text, then "
					"only a # comment)",
				path, lineno, key, raw);
	rc = set_key(cfg, key, value);
	if (rc < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", dynshm_last_error());
		return dynshm_fail(-rc, "%s:%d: %s", path, lineno, why);
	}
	return 0;
}

static const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFDIR:
		return "a directory";
	default:
		return "not a regular file";
	}
}

/* 0 for a regular file; else the failure is recorded (EINVAL). */
static int check_regular(int fd, const char *path)
{
	struct stat st;

	if (dynshm_sys.fstat(fd, &st) < 0) {
		int err = errno;

		return dynshm_fail(err, "cannot stat configuration file '%s': %s",
				path, strerror(err));
	}
	if (!S_ISREG(st.st_mode))
		return dynshm_fail(EINVAL, "configuration file '%s' is %s "
				       "(allowed: a regular file)",
				path, file_kind(st.st_mode));
	return 0;
}

/*
 * The whole file into *out, NUL-terminated; *len_out its length, which a
 * NUL byte inside the text would make differ from strlen (refused later).
 */
static int read_file(const char *path, char **out, size_t *len_out)
{
	size_t len = 0, cap = 4096;
	char *text = malloc(cap);
	int fd, rc;

	if (!text)
		return dynshm_fail(ENOMEM, "out of memory reading '%s'", path);
	/*
	 * O_NONBLOCK: opening a FIFO with no writer would wait for one
	 * forever.  Only a regular file is read (after fstat, so a device or
	 * a FIFO is refused before any read could block on it).
	 */
	fd = dynshm_sys.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
	if (fd < 0) {
		int err = errno;

		free(text);
		return dynshm_fail(err, "cannot open configuration file '%s': %s",
				path, strerror(err));
	}
	rc = check_regular(fd, path); /* -EINVAL, or fstat's own code */
	if (rc < 0) {
		DYNSHM_SAVE_ERRNO(dynshm_sys.close(fd));
		free(text);
		return rc;
	}
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *bigger = cap < (1u << 20) ? realloc(text, cap * 2)
							: NULL;

			if (!bigger) {
				dynshm_sys.close(fd);
				free(text);
				return dynshm_fail(EFBIG, "configuration file '%s' "
						       "is larger than 1 MiB",
						path);
			}
			text = bigger;
			cap *= 2;
		}
		n = dynshm_sys.read(fd, text + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			dynshm_sys.close(fd);
			free(text);
			return dynshm_fail(err, "cannot read '%s': %s", path,
					strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	dynshm_sys.close(fd);
	text[len] = '\0';
	*out = text;
	*len_out = len;
	return 0;
}

/*
 * A NUL byte would end the text early and the lines after it would be
 * skipped in silence: refuse it, naming the line.  0 when there is none.
 */
static int refuse_nul(const char *path, const char *text, size_t len)
{
	const char *nul = memchr(text, '\0', len);
	int lineno = 1;

	if (!nul)
		return 0;
	for (const char *p = text; p < nul; p++)
		lineno += *p == '\n';
	return dynshm_fail(EINVAL, "%s:%d: a NUL byte at offset %zu (allowed: "
			       "text; is the file binary, or UTF-16?)",
			path, lineno, (size_t)(nul - text));
}

DYNSHM_EXPORT int dynshm_config_load_file(dynshm_config *cfg, const char *path)
{
	struct dynshm_config copy;
	char *text = NULL, *line, *next;
	size_t len = 0;
	int lineno = 0, rc;

	if (!cfg || !path)
		return dynshm_fail(EINVAL, "no configuration or path given");
	rc = read_file(path, &text, &len);
	if (rc < 0)
		return rc;
	rc = refuse_nul(path, text, len);
	copy = *cfg; /* all or nothing: a refused file changes nothing */
	line = text;
	/* A UTF-8 byte-order mark (some Windows editors write one) is no key. */
	if (strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	for (; rc == 0 && line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		rc = parse_line(&copy, path, ++lineno, line);
	}
	free(text);
	if (rc == 0)
		*cfg = copy;
	return rc;
}

extern char **environ;

/*
 * A DYNSHM_* variable that names no key is refused, as an unknown key in a
 * file is: DYNSHM_MAX_SEGMENT=100 ignored in silence would leave an
 * operator believing it counted.  Not configuration, so not refused:
 * DYNSHM_CONFIG (the file) and DYNSHM_TEST_* (the test programs' own).
 */
static int refuse_unknown_variables(void)
{
	static const char prefix[] = "DYNSHM_";
	const size_t plen = sizeof(prefix) - 1;

	for (char **e = environ; e && *e; e++) {
		const char *name = *e + plen, *eq = strchr(*e, '=');
		size_t nlen;
		bool known = false;

		if (strncmp(*e, prefix, plen) != 0 || !eq)
			continue;
		nlen = (size_t)(eq - name);
		if ((nlen == 6 && strncmp(name, "CONFIG", 6) == 0) ||
		    strncmp(name, "TEST_", 5) == 0)
			continue;
		for (size_t i = 0; !known && i < NKEYS; i++) {
			const char *k = keys[i].name;
			size_t j = 0;

			/* upper case, as dynshm_config_load reads them */
			while (j < nlen && k[j] &&
			       name[j] == toupper((unsigned char)k[j]))
				j++;
			known = j == nlen && k[j] == '\0';
		}
		if (!known) {
			char known_list[256];

			known_keys(known_list, sizeof(known_list));
			return dynshm_fail(EINVAL,
					"environment %.*s names no configuration "
					"key (DYNSHM_ and a key in upper case; "
					"keys: %s); unset it or correct its "
					"name",
					(int)(eq - *e), *e, known_list);
		}
	}
	return 0;
}

DYNSHM_EXPORT int dynshm_config_load(dynshm_config *cfg, const char *path)
{
	struct dynshm_config copy;
	const char *file = path ? path : getenv("DYNSHM_CONFIG");
	int rc = 0;

	if (!cfg)
		return dynshm_fail(EINVAL, "no configuration given");
	copy = *cfg;
	if (file && *file)
		rc = dynshm_config_load_file(&copy, file);
	if (rc == 0)
		rc = refuse_unknown_variables();
	for (size_t i = 0; rc == 0 && i < NKEYS; i++) {
		char var[64];
		const char *value;

		snprintf(var, sizeof(var), "DYNSHM_%s", keys[i].name);
		for (char *p = var; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		value = getenv(var);
		if (!value)
			continue;
		rc = set_key(&copy, keys[i].name, value);
		if (rc < 0) {
			char why[512];

			snprintf(why, sizeof(why), "%s", dynshm_last_error());
			rc = dynshm_fail(-rc, "environment %s: %s", var, why);
		}
	}
	if (rc == 0)
		*cfg = copy;
	return rc;
}

DYNSHM_EXPORT int dynshm_config_get(const dynshm_config *cfg, const char *key,
			      char *buf, size_t len)
{
	const struct key_desc *d = find_key(key);
	int n;

	if (!cfg || !buf)
		return dynshm_fail(EINVAL, "no configuration or buffer given");
	if (!d)
		return unknown_key(key, NULL);
	n = d->get(cfg, buf, len);
	if (n < 0 || (size_t)n >= len)
		return dynshm_fail(ERANGE, "the value of %s needs a buffer of %d "
				       "bytes (%d and its NUL); %zu given",
				d->name, n + 1, n, len);
	return 0;
}
