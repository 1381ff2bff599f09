#!/usr/bin/python3
"""Integration test of a real node with real MQTT clients.

Starts build/bin/bulwark on ephemeral loopback ports (read back from its
log), then drives it with mosquitto_pub/mosquitto_sub (MQTT 3.1.1 and 5.0)
and paho-mqtt: QoS 0/1/2 delivery, retained messages, a will on an abrupt
close, anonymous refusal on a listener that does not allow it, the HTTP
health and metrics endpoints, and a clean stop on SIGTERM. Every wait is
bounded. Usage: test_node.py BULWARK_BINARY
"""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node  # noqa: E402  (tests/integration/node.py)
from node import wait_for, varint, lp  # noqa: E402

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

BIN = sys.argv[1]
TIMEOUT = 10
failures = []
passed = 0


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}")


def start_node(tmp):
    return node.start_node(BIN, tmp, ["listen=mqtt 127.0.0.1:0 allow_anonymous=true",
                                   "listen=mqtt 127.0.0.1:0", "listen=http 127.0.0.1:0"])


def sub_then_pub(port, version, qos, filt, topic, message, retain_first=False):
    """Starts mosquitto_sub on filt, waits until it is subscribed, publishes once to topic."""
    if retain_first:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                        "-q", str(qos), "-t", topic, "-m", message, "-r"],
                       check=True, timeout=TIMEOUT)
    # stdbuf: mosquitto_sub's output is block-buffered into a pipe otherwise.
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                            "-q", str(qos), "-t", filt, "-C", "1", "-W", str(TIMEOUT), "-d"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not retain_first:
        # Publish once mosquitto_sub says it got its SUBACK (debug output).
        out = b""
        deadline = time.time() + TIMEOUT
        while b"SUBACK" not in out and time.time() < deadline:
            out += sub.stdout.readline()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                        "-q", str(qos), "-t", topic, "-m", message],
                       check=True, timeout=TIMEOUT)
    rest, _ = sub.communicate(timeout=TIMEOUT + 5)
    return sub.returncode, rest.decode(errors="replace")


def paho_qos2(port):
    got = []
    sub = mqtt.Client(client_id="paho-sub", protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos))
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    result, mid = sub.subscribe("q2/#", qos=2)
    deadline = time.time() + TIMEOUT
    time.sleep(0.2)
    pub = mqtt.Client(client_id="paho-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(20):
        pub.publish("q2/x", f"m{i}", qos=2).wait_for_publish(TIMEOUT)
    while len(got) < 20 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    pub.loop_stop()
    sub.loop_stop()
    pub.disconnect()
    sub.disconnect()
    return got


def will_on_abrupt_close(port):
    got = []
    sub = mqtt.Client(client_id="will-watch", protocol=mqtt.MQTTv311)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe("wills/#", qos=1)
    time.sleep(0.2)
    # A raw 3.1.1 CONNECT with a will, then the socket is dropped.
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    cid, wt, wp = b"dying", b"wills/dying", b"bye"
    var = b"\x00\x04MQTT\x04\x06\x00\x3c"
    payload = (len(cid).to_bytes(2, "big") + cid + len(wt).to_bytes(2, "big") + wt +
               len(wp).to_bytes(2, "big") + wp)
    body = var + payload
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(4)
    s.close()
    deadline = time.time() + TIMEOUT
    while not got and time.time() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    sub.disconnect()
    return ack, got


def raw_connect(port, client_id, keep_alive, will_topic=None, will_delay=0,
                session_expiry=0, clean=True, version=5):
    """A raw CONNECT (with a will); returns the socket after CONNACK."""
    flags = (0x02 if clean else 0) | (0x04 if will_topic else 0)
    var = lp(b"MQTT") + bytes([version, flags]) + keep_alive.to_bytes(2, "big")
    if version == 5:
        props = b"\x11" + session_expiry.to_bytes(4, "big") if session_expiry else b""
        var += varint(len(props)) + props
    payload = lp(client_id)
    if will_topic:
        if version == 5:
            wprops = b"\x18" + will_delay.to_bytes(4, "big") if will_delay else b""
            payload += varint(len(wprops)) + wprops
        payload += lp(will_topic) + lp(b"bye")
    body = var + payload
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"\x10" + varint(len(body)) + body)
    ack = s.recv(64)
    if not ack.startswith(b"\x20") or ack[3] != 0:
        raise RuntimeError(f"CONNACK {ack!r}")
    return s


