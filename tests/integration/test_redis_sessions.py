#!/usr/bin/python3
"""Integration test of persistent sessions in Redis: real nodes on one
redis-server of the test's own (redis_node.py: a free loopback port, a
temporary directory, append-only file fsynced on every write), paho MQTT
clients for the sessions, and raw sockets where the exact bytes matter
(PUBACK and CONNACK codes, the connection a takeover ends).

Every node has `redis`, `redis_prefix=bulwark` (named, so the keys checked
do not depend on the default), `workers=2`, `max_queued_messages=5000` (no
stream comes near it) and `session_durability=sync` unless a section says
otherwise. The anonymous tenant is "default", so a
session is bulwark:{default}:session:ID with queue:ID and inflight:ID
(docs/state-layout.md, "Persistent sessions").

1. SIGKILL resume (sync): dev1 (5.0, expiry 3600, t/#) and dev2 (3.1.1,
   clean session 0, u/#) subscribe on A and go; their sessions are in
   Redis (record, owner, TTL); 300 QoS 1 publishes to A, each PUBACKed
   only once in Redis; A SIGKILLed; both resume on B with session present
   1, get every acknowledged message (no duplicates but DUP resends, in
   order) and their subscriptions are live on B.
   1b. the same with A2 SIGKILLed mid-stream after 100 PUBACKs: every
   message that got one reaches dev1m on B.
2. Takeover: dev3 connected to A3 (raw) connects to B: the connection on
   A3 ends within 5 s, B says session present 1, the old connection gets
   nothing after; 50 QoS 1 through B arrive once each. Then 20 queued for
   dev3 offline on A3 arrive on B exactly once.
3. Redis SIGKILLed under a QoS 1 stream to A3 and started again on the
   same port and data after 1 s: no node crashes, no PUBACK while Redis
   is down, every publish acknowledged within 20 s after, dev4 (offline,
   its session on A3) resumes on B with every acknowledged message.
4. Redis unreachable when node C starts: clean sessions connect (CONNACK
   0), persistent ones are refused (5.0: 0x88; 3.1.1: 3); once Redis is
   there a persistent CONNECT succeeds within 10 s.
5. session_durability=none (nodes D, E): the subscription resumes on E,
   the messages queued on D are not carried (not written to Redis).
6. Clean start on B discards a stored session (one owned by A3): keys gone
   once it disconnects, a later clean start 0 connect has no session;
   3.1.1 clean session 1 likewise.
7. /metrics has bulwark_redis_session* lines.
Every live node stops with exit 0 on SIGTERM.

Cluster forwarding (a publish on one node reaching a subscriber connected
to another) is not built (docs/architecture.md: cluster "later"), so the
checks that need it run only with BW_REDIS_SESSIONS_FORWARDING=1: in 2,
the 50 published through A3 reach dev3 on B; in 3, dev4 is connected to B
during the stream instead of resuming there after it. Otherwise every
message a check waits for is published on the node that owns the session
at that moment, which the session feature alone must carry.

Every wait is bounded. Usage: test_redis_sessions.py BULWARK_BINARY
"""
import collections
import os
import re
import select
import socket
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from node import wait_for, varint, lp  # noqa: E402  (tests/integration/node.py)
from redis_node import Node, Redis, TIMEOUT, free_port, paho_close  # noqa: E402  (redis_node.py)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

BIN = sys.argv[1]
PREFIX = "bulwark"
EXPIRY = 3600
QUEUE = 5000  # max_queued_messages: no stream of a section comes near it
FORWARDING = os.environ.get("BW_REDIS_SESSIONS_FORWARDING") == "1"
failures = []
passed = 0
CLIENTS = []  # every client made, closed at the end whatever happened


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}", flush=True)


def skip(name, why="needs cluster forwarding: BW_REDIS_SESSIONS_FORWARDING=1"):
    print(f"skip {name} ({why})", flush=True)


def key(kind, cid, tenant="default"):
    return f"{PREFIX}:{{{tenant}}}:{kind}:{cid}"


def stored(r, cid):
    """The session's entries in Redis: queued plus inflight (None: Redis did not answer)."""
    q, i = r.integer("ZCARD", key("queue", cid)), r.integer("ZCARD", key("inflight", cid))
    return None if q is None or i is None else q + i


def hget(r, cid, field):
    return r.raw("HGET", key("session", cid), field).rstrip(b"\n")


def released(r, cid, seconds=5):
    """Waits until the node let the session go: its release gives the keys of a
    session with expiry E a TTL of E s + 60 s (state-layout.md, "TTLs"), none
    before. Not for 3.1.1 sessions (they never expire: no TTL)."""
    return wait_for(lambda: 0 < (r.integer("PTTL", key("session", cid)) or 0)
                    <= EXPIRY * 1000 + 60000, seconds)


def num(payload):
    m = re.search(r"\d+$", payload)
    return int(m.group(0)) if m else -1


