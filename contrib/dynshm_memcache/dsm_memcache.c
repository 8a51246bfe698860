/* SPDX-License-Identifier: MIT */
/*
 * dsm_memcache - a prefork cache server speaking the memcached text
 * protocol, its items in a dynshm shared area.
 *
 * Why it exists: issue 15 asks whether the area and the hash table carry a
 * real server that real clients (libmemcached's tools, pymemcache) talk to,
 * under load, while its workers are killed with SIGKILL.  A prefork server
 * is the shape the library is for (nginx, PHP-FPM, PostgreSQL): workers
 * share one listening socket and one store, and a worker's death must cost
 * only its connections - never a stored item and never a restart of the
 * others (memcached, being threads in one process, loses everything).
 *
 * Shape: the supervisor opens the instance (DYNSHM_OPEN_SUPERVISOR | RESET:
 * whatever an earlier incarnation left goes), creates the area with the
 * memory limit as its maximum, the store (mc_store.c) in it, binds
 * 127.0.0.1:PORT, and forks N workers.  Each worker runs one epoll loop
 * over the shared listening socket (EPOLLEXCLUSIVE) and its non-blocking
 * connections.  The supervisor replaces a worker that dies, and on SIGTERM
 * or SIGINT stops the workers, reaps them, and destroys the area and the
 * instance, so nothing is left behind.
 *
 * Loopback only: there is no authentication, and the store is as private
 * as the instance directory.
 */
#include "mc_store.h"

#include <dynshm/area.h>
#include <dynshm/dsm.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION_TEXT "1.6.0-dynshm-" DYNSHM_VERSION_TEXT
#define DYNSHM_VERSION_TEXT "0.2.0"
/* A get may name many keys: lines up to 64 KiB, as many tokens as fit. */
#define LINE_MAX_LEN 65536
#define MAX_TOKENS (LINE_MAX_LEN / 2 + 1)
#define WBUF_HIGH (4u << 20) /* stop reading past this much unsent */
#define MAX_CONNS 4096

struct options {
	int port;
	unsigned workers;
	uint64_t max_bytes;
	uint64_t item_max;
	const char *instance;
	const char *port_file;
	const char *pid_file;
};

struct conn {
	int fd;
	char *rbuf;
	size_t rlen, rcap;
	char *wbuf;
	size_t wlen, wcap, woff;
	size_t swallow;	   /* data bytes of a refused set still to drop */
	/* The keys of a get not answered yet (each NUL-ended), when its
	 * reply filled wbuf: answered as the client reads (back pressure).
	 * NULL: no get pending. */
	char *pend;
	size_t pend_off, pend_len;
	bool pend_cas;
	bool close_after;  /* close once wbuf is sent */
	bool out_armed;	   /* EPOLLOUT registered */
};

static struct mc_store store;
static struct mc_wstats *ws;
static int epfd;
static volatile sig_atomic_t stopping;

/* ---- output -------------------------------------------------------------- */

static void out(struct conn *c, const void *p, size_t n)
{
	if (c->wlen + n > c->wcap) {
		size_t cap = c->wcap ? c->wcap : 4096;
		char *nb;

		while (cap < c->wlen + n)
			cap *= 2;
		nb = realloc(c->wbuf, cap);
		if (nb == NULL) {
			c->close_after = true;
			return;
		}
		c->wbuf = nb;
		c->wcap = cap;
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
}

static void outs(struct conn *c, const char *s)
{
	out(c, s, strlen(s));
}

static void outf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void outf(struct conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		out(c, buf, (size_t)n < sizeof(buf) ? (size_t)n :
			    sizeof(buf) - 1);
}

/* ---- commands ------------------------------------------------------------ */

static void cnt(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s == '\0' || *s == '-')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool parse_i64(const char *s, int64_t *v)
{
	char *end;

	if (*s == '\0')
		return false;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > MC_KEY_MAX)
		return false;
	for (; *k; k++)
		if ((unsigned char)*k <= ' ' || *k == 0x7f)
			return false;
	return true;
}

struct emit_arg {
	struct conn *c;
	bool with_cas;
};

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static void emit_value(const struct mc_item *it, void *arg)
{
	struct emit_arg *ea = arg;

	char head[MC_KEY_MAX + 80], *p = head;

	/* By hand: vsnprintf was a tenth of a get's time. */
	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, it->data, it->nkey);
	p += it->nkey;
	*p++ = ' ';
	p = put_u64(p, it->flags);
	*p++ = ' ';
	p = put_u64(p, it->nbytes);
	if (ea->with_cas) {
		*p++ = ' ';
		p = put_u64(p, it->cas);
	}
	*p++ = '\r';
	*p++ = '\n';
	out(ea->c, head, (size_t)(p - head));
	out(ea->c, mc_item_value(it), it->nbytes);
	out(ea->c, "\r\n", 2);
}

