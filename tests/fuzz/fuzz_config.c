/* SPDX-License-Identifier: MIT */
/* fuzz_config.c - libFuzzer target for the config parser (fuzz_entry.h). */
#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_config(data, size);
	return 0;
}
