#!/usr/bin/python3
"""Integration test of the admin socket end to end: a real node (two
workers, the embedded tenancy store, mqtt, mqtts and http listeners, an
audit log), driven only through the real `bulwarkctl` binary (--json for
the checks, the text output once per noun), with real MQTT clients (paho
3.1.1 and 5.0, raw CONNECTs) proving that each change is enforced:

- node info, stats (a connected client counted), config reload;
- tenants: create with hostnames and quota flags, list, show, update
  (SNI hostnames and quotas in force), suspend (0x98, CONNECT refused) and
  resume; groups; ACL rules added and deleted under connected clients
  (PUBLISH delivered only once allowed, SUBACK 0x87, a subscription dropped);
  users: add with --password-stdin, passwd (old refused, new accepted),
  disable (0x87, refused) and enable, del; cert map and a tenant CA (mTLS
  in, then out after ca del); JWT issuers with a JWK Set (a token in, an
  expired or wrong-issuer one out); quotas (connections 1: CONNACK 0x97);
- refusals that change nothing and say why (exit 1 or 2, stderr, then a
  --json read); a uid that is not allowed (uid 65534) and the audit log:
  every change with actor uid:0, the refusal, no password anywhere;
- tenant delete --yes: its clients get 0x98, and a re-created tenant of
  the same name finds none of its retained messages and sessions; jwt add
  --key/--alg; sessions list/show/kick; retained list/del; node drain
  (0x9C, no new connections, /readyz 503, sessions kept over a restart).

BW_ADMIN_TEST_ONLY=PHASE,... runs only those phases (seed and audit always
run) of node, tenant, acl, user, cert, jwt, jwt_key, quota, bad, peer,
sessions, retained, tenant_delete, drain. The default runs everything.
With BW_ADMIN_TEST_STORE=pg the node's tenancy store is a fresh PostgreSQL
database on BW_TEST_POSTGRES (skipped, 77, without it). Every wait is
bounded.
Usage: test_admin.py [BULWARK_BINARY [BULWARKCTL_BINARY]]
(default: build/bin/ of this source tree).
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
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import paho.mqtt.client as mqtt
except ImportError:  # e.g. a pyenv python3 first in PATH: use Debian's, which has paho
    if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3":
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import node  # noqa: E402  (tests/integration/node.py)
from node import wait_for, varint, lp, connack  # noqa: E402
from pki import openssl, make_ca, make_cert  # noqa: E402

BUILD_BIN = os.path.join(HERE, "..", "..", "build", "bin")
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(BUILD_BIN, "bulwark")
CTL = sys.argv[2] if len(sys.argv) > 2 else os.path.join(BUILD_BIN, "bulwarkctl")
TIMEOUT = 10
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5
NOBODY = 65534
# Passwords and key material: none may show in the audit log or the node's log.
PW = {"ops": "ops-Pw-8c1f2a", "dev1": "dev1-Pw-5d9e0b", "b1": "beta-Pw-71aa3c",
      "tmp1": "tmp1-Pw-e04b6d", "tmpl": "tmpl-Pw-93cf18", "q1": "quo-Pw-2b7d55",
      "g1": "gamma-Pw-60ce4e"}
NEW_PW = "dev1-NewPw-f3a917"
WEAK_PW = "Wk7zq!"  # 6 bytes: under the node's 8
HS_KEY = b"acme-admin-hs256-secret-0123456789abcdef"

failures = []  # (phase, check name)
passed = 0
phase_now = ["-"]


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}", flush=True)
    else:
        failures.append((phase_now[0], name))
        print(f"FAIL {name} {detail}", flush=True)
    return bool(cond)


def rc_value(rc):
    return rc if isinstance(rc, int) else rc.value


# ---- bulwarkctl ----------------------------------------------------------------

# The verbs that change something: each success must leave an audit line.
CHANGES = {"create", "update", "suspend", "resume", "delete", "add", "del", "passwd",
           "disable", "enable", "map", "set", "kick", "drain", "reload"}


class Res:
    """What one bulwarkctl run gave: rc, js (stdout parsed as JSON, or
    None), out, err."""

    def __init__(self, rc, out, err, js):
        self.rc, self.out, self.err, self.js = rc, out, err, js

    def __str__(self):
        return f"exit {self.rc}; stdout {self.out.strip()[:300]!r}; stderr {self.err.strip()!r}"


class Ctl:
    """bulwarkctl on one node's admin socket. Successful changes are
    recorded as (cmd, tenant) in changes, for the audit check."""

    def __init__(self, sock):
        self.sock, self.changes = sock, []

    def run(self, *args, stdin=None, js=True, uid=None):
        cmd = [CTL, "--socket", self.sock] + (["--json"] if js else []) + list(args)
        if uid is not None:
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] + cmd
        try:
            r = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                               timeout=TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            return Res(None, "", "bulwarkctl did not exit in time", None)
        parsed = None
        if js and r.stdout.strip():
            try:
                parsed = json.loads(r.stdout)
            except ValueError:
                pass
        words = [a for a in args if not a.startswith("-")]
        if r.returncode == 0 and len(words) >= 2 and words[1] in CHANGES:
            tenant = words[2] if words[0] not in ("node", "config") else ""
            self.changes.append((f"{words[0]}.{words[1]}", tenant))
        return Res(r.returncode, r.stdout, r.stderr, parsed)

    def js(self, *args, **kw):
        """The --json result of a command that must succeed (None if not)."""
        r = self.run(*args, **kw)
        return r.js if r.rc == 0 else None

    def table(self, what, *args, first=None):
        """The text output: exit 0 and a first line matching first (a
        table's header, or a `key:` line)."""
        r = self.run(*args, js=False)
        line = r.out.splitlines()[0] if r.out.strip() else ""
        check(f"{what}: text output, exit 0, first line {first!r}",
              r.rc == 0 and re.match(first, line), str(r))
        return r


def names(items, key="name"):
    return sorted(x.get(key) for x in items or [])


# ---- the PKI and tokens ------------------------------------------------------------

def make_pki(d):
    """server-ca signs the server (localhost, the tenants' hostnames,
    127.0.0.1); listener-ca is the mqtts listener's own tls_client_ca;
    acme-ca is acme's device CA (added with `ca add`), signing CN=dev7."""
    make_ca(d, "server-ca", "Admin Test Server CA")
    make_ca(d, "listener-ca", "Admin Test Listener CA")
    make_ca(d, "acme-ca", "Acme Devices CA")
    make_cert(d, "server", "server-ca", "localhost",
              "subjectAltName=DNS:localhost,DNS:acme.test,DNS:beta.test,DNS:mqtt.beta.test,"
              "IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
              "0x1001")
    make_cert(d, "dev7", "acme-ca", "dev7",
              "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=clientAuth\n", "0x2001")
    # An RSA key for `jwt add --key FILE --alg RS256`.
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "jwt-rsa.key", cwd=d)
    openssl("pkey", "-in", "jwt-rsa.key", "-pubout", "-out", "jwt-rsa.pub", cwd=d)


def fingerprint(pem_file):
    """SHA-256 of the certificate's DER, lower-case hex (as ca list names it)."""
    der = openssl("x509", "-in", pem_file, "-outform", "DER", cwd=os.path.dirname(pem_file))
    return hashlib.sha256(der).hexdigest()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwks_hs256():
    return json.dumps({"keys": [{"kty": "oct", "kid": "acme-k1", "alg": "HS256",
                                 "k": b64u(HS_KEY)}]})


def claims(sub, iss, exp_in=600):
    return {"sub": sub, "iss": iss, "exp": int(time.time()) + exp_in, "tenant": "acme"}


def token_hs256(c):
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "acme-k1"}).encode())
    body = b64u(json.dumps(c).encode())
    sig = hmac.new(HS_KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64u(sig)}"


