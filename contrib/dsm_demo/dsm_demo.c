/* SPDX-License-Identifier: MIT */
/*
 * dsm_demo - create, read, list and destroy dynamic shared memory segments
 * from a shell.
 *
 * Two jobs: it is the demo (a segment created by one process and read by
 * another, which is the whole point of the library), and it is the
 * operator's window into an instance - PostgreSQL has no way to list its DSM
 * segments, and an operator chasing a leak needs one.  It uses only the
 * public API, so it doubles as an example.
 *
 * Exit status: 0 success, 1 an error from the library or a bad handle
 * (one line on stderr), 2 a usage error.
 */
#include <dynshm/dsm.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USER 1
#define EXIT_USAGE 2
/*
 * list and info only look: they neither create an instance nor reap, so
 * they show what dead processes still hold until gc (or another command
 * that joins) releases it.
 */
#define LOOK_ONLY (DYNSHM_OPEN_EXISTING | DYNSHM_OPEN_NOREAP)

struct options {
	const char *instance;
	const char *config;
	const char *backend;
};

static const char *prog = "dsm_demo";

/* Given by contrib/dsm_demo/meson.build: the project's version. */
#ifndef DSM_DEMO_VERSION
#define DSM_DEMO_VERSION "unknown"
#endif

static const char usage_text[] =
	"usage: dsm_demo [--instance NAME|DIR] [--config FILE] "
	"[--backend TYPE] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  create [--name NAME] [--hold] TEXT\n"
	"                         create a segment holding TEXT, print its "
	"handle\n"
	"  read HANDLE|NAME       print the text a segment holds\n"
	"  list [--json] [--noheadings] [-o COLUMNS]\n"
	"                         list the segments of the instance\n"
	"  destroy HANDLE|NAME    destroy a segment (when its last user "
	"detaches)\n"
	"  gc                     release what dead processes held\n"
	"  info [--json]          describe the instance\n"
	"  reset                  destroy the instance and everything in it\n"
	"\n"
	"options:\n"
	"  --instance NAME|DIR    instance name (default 'default') or "
	"directory\n"
	"  --config FILE          configuration file (default: "
	"$DYNSHM_CONFIG)\n"
	"  --backend TYPE         posix, sysv, mmap or none (for a new "
	"instance)\n"
	"  -h, --help             this text; COMMAND --help for a command\n"
	"  -V, --version          print the version and exit\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
								...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(try '%s --help')\n", prog);
	return EXIT_USAGE;
}

static int fail(int rc, const char *what)
{
	const char *detail = dynshm_last_error();

	fprintf(stderr, "%s: %s: %s\n", prog, what,
		*detail ? detail : dynshm_strerror(rc));
	return EXIT_USER;
}

/*
 * 0, an exit status (a configuration error, printed), or the negative
 * error of dynshm_instance_open, not printed: the caller decides.
 */
static int open_instance_rc(const struct options *o, unsigned flags,
			    dynshm_instance **inst)
{
	dynshm_config *cfg;
	int rc = dynshm_config_new(&cfg);

	if (rc < 0)
		return fail(rc, "configuration");
	rc = dynshm_config_load(cfg, o->config);
	if (rc == 0 && o->backend)
		rc = dynshm_config_set(cfg, "dynamic_shared_memory_type",
				    o->backend);
	if (rc < 0) {
		dynshm_config_free(cfg);
		return fail(rc, "configuration");
	}
	rc = dynshm_instance_open(o->instance, cfg, flags, inst);
	dynshm_config_free(cfg);
	return rc;
}

static int open_instance(const struct options *o, unsigned flags,
			 dynshm_instance **inst)
{
	int rc = open_instance_rc(o, flags, inst);

	return rc < 0 ? fail(rc, "cannot open instance") : rc;
}

/* Hex digits as create prints them (an optional 0x is accepted). */
static int parse_handle(const char *text, dynshm_handle *out)
{
	char *end;

	if (text[0] == '-' || text[0] == '+' || text[0] == ' ')
		return -1;
	errno = 0;
	*out = strtoull(text, &end, 16);
	if (errno || end == text || *end != '\0' || *out == 0)
		return -1;
	return 0;
}