def some(xs, n=10):
    return sorted(xs, key=lambda p: (p.rstrip("0123456789"), num(p)))[:n]


# ---- clients ---------------------------------------------------------------------------

class Sub:
    """A paho client (5.0 or 3.1.1) that never reconnects by itself, keeping every
    message it got as (topic, payload, dup). connack: (code, session present), or
    None when there was none."""

    def __init__(self, port, cid, version=5, clean=False, expiry=EXPIRY, subscribe=None):
        self.cid, self.msgs, self.connack, self.granted = cid, [], None, None
        self.gone = threading.Event()
        self.subacked = threading.Event()
        CLIENTS.append(self)
        if version == 5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, clean_session=clean,
                                 reconnect_on_failure=False)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.append(
            (m.topic, m.payload.decode(errors="replace"), bool(m.dup)))
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = lambda *a: self.gone.set()
        try:
            if version == 5:
                props = Properties(PacketTypes.CONNECT)
                if expiry:
                    props.SessionExpiryInterval = expiry
                self.c.connect("127.0.0.1", port, keepalive=60, clean_start=clean,
                               properties=props)
            else:
                self.c.connect("127.0.0.1", port, keepalive=60)
        except OSError as e:
            self.error = e
            self.gone.set()
            return
        self.c.loop_start()
        wait_for(lambda: self.connack is not None or self.gone.is_set(), TIMEOUT)
        if subscribe and self.connack and self.connack[0] == 0:
            self.c.subscribe(subscribe, qos=1)
            self.subacked.wait(TIMEOUT)

    def _on_connect(self, c, u, flags, rc, *props):
        self.connack = (getattr(rc, "value", rc), flags.get("session present"))

    def _on_subscribe(self, c, u, mid, granted, *props):
        self.granted = [getattr(g, "value", g) for g in granted]
        self.subacked.set()

    def payloads(self):
        return {m[1] for m in list(self.msgs)}

    def counts(self):
        return collections.Counter(m[1] for m in list(self.msgs))

    def close(self):
        """A clean DISCONNECT (5.0 reason 0: the session stays), then the loop's
        end, waited for at most TIMEOUT (paho's loop_stop would wait forever)."""
        paho_close(self.c, self.gone)


EOF = "eof"


def connect_packet(cid, version, clean, expiry):
    var = lp(b"MQTT") + bytes([version, 0x02 if clean else 0]) + (60).to_bytes(2, "big")
    if version == 5:
        props = b"\x11" + expiry.to_bytes(4, "big") if expiry else b""
        var += varint(len(props)) + props
    body = var + lp(cid.encode())
    return b"\x10" + varint(len(body)) + body


class Raw:
    """A raw MQTT connection: code and present are the CONNACK's (None: none came)."""

    def __init__(self, port, cid, version=5, clean=True, expiry=0, timeout=TIMEOUT):
        self.version, self.buf, self.code, self.present = version, b"", None, None
        self.publishes = []  # (topic, payload) of every PUBLISH read
        CLIENTS.append(self)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.sendall(connect_packet(cid, version, clean, expiry))
        p = self.packet(timeout)
        if p not in (None, EOF) and p[0] >> 4 == 2 and len(p[1]) >= 2:
            self.present, self.code = p[1][0] & 1, p[1][1]

    def _parse(self):
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf) or i > 4:
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if len(self.buf) < i + n:
            return None
        p = (self.buf[0], self.buf[i:i + n])
        self.buf = self.buf[i + n:]
        return p

    def packet(self, seconds):
        """The next packet as (first byte, body); None when none came in time;
        EOF when the connection was closed."""
        deadline = time.monotonic() + seconds
        while True:
            p = self._parse()
            if p:
                if p[0] >> 4 == 3:
                    self._publish(p)
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                if not select.select([self.s], [], [], left)[0]:
                    return None
                chunk = self.s.recv(65536)
            except (OSError, ValueError):
                return EOF
            if not chunk:
                return EOF
            self.buf += chunk

    def _publish(self, p):
        first, body = p
        qos = (first >> 1) & 3
        tl = int.from_bytes(body[:2], "big")
        topic, pos = body[2:2 + tl].decode(errors="replace"), 2 + tl
        pid = body[pos:pos + 2] if qos else b""
        pos += len(pid)
        if self.version == 5:
            plen, mult = 0, 1
            while True:
                b = body[pos]
                pos += 1
                plen += (b & 0x7F) * mult
                mult *= 128
                if not b & 0x80:
                    break
            pos += plen
        self.publishes.append((topic, body[pos:].decode(errors="replace")))
        if qos == 1:
            self.send(b"\x40\x02" + pid)

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except OSError:
            return False

    def subscribe(self, filt, qos):
        """The SUBACK's code for filt, None when none came."""
        body = (1).to_bytes(2, "big") + (b"\x00" if self.version == 5 else b"") + \
            lp(filt.encode()) + bytes([qos])
        self.send(b"\x82" + varint(len(body)) + body)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            p = self.packet(deadline - time.monotonic())
            if p in (None, EOF):
                return None
            if p[0] >> 4 == 9:
                return p[1][-1]
        return None

    def wait_end(self, seconds):
        """Reads until the node ends the connection: "DISCONNECT 0x.." or "closed"
        (no DISCONNECT); None when it is still open after seconds."""
        deadline = time.monotonic() + seconds
        while True:
            p = self.packet(max(0.0, deadline - time.monotonic()))
            if p is None:
                return None
            if p == EOF:
                return "closed"
            if p[0] >> 4 == 14:
                return f"DISCONNECT {p[1][0] if p[1] else 0:#04x}"

    def drain(self, seconds):
        """Reads (and acknowledges) whatever comes for seconds or until the end."""
        deadline = time.monotonic() + seconds
        while self.packet(max(0.0, deadline - time.monotonic())) not in (None, EOF):
            pass

    def close(self, disconnect=True):
        if disconnect:
            self.send(b"\xe0\x00")
        try:
            self.s.close()
        except OSError:
            pass


