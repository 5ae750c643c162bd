#!/usr/bin/env python3
"""hostlib: a second real libvirt host on this machine, for end-to-end tests.

SecondHost starts another libvirtd (with its own virtlogd) in a private mount
namespace, so that a test has two real KVM hosts: the normal daemon on
qemu:///system (host A, started by scripts/libvirt-up.sh) and this one (host B),
reached as qemu+unix:///system?socket=STATE/sock/libvirt-sock. Both share the
machine, its filesystem, its QEMU and its cgroup tree; what they must not share
is set up as follows (measured on Debian 12, libvirt 9.0.0, QEMU 7.2):

- Mount namespace (`unshare -m --propagation private`): STATE/{run,lib,log,
  cache,etc} are bind-mounted over /run/libvirt, /var/lib/libvirt,
  /var/log/libvirt, /var/cache/libvirt and /etc/libvirt inside it only. The
  whole of /etc/libvirt is private, not just /etc/libvirt/qemu: the storage
  driver keeps pool definitions in /etc/libvirt/storage (a pool defined on B
  would otherwise appear on A at its next restart, and B would autostart A's
  pools), secrets in /etc/libvirt/secrets, networks in /etc/libvirt/qemu/networks.
  STATE/etc starts as a copy of the real /etc/libvirt without any domain, pool,
  network or secret definition, then gets B's own libvirtd.conf, qemu.conf and
  virtlogd.conf. QEMU processes that B starts inherit the namespace; the
  namespace is gone when its last process is.
- Sockets: libvirtd.conf `unix_sock_dir = STATE/sock`, outside the private
  mounts, so clients in the normal namespace reach B. virtlogd's socket stays
  in B's private /run/libvirt, where B's libvirtd looks for it.
- Pid files: `virtlogd -d -p STATE/virtlogd.pid`, `libvirtd -d -p
  STATE/libvirtd.pid` (the defaults /run/virtlogd.pid and /run/libvirtd.pid are
  A's: /run itself is shared). stop() also ends every process whose
  /run/libvirt is STATE/run (found through /proc/PID/mountinfo): QEMU of a
  domain still running when B's libvirtd died, a daemon whose pid file is
  stale. Not by mount namespace: libvirt starts each QEMU in a namespace of its
  own (qemu.conf `namespaces`), measured: a QEMU left by a killed B was missed
  that way. STATE/mntns records B's namespace, for status only.
- host_uuid (libvirtd.conf): a fresh UUID at each start. This machine has no
  SMBIOS, so each daemon makes up a random one anyway, but the migration
  cookie's host UUID is the one thing libvirt compares to refuse "migrating to
  the same host", so it is set, not left to chance.
  Measured: with B given A's host UUID, `virsh migrate` fails with "internal
  error: Attempt to migrate guest to the same host fd8da136-...".
- Hostname: both daemons report the machine's hostname ("vm"), and migrations
  between them succeed: libvirt 9.0 does not compare hostnames in the migration
  cookie (only the host UUID), so no UTS namespace. The destination's hostname
  is only used to build the migration URI when none is given (here "vm"
  resolves to 127.0.0.1, so even that works); always pass the migration URI
  tcp://127.0.0.1 and the listen address 127.0.0.1, or the destination QEMU
  listens on every address.
- qemu.conf ports: VNC autoport 6100-6199 (A keeps 5900-65535 by default, and
  its domains start from 5900), websocket 6200-6299, migration (incoming
  migration and NBD for storage copy) 49300-49363 instead of the default
  49152-49215 that A uses.
- cgroups: B's qemu.conf has `cgroup_controllers = [ ]` (SecondHost(cgroups=True)
  keeps the default). Both daemons name a domain's cgroup
  machine/qemu-ID-NAME.libvirt-qemu with their own ID counters, and during a
  migration NAME runs on both. Forced collision, measured: with B's ID counter
  advanced to A's, the incoming QEMU joined A's QEMU in the same
  machine/qemu-12-NAME.libvirt-qemu (7 tasks), the migration completed and the
  guest went on working; A's clean-up after the move did not remove it (B's
  QEMU was inside), B's destroy did. So it does not break, but while both run
  each daemon's settings apply to both QEMUs, and a B killed by stop() (QEMU
  SIGKILLed, not through libvirt) would leave empty cgroup directories in the
  shared tree. Without cgroups B leaves nothing there. kvmdesk uses no cgroup
  based API (no CPU/blkio/memory parameters), so nothing it does needs them.
- Security driver: the copied qemu.conf keeps A's settings (here: DAC, QEMU as
  libvirt-qemu, no AppArmor/SELinux on this machine), so images must be readable
  by libvirt-qemu on both (pool directories mode 0711 or wider).
- Start: STATE/cache/qemu/capabilities is seeded with a copy of A's QEMU
  capabilities cache (libvirt re-probes when it no longer matches the binaries):
  start takes ~0.4 s instead of ~4.5 s.
- Logs: B's libvirtd and virtlogd log to STATE/log (its /var/log/libvirt),
  QEMU logs to STATE/log/qemu/NAME.log.
- No default network, no storage pool: a test makes its own (in a directory
  other than A's pool: both hosts see the same files outside the private mounts).

Live migration A -> B with incremental storage copy, measured (test_second_host_e2e.py;
virsh without --p2p is the client-driven virDomainMigrate3 path; --p2p works too):
  virsh -c qemu:///system migrate --live --persistent --undefinesource
      --copy-storage-inc --migrateuri tcp://127.0.0.1 --listen-address 127.0.0.1
      --xml DEST.xml --persistent-xml PERSIST.xml
      NAME 'qemu+unix:///system?socket=STATE/sock/libvirt-sock'
  (VIR_MIGRATE_LIVE | PERSIST_DEST | UNDEFINE_SOURCE | NON_SHARED_INC; params URI,
  LISTEN_ADDRESS, DEST_XML, PERSIST_XML.)
- DEST.xml = `virsh dumpxml --migratable` of the source with the disk's
  <source file> changed to B's overlay path (the migratable XML has no
  <backingStore>; any would be dropped). Without it B would mirror onto A's own
  overlay file, which both see.
- PERSIST.xml = `virsh dumpxml --migratable --inactive`, same change. Without
  it the guest RUNS on B's overlay but B's persistent definition keeps A's
  overlay path (DEST_XML is only the live definition): measured.
- The overlay must exist on B before (same format, backed by B's copy of the
  image): without it libvirt 9.0 refuses with "Operation not supported:
  pre-creation of storage targets for incremental storage migration is not
  supported". It was created with `virsh vol-create-as POOL_B NAME CAPACITY
  --format qcow2 --backing-vol B_IMAGE_PATH --backing-vol-format qcow2`.
- Only the overlay's allocated blocks travel (NBD from B's QEMU, port from B's
  migration range); a 64 MiB TCG guest with a 1 MiB disk moves in ~3 s.

API:  second_host_problem() -> None or the reason a second host cannot run here
      host = SecondHost(state_dir=DEFAULT_STATE_DIR, cgroups=False)
      host.start(timeout=30) -> host          (cleans a leftover first)
      host.uri                                 qemu+unix:///system?socket=...
      host.virsh(*args, check=True, timeout=60) -> stdout (or CompletedProcess)
      host.processes() -> [pid, ...]           every process in B's namespace
      host.status() -> dict                    running, pids, uri, answers
      host.stop() -> [problem, ...]            destroys B's running domains,
                                               kills daemons and leftovers,
                                               removes STATE; idempotent
      with SecondHost() as host: ...           / self.addCleanup(host.stop)
CLI:  python3 tests/e2e/hostlib.py start|stop|status [DIR]
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

DEFAULT_STATE_DIR = "/tmp/kd-e2e-hv2"
# Private directory (under STATE) -> where it is mounted in the namespace.
PRIVATE_MOUNTS = (("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"),
                  ("log", "/var/log/libvirt"), ("cache", "/var/cache/libvirt"),
                  ("etc", "/etc/libvirt"))
VNC_PORTS = (6100, 6199)
WEBSOCKET_PORTS = (6200, 6299)
MIGRATION_PORTS = (49300, 49363)


class SecondHostError(Exception):
    pass


def second_host_problem():
    """None when a second host can be started here, else why not (for a skip)."""
    if os.geteuid() != 0:
        return "a second libvirtd needs root (mount namespace, bind mounts)"
    for tool in ("unshare", "mount", "virtlogd", "libvirtd", "virsh"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            return "'%s' not found (packages util-linux, mount, libvirt-daemon-system)" % tool
    if not os.path.isdir("/etc/libvirt"):
        return "/etc/libvirt does not exist (package libvirt-daemon-system)"
    return None


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    stat = _read("/proc/%d/stat" % pid)
    return not (stat and stat.rsplit(")", 1)[-1].split()[0] == "Z")


class SecondHost:
    """A second libvirtd + virtlogd in a private mount namespace under @state_dir."""

    def __init__(self, state_dir=DEFAULT_STATE_DIR, cgroups=False):
        self.state_dir = os.path.abspath(state_dir)
        self.cgroups = cgroups
        self.sock_dir = os.path.join(self.state_dir, "sock")
        self.uri = "qemu+unix:///system?socket=%s/libvirt-sock" % self.sock_dir
        self.libvirtd_pidfile = os.path.join(self.state_dir, "libvirtd.pid")
        self.virtlogd_pidfile = os.path.join(self.state_dir, "virtlogd.pid")
        self.mntns_file = os.path.join(self.state_dir, "mntns")
        self.host_uuid = None
        self.start_seconds = None

    # -- context manager ---------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- paths ---------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    @property
    def log_dir(self):
        return self.path("log")

    def libvirtd_log(self):
        return _read(self.path("log", "libvirtd.log")) or ""

    # -- processes -------------------------------------------------------------------
    def _pid(self, pidfile):
        text = _read(pidfile)
        try:
            pid = int(text)
        except (TypeError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _ours(self, pid):
        """True when /run/libvirt of process @pid is our STATE/run: B's daemons, and
        QEMU processes, which libvirt starts in a mount namespace of their own
        derived from B's (qemu.conf `namespaces`), so the namespace inode alone
        does not find them."""
        tail = "/" + os.path.basename(self.state_dir) + "/run"
        try:
            with open("/proc/%d/mountinfo" % pid) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 4 and fields[4] == "/run/libvirt" and \
                            fields[3].endswith(tail):
                        return True
        except OSError:
            pass
        return False

    def processes(self):
        """Pids of every live process that sees B's private mounts."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid() and self._ours(int(entry)) \
                    and _alive(int(entry)):
                pids.append(int(entry))
        return sorted(pids)

    def _answers(self, timeout=10):
        try:
            r = subprocess.run(["virsh", "-q", "-c", self.uri, "version"],
                               capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0

    def virsh(self, *args, check=True, timeout=60):
        """Runs virsh on B; returns stdout, or the CompletedProcess when not @check."""
        r = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("virsh -c %s %s failed (%d): %s"
                                 % (self.uri, " ".join(args), r.returncode,
                                    (r.stderr or r.stdout).strip()))
        return r.stdout if check else r

    # -- configuration ---------------------------------------------------------------
    def _write_config(self):
        etc = self.path("etc")
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        # Nothing of A's: no domains, pools, networks, secrets (and no autostart).
        for sub in ("qemu", "storage", "secrets", "lxc", "libxl", "bhyve", "ch"):
            d = os.path.join(etc, sub)
            if os.path.isdir(d):
                shutil.rmtree(d)
        os.makedirs(os.path.join(etc, "qemu", "networks", "autostart"))
        os.makedirs(os.path.join(etc, "storage", "autostart"))
        os.makedirs(os.path.join(etc, "secrets"), mode=0o700)
        self.host_uuid = str(uuid.uuid4())
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write('# kvmdesk e2e second host (tests/e2e/hostlib.py)\n'
                    'unix_sock_dir = "%s"\n'
                    'host_uuid = "%s"\n'
                    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
                    % (self.sock_dir, self.host_uuid))
        with open(os.path.join(etc, "virtlogd.conf"), "w") as f:
            f.write('log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n')
        qemu_conf = os.path.join(etc, "qemu.conf")
        with open(qemu_conf, "a") as f:
            f.write('\n# kvmdesk e2e second host (tests/e2e/hostlib.py)\n'
                    'remote_display_port_min = %d\nremote_display_port_max = %d\n'
                    'remote_websocket_port_min = %d\nremote_websocket_port_max = %d\n'
                    'migration_port_min = %d\nmigration_port_max = %d\n'
                    % (VNC_PORTS + WEBSOCKET_PORTS + MIGRATION_PORTS))
            if not self.cgroups:
                f.write('cgroup_controllers = [ ]\n')
        # A's QEMU capabilities cache: libvirt checks that it still matches the QEMU
        # binary and itself before using it; it saves B ~3 s of probing QEMU at start.
        caps = "/var/cache/libvirt/qemu/capabilities"
        if os.path.isdir(caps):
            shutil.copytree(caps, self.path("cache", "qemu", "capabilities"))

    # -- start / stop --------------------------------------------------------------------
    def start(self, timeout=30):
        """Starts B (after cleaning a leftover in the same directory); returns self
        once `virsh -c URI version` answers. Raises SecondHostError (after
        cleaning up) when it does not."""
        t0 = time.monotonic()
        left = self.stop()
        if left:
            raise SecondHostError("cannot clean up the leftover second host in %s: %s"
                                  % (self.state_dir, "; ".join(left)))
        problem = second_host_problem()
        if problem:
            raise SecondHostError(problem)
        os.makedirs(self.state_dir, mode=0o755)
        os.chmod(self.state_dir, 0o755)
        os.makedirs(self.sock_dir)
        for sub, target in PRIVATE_MOUNTS:
            if sub != "etc":
                os.makedirs(self.path(sub))
            os.makedirs(target, exist_ok=True)   # mount points in the real tree
        os.makedirs(self.path("log", "qemu"))
        self._write_config()
        script = ["set -e"]
        for sub, target in PRIVATE_MOUNTS:
            script.append("mount --bind '%s' '%s'" % (self.path(sub), target))
        script.append("readlink /proc/self/ns/mnt > '%s'" % self.mntns_file)
        script.append("virtlogd -d -p '%s'" % self.virtlogd_pidfile)
        script.append("libvirtd -d -p '%s'" % self.libvirtd_pidfile)
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        try:
            r = subprocess.run(["unshare", "-m", "--propagation", "private", "--",
                                "sh", "-c", "\n".join(script)],
                               capture_output=True, text=True, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            self.stop()
            raise SecondHostError("starting the second host timed out")
        if r.returncode != 0:
            log = self.libvirtd_log()
            self.stop()
            raise SecondHostError("starting the second host failed (%d): %s%s"
                                  % (r.returncode, (r.stderr or r.stdout).strip(),
                                     "\nlibvirtd.log:\n" + log if log else ""))
        deadline = time.monotonic() + timeout
        while not self._answers():
            if time.monotonic() >= deadline or self._pid(self.libvirtd_pidfile) is None:
                log = self.libvirtd_log()
                self.stop()
                raise SecondHostError("the second libvirtd does not answer on %s%s"
                                      % (self.uri, "; libvirtd.log:\n" + log if log else ""))
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout=20):
        """Stops everything of B and removes its directory; returns the sentences
        of what could not be done ([] when all is gone). Safe to call again, on a
        host never started, and on the leftover of a crashed run."""
        problems = []
        if not os.path.isdir(self.state_dir) and not self.processes():
            return problems
        # 1. Running domains: destroy through libvirt (it restores file owners).
        if self._pid(self.libvirtd_pidfile) is not None and self._answers(timeout=5):
            r = self.virsh("list", "--name", check=False, timeout=30)
            for name in (r.stdout.split() if r.returncode == 0 else []):
                self.virsh("destroy", name, check=False, timeout=30)
        # 2. The daemons, by pid file; 3. whatever else is left in the namespace.
        for pidfile in (self.libvirtd_pidfile, self.virtlogd_pidfile):
            pid = self._pid(pidfile)
            if pid is not None:
                self._end([pid], timeout)
        self._end(self.processes(), timeout)
        left = self.processes()
        if left:
            problems.append("processes still in the namespace: %s" % left)
            return problems
        # 4. The mounts lived in the namespace only; make sure none leaked out.
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4].startswith(self.state_dir + "/"):
                    subprocess.run(["umount", "-l", fields[4]], capture_output=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if os.path.exists(self.state_dir):
            problems.append("could not remove %s" % self.state_dir)
        return problems

    def _end(self, pids, timeout):
        pids = [p for p in pids if _alive(p)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline:
                pids = [p for p in pids if _alive(p)]
                if not pids:
                    return
                time.sleep(0.1)

    def status(self):
        libvirtd = self._pid(self.libvirtd_pidfile)
        return {"state_dir": self.state_dir, "uri": self.uri,
                "exists": os.path.isdir(self.state_dir),
                "libvirtd": libvirtd, "virtlogd": self._pid(self.virtlogd_pidfile),
                "namespace": _read(self.mntns_file), "processes": self.processes(),
                "answers": libvirtd is not None and self._answers(timeout=5)}


def main(argv):
    if len(argv) not in (2, 3) or argv[1] not in ("start", "stop", "status"):
        print("usage: %s start|stop|status [DIR]  (default DIR %s)"
              % (argv[0], DEFAULT_STATE_DIR), file=sys.stderr)
        return 2
    host = SecondHost(argv[2] if len(argv) == 3 else DEFAULT_STATE_DIR)
    if argv[1] == "start":
        try:
            host.start()
        except SecondHostError as e:
            print("hostlib: %s" % e, file=sys.stderr)
            return 1
        print("second host up in %.1f s: %s" % (host.start_seconds, host.uri))
        return 0
    if argv[1] == "stop":
        left = host.stop()
        for p in left:
            print("hostlib: %s" % p, file=sys.stderr)
        return 1 if left else 0
    print(json.dumps(host.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
