#!/usr/bin/python3
"""Integration test of the PostgreSQL tenancy store with real nodes and real
MQTT clients (paho, 3.1.1 and 5.0). Tenants, groups and principals are
written with plain SQL through psql into the schema the nodes create; the
tables' triggers NOTIFY the nodes.

1. Two nodes on one database: a tenant and a principal inserted by SQL are
   usable on both within a second (measured and printed).
2. Revocation on both nodes, measured from the UPDATE to the disconnect:
   a principal disabled (5.0: DISCONNECT 0x87), CONNECTs whose password
   check is under way at that moment (none may stay connected), a tenant
   suspended (0x98), a group's rule deleted and the group deleted (the
   subscriptions they allowed stop receiving, the connection stays). A node
   that dies on the way is a failure, and is started again so that the
   cases after it still run.
3. PostgreSQL stopped (pg_ctl stop -m fast) and restarted under traffic, on
   a server of this test's own (scripts/pg-test): connected clients keep
   working, a cached principal connects, one that never existed is refused,
   /readyz stays ready and names the store down, the outage is logged; on
   restart /readyz says up within seconds and a principal inserted then
   logs in; the node exits 0 on SIGTERM.
4. Three nodes starting at once on an empty database migrate it once.

Every wait is bounded. PostgreSQL comes from BW_TEST_POSTGRES (scripts/pg-test
sets it; each case makes its own database and drops it). Without it, or with
BW_TEST_POSTGRES_SKIP=1, the test is skipped: exit status 77, which ctest
reports as skipped. Usage: test_tenancy_pg.py BULWARK_BINARY
"""
import datetime
import glob
import http.client
import itertools
import os
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node  # noqa: E402  (tests/integration/node.py)
from node import wait_for, varint, lp, connack  # noqa: E402

import paho.mqtt.client as mqtt

BIN = sys.argv[1] if len(sys.argv) > 1 else ""
PG_TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                       "pg-test")
TIMEOUT = 10
SKIP = 77  # SKIP_RETURN_CODE in tests/CMakeLists.txt
failures = []
passed = 0
figures = []  # (what, seconds): printed again at the end
ids = itertools.count(1)


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}")


def figure(what, seconds):
    figures.append((what, seconds))
    print(f"     {what}: {seconds * 1000:.0f} ms")


# ---- PostgreSQL ------------------------------------------------------------


def pg_bindir():
    """The newest /usr/lib/postgresql/*/bin, as scripts/pg-test picks it."""
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    dirs.sort(key=lambda d: [int(x) if x.isdigit() else 0
                             for x in d.split("/")[-2].split(".")])
    return dirs[-1] if dirs else ""


def psql_binary():
    p = os.path.join(pg_bindir(), "psql")
    return p if os.access(p, os.X_OK) else shutil.which("psql")


def db_url(base, db):
    """base (a libpq URL or conninfo string) naming the database db."""
    if "://" in base:
        u = urllib.parse.urlsplit(base)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))
    return f"{base} dbname={db}"


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


class SqlError(Exception):
    pass


class Sql:
    """One psql session (one connection, autocommit): run() sends SQL and
    returns its rows once psql has carried it out, so a run() that returns
    has committed."""

    def __init__(self, url):
        self.p = subprocess.Popen([psql_binary(), "-X", "-q", "-A", "-t", "-v",
                                   "ON_ERROR_STOP=0", "-d", url],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, sql, timeout=TIMEOUT):
        """Rows (psql -At lines) of sql, which ends with ';'. Raises SqlError
        on an error or when psql does not answer in time."""
        mark = f"__bw_done_{next(ids)}__"
        try:
            self.p.stdin.write(sql.rstrip() + "\n\\echo " + mark + "\n")
            self.p.stdin.flush()
        except OSError as e:
            raise SqlError(f"psql is gone: {e}")
        out, deadline = [], time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                raise SqlError(f"psql did not answer in {timeout} s: {out}")
            if line is None:
                raise SqlError(f"psql exited: {out}")
            if line.strip() == mark:
                break
            out.append(line)
        errors = [x for x in out if "ERROR:" in x or "FATAL:" in x]
        if errors:
            raise SqlError("; ".join(errors))
        return out

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


def sql_once(url, sql):
    s = Sql(url)
    try:
        return s.run(sql)
    finally:
        s.close()


def tenant_sql(tenant, groups=None, principals=None, status="active"):
    """One transaction inserting a tenant with groups {name: rules} and
    principals [(name, hash, [groups], rules)]."""
    out = ["BEGIN;", f"INSERT INTO bulwark_tenants (name, status) VALUES ({q(tenant)}, "
           f"{q(status)});"]
    for g, rules in (groups or {}).items():
        out.append(f"INSERT INTO bulwark_groups (tenant, name, rules) VALUES ({q(tenant)}, "
                   f"{q(g)}, {q(rules)});")
    out += principal_sql(tenant, principals or [])
    out.append("COMMIT;")
    return "\n".join(out)