def connack(port, cid, version, clean, expiry=0, timeout=TIMEOUT):
    """A raw CONNECT's CONNACK: (code, session present), (None, None) without one;
    disconnects cleanly after an accepted one."""
    try:
        c = Raw(port, cid, version, clean, expiry, timeout)
    except OSError:
        return None, None
    c.close(disconnect=c.code == 0)
    return c.code, c.present


class Publisher:
    """A raw 5.0 publisher (clean start, expiry 0) with up to window QoS 1 PUBLISHes
    unacknowledged; a reader thread takes the PUBACKs. acked: the payloads whose
    PUBACK had a success code; refused: (payload, code) for the others (paho would
    count those as published too)."""

    def __init__(self, port, cid, window=20):
        self.raw = Raw(port, cid, 5, clean=True)
        self.window, self.next = window, 1
        self.cv = threading.Condition()
        self.pending, self.sent, self.acked, self.refused = {}, [], [], []
        self.closed = self.raw.code != 0
        self.stopping = False
        self.mark, self.marked = None, threading.Event()  # set once mark PUBACKs came
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while not self.stopping:
            p = self.raw.packet(0.2)
            if p is None:
                continue
            if p == EOF:
                break
            if p[0] >> 4 == 4:
                pid = int.from_bytes(p[1][:2], "big")
                code = p[1][2] if len(p[1]) > 2 else 0
                with self.cv:
                    payload = self.pending.pop(pid, None)
                    if payload is not None:
                        (self.acked.append(payload) if code < 0x80 else
                         self.refused.append((payload, code)))
                        if self.mark is not None and len(self.acked) >= self.mark:
                            self.marked.set()
                    self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def publish(self, topic, payload, seconds=TIMEOUT):
        """Sends a QoS 1 PUBLISH once the window has room: False when it has none
        within seconds or the connection is gone."""
        with self.cv:
            if not self.cv.wait_for(lambda: self.closed or len(self.pending) < self.window,
                                    seconds) or self.closed:
                return False
            while self.next in self.pending:
                self.next = self.next % 65535 + 1
            pid, self.next = self.next, self.next % 65535 + 1
            self.pending[pid] = payload
            self.sent.append(payload)
        body = lp(topic.encode()) + pid.to_bytes(2, "big") + b"\x00" + payload.encode()
        if not self.raw.send(b"\x32" + varint(len(body)) + body):
            with self.cv:
                self.closed = True
                self.cv.notify_all()
            return False
        return True

    def wait_all(self, seconds):
        """True once every PUBLISH sent has its PUBACK (within seconds)."""
        with self.cv:
            self.cv.wait_for(lambda: not self.pending or self.closed, seconds)
            return not self.pending

    def close(self):
        self.stopping = True
        self.raw.close()
        self.t.join(2)


def publish_all(port, cid, items, seconds=20):
    """Publishes (topic, payload) items at QoS 1: the Publisher, after its PUBACKs."""
    p = Publisher(port, cid)
    for topic, payload in items:
        if not p.publish(topic, payload):
            break
    p.wait_all(seconds)
    p.close()
    return p


def stream(p, topic, prefix, stop, limit, pause=0.0):
    """Publishes prefix0, prefix1, ... until stop, limit or the connection's end,
    waiting for room in the window as long as it takes (PUBACKs may be held)."""
    i = 0
    while i < limit and not stop.is_set() and not p.closed:
        if p.publish(topic, f"{prefix}{i}", seconds=0.2):
            i += 1
            if pause:
                time.sleep(pause)


def wait_msgs(sub, want, seconds=10, stall=5):
    """Waits until sub got every payload in want, for at most seconds, and gives up
    sooner once nothing new came for stall seconds (a resumed session's messages
    flow without pauses) or the connection is gone."""
    deadline = time.monotonic() + seconds
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline and not want <= sub.payloads():
        if len(sub.msgs) != seen:
            seen, since = len(sub.msgs), time.monotonic()
        elif time.monotonic() - since > stall or sub.gone.is_set():
            break
        time.sleep(0.02)


