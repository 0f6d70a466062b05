# Arc build. Plain GNU make, non-recursive, one archive per module.
#
#   make run     install missing Debian packages, build, start arc (embedded config)
#   make test    install, build release + ASan/UBSan, run unit, fuzz-replay and e2e tests
#   make bench   benchmark arc against nginx and HAProxy (../shared/bench)
#   make build   release build only (build/release/arc)
#   make asan    ASan+UBSan build (build/asan/arc)
#
# Variables: WERROR=0 to drop -Werror locally, V=1 for full command lines.

CC      ?= gcc
WERROR  ?= 1
PKGS    := liburing jansson yaml-0.1 libssl libcrypto libnghttp2 libbpf hiredis
MODULES := core loop net http1 http2 router upstream limit config tls proxy admin obs plugin xdp guard

ifeq ($(V),1)
Q :=
else
Q := @
endif

CFLAGS_COMMON := -std=c17 -D_GNU_SOURCE -Isrc -Wall -Wextra -Wshadow \
                 -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
                 -fno-strict-aliasing -pthread -MMD -MP \
                 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifeq ($(WERROR),1)
CFLAGS_COMMON += -Werror
endif
# The rate limiter's table cells are 16-byte compare-and-swaps (cmpxchg16b).
ifeq ($(shell uname -m),x86_64)
CFLAGS_COMMON += -mcx16
endif
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -luring -ljansson -lyaml -lssl -lcrypto -lnghttp2 -lbpf -lhiredis) -lpcre2-8 -lcares -lz -lpthread -lm -ldl

CFLAGS_release := -O2 -g
CFLAGS_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_release :=
LDFLAGS_asan    := -fsanitize=address,undefined

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

# Unit tests of module M link lib M, libcore and $(DEPS_M) (archives: only
# the members a test uses are pulled in).
DEPS_config   := router http1 tls limit plugin loop
DEPS_proxy    := loop net http1 http2 router upstream limit config tls admin obs plugin xdp guard
DEPS_admin    := loop net http1 http2 obs config tls router limit upstream plugin xdp guard
DEPS_upstream := config router http1 http2 tls limit plugin loop
DEPS_http2    := http1
DEPS_plugin   := config router http1 tls loop
DEPS_xdp      := config router http1 tls limit plugin loop

# The XDP program (src/xdp/arc_xdp.bpf.c): clang's BPF target, then a libbpf
# skeleton that src/xdp/xdp.c includes (the object is embedded in it).
BPFTOOL ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
BPF_CFLAGS := -O2 -g -target bpf -I/usr/include/$(shell uname -m)-linux-gnu -Wall -Werror
build/bpf/arc_xdp.bpf.o: src/xdp/arc_xdp.bpf.c src/xdp/xdp_abi.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BPF $<")
	$(Q)clang $(BPF_CFLAGS) -c $< -o $@
build/bpf/arc_xdp.skel.h: build/bpf/arc_xdp.bpf.o
	$(Q)$(BPFTOOL) gen skeleton $< name arc_xdp_bpf > $@.tmp && mv $@.tmp $@
CFLAGS_COMMON += -Ibuild/bpf

