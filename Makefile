# agent-exec — build, demo, test, lint, install. `make help` lists the targets.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN ?= $(TARGET_DIR)/release/agent-exec
STATIC_BIN := $(TARGET_DIR)/static/agent-exec
GNU := x86_64-unknown-linux-gnu

BINDIR := $(PREFIX)/bin
MANDIR := $(PREFIX)/share/man
BASHDIR := $(PREFIX)/share/bash-completion/completions
ZSHDIR := $(PREFIX)/share/zsh/site-functions
FISHDIR := $(PREFIX)/share/fish/vendor_completions.d
MAN1 := $(wildcard man/*.1)
MAN5 := $(wildcard man/*.5)

.PHONY: help build release static demo test test-static test-mcp-client test-openapi unit lint docs fmt bench soak clean install uninstall

help:
	@echo "make build        debug build"
	@echo "make release      optimised build ($(BIN))"
	@echo "make static       fully static build ($(STATIC_BIN)), glibc with crt-static"
	@echo "make demo         build, then run a real job and show what agent-exec answers"
	@echo "make test         lint, the whole test suite, then the static-binary checks"
	@echo "make test-static  build the static binary, check it is static, runs a job in an empty root and serves as examples/Dockerfile's PID 1"
	@echo "make test-mcp-client  drive 'agent-exec mcp' with the official MCP Python SDK (.venv from .ci/deps)"
	@echo "make test-openapi validate the served OpenAPI document and run Schemathesis against a sandboxed serve (.venv)"
	@echo "make lint         cargo fmt --check, clippy -D warnings, groff lint of the man pages"
	@echo "make docs         regenerate man/ from the flag table (UPDATE_DOCS=1 cargo test)"
	@echo "make fmt          format the code"
	@echo "make bench        benchmark against agent-exec 0.1.18 (bench/RESULTS.md)"
	@echo "make install      install binary, man pages, completions (PREFIX=$(PREFIX) DESTDIR=)"
	@echo "make uninstall    remove what make install installed"
	@echo "make soak         long fault and load runs"

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The static build links glibc statically (crt-static), not musl: musl's allocator made
# the allocation-heavy paths slow (the musl build served GET /status/{id} at 0.50 of
# 0.1.18's rate and ran `list` at 0.75, against 0.93 and 0.48 for glibc; see README,
# Dependencies). In this build getpwuid_r cannot load NSS modules, which only matters
# when HOME is unset, and the getrandom crate must call getrandom(2) directly: its
# default finds the function with dlsym, which fails in a static binary, and falls back
# to /dev/urandom, which an empty chroot does not have.
#
# It is linked non-PIE (relocation-model=static): a static-pie binary carries a
# relocation table for every pointer in it (.rela.dyn, 92 KB), which took the binary
# past the 3 MB goal of the container build (3.04 MB; non-PIE 2.94 MB). The cost is that
# the binary's own addresses are not randomized (libraries are linked in, the stack,
# heap and mmaps still are): the container build trades that for size.
static:
	@mkdir -p $(dir $(STATIC_BIN))
	RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static --cfg getrandom_backend="linux_getrandom"' \
		$(CARGO) build --release --target $(GNU)
	cp --remove-destination $(TARGET_DIR)/$(GNU)/release/agent-exec $(STATIC_BIN)
	@echo "make static: $(STATIC_BIN), $$(stat -c %s $(STATIC_BIN)) bytes"

demo: release
	@bash scripts/demo.sh $(BIN)

test: lint
	$(CARGO) test --all-targets
	$(MAKE) test-mcp-client
	$(MAKE) test-openapi
	$(MAKE) test-static

# The MCP server against a real client: the `mcp` package in the project virtualenv
# that .ci/deps creates. Under CI=true a missing virtualenv fails the run.
VENV_PY := .venv/bin/python
test-mcp-client: build
	@if $(VENV_PY) -c 'import mcp, jsonschema' 2>/dev/null; then \
		$(VENV_PY) tests/mcp/test_client.py $(TARGET_DIR)/debug/agent-exec; \
	elif [ "$$CI" = true ]; then \
		echo "test-mcp-client: $(VENV_PY) with mcp and jsonschema is missing (run .ci/deps)" >&2; exit 1; \
	else \
		echo "test-mcp-client: WARNING: not run, $(VENV_PY) with mcp and jsonschema is missing (run .ci/deps)" >&2; \
	fi

# The OpenAPI document against real clients: openapi-spec-validator validates it and
# Schemathesis (fixed seed, bounded) checks every answer against it, with `serve` in a
# namespace sandbox (tests/openapi/run_schemathesis.sh). Under CI=true a missing
# virtualenv fails the run.
test-openapi: build
	@if $(VENV_PY) -c 'import schemathesis, openapi_spec_validator' 2>/dev/null; then \
		bash tests/openapi/run_schemathesis.sh $(TARGET_DIR)/debug/agent-exec .venv; \
	elif [ "$$CI" = true ]; then \
		echo "test-openapi: $(VENV_PY) with schemathesis and openapi-spec-validator is missing (run .ci/deps)" >&2; exit 1; \
	else \
		echo "test-openapi: WARNING: not run, $(VENV_PY) with schemathesis and openapi-spec-validator is missing (run .ci/deps)" >&2; \
	fi

test-static: static
	bash scripts/test-static.sh $(STATIC_BIN)
	bash scripts/test-container.sh $(STATIC_BIN)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@if command -v groff >/dev/null 2>&1; then \
		for page in $(MAN1) $(MAN5); do groff -man -ww -z $$page || exit 1; done; \
	elif [ -n "$$CI" ]; then echo "lint: groff is required under CI (.ci/deps installs it)"; exit 1; \
	else echo "lint: groff not installed, man pages not linted"; fi

docs:
	UPDATE_DOCS=1 $(CARGO) test --bin agent-exec man

fmt:
	$(CARGO) fmt --all

bench:
	bash bench/run.sh

# Long variants of the fault and load suites (a few minutes): many more rounds of
# supervisor kills at random moments, 1,000 short jobs (CLI and HTTP), 3,000 random or
# mutated HTTP requests, and 200,000 cases of the HTTP routing and body fuzzers.
soak:
	AGENT_EXEC_SOAK=1 $(CARGO) test --release --test process_faults --test concurrency --test supervision \
		--test http_attacks --test serve_limits --test serve_bounds -- --test-threads=1
	AGENT_EXEC_SOAK=1 $(CARGO) test --release --bin agent-exec serve::

clean:
	$(CARGO) clean

# NO_BUILD=1 installs an existing $(BIN) without running cargo (used by the tests).
install: $(if $(NO_BUILD),,release)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/agent-exec
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	$(BIN) completions bash > $(DESTDIR)$(BASHDIR)/agent-exec
	$(BIN) completions zsh > $(DESTDIR)$(ZSHDIR)/_agent-exec
	$(BIN) completions fish > $(DESTDIR)$(FISHDIR)/agent-exec.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/agent-exec
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5)))
	rm -f $(DESTDIR)$(BASHDIR)/agent-exec $(DESTDIR)$(ZSHDIR)/_agent-exec $(DESTDIR)$(FISHDIR)/agent-exec.fish