def received_all(sub, want, name, seconds=10):
    wait_msgs(sub, want, seconds)
    missing = want - sub.payloads()
    check(name, sub.connack is not None and not missing,
          f"{len(missing)} of {len(want)} missing, e.g. {some(missing)}")


def no_duplicates(sub, name):
    """No message delivered twice but as a QoS 1 resend (DUP set)."""
    counts = collections.Counter(m[1] for m in list(sub.msgs) if not m[2])
    dups = {p: n for p, n in counts.items() if n > 1}
    check(name, not dups, f"{len(dups)} delivered more than once without DUP: {some(dups)}")


def in_order(sub, prefix, name):
    seen, order = set(), []
    for _, p, _ in list(sub.msgs):
        if p.startswith(prefix) and p not in seen:
            seen.add(p)
            order.append(num(p))
    back = [(order[i - 1], order[i]) for i in range(1, len(order)) if order[i] < order[i - 1]]
    check(name, not back, f"{len(back)} went back, e.g. {back[:5]}")


# ---- nodes -----------------------------------------------------------------------------

class NodeFailed(Exception):
    pass


class Ctx:
    def __init__(self, tmp, r, url):
        self.tmp, self.r, self.url = tmp, r, url
        self.nodes, self.killed, self.redises = [], set(), [r]
        self.a = self.b = self._a3 = None

    def start(self, name, url=None, durability="sync"):
        try:
            n = Node(BIN, self.tmp, name, url or self.url,
                     ["workers=2", "redis_prefix=" + PREFIX, "session_durability=" + durability,
                      "max_queued_messages=" + str(QUEUE)])
        except SystemExit as e:
            log = os.path.join(self.tmp, name, "node.log")
            tail = open(log).read()[-400:] if os.path.exists(log) else ""
            raise NodeFailed(f"node {name} did not start ({e}) {tail}")
        self.nodes.append(n)
        return n

    def kill(self, n):
        n.kill()
        self.killed.add(n.name)

    def a3(self):
        """The A side's node from section 2 on (started by whoever needs it first)."""
        if self._a3 is None:
            self._a3 = self.start("a3")
        return self._a3


# ---- the scenarios ---------------------------------------------------------------------

def sigkill_resume(ctx):
    r, a, b = ctx.r, ctx.a, ctx.b
    d1 = Sub(a.mqtt, "dev1", 5, subscribe="t/#")
    check("dev1 (5.0, clean start 0, expiry 3600) on A: CONNACK 0, no session yet",
          d1.connack == (0, 0), d1.connack)
    check("dev1 subscribed t/# at QoS 1", d1.granted == [1], d1.granted)
    d1.close()
    d2 = Sub(a.mqtt, "dev2", 4, subscribe="u/#")
    check("dev2 (3.1.1, clean session 0) on A: CONNACK 0, no session yet",
          d2.connack == (0, 0), d2.connack)
    check("dev2 subscribed u/# at QoS 1", d2.granted == [1], d2.granted)
    d2.close()

    released(r, "dev1")
    pttl = r.integer("PTTL", key("session", "dev1"))
    check("dev1 released: its session hash's TTL is the expiry + 60 s (3600 s < PTTL <= 3660 s)",
          pttl is not None and EXPIRY * 1000 < pttl <= EXPIRY * 1000 + 60000, pttl)
    rec = hget(r, "dev1", "record")
    check(f"HGET {key('session', 'dev1')} record: non-empty, holds t/#", b"t/#" in rec, rec[:80])
    owner = hget(r, "dev1", "owner").decode(errors="replace")
    check("its owner is A's node id", owner and owner == a.node_id(), f"{owner!r}, A {a.node_id()}")
    token = hget(r, "dev1", "token")
    check("its token is a positive integer", token.isdigit() and int(token) > 0, token)
    check("dev2's session is in Redis, its record holds u/#",
          wait_for(lambda: b"u/#" in hget(r, "dev2", "record"), 5), hget(r, "dev2", "record"))
    time.sleep(0.3)  # dev2's DISCONNECT taken (a 3.1.1 session has no TTL to watch)

    items = [("t/a", f"m{i}") for i in range(200)] + [("u/a", f"n{i}") for i in range(100)]
    p = publish_all(a.mqtt, "pub-1", items)
    acked = set(p.acked)
    check("A acknowledged all 300 QoS 1 publishes (PUBACK success)",
          len(acked) == 300 and not p.refused,
          f"{len(acked)} acked, refused {p.refused[:5]}, {len(p.pending)} unanswered")
    q1, q2 = stored(r, "dev1"), stored(r, "dev2")
    check("sync: each was in Redis before its PUBACK (dev1's queue + inflight 200, dev2's 100)",
          q1 == 200 and q2 == 100, (q1, q2))

    ctx.kill(a)
    check("A SIGKILLed", not a.alive())

    d1 = Sub(b.mqtt, "dev1", 5)
    check("dev1 on B (clean start 0): CONNACK 0, session present 1", d1.connack == (0, 1),
          d1.connack)
    want1 = {p for p in acked if p.startswith("m")}
    received_all(d1, want1, f"dev1 gets every message A acknowledged ({len(want1)})")
    d2 = Sub(b.mqtt, "dev2", 4)
    check("dev2 on B (3.1.1, clean session 0): CONNACK 0, session present 1",
          d2.connack == (0, 1), d2.connack)
    want2 = {p for p in acked if p.startswith("n")}
    received_all(d2, want2, f"dev2 gets every message A acknowledged ({len(want2)})")
    time.sleep(0.3)  # room for duplicates to show
    no_duplicates(d1, "dev1: no duplicates but QoS 1 resends (DUP)")
    no_duplicates(d2, "dev2: no duplicates but QoS 1 resends (DUP)")
    in_order(d1, "m", "dev1 got them in the order published")
    in_order(d2, "n", "dev2 got them in the order published")

    p = publish_all(b.mqtt, "pub-1b", [("t/live", "live-t"), ("u/live", "live-u")])
    check("a message published through B to t/live reaches dev1 (subscription live on B)",
          wait_for(lambda: "live-t" in d1.payloads(), 5), d1.msgs[-3:])
    check("one published through B to u/live reaches dev2",
          wait_for(lambda: "live-u" in d2.payloads(), 5), d2.msgs[-3:])
    d1.close()
    d2.close()