def token_rs256(c, pki):
    head = b64u(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64u(json.dumps(c).encode())
    sig = openssl("dgst", "-sha256", "-sign", "jwt-rsa.key", cwd=pki,
                  data=f"{head}.{body}".encode())
    return f"{head}.{body}.{b64u(sig)}"


# ---- MQTT clients ------------------------------------------------------------------

class Client(mqtt.Client):
    """A paho client that connects to 127.0.0.1 whatever host it names
    (with TLS the host is the SNI name), records its CONNACK (code and
    properties, session present), SUBACK codes, what it receives and the
    first disconnect reason with its time; it never reconnects by itself."""

    def __init__(self, port, cid, user=None, pw=None, version=V5, host="127.0.0.1", tls=None,
                 clean=True, expiry=None, will=None):
        super().__init__(client_id=cid, protocol=version, reconnect_on_failure=False,
                         clean_session=clean if version == V311 else None)
        self.got, self.codes = [], []
        self.ack, self.ack_props, self.present = None, None, None
        self.gone, self.gone_at, self.error = None, None, ""
        self.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.on_connect = self._connected
        self.on_disconnect = self._gone
        self.on_subscribe = self._subscribed
        if user is not None or pw is not None:
            self.username_pw_set(user, pw)
        if tls:
            self.tls_set(**tls)
        if will:
            self.will_set(will[0], will[1], 1)
        props = None
        if version == V5 and expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        try:
            if version == V5:
                self.connect(host, port, 60, clean_start=clean, properties=props)
            else:
                self.connect(host, port, 60)
        except (OSError, ssl.SSLError, ValueError) as e:
            self.ack, self.error = -1, str(e)
            return
        self.loop_start()
        wait_for(lambda: self.ack is not None or self.gone is not None)

    def _create_socket_connection(self):
        return socket.create_connection(("127.0.0.1", self._port), timeout=TIMEOUT)

    def _connected(self, c, u, flags, rc, props=None):
        self.ack, self.ack_props = rc_value(rc), props
        self.present = bool(flags.get("session present"))

    def _gone(self, c, u, rc, props=None):
        if self.gone is None:  # the DISCONNECT's reason, not the closing after it
            self.gone, self.gone_at = rc_value(rc), time.monotonic()

    def _subscribed(self, c, u, mid, granted, props=None):
        self.codes.append([rc_value(g) for g in granted])

    def sub(self, filt, qos=1):
        """Subscribes and waits for the SUBACK: its code, or None."""
        n = len(self.codes)
        try:
            self.subscribe(filt, qos=qos)
        except ValueError:
            return None
        wait_for(lambda: len(self.codes) > n, 5)
        return self.codes[n][0] if len(self.codes) > n else None

    def pub(self, topic, payload, qos=1, retain=False):
        """Publishes; waits for the PUBACK (QoS 1). True when it came."""
        try:
            info = self.publish(topic, payload, qos, retain)
            return qos == 0 or wait_for(info.is_published, 5)
        except (ValueError, RuntimeError):  # not connected (any more)
            return False

    def payloads(self):
        return [p for _, p in list(self.got)]

    @property
    def up(self):
        return self.ack == 0 and self.gone is None and self.is_connected()

    def close(self):
        try:
            self.disconnect()
        except Exception:  # noqa: BLE001  (already gone)
            pass
        self.loop_stop()


def close_all(*clients):
    for c in clients:
        c.close()


def accepted_within(port, user, pw, seconds=2, want=0, version=5):
    """CONNECTs until one gets CONNACK want, for at most seconds. An admin
    write returns once the change is in force on the node; each worker
    takes it at its next tick (100 ms), so a CONNECT right after it may
    still meet the old state."""
    return wait_for(lambda: connack(port, user, pw, version) == want, seconds, 0.05)


def http_get(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


# ---- the node --------------------------------------------------------------------

class Node:
    """The node under test: ports mqtt, mqtts, http; its admin socket in a
    0755 directory (so uid 65534 can reach it), an audit log."""

    def __init__(self, tmp, pki, postgres=None):
        self.tmp, self.pki = tmp, pki
        run = os.path.join(tmp, "run")
        os.makedirs(run, exist_ok=True)
        os.chmod(tmp, 0o755)
        os.chmod(run, 0o755)
        self.state = os.path.join(tmp, "state")
        self.sock = os.path.join(run, "admin.sock")
        self.audit = os.path.join(tmp, "audit.log")
        self.settings = [
            "listen=mqtt 127.0.0.1:0",
            f"listen=mqtts 127.0.0.1:0 tls_client_auth=optional "
            f"tls_client_ca={pki}/listener-ca.pem tls_identity=cn",
            "listen=http 127.0.0.1:0",
            f"tls_cert={pki}/server.pem", f"tls_key={pki}/server.key", "workers=2",
            "auth_backoff_after=0", "sys_interval=0", "state_dir=" + self.state,
            "admin_socket=" + self.sock, "audit_log=" + self.audit]
        self.postgres = postgres
        if postgres:
            self.settings.append("postgres=" + postgres)
        self.logs = []  # the logs of earlier runs (a restart replaces node.log)
        self.start()

    def start(self):
        self.proc, ports, self.log = node.start_node(BIN, self.tmp, self.settings)
        self.mqtt, self.mqtts, self.http = ports
        wait_for(lambda: os.path.exists(self.sock), 5)

    def stop(self, what):
        """SIGTERM; checks it exits 0 (and says so when it had died)."""
        died = self.proc.poll()
        if died is not None:
            check(f"{what}: the node is still running", False, f"exit {died}")
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        check(f"{what}: SIGTERM: exit 0", code == 0, str(code))
        with open(self.log, errors="replace") as f:
            self.logs.append(f.read())

    def restart(self, what):
        self.stop(what)
        self.start()

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return "".join(self.logs) + f.read()

    def tls(self, cert=None):
        o = {"ca_certs": os.path.join(self.pki, "server-ca.pem")}
        if cert:
            o["certfile"] = os.path.join(self.pki, cert + ".pem")
            o["keyfile"] = os.path.join(self.pki, cert + ".key")
        return o


class T:
    """What the phases share: the node, its bulwarkctl, the PKI, files."""

    def __init__(self, n, tmp, pki):
        self.n, self.tmp, self.pki = n, tmp, pki
        self.ctl = Ctl(n.sock)
        self.pw = dict(PW)

    def file(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path


# ---- seed: what the other phases use --------------------------------------------

def seed(t):
    """Tenant acme: group ops (allow all #) with user ops, group sensors (no
    rules yet) with user dev1, both added with --password-stdin."""
    c = t.ctl
    r = c.run("tenant", "create", "acme", "--hostname", "acme.test")
    check("tenant create acme: exit 0, the tenant active with its hostname",
          r.rc == 0 and r.js and r.js.get("status") == "active" and
          r.js.get("hostnames") == ["acme.test"], str(r))
    rs = [c.run("group", "create", "acme", "ops"), c.run("group", "create", "acme", "sensors"),
          c.run("acl", "add", "acme", "--group", "ops", "allow", "all", "#"),
          c.run("user", "add", "acme", "ops", "--group", "ops", "--password-stdin",
                stdin=t.pw["ops"] + "\n"),
          c.run("user", "add", "acme", "dev1", "--group", "sensors", "--password-stdin",
                stdin=t.pw["dev1"] + "\n")]
    check("group create (ops, sensors), acl add, user add --password-stdin (ops, dev1): "
          "exit 0", all(x.rc == 0 for x in rs), " | ".join(str(x) for x in rs if x.rc))
    u = rs[-1].js or {}
    check("user add: the result is the user (password kind, enabled, its group)",
          u.get("name") == "dev1" and u.get("kind") == "password" and u.get("enabled") is True
          and u.get("groups") == ["sensors"], str(rs[-1]))
    check("user add --password-stdin: the users log in with the password given on stdin",
          accepted_within(t.n.mqtt, "dev1@acme", t.pw["dev1"]) and
          accepted_within(t.n.mqtt, "ops@acme", t.pw["ops"], version=4))


# ---- node info, stats, config reload --------------------------------------------

def node_phase(t):
    c, n = t.ctl, t.n
    info = c.js("node", "info") or {}
    ports = sorted(x.get("port") for x in info.get("listeners", []))
    kinds = sorted(x.get("kind") for x in info.get("listeners", []))
    backend = "postgres" if n.postgres else "file"
    check(f"node info: version, workers 2, the three listeners with their ports, the {backend} "
          "store ready", info.get("version") and info.get("workers") == 2 and
          kinds == ["http", "mqtt", "mqtts"] and ports == sorted([n.mqtt, n.mqtts, n.http]) and
          info.get("tenancy", {}).get("backend") == backend and
          info.get("tenancy", {}).get("ready") is True, str(info)[:400])
    c.table("node info", "node", "info", first=r"version:\s+\S")

    cl = Client(n.mqtt, "stats-1", "ops@acme", t.pw["ops"])

    def conns():
        s = c.js("stats", "acme") or {}
        return [x.get("connections") for x in s.get("tenants", []) if x.get("name") == "acme"]
    got = []
    ok = wait_for(lambda: got.append(conns()) or (got[-1] and got[-1][0] >= 1), 3, 0.1)
    check("stats acme: the connected client is counted in connections", cl.ack == 0 and ok,
          f"CONNACK {cl.ack}; {got[-1:]}")
    s = c.js("stats") or {}
    check("stats (all tenants): acme listed with every counter",
          any(x.get("name") == "acme" and {"sessions", "msgs_in", "acl_denials"} <= set(x)
              for x in s.get("tenants", [])), str(s)[:300])
    c.table("stats", "stats", "acme", first=r"TENANT\s+CONN")
    cl.close()

    r = c.run("config", "reload")
    check("config reload: tls, auth_files and tenancy read again, nothing failed",
          r.rc == 0 and r.js and {"tls", "auth_files", "tenancy"} <= set(r.js.get("reloaded", []))
          and r.js.get("failed") == [], str(r))
    c.table("config reload", "config", "reload", first=r"reloaded:\s+\S")
    check("config reload: the node still takes clients",
          connack(n.mqtt, "ops@acme", t.pw["ops"]) == 0)


# ---- tenants -----------------------------------------------------------------------

def tenant_phase(t):
    c, n = t.ctl, t.n
    r = c.run("tenant", "create", "beta", "--hostname", "beta.test", "--connections", "10",
              "--max-qos", "1", "--client-subscriptions", "5")
    q = (r.js or {}).get("quotas", {})
    check("tenant create beta --hostname --connections 10 --max-qos 1 --client-subscriptions "
          "5: the tenant with them", r.rc == 0 and r.js.get("hostnames") == ["beta.test"] and
          q.get("connections") == 10 and q.get("max_qos") == 1 and
          q.get("client_subscriptions") == 5 and q.get("retained_msgs") == 0, str(r))
    lst = c.js("tenant", "list") or {}
    check("tenant list: acme and beta, active", names(lst.get("tenants")) == ["acme", "beta"]
          and all(x.get("status") == "active" for x in lst.get("tenants", [])), str(lst))
    c.table("tenant list", "tenant", "list", first=r"NAME\s+ID\s+STATUS")
    sh = c.js("tenant", "show", "beta") or {}
    check("tenant show beta: status, hostnames, quotas, counts",
          sh.get("name") == "beta" and sh.get("status") == "active" and
          sh.get("quotas", {}).get("connections") == 10 and sh.get("users") == 0 and
          sh.get("cas") == [], str(sh)[:300])
    c.table("tenant show", "tenant", "show", "beta", first=r"name:\s+beta")
    c.run("user", "add", "beta", "b1", "--password-stdin", stdin=t.pw["b1"] + "\n")
    accepted_within(n.mqtt, "b1@beta", t.pw["b1"])

    # The quota flags and the hostname in force.
    b = Client(n.mqtt, "b-qos", "b1@beta", t.pw["b1"])
    mq = getattr(b.ack_props, "MaximumQoS", None)
    check("tenant create --max-qos 1 in force: CONNACK Maximum QoS 1", b.ack == 0 and mq == 1,
          f"{b.ack} {mq}")
    b.close()
    s = Client(n.mqtts, "b-sni", "b1", t.pw["b1"], host="beta.test", tls=n.tls())
    s.close()
    check("tenant create --hostname beta.test in force: SNI beta.test, username b1 (no "
          "@tenant) logs in", s.ack == 0, f"{s.ack} {s.error}")

    r = c.run("tenant", "update", "beta", "--hostname", "mqtt.beta.test", "--max-qos", "2")
    sh = c.js("tenant", "show", "beta") or {}
    q = sh.get("quotas", {})
    time.sleep(0.25)  # every worker's tick takes it
    check("tenant update beta --hostname mqtt.beta.test --max-qos 2: hostnames replaced, "
          "max_qos 2, the other quotas kept", r.rc == 0 and
          sh.get("hostnames") == ["mqtt.beta.test"] and q.get("max_qos") == 2 and
          q.get("connections") == 10 and q.get("client_subscriptions") == 5, f"{r} {sh}")
    s1 = Client(n.mqtts, "b-sni-new", "b1", t.pw["b1"], host="mqtt.beta.test", tls=n.tls())
    s2 = Client(n.mqtts, "b-sni-old", "b1", t.pw["b1"], host="beta.test", tls=n.tls())
    b = Client(n.mqtt, "b-qos2", "b1@beta", t.pw["b1"])
    mq = getattr(b.ack_props, "MaximumQoS", 2)
    close_all(s1, s2, b)
    check("tenant update in force: SNI mqtt.beta.test logs b1 in, beta.test no longer does; "
          "Maximum QoS 2", s1.ack == 0 and s2.ack not in (0, None) and b.ack == 0 and mq == 2,
          f"{s1.ack} {s2.ack} {b.ack} {mq}")

    # Suspend and resume.
    b5 = Client(n.mqtt, "b-live-5", "b1@beta", t.pw["b1"])
    b3 = Client(n.mqtt, "b-live-3", "b1@beta", t.pw["b1"], V311)
    t0 = time.monotonic()
    r = c.run("tenant", "suspend", "beta")
    wait_for(lambda: b5.gone is not None and b3.gone is not None, 3)
    dt = (b5.gone_at - t0) if b5.gone_at else None
    check("tenant suspend beta: status suspended", r.rc == 0 and r.js and
          r.js.get("status") == "suspended", str(r))
    check("tenant suspend: the connected 5.0 client gets DISCONNECT 0x98 (within 1 s), the "
          "3.1.1 one is closed", b5.ack == 0 and b3.ack == 0 and b5.gone == 0x98 and
          dt is not None and dt < 1 and b3.gone not in (None, 0), f"{b5.gone} {dt} {b3.gone}")
    close_all(b5, b3)
    check("tenant suspend: a new CONNECT of the tenant is refused (0x87; 3.1.1: 5)",
          connack(n.mqtt, "b1@beta", t.pw["b1"]) == 0x87 and
          connack(n.mqtt, "b1@beta", t.pw["b1"], 4) == 5)
    lst = c.js("tenant", "list") or {}
    check("tenant list: beta suspended",
          any(x.get("name") == "beta" and x.get("status") == "suspended"
              for x in lst.get("tenants", [])), str(lst))
    r = c.run("tenant", "resume", "beta")
    check("tenant resume beta: active, its clients log in again",
          r.rc == 0 and r.js and r.js.get("status") == "active" and
          accepted_within(n.mqtt, "b1@beta", t.pw["b1"]), str(r))


# ---- groups and ACL rules ---------------------------------------------------------

def acl_phase(t):
    c, n = t.ctl, t.n
    r = c.run("group", "create", "acme", "extra")
    check("group create acme extra", r.rc == 0 and r.js and r.js.get("name") == "extra", str(r))
    g = c.js("group", "list", "acme") or {}
    check("group list acme: extra, ops, sensors; ops with its rule",
          names(g.get("groups")) == ["extra", "ops", "sensors"] and
          any(x["name"] == "ops" and x.get("rules") == [{"n": 1, "text": "allow all #"}]
              for x in g.get("groups", [])), str(g))
    c.table("group list", "group", "list", "acme", first=r"NAME\s+RULES")
    r = c.run("group", "delete", "acme", "extra")
    g = c.js("group", "list", "acme") or {}
    check("group delete acme extra: gone from group list", r.rc == 0 and
          names(g.get("groups")) == ["ops", "sensors"], f"{r} {g}")

    w = Client(n.mqtt, "acl-watch", "ops@acme", t.pw["ops"])
    w.sub("data/#")
    d = Client(n.mqtt, "acl-dev1", "dev1@acme", t.pw["dev1"])
    d.pub("data/1", b"before-rule")
    time.sleep(0.3)
    check("acl: without a rule dev1's PUBLISH to data/1 reaches no one",
          w.ack == 0 and d.ack == 0 and b"before-rule" not in w.payloads(), str(w.got))
    r = c.run("acl", "add", "acme", "--group", "sensors", "allow", "publish", "data/#")
    check("acl add acme --group sensors allow publish data/#: the list after it",
          r.rc == 0 and r.js and [x.get("text") for x in r.js.get("rules", [])] ==
          ["allow publish data/#"], str(r))
    i = [0]

    def delivered():
        i[0] += 1
        p = f"after-rule-{i[0]}".encode()
        d.pub("data/1", p)
        return wait_for(lambda: p in w.payloads(), 0.3)
    check("acl add: the connected dev1's PUBLISH is delivered once the rule is in",
          wait_for(delivered, 3, 0) and d.up, f"{i[0]} tries; {d.gone}")

    check("acl: a subscription without a rule: SUBACK 0x87", d.sub("cmd/#") == 0x87)
    r1 = c.run("acl", "add", "acme", "--user", "dev1", "allow", "subscribe", "cmd/#")
    r2 = c.run("acl", "add", "acme", "--user", "dev1", "allow", "subscribe", "keep/#")
    granted = []
    wait_for(lambda: granted.append(d.sub("cmd/#")) or granted[-1] == 1, 2, 0.05)
    granted = granted[-1]
    d.sub("keep/#")
    w.pub("cmd/x", b"cmd-1")
    check("acl add --user dev1 allow subscribe cmd/#: the subscription is granted and gets "
          "messages", r1.rc == 0 and r2.rc == 0 and granted == 1 and
          wait_for(lambda: b"cmd-1" in d.payloads(), 3), f"{r1} {granted} {d.got}")
    a = c.js("acl", "list", "acme") or {}
    owners = sorted({x.get("owner") for x in a.get("rules", [])})
    check("acl list acme: every owner's rules", owners == ["group:ops", "group:sensors",
                                                            "user:dev1"], str(a))
    a = c.js("acl", "list", "acme", "--user", "dev1") or {}
    check("acl list acme --user dev1: numbered from 1",
          [(x.get("n"), x.get("text")) for x in a.get("rules", [])] ==
          [(1, "allow subscribe cmd/#"), (2, "allow subscribe keep/#")], str(a))
    c.table("acl list", "acl", "list", "acme", first=r"OWNER\s+N\s+RULE")

    r = c.run("acl", "del", "acme", "--user", "dev1", "1")
    check("acl del acme --user dev1 1: the list after it",
          r.rc == 0 and r.js and [x.get("text") for x in r.js.get("rules", [])] ==
          ["allow subscribe keep/#"], str(r))
    # Each probe goes to cmd/ and then keep/: once keep's arrives without
    # cmd's, the connected client's cmd/# subscription is gone.
    j = [0]

    def dropped():
        j[0] += 1
        pc, pk = f"cmd-probe-{j[0]}".encode(), f"keep-probe-{j[0]}".encode()
        w.pub("cmd/x", pc)
        w.pub("keep/x", pk)
        return wait_for(lambda: pk in d.payloads(), 1) and pc not in d.payloads()
    check("acl del: the connected client's subscription the rule allowed is dropped, the "
          "connection and its other subscription stay",
          wait_for(dropped, 3, 0.05) and d.up, f"{j[0]} probes; {d.gone}")
    close_all(w, d)


# ---- users ---------------------------------------------------------------------------

def user_phase(t):
    c, n = t.ctl, t.n
    u = c.js("user", "list", "acme") or {}
    check("user list acme: dev1 and ops, password users, enabled",
          names(u.get("users")) == ["dev1", "ops"] and
          all(x.get("kind") == "password" and x.get("enabled") for x in u.get("users", [])),
          str(u))
    c.table("user list", "user", "list", "acme", first=r"NAME\s+KIND\s+ENABLED")
    s = c.js("user", "show", "acme", "dev1") or {}
    check("user show acme dev1: kind, enabled, groups, own rules (numbered)",
          s.get("kind") == "password" and s.get("groups") == ["sensors"] and
          isinstance(s.get("rules"), list) and
          all({"n", "text"} <= set(x) for x in s.get("rules")) and
          s.get("enabled") is True, str(s))
    c.table("user show", "user", "show", "acme", "dev1", first=r"name:\s+dev1")

    r = c.run("user", "passwd", "acme", "dev1", stdin=NEW_PW + "\n")
    # In force on this node when bulwarkctl returns: the first try, no retry.
    first_old, first_new = connack(n.mqtt, "dev1@acme", t.pw["dev1"]), connack(
        n.mqtt, "dev1@acme", NEW_PW)
    check("user passwd: in force when it returns (first CONNECTs: old 0x86, new 0)",
          first_old == 0x86 and first_new == 0, f"{first_old} {first_new}")
    old = accepted_within(n.mqtt, "dev1@acme", t.pw["dev1"], want=0x86)
    new = accepted_within(n.mqtt, "dev1@acme", NEW_PW)
    check("user passwd (stdin): the old password is refused (0x86), the new one accepted",
          r.rc == 0 and old and new, f"{r} old refused {old} new accepted {new}")
    t.pw["dev1"] = NEW_PW

    d5 = Client(n.mqtt, "u-dev1-5", "dev1@acme", NEW_PW)
    d3 = Client(n.mqtt, "u-dev1-3", "dev1@acme", NEW_PW, V311)
    t0 = time.monotonic()
    r = c.run("user", "disable", "acme", "dev1")
    wait_for(lambda: d5.gone is not None and d3.gone is not None, 3)
    dt = (d5.gone_at - t0) if d5.gone_at else None
    check("user disable acme dev1: enabled false", r.rc == 0 and r.js and
          r.js.get("enabled") is False, str(r))
    check("user disable: the connected 5.0 client gets DISCONNECT 0x87 (within 1 s), the "
          "3.1.1 one is closed", d5.ack == 0 and d3.ack == 0 and d5.gone == 0x87 and
          dt is not None and dt < 1 and d3.gone not in (None, 0), f"{d5.gone} {dt} {d3.gone}")
    close_all(d5, d3)
    check("user disable: a new CONNECT is refused (0x86)",
          accepted_within(n.mqtt, "dev1@acme", NEW_PW, want=0x86))
    r = c.run("user", "enable", "acme", "dev1")
    check("user enable: enabled, logs in again", r.rc == 0 and r.js and
          r.js.get("enabled") is True and accepted_within(n.mqtt, "dev1@acme", NEW_PW), str(r))

    r = c.run("user", "add", "acme", "tmp1", "--password-stdin", stdin=t.pw["tmp1"] + "\n")
    ok = r.rc == 0 and accepted_within(n.mqtt, "tmp1@acme", t.pw["tmp1"])
    r = c.run("user", "del", "acme", "tmp1")
    gone = c.run("user", "show", "acme", "tmp1")
    check("user del acme tmp1: deleted, user show says not_found, its CONNECT is refused",
          ok and r.rc == 0 and r.js and r.js.get("deleted") is True and gone.rc == 1 and
          "not_found" in gone.err and
          accepted_within(n.mqtt, "tmp1@acme", t.pw["tmp1"], want=0x86),
          f"{r} {gone}")


# ---- certificates: cert map, ca add/list/del --------------------------------------

def cert_phase(t):
    c, n = t.ctl, t.n
    c.run("user", "add", "acme", "tmpl", "--group", "sensors", "--password-stdin",
          stdin=t.pw["tmpl"] + "\n")
    c.run("acl", "add", "acme", "--user", "tmpl", "allow", "publish", "data/dev7/#")
    c.table("cert map", "cert", "map", "acme", "dev7", "tmpl", first=r"name:\s+dev7")
    u = c.js("user", "show", "acme", "dev7") or {}
    check("cert map acme dev7 tmpl: a certificate principal with tmpl's groups and rules",
          u.get("kind") == "certificate" and u.get("groups") == ["sensors"] and
          [x.get("text") for x in u.get("rules", [])] == ["allow publish data/dev7/#"], str(u))

    def mtls(cid):
        return connack(n.mqtts, None, None, cid=cid, tls=n.tls("dev7"))
    before = mtls("dev7-before")
    check("before ca add: dev7's certificate (acme's CA) does not log in", before != 0,
          str(before))

    fp = fingerprint(os.path.join(t.pki, "acme-ca.pem"))
    r = c.run("ca", "add", "acme", os.path.join(t.pki, "acme-ca.pem"))
    cas = (r.js or {}).get("cas", [])
    check("ca add acme acme-ca.pem: listed by its SHA-256 fingerprint and subject",
          r.rc == 0 and [x.get("fingerprint") for x in cas] == [fp] and
          "Acme Devices CA" in cas[0].get("subject", ""), str(r))
    lst = c.js("ca", "list", "acme") or {}
    check("ca list acme: the CA", [x.get("fingerprint") for x in lst.get("cas", [])] == [fp],
          str(lst))
    c.table("ca list", "ca", "list", "acme", first=r"FINGERPRINT")

    w = Client(n.mqtt, "cert-watch", "ops@acme", t.pw["ops"])
    w.sub("data/#")
    cl = None

    def in_():
        nonlocal cl
        if cl:
            cl.close()
        cl = Client(n.mqtts, "dev7", None, None, host="localhost", tls=n.tls("dev7"))
        return cl.ack == 0
    ok = wait_for(in_, 3, 0.1)
    pub = ok and cl.pub("data/dev7/x", b"from-dev7") and \
        wait_for(lambda: b"from-dev7" in w.payloads(), 3)
    sub = cl.sub("cmd/#") if ok else None
    check("ca add: dev7 logs in over mTLS (no username), in acme, as dev7 with tmpl's rules "
          "(publish data/dev7/x delivered, subscribe cmd/# 0x87)", ok and pub and sub == 0x87,
          f"CONNACK {cl.ack if cl else None} {cl.error if cl else ''} pub {pub} sub {sub}")
    close_all(cl, w)

    r = c.run("ca", "del", "acme", fp)
    check("ca del acme FINGERPRINT: no CA left", r.rc == 0 and r.js and
          r.js.get("cas") == [], str(r))
    last = []
    check("ca del: dev7's certificate no longer logs in",
          wait_for(lambda: last.append(mtls("dev7-after")) or last[-1] != 0, 3, 0.1),
          str(last[-1:]))


# ---- JWT --------------------------------------------------------------------------

ISS = "https://id.acme.test"
ISS_RSA = "https://rsa.acme.test"


def jwt_phase(t):
    c, n = t.ctl, t.n
    r = c.run("user", "add", "acme", "svc", "--group", "ops", "--token")
    check("user add --token: a token principal svc in acme",
          r.rc == 0 and (c.js("user", "show", "acme", "svc") or {}).get("kind") == "token",
          str(r))
    good = token_hs256(claims("svc", ISS))
    check("before jwt add: acme's token does not log in",
          connack(n.mqtt, "svc", good) not in (0, None))
    f = t.file("acme.jwks", jwks_hs256())
    r = c.run("jwt", "add", "acme", "--issuer", ISS, "--jwks", f)
    jw = (r.js or {}).get("jwt", {})
    check("jwt add acme --issuer --jwks FILE: the issuer and the key's kid",
          r.rc == 0 and jw.get("issuers") == [ISS] and
          [k.get("kid") for k in jw.get("keys", [])] == ["acme-k1"], str(r))
    lst = (c.js("jwt", "list", "acme") or {}).get("jwt", {})
    check("jwt list acme: the issuer and key", lst.get("issuers") == [ISS] and
          [(k.get("kid"), k.get("alg")) for k in lst.get("keys", [])] ==
          [("acme-k1", "HS256")], str(lst))
    c.table("jwt list", "jwt", "list", "acme", first=r"issuers:")
    accepted_within(n.mqtt, "svc", good)
    codes = {"good 5.0": connack(n.mqtt, "svc", good), "good 3.1.1": connack(n.mqtt, "svc", good,
                                                                              4)}
    check("jwt: a token of the issuer logs in (5.0 and 3.1.1)",
          list(codes.values()) == [0, 0], str(codes))
    expired = token_hs256(claims("svc", ISS, -3600))
    wrong = token_hs256(claims("svc", "https://evil.test"))
    codes = {"expired": connack(n.mqtt, "svc", expired), "wrong iss": connack(n.mqtt, "svc",
                                                                              wrong)}
    check("jwt: an expired token and one of another issuer are refused (0x86)",
          list(codes.values()) == [0x86, 0x86], str(codes))
    r = c.run("jwt", "del", "acme", ISS)
    check("jwt del acme ISSUER: no issuer left, and the token is refused",
          r.rc == 0 and r.js and r.js.get("jwt", {}).get("issuers") == [] and
          wait_for(lambda: connack(n.mqtt, "svc", good) not in (0, None), 3, 0.05), str(r))


def jwt_key_phase(t):
    """jwt add --key FILE --alg RS256."""
    c, n = t.ctl, t.n
    if not c.js("user", "show", "acme", "svc"):
        t.add_token_principal("acme", "svc", ["ops"])
    good = token_rs256(claims("svc", ISS_RSA), t.pki)
    r = c.run("jwt", "add", "acme", "--issuer", ISS_RSA, "--key",
              os.path.join(t.pki, "jwt-rsa.pub"), "--alg", "RS256")
    accepted_within(n.mqtt, "svc", good)
    jw = (r.js or {}).get("jwt", {})
    check("jwt add acme --issuer --key FILE --alg RS256: the issuer and an RS256 key",
          r.rc == 0 and ISS_RSA in jw.get("issuers", []) and
          any(k.get("alg") == "RS256" for k in jw.get("keys", [])), str(r))
    codes = [connack(n.mqtt, "svc", good),
             connack(n.mqtt, "svc", token_rs256(claims("svc", ISS_RSA, -3600), t.pki))]
    check("jwt --key RS256: a token signed with the key logs in, an expired one does not",
          codes == [0, 0x86], str(codes))
    if r.rc == 0:
        c.run("jwt", "del", "acme", ISS_RSA)


# ---- quotas ------------------------------------------------------------------------

def quota_phase(t):
    c, n = t.ctl, t.n
    c.run("tenant", "create", "quo")
    c.run("user", "add", "quo", "q1", "--password-stdin", stdin=t.pw["q1"] + "\n")
    r = c.run("quota", "set", "quo", "connections", "1")
    accepted_within(n.mqtt, "q1@quo", t.pw["q1"])  # the user and the quota are in force
    check("quota set quo connections 1: set and in force",
          r.rc == 0 and r.js and r.js.get("quotas", {}).get("connections") == 1 and
          r.js.get("effective", {}).get("connections") == 1, str(r))
    s = c.js("quota", "show", "quo") or {}
    check("quota show quo: connections 1, the rest the node's defaults",
          s.get("quotas", {}).get("connections") == 1 and
          s.get("quotas", {}).get("retained_msgs") == 0 and
          s.get("effective", {}).get("client_subscriptions", 0) > 0, str(s)[:300])
    c.table("quota show", "quota", "show", "quo", first=r"QUOTA\s+VALUE\s+EFFECTIVE")
    c1 = Client(n.mqtt, "quo-1", "q1@quo", t.pw["q1"])
    c2 = Client(n.mqtt, "quo-2", "q1@quo", t.pw["q1"])
    check("quota connections 1: the second client of the tenant gets CONNACK 0x97",
          c1.ack == 0 and c2.ack == 0x97, f"{c1.ack} {c2.ack}")
    c2.close()
    r = c.run("quota", "set", "quo", "connections", "0")
    time.sleep(0.25)  # every worker's tick takes it
    c3 = Client(n.mqtt, "quo-3", "q1@quo", t.pw["q1"])
    check("quota set quo connections 0 (the node's default): a second client gets in",
          r.rc == 0 and r.js and r.js.get("quotas", {}).get("connections") == 0 and
          c3.ack == 0, f"{r} {c3.ack}")
    close_all(c1, c3)


# ---- refusals that change nothing -----------------------------------------------

def admin_request(sock, cmd, args):
    """One request straight on the socket (for what bulwarkctl itself
    refuses before sending): the answer, parsed."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    try:
        s.connect(sock)
        s.sendall(json.dumps({"v": 1, "cmd": cmd, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return json.loads(buf)
    except (OSError, ValueError) as e:
        return {"error": str(e)}
    finally:
        s.close()


def bad_phase(t):
    c, n = t.ctl, t.n

    def refused(name, args, rc, words, read, stdin=None):
        """args is refused with exit rc and stderr naming words; read (a
        --json read) shows the same before and after."""
        before = c.js(*read)
        r = c.run(*args, stdin=stdin)
        after = c.js(*read)
        err = r.err.lower()
        check(f"refused: {name}: exit {rc}, stderr names {words}, nothing changed",
              r.rc == rc and all(w.lower() in err for w in words) and before is not None and
              before == after, f"{r}\nbefore {before}\nafter {after}")

    tenants = ("tenant", "list")
    refused("group create in an unknown tenant", ("group", "create", "nosuch", "g"), 1,
            ["not_found", "nosuch"], tenants)
    refused("user add in an unknown tenant", ("user", "add", "nosuch", "u", "--password-stdin"),
            1, ["not_found", "nosuch"], tenants, stdin="Unknown-Pw-1234\n")
    refused("tenant suspend of an unknown tenant", ("tenant", "suspend", "nosuch"), 1,
            ["not_found", "nosuch"], tenants)
    refused("a duplicate tenant", ("tenant", "create", "acme", "--hostname", "other.test"), 1,
            ["exists", "acme"], ("tenant", "show", "acme"))
    refused("a duplicate group", ("group", "create", "acme", "ops"), 1, ["exists", "ops"],
            ("group", "list", "acme"))
    refused("a duplicate user", ("user", "add", "acme", "dev1", "--password-stdin"), 1,
            ["exists", "dev1"], ("user", "list", "acme"), stdin="Other-Pw-98765\n")
    check("refused: the duplicate user add kept dev1's password",
          connack(n.mqtt, "dev1@acme", t.pw["dev1"]) == 0 and
          connack(n.mqtt, "dev1@acme", "Other-Pw-98765") == 0x86)
    refused("an invalid ACL filter a/#/b",
            ("acl", "add", "acme", "--group", "sensors", "allow", "subscribe", "a/#/b"), 1,
            ["invalid", "a/#/b"], ("acl", "list", "acme"))
    refused("an empty password", ("user", "add", "acme", "u-empty", "--password-stdin"), 1,
            ["empty"], ("user", "list", "acme"), stdin="\n")
    refused("no password on stdin", ("user", "passwd", "acme", "dev1"), 1, ["password"],
            ("user", "list", "acme"), stdin="")
    refused("a weak (6-byte) password", ("user", "add", "acme", "u-weak", "--password-stdin"),
            1, ["invalid", "password", "8"], ("user", "list", "acme"), stdin=WEAK_PW + "\n")
    refused("a weak password for passwd", ("user", "passwd", "acme", "dev1"), 1,
            ["invalid", "password"], ("user", "show", "acme", "dev1"), stdin=WEAK_PW + "\n")
    check("refused: dev1's password is unchanged after the weak passwd",
          connack(n.mqtt, "dev1@acme", t.pw["dev1"]) == 0)
    bad_pem = t.file("bad.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                     "-----END CERTIFICATE-----\n")
    refused("malformed PEM for ca add", ("ca", "add", "acme", bad_pem), 1, ["invalid", "pem"],
            ("ca", "list", "acme"))
    empty = t.file("empty.jwks", '{"keys": []}')
    refused("a JWK Set without keys", ("jwt", "add", "acme", "--issuer", ISS, "--jwks", empty),
            1, ["invalid", "jwks"], ("jwt", "list", "acme"))
    refused("--max-qos 3 (usage)", ("quota", "set", "acme", "max-qos", "3"), 2,
            ["3", "range"], ("quota", "show", "acme"))
    refused("tenant update --max-qos 3 (usage)", ("tenant", "update", "acme", "--max-qos", "3"),
            2, ["--max-qos", "range"], ("tenant", "show", "acme"))
    refused("quota set with a word for a number (usage)",
            ("quota", "set", "acme", "connections", "10k"), 2, ["10k"], ("quota", "show", "acme"))
    # bulwarkctl checks every range before it sends; the node checks again
    # for any other client. Said straight on the socket:
    before = c.js("quota", "show", "acme")
    a = admin_request(n.sock, "quota.set", {"tenant": "acme", "key": "max_packet_bytes",
                                            "value": 300000000})
    check("refused by the node: quota max_packet_bytes 300000000 (over MQTT's largest "
          "packet): invalid, the message names the field, nothing changed",
          a.get("ok") is False and a.get("error", {}).get("code") == "invalid" and
          "max_packet_bytes" in a.get("error", {}).get("message", "") and
          c.js("quota", "show", "acme") == before, str(a))
    refused("an unknown command", ("frobnicate", "now"), 2, ["unknown command"], tenants)
    refused("an unknown tenant verb", ("tenant", "explode", "acme"), 2, ["explode"], tenants)
    refused("tenant show without NAME", ("tenant", "show"), 2, ["missing", "name"], tenants)
    refused("user add without USER", ("user", "add", "acme"), 2, ["missing", "user"],
            ("user", "list", "acme"))
    refused("acl del without N", ("acl", "del", "acme", "--group", "ops"), 2, ["missing"],
            ("acl", "list", "acme"))
    refused("--password on the command line", ("user", "add", "acme", "u-cl", "--password",
                                               "Cmdline-Pw-123"), 2, ["--password"],
            ("user", "list", "acme"))
    refused("tenant delete without --yes", ("tenant", "delete", "beta"), 2, ["--yes"], tenants)
    check("audit: a refused change is audited with its error (tenant.create acme: exists)",
          any(x.get("action") == "tenant.create" and x.get("tenant") == "acme" and
              x.get("result") == "exists" and x.get("actor") == f"uid:{os.geteuid()}"
              for x in audit_lines(n)))


# ---- who may use the socket, and the audit log ------------------------------------

def peer_phase(t):
    c, n = t.ctl, t.n
    if os.geteuid() != 0:
        print(f"note: not root: the uid {NOBODY} checks are skipped", flush=True)
        return
    mode = stat.S_IMODE(os.stat(n.sock).st_mode)
    check("the admin socket is mode 0600", mode == 0o600, oct(mode))
    r = c.run("node", "info", uid=NOBODY)
    check(f"uid {NOBODY}, socket 0600: exit 1, permission denied (the kernel's refusal)",
          r.rc == 1 and "permission denied" in r.err.lower(), str(r))
    # Past the file mode (an operator's chmod): the node's own peer check.
    # Five tries each: the node answers and closes at once, and bulwarkctl
    # must still print that answer, whenever its own write happens.
    os.chmod(n.sock, 0o666)
    try:
        rs = [c.run("node", "info", uid=NOBODY) for _ in range(5)] + \
            [c.run("tenant", "create", "evil", uid=NOBODY) for _ in range(5)]
    finally:
        os.chmod(n.sock, 0o600)
    bad = [str(r) for r in rs if r.rc != 1 or "denied: " not in r.err]
    check(f"uid {NOBODY}, socket made 0666: exit 1 and the node's `denied` to every read and "
          f"change ({len(rs) - len(bad)} of {len(rs)})", not bad, " | ".join(bad[:3]))
    check("the denied change changed nothing (no tenant evil)",
          c.run("tenant", "show", "evil").rc == 1)
    lines = audit_lines(n)
    mine = [x for x in lines if x.get("actor") == f"uid:{NOBODY}" and
            x.get("result") == "denied"]
    check(f"audit: a line for each refused connection of uid {NOBODY}", len(mine) >= len(rs),
          str(lines[-3:]))


def audit_lines(n):
    out = []
    with open(n.audit, errors="replace") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"unparsed": line})
    return out


def audit_phase(t):
    n = t.n
    lines = audit_lines(n)
    me = f"uid:{os.geteuid()}"
    check("audit: every line is JSON with time, actor, tenant, action, target, result, reason",
          lines and all({"time", "actor", "tenant", "action", "target", "result", "reason"}
                        <= set(x) for x in lines), str([x for x in lines if "unparsed" in x][:2]))
    have = {}
    for x in lines:
        if x.get("actor") == me and x.get("result") == "ok":
            key = (x.get("action"), x.get("tenant"))
            have[key] = have.get(key, 0) + 1
    want = {}
    for key in t.ctl.changes:
        want[key] = want.get(key, 0) + 1
    missing = {k: (v, have.get(k, 0)) for k, v in want.items() if have.get(k, 0) < v}
    check(f"audit: every successful change ({len(t.ctl.changes)}) has its line with actor "
          f"{me}, result ok", want and not missing, f"missing (wanted, found): {missing}")
    reads = [x for x in lines if x.get("action") in ("node.info", "stats", "tenant.list")]
    check("audit: reads are not audited", not reads, str(reads[:2]))
    secrets = list(t.pw.values()) + list(PW.values()) + [
        NEW_PW, WEAK_PW, "Other-Pw-98765", "Unknown-Pw-1234", "Cmdline-Pw-123",
        HS_KEY.decode(), b64u(HS_KEY)]
    with open(n.audit, errors="replace") as f:
        audit = f.read()
    logs = n.log_text()
    leaks = sorted({s for s in secrets if s in audit or s in logs})
    check("no password or key material in the audit log or the node's log", not leaks,
          str(leaks))


# ---- sessions, retained messages, tenant delete, drain ----------------------------

def sessions_phase(t):
    """sessions list/show/kick."""
    c, n = t.ctl, t.n
    s = Client(n.mqtt, "sess-1", "ops@acme", t.pw["ops"], clean=False, expiry=300,
               will=("will/sess-1", b"bye"))
    s.sub("data/#", 1)
    o = Client(n.mqtt, "other-1", "ops@acme", t.pw["ops"])
    lst = c.js("sessions", "list", "acme") or {}
    row = next((x for x in lst.get("sessions", []) if x.get("client_id") == "sess-1"), {})
    check("sessions list acme: sess-1 connected, persistent, 1 subscription, its node",
          row.get("connected") is True and row.get("persistent") is True and
          row.get("subscriptions") == 1 and row.get("queued") == 0 and "inflight" in row and
          row.get("node") and lst.get("truncated") is False, str(lst)[:400])
    g = c.js("sessions", "list", "acme", "--client-id", "sess-*") or {}
    check("sessions list --client-id 'sess-*': only the matching ones",
          [x.get("client_id") for x in g.get("sessions", [])] == ["sess-1"], str(g)[:300])
    c.table("sessions list", "sessions", "list", "acme", first=r"CLIENT")
    sh = c.js("sessions", "show", "acme", "sess-1") or {}
    subs = sh.get("subscriptions", [])
    check("sessions show acme sess-1: username, protocol 5, expiry 300, will, the "
          "subscription with its options",
          sh.get("connected") is True and sh.get("persistent") is True and
          str(sh.get("username", "")).startswith("ops") and sh.get("protocol") == 5 and
          sh.get("expiry_s") == 300 and sh.get("will") is True and len(subs) == 1 and
          subs[0].get("filter") == "data/#" and subs[0].get("qos") == 1 and
          subs[0].get("no_local") is False and subs[0].get("retain_as_published") is False and
          subs[0].get("retain_handling") == 0 and "id" in subs[0], str(sh)[:500])
    c.table("sessions show", "sessions", "show", "acme", "sess-1", first=r"client_id:")
    s.close()
    for i in range(3):
        o.pub("data/q", f"queued-{i}".encode())
    got = []
    check("sessions show, offline: connected false, protocol null, 3 queued",
          wait_for(lambda: got.append(c.js("sessions", "show", "acme", "sess-1") or {}) or
                   (got[-1].get("connected") is False and got[-1].get("queued") == 3), 3, 0.1)
          and got[-1].get("protocol") is None, str(got[-1:])[:400])

    s = Client(n.mqtt, "sess-1", "ops@acme", t.pw["ops"], clean=False, expiry=300)
    r = c.run("sessions", "kick", "acme", "sess-1")
    wait_for(lambda: s.gone is not None, 3)
    after = c.js("sessions", "show", "acme", "sess-1") or {}
    check("sessions kick acme sess-1: kicked, not discarded; DISCONNECT 0x98; the session "
          "stays", r.rc == 0 and r.js == {"kicked": True, "discarded": False} and
          s.gone == 0x98 and after.get("persistent") is True and
          after.get("connected") is False, f"{r} {s.gone} {after}")
    s.close()
    s = Client(n.mqtt, "sess-1", "ops@acme", t.pw["ops"], clean=False, expiry=300)
    r = c.run("sessions", "kick", "acme", "sess-1", "--discard")
    wait_for(lambda: s.gone is not None, 3)
    s.close()
    gone = c.run("sessions", "show", "acme", "sess-1")
    s2 = Client(n.mqtt, "sess-1", "ops@acme", t.pw["ops"], clean=False, expiry=300)
    s2.close()
    check("sessions kick --discard: kicked and discarded; 0x98; show says not_found; the "
          "client finds no session", r.rc == 0 and r.js == {"kicked": True, "discarded": True}
          and s.gone == 0x98 and gone.rc == 1 and "not_found" in gone.err and
          s2.ack == 0 and s2.present is False, f"{r} {s.gone} {gone} {s2.present}")
    for args in (("sessions", "kick", "acme", "nosuch"), ("sessions", "show", "acme", "nosuch")):
        r = c.run(*args)
        check(f"{' '.join(args[:2])} of an unknown client: exit 1, not_found",
              r.rc == 1 and "not_found" in r.err, str(r))
    o.close()
    # Leave nothing behind for the drain's count.
    Client(n.mqtt, "sess-1", "ops@acme", t.pw["ops"], clean=True, expiry=0).close()


def retained_phase(t):
    """retained list/del."""
    c, n = t.ctl, t.n
    p = Client(n.mqtt, "ret-pub", "ops@acme", t.pw["ops"])
    ok = p.pub("status/a", b"A", retain=True) and p.pub("status/b", b"BB", retain=True)
    p.close()
    lst = c.js("retained", "list", "acme") or {}
    rows = {x.get("topic"): x for x in lst.get("retained", [])}
    check("retained list acme: status/a (1 byte) and status/b (2 bytes), QoS 1",
          ok and rows.get("status/a", {}).get("bytes") == 1 and
          rows.get("status/b", {}).get("bytes") == 2 and
          rows.get("status/a", {}).get("qos") == 1 and lst.get("truncated") is False,
          str(lst)[:300])
    f = c.js("retained", "list", "acme", "status/a") or {}
    check("retained list acme status/a: only it",
          [x.get("topic") for x in f.get("retained", [])] == ["status/a"], str(f))
    c.table("retained list", "retained", "list", "acme", first=r"TOPIC")
    r = c.run("retained", "del", "acme", "status/a")
    lst = c.js("retained", "list", "acme") or {}
    check("retained del acme status/a: deleted, not listed", r.rc == 0 and
          r.js == {"deleted": True} and
          "status/a" not in [x.get("topic") for x in lst.get("retained", [])], f"{r} {lst}")
    s = Client(n.mqtt, "ret-sub", "ops@acme", t.pw["ops"])
    s.sub("status/#")
    wait_for(lambda: b"BB" in s.payloads(), 3)
    time.sleep(0.2)
    s.close()
    check("retained del: a new subscriber to status/# gets status/b only",
          s.payloads() == [b"BB"], str(s.got))
    r = c.run("retained", "del", "acme", "status/a")
    check("retained del of an absent topic: exit 1, not_found", r.rc == 1 and
          "not_found" in r.err, str(r))


def tenant_delete_phase(t):
    """tenant delete --yes: its clients disconnected, its sessions and
    retained messages gone with it."""
    c, n = t.ctl, t.n
    c.run("tenant", "create", "gamma")
    c.run("group", "create", "gamma", "all")
    c.run("acl", "add", "gamma", "--group", "all", "allow", "all", "#")
    c.run("user", "add", "gamma", "g1", "--group", "all", "--password-stdin",
          stdin=t.pw["g1"] + "\n")
    accepted_within(n.mqtt, "g1@gamma", t.pw["g1"])
    p = Client(n.mqtt, "g-pub", "g1@gamma", t.pw["g1"])
    ok = p.pub("ret/x", b"GAMMA-OLD", retain=True)
    p.close()
    s = Client(n.mqtt, "g-sess", "g1@gamma", t.pw["g1"], clean=False, expiry=300)
    s.sub("data/#")
    s.close()
    live = Client(n.mqtt, "g-live", "g1@gamma", t.pw["g1"])
    r = c.run("tenant", "delete", "gamma", "--yes")
    wait_for(lambda: live.gone is not None, 3)
    live.close()
    sh = c.run("tenant", "show", "gamma")
    check("tenant delete gamma --yes: deleted; a connected 5.0 client gets DISCONNECT 0x98; "
          "tenant show says not_found; its CONNECT is refused (0x87)",
          ok and r.rc == 0 and r.js and r.js.get("deleted") is True and live.gone == 0x98 and
          sh.rc == 1 and "not_found" in sh.err and
          connack(n.mqtt, "g1@gamma", t.pw["g1"]) == 0x87, f"{r} {live.gone} {sh}")

    c.run("tenant", "create", "gamma")
    c.run("group", "create", "gamma", "all")
    c.run("acl", "add", "gamma", "--group", "all", "allow", "all", "#")
    c.run("user", "add", "gamma", "g1", "--group", "all", "--password-stdin",
          stdin=t.pw["g1"] + "\n")
    accepted_within(n.mqtt, "g1@gamma", t.pw["g1"])
    w = Client(n.mqtt, "g-watch", "g1@gamma", t.pw["g1"])
    w.sub("#")
    p = Client(n.mqtt, "g-pub2", "g1@gamma", t.pw["g1"])
    p.pub("ctl/x", b"GAMMA-NEW")
    wait_for(lambda: b"GAMMA-NEW" in w.payloads(), 3)
    close_all(w, p)
    check("tenant delete: a re-created gamma has no retained message of the old one",
          b"GAMMA-NEW" in w.payloads() and b"GAMMA-OLD" not in w.payloads(), str(w.got))
    s = Client(n.mqtt, "g-sess", "g1@gamma", t.pw["g1"], clean=False, expiry=300)
    s.close()
    check("tenant delete: the old persistent session is gone (CONNACK session present 0)",
          s.ack == 0 and s.present is False, f"{s.ack} {s.present}")
    lst = c.run("sessions", "list", "gamma")
    check("tenant delete: sessions list of the re-created gamma holds only its new session",
          lst.rc == 0 and lst.js and
          [(x["client_id"], x["subscriptions"]) for x in lst.js.get("sessions", [])] ==
          [("g-sess", 0)], str(lst))
    c.run("tenant", "delete", "gamma", "--yes")


def drain_phase(t):
    """node drain. Last: the node stops taking
    clients; it is restarted to find the persistent session again."""
    c, n = t.ctl, t.n
    s = Client(n.mqtt, "drain-sess", "ops@acme", t.pw["ops"], clean=False, expiry=300)
    s.sub("data/#")
    s.close()
    live = Client(n.mqtt, "drain-live", "ops@acme", t.pw["ops"])
    r = c.run("node", "drain")
    wait_for(lambda: live.gone is not None, 3)
    live.close()
    check("node drain: draining, the connected client counted; it gets DISCONNECT 0x9C",
          r.rc == 0 and r.js and r.js.get("draining") is True and
          (r.js.get("disconnected") or 0) >= 1 and live.gone == 0x9C, f"{r} {live.gone}")
    code = connack(n.mqtt, "ops@acme", t.pw["ops"])
    check("node drain: a new connection to the MQTT listener gets no CONNACK", code is None,
          str(code))
    status, body = http_get(n.http, "/readyz")
    check("node drain: GET /readyz answers 503", status == 503, f"{status} {body[:200]!r}")
    info = c.js("node", "info") or {}
    check("node drain: node info says draining", info.get("draining") is True, str(info)[:200])
    lst = c.js("sessions", "list", "acme", "--client-id", "drain-*") or {}
    check("node drain: the persistent session stays (sessions list)",
          [(x.get("client_id"), x.get("persistent")) for x in lst.get("sessions", [])] ==
          [("drain-sess", True)], str(lst))
    n.restart("drained node")
    c.sock = n.sock
    lst = c.js("sessions", "list", "acme", "--client-id", "drain-*") or {}
    check("after a restart: the session is back from the snapshot (sessions list)",
          [x.get("client_id") for x in lst.get("sessions", [])] == ["drain-sess"], str(lst))
    s = Client(n.mqtt, "drain-sess", "ops@acme", t.pw["ops"], clean=False, expiry=300)
    s.close()
    check("after a restart: the client resumes its session (session present 1)",
          s.ack == 0 and s.present is True, f"{s.ack} {s.present}")


# ---- main ----------------------------------------------------------------------------

PHASES = [("node", node_phase), ("tenant", tenant_phase), ("acl", acl_phase),
          ("user", user_phase), ("cert", cert_phase), ("jwt", jwt_phase),
          ("jwt_key", jwt_key_phase), ("quota", quota_phase), ("bad", bad_phase),
          ("peer", peer_phase), ("sessions", sessions_phase), ("retained", retained_phase),
          ("tenant_delete", tenant_delete_phase), ("drain", drain_phase)]


def selected():
    only = os.environ.get("BW_ADMIN_TEST_ONLY", "").strip()
    known = [p for p, _ in PHASES]
    if not only:
        return known
    want = [w.strip() for w in only.split(",") if w.strip()]
    bad = [w for w in want if w not in known]
    if bad:
        raise SystemExit(f"BW_ADMIN_TEST_ONLY: unknown phase {bad}; phases: {known}")
    return [p for p in known if p in want]


SKIP = 77


def postgres_database():
    """With BW_ADMIN_TEST_STORE=pg: a fresh database on BW_TEST_POSTGRES
    (its URL, and a function that drops it); SKIP when there is none."""
    import test_tenancy_pg as tpg  # psql sessions, database URLs
    base = os.environ.get("BW_TEST_POSTGRES")
    if not base or os.environ.get("BW_TEST_POSTGRES_SKIP") == "1":
        print("skipped: BW_ADMIN_TEST_STORE=pg without BW_TEST_POSTGRES")
        return SKIP
    db = f"bw_itadmin_all_{os.getpid()}"
    admin = tpg.Sql(base)
    admin.run(f"CREATE DATABASE {db};")
    return tpg.db_url(base, db), lambda: admin.run(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")


def main():
    t_start = time.time()
    run = selected()
    postgres, drop = None, None
    if os.environ.get("BW_ADMIN_TEST_STORE") == "pg":
        got = postgres_database()
        if got == SKIP:
            return SKIP
        postgres, drop = got
        print(f"the tenancy store: PostgreSQL ({postgres.rsplit('/', 1)[-1]})")
    try:
        return run_phases(run, postgres, t_start)
    finally:
        if drop:
            drop()


def run_phases(run, postgres, t_start):
    with tempfile.TemporaryDirectory() as tmp:
        pki = os.path.join(tmp, "pki")
        os.makedirs(pki)
        make_pki(pki)
        n = Node(tmp, pki, postgres)
        t = T(n, tmp, pki)
        try:
            for name, fn in [("seed", seed)] + [p for p in PHASES if p[0] in run] + \
                    [("audit", audit_phase)]:
                phase_now[0] = name
                print(f"== {name}",
                      flush=True)
                t0 = time.time()
                try:
                    fn(t)
                except Exception as e:  # noqa: BLE001  (a phase's crash is its failure)
                    traceback.print_exc()
                    check(f"{name}: ran to its end", False, repr(e))
                print(f"     {name}: {time.time() - t0:.1f} s", flush=True)
                if n.proc.poll() is not None:
                    check(f"the node is still running after {name}", False,
                          f"exit {n.proc.returncode}\n{n.log_text()[-1500:]}")
                    n.start()
                    t.ctl.sock = n.sock
        finally:
            phase_now[0] = "end"
            n.stop("the node")
    print(f"took {time.time() - t_start:.0f} s")
    print(f"{passed} passed, {len(failures)} failed")
    for ph, name in failures:
        print(f"  failed in {ph}: {name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
