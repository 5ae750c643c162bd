#!/usr/bin/env bash
# npm-deps.sh: install noVNC (served by kvmdeskd) and playwright-core (browser tests) from
# package-lock.json into node_modules/, with `npm ci`: exactly the locked versions.
#
# Runs only when node_modules is missing or older than package-lock.json, so calling it
# before every build is cheap. Needs node and npm (scripts/install-deps.sh installs Debian's
# when they are missing). No install scripts are run (--ignore-scripts): neither package
# needs one, and playwright-core never downloads a browser (the tests use Debian's chromium).
set -euo pipefail

cd "$(dirname "$0")/.."
stamp=node_modules/.package-lock.json     # written by npm at the end of an install

if [[ -f $stamp && ! package-lock.json -nt $stamp ]]; then
  echo "npm-deps: node_modules is up to date with package-lock.json"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm-deps: npm not found (run scripts/install-deps.sh)" >&2; exit 1; }
echo "npm-deps: npm ci (node_modules missing or older than package-lock.json)"
npm ci --ignore-scripts --no-audit --no-fund
touch "$stamp"
