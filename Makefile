# agent-exec — build, demo, test, lint. `make help` lists the targets.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
BIN := target/release/agent-exec

.PHONY: help build release demo test unit lint fmt bench soak clean

help:
	@echo "make build    debug build"
	@echo "make release  optimised build ($(BIN))"
	@echo "make demo     build, then run a real job and show what agent-exec answers"
	@echo "make test     lint, then the whole test suite"
	@echo "make lint     cargo fmt --check and clippy -D warnings"
	@echo "make fmt      format the code"
	@echo "make bench    benchmark against agent-exec 0.1.18 (bench/RESULTS.md)"
	@echo "make soak     long fault and load runs"

build:
	$(CARGO) build

release:
	$(CARGO) build --release

demo: release
	@bash scripts/demo.sh $(BIN)

test: lint
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	bash bench/run.sh

# Long variants of the fault and load suites (a few minutes): many more rounds of
# supervisor kills at random moments and 1,000 short jobs.
soak:
	AGENT_EXEC_SOAK=1 $(CARGO) test --release --test process_faults --test concurrency --test supervision -- --test-threads=1

clean:
	$(CARGO) clean
