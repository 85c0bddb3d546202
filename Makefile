# weaver-docker - see README.md. Out-of-tree builds: BUILD=build/<variant>.
MAKEFLAGS += --no-builtin-rules
.SUFFIXES:
.SECONDARY: # keep generated protobuf sources and headers
CC        := $(if $(filter default,$(origin CC)),gcc,$(CC))
BUILD     ?= build/default
VERSION   := 0.1.0
PKGS      := libcurl libcjson libprotobuf-c libarchive libcrypto yaml-0.1
WARN      := -Wall -Wextra -Wformat=2 -Wshadow -Wconversion -Wno-sign-conversion \
             -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition -Wcast-qual \
             -Wpointer-arith -Wwrite-strings -Wundef -Wvla -Wimplicit-fallthrough \
             -Werror=implicit-function-declaration -Werror=incompatible-pointer-types \
             -Werror=int-conversion -Werror=format-security
WARN_GCC  := -Wjump-misses-init -Wduplicated-cond -Wduplicated-branches -Wlogical-op
HARDEN    ?= -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fcf-protection
WERROR    ?= 1
CPPFLAGS  += -D_GNU_SOURCE -DWD_VERSION='"$(VERSION)"' -I. -I$(BUILD)/proto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS    ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(if $(findstring clang,$(CC)),,$(WARN_GCC)) $(HARDEN) \
             $(CFLAGS) $(PKG_CFLAGS) $(if $(filter 1,$(WERROR)),-Werror)
LDFLAGS   += -Wl,-z,relro,-z,now -Wl,--as-needed
LDLIBS    += $(PKG_LIBS) -lpthread

