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

import paho.mqtt.client as mqtt

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
    log = os.path.join(tmp, "node.log")
    args = [BIN, "--set", "listen=mqtt 127.0.0.1:0 allow_anonymous=true",
            "--set", "listen=mqtt 127.0.0.1:0",
            "--set", "listen=http 127.0.0.1:0",
            "--set", "log_level=debug", "--set", "log_file=" + log]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ports = []
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and len(ports) < 3:
        if os.path.exists(log):
            with open(log) as f:
                ports = [int(p) for p in re.findall(r"listening: \w+ \S+ \(port (\d+)\)", f.read())]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if len(ports) < 3:
        print(proc.stdout.read().decode(errors="replace") if proc.poll() is not None else "")
        raise SystemExit("node did not start")
    return proc, ports, log


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
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
        check("SIGTERM stops the node with exit 0", code == 0, str(code))
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
