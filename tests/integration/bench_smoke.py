#!/usr/bin/python3
"""Smoke test of bulwark-bench against a real node and against its sink.

Small runs (half a second each) of every load scenario against
build/bin/bulwark on an ephemeral port: each must pass its own checks
(exit 0), count every expected delivery and write the JSON figures;
`noisy` runs its quiet tenant and its flood on two more listeners, each
with its own tenant (flat out, and paced with fewer flood topics than
publishers, where every flood delivery must be counted too); QoS 1 fan-in
to a persistent subscriber (--session-expiry, 3.1.1 and 5.0), whose two
sessions the node must still hold when it stops. Then
the checks themselves: against `bulwark-bench sink`, which relays nothing,
a QoS 1 subscriber receives nothing and the run must report the loss and
exit 1, while QoS 0 reports it and exits 0; a refused connection fails the
run; bad command lines exit 2. Over TLS (a PKI made with the openssl CLI,
ECDSA P-256, and an mqtts listener): connect with full and with resumed
handshakes, QoS 0 fan-in and fan-out without loss, idle memory, a client
certificate, and a CA the broker's certificate does not chain to. Every run
is bounded.
Usage: bench_smoke.py BULWARK BULWARK_BENCH
"""
import json
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

BULWARK, BENCH = sys.argv[1], sys.argv[2]
SHORT = ["--seconds", "0.5", "--warmup", "0.2", "--no-progress"]
failures = []
passed = 0


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print("ok   %s" % name, flush=True)
    else:
        failures.append(name)
        print("FAIL %s %s" % (name, detail), flush=True)


def bench(tmp, args, timeout=40):
    """Runs bulwark-bench; returns (exit code, stdout, JSON or None)."""
    out = os.path.join(tmp, "run.json")
    if os.path.exists(out):
        os.unlink(out)
    p = subprocess.run([BENCH] + args + ["--json", out], capture_output=True, text=True,
                       timeout=timeout)
    doc = None
    if os.path.exists(out):
        with open(out) as f:
            doc = json.load(f)
    return p.returncode, p.stdout + p.stderr, doc


def counts_ok(doc):
    return (doc is not None and doc["ok"] and doc["lost"] == 0 and doc["duplicates"] == 0
            and doc["unique"] == doc["expected"] and doc["expected"] > 0
            and doc["received"] == doc["unique"])


def usage_errors():
    for args in (["fanin", "--qos", "3"], ["fanin", "--size", "8"], ["nope"],
                 ["pairs", "--publishers", "3", "--subscribers", "4"],
                 ["idle", "--publishers", "2"], ["fanin", "--port"],
                 ["latency", "--rate", "0"], ["fanin", "--source", "10.0.0.9-10.0.0.1"],
                 ["fanin", "--cafile", "ca.pem"], ["fanin", "--tls", "--tls-resume"],
                 ["connect", "--tls", "--cert", "c.pem"],
                 ["connect", "--tls", "--tls-version", "1.1"],
                 ["connect", "--tls", "--cafile", "/nonexistent/ca.pem"],
                 ["noisy"], ["fanin", "--flood-port", "1883"],
                 ["noisy", "--flood-port", "1883", "--flood-publishers", "2",
                  "--flood-subscribers", "3"],
                 ["fanin", "--session-expiry", "-1"], ["fanin", "--session-expiry", "4294967296"],
                 ["idle", "--session-expiry", "60"]):
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=10)
        check("usage error exits 2: %s" % " ".join(args), p.returncode == 2,
              "exit %d %s" % (p.returncode, p.stderr.strip()))


