#!/usr/bin/python3
"""Integration test of the admin socket with the PostgreSQL tenancy store:
two nodes (A and B) on one database, each with its own admin socket and
audit log. Changes go through node A's socket with the real `bulwarkctl`;
node B must enforce each within a second of bulwarkctl returning on A
(measured with a bounded poll, printed, asserted under 1 s), and B's own
bulwarkctl must show it:

1. tenant create, group create, acl add: B's bulwarkctl shows them;
2. user add: the user logs in on B;
3. user disable: B's connected 5.0 client gets DISCONNECT 0x87 (3.1.1:
   closed), B refuses a new CONNECT; user enable lets it in again;
4. acl del: B's connected client loses the subscription the rule allowed
   and keeps its connection and its other subscription;
5. tenant suspend: B's connected clients get 0x98, B refuses new CONNECTs;
   resumed through B, A takes clients again;
6. each node audits the changes made through its own socket.

PostgreSQL comes from BW_TEST_POSTGRES (scripts/pg-test sets it); the test
makes its own database and drops it. Without it, or with
BW_TEST_POSTGRES_SKIP=1, the test is skipped: exit status 77, which ctest
reports as skipped. Every wait is bounded.
Usage: test_admin_pg.py BULWARK_BINARY BULWARKCTL_BINARY
"""
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import node  # noqa: E402  (tests/integration/node.py)
import test_admin as ta  # noqa: E402  (bulwarkctl, clients, checks)
import test_tenancy_pg as tpg  # noqa: E402  (psql sessions, database URLs)

SKIP = 77  # SKIP_RETURN_CODE in tests/CMakeLists.txt
BOUND = 1.0  # seconds: a change made on A is in force on B within this
PW = {"ops": "ops-Pw-4a61c2", "dev": "dev-Pw-0be93d"}
figures = []
check = ta.check


def figure(what, seconds):
    figures.append((what, seconds))
    print(f"     {what}: {seconds * 1000:.0f} ms", flush=True)


def start(tmp, name, url):
    """A node with an MQTT and an HTTP listener on the store at url, its
    admin socket STATE_DIR/admin.sock and its own audit log."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    proc, ports, log = node.start_node(ta.BIN, d, [
        "listen=mqtt 127.0.0.1:0", "listen=http 127.0.0.1:0", "workers=2",
        "auth_backoff_after=0", "sys_interval=0", "postgres=" + url,
        "audit_log=" + os.path.join(d, "audit.log")])
    sock = os.path.join(d, "state", "admin.sock")
    ta.wait_for(lambda: os.path.exists(sock), 5)
    return {"name": name, "proc": proc, "port": ports[0], "log": log, "sock": sock,
            "audit": os.path.join(d, "audit.log"), "ctl": ta.Ctl(sock)}


def stop(n):
    """SIGTERM: the exit status (None: it had to be killed)."""
    if n["proc"].poll() is not None:
        return n["proc"].returncode
    n["proc"].terminate()
    try:
        return n["proc"].wait(timeout=ta.TIMEOUT)
    except Exception:  # noqa: BLE001  (subprocess.TimeoutExpired)
        n["proc"].kill()
        n["proc"].wait()
        return None


def shows(ctl, args, pred, seconds=3):
    """Polls ctl's --json args until pred(result): (True, seconds it took)."""
    t0 = time.monotonic()
    got = []
    ok = ta.wait_for(lambda: got.append(ctl.js(*args)) or (got[-1] is not None and
                                                          pred(got[-1])), seconds, 0.02)
    return ok, time.monotonic() - t0, got[-1] if got else None


def within(what, t_ret, when, detail="", made="A", seen="B"):
    """Checks that when (a monotonic time, or None) is under BOUND after
    t_ret, the moment bulwarkctl returned on node made."""
    dt = when - t_ret if when is not None else None
    if dt is not None:
        figure(f"{what}: after bulwarkctl returned on {made}", max(dt, 0.0))
    return check(f"{what}: on node {seen} within {BOUND:.0f} s of the change on {made}",
                 dt is not None and dt < BOUND, f"{dt} {detail}")