static void get_one(struct conn *c, const char *key, bool with_cas)
{
	struct emit_arg ea = { c, with_cas };

	cnt(&ws->cmd_get);
	if (mc_get(&store, ws, key, emit_value, &ea) == MC_STORED)
		cnt(&ws->get_hits);
	else
		cnt(&ws->get_misses);
}

/* Go on with a pending get until wbuf is full again or the get is done. */
static void get_resume(struct conn *c)
{
	while (c->pend_off < c->pend_len && c->wlen - c->woff < WBUF_HIGH) {
		const char *key = c->pend + c->pend_off;

		c->pend_off += strlen(key) + 1;
		get_one(c, key, c->pend_cas);
	}
	if (c->pend_off == c->pend_len) {
		free(c->pend);
		c->pend = NULL;
		outs(c, "END\r\n");
	}
}

/*
 * A get copies each value into wbuf; a get of thousands of keys naming
 * large values would so grow wbuf without bound (a 64 KiB line of 1 MiB
 * values: gigabytes) before the client reads a byte.  Past WBUF_HIGH the
 * keys left are kept and answered as the client reads (get_resume).
 */
static void cmd_get(struct conn *c, char **tok, int ntok, bool with_cas)
{
	if (ntok < 2) {
		outs(c, "ERROR\r\n");
		return;
	}
	for (int i = 1; i < ntok; i++) {
		if (!key_ok(tok[i])) {
			outs(c, "CLIENT_ERROR bad command line format\r\n");
			return;
		}
	}
	for (int i = 1; i < ntok; i++) {
		if (c->wlen - c->woff >= WBUF_HIGH) {
			size_t len = 0, off = 0;

			for (int j = i; j < ntok; j++)
				len += strlen(tok[j]) + 1;
			c->pend = malloc(len);
			if (c->pend != NULL) {
				for (int j = i; j < ntok; j++) {
					size_t n = strlen(tok[j]) + 1;

					memcpy(c->pend + off, tok[j], n);
					off += n;
				}
				c->pend_off = 0;
				c->pend_len = len;
				c->pend_cas = with_cas;
				return;
			}
			/* No memory to wait: answer all at once, as before. */
		}
		get_one(c, tok[i], with_cas);
	}
	outs(c, "END\r\n");
}

static const char *res_text(enum mc_res r)
{
	switch (r) {
	case MC_STORED: return "STORED\r\n";
	case MC_NOT_STORED: return "NOT_STORED\r\n";
	case MC_EXISTS: return "EXISTS\r\n";
	case MC_NOT_FOUND: return "NOT_FOUND\r\n";
	case MC_DELETED: return "DELETED\r\n";
	case MC_TOUCHED: return "TOUCHED\r\n";
	case MC_NOMEM: return "SERVER_ERROR out of memory storing object\r\n";
	case MC_NON_NUMERIC:
		return "CLIENT_ERROR cannot increment or decrement "
		       "non-numeric value\r\n";
	case MC_FAIL: break;
	}
	return "SERVER_ERROR internal error\r\n";
}

/*
 * A command whose line ends in "noreply" gets no reply at all, errors
 * included, as from memcached 1.6: a client that pipelines such commands
 * reads the next reply as the next command's, so an error sent anyway
 * would be taken for another command's answer.  (A line too malformed to
 * tell is answered: ERROR or CLIENT_ERROR.)
 */
static bool is_noreply(char **tok, int ntok, int at)
{
	return ntok > at && strcmp(tok[at], "noreply") == 0;
}

/*
 * A storage command.  Returns the bytes consumed after the line, or -1
 * when the data block is not all here yet.
 */