class Watcher:
    """A paho subscriber collecting (topic, payload, properties)."""

    def __init__(self, port, filt, client_id, version=mqtt.MQTTv5, qos=1):
        self.got = []
        self.c = mqtt.Client(client_id=client_id, protocol=version)
        self.c.on_message = lambda c, u, m: self.got.append(
            (m.topic, m.payload, getattr(m, "properties", None)))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        subscribed = []
        self.c.on_subscribe = lambda *a: subscribed.append(1)
        self.c.subscribe(filt, qos=qos)
        wait_for(lambda: subscribed)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def will_on_keepalive_timeout(port):
    w = Watcher(port, "ka/#", "ka-watch")
    s = raw_connect(port, b"ka-client", 1, b"ka/will", version=4)
    got = wait_for(lambda: w.got, 6)  # due at 1.5 s, published by the next tick
    s.close()
    w.close()
    return got and w.got[0][1] == b"bye"


def will_delay_cancelled_by_reconnect(port):
    w = Watcher(port, "wd/#", "wd-watch")
    s = raw_connect(port, b"wd-client", 60, b"wd/will", will_delay=2, session_expiry=60,
                    clean=False)
    s.close()  # abrupt: the will waits 2 s
    time.sleep(0.5)
    s = raw_connect(port, b"wd-client", 60, session_expiry=60, clean=False)
    time.sleep(3)
    cancelled = not w.got
    s.close()  # abrupt again, now without a will
    time.sleep(0.3)
    w.close()
    return cancelled


