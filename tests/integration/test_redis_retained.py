#!/usr/bin/python3
"""Integration test of retained messages in Redis: real nodes, a real
redis-server of the test's own (a free loopback port, a temporary
directory, append-only file fsynced on every write so a SIGKILL loses
nothing), and real MQTT clients (mosquitto_pub/sub, paho, raw sockets):

1. two nodes, A and B, on one Redis: a message retained through A is
   delivered by B to a new subscriber; cleared through B, it is gone on A;
   the layout in Redis is the documented one (PREFIX:{TENANT}:retained);
2. a node started after messages were retained gets them (its load), and
   an expired one is neither delivered nor kept in Redis;
3. Redis SIGKILLed under a stream of retained QoS 1 publishes to A, then
   started again on the same port and data: no node crashes, every
   publish was acknowledged, and the last value of each topic (written
   while Redis was down included) is in Redis and delivered by B;
4. Redis unreachable when a node starts: it starts, /readyz says 503 and
   "redis: down", and it becomes ready once Redis is there; with a tiny
   redis_retained_queue, a retained QoS 1 PUBLISH past it is refused
   (5.0: PUBACK 0x97; 3.1.1: the connection is closed), QoS 0 dropped,
   all counted; the writes it took reach Redis once it is up;
5. every node stops cleanly on SIGTERM.

Every wait is bounded. Usage: test_redis_retained.py BULWARK_BINARY
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from node import wait_for, varint, lp  # noqa: E402  (tests/integration/node.py)
from redis_node import Node, Redis, TIMEOUT, free_port, retained  # noqa: E402  (redis_node.py)

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

BIN = sys.argv[1]
failures = []
passed = 0


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}", flush=True)


# ---- clients -------------------------------------------------------------------------

def pub(port, topic, payload, qos=1, version="mqttv5", clear=False):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-q", str(qos),
            "-t", topic, "-r"]
    args += ["-n"] if clear else ["-m", payload]
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT).returncode




def eventually(port, pred, seconds=5, filt="#"):
    """Polls new subscribers until pred(retained) holds: (ok, seconds, last)."""
    t0 = time.monotonic()
    last = {}
    while time.monotonic() - t0 < seconds:
        last = retained(port, filt, settle=0.05)
        if pred(last):
            return True, time.monotonic() - t0, last
    return False, time.monotonic() - t0, last


def raw_connect(port, client_id, version):
    var = lp(b"MQTT") + bytes([version, 0x02]) + (60).to_bytes(2, "big")
    if version == 5:
        var += b"\x00"
    body = var + lp(client_id)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"\x10" + varint(len(body)) + body)
    ack = s.recv(64)
    if not ack.startswith(b"\x20") or ack[3] != 0:
        raise RuntimeError(f"CONNACK {ack!r}")
    return s


def raw_publish(s, topic, payload, qos, pid, version):
    """A retained PUBLISH; for QoS 1 the PUBACK's reason code (0 when it has none),
    None when the connection was closed instead, "none" when nothing came."""
    var = lp(topic) + (pid.to_bytes(2, "big") if qos else b"")
    if version == 5:
        var += b"\x00"
    body = var + payload
    s.sendall(bytes([0x30 | (qos << 1) | 1]) + varint(len(body)) + body)
    s.settimeout(1.0 if qos == 0 else TIMEOUT)
    try:
        ack = s.recv(64)
    except socket.timeout:
        return "none"
    except ConnectionError:
        return None
    if not ack:
        return None
    if ack[0] != 0x40:
        return f"packet {ack[0]:#x}"
    return ack[4] if ack[1] >= 3 else 0


# ---- the scenarios ---------------------------------------------------------------------

def two_nodes(tmp, r, url):
    a = Node(BIN, tmp, "a", url, ["workers=2"])
    b = Node(BIN, tmp, "b", url, ["workers=2"])
    check("A and B ready with Redis", wait_for(a.ready, 5) and wait_for(b.ready, 5),
          a.get("/readyz"))
    status, body = a.get("/readyz")
    check("A's /readyz: redis up, retained messages loaded",
          "redis: up, retained messages loaded" in body, body)
    node_ids = set(re.findall(r"node id ([0-9a-f]{32})", open(a.log).read() +
                                                             open(b.log).read()))
    check("each node logs a random 128-bit node id", len(node_ids) == 2, node_ids)

    check("set through A (mosquitto_pub -r -q 1)", pub(a.mqtt, "t/1", "from A") == 0)
    ok, took, last = eventually(b.mqtt, lambda g: g.get("t/1") == "from A")
    check("B delivers it to a new subscriber", ok, last)
    print(f"     set through A, on B after {took * 1000:.0f} ms (Redis fsyncs each write here)")
    value = r.raw("HGET", "bw:{default}:retained", "t/1")
    check("Redis holds it as a record in bw:{default}:retained",
          b"from A" in value and b"t/1" in value, value[:100])
    check("announced on bw:retained (PUBSUB CHANNELS)",
          "bw:retained" in (r.cli("PUBSUB", "CHANNELS") or ""), r.cli("PUBSUB", "CHANNELS"))

    check("cleared through B (mosquitto_pub -r -n)", pub(b.mqtt, "t/1", None, clear=True) == 0)
    ok, took, last = eventually(a.mqtt, lambda g: "t/1" not in g)
    check("gone on A", ok, last)
    print(f"     cleared through B, gone on A after {took * 1000:.0f} ms")
    check("gone from Redis", r.cli("HEXISTS", "bw:{default}:retained", "t/1") == "(integer) 0",
          r.cli("HEXISTS", "bw:{default}:retained", "t/1"))

    # 3.1.1 and 5.0 publishers, both nodes, QoS 0 and 2.
    check("set more through both", pub(a.mqtt, "k/a", "1", qos=0, version="mqttv311") == 0 and
          pub(b.mqtt, "k/b", "2", qos=2) == 0 and pub(a.mqtt, "k/c", "3") == 0)
    ok, _, last = eventually(a.mqtt, lambda g: g.get("k/b") == "2" and g.get("k/a") == "1",
                             filt="k/#")
    check("A and B agree", ok and eventually(b.mqtt, lambda g: len(g) == 3, filt="k/#")[0], last)
    return a, b


def expiry_and_late_node(tmp, r, url, a):
    # A 5.0 message expiry of 1 s, retained through A.
    c = mqtt.Client(client_id="expiring", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", a.mqtt)
    c.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    c.publish("x/short", "brief", qos=1, retain=True, properties=props).wait_for_publish(TIMEOUT)
    c.disconnect()
    c.loop_stop()
    check("the expiring message is in Redis", wait_for(
        lambda: r.cli("HEXISTS", "bw:{default}:retained", "x/short") == "(integer) 1", 3))
    time.sleep(1.5)

    late = Node(BIN, tmp, "late", url, ["workers=1"])
    check("a node started later is ready once loaded", wait_for(late.ready, 5))
    got = retained(late.mqtt, "k/#")
    check("it delivers what was retained before it started",
          got == {"k/a": "1", "k/b": "2", "k/c": "3"}, got)
    check("the expired message is not delivered", "x/short" not in retained(late.mqtt, "x/#"))
    check("and was removed from Redis at its load",
          r.cli("HEXISTS", "bw:{default}:retained", "x/short") == "(integer) 0",
          r.cli("HEXISTS", "bw:{default}:retained", "x/short"))
    log = open(late.log).read()
    check("its log says what it loaded", re.search(r"retained messages loaded: \d+ messages", log),
          log[-500:])
    return late


def redis_restart(r, a, b):
    """Redis SIGKILLed under a stream of retained QoS 1 publishes to A, then restarted."""
    last, acked, errors = {}, [0], []
    stop = threading.Event()

    def publisher():
        c = mqtt.Client(client_id="stream", protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", a.mqtt)
        c.loop_start()
        i = 0
        while not stop.is_set():
            topic, value = f"s/{i % 10}", f"v{i}"
            info = c.publish(topic, value, qos=1, retain=True)
            info.wait_for_publish(TIMEOUT)
            if info.is_published():
                last[topic] = value
                acked[0] += 1
            else:
                errors.append(i)
            i += 1
            time.sleep(0.005)
        c.disconnect()
        c.loop_stop()

    t = threading.Thread(target=publisher)
    t.start()
    time.sleep(0.5)
    r.kill()
    down_at = acked[0]
    check("A's /readyz names Redis down (and stays ready)",
          wait_for(lambda: "redis: down" in a.get("/readyz")[1], 5) and a.ready(),
          a.get("/readyz"))
    time.sleep(1.0)
    held = a.metric("bulwark_redis_queued")
    check("writes made while Redis is down are held (bulwark_redis_queued)",
          held is not None and held > 0, held)
    r.start()
    time.sleep(1.0)
    stop.set()
    t.join(TIMEOUT)
    check("every publish was acknowledged", not errors and acked[0] > down_at,
          f"{len(errors)} failed, {acked[0]} acked, {down_at} before the kill")
    check("no node crashed", a.alive() and b.alive())
    check("A's writes drain once Redis is back",
          wait_for(lambda: a.metric("bulwark_redis_queued") == 0, 10),
          a.metric("bulwark_redis_queued"))
    check("A and B say redis up again",
          wait_for(lambda: "redis: up" in a.get("/readyz")[1] and
                   "redis: up" in b.get("/readyz")[1], 10), a.get("/readyz"))
    in_redis = {f"s/{k}": None for k in range(10)}
    for topic in in_redis:
        v = r.raw("HGET", "bw:{default}:retained", topic)
        m = re.search(rb"v\d+", v)
        in_redis[topic] = m.group(0).decode() if m else None
    check("Redis holds the last value of every topic", in_redis == last,
          f"redis {in_redis} last {last}")
    ok, _, got = eventually(b.mqtt, lambda g: g == last, filt="s/#", seconds=10)
    check("B delivers the last value of every topic", ok, f"B {got} last {last}")
    ok, _, got = eventually(a.mqtt, lambda g: g == last, filt="s/#", seconds=5)
    check("and so does A", ok, f"A {got} last {last}")
    check("reconnects counted", (a.metric("bulwark_redis_reconnects_total") or 0) > 0)


def unreachable_and_refusal(tmp):
    """A node whose Redis is not there at its start, with room for 2 writes."""
    port = free_port()
    r2 = Redis(os.path.join(tmp, "redis2"), port)
    n = Node(BIN, tmp, "early", f"redis://localhost:{port}/3",
             ["workers=1", "redis_retained_queue=2", "redis_prefix=t2"])
    log = open(n.log).read()
    check("a node starts with Redis unreachable", n.alive() and "started" in log, log[-300:])
    status, body = n.get("/readyz")
    check("its /readyz says 503, redis down, not loaded",
          status == 503 and "redis: down" in body and "not loaded" in body, f"{status} {body}")

    s5 = raw_connect(n.mqtt, b"raw5", 5)
    rc1 = raw_publish(s5, b"q/1", b"one", 1, 1, 5)
    rc2 = raw_publish(s5, b"q/2", b"two", 1, 2, 5)
    rc3 = raw_publish(s5, b"q/3", b"three", 1, 3, 5)
    rc4 = raw_publish(s5, b"q/1", b"one again", 1, 4, 5)  # replaces the waiting q/1
    check("5.0 QoS 1 retained publishes within the bound: PUBACK 0", rc1 == 0 and rc2 == 0,
          (rc1, rc2))
    check("past the bound: PUBACK 0x97", rc3 == 0x97, rc3)
    check("a topic already waiting may be written again: PUBACK 0", rc4 == 0, rc4)
    rc0 = raw_publish(s5, b"q/4", b"zero", 0, 0, 5)
    check("a QoS 0 one past the bound is dropped (no answer, connection kept)",
          rc0 == "none", rc0)
    s5.close()
    s4 = raw_connect(n.mqtt, b"raw4", 4)
    rc = raw_publish(s4, b"q/5", b"five", 1, 1, 4)
    check("3.1.1 QoS 1 past the bound: the connection is closed", rc is None, rc)
    s4.close()
    refused = n.metric("bulwark_redis_refused_total")
    check("refusals counted (bulwark_redis_refused_total)", refused == 3, refused)
    check("the node's subscribers still see what it took",
          retained(n.mqtt, "q/#") == {"q/1": "one again", "q/2": "two"},
          retained(n.mqtt, "q/#"))

    r2.start()
    check("ready once Redis is there", wait_for(n.ready, 10), n.get("/readyz"))
    check("/readyz body: redis up, loaded",
          "redis: up, retained messages loaded" in n.get("/readyz")[1], n.get("/readyz"))
    check("the writes it took reach Redis (db 3, prefix t2)", wait_for(
        lambda: b"one again" in r2.raw("-n", "3", "HGET", "t2:{default}:retained", "q/1") and
        b"two" in r2.raw("-n", "3", "HGET", "t2:{default}:retained", "q/2"), 5))
    check("and nothing it refused",
          r2.cli("-n", "3", "HLEN", "t2:{default}:retained") == "(integer) 2",
          r2.cli("-n", "3", "HLEN", "t2:{default}:retained"))
    check("retained publishes are taken again", pub(n.mqtt, "q/6", "six") == 0 and wait_for(
        lambda: r2.cli("-n", "3", "HEXISTS", "t2:{default}:retained", "q/6") ==
        "(integer) 1", 5))
    return n, r2


def main():
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        r = Redis(os.path.join(tmp, "redis"), port)
        r.start()
        url = f"redis://localhost:{port}"  # a host name: resolved at start
        nodes, r2 = [], None
        try:
            a, b = two_nodes(tmp, r, url)
            nodes += [a, b]
            nodes.append(expiry_and_late_node(tmp, r, url, a))
            redis_restart(r, a, b)
            n, r2 = unreachable_and_refusal(tmp)
            nodes.append(n)
        finally:
            for n in nodes:
                rc = n.stop()
                check(f"node {n.name}: SIGTERM: exit 0", rc == 0, rc)
            for x in (r, r2):
                if x and x.proc:
                    x.kill()
        for n in nodes:
            log = open(n.log).read()
            check(f"node {n.name}: nothing lost at stop",
                  "were not written to Redis" not in log, log[-300:])
    print(f"{passed} passed, {len(failures)} failed")
    if failures:
        print("failed: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
