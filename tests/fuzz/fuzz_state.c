/* SPDX-License-Identifier: MIT */
/* fuzz_state.c - libFuzzer target for the state file parsers (fuzz_entry.h). */
#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_state(data, size);
	return 0;
}