static long cmd_store(struct conn *c, char **tok, int ntok, const char *data,
		      size_t avail)
{
	static const struct { const char *name; enum mc_mode mode; } modes[] = {
		{ "set", MC_SET }, { "add", MC_ADD }, { "replace", MC_REPLACE },
		{ "append", MC_APPEND }, { "prepend", MC_PREPEND },
		{ "cas", MC_CAS },
	};
	enum mc_mode mode = MC_SET;
	uint64_t flags, nbytes, cas = 0;
	int64_t exptime;
	int want = 5;
	bool noreply;
	enum mc_res r;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(tok[0], modes[i].name) == 0)
			mode = modes[i].mode;
	if (mode == MC_CAS)
		want = 6;
	if (ntok < want || ntok > want + 1 || !key_ok(tok[1]) ||
	    !parse_u64(tok[2], &flags) || flags > UINT32_MAX ||
	    !parse_i64(tok[3], &exptime) || !parse_u64(tok[4], &nbytes) ||
	    nbytes > INT32_MAX ||
	    (mode == MC_CAS && !parse_u64(tok[5], &cas)) ||
	    (ntok == want + 1 && strcmp(tok[want], "noreply") != 0)) {
		outs(c, "CLIENT_ERROR bad command line format\r\n");
		return 0;
	}
	noreply = is_noreply(tok, ntok, want);
	if (nbytes > store.sh->item_max) {
		if (!noreply)
			outs(c, "SERVER_ERROR object too large for cache\r\n");
		c->swallow = nbytes + 2;
		/* A set that fails drops the old value, as memcached does:
		 * the client meant to replace it, and a later get must not
		 * return what it tried to overwrite. */
		if (mode == MC_SET)
			mc_delete(&store, tok[1]);
		return 0;
	}
	if (avail < nbytes + 2)
		return -1;
	cnt(&ws->cmd_set);
	if (data[nbytes] != '\r' || data[nbytes + 1] != '\n') {
		if (!noreply)
			outs(c, "CLIENT_ERROR bad data chunk\r\n");
		return (long)nbytes + 2;
	}
	r = mc_store_item(&store, mode, tok[1], (uint32_t)flags, exptime,
			  data, (uint32_t)nbytes, cas);
	if (r == MC_NOMEM && mode == MC_SET)
		mc_delete(&store, tok[1]); /* no stale value: see above */
	if (mode == MC_CAS)
		cnt(r == MC_STORED ? &ws->cas_hits : r == MC_EXISTS ?
		    &ws->cas_badval : &ws->cas_misses);
	if (!noreply)
		outs(c, res_text(r));
	return (long)nbytes + 2;
}

static void cmd_delete(struct conn *c, char **tok, int ntok)
{
	int n = ntok;
	bool noreply = is_noreply(tok, ntok, ntok - 1) && ntok > 2;
	enum mc_res r;

	if (noreply)
		n--;
	/* "delete key 0" is an old client's way of saying no delay. */
	if (n == 3 && strcmp(tok[2], "0") == 0)
		n--;
	if (n != 2 || !key_ok(tok[1])) {
		outs(c, "CLIENT_ERROR bad command line format.  "
			"Usage: delete <key> [noreply]\r\n");
		return;
	}
	r = mc_delete(&store, tok[1]);
	cnt(r == MC_DELETED ? &ws->delete_hits : &ws->delete_misses);
	if (!noreply)
		outs(c, res_text(r));
}

static void cmd_incr(struct conn *c, char **tok, int ntok, bool incr)
{
	bool noreply = is_noreply(tok, ntok, 3);
	uint64_t delta, v;
	enum mc_res r;

	if (ntok < 3 || ntok > 4 || (ntok == 4 && !noreply) ||
	    !key_ok(tok[1])) {
		outs(c, "ERROR\r\n");
		return;
	}
	if (!parse_u64(tok[2], &delta)) {
		if (!noreply)
			outs(c, "CLIENT_ERROR invalid numeric delta "
				"argument\r\n");
		return;
	}
	r = mc_incr(&store, tok[1], incr, delta, &v);
	if (incr)
		cnt(r == MC_STORED ? &ws->incr_hits : &ws->incr_misses);
	else
		cnt(r == MC_STORED ? &ws->decr_hits : &ws->decr_misses);
	if (noreply)
		return;
	if (r == MC_STORED)
		outf(c, "%" PRIu64 "\r\n", v);
	else
		outs(c, res_text(r));
}

