#!/usr/bin/python3
"""TLS side by side: Bulwark and Debian's mosquitto with the same certificate
(made here with the openssl CLI), alternating runs on free loopback ports.

  handshakes  `openssl s_time -new` (full) and `-reuse` (resumed, TLS 1.2
              session tickets) for SECONDS each: connections/s, and the
              broker's CPU time per handshake from /proc/PID/stat, the
              figure that does not depend on the load tool (s_time is one
              single-threaded client).
  idle        N TLS connections, each with an MQTT CONNECT: the broker's RSS
              per connection.

Until bulwark-bench speaks TLS this is the TLS comparison. Example:
  bench/compare-tls.py --bulwark build-release/bin/bulwark --runs 3 --json tls.json
"""
import argparse
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def make_pki(d):
    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
         "7", "-days", "2", "-extfile", "ext", "-out", "s.pem")


def start(kind, a, d, port):
    if kind == "bulwark":
        argv = [a.bulwark, "--set", f"listen=mqtts 127.0.0.1:{port} allow_anonymous=true",
                "--set", f"tls_cert={d}/s.pem", "--set", f"tls_key={d}/s.key",
                "--set", "workers=1", "--set", f"state_dir={d}/state-{port}"]
    else:
        conf = os.path.join(d, f"m{port}.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"certfile {d}/s.pem\nkeyfile {d}/s.key\n")
        argv = [a.mosquitto, "-c", conf]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit(f"{kind} did not start")


def handshakes(pid, port, d, mode, seconds):
    c0 = cpu_s(pid)
    args = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-CAfile", f"{d}/ca.pem",
            f"-{mode}", "-time", str(seconds)]
    if mode == "reuse":
        args.append("-tls1_2")  # s_time resumes with TLS 1.2 sessions
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.findall(r"(\d+) connections in (\d+) real seconds", out)
    n, real = (int(m[-1][0]), int(m[-1][1])) if m else (0, 1)
    used = cpu_s(pid) - c0
    return {"per_s": n / real, "cpu_us": used / n * 1e6 if n else None}


def idle(pid, port, d, n):
    ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
    before = rss_kb(pid)
    socks = []
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                            server_hostname="127.0.0.1")
        s.sendall(connect)
        s.recv(4)
        socks.append(s)
    time.sleep(1)
    after = rss_kb(pid)
    for s in socks:
        s.close()
    return {"rss_per_conn_bytes": (after - before) * 1024 / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bulwark", default="build-release/bin/bulwark")
    ap.add_argument("--mosquitto", default="mosquitto")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--json")
    a = ap.parse_args()
    res = {"bulwark": [], "mosquitto": []}
    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        for r in range(a.runs):
            for kind in ("bulwark", "mosquitto"):
                port = free_port()
                p = start(kind, a, d, port)
                try:
                    res[kind].append({"full": handshakes(p.pid, port, d, "new", a.seconds),
                                      "resumed": handshakes(p.pid, port, d, "reuse",
                                                            a.seconds),
                                      "idle": idle(p.pid, port, d, a.connections)})
                finally:
                    p.terminate()
                    p.wait(10)

    def med(kind, *path):
        vals = []
        for run in res[kind]:
            v = run
            for k in path:
                v = v[k]
            if v is not None:
                vals.append(v)
        return statistics.median(vals) if vals else None
    rows = [("full handshakes/s", ("full", "per_s")),
            ("broker CPU us/full handshake", ("full", "cpu_us")),
            ("resumed handshakes/s", ("resumed", "per_s")),
            ("broker CPU us/resumed handshake", ("resumed", "cpu_us")),
            ("broker RSS bytes/idle TLS conn", ("idle", "rss_per_conn_bytes"))]
    print(f"{'figure':34} {'bulwark':>12} {'mosquitto':>12} {'B/M':>8}")
    summary = {}
    for name, path in rows:
        b, m = med("bulwark", *path), med("mosquitto", *path)
        ratio = b / m if b and m else None
        summary[name] = {"bulwark": b, "mosquitto": m, "ratio": ratio}
        print(f"{name:34} {b:>12,.1f} {m:>12,.1f} {ratio:>8.2f}" if ratio else f"{name:34} -")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "runs": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
