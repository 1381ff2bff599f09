"""Shared by the Redis integration tests (test_redis_retained.py,
test_redis_sessions.py): a redis-server of the test's own and a node on it.

Redis(d, port) runs redis-server on 127.0.0.1:port with its data in d
(append-only file fsynced on every write, so a SIGKILL loses nothing); it
can be SIGKILLed and started again on the same port and data.
Node(binary, tmp, name, url, extra) starts a node in tmp/name with an
anonymous MQTT listener, an HTTP listener (/readyz, /metrics), no $SYS, the
given redis URL and the extra `--set` settings. Every wait is bounded.
"""
import http.client
import os
import re
import socket
import subprocess

import node  # tests/integration/node.py
from node import wait_for

TIMEOUT = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A redis-server on 127.0.0.1:port with its data in d (AOF, fsync always)."""

    def __init__(self, d, port):
        self.d, self.port, self.proc = d, port, None
        os.makedirs(d, exist_ok=True)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1 -::1", "--dir", self.d,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--daemonize", "no"],
            stdout=open(os.path.join(self.d, "redis.log"), "ab"), stderr=subprocess.STDOUT)
        if not wait_for(lambda: self.cli("PING") == "PONG", 5):
            raise SystemExit("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.proc = None

    def cli(self, *args):
        try:
            r = subprocess.run(["redis-cli", "-p", str(self.port), "--no-raw"] + list(args),
                               capture_output=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None
        out = r.stdout.decode(errors="replace").strip()
        return out.strip('"') if r.returncode == 0 else None

    def raw(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--raw"] + list(args),
                           capture_output=True, timeout=TIMEOUT)
        return r.stdout

    def integer(self, *args):
        """An integer reply (EXISTS, ZCARD, PTTL, ...) as an int; None for
        anything else (an error, Redis down)."""
        m = re.fullmatch(r"\(integer\) (-?\d+)", self.cli(*args) or "")
        return int(m.group(1)) if m else None


class Node:
    def __init__(self, binary, tmp, name, url, extra=()):
        self.name = name
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        self.proc, ports, self.log = node.start_node(binary, d, [
            "listen=mqtt 127.0.0.1:0 allow_anonymous=true", "listen=http 127.0.0.1:0",
            "sys_interval=0", "redis=" + url] + list(extra))
        self.mqtt, self.http = ports

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=TIMEOUT)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        except OSError as e:
            return None, str(e)
        finally:
            c.close()

    def ready(self):
        return self.get("/readyz")[0] == 200

    def metric(self, name):
        status, body = self.get("/metrics")
        m = re.search(rf"^{name} (\d+)$", body or "", re.M)
        return int(m.group(1)) if m else None

    def node_id(self):
        """The random 128-bit id the node logs at its start (32 hex digits)."""
        with open(self.log) as f:
            m = re.search(r"node id ([0-9a-f]{32})", f.read())
        return m.group(1) if m else None

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: the node dies at once, nothing written at exit."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)

    def stop(self):
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
