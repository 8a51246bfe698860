/* SPDX-License-Identifier: MIT */
/*
 * mc_load - a small load generator for the memcached text protocol.
 *
 * Why our own: Debian has no memtier_benchmark or mc-crusher, and
 * libmemcached's memcslap reports no latency percentiles.  This one drives
 * N connections from one thread (epoll, one request in flight per
 * connection, like a web tier of N blocking clients), with a get/set mix
 * over a fixed key space, and prints requests per second and latency
 * percentiles as one CSV row, so bench/memcache_bench.sh can put
 * dsm_memcache and memcached side by side under the same load.
 *
 * usage: mc_load PORT [--conns N] [--seconds S] [--keys K] [--size B]
 *                     [--get-percent P] [--label TEXT]
 * Output: label,conns,requests,rps,p50_us,p90_us,p99_us,p999_us,max_us,
 *         misses,errors
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 100000 /* latencies beyond 100 ms land in the last bucket */

struct lconn {
	int fd;
	bool is_get;
	uint64_t sent_ns;
	size_t have;
	char buf[65536];
};

static uint64_t hist[HIST_US + 1];
static uint64_t requests, misses, errors, max_us;
static char *setbuf_text;
static size_t value_size = 100;
static unsigned nkeys = 10000, get_percent = 90;
static uint64_t rng = 88172645463325252ULL;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("mc_load: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			perror("mc_load: send");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void issue(struct lconn *c)
{
	char req[512];
	unsigned key = (unsigned)(next_rand() % nkeys);
	int n;

	c->is_get = next_rand() % 100 < get_percent;
	if (c->is_get) {
		n = snprintf(req, sizeof(req), "get key:%08u\r\n", key);
		c->sent_ns = now_ns();
		send_all(c->fd, req, (size_t)n);
	} else {
		n = snprintf(req, sizeof(req), "set key:%08u 0 0 %zu\r\n", key,
			     value_size);
		c->sent_ns = now_ns();
		send_all(c->fd, req, (size_t)n);
		send_all(c->fd, setbuf_text, value_size + 2);
	}
	c->have = 0;
}

static bool ends_with(const struct lconn *c, const char *s)
{
	size_t n = strlen(s);

	return c->have >= n && memcmp(c->buf + c->have - n, s, n) == 0;
}

/* The reply is whole: count it, measure it, send the next request. */
static bool complete(struct lconn *c)
{
	uint64_t us;

	if (c->is_get) {
		if (!ends_with(c, "END\r\n"))
			return false;
		if (c->have == 5)
			misses++;
	} else {
		if (!ends_with(c, "\r\n"))
			return false;
		if (c->have != 8 || memcmp(c->buf, "STORED", 6) != 0)
			errors++;
	}
	us = (now_ns() - c->sent_ns) / 1000;
	if (us > max_us)
		max_us = us;
	hist[us > HIST_US ? HIST_US : us]++;
	requests++;
	return true;
}

static uint64_t percentile(double p)
{
	uint64_t want = (uint64_t)(p * (double)requests), seen = 0;

	for (uint64_t i = 0; i <= HIST_US; i++) {
		seen += hist[i];
		if (seen > want)
			return i;
	}
	return HIST_US;
}

/* Store every key once, so gets hit. */
static void warm(int port)
{
	struct lconn *c = calloc(1, sizeof(*c));

	c->fd = dial(port);
	for (unsigned k = 0; k < nkeys; k++) {
		char req[128];
		int n = snprintf(req, sizeof(req), "set key:%08u 0 0 %zu noreply\r\n",
				 k, value_size);

		send_all(c->fd, req, (size_t)n);
		send_all(c->fd, setbuf_text, value_size + 2);
	}
	send_all(c->fd, "version\r\n", 9);
	while (recv(c->fd, c->buf, sizeof(c->buf), 0) > 0 &&
	       memchr(c->buf, '\n', sizeof(c->buf)) == NULL)
		;
	close(c->fd);
	free(c);
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "conns", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "keys", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 'z' },
		{ "get-percent", required_argument, NULL, 'g' },
		{ "label", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned nconns = 50;
	double seconds = 5;
	const char *label = "server";
	struct epoll_event evs[256];
	struct lconn *conns;
	uint64_t start, end;
	int port, ep, ch;

	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'c': nconns = (unsigned)atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'k': nkeys = (unsigned)atoi(optarg); break;
		case 'z': value_size = (size_t)atol(optarg); break;
		case 'g': get_percent = (unsigned)atoi(optarg); break;
		case 'l': label = optarg; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc || nconns == 0 || nkeys == 0 ||
	    value_size > 60000) {
		fprintf(stderr, "usage: mc_load PORT [--conns N] [--seconds S] "
			"[--keys K] [--size B] [--get-percent P] "
			"[--label TEXT]\n");
		return 2;
	}
	port = atoi(argv[optind]);
	setbuf_text = malloc(value_size + 2);
	memset(setbuf_text, 'x', value_size);
	memcpy(setbuf_text + value_size, "\r\n", 2);
	warm(port);
	ep = epoll_create1(0);
	conns = calloc(nconns, sizeof(*conns));
	for (unsigned i = 0; i < nconns; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.ptr = &conns[i] };

		conns[i].fd = dial(port);
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	start = now_ns();
	end = start + (uint64_t)(seconds * 1e9);
	for (unsigned i = 0; i < nconns; i++)
		issue(&conns[i]);
	while (now_ns() < end) {
		int n = epoll_wait(ep, evs, 256, 100);

		for (int i = 0; i < n; i++) {
			struct lconn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->buf + c->have,
					 sizeof(c->buf) - c->have, 0);

			if (r <= 0) {
				fprintf(stderr, "mc_load: the server closed a "
					"connection\n");
				return 1;
			}
			c->have += (size_t)r;
			if (complete(c))
				issue(c);
			else if (c->have == sizeof(c->buf))
				c->have = 0; /* a reply too big to keep */
		}
	}
	end = now_ns();
	printf("%s,%u,%" PRIu64 ",%.0f,%" PRIu64 ",%" PRIu64 ",%" PRIu64
	       ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
	       label, nconns, requests,
	       (double)requests / ((double)(end - start) / 1e9),
	       percentile(0.50), percentile(0.90), percentile(0.99),
	       percentile(0.999), max_us, misses, errors);
	for (unsigned i = 0; i < nconns; i++)
		close(conns[i].fd);
	free(conns);
	free(setbuf_text);
	return errors ? 1 : 0;
}
