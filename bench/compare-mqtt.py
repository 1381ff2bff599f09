#!/usr/bin/python3
"""Compare Bulwark with Mosquitto under the same Python MQTT 3.1.1 load.

Stdlib only: a minimal raw-socket MQTT 3.1.1 client (CONNECT, SUBSCRIBE,
PUBLISH QoS 0/1, PUBACK) that counts PUBLISHes by parsing fixed headers.
Both brokers are started here on free loopback ports, one fresh broker
process per run, alternating brokers, and killed at the end.

Scenarios (64-byte payloads):
  fanin-q0  N publisher processes -> 1 subscriber, QoS 0
  fanin-q1  N publisher processes -> 1 subscriber, QoS 1 (pipelined window)
  fanout-q0 1 publisher -> S subscribers (a few processes, many sockets), QoS 0

Per run: messages (deliveries) per second at the subscriber(s) from the
first to the last one received, received/sent, the broker's CPU time
(utime+stime from /proc/PID/stat between "go" and the end) per delivery,
and its peak RSS (VmHWM). The load generator is Python: its throughput is
likely the ceiling, the broker CPU per message is not.

  /usr/bin/python3 bench/compare-mqtt.py --runs 3 [--json out.json]
"""

import argparse
import json
import multiprocessing as mp
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BULWARK = os.path.join(ROOT, "build-release", "bin", "bulwark")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD = 64
CTX = mp.get_context("fork")

# ---------------------------------------------------------------- MQTT codec


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_pkt(client_id, keepalive=120):
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", keepalive) + mqtt_str(client_id)
    return packet(0x10, body)


def subscribe_pkt(pid, topic, qos):
    return packet(0x82, struct.pack(">H", pid) + mqtt_str(topic) + bytes([qos]))


def publish_pkt(topic, payload, qos=0, pid=0):
    body = mqtt_str(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return packet(0x30 | (qos << 1), body)


def make_payload(pubid, seq):
    head = struct.pack(">HI", pubid, seq)
    return head + b"x" * (PAYLOAD - len(head))


def read_packet(sock, buf, deadline):
    """Blocking read of one whole packet (handshake only). Returns (first, body)."""
    while True:
        if len(buf) >= 2:
            rl, mult, i = 0, 1, 1
            complete = False
            while i < len(buf):
                c = buf[i]
                rl += (c & 0x7F) * mult
                i += 1
                if c < 0x80:
                    complete = True
                    break
                mult *= 128
            if complete and len(buf) >= i + rl:
                first, body = buf[0], bytes(buf[i:i + rl])
                del buf[:i + rl]
                return first, body
        if time.monotonic() > deadline:
            raise TimeoutError("handshake timed out")
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by broker during handshake")
        buf += data


def mqtt_connect(port, client_id, deadline):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect_pkt(client_id))
    buf = bytearray()
    first, body = read_packet(s, buf, deadline)
    if first != 0x20 or len(body) != 2 or body[1] != 0:
        raise ConnectionError("bad CONNACK %r %r" % (first, body))
    return s, buf


def mqtt_subscribe(s, buf, topic, qos, deadline):
    s.sendall(subscribe_pkt(1, topic, qos))
    first, body = read_packet(s, buf, deadline)
    if first != 0x90 or body[2] > 2:
        raise ConnectionError("bad SUBACK %r %r" % (first, body))


class Counter:
    """Counts PUBLISHes in a byte stream; for QoS 1 also acks them and keeps
    the (publisher, seq) pairs to count unique messages."""

    __slots__ = ("buf", "received", "seen", "acks", "first", "last", "track")

    def __init__(self, buf, track):
        self.buf = buf
        self.received = 0
        self.seen = set() if track else None
        self.acks = []
        self.first = None
        self.last = None
        self.track = track

    def feed(self, data, now):
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        got = 0
        seen = self.seen
        acks = self.acks
        while n - pos >= 2:
            b0 = buf[pos]
            i = pos + 1
            c = buf[i]
            if c < 0x80:
                rl = c
                i += 1
            else:
                rl, mult = 0, 1
                while True:
                    if i >= n:
                        rl = -1
                        break
                    c = buf[i]
                    rl += (c & 0x7F) * mult
                    i += 1
                    if c < 0x80:
                        break
                    mult *= 128
                if rl < 0:
                    break
            end = i + rl
            if end > n:
                break
            if b0 & 0xF0 == 0x30:
                got += 1
                qos = (b0 >> 1) & 3
                if qos or seen is not None:
                    tlen = (buf[i] << 8) | buf[i + 1]
                    off = i + 2 + tlen
                    if qos:
                        acks.append(b"\x40\x02" + bytes(buf[off:off + 2]))
                        off += 2
                    if seen is not None:
                        seen.add(bytes(buf[off:off + 6]))
            pos = end
        if pos:
            del buf[:pos]
        if got:
            if self.first is None:
                self.first = now
            self.last = now
            self.received += got
        return got