def sigkill_midstream(ctx):
    r, b = ctx.r, ctx.b
    a2 = ctx.start("a2")
    d = Sub(a2.mqtt, "dev1m", 5, subscribe="v/#")
    check("dev1m (5.0, expiry 3600) subscribed v/# on A2", d.connack == (0, 0) and
          d.granted == [1], (d.connack, d.granted))
    d.close()
    released(r, "dev1m")

    p = Publisher(a2.mqtt, "pub-1m")
    p.mark = 100
    stop = threading.Event()
    # 800 at most, 500 a second at most: well within the session's queue (QUEUE),
    # and A2 dies mid-stream (the reader thread says when the 100th PUBACK came)
    t = threading.Thread(target=stream, args=(p, "v/a", "k", stop, 800, 0.002), daemon=True)
    t.start()
    reached = p.marked.wait(15)
    ctx.kill(a2)
    stop.set()
    t.join(TIMEOUT)
    wait_for(lambda: p.closed, 5)  # PUBACKs A2 sent before it died are still read
    p.close()
    acked = set(p.acked)
    check("A2 SIGKILLed mid-stream, after 100 PUBACKs or more", reached and not a2.alive() and
          len(p.sent) < 800, f"{len(acked)} acked, {len(p.sent)} sent of 800")
    print(f"     {len(acked)} acknowledged of {len(p.sent)} sent when A2 died", flush=True)

    d = Sub(b.mqtt, "dev1m", 5)
    check("dev1m on B: CONNACK 0, session present 1", d.connack == (0, 1), d.connack)
    received_all(d, acked, f"every message that got a PUBACK from A2 ({len(acked)}) "
                           "reaches dev1m on B")
    time.sleep(0.3)
    no_duplicates(d, "dev1m: no duplicates but QoS 1 resends (DUP)")
    extra = d.payloads() - acked
    print(f"     and {len(extra)} of those A2 took without a PUBACK", flush=True)
    d.close()


