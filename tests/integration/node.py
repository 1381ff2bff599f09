"""Shared by the integration tests: starting a node and checking results.

start_node() runs the bulwark binary with the given `--set` settings plus a
debug log in tmp, and returns once the log names every listener's port
(listeners on port 0 get ephemeral ones), or exits the test.
"""
import os
import re
import socket
import ssl
import subprocess
import time

TIMEOUT = 10


def start_node(binary, tmp, settings):
    """Starts the node with `--set` for each of settings (state_dir defaults
    to tmp/state); returns (proc, ports, log)."""
    log = os.path.join(tmp, "node.log")
    args = [binary]
    extra = ["log_level=debug", "log_file=" + log]
    if not any(s.startswith("state_dir=") for s in settings):
        extra.append("state_dir=" + os.path.join(tmp, "state"))
    for s in settings + extra:
        args += ["--set", s]
    want = sum(1 for s in settings if s.startswith("listen="))
    if os.path.exists(log):
        os.unlink(log)  # a restart in the same tmp: wait for the new ports
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ports = []
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and len(ports) < want:
        if os.path.exists(log):
            with open(log) as f:
                ports = [int(p) for p in
                         re.findall(r"listening: \w+ \S+ \(port (\d+)\)", f.read())]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if len(ports) < want:
        print(proc.stdout.read().decode(errors="replace") if proc.poll() is not None else "")
        raise SystemExit("node did not start")
    return proc, ports, log


def wait_for(cond, seconds=TIMEOUT, step=0.02):
    """Polls cond until it is true, for at most seconds; its last answer."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def varint(n):
    """MQTT's Variable Byte Integer."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def lp(b):
    """A length-prefixed MQTT string or binary field."""
    return len(b).to_bytes(2, "big") + b


def connack(port, user, pw, version=5, cid=None, tls=None):
    """A raw clean CONNECT (5.0, else 3.1.1) with user and pw (over TLS with
    tls, a dict of ca_certs and optionally certfile and keyfile): the
    CONNACK's code, or None when the node closed (or refused the connection
    or the TLS handshake) without one."""
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if pw is not None else 0)
    body = lp(b"MQTT") + bytes([5 if version == 5 else 4, flags]) + (30).to_bytes(2, "big")
    if version == 5:
        body += b"\x00"
    body += lp((cid or f"probe-{time.monotonic_ns()}").encode())
    if user is not None:
        body += lp(user.encode())
    if pw is not None:
        body += lp(pw.encode())
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    except OSError:
        return None
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=tls["ca_certs"])
            if "certfile" in tls:
                ctx.load_cert_chain(tls["certfile"], tls["keyfile"])
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"\x10" + varint(len(body)) + body)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(64)
            if not chunk:
                return None
            ack += chunk
        if ack[0] != 0x20:
            return None
        if ack[3] == 0:
            s.sendall(b"\xe0\x00")
        return ack[3]
    except OSError:
        return None
    finally:
        s.close()
