/* SPDX-License-Identifier: MIT */
/*
 * fuzz_entry.h - the entry points that both fuzzers and the corpus replay
 * test (tests/test_fuzz_corpus.c) drive, so a crash found by one is a
 * regression test in the other.
 *
 * fuzz_control: data[0] is a flag byte (bit 0: repair the header checksum
 *   before validating, so that inputs reach the geometry checks and the
 *   walk behind them instead of dying at the checksum); the rest is a
 *   control segment image.  Returns ctl_validate's result; when that
 *   accepts, the image has also been recomputed, walked and re-validated.
 * fuzz_config: data is the text of a configuration file, fed through
 *   dynshm_config_load_file.  Returns its result.
 * fuzz_state: data is the text of an instance directory's state file, or
 *   of its pending file (when it starts with "dynshm-pending"), cut to
 *   what state_read reads and fed through state_parse or
 *   state_parse_pending.  Both parsers see every input; the one the text
 *   names decides the result.
 * None may crash, leak or touch memory outside the input, whatever the
 * bytes; that is what the sanitizers check.
 */
#ifndef DYNSHM_FUZZ_ENTRY_H
#define DYNSHM_FUZZ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

int fuzz_control(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_state(const uint8_t *data, size_t size);

#endif
