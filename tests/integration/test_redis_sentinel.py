#!/usr/bin/python3
"""Integration test of redis_sentinel: a master, a replica of it and one
sentinel watching them, each a redis-server of the test's own (free
loopback ports, a temporary directory), a real node and real MQTT clients
(mosquitto_pub, paho 5.0):

1. the node, given the sentinel (and a `redis` address whose host and port
   it must ignore), finds the master at start and is ready; a retained
   message set through it and a persistent session's record and queued
   message land in the master (and reach the replica);
2. `SENTINEL failover`: the sentinel promotes the replica; the node follows
   within seconds (its log line, bulwark_redis_sentinel_failovers_total,
   /readyz 200 naming the new master), a new retained write lands in the
   new master, every retained message is still delivered, and the
   persistent session (clean_start false, expiry 3600), disconnected
   before the failover, resumes with what was queued for it before and
   after it;
3. a second node given a dead sentinel first, then the live one, finds the
   new master and loads the retained messages from it;
4. the new master SIGKILLed: the sentinel promotes the old one (a replica
   of it since the failover) and both nodes follow, their writes held
   meanwhile landing there;
5. both nodes stop cleanly on SIGTERM.

Every wait is bounded. Usage: test_redis_sentinel.py BULWARK_BINARY
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from node import wait_for  # noqa: E402  (tests/integration/node.py)
from redis_node import (Node, Redis, Sentinel, TIMEOUT, free_port, paho_close,  # noqa: E402
                        retained)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

BIN = sys.argv[1]
NAME = "bw-master"
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


def pub(port, topic, payload, retain=True):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1",
            "-t", topic, "-m", payload] + (["-r"] if retain else [])
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT).returncode




class Session:
    """A paho 5.0 client with a persistent session (clean_start false, expiry
    3600) that never reconnects by itself. connack: (code, session present)."""

    def __init__(self, port, cid, subscribe=None):
        self.msgs, self.connack = [], None
        self.gone, self.subacked = threading.Event(), threading.Event()
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        self.c.on_connect = lambda c, u, flags, rc, *p: setattr(
            self, "connack", (getattr(rc, "value", rc), flags.get("session present")))
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload.decode()))
        self.c.on_subscribe = lambda *a: self.subacked.set()
        self.c.on_disconnect = lambda *a: self.gone.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c.connect("127.0.0.1", port, keepalive=60, clean_start=False, properties=props)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None or self.gone.is_set(), TIMEOUT)
        if subscribe and self.ok():
            self.c.subscribe(subscribe, qos=1)
            self.subacked.wait(TIMEOUT)

    def ok(self):
        return self.connack is not None and self.connack[0] == 0

    def close(self):
        """DISCONNECT (reason 0: the session stays), then the loop's end, bounded."""
        paho_close(self.c, self.gone)


def resume(port, cid):
    """A persistent session connected again, retried while the node cannot
    claim it (CONNACK 0x88 while its Redis connections move), for 10 s."""
    deadline = time.monotonic() + 10
    while True:
        s = Session(port, cid)
        if s.ok() or time.monotonic() >= deadline:
            return s
        s.close()
        time.sleep(0.2)


def log_has(node, text):
    with open(node.log) as f:
        return text in f.read()