static void cmd_touch(struct conn *c, char **tok, int ntok)
{
	bool noreply = is_noreply(tok, ntok, 3);
	int64_t exptime;
	enum mc_res r;

	if (ntok < 3 || ntok > 4 || (ntok == 4 && !noreply) ||
	    !key_ok(tok[1]) || !parse_i64(tok[2], &exptime)) {
		if (!noreply)
			outs(c, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	cnt(&ws->cmd_touch);
	r = mc_touch(&store, tok[1], exptime);
	cnt(r == MC_TOUCHED ? &ws->touch_hits : &ws->touch_misses);
	if (!noreply)
		outs(c, res_text(r));
}

static void cmd_flush(struct conn *c, char **tok, int ntok)
{
	bool noreply = is_noreply(tok, ntok, ntok - 1) && ntok > 1;
	int64_t delay = 0;
	int n = noreply ? ntok - 1 : ntok;

	if (n > 2 || (n == 2 && (!parse_i64(tok[1], &delay) || delay < 0))) {
		outs(c, "CLIENT_ERROR bad command line format\r\n");
		return;
	}
	cnt(&ws->cmd_flush);
	mc_flush(&store, delay);
	if (!noreply)
		outs(c, "OK\r\n");
}

#define SUM(field) sum_field(offsetof(struct mc_wstats, field))

static uint64_t sum_field(size_t off)
{
	uint64_t s = 0;

	for (int i = 0; i < MC_MAX_WORKERS; i++)
		s += atomic_load((_Atomic uint64_t *)((char *)&store.sh->ws[i] +
						      off));
	return s;
}

static void cmd_stats(struct conn *c, int ntok)
{
	static const struct { const char *name; size_t off; } fields[] = {
#define F(x) { #x, offsetof(struct mc_wstats, x) }
		F(cmd_get), F(cmd_set), F(cmd_flush), F(cmd_touch),
		F(get_hits), F(get_misses), F(get_expired), F(get_flushed),
		F(delete_misses), F(delete_hits), F(incr_misses),
		F(incr_hits), F(decr_misses), F(decr_hits), F(cas_misses),
		F(cas_hits), F(cas_badval), F(touch_hits), F(touch_misses),
		F(bytes_read), F(bytes_written), F(total_connections),
#undef F
	};
	struct mc_shared *sh = store.sh;
	dynshm_area_stats as;
	int64_t conns = 0;

	if (ntok > 1) { /* stats items, slabs, settings...: nothing to say */
		outs(c, "END\r\n");
		return;
	}
	for (int i = 0; i < MC_MAX_WORKERS; i++)
		conns += atomic_load(&sh->ws[i].curr_connections);
	memset(&as, 0, sizeof(as));
	dynshm_area_stats_get(store.area, &as);
	outf(c, "STAT pid %d\r\n", sh->supervisor_pid);
	outf(c, "STAT uptime %" PRId64 "\r\n", mc_now - (int64_t)sh->started);
	outf(c, "STAT time %" PRId64 "\r\n", mc_now);
	outf(c, "STAT version %s\r\n", VERSION_TEXT);
	outf(c, "STAT pointer_size %zu\r\n", sizeof(void *) * 8);
	outf(c, "STAT curr_connections %" PRId64 "\r\n", conns);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		outf(c, "STAT %s %" PRIu64 "\r\n", fields[i].name,
		     sum_field(fields[i].off));
	outf(c, "STAT threads %d\r\n", sh->nworkers);
	outf(c, "STAT limit_maxbytes %" PRIu64 "\r\n", sh->max_bytes);
	outf(c, "STAT curr_items %" PRIu64 "\r\n", mc_items(&store));
	outf(c, "STAT total_items %" PRIu64 "\r\n",
	     atomic_load(&sh->total_items));
	outf(c, "STAT bytes %" PRIu64 "\r\n", atomic_load(&sh->bytes));
	outf(c, "STAT evictions %" PRIu64 "\r\n", atomic_load(&sh->evictions));
	outf(c, "STAT reclaimed %" PRIu64 "\r\n", atomic_load(&sh->reclaimed));
	outf(c, "STAT worker_restarts %" PRIu64 "\r\n",
	     atomic_load(&sh->restarts));
	outf(c, "STAT stripe_repairs %" PRIu64 "\r\n",
	     atomic_load(&sh->repairs));
	outf(c, "STAT area_total_bytes %" PRIu64 "\r\n", as.total_bytes);
	outf(c, "STAT area_used_bytes %" PRIu64 "\r\n", as.used_bytes);
	outf(c, "STAT area_segments %u\r\n", as.segments);
	outf(c, "STAT area_allocations %" PRIu64 "\r\n", as.allocations);
	outf(c, "STAT area_repairs %" PRIu64 "\r\n", as.repairs);
	outs(c, "END\r\n");
}

/* We log nothing; accept the command as memcached does. */
static void cmd_verbosity(struct conn *c, char **tok, int ntok)
{
	uint64_t level;

	if (ntok > 1 && is_noreply(tok, ntok, ntok - 1))
		return; /* memcached says nothing, even to a bad level */
	if (ntok != 2)
		outs(c, "ERROR\r\n");
	else if (!parse_u64(tok[1], &level))
		outs(c, "CLIENT_ERROR bad command line format\r\n");
	else
		outs(c, "OK\r\n");
}

/* Split line (NUL-ended, no CRLF) at spaces, in place. */
static int tokenize(char *line, char **tok)
{
	int n = 0;

	while (*line) {
		while (*line == ' ')
			*line++ = '\0';
		if (!*line)
			break;
		if (n == MAX_TOKENS)
			return -1;
		tok[n++] = line;
		while (*line && *line != ' ')
			line++;
	}
	return n;
}

/*
 * One command from line (avail bytes follow it in the buffer).  Returns
 * the bytes of data consumed after the line, or -1 to wait for more.
 */
static long command(struct conn *c, char *line, const char *rest,
		    size_t avail)
{
	static char *tok[MAX_TOKENS]; /* a worker has one thread */
	int n = tokenize(line, tok);
	const char *cmd;

	if (n <= 0) {
		outs(c, n < 0 ? "CLIENT_ERROR bad command line format\r\n" :
		     "ERROR\r\n");
		return 0;
	}
	cmd = tok[0];
	if (strcmp(cmd, "get") == 0 || strcmp(cmd, "gets") == 0)
		cmd_get(c, tok, n, cmd[3] == 's');
	else if (!strcmp(cmd, "set") || !strcmp(cmd, "add") ||
		 !strcmp(cmd, "replace") || !strcmp(cmd, "cas") ||
		 !strcmp(cmd, "append") || !strcmp(cmd, "prepend"))
		return cmd_store(c, tok, n, rest, avail);
	else if (strcmp(cmd, "delete") == 0)
		cmd_delete(c, tok, n);
	else if (strcmp(cmd, "incr") == 0 || strcmp(cmd, "decr") == 0)
		cmd_incr(c, tok, n, cmd[0] == 'i');
	else if (strcmp(cmd, "touch") == 0)
		cmd_touch(c, tok, n);
	else if (strcmp(cmd, "flush_all") == 0)
		cmd_flush(c, tok, n);
	else if (strcmp(cmd, "stats") == 0 && !is_noreply(tok, n, 1))
		cmd_stats(c, n);
	else if (strcmp(cmd, "version") == 0)
		outs(c, "VERSION " VERSION_TEXT "\r\n");
	else if (strcmp(cmd, "verbosity") == 0)
		cmd_verbosity(c, tok, n);
	else if (strcmp(cmd, "quit") == 0)
		c->close_after = true;
	else
		outs(c, "ERROR\r\n");
	return 0;
}

/* Run every complete command in rbuf; keep the incomplete rest. */
static void process(struct conn *c)
{
	static char lbuf[LINE_MAX_LEN + 1]; /* a worker has one thread */
	size_t pos = 0;

	if (c->pend != NULL) { /* a get's reply comes before what follows */
		if (c->wlen - c->woff < WBUF_HIGH)
			get_resume(c);
		if (c->pend != NULL)
			return;
	}
	while (pos < c->rlen && !c->close_after && c->pend == NULL &&
	       c->wlen - c->woff < WBUF_HIGH) {
		char *line = c->rbuf + pos, *nl;
		size_t len;
		long used;

		if (c->swallow) {
			size_t n = c->rlen - pos < c->swallow ?
				   c->rlen - pos : c->swallow;

			c->swallow -= n;
			pos += n;
			continue;
		}
		nl = memchr(line, '\n', c->rlen - pos);
		if (nl == NULL) {
			if (c->rlen - pos > LINE_MAX_LEN) {
				outs(c, "CLIENT_ERROR line too long\r\n");
				c->close_after = true;
			}
			break;
		}
		len = (size_t)(nl - line);
		if (len > LINE_MAX_LEN) {
			outs(c, "CLIENT_ERROR line too long\r\n");
			c->close_after = true;
			break;
		}
		/* A copy: tokens are cut in place, and a storage command
		 * whose data is not all here is parsed again later. */
		memcpy(lbuf, line, len);
		lbuf[len] = '\0';
		if (len && lbuf[len - 1] == '\r')
			lbuf[len - 1] = '\0';
		used = command(c, lbuf, nl + 1, c->rlen - pos - len - 1);
		if (used < 0)
			break; /* wait for the data block */
		pos += len + 1 + (size_t)used;
	}
	if (pos) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
}

/* ---- the worker's event loop --------------------------------------------- */

static int listen_fd = -1;
static bool listen_armed = true; /* the listening socket is in our epoll */
/* When this worker began leaving a connection to another; 0: not now. */
static uint64_t deferred_since;

/* Watch the listening socket again (a descriptor was freed). */
static void listen_rearm(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (!listen_armed && epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd,
				       &ev) == 0)
		listen_armed = true;
}

static void conn_close(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c->pend);
	free(c);
	atomic_fetch_sub(&ws->curr_connections, 1);
	listen_rearm();
}