def principal_sql(tenant, principals):
    out = []
    for name, h, groups, rules in principals:
        out.append("INSERT INTO bulwark_principals (tenant, name, kind, password_hash, rules) "
                   f"VALUES ({q(tenant)}, {q(name)}, 'password', {q(h)}, {q(rules)});")
        for g in groups:
            out.append("INSERT INTO bulwark_principal_groups (tenant, principal, grp) "
                       f"VALUES ({q(tenant)}, {q(name)}, {q(g)});")
    return out


class PrivatePg:
    """A PostgreSQL of this test's own, from scripts/pg-test, that it may
    stop and start again on the same port."""

    def __init__(self):
        # Sourced with $0 not the script's name: it runs its command line
        # only when BASH_SOURCE equals $0.
        r = subprocess.run(["bash", "-c", '. "$1" && pg_test_start >&2 && printf "%s\\n" '
                            '"$PG_TEST_DIR" "$PG_TEST_BINDIR" "${PG_TEST_USER:-}" '
                            '"$BW_TEST_POSTGRES"', "pg-test-start", PG_TEST],
                           capture_output=True, text=True, timeout=120)
        lines = r.stdout.split("\n")
        if r.returncode != 0 or len(lines) < 4:
            raise SystemExit("scripts/pg-test could not start PostgreSQL: "
                             f"{r.stderr}{r.stdout}")
        self.dir, self.bindir, self.user, self.url = lines[:4]
        print(r.stderr.strip())
        # The server's own command line, to start it again the same way.
        with open(os.path.join(self.dir, "data", "postmaster.opts")) as f:
            args = shlex.split(f.read())[1:]
        i = args.index("-D")
        self.opts = " ".join(shlex.quote(a) for a in args[:i] + args[i + 2:])

    def _ctl(self, *args):
        cmd = [os.path.join(self.bindir, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
               "-w", "-t", "30"] + list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def stop(self):
        return self._ctl("-m", "fast", "stop")

    def start(self):
        return self._ctl("-l", os.path.join(self.dir, "server.log"), "-o", self.opts, "start")

    def remove(self):
        subprocess.run(["bash", "-c", '. "$1"; PG_TEST_DIR=$2 PG_TEST_BINDIR=$3 '
                        'PG_TEST_USER=$4; pg_test_stop', "pg-test-stop", PG_TEST, self.dir,
                        self.bindir, self.user], timeout=60)


# ---- MQTT ------------------------------------------------------------------


def refused_within(nodes, user, pw, seconds=1.0):
    """CONNECTs (5.0 and 3.1.1) to every node until all are refused, for at
    most seconds: the last round's codes. (A worker takes a new snapshot at
    its next 100 ms tick, so one that has not yet may still accept.)"""
    codes, deadline = [], time.time() + seconds
    while True:
        codes = [connack(n["port"], user, pw, v) for n in nodes for v in (5, 3)]
        if all(x not in (0, None) for x in codes) or time.time() > deadline:
            return codes
        time.sleep(0.02)


class Raw:
    """A raw MQTT connection that has sent its CONNECT and reads packets."""

    def __init__(self, port, user, pw, version):
        body = lp(b"MQTT") + bytes([version, 0xC2]) + (60).to_bytes(2, "big")
        if version == 5:
            body += b"\x00"
        body += lp(f"raw-{os.getpid()}-{next(ids)}".encode()) + lp(user.encode()) + \
            lp(pw.encode())
        self.version, self.buf = version, b""
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.sendall(b"\x10" + varint(len(body)) + body)

    def _split(self):
        """The first whole packet of buf, taken off it, or None."""
        n, mult = 0, 1
        for i in range(1, min(len(self.buf), 5)):
            n += (self.buf[i] & 0x7F) * mult
            mult *= 128
            if not self.buf[i] & 0x80:
                if len(self.buf) < i + 1 + n:
                    return None
                pkt = (self.buf[0], self.buf[i + 1:i + 1 + n])
                self.buf = self.buf[i + 1 + n:]
                return pkt
        return None

    def packet(self, deadline):
        """The next packet (first byte, body); "eof" when the node closed;
        None when nothing came by deadline."""
        while True:
            pkt = self._split()
            if pkt:
                return pkt
            left = deadline - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(4096)
            except socket.timeout:
                return None
            except OSError:
                return "eof"
            if not chunk:
                return "eof"
            self.buf += chunk

    def connack(self, deadline):
        p = self.packet(deadline)
        return p[1][1] if isinstance(p, tuple) and p[0] == 0x20 and len(p[1]) >= 2 else p

    def alive(self, seconds=1.0):
        """Whether the connection is still up: a PINGREQ gets a PINGRESP
        (and no DISCONNECT or close comes first)."""
        try:
            self.s.sendall(b"\xc0\x00")
        except OSError:
            return False
        deadline = time.time() + seconds
        while True:
            p = self.packet(deadline)
            if p is None or p == "eof" or p[0] == 0xE0:
                return False
            if p[0] == 0xD0:
                return True

    def close(self):
        self.s.close()


def connect_within(port, user, pw, seconds, version=5, since=None):
    """Tries CONNECT until one is accepted, for at most seconds from since
    (default now): (when the accepted CONNECT was sent, when its CONNACK
    came), in seconds from since, or None. The first is the figure that
    counts: every attempt costs a password check (~100 ms; an unknown
    principal too), so the CONNACK lags the change by up to two of them."""
    since = time.time() if since is None else since
    while time.time() < since + seconds:
        sent = time.time()
        if connack(port, user, pw, version) == 0:
            return sent - since, time.time() - since
        time.sleep(0.01)
    return None


class Client:
    """A paho client that records what it receives and how it was
    disconnected (the DISCONNECT's reason for 5.0, the time)."""

    def __init__(self, port, user, pw, version=5, cid=None):
        self.got, self.codes, self.rc, self.gone, self.gone_at = [], [], None, None, None
        self.drops = 0
        self.version = version
        self.c = mqtt.Client(client_id=cid or f"c{os.getpid()}-{next(ids)}",
                             protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311)
        self.c.username_pw_set(user, pw)
        self.c.reconnect_delay_set(30, 30)  # no reconnect within a case
        self.c.on_connect = self._connected
        self.c.on_disconnect = self._gone
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.on_subscribe = self._subscribed
        try:
            self.c.connect("127.0.0.1", port, 30)
        except OSError as e:  # the node is not there (it crashed): rc stays None
            self.gone, self.gone_at = str(e), time.time()
            return
        self.c.loop_start()
        wait_for(lambda: self.rc is not None or self.gone is not None)

    def _connected(self, c, u, flags, rc, props=None):
        if self.rc is None:
            self.rc = rc if isinstance(rc, int) else rc.value

    def _gone(self, c, u, rc, props=None):
        self.drops += 1
        if self.gone is None:  # the DISCONNECT's reason, not the closing after it
            self.gone_at = time.time()
            self.gone = rc if isinstance(rc, int) else rc.value

    def _subscribed(self, c, u, mid, granted, props=None):
        self.codes.append([g if isinstance(g, int) else g.value for g in granted])

    def up(self):
        return self.rc == 0 and self.gone is None and self.c.is_connected()

    def subscribe(self, filt, qos=1):
        n = len(self.codes)
        self.c.subscribe(filt, qos=qos)
        wait_for(lambda: len(self.codes) > n)
        return self.codes[-1] if len(self.codes) > n else None

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos)
        return info.rc == mqtt.MQTT_ERR_SUCCESS and (qos == 0 or wait_for(info.is_published))

    def payloads(self):
        return [p for _, p in list(self.got)]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def roundtrip(pub, sub, topic, seconds=TIMEOUT):
    """pub publishes a new payload to topic: whether sub gets it."""
    payload = f"rt-{next(ids)}".encode()
    return pub.publish(topic, payload) and wait_for(lambda: payload in sub.payloads(),
                                                    seconds)