PROTO_SRC := $(wildcard proto/*.proto)
PROTO_C   := $(PROTO_SRC:proto/%.proto=$(BUILD)/proto/%.pb-c.c)
PROTO_H   := $(PROTO_C:.c=.h)
LIB_SRC   := $(wildcard engine/*/*.c compose/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(PROTO_C:.c=.o)
CMD_SRC   := $(wildcard cmd/*.c)
CMD_OBJ   := $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
SHIM_SRC  := $(wildcard images/shim/*.c)
SHIM_CC   ?= musl-gcc
SHIM      := $(BUILD)/shim/weaver-docker-shim
LIB       := $(BUILD)/libwd.a
BIN       := $(BUILD)/weaver-docker
# The compose manager: `weaver-docker manage` as one static musl program (images/manager), from
# the engine sources that need no libcurl, libarchive, OpenSSL or libyaml.
MGR       := $(BUILD)/manager/weaver-docker-manager
MGR_LEFT  := engine/docker/docker.c engine/docker/docker_parse.c engine/docker/docker_stream.c \
             engine/docker/http.c engine/docker/image.c engine/deploy/mtls.c engine/deploy/pprof.c \
             compose/compose.c
MGR_SRC   := $(filter-out $(MGR_LEFT),$(LIB_SRC)) $(PROTO_C) cmd/manage.c cmd/options.c \
             $(wildcard images/manager/*.c)
MGR_OBJ   := $(patsubst %.c,$(BUILD)/manager/obj/%.o,$(MGR_SRC:$(BUILD)/%=%))
MUSL_DEPS := build/musl-deps
PROTOBUF_C_A ?= $(firstword $(wildcard /usr/lib/$(shell gcc -print-multiarch 2>/dev/null)/libprotobuf-c.a \
             /usr/lib/libprotobuf-c.a))

.PHONY: all deps test unit integration asan fuzz fuzz-run demo bench soak vectors apps clean fmt \
        fmt-check lint shim
all: $(BIN) $(SHIM) $(MGR)

deps:
	@scripts/deps.sh

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(@D)
	@echo "  PROTOC $<"
	@protoc-c --proto_path=proto --c_out=$(@D) $<
$(BUILD)/proto/%.pb-c.o: ALL_CFLAGS += -Wno-cast-qual -Wno-conversion
$(BUILD)/proto/%.o: $(BUILD)/proto/%.c
	@echo "  CC $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	@echo "  CC $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BIN): $(CMD_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CMD_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

# Fuzz targets double as regression tests: linked with tests/fuzz/replay.c they replay
# tests/fuzz/corpus/<name>/ under gcc (and ASan); `make fuzz` builds them for libFuzzer.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/tests/fuzz/replay.o $(LIB) $(LDLIBS)

# The shim: static, libc only (musl), PID 1 in every container.
shim: $(SHIM)
$(SHIM): $(SHIM_SRC) $(wildcard images/shim/*.h)
	@mkdir -p $(@D)
	$(SHIM_CC) -std=gnu11 -D_GNU_SOURCE -I. $(WARN) -Werror -Os -fstack-protector-strong \
	    -static -Wl,--gc-sections -ffunction-sections -fdata-sections -s -o $@ $(SHIM_SRC)
	@if readelf -l $@ | grep -q INTERP; then echo "shim is not static" >&2; rm -f $@; exit 1; fi

# cJSON built for musl from Debian's source package (scripts/musl-cjson.sh); protobuf-c's
# static archive from libprotobuf-c-dev links as it is (it needs only mem*, str*, malloc).
$(MUSL_DEPS)/lib/libcjson.a: scripts/musl-cjson.sh
	@MUSL_CC=$(SHIM_CC) scripts/musl-cjson.sh $(MUSL_DEPS)
	@ln -sfn $$(pkg-config --variable=includedir libprotobuf-c)/protobuf-c $(MUSL_DEPS)/include/protobuf-c
MGR_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DWD_VERSION='"$(VERSION)"' -I. -I$(BUILD)/proto \
             -I$(MUSL_DEPS)/include $(WARN) -Werror -Os -fstack-protector-strong \
             -ffunction-sections -fdata-sections
$(BUILD)/manager/obj/proto/%.o: $(BUILD)/proto/%.c $(MUSL_DEPS)/lib/libcjson.a
	@mkdir -p $(@D)
	@echo "  MUSL $<"
	@$(SHIM_CC) $(MGR_CFLAGS) -Wno-cast-qual -Wno-conversion -MMD -MP -c -o $@ $<
$(BUILD)/manager/obj/%.o: %.c $(MUSL_DEPS)/lib/libcjson.a | $(PROTO_H)
	@mkdir -p $(@D)
	@echo "  MUSL $<"
	@$(SHIM_CC) $(MGR_CFLAGS) -MMD -MP -c -o $@ $<
$(MGR): $(MGR_OBJ) $(MUSL_DEPS)/lib/libcjson.a
	@test -n "$(PROTOBUF_C_A)" || { echo "no libprotobuf-c.a: install libprotobuf-c-dev" >&2; exit 1; }
	$(SHIM_CC) -static -Wl,--gc-sections -s -o $@ $(MGR_OBJ) $(MUSL_DEPS)/lib/libcjson.a \
	    $(PROTOBUF_C_A) -lpthread
	@if readelf -l $@ | grep -q INTERP; then echo "manager is not static" >&2; rm -f $@; exit 1; fi

unit: $(UNIT_BIN) $(FUZZ_BIN)

# Go test apps (real Service Weaver binaries) and the weaver CLI, cached in build/go.
apps:
	@tests/apps/build.sh

# Everything CI runs: deps, unit tests (gcc, then ASan+UBSan), fuzz corpus replay, integration
# tests against the real engine and real weavelets. Ends with "N passed, N failed".
test:
	@scripts/deps.sh --test
	$(MAKE) all unit
	$(MAKE) BUILD=build/asan CFLAGS='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' HARDEN= all unit
	$(MAKE) apps
	$(MAKE) fuzz FUZZ_TIME=$(TEST_FUZZ_TIME)
	@tests/run.sh --build $(BUILD) --asan build/asan

integration: all apps
	@tests/run.sh --build $(BUILD) --only-integration

asan:
	$(MAKE) BUILD=build/asan CFLAGS='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' HARDEN= all unit
	@tests/run.sh --build build/asan --only-unit

FUZZ_TIME ?= 30
TEST_FUZZ_TIME ?= 10 # per target, in make test
fuzz:
	$(MAKE) BUILD=build/fuzz CC=clang WERROR=1 HARDEN= \
	    CFLAGS='-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
	    build/fuzz/libwd.a $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/tests/fuzz/%.o)
	@for f in $(FUZZ_SRC:tests/fuzz/%.c=%); do \
	  clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o build/fuzz/$$f build/fuzz/tests/fuzz/$$f.o \
	    build/fuzz/libwd.a $(PKG_LIBS) -lpthread || exit 1; \
	  mkdir -p build/fuzz/corpus/$$f; \
	  echo "== fuzz $$f for $(FUZZ_TIME)s"; \
	  build/fuzz/$$f -max_total_time=$(FUZZ_TIME) -max_len=65536 -artifact_prefix=build/fuzz/ build/fuzz/corpus/$$f \
	    tests/fuzz/corpus/$${f#fuzz_} >build/fuzz/$$f.log 2>&1 || { tail -n 40 build/fuzz/$$f.log; \
	    echo "fuzz: $$f found a crash; the input is in build/fuzz (crash-*)"; exit 1; }; \
	  tail -n 1 build/fuzz/$$f.log; \
	done

demo: deps
	$(MAKE) all
	$(MAKE) apps
	@scripts/demo.sh $(BIN)

bench:
	@scripts/deps.sh --bench
	$(MAKE) all
	$(MAKE) apps
	@bench/run.sh $(BUILD)

# Leak hunt on the real engine (~70 min on 2 busy CPUs; not part of test or CI): 100 up -d/down cycles, 1,000
# restarts of a crashing replica under a foreground up, then nothing may be left.
soak: all apps
	@tests/soak/soak.sh $(BUILD)

vectors:
	@tests/vectors/regen.sh

fmt:
	clang-format -i $(LIB_SRC) $(CMD_SRC) $(SHIM_SRC) $(wildcard engine/*/*.h cmd/*.h)
fmt-check:
	clang-format --dry-run --Werror $(LIB_SRC) $(CMD_SRC) $(SHIM_SRC)
lint:
	@! grep -nE '\b(sprintf|strcpy|strcat|strtok|atoi|sscanf|gets)\(' $(LIB_SRC) $(CMD_SRC) $(SHIM_SRC)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