def takeover(ctx):
    r, b = ctx.r, ctx.b
    a3 = ctx.a3()
    old = Raw(a3.mqtt, "dev3", 5, clean=False, expiry=EXPIRY)
    check("dev3 (raw 5.0, expiry 3600) on A3: CONNACK 0", old.code == 0, old.code)
    check("subscribed k/# at QoS 1", old.subscribe("k/#", 1) == 1)
    check("its record in Redis holds k/# while it is connected",
          wait_for(lambda: b"k/#" in hget(r, "dev3", "record"), 5), hget(r, "dev3", "record"))
    lease = r.integer("PTTL", key("session", "dev3")) or 0
    check("while connected its keys hold the owner's lease: the expiry + 3600 s + 60 s "
          "(so a node that dies with it connected does not keep it forever)",
          7200000 < lease <= 7260000, lease)

    new = Sub(b.mqtt, "dev3", 5)
    check("dev3 on B (clean start 0): CONNACK 0, session present 1", new.connack == (0, 1),
          new.connack)
    t0 = time.monotonic()
    how = old.wait_end(5)
    check("the connection on A3 ends within 5 s of the takeover with DISCONNECT 0x8e "
          "(Session taken over)", how == "DISCONNECT 0x8e", how)
    print(f"     A3 ended it after {(time.monotonic() - t0) * 1000:.0f} ms", flush=True)
    check("the session's owner in Redis is B",
          hget(r, "dev3", "owner").decode(errors="replace") == b.node_id(),
          hget(r, "dev3", "owner"))

    pa = publish_all(a3.mqtt, "pub-3a", [("k/a", f"a{i}") for i in range(50)])
    pb = publish_all(b.mqtt, "pub-3b", [("k/b", f"b{i}") for i in range(50)])
    check("A3 and B acknowledged their 50 each", len(set(pa.acked)) == 50 and
          len(set(pb.acked)) == 50, (len(pa.acked), len(pb.acked)))
    want_a, want_b = {f"a{i}" for i in range(50)}, {f"b{i}" for i in range(50)}
    want = want_b | (want_a if FORWARDING else set())
    wait_msgs(new, want)
    time.sleep(0.5)  # room for duplicates to show
    counts = new.counts()
    bad = {p: counts[p] for p in want_b if counts[p] != 1}
    check("dev3 on B gets each of the 50 published through B exactly once", not bad,
          f"{len(bad)} not once: {some(bad)}")
    if FORWARDING:
        bad = {p: counts[p] for p in want_a if counts[p] != 1}
        check("dev3 on B gets each of the 50 published through A3 exactly once", not bad,
              f"{len(bad)} not once: {some(bad)}")
    else:
        skip("dev3 on B gets each of the 50 published through A3 exactly once")
    old.drain(1.0)
    check("the old connection on A3 got nothing after the takeover", not old.publishes,
          f"{len(old.publishes)}: {old.publishes[:5]}")
    old.close(disconnect=False)

    # Messages queued on A3 while dev3 is offline there, then resumed on B.
    new.close()
    released(r, "dev3")
    d = Sub(a3.mqtt, "dev3", 5)
    check("dev3 back on A3: session present 1", d.connack == (0, 1), d.connack)
    d.close()
    check("released by A3, its owner", released(r, "dev3") and
          hget(r, "dev3", "owner").decode(errors="replace") == a3.node_id(),
          hget(r, "dev3", "owner"))
    p = publish_all(a3.mqtt, "pub-3q", [("k/q", f"q{i}") for i in range(20)])
    want_q = {f"q{i}" for i in range(20)}
    check("A3 acknowledged 20 for offline dev3", set(p.acked) == want_q, len(p.acked))
    check("they are dev3's 20 entries in Redis", wait_for(lambda: stored(r, "dev3") == 20, 5),
          stored(r, "dev3"))
    n2 = Sub(b.mqtt, "dev3", 5)
    check("dev3 on B again: session present 1", n2.connack == (0, 1), n2.connack)
    wait_msgs(n2, want_q)
    time.sleep(0.5)
    counts = n2.counts()
    bad = {p: counts[p] for p in want_q if counts[p] != 1}
    check("dev3 on B gets each of the 20 queued on A3 exactly once", not bad,
          f"{len(bad)} not once: {some(bad)}")
    again = set(counts) - want_q
    check("and nothing delivered before comes again", not again, some(again))
    n2.close()


def takeover_will(ctx):
    """A takeover from another node closes the old connection as a local one
    would: its will goes out when it has no delay, not when it has one."""
    a3, b = ctx.a3(), ctx.b
    watch = Sub(a3.mqtt, "will-watch", clean=True, expiry=0, subscribe="wills/#")
    for delay, cid in ((0, "dev7"), (30, "dev8")):
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        wp = Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = delay
        c.will_set(f"wills/{cid}", f"gone-{cid}", qos=1, properties=wp)
        cp = Properties(PacketTypes.CONNECT)
        cp.SessionExpiryInterval = EXPIRY
        up = []
        c.on_connect = lambda *a: up.append(1)
        c.connect("127.0.0.1", a3.mqtt, clean_start=False, properties=cp)
        c.loop_start()
        wait_for(lambda: up, TIMEOUT)
        new = Sub(b.mqtt, cid)
        check(f"{cid} (will delay {delay}) taken over by B: CONNACK 0", new.connack == (0, 1),
              new.connack)
        got = wait_for(lambda: f"gone-{cid}" in watch.payloads(), 3)
        if delay == 0:
            check(f"{cid}: A3 publishes its will (no delay) when it ends the connection", got)
        else:
            check(f"{cid}: no will (delay {delay} s, the client is back on B)", not got)
        c.loop_stop()
        new.close()