def against_node(tmp):
    proc, ports, log = node.start_node(BULWARK, tmp, [
        "listen=mqtt 127.0.0.1:0 allow_anonymous=true",
        "listen=mqtt 127.0.0.1:0 tenant=flood allow_anonymous=true",
        "listen=mqtt 127.0.0.1:0 tenant=quiet allow_anonymous=true",
        "workers=1", "state_dir=" + tmp])
    port = ["--port", str(ports[0]), "--pid", str(proc.pid)]
    try:
        runs = [
            ("fanin QoS 0", ["fanin", "--publishers", "4"]),
            ("fanin QoS 1 MQTT 5", ["fanin", "--publishers", "4", "--qos", "1", "--mqtt", "5"]),
            ("fanout QoS 2", ["fanout", "--subscribers", "20", "--qos", "2"]),
            ("pairs QoS 1, 2 threads", ["pairs", "--publishers", "8", "--qos", "1",
                                        "--threads", "2"]),
            ("shared QoS 1", ["shared", "--publishers", "4", "--subscribers", "3", "--qos", "1"]),
        ]
        for name, args in runs:
            rc, out, doc = bench(tmp, args + port + SHORT)
            check("%s: exit 0, every delivery counted once" % name, rc == 0 and counts_ok(doc),
                  out[-1500:])
            if doc:
                check("%s: JSON figures" % name,
                      doc["scenario"] == args[0] and doc["msgs_per_s"] > 0 and
                      doc["broker_cpu_us_per_msg"] is not None and doc["broker_rss_kb"] > 0 and
                      doc["params"][args[1][2:]] == int(args[2]) and
                      doc["sent"] >= doc["window_sent"] > 0, json.dumps(doc)[:800])

        persistent(tmp, port)

        rc, out, doc = bench(tmp, ["latency", "--rate", "2000", "--qos", "1"] + port + SHORT)
        check("latency: exit 0, counts", rc == 0 and counts_ok(doc), out[-1500:])
        if doc:
            lat = doc["latency_us"]
            # 2000/s over a 0.5 s window: about 1000 samples, every one timed.
            check("latency: percentiles of the window's messages",
                  lat is not None and 900 <= lat["count"] <= 1100 and
                  0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"] and
                  len(lat["cdf"]) > 10, json.dumps(lat)[:500])
            check("latency: paced rate", abs(doc["pub_msgs_per_s"] - 2000) < 200,
                  str(doc["pub_msgs_per_s"]))

        rc, out, doc = bench(tmp, ["connect", "--connections", "20"] + port + SHORT)
        check("connect: exit 0, connects and handshake latency",
              rc == 0 and doc and doc["connects_per_s"] > 0 and doc["handshake_us"]["count"] > 0,
              out[-1500:])

        rc, out, doc = bench(tmp, ["idle", "--connections", "300", "--mqtt", "5"] + port + SHORT)
        check("idle: exit 0, broker memory a connection",
              rc == 0 and doc and doc["rss_per_conn_bytes"] is not None, out[-1500:])
        noisy(tmp, proc, ports[1], ports[2])
        check("broker still running", proc.poll() is None)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # The persistent subscribers' sessions outlived their runs; every other
    # client was clean, so the node saved those two sessions and no more.
    with open(log) as f:
        saved = re.findall(r"snapshot saved: (\d+) sessions", f.read())
    check("--session-expiry: the broker kept both subscribers' sessions",
          saved and int(saved[-1]) == 2, str(saved))


def persistent(tmp, port):
    """fanin QoS 1 to a persistent subscriber (3.1.1 clean session 0, 5.0
    Session Expiry Interval), on a topic of its own: the session outlives
    the run, still subscribed, and the other runs must not feed it."""
    for mqtt in ("3", "5"):
        name = "fanin QoS 1 --session-expiry 60, MQTT %s" % mqtt
        rc, out, doc = bench(tmp, ["fanin", "--publishers", "4", "--qos", "1", "--mqtt", mqtt,
                                   "--session-expiry", "60", "--topic", "persist"] + port + SHORT)
        check("%s: exit 0, every delivery counted once" % name,
              rc == 0 and counts_ok(doc) and doc["reordered"] == 0 and
              doc["params"]["session_expiry"] == 60 and "persistent subscriber" in out,
              out[-1500:])


