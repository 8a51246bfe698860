/*
 * config.c - configuration keys, their defaults and their validation.
 *
 * One table describes every key: its name (PostgreSQL's where one exists),
 * how to parse it and what is allowed.  Every source of settings - the API,
 * and later files and the environment - goes through config_set_one(), so a
 * bad value is refused the same way wherever it came from, with a message
 * that names the key, the value and what is allowed.
 */
#include "config.h"

#include "error.h"

#include <build_config.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_SEGMENTS 4096u
#define DEFAULT_MAX_PROCESSES 256u

struct key_desc {
	const char *name;
	enum config_key key;
	int (*set)(struct dsm_config *cfg, const struct key_desc *d,
		   const char *value);
	int (*get)(const struct dsm_config *cfg, char *buf, size_t len);
	uint64_t min, max; /* integer keys */
};

static int set_backend(struct dsm_config *cfg, const struct key_desc *d,
		       const char *value)
{
	if (dsm_impl_type_from_name(value, &cfg->backend) < 0)
		return dsm_fail(EINVAL, "invalid value '%s' for %s "
					"(allowed: posix, sysv, mmap, none)",
				value, d->name);
	return 0;
}

static int get_backend(const struct dsm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", dsm_impl_type_name(cfg->backend));
}

static int set_directory(struct dsm_config *cfg, const struct key_desc *d,
			 const char *value)
{
	if (value[0] != '\0' && value[0] != '/')
		return dsm_fail(EINVAL, "invalid value '%s' for %s (allowed: "
					"an absolute path, or empty for the "
					"instance directory)",
				value, d->name);
	if (strlen(value) >= sizeof(cfg->directory))
		return dsm_fail(EINVAL, "value for %s is longer than %zu bytes",
				d->name, sizeof(cfg->directory) - 1);
	strcpy(cfg->directory, value);
	return 0;
}

static int get_directory(const struct dsm_config *cfg, char *buf, size_t len)
{
	return snprintf(buf, len, "%s", cfg->directory);
}

/* A whole number, no sign, no junk; units are for size keys (later). */
static int parse_count(const struct key_desc *d, const char *value,
		       uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)value[0]))
		goto bad;
	v = strtoull(value, &end, 10);
	if (errno || *end != '\0' || v < d->min || v > d->max)
		goto bad;
	*out = v;
	return 0;
bad:
	return dsm_fail(EINVAL,
			"invalid value '%s' for %s (allowed: a whole number "
			"from %llu to %llu)",
			value, d->name, (unsigned long long)d->min,
			(unsigned long long)d->max);
}

static int set_max_segments(struct dsm_config *cfg, const struct key_desc *d,
			    const char *value)
{
	uint64_t v;
	int rc = parse_count(d, value, &v);

	if (rc == 0)
		cfg->max_segments = (uint32_t)v;
	return rc;
}

static int get_max_segments(const struct dsm_config *cfg, char *buf,
			    size_t len)
{
	return snprintf(buf, len, "%u", cfg->max_segments);
}

static int set_max_processes(struct dsm_config *cfg, const struct key_desc *d,
			     const char *value)
{
	uint64_t v;
	int rc = parse_count(d, value, &v);

	if (rc == 0)
		cfg->max_processes = (uint32_t)v;
	return rc;
}

static int get_max_processes(const struct dsm_config *cfg, char *buf,
			     size_t len)
{
	return snprintf(buf, len, "%u", cfg->max_processes);
}

static const struct key_desc keys[] = {
	{ "dynamic_shared_memory_type", CFG_BACKEND, set_backend, get_backend,
	  0, 0 },
	{ "dsm_directory", CFG_DIRECTORY, set_directory, get_directory, 0, 0 },
	{ "max_segments", CFG_MAX_SEGMENTS, set_max_segments,
	  get_max_segments, 1, 1048560 },
	{ "max_processes", CFG_MAX_PROCESSES, set_max_processes,
	  get_max_processes, 1, 65536 },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_desc *find_key(const char *name)
{
	for (size_t i = 0; name && i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static int unknown_key(const char *name)
{
	return dsm_fail(EINVAL,
			"unknown configuration key '%s' (known: "
			"dynamic_shared_memory_type, dsm_directory, "
			"max_segments, max_processes)",
			name ? name : "(null)");
}

void config_defaults(struct dsm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (dsm_impl_type_from_name(DSM_DEFAULT_BACKEND, &cfg->backend) < 0)
		cfg->backend = DSM_IMPL_POSIX;
	cfg->max_segments = DEFAULT_MAX_SEGMENTS;
	cfg->max_processes = DEFAULT_MAX_PROCESSES;
}

DSM_EXPORT int dsm_config_new(dsm_config **out)
{
	struct dsm_config *cfg = malloc(sizeof(*cfg));

	if (!cfg)
		return dsm_fail(ENOMEM, "out of memory for a configuration");
	config_defaults(cfg);
	*out = cfg;
	return 0;
}

DSM_EXPORT void dsm_config_free(dsm_config *cfg)
{
	free(cfg);
}

DSM_EXPORT int dsm_config_set(dsm_config *cfg, const char *key,
			      const char *value)
{
	const struct key_desc *d = find_key(key);
	struct dsm_config copy;
	int rc;

	if (!cfg || !value)
		return dsm_fail(EINVAL, "no configuration or value given");
	if (!d)
		return unknown_key(key);
	copy = *cfg; /* a refused value leaves cfg as it was */
	rc = d->set(&copy, d, value);
	if (rc < 0)
		return rc;
	copy.explicit_keys |= 1u << d->key;
	*cfg = copy;
	return 0;
}

DSM_EXPORT int dsm_config_get(const dsm_config *cfg, const char *key,
			      char *buf, size_t len)
{
	const struct key_desc *d = find_key(key);
	int n;

	if (!cfg || !buf)
		return dsm_fail(EINVAL, "no configuration or buffer given");
	if (!d)
		return unknown_key(key);
	n = d->get(cfg, buf, len);
	if (n < 0 || (size_t)n >= len)
		return dsm_fail(ENAMETOOLONG, "buffer too small for %s",
				d->name);
	return 0;
}
