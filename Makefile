# SPDX-License-Identifier: MIT
# Makefile - the newcomer's path, nothing more.
#
# The README promises two commands, `make demo` and `make check`, that work on
# a fresh clone.  This file exists to keep that promise: it installs (or names)
# the tools, configures once, and runs what was asked.  Meson does the real
# work; anything beyond these targets is done with meson and ninja directly.
#
#   MESON_OPTS  extra options for `meson setup` (used only when a build
#               directory is first configured: `make clean` to change them)
#   TEST_OPTS   extra options for `meson test`, e.g. TEST_OPTS='--suite posix'
#   CI          when set, warnings are errors (-Dwerror=true)
#   SOAK_KILLS  kills for `make soak` (default 10000; over all backends,
#               each with and without a region)
#   KERNELS_OPTS options for tests/kernels/check-kernels.py, e.g.
#               KERNELS_OPTS='--kernels debian12-6.1 --suite wrapper'

MESON_OPTS ?=
TEST_OPTS ?=
SETUP_OPTS := $(if $(CI),-Dwerror=true) $(MESON_OPTS)
ASAN_OPTS := -Db_sanitize=address,undefined -Db_lundef=false
SOAK_KILLS ?= 10000
KERNELS_OPTS ?=
# UBSan only prints by default; make every finding fail its test.
SAN_ENV := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
CPPCHECK_OPTS := -q --std=c11 --enable=warning,performance,portability \
	--error-exitcode=1 --inline-suppr --library=.cppcheck/dynshm.cfg \
	--suppressions-list=.cppcheck/suppressions.txt \
	-D_GNU_SOURCE -D__linux__ -I include -I .

# $(call setup,DIR,OPTIONS): configure DIR unless it is configured already.
setup = test -f $(1)/build.ninja || meson setup $(1) $(2)

.PHONY: all deps build check check-kernels demo bench bench-memcache soak asan \
	valgrind cppcheck clean

all: build

# Debian/Ubuntu package names.  As root we install what is missing; otherwise
# we say what is missing and how to install it, and stop.
deps:
	@missing=; \
	command -v meson >/dev/null 2>&1 || missing="$$missing meson"; \
	command -v ninja >/dev/null 2>&1 || missing="$$missing ninja-build"; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	command -v valgrind >/dev/null 2>&1 || missing="$$missing valgrind"; \
	command -v cppcheck >/dev/null 2>&1 || missing="$$missing cppcheck"; \
	pkg-config --exists cmocka 2>/dev/null || missing="$$missing libcmocka-dev"; \
	test -z "$$missing" && exit 0; \
	if [ "$$(id -u)" -eq 0 ]; then \
		echo "deps: installing$$missing"; \
		apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
		echo "deps: missing packages:$$missing" >&2; \
		echo "deps: run: sudo apt-get install meson ninja-build libcmocka-dev pkg-config valgrind cppcheck" >&2; \
		exit 1; \
	fi

build: deps
	$(call setup,build,$(SETUP_OPTS))
	ninja -C build

check: build
	meson test -C build --print-errorlogs $(TEST_OPTS)

# The suite inside QEMU guests booting Debian's long-term kernels (5.10,
# 6.1, 6.12; tests/kernels/kernels.list), as root there.  It needs
# qemu-system-x86 and busybox-static: as root we install what is missing,
# otherwise the script says what is missing and skips (as it does where
# QEMU cannot run).  docs/kernels.md.
check-kernels: build
	@if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && \
	   { ! command -v qemu-system-x86_64 >/dev/null || \
	     ! command -v busybox >/dev/null; }; then \
		echo "check-kernels: installing qemu-system-x86 busybox-static"; \
		{ apt-get update -q >/dev/null && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends qemu-system-x86 busybox-static \
			>/dev/null; } || echo "check-kernels: could not install them"; \
	fi
	tests/kernels/check-kernels.py --build build $(KERNELS_OPTS)

demo: build
	bash contrib/dsm_demo/demo.sh build/contrib/dsm_demo/dsm_demo

bench: deps
	$(call setup,build-release,--buildtype=release $(SETUP_OPTS))
	ninja -C build-release
	build-release/bench/dsm_bench

# dsm_memcache against Debian's memcached (2 workers / 2 threads each, one
# load generator, ABAB rounds); docs/memcache.md.  Needs memcached
# (apt-get install memcached).
bench-memcache: deps
	$(call setup,build-release,--buildtype=release $(SETUP_OPTS))
	ninja -C build-release
	bash bench/memcache_bench.sh build-release

# The kill storm at length: SOAK_KILLS kill -9s over the three backends
# (each without and with a region), invariants checked after every round;
# prints operations, kills, repairs and leaks (which must be 0).
soak: build
	build/tests/kill_storm --kills $(SOAK_KILLS)

asan: deps
	$(call setup,build-asan,$(ASAN_OPTS) $(SETUP_OPTS))
	ninja -C build-asan
	$(SAN_ENV) meson test -C build-asan --print-errorlogs $(TEST_OPTS)

valgrind: build
	meson test -C build --setup valgrind --print-errorlogs $(TEST_OPTS)

# Static analysis with the checked-in configuration (.cppcheck/).
cppcheck: deps
	cppcheck $(CPPCHECK_OPTS) src contrib bench tests

clean:
	rm -rf build build-release build-asan
