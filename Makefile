# cantor — build, test, demo.  `make help` lists the targets.
#
# Variables: CUDA=1 (build the CUDA backend with nvcc), SAN=1 (AddressSanitizer + UBSan;
# `make test-asan` sets it), CC, OPT.

CC      ?= gcc
OPT     ?= -O2
VERSION := 0.1.0
PYTHON  ?= /usr/bin/python3

# ---- probes: say what was found (the CPU build always works) -------------------------------
PKGCONFIG := $(shell command -v pkg-config 2>/dev/null)
HAVE_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1)
HAVE_CHECK    := $(shell pkg-config --exists check 2>/dev/null && echo 1)
HAVE_SNDFILE  := $(shell pkg-config --exists sndfile 2>/dev/null && echo 1)
HAVE_FLUIDSYNTH := $(shell pkg-config --exists fluidsynth 2>/dev/null && echo 1)
HAVE_PORTMIDI := $(shell test -f /usr/include/portmidi.h && echo 1)
HAVE_MHD      := $(shell pkg-config --exists libmicrohttpd 2>/dev/null && echo 1)
HAVE_MPI      := $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1)
NVCC          ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME     ?= /usr/local/cuda

ifeq ($(HAVE_OPENBLAS),1)
BLAS_CFLAGS := $(shell pkg-config --cflags openblas)
BLAS_LIBS   := $(shell pkg-config --libs openblas)
endif
ifeq ($(HAVE_SNDFILE),1)
AUDIO_CFLAGS := -DCT_HAVE_SNDFILE=1 $(shell pkg-config --cflags sndfile)
AUDIO_LIBS   := $(shell pkg-config --libs sndfile)
endif
# FluidSynth is optional (make deps-fluidsynth); only its library is needed, not its cflags
ifeq ($(HAVE_FLUIDSYNTH),1)
AUDIO_CFLAGS += -DCT_HAVE_FLUIDSYNTH=1
AUDIO_LIBS   += $(shell pkg-config --libs fluidsynth)
endif
# PortMidi (live MIDI output) has no .pc file; it also holds the Pt_* timer functions
ifeq ($(HAVE_PORTMIDI),1)
AUDIO_CFLAGS += -DCT_HAVE_PORTMIDI=1
AUDIO_LIBS   += -lportmidi
endif
# libmicrohttpd serves the training dashboard (apps/ only)
ifeq ($(HAVE_MHD),1)
APP_CFLAGS += -DCT_HAVE_MHD=1 $(shell pkg-config --cflags libmicrohttpd)
APP_LIBS   += $(shell pkg-config --libs libmicrohttpd)
endif
# Open MPI: multi-process data-parallel training (engine/parallel/)
ifeq ($(HAVE_MPI),1)
MPI_CFLAGS := -DCT_HAVE_MPI=1 $(shell pkg-config --cflags ompi-c)
MPI_LIBS   := $(shell pkg-config --libs ompi-c)
endif
ifeq ($(HAVE_CHECK),1)
CHECK_CFLAGS := $(shell pkg-config --cflags check)
CHECK_LIBS   := $(shell pkg-config --libs check)
endif

ifeq ($(SAN),1)
VARIANT  := asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT      := -O1
else
VARIANT  := release
SANFLAGS :=
endif
ifeq ($(CUDA),1)
VARIANT := $(VARIANT)-cuda
endif

BUILD   ?= build/$(VARIANT)
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla \
           -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -I. $(BLAS_CFLAGS) $(SANFLAGS) \
           -DCT_VERSION='"$(VERSION)"' -pthread $(AUDIO_CFLAGS) $(APP_CFLAGS) $(MPI_CFLAGS)
LDLIBS  := $(BLAS_LIBS) $(AUDIO_LIBS) $(APP_LIBS) $(MPI_LIBS) -lz -lm -pthread
LDFLAGS := $(SANFLAGS)