/*
 * Map the segment an argument names: a handle if it reads as one, else (or
 * if no segment has that handle) a segment name.  Prints the error.
 */
static int attach_arg(dynshm_instance *inst, const char *what, const char *arg,
		      dynshm_segment **seg)
{
	char by_handle[512] = "";
	dynshm_handle handle;
	int rc = -ENOENT;

	if (parse_handle(arg, &handle) == 0) {
		rc = dynshm_attach(inst, handle, seg);
		if (rc != -ENOENT)
			return rc < 0 ? fail(rc, what) : 0;
		snprintf(by_handle, sizeof(by_handle), "%s",
			 dynshm_last_error());
	}
	rc = dynshm_attach_named(inst, arg, seg);
	if (rc == 0)
		return 0;
	if (by_handle[0] && rc == -ENOENT)
		fprintf(stderr, "%s: %s: %s, and no segment is named '%s'\n",
			prog, what, by_handle, arg);
	else if (rc == -EINVAL)
		fprintf(stderr, "%s: %s: '%s' is neither a segment handle (hex "
				"digits as printed by create) nor a segment "
				"name: %s\n",
			prog, what, arg, dynshm_last_error());
	else
		fail(rc, what);
	return EXIT_USER;
}

/* Each command: (options, argc, argv) with argv[0] the command name. */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/*
 * Block and catch the signals that end --hold.  Done before the handle is
 * printed: a script that reads the handle and interrupts at once must not
 * find SIGINT still ignored (as a shell leaves it for background jobs).
 */
static void catch_signals(sigset_t *old)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, old);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void wait_for_signal(const sigset_t *old)
{
	while (!interrupted)
		sigsuspend(old);
	sigprocmask(SIG_SETMASK, old, NULL);
}

static int cmd_create(const struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "hold", no_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL;
	dynshm_instance *inst;
	dynshm_segment *seg;
	sigset_t old;
	int hold = 0, opt, rc;
	size_t len;

	while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if (opt == 'H')
			hold = 1;
		else if (opt == 'n')
			name = optarg;
		else if (opt == 'h') {
			printf("usage: dsm_demo create [--name NAME] [--hold] "
			       "TEXT\n"
			       "Create a segment holding TEXT and print its "
			       "handle.  The segment is pinned so it\n"
			       "outlives this command; with --hold it is not "
			       "pinned and stays mapped until\n"
			       "this process is interrupted, then goes away.\n"
			       "With --name, other commands can find it by "
			       "NAME (1 to 63 letters, digits\n"
			       "and _ . - : /), which must not be in use.\n");
			return 0;
		} else
			return usage_error("create: unknown option or missing "
					   "value '%s'",
					   argv[optind - 1]);
	}
	if (argc - optind != 1)
		return usage_error("create takes exactly one TEXT");
	rc = open_instance(o, 0, &inst);
	if (rc)
		return rc;
	len = strlen(argv[optind]) + 1;
	if (name)
		rc = dynshm_create_named(inst, name, len, 0, &seg);
	else
		rc = dynshm_create(inst, len, 0, &seg);
	if (rc < 0) {
		fail(rc, "cannot create segment");
		dynshm_instance_close(inst);
		return EXIT_USER;
	}
	memcpy(dynshm_segment_address(seg), argv[optind], len);
	if (!hold && (rc = dynshm_pin_segment(seg)) < 0) {
		fail(rc, "cannot pin segment");
		dynshm_instance_close(inst); /* unpinned: it goes away with us */
		return EXIT_USER;
	}
	if (hold)
		catch_signals(&old);
	printf("%016" PRIx64 "\n", dynshm_segment_handle(seg));
	fflush(stdout);
	if (hold)
		wait_for_signal(&old);
	dynshm_instance_close(inst);
	return 0;
}

static int simple_help(int argc, char **argv, const char *text)
{
	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(text, stdout);
		return 1;
	}
	return 0;
}

