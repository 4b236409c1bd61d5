# vlm.c build. `make` builds ./vlm (CPU backend always; CUDA backend when nvcc is found),
# `make test` runs the CPU tests, `make test-asan` runs them under AddressSanitizer + UBSan,
# `make test-cuda` runs the GPU tests (GPU machine; `make test-cuda-fp32` with fp32 activations),
# `make test-mpi` runs the data-parallel tests (mpirun -np 2 on the CPU),
# `make demo` runs the miniature study, `make fuzz` fuzzes every parser (clang + libFuzzer, FUZZ_SECONDS each),
# `make deps` installs the Debian packages the build needs.

CC       ?= gcc
, := ,
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
OPT      ?= -O2
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP
CFLAGS   += -I. -I/usr/include/stb -I/usr/include/cjson
# .deps/ holds Debian packages unpacked for the GPU machine, which reaches no package registry
DEPS_DIR := .deps
CFLAGS   += $(if $(wildcard $(DEPS_DIR)/usr/include),-I$(DEPS_DIR)/usr/include -I$(DEPS_DIR)/usr/include/stb -I$(DEPS_DIR)/usr/include/cjson)
# libjpeg-turbo's jconfig.h sits in the multiarch include folder
CFLAGS   += $(if $(wildcard $(DEPS_DIR)/usr/include/x86_64-linux-gnu/jconfig.h),-I$(DEPS_DIR)/usr/include/x86_64-linux-gnu)
# an absolute rpath: both ./vlm and build/test_vlm find the carried libraries
LDLIBS   := $(if $(wildcard $(DEPS_DIR)/usr/lib/x86_64-linux-gnu),-L$(DEPS_DIR)/usr/lib/x86_64-linux-gnu -Wl$(,)-rpath$(,)$(abspath $(DEPS_DIR)/usr/lib/x86_64-linux-gnu))
LDLIBS   += -lcjson -lstb -ljpeg -lz -lm -fopenmp -lpthread

# MPI (data-parallel training, train/dist.h): built in when mpicc (Open MPI, libopenmpi-dev) is found; NO_MPI=1
# builds without it (a binary that runs one process and refuses mpirun -np N > 1)
MPICC    ?= $(if $(filter 1,$(NO_MPI)),,$(shell command -v mpicc 2>/dev/null))
ifneq ($(MPICC),)
CFLAGS   += -DVLM_MPI $(shell $(MPICC) --showme:compile 2>/dev/null)
LDLIBS   += $(shell $(MPICC) --showme:link 2>/dev/null)
endif

BUILD    ?= build
SANITIZE ?=
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   += -fsanitize=address,undefined
endif
# FUZZ=1 (set by `make fuzz`, with CC=clang): coverage instrumentation for libFuzzer
ifneq ($(FUZZ),)
# clang outlines OpenMP regions into functions without the AVX-512 target attribute of their host function, and
# refuses the vector types there; the fuzzers run on the AVX-512 machines the project targets (README)
CFLAGS   += -fsanitize=fuzzer-no-link -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
endif

