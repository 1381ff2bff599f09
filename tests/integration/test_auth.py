#!/usr/bin/python3
"""Integration test of passwords and topic ACLs on a real node (three
workers, so clients land on different ones): password files written with
`bulwark --hash-password` (PBKDF2 and Argon2id), good and bad logins with
mosquitto and paho in both versions, a denied publish that never reaches a
subscriber (5.0: PUBACK 0x87), denied subscriptions (3.1.1 0x80, 5.0 0x87),
anonymous refused, password checks that do not stall the node, a
password_file that cannot be read stopping the node with its name, JWTs as
passwords, MQTT 5 enhanced authentication (method JWT) with AUTH
re-authentication from paho, the token's grace, and per-source backoff
after failed logins (with its metrics and log lines).
Usage: test_auth.py BULWARK_BINARY
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node  # noqa: E402
from node import wait_for  # noqa: E402

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


def hash_password(pw, kind):
    r = subprocess.run([BIN, "--hash-password", kind], input=pw + "\n", capture_output=True,
                       text=True, timeout=TIMEOUT)
    return r.returncode, r.stdout.strip()


def pub(port, user, pw, topic, msg, version="mqttv5", qos=0):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
            "-m", msg, "-q", str(qos)]
    if user:
        args += ["-u", user, "-P", pw]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)


class Sub:
    """A paho client; records messages and SUBACK reason codes."""

    def __init__(self, port, cid, user, pw, version=mqtt.MQTTv5):
        self.got, self.codes, self.rc, self.gone = [], [], None, None
        self.c = mqtt.Client(client_id=cid, protocol=version)
        self.c.username_pw_set(user, pw)
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.c.on_connect = self.on_connect
        self.c.on_subscribe = self.on_subscribe
        self.c.on_disconnect = self.on_disconnect
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        wait_for(lambda: self.rc is not None)

    def on_connect(self, c, u, flags, rc, props=None):
        self.rc = rc if isinstance(rc, int) else rc.value

    def on_disconnect(self, c, u, rc, props=None):
        if self.gone is None:  # the DISCONNECT's reason, not the closing after it
            self.gone = rc if isinstance(rc, int) else rc.value

    def on_subscribe(self, c, u, mid, granted, props=None):
        self.codes.append([g if isinstance(g, int) else g.value for g in granted])

    def subscribe(self, filt, qos=0):
        n = len(self.codes)
        self.c.subscribe(filt, qos=qos)
        wait_for(lambda: len(self.codes) > n)
        return self.codes[-1] if len(self.codes) > n else None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


SECRET = b"bulwark-test-hs256-secret-of-32-bytes!"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(claims, alg="HS256", secret=SECRET):
    """A compact JWS: HS256 with secret, or alg "none" unsigned."""
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64u(json.dumps(claims).encode())
    signing = f"{head}.{body}".encode()
    sig = b"" if alg == "none" else hmac.new(secret, signing, hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


def jwt_cases(port):
    now = int(time.time())
    good = token({"sub": "carol", "exp": now + 60, "iss": "https://id.test"})
    r = pub(port, "carol", good, "carol/x", "with-token")
    check("JWT (HS256) as the password connects", r.returncode == 0, r.stderr)
    r = pub(port, "dave", good, "carol/x", "x")
    check("JWT naming another user than the username: refused", r.returncode != 0, r.stderr)
    for name, tok in [("expired", token({"sub": "carol", "exp": now - 10,
                                         "iss": "https://id.test"})),
                      ("another key", token({"sub": "carol", "exp": now + 60,
                                             "iss": "https://id.test"},
                                            secret=b"x" * 40)),
                      ("alg none", token({"sub": "carol", "exp": now + 60,
                                          "iss": "https://id.test"}, alg="none")),
                      ("wrong issuer", token({"sub": "carol", "exp": now + 60,
                                              "iss": "https://evil.test"}))]:
        r = pub(port, "carol", tok, "carol/x", "x")
        check(f"JWT refused: {name}", r.returncode != 0 and "bad user name or password" in
              (r.stderr + r.stdout).lower(), r.stderr + r.stdout)
    # A token that expires during the session ends it: DISCONNECT 0x87.
    short = token({"sub": "carol", "exp": now + 2, "iss": "https://id.test"}).encode()
    lp = lambda b: len(b).to_bytes(2, "big") + b  # noqa: E731
    body = lp(b"MQTT") + bytes([5, 0xC2]) + (60).to_bytes(2, "big") + b"\x00"
    body += lp(b"carol-short") + lp(b"carol") + lp(short)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"\x10" + bytes([len(body) & 0x7F | 0x80, len(body) >> 7]) + body)
    ack = s.recv(64)
    s.settimeout(8)
    t0 = time.time()
    try:
        d = s.recv(16)
    except socket.timeout:
        d = b""
    waited = time.time() - t0
    s.close()
    check("a JWT that expires ends the connection with DISCONNECT 0x87",
          ack[:1] == b"\x20" and d[:1] == b"\xe0" and d[2:3] == b"\x87" and 0.9 < waited < 5,
          f"{ack[:4]!r} {d!r} after {waited:.1f} s")


class AuthClient(mqtt.Client):
    """paho 5.0 with MQTT 5 enhanced authentication (method JWT): paho 1.6
    sends the Authentication Method and Data on CONNECT but has no AUTH
    packet, so this adds receiving and sending one."""

    def __init__(self, port, cid, tok, method="JWT"):
        super().__init__(client_id=cid, protocol=mqtt.MQTTv5)
        self.auths, self.got, self.rc, self.ack_props, self.gone = [], [], None, None, None
        self.on_connect = self._auth_connected
        self.on_message = lambda c, u, m: self.got.append(m.payload)
        self.on_disconnect = self._auth_gone
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = method
        props.AuthenticationData = tok.encode()
        self.connect("127.0.0.1", port, 60, properties=props)
        self.loop_start()
        wait_for(lambda: self.rc is not None or self.gone is not None)

    def _auth_connected(self, c, u, flags, rc, props=None):
        self.rc, self.ack_props = rc.value, props

    def _auth_gone(self, c, u, rc, props=None):
        if self.gone is None:  # the DISCONNECT's reason, not the closing after it
            self.gone = rc.value if hasattr(rc, "value") else rc

    def _packet_handle(self):
        if self._in_packet["command"] & 0xF0 == 0xF0:
            self.auths.append(bytes(self._in_packet["packet"]))
            return mqtt.MQTT_ERR_SUCCESS
        return super()._packet_handle()

    def reauth(self, tok):
        props = Properties(PacketTypes.AUTH)
        props.AuthenticationMethod = "JWT"
        props.AuthenticationData = tok.encode()
        body = bytes([0x19]) + props.pack()
        packet = bytearray([0xF0])
        self._pack_remaining_length(packet, len(body))
        packet += body
        self._packet_queue(0xF0, packet, 0, 0)

    def close(self):
        self.disconnect()
        self.loop_stop()


def enhanced_cases(port):
    """5.0 enhanced authentication, method JWT, and AUTH re-authentication."""
    now = int(time.time())
    claims = lambda sub, exp: {"sub": sub, "exp": exp, "iss": "https://id.test"}  # noqa: E731
    c = AuthClient(port, "carol-ea", token(claims("carol", now + 3)))
    method = getattr(c.ack_props, "AuthenticationMethod", None)
    check("enhanced auth (method JWT) connects; CONNACK names the method",
          c.rc == 0 and method == "JWT", f"{c.rc} {method}")
    c.reauth(token(claims("carol", now + 120)))
    check("AUTH 0x19 with a fresh token: AUTH 0x00 back",
          wait_for(lambda: c.auths) and c.auths[0][:1] == b"\x00", str(c.auths))
    time.sleep(3 + 1 + 1.5)  # past the first token's exp and the grace
    info = c.publish("carol/ea", b"still-here", 1)
    check("re-authenticated: the connection outlives the first token",
          wait_for(info.is_published) and c.gone is None, str(c.gone))
    c.reauth(token(claims("mallory", now + 120)))
    check("AUTH with a token for another user: DISCONNECT 0x87",
          wait_for(lambda: c.gone is not None) and c.gone == 0x87, str(c.gone))
    c.loop_stop()
    bad = AuthClient(port, "carol-bad", token(claims("carol", now - 30)))
    check("enhanced auth with an expired token: CONNACK 0x87", bad.rc == 0x87, str(bad.rc))
    bad.loop_stop()
    other = AuthClient(port, "carol-scram", "x", method="SCRAM-SHA-1")
    check("another authentication method: CONNACK 0x8C", other.rc == 0x8C, str(other.rc))
    other.loop_stop()
    # A token that is never renewed ends the connection after exp + grace.
    late = AuthClient(port, "carol-late", token(claims("carol", int(time.time()) + 1)))
    t0 = time.time()
    wait_for(lambda: late.gone is not None, 6)
    waited = time.time() - t0
    check("no re-authentication: DISCONNECT 0x87 after exp and the grace",
          late.rc == 0 and late.gone == 0x87 and 0.9 < waited < 4.5,
          f"{late.rc} {late.gone} after {waited:.1f} s")
    late.loop_stop()


def bad_login(port, n):
    """A raw 3.1.1 CONNECT with a wrong password; returns the CONNACK code."""
    user, pw = b"bob", b"wrong-%d" % n
    var = b"\x00\x04MQTT\x04\xc2\x00\x3c"
    payload = b"".join(len(x).to_bytes(2, "big") + x for x in (b"bad%d" % n, user, pw))
    body = var + payload
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(4)
    s.close()
    return ack[3] if len(ack) == 4 else None


def backoff_cases(tmp):
    """Per-source backoff: after 3 failures 127.0.0.1 waits (0x9F; 3.1.1
    code 3) even with the right password; once the wait is over a good
    login works and is forgotten; failures and refusals are in /metrics and
    the log names the address but never the password."""
    proc, ports, log = node.start_node(BIN, tmp, [
        "listen=mqtt 127.0.0.1:0", "listen=http 127.0.0.1:0", "workers=2",
        "password_file=" + os.path.join(tmp, "passwd"), "auth_backoff_after=3",
        "auth_backoff_max=2", "state_dir=" + os.path.join(tmp, "s-backoff")])
    port, http_port = ports
    try:
        codes = [bad_login(port, n) for n in range(3)]
        check("three bad logins: 3.1.1 code 4 each", codes == [4, 4, 4], str(codes))
        r = pub(port, "alice", "alice-pw", "data/a", "x")
        check("then even the right password waits: 5.0 CONNACK 0x9F",
              r.returncode != 0 and "rate" in (r.stderr + r.stdout).lower(),
              r.stderr + r.stdout)
        check("3.1.1 while waiting: code 3", bad_login(port, 9) == 3)
        time.sleep(1.1)
        r = pub(port, "alice", "alice-pw", "data/a", "x")
        check("after the wait the right password connects", r.returncode == 0, r.stderr)
        check("a success forgets the failures", bad_login(port, 10) == 4)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=TIMEOUT)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        fails = re.search(r'bulwark_tenant_auth_failures_total\{tenant="default"\} (\d+)', body)
        waits = re.search(r'bulwark_tenant_auth_backoffs_total\{tenant="default"\} (\d+)', body)
        check("metrics count failures and backoff refusals",
              fails and int(fails.group(1)) == 4 and waits and int(waits.group(1)) == 2,
              f"{fails and fails.group(0)} {waits and waits.group(0)}")
        with open(log) as f:
            text = f.read()
        check("failures are logged with the address, never the password",
              "from 127.0.0.1" in text and "wrong-1" not in text and "alice-pw" not in text,
              text[-400:])
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)


def token_kid(claims, kid, secret):
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64u(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


def write_jwks(path, keys):
    with open(path + ".tmp", "w") as f:
        json.dump({"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": b64u(k)}
                            for kid, k in keys]}, f)
    os.replace(path + ".tmp", path)


def reload_cases(tmp, hash_a):
    """SIGHUP reloads the password and ACL files: a user taken out is
    disconnected (0x87), a new one may connect, a subscription the new ACL
    no longer allows is dropped; a file that fails to load leaves the old
    ones in force. A rotated JWK Set is picked up without a signal."""
    d = os.path.join(tmp, "reload")
    os.mkdir(d)
    pw, acl, jwks = (os.path.join(d, n) for n in ("passwd", "acl", "jwks"))
    _, hash_e = hash_password("erin-pw", "--pbkdf2")
    with open(pw, "w") as f:
        f.write(f"alice:{hash_a}\nerin:{hash_e}\n")
    with open(acl, "w") as f:
        f.write("user alice\nallow all data/#\nuser erin\nallow all data/#\n"
                "user frank\nallow all data/#\nuser gina\nallow all data/#\n")
    k1, k2 = b"k1-secret-of-32-bytes-or-more-!!", b"k2-secret-of-32-bytes-or-more-!!"
    write_jwks(jwks, [("k1", k1)])
    proc, ports, log = node.start_node(BIN, tmp, [
        "listen=mqtt 127.0.0.1:0", "workers=2", "password_file=" + pw, "acl_file=" + acl,
        "jwt_jwks_file=" + jwks, "jwt_issuers=https://id.test", "auth_backoff_after=0",
        "state_dir=" + os.path.join(d, "state")])
    port = ports[0]
    try:
        alice = Sub(port, "alice-r", "alice", "alice-pw")
        erin = Sub(port, "erin-r", "erin", "erin-pw")
        alice.subscribe("data/#")
        erin.subscribe("data/#")
        _, hash_f = hash_password("frank-pw", "--pbkdf2")
        with open(pw, "w") as f:
            f.write(f"erin:{hash_e}\nfrank:{hash_f}\n")
        with open(acl, "w") as f:
            f.write("user erin\nallow subscribe other/#\nallow publish #\n"
                    "user frank\nallow all data/#\n")
        proc.send_signal(signal.SIGHUP)
        check("SIGHUP: a user taken out of the password file is disconnected (0x87)",
              wait_for(lambda: alice.gone) and alice.gone == 0x87, str(alice.gone))
        alice.close()
        r = pub(port, "frank", "frank-pw", "data/f", "x")
        check("SIGHUP: a user added to the password file connects", r.returncode == 0,
              r.stderr)
        erin.c.publish("data/e", b"own", 0)
        time.sleep(0.5)
        check("SIGHUP: a subscription the new ACL does not allow is dropped",
              b"own" not in [p for _, p in erin.got] and erin.c.is_connected(), str(erin.got))
        with open(pw, "w") as f:
            f.write("this is not a password file\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        r = pub(port, "frank", "frank-pw", "data/f", "x")
        with open(log) as f:
            text = f.read()
        check("a broken file on SIGHUP: the old ones stay in force, said in the log",
              r.returncode == 0 and "the old ones stay in force" in text, r.stderr)
        with open(pw, "w") as f:  # whole or nothing: the rotation reloads this too
            f.write(f"erin:{hash_e}\nfrank:{hash_f}\n")
        now = int(time.time())
        t2 = token_kid({"sub": "gina", "exp": now + 120, "iss": "https://id.test"}, "k2", k2)
        r = pub(port, "gina", t2, "data/g", "x")
        check("a token signed with a key not yet in the JWK Set is refused", r.returncode != 0)
        write_jwks(jwks, [("k1", k1), ("k2", k2)])
        ok = wait_for(lambda: pub(port, "gina", t2, "data/g", "x").returncode == 0, 8)
        check("the JWK Set rotated on disk: its new key is taken without a signal", ok)
        erin.close()
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        rc_a, hash_a = hash_password("alice-pw", "--pbkdf2")
        rc_b, hash_b = hash_password("bob-pw", "--argon2id")
        check("--hash-password writes $7$ and $argon2id$ hashes",
              rc_a == 0 and hash_a.startswith("$7$") and rc_b == 0 and
              hash_b.startswith("$argon2id$"), f"{hash_a[:20]} {hash_b[:20]}")
        with open(os.path.join(tmp, "passwd"), "w") as f:
            f.write(f"alice:{hash_a}\nbob:{hash_b}\n")
        with open(os.path.join(tmp, "acl"), "w") as f:
            f.write("user alice\nallow all data/#\ndeny subscribe data/secret/#\n"
                    "user bob\nallow subscribe data/#\nallow publish bob/#\n"
                    "everyone\nallow publish %u/#\n")
        with open(os.path.join(tmp, "secret"), "wb") as f:
            f.write(SECRET)
        r = subprocess.run([BIN, "--set", "listen=mqtt 127.0.0.1:0", "--set",
                            "password_file=" + os.path.join(tmp, "missing"), "--set",
                            "state_dir=" + os.path.join(tmp, "s0")],
                           capture_output=True, text=True, timeout=TIMEOUT)
        check("an unreadable password_file stops the node, naming it",
              r.returncode == 1 and "missing" in r.stderr + r.stdout, r.stderr[-200:])
        proc, ports, log = node.start_node(BIN, tmp, [
            "listen=mqtt 127.0.0.1:0", "workers=3",
            "password_file=" + os.path.join(tmp, "passwd"),
            "acl_file=" + os.path.join(tmp, "acl"),
            "jwt_key_file=" + os.path.join(tmp, "secret"), "jwt_key_alg=HS256",
            "jwt_issuers=https://id.test", "jwt_leeway=0", "jwt_grace=1",
            "auth_backoff_after=0"])
        port = ports[0]
        try:
            bob = Sub(port, "bob-sub", "bob", "bob-pw")
            check("paho 5.0: good password connects", bob.rc == 0, str(bob.rc))
            check("subscribe allowed by the ACL", bob.subscribe("data/#") == [0],
                  str(bob.codes))
            r = pub(port, "alice", "alice-pw", "data/a", "hello-5")
            r3 = pub(port, "alice", "alice-pw", "data/b", "hello-311", version="mqttv311")
            check("mosquitto 5.0 and 3.1.1 publish with a password",
                  r.returncode == 0 and r3.returncode == 0, r.stderr + r3.stderr)
            check("the subscriber gets both",
                  wait_for(lambda: {p for _, p in bob.got} >= {b"hello-5", b"hello-311"}),
                  str(bob.got))
            r = pub(port, "bob", "bob-pw", "data/denied", "never", qos=1)
            check("5.0 publish the ACL denies: PUBACK not authorized",
                  "not authorized" in (r.stderr + r.stdout).lower(), r.stderr + r.stdout)
            pub(port, "bob", "bob-pw", "data/denied", "never-311", version="mqttv311", qos=1)
            pub(port, "alice", "alice-pw", "data/after", "marker")
            wait_for(lambda: any(p == b"marker" for _, p in bob.got))
            check("a denied publish never reaches a subscriber",
                  not any(p.startswith(b"never") for _, p in bob.got), str(bob.got))
            r = pub(port, "alice", "wrong", "data/a", "x")
            r3 = pub(port, "alice", "wrong", "data/a", "x", version="mqttv311")
            out = (r.stderr + r.stdout + r3.stderr + r3.stdout).lower()
            check("wrong password refused in both versions",
                  r.returncode != 0 and r3.returncode != 0 and "bad user name or password"
                  in out, out[-300:])
            r = pub(port, None, None, "data/a", "x")
            check("anonymous refused", r.returncode != 0 and "not author" in
                  (r.stderr + r.stdout).lower(), r.stderr)
            alice = Sub(port, "alice-sub", "alice", "alice-pw")
            alice311 = Sub(port, "alice-311", "alice", "alice-pw", version=mqtt.MQTTv311)
            check("5.0 subscribe the ACL denies: SUBACK 0x87",
                  alice.subscribe("data/secret/x") == [0x87], str(alice.codes))
            check("3.1.1 subscribe the ACL denies: SUBACK 0x80",
                  alice311.subscribe("data/secret/x") == [0x80], str(alice311.codes))
            # Password checks run off the workers: 12 Argon2id checks (~120 ms
            # each on two threads) while a connected client keeps a fast round trip.
            results = []
            storm = [threading.Thread(target=lambda n=n: results.append(bad_login(port, n)))
                     for n in range(12)]
            for t in storm:
                t.start()
            time.sleep(0.05)
            worst = 0.0
            for i in range(10):
                n = len(alice.got)
                alice.subscribe("data/rt")
                t0 = time.time()
                alice.c.publish("data/rt", b"rt%d" % i)
                wait_for(lambda: len(alice.got) > n, 2)
                worst = max(worst, time.time() - t0)
            for t in storm:
                t.join(TIMEOUT)
            check("12 bad logins refused (3.1.1 code 4)", results == [4] * 12, str(results))
            check("round trips stay fast while passwords are checked", worst < 0.1,
                  f"worst {worst * 1000:.0f} ms")
            for c in (bob, alice, alice311):
                c.close()
            jwt_cases(port)
            enhanced_cases(port)
            backoff_cases(tmp)
            reload_cases(tmp, hash_a)
        finally:
            proc.terminate()
            code = proc.wait(timeout=TIMEOUT)
        check("SIGTERM: exit 0", code == 0, str(code))
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