# ------------------------------------------------------------------ workers


def publisher(port, idx, topic, count, qos, window, ready_q, go, done, res_q, timeout):
    out = {"idx": idx, "sent": 0, "acked": 0, "error": None}
    s = None
    try:
        deadline = time.monotonic() + 15
        s, buf = mqtt_connect(port, "pub-%d-%d" % (os.getpid(), idx), deadline)
        pkts = [publish_pkt(topic, make_payload(idx, k), qos, (k % 65535) + 1 if qos else 0)
                for k in range(count)]
        ready_q.put(("pub", idx))
        if not go.wait(30):
            raise TimeoutError("no go signal")
        deadline = time.monotonic() + timeout
        out["t0"] = time.monotonic()
        if qos == 0:
            blob = b"".join(pkts)
            s.settimeout(timeout)
            view = memoryview(blob)
            for off in range(0, len(blob), 65536):
                s.sendall(view[off:off + 65536])
            out["sent"] = count
        else:
            sent = acked = 0
            rbuf = bytearray()
            while acked < count:
                if sent < count and sent - acked < window:
                    m = min(count, acked + window)
                    s.sendall(b"".join(pkts[sent:m]))
                    sent = m
                    out["sent"] = sent
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("PUBACKs: %d of %d after %.0f s" % (acked, count, timeout))
                s.settimeout(min(left, 5))
                data = s.recv(262144)
                if not data:
                    raise ConnectionError("closed by broker after %d acks" % acked)
                rbuf += data
                # PUBACKs are 4 bytes each: 0x40 0x02 id id
                n = len(rbuf) // 4
                for j in range(n):
                    if rbuf[4 * j] != 0x40:
                        raise ConnectionError("unexpected packet type 0x%02x" % rbuf[4 * j])
                acked += n
                out["acked"] = acked
                del rbuf[:4 * n]
        out["t1"] = time.monotonic()
        done.wait(timeout + 10)
        try:
            s.sendall(b"\xe0\x00")
        except OSError:
            pass
    except Exception as e:  # reported, never hidden
        out["error"] = "%s: %s" % (type(e).__name__, e)
        ready_q.put(("pub-error", idx))
    finally:
        if s:
            s.close()
        res_q.put(("pub", out))


def subscribers(port, idx, nsock, filt, qos, expected, ready_q, go, res_q, timeout, idle):
    """One process holding nsock subscriber sockets; each expects `expected`."""
    out = {"idx": idx, "sockets": nsock, "received": 0, "unique": None,
           "first": None, "last": None, "error": None, "per_socket": []}
    socks = []
    try:
        deadline = time.monotonic() + 30
        counters = {}
        for k in range(nsock):
            s, buf = mqtt_connect(port, "sub-%d-%d-%d" % (os.getpid(), idx, k), deadline)
            mqtt_subscribe(s, buf, filt, qos, deadline)
            socks.append(s)
            counters[s] = Counter(buf, track=(qos == 1))
        ready_q.put(("sub", idx))
        if not go.wait(30):
            raise TimeoutError("no go signal")
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        open_ = set(socks)
        hard = time.monotonic() + timeout
        last_data = time.monotonic()
        errors = []
        while open_:
            now = time.monotonic()
            if now > hard:
                errors.append("time limit %.0f s" % timeout)
                break
            if now - last_data > idle:
                errors.append("idle %.0f s" % idle)
                break
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data = None
                    errors.append("recv: %s" % e)
                now = time.monotonic()
                c = counters[s]
                if not data:
                    if data is not None:
                        errors.append("socket %d closed by broker after %d" %
                                      (socks.index(s), c.received))
                    sel.unregister(s)
                    open_.discard(s)
                    continue
                last_data = now
                c.feed(data, now)
                if c.acks:
                    s.setblocking(True)
                    s.sendall(b"".join(c.acks))
                    s.setblocking(False)
                    c.acks.clear()
                if c.received >= expected:
                    sel.unregister(s)
                    open_.discard(s)
        cs = list(counters.values())
        out["received"] = sum(c.received for c in cs)
        out["per_socket"] = [c.received for c in cs]
        if qos == 1:
            out["unique"] = sum(len(c.seen) for c in cs)
        firsts = [c.first for c in cs if c.first is not None]
        lasts = [c.last for c in cs if c.last is not None]
        out["first"] = min(firsts) if firsts else None
        out["last"] = max(lasts) if lasts else None
        if errors:
            out["error"] = "; ".join(sorted(set(errors))[:5])
        for s in socks:
            try:
                s.setblocking(True)
                s.sendall(b"\xe0\x00")
            except OSError:
                pass
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
        ready_q.put(("sub-error", idx))
    finally:
        for s in socks:
            s.close()
        res_q.put(("sub", out))


