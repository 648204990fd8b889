# wasmta: the Makefile is the single entry point (build, run, test, check, fuzz, bench).
GO       ?= go
BIN      := bin/wasmta
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
CONFIG   ?=
FUZZTIME ?= 30s

.PHONY: all build plugins examples run test check fuzz bench clean

WASM_GO := GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared

all: build

# The binary and the first-party plugins, ready to use.
build: plugins
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wasmta

plugins:
	@mkdir -p bin/plugins
	$(WASM_GO) -o bin/plugins/router.wasm ./plugins/router

# The seed's recipes (examples/*/plugin) as bin/examples/<recipe>.wasm.
examples:
	@mkdir -p bin/examples
	@for d in examples/*/plugin; do r=$$(basename $$(dirname $$d)); \
	  echo "$(WASM_GO) -o bin/examples/$$r.wasm ./$$d"; $(WASM_GO) -o bin/examples/$$r.wasm ./$$d || exit 1; done

# Runs the relay on the embedded default config (SMTP on 127.0.0.1:2525, spool under ./data),
# or on CONFIG=path/to/file.toml.
run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

# vet + gofmt + go mod tidy + clean tree (what CI asks of every commit).
check:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@cp go.mod /tmp/wasmta.go.mod.bak; cp go.sum /tmp/wasmta.go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum"; git diff -- go.mod go.sum; exit 1; fi
	@if [ -n "$$(git status --porcelain)" ]; then echo "tree not clean:"; git status --porcelain; exit 1; fi

# Fuzz every parser of untrusted input for FUZZTIME each; new crashers land in testdata/fuzz.
fuzz:
	$(GO) test -run=^$$ -fuzz=^FuzzParseTarget$$ -fuzztime=$(FUZZTIME) ./host/route/
	$(GO) test -run=^$$ -fuzz=^FuzzParseMailbox$$ -fuzztime=$(FUZZTIME) ./host/route/
	$(GO) test -run=^$$ -fuzz=^FuzzParseQueueName$$ -fuzztime=$(FUZZTIME) ./host/route/

bench:
	$(GO) test -run=^$$ -bench=. -benchmem ./host/...

clean:
	rm -rf bin
