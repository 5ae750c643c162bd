#!/usr/bin/env bash
# libvirt-up.sh: make the local libvirtd (qemu:///system) usable on a machine without systemd.
#
# Idempotent: creates the directories libvirt expects, gives /dev/kvm to group kvm (when the
# device exists), starts virtlogd and libvirtd when they are not answering, then proves that a
# domain really starts by creating a tiny transient probe domain (kvm first, then qemu/TCG)
# and destroying it again. Prints each step, and as last line either
#   acceleration: kvm
#   acceleration: tcg (reason: ...)
# Exits non-zero when no domain can be started at all. It never changes libvirt's config files.
#
# Environment: KD_LIBVIRT_URI (default qemu:///system), KD_LIBVIRT_WAIT (seconds to wait for
# libvirtd's socket, default 15).
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
URI=${KD_LIBVIRT_URI:-qemu:///system}
WAIT=${KD_LIBVIRT_WAIT:-15}
PROBE="kd-probe-$$"
TMPDIR_PROBE=""

say() { echo "libvirt-up: $*"; }
die() { echo "libvirt-up: error: $*" >&2; exit 1; }

cleanup() {
  # The probe domain is transient: destroying it also removes it.
  if virsh -q -c "$URI" domstate "$PROBE" >/dev/null 2>&1; then
    virsh -q -c "$URI" destroy "$PROBE" >/dev/null 2>&1 || true
  fi
  if [[ -n $TMPDIR_PROBE ]]; then rm -rf "$TMPDIR_PROBE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    say "not root; re-running through sudo"
    exec sudo -E -- "$0" "$@"
  fi
  die "must run as root (it starts libvirtd and changes /dev/kvm), and sudo is not available"
fi

for tool in virsh libvirtd virtlogd; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "'$tool' not found: run scripts/install-deps.sh (packages libvirt-daemon-system, libvirt-clients)"
done

virsh_answers() { timeout 10 virsh -q -c "$URI" version >/dev/null 2>&1; }

# 1. Directories that the packages' systemd units or tmpfiles would otherwise create.
for d in /var/log/libvirt /var/log/libvirt/qemu /run/libvirt /var/lib/libvirt /var/cache/libvirt; do
  if [[ ! -d $d ]]; then
    mkdir -p "$d"
    say "created $d"
  fi
done

# 2. /dev/kvm: QEMU runs as libvirt-qemu (group kvm); udev normally sets root:kvm 0660.
if ! getent group kvm >/dev/null; then
  groupadd --system kvm
  say "created group kvm"
fi
if [[ -e /dev/kvm ]]; then
  if [[ $(stat -c '%G %a' /dev/kvm) == "kvm 660" ]]; then
    say "/dev/kvm: already group kvm mode 0660"
  else
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
    say "/dev/kvm: set group kvm mode 0660"
  fi
else
  say "/dev/kvm: absent"
fi

# 3. virtlogd (libvirtd hands QEMU's stdout/stderr to it).
virtlogd_pid=$(cat /run/virtlogd.pid 2>/dev/null || true)
if [[ -n $virtlogd_pid ]] && kill -0 "$virtlogd_pid" 2>/dev/null && [[ -S /run/libvirt/virtlogd-sock ]]; then
  say "virtlogd already running (pid $virtlogd_pid)"
else
  virtlogd -d || die "'virtlogd -d' failed (see /var/log/libvirt/virtlogd.log)"
  say "started virtlogd"
fi

# 4. libvirtd: "running" means it answers on the URI, not merely that a process exists (a
# test's private libvirtd in another mount namespace must not count).
if virsh_answers; then
  say "libvirtd already running and answering on $URI"
else
  if pgrep -x libvirtd >/dev/null && [[ -S /run/libvirt/libvirt-sock ]]; then
    say "a libvirtd process exists but $URI does not answer yet; waiting"
  else
    libvirtd -d || die "'libvirtd -d' failed (see /var/log/libvirt/libvirtd.log)"
    say "started libvirtd"
  fi
  for ((i = 0; i < WAIT * 2; i++)); do
    virsh_answers && break
    sleep 0.5
  done
  virsh_answers || die "libvirtd does not answer on '$URI' after ${WAIT} s (see /var/log/libvirt/libvirtd.log)"
  say "libvirtd answers on $URI"
fi

# 5. Probe: can a domain start? A 32 MiB machine with no disk and no NIC: SeaBIOS finds
# nothing to boot and waits, which is enough to prove QEMU runs.
TMPDIR_PROBE=$(mktemp -d /tmp/kd-probe.XXXXXX)
probe() { # $1 = domain type (kvm|qemu); prints virsh's error on failure
  local xml="$TMPDIR_PROBE/$1.xml"
  cat >"$xml" <<EOF
<domain type='$1'>
  <name>$PROBE</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='network'/><bootmenu enable='no'/></os>
  <devices>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  local out
  if ! out=$(virsh -q -c "$URI" create "$xml" 2>&1); then
    echo "$out" | sed -n 's/^error: //p' | grep -v '^Failed to create domain from' | head -n 3 | tr '\n' ' '
    return 1
  fi
  virsh -q -c "$URI" destroy "$PROBE" >/dev/null 2>&1 || true
  return 0
}

if kvm_err=$(probe kvm); then
  say "probe domain '$PROBE' started with type kvm and destroyed"
  echo "acceleration: kvm"
  exit 0
fi
if [[ ! -e /dev/kvm ]]; then
  reason="/dev/kvm absent"
else
  reason="type kvm failed: ${kvm_err:-unknown error}"
fi
if qemu_err=$(probe qemu); then
  say "probe domain '$PROBE' started with type qemu and destroyed"
  echo "acceleration: tcg (reason: ${reason% })"
  exit 0
fi
die "no domain can be started on '$URI': type kvm: ${kvm_err:-?}; type qemu: ${qemu_err:-?}"