def noisy(tmp, proc, flood_port, quiet_port):
    """noisy: the quiet tenant's latency at 2000/s alone and under a flood
    from the other tenant's listener. QoS 0: at QoS 1 a publisher whose 64
    in flight are held up by the flood (tens of ms in a Debug or ASan build)
    stops sending, and what it did not send is not timed; nothing is lost
    at QoS 0 either, as the subscriber is never congested."""
    tenants = ["--port", str(quiet_port), "--flood-port", str(flood_port),
               "--pid", str(proc.pid), "--rate", "2000", "--drain", "3"]
    rc, out, doc = bench(tmp, ["noisy", "--flood-publishers", "4"] + tenants + SHORT)
    check("noisy: exit 0, the quiet tenant's deliveries counted in both phases",
          rc == 0 and doc and doc["scenario"] == "noisy" and doc["ok"] and
          all(counts_ok(doc["noisy"][k]) for k in ("baseline", "flooded")), out[-2500:])
    if not doc or not doc["noisy"]["flooded"]:
        return
    nz = doc["noisy"]
    base, flooded, flood = nz["baseline"]["latency_us"], nz["flooded"]["latency_us"], nz["flood"]
    # 2000/s over a 0.5 s window: about 1000 timed samples in each phase.
    check("noisy: percentiles of both phases and their ratio",
          all(900 <= h["count"] <= 1100 and 0 < h["p50"] <= h["p99"] <= h["max"]
              for h in (base, flooded)) and
          abs(nz["p50_ratio"] - flooded["p50"] / base["p50"]) < 0.01 * nz["p50_ratio"] and
          nz["p99_ratio"] > 0, json.dumps(nz)[:1500])
    check("noisy: the flood ran flat out on its own tenant's listener",
          flood["scenario"] == "flood" and flood["params"]["port"] == flood_port and
          flood["params"]["publishers"] == 4 and flood["params"]["subscribers"] == 4 and
          flood["msgs_per_s"] > 10000 and flood["duplicates"] == 0 and
          flood["unexpected"] == 0 and doc["params"]["flood"]["rate"] is None and
          nz["broker_cpu_cores_flooded"] > nz["broker_cpu_cores_baseline"],
          json.dumps(flood)[:1500])
    # Paced, 5 publishers -> 2 topics (3 and 2 publishers): every delivery counted.
    rc, out, doc = bench(tmp, ["noisy", "--flood-publishers", "5", "--flood-subscribers", "2",
                               "--flood-rate", "20000"] + tenants + SHORT)
    fl = doc and doc["noisy"]["flood"]
    check("noisy: a paced flood onto fewer topics, every flood delivery counted once",
          rc == 0 and fl and counts_ok(fl) and fl["params"]["subscribers"] == 2 and
          abs(fl["pub_msgs_per_s"] - 20000) < 2000, out[-2500:])


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client one (ECDSA P-256)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=bench-ca")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, serial, ext in (("server", "7", ["-extfile", "ext"]), ("client", "8", [])):
        openssl(d, "req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=bench-" + name)
        openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", serial, "-days", "2", "-out", name + ".pem", *ext)


def tls_ok(doc):
    return (doc is not None and doc["tls"] is not None and doc["tls"]["handshakes"] > 0 and
            doc["params"]["tls"] is True)


