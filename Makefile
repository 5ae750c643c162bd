# Makefile: short names for the usual steps. The build itself is Meson + Ninja; this file
# only sequences set-up scripts, meson and its test runner.
#
#   make / make build     configure BUILD_DIR (once) and build it with ninja
#   make deps             install the Debian packages (scripts/install-deps.sh, needs root)
#                         and noVNC + playwright-core from package-lock.json (scripts/npm-deps.sh)
#   make libvirt          start and check the local libvirtd (scripts/libvirt-up.sh)
#   make demo             deps + build + libvirt + scripts/demo.sh
#   make check            deps + build + libvirt + unit tests (parallel), then integration,
#                         e2e and browser tests (one at a time)
#   make install PREFIX=/usr/local [DESTDIR=...]   build in INSTALL_BUILD_DIR and install
#   make clean            remove BUILD_DIR and INSTALL_BUILD_DIR
#   make bench-console    the console gateway benchmark (bench/README.md; a few minutes, root)
#   make bench-display    QEMU's VNC server vs kvmdesk-display (bench/README.md; ~10 minutes, root)
#
# KD_SKIP_SETUP=1 skips the deps and libvirt steps of build/demo/check (for machines that are
# already set up, or where the caller is not root).

BUILD_DIR ?= build
INSTALL_BUILD_DIR ?= $(BUILD_DIR)-install
PREFIX ?= /usr/local
BUILDTYPE ?= debugoptimized
MESON ?= meson
NINJA ?= ninja
KD_SKIP_SETUP ?= 0
# Test logs: meson test writes $(BUILD_DIR)/meson-logs/<logbase>.json (one JSON object per
# test); .ci/run reads both files.
UNIT_LOGBASE := testlog-unit
SERIAL_LOGBASE := testlog-serial

# Steps run in the order they are listed, also under make -j (ninja parallelises the build).
.NOTPARALLEL:

.PHONY: all build configure deps libvirt setup-deps setup-libvirt demo check clear-test-logs install clean bench-console bench-display

all: build

build: configure
	$(NINJA) -C $(BUILD_DIR)

# $(call meson_configure,DIR,ARGS): configure DIR once; later meson.build changes are picked
# up by ninja's own regeneration. A directory left by a failed or interrupted setup (meson
# data but no build.ninja) is set up again from scratch.
define meson_configure
	@if [ ! -f $(1)/build.ninja ]; then \
	  wipe=; if [ -f $(1)/meson-private/coredata.dat ]; then wipe=--wipe; fi; \
	  echo "$(MESON) setup $$wipe $(1) $(2)"; \
	  $(MESON) setup $$wipe $(1) $(2); \
	fi
endef

configure:
	$(call meson_configure,$(BUILD_DIR),--buildtype=$(BUILDTYPE))

deps:
	scripts/install-deps.sh
	scripts/npm-deps.sh

libvirt:
	scripts/libvirt-up.sh

# The same steps, skipped when KD_SKIP_SETUP=1 (used by the composite targets).
setup-deps:
ifneq ($(KD_SKIP_SETUP),1)
	scripts/install-deps.sh
	scripts/npm-deps.sh
else
	@echo "KD_SKIP_SETUP=1: skipping scripts/install-deps.sh and scripts/npm-deps.sh"
endif

setup-libvirt:
ifneq ($(KD_SKIP_SETUP),1)
	scripts/libvirt-up.sh
else
	@echo "KD_SKIP_SETUP=1: skipping scripts/libvirt-up.sh"
endif

demo: setup-deps build setup-libvirt
	@test -f scripts/demo.sh || { echo "make demo: scripts/demo.sh is missing" >&2; exit 1; }
	BUILD_DIR=$(BUILD_DIR) bash scripts/demo.sh

# Unit tests run in parallel; integration, e2e and browser tests share one libvirtd and run
# one at a time. Both runs always happen, so one report shows every failure; the target fails if
# either run failed.
check: clear-test-logs setup-deps build setup-libvirt
	@status=0; \
	echo "== unit tests (parallel)"; \
	$(MESON) test -C $(BUILD_DIR) --suite unit --print-errorlogs --logbase $(UNIT_LOGBASE) || status=1; \
	echo "== integration, e2e and browser tests (serial)"; \
	$(MESON) test -C $(BUILD_DIR) --no-suite unit --print-errorlogs --num-processes 1 --logbase $(SERIAL_LOGBASE) || status=1; \
	exit $$status

# Old test logs would be counted by .ci/run if this run fails before testing.
clear-test-logs:
	@rm -f $(BUILD_DIR)/meson-logs/testlog*.json $(BUILD_DIR)/meson-logs/testlog*.txt

install:
	$(call meson_configure,$(INSTALL_BUILD_DIR),--buildtype=$(BUILDTYPE) --prefix=$(PREFIX))
	$(MESON) configure $(INSTALL_BUILD_DIR) -Dprefix=$(PREFIX)
	$(NINJA) -C $(INSTALL_BUILD_DIR)
	$(MESON) install -C $(INSTALL_BUILD_DIR) --no-rebuild $(if $(DESTDIR),--destdir "$(DESTDIR)")

clean:
	rm -rf $(BUILD_DIR) $(INSTALL_BUILD_DIR)

# Not a test: kvmdesk's console gateway vs websockify vs direct TCP (bench/README.md).
bench-console: build setup-libvirt
	KD_BUILD_DIR=$(abspath $(BUILD_DIR)) bench/console/run

# Not a test: QEMU's own VNC server vs kvmdesk-display on QEMU's D-Bus display (bench/README.md).
bench-display: build setup-libvirt
	KD_BUILD_DIR=$(abspath $(BUILD_DIR)) bench/display/run