/* Send what is queued; false when the connection is gone. */
static bool flush_out(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return false;
		c->woff += (size_t)n;
		atomic_fetch_add_explicit(&ws->bytes_written, (uint64_t)n,
					  memory_order_relaxed);
	}
	if (c->woff == c->wlen) {
		c->woff = c->wlen = 0;
		if (c->wcap > (1u << 20)) { /* after a big reply */
			free(c->wbuf);
			c->wbuf = NULL;
			c->wcap = 0;
		}
	}
	if ((c->woff < c->wlen) != c->out_armed) {
		struct epoll_event ev = { .data.ptr = c };

		c->out_armed = c->woff < c->wlen;
		/* While output waits, stop reading: back pressure. */
		ev.events = c->out_armed ? EPOLLOUT : EPOLLIN;
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return !(c->close_after && c->woff == c->wlen);
}

/* Make room to read: a data block needs its whole length. */
static bool rbuf_room(struct conn *c)
{
	size_t want = c->rlen + 16384;
	char *nb;

	if (c->rcap - c->rlen >= 4096)
		return true;
	if (want > store.sh->item_max + 2 * LINE_MAX_LEN + 16384)
		want = c->rlen + 4096;
	nb = realloc(c->rbuf, want);
	if (nb == NULL)
		return false;
	c->rbuf = nb;
	c->rcap = want;
	return true;
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		conn_close(c);
		return;
	}
	if (c->out_armed) {
		if (!flush_out(c)) {
			conn_close(c);
			return;
		}
		if (c->out_armed)
			return;
		process(c); /* commands held back by the full buffer */
	} else {
		for (int round = 0; round < 16; round++) {
			ssize_t n;

			if (!rbuf_room(c)) {
				conn_close(c);
				return;
			}
			n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen,
				 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n <= 0) {
				conn_close(c);
				return;
			}
			c->rlen += (size_t)n;
			atomic_fetch_add_explicit(&ws->bytes_read, (uint64_t)n,
						  memory_order_relaxed);
			if ((size_t)n < 4096)
				break;
		}
		process(c);
	}
	/* A pending get goes on while the client takes what is sent. */
	for (;;) {
		if (!flush_out(c)) {
			conn_close(c);
			return;
		}
		if (c->pend == NULL || c->out_armed)
			break;
		process(c);
	}
}

