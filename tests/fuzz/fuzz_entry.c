/* SPDX-License-Identifier: MIT */
/*
 * fuzz_entry.c - see fuzz_entry.h.
 *
 * The control image is copied into a fresh, 64-byte aligned buffer of
 * exactly its size, so that AddressSanitizer catches any read past the
 * mapping that ctl_validate claims to have checked.  The configuration text
 * reaches the parser through a memfd, the same read path as a real file.
 * State text is copied into a buffer of exactly its length and a '\0', so
 * that a parser reading past the end of a line is caught too.
 */
#include "fuzz_entry.h"

#include "src/control.h"
#include "src/region.h"
#include "src/wrapper.h"

#include <dynshm/dsm.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* FNV-1a over the identity part of the header, as control.c computes it. */
static void repair_checksum(struct ctl_header *h)
{
	const unsigned char *p = (const unsigned char *)h;
	uint64_t sum = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < offsetof(struct ctl_header, checksum); i++)
		sum = (sum ^ p[i]) * 0x100000001b3ull;
	h->checksum = sum;
}

/*
 * What the calls of a process do to the derived structures, on whatever the
 * image holds (a live control segment scribbled between two calls): take
 * and give back free slots, look names up, allocate and free region
 * blocks, check slots' blocks.  Every index read is checked by the library;
 * a scribble is rebuilt and reported, never followed out of the image.
 */
static void calls(struct ctl *c)
{
	uint32_t s, found, order, held[4];
	uint64_t offset;
	int n = 0;

	for (; n < 4 && ctl_pop_free(c, &held[n]) == 0; n++)
		;
	for (uint32_t i = 0; i < c->hdr->max_segments && i < 16; i++) {
		(void)ctl_names_find(c, c->slots[i].name, &found);
		if (c->slots[i].backend == CTL_BACKEND_REGION &&
		    c->slots[i].state != SLOT_FREE)
			(void)region_block_check(c, i);
	}
	if (n > 0 && region_of(c) &&
	    region_alloc_locked(c, 4096 * (1 + (uint64_t)n), &offset,
				&order) == 0) {
		s = held[0];
		c->slots[s].backend = CTL_BACKEND_REGION;
		c->slots[s].region_offset = offset;
		c->slots[s].region_order = order;
		region_free_locked(c, s);
	}
	while (n-- > 0) {
		c->slots[held[n]].state = SLOT_FREE;
		ctl_push_free(c, held[n]);
		c->hdr->nsegments--;
	}
}

/* Everything a process does with an accepted image, short of locking. */
static int walk(void *base, size_t size, uint64_t id)
{
	struct ctl c;

	if (ctl_validate(base, size, id, "fuzz input", &c) != 0)
		return -1;
	/* as under the lock: (C) fields as validated, region geometry */
	if (ctl_check_live(&c) != 0 && !region_of(&c))
		return -1; /* nothing differs yet but the region record */
	calls(&c);	   /* on the image as it came */
	ctl_recompute(&c);
	calls(&c);	   /* and once repaired */
	for (uint32_t i = 0; i < c.hdr->max_segments && i < 64; i++)
		(void)ctl_lookup(&c, c.slots[i].handle);
	(void)ctl_lookup(&c, UINT64_MAX);
	/* a scribbled header field is put back from the validated copy */
	((unsigned char *)base)[offsetof(struct ctl_header, max_segments)] ^=
		0x40;
	if (ctl_check_live(&c) != -EUCLEAN)
		return -1;
	/* recomputing must never break what validation relies on */
	return ctl_validate(base, size, id, "fuzz input", &c) == 0 ? 0 : -1;
}

int fuzz_control(const uint8_t *data, size_t size)
{
	struct ctl c;
	uint64_t id = 0;
	void *buf;
	int rc;

	if (size < 1)
		return -EINVAL;
	size--;
	if (posix_memalign(&buf, 64, size ? size : 1) != 0)
		return -ENOMEM;
	memcpy(buf, data + 1, size);
	if (size >= sizeof(struct ctl_header)) {
		struct ctl_header *h = buf;

		if (data[0] & 1)
			repair_checksum(h);
		id = h->instance_id;
	}
	rc = ctl_validate(buf, size, id, "fuzz input", &c);
	if (rc == 0 && walk(buf, size, id) != 0)
		abort(); /* accepted once, refused after its own repair */
	free(buf);
	return rc;
}

int fuzz_config(const uint8_t *data, size_t size)
{
	char path[64];
	dynshm_config *cfg = NULL;
	int fd, rc;

	fd = memfd_create("dynshm-fuzz-config", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -EIO;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = dynshm_config_new(&cfg);
	if (rc == 0)
		rc = dynshm_config_load_file(cfg, path);
	dynshm_config_free(cfg);
	close(fd);
	return rc;
}

/* An accepted record must hold what its users take for granted. */
static void check_state(const struct inst_state *st)
{
	if (st->id == 0 || st->ctl_backend == DYNSHM_IMPL_NONE ||
	    st->seg_dir[0] != '/' ||
	    strnlen(st->seg_dir, sizeof(st->seg_dir)) == sizeof(st->seg_dir) ||
	    strnlen(st->space, sizeof(st->space)) == sizeof(st->space) ||
	    strnlen(st->boot, sizeof(st->boot)) == sizeof(st->boot))
		abort();
}

static int parse_one(const uint8_t *data, size_t size, bool pending)
{
	static dynshm_instance inst = { .dir = "/fuzz-input" };
	struct inst_state st;
	int32_t pid;
	int64_t since;
	char *text = malloc(size + 1);
	int rc;

	if (!text)
		return -ENOMEM;
	memcpy(text, data, size);
	text[size] = '\0';
	rc = pending ? state_parse_pending(&inst, text, &st, &pid, &since)
		     : state_parse(&inst, text, &st);
	if (rc == 0)
		check_state(&st);
	free(text);
	return rc;
}

int fuzz_state(const uint8_t *data, size_t size)
{
	static const char pending_magic[] = "dynshm-pending";
	bool pending = size >= sizeof(pending_magic) - 1 &&
		       memcmp(data, pending_magic,
			      sizeof(pending_magic) - 1) == 0;

	if (size > STATE_TEXT_MAX - 1) /* what state_read_file reads */
		size = STATE_TEXT_MAX - 1;
	(void)parse_one(data, size, !pending);
	return parse_one(data, size, pending); /* its message stands */
}