static int cmd_read(const struct options *o, int argc, char **argv)
{
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc;

	if (simple_help(argc, argv, "usage: dsm_demo read HANDLE|NAME\n"
				    "Print the text a segment holds, followed "
				    "by a newline.  An argument that reads\n"
				    "as hex digits is tried as a handle "
				    "first, then as a name.\n"))
		return 0;
	if (argc != 2)
		return usage_error("read takes exactly one HANDLE or NAME");
	if ((rc = open_instance(o, DYNSHM_OPEN_EXISTING, &inst)) != 0)
		return rc;
	if ((rc = attach_arg(inst, "cannot read", argv[1], &seg)) != 0) {
		dynshm_instance_close(inst);
		return rc;
	}
	fwrite(dynshm_segment_address(seg), 1,
	       strnlen(dynshm_segment_address(seg), dynshm_segment_size(seg)),
	       stdout);
	putchar('\n');
	dynshm_instance_close(inst);
	return 0;
}

/* The snapshot list prints: collected first so the columns fit. */
struct list_state {
	dynshm_segment_info *infos;
	size_t n, cap;
};

static void format_age(uint64_t ns, char *buf, size_t len)
{
	uint64_t s = ns / 1000000000u;

	if (s < 120)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 7200)
		snprintf(buf, len, "%" PRIu64 "m", s / 60);
	else
		snprintf(buf, len, "%" PRIu64 "h", s / 3600);
}

static const char *state_name(dynshm_segment_state state)
{
	switch (state) {
	case DYNSHM_SEGMENT_CREATING:
		return "creating";
	case DYNSHM_SEGMENT_ACTIVE:
		return "active";
	case DYNSHM_SEGMENT_MORIBUND:
		return "moribund";
	case DYNSHM_SEGMENT_VANISHED:
		return "vanished";
	}
	return "?";
}