class Traffic:
    """A thread publishing to each (client, topic) in turn every interval
    until stopped, at most `limit` messages in all."""

    def __init__(self, pairs, interval=0.02, limit=5000):
        self.pairs, self.interval, self.limit = pairs, interval, limit
        self.sent, self.failed = [], 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        n = 0
        while not self.stop_ev.is_set() and n < self.limit:
            for c, topic in self.pairs:
                payload = f"load-{n}".encode()
                info = c.c.publish(topic, payload, 1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self.sent.append((c, payload, info))
                else:
                    self.failed += 1
                n += 1
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.t.join(TIMEOUT)


# ---- nodes -----------------------------------------------------------------


def start(tmp, name, url, extra=()):
    """A node with an MQTT and an HTTP listener on the store at url."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    proc, ports, log = node.start_node(BIN, d, ["listen=mqtt 127.0.0.1:0",
                                                "listen=http 127.0.0.1:0", "workers=2",
                                                "auth_backoff_after=0", "postgres=" + url]
                                       + list(extra))
    return {"name": name, "proc": proc, "port": ports[0], "http": ports[1], "log": log}


def revive(tmp, url, nodes, what):
    """Checks every node outlived what; one that did not is started again
    on the same database and state (its log kept as node.log.crashed-N),
    so the cases after it still run."""
    for n in nodes:
        code = n["proc"].poll()
        tail = ""
        if code is not None:
            tail = " | ".join(log_text(n).splitlines()[-3:])
        check(f"node {n['name']}: still running after {what}", code is None,
              f"exit status {code} (negative: the signal that killed it); log ends: {tail}")
        if code is not None:
            os.replace(n["log"], f"{n['log']}.crashed-{next(ids)}")
            n.update(start(tmp, n["name"], url))


def stop(n):
    """SIGTERM: the exit status (None: it had to be killed)."""
    if n["proc"].poll() is not None:
        return n["proc"].returncode
    n["proc"].terminate()
    try:
        return n["proc"].wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        n["proc"].kill()
        n["proc"].wait()
        return None


def log_text(n, since=0):
    with open(n["log"], errors="replace") as f:
        f.seek(since)
        return f.read()


def log_size(n):
    return os.path.getsize(n["log"])


def log_time(line):
    """The wall-clock time of a log line (its timestamp is UTC, in ms)."""
    ts = datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.replace(tzinfo=datetime.timezone.utc).timestamp()


def in_force_after(n, since, seconds=2):
    """The time of the first "tenancy: version N in force" log line after
    byte since, or None."""
    found = []

    def look():
        for line in log_text(n, since).splitlines():
            if re.search(r" tenancy: version \d+ in force", line):
                found.append(log_time(line))
                return True
        return False
    return found[0] if wait_for(look, seconds) else None


def readyz(n):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", n["http"], timeout=TIMEOUT)
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


def error_lines(text):
    return [x for x in text.splitlines() if re.match(r"\S+ error ", x)]


def hash_password(pw):
    r = subprocess.run([BIN, "--hash-password"], input=pw + "\n", capture_output=True,
                       text=True, timeout=TIMEOUT)
    if r.returncode != 0 or not r.stdout.startswith("$"):
        raise SystemExit(f"bulwark --hash-password failed: {r.stderr}")
    return r.stdout.strip()


# ---- 1: propagation ---------------------------------------------------------


def usable(nodes, results, what):
    for n in nodes:
        took = results.get(n["name"])
        if took is not None:
            figure(f"{what}: node {n['name']}: first accepted CONNECT sent after", took[0])
            figure(f"{what}: node {n['name']}: ... its CONNACK 0 after", took[1])


def propagation(sql, nodes, hashes):
    """A tenant and a principal inserted by SQL, then a principal alone:
    usable on both nodes within a second."""
    a = nodes[0]
    check("before the INSERT: dev@t1 is refused on both nodes",
          all(connack(n["port"], "dev@t1", "dev-pw") not in (0, None) for n in nodes))
    marks = [log_size(n) for n in nodes]
    results = {}

    def poll(n):
        results[n["name"]] = connect_within(n["port"], "dev@t1", "dev-pw", 3, since=t0)
    threads = [threading.Thread(target=poll, args=(n,)) for n in nodes]
    t0 = time.time()
    for t in threads:
        t.start()
    sql.run(tenant_sql("t1", {"rw": "allow all data/#\n"},
                       [("dev", hashes["dev-pw"], ["rw"], "")]))
    committed = time.time() - t0
    for t in threads:
        t.join(TIMEOUT)
    for n, mark in zip(nodes, marks):
        at = in_force_after(n, mark)
        if at is not None:
            figure(f"new tenant + principal in force on node {n['name']} (its log)", at - t0)
    usable(nodes, results, "new tenant + principal")
    t1 = time.time()
    connack(a["port"], "dev@t1", "dev-pw")
    figure("(one CONNECT with its password check, for comparison)", time.time() - t1)
    print(f"     (the INSERT committed within {committed * 1000:.0f} ms of being sent)")
    check("a tenant and principal inserted by SQL are usable on both nodes within 1 s",
          all(results.get(n["name"]) is not None and results[n["name"]][0] < 1.0
              for n in nodes), str(results))

    # Real clients on both nodes, 5.0 and 3.1.1.
    for n in nodes:
        c5 = Client(n["port"], "dev@t1", "dev-pw", 5)
        c3 = Client(n["port"], "dev@t1", "dev-pw", 3)
        ok = c5.rc == 0 and c3.rc == 0 and c5.subscribe("data/#") == [1] and \
            c3.subscribe("data/#") == [1]
        check(f"node {n['name']}: paho 5.0 and 3.1.1 log in as dev@t1 and subscribe",
              ok, f"{c5.rc} {c3.rc} {c5.codes} {c3.codes}")
        check(f"node {n['name']}: 3.1.1 -> 5.0 and 5.0 -> 3.1.1 round trips",
              roundtrip(c3, c5, "data/x") and roundtrip(c5, c3, "data/y"))
        check(f"node {n['name']}: the store's rules hold (5.0 SUBACK 0x87, 3.1.1 0x80)",
              c5.subscribe("other/#") == [0x87] and c3.subscribe("other/#") == [0x80],
              f"{c5.codes} {c3.codes}")
        check(f"node {n['name']}: a wrong password is refused",
              connack(n["port"], "dev@t1", "wrong") not in (0, None))
        c5.close()
        c3.close()

    # A principal alone, into the tenant the nodes already hold.
    results.clear()

    def poll2(n):
        results[n["name"]] = connect_within(n["port"], "dev2@t1", "dev2-pw", 3, since=t0)
    threads = [threading.Thread(target=poll2, args=(n,)) for n in nodes]
    marks = [log_size(n) for n in nodes]
    t0 = time.time()
    for t in threads:
        t.start()
    sql.run("\n".join(["BEGIN;"] + principal_sql("t1", [("dev2", hashes["dev2-pw"], ["rw"],
                                                          "")]) + ["COMMIT;"]))
    for t in threads:
        t.join(TIMEOUT)
    for n, mark in zip(nodes, marks):
        at = in_force_after(n, mark)
        if at is not None:
            figure(f"new principal in force on node {n['name']} (its log)", at - t0)
    usable(nodes, results, "new principal in a known tenant")
    check("a principal inserted by SQL into a known tenant is usable on both within 1 s",
          all(results.get(n["name"]) is not None and results[n["name"]][0] < 1.0
              for n in nodes), str(results))


# ---- 2: revocation ----------------------------------------------------------


def kicked(clients, t0, what, reason5, bound=1.0):
    """Waits for every client to be disconnected; checks each within bound
    of t0 and the 5.0 ones with reason5; prints the times."""
    wait_for(lambda: all(c.gone is not None for c in clients), 3)
    times = []
    for c, label in clients.items():
        if c.gone_at is not None:
            figure(f"{what}: {label} disconnected after", c.gone_at - t0)
            times.append(c.gone_at - t0)
    check(f"{what}: every client is disconnected within {bound:.0f} s of the UPDATE",
          len(times) == len(clients) and max(times) < bound,
          str([(label, c.gone, c.gone_at and round(c.gone_at - t0, 3))
               for c, label in clients.items()]))
    fives = [c for c in clients if c.version == 5]
    check(f"{what}: the 5.0 clients get DISCONNECT 0x{reason5:02X}",
          all(c.gone == reason5 for c in fives), str([c.gone for c in fives]))


def revocation(sql, nodes, hashes, revive_all):
    # A principal disabled.
    sql.run(tenant_sql("t2", {"rw": "allow all data/#\n"},
                       [("rev", hashes["rev-pw"], ["rw"], ""),
                        ("race", hashes["race-pw"], ["rw"], "")]))
    wait_for(lambda: all(connack(n["port"], "rev@t2", "rev-pw") == 0 for n in nodes), 3)
    clients = {}
    for n in nodes:
        for v in (5, 3):
            c = Client(n["port"], "rev@t2", "rev-pw", v)
            c.subscribe("data/#")
            clients[c] = f"node {n['name']} {'5.0' if v == 5 else '3.1.1'}"
    pairs = list(clients.items())
    ok = all(c.rc == 0 for c in clients) and all(
        roundtrip(pairs[i][0], pairs[i + 1][0], f"data/{i}") and
        roundtrip(pairs[i + 1][0], pairs[i][0], f"data/{i}") for i in (0, 2))
    check("rev@t2 publishes and subscribes on both nodes (5.0 and 3.1.1)", ok,
          str([(c.rc, c.codes) for c in clients]))
    traffic = Traffic([(c, f"data/{k}") for k, c in enumerate(clients)])
    time.sleep(0.2)
    t0 = time.time()
    sql.run("UPDATE bulwark_principals SET enabled = false "
            "WHERE tenant = 't2' AND name = 'rev';")
    print(f"     (the UPDATE committed within {(time.time() - t0) * 1000:.0f} ms)")
    kicked(clients, t0, "principal disabled", 0x87)
    traffic.stop()
    revive_all("a principal was disabled")
    codes = refused_within(nodes, "rev@t2", "rev-pw")
    check("a disabled principal is refused on both nodes (5.0 and 3.1.1)",
          all(x not in (0, None) for x in codes), str(codes))
    for c in clients:
        c.close()
    sql.run("UPDATE bulwark_principals SET enabled = true WHERE tenant = 't2' AND name = 'rev';")
    check("enabled again: it logs in on both nodes within 1 s",
          all(connect_within(n["port"], "rev@t2", "rev-pw", 1.0) is not None for n in nodes))

    # CONNECTs whose password check is under way when the principal is
    # disabled (eight a node queue behind two auth threads, ~100 ms a
    # check): each is refused, or accepted and then disconnected; none may
    # stay connected.
    raws = [Raw(n["port"], "race@t2", "race-pw", 5 if k % 2 else 4)
            for n in nodes for k in range(8)]
    time.sleep(0.05)
    t0 = time.time()
    sql.run("UPDATE bulwark_principals SET enabled = false "
            "WHERE tenant = 't2' AND name = 'race';")
    acks = [r.connack(time.time() + TIMEOUT) for r in raws]
    last = time.time() - t0
    # A second after the last CONNACK (ten worker ticks), and 1.5 s after
    # the UPDATE at least.
    wait = max(1.5, last + 1.0)
    time.sleep(max(0.0, t0 + wait - time.time()))
    stayed = [r for r, a in zip(raws, acks) if a == 0 and r.alive()]
    print(f"     CONNECTs in flight at the UPDATE: CONNACK codes {acks}, the last "
          f"{last * 1000:.0f} ms after it; {len(stayed)} still connected {wait:.1f} s "
          "after it")
    check("CONNECTs in flight when their principal is disabled: none stays connected",
          not stayed and None not in acks,
          f"{len(stayed)} of {sum(1 for a in acks if a == 0)} accepted still connected "
          f"{wait:.1f} s after the UPDATE (PINGREQ answered)")
    for r in raws:
        r.close()
    revive_all("CONNECTs raced a disabled principal")

    # A tenant suspended.
    sql.run(tenant_sql("t2s", {"rw": "allow all data/#\n"},
                       [("u", hashes["u-pw"], ["rw"], "")]))
    wait_for(lambda: all(connack(n["port"], "u@t2s", "u-pw") == 0 for n in nodes), 3)
    clients = {}
    for n in nodes:
        for v in (5, 3):
            c = Client(n["port"], "u@t2s", "u-pw", v)
            c.subscribe("data/#")
            clients[c] = f"node {n['name']} {'5.0' if v == 5 else '3.1.1'}"
    check("u@t2s connected on both nodes", all(c.rc == 0 for c in clients))
    t0 = time.time()
    sql.run("UPDATE bulwark_tenants SET status = 'suspended' WHERE name = 't2s';")
    kicked(clients, t0, "tenant suspended", 0x98)
    revive_all("a tenant was suspended")
    codes = refused_within(nodes, "u@t2s", "u-pw")
    check("a suspended tenant's principal is refused on both nodes (5.0 and 3.1.1)",
          all(x not in (0, None) for x in codes), str(codes))
    for c in clients:
        c.close()
    sql.run("UPDATE bulwark_tenants SET status = 'active' WHERE name = 't2s';")
    check("active again: its principal logs in on both nodes within 1 s",
          all(connect_within(n["port"], "u@t2s", "u-pw", 1.0) is not None for n in nodes))

    # A group's rule deleted, then a group deleted: the subscriptions they
    # allowed stop receiving; the connection stays.
    sql.run(tenant_sql("t2g", {"readers": "allow subscribe data/#\n",
                               "extra": "allow subscribe more/#\n",
                               "writers": "allow publish #\n"},
                       [("sub", hashes["sub-pw"], ["readers", "extra"],
                         "allow subscribe keep/#\n"),
                        ("pub", hashes["pub-pw"], ["writers"], "")]))
    wait_for(lambda: all(connack(n["port"], "sub@t2g", "sub-pw") == 0 for n in nodes), 3)
    pairs = []
    for n in nodes:
        s = Client(n["port"], "sub@t2g", "sub-pw", 5)
        p = Client(n["port"], "pub@t2g", "pub-pw", 3)
        codes = [s.subscribe(f) for f in ("data/#", "more/#", "keep/#")]
        check(f"node {n['name']}: sub@t2g subscribes to what its groups and rules allow",
              codes == [[1], [1], [1]] and p.rc == 0, str(codes))
        check(f"node {n['name']}: it receives on all three",
              all(roundtrip(p, s, t) for t in ("data/a", "more/a", "keep/a")))
        pairs.append((n, s, p))

    def stops(what, topic, sql_text):
        t0 = time.time()
        sql.run(sql_text)
        for n, s, p in pairs:
            # Probe until the change is in force: a probe published before
            # a marker (same publisher, same session, in order) that is not
            # there when the marker is.
            applied = None
            while time.time() - t0 < 3 and applied is None:
                probe, mark = f"probe-{next(ids)}".encode(), f"mark-{next(ids)}".encode()
                p.publish(topic, probe)
                p.publish("keep/m", mark)
                if wait_for(lambda: mark in s.payloads(), 2) and probe not in s.payloads():
                    applied = time.time() - t0
            if applied is not None:
                figure(f"{what}: node {n['name']}: the subscription stopped within", applied)
            probes = [f"late-{next(ids)}".encode() for _ in range(3)]
            for x in probes:
                p.publish(topic, x)
            after = roundtrip(p, s, "keep/after")
            check(f"{what}: node {n['name']}: {topic} no longer reaches the subscriber "
                  "(within 1 s), keep/# still does, the connection stays",
                  applied is not None and applied < 1.0 and after and
                  not any(x in s.payloads() for x in probes) and s.up(),
                  f"applied {applied} after {after} up {s.up()} gone {s.gone}")

    stops("group rule deleted", "data/b",
          "UPDATE bulwark_groups SET rules = '' WHERE tenant = 't2g' AND name = 'readers';")
    for n, s, p in pairs:
        check(f"node {n['name']}: more/# (the other group) still receives",
              roundtrip(p, s, "more/b"))
    stops("group deleted", "more/c",
          "DELETE FROM bulwark_groups WHERE tenant = 't2g' AND name = 'extra';")
    for n, s, p in pairs:
        s.close()
        p.close()


# ---- 3: PostgreSQL stopped and restarted -------------------------------------


def outage(tmp, hashes):
    pg = PrivatePg()
    n = None
    clients = []
    try:
        sql_once(pg.url, "SELECT 1;")
        n = start(tmp, "outage", pg.url)
        sql_once(pg.url, tenant_sql("t3", {"rw": "allow all load/#\nallow all data/#\n"},
                                    [(x, hashes[x + "-pw"], ["rw"], "")
                                     for x in ("dev1", "dev2")]))
        check("t3 in force", connect_within(n["port"], "dev1@t3", "dev1-pw", 3) is not None)
        # Traffic: 3.1.1 and 5.0 publishers, 5.0 and 3.1.1 subscribers, QoS 1.
        s5 = Client(n["port"], "dev1@t3", "dev1-pw", 5)
        s3 = Client(n["port"], "dev1@t3", "dev1-pw", 3)
        p3 = Client(n["port"], "dev1@t3", "dev1-pw", 3)
        p5 = Client(n["port"], "dev1@t3", "dev1-pw", 5)
        clients = [s5, s3, p3, p5]
        s5.subscribe("load/a")
        s3.subscribe("load/b")
        check("clients of t3 connected and subscribed",
              all(c.rc == 0 for c in clients) and s5.codes == [[1]] and s3.codes == [[1]],
              str([(c.rc, c.codes) for c in clients]))
        traffic = Traffic([(p3, "load/a"), (p5, "load/b")], interval=0.02, limit=4000)
        check("traffic flows before the outage",
              wait_for(lambda: len(s5.got) > 10 and len(s3.got) > 10, 5))
        st, body = readyz(n)
        check("/readyz before: ready, postgres up", st == 200 and "postgres up" in body, body)

        mark = log_size(n)
        r = pg.stop()
        t_down = time.time()
        check("PostgreSQL stopped (pg_ctl stop -m fast)", r.returncode == 0, r.stderr)
        got = (len(s5.got), len(s3.got))
        check("/readyz while PostgreSQL is down: still ready (200), names the store down",
              wait_for(lambda: "postgres down" in readyz(n)[1], 5) and
              readyz(n)[0] == 200 and readyz(n)[1].startswith("ready\n"), readyz(n)[1])
        print("     /readyz: " + readyz(n)[1].strip().replace("\n", " | "))
        logged = []
        wait_for(lambda: logged.extend(x for x in error_lines(log_text(n, mark))
                                       if "PostgreSQL" in x) or logged, 5)
        check("the node logs the outage", bool(logged), log_text(n, mark)[-500:])
        if logged:
            print("     log: " + logged[0])
        check("connected clients keep publishing and receiving while it is down",
              wait_for(lambda: len(s5.got) > got[0] + 20 and len(s3.got) > got[1] + 20, 5),
              f"{got} -> {(len(s5.got), len(s3.got))}")
        c5 = Client(n["port"], "dev2@t3", "dev2-pw", 5)
        c3 = Client(n["port"], "dev2@t3", "dev2-pw", 3)
        check("a new CONNECT of a cached principal succeeds (5.0 and 3.1.1)",
              c5.rc == 0 and c3.rc == 0, f"{c5.rc} {c3.rc}")
        c5.subscribe("data/#")
        check("... and it publishes and subscribes", roundtrip(c3, c5, "data/down"))
        clients += [c5, c3]
        check("a principal that never existed is refused (5.0 and 3.1.1)",
              connack(n["port"], "ghost@t3", "ghost-pw", 5) not in (0, None) and
              connack(n["port"], "ghost@t3", "ghost-pw", 3) not in (0, None))
        check("a tenant the cache does not hold is refused",
              connack(n["port"], "dev1@nosuch", "dev1-pw") not in (0, None))
        # Keep it down a little longer than the first backoff steps.
        time.sleep(max(0.0, 1.5 - (time.time() - t_down)))

        r = pg.start()
        t_up = time.time()
        check("PostgreSQL started again on the same port", r.returncode == 0, r.stderr)
        up = wait_for(lambda: "postgres up" in readyz(n)[1], 10, step=0.05)
        if up:
            figure("PostgreSQL back: /readyz says up after", time.time() - t_up)
        check("/readyz says up within 10 s of the restart (backoff_max is 5 s)", up,
              readyz(n)[1])
        print("     /readyz: " + readyz(n)[1].strip().replace("\n", " | "))
        t0 = time.time()
        sql_once(pg.url, "\n".join(["BEGIN;"] + principal_sql("t3", [
            ("dev3", hashes["dev3-pw"], ["rw"], "")]) + ["COMMIT;"]))
        took = connect_within(n["port"], "dev3@t3", "dev3-pw", 3, since=t0)
        if took is not None:
            figure("principal inserted after the restart: first accepted CONNECT sent after",
                   took[0])
            figure("principal inserted after the restart: ... its CONNACK 0 after", took[1])
        check("a principal inserted after the restart logs in within 1 s",
              took is not None and took[0] < 1.0, str(took))
        check("traffic still flows after the restart",
              wait_for(lambda: len(s5.got) > got[0] + 100, 5))
        traffic.stop()
        sent = {(c is p3, p) for c, p, info in traffic.sent}
        wait_for(lambda: all(info.is_published() for _, _, info in traffic.sent), 5)
        want_a = {p for c, p, _ in traffic.sent if c is p3}
        want_b = {p for c, p, _ in traffic.sent if c is p5}
        wait_for(lambda: want_a <= set(s5.payloads()) and want_b <= set(s3.payloads()), 5)
        lost = len(want_a - set(s5.payloads())) + len(want_b - set(s3.payloads()))
        print(f"     {len(sent)} QoS 1 messages through the outage, {lost} lost")
        check("no QoS 1 message lost across the outage, every one acknowledged",
              lost == 0 and traffic.failed == 0 and
              all(info.is_published() for _, _, info in traffic.sent),
              f"{lost} lost, {traffic.failed} not sent")
        check("no client was disconnected across the outage",
              all(c.drops == 0 for c in clients), str([c.drops for c in clients]))
        check("the node is alive", n["proc"].poll() is None)
    finally:
        for c in clients:
            c.close()
        if n:
            code = stop(n)
            check("outage node: SIGTERM exits 0", code == 0, str(code))
        pg.remove()


# ---- 4: concurrent migration ------------------------------------------------


def migrate_once(tmp, url, hashes, count=3):
    nodes, errors = [None] * count, []
    barrier = threading.Barrier(count)

    def go(i):
        barrier.wait()
        try:
            nodes[i] = start(tmp, f"m{i}", url)
        except BaseException as e:  # start_node exits the test on failure
            errors.append(f"node m{i}: {e}")
    threads = [threading.Thread(target=go, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    live = [n for n in nodes if n]
    try:
        check(f"{count} nodes started at once on an empty database", len(live) == count,
              str(errors))
        rows = sql_once(url, "SELECT version, name FROM bulwark_schema_version ORDER BY 1;")
        check("the schema was migrated once (one row a migration)",
              rows == ["1|0001_init.sql", "2|0002_jwt_tenant_claim.sql"], str(rows))
        sql_once(url, tenant_sql("t4", {"rw": "allow all data/#\n"},
                                 [("dev", hashes["dev-pw"], ["rw"], "")]))
        check("every node serves the store's tenants",
              all(connect_within(n["port"], "dev@t4", "dev-pw", 3) is not None for n in live))
        for n in live:
            errs = error_lines(log_text(n))
            check(f"node {n['name']}: no error in its log", not errs, str(errs[:3]))
            check(f"node {n['name']}: its log says the store was loaded",
                  "PostgreSQL loaded" in log_text(n))
    finally:
        for n in live:
            code = stop(n)
            check(f"node {n['name']}: SIGTERM exits 0", code == 0, str(code))


# ---- main --------------------------------------------------------------------


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.environ.get("BW_TEST_POSTGRES_SKIP") == "1":
        print("skipped: BW_TEST_POSTGRES_SKIP=1")
        return SKIP
    base = os.environ.get("BW_TEST_POSTGRES")
    if not base:
        print("skipped: BW_TEST_POSTGRES is not set (scripts/pg-test run ctest ... sets it)")
        return SKIP
    if not psql_binary():
        print("FAIL psql not found")
        return 1
    tag = f"bw_itpg_{os.getpid()}"
    dbs = {k: f"{tag}_{k}" for k in ("pair", "migrate")}
    with tempfile.TemporaryDirectory() as tmp:
        hashes = {pw: hash_password(pw) for pw in (
            "dev-pw", "dev2-pw", "rev-pw", "race-pw", "u-pw", "sub-pw", "pub-pw", "dev1-pw",
            "dev3-pw")}
        admin = Sql(base)
        try:
            for db in dbs.values():
                admin.run(f"CREATE DATABASE {db};")
            url = db_url(base, dbs["pair"])
            nodes = []
            try:
                nodes = [start(tmp, "a", url), start(tmp, "b", url)]
                sql = Sql(url)
                try:
                    print("== 1: two nodes, one database: propagation")
                    propagation(sql, nodes, hashes)
                    print("== 2: revocation")
                    revocation(sql, nodes, hashes,
                               lambda what: revive(tmp, url, nodes, what))
                finally:
                    sql.close()
                for n in nodes:
                    check(f"node {n['name']}: alive, no error in its log",
                          n["proc"].poll() is None and not error_lines(log_text(n)),
                          str(error_lines(log_text(n))[:3]))
            finally:
                for n in nodes:
                    code = stop(n)
                    check(f"node {n['name']}: SIGTERM exits 0", code == 0, str(code))
            print("== 3: PostgreSQL stopped and restarted under traffic")
            outage(tmp, hashes)
            print("== 4: nodes starting at once on an empty database")
            migrate_once(tmp, db_url(base, dbs["migrate"]), hashes)
        finally:
            for db in dbs.values():
                try:
                    admin.run(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
                except SqlError as e:
                    print(f"note: {e}")
            admin.close()
    print("figures:")
    for what, s in figures:
        print(f"  {s * 1000:6.0f} ms  {what}")
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