# ----------------------------------------------------------------- sources
mod_srcs  = $(filter-out src/main.c %.bpf.c,$(wildcard src/$(1)/*.c))
UNIT_SRCS := $(wildcard tests/unit/*/*_test.c)

.PHONY: all build asan run test unit e2e fuzz bench deps deps-bench clean help
all: build

# $(call test_libs,VARIANT,MODULE): the archives a unit test of MODULE links.
test_libs = $(foreach m,$(2) $(DEPS_$(2)) core,build/$(1)/lib/lib$(m).a)

# $(call unit_rule,VARIANT,tests/unit/MOD/NAME_test.c)
define unit_rule
$(patsubst tests/unit/%_test.c,build/$(1)/tests/%_test,$(2)): $(2) $(call test_libs,$(1),$(word 3,$(subst /, ,$(2))))
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  TEST [$(1)] $$@")
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -Itests/unit $$(LDFLAGS_$(1)) -o $$@ $$< -Wl,--start-group $$(filter %.a,$$^) -Wl,--end-group $$(LDLIBS)
endef

# $(call variant,NAME)
define variant
B_$(1) := build/$(1)
$$(foreach m,$$(MODULES),$$(eval OBJS_$(1)_$$(m) := $$(patsubst src/%.c,build/$(1)/obj/%.o,$$(call mod_srcs,$$(m)))))
LIBS_$(1) := $$(foreach m,$$(MODULES),$$(if $$(call mod_srcs,$$(m)),build/$(1)/lib/lib$$(m).a))

build/$(1)/obj/xdp/xdp.o: build/bpf/arc_xdp.skel.h
build/$(1)/obj/%.o: src/%.c
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  CC [$(1)] $$<")
	$$(Q)$$(CC) $$(CFLAGS_COMMON) $$(CFLAGS_$(1)) -DARC_VERSION='"$$(VERSION)"' -DARC_GIT_REV='"$$(GIT_REV)"' -DARC_BUILD='"$(1)"' -c $$< -o $$@

$$(foreach m,$$(MODULES),$$(eval build/$(1)/lib/lib$$(m).a: $$(OBJS_$(1)_$$(m)) ; @mkdir -p $$$$(dir $$$$@); rm -f $$$$@; $$(AR) crs $$$$@ $$$$^))

build/$(1)/arc: build/$(1)/obj/main.o $$(LIBS_$(1))
	@$$(if $$(Q),echo "  LD [$(1)] $$@")
	$$(Q)$$(CC) $$(LDFLAGS_$(1)) -pthread -o $$@ $$< -Wl,--start-group $$(LIBS_$(1)) -Wl,--end-group $$(LDLIBS)

# tests/unit/<mod>/<name>_test.c -> build/<v>/tests/<mod>/<name>_test
$$(foreach t,$$(UNIT_SRCS),$$(eval $$(call unit_rule,$(1),$$(t))))

UNIT_BINS_$(1) := $$(patsubst tests/unit/%_test.c,build/$(1)/tests/%_test,$$(UNIT_SRCS))
endef
$(foreach v,release asan,$(eval $(call variant,$(v))))

-include $(shell find build -name '*.d' 2>/dev/null)

build: build/release/arc $(UNIT_BINS_release)
asan: build/asan/arc $(UNIT_BINS_asan)

deps:
	@scripts/install-deps.sh

deps-bench:
	@scripts/install-deps.sh --bench

run: deps
	@$(MAKE) --no-print-directory build/release/arc
	./build/release/arc run

# Fuzz targets: libFuzzer binaries (clang) for exploring, plus a replay of the
# committed corpora through the ASan build in the normal test run.
# The config reader targets link the readers and the canonicaliser only, not
# the schema (which would pull in most modules).
FUZZ_SRCS := $(wildcard tests/fuzz/*_fuzz.c)
FUZZ_HDRS := $(wildcard tests/fuzz/*.h)
FUZZ_CONF_SRCS := $(addprefix src/config/,tree.c errors.c json.c yaml.c toml.c canon.c)
fuzz: $(patsubst tests/fuzz/%_fuzz.c,build/fuzz/%_fuzz,$(FUZZ_SRCS))
build/fuzz/%_fuzz: tests/fuzz/%_fuzz.c $(call mod_srcs,core) $(call mod_srcs,http1) $(call mod_srcs,http2) $(FUZZ_CONF_SRCS) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c,$^) $(LDLIBS)
build/asan/fuzz/%_replay: tests/fuzz/%_fuzz.c tests/fuzz/replay_main.c $(FUZZ_HDRS) $(LIBS_asan)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_COMMON) $(CFLAGS_asan) $(LDFLAGS_asan) -o $@ tests/fuzz/$*_fuzz.c tests/fuzz/replay_main.c \
	  -Wl,--start-group $(LIBS_asan) -Wl,--end-group $(LDLIBS)
FUZZ_REPLAYS := $(patsubst tests/fuzz/%_fuzz.c,build/asan/fuzz/%_replay,$(FUZZ_SRCS))

test: deps
	@$(MAKE) --no-print-directory build asan $(FUZZ_REPLAYS)
	@scripts/run-tests.sh

bench: deps deps-bench
	@$(MAKE) --no-print-directory build/release/arc
	@scripts/bench.sh

clean:
	rm -rf build

help:
	@sed -n '1,12p' Makefile