def redis_restart(ctx):
    r, b = ctx.r, ctx.b
    a3 = ctx.a3()
    d = Sub(a3.mqtt, "dev4", 5, subscribe="s/#")
    check("dev4 (5.0, expiry 3600) subscribed s/# on A3", d.connack == (0, 0) and
          d.granted == [1], (d.connack, d.granted))
    d.close()
    released(r, "dev4")
    d4 = None
    if FORWARDING:
        d4 = Sub(b.mqtt, "dev4", 5)
        check("dev4 on B during the stream: session present 1", d4.connack == (0, 1),
              d4.connack)

    p = Publisher(a3.mqtt, "pub-4")
    stop = threading.Event()
    # 700 at most (200 a second): well within the session's queue (QUEUE)
    t = threading.Thread(target=stream, args=(p, "s/a", "r", stop, 700, 0.005), daemon=True)
    t.start()
    time.sleep(0.7)
    before = len(p.acked)
    r.kill()
    time.sleep(0.3)
    down1 = len(p.acked)
    time.sleep(0.7)
    down2 = len(p.acked)
    r.start()
    time.sleep(1.0)
    stop.set()
    t.join(TIMEOUT)
    done = p.wait_all(20)
    p.close()
    print(f"     {before} acknowledged before Redis died, {len(p.sent)} sent in all", flush=True)
    check("no node crashed (A3 and B running)", a3.alive() and b.alive())
    if FORWARDING:
        skip("sync: no PUBACK while Redis is down",
             "dev4 is on B: when A3 acknowledges a forwarded message is forwarding's design")
    else:
        check("sync: no PUBACK while Redis is down", before > 0 and down1 == down2,
              f"{before} before, {down1} then {down2} while down")
    check("every publish acknowledged once Redis was back (within 20 s)",
          done and not p.refused and len(set(p.acked)) == len(p.sent),
          f"{len(p.acked)} of {len(p.sent)} acked, refused {p.refused[:5]}")
    acked = set(p.acked)
    if not FORWARDING:
        check("dev4's entries in Redis: one at least for each acknowledged message",
              wait_for(lambda: (stored(r, "dev4") or 0) >= len(acked), 5),
              f"{stored(r, 'dev4')} stored, {len(acked)} acked")
        d4 = Sub(b.mqtt, "dev4", 5)
        check("dev4 on B: session present 1", d4.connack == (0, 1), d4.connack)
    received_all(d4, acked, f"dev4 receives every acknowledged message ({len(acked)})", 15)
    dups = sum(n - 1 for n in d4.counts().values() if n > 1)
    print(f"     {dups} duplicates (QoS 1 allows them)", flush=True)
    d4.close()


def unreachable(ctx):
    port = free_port()
    r2 = Redis(os.path.join(ctx.tmp, "redis2"), port)
    ctx.redises.append(r2)
    c = ctx.start("c", f"redis://127.0.0.1:{port}/0")
    check("node C starts with its Redis unreachable", c.alive())
    code = connack(c.mqtt, "c-clean5", 5, True)[0]
    check("a clean 5.0 session (clean start 1, expiry 0): CONNACK 0", code == 0, code)
    code = connack(c.mqtt, "c-clean4", 4, True)[0]
    check("a clean 3.1.1 session (clean session 1): CONNACK 0", code == 0, code)
    code = connack(c.mqtt, "c-p5", 5, False, EXPIRY)[0]
    check("a persistent 5.0 session: CONNACK 0x88 (Server unavailable)", code == 0x88, code)
    code = connack(c.mqtt, "c-p4", 4, False)[0]
    check("a persistent 3.1.1 session: CONNACK 3 (Server unavailable)", code == 3, code)

    r2.start()
    t0 = time.monotonic()
    ok = wait_for(lambda: connack(c.mqtt, "c-p5", 5, False, EXPIRY, 2)[0] == 0, 10, 0.2)
    check("within 10 s of Redis starting, a persistent 5.0 CONNECT succeeds", ok)
    print(f"     after {time.monotonic() - t0:.1f} s", flush=True)
    check("its session is in that Redis", wait_for(
        lambda: r2.integer("EXISTS", key("session", "c-p5")) == 1, 5))
    code = connack(c.mqtt, "c-p4", 4, False)[0]
    check("and a persistent 3.1.1 CONNECT: CONNACK 0", code == 0, code)


def durability_none(ctx):
    r = ctx.r
    d = ctx.start("d", durability="none")
    e = ctx.start("e", durability="none")
    s = Sub(d.mqtt, "dev5", 5, subscribe="n/#")
    check("durability none: dev5 subscribed n/# on D", s.connack == (0, 0) and
          s.granted == [1], (s.connack, s.granted))
    s.close()
    check("durability none: the session is in Redis, its record holds n/#",
          released(r, "dev5") and b"n/#" in hget(r, "dev5", "record"),
          hget(r, "dev5", "record"))
    want = {f"x{i}" for i in range(10)}
    p = publish_all(d.mqtt, "pub-5", [("n/a", x) for x in sorted(want)])
    check("D acknowledged 10 for offline dev5", set(p.acked) == want, len(p.acked))
    check("durability none: no message of dev5's is written to Redis",
          stored(r, "dev5") == 0, stored(r, "dev5"))
    s = Sub(e.mqtt, "dev5", 5)
    check("durability none: dev5 resumes on E with session present 1", s.connack == (0, 1),
          s.connack)
    time.sleep(1.0)
    check("durability none: the 10 queued on D while dev5 was offline are not carried to E "
          "(none keeps messages out of Redis)", not (s.payloads() & want),
          some(s.payloads() & want))
    publish_all(e.mqtt, "pub-5e", [("n/live", "live-n")])
    check("durability none: the subscription is live on E (a new message through E arrives)",
          wait_for(lambda: "live-n" in s.payloads(), 5), s.msgs[-3:])
    s.close()


