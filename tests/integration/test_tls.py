#!/usr/bin/python3
"""Integration test of mqtts listeners with real TLS clients.

Makes a small PKI with the openssl CLI in a temporary directory (a CA, a
server certificate for 127.0.0.1 and localhost, client certificates: valid,
expired, revoked in a CRL, and one from another CA), starts
build/bin/bulwark with mqtts listeners, and drives it with mosquitto_pub/sub
(3.1.1 and 5.0), paho-mqtt, Python's ssl module and openssl s_client:
pub/sub over TLS, a client that does not trust the server's CA, client
certificates required (none, valid, expired, other CA, revoked), TLS 1.1
refused, ALPN "mqtt", large and many messages, a slow subscriber pausing
its publisher, a bad record after CONNECT publishing the will, SIGHUP
reloading the server certificate (and refusing a garbage one),
configuration errors, and a three-worker node where TLS connections move to
their client id's worker.
Every wait is bounded. Usage: test_tls.py BULWARK_BINARY
"""
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node  # noqa: E402  (tests/integration/node.py)
from node import wait_for, varint  # noqa: E402

import paho.mqtt.client as mqtt
from pki import openssl, make_ca  # noqa: E402

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


# ---- the PKI -----------------------------------------------------------------

CA_CNF = """
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = {dir}
database = {dir}/index.txt
serial = {dir}/serial
new_certs_dir = {dir}/issued
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
default_md = sha256
default_days = 2
default_crl_days = 2
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = client_ext
[ any ]
commonName = supplied
[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def make_server(d, name, serial):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", serial, "-days", "2", "-extfile", "server.ext",
            "-out", f"{name}.pem", cwd=d)


def make_client(d, name, *ca_args):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("ca", "-batch", "-config", "ca.cnf", "-notext", "-in", f"{name}.csr",
            "-out", f"{name}.pem", *ca_args, cwd=d)


def make_pki(d):
    """ca.pem, server.pem/key (serial 0x1001), server2.pem/key (0x2002),
    client, expired, revoked (in crl.pem) and other (signed by other-ca)."""
    os.makedirs(os.path.join(d, "issued"))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(CA_CNF.format(dir=d))
    make_ca(d, "ca", "Bulwark Test CA")
    make_ca(d, "other-ca", "Some Other CA")
    make_server(d, "server", "0x1001")
    make_server(d, "server2", "0x2002")
    make_client(d, "client")
    make_client(d, "expired", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    make_client(d, "revoked")
    openssl("ca", "-batch", "-config", "ca.cnf", "-revoke", "revoked.pem", cwd=d)
    openssl("ca", "-batch", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "other.key", "-out", "other.csr", "-subj", "/CN=other", cwd=d)
    openssl("x509", "-req", "-in", "other.csr", "-CA", "other-ca.pem", "-CAkey", "other-ca.key",
            "-set_serial", "0x77", "-days", "2", "-out", "other.pem", cwd=d)
    # The listeners read live.pem/live.key, which the reload test replaces.
    shutil.copy(os.path.join(d, "server.pem"), os.path.join(d, "live.pem"))
    shutil.copy(os.path.join(d, "server.key"), os.path.join(d, "live.key"))


# ---- clients -------------------------------------------------------------------

def tls_args(pki, cert=None, ca="ca.pem"):
    """mosquitto_pub/sub options: trust ca, and present cert (a PKI name) when given."""
    a = ["--cafile", os.path.join(pki, ca)]
    if cert:
        a += ["--cert", os.path.join(pki, cert + ".pem"), "--key", os.path.join(pki, cert + ".key")]
    return a


def mosq_pub(port, tls, version="mqttv5", topic="t", message="m", qos=1):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                           "-q", str(qos), "-t", topic, "-m", message, *tls],
                          capture_output=True, timeout=TIMEOUT)


def sub_then_pub(port, tls, version, qos, topic, message):
    """mosquitto_sub on topic over TLS; once it has its SUBACK, one mosquitto_pub."""
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                            "-V", version, "-q", str(qos), "-t", topic, "-C", "1",
                            "-W", str(TIMEOUT), "-d", *tls],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    deadline = time.time() + TIMEOUT
    while b"SUBACK" not in out and time.time() < deadline and sub.poll() is None:
        out += sub.stdout.readline()
    pub = mosq_pub(port, tls, version, topic, message, qos)
    rest, _ = sub.communicate(timeout=TIMEOUT + 5)
    return sub.returncode == 0 and pub.returncode == 0, (out + rest).decode(errors="replace")


def paho(port, pki, client_id, version=mqtt.MQTTv311, cert=None):
    """A connected, looping paho client over TLS that collects what it receives."""
    c = mqtt.Client(client_id=client_id, protocol=version)
    c.got = []
    c.on_message = lambda cl, u, m: cl.got.append((m.topic, m.payload))
    c.tls_set(ca_certs=os.path.join(pki, "ca.pem"),
              certfile=os.path.join(pki, cert + ".pem") if cert else None,
              keyfile=os.path.join(pki, cert + ".key") if cert else None)
    connected = []
    c.on_connect = lambda *a: connected.append(a[3] if version == mqtt.MQTTv311 else a[3].value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not wait_for(lambda: connected) or connected[0] != 0:
        c.loop_stop()
        raise RuntimeError(f"{client_id}: CONNACK {connected}")
    return c


def paho_subscribe(c, filt, qos=1):
    done = []
    c.on_subscribe = lambda *a: done.append(1)
    c.subscribe(filt, qos=qos)
    if not wait_for(lambda: done):
        raise RuntimeError("no SUBACK")


def paho_close(*clients):
    for c in clients:
        c.disconnect()
        c.loop_stop()


def tls_socket(port, pki, alpn=None, sni="localhost"):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return ctx.wrap_socket(s, server_hostname=sni)


def served_serial(port, pki):
    """The serial number of the certificate a new TLS connection is served."""
    with tls_socket(port, pki) as s:
        der = s.getpeercert(binary_form=True)
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=TIMEOUT)
    return r.stdout.decode().strip().split("=")[-1]


def raw_connect(s, client_id):
    """A 3.1.1 CONNECT on socket s; returns the CONNACK bytes."""
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    s.sendall(bytes([0x10, len(body)]) + body)
    return s.recv(4)


def metric(http_port, name):
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=TIMEOUT)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    m = re.search(rf"^{name} (\d+)$", body, re.M)
    return int(m.group(1)) if m else None


def log_has(log, pattern):
    with open(log) as f:
        return re.search(pattern, f.read()) is not None


# ---- the cases -----------------------------------------------------------------

def pub_sub_cases(port, pki):
    tls = tls_args(pki)
    ok, out = sub_then_pub(port, tls, "mqttv311", 0, "tls/a", "hello-311")
    check("mosquitto 3.1.1 pub/sub over TLS", ok and "hello-311" in out, out[-400:])
    ok, out = sub_then_pub(port, tls, "mqttv5", 1, "tls/b", "hello-5")
    check("mosquitto 5.0 QoS 1 pub/sub over TLS", ok and "hello-5" in out, out[-400:])
    r = mosq_pub(port, tls_args(pki, ca="other-ca.pem"))
    check("a client that does not trust the server's CA fails", r.returncode != 0,
          (r.stdout + r.stderr).decode(errors="replace"))
    r = mosq_pub(port, tls + ["--tls-version", "tlsv1.2"])
    check("TLS 1.2 client accepted", r.returncode == 0, r.stderr.decode(errors="replace"))


def client_cert_cases(port, pki, log):
    r = mosq_pub(port, tls_args(pki))
    check("client certificate required: none is refused", r.returncode != 0,
          r.stderr.decode(errors="replace"))
    ok, out = sub_then_pub(port, tls_args(pki, "client"), "mqttv5", 1, "mtls/a", "hello-mtls")
    check("client certificate required: a valid one works", ok and "hello-mtls" in out,
          out[-400:])
    for name, why in (("expired", "certificate has expired"),
                      ("other", "unable to get local issuer certificate"),
                      ("revoked", "certificate revoked")):
        r = mosq_pub(port, tls_args(pki, name))
        check(f"client certificate required: {name} is refused",
              r.returncode != 0 and wait_for(lambda: log_has(log, why), 3),
              (r.stdout + r.stderr).decode(errors="replace"))
    r = mosq_pub(port, tls_args(pki, "revoked") + ["--tls-version", "tlsv1.2"])
    check("a revoked certificate is refused over TLS 1.2 too", r.returncode != 0)


def old_version_refused(port, log, http_port):
    before = metric(http_port, "bulwark_tls_handshake_failures_total") or 0
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                        "-cipher", "DEFAULT:@SECLEVEL=0"], input=b"", capture_output=True,
                       timeout=TIMEOUT)
    out = (r.stdout + r.stderr).decode(errors="replace")
    refused = r.returncode != 0 and \
        wait_for(lambda: log_has(log, "TLS handshake failed: .*unsupported protocol"), 3)
    after = metric(http_port, "bulwark_tls_handshake_failures_total") or 0
    check("TLS 1.1 refused (and counted)", refused and after > before,
          f"{before} -> {after} {out[-300:]}")


def alpn_and_raw_mqtt(port, pki):
    with tls_socket(port, pki, alpn=["mqtt"]) as s:
        alpn = s.selected_alpn_protocol()
        ack = raw_connect(s, b"alpn-client")
    check("ALPN mqtt negotiated, CONNACK over it", alpn == "mqtt" and ack == b"\x20\x02\x00\x00",
          f"{alpn} {ack!r}")
    with tls_socket(port, pki, alpn=["h2", "http/1.1"]) as s:
        alpn = s.selected_alpn_protocol()
        ack = raw_connect(s, b"alpn-other")
    check("a client offering other protocols goes on without ALPN",
          alpn is None and ack == b"\x20\x02\x00\x00", f"{alpn} {ack!r}")


def paho_large_and_many(port, pki):
    sub = paho(port, pki, "paho-tls-sub", mqtt.MQTTv5)
    paho_subscribe(sub, "big/#")
    pub = paho(port, pki, "paho-tls-pub")
    big = bytes(range(256)) * 2048  # 512 KiB: many output batches and records
    pub.publish("big/one", big, qos=1).wait_for_publish(TIMEOUT)
    for i in range(2000):
        pub.publish("big/small", f"s{i}".encode(), qos=0)
    want = 1 + 2000
    wait_for(lambda: len(sub.got) >= want, 20)
    got_big = [p for t, p in sub.got if t == "big/one"]
    small = [p for t, p in sub.got if t == "big/small"]
    check("paho over TLS: a 512 KiB message intact", got_big == [big], str(len(got_big)))
    check("paho over TLS: 2000 small messages in order",
          small == [f"s{i}".encode() for i in range(2000)], str(len(small)))
    paho_close(sub, pub)


def read_packets(sock, buf):
    """Reads what is available and splits whole packets off buf (a bytearray)."""
    buf += sock.recv(65536)
    out = []
    while len(buf) >= 2:
        n, mul, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return out
            n += (buf[i] & 0x7F) * mul
            mul *= 128
            i += 1
            if not buf[i - 1] & 0x80:
                break
        if len(buf) < i + n:
            return out
        out.append((buf[0], bytes(buf[i:i + n])))
        del buf[:i + n]
    return out


def slow_tls_subscriber(port, pki, http_port, count=3000):
    """12 MiB at QoS 0 into a TLS subscriber that stops reading for a
    second: its output queue still measures what it has not taken
    (encrypted batches wait for their send), so past the soft limit the
    QoS 1 publisher is paused, and nothing is dropped."""
    sub = tls_socket(port, pki)
    assert raw_connect(sub, b"tls-slow-sub") == b"\x20\x02\x00\x00"
    sub.sendall(b"\x82" + varint(9) + b"\x00\x01\x00\x04bp/#\x00")
    buf = bytearray()
    while not any(t >> 4 == 9 for t, _ in read_packets(sub, buf)):
        pass
    pauses = metric(http_port, "bulwark_publisher_pauses_total") or 0
    pub = paho(port, pki, "tls-fast-pub")
    pub.max_inflight_messages_set(100)
    pad = b"." * 4096
    infos = [pub.publish("bp/x", f"{i}:".encode() + pad, qos=1) for i in range(count)]
    time.sleep(1.0)
    got = set()
    deadline = time.time() + 30
    sub.settimeout(0.2)
    while len(got) < count and time.time() < deadline:
        try:
            packets = read_packets(sub, buf)
        except socket.timeout:
            continue
        for t, body in packets:
            if t >> 4 != 3:
                continue
            tl = int.from_bytes(body[:2], "big")
            got.add(body[2 + tl:].split(b":")[0])
    # The last PUBACKs may reach the publisher after the subscriber's copies.
    wait_for(lambda: all(i.is_published() for i in infos))
    acked = sum(1 for i in infos if i.is_published())
    paho_close(pub)
    sub.close()
    paused = (metric(http_port, "bulwark_publisher_pauses_total") or 0) > pauses
    dropped = metric(http_port, 'bulwark_tenant_messages_dropped_total\\{tenant="default"\\}')
    check("QoS 1 into a slow TLS subscriber: publisher paused, nothing dropped",
          len(got) == count and acked == count and paused and dropped == 0 and
          got == {f"{i}".encode() for i in range(count)},
          f"got {len(got)} acked {acked} paused {paused} dropped {dropped}")


def bad_record_publishes_the_will(port, pki, log):
    """A record that fails to decrypt after CONNECT ends the session
    abnormally: its will is published."""
    watch = paho(port, pki, "tls-will-watch")
    paho_subscribe(watch, "wills/#")
    s = tls_socket(port, pki)
    cid, wt, wp = b"tls-dying", b"wills/tls-dying", b"bye"
    body = (b"\x00\x04MQTT\x04\x06\x00\x3c" + len(cid).to_bytes(2, "big") + cid +
            len(wt).to_bytes(2, "big") + wt + len(wp).to_bytes(2, "big") + wp)
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(4)
    os.write(s.fileno(), b"\x17\x03\x03\x00\x20" + bytes(32))  # under the TLS layer
    got = wait_for(lambda: watch.got)
    check("a bad TLS record after CONNECT publishes the will",
          ack == b"\x20\x02\x00\x00" and watch.got == [("wills/tls-dying", b"bye")] and
          log_has(log, r"fd \d+: TLS: "), f"{ack!r} {got} {watch.got}")
    s.close()
    paho_close(watch)


def reload_cases(proc, port, pki, log):
    live = paho(port, pki, "reload-live")
    paho_subscribe(live, "reload/#")
    before = served_serial(port, pki)
    shutil.copy(os.path.join(pki, "server2.pem"), os.path.join(pki, "live.pem"))
    shutil.copy(os.path.join(pki, "server2.key"), os.path.join(pki, "live.key"))
    proc.send_signal(signal.SIGHUP)
    reloaded = wait_for(lambda: log_has(log, "TLS material reloaded"))
    after = served_serial(port, pki)
    check("SIGHUP: a new connection is served the new certificate",
          reloaded and before == "1001" and after == "2002", f"{before} -> {after}")
    r = mosq_pub(port, tls_args(pki), topic="reload/x", message="after-reload")
    wait_for(lambda: live.got)
    check("SIGHUP: an established connection keeps working",
          r.returncode == 0 and live.got == [("reload/x", b"after-reload")], str(live.got))
    with open(os.path.join(pki, "live.pem"), "w") as f:
        f.write("garbage, not a certificate\n")
    proc.send_signal(signal.SIGHUP)
    refused = wait_for(lambda: log_has(
        log, r"error SIGHUP: mqtts \S+: TLS material not reloaded.*live\.pem.*no start line"))
    check("SIGHUP with a garbage certificate: refused, logged, the old one stays",
          refused and served_serial(port, pki) == "2002" and proc.poll() is None)
    r = mosq_pub(port, tls_args(pki), topic="reload/y", message="still")
    wait_for(lambda: len(live.got) > 1)
    check("the node still serves TLS after a refused reload",
          r.returncode == 0 and ("reload/y", b"still") in live.got)
    paho_close(live)


def config_errors(tmp, pki):
    base = [BIN, "--set", "state_dir=" + os.path.join(tmp, "cfg-state")]
    r = subprocess.run(base + ["--set", "listen=mqtts 127.0.0.1:0", "--check-config"],
                       capture_output=True, timeout=TIMEOUT)
    err = r.stderr.decode(errors="replace")
    check("an mqtts listener without a certificate is a configuration error",
          r.returncode == 1 and "--set: listen: mqtts 127.0.0.1:0 has no tls_cert" in err, err)
    garbage = os.path.join(tmp, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    bad = ["--set", "listen=mqtts 127.0.0.1:0 tls_cert=" + garbage + " tls_key=" +
           os.path.join(pki, "server.key")]
    r = subprocess.run(base + bad + ["--check-config"], capture_output=True, timeout=TIMEOUT)
    err = r.stderr.decode(errors="replace")
    check("--check-config reads the TLS files: a garbage certificate is named",
          r.returncode == 1 and f"tls_cert {garbage}: PEM routines: no start line" in err, err)
    log = os.path.join(tmp, "bad-start.log")
    r = subprocess.run(base + bad + ["--set", "log_file=" + log], capture_output=True,
                       timeout=TIMEOUT)
    check("a node with a garbage certificate does not start, and says why",
          r.returncode == 1 and log_has(log, f"tls_cert {re.escape(garbage)}: .*no start line"),
          open(log).read() if os.path.exists(log) else "")
    missing = os.path.join(tmp, "missing.key")
    r = subprocess.run(base + ["--set", "listen=mqtts 127.0.0.1:0", "--set",
                               "tls_cert=" + os.path.join(pki, "server.pem"), "--set",
                               "tls_key=" + missing, "--check-config"],
                       capture_output=True, timeout=TIMEOUT)
    err = r.stderr.decode(errors="replace")
    check("an unreadable key is named with its reason",
          r.returncode == 1 and f"tls_key {missing}: No such file or directory" in err, err)


def three_workers(tmp, pki):
    """Clients whose ids live on other workers move there with their TLS state."""
    d = os.path.join(tmp, "three")
    os.makedirs(d)
    settings = ["workers=3", "listen=mqtts 127.0.0.1:0 allow_anonymous=true",
                "listen=http 127.0.0.1:0", "tls_cert=" + os.path.join(pki, "server.pem"),
                "tls_key=" + os.path.join(pki, "server.key")]
    proc, ports, log = node.start_node(BIN, d, settings)
    port, http_port = ports
    clients = []
    try:
        for i in range(12):
            c = paho(port, pki, f"tls-worker-{i}", mqtt.MQTTv5 if i % 2 else mqtt.MQTTv311)
            paho_subscribe(c, f"w/{i}")
            clients.append(c)
        pub = paho(port, pki, "tls-worker-pub")
        for i in range(12):
            for k in range(20):
                pub.publish(f"w/{i}", f"{i}-{k}".encode(), qos=1).wait_for_publish(TIMEOUT)
        ok = wait_for(lambda: all(len(c.got) >= 20 for c in clients))
        right = all([p for _, p in c.got] == [f"{i}-{k}".encode() for k in range(20)]
                    for i, c in enumerate(clients))
        moved = metric(http_port, "bulwark_connections_moved_total") or 0
        handshakes = metric(http_port, "bulwark_tls_handshakes_total") or 0
        check("three workers: 12 TLS clients, each gets its 20 messages in order",
              ok and right, str([len(c.got) for c in clients]))
        check("three workers: TLS connections moved to their client id's worker",
              moved > 0 and handshakes >= 13, f"moved {moved}, handshakes {handshakes}")
        paho_close(pub, *clients)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
    check("three workers: SIGTERM stops the node with exit 0", code == 0, str(code))


def certificate_identities(tmp, pki):
    """tls_identity=cn: a verified certificate's CN is the user (no password,
    no anonymous listener needed); a username that is not the CN is refused;
    ACL rules see it as %u and %cn."""
    d = os.path.join(tmp, "ident")
    os.makedirs(d)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("everyone\nallow publish dev/%u/#\nallow subscribe dev/%cn/#\n")
    settings = ["workers=2", "acl_file=" + acl,
                f"listen=mqtts 127.0.0.1:0 tls_client_auth=required tls_client_ca={pki}/ca.pem "
                "tls_identity=cn",
                "tls_cert=" + os.path.join(pki, "server.pem"),
                "tls_key=" + os.path.join(pki, "server.key")]
    proc, ports, log = node.start_node(BIN, d, settings)
    port = ports[0]
    try:
        sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p",
                                str(port), "-V", "mqttv5", "-t", "dev/client/#", "-C", "1", "-W",
                                str(TIMEOUT), "-d", *tls_args(pki, "client")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        wait_for(lambda: lines.append(sub.stdout.readline()) or "SUBACK" in "".join(lines))
        r = mosq_pub(port, tls_args(pki, "client"), topic="dev/client/t", message="by-cert")
        out = "".join(lines) + sub.communicate(timeout=TIMEOUT)[0]
        check("tls_identity=cn: the certificate alone logs in; %u and %cn are its CN",
              r.returncode == 0 and "by-cert" in out, (r.stderr.decode() + out)[-300:])
        r = mosq_pub(port, tls_args(pki, "client") + ["-u", "someone-else", "-P", "x"],
                     topic="dev/client/t")
        check("tls_identity=cn: a username other than the CN is refused",
              r.returncode != 0 and b"bad user name or password" in (r.stderr + r.stdout).lower(),
              (r.stderr + r.stdout)[-200:])
        r = mosq_pub(port, tls_args(pki, "client"), topic="dev/other/t", qos=1)
        check("tls_identity=cn: the ACL keeps it to its own topics",
              b"not authorized" in (r.stderr + r.stdout).lower(), (r.stderr + r.stdout)[-200:])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=TIMEOUT)
    check("tls_identity: SIGTERM exit 0", code == 0, str(code))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pki = os.path.join(tmp, "pki")
        os.makedirs(pki)
        make_pki(pki)
        live = [f"tls_cert={pki}/live.pem", f"tls_key={pki}/live.key"]
        proc, ports, log = node.start_node(BIN, tmp, live + [
            "listen=mqtts 127.0.0.1:0 allow_anonymous=true",
            "listen=mqtts 127.0.0.1:0 allow_anonymous=true tls_client_auth=required "
            f"tls_client_ca={pki}/ca.pem tls_crl={pki}/crl.pem",
            "listen=http 127.0.0.1:0"])
        port, mtls_port, http_port = ports
        try:
            pub_sub_cases(port, pki)
            client_cert_cases(mtls_port, pki, log)
            old_version_refused(port, log, http_port)
            alpn_and_raw_mqtt(port, pki)
            paho_large_and_many(port, pki)
            slow_tls_subscriber(port, pki, http_port)
            bad_record_publishes_the_will(port, pki, log)
            reload_cases(proc, port, pki, log)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = None
        check("SIGTERM stops the node with exit 0", code == 0, str(code))
        config_errors(tmp, pki)
        three_workers(tmp, pki)
        certificate_identities(tmp, pki)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
