"""sockproxy: a unix-socket proxy a test owns, to make a libvirt host go away.

A host reached as qemu+unix:///system?socket=PROXY (or test+unix:///default?
socket=PROXY) goes through it to libvirtd's socket; stopping the proxy cuts
every connection as a dead network or a restarted libvirtd would, starting
it again lets the host come back.
"""

import os
import socket
import threading

LIBVIRT_SOCK = "/run/libvirt/libvirt-sock"


class SocketProxy:
    """Forwards connections on a unix socket to libvirtd's socket."""

    def __init__(self, path, target=LIBVIRT_SOCK):
        self.path = path
        self.target = target
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        """Closes the listener and every forwarded connection."""
        # Unlink first so no new client finds the socket; shutdown() wakes
        # the thread blocked in accept() (close() alone would leave that
        # listening socket alive in the kernel, still accepting).
        if os.path.exists(self.path):
            os.unlink(self.path)
        if self.listener:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
