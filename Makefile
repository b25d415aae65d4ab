# gptoss — see README.md. Every target works offline (loopback only).
GO      ?= go
BIN     := bin
GOFLAGS := -trimpath
export CGO_ENABLED := 0

.PHONY: all build demo test test-race bench bench-pull vet fmt clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/gptoss ./cmd/gptoss
	$(GO) build $(GOFLAGS) -o $(BIN)/gptoss-testhub ./cmd/gptoss-testhub

# The main job end to end on a built-in default: serve a tiny gpt-oss model
# from a local Hugging Face test hub, pull it, verify it, list it.
demo: build
	./scripts/demo.sh

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

# Go micro-benchmarks (no peers).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./fetch/ ./verify/

# gptoss against aria2c, curl and @huggingface/hub on the same 4 GiB fixture.
bench-pull: build
	./scripts/bench-pull.sh

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) .bench
