"""Shared by the Redis integration tests (test_redis_retained.py,
test_redis_sessions.py, test_redis_sentinel.py): a redis-server of the
test's own and a node on it.

Redis(d, port, extra) runs redis-server on 127.0.0.1:port with its data in
d (append-only file fsynced on every write, so a SIGKILL loses nothing)
and the extra arguments (e.g. --replicaof); it can be SIGKILLed and
started again on the same port and data. Sentinel(d, port, name,
master_port) runs redis-server --sentinel on a configuration file of its
own in d, monitoring that master.
Node(binary, tmp, name, url, extra) starts a node in tmp/name with an
anonymous MQTT listener, an HTTP listener (/readyz, /metrics), no $SYS, the
given redis URL and the extra `--set` settings. Every wait is bounded.
"""
import http.client
import os
import re
import socket
import subprocess
import threading
import time

import node  # tests/integration/node.py
import paho.mqtt.client as mqtt
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

    def __init__(self, d, port, extra=()):
        self.d, self.port, self.proc, self.extra = d, port, None, list(extra)
        os.makedirs(d, exist_ok=True)

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1 -::1", "--dir", self.d,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--daemonize", "no"] + self.extra,
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


class Sentinel(Redis):
    """redis-server --sentinel on 127.0.0.1:port, watching the master name on
    127.0.0.1:master_port (quorum 1, down after 1 s, failover timeout 3 s).
    Sentinel rewrites its configuration file: it is one of its own, in d."""

    def __init__(self, d, port, name, master_port):
        super().__init__(d, port)
        self.name, self.master_port = name, master_port

    def start(self):
        conf = os.path.join(self.d, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.d}\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} 1\n"
                    f"sentinel down-after-milliseconds {self.name} 1000\n"
                    f"sentinel failover-timeout {self.name} 3000\n")
        self.proc = subprocess.Popen(
            ["redis-server", conf, "--sentinel"],
            stdout=open(os.path.join(self.d, "sentinel.log"), "ab"), stderr=subprocess.STDOUT)
        if not wait_for(lambda: self.cli("PING") == "PONG", 5):
            raise SystemExit("redis-server --sentinel did not start")

    def master(self):
        """The master's port as this sentinel names it (None: it names none)."""
        out = self.raw("SENTINEL", "get-master-addr-by-name", self.name).decode().split()
        return int(out[1]) if len(out) == 2 and out[1].isdigit() else None

    def replica_known(self):
        """Whether it knows a replica it could promote (flags "slave" alone)."""
        lines = self.raw("SENTINEL", "replicas", self.name).decode().split("\n")
        return any(a == "flags" and b == "slave" for a, b in zip(lines, lines[1:]))


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


def retained(port, filt="#", settle=0.4):
    """What a new subscriber to filt gets as retained messages: {topic: payload}."""
    got, subscribed = {}, []
    c = mqtt.Client(client_id=f"look-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, m.payload.decode()) \
        if m.retain else None
    c.on_subscribe = lambda *a: subscribed.append(1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe(filt, qos=1)
    wait_for(lambda: subscribed, TIMEOUT, 0.005)
    time.sleep(settle)  # retained messages follow the SUBACK at once
    c.disconnect()  # before loop_stop(), which would wait out the loop's 1 s select
    c.loop_stop()
    return got


def paho_close(c, gone):
    """A clean DISCONNECT (5.0 reason 0: the session stays), then the end of c's
    loop, waited for at most TIMEOUT (paho's loop_stop() would wait forever);
    gone is the Event its on_disconnect sets."""
    try:
        c.disconnect()
    except Exception:
        pass
    t = c._thread
    c._thread_terminate = True
    if t is not None and t is not threading.current_thread():
        t.join(TIMEOUT)
        c._thread = None
    gone.wait(2)
