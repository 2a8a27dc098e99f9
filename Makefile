# latchkey: every entry point a person or CI uses.
#   make test   installs what it needs, then lint + unit + interop + VM boot tests
#   make demo   builds, binds a disk to a local tangd, boots it under QEMU
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
AGENT := target/$(MUSL)/release/latchkey-agent
# The same agent with https:// Tang URLs (rustls): a second binary, because TLS
# would take the plain one past its 1.5 MiB budget.
AGENT_TLS := target/$(MUSL)/release/latchkey-agent-tls
# The operator's tool is static too: no loader, no shared objects, so it starts in
# well under a millisecond (ring's C parts need musl-gcc, from scripts/setup).
CLI := target/$(MUSL)/release/latchkey
# Its companion for LUKS header changes links Debian's libcryptsetup (glibc, dynamic);
# `latchkey luks bind|unbind|regen|edit` execs it. `make build` makes it.
COMPANION := target/release/latchkey-luks

.PHONY: setup build agent agent-tls cli test lint unit packaging readme upstream vm-test vm-test-distro deb deb-test demo bench fuzz fuzz-smoke install clean

setup:
	@scripts/setup

build: setup
	$(CARGO) build --release --workspace --exclude latchkey-agent
	$(MAKE) --no-print-directory agent agent-tls cli

agent: setup
	$(CARGO) build --release -p latchkey-agent --target $(MUSL)
	@ls -l $(AGENT)

# ring's C parts need musl-gcc, as for the cli.
agent-tls: setup
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release -p latchkey-agent \
	  --target $(MUSL) --features tls --bin latchkey-agent-tls
	@ls -l $(AGENT_TLS)

cli: setup
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release -p latchkey --target $(MUSL) \
	  --no-default-features --features tls --bin latchkey
	@ls -l $(CLI)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p latchkey-agent --features tls --all-targets -- -D warnings
	@# The agent and the static cli never link libcryptsetup (only latchkey-luks does).
	tree=$$($(CARGO) tree -p latchkey-agent -e normal,build) && ! grep -i cryptsetup <<<"$$tree"
	tree=$$($(CARGO) tree -p latchkey --no-default-features --features tls -e normal,build) && ! grep -i cryptsetup <<<"$$tree"
	@# Every fuzz target has its row in fuzz/README.md's table.
	for f in fuzz/fuzz_targets/*.rs; do t=$$(basename "$$f" .rs); \
	  grep -q "^| \`$$t\` |" fuzz/README.md || { echo "fuzz/README.md: no row for fuzz target $$t" >&2; exit 1; }; done

unit: setup
	$(CARGO) test --workspace --release
	@# The agent's own TLS build (latchkey-agent-tls) and its https:// tests.
	$(CARGO) test --release -p latchkey-agent --features tls --test decrypt_tls

# The NixOS module and the Guix channel, checked without Nix or Guix installed
# (nix-instantiate evaluates the module with nixpkgs' lib; guile reads the channel).
packaging: setup
	nixos-module/tests/eval/run
	guix/tests/run

readme: build
	scripts/readme-run

# tang's and clevis's own test suites against our tangd, cli and agent
# (read from ../shared/vendor/upstream, or LATCHKEY_UPSTREAM).
upstream: build
	tests/upstream/run

vm-test: build
	crates/sys/tests/vm.sh
	agent/tests/vm-net.sh
	vm-tests/demo
	vm-tests/run-all

# Debian's initramfs-tools and dracut (with and without systemd) building the
# initrd with latchkey installed, booted under QEMU.
vm-test-distro: build
	vm-tests/distro/run

# The Debian packages latchkey and tangd (dpkg-buildpackage, debian/), into
# target/deb; deb-test runs lintian on them and installs them with dpkg into
# the initramfs-tools chroot of vm-test-distro.
deb: build
	scripts/deb

deb-test: deb
	vm-tests/distro/package

test: lint unit packaging readme upstream vm-test vm-test-distro deb-test

demo: build
	vm-tests/demo

bench: build
	bench/run-all

# Every fuzz target a few seconds (that it builds and runs), and for real: FUZZ_SECONDS
# each (default 300) on its kept corpus, with executions and coverage per target.
fuzz-smoke: setup
	fuzz/smoke

fuzz: setup
	fuzz/run

PREFIX ?= /usr
# Debian 12's debhelper and systemd look for units under /lib/systemd.
SYSTEMDDIR ?= $(PREFIX)/lib/systemd
install:
	install -D -m 0755 $(AGENT) $(DESTDIR)$(PREFIX)/lib/latchkey/latchkey-agent
	install -D -m 0755 $(AGENT_TLS) $(DESTDIR)$(PREFIX)/lib/latchkey/latchkey-agent-tls
	install -D -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/latchkey
	install -D -m 0755 $(COMPANION) $(DESTDIR)$(PREFIX)/lib/latchkey/latchkey-luks
	install -D -m 0755 target/release/tangd $(DESTDIR)$(PREFIX)/bin/tangd
	install -D -m 0644 tangd/tangd.service $(DESTDIR)$(SYSTEMDDIR)/system/tangd.service
	install -D -m 0644 tangd/tangd.socket $(DESTDIR)$(SYSTEMDDIR)/system/tangd.socket
	@# Late boot: the _netdev volumes of /etc/crypttab, once the network is online.
	install -D -m 0644 systemd/latchkey-netdev.service $(DESTDIR)$(SYSTEMDDIR)/system/latchkey-netdev.service
	install -d $(DESTDIR)$(SYSTEMDDIR)/system-generators
	ln -sfn $(PREFIX)/lib/latchkey/latchkey-agent $(DESTDIR)$(SYSTEMDDIR)/system-generators/latchkey-netdev-generator
	install -D -m 0755 initrd-hooks/initramfs-tools/hooks/latchkey $(DESTDIR)$(PREFIX)/share/initramfs-tools/hooks/latchkey
	install -D -m 0755 initrd-hooks/initramfs-tools/scripts/init-premount/latchkey $(DESTDIR)$(PREFIX)/share/initramfs-tools/scripts/init-premount/latchkey
	install -d $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90latchkey
	install -m 0755 initrd-hooks/dracut/90latchkey/*.sh $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90latchkey/
	install -m 0644 initrd-hooks/dracut/90latchkey/latchkey-agent.service $(DESTDIR)$(PREFIX)/lib/dracut/modules.d/90latchkey/
	install -D -m 0644 initrd-hooks/mkinitcpio/install/latchkey $(DESTDIR)$(PREFIX)/lib/initcpio/install/latchkey
	install -D -m 0644 initrd-hooks/mkinitcpio/hooks/latchkey $(DESTDIR)$(PREFIX)/lib/initcpio/hooks/latchkey

clean:
	$(CARGO) clean
	rm -rf vm-tests/cache vm-tests/out bench/out