/*
 * Whether this worker should take the next connection: every worker is
 * woken for it, and the least loaded live one (ties: whoever is first)
 * accepts.  EPOLLEXCLUSIVE alone let one worker take a whole burst of
 * connects, leaving the other core idle.
 */
static bool my_turn(void)
{
	int64_t mine = atomic_load(&ws->curr_connections);

	for (int i = 0; i < store.sh->nworkers; i++) {
		struct mc_wstats *o = &store.sh->ws[i];

		if (o != ws && atomic_load(&o->pid) != 0 &&
		    atomic_load(&o->curr_connections) < mine)
			return false;
	}
	return true;
}

static void accept_some(int lfd)
{
	/*
	 * Leave the connection to a less loaded worker, but for 5 ms at
	 * most: the listening socket stays readable until someone accepts,
	 * so deferring spins; yield the CPU meanwhile (the other worker may
	 * be waiting for it), and take the connection if nobody did.
	 */
	if (!my_turn()) {
		struct timespec ts;
		uint64_t now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		if (deferred_since == 0)
			deferred_since = now;
		if (now - deferred_since < 5000000) {
			sched_yield();
			return;
		}
	}
	deferred_since = 0;
	for (int i = 0; i < 64; i++) {
		struct epoll_event ev = { .events = EPOLLIN };
		int one = 1;
		struct conn *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && (errno == EMFILE || errno == ENFILE ||
			       errno == ENOBUFS || errno == ENOMEM)) {
			/* Out of descriptors: stop watching the socket (it
			 * would wake us in a loop) until a connection
			 * closes. */
			if (epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL) == 0)
				listen_armed = false;
			return;
		}
		if (fd < 0)
			return;
		if (atomic_load(&ws->curr_connections) >= MAX_CONNS) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		atomic_fetch_add(&ws->curr_connections, 1);
		cnt(&ws->total_connections);
		if (!my_turn())
			break;
	}
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void worker_main(int lfd, int slot)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct epoll_event evs[128];
	struct sigaction sa;
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != store.sh->supervisor_pid)
		_exit(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (getenv("DSM_MEMCACHE_CRASH_EVERY"))
		mc_crash_every = (unsigned)atoi(getenv("DSM_MEMCACHE_CRASH_EVERY"));
	ws = &store.sh->ws[slot];
	atomic_store(&ws->pid, getpid());
	listen_fd = lfd;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("dsm_memcache: epoll");
		_exit(1);
	}
	while (!stopping) {
		int n = epoll_wait(epfd, evs, 128, 1000);

		mc_now = time(NULL);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				accept_some(lfd);
			else
				conn_event(evs[i].data.ptr, evs[i].events);
		}
	}
	/* The supervisor destroys the store; nothing of ours to undo. */
	_exit(0);
}