static int collect_segment(const dynshm_segment_info *i, void *arg)
{
	struct list_state *st = arg;

	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		dynshm_segment_info *more =
			realloc(st->infos, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		st->infos = more;
		st->cap = cap;
	}
	st->infos[st->n++] = *i;
	return 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * What holds a segment's memory: its own backend object, or the region it
 * was carved from (whose object the library reports as the backend).
 */
static const char *backend_of(const dynshm_segment_info *i)
{
	return i->in_region ? "region" : dynshm_impl_type_name(i->backend);
}

static uint64_t age_of(const dynshm_segment_info *i, uint64_t now)
{
	return now > i->created_ns ? now - i->created_ns : 0;
}

/* ---- JSON ------------------------------------------------------------------
 * `list --json` and `info --json` print one object whose "version" says how
 * to read it: it grows when a field is removed or changes meaning; fields
 * may be added in any version, so readers ignore keys they do not know.
 */
#define JSON_VERSION 1

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(const char *text)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_json(const struct list_state *st, uint64_t now)
{
	printf("{\"version\": %d, \"segments\": [", JSON_VERSION);
	for (size_t k = 0; k < st->n; k++) {
		const dynshm_segment_info *i = &st->infos[k];

		printf("%s\n  {\"handle\": \"%016" PRIx64 "\", \"name\": ",
		       k ? "," : "", i->handle);
		if (i->name[0])
			json_string(i->name);
		else
			printf("null");
		printf(", \"size\": %" PRIu64 ", \"backend\": \"%s\", "
		       "\"state\": \"%s\", \"references\": %u, "
		       "\"pinned\": %s, \"creator_pid\": %d, "
		       "\"age_seconds\": %" PRIu64 "}",
		       i->size, backend_of(i), state_name(i->state),
		       i->references,
		       i->pinned ? "true" : "false", (int)i->creator_pid,
		       age_of(i, now) / 1000000000u);
	}
	printf("%s]}\n", st->n ? "\n" : "");
}

/* ---- the table: columns chosen with -o, as lsipc(1) does ----------------- */

enum column {
	COL_HANDLE,
	COL_NAME,
	COL_SIZE,
	COL_BACKEND,
	COL_STATE,
	COL_REFS,
	COL_PINNED,
	COL_CREATOR,
	COL_AGE,
	NCOLUMNS
};

/*
 * gap: the spaces before the column (the default table's spacing);
 * width 0: as wide as its widest cell (NAME).  A column that is last on a
 * line is not padded, so no line ends in spaces.
 */
static const struct column_desc {
	const char *name;
	const char *gap;
	int width;
	int right; /* right-aligned: numbers */
} columns[NCOLUMNS] = {
	[COL_HANDLE] = { "HANDLE", "", 16, 0 },
	[COL_NAME] = { "NAME", "  ", 0, 0 },
	[COL_SIZE] = { "SIZE", "  ", 12, 1 },
	[COL_BACKEND] = { "BACKEND", "  ", 7, 0 },
	[COL_STATE] = { "STATE", " ", 8, 0 },
	[COL_REFS] = { "REFS", " ", 4, 1 },
	[COL_PINNED] = { "PINNED", "  ", 6, 0 },
	[COL_CREATOR] = { "CREATOR", " ", 8, 1 },
	[COL_AGE] = { "AGE", "  ", 0, 0 },
};

struct table_options {
	enum column cols[NCOLUMNS * 4]; /* as given; repeats allowed */
	size_t ncols;
	int headings;
};

/* "name,SIZE,age": column names in any case.  -1 (usage error printed). */
static int parse_columns(const char *list, struct table_options *t)
{
	const char *p = list;

	t->ncols = 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		int found = -1;

		for (int c = 0; c < NCOLUMNS; c++)
			if (len == strlen(columns[c].name) &&
			    strncasecmp(p, columns[c].name, len) == 0)
				found = c;
		if (found < 0 || t->ncols == sizeof(t->cols) / sizeof(t->cols[0])) {
			usage_error("list: unknown column '%.*s' (allowed: "
				    "HANDLE, NAME, SIZE, BACKEND, STATE, REFS, "
				    "PINNED, CREATOR, AGE)",
				    (int)len, p);
			return -1;
		}
		t->cols[t->ncols++] = (enum column)found;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

static void cell(const dynshm_segment_info *i, enum column c, uint64_t now,
		 char *buf, size_t len)
{
	switch (c) {
	case COL_HANDLE:
		snprintf(buf, len, "%016" PRIx64, i->handle);
		break;
	case COL_NAME:
		snprintf(buf, len, "%s", i->name[0] ? i->name : "-");
		break;
	case COL_SIZE:
		snprintf(buf, len, "%" PRIu64, i->size);
		break;
	case COL_BACKEND:
		snprintf(buf, len, "%s", backend_of(i));
		break;
	case COL_STATE:
		snprintf(buf, len, "%s", state_name(i->state));
		break;
	case COL_REFS:
		snprintf(buf, len, "%u", i->references);
		break;
	case COL_PINNED:
		snprintf(buf, len, "%s", i->pinned ? "yes" : "no");
		break;
	case COL_CREATOR:
		snprintf(buf, len, "%d", (int)i->creator_pid);
		break;
	case COL_AGE:
	case NCOLUMNS:
		format_age(age_of(i, now), buf, len);
		break;
	}
}

static void print_row(const struct table_options *t, const int *width,
		      char (*cells)[DYNSHM_SEGMENT_NAME_MAX + 1])
{
	for (size_t k = 0; k < t->ncols; k++) {
		const struct column_desc *d = &columns[t->cols[k]];
		int last = k + 1 == t->ncols;

		printf("%s", k ? d->gap : "");
		if (d->right)
			printf("%*s", width[k], cells[k]);
		else
			printf("%-*s", last ? 0 : width[k], cells[k]);
	}
	putchar('\n');
}

static void print_table(const struct list_state *st, uint64_t now,
			const struct table_options *t)
{
	char cells[NCOLUMNS * 4][DYNSHM_SEGMENT_NAME_MAX + 1];
	int width[NCOLUMNS * 4];

	for (size_t k = 0; k < t->ncols; k++) {
		const struct column_desc *d = &columns[t->cols[k]];

		width[k] = d->width ? d->width : (int)strlen(d->name);
		for (size_t r = 0; !d->width && r < st->n; r++) {
			cell(&st->infos[r], t->cols[k], now, cells[k],
			     sizeof(cells[k]));
			if ((int)strlen(cells[k]) > width[k])
				width[k] = (int)strlen(cells[k]);
		}
		snprintf(cells[k], sizeof(cells[k]), "%s", d->name);
	}
	if (t->headings)
		print_row(t, width, cells);
	for (size_t r = 0; r < st->n; r++) {
		for (size_t k = 0; k < t->ncols; k++)
			cell(&st->infos[r], t->cols[k], now, cells[k],
			     sizeof(cells[k]));
		print_row(t, width, cells);
	}
}

static const char list_help[] =
	"usage: dsm_demo list [--json] [-n|--noheadings] [-o|--output "
	"COLUMNS]\n"
	"List the segments of the instance.  --json prints a JSON object for "
	"scripts:\n"
	"{\"version\": 1, \"segments\": [...]} (name is null for a segment "
	"without one).\n"
	"-o picks the table's columns, comma-separated, in any case: HANDLE, "
	"NAME,\n"
	"SIZE, BACKEND, STATE, REFS, PINNED, CREATOR, AGE.  -n leaves out the "
	"header line.\n";

static int cmd_list(const struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "noheadings", no_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct table_options table = { .ncols = NCOLUMNS, .headings = 1 };
	struct list_state st = { NULL, 0, 0 };
	dynshm_instance *inst;
	int json = 0, opt, rc;

	for (int c = 0; c < NCOLUMNS; c++)
		table.cols[c] = (enum column)c;
	while ((opt = getopt_long(argc, argv, "+Jno:h", longopts, NULL)) != -1) {
		if (opt == 'J')
			json = 1;
		else if (opt == 'n')
			table.headings = 0;
		else if (opt == 'o') {
			if (parse_columns(optarg, &table) < 0)
				return EXIT_USAGE;
		} else if (opt == 'h') {
			fputs(list_help, stdout);
			return 0;
		} else
			return usage_error("list: unknown option or missing "
					   "value '%s'",
					   argv[optind - 1]);
	}
	if (optind < argc)
		return usage_error("list: unexpected argument '%s'",
				   argv[optind]);
	if ((rc = open_instance(o, LOOK_ONLY, &inst)) != 0)
		return rc;
	rc = dynshm_foreach_segment(inst, collect_segment, &st);
	dynshm_instance_close(inst);
	if (rc == -ENOMEM)
		fprintf(stderr, "%s: cannot list: out of memory\n", prog);
	else if (rc < 0)
		fail(rc, "cannot list");
	else if (json)
		print_json(&st, realtime_ns());
	else
		print_table(&st, realtime_ns(), &table);
	free(st.infos);
	return rc < 0 ? EXIT_USER : 0;
}

/*
 * >>> vanished segments (issue 13, item 6): another program removed their
 * object (Python's resource tracker, ipcrm, rm).  They cannot be attached,
 * so destroy finds them through the list, and gc says what it retired.
 */
struct vanished_list {
	const char *want; /* destroy: the argument; NULL: collect all */
	dynshm_handle want_handle;
	dynshm_segment_info found[64];
	size_t n;
};

static int collect_vanished(const dynshm_segment_info *i, void *arg)
{
	struct vanished_list *v = arg;

	if (i->state != DYNSHM_SEGMENT_VANISHED ||
	    v->n == sizeof(v->found) / sizeof(v->found[0]))
		return 0;
	/* by handle, or by name: "" names no segment (an unnamed one has "") */
	if (v->want && i->handle != v->want_handle &&
	    (!i->name[0] || strcmp(i->name, v->want) != 0))
		return 0;
	v->found[v->n++] = *i;
	return 0;
}

static void say_vanished(const char *what, const dynshm_segment_info *i)
{
	printf("%s segment %016" PRIx64 "%s%s%s: its %s object had vanished "
	       "(another program removed it)\n",
	       what, i->handle, i->name[0] ? " ('" : "", i->name,
	       i->name[0] ? "')" : "", backend_of(i));
}

/* destroy of a vanished segment: 1 when it was one (done), else 0. */
static int destroy_vanished(dynshm_instance *inst, const char *arg, int *rc)
{
	struct vanished_list v;

	memset(&v, 0, sizeof(v));
	v.want = arg;
	if (parse_handle(arg, &v.want_handle) < 0)
		v.want_handle = 0;
	if (dynshm_foreach_segment(inst, collect_vanished, &v) < 0 || v.n == 0)
		return 0;
	*rc = dynshm_destroy(inst, v.found[0].handle);
	if (*rc == 0)
		say_vanished("destroyed", &v.found[0]);
	return 1;
}
/* <<< vanished segments */

static int cmd_destroy(const struct options *o, int argc, char **argv)
{
	dynshm_instance *inst;
	dynshm_segment *seg;
	int rc;

	if (simple_help(argc, argv,
			"usage: dsm_demo destroy HANDLE|NAME\n"
			"Unpin the segment and refuse new attaches; it is "
			"removed when the last process\nthat maps it "
			"detaches (at once if none does).  Its name is free "
			"again at once.\n"))
		return 0;
	if (argc != 2)
		return usage_error("destroy takes exactly one HANDLE or NAME");
	if ((rc = open_instance(o, DYNSHM_OPEN_EXISTING, &inst)) != 0)
		return rc;
	if (destroy_vanished(inst, argv[1], &rc)) {
		if (rc < 0)
			fail(rc, "cannot destroy");
		dynshm_instance_close(inst);
		return rc < 0 ? EXIT_USER : 0;
	}
	/* Attach to resolve a name the way every other process would. */
	if ((rc = attach_arg(inst, "cannot destroy", argv[1], &seg)) != 0) {
		dynshm_instance_close(inst);
		return rc;
	}
	rc = dynshm_destroy(inst, dynshm_segment_handle(seg));
	if (rc < 0)
		fail(rc, "cannot destroy");
	dynshm_instance_close(inst); /* our mapping was the last, maybe */
	return rc < 0 ? EXIT_USER : 0;
}

static int cmd_gc(const struct options *o, int argc, char **argv)
{
	struct vanished_list gone;
	dynshm_instance *inst;
	unsigned reaped = 0;
	int rc;

	if (simple_help(argc, argv, "usage: dsm_demo gc\n"
				    "Release the references of processes that "
				    "died and destroy what nobody holds;\n"
				    "retire segments whose object another "
				    "program removed.\n"))
		return 0;
	if (argc != 1)
		return usage_error("gc: unexpected argument '%s'", argv[1]);
	/* NOREAP: joining would release the dead and leave us none to count */
	if ((rc = open_instance(o, DYNSHM_OPEN_EXISTING | DYNSHM_OPEN_NOREAP,
				&inst)) != 0)
		return rc;
	memset(&gone, 0, sizeof(gone));
	dynshm_foreach_segment(inst, collect_vanished, &gone);
	rc = dynshm_reap(inst, &reaped);
	if (rc < 0)
		fail(rc, "cannot reap");
	else
		printf("released %u dead process%s\n", reaped,
		       reaped == 1 ? "" : "es");
	for (size_t k = 0; rc == 0 && k < gone.n; k++)
		say_vanished("retired", &gone.found[k]);
	dynshm_instance_close(inst);
	return rc < 0 ? EXIT_USER : 0;
}

/* The region and its pages: what is in use, why, and what would do better. */
static void print_region(const dynshm_instance_info *info)
{
	static const char *const huge[] = { "off", "try", "on" };

	if (info->region_size == 0) {
		printf("region:          none\n");
		printf("  why:           %s\n", info->region_note);
		return;
	}
	printf("region:          %" PRIu64 " bytes (min_dynamic_shared_memory)"
	       ", %u segments in %" PRIu64 " bytes, largest free block %" PRIu64
	       " bytes\n",
	       info->region_size, info->region_segments, info->region_used,
	       info->region_largest_free);
	if (info->region_same_address)
		printf("  mapped at:     %p, the address its creator recorded\n",
		       info->region_address);
	else
		printf("  mapped at:     %p here; the recorded address %p is "
		       "taken in this process\n",
		       info->region_address, info->region_recorded_address);
	printf("  pages:         %s, %" PRIu64 " kB (huge_pages = %s)\n",
	       info->region_pages, info->region_page_size >> 10,
	       (unsigned)info->huge_pages < 3 ? huge[info->huge_pages] : "?");
	printf("  why:           %s\n", info->region_note);
}

/*
 * The control lock's statistics: how often it was taken and how often a
 * process had to wait for it, since the instance was created.
 */
static void print_lock(const dynshm_instance_info *info)
{
	printf("control lock:    taken %" PRIu64 " times; ",
	       info->lock_acquisitions);
	if (!info->lock_waits) {
		printf("none waited\n");
		return;
	}
	printf("%" PRIu64 " waited (%.1f%%), %.1f us each on average\n",
	       info->lock_waits,
	       info->lock_acquisitions ? 100.0 * (double)info->lock_waits /
						 (double)info->lock_acquisitions
				       : 0.0,
	       (double)info->lock_wait_ns / (double)info->lock_waits / 1e3);
}

/* info --json: the fields of dynshm_instance_info, named as there. */
static void print_info_json(const dynshm_instance_info *info)
{
	static const char *const huge[] = { "off", "try", "on" };

	printf("{\"version\": %d,\n \"name\": ", JSON_VERSION);
	json_string(info->name);
	printf(",\n \"directory\": ");
	json_string(info->directory);
	printf(",\n \"instance_id\": \"%016" PRIx64 "\",\n"
	       " \"backend\": \"%s\",\n"
	       " \"segments\": %u, \"max_segments\": %u,\n"
	       " \"processes\": %u, \"max_processes\": %u,\n"
	       " \"control_size\": %" PRIu64 ", \"creator_pid\": %d,\n"
	       " \"lock_repairs\": %" PRIu64 ", \"processes_reaped\": %" PRIu64
	       ",\n"
	       " \"lock_acquisitions\": %" PRIu64 ", \"lock_waits\": %" PRIu64
	       ", \"lock_wait_ns\": %" PRIu64 ",\n",
	       info->instance_id, dynshm_impl_type_name(info->backend),
	       info->segments, info->max_segments, info->processes,
	       info->max_processes, info->control_size, (int)info->creator_pid,
	       info->lock_repairs, info->processes_reaped,
	       info->lock_acquisitions, info->lock_waits, info->lock_wait_ns);
	printf(" \"region\": {\"size\": %" PRIu64 ", \"used\": %" PRIu64
	       ", \"largest_free\": %" PRIu64 ", \"segments\": %u, "
	       "\"same_address\": %s, \"pages\": ",
	       info->region_size, info->region_used, info->region_largest_free,
	       info->region_segments,
	       info->region_same_address ? "true" : "false");
	json_string(info->region_pages);
	printf(", \"page_size\": %" PRIu64 ", \"huge_pages\": \"%s\", "
	       "\"note\": ",
	       info->region_page_size,
	       (unsigned)info->huge_pages < 3 ? huge[info->huge_pages] : "?");
	json_string(info->region_note);
	printf("},\n \"mshare\": {\"active\": %s, \"same_address\": %s, "
	       "\"region_size\": %" PRIu64 ", \"window\": %" PRIu64
	       ", \"status\": ",
	       info->mshare_active ? "true" : "false",
	       info->mshare_same_address ? "true" : "false",
	       info->mshare_region_size, info->mshare_window);
	json_string(info->mshare_status);
	printf("}}\n");
}

static int cmd_info(const struct options *o, int argc, char **argv)
{
	dynshm_instance_info info;
	dynshm_instance *inst;
	int json = 0, rc;

	if (simple_help(argc, argv, "usage: dsm_demo info [--json]\n"
				    "Describe the instance: where it lives, "
				    "its backend, limits and use, and its "
				    "region: which pages it is on and why.\n"
				    "--json prints the same as a JSON object "
				    "for scripts ({\"version\": 1, ...}).\n"))
		return 0;
	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		json = 1;
	else if (argc != 1)
		return usage_error("info: unexpected argument '%s'", argv[1]);
	if ((rc = open_instance(o, LOOK_ONLY, &inst)) != 0)
		return rc;
	rc = dynshm_instance_info_get(inst, &info, sizeof(info));
	if (rc == 0 && json)
		print_info_json(&info);
	else if (rc == 0) {
		printf("instance:        %s\n", info.name);
		printf("directory:       %s\n", info.directory);
		printf("instance id:     %016" PRIx64 "\n", info.instance_id);
		printf("backend:         %s\n",
		       dynshm_impl_type_name(info.backend));
		printf("segments:        %u of %u (max_segments)\n",
		       info.segments, info.max_segments);
		printf("processes:       %u of %u (max_processes), this one "
		       "included\n",
		       info.processes, info.max_processes);
		printf("control segment: %" PRIu64 " bytes\n",
		       info.control_size);
		printf("created by pid:  %d\n", (int)info.creator_pid);
		printf("lock repairs:    %" PRIu64 "\n", info.lock_repairs);
		printf("dead processes released: %" PRIu64 "\n",
		       info.processes_reaped);
		print_lock(&info);
		print_region(&info);
		if (info.mshare_active)
			printf("mshare:          active, %" PRIu64 " GiB region, "
			       "%" PRIu64 " MiB per slot%s%s\n",
			       info.mshare_region_size >> 30,
			       info.mshare_window >> 20,
			       info.mshare_status[0] ? "; " : "",
			       info.mshare_status);
		else
			printf("mshare:          off: %s\n", info.mshare_status);
	} else
		fail(rc, "cannot describe instance");
	dynshm_instance_close(inst);
	return rc < 0 ? EXIT_USER : 0;
}

static int cmd_reset(const struct options *o, int argc, char **argv)
{
	dynshm_instance *inst;
	int rc;

	if (simple_help(argc, argv,
			"usage: dsm_demo reset\n"
			"Destroy the instance: every segment, pinned or not, "
			"the control segment and\nthe instance directory.\n"))
		return 0;
	if (argc != 1)
		return usage_error("reset: unexpected argument '%s'", argv[1]);
	rc = open_instance_rc(o, DYNSHM_OPEN_EXISTING, &inst);
	if (rc == -EACCES || rc == -EUCLEAN) {
		/*
		 * Its control segment cannot be used: something else sits at
		 * its name (planted after a reboot emptied /dev/shm), or it is
		 * corrupt.  Say what was found; a reset open leaves it alone
		 * and starts over under a new id, which the destroy removes.
		 */
		printf("found: %s\n", dynshm_last_error());
		rc = open_instance_rc(o, DYNSHM_OPEN_RESET, &inst);
	}
	if (rc < 0)
		return fail(rc, "cannot open instance");
	if (rc > 0)
		return rc;
	rc = dynshm_instance_destroy(inst);
	if (rc < 0)
		return fail(rc, "cannot destroy instance");
	printf("instance %s destroyed\n", o->instance ? o->instance
						       : "default");
	return 0;
}

static const struct command {
	const char *name;
	int (*run)(const struct options *o, int argc, char **argv);
} commands[] = {
	{ "create", cmd_create }, { "read", cmd_read },
	{ "list", cmd_list },	  { "destroy", cmd_destroy },
	{ "gc", cmd_gc },	  { "info", cmd_info },
	{ "reset", cmd_reset },
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'c' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { NULL, NULL, NULL };
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			o.instance = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 'b':
			o.backend = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("dsm_demo (dynshm) %s\n", DSM_DEMO_VERSION);
			return 0;
		default:
			return usage_error("unknown or incomplete option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			argc -= optind;
			argv += optind;
			optind = 1; /* commands parse their own options */
			return commands[i].run(&o, argc, argv);
		}
	}
	return usage_error("unknown command '%s'", argv[optind]);
}
