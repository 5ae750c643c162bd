#!/usr/bin/env bash
# demo.sh: run kvmdeskd with a demo set-up, for `make demo`.
#
# Starts kvmdeskd on 127.0.0.1:8080 (KD_DEMO_LISTEN) with its state in ./demo-state/, then,
# through the kvmdesk CLI: registers the local host (qemu:///system), imports the test
# desktop image, defines templates and desktops (one with the D-Bus display served by
# kvmdesk-display), and starts them. Prints what was made
# and how to reach it, then keeps kvmdeskd in the foreground until Ctrl-C.
#
# Running it again reuses the state: what exists already is kept (the password too).
# Expects `make` to have built BUILD_DIR and scripts/libvirt-up.sh to have run.
#
# KD_DEMO_TLS=1 serves HTTPS: a self-signed certificate for 127.0.0.1 and localhost (and the
# KD_DEMO_LISTEN address) is made once with openssl in demo-state/tls/ and reused; the CLI
# trusts it through KVMDESK_CA_CERT. Without it the demo serves plain HTTP on loopback.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
LISTEN=${KD_DEMO_LISTEN:-127.0.0.1:8080}
STATE=$PWD/demo-state
KVMDESKD=$BUILD_DIR/src/daemon/kvmdeskd
KVMDESK=$PWD/$BUILD_DIR/src/cli/kvmdesk
IMAGE=$BUILD_DIR/data/images/test-desktop.qcow2
WEB_DIR=$PWD/$BUILD_DIR/web            # web/ + noVNC, assembled by the build
TLS=${KD_DEMO_TLS:-0}
SCHEME=http
[ "$TLS" = 1 ] && SCHEME=https
URL=$SCHEME://$LISTEN
CERT=$STATE/tls/cert.pem
KEY=$STATE/tls/key.pem

for f in "$KVMDESKD" "$KVMDESK" "$IMAGE" "$WEB_DIR/index.html"; do
  [ -e "$f" ] || { echo "demo: $f is missing: run 'make' first" >&2; exit 1; }
done

mkdir -p "$STATE"
chmod 0700 "$STATE"
# The pool directory must be reachable by QEMU (user libvirt-qemu), so it lives outside the
# (private) state directory.
cat > "$STATE/kvmdeskd.conf" <<EOF
# Written by scripts/demo.sh; see data/kvmdeskd.conf.example for every setting.
[libvirt]
storage_pool = kvmdesk-demo
storage_pool_path = /var/lib/kvmdesk/demo-pool
domain_prefix = demo
shutdown_timeout = 20
EOF

