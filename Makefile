# gptoss — see README.md. Every target works offline (loopback only).
GO      ?= go
BIN     := bin
GOFLAGS := -trimpath
export CGO_ENABLED := 0

.PHONY: all build demo test test-emu cuda-emu fuzz test-race bench bench-pull bench-convert bench-oci bench-cloud bench-cpu vet fmt clean cuda cuda-trace gpu-bundle

all: build

# With nvcc on the PATH the binary embeds the CUDA kernels (make cuda);
# without it, it builds with the CPU engine only and says so when asked for cuda.
NVCC ?= nvcc
build: $(if $(shell command -v $(NVCC) 2>/dev/null),cuda)
	$(GO) build $(GOFLAGS) -o $(BIN)/gptoss ./cmd/gptoss
	$(GO) build $(GOFLAGS) -o $(BIN)/gptoss-testhub ./cmd/gptoss-testhub

# The main job end to end on a built-in default: serve a tiny gpt-oss model
# from a local Hugging Face test hub, check the machine, pull, convert,
# verify and list it, then carry it through an air gap in a tar.
demo: build
	./scripts/demo.sh

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=50000x
	@if command -v $(CXX) >/dev/null 2>&1 && [ "$$(uname -m)" = x86_64 ]; then $(MAKE) test-emu; \
	else echo "no $(CXX) or not x86-64: the CUDA kernels' tests on the CPU emulator (make test-emu) did not run"; fi

# The safetensors header parser against the fuzzer (briefly in `make test`).
# -fuzzminimizetime keeps it from spending the budget shrinking the seeds.
# The budgets are executions, not seconds: Go 1.26's fuzz coordinator can
# fail a duration budget with a bare "context deadline exceeded" when a
# loaded worker is mid-call as the time ends (golang/go#75804, fixed in Go
# 1.27; CI hit it). 50000 executions take about 10 s here, 300000 a minute.
FUZZTIME ?= 300000x
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzOpenFile -fuzztime $(FUZZTIME) -fuzzminimizetime 50x ./convert

test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

# Go micro-benchmarks (no peers).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./fetch/ ./verify/

# gptoss against aria2c, curl and @huggingface/hub on the same 4 GiB fixture.
bench-pull: build
	./scripts/bench-pull.sh

# gptoss convert (GPU-ready layout) against cp of the same bytes, 4 GiB fixture.
bench-convert: build
	./scripts/bench-convert.sh

# gptoss pull from a local OCI registry against oras and crane.
bench-oci: build
	./scripts/bench-oci.sh

# gptoss pull from cloud object-store emulators (versitygw S3; Azurite)
# against aws s3 cp and s5cmd (and azcopy), 4 GiB.
bench-cloud: build
	./scripts/bench-cloud.sh

# The CPU engine on a synthetic 2-layer model of gpt-oss-20b's shapes:
# prefill and decode tok/s, peak RSS against the layout size.
bench-cpu: build
	./scripts/bench-cpu.sh

# The CUDA kernels (runtime/cuda/kernels/*.cu) as one fatbin — SASS for
# sm_80/86/89/90 plus PTX — embedded in the binary by go:embed; run before
# `make build`. Without it the binary has no CUDA engine and says so.
CUDA_FATBIN := runtime/cuda/fatbin/kernels.fatbin
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
	-gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=[sm_90,compute_90]
