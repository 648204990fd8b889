# wasmta: the Makefile is the single entry point (build, run, test, check, fuzz, bench).
GO       ?= go
BIN      := bin/wasmta
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
CONFIG   ?=
FUZZTIME ?= 30s

.PHONY: test-deps install man completions bench-peers bench-scale race all build router plugins wasm toolchains check-wasm check-plugins check-scaffolds examples run test check fuzz bench clean

WASM_GO := GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared

all: build

# The binary and the first-party router plugin, ready to use (Go only: no other toolchain).
build: router
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wasmta

router:
	@mkdir -p bin/plugins
	$(WASM_GO) -o bin/plugins/router.wasm ./plugins/router

# Every plugin in every language: the Go ones under bin/, and the committed non-Go outputs
# (rebuilt with Debian's clang-14/lld-14, rustc, wabt and npm's assemblyscript, installed when missing).
plugins: router examples wasm

# Non-Go plugins whose small .wasm outputs are committed next to their sources (test fixtures,
# the conformance plugins of every language): rebuilt here with Debian's clang-14/lld-14, rustc
# (+ libstd-rust-dev-wasm32), wabt and npm's assemblyscript, installed when missing.
WAT_SOURCES := $(wildcard host/plugin/testdata/*.wat host/httpapi/testdata/*.wat host/smtpserver/testdata/*.wat)

wasm: toolchains
	@for f in $(WAT_SOURCES); do wat2wasm $$f -o $${f%.wat}.wasm || exit 1; done
	@for b in sdk/conformance/*/build.sh; do echo "== $$b"; bash $$b || exit 1; done

toolchains:
	@missing=""; \
	command -v wat2wasm >/dev/null || missing="$$missing wabt"; \
	command -v clang-14 >/dev/null || missing="$$missing clang-14"; \
	command -v wasm-ld-14 >/dev/null || [ -x /usr/lib/llvm-14/bin/wasm-ld ] || missing="$$missing lld-14"; \
	[ -x /usr/bin/rustc ] || missing="$$missing rustc"; \
	[ -d /usr/lib/rustlib/wasm32-unknown-unknown ] || ls /usr/lib/rustlib 2>/dev/null | grep -q wasm32 || missing="$$missing libstd-rust-dev-wasm32"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

# Rebuild every committed .wasm and fail if any differs from what is committed (stale output).
check-plugins: check-wasm
check-wasm: wasm
	@if ! git diff --quiet -- '*.wasm'; then echo "stale committed .wasm (run make wasm and commit):"; git diff --stat -- '*.wasm'; exit 1; fi
	@echo "committed .wasm files are up to date"

# `wasmta plugin new` in every language: each project must build and pass its own test.
check-scaffolds: build toolchains
	@tmp=$$(mktemp -d); for l in go rust c assemblyscript wat; do \
	  ./$(BIN) plugin new --lang $$l --dir $$tmp/$$l demo-$$l >/dev/null && \
	  (cd $$tmp/$$l && WASMTA=$(CURDIR)/$(BIN) ./test.sh >$$tmp/$$l.log 2>&1) && echo "scaffold $$l: PASS" || \
	  { echo "scaffold $$l: FAIL"; cat $$tmp/$$l.log; rm -rf $$tmp; exit 1; }; done; rm -rf $$tmp

# The seed's recipes (examples/*/plugin) as bin/examples/<recipe>.wasm.
examples:
	@mkdir -p bin/examples
	@for d in examples/*/plugin; do r=$$(basename $$(dirname $$d)); \
	  echo "$(WASM_GO) -o bin/examples/$$r.wasm ./$$d"; $(WASM_GO) -o bin/examples/$$r.wasm ./$$d || exit 1; done

# Runs the relay on the embedded default config (SMTP on 127.0.0.1:2525, spool under ./data),
# or on CONFIG=path/to/file.toml.
run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

# Servers the tests start on loopback: Debian's redis-server (the cluster tests; nothing is
# started as a service, each test runs its own on a free port without persistence).
test-deps:
	@command -v redis-server >/dev/null || { echo "installing: redis-server"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

# Every test under the race detector (about 3 minutes on 2 cores).
race: test-deps
	$(GO) test -race -count=1 -timeout 25m ./...

# vet + gofmt + go mod tidy + clean tree + no tracked file over 1 MiB (what CI asks of every commit).
check:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@cp go.mod /tmp/wasmta.go.mod.bak; cp go.sum /tmp/wasmta.go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum"; git diff -- go.mod go.sum; exit 1; fi
	@if [ -n "$$(git status --porcelain)" ]; then echo "tree not clean:"; git status --porcelain; exit 1; fi
	@big=$$(git ls-files -z | xargs -0 stat -c '%s %n' | awk '$$1 > 1048576 {print $$2}'); \
	  if [ -n "$$big" ]; then echo "tracked files over 1 MiB (binaries and build outputs stay out of git):"; echo "$$big"; exit 1; fi

# Fuzz every parser of untrusted input: every Fuzz* target of every package (found in the
# committed test files, so a new target is never forgotten) for FUZZTIME each; new crashers land in
# that package's testdata/fuzz and fail `make test` until fixed. CI runs it with a few seconds each.
# go test -fuzz sometimes fails with only "context deadline exceeded" when -fuzztime ends while a
# worker is busy (seen once in CI's 3 s runs); a real failure always writes its input, so such a run
# is repeated, at most three times in all.
fuzz:
	@set -e; for pkg in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u | sed 's|^|./|'); do \
	  for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	    for try in 1 2 3; do \
	      if $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg >/tmp/wasmta-fuzz.log 2>&1; then break; fi; \
	      if grep -q 'Failing input written' /tmp/wasmta-fuzz.log || ! grep -q 'context deadline exceeded' /tmp/wasmta-fuzz.log || [ $$try = 3 ]; then cat /tmp/wasmta-fuzz.log; exit 1; fi; \
	      echo "   (go's fuzzer ended on its own deadline without a failing input; again)"; \
	    done; \
	  done; done

bench:
	$(GO) test -run=^$$ -bench=. -benchmem ./host/...

# Install layout (GNU names; PREFIX and DESTDIR as usual):
#   make install                       # under /usr/local, config in /etc/wasmta
#   make install PREFIX=/usr DESTDIR=/tmp/pkgroot
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
DOCDIR     ?= $(DATADIR)/doc/wasmta
SYSCONFDIR ?= /etc
UNITDIR    ?= $(LIBDIR)/systemd/system
DESTDIR    ?=

# The binary, the router plugin, man pages, bash/zsh/fish completions, the systemd unit (with
# this install's paths), the service's example config (never over an existing one), the full
# reference config, and the licence.
install: build man completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/wasmta/plugins $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/wasmta
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/wasmta
	install -m 0644 bin/plugins/router.wasm $(DESTDIR)$(LIBDIR)/wasmta/plugins/router.wasm
	install -m 0644 bin/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 bin/completions/wasmta.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/wasmta
	install -m 0644 bin/completions/_wasmta $(DESTDIR)$(DATADIR)/zsh/site-functions/_wasmta
	install -m 0644 bin/completions/wasmta.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wasmta.fish
	sed -e 's|/usr/local/bin/wasmta|$(BINDIR)/wasmta|g' -e 's|/etc/wasmta/|$(SYSCONFDIR)/wasmta/|g' \
	  docs/dist/wasmta.service >$(DESTDIR)$(UNITDIR)/wasmta.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/wasmta.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/wasmta/wasmta.toml ]; then echo "kept existing $(DESTDIR)$(SYSCONFDIR)/wasmta/wasmta.toml"; \
	else sed -e 's|/usr/local/lib/wasmta/|$(LIBDIR)/wasmta/|g' docs/dist/wasmta.toml >$(DESTDIR)$(SYSCONFDIR)/wasmta/wasmta.toml; \
	  chmod 0644 $(DESTDIR)$(SYSCONFDIR)/wasmta/wasmta.toml; fi
	./$(BIN) config default >$(DESTDIR)$(DOCDIR)/wasmta.reference.toml
	install -m 0644 docs/LICENSE $(DESTDIR)$(DOCDIR)/LICENSE

# Man pages from the command tree (cobra/doc), so they always match --help.
man: build
	@rm -rf bin/man
	./$(BIN) man bin/man

# Shell completions from cobra.
completions: build
	@mkdir -p bin/completions
	./$(BIN) completion bash >bin/completions/wasmta.bash
	./$(BIN) completion zsh >bin/completions/_wasmta
	./$(BIN) completion fish >bin/completions/wasmta.fish

# The whole relay under load beside Postfix, on loopback (root: installs Debian's postfix when
# missing): N=5000 SESSIONS=20 RUNS=3 SYSTEMS="ceiling postfix wasmta"; see docs/performance.md.
bench-peers: build
	docs/bench/peers.sh

# M=200000 make bench-scale: memory and crash recovery with M queued messages (default 1000000).
bench-scale: build
	docs/bench/scale.sh

clean:
	rm -rf bin