for who in admin demo; do
  if [ ! -s "$STATE/$who-password" ]; then
    ( umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' > "$STATE/$who-password" )
  fi
done
PASSWORD=$(cat "$STATE/admin-password")
DEMO_PASSWORD=$(cat "$STATE/demo-password")

TLS_ARGS=()
CURL_TLS=()
if [ "$TLS" = 1 ]; then
  if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
    command -v openssl >/dev/null || { echo "demo: openssl is missing (scripts/install-deps.sh)" >&2; exit 1; }
    mkdir -p "$STATE/tls"
    san="IP:127.0.0.1,DNS:localhost"
    listen_ip=${LISTEN%:*}
    listen_ip=${listen_ip#[}; listen_ip=${listen_ip%]}
    case "$listen_ip" in 127.0.0.1|0.0.0.0|::) ;; *) san="$san,IP:$listen_ip" ;; esac
    ( umask 077
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=kvmdesk demo" -addext "subjectAltName=$san" \
        -keyout "$KEY" -out "$CERT" 2>/dev/null )
    chmod 0644 "$CERT"
    echo "demo: made a self-signed certificate for $san in $STATE/tls/"
  fi
  TLS_ARGS=(--tls-cert "$CERT" --tls-key "$KEY")
  CURL_TLS=(--cacert "$CERT")
  export KVMDESK_CA_CERT=$CERT
fi

if curl -ksS -m 2 "http://$LISTEN/healthz" >/dev/null 2>&1 || curl -ksS -m 2 "https://$LISTEN/healthz" >/dev/null 2>&1; then
  echo "demo: something already answers on $URL; stop it or set KD_DEMO_LISTEN=127.0.0.1:PORT" >&2
  exit 1
fi

echo "demo: starting kvmdeskd on $URL (state in $STATE, log in $STATE/kvmdeskd.log)"
KVMDESK_ADMIN_PASSWORD=$PASSWORD "$KVMDESKD" --state-dir "$STATE" --listen "$LISTEN" \
  --config "$STATE/kvmdeskd.conf" --web-dir "$WEB_DIR" "${TLS_ARGS[@]}" > >(tee -a "$STATE/kvmdeskd.log") 2>&1 &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl -fsS -m 1 "${CURL_TLS[@]}" "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 $DAEMON 2>/dev/null || { echo "demo: kvmdeskd exited; see $STATE/kvmdeskd.log" >&2; exit 1; }
  sleep 0.1
done

export KVMDESK_URL=$URL XDG_CONFIG_HOME=$STATE/cli
kd() { "$KVMDESK" "$@"; }
# Runs a creating command; "already exists" is fine on a second run.
ensure() {
  local out
  if out=$("$KVMDESK" "$@" 2>&1); then
    echo "  $out"
  elif grep -q "already" <<<"$out"; then
    echo "  (kept) $out"
  else
    echo "demo: kvmdesk $*: $out" >&2
    exit 1
  fi
}

KVMDESK_PASSWORD=$PASSWORD kd login admin >/dev/null
echo "demo: setting up"
ensure host add local qemu:///system
if kd image show test-desktop >/dev/null 2>&1; then
  echo "  (kept) image 'test-desktop'"
else
  kd image import test-desktop "$IMAGE" --host local   # shows its progress
fi
ensure template add small --vcpus 1 --memory 128 --disk 1 --network none
ensure desktop create desktop1 --image test-desktop --template small --host local
# The D-Bus display: QEMU runs no VNC server, kvmdesk-display serves the screen.
ensure template add outside --vcpus 1 --memory 128 --disk 1 --network none --display dbus
ensure desktop create desktop2 --image test-desktop --template outside --host local
ensure group add staff
KVMDESK_NEW_PASSWORD=$DEMO_PASSWORD ensure user add demo --role user --group staff
ensure pool add office --image test-desktop --template small --mode floating --size 3 --warm 2 \
  --group staff --disconnect-timeout 300
state=$(kd --json desktop show desktop1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ "$state" != running ]; then
  ensure desktop start desktop1
fi
state=$(kd --json desktop show desktop2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ "$state" != running ]; then
  ensure desktop start desktop2
fi

accel=$(kd --json host show local | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["accel"] + (" (" + h["accel_reason"] + ")" if h.get("accel_reason") else ""))')
domain=$(kd --json desktop show desktop1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["domain"])')

cat <<EOF

kvmdesk demo is running.
  dashboard:   $URL/   (log in as admin for the operator view, as demo for the user view)
  API:         $URL/api/v1   (health: $URL/healthz)
  logins:      admin / $PASSWORD   (operator)
               demo / $DEMO_PASSWORD   (user, group 'staff')
  CLI:         export KVMDESK_URL=$URL${KVMDESK_CA_CERT:+ KVMDESK_CA_CERT=$KVMDESK_CA_CERT}; $KVMDESK login admin
  host:        local (qemu:///system), acceleration: $accel
  made:        image 'test-desktop', template 'small', desktop 'desktop1' (domain '$domain'),
               floating pool 'office' (size 3, 2 warm desktops booting now) for group 'staff',
               desktop 'desktop2' (template 'outside', display dbus: served by kvmdesk-display,
               a process of its own; see its display_process in $KVMDESK desktop show desktop2)
  as a user:   XDG_CONFIG_HOME=/tmp/kd-demo-user $KVMDESK login demo
               XDG_CONFIG_HOME=/tmp/kd-demo-user $KVMDESK desktop get office --wait
  desktop:     in the dashboard (Connect), or $KVMDESK desktop vv desktop1 && remote-viewer desktop1.vv
               (one-time password), or virsh -c qemu:///system screenshot $domain
  try:         $KVMDESK desktop list;  $KVMDESK desktop reset desktop1

kvmdeskd runs in the foreground: Ctrl-C stops it (desktops keep running; it finds them again).
EOF
if [ "$TLS" = 1 ]; then
  cat <<EOF
HTTPS with a self-signed certificate ($CERT):
  CLI:         KVMDESK_CA_CERT=$CERT (or --ca-cert $CERT)
  curl:        curl --cacert $CERT $URL/healthz
  browser:     import $CERT as a trusted authority (Chromium: Settings > Privacy and security >
               Security > Manage certificates > Authorities), or accept the warning once.
EOF
else
  echo "Plain HTTP on loopback; KD_DEMO_TLS=1 make demo serves HTTPS with a self-signed certificate."
fi
wait $DAEMON
