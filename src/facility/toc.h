/* SPDX-License-Identifier: MIT */
/*
 * toc.h - the shared layout of a table of contents (src/facility/toc.c)
 * and the rules every process that touches it keeps.
 *
 * A process that creates a segment for others must tell them where things
 * are in it; addresses differ per process, so the table records offsets
 * from its own start, and every process turns them into addresses with its
 * own base.  Layout (all offsets from base):
 *
 *	struct toc_header
 *	struct toc_entry entries[max_keys]
 *	chunks, allocated upwards from data_start, each aligned
 *
 * Chunks and entries are taken with atomic operations, without a lock:
 *   (C) magic, version, max_keys, data_start, total_size are written once
 *       by dynshm_toc_create before anyone else can see the table, and
 *       checked (with the caller's size) at attach; the handle keeps its
 *       own copies, so a later scribble on them changes nothing.
 *   alloc_next   the first free byte; grows by compare-and-swap only.
 *   nreserved    entries handed out; grows by compare-and-swap only, and
 *                never past max_keys (a value beyond, a scribble, refuses
 *                every insert).
 *   entry        written by the one inserter that reserved it: key, offset
 *                and size first, then state = TOC_PUBLISHED with a release
 *                store.  Lookups read state with an acquire load and skip
 *                entries not yet (or never, if the inserter died) published.
 * A process killed at any point leaves at worst an unpublished entry or an
 * unused chunk.  Everything read from the table is checked against the
 * handle's copies before it becomes an address.
 *
 * PostgreSQL's shm_toc takes a spinlock and allocates downwards from the
 * end; here the table size is fixed at creation, so two counters suffice
 * and a process killed inside never leaves a lock held.
 */
#ifndef DYNSHM_FACILITY_TOC_H
#define DYNSHM_FACILITY_TOC_H

#include <stdint.h>

#define TOC_MAGIC 0x434f546d68736e79ull /* "ynshmTOC" little-endian */
#define TOC_VERSION 1u
#define TOC_PUBLISHED 1u
#define TOC_MAX_ALIGN 4096u

struct toc_entry {
	uint64_t key;
	uint64_t offset; /* from base */
	uint64_t size;
	uint32_t state; /* 0 or TOC_PUBLISHED, published last */
	uint32_t reserved_;
};

struct toc_header {
	uint64_t magic;	     /* (C) */
	uint32_t version;    /* (C) */
	uint32_t reserved_;
	uint64_t max_keys;   /* (C) */
	uint64_t data_start; /* (C) first byte after the entries, aligned */
	uint64_t total_size; /* (C) bytes the table manages */
	uint64_t check;	     /* (C) a function of the four above */
	uint64_t alloc_next; /* CAS only */
	uint64_t nreserved;  /* CAS only, at most max_keys */
	struct toc_entry entries[];
};

#endif
