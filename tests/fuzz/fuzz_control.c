/* SPDX-License-Identifier: MIT */
/* fuzz_control.c - libFuzzer target for ctl_validate (see fuzz_entry.h). */
#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_control(data, size);
	return 0;
}