LIB_SRCS  := $(wildcard util/*.c model/*.c data/*.c train/*.c eval/*.c)
LIB_SRCS  := $(filter-out model/ops_cpu.c,$(LIB_SRCS))
CLI_SRCS  := $(wildcard cli/*.c)
TEST_SRCS := $(wildcard tests/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(if $(wildcard model/ops_cpu.c),$(BUILD)/model/ops_cpu32.o $(BUILD)/model/ops_cpu64.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)

# CUDA: built when nvcc exists (and not under the sanitizers, unless CUDA_ASAN=1: then the host C code runs
# under ASan+UBSan beside kernels built as usual; `make test-cuda-asan`). sm_90a for H100/H200, sm_80 for A100.
CUDA_SRCS := $(wildcard cuda/*.cu)
ifneq ($(NVCC),)
ifneq ($(CUDA_SRCS),)
ifeq ($(if $(CUDA_ASAN),,$(SANITIZE)),)
ifneq ($(NO_CUDA),1)
CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDNN_INC  := $(firstword $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h /usr/include/cudnn.h $(DEPS_DIR)/usr/include/x86_64-linux-gnu/cudnn.h))
NVCCFLAGS  := -O3 -std=c++17 -g -lineinfo -I. -Xcompiler -Wall,-Wno-unused-parameter,-fopenmp \
              -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 -MMD -MP
CUDA_OBJS  := $(CUDA_SRCS:%.cu=$(BUILD)/%.o)
CFLAGS     += -DVLM_CUDA
LDLIBS     += -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/targets/x86_64-linux/lib -lcublasLt -lcublas -lcudart -lstdc++ \
              -Wl,-rpath,$(CUDA_HOME)/lib64
# NCCL (the CUDA backend's collectives in data-parallel training, cuda/nccl.cu) where nccl.h is found
NCCL_INC   := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h $(DEPS_DIR)/usr/include/nccl.h))
NCCL_LIB   := $(firstword $(wildcard $(CUDA_HOME)/lib/libnccl.so $(CUDA_HOME)/lib64/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so))
ifneq ($(and $(NCCL_INC),$(NCCL_LIB)),)
NVCCFLAGS  += -DVLM_NCCL -I$(dir $(NCCL_INC))
CFLAGS     += -DVLM_NCCL
LDLIBS     += -L$(dir $(NCCL_LIB)) -lnccl -Wl,-rpath,$(abspath $(dir $(NCCL_LIB)))
endif
ifneq ($(CUDNN_INC),)
NVCCFLAGS  += -DVLM_CUDNN -I$(dir $(CUDNN_INC))
CFLAGS     += -DVLM_CUDNN
LDLIBS     += -lcudnn
endif
# CUDA_FP32=1: the CUDA backend with fp32 activations (floatX in cuda/common.cuh), a correctness build for exact
# comparisons (`make test-cuda-fp32` builds it in its own tree)
ifneq ($(CUDA_FP32),)
NVCCFLAGS  += -DVLM_CUDA_FP32
CFLAGS     += -DVLM_CUDA_FP32
endif
endif
endif
endif
endif

.PHONY: all test test-mpi test-asan test-cuda test-cuda-asan test-cuda-fp32 demo deps deps-device bench clean flags fixtures fuzz fuzz-build
all: flags vlm $(BUILD)/test_vlm

flags:
	@echo "CC=$(CC) CFLAGS=$(CFLAGS)"
	@echo "NVCC=$(if $(CUDA_OBJS),$(NVCC) $(NVCCFLAGS),(CUDA backend not built))"
	@echo "LDLIBS=$(LDLIBS)"

vlm: $(CLI_OBJS) $(LIB_OBJS) $(CUDA_OBJS)
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/test_vlm: $(TEST_OBJS) $(LIB_OBJS) $(CUDA_OBJS)
	$(CC) -o $@ $^ $(LDLIBS)

# Objects depend on a stamp of the flags, so switching configurations (CUDA or not, sanitizers) rebuilds.
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD) && echo '$(CC) $(CFLAGS) $(NVCCFLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS) $(NVCCFLAGS)' > $(FLAGS_STAMP))

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The CPU reference ops, compiled twice: fp32 (the reference backend) and fp64 (for gradient checks)
$(BUILD)/model/ops_cpu32.o: model/ops_cpu.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCPU_REAL=float -c -o $@ $<
$(BUILD)/model/ops_cpu64.o: model/ops_cpu.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCPU_REAL=double -c -o $@ $<

$(BUILD)/%.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

test: deps
	$(MAKE) vlm $(BUILD)/test_vlm
	$(BUILD)/test_vlm $(T)
	$(if $(T),,$(if $(MPICC),$(BUILD)/test_vlm mpi,@echo "test: the mpirun tests need the MPI build (make deps)"; exit 1))

# The data-parallel tests (tests/test_mpi.c, run by `make test` too): 2 ranks against 1 on the CPU backend, ZeRO-1 against the
# whole optimizer, a checkpoint resumed across rank counts, a killed rank. Needs the MPI build (make deps).
test-mpi: deps
	$(MAKE) vlm $(BUILD)/test_vlm
	$(BUILD)/test_vlm mpi

test-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT=-O1 build-asan/test_vlm vlm-asan
	VLM_BIN=./vlm-asan ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 build-asan/test_vlm $(T)
	$(if $(T),,$(if $(MPICC),VLM_BIN=./vlm-asan ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 build-asan/test_vlm mpi))

vlm-asan: $(CLI_OBJS) $(LIB_OBJS)
	$(CC) -o $@ $^ $(LDLIBS)

test-cuda: vlm $(BUILD)/test_vlm
	VLM_CUDA_TESTS=1 $(BUILD)/test_vlm cuda $(T)

# The GPU tests with the host code under AddressSanitizer + UBSan (GPU machine). The CUDA runtime maps
# memory where ASan keeps its shadow gap, hence protect_shadow_gap=0.
test-cuda-asan:
	$(MAKE) BUILD=build-asan-cuda SANITIZE=1 CUDA_ASAN=1 OPT=-O1 build-asan-cuda/test_vlm vlm
	VLM_CUDA_TESTS=1 ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  build-asan-cuda/test_vlm cuda $(T)

# The GPU tests against the CUDA backend built with fp32 activations (GPU machine), in its own tree and
# binary: kernels and whole models against the CPU reference at fp32 tolerances, and `vlm logprobs
# --device cuda` within 1e-4 of transformers.
test-cuda-fp32:
	$(MAKE) BUILD=build-fp32 CUDA_FP32=1 build-fp32/test_vlm vlm-fp32
	VLM_CUDA_TESTS=1 VLM_BIN=./vlm-fp32 build-fp32/test_vlm cuda $(T)

vlm-fp32: $(CLI_OBJS) $(LIB_OBJS) $(CUDA_OBJS)
	$(if $(and $(CUDA_FP32),$(CUDA_OBJS)),,$(error vlm-fp32 needs nvcc and CUDA_FP32=1 (make test-cuda-fp32 builds it)))
	$(CC) -o $@ $^ $(LDLIBS)

# The miniature study (DESIGN.md section 5, demo/run.sh): the full configuration where `vlm device` finds a
# GPU, the cpu one (about 20 minutes on 2 cores) elsewhere; `make demo DEMO=cpu|full|test` picks.
DEMO ?=
demo: deps
	$(MAKE) vlm
	bash demo/run.sh $(DEMO)

# `make test` runs this first: a no-op when the packages are there (or carried in .deps/ on the GPU machine)
deps:
	@if [ -d $(DEPS_DIR)/usr/include/cjson ]; then echo "deps: using $(DEPS_DIR)/"; exit 0; fi; \
	missing=""; for p in libstb-dev libcjson-dev libjpeg62-turbo-dev zlib1g-dev libopenmpi-dev openmpi-bin; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all installed"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
	else echo "deps: missing$$missing; run: sudo apt-get install -y$$missing"; exit 1; fi

# Unpack the runtime .deb files into .deps/ (git-ignored) for the GPU machine, which has no registry.
# The tokenizers travel too (the ../shared folder beside the checkout does not): the demo reads them from
# $(DEPS_DIR)/shared/ when ../shared/data is not there.
deps-device:
	@mkdir -p $(DEPS_DIR)/debs && cd $(DEPS_DIR)/debs && \
	  apt-get download libcjson1 libcjson-dev libstb0 libstb-dev libjpeg62-turbo libjpeg62-turbo-dev zlib1g-dev >/dev/null && \
	  for f in *.deb; do dpkg -x $$f ..; done && echo "deps-device: unpacked into $(DEPS_DIR)/"
	@if [ -d ../shared/data/tokenizers ]; then mkdir -p $(DEPS_DIR)/shared && cp -r ../shared/data/tokenizers $(DEPS_DIR)/shared/ && \
	  echo "deps-device: tokenizers copied into $(DEPS_DIR)/shared/"; fi

# Regenerates every committed fixture (needs torch, transformers, sentencepiece, tokenizers, pillow, ftfy)
fixtures:
	python3 tests/ref/make_fixtures.py
	python3 tests/ref/make_multi_image_fixtures.py
	python3 tests/ref/make_loss_fixtures.py
	python3 tests/ref/make_image_fixtures.py
	python3 tests/ref/make_tokenizer_fixtures.py
	python3 tests/ref/make_hf_tokenizer_fixtures.py
	python3 tests/ref/make_safetensors_fixture.py
	python3 tests/ref/make_dinov2_fixtures.py

# ---- fuzzing: libFuzzer targets for every parser of untrusted input (tests/fuzz/fuzz_*.c) ----
# `make fuzz` builds each target with clang under ASan + UBSan into build-fuzz/ and runs it for
# FUZZ_SECONDS (default 20) from its seed corpus (the repository's fixtures, the shared tokenizers when
# ../shared/data is there, tests/fuzz/seeds/) and the regression corpus tests/fuzz/regress/NAME/;
# FUZZ_TARGETS=config,image picks some. New inputs collect in build-fuzz/corpus/NAME/ (kept between
# runs); a crash stops with the input in build-fuzz/crash-NAME-*: once fixed, commit it to
# tests/fuzz/regress/NAME/, which `make test` replays (tests/test_fuzz_replay.c).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_BUILD   := build-fuzz
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_NAMES   := $(subst $(,), ,$(FUZZ_TARGETS))
FUZZ_SHARED  := $(firstword $(VLM_SHARED_DATA) $(wildcard ../shared/data ../../shared/data ../../../shared/data))
# seed files per target (patterns; missing ones are skipped)
FUZZ_SEEDS_config            := tests/fixtures/models/*/config.json
FUZZ_SEEDS_preprocess_config := tests/fixtures/models/*/preprocessor_config.json
FUZZ_SEEDS_safetensors       := tests/fixtures/safetensors/*.safetensors tests/fixtures/models/clip/model.safetensors
FUZZ_SEEDS_sentencepiece     := $(FUZZ_SHARED)/tokenizers/llama2_tokenizer.model
FUZZ_SEEDS_clip_bpe          := $(FUZZ_SHARED)/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz
FUZZ_SEEDS_hf_tokenizer      := tests/fixtures/tokenizers/tiny_tokenizer.json
FUZZ_SEEDS_image             := tests/fixtures/image/*.jpg tests/fixtures/image/gray*.png tests/fixtures/image/la*.png \
                                tests/fixtures/image/rgb*.png tests/fixtures/models/llava_gqa/images/*.png

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (libFuzzer comes with clang)"; exit 1; }
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SANITIZE=1 FUZZ=1 OPT=-O1 NO_CUDA=1 fuzz-build
	@$(foreach t,$(FUZZ_NAMES),mkdir -p $(FUZZ_BUILD)/seeds/$(t) $(FUZZ_BUILD)/corpus/$(t) \
	  $(foreach f,$(wildcard $(FUZZ_SEEDS_$(t))),&& cp $(f) $(FUZZ_BUILD)/seeds/$(t)/$(subst /,_,$(f)));)
	@set -e; for t in $(FUZZ_NAMES); do \
	  [ -f tests/fuzz/fuzz_$$t.c ] || { echo "fuzz: no target $$t (have: $(FUZZ_ALL))"; exit 1; }; \
	  dirs="$(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/seeds/$$t $$(ls -d tests/fuzz/seeds/$$t tests/fuzz/regress/$$t 2>/dev/null || true)"; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s ($$(find $$dirs -type f | wc -l) corpus and seed files)"; \
	  if ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
	     $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -detect_leaks=0 \
	     -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- $$dirs > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	    grep -E "^Done [0-9]+ runs" $(FUZZ_BUILD)/fuzz_$$t.log | sed "s/^/fuzz: $$t: /"; \
	  else tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz: $$t FAILED; the input is in $(FUZZ_BUILD)/crash-$$t-*; once fixed, add it to tests/fuzz/regress/$$t/"; exit 1; fi; \
	done

fuzz-build: $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_ALL))

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIB_OBJS)
	$(CC) $(filter-out -MMD -MP -fsanitize=fuzzer-no-link,$(CFLAGS)) -fsanitize=fuzzer -o $@ $< $(LIB_OBJS) $(LDLIBS)

clean:
	rm -rf build build-asan build-asan-cuda build-fp32 build-fuzz vlm vlm-asan vlm-fp32

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- GPU benchmarks (need nvcc; run on the GPU machine) ----
# `make bench-attention` builds build/bench_attention, the check and benchmark of cuda/attention.cu (flash)
# and cuda/attention_cudnn.cu:
#   build/bench_attention test    every attention path against the CPU reference at odd shapes
#   build/bench_attention bench   flash vs cuDNN forward/backward TFLOP/s at the DESIGN.md shapes
# `make bench-kernels` builds build/bench_kernels, the kernel lab (bench/bench_kernels.cu):
#   build/bench_kernels [--only SUBSTRING] [--reps N] [--json FILE]   every family, fwd and bwd, at the
#   llava-1.4b training and LLaVA-7B decode shapes: median ms, TFLOP/s or GB/s against the GEMM and copy
#   ceilings measured in the same run.
# Each links every CUDA object (backend.cu holds the stream and the scratch buffer they share), the CPU
# reference (their checks; model/backend.o keeps its byte count, and backend_select needs ops_cpu64.o) and
# util/common.o (no cjson/stb), with a static CUDA runtime and cuBLASLt/cuBLAS/cuDNN as shared libraries
# found through an rpath.
BENCH_LIBS := -L$(CUDA_HOME)/lib64 -L$(CUDA_HOME)/targets/x86_64-linux/lib -lcublasLt -lcublas -lcudart_static \
              $(if $(CUDNN_INC),-lcudnn) -Wl,-rpath,$(CUDA_HOME)/lib64 -lstdc++ -lm -ldl -lrt -lpthread -fopenmp
.PHONY: bench-attention bench-kernels
bench-attention: $(BUILD)/bench_attention
bench-kernels: $(BUILD)/bench_kernels
$(BUILD)/bench_attention $(BUILD)/bench_kernels: $(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(CUDA_OBJS) \
    $(BUILD)/model/ops_cpu32.o $(BUILD)/model/ops_cpu64.o $(BUILD)/model/gemm_cpu.o $(BUILD)/model/backend.o \
    $(BUILD)/util/common.o
	$(if $(CUDA_OBJS),,$(error $@ needs nvcc))
	$(CC) -o $@ $^ $(BENCH_LIBS)