# ------------------------------------------------------------------ brokers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, deadline):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    def __init__(self, kind, tmp, args):
        self.kind = kind
        self.tmp = tmp
        self.args = args
        self.proc = None
        self.port = None

    def start(self):
        d = tempfile.mkdtemp(prefix=self.kind + "-", dir=self.tmp)
        self.log = os.path.join(d, "log")
        deadline = time.monotonic() + 15
        if self.kind == "bulwark":
            argv = [self.args.bulwark,
                    "--set", "listen=mqtt 127.0.0.1:0 allow_anonymous=true",
                    "--set", "workers=1",
                    "--set", "max_inflight=65535",
                    "--set", "max_queued_messages=1000000",
                    "--set", "state_dir=" + d,
                    "--set", "log_file=" + self.log]
            for kv in self.args.bulwark_set:
                argv += ["--set", kv]
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.log + ".err", "w"))
            while time.monotonic() < deadline and self.port is None:
                if os.path.exists(self.log):
                    with open(self.log) as f:
                        m = re.search(r"listening: mqtt \S+ \(port (\d+)\)", f.read())
                    if m:
                        self.port = int(m.group(1))
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            self.port = free_port()
            conf = os.path.join(d, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
                        "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n" % self.port)
            self.proc = subprocess.Popen([self.args.mosquitto, "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        if self.port is None or not wait_port(self.port, self.proc, deadline):
            self.stop()
            raise SystemExit("%s did not start (log %s)" % (self.kind, self.log))
        return self

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    def sched_ns(self):
        """Sum of the threads' on-CPU time in ns (/proc/PID/task/*/schedstat)."""
        total = 0
        for t in os.listdir("/proc/%d/task" % self.proc.pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (self.proc.pid, t)) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
        return total

    def status_kb(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.proc.pid))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


# ---------------------------------------------------------------- scenarios


def run_scenario(broker, sc, a):
    """Runs one scenario against a started broker; returns a result dict."""
    ready_q, res_q = CTX.Queue(), CTX.Queue()
    go, done = CTX.Event(), CTX.Event()
    qos = sc["qos"]
    procs = []
    if sc["kind"] == "fanin":
        npub, per_pub = a.publishers, (a.q0_count if qos == 0 else a.q1_count)
        sent_total = npub * per_pub
        expected_per_sock = sent_total
        sub_groups = [1]
        filt = "bench/fanin/#"
        topics = ["bench/fanin/%d" % i for i in range(npub)]
    else:
        npub, per_pub = 1, a.fanout_count
        sent_total = per_pub
        expected_per_sock = per_pub
        base, extra = divmod(a.subscribers, a.sub_procs)
        sub_groups = [base + (1 if i < extra else 0) for i in range(a.sub_procs)]
        filt = "bench/fanout"
        topics = ["bench/fanout"]
    deliveries_expected = expected_per_sock * sum(sub_groups)
    for i, n in enumerate(sub_groups):
        procs.append(CTX.Process(target=subscribers, args=(
            broker.port, i, n, filt, qos, expected_per_sock, ready_q, go, res_q, a.timeout, a.idle)))
    for i in range(npub):
        procs.append(CTX.Process(target=publisher, args=(
            broker.port, i, topics[i % len(topics)], per_pub, qos, a.window, ready_q, go, done, res_q, a.timeout)))
    for p in procs:
        p.start()
    result = {"broker": broker.kind, "scenario": sc["name"], "sent": sent_total,
              "expected": deliveries_expected, "errors": []}
    nready = 0
    deadline = time.monotonic() + 60
    while nready < len(procs) and time.monotonic() < deadline:
        try:
            what, _ = ready_q.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            break
        if what.endswith("error"):
            result["errors"].append("a client failed to connect/subscribe")
            break
        nready += 1
    cpu0 = broker.cpu_ticks()
    ns0 = broker.sched_ns()
    t_go = time.monotonic()
    go.set()
    subs, pubs = [], []
    deadline = time.monotonic() + a.timeout + a.idle + 30
    while len(subs) < len(sub_groups) and time.monotonic() < deadline:
        try:
            what, out = res_q.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            break
        (subs if what == "sub" else pubs).append(out)
    t_end = time.monotonic()
    alive = broker.alive()
    cpu1 = broker.cpu_ticks() if alive else None
    ns1 = broker.sched_ns() if alive else None
    hwm = broker.status_kb("VmHWM") if alive else None
    result["broker_threads"] = broker.threads() if alive else None
    done.set()
    deadline = time.monotonic() + 20
    while len(pubs) < npub and time.monotonic() < deadline:
        try:
            what, out = res_q.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            break
        (subs if what == "sub" else pubs).append(out)
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            result["errors"].append("client process %d hung; terminated" % p.pid)
            p.terminate()
            p.join(5)
    received = sum(s["received"] for s in subs)
    firsts = [s["first"] for s in subs if s["first"] is not None]
    lasts = [s["last"] for s in subs if s["last"] is not None]
    span = (max(lasts) - min(firsts)) if firsts else 0.0
    result.update({
        "received": received,
        "unique": sum(s["unique"] for s in subs) if qos == 1 else None,
        "pub_sent": sum(p["sent"] for p in pubs),
        "pub_acked": sum(p["acked"] for p in pubs) if qos == 1 else None,
        "span_s": span,
        "rate": (received - 1) / span if span > 0 else None,
        "go_to_last_s": (max(lasts) - t_go) if lasts else None,
        "wall_s": t_end - t_go,
        "loss": 1.0 - received / deliveries_expected,
        "cpu_s": (cpu1 - cpu0) / CLK_TCK if cpu1 is not None else None,
        "sched_cpu_s": (ns1 - ns0) / 1e9 if ns1 is not None else None,
        "go_rate": (received / (max(lasts) - t_go)) if lasts else None,
        "peak_rss_kb": hwm,
        "broker_alive": alive,
    })
    result["cpu_us_per_delivery"] = (result["cpu_s"] * 1e6 / received
                                     if received and result["cpu_s"] is not None else None)
    result["sched_us_per_delivery"] = (result["sched_cpu_s"] * 1e6 / received
                                       if received and result["sched_cpu_s"] is not None else None)
    for s in subs:
        if s["error"]:
            result["errors"].append("subscriber proc %d: %s" % (s["idx"], s["error"]))
    for p in pubs:
        if p["error"]:
            result["errors"].append("publisher %d: %s" % (p["idx"], p["error"]))
    if len(subs) < len(sub_groups):
        result["errors"].append("%d subscriber process(es) reported nothing" % (len(sub_groups) - len(subs)))
    if not alive:
        result["errors"].append("BROKER DIED: exit code %r" % broker.proc.returncode)
    if qos == 1 and received < deliveries_expected:
        result["errors"].append("QoS 1 LOSS: %d of %d received" % (received, deliveries_expected))
    return result


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bulwark", default=DEFAULT_BULWARK)
    ap.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    ap.add_argument("--scenarios", default="fanin-q0,fanin-q1,fanout-q0")
    ap.add_argument("--publishers", type=int, default=10)
    ap.add_argument("--q0-count", type=int, default=20000, help="messages per publisher, QoS 0 fan-in")
    ap.add_argument("--q1-count", type=int, default=5000, help="messages per publisher, QoS 1 fan-in")
    ap.add_argument("--window", type=int, default=100, help="unacknowledged QoS 1 messages per publisher")
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--sub-procs", type=int, default=4)
    ap.add_argument("--fanout-count", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=90, help="per-run limit for clients, seconds")
    ap.add_argument("--idle", type=float, default=5, help="subscriber gives up after this long without data")
    ap.add_argument("--bulwark-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Bulwark setting, after the defaults above (repeatable)")
    ap.add_argument("--json")
    a = ap.parse_args()

    all_sc = {"fanin-q0": {"kind": "fanin", "qos": 0}, "fanin-q1": {"kind": "fanin", "qos": 1},
              "fanout-q0": {"kind": "fanout", "qos": 0}}
    scs = []
    for name in a.scenarios.split(","):
        scs.append(dict(all_sc[name], name=name))
    tmp = tempfile.mkdtemp(prefix="compare-mqtt-")
    results = []
    versions = {}
    try:
        versions["mosquitto"] = subprocess.run([a.mosquitto, "-h"], capture_output=True, text=True,
                                               timeout=10).stdout.splitlines()[0]
        for sc in scs:
            for r in range(a.runs):
                order = ["bulwark", "mosquitto"] if r % 2 == 0 else ["mosquitto", "bulwark"]
                for kind in order:
                    b = Broker(kind, tmp, a).start()
                    try:
                        res = run_scenario(b, sc, a)
                    finally:
                        rc = b.stop()
                    res["run"] = r
                    res["exit_code"] = rc
                    results.append(res)
                    print("%-9s %-9s run %d: %s/s (go->last %s/s)  recv %d/%d  cpu %s us/msg (schedstat %s)  rss %s MB  %s%s" % (
                        sc["name"], kind, r, fmt(res["rate"], ",.0f"), fmt(res["go_rate"], ",.0f"),
                        res["received"], res["expected"],
                        fmt(res["cpu_us_per_delivery"], ".2f"), fmt(res["sched_us_per_delivery"], ".2f"),
                        fmt(res["peak_rss_kb"] and res["peak_rss_kb"] / 1024, ".1f"),
                        "threads %s" % res["broker_threads"],
                        ("  ERRORS: " + " | ".join(res["errors"])) if res["errors"] else ""), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    unit = {"fanin": "msg", "fanout": "deliv"}
    lines = []
    hdr = "%-10s %-10s %11s %11s %15s %6s %8s %8s %7s %4s" % (
        "scenario", "broker", "rate/s", "go->last/s", "recv/expected", "loss%", "cpu us/d", "sch us/d",
        "RSS MB", "errs")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    summary = {}
    for sc in scs:
        for kind in ("bulwark", "mosquitto"):
            rs = [x for x in results if x["scenario"] == sc["name"] and x["broker"] == kind]
            s = {"rate": med([x["rate"] for x in rs]), "go_rate": med([x["go_rate"] for x in rs]),
                 "sched_us": med([x["sched_us_per_delivery"] for x in rs]),
                 "received": sum(x["received"] for x in rs), "expected": sum(x["expected"] for x in rs),
                 "loss_pct": med([100 * x["loss"] for x in rs]),
                 "cpu_us": med([x["cpu_us_per_delivery"] for x in rs]),
                 "rss_mb": med([x["peak_rss_kb"] / 1024 if x["peak_rss_kb"] else None for x in rs]),
                 "errors": sum(len(x["errors"]) for x in rs)}
            summary[(sc["name"], kind)] = s
            lines.append("%-10s %-10s %11s %11s %15s %6s %8s %8s %7s %4d" % (
                sc["name"], kind, fmt(s["rate"], ",.0f"), fmt(s["go_rate"], ",.0f"),
                "%d/%d" % (s["received"], s["expected"]), fmt(s["loss_pct"], ".2f"),
                fmt(s["cpu_us"], ".2f"), fmt(s["sched_us"], ".2f"), fmt(s["rss_mb"], ".1f"), s["errors"]))
        b, m = summary[(sc["name"], "bulwark")], summary[(sc["name"], "mosquitto")]
        ratio = lambda k: (b[k] / m[k]) if b[k] and m[k] else None
        lines.append("%-10s %-10s %11s %11s %15s %6s %8s %8s %7s" % (
            sc["name"], "B/M ratio", fmt(ratio("rate"), ".2f"), fmt(ratio("go_rate"), ".2f"), "", "",
            fmt(ratio("cpu_us"), ".2f"), fmt(ratio("sched_us"), ".2f"), fmt(ratio("rss_mb"), ".2f")))
    print()
    print("medians of %d runs (recv/expected summed); rate = deliveries/s at the subscriber(s), first to "
          "last; go->last = from the start signal; cpu us/d = broker utime+stime (/proc/PID/stat, %d Hz "
          "ticks) per delivery; sch us/d = same from /proc/PID/task/*/schedstat (ns); RSS = VmHWM"
          % (a.runs, CLK_TCK))
    print("\n".join(lines))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "versions": versions, "runs": results,
                       "summary": [dict(v, scenario=k[0], broker=k[1]) for k, v in summary.items()]},
                      f, indent=1)
    return 1 if any(not x["broker_alive"] or (x["scenario"].endswith("q1") and x["received"] < x["expected"])
                    for x in results) else 0


if __name__ == "__main__":
    sys.exit(main())