ENGINE_SRC := $(wildcard engine/*.c engine/cpu/*.c engine/parallel/*.c)
AUDIO_SRC  := $(wildcard audio/*.c)
MODELS_SRC := $(wildcard models/*.c)
CORPORA_SRC:= $(wildcard corpora/*.c)
APP_SRC    := $(wildcard apps/*.c)
LIB_SRC    := $(ENGINE_SRC) $(AUDIO_SRC) $(MODELS_SRC) $(CORPORA_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)

ifeq ($(CUDA),1)
CU_SRC   := $(wildcard engine/cuda/*.cu)
LIB_OBJ  += $(CU_SRC:%.cu=$(BUILD)/%.o)
CFLAGS   += -DCT_HAVE_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS   += -L$(CUDA_HOME)/lib64 -lcudart -lcublas -lstdc++ -Wl,-rpath,$(CUDA_HOME)/lib64
ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h),)
CFLAGS += -DCT_HAVE_NCCL=1
LDLIBS += -lnccl
endif
NVFLAGS  := -O2 -std=c++17 -I. -DCT_HAVE_CUDA=1 \
            -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
endif

LIB      := $(BUILD)/libcantor.a
CANTOR   := bin/cantor
TEST_SRC := $(wildcard tests/engine/test_*.c tests/audio/test_*.c tests/models/test_*.c \
                       tests/corpora/test_*.c tests/apps/test_*.c)
TEST_SUPPORT := tests/main.c tests/gradcheck.c
TEST_BIN := $(BUILD)/tests/run_tests
DEMO_BIN := $(BUILD)/examples/first_network

.PHONY: check-mpi deps-fluidsynth check-corpora all probe deps test test-asan test-tsan test-valgrind demo clean help bench check-cuda fixtures fuzz

all: probe $(CANTOR)

probe:
	@echo "cantor $(VERSION) build ($(VARIANT))"
	@if [ "$(HAVE_OPENBLAS)" = 1 ]; then echo "  ✓ OpenBLAS found ($(BLAS_LIBS))"; else echo "  ✗ OpenBLAS not found: run 'make deps'"; fi
	@if [ "$(HAVE_SNDFILE)" = 1 ]; then echo "  ✓ libsndfile found (WAV, FLAC, OGG)"; else echo "  ✗ libsndfile not found: audio files disabled ('make deps')"; fi
	@if [ "$(HAVE_FLUIDSYNTH)" = 1 ]; then echo "  ✓ FluidSynth found (General MIDI rendering with a SoundFont)"; else echo "  ✗ FluidSynth not found: the built-in synthesizer renders ('make deps-fluidsynth' for real instruments)"; fi
	@if [ "$(HAVE_PORTMIDI)" = 1 ]; then echo "  ✓ PortMidi found (cantor play, cantor devices)"; else echo "  ✗ PortMidi not found: no live MIDI output ('make deps')"; fi
	@if [ "$(HAVE_MHD)" = 1 ]; then echo "  ✓ libmicrohttpd found (training dashboard)"; else echo "  ✗ libmicrohttpd not found: no dashboard ('make deps')"; fi
	@if [ "$(HAVE_MPI)" = 1 ]; then echo "  ✓ Open MPI found (mpirun -np N cantor train)"; else echo "  ✗ Open MPI not found: single-process training only ('make deps')"; fi
	@if [ "$(HAVE_CHECK)" = 1 ]; then echo "  ✓ Check found (unit tests)"; else echo "  ✗ Check not found: 'make test' needs it ('make deps')"; fi
	@if [ -n "$(NVCC)" ]; then \
	   if [ "$(CUDA)" = 1 ]; then echo "  ✓ nvcc found: building the CUDA backend"; \
	   else echo "  ✓ nvcc found ($(NVCC)); the CUDA backend builds with 'make CUDA=1'"; fi; \
	 else echo "  ✗ nvcc not found, CPU only"; fi
	@if $(PYTHON) -c 'import torch' 2>/dev/null; then echo "  ✓ PyTorch found (fixtures, benchmarks)"; \
	 else echo "  ✗ PyTorch not found: golden fixtures are committed; 'make bench' skips PyTorch"; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

# Each build variant links its own binary ($(BUILD)/cantor: what its tests run), and bin/cantor
# is a copy of the last one built with `make` (so `make test-asan` leaves a sanitizer binary
# only in build/asan/).
$(BUILD)/cantor: $(APP_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(APP_SRC:%.c=$(BUILD)/%.o) $(LIB) $(LDLIBS)

$(CANTOR): $(BUILD)/cantor
	@mkdir -p bin
	cp $< $@.tmp && mv $@.tmp $@

# ---- tests ----------------------------------------------------------------------------------
# Every tests/<folder>/test_NAME.c defines `Suite *NAME_suite(void)`; the list is generated.
$(BUILD)/tests/suites.h: $(TEST_SRC) Makefile
	@mkdir -p $(dir $@)
	@for f in $(TEST_SRC); do n=$$(basename $$f .c); echo "SUITE($${n#test_})"; done > $@.tmp
	@mv $@.tmp $@

$(BUILD)/tests/%.o: tests/%.c $(BUILD)/tests/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -I$(BUILD)/tests -MMD -MP -c $< -o $@

$(TEST_BIN): $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(TEST_SRC) $(TEST_SUPPORT)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

test: $(TEST_BIN) $(BUILD)/cantor
	@echo "running the unit tests ($(VARIANT)); the summary line is Check's"
	cd tests && CK_DEFAULT_TIMEOUT=600 CANTOR_BIN=$(CURDIR)/$(BUILD)/cantor ../$(TEST_BIN)

test-asan:
	$(MAKE) SAN=1 test

# The data loader's threads under ThreadSanitizer (the data suite; CK_FORK=no keeps one process).
test-tsan:
	$(MAKE) BUILD=build/tsan SANFLAGS=-fsanitize=thread OPT=-O1 build/tsan/tests/run_tests
	cd tests && CK_FORK=no CK_RUN_SUITE=data ../build/tsan/tests/run_tests

test-valgrind: $(TEST_BIN) $(BUILD)/cantor
	cd tests && CK_FORK=no CT_TEST_QUICK=1 CANTOR_BIN=$(CURDIR)/$(BUILD)/cantor valgrind --error-exitcode=1 --leak-check=full \
	  --suppressions=valgrind.supp ../$(TEST_BIN)

# Regenerates the PyTorch golden fixtures (needs python3-torch; the results are committed).
fixtures:
	$(PYTHON) tests/gen_golden.py
	$(PYTHON) tests/gen_golden_layers.py
	$(PYTHON) tests/gen_golden_optim.py
	$(PYTHON) tests/gen_golden_rnn.py
	$(PYTHON) tests/models/gen_golden_models.py
	$(PYTHON) tests/gen_midi_fixtures.py
	$(PYTHON) tests/gen_numpy_fixtures.py

# Fuzzes the MIDI reader with libFuzzer (clang) for FUZZ_SECONDS; crashes land in tests/fuzz/.
FUZZ_SECONDS ?= 60
fuzz:
	tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

# Corpus-level checks (not unit tests): they read ../shared and skip cleanly without it.
check-corpora: all
	tests/corpus_check_midi.sh
	tests/corpus_check_build.sh
	tests/corpus_check_polyphonic.sh
	tests/check_mido_interop.sh

check-cuda:
	$(MAKE) CUDA=1 all

# The CUDA check of issue 7 on a GPU machine (scripts/gpu-check.sh: CUDA build, CUDA tests, the
# GPU benchmark beside PyTorch); `make gpu-kit` here first (copies ../shared/bench and the few
# static libraries the GPU image lacks into .bench-kit/, which the device tool carries).
gpu-check:
	scripts/gpu-check.sh
gpu-kit:
	scripts/gpu-check.sh --prepare
.PHONY: gpu-check gpu-kit

# Data-parallel training on 2 and 3 CPU processes (mpirun) equals one process (tests/check_mpi.sh).
check-mpi: $(LIB)
	BUILD=$(BUILD) tests/check_mpi.sh

# ---- benchmarks (not tests: they measure; see tests/bench/run_bench.sh) --------------------------
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

bench: $(BENCH_BIN) $(CANTOR)
	BENCH_BIN=$(BUILD)/bench/bench_rnn BENCH_DATA=$(BUILD)/bench/bench_data tests/bench/run_bench.sh

# ---- demo -----------------------------------------------------------------------------------
$(DEMO_BIN): apps/examples/first_network.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The main job: build the default corpus (Debian's General MIDI music), train a melody composer
# on it for about two minutes on two cores (DEMO_STEPS), and compose three new pieces as MIDI
# and WAV: demo/sample-001.mid ... demo/sample-003.wav. The run folder demo/run/ can be resumed.
DEMO_DIR   ?= demo
DEMO_STEPS ?= 500
DEMO_SEED  ?= 1234
demo: $(CANTOR) $(DEMO_BIN)
	./$(CANTOR) --version
	./$(DEMO_BIN)
	@mkdir -p $(DEMO_DIR)
	./$(CANTOR) corpus build --default -o $(DEMO_DIR)/default.corpus --encoding melody --quiet
	./$(CANTOR) train --corpus $(DEMO_DIR)/default.corpus --out $(DEMO_DIR)/run --steps $(DEMO_STEPS) \
	    --layers 2 --hidden 256 --dropout 0.2 --batch 32 --window 128 --valid-every 100 --seed $(DEMO_SEED)
	./$(CANTOR) sample --ckpt $(DEMO_DIR)/run/model.safetensors --out $(DEMO_DIR) --count 3 \
	    --length 16bars --temperature 0.9 --seed $(DEMO_SEED) --render $(DEMO_DIR)
	@echo
	@echo "demo: three new pieces, as MIDI and as audio:"
	@for f in $(DEMO_DIR)/sample-00[123].mid $(DEMO_DIR)/sample-00[123].wav; do echo "  $$f"; done
	@echo "  listen: play the .wav files in any audio player; the .mid files open in any MIDI player or score editor"
	@echo "  train on from where it stopped (the same run, bit for bit):"
	@echo "    ./$(CANTOR) train --resume $(DEMO_DIR)/run --steps 2000"
	@echo "  then compose again (another --seed gives other pieces):"
	@echo "    ./$(CANTOR) sample --ckpt $(DEMO_DIR)/run/model.safetensors --out $(DEMO_DIR) --count 3 --length 16bars \\"
	@echo "        --temperature 0.9 --seed 7 --render $(DEMO_DIR)"

# ---- set-up -----------------------------------------------------------------------------------
DEB_PACKAGES := build-essential pkg-config libopenblas-dev zlib1g-dev libsndfile1-dev check valgrind \
                python3-numpy python3-mido clang libclang-rt-14-dev \
                openttd-openmsx simutrans-data libportmidi-dev libmicrohttpd-dev \
                libopenmpi-dev openmpi-bin chromium curl
deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	 if ! dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1; then \
	   $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	   $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $(DEB_PACKAGES); \
	 else echo "deps: all packages already installed ($(DEB_PACKAGES))"; fi

# Optional: FluidSynth and a General MIDI SoundFont for `cantor render` (about 67 packages).
deps-fluidsynth:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	 $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends libfluidsynth-dev timgm6mb-soundfont

clean:
	rm -rf build bin

help:
	@echo "make            build bin/cantor and the engine library (CUDA=1 adds the GPU backend)"
	@echo "make gpu-check  on a GPU machine: CUDA build, CUDA tests, GPU benchmark beside PyTorch (make gpu-kit first)"
	@echo "make deps       install the Debian packages (apt-get)"
	@echo "make test       build and run every Check suite"
	@echo "make test-asan  the same under AddressSanitizer + UBSan"
	@echo "make test-valgrind  the suite under valgrind (no fork)"
	@echo "make demo       the main job: default corpus, train, three new pieces in demo/"
	@echo "make fixtures   regenerate PyTorch golden values (python3-torch)"
	@echo "make fuzz       fuzz the MIDI reader for FUZZ_SECONDS (default 60)"
	@echo "make bench      cantor beside PyTorch on the RNN workloads (reads ../shared/bench)"
	@echo "make check-mpi  mpirun -np 2 and 3: data-parallel training equals one process"
	@echo "make test-browser  headless Chromium loads the dashboard of a short training run"
	@echo "make check-corpora  corpus-level checks on ../shared (skip without it)"

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- dashboard (apps/dashboard*.c, apps/assets/, tests/browser/; issue #8) -------------------
# The page's files are embedded as C string literals into apps/dashboard_assets.c, which is
# committed (a build needs nothing but cc) and regenerated here whenever an asset changes.
# The unit tests link the dashboard's objects and run the server in-process on 127.0.0.1:0;
# the library is named again after them because they use audio/ and models/.
DASH_ASSETS := $(wildcard apps/assets/*.html apps/assets/*.js apps/assets/*.css)
DASH_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(wildcard apps/dashboard*.c))
apps/dashboard_assets.c: $(DASH_ASSETS) apps/tools/embed_assets.c
	@mkdir -p $(BUILD)/tools
	$(CC) -std=c11 -O2 -Wall -Wextra -o $(BUILD)/tools/embed_assets apps/tools/embed_assets.c
	$(BUILD)/tools/embed_assets $@ $(DASH_ASSETS)
dashboard-assets:
	@touch apps/tools/embed_assets.c
	$(MAKE) apps/dashboard_assets.c
$(TEST_BIN): $(DASH_OBJ) $(BUILD)/apps/json_str.o
$(TEST_BIN): LDLIBS := $(LIB) $(LDLIBS)
# A real browser (headless Chromium) loads the page of a short training run; screenshot in tests/tmp/.
test-browser: $(CANTOR)
	tests/browser/test_dashboard.sh
.PHONY: dashboard-assets test-browser
