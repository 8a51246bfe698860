/* SPDX-License-Identifier: MIT */
/*
 * hash_int.h - the shared layout of a hash table (src/facility/hash.c),
 * apart so that a test can scribble on it; its rules are in hash.c.
 */
#ifndef DYNSHM_FACILITY_HASH_INT_H
#define DYNSHM_FACILITY_HASH_INT_H

#include <dynshm/area.h>

#include "tlock.h"

#include <pthread.h>
#include <stdint.h>

#define HASH_MAGIC 0x4873616873796469ull /* ...69: token locks */
#define HASH_NPARTS 64u
#define HASH_PART_SHIFT 58 /* 64 - log2(HASH_NPARTS) */
#define HASH_MIN_LOG2 4u

struct hash_part {
	struct dynshm_tlock lock; /* tlock.h */
	uint32_t dirty;		 /* set while a repair is due */
	uint32_t log2_hint;	 /* derived: buckets' log2, 0 unknown; read
				    unlocked, only to prefetch (hash.c) */
	dynshm_area_ptr head;	 /* primary: all entries */
	dynshm_area_ptr buckets; /* derived: struct hash_buckets */
	uint64_t count;		 /* derived */
} __attribute__((aligned(64)));

struct hash_hdr {
	uint64_t magic;
	uint32_t key_size;   /* 0: strings */
	uint32_t value_size;
	struct hash_part parts[HASH_NPARTS];
};

struct hash_buckets {
	uint64_t log2;
	dynshm_area_ptr b[];
};

struct hash_entry {
	dynshm_area_ptr next;  /* primary: the partition's list */
	dynshm_area_ptr prev;  /* derived */
	dynshm_area_ptr chain; /* derived: bucket chain */
	uint64_t hash;
	uint32_t klen;	       /* bytes of key, NUL included for strings */
	uint32_t voff;	       /* value offset in data[] */
	unsigned char data[];
};

#endif
