# nerve: make [all] | test [SANITIZE=1] | test-tsan | check-isa | test-aarch64[-ci] | train | bench | fuzz [FUZZ_SECONDS=N] | docs | install [PREFIX=...] | clean
# CC=clang builds with clang into build-clang/ (build-clang-san/ with SANITIZE=1).
CC      ?= cc
PREFIX  ?= /usr/local
SANITIZE ?= 0

WARN    := -Wall -Wextra -Werror
BASE    := -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -fPIC -fopenmp-simd -fno-math-errno -ffp-contract=off -g
QEMU_AARCH64 ?= qemu-aarch64
# Cross builds for aarch64 (docs/arm.md): CC=aarch64-linux-gnu-gcc builds into build-aarch64/,
# the programs linked statically (qemu-aarch64 then needs no arm64 sysroot), without MPI.
ifneq ($(findstring aarch64,$(notdir $(CC))),)
  BUILD_SUFFIX := -aarch64
  LDSTATIC := -static
  MPI := 0
  RUN_PROG := $(QEMU_AARCH64)
  # GCC 12's aarch64 vectoriser stops with an internal error (vect_transform_reduction) on
  # fmax reductions over float-to-double differences (tests, examples): there fmax and fmin
  # of doubles stay libm calls (none is in a hot loop; the float ones are unaffected).
  CROSS_CFLAGS := -fno-builtin-fmax -fno-builtin-fmin
endif
ifneq ($(findstring clang,$(notdir $(CC))),)
  BUILD_SUFFIX := -clang
  # at -O1 (sanitizer builds) clang may not vectorise an `omp simd` loop: not an error
  ifeq ($(SANITIZE),1)
    WARN += -Wno-pass-failed
  endif
endif
ifeq ($(SANITIZE),1)
  BUILD   := build$(BUILD_SUFFIX)-san
  OPT     := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else ifeq ($(SANITIZE),thread)
  BUILD   := build-tsan
  OPT     := -O1 -fno-omit-frame-pointer -fsanitize=thread
  LDSAN   := -fsanitize=thread
else
  BUILD   := build$(BUILD_SUFFIX)
  OPT     := -O3
  LDSAN   :=
endif
CFLAGS_ALL := $(BASE) $(WARN) $(OPT) $(CROSS_CFLAGS) $(CFLAGS)
LDLIBS  := -lpng -ljpeg -lz -lm -pthread $(LDSAN)

# Data-parallel training under MPI (docs/distributed.md): src/dist/ goes into the nerve
# program only, never into libnerve, and speaks MPI when Open MPI's headers are found
# (pkg-config ompi-c, from libopenmpi-dev); MPI=0 builds it without, MPI=1 insists.
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
  MPI_CFLAGS := -DNERVE_MPI $(shell pkg-config --cflags ompi-c)
  MPI_LIBS   := $(shell pkg-config --libs ompi-c)
endif

