#!/usr/bin/env bash
# install-deps.sh: install the Debian packages kvmdesk needs to build, test and run.
#
# Idempotent: asks dpkg which packages are already installed and installs only the
# missing ones (apt-get update runs only when something is missing). Runs as root;
# when started as another user it re-executes itself through sudo if sudo exists.
#
# To add a dependency, add it to the right group in PACKAGE_GROUPS below (or add a
# group with a comment saying why it is needed). Nothing else needs to change.
#
# Environment: KD_DEPS_DRY_RUN=1 prints what would be installed and exits.
set -euo pipefail

# One group per line: "why it is needed|package package ...".
PACKAGE_GROUPS=(
  "C toolchain and build system (meson + ninja, as GLib/libvirt/QEMU use)|build-essential pkg-config meson ninja-build"
  "assembler for the boot-sector test desktop image (data/images/test-desktop)|nasm"
  "GLib/GIO event loop, config, tests; TLS for GIO sockets|libglib2.0-dev glib-networking"
  "libvirt API and its GLib event-loop integration (src/hv)|libvirt-dev libvirt-glib-1.0-dev"
  "domain XML (libxml2), JSON (json-glib), database (SQLite)|libxml2-dev libjson-glib-dev libsqlite3-dev"
  "passwords and tokens (argon2id, random, constant-time compare)|libsodium-dev"
  "HTTP server (REST API, console gateway) and HTTP client (CLI, thin client)|libmicrohttpd-dev libcurl4-gnutls-dev"
  "console gateway: WebSocket framing (wslay) and the VNC authentication DES (nettle)|libwslay-dev nettle-dev"
  "a real local libvirtd + QEMU for the end-to-end tests and the demo|libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils"
  "QEMU UI modules (D-Bus display for kvmdesk-display) and UEFI firmware for templates|qemu-system-gui ovmf"
  "test harness (Python unittest) and HTTP checks in scripts|python3 curl"
  "browser tests: the real browser playwright-core drives (tests/browser)|chromium"
  "HTTPS: GnuTLS (kvmdeskd terminates TLS itself) and openssl for self-signed certificates (demo, tests)|libgnutls28-dev openssl"
)

# Node.js and npm fetch noVNC and playwright-core (scripts/npm-deps.sh). A machine may have
# them from elsewhere (NodeSource, nvm): Debian's are installed only when the commands are
# missing.
if ! command -v node >/dev/null 2>&1; then
  PACKAGE_GROUPS+=("noVNC and playwright-core from npm (package-lock.json)|nodejs")
fi
if ! command -v npm >/dev/null 2>&1; then
  PACKAGE_GROUPS+=("noVNC and playwright-core from npm (package-lock.json)|npm")
fi

die() { echo "install-deps: $*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    echo "install-deps: not root; re-running through sudo"
    exec sudo -E -- "$0" "$@"
  fi
  die "must run as root (apt-get install), and sudo is not available"
fi

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian and derivatives only"

packages=()
for group in "${PACKAGE_GROUPS[@]}"; do
  read -r -a pkgs <<<"${group#*|}"
  packages+=("${pkgs[@]}")
done

# A package counts as present only when dpkg says "install ok installed".
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing ${#missing[@]} of ${#packages[@]} packages: ${missing[*]}"
if [[ ${KD_DEPS_DRY_RUN:-0} == 1 ]]; then
  echo "install-deps: dry run, nothing installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q || die "'apt-get update' failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null \
  || die "'apt-get install' failed for: ${missing[*]}"
echo "install-deps: installed: ${missing[*]}"
