# latchkey: every entry point a person or CI uses.
#   make test   installs what it needs, then lint + unit + interop + VM boot tests
#   make demo   builds, binds a disk to a local tangd, boots it under QEMU
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
AGENT := target/$(MUSL)/release/latchkey-agent

.PHONY: setup build agent test lint unit vm-test demo bench fuzz-smoke clean

setup:
	@scripts/setup

build: setup
	$(CARGO) build --release --workspace --exclude latchkey-agent
	$(MAKE) --no-print-directory agent

agent: setup
	$(CARGO) build --release -p latchkey-agent --target $(MUSL)
	@ls -l $(AGENT)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: setup
	$(CARGO) test --workspace --release

vm-test: build
	vm-tests/run-all

test: lint unit vm-test

demo: build
	vm-tests/demo

bench: build
	bench/run-all

fuzz-smoke:
	fuzz/smoke

clean:
	$(CARGO) clean
	rm -rf vm-tests/cache vm-tests/out bench/out