/* ---- the supervisor ------------------------------------------------------ */

static pid_t pids[MC_MAX_WORKERS];
static bool gave_up; /* workers could not start: exit 1 */

static int spawn(int lfd, int slot)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("dsm_memcache: fork");
		return -1;
	}
	if (pid == 0)
		worker_main(lfd, slot);
	pids[slot] = pid;
	return 0;
}

static int listen_on(int port, int *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

static int write_file(const char *path, long v)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "%ld\n", v);
	return fclose(f);
}

/*
 * Replace workers that died.  A worker killed by a signal is always
 * replaced; one that exited with an error could not start (epoll), and
 * after 5 such exits in a row the supervisor gives up and stops rather
 * than fork in a loop.
 */
static void reap_and_replace(int lfd)
{
	static unsigned failed_starts;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			if (++failed_starts >= 5 && !stopping) {
				fprintf(stderr, "dsm_memcache: workers cannot "
					"start; stopping\n");
				stopping = 1;
				gave_up = true;
			}
		} else {
			failed_starts = 0;
		}
		for (unsigned i = 0; i < (unsigned)store.sh->nworkers; i++) {
			if (pids[i] != pid)
				continue;
			pids[i] = 0;
			/* Its connections died with it. */
			atomic_store(&store.sh->ws[i].pid, 0);
			atomic_store(&store.sh->ws[i].curr_connections, 0);
			if (!stopping) {
				atomic_fetch_add(&store.sh->restarts, 1);
				spawn(lfd, (int)i);
			}
		}
	}
}