def first_accept(port, user, pw, seconds=3):
    """CONNECTs to port until one is accepted: when the accepted one was
    sent (monotonic), or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sent = time.monotonic()
        if ta.connack(port, user, pw) == 0:
            return sent
        time.sleep(0.01)
    return None


def run(a, b):
    ca, cb = a["ctl"], b["ctl"]

    # 1. A tenant, groups and rules made on A, shown by B.
    r = [ca.run("tenant", "create", "acme"),
         ca.run("group", "create", "acme", "ops"),
         ca.run("acl", "add", "acme", "--group", "ops", "allow", "all", "#"),
         ca.run("group", "create", "acme", "sensors"),
         ca.run("acl", "add", "acme", "--group", "sensors", "allow", "subscribe", "keep/#"),
         ca.run("acl", "add", "acme", "--group", "sensors", "allow", "subscribe", "drop/#"),
         ca.run("user", "add", "acme", "ops", "--group", "ops", "--password-stdin",
                stdin=PW["ops"] + "\n")]
    check("through A: tenant create, group create, acl add, user add: exit 0",
          all(x.rc == 0 for x in r), " | ".join(str(x) for x in r if x.rc))
    ok, dt, got = shows(cb, ("acl", "list", "acme"), lambda j: len(j.get("rules", [])) == 3)
    check("B's bulwarkctl shows A's tenant, groups and rules (acl list acme)", ok, str(got))
    g = cb.js("group", "list", "acme") or {}
    check("B's bulwarkctl: group list acme: ops and sensors",
          ta.names(g.get("groups")) == ["ops", "sensors"], str(g))

    # 2. user add.
    r = ca.run("user", "add", "acme", "dev", "--group", "sensors", "--password-stdin",
               stdin=PW["dev"] + "\n")
    t_ret = time.monotonic()
    when = first_accept(b["port"], "dev@acme", PW["dev"])
    check("user add on A: exit 0", r.rc == 0, str(r))
    within("user add: the user logs in", t_ret, when)
    ok, _, got = shows(cb, ("user", "show", "acme", "dev"), lambda j: j.get("enabled") is True)
    check("B's bulwarkctl: user show acme dev (password user, enabled, sensors)",
          ok and got.get("kind") == "password" and got.get("groups") == ["sensors"], str(got))
    ta.accepted_within(b["port"], "ops@acme", PW["ops"])

    # 3. user disable, then enable.
    d5 = ta.Client(b["port"], "pg-dev-5", "dev@acme", PW["dev"])
    d3 = ta.Client(b["port"], "pg-dev-3", "dev@acme", PW["dev"], ta.V311)
    r = ca.run("user", "disable", "acme", "dev")
    t_ret = time.monotonic()
    ta.wait_for(lambda: d5.gone is not None and d3.gone is not None, 3)
    check("user disable on A: exit 0, enabled false", r.rc == 0 and r.js and
          r.js.get("enabled") is False, str(r))
    check("user disable: B's 5.0 client gets DISCONNECT 0x87, its 3.1.1 client is closed",
          d5.ack == 0 and d3.ack == 0 and d5.gone == 0x87 and d3.gone not in (None, 0),
          f"{d5.ack} {d3.ack} {d5.gone} {d3.gone}")
    within("user disable: the 5.0 client disconnected", t_ret, d5.gone_at)
    within("user disable: the 3.1.1 client closed", t_ret, d3.gone_at)
    ta.close_all(d5, d3)
    code = ta.connack(b["port"], "dev@acme", PW["dev"])
    check("user disable: B refuses a new CONNECT (0x86)", code == 0x86, f"CONNACK {code}")
    ok, _, got = shows(cb, ("user", "show", "acme", "dev"), lambda j: j.get("enabled") is False)
    check("B's bulwarkctl: user show acme dev: enabled false", ok, str(got))
    r = ca.run("user", "enable", "acme", "dev")
    t_ret = time.monotonic()
    within("user enable: the user logs in again", t_ret,
           first_accept(b["port"], "dev@acme", PW["dev"]), str(r))

    # 4. acl del: drop/# goes, keep/# stays.
    d = ta.Client(b["port"], "pg-dev-acl", "dev@acme", PW["dev"])
    p = ta.Client(b["port"], "pg-ops", "ops@acme", PW["ops"])
    subs = [d.sub("keep/#"), d.sub("drop/#")]
    p.pub("drop/x", b"drop-before")
    check("before acl del: B's client is subscribed to keep/# and drop/# and gets drop/x",
          subs == [1, 1] and ta.wait_for(lambda: b"drop-before" in d.payloads(), 3),
          f"{subs} {d.got}")
    lst = ca.js("acl", "list", "acme", "--group", "sensors") or {}
    n_drop = next((x["n"] for x in lst.get("rules", []) if "drop/#" in x.get("text", "")), None)
    r = ca.run("acl", "del", "acme", "--group", "sensors", str(n_drop))
    t_ret = time.monotonic()
    # Probes: drop/ then keep/ from one publisher; keep's arriving without
    # drop's means the subscription is gone. The probe's send time counts.
    i, when = 0, None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        i += 1
        sent = time.monotonic()
        pd, pk = f"drop-{i}".encode(), f"keep-{i}".encode()
        p.pub("drop/x", pd)
        p.pub("keep/x", pk)
        if ta.wait_for(lambda: pk in d.payloads(), 1, 0.005) and pd not in d.payloads():
            when = sent
            break
    check("acl del on A: exit 0, the rule gone", r.rc == 0 and r.js and
          [x.get("text") for x in r.js.get("rules", [])] == ["allow subscribe keep/#"], str(r))
    within("acl del: B drops the subscription the rule allowed", t_ret, when, f"{i} probes")
    check("acl del: B's client stays connected and keeps keep/#", d.up, str(d.gone))
    ok, _, got = shows(cb, ("acl", "list", "acme", "--group", "sensors"),
                       lambda j: len(j.get("rules", [])) == 1)
    check("B's bulwarkctl: acl list acme --group sensors: one rule left", ok, str(got))

    # 5. tenant suspend on A; resume on B.
    o5 = ta.Client(b["port"], "pg-ops-5", "ops@acme", PW["ops"])
    r = ca.run("tenant", "suspend", "acme")
    t_ret = time.monotonic()
    ta.wait_for(lambda: all(c.gone is not None for c in (d, p, o5)), 3)
    check("tenant suspend on A: exit 0, suspended", r.rc == 0 and r.js and
          r.js.get("status") == "suspended", str(r))
    check("tenant suspend: B's 5.0 clients get DISCONNECT 0x98",
          [c.gone for c in (d, p, o5)] == [0x98] * 3, str([c.gone for c in (d, p, o5)]))
    within("tenant suspend: B's client disconnected", t_ret,
           max(c.gone_at for c in (d, p, o5)) if all(c.gone_at for c in (d, p, o5)) else None)
    ta.close_all(d, p, o5)
    check("tenant suspend: B refuses new CONNECTs (0x87)",
          ta.connack(b["port"], "ops@acme", PW["ops"]) == 0x87)
    ok, _, got = shows(cb, ("tenant", "show", "acme"), lambda j: j.get("status") == "suspended")
    check("B's bulwarkctl: tenant show acme: suspended", ok, str(got)[:200])
    r = cb.run("tenant", "resume", "acme")
    t_ret = time.monotonic()
    within("tenant resume through B (the other way): the tenant's clients log in", t_ret,
           first_accept(a["port"], "ops@acme", PW["ops"]), str(r), made="B", seen="A")

    # 6. Audit: each node has the changes made through its own socket.
    for n, mine, other in ((a, ca, cb), (b, cb, ca)):
        with open(n["audit"]) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        got = sorted((x["action"], x["tenant"]) for x in lines if x.get("result") == "ok")
        check(f"node {n['name']}'s audit log: exactly the changes made through its socket",
              got == sorted(mine.changes), f"{got} vs {sorted(mine.changes)}")


def main():
    sys.stdout.reconfigure(line_buffering=True)
    if os.environ.get("BW_TEST_POSTGRES_SKIP") == "1":
        print("skipped: BW_TEST_POSTGRES_SKIP=1")
        return SKIP
    base = os.environ.get("BW_TEST_POSTGRES")
    if not base:
        print("skipped: BW_TEST_POSTGRES is not set (scripts/pg-test run ctest ... sets it)")
        return SKIP
    if not tpg.psql_binary():
        print("FAIL psql not found")
        return 1
    db = f"bw_itadmin_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        admin = tpg.Sql(base)
        nodes = []
        try:
            admin.run(f"CREATE DATABASE {db};")
            url = tpg.db_url(base, db)
            nodes = [start(tmp, "a", url), start(tmp, "b", url)]
            try:
                run(*nodes)
            except Exception as e:  # noqa: BLE001  (a crash is a failure, then clean up)
                ta.traceback.print_exc()
                check("the test ran to its end", False, repr(e))
        finally:
            for n in nodes:
                alive = n["proc"].poll() is None
                code = stop(n)
                check(f"node {n['name']}: alive at the end, SIGTERM exits 0",
                      alive and code == 0, str(code))
            try:
                admin.run(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);")
            except tpg.SqlError as e:
                print(f"note: {e}")
            admin.close()
    print("figures:")
    for what, s in figures:
        print(f"  {s * 1000:6.0f} ms  {what}")
    print(f"{ta.passed} passed, {len(ta.failures)} failed")
    return 1 if ta.failures else 0


if __name__ == "__main__":
    sys.exit(main())