def run(tmp):
    mport, rport, sport = free_port(), free_port(), free_port()
    # A full sync waits repl-diskless-sync-delay (5 s) for more replicas: not here.
    fast = ["--repl-diskless-sync-delay", "0"]
    master = Redis(os.path.join(tmp, "master"), mport, fast)
    replica = Redis(os.path.join(tmp, "replica"), rport,
                    fast + ["--replicaof", "127.0.0.1", str(mport)])
    sentinel = Sentinel(os.path.join(tmp, "sentinel"), sport, NAME, mport)
    nodes = []
    t0 = time.monotonic()
    try:
        master.start()
        replica.start()
        sentinel.start()

        # ---- 1. the master found through the sentinel ------------------------------
        # Port 1 of `redis` is never used: only its db and (no) password count.
        a = Node(BIN, tmp, "a", "redis://127.0.0.1:1/0",
                 [f"redis_sentinel={NAME} 127.0.0.1:{sport}"])
        nodes.append(a)
        check("node ready with the master the sentinel names", wait_for(a.ready, TIMEOUT))
        check("start logged", log_has(a, f"redis: sentinel: master {NAME} is at "
                                         f"127.0.0.1:{mport}"))
        # Ready once the retained messages are loaded; up once every worker is connected.
        check("/readyz names the master",
              wait_for(lambda: f"redis: up, master 127.0.0.1:{mport}" in a.get("/readyz")[1], 5),
              a.get("/readyz"))

        keeper = Session(a.mqtt, "keeper", subscribe="keep/#")
        check("persistent session made", keeper.ok() and not keeper.connack[1],
              keeper.connack)
        keeper.close()
        check("retained set before the failover", pub(a.mqtt, "sent/before", "one") == 0)
        check("queued for the session before the failover",
              pub(a.mqtt, "keep/x", "queued-before", retain=False) == 0)
        hash_key = "bw:{default}:retained"
        check("the retained message is in the master",
              wait_for(lambda: b"one" in master.raw("HGET", hash_key, "sent/before"), 5))
        # A replica promoted before its first sync would start the new master empty.
        check("the session and its queue reached the replica",
              wait_for(lambda: b"master_link_status:up" in replica.raw("INFO", "replication")
                       and replica.integer("EXISTS", "bw:{default}:session:keeper") == 1
                       and replica.integer("ZCARD", "bw:{default}:queue:keeper") == 1
                       and b"one" in replica.raw("HGET", hash_key, "sent/before"), 15, 0.1))

        # ---- 2. the failover -----------------------------------------------------
        check("the sentinel knows the replica", wait_for(sentinel.replica_known, 20, 0.1))
        check("SENTINEL failover accepted",
              wait_for(lambda: sentinel.cli("SENTINEL", "failover", NAME) == "OK", 10, 0.2))
        t_fail = time.monotonic()
        check("the sentinel names the replica",
              wait_for(lambda: sentinel.master() == rport, 20, 0.1), sentinel.master())
        moved = f"redis: sentinel: master {NAME} is now 127.0.0.1:{rport} " \
                f"(was 127.0.0.1:{mport})"
        check("the node logs the change", wait_for(lambda: log_has(a, moved), 10, 0.1))
        check("bulwark_redis_sentinel_failovers_total 1",
              a.metric("bulwark_redis_sentinel_failovers_total") == 1,
              a.metric("bulwark_redis_sentinel_failovers_total"))

        def back():
            status, body = a.get("/readyz")
            return status == 200 and f"redis: up, master 127.0.0.1:{rport}" in body
        check("/readyz 200 on the new master", wait_for(back, 10, 0.1), a.get("/readyz"))
        print(f"     (the node was back on the new master "
              f"{time.monotonic() - t_fail:.1f} s after SENTINEL failover)", flush=True)
        check("the replica is the master now", (replica.cli("ROLE") or "").startswith("1)")
              and "master" in (replica.cli("ROLE") or ""), replica.cli("ROLE"))

        check("retained set after the failover", pub(a.mqtt, "sent/after", "two") == 0)
        check("it lands in the new master",
              wait_for(lambda: b"two" in replica.raw("HGET", hash_key, "sent/after"), 5))
        got = retained(a.mqtt, "sent/#")
        check("both retained messages delivered",
              got == {"sent/before": "one", "sent/after": "two"}, got)

        check("queued for the session after the failover",
              pub(a.mqtt, "keep/y", "queued-after", retain=False) == 0)
        keeper = resume(a.mqtt, "keeper")
        check("the persistent session resumes", keeper.ok() and keeper.connack[1] == 1,
              keeper.connack)
        wait_for(lambda: len(keeper.msgs) >= 2, 5)
        check("with what was queued before and after",
              sorted(p for _, p in keeper.msgs) == ["queued-after", "queued-before"],
              keeper.msgs)
        keeper.close()

        # ---- 3. a dead sentinel first ------------------------------------------------
        dead = free_port()
        b = Node(BIN, tmp, "b", "redis://127.0.0.1:1/0",
                 [f"redis_sentinel={NAME} 127.0.0.1:{dead},127.0.0.1:{sport}"])
        nodes.append(b)
        check("node b ready past the dead sentinel", wait_for(b.ready, TIMEOUT))
        check("node b found the new master",
              log_has(b, f"redis: sentinel: master {NAME} is at 127.0.0.1:{rport}"))
        got = retained(b.mqtt, "sent/#")
        check("node b loaded the retained messages from it",
              got == {"sent/before": "one", "sent/after": "two"}, got)

        # ---- 4. the master killed -------------------------------------------------------
        # The sentinel makes the old master a replica of the new one once it sees it
        # (INFO every 10 s); once it has everything, kill the new one.
        check("the old master follows the new one",
              wait_for(lambda: b"master_link_status:up" in master.raw("INFO", "replication")
                       and b"two" in master.raw("HGET", hash_key, "sent/after"), 30, 0.1)
              and wait_for(sentinel.replica_known, 20, 0.1))
        replica.kill()
        t_kill = time.monotonic()
        check("a retained write while no master is known",
              pub(a.mqtt, "sent/during", "three") == 0)
        check("the sentinel promotes the old master",
              wait_for(lambda: sentinel.master() == mport, 30, 0.1), sentinel.master())
        back_text = f"redis: sentinel: master {NAME} is now 127.0.0.1:{mport} " \
                    f"(was 127.0.0.1:{rport})"
        for n in nodes:
            check(f"node {n.name} logs the change", wait_for(lambda: log_has(n, back_text), 10))
            check(f"node {n.name} is back on it", wait_for(
                lambda: f"redis: up, master 127.0.0.1:{mport}" in n.get("/readyz")[1]
                and n.ready(), 10, 0.1), n.get("/readyz"))
        print(f"     (both nodes were back {time.monotonic() - t_kill:.1f} s after the kill)",
              flush=True)
        check("bulwark_redis_sentinel_failovers_total 2 on node a",
              a.metric("bulwark_redis_sentinel_failovers_total") == 2,
              a.metric("bulwark_redis_sentinel_failovers_total"))
        check("the write held meanwhile lands there",
              wait_for(lambda: b"three" in master.raw("HGET", hash_key, "sent/during"), 10))
        got = retained(b.mqtt, "sent/#")
        check("node b delivers every retained message",
              got == {"sent/before": "one", "sent/after": "two", "sent/during": "three"}, got)

        # ---- 5. stop ---------------------------------------------------------------
        for n in nodes:
            check(f"node {n.name} stops cleanly", n.stop() == 0)
            check(f"node {n.name} logged no error", not log_has(n, " error "))
    finally:
        for n in nodes:
            n.kill()
        for r in (sentinel, replica, master):
            if r.proc:
                r.kill()
    print(f"{passed} passed, {len(failures)} failed in {time.monotonic() - t0:.1f} s")
    if failures:
        for n in nodes:
            print(f"---- node {n.name} log ----")
            with open(n.log) as f:
                print(f.read()[-6000:])
    return not failures


def main():
    with tempfile.TemporaryDirectory(prefix="bw-sentinel-") as tmp:
        ok = run(tmp)
    sys.exit(0 if ok else 1)


main()