def message_expiry(port):
    """A persistent offline subscriber gets the unexpired message only."""
    sub = mqtt.Client(client_id="exp-sub", protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    sub.loop_start()
    done = []
    sub.on_subscribe = lambda *a: done.append(1)
    sub.subscribe("exp/#", qos=1)
    wait_for(lambda: done)
    sub.loop_stop()
    sub.disconnect()
    pub = mqtt.Client(client_id="exp-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for topic, expiry in (("exp/short", 1), ("exp/long", 60)):
        pp = Properties(PacketTypes.PUBLISH)
        pp.MessageExpiryInterval = expiry
        pub.publish(topic, b"m", qos=1, properties=pp).wait_for_publish(TIMEOUT)
    pub.loop_stop()
    pub.disconnect()
    time.sleep(2.2)
    got = []
    sub = mqtt.Client(client_id="exp-sub", protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.append((m.topic, m.properties))
    sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    sub.loop_start()
    wait_for(lambda: got, 3)
    time.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    topics = [t for t, _ in got]
    remaining = getattr(got[0][1], "MessageExpiryInterval", None) if got else None
    return topics == ["exp/long"] and remaining is not None and remaining <= 58, (topics, remaining)


def shared_balancing(port):
    members = [Watcher(port, "$share/g/sh/#", f"sh-{i}", qos=0) for i in range(3)]
    pub = mqtt.Client(client_id="sh-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(30):
        pub.publish("sh/x", f"{i}", qos=1).wait_for_publish(TIMEOUT)
    wait_for(lambda: sum(len(m.got) for m in members) >= 30)
    counts = [len(m.got) for m in members]
    pub.loop_stop()
    pub.disconnect()
    for m in members:
        m.close()
    return counts == [10, 10, 10], counts


def read_packets(sock, buf):
    """Reads what is available and splits whole packets off buf (a bytearray)."""
    data = sock.recv(65536)
    if not data:
        raise EOFError
    buf += data
    out = []
    while len(buf) >= 2:
        n, mul, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return out
            b = buf[i]
            n += (b & 0x7F) * mul
            mul *= 128
            i += 1
            if not b & 0x80:
                break
        if len(buf) < i + n:
            return out
        out.append((buf[0], bytes(buf[i:i + n])))
        del buf[:i + n]
    return out


def no_loss_with_a_slow_subscriber(port, count=3000, window=100):
    """QoS 1 into a subscriber that stops reading for a while: with the
    default limits the publisher is paused instead of messages dropped."""
    sub = raw_connect(port, b"slow-sub", 60, version=4)
    sub.sendall(b"\x82" + varint(2 + 2 + 4 + 1) + b"\x00\x01" + lp(b"bp/#") + b"\x01")
    buf = bytearray()
    while not any(t >> 4 == 9 for t, _ in read_packets(sub, buf)):
        pass
    pub = raw_connect(port, b"fast-pub", 60, version=4)
    pub.setblocking(False)
    sent = acked = 0
    pbuf = bytearray()
    got = set()
    slow_until = time.time() + 1.0
    deadline = time.time() + 30
    sub.setblocking(False)
    while (acked < count or len(got) < count) and time.time() < deadline:
        while sent < count and sent - acked < window:
            body = lp(b"bp/x") + ((sent % 65535) + 1).to_bytes(2, "big") + f"{sent}".encode()
            try:
                pub.send(b"\x32" + varint(len(body)) + body)
            except BlockingIOError:
                break
            sent += 1
        try:
            acked += sum(1 for t, _ in read_packets(pub, pbuf) if t >> 4 == 4)
        except BlockingIOError:
            pass
        if time.time() > slow_until:
            try:
                for t, body in read_packets(sub, buf):
                    if t >> 4 != 3:
                        continue
                    tl = int.from_bytes(body[:2], "big")
                    pid = body[2 + tl:4 + tl]
                    got.add(body[4 + tl:])
                    sub.send(b"\x40\x02" + pid)
            except BlockingIOError:
                pass
        time.sleep(0.001)
    pub.close()
    sub.close()
    return acked == count and len(got) == count, (sent, acked, len(got))


class Raw:
    """A raw MQTT 3.1.1 client, for exact packet ids and flags across a restart."""

    def __init__(self, port, client_id, clean):
        var = lp(b"MQTT") + bytes([4, 0x02 if clean else 0]) + (60).to_bytes(2, "big")
        body = var + lp(client_id)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = bytearray()
        self.pending = []
        self.s.sendall(b"\x10" + varint(len(body)) + body)
        t, b = self.next()
        if t != 0x20 or b[1] != 0:
            raise RuntimeError(f"CONNACK {t:#x} {b!r}")
        self.present = b[0] & 1

    def next(self, timeout=TIMEOUT):
        """The next packet as (first byte, body), or None after timeout."""
        deadline = time.time() + timeout
        while not self.pending:
            left = deadline - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                self.pending += read_packets(self.s, self.buf)
            except socket.timeout:
                return None
        return self.pending.pop(0)

    def send(self, first, body):
        self.s.sendall(bytes([first]) + varint(len(body)) + body)

    def subscribe(self, filt, qos):
        self.send(0x82, (1).to_bytes(2, "big") + lp(filt) + bytes([qos]))
        t, _ = self.next()
        assert t == 0x90

    def publish(self, topic, payload, qos, pid=0, retain=False, dup=False):
        first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
        self.send(first, lp(topic) + (pid.to_bytes(2, "big") if qos else b"") + payload)

    def publishes(self, seconds):
        """PUBLISHes received within seconds: (flags, packet id, topic, payload)."""
        out = []
        while True:
            p = self.next(seconds)
            if p is None:
                return out
            t, b = p
            if t & 0xF0 != 0x30:
                continue
            n = int.from_bytes(b[:2], "big")
            topic, rest = b[2:2 + n], b[2 + n:]
            pid = int.from_bytes(rest[:2], "big") if t & 0x06 else 0
            out.append((t, pid, topic, rest[2:] if t & 0x06 else rest))

    def close(self):
        self.s.close()


def restart_keeps_state(tmp):
    """Persistent sessions (subscriptions, an unacknowledged QoS 1 delivery
    with its packet id, queued messages, an unreleased inbound QoS 2 id) and
    retained messages survive a SIGTERM and a start from the same state_dir."""
    settings = ["listen=mqtt 127.0.0.1:0 allow_anonymous=true",
                "state_dir=" + os.path.join(tmp, "restart-state")]
    proc, ports, log = node.start_node(BIN, tmp, settings)
    port = ports[0]
    detail = {}
    try:
        keeper = Raw(port, b"keeper", clean=False)
        keeper.subscribe(b"persist/#", 1)
        pub = Raw(port, b"pub", clean=True)
        pub.publish(b"persist/a", b"m1", 1, pid=1)
        got = keeper.publishes(1.0)
        first_id = got[0][1] if got else None
        keeper.close()  # m1 stays inflight, unacknowledged
        wait_for(lambda: "closing" in open(log).read())
        pub.publish(b"persist/b", b"m2", 1, pid=2)
        pub.publish(b"keep/r", b"R1", 1, pid=3, retain=True)
        acks = [pub.next() for _ in range(2)]
        q2 = Raw(port, b"q2pub", clean=False)
        q2.publish(b"persist/q2", b"once", 2, pid=7)
        rec = q2.next()
        q2.close()  # PUBREC seen, PUBREL never sent
        pub.close()
        detail["before"] = (first_id, [a[0] for a in acks if a], rec and rec[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
    snap = os.path.exists(os.path.join(tmp, "restart-state", "snapshot.bin"))
    detail["stop"] = (code, snap)
    proc, ports, log = node.start_node(BIN, tmp, settings)
    port = ports[0]
    try:
        q2 = Raw(port, b"q2pub", clean=False)
        q2.publish(b"persist/q2", b"once", 2, pid=7, dup=True)
        rec2 = q2.next()
        q2.send(0x62, (7).to_bytes(2, "big"))
        comp = q2.next()
        keeper = Raw(port, b"keeper", clean=False)
        got = keeper.publishes(1.5)
        for flags, pid, _, _ in got:
            if flags & 0x06:
                keeper.send(0x40, pid.to_bytes(2, "big"))
        fresh = Raw(port, b"fresh", clean=True)
        fresh.subscribe(b"keep/#", 1)
        retained = fresh.publishes(1.0)
        detail["after"] = (q2.present, rec2 and rec2[0], comp and comp[0], keeper.present,
                           [(f, pid, t, p) for f, pid, t, p in got], retained)
        ok = (first_id is not None and code == 0 and snap and
              q2.present == 1 and rec2 and rec2[0] == 0x50 and comp and comp[0] == 0x70 and
              keeper.present == 1 and len(got) == 3 and
              got[0][1] == first_id and got[0][0] & 0x08 and got[0][3] == b"m1" and
              sorted(p for _, _, _, p in got[1:]) == [b"m2", b"once"] and
              [p for _, _, _, p in retained] == [b"R1"])
        for c in (q2, keeper, fresh):
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
    return bool(ok) and code == 0, detail


def main():
    with tempfile.TemporaryDirectory() as tmp:
        proc, ports, log = start_node(tmp)
        anon, closed, http_port = ports
        try:
            rc, out = sub_then_pub(anon, "mqttv311", 0, "a/#", "a/b", "hello-311")
            check("mosquitto 3.1.1 QoS 0 pub/sub", rc == 0 and "hello-311" in out, out[-300:])
            rc, out = sub_then_pub(anon, "mqttv5", 1, "a/+/c", "a/b/c", "hello-5")
            check("mosquitto 5.0 QoS 1 pub/sub with a wildcard", rc == 0 and "hello-5" in out,
                  out[-300:])
            rc, out = sub_then_pub(anon, "mqttv5", 1, "ret/#", "ret/t", "kept", retain_first=True)
            check("retained message delivered to a new subscriber", rc == 0 and "kept" in out,
                  out[-300:])
            got = paho_qos2(anon)
            payloads = sorted(p for _, p, _ in got)
            check("paho QoS 2: 20 sent, 20 received once each",
                  payloads == sorted(f"m{i}".encode() for i in range(20)), str(len(got)))
            ack, wills = will_on_abrupt_close(anon)
            check("will published on an abrupt close", ack == b"\x20\x02\x00\x00" and
                  wills == [b"bye"], f"{ack!r} {wills!r}")
            r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(closed), "-V",
                                "mqttv5", "-t", "x", "-m", "y"], capture_output=True,
                               timeout=TIMEOUT)
            check("anonymous refused where the listener does not allow it",
                  r.returncode != 0 and b"authori" in (r.stderr + r.stdout).lower(),
                  (r.stderr + r.stdout).decode(errors="replace"))
            check("will published on a keep-alive timeout", will_on_keepalive_timeout(anon))
            check("a reconnect within the will delay cancels the will",
                  will_delay_cancelled_by_reconnect(anon))
            ok, detail = message_expiry(anon)
            check("message expiry: expired dropped, remaining interval forwarded", ok,
                  str(detail))
            ok, counts = shared_balancing(anon)
            check("shared subscription: 30 messages, 10 to each of 3 members", ok, str(counts))
            ok, detail = no_loss_with_a_slow_subscriber(anon)
            check("QoS 1 into a slow subscriber: publisher paused, nothing dropped", ok,
                  str(detail))
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=TIMEOUT)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            check("GET /healthz", resp.status == 200, str(resp.status))
            resp.read()
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
            check("GET /metrics", resp.status == 200 and
                  'bulwark_tenant_messages_in_total{tenant="default"}' in body, body[:300])
            pauses = re.search(r"bulwark_publisher_pauses_total (\d+)", body)
            dropped = re.search(r'bulwark_tenant_messages_dropped_total\{tenant="default"\} (\d+)',
                                body)
            check("metrics: the publisher was paused and nothing was dropped",
                  pauses and int(pauses.group(1)) > 0 and dropped and
                  int(dropped.group(1)) == 0, f"{pauses and pauses.group(0)} "
                  f"{dropped and dropped.group(0)}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
        check("SIGTERM stops the node with exit 0", code == 0, str(code))
        ok, detail = restart_keeps_state(tmp)
        check("restart keeps persistent sessions (inflight ids, queue, QoS 2) and retained",
              ok, str(detail))
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