def clean_start(ctx):
    r, b = ctx.r, ctx.b
    a3 = ctx.a3()
    s = Sub(a3.mqtt, "dev6", 5, subscribe="c/#")
    check("dev6 (5.0, expiry 3600) subscribed c/# on A3", s.connack == (0, 0) and
          s.granted == [1], (s.connack, s.granted))
    s.close()
    released(r, "dev6")
    publish_all(a3.mqtt, "pub-6", [("c/a", f"c{i}") for i in range(5)])
    check("dev6's session holds 5 queued messages in Redis",
          wait_for(lambda: stored(r, "dev6") == 5, 5), stored(r, "dev6"))

    s = Sub(b.mqtt, "dev6", 5, clean=True, expiry=0)
    check("dev6 on B with clean start 1, expiry 0: CONNACK 0, session present 0",
          s.connack == (0, 0), s.connack)
    time.sleep(0.5)
    check("nothing of the discarded session is delivered", not s.msgs, s.msgs[:5])
    s.close()

    def keys(cid):
        return [r.integer("EXISTS", key(k, cid)) for k in ("session", "queue", "inflight")]

    check("once it disconnects, dev6's keys are gone from Redis (session, queue, inflight)",
          wait_for(lambda: keys("dev6") == [0, 0, 0], 5), keys("dev6"))
    s = Sub(b.mqtt, "dev6", 5, clean=False, expiry=EXPIRY)
    check("a later clean start 0 connect: session present 0", s.connack == (0, 0), s.connack)
    publish_all(b.mqtt, "pub-6b", [("c/b", "after")])
    time.sleep(0.5)
    check("and the discarded subscription is gone (c/b not delivered)",
          "after" not in s.payloads(), s.msgs[:5])
    s.close()

    check("dev2's persistent session (3.1.1) is in Redis", keys("dev2")[0] == 1, keys("dev2"))
    s = Sub(b.mqtt, "dev2", 4, clean=True)
    check("dev2 on B with clean session 1: CONNACK 0, session present 0", s.connack == (0, 0),
          s.connack)
    s.close()
    check("once it disconnects, dev2's keys are gone from Redis",
          wait_for(lambda: keys("dev2") == [0, 0, 0], 5), keys("dev2"))


def metrics(ctx):
    status, body = ctx.b.get("/metrics")
    lines = [x for x in (body or "").splitlines() if x.startswith("bulwark_redis_session")]
    check("B's /metrics has bulwark_redis_session* lines", status == 200 and lines,
          f"{status} {len(body or '')} bytes")
    for x in lines[:12]:
        print(f"     {x}", flush=True)


def run(name, fn, ctx):
    print(f"---- {name}", flush=True)
    t0 = time.monotonic()
    try:
        fn(ctx)
    except NodeFailed as e:
        check(f"{name}: its nodes start", False, e)
    except Exception:
        check(f"{name}: runs to its end", False, traceback.format_exc(limit=4))
    print(f"     ({time.monotonic() - t0:.1f} s)", flush=True)


def main():
    if not FORWARDING:
        print("cluster forwarding not assumed: BW_REDIS_SESSIONS_FORWARDING=1 adds its checks",
              flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        r = Redis(os.path.join(tmp, "redis"), free_port())
        r.start()
        ctx = Ctx(tmp, r, f"redis://127.0.0.1:{r.port}/0")
        try:
            try:
                ctx.a, ctx.b = ctx.start("a"), ctx.start("b")
            except NodeFailed as e:
                check("nodes A and B start with redis and session_durability", False, e)
            else:
                for name, fn in [("1. SIGKILL resume (sync)", sigkill_resume),
                                 ("1b. SIGKILL mid-stream", sigkill_midstream),
                                 ("2. takeover between nodes", takeover),
                                 ("2b. takeover and wills", takeover_will),
                                 ("3. Redis restarted during traffic", redis_restart),
                                 ("4. Redis unreachable at node start", unreachable),
                                 ("5. session_durability=none", durability_none),
                                 ("6. clean start", clean_start),
                                 ("7. metrics", metrics)]:
                    run(name, fn, ctx)
        finally:
            for c in CLIENTS:
                try:
                    c.close()
                except Exception:
                    pass
            print("---- stop", flush=True)
            for n in ctx.nodes:
                if n.name in ctx.killed:
                    n.kill()
                    continue
                rc = n.stop()
                check(f"node {n.name}: SIGTERM: exit 0", rc == 0, rc)
            for x in ctx.redises:
                if x.proc:
                    x.kill()
    print(f"{passed} passed, {len(failures)} failed")
    if failures:
        print("failed: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