cuda: $(CUDA_FATBIN)
$(CUDA_FATBIN): $(wildcard runtime/cuda/kernels/*.cu runtime/cuda/kernels/*.cuh)
	$(NVCC) -O3 -std=c++17 -fatbin $(CUDA_GENCODE) -o $@ runtime/cuda/kernels/gptoss.cu

# The same kernels with the step trace compiled in (GPTOSS_TRACE: each warp
# of the decode step's kernels records when it started, passed its PDL
# wait and ended), sm_90 only, for the trace test on the GPU machine
# (GPTOSS_CUDA_KERNELS=bin/kernels-trace.fatbin).
cuda-trace: $(BIN)/kernels-trace.fatbin
$(BIN)/kernels-trace.fatbin: $(wildcard runtime/cuda/kernels/*.cu runtime/cuda/kernels/*.cuh)
	@mkdir -p $(BIN)
	$(NVCC) -O3 -std=c++17 -fatbin -DGPTOSS_TRACE -gencode arch=compute_90,code=sm_90 -o $@ runtime/cuda/kernels/gptoss.cu

# A CPU emulator of the CUDA driver and of these kernels (runtime/cuda/
# kernels/emu): gptoss.cu compiled as host C++, every CUDA thread a fiber,
# behind the driver API the engine binds, as bin/libcuda-emu.so. test-emu
# runs the cuda-tagged tests and the CLI's CUDA test on it (GPTOSS_CUDA_LIB):
# every kernel, decode version, graph and the tuning, with no GPU. Slow
# (one core; a golden decode step takes ~0.1 s): about 3 minutes here;
# TestKernelMoE and TestKernelV16's 20b- and 120b-shaped cases (another
# 5 minutes) run with `make test-emu EMU_TESTS=.` CI runs it.
EMU_DIR := runtime/cuda/kernels/emu
# UBSan, ending the process with the file and line: every load and store
# checked for its type's alignment (emu.h's vector types carry CUDA's:
# uint4 and float4 16 bytes, float2 and uint2 8, __half2 4; a GPU faults on
# a misaligned vector access where x86 does not), signed int overflow (an
# index product past 2^31 at 120b's sizes), shifts past the width, and
# indexes past a fixed-size array
EMU_UBSAN ?= -fsanitize=alignment,signed-integer-overflow,shift,bounds -fno-sanitize-recover=all
EMU_ENV = GPTOSS_CUDA_LIB=$(abspath $(BIN))/libcuda-emu.so GPTOSS_CUDA_KERNELS=$(abspath $(BIN))/libcuda-emu.so GPTOSS_REQUIRE_GPU=1
EMU_TESTS ?= TestGolden|TestGoldenQ8|TestTune|TestLongSequence|TestKernel(Embed|RMSNorm|RopeKV|RouterTopK|Argmax|Attention|Sample|Fused|MoE3|MatVecBF16)$$
cuda-emu: $(BIN)/libcuda-emu.so
$(BIN)/libcuda-emu.so: runtime/cuda/kernels/gptoss.cu $(EMU_DIR)/emu.h $(EMU_DIR)/emu.cpp
	@mkdir -p $(BIN)/emu
	$(CXX) -x c++ -E -P -std=gnu++17 -DGPTOSS_EMU -include $(EMU_DIR)/emu.h runtime/cuda/kernels/gptoss.cu | \
		grep -oE 'extern "C" +void +[A-Za-z0-9_]+' | awk '{print "EMU_KERNEL(" $$NF ")"}' > $(BIN)/emu/kernels.inc
	$(CXX) -O2 -g -std=gnu++17 -fPIC -shared -fno-strict-aliasing -fno-weak -Wall -Wno-unknown-pragmas -DGPTOSS_EMU \
		$(EMU_UBSAN) -include $(EMU_DIR)/emu.h -I$(BIN)/emu -o $@ $(EMU_DIR)/emu.cpp
# GPTOSS_EMU_PDL=1 (all but the kernel-only pass, whose launches are not
# PDL): what the kernel before a PDL launch wrote reads as NaN until the
# launch's pdl_wait, as it may on a GPU (emu.cpp, "programmatic dependent
# launch"), so a read of an activation before the wait shows.
# the races: the same kernels with the blocks, warps and lanes run in
# reverse order with cp.async copied eagerly, then in random order with
# the warps interleaved at every warp operation on 7 "SMs" (a missing
# barrier or wait, or a plain += two warps race on, gives other results in
# one of them)
EMU_RACE_TESTS ?= TestGolden$$/^(hf|hf-fused-tc|hf-v17|hf-v16|hf-v12|hf-v7|hf-v6)$$|TestGoldenQ8$$/^v1[67]$$|TestKernel(Fused|MoE3|RMSNorm|Sample)$$|TestKernelV16$$/_H=(128|160|224)_
# the emulator's own test: what it must compute, and the faults, races and
# stale memory it must show (its kernels: emu/selftest.cu)
$(BIN)/emu-selftest: $(EMU_DIR)/selftest.cu $(EMU_DIR)/selftest_main.inc $(EMU_DIR)/emu.h $(EMU_DIR)/emu.cpp
	@mkdir -p $(BIN)/emu-selftest.d
	$(CXX) -x c++ -E -P -std=gnu++17 -DGPTOSS_EMU -include $(EMU_DIR)/emu.h $(EMU_DIR)/selftest.cu | \
		grep -oE 'extern "C" +void +[A-Za-z0-9_]+' | awk '{print "EMU_KERNEL(" $$NF ")"}' > $(BIN)/emu-selftest.d/kernels.inc
	$(CXX) -O1 -g -std=gnu++17 -fno-strict-aliasing -fno-weak -Wall -Wno-unknown-pragmas -DGPTOSS_EMU $(EMU_UBSAN) \
		-DEMU_KERNELS='"selftest.cu"' -DEMU_MAIN='"selftest_main.inc"' -include $(EMU_DIR)/emu.h \
		-I$(BIN)/emu-selftest.d -o $@ $(EMU_DIR)/emu.cpp
test-emu: cuda-emu $(BIN)/emu-selftest
	$(BIN)/emu-selftest
	cd runtime/cuda && $(EMU_ENV) GPTOSS_EMU_PDL=1 $(GO) test -tags cuda -count=1 -timeout 20m -run '$(EMU_TESTS)' .
	cd runtime/cuda && $(EMU_ENV) $(GO) test -tags cuda -count=1 -timeout 20m -run 'TestKernelV16$$/_H=(128|160|224)_' .
	cd runtime/cuda && $(EMU_ENV) GPTOSS_EMU_PDL=1 GPTOSS_EMU_ORDER=reverse GPTOSS_EMU_CPASYNC=eager $(GO) test -tags cuda -count=1 -timeout 20m -run '$(EMU_RACE_TESTS)' .
	cd runtime/cuda && $(EMU_ENV) GPTOSS_EMU_PDL=1 GPTOSS_EMU_ORDER=random GPTOSS_EMU_SEED=1 GPTOSS_EMU_INTERLEAVE=1 GPTOSS_EMU_SMS=7 \
		$(GO) test -tags cuda -count=1 -timeout 20m -run '$(EMU_RACE_TESTS)' .
	$(EMU_ENV) GPTOSS_EMU_PDL=1 $(GO) test -count=1 -run 'TestCUDAEngineThroughCLI' ./cmd/gptoss

# What scripts/gpu-check.sh runs on a GPU machine with no Go toolchain:
# bin/gptoss and the cuda-tagged test binary, both with the kernels embedded.
gpu-bundle: cuda cuda-trace
	$(GO) build $(GOFLAGS) -o $(BIN)/gptoss ./cmd/gptoss
	$(GO) test $(GOFLAGS) -c -tags cuda -o $(BIN)/cuda.test ./runtime/cuda

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) .bench
