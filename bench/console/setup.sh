#!/bin/sh
# bench/console/setup.sh: what the console bench needs besides kvmdesk's own build:
# websockify (Debian's, 0.10) with numpy, which websockify uses to unmask frames.
# Idempotent; installs only what is missing (needs root for that).
set -eu

missing=""
command -v websockify >/dev/null 2>&1 || missing="$missing websockify"
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || missing="$missing python3-numpy"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "bench/console: missing Debian packages:$missing (run as root or install them)" >&2
  exit 1
fi
echo "bench/console: installing$missing"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