def over_tls(tmp):
    pki = os.path.join(tmp, "pki")
    os.mkdir(pki)
    make_pki(pki)
    state = os.path.join(tmp, "tls-state")
    os.mkdir(state)
    proc, ports, _ = node.start_node(BULWARK, state, [
        "listen=mqtts 127.0.0.1:0 allow_anonymous=true",
        "listen=mqtts 127.0.0.1:0 allow_anonymous=true tls_client_auth=required "
        "tls_client_ca=" + os.path.join(pki, "ca.pem"),
        "tls_cert=" + os.path.join(pki, "server.pem"),
        "tls_key=" + os.path.join(pki, "server.key"), "workers=1", "state_dir=" + state])
    ca = ["--tls", "--cafile", os.path.join(pki, "ca.pem")]
    port = ca + ["--port", str(ports[0]), "--pid", str(proc.pid)]
    try:
        for name, args in (("fanin QoS 0", ["fanin", "--publishers", "4"]),
                           ("fanout QoS 0", ["fanout", "--subscribers", "20"])):
            rc, out, doc = bench(tmp, args + port + SHORT)
            check("TLS %s: exit 0, no loss, handshakes" % name,
                  rc == 0 and counts_ok(doc) and tls_ok(doc) and doc["loss_pct"] == 0 and
                  doc["msgs_per_s"] > 0, out[-1500:])

        rc, out, doc = bench(tmp, ["connect", "--connections", "10"] + port + SHORT)
        check("TLS connect: full handshakes in the window, none resumed",
              rc == 0 and tls_ok(doc) and doc["tls"]["handshakes_per_s"] > 0 and
              doc["tls"]["resumed"] == 0 and doc["connects_per_s"] > 0, out[-1500:])
        rc, out, doc = bench(tmp, ["connect", "--connections", "10", "--tls-resume"] + port +
                             SHORT)
        check("TLS connect --tls-resume: resumed handshakes",
              rc == 0 and tls_ok(doc) and doc["tls"]["window_resumed"] > 0 and
              doc["tls"]["resumed_pct"] > 50, out[-1500:])
        rc, out, doc = bench(tmp, ["connect", "--connections", "10", "--tls-resume",
                                   "--tls-version", "1.2"] + port + SHORT)
        check("TLS 1.2 connect --tls-resume: resumed handshakes",
              rc == 0 and tls_ok(doc) and doc["tls"]["window_resumed"] > 0 and
              doc["tls"]["protocol"].startswith("TLSv1.2"), out[-1500:])

        rc, out, doc = bench(tmp, ["idle", "--connections", "200"] + port + SHORT)
        check("TLS idle: exit 0, broker memory a connection",
              rc == 0 and tls_ok(doc) and doc["tls"]["handshakes"] == 200 and
              doc["rss_per_conn_bytes"] is not None, out[-1500:])

        cert = ["--cert", os.path.join(pki, "client.pem"), "--key", os.path.join(pki, "client.key")]
        rc, out, doc = bench(tmp, ["fanin", "--publishers", "2", "--port", str(ports[1])] + ca +
                             cert + SHORT)
        check("TLS with a client certificate: exit 0, no loss",
              rc == 0 and counts_ok(doc) and tls_ok(doc), out[-1500:])
        rc, out, doc = bench(tmp, ["fanin", "--publishers", "2", "--tls", "--cafile",
                                   os.path.join(pki, "client.pem"), "--port", str(ports[0]),
                                   "--connect-timeout", "5"] + SHORT)
        check("TLS with the wrong CA fails the run (exit 1), no handshake",
              rc == 1 and doc and doc["tls"]["handshakes"] == 0 and
              any("certificate" in f for f in doc["failures"]), out[-800:])
        check("broker still running (TLS)", proc.poll() is None)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_sink():
    """Starts `bulwark-bench sink --port 0`; returns (proc, port)."""
    proc = subprocess.Popen([BENCH, "sink", "--port", "0", "--seconds", "60"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once it listens
    m = re.search(r"listening on [0-9.]+:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("sink did not start: %r" % line)
    return proc, int(m.group(1))


def against_sink(tmp):
    proc, port = start_sink()
    p = ["--port", str(port)]
    try:
        rc, out, doc = bench(tmp, ["fanin", "--publishers", "2", "--qos", "1", "--drain", "1"] +
                             p + SHORT)
        check("sink, QoS 1: the loss is found and fails the run (exit 1)",
              rc == 1 and doc and not doc["ok"] and doc["received"] == 0 and
              doc["lost"] == doc["expected"] > 0 and doc["acked"] == doc["sent"] and
              any("lost" in f for f in doc["failures"]), out[-1500:])
        rc, out, doc = bench(tmp, ["fanin", "--publishers", "2", "--qos", "0", "--drain", "1"] +
                             p + SHORT)
        check("sink, QoS 0: the loss is reported, the run passes",
              rc == 0 and doc and doc["ok"] and doc["loss_pct"] == 100.0 and doc["sent"] > 0,
              out[-1500:])
        rc, out, doc = bench(tmp, ["fanin", "--subscribers", "0", "--qos", "2"] + p + SHORT)
        check("sink, no subscribers: publishers' own rate",
              rc == 0 and doc and doc["pub_msgs_per_s"] > 0 and doc["acked"] == doc["sent"],
              out[-1500:])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
            check("sink counts what it received", re.search(r"sink: \d+ connections, [1-9]", out)
                  is not None, out)
        except subprocess.TimeoutExpired:
            proc.kill()
            failures.append("sink did not stop")


def refused(tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, out, doc = bench(tmp, ["fanin", "--port", str(port), "--connect-timeout", "5"] + SHORT)
    check("refused connections fail the run (exit 1)",
          rc == 1 and doc and doc["failed_connections"] > 0 and
          any("refused" in f.lower() for f in doc["failures"]), out[-800:])
    # A storm into a closed port: every attempt fails at once, again and again.
    rc, out, doc = bench(tmp, ["connect", "--port", str(port), "--connections", "10"] + SHORT)
    check("connect storm into a closed port fails (exit 1)",
          rc == 1 and doc and doc["failed_connections"] > 0 and doc["window_connects"] == 0,
          out[-800:])


def main():
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        usage_errors()
        against_node(tmp)
        over_tls(tmp)
        against_sink(tmp)
        refused(tmp)
    print("%d passed, %d failed in %.1f s" % (passed, len(failures), time.monotonic() - start))
    if failures:
        print("failed: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