DIST_SRC := $(wildcard src/dist/*.c)
DIST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(DIST_SRC))
LIB_SRC  := $(filter-out $(DIST_SRC),$(wildcard src/*/*.c))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC)) $(DIST_OBJ)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC))
EX_SRC   := $(wildcard examples/*.c)
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all test test-tsan check-isa check-isa-aarch64 test-aarch64 test-aarch64-ci train bench fuzz fuzz-build docs install uninstall clean export-check export-check-ci onnx-test onnx-export-check darknet-check
all: $(BUILD)/libnerve.a $(BUILD)/libnerve.so $(BUILD)/nerve $(BUILD)/nerve.1 $(EX_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# the transport's objects are built again when MPI is switched on or off
$(DIST_OBJ): CFLAGS_ALL += $(MPI_CFLAGS)
$(DIST_OBJ): $(BUILD)/mpi-$(MPI).flag
$(BUILD)/mpi-$(MPI).flag:
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/mpi-*.flag
	@touch $@

$(BUILD)/libnerve.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libnerve.so: $(LIB_OBJ) src/libnerve.map
	$(CC) -shared -Wl,--version-script=src/libnerve.map -Wl,-soname,libnerve.so.0 -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/nerve: $(CLI_OBJ) $(BUILD)/libnerve.a
	$(CC) $(LDSTATIC) -o $@ $(CLI_OBJ) $(BUILD)/libnerve.a $(LDLIBS) $(MPI_LIBS)

# The man page, made from the command table (cli/commands.c) by the binary itself.
$(BUILD)/nerve.1: $(BUILD)/nerve
	$(RUN_PROG) ./$(BUILD)/nerve help --man > $@.tmp && mv $@.tmp $@

# docs/cli.md's reference section, rewritten from the same table (tests/test_cli.c checks it).
docs: $(BUILD)/nerve
	scripts/cli_docs.sh ./$(BUILD)/nerve docs/cli.md

$(BUILD)/examples/%: examples/%.c $(BUILD)/libnerve.a include/nerve.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDSTATIC) -o $@ $< $(BUILD)/libnerve.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libnerve.a include/nerve.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -o $@ $< $(BUILD)/libnerve.a $(LDLIBS)

$(BUILD)/nerve_tests: $(TEST_OBJ) $(BUILD)/libnerve.a
	$(CC) $(LDSTATIC) -o $@ $(TEST_OBJ) $(BUILD)/libnerve.a $(LDLIBS)

# The tests see the CLI and the examples of the same build.
test: all $(BUILD)/nerve_tests $(BUILD)/onnx_node_tests
	NERVE_BUILD_DIR=$(BUILD) NERVE_MPI=$(MPI) ASAN_OPTIONS=detect_leaks=1 ./$(BUILD)/nerve_tests $(T)

# ThreadSanitizer over the tests that run the thread pool (test_threads, the optimisers on
# threads, steady state, and every test named *threads*: the direct and Winograd kernels,
# GEMM, norm and pool on 1 and 2 threads). Any report fails the run (halt_on_error); none
# is suppressed. die_after_fork=0: threads_pool_works_after_fork starts a pool in a child
# forked from a threaded parent, which TSan refuses by default (its own limitation, not a
# race; the pool's pthread_atfork handlers give the child a fresh pool).
TSAN_TESTS := test_threads test_optim_threads test_steady_state threads
test-tsan:
	$(MAKE) SANITIZE=thread build-tsan/nerve_tests
	NERVE_BUILD_DIR=build-tsan TSAN_OPTIONS="halt_on_error=1 die_after_fork=0" ./build-tsan/nerve_tests $(or $(T),$(TSAN_TESTS))

# The kernel and operator tests once per instruction set this CPU has (NERVE_ISA, see
# docs/ARCHITECTURE.md), then the proof that NERVE_ISA=portable runs no AVX2/AVX-512 code.
ISA_TESTS := test_isa test_gemm test_winograd test_conv_direct test_ops_ test_model_rnn test_q8 test_quantize
check-isa: all $(BUILD)/nerve_tests
	@for isa in portable avx2 avx512 neon; do \
	    if NERVE_ISA=$$isa ./$(BUILD)/nerve version 2>&1 | grep -q "kernel instruction set: $$isa "; then \
	        echo "== NERVE_ISA=$$isa"; \
	        NERVE_ISA=$$isa NERVE_BUILD_DIR=$(BUILD) ./$(BUILD)/nerve_tests $(ISA_TESTS) | tail -1 | tee $(BUILD)/isa-$$isa.txt; \
	        grep -q " 0 failed" $(BUILD)/isa-$$isa.txt || exit 1; \
	    else echo "== NERVE_ISA=$$isa: not available here, skipped"; fi; \
	done
	scripts/check_isa_portable.sh $(BUILD) $(ISA_TESTS)

# ---- aarch64 under qemu-user (docs/arm.md) -----------------------------------------------
# Cross-compiled with Debian's gcc-aarch64-linux-gnu into build-aarch64/ (static programs),
# the tests run under qemu-aarch64; build-aarch64/qemu/ (scripts/qemu_tree.sh) holds wrappers
# so that tests that run nerve or an example by path run it under qemu too. T= selects tests
# as for make test. The whole suite runs, two tests at a time (NERVE_TEST_JOBS, one emulated
# process per core); CI runs it too (test-aarch64-ci is the same target).
AARCH64_CC ?= aarch64-linux-gnu-gcc
# the longest tests under qemu (processor time), started first (NERVE_TEST_FIRST)
AARCH64_FIRST := segmentation_cfg_trains_on_generated_scenes_and_reports_mean_iou \
    yolo1_cfg_trains_on_generated_scenes_and_reports_map yolo_cfg_trains_on_generated_scenes_and_reports_map \
    segnet_cfg_unpools_at_the_maxima_and_trains \
    every_shipped_model_builds_and_trains_one_step_on_its_data experiment_recos_quick \
    experiment_lottery_quick onnx_export_shipped_resnet34_roundtrips onnx_export_shipped_models_roundtrip
AARCH64_RUN = scripts/qemu_tree.sh build-aarch64 $(QEMU_AARCH64) && \
    NERVE_BUILD_DIR=build-aarch64/qemu NERVE_UNDER_QEMU=1 NERVE_MPI=0 NERVE_TEST_TIMEOUT=$(or $(NERVE_TEST_TIMEOUT),1800) NERVE_TEST_CC="$(AARCH64_CC) -static" \
    NERVE_TEST_JOBS=$(or $(NERVE_TEST_JOBS),2) NERVE_TEST_FIRST="$(AARCH64_FIRST)" NERVE_TEST_EXEC=$(QEMU_AARCH64) $(QEMU_AARCH64) ./build-aarch64/nerve_tests
test-aarch64:
	$(MAKE) CC=$(AARCH64_CC) build-aarch64/nerve_tests build-aarch64/onnx_node_tests all
	$(AARCH64_RUN) $(T)
test-aarch64-ci: test-aarch64
# NERVE_ISA=portable under qemu runs none of nerve's NEON functions (and NERVE_ISA=neon does)
check-isa-aarch64:
	$(MAKE) CC=$(AARCH64_CC) build-aarch64/nerve_tests build-aarch64/nerve
	scripts/check_isa_portable_aarch64.sh build-aarch64 $(QEMU_AARCH64)

# ONNX backend tests (docs/onnx.md): every node, pytorch-converted, pytorch-operator and simple
# model test of Debian's libonnx-testdata, a verdict per test and per operator.
ONNX_TESTDATA ?= /usr/share/libonnx-testdata/data
$(BUILD)/onnx_node_tests: tests/onnx/node_tests.c $(BUILD)/libnerve.a include/nerve.h src/io/onnx.h
	$(CC) $(CFLAGS_ALL) $(LDSTATIC) -o $@ $< $(BUILD)/libnerve.a $(LDLIBS)
# Every cfg of models/, trained briefly and exported, against ONNX Runtime (npm
# onnxruntime-node in bench/onnx) within 1e-5 and Debian's python3-onnx checker; skipped with
# the reason when one is absent (docs/onnx.md, "Export").
onnx-export-check: all $(BUILD)/bench/onnx_export_check
	BUILD=$(BUILD) ./bench/onnx/export_check.sh; rc=$$?; [ $$rc -eq 77 ] || exit $$rc

onnx-test: $(BUILD)/onnx_node_tests
	./$(BUILD)/onnx_node_tests $(ONNX_TEST_FLAGS) $(addprefix $(ONNX_TESTDATA)/,node pytorch-converted pytorch-operator simple)

# darknet's cfgs and weights against Debian's libdarknet (docs/darknet.md): every cfg in
# DARKNET_CFG loaded by nerve and by darknet's own parser, layer by layer. libdarknet is a
# reference for this check only, never linked into libnerve.
DARKNET_CFG ?= /usr/share/darknet/cfg
DARKNET_INC ?= /usr/lib/darknet/include
DARKNET_LIB ?= /usr/lib/darknet
$(BUILD)/dn_ref: tests/darknet/dn_ref.c
	$(CC) -std=c11 -O1 -Wall -I$(DARKNET_INC) -o $@ $< -L$(DARKNET_LIB) -ldarknet -Wl,-rpath,$(DARKNET_LIB) -lm -pthread
$(BUILD)/nerve_shapes: tests/darknet/nerve_shapes.c $(BUILD)/libnerve.a include/nerve.h
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libnerve.a $(LDLIBS)
darknet-check: $(BUILD)/dn_ref $(BUILD)/nerve_shapes
	tests/darknet_check.sh $(BUILD) $(DARKNET_CFG)

# The main job: train the shipped MLP on Fashion-MNIST and report test accuracy.
train: all
	./$(BUILD)/nerve train models/mlp.cfg

bench: all $(BENCH_BIN)
	BUILD=$(BUILD) ./bench/run.sh

# ---- export to C (docs/export-c.md) --------------------------------------------------------
# The exported C of a checkpoint where it must run: x86 against nerve on the whole test set,
# the aarch64 and Cortex-M4 compiles, the flash/RAM figures, N images under qemu-system-arm.
# EXPORT_CKPT defaults to a LeNet-5 trained here for 3 epochs when absent.
EXPORT_CKPT ?= $(BUILD)/export-check/lenet5/model.safetensors
export-check: all
	@test -f $(EXPORT_CKPT) || ./$(BUILD)/nerve train models/lenet5.cfg --epochs 3 \
	    --out $(dir $(EXPORT_CKPT)) --overwrite --quiet
	NERVE_BUILD_DIR=$(BUILD) scripts/export-c/check.sh $(EXPORT_CKPT) $(BUILD)/export-check/out 5

# CI's short version: the iris classifier (trained in a second), 3 samples under qemu.
export-check-ci: all
	./$(BUILD)/nerve train models/iris.cfg --epochs 10 --out $(BUILD)/export-ci/iris --overwrite --quiet
	NERVE_BUILD_DIR=$(BUILD) scripts/export-c/check.sh $(BUILD)/export-ci/iris/model.safetensors \
	    $(BUILD)/export-ci/out 3

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(BUILD)/libnerve.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libnerve.so $(DESTDIR)$(PREFIX)/lib/libnerve.so.0
	ln -sf libnerve.so.0 $(DESTDIR)$(PREFIX)/lib/libnerve.so
	install -m 644 include/nerve.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/nerve $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/nerve.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|0.1.0|g' nerve.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nerve.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig 2>/dev/null || true; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libnerve.a $(DESTDIR)$(PREFIX)/lib/libnerve.so $(DESTDIR)$(PREFIX)/lib/libnerve.so.0 \
	      $(DESTDIR)$(PREFIX)/include/nerve.h $(DESTDIR)$(PREFIX)/bin/nerve $(DESTDIR)$(PREFIX)/lib/pkgconfig/nerve.pc \
	      $(DESTDIR)$(PREFIX)/share/man/man1/nerve.1

# ---- fuzzing (docs/fuzzing.md) ------------------------------------------------------------
# libFuzzer targets tests/fuzz/fuzz_<name>.c, built with clang and ASan+UBSan into
# build-fuzz/ (the library too, instrumented for coverage). `make fuzz` runs each target for
# FUZZ_SECONDS, starting from its seed corpus tests/fuzz/corpus/<name>/ (new inputs go to
# build-fuzz/corpus/<name>/, findings to build-fuzz/findings/); any finding fails the run.
# FUZZ_TARGETS selects targets (default: all).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := $(BASE) $(WARN) -Wno-pass-failed -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_WRAP    := -Wl,--wrap=nerve_xmalloc,--wrap=nerve_xcalloc,--wrap=nerve_xrealloc,--wrap=nerve_xalloc_floats
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(LIB_SRC))

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libnerve.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_BUILD)/libnerve.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE -Isrc -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_BUILD)/libnerve.a $(FUZZ_WRAP) -lz -lpng -ljpeg -lm -pthread

fuzz-build: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-san build-tsan build-clang build-clang-san build-fuzz build-aarch64

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d)
