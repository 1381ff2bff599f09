#!/usr/bin/env python3
"""Runs docs/onboarding.md: every ```sh block, in order, in one bash shell
(set -euo pipefail) in an empty directory, with the build's bulwark and
bulwarkctl first on PATH. The guide's ports (8883, 8080) are swapped for
free ones. Then checks what the guide did: two messages in for acme, the
changes audited, and no refusal. Bounded: the shell gets 120 s.

Usage: test_onboarding.py BULWARK_BINARY
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

GUIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                     "onboarding.md")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(pgid):
    """SIGTERM to what the guide's shell left running (the node), and waits
    (at most 10 s) until it is gone: it writes its snapshot into the
    directory about to be removed."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def main():
    binary = os.path.abspath(sys.argv[1])
    bindir = os.path.dirname(binary)
    with open(GUIDE) as f:
        guide = f.read()
    code = blocks(guide)
    if len(code) < 8:
        raise SystemExit(f"onboarding.md: only {len(code)} sh blocks found")
    mqtts, http = free_port(), free_port()
    script = "set -euo pipefail\n" + "\n".join(code)
    script = script.replace("8883", str(mqtts)).replace("8080", str(http))
    # What the guide did, checked from inside the same shell.
    script += "\nbulwarkctl --json stats acme > stats.json\n"
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.pop("BULWARKCTL_SOCKET", None)
    with tempfile.TemporaryDirectory(prefix="bw-onboarding-") as tmp:
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            print(out.decode(errors="replace"))
            raise SystemExit("FAIL: the guide's commands took over 120 s")
        finally:
            stop_group(proc.pid)
        text = out.decode(errors="replace")
        log_path = os.path.join(tmp, "bulwark.log")
        log = open(log_path).read() if os.path.exists(log_path) else ""
        failures = []
        if proc.returncode != 0:
            failures.append(f"the guide's shell exited {proc.returncode}")
        else:
            with open(os.path.join(tmp, "stats.json")) as f:
                acme = json.load(f)["tenants"][0]
            if acme["msgs_in"] != 2:
                failures.append(f"acme received {acme['msgs_in']} messages, not 2")
            for k in ("auth_failures", "acl_denials"):
                if acme[k]:
                    failures.append(f"acme has {acme[k]} {k}")
        for action in ("tenant.create", "acl.add", "ca.add", "cert.map", "jwt.add",
                       "user.add"):
            if f'"action":"{action}"' not in log:
                failures.append(f"no audit line for {action}")
        if failures:
            print(text)
            print("---- bulwark.log ----\n" + log[-4000:])
            raise SystemExit("FAIL: " + "; ".join(failures))
        print(f"ok: {len(code)} blocks of onboarding.md ran; acme: 2 messages in, "
              "no refusal, every change audited")


if __name__ == "__main__":
    main()