static int supervise(const struct options *o, int lfd)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (unsigned i = 0; i < o->workers; i++)
		if (spawn(lfd, (int)i) < 0)
			return -1;
	while (!stopping) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGCHLD)
			reap_and_replace(lfd);
		else
			stopping = 1;
	}
	for (unsigned i = 0; i < o->workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (unsigned i = 0; i < o->workers; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	return gave_up ? -1 : 0;
}

static const char usage_text[] =
	"usage: dsm_memcache [-p PORT] [-t WORKERS] [-m MEGABYTES] "
	"[-I ITEM_MAX]\n"
	"                    [--instance NAME|DIR] [--port-file FILE] "
	"[--pid-file FILE]\n"
	"  -p, --port PORT       TCP port on 127.0.0.1 (default 11211; 0: any)\n"
	"  -t, --workers N       worker processes (default 2, at most 64)\n"
	"  -m, --memory MB       area maximum in MiB (default 64)\n"
	"  -I, --item-max BYTES  largest value (default 1048576)\n"
	"  --instance NAME|DIR   dynshm instance (default dsm_memcache.PORT);\n"
	"                        reset at start, destroyed at exit\n"
	"  --port-file FILE      write the bound port there once listening\n"
	"  --pid-file FILE       write the supervisor's pid there\n";

/*
 * The reset at start is for what a killed earlier run left, never for a
 * server still running on the instance: it would wipe that one's items
 * and leave it unable to store (found by a hostile review).  A process
 * still joined after the dead are reaped means one is running.
 */
static int instance_busy(const char *instance)
{
	dynshm_instance *inst = NULL;
	dynshm_instance_info info;
	int rc = dynshm_instance_open(instance, NULL, DYNSHM_OPEN_EXISTING,
				      &inst);

	if (rc < 0) /* none, or one the reset will report on */
		return 0;
	rc = dynshm_reap(inst, NULL);
	if (rc == 0)
		rc = dynshm_instance_info_get(inst, &info, sizeof(info));
	dynshm_instance_close(inst);
	if (rc == 0 && info.processes > 1) {
		fprintf(stderr, "dsm_memcache: instance '%s' is in use by %u "
			"other live process%s (another dsm_memcache?); not "
			"starting over it\n", instance, info.processes - 1,
			info.processes == 2 ? "" : "es");
		return -EBUSY;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 't' },
		{ "memory", required_argument, NULL, 'm' },
		{ "item-max", required_argument, NULL, 'I' },
		{ "instance", required_argument, NULL, 'i' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "pid-file", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;
	char *end;
	unsigned long long v;

	while ((ch = getopt_long(argc, argv, "p:t:m:I:h", longs, NULL)) != -1) {
		if (ch == 'i' || ch == 'P' || ch == 'F') {
			*(ch == 'i' ? &o->instance : ch == 'P' ? &o->port_file :
			  &o->pid_file) = optarg;
			continue;
		}
		if (ch == 'h') {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (ch == '?')
			return -1;
		errno = 0;
		v = strtoull(optarg, &end, 10);
		if (errno || *end || optarg[0] == '-') {
			fprintf(stderr, "dsm_memcache: bad number '%s'\n",
				optarg);
			return -1;
		}
		if (ch == 'p' && v <= 65535)
			o->port = (int)v;
		else if (ch == 't' && v >= 1 && v <= MC_MAX_WORKERS)
			o->workers = (unsigned)v;
		else if (ch == 'm' && v >= 1 && v <= (1ULL << 20))
			o->max_bytes = v << 20;
		else if (ch == 'I' && v >= 1024 && v <= (1ULL << 30))
			o->item_max = v;
		else {
			fprintf(stderr, "dsm_memcache: -%c %s is out of range\n",
				ch, optarg);
			return -1;
		}
	}
	if (optind != argc)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { .port = 11211, .workers = 2,
			     .max_bytes = 64u << 20, .item_max = 1u << 20 };
	dynshm_instance *inst = NULL;
	dynshm_area *area = NULL;
	char name[64];
	sigset_t set;
	int lfd, port, rc, status = 1;

	if (parse_args(argc, argv, &o) < 0) {
		fputs(usage_text, stderr);
		return 2;
	}
	/* Signals wait for sigwait (and are unblocked in the workers). */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(o.port, &port);
	if (lfd < 0) {
		fprintf(stderr, "dsm_memcache: cannot listen on 127.0.0.1:%d: "
			"%s\n", o.port, strerror(errno));
		return 1;
	}
	if (o.instance == NULL) {
		snprintf(name, sizeof(name), "dsm_memcache.%d", port);
		o.instance = name;
	}
	if (instance_busy(o.instance) < 0)
		goto out;
	rc = dynshm_instance_open(o.instance, NULL,
				  DYNSHM_OPEN_SUPERVISOR | DYNSHM_OPEN_RESET,
				  &inst);
	if (rc == 0)
		rc = dynshm_area_create(inst, o.max_bytes, 0, &area);
	if (rc == 0)
		rc = mc_store_create(&store, area, o.max_bytes, o.item_max);
	if (rc < 0) {
		fprintf(stderr, "dsm_memcache: %s\n", dynshm_last_error());
		goto out;
	}
	store.sh->supervisor_pid = getpid();
	store.sh->nworkers = (int)o.workers;
	store.sh->started = (uint64_t)time(NULL);
	mc_now = time(NULL);
	if ((o.pid_file && write_file(o.pid_file, getpid()) < 0) ||
	    (o.port_file && write_file(o.port_file, port) < 0)) {
		perror("dsm_memcache: cannot write the port or pid file");
		goto out;
	}
	status = supervise(&o, lfd) < 0 ? 1 : 0;
out:
	close(lfd);
	if (store.hash)
		dynshm_hash_detach(store.hash);
	if (area)
		dynshm_area_destroy(area);
	if (inst)
		dynshm_instance_destroy(inst);
	if (o.pid_file)
		unlink(o.pid_file);
	return status;
}
